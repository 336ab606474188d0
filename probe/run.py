"""One probe request end to end: select on validation, train every seed, evaluate, write the run directory.

``run_probe`` is the harness every method goes through (ERM, MR², variants, post-hoc bias), so all of them are
selected on the same validation split, scored on the same groups and reported in the same format:

1. Selection (validation only, never test): the grid of ``ProbeConfig.candidates()`` (lr × weight decay, + c̄,
   λ and loss options where selected), each candidate trained with ``seeds[0]`` and scored by a named criterion
   (``probe.selection``). A candidate whose fit diverged (``probe.trainer.diverged``) is recorded with its
   reason in ``selection.candidates[i].failed`` and never selected; if all diverge the run fails.
2. Groups: easy / medium / hard thirds from the reference (ERM) run's validation per-class accuracy, or, without a
   reference, from this run's own (seed-mean) validation per-class accuracy; the report says which.
3. Every seed trained with the chosen hyper-parameters (the ``seeds[0]`` model of the selection is reused: same
   seed, same parameters, same model), evaluated on val and test; optionally a post-hoc per-class logit bias
   (``probe.posthoc``) fitted per seed on its validation logits.
4. ``report.json``, ``per_class.csv``, ``head.safetensors`` + ``head.json`` (first seed, ``ProbeTrainer.save``)
   and, with the post-hoc bias, ``posthoc_bias.json`` in ``out_dir``.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .allocator import keep_freed_memory, release_freed_memory
from .calibration import calibration_summary, temperature_fit, temperature_of, true_class_terms
from .compare import (beyond_noise, discordance_sentence, first_class_difference, group_evidence, held_back_sentence,
                      lost_beyond_budget, lost_on_test, metric_discordance, metric_evidence)
from .config import ProbeConfig
from .crossval import CVPlan, out_of_fold, plan_cross_validation
from .decision import decide, stability_and_warnings
from .diagnostics import split_disagreement_warning, test_diagnostics
from .evaluate import SeedEvaluation, apply_posthoc, evaluate_seed, evaluate_split
from .groups import assign_groups, group_accuracy
from .metrics import nan_mean, overall_score, softmax
from .names import lookalike_names_warning
from .predictions import Predictions, paired_test_intervals
from .registry import NEEDS, get_loss_spec
from .report import (
    Candidate,
    CrossValidation,
    FeatureSource,
    FrontierPoint,
    NearDuplicatePair,
    NearDuplicates,
    PresetInfo,
    Report,
    Selection,
    Timing,
    build_report,
    check_run_dir,
    run_environment,
    write_run,
)
from .near_duplicates import (MAX_CHECK_PRODUCTS, NEAR_DUPLICATE_RATIO, SAMPLE_DRAW, CheckedRows, budget_for_test,
                              check_rows, is_near_duplicate, near_duplicate_threshold, sample_share)
from .seen import SEEN_SPLITS, content_keys, row_keys
from .splits import (Splits, check_arrays, check_class_options, check_spread, checked_splits, kept_contents,
                     without_classes)
from .run_notes import (calibration_warnings, carved_test, choice_warnings, feature_warnings, imbalance, other_features,
                        other_metric, past_budget_sentence, posthoc_sentence, tie_note, verdict_on_test)
from .selection import delta_sentence, format_delta, select_candidate
from .uncertainty import class_accuracy_interval, intervals_or_none, observed_class_accuracy, wilson_interval

logger = logging.getLogger(__name__)

__all__ = ["ProbeCancelled", "run_probe"]


class ProbeCancelled(Exception):
    """Raised by ``run_probe`` when ``should_stop()`` returns True; nothing is written to ``out_dir``."""


def _reference_floor(reference: Report, class_names: list[str]) -> tuple[dict[str, list[int]], float]:
    """The reference run's groups (thirds of its val per-class accuracy, or the groups it ranked out of fold when
    it cross-validated) and its val overall (the floor)."""
    if list(reference.class_names) != list(class_names):
        raise ValueError("reference run has different classes than this run: "
                         + first_class_difference(reference.class_names, class_names,
                                                  ("the reference run", "this run")))
    if reference.grouping.split == "cv":
        return {k: list(v) for k, v in reference.grouping.groups.items()}, reference.val.overall
    per_class = np.array(reference.val.per_class, dtype=float)  # None → nan
    return assign_groups(per_class), reference.val.overall


def _run_loss_options(config: ProbeConfig, reference: Report | None) -> dict[str, Any]:
    """Loss options the run adds: the reference's per-class validation error for losses that need it (a reference
    is there: :func:`check_class_options` ran first)."""
    needs = get_loss_spec(config.loss).needs
    filled = NEEDS[needs].option
    if needs != "val_error" or config.loss_options.get(filled) is not None:
        return {}
    ref_acc = np.array(reference.val.per_class, dtype=float)
    return {filled: np.nan_to_num(1.0 - ref_acc, nan=1.0).tolist()}


# what a user can change when fits diverge: the learning rate most often, else a setting the failure names
_DIVERGED_ADVICE = ("use smaller lr_grid values, or a smaller weight decay or loss option among the settings "
                    "named")


class _Progress:
    """Fraction of the run's fits done, reported through ``progress``; ``should_stop`` polled at each step."""

    def __init__(self, total: int, progress: Callable | None, should_stop: Callable | None) -> None:
        self.total, self.done, self.progress, self.should_stop = total, 0, progress, should_stop
        self.precisions: set[str] = set()  # what every fit of the run ran at (report.environment.fit_precisions)

    def fitted(self, trainers: list) -> list:
        """Note the precision each fitted trainer ran at; returns them."""
        self.precisions.update(t.precision_ for t in trainers)  # fit_many sets it on every trainer
        return trainers

    def tick(self, stage: str) -> None:
        if self.should_stop is not None and self.should_stop():
            raise ProbeCancelled(f"probe run cancelled during {stage}")
        if self.progress is not None:
            self.progress(self.done / self.total, stage)

    def hook(self, stage: str, fits: int = 1) -> Callable[[int, int], None]:
        """Per-epoch hook of a fit that counts for ``fits`` of the ``total`` steps (a joint fit counts for all)."""
        def hook(epoch: int, epochs: int) -> None:
            if self.should_stop is not None and self.should_stop():
                raise ProbeCancelled(f"probe run cancelled during {stage}, epoch {epoch}/{epochs}")
            if self.progress is not None:
                self.progress((self.done + fits * epoch / epochs) / self.total, stage)
        return hook


class _Clock:
    """The wall time of a run's phases (``time.perf_counter``) for its :class:`probe.report.Timing`."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase], self.last = now - self.last, now

    def timing(self, fits: int, device) -> Timing:
        import torch

        return Timing(total_seconds=time.perf_counter() - self.start, selection_seconds=self.phases["selection"],
                      seeds_seconds=self.phases["seeds"], fits=fits, device=str(device),
                      threads=torch.get_num_threads())


class _Fitter:
    """Builds and fits the trainers of one run on the prepared training tensor (shared by every fit)."""

    def __init__(self, config: ProbeConfig, splits: Splits, device, loss_options: dict, steps: _Progress,
                 x=None) -> None:
        import torch

        from .trainer import ProbeTrainer

        self.config, self.splits, self.device = config, splits, device
        self.loss_options, self.steps = loss_options, steps
        self.trainer_class = ProbeTrainer
        # Constants of the sweep, prepared once rather than per fit: the float32 training tensor (shared with the
        # reference configuration's fitter) and, when the class statistics are exact (frozen features, no
        # adapter), r_k² and ‖s_k‖² of the features the head sees.
        if x is None:  # float16 features stay float16 (the trainer widens them batch by batch)
            dtype = np.float16 if splits.x_train.dtype == np.float16 else np.float32
            x = torch.from_numpy(np.ascontiguousarray(splits.x_train, dtype=dtype))
        self.x = x
        self.stats = None
        if config.adapter is None and config.r2_mode == "exact":
            first = self.make(config.candidates()[0], config.seeds[0])
            self.stats = first.class_stats(self.x, splits.y_train, splits.num_classes)

    def like(self, config: ProbeConfig) -> "_Fitter":
        """A fitter of another configuration (the reference) on the same prepared training tensor."""
        return _Fitter(config, self.splits, self.device, {}, self.steps, x=self.x)

    def on(self, x_train: np.ndarray, y_train: np.ndarray) -> "_Fitter":
        """This configuration's fitter on other training samples (a cross-validation fold)."""
        return _Fitter(self.config, replace(self.splits, x_train=x_train, y_train=y_train), self.device,
                       self.loss_options, self.steps)

    def make(self, params: dict, seed: int, hook: Callable | None = None, precision: str | None = None):
        kwargs = self.config.trainer_params(params, seed=seed, device=self.device, loss_options=self.loss_options)
        if precision:  # overrides the configuration's (the first seed's, _train_seeds)
            kwargs["precision"] = precision
        return self.trainer_class(**kwargs, progress=hook)

    def fit_all(self, candidates: list[dict], seed: int, label: str = "selection") -> list:
        """Fit every candidate with ``seed``: in one pass over the data without an adapter
        (``probe.trainer.fit_many``), else one fit each (an adapter gives each candidate its own features)."""
        if self.config.adapter is not None:
            fitted = []
            for i, params in enumerate(candidates):
                fitted.append(self.fit(params, seed, f"{label} {i + 1}/{len(candidates)}"))
            return fitted
        many = len(candidates) != 1  # "(1 candidates, joint fit)" (a new-user round)
        return self._fit_jointly([(params, seed) for params in candidates],
                                 f"{label} ({len(candidates)} candidates, joint fit)" if many else f"{label} (1 candidate)")

    def fit_seeds(self, params: dict, seeds: list[int], precision: str | None = None) -> list:
        """Fit ``params`` once per seed: in one pass when the fits are full-batch without an adapter (a seed then
        only initialises its head, ``probe.trainer.fit_many``), else one fit after another. ``precision``
        overrides the configuration's (None: keep it)."""
        from .trainer import full_batch

        if self.config.adapter is None and len(seeds) > 1 and full_batch(self.config.batch_size, len(self.x)):
            return self._fit_jointly([(params, seed) for seed in seeds],
                                     f"seeds {', '.join(map(str, seeds))} (joint fit)", precision)
        return [self.fit(params, seed, f"seed {seed}", precision) for seed in seeds]

    def _fit_jointly(self, fits: list[tuple[dict, int]], stage: str, precision: str | None = None) -> list:
        from .trainer import fit_many

        self.steps.tick(stage)
        hook = self.steps.hook(stage, fits=len(fits))
        trainers = [self.make(params, seed, hook if i == 0 else None, precision)
                    for i, (params, seed) in enumerate(fits)]
        fitted = fit_many(trainers, self.x, self.splits.y_train, num_classes=self.splits.num_classes,
                          class_stats=self.stats)
        self.steps.done += len(fits)
        return self.steps.fitted([t.set_params(progress=None) for t in fitted])

    def fit(self, params: dict, seed: int, stage: str, precision: str | None = None):
        self.steps.tick(stage)
        trainer = self.make(params, seed, self.steps.hook(stage), precision).fit(
            self.x, self.splits.y_train, num_classes=self.splits.num_classes, class_stats=self.stats)
        self.steps.done += 1
        self.steps.fitted([trainer])
        return trainer.set_params(progress=None)  # the hook is a closure over this run: not part of the model


def _correct(trainer, features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(n,) per-sample correctness (1.0 right, 0.0 wrong) of a fitted trainer's predictions."""
    logits = evaluate_split(trainer, features, labels, num_classes).logits
    return (logits.argmax(axis=1) == labels).astype(np.float64)


@dataclass
class _Scorer:
    """Where selection scores candidates: the validation split, or, with a cross-validation ``plan``
    (``probe.crossval``), out of fold on the ``pool`` train + val. ``labels`` are those of the samples every
    per-sample correctness vector scores."""

    splits: Splits
    plan: CVPlan | None = None
    pool: tuple[np.ndarray, np.ndarray] | None = None
    warnings: list[str] = field(default_factory=list)
    overall_metric: str = "accuracy"  # what a candidate's "overall" is (ProbeConfig.overall_metric)

    @property
    def labels(self) -> np.ndarray:
        return self.splits.val[1] if self.plan is None else self.pool[1]

    @property
    def folds(self) -> int:
        return 0 if self.plan is None else self.plan.k

    def correctness(self, fitter: _Fitter, candidates: list[dict]) -> tuple[list, list, list]:
        """Fit and score ``candidates`` with ``seeds[0]`` → per candidate ``(correct, failure, model)``
        lists: the per-sample correctness (None when a fit diverged), the failure or None, and the model fitted
        on the train split (None under cross-validation: only the chosen one is fitted there, later)."""
        from .trainer import diverged

        seed, num_classes = fitter.config.seeds[0], self.splits.num_classes
        if self.plan is None:
            fitted = fitter.fit_all(candidates, seed)
            failures = [diverged(t) for t in fitted]
            correct = [None if failure else _correct(t, *self.splits.val, num_classes)
                       for t, failure in zip(fitted, failures)]
            return correct, failures, fitted
        x, y = self.pool

        def fit_fold(fold: int, train_index: np.ndarray, test_index: np.ndarray) -> list:
            fitted = fitter.on(x[train_index], y[train_index]).fit_all(
                candidates, seed, f"cross-validation fold {fold + 1}/{self.plan.k}")
            return [(None, failure) if (failure := diverged(t)) is not None
                    else (evaluate_split(t, x[test_index], y[test_index], num_classes).logits.argmax(axis=1), None)
                    for t in fitted]

        correct, failures = out_of_fold(fit_fold, y, self.plan.folds, len(candidates))
        return correct, failures, [None] * len(candidates)

    def cross_validation(self) -> CrossValidation | None:
        if self.plan is None:
            return None
        return CrossValidation(folds=self.plan.k, samples=self.plan.samples, reason=self.plan.reason)


def _scorer(splits: Splits, class_names: list[str], config: ProbeConfig) -> _Scorer:
    """The validation split, or k-fold cross-validation on train + val when validation is small
    (``probe.crossval.plan_cross_validation``)."""
    pool_labels = np.concatenate([splits.y_train, splits.val[1]])
    plan, warnings = plan_cross_validation(splits.val[1], pool_labels, class_names, config.cv, config.seeds[0])
    if plan is None:
        return _Scorer(splits, warnings=warnings, overall_metric=config.overall_metric)
    logger.info("selection by %d-fold cross-validation on train + val (%d samples): %s", plan.k, plan.samples,
                plan.reason)
    pool = (np.concatenate([splits.x_train, splits.val[0]]), pool_labels)
    return _Scorer(splits, plan, pool, warnings, config.overall_metric)


def _scores(correct: np.ndarray, scorer: _Scorer, groups: dict | None) -> tuple[float, float]:
    """(overall, hard-third) accuracy of a per-sample correctness vector on the scorer's samples (overall: the
    scorer's ``overall_metric``); ``groups`` None ranks the classes by this vector's own per-class accuracy."""
    num_classes = scorer.splits.num_classes
    per_class = observed_class_accuracy(correct, scorer.labels, num_classes)
    groups = groups if groups is not None else assign_groups(per_class)
    overall = overall_score(correct, scorer.labels, num_classes, scorer.overall_metric)
    return overall, group_accuracy(per_class, groups)["hard"]


@dataclass
class _Sweep:
    """The selection sweep with ``seeds[0]``: candidates, scores, models fitted on the train split (None under
    cross-validation) and per-sample correctness on the scorer's samples."""

    candidates: list[dict]
    scored: list[Candidate]
    fitted: list
    correct: list[np.ndarray | None]

    @property
    def viable(self) -> list[int]:
        return [i for i, c in enumerate(self.scored) if c.failed is None]


def _sweep(fitter: _Fitter, scorer: _Scorer, ref_groups: dict | None) -> _Sweep:
    """Fit and score every candidate with ``seeds[0]`` (diverged ones get ``failed`` set)."""
    candidates = fitter.config.candidates()
    correct, failures, fitted = scorer.correctness(fitter, candidates)
    scored: list[Candidate] = []
    for i, (params, vector, failure) in enumerate(zip(candidates, correct, failures)):
        if failure is not None:
            logger.warning("candidate %d/%d %s %s", i + 1, len(candidates), params, failure)
            scored.append(Candidate(**params, failed=failure))
            continue
        overall, hard = _scores(vector, scorer, ref_groups)
        scored.append(Candidate(**params, val_overall=overall, val_hard=hard))
        logger.info("candidate %d/%d %s: val overall %.4f, hard %.4f", i + 1, len(candidates), params,
                    overall, hard)
    if not any(c.failed is None for c in scored):
        raise ValueError(f"every one of the {len(scored)} selection candidates diverged (first: {scored[0].failed}); "
                         f"{_DIVERGED_ADVICE}.")
    return _Sweep(candidates, scored, fitted, correct)


def _select_overall(sweep: _Sweep, config: ProbeConfig, floor: float | None, scorer: _Scorer
                     ) -> tuple[int, str]:
    """The named criterion of ``probe.selection`` over the viable candidates; returns (index, reason)."""
    viable = sweep.viable
    entries = [{**sweep.candidates[i], "val_overall": sweep.scored[i].val_overall,
                "val_hard": sweep.scored[i].val_hard} for i in viable]
    index, reason = select_candidate(entries, config.select, floor=floor)
    if len(viable) < len(sweep.scored):
        reason += (f" {len(sweep.scored) - len(viable)} candidate(s) diverged and were left out (see "
                   "selection.candidates[].failed).")
    return viable[index], reason + _runner_up_note(sweep, entries, index, scorer, config)


def _runner_up_note(sweep: _Sweep, entries: list[dict], index: int, scorer: _Scorer, config: ProbeConfig) -> str:
    """How far the chosen candidate's validation score lies from the next best's, paired on the images both were
    scored on (the bootstrap of the decision's, ``probe.uncertainty.Bootstrap``, seeded by the first seed): with 1
    to 5 validation images in the rare classes of a long-tailed set, the winner led by 0.5 points of 2,730
    out-of-fold images (an interval of about ±1 point) and nothing said the choice was a toss-up (a long-tailed
    round). ``entries``: the viable candidates as :func:`_select_overall` ranked them, ``index`` the chosen's
    among them; "" without a second candidate. (The hard criterion's decision gives its own intervals.)"""
    from .selection import describe_params
    from .uncertainty import Bootstrap

    others = [i for i in range(len(entries)) if i != index]
    if not others:
        return ""
    runner = others[select_candidate([entries[i] for i in others], "overall")[0]]
    chosen, runner = sweep.viable[index], sweep.viable[runner]
    delta = Bootstrap(scorer.labels, scorer.splits.num_classes, seed=config.seeds[0],
                      overall=scorer.overall_metric).paired_delta(sweep.correct[chosen], sweep.correct[runner])
    delta = delta["overall"]
    return (f" Against the next best ({describe_params(sweep.candidates[runner])}), paired on the "
            f"{len(scorer.labels):,} images scored: {format_delta(delta['delta'], (delta['lo'], delta['hi']))}.")


def _train_seeds(fitter: _Fitter, chosen: dict, first, splits: Splits) -> tuple[Any, list[SeedEvaluation]]:
    """Fit every seed of ``chosen`` but the first when its model ``first`` exists (selection on validation
    fitted it), evaluate them all → (the first seed's model, the evaluations).

    The other seeds train at the precision ``first`` ran at: fitted jointly with the other candidates, its product
    was wide enough for ``auto`` to pick bf16, where a seed fitted alone (mini-batches, one head) would resolve to
    fp32, and the spread over seeds would mix the two precisions."""
    from .trainer import diverged

    seeds = fitter.config.seeds
    todo = seeds if first is None else seeds[1:]
    precision = None if first is None else first.precision_
    fitted = fitter.fit_seeds(chosen, todo, precision) if todo else []
    trainers = fitted if first is None else [first, *fitted]
    evaluations = []
    for seed, trainer in zip(seeds, trainers):
        failure = diverged(trainer)
        if failure is not None:
            raise ValueError(f"seed {seed} with the selected {chosen} {failure}; {_DIVERGED_ADVICE}.")
        evaluations.append(evaluate_seed(trainer, seed, splits.val, splits.test, splits.num_classes))
        evaluations[-1].precision = trainer.precision_
    return trainers[0], evaluations


def _predictions(evaluations: list[SeedEvaluation], test_labels: np.ndarray, sources=None,
                 temperature: float = 1.0, digests=None) -> Predictions:
    """Test predictions of every seed and the first seed's confidence and probability of each sample's label
    (``probe.predictions``): the softmax of its logits divided by ``temperature`` (the shipped head's,
    ``config.temperature_scaling``)."""
    first = evaluations[0].test_logits / temperature
    # p(label) = exp(−NLL), as the scores of a shipped probe on new images have it (app.shipped)
    return Predictions(test_labels, np.stack([e.test_logits.argmax(axis=1) for e in evaluations]),
                       softmax(first).max(axis=1), sources,
                       label_probability=np.exp(-true_class_terms(first, test_labels)[0]), digests=digests)


def _preset_info(config: ProbeConfig) -> PresetInfo | None:
    if config.preset is None:
        return None
    from .presets import get_preset

    p = get_preset(config.preset)
    return PresetInfo(name=p.name, settings=p.settings, why=p.why)


@dataclass
class _Outcome:
    """What selection decided: the configuration and hyper-parameters every seed is trained with, its
    ``seeds[0]`` model and fitter, the report's selection, the groups (None: from this run's own validation
    accuracy), their stability, warnings, and the reference configuration's fitter when a paired test
    comparison is due."""

    config: ProbeConfig
    params: dict
    first: Any
    fitter: _Fitter
    selection: Selection
    groups: dict | None = None
    stability: list[float] | None = None
    warnings: list[str] = field(default_factory=list)
    reference: tuple | None = None  # (fitter, params, seeds[0] model) of the reference configuration
    chosen_correct: np.ndarray | None = None  # the chosen configuration's correctness on the scorer's samples ...
    val_labels: np.ndarray | None = None  # ... whose labels (val, or train + val under CV) the overall criterion
    #                                       keeps to compute its stability once every seed is trained
    reference_stability: tuple | None = None  # the reference run's, where its groups are this run's


def _overall_choice(candidates: list[dict], correct: list, scorer: _Scorer) -> int:
    """The index an ERM run (``select="overall"``) would choose among ``candidates`` from their per-sample
    correctness: the same scores and the same tie-break (``probe.selection``) as :func:`_sweep` +
    :func:`_select_overall`, so the reference trained inside a run equals the user's ``--loss ce`` run."""
    viable = [i for i, c in enumerate(correct) if c is not None]
    if not viable:
        return 0
    entries = []
    for i in viable:
        overall, hard = _scores(correct[i], scorer, None)
        entries.append({**candidates[i], "val_overall": overall, "val_hard": hard})
    return viable[select_candidate(entries, "overall")[0]]


def _reference_configuration(fitter: _Fitter, reference: Report | None, scorer: _Scorer) -> tuple:
    """The reference (ERM) configuration fitted with its first seed → ``(fitter, params, model, correct)``: the
    reference run's configuration and selected hyper-parameters, or, without a reference run, this request's
    :meth:`ProbeConfig.reference_config` with lr / weight decay selected on overall accuracy (validation, or out
    of fold); ``correct`` is its per-sample correctness on the scorer's samples."""
    from .trainer import diverged

    if reference is not None:
        fields = {k: v for k, v in reference.config.items() if k in ProbeConfig.model_fields and k != "preset"}
        ref_fitter = fitter.like(ProbeConfig.model_validate({**fields, "device": fitter.config.device,
                                                             "overall_metric": fitter.config.overall_metric}))
        candidates = [{k: v for k, v in (reference.config.get("selected") or {}).items() if v is not None}]
    else:
        ref_fitter = fitter.like(fitter.config.reference_config())
        candidates = ref_fitter.config.candidates()
    correct, failures, fitted = scorer.correctness(ref_fitter, candidates)
    best = _overall_choice(candidates, correct, scorer)
    params, model, failure = candidates[best], fitted[best], failures[best]
    if failure is None and model is None:  # cross-validation: the seeds[0] model on the train split
        model = ref_fitter.fit(params, ref_fitter.config.seeds[0], "reference configuration")
        failure = diverged(model)
    if failure is not None:
        raise ValueError(f"the reference (ERM) configuration {params} {failure}.")
    return ref_fitter, params, model, correct[best]


def _decide_hard(fitter: _Fitter, sweep: _Sweep, reference: Report | None, ref_groups: dict | None,
                 scorer: _Scorer, class_names: list[str]) -> _Outcome:
    """The disparity-aware decision (``probe.decision``): paired differences to the reference configuration on
    the same samples; a candidate only when it raises the hard third beyond noise within the overall budget."""
    config = fitter.config
    ref_fitter, ref_params, ref_model, ref_correct = _reference_configuration(fitter, reference, scorer)
    entries = [{"loss": ref_fitter.config.loss, **ref_params}]
    if ref_fitter.config.head != config.head:  # a reference run's head, not the requested one: named wherever the
        entries[0] = {"head": ref_fitter.config.head, **entries[0]}  # reason keeps or compares it
    entries += [dict(c, failed=s.failed) if s.failed else dict(c) for c, s in zip(sweep.candidates, sweep.scored)]
    d = decide(entries, [ref_correct, *sweep.correct], 0, scorer.labels, class_names, groups=ref_groups,
               max_overall_drop=config.max_overall_drop, seed=config.seeds[0],
               split=_split_name(scorer.plan is not None), overall_metric=config.overall_metric,
               reference_stability=_reference_stability(reference, ref_groups))
    frontier = [FrontierPoint(**e) for e in d.frontier]
    common = dict(criterion=config.select, candidates=sweep.scored, reason=d.reason, preset=_preset_info(config),
                  verdict=d.verdict, frontier=frontier)
    # a reference run of another loss: every "reference (ERM)" of the report is that loss (its verdict read "equals
    # the reference (ERM) configuration" of a focal run it shipped; a new-user round)
    not_erm = ([] if ref_fitter.config.loss == "ce" else [
        f"The reference run is not ERM: its loss is {ref_fitter.config.loss}, so this run was compared with a "
        f"{ref_fitter.config.loss} configuration where it says 'reference (ERM)', and ships it when nothing qualified. "
        "Give an ERM run (loss ce) as the reference to compare with ERM."])
    if d.index == 0:  # no safe improvement: the run is the reference configuration
        # val_hard on the groups, as every candidate's (the frontier's is the decision's cross-fitted third)
        hard = group_accuracy(observed_class_accuracy(ref_correct, scorer.labels, len(class_names)), d.groups)["hard"]
        chosen = Candidate(**ref_params, val_overall=frontier[0].val_overall, val_hard=hard)
        selection = Selection(**common, chosen=chosen, requested=config.model_dump(mode="json"),
                              verdict_text=delta_sentence({}, d.verdict, config.overall_metric,
                                                          config.max_overall_drop / 100.0))
        kept_head = ([] if ref_fitter.config.head == config.head else [
            f"The {config.head} head asked for is not what this run ships: no {config.head} candidate qualified "
            f"against the reference run's {ref_fitter.config.head} head, so the run is that reference configuration, "
            f"a {ref_fitter.config.head} head. Train a {config.head} ERM reference to compare {config.head} settings "
            f"with {config.head}."])  # the head changed without a word (found by a new-user round)
        return _Outcome(ref_fitter.config.kept_for(config), ref_params, ref_model, ref_fitter, selection, d.groups,
                        d.stability, [*not_erm, *kept_head, *d.warnings], chosen_correct=ref_correct)
    i = d.index - 1
    selection = Selection(**common, chosen=sweep.scored[i])
    return _Outcome(config, sweep.candidates[i], sweep.fitted[i], fitter, selection, d.groups, d.stability,
                    [*not_erm, *d.warnings], reference=(ref_fitter, ref_params, ref_model),
                    chosen_correct=sweep.correct[i])


def _split_name(cross_validated: bool) -> str:
    """What the selection's samples are, for warnings."""
    return "train + val" if cross_validated else "validation"


def _reference_stability(reference: Report | None, groups: dict | None) -> tuple[list[float], str] | None:
    """The reference run's stability of its thirds and what it resampled, where ``groups`` are those thirds
    (``probe.decision._stability``); None where the reference recorded none, or ranked other thirds."""
    if reference is None or groups is None or reference.grouping.stability is None:
        return None
    theirs = {name: sorted(members) for name, members in reference.grouping.groups.items()}
    if theirs != {name: sorted(members) for name, members in groups.items()}:
        return None
    split = _split_name(reference.grouping.split == "cv")
    return list(reference.grouping.stability), f"the reference run's {split} split"


def _select(fitter: _Fitter, scorer: _Scorer, reference: Report | None, class_names: list[str]) -> _Outcome:
    """Selection on validation (or out of fold) by the request's criterion (``overall``, or ``hard``)."""
    ref_groups, floor = _reference_floor(reference, class_names) if reference is not None else (None, None)
    # The overall criterion scores every candidate's hard third on its own ranking, as a run without a reference
    # does: its tie-break (the higher val hard third) then picks what the user's ERM run picked, reference or not.
    sweep = _sweep(fitter, scorer, ref_groups if fitter.config.select == "hard" else None)
    if fitter.config.select == "hard":
        outcome = _decide_hard(fitter, sweep, reference, ref_groups, scorer, class_names)
    else:
        index, reason = _select_overall(sweep, fitter.config, floor, scorer)
        selection = Selection(criterion=fitter.config.select, candidates=sweep.scored, chosen=sweep.scored[index],
                              reason=reason, preset=_preset_info(fitter.config))
        groups = ref_groups
        if groups is None and scorer.plan is not None:  # the chosen configuration's out-of-fold accuracy
            groups = assign_groups(observed_class_accuracy(sweep.correct[index], scorer.labels,
                                                           scorer.splits.num_classes))
        outcome = _Outcome(fitter.config, sweep.candidates[index], sweep.fitted[index], fitter, selection, groups,
                           chosen_correct=sweep.correct[index], val_labels=scorer.labels,
                           reference_stability=_reference_stability(reference, groups))
    if scorer.plan is not None:
        outcome.selection.split, outcome.selection.cv = "cv", scorer.cross_validation()
    if fitter.config.overall_metric == "balanced":  # said first: after "highest validation overall accuracy" it
        outcome.selection.reason = ("Overall is balanced accuracy in this selection (the mean of the per-class "
                                    "accuracies, overall_metric='balanced'). " + outcome.selection.reason)  # came late
    return outcome


def run_probe(data: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str],
              config: ProbeConfig | dict, *, reference: Report | dict | None = None,
              out_dir: str | Path | None = None, progress: Callable[[float, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None, sources: Mapping[str, Sequence[str]] | None = None,
              features: FeatureSource | dict | None = None, tune_allocator: bool = False,
              command: Sequence[str] | None = None, contents: Mapping[str, np.ndarray] | None = None) -> Report:
    """Select on val, train every seed, evaluate, write the run directory; returns the :class:`Report`.

    Args:
        data: ``{"train": (X, y), "val": (X, y), "test": (X, y)}``: X (n, d) features (float16, float32 or
            float64, any memory layout; finite), y (n,) integer class indices in [0, K) of any integer dtype (map
            class names to indices first: ``names, y = np.unique(labels, return_inverse=True)``); a missing
            ``val`` is carved from train (stratified, ``config.val_fraction``, seed ``config.seeds[0]``).
        class_names: K distinct names, index = label.
        config: the request, a :class:`ProbeConfig` or a dict of its fields.
        reference: report of the reference (ERM) run: its val per-class accuracy defines the groups and its
            val overall is the floor of the ``hard`` criterion.
        out_dir: where to write report.json, per_class.csv, head.safetensors / head.json; None writes nothing.
        progress: ``progress(fraction in [0, 1], stage)``.
        should_stop: polled between fits; True raises :class:`ProbeCancelled`.
        sources: the path of each sample in its data set, by split: test's are stored with the test predictions
            (``predictions.npz``) so that failing samples can be shown; train's and val's as digests
            (``seen_sources.npz``, :mod:`probe.seen`) so that scores on those images in another cache of the same
            data set are warned of.
        contents: each sample's content digest by split, (n, 16) uint8 rows aligned with ``sources``
            (``feature_cache``'s ``digests``; None where the cache keeps none): train's and val's are kept in
            ``seen_sources.npz`` too, so that scores on the same images under other names are warned of.
        features: where ``data`` came from (its cache's fingerprint and encoder), recorded in the report; with a
            reference run that recorded other features, the report warns that its groups and floor come from them.
        tune_allocator: keep freed heap memory in the process during the run instead of mapping and unmapping
            every step's large temporaries (:func:`probe.allocator.keep_freed_memory`, glibc ``mallopt``: for the
            rest of the process, which glibc cannot undo), and hand it back at the end (``malloc_trim``). Off by
            default, so a library call leaves its caller's allocator alone; ``mr2probe train``, the service's jobs
            and the benches pass True (1.10-1.57x an epoch of the 1000-class MR² sweep, bench/README.md).
        command: the command line that asked for the run (``mr2probe train``'s argv), recorded with the working
            directory in ``report.environment`` beside the versions and the precision the fits ran at.

    Raises:
        ValueError: malformed data or reference (checked before any fit, naming the split: shapes, widths,
            NaN / inf features, labels outside [0, K), repeated class names), a class without train or test
            samples, a device this host lacks, or a fit that diverged for every candidate / a seed.
        TypeError: labels that are not integer class indices (strings, 0.5), a config that is no ProbeConfig.
        ProbeCancelled: stopped by ``should_stop``.
        NotADirectoryError, PermissionError: ``out_dir`` cannot be written (:func:`~probe.report.check_run_dir`),
            raised before any fit.
    """
    if out_dir is not None:
        check_run_dir(out_dir)
    for name, given in (("sources", sources), ("contents", contents)):  # before any fit: a mismatch failed at the
        for split, rows in (given or {}).items():  # end, writing the run
            if split in data and len(rows) != len(data[split][1]):
                raise ValueError(f"{name}[{split!r}] lists {len(rows):,} {'paths' if name == 'sources' else 'digests'}"
                                 f" for {len(data[split][1]):,} samples.")
    if tune_allocator:
        keep_freed_memory()
    try:
        features = FeatureSource.model_validate(features) if isinstance(features, dict) else features
        return _run(data, class_names, config, reference, out_dir, progress, should_stop, sources or {}, features,
                    command, contents)
    finally:
        if tune_allocator:
            release_freed_memory()


def _request(config: ProbeConfig | dict) -> ProbeConfig:
    """``run_probe``'s ``config`` as a ProbeConfig: None or a preset's name raised AttributeError: 'drop_classes'."""
    config = ProbeConfig.model_validate(config) if isinstance(config, dict) else config
    if not isinstance(config, ProbeConfig):
        raise TypeError(f"config must be a ProbeConfig or a dict of its fields, got {type(config).__name__}: "
                        "ProbeConfig() is ERM, ProbeConfig(preset='disparity') the recommended disparity-aware probe.")
    return config


def _run(data, class_names, config, reference, out_dir, progress, should_stop, sources, features,
         command=None, contents=None) -> Report:
    """:func:`run_probe`'s work, with its arguments."""
    from .devices import resolve_device

    clock = _Clock()
    config = _request(config)
    reference = Report.model_validate(reference) if isinstance(reference, dict) else reference
    check_arrays(data, class_names)
    # before anything is counted or trained: the run is of the classes it does not leave out
    contents = kept_contents(contents, data, [str(c) for c in class_names], config.drop_classes)
    data, sources, class_names = without_classes(data, sources, [str(c) for c in class_names], config.drop_classes)
    check_class_options(config, len(class_names), reference is not None)
    splits = checked_splits(data, class_names, config)
    check_spread(config, data, class_names)
    device = resolve_device(config.device)
    config = config.resolved(len(splits.y_train))  # the report records the batch size and epochs actually used
    scorer = _scorer(splits, class_names, config)
    # the folds and rows are known now (a service checked them too, before the job)
    config.check_cost(scorer.folds, reference is not None, len(splits.y_train))
    steps = _Progress(config.total_fits(scorer.folds, reference is not None), progress, should_stop)
    fitter = _Fitter(config, splits, device, _run_loss_options(config, reference), steps)
    clock.lap("prepare")

    outcome = _select(fitter, scorer, reference, class_names)
    clock.lap("selection")
    # (cross-validation fitted no model on the train split: every seed of the chosen one is fitted here)
    outcome.first, evaluations = _train_seeds(outcome.fitter, outcome.params, outcome.first, splits)
    clock.lap("seeds")
    groups = outcome.groups
    if groups is None:
        groups = assign_groups(nan_mean([e.val_per_class for e in evaluations]))
        if outcome.val_labels is not None:  # their stability resamples what ranked them: the seeds' mean, not seed 0's
            # (a class 100 % right on val was 0 % stable, tied at 1.0 with two others in seed 0; a statistics review)
            outcome.chosen_correct = np.mean([e.val_logits.argmax(axis=1) == splits.val[1] for e in evaluations], axis=0)
    if config.posthoc_bias:
        for ev in evaluations:
            apply_posthoc(ev, splits.val[1], splits.test[1], groups, config.posthoc_objective, splits.num_classes,
                          config.overall_metric, guard=config.posthoc_guard,
                          max_overall_drop=config.max_overall_drop, seed=ev.seed)
        outcome.selection.reason += " " + posthoc_sentence(config, evaluations)
    # the shipped head's temperature, on its validation logits (after its post-hoc bias)
    temperature = temperature_fit(evaluations[0].val_logits, splits.val[1]) if config.temperature_scaling else None
    predictions = _predictions(evaluations, splits.test[1], sources.get("test"), temperature_of(temperature),
                               (contents or {}).get("test"))
    _finish_outcome(outcome, groups, predictions, splits, class_names)

    steps.tick("report")
    calibration = calibration_summary([e.test_logits for e in evaluations], splits.test[1], splits.num_classes,
                                      seed=config.seeds[0], temperature=temperature)
    near_duplicates, near_pairs = _near_duplicates(data, sources, contents, features, evaluations)
    report = build_report(
        run_id=Path(out_dir).name if out_dir is not None else None, config=outcome.config, selected=outcome.params,
        selection=outcome.selection, class_names=class_names, groups=groups, reference=reference,
        evaluations=evaluations, trainer=outcome.first,
        n_train=np.bincount(splits.y_train, minlength=splits.num_classes), val_source=splits.val_source,
        n_val=np.bincount(splits.val[1], minlength=splits.num_classes),
        diagnostics=test_diagnostics(predictions, class_names, groups),
        calibration=calibration, near_duplicates=near_duplicates,
        stability=outcome.stability, timing=clock.timing(steps.total, device), features=features,
        environment=run_environment(
            steps.precisions, [e.precision or "" for e in evaluations], command,
            os.getcwd() if command is not None else None),
        warnings=[*feature_warnings(features),
                  *carved_test(features, splits, class_names),
                  *scorer.warnings, *outcome.warnings, *other_features(reference, features),
                  *other_metric(reference, config),
                  *imbalance(splits, class_names, config.overall_metric),
                  *choice_warnings(splits, class_names, outcome, scorer.plan is not None),
                  *filter(None, [lookalike_names_warning(class_names)]),
                  *calibration_warnings(calibration, evaluations[0], splits.val[1], temperature,
                                        splits.test[1])])
    _notes(report, config, reference, scorer, outcome, groups)
    if out_dir is not None:
        seen = splits.seen(sources, contents) if sources else None
        write_run(Path(out_dir), report, outcome.first, predictions, seen, near_pairs)
    if progress is not None:
        progress(1.0, "done")
    return report


def _near_duplicates(data: Mapping[str, tuple], sources: Mapping[str, Sequence[str]],
                     contents: Mapping[str, np.ndarray] | None, features: FeatureSource | None,
                     evaluations: list[SeedEvaluation]) -> tuple[NearDuplicates | None, list[dict] | None]:
    """The test images that duplicate a train or val image given (before any carving: val carved from train is
    either): near by the cosine of the features (``probe.near_duplicates.is_near_duplicate``: the encoder's measured
    threshold and the ratio test), identical by content digest
    (``contents``), with the test accuracy on them and on the rest; and every such pair, most similar first
    (:func:`_pairs`, the run's ``near_duplicates.csv``); and the train rows nearly duplicating another train row
    (:func:`_train_near`, within what the budget leaves: a sample where not all fit). Where comparing every test row
    passes :data:`MAX_CHECK_PRODUCTS`, a seeded random sample of as many test rows as fit half of it is compared
    (``probe.near_duplicates.check_rows``, ``budget_for_test``: the other half is the train check's): near, the
    accuracies and the pairs are the sample's (``sampled``), the byte-identical count every test row's. (None, None)
    where the encoder has no measured threshold (or
    ``features`` is unknown), or not one test row fits the budget."""
    threshold = near_duplicate_threshold(features.encoder if features is not None else None)
    test_x, test_y = data["test"]
    seen = [split for split in SEEN_SPLITS if split in data and len(data[split][1])]
    per_row = sum(len(data[split][1]) for split in seen) * np.shape(test_x)[1]
    budget = budget_for_test(len(test_y) * per_row, MAX_CHECK_PRODUCTS)
    checked = None if threshold is None else check_rows(test_x, [data[split][0] for split in seen], budget)
    if checked is None:  # the test check's budget: half of MAX_CHECK_PRODUCTS where the whole check passes it
        logger.info("near-duplicates not checked: %s", "no measured threshold for the encoder" if threshold is None
                    else f"one test row's {per_row:,} products pass the {budget:,} the test check may take")
        return None, None
    rows, n_checked = checked.rows, len(checked.rows)
    if checked.sampled:
        logger.info("near-duplicates checked on %d sampled test rows of %d (products budget %.0e)", n_checked,
                    len(test_y), MAX_CHECK_PRODUCTS)
    identical = None
    if contents and all(split in contents for split in ("test", *seen)):
        keys = np.concatenate([content_keys(contents[split]) for split in seen]) if seen else np.zeros(0, np.uint64)
        identical = np.isin(row_keys(contents["test"]), keys)  # every test row: digests cost no products
    flagged = is_near_duplicate(checked.nearest, threshold)
    near = flagged & ~identical[rows] if identical is not None else flagged
    duplicate = flagged | identical[rows] if identical is not None else flagged
    correct = np.mean([e.test_logits.argmax(axis=1) == np.asarray(test_y) for e in evaluations], axis=0)[rows]
    (dup_ci, rest_ci) = wilson_interval(np.array([correct[duplicate].sum(), correct[~duplicate].sum()]),
                                        np.array([duplicate.sum(), (~duplicate).sum()]))
    pairs = _pairs(data, sources, seen, checked, duplicate, identical)
    if checked.sampled and identical is not None:  # the byte-identical count is every test row's: so is the list
        pairs = sorted(pairs + _identical_pairs(data, sources, contents, seen, np.setdiff1d(np.flatnonzero(identical),
                                                                                        rows)),
                       key=lambda pair: (-pair["similarity"], pair["test_row"]))
    sampled, near_ci = sample_share(int(near.sum()), checked)
    return NearDuplicates(**_train_near(data["train"][0], threshold, MAX_CHECK_PRODUCTS - n_checked * per_row),
        encoder=features.encoder, threshold=threshold, ratio=NEAR_DUPLICATE_RATIO, test_images=len(test_y),
        near=int(near.sum()), sampled=sampled, near_ci=near_ci, sample_draw=SAMPLE_DRAW,
        identical=None if identical is None else int(identical.sum()),
        accuracy_duplicates=correct[duplicate].mean() if duplicate.any() else None,
        duplicates_ci=dup_ci if duplicate.any() else None,
        accuracy_rest=correct[~duplicate].mean() if (~duplicate).any() else None,
        rest_ci=rest_ci if (~duplicate).any() else None,
        examples=[NearDuplicatePair(test=p["test"], seen=p["seen"], similarity=p["similarity"])
                  for p in pairs if not p["identical"]][:3]), pairs


def _train_near(train_x: np.ndarray, threshold: float, budget: int) -> dict:
    """The train rows that nearly duplicate their most similar other train row (``is_near_duplicate`` at
    ``threshold``; duplicated images weigh twice in the fit), as :class:`NearDuplicates`' ``train_*`` fields: every
    train row compared where the ``n_train² × d`` products fit ``budget`` (what the test check left of
    :data:`MAX_CHECK_PRODUCTS`), else a seeded sample of as many as fit (``train_sampled``, with ``train_near_ci``);
    ``train_near`` None where not one row fits."""
    checked = check_rows(train_x, [train_x], max(budget, 0), exclude_self=True)
    if checked is None:
        logger.info("near-duplicates inside train not checked: one row's products pass the %.2g left", budget)
        return {}
    near = int(is_near_duplicate(checked.nearest, threshold).sum())
    sampled, ci = sample_share(near, checked)
    if sampled is not None:
        logger.info("near-duplicates inside train checked on %d sampled rows of %d", sampled, len(train_x))
    return {"train_near": near, "train_images": len(train_x), "train_sampled": sampled, "train_near_ci": ci}


def _pairs(data: Mapping[str, tuple], sources: Mapping[str, Sequence[str]], seen: list[str], checked: CheckedRows,
           duplicate: np.ndarray, identical: np.ndarray | None) -> list[dict]:
    """Each ``duplicate`` compared test row (``checked.rows[i]`` where ``duplicate[i]``) with its most similar train
    or val row (``checked.nearest``, over the ``seen`` splits one after the other), most similar first (test order on
    ties): :data:`probe.near_duplicates.PAIR_COLUMNS`."""
    starts = np.cumsum([0, *(len(data[split][1]) for split in seen)])
    nearest, at_rows = checked.nearest, np.flatnonzero(duplicate)
    pairs = []
    for i in at_rows[np.argsort(-nearest.similarity[at_rows], kind="stable")]:
        at, row = int(nearest.index[i]), int(checked.rows[i])
        part = int(np.searchsorted(starts, at, side="right")) - 1
        split, seen_row = seen[part], at - int(starts[part])
        pairs.append({"test_row": row, "test": _source(sources, "test", row), "seen_split": split,
                      "seen_row": seen_row, "seen": _source(sources, split, seen_row),
                      "similarity": float(nearest.similarity[i]),
                      "identical": bool(identical is not None and identical[row])})
    return pairs


def _identical_pairs(data: Mapping[str, tuple], sources: Mapping[str, Sequence[str]],
                     contents: Mapping[str, np.ndarray], seen: list[str], test_rows: np.ndarray) -> list[dict]:
    """Each of ``test_rows`` (byte-identical to a train or val row, left out of a sampled check) with the first
    ``seen`` row of its bytes (its most similar one: their features are the same) and their cosine: the pairs of
    :func:`_pairs`, for the byte-identical rows :class:`NearDuplicates` counts over every test row."""
    lookup = []
    for split in seen:
        keys = row_keys(contents[split])
        order = np.argsort(keys, kind="stable")
        lookup.append((split, keys[order], order))
    pairs = []
    for row, key in zip(test_rows.tolist(), row_keys(contents["test"])[test_rows]):
        split, seen_row = next((split, int(order[at])) for split, keys, order in lookup
                               for at in [int(np.searchsorted(keys, key))] if at < len(keys) and keys[at] == key)
        x, y = (np.asarray(data[name][0][at], dtype=np.float64) for name, at in (("test", row), (split, seen_row)))
        norms = float(np.linalg.norm(x) * np.linalg.norm(y))
        pairs.append({"test_row": row, "test": _source(sources, "test", row), "seen_split": split,
                      "seen_row": seen_row, "seen": _source(sources, split, seen_row),
                      "similarity": float(x @ y) / norms if norms else 0.0, "identical": True})
    return pairs


def _source(sources: Mapping[str, Sequence[str]], split: str, row: int) -> str | None:
    """The path of ``split``'s row ``row`` in its data set; None where the run was given none."""
    paths = sources.get(split)
    return None if paths is None else paths[row]


def _notes(report: Report, config: ProbeConfig, reference: Report | None, scorer, outcome, groups) -> None:
    """What the report says of its grouping, its validation accuracies and its ties, and where validation and test
    disagree on a class (:func:`probe.diagnostics.split_disagreement_warning`, once the validation accuracies are
    final: out of fold under cross-validation), in place."""
    _grouping_note(report, config, reference, scorer)
    out_of_fold = _out_of_fold_validation(report, outcome, scorer)
    tie_note(report, reference, groups)
    posthoc = report.posthoc is not None and report.posthoc.shipped_applied()
    warning = split_disagreement_warning(report.per_class, posthoc, out_of_fold)
    if warning:
        report.warnings.append(warning)


def _grouping_note(report: Report, config: ProbeConfig, reference: Report | None, scorer: _Scorer) -> None:
    """Say where the groups came from when this run, not a reference run, ranked the classes."""
    if reference is not None:
        return
    source = "validation per-class accuracy" if scorer.plan is None else (
        f"out-of-fold per-class accuracy ({scorer.plan.k}-fold cross-validation on train + val)")
    if config.select == "hard":
        report.grouping.note = (f"groups from the {source} of this request's reference (ERM) configuration, "
                                "trained in this run, ranked by the run itself")
    elif scorer.plan is not None:
        report.grouping.note = f"groups from the {source} of the chosen configuration, ranked by the run itself"
    if scorer.plan is not None:
        report.grouping.split = "cv"


def _out_of_fold_validation(report: Report, outcome: _Outcome, scorer: _Scorer) -> bool:
    """Under cross-validation, the report's validation accuracies (``val``, each row's ``val_accuracy``) are the
    chosen configuration's out-of-fold ones on train + val, what selected and grouped: the seeds' accuracy on a
    validation split of a few images per class (one, in a new-user round's run) sat beside groups it contradicted.
    Whether it replaced them (each row's then rests on its ``n_train + n_val`` images, each predicted once: its
    ``val_accuracy_ci`` is over them)."""
    if scorer.plan is None or outcome.chosen_correct is None:
        return False
    num_classes = scorer.splits.num_classes
    per_class = observed_class_accuracy(outcome.chosen_correct, scorer.labels, num_classes)
    report.val.per_class = [None if np.isnan(v) else float(v) for v in per_class]
    report.val.overall = overall_score(outcome.chosen_correct, scorer.labels, num_classes, scorer.overall_metric)
    report.val.source = (f"out of fold: {scorer.plan.k}-fold cross-validation on train + val, the chosen "
                         "configuration's first seed")
    intervals = intervals_or_none(class_accuracy_interval(outcome.chosen_correct, scorer.labels, num_classes))
    for row, value, interval in zip(report.per_class, report.val.per_class, intervals):
        row.val_accuracy, row.val_accuracy_ci = value, interval
    return True


def _finish_outcome(outcome: _Outcome, groups: dict, predictions: Predictions, splits: Splits,
                    class_names: list[str]) -> None:
    """The parts of the outcome that need every seed: the paired test comparison with the reference
    configuration (its other seeds trained here) and, for the overall criterion, stability and warnings."""
    if outcome.val_labels is not None:
        outcome.stability, outcome.warnings = stability_and_warnings(
            outcome.chosen_correct, outcome.val_labels, class_names, groups, seed=outcome.config.seeds[0],
            split=_split_name(outcome.selection.cv is not None), reference_stability=outcome.reference_stability)
    if outcome.reference is not None:
        ref_fitter, ref_params, ref_model = outcome.reference
        _, ref_evaluations = _train_seeds(ref_fitter, ref_params, ref_model, splits)
        reference = _predictions(ref_evaluations, splits.test[1])
        metric = outcome.config.overall_metric
        delta, classes = paired_test_intervals(reference, predictions, splits.num_classes, groups,
                                               seed=outcome.config.seeds[0])
        changed, p_value, total = group_evidence(reference, predictions, groups.get("hard", []))
        interval = [delta["hard"]["lo"], delta["hard"]["hi"]]
        on_metric = delta["balanced" if metric == "balanced" else "overall"]
        overall_changed, *overall_test = metric_evidence(reference, predictions, metric)  # its sign-flip test, once
        overall = ([on_metric["lo"], on_metric["hi"]], *overall_test)
        budget = outcome.config.max_overall_drop
        outcome.selection.test_check = verdict_on_test(interval, p_value, total, overall, budget / 100)
        held = held_back_sentence("hard third's", interval, changed, p_value, beyond_noise(interval, p_value, total))
        held += past_budget_sentence(lost_beyond_budget(*overall, budget / 100), on_metric["delta"], budget, metric)
        cited = metric_discordance(reference, predictions, metric, overall_changed, overall_test[0])
        outcome.selection.verdict_text = (f"{delta_sentence(delta, outcome.selection.verdict, metric)} "
                                          + discordance_sentence(cited, "this run", "the reference") + held
                                          + lost_on_test(reference, predictions, groups, delta, classes, class_names))
