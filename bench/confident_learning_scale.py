"""``probe.label_issues.confident_learning_issues`` at many classes: wall time and working memory on synthetic
out-of-fold probabilities (no fits).

N images of K classes (N / K a class), 20 % of the labels moved to another class, p = softmax(noise + 3 on the true
class), float64 as the fits give them. Prints the images listed, the best of R calls' wall time and the peak memory
the call allocates (tracemalloc, beside the probabilities' own), and saves the mask (``--out``: compare two source
trees' masks for equality).

    PYTHONPATH=. nice python bench/confident_learning_scale.py --n 200000 --classes 1000 --out mask.npy
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np


def probabilities(n: int, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) float64 probabilities and (n,) labels, a fifth of them not the class the probabilities favour."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n // num_classes)
    p = rng.normal(size=(labels.size, num_classes))
    p[np.arange(labels.size), labels] += 3.0
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    flip = rng.random(labels.size) < 0.2
    labels[flip] = (labels[flip] + rng.integers(1, num_classes, flip.sum())) % num_classes
    return p, labels


def main(argv=None) -> None:
    from probe.label_issues import confident_learning_issues

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=80_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="save the mask here (.npy)")
    args = parser.parse_args(argv)
    p, labels = probabilities(args.n, args.classes)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        mask = confident_learning_issues(p, labels)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    confident_learning_issues(p, labels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if args.out:
        np.save(args.out, mask)
    print(f"n={labels.size} K={args.classes}: {int(mask.sum())} listed; best of {args.repeats} {min(times):.3f} s; "
          f"peak {peak / 1e6:.0f} MB allocated beside the {p.nbytes / 1e6:.0f} MB of probabilities")


if __name__ == "__main__":
    main()
