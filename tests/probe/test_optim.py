"""probe.optim: the same updates as torch.optim.AdamW(fused=True) / SGD, bit for bit on CPU."""
import pytest
import torch

from probe.optim import SGD, AdamW


def _groups(params, wd):
    # weights decayed, bias not, and a parameter that never gets a gradient (it must stay as it is)
    return [{"params": [params[0]], "weight_decay": wd}, {"params": [params[1], params[2]], "weight_decay": 0.0}]


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_updates_equal_torch_optim(kind, wd):
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(32, 5, generator=g), torch.randn(32, 3, generator=g)
    start = [torch.randn(3, 5, generator=g), torch.randn(3, generator=g), torch.randn(4, generator=g)]
    ours_p = [torch.nn.Parameter(t.clone()) for t in start]
    ref_p = [torch.nn.Parameter(t.clone()) for t in start]
    if kind == "adamw":
        ours = AdamW(_groups(ours_p, wd), lr=0.05)
        ref = torch.optim.AdamW(_groups(ref_p, wd), lr=0.05, fused=True)
    else:
        ours = SGD(_groups(ours_p, wd), lr=0.05, momentum=0.9)
        ref = torch.optim.SGD(_groups(ref_p, wd), lr=0.05, momentum=0.9)
    for step in range(25):
        for opt, (w, b, _) in ((ours, ours_p), (ref, ref_p)):
            for group in opt.param_groups:
                group["lr"] = 0.05 / (1 + step)  # the trainer sets lr per step
            opt.zero_grad(set_to_none=True)
            (x @ w.t() + b - target).pow(2).mean().backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ours_p, ref_p))
    assert torch.equal(ours_p[2], start[2])
    assert not torch.equal(ours_p[0], start[0])


def test_adamw_is_the_adamw_rule():
    """One step from zero moments, by hand: m = (1 − β₁)g, v = (1 − β₂)g², p ← p(1 − lr·wd) − lr·m̂/(√v̂ + ε)
    with m̂ = m/(1 − β₁), v̂ = v/(1 − β₂), i.e. p(1 − lr·wd) − lr·g/(|g| + ε)."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    p.grad = torch.tensor([0.5, -0.25, 0.0])
    AdamW([{"params": [p], "weight_decay": 0.1}], lr=0.01).step()
    expected = torch.tensor([1.0, -2.0, 3.0]) * (1 - 0.01 * 0.1) - 0.01 * torch.tensor([0.5, -0.25, 0.0]) / (
        torch.tensor([0.5, 0.25, 0.0]) + 1e-8)
    assert torch.allclose(p.detach(), expected, rtol=1e-6, atol=1e-7)
