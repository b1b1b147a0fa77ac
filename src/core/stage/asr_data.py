"""ASR preprocessing: decode, filter with named reasons, batched feature extraction, cached
on disk by content hash, and the training collator."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.events import EventLog
from core.stage.audio import AudioError, load_audio
from core.stage.cancel import check_cancel
from core.stage.sources import SpeechRecord

CHUNK = 64
# Below this many utterances a process pool costs more than it saves, and forking inside a
# process that already holds torch threads is how `datasets.map(num_proc>1)` deadlocks.
POOL_THRESHOLD = 2000

DROP_UNREADABLE = "unreadable_audio"
DROP_EMPTY_TEXT = "empty_transcript"
DROP_TOO_LONG_AUDIO = "audio_longer_than_window"
DROP_TOO_LONG_LABEL = "label_longer_than_max_target_positions"


@dataclass
class PreparedSet:
    ids: list[str]
    texts: list[str]
    features: np.ndarray  # (N, mel, frames) float16
    labels: list[np.ndarray]
    durations: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_examples: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def report(self) -> dict:
        return {"kept": len(self), "dropped": dict(self.dropped), "dropped_examples": self.dropped_examples}


def _record_fingerprint(r: SpeechRecord) -> list:
    if isinstance(r.audio, bytes):
        return [r.id, hashlib.sha256(r.audio).hexdigest(), r.text]
    try:
        st = os.stat(r.audio)
        return [r.id, r.audio, st.st_size, st.st_mtime_ns, r.text]
    except OSError:
        return [r.id, r.audio, None, r.text]


def cache_key(records: list[SpeechRecord], extractor_config: dict, tokenizer_digest: str, limits: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([extractor_config, tokenizer_digest, limits], sort_keys=True, default=str).encode())
    for r in records:
        h.update(json.dumps(_record_fingerprint(r), default=str).encode())
    return h.hexdigest()[:20]


MEL_GROUP = 16


def log_mel(waves: list[np.ndarray], extractor) -> np.ndarray:
    """``extractor(waves).input_features`` (Whisper log-Mel, padded to the window), computed
    only where there is audio. A frame that sees nothing but the zero padding has zero power,
    so it is filled in instead of transformed: most of a 30 s window, for a 5 s utterance.
    Utterances are grouped by length so that each group pads only to its own longest."""
    if extractor.dither != 0.0 or getattr(extractor, "do_normalize", False):
        return extractor(waves, sampling_rate=16_000, return_tensors="np").input_features
    hop, n_fft, window = extractor.hop_length, extractor.n_fft, extractor.n_samples
    frames = window // hop
    mel_filters = torch.from_numpy(extractor.mel_filters).to(torch.float32).T
    hann = torch.hann_window(n_fft)
    out = np.empty((len(waves), mel_filters.shape[0], frames), dtype=np.float32)
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    for start in range(0, len(order), MEL_GROUP):
        group = order[start : start + MEL_GROUP]
        longest = min(window, max(len(waves[i]) for i in group))
        # Past longest + n_fft every frame and its reflected edge are zeros, as in the full window.
        span = min(window, -(-(longest + n_fft) // hop) * hop)
        batch = torch.zeros(len(group), span)
        for row, i in enumerate(group):
            wave = torch.from_numpy(np.asarray(waves[i][:span], dtype=np.float32))
            batch[row, : len(wave)] = wave
        computed = span // hop
        stft = torch.stft(batch, n_fft, hop, window=hann, return_complex=True)[..., :computed]
        power = stft.real.square() + stft.imag.square()
        log_spec = (mel_filters @ power).clamp(min=1e-10).log10()
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        if computed < frames:  # the padding frames' log power is log10(1e-10) = -10
            peak = peak.clamp(min=-10.0)
        floor = peak - 8.0
        values = ((torch.maximum(log_spec, floor) + 4.0) / 4.0).numpy()
        padding = ((floor.clamp(min=-10.0) + 4.0) / 4.0).numpy()
        for row, i in enumerate(group):
            out[i, :, :computed] = values[row]
            out[i, :, computed:] = padding[row]
    return out


def _featurize_chunk(args) -> dict:
    records, extractor, tokenizer, window_s, max_label = args
    keep_ids, keep_texts, waves, durations = [], [], [], []
    dropped: Counter = Counter()
    examples: dict[str, list[str]] = {}

    def drop(reason: str, record: SpeechRecord, detail: str = "") -> None:
        dropped[reason] += 1
        examples.setdefault(reason, [])
        if len(examples[reason]) < 5:
            examples[reason].append(f"{record.id}{': ' + detail if detail else ''}")

    for r in records:
        if not r.text.strip():
            drop(DROP_EMPTY_TEXT, r)
            continue
        try:
            audio = load_audio(r.audio)
        except AudioError as exc:
            drop(DROP_UNREADABLE, r, str(exc))
            continue
        if audio.duration_s > window_s:
            drop(DROP_TOO_LONG_AUDIO, r, f"{audio.duration_s:.1f}s > {window_s}s")
            continue
        keep_ids.append(r.id)
        keep_texts.append(r.text)
        waves.append(audio.samples)
        durations.append(audio.duration_s)
    labels: list[np.ndarray] = []
    feats = np.zeros((0,), dtype=np.float16)
    if waves:
        feats = log_mel(waves, extractor).astype(np.float16)
        token_ids = tokenizer(keep_texts).input_ids
        mask = []
        for rid, ids in zip(keep_ids, token_ids):
            ok = len(ids) <= max_label
            mask.append(ok)
            if ok:
                labels.append(np.asarray(ids, dtype=np.int32))
            else:
                drop(DROP_TOO_LONG_LABEL, SpeechRecord(rid, "", ""), f"{len(ids)} tokens > {max_label}")
        mask_arr = np.asarray(mask, dtype=bool)
        feats = feats[mask_arr]
        keep_ids = [i for i, m in zip(keep_ids, mask) if m]
        keep_texts = [t for t, m in zip(keep_texts, mask) if m]
        durations = [d for d, m in zip(durations, mask) if m]
    return {"ids": keep_ids, "texts": keep_texts, "features": feats, "labels": labels,
            "durations": durations, "dropped": dict(dropped), "examples": examples}


def worker_count(n: int, requested: int | None) -> int:
    if requested is not None:
        return requested
    if n < POOL_THRESHOLD:
        return 1
    return max(1, min(8, (os.cpu_count() or 1)))


def prepare_speech(
    records: list[SpeechRecord],
    extractor,
    tokenizer,
    window_s: float,
    max_label_tokens: int,
    cache_dir: Path,
    events: EventLog,
    label: str,
    workers: int | None = None,
) -> PreparedSet:
    tokenizer_digest = hashlib.sha256(
        json.dumps([len(tokenizer), tokenizer.prefix_tokens], default=str).encode()
    ).hexdigest()[:12]
    key = cache_key(records, extractor.to_dict(), tokenizer_digest, {"window": window_s, "max_label": max_label_tokens})
    cache_file = cache_dir / "asr-features" / f"{key}.npz"
    if cache_file.exists():
        events.log(f"{label}: reusing preprocessed features {cache_file.name}")
        return _load(cache_file)

    chunks = [records[i : i + CHUNK] for i in range(0, len(records), CHUNK)]
    n_workers = worker_count(len(records), workers)
    events.log(f"{label}: preprocessing {len(records)} utterances in {len(chunks)} batches, {n_workers} process(es)")
    parts = []
    jobs = ((c, extractor, tokenizer, window_s, max_label_tokens) for c in chunks)
    if n_workers == 1:
        for i, job in enumerate(jobs, 1):
            check_cancel(f"preprocessing {label}")
            parts.append(_featurize_chunk(job))
            events.progress(min(i * CHUNK, len(records)), len(records))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            for i, part in enumerate(pool.map(_featurize_chunk, jobs), 1):
                check_cancel(f"preprocessing {label}")
                parts.append(part)
                events.progress(min(i * CHUNK, len(records)), len(records))
    prepared = _merge(parts)
    if len(prepared) == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in prepared.dropped.items()) or "no records"
        raise ValueError(f"{label}: no usable utterance left after filtering ({reasons}); "
                         f"examples: {prepared.dropped_examples}")
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    _save(prepared, cache_file)
    return prepared


def _merge(parts: list[dict]) -> PreparedSet:
    dropped: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for p in parts:
        dropped.update(p["dropped"])
        for k, v in p["examples"].items():
            examples.setdefault(k, []).extend(v)
    non_empty = [p["features"] for p in parts if len(p["ids"])]
    feats = np.concatenate(non_empty) if non_empty else np.zeros((0, 0, 0), dtype=np.float16)
    return PreparedSet(
        ids=[i for p in parts for i in p["ids"]],
        texts=[t for p in parts for t in p["texts"]],
        features=feats,
        labels=[lab for p in parts for lab in p["labels"]],
        durations=np.asarray([d for p in parts for d in p["durations"]], dtype=np.float32),
        dropped=dict(dropped),
        dropped_examples={k: v[:5] for k, v in examples.items()},
    )


def _save(p: PreparedSet, path: Path) -> None:
    lengths = np.asarray([len(x) for x in p.labels], dtype=np.int32)
    flat = np.concatenate(p.labels) if p.labels else np.zeros(0, dtype=np.int32)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # a search's trials may prepare the same set at once
    np.savez(tmp, features=p.features, labels=flat, lengths=lengths, durations=p.durations,
             meta=np.asarray(json.dumps({"ids": p.ids, "texts": p.texts, "dropped": p.dropped,
                                         "examples": p.dropped_examples})))
    tmp.replace(path)


def _load(path: Path) -> PreparedSet:
    data = np.load(path)
    meta = json.loads(str(data["meta"]))
    offsets = np.concatenate([[0], np.cumsum(data["lengths"])])
    flat = data["labels"]
    labels = [flat[offsets[i] : offsets[i + 1]] for i in range(len(data["lengths"]))]
    return PreparedSet(ids=meta["ids"], texts=meta["texts"], features=data["features"], labels=labels,
                       durations=data["durations"], dropped=meta["dropped"], dropped_examples=meta["examples"])


class SpeechDataset(torch.utils.data.Dataset):
    """Log-Mel features and labels; or, when ``encoder_states`` is given (a frozen encoder's
    outputs for every utterance of ``prepared``), those states instead of the features; or, when
    ``cross_kv`` is given (frozen cross-attention keys/values), those."""

    def __init__(self, prepared: PreparedSet, indices: list[int] | None = None,
                 encoder_states: np.ndarray | None = None, cross_kv: np.ndarray | None = None):
        self.prepared = prepared
        self.indices = indices if indices is not None else list(range(len(prepared)))
        self.encoder_states = encoder_states
        self.cross_kv = cross_kv

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        j = self.indices[i]
        if self.cross_kv is not None:
            return {"cross_kv": self.cross_kv[j], "labels": self.prepared.labels[j]}
        if self.encoder_states is not None:
            return {"encoder_states": self.encoder_states[j], "labels": self.prepared.labels[j]}
        return {"input_features": self.prepared.features[j], "labels": self.prepared.labels[j]}


@dataclass
class SpeechCollator:
    """Pads labels with -100 (ignored by the loss) and strips a leading decoder start token:
    the model prepends it itself when it shifts the labels right, so keeping it would train
    the model to predict it twice."""

    decoder_start_token_id: int
    pad_token_id: int
    attention_heads: int = 0  # needed with cross_kv features

    def __call__(self, features: list[dict]) -> dict:
        if "cross_kv" in features[0]:
            from transformers.modeling_outputs import BaseModelOutput

            from core.stage.frozen_encoder import filled_cross_cache

            kv = torch.from_numpy(np.stack([f["cross_kv"] for f in features]).astype(np.float32))
            # The decoder layers still take encoder_hidden_states to decide that cross-attention
            # runs; its keys and values come from the cache, so one position stands for all.
            placeholder = torch.zeros(len(features), 1, kv.shape[-1])
            # use_cache: without it (the Trainer sets config.use_cache from its arguments, False)
            # the decoder ignores the cache and would attend to the placeholder.
            inputs: dict = {"encoder_outputs": BaseModelOutput(last_hidden_state=placeholder),
                            "past_key_values": filled_cross_cache(kv, self.attention_heads), "use_cache": True}
        elif "encoder_states" in features[0]:
            from transformers.modeling_outputs import BaseModelOutput

            states = torch.from_numpy(np.stack([f["encoder_states"] for f in features]).astype(np.float32))
            inputs = {"encoder_outputs": BaseModelOutput(last_hidden_state=states)}
        else:
            inputs = {"input_features": torch.from_numpy(np.stack([f["input_features"] for f in features]).astype(np.float32))}
        width = max(len(f["labels"]) for f in features)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for row, f in enumerate(features):
            labels[row, : len(f["labels"])] = torch.as_tensor(f["labels"], dtype=torch.long)
        if (labels[:, 0] == self.decoder_start_token_id).all():
            labels = labels[:, 1:]
        return {**inputs, "labels": labels}
