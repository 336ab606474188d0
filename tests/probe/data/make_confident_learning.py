"""Writes confident_learning.npz beside it: fixed out-of-fold-like probabilities and labels, and what cleanlab 2.7.1
finds on them, for tests/probe/test_confident_learning.py (which needs no cleanlab).

Run once with cleanlab 2.7.1 importable (not a dependency of the project; e.g. ``pip install --target DIR
cleanlab==2.7.1 pandas tqdm termcolor`` and ``PYTHONPATH=DIR``), from the repository root::

    PYTHONPATH=DIR python tests/probe/data/make_confident_learning.py

Per case NAME: ``NAME_pred_probs`` (n, K) float64 rows summing to 1, ``NAME_labels`` (n,), and cleanlab's
``NAME_thresholds`` (count.get_confident_thresholds), ``NAME_joint`` (count.compute_confident_joint, calibrated),
``NAME_mask`` (filter.find_label_issues, filter_by='prune_by_noise_rate', n_jobs=1) and ``NAME_ranked`` (the same
with return_indices_ranked_by='self_confidence').
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _probabilities(rng, true, k, scale, boost):
    logits = rng.normal(0, 1, (len(true), k)) * scale
    logits[np.arange(len(true)), true] += boost
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _random_case(seed):
    """One of the random cases the implementation was checked on against cleanlab (300 seeds, all equal); seed 292
    calibrates a row of equal counts, where which one rounds up is decided by ulps of the joint's sum, in cleanlab's
    order of summation."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 8))
    n = int(rng.integers(k * 2, 400))
    true = rng.integers(0, k, n)
    rng.choice([0.1, 0.5, 2.0])
    logits = rng.normal(0, 1, (n, k)) * rng.choice([0.5, 2, 6])
    logits[np.arange(n), true] += rng.choice([0, 1, 3])
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = true.copy()
    moved = rng.random(n) < rng.choice([0.05, 0.3])
    labels[moved] = rng.integers(0, k, moved.sum())
    if rng.random() < 0.3:  # and 40 % of class 0 labelled 1
        labels[(labels == 0) & (rng.random(n) < 0.4)] = 1
    return p, labels


def cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name: (pred_probs, labels)."""
    rng = np.random.default_rng(20260)
    out = {}
    true = rng.integers(0, 5, 300)  # 20 % of labels moved uniformly
    labels = true.copy()
    moved = rng.random(300) < 0.2
    labels[moved] = (true[moved] + rng.integers(1, 5, moved.sum())) % 5
    out["uniform"] = (_probabilities(rng, true, 5, 1.5, 3.0), labels)
    true = np.repeat(np.arange(4), 80)  # 40 % of class 0 labelled 1, and classes 2 / 3 confused by the model
    labels = true.copy()
    labels[np.flatnonzero(true == 0)[rng.random(80) < 0.4]] = 1
    seen = true.copy()
    seen[(true == 2) & (rng.random(320) < 0.3)] = 3
    out["systematic"] = (_probabilities(rng, seen, 4, 1.0, 2.5), labels)
    true = rng.integers(0, 6, 60)  # few images, a class of one image and a class of two
    labels = true.copy()
    labels[:3] = [5, 4, 4]
    labels[3:][labels[3:] >= 4] = rng.integers(0, 4, (labels[3:] >= 4).sum())
    out["small"] = (_probabilities(rng, true, 6, 2.0, 1.0), labels)
    out["rounding"] = _random_case(292)
    return out


def main() -> None:
    from cleanlab.count import compute_confident_joint, get_confident_thresholds
    from cleanlab.filter import find_label_issues

    arrays = {}
    for name, (pred_probs, labels) in cases().items():
        arrays.update({
            f"{name}_pred_probs": pred_probs, f"{name}_labels": labels,
            f"{name}_thresholds": get_confident_thresholds(labels, pred_probs),
            f"{name}_joint": compute_confident_joint(labels, pred_probs),
            f"{name}_mask": find_label_issues(labels, pred_probs, n_jobs=1),
            f"{name}_ranked": find_label_issues(labels, pred_probs, n_jobs=1,
                                                return_indices_ranked_by="self_confidence")})
        print(name, len(labels), "issues:", int(arrays[f"{name}_mask"].sum()))
    np.savez_compressed(Path(__file__).with_name("confident_learning.npz"), **arrays)


if __name__ == "__main__":
    main()
