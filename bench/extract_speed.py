"""Extraction throughput at the old and the new settings, against the bare forward pass, and HDF5 load speed.

    nice python bench/extract_speed.py --data ../shared/data/cifar10-jpeg.zip --max-per-class 20 \
        --encoder effnet-lite0 --batch-size 64 --threads 2 --repeats 3

Settings (each measured in a fresh child process, because the allocator setting holds for a whole process):

- ``old``: the pipeline before issue 17 as far as settings go: fp32, contiguous (NCHW) tensors, glibc's
  default allocator (``tune_allocator=False``), 2 DataLoader worker processes that only decode (the old
  default; today's CPU workers encode too, so this setting puts back the decoding-only collation). What the
  settings cannot bring back is the old DataLoader per split and the old per-image PIL resize + ``ToTensor``
  + ``Normalize`` in float (the transform now yields uint8 and ``encode`` normalises the batch), so this
  baseline is faster than the old code was.
- ``fp32-unfused``: channels-last, allocator kept (``probe.allocator``), fp32, ``--workers`` (default:
  the extractor's own choice, ``feature_cache.extract.resolve_workers``: 0 on CPU), the model as loaded.
- ``fp32``: the same with BatchNorms and activations fused into their convolutions (``feature_cache.fusion``,
  the default of ``create_encoder``).
- ``bf16-unfused`` and ``bf16``: the same two with bfloat16 autocast (only on a CPU with native bfloat16;
  ``fp16`` on CUDA).
- ``thread`` and ``job`` (only when ``--settings`` names them): the default precision, fused, with
  ``extract()`` called from a new thread as the service's job worker calls it (``app.worker``). ``thread``
  leaves glibc to give that thread an arena of its own (the service up to this round: the allocator setting
  did not hold there for blocks over 64 MiB); ``job`` calls ``probe.allocator.share_main_arena`` first, as
  the job worker now does.

Per setting and repeat: ``bare`` = ``encoder.encode`` on a ready batch (normalised float32 in the encoder's
memory format: no decoding, normalisation, layout copy or I/O), as many images as the extraction, in this
process over ``--threads`` threads; ``bare ×W`` = the same forward in W = ``--threads`` forked processes of one
thread each, side by side (images of all of them over the wall time from a common start): what a CPU can do
with the same cores used as processes, as the extractor's CPU workers use them; ``extract`` =
``extract()`` end to end (decoding JPEGs from the archive, resize, normalisation, forward, float16 HDF5 writes);
``steady`` = the extraction's images/s once every worker has handed over its first batch
(:func:`steady_rate`: without the pipeline fill and the final write, which ``extract`` includes; ``start s`` is the
time to the first written batch); CPU ms per image (process + workers) and minor page faults of the extraction.
Repeats are interleaved (old, fp32-unfused, fp32, ..., old, ...), medians shown: the machine is shared, so the
spread is printed too. Ratios:
extract ÷ bare of the same setting (target ≥ 0.9) and extract ÷ the old extract (target ≥ 2.5 on 2 CPU cores).
Load speed: ``open_cache(path).load`` of a synthetic ``--load-rows`` × d float16 cache, in GB/s of stored bytes.

Uses only the public API of ``feature_cache`` (the ``old`` setting also swaps the CPU workers' collation).
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from allocator import called_from
from feature_cache import create_encoder, extract, open_cache, open_dataset, write_cache
from probe.allocator import keep_freed_memory, share_main_arena
from feature_cache.encoders import resolve_device, resolve_precision

REPO = Path(__file__).resolve().parents[1]
extract_module = importlib.import_module("feature_cache.extract")  # the module; the package exports the function
SETTINGS = {  # name -> (precision, channels_last, tune_allocator, workers: None = --workers, fuse, caller)
    "old": ("fp32", False, False, 2, False, "main"),
    "fp32-unfused": ("fp32", True, True, None, False, "main"),
    "fp32": ("fp32", True, True, None, True, "main"),
    "lowp-unfused": ("auto", True, True, None, False, "main"),
    "lowp": ("auto", True, True, None, True, "main"),
    "thread": ("auto", True, True, None, True, "thread"),
    "job": ("auto", True, True, None, True, "job"),
}
NAMES = {"old": "old: fp32, NCHW, default malloc", "fp32-unfused": "fp32, channels-last, malloc kept",
         "fp32": "new fp32 (+ conv fusion)", "lowp-unfused": "{lowp}, channels-last, malloc kept",
         "lowp": "new {lowp} (+ conv fusion)", "thread": "{lowp} in a thread, own arena",
         "job": "{lowp} in a job thread, main arena"}


def bare_forward(encoder, n_images: int, batch_size: int) -> float:
    """Images/s of encoder.encode on ready tensors (one warm-up batch excluded): normalised float32 in the
    encoder's memory format, so the bare forward pays no layout copy (up to 599b0ed the batch was NCHW, and
    the channels-last encoders copied it on every call: ~5 % of the bf16 forward, which flattered ext/bare)."""
    size = encoder.spec.image_size
    layout = torch.channels_last if encoder.channels_last else torch.contiguous_format
    batch = torch.randn(batch_size, 3, size, size).contiguous(memory_format=layout)
    if encoder.device.type == "cuda":
        batch = batch.to(encoder.device)
    encoder.encode(batch)  # warm-up
    sync = torch.cuda.synchronize if encoder.device.type == "cuda" else (lambda: None)
    sync()
    done, start = 0, time.perf_counter()
    while done < n_images:
        n = min(batch_size, n_images - done)
        encoder.encode(batch[:n]).cpu()  # extraction copies every batch back to the host as well
        done += n
    sync()
    return n_images / (time.perf_counter() - start)


def _bare_process(encoder, n_images: int, batch_size: int, barrier, results) -> None:
    torch.set_num_threads(1)
    bare_forward(encoder, batch_size, batch_size)  # warm-up in this process, before the common start
    barrier.wait()
    start = time.perf_counter()
    bare_forward(encoder, n_images, batch_size)
    results.put((start, time.perf_counter()))


def bare_forward_processes(encoder, n_images: int, batch_size: int, processes: int) -> float:
    """Images/s of ``processes`` forked single-threaded processes running :func:`bare_forward` side by side on
    n_images / processes images each: all images over the time from the common start to the last finish."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    share = math.ceil(n_images / processes)
    workers = [context.Process(target=_bare_process, args=(encoder, share, batch_size, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    spans = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return share * processes / (max(end for _, end in spans) - min(start for start, _ in spans))


def _usage() -> tuple[float, int]:
    """(CPU seconds, minor page faults) of this process and its reaped children (the DataLoader workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, own.ru_minflt + kids.ru_minflt


def workers_used(workers, encoder, data, batch_size: int) -> int:
    """The worker processes a fresh ``extract`` of ``data`` resolves (:func:`resolve_workers` with its image and
    batch counts: batches never straddle splits), so that an automatic count under ``CPU_WORKERS_MIN_IMAGES``
    reads 0, as the extraction ran."""
    sizes = [len(samples) for samples in data.splits.values()]
    batches = sum(math.ceil(n / batch_size) for n in sizes)
    return extract_module.resolve_workers(workers, encoder.device, sum(sizes), batches)


def child(args: argparse.Namespace) -> None:
    """One setting in this (fresh) process: bare forward, then extraction; prints one JSON line."""
    precision, channels_last, tune, workers, fuse, caller = SETTINGS[args.child]
    workers = args.workers if workers is None else workers
    if caller == "job":
        share_main_arena()  # before any other thread allocates, as app.worker.JobRunner.start
    torch.set_num_threads(args.threads)
    if tune:
        keep_freed_memory()  # what extract() does, applied before the bare forward too
    data = open_dataset(args.data, max_per_class=args.max_per_class)
    n_images = sum(data.counts().values())
    encoder = create_encoder(args.encoder, device=args.device, precision=precision, channels_last=channels_last,
                             fuse=fuse)
    bare = bare_forward(encoder, n_images, args.batch_size)
    bare_procs = (bare_forward_processes(encoder, n_images, args.batch_size, args.threads)
                  if encoder.device.type == "cpu" and args.threads > 1 else math.nan)
    if args.child == "old":  # the old workers only decoded; the main process encoded
        extract_module.EncodingCollate = lambda encoder: extract_module.collate_images
    cpu, faults = _usage()
    batches: list[tuple[float, int]] = []  # (time, images done) as each batch is written
    start = time.perf_counter()
    result = called_from(caller, lambda: extract(
        data, encoder, Path(args.cache_dir), batch_size=args.batch_size, workers=workers, show_progress=False,
        tune_allocator=tune, progress=lambda done, total: batches.append((time.perf_counter(), done))))
    seconds = time.perf_counter() - start
    cpu_after, faults_after = _usage()
    used = workers_used(workers, encoder, data, args.batch_size)
    print(json.dumps({"bare": bare, "bare_procs": bare_procs, "extract": result.encoded / seconds,
                      "steady": steady_rate(batches, used), "start_s": batches[0][0] - start if batches else math.nan,
                      "images": result.encoded, "workers": used,
                      "cpu_ms": 1000 * (cpu_after - cpu) / result.encoded, "faults": faults_after - faults,
                      "precision": encoder.precision, "threads": torch.get_num_threads()}))


def steady_rate(batches: list[tuple[float, int]], workers: int) -> float:
    """Images/s once every worker has handed over its first batch: from the W-th written batch (W = ``workers``,
    1 without workers) to the last. It leaves out the pipeline fill (starting the workers; every worker decoding
    and encoding its first batch before anything is written) and the final write of the cache file, which
    ``extract`` end to end includes; a last round of batches that not every worker had a share of still counts."""
    first = max(workers, 1) - 1
    if len(batches) <= first + 1:
        return math.nan
    (t0, done0), (t1, done1) = batches[first], batches[-1]
    return (done1 - done0) / (t1 - t0)


def run_child(args: argparse.Namespace, setting: str, cache_dir: str) -> dict:
    command = [sys.executable, __file__, "--child", setting, "--cache-dir", cache_dir, "--data", args.data,
               "--encoder", args.encoder, "--max-per-class", str(args.max_per_class), "--batch-size",
               str(args.batch_size), *(["--workers", str(args.workers)] if args.workers is not None else []),
               "--device", args.device,
               "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"setting {setting} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_speed(path: Path, repeats: int = 3) -> tuple[float, int]:
    """(GB/s, bytes) of loading every split of a cache into memory; best of ``repeats``."""
    cache = open_cache(path)
    stored = 0
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        stored = 0
        for split in cache.splits:
            features, labels = cache.load(split)
            stored += features.shape[0] * features.shape[1] * 2 + labels.nbytes  # float16 on disk
        best = min(best, time.perf_counter() - start)
    return stored / best / 1e9, stored


def synthetic_load(rows: int, d: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        sizes = {"train": rows * 5 // 6, "val": 0, "test": rows // 6}
        path = write_cache(
            Path(tmp) / "synthetic.h5",
            {s: (rng.standard_normal((n, d), dtype=np.float32), np.zeros(n, dtype=np.int64), [""] * n)
             for s, n in sizes.items()},
            ["a", "b"],
            {"encoder": "synthetic", "fingerprint": "0" * 64},
        )
        return load_speed(path)


def report(args: argparse.Namespace, runs: dict[str, list[dict]], loads: tuple[float, float]) -> None:
    first = next(iter(runs.values()))[0]
    print(f"device={args.device} encoder={args.encoder} images={first['images']} batch={args.batch_size} "
          f"workers={'auto' if args.workers is None else args.workers} (old: 2) torch threads={first['threads']} "
          f"cores={os.cpu_count()} repeats={args.repeats} "
          f"load average before/after={loads[0]:.1f}/{loads[1]:.1f}")
    keys = ("bare", "bare_procs", "extract", "steady", "start_s", "cpu_ms", "faults")
    median = {s: {k: statistics.median(r.get(k, math.nan) for r in rs) for k in keys} for s, rs in runs.items()}
    old = median["old"]["extract"] if "old" in median else math.nan  # ext/old: nan without the old setting
    print(f"{'setting':<36}{'workers':>8}{'bare img/s':>11}{'bare xW':>9}{'extract img/s':>15}{'ext/bare':>9}"
          f"{'ext/bxW':>8}{'ext/old':>8}{'steady':>8}{'std/bare':>9}{'std/bxW':>8}{'start s':>8}"
          f"{'CPU ms/img':>11}{'faults/img':>11}")
    for setting, m in median.items():
        workers, precision = runs[setting][0].get("workers", "?"), runs[setting][0]["precision"]
        print(f"{NAMES[setting].format(lowp=precision):<36}{workers:>8}{m['bare']:>11.1f}{m['bare_procs']:>9.1f}"
              f"{m['extract']:>15.1f}"
              f"{m['extract'] / m['bare']:>9.2f}{m['extract'] / m['bare_procs']:>8.2f}{m['extract'] / old:>8.2f}"
              f"{m['steady']:>8.1f}{m['steady'] / m['bare']:>9.2f}{m['steady'] / m['bare_procs']:>8.2f}"
              f"{m['start_s']:>8.2f}{m['cpu_ms']:>11.0f}{m['faults'] / first['images']:>11.0f}")
    for setting, rs in runs.items():
        spread = ", ".join(f"{r['bare']:.1f}/{r.get('bare_procs', math.nan):.1f}/{r['extract']:.1f}"
                           f"/{r.get('steady', math.nan):.1f}" for r in rs)
        print(f"  {setting} bare/bare xW/extract/steady per repeat: {spread}")


def add_extraction_arguments(parser: argparse.ArgumentParser, max_per_class: int) -> None:
    """--data, --encoder, --max-per-class, --batch-size, --device and --threads: what an extraction bench reads
    (also bench/fused_encoder.py)."""
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "cifar10-jpeg.zip"))
    parser.add_argument("--encoder", default="effnet-lite0")
    parser.add_argument("--max-per-class", type=int, default=max_per_class)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (in every setting)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_extraction_arguments(parser, max_per_class=20)
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding processes of the new settings (default: the extractor's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load-rows", type=int, default=60_000, help="rows of the synthetic cache for load speed")
    parser.add_argument("--settings", nargs="+", choices=tuple(SETTINGS), default=None,
                        help="the settings to measure (default: all; lowp ones only where a low precision runs)")
    parser.add_argument("--child", choices=tuple(SETTINGS), help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    settings = ["old", "fp32-unfused", "fp32"]
    if resolve_precision("auto", resolve_device(args.device)) != "fp32":
        settings += ["lowp-unfused", "lowp"]
    settings = [s for s in settings if args.settings is None or s in args.settings]
    settings += [s for s in ("thread", "job") if args.settings and s in args.settings]
    if not settings:
        parser.error(f"none of --settings {' '.join(args.settings)} runs on {args.device}: a low precision "
                     f"needs a CPU with native bfloat16 or a CUDA device")
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    for repeat in range(args.repeats):
        for setting in settings:
            with tempfile.TemporaryDirectory() as tmp:
                runs[setting].append(run_child(args, setting, tmp))
            r = runs[setting][-1]  # as it comes, so a run cut at a time limit still shows what it measured
            print(f"  {setting} repeat {repeat + 1}: bare {r['bare']:.1f} img/s, bare xW {r['bare_procs']:.1f} "
                  f"img/s, extract {r['extract']:.1f} img/s, steady {r['steady']:.1f} img/s ({r['workers']} "
                  "workers)", flush=True)
    report(args, runs, (load_before, os.getloadavg()[0]))
    gbs, stored = synthetic_load(args.load_rows, 1280)
    print(f"load synthetic {args.load_rows}x1280 float16: {stored / 1e6:.1f} MB at {gbs:.2f} GB/s")


if __name__ == "__main__":
    main()
