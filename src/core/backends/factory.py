"""Which backend runs a stage: ``backend.kind`` -> a Backend instance.

Kept apart from ``core.backends.base`` so that the backends import only the contract they
implement and this module alone knows every backend (imported lazily: Modal's and Kaggle's
client libraries load only when a stage runs there).
"""

from __future__ import annotations

from core.backends.base import Backend


def get_backend(kind: str, **options) -> Backend:
    if kind == "local":
        from core.backends.local import LocalBackend

        return LocalBackend(**options)
    if kind == "modal":
        from core.backends.modal.backend import ModalBackend

        return ModalBackend(**options)
    if kind == "kaggle":
        from core.backends.kaggle.backend import KaggleBackend

        return KaggleBackend(**options)
    raise ValueError(f"unknown backend {kind!r}: expected local, modal or kaggle")
