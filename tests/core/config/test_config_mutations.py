"""~100 broken copies of the shipped pipelines (renamed keys, wrong types, NaN, empty strings,
huge numbers, removed and duplicated keys): each is rejected by a message that names the field,
or is genuinely valid and plans. Never a traceback, never a silent acceptance of a typo."""

import copy
import math
import random
import re
from pathlib import Path

import pytest
import yaml

from core.config import ConfigError, load_pipeline
from core.plan import plan
from core.versioning import data_digest
from repo_paths import ROOT, SHIPPED_PIPELINES

SHIPPED = SHIPPED_PIPELINES
PER_FILE = 25
BAD_VALUES = [float("nan"), "NaN", "", 10**15, -1, ["a", "list"], {"a": "mapping"}, "xxxxxxxxxxxxxxxxxxxx" * 5, True]


def _leaves(obj, path=()):
    """Every (path, key) under a mapping, where the last element is a mapping key."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*path, k)
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))


def _parent(raw, path):
    node = raw
    for p in path[:-1]:
        node = node[p]
    return node


def _mutants(path: Path, rng: random.Random):
    text = path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    keys = list(_leaves(raw))
    for _ in range(PER_FILE - 3):
        where = rng.choice(keys)
        mutated = copy.deepcopy(raw)
        parent, key = _parent(mutated, where), where[-1]
        op = rng.choice(["rename", "value", "value", "delete"])
        if op == "rename":
            parent[f"{key}_typo"] = parent.pop(key)
            named = (f"{key}_typo", key)  # the unknown key, or the one now missing
        elif op == "delete":
            del parent[key]
            named = (key,)
        else:
            value = rng.choice(BAD_VALUES)
            parent[key] = value
            named = (key,)
        yield f"{op} {'.'.join(map(str, where))}", yaml.safe_dump(mutated, allow_unicode=True, sort_keys=False), named
    # Duplicated keys, at the top level and nested, written as a user would (same indentation).
    lines = text.splitlines()
    candidates = [i for i, line in enumerate(lines) if re.match(r"^\s*[a-z_]+:\s*\S", line) and not line.lstrip().startswith("#")]
    top = [i for i in candidates if not lines[i].startswith(" ")]
    for i in [rng.choice(top), rng.choice(candidates), rng.choice(candidates)]:
        key = lines[i].split(":", 1)[0].strip()
        duplicated = lines[: i + 1] + [lines[i]] + lines[i + 1:]
        # Inside a flow mapping continued over lines, the copy is a syntax error at the copied line.
        yield f"duplicate line {i + 1} ({key})", "\n".join(duplicated) + "\n", (key, f"line {i + 2},")


def _all_mutants():
    rng = random.Random(10)
    return [(p.name, *m) for p in SHIPPED for m in _mutants(p, rng)]


def test_about_a_hundred_mutants_are_rejected_by_field_or_plan(tmp_path):
    mutants = _all_mutants()
    assert len(mutants) >= 100
    outcomes = {"rejected": 0, "valid": 0}
    for n, (source, what, text, named) in enumerate(mutants):
        path = tmp_path / f"{n}-{source}"
        path.write_text(text, encoding="utf-8")
        try:
            config = load_pipeline(path)
        except ConfigError as exc:
            message = str(exc)
            assert str(path) in message, (what, message)
            assert any(f"{n}" in message for n in named), f"{source}: {what}: the error names none of {named}:\n{message}"
            assert "Traceback" not in message
            if what.startswith("duplicate"):
                assert ("appears twice" in message or "not valid YAML" in message) and "line" in message, message
            outcomes["rejected"] += 1
            continue
        assert not what.startswith(("duplicate", "rename")), f"{source}: {what} was accepted"
        specs = plan(config, "test", lambda src: data_digest(src, path.parent), pipeline_file=str(path))
        assert len(specs) == len(config.stages)
        outcomes["valid"] += 1
    assert outcomes["rejected"] > outcomes["valid"] > 0, outcomes


@pytest.mark.parametrize("params, field", [
    ({"pool": "stage", "count_typo": 8, "voices": "stage"}, "count_typo"),
    ({"pool": "stage", "count": 8, "voices": "NaN"}, "voices"),
    ({"pool": "x" * 200, "count": 8, "voices": "stage"}, "pool"),
    ({"pool": "stage", "count": "8", "voices": "stage"}, "count"),
    ({"pool": "stage", "count": 10**9, "voices": "stage"}, "count"),
    ({"pool": "test", "count": 50_000, "voices": "stage"}, "count"),  # more than the pool holds
    ({"pool": "test", "count": 500, "voices": "all", "domain": "medical"}, "count"),
    ({"pool": "pretrain", "count": 8, "voices": "stage", "domain": "medical"}, "pool"),
    ({"pool": "stage", "count": 8, "voices": "stage", "general_mix": 4}, "general_mix"),
    ({"pool": "stage", "count": 8, "voices": "stage", "seed": math.nan}, "seed"),
])
def test_french_speech_params_are_checked_at_load_time(params, field):
    from core.config import parse_pipeline

    raw = {"name": "p", "family": "asr", "base_model": "m", "stages": [{
        "name": "s1", "output_name": "m1",
        "train": {"kind": "generated", "generator": "french_speech", "params": params},
        "evals": [{"name": "t", "role": "primary", "data": {"kind": "csv", "path": "t.csv"}}]}]}
    with pytest.raises(ConfigError) as info:
        parse_pipeline(raw, "p.yaml")
    message = str(info.value)
    assert "stages[0](s1).train" in message and f"params.{field}" in message, message


def test_every_generator_has_a_schema_and_an_empty_one_is_named():
    from core.config import parse_pipeline
    from core.demo.datasets import RECIPES
    from core.demo.params import PARAMS

    assert set(PARAMS) == set(RECIPES)
    raw = {"name": "p", "family": "token_cls", "base_model": "m", "stages": [{
        "name": "s1", "output_name": "m1", "train": {"kind": "generated", "generator": ""},
        "evals": [{"name": "t", "role": "primary",
                   "data": {"kind": "generated", "generator": "pii_sentences", "params": {"french_share": 1.5}}}]}]}
    with pytest.raises(ConfigError) as info:
        parse_pipeline(raw, "p.yaml")
    message = str(info.value)
    assert "train: generator: '' is not a data generator" in message
    assert "evals[0].data: generator pii_sentences: params.french_share" in message


def test_duplicated_top_level_key_names_key_and_lines(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text((ROOT / "pipelines" / "demo.yaml").read_text() + "name: demo-again\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert re.search(r"line \d+: key 'name' appears twice in the same mapping \(first on line \d+\)", str(info.value))


def test_a_key_inherited_from_defaults_or_backend_is_named_where_it_is_written():
    """Every stage inherits ``defaults:`` and the top-level ``backend:``; the error names them once."""
    from core.config import parse_pipeline

    raw = yaml.safe_load((ROOT / "pipelines" / "fr.yaml").read_text(encoding="utf-8"))
    raw.setdefault("defaults", {})["a"] = 1
    raw["defaults"].setdefault("training", {})["lr_typo"] = 3e-5
    raw["backend"] = {"kind": "local", "gpux": 2}
    raw["stages"][1]["b"] = 2
    with pytest.raises(ConfigError) as info:
        parse_pipeline(raw, "fr.yaml")
    problems = info.value.problems
    assert len(raw["stages"]) == 4 and len(problems) == 4, problems
    assert sorted(p.split(":")[0] for p in problems) == [
        "backend.gpux", "defaults.a", "defaults.training.lr_typo", "stages[1](exp2-common-voice).b"]
    assert all("unknown key" in p for p in problems)
