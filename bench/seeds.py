"""The seeds' own preprocessing (001) and evaluation loop (003), as written, as the references.

Departures from the seed text, each forced by this machine and applied the same way to the
palier side of every comparison:
- Audio decoding: seed 001 lets ``datasets``' ``Audio(sampling_rate=16000)`` decode and
  resample; that needs torchcodec, which has no CPU build beside the pinned torch
  (STACK_NOTES). ``prepare_dataset`` decodes with soundfile and resamples with librosa
  (soxr_hq), which is what ``datasets`` did before torchcodec.
- ``map(num_proc=4)`` deadlocks here once torch has run in the process (forked workers
  hang in torch's thread pool), so the reference runs ``num_proc=None`` (one process).
- Seed 003 runs on CUDA under autocast; here on CPU in float32, no autocast.
- ``max_new_tokens=255`` is capped at the model's ``max_target_positions`` minus the 4
  prompt tokens when that is smaller (the demo model has 160 positions; Transformers
  refuses a longer request).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEED_003_BATCH_SIZE = 8
SEED_003_MAX_NEW_TOKENS = 255
PROMPT_TOKENS = 4


def seed001_prepare(manifest: Path, feature_extractor, tokenizer, num_proc: int | None = None):
    """Seed 001: ``load_dataset("csv")`` then ``map(prepare_dataset)`` one example at a time."""
    import datasets
    import librosa
    import soundfile as sf

    dataset = datasets.load_dataset("csv", data_files={"train": str(manifest)}, split="train")
    folder = manifest.parent

    def prepare_dataset(batch):
        array, rate = sf.read(str(folder / batch["audio"]), dtype="float32")
        if array.ndim > 1:
            array = array.mean(axis=1)
        array = librosa.resample(array, orig_sr=rate, target_sr=16000, res_type="soxr_hq")
        batch["input_features"] = feature_extractor(array, sampling_rate=16000).input_features[0]
        batch["labels"] = tokenizer(batch["sentence"]).input_ids
        return batch

    return dataset.map(prepare_dataset, remove_columns=dataset.column_names, num_proc=num_proc,
                       load_from_cache_file=False)


@dataclass
class Seed003Collator:
    """Seed 003's DataCollatorSpeechSeq2SeqWithPadding, line for line."""

    processor: Any

    def __call__(self, features: list[dict]) -> dict:
        input_features = [{"input_features": feature["input_features"]} for feature in features]
        batch = self.processor.feature_extractor.pad(input_features, return_tensors="pt")
        label_features = [{"input_ids": feature["labels"]} for feature in features]
        labels_batch = self.processor.tokenizer.pad(label_features, return_tensors="pt")
        labels = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
        if (labels[:, 0] == self.processor.tokenizer.bos_token_id).all().cpu().item():
            labels = labels[:, 1:]
        batch["labels"] = labels
        return batch


def seed003_max_new_tokens(model) -> int:
    return min(SEED_003_MAX_NEW_TOKENS, model.config.max_target_positions - PROMPT_TOKENS)


def seed003_evaluate(model, processor, examples: list[dict]) -> tuple[list[str], list[str]]:
    """Seed 003's evaluation loop on CPU: DataLoader batch 8, ``generate`` per batch, decode.
    ``examples`` hold ``input_features`` and ``labels`` as seed 001's ``map`` produces them."""
    import torch
    from torch.utils.data import DataLoader

    max_new_tokens = seed003_max_new_tokens(model)
    eval_dataloader = DataLoader(examples, batch_size=SEED_003_BATCH_SIZE, collate_fn=Seed003Collator(processor))
    predictions, references = [], []
    model.eval()
    for batch in eval_dataloader:
        with torch.no_grad():
            generated_tokens = model.generate(input_features=batch["input_features"],
                                              max_new_tokens=max_new_tokens).cpu().numpy()
            labels = batch["labels"].cpu().numpy()
            labels = np.where(labels != -100, labels, processor.tokenizer.pad_token_id)
            decoded_preds = processor.tokenizer.batch_decode(generated_tokens, skip_special_tokens=True)
            decoded_labels = processor.tokenizer.batch_decode(labels, skip_special_tokens=True)
            predictions.extend(decoded_preds)
            references.extend(decoded_labels)
        gc.collect()
    return predictions, references


def load_seed_model(model_dir: Path, language: str):
    """Seed 001/003: ``from_pretrained`` then language and task on the generation config.
    float32 explicitly: the demo model is stored in float16, which the CPU runs far slower."""
    import torch
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    model.generation_config.language = language
    model.generation_config.task = "transcribe"
    return model
