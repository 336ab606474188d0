"""probe.seen: the digests of a run's train and val sources, their overlap with scored images, and the file."""
from __future__ import annotations

import hashlib

import numpy as np

from probe.seen import SEEN_FILE, SeenSources, source_digests


def test_digests_are_the_first_8_bytes_of_blake2b_sorted_and_unique():
    paths = ["b/2.jpg", "a/1.jpg", "b/2.jpg", "caf\u00e9/\udcff.png"]  # a repeat; a name that is not UTF-8
    want = sorted({int.from_bytes(hashlib.blake2b(p.encode("utf-8", "surrogateescape"), digest_size=8).digest(),
                                  "little") for p in paths})
    assert source_digests(paths).tolist() == want and source_digests(paths).dtype == np.uint64
    assert source_digests([]).shape == (0,)


def test_overlap_counts_each_scored_image_once_per_split(tmp_path):
    seen = SeenSources.of({"train": [f"train/{i}" for i in range(10)], "val": ["val/0", "val/1"],
                           "test": ["test/0"]})
    assert set(seen.digests) == {"train", "val"}  # the test split is not seen
    assert seen.overlap(["train/3", "train/3", "train/9", "val/1", "test/0", "new/0"]) == {"train": 2, "val": 1}
    seen.save(tmp_path)
    loaded = SeenSources.load(tmp_path)
    assert {k: v.tolist() for k, v in loaded.digests.items()} == {k: v.tolist() for k, v in seen.digests.items()}
    assert SeenSources.load(tmp_path / "none") is None  # a run before them
    assert not list(tmp_path.glob("*.tmp"))  # written under another name, then renamed
    for damaged in (b"PK\x03\x04 cut off", b""):  # damaged or empty (an EOFError, a 500 on every score route)
        (tmp_path / SEEN_FILE).write_bytes(damaged)
        assert SeenSources.load(tmp_path) is None  # no check, no error


def test_paths_are_keyed_below_the_folders_their_cache_shares(tmp_path):
    """A folder's `train/cat/0.png` is `data/train/cat/0.png` in the zip made with its top folder: exact paths found
    no image in common (a review); runs written before keep their whole paths and match as they did."""
    from probe.seen import common_folder

    assert common_folder(["data/train/cat/0.png", "data/test/dog/1.png", "data/train/cat/10.png"]) == "data/"
    assert common_folder(["train/cat/0.png", "test/cat/0.png"]) == ""
    assert common_folder(["a/b/x.png", "a/b/y.png"]) == "a/b/" and common_folder([]) == ""
    assert common_folder(["data/cat/1.png", "data/cats/2.png"]) == "data/"  # a folder, not a name's prefix
    folder = {"train": ["train/cat/0.png", "train/cat/1.png"], "val": ["train/cat/2.png"], "test": ["test/cat/0.png"]}
    seen = SeenSources.of(folder, common_folder(p for paths in folder.values() for p in paths))
    zipped = ["data/train/cat/0.png", "data/train/cat/2.png", "data/test/cat/0.png"]
    assert seen.overlap(zipped, common_folder(zipped)) == {"train": 1, "val": 1}
    seen.save(tmp_path)
    assert SeenSources.load(tmp_path).relative is True
    older = SeenSources({split: source_digests(folder[split]) for split in ("train", "val")}, relative=False)
    older.save(tmp_path)
    with np.load(tmp_path / SEEN_FILE) as data:  # as runs before it wrote the file: no "relative"
        np.savez(tmp_path / SEEN_FILE, **{k: data[k] for k in ("train", "val")})
    loaded = SeenSources.load(tmp_path)
    assert loaded.relative is False and loaded.overlap(folder["train"], "train/") == {"train": 2, "val": 0}
