"""palier's log-Mel equals Whisper's feature extractor, padding frames filled in, not computed."""

import numpy as np
import pytest
from transformers import WhisperFeatureExtractor

from core.stage.asr_data import log_mel


@pytest.mark.parametrize("window_s", [6, 30])
def test_log_mel_matches_the_feature_extractor(window_s):
    rng = np.random.default_rng(window_s)
    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=window_s)
    full = window_s * 16_000
    lengths = [400, 3_000, 16_000, 37_123, full - 399, full - 1, full]
    waves = [0.1 * rng.standard_normal(n).astype(np.float32) for n in lengths]
    waves.append(np.zeros(8_000, dtype=np.float32))  # silence: every frame at the floor
    waves.append(np.pad(0.1 * rng.standard_normal(4_000).astype(np.float32), (12_000, 0)))
    expected = extractor(waves, sampling_rate=16_000, return_tensors="np").input_features
    got = log_mel(waves, extractor)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_dither_falls_back_to_the_extractor():
    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=6, dither=0.5)
    waves = [np.ones(1_600, dtype=np.float32)]
    assert log_mel(waves, extractor).shape == (1, 80, 600)
