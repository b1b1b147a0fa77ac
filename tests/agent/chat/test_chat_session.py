"""The chat over look-alike pipelines (tests/agent/chat/conftest.py): conversation memory, results
from the run that has them, the new intents, "found nothing", and no traceback ever."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def session(lookalike, book):
    from agent.chat.session import ChatSession

    return ChatSession(state=lookalike, playbooks=book, use_llm=False)


def test_follow_ups_keep_the_pipeline_stage_and_set(session):
    first = session.ask("où en est l'exp2 de demo ?")
    assert "exp2-medical (demo)" in first.text and session.about["pipeline"] == "demo"
    second = session.ask("et sa baseline sur le jeu général ?")
    assert "exp2-medical" in second.text and "general_test" in second.text and "0.2540" in second.text
    assert "demo-copie" not in second.text
    third = session.ask("and on the medical set?")
    assert "0.6220" in third.text and "0.3090" in third.text and third.data["about"]["eval_set"] == "medical_test"
    assert session.ask("why was it promoted?").intent == "gate"
    fresh = session.ask("où en est demo-neuf ?")  # a new name replaces the context
    assert "demo-neuf" in fresh.text and session.about["pipeline"] == "demo-neuf"


def test_the_other_one_is_the_look_alike(session):
    assert "killed" in session.ask("why is demo-copie stuck?").text
    other = session.ask("and the other one?")
    assert other.data["about"]["pipeline"] == "demo" and "champion" in other.text


def test_results_come_from_the_run_that_has_them_and_the_choice_is_said(session):
    answer = session.ask("is the medical model better than baseline")
    first = answer.text.splitlines()[0]
    assert "demo-copie" in first and "killed" in first and "answering from demo" in first
    assert "0.6220" in answer.text and "0.3090" in answer.text


def test_two_equal_readings_are_asked_back(lookalike):
    from agent.chat.converse import with_results

    stage = {"stage": "s", "metrics": [{"final": 0.3}], "gate": "champion"}
    statuses = [{"pipeline": "new", "state": "failed", "stages": [{"stage": "s", "metrics": [], "status": "killed"}]},
                {"pipeline": "a", "state": "succeeded", "stages": [stage]},
                {"pipeline": "b", "state": "succeeded", "stages": [stage]}]
    chosen, line, back = with_results(statuses, "new", ["s"], "en")
    assert line is None and "s (a) or s (b)" in back


def test_preflight_block_is_explained_from_the_parent_run(session):
    answer = session.ask("why did demo-lexique fail")
    assert answer.intent == "blocked"
    assert "data.lexicon-exists" in answer.text and "/data/lexiques/medical_fr_v2.txt" in answer.text
    assert "palier check" in answer.text and "No failed stage" not in answer.text
    assert "medical_fr_v2.txt" in session.ask("how do I fix it?").text


def test_a_killed_stage_gives_its_checkpoint_and_real_paths(session):
    answer = session.ask("why is demo-copie stuck?")
    assert answer.intent == "stopped" and "step 100" in answer.text
    paths = re.findall(r"(/\S+/runs/demo-copie/exp2-medical-\w+/(?:stage\.log|events\.jsonl|checkpoints/checkpoint-100))",
                       answer.text)
    assert {p.rsplit("/", 1)[-1] for p in paths} >= {"stage.log", "events.jsonl", "checkpoint-100"}
    assert "<stage.log>" not in answer.text and "resumes from it" in answer.text


def test_worst_utterances_duration_gate_best_and_guards(session):
    worst = session.ask("pires transcriptions du modèle médical ?")
    assert worst.intent == "worst" and worst.text.index("tachycardie") < worst.text.index("bilan")
    assert "taxi cardie" in worst.text and "WER 0.33" in worst.text
    assert "312.00 s" in session.ask("how long did exp2 train?").text
    gate = session.ask("why did the gate refuse french in pii-demo?")
    assert gate.intent == "gate" and "rejected" in gate.text and "0.6550 → 0.6410" in gate.text
    best = session.ask("quel est le meilleur modèle pour le médical ?")
    assert "models:/demo-whisper-fr-medical@champion" in best.text and "pii-demo-english" not in best.text
    guards = session.ask("any guard set regressions across pipelines?")
    assert guards.intent == "guard" and "demo/exp2-medical, general_test: wer 0.2540 → 0.2810" in guards.text


def test_nothing_found_lists_the_closest_topics(session):
    answer = session.ask("how do I bake a cake")
    assert answer.text.startswith("I found nothing") and "Closest playbook topics:" in answer.text
    slow = session.ask("eval is super slow")
    assert "ct2" in slow.text and "eval_sample" in slow.text and "evaluation-and-sizing.md#" in slow.text


def test_an_exception_inside_is_one_honest_sentence(lookalike, book, monkeypatch):
    from agent.chat import converse
    from agent.chat.respond import ask

    def broken(*args, **kwargs):
        raise KeyError("stage")

    monkeypatch.setattr(converse, "_intent", broken)
    answer = ask("compare exp1 and exp2 of demo", state=lookalike, playbooks=book, use_llm=False)
    assert answer.intent == "error" and "KeyError" in answer.text and "palier status" in answer.text
    assert "Traceback" not in answer.text


def test_compare_of_a_pipeline_without_stages_does_not_crash():
    from agent.chat.text import render

    text = render("compare", {"ok": True, "pipeline": "p", "state": "no_runs", "stages": [], "notes": []}, "en")
    assert "p" in text
