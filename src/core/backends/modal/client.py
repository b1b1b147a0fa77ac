"""The thin layer that talks to Modal (client 1.x). Everything it decides comes from plan.py.

``modal`` is imported inside the methods: importing core.backends must stay fast and must work
without the Modal client configured.
"""

from __future__ import annotations

import contextlib
import io
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.backends.errors import BackendError, CredentialsMissing, JobNotFound, QuotaExceeded, ServiceUnavailable
from core.backends.modal.plan import ModalLaunch
from core.backends.shipping import PayloadFile

CANCELLED_CODES = (130, 143, -15, -2)


@dataclass(frozen=True)
class CallState:
    state: str  # "running" | "succeeded" | "failed" | "cancelled" | "unknown"
    exit_code: int | None = None
    message: str = ""


def modal_credentials_source(env: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """Where Modal would find a token (a description, never the token), or None."""
    env = dict(os.environ) if env is None else env
    if env.get("MODAL_TOKEN_ID") and env.get("MODAL_TOKEN_SECRET"):
        return "MODAL_TOKEN_ID/MODAL_TOKEN_SECRET environment variables"
    config = Path(env.get("MODAL_CONFIG_PATH") or (home or Path.home()) / ".modal.toml")
    if config.is_file():
        try:
            profiles = tomllib.loads(config.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            return None
        if any(isinstance(p, dict) and p.get("token_id") for p in profiles.values()):
            return str(config)
    return None


def require_modal_credentials() -> None:
    if modal_credentials_source() is None:
        raise CredentialsMissing(
            "no Modal token found. Run `modal setup` (opens a browser) or `modal token set --token-id ... "
            "--token-secret ...`, or export MODAL_TOKEN_ID and MODAL_TOKEN_SECRET."
        )


def call_state_from_result(value: Any) -> CallState:
    code = int(value.get("exit_code", 1)) if isinstance(value, dict) else 1
    if code == 0:
        return CallState("succeeded", 0)
    if code in CANCELLED_CODES:
        return CallState("cancelled", code, f"stage stopped by a signal (exit {code})")
    if code == 124:
        return CallState("failed", code, "stage reached backend.timeout_s and was stopped (checkpoints kept for a retry)")
    return CallState("failed", code, f"stage runner exited with code {code}; see stage.log")


def build_app(launch: ModalLaunch):
    """The modal.App and its single function (no network: Modal objects are lazy until app.run)."""
    import modal

    from core.backends.modal.container import run_stage_in_container

    image = modal.Image.debian_slim(python_version=launch.python_version)
    if launch.system_packages:
        image = image.apt_install(*launch.system_packages)
    image = (
        image.pip_install(*launch.requirements)
        .env(launch.image_env)
        # Last: local sources are mounted at container start, so a code change needs no image rebuild.
        .add_local_python_source(*launch.local_sources, ignore=["**/__pycache__/**", "**/*.pyc"])
    )
    app = modal.App(launch.app)
    volume = modal.Volume.from_name(launch.volume, create_if_missing=True)
    secrets = [modal.Secret.from_name(name) for name in launch.secrets]
    function = app.function(
        image=image,
        gpu=launch.gpu,
        timeout=launch.timeout_s,
        volumes={launch.mount: volume},
        secrets=secrets,
        nonpreemptible=launch.nonpreemptible,
        name=launch.function_name,
        serialized=True,  # defined per stage (GPU, timeout), so not at a module's top level
    )(run_stage_in_container)
    return app, function


class ModalClient:
    """Volume I/O and function calls for one volume."""

    def __init__(self, volume: str, show_progress: bool = True):
        self.volume_name = volume
        self.show_progress = show_progress
        self._volume = None

    @property
    def volume(self):
        if self._volume is None:
            require_modal_credentials()
            import modal

            self._volume = modal.Volume.from_name(self.volume_name, create_if_missing=True)
        return self._volume

    def exists(self, path: str) -> bool:
        from modal.exception import NotFoundError

        try:
            with _service_errors():
                return bool(self.volume.listdir(path))  # a file path lists that one file
        except (NotFoundError, FileNotFoundError):
            return False

    def file_sizes(self, folder: str) -> dict[str, int]:
        """Volume-relative path -> size of every file under ``folder`` ({} when absent)."""
        from modal.exception import NotFoundError
        from modal.volume import FileEntryType

        try:
            with _service_errors():
                entries = self.volume.listdir(folder, recursive=True)
        except (NotFoundError, FileNotFoundError):
            return {}
        return {e.path.strip("/"): e.size for e in entries if e.type == FileEntryType.FILE}

    def read(self, path: str) -> bytes | None:
        from modal.exception import NotFoundError

        try:
            with _service_errors():
                return b"".join(self.volume.read_file(path))
        except (NotFoundError, FileNotFoundError):
            return None

    def download(self, path: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + ".part")
        with tmp.open("wb") as fh:
            for chunk in self.volume.read_file(path):
                fh.write(chunk)
        tmp.replace(local)

    def upload(self, files: list[tuple[PayloadFile, str]]) -> None:
        with self.volume.batch_upload(force=True) as batch:
            for item, remote in files:
                if item.content is not None:
                    batch.put_file(io.BytesIO(item.content), remote)
                else:
                    batch.put_file(str(item.source), remote)

    def remove(self, path: str) -> None:
        from modal.exception import NotFoundError

        try:
            self.volume.remove_file(path)
        except (NotFoundError, FileNotFoundError):
            pass

    def spawn(self, launch: ModalLaunch) -> str:
        require_modal_credentials()
        import modal
        from modal.exception import NotFoundError

        app, function = build_app(launch)
        output = modal.enable_output() if self.show_progress else contextlib.nullcontext()
        try:
            with output, app.run(detach=True):
                call = function.spawn(launch.request)
        except NotFoundError as exc:
            if launch.secrets and "secret" in str(exc).lower():
                raise CredentialsMissing(
                    f"Modal secret {launch.secrets[0]!r} not found ({exc}). Create it with "
                    f"`modal secret create {launch.secrets[0]} HF_TOKEN=hf_...`, or set "
                    "backend.options.hf_secret: '' when the models and data are public."
                ) from exc
            raise BackendError(f"Modal could not start the stage: {exc}") from exc
        return call.object_id

    def call_state(self, call_id: str) -> CallState:
        import modal
        from modal.exception import FunctionTimeoutError, NotFoundError, OutputExpiredError, RemoteError

        try:
            value = modal.FunctionCall.from_id(call_id).get(timeout=0)
        except TimeoutError:  # builtin: no output yet
            return CallState("running")
        except FunctionTimeoutError as exc:
            return CallState("failed", 124, f"Modal stopped the function at its timeout: {exc}")
        except (OutputExpiredError, NotFoundError) as exc:
            return CallState("unknown", message=f"{type(exc).__name__}: {exc}")
        except RemoteError as exc:
            return remote_error_state(exc)
        except Exception as exc:
            service = service_error(exc)
            if service is not None:
                raise service from exc
            # the function itself raised (its exception is re-raised here) or crashed before running
            return CallState("failed", message=f"{type(exc).__name__}: {exc}")
        return call_state_from_result(value)

    def cancel(self, call_id: str) -> None:
        import modal

        try:
            modal.FunctionCall.from_id(call_id).cancel()
        except Exception as exc:
            raise service_error(exc) or exc


@contextlib.contextmanager
def _service_errors():
    """Volume reads during polling: an outage or rate limit is transient, not "file missing"."""
    from modal.exception import NotFoundError

    try:
        yield
    except (NotFoundError, FileNotFoundError):
        raise
    except Exception as exc:
        mapped = service_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


TERMINATED_REASON = (
    "Modal terminated the call: it was cancelled (FunctionCall.cancel, `modal app stop`, the dashboard's "
    "stop button) or the workspace ran out of credit"
)


def remote_error_state(exc: Exception) -> CallState:
    """A result Modal holds without a return value. TERMINATED results reach the client as a
    RemoteError carrying the server's text, usually empty: that is a cancellation, not a crash."""
    text = str(exc).strip()
    lowered = text.lower()
    if not text or "cancel" in lowered or "terminat" in lowered or "stopped" in lowered:
        return CallState("cancelled", message=TERMINATED_REASON + (f" ({text})" if text else ""))
    return CallState("failed", message=f"Modal reported: {text}")


def service_error(exc: Exception) -> BackendError | None:
    """Modal client errors in palier's terms: transient ones are retried by the watch loop,
    permanent ones stop the stage with what to do. None when ``exc`` is not about the service."""
    import grpclib
    from modal import exception as E

    if isinstance(exc, (E.AuthError, E.PermissionDeniedError)):
        return CredentialsMissing(f"Modal refused the token ({exc}). Run `modal token new` (or `modal setup`), "
                                  "or export MODAL_TOKEN_ID and MODAL_TOKEN_SECRET for this workspace.")
    if isinstance(exc, E.NotFoundError):
        return JobNotFound(f"Modal does not know this call or app ({exc}); it may belong to another workspace")
    if isinstance(exc, E.ResourceExhaustedError):
        text = str(exc)
        if "rate" in text.lower() or "too many" in text.lower():
            return ServiceUnavailable(f"Modal rate-limited the request: {text}")
        return QuotaExceeded(f"Modal refused for a workspace limit ({text}); see https://modal.com/settings/usage")
    if isinstance(exc, (E.ConnectionError, E.ServiceError, E.InternalError, E.TimeoutError, E.ClientClosed,
                        ConnectionError, OSError, TimeoutError)):
        return ServiceUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, grpclib.GRPCError):
        status = exc.status.name
        if status in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED", "ABORTED"):
            return ServiceUnavailable(f"Modal API {status}: {exc.message}")
        if status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return CredentialsMissing(f"Modal refused the token ({status}: {exc.message}). Run `modal token new`.")
        if status == "NOT_FOUND":
            return JobNotFound(f"Modal: {exc.message}")
    return None
