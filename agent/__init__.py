"""palier's agent: playbooks -> preflight rules, failure diagnosis, safe remedies, chat.

Subpackages, one arrow direction: ``chat`` -> ``diagnosis`` -> ``rules`` -> ``playbooks`` ->
``base`` (a package imports only those to its right).

Public API (what the flow calls)::

    from agent import (collect_env_facts, preflight, diagnose, diagnose_run_dir, safe_remedy,
                       is_stalled, heartbeat_from_file, heartbeat_from_events, log_text_from_events)

Importing ``agent`` is cheap: torch, transformers, mlflow, prefect and openai are imported
only inside the functions that need them.
"""

from agent.diagnosis.diagnose import Diagnosis, diagnose, read_log
from agent.base.facts import EnvFacts, collect_env_facts
from agent.diagnosis.heartbeat import (
    HeartbeatFacts,
    heartbeat_from_events,
    heartbeat_from_file,
    heartbeat_from_log_age,
    is_stalled,
    log_text_from_events,
    read_events,
)
from agent.playbooks.parse import PlaybookError, PlaybookSet, load_playbooks
from agent.rules import load_checked_playbooks
from agent.rules.preflight import Change, Finding, PreflightReport, preflight
from agent.base.redact import redact
from agent.diagnosis.remedies import safe_remedy
from agent.diagnosis.run_dir import diagnose_run_dir, facts_from_run_dir

__all__ = [
    "Change",
    "Diagnosis",
    "EnvFacts",
    "Finding",
    "HeartbeatFacts",
    "PlaybookError",
    "PlaybookSet",
    "PreflightReport",
    "collect_env_facts",
    "diagnose",
    "diagnose_run_dir",
    "facts_from_run_dir",
    "heartbeat_from_events",
    "heartbeat_from_file",
    "heartbeat_from_log_age",
    "is_stalled",
    "load_checked_playbooks",
    "load_playbooks",
    "log_text_from_events",
    "preflight",
    "read_events",
    "read_log",
    "redact",
    "safe_remedy",
]
