"""Supervised fine-tuning stages: a causal LM learns question/answer pairs
with TRL's SFTTrainer, LoRA by default.

Data is ``messages`` JSON Lines (``{"messages": [{"role": "system"|"user"|"assistant",
"content": "..."}]}``, validated line by line, see ``core.formats.messages``), or a generated
source (``generator: sft_catalogue`` / ``document_qa``) that turns a markdown/JSONL document into
such examples with a seeded 80/10/10 split. The last assistant message of each example is the
completion (the loss and the evaluation target); everything before it is the prompt, rendered
with the tokenizer's chat template.

Stage output: ``model/`` holds the **merged** model (LoRA folded into the weights) + tokenizer
with its chat template, so the next stage and ``palier query`` load it like any checkpoint;
``adapter/`` beside it holds the LoRA adapter alone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from core.config.common import GateConfig, StageBase, Strict, TrainerSchedule
from core.config.gates import check_gate, fill_gate_direction

# metric -> greater is better (what the recipe reports for every eval set)
SFT_METRICS = {"token_f1": True, "exact_match": True, "mean_token_accuracy": True, "eval_loss": False}


class SftLora(Strict):
    r: int = Field(default=16, gt=0, description="adapter rank")
    alpha: int = Field(default=32, gt=0, description="scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="module names to adapt, or 'all-linear' (every linear layer but the output head)",
    )
    modules_to_save: list[str] = Field(
        default_factory=list, description="modules trained in full beside the adapter (e.g. lm_head)"
    )


class SftGeneration(Strict):
    """How held-out questions are answered at evaluation time (greedy by default: reproducible)."""

    max_new_tokens: int = Field(default=64, gt=0)
    temperature: float = Field(default=0.0, ge=0, description="0 = greedy decoding")
    batch_size: int = Field(default=16, gt=0)


class SftTraining(TrainerSchedule):
    """SFTConfig fields that palier sets (TRL 1.x names)."""

    method: Literal["lora", "full"] = "lora"
    lora: SftLora = Field(default_factory=SftLora)
    num_train_epochs: float = Field(default=3.0, gt=0)
    per_device_train_batch_size: int = Field(default=4, gt=0)
    per_device_eval_batch_size: int = Field(default=8, gt=0)
    learning_rate: float = Field(default=2e-4, gt=0)
    max_length: int = Field(default=512, gt=8, description="tokens per example (SFTConfig.max_length); longer ones are truncated")
    packing: bool = False


def _sft_gate() -> GateConfig:
    return GateConfig(metric="token_f1", greater_is_better=True)


class SftStage(StageBase):
    family: Literal["sft"] = "sft"
    chat_template: str | None = Field(
        default=None,
        description="a .jinja file (relative to the pipeline file) replacing the tokenizer's chat template; "
        "default: the tokenizer's own",
    )
    generation: SftGeneration = Field(default_factory=SftGeneration)
    training: SftTraining = Field(default_factory=SftTraining)
    gate: GateConfig = Field(default_factory=_sft_gate)

    @model_validator(mode="before")
    @classmethod
    def _gate_direction(cls, raw: Any) -> Any:
        return fill_gate_direction(raw, SFT_METRICS)

    @model_validator(mode="after")
    def _gate_metric_known(self) -> SftStage:
        check_gate(self.gate, SFT_METRICS)
        return self
