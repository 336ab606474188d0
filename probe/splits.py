"""The data of one run, checked before any fit: its splits (validation carved from train where none is given), the
classes it leaves out, and what the sizes of its splits allow (validation images, cross-validation folds, training
images per class in every fit), which a service checks before a job exists (``app.validation``) and
:func:`probe.run.run_probe` checks again."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import LEAVE_OUT, VAL_FRACTION_BOUND, ProbeConfig
from .constraints import check
from .crossval import within_class_rank
from .metrics import integer_labels
from .names import class_index, class_name, listed, listed_name, lookalike_key, repeated
from .registry import NEEDS, get_loss_spec
from .seen import SeenSources, common_folder

__all__ = ["carve_validation", "without_classes", "kept_classes", "dropped_names", "dropped_index", "kept_rows",
           "given_rows"]


def carve_validation(features: np.ndarray, labels: np.ndarray, fraction: float, seed: int
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded split of train into (train, val): round(fraction·n_k) of each class (≥ 1 when n_k ≥ 2).

    Returns:
        ``((X_train, y_train), (X_val, y_val))``; the order inside each part follows the original rows.

    Raises ValueError for a ``fraction`` outside (0, 1) (``ProbeConfig.val_fraction``'s bounds; 1.5 carved all but
    one image of each class, 0 one of each) or ``labels`` that are not one per row of ``features``.
    """
    check("fraction", fraction, [VAL_FRACTION_BOUND])
    features, labels = np.asarray(features), integer_labels(labels)
    if labels.shape != (len(features),):
        raise ValueError(f"labels must be (n,) for the {len(features)} rows of features, got shape {labels.shape}.")
    is_val = carved_mask(labels, fraction, seed)
    return (features[~is_val], labels[~is_val]), (features[is_val], labels[is_val])


def carved_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The train rows :func:`carve_validation` takes as val (a boolean mask over ``labels``)."""
    labels = np.asarray(labels, dtype=np.int64)
    rank = within_class_rank(labels, np.random.default_rng(seed))
    return rank < carved_per_class(np.bincount(labels), fraction)[labels]


MIN_TRAIN_TO_CARVE = 2  # train images of a class from which a validation image is carved (its last one never is)


def carved_per_class(counts, fraction: float) -> np.ndarray:
    """Validation images :func:`carve_validation` takes from each class's ``counts`` train images: round(fraction·n),
    at least 1 where n ≥ :data:`MIN_TRAIN_TO_CARVE`, and never the class's last image."""
    counts = np.asarray(counts, dtype=np.int64)
    n_val = np.where(counts >= MIN_TRAIN_TO_CARVE, np.maximum(1, np.rint(fraction * counts)), 0).astype(np.int64)
    return np.minimum(n_val, np.maximum(counts - 1, 0))


EMPTY_VALIDATION = "the validation split is empty; selection needs validation samples."


def empty_validation(sizes: str) -> str:
    """:data:`EMPTY_VALIDATION` with why and what to do, for splits of ``sizes`` images ("train 5, val 0, test 5"):
    what the service answers before a job exists and a run raises (the CLI said the bare sentence; an extremes
    round: five classes of one train image each)."""
    return (f"{EMPTY_VALIDATION[:-1]}: these splits hold no validation image ({sizes}) and no class has the "
            f"{MIN_TRAIN_TO_CARVE} train images one is carved from; give the data set a val/ folder or more images "
            "per class")


def validation_images(counts: dict[str, list[int]], fraction: float) -> int:
    """Validation images a run gets from splits of ``counts`` (split → images per class): the given val split's,
    or where it is empty those carved from train (:func:`carve_validation`). 0: the run fails with
    :data:`EMPTY_VALIDATION`, which a service checks before a job exists."""
    given = int(sum(counts.get("val") or []))
    return given if given else int(carved_per_class(counts.get("train") or [], fraction).sum())


def _per_class_splits(counts: dict[str, list[int]], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) images per class of a run on splits of ``counts``: val as given, else carved from train."""
    train = np.asarray(counts.get("train") or [0], dtype=np.int64)
    given = np.asarray(counts.get("val") or [], dtype=np.int64)
    if given.sum() > 0:
        return train, given
    val = carved_per_class(train, fraction)
    return train - val, val


def classes_without_validation(counts: dict[str, list[int]], fraction: float, class_names: Sequence[str]) -> list[str]:
    """The classes a run on splits of ``counts`` gets no validation image of (the val split's, else carved from
    train: :func:`validation_images`), in class order; none where it gets none of any class (the run fails)."""
    val = _per_class_splits(counts, fraction)[1]
    return [name for name, n in zip(class_names, val) if n == 0] if val.sum() else []


def without_validation(classes: Sequence[str]) -> str:
    """What it means that ``classes`` have no validation image: a run's report (``probe.run_notes``) and an
    extraction (``feature_cache.options.cautions``) say it in these words."""
    one = len(classes) == 1
    return (f"{listed(list(classes), 5)} {'has' if one else 'have'} no validation image, so "
            f"{'its' if one else 'their'} accuracy plays no part in choosing the configuration")


def training_rows(counts: dict[str, list[int]], fraction: float) -> int:
    """The rows the final fits of a run on splits of ``counts`` train on (train, less what is carved for val)."""
    return int(_per_class_splits(counts, fraction)[0].sum())


def cv_folds(counts: dict[str, list[int]], fraction: float, cv: int) -> int:
    """The folds a run on splits of ``counts`` cross-validates with (val under
    :data:`probe.decision.MIN_VAL_PER_CLASS` in a class, ``cv`` > 0; as many as the rarest class of train + val
    allows, at most ``cv``); 0 when it selects on validation (:func:`probe.crossval.plan_cross_validation`)."""
    from .decision import MIN_VAL_PER_CLASS

    train, val = _per_class_splits(counts, fraction)
    if not cv or val.min() >= MIN_VAL_PER_CLASS:
        return 0
    folds = int(min(cv, (train + val).min()))
    return folds if folds >= 2 else 0


def fewest_training_per_class(counts: dict[str, list[int]], fraction: float, cv: int) -> np.ndarray:
    """(K,) the fewest training images of each class in any fit of a run on splits of ``counts``: the final fits
    (on train, less what is carved for val where the val split is empty) and, where the run cross-validates
    (:func:`cv_folds`), each fold's (a stratified fold holds out at most ⌈n/k⌉ of a class's n). A statistic of a
    class's spread needs 2 (``mr2_spread``, :func:`spread_problem`; a service checks it before a job exists)."""
    train, val = _per_class_splits(counts, fraction)
    folds = cv_folds(counts, fraction, cv)
    if not folds:
        return train
    pool = train + val
    return np.minimum(train, pool - np.ceil(pool / folds).astype(np.int64))


@dataclass
class Splits:
    """The checked splits of one run: training arrays, val and test pairs, K and where val came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    val_source: str
    carved: np.ndarray | None = None  # the given train rows carved out as val (a mask), or None: val was given

    def seen(self, sources: Mapping[str, Sequence[str]], contents: Mapping[str, np.ndarray] | None = None
             ) -> SeenSources:
        """The digests of what this run trained and selected on (``contents``: each split's content digests,
        row-aligned with ``sources``, or None): val carved from train is val, not train (its images were said to be
        trained on; a review)."""
        shared = common_folder(path for paths in sources.values() for path in paths)
        if self.carved is None or "train" not in sources:
            return SeenSources.of(sources, shared, contents=contents)
        train = np.asarray(sources["train"], dtype=object)
        rows = None if not contents or "train" not in contents else np.asarray(contents["train"])
        carved = None if rows is None else {"train": rows[~self.carved], "val": rows[self.carved]}
        return SeenSources.of({"train": train[~self.carved], "val": train[self.carved]}, shared,
                              every=(path for paths in sources.values() for path in paths), contents=carved)


def without_classes(data: Mapping[str, tuple], sources: Mapping[str, Sequence[str]] | None, class_names: list[str],
                    drop: Sequence[str]) -> tuple[dict, dict | None, list[str]]:
    """``data`` (``{split: (features, labels)}``), its ``sources`` and ``class_names`` without the classes named in
    ``drop`` (:func:`kept_classes`): their images left out of every split and the other classes numbered again in
    their order. A class without test images (or too few to train on) made a whole cache untrainable, re-extracted
    without it (an extremes round). Raises ValueError as :func:`kept_classes` does."""
    if not drop:
        return dict(data), None if sources is None else dict(sources), list(class_names)
    kept = kept_classes(drop, class_names)
    new_index = np.full(len(class_names), -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    out, out_sources = {}, None if sources is None else {}
    for split, (x, y) in data.items():
        labels = new_index[np.asarray(y, dtype=np.int64)]  # -1: a class left out
        rows = np.flatnonzero(labels >= 0)
        out[split] = (x[rows] if len(rows) < len(labels) else x, labels[rows])
        if out_sources is not None and split in sources:
            out_sources[split] = [sources[split][i] for i in rows]
    return out, out_sources, [class_names[k] for k in kept]


def kept_contents(contents: Mapping[str, np.ndarray] | None, data: Mapping[str, tuple], class_names: list[str],
                   drop: Sequence[str]) -> dict[str, np.ndarray] | None:
    """``contents`` (each split's content digests, row-aligned with ``data``'s labels) without the rows of the classes
    ``drop`` leaves out, as :func:`without_classes` leaves them out of ``data``."""
    if not contents or not drop:
        return None if contents is None else dict(contents)
    kept = kept_classes(drop, class_names)
    return {split: np.asarray(rows)[np.isin(np.asarray(data[split][1], dtype=np.int64), kept)]
            for split, rows in contents.items() if split in data}


def dropped_index(name: str, class_names: Sequence[str]) -> int | None:
    """The class ``name`` leaves out: the one it names (:func:`probe.names.class_index`: exactly, then composed), else
    the one class whose name equals it with white space trimmed from both ends ('cat' for the class 'cat ', ' dog'
    for 'dog': a form's comma-separated field or a shell adds or drops it); None where none or two do."""
    index = class_index(name, class_names)
    if index is not None:
        return index
    trimmed = [k for k, other in enumerate(class_names) if class_name(other).strip() == class_name(name).strip()]
    return trimmed[0] if len(trimmed) == 1 else None


def dropped_names(drop: Sequence[str], class_names: Sequence[str]) -> list[str]:
    """The names in ``class_names`` of the classes ``drop`` (``ProbeConfig.drop_classes``) leaves out, in its order,
    once each (:func:`dropped_index`): what a request stores, so that its report names the classes as the data
    set does. Raises ValueError as :func:`kept_classes` does."""
    kept_classes(drop, class_names)
    return list(dict.fromkeys(class_names[dropped_index(name, class_names)] for name in drop))


def kept_classes(drop: Sequence[str], class_names: Sequence[str]) -> list[int]:
    """The indices of the classes of ``class_names`` that ``drop`` (``ProbeConfig.drop_classes``) does not name, in
    order; each name of ``drop`` as :func:`dropped_index` reads it. Raises ValueError naming a class that is not
    one of ``class_names``, or when fewer than two classes would be left."""
    found = [dropped_index(name, class_names) for name in drop]
    unknown = [name for name, index in zip(drop, found) if index is None]
    if unknown:
        close = [[c for c in class_names if lookalike_key(c) == lookalike_key(name)]  # 'B' for 'b', 'b ' for 'b'
                 or difflib.get_close_matches(name, class_names, n=1) for name in unknown]
        guesses = [(name, f"did you mean {' or '.join(repr(n) for n in c[:3])}?")
                   for name, c in zip(unknown, close) if c]
        # each guess beside the name it is for where several names are unknown: 'a' and 'b' (a form's 'a,b' split at
        # its comma) said "(did you mean 'ab'?) (did you mean 'ab'?)" (an odd-data-sets round)
        hint = (f" ({guesses[0][1]})" if len(unknown) == 1 and guesses else
                f" ({'; '.join(f'{name!r}: {guess}' for name, guess in guesses)})" if guesses else "")
        raise ValueError(f"no class named {listed([repr(n) for n in unknown], 5)} to leave out{hint}; the classes: "
                         f"{listed([listed_name(c) for c in class_names], 10)}")
    dropped = set(found)
    kept = [k for k in range(len(class_names)) if k not in dropped]
    if len(kept) < 2:
        raise ValueError(f"leaving out {listed([repr(n) for n in drop], 5)} leaves {len(kept)} class; a probe needs 2")
    return kept


def kept_rows(labels: np.ndarray, class_names: Sequence[str], drop: Sequence[str]) -> np.ndarray:
    """The rows of a split (its ``labels`` among ``class_names``) whose class ``drop`` does not leave out, in order:
    row ``i`` of the split :func:`without_classes` leaves is row ``kept_rows(...)[i]`` of the given one."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.flatnonzero(np.isin(labels, kept_classes(drop, class_names))) if drop else np.arange(len(labels))


def given_rows(rows: list[dict], labels: np.ndarray, class_names: Sequence[str], drop: Sequence[str]) -> list[dict]:
    """``rows`` (``Predictions.failure_rows``' of a run that left ``drop`` out) with each ``index`` as its row of the
    given split (its ``labels`` among ``class_names``, :func:`kept_rows`): the run's predictions hold the other
    classes' images alone, whose positions named other rows of its cache ('test row 337' for row 377; a review)."""
    rows_of = kept_rows(labels, class_names, drop)
    return [{**row, "index": int(rows_of[row["index"]])} for row in rows]


def cache_place(row: dict, split: str = "test") -> tuple[str, int]:
    """Where a listed image (a failure row of :func:`cache_test_rows`, a label-issues row) is in its cache: its
    ``split`` (else ``split``) and its ``row`` there (else its ``index``)."""
    return row.get("split", split), row["row"] if "row" in row else row["index"]


def cache_test_rows(rows: list[dict], config: dict, cache: Callable[[], Any]) -> list[dict]:
    """:func:`given_rows` of a run's failure ``rows`` on its cache's test split where the run (its report's
    ``config``) left classes out, the cache opened by ``cache()`` then only; a cache that cannot be read (moved,
    gone, not registered) leaves them as they are: their sources still name the images. The one mapping of the
    CLI's ``failures`` and of ``GET /api/runs/{id}/failures``."""
    drop = config.get("drop_classes") or []
    if not drop or not rows:
        return rows
    try:
        opened = cache()
        return given_rows(rows, opened.labels("test"), list(opened.class_names), drop)
    except (KeyError, OSError, ValueError):
        return rows


def check_arrays(data: Mapping, class_names: Sequence[str]) -> None:
    """What a run needs of its ``data`` and ``class_names``, checked before any class is left out or any model fitted:
    K ≥ 2 distinct names, each split a pair of features (n, d) and integer labels (n,) in [0, K), every split of one
    width, every feature finite. Raises ValueError (TypeError for labels that are not class indices) naming the
    split: a NaN in val or test stopped a run only once every fit was done, without naming the split, and names
    twice over once the report was built (a library round)."""
    from .trainer import checked_features

    if len(class_names) < 2:
        raise ValueError(f"a probe needs at least 2 classes, got class_names={list(class_names)}.")
    twice = repeated([str(name) for name in class_names])
    if twice:
        raise ValueError(f"class_names holds {listed([repr(n) for n in twice], 5)} more than once; each class needs "
                         "its own name.")
    dims = set()
    for split, pair in data.items():
        if len(pair) != 2:
            raise ValueError(f"split {split!r} must be a pair (features, labels), got {len(pair)} items.")
        x, y = pair
        if len(x) == 0 and len(y) == 0:  # an empty split is a missing one (checked_splits)
            continue
        if np.ndim(x) != 2 or np.ndim(y) != 1 or len(x) != len(y):
            raise ValueError(f"split {split!r} must be (features (n, d), labels (n,)), got shapes "
                             f"{np.shape(x)} and {np.shape(y)}.")
        y = integer_labels(y, f"split {split!r} labels")
        if y.min() < 0 or y.max() >= len(class_names):
            raise ValueError(f"split {split!r} has labels outside [0, {len(class_names) - 1}] for "
                             f"{len(class_names)} classes.")
        checked_features(x, f"split {split!r} features")  # numeric and finite, float64 not copied
        dims.add(np.shape(x)[1])
    if len(dims) > 1:
        raise ValueError(f"all splits must share the feature dimension, got {sorted(dims)}.")


def _check_data(data: dict, class_names: list[str]) -> int:
    """K, once every class has train and test samples (``data`` as :func:`check_arrays` checked it)."""
    if "train" not in data or "test" not in data:
        raise ValueError(f"data needs 'train' and 'test' splits (and optionally 'val'); got {sorted(data)}.")
    num_classes = len(class_names)
    for split in ("train", "test"):  # before any training: an empty class has no accuracy and no statistics
        counts = np.bincount(np.asarray(data[split][1], dtype=np.int64), minlength=num_classes)
        empty = [class_names[k] for k in np.flatnonzero(counts == 0)]
        if empty:
            raise ValueError(f"classes {empty} have no {split} samples; every class needs {split} samples "
                             f"(leave the class out: {LEAVE_OUT}; or add samples).")
    return num_classes


def checked_splits(data: dict, class_names: list[str], config: ProbeConfig) -> Splits:
    # An empty split (caches always hold all three) counts as missing: an empty val is carved from train.
    data = {split: pair for split, pair in data.items() if len(pair[1]) > 0}
    num_classes = _check_data(data, class_names)
    x_train, y_train = np.asarray(data["train"][0]), np.asarray(data["train"][1], dtype=np.int64)
    carved = None
    if "val" in data:
        val = (np.asarray(data["val"][0]), np.asarray(data["val"][1], dtype=np.int64))
        val_source = "given"
    else:
        carved = carved_mask(y_train, config.val_fraction, config.seeds[0])
        (x_train, y_train), val = (x_train[~carved], y_train[~carved]), (x_train[carved], y_train[carved])
        val_source = f"carved from train (stratified, fraction {config.val_fraction}, seed {config.seeds[0]})"
    if len(val[1]) == 0:
        raise ValueError(empty_validation(", ".join(f"{split} {len(data[split][1]) if split in data else 0}"
                                                    for split in ("train", "val", "test"))) + ".")
    test = (np.asarray(data["test"][0]), np.asarray(data["test"][1], dtype=np.int64))
    return Splits(x_train, y_train, val, test, num_classes, val_source, carved)


def check_class_options(config: ProbeConfig, num_classes: int, has_reference: bool) -> None:
    """What a run on ``num_classes`` classes needs of its loss options, checked before anything is fitted (the
    service checks a request with it before a job exists): a per-class option (``priors``, ``val_error``) of another
    length, values the loss refuses (priors that sum to 0), or a loss that needs a reference run's validation
    error without one. Raises ValueError naming the option."""
    spec, options = get_loss_spec(config.loss), config.loss_options
    filled = NEEDS[spec.needs].option  # the per-class option the data fills when unset, if any
    if spec.needs == "val_error" and options.get(filled) is None and not has_reference:
        raise ValueError(f"loss {config.loss!r} needs the per-class validation error of a reference (ERM) run: "
                         f"pass reference= (CLI --reference RUN_DIR) or loss_options[{filled!r}].")
    for name, option in spec.options.items():
        if option.per_class and options.get(name) is not None and np.size(options[name]) != num_classes:
            raise ValueError(f"loss_options.{name} has {np.size(options[name])} entries but the data has "
                             f"{num_classes} classes")
    if options and (spec.needs != "val_error" or options.get(filled) is not None):
        from .losses import create_loss

        if filled is not None and options.get(filled) is None:  # the fit fills the training frequencies (priors)
            options = {**options, filled: np.full(num_classes, 1.0 / num_classes)}
        create_loss(config.loss, **options)  # what the fit builds: a refused value fails here, not after training


def spread_problem(loss: str, counts: dict[str, list[int]], fraction: float, cv: int, class_names: list[str]
                   ) -> str | None:
    """Why a run of ``loss`` on splits of ``counts`` (split → images per class) cannot fit, or None: a loss whose
    margins come from each class's within-class spread ‖s_k‖² (``needs == "spread"``) on a class that some fit
    trains on one image of (:func:`fewest_training_per_class`): its spread is 0. The sweep stopped on "classes
    [3, 4] have [0.0, 0.0]", indices the user never saw, and the service's refusal named no class (an extremes
    round); a run raises it before any fit and the service answers it before a job exists."""
    if get_loss_spec(loss).needs != "spread":
        return None
    fewest = fewest_training_per_class(counts, fraction, cv)
    short = np.flatnonzero(fewest < 2)
    if not short.size:
        return None
    in_fold = fewest < _per_class_splits(counts, fraction)[0]  # fewer than the final fits have
    named = listed([f"{class_names[k]!r} ({fewest[k]}{' in a cross-validation fold' if in_fold[k] else ''})"
                    for k in short], 10)
    return (f"loss {loss!r} sets each class's margin from the spread of its training images, 0 for a class of one "
            f"training image: {named}. Every class needs 2 or more training images in every fit (add images of it, "
            "or choose loss 'mr2', whose r_k² one image gives)")


def check_spread(config: ProbeConfig, data: Mapping[str, tuple], class_names: list[str]) -> None:
    """ValueError where a class's spread statistic cannot be computed in some fit (:func:`spread_problem`)."""
    problem = spread_problem(config.loss, {split: np.bincount(np.asarray(labels, dtype=np.int64),
                                                               minlength=len(class_names)).tolist()
                                            for split, (_, labels) in data.items() if len(labels)},
                             config.val_fraction, config.cv, class_names)
    if problem:
        raise ValueError(problem + ".")
