"""Decoding large phone-sized images at extraction: full decode against a reduced (JPEG: DCT-scaled) decode.

    OMP_NUM_THREADS=1 nice -n 10 python bench/large_photos.py --data ../shared/data/cifar10-jpeg.zip \
        --images /tmp/photos --count 12
    OMP_NUM_THREADS=1 nice -n 10 python bench/large_photos.py --format png --images /tmp/photos-png --count 12

Makes ``--count`` synthetic photos of ``--size`` pixels in ``--images`` (once; kept): CIFAR-10 test images upscaled
bicubic, half of them with per-pixel noise (σ = 6 grey levels, the fine detail of a real photo that a smooth upscale
lacks and that the JPEG's entropy decoding pays for), saved at JPEG quality 90 (``--format png``: as 8-bit RGB PNGs;
``png16``: as 16-bit greyscale PNGs). Then, each rule in a fresh child process of one thread (so its peak resident
memory is its own):

- ``full``: the whole JPEG decoded, then the encoder's transform (``Encoder.transform``: RGB, antialiased resize);
- ``draft``: what the extractor does (``feature_cache.datasets.decode_image`` with the transform's ``decode_size``):
  the JPEG decoded at the largest power-of-two reduction (1/2 .. 1/8) that stays at least twice the resize's size,
  any other image decoded whole and box-averaged by the largest integer factor that does, then the same transform;
- ``draft-1x``: the same down to the resize's size itself (the rule not taken: its features move more);
- ``pil``: the whole decode resized by PIL's own antialiased bicubic (another standard downscaler, for scale).

Per rule: the median ms per image of decode + transform (the file's bytes already in memory) and the largest rise of
the peak resident memory over the process's resident memory before an image (``/proc/self/clear_refs``). Then, image
by image, the cosine between the effnet-lite0 fp32 features of ``full``'s tensors and each other rule's, and, for
scale, between the fp32 and the bf16-autocast features of ``full``'s tensors (the precision a cache may differ in).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

RULES = ("full", "draft", "draft-1x", "pil")
FORMATS = {"jpeg": "jpg", "png": "png", "png16": "png"}  # --format: the files' suffix


def make_images(data: str, folder: Path, count: int, size: tuple[int, int], quality: int, form: str) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(data) as archive:
        names = sorted(n for n in archive.namelist() if "/test/" in n and n.endswith(".jpg"))
        names = names[::max(1, len(names) // count)][:count]
        paths = []
        for i, name in enumerate(names):
            path = folder / f"photo{i:02d}{'-noisy' if i % 2 else ''}.{FORMATS[form]}"
            paths.append(path)
            if path.exists():
                continue
            image = Image.open(io.BytesIO(archive.read(name))).convert("RGB").resize(size, Image.BICUBIC)
            if i % 2:
                pixels = np.asarray(image, dtype=np.int16)
                noise = np.random.default_rng(i).normal(0, 6, pixels.shape).astype(np.int16)
                image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
            if form == "png16":  # 16-bit greyscale: each 8-bit level v as v * 257
                image = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
            image.save(path, **({"quality": quality} if form == "jpeg" else {"compress_level": 1}))
    return paths


def child(rule: str, paths: list[str], out: str) -> None:
    """Decode + transform every image under ``rule``; writes times, peak memory and the uint8 tensors."""
    import torch
    from PIL import Image

    from feature_cache import create_encoder
    from feature_cache.datasets import decode_image, to_rgb

    torch.set_num_threads(1)
    transform = create_encoder("effnet-lite0", device="cpu", precision="fp32").transform
    size = {"draft": transform.decode_size, "draft-1x": tuple(side // 2 for side in transform.decode_size)}.get(rule)

    def run(data: bytes):
        if rule == "pil":  # PIL's own antialiased bicubic resize of the whole decode: another standard downscale
            image = to_rgb(Image.open(io.BytesIO(data))).resize(size=(224, 224), resample=Image.BICUBIC)
            return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        return transform(decode_image(data, size) if size else decode_image(data))

    small = io.BytesIO()
    Image.new("RGB", (32, 32)).save(small, format="JPEG")
    run(small.getvalue())
    times, tensors, peaks = [], [], []
    for path in paths:
        data = Path(path).read_bytes()
        before = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident memory, to VmRSS
        start = time.perf_counter()
        tensors.append(run(data))
        times.append(time.perf_counter() - start)
        peaks.append(_status_kib("VmHWM") - before)
    torch.save({"times": times, "peak_kib": max(peaks), "tensors": torch.stack(tensors)}, out)


def _status_kib(key: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(key + ":"))
    return int(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg.zip")
    parser.add_argument("--images", required=True, help="folder of the synthetic photos (made once, kept)")
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--format", default="jpeg", choices=sorted(FORMATS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.images)
    if args.child:
        child(args.child[0], sorted(map(str, folder.glob(f"photo*.{FORMATS[args.format]}")))[:args.count],
              args.child[1])
        return
    import torch

    width, height = map(int, args.size.split("x"))
    paths = make_images(args.data, folder, args.count, (width, height), args.quality, args.format)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    results = {}
    for rule in RULES:
        out = folder / f"{rule}.pt"
        subprocess.run([sys.executable, __file__, "--images", str(folder), "--count", str(args.count),
                        "--format", args.format, "--child", rule, str(out)], check=True, env=env)
        results[rule] = torch.load(out)
    from feature_cache import create_encoder

    torch.set_num_threads(1)
    encoder = create_encoder("effnet-lite0", device="cpu", precision="fp32")
    with torch.inference_mode():
        features = {rule: encoder.encode(results[rule]["tensors"]).float() for rule in RULES}
    sizes = [p.stat().st_size for p in paths]
    kind = f"JPEGs of {width} x {height}, quality {args.quality}" if args.format == "jpeg" else \
        f"{'16-bit greyscale' if args.format == 'png16' else '8-bit RGB'} PNGs of {width} x {height}"
    print(f"{len(paths)} {kind}, {min(sizes) / 1e6:.1f}-"
          f"{max(sizes) / 1e6:.1f} MB; one thread; effnet-lite0's 224 x 224 bicubic squash")
    for rule in RULES:
        times = [t * 1e3 for t in results[rule]["times"]]
        print(f"{rule:>5}: decode + transform median {statistics.median(times):.0f} ms "
              f"(min {min(times):.0f}, max {max(times):.0f}); peak resident memory of one image over the process's "
              f"before it {results[rule]['peak_kib'] / 1024:.0f} MiB")
    with torch.inference_mode():
        bf16 = create_encoder("effnet-lite0", device="cpu", precision="bf16").encode(results["full"]["tensors"])
    cosine = torch.nn.functional.cosine_similarity(features["full"], bf16.float()).numpy()
    print(f"full, fp32 vs bf16 forward: feature cosine min {cosine.min():.5f}, median {np.median(cosine):.5f}")
    for rule in RULES[1:]:
        pixels = (results["full"]["tensors"].int() - results[rule]["tensors"].int()).abs().float()
        cosine = torch.nn.functional.cosine_similarity(features["full"], features[rule]).numpy()
        print(f"full vs {rule}: 224 x 224 inputs differ by {pixels.mean():.2f} grey levels on average (max "
              f"{pixels.max():.0f}); effnet-lite0 fp32 feature cosine min {cosine.min():.5f}, median "
              f"{np.median(cosine):.5f}: {json.dumps([round(float(c), 4) for c in cosine])}")


if __name__ == "__main__":
    main()
