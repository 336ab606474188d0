"""Features and probe accuracy of the fused encoder (``create_encoder(fuse=True)``, the default) against unfused.

``create_encoder`` folds every BatchNorm that directly follows a convolution into it and makes the ReLU / ReLU6
after it the convolution's post-op (``feature_cache.fusion``). The activation fusion is bit-identical; BatchNorm
folding only reorders sums in fp32, and under bf16 autocast rounds the folded weights to bfloat16 once where the
unfused model rounds the weights and the normalised activations separately. This bench extracts the same images
with each variant, fp32 unfused (the model as loaded) being the reference, and prints per variant:

* feature cosine to the reference over the test images (median, 1st percentile, minimum);
* ``probe.run_probe`` ERM (``--loss``, default sweep, ``--seeds``) test accuracy and worst class, and the
  difference to the reference in points.

Caches are written to ``--cache-dir`` (kept: a re-run reads them instead of extracting again).

    python bench/fused_encoder.py --data ../shared/data/cifar10-jpeg.zip --max-per-class 200 \
        --cache-dir /work/cache/fused
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from extract_speed import add_extraction_arguments
from feature_cache import create_encoder, extract, open_cache, open_dataset
from feature_cache.encoders import cpu_has_native_bf16
from probe import ProbeConfig, run_probe


def variants(device: str) -> list[tuple[str, str, bool]]:
    """(name, precision, fuse) of every variant this device runs; the first is the reference."""
    low = "fp16" if device.startswith("cuda") else ("bf16" if cpu_has_native_bf16() else None)
    out = [("fp32 unfused", "fp32", False), ("fp32 fused", "fp32", True)]
    if low:
        out += [(f"{low} unfused", low, False), (f"{low} fused", low, True)]
    return out


def cache_for(args, data, name: str, precision: str, fuse: bool) -> Path:
    path = Path(args.cache_dir) / f"{Path(args.data).stem}-{args.max_per_class}-{name.replace(' ', '-')}.h5"
    if not path.exists():
        encoder = create_encoder(args.encoder, device=args.device, precision=precision, fuse=fuse)
        start = time.perf_counter()
        result = extract(data, encoder, None, out=path, batch_size=args.batch_size, show_progress=False,
                         tune_allocator=True)
        print(f"  extracted {name}: {result.encoded} images in {time.perf_counter() - start:.1f} s")
    return path


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_extraction_arguments(parser, max_per_class=200)
    parser.add_argument("--loss", default="ce")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cache-dir", required=True, help="where the caches are written (and found again)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
    data = open_dataset(args.data, max_per_class=args.max_per_class)
    runs = variants(args.device)
    paths = {name: cache_for(args, data, name, precision, fuse) for name, precision, fuse in runs}
    reference = runs[0][0]
    ref_test = open_cache(paths[reference]).load("test")[0]
    print(f"{args.encoder} on {Path(args.data).name}, {args.max_per_class} per class; probe: loss {args.loss}, "
          f"default sweep, seeds {args.seeds}; reference: {reference}")
    print(f"{'variant':<16}{'cos median':>11}{'cos p1':>9}{'cos min':>9}{'test %':>8}{'worst %':>9}{'Δ pts':>7}")
    base = None
    for name, _, _ in runs:
        cache = open_cache(paths[name])
        splits = {s: cache.load(s, dtype=None) for s in ("train", "val", "test") if s in cache.splits}
        cos = cosines(splits["test"][0], ref_test)
        report = run_probe(splits, list(cache.class_names), ProbeConfig(loss=args.loss, seeds=args.seeds),
                           tune_allocator=True)
        acc, worst = 100 * report.summary.overall, 100 * report.summary.worst_class.accuracy
        base = acc if base is None else base
        print(f"{name:<16}{np.median(cos):>11.5f}{np.percentile(cos, 1):>9.5f}{cos.min():>9.5f}{acc:>8.2f}"
              f"{worst:>9.2f}{acc - base:>+7.2f}")


if __name__ == "__main__":
    main()
