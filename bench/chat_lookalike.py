"""A state with look-alike pipelines for the chat's held-out sets (bench/chat_heldout.py), written
with palier's own tracking code (bench/chat_fixtures._Writer, Tracker.register, the real preflight)
into a local SQLite MLflow store and a PALIER_HOME, oldest first:

- ``demo``         finished: exp1-general candidate, exp2-medical champion (registered
                   ``demo-whisper-fr-medical@champion``, its final predictions on medical_test).
- ``pii-demo``     finished: english champion (``pii-demo-english@champion``), french rejected.
- ``demo-neuf``    never run: a copy of demo, only its pipeline file.
- ``demo-lexique`` a copy of demo whose lexicon path is wrong: the preflight blocked it (report on
                   the parent run, tag ``palier.preflight=blocked``), no stage ran.
- ``demo-copie``   the most recent: a copy of demo whose exp1-general finished and whose
                   exp2-medical was killed (``kill -9``) at step 100, closed as KILLED by the stale
                   run sweep; its stage folder holds stage.log, events.jsonl and checkpoint-100.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from bench.chat_fixtures import REPO, Fixture, _absolute, _Writer, asr, open_store

COPIES = {"demo-neuf": None, "demo-lexique": "/data/lexiques/medical_fr_v2.txt", "demo-copie": None}

WORST = [  # (reference, prediction) of exp2-medical on medical_test, worst first once scored
    ("le patient présente une tachycardie ventriculaire", "le patient présente une taxi cardie ventriculaire"),
    ("prescrire amoxicilline cinq cents milligrammes", "prescrire amox ici line cinq cents milligrammes"),
    ("antécédent d'infarctus du myocarde", "antécédent d'infarctus du myocarde"),
    ("douleur thoracique irradiant au bras gauche", "douleur thoracique irradiant au bras gauche"),
    ("bilan hépatique normal", "bilan épatique normal"),
]


def _write_pipelines(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    raw_demo = _absolute(yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text(encoding="utf-8")),
                         REPO / "pipelines")
    raw_pii = _absolute(yaml.safe_load((REPO / "pipelines" / "pii-demo.yaml").read_text(encoding="utf-8")),
                        REPO / "pipelines")
    for name, raw in (("demo", raw_demo), ("pii-demo", raw_pii)):
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    for name, lexicon in COPIES.items():
        raw = json.loads(json.dumps(raw_demo)) | {"name": name}
        if lexicon:
            raw["defaults"]["lexicon"] = lexicon
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return files


def _register(w: _Writer, run_id: str, name: str, alias: str) -> None:
    model = w.fx.root / "models" / name
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text('{"model_type": "whisper"}', encoding="utf-8")
    w.tracker.register(run_id, name, model, {}, alias)


def _demo_evals() -> tuple[dict, dict]:
    exp1 = {"general_test": asr(0.412, 0.254, 0.214, 0.121, 0.68, 8.37),
            "medical_test": asr(0.705, 0.622, 0.402, 0.351, 0.71, 6.02, mta=(0.12, 0.25))}
    exp2 = {"medical_test": asr(0.622, 0.309, 0.351, 0.142, 0.70, 8.41, mta=(0.25, 0.71)),
            "general_test": asr(0.254, 0.281, 0.121, 0.133, 0.66, 8.12)}
    return exp1, exp2


def _demo(w: _Writer) -> None:
    from core.tracking import schema as S

    demo = w.specs("demo")
    exp1, exp2 = _demo_evals()
    p = w.parent_run("demo")
    g = w.finished("demo", p, demo["exp1-general"], exp1, "candidate")
    _register(w, w.fx.runs["demo/exp1-general"], "demo-whisper-fr-general", "candidate")
    w.finished("demo", p, demo["exp2-medical"], exp2, "champion", g)
    run = w.fx.runs["demo/exp2-medical"]
    _register(w, run, "demo-whisper-fr-medical", "champion")
    rows = [{"id": i, "reference": r, "prediction": h} for i, (r, h) in enumerate(WORST)]
    w.tracker.log_table(run, rows, S.predictions_table("final", "medical_test"))
    w.tracker.end_run(p, "succeeded")


def _pii(w: _Writer) -> None:
    pii = w.specs("pii-demo")
    p = w.parent_run("pii-demo")
    en = w.finished("pii-demo", p, pii["english"],
                    {"en_test": ({"f1_weighted": 0.412}, {"f1_weighted": 0.934}),
                     "fr_test": ({"f1_weighted": 0.301}, {"f1_weighted": 0.655})}, "champion")
    _register(w, w.fx.runs["pii-demo/english"], "pii-demo-english", "champion")
    w.finished("pii-demo", p, pii["french"],
               {"fr_test": ({"f1_weighted": 0.655}, {"f1_weighted": 0.641}),
                "en_test": ({"f1_weighted": 0.934}, {"f1_weighted": 0.921})}, "rejected", en)
    w.tracker.end_run(p, "succeeded")


def _blocked(w: _Writer, name: str) -> None:
    """The flow's own steps: preflight report on the parent run, blocked, run failed."""
    from agent.base.facts import collect_env_facts
    from agent.rules.preflight import preflight
    from core.config import load_pipeline
    from core.tracking import schema as S

    config = load_pipeline(w.files[name])
    report = preflight(config, collect_env_facts(config, base_dir=w.files[name].parent))
    assert not report.ok, "the fixture's lexicon must block the preflight"
    p = w.parent_run(name)
    w.tracker.log_text(p, report.to_json(), S.ARTIFACT_PREFLIGHT)
    w.tracker.set_tags(p, {S.TAG_PREFLIGHT: "blocked"})
    w.tracker.end_run(p, "failed")
    w.fx.runs[name] = p


def _stage_folder(spec: Any, step: int) -> Path:
    """What the stage runner leaves behind when killed at ``step``: log, events, a checkpoint."""
    from core.paths import stage_dir

    out = stage_dir(spec.pipeline, spec.name, spec.key)
    (out / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
    (out / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").write_text(
        json.dumps({"global_step": step, "max_steps": 400}), encoding="utf-8")
    (out / "stage.log").write_text("".join(f"{{'loss': {2.0 - i / 100:.3f}, 'step': {i}}}\n"
                                           for i in range(10, step + 1, 10)), encoding="utf-8")
    now = time.time()
    events = [{"t": now - 300 + i, "event": "train_step", "step": i, "loss": 2.0 - i / 100} for i in range(10, step + 1, 10)]
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return out


def _killed_copy(w: _Writer) -> None:
    from mlflow.entities import RunTag

    from core.tracking import schema as S

    name = "demo-copie"
    specs = w.specs(name)
    exp1, _ = _demo_evals()
    p = w.parent_run(name)
    w.finished(name, p, specs["exp1-general"], exp1, "candidate")
    run = w.tracker.start_stage_run(f"palier/{name}", p, specs["exp2-medical"], 1)
    w.tracker.log_metrics(run, {"train/loss": 1.0, "train/step": 100, "train/epoch": 1.7})
    _stage_folder(specs["exp2-medical"], 100)
    client = w.tracker._client
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    reason = "owner pid 4242 on this host is gone"
    for run_id in (run, p):  # what core.tracking.stale_runs.close writes
        client.log_batch(run_id, tags=[RunTag(S.TAG_KILLED_REASON, reason), RunTag(S.TAG_KILLED_AT, when),
                                       RunTag(S.TAG_STATUS, "killed")])
        client.set_terminated(run_id, status="KILLED")
    w.fx.runs[f"{name}/exp2-medical"] = run


def build(root: Path) -> Fixture:
    """Write the look-alike state under ``root`` (set PALIER_HOME to ``root / 'home'`` first)."""
    fx, w = open_store(root, _write_pipelines)
    _demo(w)
    _pii(w)
    _blocked(w, "demo-lexique")
    _killed_copy(w)
    w.tracker.stop_heartbeats()
    return fx
