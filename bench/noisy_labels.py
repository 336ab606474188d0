"""Copies of real feature caches with labels flipped on purpose, and the record of which: what the benches of wrong
labels read (bench/label_issues.py, bench/split_disagreement.py; bench/README.md).

Each copy is written with ``feature_cache.store.write_cache`` (a valid cache: ``mr2probe train`` reads it), its
fingerprints tagged with the copy's recipe, and ``NAME.flips.npz`` beside it: per split the clean labels
(``{split}_clean``) and which rows were flipped (``{split}_flipped``). A uniform flip moves a share of a split's
labels each to one of the other classes at random; a systematic one moves a share of one class to another.

Usage (the caches of the README's set-up; ~1 min)::

    python bench/noisy_labels.py --fmnist /work/cache/fmnist-full.h5 --cifar /work/cache/cifar10-300.h5 --out DIR
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from feature_cache.store import open_cache, write_cache

SHIRT, TSHIRT = 6, 0  # Fashion-MNIST's class indices
UNIFORM = None
FMNIST_SUBSET = {"train": 1000, "val": 200, "test": None}  # images per class kept (None: all)
FMNIST_SMALL = {"train": 100, "val": 20, "test": 300}
# name: (source, images per class kept, {split: (share, from class, to class)}); from None: uniform
COPIES = {
    "fm-clean": ("fmnist", FMNIST_SUBSET, {}),
    "fm-u10": ("fmnist", FMNIST_SUBSET, {"train": (0.1, UNIFORM, UNIFORM), "val": (0.1, UNIFORM, UNIFORM)}),
    "fm-u30": ("fmnist", FMNIST_SUBSET, {"train": (0.3, UNIFORM, UNIFORM), "val": (0.3, UNIFORM, UNIFORM)}),
    "fm-shirt40": ("fmnist", FMNIST_SUBSET, {"train": (0.4, SHIRT, TSHIRT), "val": (0.4, SHIRT, TSHIRT)}),
    "fm-test5": ("fmnist", FMNIST_SUBSET, {"test": (0.05, UNIFORM, UNIFORM)}),
    "fm-testshirt30": ("fmnist", FMNIST_SUBSET, {"test": (0.3, SHIRT, TSHIRT)}),
    "fm100-u30": ("fmnist", FMNIST_SMALL, {"train": (0.3, UNIFORM, UNIFORM), "val": (0.3, UNIFORM, UNIFORM)}),
    "fm100-shirt40": ("fmnist", FMNIST_SMALL, {"train": (0.4, SHIRT, TSHIRT), "val": (0.4, SHIRT, TSHIRT)}),
    "c300-clean": ("cifar", {}, {}),
    "c300-u30": ("cifar", {}, {"train": (0.3, UNIFORM, UNIFORM), "val": (0.3, UNIFORM, UNIFORM)}),
    "c300-test10": ("cifar", {}, {"test": (0.1, UNIFORM, UNIFORM)}),
}


def _subsample(labels: np.ndarray, per_class: int | None, rng: np.random.Generator) -> np.ndarray:
    if per_class is None:
        return np.arange(len(labels))
    keep = [rng.permutation(np.flatnonzero(labels == k))[:per_class] for k in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def flip(labels: np.ndarray, share: float, rng: np.random.Generator, num_classes: int, source: int | None = None,
         target: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels with ``share`` of them flipped, which rows): uniformly to another class, or class ``source`` to
    ``target``."""
    labels = labels.copy()
    if source is None:
        rows = rng.permutation(len(labels))[: int(round(share * len(labels)))]
        new = (labels[rows] + rng.integers(1, num_classes, size=len(rows))) % num_classes  # one of the others
    else:
        pool = np.flatnonzero(labels == source)
        rows = rng.permutation(pool)[: int(round(share * len(pool)))]
        new = np.full(len(rows), target)
    labels[rows] = new
    flipped = np.zeros(len(labels), bool)
    flipped[rows] = True
    return labels, flipped


def make(source: str, out: Path, name: str, per_class: dict, spec: dict, seed: int = 0) -> dict:
    """Write the copy ``name`` of the cache ``source`` into ``out`` and its flip record; returns the flips per split."""
    cache = open_cache(source)
    rng = np.random.default_rng(seed)
    splits, record = {}, {}
    for split in ("train", "val", "test"):
        features, labels = cache.load(split, dtype=None)
        sources = np.asarray(cache.sources(split), dtype=object)
        keep = _subsample(labels, per_class.get(split), np.random.default_rng([seed, len(split)]))
        features, labels, sources = features[keep], labels[keep], sources[keep]
        clean, flipped = labels.copy(), np.zeros(len(labels), bool)
        if split in spec:
            share, source_class, target = spec[split]
            labels, flipped = flip(labels, share, rng, cache.num_classes, source_class, target)
        splits[split] = (features, labels, list(sources))
        record[f"{split}_clean"], record[f"{split}_flipped"] = clean, flipped
    attrs = {k: v for k, v in cache.attrs.items() if k not in ("class_names", "created_at", "versions")}
    tag = json.dumps([name, per_class, {k: list(map(str, v)) for k, v in spec.items()}, seed])
    for key in ("fingerprint", "dataset_fingerprint", "test_fingerprint"):
        if attrs.get(key):  # another content: another cache and data set
            attrs[key] = hashlib.sha256((attrs[key] + tag).encode()).hexdigest()
    write_cache(out / f"{name}.h5", splits, cache.class_names, attrs, dtype="float16")
    np.savez(out / f"{name}.flips.npz", **record)
    return {split: int(record[f"{split}_flipped"].sum()) for split in ("train", "val", "test")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fmnist", required=True, help="the Fashion-MNIST cache (mr2probe extract)")
    parser.add_argument("--cifar", required=True, help="the CIFAR-10 cache of 300 images a class per split")
    parser.add_argument("--out", required=True, help="folder to write the copies into")
    parser.add_argument("--only", nargs="*", default=None, help=f"these copies only (of {', '.join(COPIES)})")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (source, per_class, spec) in COPIES.items():
        if args.only is None or name in args.only:
            print(name, make(args.fmnist if source == "fmnist" else args.cifar, out, name, per_class, spec))


if __name__ == "__main__":
    main()
