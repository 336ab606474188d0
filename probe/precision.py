"""Training precision: the matrix products of a fit in bfloat16 where the hardware computes it natively.

``precision`` (:data:`probe.params.TRAINING_PRECISIONS`) of :class:`probe.ProbeTrainer`:

- ``fp32``: everything in float32 (the arithmetic of the trainer before this option existed).
- ``bf16``: the forward matrix products (the heads' stacked product, an adapter's) run under
  ``torch.autocast(dtype=torch.bfloat16)``, and so do their backward products; the master weights, the optimiser
  state, the class statistics r_k², ‖s_k‖² and the margins γ stay float32, and the logits are widened to float32
  before the loss, so softmax, cross-entropy and the MR² γ shift are float32 (:func:`widen`).
  Evaluation (``decision_function``, ``predict``) is always float32.
- ``auto`` (the default): ``bf16`` on a CPU with native bfloat16 instructions (AVX512-BF16 or AMX,
  :func:`cpu_has_native_bf16`) when either

  * the fit's mini-batches would be gathered from its features cast to bfloat16 once per fit (the product is the
    batches' only reader, up to ``probe.trainer``'s ``CAST_ONCE_MAX_OUTPUTS`` and ``CAST_ONCE_MAX_BYTES``:
    ``probe.trainer._casts_once``) and the stacked product is at least :data:`BF16_MIN_CAST_ONCE_OUTPUTS` wide
    (number of heads × K); or
  * other mini-batches, each cast anew, with a product at least :data:`BF16_MIN_OUTPUTS` wide: the per-batch
    casts only pay for wide products; or
  * the fit is full-batch and its product has at least :data:`BF16_MIN_FULL_BATCH_MACS` multiply-adds (rows ×
    features × outputs): the constant features are cast to bfloat16 once per fit, so only the small weight matrix
    is cast per step;

  ``fp32`` otherwise (CUDA included: not measured there yet). Below those sizes bfloat16's casts cost more than
  they save; emulated bfloat16 (CPUs without it) is slower than float32. Measured by ``bench/precision.py``
  (bench/README.md, "Training precision").
"""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from .constraints import check
from .params import TRAINER_PARAMS

__all__ = ["cpu_has_native_bf16", "resolve_precision", "autocast", "widen", "BF16_MIN_OUTPUTS",
           "BF16_MIN_CAST_ONCE_OUTPUTS", "BF16_MIN_FULL_BATCH_MACS", "BatchProduct", "ConstantProduct",
           "rows_product", "per_head_products", "cast_rows"]

# Width (heads × classes) of the stacked head product from which ``auto`` trains in bf16 on a CPU with native
# bfloat16. `bench/precision.py --widths --width-rows 8192` (6 ERM heads, batches of 1024 × 1024-d, idle machine):
# fp32/bf16 per epoch 1.06× at 12 outputs, 1.28× at 30, 1.34× (1 thread) / 1.48× (2 threads) at 60, 1.66× / 1.54×
# at 600, 1.82× / 1.85× at 6000 (bench/README.md, "Training precision"). The 1024 of earlier rounds came from runs on an
# oversubscribed machine.
BF16_MIN_OUTPUTS = 24
# The same width for a fit whose mini-batches come from its features cast to bfloat16 once (no cast per batch):
# `bench/precision.py --threads 1 --widths --width-rows 45056 --dim 1280 --repeats 3` with `--width-heads 1
# --classes 2 3 4 5 10 20` gave fp32/bf16 per epoch 1.00× at 2 outputs, 1.31× at 3, 1.49× at 4, 1.48× at 5,
# 1.37× at 10, 1.60× at 20, and with `--width-heads 6 --classes 2 3 5` 1.52× at 12, 1.96× at 18, 1.72× at 30
# (idle machine, bench/README.md, "Training precision"). At 2 outputs the two tie, and fp32 is kept.
BF16_MIN_CAST_ONCE_OUTPUTS = 3
# Multiply-adds (rows × features × outputs) of a full-batch product from which ``auto`` trains in bf16 on such a
# CPU, the features being cast once. `bench/precision.py --threads 1 --full-batch ...` (a whole step, idle
# machine): fp32/bf16 0.75–1.06× up to 2.4M, 1.1–1.9× from 10M, 2.0× (6 heads) and 2.9× (1 head) on 2.7k × 1280
# × 10 classes.
BF16_MIN_FULL_BATCH_MACS = 2**22

_DTYPES = {"bf16": torch.bfloat16}


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), so bf16 autocast is fast.

    The one detection of the project: feature extraction (``feature_cache.encoders``) uses it too.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private torch.cpu helpers (torch >= 2.3)
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: str, device: torch.device, outputs: int, full_batch_macs: int = 0,
                      cast_once: bool = False) -> str:
    """The precision a fit runs at: ``fp32`` or ``bf16``; ``auto`` by the rule of the module docstring.

    Args:
        precision: ``auto``, ``fp32`` or ``bf16``.
        device: the resolved training device.
        outputs: width of the stacked head product (number of heads fitted jointly × K).
        full_batch_macs: multiply-adds of the product (rows × features × outputs) of a full-batch fit, whose
            features are constant; 0 for mini-batches.
        cast_once: whether a bf16 fit would gather its mini-batches from its features cast to bfloat16 once
            (``probe.trainer._casts_once``); ``auto`` then picks bf16 from :data:`BF16_MIN_CAST_ONCE_OUTPUTS`.

    Raises ValueError for an unknown precision, or ``bf16`` on a CUDA device without bfloat16.
    """
    check("precision", precision, TRAINER_PARAMS["precision"])
    if precision == "auto":
        least = BF16_MIN_CAST_ONCE_OUTPUTS if cast_once else BF16_MIN_OUTPUTS
        pays = outputs >= least or full_batch_macs >= BF16_MIN_FULL_BATCH_MACS
        fast = device.type == "cpu" and pays and cpu_has_native_bf16()
        return "bf16" if fast else "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision='bf16' is not supported by {device}; use 'fp32' or 'auto'.")
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of a resolved precision for the forward matrix products (a no-op for ``fp32``)."""
    dtype = _DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def widen(t: Tensor) -> Tensor:
    """float32 view of a product computed under autocast (unchanged when already float32)."""
    return t if t.dtype == torch.float32 else t.float()


class BatchProduct:
    """The heads' product with one batch of features: called with the stacked matrix w (m, d) of one or more heads,
    the float32 product x·wᵀ (n, m); :meth:`each` gives every head its own (n, k_i) block of it.
    :meth:`transposed` and :meth:`weight_grad` are the same product and its weight gradient without autograd,
    for a step whose gradients are written out (``probe.trainer``'s closed-form step)."""

    def __call__(self, w: Tensor) -> Tensor:
        raise NotImplementedError

    def _operands(self) -> tuple[Tensor, Tensor | None]:
        """The batch in the product's dtype, and its contiguous transpose or None."""
        raise NotImplementedError

    def transposed(self, w: Tensor) -> Tensor:
        """The float32 product w·xᵀ (m, n), computed in the product's dtype: the logits transposed, as the
        cross-entropy reduces them (and for a narrow w the faster form, :func:`probe.trainer.heads_product`)."""
        x, xt = self._operands()
        return widen(w.to(x.dtype) @ (x.t() if xt is None else xt))

    def weight_grad(self, gt: Tensor) -> Tensor:
        """The float32 weight gradient gᵀ·x (m, d) for the gradient gt (m, n) of :meth:`transposed`'s output,
        computed in the product's dtype; from the contiguous transpose when there is one, (xt·gtᵀ)ᵀ, as
        :class:`ConstantProduct`'s backward computes it."""
        x, xt = self._operands()
        if xt is None:
            return widen(gt.to(x.dtype) @ x)
        return (xt @ gt.to(x.dtype).t()).t().to(torch.float32, memory_format=torch.contiguous_format)

    def each(self, matrices: list[Tensor]) -> list[Tensor]:
        """[x·m_iᵀ] for the heads' matrices m_i (k_i, d): one product of their concatenation, split by columns."""
        if len(matrices) == 1:
            return [self(matrices[0])]
        return list(self(torch.cat(matrices)).split([m.shape[0] for m in matrices], dim=1))


class _CastOnceProduct(BatchProduct):
    """A product whose features are already in the product's dtype (:meth:`_operands`: x, and its contiguous
    transpose or None): one head through :class:`_ConstantProductFn`, several through :func:`per_head_products`."""

    def __call__(self, w: Tensor) -> Tensor:
        return widen(_ConstantProductFn.apply(*self._operands(), w))

    def each(self, matrices: list[Tensor]) -> list[Tensor]:
        if len(matrices) == 1:
            return [self(matrices[0])]
        return per_head_products(*self._operands(), matrices)


class ConstantProduct(_CastOnceProduct):
    """z = x·wᵀ of constant features x (a full batch) with trainable weights w, in ``dtype``: x is cast once, and
    so is its transpose, kept contiguous for the weight gradient gᵀ·x = (xᵀ·g)ᵀ: on oneDNN's bfloat16 kernels
    that took 4–16 % less time than the transposed view autograd would use (2.7k × 1280, 10–600 outputs, 1
    thread, idle machine; ``bench/probe_speed.py --product-forms``). Calling it with w (float32, requires grad)
    returns the float32 product; w's gradient is float32, as autocast would give. Several heads' products come
    from :func:`per_head_products`.
    """

    def __init__(self, x: Tensor, dtype: torch.dtype) -> None:
        self.source, self.dtype = x, dtype
        self.x = self.xt = None  # cast at the first call (a fit with an adapter never makes one)

    def _operands(self) -> tuple[Tensor, Tensor | None]:
        if self.x is None:
            self.x = self.source.to(self.dtype)
            self.xt = self.x.t().contiguous()
        return self.x, self.xt


class _RowsProduct(_CastOnceProduct):
    def __init__(self, x: Tensor) -> None:
        self.x = x

    def _operands(self) -> tuple[Tensor, Tensor | None]:
        return self.x, None


def rows_product(x: Tensor) -> BatchProduct:
    """w ↦ the float32 product x·wᵀ of a batch x already in the product's dtype (rows gathered from features cast
    once per fit, :func:`cast_rows`): only w is cast per call, and the weight gradient is gᵀ·x in x's dtype, read
    from x as it is; no transposed copy of the batch is made. Values as under autocast, up to the summation order
    of the two forms of the product. Several heads' products come from :func:`per_head_products`."""
    return _RowsProduct(x)


def per_head_products(x: Tensor, xt: Tensor | None, matrices: list[Tensor]) -> list[Tensor]:
    """The float32 products x·m_iᵀ (n, k_i) of several heads' float32 matrices m_i (k_i, d) with features x
    (n, d) already in the product's dtype (bfloat16), and xt its contiguous transpose or None: one product, as
    :class:`ConstantProduct` or :func:`rows_product` of the concatenated m_i gives it, split by heads, with the
    same values and gradients, bit for bit (and so autocast's, up to the order in which (xt·g)ᵀ sums). What it
    saves: the float32 concatenation of the matrices before their bfloat16 cast
    (each is cast straight into one stacked bfloat16 matrix) and, in the backward pass, the float32
    concatenation of the heads' logit gradients before theirs (each is cast straight into one bfloat16 matrix).
    On the 1000-class sweeps (6 or 18 heads of 1000 × 1024, batches of 1024) each is a pass over 12–74 MB:
    bench/README.md, "The same figures on another CPU"."""
    return list(_PerHeadProductsFn.apply(x, xt, *matrices))


def cast_rows(x: Tensor, dtype: torch.dtype, chunk_rows: int) -> Tensor:
    """x (n, d) as a new ``dtype`` tensor, cast ``chunk_rows`` rows at a time through float32: the values autocast
    gives (float32 → bfloat16 rounds to nearest even), without a float32 copy of the whole, and fast from float16
    too, which torch converts to bfloat16 on a scalar path (1.8 ms per 1024 × 1280 rows against 0.34 ms through
    float32, bench/README.md)."""
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    for start in range(0, x.shape[0], chunk_rows):
        out[start:start + chunk_rows].copy_(x[start:start + chunk_rows].float())
    return out


class _ConstantProductFn(torch.autograd.Function):
    """x·wᵀ in x's dtype; the weight gradient from the contiguous transpose xt when given ((xt·g)ᵀ), else gᵀ·x."""

    @staticmethod
    def forward(ctx, x: Tensor, xt: Tensor | None, w: Tensor) -> Tensor:
        ctx.save_for_backward(x if xt is None else xt)
        ctx.transposed = xt is not None
        ctx.weight_dtype = w.dtype
        return x @ w.to(x.dtype).t()

    @staticmethod
    def backward(ctx, grad: Tensor):
        (saved,) = ctx.saved_tensors
        grad = grad.to(saved.dtype)
        weight = (saved @ grad).t() if ctx.transposed else grad.t() @ saved
        return None, None, weight.to(ctx.weight_dtype)


class _PerHeadProductsFn(torch.autograd.Function):
    """(x, xt, m_1, ..., m_H) ↦ (x·m_1ᵀ, ..., x·m_Hᵀ) in float32, from one product in x's dtype
    (:func:`per_head_products`); the weight gradients from one product (xt·g)ᵀ when xt is given, else gᵀ·x."""

    @staticmethod
    def forward(ctx, x: Tensor, xt: Tensor | None, *matrices: Tensor) -> tuple[Tensor, ...]:
        widths = [m.shape[0] for m in matrices]
        stacked = torch.empty(sum(widths), x.shape[1], dtype=x.dtype, device=x.device)
        for block, m in zip(stacked.split(widths), matrices):
            block.copy_(m)  # cast into place: no float32 concatenation
        ctx.save_for_backward(x if xt is None else xt)
        ctx.transposed = xt is not None
        ctx.widths = widths
        ctx.weight_dtypes = [m.dtype for m in matrices]
        return tuple(z.to(torch.float32, copy=True) for z in (x @ stacked.t()).split(widths, dim=1))

    @staticmethod
    def backward(ctx, *grads: Tensor):
        (saved,) = ctx.saved_tensors
        rows = saved.shape[1] if ctx.transposed else saved.shape[0]
        g = torch.empty(rows, sum(ctx.widths), dtype=saved.dtype, device=saved.device)
        for block, grad in zip(g.split(ctx.widths, dim=1), grads):
            block.copy_(grad)  # cast into place
        weight = (saved @ g).t() if ctx.transposed else g.t() @ saved
        return (None, None, *(w.to(dtype, memory_format=torch.contiguous_format)
                              for w, dtype in zip(weight.split(ctx.widths), ctx.weight_dtypes)))
