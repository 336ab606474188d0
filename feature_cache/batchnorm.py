"""Inference-time folding of BatchNorm into the convolution that feeds it.

In eval mode a BatchNorm is an affine map per channel, ``y = (x − μ)·γ/√(σ² + ε) + β``, so after a convolution
whose output nothing else reads it can be folded into that convolution's weights and bias
(:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`): the forward pass makes one pass over each such activation
fewer. effnet-lite0 has 49 such pairs; torchvision's ResNet-50 (MoCo v2) and open_clip's ModifiedResNet have
them too, open_clip's ViTs none. In fp32 the folded features equal the unfolded ones to rounding (the products
are summed in another order); under bf16 / fp16 autocast the folded weights are rounded once instead of the
weights and the normalised activations separately, a change of the size of that precision's own error
(README, extraction).

Which pairs: :mod:`torch.fx` traces the encoder's forward with every BatchNorm, and every module holding no
BatchNorm, kept whole. A BatchNorm is folded when it is exactly ``nn.BatchNorm2d`` (replaced by ``Identity``)
or timm's ``BatchNormAct2d`` (replaced by its dropout and activation, which stay), keeps running statistics,
is called once, and its input is the output of an ``nn.Conv2d`` called once whose output nothing else reads.
A model fx cannot trace is left as it is (logged at INFO).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from torch import Tensor, fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batch_norms"]

logger = logging.getLogger(__name__)


def _remainder(bn: nn.Module) -> nn.Module | None:
    """What stays of the BatchNorm ``bn`` once folded into its convolution, or None when it is of a kind whose
    forward is not known here (then it is not folded)."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:  # timm is a dependency; a model without it has no BatchNormAct2d either
        return None
    if type(bn) is BatchNormAct2d:  # batch_norm, then self.drop, then self.act (timm.layers.norm_act)
        return nn.Sequential(bn.drop, bn.act)
    return None


def _holds_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in module.modules())


class _Tracer(fx.Tracer):
    """Keeps BatchNorms, and modules without any BatchNorm inside (their internals do not matter here and need
    not be traceable), as single ``call_module`` nodes."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _BatchNorm) or not _holds_batch_norm(m) or super().is_leaf_module(m, module_qualified_name)


class _Forward(nn.Module):
    """The encoder's forward ``forward(model, images)`` as a module, so fx can trace it and name submodules."""

    def __init__(self, model: nn.Module, forward: Callable[[nn.Module, Tensor], Tensor]) -> None:
        super().__init__()
        self.model = model
        self.fn = forward

    def forward(self, images: Tensor) -> Tensor:
        return self.fn(self.model, images)


def _pairs(root: nn.Module) -> list[tuple[str, str]]:
    """(convolution, BatchNorm) qualified names under ``root`` that can be folded (module docstring)."""
    graph = _Tracer().trace(root)
    modules = dict(root.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _BatchNorm):
            continue
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not isinstance(source, fx.Node) or source.op != "call_module":
            continue
        conv, bn = modules[source.target], modules[node.target]
        if (type(conv) is nn.Conv2d and _remainder(bn) is not None and bn.track_running_stats
                and bn.running_mean is not None and len(source.users) == 1
                and calls[source.target] == 1 and calls[node.target] == 1):
            pairs.append((source.target, node.target))
    return pairs


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent), child, module)


def fold_batch_norms(model: nn.Module, forward: Callable[[nn.Module, Tensor], Tensor]) -> int:
    """Fold, in place, every BatchNorm of ``model`` that directly follows a convolution into it, for the
    forward pass ``forward(model, images)``; puts ``model`` in eval mode. Returns how many were folded (0 for a
    model without BatchNorm, or one torch.fx cannot trace)."""
    model.eval()
    if not _holds_batch_norm(model):
        return 0
    root = _Forward(model, forward)
    try:
        pairs = _pairs(root)
    except Exception as err:  # noqa: BLE001 — fx cannot trace data-dependent control flow; folding is optional
        logger.info("BatchNorm folding skipped: torch.fx cannot trace this encoder (%s: %s)",
                    type(err).__name__, err)
        return 0
    for conv_name, bn_name in pairs:
        conv, bn = root.get_submodule(conv_name), root.get_submodule(bn_name)
        _replace(root, conv_name, fuse_conv_bn_eval(conv, bn))
        _replace(root, bn_name, _remainder(bn))
    return len(pairs)
