"""Side-by-side timing on a shared, noisy machine: only ratios of interleaved runs are reported."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Rounds:
    """Seconds per round for each variant; every round runs every variant once."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    def ratios(self, reference: str, candidate: str) -> list[float]:
        return [r / c for r, c in zip(self.seconds[reference], self.seconds[candidate])]

    def ratio(self, reference: str, candidate: str) -> float:
        """Median of per-round ratios: the two runs of a round saw about the same load."""
        return statistics.median(self.ratios(reference, candidate))

    def summary(self, reference: str, candidate: str) -> dict[str, Any]:
        ratios = self.ratios(reference, candidate)
        return {"rounds": len(ratios), "ratio": round(statistics.median(ratios), 2),
                "ratio_min": round(min(ratios), 2), "ratio_max": round(max(ratios), 2),
                "reference_median_s": round(statistics.median(self.seconds[reference]), 3),
                "candidate_median_s": round(statistics.median(self.seconds[candidate]), 3)}


def interleave(variants: dict[str, Callable[[], Any]], rounds: int,
               before_each: Callable[[], None] | None = None, warmup: bool = False) -> Rounds:
    """Run every variant once per round, rotating the order each round so that a change of
    load during a round does not always land on the same variant. Keeps the last results.
    ``warmup``: one untimed run of each first (lazy imports, first-call caches)."""
    out = Rounds(seconds={name: [] for name in variants})
    names = list(variants)
    if warmup:
        for name in names:
            if before_each is not None:
                before_each()
            variants[name]()
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            if before_each is not None:
                before_each()
            t0 = time.perf_counter()
            value = variants[name]()
            out.seconds[name].append(time.perf_counter() - t0)
            out.results[name] = value
    return out
