"""Convolution fusion (feature_cache.fusion): which BatchNorms and activations fuse, that features do not change,
that the fused path is oneDNN's, and what is left alone."""
from __future__ import annotations

import copy
import threading
import logging

import open_clip
import pytest
import timm
import torch
from timm.layers import BatchNormAct2d
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torchvision.models import resnet18

from feature_cache import create_encoder
from feature_cache.encoders import cpu_has_native_bf16
from feature_cache.fusion import ConvActivation, Fused, fuse_convolutions
from fc_testutils import randomise_batch_norms


def _pooled(model, images):
    return model(images)


def count(model: nn.Module, kind=_BatchNorm) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def tiny_modified_resnet() -> nn.Module:
    """open_clip's ModifiedResNet (the CLIP RN50 family's image tower: BatchNorms and an attention pool)."""
    return open_clip.model.ModifiedResNet(layers=(1, 1, 1, 1), output_dim=16, heads=2, image_size=64, width=8)


def operators(module: nn.Module, x: torch.Tensor) -> set[str]:
    """The names of the operators a forward pass of ``module`` runs."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        module(x)
    return {event.name for event in prof.events()}


@pytest.mark.parametrize("make, fused", [
    (lambda: timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0), Fused(49, 33)),
    (lambda: resnet18(weights=None), Fused(20, 1)),  # one ReLU module serves each block: only the stem's fuses
    # the 3-conv stem, then 4 bottlenecks of 3 convs and a downsample; the last ReLU of a block reads the sum
    (tiny_modified_resnet, Fused(3 + 4 * (3 + 1), 3 + 4 * 2)),
])
def test_every_conv_batch_norm_pair_fuses_and_features_stay(make, fused):
    torch.manual_seed(0)
    model = randomise_batch_norms(make())
    reference = copy.deepcopy(model)
    x = torch.randn(2, 3, 64, 64)
    assert fuse_convolutions(model, _pooled) == fused
    assert count(model) == 0 and count(model, ConvActivation) == fused.activations and not model.training
    with torch.no_grad():
        expected, got = reference(x), model(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_activation_of_timm_batch_norm_act_becomes_the_post_op():
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    activations = count(model, nn.ReLU6)
    assert count(model, BatchNormAct2d) == 49 and activations == 33
    fuse_convolutions(model, _pooled)
    assert isinstance(model.conv_stem, ConvActivation) and isinstance(model.bn1, nn.Identity)
    assert model.conv_stem.conv.bias is not None  # the BatchNorm's shift is now the convolution's bias
    assert count(model, nn.ReLU6) == activations  # each kept inside its ConvActivation (the eager path)
    assert isinstance(model.blocks[1][0].conv_pwl, nn.Conv2d)  # a projection: BatchNorm without activation


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("activation", [nn.ReLU(), nn.ReLU6(), nn.Hardtanh(0.0, 6.0)])
@pytest.mark.parametrize("conv", [nn.Conv2d(8, 16, 1), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),
                                  nn.Conv2d(8, 4, 3, padding=2, dilation=2)])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_conv_activation_is_one_onednn_call_and_bit_identical(activation, conv, precision, threads):
    """Bit-identical in channels_last, the layout extraction runs in, at 1 and 2 threads. In NCHW oneDNN may pick
    another kernel for the convolution with a post-op than without (on this Zen 4 CPU: the fp32 1×1 convolution
    on 1 thread: sums in another order, 2.4e-7 apart at most), so there they agree to float32 rounding."""
    if precision == "bf16" and not cpu_has_native_bf16():
        pytest.skip("bf16 autocast needs a CPU with native bfloat16")
    torch.set_num_threads(threads)  # set back after the test (tests/conftest.py)
    torch.manual_seed(0)
    fused = ConvActivation(conv, activation).eval()
    x = torch.randn(2, 8, 15, 15)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.contiguous(memory_format=layout)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            expected, got = activation(conv(xl)), fused(xl)
            ran = operators(fused, xl)
        assert got.dtype == expected.dtype
        if layout == torch.channels_last:
            assert torch.equal(got, expected)
        else:
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6 * float(expected.abs().max()))
        assert "mkldnn::_convolution_pointwise" in ran and not {"aten::relu", "aten::hardtanh"} & ran
    with torch.enable_grad():  # with gradients: the two eager calls (oneDNN's fused op has no backward here)
        assert "mkldnn::_convolution_pointwise" not in operators(fused, x)
        torch.testing.assert_close(fused(x), activation(conv(x)), rtol=0, atol=0)


def test_conv_activation_runs_eagerly_in_a_dtype_onednn_does_not_run(monkeypatch):
    from feature_cache import fusion

    torch.manual_seed(0)
    conv, activation = nn.Conv2d(4, 4, 3, padding=1).double(), nn.ReLU6()
    fused = ConvActivation(conv, activation)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    with torch.inference_mode():
        assert "mkldnn::_convolution_pointwise" not in operators(fused, x)  # float64: not a oneDNN dtype
        assert torch.equal(fused(x), activation(conv(x)))
        fusion._onednn_dtypes.cache_clear()
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
        conv32 = ConvActivation(nn.Conv2d(4, 4, 1), nn.ReLU())
        assert "mkldnn::_convolution_pointwise" not in operators(conv32, x.float())  # no oneDNN: eager
    fusion._onednn_dtypes.cache_clear()


class SharedOutput(nn.Module):
    """conv → bn, but the convolution's output is also read by the sum: folding would change that branch."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class CalledTwice(nn.Module):
    """One convolution applied twice, each time followed by its own BatchNorm."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn1, self.bn2 = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3), nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn2(self.conv(self.bn1(self.conv(x))))


class MyNorm(nn.BatchNorm2d):
    def forward(self, x):
        return super().forward(x) * 2


class UnknownNorm(nn.Module):
    """A BatchNorm subclass whose forward is not BatchNorm's alone, and one after a non-convolution."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.pool, self.bn2 = nn.Conv2d(3, 3, 1), MyNorm(3), nn.AvgPool2d(2), nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn2(self.pool(self.bn(self.conv(x))))


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = -x
        return self.bn(self.conv(x))


@pytest.mark.parametrize("make", [SharedOutput, CalledTwice, UnknownNorm])
def test_pairs_that_cannot_fuse_are_left_alone(make):
    model = randomise_batch_norms(make())
    before = count(model)
    reference = copy.deepcopy(model)
    assert fuse_convolutions(model, _pooled) == Fused(0, 0)
    assert count(model) == before
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_activation_that_is_not_relu_stays_apart():
    model = randomise_batch_norms(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Hardtanh(-1.0, 1.0)))
    assert fuse_convolutions(model, _pooled) == Fused(1, 0)
    assert type(model[0]) is nn.Conv2d and type(model[2]) is nn.Hardtanh


def test_untraceable_model_is_left_as_it_is_and_logged(caplog):
    model = randomise_batch_norms(Untraceable())
    with caplog.at_level(logging.INFO, logger="feature_cache.fusion"):
        assert fuse_convolutions(model, _pooled) == Fused(0, 0)
    assert isinstance(model.bn, nn.BatchNorm2d)
    assert "convolution fusion skipped: torch.fx cannot trace this encoder" in caplog.text


def test_model_without_batch_norm_is_not_traced(monkeypatch):
    from feature_cache import fusion

    monkeypatch.setattr(fusion, "_pairs", lambda root: pytest.fail("traced a model without BatchNorm"))
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), nn.LayerNorm(8)).train()
    assert fuse_convolutions(model, _pooled) == Fused(0, 0) and not model.training


def test_encoder_fuses_by_default_and_keeps_the_weights_hash():
    folded = create_encoder("effnet-lite0", precision="fp32")
    plain = create_encoder("effnet-lite0", precision="fp32", fuse=False)
    assert folded.fused == Fused(49, 33) and count(folded.model) == 0
    assert plain.fused == Fused(0, 0) and count(plain.model) == 49
    assert folded.weights_sha256 == plain.weights_sha256
    assert folded.model.conv_stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    expected = plain.encode(images)
    torch.testing.assert_close(folded.encode(images), expected, rtol=1e-4, atol=1e-4)


class _Pausing(nn.Module):
    """A block holding a BatchNorm (so fx traces into it) whose forward signals ``started`` and waits for
    ``release``: a trace held open while another thread runs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        self.started, self.release = threading.Event(), threading.Event()

    def forward(self, x):
        self.started.set()
        assert self.release.wait(20)
        return self.bn(self.conv(x))


def test_a_trace_leaves_other_threads_forward_passes_alone_and_traces_take_turns():
    """torch.fx patches ``nn.Module.__call__`` for the whole process while it traces. Two extraction jobs in one
    service process (MR2PROBE_CPU_JOBS=2): one job's encoder forward during the other's fusion trace ran into
    that tracer (NameError: module is not installed as a submodule), and two traces at once could restore each
    other's patch, leaving every later forward broken until a restart. Now a forward pass in another thread runs
    as it is during a trace, and a second trace waits for the first."""
    original = nn.Module.__call__
    first, second = _Pausing(), _Pausing()
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    x = torch.randn(2, 3, 8, 8)
    expected = other(x)
    fused = {}
    threads = [threading.Thread(target=lambda m=m: fused.setdefault(id(m), fuse_convolutions(m, lambda m, x: m(x))))
               for m in (first, second)]
    threads[0].start()
    assert first.started.wait(20)
    assert nn.Module.__call__ is not original  # the first trace is on
    threads[1].start()
    assert not second.started.wait(0.5)  # the second trace waits for the first
    torch.testing.assert_close(other(x), expected)  # another thread's forward during the trace, unchanged
    first.release.set()
    assert second.started.wait(20)
    second.release.set()
    for t in threads:
        t.join(20)
    assert nn.Module.__call__ is original and nn.Module.__getattr__ is not None
    assert fused[id(first)].batch_norms == fused[id(second)].batch_norms == 1
    torch.testing.assert_close(other(x), expected)
