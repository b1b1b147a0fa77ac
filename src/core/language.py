"""The language of palier's own words: French or English, chosen once per process.

``PALIER_LANG=fr`` or ``PALIER_LANG=en`` decides. Without it, the user's locale does, as the C
library reads it (``LC_ALL``, then ``LC_MESSAGES``, then ``LANG``): a ``fr`` locale gives French,
any other English. Quotations from the playbooks (a rule's message and fix) stay as they are
written; the words palier puts into a quotation follow the quotation's language, so a message
never mixes the two.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Language = Literal["fr", "en"]
LANGUAGES: tuple[Language, ...] = ("fr", "en")
SETTING = "PALIER_LANG"


def user_language(environ: Mapping[str, str] | None = None) -> Language:
    env = os.environ if environ is None else environ
    chosen = env.get(SETTING, "").strip().lower()[:2]
    if chosen in LANGUAGES:
        return chosen  # type: ignore[return-value]
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "").strip()
        if value:  # the first one set wins, as for the C library
            return "fr" if value.lower().startswith("fr") else "en"
    return "en"


@dataclass(frozen=True)
class Phrase:
    """Words of palier's own in both languages; the text they go into picks one."""

    fr: str
    en: str

    def in_(self, language: Language) -> str:
        return self.fr if language == "fr" else self.en

    def __str__(self) -> str:
        return self.in_(user_language())

    @staticmethod
    def join(parts: list[Phrase], separator: str = "; ") -> Phrase:
        return Phrase(separator.join(p.fr for p in parts), separator.join(p.en for p in parts))
