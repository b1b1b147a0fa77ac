"""What a model reference in a pipeline names: a Hugging Face hub id, or something local."""

from __future__ import annotations

import re

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_NOT_HUB_PREFIXES = ("stage:", "/", "./", "../", "~")


def is_hub_id(ref: str | None, local_paths: dict[str, bool]) -> bool:
    """``owner/name`` that is neither a previous stage, a path, nor a folder found here."""
    if not ref or ref.startswith(_NOT_HUB_PREFIXES):
        return False
    if local_paths.get(ref):
        return False
    return bool(HUB_ID.match(ref))
