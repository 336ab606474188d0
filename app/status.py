"""Job states and the store's errors: the vocabulary shared by the store, the worker and the API."""
from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """Life cycle: queued → running → succeeded | failed | cancelled; running → interrupted (server died
    or stopped); interrupted or failed (``RESUMABLE``) → queued again on resume; queued / interrupted → cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"


# The states by what follows them, one definition for the store, the worker, the CLI and the pages (/words.js):
ACTIVE = (JobStatus.queued, JobStatus.running)  # a worker will run it on: pages poll it, the CLI waits for it
UNSUCCESSFUL = (JobStatus.failed, JobStatus.cancelled)  # ended without a result: the launch page offers its settings
FINISHED = (JobStatus.succeeded, *UNSUCCESSFUL)  # the ends a worker records
RESUMABLE = (JobStatus.interrupted, JobStatus.failed)  # resume queues it again
# A job that may still run and read the rows it names: a deletion waits for it, and it can be cancelled (the
# launch page kept polling an interrupted job, which no worker runs, once a second for ever; a review)
OPEN = (*ACTIVE, JobStatus.interrupted)


# What a user calls a row of each table, in every message that names one (404s, deletions).
NOUNS = {"datasets": "data set", "caches": "cache", "runs": "run", "jobs": "job", "samples": "sample"}


class NotFound(KeyError):
    """A row that the caller named does not exist (the API turns it into 404)."""

    def __init__(self, table: str, row_id: str):
        super().__init__(f"{NOUNS[table]} {row_id!r} not found")
        self.table, self.row_id = table, row_id
        # the caller's own words, shown as sent (app.messages.given_spans): a sample '/etc/passwd' asked for was
        # answered "sample '<server path>' not found" (an extremes round)
        self.given = (repr(row_id),)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class UploadsBusy(RuntimeError):
    """``Settings.max_uploads`` uploads are streaming already (the API answers 429)."""


class UploadStalled(RuntimeError):
    """An upload sent nothing for ``Settings.upload_idle_seconds`` (the API answers 408)."""


class NoSpace(OSError):
    """The disk of the data directory is full: an upload could not be stored (the API answers 507)."""


class QueueFull(RuntimeError):
    """The job queue holds ``Settings.max_queued_jobs`` jobs already (the API answers 429)."""


class InvalidTransition(ValueError):
    """A job status change that its current status does not allow (the API turns it into 409)."""
