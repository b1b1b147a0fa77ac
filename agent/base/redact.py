"""Remove secrets from any text the agent prints, logs, stores or sends to a model.

Two layers: the exact values of the secret environment variables this process can see
(whatever their shape), and token shapes that leak through logs (HF, OpenAI, Modal, bearer
headers, ``key=value`` pairs, credentials inside URLs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "[REDACTED]"

SECRET_ENV_NAMES = (
    "OPENAI_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_HUB_TOKEN",
    "MODAL_TOKEN_ID",
    "MODAL_TOKEN_SECRET",
    "KAGGLE_KEY",
    "KAGGLE_API_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "PREFECT_API_KEY",
    "WANDB_API_KEY",
)

_SHAPES = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI-style keys
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face user tokens
    re.compile(r"\b(?:ak|as)-[A-Za-z0-9]{16,}"),  # Modal token id / secret
    re.compile(r"\bKGAT_[A-Za-z0-9]{16,}"),  # Kaggle API tokens
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-]{12,}"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@host
]
# key=value / key: value / "key": "value" where the key names a secret
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<key>["']?[A-Za-z0-9_.\-]*(?:token|secret|api[_-]?key|access[_-]?key|private[_-]?key|kaggle[_-]?key|password|passwd)["']?\s*[:=]\s*)
    (?P<quote>["']?)(?P<value>[^\s"',}]{6,})(?P=quote)
    """
)


def _env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    values = [env.get(name, "") for name in SECRET_ENV_NAMES]
    # Short values (e.g. "1") would mask ordinary text; real secrets are long.
    return sorted({v for v in values if v and len(v) >= 8}, key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    if not text:
        return text
    for value in _env_secrets(environ):
        text = text.replace(value, MASK)
    for pattern in _SHAPES:
        text = pattern.sub(MASK, text)
    return _ASSIGNMENT.sub(lambda m: f"{m.group('key')}{m.group('quote')}{MASK}{m.group('quote')}", text)


def redact_obj(obj: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Redact every string inside a JSON-like structure (dict keys are left alone)."""
    if isinstance(obj, str):
        return redact(obj, environ)
    if isinstance(obj, Mapping):
        return {k: redact_obj(v, environ) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v, environ) for v in obj]
    return obj
