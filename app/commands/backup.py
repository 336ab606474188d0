"""`mr2probe backup`: a consistent copy of a data directory, while its server runs.

The database runs in WAL mode: its rows live in ``mr2probe.sqlite3`` and ``mr2probe.sqlite3-wal`` until a
checkpoint, so ``cp -r`` of a running directory could copy the two at different moments (a database that does not
open, or misses rows), and a copy of ``mr2probe.sqlite3`` alone missed every row not yet checkpointed (an operator
round: a server's first jobs were all in the WAL). The database is copied with SQLite's online backup API (a
snapshot of one moment, which the running server's writes do not tear), checked, then the service's own folders
(uploads, caches, runs). The copy is a data directory: ``mr2probe serve --data-dir BACKUP`` serves it, anywhere
(its paths follow it, :mod:`app.relocation`).
"""
from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
from pathlib import Path

from ..config import DATABASE_FILE as DATABASE
from ..datadir import make_data_dir

HELP = "copy a data directory (database, uploads, caches, runs) consistently, also while its server runs"

_FOLDERS = ("uploads", "caches", "runs")
# the database's copy until the folders are copied too: a backup killed meanwhile (SIGKILL, SIGTERM: no clean-up
# runs) holds no mr2probe.sqlite3, so it cannot pass for a data directory
UNFINISHED = f".{DATABASE}.unfinished"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", metavar="DEST", type=Path, help="a new folder (or an empty one) for the copy, outside "
                        "the data directory")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the data directory to copy (default ./.mr2probe or MR2PROBE_DATA_DIR)")


def run(args: argparse.Namespace) -> int:
    from .serve import build_settings

    settings = build_settings(**({"data_dir": args.data_dir} if args.data_dir is not None else {}))
    summary = backup(settings.data_dir, args.dest)
    print(f"backup of {settings.data_dir} written to {Path(args.dest).resolve()}: {summary}")
    return 0


def backup(data_dir: Path, dest: Path) -> str:
    """Copy ``data_dir`` to ``dest``: the database by the online backup API first, then the folders its rows name
    (a file added meanwhile is copied too, a file removed meanwhile is left out and counted). Returns a summary
    line. Raises ValueError for a data directory without a database or a destination that is not new."""
    data_dir, dest = Path(data_dir).resolve(), Path(dest).resolve()
    source = data_dir / DATABASE
    if not source.is_file():
        raise ValueError(f"{data_dir} holds no {DATABASE}: not a mr2probe data directory (--data-dir)")
    if dest == data_dir or data_dir in dest.parents:
        raise ValueError(f"the backup {dest} lies in the data directory {data_dir}; choose a folder outside it")
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"the backup {dest} is a file, not a folder; choose a new folder")
    if (dest / UNFINISHED).exists() and not (dest / DATABASE).exists():
        raise ValueError(f"the backup folder {dest} holds an unfinished backup (interrupted while copying: it has no "
                         f"{DATABASE}); remove it (rm -r {dest}) or choose a new folder")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"the backup folder {dest} exists and is not empty; choose a new folder")
    existed = dest.exists()
    try:
        make_data_dir(dest)  # a new backup holds what the data dir holds: its owner's alone, as that is
    except OSError as exc:  # said as '[Errno 20] Not a directory: ...', without naming what could not be made
        raise ValueError(f"cannot create the backup folder {dest}: {exc.strerror or exc}") from None
    try:
        rows = _copy_database(source, dest / UNFINISHED)  # the moment the folders' files are copied after
        vanished = 0
        for name in _FOLDERS:
            if (data_dir / name).is_dir():
                vanished += (_copy_runs if name == "runs" else _copy_tree)(data_dir / name, dest / name)
        (dest / UNFINISHED).replace(dest / DATABASE)  # last: a backup with a database is a whole one
    except BaseException:
        # Ctrl-C, a full disk: the database without the folders would pass for a backup (it serves, its runs'
        # files missing) and the folder, no longer empty, refuses the same command again. It was new or empty.
        shutil.rmtree(dest, ignore_errors=True)
        if existed:
            dest.mkdir(exist_ok=True)
        raise
    gone = f"; {vanished} file(s) removed by the server while copying left out" if vanished else ""
    return f"{rows} job(s), database checked{gone}"


def _copy_database(source: Path, partial: Path) -> int:
    """The database at one moment, into ``partial`` (:data:`UNFINISHED`, renamed once the folders are copied too),
    checked; its number of jobs."""
    src = sqlite3.connect(source, timeout=30.0)  # read-only by use: mode=ro needs the -shm file WAL makes
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise RuntimeError(f"the copied database fails its integrity check: {check}")
            jobs = dst.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    return int(jobs)


def _copy_runs(source: Path, target: Path) -> int:
    """The runs folder ``source`` copied to ``target`` as :func:`_copy_tree` does, each run whole: without its
    writer's files (``.writing``, ``.lock``, temporary files: :func:`probe.rundir.writer_file`, half a new run and
    a writer's lock, of no use to a restore), a replacement a killed writer committed moved in first, and a run that
    a ``train --force`` replaced, or moved in, while it was copied copied again (:func:`probe.rundir.read_run`). How
    many files it left out."""
    from probe.rundir import read_run, recover_run, run_state, writer_file

    def runs() -> list[Path]:
        return [run for run in source.iterdir() if run.is_dir() and not run.is_symlink()]

    def copy_run(run: Path) -> int:
        shutil.rmtree(target / run.name, ignore_errors=True)  # the copy a writer overtook
        return _copy_tree(run, target / run.name, skip)

    def skip(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if writer_file(name)]

    for run in runs():
        recover_run(run)  # the committed .incoming is the run's newest state
    before = {run: run_state(run) for run in runs()}
    vanished = _copy_tree(source, target, skip)
    for run in runs():
        if run_state(run) != before.get(run):
            vanished += read_run(run, lambda: copy_run(run))
    return vanished


def _temporaries(folder: str, names: list[str]) -> list[str]:
    """The temporary files among ``names`` (:func:`probe.files.is_temporary`: a file being written, or an older
    version's pid-less leftover): half a file, of no use to a restore, whose writer's pid may be alive there and keep
    it from the start-up clean-up. A backup of half-written files is not a backup."""
    from probe.files import is_temporary

    return [name for name in names if is_temporary(name)]


def _copy_tree(source: Path, target: Path, ignore=_temporaries) -> int:
    """``shutil.copytree`` that tolerates files the running server removes while it copies; how many it left out.
    ``ignore``: as copytree's (default: temporary files)."""
    try:
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy2,
                        ignore=ignore)
    except shutil.Error as exc:
        missing = [error for error in exc.args[0] if "No such file" in str(error[-1])]
        failed = [error for error in exc.args[0] if error not in missing]
        if failed:  # a full disk: shutil.Error's message was the list of every (source, target, reason) in one line
            first, why = failed[0][0], str(failed[0][-1])
            code = re.match(r"\[Errno (\d+)\] ([^:]+)", why)
            text = (f"cannot copy {first} into the backup: {code.group(2) if code else why} ({len(failed)} file(s) "
                    "not copied); the unfinished backup is removed")
            raise (OSError(int(code.group(1)), text) if code else OSError(text)) from None
        return len(missing)
    return 0
