"""probe.label_issues: out-of-fold probabilities of each sample's own label, and the likeliest wrong labels."""
import re

import numpy as np
import pytest

from probe import ProbeConfig, ProbeTrainer, label_issue_predictions, out_of_fold_probabilities

K = 4
PARAMS = {"lr": 0.05, "weight_decay": 0.0}


def _config(**kw) -> ProbeConfig:
    return ProbeConfig(head="linear", loss="ce", epochs=kw.pop("epochs", 60), batch_size=kw.pop("batch_size", 64),
                       lr_grid=[0.05], wd_grid=[0.0], seeds=[0], device="cpu", precision="fp32", **kw)


def _memorisable(n_per_class: int = 30):
    """One feature dimension per sample (one-hot rows): a probe fitted on a sample can fit any label it has, and a
    probe that did not see it has nothing of it (its dimension was 0 in every row it trained on)."""
    y = np.repeat(np.arange(K), n_per_class)
    return np.eye(len(y), dtype=np.float32) * 4.0, y


def test_each_sample_is_scored_by_a_model_that_did_not_train_on_it():
    x, y = _memorisable()
    config = _config()
    in_sample = ProbeTrainer(**config.trainer_params(PARAMS, seed=0)).fit(x, y, num_classes=K).predict_proba(x)
    oof = out_of_fold_probabilities(x, y, K, config, PARAMS, folds=5)
    rows = np.arange(len(y))
    assert oof.shape == (len(y), K) and np.allclose(oof.sum(axis=1), 1.0)
    assert in_sample[rows, y].min() > 0.9  # memorised
    # unseen: only the bias speaks, and the classes are balanced in every fold: about 1/K each
    assert oof[rows, y].max() < 0.5


def test_a_systematic_flip_is_found_out_of_fold_and_missed_in_sample():
    rng = np.random.default_rng(0)
    n, d = 60, 120  # few samples per dimension: a linear probe fits the flipped labels it trains on
    means = rng.normal(0, 1, (K, d)) * 0.5
    y_true = np.repeat(np.arange(K), n)
    x = (means[y_true] + rng.normal(0, 1, (len(y_true), d))).astype(np.float32)
    flipped = rng.permutation(np.flatnonzero(y_true == 2))[: int(0.3 * n)]  # 30 % of class 2 labelled 0
    y = y_true.copy()
    y[flipped] = 0
    config = _config(epochs=200)
    truth = np.zeros(len(y), bool)
    truth[flipped] = True
    k = len(flipped)
    trainer = ProbeTrainer(**config.trainer_params(PARAMS, seed=0)).fit(x, y, num_classes=K)
    in_hits = truth[label_issue_predictions(trainer.predict_proba(x), y).failures(None, k)].sum()
    oof = out_of_fold_probabilities(x, y, K, config, PARAMS)
    oof_hits = truth[label_issue_predictions(oof, y).failures(None, k)].sum()
    # in sample the probe has fitted the flipped labels: none of them is among its mistakes' top k (13 of 18 out of fold)
    assert in_hits <= 0.2 * k and oof_hits >= 0.6 * k, (oof_hits, in_hits, k)


def test_issues_are_the_mistakes_lowest_probability_of_their_label_first():
    probabilities = np.array([[0.7, 0.2, 0.1],    # right
                              [0.1, 0.8, 0.1],    # labelled 0, p(label) 0.1
                              [0.3, 0.6, 0.1],    # labelled 0, p(label) 0.3
                              [0.05, 0.9, 0.05],  # labelled 2, p(label) 0.05
                              [0.2, 0.2, 0.6]])   # right
    labels = np.array([0, 0, 0, 2, 2])
    found = label_issue_predictions(probabilities, labels, sources=[f"img{i}.png" for i in range(5)])
    assert found.failures(None).tolist() == [3, 1, 2]
    assert found.failures(0).tolist() == [1, 2]
    rows = found.failure_rows(None, ["a", "b", "c"], limit=2)
    assert [(r["source"], r["true"], r["predicted"]) for r in rows] == [("img3.png", "c", "b"), ("img1.png", "a", "b")]
    assert rows[0]["label_probability"] == pytest.approx(0.05) and rows[0]["confidence"] == pytest.approx(0.9)


@pytest.mark.parametrize("folds, message", [(1, "folds must be an integer in [2, 20], got 1"),
                                            (21, "got 21"), (True, "got True"), (2.5, "got 2.5"),
                                            (7, "class 'c' has 6 image(s) in train + val")])
def test_folds_out_of_bounds_are_refused_before_any_fit(folds, message):
    y = np.concatenate([np.repeat([0, 1], 10), np.full(6, 2)])
    x = np.zeros((len(y), 3), dtype=np.float32)
    with pytest.raises(ValueError, match=re.escape(message)):
        out_of_fold_probabilities(x, y, 3, _config(), PARAMS, folds=folds, class_names=["a", "b", "c"])


def test_the_same_seed_gives_the_same_probabilities_and_another_seed_other_folds():
    x, y = _memorisable(10)
    config = _config(epochs=5)
    first = out_of_fold_probabilities(x, y, K, config, PARAMS, folds=3)
    assert np.array_equal(first, out_of_fold_probabilities(x, y, K, config, PARAMS, folds=3))
    assert not np.array_equal(first, out_of_fold_probabilities(x, y, K, config, PARAMS, folds=3, seed=1))


def test_folds_not_asked_for_are_the_default_or_the_smallest_class_s_count_with_a_note():
    """The default 5 folds refused few-shot data nobody had asked 5 folds of (a forms round): not asked for, the folds
    are the smallest class's count where it is under the default, with a note naming it; asked for, they are refused
    as before; under MIN_CV_FOLDS, still refused with how to leave the class out."""
    from probe.label_issues import resolve_folds

    names = ["a", "b", "c"]
    assert resolve_folds([10, 10, 3], None, names) == (
        3, "3 folds, not the default 5: class 'c' has 3 images in train + val, and each fold needs one of every class")
    assert resolve_folds([10, 10, 30], None, names) == (5, None) and resolve_folds([10, 10, 3], 2, names) == (2, None)
    with pytest.raises(ValueError, match=re.escape("folds=5: class 'c' has 3 image(s) in train + val, and each fold "
                                                   "needs one of every class; use at most 3 folds.")):
        resolve_folds([10, 10, 3], 5, names)
    with pytest.raises(ValueError, match="Train the run without it"):
        resolve_folds([10, 10, 1], None, names)


def test_a_class_of_one_image_is_told_how_to_leave_it_out_not_to_use_one_fold():
    """A long-tailed set's class of one image: no fold count holds it out and trains on it. The error said "use at
    most 1 folds (or leave the class out)", a count the bound refuses and a way label-issues does not have; it names
    every such class and how to train without them. A class of 3 images: at most 3 folds, and the option."""
    y = np.concatenate([np.repeat([0, 1], 10), [2], [3]])
    x = np.zeros((len(y), 3), dtype=np.float32)
    with pytest.raises(ValueError) as error:
        out_of_fold_probabilities(x, y, 4, _config(), PARAMS, folds=5, class_names=["a", "b", "c", "d"])
    assert str(error.value) == (
        "folds=5: class 'c' has 1 image(s) in train + val, and each fold needs one of every class; no fold count (2 to "
        "20) holds out a class of fewer than 2 images and trains on it. Train the run without them ('c', 'd': "
        "ProbeConfig(drop_classes=[NAME, ...]), mr2probe train --drop-class NAME or the API's drop_classes) and list "
        "the other classes' likely wrong labels from that run.")
    assert "use at most 1" not in str(error.value)
    y = np.concatenate([np.repeat([0, 1], 10), np.full(3, 2)])
    with pytest.raises(ValueError, match=re.escape("class 'c' has 3 image(s) in train + val, and each fold needs one "
                                                   "of every class; use at most 3 folds.")):
        out_of_fold_probabilities(np.zeros((len(y), 3), dtype=np.float32), y, 3, _config(), PARAMS, folds=5,
                                  class_names=["a", "b", "c"])


def test_the_folds_softmax_a_chunk_at_a_time_into_the_result_with_the_same_numbers(monkeypatch):
    """Each fold writes its held-out rows' probabilities a chunk of rows at a time: equal to the softmax of the fold
    model's logits, and no whole fold's (n/k, K) float64 array beside the (n, K) result (400 MB of a 5,000-class
    run of 20,000 images)."""
    import tracemalloc

    import probe.label_issues
    from probe.crossval import stratified_folds
    from probe.metrics import softmax

    classes = 300
    y = np.repeat(np.arange(classes), 4)
    x = np.random.default_rng(0).normal(size=(len(y), 8)).astype(np.float32) + y[:, None] % 7
    config = _config(epochs=1, batch_size=256)
    monkeypatch.setattr(probe.label_issues, "_SOFTMAX_CHUNK_BYTES", 50 * classes * 8)  # 50 rows
    tracemalloc.start()
    try:
        oof = out_of_fold_probabilities(x, y, classes, config, PARAMS, folds=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the result, not it and a whole fold's softmax (half its size: 5.2 MB here before, 3.8 MB chunked)
    assert peak < 1.5 * oof.nbytes
    held = np.flatnonzero(stratified_folds(y, 2, 0) == 0)
    kept = np.setdiff1d(np.arange(len(y)), held)
    trainer = ProbeTrainer(**config.trainer_params(PARAMS, seed=0)).fit(x[kept], y[kept], num_classes=classes)
    assert np.array_equal(oof[held], softmax(trainer.decision_function(x[held])))
