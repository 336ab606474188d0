"""Write scikit-learn's bundled digits (1,797 8×8 grey images, 10 classes; ``sklearn.datasets.load_digits``, no
download) as a labelled image set in the layout ``mr2probe extract`` reads: ``OUT/train/<digit>/*.png`` and
``OUT/test/<digit>/*.png`` (a quarter of the images, seeded), each upscaled to 32×32 (nearest). A small data set
unlike CIFAR-10 and Fashion-MNIST, made from what installs offline: a new-user round found the full-batch epoch
default too short on it (bench/full_batch_epochs.py).

    python bench/digits_images.py --out /work/cache/digits
    mr2probe extract --data /work/cache/digits --out /work/cache/digits.h5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def write_digits(out: Path, test_fraction: float = 0.25, seed: int = 0, size: int = 32) -> dict[str, int]:
    """Write the images (see the module docstring); returns the images per split."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    n_test = int(test_fraction * len(order))
    counts = {"train": 0, "test": 0}
    for position, i in enumerate(order):
        split = "test" if position < n_test else "train"
        folder = out / split / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] / 16.0 * 255).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((size, size), Image.NEAREST).save(folder / f"img_{i:04d}.png")
        counts[split] += 1
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write train/ and test/ into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_digits(args.out, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
