"""The one torch device picker, shared by the stage runner, evaluation and `palier query`."""

import pytest
import torch

from core.stage.device import DeviceUnavailable, pick_torch_device


def test_cpu_stays_on_the_cpu_and_auto_takes_cuda_when_visible():
    assert pick_torch_device("cpu") == "cpu"
    assert pick_torch_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible")
def test_explicit_cuda_without_a_device_is_an_error_not_a_cpu_run():
    with pytest.raises(DeviceUnavailable, match="no CUDA device is visible"):
        pick_torch_device("cuda")
