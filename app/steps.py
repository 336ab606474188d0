"""The service's job kinds (extract, probe, pipeline; label_issues, :mod:`app.label_issues_job`) and the steps they
are made of.

A handler records each finished step with ``ctx.record`` as it goes, so a job resumed after an interruption
skips what is already done; extraction itself resumes from its last chunk through the resumable
``feature_cache.extract`` (a ``*.partial`` file next to the cache it will become). Every piece of state a
step leaves on disk is recorded in its own job's result first (``extraction``: the cache file it writes,
``pending_run``: the run directory), so cancelling one job never touches another job's files.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.label_issues import DEFAULT_METHOD

from .caches import cache_file, cache_problem
from .datasets import changed_since_registration, classes_without_message, dataset_counts, kept_problem, \
    open_for_extraction
from .jobs import JobCancelled, JobContext, JobKind, default_resource, device_resource
from .status import NotFound, job_no_room
from .store import left_out_json, new_id
from .cleanup import extractions_in_use, queued_heir
from .label_issues_job import KIND as LABEL_ISSUES
from .label_issues_job import discard_label_issues, handle_label_issues, label_issues_resource

if TYPE_CHECKING:
    from .config import Settings
    from .store import Store

logger = logging.getLogger(__name__)


def _slug(text: str) -> str:
    """A folder name for an encoder; long names (checkpoint paths) keep a prefix and a digest of the whole."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "encoder"
    return slug if len(slug) <= 120 else f"{slug[:100]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cache_dir_for(settings: Settings, dataset_id: str, encoder_name: str) -> Path:
    """Where the caches of one data set and encoder live (one folder each; a weights file's path left out of the
    name, ``feature_cache.fingerprint.extractor_name``: its caches are told apart by their weights' fingerprint)."""
    from feature_cache.fingerprint import extractor_name

    return settings.caches_dir / dataset_id / _slug(extractor_name(encoder_name))


def _extract_progress(ctx: JobContext, start: float, span: float) -> Callable[[int, int], None]:
    """``feature_cache.extract`` calls ``progress(done, total)`` after every chunk."""

    def hook(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        ctx.progress(start + span * min(max(frac, 0.0), 1.0), f"extracting features {done}/{total}")

    return hook


def _probe_progress(ctx: JobContext, start: float, span: float, name: str) -> Callable[[float, str], None]:
    """``probe.run_probe`` calls ``progress(fraction, stage)``."""

    def hook(fraction: float, stage: str = "") -> None:
        ctx.progress(start + span * min(max(float(fraction), 0.0), 1.0),
                     f"{name}: {stage}" if stage else f"training {name}")

    return hook


def _jsonable(value: Any) -> Any:
    """Plain JSON types from mappings / sequences / numpy scalars (for counts returned by libraries)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


# -- steps ---------------------------------------------------------------------------------------------
def extract_step(ctx: JobContext, dataset_id: str, encoder_name: str, options: dict[str, Any],
                 start: float = 0.0, span: float = 1.0, drop: list[str] | None = None) -> dict[str, Any]:
    """Extract (or reuse) the feature cache of a data set with one encoder; returns the cache row. ``drop``: the
    classes a pipeline's probes leave out (None: an extraction alone, which says of a class without a train or test
    image, as ``mr2probe extract`` does).

    Raises:
        feature_cache.DatasetError: a class the pipeline trains on has no train or test image (the data set's files
            changed since its request refused such a data set; said so, naming it), checked before anything is
            extracted; or every one of a class's train or test files failed to decode
            (``feature_cache.extract.check_decodable``, before a cache is written).
    """
    from feature_cache import DatasetError, ExtractionCancelled, create_encoder, extract, open_cache, plan_extraction
    from feature_cache.defaults import DEFAULT_VAL_FRACTION
    from feature_cache.options import cautions

    dataset = ctx.store.get_dataset(dataset_id)
    cache_dir = cache_dir_for(ctx.settings, dataset_id, encoder_name)
    cache_dir.mkdir(parents=True, exist_ok=True)
    device = ctx.settings.resolved_device()

    ctx.progress(start, "opening data set")
    data = open_for_extraction(dataset, options, ctx.settings.data_root)
    counts, names = dataset_counts(data), list(data.class_names)
    layout = data.params.get("layout")
    problem = (classes_without_message(counts, names, training=False, layout=layout, location=dataset["path"])
               if drop is None else kept_problem(counts, names, drop, layout, dataset["path"]))
    changed = changed_since_registration(dataset, data)
    if changed:
        ctx.message(changed)
    share = options.get("val_fraction", DEFAULT_VAL_FRACTION)  # the request's, with its default filled in
    for _, text in cautions(data, "options.val_fraction", None if share == DEFAULT_VAL_FRACTION else share):
        ctx.message(text)
    if problem and drop is None:
        ctx.message(f"warning: {problem}")
    elif problem:  # the request was checked against the data set: it lost images since (a line naming none of it)
        raise DatasetError(f"data set {dataset_id!r} changed since this job was requested: {problem}")
    ctx.check_stop()
    ctx.progress(start, f"building encoder {encoder_name}")
    encoder = create_encoder(encoder_name, device=device)
    ctx.message(f"encoder {encoder_name} ready ({encoder.num_features}-d features, device {device})")
    if encoder.warning:
        ctx.message(f"warning: {encoder.warning}")
    ctx.check_stop()
    plan = plan_extraction(data, encoder, cache_dir)
    registered = _registered_cache(ctx.store, _answering(plan))
    if registered is not None:
        _say_registered_reused(ctx, registered)
        ctx.progress(start + span, "features ready")
        return registered
    _record_extraction(ctx, plan)
    _say_why_not_reused(ctx, dataset_id, encoder_name, plan)
    try:
        result = _when_free(ctx, start, lambda: extract(
            data, encoder, cache_dir, batch_size=options.get("batch_size") or ctx.settings.extract_batch_size,
            workers=ctx.settings.extract_workers, device=device, progress=_extract_progress(ctx, start, span),
            should_stop=ctx.should_stop, show_progress=False, tune_allocator=True))  # the service's process
    except ExtractionCancelled as exc:
        if ctx.stop_reason == "cancel":  # an interrupted extraction keeps its partial file to resume
            _discard_cancelled(ctx.store, ctx.job_id, str(plan.path))
        raise JobCancelled(ctx.stop_reason or "cancel") from exc
    # a cancel that landed once the file was written or found (a reuse takes a moment) is honoured: the job ended
    # succeeded after "cancellation requested" (an attack round); the finished file stays, for a later extraction
    ctx.check_stop()
    cache = open_cache(result.path)
    row = ctx.store.add_cache(
        dataset_id=dataset_id, encoder=encoder_name, path=str(result.path), fingerprint=result.fingerprint,
        num_features=int(cache.num_features), class_names=list(cache.class_names),
        counts=_jsonable(result.counts), job_id=ctx.job_id, extractor=cache.extractor,
        layout=cache.layout)
    _say_extracted(ctx, row["id"], result, plan.partial_path.name)
    ctx.progress(start + span, "features ready")
    return row


def _say_extracted(ctx: JobContext, cache_id: str, result: Any, partial_name: str) -> None:
    """What an extraction (``result``, feature_cache.ExtractResult) did: the cache, the images encoded, a resumable
    file it discarded, the files it skipped and the photos whose EXIF rotation it did not apply."""
    from feature_cache import rotated_note, skipped_summary

    ctx.message(f"cache {cache_id} {'reused' if result.reused else 'written'}"
                + ("" if result.reused else
                   f" ({result.encoded} of {sum(dict(result.counts).values())} images encoded in this attempt)"))
    if result.discarded:  # said in the server's log alone, the job read as a plain extraction
        ctx.message(f"warning: the resumable file {partial_name} {result.discarded} and was discarded: "
                    f"all {result.encoded} images were encoded again")
    if result.skipped:
        ctx.message(skipped_summary(result.skipped))
    if result.rotated:
        ctx.message(rotated_note(result.rotated))


def _say_registered_reused(ctx: JobContext, registered: dict[str, Any]) -> None:
    """A registered cache reused: said, with what its extraction noted of EXIF-rotated photos (its ``rotated``
    attribute), as a cache the job writes or reuses itself and ``mr2probe extract`` say it (a reuse said nothing)."""
    from feature_cache import open_cache, rotated_note
    from feature_cache.extract import rotated_of

    ctx.message(f"cache {registered['id']} reused: a file registered by path holds these features")
    rotated = rotated_of(open_cache(cache_file(registered, ctx.settings.data_root)))
    if rotated:
        ctx.message(rotated_note(rotated))


EARLIER_CACHES_NAMED = 3  # at most this many earlier caches of a data set and encoder are said not to be reused


def _say_why_not_reused(ctx: JobContext, dataset_id: str, encoder_name: str, plan: Any) -> None:
    """Before extracting, name the earlier caches of the data set and encoder it does not reuse and the settings
    they differ in (:func:`feature_cache.extract.cache_differences`): after an upgrade that changed the
    preprocessing, a pipeline encoded every image again beside the old cache with nothing said of why."""
    from feature_cache import CacheMismatch, open_cache
    from feature_cache.extract import plan_differences

    if plan.path.exists():  # its own file: reused
        return
    answering = _answering(plan)  # a cache of one of them is reused, not named as one that is not
    marks = ", ".join("?" for _ in answering)
    rows = ctx.store.rows(f"SELECT id, path FROM caches WHERE dataset_id = ? AND encoder = ? AND fingerprint NOT IN "
                          f"({marks}) ORDER BY rowid DESC LIMIT ?", (dataset_id, encoder_name, *answering,
                                                                     EARLIER_CACHES_NAMED))
    for row in rows:
        try:
            differ = plan_differences(open_cache(row["path"]), plan)
        except (OSError, CacheMismatch):  # gone or damaged: nothing it could have answered
            continue
        if differ:
            ctx.message(f"cache {row['id']} of this data set and encoder is not reused: it differs in "
                        + "; ".join(differ))


def _answering(plan: Any) -> list[str]:
    """The fingerprints of the caches that answer an extraction's ``plan``: its own, then its ``reusable`` ones (the
    fp32 cache of a bf16 / fp16 request)."""
    return list(dict.fromkeys([plan.fingerprint, *(fingerprint for _, fingerprint in plan.reusable)]))


def _registered_cache(store: Store, fingerprints: list[str]) -> dict[str, Any] | None:
    """A cache registered by path that holds the features an extraction would write (one of its ``fingerprints``,
    :func:`_answering`), readable as it: the same request reuses it (an outside round's pipeline encoded the images
    of a registered torchrun-sharded cache again, into a second cache of the same fingerprint)."""
    from .caches import REGISTERED

    marks = ", ".join("?" for _ in fingerprints)
    rows = store.rows(f"SELECT * FROM caches WHERE fingerprint IN ({marks}) AND source = ? ORDER BY rowid",
                      (*fingerprints, REGISTERED))
    order = {fingerprint: i for i, fingerprint in enumerate(fingerprints)}
    rows.sort(key=lambda row: order[row["fingerprint"]])  # stable: by rowid within a fingerprint
    return next((row for row in rows if cache_problem(row, store.data_root) is None), None)


# A job's stage from its encoder's build to its first written batch (then "extracting features DONE/TOTAL"), and while
# it waits for another job's extraction of the same features: 64 phone photos take 10-30 s on a CPU, which the stage
# spent on "building encoder", the encoder long built (a new-user round)
EXTRACTING_FIRST_BATCH = "extracting features: decoding and encoding the first batch"
WAITING_FOR_EXTRACTION = "waiting for another job's extraction of these features"
BUSY_POLL_SECONDS = 2.0  # how often a job waiting for another's extraction of the same cache file tries again


def _when_free(ctx: JobContext, start: float, extraction: Callable[[], Any]) -> Any:
    """``extraction()``; while another job or process extracts the same cache file (``ExtractionBusy``), wait for
    it, polling for a cancel, and call it again: it then reuses that cache, or resumes its partial file. The second
    of two jobs needing the same new features failed instead (found by an outside attack round). A full disk or a
    file-size limit is said as such (:func:`app.status.job_no_room`)."""
    from feature_cache import ExtractionBusy

    waiting = False
    while True:
        ctx.progress(start, EXTRACTING_FIRST_BATCH)
        try:
            with job_no_room("the feature cache", "the features extracted so far are kept for the resume"):
                return extraction()
        except ExtractionBusy:
            ctx.progress(start, WAITING_FOR_EXTRACTION)
            if not waiting:
                ctx.message("another job is extracting these features; waiting for it, to reuse its cache")
                waiting = True
            # its slot runs a queued job meanwhile: a probe queued behind the waiting job waited for the whole
            # extraction, a slot of MR2PROBE_CPU_JOBS doing nothing (an isolation round)
            with ctx.idle():
                ctx.stop_event.wait(BUSY_POLL_SECONDS)  # a cancel or an interrupt wakes it at once
            ctx.check_stop()


def _summary_line(run_id: str, summary: dict[str, Any], verdict: str = "not_applicable",
                  test_check: str | None = None, posthoc: str | None = None) -> str:
    """The job message of a finished run: its test accuracies, and the disparity-aware decision where one was made
    (so that a run equal to its reference does not read like a copy of it), or what a post-hoc bias run's guard did
    (``posthoc``: probe.report.Posthoc.outcome; its line said nothing of it, a new-user round)."""
    from probe.numbers import interval_text, percent

    def fmt(key: str, ci: list | None) -> str:
        value = summary.get(key)
        if not isinstance(value, (int, float)):
            return "n/a"
        # percent, as every view, with its 95 % interval where the summary has one (a dashboard-only round)
        return f"{percent(value)} %" + (f" {interval_text(ci)}" if ci else "")

    from probe.report import POSTHOC_WORDS, TEST_CHECKS, VERDICT_WORDS

    note = (VERDICT_WORDS[verdict].detail if verdict in VERDICT_WORDS else
            f"{POSTHOC_WORDS[posthoc].label}: {POSTHOC_WORDS[posthoc].detail}" if posthoc in POSTHOC_WORDS else None)
    if note and verdict == "improved" and test_check in TEST_CHECKS and test_check != "holds":
        note += f"; {TEST_CHECKS[test_check].text}"  # the job's line read as a success (a new-user round)
    hard_ci = (summary.get("group_ci") or {}).get("hard")
    return (f"run {run_id}: overall {fmt('overall', summary.get('overall_ci'))}, hard {fmt('hard', hard_ci)}"
            + (f" ({note})" if note else ""))


def job_what(kind: str, request: dict[str, Any], result: dict[str, Any] | None = None) -> str:
    """What a job was asked to do, in a line: its data set or cache, its encoder and the probes it trains, by the
    names their runs get (a cancelled job's page said only its status and three log lines; a dashboard-only
    round), with the folds each cross-validated, once known (``cv_folds`` in its ``result``: a job asked for 20
    that ran 8 read "cv 20")."""
    from probe import ProbeConfig

    if kind == LABEL_ISSUES and isinstance(request.get("run_id"), str):
        method = request.get("method")
        return (f"likely wrong labels of run {request['run_id']} ({request.get('folds')} folds"
                + (f", {method})" if method not in (None, DEFAULT_METHOD) else ")"))
    source = (f"cache {request['cache_id']}" if request.get("cache_id")
              else f"data set {request['dataset_id']}" if request.get("dataset_id") else "")
    encoder = f", encoder {request['encoder']}" if kind != "probe" and request.get("encoder") else ""
    configs = request.get("probes") or ([request["config"]] if isinstance(request.get("config"), dict) else [])
    folds = (result or {}).get("cv_folds") or {}
    try:  # a config stored before heads were resolved at submission has none: "the encoder's head", not linear
        cfgs = [ProbeConfig.model_validate(c) if "head" in c else
                ProbeConfig.model_validate(c).model_copy(update={"head": "default head"}) for c in configs]
        names = [run_name(cfg, cv_folds=folds.get(run_name(cfg))) for cfg in cfgs]
    except (ValueError, TypeError):  # a request stored by other code: its probes not named (never a 500)
        names = []
    probes = f": {', then '.join(names)}" if names else ""
    return f"{kind} on {source}{encoder}{probes}" if source else kind


def run_name(cfg: Any, kept: dict[str, Any] | None = None, posthoc_applied: bool | None = None,
             temperature_applied: bool | None = None, cv_folds: int | None = None) -> str:
    """A run's name in the runs list: its preset, loss and head, and the choices that tell two runs of one data set
    apart (a budget, balanced accuracy, the post-hoc bias, temperature scaling, epochs and folds set by hand; two
    disparity runs were both "ce/linear (kept: ...)", and a post-hoc bias run and ERM runs of other epochs all
    "ce/linear"; new-user and dashboard-only rounds). ``kept``: the configuration the run ended as (its report's ``config``), where it kept
    the reference's: its loss and head are named, and what was tried (a runs list naming only the loss, or the
    head, it tried read as if the run were that probe; outside rounds). ``posthoc_applied``: whether the shipped
    (first) seed's post-hoc bias was applied (None: not known yet, before the run); ``temperature_applied``,
    whether its temperature was (a run whose T was not applied read "temperature-scaled"; a review round).
    ``cv_folds``: the folds its cross-validation ran (its report's ``selection.cv``; 0 where none ran, the
    validation split scoring the candidates), said where fewer than asked (lowered to the smallest class's count: a
    run asked for 20 read "cv 20" while it ran 8, and one whose validation split was large enough also "cv 20")."""
    from probe import DEFAULT_CV_FOLDS

    loss, head = (kept or {}).get("loss", cfg.loss), (kept or {}).get("head", cfg.head)
    name = f"{cfg.preset}: {loss}/{head}" if cfg.preset else f"{loss}/{head}"
    if cfg.posthoc_bias:
        name += " + post-hoc bias"
    tried = cfg.loss if head == cfg.head else f"{cfg.loss}/{cfg.head}"
    notes = [f"kept: {tried} found no safe improvement"] if (loss, head) != (cfg.loss, cfg.head) else []
    if cfg.posthoc_bias:
        notes += ["unguarded" if not cfg.posthoc_guard else "guard: applied" if posthoc_applied
                  else "guard: not applied" if posthoc_applied is False else "guarded"]
    notes += [("temperature: not applied" if temperature_applied is False else "temperature-scaled")
              ] if cfg.temperature_scaling else []
    notes += [f"budget {cfg.max_overall_drop:g} pt"] if cfg.max_overall_drop else []
    notes += ["balanced"] if cfg.overall_metric == "balanced" else []
    notes += [f"{cfg.epochs} epochs"] if cfg.epochs else []
    ran = cfg.cv if cv_folds is None else cv_folds  # not known yet: as asked
    if cfg.cv == 0:
        notes += ["no cross-validation"]
    elif ran == 0:  # the default's asked folds unsaid, as most runs (a large enough validation split) run none
        notes += [f"no cross-validation, cv {cfg.cv} asked"] if cfg.cv != DEFAULT_CV_FOLDS else []
    elif cfg.cv != DEFAULT_CV_FOLDS or ran != cfg.cv:
        notes += [f"cv {cfg.cv}" if ran == cfg.cv else f"cv {ran} of {cfg.cv} asked"]
    return name + (f" ({'; '.join(notes)})" if notes else "")


def probe_step(ctx: JobContext, cache_id: str, config: dict[str, Any], reference_run: str | None,
               start: float = 0.0, span: float = 1.0) -> dict[str, Any]:
    """Train one probe on a cache, write its report and record the run; returns the run row.

    ``config`` is the validated :class:`probe.ProbeConfig` stored with the job (see
    :func:`app.validation.resolve_probe_config`). The run row is written last, once the report is on disk,
    so a failed probe leaves no run; a resumed job whose run row exists already gets that row back, and one whose
    run was written whole before the last attempt was killed records it (:func:`_written_before`).
    """
    from feature_cache import open_cache
    from probe import ProbeConfig, run_probe

    pending = ctx.result().get("pending_run")
    recorded = pending and _recorded(ctx.store, pending)
    if recorded:
        return recorded  # recorded just before the last attempt stopped
    cache_row = ctx.store.get_cache(cache_id)
    cache = open_cache(cache_file(cache_row, ctx.settings.data_root))
    if "head" in config:
        cfg = ProbeConfig.model_validate(config)
    else:  # a request stored before configs were resolved at submission (resumed after an upgrade)
        from .validation import resolve_probe_config

        cfg = resolve_probe_config(config, cache.default_head)
    if cfg.device == "auto":  # the service's device, where the job's slot is (probe_resource): run_probe's own
        cfg = cfg.model_copy(update={"device": ctx.settings.resolved_device()})  # took a GPU from a "cpu" job
    reference = _checked_reference(ctx, cache_row, cfg.drop_classes, reference_run) if reference_run else None
    report = pending and _written_before(ctx, pending, cache.fingerprint)
    if report:
        ctx.message(f"run {pending} was written whole before the job stopped: recorded, not trained again")
        return _record_run(ctx, pending, cfg, config, report, cache_row, reference_run, start + span)
    data = cache.training_data()  # the stored dtype, as mr2probe train reads it (float16: half the memory)
    if "train" not in data or "test" not in data:
        raise ValueError(f"cache {cache_id!r} needs train and test splits; it has {sorted(cache.splits)}")

    run_id = new_id("run")
    out_dir = ctx.settings.runs_dir / run_id
    ctx.record(pending_run=run_id)
    name = run_name(cfg)
    ctx.message(f"training probe {name} on cache {cache_id}"
                + (f" (groups from reference run {reference_run})" if reference_run else ""))
    try:
        with job_no_room("the run's files", "nothing of the run is kept"):
            report = run_probe(data, list(cache.class_names), cfg, reference=reference, out_dir=out_dir,
                               progress=_probe_progress(ctx, start, span, name), should_stop=ctx.should_stop,
                               sources=cache.training_sources(), contents=cache.training_digests(),
                               features=cache.provenance(cache_id), tune_allocator=True)  # the service's process
        ctx.check_stop()
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)  # a half-written run directory is never a run
        ctx.record(pending_run=None)
        if ctx.should_stop():
            raise JobCancelled(ctx.stop_reason or "cancel") from None
        raise
    return _record_run(ctx, run_id, cfg, config, report, cache_row, reference_run, start + span)


def _record_run(ctx: JobContext, run_id: str, cfg: Any, config: dict[str, Any], report: Any,
                cache_row: dict[str, Any], reference_run: str | None, done: float) -> dict[str, Any]:
    """The run row of the run ``run_id`` whose ``report`` is on disk (trained with ``cfg``, the job's ``config``),
    said in the job's messages; its progress at ``done``."""
    from probe.compare import probe_words

    summary = report.summary.model_dump(mode="json")
    scaling = report.temperature_scaling
    folds = 0 if report.selection.cv is None else report.selection.cv.folds  # 0: the validation split scored
    name = run_name(cfg, report.config, None if report.posthoc is None else report.posthoc.shipped_applied(),
                    None if scaling is None else scaling.applied, folds)
    row = ctx.store.add_run(run_id=run_id, job_id=ctx.job_id, cache_id=cache_row["id"], name=name,
                            head=report.config.get("head", cfg.head),
                            loss=report.config.get("loss", cfg.loss), reference_run=reference_run,
                            path=str(ctx.settings.runs_dir / run_id), summary=summary,
                            verdict=report.selection.verdict, test_check=report.selection.test_check,
                            cache_stamp=cache_row.get("stamp"), probe=probe_words(report),
                            posthoc=None if report.posthoc is None else report.posthoc.outcome(),
                            left_out=left_out_json(report.config),
                            reference_config=config if reference_run is None else None)
    # the folds it ran (0: none), by the name it was asked as (job_what)
    ctx.record(cv_folds={**(ctx.result().get("cv_folds") or {}), run_name(cfg): folds})
    ctx.message(_summary_line(run_id, summary, report.selection.verdict, report.selection.test_check,
                              None if report.posthoc is None else report.posthoc.outcome()))
    ctx.progress(done, f"{name} done")
    return row


def _checked_reference(ctx: JobContext, cache_row: dict[str, Any], drop: list[str], reference_run: str) -> Any:
    """The reference run's report, checked again as at submission (:func:`app.validation.check_reference`): one
    replaced or removed during the queue wait failed the job with the training's 'reference run has different
    classes than this run', or a 'no report.json at ...', naming neither the run nor what changed."""
    from probe.splits import kept_classes

    from .validation import RequestInvalid, check_reference

    names = list(cache_row["class_names"])
    kept = [names[k] for k in kept_classes(drop, names)]
    try:
        return check_reference(ctx.store.get_run(reference_run), cache_row, kept, drop, ctx.settings.data_root)
    except RequestInvalid as exc:
        if exc.field != "reference_run":  # its cache, which names itself
            raise ValueError(exc.message) from None
        raise ValueError(f"reference run {reference_run!r} changed after this job was queued: {exc.message}") from None


# -- handlers ------------------------------------------------------------------------------------------
def handle_extract(ctx: JobContext) -> dict[str, Any]:
    req = ctx.request
    cache = extract_step(ctx, req["dataset_id"], req["encoder"], req.get("options") or {})
    return {"cache_id": cache["id"]}


def handle_probe(ctx: JobContext) -> dict[str, Any]:
    req = ctx.request
    run = probe_step(ctx, req["cache_id"], req["config"], req.get("reference_run"))
    ctx.record(run_ids=[run["id"]], pending_run=None)
    return {"run_ids": [run["id"]]}


def handle_pipeline(ctx: JobContext) -> dict[str, Any]:
    """Extraction (unless the request names a cache), then each probe in order; the first probe (ERM) is the
    others' reference run."""
    req = ctx.request
    done = ctx.result()
    probes: list[dict[str, Any]] = req["probes"]
    given = req.get("cache_id")  # the probes on a cache there already: no extraction
    extract_span = 0.0 if given else 0.5
    probe_span = (1.0 - extract_span) / len(probes)
    cache_id = done.get("cache_id") or given
    if cache_id is None:
        cache_id = extract_step(ctx, req["dataset_id"], req["encoder"], req.get("options") or {},
                                0.0, extract_span, list(probes[0].get("drop_classes") or []))["id"]
        ctx.record(cache_id=cache_id)
    elif given is None:
        ctx.message(f"resuming after extraction (cache {cache_id})")
    run_ids: list[str] = list(done.get("run_ids") or [])
    for i, config in enumerate(probes):
        if i < len(run_ids):
            continue
        ctx.check_stop()
        start = extract_span + i * probe_span
        if i == 0:
            run = _reference_step(ctx, cache_id, config, req.get("reuse_reference", True), start, probe_span)
        else:
            run = probe_step(ctx, cache_id, config, run_ids[0], start, probe_span)
        run_ids.append(run["id"])
        ctx.record(run_ids=run_ids, pending_run=None)
    return {"cache_id": cache_id, "run_ids": run_ids}


def trained_as_reference(run: dict[str, Any]) -> dict[str, Any] | None:
    """The stored configuration ``run`` was trained with as its job's reference (a probe job without a reference
    run, or a pipeline's first probe), as its row records it (``reference_config``, which a removal of the job's
    record keeps; filled for the rows of an older database from their jobs' records when it is opened); None where
    the run was not one."""
    return json.loads(run["reference_config"]) if run.get("reference_config") else None


def _reference_step(ctx: JobContext, cache_id: str, config: dict[str, Any], reuse: bool, start: float,
                    span: float) -> dict[str, Any]:
    """A pipeline's reference run: when ``reuse``, one an earlier job trained (:func:`_reusable_reference`), or
    one another running pipeline is training now with the same configuration on the same cache (this job waits
    for it: two pipelines started together, ``MR2PROBE_CPU_JOBS`` > 1, each trained the same ERM run), else a new
    one."""
    passed_over: list[dict[str, Any]] = []
    waiting = False
    while reuse:
        stamp = ctx.store.get_cache(cache_id).get("stamp")  # a file registered again with other values: not reused
        run = _reusable_reference(ctx, cache_id, stamp, config, passed_over)
        if run is not None:
            ctx.progress(start + span, f"{run['name']} reused")
            return run
        holder = ctx.store.claim_result(ctx.job_id, "training_reference", _reference_key(cache_id, stamp, config))
        if holder is None:
            break
        if not waiting:
            ctx.message(f"reference: job {holder} is training this configuration on cache {cache_id}; waiting for "
                        "it, to reuse its run")
            waiting = True
        with ctx.idle():  # its slot runs a queued job meanwhile
            ctx.stop_event.wait(BUSY_POLL_SECONDS)
        ctx.check_stop()
    if passed_over:  # said: a second identical run had appeared without a word (a dashboard-only round)
        ctx.message(f"reference: run {passed_over[0]['id']} ({passed_over[0]['name']}) trained this configuration on "
                    f"cache {cache_id}, but its report was written by other code (before an upgrade) or cannot be "
                    "read: trained again")
    return probe_step(ctx, cache_id, config, None, start, span)


def _reference_key(cache_id: str, stamp: str | None, config: dict[str, Any]) -> str:
    """What a pipeline training a reference claims (``Store.claim_result``): the cache, its file's stamp and the
    configuration."""
    text = json.dumps([cache_id, stamp, config], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _reusable_reference(ctx: JobContext, cache_id: str, stamp: str | None, config: dict[str, Any],
                        passed_over: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest finished run on this cache that its job trained with this very configuration as its reference
    (relaunching a pipeline with another second probe trained an identical ERM run each time), it read the cache's
    file as it is now (its ``cache_stamp`` is ``stamp``: a registered file written over with other values and
    registered again kept its cache and runs; an attack round) and its report loads and was written by this code
    (``probe.report.code_digest``; one that does not is added to ``passed_over``). The run is recorded as this
    job's before it is checked to be still there, so that a deletion between the two waits for the job (409) or is
    seen here (a review)."""
    for run in ctx.store.reference_runs(cache_id):
        if run.get("cache_stamp") == stamp and trained_as_reference(run) == config:
            if not _current_report(run):
                passed_over.extend([run] if run not in passed_over else [])
                continue
            ctx.record(run_ids=[run["id"]])
            try:
                ctx.store.get_run(run["id"])
            except NotFound:  # deleted before it was recorded: train one
                ctx.record(run_ids=[])
                return None
            ctx.message(f"reference: run {run['id']} ({run['name']}) trained this configuration on cache {cache_id} "
                        "already: reused, not trained again (a job request with reuse_reference=false trains it "
                        "again)")
            return run
    return None


def _current_report(run: dict[str, Any]) -> bool:
    """Whether a run's report loads and was written by this code (a damaged report.json was reused, and the
    pipeline then failed; a review)."""
    from probe import load_report
    from probe.report import code_digest

    try:
        return load_report(run["path"]).code == code_digest()
    except (OSError, ValueError):
        return False


def _record_extraction(ctx: JobContext, plan: Any) -> None:
    """Record the cache file this job's extraction (``plan``, feature_cache.ExtractionPlan) writes (a cancel removes
    its partial file and no other). A resumed job whose data set changed since it was interrupted plans another file
    (a new fingerprint): the partial and lock files of the one it recorded before are discarded, unless another job
    uses them. So is one an older version started with the same images under other settings (one of the plan's
    ``reusable`` files: every image decoded whole, or another precision), said so: it read 'the images to extract
    changed' (an upgrade round)."""
    target = str(plan.path)
    before = ctx.store.get_job(ctx.job_id)["result"].get("extraction")
    ctx.record(extraction=target)
    if before and before != target:
        names = f"cache {Path(target).name}, was {Path(before).name}"
        if Path(before).name in {Path(path).name for path, _ in plan.reusable}:
            ctx.message(f"this job's last attempt extracted the same images under other settings (an earlier "
                        f"version's whole-image decode, or another precision; {names}): its earlier partial "
                        "extraction is discarded and the extraction starts again")
        else:
            ctx.message(f"the images to extract changed since this job's last attempt ({names}): its earlier "
                        "partial extraction is discarded")
        _discard_unless_in_use(ctx.store, ctx.job_id, before)


def discard_extraction(job: dict[str, Any], store: Store, settings: Settings) -> None:
    """On cancelling a queued or interrupted job: remove the partial file of the extraction it started."""
    target = job["result"].get("extraction")
    if target and "cache_id" not in job["result"]:
        _discard_cancelled(store, job["id"], target)


def _recorded(store: Store, run_id: str) -> dict[str, Any] | None:
    """The row of the run ``run_id``, None where none was recorded."""
    try:
        return store.get_run(run_id)
    except KeyError:
        return None


def _written_before(ctx: JobContext, run_id: str, fingerprint: str) -> Any | None:
    """The report of the run ``run_id`` that an earlier attempt of this job wrote whole and was killed before it
    recorded (it trained again); else None, what that attempt left removed. The run is this job's: its id, new, was
    recorded in the job's result before the training wrote it (``pending_run``); it is whole once its report.json
    is in, moved in last (:mod:`probe.rundir`; ``load_report`` finishes a committed move); and it was trained on
    the features of the cache's ``fingerprint``."""
    from probe import load_report

    from .removal import remove_under

    folder = ctx.settings.runs_dir / run_id
    try:
        report = load_report(folder)
    except (OSError, ValueError):
        report = None
    if report is not None and report.features is not None and report.features.fingerprint == fingerprint:
        return report
    remove_under(folder, ctx.settings.runs_dir)
    return None


def _recorded_or_removed(store: Store, settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run ``run_id`` a job started: its row when it was recorded, else None, its half-written folder removed."""
    from .removal import remove_under

    row = _recorded(store, run_id)
    if row is None:
        remove_under(settings.runs_dir / run_id, settings.runs_dir)
    return row


def discard_pending_run(job: dict[str, Any], store: Store, settings: Settings) -> None:
    """On cancelling a queued or interrupted job: the run it had started (``pending_run``). Half-written (no run
    row: left for a resume, which the cancel gives up), its folder is removed; recorded just before the stop (its
    report and head complete), it is kept and listed in the job's ``run_ids``. A cancelled job kept its folder for
    good, and one whose run was recorded did not list it (an operator round)."""
    pending = job["result"].get("pending_run")
    if not pending:
        return
    if _recorded_or_removed(store, settings, pending) is None:
        store.update_result(job["id"], pending_run=None)
        return
    run_ids = list(job["result"].get("run_ids") or [])
    store.update_result(job["id"], run_ids=run_ids + [pending] * (pending not in run_ids), pending_run=None)
    store.add_message(job["id"], f"run {pending} was recorded before the job stopped: kept, with its report")


def discard_pipeline(job: dict[str, Any], store: Store, settings: Settings) -> None:
    """On cancelling a queued or interrupted pipeline: its extraction's partial file and its started run."""
    discard_extraction(job, store, settings)
    discard_pending_run(job, store, settings)


def _discard_cancelled(store: Store, job_id: str, target: str) -> None:
    """A cancelled job's partial extraction: handed to a queued job of the same extraction that has not started
    (recorded as its own: it resumes from it, and a cancel of it removes it), else
    :func:`_discard_unless_in_use`."""
    heir = queued_heir(store, job_id)
    if heir is None:
        _discard_unless_in_use(store, job_id, target)
    else:
        store.update_result(heir, extraction=target)
        logger.info("job %s: %s left to queued job %s of the same extraction", job_id, target, heir)


def _discard_unless_in_use(store: Store, job_id: str, target: str) -> None:
    """Remove the partial file of a cancelled job's extraction, unless another job still owns it (an interrupted
    job that resumes from it, a queued one, one extracting it right now)."""
    from feature_cache import discard_partial

    if target in extractions_in_use(store, besides=job_id):
        logger.info("job %s: %s belongs to another job too; left to it", job_id, target)
    elif not discard_partial(target):
        logger.info("job %s: %s is being extracted by another job now; left to it", job_id, target)


def probe_resource(request: dict[str, Any], device: str) -> str:
    """A probe job holds the GPU when its config names a CUDA device (``auto``: the service's device, which
    :func:`probe_step` then trains on)."""
    return device_resource((request.get("config") or {}).get("device"), device)


JOB_KINDS: dict[str, JobKind] = {
    "extract": JobKind(handle_extract, default_resource, discard_extraction),
    "probe": JobKind(handle_probe, probe_resource, discard_pending_run),
    "pipeline": JobKind(handle_pipeline, default_resource, discard_pipeline),
    LABEL_ISSUES: JobKind(handle_label_issues, label_issues_resource, discard_label_issues),
}
