"""``python -m bench``: evaluation, preprocessing, export and orchestration benchmarks.

Prints a table of ratios and writes ``bench/results/<name>.md`` and ``.json``. Every ratio
compares two variants run alternately in the same process on the same data (median of the
per-round ratios), because absolute timings on a shared CPU mean little.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BENCHES = ("eval", "prep", "export", "flow", "search", "diagnosis")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default $PALIER_HOME/bench)")
    parser.add_argument("--model", default="demo",
                        help="demo (the nano model) | whisper-base | whisper-tiny.en (real weights) | a model folder")
    parser.add_argument("--eval-count", type=int, default=None,
                        help="held-out utterances to evaluate (default 96 on the demo model, 32 on a real one)")
    parser.add_argument("--prep-count", type=int, default=300, help="utterances to preprocess")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison")
    parser.add_argument("--flow-rounds", type=int, default=2, help="rounds of the (slow) orchestration bench")
    parser.add_argument("--verify-count", type=int, default=8, help="held-out utterances for export verification")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/CTranslate2 threads for both sides (1: stable on a shared CPU)")
    parser.add_argument("--name", default="latest", help="results file name under bench/results/")
    args = parser.parse_args(argv)
    if args.eval_count is None:
        args.eval_count = 96 if args.model == "demo" else 32
    unknown = set(args.only.split(",")) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHES}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = args.only.split(",")
    if "diagnosis" in selected:
        # Pure text, a few seconds: its own report (bench/results/diagnosis.md), no model needed.
        from bench import diagnosis

        diagnosis.main([])
        selected.remove("diagnosis")
        if not selected:
            return 0
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the stage processes of the flow bench
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers.utils import logging as hf_logging

    from bench import report
    from core.paths import home

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    work = (args.work or home() / "bench" / ("" if args.model == "demo" else Path(args.model).name)).resolve()
    started = time.time()
    context = {"started": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)), "machine": report.machine(),
               "torch_threads": args.threads, "argv": sys.argv[1:]}

    def say(message: str) -> None:
        print(f"[bench {time.time() - started:5.0f}s] {message}", flush=True)

    rows = model_rows(args, set(selected), work, context, say)
    context["minutes"] = round((time.time() - started) / 60, 1)
    path = report.write(rows, context, args.name)
    print(report.markdown(rows, context))
    say(f"written {path} and {path.with_suffix('.json')}")
    return 0


def model_rows(args: argparse.Namespace, selected: set[str], work: Path, context: dict, say) -> list[dict]:
    """The rows of every selected benchmark that runs the speech model (all but diagnosis)."""
    from bench import eval_bench, export_bench, flow_bench, prep_bench, search_bench, workload

    cache = work / "cache"
    model = workload.bench_model(work, args.model)
    context["model"] = model.describe()
    say(f"model {model.describe()}; generating speech")
    train_manifest = workload.speech_manifest(cache, "stage", args.prep_count)
    eval_manifest = workload.speech_manifest(cache, "test", args.eval_count)
    rows: list[dict] = []

    recipe = None
    if {"eval", "prep"} & selected:
        spec = workload.stage_spec(work, model, train_manifest, eval_manifest)
        recipe = workload.asr_recipe(spec, work, cache)
    ct2_dirs: dict[str, Path] = {}
    if {"eval", "export"} & selected:
        say("exporting to CTranslate2")
        ct2_dirs, export_seconds = export_bench.export_models(model, work, ("int8", "float32"))
    if "eval" in selected:
        say(f"evaluation: {len(recipe.eval_sets['test'])} utterances x {args.rounds} rounds")
        rows += eval_bench.evaluation_rows(recipe, model, ct2_dirs, args.rounds, args.threads)
    if "prep" in selected:
        say(f"preprocessing: {args.prep_count} utterances x {args.rounds} rounds (cold and cached)")
        rows += prep_bench.preprocessing_rows(recipe, train_manifest, work, args.rounds)
    if "export" in selected:
        say("export verification")
        audio = export_bench.held_out_audio(eval_manifest, args.verify_count)
        raw = export_bench.raw_conversion_is_multilingual(model, work)
        rows.append(export_bench.verification_row(model, ct2_dirs["int8"], "int8", audio,
                                                  export_seconds["int8"], raw))
    if "flow" in selected:
        say("orchestration overhead (starts private Prefect and MLflow servers)")
        rows.append(flow_bench.flow_overhead(work, model, train_manifest, eval_manifest, args.flow_rounds))
    if "search" in selected:
        say(f"search: {search_bench.TRIALS} trials vs one stage through the flow (private servers)")
        rows.append(search_bench.search_overhead(work, model, train_manifest, eval_manifest, args.flow_rounds))
    return rows


if __name__ == "__main__":
    sys.exit(main())
