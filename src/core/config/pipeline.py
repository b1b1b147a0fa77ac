"""The pipeline: an ordered chain of stages, each fine-tuning the previous stage's output.

Inheritance (nanochat-style): ``defaults`` holds any stage key; each stage starts from a deep
copy of the defaults and its own keys override (dicts merge, lists and scalars replace).
Top-level ``backend`` is shorthand for ``defaults.backend``. The merge happens before
validation, so an error names the stage and the field as the user wrote it.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from core.config.asr import AsrStage
from core.config.common import Strict
from core.config.sft import SftStage
from core.config.token_cls import TokenClsStage

StageConfig = Annotated[AsrStage | TokenClsStage | SftStage, Field(discriminator="family")]

FAMILIES = ("asr", "token_cls", "sft")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class TrackingConfig(Strict):
    experiment: str | None = Field(default=None, description="MLflow experiment; default: the pipeline name")
    log_models: bool = True


class BudgetConfig(Strict):
    """A run whose estimate (core.cost) is above either bound is refused before it starts."""

    usd: float | None = Field(default=None, gt=0)
    gpu_hours: float | None = Field(default=None, gt=0)


class PipelineConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    family: Literal["asr", "token_cls", "sft"]
    base_model: str = Field(min_length=1, description="hub id or local path of the model the first stage starts from")
    language: str = "french"
    task: Literal["transcribe", "translate"] = "transcribe"
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    budget: BudgetConfig | None = None
    prices: dict[Literal["local", "modal", "kaggle"], dict[str, float]] = Field(
        default_factory=dict, description="USD per GPU hour by backend and GPU, over core.cost's dated table")
    stages: list[StageConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        defaults = raw.pop("defaults", None) or {}
        if not isinstance(defaults, dict):
            raise ValueError("defaults must be a mapping of stage keys")
        if "backend" in raw:
            defaults = deep_merge({"backend": raw.pop("backend")}, defaults)
        family = raw.get("family")
        stages = raw.get("stages")
        if isinstance(stages, list):
            merged = []
            for stage in stages:
                if isinstance(stage, dict):
                    stage = deep_merge(defaults, stage)
                    if family is not None:
                        stage.setdefault("family", family)
                merged.append(stage)
            raw["stages"] = merged
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        outputs = [s.output_name for s in self.stages]
        if len(set(outputs)) != len(outputs):
            raise ValueError(f"stage output_name values must be unique, got {outputs}")
        for stage in self.stages:
            if stage.family != self.family:
                raise ValueError(f"stage {stage.name!r} is {stage.family!r} but the pipeline is {self.family!r}")
        return self

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or f"palier/{self.name}"
