"""decide(): paired validation deltas with intervals, the budget, the frontier, stability and warnings."""
import numpy as np
import pytest

from probe.decision import MIN_VAL_PER_CLASS, decide, small_split_warning

NAMES = ["a", "b", "c", "d", "e", "f"]


def _setup(n_per_class=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(6), n_per_class)
    p = np.array([0.97, 0.93, 0.85, 0.75, 0.6, 0.5])
    reference = (rng.random(labels.size) < p[labels]).astype(float)
    return rng, labels, reference


def _fix_hard(reference, labels, classes, count, rng):
    out = reference.copy()
    for k in classes:
        wrong = np.flatnonzero((labels == k) & (reference == 0))
        out[rng.permutation(wrong)[:count]] = 1.0
    return out


def test_a_clear_hard_gain_without_overall_cost_is_chosen():
    rng, labels, ref = _setup()
    gain = _fix_hard(ref, labels, [4, 5], 30, rng)   # +15 points on the two hardest classes, nothing lost
    noise = ref.copy()
    flip = rng.choice(labels.size, 40, replace=False)
    noise[flip] = 1 - noise[flip]                      # random churn: no real difference
    cands = [{"lr": 0.01, "loss": "ce"}, {"lr": 0.1, "eta": 0.01}, {"lr": 0.1, "eta": 0.03}]
    d = decide(cands, [ref, noise, gain], 0, labels, NAMES)
    assert (d.index, d.verdict) == (2, "improved")
    assert d.groups == {"easy": [0, 1], "medium": [2, 3], "hard": [4, 5]}
    front = d.frontier
    assert front[0]["reference"] and front[0]["val_hard_delta"] == 0 and front[0]["val_hard_delta_ci"] == [0, 0]
    assert front[2]["chosen"] and front[2]["val_hard_delta"] == pytest.approx(0.15)
    assert 0 < front[2]["val_hard_delta_ci"][0] < 0.15 < front[2]["val_hard_delta_ci"][1]
    assert front[2]["val_overall_delta"] == pytest.approx(60 / 1200)
    assert front[1]["val_hard_delta_ci"][0] < 0 < front[1]["val_hard_delta_ci"][1]
    assert d.warnings == [] and min(d.stability) > 0.8


def test_no_safe_improvement_keeps_the_reference_and_the_budget_opens_it():
    rng, labels, ref = _setup()
    trade = _fix_hard(ref, labels, [4, 5], 30, rng)
    easy_right = np.flatnonzero((labels <= 1) & (ref == 1))
    trade[rng.permutation(easy_right)[:45]] = 0.0      # +60 hard images for -45 easy ones: costs overall risk
    d = decide([{"lr": 0.01}, {"lr": 0.1}], [ref, trade], 0, labels, NAMES)
    assert d.frontier[1]["val_overall_delta_ci"][0] < 0 < d.frontier[1]["val_hard_delta_ci"][0]
    assert (d.index, d.verdict) == (0, "no_safe_improvement") and d.frontier[0]["chosen"]
    assert "keeps the reference configuration (lr=0.01)" in d.reason
    loose = decide([{"lr": 0.01}, {"lr": 0.1}], [ref, trade], 0, labels, NAMES, max_overall_drop=2.0)
    assert (loose.index, loose.verdict) == (1, "improved")


def test_failed_candidates_small_validation_and_unstable_groups_are_reported():
    rng, labels, ref = _setup(n_per_class=10, seed=1)
    cands = [{"lr": 0.01}, {"lr": 1e30, "failed": "diverged: non-finite loss at epoch 2"}]
    # groups from another run that ranks the classes the other way round: none of them is stable here
    d = decide(cands, [ref, None], 0, labels, NAMES, groups={"easy": [4, 5], "medium": [2, 3], "hard": [0, 1]})
    assert d.verdict == "no_safe_improvement" and d.frontier[1] == {
        "params": cands[1], "failed": "diverged: non-finite loss at epoch 2", "chosen": False, "reference": False}
    text = " | ".join(d.warnings)
    assert f"6 of 6 classes have fewer than {MIN_VAL_PER_CLASS} validation images" in text
    assert "Unstable groups" in text and "lr=1e+30: diverged: non-finite loss at epoch 2" in text


def test_small_split_warning():
    assert small_split_warning(np.repeat(np.arange(3), 60), ["x", "y", "z"]) is None
    text = small_split_warning(np.array([0] * 60 + [1] * 10 + [2] * 49), ["x", "y", "z"])
    assert "2 of 3 classes have fewer than 50 validation images (y (10), z (49))" in text
    assert "1 of 3 classes has fewer than 50 validation images (z (49))" in small_split_warning(
        np.array([0] * 60 + [1] * 50 + [2] * 49), ["x", "y", "z"])
    assert "one image moves a class's accuracy by up to 10 points" in text and "without any" not in text


def test_small_split_warning_lists_the_smallest_classes_first_and_names_the_empty_ones():
    names = [f"c{i}" for i in range(8)]
    labels = np.concatenate([np.full(n, i) for i, n in enumerate([40, 30, 20, 10, 60, 4, 0, 2])])
    text = small_split_warning(labels, names)
    assert "7 of 8 classes have fewer than 50 validation images (c6 (0), c7 (2), c5 (4), c3 (10), c2 (20) ...)" in text
    assert "by up to 50 points" in text  # the smallest measured class: 2 images
    assert text.endswith("1 class without any validation image (c6): no validation accuracy is measured there.")


def test_the_unstable_groups_warning_names_the_ten_least_stable_and_counts_the_rest():
    from probe.decision import UNSTABLE_NAMED, _warnings

    names = [f"k{i:02d}" for i in range(30)]
    groups = {"easy": list(range(10)), "medium": list(range(10, 20)), "hard": list(range(20, 30))}
    stability = np.full(30, 0.95)
    stability[:15] = np.linspace(0.79, 0.10, 15)  # k14 least stable, then k13, ...; k00 at 79 %
    labels = np.repeat(np.arange(30), 60)  # 60 validation images per class: no small-split warning
    [text] = _warnings(labels, names, groups, stability, [])
    assert UNSTABLE_NAMED == 10
    assert text.startswith("Unstable groups: 15 classes keep their third in fewer than 80 % of bootstrap resamples "
                           "of the validation split, least stable first: k14 (medium, 10.0 %), k13 (medium, 14.9 %), ")
    assert text.endswith("k05 (easy, 54.4 %); 5 more in grouping.stability.")
    assert "k04" not in text and "k15" not in text
    stability[:15] = 0.95
    stability[[3, 25]] = 0.5
    [few] = _warnings(labels, names, groups, stability, [])
    assert few.endswith("split, least stable first: k03 (easy, 50.0 %), k25 (hard, 50.0 %).")
    # one decimal, as the per-class table: 79.9 % read "80 %" under "fewer than 80 %" (a dashboard round)
    stability[3] = 0.799
    [close] = _warnings(labels, names, groups, stability, [])
    assert "k03 (easy, 79.9 %)" in close


def test_a_class_of_one_validation_image_has_no_stability_and_is_said_so():
    """One validation image read "kept its third in 100 % of bootstrap resamples" (a new-user round): no resample
    can move its accuracy."""
    from probe.decision import stability_and_warnings
    from probe.uncertainty import MIN_STABILITY_IMAGES, Bootstrap

    assert MIN_STABILITY_IMAGES == 2
    labels = np.r_[np.repeat([0, 1, 2, 3], 10), 4]  # bird (class 4): one validation image
    correct = np.r_[np.tile([1.0] * 9 + [0.0], 2), np.tile([1.0] * 5 + [0.0] * 5, 2), 1.0]
    groups = {"easy": [0, 4], "medium": [1], "hard": [2, 3]}
    stability = Bootstrap(labels, 5, n_resamples=200).group_stability(correct, groups)
    assert np.isnan(stability[4]) and np.isfinite(stability[:4]).all()
    names = ["cat", "dog", "deer", "horse", "bird"]
    kept, warnings = stability_and_warnings(correct, labels, names, groups, n_resamples=200)
    assert kept[4] != kept[4] and kept[:4] == pytest.approx(stability[:4])
    assert ("Group stability not measured for 1 class of fewer than 2 images in the validation split (bird): "
            "resampling one image cannot move its accuracy, so its third is as uncertain as it gets.") in warnings


def test_balanced_overall_takes_a_rare_class_gain_that_accuracy_calls_a_loss():
    # a: 1,000 images, f: 20. The candidate fixes 10 of f's images and breaks 20 of a's: accuracy −0.5 pt on
    # 2,000 images, balanced accuracy +(10/20 − 20/1000) / 6 = +8 pt.
    rng = np.random.default_rng(4)
    counts = [1000, 400, 300, 200, 80, 20]
    labels = np.repeat(np.arange(6), counts)
    p = np.array([0.97, 0.9, 0.85, 0.8, 0.6, 0.3])
    ref = (rng.random(labels.size) < p[labels]).astype(float)
    cand = _fix_hard(ref, labels, [5], 10, rng)
    cand[rng.permutation(np.flatnonzero((labels == 0) & (ref == 1)))[:20]] = 0.0
    groups = {"easy": [0, 1], "medium": [2, 3], "hard": [4, 5]}
    plain = decide([{"lr": 0.01}, {"lr": 0.1}], [ref, cand], 0, labels, NAMES, groups=groups)
    assert plain.verdict == "no_safe_improvement" and plain.frontier[1]["val_overall_delta"] == pytest.approx(-0.005)
    balanced = decide([{"lr": 0.01}, {"lr": 0.1}], [ref, cand], 0, labels, NAMES, groups=groups,
                      overall_metric="balanced")
    assert (balanced.index, balanced.verdict) == (1, "improved")
    entry = balanced.frontier[1]
    assert entry["val_overall_delta"] == pytest.approx((10 / 20 - 20 / 1000) / 6)
    per_class = [cand[labels == k].mean() for k in range(6)]
    assert entry["val_overall"] == pytest.approx(np.mean(per_class))
    assert entry["val_overall_delta_ci"][0] >= 0


def test_imbalance_warning_names_the_rarest_classes_and_a_test_split_mixed_otherwise():
    from probe.decision import IMBALANCE_RATIO, imbalance_warning

    names = ["cat", "dog", "owl", "yak"]
    assert imbalance_warning(np.array([300, 200, 101, 150]), np.array([50] * 4), names) is None  # 2.97×
    text = imbalance_warning(np.array([300, 200, 100, 1500]), np.array([25, 25, 25, 25]), names)
    assert text.startswith(f"Imbalanced classes: train + val hold 100 to 1,500 images per class (15×; fewest: owl "
                           "(100), dog (200), cat (300)).")
    # named as each surface spells it (a dashboard-only round read the CLI's spelling alone)
    assert "(the dashboard's Overall score: balanced; overall_metric='balanced', CLI --overall-metric balanced)" in text
    assert text.endswith("The test split holds the classes in other proportions (25 images in every class), so its "
                         "overall accuracy weighs the classes differently from validation's.")
    same_mix = imbalance_warning(np.array([30, 20, 10, 90]), np.array([3, 2, 1, 9]), names)
    assert same_mix is not None and "test split" not in same_mix
    assert imbalance_warning(np.array([30, 20, 10, 90]), np.array([3, 2, 1, 9]), names, "balanced") is None
    assert imbalance_warning(np.array([3 * 7, 7, 0, 7]), np.array([1, 1, 1, 1]), names) is not None  # 3× exactly
    assert IMBALANCE_RATIO == 3.0


def test_imbalance_ratio_is_largest_over_smallest_present_class():
    from probe.decision import imbalance_ratio

    assert imbalance_ratio([300, 0, 100, 150]) == 3.0  # a class without images does not count
    assert imbalance_ratio([7]) is None and imbalance_ratio([0, 5]) is None


def test_four_fixed_images_and_none_broken_are_not_an_improvement_however_tight_the_bootstrap():
    rng, labels, ref = _setup(n_per_class=50, seed=2)
    cand = _fix_hard(ref, labels, [4, 5], 2, rng)  # 2 images fixed in each hard class, nothing broken
    d = decide([{"lr": 0.01}, {"lr": 0.1}], [ref, cand], 0, labels, NAMES)
    entry = d.frontier[1]
    assert entry["val_hard_delta_ci"][0] > 0 and entry["val_overall_delta_ci"][0] >= 0  # each interval: "improved"
    assert entry["val_hard_changed"] == [4, 0] and entry["val_hard_sign_p"] == pytest.approx(0.125)
    assert entry["val_hard_sign_p_alone"] == pytest.approx(0.125)  # one candidate: Bonferroni over 1
    assert d.verdict == "no_safe_improvement"
    more = _fix_hard(cand, labels, [4, 5], 2, rng)  # 8 fixed, 0 broken: p = 2 / 2^8
    d = decide([{"lr": 0.01}, {"lr": 0.1}], [ref, more], 0, labels, NAMES)
    assert d.frontier[1]["val_hard_sign_p"] == pytest.approx(2 / 256) and d.verdict == "improved"
    assert ("hard-class images 8 fixed, 0 broken, weighed by class (sign-flip test p = 0.0078, Bonferroni over the "
            "1)") in d.reason



def test_a_hard_third_too_small_for_the_sign_test_is_said_so():
    """3 classes, 8 validation images in the hardest: all 8 fixed and none broken is p = 2/256 alone, 0.11 over 14
    distinct candidates, so no candidate could ever pass; the verdict read as a near miss (a new-user round)."""
    from probe.selection import sign_test_reachable

    assert sign_test_reachable(8, 14) == (
        "With 8 validation images of the hard classes no candidate could pass the sign-flip test: all of them fixed and "
        "none broken gives p = 0.11 after Bonferroni over 14; it takes at least 10 (more validation images of the "
        "hard classes, or fewer candidates). ")
    assert sign_test_reachable(10, 14) == "" and sign_test_reachable(6, 1) == "" and sign_test_reachable(None, 3) == ""
    assert sign_test_reachable(5, 1).startswith("With 5 validation images") and "at least 6 " in \
        sign_test_reachable(5, 1)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [40, 40, 6])
    ref = (rng.random(labels.size) < np.array([0.9, 0.8, 0.3])[labels]).astype(float)
    cands = [np.where(labels == 2, 1.0, ref)] + [np.where(rng.random(labels.size) < 0.2, 1 - ref, ref)
                                                  for _ in range(5)]
    d = decide([{"lr": i} for i in range(7)], [ref, *cands], 0, labels, ["a", "b", "c"])
    hard = d.frontier[1]["val_hard_images"]
    assert d.verdict == "no_safe_improvement" and 0 < hard <= 6 and d.frontier[0].get("val_hard_images") is None
    assert f"With {hard} validation images of the hard classes no candidate could pass the sign-flip test" in d.reason


def test_the_sign_tests_bonferroni_counts_distinct_candidates_only():
    """24 group-DRO candidates were about 6 distinct ones on a small set, and the sign test's adjustment divided by
    24 (a new-user round): candidates scoring exactly alike count once, one scoring as the reference not at all."""
    rng, labels, ref = _setup(n_per_class=30, seed=3)
    more = _fix_hard(ref, labels, [4, 5], 10, rng)  # 20 fixed, none broken (about half read by the hard score)
    other = _fix_hard(ref, labels, [4, 5], 1, rng)
    cands = [{"lr": 0.01}, *({"lr": v} for v in (0.1, 0.2, 0.3, 0.4, 0.5))]
    d = decide(cands, [ref, more, more.copy(), ref.copy(), other, more], 0, labels, NAMES)
    assert [e.get("val_hard_sign_family") for e in d.frontier] == [None, 2, 2, 2, 2, 2]
    from probe.uncertainty import sign_test

    fixed, broken = d.frontier[1]["val_hard_changed"]
    assert fixed >= 6 and broken == 0 and d.frontier[1]["val_hard_sign_p"] == pytest.approx(2 * sign_test(fixed, 0))
    assert d.verdict == "improved" and "Bonferroni over the 2 of them that score otherwise than the reference and " \
        "each other" in d.reason

def test_many_candidates_equal_to_the_reference_rarely_look_improved():
    # 24 null candidates: each redraws 15 % of the images from the reference's own per-class accuracies. Judged
    # one at a time, some interval clears 0 in several trials; the bounds that hold over all 24 never do here.
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 100)
    truth = np.linspace(0.95, 0.6, 10)[labels]
    names = [str(k) for k in range(10)]
    marginal = simultaneous = 0
    for trial in range(30):
        ref = (rng.random(labels.size) < truth).astype(float)
        cands = [np.where(rng.random(labels.size) < 0.15, rng.random(labels.size) < truth, ref).astype(float)
                 for _ in range(24)]
        d = decide([{"lr": i} for i in range(25)], [ref, *cands], 0, labels, names, n_resamples=250, seed=trial)
        simultaneous += d.verdict == "improved"
        marginal += any(e["val_hard_delta_ci"][0] > 0 and e["val_overall_delta_ci"][0] >= 0 for e in d.frontier[1:])
        assert all(e["val_hard_delta_simultaneous_lo"] <= e["val_hard_delta_ci"][0] for e in d.frontier[1:])
    assert marginal >= 2 and simultaneous == 0  # (3+ when the thirds were ranked on the images measured)


def test_the_imbalance_warning_names_only_the_rare_classes():
    """One class ten times smaller than three others: 'fewest' listed the largest classes too (found by an outside
    round); it names the classes at least IMBALANCE_RATIO times below the largest."""
    from probe.decision import imbalance_warning

    text = imbalance_warning(np.array([25, 250, 250, 250]), np.array([75] * 4), ["bird", "cat", "dog", "truck"])
    assert "(10×; fewest: bird (25))." in text
    # a ratio between whole numbers said as it is: 14 against 4 images a class read "4×" beside the API's 3.5
    text = imbalance_warning(np.array([4, 14, 14]), np.array([5] * 3), ["bird", "cat", "dog"])
    assert "hold 4 to 14 images per class (3.5×; fewest: bird (4))." in text


def test_the_small_split_warning_gives_a_fraction_of_a_point_where_there_is_one():
    """40 images per class: one image is 2.5 points, which the warning printed as 2 (found by an outside round)."""
    from probe.decision import small_split_warning

    text = small_split_warning(np.repeat(np.arange(3), 40), ["a", "b", "c"])
    assert "one image moves a class's accuracy by up to 2.5 points" in text


def test_class_names_alike_but_for_case_spacing_or_unicode_form_are_named():
    """Labels 'Cat' and 'cat' became two classes without a word (an outside round): the report's warning names them."""
    from probe.names import lookalike_names_warning

    assert lookalike_names_warning(["Cat", "cat", "dog", "T-shirt ", "t-shirt", "ｄｏｇ"]) == (
        "Class names that differ only in case, spacing or Unicode form: 'Cat' and 'cat'; 'dog' and 'ｄｏｇ'; "
        "'T-shirt ' and 't-shirt'. Where such names are one class, its images are split between them: rename the "
        "folders or labels.")
    assert lookalike_names_warning(["cat", "dog", "cathedral"]) is None
    many = [f"c{i}" for i in range(5)] + [f"C{i}" for i in range(5)]
    assert "'c2' and 'C2' (and 2 more). Where" in lookalike_names_warning(many)  # three pairs shown


def test_tied_accuracies_split_between_thirds_are_said():
    """119 classes at 100 % validation accuracy were split 100 easy / 19 medium by class index and named the least
    stable without a word of the tie (a scale round); a tie of one class across an edge is the ordinary edge."""
    from probe.decision import tied_across_thirds
    from probe.groups import assign_groups

    accuracy = np.r_[np.ones(8), np.full(4, 0.5)]  # 12 classes: thirds of 4, 8 tied at 100 %
    groups = assign_groups(accuracy)
    assert tied_across_thirds(accuracy, groups) == (
        "Tied validation accuracies span thirds (8 at 100.0 % (4 easy / 4 medium)): the ranking split each tie by "
        "class index, so those classes' thirds, and their stability, say nothing about them apart.")
    edge = np.r_[np.ones(3), 0.9, 0.9, np.linspace(0.8, 0.2, 7)]  # 0.9 tied, one each side: the ordinary edge
    assert tied_across_thirds(edge, assign_groups(edge)) is None
    hard_edge = np.r_[np.linspace(1.0, 0.6, 7), 0.5, 0.5, 0.4, 0.3, 0.2]  # 0.5 tied across the hard third's edge
    assert tied_across_thirds(hard_edge, assign_groups(hard_edge)) == (
        "Tied validation accuracies span thirds (2 at 50.0 % (1 medium / 1 hard)): the ranking split each tie by "
        "class index, so those classes' thirds, and their stability, say nothing about them apart.")
    two = np.array([0.7667, 0.7667])  # K = 2: one easy, one hard, by class order
    assert tied_across_thirds(two, assign_groups(two)).startswith(
        "Tied validation accuracies span thirds (2 at 76.7 % (1 easy / 1 hard))")
    assert tied_across_thirds(np.linspace(0, 1, 12), assign_groups(np.linspace(0, 1, 12))) is None
    # 5 classes: the medium third is one class, tied at 100 % with the two easy ones; the tie decides the third
    five = np.array([1.0, 1.0, 1.0, 0.6, 0.3])
    assert tied_across_thirds(five, assign_groups(five)).startswith(
        "Tied validation accuracies span thirds (3 at 100.0 % (2 easy / 1 medium))")


def test_classes_ranked_without_a_measurement_are_said():
    """300 classes of 1,000 without a validation image were 300 of the hard third's 333 without a word (a 1,000-class
    round): the note counts them in each third they fell in."""
    from probe.decision import unranked_note
    from probe.groups import assign_groups

    accuracy = np.r_[np.linspace(1.0, 0.5, 8), np.nan, np.nan, np.nan, np.nan]  # 12 classes: thirds of 4
    assert unranked_note(accuracy, assign_groups(accuracy)) == (
        "4 classes without any validation image were ranked hardest, unmeasured (4 of 4 in the hard third): the "
        "thirds' accuracies, and any gain on the hard third, are partly about them, not about classes measured to "
        "be hard.")
    five = np.r_[np.linspace(1.0, 0.5, 7), np.full(5, np.nan)]
    assert "(4 of 4 in the hard third, 1 of 4 in the medium third)" in unranked_note(five, assign_groups(five))
    one = np.array([0.9, np.nan, 0.5])
    assert unranked_note(one, assign_groups(one), "out-of-fold").startswith(
        "1 class without any out-of-fold image was ranked hardest, unmeasured (1 of 1 in the hard third): ")
    assert unranked_note(np.linspace(0, 1, 6), assign_groups(np.linspace(0, 1, 6))) is None


def test_candidates_that_all_score_as_the_reference_are_said_so():
    """'Bonferroni over the 0 of them that score otherwise', then 'over 1' (a statistics review)."""
    rng, labels, ref = _setup(n_per_class=30, seed=4)
    d = decide([{"lr": 0.01}, {"lr": 0.1}, {"lr": 0.2}], [ref, ref.copy(), ref.copy()], 0, labels, NAMES)
    assert d.verdict == "no_safe_improvement" and "Bonferroni over none: every one scores as the reference)" in d.reason
    assert "the 0 of them" not in d.reason and "could pass the sign-flip test" not in d.reason


def test_the_frontier_bounds_hold_together_over_every_candidate_not_each_alone():
    """Each candidate's simultaneous lower bounds are taken over all 2m rows at once (hard and overall of the m
    candidates): at or below each one's own 95 % interval's lower end, and strictly below where the rows have
    spread. Bounds taken row by row equal those lower ends, and passed every other test."""
    from probe.uncertainty import DEFAULT_LEVEL

    rng, labels, ref = _setup(n_per_class=60, seed=3)
    cands = []
    for _ in range(4):
        churn = ref.copy()
        flip = rng.choice(labels.size, 40, replace=False)
        churn[flip] = 1 - churn[flip]
        cands.append(churn)
    d = decide([{"lr": i} for i in range(5)], [ref, *cands], 0, labels, NAMES, n_resamples=400)
    for key in ("hard", "overall"):
        own = np.array([e[f"val_{key}_delta_ci"][0] for e in d.frontier[1:]])
        joint = np.array([e[f"val_{key}_delta_simultaneous_lo"] for e in d.frontier[1:]])
        assert (joint <= own + 1e-12).all()
        assert (joint < own - 1e-6).all(), (key, joint, own)
    assert DEFAULT_LEVEL == 0.95


def test_a_class_exactly_at_the_unstable_threshold_is_not_named_unstable():
    """"fewer than 80 % of resamples": a class that keeps its third in exactly 80 % is not unstable."""
    from probe.decision import UNSTABLE_GROUP, _warnings

    names = [f"k{i}" for i in range(6)]
    groups = {"easy": [0, 1], "medium": [2, 3], "hard": [4, 5]}
    labels = np.repeat(np.arange(6), 60)
    stability = np.array([0.95, UNSTABLE_GROUP, 0.95, 0.95, 0.95, 0.7999])
    [text] = _warnings(labels, names, groups, stability, [])
    assert "Unstable groups: 1 classes" in text and "k5 (hard, 80.0 %)" in text and "k1 " not in text


def test_the_imbalance_warning_compares_the_mixes_by_their_total_variation_distance():
    """The test-split sentence appears where the class shares of train + val and of test differ by a total
    variation distance (half the summed absolute differences) of 0.1 or more: shares 0.6/0.2/0.2 against
    0.52/0.24/0.24 are 0.08 apart (summed differences 0.16), no sentence; against 0.48/0.26/0.26, 0.12 apart."""
    from probe.decision import imbalance_warning

    names = ["a", "b", "c"]
    counts = np.array([600, 200, 200])
    close = imbalance_warning(counts, np.array([52, 24, 24]), names)
    assert close is not None and "test split" not in close
    assert "The test split holds the classes in other proportions" in imbalance_warning(counts, np.array([48, 26, 26]),
                                                                                         names)


def test_the_test_split_sentence_appears_at_a_total_variation_of_exactly_a_tenth():
    """60/20/20 % in train + val against 50/25/25 % in test are 0.1 apart, the threshold; unrounded the sum read
    0.09999999999999998 and the sentence was left out."""
    from probe.decision import imbalance_warning

    text = imbalance_warning(np.array([600, 200, 200]), np.array([50, 25, 25]), ["a", "b", "c"])
    assert "The test split holds the classes in other proportions (25 to 50 images per class)" in text


def test_a_hard_class_whose_images_did_not_change_gets_agresti_mins_interval_not_zero_width():
    """Three classes of 5 validation images; the candidate breaks two images of the easiest class and changes none of
    the hard one's. Its cross-fitted hard third is the hard class's halves of 3 and 2 images, each half weighing ½:
    the percentile bootstrap read [+0.00, +0.00]. Now Agresti & Min's variance of those images pooled at Kish's
    size 1/(3·(1/6)² + 2·(1/4)²) = 4.8: (1/6.8)/6.8, a half-width of z/6.8 = 28.8 points, the simultaneous bound too
    (one candidate: its tail is 2.5 %). The reference's own entry, and a candidate scoring as it everywhere, keep
    [0, 0] (they changed nothing)."""
    from statistics import NormalDist

    labels = np.repeat(np.arange(3), 5)
    reference = np.array([1.0] * 10 + [0.0] * 5)  # classes 0, 1 all right, class 2 all wrong: hard in both halves
    candidate = reference.copy()
    candidate[:2] = 0.0
    d = decide([{"lr": 0}, {"lr": 1}, {"lr": 2}], [reference, candidate, reference.copy()], 0, labels,
               ["a", "b", "c"])
    half = NormalDist().inv_cdf(0.975) / 6.8
    entry = d.frontier[1]
    assert entry["val_hard_delta"] == 0.0
    assert entry["val_hard_delta_ci"] == pytest.approx([-half, half])
    assert entry["val_hard_delta_simultaneous_lo"] == pytest.approx(-half)
    assert entry["val_overall_delta_ci"][1] > 0  # two broken images of 15 do not bound the overall loss away from 0
    assert d.frontier[0]["val_hard_delta_ci"] == [0, 0] and d.frontier[2]["val_hard_delta_ci"] == [0, 0]
    assert d.frontier[2]["val_overall_delta_simultaneous_lo"] == 0
