"""The questions agent.chat.question does not route, read from their words alone (pure): the best
model, guard regressions, worst utterances, durations, the gate's decision; whether a question
continues the previous one ("et sa baseline ?", "and on the guard set?", "the other one"), and
which eval set it describes by its words ("le jeu général" -> general_test)."""

from __future__ import annotations

import re

from agent.playbooks.retrieval import fold

_SPECIAL: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("worst", re.compile(r"\b(pires?|worst|plus mauvais\w*)\b.{0,40}\b(transcri\w*|predictions?|utterances?|phrases?|"
                         r"exemples?|examples?|enonces?|sorties?|outputs?|hypothes\w*|erreurs?|errors?)\b|"
                         r"\b(rate|rates|misses|gets wrong|se trompe)\b.{0,15}\b(le plus|most)\b|"
                         r"\b(worst|pires?) (on|sur)\b|\b(gets?|got) (\w+ )?(most )?wrong\b|\bmost wrong\b|"
                         r"\berreurs? de (transcription|reconnaissance)\b|\ble plus d.erreurs\b|\bmistakes\b")),
    ("duration", re.compile(r"\b(combien de temps|how long|duree|took|a pris|a dure|training time|temps d\W?entrainement|"
                            r"temps d\W?evaluation|how much time)\b")),
    ("gate", re.compile(r"\b(promu\w*|promot\w*|rejet\w*|refus\w*|rejected|refused|pass(?:e|ed)? (?:la |the )?gate|"
                        r"la gate a|the gate)\b")),
    ("best", re.compile(r"\b((?:top|meilleurs?|best)(?: \w+){0,2} (?:modele|model|checkpoint)s?\b(?! ?(?:size|taille|de taille))|c.est quoi le champion|"
                        r"quel est le champion|which (?:model )?is (?:the )?champion|the champions?\b|le champion\b|"
                        r"les champions|quel modele\b.{0,30}\b(?:utiliser|prendre|prod\w*|deploy\w*|deployer)|"
                        r"which model\b.{0,30}\b(?:use|deploy|ship|production))")),
    ("guard", re.compile(r"\b(garde|guard|gardes|guards)\b")),
)
_FOLLOW = re.compile(r"^\s*(et|and|also|aussi|puis|then|what about|how about|et pour|et sur|and on|and for|"
                     r"idem|same for|pareil)\b|\b(sa|son|ses|its|it|lui|celui-ci|celle-ci|that one|this one|"
                     r"l.autre|the other|other one|l.autre pipeline)\b")
_OTHER = re.compile(r"\b(l.autre|the other|other one|l.autre pipeline|autre copie|other copy)\b")
_WHY_ONLY = re.compile(r"^\s*(pourquoi|why|pq|how come|comment ca)\s*\??\s*$")
_SET_WORDS = {"guard": ("garde", "guard"), "primary": ("principal", "primary", "main")}
_SET_NOISE = {"test", "set", "eval", "val", "dev", "jeu", "data"}


def special_intent(question: str) -> str | None:
    q = fold(question).replace("-", " ")
    for name, pattern in _SPECIAL:
        if pattern.search(q):
            return name
    return None


def is_follow_up(question: str) -> bool:
    """Continues the previous answer: starts with "and"/"et", a pronoun, or is a bare "why?"."""
    q = fold(question).replace("'", " ").strip()
    return bool(_FOLLOW.search(q) or _WHY_ONLY.match(q) or len(re.findall(r"\w+", q)) <= 4)


def asks_other(question: str) -> bool:
    return bool(_OTHER.search(fold(question).replace("'", " ")))


def asks_why_only(question: str) -> bool:
    return bool(_WHY_ONLY.match(fold(question)))


def described_eval_set(question: str, roles: dict[str, str]) -> str | None:
    """The eval set among ``roles`` (name -> role) the question describes: its name, its
    domain word ("le jeu général" -> general_test) or its role ("the guard set")."""
    q = fold(question).replace("-", " ").replace("_", " ")
    for name in sorted(roles, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name.lower().replace('_', ' '))}\b", q):
            return name
    for role in ("guard", "primary"):
        if any(re.search(rf"\b{w}\b", q) for w in _SET_WORDS[role]):
            return next((n for n, r in roles.items() if r == role), None)
    words = q.split()
    for name in roles:  # a word of the set's name, French or English form: "général" -> general_test
        parts = [p for p in re.split(r"[_\W]+", name.lower()) if len(p) >= 4 and p not in _SET_NOISE]
        if any(w.startswith(p[:5]) for p in parts for w in words):
            return name
    return None
