"""probe.optim: the same updates as torch.optim.AdamW / SGD, bit for bit on CPU."""
import pytest
import torch

import probe.optim
from probe.optim import SGD, AdamW, step_all


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


@pytest.mark.parametrize("max_elements", [2**20, 30])
def test_step_all_equals_each_torch_optim_step(monkeypatch, max_elements):
    """A joint fit's optimisers stepped together (multi-tensor AdamW updates over all their parameters, in one
    chunk or, with 30 elements per chunk, several; an SGD on its own) give each run the weights torch.optim gives
    it; a parameter without a gradient is left as it is."""
    monkeypatch.setattr(probe.optim, "FOREACH_MAX_ELEMENTS", max_elements)
    g = torch.Generator().manual_seed(1)
    x, target = torch.randn(40, 6, generator=g), torch.randn(40, 4, generator=g)
    settings = [("adamw", 0.05, 0.0), ("adamw", 0.01, 2.0), ("sgd", 0.02, 0.5), ("adamw", 0.1, 0.3)]
    starts = [[torch.randn(4, 6, generator=g), torch.randn(4, generator=g), torch.randn(3, generator=g)]
              for _ in settings]

    def build(factory):
        runs = []
        for (kind, lr, wd), start in zip(settings, starts):
            params = [torch.nn.Parameter(t.clone()) for t in start]
            groups = _groups(params, wd) + [{"params": [params[2]], "weight_decay": 0.0}]  # params[2]: no grad
            runs.append((factory(kind, groups, lr), params))
        return runs

    ours = build(lambda kind, groups, lr: AdamW(groups, lr=lr) if kind == "adamw" else SGD(groups, lr=lr,
                                                                                             momentum=0.9))
    ref = build(lambda kind, groups, lr: torch.optim.AdamW(groups, lr=lr) if kind == "adamw" else
                torch.optim.SGD(groups, lr=lr, momentum=0.9))
    for step in range(30):
        for runs, joint in ((ours, True), (ref, False)):
            for i, (opt, (w, b, _)) in enumerate(runs):
                opt.zero_grad(set_to_none=True)
                ((x @ w.t() + b - target).pow(2).mean() * (1 + i)).backward()
            if joint:
                step_all([opt for opt, _ in runs])
            else:
                for opt, _ in runs:
                    opt.step()
    for (_, ours_p), (_, ref_p), start in zip(ours, ref, starts):
        assert all(torch.equal(a, b) for a, b in zip(ours_p, ref_p))
        assert torch.equal(ours_p[2], start[2])
    assert not torch.equal(ours[0][1][0], starts[0][0])
