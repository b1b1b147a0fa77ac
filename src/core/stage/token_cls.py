"""Token-classification recipe: any ``AutoModel`` backbone, frozen, plus a trainable
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

The model folder that ``save`` writes is described in ``core.stage.token_cls_folder``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, Trainer, TrainingArguments

from core.config.token_cls import TokenClsStage
from core.formats.token_cls import TokenExample, bio_labels, label_counts, load_examples, normalise_label_list
from core.metrics.token_cls import entity_metrics, entity_type
from core.stage.cancel import check_cancel
from core.stage.family_common import (ModelRefError, load_pretrained, parameter_counts, portable_ref,
                                      resolve_model_ref, set_cpu_threads)
from core.stage.recipe import EvalOutcome, RecipeContext
from core.stage.sources import jsonl_file
from core.stage.token_cls_artifacts import prediction_rows, write_eval_artifacts
from core.stage.token_cls_data import (
    EncodedSet,
    FeatureDataset,
    TokenCollator,
    TokenDataset,
    collate_features,
    encode,
)
from core.stage.token_cls_folder import BACKBONE_DIR, load_head_rows, read_meta, write_head, write_meta
from core.stage.token_cls_model import BackboneTokenClassifier, LinearHead, backbone_hidden, bio_transitions, bio_viterbi
from core.stage.trainer_args import EXPLICIT_COLUMNS, EventsCallback, parameter_summary, run_trainer, shared_arguments


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
        meta = read_meta(folder)
        return (folder, meta) if meta is not None else None

    def _backbone_location(self, model_ref: str) -> tuple[str, str, bool]:
        """(loadable path or id, reference to record, copy needed)."""
        upstream = self._upstream_meta(model_ref)
        if upstream is None:
            return resolve_model_ref(model_ref, self.base_dir), portable_ref(model_ref, self.base_dir), False
        folder, meta = upstream
        ref = meta["backbone"]
        if ref == BACKBONE_DIR:  # a trained backbone saved inside the upstream folder
            return str(folder / BACKBONE_DIR), str(folder / BACKBONE_DIR), True
        return resolve_model_ref(ref, None), ref, False

    def _load_tokenizer(self, location: str, tokenizer_dir: str | None = None):
        source = tokenizer_dir or location
        tok = load_pretrained(AutoTokenizer, source)
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
        backbone = load_pretrained(AutoModel, location, dtype=dtype)
        frozen = self.settings.freeze_backbone
        backbone.requires_grad_(not frozen)
        if frozen:
            backbone.eval()
            if t.gradient_checkpointing:
                self.ctx.events.log("gradient_checkpointing ignored: the frozen backbone keeps no activations "
                                    "for backward", "warning")
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
            old = load_head_rows(head, upstream[0])
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
    def _trains_backbone(self) -> bool:
        return not self.settings.freeze_backbone

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
            rows, errors = prediction_rows(encoded, predictions)
            write_eval_artifacts(artifacts, f"{self.stage.name} · {ev.name} · {phase}", f"{phase}_{ev.name}", self.labels,
                                 references, predictions, errors, metrics, self.stage.error_rows)
            self.ctx.events.log(f"{phase} {ev.name}: F1 weighted {metrics['f1_weighted']:.3f} "
                                f"macro {metrics['f1_macro']:.3f} micro {metrics['f1_micro']:.3f}")
            outcomes[ev.name] = EvalOutcome(metrics=metrics, rows=rows)
        return outcomes

    # -- training ---------------------------------------------------------------------------
    def training_arguments(self) -> TrainingArguments:
        t = self.training
        shared = shared_arguments(t, self.ctx.checkpoint_dir, self.ctx.device,
                                  eval_batch_size=t.per_device_eval_batch_size,
                                  activation_checkpointing=self._trains_backbone() and t.gradient_checkpointing)
        return TrainingArguments(**shared, **EXPLICIT_COLUMNS)

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
        callback = EventsCallback(self.ctx.events)
        trainer = Trainer(model=model, args=self.training_arguments(), train_dataset=train_ds, eval_dataset=eval_ds,
                          data_collator=collator, callbacks=[callback])
        summary = run_trainer(trainer, self.ctx.checkpoint_dir, self.ctx.events)
        self.head.eval()
        summary.update(parameter_summary(*parameter_counts(self.backbone, self.head)), labels=float(len(self.labels)))
        summary.update(callback.last_logged(("loss",)))
        return summary

    # -- output -----------------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        write_head(self.head, model_dir)
        backbone_ref = self.backbone_ref
        if not self.settings.freeze_backbone or self.backbone_saved_copy:
            self.backbone.save_pretrained(model_dir / BACKBONE_DIR)
            backbone_ref = BACKBONE_DIR
        self.tokenizer.save_pretrained(model_dir)
        total, trainable = self._params
        write_meta(model_dir, {
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
        })
