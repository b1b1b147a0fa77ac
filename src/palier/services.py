"""`palier up / down / status`: a real Prefect server, a real MLflow server (both SQLite, both
on 127.0.0.1) and the process serving the exp-pipeline deployments. Idempotent."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.paths import home
from core.processes import pid_alive

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Service:
    name: str
    port_env: str
    default_port: int
    health_path: str

    def port(self) -> int:
        return int(os.environ.get(self.port_env, self.default_port))


PREFECT = Service("prefect", "PALIER_PREFECT_PORT", 4200, "/api/health")
MLFLOW = Service("mlflow", "PALIER_MLFLOW_PORT", 5000, "/health")
SERVE = Service("deployments", "", 0, "")


def _dirs() -> dict[str, Path]:
    root = home()
    dirs = {"root": root, "pids": root / "pids", "logs": root / "logs", "prefect": root / "prefect",
            "mlflow": root / "mlflow"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def _state_file() -> Path:
    return _dirs()["root"] / "services.json"


def read_state() -> dict:
    path = _state_file()
    return json.loads(path.read_text()) if path.exists() else {}


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except Exception:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def urls(state: dict | None = None) -> dict[str, str]:
    state = state if state is not None else read_state()
    p = state.get("prefect", {}).get("port", PREFECT.port())
    m = state.get("mlflow", {}).get("port", MLFLOW.port())
    return {"prefect_ui": f"http://{HOST}:{p}", "prefect_api": f"http://{HOST}:{p}/api",
            "mlflow": f"http://{HOST}:{m}"}


def client_env(state: dict | None = None) -> dict[str, str]:
    u = urls(state)
    return {"PREFECT_API_URL": u["prefect_api"], "MLFLOW_TRACKING_URI": u["mlflow"],
            "PALIER_HOME": str(home()), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _spawn(name: str, cmd: list[str], env: dict[str, str]) -> int:
    log = (_dirs()["logs"] / f"{name}.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
                            start_new_session=True, cwd=os.getcwd())
    log.close()
    return proc.pid


def _wait_healthy(url: str, pid: int, name: str, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if _healthy(url):
            return
        if not pid_alive(pid):
            break
        time.sleep(0.5)
    log = _dirs()["logs"] / f"{name}.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{name} did not become healthy at {url} within {timeout_s:.0f}s; log {log}:\n{tail}")


def _start_server(service: Service, state: dict, cmd_for_port, env: dict[str, str], timeout_s: float) -> dict:
    current = state.get(service.name, {})
    if pid_alive(current.get("pid")) and _healthy(f"http://{HOST}:{current['port']}{service.health_path}"):
        return current
    port = current.get("port") or service.port()
    if not _port_free(port):
        port = free_port()  # something else holds the default port: take a free one
    pid = _spawn(service.name, cmd_for_port(port), env)
    _wait_healthy(f"http://{HOST}:{port}{service.health_path}", pid, service.name, timeout_s)
    return {"pid": pid, "port": port}


def up(pipelines_dir: Path = Path("pipelines"), timeout_s: float = 120) -> dict:
    dirs = _dirs()
    state = read_state()
    py = sys.executable
    prefect_env = {"PREFECT_HOME": str(dirs["prefect"]), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PREFECT_UI_API_URL": ""}
    state["prefect"] = _start_server(
        PREFECT, state,
        lambda port: [py, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
        prefect_env, timeout_s)
    _save(state)
    mlflow_env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    state["mlflow"] = _start_server(
        MLFLOW, state,
        lambda port: [py, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1",
                      "--backend-store-uri", f"sqlite:///{dirs['mlflow'] / 'mlflow.db'}",
                      "--artifacts-destination", str(dirs["mlflow"] / "artifacts")],
        mlflow_env, timeout_s)
    _save(state)
    serve = state.get("serve", {})
    if not pid_alive(serve.get("pid")):
        env = {**client_env(state), "PREFECT_RUNNER_POLL_FREQUENCY": os.environ.get("PREFECT_RUNNER_POLL_FREQUENCY", "2"),
               "PREFECT_HOME": str(dirs["prefect"])}
        pid = _spawn("deployments", [py, "-m", "flows.serve", str(pipelines_dir)], env)
        state["serve"] = {"pid": pid, "pipelines": str(pipelines_dir.resolve())}
        _save(state)
        _wait_deployments(state, pid, timeout_s)
    _write_env(state)
    return state


def _wait_deployments(state: dict, pid: int, timeout_s: float) -> None:
    url = urls(state)["prefect_api"] + "/deployments/filter"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not pid_alive(pid):
            break
        try:
            req = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=3) as resp:
                if json.loads(resp.read()):
                    return
        except Exception:
            pass
        time.sleep(0.5)
    log = _dirs()["logs"] / "deployments.log"
    raise RuntimeError(f"the deployments did not register within {timeout_s:.0f}s; see {log}:\n"
                       + (log.read_text(errors="replace")[-2000:] if log.exists() else ""))


def _save(state: dict) -> None:
    _state_file().write_text(json.dumps(state, indent=2))


def _write_env(state: dict) -> None:
    lines = [f"export {k}={v}" for k, v in client_env(state).items()]
    (_dirs()["root"] / "env").write_text("\n".join(lines) + "\n")


def status() -> dict:
    state = read_state()
    u = urls(state)
    return {
        "prefect": {"pid": state.get("prefect", {}).get("pid"), "url": u["prefect_ui"],
                    "up": _healthy(u["prefect_api"] + "/health")},
        "mlflow": {"pid": state.get("mlflow", {}).get("pid"), "url": u["mlflow"], "up": _healthy(u["mlflow"] + "/health")},
        "deployments": {"pid": state.get("serve", {}).get("pid"), "up": pid_alive(state.get("serve", {}).get("pid"))},
    }


def down(timeout_s: float = 20) -> dict:
    state = read_state()
    stopped = {}
    # The deployment server first (it stops on SIGINT; SIGTERM is not reliable for Prefect runners).
    for name, sig in (("serve", signal.SIGINT), ("mlflow", signal.SIGTERM), ("prefect", signal.SIGTERM)):
        pid = state.get(name, {}).get("pid")
        stopped[name] = _stop(pid, sig, timeout_s) if pid_alive(pid) else "not running"
    _state_file().unlink(missing_ok=True)
    return stopped


def _stop(pid: int, sig: int, timeout_s: float) -> str:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return "not running"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not pid_alive(pid):
            return "stopped"
        time.sleep(0.3)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return "killed"
