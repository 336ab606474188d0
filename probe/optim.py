"""Adam, AdamW and SGD for the probe trainer: the update rules of ``torch.optim``, without it.

Constructing any ``torch.optim`` optimiser imports ``torch._dynamo`` (its methods are wrapped in
``torch._disable_dynamo``): about as long as importing torch itself, a fixed cost of every ``mr2probe train``
process that dominates small probes. These classes make the same calls as torch.optim, so a fit gives the same
weights (bit-identical; tests compare them): :class:`AdamW` is ``torch.optim.AdamW(fused=True)`` (one
``torch._fused_adamw_`` call per parameter group, which reads and writes each tensor once), :class:`Adam` is
``torch.optim.Adam(fused=True)`` (``torch._fused_adam_``), :class:`SGD` is ``torch.optim.SGD``'s single-tensor path.

Weight decay: :class:`Adam` and :class:`SGD` add ``weight_decay · p`` to the gradient, so they minimise the loss plus
the L2 penalty ``weight_decay / 2 · ‖p‖²`` (``L2_OPTIMIZERS`` in :mod:`probe.params`); :class:`AdamW` decays the
weights apart from the gradient, which is no penalty of any objective: with Adam's normalised steps its fixed
points keep every weight within about ``1 / weight_decay`` (an ℓ∞ bound), a different regulariser.

Interface used by the trainer: ``param_groups`` (dicts with ``params``, ``lr``, ``weight_decay``; the trainer sets
``lr`` per step), ``zero_grad(set_to_none=True)`` and ``step()``; :func:`step_all` steps the optimisers of a joint
fit's heads together.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Adam", "AdamW", "SGD", "OPTIMIZER_CLASSES", "step_all"]


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


class _FusedAdam(_Optimizer):
    """Bias-corrected Adam steps by one fused kernel call per parameter group (``_kernel``), as
    ``torch.optim.Adam(W)(fused=True)`` computes them."""

    _kernel = staticmethod(torch._fused_adam_)

    def __init__(self, param_groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        super().__init__(param_groups, lr=lr, betas=betas, eps=eps)

    def step(self) -> None:
        step_all([self])

    def _batches(self, batches: dict[tuple, list[tuple[Tensor, dict]]]) -> None:
        """Add each (parameter with a gradient, its state) of every group to ``batches`` under the key of the
        kernel call that steps it: the kernel and the group's lr, weight decay, betas and eps."""
        for group in self.param_groups:
            key = (self._kernel, group["lr"], group["weight_decay"], *group["betas"], group["eps"])
            batches.setdefault(key, []).extend((p, self._state(p)) for p in group["params"] if p.grad is not None)

    def _state(self, p: Tensor) -> dict:
        """p's step count (a float32 scalar tensor, as the fused kernel reads it) and moments, made at its first
        step."""
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                     "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        return state


class Adam(_FusedAdam):
    """Adam (Kingma & Ba) with weight decay as an L2 penalty: g ← g + wd·p, then the bias-corrected Adam step, as
    ``torch.optim.Adam(fused=True)`` computes it. It minimises loss + wd/2·‖p‖², the objective of scikit-learn's
    ``LogisticRegression`` with C = 1 / (wd·n) for a mean loss over n rows."""


class AdamW(_FusedAdam):
    """AdamW (Loshchilov & Hutter): decoupled decay p ← p·(1 − lr·wd), then the bias-corrected Adam step, as
    ``torch.optim.AdamW(fused=True)`` computes it.

    The fused kernel replaces an earlier element-wise version (torch.optim's single-tensor arithmetic, 7–9 passes
    over each tensor): for the 6 heads of the 2.7k sweep (10 × 1280 + 10 each, 1 thread) 337 against 66 µs per
    step, for 18 heads of 1000 × 1024 (2 threads) 31.2 against 11.6 ms, with no temporaries.
    """

    _kernel = staticmethod(torch._fused_adamw_)


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


OPTIMIZER_CLASSES = {"adam": Adam, "adamw": AdamW, "sgd": SGD}  # the names of probe.params.OPTIMIZERS


@torch.no_grad()
def step_all(optimizers: Sequence[_Optimizer]) -> None:
    """``step()`` of every optimiser in ``optimizers`` (the heads of a joint fit, one optimiser each), bit for bit,
    with the fused Adam and AdamW steps batched: one step-count increment for all their parameters and one kernel
    call per distinct (kernel, lr, weight decay, betas, eps) instead of one per parameter group. The kernels are
    element-wise per tensor, so which tensors share a call changes no value. A joint fit's step issues as many
    operations per head as a step of that head alone would; on a GPU each is a launch (``probe.trainer``)."""
    batches: dict[tuple, list[tuple[Tensor, dict]]] = {}
    for opt in optimizers:
        if isinstance(opt, _FusedAdam):
            opt._batches(batches)
        else:
            opt.step()
    steps = [state["step"] for entries in batches.values() for _, state in entries]
    if steps:
        torch._foreach_add_(steps, 1)
    for (kernel, lr, weight_decay, beta1, beta2, eps), entries in batches.items():
        if not entries:
            continue
        params, states = zip(*entries)
        kernel(list(params), [p.grad for p in params], [state["exp_avg"] for state in states],
               [state["exp_avg_sq"] for state in states], [], [state["step"] for state in states], amsgrad=False,
               lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps, maximize=False,
               grad_scale=None, found_inf=None)
