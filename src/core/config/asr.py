"""Whisper ASR stages (seeds 000, 001, 003): full fine-tune, LoRA or QLoRA."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.config.common import GateConfig, StageBase, Strict


class LoraSettings(Strict):
    r: int = Field(default=32, gt=0)
    alpha: int = Field(default=64, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


class WhisperSettings(Strict):
    chunk_length: int = Field(
        default=30, gt=0, le=30,
        description="audio window in seconds; real checkpoints use 30, the CPU demo 6",
    )
    max_label_tokens: int | None = Field(
        default=None, gt=0, description="drop longer labels; default: the model's max_target_positions (448)"
    )
    freeze_encoder: bool = False
    cache_encoder_outputs: bool = Field(
        default=False,
        description="with freeze_encoder and method full: run the encoder once per utterance and reuse its "
        "outputs for training and for the baseline and final evaluations (a training step is then the decoder "
        "alone). Holds utterances x encoder positions x d_model floats in memory: for small sets",
    )


class AsrTraining(Strict):
    """Seq2SeqTrainingArguments that palier sets (current transformers names)."""

    method: Literal["full", "lora", "qlora"] = "full"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    max_steps: int | None = Field(default=None, gt=0)
    num_train_epochs: float = Field(default=1.0, gt=0)
    per_device_train_batch_size: int = Field(default=16, gt=0)
    per_device_eval_batch_size: int | None = Field(default=None, gt=0, description="default: chosen from free memory")
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    learning_rate: float = Field(default=1e-5, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    lr_scheduler_type: str = "linear"
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    fp16: bool = False
    bf16: bool = False
    gradient_checkpointing: bool = False
    group_by_length: bool = False
    eval_strategy: Literal["no", "steps", "epoch"] = "steps"
    eval_steps: int | None = Field(default=None, gt=0)
    eval_sample: int | None = Field(
        default=None, gt=0, description="evaluate this many utterances during training; the full set at stage end"
    )
    save_steps: int | None = Field(default=None, gt=0)
    save_total_limit: int = Field(default=2, gt=0)
    logging_steps: int = Field(default=25, gt=0)
    load_best_model_at_end: bool = False
    metric_for_best_model: str = "wer"
    generation_max_length: int = Field(default=225, gt=0)
    generation_num_beams: int = Field(default=1, gt=0)
    preprocessing_num_workers: int | None = Field(
        default=None, gt=0, description="None: single process for small sets, spawn pool otherwise"
    )
    seed: int = 42
    cpu_threads: int | None = Field(
        default=None, gt=0,
        description="torch threads on CPU (None: torch's default). On a machine shared with other jobs "
        "fewer threads can be faster: waiting threads spin",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AsrTraining:
        if self.fp16 and self.bf16:
            raise ValueError("fp16 and bf16 are both true: choose one (seed 000 uses fp16)")
        if self.load_best_model_at_end and self.eval_strategy == "no":
            raise ValueError("load_best_model_at_end needs eval_strategy 'steps' or 'epoch'")
        return self


class ExportSettings(Strict):
    format: Literal["ct2"] = "ct2"
    quantization: Literal["int8", "int16", "float16", "float32"] = "int8"
    verify_samples: int = Field(default=8, gt=0)


class AsrStage(StageBase):
    family: Literal["asr"] = "asr"
    lexicon: str | None = Field(default=None, description="medical-term lexicon, one term per line")
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)
    training: AsrTraining = Field(default_factory=AsrTraining)
    gate: GateConfig = Field(default_factory=GateConfig)
    export: ExportSettings | None = None

    @model_validator(mode="after")
    def _encoder_cache_needs_frozen_encoder(self) -> AsrStage:
        if self.whisper.cache_encoder_outputs:
            if not self.whisper.freeze_encoder:
                raise ValueError(f"stage {self.name!r}: whisper.cache_encoder_outputs needs whisper.freeze_encoder: true "
                                 "(cached outputs are only valid while the encoder does not change)")
            if self.training.method != "full":
                raise ValueError(f"stage {self.name!r}: whisper.cache_encoder_outputs needs training.method: full "
                                 f"(got {self.training.method}: LoRA/QLoRA adapters would change the encoder)")
        return self
