"""A data directory moved or copied elsewhere: the paths its database holds follow it.

The rows of runs, extracted caches and uploaded data sets record absolute paths under the data directory (and a job's
result may: the cache file it extracts). A directory moved to a new disk, or into a Docker volume at ``/data``, kept
its rows with none of their files found (every report a 404, every probe on its caches a 422; an upgrade round).
The database lies in the data directory it describes, so when a :class:`app.store.Store` opens one whose recorded
directory (the ``meta`` table; for a database written before it, the folder above the service's own runs, caches or
uploads) is not the folder it lies in, the paths under the old directory are rewritten to the same paths under this
one. Files registered where they lie, outside the data directory, keep their paths.

Only while no server runs the directory's jobs (its ``worker.lock`` free): a process opening a live directory by
another path (a bind mount, a Docker volume's host path) rewrote the running server's rows to paths it could not
read (a review).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from .datadir import DataDirBusy, lock_data_dir

META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
DATA_DIR_KEY = "data_dir"
# (table, column) of the paths a data directory's own files are recorded at; jobs' request / result are JSON
_PATH_COLUMNS = (("runs", "path"), ("caches", "path"), ("datasets", "path"))
_JSON_COLUMNS = (("jobs", "request"), ("jobs", "result"))
_OWN_FOLDERS = ("runs", "caches", "uploads")


def _own_folder(table: str, row_id: str, dataset_id: str | None, path: str) -> Path | None:
    """The data directory a row's path lies in when the row is the service's own file, else None: a run at
    ``runs/<run id>``, an extracted cache at ``caches/<its data set>/<encoder>/<file>``, an upload under
    ``uploads/<its id>/``. A file registered where it lies is none of these (a review: a registered
    ``…/datasets/caches/x.h5`` was taken for the data directory's cache and every row moved there)."""
    parts = Path(path).parts
    # a relative path may start with the folder itself: an older version under --data-dir . ('runs/<run id>'; a
    # review); an absolute one names a folder below the root
    least = 1 if Path(path).is_absolute() else 0
    if table == "runs":
        return Path(*parts[:-2]) if len(parts) >= 2 + least and parts[-2:] == ("runs", row_id) else None
    if table == "caches":
        return Path(*parts[:-4]) if len(parts) >= 4 + least and parts[-4:-2] == ("caches", dataset_id) else None
    pairs = [i for i in range(len(parts) - 1) if parts[i:i + 2] == ("uploads", row_id)]
    return Path(*parts[:pairs[0]]) if pairs and pairs[0] >= least else None


def recorded_data_dir(conn: sqlite3.Connection) -> str | None:
    """The data directory the database was last opened in: the ``meta`` row, else (a database written before it)
    the folder the service's own first run, extracted cache or upload lies in (:func:`_own_folder`), else None."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (DATA_DIR_KEY,)).fetchone()
    if row is not None:
        return row[0]
    return next(iter(_own_folders(conn)), None)


def _own_folders(conn: sqlite3.Connection, relative: bool = False) -> list[str]:
    """The data directories the service's own runs, extracted caches and uploads lie in (:func:`_own_folder`), in
    the order first met; with ``relative``, only relative ones: an older version under a relative --data-dir (the
    default ``.mr2probe``) recorded its files relative to the folder it was started in, which a server started
    anywhere else, and every path-following after the directory was recorded, missed (an upgrade round)."""
    queries = (("runs", "SELECT id, NULL, path FROM runs"), ("caches", "SELECT id, dataset_id, path FROM caches"),
               ("datasets", "SELECT id, NULL, path FROM datasets"))
    only = " WHERE path NOT LIKE '/%'" if relative else ""  # every open asks: absolute rows are not read
    rows = [(table, *row) for table, sql in queries for row in conn.execute(sql + only)]
    folders: dict[str, None] = {}
    for table, row_id, dataset_id, path in [*rows, *_extractions(conn, relative)]:
        folder = _own_folder(table, row_id, dataset_id, path)
        if folder is not None:  # with relative, the queries read relative paths only: their folders are too
            folders[str(folder)] = None
    return list(folders)


def _extractions(conn: sqlite3.Connection, relative: bool) -> list[tuple[str, None, str, str]]:
    """The cache files jobs' extractions write (``jobs.result.extraction``, under ``caches/<data set>/``) as cache
    rows for :func:`_own_folder`: a data set registered where it lies, its extraction interrupted, left the job's
    file the one relative path an older version wrote, which stayed relative, and the resumed job discarded the
    partial file as 'the images to extract changed' (a review)."""
    sql = "SELECT request, result FROM jobs WHERE result LIKE '%\"extraction\": \"%'"  # as json.dumps writes it
    found = []
    # every open asks: the jobs whose file is absolute are not read
    for request, result in conn.execute(sql + (" AND result NOT LIKE '%\"extraction\": \"/%'" if relative else "")):
        target, dataset_id = json.loads(result).get("extraction"), json.loads(request).get("dataset_id")
        if isinstance(target, str) and isinstance(dataset_id, str):
            found.append(("caches", None, dataset_id, target))
    return found


def _under(path: Path, old: Path) -> bool:
    """Whether ``path`` lies under the data directory ``old``: an absolute one, or for a relative ``old`` (an older
    version's relative --data-dir) a relative path that names one of its own folders under it."""
    if path.is_absolute() != old.is_absolute() or not path.is_relative_to(old):
        return False
    rest = path.relative_to(old).parts
    return old.is_absolute() or (len(rest) > 1 and rest[0] in _OWN_FOLDERS)


def _moved(value: Any, old: Path, new: Path) -> Any:
    """``value`` with every string path under ``old`` put under ``new`` (through lists and dicts)."""
    if isinstance(value, str):
        path = Path(value)
        return str(new / path.relative_to(old)) if _under(path, old) else value
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    return value


def relocate(conn: sqlite3.Connection, old: str, new: str) -> int:
    """Rewrite every recorded path under ``old`` to lie under ``new``, in ``conn``'s transaction; how many rows
    changed."""
    changed = 0
    for table, column in (*_PATH_COLUMNS, *_JSON_COLUMNS):
        encoded = (table, column) in _JSON_COLUMNS
        for row_id, text in conn.execute(f"SELECT id, {column} FROM {table}").fetchall():
            value = json.loads(text) if encoded else text
            moved = _moved(value, Path(old), Path(new))
            if moved != value:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?",
                             (json.dumps(moved) if encoded else moved, row_id))
                changed += 1
    return changed


def follow_data_dir(conn: sqlite3.Connection, here: Path) -> tuple[str, int] | None:
    """Record ``here`` as the database's data directory, first moving the paths under the one it recorded when that
    differs: ``(the old directory, rows changed)``, or None when nothing moved. In ``conn``'s transaction; nothing
    is changed while a server holds the directory (:func:`app.datadir.lock_data_dir`)."""
    conn.execute(META_SCHEMA)
    was, now = recorded_data_dir(conn), str(here)
    record = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
    # an absolute directory recorded elsewhere, and every relative one the rows still name, lie here now
    olds = [*((was,) if was is not None and was != now and Path(was).is_absolute() else ()),
            *_own_folders(conn, relative=True)]
    if not olds:
        if was is None:  # nothing of its own recorded yet: nothing to move
            conn.execute(record, (DATA_DIR_KEY, now))
        return None
    try:
        lock = lock_data_dir(here)
    except DataDirBusy:  # a server runs it, perhaps under another path: its rows are its own
        return None
    try:
        moved = (", ".join(olds), sum(relocate(conn, old, now) for old in olds))
        conn.execute(record, (DATA_DIR_KEY, now))
    finally:
        lock.close()
    return moved
