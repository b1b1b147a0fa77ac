"""CTranslate2 export of a Whisper model, and its verification against Transformers.

``export_ct2`` converts with ctranslate2's TransformersConverter, then completes the folder so
faster-whisper can use it on its own: ``tokenizer.json``, ``preprocessor_config.json`` (the
audio window) and an empty-string entry in ``vocabulary.json``. CTranslate2 4.x reads that
entry as "this model is multilingual"; without it faster-whisper silently forces English.

``verify_ct2`` transcribes held-out audio with both models from the same log-Mel features
(the Transformers extractor's, audio padded with silence to the window), one utterance at a
time as a live transcription service would, and reports how often they agree and how fast
each is. Comparing anything else compares the inputs, not the export: faster-whisper's own
``transcribe()`` computes the log-Mel of the clip alone and pads it with zeros to 3000 frames,
which a real checkpoint hears differently on every clip shorter than 30 s (seen: 0 % identical
transcripts on a fine-tuned whisper-base where the same features give 100 %). That end-to-end
figure is still reported, separately, because it is what a faster-whisper deployment gets.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

QUANTIZATIONS = ("int8", "int16", "float16", "float32")
EXPORT_INFO = "palier_export.json"
# Bytes that never occur in UTF-8 text, so their byte-level BPE symbols are never produced:
# one of them can carry the "" marker without changing what any text decodes to.
_NEVER_IN_UTF8 = (0xC0, 0xC1, *range(0xF5, 0x100))
# faster-whisper's transcribe() pads every window to 3000 frames (30 s); shorter-window models
# are decoded window by window through the same CTranslate2 model instead.
FASTER_WHISPER_FRAMES = 3000
PROMPT_TOKENS = 4  # <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|>
EXAMPLES_IN_REPORT = 5


class ExportError(RuntimeError):
    pass


def language_code(language: str) -> str:
    """'french', 'fr' or '<|fr|>' -> 'fr'."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    name = language.strip().strip("<|>").lower()
    if name in LANGUAGES:
        return name
    if name in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[name]
    raise ExportError(f"unknown Whisper language {language!r}")


# -- export -------------------------------------------------------------------------------
def export_ct2(model_dir: str | Path, out_dir: str | Path, quantization: str = "int8") -> Path:
    """Write a faster-whisper model for the Transformers Whisper in ``model_dir``."""
    from ctranslate2.converters import TransformersConverter
    from transformers import WhisperTokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"quantization {quantization!r}: expected one of {', '.join(QUANTIZATIONS)}")
    if not (model_dir / "config.json").exists():
        raise ExportError(f"{model_dir}: not a saved Transformers model (no config.json)")
    if not (model_dir / "preprocessor_config.json").exists():
        raise ExportError(f"{model_dir}: no preprocessor_config.json; faster-whisper would assume a 30 s window")

    TransformersConverter(str(model_dir)).convert(str(out_dir), quantization=quantization, force=True)
    tokenizer = WhisperTokenizer.from_pretrained(model_dir)
    if (model_dir / "tokenizer.json").exists():
        shutil.copy(model_dir / "tokenizer.json", out_dir / "tokenizer.json")
    else:  # a slow-tokenizer save: faster-whisper needs tokenizer.json, so write it
        tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    shutil.copy(model_dir / "preprocessor_config.json", out_dir / "preprocessor_config.json")

    marker = None
    if _has_language_tokens(tokenizer):
        marker = mark_multilingual(out_dir / "vocabulary.json")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    info = {
        "source": str(model_dir.resolve()),
        "quantization": quantization,
        "max_target_positions": int(config["max_target_positions"]),
        "multilingual": _has_language_tokens(tokenizer),
        "multilingual_marker_replaced": marker,
    }
    (out_dir / EXPORT_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    return out_dir


def _has_language_tokens(tokenizer) -> bool:
    vocab = tokenizer.get_vocab()
    return "<|fr|>" in vocab and "<|en|>" in vocab


def mark_multilingual(vocabulary_file: Path) -> str | None:
    """Give the vocabulary the "" entry CTranslate2 uses to detect a multilingual Whisper.

    The entry replaces the symbol of a byte that valid UTF-8 never contains, so the model's
    size and every real token id stay as they are. Returns the replaced symbol, or None when
    the vocabulary already holds "" (real multilingual checkpoints do)."""
    tokens: list[str] = json.loads(vocabulary_file.read_text(encoding="utf-8"))
    if "" in tokens:
        return None
    for byte in _NEVER_IN_UTF8:
        symbol = chr(byte)  # GPT-2's byte-to-unicode table maps 0xC0-0xFF to themselves
        if symbol in tokens:
            tokens[tokens.index(symbol)] = ""
            vocabulary_file.write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
            return symbol
    raise ExportError(f"{vocabulary_file}: no byte-level symbol free to carry the multilingual marker; "
                      "is this a byte-level BPE Whisper tokenizer?")


# -- transcription with each engine ----------------------------------------------------------
class TransformersWhisper:
    """The reference: the saved model, greedy, as palier's evaluation decodes it."""

    def __init__(self, model_dir: str | Path):
        import torch
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer

        self.model = WhisperForConditionalGeneration.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
        self.extractor = WhisperFeatureExtractor.from_pretrained(model_dir)
        self.tokenizer = WhisperTokenizer.from_pretrained(model_dir)
        self.max_new_tokens = self.model.config.max_target_positions - PROMPT_TOKENS

    def features(self, wave: np.ndarray) -> np.ndarray:
        """(1, mels, frames) log-Mel of one utterance, the audio padded with silence to the window."""
        return self.extractor(wave, sampling_rate=16_000, return_tensors="np").input_features.astype(np.float32)

    def transcribe_features(self, features: np.ndarray, language: str) -> list[str]:
        import torch

        with torch.inference_mode():
            ids = self.model.generate(input_features=torch.from_numpy(features), language=language, task="transcribe",
                                      max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False)
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def transcribe(self, wave: np.ndarray, language: str) -> str:
        return self.transcribe_features(self.features(wave), language)[0]


class Ct2Whisper:
    """The exported model, loaded the way faster-whisper loads it."""

    def __init__(self, ct2_dir: str | Path, threads: int | None = None):
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(ct2_dir), device="cpu", compute_type="default",
                                  cpu_threads=threads or min(4, os.cpu_count() or 1))
        config = json.loads((Path(ct2_dir) / "preprocessor_config.json").read_text(encoding="utf-8"))
        self.hop = int(config["hop_length"])
        self.window_frames = int(config["chunk_length"]) * int(config["sampling_rate"]) // self.hop
        self.max_new_tokens = _max_target_positions(Path(ct2_dir)) - PROMPT_TOKENS
        # CTranslate2's Whisper generate stops after max_length // 2 new tokens (measured with
        # ctranslate2 4.8.5): twice the budget gives Transformers' max_new_tokens.
        self.model.max_length = 2 * self.max_new_tokens

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    @property
    def uses_faster_whisper_transcribe(self) -> bool:
        return self.window_frames == FASTER_WHISPER_FRAMES

    def transcribe(self, wave: np.ndarray, language: str) -> tuple[str, str]:
        """(text, language the decoder was prompted with)."""
        code = language_code(language)
        if self.uses_faster_whisper_transcribe:
            segments, info = self.model.transcribe(
                wave, language=code, task="transcribe", beam_size=1, best_of=1, temperature=0.0,
                condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
                no_speech_threshold=None, log_prob_threshold=None, compression_ratio_threshold=None)
            return "".join(s.text for s in segments).strip(), info.language
        window = self.window_frames * self.hop
        # As Transformers' extractor does: pad the audio, not the spectrogram, to the window.
        padded = np.pad(wave, (0, max(0, window - len(wave))))[:window].astype(np.float32)
        feats = self.model.feature_extractor(padded)[..., : self.window_frames]
        return self.transcribe_features(feats[None], code)[0], self._prompt_language(code)

    def transcribe_features(self, features: np.ndarray, language: str, max_new_tokens: int | None = None) -> list[str]:
        """Greedy decoding of a batch of log-Mel windows (N, mels, frames), at most
        ``max_new_tokens`` each (default: up to the decoder's positions)."""
        import ctranslate2

        code = language_code(language)
        tokenizer = self._tokenizer(code)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32))
        results = self.model.model.generate(batch, [prompt] * len(features), beam_size=1,
                                            max_length=2 * min(max_new_tokens or self.max_new_tokens,
                                                               self.max_new_tokens), suppress_blank=True,
                                            suppress_tokens=[-1])
        return [tokenizer.decode(r.sequences_ids[0]).strip() for r in results]

    def _tokenizer(self, code: str):
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe", language=code)

    def _prompt_language(self, code: str) -> str:
        return self._tokenizer(code).language_code


def _max_target_positions(ct2_dir: Path) -> int:
    info_file = ct2_dir / EXPORT_INFO
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    return int(info.get("max_target_positions", 448))  # 448: every OpenAI checkpoint


# -- verification -------------------------------------------------------------------------
def verify_ct2(model_dir: str | Path, ct2_dir: str | Path, audio_paths: Sequence[str | Path | bytes],
               language: str) -> dict[str, Any]:
    """Transcribe ``audio_paths`` with the Transformers model and the export from the same
    features; report agreement (the export check) and, for 30 s models, what faster-whisper's
    own ``transcribe()`` gives end to end (the deployment figure)."""
    from core.stage.audio import load_audio

    if not audio_paths:
        raise ExportError("verification needs at least one audio file")
    waves = [load_audio(a).samples for a in audio_paths]
    reference = TransformersWhisper(model_dir)
    exported = Ct2Whisper(ct2_dir)
    code = language_code(language)

    hf_texts, ct2_texts = [], []
    hf_seconds = ct2_seconds = 0.0
    for i, wave in enumerate(waves):
        features = reference.features(wave)
        # Alternate which engine goes first so a change of machine load hits both alike.
        for engine in (("hf", "ct2") if i % 2 == 0 else ("ct2", "hf")):
            t0 = time.perf_counter()
            if engine == "hf":
                hf_texts.append(reference.transcribe_features(features, code)[0])
                hf_seconds += time.perf_counter() - t0
            else:
                ct2_texts.append(exported.transcribe_features(features, code)[0])
                ct2_seconds += time.perf_counter() - t0

    languages = {exported._prompt_language(code)}
    deployed: dict[str, Any] | None = None
    if exported.uses_faster_whisper_transcribe:
        texts = []
        for wave in waves:
            text, decoded_language = exported.transcribe(wave, code)
            texts.append(text)
            languages.add(decoded_language)
        deployed = {**agreement_metrics(hf_texts, texts),
                    "note": "faster-whisper transcribe() on the audio: log-Mel of the clip alone, zero-padded to "
                            "3000 frames, where Transformers pads the audio with silence; clips shorter than 30 s "
                            "can decode differently for that reason alone",
                    "examples": [{"transformers": h, "faster_whisper": c} for h, c in zip(hf_texts, texts)
                                 if h != c][:EXAMPLES_IN_REPORT]}

    agreement = agreement_metrics(hf_texts, ct2_texts)
    audio_seconds = sum(len(w) for w in waves) / 16_000
    return {
        "samples": len(waves),
        "language": code,
        "ct2_multilingual": exported.multilingual,
        "ct2_decoded_languages": sorted(languages),
        "ct2_path": f"ctranslate2 generate on the Transformers log-Mel features ({exported.window_frames} frames), "
                    "same prompt, suppress lists and new-token budget",
        **agreement,
        "transformers_seconds": round(hf_seconds, 3),
        "ct2_seconds": round(ct2_seconds, 3),
        "ct2_speedup": round(hf_seconds / ct2_seconds, 2) if ct2_seconds > 0 else None,
        "audio_seconds": round(audio_seconds, 2),
        "examples": [{"transformers": h, "ct2": c} for h, c in zip(hf_texts, ct2_texts)][:EXAMPLES_IN_REPORT],
        "faster_whisper_transcribe": deployed,
    }


def agreement_metrics(reference: Sequence[str], candidate: Sequence[str]) -> dict[str, float | None]:
    """Exact-match share, and WER/CER of ``candidate`` against ``reference`` (None when every
    reference is empty, which jiwer cannot score)."""
    import jiwer

    norm = [" ".join(t.split()) for t in reference]
    cand = [" ".join(t.split()) for t in candidate]
    exact = sum(a == b for a, b in zip(norm, cand)) / len(norm)
    pairs = [(r, c) for r, c in zip(norm, cand) if r]
    wer = cer = None
    if pairs:
        refs, hyps = [r for r, _ in pairs], [c for _, c in pairs]
        wer, cer = float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))
    return {"exact_match": round(exact, 4),
            "wer_vs_transformers": None if wer is None else round(wer, 4),
            "cer_vs_transformers": None if cer is None else round(cer, 4)}


# -- the optional last step of a stage ----------------------------------------------------
def export_stage_output(spec, model_dir: Path, out_dir: Path, cache_dir: Path, events=None) -> dict[str, Any]:
    """Export the stage's saved model and verify it on the first utterances of its primary
    eval set. Returns the report stored as ``StageResult.exported``."""
    from core.stage.sources import speech_records

    settings = spec.stage.export
    base_dir = Path(spec.pipeline_file).resolve().parent if spec.pipeline_file else None
    records = speech_records(spec.stage.primary_eval.data, base_dir, cache_dir)
    audio = [r.audio for r in records if r.text.strip()][: settings.verify_samples]
    t0 = time.perf_counter()
    export_ct2(model_dir, out_dir, settings.quantization)
    seconds = time.perf_counter() - t0
    report = verify_ct2(model_dir, out_dir, audio, spec.language)
    if events is not None:
        level = "info" if report["exact_match"] >= 0.5 and report["ct2_multilingual"] else "warning"
        events.log(f"exported {out_dir.name} ({settings.quantization}): {report['exact_match']:.0%} of "
                   f"{report['samples']} held-out transcripts identical to Transformers, CER between them "
                   f"{report['cer_vs_transformers']}, {report['ct2_speedup']}x faster", level)
    return {"format": settings.format, "quantization": settings.quantization, "path": out_dir.name,
            "export_seconds": round(seconds, 3), "size_mb": round(_folder_mb(out_dir), 2),
            "verification": report}


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
