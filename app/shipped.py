"""A run's shipped probe (``probe.deploy.RunProbe``) applied to a feature cache's split, after every check: what
``mr2probe predict``, ``mr2probe compare --features`` and the API's scoring of a run on another cache share."""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CachePredictions", "predict_cache", "reproduces", "compare_on_cache", "CSV_COLUMNS", "csv_rows",
           "predicted_summary", "scores_summary", "unknown_hint"]

# One row per image of `mr2probe predict --out` and GET /api/runs/{id}/predictions.csv
CSV_COLUMNS = ("index", "source", "true", "predicted", "confidence", "correct")


@dataclass
class CachePredictions:
    """A run's probe applied to a cache's split: ``labels`` (n,) indices into the run's classes (``UNKNOWN_CLASS``
    for a class it does not have), ``names`` (n,) each image's class name in the cache, the predictions, their
    confidence, the images' sources and what could not be checked (``warnings``)."""

    source: Any  # probe.report.FeatureSource of the cache
    labels: Any  # numpy arrays (this module does not import numpy when the CLI builds its parser)
    names: list[str]
    predicted: Any
    confidence: Any
    sources: list[str]
    warnings: list[str]
    # False: nothing to score: unlabelled images (every name "") or labels of none of the run's classes (every
    # label UNKNOWN_CLASS either way)
    labelled: bool = True
    probabilities: Any = None  # (n, K) float32 every class's softmax probability, when asked for
    truth: Any = None  # probe.deploy.TrueClass of labelled images: NLL and top-k of the scores

    def known_rows(self) -> Any:
        """The rows of the images of classes the run has (the others are no one's mistakes and no pair's)."""
        import numpy as np

        return np.flatnonzero(self.labels >= 0)

    def known(self) -> tuple[Any, Any]:
        """``(rows, predictions)``: :meth:`known_rows` and their ``probe.predictions.Predictions``, whose index ``i``
        is the split's row ``rows[i]``."""
        import numpy as np

        from probe.predictions import Predictions

        rows = self.known_rows()
        # the probability of each image's label, exp(−NLL) as the run stored it (probe.run): lowest first in failures
        p_label = None if self.truth is None else np.exp(-self.truth.loss[rows])
        return rows, Predictions(self.labels[rows], self.predicted[rows][None, :], self.confidence[rows],
                                 [self.sources[i] for i in rows], label_probability=p_label)


def usage_text(run_id: str, report: Any) -> str:
    """USAGE.md of a run's probe.zip: what the probe takes (the encoder and preprocessing its features came from)
    and how to apply it, with the CLI and in Python (a dashboard-only round found the zip without a word of either,
    the encoder only in head.json)."""
    import shlex

    from probe.export import markdown_escape as _md

    features = report.features
    # every name and attribute from a data set or a cache file escaped as Markdown, quoted in the shell (a review:
    # class names made images and links, and an encoder attribute ran a command pasted from the bash block)
    takes = ("features of an unknown encoder (this run's report predates their record)" if features is None else
             f"features of the encoder {_md(features.encoder)}"
             + (f", preprocessed as {_md(json.dumps(features.preprocess, sort_keys=True))}"
                if features.preprocess else "")
             + (f", weights sha256 {_md(features.weights_sha256[:16])}…" if features.weights_sha256 else "")
             + (", L2-normalised" if features.normalized else ""))
    encoder = shlex.quote(features.encoder) if features is not None else "ENCODER"
    shown = ", ".join(_md(name) for name in report.class_names[:10])
    more = f" and {len(report.class_names) - 10:,} more" if len(report.class_names) > 10 else ""
    return f"""# Probe of run {run_id}

The first seed's head of run {run_id} ({len(report.class_names)} classes: {shown}{more}).
It takes {takes}; features of another encoder are refused.

With mr2probe (`pip install` the project; the folder {run_id}/ of this zip is the run):

```bash
mr2probe extract --data NEW_IMAGES --encoder {encoder} --out new.h5 [--unlabelled]
mr2probe predict {run_id} --features new.h5 --out predictions.csv
```

In Python:

```python
from feature_cache import open_cache
from probe.deploy import RunProbe
probe = RunProbe.load({run_id!r})
cache = open_cache("new.h5")
probe.check_features(cache.provenance(), cache.num_features)   # raises on other features
predicted, confidence = probe.predict_with_confidence(cache.load("test")[0])  # indices into probe.class_names
```

`head.json` holds the forward pass step by step (`forward.steps`) and the class names, for code without mr2probe
(with `posthoc_bias.json` and `temperature.json` where this zip has them: the bias added to the logits, then the
temperature they are divided by, before the softmax; `RunProbe` applies both);
`apply_probe.py` applies them with numpy and safetensors alone (`pip install numpy safetensors`), for serving
code without mr2probe (from the folder this zip unpacks into: `sys.path.insert(0, {run_id!r})`, then
`from apply_probe import load_probe; probabilities = load_probe({run_id!r}).predict_proba(x)`, `x` the features as
above; or `python {run_id}/apply_probe.py {run_id} features.npy`, which prints a line per row of features.npy:
the predicted class, a tab, its confidence), and nothing checks the features there;
`probe.onnx` is the same probe as one ONNX graph (opset 17) for ONNX Runtime, Triton or TensorRT: input
`features` (n, d) float32, outputs `probabilities` and `logits` (n, K), columns in the order of its metadata's
`class_names` (rows of NaN features give NaN there: check them first; `mr2probe export` writes it from a run folder);
`report.json` the run's figures (its means are over seeds; this head is the first seed's, whose test accuracy is
`seeds.metrics.overall.per_seed[0]`).
"""


def predicted_summary(probe, got: "CachePredictions") -> dict[str, Any]:
    """How many of the images went to each class (``probe.deploy.predicted_shares``), how many predictions are
    unsure, and what could not be checked: ``mr2probe predict --json`` on unlabelled images and the API's
    ``/predicted`` (which adds where it predicted); the CLI's lacked ``unsure`` and ``warnings`` (a shipping round)."""
    from probe.deploy import UNSURE_BELOW, predicted_shares, unsure_note, unsure_predictions

    note = unsure_note(len(probe.class_names))
    return {"images": len(got.predicted), "unsure": unsure_predictions(got.confidence), "unsure_below": UNSURE_BELOW,
            "warnings": list(got.warnings) + ([note] if note else []),
            "predicted": predicted_shares(got.predicted, got.confidence, probe.class_names)}


def scores_summary(run_dir, probe, got: "CachePredictions", split: str) -> tuple[Any, dict[str, Any]]:
    """``(scores, beside)``: ``probe.deploy.Scores`` of the predictions against the cache's labels, and beside them
    the images, what could not be checked and, on the run's own test split, on how many images they equal its
    report (``reproduces``): ``mr2probe predict --json`` on labelled images and the API's ``/scores`` (which adds
    where it scored)."""
    from probe.deploy import score_predictions

    scores = score_predictions(got.labels, got.predicted, probe.class_names, got.names, got.confidence, got.truth,
                               probe.scaling)
    return scores, {"images": len(got.labels), "warnings": list(got.warnings),
                    "matches_report": reproduces(run_dir, probe, got, split),
                    "unknown_hint": unknown_hint(scores, list(probe.class_names))}


def unknown_hint(scores, class_names: list[str]) -> str | None:
    """Why images may be of classes the run does not have (``scores.unknown``), where their names suggest one:
    labels that differ from the run's classes only in case, else a class renamed since the run; None otherwise.
    ``mr2probe predict`` says it after its line on those images, the dashboard's score panel under it."""
    return _case_hint(list(scores.unknown), class_names) or _renamed_hint(scores)


def _case_hint(unknown: list[str], class_names: list[str]) -> str | None:
    """A hint for labels that differ from the run's class names only in case ('Bird' for 'bird'): labels match by
    exact name, and the bare 'classes the run does not have' left the user guessing (a new-user round)."""
    by_lower = {name.casefold(): name for name in class_names}
    pairs = [(label, by_lower[label.casefold()]) for label in unknown if label.casefold() in by_lower]
    if not pairs:
        return None
    return ("Labels match the run's classes by exact name: " + ", ".join(f"{a!r} is not {b!r}" for a, b in pairs[:5])
            + " (rename the labels or folders).")


def _renamed_hint(scores) -> str | None:
    """A hint where most images of classes the run lacks went to one of its classes without images here: a class
    folder renamed since the run ('dog' to 'puppy') read as a class the run lacks, and its old name as a class
    without images, with no word on why (a data-set-iteration round)."""
    absent = {c.name for c in scores.per_class if not c.n}
    went = {name: n for name, n in scores.unknown_predicted.items() if name in absent}
    if not went:
        return None
    name, n = max(went.items(), key=lambda item: item[1])
    unknown = sum(scores.unknown.values())
    if 2 * n <= unknown:
        return None
    # a name with '/' is no folder's ('T-shirt/top' of Fashion-MNIST's idx files; a new-user round)
    how = ("label its images so in a CSV manifest (no folder's name holds '/') and extract again" if "/" in name
           else "rename the folder or labels and extract again")
    return (f"Most of them ({n:,} of {unknown:,}) were predicted as {name!r}, which has no images here: a class "
            f"renamed since the run? Labels match the run's classes by name: give it its old name back ({how}).")


def csv_rows(got: "CachePredictions", class_names: list[str]):
    """The predictions as CSV rows (:data:`CSV_COLUMNS`), header first: ``true`` empty for an unlabelled image,
    ``correct`` empty where there is no label of the run's classes to score against; with ``got.probabilities``,
    a column ``p(<class>)`` per class after them (scikit-learn's ``predict_proba``, in the run's class order); file
    and class names made safe for spreadsheets (``probe.numbers.csv_cell``); numbers as the float32s they are
    (``probe.numbers.float32_text``)."""
    from probe.numbers import csv_cell, float32_text

    proba = got.probabilities
    yield list(CSV_COLUMNS) + ([] if proba is None else [csv_cell(f"p({name})") for name in class_names])
    for i, (src, name, t, p, c) in enumerate(zip(got.sources, got.names, got.labels, got.predicted, got.confidence)):
        # every digit of the float32: six decimals wrote 120 small probabilities as 0.000000, and an NLL recomputed
        # from the file missed the report's (a new-user round)
        row = [i, csv_cell(src), csv_cell(name), csv_cell(class_names[p]), float32_text(c),
               "" if t < 0 else int(t == p)]
        yield row if proba is None else row + [float32_text(v) for v in proba[i]]


def check_scored_cache(path: str, split: str, unlabelled: bool = False, name: str | None = None):
    """The cache at ``path`` opened, once it is one probes can be scored on: it has ``split``, and labels unless
    ``unlabelled``. Raises ValueError naming the cache as ``name`` (else its path): what is wrong with the cache
    itself, said once before any run is loaded (several runs compared on an unlabelled cache blamed the first
    pair; a new-user round)."""
    from feature_cache import open_cache

    cache = open_cache(path)
    if split not in cache.splits:
        raise ValueError(f"{name or path} has no split {split!r}; it has {', '.join(cache.splits)}.")
    if not (cache.labelled or unlabelled):
        raise ValueError(f"{name or path} holds unlabelled images (mr2probe extract --unlabelled): no labels to "
                         "score a probe against; `mr2probe predict RUN --features CACHE --out FILE.csv` lists the "
                         "predictions.")
    return cache


def predict_cache(probes: list, path: str, split: str, unlabelled: bool = False,
                  name: str | None = None, probabilities: bool = False,
                  max_cells: int | None = None) -> list[CachePredictions]:
    """Each of ``probes`` (``probe.deploy.RunProbe``) on ``split`` of the cache at ``path``, after the checks:
    the split exists, the features are each probe's (width, extractor), a class in common. The features are read
    one inference chunk at a time (``FeatureCache.reading``): memory does not grow with the split. A cache of
    unlabelled images (``mr2probe extract --unlabelled``) is refused unless ``unlabelled`` (its predictions are
    then ``labelled=False``). Raises ValueError naming what failed, and the cache as ``name`` (the service's
    "cache 'ID'"; its file path read '<data dir>/caches/...' to a client; a new-user round), else its path. With
    ``probabilities``, each probe's (n, K) class probabilities too: n × K × 4 bytes in memory, refused beyond
    ``max_cells`` n × K (the service's bound)."""
    import numpy as np

    from probe.deploy import UNKNOWN_CLASS, TrueClass
    from probe.report import FeatureSource
    from probe.seen import common_folder, repeated_rests

    cache = check_scored_cache(path, split, unlabelled, name)
    labelled = cache.labelled
    source = FeatureSource.model_validate(cache.provenance(str(path)))
    sources = cache.sources(split)
    every = lambda: (p for s in cache.splits for p in (sources if s == split else cache.sources(s)))  # noqa: E731
    shared = functools.cache(lambda: common_folder(every()))  # the scored split's read once
    repeated = functools.cache(lambda: repeated_rests(every(), shared()))
    digests = functools.cache(lambda: cache.digests(split))
    checked = []
    for probe in probes:
        warnings = probe.check_features(source, cache.num_features) + _seen_images(
            probe, source, split, sources, list(cache.class_names) == list(probe.class_names), shared, repeated,
            digests)
        mapping = probe.label_map(cache.class_names) if labelled else np.full(cache.num_classes, UNKNOWN_CLASS)
        scored = labelled and bool((mapping != UNKNOWN_CLASS).any())
        if labelled and not scored:
            warnings.append(_unscored(cache.class_names, probe.class_names, unlabelled))
        checked.append((warnings, mapping, scored))
    labels = cache.labels(split)
    if len(labels) == 0:
        raise ValueError(f"split {split!r} of {name or path} holds no image" + ("" if labelled else
                         " (an unlabelled cache holds its images in 'test')") + ".")
    names = [cache.class_names[i] if labelled else "" for i in labels]
    cells = len(labels) * max(len(p.class_names) for p in probes)
    if probabilities and max_cells is not None and cells > max_cells:
        raise ValueError(f"every class's probability of {len(labels):,} images × {cells // len(labels):,} classes "
                         f"is {cells:,} numbers, over the {max_cells:,} this service returns: use `mr2probe predict "
                         "--probabilities` on the cache, or leave probabilities out")
    proba = [np.empty((len(labels), len(p.class_names)), np.float32) if probabilities else None for p in probes]
    truths = [TrueClass(mapping[labels]) if scored else None for _, mapping, scored in checked]
    with cache.reading(split) as features:  # read one inference chunk at a time, never the whole split
        predicted = [probe.predict_with_confidence(features, out, truth)
                     for probe, out, truth in zip(probes, proba, truths)]
    return [CachePredictions(source, mapping[labels], names, *got, sources, warnings, scored, out, truth)
            for got, (warnings, mapping, scored), out, truth in zip(predicted, checked, proba, truths)]


def _unscored(cache_classes: list[str], run_classes: list[str], listed: bool) -> str:
    """What :func:`predict_cache` says of a labelled cache none of whose classes is one of the run's: a warning
    where its predictions are only ``listed`` (predict, /predicted, predictions.csv: predicting needs no labels,
    and they were refused; a new-user round); else raised, as there is nothing to score."""
    disjoint = f"none of the cache's classes ({_names(cache_classes)}) is one of the run's ({_names(run_classes)})"
    if not listed:
        raise ValueError(f"{disjoint}: nothing to score; `mr2probe predict` lists its predictions without scores "
                         '(the run page\'s "Count predictions" and "Predictions (.csv)").')
    return (f"{disjoint}: its labels cannot score these predictions, so no accuracy is given; they are counted as "
            "for unlabelled images (each image's own label kept in the CSV's true column, correct empty).")


def _own_cache(probe, source) -> bool:
    """Whether the cache described by ``source`` (a ``FeatureSource``) is the one the probe's run was trained on."""
    return probe.features is not None and probe.features.fingerprint == source.fingerprint


def _seen_images(probe, source, split: str, sources: list[str], same_classes: bool,
                 shared: Callable[[], str], repeated: Callable[[], Any], digests: Callable[[], Any]) -> list[str]:
    """A warning when the scored images are ones the probe was trained or selected on: ``split`` of its own cache
    (train or val), or, in another cache of the same data set (another extraction: its splits drawn with another
    seed or validation fraction), images whose paths its run kept among its train and val ones (``probe.seen``;
    scored there, a probe read 100 % on its own training images without a word, a new-user round). In a cache of
    another data set with the run's classes (``same_classes``), the same paths are said to be the same images if
    they are: the same folder zipped (another content fingerprint) or changed since went unflagged (an outside
    round), where a data set of other images named alike would be a false alarm. In a cache of another data set, a
    path also matches with its leading split folder changed or gone (the same files in a flat folder went unflagged, a
    new-user round; ``SeenSources.moved``). ``shared()``: the folders every path of the scored cache shares
    (``probe.seen.common_folder``), ``repeated()``: its ``probe.seen.repeated_rests``; read only when needed. Where
    the run kept its images' contents and the scored cache its content digests (``digests()``), another cache's
    images are matched by their bytes alone, whatever their names (new images named like the training ones,
    img_000.jpg, were said to be training images by their paths; a new-user round)."""
    own = _own_cache(probe, source)
    if own:
        if split != "train" or probe.seen is None:
            return _own_split(split, probe)
    elif probe.seen is not None and probe.seen.contents is not None and digests() is not None:
        same = {name: n for name, n in probe.seen.same_content(digests()).items() if n}
        return [_same_bytes_words(len(sources), same)] if same else []
    elif probe.seen is None or not sources or probe.features is None or probe.features.dataset is None:
        return []
    kin = own or probe.features.dataset == source.dataset  # the same data set: the same path is the same image
    if not (kin or same_classes):
        return []
    overlap = {name: n for name, n in probe.seen.overlap(sources, shared()).items() if n}
    if own and not overlap.get("val"):  # val was given: these are the train images it trained on, all of them
        return _own_split(split, probe)
    # a cache of its own data set (its own or another extraction: the same content fingerprint) holds each image
    # under one path: another split folder there is another image (another extraction's test/cat/1.png, never
    # trained on, was said to be train/cat/1.png where the data set numbers each split afresh; an attack round)
    moved = {} if kin else probe.seen.moved(sources, shared(), repeated())
    moved = {name: n for name, n in moved.items() if n}
    overlap = {name: overlap.get(name, 0) + moved.get(name, 0) for name in probe.seen.digests
               if overlap.get(name) or moved.get(name)}
    if not overlap:
        return []
    return [_seen_words(len(sources), overlap, "the train split of the run's own cache" if own else
                        "another cache of the run's data set" if kin else None, moved)]


_SEEN_WORDS = {"train": "the images it was trained on", "val": "those its hyper-parameters and thirds were chosen on"}


def _same_bytes_words(scored: int, same: dict[str, int]) -> str:
    """The warning of :func:`_seen_images` for scored images that hold the bytes of the run's own (``same``: how many
    for each of its splits)."""
    seen = " and ".join(f"{n:,} {'is' if n == 1 else 'are'} byte-identical to one of {_SEEN_WORDS[name]}"
                        for name, n in same.items())
    return (f"Of the {scored:,} images scored here, {seen}: these scores overstate its accuracy on new images; its "
            "test split (or images it has not seen) says how it does.")


def _seen_words(scored: int, overlap: dict[str, int], where: str | None, moved: dict[str, int]) -> str:
    """The warning of :func:`_seen_images`: ``where`` the scored images lie, None for a cache of another data set
    with the run's classes (the same paths, perhaps other images); ``moved``: how many of ``overlap`` matched only
    with their leading split folder changed or gone."""
    total, m = sum(overlap.values()), sum(moved.values())
    how = "" if not m else (f" ({'all' if m == total else f'{m:,} of them'} matched on class folder and file name "
                            "alone, a leading split folder such as train/ set aside)")
    if where is None:
        seen = " and ".join(f"{n:,} {'has' if n == 1 else 'have'} the path of one of {_SEEN_WORDS[name]}"
                            for name, n in overlap.items()) + how
        return (f"Of the {scored:,} images scored here (a cache of another data set with the run's classes), {seen}: "
                "if they are the same images (its data set copied, zipped or changed since), these scores overstate "
                "its accuracy on new images; its test split (or images it has not seen) says how it does.")
    seen = " and ".join(f"{n:,} {'was' if n == 1 else 'were'} among {_SEEN_WORDS[name]}"
                        for name, n in overlap.items()) + how
    # the train split of its own cache holds the val it carved from train too (all "trained on"; a review)
    return (f"Of the {scored:,} images scored here ({where}), {seen}: these scores overstate its accuracy on new "
            "images; its test split (or images it has not seen) says how it does.")


def _own_split(split: str, probe=None) -> list[str]:
    """A warning when ``split`` of the probe's own cache is one it was trained or selected on: its scores there say
    little of new images. On val, what the shipped probe fitted there is named too: its post-hoc bias and its
    temperature (``probe``, a ``probe.deploy.RunProbe``), so its accuracy and calibration there are in-sample."""
    if split == "test":
        return []
    # the post-hoc bias and the temperature are fitted on the validation images (cross-validated or not): "it never
    # trained on them, but its hyper-parameters and thirds were chosen on them" left out that the shipped bias and
    # temperature were fitted on the very images scored (an audit round: a CIFAR-10 probe with its bias read 81.3 % on
    # val against 73.2 % on test)
    fitted = [] if probe is None or split != "val" else (
        (["post-hoc bias"] if probe.posthoc is not None else [])
        + (["temperature"] if probe.temperature != 1.0 else []))
    also = (f", and its {' and its '.join(fitted)} {'were' if len(fitted) > 1 else 'was'} fitted on them"
            if fitted else "")
    # the shipped probe trains on the train split alone, cross-validated or not (its folds only chose); "and, when
    # it cross-validated, trained on" contradicted the run's own warning (a new-user round)
    use = ("trained on them" if split == "train" else "selected on them (it never trained on them, but its "
           f"hyper-parameters and thirds were chosen on them{also})")
    return [f"These are the {split} images of the run's own cache: the probe was {use}, so these scores "
            "overstate its accuracy on new images; its test split (or other images) says how it does."]


def _names(names: list[str], at_most: int = 5) -> str:
    shown = ", ".join(names[:at_most])
    return shown + (f", … ({len(names)} in all)" if len(names) > at_most else "")


def reproduces(run_dir, probe, got: CachePredictions, split: str) -> dict | None:
    """On the run's own test split (same cache fingerprint): on how many images ``got`` equals the report's first
    seed (``predictions.npz``), ``{"equal", "images"}``, of the images of the classes the run has (a run that left
    classes out stored its predictions of theirs alone: its whole test split read "0 of 449 images, the head or the
    cache changed"); None elsewhere, or when the run stored no predictions."""
    from probe.predictions import Predictions

    if split != "test" or not _own_cache(probe, got.source):
        return None
    try:
        stored = Predictions.load(run_dir, len(probe.class_names))
    except (FileNotFoundError, ValueError):  # none stored, or damaged on disk: the scores stand without it
        return None
    rows = got.known_rows()  # the rows alone: no Predictions (sources, p(label)) built to be dropped
    images = len(rows)
    equal = int((stored.predicted[0] == got.predicted[rows]).sum()) if stored.predicted.shape[1] == images else 0
    return {"equal": equal, "images": images}


def _applied(loader, report, run_dir):
    """``loader.load(run_dir)`` (a ``RunProbe``); its ValueError names the run (``report``'s id) as the routes of one
    run do: compare said a damaged seen_sources.npz without saying whose (an attack round)."""
    try:
        return loader.load(run_dir)
    except ValueError as exc:
        raise ValueError(f"run {report.run_id or run_dir!r} cannot be applied: {exc}") from None


def compare_on_cache(base, other, run_dirs: tuple, path: str, split: str, name: str) -> tuple[Any, list[str]]:
    """Two runs' shipped probes (their reports ``base`` / ``other`` and ``run_dirs``) on ``split`` of the cache at
    ``path`` (``name``: how the caller calls it), paired on the images of classes the runs have →
    ``(probe.compare.Comparison, warnings)``. Raises ValueError: other classes, other features, no such split."""
    from probe.compare import check_same_classes, compare_on_images
    from probe.deploy import RunProbe

    check_same_classes(base, other)
    got = predict_cache([_applied(RunProbe, report, run) for report, run in zip((base, other), run_dirs)], path,
                        split, name=name)
    warnings = list(dict.fromkeys(got[0].warnings + got[1].warnings))
    (rows, base_known), (_, other_known) = got[0].known(), got[1].known()  # the same classes: the same rows
    left = len(got[0].labels) - len(rows)
    if left:
        warnings.append(f"{left:,} image{'' if left == 1 else 's'} of classes the runs do not have "
                        f"{'is' if left == 1 else 'are'} left out.")
    return compare_on_images(base, other, (base_known, other_known),
                             f"{name}, split {split} ({len(rows):,} images)"), warnings
