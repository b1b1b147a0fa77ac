"""Stage keys: a stage is "the same" when its resolved config, its upstream stage's key, its
data and the runner's code are the same (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stage_key(
    stage: Mapping[str, Any],
    context: Mapping[str, Any],
    upstream_key: str | None,
    data_digests: Mapping[str, str],
    code_version: str,
) -> str:
    payload = {
        "stage": stage,
        "context": context,
        "upstream": upstream_key,
        "data": dict(data_digests),
        "code": code_version,
    }
    return hashlib.sha256(canonical(payload).encode("utf-8")).hexdigest()[:16]
