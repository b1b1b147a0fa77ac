"""diagnose(log_text, heartbeat) -> Diagnosis: match the playbooks' known failures.

Ranking, in order: a failure whose evidence is in the final exception (the last
``SomethingError: ...`` line and its continuation) beats one matched elsewhere in the log;
then the playbook priority; then the amount of evidence. Heartbeat-gated failures (hangs)
need the heartbeat to show a stall. Benign entries (kind ``none``) only apply to logs with
no exception. Nothing matched: ``unknown`` if something went wrong, else ``none``; an
unknown case goes to the configured LLM, whose answer is labelled ``source: llm``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.heartbeat import HeartbeatFacts, is_stalled
from agent.playbook_models import KnownFailure, Kind
from agent.playbooks import PlaybookSet, load_playbooks
from agent.redact import redact

DEFAULT_STALL_S = 600.0
MAX_EVIDENCE = 6
_EXCEPTION = re.compile(
    r"^\s*(?:[A-Za-z_][\w]*\.)*(?:[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failure|Cancellation)|KeyboardInterrupt)"
    r"(?::|\s*$|\s+\d{3}\b)"
)
_ABORT = re.compile(r"terminate called after throwing|what\(\):")
_CONTINUATION_LINES = 6


class Diagnosis(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    failure_id: str | None = None
    confidence: float = Field(ge=0, le=1)
    evidence: list[str] = Field(default_factory=list)
    fix: str = ""
    remedy: dict[str, Any] | None = None
    source: Literal["rules", "llm"] = "rules"
    section: str | None = Field(default=None, description="playbook file#anchor")

    def to_json(self) -> str:
        return redact(self.model_dump_json(indent=2))


@dataclass
class _Candidate:
    failure: KnownFailure
    lines: list[int]
    in_final: bool


def log_lines(text: str) -> list[str]:
    """Lines as a terminal shows them: of a progress bar redrawn with carriage returns, only
    its last state counts (a finished ``Map: 100%`` must not look like a stuck ``Map: 37%``)."""
    return [raw.rstrip("\r").split("\r")[-1] for raw in (text or "").split("\n")]


def exception_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _EXCEPTION.match(line) or _ABORT.search(line)]


def _final_block(lines: list[str], exc: list[int]) -> set[int]:
    if not exc:
        return set()
    last = exc[-1]
    block = {last}
    for j in range(last + 1, min(len(lines), last + 1 + _CONTINUATION_LINES)):
        if not lines[j].strip() or lines[j].startswith("Traceback"):
            break
        block.add(j)
    return block


def _match_lines(patterns: list[str], lines: list[str]) -> list[list[int]]:
    out = []
    for p in patterns:
        rx = re.compile(p, re.IGNORECASE)
        out.append([i for i, line in enumerate(lines) if rx.search(line)])
    return out


def _heartbeat_ok(f: KnownFailure, hb: HeartbeatFacts | None) -> bool:
    cond = f.heartbeat
    if cond is None:
        return True
    if hb is None:
        return False
    limit = cond.min_stall_s or hb.stall_limit_s or DEFAULT_STALL_S
    if cond.stalled and not is_stalled(hb, limit):
        return False
    if cond.last_phase_in and hb.last_phase not in cond.last_phase_in:
        return False
    return True


def _candidate(f: KnownFailure, lines: list[str], final: set[int], hb: HeartbeatFacts | None) -> _Candidate | None:
    ev = f.evidence
    if ev.none and any(_match_lines(ev.none, lines)):
        return None
    matched: list[int] = []
    if ev.any:
        hits = [i for group in _match_lines(ev.any, lines) for i in group]
        if not hits:
            return None
        matched += hits
    if ev.all:
        groups = _match_lines(ev.all, lines)
        if not all(groups):
            return None
        matched += [i for g in groups for i in g]
    if not _heartbeat_ok(f, hb):
        return None
    matched = sorted(set(matched))
    return _Candidate(f, matched, in_final=bool(final.intersection(matched)))


def _evidence(lines: list[str], idx: list[int], final: set[int], hb: HeartbeatFacts | None,
              with_heartbeat: bool) -> list[str]:
    # The final-exception lines first: they are the reason; then the earliest context.
    chosen = [i for i in idx if i in final][:3] + [i for i in idx if i not in final]
    out = []
    for i in chosen:
        text = redact(lines[i].strip())[:300]
        if text and text not in out:
            out.append(text)
        if len(out) >= MAX_EVIDENCE - (1 if with_heartbeat else 0):
            break
    if with_heartbeat and hb is not None:
        out.append(hb.describe())
    return out


def _rank(c: _Candidate) -> tuple:
    return (c.in_final, c.failure.priority, len(c.lines))


def diagnose_with_rules(log_text: str, heartbeat: HeartbeatFacts | None = None,
                        playbooks: PlaybookSet | None = None) -> Diagnosis:
    book = playbooks or load_playbooks()
    if heartbeat is not None and heartbeat.finished and not heartbeat.error:
        # A `done` event: whatever the log printed on the way (a caught TypeError from a
        # fallback, warnings), the run succeeded.
        return Diagnosis(kind="none", confidence=0.9, evidence=["events: done (succeeded)"],
                         fix="The run finished successfully; nothing to fix.")
    lines = log_lines(log_text)
    exc = exception_lines(lines)
    final = _final_block(lines, exc)
    crashed = bool(exc) or bool(heartbeat and heartbeat.error)
    candidates = []
    for f in book.failures:
        c = _candidate(f, lines, final, heartbeat)
        if c is None:
            continue
        if f.kind == "none" and crashed:
            continue  # a benign warning never explains a crash
        candidates.append(c)
    real = [c for c in candidates if c.failure.kind != "none"]
    pool = real or candidates
    if pool:
        best = max(pool, key=_rank)
        f = best.failure
        confidence = f.confidence
        if exc and not best.in_final and f.heartbeat is None:
            confidence *= 0.85  # the final exception says something else
        return Diagnosis(
            kind=f.kind,
            failure_id=f.id,
            confidence=round(confidence, 2),
            evidence=_evidence(lines, best.lines, final, heartbeat, with_heartbeat=f.heartbeat is not None),
            fix=redact(f"{f.diagnosis.strip()} {f.fix.strip()}".strip()),
            remedy=f.remedy.model_dump() if f.remedy else None,
            section=f.source.cite if f.source else None,
        )
    stalled = heartbeat is not None and is_stalled(heartbeat, heartbeat.stall_limit_s or DEFAULT_STALL_S)
    if crashed or stalled:
        idx = sorted(final) if final else []
        if not idx and exc:
            idx = [exc[-1]]
        evidence = _evidence(lines, idx, final, heartbeat, with_heartbeat=stalled or not idx)
        if heartbeat is not None and heartbeat.error and not idx:
            evidence.insert(0, redact(heartbeat.error)[:300])
        return Diagnosis(
            kind="unknown", failure_id=None, confidence=0.2, evidence=evidence,
            fix="Not in the playbooks. Read the final exception and the lines before it; if you find the cause, "
                "add a palier-failure block (docs/agent.md, 'Adding a known failure').",
        )
    return Diagnosis(kind="none", failure_id=None, confidence=0.6, evidence=[],
                     fix="No failure found: the log shows no exception and the run is not stalled.")


def read_log(path: str | Path) -> str:
    """A log file as written, carriage returns included (``open()`` would turn each tqdm
    redraw into its own line and a finished progress bar into a stuck one)."""
    return Path(path).read_bytes().decode("utf-8", errors="replace")


def diagnose(
    log_text: str,
    heartbeat: HeartbeatFacts | None = None,
    *,
    playbooks: PlaybookSet | None = None,
    use_llm: bool | None = None,
) -> Diagnosis:
    """Rules first. ``use_llm``: None = ask the LLM for unknown cases when one is configured
    (OPENAI_API_KEY / OPENAI_BASE_URL + PALIER_LLM_MODEL); False = never."""
    book = playbooks or load_playbooks()
    result = diagnose_with_rules(log_text, heartbeat, book)
    if result.kind != "unknown" or result.failure_id is not None or use_llm is False:
        return result
    from agent import llm

    if not llm.configured():
        return result
    try:
        answer = llm.diagnose_unknown(log_text, heartbeat, book)
    except llm.LLMError:
        return result
    return answer or result
