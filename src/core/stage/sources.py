"""Data sources -> speech records (id, audio reference, transcript).

Relative paths in a pipeline file are resolved against the pipeline file's folder.
Hub datasets are read with ``Audio(decode=False)``: palier decodes audio itself (no
torchcodec beside the CPU torch; see core.stage.audio).
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path

from core.config.common import CsvData, FolderData, GeneratedData, HubData, JsonlData


class DataSourceError(ValueError):
    pass


@dataclass(frozen=True)
class SpeechRecord:
    id: str
    audio: str | bytes  # a path, or encoded bytes (hub datasets without local files)
    text: str


def resolve_path(path: str, base_dir: Path | None) -> Path:
    p = Path(os.path.expanduser(path))
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p


def speech_records(source, base_dir: Path | None, cache_dir: Path) -> list[SpeechRecord]:
    if isinstance(source, GeneratedData):
        from core.demo.datasets import generate

        produced = generate(source.generator, dict(source.params), cache_dir)
        if produced.is_dir():  # the audio/ + rapports/ layout, read and split as kind: folder
            return _from_folder(FolderData(path=str(produced), part=source.part or "train",
                                           test_fraction=source.test_fraction), None)
        if source.part:
            raise DataSourceError(f"generator {source.generator} writes a CSV manifest, not a folder: "
                                  "remove 'part' (it selects a side of a folder's 80/20 split)")
        return _from_csv(CsvData(path=str(produced)), None)
    if isinstance(source, CsvData):
        return _from_csv(source, base_dir)
    if isinstance(source, FolderData):
        return _from_folder(source, base_dir)
    if isinstance(source, HubData):
        return _from_hub(source)
    if isinstance(source, JsonlData):
        raise DataSourceError(f"{source.path}: JSON Lines data is for token classification and SFT, not ASR")
    raise DataSourceError(f"unsupported data source {source!r}")


DOCUMENT_PARAMS = ("document",)  # generator params naming a file (resolved like data paths)


def jsonl_file(source, base_dir: Path | None, cache_dir: Path, family: str) -> tuple[Path, int | None]:
    """Token-classification and SFT data: the JSON Lines file a source designates, and its
    ``max_samples``. Generated sources are produced (and cached) first; a generator param that
    names a document is resolved against the pipeline file's folder and its content hash joins
    the cache key, so an edited document is regenerated."""
    if isinstance(source, JsonlData):
        path = resolve_path(source.path, base_dir)
        if not path.exists():
            raise DataSourceError(f"{path}: JSON Lines file not found (data.path in the pipeline file)")
        return path, source.max_samples
    if isinstance(source, GeneratedData):
        import hashlib

        from core.demo.datasets import generate

        params = dict(source.params)
        for key in DOCUMENT_PARAMS:
            if isinstance(params.get(key), str):
                doc = resolve_path(params[key], base_dir)
                if not doc.is_file():
                    raise DataSourceError(f"{doc}: document not found (params.{key} of generator {source.generator})")
                params[key] = str(doc)
                params[f"{key}_sha256"] = hashlib.sha256(doc.read_bytes()).hexdigest()[:16]
        return generate(source.generator, params, cache_dir), None
    kind = getattr(source, "kind", type(source).__name__)
    raise DataSourceError(f"{family} stages read JSON Lines (kind: jsonl) or generated data, not kind: {kind}")


def _from_csv(source: CsvData, base_dir: Path | None) -> list[SpeechRecord]:
    path = resolve_path(source.path, base_dir)
    if not path.exists():
        raise DataSourceError(f"{path}: CSV manifest not found (data.path in the pipeline file)")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {source.audio_column, source.text_column} - set(reader.fieldnames or [])
        if missing:
            raise DataSourceError(
                f"{path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}. "
                f"Expected a header like 'audio,sentence' (or set audio_column/text_column)"
            )
        records = []
        for line, row in enumerate(reader, start=2):
            audio = resolve_path(row[source.audio_column] or "", path.parent)
            records.append(SpeechRecord(id=f"{path.name}:{line}", audio=str(audio), text=(row[source.text_column] or "").strip()))
    return records[: source.max_samples] if source.max_samples else records


def _from_folder(source: FolderData, base_dir: Path | None) -> list[SpeechRecord]:
    root = resolve_path(source.path, base_dir)
    audio_dir, text_dir = root / "audio", root / "rapports"
    if not audio_dir.is_dir() or not text_dir.is_dir():
        raise DataSourceError(f"{root}: expected sub-folders audio/ (N.wav) and rapports/ (N.txt), one transcript per recording")
    records = []
    for audio in sorted(audio_dir.iterdir()):
        if audio.suffix.lower() not in {".wav", ".flac", ".ogg", ".opus", ".mp3"}:
            continue
        text_file = text_dir / f"{audio.stem}.txt"
        text = text_file.read_text(encoding="utf-8").strip() if text_file.exists() else ""
        records.append(SpeechRecord(id=f"{root.name}/{audio.name}", audio=str(audio), text=text))
    # A seeded shuffle, then a cut (80/20, seed 42 by default): every run gets the same two sides.
    order = list(range(len(records)))
    random.Random(source.seed).shuffle(order)
    n_test = round(len(records) * source.test_fraction)
    if source.part == "all":
        chosen = list(range(len(records)))
    else:
        chosen = sorted(order[:n_test]) if source.part == "test" else sorted(order[n_test:])
    picked = [records[i] for i in chosen]
    return picked[: source.max_samples] if source.max_samples else picked


def _from_hub(source: HubData) -> list[SpeechRecord]:
    try:
        from datasets import Audio, load_dataset
    except ImportError as exc:  # pragma: no cover - datasets is a dependency
        raise DataSourceError(f"datasets is not installed: {exc}") from None
    try:
        ds = load_dataset(source.id, source.config, split=source.split, streaming=source.streaming)
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = (
            "HF_HUB_OFFLINE=1 is set and the dataset is not in the local cache: run once with network, "
            "or use a local CSV/folder source"
            if offline
            else "check the id/config/split, your network and HF_TOKEN for gated datasets"
        )
        raise DataSourceError(f"hub dataset {source.id} ({source.config}, {source.split}): {exc}. {hint}") from None
    ds = ds.cast_column(source.audio_column, Audio(decode=False))
    records = []
    for i, row in enumerate(ds):
        if source.max_samples and i >= source.max_samples:
            break
        audio = row[source.audio_column]
        ref = audio.get("path") if audio.get("path") and Path(audio["path"]).exists() else audio.get("bytes")
        records.append(SpeechRecord(id=f"{source.id}:{source.split}:{i}", audio=ref, text=str(row[source.text_column]).strip()))
    return records
