"""Inference-time fusion into convolutions: the BatchNorm that follows a convolution, and the ReLU / ReLU6 after it.

**BatchNorm folding.** In eval mode a BatchNorm is an affine map per channel, ``y = (x − μ)·γ/√(σ² + ε) + β``,
so after a convolution whose output nothing else reads it folds into that convolution's weights and bias
(:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`): one pass over each such activation fewer. effnet-lite0 has 49
such pairs, torchvision's ResNet-50 (MoCo v2) 53, open_clip's RN50 55, open_clip's ViTs none. In fp32 the
folded features equal the unfolded ones to rounding (sums in another order); under bf16 / fp16 autocast the
folded weights are rounded once instead of the weights and the normalised activations separately, a change of
the size of that precision's own error (bench/README.md, Extraction).

**Activation fusion.** A ReLU or ReLU6 that is the only reader of such a convolution's (folded) output becomes the
convolution's oneDNN post-op (:class:`ConvActivation`: ``torch.ops.mkldnn._convolution_pointwise``, the call
PyTorch's own compiler emits for this pattern on CPU), one pass fewer again; in channels_last, the layout
extraction runs in, the output is bit-identical to the convolution followed by the activation (clamping commutes
with rounding to the output dtype). In NCHW oneDNN may pick another kernel for the call with the post-op (an
fp32 1×1 convolution on 1 thread, on this project's Zen 4 CPU), whose sums run in another order: equal to
rounding. It applies on CPU with oneDNN, without gradients; elsewhere (CUDA, autograd) the module runs the two
eager calls. effnet-lite0 has 33 (timm's ``BatchNormAct2d`` carries its activation), open_clip's RN50 35;
torchvision's ResNet-50 only the stem's (a block's one ReLU module serves its three convolutions, and a module
called thrice is left alone).

**Which pairs.** :mod:`torch.fx` traces the encoder's forward with every BatchNorm and every module holding no
BatchNorm kept whole. A BatchNorm folds when it is exactly ``nn.BatchNorm2d`` or timm's ``BatchNormAct2d`` (whose
dropout and activation stay, or fuse), keeps running statistics, is called once, and reads only the output of an
``nn.Conv2d`` with numeric padding, called once, whose output nothing else reads. A model fx cannot trace is left
as it is (logged at INFO).
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor, fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["Fused", "ConvActivation", "fuse_convolutions"]

logger = logging.getLogger(__name__)


class Fused(NamedTuple):
    """What :func:`fuse_convolutions` fused: BatchNorms folded, activations made post-ops."""

    batch_norms: int = 0
    activations: int = 0


class ConvActivation(nn.Module):
    """``activation(conv(x))`` for a ReLU or a ReLU6 (``Hardtanh(0, 6)``), as one oneDNN convolution with the
    activation as its post-op on CPU in a dtype oneDNN runs there (:func:`_onednn_dtypes`); the eager calls
    elsewhere. Under CPU autocast the input, weight and bias are cast to the autocast dtype as autocast casts
    them for ``conv2d``."""

    def __init__(self, conv: nn.Conv2d, activation: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.activation = activation
        if type(activation) is nn.ReLU:
            self.attr, self.scalars = "relu", []
        else:  # nn.ReLU6 and nn.Hardtanh(0, 6) (_fusable_activation)
            self.attr, self.scalars = "hardtanh", [float(activation.min_val), float(activation.max_val)]

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        if x.device.type != "cpu" or torch.is_grad_enabled():
            return self.activation(conv(x))
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        if dtype not in _onednn_dtypes():
            return self.activation(conv(x))
        bias = None if conv.bias is None else conv.bias.to(dtype)
        return torch.ops.mkldnn._convolution_pointwise(
            x.to(dtype), conv.weight.to(dtype), bias, list(conv.padding), list(conv.stride), list(conv.dilation),
            conv.groups, self.attr, self.scalars, "")


@lru_cache(maxsize=1)
def _onednn_dtypes() -> frozenset[torch.dtype]:
    """The dtypes oneDNN's fused convolution runs on this CPU: float32, and bfloat16 where oneDNN supports it
    (AVX512 or newer; elsewhere eager PyTorch falls back to its own bf16 convolution and so does
    :class:`ConvActivation`); none without oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return frozenset()
    return frozenset({torch.float32} | ({torch.bfloat16} if torch.ops.mkldnn._is_mkldnn_bf16_supported() else set()))


def _fusable_activation(module: nn.Module | None) -> bool:
    """ReLU, or ReLU6 / Hardtanh(0, 6): bounds that bfloat16 and float16 hold exactly, so clamping before or after
    the rounding to the output dtype gives the same values."""
    if type(module) is nn.ReLU:
        return True
    return type(module) in (nn.ReLU6, nn.Hardtanh) and (float(module.min_val), float(module.max_val)) == (0.0, 6.0)


def _remainder(bn: nn.Module) -> nn.Module | None:
    """What stays of the BatchNorm ``bn`` once folded into its convolution (Identity, or timm's activation with
    its dropout), or None for a kind whose forward is not known here (then it is not folded)."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:  # timm is a dependency; a model without it has no BatchNormAct2d either
        return None
    if type(bn) is BatchNormAct2d:  # batch_norm, then self.drop, then self.act (timm.layers.norm_act)
        return bn.act if type(bn.drop) is nn.Identity else nn.Sequential(bn.drop, bn.act)
    return None


def _holds_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in module.modules())


# One trace at a time in the process: torch.fx replaces ``nn.Module.__call__`` and ``__getattr__`` for the whole
# process while it traces and puts back what it found, so two traces at once (two extraction jobs of the service
# building their encoders) could leave one trace's replacement in place for good.
_TRACE_LOCK = threading.Lock()


class _Tracer(fx.Tracer):
    """Keeps BatchNorms, and modules without any BatchNorm inside (their internals do not matter here and need
    not be traceable), as single ``call_module`` nodes.

    Traces take turns (``_TRACE_LOCK``), and while one runs, module calls and attribute reads from any other
    thread (another job's forward pass, or a DataLoader worker forked meanwhile) pass through fx's process-wide
    replacements unchanged: before, they ran into this tracer (``NameError: module is not installed as a
    submodule``)."""

    _thread: int | None = None  # the thread tracing now

    def trace(self, root, concrete_args=None):
        with _TRACE_LOCK:
            self._thread = threading.get_ident()
            try:
                return super().trace(root, concrete_args)
            finally:
                self._thread = None

    def call_module(self, m: nn.Module, forward, args, kwargs):
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)  # the module's own call, as without the trace
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

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


class _Pair(NamedTuple):
    conv: str
    bn: str
    activation: str | None  # a separate activation module that reads only the BatchNorm's output


def _only_reader(node: fx.Node) -> fx.Node | None:
    """The node that alone reads ``node``'s output, taking it as its one argument; None otherwise."""
    if len(node.users) != 1:
        return None
    user = next(iter(node.users))
    return user if user.args == (node,) and not user.kwargs else None


def _pairs(root: nn.Module) -> list[_Pair]:
    """The (convolution, BatchNorm, activation) triples under ``root`` that can be fused (module docstring)."""
    graph = _Tracer().trace(root)
    modules = dict(root.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")

    def single(node: fx.Node | None) -> nn.Module | None:  # the module a node calls, if it calls it alone
        if node is None or node.op != "call_module" or calls[node.target] != 1:
            return None
        return modules[node.target]

    pairs = []
    for node in graph.nodes:
        bn = single(node)
        if not isinstance(bn, _BatchNorm) or _remainder(bn) is None or not bn.track_running_stats:
            continue
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        conv = single(source) if isinstance(source, fx.Node) and _only_reader(source) is node else None
        if type(conv) is not nn.Conv2d or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            continue
        reader = _only_reader(node)
        activation = reader.target if _fusable_activation(single(reader)) else None
        pairs.append(_Pair(source.target, node.target, activation))
    return pairs


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent), child, module)


def fuse_convolutions(model: nn.Module, forward: Callable[[nn.Module, Tensor], Tensor]) -> Fused:
    """Fuse, in place, every BatchNorm of ``model`` that directly follows a convolution into it, and the ReLU /
    ReLU6 that then reads it alone (module docstring), for the forward pass ``forward(model, images)``; puts
    ``model`` in eval mode. Returns the counts (zero for a model without BatchNorm, or one fx cannot trace)."""
    model.eval()
    if not _holds_batch_norm(model):
        return Fused()
    root = _Forward(model, forward)
    try:
        pairs = _pairs(root)
    except Exception as err:  # noqa: BLE001 — fx cannot trace data-dependent control flow; fusion is optional
        logger.info("convolution fusion skipped: torch.fx cannot trace this encoder (%s: %s)",
                    type(err).__name__, err)
        return Fused()
    activations = 0
    for pair in pairs:
        conv, bn = root.get_submodule(pair.conv), root.get_submodule(pair.bn)
        folded, rest = fuse_conv_bn_eval(conv, bn), _remainder(bn)
        if _fusable_activation(rest):  # timm's BatchNormAct2d: its own activation
            folded, rest = ConvActivation(folded, rest), nn.Identity()
        elif type(rest) is nn.Identity and pair.activation is not None:  # a separate activation module
            folded = ConvActivation(folded, root.get_submodule(pair.activation))
            _replace(root, pair.activation, nn.Identity())
        activations += isinstance(folded, ConvActivation)
        _replace(root, pair.conv, folded)
        _replace(root, pair.bn, rest)
    return Fused(len(pairs), activations)
