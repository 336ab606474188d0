"""Per-class feature statistics and the MR² margins γ derived from them.

Symbols follow the MR² paper ("Reducing Class-Wise Performance Disparity via Margin Regularization", ICLR 2026):

- r_k² = mean over the samples of class k of ‖φ(x)‖_p²  (the class "radius"; for p = 2 it equals
  ‖μ_k‖² + ‖s_k‖², the squared norm of the class mean plus the within-class spread),
- ‖s_k‖² = mean over class k of ‖φ(x) − μ_k‖²  (within-class mean squared deviation),
- γ_k = c̄·K·r_k^{2/3} / Σ_j r_j^{2/3}  (the class margins, so that mean_k γ_k = c̄).

Everything here is vectorised over classes (``index_add_`` / ``bincount``); nothing loops over K.
Functions take and return torch tensors; :func:`as_tensor` converts numpy input at the boundary.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)


__all__ = [
    "as_tensor",
    "class_counts",
    "class_means",
    "class_r2",
    "class_spread",
    "ClassStats",
    "exact_class_stats",
    "margins",
    "margins_from_error",
    "mean_spread",
    "EmaClassStats",
    "unusable_rows",
]


def as_tensor(x, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """Convert a numpy array / sequence / tensor to a tensor (no copy when already matching). A numpy view with a
    negative stride (``x[::-1]``), which torch cannot share, is copied first."""
    if isinstance(x, Tensor):
        return x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)
    x = np.asarray(x)
    if any(stride < 0 for stride in x.strides):
        x = x.copy()
    return torch.as_tensor(x, dtype=dtype, device=device)


def _check_shapes(features: Tensor, labels: Tensor, num_classes: int) -> None:
    if features.dim() != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {tuple(features.shape)}.")
    if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels must be 1-D with one entry per feature row ({features.shape[0]}), "
            f"got shape {tuple(labels.shape)}."
        )
    _check_labels(labels, num_classes)


def _check_labels(labels: Tensor, num_classes: int) -> None:
    """Labels in [0, num_classes): one outside was a torch 'index out of bounds' RuntimeError in the class sums, or
    one more count than classes from :func:`class_counts` (a library round)."""
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= int(num_classes)):
        raise ValueError(f"labels must lie in [0, {int(num_classes) - 1}] for num_classes={int(num_classes)}, got "
                         f"values in [{int(labels.min())}, {int(labels.max())}].")


def class_counts(labels: Tensor, num_classes: int) -> Tensor:
    """Number of samples per class.

    Args:
        labels: (n,) integer class indices in [0, num_classes).
    Returns:
        (K,) float tensor of counts (float so it can divide sums directly).
    """
    labels = as_tensor(labels).long()
    _check_labels(labels, num_classes)
    return torch.bincount(labels, minlength=int(num_classes)).to(torch.get_default_dtype())


# Rows per chunk of :func:`unusable_rows`. On 45k × 1280 (1 thread) its minimum and maximum per 1,024-row chunk
# took 7.3 ms in float16, 11.0 ms in float32; the earlier check (a float32 sum per chunk, float16 widened into a
# reused buffer) 8.9 and 14.2 ms.
_FINITE_CHUNK = 1024
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
# what makes a row one of unusable_rows', in the trainer's and a registration's messages
UNUSABLE = f"NaN, infinite or too large for float32 (a squared norm past {FLOAT32_MAX:.3g})"


def unusable_rows(t: Tensor) -> Tensor:
    """Indices (ascending, int64) of the rows of ``t`` (n, d), any float dtype, that no probe trains on: a NaN, an
    infinity, or a squared norm ‖φ‖² past float32's range. The class statistics r_k² = mean ‖φ‖² and ‖s_k‖² come
    back in float32: one 3e38 value in a float32 cache made r_k² infinite, and every MR² fit failed blaming "a
    class without samples" (1e20 "succeeded" with r² = 2.5e38). The one definition of the trainer's check and of
    a cache's registration (``app.caches``).

    Read in chunks of ``_FINITE_CHUNK`` rows with no (n, d) temporary: a chunk whose values all lie within
    ±√(max / d) (each row's ‖φ‖² then fits) passes on its minimum and maximum; the others are read row by row in
    float64."""
    if t.numel() == 0:  # no rows, or rows of no feature (which the trainer refuses after: no aminmax of nothing)
        return torch.zeros(0, dtype=torch.int64)
    starts = range(0, t.shape[0], _FINITE_CHUNK)
    bound = (FLOAT32_MAX / max(1, t.shape[1])) ** 0.5
    reach = torch.empty(len(starts), dtype=torch.float64, device=t.device)
    for i, start in enumerate(starts):
        low, high = torch.aminmax(t[start:start + _FINITE_CHUNK])  # NaN propagates
        reach[i] = torch.maximum(-low.double(), high.double())  # widened first: -(-2**63) wraps in int64
    suspect = torch.nonzero(~(reach <= bound)).flatten().tolist()  # one host sync for all chunks
    rows = []
    for i in suspect:
        wide = t[i * _FINITE_CHUNK:(i + 1) * _FINITE_CHUNK].double()
        sq = torch.einsum("ij,ij->i", wide, wide)  # inf (or NaN) for NaN, ±inf or float64's own overflow
        rows.append(torch.nonzero(~(sq <= FLOAT32_MAX)).flatten().cpu() + i * _FINITE_CHUNK)
    return torch.cat(rows) if rows else torch.zeros(0, dtype=torch.int64)


# Rows per chunk of the class statistics: features are read chunk by chunk and widened per chunk, so float16
# features are never copied whole to float32/float64 (the (n, d) input stays the peak). Small chunks keep the
# float64 temporary (512 × 1280 × 8 B = 5 MB) out of fresh mappings: on 45k × 1280 float16 (1 thread, same
# sums) 16,384 rows took 440–607 ms, 4,096 370 ms, 1,024 160–211 ms, 512 133 ms, 256 131 ms.
_STATS_CHUNK = 512


def _stats_dtype(features: Tensor) -> torch.dtype:
    """float32 for half-precision (or integer) features, else their own dtype: the dtype statistics come back in."""
    return features.dtype if features.dtype in (torch.float32, torch.float64) else torch.float32


def _checked(features, labels, num_classes: int) -> tuple[Tensor, Tensor]:
    features = as_tensor(features)
    labels = as_tensor(labels, device=features.device).long()
    _check_shapes(features, labels, num_classes)
    return features, labels


def _class_moments(features: Tensor, labels: Tensor, num_classes: int, p: float | None,
                   prepare: Callable[[Tensor], Tensor] | None = None) -> dict[str, Tensor]:
    """Per-class sums over rows, in float64, reading ``features`` in chunks: ``counts`` (K,), ``sum`` Σφ (K, d),
    ``sq`` Σ‖φ‖₂² (K,) and, with ``p``, ``sq_p`` Σ‖φ‖_p² (K,). ``prepare`` maps each float32 chunk first (e.g.
    the cosine head's L2 normalisation)."""
    k, d = int(num_classes), features.shape[1]
    f64 = dict(dtype=torch.float64, device=features.device)
    out = {"sum": torch.zeros(k, d, **f64), "sq": torch.zeros(k, **f64)}
    if p is not None:
        out["sq_p"] = torch.zeros(k, **f64)
    for start in range(0, features.shape[0], _STATS_CHUNK):
        chunk = features[start:start + _STATS_CHUNK].to(_stats_dtype(features))
        if prepare is not None:
            chunk = prepare(chunk)
        lab = labels[start:start + _STATS_CHUNK]
        wide = chunk.double()
        out["sum"].index_add_(0, lab, wide)
        # ‖φ‖₂² without the (n, d) float64 temporary of wide.pow(2).sum(1) (~5× slower on 16k × 1280)
        sq = torch.einsum("ij,ij->i", wide, wide)
        out["sq"].index_add_(0, lab, sq)
        if p is not None:
            sq_p = sq if float(p) == 2.0 else torch.linalg.vector_norm(chunk, ord=float(p), dim=1).double().pow(2)
            out["sq_p"].index_add_(0, lab, sq_p)
    out["counts"] = torch.bincount(labels, minlength=k).double()
    return out


def _r2_of(moments: dict[str, Tensor]) -> Tensor:
    return moments["sq_p"] / moments["counts"]  # 0/0 = NaN marks an empty class


def _spread_of(moments: dict[str, Tensor]) -> Tensor:
    """‖s_k‖² = E_k‖φ‖² − ‖μ_k‖², clamped at 0 (rounding can make it slightly negative)."""
    counts = moments["counts"]
    mu = moments["sum"] / counts[:, None]
    return (moments["sq"] / counts - mu.pow(2).sum(dim=1)).clamp(min=0.0)  # NaN (empty class) stays NaN


def class_means(features, labels, num_classes: int) -> Tensor:
    """Class means μ_k = mean over class k of φ(x).

    Args:
        features: (n, d) features φ(x).
        labels: (n,) class indices.
        num_classes: K.
    Returns:
        (K, d); rows of classes without samples are NaN.
    """
    features, labels = _checked(features, labels, num_classes)
    moments = _class_moments(features, labels, num_classes, None)
    return (moments["sum"] / moments["counts"][:, None]).to(_stats_dtype(features))


def class_r2(features, labels, num_classes: int, p: float = 2.0) -> Tensor:
    """Exact r_k² = mean over class k of ‖φ(x)‖_p² (MR², definition of the class radius).

    For p = 2 this equals ‖μ_k‖² + ‖s_k‖².

    Args:
        features: (n, d) features the head sees (L2-normalised ones for the cosine head); float16 is read in
            chunks and widened per chunk.
        labels: (n,) class indices in [0, K).
        num_classes: K.
        p: order of the norm (> 0).
    Returns:
        (K,) r_k² (float32 for float16 features); NaN for classes without samples.
    """
    if not p > 0:
        raise ValueError(f"p must be > 0, got {p}.")
    features, labels = _checked(features, labels, num_classes)
    return _r2_of(_class_moments(features, labels, num_classes, p)).to(_stats_dtype(features))


def class_spread(features, labels, num_classes: int) -> Tensor:
    """Within-class spread ‖s_k‖² = mean over class k of ‖φ(x) − μ_k‖² (biased, divides by n_k).

    Computed in closed form, ‖s_k‖² = mean_k ‖φ‖² − ‖μ_k‖², from per-class sums accumulated in float64 over row
    chunks and clamped at 0: memory O(K·d) besides the input (no (n, K) or (n, d) temporary). The cancellation
    costs about 1e-16 · r_k²/‖s_k‖² (relative).

    Args:
        features: (n, d); labels: (n,); num_classes: K.
    Returns:
        (K,) spreads (float32 for float16 features); NaN for classes without samples.
    """
    features, labels = _checked(features, labels, num_classes)
    return _spread_of(_class_moments(features, labels, num_classes, None)).to(_stats_dtype(features))


@dataclass(frozen=True)
class ClassStats:
    """Exact class statistics of fixed features: r_k² of norm order ``p`` and ‖s_k‖², (K,) each.

    ``normalized`` says whether they were computed on L2-normalised features (what a cosine head sees), so a
    trainer can refuse statistics of the wrong features.
    """

    r2: Tensor
    spread: Tensor
    p: float
    normalized: bool


def exact_class_stats(features, labels, num_classes: int, p: float, normalized: bool = False, *,
                      prepare: Callable[[Tensor], Tensor] | None = None) -> ClassStats:
    """:func:`class_r2` and :func:`class_spread` of ``features`` in one chunked pass.

    On frozen features these are constants of the data: a hyper-parameter sweep computes them once and passes
    them to every fit (``ProbeTrainer.fit(class_stats=...)``).

    Args:
        features: (n, d), any float dtype (float16 is widened chunk by chunk).
        labels, num_classes, p: as in :func:`class_r2`.
        normalized: whether the statistics are of L2-normalised features (recorded in :class:`ClassStats`).
        prepare: applied to each float32 chunk before the statistics (e.g. the head's ``input_features``), so
            the features the head sees never exist in full.
    """
    if not p > 0:
        raise ValueError(f"p must be > 0, got {p}.")
    features, labels = _checked(features, labels, num_classes)
    moments = _class_moments(features, labels, num_classes, p, prepare)
    dtype = _stats_dtype(features)
    return ClassStats(_r2_of(moments).to(dtype), _spread_of(moments).to(dtype), float(p), bool(normalized))


def mean_spread(spread: Tensor) -> Tensor:
    """s̄ = mean_k ‖s_k‖², the scale of the representation margin ℓ_s̄ (MR², Eq. of ℓ_s̄)."""
    return as_tensor(spread).mean()


def _normalised_margins(base: Tensor, cbar: float, sharpness: float) -> Tensor:
    """c̄ · b_k^a / mean_j b_j^a for positive base values b (K,)."""
    if not float(cbar) > 0:
        raise ValueError(f"cbar must be > 0, got {cbar}.")
    if not float(sharpness) >= 0:
        raise ValueError(f"sharpness must be >= 0, got {sharpness}.")
    shaped = base.pow(float(sharpness))
    return float(cbar) * shaped / shaped.mean()


def margins(r2, cbar: float, sharpness: float = 1.0, *, validate: bool = True) -> Tensor:
    """γ_k = c̄·K·r_k^{2/3} / Σ_j r_j^{2/3} (MR², Eq. 1 / 17), so that mean_k γ_k = c̄.

    With ``sharpness`` a ≠ 1 (issue 7 variant), the normalised margins n_k = K·r_k^{2/3}/Σ_j r_j^{2/3} are raised
    to the power a and renormalised: γ_k = c̄·n_k^a / mean_j n_j^a. a = 1 is the paper, a = 0 gives γ_k = c̄
    (the ``uniform`` ablation), a > 1 spreads the margins further apart.

    Args:
        r2: (K,) positive class statistic (r_k², or ‖s_k‖² for the ``mr2_spread`` variant); K is its length.
        cbar: mean margin c̄ > 0.
        sharpness: exponent a >= 0 on the normalised margins.
        validate: check the entries (a host sync); the training loop passes False and relies on
            :meth:`EmaClassStats` filling the classes it does not know yet (unseen, or a zero statistic); an
            entry that is still 0 counts as the smallest positive float.
    Returns:
        (K,) γ with mean c̄, same dtype/device as ``r2``.
    Raises:
        ValueError: on non-finite or non-positive entries (e.g. a class with no samples), or bad c̄/a.
    """
    r2 = as_tensor(r2)
    if not r2.is_floating_point():
        r2 = r2.to(torch.get_default_dtype())
    if not validate:
        base = r2.clamp(min=torch.finfo(r2.dtype).tiny).pow(1.0 / 3.0).pow(float(sharpness))
        return float(cbar) * base / base.mean()
    if r2.dim() != 1 or r2.numel() == 0:
        raise ValueError(f"r2 must be a non-empty 1-D tensor (K,), got shape {tuple(r2.shape)}.")
    bad = ~torch.isfinite(r2) | (r2 <= 0)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()
        raise ValueError(
            f"class statistic must be finite and > 0 for every class; classes {idx} have "
            f"{r2[bad].tolist()} (a class without samples, or a spread of a single sample?)."
        )
    return _normalised_margins(r2.pow(1.0 / 3.0), cbar, sharpness)


def margins_from_error(error, cbar: float, power: float = 1.0, eps: float = 0.01) -> Tensor:
    """Margins from validation difficulty (issue 7 variant ``mr2_valerr``).

    γ_k = c̄·K·(e_k + ε)^a / Σ_j (e_j + ε)^a, with e_k the per-class validation error of a reference (ERM) run.
    Harder classes get larger margins, as larger r_k do in the paper; ε keeps a class with zero validation
    error from getting γ_k = 0 (which would divide its logits by zero); a = 0 gives γ_k = c̄.

    Args:
        error: (K,) per-class validation error in [0, 1] (1 − per-class accuracy).
        cbar: mean margin c̄ > 0.
        power: exponent a >= 0.
        eps: smoothing ε > 0.
    Returns:
        (K,) γ with mean c̄.
    """
    error = as_tensor(error, dtype=torch.get_default_dtype())
    if error.dim() != 1 or error.numel() == 0:
        raise ValueError(f"val_error must be a non-empty 1-D array (K,), got shape {tuple(error.shape)}.")
    if bool((~torch.isfinite(error) | (error < 0) | (error > 1)).any()):
        raise ValueError(f"val_error must hold errors in [0, 1], got {error.tolist()}.")
    if not float(eps) > 0:
        raise ValueError(f"eps must be > 0, got {eps}.")
    return _normalised_margins(error + float(eps), cbar, power)


# how many units of rounding of E‖φ‖² an EMA spread may differ from 0 and still be 0 (a class of one image)
_SPREAD_ROUNDING_ULPS = 64


class EmaClassStats:
    """The paper's exponential moving average of per-class statistics over training batches.

    After each batch, for every class k present in it: v_k ← decay·v_k + (1 − decay)·v̂_k, where v̂_k is the
    batch mean over the class-k samples; a class seen for the first time is initialised with v̂_k; classes absent
    from the batch keep their value. Tracked values: r_k² (‖φ‖_p², the paper's statistic) and, with
    ``track_spread``, the first two moments μ_k and E‖φ‖_2² from which ‖s_k‖² = E‖φ‖_2² − ‖μ_k‖² (tracking the
    moments rather than per-batch spreads avoids the small-batch (n_k − 1)/n_k bias).

    All state lives on ``device``; :meth:`update` performs no host synchronisation.

    Args:
        num_classes: K.
        p: order of the norm in r_k².
        decay: EMA decay (paper: 0.9).
        track_spread: also track μ_k and ‖s_k‖² (needs ``num_features``).
        num_features: d (required with ``track_spread``).
        device, dtype: where the state lives.
    """

    def __init__(
        self,
        num_classes: int,
        p: float = 2.0,
        decay: float = 0.9,
        *,
        track_spread: bool = False,
        num_features: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}.")
        if not float(p) > 0:
            raise ValueError(f"p must be > 0, got {p}.")
        if track_spread and not num_features:
            raise ValueError("track_spread=True needs num_features (d).")
        self.num_classes = int(num_classes)
        self.p = float(p)
        self.decay = float(decay)
        self.track_spread = bool(track_spread)
        k = self.num_classes
        self._r2 = torch.zeros(k, device=device, dtype=dtype)
        self._seen = torch.zeros(k, device=device, dtype=torch.bool)
        if self.track_spread:
            self._mean = torch.zeros(k, int(num_features), device=device, dtype=dtype)
            self._sq = torch.zeros(k, device=device, dtype=dtype)

    @property
    def seen(self) -> Tensor:
        """(K,) bool: classes seen in at least one batch."""
        return self._seen

    def _blend(self, old: Tensor, batch: Tensor, present: Tensor, first: Tensor) -> Tensor:
        shape = (-1,) + (1,) * (old.dim() - 1)
        # decay·old + (1 − decay)·batch, written as a step towards the batch: a value blended with itself (a class
        # of one training image) stays exactly itself. The sum form rounded it away a little at every step, and at
        # decay 0.999 μ drifted 1.4e-4 off the image, a spread of 0.22 (68 ulps of E‖φ‖²) for a class of one image.
        ema = old + (1.0 - self.decay) * (batch - old)
        new = torch.where(first.view(shape), batch, ema)
        return torch.where(present.view(shape), new, old)

    @torch.no_grad()
    def update(self, features: Tensor, labels: Tensor) -> None:
        """Fold one batch into the averages.

        Args:
            features: (n, d) features of the batch (detached internally); labels: (n,) class indices.
        """
        features = features.detach().to(self._r2.dtype)
        labels = labels.to(features.device).long()
        k = self.num_classes
        counts = torch.bincount(labels, minlength=k)
        present = counts > 0
        first = present & ~self._seen
        denom = counts.clamp(min=1).to(features.dtype)
        sq_p = torch.linalg.vector_norm(features, ord=self.p, dim=1).pow(2)
        batch_r2 = torch.zeros(k, device=features.device, dtype=features.dtype).index_add_(0, labels, sq_p) / denom
        self._r2 = self._blend(self._r2, batch_r2, present, first)
        if self.track_spread:
            sums = torch.zeros_like(self._mean).index_add_(0, labels, features)
            batch_mean = sums / denom[:, None]
            sq2 = features.pow(2).sum(dim=1)
            batch_sq = torch.zeros(k, device=features.device, dtype=features.dtype).index_add_(0, labels, sq2) / denom
            self._mean = self._blend(self._mean, batch_mean, present, first)
            self._sq = self._blend(self._sq, batch_sq, present, first)
        self._seen = self._seen | present

    def _require_seen(self, what: str) -> None:
        if not bool(self._seen.all()):
            missing = torch.nonzero(~self._seen).flatten().tolist()
            raise ValueError(f"cannot give {what}: classes {missing} have not been seen in any batch yet.")

    def _fill_unseen(self, values: Tensor) -> Tensor:
        """Classes not known yet take the mean of the known ones (neutral for the normalisation); no host sync.

        Known: seen in a batch, with a positive statistic. A class seen once has a spread of exactly 0 (one sample;
        every step for a class of one training image), which :func:`margins` floors at the smallest float: its γ
        came out about 2e-13 and its logits were divided by it (loss 8e11; a review), where the exact statistics
        refuse such a class."""
        known = self._seen & (values > 0)
        weight = known.to(values.dtype)
        fill = (values * weight).sum() / weight.sum().clamp(min=1.0)
        return torch.where(known, values, fill)

    def r2(self, strict: bool = True) -> Tensor:
        """(K,) current r_k². ``strict`` raises if a class was never seen; otherwise those (and a zero r_k²) take the
        mean of the others (:meth:`_fill_unseen`)."""
        if strict:
            self._require_seen("r2")
            return self._r2.clone()
        return self._fill_unseen(self._r2)

    def _spread_values(self) -> Tensor:
        """E‖φ‖² − ‖μ_k‖², clamped at 0, and 0 within a few units of rounding of E‖φ‖²: blending one image with
        itself leaves the two moments rounded apart (3e-5 for a one-image class at ‖φ‖² = 247, float32), which
        read as a measured spread and kept that class from the training loop's fill (:meth:`_fill_unseen`)."""
        if not self.track_spread:
            raise ValueError("spread is only tracked with track_spread=True.")
        values = (self._sq - self._mean.pow(2).sum(dim=1)).clamp(min=0.0)
        rounding = _SPREAD_ROUNDING_ULPS * torch.finfo(values.dtype).eps * self._sq
        return torch.where(values <= rounding, torch.zeros_like(values), values)

    def measured(self) -> tuple[Tensor, Tensor]:
        """(r_k², ‖s_k‖²) as tracked, NaN for a class never seen: what a fit reports. Unlike ``strict=False``,
        nothing is filled in: a class of one training image keeps its spread of 0 (the training loop's fill
        stands for it in the margins only), and unlike ``strict=True`` nothing raises. Needs ``track_spread``."""
        nan = torch.tensor(float("nan"), device=self._r2.device, dtype=self._r2.dtype)
        spread = self._spread_values()
        return torch.where(self._seen, self._r2, nan), torch.where(self._seen, spread, nan)

    def spread(self, strict: bool = True) -> Tensor:
        """(K,) current ‖s_k‖² = E‖φ‖² − ‖μ_k‖² (clamped at 0; needs ``track_spread``)."""
        values = self._spread_values()
        if strict:
            self._require_seen("spread")
            return values
        return self._fill_unseen(values)

    def gamma(self, cbar: float, sharpness: float = 1.0, strict: bool = True) -> Tensor:
        """(K,) γ = margins(r2, c̄) from the current averages (see :func:`margins`).

        With ``strict=False`` (used inside the training loop, where a check would cost a host sync per step),
        classes not known yet take the mean r² of the known ones (:meth:`_fill_unseen`).
        """
        if strict:
            return margins(self.r2(strict=True), cbar, sharpness)
        return margins(self._fill_unseen(self._r2), cbar, sharpness, validate=False)
