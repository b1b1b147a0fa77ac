"""Whisper ASR stages: full fine-tune, LoRA or QLoRA."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from core.config.common import GateConfig, StageBase, Strict, TrainerSchedule


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
        "alone). Holds utterances x encoder positions x d_model floats in memory: for small sets. The outputs are "
        "kept in the cache folder, keyed by the encoder's weights and the audio: later stages that keep the "
        "encoder frozen read them back",
    )
    freeze_cross_attention: bool = Field(
        default=False,
        description="with cache_encoder_outputs: also freeze the decoder's cross-attention key/value projections "
        "and compute their keys and values over the encoder positions once per training utterance (a "
        "decoder step then skips the projections over 1,500 positions, most of its cost)",
    )
    eval_tokens_per_second: float | None = Field(
        default=None, gt=0,
        description="token budget of an evaluation: at most this many tokens per second of audio (+8). Default: "
        "1.3 x the 99.5th percentile of the training labels' rate. Set it to make evaluations of consecutive "
        "stages comparable: a stage's baseline on a set that the previous stage's final evaluation measured "
        "with the same model and budget is that result",
    )


class AsrTraining(TrainerSchedule):
    """Seq2SeqTrainingArguments that palier sets (current transformers names)."""

    eval_steps_required: ClassVar[bool] = False

    method: Literal["full", "lora", "qlora"] = "full"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    per_device_eval_batch_size: int | None = Field(default=None, gt=0, description="default: chosen from free memory")
    group_by_length: bool = False
    eval_strategy: Literal["no", "steps", "epoch"] = "steps"
    eval_sample: int | None = Field(
        default=None, gt=0, description="evaluate this many utterances during training; the full set at stage end"
    )
    logging_steps: int = Field(default=25, gt=0)
    load_best_model_at_end: bool = False
    metric_for_best_model: str = "wer"
    generation_max_length: int = Field(default=225, gt=0)
    generation_num_beams: int = Field(default=1, gt=0)
    preprocessing_num_workers: int | None = Field(
        default=None, gt=0, description="None: single process for small sets, spawn pool otherwise"
    )

    @model_validator(mode="after")
    def _best_model_needs_evaluations(self) -> AsrTraining:
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
        if self.whisper.freeze_cross_attention and not self.whisper.cache_encoder_outputs:
            raise ValueError(f"stage {self.name!r}: whisper.freeze_cross_attention needs whisper.cache_encoder_outputs: "
                             "true (its keys and values are computed from the cached encoder outputs)")
        return self
