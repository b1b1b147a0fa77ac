"""Fixture states for the chat evaluation, written with palier's own tracking code
(core.plan -> StageSpec, core.tracking.mlflow_store.Tracker, tasks.results.stage_metrics)
into a local SQLite MLflow store, no server:

- ``demo``     finished: exp1-general candidate, exp2-medical champion (general_test guard).
- ``fr``       failed: exp1-mls champion, exp2-common-voice failed twice with a CUDA OOM
               (diagnosis from agent.diagnose on the stage log, halve-batch remedy applied).
- ``mini``     killed: the previous run failed at ``bruit`` (labels over 448 tokens); the
               latest run's ``bruit`` is marked running but its process is gone.
- ``pii-demo`` finished with the gate rejecting ``french`` (F1 down on its primary set).
- ``sft-demo`` running: ``facts`` training, its process alive.
- ``nouveau``  never run: only a pipeline file, with preflight findings (missing lexicon,
               eval_steps beyond max_steps).

Relative paths of the shipped pipelines are made absolute in the copies, so the preflight
judges the copies as it would the originals.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent

OOM_LOG = """\
Loading openai/whisper-large-v3 ...
Training step 1/15000
{'loss': 1.2043, 'learning_rate': 1e-06, 'epoch': 0.0}
Traceback (most recent call last):
  File "/root/core/stage/asr.py", line 201, in train
    trainer.train()
  File "/usr/local/lib/python3.11/site-packages/torch/autograd/graph.py", line 825, in _engine_run_backward
    return Variable._execution_engine.run_backward(
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 120.00 MiB. GPU 0 has a total capacity of 79.15 GiB of which 41.06 MiB is free.
"""

LABEL_LOG = """\
prepare: 1200 utterances read
Training step 1/300
Traceback (most recent call last):
  File "/usr/local/lib/python3.11/site-packages/transformers/models/whisper/modeling_whisper.py", line 1757, in forward
    raise ValueError(
ValueError: Labels' sequence length 512 cannot exceed the maximum allowed length of 448 tokens.
"""

MINI = {
    "name": "mini",
    "description": "Small French Whisper on noisy dictations (local CPU).",
    "family": "asr",
    "base_model": str(REPO / "models" / "nano-whisper-fr"),
    "language": "french",
    "backend": {"kind": "local", "device": "cpu"},
    "defaults": {"training": {"max_steps": 300, "eval_strategy": "steps", "eval_steps": 100, "save_steps": 100,
                              "per_device_train_batch_size": 8}},
    "stages": [
        {"name": "propre", "output_name": "mini-whisper-propre",
         "train": {"kind": "generated", "generator": "french_speech", "params": {"pool": "stage", "count": 200}},
         "evals": [{"name": "clean_test", "role": "primary",
                    "data": {"kind": "generated", "generator": "french_speech", "params": {"pool": "test", "count": 40}}},
                   {"name": "en_guard", "role": "guard", "max_regression": 0.03, "language": "english",
                    "data": {"kind": "generated", "generator": "french_speech", "params": {"pool": "test", "count": 20}}}]},
        {"name": "bruit", "output_name": "mini-whisper-bruit",
         "train": {"kind": "generated", "generator": "french_speech", "params": {"pool": "stage", "count": 200, "seed": 3}},
         "evals": [{"name": "noisy_test", "role": "primary",
                    "data": {"kind": "generated", "generator": "french_speech", "params": {"pool": "test", "count": 40, "seed": 3}}},
                   {"name": "clean_test", "role": "guard", "max_regression": 0.02,
                    "data": {"kind": "generated", "generator": "french_speech", "params": {"pool": "test", "count": 40}}}]},
    ],
}

NOUVEAU = {
    "name": "nouveau",
    "description": "Cardiology dictations, not launched yet.",
    "family": "asr",
    "base_model": str(REPO / "models" / "nano-whisper-fr"),
    "language": "french",
    "backend": {"kind": "local", "device": "cpu"},
    "defaults": {"lexicon": "lexiques/cardiologie_fr.txt",
                 "training": {"max_steps": 200, "eval_strategy": "steps", "eval_steps": 500, "save_steps": 500,
                              "per_device_train_batch_size": 8}},
    "stages": [
        {"name": "cardio", "output_name": "whisper-cardio",
         "train": {"kind": "generated", "generator": "french_speech", "params": {"pool": "stage", "count": 120, "domain": "medical"}},
         "evals": [{"name": "cardio_test", "role": "primary",
                    "data": {"kind": "generated", "generator": "french_speech", "params": {"pool": "test", "count": 40, "domain": "medical"}}},
                   {"name": "general_test", "role": "guard", "max_regression": 0.05,
                    "data": {"kind": "generated", "generator": "french_speech", "params": {"pool": "test", "count": 40}}}]},
    ],
}


@dataclass
class Fixture:
    root: Path
    uri: str
    pipelines_dir: Path
    alive: subprocess.Popen | None = None
    runs: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        if self.alive is not None and self.alive.poll() is None:
            self.alive.kill()
            self.alive.wait()


def _absolute(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """A shipped pipeline with its ../ paths made absolute (base_model, lexicon, data, documents)."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and node.startswith("../"):
            return str((base / node).resolve())
        return node

    return walk(copy.deepcopy(raw))


def _write_pipelines(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ("demo", "fr", "pii-demo", "sft-demo"):
        raw = yaml.safe_load((REPO / "pipelines" / f"{name}.yaml").read_text(encoding="utf-8"))
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(_absolute(raw, REPO / "pipelines"), sort_keys=False), encoding="utf-8")
    for raw in (MINI, NOUVEAU):
        files[raw["name"]] = folder / f"{raw['name']}.yaml"
        files[raw["name"]].write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def build(root: Path) -> Fixture:
    from agent.diagnose import diagnose_with_rules
    from core.config import load_pipeline
    from core.contracts import EvalResult, StageResult
    from core.plan import plan
    from core.tracking import schema as S
    from core.tracking.mlflow_store import Tracker
    from tasks.results import stage_metrics

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(uri)
    files = _write_pipelines(root / "pipelines")
    tracker = Tracker(uri)
    fx = Fixture(root=root, uri=uri, pipelines_dir=root / "pipelines")
    results: dict[str, StageResult] = {}

    def specs(name: str):
        return {s.name: s for s in plan(load_pipeline(files[name]), "bench", pipeline_file=str(files[name]))}

    def parent_run(name: str) -> str:
        config = load_pipeline(files[name])
        run_id = tracker.start_pipeline_run(f"palier/{name}", name, str(files[name]),
                                            {"pipeline": name, "stages": len(config.stages)}, None)
        time.sleep(0.02)  # distinct start times: "latest" is well defined
        return run_id

    def finished(name: str, parent: str, spec, evals: dict[str, tuple[dict, dict]], gate: str,
                 previous: StageResult | None, attempt: int = 1) -> StageResult:
        roles = {e.name: e.role for e in spec.stage.evals}
        result = StageResult(stage=spec.name, key=spec.key, base_model=spec.base_model,
                             evals=[EvalResult(name=n, role=roles[n], baseline=b, final=f, samples=40)
                                    for n, (b, f) in evals.items()],
                             train={"train_loss": 0.42}, timings_s={"train": 312.0, "evaluate": 18.5})
        run_id = tracker.start_stage_run(f"palier/{name}", parent, spec, attempt)
        tracker.log_metrics(run_id, stage_metrics(result, previous))
        tracker.set_tags(run_id, {S.TAG_GATE: gate})
        tracker.end_run(run_id, "succeeded")
        fx.runs[f"{name}/{spec.name}"] = run_id
        time.sleep(0.02)
        return result

    def failed(name: str, parent: str, spec, log: str, attempt: int, remedy: str | None = None) -> str:
        run_id = tracker.start_stage_run(f"palier/{name}", parent, spec, attempt)
        tracker.log_metrics(run_id, {"train/loss": 1.2043, "train/step": 1})
        diagnosis = diagnose_with_rules(log)
        tracker.log_json(run_id, diagnosis.model_dump(mode="json"), S.ARTIFACT_DIAGNOSIS)
        tracker.set_tags(run_id, {S.TAG_DIAGNOSIS_KIND: diagnosis.kind})
        if remedy:
            tracker.log_json(run_id, {"description": remedy}, S.ARTIFACT_REMEDY)
        tracker.end_run(run_id, "failed")
        fx.runs[f"{name}/{spec.name}"] = run_id
        time.sleep(0.02)
        return run_id

    def asr(wer_b, wer_f, cer_b, cer_f, secs_b=0.68, secs_f=8.37, mta=None):
        base = {"wer": wer_b, "cer": cer_b, "normalized_wer": wer_b - 0.03, "eval_seconds": secs_b}
        final = {"wer": wer_f, "cer": cer_f, "normalized_wer": wer_f - 0.03, "eval_seconds": secs_f}
        if mta:
            base |= {"medical_term_accuracy": mta[0], "medical_term_occurrences": 57.0}
            final |= {"medical_term_accuracy": mta[1], "medical_term_occurrences": 57.0}
        return base, final

    # fr: exp1 champion, exp2 failed twice (OOM; the remedy halved the batch, still OOM).
    fr = specs("fr")
    p = parent_run("fr")
    r1 = finished("fr", p, fr["exp1-mls"], {"mls_fr_test": asr(0.112, 0.081, 0.052, 0.036, 40.2, 41.0),
                                              "guard_en": asr(0.046, 0.052, 0.021, 0.024, 12.0, 12.3)}, "champion", None)
    failed("fr", p, fr["exp2-common-voice"], OOM_LOG, 1)
    failed("fr", p, fr["exp2-common-voice"], OOM_LOG, 2,
           remedy="per_device_train_batch_size 16 -> 8, gradient_accumulation_steps 1 -> 2")
    tracker.end_run(p, "failed")
    results["fr/exp1-mls"] = r1

    # mini: run 1 failed at bruit (labels too long); run 2: bruit marked running, process gone.
    mini = specs("mini")
    p = parent_run("mini")
    m1 = finished("mini", p, mini["propre"], {"clean_test": asr(0.58, 0.31, 0.30, 0.15, 0.9, 1.1),
                                              "en_guard": asr(0.80, 0.81, 0.52, 0.52, 0.5, 0.5)}, "champion", None)
    failed("mini", p, mini["bruit"], LABEL_LOG, 1)
    tracker.end_run(p, "failed")
    p = parent_run("mini")
    finished("mini", p, mini["propre"], {"clean_test": asr(0.58, 0.31, 0.30, 0.15, 0.9, 1.1),
                                         "en_guard": asr(0.80, 0.81, 0.52, 0.52, 0.5, 0.5)}, "champion", None)
    run_id = tracker.start_stage_run("palier/mini", p, mini["bruit"], 1)
    tracker.set_tags(run_id, {S.TAG_JOB_ID: f"pid-{_dead_pid()}"})
    tracker.log_metrics(run_id, {"train/loss": 2.1, "train/step": 40})
    fx.runs["mini/bruit"] = run_id
    del m1

    # pii-demo: english candidate, french rejected by the gate (F1 down on fr_test).
    pii = specs("pii-demo")
    p = parent_run("pii-demo")
    en = finished("pii-demo", p, pii["english"],
                  {"en_test": ({"f1_weighted": 0.412, "token_accuracy": 0.81, "support_EMAIL": 61.0},
                               {"f1_weighted": 0.934, "token_accuracy": 0.97, "support_EMAIL": 61.0}),
                   "fr_test": ({"f1_weighted": 0.301, "token_accuracy": 0.78}, {"f1_weighted": 0.655, "token_accuracy": 0.88})},
                  "candidate", None)
    finished("pii-demo", p, pii["french"],
             {"fr_test": ({"f1_weighted": 0.655, "token_accuracy": 0.88}, {"f1_weighted": 0.641, "token_accuracy": 0.87}),
              "en_test": ({"f1_weighted": 0.934, "token_accuracy": 0.97}, {"f1_weighted": 0.921, "token_accuracy": 0.96})},
             "rejected", en)
    tracker.end_run(p, "succeeded")

    # sft-demo: facts training now, its process alive.
    sft = specs("sft-demo")
    p = parent_run("sft-demo")
    fx.alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)"])
    run_id = tracker.start_stage_run("palier/sft-demo", p, sft["facts"], 1)
    tracker.set_tags(run_id, {S.TAG_JOB_ID: f"pid-{fx.alive.pid}"})
    tracker.log_metrics(run_id, {"train/loss": 1.234, "train/step": 120, "train/epoch": 3.6})
    fx.runs["sft-demo/facts"] = run_id

    # demo last: the most recent pipeline, finished.
    demo = specs("demo")
    p = parent_run("demo")
    g = finished("demo", p, demo["exp1-general"],
                 {"general_test": asr(0.412, 0.254, 0.214, 0.121, 0.68, 8.37),
                  "medical_test": asr(0.705, 0.622, 0.402, 0.351, 0.71, 6.02, mta=(0.12, 0.25))}, "candidate", None)
    finished("demo", p, demo["exp2-medical"],
             {"medical_test": asr(0.622, 0.309, 0.351, 0.142, 0.70, 8.41, mta=(0.25, 0.71)),
              "general_test": asr(0.254, 0.281, 0.121, 0.133, 0.66, 8.12)}, "champion", g)
    tracker.end_run(p, "succeeded")
    return fx
