"""probe.devices.resolve_device: one resolver for probes, extraction, the service's setting and job requests."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from app.config import Settings
from app.validation import check_device
from feature_cache.encoders import resolve_device as extraction_device
from probe.devices import resolve_device
from probe.trainer import ProbeTrainer


@pytest.mark.parametrize("name", ["tpu", "cuda:abc", "auto:0", "cpu:3", "cuda:", "mps", "", "cuda:-1"])
def test_names_outside_the_pattern_are_refused_everywhere_alike(name):
    for resolve in (resolve_device, extraction_device, check_device):
        with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, cuda:N"):
            resolve(name)
    # the service's setting too (Settings accepted 'cuda:abc' and the server failed at its first job; a review)
    with pytest.raises(ValidationError, match="device must be one of auto, cpu, cuda, cuda:N"):
        Settings(device=name)


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert Settings(device="auto").resolved_device() == str(resolve_device("auto"))
    assert Settings(device="cuda:1").device == "cuda:1"  # a name it takes; whether it exists, a job's request says


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal of a GPU this host lacks")
def test_a_gpu_this_host_lacks_is_refused_with_one_message():
    for resolve in (resolve_device, extraction_device, check_device):
        with pytest.raises(ValueError, match=r"device 'cuda:1' does not exist on this host: CUDA is not available"):
            resolve("cuda:1")
    with pytest.raises(ValueError, match="does not exist on this host"):
        ProbeTrainer(device="cuda").fit(torch.zeros(6, 2), torch.tensor([0, 1, 2, 0, 1, 2]))
