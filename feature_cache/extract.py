"""Run a frozen encoder over a labelled image set once and cache the features (or reuse the cache).

Pipeline: DataLoader workers decode and transform images (PIL) in parallel with the forward pass; the
main process encodes each batch under ``torch.inference_mode`` (float16 autocast on CUDA) and appends
it to ``<final>.partial`` (one chunk = one batch), recording progress and flushing after every chunk.
A restarted job resumes after the last written chunk; the finished file is moved onto its final name
with ``os.replace``, so a crash never leaves a cache that looks complete.

Cache identity is :func:`~feature_cache.fingerprint.cache_fingerprint`: in ``cache_dir`` the file is
``<encoder-slug>-<fingerprint[:16]>.h5``; an explicit ``out`` path is reused only when its stored
fingerprint matches, and otherwise refused with :class:`~feature_cache.errors.CacheMismatch`.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .datasets import SPLITS, LabelledImages, Sample, open_dataset
from .encoders import Encoder, create_encoder
from .errors import CacheMismatch, ExtractionCancelled
from .fingerprint import cache_fingerprint
from .store import SCHEMA_VERSION, PartialCache, library_versions, open_cache

__all__ = ["ExtractResult", "extract", "plan_extraction", "ExtractionPlan", "discard_partial"]

logger = logging.getLogger(__name__)


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
    """

    path: Path
    fingerprint: str
    reused: bool
    skipped: list[tuple[str, str]]
    counts: dict[str, int]
    encoded: int = 0


@dataclass
class ExtractionPlan:
    """The resolved request: data, encoder, final path and the root attributes of the cache."""

    data: LabelledImages
    encoder: Encoder
    path: Path
    fingerprint: str
    attrs: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float16"

    @property
    def partial_path(self) -> Path:
        """The resumable file written while extraction runs (renamed onto :attr:`path` when done)."""
        return self.path.with_name(self.path.name + ".partial")


class _ImageDataset(Dataset):
    """Decodes and transforms samples; a file that fails to decode yields ``ok=False`` and the reason."""

    def __init__(self, data: LabelledImages, samples: list[Sample], transform: Callable, size: int) -> None:
        self.data, self.samples, self.transform, self.size = data, samples, transform, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            return self.transform(self.data.load_image(sample)), True, ""
        except Exception as exc:  # noqa: BLE001 - any decode failure skips the file, never the job
            return torch.zeros(3, self.size, self.size), False, f"cannot decode image: {exc}"[:300]


@contextmanager
def _exclusive(final: Path):
    """Hold an exclusive lock on ``<final>.lock`` so two processes never write the same partial file.

    Raises ``RuntimeError`` at once when another process holds it. The lock file is removed on exit;
    a locker re-checks that the file it locked is still the one on disk (no race with that removal).
    """
    import fcntl

    lock = final.with_name(final.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RuntimeError(
                f"{final} is being extracted by {owner}; wait for it to finish (it will then be reused)."
            ) from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


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
    except RuntimeError:
        return False
    return True


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:48] or "encoder"


def plan_extraction(
    data: str | Path | LabelledImages,
    encoder: str | Encoder,
    cache_dir: str | Path | None,
    *,
    device: str = "auto",
    val_fraction: float = 0.1,
    seed: int = 0,
    max_per_class: int | None = None,
    out: str | Path | None = None,
    dtype: str = "float16",
    limits: Any = None,
) -> ExtractionPlan:
    """Open the data set, build the encoder, compute the fingerprint and the final path."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}.")
    if out is None and cache_dir is None:
        raise ValueError("give cache_dir (a folder, files named by fingerprint) or out (a .h5 path).")
    if not isinstance(data, LabelledImages):
        data = open_dataset(data, val_fraction=val_fraction, seed=seed, max_per_class=max_per_class, limits=limits)
    if not isinstance(encoder, Encoder):
        encoder = create_encoder(encoder, device=device)
    spec = encoder.spec
    fingerprint = cache_fingerprint(
        dataset=data.fingerprint,
        encoder=spec.name,
        weights_sha256=encoder.weights_sha256,
        preprocess=spec.preprocess(),
        feature_kind=spec.feature_kind,
        normalized=spec.normalized,
        split_params=data.params,
        dtype=dtype,
        schema_version=SCHEMA_VERSION,
    )
    path = Path(out) if out is not None else Path(cache_dir) / f"{_slug(spec.name)}-{fingerprint[:16]}.h5"
    attrs = {
        "encoder": spec.name,
        "weights_sha256": encoder.weights_sha256,
        "preprocess": spec.preprocess(),
        "feature_kind": spec.feature_kind,
        "normalized": spec.normalized,
        "default_head": spec.default_head,
        "class_names": data.class_names,
        "dataset_fingerprint": data.fingerprint,
        "fingerprint": fingerprint,
        "split_params": data.params,
    }
    return ExtractionPlan(data, encoder, path, fingerprint, attrs, dtype)


def _existing(plan: ExtractionPlan) -> ExtractResult | None:
    if not plan.path.exists():
        return None
    cache = open_cache(plan.path)
    if cache.fingerprint != plan.fingerprint:
        raise CacheMismatch(
            f"{plan.path} holds another cache (encoder {cache.encoder!r}, fingerprint {cache.fingerprint[:16]}…, "
            f"requested {plan.fingerprint[:16]}…); choose another --out or delete the file."
        )
    logger.info("cache hit: %s", plan.path)
    skipped = [tuple(s) for s in cache.attrs.get("skipped", [])]
    return ExtractResult(plan.path, plan.fingerprint, True, skipped, dict(cache.split_sizes), 0)


def run_plan(
    plan: ExtractionPlan,
    *,
    splits: dict[str, list[Sample]] | None = None,
    batch_size: int = 64,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    partial_path: Path | None = None,
    show_progress: bool = True,
) -> tuple[PartialCache, int]:
    """Encode every sample of ``splits`` (default: the data set's) into the partial file.

    Returns the still-open :class:`PartialCache` and the number of images encoded by this call.
    Raises :class:`ExtractionCancelled` (after closing the partial file) when ``should_stop()`` is true.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}.")
    splits = plan.data.splits if splits is None else splits
    encoder = plan.encoder
    partial = PartialCache.open(
        partial_path or plan.partial_path,
        attrs=plan.attrs,
        num_features=encoder.num_features,
        dtype=plan.dtype,
    )
    total = sum(len(samples) for samples in splits.values())
    done = sum(min(partial.progress(s)[0], len(splits.get(s, []))) for s in SPLITS)
    encoded = 0
    bar = tqdm(total=total, initial=done, unit="img", desc=f"extract {encoder.spec.name}",
               disable=not show_progress, smoothing=0.1)
    try:
        for split in SPLITS:
            samples = splits.get(split, [])
            start, _ = partial.progress(split)
            if start >= len(samples):
                continue
            loader = DataLoader(
                _ImageDataset(plan.data, samples[start:], encoder.transform, encoder.spec.image_size),
                batch_size=batch_size,
                shuffle=False,
                num_workers=workers,
                pin_memory=encoder.device.type == "cuda",
                persistent_workers=False,
            )
            position = start
            for images, ok, reasons in loader:
                if should_stop is not None and should_stop():
                    raise ExtractionCancelled(
                        f"extraction stopped at {split} {position}/{len(samples)}; "
                        f"run it again to resume from {partial.path}."
                    )
                batch = samples[position:position + len(ok)]
                keep = ok.nonzero().flatten().tolist()
                features = np.zeros((0, encoder.num_features), dtype=np.float32)
                if keep:
                    features = encoder.encode(images if len(keep) == len(ok) else images[keep]).cpu().numpy()
                    encoded += len(keep)
                bad = [(batch[i].source, reasons[i]) for i in range(len(batch)) if not bool(ok[i])]
                for source, reason in bad:
                    logger.warning("skipping %s: %s", source, reason)
                position += len(batch)
                partial.append(
                    split,
                    features,
                    np.array([batch[i].label for i in keep], dtype=np.int64),
                    [batch[i].source for i in keep],
                    next_index=position,
                    skipped=bad,
                )
                done += len(batch)
                bar.update(len(batch))
                if progress is not None:
                    progress(done, total)
    except BaseException:
        partial.close()
        raise
    finally:
        bar.close()
    return partial, encoded


def extract(
    data: str | Path | LabelledImages,
    encoder: str | Encoder,
    cache_dir: str | Path | None,
    *,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    val_fraction: float = 0.1,
    seed: int = 0,
    max_per_class: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    out: str | Path | None = None,
    dtype: str = "float16",
    limits: Any = None,
    show_progress: bool = True,
) -> ExtractResult:
    """Extract features of ``data`` with ``encoder`` into a cache, or return the matching cache.

    Args:
        data: data set path (folder, archive, manifest, idx) or an opened :class:`LabelledImages`.
        encoder: encoder name (see :func:`~feature_cache.encoders.list_encoders`) or a built encoder.
        cache_dir: folder of caches named by fingerprint (ignored when ``out`` is given).
        batch_size: images per forward pass and per written chunk.
        workers: DataLoader worker processes decoding images (0: in the main process).
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (only used when ``encoder`` is a name).
        val_fraction, seed, max_per_class: see :func:`~feature_cache.datasets.open_dataset` (ignored
            when ``data`` is an already opened :class:`LabelledImages`, whose own parameters count).
        progress: called as ``progress(done, total)`` after every chunk.
        should_stop: polled before every chunk; True raises :class:`ExtractionCancelled`, leaving a
            resumable ``*.partial`` file.
        out: explicit cache file path.
        dtype: stored feature dtype (``float16`` default, or ``float32``).
        limits: :class:`~feature_cache.archives.ArchiveLimits` for archives.

    Raises:
        CacheMismatch: ``out`` exists and holds a different cache.
        ExtractionCancelled: ``should_stop()`` returned True.
        RuntimeError: another process is extracting the same cache file right now.
    """
    plan = plan_extraction(
        data, encoder, cache_dir, device=device, val_fraction=val_fraction, seed=seed,
        max_per_class=max_per_class, out=out, dtype=dtype, limits=limits,
    )
    found = _existing(plan)
    if found is not None:
        return found
    with _exclusive(plan.path):
        found = _existing(plan)  # another process may have finished it just before we locked
        if found is not None:
            return found
        logger.info("extracting %s with %s into %s", plan.data.location, plan.encoder, plan.path)
        partial, encoded = run_plan(
            plan, batch_size=batch_size, workers=workers, progress=progress, should_stop=should_stop,
            show_progress=show_progress,
        )
        skipped = [tuple(s) for s in plan.data.skipped] + [tuple(s) for s in partial.skipped]
        counts = {split: partial.progress(split)[1] for split in SPLITS}
        partial.finalize(
            plan.path,
            {
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": library_versions(),
                "skipped": [list(s) for s in skipped],
            },
        )
    logger.info("cache written: %s %s (%d images encoded, %d skipped)", plan.path, counts, encoded, len(skipped))
    return ExtractResult(plan.path, plan.fingerprint, False, skipped, counts, encoded)
