"""The Trainer wiring every family shares: one set of ``TrainingArguments`` keyword arguments
built from a ``TrainerSchedule``, and one way to run a built trainer (resume, train, honour a
cancellation, summarise).

Each family passes the result to its own arguments class (``Seq2SeqTrainingArguments``,
``TrainingArguments`` or TRL's ``SFTConfig``, which all inherit ``TrainingArguments``) and adds
only the fields that class has or that the family sets differently.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from core.config.common import TrainerSchedule
from core.events import EventLog
from core.stage.cancel import CANCEL, Cancelled
from core.stage.checkpoints import CompletionCallback, resume_point

FALLBACK_SAVE_STEPS = 500  # eval_strategy "steps" without eval_steps (the Trainer then evaluates every logging_steps)


def save_schedule(t: TrainerSchedule) -> dict[str, Any]:
    """When checkpoints are written, the same rule for every family.

    - ``save_steps`` set: every ``save_steps`` steps;
    - evaluation every N steps: a checkpoint at each evaluation (``load_best_model_at_end`` needs
      the two to line up);
    - otherwise one per epoch, so that a crashed or cancelled run can resume.
    """
    if t.save_steps:
        return {"save_strategy": "steps", "save_steps": t.save_steps}
    if t.eval_strategy == "steps":
        return {"save_strategy": "steps", "save_steps": t.eval_steps or FALLBACK_SAVE_STEPS}
    return {"save_strategy": "epoch"}


def shared_arguments(t: TrainerSchedule, checkpoint_dir: Path, device: str, *,
                     eval_batch_size: int, activation_checkpointing: bool) -> dict[str, Any]:
    """The ``TrainingArguments`` keyword arguments palier sets the same way for every family.

    ``activation_checkpointing``: whether the Trainer should enable it on the module it trains
    (a family decides: the token classifier's frozen backbone keeps no activations)."""
    on_gpu = device == "cuda"
    return {
        "output_dir": str(checkpoint_dir),
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "per_device_eval_batch_size": eval_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "learning_rate": t.learning_rate,
        "warmup_steps": t.warmup_steps,
        "lr_scheduler_type": t.lr_scheduler_type,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "max_steps": t.max_steps or -1,
        "num_train_epochs": t.num_train_epochs,
        # Set explicitly: TRL's SFTConfig would default bf16 and gradient checkpointing to true.
        "fp16": t.fp16 and on_gpu,
        "bf16": t.bf16 and on_gpu,
        "activation_checkpointing": activation_checkpointing,
        "eval_strategy": t.eval_strategy,
        "eval_steps": t.eval_steps,
        **save_schedule(t),
        "save_total_limit": t.save_total_limit,
        "logging_steps": t.logging_steps,
        "seed": t.seed,
        "use_cpu": not on_gpu,
        "report_to": "none",  # palier's orchestrator owns the MLflow run lifecycle
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


class EventsCallback(TrainerCallback):
    """Relays trainer logs to events.jsonl (live curves) and honours graceful cancellation."""

    def __init__(self, events: EventLog):
        self.events = events
        self.last_logs: dict[str, float] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            numeric = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            if numeric:
                self.last_logs.update(numeric)
                self.events.metric(state.global_step, numeric)

    def on_step_end(self, args, state, control, **kwargs):
        self.events.progress(state.global_step, state.max_steps)
        if CANCEL.is_set():
            control.should_save = True
            control.should_training_stop = True
        return control

    def last_logged(self, keys: tuple[str, ...]) -> dict[str, float]:
        """The last logged value of each of ``keys`` that was logged, as ``last_logged_<key>``."""
        return {f"last_logged_{key}": self.last_logs[key] for key in keys if key in self.last_logs}


# Recipes whose batches carry only what the model's forward takes, labelled "labels".
EXPLICIT_COLUMNS = {"remove_unused_columns": False, "label_names": ["labels"]}


def run_trainer(trainer, checkpoint_dir: Path, events: EventLog) -> dict[str, float]:
    """Train (from the newest checkpoint in ``checkpoint_dir`` that loads, when there is one)
    and return the Trainer's numeric metrics plus ``global_step``. A cancellation raises
    ``Cancelled`` after the Trainer saved a checkpoint (see ``EventsCallback``). Each checkpoint
    is marked complete once saved (``core.stage.checkpoints``)."""
    trainer.add_callback(CompletionCallback())
    resume = resume_point(checkpoint_dir, events)
    if resume:
        events.log(f"resuming training from {resume.name}")
        print(f"palier: resuming training from {resume}", file=sys.stderr, flush=True)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if CANCEL.is_set():
        raise Cancelled(f"cancelled at step {trainer.state.global_step}; checkpoint saved for resume")
    summary = {k: float(v) for k, v in output.metrics.items() if isinstance(v, (int, float))}
    summary["global_step"] = float(trainer.state.global_step)
    return summary


def parameter_summary(total: int, trainable: int) -> dict[str, float]:
    return {"total_parameters": float(total), "trainable_parameters": float(trainable),
            "trainable_share": trainable / total}
