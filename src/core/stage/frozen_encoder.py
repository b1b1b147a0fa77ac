"""A frozen Whisper encoder's outputs, and the cross-attention keys/values derived from them,
computed once and reused.

Encoder outputs go to the cache folder, keyed by the encoder's weights and the log-Mel
features: every stage of a chain that keeps the encoder frozen (each starts from the previous
stage's output, whose encoder is the same tensor for tensor), and every rerun, reads them
instead of running the encoder again. On a CPU with 30 s windows the encoder is most of an
evaluation and, with a frozen encoder, most of a stage.

With the cross-attention key/value projections frozen too (``whisper.freeze_cross_attention``),
what a training step's cross-attention needs from the audio is fixed per utterance: the keys and
values over all encoder positions (1,500 for 30 s), about two thirds of a whisper-base decoder
step's arithmetic when recomputed at each step. They are computed once per training utterance
and handed to the decoder as a filled cross-attention cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

STATES_FOLDER = "encoder-states"


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of every tensor of ``module`` (names, shapes, dtypes and values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


def states_key(encoder_digest: str, features: np.ndarray) -> str:
    h = hashlib.sha256(encoder_digest.encode())
    h.update(f"{features.dtype}:{features.shape}".encode())
    h.update(np.ascontiguousarray(features).tobytes())
    return h.hexdigest()[:24]


@torch.inference_mode()
def encoder_states(encoder: torch.nn.Module, features: np.ndarray, positions: int, width: int, cache_dir: Path,
                   encoder_digest: str, batch_size: int, device: torch.device,
                   progress: Callable[[int, int], None], check: Callable[[], None]) -> tuple[np.ndarray, bool]:
    """(N, positions, width) float32 outputs, memory-mapped from the cache folder; and whether
    they were there already. Written to a temporary name then renamed: an interrupted pass
    leaves no half-written file that a later stage would trust."""
    path = cache_dir / STATES_FOLDER / f"{states_key(encoder_digest, features)}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r"), True
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(features), positions, width))
    for start in range(0, len(features), batch_size):
        check()
        feats = torch.from_numpy(features[start : start + batch_size].astype(np.float32)).to(device)
        out[start : start + batch_size] = encoder(feats).last_hidden_state.float().cpu().numpy()
        progress(min(start + batch_size, len(features)), len(features))
    out.flush()
    del out
    tmp.replace(path)
    return np.load(path, mmap_mode="r"), False


def cross_attention_layers(decoder: torch.nn.Module) -> list[torch.nn.Module]:
    return [layer.encoder_attn for layer in decoder.layers]


def freeze_cross_attention(decoder: torch.nn.Module) -> int:
    """Freeze every decoder layer's cross-attention key and value projections; returns how many
    parameters that froze."""
    frozen = 0
    for attn in cross_attention_layers(decoder):
        for proj in (attn.k_proj, attn.v_proj):
            for p in proj.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


@torch.inference_mode()
def cross_attention_kv(decoder: torch.nn.Module, states: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """(N, layers, 2, positions, width) float16: each layer's cross-attention keys and values
    for every utterance (float16 halves the memory; the decoder computes in float32)."""
    layers = cross_attention_layers(decoder)
    n, positions, width = states.shape
    device = next(decoder.parameters()).device
    out = np.empty((n, len(layers), 2, positions, width), dtype=np.float16)
    for start in range(0, n, batch_size):
        hidden = torch.from_numpy(np.asarray(states[start : start + batch_size], dtype=np.float32)).to(device)
        for i, attn in enumerate(layers):
            out[start : start + batch_size, i, 0] = attn.k_proj(hidden).half().cpu().numpy()
            out[start : start + batch_size, i, 1] = attn.v_proj(hidden).half().cpu().numpy()
    return out


def filled_cross_cache(kv: torch.Tensor, heads: int):
    """An ``EncoderDecoderCache`` whose cross-attention part holds ``kv`` (batch, layers, 2,
    positions, width): the decoder's attention reads keys and values from it instead of
    projecting the encoder's outputs (``WhisperAttention`` with ``is_updated`` set)."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    batch, layers, _, positions, width = kv.shape
    cross = DynamicCache()
    for i in range(layers):
        k, v = (kv[:, i, j].reshape(batch, positions, heads, width // heads).transpose(1, 2).contiguous()
                for j in (0, 1))
        cross.update(k, v, i)
    return EncoderDecoderCache(DynamicCache(), cross)
