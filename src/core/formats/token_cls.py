"""Token-classification data: JSON Lines of words + BIO tags, or texts + character spans.

Accepted line shapes (extra keys such as ``id`` and ``language`` are kept, others ignored):

    {"tokens": ["Écrivez", "à", "ana@example.org"], "tags": ["O", "O", "B-EMAIL"]}
        ("labels" or "ner_tags" may stand for "tags"; tags are IOB2 strings)
    {"text": "Écrivez à ana@example.org", "spans": [{"start": 10, "end": 25, "label": "EMAIL"}]}
        ("entities" may stand for "spans"; a span may also be [start, end, label];
         end is exclusive, offsets count Python characters)

Texts are split into words by ``words_with_offsets``: whitespace, then leading ( [ { « " ' and
trailing . , ; : ! ? ) ] } » " ' characters become words of their own (an e-mail, an IBAN
group or "Jean-Pierre" stays one word). A word takes a span's label when it overlaps the span;
the first such word gets ``B-``, the next ones ``I-``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.formats.jsonl import DatasetError, read_jsonl

TAG_KEYS = ("tags", "labels", "ner_tags")
SPAN_KEYS = ("spans", "entities")
_TAG = re.compile(r"^(O|[BI]-[^\s]+)$")
_LEADING = "([{«\"'“‘"
_TRAILING = ".,;:!?)]}»\"'”’"
HINT = ('each line: {"tokens": [...], "tags": ["O", "B-PER", ...]} or '
        '{"text": "...", "spans": [{"start": 0, "end": 4, "label": "PER"}]} (docs/families.md)')


@dataclass(frozen=True)
class TokenExample:
    id: str
    tokens: list[str]
    tags: list[str]
    text: str | None = None
    language: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def entity_types(self) -> set[str]:
        return {t[2:] for t in self.tags if t != "O"}


def words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    words: list[tuple[str, int, int]] = []
    for match in re.finditer(r"\S+", text):
        start, end = match.start(), match.end()
        lead: list[tuple[int, int]] = []
        trail: list[tuple[int, int]] = []
        while start < end and text[start] in _LEADING:
            lead.append((start, start + 1))
            start += 1
        while end > start and text[end - 1] in _TRAILING:
            trail.insert(0, (end - 1, end))
            end -= 1
        pieces = lead + ([(start, end)] if end > start else []) + trail
        words.extend((text[s:e], s, e) for s, e in pieces)
    return words


def spans_to_tags(text: str, spans: list[tuple[int, int, str]]) -> tuple[list[str], list[str]]:
    words = words_with_offsets(text)
    tags = ["O"] * len(words)
    for start, end, label in sorted(spans):
        first = True
        for i, (_w, ws, we) in enumerate(words):
            if ws < end and start < we:
                tags[i] = ("B-" if first else "I-") + label
                first = False
    return [w for w, _s, _e in words], tags


def tags_to_spans(text: str, tags: list[str]) -> list[dict[str, Any]]:
    """Inverse of ``spans_to_tags`` for a text split by ``words_with_offsets``."""
    words = words_with_offsets(text)
    out: list[dict[str, Any]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        label = tag[2:]
        if tag.startswith("B-") or not out or out[-1]["label"] != label or out[-1]["_last"] != i - 1:
            out.append({"start": words[i][1], "end": words[i][2], "label": label, "_last": i})
        else:
            out[-1]["end"], out[-1]["_last"] = words[i][2], i
    for span in out:
        del span["_last"]
    return out


def _parse_spans(raw: Any, text: str) -> tuple[list[tuple[int, int, str]], list[str]]:
    problems: list[str] = []
    spans: list[tuple[int, int, str]] = []
    if not isinstance(raw, list):
        return [], [f"spans must be a list, got {type(raw).__name__}"]
    for j, item in enumerate(raw):
        if isinstance(item, dict):
            start, end, label = item.get("start"), item.get("end"), item.get("label", item.get("type"))
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            start, end, label = item
        else:
            problems.append(f"spans[{j}] must be {{'start', 'end', 'label'}} or [start, end, label]")
            continue
        if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
            problems.append(f"spans[{j}]: start and end must be integers, got {start!r}, {end!r}")
            continue
        if not (0 <= start < end <= len(text)):
            problems.append(f"spans[{j}]: [{start}, {end}) is outside the text (length {len(text)}) or empty")
            continue
        if not isinstance(label, str) or not label.strip() or " " in label:
            problems.append(f"spans[{j}]: label must be a non-empty word such as 'EMAIL', got {label!r}")
            continue
        spans.append((start, end, label))
    ordered = sorted(spans)
    for a, b in zip(ordered, ordered[1:]):
        if b[0] < a[1]:
            problems.append(f"spans overlap: [{a[0]}, {a[1]}) {a[2]} and [{b[0]}, {b[1]}) {b[2]}")
    return spans, problems


def parse_example(obj: Any, default_id: str) -> tuple[TokenExample | None, list[str]]:
    """One line -> (example, problems). Problems name the field and the fix."""
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {type(obj).__name__}"]
    ex_id = str(obj.get("id", default_id))
    language = obj.get("language") if isinstance(obj.get("language"), str) else None
    extra = {k: v for k, v in obj.items() if k in ("source",)}
    tag_key = next((k for k in TAG_KEYS if k in obj), None)
    span_key = next((k for k in SPAN_KEYS if k in obj), None)
    if "tokens" in obj:
        tokens = obj["tokens"]
        if tag_key is None:
            return None, ["has 'tokens' but no tags: add 'tags' (one IOB2 tag per token)"]
        tags = obj[tag_key]
        problems = []
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t.strip() for t in tokens):
            problems.append("'tokens' must be a list of non-empty strings")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            hint = " (integer ids need the label list: convert them to strings such as 'B-PER')" if isinstance(tags, list) else ""
            problems.append(f"'{tag_key}' must be a list of strings{hint}")
        if problems:
            return None, problems
        if len(tokens) != len(tags):
            return None, [f"{len(tokens)} tokens but {len(tags)} {tag_key}: one tag per token"]
        if not tokens:
            return None, ["'tokens' is empty"]
        bad = [(i, t) for i, t in enumerate(tags) if not _TAG.match(t)]
        if bad:
            i, t = bad[0]
            return None, [f"{tag_key}[{i}] is {t!r}: expected 'O', 'B-<TYPE>' or 'I-<TYPE>' (IOB2)"
                          + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")]
        return TokenExample(ex_id, list(tokens), list(tags), None, language, extra), []
    if "text" in obj:
        text = obj["text"]
        if not isinstance(text, str) or not text.strip():
            return None, ["'text' must be a non-empty string"]
        if span_key is None:
            return None, ["has 'text' but no 'spans': add \"spans\": [] for a sentence without entities"]
        spans, problems = _parse_spans(obj[span_key], text)
        if problems:
            return None, problems
        tokens, tags = spans_to_tags(text, spans)
        if not tokens:
            return None, ["'text' holds no word"]
        return TokenExample(ex_id, tokens, tags, text, language, extra), []
    return None, [f"needs 'tokens' + 'tags' or 'text' + 'spans'; found keys {sorted(obj)}"]


def load_examples(path: str | Path, max_samples: int | None = None) -> list[TokenExample]:
    """Read and validate a whole file; raise ``DatasetError`` listing every bad line."""
    p = Path(path)
    examples: list[TokenExample] = []
    problems: list[tuple[int, str]] = []
    for line, obj in read_jsonl(p):
        if isinstance(obj, DatasetError):
            problems.extend(obj.problems)
            continue
        example, errors = parse_example(obj, f"{p.name}:{line}")
        problems.extend((line, e) for e in errors)
        if example is not None:
            examples.append(example)
    if problems:
        raise DatasetError(p, problems, HINT)
    if not examples:
        raise DatasetError(p, [(0, "no example: the file is empty")], HINT)
    return examples[:max_samples] if max_samples else examples


def label_counts(examples: list[TokenExample]) -> dict[str, int]:
    """Entities per type (B- tags, plus I- tags that open an entity)."""
    counts: Counter = Counter()
    for ex in examples:
        previous = "O"
        for tag in ex.tags:
            if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
                counts[tag[2:]] += 1
            previous = tag
    return dict(sorted(counts.items()))


def bio_labels(types: list[str]) -> list[str]:
    """``["PER", "EMAIL"]`` -> ``["O", "B-PER", "I-PER", "B-EMAIL", "I-EMAIL"]`` (types in the given order)."""
    labels = ["O"]
    for t in types:
        labels += [f"B-{t}", f"I-{t}"]
    return labels


def normalise_label_list(labels: list[str]) -> list[str]:
    """Config ``labels`` may list types (``PER``) or full tags (``B-PER``); return full BIO tags, ``O`` first."""
    if all(_TAG.match(x) for x in labels) and any(x != "O" for x in labels):
        types: list[str] = []
        for x in labels:
            if x != "O" and x[2:] not in types:
                types.append(x[2:])
        return bio_labels(types)
    return bio_labels([x for x in labels if x != "O"])
