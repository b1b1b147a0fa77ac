"""A stage that searches, through the served deployment on the shared real servers: four trials of
the tiny Whisper (two at a time), each a stage job and a run nested under the stage run, the winner
chosen by the gate's rules becomes the stage's output and the next stage starts from it; the
losers' folders are gone; the pipeline run totals the cost. Then a killed orchestrator
(SIGKILL, mid-search) is run again and finishes the study without redoing a finished trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from e2e_services import BIN, deployment_run
from tiny import tiny_search_pipeline

pytestmark = pytest.mark.e2e


def _runs(client, experiment: str, query: str):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], query, max_results=200)


def test_search_stage_runs_its_trials_and_the_winner_feeds_the_next_stage(services):
    from mlflow import MlflowClient

    from core.tracking import schema as S

    proc = deployment_run(services["env"], "search")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    c = MlflowClient(services["env"]["MLFLOW_TRACKING_URI"])
    stages = {r.data.tags[S.TAG_STAGE]: r for r in _runs(c, "palier/search", f"tags.`{S.TAG_KIND}` = 'stage'")}
    general, medical = stages["general"], stages["medical"]
    trials = _runs(c, "palier/search", f"tags.`{S.TAG_KIND}` = '{S.KIND_TRIAL}'")
    assert sorted(int(t.data.tags[S.TAG_TRIAL]) for t in trials) == [0, 1, 2, 3]
    assert all(t.data.tags[S.TAG_PARENT_RUN] == general.info.run_id and t.info.status == "FINISHED" for t in trials)
    rates = {t.data.params[f"{S.PARAM_TRIAL_PREFIX}training.learning_rate"] for t in trials}
    assert len(rates) == 4  # the grid: each trial its own value

    # The winner: best primary WER among the trials (the gate passes or fails them alike here).
    wer = {int(t.data.tags[S.TAG_TRIAL]): t.data.metrics[S.final_key("general_test", "wer")] for t in trials}
    winner = int(general.data.tags[S.TAG_SEARCH_WINNER_TRIAL])
    assert wer[winner] == min(wer.values())
    assert [t.data.tags.get(S.TAG_SEARCH_WINNER) for t in trials if int(t.data.tags[S.TAG_TRIAL]) == winner] == ["true"]
    assert general.data.metrics[S.final_key("general_test", "wer")] == wer[winner]
    assert general.data.params[f"{S.PARAM_WINNER_PREFIX}training.learning_rate"] == [
        t for t in trials if int(t.data.tags[S.TAG_TRIAL]) == winner][0].data.params[
        f"{S.PARAM_TRIAL_PREFIX}training.learning_rate"]

    # The stage's output is the winner's model; the next stage started from it; it is registered.
    assert medical.data.tags[S.TAG_BASE_MODEL].endswith("/model") and "/general-" in medical.data.tags[S.TAG_BASE_MODEL]
    versions = c.search_model_versions("name = 'search-general'")
    assert len(versions) == 1 and versions[0].run_id == general.info.run_id
    runs_dir = Path(services["home"]) / "runs" / "search"
    assert not list(runs_dir.glob("general.t*")), "losers' (and the promoted winner's) trial folders removed"
    table = json.loads(Path(c.download_artifacts(general.info.run_id, S.ARTIFACT_SEARCH_TRIALS,
                                                 str(runs_dir.parent.parent))).read_text())
    assert [row["winner"] for row in table].count(True) == 1 and len(table) == 4

    # Cost: every trial and stage run records its GPU seconds (0 on this CPU), the pipeline the totals.
    assert all(t.data.metrics[S.METRIC_GPU_SECONDS] == 0.0 for t in trials)
    parent = _runs(c, "palier/search", f"tags.`{S.TAG_KIND}` = 'pipeline'")[0]
    assert parent.data.metrics[S.METRIC_TOTAL_COST_USD] == 0.0


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.integration
def test_killed_orchestrator_resumes_the_search_without_redoing_a_finished_trial(services, tiny_whisper, tmp_path):
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from core.tracking import schema as S

    # The grid (seed 0) asks for 2 steps first, then 30: trial 1 is still training when the orchestrator
    # is killed and when the next one starts.
    pipeline = tiny_search_pipeline(tmp_path / "resume.yaml", tiny_whisper, name="resume", trials=2, parallel=1,
                                    stages=1, parameters={"training.max_steps": {"choices": [30, 2]}})
    env = {**services["env"], "PALIER_HOME": str(services["home"])}
    cmd = [str(BIN / "palier"), "run", str(pipeline)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journal = Path(services["home"]) / "search" / "resume.journal"

    def states():
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        if not journal.exists():
            return []
        storage = JournalStorage(JournalFileBackend(str(journal)))
        summaries = optuna.get_all_study_summaries(storage)
        if not summaries:
            return []
        study = optuna.load_study(study_name=summaries[0].study_name, storage=storage)
        return [t.state for t in study.get_trials(deepcopy=False)]

    try:
        runs = Path(services["home"]) / "runs" / "resume"
        _wait_for(lambda: states() == [TrialState.COMPLETE, TrialState.RUNNING] and any(runs.glob("general.t1-*/job.json")),
                  400, "a finished trial and a submitted one")
    finally:
        os.kill(first.pid, signal.SIGKILL)  # the orchestrator only: the running trial's job lives on
        first.wait(timeout=30)
    assert states() == [TrialState.COMPLETE, TrialState.RUNNING]
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert states() == [TrialState.COMPLETE] * 2
    c = MlflowClient(services["env"]["MLFLOW_TRACKING_URI"])
    trials = _runs(c, "palier/resume", f"tags.`{S.TAG_KIND}` = '{S.KIND_TRIAL}'")
    by_trial = {n: [t for t in trials if t.data.tags[S.TAG_TRIAL] == n] for n in ("0", "1")}
    assert len(by_trial["0"]) == 1, "the finished trial was not run again"
    assert len(by_trial["1"]) == 2  # the killed orchestrator's run (closed as killed) and the new one
    resumed = next(t for t in by_trial["1"] if t.info.status == "FINISHED")
    assert resumed.data.tags.get(S.TAG_REATTACHED), "the running trial was watched again, not submitted twice"
    assert resumed.data.params["training.max_steps"] == "30"
