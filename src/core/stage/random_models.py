"""What the locally built random-weight models (``whisper_nano``, ``tiny_llama``) share: a size
given as keyword overrides of the module's defaults, and weights drawn from a fixed seed."""

from __future__ import annotations


def with_defaults(defaults: dict[str, int], size: dict[str, int]) -> dict[str, int]:
    unknown = sorted(set(size) - set(defaults))
    if unknown:
        raise TypeError(f"unknown model size argument(s) {unknown}; expected some of {sorted(defaults)}")
    return {**defaults, **size}


def seeded(seed: int, model_class, config):
    """A model with random weights drawn after ``torch.manual_seed(seed)`` (reproducible)."""
    import torch

    torch.manual_seed(seed)
    return model_class(config)
