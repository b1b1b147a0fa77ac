"""`palier mcp` from an assistant's side: the official `mcp` client talks to the real server over
stdio and over streamable HTTP, against the session's real Prefect and MLflow servers and the
tiny pipeline's finished run. Every tool is called and its answer checked; bad arguments are
tool errors; a run refused by the preflight starts nothing; canary secrets never come back."""

import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from e2e_services import BIN
from repo_paths import ROOT
from tiny import tiny_asr_pipeline

pytestmark = pytest.mark.e2e

TOOLS = {"list_pipelines", "pipeline_status", "compare_stages", "worst_predictions", "champion", "diagnose",
         "preflight", "search_playbooks", "services_status", "run_pipeline", "move_alias"}
CANARIES = {"OPENAI_API_KEY": "sk-canaryOPENAI0123456789abcdef", "HF_TOKEN": "hf_canaryHFTOKEN0123456789abcdef",
            "MODAL_TOKEN_SECRET": "as-canaryMODAL0123456789abcd", "KAGGLE_KEY": "canary-kaggle-key-0123456789"}
LOG_CANARY = "canaryInTheLog0123456789"  # not in the environment: only its shape (api_key=...) gives it away


def _server_env(services) -> dict[str, str]:
    return {**services["env"], **CANARIES, "PYTHONPATH": os.environ.get("PYTHONPATH", f"{ROOT}:{ROOT / 'src'}"),
            "PALIER_PIPELINES_DIR": str(services["pipelines"])}


def _failing_log(tmp_path: Path) -> Path:
    log = tmp_path / "stage.log"
    text = (ROOT / "tests" / "agent" / "logs" / "cuda_oom_old_format.log").read_text(encoding="utf-8")
    planted = "".join(f"env {k}={v}\n" for k, v in CANARIES.items()) + f"loading with api_key={LOG_CANARY}\n"
    log.write_text(planted + text, encoding="utf-8")
    return log


def _blocked_pipeline(tmp_path: Path, services) -> Path:
    """A copy of the tiny pipeline whose lexicon does not exist: the preflight blocks it."""
    import yaml

    model = Path(yaml.safe_load((services["pipelines"] / "tiny.yaml").read_text(encoding="utf-8"))["base_model"])
    return tiny_asr_pipeline(tmp_path / "blocked.yaml", model, stages=1, name="mcp-blocked",
                             lexicon=tmp_path / "no-such-lexicon.txt")


class Calls:
    """Every answer the test saw, to search for canaries at the end."""

    def __init__(self, client):
        self.client, self.seen = client, []

    async def ok(self, name: str, args: dict | None = None) -> dict:
        result = await self.client.call_tool(name, args or {})
        self.seen.append(result.content[0].text)
        assert not result.is_error, f"{name}: {result.content[0].text}"
        self.seen.append(json.dumps(result.structured_content))
        return result.structured_content

    async def error(self, name: str, args: dict) -> str:
        result = await self.client.call_tool(name, args)
        self.seen.append(result.content[0].text)
        assert result.is_error, f"{name} should fail: {result.content[0].text[:500]}"
        return result.content[0].text

    def assert_no_secret(self, *more: str) -> None:
        text = "\n".join([*self.seen, *more])
        for value in [*CANARIES.values(), LOG_CANARY]:
            assert value not in text


async def _read_tools(calls: Calls, tmp_path: Path, services) -> None:
    listed = await calls.ok("list_pipelines")
    tiny = next(r for r in listed["rows"] if r["pipeline"] == "tiny")
    assert tiny["state"] in ("succeeded", "candidate") and tiny["stages"] == 2  # 2 steps rarely beat the gate
    status = await calls.ok("pipeline_status", {"pipeline": "tiny"})
    assert [s["stage"] for s in status["stages"]] == ["general", "medical"]
    assert {s["kind"] for s in status["sources"]} >= {"mlflow_run"} and status["run_status"] == "succeeded"
    assert "nope" in await calls.error("pipeline_status", {"pipeline": "nope"})

    versus = await calls.ok("compare_stages", {"pipeline": "tiny", "stage": "medical", "eval_set": "general_test"})
    assert versus["stage"]["stage"] == "medical" and versus["rows"]
    assert {r["eval_set"] for r in versus["rows"]} == {"general_test"}
    assert all("baseline" in r and "final" in r for r in versus["rows"] if r["metric"] == "wer")
    pair = await calls.ok("compare_stages", {"pipeline": "tiny", "stage": "general", "other_stage": "medical"})
    wer = next(r for r in pair["side_by_side"] if r["eval_set"] == "general_test" and r["metric"] == "wer")
    assert wer["diff"] == pytest.approx(wer["second"] - wer["first"])
    assert "exp9" in await calls.error("compare_stages", {"pipeline": "tiny", "stage": "exp9"})

    worst = await calls.ok("worst_predictions", {"pipeline": "tiny", "stage": "medical", "k": 2})
    assert worst["eval_set"] == "medical_test" and worst["total"] == 4 and len(worst["worst"]) == 2
    assert worst["worst"][0]["error"] >= worst["worst"][1]["error"]
    assert {"reference", "prediction"} <= set(worst["worst"][0])
    assert "nowhere" in await calls.error("worst_predictions", {"pipeline": "tiny", "eval_set": "nowhere"})

    best = await calls.ok("champion", {"model": "tiny-medical"})
    assert [v["version"] for v in best["versions"]] == ["1"] and best["aliases"]["candidate"] == "1"
    if best["champion_version"]:
        assert best["champion"]["stage"] == "medical" and best["champion"]["row"]["eval_set"] == "medical_test"
    assert "tiny-medical" in await calls.error("champion", {"model": "no-such-model"})

    found = await calls.ok("diagnose", {"log_path": str(_failing_log(tmp_path))})
    assert found["diagnosis"]["kind"] == "cuda_oom" and found["diagnosis"]["evidence"]
    assert "not found" in await calls.error("diagnose", {"log_path": str(tmp_path / "missing.log")})
    healthy = await calls.ok("diagnose", {"pipeline": "tiny", "stage": "general"})
    assert healthy["failed"] is False and healthy["log_diagnosis"]["kind"] in ("none", "unknown")

    hits = await calls.ok("search_playbooks", {"query": "lexique introuvable"})
    assert hits["results"] and all(r["cite"].startswith("playbooks/") for r in hits["results"])
    services_now = await calls.ok("services_status")
    assert {s["name"]: s["reachable"] for s in services_now["services"]} == {"mlflow": True, "prefect": True}


async def _refused_run(calls: Calls, tmp_path: Path, services) -> None:
    from mlflow import MlflowClient

    blocked = _blocked_pipeline(tmp_path, services)
    check = await calls.ok("preflight", {"pipeline": str(blocked)})
    assert check["ok"] is False and check["blocking"] >= 1
    assert any(f["rule_id"] == "data.lexicon-exists" and "no-such-lexicon" in f["message"] for f in check["findings"])
    before = _flow_runs(services)
    refused = await calls.ok("run_pipeline", {"pipeline": str(blocked)})
    assert refused["started"] is False and refused["preflight"]["ok"] is False and "preflight" in refused["refused"]
    assert _flow_runs(services) == before
    assert MlflowClient(services["env"]["MLFLOW_TRACKING_URI"]).get_experiment_by_name("palier/mcp-blocked") is None
    assert "no-such.yaml" in await calls.error("run_pipeline", {"pipeline": str(tmp_path / "no-such.yaml")})
    assert "exp7" in await calls.error("run_pipeline", {"pipeline": "tiny", "stage": "exp7"})


def _flow_runs(services) -> int:
    """How many flow runs the Prefect server holds (its REST API's count)."""
    request = urllib.request.Request(services["env"]["PREFECT_API_URL"] + "/flow_runs/count", data=b"{}",
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.loads(response.read()))


def test_stdio_every_read_tool_errors_and_a_refused_run(services, tiny_run, tmp_path):
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    assert tiny_run["proc"].returncode == 0, tiny_run["proc"].stdout[-3000:]
    params = StdioServerParameters(command=str(BIN / "palier"), args=["mcp"], env=_server_env(services),
                                   cwd=str(tmp_path))

    async def session(errlog) -> Calls:
        async with stdio_client(params, errlog=errlog) as (read, write), \
                ClientSession(read, write, read_timeout_seconds=300) as client:
            await client.initialize()
            calls = Calls(client)
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            resources = {str(r.uri) for r in (await client.list_resources()).resources}
            assert "playbook://config-checks" in resources and len(resources) >= 5
            book = await client.read_resource("playbook://config-checks")
            assert "lexicon" in book.contents[0].text
            await _read_tools(calls, tmp_path, services)
            await _refused_run(calls, tmp_path, services)
            return calls

    with (tmp_path / "server.err").open("w+", encoding="utf-8") as errlog:
        calls = asyncio.run(session(errlog))
        errlog.seek(0)
        calls.assert_no_secret(errlog.read())


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"palier mcp --http {port} did not listen within {timeout_s} s")


def _wait_flow_run(services, flow_run_id: str, timeout_s: float = 600) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        url = f"{services['env']['PREFECT_API_URL']}/flow_runs/{flow_run_id}"
        with urllib.request.urlopen(url, timeout=30) as response:
            state = json.loads(response.read())["state"]["type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(2)
    raise AssertionError(f"flow run {flow_run_id} still running after {timeout_s} s")


async def _actions(calls: Calls, services) -> None:
    from mlflow import MlflowClient

    started = await calls.ok("run_pipeline", {"pipeline": "broken", "stage": "general"})
    assert started["started"] is True and started["deployment"] == "exp-pipeline/broken"
    assert started["prefect_ui"].endswith(started["flow_run_id"])
    assert _wait_flow_run(services, started["flow_run_id"]) == "FAILED"  # its model folder holds no model
    why = await calls.ok("diagnose", {"pipeline": "broken", "stage": "general"})
    assert why["failed"] is True and why["stage"]["status"] == "failed" and why["kind"]
    assert any(s["kind"] == "mlflow_run" for s in why["sources"])

    asked = await calls.ok("move_alias", {"model": "tiny-general", "alias": "mcp-test", "version": "1"})
    assert asked["moved"] is False and asked["would_move"] == {"model": "tiny-general", "alias": "mcp-test",
                                                              "from_version": None, "to_version": "1"}
    client = MlflowClient(services["env"]["MLFLOW_TRACKING_URI"])
    assert "mcp-test" not in client.get_registered_model("tiny-general").aliases
    try:
        moved = await calls.ok("move_alias", {"model": "tiny-general", "alias": "mcp-test", "version": "1",
                                              "confirm": True})
        assert moved["moved"] is True and moved["to_version"] == "1"
        assert client.get_model_version_by_alias("tiny-general", "mcp-test").version == "1"
        assert (await calls.ok("champion", {"model": "tiny-general"}))["aliases"]["mcp-test"] == "1"
    finally:
        client.delete_registered_model_alias("tiny-general", "mcp-test")
    assert "versions: 1" in await calls.error("move_alias", {"model": "tiny-general", "alias": "champion",
                                                            "version": "99", "confirm": True})
    assert (await calls.ok("preflight", {"pipeline": "tiny"}))["ok"] is True


def test_http_runs_a_pipeline_diagnoses_it_and_moves_an_alias_only_when_confirmed(services, tiny_run, tmp_path):
    from mcp import Client

    from palier.services import free_port

    assert tiny_run["proc"].returncode == 0, tiny_run["proc"].stdout[-3000:]
    port = free_port()
    proc = subprocess.Popen([str(BIN / "palier"), "mcp", "--http", str(port)], env=_server_env(services),
                            cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(port, proc)

        async def session() -> Calls:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=300) as client:
                assert {t.name for t in (await client.list_tools()).tools} == TOOLS
                calls = Calls(client)
                await _actions(calls, services)
                return calls

        calls = asyncio.run(session())
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert "127.0.0.1" in err
    calls.assert_no_secret(out, err)
