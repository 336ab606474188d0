"""Run a frozen encoder over a labelled image set once and cache the features (or reuse the cache).

Pipeline: one DataLoader decodes and resizes images to uint8 tensors (``Encoder.transform``) and stacks
them into channels-last batches (:func:`collate_images`); its batches never straddle two splits, and one pool
of worker processes serves every split (:func:`resolve_workers`). Each batch is normalised and encoded under
``torch.inference_mode`` at the encoder's precision (autocast, channels-last; see
:mod:`feature_cache.encoders`): on a CPU encoder by the worker that decoded it, with one thread
(:class:`EncodingCollate`; by the main process when there are no workers), on CUDA by the main process while
the workers decode the next batches (it queues a batch's forward and copy back, then writes the previous batch:
:func:`_queue_encoding`). The main process appends every batch, in order, to ``<final>.partial``
(one chunk = one batch), recording progress and flushing after every chunk, and polls ``should_stop`` before each. A
restarted job resumes after the last written chunk; the finished file is moved onto its final name with
``os.replace``, so a crash never leaves a cache that looks complete. With ``tune_allocator`` (what the commands
and the service ask for; a library call's default leaves the caller's process alone), glibc keeps freed memory
during extraction instead of unmapping it every batch (:mod:`probe.allocator`), and hands it back at the end.

Before the cache is finalised, a class whose every image of ``train`` (or of ``test``) failed to
decode raises :class:`~feature_cache.errors.DatasetError` naming the classes (and the partial file
is removed): a probe cannot learn or be scored on a class that has no features.

Cache identity is :func:`~feature_cache.fingerprint.cache_fingerprint`: in ``cache_dir`` the file is
``<encoder-slug>-<fingerprint[:16]>.h5``; an explicit ``out`` path is reused only when its stored
fingerprint matches, and otherwise refused with :class:`~feature_cache.errors.CacheMismatch`. A
``bf16`` / ``fp16`` request also reuses the ``fp32`` cache of the same request when there is one (fp32
features are the reference the lower precisions approximate); an ``fp32`` request never reuses a
lower-precision cache.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import logging
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from probe.allocator import keep_freed_memory, release_freed_memory, worker_init
from probe.files import exclusive
from probe.names import listed
from .archives import DECODE_FAILURE, UNREAD_IMAGE, is_link_or_special
from .datasets import CONTENT_DIGEST_SIZE, SPLITS, LabelledImages, Sample, open_dataset
from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_VAL_FRACTION, MAX_BATCH_SIZE, MAX_WORKERS
from .encoders import DECODE_RULE, PRECISIONS, Encoder, create_encoder, resolve_precision
from .errors import CacheMismatch, DatasetChanged, DatasetError, ExtractionBusy, ExtractionCancelled, FileChanged
from .fingerprint import FULL_DECODE, cache_fingerprint, extractor_name
from .options import data_warnings
from .partial import PartialCache, _locked
from .store import SCHEMA_VERSION, library_versions, open_cache

__all__ = ["ExtractResult", "extract", "plan_extraction", "ExtractionPlan", "discard_partial", "check_decodable",
           "resolve_workers", "shard_path", "remove_stale_shards", "collate_images", "EncodingCollate",
           "CUDA_DECODE_WORKERS", "CPU_WORKERS_MIN_IMAGES",
           "MAX_WORKERS", "CPU_WORKER_MEMORY", "available_memory", "MAX_BATCH_SIZE", "check_batch_size",
           "cpu_batch_memory", "skipped_summary", "ROTATED", "rotated_note", "rotated_lines",
           "rotated_of"]

logger = logging.getLogger(__name__)

# The reason of a file listed when the extraction opened its data set (its content counted in the cache's fingerprint)
# and gone when it was read, or read with other bytes (FileChanged): the data set changed under the extraction, which
# stops (_ChunkWriter), never skipping the file nor encoding other content than the fingerprint counts
FILE_GONE = "gone since the data set was opened"
FILE_CHANGED = "changed since the data set was opened"
# The note of an image encoded with an EXIF orientation other than 1 (a phone's portrait or turned photo): its pixels
# are read as stored (datasets.to_rgb), so the encoder, and the dashboard's previews, see it sideways or upside down
ROTATED = "EXIF orientation not applied"
_EXIF_ORIENTATION = 0x0112


def rotated_note(sources: list[str], examples: int = 3) -> str:
    """One line for the images of a cache that carry an EXIF orientation its extraction did not apply (the cache's
    ``rotated`` attribute, ``ExtractResult.rotated``), naming up to ``examples``; empty when none does."""
    if not sources:
        return ""
    many = len(sources) != 1
    named = ", ".join(sources[:examples]) + (", ..." if len(sources) > examples else "")
    return (f"{len(sources)} image{'s' * many} of the cache carr{'y' if many else 'ies'} an EXIF orientation (a "
            f"phone's portrait or turned photo) that is not applied: the encoder saw {'them' if many else 'it'} as "
            f"stored, sideways or upside down, as the dashboard's previews show {'them' if many else 'it'} "
            f"({named}); to have them read upright, rotate their pixels (e.g. exiftran -ai, mogrify -auto-orient) "
            "and extract again")


def rotated_lines(rotated: list[str]) -> list[str]:
    """The note printed after an extraction (``mr2probe extract``, torchrun's command) on the cache's images with an
    EXIF orientation not applied (``ExtractResult.rotated``): the same whether the cache was written, resumed, reused
    or merged from shards."""
    return [f"note: {rotated_note(rotated)}"] if rotated else []


def rotated_of(cache) -> list[str]:
    """The sources a finished cache notes as :data:`ROTATED` (its ``rotated`` attribute; none in a cache written
    before it)."""
    return list(cache.attrs.get("rotated") or [])


def skipped_summary(skipped, examples: int = 3) -> str:
    """One line for the files an extraction skipped ((source, reason) pairs), naming up to ``examples`` of those
    that failed to decode, e.g. "18 files skipped: 5 failed to decode ('cat/a.jpg', 'cat/b.jpg', 'dog/c.jpg', ...),
    13 non-image or metadata files"; empty when none was."""
    if not skipped:
        return ""
    # each name quoted, as datasets' skipped summary quotes them (escaped already, archives.printable): unquoted, a
    # client message read 'train/Cat /x.png' as a name and a server path ('train/Cat <server path>', app.messages)
    failed = [f"'{source}'" for source, reason in skipped if reason.startswith(DECODE_FAILURE)]
    parts = []
    if failed:
        named = ", ".join(failed[:examples]) + (", ..." if len(failed) > examples else "")
        parts.append(f"{len(failed)} failed to decode ({named})")
    # links and special files by their reason: "1 non-image or metadata file" hid a skipped symlink (an attack round)
    links = [(source, reason) for source, reason in skipped if is_link_or_special(reason)]
    if links:
        named = ", ".join(f"'{source}' ({reason})" for source, reason in links[:examples])
        parts.append(f"{len(links)} unsafe or unreadable link{'s' * (len(links) != 1)} or special file"
                     f"{'s' * (len(links) != 1)} ({named}{', ...' if len(links) > examples else ''})")
    unread = [f"'{source}'" for source, reason in skipped if reason.startswith(UNREAD_IMAGE)]
    if unread:  # an iPhone's .HEIC photos counted among "non-image or metadata files" (a new-user round)
        named = ", ".join(unread[:examples]) + (", ..." if len(unread) > examples else "")
        parts.append(f"{len(unread)} image{'s' * (len(unread) != 1)} in a format not read, to convert to JPEG or "
                     f"PNG ({named})")
    other = len(skipped) - len(failed) - len(links) - len(unread)
    if other:
        parts.append(f"{other} non-image or metadata file{'s' * (other != 1)}")
    return f"{len(skipped)} file{'s' * (len(skipped) != 1)} skipped: {', '.join(parts)}"


_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when the thread that made it ends


def _worker_start(_worker_id: int, *, parent: int, tune_allocator: bool) -> None:
    """DataLoader ``worker_init_fn``: the allocator settings (``probe.allocator.worker_init``), and on Linux the
    worker ended when its parent dies. A server killed with SIGKILL mid-extraction left its forked workers alive,
    holding its listening socket and the data directory's job lock: no server could start again until they were
    killed by hand (an operator round)."""
    if tune_allocator:
        worker_init(_worker_id)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the workers end with the DataLoader, as before
        return
    if os.getppid() != parent:  # the parent died before the line above: nothing would signal this worker
        os._exit(1)


@dataclass(frozen=True)
class ExtractResult:
    """What :func:`extract` did.

    Attributes:
        path: the finished cache file.
        fingerprint: the cache fingerprint (also the ``fingerprint`` root attribute).
        reused: True when an existing cache was returned without encoding anything.
        skipped: (source, reason) of every file left out.
        counts: rows per split in the cache.
        encoded: images encoded by this call (0 when reused; less than the total after a resume).
        rotated: the sources of the cache's images that carry an EXIF orientation other than 1, which is not
            applied (:func:`rotated_note`): the cache's ``rotated`` attribute, the same whether this call encoded
            them, resumed or reused the cache (empty for a cache written before the attribute).
        discarded: why this call discarded the resumable ``<path>.partial`` file it found and encoded every image
            again (``PartialCache.discarded``: ``could not be read (REASON)``, ``held N images of another
            request``), or None.
    """

    path: Path
    fingerprint: str
    reused: bool
    skipped: list[tuple[str, str]]
    counts: dict[str, int]
    encoded: int = 0
    rotated: list[str] = field(default_factory=list)
    discarded: str | None = None


@dataclass
class ExtractionPlan:
    """The resolved request: data, encoder, final path and the root attributes of the cache.

    ``reusable`` lists other (path, fingerprint) caches that answer the request too (the fp32 cache of
    a bf16 / fp16 request), tried after ``path`` in order.
    """

    data: LabelledImages
    encoder: Encoder
    path: Path
    fingerprint: str
    attrs: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float16"
    reusable: tuple[tuple[Path, str], ...] = ()
    named_by_fingerprint: bool = False  # the files are ``cache_dir``'s, named by fingerprint (not an ``out`` path)

    @property
    def partial_path(self) -> Path:
        """The resumable file written while extraction runs (renamed onto :attr:`path` when done)."""
        return self.path.with_name(self.path.name + ".partial")


class _ImageDataset(Dataset):
    """Decodes and transforms samples; a file that fails to decode yields ``ok=False`` and the reason.

    ``samples`` holds the remaining samples of every split, one after the other.
    """

    def __init__(self, data: LabelledImages, samples: list[Sample], transform: Callable, size: int,
                 decode_size: tuple[int, int] | None = None) -> None:
        self.data, self.samples, self.transform, self.size = data, samples, transform, size
        self.decode_size = decode_size  # the plan's DECODE_RULE: files decode down to the transform's decode_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            image, digest = self.data.load_with_digest(sample, self.decode_size)
            return self.transform(image), True, ROTATED if _rotated(image) else "", digest
        except FileNotFoundError as exc:  # removed or moved since the data set was listed: not a decode failure
            reason = f"{FILE_GONE}: {exc}"
        except FileChanged as exc:  # rewritten since: its features are not those of the content fingerprinted
            reason = f"{FILE_CHANGED}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any decode failure skips the file, never the job
            reason = f"{DECODE_FAILURE}: {exc}"
        return torch.zeros(3, self.size, self.size, dtype=torch.uint8), False, reason[:300], _NO_DIGEST


def _rotated(image) -> bool:
    """Whether a decoded image carries an EXIF orientation other than 1 (0 and a missing tag: none). EXIF that does
    not parse counts as none: the image decoded, and is encoded as stored all the same."""
    try:
        return image.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1)
    except Exception:  # noqa: BLE001 - damaged EXIF never costs an image that decoded
        return False


_NO_DIGEST = bytes(CONTENT_DIGEST_SIZE)  # the digest of a file that failed to decode (no row is written for it)


def collate_images(items: list[tuple[torch.Tensor, bool, str, bytes]]
                   ) -> tuple[torch.Tensor, torch.Tensor, list[str], np.ndarray]:
    """DataLoader ``collate_fn`` of :class:`_ImageDataset`: (images (n, 3, H, W) uint8 in channels-last memory,
    ok (n,) bool, reasons, content digests (n, CONTENT_DIGEST_SIZE) uint8).

    The transform's images are (3, H, W) views of height × width × channel memory (what PIL decodes and
    torchvision's uint8 resize keeps), so they are stacked in that order, one copy of contiguous bytes per
    image, and the batch is handed on as the matching channels-last view. The default collation stacks them
    channel-first, a transposing copy of every image, and the encoder's channels-last normalisation then
    transposes them back: 0.12–0.14 → 0.02 ms per 224² image for the collation and 0.29–0.32 → 0.14–0.17 ms
    for the normalisation (64-image batches, 2 threads).
    """
    images, ok, reasons, digests = zip(*items)
    hwc = torch.stack([image.permute(1, 2, 0) for image in images])
    rows = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(items), CONTENT_DIGEST_SIZE)
    return hwc.permute(0, 3, 1, 2), torch.tensor(ok, dtype=torch.bool), list(reasons), rows


@contextmanager
def _exclusive(final: Path):
    """Hold an exclusive lock on ``<final>.lock`` so two processes never write the same partial file
    (:func:`probe.files.exclusive`: removed on exit, released by a killed process).

    Raises :class:`ExtractionBusy` at once when another process holds it.
    """
    lock = final.with_name(final.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)

    def busy(owner: str) -> ExtractionBusy:
        return ExtractionBusy(f"{final} is being extracted by {owner}; wait for it to finish (it will then be reused).")

    with ExitStack() as stack:
        try:
            stack.enter_context(exclusive(lock, busy))
        except OSError as exc:  # named the lock file, which the user never gave (torchrun's --out /proc/x.h5)
            raise type(exc)(exc.errno, exc.strerror, str(final)) from None
        yield


def _remove_orphaned_copies(final: Path) -> None:
    """Remove the temporary copies of ``final`` (``.<name>.<pid>-<hex>.tmp``, as large as the cache) that an extraction
    killed while it copied its partial file into ``final`` left, their writer gone; called under ``final``'s lock.
    The service's start-up sweep found them in its data directory, but beside a CLI ``--out`` each kill left one for
    good (a crash round)."""
    from probe.files import remove_orphaned_temporaries

    for tmp in remove_orphaned_temporaries(final):
        logger.warning("removed %s: a copy of %s that a killed extraction did not finish", tmp, final.name)


def shard_path(final: Path, rank: int, world_size: int) -> Path:
    """The cache file of ``rank``'s shard of a torchrun extraction into ``final`` (:mod:`feature_cache.distributed`)
    with ``world_size`` processes (written through ``<shard>.partial``)."""
    return final.with_name(f"{final.name}.shard{rank}-of-{world_size}.h5")


def _shard_files(final: Path) -> list[tuple[Path, int]]:
    """(file, world size) of every shard file of ``final``, finished (``.h5``) or not (``.h5.partial``)."""
    pattern = re.compile(rf"{re.escape(final.name)}\.shard\d+-of-(\d+)\.h5(\.partial)?")
    found = [(path, pattern.fullmatch(path.name)) for path in final.parent.glob(f"{glob.escape(final.name)}.shard*")]
    return sorted((path, int(match[1])) for path, match in found if match and path.is_file())


def remove_stale_shards(final: str | Path) -> list[Path]:
    """Remove the shard files (finished or ``.partial``) of the finished cache ``final`` that runs killed part-way
    left, of any number of processes: with ``final`` finished, every run reuses it and none resumes them. A
    ``.partial`` file a process holds open is kept. Call it under ``final``'s lock. Returns the files removed."""
    removed = []
    for path, size in _shard_files(Path(final)):
        if path.suffix == ".partial":
            try:
                _locked(path).close()
            except ExtractionBusy:  # written right now
                continue
        path.unlink(missing_ok=True)
        removed.append(path)
        logger.warning("removed %s: a shard of an unfinished %d-process extraction of %s, which is finished now "
                       "(no run resumes from it)", path, size, Path(final).name)
    return removed


def discard_partial(final: str | Path) -> bool:
    """Remove the resumable ``<final>.partial`` file and the ``<final>.lock`` file of an extraction into ``final``.

    Nothing is removed while an extraction holds the lock (it owns the partial file now).

    Returns:
        True when removed (or nothing was there), False when an extraction is running.
    """
    final = Path(final)
    try:
        with _exclusive(final):  # removes the lock file on exit
            final.with_name(final.name + ".partial").unlink(missing_ok=True)
    except ExtractionBusy:
        return False
    return True


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:48] or "encoder"


def _fingerprint(data: LabelledImages, encoder: Encoder, dtype: str, precision: str, decode: str) -> str:
    spec = encoder.spec
    return cache_fingerprint(
        dataset=data.fingerprint,
        encoder=spec.name,
        weights_sha256=encoder.weights_sha256,
        preprocess=spec.preprocess(),
        feature_kind=spec.feature_kind,
        normalized=spec.normalized,
        split_params=data.params,
        dtype=dtype,
        schema_version=SCHEMA_VERSION,
        precision=precision,
        decode=decode,
    )


def plan_extraction(
    data: str | Path | LabelledImages,
    encoder: str | Encoder,
    cache_dir: str | Path | None,
    *,
    device: str = "auto",
    precision: str | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    max_per_class: int | None = None,
    out: str | Path | None = None,
    dtype: str = "float16",
    limits: Any = None,
) -> ExtractionPlan:
    """Open the data set, build the encoder, compute the fingerprint and the final path.

    ``precision`` builds a named encoder (default ``auto``); with a built encoder it must agree with the
    encoder's own precision (None: take the encoder's).
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}.")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if out is None and cache_dir is None:
        raise ValueError("give cache_dir (a folder, files named by fingerprint) or out (a .h5 path).")
    if out is None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():  # before the data and encoder: a
        # bare "[Errno 17] File exists" came from the lock's mkdir once both were ready
        raise NotADirectoryError(f"cache_dir {cache_dir} is a file, not a folder: give a folder (its caches are named "
                                 "by fingerprint) or out=PATH.h5.")
    if not isinstance(data, LabelledImages):
        data = open_dataset(data, val_fraction=val_fraction, seed=seed, max_per_class=max_per_class, limits=limits)
    if not isinstance(encoder, Encoder):
        encoder = create_encoder(encoder, device=device, precision=precision or "auto")
    elif precision is not None and resolve_precision(precision, encoder.device) != encoder.precision:
        raise ValueError(
            f"precision {precision!r} was requested but the encoder runs at {encoder.precision!r}; pass the "
            f"encoder's name, or build it with create_encoder(..., precision={precision!r})."
        )
    spec = encoder.spec
    fingerprint = _fingerprint(data, encoder, dtype, encoder.precision, DECODE_RULE)
    name = lambda fp: f"{_slug(extractor_name(spec.name))}-{fp[:16]}.h5"  # noqa: E731
    path = Path(out) if out is not None else Path(cache_dir) / name(fingerprint)
    # the references a request's features approximate also answer it: fp32 those of a lower precision, a cache whose
    # every file was decoded whole (written before DECODE_RULE) those of a reduced decode; never the reverse
    references = [(p, d) for d in (DECODE_RULE, FULL_DECODE) for p in dict.fromkeys((encoder.precision, "fp32"))]
    reusable = tuple((path if out is not None else Path(cache_dir) / name(fp), fp)
                     for fp in (_fingerprint(data, encoder, dtype, *ref) for ref in references[1:]))
    attrs = {
        "encoder": spec.name,
        "weights_sha256": encoder.weights_sha256,
        "preprocess": spec.preprocess(),
        "feature_kind": spec.feature_kind,
        "normalized": spec.normalized,
        "default_head": spec.default_head,
        "class_names": data.class_names,
        "dataset_fingerprint": data.fingerprint,
        "test_fingerprint": data.test_fingerprint,
        "fingerprint": fingerprint,
        "split_params": data.params,
        "precision": encoder.precision,
        "decode": DECODE_RULE,
        "encoder_warning": encoder.warning,
        "data_warnings": data_warnings(data),  # not fingerprinted: what runs on the cache say of the data set
    }
    return ExtractionPlan(data, encoder, path, fingerprint, attrs, dtype, reusable, named_by_fingerprint=out is None)


_OTHER_OUT = "choose another --out or delete the file"  # what a user's --out that extract cannot write needs


def _existing(plan: ExtractionPlan) -> ExtractResult | None:
    """The finished cache that answers ``plan`` (its own, else a reusable one), or None."""
    for path, fingerprint in ((plan.path, plan.fingerprint), *plan.reusable):
        if not path.exists():
            continue
        try:
            cache = open_cache(path)
        except CacheMismatch as exc:
            if plan.named_by_fingerprint:
                _move_aside(path)
                continue
            if path.is_file():  # a user's own --out file, never touched: the reader's words alone ('not a readable
                # HDF5 feature cache', shared with train) did not say what to do (a review round)
                raise CacheMismatch(f"{exc} As --out it is left untouched: {_OTHER_OUT}.") from None
            raise
        if cache.fingerprint == fingerprint:
            logger.info("cache hit: %s (precision %s)", path, cache.attrs.get("precision", "fp32"))
            # what the data set leaves out as it is now (a manifest's missing or repeated rows, non-images), and
            # the files of the cached samples that failed to decode: the cache's own list may be older
            failed = [tuple(s) for s in cache.attrs.get("skipped", []) if s[1].startswith(DECODE_FAILURE)]
            skipped = [tuple(s) for s in plan.data.skipped] + failed
            return ExtractResult(path, fingerprint, True, skipped, dict(cache.split_sizes), 0, rotated_of(cache))
    if plan.path.exists():
        cache = open_cache(plan.path)
        differ = plan_differences(cache, plan)
        raise CacheMismatch(
            f"{plan.path} holds another cache (encoder {cache.encoder!r}, fingerprint {cache.fingerprint[:16]}…, "
            f"requested {plan.fingerprint[:16]}…{'; it differs in ' + '; '.join(differ) if differ else ''}); "
            f"{_OTHER_OUT}."
        )
    return None


# The cache attributes of the settings a cache's fingerprint covers (feature_cache.fingerprint.cache_fingerprint),
# with the value a file written before the attribute holds
_FINGERPRINTED = (("dataset_fingerprint", None), ("encoder", None), ("weights_sha256", None), ("preprocess", {}),
                  ("feature_kind", None), ("normalized", None), ("split_params", {}), ("precision", "fp32"),
                  ("decode", FULL_DECODE), ("dtype", None))


def cache_differences(held: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Where a cache's attributes ``held`` differ from a request's ``wanted`` among the fingerprinted settings, as
    'name (there X, requested Y)', a dict's keys one by one: a cache an older version wrote (preprocess without its
    resampler) was refused as 'another cache' of the same encoder and data, with nothing said of why (an upgrade
    round)."""
    def shown(value: Any) -> str:
        return "absent" if value is _ABSENT else repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "…"

    found = []
    for key, before in _FINGERPRINTED:
        there, asked = held.get(key, before), wanted.get(key, before)
        # full precision, and files decoded whole, answer any request (plan_extraction's reusable)
        if (key, there) in (("precision", "fp32"), ("decode", FULL_DECODE)):
            continue
        if isinstance(there, dict) and isinstance(asked, dict):
            found += [f"{key}.{k} (there {shown(there.get(k, _ABSENT))}, requested {shown(asked.get(k, _ABSENT))})"
                      for k in sorted(there.keys() | asked.keys()) if there.get(k, _ABSENT) != asked.get(k, _ABSENT)]
        elif there != asked:
            found.append(f"{key} (there {shown(there)}, requested {shown(asked)})")
    return found


_ABSENT = object()


def plan_differences(cache: Any, plan: ExtractionPlan) -> list[str]:
    """:func:`cache_differences` of the cache ``cache`` (a :class:`FeatureCache`) and the request ``plan``, the
    stored feature dtype included: the fingerprint covers it and no attribute records it, so a cache of
    ``--dtype float32`` refused for a float16 request named no difference at all."""
    return [_data_change(cache, plan.data) if item.startswith("dataset_fingerprint ") else item
            for item in cache_differences({**cache.attrs, "dtype": cache.dtype}, {**plan.attrs, "dtype": plan.dtype})]


def _data_change(cache: Any, data: LabelledImages) -> str:
    """What changed between the data set a cache was extracted from and ``data`` as it is now, in words: its
    images per split and the classes only one of them has. Two content hashes ('dataset_fingerprint (there
    'b614ce8f…', requested '35bf0044…')') left a user who had added images to a class to work out what they meant
    (a data-set-iteration round)."""
    def sizes(counts: Mapping[str, int]) -> str:
        return ", ".join(f"{split} {n:,}" for split, n in counts.items())

    there, now = list(cache.class_names), list(data.class_names)
    # names looked up in a set: in the other list, 20,000 classes took 400 million comparisons (a review)
    classes = [f"classes only {when}: {listed([repr(c) for c in names if c not in other], 10)}"
               for when, names, other in (("there", there, set(now)), ("now", now, set(there)))
               if not other.issuperset(names)]
    return ("the data set's files (added, removed, renamed or edited since that cache was extracted, or another "
            f"folder or archive: there {sizes(cache.split_sizes)}; now {sizes(data.counts())}"
            + "".join(f"; {c}" for c in classes) + ")")


def _move_aside(path: Path) -> Path:
    """Rename a damaged cache of ``cache_dir`` (a file named by fingerprint that no longer reads as a cache: cut
    short, overwritten) to ``<name>.damaged``, so the request is extracted again instead of failing for good;
    the file is kept for a look, not deleted."""
    aside = path.with_name(path.name + ".damaged")
    os.replace(path, aside)
    logger.warning("%s is not a readable cache any more; moved aside to %s, extracting it again", path, aside.name)
    return aside


def check_decodable(data: LabelledImages, skipped: list[tuple[str, str]] | list[list[str]]) -> None:
    """Raise :class:`DatasetError` when a class lost every ``train`` (or ``test``) image to decode failures.

    ``skipped`` holds (source, reason) of the files the extractor could not decode.
    """
    failed = {source: reason for source, reason in skipped}
    lost: list[str] = []
    example: tuple[str, str] | None = None  # a failed file of a lost class, not of any class
    for split in ("train", "test"):
        had = {s.label for s in data.splits[split]}
        usable = {s.label for s in data.splits[split] if s.source not in failed}
        if had - usable:
            lost.append(f"{', '.join(repr(data.class_names[k]) for k in sorted(had - usable))} in '{split}'")
            example = example or next((s.source, failed[s.source]) for s in data.splits[split]
                                      if s.label not in usable)
    if lost:
        source, reason = example
        raise DatasetError(
            f"{data.location}: no decodable image left for class(es) {'; '.join(lost)}: every one of their "
            f"files failed to decode (e.g. '{source}': {reason}). Fix or remove those files and extract again."
        )


def _pending(splits: dict[str, list[Sample]], partial: PartialCache, batch_size: int):
    """(samples still to encode, batches as (split, start, end) in the split, index lists into samples)."""
    samples: list[Sample] = []
    batches: list[tuple[str, int, int]] = []
    indices: list[list[int]] = []
    for split in SPLITS:
        split_samples = splits.get(split, [])
        for start in range(partial.progress(split)[0], len(split_samples), batch_size):
            end = min(start + batch_size, len(split_samples))
            batches.append((split, start, end))
            indices.append(list(range(len(samples), len(samples) + end - start)))
            samples.extend(split_samples[start:end])
    return samples, batches, indices


def _queue_encoding(encoder: Encoder, images: torch.Tensor, ok: torch.Tensor) -> Callable[[], np.ndarray]:
    """Start encoding the decodable images of one batch (``ok``); returns a function that waits for their
    (kept, num_features) float32 features on the host.

    On CUDA the forward pass and the copy back (into pinned memory, behind a CUDA event) run while the caller
    goes on: the main loop takes the next batch from the DataLoader and writes the previous one meanwhile. Read
    back at once, as up to stop 49, each batch waited for the GPU before the next one was taken: on an H200 the
    main loop alone (``bench/extract_stages.py``, effnet-lite0 fp16, 10,000 images, 8 workers) ran at 5,857 img/s
    that way and 7,863 this way (1,411 serial with pinned batches, as ``extract`` had them); ``extract`` as a
    whole went from 1,218–1,356 to 1,555 img/s (bench/README.md, "GPU": the rest of its gap is not found yet).
    """
    keep = ok.nonzero().flatten()
    if len(keep) == 0:
        empty = np.zeros((0, encoder.num_features), dtype=np.float32)
        return lambda: empty
    features = encoder.encode(images if len(keep) == len(ok) else images[keep])
    if features.device.type != "cuda":
        host = features.numpy()
        return lambda: host
    pinned = torch.empty(features.shape, dtype=features.dtype, pin_memory=True)
    pinned.copy_(features, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()

    def wait() -> np.ndarray:
        copied.synchronize()
        return pinned.numpy()

    return wait


def _encode_kept(encoder: Encoder, images: torch.Tensor, ok: torch.Tensor) -> np.ndarray:
    """(kept, num_features) float32 features of the decodable images of one batch (``ok``)."""
    return _queue_encoding(encoder, images, ok)()


class EncodingCollate:
    """DataLoader ``collate_fn`` of a CPU extraction with worker processes: each worker stacks its batch
    (:func:`collate_images`) and encodes it itself, so it returns (features (kept, d) float32, ok, reasons, digests).

    PyTorch runs every DataLoader worker with one thread (``torch.set_num_threads(1)``), so W workers are W
    single-threaded forward passes side by side: on a CPU that beats one forward pass over W threads, whose
    threads wait for each other at every layer, and each worker's decoding only holds up its own core.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def __call__(self, items: list[tuple[torch.Tensor, bool, str, bytes]]
                 ) -> tuple[np.ndarray, torch.Tensor, list[str], np.ndarray]:
        images, ok, reasons, digests = collate_images(items)
        return _encode_kept(self.encoder, images, ok), ok, reasons, digests


def _write_chunk(partial: PartialCache, split: str, batch: list[Sample], end: int, features: np.ndarray,
                 ok: torch.Tensor, reasons: list[str], digests: np.ndarray) -> int:
    """Append one batch as one chunk, its (kept, d) ``features`` with its labels, sources, content digests and the
    sources of its kept images noted :data:`ROTATED`; returns how many images the chunk kept."""
    keep = ok.nonzero().flatten().tolist()
    bad = [(batch[i].source, reasons[i]) for i in range(len(batch)) if not bool(ok[i])]
    for source, reason in bad:
        logger.warning("skipping %s: %s", source, reason)
    partial.append(
        split,
        features,
        np.array([batch[i].label for i in keep], dtype=np.int64),
        [batch[i].source for i in keep],
        next_index=end,
        skipped=bad,
        digests=digests[keep],
        rotated=[batch[i].source for i in keep if reasons[i] == ROTATED],
    )
    return len(keep)


class _ChunkWriter:
    """Appends the encoded batches of :func:`run_plan` to the partial file in order, polling ``should_stop`` before
    each and reporting progress after each; counts what it wrote (``encoded``: images kept)."""

    def __init__(self, partial: PartialCache, splits: dict[str, list[Sample]], bar, progress, should_stop,
                 done: int, total: int) -> None:
        self.partial, self.splits, self.bar = partial, splits, bar
        self.progress, self.should_stop = progress, should_stop
        self.done, self.total, self.encoded = done, total, 0

    def write(self, where: tuple[str, int, int], features: Callable[[], np.ndarray], ok: torch.Tensor,
              reasons: list[str], digests: np.ndarray) -> None:
        split, start, end = where
        if self.should_stop is not None and self.should_stop():
            raise ExtractionCancelled(f"extraction stopped at {split} {start}/{len(self.splits[split])}; "
                                      f"run it again to resume from {self.partial.path}.")
        for kind, how in ((FILE_GONE, "removed or moved"), (FILE_CHANGED, "changed")):
            gone = [sample.source for sample, reason in zip(self.splits[split][start:end], reasons)
                    if reason.startswith(kind)]
            if gone:  # skipped or encoded, the cache would not hold the content its fingerprint names
                many = len(gone) != 1
                raise DatasetChanged(
                    f"{len(gone)} file{'s' * many} of the data set ({gone[0]}{', ...' * many}) "
                    f"{'were' if many else 'was'} {how} while its features were extracted: the extraction stopped, "
                    "keeping the images written so far. Put them back as they were and extract again to resume, or "
                    "register the data set again as it is now.")
        self.encoded += _write_chunk(self.partial, split, self.splits[split][start:end], end, features(), ok,
                                     reasons, digests)
        self.done += end - start
        self.bar.update(end - start)
        if self.progress is not None:
            self.progress(self.done, self.total)


# DataLoader worker processes under ``workers=None`` (auto) on CUDA, at most (one core is left to the main process,
# 2 at least): they decode while the GPU encodes. On an H200 with 16 cores the DataLoader alone delivered 3,100-3,800
# img/s with 2 workers and 10,800-11,800 with 8 (224² effnet-lite0 batches of CIFAR-10 JPEGs), and the main loop
# took 7,863-8,112 (bench/extract_stages.py).
CUDA_DECODE_WORKERS = 8
# Images to encode from which ``workers=None`` (auto) gives a CPU encoder its encoding workers: they take ~1 s to
# hand over their first batches (0.4–0.5 s in the main process). effnet-lite0, bf16, 2 cores, 2 workers against
# none (one-off runs of ``extract``, interleaved): 400 images 2.3–3.7 against 2.0–2.3 s, 1,000 mixed (4.9 and 9.9
# against 6.1 and 8.2 s), 2,000 195–213 against 169–202 img/s, 6,000 205–239 against 180–203 img/s.
CPU_WORKERS_MIN_IMAGES = 2000
# Private memory budgeted per CPU encoding worker under ``workers=None``: effnet-lite0 in bf16 at batch 64 held
# 0.7–0.9 GB (each worker's activations, the heap glibc keeps while extracting, the pages of the main process it
# writes). The automatic count keeps the workers within half of the memory available when the extraction starts
# (:func:`available_memory`: ``MemAvailable``, or the room under a container's cgroup limit), so a many-core
# machine does not start more than its memory holds; a larger encoder needs more per worker (set ``workers``).
CPU_WORKER_MEMORY = 1 << 30
_MEMORY_BATCH = 64  # the batch size CPU_WORKER_MEMORY was measured at


def cpu_batch_memory(batch_size: int) -> int:
    """Private memory budgeted for one CPU process that encodes batches of ``batch_size`` images:
    :data:`CPU_WORKER_MEMORY` up to 64 images, in proportion above (effnet-lite0 at 224² held ~8 MB per image of
    a batch in bf16 and ~15 MB in fp32, one thread, batches of 64 and 256)."""
    return CPU_WORKER_MEMORY * max(1, math.ceil(batch_size / _MEMORY_BATCH))


def check_batch_size(batch_size: int, device: torch.device) -> None:
    """Refuse a batch size out of [1, :data:`MAX_BATCH_SIZE`], or, on a CPU, one whose :func:`cpu_batch_memory`
    exceeds the memory available now (:func:`available_memory`): a process killed for memory half way through
    an extraction helps no one, and under the service it may be the server itself.

    Raises ValueError naming the largest batch that fits.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be in [1, {MAX_BATCH_SIZE}], got {batch_size}.")
    if device.type != "cpu" or batch_size <= _MEMORY_BATCH:
        return
    memory = available_memory()
    if memory is not None and cpu_batch_memory(batch_size) > memory:
        fits = max(_MEMORY_BATCH, memory // CPU_WORKER_MEMORY * _MEMORY_BATCH)
        raise ValueError(
            f"batch_size {batch_size} needs about {cpu_batch_memory(batch_size) / 2**30:.0f} GiB per encoding "
            f"process on a CPU ({CPU_WORKER_MEMORY / 2**30:.0f} GiB per {_MEMORY_BATCH} images), and "
            f"{memory / 2**30:.1f} GiB are available: use at most {fits} (64 is the CPU default)."
        )


# A cgroup's memory limit and usage, v2 then v1 (an unlimited v1 group reports a number near 2**63).
_CGROUP_MEMORY = (("sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory.current"),
                  ("sys/fs/cgroup/memory/memory.limit_in_bytes", "sys/fs/cgroup/memory/memory.usage_in_bytes"))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):  # missing, unreadable, or "max" (no limit)
        return None


def available_memory(root: str | Path = "/") -> int | None:
    """Bytes of memory available to new processes: Linux ``MemAvailable``, lowered to the room left under this
    process's cgroup limit (a container's memory limit; v2 ``memory.max`` − ``memory.current``, else v1), or None
    where neither is known. ``root`` prefixes the paths read (tests)."""
    root = Path(root)
    found: list[int] = []
    try:
        with open(root / "proc/meminfo") as meminfo:
            found += [int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    for limit_path, usage_path in _CGROUP_MEMORY:
        limit, usage = _read_int(root / limit_path), _read_int(root / usage_path)
        if limit is not None and usage is not None:
            if limit < 1 << 60:
                found.append(max(limit - usage, 0))
            break
    return min(found) if found else None




def resolve_workers(workers: int | None, device: torch.device, images: int | None = None,
                    batches: int | None = None, batch_size: int = _MEMORY_BATCH, sharing: int = 1) -> int:
    """The DataLoader worker processes of an extraction of ``images`` images in ``batches`` batches (None:
    unknown): ``workers`` itself, or for ``None`` (auto):

    - on CUDA, processes that decode while the main process encodes: one per core but one, at least 2 and at
      most :data:`CUDA_DECODE_WORKERS`; with ``sharing`` processes extracting on the machine (the ranks of a
      ``torchrun`` on one node), each gets its share of the cores;
    - on a CPU, one process per thread of torch's pool (``torch.get_num_threads()``), at most one per batch
      and at most as many as half the available memory holds at :func:`cpu_batch_memory` each, each decoding
      *and* encoding its batches with one thread (:class:`EncodingCollate`); 0 (decode and encode in this
      process, between forward passes) where that makes fewer than 2, or for fewer than
      :data:`CPU_WORKERS_MIN_IMAGES` images, where the workers' start costs more than they gain.

    Why on a CPU: a forward pass over 2 threads waits for the slower thread at every layer, and decoding in
    the same process leaves a core idle meanwhile. effnet-lite0 on 2 cores (``bench/extract_speed.py``, 6,000
    CIFAR-10 images, bench/README.md, Extraction): 2 single-threaded processes side by side ran the
    bare forward 1.01–1.20× (bf16) and 0.95–1.15× (fp32) as fast as one process over 2 threads, and bf16
    extraction with 2 encoding workers took 205–239 img/s against 180–203 decoding and encoding in the main
    process (3 interleaved rounds, median 1.16×). Each worker holds its own activations: 0.7–0.9 GB of private
    memory there (bf16, batch 64). Decoding-only workers beside a 2-thread forward were slower still (0.63–0.67
    of the bare forward in an earlier round): they take cores from its threads.

    Raises ValueError for a count outside [0, :data:`MAX_WORKERS`].
    """
    if workers is not None:
        if not 0 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be in [0, {MAX_WORKERS}], got {workers}.")
        return int(workers)
    if device.type == "cuda":
        return min(CUDA_DECODE_WORKERS, max(2, (os.cpu_count() or 2) // max(1, sharing) - 1))
    if images is not None and images < CPU_WORKERS_MIN_IMAGES:
        return 0
    count = torch.get_num_threads() if batches is None else min(torch.get_num_threads(), batches)
    memory = available_memory()
    if memory is not None:
        count = min(count, memory // (2 * cpu_batch_memory(batch_size)))
    return count if count >= 2 else 0


def _foreign_partial(plan: ExtractionPlan, partial: PartialCache) -> CacheMismatch | None:
    """The refusal of a resumable file at a user's --out that another request started: it was discarded, its
    encoded images lost with one log line, where a finished cache of another request there is refused untouched.
    None (discarded, started afresh) for one whose finished cache would answer ``plan`` (``plan.reusable``: an
    fp32 one, or one of files decoded whole that this version no longer writes)."""
    if partial.attrs.get("fingerprint") in {fingerprint for _, fingerprint in plan.reusable}:
        return None
    differ = cache_differences({**partial.attrs, "dtype": partial.dtype.name}, {**plan.attrs, "dtype": plan.dtype})
    rows = sum(partial.progress(split)[1] for split in SPLITS)
    return CacheMismatch(f"{partial.path} holds a partial extraction of another request ({rows:,} images encoded"
                         f"{'; it differs in ' + '; '.join(differ) if differ else ''}); it is kept for the request "
                         f"that started it, which resumes from it: {_OTHER_OUT}")


def _decode_size(plan: ExtractionPlan) -> tuple[int, int] | None:
    """The least size files may decode to, by the rule the plan's cache records (its fingerprint counts it): None
    (whole) for :data:`~feature_cache.fingerprint.FULL_DECODE`, else the transform's ``decode_size``."""
    return None if plan.attrs.get("decode", FULL_DECODE) == FULL_DECODE else plan.encoder.transform.decode_size


def run_plan(
    plan: ExtractionPlan,
    *,
    splits: dict[str, list[Sample]] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    partial_path: Path | None = None,
    show_progress: bool = True,
    tune_allocator: bool = False,
) -> tuple[PartialCache, int]:
    """Encode every sample of ``splits`` (default: the data set's) into the partial file.

    One DataLoader (one worker pool, :func:`resolve_workers`: on a CPU encoder they encode as well) serves all
    splits. ``tune_allocator`` applies :func:`~probe.allocator.keep_freed_memory` for the process (and its workers);
    off by default, as for :func:`extract`.
    Returns the still-open :class:`PartialCache` and the number of images encoded by this call.
    Raises :class:`ExtractionCancelled` (after closing the partial file) when ``should_stop()`` is true.
    """
    from tqdm.auto import tqdm

    encoder = plan.encoder
    check_batch_size(batch_size, encoder.device)
    if workers is not None:
        resolve_workers(workers, encoder.device)  # a negative count fails before any file is opened
    splits = plan.data.splits if splits is None else splits
    partial = PartialCache.open(
        partial_path or plan.partial_path,
        attrs=plan.attrs,
        num_features=encoder.num_features,
        dtype=plan.dtype,
        foreign=None if plan.named_by_fingerprint else functools.partial(_foreign_partial, plan),
    )
    samples, batches, indices = _pending(splits, partial, batch_size)
    workers = resolve_workers(workers, encoder.device, len(samples), len(batches), batch_size)
    encode_in_workers = bool(workers) and encoder.device.type == "cpu"
    role = "decoding and encoding (1 thread each)" if encode_in_workers else "decoding"
    threads = torch.get_num_threads()
    logger.info("%d images in %d batches: %s", len(samples), len(batches), f"{workers} worker processes {role}"
                if workers else f"decoding and encoding in this process ({threads} thread{'s' * (threads > 1)})")
    total = sum(len(split_samples) for split_samples in splits.values())
    done = total - len(samples)
    if tune_allocator:
        keep_freed_memory()
    loader = DataLoader(  # pageable batches: pinned ones made the H200's serial loop 4.2x slower (extract_stages)
        _ImageDataset(plan.data, samples, encoder.transform, encoder.spec.image_size, _decode_size(plan)),
        batch_sampler=indices,
        collate_fn=EncodingCollate(encoder) if encode_in_workers else collate_images,
        num_workers=workers,
        worker_init_fn=functools.partial(_worker_start, parent=os.getpid(), tune_allocator=tune_allocator)
        if workers else None,
        # forked from this process, as Linux's default was before Python 3.14 made it forkserver (whose workers'
        # parent is the fork server: _worker_start's check would end them all, and their death signal would wait
        # for the fork server, not this process)
        multiprocessing_context="fork" if workers and sys.platform.startswith("linux") else None,
        generator=torch.Generator(),  # the workers' base seed: from torch's global one, it moved the caller's RNG
    )
    bar = tqdm(total=total, initial=done, unit="img", desc=f"extract {encoder.spec.name}",
               disable=not show_progress, smoothing=0.1)
    writer = _ChunkWriter(partial, splits, bar, progress, should_stop, done, total)
    try:
        pending = None  # the batch whose features are still on their way: written once the next one is queued
        for (split, start, end), (payload, ok, reasons, digests) in zip(batches, loader):
            features = ((lambda f=payload: f) if isinstance(payload, np.ndarray)  # encoded by a worker
                        else _queue_encoding(encoder, payload, ok))
            if pending is not None:
                writer.write(*pending)
            pending = ((split, start, end), features, ok, reasons, digests)
        if pending is not None:
            writer.write(*pending)
    except BaseException:
        partial.close()
        raise
    finally:
        bar.close()
        if tune_allocator:
            release_freed_memory()
    return partial, writer.encoded


def _finish(plan: ExtractionPlan, partial: PartialCache) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Check that every class kept an image, then finalise the partial file; returns (skipped, counts)."""
    try:
        check_decodable(plan.data, partial.skipped)
    except DatasetError:
        partial.close()
        partial.path.unlink()  # the same data gives the same failures: nothing worth resuming
        raise
    skipped = [tuple(s) for s in plan.data.skipped] + [tuple(s) for s in partial.skipped]
    counts = {split: partial.progress(split)[1] for split in SPLITS}
    partial.finalize(
        plan.path,
        {
            # this run's attributes, not those its partial file was started with: one resumed after a weights file
            # moved (its path is not in the fingerprint) recorded `encoder` as mocov2:OLD_PATH, which a probe's
            # USAGE.md then gave as the command to extract new images with
            **plan.attrs,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "skipped": [list(s) for s in skipped],
            "rotated": partial.rotated,  # what every later reuse of the cache says too (_existing)
        },
    )
    return skipped, counts


def extract(
    data: str | Path | LabelledImages,
    encoder: str | Encoder,
    cache_dir: str | Path | None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    device: str = "auto",
    precision: str | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    max_per_class: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    out: str | Path | None = None,
    dtype: str = "float16",
    limits: Any = None,
    show_progress: bool = True,
    tune_allocator: bool = False,
) -> ExtractResult:
    """Extract features of ``data`` with ``encoder`` into a cache, or return the matching cache.

    Args:
        data: data set path (folder, archive, manifest, idx) or an opened :class:`LabelledImages`.
        encoder: encoder name (see :func:`~feature_cache.encoders.list_encoders`) or a built encoder.
        cache_dir: folder of caches named by fingerprint (ignored when ``out`` is given).
        batch_size: images per forward pass and per written chunk, 1 to :data:`MAX_BATCH_SIZE`; on a CPU a batch
            whose :func:`cpu_batch_memory` exceeds the available memory is refused (:func:`check_batch_size`).
        workers: DataLoader worker processes (0: decode and encode in the main process). On a CPU encoder each
            decodes and encodes its own batches with one thread; on CUDA they decode while the GPU encodes.
            None (auto, :func:`resolve_workers`): on a CPU one per thread of torch's pool (at most one per
            batch, and as many as half the available memory holds at :data:`CPU_WORKER_MEMORY` each; 0 under
            2, or under :data:`CPU_WORKERS_MIN_IMAGES` images); on CUDA one per core but one, 2 to
            :data:`CUDA_DECODE_WORKERS`.
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (only used when ``encoder`` is a name).
        precision: ``auto`` (default for a name), ``fp32``, ``bf16`` or ``fp16`` (see
            :mod:`feature_cache.encoders`); with a built encoder, None or the encoder's own precision.
        val_fraction, seed, max_per_class: see :func:`~feature_cache.datasets.open_dataset` (ignored
            when ``data`` is an already opened :class:`LabelledImages`, whose own parameters count).
        progress: called as ``progress(done, total)`` after every chunk.
        should_stop: polled before every chunk; True raises :class:`ExtractionCancelled`, leaving a
            resumable ``*.partial`` file.
        out: explicit cache file path.
        dtype: stored feature dtype (``float16`` default, or ``float32``).
        limits: :class:`~feature_cache.archives.ArchiveLimits` for archives.
        tune_allocator: keep freed memory in the process (and its workers) while encoding (:mod:`probe.allocator`,
            glibc ``mallopt``: the setting holds for the rest of the process). Off by default, so a library call
            leaves its caller's allocator alone; ``mr2probe extract``, the service's jobs, torchrun's
            ``python -m feature_cache.distributed`` and the benches, each a process of its own, turn it on.

    Raises:
        CacheMismatch: ``out`` exists and holds a different cache.
        NotADirectoryError: ``cache_dir`` (without ``out``) is a file, refused before the data set is opened.
        DatasetError: a class has no decodable image in ``train`` or ``test`` (no cache is written).
        ExtractionCancelled: ``should_stop()`` returned True.
        ExtractionBusy: another process is extracting the same cache file right now (a ``RuntimeError``).
    """
    plan = plan_extraction(
        data, encoder, cache_dir, device=device, precision=precision, val_fraction=val_fraction, seed=seed,
        max_per_class=max_per_class, out=out, dtype=dtype, limits=limits,
    )
    found = _existing(plan)
    if found is not None:
        return found
    with _exclusive(plan.path):
        found = _existing(plan)  # another process may have finished it just before we locked
        if found is not None:
            return found
        _remove_orphaned_copies(plan.path)
        logger.info("extracting %s with %s into %s", plan.data.location, plan.encoder, plan.path)
        partial, encoded = run_plan(
            plan, batch_size=batch_size, workers=workers, progress=progress, should_stop=should_stop,
            show_progress=show_progress, tune_allocator=tune_allocator,
        )
        skipped, counts = _finish(plan, partial)
        remove_stale_shards(plan.path)  # those a torchrun extraction of it killed part-way left
    logger.info("cache written: %s %s (%d images encoded, %d skipped)", plan.path, counts, encoded, len(skipped))
    return ExtractResult(plan.path, plan.fingerprint, False, skipped, counts, encoded, partial.rotated,
                         partial.discarded)
