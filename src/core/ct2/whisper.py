"""A faster-whisper (CTranslate2) Whisper read back into Transformers terms, with numpy alone.

This is ctranslate2's ``WhisperLoader`` (ctranslate2/converters/transformers.py) run
backwards: CTranslate2 fuses self-attention q/k/v into one linear and cross-attention k/v
into another, stores zeros for Whisper's bias-free k_proj, and keeps the output projection
as an alias of the decoder token embeddings. Sizes come from the tensor shapes.

The token layout is decided by the vocabulary size, not by CTranslate2's ``config.json``
(which lists the multilingual language ids even for English-only models): 51,864 tokens =
English-only (every special id one lower), 51,865 = multilingual with 99 languages,
51,866 = large-v3 with 100 (``<|yue|>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.ct2.model_bin import Ct2Model

WHISPER_SPEC = "WhisperSpec"
MULTILINGUAL_MIN_VOCAB = 51865
TIMESTAMP_TOKENS = 1501  # <|0.00|> ... <|30.00|> every 20 ms
MAX_INITIAL_TIMESTAMP_INDEX = 50  # openai/whisper: the first timestamp within 1 s
GELU = 3  # ctranslate2 ActivationType
_TASK_TOKENS = ("<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
                "<|notimestamps|>")
_LANGUAGE_TOKEN = re.compile(r"^<\|([a-z]{2,3}|haw|yue)\|>$")


class NotWhisperError(ValueError):
    pass


class QuantizedModelError(ValueError):
    pass


@dataclass(frozen=True)
class TokenLayout:
    """Every special token of a Whisper vocabulary and its id."""

    specials: tuple[str, ...]  # in id order, from <|endoftext|> to <|notimestamps|>
    first_id: int  # id of <|endoftext|>
    vocab_size: int

    def id(self, token: str) -> int:
        return self.first_id + self.specials.index(token)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(t for t in self.specials if _LANGUAGE_TOKEN.match(t))

    @property
    def multilingual(self) -> bool:
        return self.vocab_size >= MULTILINGUAL_MIN_VOCAB

    @property
    def timestamp_begin(self) -> int:
        return self.id("<|notimestamps|>") + 1

    def timestamps(self) -> list[str]:
        return ["<|%.2f|>" % (i * 0.02) for i in range(TIMESTAMP_TOKENS)]


def token_layout(tokenizer_json: dict[str, Any], vocab_size: int) -> TokenLayout:
    """The special tokens CTranslate2's ``tokenizer.json`` registers, checked against the
    model's vocabulary size (text tokens + specials + 1,501 timestamps)."""
    added = sorted(tokenizer_json.get("added_tokens", []), key=lambda a: a["id"])
    specials = tuple(a["content"] for a in added if a.get("special"))
    if not specials or specials[0] != "<|endoftext|>" or specials[-1] != "<|notimestamps|>":
        raise NotWhisperError("tokenizer.json: expected Whisper's special tokens <|endoftext|> ... <|notimestamps|>")
    first = min(a["id"] for a in added if a.get("special"))
    ids = [a["id"] for a in added if a.get("special")]
    if ids != list(range(first, first + len(ids))):
        raise NotWhisperError("tokenizer.json: Whisper's special token ids are not consecutive")
    missing = [t for t in ("<|startoftranscript|>", *_TASK_TOKENS) if t not in specials]
    if missing:
        raise NotWhisperError(f"tokenizer.json: missing Whisper special tokens {missing}")
    layout = TokenLayout(specials, first, vocab_size)
    expected = first + len(specials) + TIMESTAMP_TOKENS
    if expected != vocab_size:
        raise NotWhisperError(f"tokenizer.json: {first} text tokens + {len(specials)} specials + {TIMESTAMP_TOKENS} "
                              f"timestamps = {expected}, but the model has {vocab_size} token embeddings")
    return layout


def check_whisper(model: Ct2Model) -> None:
    if model.spec != WHISPER_SPEC:
        raise NotWhisperError(f"{model.path}: a CTranslate2 {model.spec!r} model, not a Whisper model (WhisperSpec)")
    quantized = sorted(model.weight_dtypes() - {"float32", "float16", "bfloat16"})
    if quantized or any(n.endswith("weight_scale") for n in model.variables):
        raise QuantizedModelError(
            f"{model.path}: weights quantized to {', '.join(quantized) or 'int8'}; the original float weights "
            "cannot be recovered from a quantized export. Import the float16/float32 model "
            "(ct2-transformers-converter --quantization float16) instead")
    for name, expected in (("decoder/scale_embeddings", 0), ("decoder/pre_norm", 1), ("encoder/pre_norm", 1),
                           ("decoder/activation", GELU)):
        if name in model.variables and int(model.variables[name]) != expected:
            raise NotWhisperError(f"{model.path}: {name} = {int(model.variables[name])}, Whisper has {expected}")


def _layers(model: Ct2Model, prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    found = {int(m.group(1)) for n in model.variables if (m := pattern.match(n))}
    if not found or found != set(range(max(found) + 1)):
        raise NotWhisperError(f"{model.path}: {prefix} layers {sorted(found)} are not 0..N-1")
    return max(found) + 1


def whisper_config(model: Ct2Model, layout: TokenLayout) -> dict[str, Any]:
    """WhisperConfig arguments read from the tensor shapes."""
    embeddings = model.get("decoder/embeddings/weight")
    conv1 = model.get("encoder/conv1/weight")
    fc1 = model.get("encoder/layer_0/ffn/linear_0/weight")
    dec_fc1 = model.get("decoder/layer_0/ffn/linear_0/weight")
    eot = layout.id("<|endoftext|>")
    return {
        "vocab_size": int(embeddings.shape[0]),
        "num_mel_bins": int(conv1.shape[1]),
        "d_model": int(embeddings.shape[1]),
        "encoder_layers": _layers(model, "encoder"),
        "decoder_layers": _layers(model, "decoder"),
        "encoder_attention_heads": int(model.variables["encoder/num_heads"]),
        "decoder_attention_heads": int(model.variables["decoder/num_heads"]),
        "encoder_ffn_dim": int(fc1.shape[0]),
        "decoder_ffn_dim": int(dec_fc1.shape[0]),
        "max_source_positions": int(model.get("encoder/position_encodings/encodings").shape[0]),
        "max_target_positions": int(model.get("decoder/position_encodings/encodings").shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "pad_token_id": eot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "decoder_start_token_id": layout.id("<|startoftranscript|>"),
    }


def generation_config(layout: TokenLayout, ct2_config: dict[str, Any], max_length: int) -> dict[str, Any]:
    """GenerationConfig arguments for ``generate(language=..., task=...)``: suppress lists and
    alignment heads from CTranslate2's ``config.json``, token ids from the vocabulary layout."""
    eot = layout.id("<|endoftext|>")
    config: dict[str, Any] = {
        "decoder_start_token_id": layout.id("<|startoftranscript|>"),
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "max_length": max_length,
        "suppress_tokens": [int(t) for t in ct2_config.get("suppress_ids", [])],
        "begin_suppress_tokens": [int(t) for t in ct2_config.get("suppress_ids_begin", [220, eot])],
        "alignment_heads": [[int(a), int(b)] for a, b in ct2_config.get("alignment_heads", [])],
        "no_timestamps_token_id": layout.id("<|notimestamps|>"),
        "prev_sot_token_id": layout.id("<|startofprev|>"),
        "max_initial_timestamp_index": MAX_INITIAL_TIMESTAMP_INDEX,
        "is_multilingual": layout.multilingual,
        "return_timestamps": False,
    }
    if layout.multilingual:
        config["lang_to_id"] = {t: layout.id(t) for t in layout.languages}
        config["task_to_id"] = {"translate": layout.id("<|translate|>"), "transcribe": layout.id("<|transcribe|>")}
    return config


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


class _StateDict:
    """Collects Transformers weight names from CTranslate2 variables, one layer piece at a time."""

    def __init__(self, model: Ct2Model):
        self.model = model
        self.d_model = int(model.get("decoder/embeddings/weight").shape[1])
        self.out: dict[str, np.ndarray] = {}

    def copy(self, hf: str, ct2: str) -> None:
        self.out[hf] = _f32(self.model.get(ct2))

    def linear(self, hf: str, ct2: str) -> None:
        self.copy(f"{hf}.weight", f"{ct2}/weight")
        self.copy(f"{hf}.bias", f"{ct2}/bias")

    def norm(self, hf: str, ct2: str) -> None:
        self.copy(f"{hf}.weight", f"{ct2}/gamma")
        self.copy(f"{hf}.bias", f"{ct2}/beta")

    def split(self, hf: str, names: tuple[str, ...], ct2: str) -> None:
        """CTranslate2 fuses q/k/v (or k/v) into one projection; Transformers keeps them apart."""
        weight, bias = self.model.get(f"{ct2}/weight"), self.model.get(f"{ct2}/bias")
        if weight.shape[0] != self.d_model * len(names):
            raise NotWhisperError(f"{self.model.path}: {ct2}/weight has {weight.shape[0]} rows, expected "
                                  f"{self.d_model} x {len(names)} fused projections")
        for i, name in enumerate(names):
            rows = slice(i * self.d_model, (i + 1) * self.d_model)
            self.out[f"{hf}.{name}.weight"] = _f32(weight[rows])
            if name != "k_proj":  # Whisper's k_proj has no bias; CTranslate2 stores zeros there
                self.out[f"{hf}.{name}.bias"] = _f32(bias[rows])

    def self_attention(self, hf: str, ct2: str) -> None:
        self.norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        self.split(f"{hf}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{ct2}/self_attention/linear_0")
        self.linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")

    def cross_attention(self, hf: str, ct2: str) -> None:
        self.norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        self.linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
        self.split(f"{hf}.encoder_attn", ("k_proj", "v_proj"), f"{ct2}/attention/linear_1")
        self.linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")

    def ffn(self, hf: str, ct2: str) -> None:
        self.norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
        self.linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        self.linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")

    def encoder(self) -> None:
        for i in ("conv1", "conv2"):
            self.linear(f"model.encoder.{i}", f"encoder/{i}")
        self.copy("model.encoder.embed_positions.weight", "encoder/position_encodings/encodings")
        for n in range(_layers(self.model, "encoder")):
            hf, ct2 = f"model.encoder.layers.{n}", f"encoder/layer_{n}"
            self.self_attention(hf, ct2)
            self.ffn(hf, ct2)
        self.norm("model.encoder.layer_norm", "encoder/layer_norm")

    def decoder(self) -> None:
        self.copy("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
        self.copy("model.decoder.embed_positions.weight", "decoder/position_encodings/encodings")
        for n in range(_layers(self.model, "decoder")):
            hf, ct2 = f"model.decoder.layers.{n}", f"decoder/layer_{n}"
            self.self_attention(hf, ct2)
            self.cross_attention(hf, ct2)
            self.ffn(hf, ct2)
        self.norm("model.decoder.layer_norm", "decoder/layer_norm")


def _check_tied_projection(model: Ct2Model) -> None:
    projection = model.aliases.get("decoder/projection/weight")
    if projection != "decoder/embeddings/weight" and not np.array_equal(
            model.get("decoder/projection/weight"), model.get("decoder/embeddings/weight")):
        raise NotWhisperError(f"{model.path}: the output projection is not tied to the token embeddings, "
                              "as every Whisper checkpoint's is")


def whisper_state_dict(model: Ct2Model) -> dict[str, np.ndarray]:
    """Transformers ``WhisperForConditionalGeneration`` weights (float32), ``proj_out`` tied."""
    weights = _StateDict(model)
    weights.encoder()
    weights.decoder()
    _check_tied_projection(model)
    return weights.out
