"""probe.seen: the digests of a run's train and val sources, their overlap with scored images, and the file."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

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
        with pytest.raises(ValueError, match=f"^{SEEN_FILE} cannot be read .*remove it to score without the check"):
            SeenSources.load(tmp_path)  # said, naming the file: the check went without a word


def _tampered(arrays: dict, damage: str) -> dict:
    """``arrays`` of a saved SeenSources with ``damage`` done to one of them."""
    name, _, how = damage.partition(":")
    keys = arrays[name]
    edits = {"0-d": lambda: keys[0], "2-d": lambda: keys.reshape(1, -1), "float": lambda: keys.astype(float),
             "nan": lambda: np.full(3, np.nan), "negative": lambda: -np.arange(1, 4), "huge": lambda: np.full(3, 1e300),
             "text": lambda: np.array(["a", "b"]), "unsorted": lambda: keys[::-1],
             "repeated": lambda: np.r_[keys, keys],
             "bool": lambda: np.array([True, False]), "gone": None}
    changed = {k: v for k, v in arrays.items() if k != name}
    return changed if how == "gone" else {**changed, name: edits[how]()}


@pytest.mark.parametrize("damage", [f"{name}:{how}" for name in ("train", "val", "ambiguous", "tails", "content_train")
                                    for how in ("0-d", "2-d", "float", "nan", "negative", "huge", "text", "unsorted",
                                                "repeated", "bool")]
                         + ["relative:2-d", "relative:text", "relative:float", "content_val:gone", "train:gone+val"])
def test_a_seen_file_whose_arrays_were_edited_is_a_value_error_naming_it(tmp_path, damage):
    """Arrays edited on disk (0-d, of another type or shape, unsorted, not one flag) were read as they came, or
    dropped with the whole check in a log line: every score on another cache then went without the word that its
    images were the run's training images (an attack round). Each is a ValueError naming the file and the array."""
    seen = SeenSources.of({"train": [f"train/c/{i}" for i in range(10)], "val": ["val/c/0", "val/c/1"]},
                          contents={"train": np.arange(160, dtype=np.uint8).reshape(10, 16),
                                    "val": np.arange(32, dtype=np.uint8).reshape(2, 16)})
    seen.save(tmp_path)
    with np.load(tmp_path / SEEN_FILE) as data:
        arrays = dict(data)
    if damage == "train:gone+val":
        arrays = {k: v for k, v in arrays.items() if k not in ("train", "val")}
    else:
        arrays = _tampered(arrays, damage)
    with open(tmp_path / SEEN_FILE, "wb") as out:
        np.savez(out, **arrays)
    with pytest.raises(ValueError, match=f"^{SEEN_FILE} is not as a run writes it"):
        SeenSources.load(tmp_path)


def test_a_seen_file_of_objects_is_refused_unpickled(tmp_path):
    with open(tmp_path / SEEN_FILE, "wb") as out:
        np.savez(out, train=np.array([{"a": 1}], dtype=object), relative=np.array(True))
    with pytest.raises(ValueError, match=f"^{SEEN_FILE} cannot be read .*allow_pickle"):
        SeenSources.load(tmp_path)


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


def test_moved_matches_the_same_class_folder_and_file_name_under_another_split_folder():
    """The same files in another layout (train/ and test/ folders copied flat, or moved to another split folder)
    matched no path (a new-user round): moved() sets the leading split folder aside, keeps the class folder, and
    leaves out names its cache repeats across split folders (each split numbered afresh: other images)."""
    from probe.seen import repeated_rests

    seen = SeenSources.of({"train": ["train/cat/0.png", "train/dog/1.png"], "val": ["train/cat/2.png"],
                           "test": ["test/cat/3.png"]})
    flat = ["cat/0.png", "dog/1.png", "cat/2.png", "cat/3.png", "dog/0.png", "cat/9.png"]
    assert seen.overlap(flat) == {"train": 0, "val": 0}
    assert seen.moved(flat, "", repeated_rests(flat, "")) == {"train": 2, "val": 1}
    scored = ["Test/cat/0.png", "val/cat/2.png", "train/dog/1.png"]  # another split folder, any case; one exact
    assert seen.moved(scored, "", repeated_rests(scored, "")) == {"train": 1, "val": 1}
    renumbered = ["train/cat/0.png", "test/cat/0.png", "test/dog/1.png"]  # test/cat/0.png: another image
    repeated = repeated_rests(renumbered, "")
    assert seen.moved(renumbered, "", repeated) == {"train": 1, "val": 0}  # test/dog/1.png; cat/0 exact
    trained_flat = SeenSources.of({"train": ["data/cat/0.png", "data/dog/5.png"]}, "data/")
    split = ["top/test/cat/0.png", "top/train/dog/5.png", "top/test/dog/0.png"]
    assert trained_flat.moved(split, "top/", repeated_rests(split, "top/")) == {"train": 2}
    whole = SeenSources({"train": source_digests(["train/cat/0.png"])}, relative=False)  # whole paths: none
    assert whole.moved(flat, "", repeated_rests(flat, "")) == {"train": 0}


def test_a_name_the_run_holds_under_two_split_folders_is_neither_of_them():
    """A review: a run whose data set numbers each split afresh (train/cat/0.png, val/cat/0.png: other images) had
    its own test/ folder, scored as another data set, counted as trained on and as selected on, 4 + 4 of 4 images."""
    from probe.seen import common_folder, repeated_rests

    run = {"train": [f"train/{c}/{i}.png" for c in ("cat", "dog") for i in range(8)],
           "val": [f"val/{c}/{i}.png" for c in ("cat", "dog") for i in range(2)]}
    seen = SeenSources.of(run, common_folder([*run["train"], *run["val"]]))
    scored = ["test/cat/0.png", "test/cat/1.png", "test/dog/0.png", "test/dog/1.png"]
    shared = common_folder(scored)
    assert seen.moved(scored, shared, repeated_rests(scored, shared)) == {"train": 0, "val": 0}
    once = ["test/cat/5.png", "test/dog/7.png"]  # only train/ holds these names: one match each, counted once
    assert seen.moved(once, "", repeated_rests(once, "")) == {"train": 2, "val": 0}


def test_the_runs_own_test_folder_scored_apart_is_not_trained_on(tmp_path):
    """A run on train/ and test/ folders, each numbered afresh, val carved from train: its test/ folder scored as
    another data set matched train/cat/0.png by name (a review). The run stores the names its whole cache repeats
    across split folders (``ambiguous``, test included) and leaves them out; a run stored before them does not."""
    import numpy as np

    from probe.seen import repeated_rests

    cache = {"train": ["d/train/cat/0.png", "d/train/cat/1.png", "d/train/dog/0.png"],
             "test": ["d/test/cat/0.png", "d/test/dog/5.png"]}
    seen = SeenSources.of({"train": cache["train"][1:], "val": cache["train"][:1]}, "d/",
                          every=[p for paths in cache.values() for p in paths])
    scored = ["test/cat/0.png", "test/dog/5.png"]  # its own test images, zipped apart
    assert seen.moved(scored, "", repeated_rests(scored, "")) == {"train": 0, "val": 0}
    flat = ["cat/1.png", "dog/0.png"]  # train images copied flat are still found
    assert seen.moved(flat, "", repeated_rests(flat, "")) == {"train": 2, "val": 0}
    seen.save(tmp_path)
    again = SeenSources.load(tmp_path)
    assert np.array_equal(again.ambiguous, seen.ambiguous) and again.ambiguous.size == 1
    np.savez(tmp_path / "seen_sources.npz", **seen.digests, relative=np.array(True))  # a run before them
    older = SeenSources.load(tmp_path)  # without the names its data set repeats: no layout matching at all
    assert older.ambiguous.size == 0 and older.tails is None
    assert older.moved(scored, "", repeated_rests(scored, "")) == {"train": 0, "val": 0}
    assert older.moved(flat, "", repeated_rests(flat, "")) == {"train": 0, "val": 0}


def test_moved_matches_a_run_whose_split_folders_are_upper_case():
    """An attack round: a data set of TRAIN/ VAL/ TEST/ folders (read as splits in any case) copied flat went
    unflagged, 0 of 4 trained and selected on: only lower-case and capitalised split folders were tried."""
    from probe.seen import common_folder, repeated_rests

    run = {"train": ["TRAIN/cat/0.png", "TRAIN/dog/0.png"], "val": ["VAL/cat/1.png", "VAL/dog/1.png"],
           "test": ["TEST/cat/2.png", "TEST/dog/2.png"]}
    seen = SeenSources.of(run, common_folder([p for paths in run.values() for p in paths]))
    flat = ["cat/0.png", "dog/0.png", "cat/1.png", "dog/1.png", "cat/9.png"]
    assert seen.moved(flat, "", repeated_rests(flat, "")) == {"train": 2, "val": 2}


def test_moved_hashes_each_scored_name_once_where_the_run_holds_it_under_no_split_folder(tmp_path, monkeypatch):
    """An attack round: 200,000 images of a cache of another data set with the run's classes took 8 s of the
    seen-images check (each name digested under all 16 spellings of a split folder) beside 0.8 s of scoring. The run
    keeps its paths below their split folder too (``tails``): a name that is none of them is digested once."""
    import numpy as np

    import probe.seen as seen_module
    from probe.seen import repeated_rests

    run = {"train": [f"train/c{i % 5}/{i}.png" for i in range(100)],
           "val": [f"val/c{i % 5}/{i}.png" for i in range(100, 110)]}
    seen = SeenSources.of(run)
    scored = [f"c{i % 5}/new{i}.png" for i in range(1000)] + ["c0/0.png", "c1/1.png", "c0/100.png"]
    repeated = repeated_rests(scored, "")
    hashed, digests = [], seen_module._digests

    def count(paths):
        paths = list(paths)
        hashed.append(len(paths))
        return digests(paths)

    monkeypatch.setattr(seen_module, "_digests", count)
    assert seen.moved(scored, "", repeated) == {"train": 2, "val": 1}
    # each path and its name once (it was not found as it is; its name), the 3 that can match under each spelling
    assert sum(hashed) <= 2 * len(scored) + 3 * 16
    seen.save(tmp_path)  # kept with the run; a run before them is not matched by layout (no false alarms)
    again = SeenSources.load(tmp_path)
    assert np.array_equal(again.tails, seen.tails)
    np.savez(tmp_path / "seen_sources.npz", **seen.digests, relative=np.array(True), ambiguous=seen.ambiguous)
    older = SeenSources.load(tmp_path)
    assert older.tails is None and older.moved(scored, "", repeated) == {"train": 0, "val": 0}


def _content_of(paths):
    """Content digests whose first 8 bytes are each path's own digest (source_digests), 16 bytes a row."""
    rows = [hashlib.blake2b(p.encode(), digest_size=8).digest() + bytes(8) for p in paths]
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(paths), 16)


def test_a_run_keeps_its_train_and_val_contents_row_aligned_through_carving_and_dropped_classes(tmp_path):
    """The contents a run keeps (seen_sources.npz) follow its rows as its sources do: val carved from train is
    val, a class left out is in neither; a scored image is matched by its bytes (SeenSources.same_content)."""
    from probe import ProbeConfig, run_probe
    from probe.seen import content_keys

    rng = np.random.default_rng(0)
    labels = {"train": np.repeat(np.arange(3), 12), "val": np.zeros(0, dtype=np.int64),
              "test": np.repeat(np.arange(3), 4)}
    data = {s: (rng.normal(0, 1, (len(y), 4)).astype(np.float32) + y[:, None], y) for s, y in labels.items()}
    sources = {s: [f"{s}/{i}.png" for i in range(len(y))] for s, y in labels.items()}
    contents = {s: _content_of(paths) for s, paths in sources.items()}
    for drop in ([], ["2"]):
        out = tmp_path / f"run{len(drop)}"
        run_probe(data, ["0", "1", "2"], ProbeConfig(epochs=3, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0,
                                                      drop_classes=drop),
                  out_dir=out, sources=sources, contents=contents)
        seen = SeenSources.load(out)
        assert len(seen.digests["val"]) and len(seen.digests["train"]) + len(seen.digests["val"]) == 36 - 12 * len(drop)
        for split in ("train", "val"):
            np.testing.assert_array_equal(seen.contents[split], seen.digests[split])
        trained = _content_of(sources["train"])[:5]
        assert seen.same_content(trained)["train"] + seen.same_content(trained)["val"] == 5
        assert seen.same_content(_content_of(["new/0.png"])) == {"train": 0, "val": 0}
        left_out = _content_of(sources["train"][24:])  # class "2": trained on unless left out
        assert sum(seen.same_content(left_out).values()) == (0 if drop else 12)
    assert content_keys(np.zeros((0, 16), dtype=np.uint8)).shape == (0,)


def test_save_is_durable_and_an_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    """seen_sources.npz is shipped with the probe: written through probe.files' one atomic write (a temporary of its
    own, synced before its rename), and a save cut off midway leaves the old file whole and no temporary behind."""
    import probe.files

    old = SeenSources.of({"train": ["a/1.png"], "val": ["b/2.png"]})
    old.save(tmp_path)
    synced = []
    real_sync = probe.files.sync
    monkeypatch.setattr(probe.files, "sync", lambda path: (synced.append(str(path)), real_sync(path)))
    SeenSources.of({"train": ["c/3.png"], "val": ["d/4.png"]}).save(tmp_path)
    assert any(f".{SEEN_FILE}." in name and name.endswith(".tmp") for name in synced)
    assert SeenSources.load(tmp_path).overlap(["c/3.png", "a/1.png"]) == {"train": 1, "val": 0}

    old.save(tmp_path)

    def cut_off(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", cut_off)
    with pytest.raises(KeyboardInterrupt):
        SeenSources.of({"train": ["e/5.png"], "val": []}).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SEEN_FILE]
    assert SeenSources.load(tmp_path).overlap(["a/1.png", "b/2.png"]) == {"train": 1, "val": 1}
