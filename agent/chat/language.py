"""Which language a question is in (French or English), from accents and common words."""

from __future__ import annotations

import re
from typing import Literal

from agent.playbooks.retrieval import fold

_FR_MARKERS = {"ou", "est", "en", "quoi", "pourquoi", "comment", "que", "quel", "quelle", "quels", "le", "la", "les",
               "des", "une", "l", "d", "etape", "echoue", "faire", "ensuite", "apres", "sa", "son", "a", "au", "du",
               "je", "dois", "faut", "il", "sur", "pour", "avec", "meilleur", "modele", "mieux", "pire", "marche",
               "tourne", "utiliser", "qu", "ce", "cette", "mon", "ma", "mes", "donne", "entre", "et", "par", "rapport",
               "dernier", "derniere", "plante", "moins", "plus", "quand", "combien", "puis", "ai", "j", "c", "s",
               "peux", "peut", "fait", "sont", "suis", "encore", "bien", "dans", "chez", "mais", "aussi", "comparer", "quoi", "lequel", "laquelle",
               "depuis", "deja", "toujours", "mes", "nos", "vos", "leur", "ces", "sans", "tres", "trop", "fais"}
_EN_MARKERS = {"where", "is", "the", "what", "why", "how", "did", "does", "should", "next", "stage", "failed",
               "compare", "with", "its", "to", "do", "i", "we", "which", "use", "better", "worse", "than", "of",
               "on", "my", "it", "are", "was", "can", "run", "about", "and", "model", "now", "fail", "there", "any",
               "happened", "wrong", "much", "long", "for", "need", "between", "against", "going", "doing", "been"}


def detect_language(question: str) -> Literal["fr", "en"]:
    if re.search(r"[àâçéèêëîïôùûüœ]", question.lower()):
        return "fr"
    words = re.findall(r"[a-z]+", fold(question))
    fr = sum(w in _FR_MARKERS for w in words)
    en = sum(w in _EN_MARKERS for w in words)
    return "fr" if fr > en else "en"
