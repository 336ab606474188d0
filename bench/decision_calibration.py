"""How often the disparity-aware decision says "improved", by simulation: with no true gain and with a real one.

``probe.decision.decide`` compares m candidates with the reference (ERM) configuration on the same validation
images. Since stop 49 a candidate qualifies on lower bounds that hold together over all m candidates
(``probe.uncertainty.simultaneous_lower_bounds``) and on a paired sign-flip test of its changed hard-class images
(the exact sign test where the class halves are equal; weighted as the hard-third score since stop 57),
Bonferroni-adjusted over the m (``probe.selection.choose_safe``). The named baseline, scored on the same trials:
the rule before it (**each candidate's own** 95 % interval: hard-third lower end > 0 and overall lower end ≥ 0).

Each trial draws a validation split of K classes × n_k images whose true per-class accuracies run from 0.95 down
to 0.6, the reference's correctness from them, and m candidates that each redraw a fraction (``--churn``, 0.15)
of the images from the same accuracies: equal to the reference in expectation. In the ``gain`` rows one of the m
candidates instead redraws every image of the hard third (the three, or K // 3, hardest classes) from accuracies
``--gain`` higher (its true hard-third gain; the other m − 1 stay null): how often the decision then finds it
(``improved`` with that candidate chosen) is the rule's power, what the correction costs. Budget 0
(``max_overall_drop``), 1,000 resamples (the product's default).

Results go to ``bench/results/decision_calibration.json``; bench/README.md ("Decision calibration") has the table.

Usage::

    python bench/decision_calibration.py                  # ~10 min on 2 cores
    python bench/decision_calibration.py --trials 50      # quicker, noisier
    python bench/decision_calibration.py --imbalanced     # hard classes smallest: the image test weighted vs counted
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from interval_calibration import finish  # bench/, this script's folder
from probe.decision import decide

RESULTS = Path(__file__).resolve().parent / "results"
# (classes K, validation images per class n_k, candidates m)
CASES = ((10, 30, 1), (10, 30, 6), (10, 30, 24), (10, 100, 1), (10, 100, 6), (10, 100, 24), (30, 50, 18))


def marginal_choice(frontier: list[dict]) -> int | None:
    """The rule up to stop 48: the candidate with the highest lower end of its own hard-third interval among those
    whose hard lower end is > 0 and overall lower end ≥ 0 (budget 0); None when none qualifies."""
    ok = [i for i, e in enumerate(frontier) if not e.get("reference") and e["val_hard_delta_ci"][0] > 0
          and e["val_overall_delta_ci"][0] >= 0]
    return max(ok, key=lambda i: (frontier[i]["val_hard_delta_ci"][0], frontier[i]["val_overall_delta_ci"][0], -i),
               default=None)


def trial(k: int, n_k: int, m: int, gain: float, churn: float, rng: np.random.Generator) -> tuple[int | None, int]:
    """One simulated decision: (the marginal rule's choice, the product's choice); the real candidate, if any,
    is index 1."""
    labels = np.repeat(np.arange(k), n_k)
    truth = np.linspace(0.95, 0.6, k)[labels]
    reference = (rng.random(labels.size) < truth).astype(np.float64)
    hard = labels >= k - k // 3  # the hard third by the true accuracies

    def redraw(p, share):
        return np.where(rng.random(labels.size) < share, rng.random(labels.size) < p, reference).astype(np.float64)

    candidates = [redraw(truth + gain * hard, np.where(hard, 1.0, churn)) if gain and j == 0 else redraw(truth, churn)
                  for j in range(m)]
    d = decide([{"lr": j} for j in range(m + 1)], [reference, *candidates], 0, labels, [str(c) for c in range(k)],
               seed=int(rng.integers(1 << 31)))
    return marginal_choice(d.frontier), d.index


def cell(k: int, n_k: int, m: int, gain: float, churn: float, trials: int, rng: np.random.Generator) -> dict:
    picks = [trial(k, n_k, m, gain, churn, rng) for _ in range(trials)]
    if gain:  # power: the real candidate found
        rate = {name: float(np.mean([p[i] == 1 for p in picks])) for i, name in enumerate(("marginal", "product"))}
    else:  # false "improved": anything chosen
        rate = {name: float(np.mean([p[i] not in (None, 0) for p in picks]))
                for i, name in enumerate(("marginal", "product"))}
    return {"classes": k, "per_class": n_k, "candidates": m, "gain": gain, "trials": trials, **rate}


def run(trials: int, gain: float, churn: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    rows = [cell(k, n_k, m, g, churn, trials, rng) for k, n_k, m in CASES for g in (0.0, gain)]
    return {"rows": rows, "churn": churn, "seed": seed, "seconds": time.perf_counter() - start}


def print_result(result: dict) -> None:
    print("how often 'improved' (no true gain: false claims, nominal 0.025 at most; a true gain: found)")
    print(f"{'K':>4} {'n_k':>4} {'m':>3} {'gain':>5} {'marginal':>9} {'product':>8}")
    for r in result["rows"]:
        print(f"{r['classes']:>4} {r['per_class']:>4} {r['candidates']:>3} {r['gain']:>5} {r['marginal']:>9.3f}"
              f" {r['product']:>8.3f}")


# --rtm: regression to the mean. Every class has the same true accuracy, the reference and one candidate draw their
# correctness independently from it (no true difference; their errors differ), and the budget lets overall cost
# through: a hard third ranked on the images it is measured on is the classes the reference got wrong by chance.
RTM_CASES = ((10, 20), (10, 50), (30, 20), (30, 50))  # (classes K, validation images per class)
RTM_BUDGETS = (0.0, 2.0, 5.0)  # points of overall accuracy (max_overall_drop)


def same_images_choice(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, k: int, budget: float,
                       seed: int) -> bool:
    """The rule before stop 53 for one candidate: the hard third ranked on the reference's accuracy on these
    images and measured on them; improved when the hard gain's 2.5 % percentile bound is > 0, the overall one
    ≥ −budget and the hard images' sign test p ≤ 0.05 (one candidate: the simultaneous bound is the percentile)."""
    from probe.groups import assign_groups
    from probe.uncertainty import Bootstrap, observed_class_accuracy, sign_test

    groups = assign_groups(observed_class_accuracy(reference, labels, k))
    delta = Bootstrap(labels, k, seed=seed).paired_delta(candidate, reference, groups)
    hard = np.isin(labels, groups["hard"])
    fixed, broken = int((candidate > reference)[hard].sum()), int((candidate < reference)[hard].sum())
    return (delta["hard"]["lo"] > 0 and delta["overall"]["lo"] >= -budget / 100 and fixed > broken
            and sign_test(fixed, broken) <= 0.05)


def rtm_rows(trials: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for k, n_k in RTM_CASES:
        labels = np.repeat(np.arange(k), n_k)
        for budget in RTM_BUDGETS:
            before = product = 0
            gains = []
            for _ in range(trials):
                reference, candidate = ((rng.random(labels.size) < 0.8).astype(np.float64) for _ in range(2))
                trial_seed = int(rng.integers(1 << 31))
                before += same_images_choice(reference, candidate, labels, k, budget, trial_seed)
                d = decide([{"lr": 0}, {"lr": 1}], [reference, candidate], 0, labels, [str(c) for c in range(k)],
                           max_overall_drop=budget, seed=trial_seed)
                product += d.verdict == "improved"
                gains.append(d.frontier[1]["val_hard_delta"])
            rows.append({"classes": k, "per_class": n_k, "budget": budget, "trials": trials,
                         "same_images": before / trials, "product": product / trials,
                         "product_mean_hard_gain": float(np.mean(gains))})
    return rows


def print_rtm(result: dict) -> None:
    print("how often 'improved' with no true difference (reference and candidate independent, flat accuracy 0.8)")
    print(f"{'K':>4} {'n_k':>4} {'budget':>6} {'same images':>12} {'product':>8} {'mean hard gain':>15}")
    for r in result["rows"]:
        print(f"{r['classes']:>4} {r['per_class']:>4} {r['budget']:>6.0f} {r['same_images']:>12.3f} "
              f"{r['product']:>8.3f} {100 * r['product_mean_hard_gain']:>+14.2f}")


# --imbalanced: validation splits whose hard classes are the small ones (n_k falls geometrically from n_max to
# n_min as the true accuracy falls from 0.95 to 0.6), where the decision's test of the changed hard-class images
# weighs each as the hard-third score does (1/n of its class half, since stop 57). The named baseline, on the
# same trials: the test as it was, the exact sign test of the counts, the images leaning its way when more were
# fixed than broken.
IMBALANCED_CASES = ((10, 300, 30, 6), (10, 150, 15, 24), (30, 200, 20, 18))  # (K, n_max, n_min, candidates m)


def counted_choice(d, m: int) -> int:
    """The decision of ``d`` re-made with the image test as it was before stop 57 (exact sign test of the counts,
    Bonferroni over the same family, leaning when fixed > broken)."""
    from probe.selection import choose_safe
    from probe.uncertainty import sign_test

    scored = []
    for entry in d.frontier:
        c = dict(entry["params"], **{k: v for k, v in entry.items() if k != "params"})
        if c.get("val_hard_changed") is not None:
            fixed, broken = c["val_hard_changed"]
            family = max(c.get("val_hard_sign_family") or 1, 1)
            c["val_hard_sign_p"] = min(1.0, family * sign_test(fixed, broken)) if fixed > broken else 1.0
        scored.append(c)
    return choose_safe(scored, 0, 0.0)[0]


def imbalanced_rows(trials: int, gain: float, churn: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for k, n_max, n_min, m in IMBALANCED_CASES:
        sizes = np.rint(np.geomspace(n_max, n_min, k)).astype(int)
        labels = np.repeat(np.arange(k), sizes)
        truth = np.linspace(0.95, 0.6, k)[labels]
        hard = labels >= k - k // 3
        for g in (0.0, gain):
            counted = weighted = 0
            for _ in range(trials):
                reference = (rng.random(labels.size) < truth).astype(np.float64)

                def redraw(p, share):
                    return np.where(rng.random(labels.size) < share, rng.random(labels.size) < p,
                                    reference).astype(np.float64)

                candidates = [redraw(truth + g * hard, np.where(hard, 1.0, churn)) if g and j == 0
                              else redraw(truth, churn) for j in range(m)]
                d = decide([{"lr": j} for j in range(m + 1)], [reference, *candidates], 0, labels,
                           [str(c) for c in range(k)], seed=int(rng.integers(1 << 31)))
                hit = (lambda i: i == 1) if g else (lambda i: i not in (None, 0))
                weighted += hit(d.index)
                counted += hit(counted_choice(d, m))
            rows.append({"classes": k, "per_class": [int(sizes[0]), int(sizes[-1])], "candidates": m, "gain": g,
                         "trials": trials, "counted": counted / trials, "weighted": weighted / trials})
    return rows


def print_imbalanced(result: dict) -> None:
    print("how often 'improved' on imbalanced validation (hard classes smallest): the image test counted (before "
          "stop 57) and weighted as the hard-third score (since)")
    print(f"{'K':>4} {'n_k':>9} {'m':>3} {'gain':>5} {'counted':>8} {'weighted':>9}")
    for r in result["rows"]:
        sizes = f"{r['per_class'][0]}..{r['per_class'][1]}"
        print(f"{r['classes']:>4} {sizes:>9} {r['candidates']:>3} {r['gain']:>5} {r['counted']:>8.3f} "
              f"{r['weighted']:>9.3f}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="simulated decisions per row (default 200)")
    parser.add_argument("--gain", type=float, default=0.10, help="true hard-third accuracy gain of the real one")
    parser.add_argument("--churn", type=float, default=0.15, help="fraction of images a candidate redraws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="where to write (default bench/results/"
                        "decision_calibration.json, or decision_calibration_rtm.json with --rtm)")
    parser.add_argument("--rtm", action="store_true", help="regression to the mean: flat accuracies, independent "
                        "errors, budgets 0 / 2 / 5 points; the rule before stop 53 beside the product")
    parser.add_argument("--imbalanced", action="store_true", help="hard classes with the fewest validation images: "
                        "the image test weighted (since stop 57) beside counted (before)")
    args = parser.parse_args(argv)
    if args.imbalanced:
        start = time.perf_counter()
        result = {"rows": imbalanced_rows(args.trials, args.gain, args.churn, args.seed), "seed": args.seed,
                  "churn": args.churn}
        result["seconds"] = time.perf_counter() - start
        return finish(result, "decision_calibration.py --imbalanced", args.trials, 200,
                      args.json or str(RESULTS / "decision_calibration_imbalanced.json"), print_imbalanced)
    if args.rtm:
        start = time.perf_counter()
        result = {"rows": rtm_rows(args.trials, args.seed), "seed": args.seed}
        result["seconds"] = time.perf_counter() - start
        return finish(result, "decision_calibration.py --rtm", args.trials, 200,
                      args.json or str(RESULTS / "decision_calibration_rtm.json"), print_rtm)
    args.json = args.json or str(RESULTS / "decision_calibration.json")
    return finish(run(args.trials, args.gain, args.churn, args.seed), "decision_calibration.py", args.trials, 200,
                  args.json, print_result)


if __name__ == "__main__":
    main()
