from core.demo import corpus


def test_pools_are_disjoint_and_deterministic():
    pre = set(corpus.general_sentences("pretrain", 2000))
    stage = set(corpus.general_sentences("stage", 500))
    test = set(corpus.general_sentences("test", 100))
    assert not (pre & stage) and not (pre & test) and not (stage & test)
    assert corpus.general_sentences("test", 5) == corpus.general_sentences("test", 5)


def test_medical_test_sentences_hold_lexicon_terms_and_differ_from_training():
    test = corpus.medical_sentences("test", 40)
    train = set(corpus.medical_sentences("stage", 100))
    assert all(any(term in s for term in corpus.MEDICAL_TERMS) for s in test)
    assert not (set(test) & train)
    assert not any(term in s for s in corpus.general_sentences("pretrain", 2000) for term in corpus.MEDICAL_TERMS)
