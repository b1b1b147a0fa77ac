"""Sentences as the token classifier trains on them: sub-word encoding with label alignment
(a word's tag on its first sub-token; -100 elsewhere unless every sub-token is trained), the
datasets over token ids or precomputed backbone features, and their collators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from core.formats.token_cls import TokenExample


@dataclass
class Encoded:
    """One sentence after tokenisation: token ids, the positions trained on, and for each
    kept word the index (into ``positions``) of its first sub-token."""

    example: TokenExample
    input_ids: list[int]
    positions: list[int]  # token positions that carry a label
    position_tags: list[str]  # tag per position
    word_first: list[int]  # per kept word: index into positions
    truncated_words: int


@dataclass
class EncodedSet:
    name: str
    items: list[Encoded]
    features: list[torch.Tensor] | None = None  # per sentence: (len(positions), hidden) float16
    counts: dict[str, Any] = field(default_factory=dict)


def encode(examples: list[TokenExample], tokenizer, max_length: int, label_all_subtokens: bool) -> list[Encoded]:
    out: list[Encoded] = []
    for start in range(0, len(examples), 256):
        chunk = examples[start : start + 256]
        enc = tokenizer([ex.tokens for ex in chunk], is_split_into_words=True, truncation=True, max_length=max_length)
        for i, ex in enumerate(chunk):
            word_ids = enc.word_ids(i)
            positions: list[int] = []
            tags: list[str] = []
            word_first: list[int] = []
            previous = None
            for pos, w in enumerate(word_ids):
                if w is None:
                    continue
                if w != previous:
                    word_first.append(len(positions))
                    positions.append(pos)
                    tags.append(ex.tags[w])
                elif label_all_subtokens:
                    tag = ex.tags[w]
                    positions.append(pos)
                    tags.append("I-" + tag[2:] if tag != "O" else "O")
                previous = w
            out.append(Encoded(ex, list(enc["input_ids"][i]), positions, tags, word_first,
                               len(ex.tokens) - len(word_first)))
    return out


class FeatureDataset(torch.utils.data.Dataset):
    def __init__(self, encoded: EncodedSet, label2id: dict[str, int]):
        self.features = encoded.features
        self.labels = [torch.tensor([label2id.get(t, -100) for t in item.position_tags], dtype=torch.long)
                       for item in encoded.items]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"hidden_states": self.features[i], "labels": self.labels[i]}


def collate_features(batch: list[dict]) -> dict[str, torch.Tensor]:
    width = max(1, max(len(b["labels"]) for b in batch))
    hidden = batch[0]["hidden_states"].shape[-1]
    states = torch.zeros(len(batch), width, hidden, dtype=torch.float32)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, b in enumerate(batch):
        n = len(b["labels"])
        if n:
            states[row, :n] = b["hidden_states"].float()
            labels[row, :n] = b["labels"]
    return {"hidden_states": states, "labels": labels}


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, encoded: EncodedSet, label2id: dict[str, int]):
        self.items = encoded.items
        self.label2id = label2id

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        labels = [-100] * len(item.input_ids)
        for pos, tag in zip(item.positions, item.position_tags):
            labels[pos] = self.label2id.get(tag, -100)
        return {"input_ids": item.input_ids, "labels": labels}


class TokenCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.tensor(b["input_ids"])
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(b["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
