"""PipelineConfig -> ordered StageSpecs: who starts from whose output (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from core.config.common import Strict
from core.config.pipeline import PipelineConfig
from core.contracts import StageSpec
from core.fingerprint import stage_key

from core.model_refs import STAGE_PREFIX as STAGE_OUTPUT_PREFIX


def plan(
    config: PipelineConfig,
    code_version: str,
    data_digest: Callable[[Strict], str] | None = None,
    pipeline_file: str | None = None,
) -> list[StageSpec]:
    """Stage 1 starts from ``config.base_model``; stage N from stage N-1's output, never the
    original: each stage refines what the previous one learned. ``base_model`` of a later stage is ``stage:<name>`` until the
    orchestrator resolves it to the upstream output's location."""
    specs: list[StageSpec] = []
    upstream_key: str | None = None
    upstream_name: str | None = None
    for index, stage in enumerate(config.stages):
        base = config.base_model if upstream_name is None else f"{STAGE_OUTPUT_PREFIX}{upstream_name}"
        digests: Mapping[str, str] = {}
        if data_digest is not None:
            digests = {"train": data_digest(stage.train)} | {
                f"eval:{e.name}": data_digest(e.data) for e in stage.evals
            }
        key = stage_key(
            stage=stage.model_dump(mode="json"),
            context={"pipeline": config.name, "language": config.language, "task": config.task, "base": base},
            upstream_key=upstream_key,
            data_digests=digests,
            code_version=code_version,
        )
        specs.append(
            StageSpec(
                pipeline=config.name,
                index=index,
                name=stage.name,
                family=stage.family,
                language=config.language,
                task=config.task,
                base_model=base,
                upstream_stage=upstream_name,
                stage=stage,
                key=key,
                pipeline_file=pipeline_file,
            )
        )
        upstream_key, upstream_name = key, stage.name
    return specs


def upstream_of(base_model: str) -> str | None:
    return base_model[len(STAGE_OUTPUT_PREFIX):] if base_model.startswith(STAGE_OUTPUT_PREFIX) else None
