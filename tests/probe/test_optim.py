"""probe.optim: the same updates as torch.optim.AdamW / SGD, bit for bit on CPU."""
import pytest
import torch

from probe.optim import SGD, AdamW


def _groups(params, wd):
    return [{"params": [params[0]], "weight_decay": wd}, {"params": [params[1]], "weight_decay": 0.0}]


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_updates_equal_torch_optim(kind, wd):
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(32, 5, generator=g), torch.randn(32, 3, generator=g)
    start = [torch.randn(3, 5, generator=g), torch.randn(3, generator=g)]
    ours_p = [torch.nn.Parameter(t.clone()) for t in start]
    ref_p = [torch.nn.Parameter(t.clone()) for t in start]
    if kind == "adamw":
        ours, ref = AdamW(_groups(ours_p, wd), lr=0.05), torch.optim.AdamW(_groups(ref_p, wd), lr=0.05)
    else:
        ours = SGD(_groups(ours_p, wd), lr=0.05, momentum=0.9)
        ref = torch.optim.SGD(_groups(ref_p, wd), lr=0.05, momentum=0.9)
    for step in range(25):
        for opt, (w, b) in ((ours, ours_p), (ref, ref_p)):
            for group in opt.param_groups:
                group["lr"] = 0.05 / (1 + step)  # the trainer sets lr per step
            opt.zero_grad(set_to_none=True)
            (x @ w.t() + b - target).pow(2).mean().backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ours_p, ref_p))
