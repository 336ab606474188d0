"""The disparity-aware decision on validation, with its uncertainty, frontier, group stability and warnings.

:func:`decide` takes every candidate's per-sample validation correctness and the reference (ERM)
configuration's, scores each candidate's difference to the reference on the *same* samples with a paired
stratified bootstrap (:class:`probe.uncertainty.Bootstrap`), bounds the differences of all candidates together
(:func:`probe.uncertainty.simultaneous_lower_bounds`: trying many settings is not many chances to look better),
tests the hard-class images each candidate scores otherwise (a paired sign-flip test weighing each as the
hard-third score does, Bonferroni-adjusted), applies
:func:`probe.selection.choose_safe` under the user's overall-accuracy budget and returns what the report shows:
the chosen index, the verdict, the reason, the frontier (every candidate's Δ overall / Δ hard with intervals and
bounds), how stable each class's group is, and plain-language warnings. Pure numpy: the caller trains and predicts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from .crossfit import CrossFittedThirds
from .groups import GROUP_NAMES, assign_groups
from .numbers import fixed, percent
from .selection import SCORE_DECIMALS, choose_safe, describe_params
from .uncertainty import (DEFAULT_LEVEL, DEFAULT_RESAMPLES, MIN_STABILITY_IMAGES, Bootstrap, delta_intervals,
                          observed_class_accuracy, simultaneous_lower_bounds, widen_interval)

__all__ = ["MIN_VAL_PER_CLASS", "UNSTABLE_GROUP", "IMBALANCE_RATIO", "Decision", "decide", "small_split_warning",
           "imbalance_warning", "stability_and_warnings"]

# Below this many validation images in some class, per-class accuracies move by ≥ 2 points per image and the
# thirds are noisy: the run warns (and k-fold cross-validation is the better protocol).
MIN_VAL_PER_CLASS = 50
# A class that keeps its group in fewer than this fraction of bootstrap resamples is reported as unstable.
UNSTABLE_GROUP = 0.8
# Classes of one accuracy in two thirds, beyond one on the smaller side, that make the tie note (tied_across_thirds).
TIE_MINORITY = 2
# The unstable-groups warning names this many classes, the least stable first (a 300-class run had 206).
UNSTABLE_NAMED = 10
# Largest / smallest class count of train + val from which a run selecting on overall accuracy warns that it
# favours the frequent classes (probe.decision.imbalance_warning).
IMBALANCE_RATIO = 3.0


@dataclass
class Decision:
    index: int
    verdict: str
    reason: str
    frontier: list[dict]
    groups: dict[str, list[int]]
    stability: list[float]
    warnings: list[str] = field(default_factory=list)


def small_split_warning(labels: np.ndarray, class_names: list[str], split: str = "validation",
                        minimum: int = MIN_VAL_PER_CLASS) -> str | None:
    """A warning when some class has fewer than ``minimum`` samples in ``split`` (else None): the smallest classes
    first, and those with none named apart (their accuracy on ``split`` is unmeasured)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    small = sorted((i for i, n in enumerate(counts) if n < minimum), key=lambda i: (counts[i], i))
    if not small:
        return None
    named = ", ".join(f"{class_names[i]} ({counts[i]})" for i in small[:5]) + (" ..." if len(small) > 5 else "")
    measured = counts[counts > 0]
    text = (f"Small {split} split: {len(small)} of {len(class_names)} classes "
            f"{'has' if len(small) == 1 else 'have'} fewer than {minimum} {split} "
            f"images ({named}); one image moves a class's accuracy by up to "
            f"{100 / (measured.min() if measured.size else 1):.3g} points, so differences and groups are "
            "noisy — read the intervals.")
    empty = [class_names[i] for i in small if counts[i] == 0]
    if empty:
        text += (f" {len(empty)} class{'es' if len(empty) > 1 else ''} without any {split} image ("
                 f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}): no {split} accuracy is measured there.")
    return text


def imbalance_ratio(counts) -> float | None:
    """Largest over smallest class size among the classes present, or None with fewer than two: what
    :func:`imbalance_warning` compares with ``IMBALANCE_RATIO`` (the launch form's hint reads it too)."""
    present = np.asarray(counts, dtype=np.int64)
    present = present[present > 0]
    return None if present.size < 2 else float(present.max() / present.min())


def ratio_text(ratio: float) -> str:
    """A class-size ratio as the warning and the launch form say it: one decimal, without a trailing ".0" ("3.5",
    "15"): rounded to a whole number, 14 against 4 images a class read "4×" beside the API's imbalance 3.5."""
    return fixed(ratio, 1).removesuffix(".0")


def imbalance_warning(counts: np.ndarray, test_counts: np.ndarray, class_names: list[str],
                      overall_metric: str = "accuracy") -> str | None:
    """A warning when the classes of train + val (``counts`` per class) differ in size by ``IMBALANCE_RATIO`` or
    more and selection scores accuracy over the images, which counts each class by its frequency; else None.
    It names the rarest classes and says when the test split weighs the classes otherwise."""
    counts, test_counts = np.asarray(counts, dtype=np.int64), np.asarray(test_counts, dtype=np.int64)
    present, ratio = counts[counts > 0], imbalance_ratio(counts)
    if overall_metric != "accuracy" or ratio is None or ratio < IMBALANCE_RATIO:
        return None
    # the classes that make the imbalance (a factor IMBALANCE_RATIO or more below the largest), not the largest too
    rare = [i for i in range(len(class_names)) if 0 < counts[i] * IMBALANCE_RATIO <= present.max()]
    rarest = sorted(rare, key=lambda i: (counts[i], i))[:3]
    text = (f"Imbalanced classes: train + val hold {present.min():,} to {present.max():,} images per class "
            f"({ratio_text(ratio)}×; fewest: "
            + ", ".join(f"{class_names[i]} ({counts[i]:,})" for i in rarest)
            + "). Selection scores overall accuracy, which counts each class by its frequency, so it favours the "
            "frequent classes; where every class matters equally, select on balanced accuracy "
            "(the dashboard's Overall score: balanced; overall_metric='balanced', CLI --overall-metric balanced).")
    seen = test_counts[test_counts > 0]
    share, test_share = counts / counts.sum(), test_counts / max(test_counts.sum(), 1)
    # total variation distance of the two mixes, rounded as scores are (60/20/20 % against 50/25/25 % is
    # 0.09999999999999998 unrounded, and the sentence was left out at exactly 0.1)
    if seen.size and round(0.5 * np.abs(share - test_share).sum(), SCORE_DECIMALS) >= 0.1:
        sizes = (f"{seen.min():,} images in every class" if seen.min() == seen.max()
                 else f"{seen.min():,} to {seen.max():,} images per class")
        text += (f" The test split holds the classes in other proportions ({sizes}), so its overall accuracy "
                 "weighs the classes differently from validation's.")
    return text


def _frontier_entry(params: dict, scores: dict, delta: dict) -> dict:
    return {"params": params, "val_overall": scores["overall"], "val_hard": scores["hard"],
            "val_overall_delta": delta["overall"]["delta"], "val_hard_delta": delta["hard"]["delta"],
            "val_overall_delta_ci": [delta["overall"]["lo"], delta["overall"]["hi"]],
            "val_hard_delta_ci": [delta["hard"]["lo"], delta["hard"]["hi"]]}


def _widened(deltas: dict[str, dict[str, float]], added: dict[str, float]) -> dict[str, dict[str, float]]:
    """``deltas`` (:func:`probe.uncertainty.delta_intervals`) with each 95 % interval widened by the variance its
    small class halves add beyond the bootstrap (``added``: :meth:`CrossFittedThirds.added_variance`), as a
    comparison widens its thirds' (:func:`probe.uncertainty.widen_interval`)."""
    z = NormalDist().inv_cdf(0.5 + DEFAULT_LEVEL / 2.0)
    for key, entry in deltas.items():
        if added.get(key) and math.isfinite(entry["delta"]):
            spread = z * math.sqrt(added[key])
            entry["lo"], entry["hi"] = widen_interval(entry["delta"], entry["lo"], entry["hi"], spread)
    return deltas


def _joint_evidence(entries: list[dict], samples: list[dict], added: list[dict[str, float]],
                    changes: list[tuple[list[int], float]], family: int, hard_images: int) -> None:
    """Add to each scored candidate's frontier entry the simultaneous lower bounds of its hard-third and overall
    differences (:func:`probe.uncertainty.simultaneous_lower_bounds` over all 2m rows of the m candidates, each
    widened as its own interval by ``added``, at the bounds' common tail), its hard-class changes and their
    sign-flip test (:meth:`CrossFittedThirds.hard_changes`), Bonferroni-adjusted over the ``family`` distinct ones
    (:func:`_distinct`), and the ``hard_images`` that test reads: what :func:`probe.selection.choose_safe` decides
    on."""
    if not entries:
        return
    m = len(entries)
    rows = np.stack([s["hard"] for s in samples] + [s["overall"] for s in samples])
    bounds, tail = simultaneous_lower_bounds(rows)
    # a tail of 0 is each row's least resample, about its 1 / (B + 1) quantile
    z = NormalDist().inv_cdf(1.0 - max(tail, 1.0 / (rows.shape[1] + 1)))
    points = [e["val_hard_delta"] for e in entries] + [e["val_overall_delta"] for e in entries]
    extra = [a["hard"] for a in added] + [a["overall"] for a in added]
    bounds = [widen_interval(p, b, p, z * math.sqrt(v))[0] if v and math.isfinite(p) and math.isfinite(b) else b
              for p, b, v in zip(points, bounds, extra)]
    for j, (entry, (changed, p_value)) in enumerate(zip(entries, changes)):
        entry.update(val_hard_delta_simultaneous_lo=float(bounds[j]),
                     val_overall_delta_simultaneous_lo=float(bounds[m + j]), val_hard_changed=changed,
                     val_hard_sign_p=min(1.0, max(family, 1) * p_value), val_hard_sign_p_alone=p_value,
                     val_hard_sign_family=family, val_hard_images=hard_images)


def _distinct(vectors: list[np.ndarray], reference: np.ndarray) -> int:
    """How many tests the sign test's Bonferroni counts among candidates scoring ``vectors``: those scoring exactly
    alike on every sample are one test, and one scoring as the reference is none (it changes no image, so its
    p is 1 whatever the adjustment). 24 group-DRO candidates were about 6 distinct ones on a small set, and the
    adjustment divided by 24 (a new-user round)."""
    seen = {np.asarray(reference, dtype=np.float64).tobytes()}
    family = 0
    for vector in vectors:
        key = np.asarray(vector, dtype=np.float64).tobytes()
        family += key not in seen
        seen.add(key)
    return family


def decide(candidates: list[dict], correct: list[np.ndarray | None], reference_index: int, labels: np.ndarray,
           class_names: list[str], *, groups: dict[str, list[int]] | None = None, max_overall_drop: float = 0.0,
           n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, split: str = "validation",
           overall_metric: str = "accuracy", reference_stability: tuple[list[float], str] | None = None) -> Decision:
    """Choose among candidates by their paired validation differences to the reference configuration.

    Args:
        candidates: hyper-parameter dicts in grid order (a ``failed`` key marks a candidate that did not fit).
        correct: per candidate, (n,) per-sample validation correctness, 0 or 1 (``None`` for a failed one).
        reference_index: the reference (ERM) configuration's position in ``candidates``.
        labels: (n,) validation labels.
        class_names: K names.
        groups: easy / medium / hard class indices (the reference run's); default: ranked from the reference
            candidate's validation per-class accuracy.
        max_overall_drop: percentage points of overall accuracy the user will trade (0 = none).
        n_resamples, seed: the paired bootstrap's resamples.
        split: what the samples are, for the warnings ("validation"; "train + val" for out-of-fold correctness).
        overall_metric: what "overall" is (``probe.metrics.OVERALL_METRICS``): accuracy, or balanced accuracy.
        reference_stability: the stability of ``groups`` as the run that ranked them measured it, and on what
            (:func:`_stability`); None: resampled here.
    """
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = len(class_names)
    reference = np.asarray(correct[reference_index], dtype=np.float64)
    boot = Bootstrap(labels, num_classes, n_resamples=n_resamples, seed=seed, overall=overall_metric)
    ranked = None  # the accuracies that ranked the groups, where they are ranked here (their ties are said)
    if groups is None:
        ranked = observed_class_accuracy(reference, labels, num_classes)
        groups = assign_groups(ranked)
    # the decision's hard third is cross-fitted: ranked on one half of each class's images, measured on the other
    # (probe.crossfit; ranked on the images it is measured on, it chose a candidate equal to the reference in up to
    # 54 % of simulated trials with a budget); ``groups`` stay the report's thirds and their stability
    fit = CrossFittedThirds(labels, num_classes, reference, seed=seed, n_resamples=n_resamples,
                            overall_metric=overall_metric)
    frontier, entries, samples, added, changes, vectors = [], [], [], [], [], []  # all but the first: of the scored
    for i, (params, vector) in enumerate(zip(candidates, correct)):
        if vector is None or params.get("failed"):
            frontier.append({"params": params, "failed": params.get("failed", "no predictions")})
            continue
        vector = np.asarray(vector, dtype=np.float64)
        point, resampled = fit.paired_delta_samples(vector)
        variance = fit.added_variance(vector)
        frontier.append(_frontier_entry(params, fit.scores(vector), _widened(delta_intervals(point, resampled),
                                                                             variance)))
        if i != reference_index:
            entries.append(frontier[-1])
            samples.append(resampled)
            added.append(variance)
            changes.append(fit.hard_changes(vector))
            vectors.append(vector)
    _joint_evidence(entries, samples, added, changes, _distinct(vectors, reference), int(fit.hard_samples.sum()))
    scored = [dict(entry["params"], **{k: v for k, v in entry.items() if k != "params"}) for entry in frontier]
    index, verdict, reason = choose_safe(scored, reference_index, max_overall_drop / 100.0,
                                         "balanced" if overall_metric == "balanced" else "overall")
    for i, entry in enumerate(frontier):
        entry["chosen"], entry["reference"] = i == index, i == reference_index
    stability, resampled = _stability(boot, reference, groups, split, reference_stability)
    return Decision(index, verdict, reason, frontier, groups, [float(s) for s in stability],
                    _warnings(labels, class_names, groups, stability, frontier, split, ranked, resampled))


def _stability(boot: Bootstrap, correct: np.ndarray, groups: dict[str, list[int]], split: str,
               reference_stability: tuple[list[float], str] | None) -> tuple[np.ndarray, str]:
    """Each class's stability in its third and what was resampled for it: the run's that ranked the thirds where
    they are a reference run's (``reference_stability``), else ``correct``'s on this ``split``. Resampled on this
    run's validation images, a reference's thirds ranked on other images read as other thirds: a class ranked hard
    at 95.8 % on 120 out-of-fold images and at 100 % on 20 validation ones was 0 % stable here, 83 % in the
    reference run (a scale round)."""
    if reference_stability is not None:
        return np.asarray(reference_stability[0], dtype=np.float64), reference_stability[1]
    return boot.group_stability(correct, groups), f"the {split} split"


def stability_and_warnings(correct: np.ndarray, labels: np.ndarray, class_names: list[str],
                           groups: dict[str, list[int]], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                           split: str = "validation", reference_stability: tuple[list[float], str] | None = None
                           ) -> tuple[list[float], list[str]]:
    """Group stability (per class, on validation resamples of ``correct``, or the reference run's where the groups
    are its: :func:`_stability`) and the warnings, for runs that select on overall accuracy (no decision to make,
    the groups and the split size still need their caveats)."""
    labels = np.asarray(labels, dtype=np.int64)
    boot = Bootstrap(labels, len(class_names), n_resamples=n_resamples, seed=seed)
    stability, resampled = _stability(boot, np.asarray(correct, dtype=np.float64), groups, split, reference_stability)
    return [float(s) for s in stability], _warnings(labels, class_names, groups, stability, [], split,
                                                    resampled=resampled)


def unranked_note(accuracy: np.ndarray, groups: dict[str, list[int]], split: str = "validation") -> str | None:
    """A note where classes without a ``split`` accuracy (no image there) were ranked: they rank hardest
    (``probe.groups.assign_groups``), so the hard third holds them for want of a measurement (300 classes of 1,000
    without a validation image made 300 of the hard third's 333, 100 of them at 75 % on test, and the hard third's
    accuracy was mostly theirs without a word; a 1,000-class round). ``accuracy`` must be what ranked ``groups``;
    None when every class was measured."""
    unranked = {int(i) for i in np.flatnonzero(np.isnan(np.asarray(accuracy, dtype=np.float64)))}
    if not unranked:
        return None
    members = {name: set(map(int, groups.get(name, []))) for name in ("hard", "medium", "easy")}
    held = ", ".join(f"{len(unranked & m)} of {len(m)} in the {name} third" for name, m in members.items()
                     if unranked & m)
    many = len(unranked) > 1
    return (f"{len(unranked)} class{'es' if many else ''} without any {split} image {'were' if many else 'was'} "
            f"ranked hardest, unmeasured ({held}): the thirds' accuracies, and any gain on the hard third, are "
            f"partly about {'them' if many else 'it'}, not about classes measured to be hard.")


def tied_across_thirds(accuracy: np.ndarray, groups: dict[str, list[int]], split: str = "validation") -> str | None:
    """A note where classes of one accuracy fall in two thirds: the ranking breaks the tie by class index
    (``probe.groups.assign_groups``), so their thirds, and their instability, come from the tie, not from a
    difference (119 classes at 100 % were split 100 easy / 19 medium and named least stable without a word of
    it; a scale round). One class on each side of an edge is the ordinary edge of a third, except at the hard
    third's. ``accuracy`` must be what ranked ``groups``; None without such a tie."""
    from collections import Counter

    group_of = {int(i): name for name in GROUP_NAMES for i in groups.get(name, [])}
    sizes = {name: len(groups.get(name, [])) for name in GROUP_NAMES}
    by_value: dict[float, Counter] = {}
    for i, value in enumerate(np.asarray(accuracy, dtype=np.float64)):
        if not np.isnan(value) and i in group_of:
            by_value.setdefault(round(float(value), 9), Counter())[group_of[i]] += 1
    # a tie whose smaller side holds one class is the ordinary edge of a third; from two on, the split is the tie's.
    # At the hard third's edge one is enough: which class the report calls hard is the tie's (two classes tied,
    # cat easy and dog hard by class order, and the disparity run then raised "hard" dog; a new-user round at K=2)
    # A tie that holds a whole third it splits decides that third (5 classes: one medium class tied with the two
    # easy ones at 100 %, and the tie made it medium; a new-user round).
    ties = sorted((v for v, c in by_value.items() if sum(c.values()) - max(c.values()) >= TIE_MINORITY
                   or (c["hard"] and sum(c.values()) > c["hard"])
                   or any(c[n] == sizes[n] and sum(c.values()) > c[n] for n in GROUP_NAMES if c[n])), reverse=True)
    if not ties:
        return None
    listed = "; ".join(f"{sum(by_value[v].values())} at {percent(v, 1)} % ("
                       + " / ".join(f"{by_value[v][n]} {n}" for n in GROUP_NAMES if by_value[v][n]) + ")"
                       for v in ties[:3])
    return (f"Tied {split} accuracies span thirds ({listed}): the ranking split each tie by class index, so "
            "those classes' thirds, and their stability, say nothing about them apart.")


def _warnings(labels: np.ndarray, class_names: list[str], groups: dict, stability: np.ndarray,
              frontier: list[dict], split: str = "validation", accuracy: np.ndarray | None = None,
              resampled: str | None = None) -> list[str]:
    out = []
    small = small_split_warning(labels, class_names, split)
    if small:
        out.append(small)
    tied = None if accuracy is None else tied_across_thirds(accuracy, groups, split)
    if tied:
        out.append(tied)
    unstable = sorted((i for i in range(len(class_names)) if stability[i] < UNSTABLE_GROUP),
                      key=lambda i: (stability[i], i))
    if unstable:
        group_of = {i: name for name in GROUP_NAMES for i in groups.get(name, [])}
        # one decimal, as the per-class table: 0.799 read "80 %" under "fewer than 80 %" (a dashboard round)
        named = ", ".join(f"{class_names[i]} ({group_of.get(i, '?')}, {percent(stability[i], 1)} %)"
                          for i in unstable[:UNSTABLE_NAMED])
        more = len(unstable) - UNSTABLE_NAMED
        rest = f"; {more} more in grouping.stability" if more > 0 else ""
        out.append(f"Unstable groups: {len(unstable)} classes keep their third in fewer than "
                   f"{100 * UNSTABLE_GROUP:.0f} % of bootstrap resamples of {resampled or f'the {split} split'}, "
                   "least stable "
                   f"first: {named}{rest}.")
    few = [i for i in range(len(class_names)) if np.isnan(stability[i])]
    if few:
        out.append(f"Group stability not measured for {len(few)} class{'es' if len(few) > 1 else ''} of fewer than "
                   f"{MIN_STABILITY_IMAGES} images in {resampled or f'the {split} split'} ("
                   + ", ".join(class_names[i] for i in few[:UNSTABLE_NAMED])
                   + (f"; {len(few) - UNSTABLE_NAMED} more" if len(few) > UNSTABLE_NAMED else "")
                   + "): resampling one image cannot move its accuracy, so its third is as uncertain as it gets.")
    failed = [e for e in frontier if e.get("failed")]
    if failed:
        out.append(f"{len(failed)} candidate(s) failed and were never selected: "
                   + "; ".join(f"{describe_params(e['params'])}: {e['failed']}" for e in failed[:5]))
    return out
