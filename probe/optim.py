"""AdamW and SGD for the probe trainer: the update rules of ``torch.optim`` (single-tensor CPU path), without it.

Constructing any ``torch.optim`` optimiser imports ``torch._dynamo`` (its methods are wrapped in
``torch._disable_dynamo``): about as long as importing torch itself, a fixed cost of every ``mr2probe train``
process that dominates small probes. These classes apply the same arithmetic, in the same order, so a fit gives
the same weights as with ``torch.optim.AdamW`` / ``SGD`` (bit-identical on CPU; tests compare them).

Interface used by the trainer: ``param_groups`` (dicts with ``params``, ``lr``, ``weight_decay``; the trainer sets
``lr`` per step), ``zero_grad(set_to_none=True)`` and ``step()``; :func:`step_all` steps the optimisers of a joint
fit together. AdamW applies its update with ``torch._foreach_*`` ops over all parameters at once (each op is the
same element-wise arithmetic as the per-tensor one, so the result is unchanged): a joint sweep of 6 heads has 12
parameters, and a Python call per parameter and operation (with a fresh scalar tensor for each Python float)
cost about 1 ms of a 9 ms full-batch step at 2.7k × 1280.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["AdamW", "SGD", "step_all"]


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

    def step(self) -> None:
        step_all([self])

    def _collect(self, lists: dict[str, list]) -> None:
        """Append this optimiser's parameters with a gradient, their state (created at the first step) and
        per-parameter scalars to ``lists`` (:func:`_adamw_foreach`), counting the step."""
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p),
                                             "exp_avg_sq": torch.zeros_like(p)}
                state["step"] += 1
                step = float(state["step"])
                for key, value in (("params", p), ("grads", p.grad), ("exp_avgs", state["exp_avg"]),
                                   ("exp_avg_sqs", state["exp_avg_sq"]), ("decay", 1 - lr * wd),
                                   ("avg_weight", 1 - beta1), ("beta2", beta2), ("sq_weight", 1 - beta2),
                                   ("correction2", (1 - beta2 ** step) ** 0.5), ("eps", eps),
                                   ("step_size", -(lr / (1 - beta1 ** step)))):
                    lists.setdefault(key, []).append(value)


# Parameters updated by one multi-tensor call hold at most this many elements together: the call's temporary
# denominators (one per parameter) are alive at once, and 18 heads of 1000 × 1024 (72 MB of them) per step
# took 507 against 477 ms per step of the MR² sweep (2 threads, 4 interleaved runs) as the allocator mapped
# them afresh. 2**20 elements (4 MB) keeps a 6-head sweep at 10 classes in one call and large heads one by one.
FOREACH_MAX_ELEMENTS = 2**20


def _adamw_foreach(lists: dict[str, list]) -> None:
    """The AdamW update of ``AdamW._collect``'s lists, in chunks of at most ``FOREACH_MAX_ELEMENTS`` elements
    (a parameter larger than that alone)."""
    start, size = 0, 0
    for i, p in enumerate(lists["params"]):
        if i > start and size + p.numel() > FOREACH_MAX_ELEMENTS:
            _adamw_chunk({key: values[start:i] for key, values in lists.items()})
            start, size = i, 0
        size += p.numel()
    _adamw_chunk({key: values[start:] for key, values in lists.items()})


@torch.no_grad()
def _adamw_chunk(lists: dict[str, list]) -> None:
    """The AdamW update of parameters in lists, in torch.optim's single-tensor order: p ← p·(1 − lr·wd);
    m ← lerp(m, g, 1 − β₁); v ← β₂·v + (1 − β₂)·g²; p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)."""
    params, grads, exp_avgs, exp_avg_sqs = (lists[key] for key in ("params", "grads", "exp_avgs", "exp_avg_sqs"))
    if any(d != 1 for d in lists["decay"]):  # p·1 is p: no decay needs no multiplication
        torch._foreach_mul_(params, lists["decay"])
    torch._foreach_lerp_(exp_avgs, grads, lists["avg_weight"])
    torch._foreach_mul_(exp_avg_sqs, lists["beta2"])
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, lists["sq_weight"])
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, lists["correction2"])
    torch._foreach_add_(denom, lists["eps"])
    torch._foreach_addcdiv_(params, exp_avgs, denom, lists["step_size"])


def step_all(optimizers: list[_Optimizer]) -> None:
    """One step of each optimiser: the AdamW ones with one multi-tensor update over all their parameters
    (:func:`_adamw_foreach`), the others one by one. The same result as calling each ``step()``."""
    lists: dict[str, list] = {}
    for opt in optimizers:
        if isinstance(opt, AdamW):
            opt._collect(lists)
        else:
            opt.step()
    if lists:
        _adamw_foreach(lists)


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
