"""Build and pre-train the SFT demo's base model, once (a few minutes on this CPU).

    python scripts/build_tiny_chat_model.py --out models/tiny-chat-fr

A Llama-style causal LM from a config (4 layers, hidden 128, ~0.94M parameters, 3.7 MB) with a
byte-level BPE tokenizer trained here and a ChatML chat template. It is pre-trained (all
weights) on question/answer chats about an *invented* catalogue of 60 applications that
shares no name, person or purpose with the demo's catalogue (data/catalogue/): like a small
instruct model, it knows the question/answer format and answers plausibly, but knows none of
the demo's facts. The SFT demo's LoRA stages then teach it those facts.

Deterministic up to CPU floating-point nondeterminism (fixed seeds, single thread). The result
is shipped in the repository; the script prints its held-out scores (its own catalogue) and
its baseline on the demo catalogue.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch

from core.demo import corpus
from core.demo.catalogue import pretraining_sections
from core.formats.messages import split_examples
from core.metrics.sft import answer_metrics
from core.qa import generate_training, parse_document
from core.stage.sft_infer import answer
from core.stage.tiny_llama import build_model, build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
DEMO_DOCS = [ROOT / "data/catalogue/catalogue_facts.md", ROOT / "data/catalogue/catalogue_extended.md"]


def encode(tokenizer, example, max_length: int = 160):
    prompt = tokenizer(tokenizer.apply_chat_template(example.prompt, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]
    full = tokenizer(tokenizer.apply_chat_template(example.messages, tokenize=False), add_special_tokens=False)["input_ids"]
    labels = [-100] * len(prompt) + full[len(prompt):]
    return full[:max_length], labels[:max_length]


def batches(rows, size, rng):
    order = list(range(len(rows)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - size + 1, size):
            yield [rows[j] for j in order[i : i + size]]


def collate(batch, pad):
    width = max(len(ids) for ids, _ in batch)
    x = torch.full((len(batch), width), pad, dtype=torch.long)
    y = torch.full((len(batch), width), -100, dtype=torch.long)
    m = torch.zeros((len(batch), width), dtype=torch.long)
    for r, (ids, labels) in enumerate(batch):
        x[r, : len(ids)] = torch.tensor(ids)
        y[r, : len(ids)] = torch.tensor(labels)
        m[r, : len(ids)] = 1
    return x, m, y


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "models/tiny-chat-fr")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--apps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def pretraining_chats(apps: int):
    """Chats about an invented catalogue that shares no application name with the demo's."""
    demo_names = {s.name for doc in DEMO_DOCS for s in parse_document(doc)[1]}
    sections = pretraining_sections(apps, seed=7, exclude=demo_names)
    examples, report = generate_training(sections, "augmented", seed=7)
    parts = split_examples(examples, seed=7)
    print(f"pre-training catalogue: {len(sections)} applications, {report.kept} chats "
          f"({len(parts['train'])} train / {len(parts['test'])} test)")
    return examples, parts


def pretrain(model, tokenizer, rows, args) -> None:
    stream = batches(rows, args.batch, random.Random(0))
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = 100
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    pad = tokenizer.pad_token_id
    model.train()
    t0 = time.time()
    for step in range(1, args.steps + 1):
        x, m, y = collate(next(stream), pad)
        loss = model(input_ids=x, attention_mask=m, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        schedule.step()
        optim.zero_grad()
        if step % 100 == 0 or step == 1:
            print(f"step {step}: loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()


def score(model, tokenizer, examples):
    preds = answer(model, tokenizer, [e.prompt for e in examples], max_new_tokens=40)
    return answer_metrics([e.answer for e in examples], preds), preds


def held_out_scores(model, tokenizer, parts) -> tuple[dict, dict]:
    """Its own catalogue's held-out chats, and the demo catalogue it has never seen."""
    own, _ = score(model, tokenizer, parts["test"])
    print(f"held-out chats of its own catalogue: {own}")
    demo_examples, _ = generate_training(parse_document(DEMO_DOCS[0])[1], "augmented")
    demo, preds = score(model, tokenizer, demo_examples[:40])
    print(f"demo catalogue (never seen): {demo}")
    for ex, p in list(zip(demo_examples, preds))[:5]:
        print(f"  {ex.question} -> {p!r} (reference {ex.answer!r})")
    return own, demo


def save(model, tokenizer, args, own: dict, demo: dict) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    card = (f"# tiny-chat-fr\n\nBuilt by `python scripts/build_tiny_chat_model.py --out models/{args.out.name}` "
            f"({args.steps} steps, batch {args.batch}, lr {args.lr}).\n\n"
            "A ~0.94M-parameter Llama-style chat model (ChatML template) pre-trained on question/answer chats about "
            "an invented catalogue of applications. It knows the format, not the demo's facts.\n\n"
            f"- held-out chats of its own catalogue: {json.dumps({k: round(v, 3) for k, v in own.items()})}\n"
            f"- demo catalogue (never seen): {json.dumps({k: round(v, 3) for k, v in demo.items()})}\n")
    (args.out / "README.md").write_text(card, encoding="utf-8")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    examples, parts = pretraining_chats(args.apps)
    # The tokenizer sees the pre-training chats and general French, never the demo catalogue.
    texts = ["\n".join(m["content"] for m in ex.messages) for ex in examples]
    texts += corpus.general_sentences("pretrain", 3000, seed=7)
    tokenizer = build_tokenizer(texts, vocab_size=1024)
    model = build_model(tokenizer, hidden=128, layers=4, heads=4, intermediate=352, max_positions=256, seed=0)
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters, vocabulary {len(tokenizer)}")
    t0 = time.time()
    pretrain(model, tokenizer, [encode(tokenizer, ex) for ex in parts["train"] + parts["val"]], args)
    own, demo = held_out_scores(model, tokenizer, parts)
    save(model, tokenizer, args, own, demo)
    print(f"saved to {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
