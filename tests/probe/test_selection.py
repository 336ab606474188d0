"""Validation-only hyper-parameter selection: criteria, ties, the ERM floor and the stated reason."""
import pytest

from probe import SELECTION_CRITERIA, select_candidate

CANDIDATES = [
    {"lr": 0.01, "weight_decay": 0.0, "val_overall": 0.90, "val_hard": 0.70},
    {"lr": 0.1, "weight_decay": 0.0, "val_overall": 0.92, "val_hard": 0.68},
    {"lr": 0.01, "weight_decay": 1e-4, "val_overall": 0.91, "val_hard": 0.75},
    {"lr": 0.1, "weight_decay": 1e-4, "val_overall": 0.88, "val_hard": 0.80},
]


def test_registry_names():
    assert set(SELECTION_CRITERIA) == {"overall", "hard"}


def test_overall_picks_highest_val_overall_and_says_why():
    index, reason = select_candidate(CANDIDATES, "overall")
    assert index == 1
    assert "lr=0.1" in reason and "92.00%" in reason and "next best 91.00%" in reason


def test_hard_respects_reference_floor():
    index, reason = select_candidate(CANDIDATES, "hard", floor=0.905)
    # feasible: 1 (0.92, hard 0.68) and 2 (0.91, hard 0.75) → 2; candidate 3 has the best hard third but is below
    assert index == 2
    assert "2 of 4" in reason and "90.50%" in reason and "75.00%" in reason


def test_hard_without_feasible_candidate_falls_back_to_overall():
    index, reason = select_candidate(CANDIDATES, "hard", floor=0.95)
    assert index == 1
    assert "no candidate reached" in reason


def test_hard_without_reference_has_no_floor():
    index, reason = select_candidate(CANDIDATES, "hard")
    assert index == 3
    assert "without a reference" in reason


def test_ties_break_on_second_score_then_grid_order():
    tied = [
        {"lr": 1.0, "val_overall": 0.9, "val_hard": 0.5},
        {"lr": 2.0, "val_overall": 0.9, "val_hard": 0.6},
        {"lr": 3.0, "val_overall": 0.9, "val_hard": 0.6},
    ]
    assert select_candidate(tied, "overall")[0] == 1


def test_scores_equal_but_for_rounding_are_ties():
    """A balanced accuracy of 78/120 summed in two orders (a new-user round): the tie-break decides, and says so."""
    tied = [{"wd": 0.0, "val_overall": 0.6499999999999999, "val_hard": 0.5417},
            {"wd": 0.316, "val_overall": 0.65, "val_hard": 0.5208}]
    index, reason = select_candidate(tied, "overall")
    assert index == 0 and "(tied on overall; the higher val hard-third accuracy, then grid order, decided)" in reason
    # the floor of the hard criterion: a candidate equal to the reference's score is not below it
    assert select_candidate(tied, "hard", floor=0.65)[0] == 0


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_score_that_could_not_be_computed_ranks_last_and_reads_n_a(missing):
    # a hard third with no validation image (null in the report): it neither crashes nor wins a tie
    tied = [{"lr": 1.0, "val_overall": 0.9, "val_hard": missing},
            {"lr": 2.0, "val_overall": 0.9, "val_hard": 0.2},
            {"lr": 3.0, "val_overall": 0.5, "val_hard": missing}]
    index, reason = select_candidate(tied, "overall")
    assert index == 1 and "tied on overall" in reason
    index, reason = select_candidate([tied[0], tied[2]], "overall")
    assert index == 0 and "its val hard-third accuracy is n/a (its own thirds" in reason
    assert select_candidate(tied, "hard")[0] == 1
    index, reason = select_candidate([tied[0], tied[2]], "hard", floor=0.8)
    assert index == 0 and "(n/a)" in reason


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="'best'.*overall, hard"):
        select_candidate(CANDIDATES, "best")
    with pytest.raises(KeyError, match="val_hard"):
        select_candidate([{"lr": 1.0, "val_overall": 0.5}])


def _cand(lr, hard, hard_ci, overall, overall_ci, **extra):
    """A scored candidate whose simultaneous bounds equal its own intervals' lower ends (one candidate's case)
    and whose hard-class changes (30 fixed, 5 broken: sign test p = 1.6e-5) are evidence, unless ``extra`` says
    otherwise."""
    return {"lr": lr, "val_hard_delta": hard, "val_hard_delta_ci": hard_ci,
            "val_overall_delta": overall, "val_overall_delta_ci": overall_ci,
            "val_hard_delta_simultaneous_lo": hard_ci[0], "val_overall_delta_simultaneous_lo": overall_ci[0],
            "val_hard_changed": [30, 5], "val_hard_sign_p": 1.6e-5, **extra}


def test_choose_safe_requires_intervals_above_zero_and_within_the_budget():
    from probe.selection import choose_safe

    ref = _cand(0.01, 0.0, [0.0, 0.0], 0.0, [0.0, 0.0])
    lucky = _cand(0.1, 0.05, [-0.01, 0.11], 0.01, [0.0, 0.02])     # big point gain, interval contains 0
    costly = _cand(0.2, 0.04, [0.02, 0.06], -0.01, [-0.02, 0.0])   # real gain, may cost up to 2 points overall
    safe = _cand(0.3, 0.02, [0.005, 0.035], 0.004, [0.0, 0.008])
    tie = _cand(0.4, 0.02, [0.005, 0.035], 0.0, [-0.004, 0.004])  # may cost 0.4 pt: not with a 0 budget
    index, verdict, reason = choose_safe([ref, lucky, costly, tie, safe], 0, max_overall_drop=0.0)
    assert (index, verdict) == (4, "improved")  # costly's and tie's overall lower bounds are below the 0 budget
    assert "lr=0.3 raised the val hard third by +2.0 pt [+0.5, +3.5]" in reason
    assert ("overall +0.4 pt [+0.0, +0.8] (within noise) (budget 0 pt); lower bounds holding together over the 4 "
            "candidates that fitted: hard +0.5 pt, overall +0.0 pt; hard-class images 30 fixed, 5 broken, weighed by "
            "class (sign-flip test p = 1.6e-05, Bonferroni over the 4). 1 of 4 candidates qualified") in reason
    assert choose_safe([ref, tie], 0, max_overall_drop=0.004)[:2] == (1, "improved")
    # A looser budget lets the larger, more certain gain through: highest lower bound of the hard gain wins.
    assert choose_safe([ref, lucky, costly, safe], 0, max_overall_drop=0.02)[:2] == (2, "improved")
    failed = dict(costly, failed="diverged: non-finite loss")
    assert choose_safe([ref, lucky, failed, safe], 0, max_overall_drop=0.02)[0] == 3


def test_choose_safe_decides_on_the_simultaneous_bounds_and_the_sign_test_not_the_intervals():
    from probe.selection import SIGN_TEST_ALPHA, choose_safe

    ref = _cand(0.01, 0.0, [0.0, 0.0], 0.0, [0.0, 0.0])
    # each interval alone clears 0, the bound that holds over all candidates does not
    one_of_many = _cand(0.1, 0.02, [0.004, 0.036], 0.0, [0.0, 0.01], val_hard_delta_simultaneous_lo=-0.002)
    few_images = _cand(0.2, 0.02, [0.005, 0.035], 0.0, [0.0, 0.01], val_hard_changed=[4, 0], val_hard_sign_p=0.125)
    costly = _cand(0.3, 0.02, [0.005, 0.035], 0.0, [0.0, 0.01], val_overall_delta_simultaneous_lo=-0.001)
    even = _cand(0.4, 0.02, [0.005, 0.035], 0.0, [0.0, 0.01], val_hard_changed=[16, 14], val_hard_sign_p=0.9)
    index, verdict, reason = choose_safe([ref, one_of_many, few_images, costly, even], 0)
    assert (index, verdict) == (0, "no_safe_improvement")
    assert ("none of 4 candidates had a lower bound of its val hard-third gain above 0 and one of its overall "
            "difference at or above 0 pt (one-sided bounds holding together at 97.5 % over the 4 that fitted), with "
            "its changed hard-class images leaning its way (sign-flip test p ≤ 0.05, Bonferroni over the 4)") in reason
    # which test held back the closest candidates (it read as refused for nothing; a new-user round)
    # each named with its differences and their intervals, not a bound or image counts alone (a decision round: "the
    # closest, eta=0.03, has an overall bound of -2.2 pt", its hard-third gain unsaid)
    assert ("). 2 passed both bounds but not the test of the hard-class images they change; the best, lr=0.2, "
            "moved the val hard third +2.0 pt [+0.5, +3.5] at overall +0.0 pt [+0.0, +1.0] (within noise), fixing 4 "
            "and breaking 0 of those images (paired sign-flip test, each image weighed by class, p = 0.12 alone, 0.12 "
            "after Bonferroni over the 4). This run keeps") in reason
    reason = choose_safe([ref, one_of_many, costly], 0)[2]
    assert ("). 1 passed the hard-third bound but cost overall accuracy (no budget); the closest, lr=0.3, "
            "moved the val hard third +2.0 pt [+0.5, +3.5] at overall +0.0 pt [+0.0, +1.0] (within noise); its "
            "simultaneous overall lower bound is -0.1 pt. This run keeps") in reason
    assert "1 passed the hard-third bound but cost overall accuracy beyond the budget of 0.05 pt; the closest" in \
        choose_safe([ref, one_of_many, _cand(0.3, 0.02, [0.005, 0.035], 0.0, [0.0, 0.01],
                                             val_overall_delta_simultaneous_lo=-0.001 - 0.0005)], 0, 0.0005)[2]
    # none passed a bound: the closest named with its deltas and its bound (a new-user round: only the demo said it)
    assert ("Bonferroni over the 1). The closest (the highest hard-third lower bound over the 1, -0.2 pt), lr=0.1, "
            "moved the val hard third +2.0 pt [+0.4, +3.6] at overall +0.0 pt [+0.0, +1.0] (within noise); held back "
            "as its simultaneous hard-third lower bound, -0.2 pt, is not above 0. This run keeps") in choose_safe([ref, one_of_many], 0)[2]
    # and every test it failed, named (a new-user round: +6.2 pt read as a near miss; one image had moved)
    weak = _cand(0.6, 0.062, [0.0, 0.188], 0.019, [0.0, 0.048], val_hard_delta_simultaneous_lo=0.0,
                 val_hard_changed=[1, 0], val_hard_sign_p=1.0, val_overall_delta_simultaneous_lo=-0.01)
    assert ("; held back as its simultaneous hard-third lower bound, +0.0 pt, is not above 0; its simultaneous "
            "overall lower bound, -1.0 pt, is below +0.0 pt; its changed hard-class images (1 fixed, 0 broken, "
            "weighed by class: p = 1 after Bonferroni) do not lean its way beyond chance. This run keeps") in choose_safe(
                [ref, weak], 0)[2]
    same = _cand(0.5, 0.0, [0.0, 0.0], 0.0, [0.0, 0.0], val_hard_delta_simultaneous_lo=0.0)
    assert "Bonferroni over the 1). This run keeps" in choose_safe([ref, same], 0)[2]  # scored as the reference
    assert choose_safe([ref, costly], 0, max_overall_drop=0.001)[:2] == (1, "improved")
    at_alpha = dict(few_images, val_hard_sign_p=SIGN_TEST_ALPHA)
    assert SIGN_TEST_ALPHA == 0.05 and choose_safe([ref, at_alpha], 0)[:2] == (1, "improved")
    failed = dict(one_of_many, failed="diverged", val_hard_delta_simultaneous_lo=0.01)
    assert "over the 1 that fitted" in choose_safe([ref, failed, few_images], 0)[2]


def test_choose_safe_keeps_the_reference_when_nothing_qualifies():
    from probe.selection import choose_safe

    ref = _cand(0.01, 0.0, [0.0, 0.0], 0.0, [0.0, 0.0])
    noisy = _cand(0.1, 0.012, [-0.03, 0.05], 0.012, [-0.01, 0.03])
    index, verdict, reason = choose_safe([noisy, ref], 1)
    assert (index, verdict) == (1, "no_safe_improvement")
    assert reason.startswith("No setting raised the hard classes beyond noise without costing overall accuracy")
    assert "keeps the reference configuration (lr=0.01)" in reason
    with pytest.raises(ValueError, match="max_overall_drop must be >= 0"):
        choose_safe([ref], 0, max_overall_drop=-0.01)
    with pytest.raises(ValueError, match="reference_index 3 is not a candidate index"):
        choose_safe([ref], 3)


def test_delta_sentences():
    from probe.selection import delta_sentence, format_delta

    assert format_delta(0.021, (0.012, 0.030)) == "+2.1 pt [+1.2, +3.0]"
    assert format_delta(-0.003, (-0.008, 0.002)) == "-0.3 pt [-0.8, +0.2] (within noise)"
    deltas = {"hard": {"delta": 0.021, "lo": 0.012, "hi": 0.03}, "overall": {"delta": 0.001, "lo": -0.003, "hi": 0.005}}
    assert delta_sentence(deltas) == "Hard third +2.1 pt [+1.2, +3.0], overall +0.1 pt [-0.3, +0.5] (within noise)."
    assert delta_sentence(deltas, "no_safe_improvement") == (
        "this run equals the reference (ERM) configuration, as no setting raised the hard classes beyond noise "
        "without costing overall accuracy.")
    assert delta_sentence(deltas, "no_safe_improvement", "balanced", max_overall_drop=0.03) == (  # the budget
        "this run equals the reference (ERM) configuration, as no setting raised the hard classes beyond noise "
        "within the balanced-accuracy budget of 3 pt.")


def test_a_difference_that_rounds_to_zero_reads_plus_zero_never_minus_zero():
    from probe.selection import format_delta

    assert format_delta(-0.0001, (-0.0004, 0.0002)) == "+0.0 pt [+0.0, +0.0] (within noise)"


def test_a_difference_pinned_at_zero_reads_no_change_not_within_noise():
    """Two runs of the same predictions: the compare verdict said "Hard third +0.0 pt [+0.0, +0.0] (within noise)"
    and then "The runs agree on every one of the 449 test images" (a new-user round)."""
    from probe.selection import delta_sentence, format_delta

    pinned = {"delta": 0.0, "lo": 0.0, "hi": 0.0}
    assert format_delta(0.0, (0.0, 0.0)) == "+0.0 pt [+0.0, +0.0] (no change)"
    assert delta_sentence({"hard": pinned, "overall": pinned}) == (
        "Hard third +0.0 pt [+0.0, +0.0] (no change), overall +0.0 pt [+0.0, +0.0] (no change).")
    assert format_delta(0.0, (-0.001, 0.0)) == "+0.0 pt [-0.1, +0.0] (within noise)"


def test_a_difference_that_cannot_be_computed_is_said_so_not_nan():
    """Runs compared on images that leave the hard third without an image (new images of other classes): the
    sentence said "Hard third +nan pt [+nan, +nan]" (found by an outside round); it now says it is not measured."""
    from probe.selection import delta_sentence

    nan = float("nan")
    text = delta_sentence({"hard": {"delta": nan, "lo": nan, "hi": nan},
                           "overall": {"delta": 0.05, "lo": -0.017, "hi": 0.133}})
    assert text == ("Hard third not measured (no image of these classes here), overall +5.0 pt [-1.7, +13.3] "
                    "(within noise).")


def test_the_budget_holds_a_bound_equal_to_it_but_for_rounding():
    """0.57 − 0.58 is −0.010000000000000009: a bound equal to a budget of exactly 1 pt failed it (a review)."""
    from probe.selection import choose_safe, same_score, within_budget

    bound = 0.57 - 0.58
    assert bound < -0.01 and within_budget({"val_overall_delta_simultaneous_lo": bound}, 0.01)
    assert not within_budget({"val_overall_delta_simultaneous_lo": -0.0101}, 0.01)
    assert same_score(0.6499999999999999, 0.65) and not same_score(0.65, 0.6500001)
    ref = _cand(0.01, 0.0, [0.0, 0.0], 0.0, [0.0, 0.0])
    at_budget = _cand(0.1, 0.02, [0.005, 0.035], -0.01, [-0.01, 0.0], val_overall_delta_simultaneous_lo=bound)
    assert choose_safe([ref, at_budget], 0, max_overall_drop=0.01)[:2] == (1, "improved")


def test_the_closest_candidate_breaks_ties_on_the_images_it_changed_then_the_overall_bound():
    """Many candidates at a hard bound of +0.0: the first in grid order, which changed no hard image at -8.3 pt
    overall, was named "the closest" beside one at +3.3 hard (a new-user round)."""
    from probe.selection import closest_candidate

    nothing = _cand(0.1, 0.0, [0.0, 0.0], -0.083, [-0.15, 0.0], val_hard_delta_simultaneous_lo=0.0,
                    val_hard_changed=[0, 0], val_overall_delta_simultaneous_lo=-0.2)
    leaning = _cand(0.2, 0.033, [0.0, 0.1], 0.0, [-0.02, 0.02], val_hard_delta_simultaneous_lo=0.0,
                    val_hard_changed=[1, 0], val_overall_delta_simultaneous_lo=-0.03)
    costly = dict(leaning, lr=0.3, val_overall_delta_simultaneous_lo=-0.1)
    assert closest_candidate([nothing, costly, leaning]) is leaning
    assert closest_candidate([nothing, costly]) is costly


def test_the_hard_criterion_keeps_a_candidate_exactly_at_the_reference_floor():
    """The floor is "val overall ≥ the reference's": a candidate equal to it (the reference configuration itself,
    whose score is the floor) is feasible, and here the best hard third among the feasible."""
    at_floor = [{"lr": 1.0, "val_overall": 0.90, "val_hard": 0.80}, {"lr": 2.0, "val_overall": 0.91, "val_hard": 0.70}]
    index, reason = select_candidate(at_floor, "hard", floor=0.90)
    assert index == 0 and "among 2 of 2 candidates" in reason


def test_choose_safe_needs_a_bound_strictly_above_zero_and_images_leaning_its_way():
    """hard_gain_holds: a simultaneous lower bound of exactly 0 (snap_zero makes near-zero bounds so) is no gain,
    and a passing sign test of changed images whose weighted sum leans the other way (val_hard_delta ≤ 0) is no
    evidence for the candidate."""
    from probe.selection import choose_safe, hard_gain_holds

    ref = _cand(0.01, 0.0, [0.0, 0.0], 0.0, [0.0, 0.0])
    at_zero = _cand(0.1, 0.02, [0.0, 0.04], 0.0, [0.0, 0.01])
    assert at_zero["val_hard_delta_simultaneous_lo"] == 0.0 and not hard_gain_holds(at_zero)
    assert choose_safe([ref, at_zero], 0)[:2] == (0, "no_safe_improvement")
    leans_down = _cand(0.2, -0.01, [0.005, 0.035], 0.0, [0.0, 0.01])
    assert not hard_gain_holds(leans_down)
    assert choose_safe([ref, leans_down], 0)[:2] == (0, "no_safe_improvement")
    assert hard_gain_holds(_cand(0.3, 0.02, [0.005, 0.035], 0.0, [0.0, 0.01]))


def test_choose_safe_takes_the_highest_lower_bound_not_the_highest_point_gain_then_grid_order():
    """Among candidates that qualify, the most certain gain wins (highest simultaneous lower bound of the hard-third
    gain), not the luckiest point estimate; equal bounds → the higher overall bound → the earlier in grid order."""
    from probe.selection import choose_safe

    ref = _cand(0.01, 0.0, [0.0, 0.0], 0.0, [0.0, 0.0])
    lucky = _cand(0.1, 0.09, [0.004, 0.17], 0.0, [0.0, 0.01])    # larger point gain, lower bound +0.4
    certain = _cand(0.2, 0.03, [0.02, 0.04], 0.0, [0.0, 0.01])   # smaller point gain, lower bound +2.0
    assert choose_safe([ref, lucky, certain], 0)[:2] == (2, "improved")
    twin = dict(certain, lr=0.3)
    assert choose_safe([ref, certain, twin], 0)[0] == 1 and choose_safe([ref, twin, certain], 0)[0] == 1
    better_overall = dict(certain, lr=0.4, val_overall_delta_simultaneous_lo=0.005)
    assert choose_safe([ref, certain, better_overall], 0)[0] == 2
