"""Compare two runs on the same classes: per-group and per-class test-accuracy deltas (other − base).

Both runs are scored on the **base** run's groups, so a method cannot look better by reshuffling which classes
count as hard; group accuracies are macro means of the seed-mean per-class test accuracies.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, Field, PositiveInt

from .groups import GROUP_NAMES, group_accuracy
from .metrics import nan_mean, worst_class
from .names import listed, repeated
from .numbers import fixed, percent, signed_points
from .predictions import AMBIGUOUS, BY_ROWS, PREDICTIONS_FILE, Matched, match_images, unmatched_reason
from .report import Calibration, FeatureSource, Num, Report, WorstClass, interval_text, loss_label, probe_label
from .report_text import (COMPARE_WIDTH, TERMINAL_CLASSES, column_parts, fits_alone, print_class_table,
                          text_console)
from .seed_spread import INDEPENDENT, SAME_SEEDS, SPREAD_METRICS, add_seed_spreads, pairing_words
from .selection import SIGN_TEST_ALPHA, past_budget
from .uncertainty import interval_or_none, intervals_or_none, observed_class_accuracy, own_intervals, p_text

__all__ = ["Comparison", "CompareMetric", "CompareClass", "CompareCost", "CompareDiscordant", "compare_reports",
           "compare_on_images", "check_same_classes", "check_same_images", "first_class_difference", "metric_title",
           "format_comparison", "discordance", "discordance_sentence", "comparison_facts", "metric_rows", "class_rows",
           "evidence", "group_evidence", "metric_evidence", "metric_discordance", "beyond_noise",
           "lost_beyond_budget", "held_back_sentence", "paired_seeds", "class_evidence", "lost_on_test",
           "METRIC_HEADER", "CLASS_HEADER", "itself_warning", "retraining_sentence", "SHARED_NOTE", "worst_class_words"]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


_BEYOND = ("the 95 % interval leaves out 0 and the images it counts lean that way beyond chance (their differences' "
           "paired sign-flip test, p ≤ 0.05; McNemar's exact test with one seed): 3 images all fixed resample to "
           "[+100, +100] and are p = 0.25 (a statistics review); null without intervals")


_OWN_CI = ("95 % interval of this run's own accuracy, as its report computes it: Wilson's for overall accuracy and a "
           "class (for the worst class, that class's), from each class's Jeffreys posterior for balanced accuracy and "
           "a third (probe.uncertainty.group_intervals); null without predictions")


class CompareMetric(BaseModel):
    base: Num
    other: Num
    base_ci: Optional[list[Num]] = Field(None, description=_OWN_CI)
    other_ci: Optional[list[Num]] = Field(None, description=_OWN_CI)
    delta: Num = Field(..., description="other − base")
    delta_ci: Optional[list[Num]] = Field(None, description="95 % paired bootstrap interval of delta over the "
                                          "test samples (when both runs stored their test predictions)")
    changed: Optional[list[int]] = Field(None, description="[other better, base better]: the test images it counts "
                                         "that the runs score differently, counted, not weighed: with several seeds "
                                         "an image a third of a seed better counts as one, so these can lean "
                                         "against delta, which weighs them (overall, balanced accuracy and the "
                                         "thirds; the worst class's where both runs' worst class is the same class, "
                                         "that class's; null where they are two classes, whose images are no pairs)")
    p_value: Optional[float] = Field(None, description="paired sign-flip test of those images' differences (exact on "
                                     "equal weights; a third of unequal classes by 20,000 draws past 16 images)")
    beyond_noise: Optional[bool] = Field(None, description=_BEYOND)
    seed_spread: Optional[float] = Field(None, description="half-width of the 95 % range of delta over retraining, "
                                         "from each run's per-seed values on the images compared (probe.seed_spread:"
                                         " t_{S−1}·sd(d)/√S of the per-seed differences d where both runs trained "
                                         "the same seeds, else Welch's t_ν·√(s_a²/S_a + s_b²/S_b): seed_pairing), "
                                         "which delta_ci, over the test images, leaves out; a "
                                         "warning names the metrics where it is the wider; null where a run has one "
                                         "seed, for the worst class, and on other images; 0 for runs of the same "
                                         "predictions, one probe")
    weighted: bool = Field(False, description="the test weighs each image 1/n of its class, as the metric does "
                           "(balanced accuracy and the thirds): 10 images better against 20 worse can then lean "
                           "the metric's way, which the views say beside the counts")


class CompareClass(BaseModel):
    index: int
    name: str
    group: Optional[str]
    base: Num
    other: Num
    base_ci: Optional[list[Num]] = Field(None, description=_OWN_CI)
    other_ci: Optional[list[Num]] = Field(None, description=_OWN_CI)
    delta: Num
    delta_ci: Optional[list[Num]] = None
    changed: Optional[list[int]] = Field(None, description="[other better, base better]: the class's test images "
                                         "the runs score differently")
    p_value: Optional[float] = Field(None, description="paired sign-flip test of those images' differences (exact on "
                                     "equal weights; a third of unequal classes by 20,000 draws past 16 images)")
    beyond_noise: Optional[bool] = Field(None, description=_BEYOND)


class CompareDiscordant(BaseModel):
    """The test images on which the two runs differ (seed-mean scores: an image one run gets right with more of
    its seeds than the other), and the exact paired sign-flip test of their differences (McNemar's exact test with
    one seed): with a handful of such images no interval can separate the runs, and this says how many there are."""

    images: int = Field(..., description="test images in the comparison")
    other_better: int = Field(..., description="images the other run gets right more often than the base run")
    base_better: int = Field(..., description="images the base run gets right more often than the other run")
    p_value: float = Field(..., description="two-sided exact paired sign-flip test of the images' score "
                           "differences (uncertainty.sign_flip_test; with one seed, the exact sign test of "
                           "other_better against base_better)")
    seeds: int = Field(1, ge=1, description="the most seeds either run scored each image with (1 in comparisons "
                       "made before it was kept)")
    seed_counts: Optional[list[PositiveInt]] = Field(
        None, min_length=2, max_length=2, description="[base, other]: each run's seeds (null in comparisons made "
        "before it was kept); where they differ the sentence names both")
    weighted: bool = Field(False, description="the test weighs each image 1/n of its class, as balanced accuracy "
                           "does (a verdict on overall_metric='balanced'); false: every image alike")


def discordance(base, other) -> CompareDiscordant:
    """:class:`CompareDiscordant` of two runs' :class:`probe.predictions.Predictions` of the same test images."""
    changed, p_value, _ = evidence(other.correct - base.correct, paired_seeds(base, other))
    return _discordant(base, other, changed, p_value)


def _discordant(base, other, changed: list[int], p_value: float, weighted: bool = False) -> CompareDiscordant:
    """:class:`CompareDiscordant` of the test images' ``changed`` counts and their test (:func:`evidence`)."""
    return CompareDiscordant(images=int(base.labels.size), other_better=changed[0], base_better=changed[1],
                             p_value=p_value, seeds=max(len(base.predicted), len(other.predicted)),
                             seed_counts=[len(base.predicted), len(other.predicted)], weighted=weighted)


def metric_evidence(base, other, metric: str) -> tuple[list[int], float, float]:
    """:func:`evidence` of every test image, weighed as the overall ``metric`` weighs them: alike for accuracy, each
    1/n of its class for balanced accuracy (a balanced gain's verdict cited the unweighted test, p = 7e-05 for
    the reference; a consistency round)."""
    if metric == "balanced":
        return group_evidence(base, other, np.unique(base.labels).tolist())
    return evidence(other.correct - base.correct, paired_seeds(base, other))


def metric_discordance(base, other, metric: str, changed: list[int], p_value: float) -> CompareDiscordant:
    """:class:`CompareDiscordant` of the test of the overall ``metric`` (:func:`metric_evidence`'s ``changed`` and
    ``p_value``): what a verdict on ``metric`` cites, weighted for balanced accuracy."""
    return _discordant(base, other, changed, p_value, weighted=metric == "balanced")


def paired_seeds(base, other) -> int:
    """The grid of two runs' seed-mean score differences: multiples of 1/lcm of their seed counts (2 seeds against
    3 differ by sixths, which a grid of thirds rounded, p = 1 for 40 images all one way; a review)."""
    return math.lcm(len(base.predicted), len(other.predicted))


def evidence(diff: np.ndarray, seeds: int, labels: np.ndarray | None = None) -> tuple[list[int], float, float]:
    """Of per-image score differences (other − base, seed means, on the 1/``seeds`` grid): [images other better,
    base better], the paired sign-flip p-value of their mean (``probe.uncertainty.sign_flip_test``) and their
    (weighted) sum. With ``labels`` the mean is the macro mean over their classes, what a third's interval
    estimates: each image weighs 1/n of its class (a 5-image class as much as a 200-image one; a review)."""
    from .uncertainty import sign_flip_test

    weights = None
    if labels is not None:
        _, where, counts = np.unique(labels, return_inverse=True, return_counts=True)
        weights = 1.0 / counts[where]
    total = float(diff.sum() if weights is None else (diff * weights).sum())
    return [int((diff > 0).sum()), int((diff < 0).sum())], sign_flip_test(diff, seeds, weights), total


def _class_evidence(by_class: list[np.ndarray], seeds: int) -> list[tuple[list[int], float, float]]:
    """:func:`evidence` of each class's differences. The counts and the test depend on the differences alone, not
    their order, so a class with another's differences gets that class's: at 1,000 classes of 10 images a few
    dozen patterns recur, and testing each class anew (~0.1 ms) was a tenth of a comparison. The sum is each
    class's own (a float sum in its own order, as :func:`evidence` takes it)."""
    tested: dict[bytes, tuple[list[int], float]] = {}
    out = []
    for diff in by_class:
        key = np.sort(diff).tobytes()
        if key not in tested:
            tested[key] = evidence(diff, seeds)[:2]
        changed, p_value = tested[key]
        out.append((list(changed), p_value, float(diff.sum())))
    return out


def class_evidence(base, other, intervals) -> list[tuple[list[int], float, float, bool | None]]:
    """Each class's ([other better, base better], p_value, summed difference, :func:`beyond_noise`) of two runs'
    :class:`probe.predictions.Predictions`, ``intervals`` (K, 2) its paired 95 % intervals: what compare's class
    rows and a run's verdict (:func:`lost_on_test`) read, one rule for both."""
    diff, num_classes = other.correct - base.correct, len(intervals)
    order = np.argsort(base.labels, kind="stable")
    by_class = np.split(diff[order], np.cumsum(np.bincount(base.labels, minlength=num_classes))[:-1])
    return [(changed, p_value, total, beyond_noise(list(interval), p_value, total))
            for interval, (changed, p_value, total) in zip(intervals, _class_evidence(by_class, paired_seeds(base,
                                                                                                          other)))]


CHANCE_SHARE = 0.025  # one tail of a 95 % interval: the classes expected to leave out 0 each way by chance alone


def lost_on_test(base, other, groups: dict[str, list[int]], delta: dict, intervals, class_names: list[str],
                 shown: int = 5) -> str:
    """What a run's verdict adds where, on test against its reference (``base``; ``delta`` and ``intervals`` from
    :func:`probe.predictions.paired_test_intervals`), the easy or medium third or a class lost beyond noise by
    compare's rule (:func:`beyond_noise`, :func:`group_evidence`, :func:`class_evidence`), else "". The hard third
    is the verdict's own first clause. An improved run's report gave its hard, balanced and overall deltas and hid a
    class 9 points down beyond noise that ``mr2probe compare`` of the same runs listed (a new-user round)."""
    said = []
    for g in ("easy", "medium"):
        interval = [delta[g]["lo"], delta[g]["hi"]]
        if interval[1] < 0 and beyond_noise(interval, *group_evidence(base, other, groups.get(g, []))[1:]):
            said.append(f"the {g} third {signed_points(delta[g]['delta'])} pt")
    k = len(class_names)
    change = (observed_class_accuracy(other.correct, other.labels, k)
              - observed_class_accuracy(base.correct, base.labels, k))
    lost = sorted((change[i], i) for i, (*_, beyond) in enumerate(class_evidence(base, other, intervals))
                  if beyond and intervals[i][1] < 0)
    if lost:
        names = listed([f"{class_names[i]} {signed_points(d)} pt" for d, i in lost], shown)
        # with many classes some lose by chance: a verdict naming 12 of 1,000 classes as lost needs the count that
        # noise alone gives beside it, as compare's class line says (classes_beyond_noise)
        said.append(f"{len(lost)} class{'es' * (len(lost) != 1)} ({names}; by chance alone about "
                    f"{CHANCE_SHARE * k:.2g} of {k} would leave out 0 this way)")
    if not said:
        return ""
    return (f" Lost beyond noise on test against the reference: {'; '.join(said)} (mr2probe compare of the two runs "
            "lists every class).")


def group_evidence(base, other, classes: list[int]) -> tuple[list[int], float, float]:
    """:func:`evidence` of the test images of ``classes`` (a third), weighed as their macro mean, of two runs'
    :class:`probe.predictions.Predictions`: what compare's third rows and a run's ``test_check`` read."""
    mask = np.isin(base.labels, classes)
    return evidence((other.correct - base.correct)[mask], paired_seeds(base, other), base.labels[mask])


def lost_beyond_budget(interval: list | None, p_value: float, total: float, budget: float) -> bool:
    """Whether a difference's 95 % interval lies wholly below ``-budget`` (a fraction) with its images leaning
    that way beyond chance: an overall cost past what the decision was allowed, beyond noise."""
    if interval is None or not all(v is not None and math.isfinite(v) for v in interval):
        return False
    return past_budget(interval[1], budget) and total < 0 and p_value <= SIGN_TEST_ALPHA


def beyond_noise(interval: list | None, p_value: float, total: float) -> bool | None:
    """The rule of ``beyond_noise``: the interval leaves out 0, the images lean its way (their summed difference has
    its sign: a macro mean and an image sum can part) and their sign-flip test passes; None without an interval."""
    if interval is None or not all(v is not None and math.isfinite(v) for v in interval):
        return None  # no interval, or none that says anything (a third without test images: NaN; a review)
    lo, hi = interval
    return not lo <= 0 <= hi and (total > 0) == (lo > 0) and p_value <= SIGN_TEST_ALPHA


def held_back_sentence(label: str, interval: list | None, changed: list[int], p_value: float,
                       beyond: bool | None) -> str:
    """What a verdict adds where an interval leaves out 0 but its images do not say the same (``beyond`` false,
    :func:`beyond_noise`), else "": a percentile bootstrap of a few differing images is too narrow (3 of 15 all one
    way: [-33, -7] pt), and the test of those images is the one that holds, so the sentence must not say both."""
    if beyond is not False or interval[0] <= 0 <= interval[1]:  # beyond is None without finite bounds
        return ""
    if p_value > SIGN_TEST_ALPHA:
        why = "only because so few images differ"
    else:  # the test passes the other way: the class-mean interval and the images' sum part (a review)
        why = "but its images lean the other way"
    return (f" The {label} interval leaves out 0 {why} (sign-flip test of its {sum(changed):,} differing images "
            f"{p_text(p_value)}): within noise.")


def _too_few_to_tell(d: CompareDiscordant) -> bool:
    """Whether the test of the images two runs score differently cannot tell them apart (p > α): what the
    verdict sentence says, and what it weighs an interval that leaves out 0 against."""
    return d.p_value > SIGN_TEST_ALPHA


def discordance_sentence(d: CompareDiscordant, other: str = "other", base: str = "base",
                         images: str = "test images") -> str:
    """e.g. "The runs differ on 3 of 15 test images (other better on 0, base on 3): too few or too even to tell
    them apart (exact sign test p = 0.25)."; ``other`` and ``base`` name the two runs, ``images`` what they were
    scored on ("images" for another cache's split)."""
    differ = d.other_better + d.base_better
    if differ == 0:
        return f"The runs agree on every one of the {d.images:,} {images}."
    # With several seeds an image is better for the run more of whose seeds get it right: 1 image better with
    # 2 of 3 seeds is +0.84 pt of 79, not 1/79 (a new-user round read the two as a contradiction).
    by = f", by the share of their {d.seeds} seeds right on each" if d.seeds > 1 else ""
    if d.seed_counts is not None and d.seed_counts[0] != d.seed_counts[1]:  # "their 3 seeds" where one had 2
        by = (f", by the share of each run's seeds right on each ({other} {d.seed_counts[1]}, "
              f"{base} {d.seed_counts[0]})")
    head = (f"The runs differ on {differ:,} of {d.images:,} {images} ({other} better on {d.other_better:,}, "
            f"{base} on {d.base_better:,}{by})")
    test = "exact sign test" if d.seeds == 1 else "exact paired sign-flip test of the seed means"
    if d.weighted:
        test = "paired sign-flip test, each image weighed 1/n of its class as balanced accuracy weighs it,"
    if _too_few_to_tell(d):
        return f"{head}: too few or too even to tell them apart ({test} {p_text(d.p_value)})."
    return f"{head}; {test} {p_text(d.p_value)}."


class CompareGrouping(BaseModel):
    source: Literal["base"] = "base"
    groups: dict[str, list[int]]
    note: str


class CompareCost(BaseModel):
    """The wall time of the two runs (their reports' ``timing``) and other / base: what the other method costs.
    ``comparable`` is false when they ran on different devices or thread counts (the ratio then mixes both)."""

    base_seconds: float
    other_seconds: float
    ratio: float = Field(..., description="other_seconds / base_seconds")
    comparable: bool
    setting: str = Field(..., description="where each ran, e.g. 'cpu, 2 threads' or 'cpu, 1 thread vs cuda, 1 "
                         "thread'")


def _cost(base: Report, other: Report) -> CompareCost | None:
    """:class:`CompareCost` of two reports, or None when either lacks ``timing`` (written before it)."""
    if base.timing is None or other.timing is None:
        return None
    a, b = base.timing, other.timing
    where = [a.setting, b.setting]
    comparable = where[0] == where[1]
    return CompareCost(base_seconds=a.total_seconds, other_seconds=b.total_seconds,
                       ratio=b.total_seconds / max(a.total_seconds, 1e-9), comparable=comparable,
                       setting=where[0] if comparable else " vs ".join(where))


class Comparison(BaseModel):
    """:func:`compare_reports` (``mr2probe compare --json``, ``GET /api/compare``): both runs scored on the base
    run's groups; metrics are overall, balanced, easy, medium, hard (fractions) and worst_class."""

    base: Optional[str]
    other: Optional[str]
    grouping: CompareGrouping
    metrics: dict[str, CompareMetric]
    per_class: list[CompareClass]
    verdict_text: Optional[str] = Field(None, description="the hard-third and overall deltas with their "
                                        "intervals in one sentence ('within noise' where an interval holds 0), "
                                        "then the images the runs differ on (discordance_sentence)")
    discordant: Optional[CompareDiscordant] = Field(None, description="the test images the runs differ on, with "
                                                    "the sign test of the overall metric the verdict names (each "
                                                    "image weighed 1/n of its class for balanced accuracy: "
                                                    "weighted), when both stored their predictions")
    cost: Optional[CompareCost] = Field(None, description="the two runs' wall times and their ratio (null when a "
                                        "report predates its timing)")
    features: Optional[str] = Field(None, description="each run's features where they differ (other caches: "
                                    "encoders, preprocessing or data); null when they match or a report lacks them")
    warnings: list[str] = Field(default_factory=list, description="what limits the comparison: a run without "
                                "stored test predictions (no intervals, verdict or differing images); on other "
                                "images (scored_on): images of classes the runs lack, the runs' own train or val "
                                "images, features checked by encoder name only")
    probes: Optional[dict[Literal["base", "other"], str]] = Field(
        None, description="what each run's probe is, in words ('ERM (ce), linear head'; 'group_dro (eta=0.01), "
        "linear head, preset disparity'), so that an export read by someone else names more than run ids")
    pairing: Optional[str] = Field(None, description="how the two runs' test images were paired for the intervals "
                                   "and the count: 'rows' (one test split, row by row), 'content digests' or 'source "
                                   "paths' (two caches' test images matched by identity: every figure is of the "
                                   "images both hold), 'unpaired' (not matched: each run's own intervals "
                                   "square-and-added as two independent samples', no count or sign test); null "
                                   "without stored predictions or on other images")
    seed_pairing: Optional[Literal[SAME_SEEDS, INDEPENDENT]] = Field(
        None, description="how each metric's seed_spread took the two runs' seeds: 'same seeds' (both reports list "
        "the same seeds, which share each seed's initialisation and mini-batch order: the paired interval of the "
        "per-seed differences, t_{S−1}·sd(d)/√S), 'independent' (other or unknown seeds: Welch's interval); null "
        "without stored predictions, on other images, or where no spread was measured (a run of one seed)")
    scored_on: Optional[str] = Field(None, description="the labelled images both runs' shipped probes (first "
                                     "seed) were scored on (mr2probe compare --features); null: their own test "
                                     "split, seed means")
    worst_classes: Optional[dict[Literal["base", "other"], str]] = Field(
        None, description="each run's worst class on the images compared, by name (null in comparisons of older code)")
    worst_class_ties: Optional[dict[Literal["base", "other"], WorstClass]] = Field(
        None, description="each run's worst class with the other classes of its accuracy (tied_with, tied_count) and "
        "text, as a report's summary.worst_class words it ('c12 (tied with c13, ... and 2 more)'); null in "
        "comparisons of older code")
    calibration: Optional[dict[Literal["base", "other"], Calibration]] = Field(
        None, description="each run's shipped head's calibration, side by side: report.calibration (on its test "
        "split), or on the scored images (scored_on, without NLL and top-k); what a probe's probabilities are worth "
        "is part of which to ship; each with its own interval, no paired difference; null when a report lacks it")


def _features(base: Report, other: Report) -> str | None:
    """The two runs' features in one line where both recorded them and they differ, else None."""
    a, b = base.features, other.features
    return f"base {a.describe()}; other {b.describe()}" if FeatureSource.differ(a, b) else None


def _accuracy(report: Report) -> np.ndarray:
    """Seed-mean per-class test accuracy (K,), NaN for a class without test samples."""
    return np.array([row.accuracy for row in report.per_class], dtype=float)  # None → nan


def _metric(base: float | None, other: float | None) -> CompareMetric:
    base, other = _finite(base) if base is not None else None, _finite(other) if other is not None else None
    return CompareMetric(base=base, other=other, delta=None if base is None or other is None else other - base)


def first_class_difference(a: list[str], b: list[str], sides: tuple[str, str] = ("the first", "the second")) -> str:
    """Where two class lists part: their sizes, then the classes only one of them has, named by ``sides`` (a class
    added, removed or renamed between two extractions: the first position that differed, 'dog' against 'frog' for
    a 'frog' folder added beside 'dog', hid what changed; a data-set-iteration round), then the names a list repeats,
    else (the same classes in another order) the first position whose names differ."""
    a, b = list(a), list(b)
    # each list's set made once: built per name, 5,000 classes took 3.8 s to word one refusal (a review)
    only = [(side, [repr(n) for n in x if n not in other]) for side, x, other in ((sides[0], a, set(b)),
                                                                                (sides[1], b, set(a)))]
    if any(names for _, names in only):
        return f"{len(a)} against {len(b)} classes; " + "; ".join(
            f"only {side} has {listed(names, 10)}" for side, names in only if names)
    # a name twice (a report read from a damaged file): the first position past the shorter list was an IndexError
    twice = [(side, [repr(n) for n in repeated(x)]) for side, x in zip(sides, (a, b))]
    if any(names for _, names in twice):
        return f"{len(a)} against {len(b)} classes; " + "; ".join(
            f"{side} repeats {listed(names, 10)}" for side, names in twice if names)
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{len(a)} against {len(b)} classes; the first difference is class {i}: {a[i]!r} against {b[i]!r}"


# What a comparison without both runs' stored test predictions lacks, and why (an upgrade round: an older run
# compared with a new one showed "Δ points [95% interval]" columns without an interval, and no verdict)
NO_PREDICTIONS = ("no 95 % intervals, verdict or count of the test images the runs differ on: they need both runs' "
                  f"stored test predictions ({PREDICTIONS_FILE}), which a run written before they were stored lacks; "
                  "train it again to get them")


def compare_reports(base: Report, other: Report, predictions: tuple | None = None) -> Comparison:
    """Per-group and per-class deltas of ``other`` against ``base``, on base's groups.

    With ``predictions`` = the two runs' :class:`probe.predictions.Predictions`, every delta gets its 95 % paired
    bootstrap interval and the comparison its one-sentence verdict: on their one test split, or on the test images
    two caches share (:func:`_matched_images`: every figure then of those), else unpaired intervals (``pairing``).

    Raises ValueError when the runs have different classes or, with predictions, test images of other data sets
    that no content digests match (:func:`check_same_images`).
    """
    check_same_classes(base, other)
    matched = None if predictions is None else _matched_images(base, other, predictions)
    note = f"both runs scored on the groups of the base run {base.run_id} ({base.grouping.note})"
    if matched is not None and matched.how != BY_ROWS:  # the images both caches hold: every figure of those alone
        comparison = _comparison(base, other, *_observed(base, *matched[:2]), f"{note}{SHARED_NOTE}{matched.how}")
    else:
        comparison = _comparison(base, other, _accuracy(base), _accuracy(other),
                                 {key: (getattr(base.summary, key), getattr(other.summary, key))
                                  for key in ("overall", "balanced")}, note)
    comparison.features = _features(base, other)
    metric = _overall_metric(base, other)
    # each run's own full test split (the same rows, or unpaired): its report's stored intervals are of these
    own = (base, other) if matched is None or matched.how == BY_ROWS else None
    if matched is not None:
        comparison.pairing, compared = matched.how, matched[:2]
        _add_intervals(comparison, *compared, metric=metric, reports=own)
        comparison.warnings += _matched_warning(predictions, matched)
    elif predictions is not None:
        comparison.pairing, compared = UNPAIRED, predictions
        _add_unpaired_intervals(comparison, *compared, metric=metric, reports=own)
        comparison.warnings.append(unpaired_warning(unmatched_reason(*predictions)))
    else:  # a run from before they were stored: the tables' interval columns stood empty, with no word of why
        comparison.warnings.append(NO_PREDICTIONS)
        return comparison
    add_seed_spreads(comparison, *compared, seeds=(base.seeds.values, other.seeds.values))
    return comparison


UNPAIRED = "unpaired"
SHARED_NOTE = ", on the test images both runs' caches hold, matched by "  # the grouping note's words of such a pairing


def unpaired_warning(why: str) -> str:
    """The warning of an unpaired comparison, with ``why`` its images could not be matched
    (:func:`probe.predictions.unmatched_reason`): the warning said neither, so paths refused as ambiguous read as
    images with no identity at all (a first-user round)."""
    return (f"the two runs' test images could not be matched image by image ({why}): every interval is unpaired, "
            "each run's own interval square-and-added with the other's as two independent samples', wider than a "
            "paired one, and no image is counted or sign-tested")


def _matched_images(base: Report, other: Report, predictions: tuple) -> Matched | None:
    """:func:`probe.predictions.match_images` of the runs' test predictions, once the reports allow it: by content
    digests whatever the data sets' fingerprints say (the same images in two data sets, read from a folder and from
    an archive), otherwise only where the data sets agree (:func:`check_same_images` raises if not). None: not
    matched, to be compared unpaired."""
    one, two = predictions
    by_content = one.digests is not None and two.digests is not None
    if not by_content:
        check_same_images(base, other)
    matched = match_images(one, two)
    if matched is None and by_content:
        check_same_images(base, other)  # no image in common: where the data sets differ too, refused as before
    return matched


def _observed(base: Report, one, two) -> tuple:
    """Per-class accuracies (K,) of both runs' predictions ``one`` and ``two`` and their overall and balanced pair."""
    k = len(base.class_names)
    a, b = (observed_class_accuracy(p.correct, p.labels, k) for p in (one, two))
    return a, b, {"overall": (float(one.correct.mean()), float(two.correct.mean())),
                  "balanced": (nan_mean(a), nan_mean(b))}


def _matched_warning(predictions: tuple, matched: Matched) -> list[str]:
    """What a comparison of the test images two caches share says of them: how they were matched and how many of
    each run's were left out; nothing for the same test split."""
    if matched.how == BY_ROWS:
        return []
    shared, sizes = matched.base.labels.size, [p.labels.size for p in predictions]
    # an image relabelled between the extractions is in both caches, under two labels: no pair, and not "only one
    # run's" either (a new-user round)
    moved = matched.relabelled
    # a path naming two of the other run's images pairs with none: in both caches, refused, not "only one run's"
    ambiguous = matched.ambiguous
    only = [size - shared - moved - unclear for size, unclear in zip(sizes, ambiguous)]
    left = ([f"the {only[0]:,} and {only[1]:,} only one run has"] if any(only) else []) + (
        [f"the {moved:,} both caches hold under another label (a label changed between the extractions)"]
        if moved else []) + (
        [f"the {ambiguous[0]:,} and {ambiguous[1]:,} whose source paths are {AMBIGUOUS}"] if any(ambiguous) else [])
    return [f"the runs were trained on two caches: their test images are paired by {matched.how}, {shared:,} in "
            f"both (of {sizes[0]:,} base and {sizes[1]:,} other test images); every accuracy, interval and count "
            f"here is of those {shared:,}, {' and '.join(left) or 'none'} left out (calibration and cost: each run's "
            "own)"]


def _add_unpaired_intervals(comparison: Comparison, base, other, metric: str = "accuracy",
                            reports: tuple[Report, Report] | None = None) -> None:
    """Unpaired 95 % intervals of every delta, in place, where the two runs' test images cannot be matched: each
    run's own interval (:func:`_add_own_intervals`: Wilson's of a proportion, ``group_intervals``' of a macro mean)
    square-and-added as two independent samples' (:func:`probe.uncertainty.independent_delta_interval`); no count
    or sign test of images, which needs pairs. The verdict sentence says the intervals are unpaired. A stratified
    bootstrap of each run apart cannot move a class whose images are all right or all wrong: 0 of 40 against 40 of
    40 read +100 [+100, +100], and overall accuracy a zero-width interval beside it (a review). ``reports``: as
    :func:`_add_own_intervals` takes them."""
    from .selection import delta_sentence
    from .uncertainty import independent_delta_interval

    _add_own_intervals(comparison, base, other, reports)
    delta = {}
    for row in (*comparison.metrics.values(), *comparison.per_class):
        row.delta_ci = independent_delta_interval(row.base, row.base_ci, row.other, row.other_ci)
    for key, row in comparison.metrics.items():
        if row.delta_ci is not None and row.delta is not None:
            delta[key] = {"delta": row.delta, "lo": row.delta_ci[0], "hi": row.delta_ci[1]}
    if {"hard", "overall", "balanced"} <= delta.keys():
        comparison.verdict_text = (f"Unpaired (the runs' test images could not be matched): "
                                   f"{delta_sentence(delta, overall_metric=metric)}")


def itself_warning(run: str) -> str:
    """The warning of a comparison of the run ``run`` (its id) with itself: a normal "no change" read as a result.
    ``mr2probe compare`` and ``GET /api/compare`` add it to the comparison's warnings alike."""
    return f"run {run} is compared with itself: every difference is 0"


def check_same_images(base: Report, other: Report) -> None:
    """Raise ValueError when the two runs' features come from data sets of other content
    (:meth:`FeatureSource.other_images`): their test images differ, whatever their names, and pairing them would
    turn two data sets' difference into a difference of the probes."""
    if FeatureSource.other_images(base.features, other.features):
        one, two = base.features, other.features
        by_test = None not in (one.test_dataset, two.test_dataset)
        a, b = (one.test_dataset, two.test_dataset) if by_test else (one.dataset, two.dataset)
        # the test fingerprint covers each test image's file name, label and content: 'of other content' misled
        # where only test labels had been fixed (images moved between class folders, a new-user round)
        what = ("test splits that differ in their file names, labels or image content (test fingerprints "
                if by_test else "the test images of two different data sets (content fingerprints ")
        agree = "" if by_test else ", even where file names and labels agree"
        # the same test images all the same, where a run left out a class that the other's cache lacks (a review)
        left_out = "".join(f" The {name} run left out {listed(drop, 10)}, whose test images its cache's fingerprints "
                           "cover too: to pair the runs on the test images they share, score both on the cache "
                           "without them: mr2probe compare BASE OTHER --features CACHE.h5 (the API: cache=ID)."
                           for name, drop in _dropped(base, other))
        raise ValueError(f"the runs were scored on {what}{a[:12]} and {b[:12]}){agree}; a paired comparison needs "
                         "the same test images and labels. To compare the two probes on one test split, score both on "
                         "one cache: mr2probe compare BASE OTHER --features CACHE.h5 (the API: cache=ID), such as the "
                         "cache with the corrected test labels. (The same images read from a folder and from an "
                         f"archive count as two data sets: extract both caches from one of them.){left_out}")


def _dropped(base: Report, other: Report) -> list[tuple[str, list[str]]]:
    """('base' or 'other', the classes it left out) of each run that left out classes (``drop_classes``)."""
    runs = (("base", base), ("other", other))
    return [(name, drop) for name, run in runs if (drop := run.config.get("drop_classes"))]


def compare_on_images(base: Report, other: Report, predictions: tuple, where: str) -> Comparison:
    """:func:`compare_reports` of the two runs' shipped probes (``probe.deploy.RunProbe``) on other labelled
    images: ``predictions`` are their :class:`probe.predictions.Predictions` there (one row each), from which
    every accuracy and interval is computed; ``where`` names the images ("cache new.h5, split test"). The groups
    stay the base run's."""
    from .deploy import scored_calibration

    check_same_classes(base, other)
    one, two = predictions
    k = len(base.class_names)
    comparison = _comparison(base, other, *_observed(base, one, two),
                             f"both runs' shipped probes (first seed) scored on {where}, on the groups of the base "
                             f"run {base.run_id}")
    comparison.scored_on = where
    # each shipped head's calibration on these images, not the reports' on their test splits (a new-user round)
    comparison.calibration = {name: scored_calibration(p.confidence, p.predicted[0], p.labels, k, None,
                                                       r.temperature_scaling)
                              for name, p, r in (("base", one, base), ("other", two, other))}
    _add_intervals(comparison, one, two, metric=_overall_metric(base, other), images="images")
    return comparison


def check_same_classes(base: Report, other: Report) -> None:
    """Raise ValueError, naming the first difference, when two runs do not have the same classes in order, and the
    classes either left out (``drop_classes``): a run of 8 digits against one of 10 on the same cache read as two
    data sets (a review)."""
    if list(base.class_names) != list(other.class_names):
        why = "; ".join(f"the {name} run left out {listed(drop, 10)}" for name, drop in _dropped(base, other))
        shared = set(base.class_names) & set(other.class_names)
        fix = (f" ({why}: compare it with a run that left out the same classes)" if why else
               " (to compare the classes both have, train a run again without the others (--drop-class NAME; the "
               "API: drop_classes) and score both on one cache (--features CACHE.h5; the API: cache=ID))"
               if shared else "")
        raise ValueError("runs have different classes and cannot be compared: "
                         + first_class_difference(base.class_names, other.class_names,
                                                  ("the base run", "the other run")) + fix)


def _overall_metric(base: Report, other: Report) -> str:
    """balanced when both runs selected on balanced accuracy, else accuracy (the verdict sentence's overall)."""
    both = {run.config.get("overall_metric", "accuracy") for run in (base, other)}
    return "balanced" if both == {"balanced"} else "accuracy"


def metric_title(comparison: Comparison) -> str:
    """The metric table's title: seed means on the runs' test split, or the first seed on other images."""
    if comparison.scored_on is None:
        return "test accuracy (%), seed means"
    return f"accuracy (%) of the shipped probes (first seed) on {comparison.scored_on}"


def _comparison(base: Report, other: Report, a: np.ndarray, b: np.ndarray, summary: dict, note: str) -> Comparison:
    """The comparison of per-class accuracies ``a`` (base) and ``b`` (other) and the ``summary`` pairs
    (overall, balanced) on the base run's groups, without intervals."""
    groups = base.grouping.groups
    ga, gb = group_accuracy(a, groups), group_accuracy(b, groups)
    metrics = {key: _metric(*summary[key]) for key in ("overall", "balanced")}
    metrics.update({key: _metric(_finite(ga[key]), _finite(gb[key])) for key in GROUP_NAMES})
    worst_a, worst_b = worst_class(a), worst_class(b)
    # a tie names the class the other run's worst is too, where it is one: [50, 50, 100] against [75, 50, 100] read
    # "base a, other b: no paired test applies", b being the base run's worst as much as a (an attack round)
    if a[worst_b[0]] == worst_a[1]:
        worst_a = (worst_b[0], worst_a[1])
    elif b[worst_a[0]] == worst_b[1]:
        worst_b = (worst_a[0], worst_b[1])
    metrics["worst_class"] = _metric(worst_a[1], worst_b[1])
    worst = {"base": base.class_names[worst_a[0]], "other": base.class_names[worst_b[0]]}
    ties = {side: WorstClass.among(base.class_names, acc, index) for side, acc, index in (("base", a, worst_a[0]),
                                                                                           ("other", b, worst_b[0]))}
    group_by_class = {int(i): g for g in GROUP_NAMES for i in groups[g]}
    per_class = [CompareClass(index=k, name=name, group=group_by_class.get(k), **_metric(a[k], b[k]).model_dump())
                 for k, name in enumerate(base.class_names)]
    return Comparison(base=base.run_id, other=other.run_id, grouping=CompareGrouping(groups=groups, note=note),
                      metrics=metrics, per_class=per_class, cost=_cost(base, other), worst_classes=worst,
                      worst_class_ties=ties,
                      probes={"base": probe_words(base), "other": probe_words(other)},
                      calibration=(None if base.calibration is None or other.calibration is None
                                   else {"base": base.calibration, "other": other.calibration}))


def _add_intervals(comparison: Comparison, base, other, metric: str = "accuracy", images: str = "test images",
                   reports: tuple[Report, Report] | None = None) -> None:
    """Paired intervals of every delta (``probe.uncertainty``; the worst class's is that class's where both runs'
    worst class is one class, else that of the lowest class accuracy in each resample, whichever class it is:
    :func:`_add_worst_class_test`) and the verdict sentence, in place; the sentence's overall
    is balanced accuracy when ``metric`` is (both runs selected on it), and ``images`` what the runs were scored
    on; ``reports``: as :func:`_add_own_intervals` takes them."""
    from .predictions import paired_test_intervals
    from .selection import delta_sentence

    num_classes = len(comparison.per_class)
    delta, classes = paired_test_intervals(base, other, num_classes, comparison.grouping.groups)
    for key, value in delta.items():
        comparison.metrics[key].delta_ci = [value["lo"], value["hi"]]
    diff, seeds = other.correct - base.correct, paired_seeds(base, other)
    # every row whose images are one set (a class, a third, all) gets the same rule: interval and exact test, of
    # the mean its interval estimates (a third's: the macro mean of its classes)
    overall = comparison.metrics["overall"]
    overall.changed, overall.p_value, total = evidence(diff, seeds)
    overall.beyond_noise = beyond_noise(overall.delta_ci, overall.p_value, total)
    # balanced accuracy is the macro mean over every class: its images weighed as a third's (it had an interval and
    # no test, so -6.7 [-13.3, -0.8] stood unlabelled beside the same overall interval "within noise"; a new-user
    # round)
    for g in ("balanced", *GROUP_NAMES):
        row = comparison.metrics[g]
        members = list(range(num_classes)) if g == "balanced" else comparison.grouping.groups.get(g, [])
        row.changed, row.p_value, total = group_evidence(base, other, members)
        row.beyond_noise = beyond_noise(row.delta_ci, row.p_value, total)
        row.weighted = True
    tested = class_evidence(base, other, classes)
    for row, interval, (changed, p_value, _, beyond) in zip(comparison.per_class, classes, tested):
        row.delta_ci = interval.tolist()
        row.changed, row.p_value, row.beyond_noise = changed, p_value, beyond
    _add_worst_class_test(comparison, [total for _, _, total, _ in tested])
    _add_own_intervals(comparison, base, other, reports)
    # the test of the verdict's metric (metric_evidence): what the sentence cites is what the API serves (the
    # weighted one was built for the sentence alone, and discordant.p_value disagreed with it; a review)
    row = comparison.metrics["balanced" if metric == "balanced" else "overall"]
    comparison.discordant = metric_discordance(base, other, metric, row.changed, row.p_value)
    comparison.verdict_text = (f"{delta_sentence(delta, overall_metric=metric)} "
                               f"{discordance_sentence(comparison.discordant, images=images)}")
    comparison.verdict_text += _held_back(comparison, metric)


def _add_worst_class_test(comparison: Comparison, totals: list[float]) -> None:
    """The worst-class row's interval and test, in place: where both runs' worst class is the same class, that
    class's paired interval and test (its row's interval, counts and p-value; ``totals``, each class's summed
    difference); where they are two classes, the interval of the lowest class accuracy of each resample and no
    test, their images being no pairs (:func:`metric_rows` says so). The row had an interval and no test where
    every other row had one (a new-user round); and the same class's difference had two intervals in one table, the
    row's the bootstrap of the lowest class accuracy, which a class of few images cannot widen: "worst class
    (Sneaker) +0.00 [+0.00, +19.05]" beside Sneaker's own "+0.00 [-36.44, +36.44]" on its 6 test images (a
    decision round)."""
    worst = comparison.worst_classes or {}
    if worst.get("base") is None or worst["base"] != worst.get("other"):
        return
    row = next(r for r in comparison.per_class if r.name == worst["base"])
    metric = comparison.metrics["worst_class"]
    if row.delta_ci is not None:
        metric.delta_ci = list(row.delta_ci)
    metric.changed, metric.p_value = row.changed, row.p_value
    metric.beyond_noise = beyond_noise(metric.delta_ci, row.p_value, totals[row.index])


def _add_own_intervals(comparison: Comparison, base, other, reports: tuple[Report, Report] | None = None) -> None:
    """Each run's own accuracies with their 95 % intervals (:data:`_OWN_CI`), in place: a difference had its
    interval and the two accuracies it is the difference of had none, so 0.0 % against 16.7 % on 6 images read as
    sure as on 600. ``reports``: the two runs' reports, where ``base`` and ``other`` are their own full test
    splits' predictions; then a run's balanced and third intervals are those its report stores (:func:`_stored_groups`)
    and not drawn again (4,000 draws of every class, two thirds of a 5,000-class comparison's time)."""
    num_classes, groups = len(comparison.per_class), comparison.grouping.groups
    for side, predictions, report in zip(("base", "other"), (base, other), reports or (None, None)):
        stored = _stored_groups(report, groups)
        intervals = own_intervals(predictions.correct, predictions.labels, num_classes,
                                  groups if stored is None else None)
        classes, worst = intervals.classes, (comparison.worst_classes or {}).get(side)
        own = {"overall": intervals.overall, **(intervals.groups if stored is None else stored),
               "worst_class": next((classes[row.index] for row in comparison.per_class if row.name == worst), None)}
        for key, metric in comparison.metrics.items():
            setattr(metric, f"{side}_ci", interval_or_none(own.get(key)))
        for row, interval in zip(comparison.per_class, intervals_or_none(classes)):  # in one pass, not class by class
            setattr(row, f"{side}_ci", interval)


def _stored_groups(report: Report | None, groups: dict[str, list[int]]) -> dict[str, list[float] | None] | None:
    """The balanced and third intervals ``report`` stores of its test split (``summary.group_ci``:
    ``probe.uncertainty.group_intervals``, the same draws), where its thirds are ``groups``; None where it stores
    none (a report from before them) or its thirds are others (the other run's, regrouped on the base run's)."""
    if report is None or report.summary.group_ci is None or report.grouping.groups != groups:
        return None
    return report.summary.group_ci


def _held_back(comparison: Comparison, metric: str) -> str:
    """:func:`held_back_sentence` of the hard third and overall accuracy, where their intervals leave out 0 but
    their images do not say the same (the hard third's said it bare while its class row said "within noise"; a
    statistics review)."""
    named = [("hard", "hard third's"), ("overall", "overall") if metric == "accuracy" else ("balanced", "balanced")]
    # (overall's images are those of the discordance sentence: its test is that sentence's)
    metrics = comparison.metrics
    held = "".join(held_back_sentence(label, metrics[key].delta_ci, metrics[key].changed, metrics[key].p_value,
                                      metrics[key].beyond_noise) for key, label in named)
    if comparison.discordant is None or not _too_few_to_tell(comparison.discordant):
        return held
    # "too few or too even to tell them apart" of all the images read as of the hard third too, whose own images
    # do tell them apart (a new-user round)
    said = {"hard": "The hard third's images"}
    for key, _ in named:
        row = metrics[key]
        if row.beyond_noise and key in said:
            held += (f" {said[key]} do tell them apart (other better on {row.changed[0]:,}, base on "
                     f"{row.changed[1]:,}: sign-flip test {p_text(row.p_value)}).")
    return held


# A delta cell's word where the runs are one probe: every interval is pinned at 0 ("within noise" read as a
# difference too small to tell, of two runs that make the same predictions)
NO_CHANGE = " no change (same predictions)"


def _delta_cell(delta: float | None, interval: list | None, changed: list[int] | None = None,
                beyond: bool | None = None, p_value: float | None = None, weighted: bool = False) -> str:
    """``+1.20`` or, with an interval, ``+1.20 [+0.40, +2.00]`` and ``within noise`` when it holds 0 (``no change``
    where it is the point 0: one probe's predictions twice), or when the
    images that changed (``changed``, [other better, base better]) do not lean that way beyond chance (``beyond``
    false, exact test ``p_value``: CompareClass.beyond_noise); beyond noise, those images and their test too."""
    if interval is None or delta is None or None in interval:
        return signed_points(delta, 2)
    lo, hi = interval
    cell = f"{signed_points(delta, 2)} [{signed_points(lo, 2)}, {signed_points(hi, 2)}]"
    if delta == lo == hi == 0:  # pinned: the runs are one probe (predictions.same_predictions), nothing to weigh
        return cell + NO_CHANGE
    if lo <= 0 <= hi:
        return cell + " within noise"
    # "10 better, 20 worse" beside a gain read as a contradiction where the test weighs each image 1/n of its
    # class (a consistency round)
    weighed = ", weighed by class" if weighted else ""
    evidence = "" if changed is None else f" ({changed[0]} better, {changed[1]} worse{weighed}: {p_text(p_value)})"
    if beyond is False and changed is not None:
        return cell + " within noise" + evidence
    # beyond noise: the images it rests on too (a class 57 points down had the least said of it; a new-user round)
    return cell + (evidence if beyond and p_value is not None else "")


def _moved_most(rows: list[CompareClass], max_classes: int | None) -> tuple[list[CompareClass], str | None]:
    """The per-class rows a table lists, and its caption: every class up to ``max_classes`` (None: no limit), those
    that changed first, else the classes whose test accuracy changed, at most ``max_classes`` of them (the largest
    |Δ|); the largest loss first (in class order a −70 pt class sat mid-list under "changed most"; a scale round)."""
    moved = [r for r in rows if r.delta is not None and not math.isnan(r.delta) and r.delta != 0]
    if max_classes is None or len(rows) <= max_classes:
        # every class, those that changed first, the largest loss first: in class order a 200-class export read
        # as 200 rows to scan for the few that moved (a scale round); by index, not by model equality (K², a review)
        moved_ids = {r.index for r in moved}
        still = [r for r in rows if r.index not in moved_ids]
        return sorted(moved, key=lambda r: (r.delta, r.index)) + still, None
    shown = sorted(sorted(moved, key=lambda r: -abs(r.delta))[:max_classes], key=lambda r: (r.delta, r.index))
    still = len(rows) - len(moved)
    if not moved:
        return shown, f"no class's test accuracy changed, of {len(rows)} (every class: the comparison's JSON)"
    if len(moved) <= max_classes:
        return shown, (f"the {len(moved)} of {len(rows)} classes whose test accuracy changed, largest loss first; the "
                       f"other {still} did not (every class: the comparison's JSON)")
    return shown, (f"the {max_classes} of {len(rows)} classes whose test accuracy changed most, largest loss first; "
                   f"{len(moved) - max_classes} more changed less and {still} did not (every class: the "
                   "comparison's JSON)")


METRIC_HEADER = ["metric", "base", "other", "Δ points [95% interval]"]
CLASS_HEADER = ["class", "group", "base", "other", "Δ points [95% interval]"]


# probe_words' phrase for each Posthoc.outcome() other than applied and unchecked (both ship the bias)
_POSTHOC_OUTCOME_WORDS = {"untested": "not applied (too few validation images to test it)",
                          "declined": "not applied (its guard declined)"}


def probe_words(report: Report) -> str:
    """What a run's probe is, in words: its loss (ERM for ``ce``) with the options it trained with, its head, its
    preset when it had one, the balanced accuracy it selected on where it did (two ERM runs selected on two
    metrics read alike; a new-user round), its post-hoc bias, its temperature and the classes it left out."""
    config = report.config
    preset = report.selection.preset
    balanced = ", selected on balanced accuracy" if config.get("overall_metric") == "balanced" else ""
    # what was asked for, where the run kept the reference, and the post-hoc bias: an MR² run and a post-hoc run
    # that kept ERM both read "ERM (ce), linear head" beside ERM itself (a new-user round)
    requested = report.selection.requested or {}
    kept = (f", kept the reference ({requested['loss']} found no safe improvement)"
            if requested.get("loss") and requested["loss"] != config.get("loss") else "")
    posthoc = ""
    if config.get("posthoc_bias"):
        # the guard's outcome (Posthoc.outcome): "declined" read as tested and refused where too few validation
        # images kept it from being tested; an unguarded bias is always applied
        outcome = "applied" if report.posthoc is None else report.posthoc.outcome()
        posthoc = ", post-hoc bias " + _POSTHOC_OUTCOME_WORDS.get(outcome, "applied")
    # the confidences it ships: a temperature-scaled run read as the same probe without (a new-user round)
    scaling = report.temperature_scaling
    temperature = ("" if scaling is None else f", temperature {scaling.temperature:.3g}" if scaling.applied
                   else ", temperature not applied (its fit lay on a bound)")
    # the classes it left out: a run of 9 classes read as the 10-class runs of the same cache
    dropped = config.get("drop_classes") or []
    without = f", without {listed(dropped, 3)}" if dropped else ""
    return (probe_label("ce" if config.get("loss") == "ce" else loss_label(config), config.get("head"))
            + _adapter_words(report) + (f", preset {preset.name}" if preset is not None else "")
            + balanced + kept + posthoc + temperature + without)


def _adapter_words(report: Report) -> str:
    """``, lowrank adapter (rank 64), λ 0.1`` of a run with an adapter (it read "ERM (ce), linear head" as ERM
    itself does, in every comparison and the runs list: a new-user round), else nothing."""
    config = report.config
    if not config.get("adapter"):
        return ""
    rank = f" (rank {config['adapter_rank']})" if config.get("adapter_rank") else ""
    lam = getattr(report.selection.chosen, "lam", None)  # a candidate's extra key where λ was selected
    lam = config.get("lam") if lam is None else lam
    return f", {config['adapter']} adapter{rank}" + (f", λ {lam:g}" if lam else "")


def comparison_facts(comparison: Comparison) -> list[tuple[str, str]]:
    """The lines above a comparison's tables, as (label, text): what was compared on which groups, the probes, the
    verdict, the features where they differ, the cost."""
    facts = [("compared", f"base {comparison.base} vs other {comparison.other}: {comparison.grouping.note}")]
    if comparison.probes is not None:
        facts.append(("probes", f"base {comparison.probes['base']}; other {comparison.probes['other']}"))
    if comparison.verdict_text:
        facts.append(("verdict", comparison.verdict_text))
    retraining = retraining_sentence(comparison)
    if retraining:
        facts.append(("over retraining", retraining))
    beyond = classes_beyond_noise(comparison.per_class)
    if beyond:
        facts.append(("classes", beyond))
    if comparison.features is not None:
        facts.append(("features differ", comparison.features))
    facts += [("warning", warning) for warning in comparison.warnings]
    if comparison.calibration is not None:
        cal = comparison.calibration
        facts.append(("calibration", f"base {cal['base'].brief()}; other {cal['other'].brief()} (each run's shipped "
                                     f"head on {comparison.scored_on or 'its test split'})"))
    if comparison.cost is not None:
        cost = comparison.cost
        facts.append(("time", f"base {cost.base_seconds:.1f} s, other {cost.other_seconds:.1f} s ({cost.ratio:.2f}×; "
                              f"{cost.setting}{'' if cost.comparable else ': not the same setting'})"))
    return facts


def retraining_sentence(comparison: Comparison) -> str | None:
    """Each metric's ``seed_spread`` in one line beside the intervals, or where no run pair measures it (a run of one
    seed) that retraining goes unmeasured: the views gave the test interval alone unless the seeds' spread was the
    wider, and never said a run of one seed left it out (a new-user round); it names how the spread took the seeds
    (``seed_pairing``: paired seed by seed, or independent). None without intervals (no stored
    predictions: :data:`NO_PREDICTIONS` says it) and on other images (the first seed alone: ``scored_on``)."""
    rows = comparison.metrics
    if comparison.scored_on is not None or not any(rows[key].delta_ci for key in SPREAD_METRICS):
        return None
    counts = None if comparison.discordant is None else comparison.discordant.seed_counts
    spreads = [(key, rows[key].seed_spread) for key in SPREAD_METRICS if rows[key].seed_spread is not None]
    if not spreads:
        one = [name for name, n in zip(("base", "other"), counts or ()) if n < 2]
        who = f"the {' and the '.join(one)} run{'s' * (len(one) > 1)} {'have' if len(one) > 1 else 'has'} 1 seed" \
            if one else "a run has 1 seed"
        return (f"unmeasured: {who}, so the intervals hold test sampling alone and retraining may move each Δ "
                "beyond them (train each run with --seeds 3 or more)")
    cells = [f"±{fixed(100 * spread, 1)}{' pt' * (i == 0)} {key}" for i, (key, spread) in enumerate(spreads)]
    how = pairing_words(comparison.seed_pairing)
    seeds = ", ".join(filter(None, [f"the runs' {counts[0]} and {counts[1]} seeds" if counts else None, how]))
    seeds = f"{seeds}; " if seeds else ""
    return (f"{', '.join(cells)}: the 95 % range of each Δ over retraining ({seeds}seed_spread), which the "
            "intervals, over the test images, leave out")


def classes_beyond_noise(rows: list[CompareClass], shown: int = 5) -> str | None:
    """How many classes lost and gained beyond noise (a 95 % paired interval that leaves out 0 and changed images
    leaning that way beyond chance, ``CompareClass.beyond_noise``), the largest losses named, and at most how many
    would each way by chance alone (2.5 % of the classes' intervals, an expectation, not a bound; the exact test
    makes it fewer, and none of 5 or fewer images can pass it; a statistics review): the
    verdict sentence weighs the thirds, and a class −70 pt beside "improved" went unsaid (a scale round). None
    without intervals or when no class moved beyond noise."""
    with_ci = [r for r in rows if r.delta_ci is not None and r.delta is not None and not math.isnan(r.delta)]
    beyond = [r for r in with_ci if r.beyond_noise is not False]  # None: a comparison from before the sign test
    lost = sorted((r for r in beyond if r.delta_ci[1] < 0), key=lambda r: (r.delta, r.index))
    gained = [r for r in beyond if r.delta_ci[0] > 0]
    if not (lost or gained):
        return None
    named = listed([f"{r.name} {signed_points(r.delta, 2)}" for r in lost], shown)
    chance = CHANCE_SHARE * len(with_ci)
    return (f"{len(lost)} lost beyond noise" + (f" ({named})" if lost else "") + f", {len(gained)} gained; "
            f"by chance alone about {chance:.2g} of {len(with_ci)} classes' 95 % intervals would leave out 0 each "
            "way, and fewer pass the exact test too (none of 5 or fewer test images can: 5 of 5 is p = 0.0625)")


def metric_rows(comparison: Comparison) -> list[list[str]]:
    """The rows of the metrics table (``METRIC_HEADER``): accuracies in %, deltas in points with their intervals,
    and the test of the images each counts, or why the worst class has none (two classes: no pairs)."""
    return [[_metric_label(comparison, name), _with_ci(m.base, m.base_ci), _with_ci(m.other, m.other_ci),
             _delta_cell(m.delta, m.delta_ci, m.changed, m.beyond_noise, m.p_value, m.weighted)
             + (_TWO_WORST if name == "worst_class" and _two_worst_classes(comparison) and m.delta_ci else "")]
            for name, m in comparison.metrics.items()]


_TWO_WORST = " (two different classes: no paired test applies)"


def _two_worst_classes(comparison: Comparison) -> bool:
    """Whether the two runs' worst classes are two classes, so the worst-class row compares them and no paired test
    of images applies (:func:`_add_worst_class_test`)."""
    worst = comparison.worst_classes
    return bool(worst) and worst["base"] != worst["other"]


def _with_ci(value: float | None, interval: list | None) -> str:
    """``85.00 [83.1, 86.8]``: a run's accuracy in per cent with its 95 % interval, as its report's tables show
    them; alone where it has none (a comparison without predictions)."""
    return percent(value) if value is None or interval is None else f"{percent(value)} {interval_text(interval)}"


def _metric_label(comparison: Comparison, name: str) -> str:
    """A metric row's label: "worst class", not a field name (a review), with whose worst class each run's is
    (horse against bird read as one class's accuracy; a new-user round)."""
    worst = comparison.worst_classes
    if name != "worst_class" or not worst:
        return name.replace("_", " ")
    named = worst_class_words(comparison)
    return f"worst class ({named['base']})" if named["base"] == named["other"] else \
        f"worst class (base {named['base']}, other {named['other']})"


def worst_class_words(comparison: Comparison) -> dict[str, str]:
    """Each run's worst class in words: its name and the classes tied with it, as its report says them
    (:meth:`probe.report.WorstClass.label`); the name alone in a comparison of older code."""
    ties = comparison.worst_class_ties
    return {side: ties[side].label() if ties else comparison.worst_classes[side] for side in ("base", "other")}


def class_rows(comparison: Comparison, max_classes: int | None = None, own_intervals: bool = True
               ) -> tuple[list[list[str]], str | None]:
    """The rows of the per-class table (``CLASS_HEADER``; every class, or those that changed most past
    ``max_classes``) and its caption; ``own_intervals`` false leaves each run's accuracy without its interval (the
    terminal's table, 120 columns wide with them; its Δ keeps its own)."""
    rows, caption = _moved_most(comparison.per_class, max_classes)
    own = _with_ci if own_intervals else (lambda value, _: percent(value))
    return [[row.name, row.group or "", own(row.base, row.base_ci), own(row.other, row.other_ci),
             _delta_cell(row.delta, row.delta_ci, row.changed, row.beyond_noise, row.p_value)] for row in rows], caption


def format_comparison(comparison: Comparison, *, width: int = COMPARE_WIDTH,
                      max_classes: int | None = TERMINAL_CLASSES) -> str:
    """Terminal table of a :func:`compare_reports` result (accuracies in %, deltas in points, with their 95 %
    paired intervals when the runs stored their test predictions); the per-class table lists every class up to
    ``max_classes``, else those whose accuracy changed most (None: every class)."""
    console = text_console(width)
    for label, text in comparison_facts(comparison):
        console.print(text if label == "compared" else f"{label}: {text}")
    # in parts of the columns that fit, as the report's tables (print_class_table): rich had wrapped the intervals
    # of a 110-column table at 80 columns, and the terminal the lines it printed at 110
    columns = [(col, "left" if col == "metric" else "right") for col in METRIC_HEADER]
    # its labels are words ('worst class (c3 (tied with c4, ...))'), wrapped between them, never cut in the middle
    rows, sections = _delta_lines(columns, metric_rows(comparison), width, labels=True)
    print_class_table(console, metric_title(comparison), columns, rows, width, sections=sections, labels=True)
    rows, caption = class_rows(comparison, max_classes, own_intervals=False)
    if not rows:  # no class changed past max_classes: the sentence alone (an empty table's header read as lost rows)
        console.print(caption)
        return console.export_text()
    columns = [(col, "left" if col in ("class", "group") else "right") for col in CLASS_HEADER]
    rows, sections = _delta_lines(columns, rows, width)
    print_class_table(console, "per class", columns, rows, width, caption, sections=sections)
    return console.export_text()


def _delta_lines(columns, rows: list[list[str]], width: int, labels: bool = False) -> tuple[list[list[str]], bool]:
    """``rows`` (of a table of ``columns``) with their last cell, a :func:`_delta_cell`, whole where the table fits
    ``width`` in one part (:func:`~probe.report_text.column_parts`), else broken after its interval where that makes
    it fit (a delta beside its accuracies reads better on two lines than in another table), else on as few lines as
    let its column fit on its own (:func:`~probe.report_text.fits_alone`): broken after its interval, then before
    the images' test too (a number is never broken from its interval); and whether any was broken."""
    from rich.cells import cell_len

    for level in range(2):
        broken = [[*row[:-1], _broken_delta(row[-1], level)] for row in rows]
        if len(column_parts(columns, broken, width, labels)) == 1:
            return broken, level > 0
    for level in range(3):
        broken = [[*row[:-1], _broken_delta(row[-1], level)] for row in rows]
        if fits_alone(max(cell_len(line) for row in broken for line in row[-1].split("\n")), width):
            break
    return broken, level > 0


def _broken_delta(cell: str, level: int) -> str:
    """A :func:`_delta_cell` with a line break after its interval (``level`` 1) and before its images' test (2)."""
    if level >= 1:
        cell = cell.replace("] ", "]\n", 1)
    if level >= 2:
        cell = cell.replace(" (", "\n(", 1)
    return cell
