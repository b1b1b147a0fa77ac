"""`mlflow models serve` as users run it, on a free loopback port, for the model-format tests."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from e2e_services import BIN


@contextmanager
def served_model(model_uri: str, env: dict, log: Path, timeout_s: float = 240):
    """Yield the base URL of ``mlflow models serve -m MODEL_URI --env-manager local``; stop it after."""
    from palier.services import free_port

    port = free_port()
    # As in an activated virtual environment: MLflow starts the scoring server with `exec uvicorn`.
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert proc.poll() is None, f"mlflow models serve exited {proc.returncode}: {log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, f"not serving after {timeout_s} s: {log.read_text()[-3000:]}"
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def invoke(url: str, payload: dict) -> dict:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{exc.code}: {exc.read().decode(errors='replace')[:3000]}") from None


def use_tracking_server(uri: str, monkeypatch) -> None:
    """Point MLflow's own loaders (``mlflow.*.load_model``, ``models:/`` URIs) at ``uri`` for one
    test. Other fixtures set MLflow's *global* tracking URI (``mlflow.set_tracking_uri``), which
    wins over the environment variable, so both are set here and put back after the test."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(utils, "_tracking_uri", None)  # the environment variable decides
    assert mlflow.get_tracking_uri() == uri
