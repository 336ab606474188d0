"""The HDF5 cache: atomic complete writes, read-back, refusal of partial / foreign files."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from feature_cache import CacheMismatch, open_cache, orphaned_temporaries, write_cache


def splits(rng, d=5):
    return {
        "train": (rng.normal(size=(7, d)), np.arange(7) % 3, [f"tr/{i}.png" for i in range(7)]),
        "val": (rng.normal(size=(2, d)), np.array([0, 2]), ["v/0.png", "v/ü.png"]),
        "test": (rng.normal(size=(4, d)), np.array([2, 1, 0, 1]), [f"te/{i}.png" for i in range(4)]),
    }


ATTRS = {"encoder": "tiny", "weights_sha256": "ab" * 32, "preprocess": {"resize": [16, 16]},
         "feature_kind": "pooled", "normalized": True, "default_head": "cosine",
         "dataset_fingerprint": "cd" * 32, "fingerprint": "ef" * 32}


def test_round_trip_float32_exact_and_float16_rounded(tmp_path):
    rng = np.random.default_rng(0)
    data = splits(rng)
    exact = open_cache(write_cache(tmp_path / "a.h5", data, ["a", "b", "c"], ATTRS, dtype="float32"))
    half = open_cache(write_cache(tmp_path / "b.h5", data, ["a", "b", "c"], ATTRS))
    for split, (features, labels, sources) in data.items():
        x, y = exact.load(split)
        assert x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x, features.astype(np.float32))
        np.testing.assert_array_equal(y, labels)
        assert exact.sources(split) == sources
        x16, _ = half.load(split)
        np.testing.assert_array_equal(x16, features.astype(np.float16).astype(np.float32))
    assert half.class_names == ["a", "b", "c"] and half.num_classes == 3 and half.num_features == 5
    assert half.splits == ["train", "val", "test"]
    assert half.normalized is True and half.default_head == "cosine" and half.encoder == "tiny"
    assert half.attrs["preprocess"] == {"resize": [16, 16]} and half.attrs["skipped"] == []
    assert half.attrs["schema_version"] == 1 and set(half.attrs["versions"]) >= {"torch", "h5py"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]  # no temp files left


def test_load_keeps_float16_when_asked(tmp_path):
    data = splits(np.random.default_rng(1))
    cache = open_cache(write_cache(tmp_path / "h.h5", data, ["a", "b", "c"], ATTRS))
    x16, _ = cache.load("train", dtype=None)  # the stored dtype
    assert x16.dtype == np.float16
    np.testing.assert_array_equal(x16, data["train"][0].astype(np.float16))
    assert cache.load("train", dtype="float16")[0].dtype == np.float16
    assert cache.load("train")[0].dtype == np.float32  # the default is unchanged
    exact = open_cache(write_cache(tmp_path / "f.h5", data, ["a", "b", "c"], ATTRS, dtype="float32"))
    assert exact.load("train", dtype=None)[0].dtype == np.float32
    with pytest.raises(ValueError, match="dtype must be one of float16, float32 or None .*'int8'"):
        cache.load("train", dtype="int8")


def test_reading_slices_the_stored_features_lazily(tmp_path):
    """What mr2probe predict streams: slices of the open dataset equal load()'s rows, in the stored dtype."""
    data = splits(np.random.default_rng(3))
    cache = open_cache(write_cache(tmp_path / "h.h5", data, ["a", "b", "c"], ATTRS))
    stored, labels = cache.load("val", dtype=None)
    with cache.reading("val") as features:
        assert features.shape == stored.shape and len(features) == len(stored) and features.dtype == np.float16
        np.testing.assert_array_equal(features[3:7], stored[3:7])
        np.testing.assert_array_equal(features[len(stored) - 2:len(stored) + 50], stored[-2:])  # clipped as numpy
    np.testing.assert_array_equal(cache.labels("val"), labels)
    assert cache.labels("val").dtype == np.int64
    with pytest.raises(KeyError, match="Unknown split 'dev'"), cache.reading("dev"):
        pass


def test_labels_outside_the_classes_are_refused(tmp_path):
    """A label that is no class index (a damaged or foreign file) is an error naming it, not another class (−1
    would index the last one) and not an IndexError further on."""
    import h5py

    from feature_cache import CacheMismatch

    path = write_cache(tmp_path / "h.h5", splits(np.random.default_rng(4)), ["a", "b", "c"], ATTRS)
    for value in (3, -1):
        with h5py.File(path, "r+") as h5:
            h5["test"]["labels"][2] = value
        cache = open_cache(path)
        for read in (lambda: cache.labels("test"), lambda: cache.load("test"), cache.training_data):
            with pytest.raises(CacheMismatch, match=rf"split 'test' has 1 labels outside 0..2 .*e\.g\. {value}"):
                read()
    assert cache.labels("val").dtype == np.int64  # the other splits still read


def test_training_data_is_every_split_in_the_stored_dtype(tmp_path):
    """What mr2probe train and the service's jobs hand run_probe: a float16 cache stays float16 in memory."""
    data = splits(np.random.default_rng(2))
    cache = open_cache(write_cache(tmp_path / "h.h5", data, ["a", "b", "c"], ATTRS))
    loaded = cache.training_data()
    assert list(loaded) == ["train", "val", "test"]
    for split, (x, y) in loaded.items():
        assert x.dtype == np.float16
        np.testing.assert_array_equal(x, data[split][0].astype(np.float16))
        np.testing.assert_array_equal(y, data[split][1])


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_write_cache_writes_matching_features_without_a_copy(tmp_path, monkeypatch, dtype):
    """Features already in the stored dtype reach HDF5 as the caller's array (no astype copy); others are
    converted once."""
    data = splits(np.random.default_rng(2))
    data = {s: (f.astype(dtype), y, src) for s, (f, y, src) in data.items()}
    written = []
    original = h5py.Dataset.__setitem__

    def spy(self, key, value):
        if self.name.endswith("/features"):
            written.append(value)
        return original(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", spy)
    write_cache(tmp_path / "c.h5", data, ["a", "b", "c"], ATTRS, dtype=dtype)
    assert len(written) == 3
    for value, split in zip(written, ("train", "val", "test")):
        assert np.shares_memory(value, data[split][0])
    other = "float32" if dtype == "float16" else "float16"
    written.clear()
    write_cache(tmp_path / "d.h5", data, ["a", "b", "c"], ATTRS, dtype=other)
    assert [v.dtype for v in written] == [np.dtype(other)] * 3
    assert not any(np.shares_memory(v, data[s][0]) for v, s in zip(written, ("train", "val", "test")))


def test_failed_write_leaves_existing_file_untouched(tmp_path):
    rng = np.random.default_rng(1)
    path = write_cache(tmp_path / "c.h5", splits(rng), ["a", "b", "c"], ATTRS)
    before = path.read_bytes()
    bad = splits(rng)
    bad["test"] = (rng.normal(size=(4, 5)), np.array([0, 1]), ["x"] * 4)
    with pytest.raises(ValueError, match="split 'test': 4 feature rows, 2 labels, 4 sources"):
        write_cache(path, bad, ["a", "b", "c"], ATTRS)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]


def test_a_cache_file_is_synced_before_it_is_renamed_onto_its_name_and_its_folder_after(tmp_path, monkeypatch):
    """replacing_file (every cache file: write_cache, an extraction's finalize, torchrun's merge) renamed its
    temporary copy onto the cache unsynced: a power loss could keep the rename and lose the data, a cache file cut
    short where the old one was whole (probe.files.atomic_write, which syncs, is the same rule for other files)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("sync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = write_cache(tmp_path / "c.h5", splits(np.random.default_rng(0)), ["a", "b", "c"], ATTRS)
    ((_, tmp), (_, src, dst), folder) = events
    assert Path(tmp).name.startswith(".c.h5.") and Path(tmp).parent == tmp_path
    assert (src, dst) == (tmp, str(path)) and folder == ("sync", str(tmp_path))
    assert open_cache(path).split_sizes == {"train": 7, "val": 2, "test": 4}


def test_two_writes_of_one_cache_in_one_process_never_share_a_temporary_file(tmp_path, monkeypatch):
    """replacing_file wrote every cache through '.NAME.<pid>.tmp': a second write of the same cache in the same
    process (two threads) opened the first one's temporary file, and its clean-up removed it under the first
    writer, whose rename then failed: both lost. Interleaved here: the second write runs whole while the first
    is inside its block."""
    import threading

    import feature_cache.store as store

    rng = np.random.default_rng(5)
    first, second = splits(rng), splits(rng)
    real, inside, done = store._write_split, threading.Event(), threading.Event()

    def paused(h5, split, *args, **kwargs):
        if split == "test" and threading.current_thread().name == "first":
            inside.set()
            assert done.wait(30)
        return real(h5, split, *args, **kwargs)

    monkeypatch.setattr(store, "_write_split", paused)
    errors = []

    def write_first():
        try:
            write_cache(tmp_path / "c.h5", first, ["a", "b", "c"], ATTRS, dtype="float32")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=write_first, name="first")
    thread.start()
    assert inside.wait(30)
    try:
        write_cache(tmp_path / "c.h5", second, ["a", "b", "c"], ATTRS, dtype="float32")
        assert np.array_equal(open_cache(tmp_path / "c.h5").load("test")[0], second["test"][0].astype(np.float32))
    finally:
        done.set()
        thread.join(30)
    assert errors == []
    assert np.array_equal(open_cache(tmp_path / "c.h5").load("test")[0], first["test"][0].astype(np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]


def test_orphaned_temporaries_are_those_of_dead_writers(tmp_path):
    (tmp_path / "sub").mkdir()
    dead = tmp_path / "sub" / ".c.h5.999999.tmp"  # a writer killed in the middle (no process 999999)
    alive = tmp_path / f".d.h5.{os.getpid()}.tmp"  # still being written, by this process
    others = [tmp_path / ".e.h5.tmp", tmp_path / "f.h5", tmp_path / ".g.h5.12x.tmp"]
    for path in (dead, alive, *others):
        path.write_bytes(b"x")
    assert orphaned_temporaries(tmp_path) == [dead]


def test_a_temporary_older_than_the_process_of_its_id_is_orphaned(tmp_path):
    """A crash round: a server in a container is PID 1 after every restart, so the temporary file a killed PID 1
    left (``.<name>.1.tmp``, as large as the cache) was taken for the new server's own and kept for good. A file
    last written before the process now holding that id started is not that process's."""
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("no /proc: a process's start time is unknown here")
    left = tmp_path / f".c.h5.{os.getpid()}.tmp"  # this id's previous holder, killed while it wrote
    mine = tmp_path / f".d.h5.{os.getpid()}.tmp"  # being written by this process
    for path in (left, mine):
        path.write_bytes(b"x")
    os.utime(left, (0, 0))  # written in 1970: before this process started
    assert orphaned_temporaries(tmp_path) == [left]


def test_missing_split_is_written_empty(tmp_path):
    rng = np.random.default_rng(2)
    data = splits(rng)
    del data["val"]
    cache = open_cache(write_cache(tmp_path / "d.h5", data, ["a", "b", "c"], ATTRS))
    x, y = cache.load("val")
    assert x.shape == (0, 5) and y.shape == (0,)
    with pytest.raises(KeyError, match="Unknown split 'dev'; this cache has train, val, test"):
        cache.load("dev")


def test_open_cache_refuses_partial_foreign_and_other_schema(tmp_path):
    with pytest.raises(CacheMismatch, match="unfinished extraction"):
        open_cache(tmp_path / "x.h5.partial")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_cache(tmp_path / "none.h5")
    with pytest.raises(CacheMismatch, match="is a folder, not a cache file: name the .h5 file itself"):
        open_cache(tmp_path)
    os.mkfifo(tmp_path / "pipe.h5")  # it said "does not exist" (/dev/zero too; an attack round), and never opens it
    with pytest.raises(CacheMismatch, match=r"pipe\.h5 is not a regular file \(a device, FIFO or socket\)"):
        open_cache(tmp_path / "pipe.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(CacheMismatch, match="not a readable HDF5 feature cache"):
        open_cache(tmp_path / "junk.h5")
    path = write_cache(tmp_path / "e.h5", splits(np.random.default_rng(3)), ["a", "b", "c"], ATTRS)
    with h5py.File(path, "r+") as h5:
        h5.attrs["schema_version"] = 2
    with pytest.raises(CacheMismatch, match="schema_version 2; this version reads 1"):
        open_cache(path)


def test_open_cache_refuses_the_temporary_copy_a_killed_write_left(tmp_path):
    """A kill while the cache was written left '.NAME.<pid>.tmp' beside it, which open_cache read as a cache (a
    whole one, where the kill came before the rename): refused as unfinished, naming the cache it would become."""
    path = write_cache(tmp_path / "c.h5", splits(np.random.default_rng(4)), ["a", "b", "c"], ATTRS)
    for name in (".c.h5.4242.tmp", ".c.h5.4242-0a1b2c3d4e5f6a7b.tmp"):
        copy = tmp_path / name
        copy.write_bytes(path.read_bytes())
        with pytest.raises(CacheMismatch, match=rf"^{re.escape(str(copy))} is the unfinished temporary copy of c\.h5 "
                                                r"that a killed extraction left; open c\.h5 itself, or run the "
                                                r"extraction again to write it\.$"):
            open_cache(copy)
    for name in (".c.h5.tmp", "c.h5.4242.tmp", ".c.h5.4242.tmp.h5"):  # not a temporary name: read as any file
        (tmp_path / name).write_bytes(path.read_bytes())
        assert open_cache(tmp_path / name).split_sizes == open_cache(path).split_sizes


def test_attributes_are_json_where_documented(tmp_path):
    path = write_cache(tmp_path / "f.h5", splits(np.random.default_rng(4)), ["a", "b", "c"],
                       {**ATTRS, "skipped": [["x.txt", "not an image"]]})
    with h5py.File(path, "r") as h5:
        assert json.loads(h5.attrs["class_names"]) == ["a", "b", "c"]
        assert json.loads(h5.attrs["skipped"]) == [["x.txt", "not an image"]]
        assert json.loads(h5.attrs["preprocess"]) == {"resize": [16, 16]}
        assert h5["train"]["features"].chunks == (7, 5)


@pytest.mark.parametrize("stored, what", [
    ("", "is not valid JSON"), ("[a, b]", "is not valid JSON"), (np.bytes_(b"\xff["), "is not valid JSON"),
    ('"abc"', "is not a list of class names"), ("[1, 2, 3]", "is not a list of class names"),
])
def test_a_damaged_class_names_attribute_names_the_file_and_the_attribute(tmp_path, stored, what):
    """class_names that is not JSON said 'Expecting value: line 1 column 1 (char 0)' (found by the third attack
    round), and JSON that is no list of names raised a TypeError later: CacheMismatch naming both."""
    path = write_cache(tmp_path / "d.h5", splits(np.random.default_rng(5)), ["a", "b", "c"], ATTRS)
    with h5py.File(path, "r+") as h5:
        h5.attrs["class_names"] = stored
    with pytest.raises(CacheMismatch) as raised:
        open_cache(path)
    assert str(raised.value).startswith(f"{path}: the root attribute 'class_names' {what}")
    assert str(raised.value).endswith("; the file was not written by feature_cache.extract, or is damaged.")


@pytest.mark.parametrize("key", ["split_params", "preprocess", "versions", "skipped"])
def test_a_json_attribute_of_another_kind_is_refused_naming_it(tmp_path, key):
    """split_params written as a JSON string (encoded twice) crashed train with an AttributeError (a scale round)."""
    path = write_cache(tmp_path / "d.h5", splits(np.random.default_rng(5)), ["a", "b", "c"], ATTRS)
    with h5py.File(path, "r+") as h5:
        h5.attrs[key] = json.dumps(json.dumps({"layout": "split-folders"}))
    with pytest.raises(CacheMismatch, match=f"the root attribute '{key}' holds JSON str, not a JSON (object|array) "
                                            r"\(was it JSON-encoded twice\?\)"):
        cache = open_cache(path)
        cache.attrs[key]


def test_extractor_fingerprint_ignores_the_images_and_the_stored_dtype(tmp_path):
    """Two caches share an extractor when encoder, weights, preprocessing, feature kind and normalisation agree,
    whatever images and dtype they hold; any of those five differing changes it."""
    from feature_cache import extractor_fingerprint

    rng = np.random.default_rng(0)
    one = open_cache(write_cache(tmp_path / "a.h5", splits(rng), ["a", "b", "c"], ATTRS, dtype="float32"))
    other_images = {**ATTRS, "dataset_fingerprint": "00" * 32, "fingerprint": "11" * 32, "precision": "bf16"}
    two = open_cache(write_cache(tmp_path / "b.h5", splits(rng, d=5), ["x", "y", "z"], other_images))
    assert one.extractor == two.extractor == extractor_fingerprint(
        encoder="tiny", weights_sha256="ab" * 32, preprocess={"resize": [16, 16]}, feature_kind="pooled",
        normalized=True)
    assert one.provenance("a.h5") == {"fingerprint": "ef" * 32, "encoder": "tiny", "extractor": one.extractor,
                                      "extractor_as_named": None, "cache": "a.h5", "dataset": "cd" * 32,
                                      "test_dataset": None, "warning": None, "data_warnings": [],
                                      # how such features are computed: what a user's own inference needs
                                      "weights_sha256": "ab" * 32, "preprocess": {"resize": [16, 16]},
                                      "feature_kind": "pooled", "normalized": True,
                                      "test_carved": None}
    assert two.provenance()["dataset"] == "00" * 32  # other images: what compare refuses to pair
    changes = [{"encoder": "tiny2"}, {"weights_sha256": "ac" * 32}, {"preprocess": {"resize": [32, 32]}},
               {"feature_kind": "tokens"}, {"normalized": False}]
    seen = {one.extractor}
    for i, change in enumerate(changes):
        cache = open_cache(write_cache(tmp_path / f"c{i}.h5", splits(rng), ["a", "b", "c"], {**ATTRS, **change}))
        assert cache.extractor not in seen, change
        seen.add(cache.extractor)
    bare = {k: v for k, v in ATTRS.items() if k != "weights_sha256"}  # written outside an extraction
    assert open_cache(write_cache(tmp_path / "d.h5", splits(rng), ["a", "b", "c"], bare)).extractor is None


def test_a_damaged_attribute_leaves_h5py_usable_from_every_thread(tmp_path):
    """open_cache decoded the attributes while iterating h5py's attrs.items(), a generator that holds h5py's global
    lock; the decoding error left it suspended, kept alive by the traceback, and the next h5py call of any other
    thread waited forever: after one 422 the service hung on every route (an attack round)."""
    import shutil
    import threading

    good = write_cache(tmp_path / "good.h5", splits(np.random.default_rng(0)), ["a", "b", "c"], ATTRS)
    shutil.copy(good, tmp_path / "bad.h5")
    with h5py.File(tmp_path / "bad.h5", "r+") as h5:
        h5.attrs["class_names"] = "{not json"
    with pytest.raises(CacheMismatch, match="'class_names' is not valid JSON") as refused:
        open_cache(tmp_path / "bad.h5")
    widths = []
    other = threading.Thread(target=lambda: widths.append(open_cache(good).num_features), daemon=True)
    other.start()
    other.join(30)
    assert widths == [5] and refused.value is not None  # the refusal (and its traceback) still alive here
    with h5py.File(good, "r") as src, h5py.File(tmp_path / "flat.h5", "w") as h5:  # features not (rows, width)
        for key in list(src.attrs):
            h5.attrs[key] = src.attrs[key]
        h5.create_dataset("train/features", data=np.zeros(4))
    with pytest.raises(CacheMismatch, match="train/features is a 1-d float64 array"):
        open_cache(tmp_path / "flat.h5")


@pytest.mark.parametrize("value", [3, -1])
def test_write_cache_refuses_labels_outside_the_classes_and_writes_nothing(tmp_path, value):
    """write_cache wrote labels that are no index into class_names, and every read of the file then refused it as
    'damaged or not written by feature_cache' (a library round)."""
    data = splits(np.random.default_rng(5))
    data["test"][1][1] = value
    with pytest.raises(ValueError, match=rf"^split 'test' has 1 labels outside 0..2 \(the 3 classes of class_names\), "
                                         rf"e\.g\. {value}\.$"):
        write_cache(tmp_path / "h.h5", data, ["a", "b", "c"], ATTRS)
    assert list(tmp_path.iterdir()) == []


def test_write_cache_refuses_repeated_class_names_and_unusable_features_and_writes_nothing(tmp_path):
    """write_cache wrote repeated class names and NaN features, and every run on the cache then refused it
    ('class_names holds 'a' more than once', 'split 'train' features hold values that are NaN ...'; a library round):
    refused at the write with the same checks (probe.names.repeated, probe.stats.unusable_rows)."""
    with pytest.raises(ValueError, match=r"^class_names holds 'a' more than once; each class needs its own name\.$"):
        write_cache(tmp_path / "h.h5", splits(np.random.default_rng(5)), ["a", "b", "a"], ATTRS)
    assert list(tmp_path.iterdir()) == []
    for value, dtype in ((np.nan, "float32"), (np.inf, "float32"), (1e5, "float16")):  # 1e5 is inf in float16
        data = splits(np.random.default_rng(5))
        data["train"][0][2, 1] = value
        with pytest.raises(ValueError, match=rf"^split 'train' features hold values that are NaN, infinite .* once "
                                             rf"stored as {dtype} in 1 row\(s\), e\.g\. row 2; no cache is written\.$"):
            write_cache(tmp_path / "h.h5", data, ["a", "b", "c"], ATTRS, dtype=dtype)
        assert list(tmp_path.iterdir()) == []


def test_write_cache_keeps_the_content_digests_it_is_given_and_refuses_others(tmp_path):
    """write_cache could not write content digests, so a cache made by hand fell back to path matching in mr2probe
    predict: given digests (row-aligned, (n, 16) uint8 for each split written) are kept as extraction keeps them;
    others are a ValueError naming the split, and nothing is written."""
    data = splits(np.random.default_rng(5))
    rng = np.random.default_rng(6)
    digests = {split: rng.integers(0, 256, (len(labels), 16), dtype=np.uint8) for split, (_, labels, _) in data.items()}
    cache = open_cache(write_cache(tmp_path / "h.h5", data, ["a", "b", "c"], ATTRS, digests=digests))
    for split in data:
        assert np.array_equal(cache.digests(split), digests[split])
    assert cache.training_digests() is not None
    assert open_cache(write_cache(tmp_path / "plain.h5", data, ["a", "b", "c"], ATTRS)).digests("test") is None
    for path in tmp_path.iterdir():
        path.unlink()
    n = len(data["test"][1])
    for bad, says in (({**digests, "test": digests["test"][:-1]}, rf"^split 'test' digests must be a \({n}, 16\) "
                       rf"uint8 array \(a content digest per row\), got uint8 of shape \({n - 1}, 16\)\.$"),
                      ({**digests, "test": digests["test"].astype(np.int64)}, r"got int64 of shape"),
                      ({"test": digests["test"]}, r"^digests must be given for each split written "
                                                  r"\(test, train, val\), got test\.$")):
        with pytest.raises(ValueError, match=says):
            write_cache(tmp_path / "h.h5", data, ["a", "b", "c"], ATTRS, digests=bad)
        assert list(tmp_path.iterdir()) == []


def test_row_digests_reads_the_listed_rows_source_and_digest_alone(tmp_path):
    """A gallery's thumbnail URLs carry each listed image's digest: read for the listed rows alone (every source of a
    1.28M-image split was read for each page), equal to those rows of sources() and digests(); rows past the split
    are skipped, and a cache without digests gives none."""
    data = splits(np.random.default_rng(5))
    digests = {split: np.random.default_rng(6).integers(0, 256, (len(labels), 16), dtype=np.uint8)
               for split, (_, labels, _) in data.items()}
    cache = open_cache(write_cache(tmp_path / "h.h5", data, ["a", "b", "c"], ATTRS, digests=digests))
    n = len(data["test"][1])
    found = cache.row_digests("test", [n - 1, 0, 0, n, -1])
    assert found == {r: (cache.sources("test")[r], bytes(digests["test"][r])) for r in (0, n - 1)}
    assert open_cache(write_cache(tmp_path / "plain.h5", data, ["a", "b", "c"], ATTRS)).row_digests("test", [0]) == {}
