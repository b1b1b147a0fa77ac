"""palier's token classifier folder as a Transformers ``AutoModelForTokenClassification``: the
backbone's weights and the linear head in the model class every tool knows, for MLflow's
``token-classification`` pipeline. Exact when the head reads the last layer (``hidden_layers:
[-1]``, the default): ``*ForTokenClassification`` is the same backbone + dropout + linear layer.
(palier's own evaluation decodes with BIO-constrained Viterbi; the pipeline takes the argmax.)"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from core.stage.token_cls_folder import BACKBONE_DIR, HEAD_FILE, read_meta


def backbone_location(model_dir: Path, meta: dict) -> str:
    from core.stage.family_common import resolve_model_ref

    ref = meta["backbone"]
    if ref == BACKBONE_DIR:
        return str(model_dir / BACKBONE_DIR)
    return resolve_model_ref(ref, None)


def token_classification_model(model_dir: Path):
    """(model, tokenizer) equivalent to the folder's classifier."""
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

    meta = read_meta(model_dir)
    if meta is None:
        raise ValueError(f"{model_dir}: not a token classifier folder (no palier_token_cls.json)")
    if list(meta.get("hidden_layers", [-1])) != [-1]:
        raise ValueError(f"{model_dir}: the head reads layers {meta['hidden_layers']}; a Transformers token "
                         "classifier reads the last one only (token_cls.hidden_layers: [-1])")
    location = backbone_location(model_dir, meta)
    id2label = {int(k): v for k, v in meta["id2label"].items()}
    config = AutoConfig.from_pretrained(location, num_labels=len(id2label), id2label=id2label,
                                        label2id={v: k for k, v in id2label.items()})
    model = AutoModelForTokenClassification.from_config(config)
    backbone = AutoModel.from_pretrained(location)
    # *ForTokenClassification models drop the pooler (unused by a per-token head); nothing else may differ.
    missing, unexpected = getattr(model, model.base_model_prefix).load_state_dict(backbone.state_dict(), strict=False)
    if missing or any(not k.startswith("pooler.") for k in unexpected):
        raise ValueError(f"{location}: backbone weights do not fit {type(model).__name__} "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    head = load_file(str(model_dir / HEAD_FILE))
    with torch.no_grad():
        model.classifier.weight.copy_(head["classifier.weight"])
        model.classifier.bias.copy_(head["classifier.bias"])
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(model_dir))
