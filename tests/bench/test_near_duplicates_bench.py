"""bench/near_duplicates.py: the copies it writes, and the shares it reports, on a tiny zip and a written cache."""
from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

import near_duplicates as nd
from feature_cache import write_cache


def test_copies_are_written_beside_their_originals_and_measured_against_them(tmp_path):
    source = tmp_path / "c.zip"
    with zipfile.ZipFile(source, "w") as archive:
        for name in nd.CLASSES[:2]:
            for i in range(3):
                out = io.BytesIO()
                Image.new("RGB", (32, 32), (40 * i, 100, 7)).save(out, "JPEG")
                archive.writestr(f"cifar10/test/{name}/{i:04d}.jpg", out.getvalue())
    images = tmp_path / "images"
    nd.make_images(source, images, per_class=3, copied=1)
    assert len(list((images / "train").rglob("*.jpg"))) == 6
    copies = sorted(p.name for p in (images / "test" / "airplane").iterdir())
    assert copies == sorted(f"{t}__0000{'.jpg' if t.startswith('jpeg') else '.png'}" for t in nd.TRANSFORMS)
    assert Image.open(images / "test" / "airplane" / "resize_110__0000.png").size == (35, 35)

    # a cache as extraction would write it: each copy's features its original's, but for one far transform
    rng = np.random.default_rng(0)
    originals = rng.random((6, 8)).astype(np.float32)
    train = [f"train/{c}/{i:04d}.jpg" for c in nd.CLASSES[:2] for i in range(3)]
    test = [f"test/{c}/{t}__0000.png" for c in nd.CLASSES[:2] for t in nd.TRANSFORMS]
    copy_features = np.stack([originals[3 * k] * (1.0 if t != "hflip" else -1.0)
                              for k in range(2) for t in nd.TRANSFORMS])
    write_cache(tmp_path / "f.h5", {"train": (originals, np.repeat([0, 1], 3), train),
                                    "val": (np.zeros((0, 8), np.float32), np.zeros(0, np.int64), []),
                                    "test": (copy_features, np.repeat([0, 1], len(nd.TRANSFORMS)), test)},
                list(nd.CLASSES[:2]), {"encoder": "synthetic", "default_head": "linear", "normalized": False,
                                       "fingerprint": "f"}, dtype="float32")
    results = nd.measure(tmp_path / "f.h5")
    assert results["copies"]["jpeg_q30"]["at_or_above"]["0.98"] == 1.0
    assert results["copies"]["jpeg_q30"]["nearest_is_original"] == 1.0
    assert results["copies"]["hflip"]["at_or_above"]["0.80"] == 0.0
    assert results["distinct"]["overall"]["n"] == 6
    # the rule: each copy the same features as its original (cosine 1, past the bar) whatever the ratio; the flip
    # (cosine -1) never; the threshold alone is a column of its own
    assert results["copies"]["jpeg_q30"]["rule"] == {name: 1.0 for name in ["threshold", *map("{:g}".format,
                                                                                                nd.RATIOS[1:])]}
    assert set(results["copies"]["hflip"]["rule"].values()) == {0.0}
    pool = nd.measure_distinct(tmp_path / "f.h5")  # its test rows: copies of train rows, so all flagged
    assert (pool["test"], pool["pool"], pool["rule"]["2.5"], pool["train_rule"]["2.5"]) == (18, 6, 16 / 18, 0.0)
