"""CTranslate2 export: the multilingual marker, the faster-whisper files, and verification."""

import json
import shutil
from pathlib import Path

import pytest

from core.ct2.export import ExportError, agreement_metrics, export_ct2, language_code, mark_multilingual, verify_ct2
from repo_paths import ROOT

pytestmark = pytest.mark.integration
DEMO_MODEL = ROOT / "models" / "nano-whisper-fr"


def _plain_conversion(model: Path, out: Path) -> Path:
    """A conversion by hand, as users do it without palier: the converter, plus tokenizer.json and preprocessor_config.json."""
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(model)).convert(str(out), quantization="int8", force=True)
    for name in ("tokenizer.json", "preprocessor_config.json"):
        shutil.copy(model / name, out / name)
    return out


def test_export_marks_the_vocabulary_multilingual_without_changing_its_size(tiny_whisper, tmp_path):
    import ctranslate2

    plain = _plain_conversion(tiny_whisper, tmp_path / "plain")
    assert not ctranslate2.models.Whisper(str(plain)).is_multilingual

    out = export_ct2(tiny_whisper, tmp_path / "ct2", "int8")
    assert {"model.bin", "vocabulary.json", "tokenizer.json", "preprocessor_config.json"} <= {
        p.name for p in out.iterdir()}
    assert ctranslate2.models.Whisper(str(out)).is_multilingual
    before = json.loads((plain / "vocabulary.json").read_text())
    after = json.loads((out / "vocabulary.json").read_text())
    assert len(after) == len(before)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert changed == [("À", "")]  # byte 0xC0, which UTF-8 text never contains
    info = json.loads((out / "palier_export.json").read_text())
    assert info["multilingual_marker_replaced"] == "À" and info["quantization"] == "int8"
    assert mark_multilingual(out / "vocabulary.json") is None  # already marked: left alone


def test_faster_whisper_decodes_french_only_after_the_marker(tiny_whisper_30s, french_audio, tmp_path):
    """The STACK_NOTES pitfall, reproduced: without "" faster-whisper silently switches to English."""
    from faster_whisper import WhisperModel

    options = dict(language="fr", beam_size=1, temperature=0.0, without_timestamps=True, vad_filter=False,
                   condition_on_previous_text=False)

    def decoded_language(folder: Path) -> str:
        model = WhisperModel(str(folder), device="cpu", cpu_threads=1)
        model.max_length = 2 * (96 - 4)  # the tiny model has 96 decoder positions, not 448
        segments, info = model.transcribe(french_audio[0], **options)
        list(segments)
        return info.language

    assert decoded_language(_plain_conversion(tiny_whisper_30s, tmp_path / "plain")) == "en"
    assert decoded_language(export_ct2(tiny_whisper_30s, tmp_path / "ct2", "int8")) == "fr"


@pytest.mark.parametrize("window", ["6s", "30s"])
def test_verification_reports_agreement_and_speed(window, tiny_whisper, tiny_whisper_30s, french_audio, tmp_path):
    model = tiny_whisper if window == "6s" else tiny_whisper_30s
    out = export_ct2(model, tmp_path / "ct2", "float32")
    report = verify_ct2(model, out, french_audio[:2], "french")
    assert report["samples"] == 2 and report["language"] == "fr"
    assert report["ct2_multilingual"] and report["ct2_decoded_languages"] == ["fr"]
    assert 0.0 <= report["exact_match"] <= 1.0
    if window == "30s":
        # float32 on the same features: identical (the real-checkpoint guard against comparing
        # other inputs again is tests/core/stage/test_real_whisper_engines.py).
        assert report["exact_match"] == 1.0, report["examples"]
        assert "zero-padded" in report["faster_whisper_transcribe"]["note"]
    assert report["transformers_seconds"] > 0 and report["ct2_seconds"] > 0
    assert "same prompt" in report["ct2_path"]
    # The end-to-end faster-whisper figure exists only where its transcribe() can run (30 s windows).
    assert (report["faster_whisper_transcribe"] is not None) == (window == "30s")
    assert len(report["examples"]) == 2 and set(report["examples"][0]) == {"transformers", "ct2"}


@pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="demo model not built (make pretrain)")
def test_the_trained_demo_model_exports_with_high_agreement(french_audio, tmp_path):
    out = export_ct2(DEMO_MODEL, tmp_path / "ct2", "int8")
    report = verify_ct2(DEMO_MODEL, out, french_audio, "french")
    assert report["ct2_decoded_languages"] == ["fr"]
    assert report["exact_match"] >= 0.75, report["examples"]
    assert report["cer_vs_transformers"] is not None and report["cer_vs_transformers"] <= 0.05


def test_export_refuses_what_it_cannot_make(tiny_whisper, tmp_path):
    with pytest.raises(ExportError, match="quantization"):
        export_ct2(tiny_whisper, tmp_path / "a", "int4")
    incomplete = tmp_path / "incomplete"
    shutil.copytree(tiny_whisper, incomplete)
    (incomplete / "preprocessor_config.json").unlink()
    with pytest.raises(ExportError, match="preprocessor_config.json"):
        export_ct2(incomplete, tmp_path / "b", "int8")
    with pytest.raises(ExportError, match="not a saved Transformers model"):
        export_ct2(tmp_path, tmp_path / "c", "int8")


def test_small_helpers():
    assert language_code("french") == language_code("fr") == language_code("<|fr|>") == "fr"
    with pytest.raises(ExportError):
        language_code("klingon")
    assert agreement_metrics(["le chat dort", ""], ["le chat dort", ""]) == {
        "exact_match": 1.0, "wer_vs_transformers": 0.0, "cer_vs_transformers": 0.0}
    assert agreement_metrics([""], ["x"])["wer_vs_transformers"] is None
