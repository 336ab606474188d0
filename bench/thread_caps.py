"""Equal thread counts for the bench scripts that time one side against another (issue 17), and the machine they ran on.

BLAS and OpenMP size their thread pools when numpy or torch is first imported, so a script that caps them imports
this module (it imports nothing numerical) and calls :func:`cap_environment` before it imports numpy, and only when
it runs as a program: a test that imports the script leaves the environment alone. Child processes inherit the
capped environment, or get one from :func:`child_environment` (the repository importable too). Once the libraries
are loaded, :func:`cap_pools` caps their pools again (threadpoolctl, and torch's intra-op pool where torch is
imported) and returns what threadpoolctl reports, for the script to print (:func:`describe_pools`). :func:`machine`
names the CPU for a result file: the machines of this project differ from one session to the next (bf16 products
with or without AMX tiles), so a ratio is only comparable with others measured on the same kind of CPU::

    import thread_caps

    if __name__ == "__main__":
        thread_caps.cap_environment(thread_caps.threads_from_argv(sys.argv, default=1))

    import numpy as np  # noqa: E402
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# One definition of the pool variables and of capping them, shared with ``mr2probe --threads`` (imports nothing
# numerical): cap_environment is re-exported for the scripts.
from app.threads import THREAD_VARS, cap_environment, cap_loaded_pools  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]  # the repository, importable in the children of the scripts


def threads_from_argv(argv: list[str], default: int) -> int:
    """``--threads N`` (or ``--threads=N``) read before argparse and any numerical import; ``default`` without it."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return default


def capped_environment(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: this process's environment) with every pool in :data:`THREAD_VARS` at
    ``threads``: a child process's environment."""
    return {**(os.environ if base is None else base), **{var: str(threads) for var in THREAD_VARS}}


def child_environment(threads: int) -> dict[str, str]:
    """A child process's environment: this process's, with the repository first on ``PYTHONPATH`` and every pool
    capped at ``threads``."""
    return capped_environment(threads, {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])})


def cap_pools(threads: int) -> list[dict]:
    """Cap every loaded BLAS / OpenMP pool, and torch's intra-op pool where torch is imported
    (``app.threads.cap_loaded_pools``, which ``mr2probe --threads`` uses too); return ``threadpool_info()`` after
    the cap."""
    from threadpoolctl import threadpool_info

    cap_loaded_pools(threads)
    return threadpool_info()


def describe_pools(info: list[dict]) -> str:
    """One line for ``threadpool_info()``: each pool's API, library file and threads."""
    return "; ".join(f"{p['internal_api']} ({Path(p['filepath']).name}) {p['num_threads']}" for p in info)


def machine() -> dict:
    """The CPU a timing ran on: its model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere), the cores
    this process may use, and the instruction sets that decide the speed of bf16 products (AVX512-BF16, AMX)."""
    import platform

    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cores, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}
