"""``/api/jobs``: submit (202), list, inspect, cancel and resume background jobs, and remove finished ones' records."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Response, status

from ..config import Settings, get_settings
from ..datasets import resolve_under_root
from ..deps import TOTAL_COUNT, OffsetQuery, get_runner, get_store, set_total
from ..store import Store
from ..status import RESUMABLE, JobStatus
from ..steps import JOB_KINDS, job_what
from ..schemas import (BODY_TOO_LARGE, DRY_RUN, ERROR_RESPONSES, MAX_ID, ErrorOut, IdPath, JobAccepted, JobCreate,
                       JobOut, JobsRemovedOut)
from ..validation import validate_job
from ..worker import JobRunner

router = APIRouter(tags=["jobs"])
_CONFLICT = {409: {"model": ErrorOut, "description": "the job's status does not allow this"}}


# a kind the service runs: another was answered with an empty list, as if the run had none of them (a typo too)
JobKindName = Enum("JobKindName", {kind: kind for kind in JOB_KINDS}, type=str)  # type: ignore[misc]

_FULL = {429: {"model": ErrorOut, "description": "the queue holds MR2PROBE_MAX_QUEUED_JOBS jobs already"}}


@router.post("/jobs", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED,
             summary="Queue an extract, probe, pipeline or label_issues job; returns at once",
             responses={**ERROR_RESPONSES, **_FULL, **BODY_TOO_LARGE})
def create_job(job: JobCreate, store: Store = Depends(get_store), runner: JobRunner = Depends(get_runner),
               settings: Settings = Depends(get_settings)) -> JobAccepted:
    """The request is checked completely first (ids, encoder, devices, probe configs): 404 / 422, no job; an
    encoder weights file named by path must lie under the data root (403, as for data sets)."""
    def weights_path(path: str) -> Path:
        return resolve_under_root(path, settings.data_root, settings.managed_paths)

    runner.check_room()  # before the request's checks, which may open its data set or cache
    row = runner.submit(job.kind, validate_job(job, store, settings.data_root, weights_path))
    return JobAccepted(id=row["id"], status=row["status"], url=f"/api/jobs/{row['id']}")


@router.get("/jobs", response_model=list[JobOut], responses={200: {"headers": TOTAL_COUNT}},
            summary="Jobs, newest first (X-Total-Count: all of them, of the status, kind and run asked)")
def list_jobs(response: Response, status_: JobStatus | None = Query(None, alias="status"),
              kind: JobKindName | None = Query(None, description="only jobs of this kind"),
              run_id: str | None = Query(None, min_length=1, max_length=MAX_ID,
                                         description="only jobs whose request names this run (label_issues)"),
              limit: int = Query(200, ge=1, le=1000), offset: int = OffsetQuery, store: Store = Depends(get_store),
              runner: JobRunner = Depends(get_runner)) -> list[JobOut]:
    """A window of the jobs (``?limit=&offset=``): the jobs past the newest 1,000 could not be listed (an operator
    round with 1,115 jobs). ``?kind=label_issues&run_id=``: a run page's label_issues jobs, running or finished."""
    kind_name = None if kind is None else kind.value
    with store.snapshot():
        set_total(response, store.count_jobs(status_, kind_name, run_id))
        rows = store.list_jobs(status_, limit=limit, offset=offset, kind=kind_name, run_id=run_id)
    return [_out(r, store, runner) for r in rows]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERROR_RESPONSES,
            summary="One job: status, progress, messages, result")
def get_job(job_id: IdPath, store: Store = Depends(get_store), runner: JobRunner = Depends(get_runner)) -> JobOut:
    return _out(store.get_job(job_id), store, runner)


def _out(row: dict, store: Store, runner: JobRunner) -> JobOut:
    """A job as a client reads it; whether it can resume looks up the rows it uses (only for one that could)."""
    could = JobStatus(row["status"]) in RESUMABLE
    out = JobOut.from_row(row, runner.messages.clean, could and store.uses_deleted_rows(row))
    return out.model_copy(update={"what": job_what(out.kind, out.request, row["result"])})


@router.delete("/jobs/{job_id}", response_model=JobOut, responses={**ERROR_RESPONSES, **_CONFLICT},
               summary="Cancel a job (a running one stops at its next chunk; poll until 'cancelled')")
def cancel_job(job_id: IdPath, runner: JobRunner = Depends(get_runner)) -> JobOut:
    row = runner.cancel(job_id)
    out = JobOut.from_row(row, runner.messages.clean)
    return out.model_copy(update={"what": job_what(out.kind, out.request, row["result"])})


@router.post("/jobs/{job_id}/resume", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED,
             responses={**ERROR_RESPONSES, **_CONFLICT, **_FULL},
             summary="Queue an interrupted (or failed) job again; finished steps are kept")
def resume_job(job_id: IdPath, runner: JobRunner = Depends(get_runner)) -> JobAccepted:
    row = runner.resume(job_id)
    return JobAccepted(id=row["id"], status=row["status"], url=f"/api/jobs/{row['id']}")


_UNFINISHED = {409: {"model": ErrorOut, "description": "the job is queued, running or interrupted: cancel it first"}}


@router.delete("/jobs/{job_id}/record", response_model=JobsRemovedOut, responses={**ERROR_RESPONSES, **_UNFINISHED},
               summary="Remove a finished job's record (succeeded, failed or cancelled); its runs and caches stay")
def remove_job(job_id: IdPath, dry_run: bool = DRY_RUN, runner: JobRunner = Depends(get_runner)) -> JobsRemovedOut:
    """The jobs table otherwise grew for ever (``DELETE /api/jobs/{id}`` cancels; an operator round)."""
    return JobsRemovedOut(removed=[runner.remove(job_id, dry_run)["id"]], dry_run=dry_run)


OlderThanQuery = Query(..., ge=0, le=100_000, allow_inf_nan=False,
                       description="remove the records of the jobs that finished (succeeded, failed or cancelled) "
                       "more than this many days ago; 0: every finished job")


@router.delete("/jobs", response_model=JobsRemovedOut, responses=ERROR_RESPONSES,
               summary="Remove the records of finished jobs older than a bound; open jobs, runs and caches stay")
def purge_jobs(older_than_days: float = OlderThanQuery, dry_run: bool = DRY_RUN,
               runner: JobRunner = Depends(get_runner)) -> JobsRemovedOut:
    before = (datetime.now(timezone.utc) - timedelta(days=older_than_days)).isoformat(timespec="milliseconds")
    return JobsRemovedOut(removed=runner.purge(before, dry_run), dry_run=dry_run)
