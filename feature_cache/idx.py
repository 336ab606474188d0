"""Fashion-MNIST / MNIST idx files (``train-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` ...).

The idx format (LeCun et al.): a 4-byte magic ``0x00 0x00 <dtype> <ndim>`` (dtype ``0x08`` = unsigned
byte), ``ndim`` big-endian int32 dimensions, then the data in C order. Images are (n, 28, 28) greyscale;
the encoder transform turns them into 3 identical RGB channels.

Class names: the ten Fashion-MNIST names when the folder or file names contain "fashion" (Debian's
``dataset-fashion-mnist`` installs them to ``/usr/share/datasets/fashion-mnist/``), the digits
``0``–``9`` otherwise. Samples are named ``train/00042`` / ``test/00007`` (split and index in the file).
"""
from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import numpy as np

from .errors import DatasetError

__all__ = ["FASHION_MNIST_CLASSES", "IdxReader", "read_idx", "find_idx_files", "open_idx"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_PREFIXES = {"train": "train", "test": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """Parse one idx file (optionally gzip-compressed) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read idx file ({exc}).") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DatasetError(f"{path}: not an unsigned-byte idx file (magic {raw[:4].hex() or 'missing'}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: idx header truncated.")
    shape = tuple(int(v) for v in np.frombuffer(raw[4:header], dtype=">i4"))
    if len(raw) - header != int(np.prod(shape)):
        raise DatasetError(f"{path}: idx header says {shape} = {int(np.prod(shape))} bytes, file has {len(raw) - header}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    """{split: (images, labels)} for the idx files in ``folder``, or None when there are none."""
    found: dict[str, tuple[Path, Path]] = {}
    for split, prefix in _PREFIXES.items():
        pair = []
        for kind in ("images-idx3", "labels-idx1"):
            candidates = [folder / f"{prefix}-{kind}-ubyte{ext}" for ext in (".gz", "")]
            pair.append(next((c for c in candidates if c.is_file()), None))
        if all(pair):
            found[split] = (pair[0], pair[1])
    return found or None


class IdxReader:
    """Images held in memory; ``image(name)`` → greyscale PIL image, ``read(name)`` → PNG bytes."""

    kind = "idx"

    def __init__(self, folder: Path, arrays: dict[str, np.ndarray]) -> None:
        self.folder = folder
        self.arrays = arrays

    def _locate(self, name: str) -> np.ndarray:
        split, index = name.split("/")
        return self.arrays[split][int(index)]

    def names(self) -> list[str]:
        return [f"{split}/{i:05d}" for split, array in self.arrays.items() for i in range(len(array))]

    def dirs(self) -> list[str]:
        return []

    def image(self, name: str):
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(self._locate(name)), mode="L")

    def read(self, name: str) -> bytes:
        buffer = io.BytesIO()
        self.image(name).save(buffer, format="PNG")
        return buffer.getvalue()

    def content_id(self, name: str) -> str:
        return hashlib.sha256(self._locate(name).tobytes()).hexdigest()

    def __str__(self) -> str:
        return str(self.folder)


def open_idx(folder: Path) -> tuple[IdxReader, dict[str, dict[str, list[str]]], list[tuple[str, str]], str]:
    """Read the idx pairs in ``folder`` → (reader, {split: {class: [names]}}, skipped, layout)."""
    files = find_idx_files(folder)
    if not files or "train" not in files or "test" not in files:
        raise DatasetError(
            f"{folder}: expected train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]."
        )
    arrays: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split, (images_path, labels_path) in files.items():
        images, split_labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or split_labels.ndim != 1 or len(images) != len(split_labels):
            raise DatasetError(
                f"{folder}: {images_path.name} has shape {images.shape}, {labels_path.name} {split_labels.shape}; "
                "expected (n, H, W) images and (n,) labels."
            )
        arrays[split], labels[split] = images, split_labels
    present = sorted(set().union(*[set(np.unique(v).tolist()) for v in labels.values()]))
    fashion = "fashion" in str(folder).lower()
    if fashion and max(present) >= len(FASHION_MNIST_CLASSES):
        raise DatasetError(f"{folder}: label {max(present)} is out of range for Fashion-MNIST's 10 classes.")
    names = FASHION_MNIST_CLASSES if fashion else tuple(str(i) for i in range(max(present) + 1))
    given = {
        split: {names[k]: [f"{split}/{i:05d}" for i in np.flatnonzero(split_labels == k)] for k in present}
        for split, split_labels in labels.items()
    }
    return IdxReader(folder, arrays), given, [], "idx"
