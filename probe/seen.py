"""The images a run trained and selected on, kept as digests of their paths (``seen_sources.npz`` in its run
directory), so that scoring its probe elsewhere can say which of the scored images it has seen.

Two extractions of one data set (another seed, another validation fraction, a folder without train/test folders
split at random) give caches with other fingerprints whose splits share images: scored on such a cache's test
split, a probe read 100 % on images that were all its training images, without a word (a new-user round). A
cache's sources are the images' paths inside their data set, so within one data set (the same
``dataset_fingerprint``) the same path is the same image.

Each split's sources are kept as sorted, unique 64-bit BLAKE2b digests: 8 bytes an image (10 MB for 1.28M), and
the paths themselves stay out of the run directory.
"""
from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SEEN_FILE", "SEEN_SPLITS", "SeenSources", "source_digests"]

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


@dataclass
class SeenSources:
    """Each of :data:`SEEN_SPLITS`' sources as :func:`source_digests`."""

    digests: dict[str, np.ndarray]

    @classmethod
    def of(cls, sources: Mapping[str, Iterable[str]]) -> SeenSources:
        return cls({split: source_digests(sources[split]) for split in SEEN_SPLITS if split in sources})

    def save(self, run_dir: str | Path) -> None:
        """Written whole or not at all (a temporary file renamed): a cut-off write left a file np.load failed on."""
        path = Path(run_dir) / SEEN_FILE
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **self.digests)
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
                            if split in data.files})
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # EOFError: an empty file
            logger.warning("%s cannot be read (%s): scores on other caches go without the seen-images check",
                           path, exc)
            return None

    def overlap(self, sources: Iterable[str]) -> dict[str, int]:
        """How many of ``sources`` (each counted once) each split holds: ``{"train": n, "val": m}``."""
        given = source_digests(sources)
        return {split: int(np.isin(given, digests, assume_unique=True).sum())
                for split, digests in self.digests.items()}
