"""Feature caches the service did not extract: a finished cache file registered where it lies, under the data root.

An engineer extracts on another machine (``mr2probe extract``, a torchrun-sharded extraction on a GPU box) and
brings the file to the service: ``POST /api/caches {"path": ...}`` records it as a cache of the registered data
set it was extracted from (the data set's content fingerprint, which the file records as ``dataset_fingerprint``),
so thumbnails and failure galleries show its images, and pipelines and probe jobs train on it like on a cache of
their own. The file stays the user's: a deletion removes the row, never the file (``app.removal``). A file that
changed since its registration (another fingerprint), or whose path now leads elsewhere (a symlink swapped in),
is refused where it is used (:func:`cache_file`), never read as the features it was registered as.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.names import listed

from .datasets import PathOutsideRoot, check_under_root, resolves_elsewhere

if TYPE_CHECKING:
    from .store import Store

__all__ = ["register_cache", "cache_file", "cache_problem", "REGISTERED"]

REGISTERED = "path"  # caches.source of a file registered by path ("extraction": written by a job of the service)
_SHOWN = 5  # class names quoted in a refusal


def _dataset_of(store: Store, cache: Any) -> dict[str, Any]:
    """The registered data set ``cache`` was extracted from: the oldest with its content fingerprint and classes."""
    from feature_cache import DatasetError

    fingerprint = cache.attrs.get("dataset_fingerprint") or None
    if fingerprint is None:
        raise DatasetError(f"{cache.path.name} does not record the data set it was extracted from "
                           "(dataset_fingerprint): it was not written by mr2probe extract")
    classes = cache.class_names
    for row in store.rows("SELECT * FROM datasets WHERE fingerprint = ? ORDER BY rowid", (fingerprint,)):
        if list(row["class_names"]) == classes:
            return row
    shown = listed(classes, _SHOWN)
    kind = ("unlabelled images: register their folder or archive with \"unlabelled\": true"
            if not cache.labelled else f"{len(classes)} classes: {shown}")
    raise DatasetError(f"{cache.path.name} was extracted from a data set that is not registered here (content "
                       f"fingerprint {fingerprint[:12]}…, {kind}): register the folder or archive it was extracted "
                       "from first (POST /api/datasets, the same files), then the cache")


MAX_ROWS = 50_000_000  # images in one split of a registered cache (ImageNet-21k has 14 M)
# Feature width of a registered cache: the widest encoders give 1,024–4,096 (ViT-bigG 1,664); a 58 KB compressed file
# declaring 4,000,000 took a job to 3.5 GB and another's adapter to a 65 GB allocation (an attack round).
MAX_FEATURES = 65_536
_FEATURE_CHUNK_BYTES = 64 << 20  # features read at a time when a registration checks they are finite (by bytes: a
# block of 65,536 rows at the widest width allowed was 32 GiB; a review), in whole chunks: one gzip chunk of 1 GiB
# was decompressed again for every block read (32 s for a 4.9 MB file, with the other registrations waiting; an
# attack round). mr2probe extract writes chunks of 1,024 rows.
# The band of rows whose chunks a reader decompresses to read any one of them (chunks[0] rows × the whole width,
# whatever the chunks' width: h5py's own chunking of 14 M × 1,664 float32 makes 182 MB bands, which pass)
MAX_ROW_BAND_BYTES = 512 << 20
MAX_COMPRESSION = 20  # stored bytes of features may be this many times fewer than they hold: image features
# compress by well under 2×; a 6 MB file declaring 20 M rows of constants cost minutes of every scoring request


_NAMES_CHUNK = 100_000  # image names decoded at a time when a registration checks them


def _unwritten(data: Any) -> str | None:
    """How an HDF5 dataset holds less data on disk than its shape claims, or None: an unwritten one reads as zeros
    (a 209 KB file claimed 10⁹ rows and its labels were read into 7.45 GB; an attack round). A compressed one
    stores fewer bytes than it holds, so there every chunk its shape spans must be stored (a 49 KB gzip file
    declaring 5 M rows with one chunk written was registered, and one GET read 1.5 GB of zeros; an attack round)."""
    import math

    stored, full = _stored_and_held(data)
    name = data.name.rsplit("/", 1)[-1]
    filtered = data.id.get_create_plist().get_nfilters() > 0  # any filter: gzip, lzf, scale-offset (a scale-offset
    if data.size and (stored == 0 or (not filtered and stored < full)):  # file read as incomplete; an attack round)
        return f"{name} ({stored:,} bytes stored of {full:,})"
    if data.size and data.chunks is not None:
        spanned = math.prod(-(-extent // chunk) for extent, chunk in zip(data.shape, data.chunks))
        written = data.id.get_num_chunks()
        if written < spanned:
            return f"{name} ({written:,} chunks stored of the {spanned:,} its {data.shape[0]:,} rows span)"
    return None


def _stored_and_held(data: Any) -> tuple[int, int]:
    """Bytes an HDF5 dataset stores on disk and bytes it holds once read."""
    return data.id.get_storage_size(), data.size * data.dtype.itemsize


def _unreadable_storage(features: Any) -> str | None:
    """How a features dataset's storage would cost a reader far more than its file does, or None: a band of chunk
    rows over ``MAX_ROW_BAND_BYTES`` once decompressed, or more than ``MAX_COMPRESSION``× fewer bytes stored than
    held."""
    from feature_cache.store import CHUNK_ROWS  # the chunks an extraction writes, suggested

    row_bytes = features.shape[1] * features.dtype.itemsize
    band = None if features.chunks is None else features.chunks[0] * row_bytes  # decompressed to read any row
    if band is not None and band > MAX_ROW_BAND_BYTES:
        return (f"chunks of {features.chunks[0]:,} rows: reading any row decompresses {band:,} bytes (at most "
                f"{MAX_ROW_BAND_BYTES:,}; repack it with chunks of fewer rows, e.g. h5repack -l "
                f"CHUNK={CHUNK_ROWS}x{features.shape[1]})")
    stored, full = _stored_and_held(features)
    if full > _FEATURE_CHUNK_BYTES and stored * MAX_COMPRESSION < full:
        return (f"features stored in {stored:,} bytes for {full:,}: {full / max(stored, 1):,.0f}× compressed, "
                "which features of images never are")
    return None


def _nonfinite_rows(features: Any) -> int | None:
    """The first row of an HDF5 features dataset that no probe trains on (``probe.stats.unusable_rows``: NaN, an
    infinity or a squared norm past float32's range; 1e300 in float64 became inf in the trainer), read a block of
    whole chunks at a time, or None: such a cache was registered and every job on it failed, resumable, after its
    queue wait (an attack round)."""
    import torch

    from probe.stats import unusable_rows

    chunk = features.chunks[0] if features.chunks is not None else 1
    rows = max(chunk, _FEATURE_CHUNK_BYTES // max(1, features.shape[1] * features.dtype.itemsize) // chunk * chunk)
    for start in range(0, features.shape[0], rows):
        bad = unusable_rows(torch.from_numpy(features[start:start + rows]))
        if len(bad):
            return start + int(bad[0])
    return None


def _check_split(cache: Any, split: str) -> None:
    """A split's data stored, before any of it is read (a 36 KB file claiming 5 M rows took 656 MB before its 422;
    a review); then its features finite, its labels class indices (``FeatureCache.labels``) and its image names
    text, read a chunk at a time. Raises CacheMismatch."""
    import h5py

    from feature_cache import CacheMismatch
    from probe.stats import UNUSABLE

    with h5py.File(cache.path, "r") as h5:
        group = h5[split]
        members = ("features", "labels", "sources", *(["digests"] if "digests" in group else []))
        missing = next(filter(None, (_unwritten(group[name]) for name in members)), None)
        if missing:
            raise CacheMismatch(f"{cache.path.name}: split {split!r} has {missing}: the cache is incomplete")
        costly = _unreadable_storage(group["features"])
        if costly:
            raise CacheMismatch(f"{cache.path.name}: split {split!r} has {costly}")
        row = _nonfinite_rows(group["features"])
        if row is not None:
            raise CacheMismatch(f"{cache.path.name}: split {split!r} has features that are {UNUSABLE}, row "
                                f"{row:,} first: no probe trains on them; extract them again")
        names = group["sources"]
        for start in range(0, names.shape[0], _NAMES_CHUNK):
            [name.decode() if isinstance(name, bytes) else str(name) for name in names[start:start + _NAMES_CHUNK]]
    cache.labels(split)


def _check_readable(cache: Any) -> dict[str, int]:
    """Rows per split, once every split's data is stored, its labels are class indices and every row names its
    image: what a job and a failure gallery read. A file damaged otherwise (names that are not UTF-8) is a
    CacheMismatch too: it was a 500 (an attack round). ``open_cache`` checked the members' kinds and row counts."""
    from feature_cache import CacheMismatch

    if cache.num_features > MAX_FEATURES:
        raise CacheMismatch(f"{cache.path.name} holds {cache.num_features:,} features per image, over the "
                            f"{MAX_FEATURES:,} a registered cache may hold")
    for split in cache.splits:
        rows = cache.split_sizes[split]
        if rows > MAX_ROWS:
            raise CacheMismatch(f"{cache.path.name}: split {split!r} claims {rows:,} images, over the {MAX_ROWS:,} a "
                                "registered cache may hold")
        try:
            _check_split(cache, split)
        except CacheMismatch:  # said already: not wrapped again in "cannot be read (CacheMismatch: ...)"
            raise
        except (KeyError, OSError, ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
            raise CacheMismatch(f"{cache.path.name}: split {split!r} cannot be read ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); the cache is damaged") from None
    if not cache.split_sizes.get("test"):
        raise CacheMismatch(f"{cache.path.name} has no test image: nothing to score a probe on")
    return _split_counts(cache)


def _split_counts(cache: Any) -> dict[str, int]:
    """Images per split, as a cache row records them (``counts``)."""
    from feature_cache.datasets import SPLITS

    return {split: int(cache.split_sizes.get(split, 0)) for split in SPLITS}


def _differs(cache: Any, row: dict[str, Any]) -> str | None:
    """How a file that carries a cache's fingerprint holds other data than the cache registered (its classes, its
    width, its images per split, its data set), or None: a copied fingerprint took over a cache and its runs (an
    attack round)."""
    for what, theirs, ours in (("classes", cache.class_names, list(row["class_names"])),
                               ("feature width", int(cache.num_features), row["num_features"]),
                               ("images per split", _split_counts(cache),
                                {k: int(v) for k, v in dict(row["counts"]).items()})):
        if ours is not None and theirs != ours:
            return f"other {what} ({theirs} against {ours})"
    return None


def register_cache(store: Store, path: Path, data_root: Path | None) -> tuple[dict[str, Any], bool]:
    """Record the finished cache file ``path`` (resolved, under the data root); returns the row and whether it is
    new. A cache of the same fingerprint (the same features) is the cache already there: the first whose file still
    holds them, else the first of them, now read at ``path`` (a file moved, or replaced since, registered again:
    its runs keep their cache; "register it again" gave back the broken row, a new-user round). A file that now
    holds other features than the cache registered at its path is another cache; that one stays refused.

    Raises:
        feature_cache.CacheMismatch: not a finished cache of this schema, or damaged (422).
        feature_cache.DatasetError: its data set is not registered here (422).
    """
    from feature_cache import CacheMismatch, open_cache

    stamp = file_stamp(path)  # before it is read: a write during the check leaves another stamp, refused later
    cache = open_cache(path)
    # read whole every time: a file replaced at its path by one of the same fingerprint, classes and counts holding
    # NaN features passed a shortcut for "this very file" (a review)
    counts = _check_readable(cache)
    same = store.rows("SELECT * FROM caches WHERE fingerprint = ? ORDER BY rowid", (cache.fingerprint,))
    usable = next((row for row in same if cache_problem(row, data_root) is None), None)
    # this very file registered before: checked again just now, it keeps its cache (and is stamped: a row from
    # before stamps, or one refused since its file was touched, kept its refusal or lost to another; a review)
    here = next((row for row in same if row["path"] == str(path) and row.get("source") == REGISTERED), None)
    if same:  # the same features registered already
        known = here or usable or same[0]  # its readable cache, else the first, read at this path from now on
        # a 16-d file carrying an 8-d cache's fingerprint got that cache (a review); one over other classes took a
        # cache and its runs over (an attack round)
        differs = _differs(cache, known)
        if differs is None and usable is None and _dataset_of(store, cache)["id"] != known["dataset_id"]:
            differs = "the images of another data set"
        if differs:
            raise CacheMismatch(f"{path.name} carries the fingerprint of cache {known['id']!r} but holds {differs}: "
                                "it is not that cache's file")
        if usable is not None and known is not here:
            return usable, False
        return store.move_cache(known["id"], str(path), REGISTERED, stamp), False
    dataset = _dataset_of(store, cache)
    row = store.add_cache(dataset_id=dataset["id"], encoder=cache.encoder, path=str(path),
                          fingerprint=cache.fingerprint, num_features=int(cache.num_features),
                          class_names=cache.class_names, counts=counts, job_id=None, source=REGISTERED,
                          same_path=False, stamp=stamp, extractor=cache.extractor, layout=cache.layout)
    return row, True


def file_stamp(path: Path | str) -> str:
    """A file's size and modification time (ns) as one string: what a registered cache's check of its values
    (NaN, infinities, ...) holds for. A file written over in place, its fingerprint attribute kept, passed every
    later check and failed its jobs after their queue wait (an attack round)."""
    info = Path(path).stat()
    return f"{info.st_size}:{info.st_mtime_ns}"


def cache_problem(row: dict[str, Any], data_root: Path | None) -> str | None:
    """Why the file of a cache row cannot be read as it (:func:`cache_file`'s refusal), or None: what the API lists
    beside each cache, so that a picker can leave out one whose file moved or changed (a new-user round)."""
    from feature_cache import CacheMismatch

    try:
        cache_file(row, data_root)
    except (PathOutsideRoot, CacheMismatch, FileNotFoundError) as exc:
        return str(exc)
    except Exception as exc:  # anything else a damaged file raises: one file never fails the whole listing
        return f"cache {row['id']!r}: its file cannot be read ({type(exc).__name__})"
    return None


def cache_file(row: dict[str, Any], data_root: Path | None) -> str:
    """The file of a cache row, to read. A cache the service extracted is its own file; one registered by path is
    checked first, as a data set registered by path is (``app.datasets.check_in_place``), under ``data_root`` (the
    server's now: a root narrowed or unset since left its file read; an attack round).

    Raises:
        PathOutsideRoot: its path lies outside ``data_root`` (``app.datasets.check_under_root``), or now resolves
            elsewhere (a symlink swapped in for it or a folder above it; 403).
        feature_cache.CacheMismatch: the file there now holds other features (another fingerprint; 422).
        FileNotFoundError: the file is gone.
    """
    from feature_cache import CacheMismatch, open_cache

    stored = Path(row["path"])
    if row.get("source") != REGISTERED:
        if not stored.is_file():
            raise FileNotFoundError(f"cache {row['id']!r}: its file is gone from the server")
        return row["path"]
    again = ("register it again where it is now (POST /api/caches with its path: the same features keep this cache "
             "and its runs)")
    check_under_root(f"cache {row['id']!r}", stored, data_root, "its file")
    if resolves_elsewhere(stored):
        raise PathOutsideRoot(f"cache {row['id']!r} is no longer where it was registered: its file (or a folder "
                              f"above it) is now a symlink; {again}")
    if not stored.is_file():
        raise FileNotFoundError(f"cache {row['id']!r}: its file {stored.name} is no longer where it was registered; "
                                f"{again}")
    seen_as = _unchanged_key(row, stored)
    if seen_as in _VERIFIED:  # this file, untouched since it passed every check below
        return row["path"]
    cache = open_cache(stored)
    differs = _differs(cache, row)  # the same fingerprint copied onto other data (an attack round)
    if cache.fingerprint != row["fingerprint"] or differs:
        now = (f"features of fingerprint {cache.fingerprint[:12]}…" if cache.fingerprint != row["fingerprint"]
               else f"its fingerprint on {differs}")
        raise CacheMismatch(f"cache {row['id']!r}: its file {stored.name} changed since it was registered (it now "
                            f"holds {now}, registered {str(row['fingerprint'])[:12]}…): put the registered file "
                            "back, or register the new one (another cache)")
    if row.get("stamp") and file_stamp(stored) != row["stamp"]:  # the same features, written over in place
        raise CacheMismatch(f"cache {row['id']!r}: its file {stored.name} was written since it was registered (its "
                            f"size or modification time changed): {again}, which checks its values again")
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED.add(seen_as)
    return row["path"]


# Registered files that passed cache_file's checks, by _unchanged_key: the caches listing checked every registered
# file on every call, opening each (7.5 ms apiece on the full CIFAR-10 cache); one untouched since is not opened
# again. Failures are never kept: a file is checked again until it passes.
_VERIFIED: set[tuple] = set()
_VERIFIED_MAX = 4096


def _unchanged_key(row: dict[str, Any], path: Path) -> tuple:
    """What stays equal while a registered file is untouched: the row it is checked against, and the file's device,
    inode, size, modification and change times. The change time (ctime) moves on every write and every setting of
    the modification time, which a user cannot set back: a file written over with its mtime restored is checked
    again."""
    info = path.stat()
    return (row["id"], row["path"], row["fingerprint"], row.get("stamp"), info.st_dev, info.st_ino, info.st_size,
            info.st_mtime_ns, info.st_ctime_ns)
