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
import math
from pathlib import Path

import numpy as np

from .archives import ArchiveLimits, open_regular
from .errors import DatasetError

__all__ = ["FASHION_MNIST_CLASSES", "IdxReader", "read_idx", "find_idx_files", "open_idx", "idx_record"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IDX_FILES = {"train": "train", "test": "t10k"}  # each split's file name prefix


def idx_record(name: str) -> tuple[str, int] | None:
    """``(split, record)`` of an image name an idx folder gives (``test/08923``: record 8923 of t10k-images), or
    None for any other name (a file's path in class folders or a manifest)."""
    split, _, record = name.partition("/")
    return (split, int(record)) if split in IDX_FILES and record.isdigit() and record.isascii() else None


def _check_expansion(path: Path, nbytes: int, limits: ArchiveLimits) -> None:
    """Refuse a gzip-compressed idx file whose header declares more bytes than an archive member may expand
    to (the archives' rule, :class:`ArchiveLimits`), before any of it is decompressed."""
    compressed = max(path.stat().st_size, 1)
    if nbytes > limits.max_total_bytes:
        raise DatasetError(f"{path}: the idx header declares {nbytes} bytes, over the limit of "
                           f"{limits.max_total_bytes} (ArchiveLimits.max_total_bytes).")
    if limits.expands_too_much(nbytes, compressed):
        raise DatasetError(f"{path}: the idx header declares {nbytes} bytes, {nbytes / compressed:.0f}x the "
                           f"{compressed}-byte file (limit {limits.max_ratio:.0f}x, ArchiveLimits.max_ratio): "
                           "possible decompression bomb.")


def read_idx(path: Path, limits: ArchiveLimits | None = None) -> np.ndarray:
    """Parse one idx file (optionally gzip-compressed) into a uint8 array.

    The header is read first: a compressed file declaring more than ``limits`` allow is refused unread, and
    the data is read up to the declared size (a file with fewer or more bytes is refused).
    """
    compressed = path.suffix == ".gz"
    try:  # a regular file only: a FIFO swapped in after the files were found would block the read (attack round)
        with open_regular(path, path.name) as raw_file, (gzip.GzipFile(fileobj=raw_file) if compressed
                                                         else raw_file) as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or not 1 <= magic[3] <= 4:
                raise DatasetError(f"{path}: not an unsigned-byte idx file (magic {magic.hex() or 'missing'}).")
            dims = handle.read(4 * magic[3])
            if len(dims) < 4 * magic[3]:
                raise DatasetError(f"{path}: idx header truncated.")
            shape = tuple(int(v) for v in np.frombuffer(dims, dtype=">i4"))
            if min(shape) < 0:
                raise DatasetError(f"{path}: idx header gives a negative dimension {shape}.")
            nbytes = math.prod(shape)
            if compressed:
                _check_expansion(path, nbytes, limits or ArchiveLimits())
            elif nbytes > path.stat().st_size:  # a read of the declared size would allocate it first
                raise DatasetError(f"{path}: idx header says {shape} = {nbytes} bytes, file has "
                                   f"{path.stat().st_size - 4 - len(dims)}.")
            raw = handle.read(nbytes)
            extra = len(handle.read(1 << 20))  # bounded: a few trailing bytes are counted, a flood is not
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read idx file ({exc}).") from exc
    if len(raw) != nbytes or extra:
        has = f"at least {nbytes + extra}" if extra == 1 << 20 else str(len(raw) + extra)
        raise DatasetError(f"{path}: idx header says {shape} = {nbytes} bytes, file has {has}.")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def find_idx_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    """{split: (images, labels)} for the idx files in ``folder``, or None when there are none."""
    found: dict[str, tuple[Path, Path]] = {}
    for split, prefix in IDX_FILES.items():
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


def open_idx(
    folder: Path, limits: ArchiveLimits | None = None
) -> tuple[IdxReader, dict[str, dict[str, list[str]]], list[tuple[str, str]], str]:
    """Read the idx pairs in ``folder`` → (reader, {split: {class: [names]}}, skipped, layout); ``limits`` bound
    what a gzip-compressed file may expand to (defaults: :class:`ArchiveLimits`)."""
    files = find_idx_files(folder)
    if not files or "train" not in files or "test" not in files:
        raise DatasetError(
            f"{folder}: expected train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]."
        )
    arrays: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split, (images_path, labels_path) in files.items():
        images, split_labels = read_idx(images_path, limits), read_idx(labels_path, limits)
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
    # only the classes a split holds: an empty list read as an empty class folder, and a test file without one
    # class refused ("class folder(s) '2' (in 'test') contain no images; ... remove the folder"; a review) where
    # class folders without a test folder of one class are read, and warned of
    given = {
        split: {names[k]: [f"{split}/{i:05d}" for i in np.flatnonzero(split_labels == k)]
                for k in present if (split_labels == k).any()}
        for split, split_labels in labels.items()
    }
    return IdxReader(folder, arrays), given, [], "idx"
