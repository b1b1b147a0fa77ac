"""Preflight: the playbook rules evaluated on every stage before a GPU is paid for; the named
checks behind them (``checks``, ``config_checks``, ``check_table``) and the stage view they read
(``context``). Imports ``agent.playbooks`` and ``agent.base``, never diagnosis or chat."""

from __future__ import annotations

from pathlib import Path

from agent.playbooks.parse import PlaybookSet, load_playbooks


def load_checked_playbooks(directory: str | Path | None = None) -> PlaybookSet:
    """The playbooks, with every rule's named check verified against the check table."""
    from agent.rules.checks import CHECKS

    return load_playbooks(directory, checks=CHECKS)
