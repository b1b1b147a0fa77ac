"""Training checkpoints a crash cannot leave half-used: which one a rerun resumes from.

The Trainer writes ``checkpoint-N/`` file by file; a kill or a full disk in the middle leaves a
folder that looks like a checkpoint and does not load (a cut ``model.safetensors``, an optimizer
file without its zip directory, an empty ``trainer_state.json``). Two defences:

- ``CompletionCallback`` writes ``COMPLETE_MARKER`` (the size of every file) into the folder once
  the Trainer has saved all of it: a folder without it was never finished, or was cut later;
- ``resume_point`` checks the checkpoints newest first, sets aside the ones that do not load
  (renamed ``torn-checkpoint-N``, never deleted, so they can still be inspected) and returns the
  newest good one, or None: the stage then trains from its base model.

The checks read headers and zip directories only (milliseconds even for a large-v3 optimizer
state), never the tensors.
"""

from __future__ import annotations

import json
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from core.events import EventLog

COMPLETE_MARKER = "palier-complete.json"
SET_ASIDE_PREFIX = "torn-"
PREFIX = "checkpoint-"
_TORCH_FILES = (".pt", ".pth", ".bin")
_WEIGHTS = ("*.safetensors", "*.bin")


def checkpoints_newest_first(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]), reverse=True)


def last_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder, good or not (``resume_point`` checks it)."""
    return next(iter(checkpoints_newest_first(folder)), None)


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file does not load, from its header alone: the 8-byte header length,
    the JSON header, and the end of the last tensor against the file size."""
    size = path.stat().st_size
    if size < 8:
        return f"{path.name} holds {size} bytes, less than a safetensors header"
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if 8 + n > size:
            return f"{path.name}: header of {n} bytes but the file holds {size} (incomplete metadata)"
        try:
            header = json.loads(fh.read(n))
        except ValueError as exc:
            return f"{path.name}: header is not JSON ({exc})"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and "data_offsets" in t]
    needed = 8 + n + max(ends, default=0)
    if needed > size:
        return f"{path.name} holds {size} bytes, its header describes {needed} (cut while being written)"
    return None


def torch_file_problem(path: Path) -> str | None:
    """torch.save writes a zip archive whose directory is at the end: a cut file has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return f"{path.name} is not a complete torch file ({exc})"
    return None


def json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return f"{path.name} is not valid JSON ({exc})"
    return None


def marker_problem(folder: Path) -> str | None:
    """A checkpoint marked complete whose files no longer have the sizes the marker recorded."""
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return None
    try:
        sizes = json.loads(marker.read_text(encoding="utf-8"))["sizes"]
    except (ValueError, KeyError, TypeError):
        return f"{COMPLETE_MARKER} is not readable"
    for name, size in sizes.items():
        path = folder / name
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            return f"{name} holds {actual if actual is not None else 'no'} bytes, {size} were saved"
    return None


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from (the first problem found), or None when it can."""
    if not any(any(folder.glob(pattern)) for pattern in _WEIGHTS):
        return "no model weights (model.safetensors, adapter_model.safetensors or pytorch_model.bin)"
    if not (folder / "trainer_state.json").is_file():
        return "no trainer_state.json"
    problem = marker_problem(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if problem:
            break
        if path.suffix == ".safetensors":
            problem = safetensors_problem(path)
        elif path.suffix in _TORCH_FILES:
            problem = torch_file_problem(path)
        elif path.suffix == ".json":
            problem = json_problem(path)
    return problem


def _aside_name(folder: Path) -> Path:
    target = folder.with_name(SET_ASIDE_PREFIX + folder.name)
    n = 2
    while target.exists():
        target = folder.with_name(f"{SET_ASIDE_PREFIX}{folder.name}.{n}")
        n += 1
    return target


@dataclass(frozen=True)
class SetAside:
    checkpoint: str
    moved_to: Path
    reason: str

    def message(self) -> str:
        return (f"checkpoint {self.checkpoint} does not load ({self.reason}); set aside as "
                f"{self.moved_to} (not deleted), resuming from the previous good checkpoint")


def resume_point(folder: Path, events: EventLog) -> Path | None:
    """The newest checkpoint that loads; each newer one that does not is renamed aside and
    reported (stage log, events: the orchestrator relays them to Prefect and MLflow)."""
    for checkpoint in checkpoints_newest_first(folder):
        reason = checkpoint_problem(checkpoint)
        if reason is None:
            return checkpoint
        aside = SetAside(checkpoint.name, _aside_name(checkpoint), reason)
        checkpoint.rename(aside.moved_to)
        print(f"WARNING palier: {aside.message()}", file=sys.stderr, flush=True)
        events.log(aside.message(), level="warning")
        events.emit("checkpoint_set_aside", checkpoint=aside.checkpoint, moved_to=str(aside.moved_to),
                    reason=reason)
    if any(folder.glob(f"{SET_ASIDE_PREFIX}{PREFIX}*")):
        message = "no checkpoint left that loads: training starts again from the base model"
        print(f"WARNING palier: {message}", file=sys.stderr, flush=True)
        events.log(message, level="warning")
    return None


def mark_complete(folder: Path) -> None:
    """Record every file's size, written to a temporary name and renamed: the marker itself
    is never half-written."""
    sizes = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != COMPLETE_MARKER}
    tmp = folder / f".{COMPLETE_MARKER}.tmp"
    tmp.write_text(json.dumps({"sizes": sizes}), encoding="utf-8")
    tmp.replace(folder / COMPLETE_MARKER)


class CompletionCallback(TrainerCallback):
    """Marks each checkpoint complete once the Trainer has saved all of it (``on_save`` runs
    after the model, optimizer, scheduler, RNG and trainer state were written)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX}{state.global_step}"
            if folder.is_dir():
                mark_complete(folder)
        return control
