"""preflight(config, facts): every applicable playbook rule on every stage, before a GPU is
paid for. Autofixes are applied in rule order (later rules see the fixed config), recorded
as Changes, and re-checked: a block that its autofix clears no longer blocks."""

from __future__ import annotations

import copy
import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.rules.check_table import Hit
from agent.rules.checks import CHECKS, condition_holds
from agent.rules.context import MISSING, StageContext, get_path, set_path
from agent.base.facts import EnvFacts
from agent.playbooks.models import Rule
from agent.playbooks.parse import PlaybookSet
from agent.rules import load_checked_playbooks
from agent.base.redact import redact
from core.language import Language, Phrase


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule_id: str
    stage: str
    path: str = Field(description="stage-relative, e.g. training.per_device_train_batch_size")
    old: Any = None
    new: Any = None

    def line(self) -> str:
        return f"[{self.rule_id}] {self.stage}: {self.path} {self.old!r} -> {self.new!r}"


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule_id: str
    title: str
    severity: Literal["block", "warn"]
    stage: str
    message: str
    fix: str
    rationale: str
    playbook: str | None = Field(default=None, description="file#anchor of the rule's section")
    section: str | None = None
    autofixed: bool = False
    autofix_error: str | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == "block" and not self.autofixed


class PreflightReport(BaseModel):
    ok: bool
    findings: list[Finding]
    changes: list[Change]
    config: Any = Field(exclude=True, description="the (fixed) PipelineConfig")
    facts_summary: dict[str, Any] = Field(default_factory=dict)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warn" and not f.autofixed]

    def to_json(self) -> str:
        return redact(self.model_dump_json(indent=2))

    def lines(self) -> list[str]:
        """One line per finding and change, for Prefect logs and MLflow tags/notes."""
        out = []
        for f in self.findings:
            state = "fixed" if f.autofixed else f.severity.upper()
            out.append(f"[{state}] {f.rule_id} ({f.stage}): {f.message} -> {f.fix} [{f.playbook}]")
        out += [f"[AUTOFIX] {c.line()}" for c in self.changes]
        blocked = len(self.blocking)
        out.append(str(Phrase("preflight : OK", "preflight: OK") if self.ok else
                       Phrase(f"preflight : BLOQUÉ par {blocked} règle(s)", f"preflight: BLOCKED by {blocked} rule(s)")))
        return out


class _Fmt(string.Formatter):
    def get_value(self, key, args, kwargs):  # noqa: ANN001, ANN201
        return kwargs.get(key, "{" + str(key) + "}")


# The shipped playbooks are written in French: the words palier puts into their messages and
# fixes (``Phrase`` values) are given in French too, so a finding never mixes two languages.
PLAYBOOK_LANGUAGE: Language = "fr"


def render(template: str, values: dict[str, Any], language: Language = PLAYBOOK_LANGUAGE) -> str:
    values = {k: v.in_(language) if isinstance(v, Phrase) else v for k, v in values.items()}
    try:
        return _Fmt().format(template, **values)
    except (ValueError, IndexError):
        return template


def evaluate_rule(rule: Rule, ctx: StageContext) -> Hit | None:
    if not rule.applies_to.matches(ctx.family, ctx.backend_kind):
        return None
    if rule.check:
        fn = CHECKS.get(rule.check)
        if fn is None:
            raise KeyError(f"rule {rule.id!r} names unknown check {rule.check!r} (agent/rules/checks.py)")
        return fn(ctx, rule.params)
    if rule.when and not all(condition_holds(ctx, c) for c in rule.when):
        return None
    if rule.when_any and not any(condition_holds(ctx, c) for c in rule.when_any):
        return None
    return Hit()


def _facts_summary(facts: EnvFacts) -> dict[str, Any]:
    return {
        "kernel": facts.kernel,
        "target_kernel": facts.target_kernel,
        "gpu": facts.gpu_name,
        "cuda_available": facts.cuda_available,
        "credentials": {k: ("present" if v else "missing") for k, v in sorted(facts.credentials.items())},
        "hf_offline": facts.hf_offline,
        "network": facts.network,
        "libraries": {k: v for k, v in sorted(facts.libraries.items()) if v},
    }


def preflight(
    config: Any,
    facts: EnvFacts,
    *,
    playbooks: PlaybookSet | None = None,
    apply_autofix: bool = True,
) -> PreflightReport:
    """Evaluate every applicable rule on every stage of ``config`` (a PipelineConfig).

    Returns the report with ``config`` = the fixed PipelineConfig and ``changes`` = what the
    autofixes did; ``ok`` is False while any block-severity finding remains."""
    book = playbooks or load_checked_playbooks()
    findings: list[Finding] = []
    changes: list[Change] = []
    # Autofixes edit a plain copy and the config model validates once at the end: two
    # fixes may each be needed before the stage is valid again (fp16+bf16 and chunk 45).
    data = config.model_dump(mode="json")
    for index in range(len(data["stages"])):
        for rule in book.rules:
            ctx = _context(data, index, facts)
            hit = evaluate_rule(rule, ctx)
            if hit is None:
                continue
            data, fixed_here, error = _autofix(rule, hit, ctx, data, index, facts, apply_autofix)
            changes += fixed_here
            findings.append(_finding(rule, hit, ctx, autofixed=bool(fixed_here), error=error))
    fixed = config
    if changes:
        try:
            fixed = type(config).model_validate(data)
        except ValidationError as exc:
            # The fixes do not make a valid config: none is applied, every fixed finding blocks again.
            reason = f"autofixed config rejected by the config model: {exc.errors()[0]['msg']}"
            findings = [f.model_copy(update={"autofixed": False, "autofix_error": reason}) if f.autofixed else f
                        for f in findings]
            changes = []
    findings = _merge_across_stages(findings)
    ok = not any(f.blocking for f in findings)
    return PreflightReport(ok=ok, findings=findings, changes=changes, config=fixed,
                           facts_summary=_facts_summary(facts))


def _autofix(rule: Rule, hit: Hit, ctx: StageContext, data: dict[str, Any], index: int, facts: EnvFacts,
             apply: bool) -> tuple[dict[str, Any], list[Change], str | None]:
    """(the config data, the changes made, why the autofix failed): a fix is kept only when
    the rule no longer fires on the fixed copy."""
    wanted = (rule.autofix.set if rule.autofix and rule.autofix.set else
              hit.suggested if rule.autofix and rule.autofix.suggested else None)
    if not (apply and wanted):
        return data, [], None
    candidate = copy.deepcopy(data)
    for path, value in wanted.items():
        set_path(candidate["stages"][index], path, copy.deepcopy(value))
    if evaluate_rule(rule, _context(candidate, index, facts)) is not None:
        return data, [], "autofix did not clear the finding"
    changes = []
    for path, value in wanted.items():
        old = get_path(ctx.stage, path)
        changes.append(Change(rule_id=rule.id, stage=ctx.name, path=path, old=None if old is MISSING else old,
                              new=value))
    return candidate, changes, None


def _finding(rule: Rule, hit: Hit, ctx: StageContext, *, autofixed: bool, error: str | None) -> Finding:
    values = {**ctx.target(), "base": ctx.pipeline.get("base_model"), "stage": ctx.name,
              "backend": ctx.backend_kind, "family": ctx.family, **hit.details}
    return Finding(
        rule_id=rule.id, title=rule.title, severity=rule.severity, stage=ctx.name,
        message=redact(render(rule.message, values)), fix=redact(render(rule.fix, values)),
        rationale=rule.rationale, playbook=rule.source.cite if rule.source else None,
        section=rule.source.section if rule.source else None,
        autofixed=autofixed, autofix_error=error,
    )


def _merge_across_stages(findings: list[Finding]) -> list[Finding]:
    """One finding per rule and message: "missing Modal token" once for four stages."""
    merged: dict[tuple, Finding] = {}
    for f in findings:
        prefix = f"{f.stage}:"
        message = f.message[len(prefix):] if f.message.startswith(prefix) else f.message
        key = (f.rule_id, f.severity, f.autofixed, f.autofix_error, message, f.fix)
        if key not in merged:
            merged[key] = f
            continue
        stages = f"{merged[key].stage}, {f.stage}"
        text = f"{stages}:{message}" if f.message.startswith(prefix) else f.message
        merged[key] = merged[key].model_copy(update={"stage": stages, "message": text})
    return list(merged.values())


def _context(data: dict[str, Any], index: int, facts: EnvFacts) -> StageContext:
    pipeline = {k: v for k, v in data.items() if k != "stages"}
    return StageContext(pipeline=pipeline, stage=data["stages"][index], facts=facts, index=index)
