"""Hyper-parameter selection on the validation split (never test), with a stated reason.

Criteria (a registry, one entry per named criterion):

* ``overall`` (default): highest validation overall accuracy; ties → higher hard-third accuracy → grid order.
* ``hard``: the disparity-aware choice of MR² (Sec. 5): highest validation hard-third accuracy among candidates
  whose validation overall accuracy is ≥ the reference (ERM) run's; ties → higher overall → grid order. The hard
  third comes from the reference's validation per-class accuracy. Without a reference there is no ERM floor and
  no shared grouping: each candidate is scored on its own worst third of classes and no floor is applied (the
  reason says so). If no candidate reaches the floor, the one with the highest overall accuracy is chosen and the
  reason says so.

A candidate is a dict of hyper-parameters plus the scores ``val_overall`` and ``val_hard``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from .numbers import is_missing, percent, signed_points
from .uncertainty import DEFAULT_LEVEL, p_text, sign_test

__all__ = ["SELECTION_CRITERIA", "SelectionCriterion", "select_candidate", "describe_params", "VERDICTS",
           "choose_safe", "format_delta", "delta_sentence", "hard_gain_holds", "SIGN_TEST_ALPHA", "past_budget",
           "same_score", "within_budget", "SCORE_DECIMALS", "sign_p_alone"]

SCORE_KEYS = ("val_overall", "val_hard")
NOTE_KEYS = ("failed", "chosen", "reference")  # notes about a candidate, not hyper-parameters
# a validation score in words; n/a where it could not be computed (e.g. the hard third of a validation split that
# holds no image of its classes: null in the report)
_pct = partial(percent, absent="n/a", unit="%")


@dataclass(frozen=True)
class SelectionCriterion:
    """A named selection rule: ``choose(candidates, floor) -> (index, reason)``."""

    name: str
    choose: Callable[[list[dict], float | None], tuple[int, str]]


def describe_params(candidate: dict) -> str:
    """``lr=0.01, weight_decay=0.0001, cbar=2`` (score keys and notes left out)."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in candidate.items()
                     if k not in SCORE_KEYS and k not in NOTE_KEYS and not k.startswith("val_"))


# Scores are rounded to this many decimals before they are ranked or compared: a balanced accuracy is a mean of
# per-class fractions, and two equal ones summed in another order differ in the last bit (78/120 read
# 0.6499999999999999 against 0.65, and the rounding, not the documented tie-break, chose; a new-user round).
SCORE_DECIMALS = 12


def _score(x: float | None) -> float:
    """A score to rank by: a missing one below every real one, rounded to ``SCORE_DECIMALS``."""
    return -math.inf if is_missing(x) else round(x, SCORE_DECIMALS)


def same_score(a: float | None, b: float | None) -> bool:
    """Whether two scores are one, as ranking compares them (:data:`SCORE_DECIMALS`): the one definition of a tie
    (the worst class's ties, ``probe.report``, use it too)."""
    return _score(a) == _score(b)


def past_budget(difference: float, budget: float) -> bool:
    """Whether a difference (a fraction) lies below −``budget`` (a fraction), compared as scores are (0.57 − 0.60 is
    −0.030000000000000027, past a budget of exactly 3 pt unrounded; a review)."""
    return _score(difference) < _score(-budget)


def within_budget(c: dict, max_overall_drop: float) -> bool:
    """Whether a candidate's simultaneous lower bound of its overall difference is at or above −``max_overall_drop``,
    compared as scores are (0.57 − 0.58 is −0.010000000000000009, past a budget of exactly 1 pt; a review)."""
    return not past_budget(c["val_overall_delta_simultaneous_lo"], max_overall_drop)


def _best(candidates: list[dict], indices: list[int], primary: str, secondary: str) -> int:
    # max over (primary, secondary, -index): grid order breaks exact ties deterministically.
    return max(indices, key=lambda i: (_score(candidates[i][primary]), _score(candidates[i][secondary]), -i))


def _choose_overall(candidates: list[dict], floor: float | None) -> tuple[int, str]:
    index = _best(candidates, list(range(len(candidates))), "val_overall", "val_hard")
    c = candidates[index]
    if len(candidates) == 1:
        return index, f"Single candidate ({describe_params(c)}): nothing to select; val overall {_pct(c['val_overall'])}."
    runner = max(_score(candidates[i]["val_overall"]) for i in range(len(candidates)) if i != index)
    tie = " (tied on overall; the higher val hard-third accuracy, then grid order, decided)" \
        if runner == _score(c["val_overall"]) else ""
    return index, (
        f"Criterion 'overall': {describe_params(c)} has the highest validation overall accuracy "
        f"({_pct(c['val_overall'])}, next best {_pct(runner)}) of {len(candidates)} candidates{tie}; "
        f"its val hard-third accuracy is {_pct(c['val_hard'])} (its own thirds, ranked on these validation images: "
        "a reference run's thirds, where the report shows them, can differ)."
    )


def _choose_hard(candidates: list[dict], floor: float | None) -> tuple[int, str]:
    every = list(range(len(candidates)))
    if floor is None:
        index = _best(candidates, every, "val_hard", "val_overall")
        c = candidates[index]
        return index, (
            f"Criterion 'hard' without a reference (ERM) run: no overall-accuracy floor applied and each "
            f"candidate scored on its own worst third of classes; {describe_params(c)} has the highest "
            f"val hard-third accuracy ({_pct(c['val_hard'])}) of {len(candidates)} candidates, "
            f"val overall {_pct(c['val_overall'])}."
        )
    feasible = [i for i in every if _score(candidates[i]["val_overall"]) >= _score(floor)]
    if not feasible:
        index = _best(candidates, every, "val_overall", "val_hard")
        c = candidates[index]
        return index, (
            f"Criterion 'hard': no candidate reached the reference (ERM) val overall {_pct(floor)}; fell back "
            f"to the highest val overall, {describe_params(c)} ({_pct(c['val_overall'])}, hard third "
            f"{_pct(c['val_hard'])})."
        )
    index = _best(candidates, feasible, "val_hard", "val_overall")
    c = candidates[index]
    return index, (
        f"Criterion 'hard': {describe_params(c)} has the highest val hard-third accuracy "
        f"({_pct(c['val_hard'])}) among {len(feasible)} of {len(candidates)} candidates whose val overall is "
        f">= the reference (ERM) run's {_pct(floor)} (its val overall {_pct(c['val_overall'])}); hard third from "
        f"the reference's validation per-class accuracy."
    )


SELECTION_CRITERIA: dict[str, SelectionCriterion] = {
    "overall": SelectionCriterion("overall", _choose_overall),
    "hard": SelectionCriterion("hard", _choose_hard),
}


def select_candidate(candidates: list[dict], criterion: str = "overall", *,
                     floor: float | None = None) -> tuple[int, str]:
    """Pick one candidate by a named criterion.

    Args:
        candidates: dicts with hyper-parameters and ``val_overall`` / ``val_hard`` in [0, 1], in grid order.
        criterion: a key of ``SELECTION_CRITERIA``.
        floor: the reference (ERM) run's validation overall accuracy (``hard`` only); ``None`` without one.

    Returns:
        ``(index into candidates, reason in words)``.
    """
    if criterion not in SELECTION_CRITERIA:
        raise ValueError(f"Unknown selection criterion {criterion!r}; accepted: {', '.join(SELECTION_CRITERIA)}.")
    if not candidates:
        raise ValueError("select_candidate needs at least one candidate, got none.")
    for c in candidates:
        missing = [k for k in SCORE_KEYS if k not in c]
        if missing:
            raise KeyError(f"candidate {c} lacks score keys {missing}.")
    return SELECTION_CRITERIA[criterion].choose(candidates, floor)


# -- the disparity-aware decision under uncertainty ---------------------------------------------------------
VERDICTS = ("improved", "no_safe_improvement", "not_applicable")


# An improvement also needs the hard classes' images that the two runs score differently to lean its way: a paired
# sign-flip test at this level (Bonferroni over the candidates), the same 5 % as the bootstrap bounds' two tails.
SIGN_TEST_ALPHA = round(1.0 - DEFAULT_LEVEL, 12)


def hard_gain_holds(c: dict) -> bool:
    """Whether a scored candidate's hard-third gain is evidence (the first and last conditions of
    :func:`choose_safe`): its simultaneous lower bound is above 0 and its changed hard-class images lean its way
    (:func:`_images_lean`)."""
    return c["val_hard_delta_simultaneous_lo"] > 0 and _images_lean(c)


def _images_lean(c: dict) -> bool:
    """Whether a scored candidate's changed hard-class images lean its way beyond chance: weighed as the hard-third
    score weighs them (1/n of their class half), they sum above 0, i.e. its hard-third difference is positive
    (counted equally, 4 fixed against 6 broken vetoed a +42.5-point macro gain; a review), and their sign-flip test,
    adjusted over the candidates, p ≤ ``SIGN_TEST_ALPHA`` (no p: no image changed)."""
    p_value = c.get("val_hard_sign_p")
    return _leans(c) and p_value is not None and p_value <= SIGN_TEST_ALPHA


def _leans(c: dict) -> bool:
    """Whether a candidate's changed hard-class images, weighed as the hard-third score weighs them, sum above 0:
    its hard-third difference is positive."""
    return (c.get("val_hard_delta") or 0) > 0


def sign_p_alone(c: dict) -> float:
    """A scored candidate's test of its changed hard-class images before Bonferroni: ``val_hard_sign_p_alone``, or
    in a report from before it the exact sign test of its counts, what that report's decision ran."""
    alone = c.get("val_hard_sign_p_alone")
    return alone if alone is not None else sign_test(*(c.get("val_hard_changed") or (0, 0)))


def sign_test_reachable(hard_images: int | None, tests: int) -> str:
    """An empty string when the adjusted sign-flip test can pass with ``hard_images`` validation images of the hard
    classes, else a sentence saying it cannot: even all of them fixed and none broken gives p = tests · 2 · 2⁻ⁿ,
    above ``SIGN_TEST_ALPHA`` below n = ⌈log₂(2 · tests / alpha)⌉ (8 images and 14 tests: p = 0.11). A new-user
    round on a 3-class set read "no safe improvement" as a near miss when no candidate could ever have passed."""
    if hard_images is None or tests == 0:  # no candidate changed an image: nothing for the test to weigh
        return ""
    if hard_images == 0:  # each class's images split in two, one half ranking, the other measuring
        return ("No validation image of the hard classes was left to measure them on once the thirds were ranked "
                "(the decision ranks them on one half of each class's validation images and measures the other: a "
                "class needs 2), so no candidate could show a gain: give validation more images (or leave --cv on). ")
    best = min(1.0, tests * sign_test(hard_images, 0))
    if best <= SIGN_TEST_ALPHA:
        return ""
    needed = math.ceil(math.log2(2 * tests / SIGN_TEST_ALPHA))
    return (f"With {hard_images} validation image{'s' if hard_images != 1 else ''} of the hard classes no candidate "
            f"could pass the sign-flip test: all of them fixed and none broken gives p = {best:.2g} after Bonferroni over "
            f"{tests}; it takes at least {needed} (more validation images of the hard classes, or fewer "
            "candidates). ")


def _bound_key(c: dict) -> tuple[float, float]:
    return c["val_hard_delta_simultaneous_lo"], c["val_overall_delta_simultaneous_lo"]


def choose_safe(candidates: list[dict], reference_index: int, max_overall_drop: float = 0.0,
                overall: str = "overall") -> tuple[int, str, str]:
    """The disparity-aware choice with paired uncertainty, corrected for choosing among several candidates.

    A candidate is an improvement over the reference configuration only when, on validation: the simultaneous
    lower bound of its hard-third gain is > 0, that of its overall difference is ≥ −``max_overall_drop``
    (:func:`probe.uncertainty.simultaneous_lower_bounds`: one-sided 97.5 % bounds that hold together over every
    candidate's two differences, so trying 24 settings does not give 24 chances to be lucky), **and** the hard
    classes' images that the two runs score differently favour it beyond chance (a paired sign-flip test, each image
    weighing 1/n of its class half as the hard-third score does, the exact sign test where the halves are equal;
    Bonferroni-adjusted over the candidates, p ≤ ``SIGN_TEST_ALPHA``: 4 images fixed and none broken is p = 0.125,
    not evidence, however tight a bootstrap makes it look). Among improvements the one with the highest
    bound of the hard-third gain wins (the most certain gain, not the luckiest point estimate); ties → higher
    bound on overall → grid order. Without an improvement the reference configuration is kept.

    Args:
        candidates: dicts with hyper-parameters, ``val_hard_delta``, ``val_overall_delta`` and their 95 %
            intervals ``val_*_delta_ci`` ([lo, hi], each on its own; fractions), the simultaneous lower bounds
            ``val_hard_delta_simultaneous_lo`` and ``val_overall_delta_simultaneous_lo``, ``val_hard_changed``
            ([fixed, broken]: hard-class images the candidate scores higher / lower than the reference) and
            ``val_hard_sign_p`` (the adjusted sign-flip test), in grid order.
        reference_index: the candidate that is the reference (ERM) configuration.
        max_overall_drop: accuracy (a fraction, 0.01 = 1 point) the user will trade on overall for the hard third.
        overall: what the reason calls the overall score ("overall", or "balanced" where balanced accuracy is it:
            the reason said "without costing overall accuracy" beside a verdict of balanced accuracy; a new-user
            round).

    Returns:
        ``(index, verdict, reason)``, verdict ``"improved"`` or ``"no_safe_improvement"``.
    """
    if not 0 <= reference_index < len(candidates):
        raise ValueError(f"reference_index {reference_index} is not a candidate index (0..{len(candidates) - 1}).")
    if max_overall_drop < 0:
        raise ValueError(f"max_overall_drop must be >= 0, got {max_overall_drop}.")
    qualifying = [i for i, c in enumerate(candidates) if i != reference_index and not c.get("failed")
                  and hard_gain_holds(c) and within_budget(c, max_overall_drop)]
    budget, tried = f"{100 * max_overall_drop:g} pt", len(candidates) - 1
    floor = f"{(-100 * max_overall_drop) or 0.0:g} pt"  # "-0.5 pt", and "0 pt" rather than "-0 pt"
    fitted = [c for i, c in enumerate(candidates) if i != reference_index and not c.get("failed")]
    m = len(fitted)  # the simultaneous bounds' family; the sign test's counts distinct candidates only
    tests = next((c["val_hard_sign_family"] for c in fitted if c.get("val_hard_sign_family") is not None), m)
    family = (f"the {m}" if tests == m else "the one of them that scores otherwise than the reference" if tests == 1
              else "none: every one scores as the reference" if tests == 0  # "over the 0 of them" (a review)
              else f"the {tests} of them that score otherwise than the reference and each other")
    if not qualifying:
        cost = (f"within the {overall} budget of {budget}" if max_overall_drop > 0
                else f"without costing {overall} accuracy")
        return reference_index, "no_safe_improvement", (
            f"No setting raised the hard classes beyond noise {cost}: "
            f"none of {tried} candidates had a lower bound of its val hard-third gain above 0 and one of its "
            f"{overall} difference at or above {floor} (one-sided bounds holding together at 97.5 % over the {m} "
            f"that fitted), with "
            f"its changed hard-class images leaning its way (sign-flip test p ≤ {SIGN_TEST_ALPHA:g}, Bonferroni over "
            f"{family}). {sign_test_reachable(fitted[0].get('val_hard_images') if fitted else None, tests)}"
            f"{_closest_miss(candidates, reference_index, max_overall_drop, m, family, overall)}This run "
            f"keeps the reference configuration ({describe_params(candidates[reference_index])})."
        )
    index = max(qualifying, key=lambda i: (*_bound_key(candidates[i]), -i))
    c = candidates[index]
    fixed, broken = c["val_hard_changed"]
    return index, "improved", (
        f"{describe_params(c)} raised the val hard third by {format_delta(c['val_hard_delta'], c['val_hard_delta_ci'])} "
        f"at {overall} {format_delta(c['val_overall_delta'], c['val_overall_delta_ci'])} (budget {budget}); lower "
        f"bounds holding together over the {m} candidate{'s' * (m != 1)} that fitted: hard "
        f"{signed_points(c['val_hard_delta_simultaneous_lo'])} pt, {overall} "
        f"{signed_points(c['val_overall_delta_simultaneous_lo'])} pt; hard-class images {fixed} fixed, "
        f"{broken} broken, weighed by class (sign-flip test {p_text(c['val_hard_sign_p'], max(tests, 1))}, "
        f"Bonferroni over {family}). "
        f"{len(qualifying)} of {tried} candidates qualified and it has the highest lower bound of the hard-third gain."
    )


def _at_cost(max_overall_drop: float, metric: str) -> str:
    """How much of the overall score a change may cost, as the verdict sentence says it: nothing, or the budget."""
    if max_overall_drop <= 0:
        return f"without costing {metric} accuracy"
    return f"within the {metric}-accuracy budget of {100 * max_overall_drop:g} pt"


def _closest_miss(candidates: list[dict], reference_index: int, max_overall_drop: float, m: int,
                  family: str, overall: str = "overall") -> str:
    """Which test held back the candidates that came closest (a sentence, or "" when none passed a bound): a
    candidate past both bounds whose changed hard-class images did not lean its way clearly enough reads as
    refused for nothing without it (found by a new-user round)."""
    fitted = [c for i, c in enumerate(candidates) if i != reference_index and not c.get("failed")]
    past_bounds = [c for c in fitted if c["val_hard_delta_simultaneous_lo"] > 0
                   and within_budget(c, max_overall_drop)]
    if past_bounds:
        c = max(past_bounds, key=_bound_key)
        fixed, broken = c["val_hard_changed"]
        return (f"{len(past_bounds)} passed both bounds but not the test of the hard-class images they change; the "
                f"best, {describe_params(c)}, {_moved(c, overall)}, fixing {fixed} and breaking {broken} of those "
                f"images (paired sign-flip test, each image weighed by class, p = "
                f"{sign_p_alone(c):.2g} alone, {c['val_hard_sign_p']:.2g} after Bonferroni over {family}). ")
    hard_only = [c for c in fitted if c["val_hard_delta_simultaneous_lo"] > 0]
    if hard_only:
        c = max(hard_only, key=lambda c: c["val_overall_delta_simultaneous_lo"])
        beyond = f"beyond the budget of {100 * max_overall_drop:g} pt" if max_overall_drop > 0 else "(no budget)"
        return (f"{len(hard_only)} passed the hard-third bound but cost {overall} accuracy {beyond}; the "
                f"closest, {describe_params(c)}, {_moved(c, overall)}; its simultaneous {overall} lower bound is "
                f"{signed_points(c['val_overall_delta_simultaneous_lo'])} pt. ")
    c = closest_candidate(fitted)
    if c is None:
        return ""
    bound = c["val_hard_delta_simultaneous_lo"]
    if bound is None or not math.isfinite(bound):
        return f"The closest, {describe_params(c)}, {_moved(c, overall)}. "
    # closest by what decides: the hard-third lower bound, not the point estimates (a dashboard-only round found
    # another candidate better on both of those and read "closest" as wrong)
    return (f"The closest (the highest hard-third lower bound over the {m}, {signed_points(bound)} pt), "
            f"{describe_params(c)}, {_moved(c, overall)}; {_held_back(c, max_overall_drop, overall)}. ")


def _moved(c: dict, overall: str = "overall") -> str:
    """What a candidate did on the selection samples, each difference with its own 95 % interval: "moved the val
    hard third +1.1 pt [-0.6, +3.3] (within noise) at overall -0.5 pt [-1.3, +0.3] (within noise)". The closest
    candidates held back by a bound or by the sign test were named with a bound or image counts alone, no
    difference: "the closest, eta=0.03, has an overall bound of -2.2 pt", its hard-third gain unsaid (a decision
    round)."""
    hard, change = (format_delta(c[f"val_{k}_delta"], c[f"val_{k}_delta_ci"]) for k in ("hard", "overall"))
    return f"moved the val hard third {hard} at {overall} {change}"


def _held_back(c: dict, max_overall_drop: float, overall: str) -> str:
    """Which of the decision's tests a candidate failed, in words: "no safe improvement" beside a hard-third gain of
    +6.2 pt did not say whether a bound or the sign test refused it (a new-user round)."""
    # the simultaneous bounds (over every candidate) are not the intervals printed beside the deltas (one
    # candidate's own): said so, two "lower bounds" read as a contradiction (a new-user round)
    failed = [f"its simultaneous hard-third lower bound, {signed_points(c['val_hard_delta_simultaneous_lo'])} pt, is "
              "not above 0"]
    if not within_budget(c, max_overall_drop):
        failed.append(f"its simultaneous {overall} lower bound, {signed_points(c['val_overall_delta_simultaneous_lo'])}"
                      f" pt, is below {signed_points(-max_overall_drop)} pt")
    if not _images_lean(c):
        fixed, broken = c.get("val_hard_changed") or (0, 0)
        p_value = c.get("val_hard_sign_p")
        shown = "" if p_value is None else f": {p_text(p_value, c.get('val_hard_sign_family') or 1)} after Bonferroni"
        failed.append(f"its changed hard-class images ({fixed} fixed, {broken} broken, weighed by class{shown}) do not "
                      "lean its way beyond chance")
    return "held back as " + "; ".join(failed)


def scores_as_reference(candidate: dict) -> bool:
    """Whether a candidate scored exactly as the reference on every selection sample: zero differences with
    zero-width intervals (its paired bootstrap resamples only zeros; e.g. group DRO with a tiny η)."""
    return not any([*candidate["val_hard_delta_ci"], *(candidate.get("val_overall_delta_ci") or [])])


def closest_candidate(candidates: list[dict]) -> dict | None:
    """Of ``candidates`` (fitted, not the reference; frontier entries), the one nearest to being chosen: the highest
    lower bound of the hard-third gain (the simultaneous one; its own interval's in reports from before it) among
    those that score differently from the reference (one that scores exactly as it would always be "closest", with
    nothing to say about a fix); None when there is none."""
    differ = [c for c in candidates if c.get("val_hard_delta_ci") and not scores_as_reference(c)]
    bound = (lambda c: c["val_hard_delta_ci"][0] if c.get("val_hard_delta_simultaneous_lo") is None
             else c["val_hard_delta_simultaneous_lo"])

    def nearness(c: dict) -> tuple:
        # ties on the bound (common: many at +0.0) go to one whose hard-class images lean its way, then to the
        # better overall bound, then to the more of them fixed, then grid order: a candidate that changed no hard
        # image at -8.3 pt overall was named beside one at +3.3 hard for nothing (a new-user round)
        fixed, broken = c.get("val_hard_changed") or (0, 0)
        return (_score(bound(c)), _leans(c), _score(c.get("val_overall_delta_simultaneous_lo")), fixed - broken)

    return max(differ, key=nearness, default=None)


def format_delta(delta: float | None, interval) -> str:
    """``+2.1 pt [+1.2, +3.0]`` from fractions; ``(within noise)`` appended when the interval contains 0, ``(no
    change)`` where it is the point 0 (no image of them scored differently: "+0.0 pt [+0.0, +0.0] (within noise)"
    beside "The runs agree on every one of the 449 test images" read as a contradiction, and the compare table said
    "no change"; a new-user round); for a difference that cannot be computed (no image of those classes among the
    images compared) it says so."""
    if delta is None or not math.isfinite(delta):
        return "not measured (no image of these classes here)"
    lo, hi = interval
    text = f"{signed_points(delta)} pt [{signed_points(lo)}, {signed_points(hi)}]"
    if delta == lo == hi == 0:
        return text + " (no change)"
    return text + (" (within noise)" if lo <= 0 <= hi else "")


def delta_sentence(deltas: dict[str, dict[str, float]], verdict: str | None = None,
                   overall_metric: str = "accuracy", max_overall_drop: float = 0.0) -> str:
    """One sentence for a user: the hard-third and overall differences with their intervals.

    ``deltas`` has ``hard``, ``overall`` and ``balanced`` entries ``{"delta", "lo", "hi"}`` (fractions), as
    :meth:`probe.uncertainty.Bootstrap.paired_delta` returns; ``overall_metric`` says which of the last two to give;
    ``max_overall_drop`` is the budget a ``no_safe_improvement`` verdict was reached under.
    """
    balanced = overall_metric == "balanced"
    if verdict == "no_safe_improvement":
        # the words after the verdict's name ("No safe improvement: this run equals ..."), where every reader shows
        # them: it read "No safe improvement: No setting raised ...", a capital after the colon and the verdict twice
        # (a dashboard round)
        return (f"this run equals the reference (ERM) configuration, as no setting raised the hard classes beyond "
                f"noise {_at_cost(max_overall_drop, 'balanced' if balanced else 'overall')}.")
    hard, overall = deltas["hard"], deltas["balanced" if balanced else "overall"]
    plain = deltas.get("overall")
    # beside a balanced gain, the accuracy over the images it may cost (an imbalanced test split: +3.8 balanced
    # with -3.0 over the images, never named; a consistency round)
    images = (f", accuracy over the images {format_delta(plain['delta'], (plain['lo'], plain['hi']))}"
              if balanced and plain is not None else "")
    return (f"Hard third {format_delta(hard['delta'], (hard['lo'], hard['hi']))}, "
            f"{'balanced accuracy' if balanced else 'overall'} "
            f"{format_delta(overall['delta'], (overall['lo'], overall['hi']))}{images}.")
