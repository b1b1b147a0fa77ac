"""core.search with a real Optuna study in the state folder: trials as stage specs, resume from
the journal, the winner by the gate's rules, the winner's folder promoted by hard links."""

import os

import pytest

from core import search
from core.config import parse_pipeline
from core.contracts import EvalResult, StageResult
from core.plan import plan


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.setenv("PALIER_HOME", str(tmp_path / "state"))
    stage = {"name": "a", "output_name": "m-a", "train": {"kind": "csv", "path": "a.csv"},
             "training": {"max_steps": 10},
             "evals": [{"name": "t", "role": "primary", "data": {"kind": "csv", "path": "t.csv"}},
                       {"name": "g", "role": "guard", "max_regression": 0.05, "data": {"kind": "csv", "path": "g.csv"}}],
             "search": {"parameters": {"training.learning_rate": {"choices": [1.0e-4, 1.0e-3]},
                                       "training.warmup_steps": {"low": 0, "high": 10, "step": 10}},
                        "sampler": "grid", "trials": 4, "parallel": 2}}
    config = parse_pipeline({"name": "p", "family": "asr", "base_model": "openai/whisper-tiny", "stages": [stage]})
    return plan(config, "code")[0]


def _result(primary: float, guard_final: float = 0.5) -> StageResult:
    return StageResult(stage="a", key="k", base_model="b", evals=[
        EvalResult(name="t", role="primary", baseline={"wer": 0.8}, final={"wer": primary}, samples=4),
        EvalResult(name="g", role="guard", baseline={"wer": 0.5}, final={"wer": guard_final}, samples=4)])


def test_each_trial_is_the_stage_with_its_values_and_its_own_key(spec):
    one = search.trial_spec(spec, 0, {"training.learning_rate": 1.0e-3, "training.warmup_steps": 10})
    again = search.trial_spec(spec, 0, {"training.learning_rate": 1.0e-3, "training.warmup_steps": 10})
    other = search.trial_spec(spec, 1, {"training.learning_rate": 1.0e-4, "training.warmup_steps": 10})
    assert one.name == "a.t0" and one.stage.search is None
    assert one.stage.training.learning_rate == 1.0e-3 and one.stage.training.warmup_steps == 10
    assert one.key == again.key != other.key != spec.key
    pinned = search.trial_spec(spec, 0, {"training.learning_rate": 1.0e-3, "training.warmup_steps": 10}, "1")
    assert pinned.key == one.key and pinned.stage.backend.options[search.CUDA_DEVICES_OPTION] == "1"


def test_the_study_lives_in_the_state_folder_and_survives_a_restart(spec):
    study = search.open_study(spec)
    seen = []
    for _ in range(4):
        trial = study.ask()
        seen.append(tuple(sorted(search.suggest(trial, spec.stage.search).items())))
        study.tell(trial.number, 0.5) if trial.number < 3 else None  # trial 3 left running
    assert len(set(seen)) == 4  # the grid: every combination once
    assert search.study_file("p").exists()
    reopened = search.open_study(spec)  # a new orchestrator
    states = [t.state.name for t in reopened.get_trials(deepcopy=False)]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "RUNNING"]
    assert reopened.trials[3].params == dict(seen[3])


def test_the_winner_passes_the_gate_first_then_has_the_best_primary_metric(spec):
    results = {0: _result(0.3, guard_final=0.9),  # best WER but the guard set regressed beyond its bound
               1: _result(0.6), 2: _result(0.4), 3: _result(0.9)}  # 3: baseline not beaten
    assert search.pick_winner(results, spec) == 2
    assert search.pick_winner({0: results[0], 3: results[3]}, spec) == 0  # none passes: best metric
    assert search.pick_winner({}, spec) is None


def test_the_winner_folder_is_promoted_by_hard_links_without_its_job_handle(tmp_path):
    source = tmp_path / "a.t2-k"
    (source / "model").mkdir(parents=True)
    (source / "model" / "weights.bin").write_bytes(b"w" * 1000)
    (source / "metrics.json").write_text("{}")
    (source / "job.json").write_text("{}")
    out = tmp_path / "a-key"
    search.promote_trial(source, out)
    assert os.stat(out / "model" / "weights.bin").st_ino == os.stat(source / "model" / "weights.bin").st_ino
    assert (out / "metrics.json").exists() and not (out / "job.json").exists()
    assert search.remove_trial_dirs([source, tmp_path / "missing"]) == [source] and not source.exists()
    assert (out / "model" / "weights.bin").read_bytes() == b"w" * 1000


def test_trials_are_spread_over_the_visible_gpus_and_never_on_a_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert search.gpu_slots("auto") == ["0", "1"]
    assert search.gpu_slots("cpu") == []


def test_the_local_backend_gives_a_pinned_trial_its_own_gpu(spec):
    from core.backends.local import LocalBackend

    pinned = search.trial_spec(spec, 0, {"training.learning_rate": 1.0e-3, "training.warmup_steps": 0}, "1")
    assert LocalBackend().environment(pinned)["CUDA_VISIBLE_DEVICES"] == "1"
    on_cpu = pinned.model_copy(update={"stage": pinned.stage.model_copy(update={
        "backend": pinned.stage.backend.model_copy(update={"device": "cpu"})})})
    assert LocalBackend().environment(on_cpu)["CUDA_VISIBLE_DEVICES"] == ""  # a CPU trial sees no GPU
