"""Archive, manifest and idx readers; every unsafe or bad input gives a clear error and damages nothing."""
from __future__ import annotations

import gzip
import os
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from feature_cache import ArchiveLimits, DatasetError, UnsafeArchive, extract, open_cache, open_dataset
from fc_testutils import tiny_encoder

FASHION = Path("/usr/share/datasets/fashion-mnist")


def tree_members(tree: Path) -> list[tuple[str, bytes]]:
    return [(p.relative_to(tree).as_posix(), p.read_bytes()) for p in sorted(tree.rglob("*")) if p.is_file()]


def make_zip(path: Path, members: list[tuple[str, bytes]], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def make_tar(path: Path, members: list[tuple[str, bytes]], mode: str = "w", extra=()) -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return path


def samples(data):
    return {split: [(s.source, s.label) for s in items] for split, items in data.splits.items()}


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar.bz2", "w:bz2"),
                                         (".tar.xz", "w:xz")])
def test_tar_reads_like_the_folder(tree, tmp_path, suffix, mode):
    archive = make_tar(tmp_path / f"data{suffix}", [(f"top/{n}", b) for n, b in tree_members(tree)], mode)
    from_tar, from_dir = open_dataset(archive), open_dataset(tree)
    strip = {k: [(s.removeprefix("top/"), y) for s, y in v] for k, v in samples(from_tar).items()}
    assert strip == samples(from_dir) and from_tar.class_names == from_dir.class_names
    first = from_tar.splits["test"][0]
    assert from_tar.reader.read(first.source) == (tree / first.source.removeprefix("top/")).read_bytes()
    assert from_tar.load_image(first).size == (12, 12)


def test_zip_reader_in_a_forked_process_reuses_the_parsed_directory_with_its_own_file(tree, tmp_path):
    from feature_cache.archives import ZipReader

    members = tree_members(tree)
    reader = ZipReader(make_zip(tmp_path / "d.zip", members, zipfile.ZIP_DEFLATED))
    parent = reader._archive()
    reader._pid = -1  # as a forked DataLoader worker sees it: another process opened the handle
    child = reader._archive()
    assert child is not parent and child.fp is not parent.fp and child._lock is not parent._lock
    assert child.filelist is parent.filelist  # not parsed again
    expected = dict(members)
    for name in reader.names():  # the two handles interleaved: each keeps its own file offset
        with parent.open(name) as a, child.open(name) as b:
            head, whole = a.read(3), b.read()
            assert head + a.read() == whole == expected[name]
    parent.close()  # the forked process's copy outlives the original (closed by the parent)
    assert reader.read(reader.names()[0]) == expected[reader.names()[0]]


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz"])
def test_a_pickled_archive_reader_reads_with_its_own_handle(tree, tmp_path, suffix):
    """What a spawned DataLoader worker receives: the listing and the folders without this process's open handle
    (nor a compressed tar's temporary file's finalizer), reading the same bytes once it opens its own."""
    import pickle

    members = [(f"top/{n}", b) for n, b in tree_members(tree)]
    archive = (make_zip(tmp_path / "d.zip", members) if suffix == ".zip" else
               make_tar(tmp_path / f"d{suffix}", members, "w:gz" if suffix == ".tar.gz" else "w"))
    reader = open_dataset(archive).reader
    name = reader.names()[0]
    expected = reader.read(name)
    state = reader.__getstate__()
    assert state["_handle"] is None and state["_pid"] is None and "_finalizer" not in state
    copy = pickle.loads(pickle.dumps(reader))
    assert copy.read(name) == expected and copy.dirs() == reader.dirs()
    assert str(copy) == str(reader) == str(archive.resolve()) and copy.unsafe == []


def test_zip_and_tar_feed_extraction(tree, tmp_path):
    members = tree_members(tree)
    features = []
    for archive in (make_zip(tmp_path / "d.zip", members), make_tar(tmp_path / "d.tar.gz", members, "w:gz")):
        result = extract(archive, tiny_encoder(), tmp_path / "caches", workers=2, batch_size=5, show_progress=False)
        features.append(open_cache(result.path).load("train")[0])
    np.testing.assert_array_equal(features[0], features[1])


@pytest.mark.parametrize("name", ["../evil/a.png", "/etc/a.png", "train/../../a.png", "C:/x/a.png"])
def test_path_escapes_are_refused(tree, tmp_path, name):
    members = tree_members(tree) + [(name, b"x")]
    for archive in (make_zip(tmp_path / "e.zip", members), make_tar(tmp_path / "e.tar", members)):
        with pytest.raises(UnsafeArchive, match=r"absolute path|escapes the archive root with '\.\.'"):
            open_dataset(archive)


def test_links_in_archives_are_skipped_never_followed(tree, tmp_path):
    """A link member is skipped with why, whatever it points to (/etc/passwd, or another member: a folder
    de-duplicated with hard links, then tarred, was refused whole where the folder itself was read; an outside
    round); the other images are read as from the folder."""
    folder = open_dataset(tree)
    for kind, target, why in ((tarfile.SYMTYPE, "/etc/passwd", "symbolic link to '/etc/passwd'"),
                              (tarfile.SYMTYPE, "train/ant/000.png", "symbolic link to 'train/ant/000.png'"),
                              (tarfile.LNKTYPE, "/etc/passwd", "hard link to '/etc/passwd'"),
                              (tarfile.LNKTYPE, "../x.png", "hard link to '../x.png'")):
        link = tarfile.TarInfo("test/ant/link.png")
        link.type, link.linkname = kind, target
        data = open_dataset(make_tar(tmp_path / "l.tar", tree_members(tree), extra=[link]))
        assert data.skipped == [("test/ant/link.png", f"{why} inside the archive, not followed (put the file "
                                 "itself in)")]
        assert {k: [x.source for x in v] for k, v in data.splits.items()} == \
            {k: [x.source for x in v] for k, v in folder.splits.items()}
    # a hard link to a member before it (a folder de-duplicated with hard links, then tarred): that member's bytes,
    # read as the folder's second name of the file is
    (tree / "test" / "ant" / "dup.png").hardlink_to(tree / "train" / "ant" / "000.png")
    tarred = tmp_path / "dedup.tar"
    with tarfile.open(tarred, "w") as tf:
        tf.add(tree, arcname="data")
    with tarfile.open(tarred) as tf:  # the second of the two names archived is the link
        assert [m.name for m in tf.getmembers() if m.islnk()] == ["data/train/ant/000.png"]
    data, folder = open_dataset(tarred), open_dataset(tree)
    assert data.skipped == []
    for split in ("train", "val", "test"):
        assert [s.source for s in data.splits[split]] == ["data/" + s.source for s in folder.splits[split]]
    assert data.reader.read("data/train/ant/000.png") == (tree / "test" / "ant" / "dup.png").read_bytes()
    archive = make_zip(tmp_path / "s.zip", tree_members(tree))
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo("train/ant/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    data = open_dataset(archive)
    assert data.skipped == [("train/ant/link.png", "symbolic link inside the archive, not followed (put the file "
                             "itself in)")]
    assert len(data.splits["train"]) + len(data.splits["val"]) == 18 and len(data.splits["test"]) == 10


def test_a_refused_zip_member_is_named_with_its_characters(tree, tmp_path):
    """A member in a class folder named 猫, zipped by Info-ZIP (UTF-8 bytes, no flag), was named 'train/τî½/...' in
    the refusal: zipfile's cp437 reading, where the listing reads the name right (an outside round)."""
    from feature_cache import ArchiveLimits

    utf8 = "猫".encode("utf-8")
    stand_in = "X" * len(utf8)
    archive = make_zip(tmp_path / "s.zip", tree_members(tree) + [(f"train/{stand_in}/big.png", bytes(4096))])
    archive.write_bytes(archive.read_bytes().replace(stand_in.encode(), utf8))
    with pytest.raises(UnsafeArchive) as refused:
        open_dataset(archive, limits=ArchiveLimits(max_member_bytes=2048))
    assert "member 'train/猫/big.png' is 4096 bytes uncompressed" in str(refused.value)


def test_zip_bomb_member_ratio_is_refused(tree, tmp_path):
    members = tree_members(tree) + [("train/ant/bomb.png", bytes(4 * 2**20))]
    archive = make_zip(tmp_path / "b.zip", members, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(UnsafeArchive, match=r"'train/ant/bomb.png' expands \d+x \(limit 200x.*decompression bomb"):
        open_dataset(archive)


def test_tar_gz_bomb_is_refused_while_decompressing(tmp_path):
    archive = make_tar(tmp_path / "b.tar.gz", [("train/a/0.png", bytes(8 * 2**20)), ("test/b/0.png", b"x")], "w:gz")
    with pytest.raises(UnsafeArchive, match=r"expands more than 200x .*decompression bomb"):
        open_dataset(archive)
    with pytest.raises(UnsafeArchive, match=r"more than 1000 bytes uncompressed \(ArchiveLimits.max_total_bytes\)"):
        open_dataset(archive, limits=ArchiveLimits(max_total_bytes=1000))


def test_xz_decoding_is_bounded_in_memory_and_reads_concatenated_streams(tree, tmp_path, monkeypatch):
    """An .xz stream names the dictionary its decoder allocates (up to 1.5 GiB, filled as it writes): decoded under
    XZ_MEMORY_LIMIT, which xz -6's 8 MiB dictionary passes and a 1 MiB limit refuses; uploads of .tar.xz are taken
    since stop 57."""
    import lzma

    import feature_cache.archives as archives

    plain = make_tar(tmp_path / "data.tar", [(f"top/{n}", b) for n, b in tree_members(tree)], "w").read_bytes()
    packed = tmp_path / "data.tar.xz"
    half = len(plain) // 2  # two concatenated streams with padding between them, as `xz -c a b` and xz's spec allow
    packed.write_bytes(lzma.compress(plain[:half], preset=6) + bytes(8) + lzma.compress(plain[half:], preset=6))
    assert samples(open_dataset(packed)) == samples(open_dataset(tmp_path / "data.tar"))
    monkeypatch.setattr(archives, "XZ_MEMORY_LIMIT", 1 << 20)
    with pytest.raises(UnsafeArchive, match=r"data.tar.xz: not a readable compressed tar archive \(Memory usage"):
        open_dataset(packed)


def test_size_and_count_limits(tree, tmp_path):
    members = tree_members(tree)
    archive = make_zip(tmp_path / "c.zip", members)
    with pytest.raises(UnsafeArchive, match=r"c.zip: more than 10 members \(ArchiveLimits.max_members\)"):
        open_dataset(archive, limits=ArchiveLimits(max_members=10))
    with pytest.raises(UnsafeArchive, match=r"more than 2000 bytes uncompressed"):
        open_dataset(archive, limits=ArchiveLimits(max_total_bytes=2000))
    with pytest.raises(UnsafeArchive, match=r"over the limit of 100 \(ArchiveLimits.max_member_bytes\)"):
        open_dataset(make_tar(tmp_path / "c.tar", members), limits=ArchiveLimits(max_member_bytes=100))
    with pytest.raises(ValueError, match="ArchiveLimits.max_ratio must be > 0, got 0"):
        ArchiveLimits(max_ratio=0)


def test_a_zip_of_too_many_entries_is_refused_before_zipfile_lists_them(tmp_path, monkeypatch):
    """zipfile.ZipFile makes a ZipInfo of every entry of the central directory before a limit can be checked, and
    reads the directory whatever count its end record declares: 5 M entries in a 259 MB upload took 2.3 GB and
    46 s to refuse. They are counted first, the end record's own count (here a lie) not trusted."""
    from feature_cache.archives import ZipReader

    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for i in range(11):
            out.writestr(f"a/{i}.png", b"x")
    data = bytearray(archive.read_bytes())
    end = data.rindex(zipfile.stringEndArchive)
    data[end + 8:end + 12] = (1).to_bytes(2, "little") * 2  # "1 entry on this disk, 1 in all"
    archive.write_bytes(bytes(data))
    assert len(zipfile.ZipFile(archive).infolist()) == 11  # zipfile reads all of them all the same
    assert len(ZipReader(archive, ArchiveLimits(max_members=11)).names()) == 11  # at the limit: read
    made = []
    monkeypatch.setattr(zipfile, "ZipFile", lambda *args, **kwargs: made.append(args))
    with pytest.raises(UnsafeArchive, match=r"many.zip: more than 10 members \(ArchiveLimits.max_members\)"):
        ZipReader(archive, ArchiveLimits(max_members=10))
    assert made == []


def test_unreadable_archives_are_clear_errors(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UnsafeArchive, match="junk.zip: not a readable zip archive"):
        open_dataset(tmp_path / "junk.zip")
    (tmp_path / "junk.tar.gz").write_bytes(gzip.compress(b"not a tar at all" * 3)[:-6])
    with pytest.raises(UnsafeArchive, match="junk.tar.gz: not a readable"):
        open_dataset(tmp_path / "junk.tar.gz")
    (tmp_path / "data.rar").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"Unsupported data set .*data.rar; accepted: a folder of class folders"):
        open_dataset(tmp_path / "data.rar")


def test_bad_inputs_never_damage_existing_caches(tree, tmp_path):
    caches = tmp_path / "caches"
    good = extract(tree, tiny_encoder(), caches, workers=0, show_progress=False)
    before = {p.name: p.read_bytes() for p in caches.iterdir()}
    bad = [
        make_zip(tmp_path / "escape.zip", tree_members(tree) + [("../x.png", b"x")]),
        make_zip(tmp_path / "bomb.zip", [("train/a/0.png", bytes(4 * 2**20)), ("test/a/0.png", b"x")],
                 compression=zipfile.ZIP_DEFLATED),
        make_zip(tmp_path / "one.zip", [(n, b) for n, b in tree_members(tree) if "/ant/" in n]),
    ]
    for archive in bad:
        with pytest.raises((UnsafeArchive, DatasetError)):
            extract(archive, tiny_encoder(), caches, workers=0, show_progress=False)
    with pytest.raises(UnsafeArchive):
        extract(bad[0], tiny_encoder(), None, out=good.path, workers=0, show_progress=False)
    assert {p.name: p.read_bytes() for p in caches.iterdir()} == before
    assert open_cache(good.path).fingerprint == good.fingerprint


def test_csv_manifest(tree, tmp_path):
    rows = ["path,label"] + [f"{p.relative_to(tree).as_posix()},{p.parent.name.upper()}"
                             for p in sorted((tree / "train").rglob("*.png"))]
    rows += ["train/ant/missing.png,ANT", "train/ant/000.png,ANT"]
    (tree / "notes.txt").write_text("x")
    rows.append("notes.txt,ANT")
    (tree / "list.csv").write_text("\n".join(rows) + "\n")
    data = open_dataset(tree / "list.csv", val_fraction=0.2, test_fraction=1 / 3, seed=0)
    assert data.class_names == ["ANT", "BEE", "CAT"] and data.params["layout"] == "single-tree"
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 9, "val": 3, "test": 6}
    assert dict(data.skipped) == {"train/ant/missing.png": "listed in the manifest but not found",
                                  "train/ant/000.png": "repeated row in the manifest",
                                  "notes.txt": "not an image file (extension '.txt')"}
    assert data.load_image(data.splits["train"][0]).size == (12, 12)


@pytest.mark.parametrize("header", ["filepath,label", "Image,Class,Notes", "file,target"])
def test_csv_manifest_common_header_names(tree, header):
    """`filepath,label` is the header of a widely used MNIST-as-PNG repository; extra columns are ignored."""
    files = sorted((tree / "train").rglob("*.png"))
    extra = ",x" if header.count(",") == 2 else ""
    rows = [header] + [f"{p.relative_to(tree).as_posix()},{p.parent.name}{extra}" for p in files]
    (tree / "m.csv").write_text("\n".join(rows) + "\n")
    data = open_dataset(tree / "m.csv", val_fraction=0.0, test_fraction=1 / 3, seed=0)
    assert data.class_names == ["ant", "bee", "cat"]
    assert sum(len(v) for v in data.splits.values()) == len(files)


def test_csv_manifest_as_a_spreadsheet_on_windows_saves_it(tree):
    """Excel's "CSV UTF-8": a byte-order mark, CRLF line ends, a header in words ("Image Path", "Class Name"),
    quoted paths with backslashes, a blank last line."""
    files = sorted((tree / "train").rglob("*.png"))
    rows = ["Image Path,Class Name"] + [f'"{p.relative_to(tree).as_posix().replace("/", chr(92))}",{p.parent.name}'
                                        for p in files]
    (tree / "excel.csv").write_bytes(("\r\n".join(rows) + "\r\n\r\n").encode("utf-8-sig"))
    data = open_dataset(tree / "excel.csv", val_fraction=0.0, test_fraction=1 / 3, seed=0)
    assert data.class_names == ["ant", "bee", "cat"] and not data.skipped
    assert sum(len(v) for v in data.splits.values()) == len(files)


def test_csv_manifest_split_column_aliases(tree):
    rows = ["image_path,category,subset"] + [f"{p.relative_to(tree).as_posix()},{p.parent.name},{p.parts[-3]}"
                                             for p in sorted(tree.rglob("*.png"))]
    (tree / "s.csv").write_text("\n".join(rows))
    data = open_dataset(tree / "s.csv", val_fraction=0.0)
    assert data.params["layout"] == "manifest-splits"
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 18, "val": 0, "test": 9}


def test_csv_manifest_with_split_column_and_errors(tree, tmp_path):
    rows = ["label,path,split"] + [f"{p.parent.name},{p.relative_to(tree).as_posix()},{p.parts[-3]}"
                                   for p in sorted(tree.rglob("*.png"))]
    (tree / "split.csv").write_text("\n".join(rows))
    data = open_dataset(tree / "split.csv", val_fraction=0.0)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 18, "val": 0, "test": 9}
    (tree / "escape.csv").write_text("path,label\n../outside.png,ant\n")
    with pytest.raises(UnsafeArchive, match=r"row 2: path '../outside.png' escapes the manifest's folder: its paths"):
        open_dataset(tree / "escape.csv")
    (tree / "nohead.csv").write_text("train/ant/000.png,ant\n")
    with pytest.raises(DatasetError, match=r"the first row must be a header naming a path column \(path, filepath, "
                                           r".*and a label column \(label, class, "):
        open_dataset(tree / "nohead.csv")
    (tree / "badsplit.csv").write_text("path,label,split\ntrain/ant/000.png,ant,dev\n")
    with pytest.raises(DatasetError, match="row 2: split 'dev' is not one of train, val, test"):
        open_dataset(tree / "badsplit.csv")


def test_csv_manifest_not_utf8_or_not_csv_is_refused_naming_the_file_and_line(tree):
    """Latin-1 or UTF-16 text (Excel's "Unicode Text") and a field over the csv module's limit were a 500
    (UnicodeDecodeError, csv.Error); each is a DatasetError naming the file, the line and what to do."""
    import csv

    from feature_cache.manifest import read_manifest

    rows = "path,label\ntrain/ant/000.png,ant\ntrain/ant/001.png,caf\u00e9\n"
    cases = {
        "latin1.csv": (rows.encode("latin-1"),
                       "latin1.csv is not UTF-8 text (byte 0xe9 at line 3): save it as UTF-8."),
        "utf16.csv": (rows.encode("utf-16"),
                      "utf16.csv is UTF-16 text, not UTF-8: save it as UTF-8 (in Excel: CSV UTF-8)."),
        "utf16le.csv": (rows.encode("utf-16-le"),
                        "utf16le.csv holds NUL bytes (UTF-16 text without a byte-order mark, or not text at all): "
                        "save it as UTF-8 text (in Excel: CSV UTF-8)."),
        "long.csv": (f"path,label\ntrain/ant/000.png,ant\n{'x' * 200_000},ant\n".encode(),
                     f"long.csv: line 3 has a field longer than the CSV reader's limit of {csv.field_size_limit()} "
                     "characters: is it a manifest of path,label rows?"),
    }
    for name, (data, message) in cases.items():
        (tree / name).write_bytes(data)
        with pytest.raises(DatasetError) as info:
            open_dataset(tree / name)
        assert str(info.value) == f"{tree}/{message}"
    # UTF-8 with a byte-order mark (Excel's "CSV UTF-8") is read, accents and all
    (tree / "bom.csv").write_bytes(rows.encode("utf-8-sig"))
    _, given, skipped, _ = read_manifest(tree / "bom.csv", frozenset({".png"}))
    assert given == {"train": {"ant": ["train/ant/000.png"], "caf\u00e9": ["train/ant/001.png"]}} and not skipped


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_idx_set(folder: Path, train_labels: np.ndarray, test_labels: np.ndarray, seed: int) -> None:
    """Random 28×28 train and t10k images of the given labels, as the four idx files of a Fashion-MNIST folder."""
    rng = np.random.default_rng(seed)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (len(train_labels), 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (len(test_labels), 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_labels)


def test_idx_reader_on_written_files(tmp_path):
    folder = tmp_path / "fashion-mini"
    folder.mkdir()
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 255, (12, 28, 28)), rng.integers(0, 255, (6, 28, 28))
    write_idx(folder / "train-images-idx3-ubyte.gz", train)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(12) % 3)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(6) % 3)
    data = open_dataset(folder, val_fraction=0.25)
    assert data.class_names == ["T-shirt/top", "Trouser", "Pullover"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 9, "val": 3, "test": 6}
    sample = data.splits["test"][4]
    assert sample.source == "test/00004" and sample.label == 1
    image = data.load_image(sample)
    assert image.mode == "L" and np.array_equal(np.asarray(image), test[4])
    rgb = tiny_encoder().transform(image)
    assert rgb.shape == (3, 16, 16) and bool((rgb[0] == rgb[2]).all())
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc"))
    with pytest.raises(DatasetError, match=r"idx header says \(9,\) = 9 bytes, file has 3"):
        open_dataset(folder)


def test_idx_files_whose_test_split_lacks_a_class_are_read_as_such_class_folders_are(tmp_path):
    """A t10k file without one of the training classes was refused: "class folder(s) '2' (in 'test') contain no
    images; add images or remove the folder", of files that have no folders, where class folders whose test/ lacks
    a class are read (and the CLI warns of it; a review). A class without training images is still refused."""
    folder = tmp_path / "mnist-mini"
    folder.mkdir()
    write_idx_set(folder, np.arange(12) % 3, np.arange(6) % 2, seed=0)
    data = open_dataset(folder, val_fraction=0.25)
    assert data.class_names == ["0", "1", "2"]
    assert sorted({s.label for s in data.splits["test"]}) == [0, 1] and len(data.splits["test"]) == 6
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(12) % 2)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(6) % 3)
    with pytest.raises(DatasetError, match=r"class\(es\) 2 have no training images"):
        open_dataset(folder)


def test_an_idx_file_swapped_for_a_fifo_is_refused_without_blocking(tmp_path):
    """An idx file found, then replaced by a FIFO, blocked its read forever (an attack round): refused unread."""
    import os

    from feature_cache.idx import read_idx

    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="is not a regular file"):
        read_idx(fifo)


def test_idx_decompression_bomb_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A gzip idx file whose header declares far more than it compresses from (15.7 MB of zeros in a ~15 kB file)
    was read whole (a 762 kB file declaring 1,000,000×28×28 took the server from 0.8 to 2.7 GB); the archives'
    ratio rule (ArchiveLimits.max_ratio) refuses it from its header, and trailing bytes are refused too."""
    import gzip as gzip_module

    from feature_cache import ArchiveLimits

    folder = tmp_path / "fashion-bomb"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((20_000, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(20_000) % 2)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(2))
    bomb = folder / "train-images-idx3-ubyte.gz"
    size = bomb.stat().st_size
    reads = []
    real_gzip = gzip_module.GzipFile
    monkeypatch.setattr(gzip_module, "GzipFile", lambda *a, **k: _Recording(real_gzip(*a, **k), reads))
    with pytest.raises(DatasetError) as info:
        open_dataset(folder)
    assert str(info.value) == (
        f"{bomb}: the idx header declares 15680000 bytes, {15_680_000 / size:.0f}x the {size}-byte file "
        "(limit 200x, ArchiveLimits.max_ratio): possible decompression bomb.")
    assert sum(reads) == 16  # the magic and the three dimensions, nothing of the data
    monkeypatch.undo()
    # the same file under a looser rule is read; one with bytes past its declared size is refused
    data = open_dataset(folder, limits=ArchiveLimits(max_ratio=5000.0))
    assert len(data.reader.arrays["train"]) == 20_000
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip_module.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x00\x01extra"))
    with pytest.raises(DatasetError, match=r"idx header says \(2,\) = 2 bytes, file has 7\.$"):
        open_dataset(folder, limits=ArchiveLimits(max_ratio=5000.0))
    # an uncompressed file declaring a billion bytes is refused from its size, not read into a huge buffer
    labels.unlink()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (10**9).to_bytes(4, "big") + b"\x01\x00")
    with pytest.raises(DatasetError, match=r"idx header says \(1000000000,\) = 1000000000 bytes, file has 2\.$"):
        open_dataset(folder, limits=ArchiveLimits(max_ratio=5000.0))


class _Recording:
    """A file whose reads' sizes are recorded."""

    def __init__(self, handle, reads: list) -> None:
        self.handle, self.reads = handle, reads

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()

    def read(self, n: int = -1) -> bytes:
        data = self.handle.read(n)
        self.reads.append(len(data))
        return data


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST idx files absent ({FASHION}; apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    data = open_dataset(FASHION, max_per_class=3, val_fraction=1 / 3)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[6] == "Shirt" and data.num_classes == 10
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 20, "val": 10, "test": 30}
    assert data.load_image(data.splits["train"][0]).size == (28, 28)


def test_symlinks_leaving_a_folder_or_manifest_are_skipped(tree, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes((tree / "train" / "ant" / "000.png").read_bytes())
    (tree / "train" / "ant" / "zz-link.png").symlink_to(outside)
    data = open_dataset(tree)
    assert ("train/ant/zz-link.png", "symlink pointing outside the data folder") in data.skipped
    assert "train/ant/zz-link.png" not in {s.source for split in data.splits.values() for s in split}
    (tree / "m.csv").write_text("path,label\ntrain/ant/zz-link.png,ant\ntrain/ant/000.png,ant\ntrain/bee/000.png,bee\n")
    manifest = open_dataset(tree / "m.csv", val_fraction=0.0, test_fraction=0.0)
    assert ("train/ant/zz-link.png", "symlink pointing outside the manifest folder") in manifest.skipped


def test_a_symlink_to_nothing_is_skipped_and_named(tree):
    """An editor's leftover link to a file that does not exist was a 500 at registration, and a job failure after
    its queue wait when it appeared later (an attack round): skipped, with why."""
    (tree / "train" / "ant" / "dangling.png").symlink_to("nowhere.png")
    data = open_dataset(tree)
    assert ("train/ant/dangling.png", "symlink to nothing (its target does not exist)") in data.skipped
    assert "train/ant/dangling.png" not in {s.source for split in data.splits.values() for s in split}


LOOP = "symlink loop (it leads back to itself), not followed"  # archives.SYMLINK_LOOP


def test_a_symlink_loop_is_skipped_and_named(tree):
    """Links that lead back to themselves (a.png → b.png → a.png, self.png → self.png) made Path.resolve raise
    RuntimeError: a trace from `mr2probe extract` and a 500 at the folder's registration (a new-user round)."""
    from feature_cache import open_images

    ant = tree / "train" / "ant"
    (ant / "a.png").symlink_to("b.png")
    (ant / "b.png").symlink_to("a.png")
    (ant / "self.png").symlink_to("self.png")
    for data in (open_dataset(tree), open_images(tree)):
        for name in ("a.png", "b.png", "self.png"):
            assert (f"train/ant/{name}", LOOP) in data.skipped
            assert f"train/ant/{name}" not in {s.source for split in data.splits.values() for s in split}


def test_a_symlinked_folder_is_named_as_not_followed(tree, tmp_path):
    """os.walk does not follow it: its class folder is empty, and the error now says why."""
    import shutil

    from feature_cache import open_images

    outside = tmp_path / "elsewhere"
    shutil.copytree(tree / "train" / "cat", outside)
    (tree / "train" / "dog").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DatasetError, match=r"'dog' \(in 'train'\) contain no images; .* Symlinked folders are not "
                                           r"followed: train/dog\."):
        open_dataset(tree)
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "linked").symlink_to(outside, target_is_directory=True)
    (tmp_path / "new" / "one.png").write_bytes((tree / "train" / "cat" / "000.png").read_bytes())
    assert ("linked", "symlinked folder, not followed (copy the images in)") in open_images(tmp_path / "new").skipped


def test_given_val_folder_is_used_not_carved(tree):
    for name in ("ant", "bee", "cat"):
        (tree / "val" / name).mkdir(parents=True)
        (tree / "train" / name / "005.png").rename(tree / "val" / name / "005.png")
    data = open_dataset(tree, val_fraction=0.5)
    assert [s.source for s in data.splits["val"]] == ["val/ant/005.png", "val/bee/005.png", "val/cat/005.png"]
    assert len(data.splits["train"]) == 15


def test_idx_extraction_end_to_end(tmp_path):
    folder = tmp_path / "fashion-mini"
    folder.mkdir()
    write_idx_set(folder, np.arange(8) % 2, np.arange(4) % 2, seed=1)
    result = extract(folder, tiny_encoder(), tmp_path / "caches", workers=2, batch_size=3, val_fraction=0.25,
                     show_progress=False)
    cache = open_cache(result.path)
    assert cache.class_names == ["T-shirt/top", "Trouser"]
    assert result.counts == {"train": 6, "val": 2, "test": 4} and result.skipped == []
    assert cache.sources("test") == ["test/00000", "test/00001", "test/00002", "test/00003"]
    assert cache.load("test")[1].tolist() == [0, 1, 0, 1]


def test_a_train_and_a_test_manifest_given_together(tree):
    """A folder holding train.csv and test.csv is one data set: train rows train (val carved), test rows test."""
    train = sorted((tree / "train").rglob("*.png"))
    test = sorted((tree / "test").rglob("*.png"))
    (tree / "train.csv").write_text("filepath,label\n" + "".join(
        f"{p.relative_to(tree).as_posix()},{p.parent.name}\n" for p in train))
    # the test manifest may use other header names; a file listed in both is a repeat, skipped in test
    (tree / "test.csv").write_text("image,class\n" + "".join(
        f"{p.relative_to(tree).as_posix()},{p.parent.name}\n" for p in test) + f"{train[0].relative_to(tree)},ant\n")
    data = open_dataset(tree, val_fraction=1 / 6, seed=0)
    assert data.params["layout"] == "manifest-pair" and data.class_names == ["ant", "bee", "cat"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 15, "val": 3, "test": 9}
    assert {s.source for s in data.splits["test"]} == {p.relative_to(tree).as_posix() for p in test}
    assert dict(data.skipped) == {train[0].relative_to(tree).as_posix(): "repeated row in the manifest"}
    (tree / "test.csv").unlink()  # without the pair the folder is read as class folders again
    assert open_dataset(tree, val_fraction=0.0).params["layout"] != "manifest-pair"


def _unicode_path_field(stored: bytes, name: str) -> bytes:
    import zlib

    data = b"\x01" + zlib.crc32(stored).to_bytes(4, "little") + name.encode("utf-8")
    return (0x7075).to_bytes(2, "little") + len(data).to_bytes(2, "little") + data


def test_zip_names_stored_as_utf8_without_the_flag_keep_their_characters(tree, tmp_path):
    from feature_cache.archives import zip_member_name

    # How Info-ZIP's zip (Linux, macOS) stores them: UTF-8 bytes, general purpose bit 11 unset. Python's zipfile
    # sets the flag on any non-ASCII name it writes, so the archive is written with an ASCII stand-in of the same
    # length, swapped for the UTF-8 bytes afterwards.
    utf8 = "čaj ☕".encode("utf-8")
    stand_in = "X" * len(utf8)
    path = make_zip(tmp_path / "infozip.zip", [(n.replace("ant", stand_in), d) for n, d in tree_members(tree)])
    path.write_bytes(path.read_bytes().replace(stand_in.encode(), utf8))
    with zipfile.ZipFile(path) as zf:
        assert not any(info.flag_bits & 0x800 for info in zf.infolist())
        assert "train/─ìaj Γÿò/000.png" in zf.namelist()  # what zipfile alone reads
    data, folder = open_dataset(path), open_dataset(tree)
    assert data.class_names == ["bee", "cat", "čaj ☕"]
    def sources(d, rename=lambda s: s):  # the val carve depends on the class order, so train + val together
        return sorted(rename(s.source) for split in ("train", "val") for s in d.splits[split]), \
            sorted(rename(s.source) for s in d.splits["test"])

    assert sources(data) == sources(folder, lambda s: s.replace("ant", "čaj ☕"))

    def info(filename: str, extra: bytes = b"", flags: int = 0) -> zipfile.ZipInfo:
        made = zipfile.ZipInfo(filename)
        made.extra, made.flag_bits = extra, flags
        return made

    # an Info-ZIP Unicode Path field whose CRC matches the stored name wins; a stale one is ignored
    stored = "çaj".encode("cp437")  # b"\x87aj": not valid UTF-8
    assert zip_member_name(info("çaj", _unicode_path_field(stored, "čaj"))) == "čaj"
    assert zip_member_name(info("çaj", _unicode_path_field(b"other", "čaj"))) == "çaj"
    assert zip_member_name(info("çà.png")) == "çà.png"  # cp437 bytes that are not UTF-8: left as cp437
    assert zip_member_name(info("čaj", flags=0x800)) == "čaj"  # flagged UTF-8: as zipfile read it
    assert zip_member_name(info("plain/name.png")) == "plain/name.png"


def test_a_listed_folder_swapped_for_a_symlink_is_not_read_through(tree, tmp_path):
    """A data set's listing is kept (the service's thumbnails; an extraction reads for hours): a listed class folder
    replaced by a symlink to a folder elsewhere afterwards served that folder's files (found by an outside attack
    round). Reads now refuse a path that leads outside the data folder; a file symlinked inside it still reads."""
    import shutil

    (tree / "train" / "ant" / "zz-inside.png").symlink_to(tree / "train" / "ant" / "000.png")
    data = open_dataset(tree)
    ant = [s for s in data.splits["train"] if s.source.startswith("train/ant/")]
    assert {"train/ant/000.png", "train/ant/zz-inside.png"} <= {s.source for s in ant}
    inside = next(s for s in ant if s.source == "train/ant/zz-inside.png")
    assert data.load_image(inside).size == data.load_image(ant[0]).size
    shutil.copytree(tree / "train" / "ant", tmp_path / "elsewhere")
    shutil.rmtree(tree / "train" / "ant")
    (tree / "train" / "ant").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(PermissionError, match=r"'train/ant/000.png' now leads outside the data folder"):
        data.load_image(next(s for s in ant if s.source == "train/ant/000.png"))


def test_a_folder_swapped_for_a_symlink_between_the_check_and_the_open_is_not_read(tree, tmp_path, monkeypatch):
    """The path was resolved and checked, then opened: a class folder swapped for a symlink to a folder outside in
    between was read through it. The file opened is checked too (where /proc names it)."""
    import shutil

    import feature_cache.archives as archives

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd here")
    data = open_dataset(tree)
    sample = next(s for s in data.splits["train"] if s.source == "train/ant/000.png")
    shutil.copytree(tree / "train" / "ant", tmp_path / "elsewhere")
    checked = archives.is_special

    def swap_then_check(path):  # open_regular's check, just before its open: the swap lands in between
        if not (tree / "train" / "ant").is_symlink():
            shutil.rmtree(tree / "train" / "ant")
            (tree / "train" / "ant").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        return checked(path)

    monkeypatch.setattr(archives, "is_special", swap_then_check)
    with pytest.raises(PermissionError, match=r"'train/ant/000.png' now leads outside the data folder"):
        data.load_image(sample)


def _without_blocking(call, fifos):
    """``call()`` in a thread; should it still wait after 10 s (opening a FIFO waits for a writer), each FIFO is
    opened for writing to release it, and the test fails instead of hanging."""
    import os
    import threading

    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(10)
        pytest.fail(f"{call} blocked on a FIFO")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_fifo_in_a_folder_or_manifest_is_skipped_and_one_swapped_in_is_refused_without_blocking(tree, tmp_path):
    """A FIFO inside a registered folder blocked registration forever: the fingerprint opened it and waited for a
    writer (found by the fourth attack round). It is now skipped as no regular file, in a folder and in a manifest,
    and a listed file swapped for a FIFO afterwards is refused when read, without blocking."""
    import os

    from feature_cache import open_images

    fifo = tree / "train" / "ant" / "zz.png"
    os.mkfifo(fifo)
    reason = "not a regular file (a FIFO, socket, device or folder)"
    data = _without_blocking(lambda: open_dataset(tree), [fifo])
    assert ("train/ant/zz.png", reason) in data.skipped
    assert "train/ant/zz.png" not in {s.source for split in data.splits.values() for s in split}
    assert ("train/ant/zz.png", reason) in _without_blocking(lambda: open_images(tree), [fifo]).skipped
    (tree / "m.csv").write_text("path,label\ntrain/ant/zz.png,ant\ntrain/ant/000.png,ant\ntrain/bee/000.png,bee\n")
    manifest = _without_blocking(lambda: open_dataset(tree / "m.csv", val_fraction=0.0, test_fraction=0.0), [fifo])
    assert ("train/ant/zz.png", reason) in manifest.skipped
    sample = next(s for s in data.splits["train"] if s.source == "train/ant/000.png")
    (tree / "train" / "ant" / "000.png").unlink()
    os.mkfifo(tree / "train" / "ant" / "000.png")
    with pytest.raises(OSError, match=r"^'train/ant/000.png' is not a regular file \(a FIFO, socket, device or "
                                      r"folder\); it is not read$"):
        _without_blocking(lambda: data.load_image(sample), [tree / "train" / "ant" / "000.png"])


def test_a_manifest_path_is_normalised_before_its_escape_check_and_its_labels_are_bounded(tree, tmp_path):
    """'train/ant/../ant/000.png' stays inside the manifest's folder but was refused as escaping it, and a label of
    100,000 characters registered (found by the fourth attack round): the path is now normalised first (a real
    escape still refused) and a class name over 200 characters is a DatasetError naming it, shortened."""
    rows = "path,label\ntrain/ant/../ant/000.png,ant\ntrain/ant/001.png,ant\n./train/bee/000.png,bee\n"
    (tree / "dots.csv").write_text(rows + "train/bee/../bee/000.png,bee\n")
    data = open_dataset(tree / "dots.csv", val_fraction=0.0, test_fraction=0.0)
    assert [s.source for s in data.splits["train"]] == ["train/ant/000.png", "train/ant/001.png", "train/bee/000.png"]
    assert data.skipped == [("train/bee/000.png", "repeated row in the manifest")]
    (tree / "escape.csv").write_text("path,label\ntrain/ant/../../../outside.png,ant\n")
    with pytest.raises(UnsafeArchive, match=r"row 2: path 'train/ant/../../../outside.png' escapes the manifest's "
                                            r"folder: its paths are relative to it, with no absolute path, '\.\.'"):
        open_dataset(tree / "escape.csv")
    long = "x" * 100_000
    (tree / "long.csv").write_text(f"path,label\ntrain/ant/000.png,ant\ntrain/bee/000.png,{long}\n")
    with pytest.raises(DatasetError) as refused:
        open_dataset(tree / "long.csv", val_fraction=0.0, test_fraction=0.0)
    assert str(refused.value) == (f"{tree / 'long.csv'}: class name '{'x' * 60}...' is 100000 characters long; class "
                                  "names are at most 200: shorten that folder name (or label).")
    (tree / "long.csv").write_text(f"path,label\ntrain/ant/000.png,ant\ntrain/bee/000.png,{'y' * 200}\n")
    assert open_dataset(tree / "long.csv", val_fraction=0.0, test_fraction=0.0).class_names == ["ant", "y" * 200]


def _tar_bytes(members, fmt=tarfile.PAX_FORMAT, pax=None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for i, (name, data) in enumerate(members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if pax and i == 0:
                info.pax_headers = pax
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_huge_pax_or_long_name_header_is_refused_before_tarfile_reads_it(tree, tmp_path, monkeypatch):
    """An attack round: tarfile reads a pax or GNU long-name header whole, and a 5.8 MB .tar.xz holding a 1 GiB pax
    comment took the service from 0.6 to 3.7 GB of memory; the headers are walked first (here with a small limit)."""
    import feature_cache.archives as archives

    members = [(f"top/{n}", b) for n, b in tree_members(tree)]
    monkeypatch.setattr(archives, "MAX_EXTENDED_HEADER", 4096)
    (tmp_path / "pax.tar").write_bytes(_tar_bytes(members, pax={"comment": "y" * 5000}))
    with pytest.raises(UnsafeArchive, match=r"pax.tar: a tar header of \d+ bytes \(a pax or long-name header; the "
                                            r"limit is 4096\)"):
        open_dataset(tmp_path / "pax.tar")
    long_name = [("top/train/a/" + "n" * 5000 + ".png", members[0][1]), *members]
    (tmp_path / "gnu.tar").write_bytes(_tar_bytes(long_name, fmt=tarfile.GNU_FORMAT))
    with pytest.raises(UnsafeArchive, match=r"gnu.tar: a tar header of \d+ bytes"):
        open_dataset(tmp_path / "gnu.tar")
    # a Solaris 'X' header is a pax header to tarfile, and a pax "size" record moves where the next header is:
    # a walk of the ustar headers alone passed both (a review); tarfile's own parser is what checks them now
    solaris = bytearray(_tar_bytes(members, pax={"comment": "y" * 5000}))
    assert solaris[156:157] == b"x"
    solaris[156:157] = b"X"
    solaris[148:156] = b"%06o\0 " % (sum(solaris[:148]) + 8 * 32 + sum(solaris[156:512]))  # the header's checksum
    (tmp_path / "solaris.tar").write_bytes(bytes(solaris))
    with pytest.raises(UnsafeArchive, match=r"solaris.tar: a tar header of \d+ bytes"):
        open_dataset(tmp_path / "solaris.tar")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        hidden = tarfile.TarInfo("top/train/a/hidden.png")
        hidden.pax_headers = {"size": "1024"}  # its data: 1,024 bytes, though its ustar header says 0
        tf.addfile(hidden)
        buf.write(bytes(1024))
        tf.offset += 1024
        big = tarfile.TarInfo("top/train/a/next.png")
        big.pax_headers = {"comment": "y" * 5000}
        tf.addfile(big)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "sized.tar").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchive, match=r"sized.tar: a tar header of \d+ bytes"):
        open_dataset(tmp_path / "sized.tar")
    monkeypatch.setattr(archives, "MAX_EXTENDED_HEADER", 1 << 20)  # each small, all together over the total
    monkeypatch.setattr(archives, "MAX_EXTENDED_TOTAL", 8000)
    (tmp_path / "many.tar").write_bytes(_tar_bytes([(n, b) for n, b in members], pax={"comment": "y" * 9000}))
    with pytest.raises(UnsafeArchive, match="many.tar: more than 8000 bytes of pax or long-name headers"):
        open_dataset(tmp_path / "many.tar")
    (tmp_path / "fine.tar").write_bytes(_tar_bytes(members, pax={"comment": "y" * 100}))  # a small one reads
    assert samples(open_dataset(tmp_path / "fine.tar"))


def test_xz_streams_are_bounded_and_padding_of_any_length_is_read_past(tree, tmp_path):
    """An attack round: 125,000 empty xz streams in 4 MB took 11 s (the cost grew with the square of the size), and
    images after more than 1 MiB of padding between two streams were dropped without a word."""
    import lzma

    from feature_cache.archives import MAX_STREAMS

    plain = make_tar(tmp_path / "data.tar", [(f"top/{n}", b) for n, b in tree_members(tree)], "w").read_bytes()
    half = len(plain) // 2
    padded = tmp_path / "padded.tar.xz"
    padded.write_bytes(lzma.compress(plain[:half]) + bytes(2 << 20) + lzma.compress(plain[half:]))
    assert samples(open_dataset(padded)) == samples(open_dataset(tmp_path / "data.tar"))
    many = tmp_path / "many.tar.xz"
    many.write_bytes(lzma.compress(plain) + lzma.compress(b"") * MAX_STREAMS)
    with pytest.raises(UnsafeArchive, match=f"more than {MAX_STREAMS} concatenated xz streams"):
        open_dataset(many)
    # gzip and bzip2 too: empty members make nothing that trips the size limits (a review: 16 M of them in 330 MB)
    import bz2

    for suffix, compress, kind in ((".tar.gz", gzip.compress, "gzip"), (".tar.bz2", bz2.compress, "bzip2")):
        joined = tmp_path / f"joined{suffix}"
        joined.write_bytes(compress(plain[:half]) + compress(plain[half:]))  # `cat a.gz b.gz`: read whole
        assert samples(open_dataset(joined)) == samples(open_dataset(tmp_path / "data.tar"))
        joined.write_bytes(compress(plain) + compress(b"") * MAX_STREAMS)
        with pytest.raises(UnsafeArchive, match=f"more than {MAX_STREAMS} concatenated {kind} streams"):
            open_dataset(joined)


def test_gzip_headers_are_read_by_zlib_and_a_tar_named_bzh_is_plain(tree, tmp_path, monkeypatch):
    """An attack round: Python's gzip module reads a header's file name a byte at a time (4.6 s for 20 MB), in every
    member; zlib reads them (here the module is kept from reading at all). A plain tar whose first member is under
    "BZhang-photos/" was taken for bzip2 and refused."""
    members = [(f"BZhang-photos/{n}", b) for n, b in tree_members(tree)]
    plain = _tar_bytes(members, fmt=tarfile.USTAR_FORMAT)
    assert plain[:3] == b"BZh"
    (tmp_path / "bz.tar").write_bytes(plain)
    assert samples(open_dataset(tmp_path / "bz.tar"))
    named = io.BytesIO()
    with gzip.GzipFile(filename="n" * 100_000, mode="wb", fileobj=named) as out:
        out.write(plain)
    (tmp_path / "named.tgz").write_bytes(gzip.compress(b"") + named.getvalue())  # the long name in a second member
    monkeypatch.setattr(gzip, "GzipFile", None)
    assert samples(open_dataset(tmp_path / "named.tgz")) == samples(open_dataset(tmp_path / "bz.tar"))


def test_a_decompression_leaves_the_disk_room_and_a_killed_ones_file_is_found(tree, tmp_path, monkeypatch):
    """An attack round: 64 GiB may come out of a 330 MB upload within the limits, and a server killed while it
    decompressed left a 1 GiB file in /tmp that no start removed."""
    import subprocess
    import sys

    import feature_cache.archives as archives

    archive = make_tar(tmp_path / "d.tar.gz", [(f"top/{n}", b) for n, b in tree_members(tree)], "w:gz")
    monkeypatch.setattr(archives, "DISK_CHECK_BYTES", 1)
    monkeypatch.setattr(archives, "MIN_FREE_DISK", 1 << 62)
    with pytest.raises(UnsafeArchive, match="d.tar.gz: decompressing it would leave less than"):
        open_dataset(archive)
    monkeypatch.undo()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    left = tmp_path / f"{archives.TEMPORARY_PREFIX}{dead}-abc123.tar"
    left.write_bytes(b"x")
    mine = tmp_path / f"{archives.TEMPORARY_PREFIX}{os.getpid()}-def456.tar"
    mine.write_bytes(b"x")
    (tmp_path / f"{archives.TEMPORARY_PREFIX}{dead}-folder.tar").mkdir()  # not a file: left alone (a review)
    (tmp_path / f"{archives.TEMPORARY_PREFIX}{dead}-link.tar").symlink_to(left)
    assert archives.orphaned_decompressions(tmp_path) == [left]


def test_a_decompression_older_than_the_process_of_its_id_is_orphaned(tmp_path):
    """A crash round: the server in the container is PID 1 after each restart; an archive a killed PID 1 was
    decompressing (up to the whole disk but 1 GiB) was taken for the new server's own and never removed."""
    import feature_cache.archives as archives

    if not os.path.exists("/proc/self/stat"):
        pytest.skip("no /proc: a process's start time is unknown here")
    left = tmp_path / f"{archives.TEMPORARY_PREFIX}{os.getpid()}-abc123.tar"
    mine = tmp_path / f"{archives.TEMPORARY_PREFIX}{os.getpid()}-def456.tar"
    for path in (left, mine):
        path.write_bytes(b"x")
    os.utime(left, (0, 0))  # written in 1970: before this process started
    assert archives.orphaned_decompressions(tmp_path) == [left]


def test_a_file_written_half_a_second_before_its_pids_process_started_is_orphaned(tmp_path):
    """A review: the start time counted from /proc/stat's whole-second boot time, less 2 s of slack, kept a file a
    killed PID 1 wrote up to ~3 s before the restarted server began: the start is read to the clock tick."""
    import subprocess
    import sys
    import time

    import probe.files as files

    if not os.path.exists("/proc/self/stat"):
        pytest.skip("no /proc: a process's start time is unknown here")
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        left = tmp_path / f".c.h5.{child.pid}.tmp"
        left.write_bytes(b"x")
        os.utime(left, (before - 0.5, before - 0.5))
        assert files.process_start_time(child.pid) == pytest.approx(before, abs=0.5)
        assert not files.writer_alive(child.pid, left)
        left.write_bytes(b"y")  # written now, while it runs: its own
        assert files.writer_alive(child.pid, left)
    finally:
        child.kill()
        child.wait()


def test_a_name_not_in_utf8_is_skipped_not_a_crash(tree, tmp_path):
    """An attack round: a Latin-1 "café.jpg" in a GNU tar (or a folder) answered 500 to the whole data set's
    registration (the fingerprint could not encode its name); it is a skipped file, named escaped."""
    members = [(f"top/{n}", b) for n, b in tree_members(tree)]
    latin = b"top/train/" + members[0][0].split("/")[2].encode() + b"/caf\xe9.png"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members + [(latin.decode("utf-8", "surrogateescape"), members[0][1])]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "latin.tar").write_bytes(buf.getvalue())
    data = open_dataset(tmp_path / "latin.tar")
    assert [(s, why) for s, why in data.skipped if "caf" in s] == [
        (latin.decode("ascii", "backslashreplace"), "its name holds control or text-direction characters, or bytes "
                                                    "that are not UTF-8 (shown escaped)")]
    assert samples(data) == samples(open_dataset(make_tar(tmp_path / "plain.tar", members, "w")))


def test_junk_in_a_pax_record_and_an_empty_first_bzip2_stream(tree, tmp_path):
    """An attack round: a GNU sparse map of junk in a pax header answered 500 (tarfile's int() of it); a .tar.bz2
    whose first stream is empty (`cat empty.bz2 data.tar.bz2`) was taken for a plain tar and refused."""
    import bz2

    members = [(f"top/{n}", b) for n, b in tree_members(tree)]
    sparse = _tar_bytes(members, pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                      "GNU.sparse.name": "top/x.png", "GNU.sparse.realsize": "999999999999"})
    (tmp_path / "sparse.tar").write_bytes(sparse)
    with pytest.raises(UnsafeArchive, match="sparse.tar: not a readable tar archive"):
        open_dataset(tmp_path / "sparse.tar")
    plain = make_tar(tmp_path / "data.tar", members, "w").read_bytes()
    (tmp_path / "empty_first.tar.bz2").write_bytes(bz2.compress(b"") + bz2.compress(plain))
    assert samples(open_dataset(tmp_path / "empty_first.tar.bz2")) == samples(open_dataset(tmp_path / "data.tar"))


def test_a_zip_named_as_a_tar_is_named_a_zip(tree, tmp_path):
    archive = make_zip(tmp_path / "x.zip", tree_members(tree))
    (tmp_path / "x.tar.gz").write_bytes(archive.read_bytes())
    with pytest.raises(UnsafeArchive, match=r"x.tar.gz is a zip archive, not a tar: give it a .zip name"):
        open_dataset(tmp_path / "x.tar.gz")


def test_folder_and_tar_reads_are_checked_against_the_content_the_listing_counted(tmp_path):
    """A folder's file, or a plain tar rewritten in place with other bytes at the same offsets, read after its
    content id (the fingerprint's) was taken gave the new bytes as if they were the fingerprinted ones (a review):
    the reader's check of such bytes raises FileChanged, which an extraction's read (LabelledImages.load_image)
    makes; a preview (open_image) shows the file as it is now, and a file whose content id was not taken is not
    checked."""
    from feature_cache.archives import DirectoryReader, FileListReader, TarReader
    from feature_cache.datasets import LabelledImages, Sample
    from feature_cache.errors import DatasetChanged, FileChanged
    from fc_testutils import write_image

    folder = tmp_path / "f"
    write_image(folder / "a.png", 0, 1)
    write_image(folder / "b.png", 1, 2)
    for reader in (DirectoryReader(folder), FileListReader(folder, ["a.png", "b.png"])):
        data = LabelledImages(["x"], {"test": []}, [], "", {}, reader)
        first = reader.content_id("a.png")
        reader.check("a.png", reader.read("a.png"))
        data.load_image(Sample("a.png", 0))
        original = (folder / "a.png").read_bytes()
        write_image(folder / "a.png", 2, 3)
        write_image(folder / "b.png", 2, 4)
        with pytest.raises(FileChanged, match="'a.png' holds other bytes than when the data set was opened"):
            data.load_image(Sample("a.png", 0))
        assert issubclass(FileChanged, DatasetChanged)
        assert data.open_image(Sample("a.png", 0)).size == (12, 12)  # a preview: the file as it is
        data.load_image(Sample("b.png", 0))  # never counted: nothing to check it against
        assert reader.content_id("a.png") != first
        data.load_image(Sample("a.png", 0))  # counted again: the new content is the one checked
        (folder / "a.png").write_bytes(original)
    archive = tmp_path / "t.tar"

    def write_tar(content: bytes) -> None:
        with tarfile.open(archive, "w") as tf:
            info = tarfile.TarInfo("c/x.png")
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))

    write_tar(b"first")
    reader = TarReader(archive)
    reader.check("c/x.png", reader.read("c/x.png"))
    write_tar(b"again")
    assert reader.read("c/x.png") == b"again"
    with pytest.raises(FileChanged):
        reader.check("c/x.png", reader.read("c/x.png"))
