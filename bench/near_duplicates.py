"""Near-duplicate threshold: cosine similarity of cached features between CIFAR-10 images and modified copies of
them, against that between distinct images.

Takes ``--per-class`` test images of each CIFAR-10 class from the zip (read in place), writes them and modified
copies of the first ``--copied`` of each class under ``WORK/images`` (originals in ``train/``, copies in ``test/``),
extracts features with ``mr2probe extract --workers 0`` into ``WORK/features.h5`` (unless there) and prints, for
each transform and each candidate threshold, the share of copies whose similarity to their own original reaches it,
and the share of originals whose nearest other original (overall, and of the same class) reaches it: the false
alarms. Optionally (``--distinct CACHE``, repeated) the same for each test image of other caches against their
train + val images, and each train image against the other train images (larger pools: more neighbours, higher
nearest similarities; a dense data set such as Fashion-MNIST).

Then the rule the check applies (``probe.near_duplicates.is_near_duplicate``): at the encoder's threshold, the ratio
test ``(1 - c2) / (1 - c1) >= R`` for each candidate ``R`` (and the bar above which any pair is a duplicate): the share
of copies it finds, their second-nearest rows drawn from the originals and the first ``--distinct`` cache's train + val
images (a realistic crowd around each original, not just 300 others), and the share of distinct images it flags in
each ``--distinct`` cache.

    nice -n 10 python bench/near_duplicates.py --work /tmp/nd --distinct /work/cache/cifar10-300.h5 \
        --out bench/results/near_duplicates_effnet-lite0.json
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

import feature_cache
import probe.near_duplicates as rule
from probe import nearest_rows

ROOT = Path(__file__).resolve().parents[1]
CIFAR_ZIP = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
# candidate ratios of the rule: None is the threshold alone (no ratio test, no bar)
RATIOS = (None, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)


def _jpeg(quality: int):
    def f(image: Image.Image) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        return out.getvalue()
    return f


def _png(change):
    def f(image: Image.Image) -> bytes:
        out = io.BytesIO()
        change(image).save(out, "PNG")
        return out.getvalue()
    return f


def _resized(scale: float):
    return lambda im: im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)


# name: (bytes of the copy, whether it counts as a duplicate the check must find)
TRANSFORMS = {
    "jpeg_q30": (_jpeg(30), True),
    "jpeg_q60": (_jpeg(60), True),
    "resize_90": (_png(_resized(0.9)), True),
    "resize_110": (_png(_resized(1.1)), True),
    "crop_2px": (_png(lambda im: im.crop((2, 2, im.width, im.height))), True),
    "pad_2px": (_png(lambda im: ImageOps.expand(im, border=2, fill=(0, 0, 0))), True),
    "bright_+10": (_png(lambda im: ImageEnhance.Brightness(im).enhance(1.1)), True),
    "bright_-10": (_png(lambda im: ImageEnhance.Brightness(im).enhance(0.9)), True),
    "hflip": (_png(ImageOps.mirror), False),
}


def make_images(source: Path, images: Path, per_class: int, copied: int) -> None:
    with zipfile.ZipFile(source) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("cifar10/test/") and n.endswith(".jpg"))
        for name in CLASSES:
            chosen = [n for n in names if n.split("/")[2] == name][:per_class]
            for i, member in enumerate(chosen):
                data = archive.read(member)
                stem = Path(member).stem
                out = images / "train" / name / f"{stem}.jpg"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
                if i >= copied:
                    continue
                image = Image.open(io.BytesIO(data)).convert("RGB")
                for transform, (make, _) in TRANSFORMS.items():
                    suffix = ".jpg" if transform.startswith("jpeg") else ".png"
                    copy = images / "test" / name / f"{transform}__{stem}{suffix}"
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    copy.write_bytes(make(image))


def extract(images: Path, cache: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "app", "--threads", "1", "extract", "--data", str(images), "--out",
                    str(cache), "--workers", "0", "--dtype", "float32", "--no-progress"], check=True, env=env)


def _shares(similarities: np.ndarray) -> dict[str, float]:
    """The share of ``similarities`` at or above each candidate threshold."""
    return {f"{t:.2f}": float(np.mean(similarities >= t)) if len(similarities) else float("nan") for t in THRESHOLDS}


def _quantiles(similarities: np.ndarray) -> dict[str, float]:
    return {q: float(np.quantile(similarities, float(q))) for q in ("0.01", "0.05", "0.5", "0.95", "0.99")}


def _flagged(nearest, threshold: float) -> dict[str, float]:
    """The share of the rows of ``nearest`` the rule flags at ``threshold`` for each of :data:`RATIOS`."""
    shares = {}
    for ratio in RATIOS:
        flags = nearest.similarity >= threshold if ratio is None else rule.is_near_duplicate(nearest, threshold, ratio)
        shares["threshold" if ratio is None else f"{ratio:g}"] = float(np.mean(flags)) if len(flags) else float("nan")
    return shares


def _threshold(encoder: str) -> float:
    """The encoder's threshold (0.90 for one not measured: the synthetic caches of the tests)."""
    return rule.near_duplicate_threshold(encoder) or 0.90


def _seen(cache) -> np.ndarray:
    return np.concatenate([cache.load(split, dtype=None)[0] for split in ("train", "val")])


def measure(cache_path: Path, background: np.ndarray | None = None) -> dict:
    """The copies against their originals (cosine), and the rule's shares with ``background`` rows (another data
    set's images) among the originals as the copies' other neighbours."""
    cache = feature_cache.open_cache(cache_path)
    originals, labels, names = [], [], []
    for split in ("train", "val"):
        features, split_labels = cache.load(split)
        originals.append(features)
        labels.append(split_labels)
        names += [f"{Path(s).parent.name}/{Path(s).stem}" for s in cache.sources(split)]
    originals, labels = np.concatenate(originals), np.concatenate(labels)
    where = {name: row for row, name in enumerate(names)}
    copies, _ = cache.load("test")
    copied = [(Path(s).stem.split("__")[0], f"{Path(s).parent.name}/{Path(s).stem.split('__')[1]}")
              for s in cache.sources("test")]
    results: dict = {"encoder": cache.encoder, "precision": cache.attrs.get("precision"),
                     "originals": len(originals), "copies": {}, "distinct": {}, "bar": rule.NEAR_DUPLICATE_BAR,
                     "threshold": _threshold(cache.encoder),
                     "background": 0 if background is None else len(background)}
    pool = originals if background is None else np.concatenate([originals, background.astype(originals.dtype)])
    for transform, (_, duplicate) in TRANSFORMS.items():
        rows = [i for i, (name, _) in enumerate(copied) if name == transform]
        own = np.array([where[copied[i][1]] for i in rows])
        a, b = copies[rows], originals[own]
        sims = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        nearest = nearest_rows(a, pool)
        results["copies"][transform] = {"duplicate": duplicate, "n": len(rows), "at_or_above": _shares(sims),
                                        "nearest_is_original": float(np.mean(nearest.index == own)),
                                        "quantiles": _quantiles(sims),
                                        "rule": _flagged(nearest, results["threshold"])}
    overall = nearest_rows(originals, originals, exclude_self=True).similarity
    same = np.empty(len(originals), dtype=np.float32)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        same[rows] = nearest_rows(originals[rows], originals[rows], exclude_self=True).similarity
    for name, sims in (("overall", overall), ("same_class", same)):
        results["distinct"][name] = {"n": len(sims), "at_or_above": _shares(sims), "quantiles": _quantiles(sims)}
    return results


def measure_distinct(cache_path: Path) -> dict:
    """Each test image of another cache against its train + val images, and each train image against the other
    train images: how many distinct images a threshold, and the rule, flag in a larger pool (a few may be real
    near-duplicates: CIFAR-10's test set holds some of its train images)."""
    cache = feature_cache.open_cache(cache_path)
    pool, test, train = _seen(cache), cache.load("test", dtype=None)[0], cache.load("train", dtype=None)[0]
    nearest, inside = nearest_rows(test, pool), nearest_rows(train, train, exclude_self=True)
    threshold = _threshold(cache.encoder)
    return {"cache": cache_path.name, "encoder": cache.encoder, "precision": cache.attrs.get("precision"),
            "test": len(test), "pool": len(pool), "at_or_above": _shares(nearest.similarity),
            "quantiles": _quantiles(nearest.similarity), "rule": _flagged(nearest, threshold),
            "train": len(train), "train_rule": _flagged(inside, threshold)}


def print_table(results: dict) -> None:
    print(f"{'transform':<14} {'dup':>4} " + " ".join(f"{t:>5.2f}" for t in THRESHOLDS) + "   nn=own")
    for transform, row in results["copies"].items():
        shares = " ".join(f"{v:>5.2f}" for v in row["at_or_above"].values())
        print(f"{transform:<14} {'yes' if row['duplicate'] else 'no':>4} {shares}   {row['nearest_is_original']:.2f}")
    for name, row in results["distinct"].items():
        print(f"{'distinct ' + name:<19} " + " ".join(f"{v:>5.3f}" for v in row["at_or_above"].values()))
    for row in results.get("pools", []):
        print(f"{'pool ' + row['cache']:<19} " + " ".join(f"{v:>5.3f}" for v in row["at_or_above"].values()))
    print(f"\nthe rule at cosine >= {results['threshold']:g}, bar {results['bar']:g}: share flagged by ratio R "
          f"(copies among {results['originals']:,} originals + {results['background']:,} other images)")
    print(f"{'':<28} " + " ".join(f"{r:>9}" for r in next(iter(results["copies"].values()))["rule"]))
    lines = [(name, row["rule"]) for name, row in results["copies"].items()]
    for row in results.get("pools", []):
        lines += [(f"{row['cache']} test ({row['test']:,})", row["rule"]),
                  (f"{row['cache']} train ({row['train']:,})", row["train_rule"])]
    for name, shares in lines:
        print(f"{name:<28} " + " ".join(f"{v:>9.3f}" for v in shares.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CIFAR_ZIP, help="cifar10-jpeg.zip (read in place)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the images and the cache (not the repo)")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--copied", type=int, default=10, help="originals of each class copied by each transform")
    parser.add_argument("--distinct", type=Path, action="append", default=[],
                        help="a cache whose test images are matched to its train + val, and train to train (repeat "
                        "for more; the first one's train + val are the copies' other neighbours)")
    parser.add_argument("--out", type=Path, help="results JSON")
    args = parser.parse_args()
    images, cache = args.work / "images", args.work / "features.h5"
    if not images.is_dir():
        make_images(args.data, images, args.per_class, args.copied)
    if not cache.is_file():
        extract(images, cache)
    background = _seen(feature_cache.open_cache(args.distinct[0])) if args.distinct else None
    results = measure(cache, background)
    results["pools"] = [measure_distinct(path) for path in args.distinct]
    print_table(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
