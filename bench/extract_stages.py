"""Where a GPU extraction's time goes: the image pipeline alone, then the main loop's variants on the same images.

On an H200 (stop 49) effnet-lite0 extraction ran at 0.23–0.41 of the bare forward (990–1,440 img/s against
3,000–4,400), and 8 decoding workers instead of 2 gained only 8–10 %, yet the DataLoader alone delivered ~3,100
img/s with 2 workers and ~11,800 with 8: neither the decoding nor the forward is the limit, their combination in
one process is. This bench measures, on the same images:

- ``loader``: the extraction's DataLoader alone (decode + resize in W worker processes, the batch collation
  ``feature_cache.extract.collate_images``, the hand-over to this process, pinning on CUDA), no encoder, per W.
- ``loop``: the main loop alone (batches from the DataLoader with the largest W, encoded, features copied to the
  host as numpy), four ways: ``serial pinned`` (the product's ``extract``: pinned batches, each batch's features
  read back before the next batch is taken), ``serial pageable`` (no pinning thread: the main thread copies each
  batch to the GPU itself), and the same two ``pipelined`` (one batch in flight: the features of batch i are read
  back after batch i + 1 has been queued on the GPU, through a pinned host buffer and a CUDA event:
  ``feature_cache.extract._queue_encoding``, what ``extract`` runs since stop 49).
- ``extract``: ``feature_cache.extract`` itself on the same images and workers, with and without its allocator
  setting (``tune_allocator``: glibc keeps freed memory, in this process and in the workers). Since stop 49 it
  runs the pipelined pageable loop, yet on the H200 it took 1,545–1,555 img/s where that loop alone took
  7,863: what else differs (the allocator setting, the partial file's writes) is what this row measures. The
  row without the setting runs first: mallopt's settings last for the process (``bench/extract_speed.py``'s
  child applies them before anything else, so every GPU extraction figure of stop 49 ran with them).

Usage::

    python bench/extract_stages.py --device cuda --data .gpu/cifar10-subset.zip --max-per-class 500
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from feature_cache import create_encoder, extract, open_dataset  # noqa: E402
from feature_cache.extract import _ImageDataset, _queue_encoding, collate_images  # noqa: E402


def _loader(data, encoder, workers: int, batch_size: int, pin: bool) -> tuple[DataLoader, int]:
    samples = [s for split in data.splits.values() for s in split]
    batches = [list(range(i, min(i + batch_size, len(samples)))) for i in range(0, len(samples), batch_size)]
    return DataLoader(_ImageDataset(data, samples, encoder.transform, encoder.spec.image_size),
                      batch_sampler=batches, collate_fn=collate_images, num_workers=workers,
                      pin_memory=pin), len(batches[0])


def loader_rate(data, encoder, workers: int, batch_size: int, pin: bool) -> float:
    loader, first_size = _loader(data, encoder, workers, batch_size, pin)
    first, done = None, 0
    for images, _, _ in loader:
        first = first or time.perf_counter()
        done += len(images)
    return (done - first_size) / (time.perf_counter() - first)  # from the first batch on: no pool start


def loop_rate(data, encoder, workers: int, batch_size: int, pin: bool, pipelined: bool) -> float:
    """Images/s of the main loop from the first batch on: encode every batch, read its features back as numpy."""
    loader, first_size = _loader(data, encoder, workers, batch_size, pin)
    first, done, pending, checksum = None, 0, None, 0.0
    for images, ok, _ in loader:
        first = first or time.perf_counter()
        if not pipelined:  # the loop up to stop 49: read back at once, through pageable memory
            checksum += float(encoder.encode(images).cpu().numpy()[0, 0])
        else:  # the product's: queue this batch (forward, copy back), then finish the previous one
            queued = _queue_encoding(encoder, images, ok)
            if pending is not None:
                checksum += float(pending()[0, 0])
            pending = queued
        done += len(images)
    if pending is not None:
        pending()
    return (done - first_size) / (time.perf_counter() - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-per-class", type=int, default=500)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 8])
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = open_dataset(args.data, max_per_class=args.max_per_class)
    encoder = create_encoder("effnet-lite0", device=args.device)
    cuda = encoder.device.type == "cuda"
    print(f"{sum(data.counts().values())} images, batch {args.batch_size}, {encoder}", flush=True)
    for workers in args.workers:
        print(f"loader W={workers:>2}: {loader_rate(data, encoder, workers, args.batch_size, cuda):8.1f} img/s",
              flush=True)
    workers = max(args.workers)
    for pipelined in (False, True) if cuda else (False,):
        for pin in (True, False) if cuda else (False,):
            rate = loop_rate(data, encoder, workers, args.batch_size, pin, pipelined)
            print(f"loop W={workers} {'pipelined' if pipelined else 'serial':<9} {'pinned' if pin else 'pageable':<8}"
                  f" {rate:8.1f} img/s", flush=True)
    # without the allocator setting first: glibc's mallopt settings stay for the rest of the process (and the
    # workers it forks), so a row without them after a row with them would not be without them
    for tune in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = extract(data, encoder, Path(tmp), batch_size=args.batch_size, workers=workers,
                             show_progress=False, tune_allocator=tune)
            rate = result.encoded / (time.perf_counter() - start)
        print(f"extract W={workers} tune_allocator={tune!s:<5} {rate:8.1f} img/s (pool start and file included)",
              flush=True)


if __name__ == "__main__":
    main()
