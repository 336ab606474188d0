"""probe.optim: the same updates as torch.optim.Adam(fused=True) / AdamW(fused=True) / SGD, bit for bit on CPU."""
import pytest
import torch

from probe.optim import OPTIMIZER_CLASSES, SGD, Adam, AdamW, step_all
from probe.params import OPTIMIZERS


def _groups(params, wd):
    # weights decayed, bias not, and a parameter that never gets a gradient (it must stay as it is)
    return [{"params": [params[0]], "weight_decay": wd}, {"params": [params[1], params[2]], "weight_decay": 0.0}]


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_updates_equal_torch_optim(kind, wd):
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(32, 5, generator=g), torch.randn(32, 3, generator=g)
    start = [torch.randn(3, 5, generator=g), torch.randn(3, generator=g), torch.randn(4, generator=g)]
    ours_p = [torch.nn.Parameter(t.clone()) for t in start]
    ref_p = [torch.nn.Parameter(t.clone()) for t in start]
    if kind in ("adam", "adamw"):
        ours = OPTIMIZER_CLASSES[kind](_groups(ours_p, wd), lr=0.05)
        ref = (torch.optim.Adam if kind == "adam" else torch.optim.AdamW)(_groups(ref_p, wd), lr=0.05, fused=True)
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


def test_step_all_steps_many_optimizers_bit_for_bit_with_one_kernel_call_per_setting(monkeypatch):
    """step_all over the optimisers of a joint fit's heads: the parameters and states of one step() each, bit for
    bit, over steps whose lr changes; the fused calls batched by (kernel, lr, weight decay, betas, eps), and an SGD
    optimiser among them stepped as itself."""
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(32, 5, generator=g), torch.randn(32, 3, generator=g)
    # (class, lr, weight decay): two AdamW heads with one setting, one with another lr, an Adam head, an SGD head
    heads = [(AdamW, 0.05, 0.5), (AdamW, 0.05, 0.5), (AdamW, 0.01, 0.5), (Adam, 0.05, 0.5), (SGD, 0.05, 0.5)]
    start = [[torch.randn(3, 5, generator=g), torch.randn(3, generator=g), torch.randn(4, generator=g)]
             for _ in heads]

    def build():
        params = [[torch.nn.Parameter(t.clone()) for t in ts] for ts in start]
        opts = [cls(_groups(p, wd), lr=lr) for (cls, lr, wd), p in zip(heads, params)]
        return params, opts

    (alone_p, alone), (joint_p, joint) = build(), build()
    calls = []
    for step in range(6):
        for opts, params, together in ((alone, alone_p, False), (joint, joint_p, True)):
            for opt, (w, b, _) in zip(opts, params):
                for group in opt.param_groups:
                    group["lr"] *= 0.9
                opt.zero_grad(set_to_none=True)
                (x @ w.t() + b - target).pow(2).mean().backward()
            if together:
                monkeypatch.setattr(AdamW, "_kernel", staticmethod(lambda *a, **k: calls.append("adamw")
                                                                   or torch._fused_adamw_(*a, **k)))
                step_all(joint)
                monkeypatch.undo()
            else:
                for opt in opts:
                    opt.step()
    for a, b in zip(alone_p, joint_p):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    for opt_a, opt_b, params_a, params_b in zip(alone, joint, alone_p, joint_p):
        for p_a, p_b in zip(params_a, params_b):
            assert (p_a in opt_a.state) == (p_b in opt_b.state)
            if p_a in opt_a.state:
                assert all(torch.equal(opt_a.state[p_a][key], opt_b.state[p_b][key]) for key in opt_a.state[p_a])
    # the AdamW heads' groups: (0.05, decay 0.5) twice, (0.05, no decay) twice, (0.01, 0.5), (0.01, none) -> 4 calls
    assert calls == ["adamw"] * 4 * 6


def test_adamw_is_the_adamw_rule():
    """One step from zero moments, by hand: m = (1 − β₁)g, v = (1 − β₂)g², p ← p(1 − lr·wd) − lr·m̂/(√v̂ + ε)
    with m̂ = m/(1 − β₁), v̂ = v/(1 − β₂), i.e. p(1 − lr·wd) − lr·g/(|g| + ε)."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    p.grad = torch.tensor([0.5, -0.25, 0.0])
    AdamW([{"params": [p], "weight_decay": 0.1}], lr=0.01).step()
    expected = torch.tensor([1.0, -2.0, 3.0]) * (1 - 0.01 * 0.1) - 0.01 * torch.tensor([0.5, -0.25, 0.0]) / (
        torch.tensor([0.5, 0.25, 0.0]) + 1e-8)
    assert torch.allclose(p.detach(), expected, rtol=1e-6, atol=1e-7)


def test_adam_is_the_l2_rule():
    """One step from zero moments: the penalty's gradient wd·p joins g before the moments, g' = g + wd·p, and
    p ← p − lr·g'/(|g'| + ε); no separate decay. Where g = 0 the step still moves p towards 0 (by lr)."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    p.grad = torch.tensor([0.5, -0.25, 0.0])
    Adam([{"params": [p], "weight_decay": 0.1}], lr=0.01).step()
    g = torch.tensor([0.5, -0.25, 0.0]) + 0.1 * torch.tensor([1.0, -2.0, 3.0])
    expected = torch.tensor([1.0, -2.0, 3.0]) - 0.01 * g / (g.abs() + 1e-8)
    assert torch.allclose(p.detach(), expected, rtol=1e-6, atol=1e-7)


def test_adam_and_adamw_agree_without_weight_decay():
    """The two differ only in how weight decay enters: at wd = 0 they take the same steps, bit for bit."""
    g = torch.Generator().manual_seed(1)
    start, grads = torch.randn(4, 6, generator=g), [torch.randn(4, 6, generator=g) for _ in range(5)]
    out = []
    for cls in (Adam, AdamW):
        p = torch.nn.Parameter(start.clone())
        opt = cls([{"params": [p], "weight_decay": 0.0}], lr=0.02)
        for grad in grads:
            p.grad = grad.clone()
            opt.step()
        out.append(p.detach())
    assert torch.equal(out[0], out[1])


def test_every_optimizer_name_has_a_class():
    assert tuple(OPTIMIZER_CLASSES) == OPTIMIZERS
