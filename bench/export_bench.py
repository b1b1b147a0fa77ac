"""CTranslate2 export of the bench model: verified against Transformers on held-out audio."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from bench.workload import LANGUAGE, BenchModel


def held_out_audio(manifest: Path, count: int) -> list[str]:
    with manifest.open(newline="", encoding="utf-8") as fh:
        return [str(manifest.parent / row["audio"]) for row in csv.DictReader(fh)][:count]


def export_models(model: BenchModel, work: Path, quantizations: tuple[str, ...]) -> tuple[dict[str, Path], dict]:
    from core.ct2.export import export_ct2

    dirs, seconds = {}, {}
    for q in quantizations:
        t0 = time.perf_counter()
        dirs[q] = export_ct2(model.path, work / f"export-ct2-{q}", q)
        seconds[q] = round(time.perf_counter() - t0, 2)
    return dirs, seconds


def raw_conversion_is_multilingual(model: BenchModel, work: Path) -> bool:
    """What the plain converter output says, before palier adds the "" marker."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    raw = TransformersConverter(str(model.path)).convert(str(work / "raw-ct2"), quantization="int8", force=True)
    return bool(ctranslate2.models.Whisper(raw, device="cpu").is_multilingual)


def verification_row(model: BenchModel, ct2_dir: Path, quantization: str, audio: list[str],
                     export_seconds: float, raw_multilingual: bool) -> dict[str, Any]:
    from core.ct2.export import verify_ct2

    report = verify_ct2(model.path, ct2_dir, audio, LANGUAGE)
    return {
        "name": f"export: CTranslate2 {quantization} verified against Transformers",
        "target": "agreement reported (high on the trained model)",
        "utterances": report["samples"],
        "ratio": report["ct2_speedup"],
        "exact_match": report["exact_match"],
        "wer_vs_transformers": report["wer_vs_transformers"],
        "cer_vs_transformers": report["cer_vs_transformers"],
        "ct2_multilingual": report["ct2_multilingual"],
        "ct2_decoded_languages": report["ct2_decoded_languages"],
        "reference_median_s": report["transformers_seconds"],
        "candidate_median_s": report["ct2_seconds"],
        "notes": (f"ratio = Transformers s / CT2 s, one utterance at a time, engines alternating per utterance; "
                  f"export took {export_seconds}s; {report['ct2_path']}; plain converter output "
                  f"multilingual={raw_multilingual}, after palier's \"\" marker={report['ct2_multilingual']}"),
        "examples": report["examples"][:2],
    }
