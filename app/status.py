"""Job states and the store's errors: the vocabulary shared by the store, the worker and the API."""
from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
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


# write errors that say the server has no room: what happened, what an upload (a 507) and a job do about it
NO_ROOM = {
    errno.ENOSPC: ("the server's disk is full", "try again once space is freed", "free space on that disk"),
    errno.EDQUOT: ("the server's disk is full", "try again once space is freed", "free space on that disk"),
    # a file-size limit (ulimit -f, or the file system's own): a 500 'internal server error (OSError)' (an attack round)
    errno.EFBIG: ("the server cannot store a file this large (its file system or its process limits a file's size)",
                  "register the folder or archive by its path on the server instead (under MR2PROBE_DATA_ROOT)",
                  "raise the service's file-size limit (ulimit -f), or move its data directory (MR2PROBE_DATA_DIR) "
                  "to a file system that takes larger files"),
}


@contextmanager
def job_no_room(what: str, kept: str) -> Iterator[None]:
    """Within the block, a job writes ``what`` (its run's files, its feature cache): a write error of
    :data:`NO_ROOM` is raised again saying what happened, what it wrote, what of it is ``kept``, and what to do
    before a resume. A full disk or a file-size limit ended the job 'OSError: [Errno 27] File too large' (a
    follow-up round). Still an OSError of the same errno: the job stays retryable."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            raise
        happened, _, remedy = NO_ROOM[exc.errno]
        raise OSError(exc.errno, f"{happened}: {what} could not be written ({exc.strerror or exc}); {kept}: "
                                 f"{remedy}, then resume the job") from exc


class QueueFull(RuntimeError):
    """The job queue holds ``Settings.max_queued_jobs`` jobs already (the API answers 429)."""


class InvalidTransition(ValueError):
    """A job status change that its current status does not allow (the API turns it into 409)."""
