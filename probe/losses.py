"""Loss registry: ERM, MR² margin losses and their variants, baselines, largest-margin losses, regularisers.

Every loss is an ``nn.Module`` called as ``loss(logits, labels, *, gamma=None, features=None) -> scalar``; its
registry entry (:class:`LossSpec`, attached as ``loss.spec`` by :func:`create_loss`, read as ``loss.needs`` and
``loss.input``) says two things the trainer reads:

- ``needs``: which class statistic its margins γ come from — ``"none"`` (no class margins), ``"cbar"`` (γ_k = c̄),
  ``"r2"`` (the paper's r_k²), ``"spread"`` (‖s_k‖²), ``"val_error"`` (per-class validation error of a reference
  run, given as the ``val_error`` option) or ``"priors"`` (class priors from the training counts, injected by the
  trainer as the ``priors`` option). :meth:`ProbeLoss.class_margins` turns the statistic into γ (K,).
- ``input``: ``"logits"`` (the head's output) or ``"cosine"`` (cosine similarities w̃_jᵀz̃ ∈ [−1, 1] between
  L2-normalised features and prototypes; those losses need ``head="cosine"`` and apply their own scale ``s``).

Registry entries are frozen :class:`LossSpec` records in ``probe.registry`` (torch-free, with each option's default
and bounds); :func:`create_loss` merges caller options over the entry's defaults (``None`` options are dropped so
defaults survive) and rejects unknown names, unknown options and out-of-bounds values.
"""
from __future__ import annotations

import logging
import math
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import LOSSES, LossSpec, check_options, get_loss_spec
from .stats import as_tensor, margins, margins_from_error

logger = logging.getLogger(__name__)

__all__ = ["LOSSES", "LossSpec", "ProbeLoss", "create_loss", "cross_entropy", "get_loss_spec", "joint_cross_entropy",
           "ldam_margins", "list_losses", "logsumexp_cross_entropy", "margin_cross_entropy", "representation_margin",
           "sample_margin_regularizer", "softmax_cross_entropy_grad", "zero_centroid_regularizer"]


# Option values (γ_f ≥ 0, η > 0, scales > 0, ...) are checked against their declarations in probe.registry by
# create_loss, the one builder of these classes; the classes below do not repeat the bounds.

# ----------------------------------------------------------------------------------------------- base class
class ProbeLoss(nn.Module):
    """Base class: ``forward(logits, labels, *, gamma=None, features=None) -> scalar`` (mean over the batch).

    ``needs`` and ``input`` are the registry entry's (``spec``, which :func:`create_loss` attaches): written once, in
    ``probe.registry.LOSSES``, not on the class as well (a maintainer round found both copies, the class's
    overwritten by the spec's)."""

    spec: LossSpec  # attached by create_loss, the one builder of these classes
    # Its value's unit against a cross-entropy's: the trainer's stopping tolerance ``tol`` is taken in cross-entropy
    # units and compared with the loss as tol·tol_unit (probe.trainer._Run.end_epoch).
    tol_unit: float = 1.0

    @property
    def needs(self) -> str:
        """The class statistic its margins γ come from (``spec.needs``)."""
        return self.spec.needs

    @property
    def input(self) -> str:
        """What it is computed on, ``"logits"`` or ``"cosine"`` (``spec.input``)."""
        return self.spec.input

    def class_margins(
        self,
        cbar: float,
        num_classes: int,
        *,
        r2: Tensor | None = None,
        spread: Tensor | None = None,
        validate: bool = True,
    ) -> Tensor | None:
        """γ (K,) from the class statistic named by ``needs``, or None for losses without class margins."""
        return None


# torch's CPU log_softmax is slow over a class axis of 3 to 15 entries: on 2,700 rows (forward + backward,
# 1 thread, idle machine) F.cross_entropy took 1.1–2.9× the time of logsumexp − gather there (2.6× at 10
# classes), and 2–3× less from 16 classes and at 2 (bench/probe_speed.py --ce-kernels). Both are one function,
# equal to float32 rounding.
LOGSUMEXP_CLASSES = range(3, 16)


def logsumexp_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean logsumexp(z) − z_y over the batch: the cross-entropy without torch's log_softmax kernel.

    One autograd node, computed on the transposed (K, n) logits and with the closed-form backward
    (softmax(z) − onehot(y)) / n from the forward's exponentials. torch's CPU reductions over a short last axis
    are slow (on 1,024 × 10: amax over the 10 classes 18.9 µs against 2.4 µs over the 1,024 rows of the
    transposed copy, softmax 180 µs against 12 µs), and autograd through logsumexp, gather and mean took about 9
    small kernels per call."""
    return _SoftmaxCrossEntropy.apply(logits, labels, 1).squeeze(0)


def joint_cross_entropy(logits: Tensor, labels: Tensor, heads: int) -> Tensor:
    """(H,) mean cross-entropy of each of ``heads`` heads whose (n, K) logits stand side by side in ``logits``
    (n, H·K), all against the same labels: :func:`cross_entropy` of every head in one call (a joint fit's heads,
    ``probe.trainer``), so the per-call overhead is paid once, not H times."""
    n, k = logits.shape[0], logits.shape[1] // heads
    if k in LOGSUMEXP_CLASSES:
        return _SoftmaxCrossEntropy.apply(logits, labels, heads)
    per_row = F.cross_entropy(logits.reshape(n * heads, k), labels.repeat_interleave(heads), reduction="none")
    return per_row.view(n, heads).mean(dim=0)


def softmax_cross_entropy_grad(zt: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The mean cross-entropies of H heads and their gradient, written out: for transposed logits zt (H, K, n)
    (reductions along the long axis n) and labels (n,), the (H,) losses mean_i logsumexp(z_i) − z_iy and
    ∂(Σ_h loss_h)/∂zt = (softmax(z) − onehot(y)) / n, (H, K, n). zt is read, not changed. The backward of
    :func:`joint_cross_entropy` and the closed-form step of ``probe.trainer`` (no autograd) both come from it."""
    heads, n = zt.shape[0], zt.shape[2]
    rows = labels.view(1, 1, n).expand(heads, 1, n)
    shift = zt.amax(dim=1, keepdim=True)
    exp = torch.exp(zt - shift)
    total = exp.sum(dim=1, keepdim=True)
    losses = (total.log().add_(shift).sub_(zt.gather(1, rows))).view(heads, n).mean(dim=1)
    grad = exp.div_(total)
    grad.scatter_add_(1, rows, torch.full_like(rows, -1, dtype=grad.dtype))
    return losses, grad.div_(n)


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """(H,) mean cross-entropies of H heads' logits side by side in (n, H·K), on the transposed (H, K, n)."""

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor, heads: int) -> Tensor:
        n = logits.shape[0]
        zt = logits.t().contiguous().view(heads, -1, n)  # the reductions run along the long axis n
        losses, grad = softmax_cross_entropy_grad(zt, labels)
        ctx.save_for_backward(grad)
        return losses

    @staticmethod
    def backward(ctx, grad: Tensor):
        (softmax,) = ctx.saved_tensors
        heads, n = softmax.shape[0], softmax.shape[2]
        return (softmax * grad.view(heads, 1, 1)).view(-1, n).t(), None, None


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean −log softmax(z)_y over the batch: ``F.cross_entropy``, or :func:`logsumexp_cross_entropy` for a class
    count in ``LOGSUMEXP_CLASSES`` (faster there on the CPU)."""
    if logits.shape[1] not in LOGSUMEXP_CLASSES:
        return F.cross_entropy(logits, labels)
    return logsumexp_cross_entropy(logits, labels)


def margin_cross_entropy(logits: Tensor, labels: Tensor, gamma: Tensor | None = None) -> Tensor:
    """ℓ_γ,ce(x, y) = −log softmax(z / γ_y)_y, averaged over the batch (MR², Eq. 2).

    The whole logit row of a sample is divided by the margin of its *true* class γ_y; γ ≡ 1 is cross-entropy.

    Args:
        logits: (n, K) z; labels: (n,) y; gamma: (K,) class margins or None.
    """
    if gamma is None:
        return cross_entropy(logits, labels)
    return cross_entropy(logits / gamma.to(logits.dtype)[labels].unsqueeze(1), labels)


class MarginCrossEntropy(ProbeLoss):
    """ℓ_γ,ce with γ from a named source: ``ce`` (none), ``uniform`` (γ_k = c̄), ``mr2`` (r_k², the paper),
    ``mr2_spread`` (‖s_k‖² in place of r_k²), ``mr2_valerr`` (per-class validation error of a reference run).

    Args:
        source: one of ``none``, ``cbar``, ``r2``, ``spread``, ``val_error``.
        sharpness: exponent a on the normalised margins (``r2``/``spread``; a = 1 is the paper), see
            :func:`probe.stats.margins`.
        val_error: (K,) per-class validation error in [0, 1] (``val_error`` source only).
        power, eps: exponent a and smoothing ε of :func:`probe.stats.margins_from_error`.
    """

    def __init__(self, source: str = "none", sharpness: float = 1.0, val_error=None, power: float = 1.0,
                 eps: float = 0.01) -> None:
        super().__init__()
        if source not in ("none", "cbar", "r2", "spread", "val_error"):
            raise ValueError(f"Unknown margin source {source!r}; accepted: none, cbar, r2, spread, val_error.")
        self.source = source  # the registry entry's ``needs`` (its args; tests/probe/test_registry_contract.py)
        self.sharpness = float(sharpness)
        self.power = float(power)
        self.eps = float(eps)
        self.val_error = None
        if source == "val_error":
            if val_error is None:
                raise ValueError(
                    "loss 'mr2_valerr' needs val_error=(K,) array: the per-class validation error "
                    "(1 − per-class accuracy) of the reference (ERM) run."
                )
            self.val_error = as_tensor(val_error, dtype=torch.float32)
            margins_from_error(self.val_error, 1.0, self.power, self.eps)  # validate now, at the factory

    def class_margins(self, cbar, num_classes, *, r2=None, spread=None, validate=True):
        if self.source == "none":
            return None
        if self.source == "cbar":
            if not float(cbar) > 0:
                raise ValueError(f"cbar must be > 0, got {cbar}.")
            device = r2.device if r2 is not None else None
            return torch.full((int(num_classes),), float(cbar), device=device)
        if self.source == "val_error":
            if self.val_error.numel() != int(num_classes):
                raise ValueError(
                    f"val_error has {self.val_error.numel()} entries but the probe has {num_classes} classes."
                )
            gamma = margins_from_error(self.val_error, cbar, self.power, self.eps)
            return gamma.to(r2.device) if r2 is not None else gamma
        stat = r2 if self.source == "r2" else spread
        if stat is None:
            raise ValueError(f"loss with margin source {self.source!r} needs the {self.source} class statistic.")
        return margins(stat, cbar, self.sharpness, validate=validate)

    def forward(self, logits, labels, *, gamma=None, features=None):
        return margin_cross_entropy(logits, labels, gamma)


# -------------------------------------------------------------------------------------------------- baselines
class FocalLoss(ProbeLoss):
    """Focal loss (Lin et al., 2017): FL = −(1 − p_y)^{γ_f} log p_y, mean over the batch; γ_f = 0 is CE.

    1 − p_y is taken as −expm1(log p_y) (exact where p_y is near 1) and floored at the smallest normal float: at
    p_y = 1 in float32 (a logit gap above about 17) the derivative of x^{γ_f} at 0 is infinite for 0 < γ_f < 1,
    and every weight of the fit became NaN (a review)."""

    def __init__(self, gamma_focal: float = 2.0) -> None:
        super().__init__()
        self.gamma_focal = float(gamma_focal)

    def forward(self, logits, labels, *, gamma=None, features=None):
        logp = F.log_softmax(logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
        miss = (-torch.expm1(logp)).clamp_min(torch.finfo(logp.dtype).tiny)
        return (-miss.pow(self.gamma_focal) * logp).mean()


class GroupDROLoss(ProbeLoss):
    """Online group DRO (Sagawa et al., 2020, Algorithm 1) with the classes as groups.

    Each call is one online step: with L_g the mean CE of the batch samples of class g,
    q_g ← q_g·exp(η·L_g) for the classes present (absent classes keep q_g), q ← q / Σ q, and the loss is
    Σ_g q_g·L_g. q starts uniform (1/K) at the first call and lives in the buffer ``q`` (each fit builds its loss).

    Args:
        eta: step size η > 0 of the exponentiated-gradient update of the group weights.
    """

    def __init__(self, eta: float = 0.01) -> None:
        super().__init__()
        self.eta = float(eta)
        self.register_buffer("q", torch.empty(0), persistent=False)

    def forward(self, logits, labels, *, gamma=None, features=None):
        k = logits.shape[1]
        if self.q.numel() != k:
            self.q = torch.full((k,), 1.0 / k, device=logits.device, dtype=logits.dtype)
        per_sample = F.cross_entropy(logits, labels, reduction="none")
        counts = torch.bincount(labels, minlength=k).to(logits.dtype)
        sums = torch.zeros(k, device=logits.device, dtype=logits.dtype).index_add(0, labels, per_sample)
        group_loss = sums / counts.clamp(min=1.0)  # absent classes: 0, so exp(0) leaves their q unchanged
        with torch.no_grad():
            q = self.q * torch.exp(self.eta * group_loss.detach())
            self.q = q / q.sum()
        return (self.q * group_loss).sum()


class LogitAdjustedLoss(ProbeLoss):
    """Logit-adjusted cross-entropy (Menon et al., 2021): CE(z + τ·log π, y), π the class priors.

    ``priors`` (K,) are class frequencies; the trainer fills them from the training counts when not given.
    On balanced data the shift is constant across classes and the loss equals CE.
    """

    def __init__(self, tau: float = 1.0, priors=None) -> None:
        super().__init__()
        if priors is None:
            raise ValueError(
                "loss 'logit_adjust' needs priors=(K,) class priors (the trainer passes the training "
                "class frequencies)."
            )
        pri = as_tensor(priors, dtype=torch.float32)
        if pri.dim() != 1 or bool((~torch.isfinite(pri) | (pri < 0)).any()) or float(pri.sum()) <= 0:
            why = "that sum to more than 0" if pri.dim() == 1 and bool(torch.isfinite(pri).all() & (pri >= 0).all()) \
                else "(finite, none negative)"  # all zero read as if one were negative (an attack round)
            raise ValueError(f"priors must be a 1-D array of non-negative frequencies {why}, got {pri.tolist()}.")
        self.tau = float(tau)
        pri = pri / pri.sum()
        self.register_buffer("log_priors", torch.log(pri.clamp(min=1e-12)))

    def forward(self, logits, labels, *, gamma=None, features=None):
        if self.log_priors.numel() != logits.shape[1]:
            raise ValueError(f"priors have {self.log_priors.numel()} classes, logits have {logits.shape[1]}.")
        return F.cross_entropy(logits + self.tau * self.log_priors.to(logits.dtype), labels)


def ldam_margins(priors, max_margin: float) -> Tensor:
    """Δ_k = C / n_k^{1/4} with C such that max_k Δ_k = max_margin (LDAM, Cao et al., 2019).

    ``priors`` (K,): the training class counts n_k or their frequencies (Δ depends on their ratios only):
    Δ_k = max_margin · (n_min / n_k)^{1/4}, n_min the smallest positive count. A class without training samples
    (n_k = 0) is never a target in the fit; it gets max_margin rather than an infinite margin. Returns (K,) float32.
    """
    n = as_tensor(priors, dtype=torch.float64)
    positive = n > 0
    if n.dim() != 1 or not bool((torch.isfinite(n) & (n >= 0)).all()) or not bool(positive.any()):
        raise ValueError("priors must be a 1-D array of non-negative class counts or frequencies (finite, not all "
                         f"zero), got {n.tolist()}.")
    quarter = n.clamp(min=torch.finfo(torch.float64).tiny).pow(-0.25)
    delta = max_margin * quarter / quarter[positive].max()
    return torch.where(positive, delta, torch.full_like(delta, max_margin)).to(torch.float32)


class LDAMLoss(ProbeLoss):
    """LDAM, label-distribution-aware margin loss (Cao et al., NeurIPS 2019):
    L = −log[e^{s(z_y − Δ_y)} / (e^{s(z_y − Δ_y)} + Σ_{j≠y} e^{s·z_j})], Δ_k = C / n_k^{1/4}
    (:func:`ldam_margins`): rarer classes get larger margins.

    On the head's logits z (``input = "logits"``: any head), s = 1 by default: the margins are in logit units, as
    in the paper's analysis. The authors' code applies it to cosines with a fixed s = 30; here a fixed scale
    starves the fit (the cosine head's learnt scale reaches about 80 on these features), so the loss takes the
    head's logits, learnt scale included.

    ``priors`` (K,): the training class counts or frequencies; the trainer fills the training frequencies when
    not given (``needs = "priors"``, as for ``logit_adjust``). The deferred re-weighting (LDAM-DRW) of the paper
    is a training schedule, not part of this loss.
    """

    def __init__(self, scale: float = 1.0, max_margin: float = 0.5, priors=None) -> None:
        super().__init__()
        if priors is None:
            raise ValueError("loss 'ldam' needs priors=(K,) class counts or frequencies (the trainer passes the "
                             "training class frequencies).")
        self.scale, self.max_margin = float(scale), float(max_margin)
        self.register_buffer("delta", ldam_margins(priors, self.max_margin))

    def forward(self, logits, labels, *, gamma=None, features=None):
        if self.delta.numel() != logits.shape[1]:
            raise ValueError(f"priors have {self.delta.numel()} classes, logits have {logits.shape[1]}.")
        shift = self.delta.to(logits.dtype)[labels].unsqueeze(1) * F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return F.cross_entropy(self.scale * (logits - shift), labels)


class LabelSmoothingLoss(ProbeLoss):
    """Cross-entropy with label smoothing ε (Szegedy et al., 2016)."""

    def __init__(self, smoothing: float = 0.1) -> None:
        super().__init__()
        self.smoothing = float(smoothing)

    def forward(self, logits, labels, *, gamma=None, features=None):
        return F.cross_entropy(logits, labels, label_smoothing=self.smoothing)


# ------------------------------------------------------------- largest-margin family (Zhou et al., ICLR 2022)
class LMSoftmaxLoss(ProbeLoss):
    """LM-Softmax: L = −(1/s)·log[exp(s·w_yᵀz) / Σ_{j≠y} exp(s·w_jᵀz)] on normalised features and prototypes.

    Works on cosines w̃_jᵀz̃ (``input = "cosine"``): it requires the cosine head (the trainer raises otherwise).
    The true class is excluded from the denominator, so the loss keeps pushing w_yᵀz − w_jᵀz apart.
    """

    def __init__(self, scale: float = 16.0) -> None:
        super().__init__()
        self.scale = float(scale)
        # the loss is divided by s: at ProbeConfig's tol = 1e-3 on its raw value, fits on digits.h5 (cosine head,
        # lr 0.01) stopped after 46–57 epochs at 63.0–70.2 % test accuracy against 73.3 % over all 450; at tol/s
        # after 109–140 epochs, at 71.9–72.8 % (cosface there: 112–141 epochs, 73.7–74.4 % against 74.2–74.4 %)
        self.tol_unit = 1.0 / self.scale

    def forward(self, logits, labels, *, gamma=None, features=None):
        s = self.scale
        target = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
        others = (s * logits).masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
        return (-target + torch.logsumexp(others, dim=1) / s).mean()


class CosFaceLoss(ProbeLoss):
    """CosFace / large-margin cosine loss (Wang et al., 2018): CE(s·(cos θ_j − m·[j = y]), y). Needs cosines."""

    def __init__(self, scale: float = 16.0, margin: float = 0.35) -> None:
        super().__init__()
        self.scale, self.margin = float(scale), float(margin)

    def forward(self, logits, labels, *, gamma=None, features=None):
        onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return F.cross_entropy(self.scale * (logits - self.margin * onehot), labels)


class ArcFaceLoss(ProbeLoss):
    """ArcFace / additive angular margin (Deng et al., 2019): CE(s·cos(θ_y + m)) for the true class.

    As in the reference implementation, where θ_y + m would exceed π (cos θ_y < cos(π − m)) the target logit is
    cos θ_y − m·sin m instead, keeping it monotone in θ_y. Needs cosines.
    """

    def __init__(self, scale: float = 16.0, margin: float = 0.5) -> None:
        super().__init__()
        self.scale, self.margin = float(scale), float(margin)

    def forward(self, logits, labels, *, gamma=None, features=None):
        m = self.margin
        cos = logits.gather(1, labels.unsqueeze(1)).squeeze(1).clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        sin = torch.sqrt(1.0 - cos * cos)
        phi = cos * math.cos(m) - sin * math.sin(m)
        phi = torch.where(cos > math.cos(math.pi - m), phi, cos - m * math.sin(m))
        adjusted = logits.scatter(1, labels.unsqueeze(1), phi.unsqueeze(1).to(logits.dtype))
        return F.cross_entropy(self.scale * adjusted, labels)


# --------------------------------------------------------------------------------------- add-on regularisers
def _sample_margins(weights: Tensor, features: Tensor, labels: Tensor) -> Tensor:
    """(n,) w̃_yᵀz̃ − max_{j≠y} w̃_jᵀz̃ on L2-normalised prototypes w̃ (K, d) and features z̃ (n, d)."""
    cos = F.normalize(features, dim=1) @ F.normalize(weights, dim=1).t()
    target = cos.gather(1, labels.unsqueeze(1)).squeeze(1)
    other = cos.masked_fill(F.one_hot(labels, cos.shape[1]).bool(), float("-inf")).amax(dim=1)
    return target - other


def sample_margin_regularizer(weights: Tensor, features: Tensor, labels: Tensor) -> Tensor:
    """R_sm = −mean_x (w_yᵀz − max_{j≠y} w_jᵀz) on normalised prototypes and features (Zhou et al., 2022).

    Added to any loss with a weight (``ProbeTrainer(sm_weight=...)``). Args: weights (K, d), features (n, d)
    (the features the head sees), labels (n,).
    """
    return -_sample_margins(weights, features, labels).mean()


def zero_centroid_regularizer(weights: Tensor) -> Tensor:
    """R_W = ‖(1/K)·Σ_j w̃_j‖² on normalised prototypes w̃ (Zhou et al., 2022); the weight λ is applied by the
    caller (``ProbeTrainer(zc_weight=...)``). Zero for a centred set of prototypes (e.g. a regular simplex)."""
    return F.normalize(weights, dim=1).mean(dim=0).pow(2).sum()


def representation_margin(features: Tensor, labels: Tensor, sbar) -> Tensor:
    """ℓ_s̄ = log(1 + Σ_{x⁺ same class, x⁺ ≠ x} exp(‖φ(x) − φ(x⁺)‖² − 2s̄)), averaged over anchors (MR², ℓ_s̄).

    Computed over all same-class pairs of the batch from the pairwise squared-distance matrix and a same-class
    mask (no loop over classes), with log(1 + Σ exp(·)) evaluated as a logsumexp that includes a 0 term, so large
    distances do not overflow. s̄ is treated as a constant (the mean per-class mean squared deviation, tracked
    outside the graph).

    Choice for small classes: an anchor whose class has no other sample in the batch has no x⁺; it contributes
    nothing and the mean runs over the anchors that have at least one x⁺. A batch without any such anchor gives
    0 (still connected to ``features`` so ``backward`` works).

    On frozen features this has no gradient w.r.t. any trainable parameter: it acts only through an adapter.

    Args:
        features: (n, d) features φ(x) (after the adapter); labels: (n,); sbar: scalar s̄.
    Returns:
        scalar loss.
    """
    sq = features.pow(2).sum(dim=1)
    dist2 = (sq[:, None] + sq[None, :] - 2.0 * features @ features.t()).clamp(min=0.0)
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    sbar = as_tensor(sbar, dtype=features.dtype, device=features.device).detach()
    terms = (dist2 - 2.0 * sbar).masked_fill(~same, float("-inf"))
    zero = torch.zeros(features.shape[0], 1, dtype=features.dtype, device=features.device)
    per_anchor = torch.logsumexp(torch.cat([zero, terms], dim=1), dim=1)  # = 0 for anchors without x⁺
    valid = same.any(dim=1).to(features.dtype)
    return (per_anchor * valid).sum() / valid.sum().clamp(min=1.0)


# ------------------------------------------------------------------------------------------------- registry
# The entries (names, options with their bounds, needs, input) are data in probe.registry.LOSSES; a spec's
# ``factory`` names the class here.
def list_losses() -> list[str]:
    """Names of the registered losses."""
    return list(LOSSES)


def create_loss(name: str, **options) -> ProbeLoss:
    """Build the loss ``name`` with ``options`` merged over the registry defaults (``None`` values dropped).

    Raises:
        KeyError: unknown loss name. TypeError: an option the loss does not accept. ValueError: a bad value.
    """
    spec = get_loss_spec(name)
    resolved = check_options(spec, options, "loss")
    loss = globals()[spec.factory](**spec.args, **resolved)
    loss.spec = spec  # its needs and input
    loss.options = {k: (v.tolist() if isinstance(v, (np.ndarray, Tensor)) else v) for k, v in resolved.items()}
    logger.debug("built loss %s with options %s", name, loss.options)
    return loss
