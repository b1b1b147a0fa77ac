"""The held-out chat sets over look-alike pipelines (bench/chat_heldout.py): their size and mix as
the issue asks (>= 60 turns written first, >= 30 written last, French and English, follow-ups),
and every expected fact a valid pattern. Their scores are published by `python -m bench.chat_heldout`."""

from __future__ import annotations

import re


def _turns(items):
    return [q for item in items for q in (item if isinstance(item, tuple) else (item,))]


def test_the_sets_have_the_size_and_mix_asked_for():
    from bench.chat_heldout import LAST, LOOKALIKE, turns

    assert turns(LOOKALIKE) >= 60 and turns(LAST) >= 30
    for items in (LOOKALIKE, LAST):
        qs = _turns(items)
        assert {q.lang for q in qs} == {"fr", "en"}
        assert sum(isinstance(i, tuple) for i in items) >= 3  # conversations in one session
        kinds = {q.topic for q in qs}
        assert {"results", "worst", "duration", "gate", "killed", "preflight", "best", "guard", "playbook"} <= kinds


def test_every_expected_fact_is_a_valid_pattern_and_questions_are_unique():
    from bench.chat_heldout import LAST, LOOKALIKE

    qs = _turns(LOOKALIKE) + _turns(LAST)
    for q in qs:
        for pattern in [*q.must, *q.must_not]:
            re.compile(pattern)
    assert len({q.question for q in qs if not re.fullmatch(r"\W*\w+\W*", q.question)}) >= len(qs) - 5
