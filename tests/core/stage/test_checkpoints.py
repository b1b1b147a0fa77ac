"""``core.stage.checkpoints``: which checkpoint folders load, and what a resume does with the
ones that do not (set aside, never deleted; the newest good one wins; none left: base model).
Folders are built with the real writers (safetensors, torch.save, json), then cut as a crash
would leave them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from core.events import EventLog
from core.stage.checkpoints import (COMPLETE_MARKER, checkpoint_problem, mark_complete, resume_point)


def _checkpoint(root, step: int, marked: bool = True):
    import torch

    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": np.ones((64, 64), dtype=np.float32)}, str(folder / "model.safetensors"))
    torch.save({"state": {0: {"exp_avg": torch.ones(64, 64)}}}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if marked:
        mark_complete(folder)
    return folder


def _cut(path, keep: float = 0.5):
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def test_a_complete_checkpoint_loads(tmp_path):
    assert checkpoint_problem(_checkpoint(tmp_path, 10)) is None
    assert checkpoint_problem(_checkpoint(tmp_path, 20, marked=False)) is None  # killed before the marker


@pytest.mark.parametrize("name, expected", [
    ("model.safetensors", "model.safetensors"),
    ("optimizer.pt", "optimizer.pt"),
    ("scheduler.pt", "scheduler.pt"),
    ("trainer_state.json", "trainer_state.json"),
])
def test_a_cut_file_is_named(tmp_path, name, expected):
    folder = _checkpoint(tmp_path, 10, marked=False)
    _cut(folder / name)
    assert expected in checkpoint_problem(folder)


def test_the_marker_catches_a_file_cut_after_the_save(tmp_path):
    folder = _checkpoint(tmp_path, 10)
    with (folder / "scheduler.pt").open("ab") as fh:  # still a zip, but not what was saved
        fh.write(b"\0" * 10)
    assert "scheduler.pt holds" in checkpoint_problem(folder)


def test_a_header_cut_mid_json_and_missing_files(tmp_path):
    folder = _checkpoint(tmp_path, 10, marked=False)
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:20])
    assert "incomplete metadata" in checkpoint_problem(folder)
    (folder / "trainer_state.json").unlink()
    (folder / "model.safetensors").unlink()
    assert "no model weights" in checkpoint_problem(folder)


def test_resume_sets_aside_torn_checkpoints_and_uses_the_newest_good_one(tmp_path):
    events = EventLog(tmp_path / "events.jsonl")
    root = tmp_path / "checkpoints"
    _checkpoint(root, 10)
    _checkpoint(root, 20)
    _cut(_checkpoint(root, 30) / "model.safetensors")
    (root / "torn-checkpoint-30").mkdir()  # left by an earlier crash at the same step
    assert resume_point(root, events).name == "checkpoint-20"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-10", "checkpoint-20", "torn-checkpoint-30",
                                                      "torn-checkpoint-30.2"]
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r["checkpoint"] for r in records if r["type"] == "checkpoint_set_aside"] == ["checkpoint-30"]
    warning = next(r for r in records if r["type"] == "log")
    assert warning["level"] == "warning" and "torn-checkpoint-30.2" in warning["message"]


def test_with_no_good_checkpoint_left_the_stage_starts_from_its_base_model(tmp_path, capsys):
    events = EventLog(tmp_path / "events.jsonl")
    root = tmp_path / "checkpoints"
    _cut(_checkpoint(root, 10) / "optimizer.pt")
    assert resume_point(root, events) is None
    assert (root / "torn-checkpoint-10" / "optimizer.pt").is_file()
    assert "starts again from the base model" in capsys.readouterr().err
    assert resume_point(tmp_path / "nothing", events) is None
