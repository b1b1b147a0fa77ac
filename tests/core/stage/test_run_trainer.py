"""``run_trainer``, the end of every family's ``train()``: a graceful cancellation stops at a
step with a checkpoint and raises ``Cancelled``; the next run resumes from that checkpoint and
finishes the schedule, setting aside a newest checkpoint that a crash left torn. Runs a real (tiny) Trainer on the CPU."""

from __future__ import annotations

import json

import pytest

from core.config.common import TrainerSchedule
from core.events import EventLog

pytestmark = pytest.mark.integration


def _trainer(checkpoint_dir, events, stop_at: int | None, save_steps: int | None = None):
    import torch
    from torch import nn
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from core.stage.cancel import CANCEL
    from core.stage.trainer_args import EXPLICIT_COLUMNS, EventsCallback, shared_arguments

    class Regression(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, features, labels=None):
            out = self.linear(features).squeeze(-1)
            return {"loss": nn.functional.mse_loss(out, labels), "logits": out}

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 32

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            x = torch.randn(4, generator=g)
            return {"features": x, "labels": x.sum()}

    class CancelAt(TrainerCallback):  # what SIGTERM does in the stage runner: set the flag
        def on_step_begin(self, args, state, control, **kwargs):
            if stop_at is not None and state.global_step == stop_at:
                CANCEL.set()

    schedule = TrainerSchedule(max_steps=6, per_device_train_batch_size=4, learning_rate=0.05, logging_steps=1,
                               save_steps=save_steps)
    args = TrainingArguments(**shared_arguments(schedule, checkpoint_dir, "cpu", eval_batch_size=4,
                                                activation_checkpointing=False), **EXPLICIT_COLUMNS)
    callback = EventsCallback(events)
    torch.manual_seed(0)
    return Trainer(model=Regression(), args=args, train_dataset=Data(), callbacks=[CancelAt(), callback]), callback


def test_cancel_checkpoints_then_rerun_resumes(tmp_path):
    from core.stage.cancel import CANCEL, Cancelled
    from core.stage.checkpoints import last_checkpoint
    from core.stage.trainer_args import run_trainer

    checkpoints = tmp_path / "checkpoints"
    events = EventLog(tmp_path / "events.jsonl")
    trainer, _ = _trainer(checkpoints, events, stop_at=2)
    try:
        with pytest.raises(Cancelled, match="cancelled at step 3"):
            run_trainer(trainer, checkpoints, events)
    finally:
        CANCEL.clear()
    assert last_checkpoint(checkpoints).name == "checkpoint-3"

    trainer, callback = _trainer(checkpoints, events, stop_at=None)
    summary = run_trainer(trainer, checkpoints, events)
    events.close()
    assert summary["global_step"] == 6.0 and "train_loss" in summary
    assert callback.last_logged(("loss",)).keys() == {"last_logged_loss"}
    messages = [json.loads(line).get("message", "") for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert "resuming training from checkpoint-3" in messages


def test_rerun_sets_aside_a_torn_checkpoint_and_resumes_from_the_previous_one(tmp_path):
    from core.stage.cancel import CANCEL, Cancelled
    from core.stage.checkpoints import COMPLETE_MARKER, checkpoint_problem
    from core.stage.trainer_args import run_trainer

    checkpoints = tmp_path / "checkpoints"
    events = EventLog(tmp_path / "events.jsonl")
    trainer, _ = _trainer(checkpoints, events, stop_at=3, save_steps=2)
    try:
        with pytest.raises(Cancelled, match="cancelled at step 4"):
            run_trainer(trainer, checkpoints, events)
    finally:
        CANCEL.clear()
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert all((checkpoints / name / COMPLETE_MARKER).is_file() for name in ("checkpoint-2", "checkpoint-4"))
    weights = checkpoints / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # what a crash mid-save leaves
    assert "model.safetensors" in checkpoint_problem(checkpoints / "checkpoint-4")

    trainer, _ = _trainer(checkpoints, events, stop_at=None, save_steps=2)
    summary = run_trainer(trainer, checkpoints, events)
    events.close()
    assert summary["global_step"] == 6.0
    torn = checkpoints / "torn-checkpoint-4"
    assert checkpoint_problem(torn) is not None  # kept for inspection, never deleted
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    aside = [r for r in records if r["type"] == "checkpoint_set_aside"]
    assert [a["checkpoint"] for a in aside] == ["checkpoint-4"] and "model.safetensors" in aside[0]["reason"]
    assert "resuming training from checkpoint-2" in [r.get("message", "") for r in records]
    assert checkpoint_problem(checkpoints / "checkpoint-6") is None
