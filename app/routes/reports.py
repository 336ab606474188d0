"""``/api/runs``, ``/api/reports/{run_id}`` (+ ``.csv``) and ``/api/compare``."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..store import Store
from ..deps import get_store
from probe import Comparison, Report

from ..schemas import ERROR_RESPONSES, RunOut

router = APIRouter(tags=["reports"])


def _report(store: Store, run_id: str) -> Report:
    from probe import load_report

    run = store.get_run(run_id)
    try:
        report = load_report(run["path"])
    except FileNotFoundError:
        raise HTTPException(404, f"report of run {run_id!r} is missing on disk ({run['path']})") from None
    report.run_id = report.run_id or run_id
    return report


@router.get("/runs", response_model=list[RunOut], summary="Probe runs, newest first")
def list_runs(store: Store = Depends(get_store)) -> list[RunOut]:
    return [RunOut(**{k: r[k] for k in RunOut.model_fields}) for r in store.list_runs()]


@router.get("/runs/{run_id}", response_model=RunOut, responses=ERROR_RESPONSES)
def get_run(run_id: str, store: Store = Depends(get_store)) -> RunOut:
    row = store.get_run(run_id)
    return RunOut(**{k: row[k] for k in RunOut.model_fields})


# Declared before /reports/{run_id}: that pattern would also match "abc.csv".
@router.get("/reports/{run_id}.csv", response_class=Response, responses={
    **ERROR_RESPONSES, 200: {"content": {"text/csv": {}}, "description": "one row per class"}})
async def report_csv(run_id: str, store: Store = Depends(get_store)) -> Response:
    from probe import report_csv as to_csv

    report = await run_in_threadpool(_report, store, run_id)
    return Response(to_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{run_id}_per_class.csv"'})


@router.get("/reports/{run_id}", response_model=Report, responses=ERROR_RESPONSES,
            summary="The disparity report (report.json, schema_version 1; the schema is probe.Report)")
def get_report(run_id: str, store: Store = Depends(get_store)) -> Report:
    return _report(store, run_id)


@router.get("/compare", response_model=Comparison, responses=ERROR_RESPONSES,
            summary="Per-class and per-group deltas of `other` against `base` (probe.compare_reports)")
def compare(base: str = Query(..., description="run id, e.g. the ERM run"),
            other: str = Query(..., description="run id, e.g. the MR² run"),
            store: Store = Depends(get_store)) -> Comparison:
    from probe import compare_reports

    try:
        return compare_reports(_report(store, base), _report(store, other))
    except ValueError as exc:  # e.g. the runs have different classes
        raise HTTPException(422, str(exc)) from None
