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


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the servers bind: a closed connection in TIME_WAIT does not hold the port, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


PORT_RELEASE_WAIT_S = 60.0


def _group_alive(pgid: int | None) -> bool:
    """True while any live (non-zombie) process of the group ``pgid`` runs: a server's workers
    outlive its leader when only the leader is killed."""
    if not pgid:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def _wait_port_released(port: int, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while not port_free(port):
        if time.time() >= deadline:
            return False
        time.sleep(0.5)
    return True


def _start_server(service: Service, state: dict, cmd_for_port, env_for_port, timeout_s: float,
                  release_wait_s: float = PORT_RELEASE_WAIT_S) -> dict:
    """Keep a healthy server; restart a dead one on the port recorded in its state.

    A server we started is its own process group: when its leader died (kill -9) but workers still
    hold the port, the group is stopped first, then the port is waited for. Only when something
    else keeps the port past ``release_wait_s`` does the server move to a free port (the caller
    then updates everything that points at it)."""
    current = state.get(service.name, {})
    port = current.get("port") or service.port()
    url = f"http://{HOST}:{port}{service.health_path}"
    if pid_alive(current.get("pid")):
        if _healthy(url) or _wait_healthy_quietly(url, current["pid"], min(timeout_s, 30)):
            return current
        _stop(current["pid"], signal.SIGTERM, 10)  # alive but not answering: restart it
    elif _group_alive(current.get("pid")):
        _stop(current["pid"], signal.SIGTERM, 10)  # leader gone, workers left behind
    if not _wait_port_released(port, release_wait_s if current.get("port") else 0):
        port = free_port()  # something else holds the port: take a free one
    pid = _spawn(service.name, cmd_for_port(port), env_for_port(port))
    _wait_healthy(f"http://{HOST}:{port}{service.health_path}", pid, service.name, timeout_s)
    return {"pid": pid, "port": port}


def _wait_healthy_quietly(url: str, pid: int, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline and pid_alive(pid):
        if _healthy(url):
            return True
        time.sleep(0.5)
    return False


def up(pipelines_dir: Path = Path("pipelines"), timeout_s: float = 120,
       release_wait_s: float = PORT_RELEASE_WAIT_S) -> dict:
    dirs = _dirs()
    state = read_state()
    py = sys.executable

    def prefect_env(port: int) -> dict[str, str]:
        # The UI asks /ui-settings where the API is; an empty value makes it call "" and fail.
        return {"PREFECT_HOME": str(dirs["prefect"]), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_API_URL": f"http://{HOST}:{port}/api",
                "PREFECT_SERVER_UI_API_URL": f"http://{HOST}:{port}/api"}

    state["prefect"] = _start_server(
        PREFECT, state,
        lambda port: [py, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
        prefect_env, timeout_s, release_wait_s)
    _save(state)
    state["mlflow"] = _start_server(
        MLFLOW, state,
        lambda port: [py, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1",
                      "--backend-store-uri", f"sqlite:///{dirs['mlflow'] / 'mlflow.db'}",
                      "--artifacts-destination", str(dirs["mlflow"] / "artifacts")],
        lambda port: {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, timeout_s, release_wait_s)
    _save(state)
    # The env file and the serving process change in the same step as an address.
    _write_env(state)
    state["scan"] = _serve(state, pipelines_dir, timeout_s)
    return state


def _serve(state: dict, pipelines_dir: Path, timeout_s: float) -> dict:
    """Keep the serving process and have it scan the folder now (new, changed and deleted files;
    its runs in progress go on); start it when it is gone, or restart it when it points at old
    addresses or another folder. Returns its scan report: what it serves, which files it cannot."""
    serve = state.get("serve", {})
    wanted = client_env(state)
    folder = str(pipelines_dir.resolve())
    if pid_alive(serve.get("pid")) and (serve.get("env") not in (None, wanted) or serve.get("pipelines") != folder
                                        or _scan_report(serve["pid"]) is None):
        _stop(serve["pid"], signal.SIGINT, 20)  # old addresses, another folder, or a process that cannot rescan
    if pid_alive(serve.get("pid")):
        asked = time.time()
        os.kill(serve["pid"], signal.SIGHUP)
        return _wait_scan(serve["pid"], asked, timeout_s)
    if _group_alive(serve.get("pid")):
        _stop(serve["pid"], signal.SIGINT, 20)
    env = {**wanted, "PREFECT_RUNNER_POLL_FREQUENCY": os.environ.get("PREFECT_RUNNER_POLL_FREQUENCY", "2"),
           "PREFECT_HOME": str(_dirs()["prefect"])}
    started = time.time()
    pid = _spawn("deployments", [sys.executable, "-m", "flows.serve", str(pipelines_dir)], env)
    state["serve"] = {"pid": pid, "pipelines": folder, "env": wanted}
    _save(state)
    _wait_deployments(state, pid, timeout_s)
    return _wait_scan(pid, started, timeout_s)


def _scan_report(pid: int, since: float = 0.0) -> dict | None:
    """The serving process's latest scan report, when that process wrote it after ``since``."""
    from flows.serve import report_file

    try:
        report = json.loads(report_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if report.get("pid") == pid and report.get("scanned_at", 0) >= since else None


def _wait_scan(pid: int, since: float, timeout_s: float) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline and pid_alive(pid):
        report = _scan_report(pid, since)
        if report is not None:
            return report
        time.sleep(0.3)
    log = _dirs()["logs"] / "deployments.log"
    raise RuntimeError(f"the deployments process did not scan the pipelines within {timeout_s:.0f}s; see {log}:\n"
                       + (log.read_text(errors="replace")[-2000:] if log.exists() else ""))


def _wait_deployments(state: dict, pid: int, timeout_s: float) -> None:
    """Wait until this runner serves: a deployment polled after it started (records left in the
    database by an earlier runner do not count)."""
    from datetime import datetime, timezone

    url = urls(state)["prefect_api"] + "/deployments/filter"
    since = datetime.now(timezone.utc)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not pid_alive(pid):
            break
        try:
            req = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=3) as resp:
                polled = [d.get("last_polled") for d in json.loads(resp.read())]
            if any(p and datetime.fromisoformat(p.replace("Z", "+00:00")) >= since for p in polled):
                return
        except Exception:
            pass
        time.sleep(0.5)
    log = _dirs()["logs"] / "deployments.log"
    raise RuntimeError(f"the deployments did not register within {timeout_s:.0f}s; see {log}:\n"
                       + (log.read_text(errors="replace")[-2000:] if log.exists() else ""))


def _save(state: dict) -> None:
    _state_file().write_text(json.dumps(state, indent=2))


def state_env_file() -> Path:
    """The shell exports for the running services; shown relative to the current folder when inside it."""
    path = _dirs()["root"] / "env"
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _write_env(state: dict) -> None:
    lines = [f"export {k}={v}" for k, v in client_env(state).items()]
    (_dirs()["root"] / "env").write_text("\n".join(lines) + "\n")


def status() -> dict:
    """Each service: up, or down with the reason (never started, process gone, not answering)."""
    state = read_state()
    u = urls(state)
    out = {}
    for name, key, health in (("prefect", "prefect", u["prefect_api"] + "/health"),
                              ("mlflow", "mlflow", u["mlflow"] + "/health")):
        pid = state.get(key, {}).get("pid")
        up_now = _healthy(health)
        url = u["prefect_ui"] if name == "prefect" else u["mlflow"]
        problem = None if up_now else _why_down(state, key, url)
        if up_now and pid and not pid_alive(pid):
            problem = f"answers, but its process {pid} is gone (workers left behind): `palier up` restarts it"
        out[name] = {"pid": pid, "url": url, "up": up_now, "problem": problem}
    serve = state.get("serve", {})
    alive = pid_alive(serve.get("pid"))
    problem = None if alive else _why_down(state, "serve", None)
    if alive and serve.get("env") not in (None, client_env(state)):
        problem = "serving with old addresses: run `palier up`"
    out["deployments"] = {"pid": serve.get("pid"), "up": alive and problem is None, "problem": problem}
    return out


def sweep_stale_runs(info: dict) -> dict:
    """Close the runs a dead process left open (MLflow KILLED, Prefect Crashed), when MLflow is up."""
    if not info["mlflow"]["up"]:
        return {"lines": ["stale runs not checked: MLflow is down"], "closed": {}}
    from flows.stale_runs import sweep

    # MLflow prints a "View run" link per closed run on stdout: keep `palier status --json` pure JSON.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    report = sweep(info["mlflow"]["url"], prefect=info["prefect"]["up"], prefect_api=urls()["prefect_api"])
    lines = report.lines() or ["no stale runs"]
    if not info["prefect"]["up"]:
        lines.append("Prefect flow runs not checked: Prefect is down")
    return {"lines": lines, "closed": report.to_dict()}


def _why_down(state: dict, key: str, url: str | None) -> str:
    entry = state.get(key)
    if not entry:
        return "not started: run `palier up`"
    if not pid_alive(entry.get("pid")):
        return f"process {entry.get('pid')} is gone: run `palier up` (same address)"
    return f"process {entry['pid']} runs but does not answer at {url}"


def down(timeout_s: float = 20) -> dict:
    state = read_state()
    stopped = {}
    # The deployment server first (it stops on SIGINT; SIGTERM is not reliable for Prefect runners).
    for name, sig in (("serve", signal.SIGINT), ("mlflow", signal.SIGTERM), ("prefect", signal.SIGTERM)):
        pid = state.get(name, {}).get("pid")
        stopped[name] = _stop(pid, sig, timeout_s) if pid_alive(pid) or _group_alive(pid) else "not running"
    _state_file().unlink(missing_ok=True)
    return stopped


def _stop(pid: int, sig: int, timeout_s: float) -> str:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return "not running"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not pid_alive(pid) and not _group_alive(pid):
            return "stopped"
        time.sleep(0.3)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return "killed"
