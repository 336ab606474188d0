"""probe.label_issues' confident learning against cleanlab 2.7.1's own results on fixed probabilities
(tests/probe/data/confident_learning.npz, written by make_confident_learning.py beside it with cleanlab installed)."""
from pathlib import Path

import numpy as np
import pytest

from probe import label_issue_predictions
from probe.label_issues import (METHODS, check_method, confident_joint, confident_learning_issues,
                                confident_thresholds, label_issue_mask)

FIXTURE = Path(__file__).parent / "data" / "confident_learning.npz"
CASES = ("uniform", "systematic", "small", "rounding")


@pytest.fixture(scope="module")
def cleanlab_results():
    with np.load(FIXTURE) as data:
        return {name: data[name] for name in data.files}


@pytest.mark.parametrize("case", CASES)
def test_thresholds_joint_and_mask_equal_cleanlab(cleanlab_results, case):
    p, labels = cleanlab_results[f"{case}_pred_probs"], cleanlab_results[f"{case}_labels"]
    assert np.array_equal(confident_thresholds(p, labels), cleanlab_results[f"{case}_thresholds"])
    assert np.array_equal(confident_joint(p, labels), cleanlab_results[f"{case}_joint"])
    assert np.array_equal(confident_learning_issues(p, labels), cleanlab_results[f"{case}_mask"])
    assert np.array_equal(label_issue_mask(p, labels, "confident-learning"), cleanlab_results[f"{case}_mask"])


@pytest.mark.parametrize("case", CASES)
def test_the_listing_is_cleanlabs_ranked_by_self_confidence(cleanlab_results, case):
    p, labels = cleanlab_results[f"{case}_pred_probs"], cleanlab_results[f"{case}_labels"]
    mask = label_issue_mask(p, labels, "confident-learning")
    listed = label_issue_predictions(p, labels).failures(None, among=mask)
    assert listed.tolist() == cleanlab_results[f"{case}_ranked"].tolist()


def test_the_joint_is_calibrated_to_the_label_counts_and_the_issues_are_mistakes(cleanlab_results):
    p, labels = cleanlab_results["systematic_pred_probs"], cleanlab_results["systematic_labels"]
    joint = confident_joint(p, labels)
    assert joint.sum(axis=1).tolist() == np.bincount(labels).tolist()
    # 40 % of class 0 is labelled 1: the joint counts images labelled 1 whose true class is 0
    assert joint[1, 0] > joint[1, 2:].max()
    mistakes = label_issue_mask(p, labels, "predicted-neq-given")
    assert np.array_equal(mistakes, p.argmax(axis=1) != labels)
    issues = label_issue_mask(p, labels, "confident-learning")
    assert issues.sum() < mistakes.sum() and not (issues & ~mistakes).any()


def test_an_unknown_method_is_refused_naming_the_methods():
    assert check_method("confident-learning") == "confident-learning" and list(METHODS)[0] == "predicted-neq-given"
    with pytest.raises(ValueError, match="predicted-neq-given, confident-learning"):
        label_issue_mask(np.eye(2), np.arange(2), "prune_by_noise_rate")


@pytest.mark.parametrize("case", CASES)
def test_the_mask_is_cleanlabs_when_the_rows_are_read_a_block_at_a_time(cleanlab_results, case, monkeypatch):
    """The check of the samples predicted as labelled goes a block of rows at a time: blocks of 7 rows (the last one
    short) give cleanlab's mask as one block does."""
    import probe.label_issues

    p, labels = cleanlab_results[f"{case}_pred_probs"], cleanlab_results[f"{case}_labels"]
    monkeypatch.setattr(probe.label_issues, "_BLOCK_ELEMENTS", 7 * p.shape[1])
    assert p.shape[0] % 7
    assert np.array_equal(confident_learning_issues(p, labels), cleanlab_results[f"{case}_mask"])


def test_confident_learning_does_not_copy_the_whole_probability_array():
    """Its working memory stays well under the (n, K) probabilities' own size (a raised copy of them doubled a run's
    memory at scale: 10 GB more at 1.28 M images of 1,000 classes, beside the 10 GB of probabilities)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(100), 400)
    logits = rng.normal(size=(labels.size, 100))
    logits[np.arange(labels.size), labels] += 3.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # 32 MB of float64
    del logits
    tracemalloc.start()
    try:
        issues = confident_learning_issues(p, labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < issues.sum() < labels.size
    assert peak < p.nbytes / 2, (peak, p.nbytes)
