"""The playbooks: Markdown parsed into rules, known failures, next steps and sections
(``parse``, ``models``), keyword retrieval over the sections (``retrieval``) and a section as a
cited sentence (``answers``). Imports only ``agent.base``: the rules' check table is passed in."""

from agent.playbooks.parse import PlaybookError, PlaybookSet, load_playbooks, parse_playbook

__all__ = ["PlaybookError", "PlaybookSet", "load_playbooks", "parse_playbook"]
