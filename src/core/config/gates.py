"""Gate helpers shared by the token_cls and sft stage models.

``GateConfig`` defaults to the ASR direction (``greater_is_better: false``, for WER). A user who
writes ``gate: {metric: exact_match}`` without the direction would silently gate backwards, so
these families fill the direction from the metric and reject a contradicting one.
"""

from __future__ import annotations

from typing import Any

from core.config.common import GateConfig


def _direction(metric: Any, metrics: dict[str, bool], prefixes: tuple[str, ...]) -> bool | None:
    if not isinstance(metric, str):
        return None
    if metric in metrics:
        return metrics[metric]
    if prefixes and metric.startswith(prefixes):
        return True
    return None


def fill_gate_direction(raw: Any, metrics: dict[str, bool], prefixes: tuple[str, ...] = ()) -> Any:
    """Before validation: add ``greater_is_better`` to a ``gate`` mapping that names a known metric."""
    if isinstance(raw, dict) and isinstance(raw.get("gate"), dict):
        gate = dict(raw["gate"])
        direction = _direction(gate.get("metric"), metrics, prefixes)
        if "greater_is_better" not in gate and direction is not None:
            gate["greater_is_better"] = direction
            raw = {**raw, "gate": gate}
    return raw


def check_gate(gate: GateConfig, metrics: dict[str, bool], prefixes: tuple[str, ...] = ()) -> None:
    """After validation: the metric must be one the family reports, in the right direction."""
    direction = _direction(gate.metric, metrics, prefixes)
    if direction is None:
        extra = f" or a per-entity metric ({', '.join(p + '<TYPE>' for p in prefixes)})" if prefixes else ""
        raise ValueError(f"gate.metric {gate.metric!r} is not reported by this family; choose one of "
                         f"{sorted(metrics)}{extra}")
    if gate.greater_is_better != direction:
        word = "higher" if direction else "lower"
        raise ValueError(f"gate.metric {gate.metric!r} is better when {word}: set greater_is_better: "
                         f"{str(direction).lower()} (or leave it out)")
