"""A run's test predictions, stored compactly next to its report (``predictions.npz``).

What they serve: the confusion matrix summed over seeds, the failing samples of a class (most confidently wrong
first: the lowest probability of their own label, cleanlab's self-confidence), per-class accuracy intervals, and paired test differences between two runs on the same test
split (:func:`paired_test_delta`). Sample *i* is row *i* of the cache's test split; the app maps it to its
source file.

File contents (numpy ``.npz``, compressed): ``labels`` (n,) int32, ``predicted`` (S, n) int32 — one row per seed
in the report's seed order —, ``confidence`` (n,) float32 — the softmax probability of the first seed's
prediction —, when the caller knows them, ``sources`` (n,) str: each test sample's path in its data set, and
``label_probability`` (n,) float32: the first seed's probability of each sample's own label (absent in runs
written before it was stored; their failures are ordered by ``confidence``) and, when the cache kept them,
``digests`` (n, 16) uint8: each test sample's content digest (the cache's ``digests``), by which
:func:`match_images` pairs two runs' test images across caches whatever their names or order (absent in runs
written before it was stored).
"""
from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .files import atomic_write
from .uncertainty import DEFAULT_RESAMPLES, Bootstrap

__all__ = ["PREDICTIONS_FILE", "Predictions", "paired_test_delta", "paired_test_intervals", "load_pair",
           "match_images", "Matched", "unmatched_reason", "ambiguous_paths", "AMBIGUOUS", "same_predictions",
           "BY_ROWS", "BY_DIGESTS", "BY_PATHS"]

PREDICTIONS_FILE = "predictions.npz"
# the per-sample arrays a run may lack (written before they were stored, or not known), saved and read by name
_OPTIONAL = ("sources", "label_probability", "digests")


@dataclass
class Predictions:
    labels: np.ndarray       # (n,)
    predicted: np.ndarray    # (S, n)
    confidence: np.ndarray   # (n,) first seed
    sources: np.ndarray | None = None  # (n,) str, or None when unknown
    label_probability: np.ndarray | None = None  # (n,) first seed's p(own label), or None when not stored
    digests: np.ndarray | None = None  # (n, 16) uint8: each test image's content digest (its cache's), or None

    def __post_init__(self):
        for name in ("labels", "predicted"):  # 0.5 or True was cast to a class (an attack round)
            kind = np.asarray(getattr(self, name)).dtype.kind
            if kind not in "iu":
                raise ValueError(f"predictions' {name} must be class indices (integers), got dtype kind {kind!r}.")
        self.labels = np.asarray(self.labels, dtype=np.int32)
        self.predicted = np.atleast_2d(np.asarray(self.predicted, dtype=np.int32))
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        # a 0-d labels array has no length, and predicted of no seed has no first one (IndexError: 500; attack round)
        n = self.labels.shape[0] if self.labels.ndim == 1 else -1
        if n < 0 or self.predicted.ndim != 2 or not len(self.predicted) or self.predicted.shape[1] != n \
                or self.confidence.shape != (n,):
            raise ValueError(f"predictions need labels (n,), predicted (S ≥ 1, n) and confidence (n,); got "
                             f"{self.labels.shape}, {self.predicted.shape}, {self.confidence.shape}.")
        if (self.labels < 0).any() or (self.predicted < 0).any():
            raise ValueError("predictions hold a negative class index.")
        if not np.all((self.confidence >= 0) & (self.confidence <= 1)):  # nan fails both
            raise ValueError("predictions' confidence must lie in [0, 1] (no nan).")
        if self.label_probability is not None:
            self.label_probability = np.asarray(self.label_probability, dtype=np.float32)
            if self.label_probability.shape != (n,) or not np.all((self.label_probability >= 0)
                                                                   & (self.label_probability <= 1)):
                raise ValueError(f"predictions' label_probability must be (n,) = ({n},) values in [0, 1] (no nan).")
        if self.digests is not None:
            self.digests = np.asarray(self.digests, dtype=np.uint8)
            if self.digests.ndim != 2 or len(self.digests) != n:
                raise ValueError(f"predictions' digests must be one row per test sample ({n}), got "
                                 f"{self.digests.shape}.")
        if self.sources is not None:
            self.sources = np.asarray(self.sources, dtype=str)
            if self.sources.shape != (n,):
                raise ValueError(f"sources must list one path per test sample ({n}), got {self.sources.shape}.")

    @property
    def correct(self) -> np.ndarray:
        """(n,) fraction of seeds that classify each sample correctly."""
        return (self.predicted == self.labels[None, :]).mean(axis=0)

    def confusion(self, num_classes: int) -> np.ndarray:
        """(K, K) counts summed over seeds, rows = true class."""
        flat = np.bincount((self.labels[None, :] * num_classes + self.predicted).ravel(),
                           minlength=num_classes * num_classes)
        return flat.reshape(num_classes, num_classes).astype(np.int64)

    def failures(self, class_index: int | None, limit: int | None = None, predicted: int | None = None,
                 among: np.ndarray | None = None) -> np.ndarray:
        """Indices of the first seed's mistakes on true class ``class_index`` (on every class where None; only those
        predicted as class ``predicted`` when given: one cell of the confusion matrix), most confidently wrong
        first: the lowest probability of their own label first (cleanlab's self-confidence; the likeliest wrong
        labels), ties by the prediction's confidence; by that confidence alone where the label's probability was
        not stored. A mistake whose probability is split among classes is surer to be wrong than one whose
        prediction is barely surer than its label: on test labels flipped at random it put 173 of 200 flips in the
        classes' top 20 where the prediction's confidence put 137 (CIFAR-10, 300 test images a class). ``among``:
        (n,) bool, only the mistakes it marks (a filter's label issues, ``probe.label_issues.label_issue_mask``)."""
        wrong = self.predicted[0] != self.labels
        if among is not None:
            wrong &= np.asarray(among, dtype=bool)
        if class_index is not None:
            wrong &= self.labels == class_index
        if predicted is not None:
            wrong &= self.predicted[0] == predicted
        wrong = np.flatnonzero(wrong)
        keys = [-self.confidence[wrong]]  # np.lexsort: the last key is the primary one
        if self.label_probability is not None:
            keys.append(self.label_probability[wrong])
        return wrong[np.lexsort(keys)][:limit]

    def failure_rows(self, class_index: int | None, class_names: list[str], limit: int | None = None,
                     predicted: int | None = None, among: np.ndarray | None = None) -> list[dict]:
        """The first seed's mistakes on a class (predicted as ``predicted`` when given, among ``among``) as rows
        (index, source, true, predicted, confidence, label_probability), in :meth:`failures`' order; ``source`` and
        ``label_probability`` are None when the run did not store them."""
        p_label = self.label_probability
        return [{"index": int(i), "source": None if self.sources is None else str(self.sources[i]),
                 "true": class_names[int(self.labels[i])], "predicted": class_names[int(self.predicted[0, i])],
                 "confidence": float(self.confidence[i]),
                 "label_probability": None if p_label is None else float(p_label[i])}
                for i in self.failures(class_index, limit, predicted, among)]

    def save(self, run_dir: str | Path) -> Path:
        """Written whole or not at all, synced to the disk (:func:`probe.files.atomic_write`): a fixed
        ``predictions.tmp.npz``, renamed unsynced, was shared by two writers and could be empty after a power loss."""
        path = Path(run_dir) / PREDICTIONS_FILE
        extra = {name: getattr(self, name) for name in _OPTIONAL if getattr(self, name) is not None}

        def write(name: str) -> None:
            with open(name, "wb") as file:  # a file, not its name: numpy would add ".npz" to the temporary's
                np.savez_compressed(file, labels=self.labels, predicted=self.predicted, confidence=self.confidence,
                                    **extra)

        atomic_write(path, write)
        return path

    def check_classes(self, num_classes: int) -> Predictions:
        """Itself, once every label and prediction is a class index below ``num_classes`` (a run's class count):
        raises ValueError otherwise (a predicted 99 of 3 classes was a 500 in failures; an attack round)."""
        top = max(int(self.labels.max(initial=0)), int(self.predicted.max(initial=0)))
        if top >= num_classes:
            raise ValueError(f"predictions hold class index {top}, and the run has {num_classes} classes.")
        return self

    @classmethod
    def load(cls, run_dir: str | Path, num_classes: int | None = None) -> Predictions:
        """The predictions a run stored (checked against its ``num_classes`` when given). Raises
        FileNotFoundError (none stored) or ValueError (damaged on disk, naming the file)."""
        path = Path(run_dir)
        path = path / PREDICTIONS_FILE if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"no {PREDICTIONS_FILE} in {Path(run_dir).name}: the run predates stored "
                                    f"predictions; re-run it to get failures and test intervals.")
        try:
            with np.load(path) as data:
                optional = {name: data[name] for name in _OPTIONAL if name in data.files}
                loaded = cls(data["labels"], data["predicted"], data["confidence"], **optional)
            return loaded if num_classes is None else loaded.check_classes(num_classes)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # damaged on disk
            detail = str(exc) if isinstance(exc, ValueError) and str(exc).startswith("predictions") else ""
            raise ValueError(f"{PREDICTIONS_FILE} of run {Path(run_dir).name} cannot be read (damaged or cut "
                             f"short?): {type(exc).__name__}{': ' + detail if detail else ''}") from None


def paired_test_delta(base: Predictions, other: Predictions, num_classes: int, groups: dict[str, list[int]],
                      *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, dict[str, float]]:
    """``other − base`` on the same test samples (accuracy means over each run's seeds), with 95 % intervals:
    overall and balanced accuracy, and the groups' (:meth:`probe.uncertainty.Bootstrap.paired_delta`).

    Raises:
        ValueError: the two runs were not scored on the same test split.
    """
    boot = _paired_bootstrap(base, other, num_classes, n_resamples, seed)
    delta = boot.paired_delta(other.correct, base.correct, groups)
    return _pinned(delta) if same_predictions(base, other) else delta


def paired_test_intervals(base: Predictions, other: Predictions, num_classes: int, groups: dict[str, list[int]],
                          *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
                          ) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """:func:`paired_test_delta` and the (K, 2) 95 % interval of each class's difference, on the same resamples
    (:meth:`probe.uncertainty.Bootstrap.paired_intervals`): what a comparison shows, each run's classes resampled
    once where the two apart resampled them twice. Raises ValueError as :func:`paired_test_delta` does."""
    boot = _paired_bootstrap(base, other, num_classes, n_resamples, seed)
    delta, classes = boot.paired_intervals(other.correct, base.correct, groups)
    if same_predictions(base, other):
        return _pinned(delta), np.where(np.isnan(classes), np.nan, 0.0)
    return delta, classes


def same_predictions(base: Predictions, other: Predictions) -> bool:
    """Whether the two runs are one probe: the same class predicted for every test sample, seed by seed, and the
    first seed's confidences equal to the bit (a run compared with itself, or a run that kept its reference's
    heads): their differences are 0 by construction, not estimates of a difference between two probes. Newcombe's
    interval of a class and Agresti & Min's half image had read ±9.9 points on each class of "a run compared with
    itself: every difference is 0" (a review). Two other probes that happen to agree on every test image keep
    those intervals: agreeing on the images seen does not make them one probe."""
    return base.predicted.shape == other.predicted.shape and bool(np.array_equal(base.predicted, other.predicted)) \
        and bool(np.array_equal(base.confidence, other.confidence))


def _pinned(delta: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``delta`` with each interval the point itself (0 for runs of the same predictions: :func:`same_predictions`);
    an undefined one (nan) stays so."""
    return {key: {**value, "lo": value["delta"], "hi": value["delta"]} for key, value in delta.items()}


def _paired_bootstrap(base: Predictions, other: Predictions, num_classes: int, n_resamples: int, seed: int
                      ) -> Bootstrap:
    """The resamples of two runs' test split, once they are checked to be the same test samples (ValueError
    otherwise: other labels, or sources that name other images)."""
    if base.labels.shape != other.labels.shape or not np.array_equal(base.labels, other.labels):
        raise ValueError("the two runs were scored on different test splits (different caches); a paired "
                         "comparison needs the same test samples.")
    mismatch = _first_other_sample(base.sources, other.sources)
    if mismatch is not None:
        one, two = str(base.sources[mismatch]), str(other.sources[mismatch])
        raise ValueError(f"the two runs were scored on different test samples with the same labels: test sample "
                         f"{mismatch} is {one!r} in one and {two!r} in the other; a paired comparison needs the same "
                         "test samples.")
    return Bootstrap(base.labels, num_classes, n_resamples=n_resamples, seed=seed)


def _first_other_sample(a: np.ndarray | None, b: np.ndarray | None) -> int | None:
    """The first test sample whose source names another image in the other run (:func:`_same_image`), or None:
    none does, or a run did not store its sources. Caches list the test samples class by class, so two different
    test sets with the same class counts have the same labels; their sources differ."""
    if a is None or b is None:
        return None
    return next((i for i, (one, two) in enumerate(zip(a, b)) if not _same_image(one, two)), None)


BY_ROWS, BY_DIGESTS, BY_PATHS = "rows", "content digests", "source paths"  # how match_images paired two runs


class Matched(NamedTuple):
    """Two runs' test predictions restricted to the test images both have (:func:`match_images`)."""
    base: Predictions
    other: Predictions
    how: str  # BY_ROWS, BY_DIGESTS or BY_PATHS
    # how many of base's test images other holds under another label, by content digest (BY_DIGESTS) or source path
    # (BY_PATHS; BY_ROWS: 0): in both caches, yet no pair, whose pairs need one label
    relabelled: int = 0
    # how many test images of each run (base, other) have a source path refused as ambiguous (BY_PATHS; else 0):
    # in both caches, yet no pair (:func:`ambiguous_paths`)
    ambiguous: tuple[int, int] = (0, 0)


def match_images(base: Predictions, other: Predictions) -> Matched | None:
    """Two runs' test predictions restricted to the test images both have, in the base run's order, and how they
    were matched: :data:`BY_ROWS` (the same test split row by row, the predictions as given), :data:`BY_DIGESTS`
    (each image's content digest and label, where both runs kept digests: two caches of the same images, whatever
    their names, order or split) or :data:`BY_PATHS` (each image's path in its data set, one run's the other's
    below top folders of its own, where that names one image of each run: :func:`_path_keys`, and label); None where
    the two cannot be matched (no digests or sources, or no image in common). Paths identify an image only within
    one data set: the caller checks that the runs' data sets agree before it trusts :data:`BY_PATHS`. An image
    twice in a split pairs occurrence by occurrence."""
    if base.digests is not None and other.digests is not None:
        if _same_labels(base, other) and np.array_equal(base.digests, other.digests):
            return Matched(base, _without_sources(other), BY_ROWS)
        how, identity, ambiguous = BY_DIGESTS, [_digest_keys(p) for p in (base, other)], (0, 0)
    elif _same_labels(base, other) and _first_other_sample(base.sources, other.sources) is None:
        return Matched(base, other, BY_ROWS)
    elif base.sources is not None and other.sources is not None:
        how, (identity, ambiguous) = BY_PATHS, _path_keys(base.sources, other.sources)
    else:
        return None
    keys = [list(zip(p.labels.tolist(), ids)) for p, ids in zip((base, other), identity)]
    rows, columns = _matched(*(_occurrences(k) for k in keys))
    if not rows.size:
        return None
    # the images both hold whatever their label (an image twice pairs occurrence by occurrence), less those paired
    moved = sum((Counter(identity[0]) & Counter(identity[1])).values()) - rows.size
    return Matched(_take(base, rows), _without_sources(_take(other, columns)), how, moved, ambiguous)


def unmatched_reason(base: Predictions, other: Predictions) -> str:
    """Why :func:`match_images` found no pair of the two runs' test images, in words: no content digests or paths
    stored, paths ambiguous (a path naming two of the other run's images pairs with none: :func:`_path_keys`), or
    no image in common (the data sets differ). Compare's unpaired warning said none of it (a first-user round)."""
    lacking = [name for name, p in (("base", base), ("other", other)) if p.digests is None]
    whose = "neither run's predictions keep any" if len(lacking) > 1 else f"the {''.join(lacking)} run's keep none"
    digests = f"no content digests stored ({whose})"
    if not lacking:
        return "no test image of one run has the content digest and label of one of the other's: the data sets differ"
    if base.sources is None or other.sources is None:
        return f"{digests} and no source paths"
    ambiguous = ambiguous_paths(base.sources, other.sources)
    if ambiguous:
        return f"{digests}, and the source paths of {ambiguous:,} of the base run's {base.labels.size:,} test images " \
            f"are {AMBIGUOUS}"
    return f"{digests}, and no source path and label of one run names an image of the other's: the data sets differ"


def _same_labels(base: Predictions, other: Predictions) -> bool:
    return base.labels.shape == other.labels.shape and np.array_equal(base.labels, other.labels)


def _digest_keys(p: Predictions) -> list[bytes]:
    """Each test image's content digest (``p.digests``' rows) as a key to match on."""
    return [row.tobytes() for row in p.digests]


def _parts(path: str) -> tuple[str, ...]:
    """A path's folders and file name ('\\' read as '/')."""
    return tuple(part for part in str(path).replace("\\", "/").split("/") if part)


def _same_image(a: str, b: str) -> bool:
    """Whether two paths in a data set name one image: equal, or one the other below folders of its own, at any depth
    (the same images read from a folder and from an archive with a top folder: 'test/cat/1.png',
    'cifar/test/cat/1.png'; 'cat/1.png' and '1.png' too, where the data set lists its files bare). Their class folder
    and file name alone are not an image: 'train/cat/1.png' and 'test/cat/1.png' are two."""
    one, two = _parts(a), _parts(b)
    n = min(len(one), len(two))
    return n > 0 and one[-n:] == two[-n:]


def _path_keys(a: np.ndarray, b: np.ndarray) -> tuple[list[list], tuple[int, int]]:
    """Each path of ``a`` and of ``b`` as a key to match on: one key for a path of each run naming one image
    (:func:`_same_image`) where neither names another of the other run's; a path naming none, or two or more
    ('cat/1.png' beside 'train/cat/1.png' and 'test/cat/1.png'), pairs with nothing. With them, how many paths of
    ``a`` and of ``b`` were left unpaired as ambiguous: naming an image of the other run, yet not paired."""
    parts, pair, named = _path_lookup(a, b)
    back = {found: path for path, found in pair.items()}
    keys = [[("pair", p) if p in pair else ("base", p) for p in parts[0]],
            [("pair", back[p]) if p in back else ("other", p) for p in parts[1]]]
    ambiguous = tuple(sum(1 for p in side if p not in paired and names[p])
                      for side, paired, names in zip(parts, (pair, back), named))
    return keys, ambiguous


# what an ambiguous path is, in the words of every warning that counts them (:func:`ambiguous_paths`)
AMBIGUOUS = ("ambiguous (a path naming two or more images of the other run, as 'cat/1.png' names both "
             "'train/cat/1.png' and 'test/cat/1.png', pairs with none)")


def ambiguous_paths(a: np.ndarray, b: np.ndarray) -> int:
    """How many test images of ``a`` have a path naming two or more of ``b``'s images, or one that names two or
    more of ``a``'s: what :func:`_path_keys` leaves unpaired as ambiguous."""
    return _path_keys(a, b)[1][0]


def _path_lookup(a: np.ndarray, b: np.ndarray) -> tuple[list[list[tuple]], dict[tuple, tuple], tuple[dict, dict]]:
    """Each run's paths as parts, :func:`_path_keys`' pairs (a path of ``a`` → its one of ``b``), and of each path
    of each run, the paths of the other it names (:func:`_same_image`)."""
    parts = [[_parts(path) for path in paths] for paths in (a, b)]
    set_of = [set(side) for side in parts]
    below = [{} for _ in parts]  # each run's paths by every path they end in: 'cat/1.png' → its train and test files
    for side, index in zip(set_of, below):
        for path in side:
            for start in range(len(path)):
                index.setdefault(path[start:], set()).add(path)

    def named(path: tuple, side: int) -> set:  # the other run's paths naming the image ``path`` names
        other = 1 - side
        return below[other].get(path, set()) | {path[i:] for i in range(1, len(path)) if path[i:] in set_of[other]}

    one = {path: named(path, 0) for path in set_of[0]}
    two = {path: named(path, 1) for path in set_of[1]}
    pair = {path: next(iter(found)) for path, found in one.items()
            if len(found) == 1 and two[next(iter(found))] == {path}}
    return parts, pair, (one, two)


def _occurrences(keys: list) -> list[tuple]:
    """Each key with how often it came before: an image twice in a split pairs with the other's second copy."""
    seen: dict = {}
    out = []
    for key in keys:
        out.append((key, seen.get(key, 0)))
        seen[key] = out[-1][1] + 1
    return out


def _matched(a: list[tuple], b: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``a`` and of ``b`` holding the same keys, in ``a``'s order."""
    where = {key: j for j, key in enumerate(b)}
    pairs = [(i, where[key]) for i, key in enumerate(a) if key in where]
    return (np.array([i for i, _ in pairs], dtype=np.int64), np.array([j for _, j in pairs], dtype=np.int64))


def _take(p: Predictions, rows: np.ndarray) -> Predictions:
    """The predictions of the test samples ``rows`` of ``p``."""
    optional = {name: None if getattr(p, name) is None else getattr(p, name)[rows] for name in _OPTIONAL}
    return Predictions(p.labels[rows], p.predicted[:, rows], p.confidence[rows], **optional)


def _without_sources(p: Predictions) -> Predictions:
    """``p`` without its paths: images matched by content may carry other names, which the pairing's check of
    paths (:func:`_paired_bootstrap`) would refuse."""
    return replace(p, sources=None)


def load_pair(base_dir: str | Path, other_dir: str | Path, class_counts: tuple[int, int] = (None, None)
              ) -> tuple[Predictions, Predictions] | None:
    """Both runs' stored predictions (each checked against its run's class count in ``class_counts``, when
    given), or None when either run has none (runs written before they were stored)."""
    try:
        return Predictions.load(base_dir, class_counts[0]), Predictions.load(other_dir, class_counts[1])
    except FileNotFoundError:
        return None
