"""A stage's progress as plain lines, for logs and pipes where no bar can be drawn.

One line per phase change, one when a phase crosses a quarter (25, 50, 75, 100 %), and one at
least once a minute while a phase runs, so a CI log or ``make demo > log`` shows that work goes
on. Pure: fed the stage runner's events (``core.events``, each with its time ``t``) and the
clock, it returns the lines to print.
"""

from __future__ import annotations

from dataclasses import dataclass

QUARTER = 0.25
AT_LEAST_EVERY_S = 60.0


def due(last_fraction: float | None, last_at: float | None, fraction: float, now: float) -> bool:
    """Print a progress line now? At the first news of a phase, when a new quarter is reached,
    and when the last line is a minute old."""
    if last_fraction is None or last_at is None:
        return True
    if int(fraction / QUARTER + 1e-9) > int(last_fraction / QUARTER + 1e-9):
        return True
    return now - last_at >= AT_LEAST_EVERY_S


def elapsed(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class _Phase:
    started: float
    printed_at: float | None
    printed_fraction: float | None
    done: int = 0
    total: int = 0

    def counts(self) -> str:
        if not self.total:
            return ""
        return f" {self.done}/{self.total} ({self.done / self.total:.0%})"


class ProgressLines:
    """The lines for one stage: ``label`` names it (``<pipeline>/<stage>``)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.phases: dict[str, _Phase] = {}

    def feed(self, event: dict) -> list[str]:
        kind, phase, t = event.get("type"), event.get("phase") or "", float(event.get("t", 0.0))
        if kind == "phase" and event.get("status") == "start":
            self.phases[phase] = _Phase(started=t, printed_at=t, printed_fraction=0.0)
            return [f"{self.label} {phase}: started"]
        if kind == "phase" and event.get("status") == "end":
            state = self.phases.pop(phase, None)
            took = f" in {elapsed(t - state.started)}" if state else ""
            return [f"{self.label} {phase}: done{state.counts() if state else ''}{took}"]
        if kind != "progress":
            return []
        state = self.phases.setdefault(phase, _Phase(started=t, printed_at=None, printed_fraction=None))
        state.done, state.total = int(event.get("done", 0)), int(event.get("total") or 0)
        fraction = state.done / state.total if state.total else 0.0
        if not due(state.printed_fraction, state.printed_at, fraction, t):
            return []
        state.printed_fraction, state.printed_at = fraction, t
        return [self._line(phase, state, t)]

    def tick(self, now: float) -> list[str]:
        """A line for each running phase whose last line is a minute old: a phase that reports
        no progress (loading, saving, a remote job starting) still shows it is alive."""
        lines = []
        for phase, state in self.phases.items():
            if state.printed_at is not None and now - state.printed_at >= AT_LEAST_EVERY_S:
                state.printed_at = now
                lines.append(self._line(phase, state, now))
        return lines

    def _line(self, phase: str, state: _Phase, now: float) -> str:
        counts = state.counts()
        return f"{self.label} {phase}:{counts}{',' if counts else ''} {elapsed(now - state.started)} elapsed"
