"""The run report (``report.json``, schema_version 2 of docs/ARCHITECTURE.md), its CSV view and its run folder's files
(the terminal view and the text helpers the views share: ``probe.report_text``).

Aggregation over seeds (all on the test split unless named ``val``):

* ``summary.overall / balanced / easy / medium / hard / per_class_std / group_margin / class_margin_deg /
  min_sample_margin``: the mean over seeds of the per-seed value (group accuracies are macro means of the
  per-class accuracies of the group's classes);
* ``summary.worst_class``: the class with the lowest seed-mean accuracy, and that accuracy (a named class);
  ``seeds.metrics.worst_class`` is the per-seed worst accuracy, whichever class it is;
* ``std`` over seeds is the sample standard deviation (ddof = 1), 0 for a single seed;
* ``per_class.r2 / r / spread / gamma`` come from the first seed's trainer (``r2_``, ``spread_``, ``gamma_``):
  exact class statistics of the features the head sees; ``gamma`` is null for losses without class margins.

The schema is the :class:`Report` model below (nested models for every part); a number that can be missing is
``Num`` (optional float): NaN / ±inf become None on construction, so they are JSON ``null`` and an empty CSV cell,
in report.json and in the API alike.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, NamedTuple, Optional

import numpy as np
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError,
                      field_validator, model_validator)

from .calibration import CALIBRATION_P_FLOOR, TEMPERATURE_BOUNDS
from .groups import GROUP_NAMES, group_accuracy, group_of
from .metrics import (OVERALL_METRICS, balanced_accuracy, confusion_cells, confusion_submatrix,
                      ideal_class_margin_deg, ideal_sample_margin, most_confused_classes, nan_mean, per_class_std,
                      worst_class)
from .near_duplicates import PAIRS_FILE, SAMPLE_DRAW, UNCHECKED_REASONS, rule_text, share_text, write_pairs
from .predictions import PREDICTIONS_FILE
from .registry import get_loss_spec
from .rundir import INCOMING_DIR, STAGING_DIR, recover_run, replace_run, writer_file
from .seen import SEEN_FILE
from .names import listed, listed_name, repeated, shown_name
from .numbers import csv_cell, interval_text, number_text, percent, signed_points
from .config import DEFAULT_CV_FOLDS
from .decision import MIN_VAL_PER_CLASS
from .selection import SIGN_TEST_ALPHA, VERDICTS, format_delta, past_budget, same_score
from .uncertainty import intervals_or_none, p_text, wilson_interval

logger = logging.getLogger(__name__)

__all__ = ["SCHEMA_VERSION", "CHART_CLASSES", "DENSE_CONFUSION_MAX", "READABLE_VERSIONS", "PER_CLASS_COLUMNS", "Report", "Selection", "Candidate",
           "FrontierPoint", "CrossValidation", "Confusion", "Calibration", "TemperatureScaling", "UnscaledCalibration",
           "ReliabilityBin", "HEATMAP_CLASSES", "ConfusionFocus", "ConfusedWith", "ConfusedPair", "CONFUSED_PAIRS",
           "Grouping", "Summary",
           "PerClassRow", "Seeds", "SeedMetric", "ValSummary", "Posthoc", "PresetInfo", "Timing", "FeatureSource",
           "Environment", "run_environment",
           "build_report", "write_run", "load_report", "report_csv", "report_json", "interval_text",
           "confusions_text", "CONFUSIONS_HEADER", "Verdict",
           "TestCheck",
           "TestCheckWords", "TEST_CHECKS", "VerdictWords", "VERDICT_WORDS", "POSTHOC_WORDS", "verdict_label", "probe_label",
           "loss_label", "posthoc_text"]

SCHEMA_VERSION = 2
TEMPERATURE_FILE = "temperature.json"  # the shipped head's temperature, for code that does not read the report
# The disparity-aware decision's outcome (selection.verdict): improved, no safe improvement, or not applicable (a run
# that selected on overall accuracy).
Verdict = Literal[VERDICTS]  # probe.selection.VERDICTS
TestCheck = Literal["holds", "within_noise", "reversed", "overall_lost"]
class TestCheckWords(NamedTuple):
    """How every view names one :data:`TestCheck`, whether an improvement decided on validation held on test (the
    runs list alone showed it, and a run whose gain reversed on test read "verdict (improved)" everywhere else: a
    statistics review). The dashboard reads these from ``/words.js`` (app.routes.dashboard): its own copy of them
    had been written apart."""

    text: str  # after the verdict's name in the terminal, Markdown and run page: "improved; reversed on test"
    short: str  # beside "improved" in the runs list; "" where it held (nothing to flag)
    detail: str  # what it means, the dashboard's tooltip
    tone: Literal["pos", "muted", "neg"]  # the dashboard's colour


TEST_CHECKS: dict[str, TestCheckWords] = {
    "holds": TestCheckWords("held on test", "", "on test the hard third's paired interval is above 0 and its images "
                            "lean that way beyond chance", "pos"),
    "within_noise": TestCheckWords(
        "not confirmed on test (within noise)", "test: within noise", "on test the hard-third difference to the "
        "reference holds 0 in its 95 % interval, or its images do not lean one way beyond chance (sign-flip test "
        "p > 0.05)", "muted"),
    "reversed": TestCheckWords("reversed on test", "test: worse", "on test the hard third is below the reference's: "
                               "its interval below 0 and its images leaning that way", "neg"),
    "overall_lost": TestCheckWords(
        "overall lost beyond the budget on test", "test: overall lost", "on test the overall difference to the "
        "reference (by overall_metric) lies wholly below minus the overall-accuracy budget in its 95 % interval, its "
        "images leaning that way beyond chance: the improvement cost more than was allowed", "neg"),
}


class VerdictWords(NamedTuple):
    """How every view names a disparity-aware decision (:data:`Verdict`) that was made."""

    label: str  # its name: the runs list's verdict column, the terminal's "verdict (...)"
    detail: str  # what it means: the job's message of the finished run, the dashboard's tooltip
    tone: Literal["pos", "muted"]  # the dashboard's colour


VERDICT_WORDS: dict[str, VerdictWords] = {
    "improved": VerdictWords("improved", "hard classes raised beyond noise on validation", "pos"),
    "no_safe_improvement": VerdictWords("no safe improvement", "no safe improvement found: the run is the reference "
                                        "(ERM) configuration", "muted"),
}


# What a post-hoc bias run's guard did for the probe that ships (Posthoc.outcome): the runs list's verdict column
# showed "–" for such a run, its outcome only in its name and banner (a dashboard-only round).
PosthocOutcome = Literal["applied", "declined", "untested", "unchecked"]
# what ships where the bias is not applied: "the ERM probe" was said of a focal or MR² run's too (a review)
UNBIASED_SHIPS = "the probe ships as trained, without the bias"
POSTHOC_WORDS: dict[str, VerdictWords] = {
    "applied": VerdictWords("bias applied", "the post-hoc bias raised the hard third beyond noise out of sample "
                            "(cross-fitted on validation) and ships", "pos"),
    "declined": VerdictWords("bias not applied", "its out-of-sample check did not pass the rule (a hard-third gain "
                             "beyond noise within the overall-accuracy budget; the run's post-hoc line gives its "
                             f"figures): {UNBIASED_SHIPS}", "muted"),
    "untested": VerdictWords("bias not applied", "too few validation images in some class to test it: "
                             f"{UNBIASED_SHIPS}", "muted"),
    "unchecked": VerdictWords("bias unchecked", "applied without its out-of-sample check (posthoc_guard off, or a "
                              "run from before the check)", "muted"),
}


def verdict_label(verdict: str, test_check: str | None) -> str:
    """``improved; reversed on test``: the verdict's name, and for an improvement what test said of it."""
    label = VERDICT_WORDS[verdict].label if verdict in VERDICT_WORDS else verdict.replace("_", " ")
    return f"{label}; {TEST_CHECKS[test_check].text}" if verdict == "improved" and test_check in TEST_CHECKS else label


def probe_label(loss: str | None, head: str | None) -> str:
    """The probe a run ships in a few words, ``ERM (ce), linear head``: its loss (as :func:`loss_label` gives it for
    a report, or a run row's bare name) and head; "" where neither is known. The runs list (``RunOut.probe``) and
    compare's probes line (probe.compare.probe_words) both start with it."""
    if not loss and not head:
        return ""
    return f"{'ERM (ce)' if loss == 'ce' else loss or '?'}, {head or '?'} head"
READABLE_VERSIONS = (1, 2)  # version 1 files lack the fields version 2 added; they read as null / empty
PER_CLASS_COLUMNS = ("index", "name", "group", "n_train", "n_test", "accuracy", "accuracy_std", "accuracy_ci_lo",
                     "accuracy_ci_hi", "val_accuracy", "precision", "recall", "f1", "support", "r2", "r", "spread",
                     "gamma", "output_margin", "sample_margin_min", "sample_margin_mean", "stability",
                     "top_confusions", "n_val", "shipped_accuracy", "precision_ci_lo", "precision_ci_hi",
                     "recall_ci_lo", "recall_ci_hi", "f1_ci_lo", "f1_ci_hi", "val_accuracy_ci_lo", "val_accuracy_ci_hi",
                     "shipped_accuracy_ci_lo", "shipped_accuracy_ci_hi")
# The per-class fields that carry a 95 % interval beside them (``<name>_ci``), written as ``<name>_ci_lo`` and
# ``<name>_ci_hi`` in per_class.csv
CLASS_INTERVALS = ("accuracy", "precision", "recall", "f1", "val_accuracy", "shipped_accuracy")
SEED_METRICS = ("overall", "balanced", "easy", "medium", "hard", "worst_class")
# The per-class charts (the dashboard's, the HTML export's) draw the worst this many: 1,000 bars made an SVG 18,036 px
# tall (a 1,000-class round); their tables list every class.
CHART_CLASSES = 60


def _finite_or_none(value: Any) -> Any:
    """NaN and ±inf (a class without samples, a diverged value) become None; numpy scalars become Python floats."""
    if value is None or isinstance(value, (str, bool)):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


# A number that can be missing: NaN / ±inf / None on the way in, null in JSON (never NaN).
Num = Annotated[Optional[float], BeforeValidator(_finite_or_none)]
NumList = Annotated[list[Num], BeforeValidator(lambda v: list(np.asarray(v, dtype=np.float64).tolist())
                                               if isinstance(v, np.ndarray) else v)]
# A [lo, hi] interval: a report.json edited to one number was read and failed the md / html exports (an attack round)
Interval = Annotated[NumList, Field(min_length=2, max_length=2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PresetInfo(_Model):
    """The preset a run used: its settings and the evidence for recommending it (``probe.PRESETS``)."""

    name: str
    settings: dict[str, Any]
    why: str


class Candidate(BaseModel):
    """One selection candidate: its hyper-parameters (lr, weight_decay, and cbar / lam / grid loss options when
    selected, as extra keys), its validation scores, and why it failed (``diverged: ...``) or null. ``val_hard``
    is the hard third on the reference run's groups under the ``hard`` criterion, and on the candidate's own
    ranking under ``overall`` (with or without a reference, so that the tie-break matches an ERM run's)."""

    model_config = ConfigDict(extra="allow")
    lr: float
    weight_decay: float
    val_overall: Num = None
    val_hard: Num = None
    failed: Optional[str] = None


class FrontierPoint(_Model):
    """One candidate of the disparity-aware decision: its validation scores and its paired differences to the
    reference (ERM) configuration on the same validation samples, with 95 % bootstrap intervals (fractions),
    each on its own. What the decision reads (``probe.selection.choose_safe``; null for the reference, a failed
    candidate and reports before they existed): the lower bounds of the two differences that hold together over
    every candidate of the run (``*_simultaneous_lo``), and the hard classes' images the candidate scores higher
    and lower than the reference (``val_hard_changed``, [fixed, broken]) with their paired sign-flip test (each
    image weighing 1/n of its class half, as the hard score; before stop 57 the exact sign test of the counts),
    Bonferroni-adjusted over the distinct candidates (``val_hard_sign_p``, ``val_hard_sign_family``). Since stop 53
    ``val_hard`` and the hard deltas are the decision's cross-fitted hard third (``probe.crossfit``: ranked on one
    half of each class's images, measured on the other), not the groups' hard third ``Candidate.val_hard`` reads."""

    params: dict[str, Any]
    val_overall: Num = None
    val_hard: Num = None
    val_overall_delta: Num = None
    val_hard_delta: Num = None
    val_overall_delta_ci: Optional[NumList] = None
    val_hard_delta_ci: Optional[NumList] = None
    val_overall_delta_simultaneous_lo: Num = None
    val_hard_delta_simultaneous_lo: Num = None
    val_hard_changed: Optional[list[int]] = None
    val_hard_sign_p: Num = None
    val_hard_sign_p_alone: Num = Field(None, description="that test's p before Bonferroni (null in reports before it: "
                                       "their exact sign test of val_hard_changed)")
    val_hard_sign_family: Optional[NonNegativeInt] = Field(
        None, description="how many tests the sign test's Bonferroni counts: the fitted candidates that score "
        "otherwise than the reference, those scoring exactly alike on every sample counted once (group DRO's small "
        "η scored as one another); null in reports before it, which counted every fitted candidate")
    val_hard_images: Optional[NonNegativeInt] = Field(
        None, description="the validation images the hard-class sign test reads (the cross-fitted hard third's): "
        "with too few, no candidate can pass it (probe.selection.sign_test_reachable); null in reports before it")
    failed: Optional[str] = None
    chosen: bool = False
    reference: bool = False


class CrossValidation(_Model):
    """Selection by stratified k-fold cross-validation on train + val (``probe.crossval``), used instead of a
    validation split with fewer than ``probe.decision.MIN_VAL_PER_CLASS`` images in some class."""

    folds: int = Field(..., description="k, the number of folds")
    samples: int = Field(..., description="train + val samples, each scored once, by the fold that held it out")
    reason: str = Field(..., description="why the validation split was not used")

    def describe(self, asked: int | None = None) -> str:
        """How the terminal, Markdown and HTML views name it; ``asked``: the folds the configuration asked for
        (``config.cv``), said where fewer ran (lowered to the smallest class's count)."""
        of = f" (of {asked} asked)" if asked is not None and asked != self.folds else ""
        return f"{self.folds}-fold{of} cross-validation of train + val, {self.samples} images"


# Folds asked by hand that a large enough validation split did not need, as every view says it: one definition, the
# run page's too (/words.js ``cv.not_needed``, its ``{asked}`` and ``{least}`` filled there as here).
CV_NOT_NEEDED = "val; cv {asked} asked, not needed: at least {least} validation images in every class"


def selection_split_text(cv: CrossValidation | None, asked: int | None, fewest_val: int | None) -> str:
    """Where the candidates were scored, as the terminal, Markdown and HTML views say it: ``cv`` (the report's
    ``selection.cv``) described with the folds ``asked`` (``config.cv``), else "val", with folds asked by hand said
    not needed where every class had ``MIN_VAL_PER_CLASS`` validation images (``fewest_val``, the fewest of any
    class; a run asked for cv 20 that ran none read as if the folds were ignored)."""
    if cv is not None:
        return cv.describe(asked)
    if asked in (None, 0, DEFAULT_CV_FOLDS) or fewest_val is None or fewest_val < MIN_VAL_PER_CLASS:
        return "val"  # the default's folds unsaid, as most runs (a large enough validation split) run none
    return CV_NOT_NEEDED.format(asked=asked, least=MIN_VAL_PER_CLASS)


class Selection(_Model):
    """Hyper-parameter selection on validation: the criterion, every candidate, the chosen one and why.

    ``cv``: null when the validation split scored the candidates; else the cross-validation that did
    (``split`` is then ``cv``), and every ``val_*`` score of the candidates and the frontier is an out-of-fold
    estimate on train + val.

    ``verdict``: ``improved`` / ``no_safe_improvement`` for the disparity-aware criterion (``hard``, decided on
    validation; ``test_check`` says whether an improvement held on test), whose
    ``frontier`` lists every candidate with its intervals; ``not_applicable`` for ``overall``. ``verdict_text`` is
    the one sentence a user reads first. ``requested`` is the request as given when the run kept the reference
    configuration instead (``config`` then describes what was trained)."""

    criterion: str
    split: Literal["val", "cv"] = "val"
    candidates: list[Candidate]
    chosen: Candidate
    reason: str
    preset: Optional[PresetInfo] = None
    verdict: Verdict = "not_applicable"
    verdict_text: str = ""
    test_check: Optional[TestCheck] = Field(
        None, description="for an improved verdict (decided on validation), the paired test difference of the hard "
        "third against the reference configuration: holds (its 95 % interval above 0 and its images' exact "
        "sign-flip test p ≤ 0.05 that way), reversed (likewise below 0), overall_lost (the hard third not reversed, "
        "but the overall difference, by overall_metric, wholly below -max_overall_drop in its 95 % interval with "
        "its images leaning that way: a cost past the budget), else within_noise; null otherwise and in reports "
        "written before it")
    frontier: list[FrontierPoint] = Field(default_factory=list)
    requested: Optional[dict[str, Any]] = None
    cv: Optional[CrossValidation] = None


class Grouping(_Model):
    """Where the easy / medium / hard thirds come from, and the class indices of each."""

    source: Literal["reference", "self"]
    reference_run: Optional[str]
    split: Literal["val", "cv"] = "val"
    note: str
    groups: dict[str, list[int]]
    stability: Optional[NumList] = Field(None, description="per class: fraction of bootstrap resamples of the "
                                         "validation split (train + val out of fold under cross-validation) in "
                                         "which the class keeps its group; with a reference run's groups, that "
                                         "run's, measured on the images that ranked them")


TIES_LISTED = 10  # the worst class's ties named; the others counted (209 of 1,000 classes tied at 0: 117 lines)


class WorstClass(_Model):
    name: str
    accuracy: Num
    tied_with: list[str] = Field(default_factory=list, description=f"the other classes of the same (seed-mean) "
                                 f"accuracy, in class order, the first {TIES_LISTED} of them (tied_count says how "
                                 "many): the name is the first of them by class index; empty in older reports")
    tied_count: Optional[NonNegativeInt] = Field(None, description="how many other classes have that accuracy; null "
                                                 "in reports written before it (tied_with lists them all there)")
    text: Optional[str] = Field(None, description="label() in words, what the pages show: derived from the fields "
                                "above whenever the model is built or read")

    @classmethod
    def of(cls, name: str, accuracy: float, tied: list[str]) -> "WorstClass":
        """The worst class ``name`` at ``accuracy`` and the other classes ``tied`` with it (named as far as
        :data:`TIES_LISTED` by the model)."""
        return cls(name=name, accuracy=accuracy, tied_with=tied, tied_count=len(tied))

    @classmethod
    def among(cls, class_names: list[str], accuracy, index: int) -> "WorstClass":
        """The class ``index`` of per-class ``accuracy`` (K,; NaN: no test image) as the worst, the other classes
        of its score (:func:`probe.selection.same_score`) its ties: the report's summary and compare's worst class
        name a tie alike (compare named one of 10 classes at 0 % alone; a first-user round)."""
        value = float(accuracy[index])
        return cls.of(class_names[index], value, [class_names[i] for i, v in enumerate(accuracy)
                                                  if i != index and math.isfinite(v) and same_score(v, value)])

    @model_validator(mode="after")
    def _worded(self) -> "WorstClass":
        # the ties named as far as TIES_LISTED and counted, in a report written before tied_count too (a re-test)
        if len(self.tied_with) > TIES_LISTED:
            self.tied_count = max(self.tied_count or 0, len(self.tied_with))
            self.tied_with = self.tied_with[:TIES_LISTED]
        self.text = self.label()
        return self

    def ties(self) -> str:
        """`` (tied with horse)``, `` (tied with a, ..., j and 199 more)`` or "": what every view says after its
        name."""
        if not self.tied_with:
            return ""
        more = (self.tied_count or 0) - len(self.tied_with)
        return f" (tied with {', '.join(map(listed_name, self.tied_with))}{f' and {more} more' if more > 0 else ''})"

    def label(self) -> str:
        """``bird``, or ``bird (tied with horse)``: how every view names it (a name with white space at an end
        quoted, :func:`~probe.names.shown_name`)."""
        return shown_name(self.name) + self.ties()


class GroupValues(_Model):
    easy: Num
    medium: Num
    hard: Num


class Summary(_Model):
    """Test metrics, means over seeds (fractions; margins as documented in the module docstring)."""

    overall: Num
    overall_ci: Optional[Interval] = Field(None, description="95 % Wilson score interval of the overall test "
                                          "accuracy (seed mean) over the test images; null in reports written "
                                          "before it")
    balanced: Num
    easy: Num
    medium: Num
    hard: Num
    group_ci: Optional[dict[str, Optional[Interval]]] = Field(
        None, description="95 % intervals over the test images of balanced accuracy and of each third's accuracy "
        "(seed means; percentile intervals of each class's Jeffreys posterior draws, a third of one class that "
        "class's Wilson interval: probe.uncertainty.group_intervals); null in reports written before it")
    worst_class: WorstClass
    shipped_overall_ci: Optional[Interval] = Field(
        None, description="95 % Wilson score interval of the shipped probe's (first seed's) overall test accuracy, "
        "with more than one seed; null with one (overall_ci is its) and in older reports")
    worst_class_ci: Optional[Interval] = Field(
        None, description="95 % Wilson score interval of the worst class's test accuracy (seed mean), its per-class "
        "row's accuracy_ci: the runs list gave the worst class without one; null in reports written before it")
    shipped_worst_class: Optional[WorstClass] = Field(
        None, description="the shipped probe's (first seed's) worst class on test, with more than one seed "
        "(shipped_worst); null with one seed, where it is worst_class, and in older reports")
    per_class_std: Num
    group_margin: GroupValues
    class_margin_deg: Num
    ideal_class_margin_deg: Num
    min_sample_margin: Num
    ideal_sample_margin: Num


class SeedMetric(_Model):
    mean: Num
    std: Num = Field(..., description="sample standard deviation over seeds (ddof 1); 0 for one seed")
    per_seed: NumList


class Seeds(_Model):
    values: list[int]
    metrics: dict[str, SeedMetric] = Field(..., description=f"keys: {', '.join(SEED_METRICS)}")


class ConfusedWith(_Model):
    index: int
    name: str
    rate: float = Field(..., description="fraction of the class's test images predicted as this class (each image "
                        "once per seed)")


# The header of a class's top_confusions wherever they are a column: "% of its test predictions" read as the share of
# the predictions of X, a precision (a new-user round); it is the share of the class's own test images.
CONFUSIONS_HEADER = "most often predicted as (% of its test images)"


# Up to this many classes report.json holds the confusion matrix as K × K counts; beyond, as its non-zero cells (a
# 5,000-class report held 25 M numbers, 80 MB, and the service read all of it for every page, score and export).
DENSE_CONFUSION_MAX = 100
# Up to this many classes the dashboard draws the whole K × K heat map (cells of at least 14 px: 840 px at 60); beyond,
# Confusion.focus holds the sub-matrix of this many most confused classes that it draws instead.
HEATMAP_CLASSES = 60
# A confusion count of report.json: one numpy's int64 holds (10**30 there failed the md / html exports with an
# OverflowError, a 500; an attack round)
ConfusionCount = Annotated[int, Field(ge=0, le=np.iinfo(np.int64).max)]


class ConfusionFocus(_Model):
    """Beyond ``HEATMAP_CLASSES`` classes, the sub-matrix of the most confused ones (probe.metrics
    .most_confused_classes, .confusion_submatrix): derived from the matrix whenever the report is built or read."""

    classes: list[NonNegativeInt] = Field(..., description="the shown classes' indices, most confused first: the "
                                          f"≤ {HEATMAP_CLASSES} classes with the most test images predicted as "
                                          "another class plus other classes' images predicted as them")
    counts: list[list[NonNegativeInt]] = Field(..., description="(n + 1) × (n + 1): their rows and columns, in that "
                                               "order, and a last row and column for all other classes (each row sums "
                                               "to its class's test images, as in the full matrix)")


# report.json lists this many most confused pairs of classes (Confusion.pairs), what the dashboard's card shows.
CONFUSED_PAIRS = 10


class ConfusedPair(_Model):
    """An off-diagonal cell of the test confusion matrix, among the highest rates (:meth:`Confusion.top_pairs`)."""

    true: NonNegativeInt = Field(..., description="the true class's index")
    predicted: NonNegativeInt = Field(..., description="the class its images were predicted as")
    count: NonNegativeInt = Field(..., description="predictions of all seeds: each image once per seed")
    predictions: PositiveInt = Field(..., description="the true class's test predictions of all seeds (its test "
                                     "images × seeds)")
    rate: float = Field(..., description="count / predictions: the seed mean of the share of the true class's test "
                        "images predicted as this class")
    rate_ci: Optional[Interval] = Field(None, description="95 % Wilson interval of that share over the class's test "
                                        "images, each counted once (count / seeds of predictions / seeds), as a "
                                        "class's accuracy_ci; null where the number of seeds is not known")


class Confusion(_Model):
    """Test confusion counts summed over seeds; rows = true class, columns = predicted class: ``counts`` (K × K) up to
    ``DENSE_CONFUSION_MAX`` classes, else ``cells``, each non-zero one as ``[true, predicted, count]``."""

    split: Literal["test"] = "test"
    counts: Optional[list[list[ConfusionCount]]] = None
    cells: Optional[list[Annotated[list[ConfusionCount], Field(min_length=3, max_length=3)]]] = Field(
        None, description="beyond DENSE_CONFUSION_MAX classes: the non-zero cells, [true, predicted, count]")
    focus: Optional[ConfusionFocus] = Field(None, description=f"beyond {HEATMAP_CLASSES} classes: the most confused "
                                            "classes' sub-matrix (derived on reading; null up to it)")
    pairs: list[ConfusedPair] = Field(default_factory=list, description=f"the ≤ {CONFUSED_PAIRS} off-diagonal "
                                      "cells of the highest rate, then count, then the first in row order, each with "
                                      "its interval (derived on reading)")

    @model_validator(mode="after")
    def _one_form(self) -> "Confusion":
        if (self.counts is None) == (self.cells is None):
            raise ValueError("confusion holds either counts (K × K) or cells ([true, predicted, count]), one of them")
        return self

    @classmethod
    def of(cls, matrix: np.ndarray) -> "Confusion":
        """The report's form of a (K, K) count matrix."""
        if len(matrix) <= DENSE_CONFUSION_MAX:
            return cls(counts=np.asarray(matrix).tolist())
        true, predicted = np.nonzero(matrix)
        return cls(cells=np.stack([true, predicted, matrix[true, predicted]], axis=1).tolist())

    def dense(self, num_classes: int) -> np.ndarray:
        """The (K, K) counts, whichever form holds them."""
        if self.counts is not None:
            return np.asarray(self.counts, dtype=np.int64).reshape(num_classes, num_classes)
        out = np.zeros((num_classes, num_classes), dtype=np.int64)
        cells = np.asarray(self.cells, dtype=np.int64).reshape(-1, 3)
        np.add.at(out, (cells[:, 0], cells[:, 1]), cells[:, 2])
        return out

    def with_focus(self, num_classes: int) -> "Confusion":
        """Itself with ``focus`` derived from the matrix: the most confused classes' sub-matrix beyond
        ``HEATMAP_CLASSES`` classes, else None."""
        self.focus = self.most_confused(num_classes) if num_classes > HEATMAP_CLASSES else None
        return self

    def with_pairs(self, num_classes: int, seeds: int | None) -> "Confusion":
        """Itself with ``pairs`` derived from the matrix (:meth:`top_pairs`)."""
        self.pairs = self.top_pairs(num_classes, seeds)
        return self

    def top_pairs(self, num_classes: int, seeds: int | None, limit: int = CONFUSED_PAIRS) -> list[ConfusedPair]:
        """The ≤ ``limit`` off-diagonal cells of the highest rate (count / the true class's predictions), then the
        highest count, then row order, each with its rate's Wilson interval over the class's test images: a pair
        counted over ``seeds`` seeds is the seed-mean share of its images (``probe.uncertainty.wilson_interval`` of
        count / seeds of predictions / seeds, as a class's accuracy_ci); no interval where ``seeds`` is unknown."""
        cells = np.asarray(confusion_cells(self.counts) if self.counts is not None else self.cells,
                           dtype=np.int64).reshape(-1, 3)
        rows = np.bincount(cells[:, 0], weights=cells[:, 2], minlength=num_classes).astype(np.int64)
        off = cells[(cells[:, 0] != cells[:, 1]) & (cells[:, 2] > 0)]
        off = off[np.lexsort((off[:, 1], off[:, 0]))]  # row order
        true, predicted, count = off.T
        rate = count / rows[true]
        chosen = np.lexsort((np.arange(len(off)), -count, -rate))[:limit]
        cis = (intervals_or_none(wilson_interval(count[chosen] / seeds, rows[true[chosen]] / seeds)) if seeds
               else [None] * len(chosen))
        return [ConfusedPair(true=int(true[i]), predicted=int(predicted[i]), count=int(count[i]),
                             predictions=int(rows[true[i]]), rate=float(rate[i]), rate_ci=ci)
                for i, ci in zip(chosen, cis)]

    def most_confused(self, num_classes: int) -> ConfusionFocus:
        """The sub-matrix of the ≤ ``HEATMAP_CLASSES`` most confused classes, whatever the number of classes: what
        ``focus`` holds beyond it, and what the exports print past ``MATRIX_MAX_CLASSES`` (probe.export)."""
        # from the cells: the dense form of 5,000 classes is 200 MB
        cells = confusion_cells(self.counts) if self.counts is not None else self.cells
        classes = most_confused_classes(cells, num_classes, HEATMAP_CLASSES)
        counts = confusion_submatrix(cells, num_classes, classes)
        return ConfusionFocus(classes=classes.tolist(), counts=counts.tolist())


class ReliabilityBin(_Model):
    upper: float = Field(..., description="the bin's upper edge: it holds confidences in (upper − 1/bins, upper]")
    count: NonNegativeInt = Field(..., description="test images whose top-1 confidence falls in the bin")
    confidence: Num = Field(..., description="their mean top-1 confidence (null: no image)")
    accuracy: Num = Field(..., description="their accuracy (null: no image)")
    accuracy_ci: Optional[Interval] = Field(
        None, description="95 % Wilson interval of that accuracy over the bin's images (null: no image): derived "
        "from count and accuracy whenever the model is built or read, so the reliability charts draw one interval")

    @model_validator(mode="after")
    def _interval(self) -> "ReliabilityBin":
        if self.count > 0 and (self.confidence is None or self.accuracy is None):  # the html export failed on it (a
            raise ValueError(f"a bin of {self.count} images needs their confidence and accuracy")  # 500; attack round)
        known = self.count > 0 and self.accuracy is not None
        self.accuracy_ci = wilson_interval(self.accuracy * self.count, self.count).tolist() if known else None
        return self


class UnscaledCalibration(_Model):
    """The shipped head's test calibration without its temperature (``Calibration``'s fields of the same names)."""

    ece: Num
    ece_debiased: Num = None
    ece_ci: Optional[Interval] = None
    calibrated_p: Num = None
    confidence: Num
    nll: Num
    ece_delta: Num = Field(None, description="the ECE with the temperature minus this one (a fraction): what T "
                           "changed on test; null in reports before stop 62")
    ece_delta_ci: Optional[Interval] = Field(None, description="its 95 % interval: the basic bootstrap interval of "
                                             "the difference over the stratified test resamples both ECEs share")
    nll_delta: Num = Field(None, description="the mean NLL with the temperature minus this one")
    nll_delta_ci: Optional[Interval] = Field(None, description="its 95 % interval, likewise (paired resamples)")

    def change(self) -> str:
        """What the temperature changed on test, with the intervals ("" in reports before them)."""
        if self.ece_delta is None or self.ece_delta_ci is None or self.nll_delta_ci is None:
            return ""
        lo, hi = self.nll_delta_ci
        if self.nll_delta is None or lo is None or hi is None:  # an infinite logit's NLL: no number (an attack round)
            nll = "not measured (a logit is not finite)"
        else:
            nll = f"{self.nll_delta:+.3f} [{lo:+.3f}, {hi:+.3f}]" + (" (within noise)" if lo <= 0 <= hi else "")
        return (f"; with it minus without, paired over the test images: ECE "
                f"{format_delta(self.ece_delta, self.ece_delta_ci)}, NLL {nll}")


class TemperatureScaling(_Model):
    """config.temperature_scaling: one temperature T dividing the shipped head's logits (after its post-hoc bias)
    before the softmax, fitted on validation by NLL (``probe.calibration.fit_temperature``). No prediction moves:
    only the confidences."""

    temperature: float = Field(..., gt=0, description="the T applied: probabilities = softmax(logits / T); 1 when "
                               "not applied")
    fitted: float = Field(..., gt=0, description="the T minimising the validation NLL within "
                          "probe.calibration.TEMPERATURE_BOUNDS")
    applied: bool = Field(..., description="false when the fitted T lies on a bound: no temperature inside them is "
                          "sized by these validation images (at the lower bound every one of them is right, the NLL "
                          "falling as T → 0; at the upper the head ranks their true classes low)")
    val_images: NonNegativeInt = Field(..., description="the validation images T was fitted on")
    val_nll_before: Num = Field(..., description="their mean NLL without T")
    val_nll_after: Num = Field(..., description="their mean NLL with T")
    before: Optional[UnscaledCalibration] = Field(None, description="the test figures of the head without T, beside "
                                                  "the calibration's with it (null when T was not applied)")

    def brief(self) -> str:
        """What T did, in words: after the calibration's own figures."""
        if not self.applied:
            low, high = TEMPERATURE_BOUNDS
            return (f"temperature scaling not applied: the validation NLL was lowest at a bound of [{low:g}, "
                    f"{high:g}] (T = {self.fitted:.3g}), so {self.val_images} validation images size no temperature")
        b = self.before
        said = (f"temperature T = {self.temperature:.3g} fitted on {self.val_images} validation images (their NLL "
                f"{number_text(self.val_nll_before)} → {number_text(self.val_nll_after)})")
        if b is None:
            return said
        return (f"{said}; on test without it: ECE {percent(b.ece)}%, 95 % interval {interval_text(b.ece_ci)}, mean "
                f"confidence {percent(b.confidence)}%, NLL {number_text(b.nll)}{b.change()}")


class Calibration(_Model):
    """How far the shipped head's probabilities (the first seed's softmax, with its post-hoc bias where applied:
    what ``predict --probabilities`` gives) can be read as probabilities, on the test split (``probe.calibration``);
    null in reports written before it."""

    ece: Num = Field(..., description="expected calibration error: Σ over equal-width confidence bins of "
                     "(bin images / images) · |bin accuracy − bin mean confidence|, a fraction")
    ece_debiased: Num = Field(None, description="the ECE less its bootstrap-estimated bias (2·ece − the mean "
                              "resampled ECE, at least 0): the plug-in ece reads high on few images per bin; null in "
                              "reports before it")
    ece_ci: Optional[Interval] = Field(None, description="95 % interval of the true ECE: the basic (bias-correcting) "
                                       "stratified bootstrap interval over the test images, clipped at 0. It sizes a "
                                       "miscalibration; whether there is one is calibrated_p's question (on a "
                                       "calibrated head's 30 to 5,000 images its lower end was above 0 in 43-74 % of "
                                       "simulated splits)")
    calibrated_p: Num = Field(None, description="p-value of 'these confidences are calibrated': how often a "
                              "calibrated head with the same confidences shows this ECE or this gap between mean "
                              "confidence and accuracy, or more (consistency resampling of both, the smaller p "
                              "doubled: probe.calibration.calibration_p_value); below 0.05: miscalibrated beyond "
                              "noise; above, no evidence either way, not evidence of calibration. Null in reports "
                              "before it")
    confidence: Num = Field(..., description="mean top-1 confidence (above accuracy: overconfident)")
    accuracy: Num = Field(..., description="the first seed's test accuracy")
    accuracy_ci: Optional[Interval] = Field(None, description="95 % Wilson interval of that accuracy over the bins' "
                                            "images (derived on reading; the run's summary.shipped_overall_ci, or "
                                            "overall_ci with one seed, where it is the same figure); null without bins")
    nll: Num = Field(..., description="mean negative log-likelihood of the true class (natural log; scikit-learn's "
                     "log_loss)")
    top_k: Optional[PositiveInt] = Field(None, description="k of top_k_accuracy; null with k or fewer classes")
    top_k_accuracy: Num = Field(None, description="fraction of test images whose class is among the k highest "
                                "logits, mean over seeds")
    bins: list[ReliabilityBin] = Field(default_factory=list, description="the reliability diagram")
    temperature_scaling: Optional[TemperatureScaling] = Field(
        None, description="the temperature the figures above include (config.temperature_scaling), and those "
        "figures without it; null when the run did not scale, and in reports before it")
    text: Optional[str] = Field(None, description="brief() in words, what the dashboard shows: derived from the "
                                "fields above whenever the model is built or read (a stored one is worded again), "
                                "so the pages keep no copy of the wording")

    @model_validator(mode="after")
    def _worded(self) -> "Calibration":
        images = sum(b.count for b in self.bins)
        self.accuracy_ci = (wilson_interval(self.accuracy * images, images).tolist()
                            if images and self.accuracy is not None else None)
        self.text = self.brief()
        return self

    def _gap_text(self) -> str:
        """Mean confidence against accuracy with its interval (the panel gave the ECE an interval and the accuracy
        beside it none; a dashboard round), and how far apart, in words. Whether the gap is noise is
        :meth:`verdict`'s to say, by its own test: "within the accuracy's 95 % interval" beside it could contradict
        it (the accuracy's interval is not a test of the confidences; a review)."""
        said = f"mean confidence {percent(self.confidence)}% against accuracy {percent(self.accuracy)}%"
        if self.confidence is None or self.accuracy is None:
            return said
        gap = self.confidence - self.accuracy
        lean = (f"{'overconfident' if gap > 0 else 'underconfident'} by {percent(abs(gap), 1)} points"
                if abs(gap) >= 0.005 else "as confident as accurate")
        shown = "" if self.accuracy_ci is None else f" {interval_text(self.accuracy_ci)}"
        return f"{said}{shown} ({lean})"

    def describe(self) -> str:
        """One line for the terminal, Markdown and HTML views."""
        top = "" if self.top_k is None else f"; top-{self.top_k} accuracy {percent(self.top_k_accuracy)}% (seed mean)"
        return (f"calibration of the shipped head (the first seed's, what predict gives), over {len(self.bins)} "
                f"confidence bins: {self.brief()}{top}")

    def brief(self) -> str:
        """ECE (less its bias, with its interval), confidence against accuracy and NLL: what a comparison of two
        runs lists for each."""
        # "5.00% less its bias" read as "5 % less than its bias" (a new-user round)
        # "its bias" read as a post-hoc logit bias on such a run (a dashboard-only round): the estimate's own
        debiased = ("" if self.ece_debiased is None
                    else f", {percent(self.ece_debiased)}% once the estimate's own upward bias is removed,")
        nll = "" if self.nll is None else f", NLL {number_text(self.nll)}"  # none on scored images (no probabilities)
        scaled = self.temperature_scaling
        lead = "with its temperature: " if scaled is not None and scaled.applied else ""
        tail = "" if scaled is None else f" ({scaled.brief()})"
        return (f"{lead}ECE {percent(self.ece)}%{debiased} 95 % interval {interval_text(self.ece_ci)}{self.verdict()}, "
                f"{self._gap_text()}{nll}{tail}")

    def verdict(self) -> str:
        """Whether the confidences are calibrated within noise, by :attr:`calibrated_p` ("" in older reports)."""
        if self.calibrated_p is None:
            return ""
        if self.calibrated_p < 0.05:
            # at the test's floor no draw of a calibrated head was as far off: "p ≤", not "p =" (a new-user round)
            return (f" (miscalibrated beyond noise: {p_text(self.calibrated_p, floor=CALIBRATION_P_FLOOR)} if it were "
                    "calibrated)")
        # not "calibrated": on 20 images a head 25 points underconfident can pass (a new-user round)
        said = f" (not shown miscalibrated beyond noise on these images: p = {self.calibrated_p:.2g}"
        if self.ece_ci is not None and self.ece_ci[0] is not None and self.ece_ci[0] > 0:
            # an interval above 0 beside "not shown miscalibrated" read as a contradiction (a new-user round): the
            # interval resamples the images' outcomes as they fell (10 of 10 right resample to 10 of 10), the test
            # draws them from the confidences
            said += "; the interval sizes a miscalibration that may not be there"
        return said + ")"


class PerClassRow(_Model):
    """One class: test accuracy (seed mean, std, per seed, 95 % Wilson score interval), val accuracy, precision /
    recall / F1 (each with its 95 % interval) / support of the test predictions of all seeds, its most frequent
    confusions, class statistics and margins."""

    index: int
    name: str
    group: Literal[GROUP_NAMES]  # probe.groups.GROUP_NAMES
    n_train: NonNegativeInt
    n_test: NonNegativeInt
    n_val: Optional[NonNegativeInt] = Field(None, description="the class's validation images (carved from train when "
                                            "no val split was given): selection scores them, the final probe does "
                                            "not train on them; null in reports written before it")
    accuracy: Num
    accuracy_std: Num
    accuracy_per_seed: NumList
    val_accuracy: Num
    r2: Num
    r: Num
    spread: Num
    gamma: Num
    output_margin: Num
    sample_margin_min: Num
    sample_margin_mean: Num
    accuracy_ci: Optional[Interval] = None
    precision: Num = None
    recall: Num = None
    f1: Num = None
    # 95 % intervals (probe.uncertainty.precision_recall_f1_intervals): precision and recall Wilson, F1 at the ends
    # of theirs at 97.5 % (Bonferroni); null where the value is, and in reports written before them
    precision_ci: Optional[Interval] = None
    recall_ci: Optional[Interval] = None
    f1_ci: Optional[Interval] = None
    support: Optional[NonNegativeInt] = None
    top_confusions: list[ConfusedWith] = Field(default_factory=list)
    shipped_accuracy_ci: Optional[Interval] = Field(
        None, description="95 % Wilson interval of the shipped probe's accuracy (the first seed's, "
        "accuracy_per_seed[0]) over the n_test images: derived whenever the report is built or read, reports before "
        "it included; null without test images")
    val_accuracy_ci: Optional[Interval] = Field(
        None, description="95 % Wilson interval of val_accuracy over the images behind it (the n_val images; under "
        "cross-validation the n_train + n_val images out of fold, each predicted once), as accuracy_ci's over n_test; "
        "null in reports written before it")


class ValSummary(_Model):
    overall: Num
    per_class: NumList
    source: str


class PosthocSeed(_Model):
    seed: int
    bias: NumList
    scale: Num
    val_overall_before: Num
    val_overall_after: Num
    val_objective_before: Num
    val_objective_after: Num
    applied: Optional[bool] = Field(None, description="whether this seed's predictions use the bias (false: it "
                                    "failed the out-of-sample check and bias is 0); null in older reports: applied")
    folds: Optional[int] = Field(None, description="cross-fitting folds on val of the out-of-sample check (0: a "
                                 "class had fewer than probe.evaluate.POSTHOC_MIN_PER_CLASS val images)")
    oof_overall_delta: Num = None
    oof_overall_ci: Optional[Interval] = None
    oof_hard_delta: Num = None
    oof_hard_ci: Optional[Interval] = None
    oof_hard_changed: Optional[list[int]] = Field(None, description="[fixed, broken]: the hard-class val images the "
                                                  "out-of-fold bias scores otherwise than the unbiased probe")
    oof_hard_sign_p: Num = Field(None, description="their paired sign-flip test (each image weighing 1/n of its "
                                 "class half), what the guard needs at p ≤ 0.05")
    oof_hard_joint_lo: Num = Field(None, description="the hard-third difference's lower bound holding together with "
                                   "the overall one's (one-sided 97.5 % for both): what the guard needs above 0; null "
                                   "in reports before stop 62")
    oof_overall_joint_lo: Num = Field(None, description="the overall difference's lower bound, likewise: what the "
                                      "guard needs at -max_overall_drop or above; null in reports before stop 62")

    def failed_check(self, budget: float, overall: str = "overall") -> str | None:
        """Which part of the guard's rule this seed's bias failed, in words (``budget``: max_overall_drop, points),
        or None (passed, or a report before the joint bounds were kept): the declined text named the rule, and
        every number it showed met it (a consistency round)."""
        if self.oof_hard_joint_lo is None or self.oof_overall_joint_lo is None:
            return None
        if self.oof_hard_joint_lo <= 0:
            return (f"the hard third's lower bound, {signed_points(self.oof_hard_joint_lo)} pt, is not above 0 (the "
                    "two bounds holding together)")
        if past_budget(self.oof_overall_joint_lo, budget / 100):
            return (f"the {overall} lower bound, {signed_points(self.oof_overall_joint_lo)} pt, is below the "
                    f"{budget:g}-point budget (the two bounds holding together)")
        if self.oof_hard_sign_p is not None and self.oof_hard_sign_p > SIGN_TEST_ALPHA:
            return (f"the hard-class images it changes do not lean its way beyond chance (sign-flip test p = "
                    f"{self.oof_hard_sign_p:.2g})")
        return None


def _short_of_validation(classes: list[tuple[str, int, int]] | None, shown: int = 3) -> tuple[str, str]:
    """Which classes have fewer validation images than the post-hoc bias's test needs (``classes``: name, its
    validation images, its train + val images), and which of those are too small to give them and keep as many to
    train on: "a larger val_fraction" was advised for a class of 15 images, which would need 0.67 of them (a
    dashboard round). ("some class has fewer", "") where the counts are unknown."""
    from .evaluate import POSTHOC_MIN_PER_CLASS

    few = sorted((n_val, name, total) for name, n_val, total in classes or [] if n_val < POSTHOC_MIN_PER_CLASS)
    if not few:
        return "some class has fewer", ""
    named = listed([f"{name!r} {n_val} of its {total}" for n_val, name, total in few], shown)
    small = [repr(name) for _, name, total in few if total < 2 * POSTHOC_MIN_PER_CLASS]
    many = len(few) != 1
    return (f"{len(few)} class{'es' * many} {'have' if many else 'has'} fewer ({named})",
            "" if not small else f"; {listed(small, shown)} {'have' if len(small) != 1 else 'has'} too few images in "
            f"all to give {POSTHOC_MIN_PER_CLASS} and keep as many to train on: more images of "
            f"{'them' if len(small) != 1 else 'it'} would")


class Posthoc(_Model):
    objective: str
    per_seed: list[PosthocSeed]
    guard: Optional[bool] = Field(None, description="config.posthoc_guard: the bias applied only where the "
                                  "out-of-sample check passed (null in older reports: always applied)")
    text: Optional[str] = Field(None, description="what the bias does in the probe that ships, in one sentence "
                                "(describe(); the run page's banner); null in reports before stop 57")

    def describe(self, overall_metric: str = "accuracy", budget: float = 0.0,
                 short: list[tuple[str, int, int]] | None = None) -> str:
        """Whether the probe that ships (the first seed) applies the bias and what its out-of-sample check on
        validation said, as :meth:`outcome` decides it: a post-hoc run had no verdict in any view, only a sentence
        deep in the selection reason."""
        if not self.per_seed:
            return "Post-hoc bias: no seed recorded."
        first, outcome = self.per_seed[0], self.outcome()
        overall = "overall" if overall_metric == "accuracy" else "balanced accuracy"
        estimate = ("" if outcome == "untested" or first.oof_hard_delta is None else
                    f"out of sample on validation ({first.folds}-fold cross-fitting) the hard third "
                    f"{format_delta(first.oof_hard_delta, first.oof_hard_ci)}, {overall} "
                    f"{format_delta(first.oof_overall_delta, first.oof_overall_ci)}")
        if outcome == "unchecked":
            why = "posthoc_guard off" if self.guard is False else "a run from before the check existed"
            # a bias of 0 changes no logit: "applied" alone said the shipped predictions moved (an extremes round)
            zero = ("" if any(b for seed in self.per_seed for b in seed.bias if b is not None) else
                    f"; it came out 0 for every class of every seed (no shift raised the val {self.objective} "
                    f"accuracy without lowering its val {overall}), so no prediction changed")
            return (f"Post-hoc bias applied to every seed without its out-of-sample check ({why}){zero}"
                    + (f"; {estimate}." if estimate else "."))
        if outcome == "applied":
            return "Post-hoc bias applied to the shipped probe" + (f": {estimate}." if estimate else ".")
        if outcome == "untested":  # what to do about it too (a new-user round: all five classes had 1 to 3)
            from .evaluate import POSTHOC_MIN_PER_CLASS

            few, small = _short_of_validation(short)
            return (f"Post-hoc bias not applied: it is tested out of sample on the validation split, where every "
                    f"class needs {POSTHOC_MIN_PER_CLASS} images, and {few} (a val/ folder, or a larger val_fraction "
                    f"at extraction, gives them{small}); {UNBIASED_SHIPS}.")
        failed = first.failed_check(budget, overall)
        why = (f"; {failed}" if failed else
               ", not a hard-third gain beyond noise within the overall-accuracy budget")
        return f"Post-hoc bias not applied: {estimate or 'its out-of-sample check'}{why}; {UNBIASED_SHIPS}."

    def outcome(self) -> PosthocOutcome:
        """What its guard did for the probe that ships (:data:`POSTHOC_WORDS`): applied, declined (tested, no safe
        gain), untested (too few validation images) or unchecked (no guard: switched off, or a report from before
        the guard, whose bias every seed applied unchecked; it read "applied", which says the check passed)."""
        if not self.guard:
            return "unchecked"
        if self.shipped_applied():
            return "applied"
        return "untested" if self.per_seed and not self.per_seed[0].folds else "declined"

    def shipped_applied(self) -> bool:
        """Whether the bias is applied in the probe that ships, the first seed's (its ``applied``; null in older
        reports: applied): what probe.zip, predict, the run's name and compare's probes line say."""
        return not self.per_seed or self.per_seed[0].applied is not False


class Timing(_Model):
    """Where a run's wall time went and what it ran on, so that runs compare by cost as well as by accuracy
    (scikit-learn's ``cv_results_["mean_fit_time"]`` in spirit). Seconds of ``time.perf_counter``; the phases
    add up to at most ``total_seconds`` (the rest: checking and preparing the data, grouping, diagnostics)."""

    total_seconds: float = Field(..., description="run_probe from its start to the assembled report (the run "
                                 "directory's files are written after)")
    selection_seconds: float = Field(..., description="the sweep of every candidate: once per fold under "
                                     "cross-validation; with the hard criterion also the reference sweep and the "
                                     "decision")
    seeds_seconds: float = Field(..., description="the chosen configuration: one fit per seed and its evaluation")
    fits: int = Field(..., description="model fits of the run (a joint fit of H candidates counts H)")
    device: str = Field(..., description="the device the fits ran on (cpu, cuda, cuda:1)")
    threads: int = Field(..., description="torch's intra-op threads during the run")

    @property
    def setting(self) -> str:
        """Where the run ran: ``cpu, 2 threads``."""
        return f"{self.device}, {self.threads} thread{'s' * (self.threads != 1)}"

    def describe(self) -> str:
        """One line for the terminal, Markdown and HTML views."""
        return (f"{self.total_seconds:.1f} s (selection {self.selection_seconds:.1f} s over {self.fits} fits, "
                f"seeds {self.seeds_seconds:.1f} s) on {self.setting}")


class Environment(_Model):
    """What a run ran with, beyond its request (``config``) and its features (``features``): what a user needs to
    re-run it and to tell why a re-run on another machine differs. On one machine a run is reproducible bit for
    bit (the same command gives the same heads, predictions and numbers, whatever ``--threads``); ``precision``
    ``auto`` resolves per fit from the CPU (bf16 where it computes bfloat16 natively, fp32 elsewhere), so the
    same command on a CPU without native bfloat16 trains other heads: ``fit_precisions`` and ``cpu_native_bf16``
    say which this run had (a reproducibility audit: the report said only ``auto``)."""

    mr2probe: Optional[str] = Field(None, description="the installed mr2probe package version")
    python: Optional[str] = Field(None, description="the Python version")
    torch: Optional[str] = Field(None, description="the torch version")
    numpy: Optional[str] = Field(None, description="the numpy version")
    platform: Optional[str] = Field(None, description="operating system and machine (platform.platform())")
    cpu_native_bf16: Optional[bool] = Field(None, description="whether the CPU computes bfloat16 natively "
                                            "(AVX512-BF16 or AMX): where precision auto trains in bf16")
    fit_precisions: list[str] = Field(default_factory=list, description="the precisions the run's fits ran at "
                                      "(fp32, bf16), what precision auto resolved to")
    seed_precisions: list[str] = Field(default_factory=list, description="the precision of each seed's model, "
                                       "in config.seeds order (the first is the shipped head's)")
    command: Optional[list[str]] = Field(None, description="the command line that ran it (mr2probe train: "
                                         "argv, to run again from cwd); null for a service job, whose request the "
                                         "job records, or a run_probe call")
    cwd: Optional[str] = Field(None, description="the working directory of command")

    def describe(self) -> str:
        """One line: ``mr2probe 0.1.0, torch 2.5.1, numpy 2.1.3, Python 3.11.2; fits in bf16``."""
        parts = [f"{name} {value}" for name, value in (("mr2probe", self.mr2probe), ("torch", self.torch),
                                                          ("numpy", self.numpy), ("Python", self.python)) if value]
        if self.fit_precisions:
            parts.append("fits in " + " and ".join(self.fit_precisions))
        text = ", ".join(parts)
        if self.command:
            import shlex

            text += f"; ran as: {shlex.join(self.command)}" + (f" (in {self.cwd})" if self.cwd else "")
        return text


def run_environment(fit_precisions: set[str] | list[str] = (), seed_precisions: list[str] = (),
                    command: list[str] | None = None, cwd: str | None = None) -> Environment:
    """The :class:`Environment` of a run in this process."""
    import platform as _platform
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    try:
        import torch

        from .precision import cpu_has_native_bf16

        torch_version, native = str(torch.__version__), cpu_has_native_bf16()
    except ImportError:  # pragma: no cover - torch is a dependency of every run
        torch_version, native = None, None
    return Environment(mr2probe=version("mr2probe"), python=_platform.python_version(), torch=torch_version,
                       numpy=np.__version__, platform=_platform.platform(), cpu_native_bf16=native,
                       fit_precisions=sorted(set(fit_precisions)), seed_precisions=list(seed_precisions),
                       command=None if command is None else [str(a) for a in command], cwd=cwd)


DATA_SET_SAID = "the data set: "  # before each warning a run's report repeats from its cache's extraction


class FeatureSource(_Model):
    """The features a run was trained and scored on: their cache's fingerprint (encoder, weights, preprocessing,
    data), its encoder, and the cache as the caller named it."""

    fingerprint: str = Field(..., description="the feature cache's fingerprint (feature_cache)")
    encoder: str = Field(..., description="the encoder that extracted the features")
    extractor: Optional[str] = Field(None, description="fingerprint of the extractor alone (encoder, weights, "
                                     "preprocessing, feature kind): another cache with the same one holds features "
                                     "the run's probe applies to (null in older reports)")
    extractor_as_named: Optional[str] = Field(None, description="where the encoder's name holds a weights file's "
                                              "path: the extractor fingerprint with that path counted, as reports "
                                              "recorded `extractor` before the path was left out (an older run's "
                                              "probe applies where its `extractor` is this one); null otherwise")
    cache: Optional[str] = Field(None, description="the path given to mr2probe train, or the service's cache id")
    dataset: Optional[str] = Field(None, description="fingerprint of the content of the data set the cache was "
                                   "extracted from (feature_cache.dataset_fingerprint): runs with other ones were "
                                   "not scored on the same test images (null in older reports)")
    test_dataset: Optional[str] = Field(None, description="fingerprint of the content of the test split the data set "
                                        "gives (its test folder or rows): runs of two versions of a data set that "
                                        "differ only in train or val (labels fixed) share it and pair on test; null "
                                        "where test was carved from the data set, and in older reports")
    warning: Optional[str] = Field(None, description="what the encoder warned of when it extracted these features "
                                   "(random weights: they mean nothing for a probe); null when nothing")
    data_warnings: list[str] = Field(default_factory=list, description="what the extraction warned of the data "
                                     "set's files (nested or split-named class folders, test images identical to "
                                     "train images, a file under two classes) and the files it could not decode, "
                                     "kept with the cache; the report's "
                                     "warnings say each after DATA_SET_SAID (empty in older reports)")
    # how to compute such features for new images outside this package (the cache's root attributes; an outside
    # round shipping a probe found them nowhere in the run, and timm's own preprocessing flipped a third of its
    # predictions): null in older reports
    weights_sha256: Optional[str] = Field(None, description="sha256 of the encoder's weights")
    preprocess: Optional[dict[str, Any]] = Field(None, description="the image preprocessing before the encoder "
                                                 "(resize, crop, interpolation, resampler, scale, mean, std, colour "
                                                 "mode; README \"HDF5 feature cache\")")
    feature_kind: Optional[str] = Field(None, description="pooled (the encoder's pooled output before any "
                                        "classifier) or embedding (a CLIP image embedding)")
    normalized: Optional[bool] = Field(None, description="whether the features were L2-normalised when stored")
    test_carved: Optional[float] = Field(None, gt=0, lt=1, description="the share of each class carved out as the "
                                         "test split where the data set had none of its own (no test/ folder or "
                                         "manifest rows); null where it had, and in reports before it")

    def said_of_data(self) -> list[str]:
        """:attr:`data_warnings` as a run's report warnings say them, each after :data:`DATA_SET_SAID`."""
        return [f"{DATA_SET_SAID}{text}" for text in self.data_warnings]

    def describe(self) -> str:
        shown = self.fingerprint if len(self.fingerprint) <= 12 else self.fingerprint[:12] + "…"  # cut, said so
        return f"{self.encoder}, cache {shown}" + (f" ({self.cache})" if self.cache else "")

    @staticmethod
    def differ(a: "FeatureSource | None", b: "FeatureSource | None") -> bool:
        """Whether two runs recorded their features and they are other features (another fingerprint; the same
        cache under another name is the same features)."""
        return a is not None and b is not None and a.fingerprint != b.fingerprint

    @staticmethod
    def other_images(a: "FeatureSource | None", b: "FeatureSource | None") -> bool:
        """Whether two runs' features come from data sets of other content, so that their test images differ
        even where their file names and labels agree (two versions of a data set): by the content of the test
        split the data sets give where both recorded it (versions that differ only in train or val, such as
        training labels fixed, share their test images), else of the whole data sets; False when a run did not
        record either."""
        if a is None or b is None:
            return False
        if None not in (a.test_dataset, b.test_dataset):
            return a.test_dataset != b.test_dataset
        return None not in (a.dataset, b.dataset) and a.dataset != b.dataset


class NearDuplicatePair(_Model):
    """A test image and the train or val image it nearly duplicates (paths inside the data set; null where the
    caller gave no sources)."""

    test: Optional[str]
    seen: Optional[str]
    similarity: float


class NearDuplicates(_Model):
    """Test images that duplicate a train or val image (leakage: test figures on them measure images the probe
    trained or was selected on): byte-different near-duplicates by the cosine of the cached features
    (``probe.near_duplicates``), byte-identical ones by content digest, counted apart."""

    encoder: str = Field(..., description="the encoder whose features were compared")
    threshold: float = Field(..., description="the cosine at or above which a test image nearly duplicates a train "
                             "or val image: the encoder's measured one (probe.near_duplicates."
                             "NEAR_DUPLICATE_THRESHOLDS, bench/README.md \"Near-duplicates\")")
    ratio: Optional[float] = Field(None, description="past the threshold, a near-duplicate where 1 - c2 >= ratio x "
                                   "(1 - c1), c1 the cosine to the nearest train or val image, c2 that to the "
                                   "second-nearest of other features, or c1 >= probe.near_duplicates."
                                   "NEAR_DUPLICATE_BAR (NEAR_DUPLICATE_RATIO); null in older reports (the threshold "
                                   "alone)")
    test_images: NonNegativeInt
    sampled: Optional[NonNegativeInt] = Field(None, description="how many test images were compared: a random sample "
                                              "(probe.near_duplicates.SAMPLE_SEED) of as many as the products budget "
                                              "(MAX_CHECK_PRODUCTS) allows, where all of them passed it; null where "
                                              "every test image was compared (and in older reports)")
    sample_draw: Optional[Literal[SAMPLE_DRAW]] = Field(None, description="how a sample (sampled, train_sampled) "
                                                        "is drawn: the rows whose blake2b hashes keyed by SAMPLE_SEED "
                                                        "are lowest (probe.near_duplicates.sample_rows); null in older "
                                                        "reports, drawn by numpy's default_rng(SAMPLE_SEED)")
    near: NonNegativeInt = Field(..., description="test images, not byte-identical to any train or val image, that "
                                 "nearly duplicate their most similar train or val image (threshold and ratio): "
                                 "among the sampled ones where sampled is given")
    near_ci: Optional[Interval] = Field(None, description="where sampled: the 95 % Wilson interval of the share "
                                        "near / sampled (null otherwise)")
    identical: Optional[NonNegativeInt] = Field(None, description="test images byte-identical to a train or val "
                                                "image (content digests); null where the cache kept no digests")
    accuracy_duplicates: Num = Field(None, description="test accuracy (seed mean) on the near and identical ones "
                                     "(of the sampled test images where sampled)")
    duplicates_ci: Optional[Interval] = Field(None, description="its 95 % Wilson interval")
    accuracy_rest: Num = Field(None, description="test accuracy (seed mean) on the other test images (of the "
                               "sampled ones where sampled)")
    rest_ci: Optional[Interval] = Field(None, description="its 95 % Wilson interval")
    examples: list[NearDuplicatePair] = Field(default_factory=list, description="the most similar near-duplicate "
                                              "pairs, up to 3")
    train_near: Optional[NonNegativeInt] = Field(None, description="train images that nearly duplicate their most "
                                                 "similar other train image (threshold and ratio; byte-identical "
                                                 "ones too): each "
                                                 "weighs twice or more in the fit: among the train_sampled ones "
                                                 "where given; null where unchecked (not one train image fits what "
                                                 "the test check left of the products budget) or in older reports")
    train_images: Optional[NonNegativeInt] = Field(None, description="train images of the run (null where "
                                                   "train_near is, and in older reports)")
    train_sampled: Optional[NonNegativeInt] = Field(None, description="how many train images were compared with "
                                                    "every other: a random sample (probe.near_duplicates."
                                                    "SAMPLE_SEED) of as many as fit what the test check left of "
                                                    "the products budget (half of it past the budget); null where "
                                                    "every one was")
    train_near_ci: Optional[Interval] = Field(None, description="where train_sampled: the 95 % Wilson interval of "
                                              "the share train_near / train_sampled (null otherwise)")

    @model_validator(mode="after")
    def _counts_within_their_images(self) -> "NearDuplicates":
        """A sample is fewer than the images it is drawn from, and a count no more than the images it counts among:
        a report.json edited to ``sampled`` 70 of 60 test images failed report --near-duplicates with numpy's
        "Cannot take a larger sample than population" and read as a count of all 60 in the terminal."""
        for sampled, images, name in ((self.sampled, self.test_images, "sampled"),
                                      (self.train_sampled, self.train_images, "train_sampled")):
            if sampled is not None and (images is None or not 0 < sampled < images):
                raise ValueError(f"near_duplicates.{name} {sampled} is no sample of the {images} images it is drawn "
                                 "from")
        for count, images, name in ((self.near, self.sampled or self.test_images, "near"),
                                    (self.identical, self.test_images, "identical"),
                                    (self.train_near, self.train_sampled or self.train_images, "train_near")):
            if count is not None and images is not None and count > images:
                raise ValueError(f"near_duplicates.{name} {count} is more than the {images} images it counts among")
        return self

    def describe(self) -> str:
        """One line for the terminal and exports: the counts, and the accuracies where there are duplicates."""
        identical = "" if self.identical is None else f", {self.identical:,} byte-identical"
        near = f"near-duplicates ({rule_text(self.threshold, self.encoder, self.ratio)})"
        if self.sampled is None:
            line = (f"test images duplicating a train or val image: {self.near:,} {near}{identical}, of "
                    f"{self.test_images:,}")
        else:  # the byte-identical ones are matched by digest over every test image
            identical = "" if self.identical is None else f"; {self.identical:,} byte-identical of all of them"
            line = (f"test images duplicating a train or val image: {near} in "
                    f"{share_text(self.near, self.sampled, self.test_images)}{identical}")
        if self.near + (self.identical or 0) and self.accuracy_rest is not None:
            line += f"; {self.accuracy_sentence()}"
        if self.train_near is not None:
            train = (f"{self.train_near:,} train images" if self.train_sampled is None else
                     share_text(self.train_near, self.train_sampled, self.train_images, "train images"))
            line += f"; {train} nearly duplicate another train image"
        return line

    def warning(self) -> str | None:
        """The report's warning where there are near-duplicates; None otherwise (byte-identical copies are warned of
        by the extraction, ``features.data_warnings``)."""
        if not self.near:
            return None
        shown = "; ".join(f"{p.test} ~ {p.seen} ({p.similarity:.3f})" for p in self.examples if p.test and p.seen)
        return (f"{share_text(self.near, self.sampled, self.test_images)} may duplicate a train or val image "
                f"({rule_text(self.threshold, self.encoder, self.ratio)}{'; ' + shown if shown else ''}): "
                f"{self.accuracy_sentence()}; check the pairs (`mr2probe report RUN --near-duplicates`): where "
                "they are copies, the test figures count images the probe trained or was selected on")

    def accuracy_sentence(self) -> str:
        """The test accuracy on the duplicates against that on the rest, with their intervals: the one wording of
        :meth:`describe` and :meth:`warning` (each had its own)."""
        sampled = "" if self.sampled is None else "sampled "
        return (f"test accuracy on the {sampled}duplicates {percent(self.accuracy_duplicates)}% "
                f"{interval_text(self.duplicates_ci)}, on the {sampled}rest {percent(self.accuracy_rest)}% "
                f"{interval_text(self.rest_ci)}")


class Report(_Model):
    """``report.json`` (schema_version 2; version 1 files read): the one definition of the report schema. ``build_report`` returns it,
    ``load_report`` parses it and the API declares it as its ``response_model``. ``config`` is the request
    (``ProbeConfig`` fields, with ``p`` resolved, the ``selected`` hyper-parameters and ``loss_options_used``: every
    scalar option of the loss the run trained with, its defaults included)."""

    schema_version: Literal[1, 2] = SCHEMA_VERSION
    run_id: Optional[str]
    created_at: str
    code: Optional[str] = Field(None, description="digest of the probe library's source that wrote the report "
                                "(code_digest): which code a run's numbers and words come from; null in older "
                                "reports")
    config: dict[str, Any]
    selection: Selection
    class_names: list[str]
    grouping: Grouping
    summary: Summary
    seeds: Seeds
    per_class: list[PerClassRow]
    val: ValSummary
    posthoc: Optional[Posthoc] = None
    confusion: Optional[Confusion] = None
    calibration: Optional[Calibration] = None
    timing: Optional[Timing] = None
    features: Optional[FeatureSource] = Field(None, description="the features the run used (null when the caller "
                                              "gave arrays, or in reports written before it was recorded)")
    environment: Optional[Environment] = Field(None, description="versions, platform, the precision the fits ran "
                                               "at and the command line (null in reports written before it was "
                                               "recorded)")
    near_duplicates: Optional[NearDuplicates] = Field(None, description="test images that duplicate train or val "
                                                      f"images; null where unchecked: {UNCHECKED_REASONS}")
    warnings: list[str] = Field(default_factory=list, description="plain-language cautions: small validation, "
                                "unstable groups, failed candidates, ...")

    @property
    def named(self) -> str:
        """How a run that refers to this one as its reference names it: "reference run ID", or "reference run"
        for one trained in memory, without a folder (its run_id None: "the reference run None's groups")."""
        return f"reference run {self.run_id}" if self.run_id else "reference run"

    def probe_config(self):
        """The run's request as a :class:`probe.ProbeConfig`, to train it again: ``config`` less what the run
        added (``selected``, ``loss_options_used``). ``run_probe`` on the same cache (``features.cache``, checked
        by ``features.fingerprint``) with it, the same reference and the same ``environment.fit_precisions``
        gives the same heads, predictions and numbers (tested; README, "Reproducing a run")."""
        from .config import ProbeConfig

        return ProbeConfig.model_validate({k: v for k, v in self.config.items()
                                           if k not in ("selected", "loss_options_used")})

    @property
    def temperature_scaling(self) -> TemperatureScaling | None:
        """The temperature its shipped head's probabilities include (``calibration.temperature_scaling``): what
        RunProbe applies, temperature.json ships and the run's name says; None where the run did not scale."""
        return None if self.calibration is None else self.calibration.temperature_scaling

    @field_validator("config")
    @classmethod
    def _config_fields_readable(cls, config: dict[str, Any]) -> dict[str, Any]:
        """``config.selected`` is the chosen hyper-parameters (an object) or null: a report.json damaged there was read
        and then failed the md / html exports (a 500; found by an outside attack round); ``config.overall_metric`` is
        one of ``OVERALL_METRICS`` or null."""
        selected = config.get("selected")
        if selected is not None and not isinstance(selected, dict):
            raise ValueError(f"config.selected must be an object of hyper-parameters or null, got "
                             f"{type(selected).__name__}")
        # another value was read as accuracy, and a list or an object failed compare (a 500; an attack round)
        metric = config.get("overall_metric")
        if metric is not None and not (isinstance(metric, str) and metric in OVERALL_METRICS):
            raise ValueError(f"config.overall_metric must be one of {', '.join(OVERALL_METRICS)} or null, got "
                             f"{str(metric)[:50]!r}")
        return config

    @model_validator(mode="after")
    def _one_entry_per_class(self) -> "Report":
        """Every per-class field has one entry per class of ``class_names``, in order, and every class index lies
        among them: a report.json edited by hand to another class count was read, rendered, and failed compare with
        an IndexError (a 500; found by an outside attack round)."""
        k = len(self.class_names)
        sizes = {"per_class": len(self.per_class), "val.per_class": len(self.val.per_class)}
        if self.grouping.stability is not None:
            sizes["grouping.stability"] = len(self.grouping.stability)
        if self.confusion is not None and self.confusion.counts is not None:
            sizes["confusion.counts"] = len(self.confusion.counts)
            sizes.update({f"confusion.counts[{i}]": len(row) for i, row in enumerate(self.confusion.counts)})
        if self.posthoc is not None:
            sizes.update({f"posthoc.per_seed[{i}].bias": len(s.bias) for i, s in enumerate(self.posthoc.per_seed)})
        wrong = {name: n for name, n in sizes.items() if n != k}
        if wrong:
            name, n = next(iter(wrong.items()))
            raise ValueError(f"{name} has {n} entries for the {k} classes of class_names")
        rows = [row.index for row in self.per_class]
        if rows != list(range(k)) or [row.name for row in self.per_class] != list(self.class_names):
            raise ValueError("per_class rows are not the classes of class_names, in order")
        twice = repeated(self.class_names)
        if twice:  # a class by name would be either of them (scores, failures; an attack round)
            raise ValueError(f"class_names holds {', '.join(map(repr, twice[:5]))} more than once")
        if set(self.grouping.groups) != set(GROUP_NAMES):  # other names: compare failed with a KeyError (a 500)
            raise ValueError(f"grouping.groups must name the thirds {', '.join(GROUP_NAMES)}, got "
                             f"{', '.join(map(repr, list(self.grouping.groups)[:5]))}")
        grouped = sorted(i for members in self.grouping.groups.values() for i in members)
        if grouped != list(range(k)):  # each class in one third (a class in two, or in none, an attack round)
            raise ValueError(f"grouping.groups does not put each of the {k} classes in exactly one third")
        if self.confusion is not None and self.confusion.cells is not None and any(
                not (0 <= t < k and 0 <= p < k) for t, p, _ in self.confusion.cells):
            raise ValueError(f"a class index of confusion.cells lies outside 0..{k - 1}")
        if any(not 0 <= c.index < k for row in self.per_class for c in row.top_confusions):
            raise ValueError(f"a class index of top_confusions lies outside 0..{k - 1}")
        if self.confusion is not None:
            self.confusion.with_focus(k).with_pairs(k, len(self.seeds.values) or None)
        return self

    @model_validator(mode="after")
    def _shipped_intervals(self) -> "Report":
        """Each row's ``shipped_accuracy_ci`` (:func:`shipped_class_ci`), for every class in one call: one a row took
        ~0.1 ms, half a second to read a report of 5,000 classes."""
        rows = self.per_class
        for row, interval in zip(rows, shipped_class_cis(rows)):
            row.shipped_accuracy_ci = interval
        return self


def _mean_std(values: list[float]) -> SeedMetric:
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    mean = float(finite.mean()) if finite.size else float("nan")
    std = float(finite.std(ddof=1)) if finite.size > 1 else (0.0 if finite.size else float("nan"))
    return SeedMetric(mean=mean, std=std, per_seed=arr)


def _stat(trainer, name: str, num_classes: int) -> np.ndarray:
    value = getattr(trainer, name, None)
    if value is None:
        return np.full(num_classes, np.nan)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    return value if value.size == num_classes else np.full(num_classes, np.nan)


def _group_sample_mean(per_class_mean: np.ndarray, counts: np.ndarray, groups: dict[str, list[int]]
                       ) -> dict[str, float]:
    """Mean over the samples of each group from per-class means and counts."""
    out = {}
    for name in GROUP_NAMES:
        idx = np.asarray(groups.get(name, []), dtype=np.int64)
        w = counts[idx].astype(np.float64)
        v = per_class_mean[idx]
        ok = np.isfinite(v) & (w > 0)
        out[name] = float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
    return out


def _grouping(reference: Report | None, groups: dict[str, list[int]]) -> Grouping:
    indices = {k: [int(i) for i in groups[k]] for k in GROUP_NAMES}
    if reference is not None:
        ref_id, cv = reference.run_id, reference.selection.cv
        split = "cv" if reference.grouping.split == "cv" else "val"  # the groups are the reference's, ranked there
        source = ("validation per-class accuracy" if split != "cv" or cv is None else
                  f"out-of-fold per-class accuracy ({cv.describe()})")
        return Grouping(source="reference", reference_run=ref_id, split=split,
                        note=f"groups from the {reference.named}'s {source}", groups=indices)
    return Grouping(source="self", reference_run=None, groups=indices,
                    note="groups from the run's own validation accuracy (seed mean), ranked by the run itself")


def _summary(evaluations: list, groups: dict[str, list[int]], class_names: list[str], mean_acc: np.ndarray
             ) -> tuple[Summary, dict[str, SeedMetric]]:
    """Per-seed test metrics (mean, std, per seed) and the summary (seed means, worst class, margins)."""
    per_seed: dict[str, list[float]] = {k: [] for k in SEED_METRICS}
    stds, group_margins, class_margins, min_sample = [], [], [], []
    counts = evaluations[0].test_counts
    for e in evaluations:
        g = group_accuracy(e.test_per_class, groups)
        per_seed["overall"].append(e.test_overall)
        per_seed["balanced"].append(balanced_accuracy(e.test_per_class))
        for name in GROUP_NAMES:
            per_seed[name].append(g[name])
        per_seed["worst_class"].append(worst_class(e.test_per_class)[1])
        stds.append(per_class_std(e.test_per_class))
        group_margins.append(_group_sample_mean(e.output_margin_mean, counts, groups))
        class_margins.append(e.class_margin_deg)
        min_sample.append(float(np.nanmin(e.sample_margin_min)))
    metrics = {k: _mean_std(v) for k, v in per_seed.items()}
    worst = worst_class(mean_acc)[0]
    num_classes = len(class_names)
    dims = [e.weight_dim for e in evaluations if e.weight_dim is not None]
    dim = min(dims) if dims else None
    summary = Summary(
        **{name: metrics[name].mean for name in ("overall", "balanced", *GROUP_NAMES)},
        worst_class=WorstClass.among(class_names, mean_acc, worst),
        per_class_std=float(np.mean(stds)),
        group_margin=GroupValues(**{name: float(nan_mean([m[name] for m in group_margins]))
                                    for name in GROUP_NAMES}),
        class_margin_deg=float(np.mean(class_margins)),
        ideal_class_margin_deg=ideal_class_margin_deg(num_classes, dim),
        min_sample_margin=float(np.mean(min_sample)), ideal_sample_margin=ideal_sample_margin(num_classes, dim),
    )
    return summary, metrics


def _per_class(evaluations: list, class_names: list[str], groups: dict[str, list[int]], trainer,
               n_train: np.ndarray, mean_acc: np.ndarray, n_val: np.ndarray | None = None) -> list[PerClassRow]:
    num_classes = len(class_names)
    names_of = group_of(groups, num_classes)
    test_acc = np.stack([e.test_per_class for e in evaluations])          # (S, K)
    r2, spread, gamma = (_stat(trainer, n, num_classes) for n in ("r2_", "spread_", "gamma_"))
    acc_std = test_acc.std(axis=0, ddof=1) if len(evaluations) > 1 else np.zeros(num_classes)
    out_margin, sm_min, sm_mean = (nan_mean([getattr(e, name) for e in evaluations])
                                   for name in ("output_margin_mean", "sample_margin_min", "sample_margin_mean"))
    val_mean = nan_mean([e.val_per_class for e in evaluations])
    val_ci = [None] * num_classes if n_val is None else accuracy_intervals(val_mean, n_val)
    counts = evaluations[0].test_counts
    return [
        PerClassRow(index=k, name=class_names[k], group=names_of[k], n_train=int(n_train[k]), n_test=int(counts[k]),
                    n_val=None if n_val is None else int(n_val[k]),
                    accuracy=mean_acc[k], accuracy_std=acc_std[k], accuracy_per_seed=test_acc[:, k],
                    val_accuracy=val_mean[k], r2=r2[k], r=math.sqrt(r2[k]) if np.isfinite(r2[k]) else None,
                    spread=spread[k], gamma=gamma[k], output_margin=out_margin[k], sample_margin_min=sm_min[k],
                    sample_margin_mean=sm_mean[k], val_accuracy_ci=val_ci[k])
        for k in range(num_classes)
    ]


def _scalar_options(options: dict[str, Any], loss: str) -> dict[str, Any]:
    """The options loss ``loss`` trained with, defaults included (``ProbeTrainer.loss_options_``), but its per-class
    ones (``Option.per_class`` in probe.registry: K numbers, such as the priors or the reference run's validation
    error the run fills)."""
    declared = get_loss_spec(loss).options
    return {name: value for name, value in options.items() if not declared[name].per_class}


def loss_label(config: dict[str, Any]) -> str:
    """``config``'s loss and the options it trained with, as a report header shows it: ``focal (gamma_focal=2)``;
    the bare name for a loss without options, or a report written before they were recorded."""
    used = config.get("loss_options_used") or {}
    options = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in used.items())
    return f"{config.get('loss')} ({options})" if options else str(config.get("loss"))


def build_report(*, run_id: str | None, config, selected: dict, selection: Selection, class_names: list[str],
                 groups: dict[str, list[int]], reference: Report | None, evaluations: list, trainer,
                 n_train: np.ndarray, val_source: str = "given", diagnostics=None, n_val: np.ndarray | None = None,
                 stability: list[float] | None = None, warnings: list[str] | None = None,
                 timing: Timing | None = None, features: FeatureSource | None = None,
                 calibration: dict | None = None, environment: Environment | None = None,
                 near_duplicates: NearDuplicates | None = None) -> Report:
    """Assemble the :class:`Report` from the per-seed evaluations of ``probe.run``.

    ``diagnostics`` (:class:`probe.diagnostics.TestDiagnostics`) adds the confusion matrix and the per-class
    precision / recall / F1 / interval / confusions; ``stability`` the groups' bootstrap stability; ``timing``
    where the run's time went; ``features`` the cache the features came from; ``calibration``
    (``probe.calibration.calibration_summary``) how far the shipped head's probabilities can be trusted;
    ``near_duplicates`` the test images that duplicate train or val images (its warning joins ``warnings``)."""
    test_acc = np.stack([e.test_per_class for e in evaluations])
    mean_acc = np.nanmean(test_acc, axis=0) if np.isfinite(test_acc).any() else test_acc[0]
    summary, metrics = _summary(evaluations, groups, class_names, mean_acc)
    config_dict = config.model_dump(mode="json")
    config_dict["p"] = config.resolved_p
    config_dict["loss_options_used"] = _scalar_options(getattr(trainer, "loss_options_", None) or {}, config.loss)
    config_dict["selected"] = {"lr": selected.get("lr"), "weight_decay": selected.get("weight_decay"),
                               "cbar": selected.get("cbar"), "lam": selected.get("lam"),
                               **{name: selected.get(name) for name in config.loss_options_grid}}
    posthoc = None
    if any(e.posthoc is not None for e in evaluations):
        posthoc = Posthoc(objective=config.posthoc_objective, guard=config.posthoc_guard,
                          per_seed=[PosthocSeed(seed=e.seed, **e.posthoc) for e in evaluations])
        short = None if n_val is None else [(class_names[k], int(n_val[k]), int(n_train[k] + n_val[k]))
                                            for k in range(len(class_names))]
        posthoc.text = posthoc.describe(config.overall_metric, config.max_overall_drop, short)
    val_mean = nan_mean([e.val_per_class for e in evaluations])
    per_class = _per_class(evaluations, class_names, groups, trainer, n_train, mean_acc, n_val)
    if diagnostics is not None:
        per_class = [PerClassRow.model_validate({**row.model_dump(), **extra})
                     for row, extra in zip(per_class, diagnostics.rows)]
        summary.overall_ci, summary.group_ci = diagnostics.overall_ci, diagnostics.group_ci
        summary.worst_class_ci = worst_class_ci(per_class, summary.worst_class.name)
    grouping = _grouping(reference, groups)
    grouping.stability = stability
    summary.shipped_worst_class = shipped_worst(per_class, len(evaluations))
    images = float(sum(row.n_test for row in per_class))
    shipped = metrics["overall"].per_seed[0]
    if len(evaluations) > 1 and images > 0 and shipped is not None:  # what ships had no interval (a new-user round)
        summary.shipped_overall_ci = [float(v) for v in wilson_interval(np.array(shipped * images), np.array(images))]
    return Report(
        run_id=run_id, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), code=code_digest(),
        config=config_dict,
        selection=selection, class_names=list(class_names), grouping=grouping, summary=summary,
        seeds=Seeds(values=[e.seed for e in evaluations], metrics=metrics), per_class=per_class,
        val=ValSummary(overall=float(np.mean([e.val_overall for e in evaluations])), per_class=val_mean,
                       source=val_source),
        posthoc=posthoc,
        confusion=None if diagnostics is None else Confusion.of(diagnostics.confusion),
        calibration=None if calibration is None else Calibration(**calibration), timing=timing, features=features,
        environment=environment, near_duplicates=near_duplicates,
        warnings=[*(warnings or []), *filter(None, [near_duplicates and near_duplicates.warning()]),
                  *_thirds_out_of_order(summary, selection, posthoc)],
    )


# A list of numbers (or nulls, booleans) as indent=2 lays it out, one item a line; only where "[" ends a line, which
# no JSON string can (a raw newline in a string is escaped), so a class name such as "[1, 2]" is never touched.
_NUMBER_LIST = re.compile(r"\[\n\s*((?:-?[\d.]+(?:[eE][-+]?\d+)?|null|true|false)"
                          r"(?:,\n\s*(?:-?[\d.]+(?:[eE][-+]?\d+)?|null|true|false))*)\n\s*\]")


def report_json(report: Report) -> str:
    """The JSON text written to report.json (strict JSON: a missing number is null, never NaN): indented, with each
    list of numbers on one line (the 300 × 300 confusion matrix took 88,791 lines of 103,248, 3.4× the compact
    size; a scale round)."""
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(re.split(r",\n\s*", m.group(1))) + "]",
                            report.model_dump_json(indent=2))


def check_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path, once it is known that :func:`write_run` can make it; raises before any work otherwise.

    It, or the nearest folder above it that exists, must be a folder this process may write into. Creates nothing.

    Raises:
        NotADirectoryError: that path is a file (``--out report.json``, or a folder under a file).
        PermissionError: that folder is not writable.
    """
    run_dir = Path(run_dir)
    existing = run_dir
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot write a run to {run_dir}: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write a run to {run_dir}: {existing} is not writable.")
    return run_dir


RUN_FILES = ("report.json", "per_class.csv", "head.safetensors", "head.json", "posthoc_bias.json", TEMPERATURE_FILE,
             PREDICTIONS_FILE, SEEN_FILE, PAIRS_FILE)
# RUN_FILES: what write_run writes (report.json last); a run replaced loses the rest


def write_run(run_dir: Path, report: Report, trainer, predictions=None, seen=None,
              near_pairs: list[dict] | None = None) -> None:
    """Write report.json, per_class.csv, head.safetensors + head.json (and posthoc_bias.json, temperature.json,
    the test predictions ``predictions.npz``, the train and val sources' digests ``seen_sources.npz``, a
    :class:`probe.seen.SeenSources`, and every near-duplicate pair ``near_duplicates.csv``
    (:func:`probe.near_duplicates.write_pairs`), when given) into ``run_dir``.

    The run replaced (``train --force``) stays whole until the new one is complete, and a kill at any instant leaves
    one of them whole (:mod:`probe.rundir`): it was lost before stop 66, and both were in the instant the files were
    moved in. Files in ``run_dir`` that are not a run's are kept; another process writing ``run_dir`` is refused
    (:class:`probe.files.OutputBusy`)."""
    replace_run(Path(run_dir), lambda staging: _write_run_files(staging, report, trainer, predictions, seen,
                                                                near_pairs), RUN_FILES)
    logger.info("run written to %s", run_dir)


def _write_run_files(run_dir: Path, report: Report, trainer, predictions=None, seen=None, near_pairs=None) -> None:
    """The files of :func:`write_run` into an empty ``run_dir``."""
    scaling = report.temperature_scaling
    trainer.save(run_dir / "head.safetensors", class_names=report.class_names)
    if predictions is not None:
        predictions.save(run_dir)
    if seen is not None:
        seen.save(run_dir)
    if near_pairs is not None:
        write_pairs(run_dir, near_pairs)
    (run_dir / "per_class.csv").write_text(report_csv(report), encoding="utf-8", newline="")
    if report.posthoc is not None:
        first = report.posthoc.per_seed[0]
        (run_dir / "posthoc_bias.json").write_text(json.dumps(
            {"objective": report.posthoc.objective, "seed": first.seed, "bias": first.bias,
             "class_names": list(report.class_names), "applied": report.posthoc.shipped_applied(),
             "note": "add to the logits of head.safetensors (first seed; after a cosine head's scale) before the "
                     "softmax: the predicted class and its confidence both come from the biased logits (all 0 when "
                     "not applied: the bias failed its out-of-sample check, or too few val images to run it); "
                     "head.json's forward.steps"}, indent=2),
            encoding="utf-8")
    if scaling is not None:
        (run_dir / TEMPERATURE_FILE).write_text(json.dumps(
            {"temperature": scaling.temperature, "applied": scaling.applied, "seed": report.config.get("seeds", [0])[0],
             "note": "divide the logits of head.safetensors (first seed; after the post-hoc bias of posthoc_bias.json "
                     "where there is one) by it before the softmax: the confidences change, the predicted class does "
                     "not (1 when not applied); head.json's forward.steps"}, indent=2), encoding="utf-8")
    (run_dir / "report.json").write_text(report_json(report), encoding="utf-8")


def _no_report(run_dir: Path, path: Path) -> str:
    """Why ``load_report`` finds no report: a folder that holds a run's other files is one whose writing was
    interrupted (Ctrl-C, a kill, a full disk) before report.json, which :func:`write_run` writes last."""
    unfinished = {"head.safetensors", "head.json", "per_class.csv", "predictions.npz", "report.json.tmp", STAGING_DIR,
                  INCOMING_DIR}
    # not a killed writer's lock or temporary files, which stay until the next writer: they are no run's files
    left = sorted(p.name for p in run_dir.iterdir() if p.name in unfinished
                  or (p.is_file() and not writer_file(p.name))) if run_dir.is_dir() else []
    if set(left) & unfinished:
        return (f"{run_dir} holds no report.json, only files of an unfinished run ({', '.join(left[:6])}): it was "
                f"interrupted or failed while it was written; train it again to that --out")
    return f"no report.json at {path}; is {run_dir} a finished run directory?"


def load_report(run_dir: str | Path) -> Report:
    """Read and validate ``report.json`` from a run directory (or the file itself).

    Raises FileNotFoundError (no report.json) or ValueError (not JSON, another schema_version, or content that
    does not match :class:`Report`, naming the field).
    """
    path = Path(run_dir)
    if path.is_dir():
        recover_run(path)  # a replacement a killed writer left half done
        path = path / "report.json"
    if not path.is_file():
        raise FileNotFoundError(_no_report(Path(run_dir), path))
    with open(path, "rb") as handle:
        if handle.read(8) == b"\x89HDF\r\n\x1a\n":  # a cache given for a run: "not a JSON report (damaged?)" misled
            raise ValueError(f"{path} is a feature cache (HDF5), not a run: give the run's folder (train's --out).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: nested too deep
        raise ValueError(f"{path} is not a JSON report (damaged or cut short?): {err}") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version not in READABLE_VERSIONS:
        raise ValueError(f"{path} has schema_version {version!r}; this version reads {READABLE_VERSIONS}.")
    try:
        report = Report.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{path} is not a valid report: {err}") from None
    if report.posthoc is not None and not report.posthoc.text:  # a report from before stop 57: worded now, for
        report.posthoc.text = posthoc_text(report.posthoc, report.config)  # every reader (the run page's banner)
    return report



@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """The first 16 hex digits of the sha256 of the probe library's Python sources (``probe/*.py``, by name): two
    reports of one digest were computed, and worded, by the same code. A service reuses a reference run only of
    this digest (a reference from before an upgrade kept words and tests the upgrade had changed; a review)."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def shipped_accuracy(row: dict | PerClassRow) -> float | None:
    """A class's test accuracy under the probe that ships (the first seed's head, what ``predict`` and probe.zip
    give): its ``accuracy_per_seed[0]``. The report's ``accuracy`` is the mean over seeds, which a user read as the
    shipped probe's (bird 30.6 % against the shipped 16.7 %; a new-user round)."""
    seeds = row["accuracy_per_seed"] if isinstance(row, dict) else row.accuracy_per_seed
    return seeds[0] if seeds else None


def class_row(per_class: list, name: str) -> dict | PerClassRow | None:
    """The row of the class ``name`` among the ``per_class`` rows (report models or their JSON), None where none is."""
    return next((row for row in per_class if (row["name"] if isinstance(row, dict) else row.name) == name), None)


def worst_class_ci(per_class: list, name: str) -> list | None:
    """The 95 % Wilson interval of the class ``name`` among the ``per_class`` rows (models or their JSON), the worst
    class's beside its accuracy in the terminal and the exports (a new-user round: "Shirt (33.33 %)" alone); None
    in reports without intervals."""
    row = class_row(per_class, name)
    if row is None:
        return None
    return row.get("accuracy_ci") if isinstance(row, dict) else row.accuracy_ci


def accuracy_intervals(accuracies, images) -> list[list[float] | None]:
    """The 95 % Wilson interval of each accuracy over its number of ``images``
    (:func:`probe.uncertainty.wilson_interval`, what ``class_accuracy_interval`` gives each test accuracy), as a
    report stores it: None where the accuracy is unknown (None, nan) or there are no images. A seed mean counts
    fractional successes, as the test accuracy's interval does."""
    values = np.array([np.nan if v is None else v for v in accuracies], dtype=np.float64)
    counts = np.asarray(images, dtype=np.float64)
    return intervals_or_none(wilson_interval(values * counts, counts))


def shipped_class_ci(row: dict | PerClassRow) -> list[float] | None:
    """The 95 % Wilson interval of a class's :func:`shipped_accuracy` over its ``n_test`` images, as the summary's
    ``shipped_overall_ci`` is of the overall one; None without a shipped accuracy or test images. The shipped
    probe's worst class was shown without one ("b 0.00 %") beside the seed mean's "0.00 % [0.0, 34.5]"."""
    return shipped_class_cis([row])[0]


def shipped_class_cis(rows: list) -> list[list[float] | None]:
    """:func:`shipped_class_ci` of each of the ``rows`` (report models or their JSON) in one vectorised call: one
    call a row took ~0.4 ms, two seconds of a 5,000-class report's Markdown or HTML export."""
    images = [(row.get("n_test") if isinstance(row, dict) else row.n_test) or 0 for row in rows]
    return accuracy_intervals([shipped_accuracy(row) for row in rows], images)


def shipped_worst(per_class: list, seeds: int) -> WorstClass | None:
    """The shipped probe's worst class on test (the lowest :func:`shipped_accuracy` of the ``per_class`` rows,
    report models or their JSON, the first by class index, the others of that accuracy in ``tied_with``: coat and
    pullover both at 0 read as coat alone, a new-user round); None with one seed (``seeds``), where it is the
    summary's worst class."""
    rows = [r if isinstance(r, dict) else r.model_dump(include={"index", "name", "accuracy_per_seed"})
            for r in per_class]
    scored = sorted((acc, r["index"], r["name"]) for r in rows if (acc := shipped_accuracy(r)) is not None)
    if seeds < 2 or not scored:
        return None
    accuracy, _, name = scored[0]
    return WorstClass.of(name, accuracy, [other for acc, _, other in scored[1:] if same_score(acc, accuracy)])


def _unmeasured(value: Any) -> bool:
    """None, or a float NaN (what a run holds in memory for what its JSON stores as null: the stability of a class
    of fewer than 2 validation images), both an empty cell of per_class.csv."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def report_csv(report: Report) -> str:
    """``per_class.csv`` text: header = ``PER_CLASS_COLUMNS``, one row per class, empty cells for null, names made
    safe for spreadsheets (:func:`csv_cell`); with the class's ``grouping.stability`` and its ``top_confusions`` as
    the other views show them ("cat (12.0), dog (5.0)": names and per cent of its test images predicted as each; a scale round
    found the CSV without either)."""
    buf = io.StringIO()
    # RFC 4180's "\r\n" ends a row, as in every CSV the product writes: under "\n" a "\r" in a class name went
    # unquoted and split its row for csv, pandas and spreadsheets
    writer = csv.DictWriter(buf, fieldnames=list(PER_CLASS_COLUMNS))
    writer.writeheader()
    stability = report.grouping.stability or [None] * len(report.per_class)
    for row in report.per_class:
        values = row.model_dump()
        for name in CLASS_INTERVALS:
            values[f"{name}_ci_lo"], values[f"{name}_ci_hi"] = values.pop(f"{name}_ci") or (None, None)
        values["stability"] = stability[row.index]
        values["shipped_accuracy"] = shipped_accuracy(values)
        values["top_confusions"] = (confusions_text([(c.name, c.rate) for c in row.top_confusions])
                                    if row.top_confusions else None)
        writer.writerow({k: ("" if _unmeasured(values[k]) else csv_cell(values[k])) for k in PER_CLASS_COLUMNS})
    return buf.getvalue()


def confusions_text(top: list[tuple[str, float]], name: Callable[[str], str] = listed_name) -> str:
    """A class's most frequent confusions, (name, fraction of its test images predicted as it) pairs, as "name (per
    cent)" (:data:`CONFUSIONS_HEADER`); "—" when it has none. ``name`` writes each name: :func:`listed_name` (a name
    holding ", " read as two in the list), the HTML export's also escaped and isolated."""
    return ", ".join(f"{name(n)} ({percent(rate, 1)})" for n, rate in top if rate > 0) or "—"


def _thirds_out_of_order(summary: Summary, selection: Selection, posthoc: Posthoc | None) -> list[str]:
    """A warning where the test split ranks the thirds against their names (the hard third above the easy one):
    the groups, ranked on validation, did not hold there, and a user choosing on "hard third" figures read them
    with nothing said (hard 90.0 %, easy 80.0 %; a dashboard-only round). Not for a run built to raise its hard
    third (a disparity-aware selection, a post-hoc bias), where that can be its own doing (a review), unless the
    selection kept the reference configuration: a preset run equal to ERM, beside ERM's warning, said nothing (a
    new-user round's compare: "warning (base run): On test the thirds are out of order" of identical runs)."""
    easy, hard = summary.easy, summary.hard
    changed = selection.criterion != "overall" and selection.verdict != "no_safe_improvement"
    if changed or posthoc is not None:
        return []
    if easy is None or hard is None or not (math.isfinite(easy) and math.isfinite(hard)) or hard <= easy:
        return []
    return [f"On test the thirds are out of order: the hard third scores {percent(hard)} %, the easy one "
            f"{percent(easy)} %. The groups were ranked on validation and did not hold on these test images: read the thirds' "
            "accuracies as noisy (the stability column says how firmly each class kept its third)."]


def posthoc_text(posthoc: Posthoc | dict, config: dict) -> str:
    """A run's :meth:`Posthoc.describe` (the one it stored, or worded now for a report from before it) from its
    ``posthoc`` (model or JSON) and ``config``, for the terminal, Markdown and HTML views."""
    posthoc = Posthoc.model_validate(posthoc) if isinstance(posthoc, dict) else posthoc
    return posthoc.text or posthoc.describe(config.get("overall_metric") or "accuracy",
                                            config.get("max_overall_drop") or 0.0)


