"""Test data every clone has: tiny generated images in class folders, and where the optional real data lies.

``MR2PROBE_TEST_NO_SHARED=1`` makes the tests behave as in a clone without ``../shared/data`` (only the real-data
end-to-end tests skip then), so that this can be checked anywhere.
"""
from __future__ import annotations

import io
import os
import textwrap
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
_CIFAR_ZIP = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"


# Python source for a fresh process (the tests of probe.allocator and of the job worker): malloc_faults(size) has
# glibc's malloc allocate a block of size bytes, touches every page and frees it, once to warm up and then three
# times, and returns the minor page faults of those three. No braces: scripts add it before str.format.
MALLOC_FAULTS = textwrap.dedent(
    """
    import ctypes, resource
    _libc = ctypes.CDLL("libc.so.6")
    _libc.malloc.restype = ctypes.c_void_p
    _libc.malloc.argtypes = [ctypes.c_size_t]
    _libc.free.argtypes = [ctypes.c_void_p]

    def _cycle(size):
        block = _libc.malloc(size)
        ctypes.memset(block, 1, size)
        _libc.free(block)

    def malloc_faults(size):
        _cycle(size)  # warm: the heap reaches its size, its pages touched once
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            _cycle(size)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    """
)

def shared_cifar_zip() -> Path | None:
    """The real CIFAR-10 archive, or None when absent (or hidden with ``MR2PROBE_TEST_NO_SHARED=1``)."""
    if os.environ.get("MR2PROBE_TEST_NO_SHARED") == "1" or not _CIFAR_ZIP.is_file():
        return None
    return _CIFAR_ZIP


_MOCOV2_WRITTEN: list[Path] = []  # the first checkpoint write_mocov2_checkpoint wrote, linked to by later calls


def write_mocov2_checkpoint(path: Path, **save: object) -> Path:
    """A MoCo v2 checkpoint that fits ResNet-50 at ``path``: ``{"state_dict": {"module.encoder_q.<key>": ...}}`` of
    a random ``resnet50(weights=None)`` (~100 MB), written once per process and hard-linked (or copied) after that;
    ``save`` (torch.save's options, e.g. the legacy format) writes a new one."""
    import shutil

    import torch
    from torchvision.models import resnet50

    if _MOCOV2_WRITTEN and _MOCOV2_WRITTEN[0].is_file() and not save:
        try:
            os.link(_MOCOV2_WRITTEN[0], path)
        except OSError:
            shutil.copyfile(_MOCOV2_WRITTEN[0], path)
        return path
    state = {f"module.encoder_q.{k}": v for k, v in resnet50(weights=None).state_dict().items()}
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": state}, path, **save)
    if not save:
        _MOCOV2_WRITTEN[:] = [path]
    return path


def image_bytes(label: int, index: int, size: int = 12, fmt: str = "PNG") -> bytes:
    """A small RGB image whose colour depends on the class and whose noise depends on the index."""
    rng = np.random.default_rng(1000 * label + index)
    base = np.array([(label * 70) % 256, (label * 130 + 40) % 256, (label * 200 + 90) % 256], dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path, label: int, index: int, size: int = 12, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(label, index, size, fmt))


def make_tree(root: Path, counts: dict[str, int], splits: tuple[str, ...] = ("train", "test"),
              test_counts: dict[str, int] | None = None) -> Path:
    """root/<split>/<class>/<i>.png (or root/<class>/<i>.png when ``splits`` is empty)."""
    classes = sorted(counts)
    for split in splits or ("",):
        per_class = test_counts if (split == "test" and test_counts) else counts
        for label, name in enumerate(classes):
            for i in range(per_class[name]):
                offset = 500 if split == "test" else 0
                write_image(root / split / name / f"{i:03d}.png", label, i + offset)
    return root


def image_zip(n_train: int, n_test: int, classes: tuple[str, ...], root: str = "tiny", size: int = 32,
              extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of ``root/{train,test}/<class>/NNN.jpg|png`` (32×32 JPEGs and PNGs, alternating) plus ``extra``
    members (path inside ``root`` → bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for split, n in (("train", n_train), ("test", n_test)):
            for label, name in enumerate(classes):
                for i in range(n):
                    fmt, ext = ("JPEG", "jpg") if i % 2 == 0 else ("PNG", "png")
                    offset = 500 if split == "test" else 0
                    out.writestr(f"{root}/{split}/{name}/{i:03d}.{ext}", image_bytes(label, i + offset, size, fmt))
        for member, data in (extra or {}).items():
            out.writestr(f"{root}/{member}", data)
    return buf.getvalue()


def write_synthetic_cache(path: Path, per_class: dict[str, int], dim: int, attrs: dict, dtype: str = "float16"
                          ) -> Path:
    """A feature cache of 3 classes ``a``, ``b``, ``c`` with no extraction: Gaussian ``dim``-d features shifted by
    the label, ``per_class[split]`` rows per class in each split (drawn in the dict's order, seed 0), stored in
    ``dtype``; ``attrs`` are the cache's root attributes."""
    from feature_cache import write_cache

    rng = np.random.default_rng(0)

    def split(n):
        y = np.repeat(np.arange(3), n)
        return (rng.normal(0, 1, (len(y), dim)) + y[:, None]).astype(np.float32), y, [f"{i}.png" for i in range(len(y))]

    return write_cache(path, {name: split(n) for name, n in per_class.items()}, ["a", "b", "c"], attrs, dtype=dtype)


def gaussian_splits(num_classes: int, per_class: dict[str, int], spread: float, dim: int = 8, seed: int = 0
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (x, y)}`` for ``probe.run_probe``: ``num_classes`` Gaussian clusters of unit noise around centres
    drawn N(0, spread²) in ``dim`` dimensions, ``per_class[split]`` rows per class (drawn in the dict's order)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_classes, dim)) * spread

    def split(n):
        y = np.repeat(np.arange(num_classes), n)
        return (centers[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y

    return {name: split(n) for name, n in per_class.items()}


def first_right(labels: np.ndarray, right: list[int]):
    """One seed's ``probe.predictions.Predictions`` on ``labels`` whose first ``right[k]`` images of each class k are
    right and the rest called class 2 (class 2's called class 0), at confidence 0.9: two runs of them are paired
    test predictions whose per-class and third differences a test sets exactly."""
    from probe.predictions import Predictions

    out = labels.copy()
    for k, n in enumerate(right):
        out[np.flatnonzero(labels == k)[n:]] = 2 if k != 2 else 0
    return Predictions(labels, out[None, :], np.full(len(labels), 0.9))


LEAKY_NEAR, LEAKY_IDENTICAL = [0, 1, 2, 3, 4], [5, 6]  # test rows made copies of train rows 10.. and 20..


def leaky_splits(names: list[str]):
    """3 classes of Gaussian features (train 40, val 10, test 20 a class) whose test rows ``LEAKY_NEAR`` nearly
    duplicate train rows 10.. (features scaled and jittered, other digests) and ``LEAKY_IDENTICAL`` are train rows
    20.. (same features and digests): (data, sources ``{split}/{name}/{i}.png``, content digests)."""
    data = gaussian_splits(3, {"train": 40, "val": 10, "test": 20}, spread=1.0, dim=64, seed=3)
    rng = np.random.default_rng(0)
    x_train, x_test = data["train"][0], data["test"][0].copy()
    y_test = data["test"][1].copy()
    digests = {split: rng.integers(0, 256, (len(y), 16), dtype=np.uint8) for split, (_, y) in data.items()}
    for row in LEAKY_NEAR:  # another encoding of a train image: other bytes, features nearly the same
        x_test[row] = 1.02 * x_train[10 + row] + 0.01 * rng.normal(size=64)
        y_test[row] = data["train"][1][10 + row]
    for row in LEAKY_IDENTICAL:  # the same file
        x_test[row], y_test[row] = x_train[20 + row], data["train"][1][20 + row]
        digests["test"][row] = digests["train"][20 + row]
    data["test"] = (x_test, y_test)
    sources = {split: [f"{split}/{names[k]}/{i}.png" for i, k in enumerate(y)] for split, (_, y) in data.items()}
    return data, sources, digests
