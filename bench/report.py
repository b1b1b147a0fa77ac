"""The results table: Markdown for people, JSON for tools, both in bench/results/."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_at_start": load, "python": platform.python_version(),
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _fmt_ratio(row: dict) -> str:
    ratio = row.get("ratio")
    if ratio is None:
        return "—"
    spread = f" ({row['ratio_min']}–{row['ratio_max']})" if "ratio_min" in row else ""
    return f"**{ratio}×**{spread}"


def _quality(row: dict) -> str:
    if "reference_wer" in row:
        return (f"WER {row['reference_wer']:.4f} → {row['candidate_wer']:.4f}; "
                f"{row['identical_transcripts']}/{row['utterances']} transcripts identical")
    if "exact_match" in row:
        wer = row["wer_vs_transformers"]
        return f"exact match {row['exact_match']:.0%}; WER vs Transformers {wer if wer is not None else 'n/a'}"
    return ""


def markdown(rows: list[dict], context: dict) -> str:
    m = context["machine"]
    lines = [
        "# palier benchmarks",
        "",
        f"Run {context['started']} UTC in {context['minutes']} min on {m['cpu']}, {m['cores']} cores "
        f"(shared: load average {m['load_average_at_start']} at start), torch {m['torch']}, "
        f"{context['torch_threads']} torch thread(s), GPU: {m['gpu'] or 'none (GPU figures not taken)'}.",
        f"Model: {context['model']}. Every ratio is the median of per-round ratios of runs interleaved "
        f"in one process (range in brackets); absolute seconds are only indicative on a shared machine.",
        "",
        "| benchmark | target | ratio | candidate / encoder alone | quality | rounds |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        over = row.get("candidate_over_encoder")
        lines.append(f"| {row['name']} | {row.get('target', '')} | {_fmt_ratio(row)} | "
                     f"{f'{over}×' if over is not None else '—'} | {_quality(row)} | "
                     f"{row.get('rounds', row.get('utterances', ''))} |")
    lines += ["", "## Notes", ""]
    for row in rows:
        lines.append(f"- **{row['name']}**: {row.get('notes', '')}")
        if "fixed_overhead_s" in row:
            lines.append(f"  - flow {row['reference_median_s']} s vs direct {row['candidate_median_s']} s: "
                         f"{row['fixed_overhead_s']} s of orchestration per stage")
        if "ceiling_if_decoding_were_free" in row:
            lines.append(f"  - encoder alone: {row['encoder_only_s']} s for the set; seed 003 median "
                         f"{row['reference_median_s']} s, so even free decoding could not exceed "
                         f"{row['ceiling_if_decoding_were_free']}× here")
        for example in row.get("differing_examples", []):
            lines.append(f"  - differs: seed `{example['seed'][:90]}` / candidate `{example['candidate'][:90]}`")
    return "\n".join(lines) + "\n"


def write(rows: list[dict], context: dict, name: str = "latest") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"context": context, "rows": rows}, indent=2,
                                                     ensure_ascii=False, default=str), encoding="utf-8")
    path = RESULTS / f"{name}.md"
    path.write_text(markdown(rows, context), encoding="utf-8")
    return path
