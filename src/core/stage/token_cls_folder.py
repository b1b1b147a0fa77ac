"""The token classifier's model folder, what ``save`` writes and the next stage reads:

    palier_token_cls.json   format, backbone reference, labels / label2id / id2label, settings
    head.safetensors        the linear head (no pickle)
    tokenizer files         the backbone's tokenizer
    backbone/               only when the backbone was trained (freeze_backbone: false) or was
                            itself such a saved folder
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.stage.token_cls_model import LinearHead

META_FILE = "palier_token_cls.json"
HEAD_FILE = "head.safetensors"
BACKBONE_DIR = "backbone"  # the "backbone" reference of a folder that holds its own backbone
FORMAT_VERSION = 1


def read_meta(folder: Path) -> dict[str, Any] | None:
    """The folder's ``palier_token_cls.json``, or None when it is not a saved token classifier."""
    meta = folder / META_FILE
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text(encoding="utf-8"))
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise RuntimeError(f"{meta}: written by a newer palier (format {data['format_version']})")
    return data


def load_head_rows(head: LinearHead, folder: Path) -> int:
    """Copy a saved head into the first rows of ``head`` (new labels keep their fresh rows);
    return how many labels the saved head had."""
    state = load_file(str(folder / HEAD_FILE))
    weight = state["classifier.weight"]
    old, hidden = weight.shape
    if hidden != head.classifier.in_features:
        raise RuntimeError(f"{folder}: head expects hidden size {hidden}, backbone has {head.classifier.in_features}")
    with torch.no_grad():
        head.classifier.weight[:old] = weight
        head.classifier.bias[:old] = state["classifier.bias"]
    return old


def write_head(head: LinearHead, model_dir: Path) -> None:
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(model_dir / HEAD_FILE), metadata={"format": "pt"})


def write_meta(model_dir: Path, meta: dict[str, Any]) -> None:
    payload = {"format_version": FORMAT_VERSION, "family": "token_cls", **meta}
    (model_dir / META_FILE).write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
