"""``palier evaluate`` on the shipped nano French Whisper with real espeak-ng speech: CSV
manifests, generated report folders (one part of their split) and pipeline eval sets, scored by the stage's own metric code."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from core.demo.datasets import generate
from core.metrics.asr import asr_metrics
from palier.cli import app
from repo_paths import ROOT

pytestmark = pytest.mark.integration
NANO = ROOT / "models" / "nano-whisper-fr"
LEXICON = ROOT / "data" / "lexicons" / "medical_fr.txt"
runner = CliRunner()


def _evaluate(*args: str):
    return runner.invoke(app, ["evaluate", str(NANO), *args, "--threads", "1"])


@pytest.fixture
def manifest(palier_home, speech_cache) -> Path:
    return generate("french_speech", {"pool": "test", "count": 4, "voices": "stage", "domain": "medical"}, speech_cache)


def test_csv_manifest_scored_with_the_stage_metric_names(manifest, tmp_path):
    predictions = tmp_path / "pred.jsonl"
    result = _evaluate("--data", str(manifest), "--lexicon", str(LEXICON), "--json", "--predictions", str(predictions))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"] == 4 and report["window_s"] == 6 and report["engine"] == "transformers"
    metrics = report["metrics"]
    assert {"wer", "cer", "normalized_wer", "normalized_cer", "medical_term_accuracy", "eval_seconds",
            "samples_per_second"} <= set(metrics)
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4 and all(r["prediction"] for r in rows)
    with manifest.open(encoding="utf-8") as fh:
        assert sorted(r["reference"] for r in rows) == sorted(r["sentence"] for r in csv.DictReader(fh))
    # The numbers are the stage's metric function applied to the printed predictions.
    again = asr_metrics([r["reference"] for r in rows], [r["prediction"] for r in rows], LEXICON.read_text().split("\n")[1:])
    assert metrics["wer"] == pytest.approx(again["wer"]) and metrics["medical_term_accuracy"] == pytest.approx(
        again["medical_term_accuracy"])


def test_long_recording_is_named_not_a_crash(manifest, tmp_path):
    rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
    waves = [sf.read(manifest.parent / r["audio"]) for r in rows]
    rate = waves[0][1]
    long_wave = np.concatenate([w for w, _ in waves] * 2)  # longer than the nano model's 6 s window
    long_file = tmp_path / "consultation.wav"
    sf.write(long_file, long_wave, rate)
    data = tmp_path / "with-long.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["audio", "sentence"])
        writer.writerow([str(long_file), " ".join(r["sentence"] for r in rows)])
        writer.writerow([str(manifest.parent / rows[0]["audio"]), rows[0]["sentence"]])

    refused = _evaluate("--data", str(data))
    assert refused.exit_code == 2
    assert "with-long.csv:2" in refused.output and "6 s window" in refused.output and "--skip-long" in refused.output
    assert "Traceback" not in refused.output

    skipped = _evaluate("--data", str(data), "--skip-long", "--json")
    assert skipped.exit_code == 0, skipped.output
    report = json.loads(skipped.stdout)
    assert report["samples"] == 1 and report["data"]["dropped"] == {"audio_longer_than_window": 1}


def test_report_folder_part_and_pipeline_eval_set(palier_home, speech_cache, tmp_path):
    folder = generate("dictation_reports", {"count": 5, "seed": 3}, speech_cache)
    assert sorted(p.name for p in (folder / "rapports").iterdir()) == [f"{i}.txt" for i in range(5)]
    held_out = _evaluate("--data", str(folder), "--part", "test", "--json")
    assert held_out.exit_code == 0, held_out.output
    assert json.loads(held_out.stdout)["samples"] == 1  # 20 % of 5

    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"name: p\nfamily: asr\nbase_model: {NANO}\nstages:\n  - name: s\n    output_name: m\n"
        f"    train: {{kind: folder, path: {folder}}}\n"
        f"    evals:\n      - name: dictation_test\n        role: primary\n"
        f"        data: {{kind: folder, path: {folder}, part: test}}\n", encoding="utf-8")
    from_pipeline = _evaluate("--data", f"{pipeline}:dictation_test", "--json")
    assert from_pipeline.exit_code == 0, from_pipeline.output
    assert json.loads(from_pipeline.stdout)["predictions"] == json.loads(held_out.stdout)["predictions"]

    unknown = _evaluate("--data", f"{pipeline}:nope")
    assert unknown.exit_code == 2 and "no eval set named 'nope'" in unknown.output and "dictation_test" in unknown.output


def test_ct2_engine_scores_the_export_on_the_same_features(manifest, tmp_path):
    from core.ct2.export import export_ct2

    exported = export_ct2(NANO, tmp_path / "nano-ct2", "float32")
    wrong_engine = runner.invoke(app, ["evaluate", str(exported), "--data", str(manifest)])
    assert wrong_engine.exit_code == 2 and "--engine ct2" in wrong_engine.output

    ct2 = runner.invoke(app, ["evaluate", str(exported), "--engine", "ct2", "--data", str(manifest), "--json",
                              "--threads", "1"])
    assert ct2.exit_code == 0, ct2.output
    hf = _evaluate("--data", str(manifest), "--json")
    ct2_report, hf_report = json.loads(ct2.stdout), json.loads(hf.stdout)
    assert ct2_report["engine"] == "ct2" and ct2_report["window_s"] == 6
    # float32, greedy, identical log-Mel features: the same transcripts as Transformers.
    assert [r["prediction"] for r in ct2_report["predictions"]] == [r["prediction"] for r in hf_report["predictions"]]
