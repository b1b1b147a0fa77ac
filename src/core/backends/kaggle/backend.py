"""Run a stage on Kaggle: inputs as a private dataset, a private script kernel, live log relay,
validated outputs.

- Inputs: one private dataset per stage holding each local input as ``<digest>.tar``; a new
  version is uploaded only when the marker name (a hash of all digests) is not already there.
- Kernel: ``palier-<pipeline>-<stage>``; every push is a new version and starts a new session.
- While it runs: the kernel's supervisor prints each event behind ``PALIER_EVENT``; a background
  thread reads Kaggle's live log stream and splits it into events.jsonl and stage.log.
- Status: Kaggle's status call names no version, and right after a push it may still describe
  the previous version's session (an old COMPLETE would download old outputs). A finished status
  is believed only when the kernel's current version is the one pushed and that session was seen
  running (or ran after the push); a newer version means this job was superseded.
- Cancel: Kaggle's public API has no call that stops a running session from a token (the
  session-cancel endpoint needs a session id, which Kaggle does not expose:
  https://github.com/Kaggle/kaggle-cli/pull/1174), so ``cancel`` stops palier's polling and log
  relay, reports that nothing was stopped and says where to stop it; the kernel's own deadline
  (backend.timeout_s, at most 12 h) bounds it anyway.

All Kaggle I/O goes through ``transport`` (KaggleClient by default); tests pass a fake.
"""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from core.backends.base import CancelResult
from core.backends.errors import BackendError, RemoteOutputInvalid
from core.backends.kaggle.client import KaggleClient, KernelVersion, PushResult
from core.backends.kaggle.entry import INPUT_PLACEHOLDER, UPSTREAM_OUTPUT
from core.backends.kaggle.kernel import (
    CODE_FILE,
    KaggleSettings,
    dataset_metadata,
    inputs_dataset_slug,
    inputs_marker,
    kernel_metadata,
    kernel_script,
    kernel_slug,
    machine_shape,
    script_config,
    session_timeout_s,
    source_archive,
)
from core.backends.kaggle.status import job_status, normalize_kernel_status
from core.backends.outputs import looks_like_html, validate_outputs
from core.backends.relay import EVENTS, LOG, RelayState, StreamRouter, merge_final_events
from core.backends.shipping import LocalInput, RemoteOrigin, local_inputs, relocate, remote_base_model
from core.backends.supervisor import EXIT_FILE
from core.contracts import JobHandle, JobStatus, StageSpec

log = logging.getLogger("palier.backends.kaggle")

DATASET_READY_TIMEOUT_S = 15 * 60
FINISHED_STATES = ("complete", "error", "cancel_acknowledged")
CLOCK_SKEW_S = 120  # between this machine and Kaggle's, when comparing a run time with the push time
KAGGLE_LOG = "kaggle.log"


class KaggleTransport(Protocol):
    @property
    def username(self) -> str: ...
    def dataset_files(self, ref: str) -> set[str] | None: ...
    def create_dataset(self, folder: Path) -> None: ...
    def version_dataset(self, folder: Path, notes: str) -> None: ...
    def dataset_status(self, ref: str) -> str: ...
    def push_kernel(self, folder: Path, timeout_s: int) -> PushResult: ...
    def kernel_status(self, ref: str) -> tuple[object, str]: ...
    def kernel_version(self, ref: str) -> KernelVersion: ...
    def download_output(self, ref: str, dest: Path) -> list[Path]: ...
    def log_stream(self, ref: str) -> Iterator[dict]: ...


def plan_kernel(
    spec: StageSpec, user: str, runner_module: str = "core.stage", problems: list[str] | None = None,
    current_version: Callable[[str], int | None] | None = None,
) -> tuple[KaggleSettings, list[LocalInput], dict, dict, str]:
    """Settings, inputs, kernel-metadata.json, the script's configuration and the script itself,
    computed locally (the dry run prints them; ``problems`` as in shipping.local_inputs).
    ``current_version(kernel)``: asked before mounting an upstream kernel's output (submit asks
    Kaggle; the dry run assumes it is unchanged)."""
    settings = KaggleSettings.from_options(dict(spec.stage.backend.options))
    user = settings.user or user
    inputs = local_inputs(spec, problems)
    upstream = upstream_kernel(spec, user)
    if upstream and current_version and current_version(upstream["kernel"]) != upstream["version"]:
        upstream = None  # pushed again since: its mounted output would be another run's, so upload the model
    if upstream is not None:
        inputs = [i for i in inputs if i.role != "base_model"]
    remote_spec = relocate(spec, inputs, lambda item: INPUT_PLACEHOLDER.format(digest=item.digest))
    if upstream is not None:
        remote_spec = remote_spec.with_base_model(upstream_model_path(upstream))
    datasets = [f"{user}/{inputs_dataset_slug(spec)}"] if inputs else []
    kernels = [upstream["kernel"]] if upstream else []
    metadata = kernel_metadata(user, kernel_slug(spec), machine_shape(spec.stage.backend, settings), datasets,
                               settings, kernels)
    config = script_config(remote_spec, inputs, settings, runner_module, upstream)
    return settings, inputs, metadata, config, kernel_script(config, source_archive())


def upstream_kernel(spec: StageSpec, user: str) -> dict[str, str] | None:
    """When the base model is the fetched output of a kernel of this account: that kernel, the
    stage key its output must carry, and the model's path in it (the kernel is then mounted as a
    kernel source instead of uploading the model again)."""
    found = remote_base_model(spec, "kaggle")
    if found is None:
        return None
    origin, rel = found
    kernel, key = origin.location.get("kernel", ""), origin.location.get("key", "")
    if kernel.split("/")[0] != user or not key:
        return None
    return {"kernel": kernel, "key": key, "version": origin.location.get("version"), "path": rel}


def upstream_model_path(upstream: dict[str, str]) -> str:
    base = INPUT_PLACEHOLDER.format(digest=UPSTREAM_OUTPUT)
    return base if upstream["path"] in ("", ".") else f"{base}/{upstream['path']}"


class KaggleBackend:
    name = "kaggle"
    live_events = True  # through Kaggle's live log stream (client >= 2.2); False when it is unavailable

    def __init__(self, transport: KaggleTransport | None = None, runner_module: str = "core.stage",
                 poll_dataset_every_s: float = 5.0):
        self._transport = transport
        self.runner_module = runner_module
        self.poll_dataset_every_s = poll_dataset_every_s
        self._streams: dict[str, threading.Thread] = {}
        self._stream_stops: dict[str, threading.Event] = {}
        self._stream_errors: dict[str, str] = {}
        self._seen_running: set[tuple[str, int | None]] = set()

    @property
    def transport(self) -> KaggleTransport:
        if self._transport is None:
            self._transport = KaggleClient()
        return self._transport

    # -- contract ---------------------------------------------------------------------------
    def submit(self, spec: StageSpec, out_dir: Path) -> JobHandle:
        settings, inputs, metadata, _, script = plan_kernel(
            spec, self.transport.username, self.runner_module,
            current_version=lambda kernel: self.transport.kernel_version(kernel).current)
        user = metadata["id"].split("/")[0]
        if inputs:
            self._ensure_inputs(f"{user}/{inputs_dataset_slug(spec)}", inputs)
        out_dir.mkdir(parents=True, exist_ok=True)
        spec.write(out_dir / "spec.json")
        with tempfile.TemporaryDirectory(prefix="palier-kernel-") as tmp:
            folder = Path(tmp)
            (folder / "kernel-metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
            (folder / CODE_FILE).write_text(script, encoding="utf-8")
            pushed = self.transport.push_kernel(folder, session_timeout_s(spec.stage.backend))
        RelayState(out_dir).set("stream_chunks", 0)  # a new version is a new session and a new stream
        return JobHandle(
            backend="kaggle", job_id=metadata["id"], out_dir=str(out_dir), submitted_at=time.time(),
            details={"version": pushed.version, "url": pushed.url, "machine_shape": metadata.get("machine_shape"),
                     "datasets": metadata["dataset_sources"], "inputs": {i.role: i.digest for i in inputs}},
        )

    def poll(self, handle: JobHandle) -> JobStatus:
        raw, failure = self.transport.kernel_status(handle.job_id)
        state = normalize_kernel_status(raw)
        mine = handle.details.get("version")
        if state in FINISHED_STATES or state == "unknown":
            stale = self._stale(handle, state, self.transport.kernel_version(handle.job_id))
            if stale is not None:
                return stale
        elif state != "new_script":
            self._seen_running.add((handle.job_id, mine))
        status = job_status(state, failure)
        if status.state == "running":
            self._ensure_stream(handle)
        return status

    def _stale(self, handle: JobHandle, state: str, version: KernelVersion) -> JobStatus | None:
        """A status that cannot be this handle's yet (pending) or that says it was superseded (failed)."""
        mine = handle.details.get("version")
        if mine is not None and version.current is not None and version.current > mine:
            return JobStatus(state="failed", message=f"version {version.current} of Kaggle kernel {handle.job_id} was "
                                                     f"pushed after this job's version {mine}; this job's session is "
                                                     "no longer the kernel's current one")
        if mine is not None and (version.current is None or version.current < mine):
            return JobStatus(state="pending", message=f"Kaggle has not registered version {mine} yet")
        seen = (handle.job_id, mine) in self._seen_running
        ran_after_push = version.last_run_at is not None and version.last_run_at >= handle.submitted_at - CLOCK_SKEW_S
        if state != "unknown" and not seen and not ran_after_push:
            return JobStatus(state="pending", message=f"Kaggle still reports the previous session ({state}); "
                                                      f"waiting for version {mine}'s session to start")
        if state == "unknown" and version.current == mine:
            return JobStatus(state="pending", message="Kaggle does not report a status for the new version yet")
        return None

    def fetch(self, handle: JobHandle) -> Path:
        out_dir = Path(handle.out_dir)
        self._stop_stream(handle)
        with tempfile.TemporaryDirectory(prefix="palier-output-") as tmp:
            download = Path(tmp)
            self.transport.download_output(handle.job_id, download)
            remote_out = download / "out"
            kernel_log = next(download.glob("*.log"), None)
            if kernel_log is not None:
                text = kernel_log.read_bytes()
                if not looks_like_html(text[:2048]):
                    (out_dir / KAGGLE_LOG).write_bytes(text)
            if not remote_out.is_dir():
                raise RemoteOutputInvalid(
                    f"Kaggle kernel {handle.job_id} produced no out/ folder (see {out_dir / KAGGLE_LOG}); "
                    "the kernel failed before the stage runner started"
                )
            exit_code = (remote_out / EXIT_FILE).read_text().strip() if (remote_out / EXIT_FILE).is_file() else None
            validate_outputs(remote_out, require_complete=exit_code == "0", where=f"Kaggle kernel {handle.job_id}")
            key = _stage_key(remote_out / "spec.json")
            _install_outputs(remote_out, out_dir)
        if key:  # a later stage on this account mounts this kernel's output instead of uploading the model
            origin = {"kernel": handle.job_id, "key": key, "version": handle.details.get("version")}
            RemoteOrigin("kaggle", origin).write(out_dir)
        return out_dir

    def cancel(self, handle: JobHandle) -> CancelResult:
        self._stop_stream(handle, wait=False)
        where = handle.details.get("url") or f"https://www.kaggle.com/code/{handle.job_id}"
        return CancelResult(
            False,
            f"Kaggle's API cannot stop a running session (it exposes no session id; "
            f"https://github.com/Kaggle/kaggle-cli/pull/1174), so the kernel {handle.job_id} may still be running "
            f"and using GPU quota. palier stopped polling it and relaying its log. Stop it at {where} "
            "('Stop session', or https://www.kaggle.com/code under 'Active events'); otherwise it ends at "
            "backend.timeout_s.",
        )

    def reattach(self, handle: JobHandle) -> bool:
        raw, _ = self.transport.kernel_status(handle.job_id)
        if normalize_kernel_status(raw) == "unknown":
            return False
        mine = handle.details.get("version")
        return mine is None or self.transport.kernel_version(handle.job_id).current == mine

    # -- inputs -----------------------------------------------------------------------------
    def _ensure_inputs(self, ref: str, inputs: list[LocalInput]) -> None:
        marker = inputs_marker(inputs)
        existing = self.transport.dataset_files(ref)
        if existing is not None and marker in existing:
            return  # same content already uploaded
        with tempfile.TemporaryDirectory(prefix="palier-dataset-") as tmp:
            folder = Path(tmp)
            user, slug = ref.split("/")
            (folder / "dataset-metadata.json").write_text(json.dumps(dataset_metadata(user, slug)), encoding="utf-8")
            (folder / marker).write_text(json.dumps({i.digest: i.role for i in inputs}), encoding="utf-8")
            for item in {i.digest: i for i in inputs}.values():
                _pack(item, folder / f"{item.digest}.tar")
            if existing is None:
                self.transport.create_dataset(folder)
            else:
                self.transport.version_dataset(folder, f"palier inputs {marker}")
        self._wait_ready(ref)

    def _wait_ready(self, ref: str) -> None:
        deadline = time.monotonic() + DATASET_READY_TIMEOUT_S
        while True:
            status = self.transport.dataset_status(ref).lower()
            if status == "ready":
                return
            if status in ("error", "failed"):
                raise BackendError(f"Kaggle could not process the inputs dataset {ref} (status {status})")
            if time.monotonic() > deadline:
                raise BackendError(f"the inputs dataset {ref} is still {status!r} after {DATASET_READY_TIMEOUT_S // 60} min")
            time.sleep(self.poll_dataset_every_s)

    # -- live log relay -----------------------------------------------------------------------
    def _ensure_stream(self, handle: JobHandle) -> None:
        thread = self._streams.get(handle.job_id)
        if thread is not None and thread.is_alive():
            return
        out_dir = Path(handle.out_dir)
        stop = self._stream_stops.setdefault(handle.job_id, threading.Event())
        stop.clear()

        def follow() -> None:
            router = StreamRouter(out_dir, RelayState(out_dir))
            try:
                for event in self.transport.log_stream(handle.job_id):
                    if stop.is_set():
                        return
                    router.feed(str(event.get("data", "")))
            except Exception as exc:  # the relay is a convenience; the final fetch brings everything
                self._stream_errors[handle.job_id] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=follow, name=f"palier-kaggle-log-{handle.job_id}", daemon=True)
        self._streams[handle.job_id] = thread
        thread.start()

    def _stop_stream(self, handle: JobHandle, wait: bool = True) -> None:
        if not wait:
            self._stream_stops.setdefault(handle.job_id, threading.Event()).set()
        thread = self._streams.pop(handle.job_id, None)
        if thread is not None and wait:
            thread.join(timeout=30)  # the stream ends by itself once the session is over


def _pack(item: LocalInput, target: Path) -> None:
    with tarfile.open(target, "w") as tar:
        for payload in item.files:
            info = tarfile.TarInfo(payload.dest)
            info.size = payload.size()
            with payload.open() as fh:
                tar.addfile(info, fh)


def _stage_key(spec_file: Path) -> str | None:
    try:
        return json.loads(spec_file.read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError):
        return None


def _install_outputs(remote_out: Path, out_dir: Path) -> None:
    """Move validated outputs in place; events.jsonl only grows (a reader may be tailing it)."""
    for path in sorted(p for p in remote_out.rglob("*") if p.is_file()):
        rel = path.relative_to(remote_out)
        if rel.as_posix() == EVENTS:
            merge_final_events(out_dir / EVENTS, path.read_bytes())
            continue
        if rel.as_posix() == "spec.json":
            (out_dir / "spec.remote.json").write_bytes(path.read_bytes())
            continue
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.as_posix() == LOG or target.exists():
            target.unlink(missing_ok=True)
        shutil.move(str(path), str(target))
