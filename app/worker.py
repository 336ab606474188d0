"""The background worker: runs queued jobs in threads, one GPU job at a time, CPU jobs up to a bound.

The queue lives in the database, so a restarted server picks up queued jobs where it left off. Start-up
marks jobs that a dead process left ``running`` as ``interrupted``; ``resume`` queues them again.
"""
from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from probe.allocator import share_main_arena

from .config import Settings
from .datadir import lock_data_dir
from .jobs import JobCancelled, JobContext, JobKind
from .messages import ERROR_GIVEN, ClientMessages, given_spans
from .status import ACTIVE, FINISHED, InvalidTransition, JobStatus, NotFound
from .store import CANCEL_REQUESTED, Store, cancel_asked
from .threads import limit_threads

logger = logging.getLogger(__name__)


def retryable(exc: BaseException) -> bool:
    """Whether the same request may succeed when resumed: a failure of the machine (memory, the file system or a
    device, an extraction of the same file in progress elsewhere), not of the request's input (a data set, cache
    or setting that fails the same way again: ValueError, KeyError, TypeError, a missing file, ...). An exception
    may say so itself (its ``retryable``): a data set whose files went away mid-extraction resumes once they are back
    (``feature_cache.DatasetChanged``; its message says so, and the job showed no Resume)."""
    said = getattr(exc, "retryable", None)
    if isinstance(said, bool):
        return said
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return False
    # sqlite3.OperationalError: the service's database held by another process past the wait, read-only or on a full
    # disk while the job wrote its progress (not an OSError: such a job showed no Resume; a failure round)
    return isinstance(exc, (MemoryError, OSError, RuntimeError, TimeoutError, sqlite3.OperationalError))


class JobRunner:
    """Schedules and runs jobs from ``store``.

    Args:
        store: the service database.
        settings: ``cpu_jobs`` bounds concurrent CPU jobs; GPU jobs run one at a time.
        handlers: kind → :class:`~app.jobs.JobKind` (or a bare ``run(ctx)`` callable), e.g.
            :data:`app.steps.JOB_KINDS`.
    """

    def __init__(self, store: Store, settings: Settings,
                 handlers: Mapping[str, JobKind | Callable[[JobContext], dict[str, Any]]]):
        self.store = store
        self.settings = settings
        self.messages = ClientMessages(settings)
        self.handlers = {kind: h if isinstance(h, JobKind) else JobKind(h) for kind, h in handlers.items()}
        self._limits = {"gpu": 1, "cpu": settings.cpu_jobs}
        self._busy = {"gpu": 0, "cpu": 0}
        self._reclaiming = {"gpu": 0, "cpu": 0}  # idle jobs waiting to take their slot back (first, before the queue)
        self._running: dict[str, tuple[JobContext, threading.Thread, str]] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._dispatcher: threading.Thread | None = None
        self._device: str | None = None
        self._lock_file = None
        # outcomes the database could not take (its disk full): written again by the dispatcher until it does
        self._unrecorded: list[tuple[JobContext, BaseException]] = []
        # held by a removal of finished jobs' records, by a resume and by a cancel: a failed job resumed while a
        # removal discarded what it left lost the half-written run it resumes from (a review); a job cancelled as a
        # purge ran lost its record before its cancel answered, a 404 (an attack round)
        self._removing = threading.Lock()

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self, prepare: Callable[[], None] | None = None) -> None:
        """Mark jobs left running by a dead process interrupted, call ``prepare()``, then start dispatching.

        ``prepare`` runs while this runner holds the data directory and no job runs (e.g. a clean-up sweep).

        Raises:
            RuntimeError: another live process already runs the jobs of this data directory.
        """
        self._lock_data_dir()
        try:
            # Jobs run in threads: from the main heap their large buffers are kept between batches and steps
            # (probe.allocator); from an arena of their own, glibc would map every block over 64 MiB afresh.
            share_main_arena()
            if self.settings.threads is not None:
                limit_threads(self.settings.threads)
            self.store.interrupt_running()
            self._cancel_what_was_cancelled()
            if prepare is not None:
                prepare()
        except BaseException:  # the data directory is not held by a runner that did not start (a review)
            self._lock_file.close()
            self._lock_file = None
            raise
        self._stopping = False
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="mr2probe-dispatch", daemon=True)
        self._dispatcher.start()
        logger.info("job worker started (cpu jobs: %d, gpu jobs: 1, threads: %s)", self.settings.cpu_jobs,
                    self.settings.threads or "one per core")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask running jobs to stop; those that stop in time are marked interrupted (resumable)."""
        with self._cond:
            self._stopping = True
            running = list(self._running.values())
            for ctx, _, _ in running:
                # a cancel the user asked for stays one: it ended interrupted, resumable, its partial cache kept,
                # when the server stopped before the job's next check (an operator round)
                ctx.stop_reason = ctx.stop_reason or "shutdown"
            self._cond.notify_all()
        for ctx, _, _ in running:
            ctx.stop_event.set()
        for _, thread, _ in running:
            thread.join(timeout)
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None
        logger.info("job worker stopped")

    def _lock_data_dir(self) -> None:
        """One worker per data directory: a second one would mark the first one's running jobs interrupted."""
        self._lock_file = lock_data_dir(self.settings.data_dir)

    # -- requests -----------------------------------------------------------------------------------
    def check_room(self) -> None:
        """Raise QueueFull when ``max_queued_jobs`` jobs wait already: a client cannot queue work without end (300
        jobs of hours each were accepted from one client in an outside attack round). A cheap early answer before
        a request's checks; submit and resume check again as they queue."""
        self.store.check_room(self.settings.max_queued_jobs)

    def submit(self, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        if kind not in self.handlers:
            raise ValueError(f"Unknown job kind {kind!r}; available: {', '.join(sorted(self.handlers))}")
        job = self.store.add_job(kind, request, self.settings.max_queued_jobs)
        logger.info("job %s queued (%s)", job["id"], kind)
        self.wake()
        return job

    def _cancel_what_was_cancelled(self) -> None:
        """Interrupted jobs whose latest attempt a user cancelled end cancelled (their partial files and runs go, as
        any cancelled job's): left running by a killed server, or interrupted by an older version's stop, they came
        back resumable, 'resume continues it', as if no one had asked (an upgrade round)."""
        for job in self.store.list_jobs(JobStatus.interrupted, limit=-1):
            if cancel_asked(job["messages"]):
                self.cancel(job["id"])  # its files that cannot be removed: the server starts all the same (a review)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued, interrupted or running job (a running one stops at its next check)."""
        job = self.store.get_job(job_id)
        status = JobStatus(job["status"])
        if status in (JobStatus.queued, JobStatus.interrupted):
            try:
                with self._removing:  # a purge of finished jobs' records waits: it took the record of this one
                    cancelled = self.store.cancel_queued(job_id)  # its message names the status it left
                    self._discard(cancelled)
                    return self.store.get_job(job_id)  # what the discard recorded (a kept run listed)
            except InvalidTransition:
                job = self.store.get_job(job_id)  # the dispatcher claimed it meanwhile
                status = JobStatus(job["status"])
        if status is JobStatus.running:
            with self._cond:
                entry = self._running.get(job_id)
            if entry is not None:
                # said before the job is told: it ended "cancelled", then "cancellation requested"; and a message the
                # database refused (a 503, "try again") left the job's stop marked a cancel all the same (an attack
                # round)
                self.store.add_message(job_id, CANCEL_REQUESTED)
                with self._cond:  # under the lock stop() sets "shutdown" under, where it finds no cancel
                    entry[0].stop_reason = "cancel"
                entry[0].stop_event.set()
                return self.store.get_job(job_id)
            status = JobStatus(self.store.get_job(job_id)["status"])  # it ended since it was read (an attack round)
            if status is JobStatus.running:
                raise InvalidTransition(f"job {job_id!r} is running in another process; it cannot be cancelled here")
        raise InvalidTransition(f"job {job_id!r} is already {status.value}; nothing to cancel")

    def _discard(self, job: dict[str, Any]) -> None:
        """What a job cancelled while queued or interrupted left (its kind's ``discard``). Files the file system will
        not let go are said in its messages and left to the next start's sweep: the cancel held, and its HTTP answer
        was a 500 all the same (an attack round)."""
        kind = self.handlers.get(job["kind"])
        try:
            if kind is not None:
                kind.discard(job, self.store, self.settings)
        except OSError as exc:
            logger.exception("job %s: removing the files of its cancellation failed", job["id"])
            self.store.add_message(job["id"], f"its partial files could not be removed now ({exc.strerror or exc}); "
                                   "the server's next start removes them")

    def remove(self, job_id: str, dry_run: bool = False) -> dict[str, Any]:
        """Remove a finished job's record (``DELETE /api/jobs/{id}/record``); returns its row. A queued, running or
        interrupted job is refused (InvalidTransition, a 409): it is cancelled first."""
        job = self.store.get_job(job_id)
        status = JobStatus(job["status"])
        if status not in FINISHED:
            raise InvalidTransition(f"job {job_id!r} is {status.value}; only a finished job (succeeded, failed or "
                                    f"cancelled) can be removed: cancel it first (DELETE /api/jobs/{job_id})")
        if not dry_run and not self._remove([job]):
            raise InvalidTransition(f"job {job_id!r} is {self.store.get_job(job_id)['status']} now; only a finished "
                                    "job can be removed")
        return job

    def purge(self, before: str, dry_run: bool = False) -> list[str]:
        """Remove the records of every job that finished before ``before`` (an ISO time); returns their ids."""
        jobs = self.store.finished_jobs(before)
        return [job["id"] for job in jobs] if dry_run else self._remove(jobs)

    def _remove(self, jobs: list[dict[str, Any]]) -> list[str]:
        """Delete finished jobs' rows, first what they left that only a resume or the start-up sweep would find
        (the kind's ``discard``: a failed job's partial extraction and half-written run, which no row would name
        afterwards); the runs and caches they made stay. Each is read again under a lock a resume takes too: one
        resumed since it was read keeps its record and what it resumes from. Returns the ids deleted."""
        with self._removing:
            return self._remove_finished([job for job in map(self._still_finished, jobs) if job is not None])

    def _still_finished(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """``job``'s row read again, None where it is gone or no longer finished (resumed since it was read)."""
        try:
            row = self.store.get_job(job["id"])
        except NotFound:
            return None
        return row if JobStatus(row["status"]) in FINISHED else None

    def _remove_finished(self, jobs: list[dict[str, Any]]) -> list[str]:
        for job in jobs:
            kind = self.handlers.get(job["kind"])
            try:
                if kind is not None:
                    kind.discard(job, self.store, self.settings)
            except OSError:  # its files could not all be removed: the record goes all the same (as at a start)
                logger.exception("job %s: removing the files it left failed", job["id"])
        removed = self.store.remove_finished_jobs([job["id"] for job in jobs])
        if removed:
            logger.info("removed %d finished job record(s): %s", len(removed), ", ".join(removed[:5]))
        return removed

    def resume(self, job_id: str) -> dict[str, Any]:
        with self._removing:  # not while a removal discards what the job left
            job = self.store.resume(job_id, self.settings.max_queued_jobs)  # "resumed" added with the change
        self.wake()
        return job

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
        """Block until the job leaves queued/running (used by the demo and tests)."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.store.get_job(job_id)
            if JobStatus(job["status"]) not in ACTIVE:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id!r} still {job['status']} after {timeout} s")
            time.sleep(poll)

    # -- scheduling ---------------------------------------------------------------------------------
    def _device_name(self) -> str:
        if self._device is None:
            self._device = self.settings.resolved_device()
        return self._device

    def _dispatch_loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
            try:
                self._record_unrecorded()
                self._dispatch_once()
            except Exception:  # the loop must survive a bad row or a locked database
                logger.exception("job dispatcher error")
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(timeout=1.0)

    def _dispatch_once(self) -> None:
        for job in self.store.next_queued():
            if job["kind"] not in self.handlers:
                continue
            resource = self.handlers[job["kind"]].resource(job["request"], self._device_name())
            with self._cond:
                if self._stopping or self._busy[resource] + self._reclaiming[resource] >= self._limits[resource]:
                    continue
                try:
                    job = self.store.claim(job["id"])
                except (InvalidTransition, NotFound):
                    continue
                ctx = JobContext(job=job, store=self.store, settings=self.settings)
                ctx.idle = functools.partial(self._idle, resource, ctx)
                thread = threading.Thread(target=self._run, args=(ctx, resource),
                                          name=f"mr2probe-{job['id']}", daemon=True)
                self._busy[resource] += 1
                self._running[job["id"]] = (ctx, thread, resource)
                # Started under the lock, so stop() never sees (and joins) a thread that has not started.
                thread.start()

    @contextmanager
    def _idle(self, resource: str, ctx: JobContext) -> Iterator[None]:
        """``JobContext.idle``: a running job that waits on another gives its slot to a queued job meanwhile, and
        takes it back as soon as one is free, before the queue does (or at once when it is asked to stop)."""
        with self._cond:
            self._busy[resource] -= 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._reclaiming[resource] += 1
                while self._busy[resource] >= self._limits[resource] and not (self._stopping or ctx.should_stop()):
                    self._cond.wait(timeout=1.0)
                self._reclaiming[resource] -= 1
                self._busy[resource] += 1

    def _run(self, ctx: JobContext, resource: str) -> None:
        job_id = ctx.job_id
        handler = self.handlers[ctx.job["kind"]].run
        try:
            result = handler(ctx)
            # A stop request that arrives after the last step is too late: the work is done and recorded.
            self.store.update_result(job_id, **(result or {}))
            self.store.finish(job_id, JobStatus.succeeded, stage="done")
            logger.info("job %s finished", job_id)
        except BaseException as exc:  # noqa: BLE001 - every outcome must be written down
            self._record_failure(ctx, exc)
        finally:
            self.store.close_thread_connection()  # the job's thread ends here
            with self._cond:
                self._busy[resource] -= 1
                self._running.pop(job_id, None)
                self._cond.notify_all()

    def _record_failure(self, ctx: JobContext, exc: BaseException) -> None:
        if not (ctx.should_stop() or isinstance(exc, JobCancelled)):
            logger.error("job %s failed", ctx.job_id, exc_info=exc)
        try:
            self._write_outcome(ctx, exc)
        except Exception:
            # a full disk refuses the database's write too: the job stayed 'running' with no thread, neither
            # cancellable nor resumable until a restart (an operator round); the dispatcher writes it again
            logger.exception("could not record the outcome of job %s; trying again every second", ctx.job_id)
            with self._cond:
                self._unrecorded.append((ctx, exc))

    def _write_outcome(self, ctx: JobContext, exc: BaseException) -> None:
        """The job's end, in the database: interrupted (the server stops), cancelled or failed."""
        job_id = ctx.job_id
        # the messages end with what became of the job (a cancelled one ended on "encoder ready"; a new-user round)
        if ctx.should_stop() and ctx.stop_reason == "shutdown":
            self.store.interrupt(job_id)
            ctx.message(f"interrupted: the server stopped; POST /api/jobs/{job_id}/resume continues it")
        elif ctx.should_stop() or isinstance(exc, JobCancelled):
            self.store.finish(job_id, JobStatus.cancelled, stage="cancelled")
            ctx.message("cancelled")
        else:
            given = given_spans(exc)  # the user's own words it quotes (an archive's member name), kept as read back
            error = self.messages.clean(f"{type(exc).__name__}: {exc}", given)  # the log keeps the paths
            ctx.record(retryable=retryable(exc), **{ERROR_GIVEN: list(given)})
            self.store.finish(job_id, JobStatus.failed, error=error, stage="failed")

    def _record_unrecorded(self) -> None:
        """Write the outcomes :meth:`_record_failure` could not, now that the database may take them."""
        with self._cond:
            pending, self._unrecorded = self._unrecorded, []
        for ctx, exc in pending:
            try:
                self._write_outcome(ctx, exc)
            except InvalidTransition:
                pass  # its status was written, its message not: done
            except Exception:
                with self._cond:
                    self._unrecorded.append((ctx, exc))
                continue
            logger.info("job %s: its outcome is recorded now", ctx.job_id)
