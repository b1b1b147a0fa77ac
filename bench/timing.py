"""Side-by-side timing on a shared, noisy machine: only ratios of interleaved runs are reported."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Comparison:
    """Seconds per round for a reference and a candidate run back to back."""

    reference_s: list[float] = field(default_factory=list)
    candidate_s: list[float] = field(default_factory=list)
    reference_result: Any = None
    candidate_result: Any = None

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios: each round's two runs saw about the same load."""
        return statistics.median(r / c for r, c in zip(self.reference_s, self.candidate_s))

    @property
    def spread(self) -> tuple[float, float]:
        ratios = [r / c for r, c in zip(self.reference_s, self.candidate_s)]
        return min(ratios), max(ratios)

    def summary(self) -> dict[str, Any]:
        low, high = self.spread
        return {"rounds": len(self.reference_s), "ratio": round(self.ratio, 2),
                "ratio_min": round(low, 2), "ratio_max": round(high, 2),
                "reference_median_s": round(statistics.median(self.reference_s), 3),
                "candidate_median_s": round(statistics.median(self.candidate_s), 3)}


def compare(reference: Callable[[], Any], candidate: Callable[[], Any], rounds: int,
            before_each: Callable[[], None] | None = None) -> Comparison:
    """Alternate which side runs first (AB, BA, AB, ...) so a load change mid-round hits both."""
    result = Comparison()
    for i in range(rounds):
        order = [("reference", reference), ("candidate", candidate)]
        if i % 2:
            order.reverse()
        for side, fn in order:
            if before_each is not None:
                before_each()
            t0 = time.perf_counter()
            value = fn()
            seconds = time.perf_counter() - t0
            getattr(result, f"{side}_s").append(seconds)
            setattr(result, f"{side}_result", value)
    return result
