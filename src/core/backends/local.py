"""Run the stage runner as a local subprocess (CPU or local GPUs).

The stage's ``backend.device`` (auto | cuda | cpu) says where it trains: ``auto`` picks CUDA
when the runner sees one, ``cpu`` hides every GPU from the runner.
The child gets its own process group, so cancelling stops it and any workers it forked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.backends.base import CancelResult
from core.backends.launch import CUDA_DEVICES_OPTION, RUNNER_MODULE, runner_arguments, stage_command, stage_environment
from core.contracts import JobHandle, JobStatus, StageSpec
from core.model_refs import MLFLOW_MODEL_ENV
from core.paths import cache_dir
from core.processes import pid_alive

EXIT_FILE = "exit_code"


class LocalBackend:
    name = "local"

    def __init__(self, python: str | None = None, extra_env: dict[str, str] | None = None,
                 runner_module: str = RUNNER_MODULE):
        self.python = python or sys.executable
        self.runner_module = runner_module  # tests substitute a tiny script to check the launch
        self.extra_env = extra_env or {}
        self._procs: dict[str, subprocess.Popen] = {}

    def command(self, spec: StageSpec, out_dir: Path) -> list[str]:
        # One process, or one per GPU through accelerate (see core.backends.launch for why CPU
        # data parallelism uses --multi_gpu + ACCELERATE_USE_CPU rather than --cpu).
        arguments = runner_arguments(str(out_dir / "spec.json"), str(out_dir))
        return stage_command(self.python, spec.stage.backend.gpus, arguments, module=self.runner_module)

    def environment(self, spec: StageSpec) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        # One preprocessed-data cache for every pipeline and rerun on this machine.
        env.setdefault("PALIER_CACHE_DIR", str(cache_dir()))
        env.update(stage_environment(spec.stage.backend.device, spec.stage.backend.gpus))
        gpu = spec.stage.backend.options.get(CUDA_DEVICES_OPTION)
        if gpu is not None and spec.stage.backend.device != "cpu":  # a search's trial pinned to one GPU
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        # This machine has MLflow: the runner writes the MLflow model while the model is warm
        # (elsewhere the orchestrator writes it after fetching the outputs).
        env[MLFLOW_MODEL_ENV] = "1"
        return env

    def submit(self, spec: StageSpec, out_dir: Path) -> JobHandle:
        out_dir.mkdir(parents=True, exist_ok=True)
        spec.write(out_dir / "spec.json")
        (out_dir / EXIT_FILE).unlink(missing_ok=True)
        log = (out_dir / "stage.log").open("ab")
        proc = subprocess.Popen(
            self.command(spec, out_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(spec),
            start_new_session=True,
        )
        log.close()
        job_id = f"pid-{proc.pid}"
        self._procs[job_id] = proc
        return JobHandle(backend="local", job_id=job_id, out_dir=str(out_dir), submitted_at=time.time(),
                         details={"pid": proc.pid, "started": process_start_ticks(proc.pid),
                                  "command": self.command(spec, out_dir)})

    def poll(self, handle: JobHandle) -> JobStatus:
        proc = self._procs.get(handle.job_id)
        out = Path(handle.out_dir)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return JobStatus(state="running")
            (out / EXIT_FILE).write_text(str(code))
            return _status_from_exit(code)
        if (out / EXIT_FILE).exists():
            return _status_from_exit(int((out / EXIT_FILE).read_text().strip() or 1))
        if _same_process_alive(handle):
            return JobStatus(state="running")
        # Process gone without our record of its exit: trust the runner's own final marker.
        meta = out / "meta.json"
        if meta.exists() and json.loads(meta.read_text()).get("status") == "succeeded":
            return JobStatus(state="succeeded", exit_code=0)
        return JobStatus(state="failed", message="the stage process ended without writing its results")

    def fetch(self, handle: JobHandle) -> Path:
        return Path(handle.out_dir)

    def cancel(self, handle: JobHandle) -> CancelResult:
        pid = int(handle.details.get("pid", 0))
        if not _same_process_alive(handle):
            return CancelResult(True, f"process {pid} had already ended")
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return CancelResult(True, f"process {pid} had already ended")
        deadline = time.time() + 15
        proc = self._procs.get(handle.job_id)
        while time.time() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            if proc is None and not pid_alive(pid):
                break
            time.sleep(0.2)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc is not None:
            proc.wait(timeout=5)
        return CancelResult(True, f"stopped process group {pid} (SIGTERM, the runner checkpoints first)")

    def reattach(self, handle: JobHandle) -> bool:
        return _same_process_alive(handle) or (Path(handle.out_dir) / EXIT_FILE).exists()


def process_start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot, Linux), so a recycled pid is not mistaken
    for the stage; None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name in (...) may hold spaces


def _same_process_alive(handle: JobHandle) -> bool:
    pid = int(handle.details.get("pid", 0))
    if not pid or not pid_alive(pid):
        return False
    recorded = handle.details.get("started")
    return recorded is None or process_start_ticks(pid) in (None, recorded)


def _status_from_exit(code: int) -> JobStatus:
    if code == 0:
        return JobStatus(state="succeeded", exit_code=0)
    if code < 0 or code in (130, 143):
        return JobStatus(state="cancelled", exit_code=code, message=f"stopped by signal ({code})")
    return JobStatus(state="failed", exit_code=code, message=f"stage runner exited with code {code}")
