"""Read live state: MLflow (MLFLOW_TRACKING_URI) and Prefect (PREFECT_API_URL), both optional.

Never starts anything: no tracking URI -> MLflow "not configured" (MLflow's own default would
create ./mlflow.db); no PREFECT_API_URL -> Prefect "not configured" (its client would start a
temporary server). A server URL is health-checked with a short timeout before the client is
used, so a service that is down costs ~2 s, not the clients' retry loops.
"""

from __future__ import annotations

import copy
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.tracking import queries

HEALTH_TIMEOUT_S = 2.0


@dataclass
class ServiceStatus:
    name: str
    configured: bool
    reachable: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "configured": self.configured, "reachable": self.reachable, "detail": self.detail}


def _http_ok(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as resp:  # noqa: S310 - configured URL
            return 200 <= resp.status < 400, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return exc.code < 500, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, str(getattr(exc, "reason", exc))


class MlflowState:
    def __init__(self, tracking_uri: str | None = None):
        self.uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        self._client = None
        self._status: ServiceStatus | None = None
        self._memo: dict[tuple, Any] | None = None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within the block, each query is asked once: one answer reads one consistent state
        (and a question that looks at every pipeline does not query the store ten times)."""
        outer = self._memo
        self._memo = {} if outer is None else outer
        try:
            yield
        finally:
            self._memo = outer

    def _cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if self._memo is None:
            return compute()
        if key not in self._memo:
            self._memo[key] = compute()
        return copy.deepcopy(self._memo[key])

    def status(self) -> ServiceStatus:
        if self._status is not None:
            return self._status
        if not self.uri:
            self._status = ServiceStatus("mlflow", False, False, "MLFLOW_TRACKING_URI is not set")
        elif self.uri.startswith(("http://", "https://")):
            ok, detail = _http_ok(self.uri.rstrip("/") + "/health")
            self._status = ServiceStatus("mlflow", True, ok, f"{self.uri}: {detail}")
        elif self.uri.startswith("sqlite:///"):
            path = Path(self.uri[len("sqlite:///"):])
            ok = path.is_file()
            self._status = ServiceStatus("mlflow", True, ok, f"{self.uri}: {'found' if ok else 'no such database'}")
        else:
            self._status = ServiceStatus("mlflow", True, True, self.uri)
        return self._status

    @property
    def available(self) -> bool:
        return self.status().reachable

    def client(self):  # noqa: ANN201 - mlflow is imported lazily
        if self._client is None:
            self._client = queries.read_client(self.uri)
        return self._client

    def pipelines(self) -> list[dict[str, Any]]:
        return self._cached(("pipelines",), self._pipelines)

    def _pipelines(self) -> list[dict[str, Any]]:
        return queries.pipeline_experiments(self.client())

    def pipeline_runs(self, experiment_id: str, limit: int = 5) -> list[dict[str, Any]]:
        return self._cached(("pipeline_runs", experiment_id, limit), lambda: self._pipeline_runs(experiment_id, limit))

    def _pipeline_runs(self, experiment_id: str, limit: int) -> list[dict[str, Any]]:
        return queries.pipeline_runs(self.client(), experiment_id, limit)

    def stage_runs(self, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
        return self._cached(("stage_runs", experiment_id, parent_run_id),
                            lambda: self._stage_runs(experiment_id, parent_run_id))

    def _stage_runs(self, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
        return queries.stage_runs(self.client(), experiment_id, parent_run_id)

    def json_artifact(self, run_id: str, path: str) -> dict[str, Any] | None:
        return self._cached(("artifact", run_id, path), lambda: self._json_artifact(run_id, path))

    def _json_artifact(self, run_id: str, path: str) -> dict[str, Any] | None:
        return queries.json_artifact(self.client(), run_id, path)


    def run(self, run_id: str) -> dict[str, Any] | None:
        return self._cached(("run", run_id), lambda: queries.run(self.client(), run_id))

    def table_artifact(self, run_id: str, path: str) -> list[dict[str, Any]] | None:
        return self._cached(("table", run_id, path), lambda: queries.table_artifact(self.client(), run_id, path))

    def text_artifact(self, run_id: str, path: str) -> str | None:
        return self._cached(("text", run_id, path), lambda: queries.text_artifact(self.client(), run_id, path))

    def registered_model(self, name: str) -> dict[str, Any]:
        return self._cached(("model", name), lambda: queries.registered_model(self.client(), name))


class PrefectState:
    def __init__(self, api_url: str | None = None):
        self.url = api_url or os.environ.get("PREFECT_API_URL") or None
        self._status: ServiceStatus | None = None

    def status(self) -> ServiceStatus:
        if self._status is None:
            if not self.url:
                self._status = ServiceStatus("prefect", False, False, "PREFECT_API_URL is not set")
            else:
                ok, detail = _http_ok(self.url.rstrip("/") + "/health")
                self._status = ServiceStatus("prefect", True, ok, f"{self.url}: {detail}")
        return self._status

    @property
    def available(self) -> bool:
        return self.status().reachable

    def flow_run(self, flow_run_id: str) -> dict[str, Any] | None:
        if not self.available:
            return None
        from core.orchestration.queries import read_flow_run

        try:
            return read_flow_run(flow_run_id, self.url, timeout_s=10).as_dict()
        except Exception:  # noqa: BLE001 - Prefect is optional context, never a reason to fail
            return None


def pipeline_files(folder: Path | None) -> dict[str, Path]:
    """Pipeline name (its ``name:``, else the file's stem) -> file, for the YAML files of a folder."""
    if folder is None or not folder.is_dir():
        return {}
    import yaml

    out: dict[str, Path] = {}
    for path in sorted(folder.glob("*.y*ml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        name = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else path.stem
        out.setdefault(name, path.resolve())
    return out


@dataclass
class LiveState:
    mlflow: MlflowState
    prefect: PrefectState
    pipelines_dir: Path | None = None

    @classmethod
    def from_env(cls) -> LiveState:
        folder = os.environ.get("PALIER_PIPELINES_DIR")
        return cls(MlflowState(), PrefectState(), Path(folder) if folder else Path("pipelines"))

    def pipeline_files(self) -> dict[str, Path]:
        """Pipelines that exist as files (so one never run is still known)."""
        if not hasattr(self, "_files"):
            self._files = pipeline_files(self.pipelines_dir)
        return self._files

    def services(self) -> list[dict[str, Any]]:
        return [self.mlflow.status().as_dict(), self.prefect.status().as_dict()]
