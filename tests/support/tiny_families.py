"""Tiny real artefacts for the token_cls and sft tests: random-weight models built from
configs with tokenizers trained here (no download), small data files and pipeline files."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

PII_ROWS = [
    {"text": "Call Ana Lopez at ana@example.org today.", "spans": [{"start": 5, "end": 14, "label": "PER"},
                                                                   {"start": 18, "end": 33, "label": "EMAIL"}]},
    {"tokens": ["Écrivez", "à", "jean.dupont@exemple.fr", "merci", "."], "tags": ["O", "O", "B-EMAIL", "O", "O"]},
    {"tokens": ["Marie", "Curie", "habite", "ici"], "tags": ["B-PER", "I-PER", "O", "O"]},
    {"text": "Nothing personal in this sentence.", "spans": []},
]

CHAT_ROWS = [
    {"messages": [{"role": "system", "content": "Tu réponds sur le catalogue."},
                  {"role": "user", "content": "Qu'est-ce que ORCHIS ?"},
                  {"role": "assistant", "content": "ORCHIS gère les congés."}]},
    {"messages": [{"role": "user", "content": "Qui héberge ORCHIS ?"},
                  {"role": "assistant", "content": "Le datacenter de Lille."}]},
    {"messages": [{"role": "user", "content": "Qui pilote PLANEO ?"},
                  {"role": "assistant", "content": "Karim Benali."}]},
]

DOCUMENT = """# Catalogue de test

Un petit catalogue pour les tests.

## ORCHIS

ORCHIS est l'application de gestion des congés. Elle date de 2016.

- **Responsable** : Claire Moreau
- **Hébergement** : datacenter de Lille
- Technologie : Java et PostgreSQL

## PLANEO

PLANEO est l'outil de planification des interventions.

- **Responsable** : Karim Benali
- **Couleur préférée** : bleu

**Glossaire** : un terme défini en une ligne.
"""


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def build_tiny_bert(out: Path) -> Path:
    """A 1-layer BertModel (hidden 16) + a WordPiece tokenizer trained on a few sentences."""
    if (out / "config.json").exists():
        return out
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    texts = [r.get("text") or " ".join(r["tokens"]) for r in PII_ROWS] * 3 + [
        "Please send the invoice to the address above.", "Le colis est livré au 12 rue de la Paix, Paris."]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials, show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                      sep_token="[SEP]", mask_token="[MASK]")
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(wrapped), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    out.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(out)
    wrapped.save_pretrained(out)
    return out


def build_tiny_chat(out: Path) -> Path:
    """A 1-layer Llama (hidden 16) with a byte-level BPE tokenizer and a ChatML template."""
    if (out / "config.json").exists():
        return out
    from core.stage.tiny_llama import build_model, build_tokenizer

    texts = [m["content"] for r in CHAT_ROWS for m in r["messages"]] + DOCUMENT.splitlines()
    tok = build_tokenizer(texts * 2, vocab_size=400)
    model = build_model(tok, hidden=16, layers=1, heads=2, intermediate=32, max_positions=128)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _jsonl(path: Path) -> dict:
    return {"kind": "jsonl", "path": str(path)}


def _write_pipeline(path: Path, name: str, family: str, base_model: str, defaults: dict, stages: list[dict],
                    stage_overrides: dict) -> Path:
    """One-step CPU stages (local backend) of `family`; every stage gets `stage_overrides`."""
    defaults = {**defaults, "backend": {"kind": "local", "device": "cpu"}}
    defaults["training"] = {"max_steps": 1, "per_device_train_batch_size": 2, "learning_rate": 1e-2,
                            "logging_steps": 1, "save_steps": 1, **defaults.get("training", {})}
    for stage in stages:
        stage.update(stage_overrides)
    plan = {"name": name, "family": family, "base_model": base_model, "defaults": defaults, "stages": stages}
    path.write_text(yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def token_cls_pipeline(path: Path, base_model: str, train: Path, test: Path, stages: int = 2,
                       name: str = "tiny-pii", **stage_overrides) -> Path:
    defaults = {"token_cls": {"max_length": 32}}
    all_stages = [
        {"name": "first", "output_name": f"{name}-first", "train": _jsonl(train),
         "evals": [{"name": "test", "role": "primary", "data": _jsonl(test)}]},
        {"name": "second", "output_name": f"{name}-second", "train": _jsonl(train),
         "evals": [{"name": "test", "role": "primary", "data": _jsonl(test)},
                   {"name": "again", "role": "guard", "max_regression": 1.0, "data": _jsonl(test)}]},
    ]
    return _write_pipeline(path, name, "token_cls", base_model, defaults, all_stages[:stages], stage_overrides)


def sft_pipeline(path: Path, base_model: str, train: Path, test: Path, stages: int = 2, name: str = "tiny-sft",
                 **stage_overrides) -> Path:
    defaults = {"generation": {"max_new_tokens": 4, "batch_size": 4},
                "training": {"max_length": 64, "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]}}}
    all_stages = [
        {"name": "facts", "output_name": f"{name}-facts", "train": _jsonl(train),
         "evals": [{"name": "test", "role": "primary", "data": _jsonl(test)}]},
        {"name": "more", "output_name": f"{name}-more", "train": _jsonl(train),
         "evals": [{"name": "test", "role": "primary", "data": _jsonl(test)}]},
    ]
    return _write_pipeline(path, name, "sft", base_model, defaults, all_stages[:stages], stage_overrides)


def run_pipeline_stages(pipeline: Path, out: Path, cache: Path) -> list:
    """Run every stage in-process through the stage runner, chaining model folders."""
    from core.config import load_pipeline
    from core.plan import plan, upstream_of
    from core.stage.runner import run_stage

    results = []
    for spec in plan(load_pipeline(pipeline), code_version="dev", pipeline_file=str(pipeline)):
        upstream = upstream_of(spec.base_model)
        if upstream:
            spec = spec.with_base_model(str(out / upstream / "model"))
        results.append(run_stage(spec, out / spec.name, cache))
    return results


class ScriptedChat:
    """A stdlib HTTP server on 127.0.0.1 answering POST /v1/chat/completions with scripted replies."""

    def __init__(self, replies: list[str]):
        self.replies = list(replies)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                content = outer.replies.pop(0) if outer.replies else "[]"
                payload = json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
