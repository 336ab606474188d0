"""Speed and accuracy of the ERM probe against scikit-learn's L-BFGS logistic regression, same features, same threads.

Every side runs with the same thread count (``--threads``, default 1), capped BEFORE numpy, scikit-learn or torch
is imported (the ``*_NUM_THREADS`` variables set at the top of this file by ``bench/thread_caps.py``, then
``threadpoolctl`` and ``torch.set_num_threads``); the thread pools each library actually loaded are printed
(``threadpool_info``), for this process and for every child process. Methods, each with its own selection on the
validation split:

* ours: ``probe.run_probe`` with ``loss="ce"`` (ERM) and ProbeConfig's lr × weight-decay sweep;
* scikit-learn ``LogisticRegression`` (L-BFGS, multinomial) with C swept over ``--sk-c`` (7 values) on val,
  then refit at the chosen C (as ``GridSearchCV(refit=True)`` on a predefined split, on the training split);
* a plain mini-batch PyTorch loop (``DataLoader``, ``nn.Linear``, AdamW), lr swept on val (in-process only).

Two comparisons:

* in-process (``run_probe`` with 1 seed against the scikit-learn sweep), repeated ``--repeats`` times with the
  two sides interleaved, after a warm-up on a tiny set;
* ``--cli``: end to end, process start included: ``mr2probe train --loss ce`` (default sweep, 3 seeds) against
  ``bench/sklearn_baseline.py`` as its own process (h5py load + the scikit-learn sweep + refit; it imports no
  torch), interleaved likewise. Where validation holds fewer than 50 images in a class ``mr2probe train``
  selects by 5-fold cross-validation (``probe.crossval``): ``--sk-cv 5`` gives the like-for-like baseline
  (``LogisticRegressionCV``). Without ``--features`` the synthetic set is first written to a temporary float16
  cache.
* ``--train-per-class N ...``: the ``--cli`` comparison once per size, on a copy of the cache whose training split
  keeps N random images of each class (seeded; validation and test as they are), so that every size is measured
  with the same validation and test images: where the trainer switches from full batch to mini-batches
  (``AUTO_FULL_BATCH_ROWS``), where cross-validation stops, how both sides grow with N.

Also the per-epoch cost of our trainer against the bare matrix products of one full-batch epoch on the same shapes
(forward X·Wᵀ and the weight gradient Gᵀ·X), reported as bare/ours.

Usage::

    python bench/probe_speed.py --features /work/cache/cifar10-300.h5 --cli   # real 2.7k cache, CLI included
    python bench/probe_speed.py --cli                                          # synthetic 50k×1280, 10 classes
    python bench/probe_speed.py --features /work/cache/cifar10-300.h5 --cli --skip-in-process --sk-cv 5
    python bench/probe_speed.py --features /work/cache/cifar10-full.h5 --per-epoch-only   # bare/ours per epoch
    python bench/probe_speed.py --features /work/cache/cifar10-full.h5 --per-epoch-only --epoch-dtype float16
    python bench/probe_speed.py --features /work/cache/cifar10-full.h5 --per-epoch-only --epoch-dtype float16 \
        --epoch-heads sweep                                                    # the 6-head sweep, bf16 vs bf16
    python bench/probe_speed.py --ce-kernels 5 10 16 100                       # the two cross-entropy kernels
    python bench/probe_speed.py --product-forms 10 30 60 600 6000              # the two forms of the products
    python bench/probe_speed.py --quick                                        # 5k×256 smoke run
    python bench/probe_speed.py --features /work/cache/cifar10-full.h5 --skip-in-process \
        --train-per-class 100 270 409 410 800 2000                             # CLI at 1k … 20k training rows
"""
from __future__ import annotations

import os
import sys

import thread_caps  # bench/, this script's folder; imports nothing numerical

DEFAULT_THREADS = 1

if __name__ == "__main__":  # as a program: every pool capped before numpy or torch is imported (children inherit)
    thread_caps.cap_environment(thread_caps.threads_from_argv(sys.argv, default=DEFAULT_THREADS))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
try:
    import probe  # noqa: F401  (installed with `make install`)
except ModuleNotFoundError:  # run from a checkout without installing: use the repository root
    sys.path.insert(0, str(ROOT))
from probe import ProbeConfig, ProbeTrainer, fit_many, run_probe  # noqa: E402
from sklearn_baseline import SK_C, sweep as sklearn_sweep  # noqa: E402  (bench/, this script's folder)
from thread_caps import cap_pools, child_environment, describe_pools, machine  # noqa: E402


def check_pools(info: list[dict], threads: int, where: str) -> None:
    print(f"thread pools [{where}]: {describe_pools(info)}; torch intra-op {torch.get_num_threads()}")
    bad = [p for p in info if p["num_threads"] != threads]
    if bad:
        raise SystemExit(f"{where}: thread pools not capped at {threads}: {describe_pools(bad)}")


def synthetic(n_train: int, n_val: int, n_test: int, dim: int, num_classes: int, seed: int):
    """Gaussian classes, ‖μ_i − μ_j‖ ≈ 3√2, per-class noise σ_k from 0.7 to 1.3 (later classes harder), a common
    offset like real pooled features; about 87 % is reachable at 50k×1280."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, (num_classes, dim)).astype(np.float32) * 3.0 / np.sqrt(dim)
    spread = np.linspace(0.7, 1.3, num_classes).astype(np.float32)
    offset = rng.normal(0.0, 0.5, dim).astype(np.float32)

    def draw(n):
        y = rng.integers(0, num_classes, n)
        x = means[y] + offset + spread[y, None] * rng.normal(0.0, 1.0, (n, dim)).astype(np.float32)
        return x.astype(np.float32), y.astype(np.int64)

    return {"train": draw(n_train), "val": draw(n_val), "test": draw(n_test)}, [f"class{k}" for k in range(num_classes)]


def load_features(path: str, dtype: str | None = "float32"):
    from feature_cache import open_cache

    cache = open_cache(path)
    data = {s: cache.load(s, dtype=dtype) for s in ("train", "val", "test") if s in cache.splits}
    return data, list(cache.class_names)


def write_synthetic_cache(data, names, folder: Path, name: str = "synthetic.h5") -> Path:
    """``data`` as a float16 cache (a float16 cache loaded as float32 is written back unchanged)."""
    from feature_cache import write_cache

    splits = {s: (x.astype(np.float16), y, [f"{s}/{i}" for i in range(len(y))]) for s, (x, y) in data.items()}
    attrs = {"encoder": "synthetic", "default_head": "linear", "normalized": False, "fingerprint": "synthetic"}
    return write_cache(folder / name, splits, names, attrs)


def cut_per_class(x: np.ndarray, y: np.ndarray, per_class: int, rng: np.random.Generator):
    """(x, y) cut to ``per_class`` random rows of each class (all of a smaller class), in their original order."""
    from probe.crossval import within_class_rank

    keep = np.flatnonzero(within_class_rank(y, rng) < per_class)
    return x[keep], y[keep]


def train_subset(data, per_class: int, seed: int):
    """``data`` with the training split cut to ``per_class`` random rows of each class (:func:`cut_per_class`);
    validation and test unchanged."""
    return {**data, "train": cut_per_class(*data["train"], per_class, np.random.default_rng(seed))}


def size_sweep(args, data, names) -> list[dict]:
    """The CLI comparison (:func:`run_cli`) at each ``--train-per-class`` size."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for per_class in args.train_per_class:
            subset = train_subset(data, per_class, args.seed)
            n_train = len(subset["train"][1])
            print(f"train {per_class} per class: {n_train} rows")
            cache = write_synthetic_cache(subset, names, Path(tmp), f"train{per_class}.h5")
            pairs = run_cli(args, cache, subset, names)
            line = summarise(pairs, f"train {per_class} per class ({n_train} rows), end to end")
            lines.append({"train_per_class": per_class, "n_train": n_train, **line})
            cache.unlink()
    return lines


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y))


def bench_ours(data, names, args) -> dict:
    config = ProbeConfig(loss="ce", head="linear", seeds=[0], epochs=args.epochs, device=args.device,
                         **({"lr_grid": args.lr} if args.lr else {}), **({"wd_grid": args.wd} if args.wd else {}))
    start = time.perf_counter()
    report = run_probe(data, names, config, tune_allocator=True).model_dump(mode="json")
    seconds = time.perf_counter() - start
    config = config.model_copy(update={k: report["config"][k] for k in ("epochs", "batch_size")})  # as resolved
    return {"name": "ours (run_probe, ERM, 1 seed)", "seconds": seconds, "test": report["summary"]["overall"],
            "fits": len(report["selection"]["candidates"]), "epochs": report["config"]["epochs"],
            "chosen": {k: report["config"]["selected"][k] for k in ("lr", "weight_decay")}, "config": config}


def bench_loop(data, num_classes: int, args) -> dict:
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    (xt, yt), (xv, yv), (xs, ys) = data["train"], data["val"], data["test"]
    dataset = TensorDataset(torch.from_numpy(np.ascontiguousarray(xt, dtype=np.float32)), torch.from_numpy(yt))
    xv_t, xs_t = torch.from_numpy(np.asarray(xv, np.float32)), torch.from_numpy(np.asarray(xs, np.float32))
    start = time.perf_counter()
    best = (-1.0, None, None)
    for lr in args.loop_lr:
        torch.manual_seed(0)
        model = nn.Linear(xt.shape[1], num_classes)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        loader = DataLoader(dataset, batch_size=args.loop_batch, shuffle=True)
        for _ in range(args.loop_epochs):
            for xb, yb in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
        with torch.no_grad():
            score = accuracy(model(xv_t).argmax(1).numpy(), yv)
        if score > best[0]:
            best = (score, lr, model)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        test = accuracy(best[2](xs_t).argmax(1).numpy(), ys)
    return {"name": f"plain PyTorch loop (DataLoader, bs {args.loop_batch}, lr swept)", "seconds": seconds,
            "test": test, "fits": len(args.loop_lr), "chosen": {"lr": best[1]}}


def warm_up(args) -> None:
    """Run every method once on a tiny set first, so no in-process timing includes one-time import costs."""
    tiny_args = argparse.Namespace(**{**vars(args), "epochs": 1, "lr": [1e-2], "wd": [0.0], "loop_lr": [1e-2],
                                      "loop_epochs": 1})
    tiny, tiny_names = synthetic(200, 50, 50, 16, 3, 0)
    bench_ours(tiny, tiny_names, tiny_args)
    sklearn_sweep(tiny, [1.0], 10)
    bench_loop(tiny, 3, tiny_args)


def long_fit_epochs(cfg, args) -> int:
    """Epochs of the long fit of the per-epoch cost: ``--epoch-fit-epochs``, at least the run's own and 2."""
    return max(2, cfg.epochs, args.epoch_fit_epochs)


def epoch_trainers(cfg, chosen: dict, n_train: int, heads: str, epochs: int) -> list[ProbeTrainer]:
    """The fit whose epochs are timed: ``chosen``, one head at the selected lr and weight decay (fp32 at 10
    classes under ``precision="auto"``); ``sweep``, every candidate of the configuration's sweep fitted jointly,
    as ``run_probe`` fits them (6 heads of the ERM sweep, bf16 products on a CPU with native bf16)."""
    resolved = cfg.resolved(n_train)
    candidates = [chosen] if heads == "chosen" else resolved.candidates()
    return [ProbeTrainer(**{**resolved.trainer_params(c, seed=0), "epochs": epochs, "tol": None})
            for c in candidates]


def bare_epoch_seconds(x: np.ndarray, outputs: int, precision: str, device: str) -> float:
    """The bare matrix products of one full-batch epoch with ``outputs`` logits per row at ``precision``: the
    forward in the faster of x·wᵀ and (w·xᵀ)ᵀ (as probe.trainer.heads_product picks for narrow heads), then
    dL/dW = gᵀ·x (frozen features need no dL/dX). At bf16 the features are cast once, outside the timing."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    xt = torch.from_numpy(np.asarray(x, np.float32)).to(device).to(dtype)
    w = torch.randn(outputs, xt.shape[1], device=device, dtype=dtype)
    g = torch.randn(xt.shape[0], outputs, device=device, dtype=dtype)
    forward = min(_seconds(lambda: xt @ w.T, device), _seconds(lambda: (w @ xt.T).T.contiguous(), device))
    return forward + _seconds(lambda: g.T @ xt, device)


def epoch_fraction(data, num_classes: int, ours: dict, args) -> dict:
    """Our seconds per epoch, the per-fit setup and the bare products of one full-batch epoch (bare / ours).

    Our per-epoch cost is marginal: (fit with E epochs − fit with 1 epoch) / (E − 1), so the once-per-fit setup
    (moving features, class statistics) is reported apart. E is ``--epoch-fit-epochs`` (at least the run's own
    epochs) and each fit time the best of ``--epoch-fits``: single fits here vary by ±15 % from run to run (the
    memory-bound batch gather most), so a short fit measured 3 times moved the ratio by ±0.1. The bare products
    have the fit's output width (heads × K) and run at the precision the fit ran at; ``bare_fp32_s`` is the fp32
    figure where the fit ran in bf16.
    """
    cfg = ours["config"]
    x, y = data["train"]
    x_fit = x.astype(args.epoch_dtype, copy=False)  # float16: as `mr2probe train` keeps a float16 cache
    fitted: list[ProbeTrainer] = []  # the last fit's trainers: how many heads, at which precision

    def fit_seconds(epochs: int) -> float:
        best = math.inf
        for _ in range(args.epoch_fits):
            fitted[:] = epoch_trainers(cfg, ours["chosen"], len(y), args.epoch_heads, epochs)
            start = time.perf_counter()
            fit_many(fitted, x_fit, y, num_classes)
            best = min(best, time.perf_counter() - start)
        return best

    epochs = long_fit_epochs(cfg, args)
    one, full = fit_seconds(1), fit_seconds(epochs)
    per_epoch = max(full - one, 1e-9) / (epochs - 1)
    heads, precision = len(fitted), fitted[0].precision_
    bare = bare_epoch_seconds(x, heads * num_classes, precision, cfg.device)
    line = {"per_epoch_s": per_epoch, "setup_s": max(one - per_epoch, 0.0), "bare_s": bare,
            "bare_over_ours": bare / per_epoch, "heads": heads, "precision": precision}
    if precision != "fp32":
        line["bare_fp32_s"] = bare_epoch_seconds(x, heads * num_classes, "fp32", cfg.device)
    return line


def _seconds(fn, device: str, reps: int = 20) -> float:
    """Best of 3 mean seconds of fn() over ``reps`` calls, after 2 warm-up calls."""
    for _ in range(2):
        fn()
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def ce_kernels(args) -> None:
    """Forward + backward of the mean cross-entropy on (rows, K) logits: F.cross_entropy against logsumexp −
    gather (probe.losses.cross_entropy picks the latter for K in LOGSUMEXP_CLASSES)."""
    import torch.nn.functional as F

    from probe.losses import LOGSUMEXP_CLASSES, logsumexp_cross_entropy

    def seconds(fn, z, y) -> float:
        def step():
            z.grad = None
            fn(z, y).backward()

        return _seconds(step, "cpu", reps=200)

    print(f"cross-entropy kernels, {args.ce_rows} rows, forward + backward, best of 3 × 200 "
          f"(logsumexp used for K in {LOGSUMEXP_CLASSES.start}..{LOGSUMEXP_CLASSES.stop - 1}):")
    for k in args.ce_kernels:
        z, y = torch.randn(args.ce_rows, k, requires_grad=True), torch.randint(0, k, (args.ce_rows,))
        f_ce, f_lse = seconds(F.cross_entropy, z, y), seconds(logsumexp_cross_entropy, z, y)
        print(f"  K={k:>5}: F.cross_entropy {1e3 * f_ce:.3f} ms, logsumexp − gather {1e3 * f_lse:.3f} ms → "
              f"{f_ce / f_lse:.2f}x")


def product_forms(args) -> None:
    """The two forms of the heads' products that probe picks between: the forward x·wᵀ against (w·xᵀ)ᵀ in float32
    on a mini-batch (probe.trainer.heads_product, NARROW_OUTPUTS), and the bfloat16 weight gradient gᵀ·x against
    (xᵀ·g)ᵀ with a contiguous xᵀ on a full batch (probe.precision.ConstantProduct); best of 3 × 20 calls."""
    print(f"forward on a 1024 × {args.dim} float32 batch, m outputs: x·wᵀ against (w·xᵀ)ᵀ (contiguous)")
    x = torch.randn(1024, args.dim)
    for m in args.product_forms:
        w = torch.randn(m, args.dim)
        a, b = _seconds(lambda: x @ w.T, "cpu"), _seconds(lambda: (w @ x.T).T.contiguous(), "cpu")
        print(f"  m={m:>6}: {1e3 * a:8.3f} ms against {1e3 * b:8.3f} ms → {a / b:.2f}x")
    print(f"bfloat16 weight gradient on a 2700 × {args.dim} full batch: gᵀ·x against (xᵀ·g)ᵀ, xᵀ contiguous")
    x = torch.randn(2700, args.dim).bfloat16()
    xt = x.T.contiguous()
    for m in [m for m in args.product_forms if m <= 600]:
        g = torch.randn(2700, m).bfloat16()
        a, b = _seconds(lambda: g.T @ x, "cpu"), _seconds(lambda: (xt @ g).T, "cpu")
        print(f"  m={m:>6}: {1e3 * a:8.3f} ms against {1e3 * b:8.3f} ms → {a / b:.2f}x")


# -- end to end, process start included -----------------------------------------------------------------------
_OURS_CHILD = (  # exactly the mr2probe entry point (app.cli:run), with the pools it ran with printed before exit
    "import json, sys\nfrom app.cli import exit_process, main\nrc = main(sys.argv[1:])\n"
    "from threadpoolctl import threadpool_info\nimport torch\n"
    "print('POOLS ' + json.dumps({'pools': threadpool_info(), 'torch': torch.get_num_threads()}))\nexit_process(rc)\n"
)


def _pools_line(stdout: str) -> dict:
    line = next(row for row in stdout.splitlines() if row.startswith("POOLS "))
    return json.loads(line[len("POOLS "):])


def cli_ours(cache: Path, out: Path, args) -> dict:
    cmd = [sys.executable, "-c", _OURS_CHILD, "train", "--features", str(cache), "--loss", "ce", "--out", str(out),
           "--no-progress", *args.train_args.split()]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=child_environment(args.threads), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"mr2probe train failed:\n{done.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    return {"name": "mr2probe train --loss ce (sweep, 3 seeds)", "seconds": seconds,
            "test": report["summary"]["overall"], "epochs": report["config"]["epochs"],
            "chosen": {k: report["config"]["selected"][k] for k in ("lr", "weight_decay")},
            "selected_on": report["selection"].get("split", "val"), **_pools_line(done.stdout)}


def cli_sklearn(cache: Path, args) -> dict:
    """bench/sklearn_baseline.py as its own process (numpy, h5py, scikit-learn: no torch, no project code)."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "sklearn_baseline.py"), str(cache),
           "--threads", str(args.threads), "--sk-c", *map(str, args.sk_c), "--sk-max-iter", str(args.sk_max_iter),
           "--cv", str(args.sk_cv)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=child_environment(args.threads), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"scikit-learn child failed:\n{done.stderr[-2000:]}")
    result = json.loads(next(r for r in done.stdout.splitlines() if r.startswith("RESULT "))[len("RESULT "):])
    return {**result, "name": f"python: h5py load + {result['name']}", "seconds": seconds,
            "in_process_seconds": result["seconds"], **_pools_line(done.stdout)}


def run_cli(args, cache: Path | None, data, names) -> list[tuple[dict, dict]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if cache is None:
            cache = write_synthetic_cache(data, names, Path(tmp))
        for r in range(args.repeats):
            ours = cli_ours(cache, Path(tmp) / f"run{r}", args)
            sk = cli_sklearn(cache, args)
            for side in (ours, sk):
                if ({p["num_threads"] for p in side["pools"]} != {args.threads}
                        or side.get("torch", args.threads) != args.threads):
                    raise SystemExit(f"child {side['name']!r} ran with pools {describe_pools(side['pools'])}, "
                                     f"torch {side['torch']}")
            rows.append((ours, sk))
            print(f"  CLI repeat {r + 1}: ours {ours['seconds']:.2f} s ({100 * ours['test']:.2f} %), sklearn "
                  f"{sk['seconds']:.2f} s ({100 * sk['test']:.2f} %) → {sk['seconds'] / ours['seconds']:.2f}x")
    print(f"  child pools: ours {describe_pools(rows[0][0]['pools'])}, torch {rows[0][0]['torch']}; "
          f"sklearn {describe_pools(rows[0][1]['pools'])} (no torch)")
    return rows


def summarise(pairs: list[tuple[dict, dict]], label: str) -> dict:
    ratios = [sk["seconds"] / ours["seconds"] for ours, sk in pairs]
    ours, sk = pairs[-1]
    line = {"what": label, "ours_s": statistics.median(o["seconds"] for o, _ in pairs),
            "sklearn_s": statistics.median(s["seconds"] for _, s in pairs), "ratio_median": statistics.median(ratios),
            "ratios": ratios, "ours_test": ours["test"], "sklearn_test": sk["test"],
            "delta_points": 100 * (ours["test"] - sk["test"]), "ours_chosen": ours["chosen"],
            "sklearn_chosen": sk["chosen"], "epochs": ours["epochs"]}
    print(f"{label}: ours {line['ours_s']:.2f} s at {100 * ours['test']:.2f} %, sklearn {line['sklearn_s']:.2f} s at "
          f"{100 * sk['test']:.2f} % → {line['ratio_median']:.2f}x (median of {len(ratios)}: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}), Δacc {line['delta_points']:+.2f} points")
    return line


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", default=None, help="feature cache (HDF5); default: synthetic features")
    parser.add_argument("--quick", action="store_true", help="small synthetic set (5k×256) for a smoke run")
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="threads for torch and every BLAS, all methods and child processes alike (default 1); "
                        "read before numpy is imported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="our epochs (default: ProbeConfig's)")
    parser.add_argument("--lr", type=float, nargs="+", default=None, help="our lr grid (default: ProbeConfig's)")
    parser.add_argument("--wd", type=float, nargs="+", default=None, help="our wd grid (default: ProbeConfig's)")
    parser.add_argument("--sk-c", type=float, nargs="+", default=SK_C, help="sklearn C grid (default 1e-3 … 1e3)")
    parser.add_argument("--sk-max-iter", type=int, default=1000)
    parser.add_argument("--loop-lr", type=float, nargs="+", default=[1e-3, 1e-2], help="plain loop lr grid")
    parser.add_argument("--loop-epochs", type=int, default=10)
    parser.add_argument("--loop-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats of each comparison")
    parser.add_argument("--cli", action="store_true", help="also time the CLI end to end (process start included)")
    parser.add_argument("--skip-in-process", action="store_true", help="only the CLI comparison")
    parser.add_argument("--per-epoch-only", action="store_true", help="in process, only our run and the per-epoch "
                        "cost against the bare matrix products (no scikit-learn sweep)")
    parser.add_argument("--epoch-fits", type=int, default=5, help="per-epoch cost: best of this many fits")
    parser.add_argument("--epoch-dtype", choices=("float32", "float16"), default="float32",
                        help="per-epoch cost: the features our fits get (float16: as `mr2probe train` keeps a "
                        "float16 cache); the bare products read float32 rows (bf16 ones, cast once, where the fit "
                        "ran in bf16)")
    parser.add_argument("--epoch-fit-epochs", type=int, default=21,
                        help="per-epoch cost: epochs of the long fit (at least the run's own)")
    parser.add_argument("--epoch-heads", choices=("chosen", "sweep"), default="chosen",
                        help="per-epoch cost: one head at the selected lr and weight decay, or every candidate of "
                        "the sweep fitted jointly as run_probe fits them (the bare products then have their width "
                        "and precision)")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--ce-kernels", type=int, nargs="*", default=None, metavar="K",
                        help="only time the two cross-entropy kernels at these class counts")
    parser.add_argument("--ce-rows", type=int, default=2700)
    parser.add_argument("--product-forms", type=int, nargs="*", default=None, metavar="M",
                        help="only time the two forms of the heads' products at these output widths")
    parser.add_argument("--train-args", default="", help="extra `mr2probe train` arguments of our CLI side, e.g. "
                        "'--cv 0' (select on val, as the default baseline does)")
    parser.add_argument("--train-per-class", type=int, nargs="+", default=None, metavar="N",
                        help="the end-to-end comparison at each size: the training split cut to N per class")
    parser.add_argument("--sk-cv", type=int, default=0, help="CLI baseline: select C by a stratified k-fold of "
                        "train + val (LogisticRegressionCV), the like-for-like baseline where `mr2probe train` "
                        "cross-validates (validation < 50 per class); 0: select on val")
    return parser.parse_args()


def per_epoch(data, num_classes: int, ours: dict, args) -> dict:
    line = epoch_fraction(data, num_classes, ours, args)
    cfg = ours["config"]
    epochs = long_fit_epochs(cfg, args)
    fp32 = f"; bare fp32 products {1000 * line['bare_fp32_s']:.1f} ms" if "bare_fp32_s" in line else ""
    print(f"per epoch ({data['train'][0].shape} {args.epoch_dtype}, batch {cfg.batch_size}, {line['heads']} "
          f"head(s) at {line['precision']}, fits of 1 and {epochs} epochs, best of {args.epoch_fits}): ours "
          f"{1000 * line['per_epoch_s']:.1f} ms (+ {1000 * line['setup_s']:.0f} ms setup per fit), bare "
          f"{line['precision']} matrix products {1000 * line['bare_s']:.1f} ms → bare/ours = "
          f"{line['bare_over_ours']:.2f}{fp32}")
    return {"per_epoch_ms": 1000 * line["per_epoch_s"], "bare_ms": 1000 * line["bare_s"],
            "bare_over_ours": line["bare_over_ours"], "epoch_heads": line["heads"], "epoch_precision": line["precision"],
            **({"bare_fp32_ms": 1000 * line["bare_fp32_s"]} if "bare_fp32_s" in line else {})}


def in_process(data, names, args) -> dict:
    num_classes = len(names)
    warm_up(args)
    if args.per_epoch_only:  # no scikit-learn sweep (minutes at 45k): our selection run, then the epoch cost
        return per_epoch(data, num_classes, bench_ours(data, names, args), args)
    pairs = []
    for _ in range(args.repeats):
        pairs.append((bench_ours(data, names, args), sklearn_sweep(data, args.sk_c, args.sk_max_iter)))
    line = summarise(pairs, "in process (1 seed, sweeps included)")
    loop = bench_loop(data, num_classes, args)
    print(f"plain PyTorch loop: {loop['seconds']:.2f} s at {100 * loop['test']:.2f} % ({loop['chosen']})")
    return {**line, "loop_s": loop["seconds"], "loop_test": loop["test"],
            **per_epoch(data, num_classes, pairs[-1][0], args)}


def main() -> None:
    args = parse_args()
    check_pools(cap_pools(args.threads), args.threads, "this process")
    if args.ce_kernels:
        return ce_kernels(args)
    if args.product_forms:
        return product_forms(args)
    if args.features:
        data, names = load_features(args.features)
        source = args.features
    else:
        n, d = (5_000, 256) if args.quick else (args.n_train, args.dim)
        data, names = synthetic(n, n // 10, n // 5, d, args.classes, args.seed)
        source = f"synthetic {n}×{d}, {args.classes} classes, seed {args.seed}"
    shapes = {k: v[0].shape for k, v in data.items()}
    load = os.getloadavg()[0]
    print(f"features: {source}; splits {shapes}; threads {args.threads}; device {args.device}; load {load:.1f}")
    result = {"source": source, "shapes": {k: list(v) for k, v in shapes.items()}, "threads": args.threads,
              "machine": machine(), "load_before": load, "sk_c": args.sk_c}
    print(f"machine: {result['machine']}")
    if not args.skip_in_process:
        result["in_process"] = in_process(data, names, args)
    if args.cli:
        pairs = run_cli(args, Path(args.features) if args.features else None, data, names)
        result["cli"] = summarise(pairs, "end to end (process start included; ours 3 seeds)")
    if args.train_per_class:
        result["sizes"] = size_sweep(args, data, names)
    result["load_after"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
