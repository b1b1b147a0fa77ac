"""core.llm.LlmClient: the environment convention, the retired names, and errors that never
carry the API key, against a local HTTP server that answers like a failing endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.llm import LlmClient, LlmError

KEY = "sk-unit-0123456789abcdefghijkl"


class FailingEndpoint:
    """Answers every POST with ``status`` and an error body that echoes the Authorization header."""

    def __init__(self, status: int):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                body = json.dumps({"error": {"message": f"rejected {self.headers.get('Authorization')}",
                                             "type": "invalid_request_error"}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_environment_convention():
    assert LlmClient.from_env(environ={}) is None
    assert LlmClient.from_env(environ={"PALIER_LLM_MODEL": "m"}) is None  # no endpoint, no key
    local = LlmClient.from_env(environ={"PALIER_LLM_MODEL": "m", "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert (local.model, local.base_url, local.api_key) == ("m", "http://127.0.0.1:8000/v1", None)
    hosted = LlmClient.from_env(environ={"PALIER_LLM_MODEL": "m", "OPENAI_API_KEY": KEY})
    assert hosted.base_url is None and hosted.api_key == KEY
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


def test_endpoint_errors_never_carry_the_key():
    server = FailingEndpoint(401)
    try:
        client = LlmClient("m", server.base_url, api_key=KEY, timeout_s=5, max_retries=0)
        with pytest.raises(LlmError, match="AuthenticationError") as err:
            client.chat("system", "user")
    finally:
        server.close()
    assert not err.value.misconfigured
    assert KEY not in str(err.value) and "[REDACTED]" in str(err.value)
    assert server.requests == 1


def test_retries_are_the_openai_clients_own():
    server = FailingEndpoint(503)
    try:
        with pytest.raises(LlmError, match="InternalServerError"):
            LlmClient("m", server.base_url, timeout_s=5, max_retries=1).chat("s", "u")
    finally:
        server.close()
    assert server.requests == 2  # the first try and one retry
