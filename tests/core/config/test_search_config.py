"""The search: block: what it accepts, and the errors that name the key when it is wrong."""

import pytest

from core.config import ConfigError, parse_pipeline


def _pipeline(search, where: str = "stage"):
    stage = {"name": "a", "output_name": "m-a", "train": {"kind": "csv", "path": "a.csv"},
             "evals": [{"name": "t", "role": "primary", "data": {"kind": "csv", "path": "t.csv"}}]}
    raw = {"name": "p", "family": "asr", "base_model": "openai/whisper-tiny", "stages": [stage]}
    if where == "stage":
        stage["search"] = search
    else:
        raw["defaults"] = {"search": search}
    return raw


def _problems(search) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(_pipeline(search), "p.yaml")
    return info.value.problems


def test_a_search_block_in_a_stage_or_in_defaults():
    search = {"parameters": {"training.learning_rate": {"low": 1.0e-5, "high": 1.0e-3, "log": True},
                             "training.warmup_steps": {"low": 0, "high": 40, "step": 10},
                             "training.lora.r": {"choices": [8, 16]},
                             "whisper.freeze_encoder": {"choices": [True, False]}},
              "sampler": "random", "trials": 6, "parallel": 2, "keep_trials": True}
    for where in ("stage", "defaults"):
        config = parse_pipeline(_pipeline(search, where), "p.yaml")
        got = config.stages[0].search
        assert got.trials == 6 and got.parallel == 2 and got.keep_trials and got.sampler == "random"
        assert got.parameters["training.warmup_steps"].is_int
        assert got.parameters["training.warmup_steps"].grid_values() == [0, 10, 20, 30, 40]
        assert not got.parameters["training.learning_rate"].is_int


@pytest.mark.parametrize(("search", "expected"), [
    ({"parameters": {"training.lrate": {"low": 1.0e-5, "high": 1.0e-3}}, "trials": 2},
     "stages[0](a): search.parameters.training.lrate: unknown parameter: training has no field 'lrate'"),
    ({"parameters": {"training.learning_rate": {"low": 1.0e-3, "high": 1.0e-3}}, "trials": 2},
     "stages[0](a).search.parameters.training.learning_rate: empty range: low 0.001 must be below high 0.001"),
    ({"parameters": {"training.learning_rate": {"choices": []}}, "trials": 2},
     "stages[0](a).search.parameters.training.learning_rate: choices is empty"),
    ({"parameters": {"training.learning_rate": {"low": 1.0e-5, "high": 1.0e-3}}, "trials": 2, "parallel": 3},
     "stages[0](a).search: parallel (3) is more than trials (2)"),
    ({"parameters": {"training.warmup_steps": {"low": -10, "high": 5}}, "trials": 2},
     "search.parameters.training.warmup_steps: value -10 does not fit the stage"),
    ({"parameters": {"training.lora.r": {"choices": [8, 16]}}, "trials": 3, "sampler": "grid"},
     "trials (3) is more than the grid's 2 combinations"),
    ({"parameters": {"training.learning_rate": {"low": 1.0e-5, "high": 1.0e-3}}, "trials": 2, "sampler": "grid"},
     "search: parameters.training.learning_rate: sampler grid needs choices or a range with step"),
    ({"parameters": {"output_name": {"choices": ["x", "y"]}}, "trials": 2},
     "search.parameters.output_name: 'output_name' names or wires the stage and cannot be searched"),
    ({"parameters": {"training": {"choices": [1, 2]}}, "trials": 2},
     "search.parameters.training: 'training' is a group of settings"),
    ({"parameters": {"training.learning_rate": {"low": 1.0e-5, "high": 1.0e-3}}, "trials": 2, "pruner": "median"},
     "stages[0](a).search.pruner: unknown key"),
])
def test_a_wrong_search_block_is_refused_naming_the_key(search, expected):
    problems = _problems(search)
    assert any(expected in p for p in problems), problems
