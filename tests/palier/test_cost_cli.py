"""`palier run --plan` shows a search and its GPU hours and cost; a run above `budget:` is refused
before anything starts (no server needed for either)."""

import yaml
from typer.testing import CliRunner

from palier.cli import app
from repo_paths import ROOT

runner = CliRunner()


def test_fr_plan_shows_the_search_and_its_gpu_hours_and_cost(tmp_path, monkeypatch):
    monkeypatch.setenv("PALIER_HOME", str(tmp_path))
    result = runner.invoke(app, ["run", str(ROOT / "pipelines" / "fr.yaml"), "--plan"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "searches     4 trials (tpe, 4 at a time): training.learning_rate in [3e-06, 3e-05] log" in out
    assert "exp1-mls  [modal H100]  20000 steps × 0.9 s (declared) = 5.00 GPU h × $3.9492/h = $19.75" in out
    assert "exp2-common-voice  [modal H100]  4 trials × 15000 steps × 0.9 s (declared) = 15.00 GPU h" in out
    assert "total  20.00 GPU h, $78.98 (+ 2 stage(s) not estimated)" in out


def test_a_run_over_budget_is_refused_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("PALIER_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plan = yaml.safe_load((ROOT / "pipelines" / "fr.yaml").read_text(encoding="utf-8"))
    plan["budget"] = {"usd": 50.0}
    plan["stages"] = plan["stages"][:2]
    for stage in plan["stages"]:
        stage["train"] = {"kind": "csv", "path": "train.csv"}
    path = tmp_path / "fr-budget.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert "estimated cost $78.98 is above budget.usd $50.00" in result.output
    assert "palier up" not in result.output  # refused on the budget, before looking for servers
