"""Extraction throughput vs the bare forward pass of the same encoder, and HDF5 load speed.

    python bench/extract_speed.py --data ../shared/data/cifar10-jpeg.zip --max-per-class 20 \
        --encoder effnet-lite0 --batch-size 64 --workers 2 --device auto

Rows:
- ``bare forward``: ``encoder.encode`` on a batch that is already a tensor on the device (no decoding, no
  I/O) — the baseline; the same number of images and the same batch size as the extraction, measured
  before and after the extraction (mean used; the spread shows how noisy the machine is).
- ``extract()``: the full pipeline (DataLoader workers decoding JPEGs from the archive, transform,
  forward, float16 HDF5 chunk writes, flushes); data set opened and encoder built beforehand.
  ``ratio`` = extraction images/s ÷ bare images/s (target ≥ 0.9: the pipeline hides behind the forward).
- ``load``: ``open_cache(path).load(split)`` of every split into float32 memory, for the extracted cache
  and for a larger synthetic cache (``--load-rows`` × d, float16), in GB/s of stored bytes.

Uses only the public API of ``feature_cache``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from feature_cache import create_encoder, extract, open_cache, open_dataset, write_cache

REPO = Path(__file__).resolve().parents[1]


def bare_forward(encoder, n_images: int, batch_size: int) -> float:
    """Images/s of encoder.encode on ready tensors (one warm-up batch excluded)."""
    size = encoder.spec.image_size
    batch = torch.randn(batch_size, 3, size, size)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "cifar10-jpeg.zip"))
    parser.add_argument("--encoder", default="effnet-lite0")
    parser.add_argument("--max-per-class", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--load-rows", type=int, default=60_000, help="rows of the synthetic cache for load speed")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = open_dataset(args.data, max_per_class=args.max_per_class)
    n_images = sum(data.counts().values())
    encoder = create_encoder(args.encoder, device=args.device)
    bare_before = bare_forward(encoder, n_images, args.batch_size)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = extract(data, encoder, Path(tmp), batch_size=args.batch_size, workers=args.workers,
                         show_progress=False)
        pipeline = result.encoded / (time.perf_counter() - start)
        # Baseline measured on both sides of the extraction: on a shared machine the spread shows the noise.
        bare_after = bare_forward(encoder, n_images, args.batch_size)
        bare = (bare_before + bare_after) / 2
        cache_gbs, cache_bytes = load_speed(result.path)
        rng = np.random.default_rng(0)
        d = encoder.num_features
        rows = {"train": args.load_rows * 5 // 6, "val": 0, "test": args.load_rows // 6}
        synthetic = write_cache(
            Path(tmp) / "synthetic.h5",
            {s: (rng.standard_normal((n, d), dtype=np.float32), np.zeros(n, dtype=np.int64), [""] * n)
             for s, n in rows.items()},
            ["a", "b"],
            {"encoder": "synthetic", "fingerprint": "0" * 64},
        )
        big_gbs, big_bytes = load_speed(synthetic)

    print(f"device={encoder.device} encoder={args.encoder} images={n_images} batch={args.batch_size} "
          f"workers={args.workers} threads={torch.get_num_threads()}")
    print(f"{'what':<34}{'images/s':>10}{'ratio':>8}")
    print(f"{'bare forward (baseline, mean)':<34}{bare:>10.1f}{1.0:>8.2f}")
    print(f"{'  bare before / after extraction':<34}{f'{bare_before:.1f}/{bare_after:.1f}':>10}")
    print(f"{'extract() end to end':<34}{pipeline:>10.1f}{pipeline / bare:>8.2f}")
    print(f"{'what':<34}{'MB':>10}{'GB/s':>8}")
    print(f"{'load extracted cache':<34}{cache_bytes / 1e6:>10.1f}{cache_gbs:>8.2f}")
    print(f"{f'load synthetic {args.load_rows}x{d} f16':<34}{big_bytes / 1e6:>10.1f}{big_gbs:>8.2f}")


if __name__ == "__main__":
    main()
