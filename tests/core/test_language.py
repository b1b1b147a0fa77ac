"""core.language: PALIER_LANG, else the locale, chooses palier's own words."""

from core.language import Phrase, user_language


def test_the_setting_wins_then_the_locale_as_the_c_library_reads_it():
    assert user_language({"PALIER_LANG": "fr", "LANG": "en_US.UTF-8"}) == "fr"
    assert user_language({"PALIER_LANG": "EN", "LC_ALL": "fr_FR.UTF-8"}) == "en"
    assert user_language({"LC_ALL": "fr_CA.UTF-8", "LANG": "en_GB.UTF-8"}) == "fr"
    assert user_language({"LC_MESSAGES": "en_US.UTF-8", "LANG": "fr_FR.UTF-8"}) == "en"
    assert user_language({"LANG": "fr_FR.UTF-8"}) == "fr"
    assert user_language({"LANG": "C.UTF-8"}) == "en"
    assert user_language({"PALIER_LANG": "de", "LANG": "fr_BE"}) == "fr"  # not one of palier's: the locale decides
    assert user_language({}) == "en"


def test_a_phrase_is_one_language_at_a_time(monkeypatch):
    parts = [Phrase("deux cœurs", "two cores"), Phrase("jeu de 8", "set of 8")]
    assert Phrase.join(parts).in_("fr") == "deux cœurs; jeu de 8"
    monkeypatch.setenv("PALIER_LANG", "fr")
    assert str(Phrase.join(parts)) == "deux cœurs; jeu de 8"
    monkeypatch.setenv("PALIER_LANG", "en")
    assert str(Phrase.join(parts)) == "two cores; set of 8"
