"""``core.disk_space``: the space a stage writes, estimated before it runs, and where it fits."""

from __future__ import annotations

import pytest

from core.disk_space import GB, KAGGLE_OUTPUT_BYTES, encoder_width, known_params, stage_space, where_it_fits

LARGE_V3 = 1_550_000_000


def test_large_v3_full_fine_tune_needs_tens_of_gb():
    need = stage_space(LARGE_V3, save_total_limit=2)
    # 3 checkpoints (the Trainer writes the new one before deleting the oldest) of 12 bytes a parameter
    assert need.parts["3 checkpoints"] == 3 * 12 * LARGE_V3
    assert need.parts["final model"] == 4 * LARGE_V3
    assert 50 * GB < need.total < 60 * GB
    assert need.describe().startswith("about 57.7 GB (3 checkpoints 52.0 GB, final model 5.8 GB")


def test_lora_checkpoints_hold_the_adapters_only():
    full, lora = stage_space(LARGE_V3), stage_space(LARGE_V3, method="lora")
    assert lora.parts["3 checkpoints"] == pytest.approx(full.parts["3 checkpoints"] / 100, rel=0.01)
    assert lora.parts["final model"] == full.parts["final model"]  # merged for the next stage


def test_encoder_cache_and_exports_are_counted():
    need = stage_space(LARGE_V3, save_total_limit=1, cached_utterances=10_000, encoder_d_model=1280, exports=("ct2",))
    assert need.parts["encoder cache"] == 10_000 * 1500 * 1280 * 2  # 3.8 MB an utterance
    assert need.parts["exports"] == 2 * LARGE_V3


@pytest.mark.parametrize(("name", "params", "width"), [
    ("openai/whisper-large-v3", 1_550_000_000, 1280), ("openai/whisper-large-v3-turbo", 809_000_000, 1280),
    ("openai/whisper-small", 244_000_000, 768), ("bert-base-cased", None, None),
])
def test_known_models(name, params, width):
    assert known_params(name) == params and encoder_width(name) == width


def test_where_it_fits():
    need = stage_space(LARGE_V3)
    assert not where_it_fits(need, "kaggle", None).fits
    assert "Kaggle keeps at most 20.0 GB" in where_it_fits(need, "kaggle", None).message.en
    assert where_it_fits(stage_space(244_000_000, save_total_limit=1), "kaggle", None).fits
    assert stage_space(244_000_000, save_total_limit=1).total < KAGGLE_OUTPUT_BYTES
    modal = where_it_fits(need, "modal", None)
    assert modal.fits and "57.7 GB" in modal.message.en and "Modal Volume" in modal.message.en and "environ 57.7 GB" in modal.message.fr
    local = where_it_fits(need, "local", 30 * GB)
    assert not local.fits and "30.0 GB free" in local.message.en and "fill up" in local.message.en
    assert where_it_fits(need, "local", None).fits  # unknown: not judged
