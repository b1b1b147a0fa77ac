"""Pure metrics: seqeval entity F1, confusion matrix, span errors; SQuAD-style answer scores."""

from __future__ import annotations

import pytest

from core.metrics.sft import answer_metrics, exact_match, normalize_answer, token_f1
from core.metrics.token_cls import confusion, entity_metrics, plot_confusion, span_errors

REF = [["B-PER", "I-PER", "O", "B-EMAIL"], ["O", "B-PER", "O"]]


def test_perfect_prediction_scores_one():
    m = entity_metrics(REF, REF)
    assert m["f1_weighted"] == m["f1_macro"] == m["f1_micro"] == 1.0
    assert m["token_accuracy"] == 1.0 and m["support_PER"] == 2 and m["entities"] == 3


def test_entity_level_scores_need_exact_boundaries():
    pred = [["B-PER", "O", "O", "B-EMAIL"], ["O", "B-PER", "O"]]  # first PER cut short
    m = entity_metrics(REF, pred)
    # PER: 1 of 2 right (precision 1/2, recall 1/2); EMAIL perfect.
    assert m["precision_PER"] == pytest.approx(0.5) and m["recall_PER"] == pytest.approx(0.5)
    assert m["f1_EMAIL"] == 1.0
    assert m["f1_macro"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["f1_weighted"] == pytest.approx((0.5 * 2 + 1.0 * 1) / 3)
    assert m["f1_micro"] == pytest.approx(2 / 3)  # 2 right of 3 predicted, 3 references
    assert m["token_accuracy"] == pytest.approx(6 / 7)


def test_no_entities_anywhere_is_zero_not_a_crash():
    m = entity_metrics([["O", "O"]], [["O", "O"]])
    assert m["f1_weighted"] == 0.0 and m["token_accuracy"] == 1.0


def test_length_mismatch_is_reported():
    with pytest.raises(ValueError, match="sentence 0"):
        entity_metrics([["O", "O"]], [["O"]])


def test_confusion_folds_bio_and_puts_o_last():
    labels, matrix = confusion(REF, [["B-EMAIL", "I-EMAIL", "O", "B-EMAIL"], ["O", "O", "O"]], ["PER", "EMAIL", "IBAN"])
    assert labels == ["EMAIL", "IBAN", "PER", "O"]
    per, o = labels.index("PER"), labels.index("O")
    assert matrix[per][labels.index("EMAIL")] == 2 and matrix[per][o] == 1
    assert sum(map(sum, matrix)) == 7


def test_span_errors_name_each_kind():
    tokens = ["Ana", "Lopez", "at", "a@b.c", "in", "Paris", "now"]
    ref = ["B-PER", "I-PER", "O", "B-EMAIL", "O", "O", "O"]
    pred = ["B-PER", "O", "O", "B-PER", "O", "B-PER", "O"]
    kinds = {(r["error"], r["gold_text"], r["pred_text"]) for r in span_errors(tokens, ref, pred)}
    assert kinds == {("boundary", "Ana Lopez", "Ana"), ("wrong_type", "a@b.c", "a@b.c"), ("spurious", "", "Paris")}
    missed = span_errors(tokens, ref, ["O"] * 7)
    assert {r["error"] for r in missed} == {"missed"}


def test_confusion_picture_is_a_png(tmp_path):
    labels, matrix = confusion(REF, REF)
    path = plot_confusion(labels, matrix, tmp_path / "cm.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_normaliser_drops_case_punctuation_and_articles_keeps_accents():
    assert normalize_answer("Le datacenter de Lille.") == "datacenter lille"
    assert normalize_answer("L’application « ORCHIS » !") == "application orchis"
    assert normalize_answer("The  Owner") == "owner"
    assert normalize_answer("à") != normalize_answer("a")


def test_exact_match_and_token_f1():
    assert exact_match("Le datacenter de Lille", "datacenter de lille.") == 1.0
    assert exact_match("Claire Moreau", "Claire") == 0.0
    assert token_f1("Claire Moreau", "Claire") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert token_f1("Java et PostgreSQL", "Python et Django") == pytest.approx(1 / 3)
    assert token_f1("2016", "") == 0.0 and token_f1("", "") == 1.0


def test_answer_metrics_are_means():
    m = answer_metrics(["Claire Moreau", "2016"], ["claire moreau", "2019"])
    assert m == {"exact_match": 0.5, "token_f1": 0.5}
    with pytest.raises(ValueError):
        answer_metrics([], [])
