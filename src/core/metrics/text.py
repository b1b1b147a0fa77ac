"""French-aware transcript normalisation used by the normalized WER/CER.

Lower-casing and deleting commas and full stops (``lower().replace(",", "").replace(".", "")``)
misses French typography: curly apostrophes (’) vs straight ones, guillemets (« »), non-breaking spaces
before ; : ! ?, and ligatures that dictation software writes either way (œ/oe). The rules:

1. Unicode NFKC (folds non-breaking spaces and compatibility forms), then lower case.
2. Apostrophes ’ ‘ ʼ ` become ', and the elision stays attached ("l'hépatite" is one word).
3. œ → oe and æ → ae (both spellings are correct French; only one should be counted).
4. Every other punctuation mark, hyphens included ("compte-rendu" = "compte rendu"), becomes
   a space; whitespace is collapsed.

Accents are **kept**: "a"/"à" and "ou"/"où" are different words, and a model that drops them
makes a real error.
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae"})
_PUNCTUATION = re.compile(r"[^\w\s']|_")
_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_SPACES = re.compile(r"\s+")


def normalize_fr(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.translate(_APOSTROPHES).translate(_LIGATURES)
    text = _PUNCTUATION.sub(" ", text)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()
