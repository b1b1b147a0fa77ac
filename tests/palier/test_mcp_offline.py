"""`palier mcp` with no service running, through the real `mcp` client connected in-process: the
answers that need no server (preflight, playbooks, a log's diagnosis), the guards that act before
any server is asked (a blocked run starts nothing), and the errors when a service is missing."""

import asyncio
import json

import pytest

from repo_paths import ROOT
from tiny import tiny_asr_pipeline

SECRET = "hf_offlineCanary0123456789abcdefXYZ"


@pytest.fixture
def offline(monkeypatch, palier_home):
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("PALIER_PIPELINES_DIR", str(ROOT / "pipelines"))


def _calls(steps):
    from mcp import Client

    from palier.mcp_server import build_server

    async def session():
        async with Client(build_server()) as client:
            return [await client.call_tool(name, args) for name, args in steps]

    return asyncio.run(session())


def test_guards_and_errors_without_services(offline, tmp_path):
    blocked = tiny_asr_pipeline(tmp_path / "blocked.yaml", ROOT / "models" / "nano-whisper-fr", stages=1,
                                name="blocked", lexicon=tmp_path / "missing-lexicon.txt")
    log = tmp_path / "stage.log"
    gated = (ROOT / "tests/agent/logs/hf_gated_repo.log").read_text(encoding="utf-8")
    log.write_text(f"{gated}\nOSError: cannot access gated repo with token {SECRET}\n", encoding="utf-8")
    results = _calls([
        ("run_pipeline", {"pipeline": str(blocked)}),
        ("run_pipeline", {"pipeline": "pipelines/demo.yaml"}),
        ("list_pipelines", {}),
        ("move_alias", {"model": "demo-whisper-fr-general", "alias": "champion", "version": "1", "confirm": True}),
        ("diagnose", {"log_path": str(log)}),
        ("search_playbooks", {"query": "lexicon"}),
        ("pipeline_status", {"pipeline": "demo", "unexpected": 1}),
    ])
    refused, demo, listed, alias, diagnosis, search, status = results
    assert not refused.is_error and refused.structured_content["started"] is False
    findings = refused.structured_content["preflight"]["findings"]
    assert any(f["rule_id"] == "data.lexicon-exists" and f["severity"] == "block" for f in findings)
    # The demo passes its preflight; starting it needs Prefect, which is not there: an error, not a crash.
    assert demo.is_error and "Prefect is not reachable" in demo.content[0].text
    assert listed.is_error and "MLflow not configured" in listed.content[0].text
    assert alias.is_error and "MLflow is not reachable" in alias.content[0].text
    assert diagnosis.structured_content["diagnosis"]["kind"] == "auth_error"
    assert search.structured_content["results"][0]["cite"].startswith("playbooks/")
    assert status.is_error and "MLflow" in status.content[0].text
    every = json.dumps([[c.text for c in r.content] for r in results] + [r.structured_content for r in results])
    assert SECRET not in every
    assert "[REDACTED]" in json.dumps(diagnosis.structured_content["diagnosis"]["evidence"])
