"""Local stand-ins for Modal and Kaggle with the transports' interfaces.

They run the real remote-side code (the supervisor; on Kaggle the whole generated kernel script)
in subprocesses against local folders, so ModalBackend and KaggleBackend go through their real
submit/poll/fetch/cancel paths. What they cannot show: the services' own behaviour (image
builds, GPU scheduling, volume commit visibility, dataset processing, auth).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.backends.kaggle.backend import KaggleBackend
from core.backends.kaggle.client import KernelVersion, PushResult
from core.backends.kaggle.status import push_error
from core.backends.modal.backend import ModalBackend
from core.backends.modal.client import CallState, call_state_from_result
from core.backends.modal.plan import MOUNT, ModalLaunch
from core.backends.shipping import PayloadFile


class FakeModalTransport:
    """The volume is a local folder; a spawned call is the supervisor in a subprocess."""

    def __init__(self, volume_root: Path, env: dict[str, str]):
        self.root = volume_root
        self.env = env
        self.calls: dict[str, subprocess.Popen] = {}
        self.out_dirs: dict[str, Path] = {}
        self.launches: list[ModalLaunch] = []
        self.uploaded: list[str] = []
        self.cancelled: set[str] = set()

    def local(self, path: str) -> Path:
        return self.root / path.strip("/")

    def exists(self, path: str) -> bool:
        return self.local(path).exists()

    def file_sizes(self, folder: str) -> dict[str, int]:
        base = self.local(folder)
        if not base.is_dir():
            return {}
        return {p.relative_to(self.root).as_posix(): p.stat().st_size for p in base.rglob("*") if p.is_file()}

    def read(self, path: str) -> bytes | None:
        target = self.local(path)
        return target.read_bytes() if target.is_file() else None

    def download(self, path: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.local(path), local)

    def upload(self, files: list[tuple[PayloadFile, str]]) -> None:
        for item, remote in files:
            target = self.local(remote)
            target.parent.mkdir(parents=True, exist_ok=True)
            with item.open() as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            self.uploaded.append(remote)

    def remove(self, path: str) -> None:
        self.local(path).unlink(missing_ok=True)

    def spawn(self, launch: ModalLaunch) -> str:
        self.launches.append(launch)
        # The container mounts the volume at /vol; here /vol is this folder.
        request = json.loads(json.dumps(launch.request).replace(MOUNT + "/", f"{self.root}/"))
        out = Path(request["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(request["spec_json"], encoding="utf-8")
        command = [sys.executable if request["command"][0] == "python" else request["command"][0], *request["command"][1:]]
        supervisor = [sys.executable, "-m", "core.backends.supervisor", "--out", str(out),
                      "--timeout-s", str(request["timeout_s"]),
                      *[f"--env={k}={v}" for k, v in request["env"].items()], "--", *command]
        call_id = f"fc-fake{len(self.calls)}"
        self.calls[call_id] = subprocess.Popen(supervisor, env={**os.environ, **self.env},
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.out_dirs[call_id] = out
        return call_id

    def call_state(self, call_id: str) -> CallState:
        proc = self.calls.get(call_id)
        if proc is None:
            return CallState("unknown", message="no such call (expired)")
        if proc.poll() is None:
            return CallState("running")
        exit_file = self.out_dirs[call_id] / "exit_code"
        if call_id in self.cancelled:
            return CallState("cancelled", message="InputCancellation: input was cancelled by user")
        if not exit_file.exists():
            return CallState("failed", message=f"container exited with {proc.returncode}")
        return call_state_from_result({"exit_code": int(exit_file.read_text())})

    def cancel(self, call_id: str) -> None:
        # Modal raises InputCancellation in the function; SIGINT gives the supervisor the same
        # BaseException path (stop the runner with SIGTERM, write the exit marker).
        self.cancelled.add(call_id)
        self.calls[call_id].send_signal(signal.SIGINT)

    def forget(self, call_id: str) -> None:
        """What Modal does once a call's result has expired."""
        proc = self.calls.pop(call_id)
        proc.wait(timeout=60)


class FakeKaggleTransport:
    """Datasets and kernel outputs are local folders; a pushed kernel's generated script runs in a
    subprocess with /kaggle mapped to a session folder and the pip installs skipped."""

    username = "tester"

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        self.datasets: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.pushes: list[dict] = []
        self.push_error: str | None = None
        self.tamper_output = None  # callable(out_folder) run before a download, to fake a broken server

    # datasets
    def dataset_files(self, ref: str) -> set[str] | None:
        entry = self.datasets.get(ref)
        return None if entry is None else {p.name for p in entry["folder"].iterdir()}

    def _store(self, folder: Path) -> str:
        ref = json.loads((folder / "dataset-metadata.json").read_text())["id"]
        target = self.root / "datasets" / ref.replace("/", "__")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target, ignore=shutil.ignore_patterns("dataset-metadata.json"))
        return ref

    def create_dataset(self, folder: Path) -> None:
        ref = self._store(folder)
        self.datasets[ref] = {"folder": self.root / "datasets" / ref.replace("/", "__"), "versions": 1}

    def version_dataset(self, folder: Path, notes: str) -> None:
        ref = self._store(folder)
        self.datasets[ref]["versions"] += 1

    def dataset_status(self, ref: str) -> str:
        return "ready"

    # kernels
    def push_kernel(self, folder: Path, timeout_s: int) -> PushResult:
        if self.push_error:
            raise push_error(self.push_error)
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        ref = meta["id"]
        version = sum(1 for p in self.pushes if p["id"] == ref) + 1
        self.pushes.append({**meta, "timeout_s": timeout_s})
        session = self.root / "sessions" / f"{ref.replace('/', '__')}-v{version}"
        for source in meta["dataset_sources"]:
            mount = session / "input" / "datasets" / source  # a nested layout: the script must search
            shutil.copytree(self.datasets[source]["folder"], mount)
        for source in meta["kernel_sources"]:  # the output of the kernel's latest version, read-only
            shutil.copytree(self.sessions[source]["session"] / "working", session / "input" / "notebooks" / source)
        (session / "working").mkdir(parents=True)
        shutil.copy(folder / meta["code_file"], session / meta["code_file"])
        env = {**os.environ, **self.env, "PALIER_KAGGLE_ROOT": str(session),
               "PALIER_KAGGLE_SCRATCH": str(session / "tmp"), "PALIER_SKIP_INSTALL": "1"}
        proc = subprocess.Popen([sys.executable, str(session / meta["code_file"])], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        self.sessions[ref] = {"proc": proc, "lines": lines, "session": session, "reader": reader,
                              "version": version, "started": time.time()}
        return PushResult(version, f"https://www.kaggle.com/code/{ref}")

    def kernel_version(self, ref: str) -> KernelVersion:
        entry = self.sessions.get(ref)
        return KernelVersion(None, None) if entry is None else KernelVersion(entry["version"], entry["started"])

    def kernel_status(self, ref: str) -> tuple[object, str]:
        from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

        entry = self.sessions.get(ref)
        if entry is None:
            return "unknown", "kernel not found"
        code = entry["proc"].poll()
        if code is None:
            return KernelWorkerStatus.RUNNING, ""
        if code == 0:
            return KernelWorkerStatus.COMPLETE, ""
        return KernelWorkerStatus.ERROR, f"Your notebook tried to run, but exited with code {code}"

    def download_output(self, ref: str, dest: Path) -> list[Path]:
        entry = self.sessions[ref]
        entry["reader"].join(timeout=30)
        working = entry["session"] / "working"
        if self.tamper_output:
            self.tamper_output(working / "out")
        shutil.copytree(working, dest, dirs_exist_ok=True)
        log = dest / f"{ref.split('/')[1]}.log"
        log.write_text(json.dumps([{"stream_name": "stdout", "time": 0.0, "data": line} for line in entry["lines"]]))
        return [p for p in dest.rglob("*") if p.is_file()]

    def log_stream(self, ref: str):
        entry = self.sessions[ref]
        sent = 0
        while True:
            done = entry["proc"].poll() is not None and not entry["reader"].is_alive()
            while sent < len(entry["lines"]):
                yield {"stream_name": "stdout", "time": time.time(), "data": entry["lines"][sent]}
                sent += 1
            if done:
                return
            time.sleep(0.05)


def fake_service(kind: str, root: Path, env: dict[str, str]):
    """A fresh fake Modal ("modal") or Kaggle ("kaggle") keeping its files under ``root``."""
    if kind == "modal":
        return FakeModalTransport(root / "volume", env)
    return FakeKaggleTransport(root / "kaggle", env)


def stub_backend(service):
    """The real backend for a fake service, running the stub stage runner and polling without waits."""
    if isinstance(service, FakeKaggleTransport):
        return KaggleBackend(transport=service, runner_module="stub_stage", poll_dataset_every_s=0)
    return ModalBackend(transport=service, runner_module="stub_stage", log_sync_every_s=0)


def wait_finished(backend, handle, timeout_s: float = 90.0):
    """Poll like the orchestrator does until the job ends; returns the last status."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = backend.poll(handle)
        if status.finished:
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {handle.job_id} still running after {timeout_s} s")
