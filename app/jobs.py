"""What a job handler sees and declares: :class:`JobContext` (its row, progress, stop hooks) and :class:`JobKind`.

The worker (:mod:`app.worker`) knows nothing else of a job: a kind's ``run`` takes a context and returns the
job's result ids (merged into ``jobs.result``); ``resource`` says whether it holds the GPU; ``discard`` cleans
up after a job that is cancelled while not running. The kinds themselves live in :mod:`app.steps`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings
    from .store import Store

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a handler when its job was asked to stop (cancel or server shutdown)."""


@dataclass
class JobContext:
    """What a handler may use: its job row, the store, the settings and progress/stop hooks."""

    job: dict[str, Any]
    store: Store
    settings: Settings
    stop_event: threading.Event = field(default_factory=threading.Event)
    stop_reason: str | None = None  # "cancel" (user) or "shutdown" (server stopping)
    # ``with ctx.idle():`` around a wait on another job: its worker slot runs a queued job meanwhile (the runner's)
    idle: Callable[[], AbstractContextManager] = nullcontext
    _last_write: float = 0.0
    _last_stage: str | None = None

    @property
    def job_id(self) -> str:
        return self.job["id"]

    @property
    def request(self) -> dict[str, Any]:
        return self.job["request"]

    def result(self) -> dict[str, Any]:
        """Results recorded so far (also those of an earlier, interrupted attempt)."""
        return dict(self.store.get_job(self.job_id)["result"])

    def record(self, **values: Any) -> None:
        self.store.update_result(self.job_id, **values)

    def progress(self, fraction: float, stage: str | None = None) -> None:
        """Report progress in [0, 1]; writes are throttled to ~5/s unless the stage changes."""
        now = time.monotonic()
        if stage == self._last_stage and now - self._last_write < 0.2 and fraction < 1.0:
            return
        self._last_write, self._last_stage = now, stage
        self.store.update_progress(self.job_id, fraction, stage)

    def message(self, text: str) -> None:
        logger.info("job %s: %s", self.job_id, text)
        self.store.add_message(self.job_id, text)

    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def check_stop(self) -> None:
        if self.stop_event.is_set():
            raise JobCancelled(self.stop_reason or "cancel")


def default_resource(request: dict[str, Any], device: str) -> str:
    """``"gpu"`` when the service's resolved ``device`` is a GPU (one such job at a time), else ``"cpu"``."""
    return device_resource(None, device)


def device_resource(job_device: str | None, device: str) -> str:
    """The slot of a job that trains on ``job_device`` (a probe config's ``device``; None or ``auto``: the service's
    resolved ``device``): ``"gpu"`` for a CUDA device, else ``"cpu"``."""
    chosen = str(job_device or device)
    return "gpu" if (device if chosen == "auto" else chosen).startswith("cuda") else "cpu"


def _nothing_to_discard(job: dict[str, Any], store: Store, settings: Settings) -> None:
    return None


@dataclass(frozen=True)
class JobKind:
    """One entry of the worker's registry.

    Attributes:
        run: ``run(ctx) -> result`` (ids merged into the job's result).
        resource: ``resource(request, service_device) -> "gpu" | "cpu"``.
        discard: ``discard(job, store, settings)``: remove what a job cancelled while queued or interrupted left
            (and no other job owns).
    """

    run: Callable[[JobContext], dict[str, Any]]
    resource: Callable[[dict[str, Any], str], str] = default_resource
    discard: Callable[[dict[str, Any], Store, Settings], None] = _nothing_to_discard
