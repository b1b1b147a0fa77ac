"""A stage's ``search:`` block: which training fields to vary, over what, with which sampler.

    search:
      parameters:
        training.learning_rate: {low: 1.0e-4, high: 1.0e-3, log: true}
        training.warmup_steps: {low: 0, high: 40, step: 10}
        training.lora.r: {choices: [8, 16, 32]}
        whisper.freeze_encoder: {choices: [true, false]}
      sampler: tpe          # tpe | random | grid
      trials: 4
      parallel: 2           # trials running at the same time
      keep_trials: false    # the losers' folders (checkpoints) are deleted

A parameter is a dotted path to a field of the stage (``training.learning_rate``); each trial is
the stage with those fields set. The paths and values are checked against the stage's own schema
(core.config.pipeline validates them with the stage), so a typo is refused before any trial.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from core.config.strict import Strict

Choice = bool | int | float | str

# Fields that name or wire the stage: varying them would not be a trial of the same stage.
NOT_SEARCHABLE = ("name", "description", "output_name", "family", "search", "train", "evals", "backend", "gate")


class ParamSpace(Strict):
    """Either a range (``low``/``high``, optional ``step`` or ``log``) or a list of ``choices``."""

    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = Field(default=None, gt=0)
    log: bool = False
    choices: list[Choice] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpace:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("give either choices or a range (low/high), not both")
            if not self.choices:
                raise ValueError("choices is empty: list at least one value")
            if len({repr(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"choices has duplicates: {self.choices}")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or give choices: [...])")
        if not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna samples a log range continuously)")
        return self

    @property
    def is_int(self) -> bool:
        ends = (self.low, self.high) + ((self.step,) if self.step is not None else ())
        return self.choices is None and all(isinstance(v, int) and not isinstance(v, bool) for v in ends)

    def grid_values(self) -> list[Choice] | None:
        """The finite values a grid walks, or None for a continuous range."""
        if self.choices is not None:
            return list(self.choices)
        if self.step is None:
            return None
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        values = [self.low + i * self.step for i in range(count)]
        return [int(v) for v in values] if self.is_int else [round(v, 12) for v in values]

    def samples(self) -> list[Choice]:
        """Values that stand for the space when the stage's schema checks it (ends, every choice)."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


class SearchConfig(Strict):
    parameters: dict[str, ParamSpace] = Field(min_length=1, description="dotted stage field -> range or choices")
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    trials: int = Field(gt=0, le=1000)
    parallel: int = Field(default=1, gt=0, description="trials running at the same time")
    keep_trials: bool = Field(default=False, description="keep the losing trials' folders (checkpoints)")
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        if self.parallel > self.trials:
            raise ValueError(f"parallel ({self.parallel}) is more than trials ({self.trials}): "
                             f"lower parallel to {self.trials} at most")
        if self.sampler == "grid":
            size = 1
            for path, space in self.parameters.items():
                values = space.grid_values()
                if values is None:
                    raise ValueError(f"parameters.{path}: sampler grid needs choices or a range with step")
                size *= len(values)
            if self.trials > size:
                raise ValueError(f"trials ({self.trials}) is more than the grid's {size} combinations: "
                                 f"set trials to {size} at most")
        return self

    def grid(self) -> dict[str, list[Choice]]:
        return {path: space.grid_values() or [] for path, space in self.parameters.items()}


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict (the stage's JSON dump), creating the mappings on the way."""
    *parents, leaf = path.split(".")
    node = raw
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def unknown_path(model: type[BaseModel], path: str) -> str | None:
    """Why ``path`` is not a searchable field of ``model`` (None when it is one)."""
    parts = path.split(".")
    if parts[0] in NOT_SEARCHABLE:
        return f"{parts[0]!r} names or wires the stage and cannot be searched"
    current: Any = model
    for depth, part in enumerate(parts):
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return f"{'.'.join(parts[:depth])!r} has no sub-fields"
        if part not in fields:
            where = ".".join(parts[:depth]) or "the stage"
            known = ", ".join(sorted(fields))
            return f"unknown parameter: {where} has no field {part!r} (fields: {known})"
        current = _model_of(fields[part].annotation)
    if getattr(current, "model_fields", None) is not None:
        return f"{path!r} is a group of settings: name one of its fields ({', '.join(sorted(current.model_fields))})"
    return None


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``), else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation
