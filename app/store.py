"""Persistent state in SQLite: data sets, feature caches, jobs and probe runs.

The database runs in WAL mode so that status polling never blocks the worker. Every change of state is
one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``); job status changes are guarded by the current status in
the ``WHERE`` clause, so two threads can never both claim or finish the same job.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .relocation import follow_data_dir
from .status import FINISHED, NOUNS, RESUMABLE, InvalidTransition, JobStatus, NotFound, QueueFull

logger = logging.getLogger(__name__)

MAX_MESSAGES = 200  # per job; older messages are dropped first

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL, path TEXT NOT NULL,
    class_names TEXT NOT NULL, counts TEXT NOT NULL, fingerprint TEXT, skipped INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS caches (
    id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL REFERENCES datasets(id), encoder TEXT NOT NULL,
    path TEXT NOT NULL, fingerprint TEXT, num_features INTEGER, class_names TEXT NOT NULL,
    counts TEXT NOT NULL, job_id TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '', messages TEXT NOT NULL DEFAULT '[]', request TEXT NOT NULL,
    result TEXT NOT NULL DEFAULT '{}', error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, started_at TEXT, finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, job_id TEXT, cache_id TEXT NOT NULL REFERENCES caches(id), name TEXT NOT NULL,
    head TEXT, loss TEXT, reference_run TEXT, path TEXT NOT NULL, summary TEXT NOT NULL,
    created_at TEXT NOT NULL, verdict TEXT, test_check TEXT
);
-- a cache's runs (the runs list of one cache, a cache's deletion, a pipeline's reference) and a data set's caches
-- (its deletion): each was a scan of the whole table
CREATE INDEX IF NOT EXISTS runs_cache ON runs(cache_id);
CREATE INDEX IF NOT EXISTS caches_dataset ON caches(dataset_id);
CREATE TABLE IF NOT EXISTS skipped_files (
    dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE, position INTEGER NOT NULL,
    name TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (dataset_id, position)
) WITHOUT ROWID;
"""


def left_out_json(config: dict[str, Any]) -> str:
    """The runs column ``left_out`` of a run's config: its ``drop_classes`` composed (``probe.names.class_name``, as
    the run's classes are), sorted, as JSON. As given, a class named in decomposed Unicode was another list than the
    same class named composed, and the run page called two runs of the same classes not comparable (an attack
    round)."""
    from probe.names import class_name

    return json.dumps(sorted(class_name(name) for name in config.get("drop_classes") or []))


def _from_selection(column: str):
    """How the old rows of a runs column get their value: the report's ``selection[column]``, read from each run's
    report.json (left NULL where that file is gone or unreadable, or has no such key)."""

    def fill(conn: sqlite3.Connection) -> None:
        for row in conn.execute("SELECT id, path FROM runs").fetchall():
            try:
                value = json.loads((Path(row["path"]) / "report.json").read_text())["selection"].get(column)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
                continue
            conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, row["id"]))

    return fill


def _from_report(column: str, value: Callable[[Any], Any]):
    """How the old rows of a runs column get their value: ``value`` of each run's report.json, as a
    :class:`probe.report.Report` (left NULL where that file is gone or unreadable)."""

    def fill(conn: sqlite3.Connection) -> None:
        from probe.report import Report

        for row in conn.execute("SELECT id, path FROM runs").fetchall():
            try:
                report = Report.model_validate_json((Path(row["path"]) / "report.json").read_bytes())
            except (OSError, ValueError):
                continue
            conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value(report), row["id"]))

    return fill


def _probe_words(report: Any) -> str:
    from probe.compare import probe_words

    return probe_words(report)


def _reference_configs(conn: sqlite3.Connection) -> None:
    """The ``reference_config`` of the runs recorded before it, from their jobs' records where they are still
    there: a succeeded probe job without a reference run (its config), a pipeline whose first run it is (its first
    probe)."""
    conn.execute("""UPDATE runs SET reference_config = COALESCE(
        (SELECT json_extract(j.request, '$.config') FROM jobs j WHERE j.id = runs.job_id AND j.kind = 'probe'
         AND j.status = 'succeeded' AND json_extract(j.request, '$.reference_run') IS NULL),
        (SELECT json_extract(j.request, '$.probes[0]') FROM jobs j WHERE j.id = runs.job_id AND j.kind = 'pipeline'
         AND json_extract(j.result, '$.run_ids[0]') = runs.id))""")


# Columns added after a table's first release: (table, column, SQL type, how its old rows get their values). A
# database written before one gets it when a Store opens it.
_ADDED_COLUMNS = (("runs", "verdict", "TEXT", _from_selection("verdict")),
                  ("runs", "test_check", "TEXT", _from_selection("test_check")),
                  # "extraction": written by a job under caches/; "path": a finished file registered where it lies
                  ("caches", "source", "TEXT NOT NULL DEFAULT 'extraction'", lambda conn: None),
                  ("runs", "note", "TEXT NOT NULL DEFAULT ''", lambda conn: None),
                  # a file registered by path: its size and modification time when its values were checked
                  # (app.caches.file_stamp); NULL for extractions and rows written before it
                  ("caches", "stamp", "TEXT", lambda conn: None),
                  # the stamp of its cache's file when the run read it: a reference is reused only on the same
                  ("runs", "cache_stamp", "TEXT", lambda conn: None),
                  # what the run ships, in words (probe.compare.probe_words): its loss options, preset, a kept
                  # reference and a post-hoc bias, which the runs list's loss and head alone left out
                  ("runs", "probe", "TEXT", _from_report("probe", _probe_words)),
                  # a post-hoc bias run's outcome for the probe that ships (probe.report.Posthoc.outcome)
                  ("runs", "posthoc", "TEXT", _from_report("posthoc", lambda r: r.posthoc and r.posthoc.outcome())),
                  # whether a data set's val split is its own (LabelledImages.val_given); NULL: registered before
                  ("datasets", "val_given", "INTEGER", lambda conn: None),
                  # a cache's extractor fingerprint (feature_cache.FeatureCache.extractor): NULL for rows written
                  # before it, filled by the job server's start-up sweep (app.cleanup), outside this transaction
                  ("caches", "extractor", "TEXT", lambda conn: None),
                  # a data set's skipped files grouped by reason (app.skipped.group_reasons, JSON; its files in the
                  # table skipped_files): NULL for data sets registered before, which only counted them
                  ("datasets", "skipped_reasons", "TEXT", lambda conn: None),
                  # what its registration warned of it (feature_cache.options.cautions' warnings, JSON): NULL for
                  # data sets registered before, read as none
                  ("datasets", "data_warnings", "TEXT", lambda conn: None),
                  # the classes a run left out (its config's drop_classes), sorted, JSON: which runs of a cache it can
                  # be compared with; NULL where its report could not be read
                  ("runs", "left_out", "TEXT", _from_report("left_out", lambda r: left_out_json(r.config))),
                  # the stored configuration (JSON) its job trained it with as its reference (a probe job without a
                  # reference run, a pipeline's first probe), NULL otherwise: what a pipeline reuses it by, which
                  # the job's record told alone, and removing finished jobs' records lost (an attack round)
                  ("runs", "reference_config", "TEXT", _reference_configs),
                  # the layout of the data set a cache was extracted from (feature_cache.FeatureCache.layout): how a
                  # job on it says to add images (rows of a manifest pair's CSV files, not class folders); NULL for
                  # rows written before it, whose advice is neutral
                  ("caches", "layout", "TEXT", lambda conn: None))



def _compose_left_out(conn: sqlite3.Connection) -> None:
    """The runs' ``left_out`` as :func:`left_out_json` writes it now (class names composed, sorted): rows written
    before kept names decomposed, and the dashboard called two runs of the same classes not comparable (a review);
    a value that is not a JSON list of names is left as it is."""
    for row in conn.execute("SELECT id, left_out FROM runs WHERE left_out IS NOT NULL").fetchall():
        try:
            names = json.loads(row["left_out"])
        except ValueError:
            continue
        if isinstance(names, list) and all(isinstance(name, str) for name in names):
            composed = left_out_json({"drop_classes": names})
            if composed != row["left_out"]:
                conn.execute("UPDATE runs SET left_out = ? WHERE id = ?", (composed, row["id"]))


# Changes of stored values after their columns came: (name, how). Each runs once per database, after the columns
# above, and is recorded in the meta table (app.relocation.META_SCHEMA) under "migration:<name>".
_MIGRATIONS = (("left_out composed", _compose_left_out),)

_JSON_COLUMNS = {"class_names", "counts", "messages", "request", "result", "summary"}


# A running job's message when a user asks to cancel it (app.worker.JobRunner.cancel); "resumed" starts an attempt
CANCEL_REQUESTED = "cancellation requested"
RESUMED = "resumed"


def cancel_asked(messages: list[dict[str, Any]]) -> bool:
    """Whether a cancellation was asked for the job's latest attempt (``messages``: its messages): a server that
    stopped before the job's next check left it running, and it came back interrupted and resumable."""
    texts = [m.get("text") for m in messages]
    return CANCEL_REQUESTED in texts[max((i for i, t in enumerate(texts) if t == RESUMED), default=-1) + 1:]


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class Store:
    """Thread-safe access to the service database at ``path`` (created on first use).

    Each thread keeps its own connection, closed by the next new connection once its thread has ended (the request
    threads come and go: each one's connection stayed open, two descriptors each, 93 connections held by 15 threads
    after 90 s of load; a load round); writes go through :meth:`_tx`, one transaction each.
    """

    def __init__(self, path: Path, data_root: Path | None = None):
        self.path = Path(path)
        # the server's data root, which what was registered by path must lie under to be read (app.caches.cache_file)
        self.data_root = data_root
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # every thread's connection and its thread: for close(), and closed once its thread has ended
        self._open: dict[sqlite3.Connection, threading.Thread] = {}
        self._open_lock = threading.Lock()
        self._conn().executescript(SCHEMA)
        # a data directory moved or copied: its runs', caches' and uploads' paths follow it, before the columns
        # below read the runs' reports where they lie (a review: moved, they were filled with nothing, for good)
        with self._tx() as conn:
            moved = follow_data_dir(conn, self.path.parent.resolve())
        if moved:
            logger.warning("the data directory moved from %s to %s: %d rows' paths now lie under it", moved[0],
                           self.path.parent.resolve(), moved[1])
        for table, column, kind, fill in _ADDED_COLUMNS:
            with self._tx() as conn:  # under the write lock: a second process opening the database waits, then sees it
                if column not in {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    fill(conn)
        for name, migrate in _MIGRATIONS:
            with self._tx() as conn:
                key = f"migration:{name}"
                if conn.execute("SELECT 1 FROM meta WHERE key = ?", (key,)).fetchone() is None:
                    migrate(conn)
                    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, utcnow()))

    # -- plumbing -------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn not in self._open:  # none yet, or closed by close()
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._open_lock:
                ended = [old for old, thread in self._open.items() if not thread.is_alive()]
                for old in ended:
                    del self._open[old]
                self._open[conn] = threading.current_thread()
            for old in ended:
                old.close()
        return conn

    def close(self) -> None:
        """Close every thread's connection, at the server's stop: the last one to close checkpoints the WAL into the
        database and removes the -wal and -shm files, which stayed after every graceful stop (the request threads'
        connections were never closed; an operator round). A later call opens a connection again."""
        with self._open_lock:
            connections, self._open = list(self._open), {}
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - a connection in use by a thread that outlived the stop
                logger.warning("a database connection could not be closed at the stop", exc_info=True)

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection (a later call opens another): what a thread that ends calls. The
        worker runs each job in a thread of its own, and each one's connection stayed open (the database and its
        WAL, two descriptors a job: 187 of each after ~220 jobs; an operator round)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._open_lock:
                self._open.pop(conn, None)
            conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """The calling thread's reads inside see the database as at the first of them (one read transaction; no write
        inside): a listing's total and its rows agree while the worker or a deletion writes (two reads, they did not:
        30 runs under an X-Total-Count of 29; a load round)."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out = dict(row)
        for key in _JSON_COLUMNS & out.keys():
            out[key] = json.loads(out[key])
        return out

    def _get(self, table: str, row_id: str) -> dict[str, Any]:
        row = self._conn().execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            raise NotFound(table, row_id)
        return self._row(row)

    def _list(self, table: str, where: str = "", args: tuple = (), limit: int = 500,
              offset: int = 0, order: str = "", order_args: tuple = ()) -> list[dict[str, Any]]:
        """Rows of ``table`` (``where``), newest first after ``order`` (an ORDER BY term with ``order_args``)."""
        sql = f"SELECT * FROM {table} {where} ORDER BY {order + ', ' if order else ''}rowid DESC LIMIT ? OFFSET ?"
        return [self._row(r) for r in self._conn().execute(sql, (*args, *order_args, limit, offset)).fetchall()]

    def count(self, table: str, where: str = "", args: tuple = ()) -> int:
        """Rows of ``table`` (``datasets``, ``caches``, ``runs``, ``jobs``; ``where``: those of a filter): the total a
        listing's page is of."""
        if table not in ("datasets", "caches", "runs", "jobs"):
            raise ValueError(f"unknown table {table!r}")
        return int(self._conn().execute(f"SELECT COUNT(*) FROM {table} {where}", args).fetchone()[0])

    def _insert(self, table: str, values: dict[str, Any], before=None) -> dict[str, Any]:
        """Insert a row (``before(conn)`` first, in the same transaction: a check that may refuse it)."""
        with self._tx() as conn:
            if before is not None:
                before(conn)
            self._insert_in(conn, table, values)
        return self._get(table, values["id"])

    @staticmethod
    def _insert_in(conn: sqlite3.Connection, table: str, values: dict[str, Any]) -> None:
        """``INSERT`` one row on ``conn`` (inside a transaction), its JSON columns encoded."""
        encoded = {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in values.items()}
        conn.execute(f"INSERT INTO {table} ({', '.join(encoded)}) VALUES ({', '.join('?' for _ in encoded)})",
                     tuple(encoded.values()))

    # -- data sets, caches, runs ------------------------------------------------------------------
    @staticmethod
    def _dataset_row(*, name: str, source: str, path: str, class_names: list[str], counts: dict[str, list[int]],
                     fingerprint: str | None, skipped: int, dataset_id: str | None = None,
                     val_given: bool | None = None, skipped_reasons: list[dict[str, Any]] | None = None,
                     data_warnings: list[str] | None = None) -> dict[str, Any]:
        return dict(id=dataset_id or new_id("ds"), name=name, source=source, path=path, class_names=class_names,
                    counts=counts, fingerprint=fingerprint, skipped=skipped, created_at=utcnow(), val_given=val_given,
                    skipped_reasons=None if skipped_reasons is None else json.dumps(skipped_reasons),
                    data_warnings=None if data_warnings is None else json.dumps(data_warnings))

    def add_dataset(self, *, skipped_files: list[tuple[str, str]] = (), **values: Any) -> dict[str, Any]:
        """A new data set row (:meth:`_dataset_row`'s arguments) and its ``skipped_files`` ((name, reason) pairs,
        bounded by the caller: ``app.skipped.recorded_files``)."""
        row = self._dataset_row(**values)
        with self._tx() as conn:
            self._insert_in(conn, "datasets", row)
            self._insert_skipped(conn, row["id"], skipped_files)
        return self._get("datasets", row["id"])

    @staticmethod
    def _insert_skipped(conn: sqlite3.Connection, dataset_id: str, files: list[tuple[str, str]]) -> None:
        conn.executemany("INSERT INTO skipped_files (dataset_id, position, name, reason) VALUES (?, ?, ?, ?)",
                         [(dataset_id, i, name, reason) for i, (name, reason) in enumerate(files)])

    def skipped_files(self, dataset_id: str, limit: int,
                      offset: int) -> tuple[int, list[dict[str, Any]] | None, int, list[tuple[str, str]]]:
        """A data set's skipped files: ``(total, reasons, kept, page)``: how many were skipped, its reasons grouped
        (None: registered before they were recorded), how many files it keeps and ``limit`` of them from
        ``offset``, in the order found; in one read transaction, so that a registration again that records them
        is seen whole or not at all."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            row = conn.execute("SELECT skipped, skipped_reasons FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            if row is None:
                raise NotFound("datasets", dataset_id)
            kept = conn.execute("SELECT COUNT(*) FROM skipped_files WHERE dataset_id = ?", (dataset_id,)).fetchone()[0]
            page = conn.execute("SELECT name, reason FROM skipped_files WHERE dataset_id = ? ORDER BY position "
                                "LIMIT ? OFFSET ?", (dataset_id, limit, offset)).fetchall()
        finally:
            conn.execute("COMMIT")
        reasons = None if row["skipped_reasons"] is None else json.loads(row["skipped_reasons"])
        return int(row["skipped"]), reasons, int(kept), [(r["name"], r["reason"]) for r in page]

    _SAME_CONTENT = "SELECT * FROM datasets WHERE source = ? AND fingerprint IS ? ORDER BY rowid"

    def find_or_add_dataset(self, same: Callable[[dict[str, Any]], bool] | None = None,
                            skipped_files: list[tuple[str, str]] = (), **values: Any) -> tuple[dict[str, Any], bool]:
        """The data set of the same content and classes registered from the same place (a folder: the same path;
        an upload: any upload, each has its own folder), else a new one (``add_dataset``'s arguments): ``(row,
        created)``, looked up in the transaction that would insert it. Looked up apart, two registrations at once
        both inserted, and one beside a deletion answered with the deleted id (an attack round); the same archive
        uploaded twice made two data sets, extracted twice (a new-user round). ``same(row)``, when given, must
        also hold for a row to be the one (an upload: the same archive bytes). A row found that was registered
        before its skipped files were recorded gets them (``skipped_files``, ``skipped_reasons``)."""
        new = self._dataset_row(**values)
        with self._tx() as conn:
            for found in conn.execute(self._SAME_CONTENT, (new["source"], new["fingerprint"])).fetchall():
                row = self._row(found)
                anywhere = new["source"] == "upload"
                if (row["class_names"] == new["class_names"] and (anywhere or row["path"] == new["path"])
                        and (same is None or same(row))):
                    if row.get("val_given") is None and new["val_given"] is not None:  # registered before it was
                        conn.execute("UPDATE datasets SET val_given = ? WHERE id = ?", (new["val_given"], row["id"]))
                        row = {**row, "val_given": new["val_given"]}
                    if row.get("data_warnings") is None and new["data_warnings"] is not None:  # the same
                        conn.execute("UPDATE datasets SET data_warnings = ? WHERE id = ?",
                                     (new["data_warnings"], row["id"]))
                        row = {**row, "data_warnings": new["data_warnings"]}
                    if row.get("skipped_reasons") is None and new["skipped_reasons"] is not None:  # the same
                        conn.execute("UPDATE datasets SET skipped_reasons = ?, skipped = ? WHERE id = ?",
                                     (new["skipped_reasons"], new["skipped"], row["id"]))
                        conn.execute("DELETE FROM skipped_files WHERE dataset_id = ?", (row["id"],))
                        self._insert_skipped(conn, row["id"], skipped_files)
                        row = {**row, "skipped_reasons": new["skipped_reasons"], "skipped": new["skipped"]}
                    return row, False
            self._insert_in(conn, "datasets", new)
            self._insert_skipped(conn, new["id"], skipped_files)
        return self._get("datasets", new["id"]), True

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._get("datasets", dataset_id)

    def list_datasets(self, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
        return self._list("datasets", limit=limit, offset=offset)

    def add_cache(self, *, dataset_id: str, encoder: str, path: str, fingerprint: str | None,
                  num_features: int | None, class_names: list[str], counts: dict[str, int],
                  job_id: str | None, source: str = "extraction", same_path: bool = True,
                  stamp: str | None = None, extractor: str | None = None,
                  layout: str | None = None) -> dict[str, Any]:
        """Record a finished cache; the same file recorded again returns the existing row (with ``same_path``
        False, the same file of the same fingerprint: a file registered by path that now holds other features is
        another cache). Looked up and inserted in one transaction: two registrations of one file at once made two
        rows (a review)."""
        where, args = ("path = ?", (path,)) if same_path else ("path = ? AND fingerprint = ?", (path, fingerprint))
        values = dict(id=new_id("cache"), dataset_id=dataset_id, encoder=encoder, path=path, fingerprint=fingerprint,
                      num_features=num_features, class_names=class_names, counts=counts, job_id=job_id,
                      source=source, stamp=stamp, extractor=extractor, layout=layout, created_at=utcnow())
        with self._tx() as conn:
            row = conn.execute(f"SELECT id FROM caches WHERE {where} ORDER BY rowid", args).fetchone()
            if row is None and conn.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone() is None:
                # deleted since the caller found it: its foreign key was a 500 (an attack round's race)
                raise NotFound("datasets", dataset_id)
            if row is None:
                self._insert_in(conn, "caches", values)
        return self.get_cache(values["id"] if row is None else row["id"])

    def caches_without_extractor(self) -> list[dict[str, Any]]:
        """The cache rows whose extractor is unknown (written before the column), every one of them."""
        return [self._row(r) for r in self._conn().execute("SELECT * FROM caches WHERE extractor IS NULL").fetchall()]

    def set_cache_extractor(self, cache_id: str, extractor: str | None) -> None:
        """A cache row's extractor where it has none (a row written before the column; a file read since)."""
        with self._tx() as conn:
            conn.execute("UPDATE caches SET extractor = ? WHERE id = ? AND extractor IS NULL", (extractor, cache_id))

    def move_cache(self, cache_id: str, path: str, source: str, stamp: str | None = None) -> dict[str, Any]:
        """Read a cache's features at ``path`` from now on (the same fingerprint, registered again, elsewhere or
        checked again where it is: its ``stamp``)."""
        with self._tx() as conn:
            conn.execute("UPDATE caches SET path = ?, source = ?, stamp = ? WHERE id = ?",
                         (path, source, stamp, cache_id))
        return self.get_cache(cache_id)

    def get_cache(self, cache_id: str) -> dict[str, Any]:
        return self._get("caches", cache_id)

    def list_caches(self, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
        return self._list("caches", limit=limit, offset=offset)

    def add_run(self, *, run_id: str, job_id: str | None, cache_id: str, name: str, head: str | None,
                loss: str | None, reference_run: str | None, path: str, summary: dict,
                verdict: str | None = None, test_check: str | None = None,
                cache_stamp: str | None = None, probe: str | None = None,
                posthoc: str | None = None, left_out: str | None = None,
                reference_config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record a run; ``left_out``: :func:`left_out_json` of its config (None: not known); ``reference_config``:
        the stored configuration its job trained it with as its reference (None: not a reference)."""
        return self._insert("runs", dict(
            id=run_id, job_id=job_id, cache_id=cache_id, name=name, head=head, loss=loss,
            reference_run=reference_run, path=path, summary=summary, created_at=utcnow(), verdict=verdict,
            test_check=test_check, cache_stamp=cache_stamp, probe=probe, posthoc=posthoc, left_out=left_out,
            reference_config=None if reference_config is None else json.dumps(reference_config)))

    def update_run(self, run_id: str, **values: str) -> dict[str, Any]:
        """Set a run's ``name`` and / or ``note`` (what the user calls it, and why it matters), in one transaction."""
        columns = [key for key in ("name", "note") if key in values]
        with self._tx() as conn:
            if columns and conn.execute(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                                        (*(values[c] for c in columns), run_id)).rowcount == 0:
                raise NotFound("runs", run_id)
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._get("runs", run_id)

    @staticmethod
    def _run_filter(cache_id: str | None) -> tuple[str, tuple]:
        return ("", ()) if cache_id is None else ("WHERE cache_id = ?", (cache_id,))

    def list_runs(self, limit: int = 500, offset: int = 0, cache_id: str | None = None,
                  best: str | None = None, lowest: bool = False) -> list[dict[str, Any]]:
        """Runs (on ``cache_id``), newest first, or highest first by ``best`` (a JSON path into their summary, e.g.
        ``$.overall``; ``lowest``: lowest first; runs without it last): ``limit`` of them from ``offset``."""
        direction = "ASC" if lowest else "DESC"
        order, order_args = (f"json_extract(summary, ?) {direction} NULLS LAST", (best,)) if best else ("", ())
        return self._list("runs", *self._run_filter(cache_id), limit=limit, offset=offset, order=order,
                          order_args=order_args)

    def count_runs(self, cache_id: str | None = None) -> int:
        """Runs (on ``cache_id``): the total a page of :meth:`list_runs` is of."""
        return self.count("runs", *self._run_filter(cache_id))

    def run_paths(self) -> list[str]:
        """Every run's folder (no limit: what a sweep must keep)."""
        return [row["path"] for row in self._conn().execute("SELECT path FROM runs").fetchall()]

    def reference_runs(self, cache_id: str) -> list[dict[str, Any]]:
        """The runs on ``cache_id`` trained without a reference run (the ERM references), newest first."""
        return self._list("runs", "WHERE cache_id = ? AND reference_run IS NULL", (cache_id,))

    def delete(self, table: str, row_id: str,
               plan: Callable[[sqlite3.Connection, str, dict[str, Any]], list[tuple[str, dict[str, Any]]]],
               dry_run: bool = False) -> list[tuple[str, dict[str, Any]]]:
        """Delete row ``row_id`` of ``table`` with the rows ``plan(conn, table, row)`` returns (it included, children
        first), in one transaction; ``plan`` raises to refuse (:mod:`app.removal`). Returns the deleted rows (with
        ``dry_run``, those it would delete, deleting nothing)."""
        with self._tx() as conn:
            row = self._row(conn.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone())
            if row is None:
                raise NotFound(table, row_id)
            doomed = plan(conn, table, row)
            for kind, doomed_row in ([] if dry_run else doomed):
                conn.execute(f"DELETE FROM {kind} WHERE id = ?", (doomed_row["id"],))
        return doomed

    def rows(self, sql: str, args: tuple = (), conn: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        """Decoded rows of the query ``sql`` (on ``conn``: inside a transaction of :meth:`delete`)."""
        return [self._row(r) for r in (conn or self._conn()).execute(sql, args).fetchall()]

    # -- jobs -----------------------------------------------------------------------------------------
    def add_job(self, kind: str, request: dict[str, Any], max_queued: int | None = None) -> dict[str, Any]:
        """Queue a job; with ``max_queued``, only while fewer jobs wait (counted and inserted in one transaction:
        requests checked apart and inserted at once pushed the queue past its cap; an attack round)."""
        def before(conn: sqlite3.Connection) -> None:
            self._check_room(conn, max_queued)
            self._check_named(conn, request)

        now = utcnow()
        return self._insert("jobs", dict(
            id=new_id("job"), kind=kind, status=JobStatus.queued.value, progress=0.0, stage="queued",
            messages=[], request=request, result={}, error=None, attempts=0, created_at=now, updated_at=now),
            before=before)

    def check_room(self, max_queued: int) -> None:
        """Raise QueueFull when ``max_queued`` jobs wait already (a cheap early answer; add_job and resume check
        again where they queue)."""
        self._check_room(self._conn(), max_queued)

    @staticmethod
    def _check_room(conn: sqlite3.Connection, max_queued: int | None) -> None:
        if max_queued is None:
            return
        waiting = conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (JobStatus.queued.value,)).fetchone()[0]
        if waiting >= max_queued:
            raise QueueFull(f"{waiting} jobs are queued, the most this service takes (MR2PROBE_MAX_QUEUED_JOBS); "
                            "retry once some have run, or cancel some")

    # The rows a job's request names: a job is queued only while they exist (one deleted between the request's
    # checks and its queueing is a 404, not a job that fails when it starts).
    _NAMED = (("dataset_id", "datasets"), ("cache_id", "caches"), ("reference_run", "runs"), ("run_id", "runs"))

    @classmethod
    def _check_named(cls, conn: sqlite3.Connection, request: dict[str, Any]) -> None:
        gone = cls._gone(conn, request, {})
        if gone:
            raise NotFound(*gone)

    @classmethod
    def job_rows(cls, request: dict[str, Any], result: dict[str, Any]) -> list[tuple[str, str]]:
        """The (table, id) rows a job uses: those its request names, and the cache and runs its finished steps
        made (what a deletion waits for, and what a resume needs; ``app.removal``)."""
        named = [(table, request.get(key)) for key, table in cls._NAMED]
        named += [("caches", result.get("cache_id"))] + [("runs", run) for run in result.get("run_ids") or ()]
        return [(table, row_id) for table, row_id in named if row_id is not None]

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._get("jobs", job_id)

    @staticmethod
    def job_filter(status: JobStatus | None, kind: str | None = None, run_id: str | None = None
                    ) -> tuple[str, tuple]:
        """The WHERE clause of the jobs of ``status``, ``kind`` and whose request names run ``run_id`` (None: any)."""
        terms = [(term, value) for term, value in (("status = ?", None if status is None else JobStatus(status).value),
                                                   ("kind = ?", kind),
                                                   ("json_extract(request, '$.run_id') = ?", run_id))
                 if value is not None]
        return ("WHERE " + " AND ".join(t for t, _ in terms) if terms else "", tuple(v for _, v in terms))

    def list_jobs(self, status: JobStatus | None = None, limit: int = 500, offset: int = 0, kind: str | None = None,
                  run_id: str | None = None) -> list[dict[str, Any]]:
        """Jobs (of ``status``, ``kind``, on run ``run_id``), newest first: ``limit`` of them from ``offset``."""
        return self._list("jobs", *self.job_filter(status, kind, run_id), limit=limit, offset=offset)

    def count_jobs(self, status: JobStatus | None = None, kind: str | None = None, run_id: str | None = None) -> int:
        """Jobs (of ``status``, ``kind``, on run ``run_id``): the total a page of :meth:`list_jobs` is of."""
        return self.count("jobs", *self.job_filter(status, kind, run_id))

    _FINISHED_MARKS = ", ".join("?" for _ in FINISHED)

    def finished_jobs(self, before: str) -> list[dict[str, Any]]:
        """Finished jobs (succeeded, failed, cancelled) that ended before ``before`` (an ISO time; a job of an older
        version without ``finished_at``: its last change), oldest first: what a purge of old job records removes."""
        return self.rows(f"SELECT * FROM jobs WHERE status IN ({self._FINISHED_MARKS}) AND "
                         "COALESCE(finished_at, updated_at) < ? ORDER BY rowid", (*(s.value for s in FINISHED), before))

    def remove_finished_jobs(self, job_ids: list[str]) -> list[str]:
        """Delete the rows of those of ``job_ids`` that are still finished, in one transaction (a job resumed
        meanwhile stays); returns the ids deleted. The runs and caches the jobs made are rows of their own and stay."""
        removed: list[str] = []
        with self._tx() as conn:
            for job_id in job_ids:
                if conn.execute(f"DELETE FROM jobs WHERE id = ? AND status IN ({self._FINISHED_MARKS})",
                                (job_id, *(s.value for s in FINISHED))).rowcount:
                    removed.append(job_id)
        return removed

    def next_queued(self) -> list[dict[str, Any]]:
        """Queued jobs, oldest first (the worker's scheduling order)."""
        rows = self._conn().execute(
            "SELECT * FROM jobs WHERE status = ? ORDER BY rowid", (JobStatus.queued.value,)).fetchall()
        return [self._row(r) for r in rows]

    def _transition(self, job_id: str, allowed: tuple[JobStatus, ...], target: JobStatus,
                    extra: str = "", args: tuple = (), before=None, message: str | None = None) -> dict[str, Any]:
        """Move a job from one of ``allowed`` to ``target`` in one transaction, with ``message`` added to its
        messages in it (``{status}``: the status it left): a cancel and a resume racing each other wrote "cancelled
        while interrupted", then "resumed", of a job that ended cancelled (an attack round)."""
        now = utcnow()
        marks = ", ".join("?" for _ in allowed)
        with self._tx() as conn:
            if before is not None:
                before(conn)
            found = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            cur = conn.execute(
                f"UPDATE jobs SET status = ?, updated_at = ?{extra} WHERE id = ? AND status IN ({marks})",
                (target.value, now, *args, job_id, *(s.value for s in allowed)))
            if cur.rowcount == 0:
                row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    raise NotFound("jobs", job_id)
                raise InvalidTransition(
                    f"job {job_id!r} is {row['status']}; only a job that is "
                    f"{' or '.join(s.value for s in allowed)} can become {target.value}")
            if message is not None:
                self._append_message(conn, job_id, message.format(status=found["status"]))
        logger.info("job %s -> %s", job_id, target.value)
        return self.get_job(job_id)

    def claim(self, job_id: str) -> dict[str, Any]:
        """queued → running (raises InvalidTransition if another thread was first or it was cancelled)."""
        return self._transition(job_id, (JobStatus.queued,), JobStatus.running,
                                ", started_at = ?, attempts = attempts + 1, error = NULL, stage = 'starting'",
                                (utcnow(),))

    def finish(self, job_id: str, status: JobStatus, *, error: str | None = None,
               stage: str | None = None) -> dict[str, Any]:
        """running → succeeded / failed / cancelled."""
        status = JobStatus(status)
        if status not in FINISHED:
            raise ValueError(f"finish status must be succeeded, failed or cancelled; got {status.value!r}")
        progress = ", progress = 1.0" if status is JobStatus.succeeded else ""
        return self._transition(job_id, (JobStatus.running,), status,
                                f", finished_at = ?, error = ?, stage = ?{progress}",
                                (utcnow(), error, stage or status.value))

    def cancel_queued(self, job_id: str) -> dict[str, Any]:
        """queued / interrupted → cancelled (a running job is cancelled by its worker instead)."""
        return self._transition(job_id, (JobStatus.queued, JobStatus.interrupted), JobStatus.cancelled,
                                ", finished_at = ?, stage = 'cancelled'", (utcnow(),),
                                message="cancelled while {status}")

    def resume(self, job_id: str, max_queued: int | None = None) -> dict[str, Any]:
        """interrupted / failed → queued; the handler picks up from the results recorded so far. With
        ``max_queued``, only while fewer jobs wait (checked in the same transaction)."""
        def before(conn: sqlite3.Connection) -> None:
            self._check_room(conn, max_queued)
            self._check_still_there(conn, job_id)

        return self._transition(job_id, RESUMABLE, JobStatus.queued,
                                ", stage = 'queued (resumed)', finished_at = NULL", before=before, message=RESUMED)

    @classmethod
    def _check_still_there(cls, conn: sqlite3.Connection, job_id: str) -> None:
        """Refuse (InvalidTransition) to resume a job whose data set, cache or runs (named in its request, or made
        by its finished steps) were deleted since: it failed again on every resume (an attack round)."""
        row = conn.execute("SELECT request, result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return  # the transition says so
        gone = cls._gone(conn, json.loads(row["request"]), json.loads(row["result"]))
        if gone:
            raise InvalidTransition(f"job {job_id!r} cannot resume: the {NOUNS[gone[0]]} {gone[1]!r} it uses was "
                                    "deleted; submit a new job")

    @classmethod
    def _gone(cls, conn: sqlite3.Connection, request: dict, result: dict) -> tuple[str, str] | None:
        """The first of :meth:`job_rows` that no longer exists, or None."""
        for table, row_id in cls.job_rows(request, result):
            if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)).fetchone() is None:
                return table, row_id
        return None

    def uses_deleted_rows(self, job: dict[str, Any]) -> bool:
        """Whether a job's data set, cache or runs were deleted since (it cannot resume: ``resumable`` false)."""
        return self._gone(self._conn(), job["request"], job["result"]) is not None

    def interrupt(self, job_id: str) -> dict[str, Any]:
        """running → interrupted (the server is stopping; the job can be resumed later)."""
        return self._transition(job_id, (JobStatus.running,), JobStatus.interrupted, ", stage = 'interrupted'")

    def interrupt_running(self) -> list[str]:
        """On start-up: every job left ``running`` by a dead process becomes ``interrupted``, its messages ending
        with what became of it, as a graceful stop's do (a job of a killed server ended on "encoder ready" or
        "training probe ...", as if still running; a crash round)."""
        now = utcnow()
        with self._tx() as conn:
            rows = conn.execute("SELECT id, messages FROM jobs WHERE status = ?", (JobStatus.running.value,)).fetchall()
            ids = [r["id"] for r in rows]
            conn.execute("UPDATE jobs SET status = ?, updated_at = ?, stage = 'interrupted' WHERE status = ?",
                         (JobStatus.interrupted.value, now, JobStatus.running.value))
            for row in rows:
                then = ("its cancellation had not taken effect" if cancel_asked(json.loads(row["messages"]))
                        else f"POST /api/jobs/{row['id']}/resume continues it")
                self._append_message(conn, row["id"], "interrupted: the server stopped without finishing it (killed "
                                     f"or crashed); {then}")
        for job_id in ids:
            logger.warning("job %s was running when the server stopped: marked interrupted", job_id)
        return ids

    def update_progress(self, job_id: str, progress: float, stage: str | None = None) -> None:
        progress = min(max(float(progress), 0.0), 1.0)
        with self._tx() as conn:
            if stage is None:
                conn.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
                             (progress, utcnow(), job_id))
            else:
                conn.execute("UPDATE jobs SET progress = ?, stage = ?, updated_at = ? WHERE id = ?",
                             (progress, stage, utcnow(), job_id))

    def add_message(self, job_id: str, text: str) -> None:
        with self._tx() as conn:
            self._append_message(conn, job_id, text)

    @staticmethod
    def _append_message(conn: sqlite3.Connection, job_id: str, text: str) -> None:
        row = conn.execute("SELECT messages FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound("jobs", job_id)
        messages = json.loads(row["messages"])
        messages.append({"at": utcnow(), "text": text})
        conn.execute("UPDATE jobs SET messages = ?, updated_at = ? WHERE id = ?",
                     (json.dumps(messages[-MAX_MESSAGES:]), utcnow(), job_id))

    def update_result(self, job_id: str, **values: Any) -> dict[str, Any]:
        """Merge ``values`` into the job's result (steps done so far, so a resumed job skips them)."""
        with self._tx() as conn:
            return self._merge_result(conn, job_id, values)

    @staticmethod
    def _merge_result(conn: sqlite3.Connection, job_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Merge ``values`` into the job's result on ``conn`` (inside a transaction); returns the result."""
        row = conn.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound("jobs", job_id)
        result = {**json.loads(row["result"]), **values}
        conn.execute("UPDATE jobs SET result = ?, updated_at = ? WHERE id = ?", (json.dumps(result), utcnow(), job_id))
        return result

    def claim_result(self, job_id: str, key: str, value: str) -> str | None:
        """Record ``value`` under ``key`` in the job's result unless another running job's result holds it already;
        returns that job's id (nothing recorded), else None. One transaction: of two jobs claiming together, one
        sees the other's claim (two pipelines started together each trained the same ERM reference)."""
        with self._tx() as conn:
            holder = conn.execute("SELECT id FROM jobs WHERE status = ? AND id != ? AND json_extract(result, ?) = ? "
                                  "ORDER BY rowid LIMIT 1",
                                  (JobStatus.running.value, job_id, f"$.{key}", value)).fetchone()
            if holder is not None:
                return holder["id"]
            self._merge_result(conn, job_id, {key: value})
        return None

    def job_counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}
