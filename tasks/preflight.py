"""preflight_task: the Prefect task that runs the agent's playbook rules (``agent.rules.preflight``)
before any compute is paid for."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from core.config.pipeline import PipelineConfig


class PreflightBlocked(RuntimeError):
    pass


@task(name="preflight", task_run_name="preflight: playbook rules")
def preflight_task(config: PipelineConfig, pipeline_file: str):
    """Returns the agent's report; its ``config`` carries the autofixes. Raises when a
    blocking rule fails, with the rule ids, playbook sections and fixes."""
    from agent import collect_env_facts
    from agent import preflight as run_rules

    logger = get_run_logger()
    facts = collect_env_facts(config, base_dir=Path(pipeline_file).parent)
    report = run_rules(config, facts)
    for line in report.lines():
        logger.info(f"preflight: {line}")
    if report.changes:
        logger.warning(f"preflight: {len(report.changes)} autofix(es) applied; recorded in preflight/report.json")
    if not report.findings:
        logger.info(f"preflight: every applicable rule passed for {config.name}")
    return report
