"""Adapter registry: a trainable map before the head, so the representation margin ℓ_s̄ has something to move.

On frozen cached features ℓ_s̄ (MR²) has no gradient; an adapter φ ↦ φ + A φ makes the features the head sees
trainable. Both adapters start as the identity (the residual branch is zero), so training starts from the
plain probe.

- ``linear``: φ + A φ with A (d, d) initialised to zero.
- ``lowrank``: φ + U V φ with V (r, d) random (normal, std 1/√d) and U (d, r) zero: identity at start, rank r
  (default min(64, d)).
- ``mlp``: φ + U GELU(V φ + b), a bottleneck residual MLP (as in adapter tuning) with V, b from ``nn.Linear``'s
  default initialisation and U (d, r) zero: identity at start, bottleneck width r (``rank``, default min(128, d)).
  The two linear adapters compose with a linear head into another linear map, so on their own they add no
  capacity (only ℓ_s̄ shapes them); this one is non-linear, so compare it with ERM on the same adapter (λ = 0).
"""
from __future__ import annotations

import math
import torch
from torch import Tensor, nn

from .registry import ADAPTERS, AdapterSpec, get_adapter_spec

__all__ = ["ADAPTERS", "AdapterSpec", "create_adapter", "list_adapters"]


class ResidualLinearAdapter(nn.Module):
    """φ ↦ φ + A φ, A ∈ R^{d×d}, A₀ = 0."""

    name = "linear"
    FORWARD = "x = x + x @ adapter.A.T"  # in terms of the saved tensors (head.json's "forward")

    def __init__(self, num_features: int, rank: int | None = None, *,
                 generator: torch.Generator | None = None) -> None:  # noqa: ARG002 - A starts at zero
        super().__init__()
        if rank is not None:
            raise TypeError("adapter 'linear' is full rank; use adapter 'lowrank' for rank=.")
        self.num_features = int(num_features)
        self.A = nn.Parameter(torch.zeros(self.num_features, self.num_features))

    def forward(self, features: Tensor) -> Tensor:
        return features + features @ self.A.t()


class LowRankAdapter(nn.Module):
    """φ ↦ φ + U (V φ), U ∈ R^{d×r} zero at start, V ∈ R^{r×d} random."""

    name = "lowrank"
    FORWARD = "x = x + (x @ adapter.V.T) @ adapter.U.T"

    def __init__(self, num_features: int, rank: int | None = None, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        rank = min(64, int(num_features)) if rank is None else int(rank)
        if not 1 <= rank <= int(num_features):
            raise ValueError(f"rank must be in [1, num_features={num_features}], got {rank}.")
        self.num_features, self.rank = int(num_features), rank
        self.V = nn.Parameter(torch.randn(rank, self.num_features, generator=generator) / math.sqrt(self.num_features))
        self.U = nn.Parameter(torch.zeros(self.num_features, rank))

    def forward(self, features: Tensor) -> Tensor:
        return features + (features @ self.V.t()) @ self.U.t()


class BottleneckMLPAdapter(nn.Module):
    """φ ↦ φ + U GELU(V φ + b), V ∈ R^{r×d}, U ∈ R^{d×r} zero at start."""

    name = "mlp"
    FORWARD = ("x = x + gelu(x @ adapter.down.weight.T + adapter.down.bias) @ adapter.U.T, gelu the exact (erf) "
               "GELU")

    def __init__(self, num_features: int, rank: int | None = None, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        rank = min(128, int(num_features)) if rank is None else int(rank)
        if rank < 1:
            raise ValueError(f"rank (bottleneck width) must be >= 1, got {rank}.")
        self.num_features, self.rank = int(num_features), rank
        self.down = nn.Linear(self.num_features, rank)
        if generator is not None:  # nn.Linear's own initialisation (reset_parameters), drawn from the generator
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(self.num_features)
            nn.init.uniform_(self.down.bias, -bound, bound, generator=generator)
        self.U = nn.Parameter(torch.zeros(self.num_features, rank))

    def forward(self, features: Tensor) -> Tensor:
        return features + nn.functional.gelu(self.down(features)) @ self.U.t()


def list_adapters() -> list[str]:
    """Names of the registered adapters (for ``create_adapter`` and ``ProbeTrainer(adapter=)``)."""
    return list(ADAPTERS)


def forward_text(name: str) -> str:
    """How adapter ``name`` maps the features x with its saved tensors (``FORWARD``)."""
    return globals()[get_adapter_spec(name).factory].FORWARD


def create_adapter(name: str, num_features: int, rank: int | None = None, *,
                   generator: torch.Generator | None = None) -> nn.Module:
    """Build adapter ``name`` for d = ``num_features``; ``rank`` is the rank (``lowrank``, default min(64, d)) or
    the bottleneck width (``mlp``, default min(128, d)); ``linear`` is full rank and takes none. Its random weights
    are drawn from ``generator`` (None: torch's global generator)."""
    spec = get_adapter_spec(name)
    if int(num_features) < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}.")
    adapter = globals()[spec.factory](int(num_features), rank, generator=generator)
    adapter.spec = spec
    adapter.options = {"rank": getattr(adapter, "rank", None)}
    return adapter
