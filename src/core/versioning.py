"""Inputs of a stage key that need I/O: the code version and the data digests."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from core.config.common import CsvData, FolderData, GeneratedData, HubData, JsonlData

_RESULT_AFFECTING = ("stage", "metrics", "demo", "formats", "qa")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the code that shapes a stage's results (runner, recipes, metrics, demo data)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for sub in _RESULT_AFFECTING:
        for path in sorted((root / sub).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def data_digest(source, base_dir: Path | None) -> str:
    """Cheap content identity: manifests hashed, folders listed with sizes, hub by id/split."""

    def resolve(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() or base_dir is None else base_dir / q

    if isinstance(source, (CsvData, JsonlData)):
        path = resolve(source.path)
        return _file_digest(path) if path.exists() else "missing"
    if isinstance(source, FolderData):
        root = resolve(source.path)
        if not root.exists():
            return "missing"
        listing = [(p.relative_to(root).as_posix(), p.stat().st_size) for p in sorted(root.rglob("*")) if p.is_file()]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]
    if isinstance(source, GeneratedData):
        # A generator that reads a file (a document to turn into Q/A) depends on its content.
        files = sorted(str(v) for k, v in source.params.items() if k in ("document", "chat_template"))
        content = [_file_digest(resolve(f)) if resolve(f).exists() else "missing" for f in files]
        return hashlib.sha256((source.model_dump_json() + json.dumps(content)).encode()).hexdigest()[:16]
    if isinstance(source, HubData):
        return hashlib.sha256(source.model_dump_json().encode()).hexdigest()[:16]
    return "unknown"
