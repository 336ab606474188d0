"""Deleting data sets, feature caches and probe runs (``DELETE /api/datasets|caches|runs/{id}``).

The rows go in one transaction (:meth:`app.store.Store.delete`), refused with a 409 while a job that is queued,
running or interrupted (it resumes) uses one of them, and while a data set still has caches or a cache still has
runs, unless ``cascade`` deletes those too. Only then are files removed, and only the service's own: a run's folder
under ``runs/``, a cache file (with the ``.damaged`` file a damaged earlier one was renamed to) under ``caches/``,
a data set's folder under ``caches/`` and its uploaded archive under ``uploads/``. A folder or cache file registered
by path is the user's and is never touched. Partial extraction files are left to the start-up sweep
(:func:`app.cleanup.sweep_data_dir`), which knows the jobs that resume from them.

A run that named a deleted run as its reference keeps its report (its groups are stored in it); the dashboard no
longer offers that comparison.
"""
from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from probe.names import listed

from .caches import REGISTERED
from .config import Settings
from .status import NOUNS, OPEN, InvalidTransition
from .store import Store

logger = logging.getLogger(__name__)

# table -> (the table of its dependents, their column naming it)
_DEPENDENTS = {"datasets": ("caches", "dataset_id"), "caches": ("runs", "cache_id")}
_LISTED = 5  # ids named in a refusal


def _uses(job: dict[str, Any], table: str, row: dict[str, Any]) -> bool:
    """Whether ``job`` reads ``row`` of ``table``: named in its request; made by it (its ``job_id``), so read by its
    next step (a pipeline's cache, its ERM run that its other probes take as their reference); or being made by it:
    the cache file its extraction writes or reuses (``extraction``, before the cache is recorded), the run it
    trains (``pending_run``, before the run is recorded). The last two were deleted under a running job (an attack
    round): a reused cache file went while its job recorded it again, as a row without a file."""
    result = job["result"]
    if (table, row["id"]) in Store.job_rows(job["request"], result):
        return True
    if table == "datasets":
        return False
    if row.get("job_id") == job["id"]:
        return True
    return result.get("extraction") == row["path"] if table == "caches" else result.get("pending_run") == row["id"]


def _with_dependents(store: Store, conn: sqlite3.Connection, table: str, row: dict) -> list[tuple[str, dict]]:
    """``row`` and every row that depends on it, dependents first (the order the foreign keys allow)."""
    out: list[tuple[str, dict]] = []
    if table in _DEPENDENTS:
        child, column = _DEPENDENTS[table]
        for dependent in store.rows(f"SELECT * FROM {child} WHERE {column} = ? ORDER BY rowid", (row["id"],), conn):
            out += _with_dependents(store, conn, child, dependent)
    return out + [(table, row)]


def _listing(ids: list[str], quoted: bool = True) -> str:
    return listed([repr(i) if quoted else i for i in ids], _LISTED)


def deletion_plan(store: Store, cascade: bool):
    """The ``plan`` of :meth:`Store.delete`: the rows to delete, or InvalidTransition (409) naming what holds."""

    def plan(conn: sqlite3.Connection, table: str, row: dict) -> list[tuple[str, dict]]:
        doomed = _with_dependents(store, conn, table, row)
        what = f"{NOUNS[table]} {row['id']!r}"
        if len(doomed) > 1 and not cascade:
            kinds = sorted({kind for kind, _ in doomed[:-1]}, key=list(NOUNS).index)
            counts = "; ".join(f"{NOUNS[k]}s {_listing([r['id'] for t, r in doomed[:-1] if t == k])}" for k in kinds)
            raise InvalidTransition(f"{what} has {counts}: delete them first, or send cascade=true to delete them "
                                    "with it")
        marks = ", ".join("?" for _ in OPEN)
        jobs = store.rows(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY rowid",
                          tuple(s.value for s in OPEN), conn)
        for kind, doomed_row in doomed:
            holders = [j for j in jobs if _uses(j, kind, doomed_row)]
            if holders:
                held = f"{NOUNS[kind]} {doomed_row['id']!r}" + ("" if doomed_row is row else f" (of {what})")
                jobs_named = _listing([f"{j['id']!r} ({j['status']})" for j in holders], quoted=False)
                raise InvalidTransition(f"{held} is used by job {jobs_named}: cancel it or let it finish, then delete")
        return doomed

    return plan


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def remove_under(path: Path, folder: Path) -> None:
    """Remove ``path`` (a file or a folder), only when it lies under the service's ``folder``; a symbolic link
    there is removed itself, never what it points to (it was left dangling; an attack round)."""
    if path.is_symlink():
        if _inside(path.parent, folder):
            path.unlink(missing_ok=True)
        return
    if not _inside(path, folder) or path.resolve() == folder.resolve():
        logger.warning("not removing %s: outside %s", path, folder)
        return
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)  # does not follow links inside it
    else:
        path.unlink(missing_ok=True)


def _remove_cache_file(path: Path, caches_dir: Path) -> None:
    for suffix in ("", ".damaged"):
        remove_under(path.with_name(path.name + suffix), caches_dir)
    for parent in path.parents:  # the folders of its data set and encoder, once empty
        if parent.resolve() == caches_dir.resolve() or not _inside(parent, caches_dir):
            break
        try:
            parent.rmdir()
        except OSError:  # not empty: another cache of them
            break


def remove_files(settings: Settings, doomed: list[tuple[str, dict]]) -> None:
    """The files of deleted rows (see the module's docstring); a file already gone is not an error, nor one the
    file system refuses (logged: the rows are gone, and a 500 would say the deletion failed; a review)."""
    for table, row in doomed:
        try:
            if table == "runs":
                remove_under(Path(row["path"]), settings.runs_dir)
            elif table == "caches":
                if row.get("source") != REGISTERED:
                    _remove_cache_file(Path(row["path"]), settings.caches_dir)
            else:
                remove_under(settings.caches_dir / row["id"], settings.caches_dir)  # left over: damaged, cancelled files
                if row["source"] == "upload":
                    remove_under(settings.uploads_dir / row["id"], settings.uploads_dir)
        except OSError as exc:
            logger.warning("deleted %s %s; its files could not all be removed: %s", NOUNS[table], row["id"], exc)


def _notes(store: Store, doomed: list[tuple[str, dict]]) -> list[str]:
    """What a deletion left as it was, for the answer."""
    notes = [f"the files of data set {row['id']!r} were registered by path: they are left on the server as they were"
             for table, row in doomed if table == "datasets" and row["source"] != "upload"]
    notes += [f"the file of cache {row['id']!r} was registered by path: it is left on the server as it was"
              for table, row in doomed if table == "caches" and row.get("source") == REGISTERED]
    for table, row in doomed:
        if table == "runs":
            users = [r["id"] for r in store.rows("SELECT id FROM runs WHERE reference_run = ? ORDER BY rowid",
                                                 (row["id"],))]
            if users:
                # "run 'a', 'b' took ... as its reference: it keeps its report" (a dashboard round)
                who, whose, keeps = ("run", "its", "it keeps its report") if len(users) == 1 else (
                    "runs", "their", "they keep their reports")
                notes.append(f"{who} {_listing(users)} took run {row['id']!r} as {whose} reference: {keeps} and "
                             "groups; the comparison with it is gone")
    return notes


def delete(store: Store, settings: Settings, table: str, row_id: str, cascade: bool = False,
           dry_run: bool = False) -> dict[str, Any]:
    """Delete a data set, cache or run (with its dependents when ``cascade``), then its files; returns what was
    deleted (dependents first) and notes on what was left (``app.schemas.DeletedOut``). With ``dry_run``, what it
    would delete, or the same refusal, and nothing is deleted: the dashboard's confirmation names it (it counted
    from its last listing; an attack round)."""
    doomed = store.delete(table, row_id, deletion_plan(store, cascade), dry_run=dry_run)
    if not dry_run:
        remove_files(settings, doomed)
        logger.info("deleted %s", ", ".join(f"{NOUNS[t]} {r['id']}" for t, r in doomed))
    return {"deleted": [{"kind": NOUNS[t], "id": r["id"], "name": r.get("name")} for t, r in doomed],
            "notes": _notes(store, doomed), "dry_run": dry_run}
