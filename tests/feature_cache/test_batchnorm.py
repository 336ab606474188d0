"""BatchNorm folding (feature_cache.batchnorm): which pairs fold, that features do not change, what is left alone."""
from __future__ import annotations

import copy
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
from feature_cache.batchnorm import fold_batch_norms


def _pooled(model, images):
    return model(images)


def randomise_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters away from their (identity) initial values, so that a wrong fold
    shows in the features."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=gen))
    return model.eval()


def count(model: nn.Module, kind=_BatchNorm) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def tiny_modified_resnet() -> nn.Module:
    """open_clip's ModifiedResNet (the CLIP RN50 family's image tower: BatchNorms and an attention pool)."""
    return open_clip.model.ModifiedResNet(layers=(1, 1, 1, 1), output_dim=16, heads=2, image_size=64, width=8)


@pytest.mark.parametrize("make, pairs", [
    (lambda: timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0), 49),
    (lambda: resnet18(weights=None), 20),
    (tiny_modified_resnet, 3 + 4 * (3 + 1)),  # the 3-conv stem, 4 bottlenecks of 3 convs and a downsample
])
def test_every_conv_batch_norm_pair_folds_and_features_stay(make, pairs):
    torch.manual_seed(0)
    model = randomise_batch_norms(make())
    reference = copy.deepcopy(model)
    assert count(model) == pairs
    x = torch.randn(2, 3, 64, 64)
    assert fold_batch_norms(model, _pooled) == pairs
    assert count(model) == 0 and not model.training
    with torch.no_grad():
        expected, got = reference(x), model(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_activation_of_timm_batch_norm_act_stays():
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    activations = count(model, nn.ReLU6)
    assert count(model, BatchNormAct2d) == 49 and activations > 0
    fold_batch_norms(model, _pooled)
    assert count(model, nn.ReLU6) == activations and count(model.conv_stem, nn.Conv2d) == 1
    assert model.conv_stem.bias is not None  # the BatchNorm's shift is now the convolution's bias


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
def test_pairs_that_cannot_fold_are_left_alone(make):
    model = randomise_batch_norms(make())
    before = count(model)
    reference = copy.deepcopy(model)
    assert fold_batch_norms(model, _pooled) == 0
    assert count(model) == before
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_untraceable_model_is_left_as_it_is_and_logged(caplog):
    model = randomise_batch_norms(Untraceable())
    with caplog.at_level(logging.INFO, logger="feature_cache.batchnorm"):
        assert fold_batch_norms(model, _pooled) == 0
    assert isinstance(model.bn, nn.BatchNorm2d)
    assert "BatchNorm folding skipped: torch.fx cannot trace this encoder" in caplog.text


def test_model_without_batch_norm_is_not_traced(monkeypatch):
    from feature_cache import batchnorm

    monkeypatch.setattr(batchnorm, "_pairs", lambda root: pytest.fail("traced a model without BatchNorm"))
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.LayerNorm(8)).train()
    assert fold_batch_norms(model, _pooled) == 0 and not model.training


def test_encoder_folds_by_default_and_keeps_the_weights_hash():
    folded = create_encoder("effnet-lite0", precision="fp32")
    plain = create_encoder("effnet-lite0", precision="fp32", fold_batch_norm=False)
    assert folded.folded_batch_norms == 49 and count(folded.model) == 0
    assert plain.folded_batch_norms == 0 and count(plain.model) == 49
    assert folded.weights_sha256 == plain.weights_sha256
    assert folded.model.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    expected = plain.encode(images)
    torch.testing.assert_close(folded.encode(images), expected, rtol=1e-4, atol=1e-4)
