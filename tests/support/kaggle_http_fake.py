"""A local stand-in for Kaggle's HTTP API under the installed kaggle 2.2.4 client: it replaces
``requests.Session.send`` (the transport the client's KaggleHttpClient uses), so the client's
own request building (URL per RPC, JSON body) and response parsing (kagglesdk types, its HTTP
error handling) run for real. Answers are queued per RPC name, e.g. "GetKernelSessionStatus"."""

from __future__ import annotations

import json
from collections import defaultdict

import requests


class FakeKaggleHTTP:
    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        self.answers: dict[str, list[tuple[int, dict]]] = defaultdict(list)

    def answer(self, rpc: str, *answers: tuple[int, dict]) -> None:
        self.answers[rpc].extend(answers)

    def send(self, session, request, **_):
        rpc = request.url.rsplit("/", 1)[1]
        self.requests.append((rpc, json.loads(request.body or b"{}")))
        queue = self.answers[rpc]
        status, body = queue.pop(0) if queue else (404, {"code": 404, "message": f"{rpc}: not found"})
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url, request
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps(body).encode()
        return response

    def sent(self, rpc: str) -> list[dict]:
        return [body for name, body in self.requests if name == rpc]
