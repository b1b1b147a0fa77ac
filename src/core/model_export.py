"""Exporting a trained model: merged weights (an SFT adapter folded into its base), GGUF
(llama.cpp's converter), or a CTranslate2 copy of a Whisper verified against the original.

torch-free at import: the merge and the CTranslate2 export load their libraries when called.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

EXPORT_FORMATS = ("merged", "gguf", "ct2")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3"}
VERIFICATION_FILE = "palier_verification.json"
GGUF_HELP = (
    "GGUF export needs llama.cpp's converter (convert_hf_to_gguf.py), which is not installed here:\n"
    "  git clone https://github.com/ggml-org/llama.cpp\n"
    "  pip install -r llama.cpp/requirements/requirements-convert_hf_to_gguf.txt\n"
    "  export LLAMA_CPP_DIR=$PWD/llama.cpp      (or put convert_hf_to_gguf.py on PATH)\n"
    "then run the export again. The merged model is already usable by transformers, vLLM or TGI."
)


class ConverterMissing(FileNotFoundError):
    """llama.cpp's HF->GGUF converter is not installed (the message says how to install it)."""


def default_target(model: Path, fmt: str) -> Path:
    """MODEL-merged for merged and GGUF exports (the GGUF file goes inside), MODEL-ct2 for ct2."""
    return model.with_name(model.name + ("-ct2" if fmt == "ct2" else "-merged"))


# -- merged weights and GGUF ------------------------------------------------------------
def find_gguf_converter() -> list[str] | None:
    """The command that runs llama.cpp's HF->GGUF converter, or None."""
    home = os.environ.get("LLAMA_CPP_DIR")
    if home:
        script = Path(home) / "convert_hf_to_gguf.py"
        if script.is_file():
            return [sys.executable, str(script)]
    for name in ("convert_hf_to_gguf.py", "convert_hf_to_gguf", "convert-hf-to-gguf"):
        found = shutil.which(name)
        if found:
            return [sys.executable, found] if found.endswith(".py") else [found]
    return None


def require_gguf_converter() -> list[str]:
    converter = find_gguf_converter()
    if converter is None:
        raise ConverterMissing(GGUF_HELP)
    return converter


def merge_model(model_dir: Path, out: Path) -> Path:
    """Write a standalone model folder: an adapter folder is merged into its base; a merged
    folder is re-saved (safetensors) with its tokenizer. Raises ChatModelError."""
    from core.stage.sft_infer import load_chat_model

    model, tokenizer = load_chat_model(model_dir, "cpu", merge=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def export_gguf(merged: Path, outtype: str = "f16") -> Path:
    """MERGED/model-OUTTYPE.gguf through llama.cpp's converter; RuntimeError with its stderr tail."""
    converter = require_gguf_converter()
    target = merged / f"model-{outtype}.gguf"
    result = subprocess.run([*converter, str(merged), "--outfile", str(target), "--outtype", outtype],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return target


# -- CTranslate2 (faster-whisper) ---------------------------------------------------------
def audio_inputs(paths: list[Path], limit: int) -> list[str]:
    """Audio files from CSV manifests (an ``audio`` column), folders or files; at most ``limit``."""
    found: list[str] = []
    for path in paths:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as fh:
                found += [str(path.parent / row["audio"]) for row in csv.DictReader(fh) if row.get("audio")]
        elif path.is_dir():
            found += [str(p) for p in sorted(path.rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES]
        else:
            found.append(str(path))
    return found[:limit]


def demo_audio(language: str, count: int) -> list[str]:
    """French espeak-ng sentences from the demo's held-out pool, when espeak-ng is installed."""
    from core.demo.datasets import generate
    from core.demo.speech import EspeakMissing
    from core.paths import cache_dir
    from core.ct2.export import language_code

    if language_code(language) != "fr":
        return []
    try:
        manifest = generate("french_speech", {"pool": "test", "count": count, "voices": "stage"}, cache_dir())
    except EspeakMissing:
        return []
    return audio_inputs([manifest], count)


def export_ct2(model: Path, target: Path, quantization: str) -> Path:
    """The CTranslate2 copy of a saved Whisper folder; raises core.ct2.export.ExportError."""
    from core.ct2.export import export_ct2 as convert

    return convert(model, target, quantization)


def verify_ct2_export(model: Path, target: Path, audio: list[str], language: str) -> dict[str, Any]:
    """Transcribe ``audio`` with both models; the agreement report, also written to TARGET."""
    from core.ct2.export import verify_ct2

    report = verify_ct2(model, target, audio, language)
    (target / VERIFICATION_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return report
