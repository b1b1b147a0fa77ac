"""Whisper ASR recipe: one stage of full fine-tuning, LoRA or QLoRA."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

from core import paths
from core.config.asr import AsrStage
from core.metrics.asr import asr_metrics
from core.ct2.packaged import is_packaged_ref, resolve_base_model
from core.stage.asr_data import PreparedSet, SpeechCollator, SpeechDataset, prepare_speech
from core.stage.cancel import check_cancel
from core.stage.family_common import load_pretrained, set_cpu_threads
from core.stage.recipe import EvalOutcome, RecipeContext
from core.stage.sources import resolve_path, speech_records
from core.stage.trainer_args import EXPLICIT_COLUMNS, EventsCallback, run_trainer, shared_arguments
from core.stage.frozen_encoder import cross_attention_kv, encoder_states, freeze_cross_attention, weights_digest
from core.stage.whisper_greedy import greedy_transcribe_ids, prompt_ids

REAL_WHISPER_MAX_TARGET = 448


def score_predictions(prepared: PreparedSet, predictions: list[str], lexicon: list[str],
                      seconds: float) -> EvalOutcome:
    """Metrics (the names of the stage's metrics.json) and the per-utterance rows."""
    metrics = asr_metrics(prepared.texts, predictions, lexicon)
    metrics["eval_seconds"] = round(seconds, 3)
    metrics["samples_per_second"] = round(len(prepared) / max(seconds, 1e-9), 3)
    rows = [{"id": i, "reference": r, "prediction": p} for i, r, p in zip(prepared.ids, prepared.texts, predictions)]
    return EvalOutcome(metrics=metrics, rows=rows)


class AsrRecipe:
    def __init__(self, ctx: RecipeContext):
        self.ctx = ctx
        self.stage: AsrStage = ctx.spec.stage
        self.base_dir = Path(ctx.spec.pipeline_file).resolve().parent if ctx.spec.pipeline_file else None
        self.model: WhisperForConditionalGeneration | None = None
        self.processor: WhisperProcessor | None = None
        self.train_set: PreparedSet | None = None
        self.eval_sets: dict[str, PreparedSet] = {}
        self.lexicon = self._read_lexicon()
        self._peft = False
        self._base_max_target: int | None = None
        # Frozen-encoder outputs per prepared set (whisper.cache_encoder_outputs), by id().
        self._encoder_states: dict[int, np.ndarray] = {}
        self._encoder_digest: str | None = None
        set_cpu_threads(ctx.device, self.stage.training.cpu_threads)

    # -- data -----------------------------------------------------------------------------
    def _read_lexicon(self) -> list[str]:
        if not self.stage.lexicon:
            return []
        path = resolve_path(self.stage.lexicon, self.base_dir)
        if not path.exists():
            raise FileNotFoundError(f"{path}: lexicon file not found (stage {self.stage.name}, field lexicon)")
        lines = path.read_text(encoding="utf-8").splitlines()
        return [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]

    def prepare(self) -> dict[str, Any]:
        self.train_set = self._prepare_source(self.stage.train, "train")
        report = {"train": self.train_set.report(), **self.prepare_evals()}
        self._warn_dropped(report)
        return report

    def prepare_evals(self) -> dict[str, Any]:
        """Preprocess every eval set (what ``palier evaluate`` runs without a train set)."""
        report = {}
        for ev in self.stage.evals:
            self.eval_sets[ev.name] = self._prepare_source(ev.data, f"eval:{ev.name}")
            report[f"eval:{ev.name}"] = self.eval_sets[ev.name].report()
        return report

    def _prepare_source(self, source, label: str) -> PreparedSet:
        if self.processor is None:
            # The processor is needed to featurise; it comes from the starting model.
            self._load_processor(self.ctx.spec.base_model)
        records = speech_records(source, self.base_dir, self.ctx.cache_dir)
        return prepare_speech(records, self.processor.feature_extractor, self.processor.tokenizer,
                              float(self.stage.whisper.chunk_length), self._max_label_tokens(), self.ctx.cache_dir,
                              self.ctx.events, label, self.stage.training.preprocessing_num_workers)

    def _warn_dropped(self, report: dict[str, Any]) -> None:
        for name, r in report.items():
            if r["dropped"]:
                self.ctx.events.log(f"{name}: dropped {r['dropped']} (examples: {r['dropped_examples']})", "warning")
        return report

    def _max_label_tokens(self) -> int:
        if self.stage.whisper.max_label_tokens:
            return self.stage.whisper.max_label_tokens
        return self._base_max_target or REAL_WHISPER_MAX_TARGET

    # -- model ----------------------------------------------------------------------------
    def _load_processor(self, ref: str) -> None:
        ref = self._resolve_ref(ref)
        # Feature extractor and tokenizer loaded on their own, then combined: the tokenizer's
        # language/task prefix must be set before the processor copies it.
        fe = load_pretrained(WhisperFeatureExtractor, ref)
        tok = load_pretrained(WhisperTokenizer, ref)
        tok.set_prefix_tokens(language=self.ctx.spec.language, task=self.ctx.spec.task, predict_timestamps=False)
        wanted = self.stage.whisper.chunk_length
        if fe.chunk_length != wanted:
            fe = WhisperFeatureExtractor(**{**fe.to_dict(), "chunk_length": wanted,
                                            "n_samples": wanted * fe.sampling_rate,
                                            "nb_max_frames": wanted * fe.sampling_rate // fe.hop_length})
        self.processor = WhisperProcessor(feature_extractor=fe, tokenizer=tok)
        from transformers import WhisperConfig

        self._base_max_target = load_pretrained(WhisperConfig, ref).max_target_positions

    def _resolve_ref(self, ref: str) -> str:
        if is_packaged_ref(ref):  # normally resolved by the orchestrator already
            return resolve_base_model(ref, paths.cache_dir(), self.ctx.events.log)
        local = resolve_path(ref, self.base_dir)
        return str(local) if local.exists() else ref

    def load_model(self, model_ref: str) -> None:
        self._encoder_states.clear()
        self._encoder_digest = None
        ref = self._resolve_ref(model_ref)
        kwargs: dict[str, Any] = {"dtype": torch.float32, "attn_implementation": "sdpa"}
        training = self.stage.training
        if training.method == "qlora":
            if self.ctx.device != "cuda":
                raise RuntimeError("method qlora needs a CUDA GPU (bitsandbytes 4-bit); use lora or full on CPU")
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
        model = load_pretrained(WhisperForConditionalGeneration, ref, **kwargs)
        self._fit_window(model)
        gen = model.generation_config
        gen.language, gen.task = self.ctx.spec.language, self.ctx.spec.task
        gen.forced_decoder_ids = None
        model.config.forced_decoder_ids = None
        if self.stage.whisper.freeze_encoder:
            model.freeze_encoder()
        if self.stage.whisper.freeze_cross_attention:
            freeze_cross_attention(model.model.decoder)
        if training.method in ("lora", "qlora"):
            from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

            if training.method == "qlora":
                model = prepare_model_for_kbit_training(model)
            lora = training.lora
            model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                     target_modules=list(lora.target_modules), bias="none"))
            self._peft = True
        if self.ctx.device == "cuda" and training.method != "qlora":
            model = model.to("cuda")
        self.model = model
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.ctx.events.log(f"model {ref}: {total:,} parameters, {trainable:,} trainable ({trainable / total:.1%})")

    def _fit_window(self, model: WhisperForConditionalGeneration) -> None:
        """A shorter audio window than the checkpoint's: keep the first positions of the
        encoder's embeddings (what Whisper itself sees for the start of a 30 s window)."""
        frames = self.processor.feature_extractor.nb_max_frames
        positions = frames // 2
        current = model.config.max_source_positions
        if positions == current:
            return
        if positions > current:
            raise ValueError(f"chunk_length {self.stage.whisper.chunk_length}s needs {positions} encoder positions "
                             f"but the model has {current}: use chunk_length <= {current * 2 * 160 // 16000}")
        emb = model.model.encoder.embed_positions
        emb.weight.data = emb.weight.data[:positions].clone()
        emb.num_embeddings = positions
        model.config.max_source_positions = positions

    # -- evaluation -----------------------------------------------------------------------
    def _tokens_per_second(self) -> float:
        if self.stage.whisper.eval_tokens_per_second:
            return float(self.stage.whisper.eval_tokens_per_second)
        prepared = self.train_set
        if prepared is None:  # evaluation alone: a bound no dictation reaches (~8 tokens/s)
            return 20.0
        rates = [len(lab) / max(d, 0.5) for lab, d in zip(prepared.labels, prepared.durations)]
        return float(np.percentile(rates, 99.5)) * 1.3 if rates else 20.0

    def _eval_batch_size(self) -> int:
        configured = self.stage.training.per_device_eval_batch_size
        if configured:
            return configured
        if self.ctx.device == "cuda":
            free, _total = torch.cuda.mem_get_info()
            return int(max(8, min(128, free // (600 * 2**20))))
        return 32

    def encoder_states(self, prepared: PreparedSet) -> np.ndarray | None:
        """The frozen encoder's outputs for every utterance of ``prepared``, computed once per
        encoder and audio (None unless whisper.cache_encoder_outputs): kept in the cache folder,
        so a later stage that keeps the encoder frozen reads them back."""
        if not self.stage.whisper.cache_encoder_outputs:
            return None
        if id(prepared) in self._encoder_states:
            return self._encoder_states[id(prepared)]
        model = self.model
        encoder = model.get_encoder()
        config = model.config
        need = len(prepared) * config.max_source_positions * config.d_model * 4
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else None
        if available is not None and need > available // 2:
            raise MemoryError(f"whisper.cache_encoder_outputs would hold {need / 2**30:.1f} GiB of encoder outputs "
                              f"({len(prepared)} utterances) but only {available / 2**30:.1f} GiB are free: "
                              "set it to false for a set this large")
        if self._encoder_digest is None:
            self._encoder_digest = weights_digest(encoder)
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        states, reused = encoder_states(encoder, prepared.features, config.max_source_positions, config.d_model,
                                        self.ctx.cache_dir, self._encoder_digest, self._eval_batch_size(),
                                        next(model.parameters()).device, self.ctx.events.progress,
                                        lambda: check_cancel("encoder outputs"))
        model.train(was_training)
        if reused:
            self.ctx.events.log(f"encoder outputs of {len(prepared)} utterances reused from the cache "
                                "(same encoder weights, same audio)")
        else:
            self.ctx.events.log(f"encoder outputs of {len(prepared)} utterances computed once for reuse "
                                f"({need / 2**20:.0f} MiB, {time.perf_counter() - t0:.1f} s)")
        self._encoder_states[id(prepared)] = states
        return states

    def cross_kv(self, prepared: PreparedSet) -> np.ndarray | None:
        """Each decoder layer's cross-attention keys/values per utterance (None unless
        whisper.freeze_cross_attention)."""
        if not self.stage.whisper.freeze_cross_attention:
            return None
        states = self.encoder_states(prepared)
        t0 = time.perf_counter()
        kv = cross_attention_kv(self.model.model.decoder, states)
        self.ctx.events.log(f"cross-attention keys/values of {len(prepared)} utterances computed once "
                            f"({kv.nbytes / 2**20:.0f} MiB, {time.perf_counter() - t0:.1f} s)")
        return kv

    def decode_plan(self, prepared: PreparedSet, indices: list[int] | None = None,
                    max_new_tokens: int | None = None) -> list[tuple[list[int], int]]:
        """Batches sorted by duration, each with its token budget: the longest plausible label
        for its longest audio (``_tokens_per_second``), or ``max_new_tokens`` for every batch;
        within generation_max_length and the decoder's positions. Every engine decodes with it."""
        order = sorted(indices if indices is not None else range(len(prepared)), key=lambda i: prepared.durations[i])
        size = self._eval_batch_size()
        rate = self._tokens_per_second()
        positions = self.model.config.max_target_positions if self.model is not None else self._base_max_target
        # Whisper refuses a prompt (4 tokens) plus new tokens beyond its decoder positions.
        cap = min(self.stage.training.generation_max_length, (positions or REAL_WHISPER_MAX_TARGET) - 4)
        plan = []
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            longest = float(max(prepared.durations[i] for i in batch))
            wanted = max_new_tokens if max_new_tokens is not None else math.ceil(longest * rate) + 8
            plan.append((batch, int(min(cap, wanted))))
        return plan

    @torch.inference_mode()
    def transcribe(self, prepared: PreparedSet, language: str, indices: list[int] | None = None,
                   max_new_tokens: int | None = None) -> list[str]:
        """Greedy batched generation by ``decode_plan``: batches sorted by duration, each bounded
        by the longest plausible label for its audio length (not a blanket 225/448 new tokens)."""
        model = self.model
        model.eval()
        tok = self.processor.tokenizer
        device = next(model.parameters()).device
        dtype = torch.float16 if (self.ctx.device == "cuda" and self.stage.training.fp16) else (
            torch.bfloat16 if (self.ctx.device == "cuda" and self.stage.training.bf16) else torch.float32)
        states = self.encoder_states(prepared)
        # Greedy: palier's own loop (encoder once, finished sequences dropped), generate()'s ids.
        greedy = self.stage.training.generation_num_beams == 1
        prompt = prompt_ids(model.generation_config, language, self.ctx.spec.task) if greedy else []
        out: dict[int, str] = {}
        plan = self.decode_plan(prepared, indices, max_new_tokens)
        total, done = sum(len(b) for b, _ in plan), 0
        for batch, max_new in plan:
            check_cancel("evaluation")
            encoded = torch.from_numpy(states[batch]).to(device) if states is not None else None
            feats = None if encoded is not None else torch.from_numpy(prepared.features[batch].astype(np.float32)).to(device)
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32):
                if greedy:
                    ids = greedy_transcribe_ids(model, feats, prompt, max_new, encoded=encoded)
                else:
                    from transformers.modeling_outputs import BaseModelOutput

                    inputs = ({"encoder_outputs": BaseModelOutput(last_hidden_state=encoded)} if encoded is not None
                              else {"input_features": feats})
                    ids = model.generate(**inputs, language=language, task=self.ctx.spec.task,
                                         max_new_tokens=max_new, num_beams=self.stage.training.generation_num_beams)
            for i, text in zip(batch, tok.batch_decode(ids, skip_special_tokens=True)):
                out[i] = text.strip()
            done += len(batch)
            self.ctx.events.progress(done, total)
        return [out[i] for i in sorted(out)]

    def measurement(self, name: str) -> dict[str, Any]:
        """What an evaluation of set ``name`` depends on besides the model: two evaluations of
        the same model with equal measurements give the same result (the runner reuses the
        previous stage's final evaluation as this stage's baseline on that ground)."""
        ev = next(e for e in self.stage.evals if e.name == name)
        prepared = self.eval_sets[name]
        t = self.stage.training
        lexicon = hashlib.sha256("\n".join(self.lexicon).encode()).hexdigest()[:16]
        utterances = hashlib.sha256(json.dumps([prepared.ids, prepared.texts]).encode()).hexdigest()[:16]
        precision = "fp16" if t.fp16 else "bf16" if t.bf16 else "fp32"
        return {"data": ev.data.model_dump(mode="json"), "language": ev.language or self.ctx.spec.language,
                "task": self.ctx.spec.task, "utterances": utterances, "lexicon": lexicon,
                "window_s": self.stage.whisper.chunk_length, "tokens_per_second": round(self._tokens_per_second(), 6),
                "max_new_tokens": t.generation_max_length, "num_beams": t.generation_num_beams,
                "device": self.ctx.device, "precision": precision if self.ctx.device == "cuda" else "fp32"}

    def evaluate(self, phase: str, transcribe=None, sets: list[str] | None = None) -> dict[str, EvalOutcome]:
        """Every eval set (or those named in ``sets``) on the loaded model (``transcribe``:
        another engine's ``(prepared, language) -> texts``, e.g. CTranslate2 for ``palier
        evaluate --engine ct2``)."""
        transcribe = transcribe or self.transcribe
        outcomes = {}
        for ev in self.stage.evals:
            if sets is not None and ev.name not in sets:
                continue
            prepared = self.eval_sets[ev.name]
            t0 = time.perf_counter()
            predictions = transcribe(prepared, ev.language or self.ctx.spec.language)
            seconds = time.perf_counter() - t0
            outcomes[ev.name] = score_predictions(prepared, predictions, self.lexicon, seconds)
            metrics = outcomes[ev.name].metrics
            self.ctx.events.log(f"{phase} {ev.name}: WER {metrics['wer']:.3f} CER {metrics['cer']:.3f}"
                                + (f" MTA {metrics['medical_term_accuracy']:.3f}" if "medical_term_accuracy" in metrics else ""))
        return outcomes

    # -- training -------------------------------------------------------------------------
    def _compute_metrics(self, pred) -> dict[str, float]:
        # Decode with the tokenizer itself (-100 back to padding first): what evaluate() scores too.
        tok = self.processor.tokenizer
        label_ids = np.where(pred.label_ids != -100, pred.label_ids, tok.pad_token_id)
        pred_ids = np.where(pred.predictions != -100, pred.predictions, tok.pad_token_id)
        preds = [s.strip() for s in tok.batch_decode(pred_ids, skip_special_tokens=True)]
        refs = [s.strip() for s in tok.batch_decode(label_ids, skip_special_tokens=True)]
        m = asr_metrics(refs, preds, self.lexicon)
        return {k: v for k, v in m.items() if k != "medical_term_occurrences"}

    def training_arguments(self) -> Seq2SeqTrainingArguments:
        t = self.stage.training
        shared = shared_arguments(t, self.ctx.checkpoint_dir, self.ctx.device, eval_batch_size=self._eval_batch_size(),
                                  activation_checkpointing=t.gradient_checkpointing)
        return Seq2SeqTrainingArguments(
            **shared,
            **EXPLICIT_COLUMNS,
            train_sampling_strategy="group_by_length" if t.group_by_length else "random",
            load_best_model_at_end=t.load_best_model_at_end,
            metric_for_best_model=t.metric_for_best_model,
            greater_is_better=self.stage.gate.greater_is_better,
            predict_with_generate=True,
            generation_max_length=t.generation_max_length,
            generation_num_beams=t.generation_num_beams,
        )

    def train(self) -> dict[str, float]:
        primary = self.stage.primary_eval
        eval_prepared = self.eval_sets[primary.name]
        t = self.stage.training
        indices = None
        if t.eval_sample and t.eval_sample < len(eval_prepared):
            rng = np.random.default_rng(t.seed)
            indices = sorted(rng.choice(len(eval_prepared), t.eval_sample, replace=False).tolist())
        tok = self.processor.tokenizer
        trainer = Seq2SeqTrainer(
            model=self.model,
            args=self.training_arguments(),
            train_dataset=SpeechDataset(self.train_set, encoder_states=self.encoder_states(self.train_set),
                                        cross_kv=self.cross_kv(self.train_set)),
            eval_dataset=SpeechDataset(eval_prepared, indices, self.encoder_states(eval_prepared))
            if t.eval_strategy != "no" else None,
            data_collator=SpeechCollator(self.model.config.decoder_start_token_id, tok.pad_token_id,
                                         self.model.config.decoder_attention_heads),
            compute_metrics=self._compute_metrics if t.eval_strategy != "no" else None,
            # the feature extractor, not the tokenizer: the Trainer saves it with each checkpoint
            processing_class=self.processor.feature_extractor,
            callbacks=[EventsCallback(self.ctx.events)],
        )
        metrics = run_trainer(trainer, self.ctx.checkpoint_dir, self.ctx.events)
        self.model = trainer.model
        metrics["trainable_parameters"] = float(sum(p.numel() for p in self.model.parameters() if p.requires_grad))
        return metrics

    # -- output ---------------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        model = self.model
        if self._peft:
            # Next stages start from a plain model: fold the adapter into the weights.
            model = model.merge_and_unload()
        model_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(model_dir)
        self.processor.feature_extractor.save_pretrained(model_dir)
        self.processor.tokenizer.save_pretrained(model_dir)
