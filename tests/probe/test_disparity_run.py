"""run_probe with the disparity-aware decision (select='hard'): paired intervals, the budget, the kept reference,
the in-run reference configuration, stored predictions and the test diagnostics in the report."""
import json
import re

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from probe import ProbeConfig, format_report, load_report, run_probe
from probe.predictions import Predictions
from probe.uncertainty import wilson_interval

NAMES = [f"c{k}" for k in range(6)]
FAST = dict(epochs=40, lr_grid=[0.05], wd_grid=[0.0], seeds=[0, 1])
DRO = dict(loss="group_dro", loss_options_grid={"eta": [0.01, 0.1]}, select="hard")


def imbalanced(seed=0, d=12):
    """Classes 4 and 5 have 15 training images against 300: ERM under-predicts them, group DRO raises them."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (6, d))
    means *= 2.0 / np.linalg.norm(means, axis=1, keepdims=True)

    def draw(counts):
        y = np.repeat(np.arange(6), counts)
        return (means[y] + rng.normal(0, 1, (len(y), d))).astype(np.float32), y

    return {"train": draw([300, 300, 300, 300, 15, 15]), "val": draw([100] * 6), "test": draw([100] * 6)}


@pytest.fixture(scope="module")
def data():
    return imbalanced()


@pytest.fixture(scope="module")
def erm(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("erm") / "erm"
    return run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=out), out


def test_a_real_hard_gain_is_chosen_with_its_intervals(data, erm):
    report = run_probe(data, NAMES, ProbeConfig(**FAST, **DRO), reference=erm[0])
    sel = report.selection
    assert sel.verdict == "improved" and report.config["loss"] == "group_dro" and sel.requested is None
    assert sel.test_check == "holds"  # the validation gain held on test: its paired hard-third interval above 0
    from probe.export import report_markdown

    # and every view says so, not the runs list alone (a statistics review)
    assert "verdict (improved; held on test): Hard third" in format_report(report)
    assert "**Verdict:** improved; held on test: Hard third" in report_markdown(json.loads(report.model_dump_json()))
    assert [p.reference for p in sel.frontier] == [True, False, False]
    assert sel.frontier[0].params == {"loss": "ce", "lr": 0.05, "weight_decay": 0.0}
    assert sel.frontier[0].val_hard_delta_ci == [0.0, 0.0]
    chosen = [p for p in sel.frontier if p.chosen]
    assert len(chosen) == 1 and chosen[0].params["eta"] == report.config["selected"]["eta"]
    assert chosen[0].val_hard_delta_ci[0] > 0 and chosen[0].val_overall_delta_ci[0] >= 0
    # The verdict is the paired test difference to the reference configuration trained with the same seeds.
    erm_hard, hard = erm[0].summary.hard, report.summary.hard
    # (the text rounds to 0.1 pt: compare the number, not its rounding, which differs at a tie such as 42.75)
    match = re.match(r"Hard third ([+-]\d+\.\d) pt \[", sel.verdict_text)
    assert match and abs(float(match.group(1)) - 100 * (hard - erm_hard)) <= 0.05 + 1e-9, sel.verdict_text
    assert "overall" in sel.verdict_text and "within noise" not in sel.verdict_text.split(",")[0]
    # then the test images the run and the reference configuration differ on, with the sign test
    better = re.search(r"The runs differ on (\d+) of 600 test images \(this run better on (\d+), the reference on "
                       r"(\d+)(, by the share of their \d seeds right on each)?\)", sel.verdict_text)
    assert better and int(better[1]) == int(better[2]) + int(better[3]) and int(better[2]) > int(better[3])


def test_no_safe_improvement_keeps_the_reference_configuration(data, erm, tmp_path):
    # Candidates that cannot learn (lr 1e-6) never beat ERM: the run must be the reference, class for class.
    config = ProbeConfig(**{**FAST, "lr_grid": [1e-6]}, **DRO, max_overall_drop=0.5)
    report = run_probe(data, NAMES, config, reference=erm[0], out_dir=tmp_path / "kept")
    sel = report.selection
    assert sel.verdict == "no_safe_improvement" and [p.chosen for p in sel.frontier] == [True, False, False]
    assert sel.verdict_text == ("this run equals the reference (ERM) configuration, as no setting raised the hard "
                                "classes beyond noise within the overall-accuracy budget of 0.5 pt.")
    assert report.config["loss"] == "ce" and report.config["selected"] == erm[0].config["selected"]
    assert sel.requested["loss"] == "group_dro" and sel.requested["max_overall_drop"] == 0.5
    assert [r.accuracy_per_seed for r in report.per_class] == [r.accuracy_per_seed for r in erm[0].per_class]
    assert "beyond noise within the overall budget of 0.5 pt: none of" in sel.reason and load_report(tmp_path / "kept") == report


def test_without_a_reference_run_the_reference_configuration_is_trained_in_the_run(data, erm):
    report = run_probe(data, NAMES, ProbeConfig(**FAST, **DRO))
    assert report.selection.verdict == "improved"
    assert report.selection.frontier[0].params["loss"] == "ce"
    assert "reference (ERM) configuration, trained in this run" in report.grouping.note
    assert report.grouping.groups == erm[0].grouping.groups  # the same ERM configuration ranks the classes


def test_overall_selection_reports_stability_and_warnings(data):
    small = {**data, "val": (data["val"][0][::5], data["val"][1][::5])}  # 20 validation images per class
    report = run_probe(small, NAMES, ProbeConfig(**FAST, cv=0))  # the validation split, cross-validation off
    assert report.selection.verdict == "not_applicable" and report.selection.frontier == []
    assert len(report.grouping.stability) == 6 and all(0 <= s <= 1 for s in report.grouping.stability)
    assert any("6 of 6 classes have fewer than 50 validation images" in w for w in report.warnings)


def test_stored_predictions_and_test_diagnostics(erm):
    report, out = erm
    preds = Predictions.load(out)
    labels = np.tile(preds.labels, len(preds.predicted))
    pooled = preds.predicted.ravel()
    np.testing.assert_array_equal(report.confusion.counts, confusion_matrix(labels, pooled, labels=range(6)))
    p, r, f, _ = precision_recall_fscore_support(labels, pooled, labels=range(6), zero_division=np.nan)
    np.testing.assert_allclose([row.precision for row in report.per_class], p)
    np.testing.assert_allclose([row.recall for row in report.per_class], r)
    np.testing.assert_allclose([row.f1 for row in report.per_class], f)
    assert [row.support for row in report.per_class] == [100] * 6
    # recall over the pooled seeds is the seed-mean accuracy the report shows, inside its interval
    for row in report.per_class:
        assert row.recall == pytest.approx(row.accuracy)
        assert row.accuracy_ci[0] <= row.accuracy <= row.accuracy_ci[1]
    # the overall accuracy's Wilson interval over the 600 test images (p̂: the seed-mean scores' mean)
    hits = preds.correct.sum()
    np.testing.assert_allclose(report.summary.overall_ci, wilson_interval(hits, 600))
    assert report.summary.overall == pytest.approx(hits / 600)
    assert report.summary.overall_ci[0] < report.summary.overall < report.summary.overall_ci[1]
    # the worst class's interval in the summary, the runs list's (it showed "b (0.0 %)" alone): its row's
    worst = next(row for row in report.per_class if row.name == report.summary.worst_class.name)
    assert report.summary.worst_class_ci == worst.accuracy_ci is not None
    worst = report.per_class[5]
    top = worst.top_confusions[0]
    assert top.rate == pytest.approx(max(np.delete(np.array(report.confusion.counts[5]), 5)) / 200)
    assert preds.confidence.shape == (600,) and np.all((preds.confidence > 0) & (preds.confidence <= 1))


def test_a_kept_reference_of_another_head_names_its_head(data, erm):
    """A cosine MR² request against a linear ERM run that finds no safe improvement ships the linear reference:
    the reason says so in words, not only the config."""
    config = ProbeConfig(**{**FAST, "lr_grid": [1e-6]}, head="cosine", loss="mr2", select="hard")
    report = run_probe(data, NAMES, config, reference=erm[0])
    sel = report.selection
    assert sel.verdict == "no_safe_improvement" and report.config["head"] == "linear"
    assert sel.frontier[0].params == {"head": "linear", "loss": "ce", "lr": 0.05, "weight_decay": 0.0}
    assert "keeps the reference configuration (head=linear, loss=ce, lr=0.05, weight_decay=0)" in sel.reason
    assert sel.requested["head"] == "cosine"
    # and a warning, where every view shows them (the head changed without a word elsewhere; a new-user round)
    assert report.warnings[0] == (
        "The cosine head asked for is not what this run ships: no cosine candidate qualified against the reference "
        "run's linear head, so the run is that reference configuration, a linear head. Train a cosine ERM reference "
        "to compare cosine settings with cosine.")


def test_a_reference_run_of_another_loss_is_said_not_to_be_erm(data, tmp_path):
    """`--preset disparity --reference runs/focal` said "this run equals the reference (ERM) configuration" of the
    focal configuration it shipped (a new-user round): a warning names the reference's loss."""
    focal = run_probe(data, NAMES, ProbeConfig(**FAST, loss="focal"), out_dir=tmp_path / "focal")
    config = ProbeConfig(**{**FAST, "lr_grid": [1e-6]}, loss="mr2", select="hard")
    report = run_probe(data, NAMES, config, reference=focal)
    assert report.selection.verdict == "no_safe_improvement" and report.config["loss"] == "focal"
    assert report.warnings[0] == (
        "The reference run is not ERM: its loss is focal, so this run was compared with a focal configuration where "
        "it says 'reference (ERM)', and ships it when nothing qualified. Give an ERM run (loss ce) as the reference "
        "to compare with ERM.")
    # an ERM reference gives no such warning
    erm_ref = run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=tmp_path / "erm")
    assert not any("is not ERM" in w for w in run_probe(data, NAMES, config, reference=erm_ref).warnings)


def test_an_improvement_is_checked_on_test_by_its_hard_third_interval_and_its_images():
    """compare's beyond_noise rule: the interval and the images' exact test, leaning the same way (3 hard test images
    fixed resample to an interval above 0 and are p = 0.25: "holds" beside a verdict saying so; a statistics
    review)."""
    from probe.run_notes import verdict_on_test

    assert [verdict_on_test(ci, 0.01, total) for ci, total in (([0.01, 0.2], 5.0), ([0.0, 0.1], 5.0),
                                                               ([-0.05, 0.02], -1.0), ([-0.1, -0.01], -5.0))] == [
        "holds", "within_noise", "within_noise", "reversed"]
    assert verdict_on_test([0.2, 1.0], 0.25, 3.0) == "within_noise"
    assert verdict_on_test([-1.0, -0.2], 0.25, -3.0) == "within_noise"
    assert verdict_on_test([0.2, 1.0], 0.01, -1.0) == "within_noise"  # a macro mean and the images' sum part
    # the overall half of the rule: a hard gain that held beside an overall loss of 3.0 [1.7, 4.4] points, its
    # images leaning that way, read "held on test" on a budget of 0 (a consistency round)
    lost = ([-0.044, -0.017], 7e-5, -30.0)
    assert verdict_on_test([0.08, 0.3], 0.001, 10.0, lost, budget=0.0) == "overall_lost"
    assert verdict_on_test([0.08, 0.3], 0.001, 10.0, lost, budget=0.03) == "holds"  # within a 3-point budget
    assert verdict_on_test([0.08, 0.3], 0.001, 10.0, ([-0.044, -0.017], 0.2, -30.0)) == "holds"  # too few images
    assert verdict_on_test([-0.1, 0.3], 0.5, 1.0, lost) == "overall_lost"
    assert verdict_on_test([-0.1, -0.01], 0.01, -5.0, lost) == "reversed"
    assert verdict_on_test([0.08, 0.3], 0.001, 10.0, ([-0.01, 0.02], 0.5, 1.0)) == "holds"


def test_an_overall_cost_past_the_budget_within_noise_is_said():
    """-3.02 points on test on a budget of 3 read "held on test" bare (a consistency round): the verdict says the
    cost is past the budget but not beyond noise of it; within the budget, or already overall_lost, nothing."""
    from probe.run_notes import past_budget_sentence

    assert past_budget_sentence(False, -0.0302, 3.0, "accuracy") == (
        " The overall difference on test, -3.0 pt, is past the 3-point budget, but not beyond noise of it.")
    assert past_budget_sentence(False, -0.004, 0.0, "balanced").startswith(
        " The balanced accuracy difference on test, -0.4 pt, is past the 0-point budget")
    assert past_budget_sentence(False, -0.029, 3.0, "accuracy") == ""
    assert past_budget_sentence(True, -0.05, 3.0, "accuracy") == ""  # beyond noise: overall_lost, or reversed
    # compared as the decision compares a budget: 0.57 - 0.60 is exactly the 3-point budget, not past it (a review)
    assert past_budget_sentence(False, 0.57 - 0.60, 3.0, "accuracy") == ""
    from probe.compare import lost_beyond_budget

    assert not lost_beyond_budget([-0.05, 0.57 - 0.60], 0.001, -5.0, 0.03)
    assert lost_beyond_budget([-0.05, -0.031], 0.001, -5.0, 0.03)


def test_an_improved_run_s_verdict_names_what_it_lost_beyond_noise_against_its_reference(monkeypatch):
    """A new-user round: "verdict (improved; held on test)" gave the hard, balanced and overall deltas, and class 6
    down 8.97 points beyond noise against the reference was said by ``mr2probe compare`` alone. The run's test check
    has the reference's test predictions: its verdict names the thirds and classes lost (probe.compare.lost_on_test)."""
    from types import SimpleNamespace

    from probe import run as run_module
    from testdata import first_right

    labels = np.repeat(np.arange(3), 20)
    # the first n images of each class right: hard a +100 pt, medium b −50 pt
    reference, fair = first_right(labels, [0, 20, 20]), first_right(labels, [20, 10, 20])
    monkeypatch.setattr(run_module, "_train_seeds", lambda *args: (None, []))
    monkeypatch.setattr(run_module, "_predictions", lambda *args: reference)
    outcome = SimpleNamespace(val_labels=None, reference=(None, None, None),
                              config=SimpleNamespace(overall_metric="accuracy", seeds=[0], max_overall_drop=100.0),
                              selection=SimpleNamespace(verdict="improved", test_check=None, verdict_text=None))
    splits = SimpleNamespace(test=(None, labels), num_classes=3)
    run_module._finish_outcome(outcome, {"easy": [2], "medium": [1], "hard": [0]}, fair, splits, list("abc"))
    assert outcome.selection.test_check == "holds"
    assert outcome.selection.verdict_text.startswith("Hard third +100.0 pt [")
    assert outcome.selection.verdict_text.endswith(
        " Lost beyond noise on test against the reference: the medium third -50.0 pt; 1 class (b -50.0 pt; by "
        "chance alone about 0.075 of 3 would leave out 0 this way) "
        "(mr2probe compare of the two runs lists every class).")
