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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import ProbeConfig, auto_epochs
from .evaluate import SeedEvaluation, apply_posthoc, evaluate_seed, evaluate_split
from .groups import assign_groups, group_accuracy
from .registry import get_loss_spec
from .report import Candidate, PresetInfo, Report, Selection, build_report, write_run
from .selection import select_candidate

logger = logging.getLogger(__name__)

__all__ = ["ProbeCancelled", "run_probe", "carve_validation"]


class ProbeCancelled(Exception):
    """Raised by ``run_probe`` when ``should_stop()`` returns True; nothing is written to ``out_dir``."""


def carve_validation(features: np.ndarray, labels: np.ndarray, fraction: float, seed: int
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded split of train into (train, val): round(fraction·n_k) of each class (≥ 1 when n_k ≥ 2).

    Returns:
        ``((X_train, y_train), (X_val, y_val))``; the order inside each part follows the original rows.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), labels))  # by class, random within class
    counts = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    n_val = np.where(counts >= 2, np.maximum(1, np.rint(fraction * counts)), 0).astype(np.int64)
    n_val = np.minimum(n_val, np.maximum(counts - 1, 0))
    is_val = rank < n_val[labels]
    return (features[~is_val], labels[~is_val]), (features[is_val], labels[is_val])


@dataclass
class _Splits:
    """The checked splits of one run: training arrays, val and test pairs, K and where val came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    val_source: str


def _check_data(data: dict, class_names: list[str]) -> int:
    if "train" not in data or "test" not in data:
        raise ValueError(f"data needs 'train' and 'test' splits (and optionally 'val'); got {sorted(data)}.")
    num_classes = len(class_names)
    if num_classes < 2:
        raise ValueError(f"a probe needs at least 2 classes, got class_names={class_names}.")
    dims = set()
    for split, pair in data.items():
        x, y = pair
        if np.ndim(x) != 2 or np.ndim(y) != 1 or len(x) != len(y):
            raise ValueError(f"split {split!r} must be (features (n, d), labels (n,)), got shapes "
                             f"{np.shape(x)} and {np.shape(y)}.")
        if len(y) and (np.min(y) < 0 or np.max(y) >= num_classes):
            raise ValueError(f"split {split!r} has labels outside [0, {num_classes - 1}] for {num_classes} classes.")
        dims.add(np.shape(x)[1])
    if len(dims) != 1:
        raise ValueError(f"all splits must share the feature dimension, got {sorted(dims)}.")
    for split in ("train", "test"):  # before any training: an empty class has no accuracy and no statistics
        counts = np.bincount(np.asarray(data[split][1], dtype=np.int64), minlength=num_classes)
        empty = [class_names[k] for k in np.flatnonzero(counts == 0)]
        if empty:
            raise ValueError(f"classes {empty} have no {split} samples; every class needs {split} samples "
                             f"(drop the class or add samples).")
    return num_classes


def _splits(data: dict, class_names: list[str], config: ProbeConfig) -> _Splits:
    # An empty split (caches always hold all three) counts as missing: an empty val is carved from train.
    data = {split: pair for split, pair in data.items() if len(pair[1]) > 0}
    num_classes = _check_data(data, class_names)
    x_train, y_train = np.asarray(data["train"][0]), np.asarray(data["train"][1], dtype=np.int64)
    if "val" in data:
        val = (np.asarray(data["val"][0]), np.asarray(data["val"][1], dtype=np.int64))
        val_source = "given"
    else:
        (x_train, y_train), val = carve_validation(x_train, y_train, config.val_fraction, config.seeds[0])
        val_source = f"carved from train (stratified, fraction {config.val_fraction}, seed {config.seeds[0]})"
    if len(val[1]) == 0:
        raise ValueError("the validation split is empty; selection needs validation samples.")
    test = (np.asarray(data["test"][0]), np.asarray(data["test"][1], dtype=np.int64))
    return _Splits(x_train, y_train, val, test, num_classes, val_source)


def _reference_floor(reference: Report, class_names: list[str]) -> tuple[dict[str, list[int]], float]:
    """The reference run's groups (thirds of its val per-class accuracy) and its val overall (the floor)."""
    if list(reference.class_names) != list(class_names):
        raise ValueError("reference run has different classes than this run: "
                         f"{list(reference.class_names)[:5]}... vs {list(class_names)[:5]}...")
    per_class = np.array(reference.val.per_class, dtype=float)  # None → nan
    return assign_groups(per_class), reference.val.overall


def _run_loss_options(config: ProbeConfig, reference: Report | None) -> dict[str, Any]:
    """Loss options the run adds: the reference's per-class validation error for losses that need it."""
    if get_loss_spec(config.loss).needs != "val_error" or config.loss_options.get("val_error") is not None:
        return {}
    if reference is None:
        raise ValueError(f"loss {config.loss!r} needs the per-class validation error of a reference (ERM) run: "
                         "pass reference= (CLI --reference RUN_DIR) or loss_options['val_error'].")
    ref_acc = np.array(reference.val.per_class, dtype=float)
    return {"val_error": np.nan_to_num(1.0 - ref_acc, nan=1.0).tolist()}


class _Progress:
    """Fraction of the run's fits done, reported through ``progress``; ``should_stop`` polled at each step."""

    def __init__(self, total: int, progress: Callable | None, should_stop: Callable | None) -> None:
        self.total, self.done, self.progress, self.should_stop = total, 0, progress, should_stop

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


class _Fitter:
    """Builds and fits the trainers of one run on the prepared training tensor (shared by every fit)."""

    def __init__(self, config: ProbeConfig, splits: _Splits, device, loss_options: dict, steps: _Progress) -> None:
        import torch

        from .trainer import ProbeTrainer

        self.config, self.splits, self.device = config, splits, device
        self.loss_options, self.steps = loss_options, steps
        self.trainer_class = ProbeTrainer
        # Constants of the sweep, prepared once rather than per fit: the float32 training tensor and, when the
        # class statistics are exact (frozen features, no adapter), r_k² and ‖s_k‖² of the features the head sees.
        self.x = torch.from_numpy(np.ascontiguousarray(splits.x_train, dtype=np.float32))
        self.stats = None
        if config.adapter is None and config.r2_mode == "exact":
            first = self.make(config.candidates()[0], config.seeds[0])
            self.stats = first.class_stats(self.x, splits.y_train, splits.num_classes)

    def make(self, params: dict, seed: int, hook: Callable | None = None):
        kwargs = self.config.trainer_params(params, seed=seed, device=self.device, loss_options=self.loss_options)
        return self.trainer_class(**kwargs, progress=hook)

    def fit_all(self, candidates: list[dict], seed: int) -> list:
        """Fit every candidate with ``seed``: in one pass over the data without an adapter
        (``probe.trainer.fit_many``), else one fit each (an adapter gives each candidate its own features)."""
        from .trainer import fit_many

        if self.config.adapter is not None:
            fitted = []
            for i, params in enumerate(candidates):
                fitted.append(self.fit(params, seed, f"selection {i + 1}/{len(candidates)}"))
            return fitted
        stage = f"selection ({len(candidates)} candidates, joint fit)"
        self.steps.tick(stage)
        hook = self.steps.hook(stage, fits=len(candidates))
        trainers = [self.make(params, seed, hook if i == 0 else None) for i, params in enumerate(candidates)]
        fitted = fit_many(trainers, self.x, self.splits.y_train, num_classes=self.splits.num_classes,
                          class_stats=self.stats)
        self.steps.done += len(candidates)
        return [t.set_params(progress=None) for t in fitted]

    def fit(self, params: dict, seed: int, stage: str):
        self.steps.tick(stage)
        trainer = self.make(params, seed, self.steps.hook(stage)).fit(
            self.x, self.splits.y_train, num_classes=self.splits.num_classes, class_stats=self.stats)
        self.steps.done += 1
        return trainer.set_params(progress=None)  # the hook is a closure over this run: not part of the model


def _select(fitter: _Fitter, splits: _Splits, ref_groups: dict | None, floor: float | None
            ) -> tuple[int, list[Candidate], str, Any]:
    """Fit and score every candidate on val with ``seeds[0]``; returns the chosen index, the scored candidates
    (diverged ones with ``failed`` set), the reason and the chosen trainer."""
    from .trainer import diverged

    config = fitter.config
    candidates = config.candidates()
    fitted = fitter.fit_all(candidates, config.seeds[0])
    scored: list[Candidate] = []
    for i, (params, trainer) in enumerate(zip(candidates, fitted)):
        failure = diverged(trainer)
        if failure is not None:
            logger.warning("candidate %d/%d %s %s", i + 1, len(candidates), params, failure)
            scored.append(Candidate(**params, failed=failure))
            continue
        v = evaluate_split(trainer, *splits.val, splits.num_classes)
        groups = ref_groups if ref_groups is not None else assign_groups(v.per_class)
        hard = group_accuracy(v.per_class, groups)["hard"]
        scored.append(Candidate(**params, val_overall=v.overall, val_hard=hard))
        logger.info("candidate %d/%d %s: val overall %.4f, hard %.4f", i + 1, len(candidates), params,
                    v.overall, hard)
    viable = [i for i, c in enumerate(scored) if c.failed is None]
    if not viable:
        raise ValueError(f"every one of the {len(scored)} selection candidates diverged (first: {scored[0].failed}); "
                         "use smaller lr_grid values.")
    index, reason = select_candidate([{**candidates[i], "val_overall": scored[i].val_overall,
                                       "val_hard": scored[i].val_hard} for i in viable], config.select, floor=floor)
    if len(viable) < len(scored):
        reason += (f" {len(scored) - len(viable)} candidate(s) diverged and were left out (see "
                   "selection.candidates[].failed).")
    if config.select == "hard" and floor is None:
        logger.warning("select='hard' without a reference run: no ERM floor, own groups")
    return viable[index], scored, reason, fitted[viable[index]]


def _train_seeds(fitter: _Fitter, chosen: dict, first, splits: _Splits) -> list[SeedEvaluation]:
    """Evaluate the selection's ``seeds[0]`` model and fit + evaluate every other seed with ``chosen``."""
    from .trainer import diverged

    seeds = fitter.config.seeds
    evaluations = [evaluate_seed(first, seeds[0], splits.val, splits.test, splits.num_classes)]
    for seed in seeds[1:]:
        trainer = fitter.fit(chosen, seed, f"seed {seed}")
        failure = diverged(trainer)
        if failure is not None:
            raise ValueError(f"seed {seed} with the selected {chosen} {failure}; use smaller lr_grid values.")
        evaluations.append(evaluate_seed(trainer, seed, splits.val, splits.test, splits.num_classes))
    return evaluations


def _selection(config: ProbeConfig, scored: list[Candidate], index: int, reason: str) -> Selection:
    preset = None
    if config.preset is not None:
        from .presets import get_preset

        p = get_preset(config.preset)
        preset = PresetInfo(name=p.name, settings=p.settings, why=p.why)
    return Selection(criterion=config.select, candidates=scored, chosen=scored[index], reason=reason, preset=preset)


def run_probe(data: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str],
              config: ProbeConfig | dict, *, reference: Report | dict | None = None,
              out_dir: str | Path | None = None, progress: Callable[[float, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> Report:
    """Select on val, train every seed, evaluate, write the run directory; returns the :class:`Report`.

    Args:
        data: ``{"train": (X, y), "val": (X, y), "test": (X, y)}``; a missing ``val`` is carved from train
            (stratified, ``config.val_fraction``, seed ``config.seeds[0]``).
        class_names: K names, index = label.
        config: the request.
        reference: report of the reference (ERM) run: its val per-class accuracy defines the groups and its
            val overall is the floor of the ``hard`` criterion.
        out_dir: where to write report.json, per_class.csv, head.safetensors / head.json; None writes nothing.
        progress: ``progress(fraction in [0, 1], stage)``.
        should_stop: polled between fits; True raises :class:`ProbeCancelled`.

    Raises:
        ValueError: malformed data or reference, a class without train or test samples, a device this host
            lacks, or a fit that diverged for every candidate / a seed. ProbeCancelled: stopped by ``should_stop``.
    """
    from .trainer import resolve_device

    config = ProbeConfig.model_validate(config) if isinstance(config, dict) else config
    reference = Report.model_validate(reference) if isinstance(reference, dict) else reference
    class_names = [str(c) for c in class_names]
    splits = _splits(data, class_names, config)
    device = resolve_device(config.device)
    if config.epochs is None:  # the report records the epochs actually used
        config = config.model_copy(update={"epochs": auto_epochs(len(splits.y_train), config.batch_size)})
    ref_groups, floor = _reference_floor(reference, class_names) if reference is not None else (None, None)
    steps = _Progress(config.n_candidates() + len(config.seeds), progress, should_stop)
    fitter = _Fitter(config, splits, device, _run_loss_options(config, reference), steps)

    index, scored, reason, first = _select(fitter, splits, ref_groups, floor)
    chosen = config.candidates()[index]
    evaluations = _train_seeds(fitter, chosen, first, splits)
    if ref_groups is not None:
        groups = ref_groups
    else:
        groups = assign_groups(np.nanmean(np.stack([e.val_per_class for e in evaluations]), axis=0))
    if config.posthoc_bias:
        for ev in evaluations:
            apply_posthoc(ev, splits.val[1], splits.test[1], groups, config.posthoc_objective, splits.num_classes)
        reason += (f" Then a post-hoc per-class logit bias was fitted on each seed's validation logits to maximise "
                   f"the {config.posthoc_objective} accuracy with val overall kept >= the unbiased probe's.")

    steps.tick("report")
    report = build_report(
        run_id=Path(out_dir).name if out_dir is not None else None, config=config, selected=chosen,
        selection=_selection(config, scored, index, reason), class_names=class_names, groups=groups,
        reference=reference, evaluations=evaluations, trainer=first,
        n_train=np.bincount(splits.y_train, minlength=splits.num_classes), val_source=splits.val_source)
    if out_dir is not None:
        write_run(Path(out_dir), report, first)
    if progress is not None:
        progress(1.0, "done")
    return report
