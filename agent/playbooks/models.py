"""What a playbook block means once parsed: rules, known failures, next steps (pure models).

Blocks are fenced YAML in the playbook Markdown, tagged ``yaml palier-rule``,
``yaml palier-failure`` or ``yaml palier-next``; see docs/agent.md for the format.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal[
    "kernel_hang",
    "deprecated_arg",
    "cuda_oom",
    "missing_dependency",
    "map_hang",
    "whisper_label_length",
    "whisper_generation_config",
    "nccl_timeout",
    "disk_full",
    "torn_checkpoint",
    "bf16_unsupported",
    "fp16_unscale",
    "backend_timeout",
    "backend_quota",
    "auth_error",
    "export_error",
    "tracking_error",
    "divergence",
    "none",
    "unknown",
]
KINDS: tuple[str, ...] = get_args(Kind)

# Remedies palier knows how to apply to a stage config (agent.diagnosis.remedies); a playbook may only
# name these, and only with ``safe: true``.
REMEDY_ACTIONS = ("halve_batch", "single_process_map", "fallback_gpu")

PIPELINE_STATES = ("no_runs", "running", "failed", "gate_rejected", "candidate", "succeeded", "partial")

ID_PATTERN = r"^[a-z0-9][a-z0-9_.\-]*$"


class Block(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceRef(Block):
    """Where a block or section lives, for citations: ``playbooks/whisper-fr.md#h200-...``."""

    file: str
    section: str
    anchor: str
    line: int

    @property
    def cite(self) -> str:
        return f"{self.file}#{self.anchor}"


class AppliesTo(Block):
    families: list[str] = Field(default_factory=lambda: ["*"])
    backends: list[str] = Field(default_factory=lambda: ["*"])

    def matches(self, family: str | None, backend: str | None) -> bool:
        fam_ok = "*" in self.families or (family is not None and family in self.families)
        back_ok = "*" in self.backends or (backend is not None and backend in self.backends)
        return fam_ok and back_ok


ConditionOp = Literal[
    "eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "truthy", "falsy", "matches", "not_matches",
    "version_lt", "version_ge",
]


class Condition(Block):
    """``path`` is rooted at ``stage.``, ``pipeline.``, ``facts.`` or ``target.``."""

    path: str = Field(pattern=r"^(stage|pipeline|facts|target)\.[A-Za-z0-9_.\-]+$")
    op: ConditionOp
    value: Any = None

    @model_validator(mode="after")
    def _value_needed(self) -> Condition:
        if self.op not in ("truthy", "falsy") and self.value is None:
            raise ValueError(f"condition on {self.path!r} with op {self.op!r} needs a value")
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        return self


class Autofix(Block):
    """``set``: stage-relative paths -> new values. ``suggested``: take what the check computed."""

    set: dict[str, Any] | None = None
    suggested: bool = False

    @model_validator(mode="after")
    def _one(self) -> Autofix:
        if bool(self.set) == self.suggested:
            raise ValueError("autofix needs exactly one of 'set' (a mapping) or 'suggested: true'")
        return self


class Rule(Block):
    id: str = Field(pattern=ID_PATTERN)
    title: str
    answer: dict[Literal["fr", "en"], str] = Field(
        default_factory=dict, description="the rule as a one-sentence answer, per language (palier ask)"
    )
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    check: str | None = Field(default=None, description="a named check in agent.rules.checks")
    params: dict[str, Any] = Field(default_factory=dict)
    when: list[Condition] | None = Field(default=None, description="all must hold")
    when_any: list[Condition] | None = Field(default=None, description="at least one must hold")
    severity: Literal["block", "warn"]
    message: str
    fix: str
    autofix: Autofix | None = None
    rationale: str
    source: SourceRef | None = None

    @model_validator(mode="after")
    def _one_check(self) -> Rule:
        declarative = bool(self.when) or bool(self.when_any)
        if declarative == bool(self.check):
            raise ValueError("a rule needs either 'check' (named) or 'when'/'when_any' conditions, not both")
        return self


class Evidence(Block):
    """Case-insensitive regexes over log lines; an empty Evidence matches any text."""

    any: list[str] = Field(default_factory=list)
    all: list[str] = Field(default_factory=list)
    none: list[str] = Field(default_factory=list)
    min_lines: int = Field(default=1, ge=1, description="distinct matching lines needed (a repeated symptom)")
    context: list[str] = Field(default_factory=list,
                               description="lines quoted with the evidence when the failure matched (the file "
                                           "or checkpoint concerned); never used to match")

    @field_validator("any", "all", "none", "context")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        import re

        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"bad regex {p!r}: {exc}") from None
        return patterns

    @property
    def empty(self) -> bool:
        return not (self.any or self.all)


class HeartbeatCondition(Block):
    stalled: bool = True
    min_stall_s: float | None = Field(default=None, gt=0)
    last_phase_in: list[str] | None = None


class Remedy(Block):
    action: Literal["halve_batch", "single_process_map", "fallback_gpu"]
    safe: Literal[True]
    params: dict[str, Any] = Field(default_factory=dict)


class KnownFailure(Block):
    id: str = Field(pattern=ID_PATTERN)
    title: str
    kind: Kind
    families: list[str] = Field(default_factory=lambda: ["*"])
    evidence: Evidence = Field(default_factory=Evidence)
    heartbeat: HeartbeatCondition | None = None
    priority: int = Field(default=50, ge=0, le=100)
    confidence: float = Field(default=0.8, gt=0, le=1)
    diagnosis: str
    fix: str
    remedy: Remedy | None = None
    source: SourceRef | None = None

    @model_validator(mode="after")
    def _has_signal(self) -> KnownFailure:
        if self.evidence.empty and self.heartbeat is None:
            raise ValueError("a known failure needs evidence patterns, a heartbeat condition, or both")
        if self.remedy is not None and self.kind in ("none", "unknown"):
            raise ValueError(f"kind {self.kind!r} cannot carry a remedy (no blind retry)")
        return self


class NextStep(Block):
    id: str = Field(pattern=ID_PATTERN)
    state: Literal["no_runs", "running", "failed", "gate_rejected", "candidate", "succeeded", "partial"]
    families: list[str] = Field(default_factory=lambda: ["*"])
    title: str
    steps: list[str] = Field(min_length=1)
    source: SourceRef | None = None


class Section(Block):
    file: str
    heading: str
    anchor: str
    level: int
    line: int
    text: str

    @property
    def cite(self) -> str:
        return f"{self.file}#{self.anchor}"
