"""The optional last step of a stage (``export:`` in the pipeline file), and ``palier export --to ct2``."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from core.config import load_pipeline
from core.contracts import StageResult
from core.plan import plan
from tiny import tiny_asr_pipeline

pytestmark = pytest.mark.integration


def test_a_stage_with_export_writes_a_verified_ct2_model(tmp_path, tiny_whisper, speech_cache):
    path = tiny_asr_pipeline(tmp_path / "p.yaml", tiny_whisper, stages=1,
                             export={"quantization": "int8", "verify_samples": 2})
    spec = plan(load_pipeline(path), code_version="test", pipeline_file=str(path))[0]
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "core.stage", "--spec", str(spec.write(out / "spec.json")),
                           "--out", str(out), "--cache-dir", str(speech_cache)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    result = StageResult.model_validate_json((out / "metrics.json").read_text())
    exported = result.exported
    assert exported["format"] == "ct2" and exported["quantization"] == "int8" and exported["path"] == "export-ct2"
    check = exported["verification"]
    assert check["samples"] == 2 and check["ct2_multilingual"] and check["ct2_decoded_languages"] == ["fr"]
    assert (out / "export-ct2" / "model.bin").exists() and (out / "export-ct2" / "tokenizer.json").exists()
    assert "export" in result.timings_s
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "log" and e["message"].startswith("exported export-ct2") for e in events)


def test_a_stage_without_export_exports_nothing(tmp_path, tiny_whisper):
    path = tiny_asr_pipeline(tmp_path / "p.yaml", tiny_whisper, stages=1)
    spec = plan(load_pipeline(path), code_version="test", pipeline_file=str(path))[0]
    assert spec.stage.export is None


def test_cli_exports_and_verifies(tmp_path, tiny_whisper, french_audio):
    from palier.cli import app

    out = tmp_path / "exported"
    result = CliRunner().invoke(app, ["export", str(tiny_whisper), "--to", "ct2", "--out", str(out), "--quantization", "int8",
                                      "--verify", french_audio[0], "--verify", french_audio[1]])
    assert result.exit_code == 0, result.output
    assert "verified on 2 utterances" in result.output and "multilingual=True" in result.output
    report = json.loads((out / "palier_verification.json").read_text())
    assert report["samples"] == 2 and report["ct2_decoded_languages"] == ["fr"]

    bad = CliRunner().invoke(app, ["export", str(tiny_whisper), "--to", "ct2", "--out", str(tmp_path / "x"),
                                   "--quantization", "int4"])
    assert bad.exit_code == 2
