"""The agent's question about a model reference: is it a Hugging Face hub id? (core.model_refs
owns the kinds of references.)"""

from __future__ import annotations

from core.model_refs import HUB_ID, ref_kind

__all__ = ["HUB_ID", "is_hub_id"]


def is_hub_id(ref: str | None, local_paths: dict[str, bool]) -> bool:
    """``owner/name`` that is neither a previous stage, a path, nor a folder found here."""
    return bool(ref) and ref_kind(ref, local_exists=bool(local_paths.get(ref))) == "hub"
