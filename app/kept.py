"""What a request computed from files, kept for the next request while the files are unchanged: a small
least-recently-used map, safe across the service's threads, keyed by the files' identity (:func:`file_identity`)."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["Kept", "file_identity"]


class Kept:
    """The last ``size`` values by key (least recently used out), safe across the service's threads."""

    def __init__(self, size: int):
        self.size, self._values, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple | None) -> Any:
        with self._lock:
            if key is None or key not in self._values:
                return None
            self._values.move_to_end(key)
            return self._values[key]

    def put(self, key: tuple | None, value: Any) -> None:
        with self._lock:
            if key is not None:
                self._values[key] = value
                self._values.move_to_end(key)
                while len(self._values) > self.size:
                    self._values.popitem(last=False)


def file_identity(path: str | os.PathLike) -> tuple | None:
    """(path, inode, size, modification time in ns) of the file, None where it cannot be read: taken before the file
    is read, so that a file rewritten in between (renamed over, or written in place) is read afresh next time."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns
