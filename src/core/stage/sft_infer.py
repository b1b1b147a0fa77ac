"""Chat-model loading and answering, shared by the SFT recipe and ``palier query`` / ``export``.

A model folder is either a full checkpoint (what an SFT stage writes to ``model/``: the LoRA
merged into the weights) or a PEFT adapter folder (``adapter_config.json``; what a stage writes
to ``adapter/``), whose base is read from ``base_model_name_or_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


class ChatModelError(RuntimeError):
    pass


def is_adapter(folder: str | Path) -> bool:
    return (Path(folder) / "adapter_config.json").is_file()


def adapter_base(folder: str | Path) -> str:
    config = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ChatModelError(f"{folder}/adapter_config.json names no base_model_name_or_path")
    return base


def load_tokenizer(folder: str | Path, chat_template: str | None = None):
    try:
        tok = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise ChatModelError(f"cannot load a tokenizer from {folder}: {exc}") from None
    if chat_template:
        tok.chat_template = chat_template
    if not tok.chat_template:
        raise ChatModelError(
            f"{folder}: the tokenizer has no chat template; give the stage a chat_template file (.jinja) "
            "or start from a chat/instruct model")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_chat_model(folder: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32, merge: bool = True):
    """(model, tokenizer) from a merged folder or an adapter folder (merged in memory when ``merge``)."""
    folder = Path(folder)
    if not folder.exists():
        raise ChatModelError(f"{folder}: no such model folder")
    try:
        if is_adapter(folder):
            from peft import PeftModel

            base = adapter_base(folder)
            model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
            model = PeftModel.from_pretrained(model, str(folder))
            if merge:
                model = model.merge_and_unload()
            tok_source = folder if (folder / "tokenizer_config.json").exists() else base
        else:
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
            tok_source = folder
    except OSError as exc:
        raise ChatModelError(f"cannot load a causal LM from {folder}: {exc}") from None
    tokenizer = load_tokenizer(tok_source)
    model.to(device).eval()
    return model, tokenizer


def eos_ids(model, tokenizer) -> list[int]:
    ids = [tokenizer.eos_token_id]
    configured = model.generation_config.eos_token_id
    ids += configured if isinstance(configured, list) else ([configured] if configured is not None else [])
    return sorted({i for i in ids if i is not None})


@torch.inference_mode()
def answer(model, tokenizer, conversations: list[list[dict[str, str]]], max_new_tokens: int = 64,
           temperature: float = 0.0, batch_size: int = 16, progress=None, seed: int = 0) -> list[str]:
    """The assistant's reply to each conversation (left-padded batches; greedy when temperature is 0)."""
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    stop = eos_ids(model, tokenizer)
    out: list[str] = []
    if temperature > 0:
        torch.manual_seed(seed)
    try:
        for start in range(0, len(conversations), batch_size):
            chunk = conversations[start : start + batch_size]
            prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chunk]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            generated = model.generate(**enc, max_new_tokens=max_new_tokens, eos_token_id=stop,
                                       pad_token_id=tokenizer.pad_token_id, **sampling)
            new = generated[:, enc["input_ids"].shape[1]:]
            out += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
            if progress:
                progress(min(start + batch_size, len(conversations)), len(conversations))
    finally:
        tokenizer.padding_side = side
    return out
