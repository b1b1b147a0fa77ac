"""Preflight: the agent's playbook rules, before any compute is paid for."""

from __future__ import annotations

from prefect import get_run_logger, task

from core.config.pipeline import PipelineConfig
from core.contracts import StageSpec


class PreflightBlocked(RuntimeError):
    pass


@task(name="preflight", task_run_name="preflight: playbook rules")
def preflight(config: PipelineConfig, specs: list[StageSpec]) -> tuple[PipelineConfig, list[StageSpec]]:
    logger = get_run_logger()
    logger.info(f"preflight: {config.name} ({len(specs)} stages) — agent rules not wired yet")
    return config, specs
