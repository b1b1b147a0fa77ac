"""Asking a fine-tuned chat model questions (`palier query`): one answer, or a loop of them.

torch and transformers are imported when a model is loaded, not when this module is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

EXIT_WORDS = ("exit", "quit", "q", ":q")


class Answerer:
    """A loaded chat model that answers questions (one turn each, optional system prompt)."""

    def __init__(self, model_dir: Path, device: str = "auto", system: str | None = None):
        from transformers.utils import logging as hf_logging

        from core.stage.device import pick_torch_device
        from core.stage.sft_infer import load_chat_model

        hf_logging.disable_progress_bar()  # "Loading weights" bars would mix with the answers

        self.device = pick_torch_device(device)
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
    for meta in (model_dir / "palier_sft.json", model_dir.parent / "model" / "palier_sft.json"):
        if meta.is_file():
            data = json.loads(meta.read_text(encoding="utf-8"))
            if data.get("system_prompt"):
                return data["system_prompt"]
    return None


def interactive(answerer: Answerer, temperature: float, max_tokens: int, read: Callable[[str], str] = input,
                write: Callable[[str], object] = print) -> int:
    """Answer questions read one by one until an exit word or end of input; how many were asked."""
    write("Interactive mode: type a question, 'exit' to leave.")
    asked = 0
    while True:
        try:
            question = read("❯ Question: ").strip()
        except (EOFError, KeyboardInterrupt):
            write("")
            break
        if question.lower() in EXIT_WORDS:
            break
        if not question:
            continue
        write(f"[ANSWER] {answerer.ask(question, temperature, max_tokens)}")
        asked += 1
    return asked
