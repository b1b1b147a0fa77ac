"""Training data before any training: generate a chat set from a document, check a JSON Lines
set line by line, check that every audio file of a speech manifest loads.

torch-free: the CLI imports this module; the formats and the audio inspection are numpy only.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_WHISPER_WINDOW_S = 30.0
DATASET_FORMATS = ("messages", "token_cls", "auto")


# -- chat training sets -------------------------------------------------------------------
def generate_training_file(document: Path, output: Path, method: str = "rule-based", count: int = 0,
                           split: bool = False, seed: int = 42, language: str = "fr", system: str | None = None,
                           llm_base_url: str | None = None, llm_model: str | None = None) -> dict[str, Any]:
    """Write OUTPUT (or OUTPUT_{train,val,test}.jsonl with ``split``) from a document's sections.

    Returns ``{"report": generation report, "files": {part: (path, examples)}}``."""
    from core.formats.messages import split_examples, write_messages
    from core.qa import generate_training, parse_document

    _title, sections = parse_document(document)
    llm = None
    if method == "llm-based":
        from core.qa.llm_generation import generation_client

        llm = generation_client(llm_base_url, llm_model)
    examples, report = generate_training(sections, method, count or None, seed, language, system=system, llm=llm)
    written: dict[str, Any] = {"report": report.as_dict(), "files": {}}
    if split:
        for part, items in split_examples(examples, seed).items():
            path = output.with_name(f"{output.stem}_{part}{output.suffix or '.jsonl'}")
            write_messages(path, items)
            written["files"][part] = (str(path), len(items))
    else:
        write_messages(output, examples)
        written["files"]["all"] = (str(output), len(examples))
    return written


# -- JSON Lines sets (sft messages, token_cls) ----------------------------------------------
def _sniff_format(path: Path) -> str:
    """``messages`` when the first record has a ``messages`` key, else ``token_cls``."""
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for raw in fh:
                if raw.strip():
                    first = json.loads(raw)
                    return "messages" if isinstance(first, dict) and "messages" in first else "token_cls"
    except (OSError, ValueError):
        return "messages"  # let the reader report the problem with its line number
    return "token_cls"


def check_dataset(path: Path, fmt: str = "auto") -> dict[str, Any]:
    """Validate a JSON Lines dataset; raises ``DatasetError`` (every bad line, numbered)."""
    from core.formats.messages import load_messages
    from core.formats.token_cls import label_counts, load_examples

    if fmt not in DATASET_FORMATS:
        raise ValueError(f"unknown format {fmt!r}: messages, token_cls or auto")
    if fmt == "auto":
        fmt = _sniff_format(path)
    if fmt == "messages":
        chats = load_messages(path)
        return {"format": "messages", "examples": len(chats),
                "with_system": sum(ex.messages[0]["role"] == "system" for ex in chats)}
    examples = load_examples(path)
    return {"format": "token_cls", "examples": len(examples), "entities": label_counts(examples)}


# -- speech manifests (audio,sentence CSV) ------------------------------------------------
@dataclass
class FileReport:
    line: int
    audio: str
    ok: bool
    format: str = ""
    subtype: str = ""
    sample_rate: int = 0
    channels: int = 0
    duration_s: float = 0.0
    problem: str = ""


def _check_row(manifest: Path, line: int, row: dict[str, str], window_s: float) -> FileReport:
    from core.stage.audio import AudioError, inspect_audio

    raw = (row.get("audio") or "").strip()
    report = FileReport(line=line, audio=raw, ok=False)
    if not raw:
        report.problem = "empty audio path"
        return report
    path = Path(raw) if Path(raw).is_absolute() else manifest.parent / raw
    try:
        info = inspect_audio(path)
    except AudioError as exc:
        report.problem = str(exc).split(": ", 1)[-1]
        return report
    report.format, report.subtype = info.format, info.subtype
    report.sample_rate, report.channels, report.duration_s = info.sample_rate, info.channels, round(info.duration_s, 3)
    problems = []
    if not (row.get("sentence") or "").strip():
        problems.append("empty transcript")
    if info.duration_s > window_s:
        problems.append(f"longer than the {window_s:.0f}s window (would be dropped)")
    if info.duration_s == 0:
        problems.append("no samples")
    report.problem = "; ".join(problems)
    report.ok = not problems
    return report


def check_manifest(manifest: Path, window_s: float = MAX_WHISPER_WINDOW_S) -> list[FileReport]:
    """One report per manifest line: does the audio load, what is it, and what is wrong with it.
    Raises FileNotFoundError / ValueError for a manifest that cannot be read at all."""
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"audio", "sentence"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{manifest}: missing column(s) {sorted(missing)}; found {reader.fieldnames}. "
                             "The header must be 'audio,sentence', with audio paths relative to the manifest")
        return [_check_row(manifest, line, row, window_s) for line, row in enumerate(reader, start=2)]


def as_dicts(reports: list[FileReport]) -> list[dict]:
    return [asdict(r) for r in reports]
