"""Keep freed heap memory in the process while it extracts features or trains probes (glibc ``mallopt``).

Why: a forward pass allocates activation buffers of many megabytes and frees them before the next
batch, and a training step does the same with its logits, their gradients and the optimiser's temporaries.
glibc serves blocks above ``M_MMAP_THRESHOLD`` (128 KiB to 32 MiB, adjusted dynamically) with a
fresh ``mmap`` and returns them with ``munmap``, and trims the top of the heap once more than
``M_TRIM_THRESHOLD`` is free, so every batch maps its buffers anew and touches every page again:
- about half of the CPU time of a CPU extraction was kernel page faults (111 → 58 ms of CPU per image on
  effnet-lite0, measured with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=64G`` in the environment);
- a step of the 1000-class MR² sweep (18 heads, batches of 1024 × 1024-d) took ~91,000 minor page faults, about
  0.2 s of system time (bench/README.md, "Scale").

Those environment variables only act when set before the process starts, so :func:`keep_freed_memory`
sets the same two parameters in-process: ``mallopt(M_MMAP_MAX, 0)`` (large blocks come from the heap,
not from ``mmap``) and ``mallopt(M_TRIM_THRESHOLD, -1)`` (the heap top is never trimmed automatically).
The settings hold for the rest of the process (glibc has no "restore the dynamic defaults"); the cost is
that the heap keeps its peak size, which :func:`release_freed_memory` (``malloc_trim(0)``) hands back to
the system after an extraction (``feature_cache.extract``) or a probe run (``probe.run_probe``). DataLoader
workers forked from the process inherit the settings; the extractor also applies them in each worker
(:func:`worker_init`) so spawned workers get them too.

Threads: glibc gives a thread other than the main one an arena of its own, made of heaps of at most 64 MiB,
and maps any block larger than that afresh whatever ``M_MMAP_MAX`` says. The service runs its jobs in threads
(``app.worker``), and there the settings above did not hold for the largest buffers: an effnet-lite0 batch of
64 images (~150 MB of activations at 112 × 112) or the 1000-class MR² sweep's (1024, 18,000) logits (74 MB).
An extraction of 2,000 images in a job thread took 937 minor page faults per image against 200 from the main
heap, and an epoch of that sweep 1.22M against ~0 (bench/README.md, "Job threads").
:func:`share_main_arena` (``mallopt(M_ARENA_MAX, 1)``, what ``MALLOC_ARENA_MAX=1`` does at start-up) makes every
thread created afterwards allocate from the main heap, which grows without that limit; the job worker calls it
before it starts its threads. Threads then share one arena lock, which glibc's per-thread cache of small blocks
(tcache) and Python's own allocator for small objects mostly keep them from taking.

On a C library other than glibc (musl, macOS) these functions do nothing and return False.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import lru_cache

__all__ = ["keep_freed_memory", "release_freed_memory", "share_main_arena"]

logger = logging.getLogger(__name__)

# <malloc.h> parameter numbers of mallopt.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc: no mallopt / malloc_trim
        return None


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap and never trim it (see module docstring); True when both took.

    Idempotent and cheap; affects the whole process.
    """
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
    if not ok:
        logger.warning("mallopt refused M_MMAP_MAX=0 / M_TRIM_THRESHOLD=-1; allocator left as it was")
    return ok


def share_main_arena() -> bool:
    """Make threads created from now on allocate from the main heap (``mallopt(M_ARENA_MAX, 1)``); True if it took.

    Call it before the process starts the threads that do the work: glibc gives a new thread a free arena of a
    thread that has ended, or one of the existing arenas in turn once the limit is reached, so a thread that
    allocated before the call may leave an arena of its own for later threads to use. Affects the whole process.
    """
    libc = _glibc()
    return libc is not None and libc.mallopt(M_ARENA_MAX, 1) == 1


def release_freed_memory() -> bool:
    """Return free heap memory to the system (``malloc_trim(0)``); True when some was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def worker_init(_worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: the same allocator settings in every worker process."""
    keep_freed_memory()
