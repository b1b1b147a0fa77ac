"""The thin layer that talks to Kaggle (client 2.x). Decisions live in kaggle_kernel/kaggle_status.

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

from core.backends.errors import BackendError, CredentialsMissing
from core.backends.kaggle_status import push_error


@dataclass(frozen=True)
class PushResult:
    version: int | None
    url: str


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
        from requests.exceptions import HTTPError

        try:
            result = self.api.dataset_list_files(ref, page_size=200)
        except HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return None
            raise
        files = _field(result, "dataset_files", "files", default=[]) or []
        return {_field(f, "name", "file_name", default="") for f in files}

    def create_dataset(self, folder: Path) -> None:
        self._check(self.api.dataset_create_new(str(folder), public=False, quiet=True, convert_to_csv=False, dir_mode="skip"))

    def version_dataset(self, folder: Path, notes: str) -> None:
        self._check(self.api.dataset_create_version(str(folder), notes, quiet=True, convert_to_csv=False, dir_mode="skip"))

    def dataset_status(self, ref: str) -> str:
        return str(self.api.dataset_status(ref))

    def push_kernel(self, folder: Path, timeout_s: int) -> PushResult:
        with contextlib.redirect_stdout(io.StringIO()):  # slug/title advice goes to stdout
            result = self.api.kernels_push(str(folder), timeout=str(timeout_s))
        error = _field(result, "error")
        if error:
            raise push_error(str(error))
        invalid = _field(result, "invalid_dataset_sources", "invalidDatasetSources")
        if invalid:
            raise push_error(f"The following are not valid dataset sources: {invalid}")
        return PushResult(_field(result, "version_number", "versionNumber"), _field(result, "url", default=""))

    def kernel_status(self, ref: str) -> tuple[object, str]:
        from requests.exceptions import HTTPError

        try:
            response = self.api.kernels_status(ref)
        except HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return "unknown", "kernel not found"
            raise
        except ValueError as exc:  # the client's rewording of 401/403
            return "unknown", str(exc)
        return _field(response, "status", default="unknown"), _field(response, "failure_message", "failureMessage", default="")

    def download_output(self, ref: str, dest: Path) -> list[Path]:
        files, _ = self.api.kernels_output(ref, str(dest), force=True, quiet=True)
        return [Path(f) for f in files]

    def log_stream(self, ref: str) -> Iterator[dict]:
        yield from self.api.kernels_logs_stream(ref)

    @staticmethod
    def _check(response) -> None:
        error = _field(response, "error")
        if error:
            raise BackendError(f"Kaggle refused the dataset upload: {error}")
        status = str(_field(response, "status", default="")).lower()
        if status and status != "ok":
            raise BackendError(f"Kaggle dataset upload answered {json.dumps(status)}")
