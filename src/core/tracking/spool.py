"""Step metrics go to disk first, then to MLflow: nothing is lost or sent twice across an outage.

Each stage run has an append-only spool ``<stage folder>/.tracking-spool/<run id>.jsonl`` (one
metric per line, with the timestamp it was measured at) and ``<run id>.json`` recording how many
bytes of it MLflow has acknowledged. The relay sends from that offset in batches; while the
server is down it keeps appending and tries again with backoff, without ever holding up the
stage. A resent batch is harmless: MLflow ignores a metric identical in key, value, step and
timestamp, which the spool preserves. A spool left unsent by a process that died is sent by the
next relay started for the same stage folder.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from core.tracking import schema as S
from core.tracking.outage import TrackingUnavailable

SPOOL_DIR = ".tracking-spool"
BATCH = 1000  # MLflow's log_batch limit for metrics
MAX_RETRY_GAP_S = 30.0

log = logging.getLogger("palier.tracking")


def metric_name(key: str) -> str:
    """Trainer log keys -> MLflow metric names (``loss`` -> ``train/loss``, ``eval_wer`` -> ``eval/wer``)."""
    if "/" in key:
        return key
    return f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"


class MetricSpool:
    def __init__(self, folder: Path, run_id: str):
        self.run_id = run_id
        self.file = folder / f"{run_id}.jsonl"
        self.state_file = folder / f"{run_id}.json"
        self.state = {"sent_bytes": 0, "sent": 0, "replayed": 0}
        if self.state_file.exists():
            self.state.update(json.loads(self.state_file.read_text(encoding="utf-8")))

    def append(self, items: list[tuple[str, float, int, int]]) -> None:
        """(key, value, timestamp ms, step) lines, flushed before returning."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with self.file.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"key": k, "value": v, "timestamp": t, "step": s}) + "\n" for k, v, t, s in items)

    def pending(self, limit: int = BATCH) -> tuple[list, int]:
        """Up to ``limit`` unsent metrics and the byte offset just past them."""
        from mlflow.entities import Metric

        if not self.file.exists():
            return [], self.state["sent_bytes"]
        offset = self.state["sent_bytes"]
        metrics = []
        with self.file.open("rb") as fh:
            fh.seek(offset)
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a line still being written
                offset += len(line)
                if line.strip():
                    row = json.loads(line)
                    metrics.append(Metric(row["key"], float(row["value"]), int(row["timestamp"]), int(row["step"])))
                if len(metrics) >= limit:
                    break
        return metrics, offset

    def mark_sent(self, offset: int, count: int, replayed: int) -> None:
        self.state["sent_bytes"] = offset
        self.state["sent"] += count
        self.state["replayed"] += replayed
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state), encoding="utf-8")
        tmp.replace(self.state_file)


class MetricRelay:
    """Live training metrics (from events.jsonl) -> spool -> MLflow, in batches."""

    def __init__(self, tracker, run_id: str, out_dir: Path, flush_every_s: float = 5.0):
        self.tracker, self.run_id, self.flush_every_s = tracker, run_id, flush_every_s
        self.folder = Path(out_dir) / SPOOL_DIR
        self.spool = MetricSpool(self.folder, run_id)
        self._last_flush = time.monotonic()
        self._next_try = 0.0
        self._failures = 0
        self._held = self._has_pending()  # left over by a previous process: it is a replay
        self._send_leftovers()

    @property
    def sent(self) -> int:
        return int(self.spool.state["sent"])

    @property
    def replayed(self) -> int:
        return int(self.spool.state["replayed"])

    def add(self, step: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.spool.append([(metric_name(k), float(v), now, int(step)) for k, v in metrics.items()])
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> bool:
        """Send what is pending, one attempt per batch; False when the server could not be reached
        (the metrics stay in the spool and the next flush tries again, after a backoff)."""
        self._last_flush = time.monotonic()
        if self._last_flush < self._next_try:
            return False
        try:
            self._send(wait=False)
        except TrackingUnavailable as exc:
            self._failures += 1
            self._held = True
            self._next_try = time.monotonic() + min(2.0 ** self._failures, MAX_RETRY_GAP_S)
            if self._failures == 1:
                log.warning("MLflow unreachable, step metrics kept in %s until it is back: %s", self.spool.file, exc)
            return False
        self._failures, self._next_try = 0, 0.0
        return True

    def close(self) -> bool:
        """At the end of the stage: wait (bounded) until everything in the spool is in MLflow, then
        note how many metrics were replayed. False if the server stayed away past the patience:
        the spool is kept and sent by the next relay for this stage folder."""
        try:
            self._send(wait=True)
            if self.replayed:
                self.tracker.set_tags(self.run_id, {S.TAG_REPLAYED_METRICS: str(self.replayed)})
        except TrackingUnavailable as exc:
            log.error("step metrics not sent to MLflow; they stay in %s: %s", self.spool.file, exc)
            return False
        return True

    def _has_pending(self) -> bool:
        return bool(self.spool.pending(limit=1)[0])

    def _send(self, wait: bool) -> None:
        while True:
            metrics, offset = self.spool.pending()
            if not metrics:
                self._held = False
                return
            self.tracker.send_metrics(self.run_id, metrics, wait=wait)
            self.spool.mark_sent(offset, len(metrics), len(metrics) if self._held else 0)

    def _send_leftovers(self) -> None:
        """Spools of earlier runs in this folder that a dead process did not finish sending."""
        if not self.folder.is_dir():
            return
        for file in sorted(self.folder.glob("*.jsonl")):
            if file.stem == self.run_id:
                continue
            spool = MetricSpool(self.folder, file.stem)
            try:
                while True:
                    metrics, offset = spool.pending()
                    if not metrics:
                        break
                    self.tracker.send_metrics(file.stem, metrics, wait=False)
                    spool.mark_sent(offset, len(metrics), len(metrics))
            except TrackingUnavailable:
                return
            except Exception as exc:  # e.g. that run was deleted: its spool stays on disk
                log.warning("could not replay %s: %s", file, exc)
