import pytest

from core.metrics.asr import asr_metrics, medical_term_accuracy
from core.metrics.text import normalize_fr


@pytest.mark.parametrize("raw,expected", [
    ("Le patient présente une Thyroïdite.", "le patient présente une thyroïdite"),
    ("l’hépatite « aiguë » ; contrôle !", "l'hépatite aiguë contrôle"),
    ("compte-rendu\u00a0: cœur", "compte rendu coeur"),
    ("  où   est-il ?  ", "où est il"),
    ("'quoted' words", "quoted words"),
])
def test_normalize_fr(raw, expected):
    assert normalize_fr(raw) == expected


def test_accents_are_errors_but_case_and_punctuation_are_not():
    m = asr_metrics(["Il est à Paris."], ["il est a paris"])
    assert m["wer"] == pytest.approx(3 / 4)  # "Il", "à", "Paris." all differ raw
    assert m["normalized_wer"] == pytest.approx(1 / 4)  # only the accent remains an error


def test_wer_cer_match_jiwer_definitions():
    m = asr_metrics(["a b c d", "e f"], ["a x c d", "e f g"])
    assert m["wer"] == pytest.approx(2 / 6)
    assert 0 < m["cer"] < m["wer"]


def test_medical_term_accuracy_counts_occurrences_on_word_boundaries():
    refs = ["le patient présente une hépatite et une anémie", "l'hépatite est connue", "rien de médical"]
    preds = ["le patient présente une hepatite et une anémie", "L’hépatite est connue", "rien"]
    acc, hits, occ = medical_term_accuracy(refs, preds, ["hépatite", "anémie"])
    assert (hits, occ) == (2, 3) and acc == pytest.approx(2 / 3)
    acc, _, _ = medical_term_accuracy(["hépatites"], ["hépatites"], ["hépatite"])
    assert acc is None  # plural is another word: no occurrence of the term


def test_mta_in_metrics_only_when_lexicon_matches():
    assert "medical_term_accuracy" not in asr_metrics(["bonjour"], ["bonjour"], ["anémie"])
    m = asr_metrics(["une anémie"], ["une anémie"], ["anémie"])
    assert m["medical_term_accuracy"] == 1.0 and m["medical_term_occurrences"] == 1


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        asr_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty evaluation set"):
        asr_metrics([], [])
