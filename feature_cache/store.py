"""The HDF5 feature cache (schema_version 1): writer, resumable partial writer and read-only reader.

File format
-----------
One HDF5 file per (data set, encoder, preprocessing, split parameters). Strings are UTF-8; "JSON"
means a UTF-8 string attribute holding a JSON document.

Root attributes:

==================== ======== ===================================================================
name                 type     meaning
==================== ======== ===================================================================
schema_version       int      ``1``
encoder              str      encoder name as given (``effnet-lite0``, ``openclip:ARCH:WEIGHTS`` ...)
weights_sha256       str      sha256 of the weights file (of the state dict for random weights)
preprocess           JSON     ``{"resize": [H, W], "crop": null, "interpolation": "bicubic",
                              "mean": [..3], "std": [..3], "color": "RGB", "scale": "ToTensor (pixel/255)",
                              "resampler": "torchvision-tensor-antialias"}`` (the resize's implementation)
feature_kind         str      which tensor is stored: ``pooled`` (global-average-pooled) or
                              ``embedding`` (CLIP image embedding)
normalized           bool     True when features are already L2-normalised by the encoder
default_head         str      ``linear`` or ``cosine``: the head the probe should use by default
class_names          JSON     list of class names; a label is an index into it (unlabelled images,
                              ``mr2probe extract --unlabelled``: ``["(unlabelled)"]``, every label 0, every
                              image in ``/test``, ``split_params`` ``{"layout": "unlabelled"}``)
dataset_fingerprint  str      sha256 of the data set content (see ``feature_cache.fingerprint``)
test_fingerprint     str      sha256 of the content of the test split the data set gives (the same digest over
                              it alone), empty where test was carved from it; absent in older caches
fingerprint          str      sha256 of everything that decides the contents (cache identity)
created_at           str      ISO-8601 UTC time the cache was finalised
versions             JSON     ``{"torch", "timm", "open_clip", "h5py", "mr2probe"}`` versions
skipped              JSON     list of ``[source, reason]`` for files left out (corrupt, not images)
split_params         JSON     ``{"layout", "val_fraction", "test_fraction", "seed", "max_per_class"}``;
                              ``val_fraction`` is the default where the data set gives its val split (unused)
encoder_warning      str      what the encoder warned of when it extracted (random weights), or empty
data_warnings        JSON     list of what the extraction warned of the data set's files (nested or split-named
                              class folders, test images identical to train images, a file under two classes:
                              ``feature_cache.options.data_warnings``), said by every run trained on the cache; not
                              in the fingerprint; absent in older caches (read as none)
precision            str      forward-pass precision: ``fp32``, ``bf16`` or ``fp16`` (autocast); absent in
                              caches written before it was recorded (fp32 on a CPU, fp16 on CUDA)
decode               str      how image files were decoded: ``reduced-2x`` (an image at least four times the
                              resize's size reduced to at least twice it, ``feature_cache.encoders.DECODE_RULE``);
                              absent in caches written before it (every file decoded whole, read as ``full``)
==================== ======== ===================================================================

One group per split, ``/train``, ``/val``, ``/test`` (always all three; a split may have 0 rows):

- ``features``: (N, d) ``float16`` (default) or ``float32``, chunked by rows (``chunks=(min(N, 1024), d)``;
  caches extracted before the partial log was written with ``(1024, d)``), resizable along rows, no compression;
- ``labels``: (N,) ``int64`` class indices;
- ``sources``: (N,) variable-length UTF-8 strings, the path of each sample inside the data set;
- ``digests``: (N, 16) ``uint8``, the BLAKE2b digest of each sample's file bytes
  (``feature_cache.datasets.content_digest``; of its pixels for an idx data set): the same image under any name has
  the same one. Not in the fingerprint; absent in caches written before it (and in a cache resumed from a partial
  file written before it, or written by ``write_cache`` without digests).

Row i of ``features``, ``labels``, ``sources`` and ``digests`` describe the same sample; rows follow the split's
sorted source order, minus skipped files.

While extraction runs, its rows go to ``<final>.partial``, an append-only log of checksummed chunks that survives
a killed process (:mod:`feature_cache.partial`); the cache file is written from it at a temporary name and moved
onto the final name with ``os.replace`` only when every split is done, so a file with the final name is always
complete. :func:`open_cache` refuses ``*.partial`` files.
"""
from __future__ import annotations

import errno
import json
import logging
import resource
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from probe.files import orphaned_temporaries, replacing, temporary_of  # noqa: F401 (orphaned_... re-exported)
from probe.names import listed, repeated

from .datasets import CONTENT_DIGEST_SIZE, SPLITS, labelled_layout
from .errors import CacheMismatch
from .fingerprint import extractor_fingerprint

__all__ = [
    "SCHEMA_VERSION",
    "FeatureCache",
    "open_cache",
    "write_cache",
    "replacing_file",
    "orphaned_temporaries",
    "library_versions",
    "JSON_ATTRS",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
JSON_ATTRS = ("preprocess", "class_names", "versions", "skipped", "split_params", "data_warnings", "rotated")
DTYPES = ("float16", "float32")
_STR = h5py.string_dtype("utf-8")
CHUNK_ROWS = 1024
# the root attribute "<rank>-of-<world>" of one rank's shard file of a torchrun extraction (feature_cache.distributed):
# a block of each split, under the whole cache's fingerprint, which open_cache refuses to any other reader
SHARD_ATTR = "shard"


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that decide the features (stored in the ``versions`` attribute)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for key, dist in (
        ("torch", "torch"),
        ("timm", "timm"),
        ("open_clip", "open_clip_torch"),
        ("h5py", "h5py"),
        ("mr2probe", "mr2probe"),
    ):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    if out["mr2probe"] is None:
        out["mr2probe"] = "0.1.0+src"
    return out


def _encode_attr(key: str, value: Any) -> Any:
    if key in JSON_ATTRS:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None:
        return ""
    return value


def _not_extracted(path: Path, problem: str) -> CacheMismatch:
    """The error for a cache file ``path`` whose ``problem`` extract never writes."""
    return CacheMismatch(f"{path}: {problem}; the file was not written by feature_cache.extract, or is damaged.")


def _decode_attr(path: Path, key: str, value: Any) -> Any:
    """A root attribute of the cache file ``path`` as written by :func:`_encode_attr`. Raises CacheMismatch naming
    the file and the attribute for text that does not decode (a damaged ``class_names`` said only 'Expecting
    value: line 1 column 1 (char 0)'; found by the third attack round)."""
    try:
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        if key in JSON_ATTRS and isinstance(value, str):
            value = json.loads(value)
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        kind = "JSON" if key in JSON_ATTRS else "UTF-8 text"
        raise _not_extracted(path, f"the root attribute {key!r} is not valid {kind} ({exc})") from None
    if key == "class_names" and not (isinstance(value, list) and all(isinstance(name, str) for name in value)):
        raise _not_extracted(path, "the root attribute 'class_names' is not a list of class names")
    kind = _JSON_KINDS.get(key)
    if kind is not None and value is not None and not isinstance(value, kind):
        # a hand-written cache's split_params stored as a JSON string (encoded twice) crashed train with an
        # AttributeError (a scale round)
        raise _not_extracted(path, f"the root attribute {key!r} holds JSON {type(value).__name__}, not a JSON "
                                   f"{'object' if kind is dict else 'array'} (was it JSON-encoded twice?)")
    return value


# What each JSON root attribute decodes to (README "HDF5 feature cache").
_JSON_KINDS = {"preprocess": dict, "class_names": list, "versions": dict, "skipped": list, "split_params": dict,
               "data_warnings": list, "rotated": list}


def _set_attrs(node: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        node.attrs[key] = _encode_attr(key, value)


def _create_split(group: h5py.Group, num_features: int, dtype: str, rows: int = 0, digested: bool = False) -> None:
    # Resizable along rows, as every cache has been (the HDF5 partial file of earlier versions appended to it);
    # chunks of up to CHUNK_ROWS rows.
    chunk = (max(1, min(rows, CHUNK_ROWS)) if rows else CHUNK_ROWS, num_features)
    group.create_dataset("features", shape=(rows, num_features), maxshape=(None, num_features),
                         dtype=dtype, chunks=chunk)
    group.create_dataset("labels", shape=(rows,), maxshape=(None,), dtype="int64", chunks=(chunk[0],))
    group.create_dataset("sources", shape=(rows,), maxshape=(None,), dtype=_STR, chunks=(chunk[0],))
    if digested:
        group.create_dataset("digests", shape=(rows, CONTENT_DIGEST_SIZE), maxshape=(None, CONTENT_DIGEST_SIZE),
                             dtype="uint8", chunks=(chunk[0], CONTENT_DIGEST_SIZE))


def _write_split(h5: h5py.File, split: str, num_features: int, dtype: str, rows: int,
                 blocks: Iterable[tuple[Any, ...]], digested: bool = False) -> None:
    """Group ``split`` of ``rows`` rows (:func:`_create_split`), filled in order from ``blocks`` of (features,
    labels, sources[, content digests]): the one writer of :func:`write_cache`, the partial log's copy and the merge
    of shards. ``digested``: every block holds its rows' digests, kept in ``digests``."""
    group = h5.create_group(split)
    _create_split(group, num_features, dtype, rows=rows, digested=digested)
    features_out, labels_out, sources_out = group["features"], group["labels"], group["sources"]
    row = 0
    for features, labels, sources, *digests in blocks:
        end = row + len(labels)
        features_out[row:end] = features
        labels_out[row:end] = labels
        sources_out[row:end] = sources
        if digested:
            group["digests"][row:end] = digests[0]
        row = end


def write_cache(
    path: str | Path,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray, Sequence[str]]],
    class_names: Sequence[str],
    attrs: Mapping[str, Any],
    *,
    dtype: str = "float16",
    digests: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a complete cache atomically (temp file in the same folder, then ``os.replace``).

    Args:
        splits: ``{split: (features (n, d), labels (n,), sources (n,))}``, labels indices into ``class_names``
            and features that every probe trains on once stored as ``dtype`` (no NaN or infinity:
            :func:`probe.stats.unusable_rows`) (else ValueError, nothing written); missing splits are written empty.
        class_names: distinct class names (stored as the ``class_names`` attribute; a repeated one is a
            ValueError, nothing written: training refuses such a cache).
        attrs: other root attributes (see module docstring); ``schema_version``, ``class_names``,
            ``created_at`` and ``versions`` are filled in when absent.
        dtype: stored feature dtype, ``float16`` or ``float32``.
        digests: ``{split: (n, CONTENT_DIGEST_SIZE) uint8}``, each row the content digest of that split's row
            (``feature_cache.datasets.content_digest``), for every split of ``splits`` (else ValueError, nothing
            written); ``mr2probe predict`` then matches scored images to a run's training images by content, not
            by path. None: the cache keeps none, as before.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; accepted: {', '.join(SPLITS)}.")
    dims = {np.asarray(f).shape[1] for f, _, _ in splits.values() if np.asarray(f).ndim == 2}
    if len(dims) != 1:
        raise ValueError(f"all splits must have 2-D features with one width, got widths {sorted(dims)}.")
    twice = repeated([str(name) for name in class_names])
    if twice:  # written, every run on the cache refused it (run_probe's own check)
        raise ValueError(f"class_names holds {listed([repr(n) for n in twice], 5)} more than once; each class needs "
                         "its own name.")
    d = dims.pop()
    root_attrs = {
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "skipped": [],
        **attrs,
        "class_names": list(class_names),
    }
    rows = {split: len(splits[split][1]) for split in splits}
    kept = None if digests is None else _checked_digests(digests, rows)
    with replacing_file(path, needs=cache_bytes(rows, d, dtype)) as h5:
        _set_attrs(h5, root_attrs)
        for split in SPLITS:
            features, labels, sources = splits.get(split, (np.zeros((0, d)), np.zeros(0), []))
            # converts only when the dtype differs: a float16 array is written as it is, not copied
            with np.errstate(over="ignore"):  # a value past float16's range: _check_usable names it
                features = np.asarray(features, dtype=dtype)
            labels = np.asarray(labels, dtype=np.int64)
            n = features.shape[0]
            if labels.shape != (n,) or len(sources) != n:
                raise ValueError(
                    f"split {split!r}: {n} feature rows, {labels.shape[0]} labels, {len(sources)} sources."
                )
            outside = labels[(labels < 0) | (labels >= len(class_names))]
            if outside.size:  # written, such a cache was refused by every read as damaged (FeatureCache._checked)
                raise ValueError(f"split {split!r} has {outside.size:,} labels outside 0..{len(class_names) - 1} (the "
                                 f"{len(class_names)} classes of class_names), e.g. {int(outside[0])}.")
            _check_usable(features, split)
            block = (features, labels, np.asarray(list(sources), dtype=object))
            if kept is not None:
                block += (kept.get(split, np.zeros((0, CONTENT_DIGEST_SIZE), dtype=np.uint8)),)
            _write_split(h5, split, d, dtype, n, [block] if n else [], digested=kept is not None)
    return Path(path)


def _checked_digests(digests: Mapping[str, np.ndarray], rows: Mapping[str, int]) -> dict[str, np.ndarray]:
    """:func:`write_cache`'s ``digests``, each split's (rows, CONTENT_DIGEST_SIZE) uint8, one for every split of
    ``rows`` (its row counts) and no other; else ValueError naming the first that is not."""
    if set(digests) != set(rows):
        raise ValueError(f"digests must be given for each split written ({', '.join(sorted(rows))}), got "
                         f"{', '.join(sorted(digests)) or 'none'}.")
    kept = {}
    for split, value in digests.items():
        value = np.asarray(value)
        shape = (rows[split], CONTENT_DIGEST_SIZE)
        if value.dtype != np.uint8 or value.shape != shape:
            raise ValueError(f"split {split!r} digests must be a {shape} uint8 array (a content digest per row), got "
                             f"{value.dtype} of shape {value.shape}.")
        kept[split] = value
    return kept


def _check_usable(features: np.ndarray, split: str) -> None:
    """Features as stored that every probe trains on (:func:`probe.stats.unusable_rows`, the trainer's and a cache
    registration's check), else ValueError naming the split and the first row: a NaN, an infinity or a float32
    value past float16's range was written, and every run on the cache failed."""
    from probe.stats import UNUSABLE, as_tensor, unusable_rows

    bad = unusable_rows(as_tensor(features))
    if len(bad):
        raise ValueError(f"split {split!r} features hold values that are {UNUSABLE} once stored as "
                         f"{features.dtype} in {len(bad):,} row(s), e.g. row {int(bad[0])}; no cache is written.")


# Per row of a cache file beyond its features: an int64 label, a variable-length string's reference (16 bytes) and
# its heap entry (the source name); and the file's own structure. Generous: an estimate too low crashes the process.
_ROW_OVERHEAD_BYTES = 8 + 16 + 256 + CONTENT_DIGEST_SIZE
_FILE_OVERHEAD_BYTES = 1 << 20


def cache_bytes(rows: Mapping[str, int], num_features: int, dtype: str | np.dtype) -> int:
    """An upper estimate of the size of a cache file of ``rows`` rows per split (:func:`_create_split`'s layout:
    a split of more than CHUNK_ROWS rows takes whole chunks)."""
    total = _FILE_OVERHEAD_BYTES
    for n in rows.values():
        stored = n if n <= CHUNK_ROWS else -(-n // CHUNK_ROWS) * CHUNK_ROWS
        total += stored * (num_features * np.dtype(dtype).itemsize + _ROW_OVERHEAD_BYTES)
    return total


def check_free_space(folder: Path, needs: int, what: str) -> None:
    """Raise ``OSError(ENOSPC)`` when ``folder``'s disk has less than ``needs`` bytes free, ``OSError(EFBIG)`` when
    the process may write no file that large (``RLIMIT_FSIZE``, a traceback and a segmentation fault before): HDF5
    (2.0) that runs out of space while writing crashes the whole process (a segmentation fault as it closes the file;
    an operator round: a server on a full disk died mid-extraction, every request then refused), so its writers look
    first."""
    free = shutil.disk_usage(folder).free
    if free < needs:
        raise OSError(errno.ENOSPC, f"not enough disk space to write {what}: it needs about {needs / 2**20:.1f} MiB, "
                      f"{free / 2**20:.1f} MiB free on the disk of {folder}")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and limit < needs:  # the same crash at the file-size limit (ulimit -f)
        raise OSError(errno.EFBIG, f"cannot write {what}: it needs about {needs / 2**20:.1f} MiB, over this "
                      f"process's file-size limit (ulimit -f) of {limit / 2**20:.1f} MiB")


@contextmanager
def replacing_file(path: str | Path, needs: int = 0, **kwargs: Any) -> Iterator[h5py.File]:
    """A new HDF5 file written at a temporary name beside ``path`` (``kwargs`` go to ``h5py.File``) and moved onto
    ``path`` with ``os.replace`` only when the block succeeds: ``path`` is never seen half written, and a failure
    leaves what was there untouched. ``needs``: the bytes it will take (:func:`cache_bytes`), checked free first
    (:func:`check_free_space`). Written through :func:`probe.files.replacing`: synced to the disk before the rename
    and its folder after, so that a power loss leaves the old cache or the new, whole (an unsynced rename could
    outlive the data it named)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if needs:
        check_free_space(path.parent, needs, path.name)
    with replacing(path) as tmp, h5py.File(tmp, "w", **kwargs) as h5:
        yield h5


@dataclass
class FeatureCache:
    """Read-only view of a finished cache file (see module docstring for the format)."""

    path: Path
    attrs: dict[str, Any]
    split_sizes: dict[str, int]
    num_features: int

    def _attr(self, key: str) -> Any:
        try:
            return self.attrs[key]
        except KeyError:
            raise CacheMismatch(f"{self.path.name} lacks the root attribute {key!r}; it was not written by "
                                "feature_cache.extract, or is damaged.") from None

    @property
    def class_names(self) -> list[str]:
        return list(self._attr("class_names"))

    @property
    def num_classes(self) -> int:
        return len(self._attr("class_names"))

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in self.split_sizes]

    @property
    def dtype(self) -> str | None:
        """The stored features' dtype (``float16`` or ``float32``; None without a split): the fingerprint covers it,
        no root attribute records it."""
        if not self.splits:
            return None
        with self.reading(self.splits[0]) as features:
            return str(features.dtype)

    @property
    def labelled(self) -> bool:
        """False for a cache of unlabelled images (``mr2probe extract --unlabelled``: one ``test`` split whose
        images a shipped probe predicts; nothing to train or score on)."""
        return labelled_layout(self.attrs.get("split_params"))

    @property
    def layout(self) -> str | None:
        """The layout of the data set it was extracted from (``split_params["layout"]``: ``"manifest-pair"``,
        ``"split-folders"``, ...), None where the file does not record one."""
        params = self.attrs.get("split_params")
        layout = params.get("layout") if isinstance(params, dict) else None
        return layout if isinstance(layout, str) else None

    @property
    def encoder(self) -> str:
        return self._attr("encoder")

    @property
    def normalized(self) -> bool:
        return bool(self._attr("normalized"))

    @property
    def default_head(self) -> str:
        return self._attr("default_head")

    @property
    def fingerprint(self) -> str:
        return self._attr("fingerprint")

    @property
    def extractor(self) -> str | None:
        """Fingerprint of the features' extractor (encoder, weights, preprocessing, feature kind): equal for two
        caches of other images whose features a probe can share (``extractor_fingerprint``); None for a cache
        that does not record them all (one written by ``write_cache`` outside an extraction)."""
        return self._extractor()

    def _extractor(self, as_named: bool = False) -> str | None:
        keys = ("encoder", "weights_sha256", "preprocess", "feature_kind", "normalized")
        if any(key not in self.attrs for key in keys) or not isinstance(self.attrs["preprocess"], dict) \
                or not isinstance(self.attrs["encoder"], str):
            return None  # a hand-written cache's null preprocess was a TypeError in every caller (a review)
        return extractor_fingerprint(**{key: self.attrs[key] for key in keys}, as_named=as_named)

    def _group(self, h5: h5py.File, split: str) -> h5py.Group:
        if split not in self.split_sizes:
            raise KeyError(f"Unknown split {split!r}; this cache has {', '.join(self.splits)}.")
        return h5[split]

    def load(self, split: str, dtype: str | None = "float32") -> tuple[np.ndarray, np.ndarray]:
        """(features (n, d), labels int64 (n,)) of ``split``, read fully into memory.

        Args:
            dtype: ``float32`` (default), ``float16``, or None to keep the stored dtype: a float16 cache loaded
                with None takes half the memory of float32 (``probe.ProbeTrainer`` widens it per batch).
        """
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)} or None (the stored dtype), got {dtype!r}.")
        with h5py.File(self.path, "r") as h5:
            group = self._group(h5, split)
            stored = group["features"]
            # Read in the stored dtype, then convert with numpy: HDF5's own float16 → float32
            # conversion during the read is several times slower.
            raw = np.empty(stored.shape, dtype=stored.dtype)
            if stored.shape[0]:
                stored.read_direct(raw)
            features = raw.astype(dtype or raw.dtype, copy=False)
            labels = self._checked(group["labels"][()], split)
        return features, labels

    @contextmanager
    def reading(self, split: str) -> Iterator[h5py.Dataset]:
        """The stored features of ``split`` (n, d), open for the ``with`` block and read lazily: a slice reads
        only its rows, in the stored dtype. For a pass over a split too large to hold in memory (``mr2probe
        predict`` and the service's scoring read it one inference chunk at a time)."""
        with h5py.File(self.path, "r") as h5:
            yield self._group(h5, split)["features"]

    def labels(self, split: str) -> np.ndarray:
        """Class indices of ``split``, int64 (n,)."""
        with h5py.File(self.path, "r") as h5:
            return self._checked(self._group(h5, split)["labels"][()], split)

    def _checked(self, labels: np.ndarray, split: str) -> np.ndarray:
        """``labels`` as int64, each an index into ``class_names``; CacheMismatch for any other value (a damaged
        file, or one written outside this package): never read as another class, never an IndexError later."""
        stored = np.asarray(labels)  # checked as stored: a uint64 2**64 − 1 read as int64 was reported as -1
        bad = (stored < 0) | (stored >= self.num_classes)
        labels = stored.astype(np.int64, copy=False)
        if bad.any():
            raise CacheMismatch(f"{self.path.name}: split {split!r} has {int(bad.sum()):,} labels outside 0.."
                                f"{self.num_classes - 1} (its {self.num_classes} classes), e.g. {stored[bad][0]}; "
                                "the cache is damaged or was not written by feature_cache.")
        return labels

    def training_data(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{split: (features, labels)}`` of every split the cache has, in the stored dtype: the data
        ``probe.run_probe`` takes, a float16 cache at half the memory of float32 (the trainer widens each batch).
        ``mr2probe train`` and the service's jobs both read it here. Raises CacheMismatch for a cache of unlabelled
        images or for a labelled test set alone (nothing to train on)."""
        if not self.labelled:
            raise CacheMismatch(f"{self.path.name} holds unlabelled images (mr2probe extract --unlabelled): nothing "
                                "to train a probe on; `mr2probe predict RUN --features` applies a trained one.")
        if not self.split_sizes.get("train"):  # "data needs 'train' and 'test' splits; got ['test']" (a new user)
            raise CacheMismatch(f"{self.path.name} holds a labelled test set alone (no train images: test/<class>/ "
                                "folders only): nothing to train a probe on; `mr2probe predict RUN --features` "
                                "scores a trained one on it.")
        return {split: self.load(split, dtype=None) for split in SPLITS if split in self.splits}

    def training_sources(self) -> dict[str, list[str]]:
        """``{split: sources}`` of every split :meth:`training_data` gives: ``probe.run_probe``'s ``sources``
        (test's shown with failing predictions, train's and val's kept as digests to warn of scores on them)."""
        return {split: self.sources(split) for split in SPLITS if split in self.splits}

    def training_digests(self) -> dict[str, np.ndarray] | None:
        """``{split: content digests}`` of every split :meth:`training_data` gives (``probe.run_probe``'s
        ``contents``: train's and val's kept to warn of scores on the same images under other names); None where a
        split keeps none (a cache written before they were recorded)."""
        digests = {split: self.digests(split) for split in SPLITS if split in self.splits}
        return None if any(rows is None for rows in digests.values()) else digests

    def classes_without(self, split: str) -> list[str]:
        """The classes that have no sample in ``split`` (an empty list when every class has one)."""
        counts = np.bincount(self.labels(split), minlength=self.num_classes)
        return [name for name, n in zip(self.class_names, counts) if n == 0]

    def provenance(self, name: str | None = None) -> dict[str, Any]:
        """What a run records of the features it used (``probe.report.FeatureSource``): this cache's fingerprint,
        encoder and extractor, the fingerprint of its data set's content, ``name``, the cache as the caller knows
        it (a path, the service's cache id), and how its features are computed (weights, preprocessing, kind)."""
        extractor, as_named = self.extractor, self._extractor(as_named=True)
        return {"fingerprint": self.fingerprint, "encoder": self.encoder, "extractor": extractor, "cache": name,
                "extractor_as_named": None if as_named == extractor else as_named,
                "dataset": self.attrs.get("dataset_fingerprint") or None,
                "test_dataset": self.attrs.get("test_fingerprint") or None,
                "warning": self.attrs.get("encoder_warning") or None, "data_warnings": self.data_warnings,
                **{key: self.attrs.get(key) for key in ("weights_sha256", "preprocess", "feature_kind",
                                                        "normalized")},
                "test_carved": self._test_carved()}

    @property
    def data_warnings(self) -> list[str]:
        """What the extraction warned of the data set's files (the ``data_warnings`` attribute), then the files it
        could not decode (``skipped``: :func:`feature_cache.archives.undecoded_line`), each printable and at most
        :data:`MAX_ATTR_CHARS` characters; none for a cache written before the warnings were kept, but those files.
        A run on a cache that had left images out never said so."""
        from .archives import printable, undecoded_line

        said = [*(self.attrs.get("data_warnings") or []), undecoded_line(self.attrs.get("skipped") or [])]
        return [printable(text[:MAX_ATTR_CHARS]) for text in said if isinstance(text, str) and text]

    def _test_carved(self) -> float | None:
        """The share of each class carved out as test where the data set had no test split (open_dataset's split
        params), else None; None too for a value no extraction writes (a file made by hand must not fail a run's
        report)."""
        params = self.attrs.get("split_params")
        share = params.get("test_fraction") if isinstance(params, dict) and self.labelled else None
        ok = isinstance(share, (int, float)) and not isinstance(share, bool) and 0 < share < 1
        return float(share) if ok else None

    def sources(self, split: str) -> list[str]:
        """Path of every sample of ``split`` inside the data set."""
        with h5py.File(self.path, "r") as h5:
            return [s.decode() if isinstance(s, bytes) else s for s in self._group(h5, split)["sources"][()]]

    def digests(self, split: str) -> np.ndarray | None:
        """The content digest of every sample of ``split`` (n, CONTENT_DIGEST_SIZE) uint8, row-aligned with its
        sources; None for a cache that keeps none (written before they were recorded), or whose digests are not one
        per row (a file changed by hand: never matched against the wrong rows)."""
        with h5py.File(self.path, "r") as h5:
            group = self._group(h5, split)
            digests = group.get("digests")
            if digests is None or digests.shape[0] != self.split_sizes[split]:
                return None
            return digests[()]

    def row_digests(self, split: str, rows) -> dict[int, tuple[str, bytes]]:
        """The source and content digest of each of ``rows`` (row indices) that lies in ``split``, read for those
        rows alone: a gallery of 20 images of a 1.28M-image split reads 20 of each (:meth:`sources` read them all);
        {} for a cache that keeps no digests, or not one per row (as :meth:`digests`)."""
        with h5py.File(self.path, "r") as h5:
            group, size = self._group(h5, split), self.split_sizes[split]
            digests = group.get("digests")
            wanted = sorted({int(r) for r in rows if 0 <= int(r) < size})  # h5py reads rows given in order
            if digests is None or digests.shape[0] != size or not wanted:
                return {}
            sources, found = group["sources"][wanted], digests[wanted]
        return {r: (s.decode() if isinstance(s, bytes) else s, bytes(d)) for r, s, d in zip(wanted, sources, found)}


MAX_ATTR_CHARS = 4096  # a text root attribute (an encoder name, a warning); the API takes encoder names of 1,024
# Root attributes that are text (README "HDF5 feature cache").
_TEXT_ATTRS = ("encoder", "weights_sha256", "feature_kind", "default_head", "dataset_fingerprint", "test_fingerprint",
               "fingerprint", "created_at", "precision", "decode", "encoder_warning")


def _external(dataset: h5py.Dataset) -> bool:
    """Whether ``dataset`` is virtual or keeps its raw data in other files (HDF5 external storage)."""
    return bool(getattr(dataset, "is_virtual", False)) or dataset.id.get_create_plist().get_external_count() > 0


def _odd_attr(attrs: dict[str, Any]) -> str | None:
    """What of the root attributes a cache's reader would trip on later, or None: a ``normalized`` array failed a
    job with numpy's "truth value of an array" message, an unknown ``default_head`` was blamed on the request, and a
    100,000-character encoder name filled every listing and report (an attack round)."""
    from probe.registry import HEADS

    from .archives import UNPRINTABLE_CHARACTERS

    normalized = attrs.get("normalized", False)
    if not (isinstance(normalized, (bool, np.bool_)) or (isinstance(normalized, (int, np.integer)) and normalized in (0, 1))):
        return f"the root attribute 'normalized' is {str(normalized)[:40]!r}, not true or false"
    if attrs.get("default_head", "linear") not in HEADS:
        return (f"the root attribute 'default_head' is {str(attrs['default_head'])[:40]!r}, not a head of this "
                f"version ({', '.join(HEADS)})")
    long = next((key for key in (*_TEXT_ATTRS, "preprocess") if len(_text_of(attrs.get(key))) > MAX_ATTR_CHARS), None)
    if long is not None:  # a 3 MB preprocess was copied into every run's report.json (an attack round)
        return f"the root attribute {long!r} is over {MAX_ATTR_CHARS:,} characters"
    odd = next((key for key in _TEXT_ATTRS if UNPRINTABLE_CHARACTERS.search(str(attrs.get(key) or ""))), None)
    # an encoder name with an escape sequence and a text-direction control reached reports raw (an attack round)
    return None if odd is None else f"the root attribute {odd!r} holds control or text-direction characters"


def _text_of(value: Any) -> str:
    """A root attribute as the text it takes in a report: JSON for an object, the text itself for text."""
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


def _linked_members(h5: h5py.File) -> list[str]:
    """The members of the splits that are links (soft, external), virtual datasets or datasets stored in other files
    (HDF5 external storage): they read data outside the file, past the service's data root (an external-storage
    cache read a file outside it, and one pointing at a FIFO stalled the service: an attack round), and a virtual
    one whose source is gone reads as zeros, which a probe trained on silently (an attack round)."""
    found = []
    for split in SPLITS:
        group = h5.get(split, getlink=True)
        if group is None:
            continue
        if not isinstance(group, h5py.HardLink):
            found.append(f"the group {split}")
            continue
        for name in ("features", "labels", "sources", "digests"):
            link = h5[split].get(name, getlink=True)
            if link is not None and (not isinstance(link, h5py.HardLink) or (
                    isinstance(h5[split][name], h5py.Dataset) and _external(h5[split][name]))):
                found.append(f"{split}/{name}")
    return found


def _odd_dtype(name: str, member: h5py.Dataset) -> bool:
    """Whether a member's type is one no reader takes though its kind is the format's: features wider than 8 bytes
    or not in the machine's byte order, names that are not strings (variable-length integers, object references)."""
    dtype = member.dtype
    if name == "features":
        return dtype.itemsize > 8 or not dtype.isnative
    return name == "sources" and dtype.kind == "O" and h5py.check_string_dtype(dtype) is None


def _malformed_split(h5: h5py.File, split: str) -> str | None:
    """What of a split is not the format's (features a 2-D float dataset, labels a 1-D integer dataset, sources a 1-D
    string dataset, one per row), or None: a group in their place, 2-D labels, float labels or integer names were
    registered and failed later with a 500 (a review)."""
    group = h5[split]
    if not isinstance(group, h5py.Group):
        return f"{split} is not a group"
    kinds = {"features": (2, "f"), "labels": (1, "iu"), "sources": (1, "OSU")}
    for name, (ndim, dtype_kinds) in kinds.items():
        member = group.get(name)
        if member is None:
            return f"{split}/{name} is missing"
        if not isinstance(member, h5py.Dataset):
            return f"{split}/{name} is not a dataset"
        if member.ndim != ndim or member.dtype.kind not in dtype_kinds or _odd_dtype(name, member):
            # float128 features passed and every scoring route answered 500 (torch has no such type); big-endian
            # features and integer-array names passed and every job on them failed (attack rounds)
            return f"{split}/{name} is a {member.ndim}-d {member.dtype} array"
    digests = group.get("digests")
    if digests is not None and not (isinstance(digests, h5py.Dataset) and digests.dtype == np.uint8
                                    and digests.shape[1:] == (CONTENT_DIGEST_SIZE,)):
        shape = digests.shape if isinstance(digests, h5py.Dataset) else "not a dataset"
        return f"{split}/digests is {shape}, not ({CONTENT_DIGEST_SIZE}-byte) uint8 rows"
    rows = {name: group[name].shape[0] for name in kinds}
    if len(set(rows.values())) != 1:  # each named: "have 5, 15 rows" left which had which (an attack round)
        return f"{split}'s rows differ: " + ", ".join(f"{n:,} {name}" for name, n in rows.items())
    return None


def open_cache(path: str | Path, *, shard: bool = False) -> FeatureCache:
    """Open a finished cache read-only; with ``shard``, a finished shard file of a torchrun extraction too (its merge).

    Raises:
        FileNotFoundError: no such file.
        CacheMismatch: a folder, not a cache, an unfinished ``*.partial`` file or temporary copy, a shard file
            (:data:`SHARD_ATTR`) or another schema version.
    """
    path = Path(path)
    if path.name.endswith(".partial"):
        raise CacheMismatch(f"{path} is an unfinished extraction (*.partial); run the extraction again to resume it.")
    copy_of = temporary_of(path)
    if copy_of is not None:  # a kill while the cache was written at its temporary name left it: read as a cache (a
        # review round), half written or never moved onto its name
        raise CacheMismatch(f"{path} is the unfinished temporary copy of {copy_of} that a killed extraction left; "
                            f"open {copy_of} itself, or run the extraction again to write it.")
    if path.is_dir():
        raise CacheMismatch(f"{path} is a folder, not a cache file: name the .h5 file itself.")
    if path.exists() and not path.is_file():  # a device or FIFO: "does not exist" misled (an attack round)
        raise CacheMismatch(f"{path} is not a regular file (a device, FIFO or socket): name the .h5 cache file.")
    if not path.is_file():
        raise FileNotFoundError(f"cache file {path} does not exist.")
    try:
        with h5py.File(path, "r") as h5:
            # every attribute read before any is decoded: an exception raised while h5py's attrs.items() generator
            # was suspended left h5py's global lock held by that generator, which the traceback kept alive, and
            # the next h5py call of any thread waited forever: the service hung on every route (an attack round)
            names = list(h5.attrs)
            raw = {key: h5.attrs[key] for key in names}
            outside = _linked_members(h5)
            wrong = next(filter(None, (_malformed_split(h5, s) for s in SPLITS if s in h5)), None)
            shapes = {s: tuple(h5[s]["features"].shape) for s in SPLITS if s in h5}
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:  # not HDF5; a split without features
        raise CacheMismatch(f"{path} is not a readable HDF5 feature cache ({exc}).") from None
    if outside:
        raise CacheMismatch(f"{path}: {outside[0]} is a link or a virtual dataset, not data of the file itself; a "
                            "feature cache holds its own data (mr2probe extract writes no links).")
    if wrong:
        raise CacheMismatch(f"{path} is malformed: {wrong}; the file was not written by feature_cache.extract.")
    attrs = {key: _decode_attr(path, key, value) for key, value in raw.items()}
    wrong = next((key for key in _TEXT_ATTRS if key in attrs and not isinstance(attrs[key], str)), None)
    if wrong:  # an integer fingerprint crashed every listing of the service's caches (an attack round)
        raise _not_extracted(path, f"the root attribute {wrong!r} is not text")
    wrong = _odd_attr(attrs)
    if wrong:
        raise _not_extracted(path, wrong)
    if any(len(shape) != 2 for shape in shapes.values()):
        raise CacheMismatch(f"{path} is incomplete or malformed: features that are not (rows, width) arrays.")
    sizes = {s: int(shape[0]) for s, shape in shapes.items()}
    width = {int(shape[1]) for shape in shapes.values()}
    if "schema_version" not in attrs:  # "has schema_version None" said nothing of what the file is (a new-user round)
        raise CacheMismatch(f"{path} is an HDF5 file but not an mr2probe feature cache (it has no schema_version "
                            "attribute); `mr2probe extract` writes one.")
    version = attrs.get("schema_version")
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)) or version != SCHEMA_VERSION:
        # an array compared as a truth value was a 500 (an attack round)
        raise CacheMismatch(
            f"{path} has schema_version {attrs.get('schema_version')!r}; this version reads {SCHEMA_VERSION}."
        )
    if "complete" in attrs or len(width) != 1 or 0 in width:  # no feature at all: no probe (an attack round)
        raise CacheMismatch(f"{path} is incomplete or malformed.")
    if SHARD_ATTR in attrs and not shard:  # half the images under the whole cache's fingerprint: 'reused' (a round)
        raise CacheMismatch(f"{path} is shard {str(attrs[SHARD_ATTR])[:40]} of an unfinished torchrun extraction, not "
                            "a finished cache: run the same torchrun command with as many processes to merge it.")
    return FeatureCache(path, attrs, sizes, width.pop())
