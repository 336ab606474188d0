"""A run folder's files replaced as one: at every instant its complete old run or its complete new one.

The new run is written into ``RUN/.writing``; once complete, with a list of its files and of the old run's files
it does not replace (``.files``), that folder is renamed ``RUN/.incoming`` in one step (the commit). Its files
are then moved in, ``report.json`` last, and the folder removed. A process killed before the commit leaves the old
run untouched (and a ``.writing`` the next writer removes); killed after it, a complete ``.incoming`` that the next
writer or reader (:func:`recover_run`, which :func:`probe.report.load_report` calls) moves in the same way, each step
of which may be done again. Every file is synced to the disk before the commit and the folder after it
(:func:`probe.files.sync`), so that a power loss too leaves one run whole; an ``.incoming`` whose list cannot be
read was never committed whole, and is removed. Writers hold the folder's lock (``RUN/.lock``, :func:`run_lock`)
throughout, so two never share ``.writing``; a killed writer's lock is released with its process."""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from .files import OutputBusy, exclusive, is_temporary, sync

logger = logging.getLogger(__name__)

STAGING_DIR = ".writing"  # inside the run folder: the new run's files until all are written (same file system)
INCOMING_DIR = ".incoming"  # the new run, complete: moved in by its writer, or by whoever finds it left
LOCK_FILE = ".lock"
MANIFEST = ".files"  # in the staging folder: {"files": the new run's, "remove": the old run's it does not replace}
REPORT = "report.json"
READ_TRIES = 5  # reads of a run folder that a writer keeps replacing
MOVE_WAIT = 1.0  # seconds a reader or writer waits for the folder's lock: a move of a run's files in, not a training

T = TypeVar("T")


def writer_file(name: str) -> bool:
    """Whether ``name`` in a run folder is a writer's working file, not one of the run's: ``.writing``, ``.lock`` or
    a temporary (:func:`probe.files.is_temporary`: ``.NAME.<pid>-<hex>.tmp``, which a killed writer leaves until
    the next one, or an older version's ``NAME.tmp``). Lists, sizes and copies of a run leave them out; a committed
    ``.incoming`` is the run's newest state, not one of them."""
    return name in (STAGING_DIR, LOCK_FILE) or is_temporary(name)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """The run folder ``run_dir`` (created) for this process alone while the block runs: where another process
    still holds it after ``MOVE_WAIT`` seconds (a writer, not a reader finishing a move, which takes less), it is
    refused with :class:`probe.files.OutputBusy`, naming that process (two ``train`` on one --out shared
    ``.writing`` and mixed their files; a train was refused, naming a reader, while a dashboard request finished
    a killed writer's move). The folders it
    created (``run_dir`` and its missing parents) are removed again where the block leaves them empty."""
    run_dir = Path(run_dir)
    created = []  # deepest first
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            break
        created.append(folder)
    run_dir.mkdir(parents=True, exist_ok=True)

    def busy(owner: str) -> OutputBusy:
        return OutputBusy(f"{run_dir} is being written by another process ({owner}); wait for it to finish, or "
                          "write to another folder.")

    try:
        with exclusive(run_dir / LOCK_FILE, busy, wait=MOVE_WAIT, reentrant=True):
            yield
    finally:
        # a failed first run leaves no empty folder, nor the missing parents it made for it (rmdir leaves a folder
        # that is not empty, and so the folders above it)
        with suppress(OSError):
            for folder in created:
                folder.rmdir()


def replace_run(run_dir: Path, write: Callable[[Path], None], run_files: Iterable[str]) -> None:
    """``write(folder)`` the new run's files into an empty folder, then replace the run in ``run_dir`` with them
    (module docstring), under :func:`run_lock`. The files of ``run_files`` (every file a run may have) that the new
    run lacks are removed from ``run_dir``, or they would pass for the new run's; other files there are kept."""
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        _move_in(run_dir)  # a replacement a killed writer committed
        staging = run_dir / STAGING_DIR
        shutil.rmtree(staging, ignore_errors=True)  # what an earlier writing killed before its commit left
        staging.mkdir()
        try:
            write(staging)
            written = sorted(p.name for p in staging.iterdir())
            (staging / MANIFEST).write_text(json.dumps(
                {"files": written, "remove": sorted(set(run_files) - set(written))}), encoding="utf-8")
            if (run_dir / REPORT).exists():
                logger.warning("replacing the run in %s", run_dir)
            for name in sorted(p.name for p in staging.iterdir()):
                sync(staging / name)
            sync(staging)
            staging.rename(run_dir / INCOMING_DIR)  # the commit
            sync(run_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        try:
            _move_in(run_dir)
        except BaseException:
            _move_in(run_dir)  # interrupted (Ctrl-C) in the middle: the new run, complete, is moved in whole
            raise


def recover_run(run_dir: Path, strict: bool = False) -> None:
    """Finish the replacement of the run in ``run_dir`` that a killed writer committed (module docstring): its
    folder held neither run until the next writer. Waits ``MOVE_WAIT`` at most for a live writer moving its files
    in; one that holds the folder longer is left to it, and the run there read as it is: every reader waited on its
    lock for the rest of the training. A folder this process cannot write is left as it is, unless ``strict`` (a
    writer about to train: the OSError or OutputBusy is raised, where it trained, then failed at its own move-in)."""
    if not (Path(run_dir) / INCOMING_DIR).is_dir():
        return
    try:
        with run_lock(run_dir):
            _move_in(Path(run_dir))
    except (OSError, OutputBusy) as exc:
        if strict:
            raise
        logger.warning("cannot finish the replacement of the run in %s now, the run there is read as it is: %s",
                       run_dir, exc)


def run_identity(run_dir: str | Path) -> tuple[int, int, int] | None:
    """(inode, modification time, size) of the run's report.json, None without one: a run replaced (its new
    report.json is moved in last, under a new inode) changes it."""
    try:
        info = (Path(run_dir) / REPORT).stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def run_state(run_dir: str | Path) -> tuple:
    """:func:`run_identity` and the names in the run's ``.incoming`` (None without one): a move of a new run's files
    in changes it from its first file on, a run's first move-in too, which has no report.json to replace until its
    last file (a backup listed the folder before a file moved in and copied .incoming after: that file was nowhere,
    and the copy was not done again). What :func:`read_run` compares."""
    try:
        incoming = tuple(sorted(os.listdir(Path(run_dir) / INCOMING_DIR)))
    except OSError:
        incoming = None
    return run_identity(run_dir), incoming


def read_run(run_dirs: str | os.PathLike | Sequence[str | os.PathLike], read: Callable[[], T]) -> T:
    """``read()``, which reads several files of the run in ``run_dirs`` (or of each of those runs), done again
    where a writer replaced one of the runs while it read them (report.json replaced or gone by the end, or files
    moved out of its .incoming: :func:`run_state`; its error too, which the replacement may have caused): a reader
    of report.json then predictions.npz while a ``train --force`` moved its run in got one run's report and the
    other's predictions. The one mechanism of every reader of more than one file of a run. Raises
    :class:`probe.files.OutputBusy` after ``READ_TRIES`` reads that were each overtaken."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else list(run_dirs)
    for _ in range(READ_TRIES):
        before = [run_state(folder) for folder in dirs]
        try:
            got = read()
        except Exception:
            if [run_state(folder) for folder in dirs] == before:
                raise
            continue
        if [run_state(folder) for folder in dirs] == before:
            return got
    raise OutputBusy(f"{', '.join(map(str, dirs))} was replaced each of the {READ_TRIES} times it was read; read it "
                     "again once its writer is done.")


def _move_in(run_dir: Path) -> None:
    """Move the committed new run of ``run_dir/.incoming`` in, report.json last, and remove the folder; each step
    may be done again after a kill (report.json is removed only while the new one waits to move)."""
    incoming = run_dir / INCOMING_DIR
    if not incoming.is_dir():
        return
    try:
        manifest = _read_manifest(incoming)
    except FileNotFoundError:  # killed as it removed the emptied folder
        shutil.rmtree(incoming)
        return
    if manifest is None:  # cut short by a power loss before its commit was synced (an earlier version)
        logger.warning("removed %s: its list of files cannot be read, so it is no complete run; the run in %s is "
                       "kept", incoming, run_dir)
        shutil.rmtree(incoming)
        return
    if (incoming / REPORT).exists():
        (run_dir / REPORT).unlink(missing_ok=True)  # the folder is incomplete from here until the new one is in
    for name in manifest["remove"]:
        (run_dir / name).unlink(missing_ok=True)
    for name in [*(n for n in manifest["files"] if n != REPORT), REPORT]:
        if (incoming / name).exists():
            (incoming / name).replace(run_dir / name)
    sync(run_dir)  # the moves on the disk before the list of them goes
    (incoming / MANIFEST).unlink()
    incoming.rmdir()


def _read_manifest(incoming: Path) -> dict | None:
    """The ``.files`` of ``incoming``; None where it is not a list of file names of each kind (empty or cut short:
    every reader of the run failed on its JSON). Raises FileNotFoundError without one."""
    try:
        manifest = json.loads((incoming / MANIFEST).read_text(encoding="utf-8"))
    except ValueError:  # not JSON, not UTF-8
        return None
    if not isinstance(manifest, dict):
        return None
    for kind in ("files", "remove"):
        names = manifest.get(kind)
        if not isinstance(names, list) or not all(isinstance(n, str) and n not in ("", ".", "..")
                                                  and n == Path(n).name for n in names):
            return None
    return manifest
