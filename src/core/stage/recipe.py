"""The one small Protocol each task family implements (torchtune-style recipes).

The runner drives every family the same way: prepare -> load -> baseline -> train -> final
-> save. A recipe owns its data, model and metrics; it never calls MLflow and never decides
what happens next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.contracts import StageSpec
from core.events import EventLog


@dataclass
class EvalOutcome:
    """One eval set on one model: metrics plus the per-sample predictions table."""

    metrics: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)  # {"id", "reference", "prediction", ...}


@dataclass
class RecipeContext:
    spec: StageSpec
    out_dir: Path
    cache_dir: Path  # preprocessed data, shared across stages and reruns (content-addressed)
    events: EventLog
    device: str  # "cpu" | "cuda"
    checkpoint_dir: Path  # resume from here after a crash


class StageRecipe(Protocol):
    def prepare(self) -> dict[str, Any]:
        """Load and preprocess data; return counts kept/dropped (with named reasons)."""
        ...

    def load_model(self, model_ref: str) -> None:
        ...

    def evaluate(self, phase: str) -> dict[str, EvalOutcome]:
        """Every eval set of the stage, on the currently loaded model."""
        ...

    def train(self) -> dict[str, float]:
        """Train (resuming from ``checkpoint_dir`` when it holds a checkpoint); return summary."""
        ...

    def save(self, model_dir: Path) -> None:
        """Write a model (+ processor/tokenizer) that ``from_pretrained`` loads."""
        ...
