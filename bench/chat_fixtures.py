"""Fixture states for the chat evaluation, written with palier's own tracking code
(core.plan -> StageSpec, core.tracking.mlflow_store.Tracker, tasks.results.stage_metrics)
into a local SQLite MLflow store, no server:

- ``demo``     finished: exp1-general candidate, exp2-medical champion (general_test guard).
- ``fr``       failed: exp1-mls champion, exp2-common-voice failed twice with a CUDA OOM
               (diagnosis from agent.diagnosis.diagnose on the stage log, halve-batch remedy applied).
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

# What the two pipelines written here share: the shipped nano French Whisper, on this CPU.
_LOCAL_NANO_WHISPER = {
    "family": "asr",
    "base_model": str(REPO / "models" / "nano-whisper-fr"),
    "language": "french",
    "backend": {"kind": "local", "device": "cpu"},
}

MINI = {
    "name": "mini",
    "description": "Small French Whisper on noisy dictations (local CPU).",
    **_LOCAL_NANO_WHISPER,
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
    **_LOCAL_NANO_WHISPER,
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


def asr(wer_b: float, wer_f: float, cer_b: float, cer_f: float, secs_b: float = 0.68, secs_f: float = 8.37,
        mta: tuple[float, float] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Baseline and final ASR metrics of one eval set (``mta``: medical term accuracy before/after)."""
    base = {"wer": wer_b, "cer": cer_b, "normalized_wer": wer_b - 0.03, "eval_seconds": secs_b}
    final = {"wer": wer_f, "cer": cer_f, "normalized_wer": wer_f - 0.03, "eval_seconds": secs_f}
    if mta:
        base |= {"medical_term_accuracy": mta[0], "medical_term_occurrences": 57.0}
        final |= {"medical_term_accuracy": mta[1], "medical_term_occurrences": 57.0}
    return base, final


class _Writer:
    """Writes pipeline and stage runs the way a real run does (Tracker, stage_metrics)."""

    def __init__(self, fx: Fixture, files: dict[str, Path]):
        from core.tracking.mlflow_store import Tracker

        self.fx, self.files, self.tracker = fx, files, Tracker(fx.uri)

    def specs(self, name: str) -> dict[str, Any]:
        from core.config import load_pipeline
        from core.plan import plan

        return {s.name: s for s in plan(load_pipeline(self.files[name]), "bench", pipeline_file=str(self.files[name]))}

    def parent_run(self, name: str) -> str:
        from core.config import load_pipeline

        config = load_pipeline(self.files[name])
        run_id = self.tracker.start_pipeline_run(f"palier/{name}", name, str(self.files[name]),
                                                 {"pipeline": name, "stages": len(config.stages)}, None)
        time.sleep(0.02)  # distinct start times: "latest" is well defined
        return run_id

    def finished(self, name: str, parent: str, spec: Any, evals: dict[str, tuple[dict, dict]], gate: str,
                 previous: Any = None, attempt: int = 1) -> Any:
        from core.contracts import EvalResult, StageResult
        from core.tracking import schema as S
        from tasks.results import stage_metrics

        roles = {e.name: e.role for e in spec.stage.evals}
        result = StageResult(stage=spec.name, key=spec.key, base_model=spec.base_model,
                             evals=[EvalResult(name=n, role=roles[n], baseline=b, final=f, samples=40)
                                    for n, (b, f) in evals.items()],
                             train={"train_loss": 0.42}, timings_s={"train": 312.0, "evaluate": 18.5})
        run_id = self.tracker.start_stage_run(f"palier/{name}", parent, spec, attempt)
        self.tracker.log_metrics(run_id, stage_metrics(result, previous))
        self.tracker.set_tags(run_id, {S.TAG_GATE: gate})
        self.tracker.end_run(run_id, "succeeded")
        self._record(name, spec, run_id)
        return result

    def failed(self, name: str, parent: str, spec: Any, log: str, attempt: int, remedy: str | None = None) -> str:
        from agent.diagnosis.diagnose import diagnose_with_rules
        from core.tracking import schema as S

        run_id = self.tracker.start_stage_run(f"palier/{name}", parent, spec, attempt)
        self.tracker.log_metrics(run_id, {"train/loss": 1.2043, "train/step": 1})
        diagnosis = diagnose_with_rules(log)
        self.tracker.log_json(run_id, diagnosis.model_dump(mode="json"), S.ARTIFACT_DIAGNOSIS)
        self.tracker.set_tags(run_id, {S.TAG_DIAGNOSIS_KIND: diagnosis.kind})
        if remedy:
            self.tracker.log_json(run_id, {"description": remedy}, S.ARTIFACT_REMEDY)
        self.tracker.end_run(run_id, "failed")
        self._record(name, spec, run_id)
        return run_id

    def running(self, name: str, parent: str, spec: Any, pid: int, metrics: dict[str, float]) -> str:
        """A stage run marked running, owned by process ``pid`` (alive or not)."""
        from core.tracking import schema as S

        run_id = self.tracker.start_stage_run(f"palier/{name}", parent, spec, 1)
        self.tracker.set_tags(run_id, {S.TAG_JOB_ID: f"pid-{pid}"})
        self.tracker.log_metrics(run_id, metrics)
        self.fx.runs[f"{name}/{spec.name}"] = run_id
        return run_id

    def _record(self, name: str, spec: Any, run_id: str) -> None:
        self.fx.runs[f"{name}/{spec.name}"] = run_id
        time.sleep(0.02)


def _fr(w: _Writer) -> None:
    """exp1 champion, exp2 failed twice (OOM; the remedy halved the batch, still OOM)."""
    fr = w.specs("fr")
    p = w.parent_run("fr")
    w.finished("fr", p, fr["exp1-mls"], {"mls_fr_test": asr(0.112, 0.081, 0.052, 0.036, 40.2, 41.0),
                                         "guard_en": asr(0.046, 0.052, 0.021, 0.024, 12.0, 12.3)}, "champion")
    w.failed("fr", p, fr["exp2-common-voice"], OOM_LOG, 1)
    w.failed("fr", p, fr["exp2-common-voice"], OOM_LOG, 2,
             remedy="per_device_train_batch_size 16 -> 8, gradient_accumulation_steps 1 -> 2")
    w.tracker.end_run(p, "failed")


def _mini(w: _Writer) -> None:
    """Run 1 failed at bruit (labels too long); run 2: bruit marked running, its process gone."""
    mini = w.specs("mini")
    propre = {"clean_test": asr(0.58, 0.31, 0.30, 0.15, 0.9, 1.1), "en_guard": asr(0.80, 0.81, 0.52, 0.52, 0.5, 0.5)}
    p = w.parent_run("mini")
    w.finished("mini", p, mini["propre"], propre, "champion")
    w.failed("mini", p, mini["bruit"], LABEL_LOG, 1)
    w.tracker.end_run(p, "failed")
    p = w.parent_run("mini")
    w.finished("mini", p, mini["propre"], propre, "champion")
    w.running("mini", p, mini["bruit"], _dead_pid(), {"train/loss": 2.1, "train/step": 40})


def _pii_demo(w: _Writer) -> None:
    """english candidate, french rejected by the gate (F1 down on fr_test)."""
    pii = w.specs("pii-demo")
    p = w.parent_run("pii-demo")
    en = w.finished("pii-demo", p, pii["english"],
                    {"en_test": ({"f1_weighted": 0.412, "token_accuracy": 0.81, "support_EMAIL": 61.0},
                                 {"f1_weighted": 0.934, "token_accuracy": 0.97, "support_EMAIL": 61.0}),
                     "fr_test": ({"f1_weighted": 0.301, "token_accuracy": 0.78}, {"f1_weighted": 0.655, "token_accuracy": 0.88})},
                    "candidate")
    w.finished("pii-demo", p, pii["french"],
               {"fr_test": ({"f1_weighted": 0.655, "token_accuracy": 0.88}, {"f1_weighted": 0.641, "token_accuracy": 0.87}),
                "en_test": ({"f1_weighted": 0.934, "token_accuracy": 0.97}, {"f1_weighted": 0.921, "token_accuracy": 0.96})},
               "rejected", en)
    w.tracker.end_run(p, "succeeded")


def _sft_demo(w: _Writer) -> None:
    """facts training now, its process alive."""
    sft = w.specs("sft-demo")
    p = w.parent_run("sft-demo")
    w.fx.alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)"])
    w.running("sft-demo", p, sft["facts"], w.fx.alive.pid, {"train/loss": 1.234, "train/step": 120, "train/epoch": 3.6})


def _demo(w: _Writer) -> None:
    """Written last: the most recent pipeline, finished."""
    demo = w.specs("demo")
    p = w.parent_run("demo")
    g = w.finished("demo", p, demo["exp1-general"],
                   {"general_test": asr(0.412, 0.254, 0.214, 0.121, 0.68, 8.37),
                    "medical_test": asr(0.705, 0.622, 0.402, 0.351, 0.71, 6.02, mta=(0.12, 0.25))}, "candidate")
    w.finished("demo", p, demo["exp2-medical"],
               {"medical_test": asr(0.622, 0.309, 0.351, 0.142, 0.70, 8.41, mta=(0.25, 0.71)),
                "general_test": asr(0.254, 0.281, 0.121, 0.133, 0.66, 8.12)}, "champion", g)
    w.tracker.end_run(p, "succeeded")


def open_store(root: Path, write_pipelines) -> tuple[Fixture, _Writer]:
    """A fresh SQLite MLflow store under ``root`` (the global tracking URI points at it) and the
    pipeline files ``write_pipelines`` writes beside it."""
    import mlflow

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    files = write_pipelines(root / "pipelines")
    fx = Fixture(root=root, uri=uri, pipelines_dir=root / "pipelines")
    return fx, _Writer(fx, files)


def build(root: Path) -> Fixture:
    """Write every fixture pipeline's runs into ``root``'s SQLite MLflow store."""
    fx, writer = open_store(root, _write_pipelines)
    for write in (_fr, _mini, _pii_demo, _sft_demo, _demo):
        write(writer)
    writer.tracker.stop_heartbeats()  # the runs left open are fixtures: nobody beats for them
    return fx
