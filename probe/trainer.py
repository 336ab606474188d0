"""ProbeTrainer: a scikit-learn-style estimator that trains a head (and optional adapter) on cached features.

Training is plain tensor code: the features are moved to the device once and indexed per batch (no DataLoader),
full-batch (``batch_size=None``) or shuffled mini-batches from a ``torch.Generator`` seeded by ``random_state``;
Adam (weight decay as an L2 penalty), AdamW (decoupled decay) or SGD with momentum (L2); a per-step cosine
learning-rate schedule after a linear warm-up. The loop performs no host synchronisation per step: the epoch
losses accumulate on the device and are read once at the end.

Objective (MR², with the add-ons of the loss module):

    L = loss(z, y; γ) + λ·ℓ_s̄(φ̃, y) + w_sm·R_sm + w_zc·R_W  (+ wd/2·‖W‖² for adam and sgd)

z the head's logits (or cosines for ``input = "cosine"`` losses), φ̃ the features the head sees
(``transform``), γ from the class statistics named by the loss. Class statistics r_k² (‖·‖_p, p = 2 for linear,
3 for cosine heads by default) and ‖s_k‖² are computed on φ̃: exactly once (``r2_mode="exact"``, frozen features)
or by the paper's EMA over batches (``r2_mode="ema"``; always used with an adapter, since the adapted features and
hence their statistics move during training).
"""
from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from .adapters import create_adapter
from .checkpoint import read_checkpoint, unreadable, write_checkpoint
from .devices import resolve_device
from .heads import LinearHead, create_head, get_head_spec, head_class
from .optim import OPTIMIZER_CLASSES, SGD, step_all
from .metrics import integer_labels, overall_accuracy
from .losses import LOGSUMEXP_CLASSES, MarginCrossEntropy, create_loss, get_loss_spec, joint_cross_entropy, \
    representation_margin, sample_margin_regularizer, softmax_cross_entropy_grad, zero_centroid_regularizer
from .config import auto_epochs
from .params import L2_OPTIMIZERS, TRAINER_PARAMS, check_trainer_params
from .precision import BatchProduct, ConstantProduct, autocast, cast_rows, per_head_products, resolve_precision, \
    rows_product, widen
from .registry import NEEDS
from .stats import UNUSABLE, ClassStats, EmaClassStats, as_tensor, class_counts, exact_class_stats, mean_spread, \
    unusable_rows

logger = logging.getLogger(__name__)

__all__ = ["ProbeTrainer", "fit_many", "diverged", "save_probe", "load_probe", "lr_schedule",
           "JOINT_FIT_SHARED"]

# Inference widens its input to float32 in chunks of at most this many bytes (at least one row): small enough to
# stay in the cache and be reused, where whole-split float32 copies were new memory a process faulted in (a seed's
# evaluation on 5,000 val and 10,000 test rows × 1280: ~0.5 s on its first call, ~65 ms after).
_CHUNK_BYTES = 1 << 24


def _chunk_rows(width: int) -> int:
    """Rows of a ``width``-column float32 chunk of at most ``_CHUNK_BYTES`` (at least one row): inference's
    widening chunks and the chunks of a cast-once copy (:class:`_Batches`)."""
    return max(1, _CHUNK_BYTES // (4 * width))


# A bf16 fit on mini-batches whose heads' product is the batches' only reader (_Run.joins_loss) keeps a bfloat16
# copy of its training features, cast once, and gathers its batches from it: no per-step float16 → float32
# widening and bfloat16 cast of each batch, ~0.8 ms per 1024 × 1280 batch against ~2.2 ms for the 6-head ERM
# sweep's products (60 outputs; bench/README.md, "Training precision"). Only where that pays and the copy stays
# small: a product of at most CAST_ONCE_MAX_OUTPUTS outputs (at 600 the casts are ~4 % of a step, at 6000 of the
# 1000-class sweeps 0.4 %), a copy of at most CAST_ONCE_MAX_BYTES; otherwise each batch is cast anew.
CAST_ONCE_MAX_OUTPUTS = 512
CAST_ONCE_MAX_BYTES = 1 << 29


def _to_features(x, name: str = "features") -> Tensor:
    """A 2-D float tensor without copying float32 or float16 input (float16 stays float16: the trainer widens it
    batch by batch); other dtypes are converted to float32 (:func:`checked_features` first)."""
    t = checked_features(x, name)
    return t if t.dtype in (torch.float32, torch.float16) else t.to(torch.float32)


def checked_features(x, name: str = "features") -> Tensor:
    """``x`` as a tensor of its own dtype (numpy input shared, not copied), checked: 2-D, numeric, at least one row,
    no row of :func:`probe.stats.unusable_rows`; else ValueError / TypeError naming ``name``. What ``run_probe`` checks every split with
    before any fit, without the float32 copy of float64 features that :func:`_to_features` makes."""
    t = x.detach() if isinstance(x, Tensor) else as_tensor(x)
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, num_features), got shape {tuple(t.shape)}.")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"{name} must be numeric, got dtype {t.dtype}.")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows).")
    bad = len(unusable_rows(t))
    if bad:
        raise ValueError(f"{name} hold values that are {UNUSABLE} in {bad} row(s).")
    return t


def _to_labels(y, n: int) -> Tensor:
    t = as_tensor(y if isinstance(y, Tensor) else integer_labels(y))
    if t.dim() != 1:
        raise ValueError(f"labels must be 1-D (n_samples,), got shape {tuple(t.shape)}.")
    if t.shape[0] != n:
        raise ValueError(f"features have {n} rows but labels have {t.shape[0]} entries.")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or not bool((t == t.round()).all()):
            raise TypeError("labels must be integer class indices, got non-integer values.")
    elif t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"labels must be integer class indices, got dtype {t.dtype}.")
    return t.to(torch.int64)


def lr_schedule(lr: float, total_steps: int, warmup_steps: int) -> list[float]:
    """Per-step learning rates: linear warm-up lr·(t+1)/W for t < W, then lr·½(1 + cos(π(t − W)/(T − W)))."""
    out = []
    for t in range(total_steps):
        if t < warmup_steps:
            out.append(lr * (t + 1) / warmup_steps)
        else:
            out.append(lr * 0.5 * (1.0 + math.cos(math.pi * (t - warmup_steps) / max(1, total_steps - warmup_steps))))
    return out


def _weight_decay_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    """Optimizer parameter groups: weight decay on matrices only, none on biases and scales (1-d or 0-d).

    As timm's ``param_groups_weight_decay`` and open_clip's exclusion of gains, biases and ``logit_scale``:
    decaying the cosine head's log-scale would pull the softmax temperature to 1 for no reason.
    """
    params = [p for m in modules for p in m.parameters()]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": float(weight_decay)},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


class ProbeTrainer:
    """Linear / cosine probe with MR² margins, trained on cached features.

    ``fit(features, labels)``: features (n, d) float16 / float32 / float64 (numpy in any memory layout, a torch
    tensor or nested lists), labels (n,) integer class indices in [0, K) of any integer dtype (class names are
    refused: map them with ``np.unique(labels, return_inverse=True)``); ``predict`` returns such indices.

    Args:
        head: head name (``linear``, ``cosine``); ``head_options`` are passed to :func:`probe.create_head`.
        loss: loss name (see :func:`probe.list_losses`); ``loss_options`` are passed to :func:`probe.create_loss`.
        cbar: mean margin c̄ for margin losses (``uniform``, ``mr2``…), chosen from {1, 2, 3} on validation.
        p: order of the norm in r_k² = mean ‖φ‖_p²; None means the head's default (2 linear, 3 cosine).
        lam: weight λ of the representation margin ℓ_s̄; needs an ``adapter`` (no gradient on frozen features).
        adapter: None, ``linear``, ``lowrank`` or ``mlp`` (trainable map before the head, :func:`probe.create_adapter`);
            ``adapter_rank`` for lowrank and mlp.
        r2_mode: ``exact`` (class statistics once from the training features) or ``ema`` (the paper's EMA per
            batch, decay ``ema_decay``). With an adapter the EMA is always used (``stats_mode_`` says which ran).
        lr, weight_decay, epochs, batch_size: optimisation; ``batch_size=None`` is full-batch. ``epochs`` is a cap
            when ``tol`` is set; None (the default) is :func:`probe.config.auto_epochs` of the training rows and
            ``batch_size`` (``epochs_`` says how many): at least ``AUTO_MIN_STEPS`` = 450 optimiser steps within
            10..450 epochs, the rule of ``run_probe`` and ``mr2probe train``. A fixed 100 stopped short on small
            sets: full batch, lr 1e-2, the training loss at 100 epochs was 0.57 / 0.18 / 0.18 on digits / CIFAR-10
            2,700 / Fashion-MNIST 5,000 against 0.15 / 0.02 / 0.04 at 450, digits 86.4 % test against 92.7 %
            (scikit-learn's LogisticRegression 91.5 %).
        tol: tolerance of the stopping criterion: training stops after ``n_iter_no_change`` epochs since the
            objective last beat its best by more than ``tol`` that stayed near the best (best − tol < loss ≤
            best + max(tol, ``RISE_TOLERANCE``·|best|)); an epoch further above, a fit still moving, neither counts
            nor resets the count. None or 0 always runs ``epochs``; ``history_`` holds the
            epochs actually run. ``tol`` is in cross-entropy units: for a loss divided by its scale s
            (``lm_softmax``) the objective is compared with tol / s (``ProbeLoss.tol_unit``). The cosine schedule
            is laid out over ``epochs`` either way. The epoch's objective is the mean training loss of its
            batches, plus, for the L2 optimisers (``adam``, ``sgd``), the penalty weight_decay/2·‖W‖² of the
            weights at the epoch's end: the loss alone rises as the penalty shrinks the weights, and stopped such
            fits after a few epochs (synthetic 30 per class: 12 of 100).
        n_iter_no_change: epochs near the best since the objective last beat it by more than ``tol`` before
            stopping (with ``tol``; not consecutive: an epoch further above neither counts nor resets the count).
        anneal_epochs: once ``tol`` is met, the fit runs this many more epochs (at most to ``epochs``) while its
            learning rate falls linearly towards 0, then stops; 0 stops at once (scikit-learn's rule).
        optimizer: ``adam`` (weight decay as the L2 penalty weight_decay/2·‖W‖² of the objective), ``adamw``
            (decoupled decay) or ``sgd`` (with ``momentum``; L2 penalty) (probe.optim); cosine schedule after
            ``warmup_epochs`` of linear warm-up.
        device: ``cpu``, ``cuda[:N]`` or ``auto``. Results are bit-identical for a fixed seed on CPU.
        precision: ``fp32``, ``bf16`` (the training matrix products under bfloat16 autocast; float32 weights,
            loss, softmax, class statistics and margins) or ``auto`` (bf16 on a CPU with native bfloat16 when the
            heads' stacked product is wide enough, fp32 otherwise); see :mod:`probe.precision`. ``precision_``
            says which ran. Evaluation is float32.
        random_state: seed of the initialisation, the batch order and the ℓ_s̄ pair subsample.
        sm_weight, zc_weight: weights of the sample-margin regulariser R_sm and zero-centroid regulariser R_W.
        rep_margin_samples: ℓ_s̄ is computed on at most this many samples of a batch, drawn at random per step.
            Its pairwise matrix costs n²·d multiply-adds per step: 1.3 G at n = 1024 and d = 1280, 8× the matrix
            products of a rank-64 adapter, while 256 samples still hold about 25 per class (≈ 300 positive pairs each) at K = 10.
        progress: callable ``progress(epoch, epochs)`` after each epoch (it may raise to abort the fit), and
            within a long epoch about every ``PROGRESS_SECONDS`` with the fraction of epochs done (a float), so
            that a fit of many small batches reports and can be stopped mid-epoch.
        progress_bar: show a tqdm bar over epochs.
    """

    def __init__(
        self,
        head: str = "linear",
        loss: str = "ce",
        cbar: float = 1.0,
        p: float | None = None,
        lam: float = 0.0,
        adapter: str | None = None,
        r2_mode: str = "exact",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        epochs: int | None = None,
        batch_size: int | None = None,
        tol: float | None = None,
        n_iter_no_change: int = 5,
        anneal_epochs: int = 10,
        optimizer: str = "adam",
        warmup_epochs: int = 0,
        device: str = "cpu",
        precision: str = "auto",
        random_state: int = 0,
        momentum: float = 0.9,
        head_options: dict | None = None,
        loss_options: dict | None = None,
        adapter_rank: int | None = None,
        sm_weight: float = 0.0,
        zc_weight: float = 0.0,
        ema_decay: float = 0.9,
        rep_margin_samples: int = 256,
        progress: Callable[[int, int], Any] | None = None,
        progress_bar: bool = False,
    ) -> None:
        self.head = head
        self.loss = loss
        self.cbar = cbar
        self.p = p
        self.lam = lam
        self.adapter = adapter
        self.r2_mode = r2_mode
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.anneal_epochs = anneal_epochs
        self.optimizer = optimizer
        self.warmup_epochs = warmup_epochs
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.momentum = momentum
        self.head_options = head_options
        self.loss_options = loss_options
        self.adapter_rank = adapter_rank
        self.sm_weight = sm_weight
        self.zc_weight = zc_weight
        self.ema_decay = ema_decay
        self.rep_margin_samples = rep_margin_samples
        self.progress = progress
        self.progress_bar = progress_bar

    # ------------------------------------------------------------------------------------ sklearn protocol
    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [n for n in sig.parameters if n != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments as given (scikit-learn protocol, so ``sklearn.base.clone`` works)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> "ProbeTrainer":
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for ProbeTrainer; valid: {', '.join(valid)}.")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's estimator tags: a classifier of 2-D features and integer class labels. scikit-learn 1.6 and
        later ask every estimator for them, and without them ``cross_val_score``, ``GridSearchCV`` and ``Pipeline``
        refused the trainer (a library round). Only scikit-learn calls this, so it imports it here."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags())

    def __repr__(self) -> str:
        defaults = {n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items() if n != "self"}
        changed = [f"{n}={getattr(self, n)!r}" for n, d in defaults.items() if getattr(self, n) is not d
                   and getattr(self, n) != d]
        return f"ProbeTrainer({', '.join(changed)})"

    # ----------------------------------------------------------------------------------------- validation
    def _check_params(self) -> None:
        """Check every parameter against its declaration (``probe.params.TRAINER_PARAMS``, shared with
        ``ProbeConfig``) and the head / loss options against theirs (``probe.registry``)."""
        params = self.get_params()
        check_trainer_params({k: v for k, v in params.items() if not (k == "epochs" and v is None)})  # None: auto

    # ------------------------------------------------------------------------------------------------ fit
    def _inputs(self, features, labels, num_classes: int | None) -> tuple[Tensor, Tensor, int]:
        x = _to_features(features)
        y = _to_labels(labels, x.shape[0])
        if int(y.min()) < 0:
            raise ValueError(f"labels must be >= 0, got min {int(y.min())}.")
        k = int(y.max()) + 1 if num_classes is None else int(num_classes)
        if k < 2:
            raise ValueError(f"need at least 2 classes, got num_classes={k}.")
        if int(y.max()) >= k:
            raise ValueError(f"labels must be < num_classes={k}, got max {int(y.max())}.")
        return x, y, k

    def _resolved_p(self) -> float:
        return float(self.p) if self.p is not None else get_head_spec(self.head).default_p

    def class_stats(self, features, labels, num_classes: int | None = None) -> ClassStats:
        """Exact r_k² (order p) and ‖s_k‖² of the features this trainer's head sees (L2-normalised for cosine).

        They depend on the data, the head and p only, so a sweep over lr, weight decay or c̄ computes them once and
        passes them to every ``fit(..., class_stats=...)`` instead of recomputing them per fit.
        """
        x, y, k = self._inputs(features, labels, num_classes)
        normalized = bool(head_class(self.head).normalizes)
        prepare = (lambda chunk: torch.nn.functional.normalize(chunk, dim=1)) if normalized else None
        return exact_class_stats(x, y, k, self._resolved_p(), normalized, prepare=prepare)

    def _check_class_stats(self, stats: ClassStats, k: int, p: float) -> None:
        normalized = bool(head_class(self.head).normalizes)
        if stats.p != p or stats.normalized != normalized or tuple(stats.r2.shape) != (k,) \
                or tuple(stats.spread.shape) != (k,):
            raise ValueError(
                f"class_stats do not match this fit: they have p={stats.p}, normalized={stats.normalized}, "
                f"K={tuple(stats.r2.shape)}; the fit needs p={p}, normalized={normalized} (head {self.head!r}), "
                f"K={k}. Compute them with ProbeTrainer.class_stats on the same training features.")

    def fit(self, features, labels, num_classes: int | None = None,
            class_stats: ClassStats | None = None) -> "ProbeTrainer":
        """Train on ``features`` (n, d) and integer ``labels`` (n,) in [0, K); K = ``num_classes`` or max + 1.

        ``class_stats``: the exact statistics of these training features (:meth:`class_stats`), reused instead of
        recomputed when the statistics are exact (no adapter, ``r2_mode="exact"``); ignored when the EMA runs.

        Returns self. Raises ValueError / TypeError naming the problem for bad inputs or parameters.
        """
        fit_many([self], features, labels, num_classes=num_classes, class_stats=class_stats)
        return self

    def _start(self, k: int, d: int, counts: Tensor, device: torch.device) -> "_Run":
        """This trainer's head, adapter, loss and optimiser for one fit (margins come from :meth:`_Run.margins`)."""
        spec_loss = get_loss_spec(self.loss)
        if NEEDS[spec_loss.needs].statistic and bool((counts == 0).any()):
            missing = torch.nonzero(counts == 0).flatten().tolist()
            raise ValueError(f"classes {missing} have no training samples; loss {self.loss!r} needs class "
                             f"statistics for every class. Labels are class indices 0..K-1 (K = {k}, num_classes or "
                             "the largest label + 1): number labels such as [3, 7, 9] as 0, 1, 2 first, e.g. with "
                             "np.unique(labels, return_inverse=True).")
        self.epochs_ = auto_epochs(int(counts.sum()), self.batch_size) if self.epochs is None else int(self.epochs)
        check_trainer_params({"epochs": self.epochs_, "warmup_epochs": self.warmup_epochs})  # auto's count too
        loss_options = dict(self.loss_options or {})
        filled = NEEDS[spec_loss.needs].option
        if spec_loss.needs == "priors" and loss_options.get(filled) is None:  # the training class frequencies
            loss_options[filled] = (counts / counts.sum()).numpy()
        # A generator of this fit's own, seeded as torch's global one was (the same weights): the service trains
        # the jobs of MR2PROBE_CPU_JOBS > 1 in threads of one process, and a head drawn from the global generator
        # between this seed and its draw took another job's seed (a fit of the same seed gave other weights).
        generator = torch.Generator().manual_seed(int(self.random_state))
        head = create_head(self.head, d, k, generator=generator, **(self.head_options or {}))
        adapter = (create_adapter(self.adapter, d, rank=self.adapter_rank, generator=generator) if self.adapter
                   else None)
        loss_fn = create_loss(self.loss, **loss_options)
        if spec_loss.input == "cosine" and hasattr(head, "log_scale") and hasattr(loss_fn, "scale"):
            # such a loss scores the cosines at its own scale s and the head's scale gets no gradient: the head
            # ships at s, as the loss trained it (cosface at s = 64 shipped at the head's 16: its probabilities 44
            # points underconfident on digits; a maintainer round)
            with torch.no_grad():
                head.log_scale.fill_(math.log(loss_fn.scale))
        head.to(device)
        if adapter is not None:
            adapter.to(device)
        loss_fn.to(device)
        params = _weight_decay_groups([head] + ([adapter] if adapter is not None else []), self.weight_decay)
        # torch.optim's rules without its torch._dynamo import (probe.optim)
        opt_class = OPTIMIZER_CLASSES[self.optimizer]
        opt = opt_class(params, lr=float(self.lr), **({"momentum": float(self.momentum)} if opt_class is SGD else {}))
        return _Run(self, head, adapter, loss_fn, opt, cosine_input=spec_loss.input == "cosine",
                    epoch_loss=torch.zeros(self.epochs_, device=device))

    def _finish(self, run: "_Run", k: int, d: int, p: float, counts: Tensor, seconds: float,
                device: torch.device) -> None:
        """Set the fitted attributes from a finished run."""
        run.head.eval()
        if run.adapter is not None:
            run.adapter.eval()
        r2, spread, gamma = run.r2, run.spread, run.gamma
        if run.ema is not None:
            r2, spread = run.ema.measured()  # NaN: class never in a batch; gamma_ keeps the last step's margins
        if gamma is None:
            gamma = torch.ones(k)
        self.head_ = run.head
        self.adapter_ = run.adapter
        self.loss_ = run.loss_fn
        self.loss_options_ = dict(run.loss_fn.options)
        self.classes_ = np.arange(k)
        self.n_features_in_ = d
        self.num_classes_ = k
        self.p_ = p
        self.stats_mode_ = "ema" if run.ema is not None else "exact"
        self.class_counts_ = counts.numpy().astype(np.int64)
        self.r2_ = r2.detach().cpu().numpy().astype(np.float64)
        self.spread_ = spread.detach().cpu().numpy().astype(np.float64)
        self.gamma_ = gamma.detach().cpu().numpy().astype(np.float64)
        history = run.epoch_loss[:run.epochs_run].tolist()  # one host sync per head
        self.history_ = history
        self.n_epochs_ = run.epochs_run
        self.n_steps_ = run.steps
        self.fit_time_ = seconds
        self.device_ = device
        if not all(math.isfinite(v) for v in history):
            logger.warning("training loss became non-finite (lr=%s); the fitted head is unreliable", self.lr)

    # ------------------------------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise ValueError("This ProbeTrainer is not fitted yet; call fit(features, labels) first.")

    def _chunks(self, features):
        self._check_fitted()
        x = _to_features(features)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"features have {x.shape[1]} columns but the head was trained on "
                             f"{self.n_features_in_}-d features.")
        device = next(self.head_.parameters()).device
        rows = _chunk_rows(x.shape[1])
        for start in range(0, x.shape[0], rows):  # float16 input is widened chunk by chunk
            yield x[start:start + rows].to(device=device, dtype=torch.float32)

    @torch.no_grad()
    def _prepared(self, xb: Tensor) -> Tensor:
        if self.adapter_ is not None:
            xb = self.adapter_(xb)
        return self.head_.input_features(xb)

    @torch.no_grad()
    def transform(self, features) -> np.ndarray:
        """Features the head sees (after the adapter; L2-normalised for the cosine head), (n, d)."""
        return np.concatenate(list(self.transform_chunks(features)))

    @torch.no_grad()
    def transform_chunks(self, features) -> Iterator[np.ndarray]:
        """:meth:`transform` chunk by chunk, in row order: (rows, d) float32 arrays (which may share memory with
        ``features``: read them, do not write), for a computation over every row that need not hold all of them
        at once (``evaluate_seed``'s sample margins)."""
        for xb in self._chunks(features):
            yield self._prepared(xb).cpu().numpy()

    @torch.no_grad()
    def decision_function(self, features) -> np.ndarray:
        """Logits (n, K) of the fitted head."""
        return np.concatenate([self.head_.score(self._prepared(xb)).cpu().numpy() for xb in self._chunks(features)])

    def predict_proba(self, features) -> np.ndarray:
        """Softmax of the logits, (n, K)."""
        z = torch.from_numpy(self.decision_function(features))
        return torch.softmax(z, dim=1).numpy()

    def predict(self, features) -> np.ndarray:
        """Predicted class indices (n,)."""
        self._check_fitted()
        return self.classes_[self.decision_function(features).argmax(axis=1)]

    def score(self, features, labels) -> float:
        """Mean accuracy (scikit-learn convention) of the predictions against ``labels`` (n,): labels of another
        shape are a ValueError (:func:`probe.metrics.overall_accuracy`)."""
        return overall_accuracy(labels, self.predict(features))

    def class_weights(self) -> np.ndarray:
        """Class weight vectors w_k of the fitted head, (K, d)."""
        self._check_fitted()
        return self.head_.class_weights().detach().cpu().numpy()

    # -------------------------------------------------------------------------------------- fitted state
    def _get_fitted_state(self) -> dict[str, Any]:
        """The learned state as plain values, what :mod:`probe.checkpoint` stores: the head's (and adapter's)
        name, resolved options and tensors (on CPU), the loss name and options, and the fitted arrays."""
        self._check_fitted()

        def module(m):
            return None if m is None else {"name": m.spec.name, "options": dict(m.options),
                                           "tensors": {k: v.detach().cpu().contiguous()
                                                       for k, v in m.state_dict().items()}}

        return {"head": module(self.head_), "adapter": module(self.adapter_),
                "loss": {"name": self.loss, "options": dict(self.loss_options_)},
                "num_features": int(self.n_features_in_), "num_classes": int(self.num_classes_),
                "classes": np.asarray(self.classes_, dtype=np.int64), "p": float(self.p_),
                "stats_mode": self.stats_mode_, "gamma": self.gamma_, "r2": self.r2_, "spread": self.spread_,
                "class_counts": np.asarray(self.class_counts_, dtype=np.int64), "history": list(self.history_)}

    def _set_fitted_state(self, state: dict[str, Any], device: str | torch.device = "cpu") -> "ProbeTrainer":
        """Restore what :meth:`_get_fitted_state` returned (head and adapter rebuilt from their registries, on
        ``device``); returns self, ready for ``decision_function`` / ``predict``.

        Raises ValueError when the tensors do not match the head or adapter they describe.
        """
        d, k = int(state["num_features"]), int(state["num_classes"])
        dev = resolve_device(device)
        head = create_head(state["head"]["name"], d, k, **state["head"]["options"])
        adapter = None
        if state["adapter"] is not None:
            adapter = create_adapter(state["adapter"]["name"], d, rank=state["adapter"]["options"].get("rank"))
        for what, m, saved in (("head", head, state["head"]), ("adapter", adapter, state["adapter"])):
            if m is None:
                continue
            try:
                m.load_state_dict(saved["tensors"], strict=True)
            except RuntimeError as err:
                raise ValueError(f"the saved {what} weights do not match the {what} described: {err}") from None
        self.head_ = head.to(dev).eval()
        self.adapter_ = adapter.to(dev).eval() if adapter is not None else None
        self.loss_ = None  # training-time object; create_loss(self.loss, **self.loss_options_) rebuilds it
        self.loss_options_ = dict(state["loss"]["options"])
        self.classes_ = np.asarray(state["classes"], dtype=np.int64)
        self.class_names_ = state.get("class_names")  # None: saved without them (or before they were kept)
        self.n_features_in_, self.num_classes_ = d, k
        self.p_ = float(state["p"])
        self.stats_mode_ = state["stats_mode"]
        self.gamma_, self.r2_, self.spread_ = (np.asarray(state[n], dtype=np.float64)
                                               for n in ("gamma", "r2", "spread"))
        self.class_counts_ = np.asarray(state["class_counts"], dtype=np.int64)
        self.history_ = [float(v) for v in state["history"]]
        self.device_ = dev
        self.library_version_ = state.get("library_version")  # of the library that saved it, when loaded
        return self


    # ----------------------------------------------------------------------------------------- persistence
    def save(self, path, class_names: list[str] | None = None) -> Path:
        """Write the head (+ adapter) as safetensors and a JSON sidecar (with ``class_names``, the names of its
        classes, when given); see :mod:`probe.checkpoint`.

        Returns the path of the safetensors file. Raises ValueError if the trainer is not fitted.
        """
        return write_checkpoint(path, self.get_params(), self._get_fitted_state(), class_names)

    @classmethod
    def load(cls, path, device: str = "cpu") -> "ProbeTrainer":
        """Restore a trainer written by :meth:`save` (ready for ``decision_function`` / ``predict``).

        Raises FileNotFoundError (missing file) or ValueError (not a probe file, weights that do not match it).
        """
        params, state = read_checkpoint(path)
        params = {n: v for n, v in params.items() if n in cls._get_param_names()}
        try:
            trainer = cls(**params)._set_fitted_state(state, device=device)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        except (KeyError, TypeError, OverflowError, AttributeError) as err:  # head.json damaged: a head no registry
            # holds, a field missing or of another type, a class past int64 (a 500 of every route that applied it)
            raise ValueError(f"{path}: {unreadable(path, err)}") from None
        bad = _non_finite(trainer)
        if bad:  # training refuses such a head (diverged); a file damaged or edited since would predict class 0
            raise ValueError(f"{path}: non-finite weights in {bad}: the head file (head.safetensors) is damaged")
        return trainer


def save_probe(trainer: ProbeTrainer, path) -> Path:
    """Write a fitted trainer to ``path`` (a ``.safetensors`` file or a directory): ``trainer.save(path)``."""
    return trainer.save(path)


def load_probe(path, device: str = "cpu") -> ProbeTrainer:
    """A fitted :class:`ProbeTrainer` from files written by :func:`save_probe`: ``ProbeTrainer.load(path)``."""
    return ProbeTrainer.load(path, device=device)


# How far above its best an epoch's objective may lie and still count towards tol's stop, as a share of the best:
# mini-batch noise around a plateau, not a fit still moving (_Run.end_epoch). 0.02, 0.05 and 0.1 stopped the same
# fits at the same epochs (bench/tol_rule.py, bench/README.md "ProbeConfig.tol").
RISE_TOLERANCE = 0.05


def near_best(loss: float, best: float, tol: float) -> bool:
    """Whether an epoch's objective ``loss`` that did not beat ``best`` by more than ``tol`` counts towards tol's
    stop: at most max(tol, ``RISE_TOLERANCE``·|best|) above the best (``bench/tol_rule.py`` puts other rules here)."""
    return loss <= best + max(tol, RISE_TOLERANCE * abs(best))


def diverged(trainer: ProbeTrainer) -> str | None:
    """Why a fitted trainer cannot be trusted, or None: a non-finite training loss (the first epoch where it
    happened) or non-finite weights after training. Checked after the fit, so the training loop stays as is."""
    trainer._check_fitted()
    options = get_loss_spec(trainer.loss).options
    settings = ", ".join([f"lr={trainer.lr}", f"weight_decay={trainer.weight_decay}", f"loss={trainer.loss}"]
                         + [f"{k}={v}" for k, v in (trainer.loss_options or {}).items() if not options[k].per_class])
    bad = [i for i, v in enumerate(trainer.history_) if not math.isfinite(v)]
    if bad:
        return f"diverged: non-finite loss at epoch {bad[0] + 1} of {len(trainer.history_)} ({settings})"
    bad = _non_finite(trainer)
    return f"diverged: non-finite weights in {bad} after training ({settings})" if bad else None


def _non_finite(trainer: ProbeTrainer) -> str | None:
    """The first weight tensor of the trainer's head or adapter holding a nan or inf ("linear weight"), or None."""
    modules = [trainer.head_] + ([trainer.adapter_] if trainer.adapter_ is not None else [])
    for m in modules:
        for name, value in m.state_dict().items():
            if not bool(torch.isfinite(value).all()):
                return f"{m.spec.name} {name}"
    return None


@dataclass
class _Run:
    """One trainer's state during a (joint) fit."""

    trainer: ProbeTrainer
    head: nn.Module
    adapter: nn.Module | None
    loss_fn: nn.Module
    opt: Any  # a probe.optim optimiser
    cosine_input: bool
    epoch_loss: Tensor
    ema: EmaClassStats | None = None
    r2: Tensor | None = None
    spread: Tensor | None = None
    gamma: Tensor | None = None
    schedule: list[float] = field(default_factory=list)  # learning rate per step
    epochs_run: int = 0
    steps: int = 0
    best_loss: float = math.inf
    stale_epochs: int = 0  # epochs near the best since it last improved by more than tol (end_epoch)
    active: bool = True
    stop_after: int | None = None  # the fit's last epoch once tol has been met (_decay_and_stop)

    def end_epoch(self, loss: float) -> None:
        """Count the epoch; with ``tol``, once ``n_iter_no_change`` epochs since the objective last beat its best
        by more than tol have stayed near the best (at most max(tol, ``RISE_TOLERANCE``·|best|) above it), decay the
        learning rate and stop (:meth:`_decay_and_stop`). scikit-learn's ``SGDClassifier`` rule counts every epoch
        not below best − tol: a loss that leaps up after the first epochs and then falls for many (Adam at a large
        learning rate) was taken as settled and stopped at epoch 16 (digits at lr 0.1: 42–58 % against 92 %; a
        maintainer round). Counting only epochs within tol of the best then made mini-batch fits with weight
        decay, whose epoch losses wander a little above the best, run 10–19 epochs longer at the same accuracy (a
        review round): a rise within ``RISE_TOLERANCE`` of the best is such noise and counts."""
        self.epochs_run += 1
        if not self.trainer.tol:
            return
        if self.stop_after is not None:
            self.active = self.epochs_run < self.stop_after
            return
        tol = float(self.trainer.tol) * self.loss_fn.tol_unit  # in the loss's units (lm_softmax: tol / s)
        if loss <= self.best_loss - tol:
            self.stale_epochs = 0
        elif near_best(loss, self.best_loss, tol):
            self.stale_epochs += 1
        self.best_loss = min(self.best_loss, loss)
        if self.stale_epochs >= self.trainer.n_iter_no_change:
            self._decay_and_stop()

    def _decay_and_stop(self) -> None:
        """End the fit after the learning rate has fallen linearly towards 0 over the next ``anneal_epochs`` (fewer
        where the schedule ends sooner; none: stop now). The objective levels off while Adam's steps are still
        about lr per weight, and with a strong L2 penalty the weights are that small: stopped there, synthetic
        30-per-class fits lost 1–3 points against running every epoch; the decay recovers them in a fraction of
        the epochs (bench/README.md, The optimiser)."""
        t = self.trainer
        planned = len(self.epoch_loss)  # the fit's epochs (ProbeTrainer.epochs_)
        per_epoch = len(self.schedule) // planned
        epochs = min(t.anneal_epochs, planned - self.epochs_run)
        if epochs <= 0:
            self.active = False
            return
        start, steps = self.epochs_run * per_epoch, epochs * per_epoch
        lr = self.schedule[start]
        self.schedule[start:start + steps] = [lr * (steps - i) / (steps + 1) for i in range(steps)]
        self.stop_after = self.epochs_run + epochs

    @torch.no_grad()
    def add_penalty(self, epoch: int) -> None:
        """Add the L2 penalty wd/2·‖W‖² of the current weights to the epoch's objective, for the optimisers whose
        weight decay is that penalty's gradient (``L2_OPTIMIZERS``); AdamW's decoupled decay is no penalty."""
        if self.trainer.optimizer not in L2_OPTIMIZERS:
            return
        for group in self.opt.param_groups:
            if group["weight_decay"] > 0:
                norms = torch.stack(torch._foreach_norm(group["params"]))
                self.epoch_loss[epoch] += 0.5 * group["weight_decay"] * norms.square().sum()

    def margins(self, k: int, d: int, p: float, stats: ClassStats | None, device: torch.device) -> None:
        """Exact statistics and margins once, or an EMA whose margins move with the batches (adapter / ema)."""
        t = self.trainer
        if stats is not None:
            self.r2, self.spread = stats.r2.to(device), stats.spread.to(device)
            self.gamma = self.loss_fn.class_margins(t.cbar, k, r2=self.r2, spread=self.spread)
            return
        self.ema = EmaClassStats(k, p=p, decay=t.ema_decay, track_spread=True, num_features=d, device=device)
        if not NEEDS[self.loss_fn.needs].statistic:  # margins that do not depend on the statistics: once
            self.gamma = self.loss_fn.class_margins(t.cbar, k, r2=torch.ones(k, device=device))

    @property
    def joins_loss(self) -> bool:
        """Whether the objective is ℓ_γ,ce of the head's logits alone, with margins fixed for the fit (exact
        statistics or none), so a joint fit may compute it together with other such runs (:func:`_joint_losses`)."""
        t = self.trainer
        return (type(self.loss_fn) is MarginCrossEntropy and self.ema is None and not self.cosine_input
                and not t.lam > 0 and not t.sm_weight > 0 and not t.zc_weight > 0
                and hasattr(type(self.head), "joint_score_from"))

    @property
    def closed_form(self) -> bool:
        """Whether the run joins (:attr:`joins_loss`) with a linear head, so its step's gradients can be written
        out (:func:`_closed_form_step`)."""
        return self.joins_loss and type(self.head) is LinearHead

    def prepare_step(self, step: int) -> None:
        """The schedule's learning rate for ``step``, and gradients cleared before the backward pass."""
        for group in self.opt.param_groups:
            group["lr"] = self.schedule[step]
        self.opt.zero_grad(set_to_none=True)

    def loss(self, hb: Tensor, raw: Tensor, yb: Tensor, gen: torch.Generator, k: int) -> Tensor:
        """The objective of one batch: loss(z, y; γ) + λ·ℓ_s̄ + w_sm·R_sm + w_zc·R_W (module docstring)."""
        t = self.trainer
        if self.ema is not None:
            self.ema.update(hb, yb)
            if NEEDS[self.loss_fn.needs].statistic:
                self.gamma = self.loss_fn.class_margins(t.cbar, k, r2=self.ema.r2(strict=False),
                                                        spread=self.ema.spread(strict=False), validate=False)
        out = raw if self.cosine_input else self.head.score_from(raw)
        total = self.loss_fn(out, yb, gamma=self.gamma, features=hb)
        if t.lam > 0:
            hs, ys = hb, yb
            if hb.shape[0] > t.rep_margin_samples:
                sub = torch.randperm(hb.shape[0], generator=gen)[: t.rep_margin_samples].to(hb.device)
                hs, ys = hb.index_select(0, sub), yb.index_select(0, sub)
            total = total + float(t.lam) * representation_margin(hs, ys, mean_spread(self.ema.spread(strict=False)))
        if t.sm_weight > 0:
            total = total + float(t.sm_weight) * sample_margin_regularizer(self.head.class_weights(), hb, yb)
        if t.zc_weight > 0:
            total = total + float(t.zc_weight) * zero_centroid_regularizer(self.head.class_weights())
        return total


# Parameters that several trainers must share to be fitted jointly: they fix the data pass (batch order, epochs,
# the features the heads see) and the class statistics.
JOINT_FIT_SHARED = ("head", "head_options", "p", "r2_mode", "epochs", "batch_size", "warmup_epochs", "device",
                    "precision", "random_state", "ema_decay")


# Class counts K whose linear ℓ_γ,ce heads take the closed-form step (:func:`_closed_form_step`). Per step against
# the autograd path (a joint loss for 3–15 classes, a per-head F.cross_entropy otherwise), 6 heads, fp32, 1 thread,
# synthetic 20k rows in batches of 1024 / 2,400 rows full batch (``bench/fused_step.py --synthetic K``, best of 3):
# K = 2 4.72 → 3.18 / 8.53 → 5.43 ms, K = 20 level (13.05 → 13.02 / 24.62 → 23.58), K = 50 28.41 → 25.60 /
# 67.04 → 58.08; at 100 level or slower in alternating fits (1.01× / 0.95×), so from there on, the 1000-class
# regime included, heads keep autograd's step.
CLOSED_FORM_CLASSES = range(2, 51)


def _joint_step(classes: range, k: int, device: torch.device) -> bool:
    """Whether a step of K classes on ``device`` computes its heads together: on a CPU where K is in ``classes``
    (:data:`CLOSED_FORM_CLASSES` for the closed-form step, ``LOGSUMEXP_CLASSES`` for the joint loss: measured
    there, where the products and the cache set the time), on CUDA for every K ≥ 2. There a step's time is mostly
    the host issuing its operations: on an H200 (stop 49) the 18-head, 1000-class MR² sweep took ~6.2 ms a step,
    of which its products ~1.9 ms, and ERM's 6 heads ~2.4 ms; the per-head path issues each head's loss, its
    backward and its bookkeeping apart. Counted on a CPU (``bench/scale.py --steps 5 --forms per-head joint``),
    that MR² step issues 102 operations in the joint form against 346 per head (481 per head before the heads'
    optimisers stepped together, ``probe.optim.step_all``), ERM's 56 against 101; on the CPU its time was level to
    faster (joint / per head 0.76–1.06 over 8 interleaved rounds, median 0.93), not enough there to move the
    measured ranges. Its time on a GPU: ``bench/gpu_checks.sh``."""
    return k >= 2 and (device.type == "cuda" or k in classes)


# Stacked head weights narrower than this many outputs are multiplied as (w·xᵀ)ᵀ rather than x·wᵀ: on a 1024 ×
# 1280 float32 batch (1 thread, idle machine) x·wᵀ took 1.95× the time at 10 outputs, 1.65× at 30, 1.29× at 60,
# and 0.94× at 600, 0.79× at 6000 (bench/probe_speed.py --product-forms).
NARROW_OUTPUTS = 64


def heads_product(x: Tensor, w: Tensor) -> Tensor:
    """x·wᵀ (n, m) for features x (n, d) and stacked head weights w (m, d), in the faster form for m."""
    return (w @ x.t()).t().contiguous() if w.shape[0] < NARROW_OUTPUTS else x @ w.t()


def balanced_batches(n: int, steps: int) -> list[int]:
    """Boundaries (steps + 1 of them, from 0 to n) of ``steps`` batches of n shuffled rows whose sizes differ by at
    most one: ``batch_size`` is then the largest batch, and no epoch ends on a remnant. Cutting n rows into
    batches of exactly ``batch_size`` left a last batch of n mod batch_size rows, which took a full-lr step on
    a handful of samples: at 4,100 CIFAR-10 rows (a last batch of 4) the ERM probe lost 2.2 points of test
    accuracy against 4,090 rows trained full-batch (``bench/probe_speed.py --train-per-class 409 410``)."""
    base, extra = divmod(n, steps)
    return [i * base + min(i, extra) for i in range(steps + 1)]


def full_batch(batch_size: int | None, n: int) -> bool:
    """Whether a fit of n rows with ``batch_size`` takes the whole set as one batch (no batch order)."""
    return batch_size is None or int(batch_size) >= n


def _check_joint(trainers: list[ProbeTrainer], n: int) -> None:
    """Raise ValueError unless ``trainers`` can be fitted jointly on n rows (:func:`fit_many`)."""
    if len(trainers) < 2:
        return
    # random_state fixes the mini-batch order; full-batch fits have none, so their seeds may differ (each head
    # is still initialised from its own random_state).
    free = ("random_state",) if all(full_batch(t.batch_size, n) for t in trainers) else ()
    for name in JOINT_FIT_SHARED:
        values = [getattr(t, name) for t in trainers]
        if name not in free and any(v != values[0] for v in values[1:]):
            raise ValueError(f"trainers fitted jointly must share {name}; got {values}.")
    if any(t.adapter is not None for t in trainers):
        raise ValueError("with an adapter each trainer sees its own features; fit it alone (fit_many([t], ...)).")


def fit_many(trainers: list[ProbeTrainer], features, labels, num_classes: int | None = None,
             class_stats: ClassStats | None = None) -> list[ProbeTrainer]:
    """Fit several trainers on the same data in one pass: a hyper-parameter sweep at the cost of about one fit.

    The trainers may differ in lr, weight decay, optimiser, c̄, loss and its options, but share
    ``JOINT_FIT_SHARED`` (except ``random_state`` when every fit is full-batch) and have no adapter (one trainer
    with an adapter is fitted alone). Each batch is gathered once and the logits of all heads come from one matrix
    product with their stacked ``score_matrix()``; each head keeps its own loss, optimiser and schedule, and the
    summed loss back-propagates to each head only its own term.
    On frozen features the data pass dominates (it is memory-bound), so C heads cost far less than C fits.
    Every head is the one its own :meth:`ProbeTrainer.fit` gives (same initialisation, batch order and updates),
    up to floating-point summation order.

    Returns the trainers, fitted (``fit_time_`` is the time of the joint pass). Raises ValueError naming the
    first parameter that differs, or for an adapter in a joint fit.
    """
    if not trainers:
        raise ValueError("fit_many needs at least one trainer.")
    first = trainers[0]
    for t in trainers:
        t._check_params()
    x, y, k = first._inputs(features, labels, num_classes)
    _check_joint(trainers, x.shape[0])
    device = resolve_device(first.device)
    n, d = x.shape
    counts = class_counts(y, k)
    p = first._resolved_p()
    if class_stats is not None:
        first._check_class_stats(class_stats, k, p)
    runs = [t._start(k, d, counts, device) for t in trainers]
    shared = first.adapter is None
    # constant features: the head's view (L2 normalisation for a cosine head), prepared once; None: as they are
    prepare = runs[0].head.input_features if shared and runs[0].head.normalizes else None
    exact = shared and first.r2_mode == "exact"
    if exact and class_stats is None:
        class_stats = exact_class_stats(x.to(device), y.to(device), k, p, normalized=bool(runs[0].head.normalizes),
                                        prepare=prepare)
    for run in runs:
        run.margins(k, d, p, class_stats if exact else None, device)
    outputs = k * len(runs)  # the stacked product's width
    full_batch_macs = n * d * outputs if shared and full_batch(first.batch_size, n) else 0
    castable = _casts_once(runs, x, outputs, first.batch_size, shared, prepare)
    precision = resolve_precision(first.precision, device, outputs, full_batch_macs, castable)
    cast_once = castable and precision == "bf16"
    batches = _Batches(x, y, first.batch_size, prepare, device, torch.Generator().manual_seed(int(first.random_state)),
                       precision, cast_once)
    epochs = first.epochs_
    for t, run in zip(trainers, runs):
        run.schedule = lr_schedule(float(t.lr), epochs * batches.steps_per_epoch,
                                   t.warmup_epochs * batches.steps_per_epoch)
    logger.info("fit %s/%s%s: n=%d d=%d K=%d device=%s precision=%s stats=%s batch=%s epochs=%d%s", first.head,
                first.loss, f" and {len(runs) - 1} more" if len(runs) > 1 else "", n, d, k, device, precision,
                "exact" if exact else "ema", first.batch_size, epochs, batches.describe(x.dtype))
    t0 = time.perf_counter()
    _train(trainers, runs, batches, k, shared, precision)
    seconds = time.perf_counter() - t0
    for t, run in zip(trainers, runs):
        t._finish(run, k, d, p, counts, seconds, device)
        t.precision_ = precision
    logger.info("fit done in %.3fs, final loss %s, epochs %s", seconds,
                ", ".join(f"{t.history_[-1]:.4f}" for t in trainers), ", ".join(str(t.n_epochs_) for t in trainers))
    return trainers


def _casts_once(runs: list[_Run], x: Tensor, outputs: int, batch_size: int | None, shared: bool,
                prepare: Callable[[Tensor], Tensor] | None) -> bool:
    """Whether a fit's mini-batches, if it runs in bf16, come from a bfloat16 copy of its features cast once
    (:class:`_Batches`): a fit on mini-batches of shared features, unprepared, that only the heads' product reads
    (every run :attr:`_Run.joins_loss`), with a product of at most ``CAST_ONCE_MAX_OUTPUTS`` outputs (heads × K)
    and a copy of at most ``CAST_ONCE_MAX_BYTES``. ``auto`` precision reads it too: without a cast per batch,
    bf16 pays from narrower products (``probe.precision.BF16_MIN_CAST_ONCE_OUTPUTS``)."""
    return (shared and prepare is None and not full_batch(batch_size, x.shape[0])
            and all(run.joins_loss for run in runs) and outputs <= CAST_ONCE_MAX_OUTPUTS
            and x.numel() * torch.bfloat16.itemsize <= CAST_ONCE_MAX_BYTES)


class _Batches:
    """The training rows as the heads see them, one shuffled mini-batch (or the full batch) at a time.

    float32 features are prepared once (``prepare``: the head's ``input_features``, L2 normalisation for the
    cosine head). float16 features stay float16 in memory: each batch is gathered, widened to float32 and
    prepared on its own, so no (n, d) float32 copy exists; a full batch is widened once. Batch order comes from
    ``gen`` (one permutation per epoch), the same for either dtype. Each batch comes with the function of the
    heads' product at the fit's ``precision``: under autocast, or, for a full batch in bf16, a
    :class:`probe.precision.ConstantProduct` that casts the features once per fit rather than at every step.
    A bf16 fit on mini-batches whose product is the batches' only reader (``cast_once``, :func:`_casts_once`: no
    loss, statistic or regulariser reads the features) gathers its batches from a bfloat16 copy of the features
    cast once; its batches are then bfloat16, not float32.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None, prepare: Callable[[Tensor], Tensor] | None,
                 device: torch.device, gen: torch.Generator, precision: str = "fp32", cast_once: bool = False) -> None:
        self.n = x.shape[0]
        whole = full_batch(batch_size, self.n)
        self.steps_per_epoch = 1 if whole else math.ceil(self.n / int(batch_size))
        self.bounds = balanced_batches(self.n, self.steps_per_epoch)
        self.cast_once = cast_once
        self.widen_per_batch = x.dtype != torch.float32 and not whole and not self.cast_once
        self.prepare = prepare
        self.device = device
        self.gen = gen
        x, self.y = x.to(device), y.to(device)
        if self.cast_once:
            x = cast_rows(x, torch.bfloat16, _chunk_rows(x.shape[1]))
        elif not self.widen_per_batch:
            x = x.to(torch.float32)
            if prepare is not None:
                x = prepare(x)
        self.x = x
        self.precision = precision
        self._buffers: dict[tuple[torch.dtype, int], Tensor] = {}
        self.full = None
        if whole:
            self.full = ConstantProduct(x, torch.bfloat16) if precision == "bf16" else self.product(x)

    def describe(self, dtype: torch.dtype) -> str:
        """How the batches are made from features of ``dtype``, for the fit's log line."""
        if self.cast_once:
            return f" ({dtype} cast to bfloat16 once)"
        return f" ({dtype} widened per batch)" if self.widen_per_batch else ""

    def product(self, xb: Tensor) -> BatchProduct:
        """w ↦ the float32 product xb·wᵀ, its matrix product under the precision's autocast."""
        return _AutocastProduct(xb, self.precision)

    def epoch(self):
        """Yield (features (b, d), w ↦ the heads' product with them, labels (b,)) for one pass over the rows: the
        features are float32, or bfloat16 where the batches are cast once (``cast_once``)."""
        if self.full is not None:
            yield self.x, self.full, self.y
            return
        order = torch.randperm(self.n, generator=self.gen).to(self.device)
        for start, stop in zip(self.bounds[:-1], self.bounds[1:]):
            idx = order[start:stop]
            xb = torch.index_select(self.x, 0, idx, out=self._buffer(self.x.dtype, len(idx)))
            yb = torch.index_select(self.y, 0, idx)  # 5 µs where y[idx] (advanced indexing) took 50
            if self.cast_once:
                yield xb, rows_product(xb), yb
                continue
            if self.widen_per_batch:
                xb = self._buffer(torch.float32, len(idx)).copy_(xb)
                if self.prepare is not None:
                    xb = self.prepare(xb)
            yield xb, self.product(xb), yb

    def _buffer(self, dtype: torch.dtype, rows: int) -> Tensor:
        """A (rows, d) batch buffer reused at every step: a fresh multi-megabyte batch per step would be mapped
        and unmapped by the allocator each time, and its page faults cost about as much as the gather itself.
        Safe because a step is over (backward included) before the next batch is gathered."""
        key = (dtype, rows)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(rows, self.x.shape[1], dtype=dtype, device=self.device)
        return self._buffers[key]


class _AutocastProduct(BatchProduct):
    """The heads' product with a float32 batch under the precision's autocast (:func:`heads_product`'s form).
    In bf16, several heads' products at least ``NARROW_OUTPUTS`` wide together come from
    :func:`probe.precision.per_head_products` (the batch cast to bfloat16 as autocast casts it: the same values)."""

    def __init__(self, xb: Tensor, precision: str) -> None:
        self.xb, self.precision = xb, precision
        self._cast = None

    def __call__(self, w: Tensor) -> Tensor:
        with autocast(self.precision, self.xb.device):
            return widen(heads_product(self.xb, w))

    def _operands(self) -> tuple[Tensor, None]:
        """The batch as autocast casts it for the product (float32 in fp32), cast once per batch."""
        if self._cast is None:
            self._cast = self.xb.to(torch.bfloat16) if self.precision == "bf16" else self.xb
        return self._cast, None

    def each(self, matrices: list[Tensor]) -> list[Tensor]:
        if self.precision == "bf16" and len(matrices) > 1 and sum(m.shape[0] for m in matrices) >= NARROW_OUTPUTS:
            return per_head_products(self._operands()[0], None, matrices)
        return super().each(matrices)


# A fit reports (ProbeTrainer's progress) within an epoch once this many seconds have passed since it last did:
# an epoch of many small batches (batch_size 1 on 45,000 rows) takes minutes, and a cancelled job must stop soon.
PROGRESS_SECONDS = 1.0


def _report(trainers: list[ProbeTrainer], epoch: float, epochs: int) -> None:
    for t in trainers:
        if t.progress is not None:
            t.progress(epoch, epochs)


def _train(trainers: list[ProbeTrainer], runs: list[_Run], batches: _Batches, k: int, shared: bool,
           precision: str) -> None:
    """The epochs of a (joint) fit; a run that meets its ``tol`` criterion stops taking part."""
    first = trainers[0]
    epochs = first.epochs_
    bar = None
    if any(t.progress_bar for t in trainers):
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=f"probe {first.head}/{first.loss}" + (f" ×{len(runs)}" if len(runs) > 1 else ""),
                   unit="epoch", leave=False)
    for run in runs:
        run.head.train()
        if run.adapter is not None:
            run.adapter.train()
    step, reported = 0, time.perf_counter()
    try:
        for epoch in range(epochs):
            active = [run for run in runs if run.active]
            for i, (xb, product, yb) in enumerate(batches.epoch()):
                _step(active, xb, product, yb, batches.n, epoch, step, k, shared, batches.gen, precision)
                step += 1
                if time.perf_counter() - reported >= PROGRESS_SECONDS:
                    _report(trainers, epoch + (i + 1) / batches.steps_per_epoch, epochs)
                    reported = time.perf_counter()
            for run in active:
                run.add_penalty(epoch)
            # one host sync per epoch, and only when a criterion needs the losses
            tracked = [run for run in active if run.trainer.tol]
            losses = torch.stack([run.epoch_loss[epoch] for run in tracked]).tolist() if tracked else []
            for run in active:
                run.steps = step
                run.end_epoch(losses.pop(0) if run.trainer.tol else math.nan)
            done = not any(run.active for run in runs)
            if bar is not None:
                bar.update(epochs - epoch if done else 1)
            _report(trainers, epochs if done else epoch + 1, epochs)
            reported = time.perf_counter()
            if done:
                break
    finally:
        if bar is not None:
            bar.close()


def _step(runs: list[_Run], xb: Tensor, product: BatchProduct, yb: Tensor, n: int, epoch: int,
          step: int, k: int, shared: bool, gen: torch.Generator, precision: str) -> None:
    """One optimiser step of every run on the batch (xb, yb); no host synchronisation.

    The matrix products (and so their backward products) run at ``precision`` (bf16: autocast, or
    ``product``, :class:`_Batches`); their results are widened to float32 before the loss (probe.precision).
    Heads that share the features and whose objective is ℓ_γ,ce alone (:attr:`_Run.joins_loss`, e.g. the
    ERM and MR² sweeps) get their losses from one call (:func:`_joint_losses`) when K is in
    ``LOGSUMEXP_CLASSES``, where the per-call overhead is most of a loss's cost: 7.19 → 6.18 s for the 2.7k ×
    1280 CLI default (6 heads, 10 classes). With 1000 classes the joint (1024, 18·1000) logits of the MR² sweep
    (74 MB) no longer stay in the cache between the loss's passes, where one head's (4 MB) do: 615–707 against
    480–535 ms per step (18 heads, batches of 1024 × 1024-d float16, 2 threads, idle machine), so there each
    head keeps its own call. Where those heads are linear (:attr:`_Run.closed_form`), one head or several, the
    step's gradients are written out (:func:`_closed_form_step`) instead of taken by autograd. Those class
    ranges hold on a CPU; on CUDA both joint forms take every K (:func:`_joint_step`).
    """
    if shared:  # one product for all heads: the batch is read once
        if _joint_step(CLOSED_FORM_CLASSES, k, yb.device) and all(run.closed_form for run in runs):
            return _closed_form_step(runs, product, yb, yb.shape[0] / n, epoch, step, k)
        matrices = [run.head.score_matrix() for run in runs]
        if len(runs) > 1 and _joint_step(LOGSUMEXP_CLASSES, k, yb.device) and all(run.joins_loss for run in runs):
            losses = _joint_losses(runs, product(torch.cat(matrices)), yb, k)
            return _update(runs, losses.sum(), losses.detach(), yb.shape[0] / n, epoch, step)
        raws = product.each(matrices)
    cast = autocast(precision, xb.device)
    losses = []
    for i, run in enumerate(runs):
        if shared:
            hb, raw = xb, raws[i]
        else:
            with cast:
                adapted = widen(run.adapter(xb))
            hb = run.head.input_features(adapted)  # float32, as the statistics and ℓ_s̄ read it
            with cast:
                raw = widen(hb @ run.head.score_matrix().t())
        losses.append(run.loss(hb, raw, yb, gen, k))
    _update(runs, sum(losses), [loss.detach() for loss in losses], yb.shape[0] / n, epoch, step)


def _update(runs: list[_Run], total: Tensor, losses, weight: float, epoch: int, step: int) -> None:
    """The end of a step: each run's epoch loss (its detached batch loss × weight, the batch's share of the
    rows), learning rate and cleared gradients; the backward pass of ``total``; every run's optimiser step."""
    _start_update(runs, losses, weight, epoch, step)
    total.backward()
    step_all([run.opt for run in runs])


def _start_update(runs: list[_Run], losses, weight: float, epoch: int, step: int) -> None:
    """Each run's epoch loss (its detached batch loss × weight: two operations for all runs, not two per run),
    learning rate and cleared gradients."""
    torch._foreach_add_([run.epoch_loss[epoch] for run in runs], torch._foreach_mul(list(losses), weight))
    for run in runs:
        run.prepare_step(step)


def _margin_rows(runs: list[_Run], yb: Tensor, k: int) -> Tensor | None:
    """(H, n) the margin γ_y of each row under each of H runs (1 where a run has none), or None if none has."""
    gammas = [run.gamma for run in runs]
    if all(g is None for g in gammas):
        return None
    table = torch.stack([torch.ones(k, device=yb.device) if g is None else g.float() for g in gammas])
    return table.index_select(1, yb)


def _joint_losses(runs: list[_Run], raw: Tensor, yb: Tensor, k: int) -> Tensor:
    """(H,) the objectives of H runs that all join (:attr:`_Run.joins_loss`), from their side-by-side products
    raw (n, H·K): the heads' logits at once (``joint_score_from``), each row divided by its run's γ_y, and one
    :func:`probe.losses.joint_cross_entropy` — the same values as H calls of :meth:`_Run.loss`."""
    heads = len(runs)
    logits = type(runs[0].head).joint_score_from([run.head for run in runs], raw)
    margins = _margin_rows(runs, yb, k)
    if margins is not None:
        logits = (logits.reshape(-1, heads, k) / margins.t().unsqueeze(2)).reshape(-1, heads * k)
    return joint_cross_entropy(logits, yb, heads)


@torch.no_grad()
def _closed_form_step(runs: list[_Run], product: BatchProduct, yb: Tensor, weight: float, epoch: int, step: int,
                      k: int) -> None:
    """One step of H linear heads whose objective is ℓ_γ,ce alone (:attr:`_Run.closed_form`; K in
    ``CLOSED_FORM_CLASSES``), with the gradients written out instead of taken by autograd: the logits transposed,
    Z = W·xᵀ + b (H·K, n) in the fit's precision; each row i divided by its run's γ_yi; ∂ℓ/∂(Z/γ) =
    (softmax − onehot) / n (:func:`probe.losses.softmax_cross_entropy_grad`), so G = that / γ; ∂ℓ/∂W = G·x,
    ∂ℓ/∂b = Σ_i G. The same losses and gradients as autograd through :meth:`_Run.loss` (to float32 rounding;
    tests compare them), without the autograd graph and the layout changes around the products (logits made
    (n, H·K), transposed back for the loss, and the same in the backward pass). On 45k × 1280 float16 CIFAR-10
    features in fp32, batches of 1024, 1 thread: a step of one head 3.69 → 2.95 ms, of the 6-head sweep
    7.02 → 6.71 ms (best of 5, ``bench/fused_step.py``); full-batch steps, whose products are ~85 % of their
    time, are unchanged."""
    heads, rows = len(runs), yb.shape[0]
    zt = product.transposed(torch.cat([run.head.weight for run in runs]))
    if runs[0].head.bias is not None:  # heads of one joint fit share their options: all have a bias or none has
        zt += torch.cat([run.head.bias for run in runs]).unsqueeze(1)
    zt = zt.view(heads, k, rows)
    margins = _margin_rows(runs, yb, k)
    if margins is not None:
        margins = margins.unsqueeze(1)
        zt /= margins
    losses, grad = softmax_cross_entropy_grad(zt, yb)
    if margins is not None:
        grad /= margins
    grad = grad.view(heads * k, rows)
    weight_grads, bias_grads = product.weight_grad(grad).split(k), grad.sum(dim=1).split(k)
    _start_update(runs, losses, weight, epoch, step)
    for run, weight_grad, bias_grad in zip(runs, weight_grads, bias_grads):
        run.head.weight.grad = weight_grad
        if run.head.bias is not None:
            run.head.bias.grad = bias_grad
    step_all([run.opt for run in runs])
