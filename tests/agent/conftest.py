"""Fixtures for the agent tests: playbooks, injectable environment facts, stage contexts,
a real (sqlite) MLflow store with palier-shaped runs, and a scripted OpenAI-compatible server."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.config.pipeline import deep_merge

from agent.rules.context import StageContext
from agent.base.facts import EnvFacts
from agent.rules import load_checked_playbooks
from core.config.pipeline import deep_merge

LOGS = Path(__file__).parent / "logs"

ALL_LIBS = {
    name: "1.0" for name in (
        "torch", "transformers", "tokenizers", "accelerate", "datasets", "peft", "trl", "bitsandbytes", "jiwer",
        "evaluate", "soundfile", "librosa", "seqeval", "scikit-learn", "ctranslate2", "faster-whisper",
        "huggingface-hub", "modal", "kaggle", "mlflow", "prefect", "openai",
    )
}
# What the installed (current) libraries accept, so tests never import transformers/trl.
MODERN_SIGNATURES = {
    "transformers:Seq2SeqTrainingArguments": ["output_dir", "eval_strategy", "generation_max_length", "predict_with_generate"],
    "transformers:Seq2SeqTrainer": ["model", "args", "processing_class"],
    "transformers:TrainingArguments": ["output_dir", "eval_strategy"],
    "trl:SFTTrainer": ["model", "args", "processing_class", "peft_config"],
    "trl:SFTConfig": ["output_dir", "max_length", "dataset_text_field"],
}


def make_facts(**overrides: Any) -> EnvFacts:
    base: dict[str, Any] = {
        "kernel": "6.1.0",
        "libraries": dict(ALL_LIBS),
        "cuda_available": False,
        "credentials": {"modal": True, "kaggle": True, "huggingface": True, "openai": False},
        "api_signatures": copy.deepcopy(MODERN_SIGNATURES),
    }
    base.update(overrides)
    return EnvFacts(**base)


BASE_RAW = {
    "name": "fr",
    "family": "asr",
    "base_model": "openai/whisper-large-v3",
    "stages": [
        {
            "name": "exp1",
            "output_name": "gilbert-whisper-l3-fr-base-v1",
            "train": {"kind": "hub", "id": "facebook/multilingual_librispeech", "config": "french"},
            "evals": [
                {"name": "mls_test", "role": "primary",
                 "data": {"kind": "hub", "id": "facebook/multilingual_librispeech", "config": "french", "split": "test"}},
                {"name": "en_guard", "role": "guard", "max_regression": 0.02, "language": "english",
                 "data": {"kind": "csv", "path": "data/en_guard.csv"}},
            ],
            "training": {"per_device_train_batch_size": 16, "fp16": True, "generation_max_length": 225},
            "backend": {"kind": "modal", "gpu": "H100"},
        }
    ],
}


def make_config(stage_overrides: dict[str, Any] | None = None, **top: Any):
    from core.config import parse_pipeline

    raw = deep_merge(BASE_RAW, top)
    if stage_overrides:
        raw["stages"] = [deep_merge(raw["stages"][0], stage_overrides)]
    return parse_pipeline(raw, "<test>")


def force(config: Any, path: str, value: Any, stage: int = 0) -> Any:
    """Set a stage field WITHOUT validation: builds configs the model would reject (what a
    future family or an older palier could hand to the rules)."""

    def rec(obj: Any, keys: list[str]) -> Any:
        if len(keys) == 1:
            return obj.model_copy(update={keys[0]: value})
        return obj.model_copy(update={keys[0]: rec(getattr(obj, keys[0]), keys[1:])})

    stages = list(config.stages)
    stages[stage] = rec(stages[stage], path.split("."))
    return config.model_copy(update={"stages": stages})


def stage_ctx(stage: dict[str, Any] | None = None, pipeline: dict[str, Any] | None = None,
              facts: EnvFacts | None = None, index: int = 0) -> StageContext:
    """A dict-level context: any family, including ones palier has no model for yet."""
    cfg = make_config()
    base_stage = cfg.stages[0].model_dump(mode="json")
    base_pipeline = cfg.model_dump(mode="json", exclude={"stages"})
    return StageContext(
        pipeline=deep_merge(base_pipeline, pipeline or {}),
        stage=deep_merge(base_stage, stage or {}),
        facts=facts or make_facts(),
        index=index,
    )


@pytest.fixture(scope="session")
def book():
    return load_checked_playbooks()


@pytest.fixture
def facts():
    return make_facts()


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch):
    # Tests opt in to an LLM explicitly; a developer's own keys must never leak into a test.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PALIER_LLM_MODEL", "PALIER_LLM_BASE_URL", "PALIER_LLM_API_KEY",
                 "PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)


def read_log(name: str) -> str:
    return (LOGS / name).read_bytes().decode("utf-8")  # keep tqdm's \r redraws


# --- MLflow: a real sqlite store with palier-shaped runs --------------------------------

class _StoreWriter:
    """Writes palier-shaped pipeline and stage runs straight into an MLflow store."""

    def __init__(self, uri: str):
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)

    def pipeline_run(self, exp_id: str, pipeline: str, status: str, pipeline_file: str | None = None) -> str:
        from core.tracking import schema as S

        tags = {S.TAG_KIND: "pipeline", S.TAG_PIPELINE: pipeline, S.TAG_STATUS: status,
                S.TAG_FLOW_RUN_ID: "3f0a8c1e-0000-4000-8000-000000000001"}
        if pipeline_file:
            tags[S.TAG_PIPELINE_FILE] = pipeline_file
        return self.client.create_run(exp_id, run_name=f"{pipeline}-run", tags=tags).info.run_id

    def stage_run(self, exp_id: str, parent: str, name: str, index: int, status: str, gate: str | None,
                  metrics: dict[str, float], extra: dict[str, str] | None = None) -> str:
        from core.tracking import schema as S

        tags = {S.TAG_KIND: "stage", S.TAG_STAGE: name, S.TAG_STAGE_INDEX: str(index), S.TAG_STATUS: status,
                S.TAG_FAMILY: "asr", S.TAG_BASE_MODEL: "openai/whisper-large-v3", S.TAG_BACKEND: "modal",
                S.TAG_PARENT_RUN: parent, **(extra or {})}
        if gate:
            tags[S.TAG_GATE] = gate
        run_id = self.client.create_run(exp_id, run_name=name, tags=tags).info.run_id
        for key, value in metrics.items():
            self.client.log_metric(run_id, key, value)
        return run_id


def _write_fr(w: _StoreWriter, root, artifacts: str) -> dict[str, str]:
    """palier/fr: exp1 succeeded (champion), exp2 failed with an OOM diagnosis, exp3 never started."""
    import yaml

    from core.tracking import schema as S

    fr = w.client.create_experiment("palier/fr", artifact_location=artifacts + "/fr")
    pipeline_file = root / "fr.yaml"
    raw = copy.deepcopy(BASE_RAW)
    raw["stages"] = [dict(raw["stages"][0], name=n, output_name=f"whisper-fr-{n}") for n in ("exp1", "exp2", "exp3")]
    pipeline_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    parent = w.pipeline_run(fr, "fr", "failed", str(pipeline_file))
    exp1 = w.stage_run(fr, parent, "exp1", 0, "succeeded", "champion", {
        "baseline/mls_test/wer": 0.142, "final/mls_test/wer": 0.098, "delta/mls_test/wer": -0.044,
        "baseline/en_guard/wer": 0.051, "final/en_guard/wer": 0.058, "delta/en_guard/wer": 0.007,
    })
    time.sleep(0.01)
    exp2 = w.stage_run(fr, parent, "exp2", 1, "failed", None, {"train/loss": 0.61},
                       {S.TAG_DIAGNOSIS_KIND: "cuda_oom", S.TAG_ATTEMPT: "2"})
    diagnosis = {"kind": "cuda_oom", "failure_id": "cuda-oom", "confidence": 0.95,
                 "evidence": ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 22.00 MiB."],
                 "fix": "Diviser per_device_train_batch_size par 2 et doubler gradient_accumulation_steps.",
                 "remedy": {"action": "halve_batch", "safe": True, "params": {}}, "source": "rules"}
    w.client.log_dict(exp2, diagnosis, S.ARTIFACT_DIAGNOSIS)
    w.client.log_dict(exp2, {"description": "per_device_train_batch_size 16 -> 8, gradient_accumulation_steps 1 -> 2"},
                      S.ARTIFACT_REMEDY)
    w.client.set_terminated(exp1)
    w.client.set_terminated(exp2, status="FAILED")
    w.client.set_terminated(parent, status="FAILED")
    return {"fr_parent": parent, "exp1": exp1, "exp2": exp2}


def _write_demo(w: _StoreWriter, artifacts: str) -> dict[str, str]:
    """palier/demo: two stages, both done."""
    demo = w.client.create_experiment("palier/demo", artifact_location=artifacts + "/demo")
    parent = w.pipeline_run(demo, "demo", "succeeded")
    general = w.stage_run(demo, parent, "general", 0, "succeeded", "candidate",
                          {"baseline/general/wer": 0.30, "final/general/wer": 0.21, "delta/general/wer": -0.09})
    medical = w.stage_run(demo, parent, "medical", 1, "succeeded", "champion",
                          {"baseline/medical/wer": 0.41, "final/medical/wer": 0.19, "delta/medical/wer": -0.22,
                           "delta_prev/general/wer": -0.02})
    for run_id in (general, medical, parent):
        w.client.set_terminated(run_id)
    return {"demo_parent": parent, "medical": medical}


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """A real SQLite MLflow store holding palier/fr (a failed run) and palier/demo (a finished one)."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    writer, artifacts = _StoreWriter(uri), (root / "artifacts").as_uri()
    return {"uri": uri, **_write_fr(writer, root, artifacts), **_write_demo(writer, artifacts)}


# --- a scripted OpenAI-compatible server ------------------------------------------------

class ScriptedLLM:
    """Speaks /v1/chat/completions; answers with the scripted replies in order and records
    every request body (to check what reached the "model")."""

    def __init__(self, replies: list[dict[str, Any]]):
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                reply = outer.replies.pop(0) if outer.replies else {"content": "no more scripted replies"}
                if reply.get("status"):  # a failing endpoint; its message echoes the key it was sent
                    self._send(reply["status"], {"error": {"message": f"rejected {self.headers.get('Authorization')}",
                                                           "type": "invalid_request_error"}})
                    return
                message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
                if reply.get("tool_calls"):
                    message["tool_calls"] = [
                        {"id": f"call_{i}", "type": "function",
                         "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
                        for i, c in enumerate(reply["tool_calls"])
                    ]
                payload = {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                           "model": body.get("model", "scripted"),
                           "choices": [{"index": 0, "message": message,
                                        "finish_reason": "tool_calls" if reply.get("tool_calls") else "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                self._send(200, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # noqa: ANN002
                pass

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted_llm(monkeypatch):
    servers: list[ScriptedLLM] = []

    def start(replies: list[dict[str, Any]], api_key: str = "sk-test-0123456789abcdefghij") -> ScriptedLLM:
        server = ScriptedLLM(replies)
        servers.append(server)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", api_key)
        monkeypatch.setenv("PALIER_LLM_MODEL", "scripted-model")
        return server

    yield start
    for s in servers:
        s.close()


# Helpers as fixtures, so test modules never import conftest by name.
@pytest.fixture
def make_facts_():
    return make_facts


@pytest.fixture
def make_config_():
    return make_config


@pytest.fixture
def force_():
    return force


@pytest.fixture
def ctx():
    return stage_ctx


@pytest.fixture
def log():
    return read_log
