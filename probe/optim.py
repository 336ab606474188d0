"""AdamW and SGD for the probe trainer: the update rules of ``torch.optim`` (single-tensor CPU path), without it.

Constructing any ``torch.optim`` optimiser imports ``torch._dynamo`` (its methods are wrapped in
``torch._disable_dynamo``): about as long as importing torch itself, a fixed cost of every ``mr2probe train``
process that dominates small probes. These classes apply the same arithmetic, in the same order, so a fit gives
the same weights as with ``torch.optim.AdamW`` / ``SGD`` (bit-identical on CPU; tests compare them).

Interface used by the trainer: ``param_groups`` (dicts with ``params``, ``lr``, ``weight_decay``; the trainer sets
``lr`` per step), ``zero_grad(set_to_none=True)`` and ``step()``.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["AdamW", "SGD"]


class _Optimizer:
    def __init__(self, param_groups: list[dict], **defaults) -> None:
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in param_groups]
        self.state: dict[Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()


class AdamW(_Optimizer):
    """AdamW (Loshchilov & Hutter): decoupled decay p ← p·(1 − lr·wd), then the bias-corrected Adam step."""

    def __init__(self, param_groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        super().__init__(param_groups, lr=lr, betas=betas, eps=eps)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {"step": 0, "exp_avg": torch.zeros_like(p),
                                                  "exp_avg_sq": torch.zeros_like(p)})
                state["step"] += 1
                step, grad, exp_avg, exp_avg_sq = state["step"], p.grad, state["exp_avg"], state["exp_avg_sq"]
                if wd != 0:
                    p.mul_(1 - lr * wd)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = lr / (1 - beta1 ** float(step))
                denom = (exp_avg_sq.sqrt() / (1 - beta2 ** float(step)) ** 0.5).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)


class SGD(_Optimizer):
    """SGD with momentum and (coupled, L2) weight decay: g ← g + wd·p; b ← μ·b + g (b₁ = g₁); p ← p − lr·b."""

    def __init__(self, param_groups: list[dict], lr: float, momentum: float = 0.0) -> None:
        super().__init__(param_groups, lr=lr, momentum=momentum)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                if momentum != 0:
                    buf = self.state.get(p)
                    if buf is None:
                        buf = self.state[p] = torch.clone(grad).detach()
                    else:
                        buf.mul_(momentum).add_(grad)
                    grad = buf
                p.add_(grad, alpha=-lr)
