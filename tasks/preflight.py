"""preflight_task: the Prefect task that runs the agent's playbook rules (``agent.rules.preflight``)
before any compute is paid for."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import get_run_logger, task

from core.config.pipeline import PipelineConfig


class PreflightBlocked(RuntimeError):
    """A blocking rule failed: a finding with its fixes, reported as such and never as a traceback."""


class _BlockedWithoutTraceback(logging.Filter):
    """Prefect's engine re-raises a Failed flow state's exception at the end of a deployment run
    and logs it with its traceback ("Engine execution exited with unexpected exception"). For a
    blocked preflight that exception is the report the flow already logged: keep one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PreflightBlocked):
            record.msg, record.args = "the flow run ends Failed: preflight blocked it (the findings and fixes are above)", ()
            record.exc_info, record.exc_text = None, None
        return True


def quiet_blocked_preflight() -> None:
    """Install the filter on Prefect's flow-run logger (idempotent)."""
    flow_runs = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(f, _BlockedWithoutTraceback) for f in flow_runs.filters):
        flow_runs.addFilter(_BlockedWithoutTraceback())


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
        logger.info(line if line.startswith("preflight") else f"preflight: {line}")
    if report.changes:
        logger.warning(f"preflight: {len(report.changes)} autofix(es) applied; recorded in preflight/report.json")
    if not report.findings:
        logger.info(f"preflight: every applicable rule passed for {config.name}")
    return report
