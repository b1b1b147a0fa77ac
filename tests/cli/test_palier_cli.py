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
