"""The extraction path on a CUDA device: skipped on a machine without one (bench/gpu_checks.sh runs them on a GPU).

CUDA runs convolutions in TF32 by default (cuDNN), so fp32 features match the CPU's to about 1e-3, not bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from feature_cache import create_encoder, extract, open_cache
from fc_testutils import tiny_encoder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def _cosine(a, b) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(torch.as_tensor(a).float(), torch.as_tensor(b).float(), dim=1)


@pytest.mark.parametrize("precision, floor", [("fp32", 0.999), ("fp16", 0.99)])
def test_fused_effnet_on_cuda_matches_the_cpu_model_as_loaded(precision, floor):
    images = torch.randint(0, 256, (4, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    reference = create_encoder("effnet-lite0", device="cpu", precision="fp32", fuse=False).encode(images)
    encoder = create_encoder("effnet-lite0", device="cuda", precision=precision)
    assert encoder.precision == precision and encoder.fused.batch_norms == 49
    assert encoder.model.conv_stem.conv.weight.is_cuda
    got = encoder.encode(images)  # uint8 on the host: moved, normalised and encoded on the GPU
    assert got.is_cuda and got.dtype == torch.float32 and got.shape == reference.shape
    assert _cosine(got.cpu(), reference).min() >= floor


def test_auto_precision_on_cuda_is_fp16_and_bf16_runs_where_supported():
    assert create_encoder("effnet-lite0", device="cuda").precision == "fp16"
    if torch.cuda.is_bf16_supported():
        assert create_encoder("effnet-lite0", device="cuda", precision="bf16").precision == "bf16"


def test_extraction_on_cuda_with_decoding_workers_matches_the_cpu(tree, tmp_path):
    cpu = extract(tree, tiny_encoder(), tmp_path / "cpu", batch_size=4, workers=0, show_progress=False)
    # workers=None on CUDA: decoding processes (one per core but one, 2 to 8), pageable batches, the channels-last
    # collation in the workers, each batch written once the next one is queued on the GPU
    gpu = extract(tree, tiny_encoder(device="cuda"), tmp_path / "gpu", batch_size=4, show_progress=False)
    assert gpu.counts == cpu.counts and gpu.encoded == cpu.encoded == sum(cpu.counts.values())
    expected, got = open_cache(cpu.path), open_cache(gpu.path)
    for split in expected.splits:
        (x_cpu, y_cpu), (x_gpu, y_gpu) = expected.load(split), got.load(split)
        assert np.array_equal(y_cpu, y_gpu) and expected.sources(split) == got.sources(split)
        assert _cosine(x_gpu, x_cpu).min() >= 0.999
        np.testing.assert_allclose(x_gpu, x_cpu, rtol=2e-2, atol=2e-3)
