"""One set of real services for every end-to-end test: Prefect and MLflow servers on free
loopback ports and the served deployments of the tiny pipelines, started once per session."""

import os

import pytest

from e2e_services import deployment_run, flow_run_id
from repo_paths import ROOT
from speed_markers import starts_servers
from tiny import tiny_asr_pipeline, tiny_search_pipeline


@pytest.fixture(scope="session")
@starts_servers
def services(tmp_path_factory, tiny_whisper, speech_cache):
    from palier import services
    from palier.services import free_port

    home = tmp_path_factory.mktemp("e2e") / "state"
    pipelines = home.parent / "pipelines"
    pipelines.mkdir()
    tiny_asr_pipeline(pipelines / "tiny.yaml", tiny_whisper, stages=2, name="tiny",
                      lexicon=ROOT / "data" / "lexicons" / "medical_fr.txt")
    # A model folder that exists (so the preflight lets it through) but holds no model: the stage
    # itself fails to load it, and that failure is what the flow must diagnose.
    not_a_model = home.parent / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "README.md").write_text("weights were never copied here\n", encoding="utf-8")
    tiny_asr_pipeline(pipelines / "broken.yaml", not_a_model, stages=1, name="broken")
    # A stage that searches (4 trials, 2 at a time) and a plain stage that starts from its winner.
    tiny_search_pipeline(pipelines / "search.yaml", tiny_whisper, name="search", trials=4, parallel=2)
    # Long enough to be stopped or killed while it trains.
    tiny_asr_pipeline(pipelines / "long.yaml", tiny_whisper, stages=1, name="long", steps=5000)
    env = {"PALIER_HOME": str(home), "PALIER_PREFECT_PORT": str(free_port()), "PALIER_MLFLOW_PORT": str(free_port()),
           "PALIER_CACHE_DIR": str(speech_cache), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        state = services.up(pipelines, timeout_s=180)
        yield {"state": state, "env": {**os.environ, **services.client_env(state)}, "pipelines": pipelines,
               "home": home}
    finally:
        services.down()
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="session")
def tiny_run(services):
    """The tiny two-stage pipeline run once through its deployment; many tests read it."""
    proc = deployment_run(services["env"], "tiny")
    return {"proc": proc, "flow_run_id": flow_run_id(proc.stdout) if proc.returncode == 0 else None}
