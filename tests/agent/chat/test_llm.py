"""The LLM path with the real ``openai`` client against a local scripted Chat Completions
server: tool calls over live MLflow state, labelled answers, redaction, fallbacks."""

from __future__ import annotations

import json

import pytest

from core.llm import LlmClient, LlmError

from agent.chat.respond import ask
from agent.diagnosis.diagnose import diagnose
from agent.base.state import LiveState

SECRET = "hf_QwErTyUiOpAsDfGhJkLzXcVbNm123456"


@pytest.fixture
def live(mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store["uri"])
    return LiveState.from_env()


def _bodies(server) -> str:
    return json.dumps([r["body"] for r in server.requests])


def test_ask_uses_tools_and_labels_the_answer(live, book, scripted_llm, mlflow_store, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    server = scripted_llm([
        {"tool_calls": [{"name": "pipeline_status", "arguments": {"pipeline": "fr"}}]},
        {"tool_calls": [{"name": "compare_stage", "arguments": {"pipeline": "fr", "stage": "exp1"}},
                        {"name": "search_playbooks", "arguments": {"query": "H200 gVisor"}}]},
        {"content": f"exp1 improved WER from 0.142 to 0.098 (run {mlflow_store['exp1']}). Token {SECRET}."},
    ])
    answer = ask(f"How is fr doing? my token is {SECRET}", state=live, playbooks=book)
    assert answer.source == "llm" and answer.intent == "llm"
    assert SECRET not in answer.text and "[REDACTED]" in answer.text
    refs = {s.ref for s in answer.sources}
    assert {mlflow_store["fr_parent"], mlflow_store["exp1"]} <= refs
    assert any(r.startswith("playbooks/whisper-fr.md#h200") for r in refs)
    assert [c["tool"] for c in answer.data["tool_calls"]] == ["pipeline_status", "compare_stage", "search_playbooks"]
    # What reached the model: tools offered, tool results sent back, never a secret.
    assert len(server.requests) == 3
    first = server.requests[0]["body"]
    assert first["model"] == "scripted-model"
    assert {t["function"]["name"] for t in first["tools"]} >= {"pipeline_status", "compare_stage", "explain_failure",
                                                                "next_steps", "search_playbooks", "list_pipelines"}
    last_messages = server.requests[2]["body"]["messages"]
    tool_messages = [m for m in last_messages if m["role"] == "tool"]
    assert len(tool_messages) == 3 and mlflow_store["exp1"] in tool_messages[1]["content"]
    assert SECRET not in _bodies(server)
    assert "sk-test-0123456789abcdefghij" not in _bodies(server)  # the key is only the auth header
    assert server.requests[0]["auth"] == "Bearer sk-test-0123456789abcdefghij"


def test_unknown_tool_and_bad_arguments_are_reported_to_the_model(live, book, scripted_llm):
    server = scripted_llm([
        {"tool_calls": [{"name": "rm_rf", "arguments": {}},
                        {"name": "compare_stage", "arguments": {"nope": 1}}]},
        {"content": "Sorry."},
    ])
    answer = ask("status?", state=live, playbooks=book)
    outputs = [c["output"] for c in answer.data["tool_calls"]]
    assert "unknown tool" in outputs[0]["error"] and "TypeError" in outputs[1]["error"]
    assert answer.text == "Sorry." and len(server.requests) == 2


def test_llm_down_falls_back_to_offline(live, book, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("PALIER_LLM_MODEL", "m")
    answer = ask("où en est fr ?", state=live, playbooks=book)
    assert answer.source == "offline" and answer.data["pipeline"] == "fr"
    assert "LLM unavailable" in answer.text


def test_a_retired_llm_variable_is_said_not_ignored(live, book, log, monkeypatch):
    monkeypatch.setenv("PALIER_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("PALIER_LLM_MODEL", "m")
    answer = ask("où en est fr ?", state=live, playbooks=book)
    assert answer.source == "offline" and "PALIER_LLM_BASE_URL is no longer read: set OPENAI_BASE_URL" in answer.text
    result = diagnose(log("unknown_keyerror.log"), playbooks=book)
    assert result.source == "rules" and "LLM not asked: PALIER_LLM_BASE_URL is no longer read" in result.fix


def test_no_llm_flag_stays_offline(live, book, scripted_llm):
    server = scripted_llm([{"content": "should not be asked"}])
    assert ask("où en est fr ?", state=live, playbooks=book, use_llm=False).source == "offline"
    assert server.requests == []


def test_unknown_log_goes_to_the_llm_labelled(book, log, scripted_llm):
    server = scripted_llm([{"content": json.dumps({
        "kind": "invalid_kind_from_model", "failure_id": "not-a-playbook-id", "confidence": 0.97,
        "evidence": ["KeyError: 'transcription'", "a line the model invented"],
        "fix": f"Rename the column to 'sentence' (text_column). {SECRET}"})}])
    result = diagnose(log("unknown_keyerror.log"), playbooks=book)
    assert result.source == "llm" and result.kind == "unknown" and result.failure_id is None
    assert result.evidence == ["KeyError: 'transcription'"]  # only lines really in the log
    assert result.confidence <= 0.6 and result.remedy is None
    assert SECRET not in result.to_json()
    prompt = server.requests[0]["body"]["messages"]
    assert "cuda-oom (cuda_oom)" in prompt[0]["content"] and "KeyError: 'transcription'" in prompt[1]["content"]


def test_llm_kind_from_the_fixed_list_is_kept(book, scripted_llm):
    scripted_llm([{"content": 'Here: {"kind": "missing_dependency", "failure_id": "missing-module", '
                              '"confidence": 0.5, "evidence": [], "fix": "pip install sentencepiece"}'}])
    result = diagnose("Traceback (most recent call last):\nRuntimeError: sentencepiece backend absent\n",
                      playbooks=book)
    assert (result.kind, result.failure_id, result.source) == ("missing_dependency", "missing-module", "llm")


def test_known_failures_never_ask_the_llm(book, log, scripted_llm):
    server = scripted_llm([{"content": "{}"}])
    assert diagnose(log("cuda_oom_old_format.log"), playbooks=book).source == "rules"
    assert server.requests == []


def test_endpoint_errors_never_carry_the_key(scripted_llm):
    key = "sk-unit-0123456789abcdefghijkl"
    server = scripted_llm([{"status": 401}], api_key=key)
    client = LlmClient("m", server.base_url, api_key=key, timeout_s=5, max_retries=0)
    with pytest.raises(LlmError, match="AuthenticationError") as err:
        client.chat("system", "user")
    assert not err.value.misconfigured
    assert key not in str(err.value) and "[REDACTED]" in str(err.value)
    assert len(server.requests) == 1


def test_retries_are_the_openai_clients_own(scripted_llm):
    server = scripted_llm([{"status": 503}, {"status": 503}, {"content": "never reached"}])
    with pytest.raises(LlmError, match="InternalServerError"):
        LlmClient("m", server.base_url, timeout_s=5, max_retries=1).chat("s", "u")
    assert len(server.requests) == 2  # the first try and one retry
