"""A playbook fact as a sentence with its citation: "which GPU on Modal for large-v3?" ->
the rule's one-sentence answer in the question's language, its playbook file#section.

Candidates are the rules (their answer, title, message, fix), the known failures (title,
diagnosis, fix) and the prose sections, ranked by BM25 on the question's topic words. Text
taken from a block never shows a raw ``{placeholder}``. Pure."""

from __future__ import annotations

import math
import re
from typing import Any

from agent.playbooks.parse import PlaybookSet
from agent.playbooks.retrieval import bm25, fold, prose, tokens

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, params: dict[str, Any]) -> str:
    """Fill ``{name}`` from a block's params (a one-entry mapping gives its value: fallback
    {H200: H100} -> H100); a name with no value is dropped, with a leading ``{stage}:``."""
    text = re.sub(r"^\{stage\}:\s*", "", template)

    def value(m: re.Match) -> str:
        v = params.get(m.group(1))
        if isinstance(v, dict) and v:
            return ", ".join(str(x) for x in v.values())
        if isinstance(v, list):
            return ", ".join(map(str, v))
        return str(v) if v is not None and not isinstance(v, bool) else "…"

    return _PLACEHOLDER.sub(value, text)


def terms(text: str) -> list[str]:
    """Tokens with crude plural/tense folding (hangs, hanging -> hang) and version numbers kept
    whole (kernel 4.4.0)."""
    out = []
    for t in tokens(text):
        for suffix in ("ing", "es", "ed", "s"):
            if len(t) > len(suffix) + 2 and t.endswith(suffix):
                t = t[: -len(suffix)]
                break
        out.append(t)
    return out + re.findall(r"\d+(?:\.\d+)+", fold(text))


def _candidates(book: PlaybookSet) -> list[dict[str, Any]]:
    out = []
    for r in book.rules:
        heading = r.source.section if r.source else ""
        words = " ".join([r.title, *r.answer.values(), fill(r.message, r.params), fill(r.fix, r.params), r.rationale,
                          heading, heading])
        fields = {term for name in re.findall(r"\b[a-z][a-z_]*(?:\.[a-z_]+)+|\b[a-z]+(?:_[a-z]+)+", r.fix)
                  for term in terms(" ".join(re.split(r"[._]", name.rsplit(".", 1)[-1])))}
        out.append({"type": "rule", "id": r.id, "title": r.title, "answer": dict(r.answer), "fields": fields,
                    "text": {"fr": f"{r.title} : {fill(r.fix, r.params)}"},
                    "cite": r.source.cite if r.source else None, "section": heading, "words": words})
    for f in book.failures:
        heading = f.source.section if f.source else ""
        sentence = f"{f.title} : {fill(f.diagnosis, {})} {fill(f.fix, {})}"
        out.append({"type": "failure", "id": f.id, "title": f.title, "answer": {}, "text": {"fr": sentence},
                    "cite": f.source.cite if f.source else None, "section": heading,
                    "words": " ".join([f.title, f.diagnosis, f.fix, heading])})
    for s in book.sections:
        body = prose(s, limit=400)
        if s.level < 2 or not body:
            continue
        out.append({"type": "section", "id": s.anchor, "title": s.heading, "answer": {},
                    "text": {"fr": body}, "cite": s.cite, "section": s.heading,
                    "words": " ".join([s.heading, s.heading, body])})
    return out


# Below this share of the question's words (IDF-weighted) found in the best match, the answer is
# "found nothing" with the closest topics. Measured (docs/chat.md) on the 36 playbook questions
# of bench/chat.py and bench/chat_heldout.py: the lowest answerable one scores 0.25; of seven
# off-topic questions six score 0 and "how to install docker on windows" 0.28 (a miss).
RELEVANCE_THRESHOLD = 0.2


def coverage(doc: list[str], query: list[str], docs: list[list[str]]) -> float:
    """The IDF-weighted share of the query's terms that the document contains (1: all of them);
    a term no document has weighs as much as the rarest known term."""
    n = len(docs) or 1
    df: dict[str, int] = {}
    for term in set(query):
        df[term] = sum(1 for d in docs if term in d)
    def idf(term: str) -> float:
        # a word no playbook has is often a function word ("combien", "mettre"): half the rarest weight
        return math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5)) if df[term] else 0.5 * math.log(1 + (n - 0.5) / 1.5)
    total = sum(idf(t) for t in set(query))
    present = set(doc)
    return sum(idf(t) for t in set(query) if t in present) / total if total else 0.0


_INDEX: dict[int, tuple[PlaybookSet, list[dict[str, Any]], list[list[str]]]] = {}


def _index(book: PlaybookSet) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Candidates and their terms, built once per playbook set."""
    known = _INDEX.get(id(book))
    if known is None or known[0] is not book:
        items = _candidates(book)
        known = (book, items, [terms(i["words"]) for i in items])
        _INDEX.clear()
        _INDEX[id(book)] = known
    return known[1], known[2]


def answer_fact(book: PlaybookSet, question: str, lang: str, k: int = 2) -> dict[str, Any]:
    """The best-matching playbook fact, as {"answer", "cite", "title", "id", "type", "also"}."""
    items, docs = _index(book)
    query = terms(question)
    scores = bm25(docs, query)
    # A rule's written answer beats a section that merely mentions the same words, and a rule
    # whose fix sets the setting the question names ("which GPU" -> backend.gpu) beats one
    # that only mentions it.
    asked = set(query)

    def weight(item: dict[str, Any]) -> float:
        w = 1.3 if item["answer"] else 1.0
        w *= 1.3 if asked & item.get("fields", set()) else 1.0
        title = item.setdefault("title_terms", set(terms(item["title"])))
        return w * (1.2 if asked & title else 1.0)  # the title says what a block is about

    ranked = sorted(((s * weight(i), n, i) for n, (s, i) in enumerate(zip(scores, items)) if s > 0),
                    key=lambda x: (-x[0], x[1]))
    relevance = coverage(docs[ranked[0][1]], query, docs) if ranked else 0.0
    if relevance < RELEVANCE_THRESHOLD:
        closest = list(dict.fromkeys(i["section"] for _, _, i in ranked if i["section"]))[:3]
        closest = closest or [s.heading for s in book.sections if s.level == 1][:6]  # nothing shared: what exists
        return {"ok": True, "found": False, "results": [], "closest": closest, "relevance": round(relevance, 3),
                "sources": [], "notes": ["no match"]}
    results = []
    for score, _, item in ranked[: k + 2]:
        if results and score < ranked[0][0] * 0.6:
            break
        if any(r["cite"] == item["cite"] and r["type"] == item["type"] for r in results):
            continue
        sentence = item["answer"].get(lang)
        translated = bool(sentence) or lang == "fr"
        results.append({"id": item["id"], "type": item["type"], "title": item["title"], "score": round(score, 3),
                        "answer": sentence or item["answer"].get("fr") or item["text"]["fr"],
                        "in_question_language": translated, "cite": item["cite"], "section": item["section"]})
        if len(results) == k:
            break
    return {"ok": True, "found": True, "results": results, "relevance": round(relevance, 3),
            "sources": [{"kind": "playbook", "ref": r["cite"], "label": r["section"]} for r in results if r["cite"]],
            "notes": []}
