"""How often the disparity-aware decision says "improved" when nothing differs but the training seed, by simulation.

``probe.decision.decide`` (what ``run_probe``'s hard selection and the ``disparity`` preset call) may say
"improved" only when a candidate beats the reference beyond noise: at most 2.5 % of decisions where no candidate
is truly better. Here the candidates are real heads that differ only by their training seed, judged as if they
were methods. Each repetition draws K Gaussian clusters (``tests/testdata.gaussian_splits``, 8-d, centres
N(0, 1)): 20 train images a class, n validation and n test images a class, and a population of ``POPULATION``
images a class that stands for the truth; ``run_probe`` trains ERM once per seed 0 … m (one product run each,
``--cv 0``, 5 epochs, one learning rate), and ``decide`` compares seeds 1 … m with seed 0 (the reference) on
their validation correctness, budget 0. Counted per setting: the rate of "improved" (nominal ≤ 2.5 %), and of
"improved" that is wrong against the population, where the chosen seed's true accuracy on the reference's hard
third (the decision's ``groups["hard"]``) is not above the reference's, or its true overall accuracy is below.
Each rate comes with its binomial simulation noise: the standard error at the nominal 2.5 %, and the 95 % Wilson
interval of the rate observed (``probe.uncertainty.wilson_interval``).

Results go to ``bench/results/null_decision.json``; bench/README.md ("Null decision: seeds judged as methods") has
the table.

Usage::

    python bench/null_decision.py                              # 120 repetitions of each setting
    python bench/null_decision.py --reps 40 --settings 50:5    # K classes : n validation and test images a class
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from probe import ProbeConfig, run_probe
from probe.decision import decide
from probe.deploy import RunProbe
from probe.uncertainty import wilson_interval

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' data: their Gaussian clusters
from testdata import gaussian_splits  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SETTINGS = ("5:5", "5:20", "5:100", "50:5")  # classes K : validation and test images a class
NOMINAL = 0.025  # the most "improved" may be said with no true gain
TRAIN = 20  # train images a class
POPULATION = 4000  # population images a class: the truth each head is measured on
CANDIDATES = 3  # seeds judged against seed 0


def parse_setting(text: str) -> tuple[int, int]:
    """"K:n" as (classes, validation and test images a class); argparse's error for anything else."""
    try:
        k, n = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"setting {text!r} is not K:n (classes:images a class), e.g. 5:20") from None
    if k < 2 or n < 2:
        raise argparse.ArgumentTypeError(f"setting {text!r} needs at least 2 classes and 2 images a class")
    return k, n


def repetition(k: int, n: int, rep: int, candidates: int, work: Path) -> dict:
    """One simulated decision: ERM trained with seeds 0 … ``candidates`` by ``run_probe``, judged by ``decide``."""
    data = gaussian_splits(k, {"train": TRAIN, "val": n, "test": n, "pop": POPULATION}, 1.0, dim=8,
                           seed=1000 * k + rep)
    pop_x, pop_y = data.pop("pop")
    names = [f"c{c}" for c in range(k)]
    val, truth = [], []
    for seed in range(candidates + 1):
        out = work / f"s{seed}"
        config = ProbeConfig(epochs=5, lr_grid=[0.05], wd_grid=[0.0], seeds=[seed], cv=0, batch_size=16, tol=None)
        run_probe(data, names, config, out_dir=out)
        head = RunProbe.load(out)
        val.append((head.predict(data["val"][0]) == data["val"][1]).astype(np.float64))
        truth.append(np.bincount(pop_y, head.predict(pop_x) == pop_y, k) / POPULATION)
    d = decide([{"seed": s} for s in range(candidates + 1)], val, 0, data["val"][1], names, seed=rep)
    hard = d.groups["hard"]
    hard_gain = float(truth[d.index][hard].mean() - truth[0][hard].mean())
    overall_gain = float(truth[d.index].mean() - truth[0].mean())
    improved = d.verdict == "improved"
    return {"improved": improved, "improved_wrong": improved and (hard_gain <= 0 or overall_gain < 0),
            "true_hard_gain": hard_gain if improved else None, "true_overall_gain": overall_gain if improved else None,
            "val_discordant": float(np.mean([np.mean(v != val[0]) for v in val[1:]]))}


def rate(count: int, reps: int) -> dict:
    """A simulated rate with its binomial noise: standard error at the nominal rate, 95 % Wilson interval."""
    lo, hi = (float(v) for v in wilson_interval(np.array([count]), np.array([reps])).ravel())
    return {"count": count, "rate": count / reps, "se_at_nominal": math.sqrt(NOMINAL * (1 - NOMINAL) / reps),
            "wilson_95": [lo, hi]}


def setting_row(k: int, n: int, reps: int, candidates: int) -> dict:
    start = time.perf_counter()
    rows = []
    for rep in range(reps):
        with tempfile.TemporaryDirectory(prefix="null_decision_") as work:
            rows.append(repetition(k, n, rep, candidates, Path(work)))
    gains = [r for r in rows if r["improved"]]
    return {"classes": k, "per_class": n, "candidates": candidates, "reps": reps,
            "improved": rate(sum(r["improved"] for r in rows), reps),
            "improved_wrong": rate(sum(r["improved_wrong"] for r in rows), reps),
            "true_gains_when_improved": [[r["true_hard_gain"], r["true_overall_gain"]] for r in gains],
            "val_discordant": float(np.mean([r["val_discordant"] for r in rows])),
            "seconds": time.perf_counter() - start}


def print_row(row: dict) -> None:
    lo, hi = row["improved"]["wilson_95"]
    print(f"{row['classes']:>4} {row['per_class']:>4} {row['reps']:>5} {row['improved']['count']:>4} "
          f"{row['improved']['rate']:>7.3f} [{lo:.3f}, {hi:.3f}] {row['improved']['se_at_nominal']:>6.3f} "
          f"{row['improved_wrong']['count']:>6} {row['val_discordant']:>10.3f} {row['seconds']:>7.0f}", flush=True)


def run(settings: list[tuple[int, int]], reps: int, candidates: int, path: Path, command: str) -> dict:
    """Every setting in turn; the JSON file is rewritten after each, so a stopped run keeps what it finished."""
    result = {"command": command, "nominal": NOMINAL, "train_per_class": TRAIN, "population_per_class": POPULATION,
              "rows": []}
    print("K    n  reps  imp    rate  wilson 95 %     se@2.5% wrong discordant seconds")
    for k, n in settings:
        result["rows"].append(setting_row(k, n, reps, candidates))
        print_row(result["rows"][-1])
        path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {path}")
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=120, help="simulated decisions per setting (default 120)")
    parser.add_argument("--settings", nargs="+", type=parse_setting, default=[parse_setting(s) for s in SETTINGS],
                        metavar="K:n", help="classes : validation and test images a class (default "
                        f"{' '.join(SETTINGS)})")
    parser.add_argument("--candidates", type=int, default=CANDIDATES, help="seeds judged against seed 0 (default 3)")
    parser.add_argument("--json", type=Path, default=RESULTS / "null_decision.json", help="where to write")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.candidates < 1:
        parser.error("--reps and --candidates must be at least 1")
    warnings.simplefilter("ignore")  # every run warns of its small validation split: the point of the setting
    settings = " ".join(f"{k}:{n}" for k, n in args.settings)
    command = f"python bench/null_decision.py --reps {args.reps} --settings {settings}"
    return run(args.settings, args.reps, args.candidates, args.json, command)


if __name__ == "__main__":
    main()
