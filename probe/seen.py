"""The images a run trained and selected on, kept as digests of their paths (``seen_sources.npz`` in its run
directory), so that scoring its probe elsewhere can say which of the scored images it has seen.

Two extractions of one data set (another seed, another validation fraction, a folder without train/test folders
split at random) give caches with other fingerprints whose splits share images: scored on such a cache's test
split, a probe read 100 % on images that were all its training images, without a word (a new-user round). A
cache's sources are the images' paths inside their data set, so within one data set (the same
``dataset_fingerprint``) the same path is the same image.

Each split's sources are kept as sorted, unique 64-bit BLAKE2b digests: 8 bytes an image (10 MB for 1.28M), and
the paths themselves stay out of the run directory. A path is taken below the folders every path of its cache shares
(:func:`common_folder`: a zip made with its top folder, ``data/train/cat/0.png``, names the folder's
``train/cat/0.png``), so the same images zipped or unzipped have the same keys; runs written before that keep their
whole paths (``relative`` False).
"""
from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SEEN_FILE", "SEEN_SPLITS", "SeenSources", "common_folder", "source_digests"]

logger = logging.getLogger(__name__)

SEEN_FILE = "seen_sources.npz"
SEEN_SPLITS = ("train", "val")  # what the probe trained on, and what chose its hyper-parameters and thirds


def source_digests(sources: Iterable[str]) -> np.ndarray:
    """Sorted unique uint64 digests of the paths ``sources`` (BLAKE2b, 8 bytes; a path that is not valid UTF-8
    keeps its bytes through ``surrogateescape``)."""
    digests = np.fromiter((int.from_bytes(hashlib.blake2b(str(s).encode("utf-8", "surrogateescape"),
                                                          digest_size=8).digest(), "little") for s in sources),
                          dtype=np.uint64)
    return np.unique(digests)


def common_folder(paths: Iterable[str]) -> str:
    """The leading folders all ``paths`` share, with its trailing '/' ('data/' when every path starts 'data/…'; ''
    when none is shared). The common prefix of the smallest and the largest path is every path's."""
    low = high = None
    for path in paths:
        low = path if low is None or path < low else low
        high = path if high is None or path > high else high
    if low is None:
        return ""
    shared = os.path.commonprefix([low, high])
    return shared[:shared.rfind("/") + 1]


@dataclass
class SeenSources:
    """Each of :data:`SEEN_SPLITS`' sources as :func:`source_digests`, below their cache's :func:`common_folder`
    where ``relative`` (whole paths in runs written before it)."""

    digests: dict[str, np.ndarray]
    relative: bool = True

    @classmethod
    def of(cls, sources: Mapping[str, Iterable[str]], shared: str = "") -> SeenSources:
        """The digests of ``sources`` (train and val) below ``shared``, the :func:`common_folder` of every split of
        their cache."""
        return cls({split: source_digests(_below(sources[split], shared)) for split in SEEN_SPLITS
                    if split in sources})

    def save(self, run_dir: str | Path) -> None:
        """Written whole or not at all (a temporary file renamed): a cut-off write left a file np.load failed on."""
        path = Path(run_dir) / SEEN_FILE
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **self.digests, relative=np.array(self.relative))
        tmp.replace(path)

    @classmethod
    def load(cls, run_dir: str | Path) -> SeenSources | None:
        """The run's digests; None where it stored none (a run before them, sources unknown) or the file cannot be
        read (damaged: the scores then stand without the check, and the log says so)."""
        path = Path(run_dir) / SEEN_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls({split: np.asarray(data[split], dtype=np.uint64) for split in SEEN_SPLITS
                            if split in data.files}, bool(data["relative"]) if "relative" in data.files else False)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # EOFError: an empty file
            logger.warning("%s cannot be read (%s): scores on other caches go without the seen-images check",
                           path, exc)
            return None

    def overlap(self, sources: Iterable[str], shared: str = "") -> dict[str, int]:
        """How many of ``sources`` (each counted once) each split holds: ``{"train": n, "val": m}``; ``shared``:
        the :func:`common_folder` of every split of their cache."""
        given = source_digests(_below(sources, shared) if self.relative else sources)
        return {split: int(np.isin(given, digests, assume_unique=True).sum())
                for split, digests in self.digests.items()}


def _below(paths: Iterable[str], shared: str) -> Iterable[str]:
    return (path[len(shared):] if shared and path.startswith(shared) else path for path in paths)
