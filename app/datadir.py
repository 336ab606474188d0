"""The data directory's lock: one process at a time runs its jobs or rewrites its rows (torch-free)."""
from __future__ import annotations

from pathlib import Path
from typing import IO

__all__ = ["LOCK_FILE", "DATA_DIR_MODE", "DataDirBusy", "lock_data_dir", "make_data_dir"]

LOCK_FILE = "worker.lock"
# A new data directory is its owner's alone: it holds the uploaded images, the features, the runs and the database,
# which a default umask (022) left readable by every user of a shared GPU box (a security review). An existing one
# keeps its mode (a docker volume, a folder shared with a group on purpose).
DATA_DIR_MODE = 0o700


class DataDirBusy(RuntimeError):
    """Another mr2probe server runs the jobs of this data directory."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """The open ``<data dir>/worker.lock`` under an exclusive ``flock``, held until it is closed; the OS drops it when
    the process dies, so a killed server never blocks its successor. Raises :class:`DataDirBusy` when another
    process holds it."""
    import fcntl

    make_data_dir(data_dir)
    path = Path(data_dir) / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 - held by the caller
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DataDirBusy(f"another mr2probe server is running the jobs of {data_dir}; stop it first, or use "
                          "another --data-dir") from None
    return handle


def make_data_dir(data_dir: Path) -> None:
    """Create the data directory where missing, readable by its owner alone (:data:`DATA_DIR_MODE`); the folders
    above it are made as usual (``Path.mkdir`` gives ``mode`` to the last folder alone)."""
    Path(data_dir).mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
