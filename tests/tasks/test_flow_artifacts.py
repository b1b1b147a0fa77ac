"""The Prefect artifacts' content, from a pipeline summary as MLflow gives it back."""

from core.tracking import links
from tasks.artifacts import artifact_key, links_markdown, table_rows

SUMMARY = {
    "experiment": "palier/fr_demo", "experiment_id": "7", "parent_run_id": "p1", "status": "running",
    "stages": [
        {"stage": "exp1", "run_id": "r1", "status": "succeeded", "gate": "champion", "model_name": "whisper-fr",
         "model_version": "3", "base_model": "b", "reused_from": None,
         "rows": [{"set": "general_test", "metric": "wer", "baseline": 0.2, "final": 0.05, "delta": -0.15}]},
        {"stage": "exp2", "run_id": "r2", "status": "skipped", "gate": "candidate", "model_name": "whisper-med",
         "model_version": "1", "base_model": "b", "reused_from": "r0", "rows": []},
    ],
}


def test_artifact_keys_are_what_prefect_accepts():
    assert artifact_key("fr_demo", "results") == "fr-demo-results"
    assert artifact_key("Big Pipeline!", "mlflow") == "big-pipeline-mlflow"


def test_table_has_one_row_per_stage_set_metric_with_gate_and_version():
    rows = table_rows(SUMMARY)
    assert rows[0] == {"stage": "exp1", "eval set": "general_test", "metric": "wer", "baseline": "0.2000",
                       "final": "0.0500", "delta": "-0.1500", "gate": "champion", "model version": "whisper-fr v3",
                       "status": "succeeded"}
    assert rows[1]["stage"] == "exp2" and rows[1]["gate"] == "candidate" and rows[1]["metric"] == ""


def test_markdown_links_every_run_and_version_in_the_training_view():
    md = links_markdown(SUMMARY, "http://127.0.0.1:5000")
    assert f"[p1]({links.run_url('http://127.0.0.1:5000', '7', 'p1')})" in md
    assert "(http://127.0.0.1:5000/#/models/whisper-med/versions/1?workflowType=machine_learning)" in md
    assert "exp2 (skipped: same as run r0)" in md
    assert "](" not in links_markdown(SUMMARY, None)  # a local store: names, no dead links
