"""Heads and adapters: formulas, options, errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from probe import HEADS, create_adapter, create_head, list_adapters, list_heads


def test_linear_head_formula():
    head = create_head("linear", 3, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]))
        head.bias.copy_(torch.tensor([0.1, -0.2]))
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(head(x), torch.tensor([[1 - 3 + 0.1, 0.5 + 4 - 0.2]]))
    assert head.num_features == 3 and head.num_classes == 2
    assert head.class_weights().shape == (2, 3)
    assert torch.equal(head.input_features(x), x)
    assert create_head("linear", 3, 2, bias=False).bias is None


def test_cosine_head_formula_fixed_scale():
    head = create_head("cosine", 2, 2, logit_scale=10.0, learnable_scale=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
    x = torch.tensor([[0.0, 5.0], [3.0, 0.0]])
    expected = 10.0 * torch.tensor([[0.0, 1 / math.sqrt(2)], [1.0, 1 / math.sqrt(2)]])
    assert torch.allclose(head(x), expected, atol=1e-6)
    assert torch.allclose(head.cosine(x), expected / 10.0, atol=1e-6)
    assert torch.allclose(head.input_features(x), F.normalize(x, dim=1))
    assert "log_scale" not in dict(head.named_parameters())
    # invariant to feature scale
    assert torch.allclose(head(7.0 * x), head(x), atol=1e-5)


def test_cosine_head_scale_is_learnable_by_default_and_gets_gradient():
    head = create_head("cosine", 4, 3)
    assert head.scale.item() == pytest.approx(16.0)
    assert "log_scale" in dict(head.named_parameters())
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    F.cross_entropy(head(x), y).backward()
    assert head.log_scale.grad is not None and head.log_scale.grad.abs().item() > 0


def test_default_p_per_head():
    assert HEADS["linear"].default_p == 2.0 and HEADS["cosine"].default_p == 3.0
    assert list_heads() == ["linear", "cosine"]


def test_head_errors():
    with pytest.raises(KeyError, match="Unknown head 'mlp'; available: linear, cosine"):
        create_head("mlp", 3, 2)
    with pytest.raises(TypeError, match="Unknown option.*scale.*for head 'cosine'; accepted: logit_scale"):
        create_head("cosine", 3, 2, scale=3)
    with pytest.raises(ValueError, match="num_classes must be >= 2, got 1"):
        create_head("linear", 3, 1)
    with pytest.raises(ValueError, match=r"logit_scale must be in \(0, 1000\], got 0"):
        create_head("cosine", 3, 2, logit_scale=0)


@pytest.mark.parametrize("name", ["linear", "lowrank", "mlp"])
def test_adapters_start_as_identity_and_train(name):
    ad = create_adapter(name, 6, rank=None if name == "linear" else 2)
    x = torch.randn(4, 6)
    assert torch.equal(ad(x), x)
    ad(x).pow(2).sum().backward()
    grads = [p.grad for p in ad.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert grads, "the residual branch must receive a gradient at the identity"


def test_adapter_options_and_errors():
    assert list_adapters() == ["linear", "lowrank", "mlp"]
    assert create_adapter("lowrank", 8).rank == 8
    assert create_adapter("lowrank", 100).rank == 64
    with pytest.raises(ValueError, match="rank must be in"):
        create_adapter("lowrank", 4, rank=5)
    with pytest.raises(TypeError, match="full rank"):
        create_adapter("linear", 4, rank=2)
    assert create_adapter("mlp", 100).rank == 100 and create_adapter("mlp", 1280).rank == 128
    with pytest.raises(ValueError, match="bottleneck width"):
        create_adapter("mlp", 4, rank=0)
    with pytest.raises(KeyError, match="Unknown adapter 'resnet'"):
        create_adapter("resnet", 4)


def test_mlp_adapter_formula():
    torch.manual_seed(0)
    ad = create_adapter("mlp", 5, rank=3)
    with torch.no_grad():
        ad.U.copy_(torch.randn(5, 3))
    x = torch.randn(7, 5)
    hidden = torch.nn.functional.gelu(x @ ad.down.weight.t() + ad.down.bias)
    assert torch.allclose(ad(x), x + hidden @ ad.U.t(), atol=1e-6)
