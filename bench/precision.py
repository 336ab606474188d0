"""Training precision: fp32 against bf16 (``ProbeTrainer(precision=...)``), same data, same threads.

Three measurements, each printing the ratio fp32 time / bf16 time and the accuracy difference bf16 − fp32:

* ``--widths``: the time of one epoch of a joint fit of 6 ERM heads (ProbeConfig's default sweep size) on
  synthetic features, for K ∈ ``--classes`` (stacked product width 6·K): where ``auto`` should switch to bf16
  (``probe.precision.BF16_MIN_OUTPUTS``);
* ``--full-batch NxDxK ...``: the time of one full-batch step (N rows × D features, K classes) of the default
  ERM sweep (6 heads) and of one head, its one cast of the features included: where ``auto`` should switch to
  bf16 for full-batch fits (``probe.precision.BF16_MIN_FULL_BATCH_MACS``);
* ``--synthetic N``: the 1000-class × 1024-d regime of ``bench/scale.py`` (float16 features, batches of 1024),
  the default ERM sweep (6 heads) and MR² sweep (18 heads) fitted jointly for ``--epochs`` epochs: seconds per
  epoch and test accuracy of the best head;
* ``--features CACHE.h5 ...``: ``probe.run_probe`` end to end (ERM and MR², default sweeps, ``--seeds``) on real
  caches: test accuracy, worst-class accuracy and wall time.

Threads: ``--threads`` (default 2, this machine's cores) is set in the environment before numpy and torch are
imported and checked with threadpoolctl; both precisions run in the same process, interleaved.

Usage::

    nice python bench/precision.py --widths --synthetic 128000 --features /work/cache/cifar10-300.h5 \
        /work/cache/cifar10-full.h5
    python bench/precision.py --threads 1 --full-batch 1000x32x5 1000x256x10 2000x512x10 2700x1280x10
"""
from __future__ import annotations

import os
import sys

import thread_caps  # bench/, this script's folder; imports nothing numerical

DEFAULT_THREADS = 2

if __name__ == "__main__":  # as a program: every pool capped before numpy or torch is imported
    thread_caps.cap_environment(thread_caps.threads_from_argv(sys.argv, default=DEFAULT_THREADS))

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from probe import ProbeConfig, ProbeTrainer, fit_many, run_probe  # noqa: E402
from probe.precision import BF16_MIN_FULL_BATCH_MACS, BF16_MIN_OUTPUTS, cpu_has_native_bf16  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def draw(n: int, means: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n rows of class means + unit Gaussian noise (float16) and their labels, as bench/scale.py draws them."""
    y = rng.integers(0, means.shape[0], n)
    x = np.empty((n, means.shape[1]), dtype=np.float16)
    for start in range(0, n, 65_536):
        rows = y[start:start + 65_536]
        x[start:start + 65_536] = means[rows] + rng.standard_normal((len(rows), means.shape[1]), dtype=np.float32)
    return x, y


def synthetic(n: int, k: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d), dtype=np.float32) * (4.0 / math.sqrt(d))
    return draw(n, means, rng), draw(min(n, 10_000), means, rng)


def joint_fit(config: ProbeConfig, precision: str, train, epochs: int, k: int) -> list[ProbeTrainer]:
    """The heads of ``config``'s sweep fitted jointly (one seed) at ``precision`` for ``epochs`` epochs."""
    # mini-batches, as run_probe uses at these sizes; the default grids resolved for this training set
    config = config.resolved(len(train[1])).model_copy(update={"batch_size": 1024})
    params = [config.trainer_params(c, seed=0) | {"epochs": epochs, "precision": precision, "tol": None}
              for c in config.candidates()]
    return fit_many([ProbeTrainer(**p) for p in params], *train, num_classes=k)


def best_accuracy(trainers: list[ProbeTrainer], test) -> float:
    return max(t.score(*test) for t in trainers)


def best_interleaved(measure, epochs: int, repeats: int) -> dict[str, float]:
    """{precision: the least of ``repeats`` values of measure(precision, epochs)}, after a one-epoch warm-up of
    each precision; the precisions interleaved, so a load change on the shared machine hits both sides."""
    for precision in PRECISIONS:
        measure(precision, 1)
    values = {precision: [] for precision in PRECISIONS}
    for _ in range(repeats):
        for precision in PRECISIONS:
            values[precision].append(measure(precision, epochs))
    return {precision: min(v) for precision, v in values.items()}


def widths(args) -> None:
    # the default sweep's 6 heads, or one head (a final fit of the chosen candidate, one seed)
    config = ProbeConfig(loss="ce") if args.width_heads == 6 else ProbeConfig(loss="ce", lr_grid=[1e-3], wd_grid=[1.0])
    heads = config.n_candidates()
    print(f"\n## epoch time of {heads} jointly fitted ERM head(s), {args.width_rows} rows × {args.dim}-d float16, "
          "batch 1024")
    print(f"{'K':>6} {'width':>6} {'fp32 s':>8} {'bf16 s':>8} {'fp32/bf16':>9}")
    for k in args.classes:
        train, _ = synthetic(args.width_rows, k, args.dim)

        def epoch_seconds(precision: str, epochs: int) -> float:
            return joint_fit(config, precision, train, epochs, k)[0].fit_time_ / epochs

        seconds = best_interleaved(epoch_seconds, 2, args.repeats)
        print(f"{k:>6} {heads * k:>6} {seconds['fp32']:>8.3f} {seconds['bf16']:>8.3f} "
              f"{seconds['fp32'] / seconds['bf16']:>9.2f}")


def full_batch(args) -> None:
    print("\n## full-batch step of 6 jointly fitted ERM heads (the default sweep) and of 1 head: fp32 against bf16 "
          "(features cast once per fit)")
    print(f"{'rows×dim×K':>16} {'heads':>5} {'MACs':>8} {'fp32 ms':>8} {'bf16 ms':>8} {'fp32/bf16':>9}")
    for shape in args.full_batch:
        n, d, k = map(int, shape.split("x"))
        train, _ = synthetic(n, k, d)
        for grid in ({"lr_grid": [1e-3, 1e-2], "wd_grid": [0.0, 1.0, 10.0]}, {"lr_grid": [1e-2], "wd_grid": [1.0]}):
            config = ProbeConfig(loss="ce", batch_size=None, optimizer="adamw", **grid)  # as measured (bench/README.md)
            params = [config.trainer_params(c, seed=0) | {"tol": None} for c in config.candidates()]

            def step_ms(precision: str, epochs: int) -> float:  # fit time per step, the one cast included
                heads = [ProbeTrainer(**p | {"epochs": epochs, "precision": precision}) for p in params]
                return 1000 * fit_many(heads, *train, num_classes=k)[0].fit_time_ / epochs

            best = best_interleaved(step_ms, 20, args.repeats)
            macs = n * d * k * len(params)
            print(f"{shape:>16} {len(params):>5} {macs / 2**20:>7.1f}M {best['fp32']:>8.2f} {best['bf16']:>8.2f} "
                  f"{best['fp32'] / best['bf16']:>9.2f}")


def scale(args) -> None:
    k = 1000
    train, test = synthetic(args.synthetic, k, 1024)
    print(f"\n## {args.synthetic} × 1024-d, {k} classes (float16), {args.epochs} epoch(s) per fit, joint sweep")
    print(f"{'method':>7} {'heads':>5} {'fp32 s/ep':>9} {'bf16 s/ep':>9} {'fp32/bf16':>9} {'fp32 acc':>8} "
          f"{'bf16 acc':>8} {'Δ pts':>6}")
    for method, loss in (("erm", "ce"), ("mr2", "mr2")):
        config = ProbeConfig(loss=loss)
        out = {}
        for precision in PRECISIONS:
            heads = joint_fit(config, precision, train, args.epochs, k)
            out[precision] = (heads[0].fit_time_ / args.epochs, best_accuracy(heads, test))
        (t32, a32), (t16, a16) = out["fp32"], out["bf16"]
        print(f"{method:>7} {len(heads):>5} {t32:>9.1f} {t16:>9.1f} {t32 / t16:>9.2f} {100 * a32:>8.2f} "
              f"{100 * a16:>8.2f} {100 * (a16 - a32):>+6.2f}")


def real(args) -> None:
    from feature_cache import open_cache

    print(f"\n## run_probe on real caches, default sweeps, seeds {args.seeds}")
    print(f"{'cache':>16} {'method':>6} {'fp32 s':>7} {'bf16 s':>7} {'fp32 acc':>8} {'bf16 acc':>8} {'Δ pts':>6} "
          f"{'fp32 worst':>10} {'bf16 worst':>10}")
    for path in args.features:
        cache = open_cache(path)
        data = {s: cache.load(s, dtype=None) for s in ("train", "val", "test") if s in cache.splits}
        for method, loss in (("erm", "ce"), ("mr2", "mr2")):
            out = {}
            for precision in PRECISIONS:
                start = time.perf_counter()
                report = run_probe(data, list(cache.class_names), ProbeConfig(loss=loss, seeds=args.seeds,
                                                                               precision=precision),
                                   tune_allocator=True)
                summary = report.summary
                out[precision] = (time.perf_counter() - start, 100 * summary.overall,
                                  100 * summary.worst_class.accuracy)
            (t32, a32, w32), (t16, a16, w16) = out["fp32"], out["bf16"]
            print(f"{Path(path).stem:>16} {method:>6} {t32:>7.1f} {t16:>7.1f} {a32:>8.2f} {a16:>8.2f} "
                  f"{a16 - a32:>+6.2f} {w32:>10.2f} {w16:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--widths", action="store_true", help="epoch time against the stacked product width")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 50, 100, 200, 1000])
    parser.add_argument("--width-rows", type=int, default=16_384)
    parser.add_argument("--width-heads", type=int, choices=(1, 6), default=6,
                        help="--widths: the default sweep's 6 heads, or 1 (a final fit)")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--full-batch", nargs="*", default=[], metavar="NxDxK",
                        help="full-batch step time of these shapes (rows x features x classes), e.g. 2400x1280x10")
    parser.add_argument("--synthetic", type=int, default=None, metavar="N", help="1000 classes × 1024-d, N rows")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--features", nargs="*", default=[], metavar="CACHE.h5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    pools = thread_caps.describe_pools(thread_caps.cap_pools(args.threads))
    print(f"threads: torch {torch.get_num_threads()}; {pools}; native bf16: {cpu_has_native_bf16()}; "
          f"auto → bf16 from width {BF16_MIN_OUTPUTS} or {BF16_MIN_FULL_BATCH_MACS / 2**20:.0f}M full-batch MACs; load {os.getloadavg()[0]:.2f}")
    if args.widths:
        widths(args)
    if args.full_batch:
        full_batch(args)
    if args.synthetic:
        scale(args)
    if args.features:
        real(args)
    print(f"\nload at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
