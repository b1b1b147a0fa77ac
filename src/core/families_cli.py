"""CLI commands of the token_cls and sft families (seed 004's generate-training / query-finetuned
/ merge-lora / export-gguf), as plain functions plus ``register(app)`` for the palier CLI.

    palier query MODEL "Qu'est-ce que ORCHIS ?"     one answer
    palier query MODEL                              interactive (type exit to leave)
    palier export MODEL --merge [--out DIR] [--gguf]
    palier generate-training DOC --output FILE.jsonl --method augmented --split
    palier check-dataset FILE.jsonl [--format messages|token_cls]

MODEL is an SFT stage's ``model/`` folder (merged) or ``adapter/`` folder (LoRA + base
reference). torch/transformers are imported only inside the commands that need them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

EXIT_USAGE = 2


# -- query --------------------------------------------------------------------------------
def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is visible")
    return device


class Answerer:
    """A loaded chat model that answers questions (one turn each, optional system prompt)."""

    def __init__(self, model_dir: Path, device: str = "auto", system: str | None = None):
        from transformers.utils import logging as hf_logging

        from core.stage.sft_infer import load_chat_model

        hf_logging.disable_progress_bar()  # "Loading weights" bars would mix with the answers

        self.device = pick_device(device)
        self.model, self.tokenizer = load_chat_model(model_dir, self.device)
        self.system = system

    def conversation(self, question: str) -> list[dict[str, str]]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": question}]

    def ask(self, question: str, temperature: float = 0.7, max_tokens: int = 256) -> str:
        from core.stage.sft_infer import answer

        return answer(self.model, self.tokenizer, [self.conversation(question)], max_tokens, temperature, 1)[0]


def default_system(model_dir: Path) -> str | None:
    """The system prompt the model was trained with, when its stage left a trace of it."""
    import json

    for meta in (model_dir / "palier_sft.json", model_dir.parent / "model" / "palier_sft.json"):
        if meta.is_file():
            data = json.loads(meta.read_text(encoding="utf-8"))
            if data.get("system_prompt"):
                return data["system_prompt"]
    return None


def interactive(answerer: Answerer, temperature: float, max_tokens: int, read=input, write=print) -> int:
    write("Interactive mode: type a question, 'exit' to leave.")
    asked = 0
    while True:
        try:
            question = read("❯ Question: ").strip()
        except (EOFError, KeyboardInterrupt):
            write("")
            break
        if question.lower() in ("exit", "quit", "q", ":q"):
            break
        if not question:
            continue
        write(f"[ANSWER] {answerer.ask(question, temperature, max_tokens)}")
        asked += 1
    return asked


# -- export -------------------------------------------------------------------------------
GGUF_HELP = (
    "GGUF export needs llama.cpp's converter (convert_hf_to_gguf.py), which is not installed here:\n"
    "  git clone https://github.com/ggml-org/llama.cpp\n"
    "  pip install -r llama.cpp/requirements/requirements-convert_hf_to_gguf.txt\n"
    "  export LLAMA_CPP_DIR=$PWD/llama.cpp      (or put convert_hf_to_gguf.py on PATH)\n"
    "then run the export again. The merged model is already usable by transformers, vLLM or TGI."
)


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


def merge_model(model_dir: Path, out: Path) -> Path:
    """Write a standalone model folder: an adapter folder is merged into its base; a merged
    folder is re-saved (safetensors) with its tokenizer."""
    from core.stage.sft_infer import load_chat_model

    model, tokenizer = load_chat_model(model_dir, "cpu", merge=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def export_gguf(merged: Path, outtype: str = "f16") -> Path:
    converter = find_gguf_converter()
    if converter is None:
        raise FileNotFoundError(GGUF_HELP)
    target = merged / f"model-{outtype}.gguf"
    result = subprocess.run([*converter, str(merged), "--outfile", str(target), "--outtype", outtype],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return target


# -- datasets -----------------------------------------------------------------------------
def generate_training_file(document: Path, output: Path, method: str = "rule-based", count: int = 0,
                           split: bool = False, seed: int = 42, language: str = "fr", system: str | None = None,
                           llm_base_url: str | None = None, llm_model: str | None = None) -> dict[str, Any]:
    """Seed 004's generate-training: write OUTPUT (or OUTPUT_{train,val,test}.jsonl with split)."""
    from core.formats.messages import split_examples, write_messages
    from core.qa import generate_training, parse_document

    _title, sections = parse_document(document)
    llm = None
    if method == "llm-based":
        from core.qa.llm import generation_client

        llm = generation_client(llm_base_url, llm_model)
    examples, report = generate_training(sections, method, count or None, seed, language, system=system, llm=llm)
    written: dict[str, Any] = {"report": report.as_dict(), "files": {}}
    if split:
        for part, items in split_examples(examples, seed).items():
            path = output.with_name(f"{output.stem}_{part}{output.suffix or '.jsonl'}")
            write_messages(path, items)
            written["files"][part] = (str(path), len(items))
    else:
        write_messages(output, examples)
        written["files"]["all"] = (str(output), len(examples))
    return written


def check_dataset(path: Path, fmt: str = "auto") -> dict[str, Any]:
    """Validate a JSON Lines dataset; raises ``DatasetError`` (every bad line, numbered)."""
    import json

    from core.formats.messages import load_messages
    from core.formats.token_cls import label_counts, load_examples

    if fmt == "auto":
        fmt = "token_cls"
        try:
            with path.open(encoding="utf-8-sig") as fh:
                for raw in fh:
                    if raw.strip():
                        first = json.loads(raw)
                        fmt = "messages" if isinstance(first, dict) and "messages" in first else "token_cls"
                        break
        except (OSError, ValueError):
            fmt = "messages"  # let the reader report the problem with its line number
    if fmt == "messages":
        examples = load_messages(path)
        return {"format": "messages", "examples": len(examples),
                "with_system": sum(ex.messages[0]["role"] == "system" for ex in examples)}
    if fmt == "token_cls":
        examples = load_examples(path)
        return {"format": "token_cls", "examples": len(examples), "entities": label_counts(examples)}
    raise ValueError(f"unknown format {fmt!r}: messages, token_cls or auto")


# -- typer wiring -------------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    """Add query / export / generate-training / check-dataset to the palier CLI."""

    @app.command("query")
    def query_command(
        model: Path = typer.Argument(..., help="SFT model folder (a stage's model/ or adapter/)"),
        question: str = typer.Argument(None, help="the question; leave out for interactive mode"),
        temperature: float = typer.Option(0.7, min=0.0, help="0 = greedy (reproducible)"),
        max_tokens: int = typer.Option(256, min=1, help="maximum new tokens per answer"),
        system: str = typer.Option(None, help="system prompt (default: none, or the one the stage trained with)"),
        device: str = typer.Option("auto", help="auto | cpu | cuda"),
    ) -> None:
        """Ask a fine-tuned chat model a question, or chat with it interactively."""
        from core.stage.sft_infer import ChatModelError

        try:
            answerer = Answerer(model, device, system if system is not None else default_system(model))
        except (ChatModelError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        if question:
            typer.echo(answerer.ask(question, temperature, max_tokens))
        else:
            interactive(answerer, temperature, max_tokens, read=input, write=typer.echo)

    @app.command("export")
    def export_command(
        model: Path = typer.Argument(..., help="SFT model folder (a stage's model/ or adapter/)"),
        merge: bool = typer.Option(False, "--merge", help="write standalone merged weights (adapter folded in)"),
        out: Path = typer.Option(None, help="output folder (default: MODEL-merged)"),
        gguf: bool = typer.Option(False, "--gguf", help="also write a GGUF file (needs llama.cpp's converter)"),
        gguf_type: str = typer.Option("f16", help="GGUF outtype: f32, f16, bf16, q8_0"),
    ) -> None:
        """Export an SFT model: merged weights, and GGUF when llama.cpp's converter is installed."""
        from core.stage.sft_infer import ChatModelError

        if not merge and not gguf:
            typer.echo("nothing to do: add --merge and/or --gguf", err=True)
            raise typer.Exit(EXIT_USAGE)
        if gguf and find_gguf_converter() is None:
            typer.echo(f"error: {GGUF_HELP}", err=True)
            raise typer.Exit(EXIT_USAGE)
        target = out or model.with_name(model.name + "-merged")
        try:
            merged = merge_model(model, target)
        except ChatModelError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        typer.echo(f"merged model: {merged}")
        if gguf:
            try:
                typer.echo(f"GGUF: {export_gguf(merged, gguf_type)}")
            except (FileNotFoundError, RuntimeError) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None

    @app.command("generate-training")
    def generate_training_command(
        document: Path = typer.Argument(..., help="markdown (.md) or JSON Lines (.jsonl) document"),
        output: Path = typer.Option(..., "--output", "-o", help="messages JSONL to write"),
        method: str = typer.Option("rule-based", help="rule-based | augmented | llm-based"),
        count: int = typer.Option(0, min=0, help="examples to keep (0 = all the document yields)"),
        split: bool = typer.Option(False, "--split", help="write _train/_val/_test files (~80/10/10, seeded)"),
        seed: int = typer.Option(42),
        language: str = typer.Option("fr", help="question templates: fr | en"),
        system: str = typer.Option(None, help="system prompt of every example"),
        llm_base_url: str = typer.Option(None, help="OpenAI-compatible endpoint (llm-based; or OPENAI_BASE_URL)"),
        llm_model: str = typer.Option(None, help="model name at that endpoint (or PALIER_LLM_MODEL)"),
    ) -> None:
        """Generate chat training examples from a document (seed 004's generate-training)."""
        from core.formats.jsonl import DatasetError
        from core.llm import LlmError

        try:
            result = generate_training_file(document, output, method, count, split, seed, language, system,
                                            llm_base_url, llm_model)
        except (DatasetError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except LlmError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE if exc.misconfigured else 1) from None
        for warning in result["report"]["warnings"]:
            typer.echo(f"warning: {warning}", err=True)
        for part, (path, n) in result["files"].items():
            typer.echo(f"{part}: {n} examples -> {path}")

    @app.command("check-dataset")
    def check_dataset_command(
        path: Path = typer.Argument(..., help="JSON Lines dataset"),
        fmt: str = typer.Option("auto", "--format", help="messages | token_cls | auto"),
    ) -> None:
        """Validate an SFT (messages) or token-classification dataset; bad lines are listed by number."""
        from core.formats.jsonl import DatasetError

        try:
            result = check_dataset(path, fmt)
        except (DatasetError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{path}: OK, {result['examples']} examples ({result['format']})"
                   + (f", entities {result['entities']}" if "entities" in result else ""))
