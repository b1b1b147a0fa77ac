"""SFT recipe: TRL ``SFTTrainer`` + PEFT LoRA on chat examples (current APIs:
``SFTConfig(max_length=...)``, ``processing_class=``, ``peft_config=``).

Each example's last assistant message is the completion; the prompt (system + earlier turns)
is rendered with the tokenizer's chat template, and the loss covers completion tokens only
(TRL's prompt-completion format, ``completion_only_loss``).

Evaluation, on the starting model (baseline) and the trained one, for every eval set:
- ``eval_loss`` and ``mean_token_accuracy``: teacher-forced on the completion tokens;
- ``exact_match`` and ``token_f1``: the model answers each held-out question (greedy by default)
  and the answer is compared with the reference (``core.metrics.sft``).

Output: ``model/`` = the merged model + tokenizer (+ chat template) + ``palier_sft.json``;
``adapter/`` = the LoRA adapter alone (its ``base_model_name_or_path`` is the starting model).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from core.config.sft import SftStage
from core.formats.messages import ChatExample, load_messages
from core.metrics.sft import answer_metrics, exact_match, token_f1
from core.stage.cancel import check_cancel
from core.stage.family_common import load_pretrained, parameter_counts, portable_ref, resolve_model_ref, set_cpu_threads
from core.stage.recipe import EvalOutcome, RecipeContext
from core.stage.sft_infer import answer, load_tokenizer
from core.stage.sources import jsonl_file, resolve_path
from core.stage.trainer_args import EventsCallback, parameter_summary, run_trainer, shared_arguments

META_FILE = "palier_sft.json"


class SftRecipe:
    def __init__(self, ctx: RecipeContext):
        self.ctx = ctx
        self.stage: SftStage = ctx.spec.stage
        self.training = self.stage.training
        self.base_dir = Path(ctx.spec.pipeline_file).resolve().parent if ctx.spec.pipeline_file else None
        set_cpu_threads(ctx.device, self.training.cpu_threads)
        self.tokenizer = None
        self.model = None
        self.train_examples: list[ChatExample] = []
        self.eval_examples: dict[str, list[ChatExample]] = {}
        self._peft = False
        self._params = (0, 0)

    # -- data -------------------------------------------------------------------------------
    def _chat_template(self) -> str | None:
        if not self.stage.chat_template:
            return None
        path = resolve_path(self.stage.chat_template, self.base_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: chat template not found (stage {self.stage.name}, field chat_template)")
        return path.read_text(encoding="utf-8")

    def _load(self, source, label: str) -> list[ChatExample]:
        path, max_samples = jsonl_file(source, self.base_dir, self.ctx.cache_dir, "sft")
        examples = load_messages(path, max_samples)
        self.ctx.events.log(f"{label}: {len(examples)} chat examples from {path}")
        return examples

    def _token_ids(self, example: ChatExample) -> tuple[list[int], int]:
        """(prompt + completion token ids, prompt length), rendered as TRL renders them."""
        tok = self.tokenizer
        prompt = tok(tok.apply_chat_template(example.prompt, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
        full = tok(tok.apply_chat_template(example.messages, tokenize=False), add_special_tokens=False)["input_ids"]
        common = 0
        for a, b in zip(prompt, full):
            if a != b:
                break
            common += 1
        return full, common

    def _report(self, examples: list[ChatExample]) -> dict[str, Any]:
        lengths = [len(self._token_ids(ex)[0]) for ex in examples]
        too_long = sum(n > self.training.max_length for n in lengths)
        return {"kept": len(examples), "dropped": {}, "tokens_max": max(lengths), "tokens_mean": sum(lengths) / len(lengths),
                "truncated": too_long}

    def prepare(self) -> dict[str, Any]:
        ref = resolve_model_ref(self.ctx.spec.base_model, self.base_dir)
        self.tokenizer = load_tokenizer(ref, self._chat_template())
        self.train_examples = self._load(self.stage.train, "train")
        report = {"train": self._report(self.train_examples)}
        for ev in self.stage.evals:
            self.eval_examples[ev.name] = self._load(ev.data, f"eval:{ev.name}")
            report[f"eval:{ev.name}"] = self._report(self.eval_examples[ev.name])
        for name, r in report.items():
            if r["truncated"]:
                self.ctx.events.log(f"{name}: {r['truncated']} example(s) longer than max_length "
                                    f"{self.training.max_length} tokens are truncated", "warning")
        return report

    # -- model ------------------------------------------------------------------------------
    def _dtype(self) -> torch.dtype:
        on_gpu = self.ctx.device == "cuda"
        if self.training.fp16 and on_gpu:
            return torch.float16
        if self.training.bf16 and on_gpu:
            return torch.bfloat16
        return torch.float32

    def load_model(self, model_ref: str) -> None:
        ref = resolve_model_ref(model_ref, self.base_dir)
        if (self.training.fp16 or self.training.bf16) and self.ctx.device != "cuda":
            self.ctx.events.log("fp16/bf16 apply on GPU only: training in float32 on CPU", "warning")
        model = load_pretrained(AutoModelForCausalLM, ref, dtype=self._dtype())
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(self.ctx.device)
        self._base_ref = portable_ref(model_ref, self.base_dir)
        total = sum(p.numel() for p in model.parameters())
        self.ctx.events.log(f"model {model_ref}: {total:,} parameters")

    # -- evaluation -------------------------------------------------------------------------
    @torch.inference_mode()
    def _teacher_forced(self, examples: list[ChatExample]) -> dict[str, float]:
        """Completion-token loss and accuracy (next-token argmax), pooled over tokens."""
        model = self.model
        model.eval()
        device = next(model.parameters()).device
        pad = self.tokenizer.pad_token_id
        limit = self.training.max_length
        loss_sum, correct, count = 0.0, 0, 0
        size = self.training.per_device_eval_batch_size
        for start in range(0, len(examples), size):
            check_cancel("evaluation")
            rows = [self._token_ids(ex) for ex in examples[start : start + size]]
            rows = [(ids[:limit], min(p, limit)) for ids, p in rows]
            width = max(len(ids) for ids, _ in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros_like(input_ids)
            labels = torch.full_like(input_ids, -100)
            for r, (ids, p) in enumerate(rows):
                input_ids[r, : len(ids)] = torch.tensor(ids)
                mask[r, : len(ids)] = 1
                labels[r, p : len(ids)] = torch.tensor(ids[p:], dtype=torch.long)
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
            valid = shift_labels != -100
            if valid.any():
                loss_sum += float(torch.nn.functional.cross_entropy(shift_logits[valid], shift_labels[valid], reduction="sum"))
                correct += int((shift_logits.argmax(-1)[valid] == shift_labels[valid]).sum())
                count += int(valid.sum())
        return {"eval_loss": loss_sum / max(count, 1), "mean_token_accuracy": correct / max(count, 1),
                "completion_tokens": float(count)}

    def evaluate(self, phase: str) -> dict[str, EvalOutcome]:
        outcomes: dict[str, EvalOutcome] = {}
        gen = self.stage.generation
        for ev in self.stage.evals:
            examples = self.eval_examples[ev.name]
            t0 = time.perf_counter()
            metrics = self._teacher_forced(examples)
            predictions = answer(self.model, self.tokenizer, [ex.prompt for ex in examples], gen.max_new_tokens,
                                 gen.temperature, gen.batch_size, progress=self.ctx.events.progress,
                                 seed=self.training.seed)
            references = [ex.answer for ex in examples]
            metrics.update(answer_metrics(references, predictions))
            metrics["eval_seconds"] = round(time.perf_counter() - t0, 3)
            rows = [{"id": ex.id, "question": ex.question, "reference": ref, "prediction": pred,
                     "exact_match": exact_match(ref, pred), "token_f1": round(token_f1(ref, pred), 4)}
                    for ex, ref, pred in zip(examples, references, predictions)]
            self.ctx.events.log(f"{phase} {ev.name}: token F1 {metrics['token_f1']:.3f} exact match "
                                f"{metrics['exact_match']:.3f} loss {metrics['eval_loss']:.3f}")
            outcomes[ev.name] = EvalOutcome(metrics=metrics, rows=rows)
        return outcomes

    # -- training ---------------------------------------------------------------------------
    def sft_config(self):
        from trl import SFTConfig

        t = self.training
        shared = shared_arguments(t, self.ctx.checkpoint_dir, self.ctx.device,
                                  eval_batch_size=t.per_device_eval_batch_size,
                                  activation_checkpointing=t.gradient_checkpointing)
        return SFTConfig(**shared, max_length=t.max_length, packing=t.packing, completion_only_loss=True)

    def lora_config(self):
        from peft import LoraConfig

        lora = self.training.lora
        targets = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
        return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                          modules_to_save=list(lora.modules_to_save) or None, bias="none", task_type="CAUSAL_LM")

    @staticmethod
    def _dataset(examples: list[ChatExample]):
        from datasets import Dataset

        return Dataset.from_list([{"prompt": ex.prompt, "completion": ex.completion} for ex in examples])

    def train(self) -> dict[str, float]:
        from trl import SFTTrainer

        t = self.training
        primary = self.eval_examples[self.stage.primary_eval.name]
        callback = EventsCallback(self.ctx.events)
        peft_config = self.lora_config() if t.method == "lora" else None
        trainer = SFTTrainer(
            model=self.model,
            args=self.sft_config(),
            train_dataset=self._dataset(self.train_examples),
            eval_dataset=self._dataset(primary) if t.eval_strategy != "no" else None,
            processing_class=self.tokenizer,
            peft_config=peft_config,
            callbacks=[callback],
        )
        self._peft = peft_config is not None
        total, trainable = parameter_counts(trainer.model)
        self._params = (total, trainable)
        self.ctx.events.log(f"{t.method}: {trainable:,} trainable parameters of {total:,} ({trainable / total:.2%})")
        summary = run_trainer(trainer, self.ctx.checkpoint_dir, self.ctx.events)
        self.model = trainer.model
        summary.update(parameter_summary(total, trainable))
        summary.update(callback.last_logged(("mean_token_accuracy", "loss", "entropy")))
        if "last_logged_mean_token_accuracy" in summary:
            summary["mean_token_accuracy"] = summary["last_logged_mean_token_accuracy"]
        return summary

    # -- output -----------------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        model = self.model
        if self._peft:
            adapter_dir = self.ctx.out_dir / "adapter"
            model.save_pretrained(adapter_dir)
            self.tokenizer.save_pretrained(adapter_dir)
            model = model.merge_and_unload()
        model_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(model_dir)
        self.tokenizer.save_pretrained(model_dir)
        lora = self.training.lora
        systems = Counter(ex.messages[0]["content"] for ex in self.train_examples if ex.messages[0]["role"] == "system")
        meta = {
            "format_version": 1,
            "family": "sft",
            "merged": True,
            "starting_model": self._base_ref,
            "method": self.training.method,
            "lora": lora.model_dump(mode="json") if self.training.method == "lora" else None,
            "adapter_dir": "../adapter" if self._peft else None,
            "parameters": {"total": self._params[0], "trainable": self._params[1]},
            "stage": self.stage.name,
            # what `palier query` uses as the default system prompt
            "system_prompt": systems.most_common(1)[0][0] if systems else None,
        }
        (model_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
