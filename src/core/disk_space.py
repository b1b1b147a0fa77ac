"""The disk space a stage needs, estimated before it runs (pure: numbers in, numbers out).

A stage writes, in its run folder: ``save_total_limit`` checkpoints (weights + optimizer state;
the Trainer writes a new one before it deletes the oldest, so one more for a moment), the final
model, an encoder-output cache when ``cache_encoder_outputs`` is on, and its exports. A full
fine-tune with AdamW keeps two fp32 moments per trainable weight: 12 bytes per parameter in each
checkpoint (4 weights + 8 optimizer), so a Whisper large-v3 checkpoint (1.55 B parameters) is
about 17 GB and a stage with ``save_total_limit: 2`` needs about 58 GB. Saying so before the run
beats a full disk after hours of training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.language import Phrase

GB = 1024 ** 3
MB = 1024 ** 2
KAGGLE_OUTPUT_BYTES = 20 * GB  # /kaggle/working: what a notebook may keep (Kaggle's documented limit)
WEIGHT_BYTES = 4  # fp32 master weights: what the Trainer saves
ADAM_BYTES = 8  # AdamW: exp_avg + exp_avg_sq, fp32
LORA_TRAINABLE_SHARE = 0.01  # LoRA adapters on the attention projections: about 1 % of the weights
WHISPER_ENCODER_FRAMES = 1500  # 30 s of audio: what one cached encoder output holds
FP16_BYTES = 2

# Parameter counts of the hub models users name (OpenAI's model card), most specific first.
KNOWN_PARAMS: tuple[tuple[str, int], ...] = (
    (r"whisper[-_.]?large[-_.]?v3[-_.]?turbo", 809_000_000),
    (r"whisper[-_.]?large", 1_550_000_000),
    (r"whisper[-_.]?medium", 769_000_000),
    (r"whisper[-_.]?small", 244_000_000),
    (r"whisper[-_.]?base", 74_000_000),
    (r"whisper[-_.]?tiny", 39_000_000),
)
# d_model of the Whisper encoders, for the encoder cache.
ENCODER_WIDTH: tuple[tuple[str, int], ...] = (
    (r"large", 1280), (r"medium", 1024), (r"small", 768), (r"base", 512), (r"tiny", 384),
)


def known_params(model: str) -> int | None:
    for pattern, params in KNOWN_PARAMS:
        if re.search(pattern, model, re.IGNORECASE):
            return params
    return None


def encoder_width(model: str) -> int | None:
    if "whisper" not in model.lower():
        return None
    return next((width for pattern, width in ENCODER_WIDTH if re.search(pattern, model, re.IGNORECASE)), None)


def human(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / MB:.0f} MB"


@dataclass(frozen=True)
class SpaceNeed:
    """Bytes per part of a stage's run folder."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self, language: str = "en") -> str:
        def name(part: str) -> str:
            if language != "fr":
                return part
            return (part.replace("checkpoints", "points de contrôle").replace("final model", "modèle final")
                    .replace("encoder cache", "cache de l'encodeur"))

        shown = ", ".join(f"{name(part)} {human(size)}" for part, size in self.parts.items() if size)
        return f"{'environ' if language == 'fr' else 'about'} {human(self.total)} ({shown})"


def stage_space(params: int, *, method: str = "full", save_total_limit: int = 2, cached_utterances: int = 0,
                encoder_d_model: int | None = None, exports: tuple[str, ...] = ()) -> SpaceNeed:
    """What a stage of a ``params``-parameter model writes at its peak.

    ``method``: full fine-tune, or lora/qlora (checkpoints hold the adapters and their optimizer
    state only; the final model is merged at full size for the next stage)."""
    trainable = params if method == "full" else int(params * LORA_TRAINABLE_SHARE)
    per_checkpoint = trainable * (WEIGHT_BYTES + ADAM_BYTES)
    cache = cached_utterances * WHISPER_ENCODER_FRAMES * (encoder_d_model or 0) * FP16_BYTES
    export_bytes = sum(params * (FP16_BYTES if fmt in ("ct2", "gguf") else WEIGHT_BYTES) for fmt in exports)
    return SpaceNeed({
        f"{save_total_limit + 1} checkpoints": (save_total_limit + 1) * per_checkpoint,
        "final model": params * WEIGHT_BYTES,
        "encoder cache": cache,
        "exports": export_bytes,
    })


@dataclass(frozen=True)
class SpaceVerdict:
    fits: bool
    message: Phrase


def where_it_fits(need: SpaceNeed, backend: str, local_free: int | None) -> SpaceVerdict:
    """Whether the stage's writes fit where it runs: the local disk's free space, Kaggle's
    20 GB output, or a Modal Volume (no fixed limit: the amount is said so it can be planned)."""
    total, fr, en = need.total, need.describe("fr"), need.describe("en")
    if backend == "kaggle":
        fits = total <= KAGGLE_OUTPUT_BYTES
        limit = human(KAGGLE_OUTPUT_BYTES)
        return SpaceVerdict(fits, Phrase(
            f"il faut {fr} ; Kaggle garde au plus {limit} de sortie{'' if fits else ' : cela ne tiendra pas'}",
            f"needs {en}; Kaggle keeps at most {limit} of output{'' if fits else ': it will not fit'}"))
    if backend == "modal":
        return SpaceVerdict(True, Phrase(f"il faut {fr} sur le Volume Modal qui porte le dossier du run",
                                         f"needs {en} on the Modal Volume that holds the run folder"))
    if local_free is None:
        return SpaceVerdict(True, Phrase(f"il faut {fr} ; espace libre du disque local inconnu",
                                         f"needs {en}; free space on the local disk unknown"))
    fits, free = total <= local_free, human(local_free)
    return SpaceVerdict(fits, Phrase(
        f"il faut {fr} ; le disque local a {free} de libre{'' if fits else ' : il sera plein avant la fin'}",
        f"needs {en}; the local disk has {free} free{'' if fits else ': it will fill up during training'}"))
