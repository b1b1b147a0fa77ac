"""The benchmark harness itself: interleaving, ratios, the report, the reference collator."""

import numpy as np
import pytest

from bench import report
from bench.timing import interleave


def test_interleave_rotates_the_order_and_keeps_per_round_ratios():
    calls = []
    rounds = interleave({"a": lambda: calls.append("a") or "A", "b": lambda: calls.append("b") or "B"}, rounds=4)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert rounds.results == {"a": "A", "b": "B"}
    rounds.seconds = {"a": [4.0, 8.0, 6.0, 100.0], "b": [1.0, 2.0, 3.0, 10.0]}
    assert rounds.ratios("a", "b") == [4.0, 4.0, 2.0, 10.0]
    summary = rounds.summary("a", "b")
    assert summary["ratio"] == 4.0 and summary["ratio_min"] == 2.0 and summary["ratio_max"] == 10.0


def test_warmup_runs_each_variant_once_untimed():
    calls = []
    out = interleave({"a": lambda: calls.append("a")}, rounds=1, warmup=True)
    assert calls == ["a", "a"] and len(out.seconds["a"]) == 1


def test_report_lists_every_row_with_its_ratio(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    rows = [
        {"name": "evaluation: x", "target": ">= 4x", "ratio": 2.5, "ratio_min": 2.0, "ratio_max": 3.0, "rounds": 3,
         "utterances": 10, "reference_wer": 0.1, "candidate_wer": 0.1, "identical_transcripts": 10,
         "differing_examples": [], "notes": "n"},
        {"name": "orchestration: y", "target": "<= 1.05x", "ratio": None, "notes": "not measured yet: no flow"},
    ]
    context = {"started": "t", "minutes": 1.0, "torch_threads": 1, "model": "m",
               "machine": {"cpu": "cpu", "cores": 2, "load_average_at_start": None, "torch": "2", "gpu": None}}
    path = report.write(rows, context, "unit")
    text = path.read_text()
    assert "**2.5×** (2.0–3.0)" in text and "10/10 transcripts identical" in text
    assert "not measured yet: no flow" in text and "GPU figures not taken" in text
    assert (tmp_path / "unit.json").exists()


@pytest.mark.integration  # loads the tiny Whisper's processor
def test_reference_collator_pads_labels_with_minus_100(tiny_whisper):
    from transformers import WhisperProcessor

    from bench.seeds import Seed003Collator

    processor = WhisperProcessor.from_pretrained(tiny_whisper)
    features = [{"input_features": np.zeros((80, 600), np.float32), "labels": [5, 6, 7]},
                {"input_features": np.ones((80, 600), np.float32), "labels": [5]}]
    batch = Seed003Collator(processor)(features)
    assert tuple(batch["input_features"].shape) == (2, 80, 600)
    assert batch["labels"].tolist() == [[5, 6, 7], [5, -100, -100]]
