"""The token classifier's modules and decoding: a linear head over a backbone's hidden states
(of one layer or several, concatenated), and BIO-constrained Viterbi decoding of its scores."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LinearHead(nn.Module):
    """Dropout + one linear layer over hidden states; cross-entropy ignoring -100."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden_states: torch.Tensor, labels: torch.Tensor | None = None, **_: Any) -> dict:
        logits = self.classifier(self.dropout(hidden_states.to(self.classifier.weight.dtype)))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                      ignore_index=-100)
        return out


def backbone_hidden(backbone: nn.Module, input_ids, attention_mask, layers: list[int]) -> torch.Tensor:
    """Hidden states of the chosen layers, concatenated on the last dimension."""
    if layers == [-1]:
        return backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    states = backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
    return torch.cat([states[i] for i in layers], dim=-1)


class BackboneTokenClassifier(nn.Module):
    """Backbone + head for training on token ids. A frozen backbone is held outside the module
    tree (no gradients, not in checkpoints: the Trainer only sees and saves the head)."""

    def __init__(self, backbone: nn.Module, head: LinearHead, frozen: bool, layers: list[int]):
        super().__init__()
        self.head = head
        self.frozen = frozen
        self.layers = list(layers)
        if frozen:
            object.__setattr__(self, "_backbone", backbone)
        else:
            self.backbone = backbone

    @property
    def encoder(self) -> nn.Module:
        return self._backbone if self.frozen else self.backbone

    def hidden(self, input_ids, attention_mask) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                return backbone_hidden(self.encoder, input_ids, attention_mask, self.layers)
        return backbone_hidden(self.encoder, input_ids, attention_mask, self.layers)

    def forward(self, input_ids, attention_mask, labels=None, **_: Any) -> dict:
        return self.head(self.hidden(input_ids, attention_mask), labels)

    def activation_checkpointing_enable(self, **kwargs: Any) -> None:
        """What the Trainer calls for ``activation_checkpointing``: the backbone holds the layers."""
        self.encoder.activation_checkpointing_enable(**kwargs)


def bio_transitions(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(start allowed [L], transition allowed [L, L]) for IOB2: I-X only after B-X or I-X."""
    n = len(labels)
    start = torch.tensor([not x.startswith("I-") for x in labels])
    trans = torch.ones(n, n, dtype=torch.bool)
    for j, cur in enumerate(labels):
        if cur.startswith("I-"):
            for i, prev in enumerate(labels):
                trans[i, j] = prev[2:] == cur[2:] and prev[:2] in ("B-", "I-")
    return start, trans


def bio_viterbi(log_probs: torch.Tensor, start: torch.Tensor, trans: torch.Tensor) -> list[int]:
    """Most probable label sequence (sum of per-word log-probabilities) among valid IOB2 ones."""
    neg = torch.tensor(float("-inf"))
    score = torch.where(start, log_probs[0], neg)
    back = []
    for t in range(1, len(log_probs)):
        cand = score.unsqueeze(1) + torch.where(trans, 0.0, neg)  # [prev, cur]
        best, idx = cand.max(0)
        back.append(idx)
        score = best + log_probs[t]
    path = [int(score.argmax())]
    for idx in reversed(back):
        path.append(int(idx[path[-1]]))
    return path[::-1]
