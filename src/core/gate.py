"""Promotion gate (pure): champion, candidate or rejected.

ZenML's rule, adapted: promote to ``champion`` only when the stage beats its own baseline
by ``min_improvement`` on the gate metric of its primary eval set, beats the model that is
currently champion under the same registered name (if any, on the same metric as it was
recorded), and every guard set stays within its ``max_regression``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config.common import GateConfig
from core.contracts import StageResult


@dataclass(frozen=True)
class GateDecision:
    alias: str  # "champion" | "candidate"
    improved: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return self.alias == "champion"


def _better(a: float, b: float, greater_is_better: bool, margin: float = 0.0) -> bool:
    return a >= b + margin if greater_is_better else a <= b - margin


def decide(
    result: StageResult,
    gate: GateConfig,
    primary: str,
    guards: dict[str, float],
    champion_metric: float | None,
) -> GateDecision:
    """``guards`` maps guard eval-set names to their allowed regression."""
    reasons: list[str] = []
    ev = result.eval(primary)
    if gate.metric not in ev.final or gate.metric not in ev.baseline:
        return GateDecision("candidate", False, [f"metric {gate.metric!r} missing on eval set {primary!r}"])
    final, base = ev.final[gate.metric], ev.baseline[gate.metric]
    improved = _better(final, base, gate.greater_is_better, gate.min_improvement) and final != base
    reasons.append(f"{primary}/{gate.metric}: {base:.4f} -> {final:.4f} ({'improved' if improved else 'not improved'})")
    ok = improved
    if champion_metric is not None:
        beats = _better(final, champion_metric, gate.greater_is_better) and final != champion_metric
        reasons.append(f"current champion {gate.metric} {champion_metric:.4f}: {'beaten' if beats else 'not beaten'}")
        ok = ok and beats
    for name, bound in guards.items():
        g = result.eval(name)
        metric = gate.metric if gate.metric in g.final else next(iter(g.final))
        delta = g.final[metric] - g.baseline[metric]
        regression = -delta if gate.greater_is_better else delta
        within = regression <= bound + 1e-12
        reasons.append(f"guard {name}/{metric}: {g.baseline[metric]:.4f} -> {g.final[metric]:.4f} "
                       f"(regression {regression:+.4f}, bound {bound}) {'ok' if within else 'EXCEEDED'}")
        ok = ok and within
    return GateDecision("champion" if ok else "candidate", improved, reasons)
