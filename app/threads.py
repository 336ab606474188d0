"""How many CPU threads a process's numerical work may use: ``mr2probe --threads N`` for any command, and
``MR2PROBE_THREADS`` (``Settings.threads``) for the service.

torch sizes its intra-op pool, and OpenBLAS / OpenMP theirs, from the environment when they are first imported;
a pool that already exists is capped through its library (``torch.set_num_threads``, threadpoolctl). Without a
limit every library takes one thread per core, as scikit-learn's ``n_jobs=None`` leaves its BLAS.
"""
from __future__ import annotations

import os
import sys

MAX_THREADS = 1024
# Every pool size a numerical library reads from the environment at import.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


def check_threads(value: int, name: str = "threads") -> int:
    """``value`` when it is a thread count in [1, MAX_THREADS]; ValueError naming ``name``, the value and the bounds
    otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        raise ValueError(f"{name} must be an integer in [1, {MAX_THREADS}], got {value!r}")
    return value


def cap_environment(threads: int) -> None:
    """Set :data:`THREAD_VARS` to ``threads`` in this process's environment (and so its children's): effective for
    a library only when it is imported afterwards."""
    os.environ.update({var: str(threads) for var in THREAD_VARS})


def cap_loaded_pools(threads: int) -> None:
    """Cap the pools that exist already: threadpoolctl for the BLAS and OpenMP runtimes loaded (numpy's OpenBLAS),
    and torch's intra-op pool when torch is loaded (a process without torch does not import it here)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def limit_threads(threads: int) -> None:
    """Cap every thread pool of this process at ``threads`` (checked, :func:`check_threads`) from now on: the
    environment for the libraries not imported yet (torch's import reads ``OMP_NUM_THREADS``) and for child
    processes, and the pools already loaded."""
    threads = check_threads(threads)
    cap_environment(threads)
    cap_loaded_pools(threads)
