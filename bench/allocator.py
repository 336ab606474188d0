"""Per-epoch cost of ``run_probe``'s sweep with and without the allocator setting (``probe.allocator``).

Each measurement runs in a fresh process, since the setting holds for a process once made. The process draws
``scale.py``'s synthetic data: N training rows of 1000 classes × 1024-d float16, validation and test of 2,000 and
1,000 rows, ``cv=0``. It runs ``run_probe`` (1 seed, ProbeConfig's default sweep of the method, batches of 1024)
for 1 epoch and then for 3, and reports the marginal cost of an epoch, (run of 3 − run of 1) / 2: wall seconds,
user and system CPU seconds, and minor page faults; and the process's peak RSS. The two settings alternate over
``--rounds`` rounds (A B, then B A, ...); the parent prints every run, the medians and their ratio, and ``--out``
writes the runs as JSON.

Settings (``--settings A B``, default ``default kept``):

- ``default``: glibc's default allocator (``tune_allocator=False``), in the main thread;
- ``kept``: freed memory kept (``tune_allocator=True``, what the CLI does), in the main thread;
- ``thread``: kept, with ``run_probe`` called from a new thread, which glibc gives an arena of its own: the
  service's job threads up to this round;
- ``job``: the same after ``probe.allocator.share_main_arena``, as the job worker now calls it.

Usage::

    python bench/allocator.py --n 16384 --method mr2 --rounds 3 --out bench/results/allocator_ab_mr2_16384.json
    python bench/allocator.py --n 16384 --method mr2 --settings thread job

Threads: ``--threads`` (default 2) is set in the child's environment before numpy and torch are imported.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from scale import METHODS, NUM_CLASSES, class_means, draw
from thread_caps import child_environment

SETTINGS = {"default": (False, "main"), "kept": (True, "main"), "thread": (True, "thread"),
            "job": (True, "job")}  # name -> (run_probe's tune_allocator, caller: see called_from)
FIELDS = ("wall", "user", "sys", "faults")


def called_from(caller: str, function):
    """``function()`` in this thread (``main``), or in a new thread (``thread``, ``job``: the job worker's way,
    ``app.worker``); its result or its exception. ``job`` expects ``share_main_arena()`` to have been called."""
    if caller == "main":
        return function()
    outcome = {}

    def target():
        try:
            outcome["result"] = function()
        except BaseException as exc:  # re-raised in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def child(setting: str, method: str, n: int) -> dict:
    """One measurement in this process: the marginal cost of an epoch, and the peak RSS."""
    import resource

    import numpy as np

    from probe import ProbeConfig, run_probe
    from probe.allocator import share_main_arena

    tune, caller = SETTINGS[setting]
    if caller == "job":
        share_main_arena()

    rng = np.random.default_rng(0)
    means = class_means(rng)
    data = {"train": draw(n, means, rng), "val": draw(2 * NUM_CLASSES, means, rng),
            "test": draw(NUM_CLASSES, means, rng)}
    names = [f"c{k}" for k in range(NUM_CLASSES)]

    def usage() -> tuple[float, ...]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), own.ru_utime, own.ru_stime, own.ru_minflt

    cost = {}
    for epochs in (1, 3):
        config = ProbeConfig(seeds=[0], epochs=epochs, batch_size=1024, cv=0, tol=None, **METHODS[method])
        before = usage()
        called_from(caller, lambda: run_probe(data, names, config, tune_allocator=tune))
        cost[epochs] = [after - start for start, after in zip(before, usage())]
    per_epoch = {field: (cost[3][i] - cost[1][i]) / 2 for i, field in enumerate(FIELDS)}
    return {"setting": setting, **per_epoch, "steps": -(-n // 1024),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def measure(setting: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", setting, "--n", str(args.n), "--method", args.method]
    done = subprocess.run(command, env=child_environment(args.threads), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def run_line(run: dict) -> str:
    return (f"{run['setting']:>8}: {run['wall']:.2f} s wall, {run['user']:.2f} s user, {run['sys']:.2f} s system, "
            f"{run['faults']:,.0f} minor faults per epoch of {run['steps']} steps; "
            f"peak RSS {run['peak_rss_gb']:.2f} GB")


def summary(runs: list[dict], settings: tuple[str, str] = ("default", "kept")) -> list[str]:
    """Per setting the medians over its runs, then the first setting's median wall time per epoch over the
    second's."""
    medians = {s: {f: statistics.median(r[f] for r in runs if r["setting"] == s) for f in FIELDS} for s in settings}
    lines = [f"median {setting}: {median['wall']:.2f} s wall, {median['sys']:.2f} s system, "
             f"{median['faults']:,.0f} faults per epoch" for setting, median in medians.items()]
    first, second = settings
    return lines + [f"{first} / {second}, wall per epoch: {medians[first]['wall'] / medians[second]['wall']:.2f}×"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16_384, help="training rows (default 16384: 16 steps per epoch)")
    parser.add_argument("--method", choices=sorted(METHODS), default="mr2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--settings", nargs=2, choices=sorted(SETTINGS), default=["default", "kept"],
                        help="the two settings to compare (default: default kept)")
    parser.add_argument("--out", type=Path, default=None, help="write the runs and the command here (JSON)")
    parser.add_argument("--child", choices=sorted(SETTINGS), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.method, args.n)))
        return
    runs = []
    for round_ in range(args.rounds):
        for setting in (args.settings if round_ % 2 == 0 else args.settings[::-1]):
            runs.append(measure(setting, args))
            print(run_line(runs[-1]), flush=True)
    lines = summary(runs, tuple(args.settings))
    print("\n".join(lines))
    if args.out is not None:
        args.out.write_text(json.dumps({"command": " ".join(["python", "bench/allocator.py", *sys.argv[1:]]),
                                        "threads": args.threads, "runs": runs, "summary": lines}, indent=1))


if __name__ == "__main__":
    main()
