"""palier ask on a REAL MLflow state (sqlite store, runs with palier's schema; no mocks)."""

from __future__ import annotations

import socket

import pytest

from agent.chat.respond import ask
from agent.chat.language import detect_language
from agent.chat.question import detect_intent, stage_reference
from agent.base.state import LiveState, MlflowState, PrefectState


@pytest.fixture
def live(mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store["uri"])
    return LiveState.from_env()


def _refs(answer, kind):
    return {s.ref for s in answer.sources if s.kind == kind}


def test_where_is_exp2_in_french(live, book, mlflow_store):
    answer = ask("où en est l'exp 2 du pipeline fr ?", state=live, playbooks=book)
    assert (answer.language, answer.intent, answer.source) == ("fr", "status", "offline")
    assert answer.data["pipeline"] == "fr" and answer.data["state"] == "failed"
    assert answer.data["focus"]["stage"] == "exp2"
    assert answer.text.startswith("exp2 (fr) : failed.") and "cuda_oom" in answer.text
    assert "exp1 succeeded (champion)" in answer.text
    assert {mlflow_store["fr_parent"], mlflow_store["exp1"], mlflow_store["exp2"]} <= _refs(answer, "mlflow_run")
    assert answer.data["planned_stages"] == 3  # read from the pipeline file tagged on the run


def test_compare_with_baseline_in_english(live, book, mlflow_store):
    answer = ask("How does exp1 of fr compare with its baseline?", state=live, playbooks=book)
    assert (answer.language, answer.intent) == ("en", "compare")
    rows = {(r["eval_set"], r["metric"]): r for r in answer.data["stage"]["metrics"]}
    assert rows[("mls_test", "wer")]["improved"] is True and rows[("en_guard", "wer")]["improved"] is False
    assert "mls_test: wer 0.1420 → 0.0980 (-0.0440, better)" in answer.text
    assert "en_guard: wer 0.0510 → 0.0580 (+0.0070, worse)" in answer.text
    assert answer.text.startswith("Partly — exp1 (fr)")  # no roles recorded: one set better, one worse
    assert _refs(answer, "mlflow_run") == {mlflow_store["exp1"]}


def test_compare_against_previous_stage(live, book, mlflow_store):
    answer = ask("compare medical with the previous stage in demo", state=live, playbooks=book)
    assert answer.data["stage"]["stage"] == "medical" and answer.data["previous_stage"]["stage"] == "general"
    assert "Against the previous stage (general): general/wer -0.0200 (better)" in answer.text


def test_why_did_it_fail_and_what_to_do(live, book, mlflow_store):
    # No pipeline named: the most recent pipeline with a failed run (fr, not demo).
    answer = ask("Pourquoi l'exp 2 a échoué et que faire ?", state=live, playbooks=book)
    assert (answer.language, answer.intent) == ("fr", "failure")
    assert answer.data["kind"] == "cuda_oom" and answer.data["playbook_failure"] == "cuda-oom"
    assert "Cause : cuda_oom / cuda-oom" in answer.text
    assert "gradient_accumulation_steps" in answer.text and "Remède déjà appliqué" in answer.text
    assert mlflow_store["exp2"] in _refs(answer, "mlflow_run")
    assert any(ref.startswith("playbooks/training-troubleshooting.md#") for ref in _refs(answer, "playbook"))


def test_next_steps_follow_the_pipeline_state(live, book):
    failed = ask("what should I do next with fr?", state=live, playbooks=book)
    assert failed.intent == "next" and failed.data["state"] == "failed"
    assert [s["id"] for s in failed.data["steps"]] == ["next.failed"]
    done = ask("que faire ensuite pour demo ?", state=live, playbooks=book)
    assert done.data["state"] == "succeeded"
    assert [s["id"] for s in done.data["steps"]] == ["whisper.next-succeeded", "next.succeeded"]
    assert "playbooks/pipeline-next-steps.md#pipeline-termine" in _refs(done, "playbook")


def test_most_recent_pipeline_is_the_default(live, book):
    answer = ask("where is the pipeline?", state=live, playbooks=book)
    assert answer.data["pipeline"] in ("fr", "demo")
    assert any("several pipelines" in n for n in answer.data["notes"])


def test_playbook_question_without_any_service(book):
    state = LiveState(MlflowState(None), PrefectState(None))
    answer = ask("pourquoi le H200 bloque sur Modal ?", state=state, playbooks=book)
    assert answer.intent == "playbook"
    assert "playbooks/whisper-fr.md#h200-bloque-sur-modal-kernel-4-4-0-sous-gvisor" in _refs(answer, "playbook")
    assert "gVisor" in answer.text


def test_services_down_are_answered_gracefully(book):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    state = LiveState(MlflowState(f"http://127.0.0.1:{port}"), PrefectState(f"http://127.0.0.1:{port}/api"))
    answer = ask("où en est fr ?", state=state, playbooks=book)
    assert answer.intent == "status" and "MLflow unreachable" in answer.text
    missing = LiveState(MlflowState(None), PrefectState(None))
    answer = ask("where is fr?", state=missing, playbooks=book)
    assert "MLflow not configured" in answer.text


def test_prefect_configured_but_down_is_a_note(mlflow_store, book):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = LiveState(MlflowState(mlflow_store["uri"]), PrefectState(f"http://127.0.0.1:{port}/api"))
    answer = ask("status of fr", state=state, playbooks=book)
    assert answer.data["state"] == "failed" and any(n.startswith("Prefect:") for n in answer.data["notes"])


@pytest.mark.parametrize(("question", "intent", "lang"), [
    ("où en est l'exp 2 ?", "status", "fr"),
    ("where is exp2?", "status", "en"),
    ("why is exp2 worse than its baseline?", "compare", "en"),
    ("pourquoi l'étape 2 a planté ?", "failure", "fr"),
    ("what should I do next?", "next", "en"),
    ("comment choisir le GPU sur Kaggle", "playbook", "fr"),
])
def test_routing(question, intent, lang):
    assert detect_intent(question) == intent and detect_language(question) == lang


def test_stage_reference():
    assert stage_reference("où en est l'exp 2 ?") == "exp2"
    assert stage_reference("status of étape 3") == "exp3"
    assert stage_reference("where is the pipeline") is None


def test_a_broken_store_gives_an_answer_not_a_traceback(book, tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a sqlite database")
    state = LiveState(MlflowState(f"sqlite:///{db}"), PrefectState(None))
    answer = ask("où en est fr ?", state=state, playbooks=book)
    assert answer.intent == "status" and answer.data["ok"] is False and "Je ne peux pas lire" in answer.text


def test_failure_question_with_mlflow_unreachable_says_so(book):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = LiveState(MlflowState(f"http://127.0.0.1:{port}"), PrefectState(None))
    answer = ask("why did my last run fail?", state=state, playbooks=book)
    assert answer.intent == "failure" and "MLflow unreachable" in answer.text and "palier up" in answer.text


def test_a_running_stage_whose_process_is_gone_is_reported(live, book, mlflow_store):
    import subprocess
    import sys

    from mlflow import MlflowClient

    from core.tracking import schema as S

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # its pid is now free: the stage's process is gone
    client = MlflowClient(tracking_uri=mlflow_store["uri"])
    exp = client.create_experiment("palier/killed")
    parent = client.create_run(exp, tags={S.TAG_KIND: "pipeline", S.TAG_PIPELINE: "killed", S.TAG_STATUS: "running"})
    client.create_run(exp, run_name="train", tags={
        S.TAG_KIND: "stage", S.TAG_STAGE: "train", S.TAG_STAGE_INDEX: "0", S.TAG_STATUS: "running",
        S.TAG_JOB_ID: f"pid-{proc.pid}", "mlflow.parentRunId": parent.info.run_id})
    answer = ask("why did the killed pipeline fail?", state=live, playbooks=book)
    assert answer.data["state"] == "interrupted" and answer.data["interrupted"]["pid"] == str(proc.pid)
    assert f"its process (pid {proc.pid}) is gone" in answer.text
    status = ask("où en est killed ?", state=live, playbooks=book)
    assert "interrompu" in status.text and "n'existe plus" in status.text


def test_a_skipped_stage_run_reads_the_artifacts_of_the_run_it_reuses(tmp_path):
    from mlflow import MlflowClient

    from agent.chat import tools
    from core.tracking import schema as S

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("palier/x", artifact_location=(tmp_path / "artifacts").as_uri())
    finished = client.create_run(experiment).info.run_id
    client.log_table(finished, data={"reference": ["un deux"], "prediction": ["un trois"]},
                     artifact_file=S.predictions_table("final", "test"))
    client.log_text(finished, "CUDA out of memory. Tried to allocate 2.00 GiB\n", f"{S.DIR_LOGS}/stage.log")
    skipped = client.create_run(experiment, tags={S.TAG_REUSED_FROM: finished, S.TAG_STATUS: "skipped"}).info.run_id
    state = LiveState(MlflowState(uri), PrefectState(None))
    run_id, rows, _ = tools.predictions_of(state, {"run_id": skipped, "stage": "s"}, "test")
    assert run_id == finished and rows == [{"reference": "un deux", "prediction": "un trois"}]
    assert tools.artifacts_run(state, {"run_id": finished}) == finished
