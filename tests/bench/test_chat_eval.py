"""The chat evaluation (bench/chat.py) over its fixture states: the score must not fall below
the figure reached, and the answers keep the properties the issue asked for."""

from __future__ import annotations

import pytest

REACHED = 0.97  # bench/results/chat.md: 100/100 on this machine; a little slack for wording changes


@pytest.fixture(scope="module")
def result():
    from bench.chat import evaluate

    return evaluate()  # in /dev/shm when there is one: SQLite commits cost nothing there


def test_chat_evaluation_score_stays_above_the_reached_figure(result):
    failing = [(r["question"], r["problems"]) for r in result["rows"] if not r["passed"]]
    assert result["questions"] >= 40 and result["french"] >= 20 and result["english"] >= 20
    assert result["score"] >= REACHED, failing
    for part in ("held-out", "held-out-2"):
        assert result["parts"][part]["score"] >= 0.9, (part, failing)


def test_no_answer_shows_a_raw_placeholder_or_a_timing_verdict(result):
    import re

    for r in result["rows"]:
        assert not re.search(r"\{[a-z_]+\}", r["answer"]), r
        assert not re.search(r"eval_seconds [^;\n]*\((?:[+-][^)]*, )?(better|worse|mieux|moins bien)\)", r["answer"]), r


def test_the_score_fails_an_answer_that_lacks_a_fact():
    from bench.chat import Q, score

    q = Q("quel GPU ?", "fr", [r"h100", r"4\.4\.0"], [r"\{[a-z_]+\}"])
    assert score(q, "Utiliser le H100 : le H200 se fige sur le noyau 4.4.0.", "fr") == []
    assert score(q, "Utiliser le H100.", "fr") == ["missing /4\\.4\\.0/"]
    assert score(q, "Utiliser {fallback} : 4.4.0 H100", "en") == ["answered in en", "contains /\\{[a-z_]+\\}/"]
