"""diagnose(log_text, heartbeat, log_age_s) -> Diagnosis: match the playbooks' known failures.

Ranking, in order: a failure whose evidence is in the final exception (the last
``SomethingError: ...`` line, its continuation, and the exceptions it was raised from; or the
last crash marker such as ``Killed`` or a failed CUDA assertion) beats one matched elsewhere;
then a confirmed failure beats a probable one; then the playbook priority; then the amount of
evidence. Heartbeat-gated failures (hangs) need a stall: from heartbeat events, or, without
them, a log that stops at the evidence, confirmed by the log file's age — with neither, the
hang is only *probable* and says what would confirm it (``to_confirm``, no remedy). Benign
entries (kind ``none``) only apply to logs that did not crash. Nothing matched: ``unknown`` if
something went wrong, else ``none``; an unknown case goes to the configured LLM, whose answer
is labelled ``source: llm``. Measured on real logs by ``python -m bench.diagnosis``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.llm import LlmError

from agent.diagnosis.heartbeat import HeartbeatFacts, heartbeat_from_log_age, is_stalled
from agent.playbooks.models import KnownFailure, Kind
from agent.playbooks.parse import PlaybookSet, load_playbooks
from agent.base.redact import redact

DEFAULT_STALL_S = 600.0
MAX_EVIDENCE = 6
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
# What loggers, launchers and quoting put before a message: timestamps, [rank0]:, [pid], "> ".
_PREFIX = re.compile(
    r"^\s*(?:\d{4}-\d\d-\d\d[T ][\d:.,]+Z?\s*(?:-\s*)?)?(?:\[[^\]]{0,80}\]:?\s*)*(?:>\s?)?\s*"
)
_EXCEPTION = re.compile(
    r"(?:[A-Za-z_][\w]*\.)*(?:(?:[A-Z]\w*)?(?:Error|Exception|Exit|Interrupt|Failure|Cancellation)|KeyboardInterrupt)"
    r"(?:\s?:|\s*$|\s+\d{3}\b)"
)
# A crash without a Python exception line: a C++ abort, a kill, a failed device assertion, a
# scheduler cancelling the job, a logger's error level.
_ABORT = re.compile(
    r"terminate called after throwing|what\(\):|\bKilled\s*$|Segmentation fault|core dumped|"
    r"Assertion `.*` failed|\bCANCELLED AT\b|^\S*\s*\b(?:ERROR|FATAL|CRITICAL)\b(?!\w)|"
    r"Traceback \(most recent call last\)"
)
_CAUSE_LINK = re.compile(r"The above exception was the direct cause of the following exception")
_CONTINUATION_LINES = 6
# A tqdm bar as its last redraw leaves it: "desc:  37%|███▋      | 370/1000 [00:03<00:06, ...]",
# or its counter alone (notebook widgets print "18679/18686 [1:50:07<00:02, 2.83it/s]").
_BAR = re.compile(r"(?:(?P<pct>\d{1,3})%\|[^|]*\|\s*)?(?P<n>\d+)/(?P<total>\d+)\s*\[[^\]]*(?:it/s|s/it|/s|\?)[^\]]*\]\s*$"
                  r"|(?P<pct_only>\d{1,3})%\|[^|]*\|\s*\d+/\d+\s*$")
# A line that shows the run moving: a metric, a step counter, a bar past its start.
_PROGRESS = re.compile(
    r"'(?:loss|eval_\w+|train_runtime|grad_norm)'\s*:|\bloss\b\s*[=:]\s*\d|\b(?:step|iter(?:ation)?)\s*[:=]?\s*\d+"
    r"|\bepoch\s*[:=]?\s*\d|Training completed", re.IGNORECASE)
NEAR_START_PCT = 10
HANG_KINDS = ("kernel_hang", "map_hang")
UNCONFIRMED_FACTOR = 0.6
TO_CONFIRM = (
    "The log alone cannot tell a hang from a slow step. Confirm with the log file's age (palier diagnose "
    "LOG reads its modification time: no write for {limit:.0f} s or more means stalled) or the stage's "
    "heartbeats (palier diagnose LOG --events events.jsonl: no progress event for heartbeat_stall_s)."
)


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
    to_confirm: str | None = Field(default=None, description="the fact that would confirm a probable diagnosis")

    def to_json(self) -> str:
        return redact(self.model_dump_json(indent=2))


@dataclass
class _Candidate:
    failure: KnownFailure
    lines: list[int]
    in_final: bool
    confirmed: bool = True


@dataclass(frozen=True)
class LogTail:
    """How the log ends: its last meaningful line, and whether that is a progress bar that
    stopped before 100 % (the shape of a hang, or of a run caught mid-step)."""

    last: int | None
    bar_pct: int | None

    @property
    def unfinished_bar(self) -> bool:
        return self.bar_pct is not None and self.bar_pct < 100

    @property
    def stopped_near_start(self) -> bool:
        return self.bar_pct is not None and self.bar_pct <= NEAR_START_PCT


def log_lines(text: str) -> list[str]:
    """Lines as a terminal shows them: ANSI colours removed, and of a progress bar redrawn with
    carriage returns only its last state (a finished ``Map: 100%`` must not look like a stuck
    ``Map: 37%``)."""
    text = _ANSI.sub("", text or "")
    return [raw.rstrip("\r").split("\r")[-1] for raw in text.split("\n")]


def _message(line: str) -> str:
    return line[_PREFIX.match(line).end():]


def exception_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _EXCEPTION.match(_message(line))]


def crash_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _ABORT.search(line)]


def _block(lines: list[str], start: int) -> set[int]:
    block = {start}
    for j in range(start + 1, min(len(lines), start + 1 + _CONTINUATION_LINES)):
        if not lines[j].strip() or lines[j].lstrip().startswith("Traceback") or _CAUSE_LINK.search(lines[j]):
            break
        block.add(j)
    return block


def _final_block(lines: list[str], exc: list[int]) -> set[int]:
    """The last exception and its continuation lines, plus the exceptions it was raised from
    ("The above exception was the direct cause"): a wrapper's message often hides the cause.
    An exception only handled on the way ("During handling of the above exception") is not
    the reason and stays out."""
    if not exc:
        return set()
    block = _block(lines, exc[-1])
    for k in range(len(exc) - 1, 0, -1):
        between = range(exc[k - 1] + 1, exc[k])
        if not any(_CAUSE_LINK.search(lines[j]) for j in between):
            break
        block |= _block(lines, exc[k - 1])
    return block


def _bar_pct(text: str) -> int | None:
    match = _BAR.search(text)
    if not match:
        return None
    if match.group("pct_only"):
        return int(match.group("pct_only"))
    n, total = int(match.group("n")), int(match.group("total"))
    if total and n < total:
        return min(int(100 * n / total), 99)  # tqdm rounds 18679/18686 up to "100%"
    return int(match.group("pct")) if match.group("pct") else 100


def log_tail(lines: list[str]) -> LogTail:
    for i in range(len(lines) - 1, -1, -1):
        text = lines[i].strip()
        if not text:
            continue
        return LogTail(last=i, bar_pct=_bar_pct(text))
    return LogTail(last=None, bar_pct=None)


def _still_after(lines: list[str], index: int) -> bool:
    """Nothing after line ``index`` shows the run moving (only warnings, notices, a bar that
    has not left its start): the log stopped there."""
    for line in lines[index + 1:]:
        text = line.strip()
        if not text:
            continue
        pct = _bar_pct(text)
        if (pct is not None and pct > NEAR_START_PCT) or _PROGRESS.search(text):
            return False
    return True


def _match_lines(patterns: list[str], lines: list[str]) -> list[list[int]]:
    """Per pattern, the lines it matches; a message wrapped over two lines (rich, notebooks,
    long lines cut by a terminal) is matched across the break."""
    out = []
    for p in patterns:
        rx = re.compile(p, re.IGNORECASE)
        hits = [i for i, line in enumerate(lines) if rx.search(line)]
        if not hits:
            hits = [i + 1 for i in range(len(lines) - 1)
                    if lines[i + 1].strip() and rx.search(f"{lines[i].rstrip()} {lines[i + 1].strip()}")]
        out.append(hits)
    return out


def _heartbeat_state(f: KnownFailure, hb: HeartbeatFacts | None, tail: LogTail, matched: list[int],
                     crashed: bool, lines: list[str]) -> str | None:
    """``confirmed``, ``probable`` (a hang the log suggests but cannot prove) or None."""
    cond = f.heartbeat
    if cond is None:
        return "confirmed"
    if hb is not None and hb.source == "events":
        limit = cond.min_stall_s or hb.stall_limit_s or DEFAULT_STALL_S
        if cond.stalled and not is_stalled(hb, limit):
            return None
        if cond.last_phase_in and hb.last_phase not in cond.last_phase_in:
            return None
        return "confirmed"
    # Without heartbeat events the log's shape is the clue: it ends on a bar stopped near its
    # start, or on the very line that names the hang risk, with no error after it. The log
    # file's age, when known, then decides (an old finished log says nothing: only its shape
    # tells an unfinished run).
    if crashed or cond.last_phase_in or not matched or tail.last is None:
        return None
    if not (tail.stopped_near_start or _still_after(lines, max(matched))):
        return None
    if hb is None:
        return "probable"
    return "confirmed" if is_stalled(hb, cond.min_stall_s or hb.stall_limit_s or DEFAULT_STALL_S) else None


def _candidate(f: KnownFailure, lines: list[str], final: set[int], hb: HeartbeatFacts | None,
               tail: LogTail, crashed: bool) -> _Candidate | None:
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
    matched = sorted(set(matched))
    if not ev.empty and len(matched) < ev.min_lines:
        return None
    state = _heartbeat_state(f, hb, tail, matched, crashed, lines)
    if state is None:
        return None
    return _Candidate(f, matched, in_final=bool(final.intersection(matched)), confirmed=state == "confirmed")


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


def _context(patterns: list[str], lines: list[str], evidence: list[str]) -> list[str]:
    """The last line each context pattern matches (what the failure concerns: the checkpoint
    being loaded), when it is not already quoted."""
    out = []
    for group in _match_lines(patterns, lines):
        text = redact(lines[group[-1]].strip())[:300] if group else ""
        if text and text not in evidence and text not in out:
            out.append(text)
    return out


def _rank(c: _Candidate) -> tuple:
    return (c.in_final, c.confirmed, c.failure.priority, len(c.lines))


def _stall_limit(hb: HeartbeatFacts | None) -> float:
    return (hb.stall_limit_s if hb is not None else None) or DEFAULT_STALL_S


@dataclass(frozen=True)
class _Scan:
    """What the log shows before any playbook is consulted."""

    lines: list[str]
    exceptions: list[int]
    final: set[int]
    crashed: bool
    tail: LogTail


def _scan(log_text: str, heartbeat: HeartbeatFacts | None) -> _Scan:
    lines = log_lines(log_text)
    exc = exception_lines(lines)
    aborts = crash_lines(lines)
    final = _final_block(lines, exc)
    if aborts and (not exc or aborts[-1] > exc[-1]):
        final |= _block(lines, aborts[-1])
    crashed = bool(exc) or bool(aborts) or bool(heartbeat and heartbeat.error)
    return _Scan(lines, exc, final, crashed, log_tail(lines))


def _best_candidate(book: PlaybookSet, scan: _Scan, heartbeat: HeartbeatFacts | None) -> _Candidate | None:
    candidates = []
    for f in book.failures:
        c = _candidate(f, scan.lines, scan.final, heartbeat, scan.tail, scan.crashed)
        if c is None or (f.kind == "none" and scan.crashed):
            continue  # a benign warning never explains a crash
        candidates.append(c)
    real = [c for c in candidates if c.failure.kind != "none"]
    pool = real or candidates
    return max(pool, key=_rank) if pool else None


def _known(best: _Candidate, scan: _Scan, heartbeat: HeartbeatFacts | None) -> Diagnosis:
    f = best.failure
    confidence = f.confidence
    if scan.exceptions and not best.in_final and f.heartbeat is None:
        confidence *= 0.85  # the final exception says something else
    evidence = _evidence(scan.lines, best.lines, scan.final, heartbeat,
                         with_heartbeat=f.heartbeat is not None and heartbeat is not None)
    if f.kind == "none" and heartbeat is not None and heartbeat.source == "log_age":
        evidence.append(heartbeat.describe())
    evidence += _context(f.evidence.context, scan.lines, evidence)
    to_confirm = None
    remedy = f.remedy.model_dump() if f.remedy else None
    if not best.confirmed:
        confidence *= UNCONFIRMED_FACTOR
        remedy = None  # no automatic retry on a hang that is only probable
        ending = (f"ends on a progress bar stopped at {scan.tail.bar_pct} %" if scan.tail.bar_pct is not None
                  else "shows no progress after this line")
        evidence.append(f"unconfirmed: the log {ending} and no error; "
                        "no heartbeat or log age was given")
        to_confirm = TO_CONFIRM.format(limit=_stall_limit(heartbeat))
    return Diagnosis(
        kind=f.kind,
        failure_id=f.id,
        confidence=round(confidence, 2),
        evidence=evidence,
        fix=redact(f"{f.diagnosis.strip()} {f.fix.strip()}".strip()),
        remedy=remedy,
        section=f.source.cite if f.source else None,
        to_confirm=to_confirm,
    )


def _unmatched(scan: _Scan, heartbeat: HeartbeatFacts | None) -> Diagnosis:
    """No playbook failure matched: ``unknown`` when the run crashed or stalled, else ``none``."""
    stalled = heartbeat is not None and is_stalled(heartbeat, _stall_limit(heartbeat))
    if stalled and heartbeat.source == "log_age" and not scan.tail.unfinished_bar:
        stalled = False  # an old log that ended normally is a finished run, not a stalled one
    if scan.crashed or stalled:
        idx = sorted(scan.final) if scan.final else []
        if not idx and scan.exceptions:
            idx = [scan.exceptions[-1]]
        if not idx and stalled and scan.tail.last is not None:
            idx = [scan.tail.last]
        evidence = _evidence(scan.lines, idx, scan.final, heartbeat, with_heartbeat=stalled or not idx)
        if heartbeat is not None and heartbeat.error and not idx:
            evidence.insert(0, redact(heartbeat.error)[:300])
        return Diagnosis(
            kind="unknown", failure_id=None, confidence=0.2, evidence=evidence,
            fix="Not in the playbooks. Read the final exception and the lines before it; if you find the cause, "
                "add a palier-failure block (docs/agent.md, 'Adding a known failure').",
        )
    evidence = [heartbeat.describe()] if heartbeat is not None and heartbeat.source == "log_age" else []
    return Diagnosis(kind="none", failure_id=None, confidence=0.6, evidence=evidence,
                     fix="No failure found: the log shows no exception and the run is not stalled.")


def diagnose_with_rules(log_text: str, heartbeat: HeartbeatFacts | None = None,
                        playbooks: PlaybookSet | None = None, *, log_age_s: float | None = None) -> Diagnosis:
    """``log_age_s``: seconds since the log file was last written, used when no heartbeat
    events are given (``palier diagnose LOG`` passes the file's modification time). A
    ``HeartbeatFacts`` built by ``heartbeat_from_log_age`` may be passed instead."""
    book = playbooks or load_playbooks()
    if heartbeat is not None and heartbeat.finished and not heartbeat.error:
        # A `done` event: whatever the log printed on the way (a caught TypeError from a
        # fallback, warnings), the run succeeded.
        return Diagnosis(kind="none", confidence=0.9, evidence=["events: done (succeeded)"],
                         fix="The run finished successfully; nothing to fix.")
    if heartbeat is None and log_age_s is not None:
        heartbeat = heartbeat_from_log_age(log_age_s)
    scan = _scan(log_text, heartbeat)
    best = _best_candidate(book, scan, heartbeat)
    return _known(best, scan, heartbeat) if best is not None else _unmatched(scan, heartbeat)


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
    log_age_s: float | None = None,
) -> Diagnosis:
    """Rules first. ``use_llm``: None = ask the LLM for unknown cases when one is configured
    (``core.llm``: OPENAI_BASE_URL / OPENAI_API_KEY + PALIER_LLM_MODEL); False = never. ``log_age_s``: the
    log file's age, used when there are no heartbeat events."""
    book = playbooks or load_playbooks()
    result = diagnose_with_rules(log_text, heartbeat, book, log_age_s=log_age_s)
    if result.kind != "unknown" or result.failure_id is not None or use_llm is False:
        return result
    from agent.diagnosis import llm_assist

    try:
        client = llm_assist.configured_client()
        answer = llm_assist.diagnose_unknown(client, log_text, heartbeat, book) if client else None
    except LlmError as exc:
        if exc.misconfigured:  # say so rather than silently not asking
            return result.model_copy(update={"fix": f"{result.fix} (LLM not asked: {redact(str(exc))})"})
        return result
    return Diagnosis(**answer, remedy=None, source="llm") if answer else result
