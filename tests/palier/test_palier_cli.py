import pytest
from typer.testing import CliRunner

from palier.cli import app
from repo_paths import ROOT

runner = CliRunner()


def test_fr_plan_shows_four_stages_and_lineage_without_a_gpu():
    result = runner.invoke(app, ["run", str(ROOT / "pipelines" / "fr.yaml"), "--plan"])
    assert result.exit_code == 0, result.output
    out = result.output
    for i, name in enumerate(["exp1-mls", "exp2-common-voice", "exp3-medical", "exp4-dictations"], 1):
        assert f"{i}. {name}" in out
    assert "starts from  openai/whisper-large-v3" in out
    assert "starts from  output of exp1-mls" in out and "starts from  output of exp3-medical" in out
    assert "gilbert-whisper-l3-fr-base-v1" in out


def test_validate_reports_each_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfamily: asr\nbase_model: m\nstages: []\nextra: 1\n")
    result = runner.invoke(app, ["validate", str(ROOT / "pipelines" / "demo.yaml"), str(bad)])
    assert result.exit_code == 1
    assert "demo (asr, 2 stages" in result.output
    assert "bad.yaml" in result.output and "extra: unknown key" in result.output


def test_run_without_tracking_server_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PALIER_HOME", str(tmp_path))
    result = runner.invoke(app, ["run", str(ROOT / "pipelines" / "demo.yaml")])
    assert result.exit_code == 2 and "palier up" in result.output


def test_help_lists_every_command_under_its_group_whatever_the_width():
    narrow = runner.invoke(app, ["--help"], env={"COLUMNS": "50"})
    wide = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert narrow.exit_code == 0 and narrow.output == wide.output
    lines = narrow.output.splitlines()
    headings = [line[:-1] for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["Options", "Services", "Pipelines", "Agent", "Data", "Models"]
    listed = [line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")
              and not line.strip().startswith("-")]
    for name in ("up", "down", "status", "validate", "run", "summary", "watch", "check", "diagnose", "playbook",
                 "ask", "chat", "mcp", "generate-training", "check-dataset", "data", "query", "export", "import-ct2",
                 "evaluate"):
        assert name in listed, name
    assert "export-ct2" not in listed
    text = " ".join(narrow.output.split())
    # each check says what it checks and when to use it
    assert "validate Check pipeline files: YAML, schema, inheritance, lineage. Reads no data; use while editing" in text
    assert "check Preflight a pipeline against this machine" in text and "Before `palier run`" in text
    assert "check-dataset Check a JSON Lines training set" in text and "Before training an sft or token_cls" in text
    assert "data `data check MANIFEST.csv`: does every audio file of a speech manifest load?" in text
    assert "Exit codes: 0 ok; 1 the command ran and found a problem" in text


def test_mcp_over_http_refuses_a_port_in_use():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["mcp", "--http", str(port)])
    assert result.exit_code == 2 and f"port {port} on 127.0.0.1 is already in use" in result.output


def test_export_needs_a_format_and_refuses_options_of_another_one(tmp_path):
    missing = runner.invoke(app, ["export", str(tmp_path)])
    assert missing.exit_code == 2 and "--to" in missing.output
    unknown = runner.invoke(app, ["export", str(tmp_path), "--to", "onnx"])
    assert unknown.exit_code == 2 and "merged" in unknown.output and "ct2" in unknown.output
    mixed = runner.invoke(app, ["export", str(tmp_path), "--to", "merged", "--quantization", "int8"])
    assert mixed.exit_code == 2
    assert "error: --quantization applies to --to ct2 only, not --to merged" in mixed.output


def test_gguf_export_without_the_converter_fails_before_merging(tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = runner.invoke(app, ["export", str(tmp_path / "no-model"), "--to", "gguf"])
    assert result.exit_code == 2
    assert "convert_hf_to_gguf.py" in result.output and "LLAMA_CPP_DIR" in result.output
    assert not (tmp_path / "no-model-merged").exists()


def test_errors_are_one_line_with_secrets_redacted(tmp_path, monkeypatch):
    secret = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("PALIER_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["run", str(tmp_path / f"{secret}.yaml"), "--plan"])
    assert result.exit_code == 2
    assert secret not in result.output and "[REDACTED]" in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error: ")], result.output


def test_import_ct2_needs_exactly_one_source():
    result = runner.invoke(app, ["import-ct2"])
    assert result.exit_code == 2 and "error: give either CT2_DIR or --package NAME" in result.output


def test_check_dataset_tells_a_missing_file_from_a_bad_one(tmp_path):
    missing = runner.invoke(app, ["check-dataset", str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 2 and "absent.jsonl: dataset not found" in missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\nnot json\n', encoding="utf-8")
    found = runner.invoke(app, ["check-dataset", str(bad)])
    assert found.exit_code == 1 and "line 2: not valid JSON" in found.output


@pytest.mark.e2e
def test_run_blocked_by_preflight_prints_the_findings_and_no_traceback(services, tiny_whisper, tmp_path):
    import subprocess

    from e2e_services import BIN
    from tiny import tiny_asr_pipeline

    pipeline = tiny_asr_pipeline(tmp_path / "blocked.yaml", tiny_whisper, stages=1, name="blocked",
                                 lexicon=tmp_path / "no-such-lexicon.txt")
    proc = subprocess.run([str(BIN / "palier"), "run", str(pipeline)], capture_output=True, text=True,
                          env=services["env"], timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error: pipeline blocked not started: preflight blocked the pipeline" in proc.stderr
    assert "[BLOCK] data.lexicon-exists" in proc.stderr and " -> " in proc.stderr  # the finding and its fix
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_watch_in_a_pipe_prints_plain_progress_lines(services, tiny_run):
    import subprocess

    from e2e_services import BIN

    assert tiny_run["flow_run_id"], tiny_run["proc"].stdout[-2000:]
    proc = subprocess.run([str(BIN / "palier"), "watch", tiny_run["flow_run_id"]], capture_output=True, text=True,
                          env=services["env"], timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "tiny/general train: started" in lines and "tiny/medical train: started" in lines
    assert any(line.startswith("tiny/general train: done 2/2 (100%) in ") for line in lines), lines
    assert any(line.startswith("tiny/general train: 2/2 (100%), ") and line.endswith(" elapsed") for line in lines), lines
    assert any(line.startswith("tiny/medical baseline: done") for line in lines), lines
    assert lines[-1] == f"flow run {tiny_run['flow_run_id']}: COMPLETED"
    assert not any(mark in proc.stdout for mark in ("\x1b[", "━")), proc.stdout  # no bar, no escape code
