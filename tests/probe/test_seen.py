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
