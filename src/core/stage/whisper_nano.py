"""Build a tiny, genuinely multilingual-shaped Whisper locally (no hub download).

Used to create the demo's French base model (scripts/pretrain_nano_whisper.py) and the
tiny models of the tests. The tokenizer is character-level byte-level BPE: the 256 byte
symbols plus one merged symbol per accented French letter, followed by Whisper's special
tokens in Whisper's order (end-of-text, start-of-transcript, every language, tasks,
no-timestamps), so the generation config can carry `lang_to_id` / `task_to_id` exactly as
the real checkpoints do and `generate(language="fr", task="transcribe")` works.
"""

from __future__ import annotations

from tokenizers import pre_tokenizers
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizer,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from core.stage.random_models import seeded, with_defaults

FRENCH_LETTERS = "àâäçéèêëîïôöùûüÿœæÀÂÄÇÉÈÊËÎÏÔÖÙÛÜŸŒÆ’«»"
SAMPLING_RATE = 16_000
HOP_LENGTH = 160


def _byte_symbols() -> list[str]:
    # GPT-2's byte->unicode table, in byte order, so token i is byte i.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    table = dict(zip(printable, chars))
    return [chr(table[b]) for b in range(256)]


def special_tokens() -> list[str]:
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in LANGUAGES],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]


def build_tokenizer() -> WhisperTokenizer:
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    merges: list[tuple[str, str]] = []
    for letter in FRENCH_LETTERS:
        pieces = [symbols[b] for b in letter.encode("utf-8")]
        # Merge left to right: a 3-byte letter needs the 2-byte prefix merged first.
        current = pieces[0]
        for piece in pieces[1:]:
            merges.append((current, piece))
            current = current + piece
            vocab.setdefault(current, len(vocab))
    assert len(pre_tokenizers.ByteLevel.alphabet()) == 256
    specials = special_tokens()
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.add_special_tokens({"eos_token": specials[0], "pad_token": specials[0]})
    tokenizer.model_max_length = 1024
    return tokenizer


def build_feature_extractor(chunk_length: int = 6) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(
        feature_size=80, sampling_rate=SAMPLING_RATE, hop_length=HOP_LENGTH, chunk_length=chunk_length
    )


def generation_config_for(tokenizer: WhisperTokenizer, max_length: int) -> GenerationConfig:
    ids = tokenizer.convert_tokens_to_ids
    eos = ids("<|endoftext|>")
    config = GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        eos_token_id=eos,
        pad_token_id=eos,
        bos_token_id=eos,
        max_length=max_length,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        begin_suppress_tokens=[eos],
        suppress_tokens=[],
        return_timestamps=False,
    )
    return config


# The demo model's size; the tests pass smaller values.
DEFAULT_SIZE = {"chunk_length": 6, "d_model": 192, "layers": 3, "heads": 4, "ffn": 768, "max_target_positions": 160}


def build_model(tokenizer: WhisperTokenizer, seed: int = 0, **size: int) -> WhisperForConditionalGeneration:
    """A random-weight Whisper; ``size`` overrides any of ``DEFAULT_SIZE``."""
    size = with_defaults(DEFAULT_SIZE, size)
    ids = tokenizer.convert_tokens_to_ids
    eos = ids("<|endoftext|>")
    frames = size["chunk_length"] * SAMPLING_RATE // HOP_LENGTH
    layers, heads, ffn = size["layers"], size["heads"], size["ffn"]
    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, d_model=size["d_model"],
                           encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
                           decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
                           max_source_positions=frames // 2, max_target_positions=size["max_target_positions"],
                           decoder_start_token_id=ids("<|startoftranscript|>"), pad_token_id=eos, bos_token_id=eos,
                           eos_token_id=eos, suppress_tokens=[], begin_suppress_tokens=[eos])
    model = seeded(seed, WhisperForConditionalGeneration, config)
    model.generation_config = generation_config_for(tokenizer, size["max_target_positions"])
    return model
