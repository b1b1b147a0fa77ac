"""Typed, JSON-serialisable contracts that cross a process or machine boundary.

StageSpec   plan -> orchestrator -> stage runner (spec.json)
JobHandle   backend.submit -> orchestrator (recorded so a restarted flow can reattach)
JobStatus   backend.poll -> orchestrator
StageResult stage runner's metrics.json/meta.json, read back by the orchestrator
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.config.pipeline import StageConfig


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageSpec(Contract):
    """Everything the stage runner needs, resolved: no defaults left to look up."""

    pipeline: str
    index: int
    name: str
    family: str
    language: str
    task: str
    base_model: str = Field(description="what this stage starts from: hub id, local path, or stage output")
    upstream_stage: str | None = Field(description="the stage whose output this one fine-tunes (None: the original)")
    stage: StageConfig
    key: str = Field(description="fingerprint: resolved config + upstream key + data + code version")
    pipeline_file: str | None = None

    def with_base_model(self, base_model: str) -> StageSpec:
        return self.model_copy(update={"base_model": base_model})

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> StageSpec:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


class JobHandle(Contract):
    backend: Literal["local", "modal", "kaggle", "fake"]
    job_id: str
    out_dir: str = Field(description="where the outputs are (local) or will be fetched to")
    submitted_at: float
    details: dict[str, Any] = Field(default_factory=dict)


class JobStatus(Contract):
    state: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    message: str = ""
    exit_code: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")


class EvalResult(Contract):
    name: str
    role: str
    baseline: dict[str, float]
    final: dict[str, float]
    samples: int
    baseline_from: str | None = Field(
        default=None, description="the stage whose final evaluation is this baseline (same model, same measurement)")


class StageResult(Contract):
    """metrics.json written by the stage runner at the end of a successful stage."""

    stage: str
    key: str
    base_model: str
    evals: list[EvalResult]
    train: dict[str, float] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict, description="counts kept / dropped with reasons")
    timings_s: dict[str, float] = Field(default_factory=dict)
    model_dir: str = "model"
    exported: dict[str, Any] | None = None

    def eval(self, name: str) -> EvalResult:
        return next(e for e in self.evals if e.name == name)
