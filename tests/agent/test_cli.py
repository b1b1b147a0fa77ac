"""The agent's commands (check, diagnose, playbook, ask, chat) through palier's Typer app."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from palier.cli import app

LOGS = "tests/agent/logs"


@pytest.fixture
def run(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no real credentials
    monkeypatch.setenv("PALIER_HOME", str(tmp_path / "palier-home"))  # no running services' addresses
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(app, list(args), **kw)


def _local_pipeline(tmp_path, **stage):
    model = tmp_path / "models" / "nano-whisper-fr"
    model.mkdir(parents=True)
    data = tmp_path / "train.csv"
    data.write_text("audio,sentence\n", encoding="utf-8")
    raw = {
        "name": "demo", "family": "asr", "base_model": str(model),
        "backend": {"kind": "local", "device": "cpu"},
        "stages": [{"name": "general", "output_name": "demo-general",
                    "train": {"kind": "csv", "path": str(data)},
                    "evals": [{"name": "general", "role": "primary", "data": {"kind": "csv", "path": str(data)}}],
                    "whisper": {"chunk_length": 6}, **stage}],
    }
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_check_passes_with_warnings(run, tmp_path):
    result = run("check", str(_local_pipeline(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "whisper.guard-set" in result.output and "OK to launch" in result.output


def test_check_blocked_exits_1_and_json(run, tmp_path):
    path = _local_pipeline(tmp_path, backend={"kind": "modal", "gpu": "H200"})
    result = run("check", str(path), "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["pipeline_file"] == str(path)
    assert {f["rule_id"] for f in payload["findings"] if f["severity"] == "block" and not f["autofixed"]} == {
        "backend.modal-credentials"}
    assert payload["changes"][0]["new"] == "H100"
    assert payload["facts_summary"]["credentials"]["modal"] == "missing"


@pytest.mark.parametrize(("content", "needle"), [
    (None, "file not found"),
    ("name: [unclosed", "not valid YAML"),
    ("name: demo\nfamily: asr\nstages: []\n", "base_model"),
])
def test_check_bad_input_exits_2_naming_the_file(run, tmp_path, content, needle):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = run("check", str(path))
    assert result.exit_code == 2
    assert str(path) in result.output and needle in result.output
    assert "Traceback" not in result.output


def test_diagnose_human_and_json(run):
    result = run("diagnose", f"{LOGS}/cuda_oom_with_deprecation_warning.log")
    assert result.exit_code == 0 and "cuda_oom" in result.output and "halve_batch" in result.output
    payload = json.loads(run("diagnose", f"{LOGS}/map_hang.log", "--json", "--no-log-age").stdout)
    # the log alone: a probable hang, said as such, with what would confirm it and no remedy
    assert payload["kind"] == "map_hang" and payload["to_confirm"] and payload["remedy"] is None


def test_diagnose_uses_the_log_files_age(run, tmp_path):
    import os
    import shutil
    import time

    log = tmp_path / "stage.log"
    shutil.copy(f"{LOGS}/map_hang.log", log)
    fresh = json.loads(run("diagnose", str(log), "--json").stdout)
    assert fresh["kind"] == "none" and any(e.startswith("log file: last written") for e in fresh["evidence"])
    os.utime(log, (time.time() - 3600, time.time() - 3600))
    old = json.loads(run("diagnose", str(log), "--json").stdout)
    assert (old["kind"], old["to_confirm"]) == ("map_hang", None)
    assert old["remedy"]["action"] == "single_process_map"
    assert any(e.startswith("log file: last written 3600 s ago") for e in old["evidence"])
    forced = json.loads(run("diagnose", str(log), "--json", "--log-age", "5").stdout)
    assert forced["kind"] == "none"


def test_diagnose_with_events(run, tmp_path):
    events = tmp_path / "events.jsonl"
    records = [{"t": 1000.0, "type": "phase", "phase": "prepare", "status": "start"},
               {"t": 1001.0, "type": "heartbeat", "phase": "prepare", "step": None, "total": None}]
    events.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    payload = json.loads(run("diagnose", f"{LOGS}/map_hang.log", "--events", str(events), "--json").stdout)
    assert (payload["kind"], payload["failure_id"]) == ("map_hang", "map-hang-progress-bar")
    # an events.jsonl alone is a log too
    payload = json.loads(run("diagnose", str(events), "--json").stdout)
    assert payload["kind"] == "map_hang"


def test_diagnose_bad_input_exits_2(run, tmp_path):
    missing = run("diagnose", str(tmp_path / "nope.log"))
    assert missing.exit_code == 2 and "nope.log" in missing.output and "not found" in missing.output
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n", encoding="utf-8")
    bad_events = run("diagnose", f"{LOGS}/clean_run.log", "--events", str(junk))
    assert bad_events.exit_code == 2 and "junk.jsonl" in bad_events.output
    folder = run("diagnose", str(tmp_path))
    assert folder.exit_code == 2 and "is a folder" in folder.output


def test_playbook_list_show_search(run):
    listing = run("playbook")
    assert listing.exit_code == 0 and "Whisper FR" in listing.output and "rules" in listing.output
    shown = run("playbook", "backend.kaggle-p100")
    assert shown.exit_code == 0 and "machine_shape" in shown.output
    searched = run("playbook", "NCCL watchdog")
    assert searched.exit_code == 0 and "NCCL" in searched.output
    nothing = run("playbook", "zzqqxx")
    assert nothing.exit_code == 2


def test_malformed_playbook_exits_2(run, tmp_path, monkeypatch):
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "x.md").write_text("# X\n```yaml palier-rule\n- nope\n```\n", encoding="utf-8")
    monkeypatch.setenv("PALIER_PLAYBOOKS_DIR", str(tmp_path / "pb"))
    result = run("diagnose", f"{LOGS}/clean_run.log")
    assert result.exit_code == 2 and "x.md" in result.output and "block #1" in result.output


def test_ask_offline_json_and_chat(run):
    payload = json.loads(run("ask", "how do I choose the GPU on Kaggle?", "--json").stdout)
    assert payload["source"] == "offline" and payload["intent"] == "playbook"
    assert any(s["ref"].startswith("playbooks/backends.md#kaggle") for s in payload["sources"])
    assert run("ask", "  ").exit_code == 2
    chat = run("chat", input="pourquoi le H200 bloque ?\nexit\n")
    assert chat.exit_code == 0 and "gVisor" in chat.output


def test_importing_the_agent_stays_light():
    import subprocess
    import sys

    code = ("import sys, agent, palier.cli, agent.diagnosis.file_inputs, agent.chat.respond, agent.chat.tools, agent.base.state, agent.diagnosis.llm_assist; "
            "heavy = [m for m in ('torch', 'transformers', 'mlflow', 'prefect', 'openai', 'trl') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
