"""Tracking calls that wait out an MLflow outage instead of failing the pipeline.

MLflow's own client retries a dead server for about four minutes (7 retries, exponential
backoff) inside every single request, then raises. palier turns that off (one attempt per
request, a bounded HTTP timeout) and does its own bounded waiting here: a call that fails
because the server cannot be reached is retried with backoff until the outage has lasted
``PALIER_TRACKING_PATIENCE_S`` (600 s by default), then raises ``TrackingUnavailable``.
When the server answers again, the outage window is written on the run the call was for
(tag ``palier.tracking.outages``), so a reader of the run knows its metrics came late.

Step metrics do not wait in memory: ``core.tracking.spool`` keeps them on disk first.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from core.tracking.schema import TAG_TRACKING_OUTAGES

PATIENCE_ENV = "PALIER_TRACKING_PATIENCE_S"
DEFAULT_PATIENCE_S = 600.0
MAX_BACKOFF_S = 15.0
# One attempt per request, and a request that hangs is given up after 30 s: the waiting is ours.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}

# MlflowClient methods whose first argument is a run id: an outage they saw is noted on that run.
RUN_METHODS = frozenset({
    "log_batch", "log_metric", "log_param", "set_tag", "set_terminated", "update_run", "log_artifact",
    "log_artifacts", "log_dict", "log_text", "log_table", "log_figure", "log_image", "get_run",
    "list_artifacts", "log_inputs", "log_outputs",
})
_UNREACHABLE_TEXT = ("connection refused", "failed to establish a new connection", "max retries exceeded",
                     "remotedisconnected", "connection aborted", "connection reset", "timed out",
                     "temporarily unavailable", "bad gateway", "service unavailable", "gateway timeout",
                     "too many 502", "too many 503", "too many 504")

log = logging.getLogger("palier.tracking")
# Tracking URI -> when it first failed to answer, shared by every client of this process: the
# patience is spent once per outage, not once per task that happens to call MLflow.
_DOWN_SINCE: dict[str, float] = {}


class TrackingUnavailable(RuntimeError):
    """The tracking server stayed unreachable for longer than the patience."""


def configure_mlflow_http() -> None:
    """Turn MLflow's hidden per-request retry loop off unless the user set these themselves."""
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def patience_s() -> float:
    try:
        return max(0.0, float(os.environ.get(PATIENCE_ENV, DEFAULT_PATIENCE_S)))
    except ValueError:
        return DEFAULT_PATIENCE_S


def unreachable(exc: BaseException) -> bool:
    """Did this error come from not reaching the server (as opposed to a bad request)?"""
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError,
                                requests.exceptions.ChunkedEncodingError, ConnectionError, TimeoutError)):
            return True
        current = current.__cause__ or current.__context__
    text = str(exc).lower()
    return any(marker in text for marker in _UNREACHABLE_TEXT)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


@dataclass(frozen=True)
class Outage:
    started: float
    ended: float

    def text(self) -> str:
        return f"{_utc(self.started)} to {_utc(self.ended)} UTC ({self.ended - self.started:.0f} s)"


class PatientClient:
    """An ``MlflowClient`` whose calls wait out an outage (bounded); attributes pass through."""

    def __init__(self, client, tracking_uri: str = "", patience: float | None = None):
        self._client = client
        self.tracking_uri = tracking_uri
        self._patience = patience_s() if patience is None else patience
        self._saw_down_since: float | None = None  # this client met the outage that began then
        self.outages: list[Outage] = []
        self._unmarked: list[Outage] = []

    @property
    def down_since(self) -> float | None:
        return _DOWN_SINCE.get(self.tracking_uri)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_client":
            raise AttributeError(name)
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)

    def attempt(self, name: str, *args, **kwargs) -> Any:
        """One try; an unreachable server raises TrackingUnavailable at once (the caller keeps
        the data and tries again later)."""
        try:
            result = getattr(self._client, name)(*args, **kwargs)
        except Exception as exc:
            if not unreachable(exc):
                raise
            self._went_down()
            raise TrackingUnavailable(self._message(exc)) from exc
        self._came_back(name, args)
        return result

    def call(self, name: str, *args, **kwargs) -> Any:
        """Retry while the server is unreachable, until the outage is older than the patience."""
        delay = 1.0
        while True:
            try:
                return self.attempt(name, *args, **kwargs)
            except TrackingUnavailable:
                since = self.down_since or time.time()
                left = since + self._patience - time.time()
                if left <= 0:
                    raise
                wait = min(delay, left, MAX_BACKOFF_S)
                log.warning("MLflow unreachable since %s UTC (%s); retrying %s in %.0f s, giving up after %.0f s more",
                            _utc(since), self.tracking_uri, name, wait, left)
                time.sleep(wait)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def _went_down(self) -> None:
        since = _DOWN_SINCE.setdefault(self.tracking_uri, time.time())
        if self._saw_down_since is None:
            self._saw_down_since = since

    def _came_back(self, name: str, args: tuple) -> None:
        _DOWN_SINCE.pop(self.tracking_uri, None)
        if self._saw_down_since is not None:
            outage = Outage(self._saw_down_since, time.time())
            self._saw_down_since = None
            self.outages.append(outage)
            self._unmarked.append(outage)
            log.warning("MLflow reachable again after %.0f s", outage.ended - outage.started)
        if self._unmarked and name in RUN_METHODS and args and isinstance(args[0], str):
            self._mark(args[0])

    def _mark(self, run_id: str) -> None:
        """Append the outages not yet written to the run's tag (best effort: never fails a call)."""
        pending, self._unmarked = self._unmarked, []
        try:
            before = self._client.get_run(run_id).data.tags.get(TAG_TRACKING_OUTAGES, "")
            text = "; ".join([t for t in [before] if t] + [o.text() for o in pending])
            self._client.set_tag(run_id, TAG_TRACKING_OUTAGES, text[:5000])
        except Exception as exc:  # the server went again: keep them for the next call
            self._unmarked = pending + self._unmarked
            log.debug("could not note the outage on run %s: %s", run_id, exc)

    def _message(self, exc: Exception) -> str:
        since = self.down_since or time.time()
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return (f"MLflow tracking server {self.tracking_uri} unreachable since {_utc(since)} UTC "
                f"(patience {self._patience:.0f} s, {PATIENCE_ENV}): {first}")
