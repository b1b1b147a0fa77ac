"""Dataset formats: token-classification JSONL (BIO or spans) and chat messages, with errors
that name the line and the reason."""

from __future__ import annotations

import json

import pytest

from core.formats.jsonl import DatasetError
from core.formats.messages import load_messages, split_examples, split_part, validate_messages
from core.formats.token_cls import (
    label_counts,
    load_examples,
    normalise_label_list,
    spans_to_tags,
    tags_to_spans,
    words_with_offsets,
)
from tiny_families import CHAT_ROWS, PII_ROWS, write_jsonl


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- token classification ---------------------------------------------------------------------
def test_words_keep_emails_and_split_edge_punctuation():
    words = [w for w, _s, _e in words_with_offsets('Écrivez à ana.lopez@example.org, (merci) « Jean-Pierre ».')]
    assert words == ["Écrivez", "à", "ana.lopez@example.org", ",", "(", "merci", ")", "«", "Jean-Pierre", "»", "."]


def test_spans_become_bio_tags_and_back():
    text = "Call Ana Lopez at ana@example.org today."
    spans = [(5, 14, "PER"), (18, 33, "EMAIL")]
    tokens, tags = spans_to_tags(text, spans)
    assert tokens == ["Call", "Ana", "Lopez", "at", "ana@example.org", "today", "."]
    assert tags == ["O", "B-PER", "I-PER", "O", "B-EMAIL", "O", "O"]
    assert [(s["start"], s["end"], s["label"]) for s in tags_to_spans(text, tags)] == spans


def test_both_shapes_load(tmp_path):
    examples = load_examples(write_jsonl(tmp_path / "d.jsonl", PII_ROWS))
    assert len(examples) == 4
    assert examples[0].tags[:3] == ["O", "B-PER", "I-PER"] and examples[0].text.startswith("Call")
    assert label_counts(examples) == {"EMAIL": 2, "PER": 2}


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [
        json.dumps(PII_ROWS[0]),
        "{not json",
        json.dumps({"tokens": ["a", "b"], "tags": ["O"]}),
        json.dumps({"tokens": ["a"], "tags": ["PER"]}),
        "",
        json.dumps({"text": "abc def", "spans": [{"start": 0, "end": 5, "label": "X"}, {"start": 4, "end": 7, "label": "Y"}]}),
        json.dumps({"text": "abc", "spans": [{"start": 2, "end": 9, "label": "X"}]}),
        json.dumps({"sentence": "no known keys"}),
        json.dumps({"tokens": ["a"], "ner_tags": [3]}),
    ])
    with pytest.raises(DatasetError) as err:
        load_examples(path)
    lines = {line for line, _ in err.value.problems}
    assert lines == {2, 3, 4, 6, 7, 8, 9}
    text = str(err.value)
    assert "line 2: not valid JSON" in text
    assert "line 3: 2 tokens but 1 tags" in text
    assert "line 4: tags[0] is 'PER'" in text
    assert "line 6: spans overlap" in text
    assert "line 7: spans[0]: [2, 9) is outside the text" in text
    assert "line 9: 'ner_tags' must be a list of strings (integer ids need the label list" in text
    assert "hint:" in text


def test_missing_and_empty_files_say_so(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        load_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="empty"):
        load_examples(write_lines(tmp_path / "empty.jsonl", [""]))


def test_label_lists_accept_types_or_tags():
    assert normalise_label_list(["PER", "EMAIL"]) == ["O", "B-PER", "I-PER", "B-EMAIL", "I-EMAIL"]
    assert normalise_label_list(["O", "B-PER", "I-PER"]) == ["O", "B-PER", "I-PER"]


# -- chat messages ----------------------------------------------------------------------------
def test_valid_messages_load(tmp_path):
    examples = load_messages(write_jsonl(tmp_path / "chat.jsonl", CHAT_ROWS))
    assert len(examples) == 3
    first = examples[0]
    assert first.question == "Qu'est-ce que ORCHIS ?" and first.answer == "ORCHIS gère les congés."
    assert [m["role"] for m in first.prompt] == ["system", "user"] and first.completion[0]["role"] == "assistant"


@pytest.mark.parametrize("row,reason", [
    ({"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]},
     "messages[1].role is 'bot'; expected one of system, user, assistant"),
    ({"messages": [{"role": "user", "content": "q"}]}, "the last message is 'user'"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}, "messages[1].content is empty"),
    ({"prompt": "q", "completion": "a"}, "missing 'messages' (a prompt/completion pair"),
    ({"messages": []}, "'messages' must be a non-empty list"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q2"},
                   {"role": "assistant", "content": "a"}]}, "two 'user' messages in a row"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},
                   {"role": "assistant", "content": "a"}]}, "only the first message may be 'system'"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}, "no 'user' message"),
    ({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}, "content must be a string"),
])
def test_message_rules(row, reason):
    assert any(reason in p for p in validate_messages(row)), validate_messages(row)


def test_bad_message_lines_are_numbered_instead_of_cannot_read(tmp_path):
    path = write_lines(tmp_path / "chat.jsonl", [
        json.dumps(CHAT_ROWS[0], ensure_ascii=False),
        json.dumps({"messages": [{"role": "user", "content": "q"}]}),
        "[1, 2",
        json.dumps(CHAT_ROWS[1], ensure_ascii=False),
        json.dumps({"messages": [{"role": "human", "content": "q"}, {"role": "assistant", "content": "a"}]}),
    ])
    with pytest.raises(DatasetError) as err:
        load_messages(path)
    text = str(err.value)
    assert text.startswith(f"{path}: 3 problem(s)")
    assert "line 2: the last message is 'user'" in text
    assert "line 3: not valid JSON" in text
    assert "line 5: messages[0].role is 'human'" in text


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"messages": [{"role": "user", "content": "é"}]}\n'.encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_messages(path)


def test_split_is_seeded_stable_and_about_80_10_10(tmp_path):
    from core.formats.messages import ChatExample

    examples = [ChatExample(str(i), [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}])
                for i in range(2000)]
    parts = split_examples(examples, seed=42)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sum(sizes.values()) == 2000
    assert 1540 <= sizes["train"] <= 1660 and 160 <= sizes["val"] <= 240 and 160 <= sizes["test"] <= 240
    assert split_examples(examples, seed=42) == parts  # deterministic
    assert split_examples(examples[:100], seed=42)["test"] == [e for e in parts["test"] if int(e.id) < 100]  # stable
    assert split_examples(examples, seed=7) != parts
    assert split_part("x", 1) in ("train", "val", "test")
