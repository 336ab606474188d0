"""Shots-per-class sweep (issue 13, "Evidence"): where does each disparity method help, and does the preset harm?

From one full feature cache (``feature_cache.open_cache``): train + val pooled as the training pool, the whole
test split as test. For every n in ``--shots`` (images per class, or ``all``) and every subsample seed, n images
per class are drawn from the pool (seeded, nested: with one seed the n = 10 draw is inside the n = 25 draw) and
given to ``probe.run_probe`` as a data set without validation, so the product carves validation from them as it
does for any such data set (``ProbeConfig.val_fraction``, seed = the subsample seed; whatever else run_probe does
for small validation applies as it stands). The test split is always the full one.

Methods (one training seed each, equal to the subsample seed; the subsample seeds give the spread, and for
``all`` they vary the validation carve and the initialisation):

* ``erm``: ``loss="ce"``, selected on validation overall accuracy;
* ``mr2``: MR² as published, ``group_dro_eta``: group DRO with η selected, both ``select="hard"`` (the product's
  paired-bootstrap decision against the reference; they fall back to the ERM configuration when no candidate
  is a safe improvement, the verdict is stored) and ``posthoc_bias``; these get the same subsample's ERM report
  as ``reference=`` (as the full-set harness does), so their groups and reference model are ERM's;
* ``preset``: ``ProbeConfig(preset="disparity")`` run as a user runs it: no reference, so run_probe trains the
  reference (ERM) configuration itself, decides with ``max_overall_drop = 0`` and falls back to ERM.

Evaluation groups (one definition for every method): the classes ranked into thirds (``probe.assign_groups``)
by that subsample's ERM *test* per-class accuracy; every method's "hard" is the mean test accuracy of those
classes. (Ranking on ERM's own test accuracy puts ERM's training noise into its hard third; the methods trained
on the same subsample share most of it.)

Harm (per subsample): test overall < ERM's − 0.3 points, or the worst class (min over classes) < ERM's worst
class − 1.0 points. Results go to ``bench/results/shots_<name>_<encoder>_<head>.json`` after every run
(resumable: entries present are skipped; a missing disparity method re-runs ERM for its reference and checks
it reproduces the stored ERM entry).

    python bench/disparity.py --shots 10 25 50 100 250 1000 all --subsample-seeds 0 1 2 3 4 \\
        --features /work/cache/cifar10-full.h5 --name cifar10 --heads linear cosine --threads 1
    python bench/disparity.py --from-json bench/results/shots_cifar10_effnet-lite0_linear.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from disparity import LABELS, METHODS, RESULTS_DIR, _config
from feature_cache import open_cache
from probe import ProbeConfig, assign_groups, group_accuracy, run_probe
from probe.crossval import within_class_rank

logger = logging.getLogger("shots")

SHOT_METHODS: dict[str, dict] = {
    **{m: METHODS[m] for m in ("erm", "mr2", "group_dro_eta", "posthoc_bias", "posthoc_bias_guarded",
                               "logit_adjust_tau", "erm_balanced", "posthoc_bias_balanced",
                               "logit_adjust_tau_balanced", "ldam_margin", "ldam_margin_balanced", "ldam_wide_balanced")},
    "preset": dict(preset="disparity"),
    "preset_balanced": dict(preset="disparity", overall_metric="balanced"),
}
# the long-tail baselines and the balanced selection are for --imbalance runs
DEFAULT_METHODS = ("erm", "mr2", "group_dro_eta", "posthoc_bias", "preset")
# run without reference=: ERM is the reference, the presets (and the balanced ERM) run as a user runs them
NO_REFERENCE = ("erm", "erm_balanced", "preset", "preset_balanced")
SHOT_LABELS = {**LABELS, "preset": "preset `disparity`", "preset_balanced": "preset `disparity`, balanced"}
HARM_OVERALL_PT = 0.3  # harm: test overall below ERM's by more than this many points ...
HARM_WORST_PT = 1.0  # ... or the worst class below ERM's worst class by more than this
PRESET_HARM_MAX = 0.05  # issue-13 targets: the preset harms in at most 5 % of subsamples
GAIN_MIN_PT, GAIN_SHARE = 1.0, 0.8  # where a method gains ≥ 1 hard point at overall ≥ ERM, the preset gets 80 %
_SUBSAMPLE_STREAM = 1  # spawn key: the subsample's random stream is independent of run_probe's seed-based ones
_ORDER_STREAM = 2  # spawn key: which classes are rare in a long-tailed subsample (--imbalance)


def parse_n(value: str) -> int | None:
    """``"all"`` → None (the whole pool), else a positive number of images per class."""
    if value == "all":
        return None
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--shots takes positive integers or 'all', got {value!r}")
    return int(value)


def n_key(n: int | None) -> str:
    return "all" if n is None else str(n)


def long_tail_counts(n: int, imbalance: float, num_classes: int, seed: int) -> np.ndarray:
    """Images per class of a long-tailed subsample (CIFAR-10-LT's profile, Cao et al. 2019): the class at rank j
    of a seeded permutation gets round(n · imbalance^(−j/(K−1))), at least 1; ``imbalance`` = 1 gives n to all.

    The permutation is the subsample seed's (its own stream), so the subsamples vary which classes are rare.
    """
    if imbalance < 1:
        raise ValueError(f"imbalance is the ratio of the largest to the smallest class count (≥ 1), got {imbalance}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_ORDER_STREAM,)))
    rank = rng.permutation(num_classes)
    return np.maximum(1, np.round(n * imbalance ** (-rank / max(num_classes - 1, 1)))).astype(np.int64)


def subsample_per_class(labels: np.ndarray, n: int | None, seed: int, imbalance: float = 1.0) -> np.ndarray:
    """Row indices (ascending) of exactly ``n`` rows of each class, drawn without replacement (``None``: all);
    with ``imbalance`` > 1, :func:`long_tail_counts` rows per class (``None``: n = the smallest class count).

    Seeded and nested: for one seed the rows drawn for a smaller n are among those for a larger n.

    Raises:
        ValueError: a class has fewer rows than it is to get.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels)
    if n is None and imbalance == 1:
        return np.arange(labels.size)
    want = long_tail_counts(int(counts.min()) if n is None else n, imbalance, counts.size, seed)
    short = np.flatnonzero(counts < want)
    if short.size:
        raise ValueError(f"n={n} images per class, but class(es) {short.tolist()} have only "
                         f"{counts[short].tolist()} in the pool; accepted: n ≤ {counts.min()} or 'all'.")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SUBSAMPLE_STREAM,)))
    return np.flatnonzero(within_class_rank(labels, rng) < want[labels])


def mean_span(values, fmt: str) -> str:
    """``mean (min..max)`` of ``values``, each formatted with ``fmt`` (e.g. ``".2f"``, ``"+.2f"``): a table cell of
    what several subsamples gave."""
    values = np.asarray(values, dtype=np.float64)
    return f"{values.mean():{fmt}} ({values.min():{fmt}}..{values.max():{fmt}})"


def load_pool(cache) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(the training pool: train + val of an open cache, its test split), as (features, int64 labels) pairs."""
    parts = [cache.load(split) for split in ("train", "val")]
    pool = (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]).astype(np.int64))
    return pool, cache.load("test")


def _entry(report: dict, seconds: float, groups: dict) -> dict:
    """What the sweep keeps of one run: test accuracies (fractions), the decision and the cost."""
    per_class = [pc["accuracy"] for pc in report["per_class"]]
    return {
        "overall": report["seeds"]["metrics"]["overall"]["mean"],
        "per_class": per_class,
        "hard": group_accuracy(np.array(per_class, dtype=float), groups)["hard"],
        "worst_class": min(per_class),
        "verdict": report["selection"]["verdict"],
        "loss": report["config"]["loss"],
        "selected": {k: v for k, v in report["config"]["selected"].items() if v is not None},
        "n_train": sum(pc["n_train"] for pc in report["per_class"]),
        "val_source": report["val"]["source"],
        "warnings": report["warnings"],
        "seconds": round(seconds, 2),
    }


def harms(entry: dict, erm: dict) -> bool:
    """Test overall < ERM − 0.3 points, or worst class < ERM's worst class − 1.0 points (same subsample)."""
    d_overall = round(100.0 * (entry["overall"] - erm["overall"]), 9)  # rounding: 0.3 exactly is no harm
    d_worst = round(100.0 * (min(entry["per_class"]) - min(erm["per_class"])), 9)
    return d_overall < -HARM_OVERALL_PT or d_worst < -HARM_WORST_PT


def _std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if values.size > 1 else 0.0


def method_summary(pairs: list[tuple[dict, dict]]) -> dict:
    """Over subsamples, ``pairs`` = [(method entry, ERM entry of the same subsample)]; all values in points."""
    pt = lambda key: np.array([100.0 * m[key] for m, _ in pairs])  # noqa: E731
    d_hard = np.array([100.0 * (m["hard"] - e["hard"]) for m, e in pairs])
    d_overall = np.array([100.0 * (m["overall"] - e["overall"]) for m, e in pairs])
    d_class = min(float(np.min(np.subtract(m["per_class"], e["per_class"]))) for m, e in pairs)
    verdicts: dict[str, int] = {}
    for m, _ in pairs:
        verdicts[m["verdict"]] = verdicts.get(m["verdict"], 0) + 1
    return {
        "subsamples": len(pairs), "overall": float(pt("overall").mean()), "hard": float(pt("hard").mean()),
        "worst_class": float(pt("worst_class").mean()),
        "d_hard": float(d_hard.mean()), "d_hard_std": _std(d_hard),
        "d_overall": float(d_overall.mean()), "d_overall_std": _std(d_overall),
        "worst_class_delta": 100.0 * d_class,
        "harm_fraction": float(np.mean([harms(m, e) for m, e in pairs])),
        "hard_beats_2std": bool(len(pairs) > 1 and d_hard.mean() > 2 * _std(d_hard)),
        "verdicts": verdicts, "seconds": float(np.mean([m["seconds"] for m, _ in pairs])),
    }


def _n_order(key: str) -> float:
    return float("inf") if key == "all" else float(key)


def summarize(result: dict) -> dict[str, dict[str, dict]]:
    """``{n: {method: method_summary}}`` over the subsamples where both the method and ERM ran."""
    out: dict[str, dict[str, dict]] = {}
    for n in sorted(result["entries"], key=_n_order):
        runs = [s["methods"] for s in result["entries"][n].values() if "erm" in s["methods"]]
        rows = {}
        for method in SHOT_METHODS:
            pairs = [(r[method], r["erm"]) for r in runs if method in r]
            if pairs:
                rows[method] = method_summary(pairs)
        out[n] = rows
    return out


def markdown_table(result: dict, summary: dict) -> str:
    """Rows n × method: test means over subsamples, deltas to ERM on the same subsample, harm, verdicts."""
    rows = ["| n / class | method | subsamples | overall | hard | worst class | Δ hard (± std) | Δ overall (± std) "
            "| worst single-class Δ | harm | verdicts | s / run |", "|" + "---|" * 12]
    for n, methods in summary.items():
        for method, s in methods.items():
            is_erm = method == "erm"
            verdicts = ", ".join(f"{k} {v}" for k, v in sorted(s["verdicts"].items()))
            rows.append(
                f"| {n} | {SHOT_LABELS.get(method, method)} | {s['subsamples']} | {s['overall']:.2f} | "
                f"{s['hard']:.2f} | {s['worst_class']:.2f} | "
                + ("— | — | — | — |" if is_erm else
                   f"{s['d_hard']:+.2f} ± {s['d_hard_std']:.2f} | {s['d_overall']:+.2f} ± {s['d_overall_std']:.2f} | "
                   f"{s['worst_class_delta']:+.1f} | {100 * s['harm_fraction']:.0f} % |")
                + f" {verdicts} | {s['seconds']:.0f} |")
    return "\n".join(rows)


def target_checks(summary: dict) -> list[str]:
    """The issue-13 targets and the MR² 2·std question, one line each, for one data set × head."""
    lines = []
    for preset in [p for p in ("preset", "preset_balanced") if p == "preset" or any(p in m for m in summary.values())]:
        harmful = [f"{n} ({100 * m[preset]['harm_fraction']:.0f} %)" for n, m in summary.items()
                   if preset in m and m[preset]["harm_fraction"] > PRESET_HARM_MAX]
        have = [n for n, m in summary.items() if preset in m]
        verdict = "**yes**" if have and not harmful else "no" + (f", n = {', '.join(harmful)}" if harmful else "")
        lines.append(f"- {SHOT_LABELS[preset]} harm ≤ {100 * PRESET_HARM_MAX:.0f} % at every n "
                     f"({', '.join(have) or 'none run'}): {verdict}")
    for n, methods in summary.items():
        gains = {m: s["d_hard"] for m, s in methods.items()
                 if m != "erm" and s["d_hard"] >= GAIN_MIN_PT and s["d_overall"] >= 0}
        if not gains:
            lines.append(f"- n = {n}: no method reaches ≥ +{GAIN_MIN_PT:.1f} hard at Δ overall ≥ 0 (target void)")
            continue
        best = max(gains, key=gains.get)
        preset = methods.get("preset", {}).get("d_hard")
        ok = preset is not None and preset >= GAIN_SHARE * gains[best]
        lines.append(f"- n = {n}: best gain {SHOT_LABELS.get(best, best)} {gains[best]:+.2f} hard; preset "
                     + ("not run" if preset is None else f"{preset:+.2f}") + f" → ≥ {100 * GAIN_SHARE:.0f} %: "
                     + ("**yes**" if ok else "no"))
    beats = [n for n, m in summary.items() if "mr2" in m and m["mr2"]["hard_beats_2std"]]
    lines.append(f"- MR² mean Δ hard > 2·std over subsamples at n = {', '.join(beats) or 'none'}")
    return lines


# the long-tail summary's columns: the preset as it stands, then the balanced selection's methods
LONG_TAIL_COLUMNS = ("preset", "preset_balanced", "logit_adjust_tau_balanced", "posthoc_bias_balanced", "erm_balanced")


def long_tail_summary(results: list[dict]) -> str:
    """One Markdown row per (long-tailed results file, n): ERM's test overall and, per method of
    ``LONG_TAIL_COLUMNS``, its Δ overall ± std over subsamples and how often it harmed (``—``: not run)."""
    rows = ["| data | imbalance | n (largest class) | subsamples | ERM overall | "
            + " | ".join(SHOT_LABELS[m] for m in LONG_TAIL_COLUMNS) + " |",
            "|" + "---|" * (5 + len(LONG_TAIL_COLUMNS))]
    for result in results:
        setting = result["setting"]
        for n, methods in summarize(result).items():
            cells = [f"{m['d_overall']:+.2f} ± {m['d_overall_std']:.2f} ({100 * m['harm_fraction']:.0f} %)"
                     if (m := methods.get(name)) else "—" for name in LONG_TAIL_COLUMNS]
            erm = methods["erm"]
            rows.append(f"| {setting['name']} | {setting.get('imbalance', 1.0):g} | {n} | {erm['subsamples']} | "
                        f"{erm['overall']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def report_tables(result: dict) -> str:
    """The Markdown table and target checks of one results file (``--from-json``)."""
    s = result["setting"]
    summary = summarize(result)
    timing = result.get("timing", {})
    walls = ", ".join(f"{n}: {timing['per_n_wall_seconds'][n] / 60:.1f}"
                      for n in sorted(timing.get("per_n_wall_seconds", {}), key=_n_order))
    shape = ("shots per class" if s.get("imbalance", 1.0) == 1 else
             f"long-tailed subsamples, imbalance {s['imbalance']:g} (n = the largest class's count)")
    head = (f"### {s['name']} · {s['encoder']} · {s['head']} head — {shape} (pool {s['n_pool']}, "
            f"test {s['n_test']}; Δ vs ERM on the same subsample, points)\n")
    foot = f"\nwall minutes per n: {walls or '—'}; total {timing.get('total_wall_seconds', 0) / 60:.1f}"
    return "\n".join([head, markdown_table(result, summary), foot, "", *target_checks(summary)])


def _save(path: Path, result: dict, n: str, clock: list[float]) -> None:
    """Atomic write (a kill leaves the previous file), with the wall time since the last save added to n's."""
    now = time.perf_counter()
    timing = result["timing"]
    timing["per_n_wall_seconds"][n] = round(timing["per_n_wall_seconds"].get(n, 0.0) + now - clock[0], 2)
    timing["total_wall_seconds"] = round(sum(timing["per_n_wall_seconds"].values()), 2)
    clock[0] = now
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)


# The settings that make two sweeps one: the same cache, head and subsample shape (a file from before --imbalance
# has no "imbalance": 1).
_SAME_SWEEP = (("fingerprint", None), ("head", None), ("encoder", None), ("imbalance", 1.0), ("n_pool", None),
               ("n_test", None))


def _setting_difference(a: dict, b: dict) -> tuple[str, Any, Any] | None:
    """The first of ``_SAME_SWEEP`` in which two sweeps' settings differ, as (key, a's value, b's value), or None."""
    for key, default in _SAME_SWEEP:
        if a.get(key, default) != b.get(key, default):
            return key, a.get(key, default), b.get(key, default)
    return None


def load_or_new(path: Path, setting: dict) -> dict:
    """The results file to continue (same cache and head), or a new one."""
    if not path.is_file():
        return {"kind": "shots", "setting": setting, "entries": {},
                "timing": {"per_n_wall_seconds": {}, "total_wall_seconds": 0.0}}
    result = json.loads(path.read_text())
    difference = _setting_difference(result["setting"], setting)
    if difference is not None:
        key, theirs, ours = difference
        raise SystemExit(f"{path} has {key}={theirs!r}, this run {ours!r}; "
                         "move it away (or use another --out-dir) to start a new sweep")
    result["setting"]["commands"] = [*result["setting"].get("commands", []), *setting["commands"]]
    return result


def merge_sweeps(results: list[dict]) -> dict:
    """One results file from sweeps of one cache, head and imbalance that ran side by side with different
    ``--methods``: the entries of every (n, subsample seed) united, the commands and wall times added up.

    Raises:
        ValueError: the settings differ, or a method both ran (ERM, which each needs) has other test accuracies.
    """
    merged = json.loads(json.dumps(results[0]))
    for other in results[1:]:
        difference = _setting_difference(merged["setting"], other["setting"])
        if difference is not None:
            raise ValueError("the sweeps differ in {}: {!r} and {!r}".format(*difference))
        merged["setting"]["commands"] += other["setting"]["commands"]
        merged["setting"]["methods"].update(other["setting"]["methods"])
        for n, seeds in other["entries"].items():
            for seed, slot in seeds.items():
                mine = merged["entries"].setdefault(n, {}).setdefault(seed, {"groups": slot["groups"], "methods": {}})
                for method, entry in slot["methods"].items():
                    if method in mine["methods"] and mine["methods"][method]["per_class"] != entry["per_class"]:
                        raise ValueError(f"n={n} seed={seed}: {method} differs between the sweeps")
                    mine["methods"].setdefault(method, entry)
        for n, seconds in other["timing"]["per_n_wall_seconds"].items():
            walls = merged["timing"]["per_n_wall_seconds"]
            walls[n] = round(walls.get(n, 0.0) + seconds, 2)
        merged["timing"]["total_wall_seconds"] = round(sum(merged["timing"]["per_n_wall_seconds"].values()), 2)
    return merged


def _method_config(method: str, head: str, seed: int, args: argparse.Namespace) -> ProbeConfig:
    """The method's ProbeConfig with one training seed, the subsample's (it also seeds the validation carve)."""
    return _config(method, head, argparse.Namespace(**{**vars(args), "seeds": [seed]}), SHOT_METHODS)


def _run(data: dict, class_names: list[str], config: ProbeConfig, reference: dict | None) -> tuple[dict, float]:
    start = time.perf_counter()
    report = run_probe(data, class_names, config, reference=reference, tune_allocator=True).model_dump(mode="json")
    return report, time.perf_counter() - start


def run_subsample(data: dict, class_names: list[str], head: str, n: str, seed: int, args: argparse.Namespace,
                  result: dict, save) -> None:
    """Every method missing for (n, seed): ERM first (its report is the others' reference), each entry saved."""
    slot = result["entries"].setdefault(n, {}).setdefault(str(seed), {"methods": {}})
    done = slot["methods"]
    todo = [m for m in args.methods if m not in done]
    if not todo:
        return
    erm_report = None
    if "erm" in todo or any(m not in NO_REFERENCE for m in todo):
        erm_report, seconds = _run(data, class_names, _method_config("erm", head, seed, args), None)
        per_class = [pc["accuracy"] for pc in erm_report["per_class"]]
        if "erm" in done and done["erm"]["per_class"] != per_class:
            raise SystemExit(f"n={n} seed={seed}: ERM no longer reproduces the stored entry (code changed?); "
                             "start a new results file")
        slot["groups"] = assign_groups(np.array(per_class, dtype=float))
        if "erm" not in done:
            done["erm"] = _entry(erm_report, seconds, slot["groups"])
            logger.info("%s n=%s seed=%d erm: %.1f s", head, n, seed, seconds)
            save()
    for method in [m for m in todo if m != "erm"]:
        reference = None if method in NO_REFERENCE else erm_report
        report, seconds = _run(data, class_names, _method_config(method, head, seed, args), reference)
        done[method] = _entry(report, seconds, slot["groups"])
        logger.info("%s n=%s seed=%d %s: %.1f s (%s)", head, n, seed, method, seconds, done[method]["verdict"])
        save()


def sweep_head(pool: tuple, test: tuple, class_names: list[str], head: str, args, setting: dict) -> Path:
    """All (n, subsample seed) of one head into its results file, resuming what is there."""
    path = Path(args.out_dir) / f"shots_{setting['name']}_{setting['encoder']}_{head}.json"
    result = load_or_new(path, {**setting, "head": head})
    for n in args.shots:
        key, clock = n_key(n), [time.perf_counter()]
        for seed in args.subsample_seeds:
            rows = subsample_per_class(pool[1], n, seed, args.imbalance)
            data = {"train": (pool[0][rows], pool[1][rows]), "test": test}
            run_subsample(data, class_names, head, key, seed, args, result, lambda: _save(path, result, key, clock))
        logger.info("%s n=%s done: %.1f min so far at this n", head, key,
                    result["timing"]["per_n_wall_seconds"].get(key, 0.0) / 60)
    return path


def _setting(args: argparse.Namespace, cache, pool_labels: np.ndarray, test_labels: np.ndarray) -> dict:
    return {
        "name": args.name, "encoder": cache.encoder, "features": str(args.features),
        "fingerprint": cache.fingerprint, "class_names": cache.class_names,
        "n_pool": int(pool_labels.size), "n_test": int(test_labels.size),
        "pool_per_class": np.bincount(pool_labels, minlength=cache.num_classes).tolist(),
        "imbalance": args.imbalance,
        "val_fraction": ProbeConfig().val_fraction,
        "methods": {m: {k: v for k, v in SHOT_METHODS[m].items() if k != "heads"} for m in args.methods},
        "reference": "erm and preset run without reference=; the other methods get the same subsample's ERM report",
        "groups": "thirds (probe.assign_groups) of the same subsample's ERM test per-class accuracy",
        "harm": f"test overall < ERM - {HARM_OVERALL_PT} pt or worst class < ERM worst class - {HARM_WORST_PT} pt",
        "commands": ["python bench/disparity.py " + " ".join(args.argv)],
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shots", nargs="+", type=parse_n, required=True, metavar="N", help="per class; 'all'")
    p.add_argument("--subsample-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--imbalance", type=float, default=1.0, metavar="R",
                   help="long-tailed subsamples: N is the largest class's count, the smallest gets N/R "
                        "(exponential profile, a random class order per subsample seed); default 1: N per class")
    p.add_argument("--features", required=True, help="a complete feature cache (HDF5) with train, val, test")
    p.add_argument("--name", required=True, help="short data set name for the results file")
    p.add_argument("--heads", nargs="+", default=["linear", "cosine"], choices=["linear", "cosine"])
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(SHOT_METHODS))
    p.add_argument("--epochs", type=int, default=None, help="default: ProbeConfig's automatic epochs")
    p.add_argument("--lr-grid", nargs="+", type=float, default=None, help="default: ProbeConfig's grid")
    p.add_argument("--wd-grid", nargs="+", type=float, default=None, help="default: ProbeConfig's grid")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out-dir", default=str(RESULTS_DIR))
    p.add_argument("--verbose", action="store_true", help="the probe's own log (every candidate) as well")
    return p


def main(argv: list[str]) -> int:
    """The sweep (``python bench/disparity.py --shots ...``); prints each head's table at the end.
    ``--merge-shots OUT IN IN ...`` writes :func:`merge_sweeps` of the IN files to OUT instead."""
    if argv and argv[0] == "--merge-shots":
        if len(argv) < 4:
            raise SystemExit("usage: --merge-shots OUT.json IN.json IN.json [...]")
        try:
            merged = merge_sweeps([json.loads(Path(path).read_text()) for path in argv[2:]])
        except ValueError as exc:
            raise SystemExit(f"--merge-shots: {exc}") from None
        Path(argv[1]).write_text(json.dumps(merged, indent=1))
        print(f"{report_tables(merged)}\n\nwritten {argv[1]}")
        return 0
    args = _parser().parse_args(argv)
    args.argv, args.methods = argv, ["erm", *[m for m in args.methods if m != "erm"]]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.verbose:  # the progress lines (n, seed, method, seconds), not every candidate of every run
        logging.getLogger("probe").setLevel(logging.WARNING)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    cache = open_cache(args.features)
    pool, test = load_pool(cache)
    try:  # every n fits the pool, checked before any training
        [subsample_per_class(pool[1], n, 0, args.imbalance) for n in args.shots]
    except ValueError as exc:
        raise SystemExit(f"--shots: {exc}") from None
    setting = _setting(args, cache, pool[1], test[1])
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for head in args.heads:
        path = sweep_head(pool, test, cache.class_names, head, args, setting)
        print(f"\n{report_tables(json.loads(path.read_text()))}\n\nwritten {path} (session from {started})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
