"""Small data: k-fold cross-validation on train + val replaces a validation split with < MIN_VAL_PER_CLASS images
in some class (probe.crossval and its use in run_probe)."""
import numpy as np
import pytest
from pydantic import ValidationError

from probe import (
    MAX_CV_FOLDS,
    MIN_CV_FOLDS,
    MIN_VAL_PER_CLASS,
    ProbeCancelled,
    ProbeConfig,
    ProbeTrainer,
    assign_groups,
    format_report,
    group_accuracy,
    load_report,
    out_of_fold,
    plan_cross_validation,
    report_markdown,
    run_probe,
    stratified_folds,
)

K = 6
NAMES = [f"c{k}" for k in range(K)]
FAST = dict(epochs=40, lr_grid=[0.05], wd_grid=[0.0, 1e-3], seeds=[0, 1])


def make_data(n_train, n_val, n_test=40, seed=0, d=12):
    """Gaussian classes whose spread grows with the class index (class 5 hardest)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.0, (K, d))
    means *= 2.5 / np.linalg.norm(means, axis=1, keepdims=True)
    spread = np.linspace(0.5, 1.8, K)

    def draw(m):
        y = np.repeat(np.arange(K), m)
        return (means[y] + spread[y, None] * rng.normal(0, 1, (len(y), d))).astype(np.float32), y.astype(np.int64)

    return {"train": draw(n_train), "val": draw(n_val), "test": draw(n_test)}


@pytest.fixture(scope="module")
def small():
    return make_data(16, 4)  # 20 images per class in train + val


@pytest.fixture(scope="module")
def cv_run(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "erm"
    return run_probe(small, NAMES, ProbeConfig(**FAST), out_dir=out), out


def test_stratified_folds_hold_each_sample_once_evenly_per_class():
    labels = np.repeat(np.arange(3), 20)[np.random.default_rng(1).permutation(60)]
    folds = stratified_folds(labels, 5, seed=7)
    assert folds.shape == (60,) and set(folds.tolist()) == set(range(5))
    # every sample in exactly one fold, 4 of each class per fold
    assert np.array_equal(np.bincount(folds * 3 + labels), np.full(15, 4))
    np.testing.assert_array_equal(stratified_folds(labels, 5, seed=7), folds)  # seeded
    assert not np.array_equal(stratified_folds(labels, 5, seed=8), folds)
    uneven = np.repeat(np.arange(3), [7, 11, 5])
    per_fold = np.bincount(stratified_folds(uneven, 5, seed=0) * 3 + uneven, minlength=15).reshape(5, 3)
    assert np.array_equal(per_fold.sum(axis=0), [7, 11, 5]) and (np.ptp(per_fold, axis=0) <= 1).all()
    assert np.ptp(per_fold.sum(axis=1)) <= 1
    with pytest.raises(ValueError, match="k=5 and a smallest class of 4"):
        stratified_folds(np.repeat(np.arange(2), [20, 4]), 5, seed=0)


def test_plan_triggers_on_a_small_validation_class_only():
    names = ["cat", "dog"]
    big_val = np.repeat([0, 1], MIN_VAL_PER_CLASS)
    pool = np.repeat([0, 1], 200)
    assert plan_cross_validation(big_val, pool, names, 5, 0) == (None, [])
    small_val = np.repeat([0, 1], [9, 60])
    assert plan_cross_validation(small_val, pool, names, 0, 0) == (None, [])  # cv=0: never
    plan, warnings = plan_cross_validation(small_val, pool, names, 5, 0)
    assert plan.k == 5 and plan.samples == 400 and plan.reason == "val has 9 images in class 'cat' (< 50)"
    assert len(warnings) == 1 and "5-fold cross-validation on train + val (400 images)" in warnings[0]
    # a class with 3 pooled images: 3 folds and a warning
    plan, warnings = plan_cross_validation(small_val, np.repeat([0, 1], [3, 200]), names, 5, 0)
    assert plan.k == 3 and set(plan.folds.tolist()) == {0, 1, 2}
    assert warnings[0] == ("Cross-validation used 3 folds instead of 5: class 'cat' has only 3 images in "
                           "train + val (each fold needs one).")
    # a class with 1 pooled image: no cross-validation, the validation split with a warning
    plan, warnings = plan_cross_validation(small_val, np.repeat([0, 1], [1, 200]), names, 5, 0)
    assert plan is None and warnings[0].startswith("Cross-validation is impossible: class 'cat' has 1 image(s)")


def test_out_of_fold_scores_every_sample_once_and_names_the_failing_fold():
    labels = np.repeat(np.arange(2), 10)
    folds = stratified_folds(labels, 5, seed=0)
    seen = np.zeros(20, dtype=int)

    def fit_fold(fold, train_index, test_index):
        assert not set(train_index) & set(test_index) and len(train_index) + len(test_index) == 20
        seen[test_index] += 1
        right = labels[test_index]
        failure = "diverged: loss nan" if fold == 1 else None
        return [(right, None), (1 - right, None), (None if failure else right, failure)]

    correct, failures = out_of_fold(fit_fold, labels, folds, 3)
    assert np.array_equal(seen, np.ones(20, dtype=int))
    np.testing.assert_array_equal(correct[0], np.ones(20))
    np.testing.assert_array_equal(correct[1], np.zeros(20))
    assert correct[2] is None and failures == [None, None, "fold 2/5: diverged: loss nan"]


def test_config_bounds():
    assert ProbeConfig().cv == 5 and ProbeConfig(cv=0).cv == 0
    assert ProbeConfig(cv=MIN_CV_FOLDS).cv == 2 and ProbeConfig(cv=MAX_CV_FOLDS).cv == 20
    for bad in (1, -3, 21, 1000):
        with pytest.raises(ValidationError, match=f"cv must be 0 .no cross-validation. or an integer in "
                                                  f"\\[2, 20\\], got {bad}"):
            ProbeConfig(cv=bad)


def test_small_validation_cross_validates(cv_run, small):
    report, out = cv_run
    sel = report.selection
    assert sel.split == "cv" and sel.cv.folds == 5 and sel.cv.samples == 120
    # every class under the minimum, not the first alone (a dashboard-only round)
    assert sel.cv.reason == "val has fewer than 50 images in 6 of 6 classes: 'c0' 4, 'c1' 4, 'c2' 4, 'c3' 4, 'c4' 4, …"
    assert report.grouping.split == "cv" and "out-of-fold per-class accuracy (5-fold" in report.grouping.note
    assert any("5-fold cross-validation on train + val (120 images)" in w for w in report.warnings)
    # the warning says what the val column shows (it said "report.val is the validation split"; a new-user round)
    assert any(w.endswith("are out-of-fold estimates, as are the val accuracies shown (report.val: the chosen "
                          "configuration's); the final models train on the train split.") for w in report.warnings)
    assert any("fewer than 50 train + val images" in w for w in report.warnings)
    assert len(report.grouping.stability) == K
    # the final models train on the train split; report.val is what selected and grouped, the chosen
    # configuration's out-of-fold accuracy (the seeds' accuracy on 4 validation images a class contradicted the
    # groups beside it; a new-user round)
    assert [r.n_train for r in report.per_class] == [16] * K
    assert report.val.overall == sel.chosen.val_overall and report.val.source.startswith("out of fold: 5-fold")
    assert assign_groups(np.array(report.val.per_class)) == report.grouping.groups
    assert [r.val_accuracy for r in report.per_class] == report.val.per_class
    assert load_report(out) == report
    assert "selection (overall, on 5-fold cross-validation of train + val, 120 images): " in format_report(report)
    assert "**Why:** overall (on 5-fold cross-validation of train + val, 120 images): " in \
        report_markdown(report.model_dump(mode="json"))


def _manual_out_of_fold(data, config, params):
    """The out-of-fold correctness of one candidate, fitted fold by fold with ProbeTrainer."""
    x = np.concatenate([data["train"][0], data["val"][0]])
    y = np.concatenate([data["train"][1], data["val"][1]])
    correct = np.zeros(len(y))
    folds = stratified_folds(y, config.cv, config.seeds[0])  # tested above
    for fold in range(config.cv):
        train_index, test_index = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        trainer = ProbeTrainer(**config.trainer_params(params, seed=config.seeds[0]))
        trainer.fit(x[train_index], y[train_index], num_classes=K)
        correct[test_index] = trainer.predict(x[test_index]) == y[test_index]
    return correct, y


def test_out_of_fold_scores_equal_a_manual_fold_loop(small):
    # MR² computes class statistics from its training features: each fold's own, not the full train split's
    config = ProbeConfig(**{**FAST, "loss": "mr2", "cbar": 2.0, "seeds": [0]})
    report = run_probe(small, NAMES, config)
    config = config.resolved(len(small["train"][1]))  # the batch size and epochs run_probe trained with
    for candidate, params in zip(report.selection.candidates, config.candidates()):
        correct, y = _manual_out_of_fold(small, config, params)
        per_class = np.bincount(y, weights=correct, minlength=K) / np.bincount(y, minlength=K)
        assert candidate.val_overall == correct.mean()
        assert candidate.val_hard == group_accuracy(per_class, assign_groups(per_class))["hard"]


def test_enough_validation_is_bit_identical_to_cv_off():
    data = make_data(60, MIN_VAL_PER_CLASS)
    on = run_probe(data, NAMES, ProbeConfig(**FAST)).model_dump(mode="json")
    off = run_probe(data, NAMES, ProbeConfig(**FAST, cv=0)).model_dump(mode="json")
    assert on["selection"]["cv"] is None and on["selection"]["split"] == "val"
    assert on["config"].pop("cv") == 5 and off["config"].pop("cv") == 0
    for report in (on, off):  # when and how fast it ran
        report.pop("created_at"), report.pop("timing")
    assert on == off


def test_a_run_asked_for_folds_it_did_not_need_says_so():
    """A run asked for cv 20 whose validation split had enough images in every class ran no cross-validation, yet
    its views said only "on val" (and the runs list "cv 20"): they say the folds asked were not needed."""
    report = run_probe(make_data(60, MIN_VAL_PER_CLASS), NAMES, ProbeConfig(**FAST, cv=20))
    assert report.selection.cv is None and report.config["cv"] == 20
    where = f"val; cv 20 asked, not needed: at least {MIN_VAL_PER_CLASS} validation images in every class"
    assert f"selection (overall, on {where}): " in format_report(report)
    assert f"**Why:** overall (on {where}): " in report_markdown(report.model_dump(mode="json"))
    default = report.model_copy(update={"config": {**report.config, "cv": 5}})  # the default: unsaid, as before
    assert "selection (overall, on val): " in format_report(default)
    assert "**Why:** overall: " in report_markdown(default.model_dump(mode="json"))


def test_cv_off_uses_the_small_validation_split(small):
    report = run_probe(small, NAMES, ProbeConfig(**FAST, cv=0))
    assert report.selection.cv is None and report.selection.split == "val"
    assert any("fewer than 50 validation images" in w for w in report.warnings)
    assert not any("cross-validation" in w for w in report.warnings)


def test_no_safe_improvement_under_cv_equals_the_reference(small, cv_run, tmp_path):
    erm = cv_run[0]
    config = ProbeConfig(**{**FAST, "lr_grid": [1e-6]}, loss="group_dro", loss_options_grid={"eta": [0.01, 0.1]},
                         select="hard")
    report = run_probe(small, NAMES, config, reference=erm, out_dir=tmp_path / "kept")
    sel = report.selection
    assert sel.verdict == "no_safe_improvement" and sel.cv.folds == 5
    assert [p.chosen for p in sel.frontier] == [True, False, False, False, False]  # reference + 2 lr·wd × 2 η
    assert report.config["loss"] == "ce" and report.config["selected"] == erm.config["selected"]
    assert [r.accuracy_per_seed for r in report.per_class] == [r.accuracy_per_seed for r in erm.per_class]
    assert report.grouping.groups == erm.grouping.groups  # the reference run's out-of-fold groups


def test_hard_without_reference_ranks_the_reference_configuration_out_of_fold(small, cv_run):
    config = ProbeConfig(**FAST, loss="group_dro", loss_options_grid={"eta": [0.01, 0.1]}, select="hard")
    report = run_probe(small, NAMES, config)
    assert report.selection.cv.folds == 5 and report.selection.frontier[0].reference
    assert report.grouping.groups == cv_run[0].grouping.groups  # ERM ranks the classes on the same folds
    assert "out-of-fold per-class accuracy (5-fold cross-validation on train + val) of this request's reference" \
        in report.grouping.note


def test_progress_counts_the_fold_fits_and_cancellation_stops_a_fold(small):
    seen = []
    run_probe(small, NAMES, ProbeConfig(**FAST), progress=lambda f, stage: seen.append((f, stage)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and max(fractions[:-1]) <= 1.0
    stages = {s.split(" (")[0] for _, s in seen}
    assert {f"cross-validation fold {i}/5" for i in range(1, 6)} <= stages
    # 5 folds × 2 candidates + 2 seeds = 12 fits: the last fold ends at 10/12 (the seeds are full batch: one pass)
    fold_ends = [f for f, s in seen if s.startswith("seeds 0, 1 (joint fit)")]
    assert fold_ends[0] == pytest.approx(10 / 12)

    calls = []

    def stop():
        calls.append(1)
        return any("fold 3/5" in s for _, s in seen[-1:])

    seen.clear()
    with pytest.raises(ProbeCancelled, match="cross-validation fold 3/5"):
        run_probe(small, NAMES, ProbeConfig(**FAST), progress=lambda f, stage: seen.append((f, stage)),
                  should_stop=stop)


def test_reference_inside_a_run_breaks_ties_like_an_erm_run():
    """The preset's own reference (no reference run given) must be the configuration `--loss ce` selects: on a
    validation-overall tie the better hard third wins (probe.selection), not the first grid entry."""
    from types import SimpleNamespace

    from probe.run import _overall_choice

    labels = np.repeat(np.arange(3), 4)
    flat = np.array([1, 1, 0, 0] * 3, dtype=np.float64)  # every class at 50 %: hard third 50 %
    skew = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=np.float64)  # 100 / 50 / 0 %: hard third 0 %
    lift = np.array([1, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0, 0], dtype=np.float64)  # 75 / 50 / 25 %: hard third 25 %
    scorer = SimpleNamespace(labels=labels, splits=SimpleNamespace(num_classes=3), overall_metric="accuracy")
    candidates = [{"lr": 0.001}, {"lr": 0.01}, {"lr": 0.1}]
    assert flat.mean() == skew.mean() == lift.mean()
    assert _overall_choice(candidates, [skew, lift, flat], scorer) == 2
    assert _overall_choice(candidates, [None, skew, lift], scorer) == 2
    assert _overall_choice(candidates, [flat, None, skew], scorer) == 0


@pytest.mark.parametrize("counts,cv", [
    ({"train": [1, 5, 9], "val": [4, 4, 4]}, 5), ({"train": [2, 3, 9], "val": []}, 5), ({"train": [3, 3, 3]}, 2),
    ({"train": [60, 60], "val": [50, 50]}, 5), ({"train": [4, 7], "val": [1, 2]}, 0), ({"train": [2, 8]}, 3),
])
def test_fewest_training_images_is_the_smallest_class_of_any_fit(counts, cv):
    """The count a spread statistic needs (mr2_spread: 2), against the folds themselves: each fold's training part
    per class, and the final fits' train split (less what is carved for val where there is no val split), class by
    class (the refusal names the classes short of it)."""
    from probe.decision import MIN_VAL_PER_CLASS
    from probe.splits import carved_per_class, fewest_training_per_class

    train = np.asarray(counts["train"])
    val = np.asarray(counts.get("val") or [])
    if val.sum() == 0:
        val = carved_per_class(train, 0.1)
        train = train - val
    fits = [train]
    if cv and val.min() < MIN_VAL_PER_CLASS:
        pool = np.repeat(np.arange(len(train)), train + val)
        k = min(cv, int((train + val).min()))
        if k >= 2:
            folds = stratified_folds(pool, k, seed=0)
            fits += [np.bincount(pool[folds != f], minlength=len(train)) for f in range(k)]
    assert fewest_training_per_class(counts, 0.1, cv).tolist() == np.min(fits, axis=0).tolist()
    # the folds a service counts as fits (ProbeConfig.check_cost) are plan_cross_validation's
    from probe.crossval import plan_cross_validation
    from probe.splits import cv_folds

    names = [f"c{i}" for i in range(len(train))]
    plan, _ = plan_cross_validation(np.repeat(np.arange(len(val)), val), np.repeat(np.arange(len(train)), train + val),
                                    names, cv, seed=0)
    assert cv_folds(counts, 0.1, cv) == (0 if plan is None else plan.k)


def test_a_run_refuses_the_work_its_folds_would_make_before_it_trains(small):
    """The folds are known once the data is: 64 candidates × 5 folds + 3 seeds = 323 fits of 2,000 epochs each is
    past MAX_FIT_EPOCHS, which mr2probe train and run_probe now say before training, as a service does before a job
    exists (a review: only the service counted the folds)."""
    config = ProbeConfig(epochs=2000, lr_grid=[0.001 * (i + 1) for i in range(8)],
                         wd_grid=[0.1 * i for i in range(8)])  # 64 × 3 seeds: within the grid's bound
    assert config.total_fits(5) == 64 * 5 + 3 and config.total_fits(0) == 64 + 3
    with pytest.raises(ValueError, match=r"this run fits 323 probes \(64 candidates, 3 seeds, 5-fold "
                                         r"cross-validation\) × 2,000 epochs = 646,000 epochs of training"):
        run_probe(small, NAMES, config)


def test_the_out_of_fold_validation_accuracies_carry_their_interval_over_train_and_val(cv_run):
    """Under cross-validation each class's val accuracy is out of fold on its n_train + n_val images, each predicted
    once (out_of_fold): its 95 % Wilson interval is over those 20 images, not the 4 of the validation split."""
    from scipy.stats import binomtest

    report, _ = cv_run
    for row in report.per_class:
        images = row.n_train + row.n_val
        ci = binomtest(round(row.val_accuracy * images), images).proportion_ci(0.95, method="wilsoncc")
        assert row.val_accuracy_ci == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_a_run_that_ran_fewer_folds_than_asked_says_both(cv_run):
    """A run asked for 20 folds that ran 5 (lowered to the smallest class's count) read '5-fold cross-validation'
    beside a configuration of cv 20 and a run name of 'cv 20': the views say the folds run and those asked."""
    report, _ = cv_run
    asked = report.model_copy(update={"config": {**report.config, "cv": 20}})
    assert "selection (overall, on 5-fold (of 20 asked) cross-validation of train + val, 120 images): " in \
        format_report(asked)
    assert "**Why:** overall (on 5-fold (of 20 asked) cross-validation of train + val, 120 images): " in \
        report_markdown(asked.model_dump(mode="json"))
    assert "(of 5 asked)" not in format_report(report)  # as many as asked: said once
