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

Where the run's cache kept each image's content digest (a BLAKE2b of its file's bytes, ``feature_cache``'s
``digests``), its train and val images are kept by content too (``contents``: the first 8 bytes of each, sorted,
unique): scored images are then matched by their bytes alone (:meth:`SeenSources.same_content`), whatever their
names, where the scored cache keeps digests as well; new images named like the training ones (``img_000.jpg``) were said to be
training images by their paths (a new-user round).

The same files arranged in another layout (a data set's train/ and test/ folders copied into one flat folder of class
folders, or images moved from one split folder to another) keep their class folder and file name and lose or change
only their leading split folder: :meth:`SeenSources.moved` counts those, so that 283 of 359 scored images that the
probe trained or selected on no longer go without a word (a new-user round).
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import atomic_write

__all__ = ["SEEN_FILE", "SEEN_SPLITS", "SPLIT_FOLDERS", "SeenSources", "common_folder", "content_keys",
           "repeated_rests", "row_keys", "source_digests"]


SEEN_FILE = "seen_sources.npz"
_CONTENT = "content_"  # before a split's name: its content keys in SEEN_FILE
SEEN_SPLITS = ("train", "val")  # what the probe trained on, and what chose its hyper-parameters and thirds
# The folder names a data set's split folders may have, any case (→ the split; feature_cache reads data sets by
# them): one definition for the reader and for :meth:`SeenSources.moved`, which sets them aside to match files.
SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}
# each spelled as moved() tries it: a data set's split folders are read in any case (feature_cache), TRAIN/ and
# TEST/ as often as Train/
_SPELLINGS = sorted({spelling for f in SPLIT_FOLDERS for spelling in (f, f.capitalize(), f.upper())})


def source_digests(sources: Iterable[str]) -> np.ndarray:
    """Sorted unique uint64 digests of the paths ``sources`` (BLAKE2b, 8 bytes; a path that is not valid UTF-8
    keeps its bytes through ``surrogateescape``)."""
    return np.unique(_digests(sources))


def content_keys(digests: np.ndarray) -> np.ndarray:
    """Sorted unique uint64 keys of content digests ((n, k ≥ 8) uint8 rows: the first 8 bytes of each)."""
    return np.unique(row_keys(digests))


def row_keys(digests: np.ndarray) -> np.ndarray:
    """(n,) uint64: each content digest's key (its first 8 bytes), in order, repeats kept."""
    rows = np.asarray(digests, dtype=np.uint8)
    if not len(rows):
        return np.zeros(0, dtype=np.uint64)
    return np.ascontiguousarray(rows.reshape(len(rows), -1)[:, :8]).view("<u8").ravel().astype(np.uint64)


def _digests(paths: Iterable[str]) -> np.ndarray:
    """Each path's digest (see :func:`source_digests`), in order, repeats kept."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(str(s).encode("utf-8", "surrogateescape"),
                                                       digest_size=8).digest(), "little") for s in paths),
                       dtype=np.uint64)


def repeated_rests(paths: Iterable[str], shared: str) -> np.ndarray:
    """The digests of the paths below a split folder (:func:`_rest`) that more than one of ``paths`` (every path of
    a cache, ``shared`` its :func:`common_folder`) has: a data set numbering each split's files afresh has
    ``train/cat/0.png`` and ``test/cat/0.png``, other images, which :meth:`SeenSources.moved` must not call one."""
    rests = _digests(rest for rest in (_rest(path) for path in _below(paths, shared)) if rest)
    digests, counts = np.unique(rests, return_counts=True)
    return digests[counts > 1]


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
    # :func:`repeated_rests` of every path of the run's own cache, test included: names its data set holds under
    # two split folders, other images (each split numbered afresh), which :meth:`moved` must not match: its own
    # test/cat/0.png, scored as another data set, read as train/cat/0.png "trained on" (a review). Runs written
    # before it (no tails either) are not matched by moved() at all.
    ambiguous: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    # the digests of train's and val's paths below their leading split folder (:func:`_tails`): a name that is
    # neither one of these nor one of the paths themselves can match nothing in :meth:`moved`, which tries only the
    # others under each split folder's spellings (16 digests a scored image: 200,000 images of a cache of another
    # data set took 8 s of the seen-images check beside 0.8 s of scoring; an attack round). None in runs before it,
    # which moved() then leaves alone.
    tails: np.ndarray | None = None
    # train's and val's :func:`content_keys`, where the run's cache kept content digests; None otherwise (and in runs
    # before them): scored images are then matched by path alone
    contents: dict[str, np.ndarray] | None = None

    @classmethod
    def of(cls, sources: Mapping[str, Iterable[str]], shared: str = "", every: Iterable[str] | None = None,
           contents: Mapping[str, np.ndarray] | None = None) -> SeenSources:
        """The digests of ``sources`` (train and val) below ``shared``, the :func:`common_folder` of every split of
        their cache, and its ``ambiguous`` names from ``every`` path of that cache (None: those of ``sources``);
        ``contents``: each split's content digests, row-aligned with ``sources`` (None: not kept)."""
        sources = {split: list(paths) for split, paths in sources.items()}
        every = [path for paths in sources.values() for path in paths] if every is None else every
        kept = {split: list(_below(sources[split], shared)) for split in SEEN_SPLITS if split in sources}
        known = contents is not None and all(split in contents for split in kept)
        return cls({split: source_digests(paths) for split, paths in kept.items()},
                   ambiguous=repeated_rests(every, shared),
                   tails=source_digests(_tails(p for paths in kept.values() for p in paths)),
                   contents={split: content_keys(contents[split]) for split in kept} if known else None)

    def save(self, run_dir: str | Path) -> None:
        """Written whole or not at all, synced to the disk (:func:`probe.files.atomic_write`): a cut-off write left a
        file np.load failed on, and a fixed ``seen_sources.npz.tmp``, renamed unsynced, could be empty after a power
        loss."""

        def write(name: str) -> None:
            with open(name, "wb") as f:
                np.savez(f, **self.digests, relative=np.array(self.relative), ambiguous=self.ambiguous,
                         **({} if self.tails is None else {"tails": self.tails}),
                         **{f"{_CONTENT}{split}": keys for split, keys in (self.contents or {}).items()})

        atomic_write(Path(run_dir) / SEEN_FILE, write)

    @classmethod
    def load(cls, run_dir: str | Path) -> SeenSources | None:
        """The run's digests; None where it stored none (a run before them, sources unknown, or a probe shipped
        without the file). A file that cannot be read, or whose arrays are not those :meth:`save` writes (sorted
        unique uint64 digests, a boolean ``relative``), is a ValueError naming it: the scores on other caches went
        without the seen-images check, their words about training images dropped silently (an attack round)."""
        path = Path(run_dir) / SEEN_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # EOFError: an empty file
            raise ValueError(f"{SEEN_FILE} cannot be read (damaged or cut short? {exc}); remove it to score "
                             "without the check of the images the run trained on") from None
        try:
            return cls._of_stored(stored)
        except ValueError as exc:
            raise ValueError(f"{SEEN_FILE} is not as a run writes it ({exc}); remove it to score without the check "
                             "of the images the run trained on") from None

    @classmethod
    def _of_stored(cls, stored: dict[str, np.ndarray]) -> SeenSources:
        """:meth:`load`'s arrays checked as :meth:`save` writes them; ValueError naming the first that is not."""
        splits = [split for split in SEEN_SPLITS if split in stored]
        if not splits:
            raise ValueError(f"it holds none of {', '.join(SEEN_SPLITS)}")
        relative = stored.get("relative", np.array(False))  # runs before it kept whole paths
        if relative.shape != () or relative.dtype != np.bool_:
            raise ValueError("'relative' is not one true or false")
        kept = [name for name in ("ambiguous", "tails", *(f"{_CONTENT}{split}" for split in splits))
                if name in stored]
        for name in (*splits, *kept):
            keys = stored[name]
            if keys.ndim != 1 or keys.dtype != np.uint64 or (len(keys) > 1 and not (keys[1:] > keys[:-1]).all()):
                raise ValueError(f"{name!r} is not a list of sorted, unique 64-bit digests")
        contents = [f"{_CONTENT}{split}" in stored for split in splits]
        if any(contents) and not all(contents):
            raise ValueError("it keeps the contents of some of its splits only")
        return cls({split: stored[split] for split in splits}, bool(relative),
                   stored.get("ambiguous", np.zeros(0, dtype=np.uint64)), stored.get("tails"),
                   {split: stored[f"{_CONTENT}{split}"] for split in splits} if all(contents) else None)

    def overlap(self, sources: Iterable[str], shared: str = "") -> dict[str, int]:
        """How many of ``sources`` (each counted once) each split holds: ``{"train": n, "val": m}``; ``shared``:
        the :func:`common_folder` of every split of their cache."""
        given = source_digests(_below(sources, shared) if self.relative else sources)
        return {split: int(np.isin(given, digests, assume_unique=True).sum())
                for split, digests in self.digests.items()}

    def same_content(self, digests: np.ndarray) -> dict[str, int] | None:
        """How many of the scored images (their content digests, (n, 16) uint8; each content counted once) hold the
        bytes of one of each split's images; None where the run kept no contents (match by path then)."""
        if self.contents is None:
            return None
        given = content_keys(digests)
        return {split: int(np.isin(given, keys, assume_unique=True).sum()) for split, keys in self.contents.items()}

    def moved(self, sources: Iterable[str], shared: str, repeated: np.ndarray) -> dict[str, int]:
        """How many of ``sources`` (each counted once) that :meth:`overlap` does not find each split holds with
        another leading split folder or none: the same class folder and file name, ``cat/0.png`` scored and
        ``train/cat/0.png`` trained on, or ``test/cat/0.png`` and ``val/cat/0.png`` (split folders: :data:`SPLIT_FOLDERS`,
        any case; tried lower-case, capitalised and upper-case); ``repeated``:
        :func:`repeated_rests` of the scored cache, left out, as are the run's own ``ambiguous`` names and a source
        matching more than one of the run's paths (its data set repeats the name under two split folders: other
        images). Runs keeping whole paths (``relative`` False) match none, nor do runs written before ``tails`` and
        ``ambiguous`` were stored: without the names their own data set repeats across split folders, their own
        test/cat/0.png would read as train/cat/0.png, a false alarm where before there was none."""
        if not self.relative or self.tails is None:  # whole paths: their first folder is the data set's own
            return {split: 0 for split in self.digests}
        given = list(dict.fromkeys(_below(sources, shared)))
        digests = _digests(given)
        found = np.zeros(len(given), dtype=bool)
        for seen in self.digests.values():
            found |= np.isin(digests, seen)
        rests = [None if hit else _rest(path) for path, hit in zip(given, found)]
        named = _digests(rest or "" for rest in rests)
        free = np.isin(named, np.union1d(repeated, self.ambiguous), invert=True)
        # a name the run holds under no split folder nor as a whole path matches nothing
        free &= np.isin(named, np.union1d(self.tails, np.concatenate([np.zeros(0, np.uint64), *self.digests.values()])))
        rows, keys = [], []
        for row in np.flatnonzero(free).tolist():  # the rows left, not a Python test of every row's numpy bool
            path, rest = given[row], rests[row]
            if rest:
                tried = {rest, *(f"{folder}/{rest}" for folder in _SPELLINGS)} - {path}
                rows += [row] * len(tried)
                keys += tried
        rows, keys = np.asarray(rows, dtype=np.int64), _digests(keys)
        hits = {split: np.isin(keys, seen) for split, seen in self.digests.items()}
        # one image, one match: where the run's own splits hold its class folder and file name under two split
        # folders (train/cat/0.png and val/cat/0.png, each split numbered afresh) it is neither, and was counted as
        # both (4 + 4 of 4 test images never trained on; a review)
        matched = np.bincount(rows[np.logical_or.reduce([*hits.values(), np.zeros(len(keys), dtype=bool)])],
                              minlength=len(given)) == 1
        return {split: int(matched[rows[hit]].sum()) for split, hit in hits.items()}


def _rest(path: str) -> str | None:
    """``path`` below its leading split folder (one of :data:`SPLIT_FOLDERS`, any case), or whole when it has none;
    None when no class folder is left to match (a split folder holds class folders, as ``feature_cache`` reads it)."""
    head, _, rest = path.partition("/")
    if head.lower() in SPLIT_FOLDERS and "/" in rest:
        return rest
    return path if "/" in path else None


def _tails(paths: Iterable[str]) -> Iterable[str]:
    """Each of ``paths`` under a split folder without it (:func:`_rest`): every name :meth:`SeenSources.moved` can
    find such a path by, under one of the folder's spellings."""
    return (rest for path in paths if (rest := _rest(path)) not in (None, path))


def _below(paths: Iterable[str], shared: str) -> Iterable[str]:
    return (path[len(shared):] if shared and path.startswith(shared) else path for path in paths)
