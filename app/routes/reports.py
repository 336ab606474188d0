"""``/api/runs`` (list, get, delete; + ``/{run_id}/failures``, ``/near-duplicates``, ``/probe.zip``, ``/scores``,
``/predictions.csv``), ``/api/reports/{run_id}`` (+ ``.csv``, ``.html``, ``.md``) and ``/api/compare`` (+ ``.html``,
``.md``)."""
from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import StringConstraints

from probe import Comparison, Report
from probe.report import SEED_METRICS
from probe.compare_many import ManyComparison

from ..caches import cache_file
from ..config import Settings, get_settings
from ..datasets import is_unlabelled
from ..kept import Kept, file_identity
from ..deps import TOTAL_COUNT, Page, get_store, in_slot, offset_query, page, set_total
from ..removal import delete
from .datasets import thumbnail_url
from ..schemas import (BODY_TOO_LARGE, DELETE_RESPONSES, DRY_RUN, ERROR_RESPONSES, MAX_ID, DeletedOut, FailuresOut,
                       IdPath, LabelIssuesMethod, LabelIssuesOut, NearDuplicatesOut, PredictedOut, RunDetailOut, RunOut,
                       RunUpdate, ScoresOut, download)
from ..store import Store

if TYPE_CHECKING:
    from probe.export import RunsContext

router = APIRouter(tags=["reports"])

# Scoring a probe on a cache and comparing two runs read whole splits and bootstrap them (seconds on a large
# cache): at most this many run at once, each in a thread of its own; the others wait for a slot without holding
# a thread, so that a burst of them cannot take every worker thread (and /api/health with them).
SCORING_SLOTS = 2


async def _in_scoring_slot(request: Request, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread once one of the ``SCORING_SLOTS`` is free."""
    return await in_slot(request, "scoring_limiter", SCORING_SLOTS, fn, *args)


def _report(store: Store, run_id: str) -> Report:
    from probe import load_report

    run = store.get_run(run_id)
    try:
        report = load_report(run["path"])
    except FileNotFoundError:
        raise HTTPException(404, f"report of run {run_id!r} is missing on disk ({run['path']})") from None
    except ValueError as exc:  # damaged on disk: not JSON, another schema, fields that do not validate
        raise HTTPException(422, f"report of run {run_id!r} cannot be read: {exc}") from None
    report.run_id = report.run_id or run_id
    return report


RunsOfCache = Query(None, min_length=1, max_length=MAX_ID, description="only the runs on this cache (its id)")
NEWEST = "newest"
RunOrder = Literal[(NEWEST, *SEED_METRICS)]
SortQuery = Query(NEWEST, description="newest first, or the highest test accuracy of a summary metric first (the "
                  "worst class: its accuracy), runs without it last: the best runs of a server past a listing's cut")


OrderQuery = Query("desc", description="with a metric's sort: desc, the highest first, or asc, the lowest first (runs "
                  "without it last either way); newest first ignores it")


def _summary_path(metric: str) -> str | None:
    """The JSON path of a runs list's sort metric in a run's summary (None: newest first)."""
    return None if metric == NEWEST else "$.worst_class.accuracy" if metric == "worst_class" else f"$.{metric}"


@router.get("/runs", response_model=list[RunOut], responses={200: {"headers": TOTAL_COUNT}},
            summary="Probe runs, newest first or best first (X-Total-Count: all of them, on the cache asked)")
def list_runs(response: Response, window: Page = Depends(page), cache_id: str | None = RunsOfCache,
              sort: RunOrder = SortQuery, order: Literal["desc", "asc"] = OrderQuery,
              store: Store = Depends(get_store)) -> list[RunOut]:
    """``?cache_id=``: the runs a run can be compared with (its cache's), which the run page read out of every run
    of the server, cut at the newest 5,000 (an operator round). ``?sort=``: the best runs by a metric, which only a
    read of every page found; ``?order=asc``: the worst first (the dashboard's sort of a list past its cut)."""
    with store.snapshot():
        set_total(response, store.count_runs(cache_id))
        rows = store.list_runs(window.limit, window.offset, cache_id, _summary_path(sort), order == "asc")
    return [RunOut(**{k: r[k] for k in RunOut.model_fields}) for r in rows]


MAX_FAILURES = 200  # samples per request of /runs/{id}/failures and /runs/{id}/scores/failures
ClassQuery = Query(..., alias="class", min_length=1, max_length=200, description="class name, as in the report")
EveryClassQuery = Query(None, alias="class", min_length=1, max_length=200,
                        description="class name, as in the report; without it, every class's mistakes in one ranking")
PredictedQuery = Query(None, min_length=1, max_length=200,
                       description="only the mistakes predicted as this class (one cell of the confusion matrix)")
LimitQuery = Query(24, ge=1, le=MAX_FAILURES)
SplitQuery = Query("test", pattern="^(train|val|test)$", description="the cache's split")
CacheQuery = Query(..., min_length=1, max_length=MAX_ID, description="cache id, e.g. of another data set's images")


@router.get("/runs/{run_id}/failures", response_model=FailuresOut, responses=ERROR_RESPONSES,
            summary="A class's (without class, every class's) misclassified test samples (first seed), most "
                    "confidently wrong first: the lowest probability of their own label first")
def failures(run_id: IdPath, class_name: str | None = EveryClassQuery, predicted: str | None = PredictedQuery,
             limit: int = LimitQuery, store: Store = Depends(get_store)) -> FailuresOut:
    from feature_cache import open_cache
    from probe.splits import cache_test_rows
    from probe.rundir import read_run

    run = store.get_run(run_id)
    report, predictions = read_run(run["path"], lambda: _with_predictions(store, run))  # of one run
    index, target = _cell(report.class_names, class_name, predicted, lambda: report.config.get("drop_classes"))
    # opened once for the rows of a run that left classes out and for the thumbnails' digests
    cache = lru_cache(maxsize=1)(lambda: open_cache(cache_file(store.get_cache(run["cache_id"]), store.data_root)))
    rows = cache_test_rows(predictions.failure_rows(index, report.class_names, limit, target), report.config, cache)
    rows = _with_thumbnails(rows, store, run["cache_id"], "test", cache)
    return FailuresOut(run_id=run_id, class_name=class_name, predicted=predicted,
                       total=len(predictions.failures(index, predicted=target)), items=rows)


def _with_predictions(store: Store, run: dict) -> tuple[Report, Any]:
    """The run's report and stored test predictions; 404 without them, 422 damaged on disk."""
    from probe.predictions import Predictions

    report = _report(store, run["id"])
    try:
        return report, Predictions.load(run["path"], len(report.class_names))
    except FileNotFoundError:
        raise HTTPException(404, f"run {run['id']!r} has no stored test predictions (it predates them); "
                                 "re-run it to browse its failures") from None
    except ValueError as exc:  # damaged on disk
        raise HTTPException(422, str(exc)) from None


def _cell(class_names: list[str], class_name: str | None, predicted: str | None,
          left_out: Callable[[], list[str] | None] = lambda: None) -> tuple[int | None, int | None]:
    """``probe.report_text.confusion_cell`` of the query's class names; 422 naming the one that is not a class (or
    one of the classes the run left out, ``left_out()``, read only then: a label-issues page reads no report)."""
    from probe.report_text import confusion_cell

    fields = ("class:", "predicted:")
    try:
        return confusion_cell(class_names, class_name, predicted, fields)
    except ValueError:
        pass
    try:
        return confusion_cell(class_names, class_name, predicted, fields, left_out() or ())
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _left_out(store: Store, run_id: str) -> list[str] | None:
    """The classes the run left out (its report's ``drop_classes``); None where its report cannot be read."""
    from probe import load_report

    try:
        return load_report(store.get_run(run_id)["path"]).config.get("drop_classes")
    except (OSError, ValueError):
        return None


def _with_thumbnails(rows: list[dict], store: Store, cache_id: str, split: str,
                     cache: Callable[[], Any] | None = None) -> list[dict]:
    """Listed rows with the thumbnail URL (:func:`_thumbnails`) of each image that names its source in the data set;
    each row's image is its ``row`` (else ``index``) of its ``split`` (else ``split``) in the cache ``cache_id``
    (``cache``: the caller's opener of its file, :func:`_row_digests`)."""
    from probe.splits import cache_place

    places = [cache_place(row, split) for row in rows]
    thumbnail = _thumbnails(store, cache_id, places, cache=cache)
    for row, place in zip(rows, places):
        url = thumbnail(row["source"], *place)
        if url is not None:
            row["thumbnail_url"] = url
    return rows


def _thumbnails(store: Store, cache_id: str, wanted: list[tuple[str, int]], drop: list[str] | None = None,
                cache: Callable[[], Any] | None = None) -> Callable[..., str | None]:
    """The thumbnail URL of the image ``source`` at (split, row) of ``wanted`` in the cache: of the cache's data set,
    with the content digest the cache recorded at that row where it keeps one and its source there is ``source``,
    so that a file replaced since the extraction is refused (409) rather than shown as the image the cache encoded
    and its runs scored (a review); None for a cache the service does not know (registered outside it) or an image
    without a source. Only the rows listed are read (a label-issues page of a 1.28M-image cache read every source).
    ``drop``: the classes the run left out, where ``wanted``'s rows are the run's; ``cache``: see
    :func:`_row_digests`."""
    try:
        row = store.get_cache(cache_id)
    except KeyError:
        return lambda source, split, index: None
    known = _row_digests(row, store.data_root, wanted, drop, cache)

    def url(source: str | None, split: str, index: int) -> str | None:
        found = known.get((split, index))  # a row whose source is another (a run's rows mapped wrong): no digest
        return thumbnail_url(row["dataset_id"], source, found[1] if found and found[0] == source else None)
    return url


def _row_digests(cache_row: dict, data_root: Path | None, wanted: list[tuple[str, int]], drop: list[str] | None = None,
                 cache: Callable[[], Any] | None = None) -> dict[tuple[str, int], tuple[str, bytes]]:
    """``FeatureCache.row_digests`` of each split's rows of ``wanted`` in the cache of ``cache_row``, by (split, row);
    with ``drop``, the rows are those of the run that left those classes out, each read at its row of the cache
    (``probe.splits.kept_rows``: a near-duplicate pair's rows are the run's, and got no digest). {} where the file
    cannot be read (gone, moved, replaced: the listing is still given, its thumbnails shown as the files are).
    ``cache``: what opens that file, where the caller opens it too (else it is opened here)."""
    from feature_cache import open_cache
    from probe.splits import kept_rows

    by_split: dict[str, list[int]] = {}
    for split, index in wanted:
        by_split.setdefault(split, []).append(index)
    found: dict[tuple[str, int], tuple[str, bytes]] = {}
    try:
        opened = cache() if cache is not None else open_cache(cache_file(cache_row, data_root))
        for split in set(by_split) & set(opened.splits):
            given = kept_rows(opened.labels(split), opened.class_names, drop) if drop else None
            at = {r: r if given is None else int(given[r]) for r in by_split[split]
                  if given is None or 0 <= r < len(given)}
            read = opened.row_digests(split, at.values())
            found.update({(split, r): read[g] for r, g in at.items() if g in read})
    except (KeyError, OSError, ValueError):
        return {}
    return found


@router.get("/runs/{run_id}/scores/failures", response_model=FailuresOut, responses=ERROR_RESPONSES,
            summary="A class's misclassified images of a registered cache's split under the run's shipped probe "
            "(first seed), lowest probability of their label first: the failure gallery of new images")
async def scored_failures(request: Request, run_id: IdPath, cache: str = CacheQuery, split: str = SplitQuery,
                          class_name: str = ClassQuery, predicted: str | None = PredictedQuery,
                          limit: int = LimitQuery, store: Store = Depends(get_store)) -> FailuresOut:
    return await _in_scoring_slot(request, _scored_failures, store, run_id, cache, split, class_name, predicted,
                                  limit)


def _scored_failures(store: Store, run_id: str, cache: str, split: str, class_name: str, predicted: str | None,
                     limit: int) -> FailuresOut:
    """The shipped probe's mistakes on a class of the cache's split, over its images of the run's classes; each
    item's ``index`` is its row in that split."""
    _, probe, got = _predicted(store, run_id, cache, split)
    index, target = _cell(probe.class_names, class_name, predicted, lambda: _left_out(store, run_id))
    known, scored = got.known()
    rows = scored.failure_rows(index, probe.class_names, limit, target)
    for row in rows:
        row["index"] = int(known[row["index"]])
    return FailuresOut(run_id=run_id, class_name=class_name, predicted=predicted,
                       total=len(scored.failures(index, predicted=target)),
                       items=_with_thumbnails(rows, store, cache, split))


LabelIssuesClassQuery = Query(None, alias="class", min_length=1, max_length=200,
                              description="only the images labelled this class (as in the report); without it, "
                              "every class's in one ranking")
LabelIssuesOffsetQuery = offset_query("items to skip, likeliest wrong label first")
LabelIssuesMethodQuery = Query(None, description="the newest job of this method (its request's `method`); without "
                               "it, the newest job of either")


@router.get("/runs/{run_id}/label-issues", response_model=LabelIssuesOut, responses=ERROR_RESPONSES,
            summary="The likeliest wrong train + val labels of a run, found by its newest succeeded label_issues job "
                    "(POST /api/jobs kind label_issues), lowest out-of-fold probability of their label first")
def label_issues(run_id: IdPath, class_name: str | None = LabelIssuesClassQuery, limit: int = LimitQuery,
                 offset: int = LabelIssuesOffsetQuery, method: LabelIssuesMethod | None = LabelIssuesMethodQuery,
                 store: Store = Depends(get_store)) -> LabelIssuesOut:
    """Reads the stored result (the fits ran in the job); 404 for an unknown run or one without a finished
    label_issues job (the message says how to start one), 422 for a class the run does not have."""
    from probe.label_issues import weak_refit_caution

    from ..label_issues_job import newest_result

    run = store.get_run(run_id)
    try:
        job, stored = newest_result(store, run, method)
        found = stored.head
        index, _ = _cell(list(found["class_names"]), class_name, None, lambda: _left_out(store, run_id))
        total, rows = stored.page(index, offset, limit)  # the page's rows alone, where the result has its index
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    images = found["images"]
    return LabelIssuesOut(run_id=run_id, job_id=job["id"], finished_at=job["finished_at"], folds=found["folds"],
                          method=found["method"], params=found["params"], class_name=class_name,
                          images=sum(images) if index is None else images[index], total=total,
                          accuracy=found["accuracy"], caution=weak_refit_caution(found["accuracy"]), limit=limit,
                          offset=offset, items=_with_thumbnails(rows, store, run["cache_id"], "train"))


NearDuplicatesOffsetQuery = offset_query("pairs to skip, most similar first")


@router.get("/runs/{run_id}/near-duplicates", response_model=NearDuplicatesOut, responses=ERROR_RESPONSES,
            summary="A run's test images that duplicate a train or val image, most similar first, with both images' "
                    "thumbnails: every pair of the run's near_duplicates.csv, a page at a time")
def near_duplicates(run_id: IdPath, limit: int = LimitQuery, offset: int = NearDuplicatesOffsetQuery,
                    store: Store = Depends(get_store)) -> NearDuplicatesOut:
    """404 for an unknown run or one without the list (not checked, or written before it: the message says which),
    422 for a damaged list."""
    from probe.near_duplicates import no_pairs_message, outside_sample, rule_text
    from probe.rundir import read_run

    run = store.get_run(run_id)
    found, pairs, drop = read_run(run["path"], lambda: _pairs(store, run))  # of one run: a --force between mixed two
    if pairs is None or found is None:
        raise HTTPException(404, no_pairs_message(repr(run_id), checked=found is not None))
    shown = pairs[offset:offset + limit]
    thumbnail = _thumbnails(store, run["cache_id"], [place for pair in shown for place in _pair_places(pair)],
                            drop)
    items = [{**pair, "test_thumbnail_url": thumbnail(pair["test"], *test),
              "seen_thumbnail_url": thumbnail(pair["seen"], *seen)}
             for pair in shown for test, seen in [_pair_places(pair)]]
    return NearDuplicatesOut(run_id=run_id, encoder=found.encoder, threshold=found.threshold,
                             rule=rule_text(found.threshold, found.encoder, found.ratio), test_images=found.test_images,
                             sampled=found.sampled, total=len(pairs), limit=limit,
                             outside_sample=outside_sample(pairs, found.test_images, found.sampled,
                                                           found.sample_draw), offset=offset,
                             items=items)


def _pair_places(pair: dict) -> tuple[tuple[str, int], tuple[str, int]]:
    """Where a near-duplicate pair's two images are in the run's cache: (split, row) of its test and seen image."""
    return ("test", pair["test_row"]), (pair["seen_split"], pair["seen_row"])


def _pairs(store: Store, run: dict) -> tuple:
    """The run's near-duplicate check (its report's), its list of pairs (None without one) and the classes it left
    out (its pairs' rows are of the splits without them); 422 for a damaged list."""
    from probe.near_duplicates import read_pairs

    report = _report(store, run["id"])
    found = report.near_duplicates
    try:
        return found, read_pairs(run["path"], found and found.test_images), report.config.get("drop_classes")
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


STANDALONE_FILE = "apply_probe.py"  # probe/standalone.py in probe.zip
ONNX_FILE = "probe.onnx"  # probe.onnx_export's graph of the shipped probe, in probe.zip


def _onnx_bytes(folder: Path, report: Report) -> bytes:
    """The shipped probe as one ONNX graph (:func:`probe.onnx_export.probe_model`), its features in the metadata."""
    from probe.onnx_export import probe_model

    features = report.features
    return probe_model(folder, features.model_dump(mode="json") if features is not None else None).SerializeToString()


@router.get("/runs/{run_id}/probe.zip", response_class=Response, responses={
    **ERROR_RESPONSES, 200: download("application/zip", "report.json, head.safetensors, head.json (and "
                                     "posthoc_bias.json, temperature.json, seen_sources.npz), USAGE.md, "
                                     "apply_probe.py (numpy and safetensors alone) and probe.onnx (the probe as "
                                     "one ONNX graph) in a folder named after the run: "
                                     "probe.deploy.RunProbe.load(folder) applies it")},
            summary="The run's probe as shipped: its first seed's head and post-hoc bias, with the report")
def probe_zip(run_id: IdPath, store: Store = Depends(get_store)) -> Response:
    from probe.rundir import read_run

    run = store.get_run(run_id)
    # the files zipped, of one run: a train --force moved in while they were zipped mixed both runs' files
    data = read_run(run["path"], lambda: _zipped(store, run))
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{run_id}_probe.zip"'})


def _zipped(store: Store, run: dict) -> bytes:
    """probe.zip of the run (:func:`probe_zip`); 404 where its files are missing, 422 damaged."""
    from probe import standalone
    from probe.deploy import PROBE_FILES

    from ..shipped import usage_text

    run_id, folder = run["id"], Path(run["path"])
    files = [name for name in PROBE_FILES if (folder / name).is_file()]
    missing = [name for name in PROBE_FILES[:3] if name not in files]
    if missing:
        raise HTTPException(404, f"run {run_id!r} lacks {', '.join(missing)} on disk ({folder}); it is unfinished "
                                 "or its files were removed")
    _shipped(run)  # what ships must load: files damaged on disk are a 422, not a zip that fails where it is used
    buffer = io.BytesIO()
    try:
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in files:
                archive.write(folder / name, f"{run_id}/{name}")
            report = _report(store, run_id)  # read once: USAGE.md and the graph's metadata
            archive.writestr(f"{run_id}/USAGE.md", usage_text(run_id, report))
            # the loader for serving code without mr2probe (numpy + safetensors), copied as it is
            archive.write(standalone.__file__, f"{run_id}/{STANDALONE_FILE}")
            archive.writestr(f"{run_id}/{ONNX_FILE}", _onnx_bytes(folder, report))
    except FileNotFoundError:  # deleted while it was zipped: a 500 and a dropped connection (an attack round)
        raise HTTPException(404, f"run {run_id!r} was removed while its probe was zipped") from None
    return buffer.getvalue()


@router.get("/runs/{run_id}/scores", response_model=ScoresOut, responses=ERROR_RESPONSES,
            summary="The run's shipped probe scored on a registered cache's split (mr2probe predict)")
async def run_scores(request: Request, run_id: IdPath, cache: str = CacheQuery, split: str = SplitQuery,
                     store: Store = Depends(get_store)) -> ScoresOut:
    return await _in_scoring_slot(request, _scores, store, run_id, cache, split)


@router.get("/runs/{run_id}/predictions.csv", response_class=Response,
            responses={**ERROR_RESPONSES, 200: download("text/csv", "one row per image")},
            summary="The run's shipped probe's prediction of every image of a registered cache's split, as CSV "
            "(mr2probe predict --out): index, source, true, predicted, confidence, correct (true and correct "
            "empty for unlabelled images); with probabilities=true a column p(<class>) per class")
async def run_predictions_csv(request: Request, run_id: IdPath, cache: str = CacheQuery, split: str = SplitQuery,
                              probabilities: bool = Query(False, description="every class's probability too "
                                                          "(mr2probe predict --probabilities)"),
                              store: Store = Depends(get_store)) -> Response:
    return await _in_scoring_slot(request, _predictions_csv, store, run_id, cache, split, probabilities)


# predictions.csv?probabilities=true writes images × classes numbers of 9 characters into one CSV per request (two at
# once, the scoring slots): 2.5 M numbers are ~23 MB of text and ~7 s on this 2-core box (a review measured 25 M
# at ~225 MB of text and ~75 s), e.g. 2,500 images of 1,000 classes; more: `mr2probe predict --probabilities`.
MAX_PROBABILITY_CELLS = 2_500_000


@router.get("/runs/{run_id}/predicted", response_model=PredictedOut, responses=ERROR_RESPONSES,
            summary="How many of a registered cache's images (unlabelled ones too) the run's shipped probe gives each "
            "class, with their mean confidence (mr2probe predict on unlabelled images)")
async def run_predicted(request: Request, run_id: IdPath, cache: str = CacheQuery, split: str = SplitQuery,
                        store: Store = Depends(get_store)) -> PredictedOut:
    return await _in_scoring_slot(request, _predicted_shares, store, run_id, cache, split)


def _predicted_shares(store: Store, run_id: str, cache: str, split: str) -> PredictedOut:
    from ..shipped import predicted_summary

    run, probe, got = _predicted(store, run_id, cache, split, scored=False)
    summary = predicted_summary(probe, got)
    near, said = _near_train(store, run, cache, split)
    return PredictedOut(run_id=run_id, cache_id=cache, split=split, near_train=near,
                        **{**summary, "warnings": summary["warnings"] + said})


def _near_train(store: Store, run: dict, cache: str, split: str) -> tuple[Any, list[str]]:
    """The cache split's images that nearly duplicate the run's train or val images (``app.predicted_near``, the
    check ``mr2probe predict`` makes, bounded by the products budget), and its line (or why it was not made where
    that matters) as a warning."""
    from feature_cache import open_cache

    from ..label_issues import run_cache
    from ..predicted_near import near_train

    report, own = _report(store, run["id"]), store.get_cache(run["cache_id"])
    return near_train(report, lambda: run_cache(report, run["path"], cache_file(own, store.data_root),
                                                f"its cache {own['id']!r}"),
                      open_cache(_cache_path(store, cache, scored=False)), split)


def _cache_named(cache: str) -> str:
    """How a scored cache is named in what the routes answer (its messages, a comparison's ``scored_on``): /compare
    named it unquoted where /scores quoted it."""
    return f"cache {cache!r}"


def _cache_path(store: Store, cache: str, scored: bool) -> str:
    """The cache's file; a cache of unlabelled images is a 422 where its images would be ``scored``."""
    row = store.get_cache(cache)
    if scored and is_unlabelled(row):
        raise HTTPException(422, f"cache {cache!r} holds unlabelled images: nothing to score a probe against; "
                            f"GET /api/runs/{{id}}/predictions.csv?cache={cache} lists each image's prediction")
    try:
        return cache_file(row, store.data_root)  # a file registered by path is checked: in place, unchanged
    except FileNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None


def _predicted(store: Store, run_id: str, cache: str, split: str, scored: bool = True,
               probabilities: bool = False) -> tuple[dict, Any, Any]:
    """``(run row, RunProbe, CachePredictions)`` of the run's shipped probe on the cache's split (unless
    ``scored``, unlabelled images too; with ``probabilities``, every class's); 404 / 422."""
    from ..shipped import predict_cache

    run, path = store.get_run(run_id), _cache_path(store, cache, scored)
    probe = _shipped(run)
    try:
        (got,) = predict_cache([probe], path, split, unlabelled=not scored, name=_cache_named(cache),
                               probabilities=probabilities, max_cells=MAX_PROBABILITY_CELLS)
    except ValueError as exc:  # CacheMismatch too: a file that is not a finished cache
        raise HTTPException(422, str(exc)) from None
    except FileNotFoundError:
        raise HTTPException(404, f"cache {cache!r} is missing on disk") from None
    return run, probe, got


def _predictions_csv(store: Store, run_id: str, cache: str, split: str, probabilities: bool) -> Response:
    from ..shipped import csv_rows

    _, probe, got = _predicted(store, run_id, cache, split, scored=False, probabilities=probabilities)
    text = io.StringIO()
    csv.writer(text).writerows(csv_rows(got, probe.class_names))
    return Response(text.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{run_id}_{cache}_{split}_predictions.csv"'})


def _scores(store: Store, run_id: str, cache: str, split: str) -> ScoresOut:
    from probe.rundir import read_run

    # the probe and the stored predictions it is checked against, of one run
    return read_run(store.get_run(run_id)["path"], lambda: _scored(store, run_id, cache, split))


def _scored(store: Store, run_id: str, cache: str, split: str) -> ScoresOut:
    from ..shipped import scores_summary

    run, probe, got = _predicted(store, run_id, cache, split)
    scores, beside = scores_summary(run["path"], probe, got, split)
    near, said = _near_train(store, run, cache, split)
    return ScoresOut(**scores.model_dump(), **{**beside, "warnings": beside["warnings"] + said}, run_id=run_id,
                     cache_id=cache, split=split, near_train=near)


def _shipped(run: dict):
    """The run's ``RunProbe``; 404 when its files are missing on disk."""
    from probe.deploy import RunProbe

    try:
        return RunProbe.load(run["path"])
    except FileNotFoundError as exc:
        raise HTTPException(404, f"run {run['id']!r} cannot be applied: {exc}") from None
    except ValueError as exc:  # its report or head files damaged on disk
        raise HTTPException(422, f"run {run['id']!r} cannot be applied: {exc}") from None


@router.get("/runs/{run_id}", response_model=RunDetailOut, responses=ERROR_RESPONSES, summary="One probe run")
def get_run(run_id: IdPath, store: Store = Depends(get_store)) -> RunDetailOut:
    from ..label_issues_job import stored_methods

    row = store.get_run(run_id)
    return RunDetailOut(**{k: row[k] for k in RunOut.model_fields}, label_issues=stored_methods(store, row))


@router.patch("/runs/{run_id}", response_model=RunOut, responses={**ERROR_RESPONSES, **BODY_TOO_LARGE},
              summary="Rename a run or set its note (what it is called in the lists, and why it matters)")
def update_run(run_id: IdPath, body: RunUpdate, store: Store = Depends(get_store)) -> RunOut:
    row = store.update_run(run_id, **body.model_dump(exclude_unset=True))
    return RunOut(**{k: row[k] for k in RunOut.model_fields})


@router.delete("/runs/{run_id}", response_model=DeletedOut, responses=DELETE_RESPONSES,
               summary="Delete a probe run and its folder (runs that took it as their reference keep their reports)")
def delete_run(run_id: IdPath, dry_run: bool = DRY_RUN, store: Store = Depends(get_store),
               settings: Settings = Depends(get_settings)) -> DeletedOut:
    return DeletedOut(**delete(store, settings, "runs", run_id, dry_run=dry_run))


# Declared before /reports/{run_id}: that pattern would also match "abc.csv".
@router.get("/reports/{run_id}.csv", response_class=Response, summary="The report's per-class table as CSV",
            responses={**ERROR_RESPONSES, 200: download("text/csv", "one row per class")})
async def report_csv(run_id: IdPath, store: Store = Depends(get_store)) -> Response:
    from probe import report_csv as to_csv

    report = await run_in_threadpool(_report, store, run_id)
    return Response(await run_in_threadpool(to_csv, report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{run_id}_per_class.csv"'})


# The shareable files of `mr2probe report --format` / `compare --format` (probe.export), served as downloads.
_MEDIA = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


def _download(document: str, fmt: str, filename: str) -> Response:
    return Response(document, media_type=_MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'})


def _export_responses(what: str, fmt: str) -> dict:
    """The responses of one export route: its own media type only (each declared both; a new-user round)."""
    return {**ERROR_RESPONSES, 200: download(_MEDIA[fmt].split(";")[0], what)}


async def _report_file(store: Store, run_id: str, fmt: str) -> Response:
    from probe.export import EXPORT_FORMATS

    report = await run_in_threadpool(_report, store, run_id)
    # rendered in a worker thread: 0.2-0.3 s at 1,000 classes that held up every other request (a many-classes round)
    document = await run_in_threadpool(lambda: EXPORT_FORMATS[fmt](report.model_dump(mode="json")))
    return _download(document, fmt, f"{run_id}_report")


@router.get("/reports/{run_id}.html", response_class=Response, summary="The report as one self-contained HTML page",
            responses=_export_responses("the report as one self-contained HTML page (mr2probe report --format html)",
                                        "html"))
async def report_html(run_id: IdPath, store: Store = Depends(get_store)) -> Response:
    return await _report_file(store, run_id, "html")


@router.get("/reports/{run_id}.md", response_class=Response, summary="The report as Markdown",
            responses=_export_responses("the report as Markdown (mr2probe report --format md)", "md"))
async def report_md(run_id: IdPath, store: Store = Depends(get_store)) -> Response:
    return await _report_file(store, run_id, "md")


@router.get("/reports/{run_id}", response_model=Report, responses=ERROR_RESPONSES,
            summary="The disparity report (report.json, schema_version 2; the schema is probe.Report)")
def get_report(run_id: IdPath, store: Store = Depends(get_store)) -> Report:
    return _report(store, run_id)


BaseRun = Query(..., min_length=1, max_length=MAX_ID, description="run id, e.g. the ERM run")
OtherRun = Query(..., min_length=1, max_length=MAX_ID, description="run id, e.g. the MR² run")


OnCache = Query(None, min_length=1, max_length=MAX_ID, description="a cache id: compare the runs' shipped probes "
                "(first seed) on its images instead of their own test split (mr2probe compare --features)")


# Two runs' comparison on their own test predictions is a function of their files, and the run page asks for it on
# every view of a run with a reference, its exports again: 3.4-5.2 s each at 1,000 classes on 2 CPU cores (the
# Monte Carlo intervals of the thirds, linear in K; a many-classes round). The last few are kept, keyed by the
# files' identity, so a file rewritten (train --force) is compared afresh.
MAX_COMPARED_RUNS = 12  # runs one /api/compare/many compares with its base: a comparison each (~1 s at K = 1000)
_COMPARISONS = Kept(MAX_COMPARED_RUNS + 4)  # a page of several runs viewed again, and a few pairs besides
_COMPARED_FILES = ("report.json", "predictions.npz")


def _files_key(base: str, other: str, *run_dirs: str) -> tuple | None:
    """(base, other, each compared file's path, inode, size and mtime); None where a file cannot be read."""
    key: list = [base, other]
    for run_dir in run_dirs:
        for name in _COMPARED_FILES:
            identity = file_identity(os.path.join(run_dir, name))
            if identity is None:
                return None
            key.append(identity)
    return tuple(key)


def _compared(base: str, other: str, folders: list[str], path: str | None, split: str, cache: str | None,
              read: Callable[[str], Report]) -> Comparison:
    """The comparison of :func:`_comparison` (on the runs' test predictions, kept; or on the cache at ``path``)."""
    from probe import compare_reports
    from probe.predictions import load_pair

    from ..shipped import compare_on_cache

    # the files' identity taken before they are read: taken after, a run rewritten in between kept what was read
    # before under its new identity, for good (a review)
    key = None if path is not None else _files_key(base, other, *folders)
    comparison = _COMPARISONS.get(key)  # kept: its reports are not read again (a review)
    if comparison is None:
        reports = read(base), read(other)
        if path is None:
            comparison = compare_reports(*reports, load_pair(*folders, tuple(len(r.class_names) for r in reports)))
            _COMPARISONS.put(key, comparison)
        else:
            comparison, comparison.warnings = compare_on_cache(*reports, tuple(folders), path, split,
                                                               _cache_named(cache))
    return comparison


def _comparison(store: Store, base: str, other: str, cache: str | None = None, split: str = "test",
                read: Callable[[str], Report] | None = None, near: bool = True) -> Comparison:
    """``read(run_id)``: the run's report (:func:`_report`; several runs against one base read the base once);
    ``near``: on a cache, its warnings say the runs' near-duplicate check of it (:func:`_near_lines`; several runs
    against one base say it once for all)."""
    from probe.rundir import read_run

    if cache is None and split != "test":  # it compared the test split without a word (an attack round)
        raise HTTPException(422, f"split={split!r} needs a cache: without one the runs are compared on their own "
                                 "test predictions (split=test)")
    runs = store.get_run(base), store.get_run(other)
    path = None if cache is None else _cache_path(store, cache, scored=True)
    read = read or partial(_report, store)
    try:
        folders = [runs[0]["path"], runs[1]["path"]]  # read again whole where train --force replaced one meanwhile
        comparison = read_run(folders, lambda: _compared(base, other, folders, path, split, cache, read))
        if path is None:
            comparison = comparison.model_copy(deep=True)  # the caller adds its warnings to its own copy
        elif near:
            from ..predicted_near import with_near_lines

            with_near_lines([comparison], _near_lines(store, [base, other], path, split, read))
        if base == other:  # as the CLI says it: a normal "no change" read as a result (an attack round)
            from probe.compare import itself_warning

            comparison.warnings.append(itself_warning(base))
        return comparison
    except ValueError as exc:  # e.g. the runs have different classes, or the cache other features
        raise HTTPException(422, str(exc)) from None
    except FileNotFoundError:
        raise HTTPException(404, "a run's or the cache's files are missing on disk") from None


@router.get("/compare", response_model=Comparison, responses=ERROR_RESPONSES,
            summary="Per-class and per-group deltas of `other` against `base` (probe.compare_reports), with 95 % "
            "paired bootstrap intervals when both runs stored their test predictions; with `cache`, of their "
            "shipped probes on that cache's split")
async def compare(request: Request, base: str = BaseRun, other: str = OtherRun, cache: str | None = OnCache,
                  split: str = SplitQuery, store: Store = Depends(get_store)) -> Comparison:
    return await _in_scoring_slot(request, _comparison, store, base, other, cache, split)


async def _comparison_file(request: Request, store: Store, base: str, other: str, fmt: str, cache: str | None,
                           split: str) -> Response:
    from probe.export import COMPARE_FORMATS

    comparison = await _in_scoring_slot(request, _comparison, store, base, other, cache, split)
    context = await run_in_threadpool(_runs_context, store, base, other)
    return _download(await run_in_threadpool(COMPARE_FORMATS[fmt], comparison, context), fmt, f"{base}_vs_{other}")


def _runs_context(store: Store, base: str, other: str) -> RunsContext:
    """The two runs as the pages name them (name, note, data set) and their reports' warnings, for an export."""
    from probe.export import runs_context

    names = {}
    for run_id in (base, other):
        row = store.get_run(run_id)
        try:
            dataset = store.get_dataset(store.get_cache(row["cache_id"])["dataset_id"])["name"]
        except KeyError:  # NotFound: a cache or data set deleted since
            dataset = None
        note = " / ".join(line for line in (row.get("note") or "").splitlines() if line.strip())  # one Markdown line
        names[run_id] = (f"{row['name']} ({run_id})" + (f", data set {dataset}" if dataset else "")
                         + (f"; note: {note}" if note else ""))
    return runs_context(_report(store, base), _report(store, other), names)


@router.get("/compare.html", response_class=Response, summary="A comparison as one self-contained HTML page",
            responses=_export_responses("the comparison as one self-contained HTML page (mr2probe compare "
                                        "--format html)", "html"))
async def compare_html(request: Request, base: str = BaseRun, other: str = OtherRun, cache: str | None = OnCache,
                       split: str = SplitQuery, store: Store = Depends(get_store)) -> Response:
    return await _comparison_file(request, store, base, other, "html", cache, split)


@router.get("/compare.md", response_class=Response, summary="A comparison as Markdown",
            responses=_export_responses("the comparison as Markdown (mr2probe compare --format md)", "md"))
async def compare_md(request: Request, base: str = BaseRun, other: str = OtherRun, cache: str | None = OnCache,
                     split: str = SplitQuery, store: Store = Depends(get_store)) -> Response:
    return await _comparison_file(request, store, base, other, "md", cache, split)


OtherRuns = Query(..., min_length=1, max_length=MAX_COMPARED_RUNS, description="the runs compared with the base, in "
                  f"the order of the rows, each once: other=a&other=b (1 to {MAX_COMPARED_RUNS})")
RunIds = list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID)]]


@router.get("/compare/many", response_model=ManyComparison, responses=ERROR_RESPONSES,
            summary="Several runs against one base (mr2probe compare RUN_A RUN_B RUN_C ...): one row per run, each "
            "metric's sign-flip tests Holm-corrected over the runs, and every pairwise comparison")
async def compare_many_runs(request: Request, base: str = BaseRun, other: RunIds = OtherRuns,
                            cache: str | None = OnCache, split: str = SplitQuery,
                            store: Store = Depends(get_store)) -> ManyComparison:
    return await _in_scoring_slot(request, _many, store, base, other, cache, split)


def _near_lines(store: Store, run_ids: list[str], path: str, split: str, read: Callable[[str], Report]) -> list:
    """The runs' near-duplicate check of the cache at ``path``, as ``mr2probe compare --features`` makes it (once per
    distinct run cache and left-out classes, ``app.predicted_near.near_lines``), each run's own cache its registered
    one."""
    from feature_cache import open_cache

    from ..label_issues import run_cache
    from ..predicted_near import near_lines

    def opener(run: dict, report: Report) -> Callable:
        own = store.get_cache(run["cache_id"])
        return lambda: run_cache(report, run["path"], cache_file(own, store.data_root), f"its cache {own['id']!r}")

    runs = [(store.get_run(run_id), read(run_id)) for run_id in dict.fromkeys(run_ids)]
    return near_lines([(report.run_id, report, opener(run, report)) for run, report in runs], open_cache(path), split)


def _many(store: Store, base: str, others: list[str], cache: str | None, split: str) -> ManyComparison:
    from probe.rundir import read_run

    twice = sorted({run_id for run_id in others if others.count(run_id) > 1})
    if twice:
        raise HTTPException(422, f"other names run {twice[0]!r} more than once: each run is one row")
    if base in others:  # a row of zeros, p = 1, that made Holm's correction of the others stricter (a review)
        raise HTTPException(422, f"other names the base run {base!r}: leave it out of the runs compared with it")
    folders = [store.get_run(run_id)["path"] for run_id in (base, *others)]
    # read again whole where train --force replaced a run meanwhile, the reports read afresh
    return read_run(folders, lambda: _many_read(store, base, others, cache, split))


def _many_read(store: Store, base: str, others: list[str], cache: str | None, split: str) -> ManyComparison:
    """The comparisons of :func:`_many`, each report read once (the base was read 1 + N times)."""
    from probe.compare_many import compare_many, run_warnings

    comparisons, read = [], lru_cache(maxsize=None)(partial(_report, store))
    for run_id in others:
        try:
            comparisons.append(_comparison(store, base, run_id, cache, split, read, near=False))
        except HTTPException as exc:  # other classes or images: which of the runs (as the CLI names it)
            if exc.status_code != 422:
                raise
            raise HTTPException(422, f"run {run_id!r} against {base!r}: {exc.detail}") from None
    if cache is not None:  # the runs' near-duplicate check of the cache, once for all
        from ..predicted_near import with_near_lines

        with_near_lines(comparisons, _near_lines(store, [base, *others], _cache_path(store, cache, scored=True),
                                                 split, read))
    many = compare_many(comparisons, run_warnings((base, read(base)), [(run_id, read(run_id)) for run_id in others]))
    # the md / html name each run as the pages do: ids alone read 'run_4da32e8b1df3' in a pull request
    many.names = {run_id: f"{store.get_run(run_id)['name']} ({run_id})" for run_id in (base, *others)}
    return many


async def _many_file(request: Request, store: Store, base: str, others: list[str], fmt: str, cache: str | None,
                     split: str) -> Response:
    from probe.export import MANY_FORMATS

    many = await _in_scoring_slot(request, _many, store, base, others, cache, split)
    return _download(await run_in_threadpool(MANY_FORMATS[fmt], many), fmt,
                     f"{base}_vs_{many.runs_text().replace(' ', '_')}")


@router.get("/compare/many.html", response_class=Response, summary="Several runs against one base as one HTML page",
            responses=_export_responses("the rows as one self-contained HTML page (mr2probe compare RUN_A RUN_B "
                                        "RUN_C --format html)", "html"))
async def compare_many_html(request: Request, base: str = BaseRun, other: RunIds = OtherRuns,
                            cache: str | None = OnCache, split: str = SplitQuery,
                            store: Store = Depends(get_store)) -> Response:
    return await _many_file(request, store, base, other, "html", cache, split)


@router.get("/compare/many.md", response_class=Response, summary="Several runs against one base as Markdown",
            responses=_export_responses("the rows as Markdown (mr2probe compare RUN_A RUN_B RUN_C --format md)",
                                        "md"))
async def compare_many_md(request: Request, base: str = BaseRun, other: RunIds = OtherRuns,
                          cache: str | None = OnCache, split: str = SplitQuery,
                          store: Store = Depends(get_store)) -> Response:
    return await _many_file(request, store, base, other, "md", cache, split)
