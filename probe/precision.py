"""Training precision: the matrix products of a fit in bfloat16 where the hardware computes it natively.

``precision`` (:data:`probe.params.TRAINING_PRECISIONS`) of :class:`probe.ProbeTrainer`:

- ``fp32``: everything in float32 (bit-identical to the trainer before this option existed).
- ``bf16``: the forward matrix products (the heads' stacked product, an adapter's) run under
  ``torch.autocast(dtype=torch.bfloat16)``, and so do their backward products; the master weights, the optimiser
  state, the class statistics r_k², ‖s_k‖² and the margins γ stay float32, and the logits are widened to float32
  before the loss, so softmax, cross-entropy and the MR² γ shift are float32 (:func:`widen`).
  Evaluation (``decision_function``, ``predict``) is always float32.
- ``auto`` (the default): ``bf16`` on a CPU with native bfloat16 instructions (AVX512-BF16 or AMX,
  :func:`cpu_has_native_bf16`) when the stacked product is at least :data:`BF16_MIN_OUTPUTS` wide (number of
  heads × K), ``fp32`` otherwise (CUDA included: not measured there yet). Below that width the products are a
  small part of a step and bfloat16's casts cost more than they save; emulated bfloat16 (CPUs without it) is
  slower than float32. Measured by ``bench/precision.py`` (README, "Training precision").
"""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from .constraints import check
from .params import TRAINER_PARAMS

__all__ = ["cpu_has_native_bf16", "resolve_precision", "autocast", "widen", "BF16_MIN_OUTPUTS"]

# Width (heads × classes) of the stacked head product from which ``auto`` trains in bf16 on a CPU with native
# bfloat16. bench/precision.py: 6 heads × 10 classes (60 outputs) gain nothing; 6 × 1000 are ~2× per epoch.
BF16_MIN_OUTPUTS = 1024

_DTYPES = {"bf16": torch.bfloat16}


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), so bf16 autocast is fast.

    The one detection of the project: feature extraction (``feature_cache.encoders``) uses it too.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private torch.cpu helpers (torch >= 2.3)
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: str, device: torch.device, outputs: int) -> str:
    """The precision a fit runs at: ``fp32`` or ``bf16``; ``auto`` by the rule of the module docstring.

    Args:
        precision: ``auto``, ``fp32`` or ``bf16``.
        device: the resolved training device.
        outputs: width of the stacked head product (number of heads fitted jointly × K).

    Raises ValueError for an unknown precision, or ``bf16`` on a CUDA device without bfloat16.
    """
    check("precision", precision, TRAINER_PARAMS["precision"])
    if precision == "auto":
        fast = device.type == "cpu" and cpu_has_native_bf16() and outputs >= BF16_MIN_OUTPUTS
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
