"""Jobs: explicit states, the handler registry and the three job kinds (extract, probe, pipeline).

A handler takes a :class:`JobContext` and returns the job's result ids (merged into ``jobs.result``).
It records each finished step with ``ctx.record`` as it goes, so a job resumed after an interruption
skips what is already done; extraction itself resumes from its last chunk through the resumable
``feature_cache.extract`` (it keeps a ``*.partial`` file in the cache directory).
"""
from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the store imports JobStatus from here
    from .config import Settings
    from .db import Store

logger = logging.getLogger(__name__)


class JobStatus(str, Enum):
    """Life cycle: queued → running → succeeded | failed | cancelled; running → interrupted (server died
    or stopped) → queued again on resume; queued / interrupted → cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "encoder"


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


def job_resource(kind: str, request: dict[str, Any], device: str) -> str:
    """``"gpu"`` when the job would hold the GPU (one such job at a time), else ``"cpu"``.

    ``device`` is the service's resolved device; a probe config may name its own device.
    """
    if kind == "probe":
        probe_device = str((request.get("config") or {}).get("device") or device)
        if probe_device == "auto":
            probe_device = device
        return "gpu" if probe_device.startswith("cuda") else "cpu"
    return "gpu" if device.startswith("cuda") else "cpu"


def cache_dir_for(settings: Settings, dataset_id: str, encoder_name: str) -> Path:
    """Where the caches of one data set and encoder live (one folder each, so partial files never mix)."""
    return settings.caches_dir / dataset_id / _slug(encoder_name)


def discard_partial_extraction(settings: Settings, job: dict[str, Any]) -> None:
    """Remove the resumable ``*.partial`` file an interrupted extract / pipeline job left (on cancel)."""
    request = job["request"]
    if job["kind"] not in ("extract", "pipeline") or "cache_id" in job["result"]:
        return
    if request.get("dataset_id") and request.get("encoder"):
        for partial in cache_dir_for(settings, request["dataset_id"], request["encoder"]).glob("*.partial"):
            partial.unlink(missing_ok=True)


# -- steps ---------------------------------------------------------------------------------------------
def extract_step(ctx: JobContext, dataset_id: str, encoder_name: str, options: dict[str, Any],
                 start: float = 0.0, span: float = 1.0) -> dict[str, Any]:
    """Extract (or reuse) the feature cache of a data set with one encoder; returns the cache row."""
    from feature_cache import ExtractionCancelled, create_encoder, extract, open_cache, open_dataset

    dataset = ctx.store.get_dataset(dataset_id)
    cache_dir = cache_dir_for(ctx.settings, dataset_id, encoder_name)
    cache_dir.mkdir(parents=True, exist_ok=True)
    val_fraction = options.get("val_fraction", 0.1)
    seed = options.get("seed", 0)
    max_per_class = options.get("max_per_class")
    device = ctx.settings.resolved_device()

    ctx.progress(start, "opening data set")
    data = open_dataset(dataset["path"], val_fraction=val_fraction, seed=seed, max_per_class=max_per_class)
    ctx.check_stop()
    ctx.progress(start, f"building encoder {encoder_name}")
    encoder = create_encoder(encoder_name, device=device)
    ctx.message(f"encoder {encoder_name} ready ({encoder.num_features}-d features, device {device})")
    ctx.check_stop()
    try:
        result = extract(
            data, encoder, cache_dir,
            batch_size=options.get("batch_size") or ctx.settings.extract_batch_size,
            workers=ctx.settings.extract_workers, device=device, val_fraction=val_fraction, seed=seed,
            max_per_class=max_per_class,
            progress=_extract_progress(ctx, start, span), should_stop=ctx.should_stop,
            show_progress=False,
        )
    except ExtractionCancelled as exc:
        if ctx.stop_reason == "cancel":
            # A cancelled extraction leaves nothing behind; an interrupted one keeps its *.partial to resume.
            for partial in cache_dir.glob("*.partial"):
                partial.unlink(missing_ok=True)
        raise JobCancelled(ctx.stop_reason or "cancel") from exc
    cache = open_cache(result.path)
    row = ctx.store.add_cache(
        dataset_id=dataset_id, encoder=encoder_name, path=str(result.path), fingerprint=result.fingerprint,
        num_features=int(cache.num_features), class_names=list(cache.class_names),
        counts=_jsonable(result.counts),
        job_id=ctx.job_id)
    encoded = getattr(result, "encoded", None)  # images encoded by this call (fewer after a resume)
    ctx.message(f"cache {row['id']} {'reused' if result.reused else 'written'}: {result.path}"
                + ("" if encoded is None or result.reused else
                   f" ({encoded} of {sum(dict(result.counts).values())} images encoded in this attempt)"))
    if result.skipped:
        ctx.message(f"{len(result.skipped)} unreadable image(s) skipped")
    ctx.progress(start + span, "features ready")
    return row


def probe_step(ctx: JobContext, cache_id: str, config: dict[str, Any], reference_run: str | None,
               start: float = 0.0, span: float = 1.0) -> dict[str, Any]:
    """Train one probe on a cache, write its report and record the run; returns the run row."""
    from feature_cache import open_cache
    from probe import ProbeConfig, load_report, run_probe

    from .db import new_id

    cache_row = ctx.store.get_cache(cache_id)
    cache = open_cache(cache_row["path"])
    # Precedence as in `mr2probe train`: the request's head, else the encoder's default head, else linear.
    cfg = ProbeConfig.model_validate({"head": getattr(cache, "default_head", None) or "linear", **config})
    reference = None
    if reference_run:
        reference = load_report(ctx.store.get_run(reference_run)["path"])
    data = {split: cache.load(split) for split in ("train", "val", "test") if split in cache.splits}
    if "train" not in data or "test" not in data:
        raise ValueError(f"cache {cache_id!r} needs train and test splits; it has {sorted(cache.splits)}")

    # A run directory left by an interrupted attempt is discarded: probes restart from scratch (cheap).
    stale = ctx.result().get("pending_run")
    if stale:
        shutil.rmtree(ctx.settings.runs_dir / stale, ignore_errors=True)
    run_id = new_id("run")
    out_dir = ctx.settings.runs_dir / run_id
    ctx.record(pending_run=run_id)
    name = f"{getattr(cfg, 'loss', 'probe')}/{getattr(cfg, 'head', '')}".rstrip("/")
    ctx.message(f"training probe {name} on cache {cache_id}"
                + (f" (groups from reference run {reference_run})" if reference_run else ""))
    try:
        report = run_probe(data, list(cache.class_names), cfg, reference=reference, out_dir=out_dir,
                           progress=_probe_progress(ctx, start, span, name),
                           should_stop=ctx.should_stop)
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)  # a half-written run directory is never a run
        if ctx.should_stop():
            raise JobCancelled(ctx.stop_reason or "cancel") from None
        raise
    ctx.check_stop()
    row = ctx.store.add_run(
        run_id=run_id, job_id=ctx.job_id, cache_id=cache_id, name=name, head=getattr(cfg, "head", None),
        loss=getattr(cfg, "loss", None), reference_run=reference_run, path=str(out_dir),
        summary=report.summary.model_dump(mode="json"))
    ctx.record(pending_run=None)
    ctx.message(f"run {run_id}: overall {report.summary.overall:.4f}, hard {report.summary.hard:.4f}")
    ctx.progress(start + span, f"{name} done")
    return row


# -- handlers ------------------------------------------------------------------------------------------
def handle_extract(ctx: JobContext) -> dict[str, Any]:
    req = ctx.request
    cache = extract_step(ctx, req["dataset_id"], req["encoder"], req.get("options") or {})
    return {"cache_id": cache["id"]}


def handle_probe(ctx: JobContext) -> dict[str, Any]:
    req = ctx.request
    run = probe_step(ctx, req["cache_id"], req["config"], req.get("reference_run"))
    return {"run_ids": [run["id"]]}


def handle_pipeline(ctx: JobContext) -> dict[str, Any]:
    """Extraction, then each probe in order; the first probe (ERM) is the others' reference run."""
    req = ctx.request
    done = ctx.result()
    probes: list[dict[str, Any]] = req["probes"]
    extract_span = 0.5
    probe_span = (1.0 - extract_span) / len(probes)
    cache_id = done.get("cache_id")
    if cache_id is None:
        cache_id = extract_step(ctx, req["dataset_id"], req["encoder"], req.get("options") or {},
                                0.0, extract_span)["id"]
        ctx.record(cache_id=cache_id)
    else:
        ctx.message(f"resuming after extraction (cache {cache_id})")
    run_ids: list[str] = list(done.get("run_ids") or [])
    for i, config in enumerate(probes):
        if i < len(run_ids):
            continue
        ctx.check_stop()
        reference = run_ids[0] if i > 0 else None
        run = probe_step(ctx, cache_id, config, reference, extract_span + i * probe_span, probe_span)
        run_ids.append(run["id"])
        ctx.record(run_ids=run_ids)
    return {"cache_id": cache_id, "run_ids": run_ids}


JOB_HANDLERS: dict[str, Callable[[JobContext], dict[str, Any]]] = {
    "extract": handle_extract,
    "probe": handle_probe,
    "pipeline": handle_pipeline,
}

