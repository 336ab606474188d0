"""Time and memory of a probe run as the training set grows: synthetic 1000 classes × 1024-d, float16 features.

Each case (method, N) runs in its own child process: the child draws the data (seeded, float16, in chunks, so no
float32 copy of the training set exists), runs ``probe.run_probe`` with ProbeConfig's default sweep and one seed,
and reports its wall time (data drawing excluded, reported apart) and its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Results go to ``bench/results/scale_<method>_<N>.json``; the
parent prints a table and the fitted growth, time ∝ N^b (least squares on log–log).

Usage::

    nice python bench/scale.py --n 32000 128000 --methods erm mr2            # about 10-40 min on 2 cores
    nice python bench/scale.py --n 512000 1280000 --methods erm mr2          # hours: run on a quiet machine
    python bench/scale.py --n 1280000 --device cuda --results $OUT           # on a GPU (bench/gpu_checks.sh)
    python bench/scale.py --summary                                          # table + growth from the JSON files
    python bench/scale.py --steps 4 --n 1280000                              # per-step time, minutes: a projection
    python bench/scale.py --steps 3 --n 1280000 --forms per-head joint       # two step forms side by side

``--device`` is ProbeConfig's (default ``cpu``); on a GPU the child also records the device's name and its peak
allocated memory, and the file is ``scale_<method>_<N>_<device>.json`` (``cpu`` runs keep the plain name).
``--precision`` is ProbeConfig's too (default ``auto``); another adds ``_<precision>`` to the file's name.

Each file records the commit it ran on (``commit``) and the default optimiser (``optimizer``). A run kept for the
record once a newer one replaces it is renamed with a suffix naming its code (``scale_mr2_512000_d808d48.json``);
``--summary`` lists those with their suffix and fits the growth over the current files only, so an
old commit or set-up does not bend the exponent.

Threads: ``--threads`` (default 2, the machine's cores) is set in the child's environment before numpy and torch
are imported and checked with threadpoolctl.

``--steps R`` measures instead of running cases: the time of one optimiser step of each method's default sweep
(its heads fitted jointly, batches of 1024, on ``STEP_ROWS`` rows of the same data), as (fit of 3 epochs − fit of 1)
/ 16 steps, the methods interleaved over R rounds in one process, and multiplies the median by each ``--n``'s
steps (10 epochs of ⌈N / 1024⌉): the training part of a run in minutes, without the run (hours at 1.28M on
2 cores). A full run adds its class statistics and evaluation (a few per cent) and drawing the data. With
``--forms`` each method runs in each named step form (:data:`FORMS`), interleaved, and each case also reports the
operations its step issues (:func:`issued_operations`: on a GPU, where a step of many heads is mostly the host
issuing kernels, the count that sets its time).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from thread_caps import cap_environment, cap_pools, child_environment, machine  # bench/, this script's folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
METHODS = {"erm": {"loss": "ce"}, "mr2": {"loss": "mr2"}}
# ImageNet-1k's shape: 50 validation images per class (probe.crossval.MIN_VAL_PER_CLASS, so selection is on
# validation; with fewer the run would cross-validate, k fits per candidate).
NUM_CLASSES, DIM, N_VAL, N_TEST = 1000, 1024, 50_000, 10_000
STEP_ROWS = 8_192  # --steps: 8 batches of 1024 per epoch


def class_means(rng):
    """(NUM_CLASSES, DIM) float32 class means, norm about 4 (the first draw of a case's seeded ``rng``)."""
    import numpy as np

    return (rng.standard_normal((NUM_CLASSES, DIM), dtype=np.float32) * (4.0 / math.sqrt(DIM))).astype(np.float32)


def draw(n: int, means, rng, chunk: int = 65_536):
    """n rows of class means + unit Gaussian noise, float16, drawn chunk by chunk; labels int64, balanced (every
    class has n // K or n // K + 1 rows, in random order), so that no class misses from a split."""
    import numpy as np

    y = rng.permutation(np.resize(np.arange(means.shape[0]), n))
    x = np.empty((n, means.shape[1]), dtype=np.float16)
    for start in range(0, n, chunk):
        rows = y[start:start + chunk]
        x[start:start + chunk] = means[rows] + rng.standard_normal((len(rows), means.shape[1]), dtype=np.float32)
    return x, y


def _progress_printer(start: float):
    """A ``run_probe`` progress callback printing to stderr at each new stage and every 5 % (hours-long runs)."""
    last = {"stage": None, "fraction": -1.0}

    def progress(fraction: float, stage: str) -> None:
        if stage != last["stage"] or fraction >= last["fraction"] + 0.05:
            last.update(stage=stage, fraction=fraction)
            print(f"  {time.perf_counter() - start:8.0f} s  {100 * fraction:5.1f} %  {stage}", file=sys.stderr,
                  flush=True)

    return progress


def result_path(results: Path, method: str, n: int, device: str, precision: str = "auto") -> Path:
    """``scale_<method>_<N>.json`` for the CPU, ``scale_<method>_<N>_<device>.json`` (``cuda``, ``cuda1``) else;
    ``_<precision>`` after it for a precision other than ``auto``."""
    suffix = ("" if device == "cpu" else "_" + device.replace(":", "")) + ("" if precision == "auto" else
                                                                          "_" + precision)
    return results / f"scale_{method}_{n}{suffix}.json"


def _gpu_facts(device: str) -> dict:
    """The GPU's name and the peak memory the run allocated on it (empty on the CPU)."""
    import torch

    if not device.startswith("cuda"):
        return {}
    dev = torch.device(device)
    return {"gpu": torch.cuda.get_device_name(dev), "peak_gpu_gb": torch.cuda.max_memory_allocated(dev) / 2**30}


def child(method: str, n: int, threads: int, out: Path, device: str = "cpu", precision: str = "auto") -> None:
    """One case in this process: data, run_probe, wall time and peak RSS to ``out``."""
    import resource

    import numpy as np
    import torch

    pools = [{"api": p["internal_api"], "threads": p["num_threads"]} for p in cap_pools(threads)]
    # the code the run imports now: read at the end, a run of hours recorded whatever commit had landed meanwhile
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    from probe import ProbeConfig, run_probe

    rng = np.random.default_rng(0)
    means = class_means(rng)
    start = time.perf_counter()
    data = {"train": draw(n, means, rng), "val": draw(N_VAL, means, rng), "test": draw(N_TEST, means, rng)}
    data_seconds = time.perf_counter() - start
    config = ProbeConfig(seeds=[0], device=device, precision=precision, **METHODS[method])
    start = time.perf_counter()
    report = run_probe(data, [f"c{k}" for k in range(NUM_CLASSES)], config,
                       progress=_progress_printer(start), tune_allocator=True).model_dump(mode="json")
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    result = {"method": method, "n_train": n, "num_classes": NUM_CLASSES, "dim": DIM, "dtype": "float16",
              "threads": threads, "pools": pools, "torch_threads": torch.get_num_threads(), "machine": machine(),
              "seconds": seconds, "data_seconds": data_seconds, "peak_rss_gb": peak_gb,
              "candidates": len(report["selection"]["candidates"]), "epochs": report["config"]["epochs"],
              "batch_size": report["config"]["batch_size"], "test_overall": report["summary"]["overall"],
              "chosen": report["config"]["selected"], "optimizer": report["config"]["optimizer"],
              "commit": commit.stdout.strip() or None, "load_avg_1min_end": os.getloadavg()[0],
              "device": device, "precision": report["config"]["precision"], "precision_requested": precision,
              **_gpu_facts(device),
              "command": " ".join(["python", "bench/scale.py", "--n", str(n), "--methods", method,
                                   "--threads", str(threads), "--device", device, "--precision", precision])}
    out.write_text(json.dumps(result, indent=1))


def run_case(method: str, n: int, threads: int, device: str = "cpu", results: Path = RESULTS,
             precision: str = "auto") -> dict:
    out = result_path(results, method, n, device, precision)
    env = child_environment(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, "--n", str(n), "--threads", str(threads),
           "--device", device, "--results", str(results), "--precision", precision]
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, env=env)
    if done.returncode:
        raise SystemExit(f"case {method} N={n} failed (exit {done.returncode})")
    result = json.loads(out.read_text())
    result["load_avg_1min_start"] = load
    out.write_text(json.dumps(result, indent=1))
    return result


# --forms: how a step computes its heads (``probe.trainer._joint_step``), as the device whose rule it takes on any
# device: ``auto`` the trainer's own rule, ``per-head`` the CPU's class ranges (a 1000-class sweep takes each head's
# loss and backward apart, as on CUDA up to stop 49), ``joint`` CUDA's (the closed-form step and the joint loss for
# every K, since stop 50)
FORMS = {"auto": None, "per-head": "cpu", "joint": "cuda"}


@contextlib.contextmanager
def step_form(form: str):
    """The trainer's steps computed in ``form`` (:data:`FORMS`) while the context is open."""
    import torch

    import probe.trainer as trainer_module

    kept = trainer_module._joint_step
    if FORMS[form] is not None:
        rule_of = torch.device(FORMS[form])
        trainer_module._joint_step = lambda classes, k, device: kept(classes, k, rule_of)
    try:
        yield
    finally:
        trainer_module._joint_step = kept


def issued_operations(fit: Callable[[int], float], steps_per_epoch: int) -> float:
    """Operations the host issues per step of ``fit(epochs)``: torch.profiler's ATen calls made from Python or
    from autograd's engine, not from inside another ATen call (on a GPU each is at least one dispatch and mostly a
    kernel launch), as (count over 2 epochs − over 1) / steps per epoch."""
    from torch.profiler import ProfilerActivity, profile

    counts = []
    for epochs in (1, 2):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fit(epochs)
        counts.append(sum(1 for e in prof.events() if e.name.startswith("aten::")
                          and not (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::"))))
    return (counts[1] - counts[0]) / steps_per_epoch


def step_seconds(methods: list[str], rounds: int, threads: int, device: str = "cpu",
                 forms: tuple[str, ...] = ("auto",), precision: str = "auto") -> tuple[dict[str, list[float]],
                                                                                      dict[str, float]]:
    """Seconds per optimiser step of each method's default-sweep joint fit (``probe.trainer.fit_many``, the
    configuration ``run_probe`` resolves for 1.28M rows: its candidates, 10 epochs, batches of 1024) on
    ``STEP_ROWS`` rows of this script's data: (fit of 3 epochs − fit of 1) / its 16 extra steps, per round, the
    methods (and each method's step ``forms``) interleaved; and the operations each issues per step
    (:func:`issued_operations`). Threads: capped in this process's environment before numpy and torch are
    imported."""
    cap_environment(threads)
    import numpy as np
    import torch  # noqa: F401  (imported before cap_pools, which caps its pool too)

    from probe import ProbeConfig
    from probe.allocator import keep_freed_memory
    from probe.trainer import ProbeTrainer, fit_many

    cap_pools(threads)
    keep_freed_memory()  # as run_probe does
    rng = np.random.default_rng(0)
    x, y = draw(STEP_ROWS, class_means(rng), rng)

    configs = {method: ProbeConfig(seeds=[0], device=device, precision=precision, **METHODS[method]).resolved(
        1_280_000)
               for method in methods}

    def fit(method: str, epochs: int) -> float:
        config = configs[method]
        trainers = [ProbeTrainer(**{**config.trainer_params(c, seed=0), "epochs": epochs, "tol": None})
                    for c in config.candidates()]
        start = time.perf_counter()
        fit_many(trainers, x, y, NUM_CLASSES)
        return time.perf_counter() - start

    cases = [(method, form) for method in methods for form in forms]
    name = lambda method, form: method if form == "auto" else f"{method} {form}"  # noqa: E731
    times: dict[str, list[float]] = {name(*case): [] for case in cases}
    fit(methods[0], 1)  # warm-up
    for _ in range(rounds):
        for method, form in cases:
            per_epoch = math.ceil(STEP_ROWS / configs[method].batch_size)
            with step_form(form):
                times[name(method, form)].append((fit(method, 3) - fit(method, 1)) / (2 * per_epoch))
    operations = {}
    for method, form in cases:
        with step_form(form):
            operations[name(method, form)] = issued_operations(lambda epochs: fit(method, epochs),
                                                               math.ceil(STEP_ROWS / configs[method].batch_size))
    return times, operations


def print_steps(times: dict[str, list[float]], operations: dict[str, float], sizes: list[int]) -> None:
    """Each case's per-step times and operations issued, its median's projection to each size (10 epochs of
    ⌈N / 1024⌉ steps), and the per-round ratios of each case to the first."""
    first = next(iter(times))
    for case, values in times.items():
        median = statistics.median(values)
        minutes = ", ".join(f"N={n:,}: {10 * math.ceil(n / 1024) * median / 60:.1f} min" for n in sizes)
        ratios = ", ".join(f"{v / f:.2f}" for v, f in zip(values, times[first]))
        print(f"{case}: {1e3 * median:.1f} ms per step (median; rounds {', '.join(f'{1e3 * v:.1f}' for v in values)})"
              f", {operations[case]:.0f} operations issued per step; training steps {minutes}"
              + (f"; per round / {first}: {ratios}" if case != first else ""))


def growth(rows: list[dict]) -> float | None:
    """Exponent b of time ∝ N^b, least squares on (log N, log t); None with fewer than two sizes."""
    if len(rows) < 2:
        return None
    xs = [math.log(r["n_train"]) for r in rows]
    ys = [math.log(r["seconds"]) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _kept_as(path: Path, row: dict) -> str:
    """``current`` for a file under the name :func:`result_path` gives its case, else its suffix (a kept run)."""
    current = result_path(path.parent, row["method"], row["n_train"], row.get("device", "cpu"),
                          row.get("precision_requested", "auto")).name
    return "current" if path.name == current else path.stem.rsplit("_", 1)[-1]


def summary(results: Path = RESULTS) -> None:
    """The table of every file in ``results`` (current runs first), then time ∝ N^b per device and method, fitted
    over the current runs only."""
    rows = []
    for path in sorted(results.glob("scale_*.json")):
        row = json.loads(path.read_text())
        rows.append({**row, "kept_as": _kept_as(path, row)})
    rows.sort(key=lambda r: (r["kept_as"] != "current", r.get("device", "cpu"), r.get("precision_requested", "auto"),
                             r["method"], r["n_train"]))
    print("| device | method | precision | N train | heads | epochs | time | peak RSS | test % | threads | load | "
          "optimiser | commit | file |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for r in rows:
        print(f"| {r.get('gpu', r.get('device', 'cpu'))} | {r['method']} | {r.get('precision', '?')} | "
              f"{r['n_train']:,} | {r['candidates']} | "
              f"{r['epochs']} | {r['seconds'] / 60:.1f} min | {r['peak_rss_gb']:.2f} GB | "
              f"{100 * r['test_overall']:.2f} | {r['threads']} | {r.get('load_avg_1min_start', float('nan')):.1f} | "
              f"{r.get('optimizer', '?')} | {r.get('commit') or '?'} | {r['kept_as']} |")
    current = [r for r in rows if r["kept_as"] == "current"]
    for device, precision in sorted({(r.get("device", "cpu"), r.get("precision_requested", "auto")) for r in current}):
        for method in METHODS:
            b = growth([r for r in current if r["method"] == method and r.get("device", "cpu") == device
                        and r.get("precision_requested", "auto") == precision])
            if b is not None:
                print(f"{device} {method}{'' if precision == 'auto' else ' ' + precision}: time ∝ N^{b:.2f} "
                      "(current runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[32_000, 128_000], help="training-set sizes")
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=["erm", "mr2"])
    parser.add_argument("--threads", type=int, default=2, help="threads per case (default 2)")
    parser.add_argument("--device", default="cpu", help="ProbeConfig's device: cpu (default), cuda or cuda:N")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="ProbeConfig's precision (default auto: fp32 on CUDA and on CPUs without native bf16)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files (bench/results)")
    parser.add_argument("--summary", action="store_true", help="only print the table from --results")
    parser.add_argument("--steps", type=int, metavar="R", default=0, help="instead of cases: per-step time over R "
                        "interleaved rounds and its projection to each --n (module docstring)")
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), default=["auto"], help="with --steps: the "
                        "step forms to measure side by side (FORMS: auto, per-head, joint; default auto)")
    parser.add_argument("--child", choices=sorted(METHODS), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps:
        return print_steps(*step_seconds(args.methods, args.steps, args.threads, args.device, tuple(args.forms),
                                         args.precision), args.n)
    if args.child:
        out = result_path(args.results, args.child, args.n[0], args.device, args.precision)
        return child(args.child, args.n[0], args.threads, out, args.device, args.precision)
    if not args.summary:
        args.results.mkdir(parents=True, exist_ok=True)
        for method in args.methods:
            for n in args.n:
                r = run_case(method, n, args.threads, args.device, args.results, args.precision)
                print(f"{method} N={n}: {r['seconds']:.1f} s, peak {r['peak_rss_gb']:.2f} GB, "
                      f"test {100 * r['test_overall']:.2f} %", flush=True)
    summary(args.results)


if __name__ == "__main__":
    main()
