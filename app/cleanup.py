"""Start-up clean-up of the data directory: what a killed server left that no row or resumable job owns.

Runs while the job worker holds the data directory and before it dispatches anything (``JobRunner.start``):
upload directories of no data set (an upload cut off by SIGKILL), partial / lock files of extractions
that no resumable job will continue, the temporary files of every store whose writer was killed while it wrote
them (:func:`probe.files.stale_temporaries`), and an archive decompressed to the temporary folder by a process
that was killed.
Each removal is logged.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from .config import Settings
from .status import RESUMABLE, JobStatus, NotFound
from .store import Store

logger = logging.getLogger(__name__)

_SUFFIXES = (".partial", ".lock")


def extractions_in_use(store: Store, besides: str | None = None) -> set[str]:
    """Cache files that queued, running or resumable jobs are writing (``extraction`` in their result, no cache
    yet), leaving out job ``besides``: what a sweep or a cancelled job must not remove. Two jobs of the same data
    set, encoder and options write the same file: one killed, the other started and cancelled, the killed one
    still resumes from it."""
    keep: set[str] = set()
    for status in (JobStatus.queued, JobStatus.running, *RESUMABLE):
        for job in store.list_jobs(status, limit=1_000_000):
            if job["id"] != besides and job["result"].get("extraction") and "cache_id" not in job["result"]:
                keep.add(job["result"]["extraction"])
    return keep


def unrecorded_extractions(store: Store) -> set[str]:
    """The data sets (their folders under ``caches/``) of interrupted jobs that ran and extract without having
    recorded their file: jobs of an older version, which did not record it, killed mid-extraction. The sweep keeps
    the partial files there (it removed one such job's with "no resumable job extracts it", and the job, resumed,
    began again from the first image; an upgrade round). A job of this version records its file before writing it,
    and a failed one never wrote (a review: keeping every partial of a data set for any failed or queued job)."""
    return {job["request"]["dataset_id"] for job in store.list_jobs(JobStatus.interrupted, limit=-1)
            if job["attempts"] and isinstance(job["request"].get("dataset_id"), str)
            and not job["result"].get("extraction") and "cache_id" not in job["result"]}


_RUN_NAME = re.compile(r"run_[0-9a-f]{12}")  # app.store.new_id("run"): a folder the service made, nothing else


def abandoned_runs(store: Store, settings: Settings) -> list[Path]:
    """Run folders that jobs started (``pending_run``) and left unrecorded when they ended: a cancelled job's,
    kept for good before its cancel removed it (an operator round). Only such folders: a folder no run row
    names may be a user's (a CLI run beside the service's), or a newer run's behind a restored database; and every
    run row counts, not the newest 500 a list shows (a review: the first version deleted older runs' reports)."""
    if not settings.runs_dir.is_dir():
        return []
    ended = (JobStatus.cancelled, JobStatus.succeeded)  # failed and interrupted jobs resume from theirs
    left = {job["result"]["pending_run"] for status in ended for job in store.list_jobs(status, limit=-1)
            if isinstance(job["result"].get("pending_run"), str)}
    left = {name for name in left if _RUN_NAME.fullmatch(name)}
    recorded = {Path(path).name for path in store.run_paths()}
    return [settings.runs_dir / name for name in sorted(left - recorded)
            if (settings.runs_dir / name).is_symlink() or (settings.runs_dir / name).exists()]


def queued_heir(store: Store, job_id: str) -> str | None:
    """A queued job that has not started yet (no ``extraction`` recorded: its file is known only once it builds
    its encoder) and asks for the same extraction as job ``job_id`` (the same data set, encoder and split options,
    so the same file), or None. Cancelling the first of two such jobs removed the partial file the second would
    have resumed from (an attack round: it encoded all 180 images again)."""
    mine = _extraction_request(store.get_job(job_id)["request"])
    if mine is None:
        return None
    return next((job["id"] for job in store.list_jobs(JobStatus.queued, limit=1_000_000)
                 if job["id"] != job_id and not job["result"].get("extraction") and "cache_id" not in job["result"]
                 and _extraction_request(job["request"]) == mine), None)  # with a cache_id it extracts nothing


def _extraction_request(request: dict) -> tuple | None:
    """What decides an extraction's file in a job's request (data set, encoder, split options; not the batch
    size), or None for a job that extracts nothing (a probe, a pipeline on a cache)."""
    if not request.get("dataset_id"):
        return None
    options = {k: v for k, v in (request.get("options") or {}).items() if k != "batch_size"}
    return request["dataset_id"], request.get("encoder"), sorted(options.items())


def _fill_extractors(store: Store) -> None:
    """Each cache row without an extractor (written before the column) gets its file's, read as a job would read it
    (``app.caches.cache_file``'s checks); one that cannot be read now stays NULL, to be tried at the next start."""
    from feature_cache import open_cache

    from .caches import cache_file

    for row in store.caches_without_extractor():
        try:
            extractor = open_cache(cache_file(row, store.data_root)).extractor
        # a gone, moved or damaged file (FileNotFoundError, PathOutsideRoot, h5py's OSError and KeyError, CacheMismatch
        # a ValueError): never a reason not to start; anything else is a bug, which a catch-all hid (a review)
        except (OSError, ValueError, KeyError) as exc:
            logger.info("cache %s: its extractor is unknown for now (%s)", row["id"], type(exc).__name__)
            continue
        if extractor is not None:
            store.set_cache_extractor(row["id"], extractor)


def _stale_temporaries(store: Store, settings: Settings) -> list[tuple[Path, str]]:
    """The temporary files no live process writes (:func:`probe.files.stale_temporaries`, the one rule) in every
    store, each with what it was: the caches' (a cache file), the runs' folders, recorded ones (a run registered by
    path too) and those under ``runs/`` (a label-issues result, a run's file, an --out written into it): no later
    write has their name, so none would remove them. The files older versions named ``NAME.tmp`` (no process id)
    are taken under the data directory only: a run folder registered by path may hold a user's own."""
    from probe.files import stale_temporaries

    runs = {Path(path) for path in store.run_paths()}
    if settings.runs_dir.is_dir():
        runs |= {folder for folder in settings.runs_dir.iterdir() if not folder.is_symlink()}
    stores = [(settings.caches_dir, "a cache file")] + [(run, "a run's file") for run in sorted(runs)]
    home = settings.data_dir.resolve()
    return [(tmp, what) for folder, what in stores if folder.is_dir() and not folder.is_symlink()
            for tmp in stale_temporaries(folder, legacy=folder.resolve().is_relative_to(home))]


def sweep_data_dir(store: Store, settings: Settings) -> list[Path]:
    """Remove orphaned uploads and stale extraction files; returns what was removed."""
    from feature_cache import discard_partial
    from feature_cache.archives import orphaned_decompressions

    from .removal import remove_under

    removed: list[Path] = []
    if settings.uploads_dir.is_dir():
        for folder in sorted(settings.uploads_dir.iterdir()):
            try:
                store.get_dataset(folder.name)
            except NotFound:
                remove_under(folder, settings.uploads_dir)  # a link alone, never what it points to
                logger.warning("removed upload %s: no data set uses it (an upload that did not finish)", folder)
                removed.append(folder)
    keep, unrecorded = extractions_in_use(store), unrecorded_extractions(store)
    if settings.caches_dir.is_dir():
        stale = {str(p)[: -len(suffix)] for suffix in _SUFFIXES for p in settings.caches_dir.rglob(f"*{suffix}")}
        for final in sorted(stale - keep):
            if Path(final).relative_to(settings.caches_dir).parts[0] in unrecorded:
                logger.warning("kept the partial file of %s: a job of its data set that has not recorded its file "
                               "may resume from it", final)
                continue
            if discard_partial(final):
                logger.warning("removed the partial / lock files of %s: no resumable job extracts it", final)
                removed.append(Path(final))
    for tmp, what in _stale_temporaries(store, settings):
        tmp.unlink(missing_ok=True)
        logger.warning("removed %s: %s its writer did not finish", tmp, what)
        removed.append(tmp)
    _fill_extractors(store)
    for folder in abandoned_runs(store, settings):
        remove_under(folder, settings.runs_dir)  # a link alone, never what it points to
        logger.warning("removed run folder %s: a cancelled job's run that did not finish", folder)
        removed.append(folder)
    for tmp in orphaned_decompressions():  # in the temporary folder: a killed process's decompressed archive
        try:
            tmp.unlink(missing_ok=True)
        except OSError as exc:  # the folder is shared: never a reason not to start
            logger.warning("could not remove %s, a decompressed archive whose process was killed: %s", tmp, exc)
            continue
        logger.warning("removed %s: a decompressed archive whose process was killed", tmp)
        removed.append(tmp)
    return removed
