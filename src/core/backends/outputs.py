"""Check downloaded stage outputs before anyone trusts them.

Some download paths save whatever the server answered under the expected file name: an older
``kaggle kernels output`` wrote an HTTP error page as if it were the file. A model or metrics file
that is really HTML must stop the flow here, not later inside MLflow or from_pretrained.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from core.backends.errors import RemoteOutputInvalid

HTML_MARKERS = (b"<!doctype html", b"<html", b"<head>", b"<body", b"<?xml")
IGNORED = {".relay.json", ".palier-remote.json"}


def looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(HTML_MARKERS) or b"<html" in text[:1024]


def safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            return "too short for a safetensors file"
        (header_len,) = struct.unpack("<Q", raw)
        if header_len <= 1 or 8 + header_len > size:
            return f"safetensors header length {header_len} does not fit a {size}-byte file"
        header = fh.read(min(header_len, 64 * 1024 * 1024))
    try:
        parsed = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "safetensors header is not JSON"
    return None if isinstance(parsed, dict) else "safetensors header is not a JSON object"


def file_problem(path: Path) -> str | None:
    with path.open("rb") as fh:
        head = fh.read(2048)
    if path.suffix in (".json", ".jsonl", ".safetensors", ".csv", ".txt", ".log", "") and looks_like_html(head):
        return "is an HTML page (an HTTP error saved as output?), not what the stage runner writes"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"is not valid JSON ({exc})"
    elif path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        # The last line may be half-written when a job was killed; every other line must parse.
        for number, line in enumerate(lines[:-1], start=1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError:
                    return f"line {number} is not JSON"
    elif path.suffix == ".safetensors":
        return safetensors_problem(path)
    return None


def output_problems(out_dir: Path, require_complete: bool) -> list[str]:
    problems = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(out_dir)
        if rel.name in IGNORED or (rel.parts and rel.parts[0] == "checkpoints"):
            continue
        problem = file_problem(path)
        if problem:
            problems.append(f"{rel.as_posix()}: {problem}")
    if require_complete:
        problems += _completeness_problems(out_dir)
    return problems


def _completeness_problems(out_dir: Path) -> list[str]:
    problems = []
    for name in ("metrics.json", "meta.json"):
        if not (out_dir / name).is_file():
            problems.append(f"{name}: missing although the job reported success")
    meta = out_dir / "meta.json"
    if meta.is_file():
        try:
            status = json.loads(meta.read_text(encoding="utf-8")).get("status")
        except json.JSONDecodeError:
            status = None
        if status != "succeeded" and not any("meta.json" in p for p in problems):
            problems.append(f"meta.json: status is {status!r}, expected 'succeeded'")
    model = out_dir / "model"
    if not (model / "config.json").is_file() and not (model / "adapter_config.json").is_file():
        problems.append("model/config.json: missing; the trained model was not saved or not downloaded")
    elif not any(model.glob("*.safetensors")) and not any(model.glob("*.bin")):
        problems.append("model/: no weights file (*.safetensors or *.bin)")
    return problems


def validate_outputs(out_dir: Path, require_complete: bool, where: str) -> None:
    problems = output_problems(out_dir, require_complete)
    if problems:
        listing = "\n  - ".join(problems)
        raise RemoteOutputInvalid(
            f"outputs downloaded from {where} into {out_dir} are not usable:\n  - {listing}\n"
            "Download them again (fetch is safe to repeat); if a file is an HTML page, the service "
            "answered with an error page instead of the file."
        )
