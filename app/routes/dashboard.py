"""The offline dashboard: ``/`` (jobs, runs, data sets), ``/runs/{run_id}`` (one report, ``?compare=``) and
``/launch`` (the launch form; ``?job=`` watches a job).

Pages are static HTML + vanilla JS + SVG served from the package (``app/static``); they read the JSON API.
A Content-Security-Policy of ``'self'`` keeps the browser from loading anything from another host; images
(failure thumbnails) are fetched with the bearer token and shown from ``blob:`` URLs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.staticfiles import NotModifiedResponse
from starlette.types import Message, Receive, Scope, Send

from ..deps import known_query_only
from ..middleware import NO_FRAMING

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       f"connect-src 'self'; object-src 'none'; base-uri 'none'; {NO_FRAMING}")

router = APIRouter(include_in_schema=False)


class PageFile(FileResponse):
    """A file of the pages whose ``Range`` Starlette refuses (malformed: 400; past the file's end: 416) is refused as
    every request is, a JSON ``{"detail"}`` naming the header: Starlette answered ``text/plain``, the 416 with no body
    at all (an attack round). A range it serves is served as before (206). Starlette's own answer is read off the
    ASGI messages it sends (its range parsing is private API), so that its rules, not a copy, decide."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked, refused = Headers(scope=scope).get("range"), None

        async def relay(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and asked is not None and message["status"] in (400, 416):
                refused = message  # a range refusal: its body (Starlette's reason) follows
            elif refused is None:
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                await _range_refusal(refused, asked, message.get("body", b""))(scope, receive, send)

        await super().__call__(scope, receive, relay)


def _range_refusal(start: Message, asked: str, reason: bytes) -> JSONResponse:
    """The JSON answer to a ``Range`` that Starlette refused with ``start`` (its 400's body: the ``reason``)."""
    if start["status"] == 400:
        return JSONResponse({"detail": f"Range header {asked[:100]!r} refused: {reason.decode(errors='replace')}"},
                            status_code=400)
    content_range = MutableHeaders(raw=list(start["headers"]))["content-range"]  # "bytes */{size}"
    size = content_range.rpartition("/")[2]
    return JSONResponse({"detail": f"Range {asked[:100]!r} lies past the end of the file ({size} bytes)"},
                        status_code=416, headers={"Content-Range": content_range})


class StaticWithPolicy(StaticFiles):
    """``/static``: the pages' files with the pages' Content-Security-Policy, since ``/static/index.html`` is the
    whole dashboard too, and ``no-cache`` (checked again on each load, a 304 while unchanged): after an upgrade a
    browser's cached old script beside a new one left a blank page (a review). ``nosniff``, so that no file is read
    as another type, is every answer's (``app.middleware.SecurityHeaders``)."""

    async def get_response(self, path: str, scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Cache-Control"] = "no-cache"
        return response

    def file_response(self, full_path, stat_result: os.stat_result, scope: Scope, status_code: int = 200) -> Response:
        """Starlette's, a :class:`PageFile` (its Range refusals in JSON)."""
        response = PageFile(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def _page() -> FileResponse:
    page = STATIC_DIR / "index.html"
    return PageFile(page, media_type="text/html", stat_result=os.stat(page),
                    headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


@router.get("/")
def home() -> FileResponse:
    return _page()


@router.get("/runs/{run_id}")
def run_page(run_id: str) -> FileResponse:
    return _page()


@router.get("/launch")
def launch_page() -> FileResponse:
    return _page()


@router.get("/compare")
def compare_page() -> FileResponse:
    """Several runs against one base (``?base=&other=&other=``, read by the page from /api/compare/many)."""
    return _page()


@router.get("/words.js", dependencies=[Depends(known_query_only)])
def words_script() -> Response:
    """``window.Words``: what the pages name as the reports do, from the one definition of each word, loaded before
    the pages' scripts (the dashboard had kept copies of its own, and they drifted): ``test_checks`` and
    ``verdicts`` (probe.report.TEST_CHECKS, VERDICT_WORDS), ``posthoc`` (POSTHOC_WORDS), ``job_states`` (app.status:
    ``active`` a worker runs on, ``open`` may still run and can be cancelled, ``unsuccessful`` ended without a result,
    whose settings the launch page offers back; whether a job can be resumed is its own
    ``resumable`` field), the ``splits`` and the ``groups`` in their order (feature_cache.datasets.SPLITS,
    probe.groups.GROUP_NAMES), the summary's ``metrics`` (probe.report.SEED_METRICS: the cards, the runs list's
    columns), ``compared_metrics``, the columns of a comparison of several runs (probe.compare_many.SUMMARY_METRICS:
    the compare page), ``chart_classes``, the classes a per-class chart draws (probe.report.CHART_CLASSES, as the HTML
    export's), ``heatmap_classes``, the classes the confusion heat map draws (probe.report.HEATMAP_CLASSES),
    ``confusions_header``, the per-class confusions' column (probe.report.CONFUSIONS_HEADER), and
    ``no_change``, a delta's word where the runs are one probe, every interval pinned at 0 (probe.compare.NO_CHANGE,
    the terminal's), ``sign_flip_floor``, the least p of the Monte Carlo sign-flip test, written "p ≤"
    (probe.uncertainty.SIGN_FLIP_FLOOR, probe.uncertainty.p_text), ``compared_runs``, the most runs one
    comparison of several runs takes besides its base (app.routes.reports.MAX_COMPARED_RUNS), and
    ``label_issue_methods``, the likely-wrong-label methods with what each lists, and the default
    (probe.label_issues.METHODS, DEFAULT_METHOD), and ``cv``, the folds asked by default and the validation images
    per class below which they run (probe.DEFAULT_CV_FOLDS, MIN_VAL_PER_CLASS) and ``not_needed``, the words for folds
    asked by hand that were not needed (probe.report.CV_NOT_NEEDED, ``{asked}`` and ``{least}`` to fill: the run
    page had a copy of probe.report.selection_split_text's)."""
    from feature_cache.datasets import SPLITS
    from probe import DEFAULT_CV_FOLDS, MIN_VAL_PER_CLASS
    from probe.compare import NO_CHANGE
    from probe.compare_many import SUMMARY_METRICS
    from probe.groups import GROUP_NAMES
    from probe.label_issues import DEFAULT_METHOD, METHODS
    from probe.report import (CHART_CLASSES, CONFUSIONS_HEADER, CV_NOT_NEEDED, HEATMAP_CLASSES, POSTHOC_WORDS,
                              SEED_METRICS, TEST_CHECKS, VERDICT_WORDS)
    from probe.uncertainty import SIGN_FLIP_FLOOR

    from ..status import ACTIVE, OPEN, UNSUCCESSFUL
    from .reports import MAX_COMPARED_RUNS

    words = {"test_checks": {check: w._asdict() for check, w in TEST_CHECKS.items()},
             "verdicts": {verdict: w._asdict() for verdict, w in VERDICT_WORDS.items()},
             "posthoc": {outcome: w._asdict() for outcome, w in POSTHOC_WORDS.items()},
             "job_states": {"active": [s.value for s in ACTIVE], "open": [s.value for s in OPEN],
                            "unsuccessful": [s.value for s in UNSUCCESSFUL]},
             "splits": list(SPLITS), "groups": list(GROUP_NAMES), "metrics": list(SEED_METRICS),
             "compared_metrics": list(SUMMARY_METRICS),
             "chart_classes": CHART_CLASSES, "heatmap_classes": HEATMAP_CLASSES, "confusions_header": CONFUSIONS_HEADER,
             "no_change": NO_CHANGE.strip(), "sign_flip_floor": SIGN_FLIP_FLOOR, "compared_runs": MAX_COMPARED_RUNS,
             "label_issue_methods": {"listed": METHODS, "default": DEFAULT_METHOD},
             "cv": {"default": DEFAULT_CV_FOLDS, "min_val_per_class": MIN_VAL_PER_CLASS,
                    "not_needed": CV_NOT_NEEDED}}
    return Response(f"window.Words = Object.freeze({json.dumps(words, ensure_ascii=True)});\n",
                    media_type="text/javascript",
                    headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


@router.get("/launch/choices", dependencies=[Depends(known_query_only)])
def launch_choices() -> dict[str, Any]:
    """What the launch form offers, read from the registries (no data: public like the pages). A query parameter is
    refused as on the API's routes (it answered 200 to ``?x=1``; an attack round); the pages themselves take the
    ones their scripts read."""
    from feature_cache import ENCODERS
    from feature_cache.datasets import ARCHIVE_SUFFIXES
    from probe import DEFAULT_CV_FOLDS, HEADS, MAX_CV_FOLDS, MIN_CV_FOLDS, MIN_VAL_PER_CLASS, PRESETS
    from probe.config import AUTO_FULL_BATCH_ROWS, AUTO_MIN_STEPS, MAX_OVERALL_DROP
    from probe.params import MAX_EPOCHS

    from feature_cache.defaults import DEFAULT_VAL_FRACTION

    from ..schemas import MAX_PER_CLASS, VAL_FRACTION_BOUNDS
    from probe.decision import IMBALANCE_RATIO
    from probe.metrics import OVERALL_METRICS
    from probe.names import MAX_NAME

    return {
        "encoders": [{"name": name, "pattern": e.pattern, "default_head": e.spec.default_head}
                     for name, e in ENCODERS.items()],
        "heads": [{"name": name, "formula": spec.summary} for name, spec in HEADS.items()],
        "methods": second_probes(),
        "cv": {"default": DEFAULT_CV_FOLDS, "min": MIN_CV_FOLDS, "max": MAX_CV_FOLDS,
               "min_val_per_class": MIN_VAL_PER_CLASS},
        "overall_metrics": list(OVERALL_METRICS), "imbalance_ratio": IMBALANCE_RATIO,
        # the form's bounds, as the API's: the archives an upload may be, a name's length, the budget's largest
        "archives": list(ARCHIVE_SUFFIXES), "max_name": MAX_NAME, "max_overall_drop": MAX_OVERALL_DROP,
        "max_epochs": MAX_EPOCHS, "max_per_class": MAX_PER_CLASS,
        # what the epochs field's "default" is (probe.config.auto_epochs): the form said only "default" (a new-user
        # round)
        "auto_epochs": {"steps": AUTO_MIN_STEPS, "full_batch_rows": AUTO_FULL_BATCH_ROWS},
        # the share of train carved out as val where a data set has no val/ (a post-hoc bias that could not be
        # tested advised "a larger val_fraction", which the form did not offer; a dashboard round)
        "val_fraction": {"default": DEFAULT_VAL_FRACTION, "min": VAL_FRACTION_BOUNDS[0], "max": VAL_FRACTION_BOUNDS[1]},
    }


# What the launch form says of a second probe trained with a loss of the registry, and of the post-hoc bias: a plain
# summary under the field, the rule in full under "The rule and the evidence, in full".
_KEPT = ("kept only where it raises the hardest third of the classes beyond noise without costing overall accuracy (or "
         "within your budget), else the run is the ERM reference.")
_DECISION = ("Trained after the ERM reference with the disparity-aware decision (select='hard'): its configuration "
             "replaces ERM's only where validation shows a hard-third gain beyond noise that costs at most the "
             "overall-accuracy budget; otherwise the run is ERM. The loss's own options keep their registry defaults "
             "(the API's loss_options_grid selects them).")
_POSTHOC = ("ERM, then a per-class logit bias fitted on validation to raise the hard third. The guard applies it to a "
            "seed only where cross-fitting on validation shows a hard-third gain beyond noise that costs at most the "
            "overall-accuracy budget; otherwise the run is ERM.")


def second_probes() -> list[dict[str, Any]]:
    """The probes the launch form offers after the ERM reference, in its order, by ``group``: each preset (the
    recommended method first), each loss of the registry other than ERM's with the disparity-aware decision, and
    ERM with the guarded post-hoc bias. ``probe`` is the request's fields (the form adds the head, epochs, ... and
    the budget); ``head``, the head a loss needs (``None``: any)."""
    from probe import LOSSES, PRESETS
    from probe.evaluate import POSTHOC_MIN_PER_CLASS

    # the post-hoc bias is tested out of sample only with enough validation images in every class, else never
    # applied: said before the run (a dashboard-only round spent one finding out on a small data set)
    needs = (f" It needs {POSTHOC_MIN_PER_CLASS} validation images in every class (given, or carved from train) to "
             "be tested; with fewer in some class it is never applied.")
    return ([{"name": name, "group": "preset", "label": f"{name} (recommended)", "probe": {"preset": name},
              "summary": p.summary, "why": p.why, "head": None} for name, p in PRESETS.items()]
            + [{"name": name, "group": "loss", "label": name + (" (cosine head)" if spec.input == "cosine" else ""),
                "probe": {"loss": name, "select": "hard"}, "summary": f"Trains with the {name} loss; {_KEPT}",
                "why": f"{spec.summary}. {_DECISION}", "head": "cosine" if spec.input == "cosine" else None}
               for name, spec in LOSSES.items() if name != "ce"]
            + [{"name": "posthoc_bias", "group": "posthoc", "label": "ERM + post-hoc logit bias (guarded)",
                "probe": {"loss": "ce", "posthoc_bias": True},
                "summary": f"Adds a per-class bias, fitted on validation, to the ERM probe's scores; {_KEPT}{needs}",
                "why": _POSTHOC + needs, "head": None}])
