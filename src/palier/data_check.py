"""`palier data check MANIFEST.csv`: does every file load, and what is it? Before any training."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from core.stage.audio import AudioError, inspect_audio

MAX_WHISPER_WINDOW_S = 30.0


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


def check_manifest(manifest: Path, window_s: float = MAX_WHISPER_WINDOW_S) -> list[FileReport]:
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    reports: list[FileReport] = []
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"audio", "sentence"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{manifest}: missing column(s) {sorted(missing)}; found {reader.fieldnames}. "
                             "The header must be 'audio,sentence' (seed 001 layout)")
        for line, row in enumerate(reader, start=2):
            raw = (row.get("audio") or "").strip()
            path = Path(raw) if Path(raw).is_absolute() else manifest.parent / raw
            report = FileReport(line=line, audio=raw, ok=False)
            if not raw:
                report.problem = "empty audio path"
                reports.append(report)
                continue
            try:
                info = inspect_audio(path)
            except AudioError as exc:
                report.problem = str(exc).split(": ", 1)[-1]
                reports.append(report)
                continue
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
            reports.append(report)
    return reports


def as_dicts(reports: list[FileReport]) -> list[dict]:
    return [asdict(r) for r in reports]
