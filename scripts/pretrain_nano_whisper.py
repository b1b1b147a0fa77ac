"""Pre-train the demo's small French Whisper base model, once, on this CPU (~20 minutes).

    python scripts/pretrain_nano_whisper.py --out models/nano-whisper-fr

Mirrors real life: the demo pipeline fine-tunes a model that already "speaks French" rather
than a random one, which would need thousands of steps before it listens instead of
reciting one memorised sentence. The result (3.4M parameters, ~7 MB in fp16) is shipped in
the repository; anyone can rerun this script and get the same model up to CPU nondeterminism.

Data: general French sentences from the `pretrain` pool spoken by the `pretrain` voices.
The demo's stages then bring new speakers (general-French stage) and medical vocabulary
(medical stage) that this base has never heard.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from core.demo import corpus, speech
from core.metrics.asr import asr_metrics
from core.stage.whisper_nano import build_feature_extractor, build_model, build_tokenizer
from core.stage.audio import load_audio


def featurize(utterances, feature_extractor, tokenizer):
    waves = [load_audio(u.path).samples for u in utterances]
    feats = feature_extractor(waves, sampling_rate=16_000, return_tensors="np").input_features
    labels = [tokenizer(u.sentence).input_ids for u in utterances]
    return feats.astype(np.float32), labels


def batches(n: int, size: int, rng: random.Random):
    order = list(range(n))
    while True:
        rng.shuffle(order)
        for i in range(0, n - size + 1, size):
            yield order[i : i + size]


def collate(feats, labels, idx, start_id):
    x = torch.from_numpy(feats[idx])
    seqs = [labels[i][1:] if labels[i][0] == start_id else labels[i] for i in idx]
    width = max(len(s) for s in seqs)
    y = torch.full((len(seqs), width), -100, dtype=torch.long)
    for row, s in enumerate(seqs):
        y[row, : len(s)] = torch.tensor(s)
    return x, y


@torch.inference_mode()
def transcribe(model, feats, tokenizer, batch_size=32):
    model.eval()
    out: list[str] = []
    for i in range(0, len(feats), batch_size):
        ids = model.generate(
            torch.from_numpy(feats[i : i + batch_size]), language="fr", task="transcribe",
            max_new_tokens=120,
        )
        out.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
    model.train()
    return [s.strip() for s in out]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/nano-whisper-fr"))
    parser.add_argument("--work", type=Path, default=Path(".state/pretrain"))
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def prepare_data(args, feature_extractor, tokenizer):
    """Spoken training sentences, plus two held-out sets: the training voices and unseen ones."""
    t0 = time.time()
    train_utts = speech.synthesize(
        corpus.general_sentences("pretrain", args.sentences, seed=args.seed), args.work / "train", "pretrain",
        seed=args.seed,
    )
    test_same = speech.synthesize(corpus.general_sentences("test", 100), args.work / "test-same", "pretrain", seed=99)
    test_new = speech.synthesize(corpus.general_sentences("test", 100), args.work / "test-new", "stage", seed=99)
    train_x, train_y = featurize(train_utts, feature_extractor, tokenizer)
    evals = {
        "same_voices": (featurize(test_same, feature_extractor, tokenizer)[0], [u.sentence for u in test_same]),
        "new_voices": (featurize(test_new, feature_extractor, tokenizer)[0], [u.sentence for u in test_new]),
    }
    print(f"data ready in {time.time() - t0:.0f}s: {len(train_utts)} train utterances", flush=True)
    return train_x, train_y, evals


def evaluate(model, evals, tokenizer) -> dict[str, dict[str, float]]:
    return {name: asr_metrics(refs, transcribe(model, feats, tokenizer)) for name, (feats, refs) in evals.items()}


def train(model, args, train_x, train_y, evals, tokenizer, start_id: int) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, args.warmup, args.steps)
    model.train()
    t0 = time.time()
    stream = batches(len(train_y), args.batch_size, random.Random(args.seed))
    for step in range(1, args.steps + 1):
        x, y = collate(train_x, train_y, next(stream), start_id)
        loss = model(input_features=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0:
            print(f"step {step}/{args.steps} loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
        if step % 400 == 0 or step == args.steps:
            for name, m in evaluate(model, evals, tokenizer).items():
                print(f"  step {step} {name}: WER {m['wer']:.3f} CER {m['cer']:.3f}", flush=True)


def save(model, tokenizer, feature_extractor, args, report: dict, train_utterances: int, minutes: float) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    model.generation_config.language = "fr"
    model.generation_config.task = "transcribe"
    model.to(torch.float16).save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    feature_extractor.save_pretrained(args.out)
    record = {
        "script": "scripts/pretrain_nano_whisper.py",
        "args": {k: str(v) for k, v in vars(args).items()},
        "steps": args.steps,
        "train_utterances": train_utterances,
        "minutes": minutes,
        "held_out": report,
    }
    (args.out / "pretraining.json").write_text(json.dumps(record, indent=2))


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    tokenizer = build_tokenizer()
    tokenizer.set_prefix_tokens(language="french", task="transcribe", predict_timestamps=False)
    feature_extractor = build_feature_extractor(chunk_length=6)
    start_id = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    train_x, train_y, evals = prepare_data(args, feature_extractor, tokenizer)
    model = build_model(tokenizer, chunk_length=6, seed=args.seed)
    t0 = time.time()
    train(model, args, train_x, train_y, evals, tokenizer, start_id)
    report = evaluate(model, evals, tokenizer)
    save(model, tokenizer, feature_extractor, args, report, len(train_y), round((time.time() - t0) / 60, 1))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
