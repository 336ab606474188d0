"""Multi-process extraction with ``torch.distributed``: shard the data set, encode, merge in order.

Run with torchrun (one process per GPU; gloo on CPU)::

    torchrun --nproc-per-node 4 -m feature_cache.distributed --data DATA --encoder effnet-lite0 --out CACHE.h5

Every rank opens the same data set (the split is seeded, so all ranks see the same sample lists) and
encodes a contiguous block of each split (:func:`shard_bounds`) into its own shard file
``<final>.shard<r>-of-<w>.h5`` (itself written through a resumable ``.partial`` file, so a restarted job
keeps finished shards and resumes unfinished ones). Rank 0 holds the cache's lock as ``extract`` does
(``<final>.lock``: another extraction of it, one process or torchrun's, is refused meanwhile) and removes the
temporary copies a killed merge left. After a barrier, rank 0 concatenates the shards in rank order — which is
the original sample order — into the final cache (temp file + ``os.replace``) and
deletes them, and the shards of runs with another number of processes as well
(:func:`~feature_cache.extract.remove_stale_shards`).
An existing final cache with the same fingerprint is reused without encoding anything.
"""
from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import h5py
import torch
import torch.distributed as dist
# torch.distributed.nn's functions default to the default group as it is when the module is first imported
# (``group=group.WORLD`` arguments). Imported after init_process_group (torchvision imports it, for the encoder's
# transform), they kept the gloo group alive after destroy_process_group, its threads with it, until the interpreter's
# teardown; imported before any group exists, they hold None.
import torch.distributed.nn  # noqa: F401

from .datasets import SPLITS, LabelledImages, Sample
from .defaults import MAX_WORKERS
from .encoders import Encoder
from .errors import DatasetError, ExtractionBusy
from .extract import (ExtractionPlan, ExtractResult, _exclusive, _existing, _remove_orphaned_copies, _shard_files,
                      check_decodable, plan_extraction, remove_stale_shards, resolve_workers, rotated_lines,
                      rotated_of, run_plan, shard_path)
from .options import add_extract_arguments, check_options, found, open_requested, said_after, said_before, skipped_lines
from .store import SHARD_ATTR, _set_attrs, _write_split, cache_bytes, library_versions, open_cache, replacing_file

__all__ = ["shard_bounds", "shard_splits", "shard_path", "merge_shards", "extract_distributed", "main"]

logger = logging.getLogger(__name__)


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of rank's contiguous block of n items; block sizes differ by at most one."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}.")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_splits(splits: dict[str, list[Sample]], rank: int, world_size: int) -> dict[str, list[Sample]]:
    """Each split's contiguous block for ``rank``."""
    return {name: samples[slice(*shard_bounds(len(samples), rank, world_size))] for name, samples in splits.items()}


def merge_shards(shards: Sequence[Path], final: Path, attrs: dict[str, Any]) -> Path:
    """Concatenate finished shard caches (in the given order) into ``final``, atomically, chunk by chunk."""
    first = open_cache(shards[0], shard=True)
    d = first.num_features
    totals = {s: 0 for s in SPLITS}
    skipped: list[list[str]] = []
    rotated: list[str] = []
    digested = True  # every shard keeps its rows' content digests (one resumed from an older partial file: not)
    for path in shards:
        cache = open_cache(path, shard=True)
        digested = digested and all(cache.digests(split) is not None for split in cache.splits)
        if cache.num_features != d or cache.fingerprint != first.fingerprint:
            raise ValueError(f"shard {path} does not belong with {shards[0]} (width or fingerprint differs).")
        for split in SPLITS:
            totals[split] += cache.split_sizes.get(split, 0)
        skipped += cache.attrs.get("skipped", [])
        rotated += rotated_of(cache)
    with replacing_file(final, needs=cache_bytes(totals, d, first.dtype)) as out:  # every split's dtype
        first_attrs = {key: value for key, value in first.attrs.items() if key != SHARD_ATTR}
        _set_attrs(out, {**first_attrs, **attrs, "skipped": attrs.get("skipped", []) + skipped, "rotated": rotated})
        for split in SPLITS:
            with h5py.File(shards[0], "r") as src:
                dtype = src[split]["features"].dtype
            _write_split(out, split, d, str(dtype), totals[split], _shard_blocks(shards, split), digested=digested)
    for path in shards:
        path.unlink()
    return final


def _shard_blocks(shards: Sequence[Path], split: str, block_rows: int = 8192):
    """(features, labels, sources, content digests or None) of ``split`` of every shard in order, ``block_rows`` rows
    at a time."""
    for path in shards:
        with h5py.File(path, "r") as src:
            group = src[split]
            n = group["features"].shape[0]
            for start in range(0, n, block_rows):
                end = min(n, start + block_rows)
                yield (group["features"][start:end], group["labels"][start:end], group["sources"][start:end],
                       group["digests"][start:end] if "digests" in group else None)


# Set on an exception that every rank raised alike (a refusal rank 0 decided and told the others, a failure of one
# rank's that all were told, a class left without images): main() has rank 0 alone print it
_EVERY_RANK = "raised_on_every_rank"


def _decided_by_rank0(decide: Callable[[], Any], rank: int) -> Any:
    """``decide()``'s result on rank 0, handed to every rank; an exception it raised (a ``CacheMismatch`` of an
    ``--out`` file of other settings) is raised on every rank. Rank 0 raising alone left the others waiting in the
    next collective until torchrun killed them (SIGTERM), and the user read torchrun's failure report."""
    outcome: list[Any] = [None]
    if rank == 0:
        try:
            outcome[0] = (True, decide())
        except Exception as exc:  # noqa: BLE001 - handed to every rank, raised there
            outcome[0] = (False, _travelling(exc))
    dist.broadcast_object_list(outcome, src=0)
    ok, value = outcome[0]
    if not ok:
        setattr(value, _EVERY_RANK, True)
        raise value
    return value


def _done_on_every_rank(step: Callable[[], Any]) -> Any:
    """``step()`` on every rank (opening the data set, building the encoder); when it fails on any rank, the first
    such rank's exception is raised on every rank (each rank raising its own, the first to exit had the others
    killed, and each printed the same error)."""
    try:
        value, failure = step(), None
    except Exception as exc:  # noqa: BLE001 - handed to every rank, raised there
        value, failure = None, exc
    failures: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(failures, None if failure is None else _travelling(failure))
    first = next((exc for exc in failures if exc is not None), None)
    if first is not None:
        setattr(first, _EVERY_RANK, True)
        raise first
    return value


def _travelling(exc: Exception) -> Exception:
    """``exc``, or where it cannot be pickled (to another rank), a RuntimeError of its text."""
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - an exception that does not travel: its text does
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def extract_distributed(
    data: str | Path | LabelledImages,
    encoder: str | Encoder,
    cache_dir: str | Path | None,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    show_progress: bool = True,
    tune_allocator: bool = False,
    **plan: Any,
) -> ExtractResult:
    """:func:`~feature_cache.extract` across the processes of an initialised default process group.

    ``plan``: :func:`~feature_cache.extract.plan_extraction`'s keywords (``device``, ``precision``, ``val_fraction``,
    ``seed``, ``max_per_class``, ``out``, ``dtype``), its defaults where left out; ``device="auto"`` with CUDA is this
    rank's GPU (``LOCAL_RANK``).
    Every rank returns the same :class:`ExtractResult` (``encoded`` summed over ranks). A class left
    without a decodable ``train`` / ``test`` image raises the same ``DatasetError`` on every rank, before
    the merge (the shards are kept: they are complete). ``tune_allocator``: as :func:`~feature_cache.extract`'s
    (off by default; :func:`main`, a process of its own, turns it on).

    Raises, on every rank alike (none left waiting for the others): what :func:`plan_extraction` raises on any
    rank; ``CacheMismatch`` for an ``out`` file of other settings and ``ExtractionBusy`` while another extraction
    of the cache runs (one process or torchrun's: rank 0 holds the cache's lock as ``extract`` does); what a rank's
    encoding of its shard raises (a ``DatasetChanged`` of a file moved meanwhile); a failed merge.
    """
    if not dist.is_initialized():
        raise RuntimeError("extract_distributed needs torch.distributed.init_process_group() first (use torchrun).")
    rank, world = dist.get_rank(), dist.get_world_size()
    if plan.get("device", "auto") == "auto" and torch.cuda.is_available():
        plan["device"] = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
    planned = _done_on_every_rank(lambda: plan_extraction(data, encoder, cache_dir, **plan))
    if workers is None and planned.encoder.device.type == "cuda":  # the node's cores shared by its ranks
        workers = resolve_workers(None, planned.encoder.device,
                                  sharing=int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    with ExitStack() as held:  # rank 0 holds the cache's lock until the merge is done
        found = _decided_by_rank0(lambda: _claim(planned, world, held), rank)
        if found is not None:
            return found
        return _encode_and_merge(planned, rank, world, batch_size=batch_size, workers=workers,
                                 show_progress=show_progress, tune_allocator=tune_allocator)


def _claim(plan: ExtractionPlan, world: int, held: ExitStack) -> ExtractResult | None:
    """Rank 0: the finished cache that answers ``plan``, else none, ``plan``'s cache locked in ``held`` as
    :func:`~feature_cache.extract` locks it (:class:`ExtractionBusy` while another extraction of it runs, one
    process or torchrun's) and the temporary copies that a killed merge or shard finalisation left removed.
    The shards of ``plan``'s cache that no run resumes once it is finished are removed
    (:func:`~feature_cache.extract.remove_stale_shards`) when it is, and named when it is not."""
    found = _existing(plan)
    if found is None:
        held.enter_context(_exclusive(plan.path))
        found = _existing(plan)  # another extraction may have finished it just before we locked
        if found is None:  # the copies ``.<final>.*.tmp``: the shards' (``.<final>.shard0-of-2.h5.<pid>.tmp``) too
            _remove_orphaned_copies(plan.path)
            _name_other_shards(plan.path, world)
            return None
    elif found.path == plan.path:
        try:
            held.enter_context(_exclusive(plan.path))
        except ExtractionBusy:  # its shards are another extraction's business (it is finishing)
            return found
        except OSError as exc:  # a folder this user cannot write (a shared cache): reused as `extract` reuses it
            logger.info("%s reused without its lock (%s)", plan.path, exc)
            return found
    if found.path == plan.path:
        remove_stale_shards(plan.path)
    return found


def _name_other_shards(final: Path, world: int) -> None:
    """Log the shard files of ``final`` that a run with another number of processes left: kept, a run with as many
    resumes from them, until ``final`` is finished."""
    others = [(path, w) for path, w in _shard_files(final) if w != world]
    for size in sorted({w for _, w in others}):
        logger.warning("%s: %d shard files of an unfinished %d-process extraction (%s.shard*-of-%d.h5*) are kept while "
                       "a %d-process run can resume from them, and removed once this run is finished", final.name,
                       sum(w == size for _, w in others), size, final.name, size, size)


def _encode_and_merge(plan: ExtractionPlan, rank: int, world: int, *, batch_size: int, workers: int | None,
                      show_progress: bool, tune_allocator: bool) -> ExtractResult:
    """Encode this rank's shard (or keep it, finished), then on rank 0 merge every shard into ``plan.path``.

    A rank's failure to encode its shard (a file of the data set moved meanwhile: ``DatasetChanged``) is raised on
    every rank: the others waited for it in the next collective, which failed when it exited ('Connection closed by
    peer', a trace of each), and torchrun killed them."""
    own = shard_path(plan.path, rank, world)
    encoded = _done_on_every_rank(lambda: _encode_shard(plan, own, rank, world, batch_size=batch_size,
                                                        workers=workers, show_progress=show_progress,
                                                        tune_allocator=tune_allocator))
    total = torch.tensor([encoded], dtype=torch.int64)
    dist.all_reduce(total)
    skipped_by_rank: list[Any] = [None] * world
    dist.all_gather_object(skipped_by_rank, open_cache(own, shard=True).attrs.get("skipped", []))
    # every rank knows every shard's failures and leaves the collective together, to raise the same error or to
    # merge: a rank that raised straight after all_gather_object aborted ("terminate called") under load
    dist.barrier()
    try:
        check_decodable(plan.data, [s for rank_skipped in skipped_by_rank for s in rank_skipped])
    except DatasetError as exc:
        setattr(exc, _EVERY_RANK, True)
        raise
    _decided_by_rank0(lambda: _merge(plan, world), rank)  # a failed merge (a full disk) refused on every rank
    cache = open_cache(plan.path)
    skipped = [tuple(s) for s in cache.attrs.get("skipped", [])]
    return ExtractResult(plan.path, plan.fingerprint, False, skipped, dict(cache.split_sizes), int(total.item()),
                         rotated_of(cache))


def _encode_shard(plan: ExtractionPlan, own: Path, rank: int, world: int, *, batch_size: int, workers: int | None,
                  show_progress: bool, tune_allocator: bool) -> int:
    """Encode this rank's block of every split into its shard file ``own`` (kept when finished); the images encoded."""
    if own.exists() and open_cache(own, shard=True).fingerprint == plan.fingerprint:
        logger.info("rank %d: shard %s already finished", rank, own)
        return 0
    partial, encoded = run_plan(
        plan,
        splits=shard_splits(plan.data.splits, rank, world),
        batch_size=batch_size,
        workers=workers,
        partial_path=own.with_name(own.name + ".partial"),
        show_progress=show_progress and rank == 0,
        tune_allocator=tune_allocator,
    )
    # this rank's decode failures: what check_decodable and the merged cache's `skipped` read of every shard
    partial.finalize(own, {"created_at": "", "versions": library_versions(), "skipped": partial.skipped,
                           "rotated": partial.rotated, SHARD_ATTR: f"{rank}-of-{world}"})
    return encoded


def _merge(plan: ExtractionPlan, world: int) -> None:
    from datetime import datetime, timezone

    merge_shards(
        [shard_path(plan.path, r, world) for r in range(world)],
        plan.path,
        {**plan.attrs, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # as extract's _finish
         "versions": library_versions(), "skipped": [list(s) for s in plan.data.skipped]},
    )
    logger.info("merged %d shards into %s", world, plan.path)
    remove_stale_shards(plan.path)


WORKERS_HELP = ("DataLoader worker processes per rank (default: one per torch thread on CPU, each decoding and encoding "
                f"with one thread; on CUDA decoding, the node's cores shared by its ranks, 2 to 8); at most {MAX_WORKERS}")


def build_parser() -> argparse.ArgumentParser:
    """The command's options: `mr2probe extract`'s (:func:`~feature_cache.options.add_extract_arguments`, the same
    meaning and defaults) and ``--backend``."""
    parser = argparse.ArgumentParser(prog="python -m feature_cache.distributed", description=__doc__.split("\n")[0])
    add_extract_arguments(parser, workers_help=WORKERS_HELP)
    parser.add_argument("--backend", default=None, help="nccl (default with CUDA) or gloo")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """torchrun entry point (see module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend=backend)
    try:
        _done_on_every_rank(lambda: check_options(args))  # in `mr2probe extract`'s words, before the data set is read
        data = _done_on_every_rank(lambda: open_requested(args))
        # as `mr2probe extract`: a --max-per-class that leaves no validation image refused before any image is encoded
        warned = _done_on_every_rank(lambda: said_before(data, args.val_fraction, args.max_per_class))
        if dist.get_rank() == 0:  # what `mr2probe extract` says before it starts, once
            for line in [found(data), *warned]:
                print(line, file=sys.stderr, flush=True)
        result = extract_distributed(
            data, args.encoder, None if args.out else args.cache_dir, batch_size=args.batch_size,
            workers=args.workers, device=args.device, precision=args.precision,
            out=args.out, dtype=args.dtype, show_progress=not args.no_progress,
            tune_allocator=True,  # a process of its own: keep freed memory (probe.allocator)
        )
        if dist.get_rank() == 0:
            print(json.dumps({"path": str(result.path), "fingerprint": result.fingerprint, "reused": result.reused,
                              "counts": result.counts, "encoded": result.encoded, "skipped": len(result.skipped)}),
                  flush=True)
            for line in [*skipped_lines(result.skipped), *rotated_lines(result.rotated),
                         *said_after(result.path, data, warned)]:
                print(line, file=sys.stderr, flush=True)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        # one line, as `mr2probe extract` prints: a caller's mistake (an --out file of other settings, a class left
        # without images) 2; what the machine refused (a CUDA out-of-memory error, a RuntimeError) or an extraction
        # of the same cache running now (ExtractionBusy) 1
        return _refused(parser.prog, exc)
    except KeyboardInterrupt:  # Ctrl-C, which torchrun hands to every rank: a trace of each rank's wait, as one line
        if dist.get_rank() == 0:
            print(f"{parser.prog}: interrupted; the images encoded so far are kept: the same command with as many "
                  "processes resumes", file=sys.stderr, flush=True)
        return 130  # 128 + SIGINT, as `mr2probe extract`
    finally:
        dist.destroy_process_group()
    return 0


def _refused(prog: str, exc: BaseException) -> int:
    """Print ``exc`` in one line (on rank 0 alone when every rank raised it) and return the exit code.

    When every rank raised it, a rank that torchrun stops with SIGTERM (it does so to the others as soon as one
    process exits non-zero) exits with that code at once: its report then gives every rank the refusal's code, not
    'Signal 15 (SIGTERM) received' for all but the first to exit."""
    rank, code = dist.get_rank(), 2 if isinstance(exc, (ValueError, KeyError, FileNotFoundError)) else 1
    every_rank = getattr(exc, _EVERY_RANK, False)
    if rank == 0 or not every_rank:
        message = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc
        where = f" (rank {rank})" if rank else ""
        print(f"{prog}: error{where}: {message}", file=sys.stderr, flush=True)
    if every_rank:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(code))
        # the interpreter's finalisation puts a Python handler back to the default (death by the signal) and keeps
        # SIG_IGN: a rank that torchrun stopped while it finalised, after the others' exit, was reported killed by
        # SIGTERM (-15) in most runs; it exits with ``code`` on its own then
        atexit.register(signal.signal, signal.SIGTERM, signal.SIG_IGN)
        dist.barrier()  # every rank's handler set before any of them exits
    return code


if __name__ == "__main__":
    sys.exit(main())
