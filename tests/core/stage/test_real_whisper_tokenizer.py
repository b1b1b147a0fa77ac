"""The imported real Whisper's tokenizer, generation config, collator, label bound and LoRA targets."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_tokenizer_round_trip_with_specials_and_timestamps(real_base):
    from transformers import WhisperTokenizer

    tok = WhisperTokenizer.from_pretrained(real_base)
    assert len(tok) == 51865 and tok.pad_token_id == tok.eos_token_id == 50257
    assert tok.all_special_ids[-1] == tok.convert_tokens_to_ids("<|notimestamps|>") == 50363
    assert len(tok.all_special_ids) == 107
    assert tok.convert_tokens_to_ids("<|0.00|>") == 50364 and tok.convert_tokens_to_ids("<|30.00|>") == 51864
    tok.set_prefix_tokens(language="french", task="transcribe", predict_timestamps=False)
    text = "Le patient présente une dyspnée d'effort, à 38,5 °C."
    ids = tok(text).input_ids
    assert ids[:4] == [50258, 50265, 50359, 50363] and ids[-1] == 50257
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.decode(ids).startswith("<|startoftranscript|><|fr|><|transcribe|><|notimestamps|>")
    # Timestamps: ordinary tokens after the specials, so Whisper's timestamp decoding finds them.
    words = tok(" bonjour", add_special_tokens=False).input_ids
    stamped = [50258, 50265, 50359, 50364, *words, 50364 + 50]
    assert tok.decode(stamped, skip_special_tokens=True).strip() == "bonjour"
    assert tok.decode(stamped, decode_with_timestamps=True).endswith("<|0.00|> bonjour<|1.00|>")
    offsets = tok.decode(stamped, output_offsets=True)["offsets"]
    assert offsets == [{"text": " bonjour", "timestamp": (0.0, 1.0)}]


def test_english_only_ids_are_shifted_by_one(real_tiny_en):
    from transformers import GenerationConfig, WhisperTokenizer

    tok = WhisperTokenizer.from_pretrained(real_tiny_en)
    gen = GenerationConfig.from_pretrained(real_tiny_en)
    assert len(tok) == 51864 and tok.eos_token_id == 50256
    assert tok.convert_tokens_to_ids("<|startoftranscript|>") == gen.decoder_start_token_id == 50257
    assert gen.no_timestamps_token_id == 50362 and tok.convert_tokens_to_ids("<|0.00|>") == 50363
    assert gen.is_multilingual is False and not getattr(gen, "lang_to_id", None)


def test_generation_config_supports_language_and_task(real_base):
    from transformers import GenerationConfig

    gen = GenerationConfig.from_pretrained(real_base)
    assert gen.decoder_start_token_id == 50258 and gen.no_timestamps_token_id == 50363
    assert gen.lang_to_id["<|fr|>"] == 50265 and len(gen.lang_to_id) == 99
    assert gen.task_to_id == {"translate": 50358, "transcribe": 50359}
    assert gen.begin_suppress_tokens == [220, 50257] and len(gen.suppress_tokens) == 88
    assert gen.is_multilingual and len(gen.alignment_heads) == 8 and gen.max_length == 448


def test_collator_strips_the_real_decoder_start_token(real_base):
    from transformers import WhisperTokenizer

    from core.stage.asr_data import SpeechCollator

    tok = WhisperTokenizer.from_pretrained(real_base)
    tok.set_prefix_tokens(language="french", task="transcribe", predict_timestamps=False)
    labels = tok(["Bonjour.", "Le patient tousse depuis hier soir."]).input_ids
    features = [{"input_features": np.zeros((80, 3000), np.float16), "labels": ids} for ids in labels]
    batch = SpeechCollator(50258, tok.pad_token_id)(features)
    assert batch["labels"][0, 0].item() == 50265  # <|fr|>: the model prepends <|startoftranscript|> itself
    assert (batch["labels"][0, len(labels[0]) - 1:] == -100).all()
    assert batch["input_features"].shape == (2, 80, 3000)


def test_labels_are_bounded_at_448_tokens(real_base, french_wav_files, tmp_path):
    from transformers import WhisperFeatureExtractor, WhisperTokenizer

    from core.events import EventLog
    from core.stage.asr_data import DROP_TOO_LONG_LABEL, prepare_speech
    from core.stage.sources import SpeechRecord

    tok = WhisperTokenizer.from_pretrained(real_base)
    tok.set_prefix_tokens(language="french", task="transcribe", predict_timestamps=False)
    overhead = len(tok("").input_ids)  # 4 prompt tokens + <|endoftext|>
    fits, too_long = " a" * (448 - overhead), " a" * (449 - overhead)
    assert len(tok(fits).input_ids) == 448 and len(tok(too_long).input_ids) == 449
    records = [SpeechRecord("fits", str(french_wav_files[0]), fits),
               SpeechRecord("too-long", str(french_wav_files[1]), too_long)]
    prepared = prepare_speech(records, WhisperFeatureExtractor.from_pretrained(real_base), tok, 30.0, 448,
                              tmp_path, EventLog(tmp_path / "events.jsonl"), "train", workers=1)
    assert prepared.ids == ["fits"] and len(prepared.labels[0]) == 448
    assert prepared.dropped == {DROP_TOO_LONG_LABEL: 1}
    assert prepared.features.shape == (1, 80, 3000)


def test_lora_targets_resolve_on_the_real_module_names(base_model):
    import copy

    from peft import LoraConfig, get_peft_model

    model = get_peft_model(copy.deepcopy(base_model), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    wrapped = sorted({n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A" in n})
    # whisper-base: 6 encoder self-attention, 6 decoder self-attention, 6 decoder cross-attention blocks
    assert len(wrapped) == 36
    assert sum(".encoder_attn.q_proj" in n for n in wrapped) == 6 and sum("encoder.layers" in n for n in wrapped) == 12
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 36 * 8 * (512 + 512)
