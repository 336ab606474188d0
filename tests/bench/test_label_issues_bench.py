"""bench/label_issues.py: precision@k against a flip record, out of fold (every mistake, and confident learning's)
and in sample, end to end on a tiny cache."""
from __future__ import annotations

import json

import numpy as np

import label_issues as li
from feature_cache import write_cache


def _noisy(folder, n=40, d=12, seed=0, names=("a", "b", "c")):
    """NAME.h5 of 3 classes whose train + val label a quarter of class 1 as class 2, and NAME.flips.npz."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (3, d))
    means *= 5.0 / np.linalg.norm(means, axis=1, keepdims=True)
    splits, record = {}, {}
    for split, m in (("train", n), ("val", n // 2), ("test", n // 2)):
        y = np.repeat(np.arange(3), m)
        x = (means[y] + rng.normal(0, 1, (len(y), d))).astype(np.float32)
        flipped = np.zeros(len(y), bool)
        if split != "test":
            flipped[rng.permutation(np.flatnonzero(y == 1))[: m // 4]] = True
            y[flipped] = 2
        splits[split] = (x, y, [f"{split}/{i}.png" for i in range(len(y))])
        record[f"{split}_flipped"] = flipped
    write_cache(folder / "noisy.h5", splits, list(names), {"encoder": "synthetic", "default_head": "linear",
                                                               "normalized": False, "fingerprint": "n"},
                dtype="float32")
    np.savez(folder / "noisy.flips.npz", **record)
    return int(sum(v.sum() for v in record.values()))


def test_precision_counts_a_short_list_as_misses():
    flips = {("train", 1), ("val", 0)}
    ranked = [("train", 1, "c"), ("train", 2, "c")]
    assert li.precision_at(ranked, flips, 1) == 1.0
    assert li.precision_at(ranked, flips, 4) == 0.25


def test_the_rankings_are_measured_for_every_class_and_for_the_class_the_flips_went_to(tmp_path):
    flips = _noisy(tmp_path)
    out = tmp_path / "r.json"
    results = li.main(["--data", str(tmp_path), "--runs", str(tmp_path / "runs"), "--names", "noisy", "--folds", "3",
                       "--out", str(out)])
    assert json.loads(out.read_text()) == results
    whole, of_class = results
    assert (whole["class"], of_class["class"]) == (None, "c") and whole["flips"] == flips == 15
    assert list(whole["precision_at"]) == ["15", "7", "3"]
    for row in results:
        for k, p in row["precision_at"].items():
            assert set(p) == {"out_of_fold", "confident_learning", "in_sample"} and all(0 <= v <= 1 for v in p.values())
        # confident learning lists some of the same folds' mistakes
        assert row["listed"]["confident_learning"] <= row["listed"]["out_of_fold"]
    # the class's listing is the whole listing's images labelled c
    assert of_class["listed"]["out_of_fold"] <= whole["listed"]["out_of_fold"]
    assert whole["precision_at"]["15"]["out_of_fold"] >= 0.5  # separable classes: the flips are found
    assert (tmp_path / "runs" / "noisy" / "report.json").is_file()


def test_in_sample_reads_class_names_that_start_like_formulas_as_the_cache_names_them(tmp_path):
    """predict --out writes "=a" as "'=a" (spreadsheets); in_sample looked that up among the p(=a) columns' names
    and ended in "ValueError: "'=a" is not in list": it reads the cells back (probe.numbers.csv_text)."""
    names = ("=a", "b", "@c d")
    _noisy(tmp_path, names=names)
    cache, run = tmp_path / "noisy.h5", tmp_path / "run"
    li.cli("train", "--features", str(cache), "--loss", "ce", "--epochs", "5", "--seeds", "1", "--out", str(run),
           "--no-progress")
    ranked = li.in_sample(run, cache)
    given = {label for _, _, label in ranked}  # the images the probe gets wrong: the flips into "@c d" among them
    assert "@c d" in given and given <= set(names)
