"""How often the validation-side intervals the disparity-aware decision reads hold the true difference, by
simulation.

``probe.decision.decide`` gives each candidate a 95 % interval of its overall and cross-fitted hard-third difference
to the reference (``val_overall_delta_ci``, ``val_hard_delta_ci``) and one-sided lower bounds of both that hold
together over the m candidates (``val_*_delta_simultaneous_lo``, 97.5 % jointly), on which
``probe.selection.choose_safe`` decides. This script measures their coverage where the truth is known.

Each trial draws a validation split of K classes (n_k images each: 5 or 10 a class, or 5 to 50 in a seeded order
unrelated to accuracy), true reference accuracies from 0.95 down to 0.55, the reference's correctness from them and
m = 3 candidates that each change the reference's images independently: an image it got wrong is fixed with
probability f_k, one it got right broken with probability b_k, so a class's true difference is
(1 − p_k) f_k − p_k b_k. Scenarios: ``few changes`` (f 5 %, b 2 %: small true differences, most small classes
unchanged), ``hard gain`` (f 25 % on the true hardest third, 3 % elsewhere; b 2 %) and ``churn`` (15 % of images
redrawn from the same accuracies: no true difference). The overall truth is Σ n_k Δ_k / n (accuracy over the
images); the hard truth the mean of Δ_k over the decision's hard pseudo-classes (``probe.crossfit``: the class
halves measured by a ranking of the other half, fixed given the seed). The named baseline on the same resamples:
the plain percentile intervals and bounds (``delta_intervals``, ``simultaneous_lower_bounds`` of
``CrossFittedThirds.paired_delta_samples``), what the decision gave before it widened them.

All bounds together are counted twice: over every candidate, and over those that can be chosen (``choosable``:
a candidate that scored as the reference on every validation image keeps [0, 0] whatever its true difference and
is never chosen, ``probe.selection.scores_as_reference``; with few changes some do: ``unchanged``, their share).

Results go to ``bench/results/decision_coverage.json``; bench/README.md ("Decision interval coverage") has the table.

Usage::

    python bench/decision_coverage.py                  # ~8 min on 2 cores
    python bench/decision_coverage.py --trials 30      # quicker, noisier
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from interval_calibration import finish  # bench/, this script's folder
from probe.crossfit import CrossFittedThirds
from probe.decision import decide
from probe.selection import scores_as_reference
from probe.uncertainty import delta_intervals, simultaneous_lower_bounds

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ((10, "5-50"), (30, "5"), (30, "5-50"), (100, "10"), (100, "5-50"))  # (classes K, images per class)
CANDIDATES = 3
RULES = ("product", "percentile")


def rates(scenario: str, p: np.ndarray, hard: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f, b) per class: the chance a candidate fixes an image the reference got wrong, breaks one it got right."""
    if scenario == "few changes":
        return np.full(p.size, 0.05), np.full(p.size, 0.02)
    if scenario == "hard gain":
        return np.where(hard, 0.25, 0.03), np.full(p.size, 0.02)
    return 0.15 * p, 0.15 * (1 - p)  # churn: 15 % redrawn from p, no true difference


def sizes_of(spec: str, k: int, rng: np.random.Generator) -> np.ndarray:
    if "-" in spec:
        lo, hi = (int(v) for v in spec.split("-"))
        return rng.permutation(np.rint(np.geomspace(hi, lo, k)).astype(int))
    return np.full(k, int(spec))


def baseline(fit: CrossFittedThirds, candidates: list[np.ndarray]) -> list[dict]:
    """The plain percentile intervals and simultaneous bounds of each candidate, on the decision's resamples."""
    pairs = [fit.paired_delta_samples(c) for c in candidates]
    bounds, _ = simultaneous_lower_bounds(np.stack([s["hard"] for _, s in pairs] + [s["overall"] for _, s in pairs]))
    out = []
    for j, (point, samples) in enumerate(pairs):
        d = delta_intervals(point, samples)
        out.append({"val_overall_delta_ci": [d["overall"]["lo"], d["overall"]["hi"]],
                    "val_hard_delta_ci": [d["hard"]["lo"], d["hard"]["hi"]],
                    "val_hard_delta_simultaneous_lo": bounds[j],
                    "val_overall_delta_simultaneous_lo": bounds[len(pairs) + j]})
    return out


def trial(k: int, sizes: np.ndarray, scenario: str, rng: np.random.Generator) -> dict[str, list[dict]]:
    """One decision: per rule, each candidate's intervals and bounds with the truths."""
    labels = np.repeat(np.arange(k), sizes)
    p = np.linspace(0.95, 0.55, k)
    f, b = rates(scenario, p, np.arange(k) >= k - k // 3)
    truth_k = (1 - p) * f - p * b
    reference = (rng.random(labels.size) < p[labels]).astype(np.float64)
    candidates = []
    for _ in range(CANDIDATES):
        u = rng.random(labels.size)
        candidates.append(np.where(reference == 1, u >= b[labels], u < f[labels]).astype(np.float64))
    seed = int(rng.integers(1 << 31))
    d = decide([{"lr": j} for j in range(CANDIDATES + 1)], [reference, *candidates], 0, labels,
               [str(c) for c in range(k)], seed=seed)
    fit = CrossFittedThirds(labels, k, reference, seed=seed)
    truth = {"overall": float(np.sum(sizes * truth_k) / sizes.sum()), "hard": float(truth_k[fit.hard // 2].mean())}
    rows = {"product": d.frontier[1:], "percentile": baseline(fit, candidates)}
    return {rule: [dict(e, truth=truth) for e in entries] for rule, entries in rows.items()}


def cell(k: int, spec: str, scenario: str, trials: int, rng: np.random.Generator) -> dict:
    sizes = sizes_of(spec, k, rng)
    results = [trial(k, sizes, scenario, rng) for _ in range(trials)]
    out = {"classes": k, "per_class": spec, "scenario": scenario, "trials": trials}
    for rule in RULES:
        entries = [e for r in results for e in r[rule]]
        for key in ("overall", "hard"):
            lo, hi = (np.array([e[f"val_{key}_delta_ci"][i] for e in entries]) for i in (0, 1))
            truth = np.array([e["truth"][key] for e in entries])
            out[f"{rule}_{key}"] = {"coverage": float(np.mean((lo - 1e-9 <= truth) & (truth <= hi + 1e-9))),
                                    "mean_width": float(np.mean(hi - lo)),
                                    "zero_width": float(np.mean(hi - lo < 1e-12))}
        out[f"{rule}_joint"] = float(np.mean([bounds_hold(r[rule]) for r in results]))
        out[f"{rule}_joint_choosable"] = float(np.mean([bounds_hold(r[rule], choosable=True) for r in results]))
    out["unchanged"] = float(np.mean([scores_as_reference(e) for r in results for e in r["product"]]))
    return out


def bounds_hold(entries: list[dict], choosable: bool = False) -> bool:
    """Whether every simultaneous lower bound of a decision's candidates is at or below its truth; ``choosable``:
    only of those that can be chosen, the candidates that scored otherwise than the reference on some validation
    image (one that scored as it keeps [0, 0] whatever its true difference, and is never chosen:
    ``probe.selection.scores_as_reference``)."""
    return all(e[f"val_{key}_delta_simultaneous_lo"] <= e["truth"][key] + 1e-9 for e in entries
               if not (choosable and scores_as_reference(e)) for key in ("overall", "hard"))


def run(trials: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    rows = [cell(k, spec, scenario, trials, rng) for k, spec in CASES
            for scenario in ("few changes", "hard gain", "churn")]
    return {"rows": rows, "candidates": CANDIDATES, "seed": seed, "seconds": time.perf_counter() - start}


def print_result(result: dict) -> None:
    print(f"coverage (mean width, points) of each candidate's own 95 % interval; joint: all {2 * CANDIDATES} "
          "simultaneous lower bounds of a trial hold (nominal 0.975), choosable: those of the candidates that scored "
          "otherwise than the reference; product / percentile; unchanged: share of candidates that scored as it")
    print(f"{'K':>4} {'n_k':>5} {'scenario':>12} {'overall':>27} {'hard third':>27} {'joint':>13} {'choosable':>13} "
          f"{'unchanged':>9}")
    for r in result["rows"]:
        cells = [" / ".join(f"{r[f'{rule}_{key}']['coverage']:.3f} ({100 * r[f'{rule}_{key}']['mean_width']:4.1f})"
                            for rule in RULES) for key in ("overall", "hard")]
        joint, choosable = (" / ".join(f"{r[f'{rule}_{key}']:.3f}" for rule in RULES)
                            for key in ("joint", "joint_choosable"))
        print(f"{r['classes']:>4} {r['per_class']:>5} {r['scenario']:>12} {cells[0]:>27} {cells[1]:>27} {joint:>13}"
              f" {choosable:>13} {r['unchanged']:>9.3f}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="decisions per cell (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(RESULTS / "decision_coverage.json"), help="where to write")
    args = parser.parse_args(argv)
    return finish(run(args.trials, args.seed), "decision_coverage.py", args.trials, 100, args.json, print_result)


if __name__ == "__main__":
    main()
