"""bench/group_delta_coverage.py: its coverage figures come from the product's interval and the plain percentile
interval on the same subsamples, against the difference on the whole test split."""
from __future__ import annotations

import numpy as np

import group_delta_coverage

GROUPS = {"easy": [0], "medium": [1, 2], "hard": [3]}


def _population(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), 60)
    base = (rng.random(labels.size) < 0.7).astype(float)
    other = np.where(rng.random(labels.size) < 0.2, 1.0 - base, base)
    return labels, base, other


def test_equal_runs_read_zero_and_only_the_product_gives_the_few_images_a_width():
    labels, base, _ = _population()
    row = group_delta_coverage.coverage(labels, base, base, GROUPS, [5, 5, 5, 5], 20)
    for key in group_delta_coverage.KEYS:
        assert row["truth"][key] == 0.0
        assert row[f"percentile_{key}"] == {"coverage": 1.0, "mean_width": 0.0}  # every resample reads 0
        assert row[f"product_{key}"]["coverage"] == 1.0 and row[f"product_{key}"]["mean_width"] > 0.1


def test_the_truth_is_each_third_s_mean_of_class_differences_on_every_image():
    labels, base, other = _population()
    row = group_delta_coverage.coverage(labels, base, other, GROUPS, [60, 60, 60, 60], 3)
    per_class = [other[labels == c].mean() - base[labels == c].mean() for c in range(4)]
    assert row["truth"]["medium"] == np.mean(per_class[1:3]) and row["truth"]["balanced"] == np.mean(per_class)
    # every image drawn: each subsample is the population; the product is never narrower than the percentile
    for key in group_delta_coverage.KEYS:
        assert row[f"product_{key}"]["coverage"] == row[f"percentile_{key}"]["coverage"] == 1.0
        assert row[f"product_{key}"]["mean_width"] >= row[f"percentile_{key}"]["mean_width"]
