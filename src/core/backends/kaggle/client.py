"""The thin layer that talks to Kaggle (client 2.x). Decisions live in kernel.py/status.py.

``import kaggle`` authenticates at import time and prints a help text when it finds no token, and
``KaggleApi.authenticate()`` calls ``exit(1)``: both are contained here, after checking the
standard credential places ourselves so the error says what to do.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.backends.errors import BackendError, CredentialsMissing, JobNotFound, ServiceUnavailable
from core.backends.kaggle.status import push_error


@dataclass(frozen=True)
class PushResult:
    version: int | None
    url: str


@dataclass(frozen=True)
class KernelVersion:
    current: int | None  # None: the kernel is not (yet) visible
    last_run_at: float | None  # epoch seconds


TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


class _Missing(list):
    """Truthy once the guarded call answered "not found" (403 or 404) and missing_ok was given."""


@contextlib.contextmanager
def http_errors(what: str, missing_ok: bool = False):
    """Kaggle HTTP failures in palier's terms: rate limits, 5xx and network errors are transient
    (the watch loop retries them); 401 is a credentials problem; 403/404 are "not found"
    (Kaggle answers 403 for a private name that does not exist)."""
    import requests

    missing = _Missing()
    try:
        yield missing
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else None
        if code in TRANSIENT_HTTP:
            raise ServiceUnavailable(f"Kaggle answered {code} for {what}; retrying later") from exc
        if code == 401:
            raise CredentialsMissing(f"Kaggle rejected the token for {what} (401). {MISSING_CREDENTIALS}") from exc
        if code in (403, 404):
            if missing_ok:
                missing.append(code)
                return
            raise JobNotFound(f"Kaggle answered {code} for {what}: it does not exist or this account cannot see it "
                              "(check backend.options.user and the token's account)") from exc
        raise BackendError(f"Kaggle answered {code} for {what}: {exc}") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise ServiceUnavailable(f"cannot reach Kaggle for {what} ({type(exc).__name__})") from exc


def kaggle_credentials_source(env: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """Where the Kaggle client would find credentials (a description, never the secret), or None."""
    env = dict(os.environ) if env is None else env
    home = home or Path.home()
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN environment variable"
    for name in ("access_token", "access_token.txt"):
        if (home / ".kaggle" / name).is_file():
            return f"~/.kaggle/{name}"
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY environment variables"
    folders = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    folders += [home / ".kaggle", Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"]
    for folder in folders:
        if (folder / "kaggle.json").is_file():
            return str(folder / "kaggle.json")
    return None


MISSING_CREDENTIALS = (
    "no Kaggle credentials found. Create an API token at https://www.kaggle.com/settings (API section) and "
    "either save it to ~/.kaggle/access_token (chmod 600) or export KAGGLE_API_TOKEN; a legacy kaggle.json "
    "in ~/.kaggle/ or KAGGLE_USERNAME/KAGGLE_KEY also work."
)


def authenticated_api():
    if kaggle_credentials_source() is None:
        raise CredentialsMissing(MISSING_CREDENTIALS)
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints auth help on import
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit as exc:
            raise CredentialsMissing(f"Kaggle rejected the credentials it found. {MISSING_CREDENTIALS}") from exc
    return api


def _field(obj, *names: str, default=None):
    for name in names:
        value = getattr(obj, name, None)
        if value not in (None, ""):
            return value
    return default


class KaggleClient:
    def __init__(self):
        self._api = None

    @property
    def api(self):
        if self._api is None:
            self._api = authenticated_api()
        return self._api

    @property
    def username(self) -> str:
        user = self.api.get_config_value("username")
        if not user:
            raise CredentialsMissing("Kaggle did not say which account the token belongs to; set backend.options.user")
        return user

    def dataset_files(self, ref: str) -> set[str] | None:
        """File names of the dataset, or None when it does not exist. Kaggle answers 403, not 404,
        for a private slug that does not exist (its own client reads 403 as "probably a wrong slug")."""
        try:
            with http_errors(f"dataset {ref}", missing_ok=True) as missing:
                result = self.api.dataset_list_files(ref, page_size=200)
        except JobNotFound:
            return None
        if missing:
            return None
        if _field(result, "error_message"):  # the list call answers 200 with an error text for some refs
            return None
        files = _field(result, "dataset_files", "files", default=[]) or []
        return {_field(f, "name", "file_name", default="") for f in files}

    def create_dataset(self, folder: Path) -> None:
        with http_errors("dataset upload"):
            response = self.api.dataset_create_new(str(folder), public=False, quiet=True, convert_to_csv=False,
                                                   dir_mode="skip")
        self._check(response)

    def version_dataset(self, folder: Path, notes: str) -> None:
        with http_errors("dataset upload"):
            response = self.api.dataset_create_version(str(folder), notes, quiet=True, convert_to_csv=False,
                                                       dir_mode="skip")
        self._check(response)

    def dataset_status(self, ref: str) -> str:
        with http_errors(f"dataset {ref}"):
            return str(self.api.dataset_status(ref))

    def push_kernel(self, folder: Path, timeout_s: int) -> PushResult:
        with contextlib.redirect_stdout(io.StringIO()), http_errors("kernel push"):  # slug advice goes to stdout
            result = self.api.kernels_push(str(folder), timeout=str(timeout_s))
        error = _field(result, "error")
        if error:
            raise push_error(str(error))
        invalid = _field(result, "invalid_dataset_sources", "invalidDatasetSources")
        if invalid:
            raise push_error(f"The following are not valid dataset sources: {invalid}")
        invalid = _field(result, "invalid_kernel_sources", "invalidKernelSources")
        if invalid:  # an upstream stage's kernel that this account cannot read
            raise push_error(f"The following are not valid kernel sources: {invalid}")
        return PushResult(_field(result, "version_number", "versionNumber"), _field(result, "url", default=""))

    def kernel_status(self, ref: str) -> tuple[object, str]:
        try:
            with http_errors(f"kernel {ref}", missing_ok=True) as missing:
                response = self.api.kernels_status(ref)
        except ValueError as exc:  # the client's rewording of 401/403: a wrong slug or a kernel not (yet) visible
            return "unknown", str(exc)
        if missing:
            return "unknown", "kernel not found"
        return _field(response, "status", default="unknown"), _field(response, "failure_message", "failureMessage", default="")

    def kernel_version(self, ref: str) -> KernelVersion:
        """The kernel's current version and last run time: the status call carries no version, so
        this says whether a status can describe the version palier pushed."""
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

        owner, slug = ref.split("/", 1)
        request = ApiGetKernelRequest()
        request.user_name, request.kernel_slug = owner, slug
        with http_errors(f"kernel {ref}", missing_ok=True) as missing, self.api.build_kaggle_client() as kaggle:
            response = kaggle.kernels.kernels_api_client.get_kernel(request)
        if missing:
            return KernelVersion(None, None)
        metadata = _field(response, "metadata")
        last_run = _field(metadata, "last_run_time")
        return KernelVersion(_field(metadata, "current_version_number"),
                             last_run.timestamp() if hasattr(last_run, "timestamp") else None)

    def download_output(self, ref: str, dest: Path) -> list[Path]:
        with http_errors(f"kernel {ref} output"):
            files, _ = self.api.kernels_output(ref, str(dest), force=True, quiet=True)
        return [Path(f) for f in files]

    def log_stream(self, ref: str) -> Iterator[dict]:
        with http_errors(f"kernel {ref} log"):
            yield from self.api.kernels_logs_stream(ref)

    @staticmethod
    def _check(response) -> None:
        error = _field(response, "error")
        if error:
            raise BackendError(f"Kaggle refused the dataset upload: {error}")
        status = str(_field(response, "status", default="")).lower()
        if status and status != "ok":
            raise BackendError(f"Kaggle dataset upload answered {json.dumps(status)}")
