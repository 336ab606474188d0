"""Files written whole or not at all: a temporary file beside the target, renamed onto it once complete."""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """``write(tmp)`` to a new file beside ``path``, renamed onto it, with the umask's mode, as the run's other
    files: mkstemp's 0600 (and safetensors' own, which writes the file anew) left head.safetensors and head.json
    readable by their owner alone, in a run folder whose report.json anyone could read (a run copied to a server
    that reads it as another user could not be loaded). A failure removes the temporary file; ``path`` stays as
    it was."""
    tmp = str(Path(path).with_name(f".{Path(path).name}.{secrets.token_hex(8)}.tmp"))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the mode a new file gets here
    mode = os.stat(tmp).st_mode & 0o777
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
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
