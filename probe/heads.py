"""Head registry: the classifier on top of the (optionally adapted) features.

Every head has ``num_features``, ``num_classes``, ``forward(features) -> logits (n, K)``, ``class_weights() -> (K, d)``,
``score_matrix()`` / ``score_from(raw)`` (logits = score_from(prepared · score_matrix()ᵀ), so a joint fit of several
heads shares one matrix product) and ``input_features(features)``: the features the head actually sees (identity for ``linear``, L2-normalised for
``cosine``). Class statistics r_k², ‖s_k‖² are computed on ``input_features``, so linear and cosine heads swap freely.

Logit scale of the cosine head: learnable by default (stored as log s, initialised at ``logit_scale`` = 16, no
weight decay), as in CLIP. Cosines are bounded by 1, so s sets how peaked the softmax can get, and a fixed s
under-fits: on the README's effnet-lite0 features a fixed s = 16 cost 3.7 points (CIFAR-10) and 3.1 points
(Fashion-MNIST) of ERM test accuracy against a learnable s, and let a loss that merely re-weights confident
samples (focal) look like a disparity fix. ``learnable_scale=False`` keeps s fixed at ``logit_scale``. Under a
loss on cosines (``lm_softmax``, ``cosface``, ``arcface``), which scores them at its own ``scale`` and leaves s
without a gradient, the trainer sets s to that scale, so the head ships as the loss trained it.
"""
from __future__ import annotations

import logging
import math
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .metrics import check_num_classes
from .registry import HEADS, HeadSpec, check_options, get_head_spec

logger = logging.getLogger(__name__)

__all__ = ["HEADS", "HeadSpec", "LinearHead", "CosineHead", "create_head", "get_head_spec", "head_class", "list_heads"]


class LinearHead(nn.Module):
    """z = W φ + b (``bias=False`` drops b). Weights start at zero-mean normal(0, 0.01)."""

    # the logits in terms of the saved tensors (head.json's "forward", for code that does not import this package)
    FORWARD = "logits = x @ head.weight.T + head.bias (head.bias absent with bias=false: logits = x @ head.weight.T)"

    name = "linear"
    normalizes = False

    def __init__(self, num_features: int, num_classes: int, bias: bool = True, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_features, self.num_classes = int(num_features), int(num_classes)
        self.weight = nn.Parameter(torch.randn(self.num_classes, self.num_features, generator=generator) * 0.01)
        self.bias = nn.Parameter(torch.zeros(self.num_classes)) if bias else None

    def input_features(self, features: Tensor) -> Tensor:
        return features

    def score_matrix(self) -> Tensor:
        """(K, d) matrix M with logits = :meth:`score_from` (prepared · Mᵀ); a joint fit concatenates the M of
        several heads so one matrix product serves them all."""
        return self.weight

    def score_from(self, raw: Tensor) -> Tensor:
        """Logits from raw = prepared · Mᵀ: adds the bias."""
        return raw if self.bias is None else raw + self.bias

    @staticmethod
    def joint_score_from(heads: list["LinearHead"], raw: Tensor) -> Tensor:
        """:meth:`score_from` of several heads at once: raw (n, H·K) holds their products side by side (heads of
        one joint fit share their options, so all have a bias or none has)."""
        return raw if heads[0].bias is None else raw + torch.cat([h.bias for h in heads])

    def score(self, prepared: Tensor) -> Tensor:
        """Logits from features already passed through :meth:`input_features` (the trainer's fast path)."""
        return self.score_from(prepared @ self.score_matrix().t())

    def forward(self, features: Tensor) -> Tensor:
        """(n, d) → logits (n, K)."""
        return self.score(features)

    def class_weights(self) -> Tensor:
        """(K, d) class weight vectors w_k."""
        return self.weight


class CosineHead(nn.Module):
    """Logits s·cos(w_k, φ) = s·w̃_kᵀφ̃ with features and class weights L2-normalised; s fixed or learnable."""

    FORWARD = ("logits = exp(head.log_scale) * normalize(x) @ normalize(head.weight).T, normalize dividing each row "
               "by max(its L2 norm, 1e-12); no bias")

    name = "cosine"
    normalizes = True

    def __init__(self, num_features: int, num_classes: int, logit_scale: float = 16.0,
                 learnable_scale: bool = True, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        HEADS["cosine"].options["logit_scale"].check("head 'cosine'", "logit_scale", logit_scale)  # bounds: registry
        self.num_features, self.num_classes = int(num_features), int(num_classes)
        self.weight = nn.Parameter(torch.randn(self.num_classes, self.num_features, generator=generator) * 0.01)
        log_s = torch.tensor(math.log(float(logit_scale)))
        if learnable_scale:
            self.log_scale = nn.Parameter(log_s)
        else:
            self.register_buffer("log_scale", log_s)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def input_features(self, features: Tensor) -> Tensor:
        return F.normalize(features, dim=1)

    def score_matrix(self) -> Tensor:
        """(K, d) L2-normalised class weights w̃_k: prepared · Mᵀ are the cosines."""
        return F.normalize(self.weight, dim=1)

    def score_from(self, raw: Tensor) -> Tensor:
        """Logits s·cos from the cosines raw = prepared · Mᵀ."""
        return self.scale * raw

    @staticmethod
    def joint_score_from(heads: list["CosineHead"], raw: Tensor) -> Tensor:
        """:meth:`score_from` of several heads at once: raw (n, H·K) holds their cosines side by side."""
        scales = torch.stack([h.log_scale for h in heads]).exp()
        return raw * scales.repeat_interleave(heads[0].num_classes)

    def cosine_score(self, prepared: Tensor) -> Tensor:
        """Cosines from already-normalised features (output of :meth:`input_features`), (n, K)."""
        return prepared @ self.score_matrix().t()

    def score(self, prepared: Tensor) -> Tensor:
        """Logits s·cos from already-normalised features (the trainer's fast path)."""
        return self.score_from(self.cosine_score(prepared))

    def cosine(self, features: Tensor) -> Tensor:
        """(n, d) → cosines w̃_kᵀφ̃ ∈ [−1, 1], (n, K)."""
        return self.cosine_score(self.input_features(features))

    def forward(self, features: Tensor) -> Tensor:
        """(n, d) → logits s·cos (n, K)."""
        return self.score(self.input_features(features))

    def class_weights(self) -> Tensor:
        return self.weight


def list_heads() -> list[str]:
    """Names of the registered heads (for ``create_head`` and ``ProbeTrainer(head=)``)."""
    return list(HEADS)


def forward_text(name: str) -> str:
    """How head ``name`` computes its logits from the features x and its saved tensors (``FORWARD``)."""
    return head_class(name).FORWARD


def head_class(name: str) -> type[nn.Module]:
    """The class of head ``name`` (its ``normalizes`` flag says whether it L2-normalises the features)."""
    return globals()[get_head_spec(name).factory]


def _check_dims(num_features: int, num_classes: int) -> None:
    if int(num_features) < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}.")
    check_num_classes(num_classes)


def create_head(name: str, num_features: int, num_classes: int, *, generator: torch.Generator | None = None,
                **options) -> nn.Module:
    """Build head ``name`` for d = ``num_features`` and K = ``num_classes`` (options over registry defaults), its
    random weights drawn from ``generator`` (None: torch's global generator, which every thread shares).

    The options and their bounds are declared in ``probe.registry.HEADS``. Raises KeyError (unknown head),
    TypeError (unknown option), ValueError (bad dimension or value).
    """
    spec = get_head_spec(name)
    _check_dims(num_features, num_classes)
    resolved = check_options(spec, options, "head")
    head = head_class(name)(int(num_features), int(num_classes), **resolved, generator=generator)
    head.spec, head.options = spec, resolved
    return head
