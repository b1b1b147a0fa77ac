"""``palier export-ct2 MODEL``: a faster-whisper (CTranslate2) copy of a Whisper model, verified.

    palier export-ct2 .state/runs/demo/general-<key>/model --quantization int8 --verify data/test.csv

Writes MODEL-ct2/ (or --out) with model.bin, vocabulary.json (multilingual marker added),
tokenizer.json and preprocessor_config.json, then transcribes held-out audio with both
models and writes the agreement report to OUT/palier_verification.json. Named
``export-ct2`` because ``palier export`` is the SFT export (--merge / --gguf).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import typer

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3"}
VERIFICATION_FILE = "palier_verification.json"


def audio_inputs(paths: list[Path], limit: int) -> list[str]:
    """Audio files from CSV manifests (seed 001's ``audio`` column), folders or files."""
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
    from core.stage.export import language_code

    if language_code(language) != "fr":
        return []
    try:
        manifest = generate("french_speech", {"pool": "test", "count": count, "voices": "stage"}, cache_dir())
    except EspeakMissing:
        return []
    return audio_inputs([manifest], count)


def register(app: typer.Typer) -> None:
    @app.command("export-ct2")
    def export_ct2_command(
        model: Path = typer.Argument(..., help="a saved Whisper model folder (a stage's model/)"),
        out: Path = typer.Option(None, help="output folder (default: MODEL-ct2)"),
        quantization: str = typer.Option("int8", help="int8 | int16 | float16 | float32"),
        verify: list[Path] = typer.Option(None, help="held-out audio: CSV manifest(s), folder(s) or file(s); "
                                                     "default: French demo sentences (espeak-ng)"),
        samples: int = typer.Option(8, help="utterances to verify on"),
        language: str = typer.Option("french", help="language to transcribe in"),
    ) -> None:
        """Export a Whisper model to CTranslate2 for faster-whisper and check it agrees with the original."""
        from core.stage.export import ExportError, export_ct2, verify_ct2

        target = out or model.with_name(model.name + "-ct2")
        try:
            export_ct2(model, target, quantization)
        except ExportError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"exported {model} -> {target} ({quantization})")
        audio = audio_inputs(list(verify), samples) if verify else demo_audio(language, samples)
        if not audio:
            typer.echo("not verified: no held-out audio (pass --verify MANIFEST.csv|FOLDER|FILE)", err=True)
            raise typer.Exit(1)
        report = verify_ct2(model, target, audio, language)
        (target / VERIFICATION_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        wer = report["wer_vs_transformers"]
        typer.echo(f"verified on {report['samples']} utterances: {report['exact_match']:.0%} identical transcripts, "
                   f"WER between them {wer if wer is not None else 'n/a'}, CT2 {report['ct2_speedup']}x faster; "
                   f"multilingual={report['ct2_multilingual']}, decoded as {report['ct2_decoded_languages']}")
        typer.echo(f"report: {target / VERIFICATION_FILE}")
