"""Training-set generation from documents (rule-based, augmented, llm-based against a local
scripted Chat Completions server) and the demo data generators."""

from __future__ import annotations

import json

import pytest

from core.formats.messages import load_messages
from core.formats.token_cls import load_examples
from core.qa import generate_training, pairs_for, parse_document
from core.llm import LlmClient, LlmError
from core.qa.llm_generation import generation_client, parse_pairs
from tiny_families import DOCUMENT, ScriptedChat


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "catalogue.md"
    path.write_text(DOCUMENT, encoding="utf-8")
    return path


def test_markdown_sections_definitions_and_facts(document):
    title, sections = parse_document(document)
    assert title == "Catalogue de test"
    names = [s.name for s in sections]
    assert names == ["ORCHIS", "PLANEO", "Glossaire"]
    orchis = sections[0]
    assert orchis.definition == "ORCHIS est l'application de gestion des congés."
    assert orchis.facts == [("Responsable", "Claire Moreau"), ("Hébergement", "datacenter de Lille"),
                            ("Technologie", "Java et PostgreSQL")]
    assert sections[2].definition == "un terme défini en une ligne."


def test_jsonl_document(tmp_path):
    path = tmp_path / "apps.jsonl"
    path.write_text(json.dumps({"name": "VELIA", "description": "VELIA gère les frais. Autre phrase.",
                                "responsable": "Sophie Lambert", "annee": 2014}) + "\n", encoding="utf-8")
    _title, sections = parse_document(path)
    assert sections[0].definition == "VELIA gère les frais."
    assert sections[0].facts == [("responsable", "Sophie Lambert"), ("annee", "2014")]
    path.write_text('{"description": "no name"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: no name"):
        parse_document(path)


def test_rule_based_one_question_per_item_augmented_several(document):
    _t, sections = parse_document(document)
    rule, report = generate_training(sections, "rule-based")
    assert report.available == len(rule) == 3 + 1 + 2 + 1 + 1  # ORCHIS def+3 facts, PLANEO def+2, glossary def
    qa = {(ex.question, ex.answer) for ex in rule}
    assert ("Qu'est-ce que ORCHIS ?", "ORCHIS est l'application de gestion des congés.") in qa
    assert ("Qui est le responsable de ORCHIS ?", "Claire Moreau") in qa
    assert ("Quelle est la valeur « Couleur préférée » de PLANEO ?", "bleu") in qa  # generic template
    assert all(ex.messages[0]["role"] == "system" for ex in rule)
    augmented, _ = generate_training(sections, "augmented")
    assert len(augmented) > 3 * len(rule)
    assert len({ex.question for ex in augmented if ex.answer == "Claire Moreau"}) == len(pairs_for(sections[0], "fr", True)) - 6 - 10


def test_count_samples_with_seed_and_warns_when_short(document):
    _t, sections = parse_document(document)
    a, _ = generate_training(sections, "augmented", count=10, seed=1)
    b, _ = generate_training(sections, "augmented", count=10, seed=1)
    assert len(a) == 10 and [e.id for e in a] == [e.id for e in b]
    _, report = generate_training(sections, "rule-based", count=100)
    assert "augmented gives several phrasings" in report.warnings[0]
    english, _ = generate_training(sections, "rule-based", language="en", system="")
    assert english[0].messages[0] == {"role": "user", "content": "What is ORCHIS?"}
    with pytest.raises(ValueError, match="unknown method"):
        generate_training(sections, "magic")


# -- llm-based, against a scripted OpenAI-compatible server -------------------------------------
def test_llm_based_generation_through_the_openai_client(document):
    _t, sections = parse_document(document)
    replies = [
        '```json\n[{"question": "Que gère ORCHIS ?", "answer": "Les congés."}, '
        '{"question": "Qui est responsable d\'ORCHIS ?", "answer": "Claire Moreau"}]\n```',
        "Désolé, je ne peux pas.",  # unusable: skipped with a warning
        'Voici: [{"question": "Glossaire ?", "answer": "Un terme."}, {"oops": 1}]',
    ]
    with ScriptedChat(replies) as server:
        llm = LlmClient.from_env(server.base_url, "scripted-model", api_key="k", timeout_s=10)
        examples, report = generate_training(sections, "llm-based", count=6, llm=llm)
    assert [(e.question, e.answer) for e in examples] == [
        ("Que gère ORCHIS ?", "Les congés."), ("Qui est responsable d'ORCHIS ?", "Claire Moreau"),
        ("Glossaire ?", "Un terme.")]
    assert "PLANEO" in report.warnings[0] and "asked for 6 examples" in report.warnings[1]
    assert len(server.requests) == 3
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer k"
    assert first["body"]["model"] == "scripted-model"
    assert "exactement 2 paires" in first["body"]["messages"][0]["content"]
    assert "Claire Moreau" in first["body"]["messages"][1]["content"]


def test_llm_based_fails_clearly_when_nothing_usable_or_unreachable(document):
    _t, sections = parse_document(document)
    with ScriptedChat(["no json"] * 3) as server:
        with pytest.raises(LlmError, match="no usable question/answer pair"):
            generate_training(sections, "llm-based", llm=LlmClient("m", server.base_url, timeout_s=5))
    with pytest.raises(LlmError, match="failed") as failed:
        generate_training(sections, "llm-based",
                          llm=LlmClient("m", "http://127.0.0.1:9/v1", api_key="sk-secret-key-0123", timeout_s=2,
                                        max_retries=0))
    assert not failed.value.misconfigured and "sk-secret-key-0123" not in str(failed.value)


def test_llm_config_error_says_what_to_set(monkeypatch):
    for var in ("PALIER_LLM_BASE_URL", "PALIER_LLM_API_KEY", "PALIER_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(LlmError, match="OPENAI_BASE_URL.*--llm-base-url") as missing:
        generation_client()
    assert missing.value.misconfigured
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("PALIER_LLM_MODEL", "m")
    client = generation_client()
    assert (client.model, client.base_url) == ("m", "http://127.0.0.1:1/v1")
    assert generation_client("http://127.0.0.1:2/v1", "other").base_url == "http://127.0.0.1:2/v1"  # options win
    # The retired name is refused, not ignored: it says what to set instead.
    monkeypatch.setenv("PALIER_LLM_BASE_URL", "http://127.0.0.1:3/v1")
    with pytest.raises(LlmError, match="PALIER_LLM_BASE_URL is no longer read: set OPENAI_BASE_URL instead"):
        generation_client()


def test_parse_pairs_tolerates_prose_and_rejects_garbage():
    assert parse_pairs('Sure! [{"question": "q", "answer": "a"}] Hope it helps.') == [{"question": "q", "answer": "a"}]
    with pytest.raises(ValueError):
        parse_pairs('{"question": "q"}')


# -- demo generators ------------------------------------------------------------------------------
def test_pii_generator_spans_match_values_and_pools_are_disjoint(tmp_path):
    from core.demo.datasets import generate
    from core.demo.pii import TEMPLATES

    train = generate("pii_sentences", {"language": "mixed", "count": 60, "pool": "train", "seed": 1}, tmp_path)
    rows = [json.loads(line) for line in train.read_text(encoding="utf-8").splitlines()]
    assert {r["language"] for r in rows} == {"en", "fr"}
    for row in rows:
        for span in row["spans"]:
            assert row["text"][span["start"]:span["end"]].strip() == row["text"][span["start"]:span["end"]]
    examples = load_examples(train)
    assert len(examples) == 60
    for lang in ("en", "fr"):
        assert not set(TEMPLATES[lang]["train"]) & set(TEMPLATES[lang]["test"])
    again = generate("pii_sentences", {"language": "mixed", "count": 60, "pool": "train", "seed": 1}, tmp_path)
    assert again == train  # cached by parameters


def test_sft_catalogue_generator_writes_valid_messages(tmp_path, document):
    from core.demo.datasets import generate

    parts = {part: generate("sft_catalogue", {"document": str(document), "method": "augmented", "part": part},
                            tmp_path) for part in ("train", "test")}
    train, test = load_messages(parts["train"]), load_messages(parts["test"])
    assert train and test and not {e.id for e in train} & {e.id for e in test}
