"""Exact binomial coverage of the product's 95 % interval of a proportion (a class's accuracy, recall, precision):
``probe.uncertainty.wilson_interval`` against the plain Wilson score interval (``corrected=False``) and
Clopper-Pearson, over a grid of 3,999 true proportions in (0, 1) for each number of images n. No simulation noise:
coverage at p is the binomial probability of the counts whose interval holds p. Seconds on one core.

    python bench/proportion_coverage.py [--n 1 2 3 5 10 29 30 100]
"""
import argparse

import numpy as np
from scipy import stats

from probe.uncertainty import wilson_interval


def clopper_pearson(x: np.ndarray, n: int, level: float = 0.95) -> np.ndarray:
    tail = (1 - level) / 2
    with np.errstate(all="ignore"):
        lo = np.where(x > 0, stats.beta.ppf(tail, x, n - x + 1), 0.0)
        hi = np.where(x < n, stats.beta.ppf(1 - tail, x + 1, n - x), 1.0)
    return np.stack([lo, hi], axis=-1)


RULES = {"product": lambda x, n: wilson_interval(x, np.full(x.shape, float(n))),
         "plain Wilson": lambda x, n: wilson_interval(x, np.full(x.shape, float(n)), corrected=False),
         "Clopper-Pearson": clopper_pearson}


def coverage(rule, n: int, grid: np.ndarray) -> tuple[float, float, float, float]:
    """(minimum coverage, the p it is at, mean coverage over the grid, mean width at p = 0.5 in points)."""
    x = np.arange(n + 1, dtype=np.float64)
    pmf = stats.binom.pmf(x[None, :], n, grid[:, None])
    ci = rule(x, n)
    held = (ci[None, :, 0] <= grid[:, None] + 1e-12) & (grid[:, None] <= ci[None, :, 1] + 1e-12)
    cov = (pmf * held).sum(axis=1)
    width = float((stats.binom.pmf(x, n, 0.5) * (ci[:, 1] - ci[:, 0])).sum())
    return float(cov.min()), float(grid[cov.argmin()]), float(cov.mean()), 100 * width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2, 3, 4, 5, 10, 20, 29, 30, 100])
    args = parser.parse_args()
    grid = np.linspace(0.00025, 0.99975, 3999)
    print("| n images | " + " | ".join(f"{r}: min coverage (at p), mean, width at 0.5" for r in RULES) + " |")
    print("| ---: |" + " ---: |" * len(RULES))
    for n in args.n:
        cells = [coverage(rule, n, grid) for rule in RULES.values()]
        print(f"| {n} | " + " | ".join(f"{m:.3f} ({p:.3f}), {a:.3f}, {w:.1f} pt" for m, p, a, w in cells) + " |")


if __name__ == "__main__":
    main()
