"""core.llm.LlmClient's configuration: the environment convention, arguments winning over it,
the retired names refused with their replacement (endpoint calls: tests/agent/test_llm.py)."""

from __future__ import annotations

import pytest

from core.llm import LlmClient, LlmError

KEY = "sk-unit-0123456789abcdefghijkl"


def test_environment_convention():
    assert LlmClient.from_env(environ={}) is None
    assert LlmClient.from_env(environ={"PALIER_LLM_MODEL": "m"}) is None  # no endpoint, no key
    local = LlmClient.from_env(environ={"PALIER_LLM_MODEL": "m", "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert (local.model, local.base_url, local.api_key) == ("m", "http://127.0.0.1:8000/v1", None)
    hosted = LlmClient.from_env(environ={"PALIER_LLM_MODEL": "m", "OPENAI_API_KEY": KEY})
    assert hosted.base_url is None and hosted.api_key == KEY and KEY not in repr(hosted)
    given = LlmClient.from_env("http://h:1/v1", "x", environ={"PALIER_LLM_MODEL": "m", "OPENAI_BASE_URL": "http://e/v1"})
    assert (given.model, given.base_url) == ("x", "http://h:1/v1")  # arguments win


@pytest.mark.parametrize(("old", "new"), [("PALIER_LLM_BASE_URL", "OPENAI_BASE_URL"),
                                          ("PALIER_LLM_API_KEY", "OPENAI_API_KEY")])
def test_a_retired_variable_is_an_error_naming_its_replacement(old, new):
    with pytest.raises(LlmError, match=f"{old} is no longer read: set {new} instead") as err:
        LlmClient.from_env(environ={old: "x", "PALIER_LLM_MODEL": "m", "OPENAI_BASE_URL": "http://e/v1"})
    assert err.value.misconfigured


def test_required_says_what_to_set():
    with pytest.raises(LlmError, match="PALIER_LLM_MODEL.*OPENAI_BASE_URL.*OPENAI_API_KEY.*--flag") as err:
        LlmClient.required(purpose="this test", hint=", or pass --flag", environ={})
    assert err.value.misconfigured
