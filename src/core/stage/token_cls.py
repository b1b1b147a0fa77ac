"""Token-classification recipe (seed 002): any ``AutoModel`` backbone, frozen, plus a trainable
linear head; entity-level F1 (seqeval), a confusion-matrix picture and an error-analysis table.

Label alignment: sentences come as words (``core.formats.token_cls``), are tokenised with
``is_split_into_words=True`` (a fast tokenizer's ``word_ids``), and **a word's first sub-token
carries the word's tag; its other sub-tokens get -100**, ignored by the loss and by evaluation,
which reads one prediction per word at its first sub-token. With ``label_all_subtokens: true``
the other sub-tokens are trained too (``I-`` of the word's type). Words cut off by ``max_length``
are predicted ``O`` (counted as misses) and reported as ``truncated_words``.

Speed: with a frozen backbone the hidden states never change, so (``precompute_features``,
default) the backbone runs once per sentence and the head trains on the stored vectors of the
labelled positions; the HF Trainer then trains a ~10k-parameter module (checkpoints are tiny).

Model folder (``save``), what the next stage and ``load_model`` read:
    palier_token_cls.json   format, backbone reference, labels / label2id / id2label, settings
    head.safetensors        the linear head (no pickle)
    tokenizer files         the backbone's tokenizer
    backbone/               only when the backbone was trained (freeze_backbone: false) or was
                            itself such a saved folder
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, Trainer, TrainingArguments

from core.config.token_cls import TokenClsStage
from core.formats.token_cls import TokenExample, bio_labels, label_counts, load_examples, normalise_label_list
from core.metrics.token_cls import confusion, entity_metrics, entity_type, plot_confusion, span_errors
from core.stage.cancel import CANCEL, Cancelled, check_cancel
from core.stage.family_common import (
    EventsCallback,
    ModelRefError,
    last_checkpoint,
    load_error_hint,
    parameter_counts,
    portable_ref,
    resolve_model_ref,
    set_cpu_threads,
)
from core.stage.recipe import EvalOutcome, RecipeContext
from core.stage.sources import jsonl_file

META_FILE = "palier_token_cls.json"
HEAD_FILE = "head.safetensors"
FORMAT_VERSION = 1


# -- model --------------------------------------------------------------------------------
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


# -- data ---------------------------------------------------------------------------------
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


# -- recipe -------------------------------------------------------------------------------
class TokenClsRecipe:
    def __init__(self, ctx: RecipeContext):
        self.ctx = ctx
        self.stage: TokenClsStage = ctx.spec.stage
        self.base_dir = Path(ctx.spec.pipeline_file).resolve().parent if ctx.spec.pipeline_file else None
        self.settings = self.stage.token_cls
        self.training = self.stage.training
        set_cpu_threads(ctx.device, self.training.cpu_threads)
        self.tokenizer = None
        self.backbone: nn.Module | None = None
        self.backbone_ref: str | None = None  # as recorded in the saved model
        self.backbone_saved_copy = False  # the backbone must be written into model/backbone
        self.head: LinearHead | None = None
        self.labels: list[str] = []
        self.train_set: EncodedSet | None = None
        self.eval_sets: dict[str, EncodedSet] = {}
        self.layers: list[int] = [-1]

    # -- references -------------------------------------------------------------------------
    def _upstream_meta(self, model_ref: str) -> tuple[Path, dict] | None:
        try:
            folder = Path(resolve_model_ref(model_ref, self.base_dir))
        except ModelRefError:
            return None
        meta = folder / META_FILE
        if meta.is_file():
            data = json.loads(meta.read_text(encoding="utf-8"))
            if data.get("format_version", 0) > FORMAT_VERSION:
                raise RuntimeError(f"{meta}: written by a newer palier (format {data['format_version']})")
            return folder, data
        return None

    def _backbone_location(self, model_ref: str) -> tuple[str, str, bool]:
        """(loadable path or id, reference to record, copy needed)."""
        upstream = self._upstream_meta(model_ref)
        if upstream is None:
            return resolve_model_ref(model_ref, self.base_dir), portable_ref(model_ref, self.base_dir), False
        folder, meta = upstream
        ref = meta["backbone"]
        if ref == "backbone":  # a trained backbone saved inside the upstream folder
            return str(folder / "backbone"), str(folder / "backbone"), True
        return resolve_model_ref(ref, None), ref, False

    def _load_tokenizer(self, location: str, tokenizer_dir: str | None = None):
        source = tokenizer_dir or location
        try:
            tok = AutoTokenizer.from_pretrained(source)
        except OSError as exc:
            raise ModelRefError(load_error_hint(source, exc)) from None
        if not getattr(tok, "is_fast", False):
            raise RuntimeError(f"{source}: token classification needs a fast tokenizer (word_ids) for label alignment")
        try:
            tok([["a", "b"]], is_split_into_words=True)
        except Exception:  # byte-level BPE (RoBERTa, GPT-2 style) wants add_prefix_space for pre-split words
            tok = AutoTokenizer.from_pretrained(source, add_prefix_space=True)
        if tok.pad_token is None:  # decoder backbones (Mistral, Llama) have none
            tok.pad_token = tok.eos_token or tok.unk_token
        return tok

    # -- data -------------------------------------------------------------------------------
    def _examples(self, source, label: str) -> list[TokenExample]:
        path, max_samples = jsonl_file(source, self.base_dir, self.ctx.cache_dir, "token_cls")
        examples = load_examples(path, max_samples)
        self.ctx.events.log(f"{label}: {len(examples)} sentences from {path}")
        return examples

    def prepare(self) -> dict[str, Any]:
        ref = self.ctx.spec.base_model
        location, _rec, _copy = self._backbone_location(ref)
        upstream = self._upstream_meta(ref)
        self.tokenizer = self._load_tokenizer(location, str(upstream[0]) if upstream else None)
        s = self.settings

        def prep(source, name: str) -> EncodedSet:
            examples = self._examples(source, name)
            items = encode(examples, self.tokenizer, s.max_length, s.label_all_subtokens)
            truncated = sum(1 for it in items if it.truncated_words)
            counts = {"kept": len(items), "words": sum(len(it.example.tokens) for it in items),
                      "entities": label_counts(examples),
                      "dropped": {}, "truncated_sentences": truncated,
                      "truncated_words": sum(it.truncated_words for it in items)}
            if truncated:
                self.ctx.events.log(f"{name}: {truncated} sentence(s) longer than max_length {s.max_length} tokens: "
                                    "their last words are predicted O", "warning")
            return EncodedSet(name, items, counts=counts)

        self.train_set = prep(self.stage.train, "train")
        report = {"train": self.train_set.counts}
        for ev in self.stage.evals:
            self.eval_sets[ev.name] = prep(ev.data, f"eval:{ev.name}")
            report[f"eval:{ev.name}"] = self.eval_sets[ev.name].counts
        return report

    # -- model ------------------------------------------------------------------------------
    def _label_list(self, upstream_labels: list[str] | None) -> list[str]:
        train_types = sorted({t for it in self.train_set.items for t in it.example.entity_types})
        if self.settings.labels:
            wanted = normalise_label_list(list(self.settings.labels))
            unknown = sorted({t for t in train_types if f"B-{t}" not in wanted})
            if unknown:
                raise ValueError(f"training data holds entity types {unknown} missing from token_cls.labels "
                                 f"{self.settings.labels}: add them or remove labels to take the data's types")
        else:
            wanted = bio_labels(train_types)
        if not upstream_labels:
            return wanted
        labels = list(upstream_labels)
        added = [x for x in wanted if x not in labels]
        if added:
            self.ctx.events.log(f"labels added to the upstream head: {added} (new rows start untrained)", "warning")
        return labels + added

    def load_model(self, model_ref: str) -> None:
        location, recorded, copy = self._backbone_location(model_ref)
        upstream = self._upstream_meta(model_ref)
        t = self.training
        on_gpu = self.ctx.device == "cuda"
        dtype = torch.float16 if (t.fp16 and on_gpu) else torch.bfloat16 if (t.bf16 and on_gpu) else torch.float32
        if (t.fp16 or t.bf16) and not on_gpu:
            self.ctx.events.log("fp16/bf16 apply on GPU only: the backbone runs in float32 on CPU", "warning")
        try:
            backbone = AutoModel.from_pretrained(location, dtype=dtype)
        except OSError as exc:
            raise ModelRefError(load_error_hint(location, exc)) from None
        frozen = self.settings.freeze_backbone
        backbone.requires_grad_(not frozen)
        if frozen:
            backbone.eval()
            if t.gradient_checkpointing:
                self.ctx.events.log("gradient_checkpointing ignored: the frozen backbone keeps no activations "
                                    "for backward", "warning")
        elif t.gradient_checkpointing:
            enable = getattr(backbone, "activation_checkpointing_enable", None) or backbone.gradient_checkpointing_enable
            enable()
        self.backbone = backbone.to(self.ctx.device)
        self.backbone_ref, self.backbone_saved_copy = recorded, copy
        self.layers = list(self.settings.hidden_layers)
        if upstream is not None and upstream[1].get("hidden_layers", [-1]) != self.layers:
            raise ValueError(f"{upstream[0]}: its head reads hidden_layers {upstream[1].get('hidden_layers', [-1])} "
                             f"but this stage sets {self.layers}: use the same token_cls.hidden_layers in every stage")
        depth = backbone.config.num_hidden_layers
        bad = [i for i in self.layers if not -(depth + 1) <= i <= depth]
        if bad:
            raise ValueError(f"token_cls.hidden_layers {bad} out of range: the backbone has {depth} layers "
                             f"(0 = embeddings, {depth} or -1 = last)")
        hidden = backbone.config.hidden_size * len(self.layers)
        self.labels = self._label_list(upstream[1]["labels"] if upstream else None)
        torch.manual_seed(t.seed)
        head = LinearHead(hidden, len(self.labels), self.settings.dropout)
        if upstream is not None:
            state = load_file(str(upstream[0] / HEAD_FILE))
            old = state["classifier.weight"].shape[0]
            if state["classifier.weight"].shape[1] != hidden:
                raise RuntimeError(f"{upstream[0]}: head expects hidden size {state['classifier.weight'].shape[1]}, "
                                   f"backbone has {hidden}")
            with torch.no_grad():
                head.classifier.weight[:old] = state["classifier.weight"]
                head.classifier.bias[:old] = state["classifier.bias"]
            self.ctx.events.log(f"head loaded from {upstream[0]} ({old} labels)")
        self.head = head.to(self.ctx.device)
        total, trainable = parameter_counts(self.backbone, self.head)
        self.ctx.events.log(f"backbone {recorded}: {total:,} parameters, {trainable:,} trainable "
                            f"({trainable / total:.3%}); {len(self.labels)} labels")
        self._params = (total, trainable)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    # -- features ---------------------------------------------------------------------------
    def _use_features(self) -> bool:
        return self.settings.freeze_backbone and self.settings.precompute_features

    @torch.inference_mode()
    def _hidden_states(self, encoded: EncodedSet) -> list[torch.Tensor]:
        """Backbone hidden states at the labelled positions of each sentence (batched by length)."""
        items = encoded.items
        order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
        size = self.training.per_device_eval_batch_size
        pad = self.tokenizer.pad_token_id
        out: list[torch.Tensor | None] = [None] * len(items)
        self.backbone.eval()
        for start in range(0, len(order), size):
            check_cancel(f"backbone features ({encoded.name})")
            batch = order[start : start + size]
            width = max(len(items[i].input_ids) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                n = len(items[i].input_ids)
                ids[row, :n] = torch.tensor(items[i].input_ids)
                mask[row, :n] = 1
            hidden = backbone_hidden(self.backbone, ids.to(self.ctx.device), mask.to(self.ctx.device), self.layers)
            for row, i in enumerate(batch):
                out[i] = hidden[row, items[i].positions].to("cpu", torch.float16).clone()
            self.ctx.events.progress(min(start + size, len(order)), len(order))
        return out  # type: ignore[return-value]

    def _ensure_features(self, encoded: EncodedSet) -> None:
        if encoded.features is None:
            t0 = time.perf_counter()
            encoded.features = self._hidden_states(encoded)
            self.ctx.events.log(f"{encoded.name}: backbone features for {len(encoded.items)} sentences "
                                f"in {time.perf_counter() - t0:.1f}s")

    # -- evaluation -------------------------------------------------------------------------
    @torch.inference_mode()
    def _position_logits(self, encoded: EncodedSet) -> list[torch.Tensor]:
        self.head.eval()
        if self._use_features():
            self._ensure_features(encoded)
            return [self.head(f.to(self.ctx.device).float())["logits"].cpu() for f in encoded.features]
        model = BackboneTokenClassifier(self.backbone, self.head, self.settings.freeze_backbone, self.layers)
        model.eval()
        collate = TokenCollator(self.tokenizer.pad_token_id)
        items = encoded.items
        out: list[torch.Tensor] = []
        size = self.training.per_device_eval_batch_size
        for start in range(0, len(items), size):
            check_cancel(f"evaluation ({encoded.name})")
            chunk = items[start : start + size]
            batch = collate([{"input_ids": it.input_ids, "labels": [-100] * len(it.input_ids)} for it in chunk])
            logits = model(batch["input_ids"].to(self.ctx.device), batch["attention_mask"].to(self.ctx.device))["logits"].cpu()
            out.extend(logits[row, it.positions] for row, it in enumerate(chunk))
        return out

    def predict(self, encoded: EncodedSet) -> list[list[str]]:
        """One tag per word, read at the word's first sub-token (``decoding``: argmax or BIO
        Viterbi); words cut off by max_length are O."""
        logits = self._position_logits(encoded)
        viterbi = self.settings.decoding == "bio_viterbi"
        allowed = bio_transitions(self.labels) if viterbi else None
        predictions = []
        for item, lg in zip(encoded.items, logits):
            words = lg[item.word_first] if len(lg) else lg
            if not len(words):
                ids: list[int] = []
            elif viterbi:
                ids = bio_viterbi(torch.log_softmax(words.float(), -1), *allowed)
            else:
                ids = words.argmax(-1).tolist()
            predictions.append([self.labels[i] for i in ids] + ["O"] * item.truncated_words)
        return predictions

    def evaluate(self, phase: str) -> dict[str, EvalOutcome]:
        outcomes: dict[str, EvalOutcome] = {}
        artifacts = self.ctx.out_dir / "artifacts"
        known = {entity_type(x) for x in self.labels} - {"O"}
        for ev in self.stage.evals:
            encoded = self.eval_sets[ev.name]
            t0 = time.perf_counter()
            predictions = self.predict(encoded)
            seconds = time.perf_counter() - t0
            references = [it.example.tags for it in encoded.items]
            metrics = entity_metrics(references, predictions)
            metrics["eval_seconds"] = round(seconds, 3)
            unknown = sorted({entity_type(t) for r in references for t in r} - known - {"O"})
            if unknown:
                self.ctx.events.log(f"{ev.name}: entity types {unknown} are not among the model's labels: "
                                    "they can only be missed", "warning")
            rows, errors = self._rows(encoded, predictions)
            self._write_artifacts(artifacts, phase, ev.name, references, predictions, errors, metrics)
            self.ctx.events.log(f"{phase} {ev.name}: F1 weighted {metrics['f1_weighted']:.3f} "
                                f"macro {metrics['f1_macro']:.3f} micro {metrics['f1_micro']:.3f}")
            outcomes[ev.name] = EvalOutcome(metrics=metrics, rows=rows)
        return outcomes

    def _rows(self, encoded: EncodedSet, predictions: list[list[str]]) -> tuple[list[dict], list[dict]]:
        rows, errors = [], []
        for item, pred in zip(encoded.items, predictions):
            ex = item.example
            problems = span_errors(ex.tokens, ex.tags, pred)
            sentence = ex.text or " ".join(ex.tokens)
            rows.append({"id": ex.id, "language": ex.language or "", "text": sentence,
                         "reference": _entities_text(ex.tokens, ex.tags), "prediction": _entities_text(ex.tokens, pred),
                         "errors": len(problems)})
            errors.extend({"id": ex.id, **p, "sentence": sentence} for p in problems)
        return rows, errors

    def _write_artifacts(self, folder: Path, phase: str, name: str, references, predictions, errors, metrics) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        types = sorted({entity_type(x) for x in self.labels} - {"O"})
        labels, matrix = confusion(references, predictions, types)
        title = f"{self.stage.name} · {name} · {phase} (F1 weighted {metrics['f1_weighted']:.2f})"
        plot_confusion(labels, matrix, folder / f"confusion_{phase}_{name}.png", title)
        limit = self.stage.error_rows
        with (folder / f"errors_{phase}_{name}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["id", "error", "gold_type", "pred_type", "gold_text", "pred_text", "sentence"])
            writer.writeheader()
            writer.writerows(errors[:limit])
        summary = {"labels": labels, "confusion": matrix, "metrics": metrics,
                   "errors_by_kind": _count(e["error"] for e in errors), "errors_total": len(errors),
                   "errors_listed": min(limit, len(errors))}
        (folder / f"report_{phase}_{name}.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")

    # -- training ---------------------------------------------------------------------------
    def training_arguments(self) -> TrainingArguments:
        t = self.training
        on_gpu = self.ctx.device == "cuda"
        if t.save_steps:
            save = {"save_strategy": "steps", "save_steps": t.save_steps}
        else:
            save = {"save_strategy": "epoch"}
        return TrainingArguments(
            output_dir=str(self.ctx.checkpoint_dir),
            per_device_train_batch_size=t.per_device_train_batch_size,
            per_device_eval_batch_size=t.per_device_eval_batch_size,
            gradient_accumulation_steps=t.gradient_accumulation_steps,
            learning_rate=t.learning_rate,
            warmup_steps=t.warmup_steps,
            lr_scheduler_type=t.lr_scheduler_type,
            weight_decay=t.weight_decay,
            max_grad_norm=t.max_grad_norm,
            max_steps=t.max_steps or -1,
            num_train_epochs=t.num_train_epochs,
            fp16=t.fp16 and on_gpu,
            bf16=t.bf16 and on_gpu,
            activation_checkpointing=False,  # enabled on the backbone itself when it trains
            eval_strategy=t.eval_strategy,
            eval_steps=t.eval_steps,
            save_total_limit=t.save_total_limit,
            logging_steps=t.logging_steps,
            seed=t.seed,
            use_cpu=not on_gpu,
            report_to="none",  # palier's orchestrator owns the MLflow run lifecycle
            dataloader_num_workers=0,
            remove_unused_columns=False,
            label_names=["labels"],
            disable_tqdm=True,
            **save,
        )

    def train(self) -> dict[str, float]:
        primary = self.eval_sets[self.stage.primary_eval.name]
        label2id = self.label2id
        if self._use_features():
            self._ensure_features(self.train_set)
            model: nn.Module = self.head
            train_ds = FeatureDataset(self.train_set, label2id)
            eval_ds = None
            if self.training.eval_strategy != "no":
                self._ensure_features(primary)
                eval_ds = FeatureDataset(primary, label2id)
            collator = collate_features
        else:
            model = BackboneTokenClassifier(self.backbone, self.head, self.settings.freeze_backbone, self.layers)
            train_ds = TokenDataset(self.train_set, label2id)
            eval_ds = TokenDataset(primary, label2id) if self.training.eval_strategy != "no" else None
            collator = TokenCollator(self.tokenizer.pad_token_id)
        callback = EventsCallback(self.ctx)
        trainer = Trainer(model=model, args=self.training_arguments(), train_dataset=train_ds, eval_dataset=eval_ds,
                          data_collator=collator, callbacks=[callback])
        resume = last_checkpoint(self.ctx.checkpoint_dir)
        if resume:
            self.ctx.events.log(f"resuming training from {resume.name}")
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        if CANCEL.is_set():
            raise Cancelled(f"cancelled at step {trainer.state.global_step}; checkpoint saved for resume")
        self.head.eval()
        summary = {k: float(v) for k, v in output.metrics.items() if isinstance(v, (int, float))}
        total, trainable = parameter_counts(self.backbone, self.head)
        summary.update(global_step=float(trainer.state.global_step), total_parameters=float(total),
                       trainable_parameters=float(trainable), trainable_share=trainable / total,
                       labels=float(len(self.labels)))
        if "loss" in callback.last_logs:
            summary["last_logged_loss"] = callback.last_logs["loss"]
        return summary

    # -- output -----------------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        head = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(model_dir / HEAD_FILE), metadata={"format": "pt"})
        backbone_ref = self.backbone_ref
        if not self.settings.freeze_backbone or self.backbone_saved_copy:
            self.backbone.save_pretrained(model_dir / "backbone")
            backbone_ref = "backbone"
        self.tokenizer.save_pretrained(model_dir)
        total, trainable = self._params
        meta = {
            "format_version": FORMAT_VERSION,
            "family": "token_cls",
            "backbone": backbone_ref,
            "backbone_frozen": self.settings.freeze_backbone,
            "hidden_size": int(self.backbone.config.hidden_size),
            "hidden_layers": self.layers,
            "labels": self.labels,
            "label2id": self.label2id,
            "id2label": {str(i): label for i, label in enumerate(self.labels)},
            "max_length": self.settings.max_length,
            "label_all_subtokens": self.settings.label_all_subtokens,
            "dropout": self.settings.dropout,
            "parameters": {"total": total, "trainable": trainable},
            "stage": self.stage.name,
        }
        (model_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")


def _entities_text(tokens: list[str], tags: list[str]) -> str:
    from core.metrics.token_cls import spans

    return " | ".join(f"{t}: {' '.join(tokens[s : e + 1])}" for t, s, e in spans(tags))


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
