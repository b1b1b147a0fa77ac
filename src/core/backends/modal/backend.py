"""Run a stage on Modal: ship inputs to a volume, spawn a detached call, relay, fetch, cancel.

The call id is the handle's ``job_id``: a restarted flow reattaches with FunctionCall.from_id
instead of starting the stage again. The stage's output folder lives on the volume under a path
keyed by the stage key, so a resubmission after a timeout or preemption resumes from the
checkpoints already there.

All Modal I/O goes through ``transport`` (ModalClient by default); tests pass a fake with the
same methods.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Protocol

from core.backends.base import CancelResult
from core.backends.errors import BackendError
from core.backends.modal.client import CallState, ModalClient, call_state_from_result
from core.backends.modal.plan import (
    ModalLaunch,
    ModalSettings,
    in_container,
    input_dir,
    modal_launch,
    remote_out_dir,
)
from core.backends.outputs import validate_outputs
from core.backends.relay import EVENTS, LOG, RelayState, append_remote_tail
from core.backends.shipping import LocalInput, PayloadFile, RemoteOrigin, local_inputs, relocate, remote_base_model
from core.backends.supervisor import EXIT_FILE, REPORT_FILE
from core.contracts import JobHandle, JobStatus, StageSpec

COMPLETE_MARKER = ".complete"
NOT_FETCHED = ("checkpoints/", EVENTS, LOG)


class ModalTransport(Protocol):
    def exists(self, path: str) -> bool: ...
    def file_sizes(self, folder: str) -> dict[str, int]: ...
    def read(self, path: str) -> bytes | None: ...
    def download(self, path: str, local: Path) -> None: ...
    def upload(self, files: list[tuple[PayloadFile, str]]) -> None: ...
    def remove(self, path: str) -> None: ...
    def spawn(self, launch: ModalLaunch) -> str: ...
    def call_state(self, call_id: str) -> CallState: ...
    def cancel(self, call_id: str) -> None: ...


def plan_submission(
    spec: StageSpec, runner_module: str = "core.stage", problems: list[str] | None = None
) -> tuple[ModalSettings, list[LocalInput], StageSpec, str, ModalLaunch]:
    """Everything submit will do, computed locally (the dry run prints it; it passes ``problems``
    to collect inputs that cannot be shipped instead of stopping at the first)."""
    settings = ModalSettings.from_options(dict(spec.stage.backend.options))
    inputs = local_inputs(spec, problems)
    on_volume = remote_base_model(spec, "modal")
    if on_volume and on_volume[0].location.get("volume") == settings.volume:
        origin, rel = on_volume
        inputs = [i for i in inputs if i.role != "base_model"]
        remote_model = in_container(f"{origin.location['path']}/{rel}".rstrip("/."))
    else:
        remote_model = None
    remote_spec = relocate(spec, inputs, lambda item: in_container(input_dir(item.digest)))
    if remote_model:
        remote_spec = remote_spec.with_base_model(remote_model)
    out_rel = remote_out_dir(spec)
    return settings, inputs, remote_spec, out_rel, modal_launch(remote_spec, settings, out_rel, runner_module)


class ModalBackend:
    name = "modal"
    live_events = True  # events arrive while the job runs (at each volume commit)

    def __init__(self, transport: ModalTransport | None = None, runner_module: str = "core.stage",
                 log_sync_every_s: float = 60.0):
        self._transport = transport
        self.runner_module = runner_module
        self.log_sync_every_s = log_sync_every_s
        self._last_log_sync: dict[str, float] = {}
        self._clients: dict[str, ModalTransport] = {}

    def transport(self, volume: str) -> ModalTransport:
        if self._transport is not None:
            return self._transport
        return self._clients.setdefault(volume, ModalClient(volume))

    # -- contract ---------------------------------------------------------------------------
    def submit(self, spec: StageSpec, out_dir: Path) -> JobHandle:
        settings, inputs, remote_spec, out_rel, launch = plan_submission(spec, self.runner_module)
        transport = self.transport(settings.volume)
        for item in _unique(inputs):
            self._upload_input(transport, item)
        transport.remove(f"{out_rel}/{EXIT_FILE}")  # a previous attempt's marker must not end this one
        sizes = transport.file_sizes(out_rel)
        relay_start = {"events": sizes.get(f"{out_rel}/{EVENTS}", 0), "log": sizes.get(f"{out_rel}/{LOG}", 0)}
        out_dir.mkdir(parents=True, exist_ok=True)
        spec.write(out_dir / "spec.json")
        (out_dir / "spec.remote.json").write_text(remote_spec.model_dump_json(indent=2), encoding="utf-8")
        RelayState(out_dir, relay_start).save()  # a folder reused for a retry keeps its own offsets
        call_id = transport.spawn(launch)
        return JobHandle(
            backend="modal", job_id=call_id, out_dir=str(out_dir), submitted_at=time.time(),
            details={
                "volume": settings.volume, "remote_out": out_rel, "gpu": launch.gpu, "timeout_s": launch.timeout_s,
                "app": settings.app, "relay_start": relay_start,
                "inputs": {i.role: i.digest for i in inputs}, "fetch_checkpoints": settings.fetch_checkpoints,
            },
        )

    def poll(self, handle: JobHandle) -> JobStatus:
        transport = self.transport(handle.details["volume"])
        state = transport.call_state(handle.job_id)
        if state.state == "unknown":
            state = self._state_from_volume(transport, handle) or state
        sizes = self._relay(transport, handle, force_log=state.state != "running")
        if state.state == "running":
            start, out_rel = handle.details["relay_start"], handle.details["remote_out"]
            started = (sizes.get(f"{out_rel}/{LOG}", 0) > start["log"]
                       or sizes.get(f"{out_rel}/{EVENTS}", 0) > start["events"])
            return JobStatus(state="running" if started else "pending",
                             message="" if started else "waiting for a container (image build or GPU queue)")
        if state.state == "unknown":
            return JobStatus(state="failed", message=f"Modal no longer knows call {handle.job_id} and the volume "
                                                      f"holds no exit marker ({state.message})")
        return JobStatus(state=state.state, exit_code=state.exit_code, message=state.message)

    def fetch(self, handle: JobHandle) -> Path:
        transport = self.transport(handle.details["volume"])
        out_dir, out_rel = Path(handle.out_dir), handle.details["remote_out"]
        self._relay(transport, handle, force_log=True)
        skip = NOT_FETCHED if not handle.details.get("fetch_checkpoints") else (EVENTS, LOG)
        for path in sorted(transport.file_sizes(out_rel)):
            rel = path[len(out_rel):].lstrip("/")
            if rel.startswith(skip) or rel == "spec.json":
                continue
            transport.download(path, out_dir / rel)
        exit_code = (out_dir / EXIT_FILE).read_text().strip() if (out_dir / EXIT_FILE).exists() else None
        validate_outputs(out_dir, require_complete=exit_code == "0", where=f"Modal volume {handle.details['volume']}")
        RemoteOrigin("modal", {"volume": handle.details["volume"], "path": out_rel}).write(out_dir)
        return out_dir

    def cancel(self, handle: JobHandle) -> CancelResult:
        # The container sees InputCancellation; the supervisor SIGTERMs the runner, which saves a
        # checkpoint, then the volume is committed.
        try:
            self.transport(handle.details["volume"]).cancel(handle.job_id)
        except BackendError as exc:
            return CancelResult(False, f"Modal did not accept the cancellation of call {handle.job_id} ({exc}). "
                                       f"Stop it with `modal app stop {handle.details.get('app', 'palier')}` "
                                       "or at https://modal.com/apps")
        return CancelResult(True, f"Modal accepted the cancellation of call {handle.job_id}; the runner "
                                  "checkpoints, then the container stops")

    def reattach(self, handle: JobHandle) -> bool:
        transport = self.transport(handle.details["volume"])
        if transport.call_state(handle.job_id).state != "unknown":
            return True
        return self._state_from_volume(transport, handle) is not None

    # -- helpers ----------------------------------------------------------------------------
    def _upload_input(self, transport: ModalTransport, item: LocalInput) -> None:
        folder = input_dir(item.digest)
        if transport.exists(f"{folder}/{COMPLETE_MARKER}"):
            return  # same content already on the volume (content-addressed)
        files = [(f, f"{folder}/{f.dest}") for f in item.files]
        marker = PayloadFile(COMPLETE_MARKER, content=json.dumps({"role": item.role, "name": item.local_path.name}).encode())
        transport.upload([*files, (marker, f"{folder}/{COMPLETE_MARKER}")])  # marker in the same batch

    def _relay(self, transport: ModalTransport, handle: JobHandle, force_log: bool) -> dict[str, int]:
        out_dir, out_rel = Path(handle.out_dir), handle.details["remote_out"]
        start = handle.details["relay_start"]
        state = RelayState(out_dir, {"events": start["events"], "log": start["log"]})
        sizes = transport.file_sizes(out_rel)
        events_size = sizes.get(f"{out_rel}/{EVENTS}", 0)
        if events_size > state.get("events"):
            append_remote_tail(out_dir / EVENTS, transport.read(f"{out_rel}/{EVENTS}") or b"", state, "events", True)
        # stage.log can grow to megabytes and the volume has no range reads: read it less often.
        now = time.monotonic()
        due = force_log or now - self._last_log_sync.get(handle.job_id, 0.0) >= self.log_sync_every_s
        if due and sizes.get(f"{out_rel}/{LOG}", 0) > state.get("log"):
            append_remote_tail(out_dir / LOG, transport.read(f"{out_rel}/{LOG}") or b"", state, "log", False)
            self._last_log_sync[handle.job_id] = now
        return sizes

    def _state_from_volume(self, transport: ModalTransport, handle: JobHandle) -> CallState | None:
        """The supervisor's exit marker, when it belongs to this submission (not an older attempt)."""
        out_rel = handle.details["remote_out"]
        raw_exit = transport.read(f"{out_rel}/{EXIT_FILE}")
        report = transport.read(f"{out_rel}/{REPORT_FILE}")
        if raw_exit is None or report is None:
            return None
        if json.loads(report).get("started_at", 0) < handle.submitted_at - 600:
            return None
        return call_state_from_result({"exit_code": int(raw_exit.strip() or 1)})


def _unique(inputs: list[LocalInput]) -> list[LocalInput]:
    seen, out = set(), []
    for item in inputs:
        if item.digest not in seen:
            seen.add(item.digest)
            out.append(item)
    return out
