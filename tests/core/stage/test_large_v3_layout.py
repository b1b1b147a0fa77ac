"""large-v3's differences, on a small random model of that shape with the real tokenizer layout:
128 mel bins and 51,866 tokens (``<|yue|>`` added after the 99 languages, every later special
id one higher). The model goes HF -> CTranslate2 (ctranslate2's converter) -> import-ct2."""

from __future__ import annotations

import copy
import json
import shutil

import pytest

pytestmark = pytest.mark.integration


def _large_v3_tokenizer_json(base_tokenizer: dict) -> dict:
    tok = copy.deepcopy(base_tokenizer)
    added = sorted(tok["added_tokens"], key=lambda a: a["id"])
    su = next(a for a in added if a["content"] == "<|su|>")
    for a in added:
        if a["id"] > su["id"]:
            a["id"] += 1
    added.insert(added.index(su) + 1, {**su, "id": su["id"] + 1, "content": "<|yue|>"})
    tok["added_tokens"] = added
    ids = {a["content"]: a["id"] for a in added}
    for name, entry in tok["post_processor"]["special_tokens"].items():
        entry["ids"] = [ids[name]]
    return tok


@pytest.fixture(scope="module")
def large_v3_ct2(base_ct2, tmp_path_factory):
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    from core.ct2.whisper import generation_config, token_layout
    from core.ct2.importer import build_tokenizer

    root = tmp_path_factory.mktemp("large-v3")
    tok_json = _large_v3_tokenizer_json(json.loads((base_ct2 / "tokenizer.json").read_text(encoding="utf-8")))
    (root / "tokenizer.json").write_text(json.dumps(tok_json, ensure_ascii=False), encoding="utf-8")
    layout = token_layout(tok_json, 51866)
    gen = generation_config(layout, json.loads((base_ct2 / "config.json").read_text(encoding="utf-8")), 448)
    torch.manual_seed(0)
    eot = layout.id("<|endoftext|>")
    config = WhisperConfig(vocab_size=51866, num_mel_bins=128, d_model=64, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
                           decoder_ffn_dim=128, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
                           decoder_start_token_id=layout.id("<|startoftranscript|>"))
    hf = root / "hf"
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(**{**gen, "lang_to_id": gen["lang_to_id"]})
    model.save_pretrained(hf)
    build_tokenizer(root / "tokenizer.json", layout).save_pretrained(hf)
    WhisperFeatureExtractor(feature_size=128).save_pretrained(hf)
    ct2 = root / "ct2"
    TransformersConverter(str(hf)).convert(str(ct2), quantization="float16")
    shutil.copy(root / "tokenizer.json", ct2 / "tokenizer.json")
    return ct2


def test_large_v3_shape_imports_with_its_own_token_layout(large_v3_ct2, french_waves, tmp_path):
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperTokenizer

    from core.ct2.importer import compare_token_ids, import_ct2, round_trip

    out = tmp_path / "imported"
    summary = import_ct2(large_v3_ct2, out)
    assert summary["num_mel_bins"] == 128 and summary["vocab_size"] == 51866 and summary["languages"] == 100
    config = WhisperConfig.from_pretrained(out)
    assert config.num_mel_bins == 128 and config.decoder_start_token_id == 50258
    gen = GenerationConfig.from_pretrained(out)
    assert gen.lang_to_id["<|yue|>"] == 50358 and gen.lang_to_id["<|fr|>"] == 50265
    assert gen.task_to_id == {"translate": 50359, "transcribe": 50360} and gen.no_timestamps_token_id == 50364
    tok = WhisperTokenizer.from_pretrained(out)
    assert len(tok) == 51866 and tok.convert_tokens_to_ids("<|0.00|>") == 50365
    tok.set_prefix_tokens(language="cantonese", task="transcribe", predict_timestamps=False)
    assert tok("").input_ids[:4] == [50258, 50358, 50360, 50364]
    feats = WhisperFeatureExtractor.from_pretrained(out)(french_waves[0], sampling_rate=16_000).input_features
    assert feats[0].shape == (128, 3000)

    assert round_trip(out, large_v3_ct2, tmp_path / "again")["identical"]
    report = compare_token_ids(out, large_v3_ct2, french_waves[:1], "fr", max_new_tokens=12)  # random weights
    assert report["identical"] == 1, report["rows"]
