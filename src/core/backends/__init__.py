"""Where a stage runs. Every backend runs the same stage runner (`python -m core.stage`)."""

from core.backends.base import Backend, get_backend

__all__ = ["Backend", "get_backend"]
