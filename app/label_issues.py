"""Likely wrong labels of a run's train + val images: its chosen configuration fitted k-fold on its own cache, each
image scored out of fold (``probe.label_issues``); what ``mr2probe label-issues`` prints."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.label_issues import DEFAULT_METHOD

__all__ = ["MAX_LIMIT", "PoolIssues", "RefitPool", "check_loss", "run_cache", "refit_pool", "fit_label_issues",
           "find_label_issues"]

MAX_LIMIT = 100_000  # rows one listing returns at most


@dataclass
class PoolIssues:
    """Out-of-fold predictions of a run's train + val pool (train rows first, then val) and where each row is."""

    predictions: object          # probe.Predictions over the pool
    class_names: list[str]
    splits: np.ndarray           # (n,) "train" / "val"
    rows: np.ndarray             # (n,) the row of each image in its split of the cache
    folds: int
    params: dict
    method: str                  # of probe.label_issues.METHODS
    listed: np.ndarray           # (n,) bool: the images the method lists (probe.label_issues.label_issue_mask)
    note: str | None = None      # why the folds are fewer than the default (RefitPool.note)

    @property
    def accuracy(self) -> float:
        """The refit's out-of-fold accuracy on the whole pool (``probe.label_issues.out_of_fold_accuracy``)."""
        from probe.label_issues import out_of_fold_accuracy

        return out_of_fold_accuracy(self.predictions)

    def total(self, class_index: int | None) -> int:
        """How many images the method lists (labelled ``class_index``; of every class where None)."""
        return len(self.predictions.failures(class_index, among=self.listed))

    def rows_of(self, class_index: int | None, limit: int | None) -> list[dict]:
        """The pool's images the method lists (of true class ``class_index``; every class where None), lowest
        out-of-fold probability of their label first (``Predictions.failure_rows``: cleanlab's self-confidence),
        each with its ``split`` and ``row`` besides."""
        rows = self.predictions.failure_rows(class_index, self.class_names, limit, among=self.listed)
        return [{**row, "split": str(self.splits[row["index"]]), "row": int(self.rows[row["index"]])} for row in rows]


def run_cache(report, run_dir: str | Path, features: str | Path | None = None, named: str | None = None,
              option: str | None = "--features"):
    """The run's feature cache: ``features``, or the cache path its report recorded (relative to the folder it was
    trained from), checked to hold the features it trained on (``report.features.fingerprint``). ``named``: how the
    errors call the cache (default ``OPTION PATH``; the service names its cache id, not a server path). ``option``:
    the flag of the command that takes the run's own cache, which the errors advise (``label-issues --features``);
    None where the command takes none (``predict`` and ``compare``, whose ``--features`` is the cache scored: their
    advice named it, to give the run's cache as the images to score): the errors then advise to put the file back.

    Raises:
        ValueError: no cache given and none recorded (or not a file here: moved, or a service cache id), or a run
            that recorded no fingerprint, or a cache with another fingerprint. FileNotFoundError: no such file.
    """
    from feature_cache import open_cache

    name = Path(run_dir).name
    if report.features is None:  # an older version's report: no cache recorded, nor a fingerprint to check one by
        # (asked first: it advised giving --features, which the check below then refused; an upgrade round)
        raise ValueError(f"run {name} records no features fingerprint (its report was written before runs recorded "
                         "their features): nothing to check a cache against; train the run again")
    recorded = report.features.cache
    if features is None:
        if recorded is None:
            raise ValueError(f"run {name} records no cache file" + (
                f": give the cache it was trained on, {option} CACHE.h5" if option else
                " to read its train and val images from"))
        path = Path(recorded)
        cwd = report.environment.cwd if report.environment is not None else None
        if not path.is_absolute() and cwd:
            path = Path(cwd) / path
        if not path.is_file():
            raise ValueError(f"run {name}'s cache {recorded!r} is not a file here (moved, or a service cache id): "
                             + (f"give it as {option} CACHE.h5" if option else f"put it back at {path}"))
        cache = open_cache(path)
        # written over since the run (deleted and extracted again from a changed data set, as the refusal to
        # extract onto it advises): the way on named, as for a file moved (a data-set-iteration round)
        what, advice = named or f"run {name}'s cache {path}", "" if named else (
            f": written over since the run; give the cache it was trained on, {option} CACHE.h5, or train the run "
            "again on this one" if option else ": replaced since")
    else:
        cache = open_cache(features)
        what, advice = named or f"{option} {features}", "" if named else ": give the run's own cache"
    if cache.fingerprint != report.features.fingerprint:
        raise ValueError(f"{what} holds other features (fingerprint {cache.fingerprint[:12]}…) than run {name} was "
                         f"trained on ({report.features.fingerprint[:12]}…){advice}")
    return cache


def check_loss(config) -> None:
    """A loss the run filled from its reference run (``mr2_valerr``'s ``val_error``) cannot be refitted from the
    report alone: ValueError naming it."""
    from probe.registry import NEEDS, get_loss_spec

    needs = get_loss_spec(config.loss).needs
    option = NEEDS[needs].option
    if needs == "val_error" and config.loss_options.get(option) is None:
        raise ValueError(f"run's loss {config.loss!r} took {option} from its reference run, which the report does "
                         "not keep: label issues need a run whose loss the report describes whole (e.g. ERM)")


@dataclass
class RefitPool:
    """What :func:`find_label_issues` fits, as the run and its cache are now: the run's report and resolved
    configuration, its cache, the cache's train + val data (``given``: every class; ``data``, ``sources``, ``names``:
    less the classes the run left out) and the pooled images ``x`` (n, d) and labels ``y`` (n,) of the ``pool``
    splits (train, then val where it has images)."""

    report: object
    config: object
    cache: object
    given: dict
    data: dict
    sources: dict | None
    names: list[str]
    pool: list[str]
    x: np.ndarray
    y: np.ndarray
    folds: int                     # probe.label_issues.resolve_folds: as asked, else the default or fewer
    note: str | None               # why the folds are fewer than the default, where they are


def refit_pool(run_dir: str | Path, features: str | Path | None = None, folds: int | None = None,
               named: str | None = None) -> RefitPool:
    """The run in ``run_dir`` and its cache read and checked for a ``folds``-fold refit (:class:`RefitPool`; None:
    the default, or fewer on few-shot data, ``probe.label_issues.resolve_folds``).

    Raises:
        ValueError, FileNotFoundError: what means the run cannot be refitted as it is now: its report unreadable or
            gone, a loss the report does not describe whole (:func:`check_loss`), no cache of its features
            (:func:`run_cache`), the cache's classes not the run's, a class with fewer images than ``folds``.
    """
    from probe import load_report
    from probe.label_issues import resolve_folds
    from probe.splits import without_classes

    report = load_report(run_dir)
    config = report.probe_config()
    check_loss(config)
    cache = run_cache(report, run_dir, features, named)
    given = cache.training_data()
    data, sources, names = without_classes(given, cache.training_sources(), list(cache.class_names),
                                           config.drop_classes)
    if names != list(report.class_names):
        raise ValueError(f"the cache's classes {names[:5]} are not the run's {list(report.class_names)[:5]}")
    pool = [split for split in ("train", "val") if split in data and len(data[split][1])]
    x = np.concatenate([np.asarray(data[split][0]) for split in pool])
    y = np.concatenate([np.asarray(data[split][1], dtype=np.int64) for split in pool])
    folds, note = resolve_folds(np.bincount(y, minlength=len(names)), folds, names)
    return RefitPool(report, config, cache, given, data, sources, names, pool, x, y, folds, note)


def fit_label_issues(refit: RefitPool, progress=None, method: str = DEFAULT_METHOD,
                     device: str | None = None) -> PoolIssues:
    """Fit the run's chosen configuration (first seed, its hyper-parameters fixed) ``refit.folds``-fold on its
    pool, on ``device`` (None: the run's), predict each image out of fold, and mark those ``method`` lists. Raises
    ValueError as :func:`probe.label_issues.out_of_fold_probabilities` does (a fold's fit that diverged)."""
    from probe.devices import resolve_device
    from probe.label_issues import out_of_fold_issues
    from probe.splits import kept_rows

    report, config, data, pool, y = refit.report, refit.config, refit.data, refit.pool, refit.y
    params = {k: v for k, v in (report.config.get("selected") or {}).items() if v is not None}
    seed_precisions = report.environment.seed_precisions if report.environment is not None else []
    paths = [path for split in pool for path in (refit.sources or {}).get(split, [])]
    predictions, listed = out_of_fold_issues(
        refit.x, y, len(refit.names), config, params, method, paths if len(paths) == len(y) else None,
        folds=refit.folds, device=resolve_device(device or config.device),
        precision=seed_precisions[0] if seed_precisions else None, class_names=refit.names, progress=progress)
    return PoolIssues(predictions, refit.names, np.concatenate([np.full(len(data[s][1]), s) for s in pool]),
                      np.concatenate([kept_rows(refit.given[s][1], refit.cache.class_names, config.drop_classes)
                                      for s in pool]),
                      refit.folds, params, method, listed, refit.note)


def find_label_issues(run_dir: str | Path, features: str | Path | None = None, folds: int | None = None,
                      progress=None, method: str = DEFAULT_METHOD, device: str | None = None,
                      named: str | None = None) -> PoolIssues:
    """:func:`fit_label_issues` of :func:`refit_pool`: the run's chosen configuration fitted ``folds``-fold on its
    cache's train + val, less the classes it left out. ``named``: how errors call the cache (:func:`run_cache`).
    Raises ValueError as those do, and for a method not in :data:`probe.label_issues.METHODS`."""
    from probe.label_issues import check_method

    check_method(method)
    return fit_label_issues(refit_pool(run_dir, features, folds, named), progress, method, device)
