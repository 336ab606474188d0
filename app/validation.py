"""One place that checks a job request completely before a job exists, and resolves what the job will run.

A request that passes here is stored as it will run: ids that exist, an encoder that can be built on this
host (name, architecture, weights file), devices that exist here, probe configs resolved against the cache's
(or the encoder's) default head. Anything else is a 404 (an unknown id) or a :class:`RequestInvalid` (422,
naming the field), never a job that fails later in the worker.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_cache.options import no_validation
from probe.names import class_name, listed

from .caches import cache_file
from .datasets import PathMissing, PathOutsideRoot, changed_since_registration, check_files, \
    UNKNOWN_LAYOUT, classes_without_message, dataset_counts, is_unlabelled, open_for_extraction
from .messages import given_spans

if TYPE_CHECKING:
    from probe import ProbeConfig, Report
    from probe.predictions import Predictions

    from .schemas import ExtractJob, LabelIssuesJob, PipelineJob, ProbeJob
    from .store import Store

class RequestInvalid(ValueError):
    """A request that is well-formed but cannot run here (the API answers 422 naming ``field``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def resolve_probe_config(overrides: Mapping[str, Any] | None, default_head: str | None) -> ProbeConfig:
    """The probe config a job or ``mr2probe train`` runs, from the fields the caller set.

    Precedence: :class:`probe.ProbeConfig` defaults, then a named ``preset``, then the caller's fields; the head
    is the caller's, else ``default_head`` (the cache's, i.e. the encoder's default head), else ``linear``.

    Raises:
        pydantic.ValidationError: the config is invalid (e.g. a loss that needs the cosine head on a linear one).
    """
    from probe import ProbeConfig

    return ProbeConfig.model_validate({"head": default_head or "linear", **(overrides or {})})


def describe_invalid(exc: Any) -> str:
    """A pydantic ``ValidationError`` as one line: ``field: message`` per problem, joined by ``; ``; the field is left
    out where the message already starts with it, and pydantic's ``Value error, `` prefix is dropped."""
    parts = []
    for error in exc.errors():
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        field = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{field}: {message}" if field and not message.startswith(field.split(".")[0]) else message)
    return "; ".join(parts)


def check_device(device: str) -> None:
    """Raise ``ValueError`` unless ``device`` (``auto``, ``cpu``, ``cuda[:N]``) exists on this host
    (:func:`probe.devices.resolve_device`, the resolver the probe and the extraction use)."""
    from probe.devices import resolve_device

    resolve_device(device)


def _probe(field: str, config: ProbeConfig, default_head: str | None, num_features: int | None,
           num_classes: int, has_reference: bool) -> dict[str, Any]:
    """A request's probe config resolved and checked for this host and cache (its classes, whether the job has a
    reference run); returns it as stored."""
    from pydantic import ValidationError

    from probe.splits import check_class_options

    try:
        cfg = resolve_probe_config(config.model_dump(mode="json", exclude_unset=True), default_head)
    except ValidationError as exc:
        raise RequestInvalid(field, describe_invalid(exc)) from None
    try:
        cfg.check_new_request()
    except ValueError as exc:
        raise RequestInvalid(f"{field}.cbar", str(exc)) from None
    try:
        check_device(cfg.device)
    except ValueError as exc:
        raise RequestInvalid(f"{field}.device", str(exc)) from None
    # ProbeConfig checks that only a lowrank / mlp adapter has a rank; its bound is the cache's feature size.
    if cfg.adapter_rank is not None and num_features is not None and not 1 <= cfg.adapter_rank <= num_features:
        raise RequestInvalid(f"{field}.adapter_rank", f"must be in [1, {num_features}] (the feature size), "
                             f"got {cfg.adapter_rank}")
    try:
        check_class_options(cfg, num_classes, has_reference)
    except ValueError as exc:
        raise RequestInvalid(f"{field}.loss_options", str(exc)) from None
    return cfg.model_dump(mode="json")


def _encoder(name: str, weights_path: Callable[[str], Path] | None) -> tuple[str, Any]:
    """``(name, spec)`` of an encoder that can be built here; a weights file named by path goes through
    ``weights_path`` first (the service keeps it under its data root: 403 outside, whether it exists or not) and
    the name then holds the resolved path."""
    from feature_cache import check_encoder, weights_file_argument

    given = weights_file_argument(name)
    if given is not None and weights_path is not None:
        prefix, path = given
        try:
            name = prefix + str(weights_path(path))
        except (PathMissing, PathOutsideRoot) as exc:
            said = (RequestInvalid("encoder", f"weights {exc}") if isinstance(exc, PathMissing)
                    else PathOutsideRoot(f"encoder weights: {exc}"))
            said.given = given_spans(exc)  # the path as given, kept so (app.datasets.refused_path)
            raise said from None
    try:
        return name, check_encoder(name)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise RequestInvalid("encoder", exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)) from None


def _unreadable(cache_row: dict[str, Any], exc: BaseException) -> RequestInvalid:
    """A cache whose file cannot be read, as the request's fault: the reason, named after the cache once."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    named = f"cache {cache_row['id']!r}"
    return RequestInvalid("cache_id", text if text.startswith(named) else f"{named} cannot be read: {text}")


def _read_cache(cache_row: dict[str, Any], data_root: Path | None, read: Callable[[Any], Any]) -> Any:
    """``read(cache)`` of the cache's file, every read error the request's (422, :func:`_unreadable`) but a path
    leading out of the data root (403). One place: four readers caught four sets of errors, and a file with 2-D
    labels was a 422 in one and a 500 in another (a review)."""
    from feature_cache import CacheMismatch, open_cache

    try:
        return read(open_cache(cache_file(cache_row, data_root)))
    except PathOutsideRoot:
        raise
    except (CacheMismatch, OSError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable(cache_row, exc) from None


def _cache_default_head(cache_row: dict[str, Any], data_root: Path | None) -> str:
    return _read_cache(cache_row, data_root, lambda cache: cache.default_head)


def _class_counts(cache_row: dict[str, Any], data_root: Path | None) -> dict[str, list[int]]:
    """Images per class of each split of a cache, read from its labels."""
    import numpy as np

    return _read_cache(cache_row, data_root, lambda cache: {
        split: np.bincount(cache.labels(split), minlength=cache.num_classes).tolist() for split in cache.splits})


def _dataset_fingerprint(cache_row: dict[str, Any], data_root: Path | None) -> str | None:
    """The content fingerprint of the data set a cache was extracted from (None where the file does not say)."""
    return _read_cache(cache_row, data_root, lambda cache: cache.attrs.get("dataset_fingerprint") or None)


def check_reference(run: dict[str, Any], cache_row: dict[str, Any], class_names: list[str],
                    drop: list[str], data_root: Path | None) -> Report:
    """A reference run must be readable and have the classes the probe is trained on (``class_names``: the cache's,
    less those it leaves out, ``drop``), in order (its groups and floor are per class): otherwise the job would fail
    after its queue wait. Its report, read with its predictions as one run (:func:`probe.rundir.read_run`): a run
    replaced between the two had one run's classes checked and the other's test split. Checked at submission, and
    again by the job after its queue wait (``app.steps``)."""
    from probe.compare import first_class_difference
    from probe.rundir import read_run

    scored_elsewhere = run["cache_id"] != cache_row["id"]
    try:
        report, predictions = read_run(run["path"], lambda: _reference_files(run["path"], scored_elsewhere))
    except (OSError, ValueError) as exc:  # probe.files.OutputBusy: a writer kept replacing it (409)
        raise RequestInvalid("reference_run", f"run {run['id']!r} cannot be read: {exc}") from None
    theirs = list(report.class_names)
    ours = _dataset_fingerprint(cache_row, data_root)
    if report.features is not None and report.features.dataset and ours and report.features.dataset != ours:
        # its groups ranked other images, and the run page's comparison with it was a 422 (an attack round)
        raise RequestInvalid("reference_run", f"run {run['id']!r} was trained on another data set than cache "
                             f"{cache_row['id']!r} (other images): the reference's groups and the comparison with "
                             "it need the same images; train the ERM reference on this cache")
    if theirs != class_names:
        left_out = "" if class_names == list(cache_row["class_names"]) else " less the classes this probe leaves out"
        differ = first_class_difference(theirs, class_names, ("the run", "the cache"))
        raise RequestInvalid("reference_run", f"run {run['id']!r} has other classes than cache {cache_row['id']!r}"
                             f"{left_out} ({differ}): its groups and floor "
                             "cannot apply")
    if predictions is not None:
        _check_same_test_split(run, predictions, cache_row, drop, data_root)
    return report


def _reference_files(run_dir: str, scored_elsewhere: bool) -> tuple[Report, Predictions | None]:
    """A reference run's report, and its predictions where it was ``scored_elsewhere`` (on another cache) and they
    read (None otherwise: a reference without stored predictions cannot be checked, and passes)."""
    from probe import load_report
    from probe.predictions import Predictions

    report = load_report(run_dir)
    if not scored_elsewhere:
        return report, None
    try:
        return report, Predictions.load(run_dir)
    except (OSError, ValueError):
        return report, None


def _check_same_test_split(run: dict[str, Any], theirs: Predictions, cache_row: dict[str, Any],
                           drop: list[str], data_root: Path | None) -> None:
    """A reference trained on another cache of the same images must have been scored on the same test split (the
    cache's, less the classes the probe leaves out, ``drop``: ``probe.splits.without_classes``): the run page compares
    with it by default, and a reference of another split (another cap per class) opened on the comparison's 422 (an
    attack round). ``theirs``: the reference's predictions."""
    import numpy as np

    from probe.splits import without_classes

    labels, sources = _read_cache(cache_row, data_root,
                                  lambda cache: (cache.labels("test"), list(cache.sources("test"))))
    kept, kept_sources, _ = without_classes({"test": (np.empty((len(labels), 0)), labels)}, {"test": sources},
                                            list(cache_row["class_names"]), drop)
    labels, sources = kept["test"][1], kept_sources["test"]
    same = np.array_equal(labels, theirs.labels) and (theirs.sources is None or list(theirs.sources) == sources)
    if not same:
        raise RequestInvalid("reference_run", f"run {run['id']!r} was scored on another test split than cache "
                             f"{cache_row['id']!r} ({len(theirs.labels):,} test images against {len(labels):,}, or "
                             "other ones): the comparison with it needs the same test images; train the ERM "
                             "reference on this cache")


def _check_unlabelled(job: ExtractJob | PipelineJob, dataset_id: str) -> None:
    """Unlabelled images are only extracted, every one of them: no probe, no split options."""
    if job.kind == "pipeline":
        raise RequestInvalid("dataset_id", f"data set {dataset_id!r} holds unlabelled images: nothing to train "
                             "on; extract them (kind 'extract') and a finished run predicts them "
                             "(GET /api/runs/{id}/predictions.csv?cache=...)")
    # a value equal to the schema's default changes nothing: a generated client sends the defaults (an
    # integration round refused its every extraction of unlabelled images)
    changed = job.options.changed()
    split = [key for key in ("max_per_class", "val_fraction") if key in changed]
    if split:
        raise RequestInvalid(f"options.{split[0]}", f"splits a labelled data set; data set {dataset_id!r} "
                             "holds unlabelled images, every one of them is extracted")


def _check_split_options(dataset: dict[str, Any], options: Any,
                         data_root: Path | None) -> tuple[str, dict[str, list[int]], str | None]:
    """Split options other than the registration's (a cap per class, another val share) can leave a class without
    a train or test image, which a pipeline's probes refuse (:func:`validate_job` checks the classes they keep),
    and no validation image: the data set is opened with them (its file listing, no image decoded) and checked
    now. So is a data set registered by path, whose folder may have changed since (a class added or removed failed
    the job after its wait; an attack round). Returns the field that set the splits, their images per class (the
    registration's, or those of the files now) and the data set's layout where it was opened (else None)."""
    defaults = type(options)()
    default_splits = options.max_per_class is None and options.val_fraction == defaults.val_fraction
    if is_unlabelled(dataset) or (default_splits and dataset.get("source") != "path"):
        return "dataset_id", dataset["counts"], None
    try:
        # the listing alone: the content digest reads every file whole (400 images, 120 MB, per job request; a review)
        data = open_for_extraction(dataset, options.model_dump(), data_root, fingerprint=False)
        changed_since_registration(dataset, data)  # other classes: refused (images added or removed: a message)
    except (OSError, ValueError) as exc:  # the files changed since registration (DatasetError is a ValueError)
        raise RequestInvalid("dataset_id", f"data set {dataset['id']!r} cannot be read: {exc}") from None
    field = "dataset_id" if default_splits else "options"  # what set these splits
    counts = dataset_counts(data)
    capped = None if options.max_per_class is None else no_validation(data, counts, options.max_per_class,
                                                                      "max_per_class")
    if capped:  # an extraction's cache no probe could train on (a pipeline's probe said so; an extract job did not)
        raise RequestInvalid(field, capped)
    return field, counts, data.params.get("layout")


def _kept(field: str, drop: list[str], counts: dict[str, list[int]], class_names: list[str]
          ) -> tuple[dict[str, list[int]], list[str]]:
    """Images per class of each split and the class names without the classes ``drop`` leaves out (a probe's
    ``drop_classes``): what its run trains and is scored on. RequestInvalid under ``field`` naming a class that is not
    one of ``class_names``, or when fewer than two would be left."""
    from probe.splits import kept_classes

    try:
        kept = kept_classes(drop, class_names)
    except ValueError as exc:
        raise RequestInvalid(f"{field}.drop_classes", str(exc)) from None
    return {split: [c[k] for k in kept] for split, c in counts.items()}, [class_names[k] for k in kept]


def _named(configs: list[dict[str, Any]], drop: list[str], class_names: list[str]) -> list[dict[str, Any]]:
    """``configs`` (stored probe configs) leaving out ``drop`` (checked by :func:`_kept`) by the classes' own names
    (``probe.splits.dropped_names``: 'cat' is the class 'cat ' where no class is 'cat'), as ``mr2probe train``
    stores them: the job's request and its runs' reports name the classes as the data set does."""
    from probe.splits import dropped_names

    return [{**c, "drop_classes": dropped_names(drop, class_names)} for c in configs] if drop else configs


def _one_drop(probes: list[tuple[str, ProbeConfig, bool]], class_names: list[str]) -> list[str]:
    """The classes a job's probes leave out, the same for each, in any order (the classes a run keeps are in the
    cache's order whatever theirs; the same classes named in another order were refused as others, an attack round)
    and by any name of theirs among ``class_names`` (``probe.splits.dropped_index``: 'b' and ' b' both name the class
    'b', and were refused as others): a pipeline's first probe is the others' reference, whose groups and floor are
    per class."""
    from probe.splits import dropped_index

    def classes(drop: list[str]) -> set:  # a name that names no class (refused by _kept) as itself
        return {k if (k := dropped_index(n, class_names)) is not None else class_name(n) for n in drop}

    drops = [config.drop_classes for _, config, _ in probes]
    for (field, _, _), drop in zip(probes[1:], drops[1:]):
        if classes(drop) != classes(drops[0]):
            said = [listed([repr(n) for n in d], 10) if d else "no class" for d in (drop, drops[0])]
            raise RequestInvalid(f"{field}.drop_classes", f"leaves out {said[0]}, the first probe {said[1]}: every "
                                 "probe of a pipeline leaves out the same classes (the first probe's run gives the "
                                 "others their groups)")
    return list(drops[0])


def _check_validation(field: str, counts: dict[str, list[int]], config: dict[str, Any], probe_field: str,
                      has_reference: bool, class_names: list[str]) -> None:
    """A probe selects on validation images: splits that give it none (``probe.splits.validation_images``) fail the
    run after its queue wait, so the request is refused now; so is a run whose work on these splits (its folds
    where it cross-validates, its rows) is past ``ProbeConfig.check_cost``'s bounds: refused under ``probe_field``
    (it stood under the data set's field, and the launch form showed an epochs error by the data set; an attack
    round)."""
    from feature_cache.datasets import SPLITS
    from probe import ProbeConfig
    from probe.splits import cv_folds, empty_validation, spread_problem, training_rows, validation_images

    sizes = ", ".join(f"{split} {sum(counts.get(split) or [])}" for split in SPLITS)
    try:  # cross-validating on these splits, each candidate is fitted on every fold too
        ProbeConfig.model_validate(config).check_cost(cv_folds(counts, config["val_fraction"], config["cv"]),
                                                      has_reference, training_rows(counts, config["val_fraction"]))
    except ValueError as exc:
        raise RequestInvalid(probe_field, str(exc)) from None
    if validation_images(counts, config["val_fraction"]) == 0:
        raise RequestInvalid(field, empty_validation(sizes))
    # its margins would fail on a zero spread after the queue wait (an attack round)
    problem = spread_problem(config["loss"], counts, config["val_fraction"], config["cv"], class_names)
    if problem:
        raise RequestInvalid(field, problem)


def _dataset_path(store: Store, cache_row: dict[str, Any]) -> str | None:
    """The path of the data set ``cache_row`` was extracted from, None where its row is gone: a single-CSV
    manifest's advice names the file."""
    try:
        return store.get_dataset(cache_row["dataset_id"])["path"]
    except KeyError:
        return None


def _on_cache(store: Store, cache_id: str, probes: list[tuple[str, ProbeConfig, bool]],
              reference_run: str | None = None) -> list[dict[str, Any]]:
    """The probe configs ``(field, config, has a reference run)`` of a job on a cache, resolved and checked against
    it: a cache of labelled images, readable (in place and unchanged where registered by path), with every class in
    its train and test splits and validation images for each config; ``reference_run`` with its classes."""
    cache_row = store.get_cache(cache_id)
    if is_unlabelled(cache_row):
        raise RequestInvalid("cache_id", f"cache {cache_row['id']!r} holds unlabelled images: nothing to train "
                             f"on; a finished run predicts them (GET /api/runs/{{id}}/predictions.csv?cache="
                             f"{cache_row['id']})")
    drop = _one_drop(probes, list(cache_row["class_names"]))
    counts, names = _kept(probes[0][0], drop, _class_counts(cache_row, store.data_root), list(cache_row["class_names"]))
    if reference_run:
        check_reference(store.get_run(reference_run), cache_row, names, drop, store.data_root)
    head = _cache_default_head(cache_row, store.data_root)
    configs = _named([_probe(field, config, head, cache_row["num_features"], len(names), referenced)
                      for field, config, referenced in probes], drop, list(cache_row["class_names"]))
    problem = classes_without_message(counts, names, layout=cache_row.get("layout") or UNKNOWN_LAYOUT,
                                      location=_dataset_path(store, cache_row))
    if problem:  # a test set alone, a class without train or test images: the run would fail after its wait
        raise RequestInvalid("cache_id", f"cache {cache_row['id']!r}: {problem}")
    for (field, _, referenced), config in zip(probes, configs):
        _check_validation("cache_id", counts, config, field, referenced, names)
    return configs


def _check_cache_encoder(encoder: str, cache_row: dict[str, Any]) -> None:
    """A pipeline on a cache uses its features as they are: an encoder named with it must be the schema's default
    (a generated client sends it) or the cache's own; another would not be the encoder of the run's features."""
    from feature_cache.defaults import DEFAULT_ENCODER

    if encoder not in (DEFAULT_ENCODER, cache_row["encoder"]):
        raise RequestInvalid("encoder", f"cache {cache_row['id']!r} holds features of encoder "
                             f"{cache_row['encoder']!r}; with cache_id the cache's features are used as they are: "
                             "leave encoder out")


def _label_issues(job: LabelIssuesJob, store: Store) -> dict[str, Any]:
    """A label-issues job's request, checked as :func:`app.label_issues.find_label_issues` and
    :func:`probe.label_issues.resolve_folds` would check it after the job's queue wait: a run whose report reads and
    describes its loss whole, on its registered cache's file as it was (its fingerprint), with at least ``folds``
    train + val images of every class it kept. Stores the folds the job fits (``folds`` not given: the default, or
    the smallest class's count where fewer, with ``folds_note`` saying so) and the device the folds are fitted on
    (the job's slot, as a probe job's): the request's, else the run's (refused on a host without it, with no way
    round: a run trained on a GPU, its data directory moved to a CPU host)."""
    from feature_cache import CacheMismatch
    from probe import load_report
    from probe.label_issues import resolve_folds

    from .label_issues import check_loss, run_cache

    run = store.get_run(job.run_id)
    cache_row = store.get_cache(run["cache_id"])
    try:
        report = load_report(run["path"])
        config = report.probe_config()
        check_loss(config)
    except (OSError, ValueError) as exc:
        raise RequestInvalid("run_id", f"run {job.run_id!r} cannot be refitted: {exc}") from None
    try:
        run_cache(report, run["path"], cache_file(cache_row, store.data_root),  # by fingerprint
                  f"its cache {cache_row['id']!r}")
    except PathOutsideRoot:
        raise
    except (CacheMismatch, OSError, ValueError) as exc:
        raise RequestInvalid("run_id", f"run {job.run_id!r}: {exc}") from None
    device = job.device or config.device
    try:
        check_device(device)
    except ValueError as exc:
        if job.device is not None:
            raise RequestInvalid("device", str(exc)) from None
        raise RequestInvalid("run_id", f"run {job.run_id!r} trained on device {device!r}: {str(exc).rstrip('.')} "
                             "(the request's \"device\"; default the run's)") from None
    counts, names = _kept("run_id", list(config.drop_classes or []), _class_counts(cache_row, store.data_root),
                          list(cache_row["class_names"]))
    if names != list(report.class_names):
        raise RequestInvalid("run_id", f"cache {cache_row['id']!r} has other classes than run {job.run_id!r}")
    pool = [sum(counts.get(split, [0] * len(names))[k] for split in ("train", "val")) for k in range(len(names))]
    try:
        folds, note = resolve_folds(pool, job.folds, names)
    except ValueError as exc:
        raise RequestInvalid("folds", str(exc)) from None
    return {"run_id": job.run_id, "folds": folds, "method": job.method, "device": device,
            **({"folds_note": note} if note else {})}


def validate_job(job: ExtractJob | LabelIssuesJob | PipelineJob | ProbeJob, store: Store, data_root: Path | None,
                 weights_path: Callable[[str], Path] | None = None) -> dict[str, Any]:
    """Check ``job`` completely and return the request to store (what the job will run).

    ``data_root``: the server's, which a data set registered by path must still lie under (403 otherwise).
    ``weights_path`` resolves an encoder weights file named by path (``mocov2:PATH``, ``openclip:ARCH:PATH``) or
    raises; the service passes its data root check, None (the local demo) takes the path as it is.

    Raises:
        app.status.NotFound: a data set, cache or run id that does not exist (404).
        app.datasets.PathOutsideRoot: a weights path outside the service's data root (403).
        RequestInvalid: anything else that would make the job fail (422).
    """
    if job.kind == "label_issues":
        return _label_issues(job, store)
    if job.kind == "probe":
        (config,) = _on_cache(store, job.cache_id, [("config", job.config, job.reference_run is not None)],
                              job.reference_run)
        return {"cache_id": job.cache_id, "config": config, "reference_run": job.reference_run}
    if job.kind == "pipeline" and job.cache_id is not None:  # the first probe is the others' reference
        _check_cache_encoder(job.encoder, store.get_cache(job.cache_id))
        probes = _on_cache(store, job.cache_id, [(f"probes[{i}]", p, i > 0) for i, p in enumerate(job.probes)])
        return {"cache_id": job.cache_id, "probes": probes, "reuse_reference": job.reuse_reference}
    dataset = store.get_dataset(job.dataset_id)
    try:  # the job would fail after its queue wait
        check_files(dataset, data_root)
    except PathMissing as exc:
        raise RequestInvalid("dataset_id", str(exc)) from None
    if is_unlabelled(dataset):
        _check_unlabelled(job, dataset["id"])
    split_field, counts, layout = _check_split_options(dataset, job.options, data_root)
    encoder, spec = _encoder(job.encoder, weights_path)
    payload = {"dataset_id": job.dataset_id, "encoder": encoder, "options": job.options.model_dump(mode="json")}
    if job.kind == "pipeline":
        fields = [(f"probes[{i}]", p, i > 0) for i, p in enumerate(job.probes)]  # the first: the others' reference
        drop = _one_drop(fields, list(dataset["class_names"]))
        counts, names = _kept("probes[0]", drop, counts, list(dataset["class_names"]))
        # a kept class without train or test images
        problem = classes_without_message(counts, names, layout=layout, location=dataset["path"])
        if problem:
            raise RequestInvalid(split_field, problem)
        payload["probes"] = _named([_probe(field, p, spec.default_head, spec.num_features, len(names), referenced)
                                    for field, p, referenced in fields], drop, list(dataset["class_names"]))
        for (field, _, referenced), probe in zip(fields, payload["probes"]):
            _check_validation(split_field, counts, probe, field, referenced, names)
        payload["reuse_reference"] = job.reuse_reference
    return payload
