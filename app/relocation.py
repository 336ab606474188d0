"""A data directory moved or copied elsewhere: the paths its database holds follow it.

The rows of runs, extracted caches and uploaded data sets record absolute paths under the data directory (and a job's
result may: the cache file it extracts). A directory moved to a new disk, or into a Docker volume at ``/data``, kept
its rows with none of their files found (every report a 404, every probe on its caches a 422; an upgrade round).
The database lies in the data directory it describes, so when a :class:`app.store.Store` opens one whose recorded
directory (the ``meta`` table; for a database written before it, the folder above its runs or caches) is not the
folder it lies in, the paths under the old directory are rewritten to the same paths under this one. Files registered
where they lie, outside the data directory, keep their paths.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
DATA_DIR_KEY = "data_dir"
# (table, column) of the paths a data directory's own files are recorded at; jobs' request / result are JSON
_PATH_COLUMNS = (("runs", "path"), ("caches", "path"), ("datasets", "path"))
_JSON_COLUMNS = (("jobs", "request"), ("jobs", "result"))
# where the data directory's own files lie: runs/<run id>, caches/<data set>/<encoder>/<file>, uploads/<data set>/...
_OWN_FOLDERS = {"runs": "runs", "caches": "caches", "datasets": "uploads"}


def recorded_data_dir(conn: sqlite3.Connection) -> str | None:
    """The data directory the database was last opened in: the ``meta`` row, else (a database written before it)
    the folder its first run, extracted cache or upload lies under, else None (nothing recorded there yet)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (DATA_DIR_KEY,)).fetchone()
    if row is not None:
        return row[0]
    for table, folder in _OWN_FOLDERS.items():
        for (path,) in conn.execute(f"SELECT path FROM {table}"):
            parts = Path(path).parts
            if folder in parts[:-1]:
                at = len(parts) - 1 - parts[::-1].index(folder)
                return str(Path(*parts[:at]))
    return None


def _moved(value: Any, old: Path, new: Path) -> Any:
    """``value`` with every string path under ``old`` put under ``new`` (through lists and dicts)."""
    if isinstance(value, str):
        path = Path(value)
        return str(new / path.relative_to(old)) if path.is_absolute() and path.is_relative_to(old) else value
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
    differs: ``(the old directory, rows changed)``, or None when nothing moved. In ``conn``'s transaction."""
    conn.execute(META_SCHEMA)
    was, now = recorded_data_dir(conn), str(here)
    moved = None
    if was is not None and was != now:
        moved = (was, relocate(conn, was, now))
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (DATA_DIR_KEY, now))
    return moved
