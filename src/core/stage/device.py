"""The torch device a stage, an evaluation or `palier query` runs on."""

from __future__ import annotations


class DeviceUnavailable(RuntimeError):
    """CUDA was asked for explicitly and this process sees no CUDA device."""


def pick_torch_device(requested: str) -> str:
    """``cpu`` stays on the CPU; anything else takes CUDA when it is visible. An explicit
    ``cuda`` without a visible device is an error rather than a silent (slow) CPU run."""
    import torch  # lazily: callers on the orchestrator side import this module without torch

    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise DeviceUnavailable(f"device {requested!r} was asked for but no CUDA device is visible to this process")
    return "cpu"
