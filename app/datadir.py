"""The data directory's lock: one process at a time runs its jobs or rewrites its rows (torch-free)."""
from __future__ import annotations

from pathlib import Path
from typing import IO

__all__ = ["LOCK_FILE", "DataDirBusy", "lock_data_dir"]

LOCK_FILE = "worker.lock"


class DataDirBusy(RuntimeError):
    """Another mr2probe server runs the jobs of this data directory."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """The open ``<data dir>/worker.lock`` under an exclusive ``flock``, held until it is closed; the OS drops it when
    the process dies, so a killed server never blocks its successor. Raises :class:`DataDirBusy` when another
    process holds it."""
    import fcntl

    path = Path(data_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held by the caller
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DataDirBusy(f"another mr2probe server is running the jobs of {data_dir}; stop it first, or use "
                          "another --data-dir") from None
    return handle
