"""``python -m bench.mlflow_model``: what making a stage's output an MLflow model costs.

For the nano demo Whisper and whisper-base (``pypi:whisper-base``): the time to write the MLflow
model folder (``core.stage.mlflow_model``: build the pipeline, ``mlflow.transformers.save_model``,
hard-link the stage's files), the bytes it adds on disk, and the time to log it as a LoggedModel
and register it (a local SQLite store and artifact folder: the upload is a file copy) next to
what registering cost before (the plain folder logged as run artifacts). Each measurement is
repeated in rotating order; the machine's load is recorded at the start. Writes
``bench/results/mlflow_model.{json,md}``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LARGE_V3_BYTES = 3_087_000_000  # openai/whisper-large-v3 model.safetensors (float16)


def _disk_bytes(folder: Path) -> int:
    """Bytes the folder really occupies: a hard-linked file counts once across the tree."""
    seen, total = set(), 0
    for p in folder.rglob("*"):
        if p.is_file() and (st := p.stat()).st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_size
    return total


def _import_seconds() -> float:
    """What a stage runner that has transformers loaded pays once to import mlflow.transformers."""
    code = ("import time, transformers, torch; t = time.perf_counter(); import mlflow.transformers; "
            "print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _models(cache: Path) -> dict[str, Path]:
    from core.ct2.packaged import resolve_base_model

    return {"nano-whisper-fr": ROOT / "models" / "nano-whisper-fr",
            "whisper-base": Path(resolve_base_model("pypi:whisper-base", cache, print))}


def _one(name: str, model: Path, work: Path, tracker, exp_id: str) -> dict:
    from core.stage.mlflow_model import save_mlflow_model

    stage = work / name
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(model, stage / "model")  # what the stage's save wrote
    before = _disk_bytes(stage)
    info = save_mlflow_model("asr", stage / "model", stage / "mlflow-model")
    added = _disk_bytes(stage) - before
    run_id = tracker._client.create_run(exp_id).info.run_id
    t0 = time.perf_counter()
    model_id = tracker.log_model(run_id, stage / "mlflow-model", name)
    tracker.register(run_id, name, stage / "model", {}, "candidate", model_id=model_id)
    logged = time.perf_counter() - t0
    old_run = tracker._client.create_run(exp_id).info.run_id
    t0 = time.perf_counter()
    tracker.register(old_run, f"{name}-plain", stage / "model", {}, "candidate")
    plain = time.perf_counter() - t0
    return {"save_s": info["seconds"], "added_disk_bytes": added, "model_bytes": before,
            "log_and_register_s": logged, "plain_register_s": plain}


def main() -> None:
    from core.tracking.mlflow_store import Tracker

    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
    tracker = Tracker()
    exp_id = tracker._client.create_experiment("bench", artifact_location=(work / "artifacts").as_uri())
    models = _models(Path(os.environ.get("PALIER_HOME", ROOT / ".state")) / "cache")
    import_s = _import_seconds()
    rounds = {name: [] for name in models}
    for r in range(3):
        order = list(models)[r % 2:] + list(models)[:r % 2]
        for name in order:
            rounds[name].append(_one(name, models[name], work, tracker, exp_id))
    results = {"load_at_start": load, "cpus": os.cpu_count(), "import_mlflow_transformers_s": import_s, "models": {}}
    for name, runs in rounds.items():
        results["models"][name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    base = results["models"]["whisper-base"]
    per_byte = {k: base[k] / base["model_bytes"] for k in ("save_s", "log_and_register_s", "plain_register_s")}
    results["large_v3_estimate"] = {k: v * LARGE_V3_BYTES for k, v in per_byte.items()}
    out = ROOT / "bench" / "results"
    (out / "mlflow_model.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / "mlflow_model.md").write_text(_markdown(results), encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    print(_markdown(results))


def _markdown(r: dict) -> str:
    lines = [f"# MLflow model logging cost (load at start {r['load_at_start'][0]:.1f} on {r['cpus']} CPUs; "
             f"median of 3)", "",
             f"Importing mlflow.transformers (once per stage runner): {r['import_mlflow_transformers_s']:.1f} s", "",
             "| model | model/ size | MLflow folder: write | extra disk | LoggedModel + register | plain folder register (before) |",
             "|---|---|---|---|---|---|"]
    for name, m in r["models"].items():
        lines.append(f"| {name} | {m['model_bytes'] / 1e6:.1f} MB | {m['save_s']:.1f} s | "
                     f"{m['added_disk_bytes'] / 1e3:.0f} KB | {m['log_and_register_s']:.1f} s | {m['plain_register_s']:.1f} s |")
    e = r["large_v3_estimate"]
    lines += ["", f"large-v3 (3.1 GB), scaled per byte from whisper-base: write {e['save_s']:.0f} s, "
              f"LoggedModel + register {e['log_and_register_s']:.0f} s (before: {e['plain_register_s']:.0f} s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
