"""Files written whole or not at all: a temporary file beside the target, renamed onto it once complete; the
temporary files a killed writer left, found by the process id in their names; an output's lock, which a killed
process releases."""
from __future__ import annotations

import errno
import fcntl
import glob
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """The hidden temporary file beside ``path`` that this process writes it through: ``.<name>.<pid>-<hex>.tmp``,
    its own to each write (two writes of one file in one process never share it), so that the next writer knows
    whether the process that left one still runs (:func:`orphaned_temporaries`)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(8)}{TMP_SUFFIX}")


def temporary_of(path: str | Path) -> str | None:
    """The name of the file that ``path`` is a temporary copy of (:func:`temporary_name`'s ``.<name>.<pid>-<hex>.tmp``,
    or ``.<name>.<pid>.tmp`` as older versions wrote a cache's), or None where it is not one."""
    match = re.fullmatch(rf"\.(.+)\.\d+(?:-[0-9a-f]+)?{re.escape(TMP_SUFFIX)}", Path(path).name)
    return match.group(1) if match else None


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` names a temporary file of any version: :func:`temporary_name`'s hidden
    ``.NAME.<pid>-<hex>.tmp``, or the ``NAME.tmp`` older versions wrote (:func:`stale_temporaries`): half a file
    whatever its age, never one of a store's own (no writer of this version names a complete file so)."""
    return Path(path).name.endswith(TMP_SUFFIX)


def orphaned_temporaries(folder: str | Path, of: str | None = None) -> list[Path]:
    """The temporary files of :func:`temporary_name` under ``folder`` whose writing process is gone
    (:func:`writer_alive`: a process that reuses its id, started since, is not it): a process killed while it wrote
    leaves one behind. ``of``: only the copies of the file of that name in ``folder`` itself. A symlink is none."""
    folder = Path(folder)
    found = folder.glob(f".{glob.escape(of)}.*{TMP_SUFFIX}") if of else folder.rglob(f".*{TMP_SUFFIX}")
    return [tmp for tmp in sorted(found) if _writer_gone(tmp)]


def _writer_gone(tmp: Path) -> bool:
    """Whether ``tmp`` is a :func:`temporary_name` (hidden, ``.<name>.<pid>-<hex>.tmp``) whose writing process is
    gone (:func:`orphaned_temporaries`)."""
    pid = tmp.name[: -len(TMP_SUFFIX)].rpartition(".")[2].partition("-")[0]
    return (tmp.name.startswith(".") and pid.isdigit() and tmp.is_file() and not tmp.is_symlink()
            and not writer_alive(int(pid), tmp))


# Seconds a temporary without a writer's id in its name (``NAME.tmp``, as versions before
# :func:`temporary_name` wrote a label-issues result's or a run's seen_sources.npz) stays untouched before the
# start-up sweep takes it for a killed writer's: no writer of this version names one so, and an hour is far past
# any such write.
LEGACY_TMP_AGE = 3600.0


def stale_temporaries(folder: str | Path, legacy: bool = True) -> list[Path]:
    """Every temporary under ``folder`` that no live process writes, the one rule of the start-up sweep of every
    store: :func:`orphaned_temporaries`, and with ``legacy`` the ``NAME.tmp`` files older versions wrote (no process
    id to ask), untouched for :data:`LEGACY_TMP_AGE` seconds. A symlink is none."""
    cutoff = time.time() - LEGACY_TMP_AGE

    def stale(tmp: Path) -> bool:  # one walk of the folder for both kinds (each run folder was walked twice)
        return _writer_gone(tmp) or (legacy and temporary_of(tmp) is None and tmp.is_file() and not tmp.is_symlink()
                                     and tmp.stat().st_mtime < cutoff)

    return [tmp for tmp in sorted(Path(folder).rglob(f"*{TMP_SUFFIX}")) if stale(tmp)]


def remove_orphaned_temporaries(path: Path) -> list[Path]:
    """Remove the temporary copies of ``path`` that dead writers left (:func:`orphaned_temporaries`): a killed
    export, predict or report left its ``.NAME.<hex>.tmp`` beside --out for good; a live writer's is kept. Returns
    those removed."""
    removed = orphaned_temporaries(path.parent, of=path.name)
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def sync(path: str | Path) -> None:
    """Flush ``path`` to the disk: a file's data, or a folder's entries (a rename into it, a file removed), as a
    database does before and after its commit: a rename is otherwise durable before the data of the file it names,
    and a power loss left a renamed file empty or cut short. A file system that cannot sync (EINVAL) is left be."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """``write(tmp)`` to a new file beside ``path``, renamed onto it, with the umask's mode, as the run's other
    files: mkstemp's 0600 (and safetensors' own, which writes the file anew) left head.safetensors and head.json
    readable by their owner alone, in a run folder whose report.json anyone could read (a run copied to a server
    that reads it as another user could not be loaded). A failure removes the temporary file; ``path`` stays as
    it was. The temporary files a killed writer of ``path`` left are removed first. The file is synced to the disk
    before the rename and its folder after (:func:`sync`): a power loss leaves the old file or the new, whole."""
    with replacing(path) as tmp:
        write(tmp)


@contextmanager
def replacing(path: str | Path) -> Iterator[str]:
    """The name of a new temporary file beside ``path`` (:func:`temporary_name`) for the block to write, renamed onto
    ``path`` once the block succeeds, synced to the disk before the rename and its folder after, with the umask's
    mode; removed where the block fails, ``path`` left as it was. The temporary files a killed writer of ``path``
    left are removed first. The one definition of a file replaced whole: :func:`atomic_write`, and the feature
    caches' ``feature_cache.store.replacing_file`` through h5py."""
    path = Path(path)
    remove_orphaned_temporaries(path)
    tmp = str(temporary_name(path))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the mode a new file gets here
    mode = os.stat(tmp).st_mode & 0o777
    try:
        yield tmp
        os.chmod(tmp, mode)
        sync(tmp)
        os.replace(tmp, path)
        sync(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_output(path: str | Path, write: Callable[[str], object]) -> Path:
    """A command's output file (``--out``): ``write(name)`` through :func:`atomic_write`, so that a kill, Ctrl-C or a
    full disk leaves the file that was there whole (export and report --out wrote over it in place: a file-size
    limit left a truncated probe.onnx, a failure round), and the error names the file and says so. A ``path`` that
    exists and is not a regular file (a FIFO, /dev/stdout) is written through: a rename would make /dev/full a
    regular file."""
    path = Path(path)
    if path.is_symlink() and path.exists():
        # the file it links to is replaced and the link kept, as a write through it did (a rename over the link
        # made it a file of its own, the file it linked to stale)
        path = path.resolve()
    through = path.exists() and not path.is_file()
    try:
        write(str(path)) if through else atomic_write(path, write)
    except OSError as exc:
        kept = "" if through or not path.exists() else f"; the {path.name} that was there is kept"
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}{kept}") from None
    return path


class OutputBusy(RuntimeError):
    """Another process (or thread) writes the same output right now (:func:`exclusive`)."""


LOCK_POLL = 0.02  # seconds between two tries of a lock waited for
_HELD: dict[str, int] = {}  # lock files this process holds → the thread holding it, which may take it again


@contextmanager
def exclusive(lock: Path, busy: Callable[[str], BaseException], wait: float = 0.0,
              reentrant: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``lock`` (created, and removed on exit), which a killed process
    releases with its open files. Raises ``busy(owner)`` when another process or thread holds it (``owner``: "pid N",
    what the holder wrote into it) and still does after ``wait`` seconds (0: at once); never waits longer (a reader
    waiting for a lock a training held waited as long as the training). With ``reentrant``, the thread holding
    it may take it again. A locker re-checks that the file it locked is still the one on disk (no race with the
    removal)."""
    key = os.path.abspath(lock)
    if reentrant and _HELD.get(key) == threading.get_ident():
        yield
        return
    deadline = time.monotonic() + wait
    while True:
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() < deadline:
                handle.close()
                time.sleep(LOCK_POLL)
                continue
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise busy(owner) from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    _HELD[key] = threading.get_ident()
    try:
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        del _HELD[key]
        lock.unlink(missing_ok=True)
        handle.close()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (another user's counts); never for an id past any process's
    (a file's digits taken for one: os.kill raised OverflowError)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


# Seconds a file may seem older than the process that wrote it: the start time below is in clock ticks (10 ms)
# and the boot time it is counted from is read from /proc/uptime to the hundredth of a second. /proc/stat's btime,
# whole seconds rounded down, put a start up to 1 s early and, with 2 s of slack, kept a killed PID 1's files when
# the container restarted within 3 s (a review).
START_SLACK = 0.1


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (Linux ``/proc``), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime: clock ticks after boot
    except (OSError, ValueError, IndexError):
        return None


def writer_alive(pid: int, path: str | Path) -> bool:
    """Whether the process ``pid`` that named ``path`` after itself (a decompressed archive, a temporary copy of
    :func:`temporary_name`) may still be writing it: a process of that id runs and started before the file was last
    written. A process that started later only reuses the id: a server in a container is PID 1 after every
    restart, and its start-up sweep kept for good the files a killed PID 1 had left (a crash round)."""
    if not process_alive(pid):
        return False
    started = process_start_time(pid)
    if started is None:
        return True
    try:
        written = os.lstat(path).st_mtime
    except OSError:
        return True
    return written >= started - START_SLACK
