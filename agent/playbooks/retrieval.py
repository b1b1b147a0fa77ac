"""Keyword retrieval over playbook sections (BM25, accent-insensitive, French + English). Pure."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

from agent.playbooks.models import Section

STOPWORDS = set(
    """le la les un une des du de d l au aux et ou en dans sur pour par avec sans que qui quoi quel quelle
    est sont a ai as ce cet cette ces se sa son ses je tu il elle on nous vous ils elles ne pas plus
    the a an of to in on for with is are be was what why how do does did i you it this that and or""".split()
)


def fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()


def tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9_]+", fold(text)) if t not in STOPWORDS and len(t) > 1]


def bm25(docs: list[list[str]], query: list[str]) -> list[float]:
    """BM25 score of each tokenised document for the query tokens."""
    if not query or not docs:
        return [0.0] * len(docs)
    n = len(docs)
    avg = sum(len(d) for d in docs) / n or 1.0
    df = Counter(t for d in docs for t in set(d))
    scores = []
    for doc in docs:
        tf = Counter(doc)
        score = 0.0
        for term in set(query):
            if term not in tf:
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            f = tf[term]
            score += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * len(doc) / avg))
        scores.append(round(score, 3))
    return scores


def search_sections(sections: list[Section], query: str, k: int = 3) -> list[tuple[Section, float]]:
    docs = [tokens(s.heading) * 3 + tokens(s.text) for s in sections]
    scored = [(s, score) for s, score in zip(sections, bm25(docs, tokens(query))) if score > 0]
    scored.sort(key=lambda x: x[1], reverse=True)
    return scored[:k]


def prose(section: Section, limit: int = 600) -> str:
    """The section's prose without its fenced blocks, for quoting in an answer."""
    text = re.sub(r"```.*?```", "", section.text, flags=re.DOTALL)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
