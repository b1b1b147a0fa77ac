"""``python -m core.stage.module_names MODEL [BASE_DIR]``: the module names of a model, without its weights.

The model is built from its config on the ``meta`` device (no memory, no download of weights),
so a preflight can check LoRA ``target_modules`` against what the model really has. Prints
one JSON object: ``{"model": ..., "architecture": ..., "modules": [...], "linear": [...]}``
(``linear``: the leaf names of the linear layers, what ``all-linear`` would adapt).
Exit 2 with a message on stderr when the config cannot be read (missing folder, a hub id
that is not in the local cache while offline).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def module_names(ref: str, base_dir: Path | None = None) -> dict:
    import torch
    from transformers import AutoConfig

    from core.stage.family_common import resolve_model_ref

    config = AutoConfig.from_pretrained(resolve_model_ref(ref, base_dir))
    model = None
    errors = []
    # The task heads palier trains; the first class that knows this config builds it.
    from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForSpeechSeq2Seq,
                              AutoModelForTokenClassification)

    for auto in (AutoModelForSpeechSeq2Seq, AutoModelForCausalLM, AutoModelForTokenClassification, AutoModel):
        try:
            with torch.device("meta"):
                model = auto.from_config(config)
            break
        except (ValueError, KeyError) as exc:
            errors.append(f"{auto.__name__}: {exc}")
    if model is None:
        raise ValueError(f"no model class for this config ({'; '.join(errors)[:300]})")
    names = [name for name, _ in model.named_modules() if name]
    linear = sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                     if isinstance(mod, torch.nn.Linear)})
    return {"model": ref, "architecture": type(model).__name__, "modules": names, "linear": linear}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m core.stage.module_names MODEL [BASE_DIR]", file=sys.stderr)
        return 2
    try:
        print(json.dumps(module_names(args[0], Path(args[1]) if len(args) == 2 else None)))
    except Exception as exc:  # noqa: BLE001 - the caller reports "cannot inspect", with this reason
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
