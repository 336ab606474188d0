"""Class-folder layouts, seeded stratified splitting and subsetting, and clear errors."""
from __future__ import annotations

import unicodedata
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from feature_cache import DatasetError, open_dataset
from feature_cache.datasets import Sample

from fc_testutils import make_tree, write_image


def per_class(samples):
    return dict(sorted(Counter(s.label for s in samples).items()))


def zip_dir(folder: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def test_split_folders_and_stratified_val(tree):
    data = open_dataset(tree, val_fraction=1 / 3, seed=0)
    assert data.class_names == ["ant", "bee", "cat"]
    assert per_class(data.splits["train"]) == {0: 4, 1: 4, 2: 4}
    assert per_class(data.splits["val"]) == {0: 2, 1: 2, 2: 2}
    assert per_class(data.splits["test"]) == {0: 3, 1: 3, 2: 3}
    train = {s.source for s in data.splits["train"]}
    val = {s.source for s in data.splits["val"]}
    assert not train & val and len(train | val) == 18
    assert all(s.source.startswith("train/") for s in data.splits["val"])
    assert all(s.source.split("/")[1] == data.class_names[s.label] for split in data.splits.values() for s in split)
    assert [s.source for s in data.splits["train"]] == sorted(s.source for s in data.splits["train"])
    assert data.skipped == [] and data.params["layout"] == "split-folders"


def test_val_split_is_seeded(tree):
    a = open_dataset(tree, val_fraction=0.5, seed=1)
    b = open_dataset(tree, val_fraction=0.5, seed=1)
    c = [open_dataset(tree, val_fraction=0.5, seed=s).splits["val"] for s in range(2, 6)]
    assert a.splits == b.splits
    assert any(v != a.splits["val"] for v in c)
    # The data set fingerprint is about content only; split parameters enter the cache fingerprint.
    assert a.fingerprint == open_dataset(tree, seed=7).fingerprint


def test_max_per_class_is_deterministic_and_bounded(tree):
    a = open_dataset(tree, max_per_class=2, val_fraction=0.5, seed=3)
    b = open_dataset(tree, max_per_class=2, val_fraction=0.5, seed=3)
    assert a.splits == b.splits
    assert per_class(a.splits["train"]) == {0: 1, 1: 1, 2: 1}
    assert per_class(a.splits["val"]) == {0: 1, 1: 1, 2: 1}
    assert per_class(a.splits["test"]) == {0: 2, 1: 2, 2: 2}
    subsets = {tuple(s.source for s in open_dataset(tree, max_per_class=2, seed=s).splits["test"]) for s in range(6)}
    assert len(subsets) > 1


def test_zip_with_nested_top_folder_matches_folder(tree, tmp_path):
    archive = zip_dir(tree, tmp_path / "data.zip", prefix="mydata/")
    from_zip = open_dataset(archive, seed=0)
    from_dir = open_dataset(tree, seed=0)
    assert from_zip.class_names == from_dir.class_names
    strip = lambda samples: [(s.source.removeprefix("mydata/"), s.label) for s in samples]  # noqa: E731
    for split in ("train", "val", "test"):
        assert strip(from_zip.splits[split]) == strip(from_dir.splits[split])
    image = from_zip.load_image(from_zip.splits["test"][0])
    assert image.size == (12, 12)


def test_single_tree_is_split_by_the_product(tmp_path):
    root = make_tree(tmp_path / "flat", {"x": 10, "y": 10}, splits=())
    data = open_dataset(root, val_fraction=0.25, test_fraction=0.2, seed=0)
    assert data.params["layout"] == "single-tree"
    assert per_class(data.splits["test"]) == {0: 2, 1: 2}
    assert per_class(data.splits["val"]) == {0: 2, 1: 2}
    assert per_class(data.splits["train"]) == {0: 6, 1: 6}


def test_non_image_files_are_skipped_and_listed(tree):
    (tree / "train" / "ant" / "notes.txt").write_text("hello")
    (tree / "train" / "README").write_text("top-level file")
    data = open_dataset(tree)
    assert ("train/ant/notes.txt", "not an image file (extension '.txt')") in data.skipped
    assert ("train/README", "not inside a class folder") in data.skipped
    assert sum(len(v) for v in data.splits.values()) == 27


def test_an_image_loose_beside_the_class_folders_of_a_zipped_folder_is_skipped(tmp_path):
    """A folder of class folders with one image beside them (a cover picture), zipped with its top folder: the image
    made the top folder the one class, refused as "1 class folder(s) (photos) ... if these are unlabelled images"
    (a new-user round), where the folder itself read as its classes. Both read alike now, the image skipped."""
    root = make_tree(tmp_path / "photos", {"cat": 5, "dog": 5}, splits=())
    write_image(root / "cover.png", 1, 0)
    from_dir = open_dataset(root)
    from_zip = open_dataset(zip_dir(root, tmp_path / "photos.zip", prefix="photos/"))
    for data, loose in ((from_dir, "cover.png"), (from_zip, "photos/cover.png")):
        assert data.class_names == ["cat", "dog"]
        assert sum(len(v) for v in data.splits.values()) == 10
        assert (loose, "not inside a class folder") in data.skipped
    # images loose in a zipped folder with at most one subfolder stay one class: the unlabelled hint
    flat = make_tree(tmp_path / "incoming", {"dup": 2}, splits=())
    write_image(flat / "a.png", 1, 0)
    with pytest.raises(DatasetError, match=r"found 1 class folder\(s\) \(incoming\).*--unlabelled"):
        open_dataset(zip_dir(flat, tmp_path / "incoming.zip", prefix="incoming/"))


def test_an_image_loose_beside_the_one_folder_of_the_class_folders_is_skipped(tmp_path):
    """photos/cover.png beside photos/images/{cat,dog}/: the image made the data set's folder the root, photos the
    one class, and the data set was refused as one class folder; the root is images/ now, the cover skipped. Its
    archive reads alike, and so does a deeper loose image (photos/cover.png beside photos/2019/images/...)."""
    root = tmp_path / "photos"
    make_tree(root / "images", {"cat": 5, "dog": 5}, splits=())
    write_image(root / "cover.png", 1, 0)
    (root / "notes.txt").write_text("about these photos")
    from_dir = open_dataset(root)
    from_zip = open_dataset(zip_dir(root, tmp_path / "photos.zip", prefix="photos/"))
    for data, top in ((from_dir, ""), (from_zip, "photos/")):
        assert data.class_names == ["cat", "dog"]
        assert sum(len(v) for v in data.splits.values()) == 10
        assert {(f"{top}cover.png", "not inside a class folder"),
                (f"{top}notes.txt", "not inside a class folder")} <= set(data.skipped)
        assert all(s.source.startswith(f"{top}images/") for v in data.splits.values() for s in v)
    deeper = tmp_path / "deeper"
    make_tree(deeper / "2019" / "images", {"cat": 3, "dog": 3}, splits=())
    write_image(deeper / "cover.png", 1, 0)
    write_image(deeper / "2019" / "banner.png", 2, 0)
    data = open_dataset(deeper)
    assert data.class_names == ["cat", "dog"]
    assert {s for s, _ in data.skipped} == {"cover.png", "2019/banner.png"}


def test_class_folders_that_all_hold_the_same_subfolders_are_warned_of(tmp_path):
    """batch1/{cat,dog}/ and batch2/{cat,dog}/: class folders are read with their subfolders, so the images were
    labelled batch1 and batch2, without a word (a new-user round). A warning names both levels; a class folder with
    images of its own, or subfolders that differ, gets none."""
    from feature_cache.datasets import nested_classes_warning

    root = tmp_path / "batches"
    for batch in ("batch1", "batch2"):
        make_tree(root / batch, {"cat": 3, "dog": 3}, splits=())
    warning = ("every class folder (batch1, batch2) holds the same subfolders (cat, dog) and no image of its own: "
               "if those subfolders are the classes, each image is labelled by the folder above them instead")
    for data in (open_dataset(root), open_dataset(zip_dir(root, tmp_path / "b.zip", prefix="top/"))):
        assert data.class_names == ["batch1", "batch2"]
        assert nested_classes_warning(data).startswith(warning)
    split = tmp_path / "split"
    for name in ("train", "test"):
        make_tree(split / name / "batch1", {"cat": 3, "dog": 3}, splits=())
        make_tree(split / name / "batch2", {"cat": 3, "dog": 3}, splits=())
    assert nested_classes_warning(open_dataset(split)).startswith(warning)
    write_image(root / "batch1" / "loose.png", 0, 9)  # an image of its own: batch1 is a class
    assert nested_classes_warning(open_dataset(root)) is None
    (root / "batch1" / "loose.png").unlink()
    make_tree(root / "batch1", {"bird": 3}, splits=())  # other subfolders than batch2's
    assert nested_classes_warning(open_dataset(root)) is None
    assert nested_classes_warning(open_dataset(make_tree(tmp_path / "flat", {"a": 3, "b": 3}, splits=()))) is None


def test_jpeg_png_and_avif_files_named_as_browsers_save_them_are_read_and_heic_photos_named(tmp_path):
    """.jfif / .jpe (JPEG as Chrome on Windows saves it), .apng and .avif were skipped as "not an image file" though
    Pillow reads them, and an iPhone's .HEIC photos were called the same (a new-user round)."""
    from PIL import Image, features

    root = make_tree(tmp_path / "web", {"cat": 2, "dog": 2}, splits=())
    formats = {"a.jfif": "JPEG", "b.JPE": "JPEG", "c.apng": "PNG", **({"d.avif": "AVIF"} if features.check("avif")
                                                                     else {})}
    for name, fmt in formats.items():
        Image.new("RGB", (12, 12), (200, 10, 10)).save(root / "cat" / name, fmt)
    (root / "dog" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    data = open_dataset(root)
    sources = {s.source for split in data.splits.values() for s in split}
    assert {f"cat/{name}" for name in formats} <= sources and len(sources) == 4 + len(formats)
    for name in formats:
        assert data.load_image(Sample(f"cat/{name}", 0)).size == (12, 12)
    assert data.skipped == [("dog/IMG_0001.HEIC", "an image format that is not read (extension '.heic'): convert it "
                                                  "to JPEG or PNG")]
    only = tmp_path / "phone"
    for name in ("cat", "dog"):
        (only / name).mkdir(parents=True)
        (only / name / "IMG_1.HEIC").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"no image files found .*Skipped 2: an image format that is not read "
                                           r"\(extension '.heic'\)"):
        open_dataset(only)


def test_test_images_that_are_copies_of_training_images_or_one_image_under_two_classes_are_warned_of(tmp_path):
    """A test/ folder copied from train/ scored 100 % without a word, and an image copied into two class folders
    trained both labels (a new-user round): the content ids of the fingerprint name them, in a folder and a zip."""
    import shutil

    root = make_tree(tmp_path / "copied", {"cat": 4, "dog": 4}, splits=("train",))
    shutil.copytree(root / "train", root / "test")
    shutil.copy(root / "train" / "cat" / "000.png", root / "train" / "dog" / "cat.png")
    for data in (open_dataset(root), open_dataset(zip_dir(root, tmp_path / "copied.zip"))):
        assert data.duplicates.startswith("8 of the 8 test images have the same content as a train or val image "
                                          "('test/cat/000.png' = 'train/cat/000.png'; 'test/cat/001.png' = "
                                          "'train/cat/001.png'; 'test/cat/002.png' = 'train/cat/002.png' and 5 more): "
                                          "test figures on them measure "
                                          "images the probe trained or was selected on; 1 file content(s) sit under "
                                          "more than one class ("), data.duplicates
        assert "'train/dog/cat.png' ('dog')" in data.duplicates and data.duplicates.endswith("remove the copies")
    # a copy inside one class and one split is no leak and no second label; nothing read, nothing said
    shutil.rmtree(root / "test")
    (root / "train" / "dog" / "cat.png").unlink()
    shutil.copy(root / "train" / "cat" / "000.png", root / "train" / "cat" / "copy.png")
    make_tree(root, {"cat": 4, "dog": 4}, splits=("test",))
    assert open_dataset(root).duplicates is None
    assert open_dataset(root, fingerprint=False).duplicates is None


def test_files_whose_content_ids_match_by_chance_are_no_copies():
    """A zip member's content id is its CRC-32 and size, which distinct images share by chance in a large zip: the
    warning reads the candidates' bytes and names only true copies."""
    from feature_cache.datasets import Sample, duplicates_warning

    splits = {"train": [Sample("train/cat/a.png", 0)], "test": [Sample("test/cat/b.png", 0)]}
    contents = {"train/cat/a.png": 7, "test/cat/b.png": 7}  # one content id for both
    assert duplicates_warning(["cat"], splits, contents, read=lambda name: name.encode()) is None
    assert duplicates_warning(["cat"], splits, contents, read=lambda name: b"same").startswith(
        "1 of the 1 test images has the same content as a train or val image ('test/cat/b.png' = 'train/cat/a.png')")


def test_nas_thumbnails_and_recycle_bins_are_skipped_as_metadata(tmp_path):
    """A Synology's @eaDir/ thumbnails in every class folder were read as more images of the class (each photo twice,
    in train and test), and a recycle bin at the top became a class (a new-user round): skipped as metadata."""
    root = make_tree(tmp_path / "nas", {"cat": 3, "dog": 3}, splits=())
    for name in ("cat", "dog"):
        write_image(root / name / "@eaDir" / "000.png" / "SYNOPHOTO_THUMB_XL.jpg", 0, 1, fmt="JPEG")
    write_image(root / "$RECYCLE.BIN" / "S-1-5-21" / "$RAB12.png", 1, 2)
    write_image(root / "System Volume Information" / "x.png", 1, 3)
    write_image(root / "#recycle" / "y.png", 1, 4)
    data = open_dataset(root)
    assert data.class_names == ["cat", "dog"]
    assert sum(len(v) for v in data.splits.values()) == 6
    assert ("cat/@eaDir/000.png/SYNOPHOTO_THUMB_XL.jpg", "hidden or metadata file") in data.skipped
    assert ("$RECYCLE.BIN/S-1-5-21/$RAB12.png", "hidden or metadata file") in data.skipped


def test_class_folders_named_like_splits_are_warned_of(tmp_path):
    """Kaggle's cats and dogs (training_set/training_set/cats/, test_set/test_set/cats/) were read as the classes
    test_set and training_set: a probe telling training from test images, without a word (a new-user round)."""
    from feature_cache.datasets import split_named_classes_warning

    root = tmp_path / "kaggle"
    for split in ("training_set", "test_set"):
        make_tree(root / split / split, {"cats": 2, "dogs": 2}, splits=())
    data = open_dataset(root)
    assert data.class_names == ["test_set", "training_set"]
    assert split_named_classes_warning(data.class_names).startswith(
        "class folder(s) 'test_set', 'training_set' are named like splits, which are read only as train/, val/ "
        "(valid/, validation/) and test/: their images are labelled by the folder's name")
    assert split_named_classes_warning(["Training", "Testing data"]) is not None  # "Testing data": test_data
    assert split_named_classes_warning(["cats", "dogs", "trains"]) is None


def test_single_class_is_a_clear_error(tmp_path):
    root = make_tree(tmp_path / "one", {"only": 3})
    with pytest.raises(DatasetError, match=r"found 1 class folder\(s\) \(only\); a probe needs at least 2"):
        open_dataset(root)


def test_empty_class_is_a_clear_error(tree):
    (tree / "train" / "dog").mkdir()
    with pytest.raises(DatasetError, match=r"class folder\(s\) 'dog' \(in 'train'\) contain no images; add"):
        open_dataset(tree)
    (tree / "test" / "dog").mkdir()  # every split where it is empty, and names with spaces quoted
    (tree / "test" / "empty class").mkdir()
    (tree / "train" / "empty class").mkdir()
    with pytest.raises(DatasetError, match=r"class folder\(s\) 'dog' \(in 'train' and 'test'\); 'empty class' "
                                           r"\(in 'train' and 'test'\) contain no images"):
        open_dataset(tree)


def test_hundreds_of_empty_class_folders_are_named_ten_and_counted(tree):
    """300 empty class folders made a one-line message of 18 KB (a 1,000-class round): ten named, the rest counted."""
    for i in range(300):
        (tree / "train" / f"class{i:03d}").mkdir(parents=True)
    with pytest.raises(DatasetError) as refused:
        open_dataset(tree)
    message = str(refused.value)
    assert "'class009' (in 'train'); 'class010' (in 'train')" not in message and len(message) < 600
    assert "'class000' (in 'train'); 'class001' (in 'train')" in message
    assert "'class009' (in 'train') and 290 more contain no images; add images or remove the folder." in message


def test_class_without_training_images_is_an_error(tree):
    write_image(tree / "test" / "eel" / "0.png", 5, 0)
    with pytest.raises(DatasetError, match=r"eel have no training images\.$"):
        open_dataset(tree)
    # a class without test images is named in the same message (it was left for a later run to find)
    write_image(tree / "train" / "fox" / "0.png", 6, 0)
    with pytest.raises(DatasetError, match=r"eel have no training images\. Class\(es\) fox have no test images "
                                           r"either\.$"):
        open_dataset(tree)


def test_bad_parameters_name_the_value(tree):
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1.5"):
        open_dataset(tree, val_fraction=1.5)
    with pytest.raises(ValueError, match="max_per_class must be >= 1 or None, got 0"):
        open_dataset(tree, max_per_class=0)
    # torchrun's `--seed -5` said numpy's 'expected non-negative integer', naming neither the option nor the value
    with pytest.raises(ValueError, match=r"seed must be in \[0, 4294967295\], got -5\."):
        open_dataset(tree, seed=-5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_dataset(tree / "missing")


def test_the_split_seed_takes_every_seed_a_probe_takes(tree):
    """Two MAX_SEED constants bounded the split's seed at 2**31-1 and a probe's at 2**32-1; numpy's default_rng, the
    split's one consumer, takes both, so one bound serves every seed."""
    from probe.params import MAX_SEED

    assert MAX_SEED == 2**32 - 1
    assert open_dataset(tree, seed=MAX_SEED).splits == open_dataset(tree, seed=MAX_SEED).splits
    with pytest.raises(ValueError, match=rf"seed must be in \[0, {MAX_SEED}\], got {MAX_SEED + 1}\."):
        open_dataset(tree, seed=MAX_SEED + 1)


def test_fingerprint_follows_content(tree):
    before = open_dataset(tree).fingerprint
    write_image(tree / "train" / "ant" / "000.png", 2, 99)
    assert open_dataset(tree).fingerprint != before


def test_train_and_val_folders_without_test(tmp_path):
    root = make_tree(tmp_path / "tv", {"x": 10, "y": 10}, splits=("train", "validation"))
    data = open_dataset(root, test_fraction=0.2, seed=0)
    assert data.class_names == ["x", "y"]
    assert per_class(data.splits["val"]) == {0: 10, 1: 10}
    assert all(s.source.startswith("validation/") for s in data.splits["val"])
    assert per_class(data.splits["test"]) == {0: 2, 1: 2} and per_class(data.splits["train"]) == {0: 8, 1: 8}
    assert all(s.source.startswith("train/") for s in data.splits["test"])
    assert data.params["test_fraction"] == 0.2


def test_a_given_val_split_leaves_the_share_unused_and_its_extraction_one(tree, tmp_path):
    """A data set's own val split is used as it is: a val share asked for does nothing, is recorded as the default
    (the cache fingerprint's split params), so that asking for it names no other extraction of the same features."""
    from feature_cache.datasets import unused_val_share
    from feature_cache.defaults import DEFAULT_VAL_FRACTION

    carved = open_dataset(tree, val_fraction=0.5)
    assert carved.given_splits == ("train", "test") and not carved.val_given and carved.params["val_fraction"] == 0.5
    root = make_tree(tmp_path / "tvt", {"x": 4, "y": 4}, splits=("train", "val", "test"))
    given = open_dataset(root, val_fraction=0.5)
    assert given.given_splits == ("train", "val", "test") and given.val_given
    assert given.params == open_dataset(root).params and given.params["val_fraction"] == DEFAULT_VAL_FRACTION
    assert per_class(given.splits["val"]) == {0: 4, 1: 4} and per_class(given.splits["train"]) == {0: 4, 1: 4}
    assert unused_val_share(given, "--val-fraction", 0.5) == (
        "--val-fraction 0.5 is unused: the data set has a val split of its own (8 images), used as it is; no share "
        "of train is carved out")
    assert unused_val_share(given, "--val-fraction", None) is None  # not asked for
    assert unused_val_share(carved, "--val-fraction", 0.5) is None  # carved: the share did its work


def test_open_images_takes_every_image_unlabelled(tmp_path):
    """Any folders, no classes: one test split of every image in source order, in a folder or a zip alike."""
    from feature_cache import UNLABELLED, open_images

    for i, name in enumerate(["b.png", "a/x.png", "a/deep/y.jpg", "z z/ü.png"]):
        write_image(tmp_path / "new" / name, i % 3, i)
    (tmp_path / "new" / "readme.md").write_text("no")
    (tmp_path / "new" / ".hidden.png").write_bytes(b"x")
    data = open_images(tmp_path / "new")
    assert data.labelled is False and data.class_names == [UNLABELLED] and data.params == {"layout": "unlabelled"}
    assert [s.source for s in data.splits["test"]] == ["a/deep/y.jpg", "a/x.png", "b.png", "z z/ü.png"]
    assert {s.label for s in data.splits["test"]} == {0} and data.counts() == {"train": 0, "val": 0, "test": 4}
    assert sorted(data.skipped) == [(".hidden.png", "hidden or metadata file"),
                                    ("readme.md", "not an image file (extension '.md')")]
    zipped = open_images(zip_dir(tmp_path / "new", tmp_path / "new.zip"))
    assert [s.source for s in zipped.splits["test"]] == [s.source for s in data.splits["test"]]
    assert open_dataset(tmp_path / "new").labelled is True  # a (two-class) folder tree stays labelled
    with pytest.raises(DatasetError, match="unlabelled images come as a folder, a .zip or a"):
        open_images(tmp_path / "new" / "readme.md")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files found"):
        open_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        open_images(tmp_path / "missing")


def test_class_folders_named_alike_in_nfd_and_nfc_are_one_class(tmp_path):
    """macOS writes folder names decomposed (NFD), most systems composed (NFC): train/kávé from one and test/kávé
    from the other are one class, named in NFC."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "kávé"), unicodedata.normalize("NFD", "kávé")
    assert nfc != nfd
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for split, name in (("train", nfd), ("test", nfc)):
            for cls, label in ((name, 0), ("tea", 1)):
                for i in range(3):
                    image = tmp_path / f"{split}{label}{i}.png"
                    write_image(image, label, i)
                    zf.write(image, f"{split}/{cls}/{i}.png")
    data = open_dataset(archive, val_fraction=0.0)
    assert data.class_names == sorted([nfc, "tea"])
    assert per_class(data.splits["train"]) == per_class(data.splits["test"]) == {0: 3, 1: 3}
    # and it is said: two folders became one class without a word (an extremes round)
    from feature_cache.options import data_warnings

    said = [text for text in data_warnings(data) if "Unicode forms" in text]
    assert said == ["class folders named alike in two Unicode forms (composed, and decomposed as macOS writes names) "
                    "are read as one class: 'ka\\u0301ve\\u0301' and 'k\\xe1v\\xe9' as 'kávé'"], said


@pytest.mark.parametrize("pair", [False, True])
def test_manifest_labels_in_nfd_and_nfc_are_one_class_and_said(tmp_path, pair):
    """A manifest's labels 'kávé' composed and decomposed were one class with nothing said (the data set's warnings
    empty, its class of twice the images): the folders' caution only read folder names (an odd-data-sets round)."""
    from feature_cache.options import data_warnings

    nfc, nfd = unicodedata.normalize("NFC", "kávé"), unicodedata.normalize("NFD", "kávé")
    rows = {split: [] for split in ("train", "test")}
    for label, name in enumerate((nfc, nfd, "tea")):
        for split in rows:
            for i in range(3):
                write_image(tmp_path / f"img/{split}{label}{i}.png", label, i)
                rows[split].append(f"img/{split}{label}{i}.png,{name},{split}")
    if pair:
        for split, lines in rows.items():
            (tmp_path / f"{split}.csv").write_text("\n".join(["path,label", *(r.rsplit(",", 1)[0] for r in lines)]),
                                                    encoding="utf-8")
    else:
        (tmp_path / "m.csv").write_text("\n".join(["path,label,split", *rows["train"], *rows["test"]]),
                                        encoding="utf-8")
    data = open_dataset(tmp_path if pair else tmp_path / "m.csv", val_fraction=0.0)
    assert data.class_names == [nfc, "tea"]
    said = [text for text in data_warnings(data) if "read as one class" in text]
    assert said == ["labels of the manifest written alike in two forms (Unicode composed and decomposed, or with white "
                    "space at an end) are read as one class: 'ka\\u0301ve\\u0301' and 'k\\xe1v\\xe9' as 'kávé'"], said


def test_manifest_labels_with_white_space_at_an_end_are_one_class_and_said(tmp_path):
    """A manifest's labels 'cat ' and 'cat' (a hand-edited row) were one class of both rows' images with nothing said,
    where folders so named stay apart with a warning; integer labels beside a names column name no class, so their
    spacing says nothing (an odd-data-sets round)."""
    from feature_cache.options import data_warnings

    lines = ["path,label,split"]
    for label, name in enumerate(("cat", "cat ", "dog")):
        for split in ("train", "test"):
            for i in range(3):
                write_image(tmp_path / f"img/{split}{label}{i}.png", label, i)
                lines.append(f"img/{split}{label}{i}.png,{name},{split}")
    (tmp_path / "m.csv").write_text("\n".join(lines), encoding="utf-8")
    data = open_dataset(tmp_path / "m.csv", val_fraction=0.0)
    assert data.class_names == ["cat", "dog"]
    assert [text for text in data_warnings(data) if "read as one class" in text] == [
        "labels of the manifest written alike in two forms (Unicode composed and decomposed, or with white space at an "
        "end) are read as one class: 'cat' and 'cat ' as 'cat'"]
    numbered = ["path,label,label_name"] + [f"{row.split(',')[0]},{('0', ' 0')[n % 2] if 'cat' in row else '1'},"
                                            f"{'cat' if 'cat' in row else 'dog'}" for n, row in enumerate(lines[1:])]
    (tmp_path / "m.csv").write_text("\n".join(numbered), encoding="utf-8")
    data = open_dataset(tmp_path / "m.csv", val_fraction=0.0)
    assert data.class_names == ["cat", "dog"]
    assert not [text for text in data_warnings(data) if "read as one class" in text]


def test_the_unicode_forms_caution_reads_each_folder_once(monkeypatch):
    """It normalised every part of every image's path: 1.28M images in ImageNet's layout took 4.3 s of a data set's
    registration (a review); each folder's parts are read once now, whatever the number of images in it."""
    from types import SimpleNamespace

    import feature_cache.datasets as datasets

    calls = []
    monkeypatch.setattr(datasets, "class_name", lambda text: calls.append(text) or unicodedata.normalize("NFC", text))
    nfc, nfd = unicodedata.normalize("NFC", "kávé"), unicodedata.normalize("NFD", "kávé")
    samples = [SimpleNamespace(source=f"train/{folder}/{i}.png", label=0) for folder in (nfc, nfd) for i in range(50)]
    data = SimpleNamespace(labelled=True, splits={"train": samples}, class_names=[nfc])
    assert "read as one class" in datasets.unicode_forms_warning(data)
    assert len(calls) == 4  # train and the class folder, of each of the two folders


@pytest.mark.parametrize("system,classes", [(3, ["back\\slash", "tea"]), (0, ["back", "tea"])])
def test_a_backslash_in_a_zip_member_is_a_separator_only_from_windows(tmp_path, system, classes):
    """A folder 'back\\slash' zipped on Linux or macOS (made by system 3, Unix) was read as back/slash, class 'back'
    (an extremes round); a Windows tool's zip (made by 0, MS-DOS) writes "\\" between folders, read as "/"."""
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("train", "test"):
            for cls, label in (("back\\slash", 0), ("tea", 1)):
                for i in range(3):
                    image = tmp_path / f"{split}{label}{i}.png"
                    write_image(image, label, i)
                    info = zipfile.ZipInfo(f"{split}/{cls}/{i}.png")
                    info.create_system = system
                    zf.writestr(info, image.read_bytes())
    data = open_dataset(archive, val_fraction=0.0)
    assert data.class_names == classes
    assert per_class(data.splits["test"]) == {0: 3, 1: 3}

def test_a_backslash_in_a_tar_member_is_a_character_of_its_name(tmp_path):
    """A tar's "\\" was always read as a folder separator: a folder 'back\\slash' tarred on Linux (GNU tar keeps
    the "\\" as a character; tar is a Unix format) was the class 'back', though on disk and in a Linux zip it is
    'back\\slash'. The escape checks still read it as a separator: '..\\..\\x.png' is refused."""
    import io
    import tarfile

    from feature_cache import UnsafeArchive

    names = [f"{split}/{cls}/{i}.png" for split in ("train", "test") for cls in ("back\\slash", "tea")
             for i in range(3)]
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        for i, name in enumerate(names):
            image = tmp_path / f"{i}.png"
            write_image(image, i % 2, i)
            info = tarfile.TarInfo(name)
            info.size = image.stat().st_size
            tf.addfile(info, io.BytesIO(image.read_bytes()))
    data = open_dataset(archive, val_fraction=0.0)
    assert data.class_names == ["back\\slash", "tea"]
    assert per_class(data.splits["test"]) == {0: 3, 1: 3}
    escape = tmp_path / "escape.tar"
    with tarfile.open(escape, "w") as tf:
        info = tarfile.TarInfo("train\\..\\..\\x.png")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"png"))
    with pytest.raises(UnsafeArchive, match="escapes the archive root with '..'"):
        open_dataset(escape, val_fraction=0.0)


@pytest.mark.parametrize("name", ["a\x1b[31mred", "\u202eevil", "tab\there", "c1\x85", "line\u2028break",
                                  "zero\u200bwidth", "bom\ufeff"])
def test_class_names_with_control_characters_are_refused(tree, name):
    """A class folder named with an escape sequence or a text-direction override reached terminals, reports and
    pages as it was (found by an outside attack round, through an uploaded archive); refused, the name escaped."""
    write_image(tree / "train" / name / "0.png", 5, 0)
    write_image(tree / "test" / name / "0.png", 5, 0)
    with pytest.raises(DatasetError, match=r"class name\(s\) .* hold control or text-direction characters") as err:
        open_dataset(tree)
    assert ascii(name) in str(err.value) and name not in str(err.value)


def test_files_named_with_control_characters_are_skipped_and_shown_escaped(tmp_path):
    """A file name with a newline forged lines in the server's log and the job's messages, one with an escape
    sequence reached the terminal through `mr2probe failures` (an attack round): such files are skipped, listed
    with their names escaped, in folders, archives and manifests alike."""
    from feature_cache.archives import UNPRINTABLE_NAME

    tree = tmp_path / "named"
    forged, coloured = "x\n2026-12-05 01:00:00,000 CRITICAL app.main: FORGED\n.png", "evil\x1b[31mRED\u202e.png"
    for split in ("train", "test"):
        for cls in ("ant", "bee"):
            for i in range(2):
                write_image(tree / split / cls / f"{i}.png", 5, i)
    write_image(tree / "train" / "ant" / forged, 5, 0)
    write_image(tree / "test" / "bee" / coloured, 5, 0)
    shown = {"train/ant/x\\n2026-12-05 01:00:00,000 CRITICAL app.main: FORGED\\n.png",
             "test/bee/evil\\x1b[31mRED\\u202e.png"}
    archive = tmp_path / "named.zip"  # beside the folder, not in it
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*.png")):
            zf.write(path, path.relative_to(tree).as_posix())
    manifest = tree / "labels.csv"
    manifest.write_text("path,label,split\n" + "".join(
        f"{p.relative_to(tree).as_posix()},{p.parent.name},{p.parent.parent.name}\n" for p in sorted(tree.rglob("*.png"))
        if "\n" not in p.name))
    for source in (tree, archive, manifest):
        data = open_dataset(source, val_fraction=0.0)
        wanted = shown if source != manifest else {n for n in shown if "FORGED" not in n}
        assert {name for name, why in data.skipped if why == UNPRINTABLE_NAME} == wanted, source
        samples = [s.source for split in data.splits.values() for s in split]
        assert len(samples) == 8 and all(s.isprintable() for s in samples)
        assert all(name.isprintable() for name, _ in data.skipped)


def test_a_refusal_shows_a_skipped_name_escaped_once(tmp_path):
    """A zip whose class folders all hold control characters is refused naming one file as the skipped list shows it
    (escaped once): repr() of the escaped name wrote 'ca\\\\x07t/0.png' for the folder ca\\x07t (a round)."""
    archive = tmp_path / "u.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for cls in ("ca\x07t", "do\x1bg"):
            for i in range(2):
                write_image(tmp_path / "img.png", 5, i)
                zf.write(tmp_path / "img.png", f"{cls}/{i}.png")
    with pytest.raises(DatasetError) as refused:
        open_dataset(archive)
    assert str(refused.value).endswith("(shown escaped): 4 (e.g. 'ca\\x07t/0.png').")


@pytest.mark.parametrize("name", [" ", "   "])
def test_blank_class_names_are_refused(tree, name):
    """A class folder named with spaces alone was a blank row in every table (found by an outside attack round)."""
    write_image(tree / "train" / name / "0.png", 5, 0)
    write_image(tree / "test" / name / "0.png", 5, 0)
    with pytest.raises(DatasetError, match=rf"class name\(s\) {name!r} are blank \(spaces only\)"):
        open_dataset(tree)


def test_a_labelled_test_set_alone_keeps_every_image_in_test(tree, tmp_path):
    """New labelled images to score a shipped probe on: a test/ folder alone was taken for a class-folder tree and
    80 % of its images went into train and val (so predict scored a fifth of them), and a manifest whose split
    column said test on every row was refused (found by an outside round). Both are a test set now."""
    import shutil

    new = tmp_path / "new"
    shutil.copytree(tree / "test", new / "test")
    data = open_dataset(new)
    assert data.class_names == ["ant", "bee", "cat"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 0, "val": 0, "test": 9}
    assert all(s.source.startswith("test/") for s in data.splits["test"])
    rows = "\n".join(f"test/{c}/{f.name},{c},test" for c in ("ant", "bee", "cat")
                     for f in sorted((new / "test" / c).iterdir()))
    (new / "m.csv").write_text("path,label,split\n" + rows + "\n")
    manifest = open_dataset(new / "m.csv")
    assert {k: len(v) for k, v in manifest.splits.items()} == {"train": 0, "val": 0, "test": 9}
    (new / "only_val.csv").write_text("path,label,split\n" + rows.replace(",test", ",val") + "\n")
    with pytest.raises(DatasetError, match="must give at least train and test rows"):
        open_dataset(new / "only_val.csv")


def test_a_labelled_test_set_of_one_class_is_read_and_a_training_set_of_one_is_not(tree, tmp_path):
    """New images of the one class a probe fails on, to score it there: a test/ folder of one class was refused
    ("a probe needs at least 2 classes"; a CLI round) though nothing trains on it. One class to train on still is."""
    import shutil

    shutil.copytree(tree / "test" / "cat", tmp_path / "new" / "test" / "cat")
    data = open_dataset(tmp_path / "new")
    assert data.class_names == ["cat"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 0, "val": 0, "test": 3}
    shutil.copytree(tree / "train" / "cat", tmp_path / "one" / "train" / "cat")
    shutil.copytree(tree / "test" / "cat", tmp_path / "one" / "test" / "cat")
    with pytest.raises(DatasetError, match="a probe needs at least 2 classes"):
        open_dataset(tmp_path / "one")


def test_train_test_folders_in_several_places_are_refused_naming_them(tmp_path):
    """partA/{train,test}/{a,b}, partB/{train,test}/{c,d} and extra_class/ gave classes a, b and skipped 0: the
    first split root alone was read, the other images dropped without a word (found by the third attack round).
    Several split roots are refused naming them, as a folder and as a zip, and so are several test sets alone."""
    parts = tmp_path / "parts"
    make_tree(parts / "partA", {"a": 2, "b": 2})
    make_tree(parts / "partB", {"c": 2, "d": 2})
    write_image(parts / "extra_class" / "000.png", 0, 0)
    message = ": found train/test folders in 2 places (partA, partB): register one of them, or arrange the images " \
              "in one tree (train/<class>/…, test/<class>/…)."
    archive = zip_dir(parts, tmp_path / "parts.zip")
    for source in (parts, archive):
        with pytest.raises(DatasetError) as info:
            open_dataset(source)
        assert str(info.value) == f"{source}{message}"
    tests_only = tmp_path / "tests_only"
    make_tree(tests_only / "ds1", {"a": 2, "b": 2}, splits=("test",))
    make_tree(tests_only / "ds2", {"a": 2, "b": 2}, splits=("test",))
    with pytest.raises(DatasetError, match=r"found test folders in 2 places \(ds1, ds2\): register one of them"):
        open_dataset(tests_only)
    # one of them is a data set of its own
    assert open_dataset(parts / "partB").class_names == ["c", "d"]


def test_files_outside_the_split_folders_are_skipped_and_listed(tree, tmp_path):
    """One split root, nested or not: images and other files beside it are listed as skipped (they were dropped
    silently); a class's own train/test subfolders and macOS's __MACOSX folder make no second root."""
    write_image(tree / "extra_class" / "000.png", 0, 0)
    (tree / "README.md").write_text("about")
    write_image(tree / "train" / "ant" / "test" / "900.png", 0, 900)  # inside a class: still that class
    write_image(tree / "train" / "ant" / "train" / "901.png", 0, 901)
    write_image(tree / "__MACOSX" / "train" / "ant" / "._000.png", 0, 1)
    write_image(tree / "__MACOSX" / "test" / "ant" / "._000.png", 0, 2)
    data = open_dataset(tree, val_fraction=0.0)
    reason = "outside the split folders ('train', 'test')"
    assert sorted(data.skipped) == [("README.md", reason), ("__MACOSX/test/ant/._000.png", "hidden or metadata file"),
                                    ("__MACOSX/train/ant/._000.png", "hidden or metadata file"),
                                    ("extra_class/000.png", reason)]
    assert data.class_names == ["ant", "bee", "cat"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 20, "val": 0, "test": 9}
    nested = open_dataset(zip_dir(tree, tmp_path / "nested.zip", prefix="top/"), val_fraction=0.0)
    assert sorted(s for s, r in nested.skipped if r.startswith("outside")) == ["top/README.md",
                                                                                 "top/extra_class/000.png"]
    assert {r for s, r in nested.skipped if r.startswith("outside")} == {"outside the split folders ('top/train', "
                                                                         "'top/test')"}


def test_the_split_folders_and_skipped_files_are_named_quoted(tree, tmp_path):
    """A reason and the lines printed after an extraction named folders and files unquoted ("outside the split
    folders (my set/train, my set/test)", "skipped a, b.txt: ..."): a name with a comma, a colon or spaces read
    ambiguously; they are quoted as the other messages quote names."""
    from feature_cache.options import skipped_lines

    (tree / "a, b: c.txt").write_text("about")
    data = open_dataset(zip_dir(tree, tmp_path / "nested.zip", prefix="my set/"), val_fraction=0.0)
    reason = "outside the split folders ('my set/train', 'my set/test')"
    assert [(s, r) for s, r in data.skipped if r.startswith("outside")] == [("my set/a, b: c.txt", reason)]
    assert skipped_lines([("my set/a, b: c.txt", reason)]) == [f"skipped 'my set/a, b: c.txt': {reason}"]


def test_a_folder_holding_its_manifest_says_to_name_the_manifest(tmp_path):
    """A folder with manifest.csv and one image folder read as one class folder, the CSV unmentioned (a new-user
    round): the error names the manifest to pass instead."""
    for i in range(3):
        write_image(tmp_path / "imgs" / f"{i}.png", i % 2, i)
    (tmp_path / "manifest.csv").write_text("path,label\nimgs/0.png,a\nimgs/1.png,b\nimgs/2.png,a\n")
    how = r" \(mr2probe extract --data FILE\.csv, or its path registered as a folder or CSV on the server\)\."
    with pytest.raises(DatasetError, match=r"found 1 class folder\(s\) \(imgs\); a probe needs at least 2 classes\. "
                                           r"A manifest here is read only when named itself: .*manifest\.csv" + how):
        open_dataset(tmp_path)


def test_the_top_folders_manifest_is_named_before_a_csv_in_a_class_folder(tmp_path):
    """A folder holding labels.csv beside one class folder that holds a notes.csv: the refusal named
    cat/notes.csv, sorted ahead of labels.csv by name (a review). The shallowest CSV is named."""
    for i in range(3):
        write_image(tmp_path / "cat" / f"{i}.png", i % 2, i)
    (tmp_path / "cat" / "notes.csv").write_text("x\n")
    (tmp_path / "labels.csv").write_text("path,label\ncat/0.png,a\ncat/1.png,b\n")
    with pytest.raises(DatasetError) as raised:
        open_dataset(tmp_path)
    assert f"A manifest here is read only when named itself: {tmp_path / 'labels.csv'} (" in str(raised.value)


def test_a_zip_of_flat_images_and_their_manifest_says_how_to_read_the_manifest(tmp_path):
    """A zip of images in no folder beside their labels.csv was refused as 0 class folders, the manifest unmentioned,
    where the same files in a folder named it (a review): the archive's refusal names it and how to give it."""
    for i in range(4):
        write_image(tmp_path / "flat" / f"{i}.png", i % 2, i)
    rows = "".join(f"{i}.png,{'ab'[i % 2]}\n" for i in range(4))
    (tmp_path / "flat" / "labels.csv").write_text("path,label\n" + rows)
    with pytest.raises(DatasetError) as raised:
        open_dataset(zip_dir(tmp_path / "flat", tmp_path / "flat.zip"))
    assert ("found 0 class folder(s) (none); a probe needs at least 2 classes. A manifest here is read only when "
            "named itself: labels.csv in flat.zip, once unpacked (mr2probe extract --data FILE.csv, or its path "
            "registered as a folder or CSV on the server).") in str(raised.value)
    assert open_dataset(tmp_path / "flat" / "labels.csv").class_names == ["a", "b"]  # as the message says


def test_empty_files_are_skipped_at_registration(tmp_path):
    """400,000 empty .png files registered as images (an attack round): a file of 0 bytes is skipped, said so, in
    folders, zip and tar archives and manifests."""
    import tarfile

    from feature_cache.archives import EMPTY_FILE

    tree = tmp_path / "set"
    for split in ("train", "test"):
        for cls in ("ant", "bee"):
            for i in range(2):
                write_image(tree / split / cls / f"{i}.png", 5, i)
    (tree / "train" / "ant" / "empty.png").write_bytes(b"")
    archive, tar = tmp_path / "set.zip", tmp_path / "set.tar"
    with zipfile.ZipFile(archive, "w") as zf, tarfile.open(tar, "w") as tf:
        for path in sorted(tree.rglob("*.png")):
            zf.write(path, path.relative_to(tree).as_posix())
            tf.add(path, path.relative_to(tree).as_posix())
    manifest = tree / "labels.csv"
    manifest.write_text("path,label,split\n" + "".join(
        f"{p.relative_to(tree).as_posix()},{p.parent.name},{p.parent.parent.name}\n" for p in sorted(tree.rglob("*.png"))))
    for source in (tree, archive, tar, manifest):
        data = open_dataset(source, val_fraction=0.0)
        assert [name for name, why in data.skipped if why == EMPTY_FILE] == ["train/ant/empty.png"], source
        assert sum(len(v) for v in data.splits.values()) == 8


def test_a_data_set_whose_images_were_all_skipped_says_why(tmp_path):
    """A README round: a manifest whose rows reach their images through a symlink out of its folder said its "class
    folder(s)" had no images, and a folder of symlinked class folders "no image files found": both now say what
    was skipped and why."""
    import os

    from feature_cache import DatasetError, open_dataset
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "real" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / "real" / name / f"{i}.png")
    (tmp_path / "m").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "m" / "imgs")
    rows = [f"imgs/{c}/{i}.png,{c},{'train' if i < 2 else 'test'}" for c in "ab" for i in range(3)]
    (tmp_path / "m" / "m.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"class\(es\) 'a' \(in 'train' and 'test'\); 'b' \(in 'train' and 'test'\) "
                       r"have no images in the manifest's rows; add rows or images\. Skipped 6: symlink pointing "
                       r"outside the manifest folder: 6 \(e\.g\. 'imgs/a/0\.png'\)\."):
        open_dataset(tmp_path / "m" / "m.csv")
    (tmp_path / "links").mkdir()
    for name in ("a", "b"):
        os.symlink(tmp_path / "real" / name, tmp_path / "links" / name)
    with pytest.raises(DatasetError, match=r"no image files found \(accepted extensions: .*\)\. Skipped 2: symlinked "
                       r"folder, not followed \(copy the images in\): 2 \(e\.g\. 'a'\)\."):
        open_dataset(tmp_path / "links")


def test_two_folders_naming_one_split_are_refused_not_half_read(tmp_path):
    """Train/ and train/ (or val/ and validation/) in one archive: only the first was read, the other's images
    skipped with a count, and the data set registered with 1 training image per class (an attack round)."""
    for split in ("Train", "train", "test"):
        for label, name in enumerate(("a", "b")):
            for i in range(2):
                write_image(tmp_path / "d" / split / name / f"{split}{i}.png", label, i)
    with pytest.raises(DatasetError, match=r"folders Train/ and train/ both name the train split: merge them"):
        open_dataset(tmp_path / "d")
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((tmp_path / "d").rglob("*.png")):
            z.write(path, "top/" + path.relative_to(tmp_path / "d").as_posix())
    with pytest.raises(DatasetError, match=r"folders Train/ and train/ both name the train split"):
        open_dataset(archive)
    for path in (tmp_path / "d" / "Train").rglob("*.png"):  # one folder a split: read as before
        path.rename(tmp_path / "d" / "train" / path.parent.name / path.name)
    assert sum(open_dataset(tmp_path / "d").counts().values()) == 12


def test_copies_inside_one_split_and_class_are_not_read_to_confirm_them():
    """Only the content-id groups that the warning would name are confirmed by their bytes: copies within one split
    and one class (no leak, no second label) were read for nothing, each member of a large zip decompressed."""
    from feature_cache.datasets import Sample, duplicates_warning

    splits = {"train": [Sample("train/cat/a.png", 0), Sample("train/cat/b.png", 0), Sample("train/dog/c.png", 1)],
              "test": [Sample("test/dog/d.png", 1)]}
    contents = {"train/cat/a.png": 1, "train/cat/b.png": 1, "train/dog/c.png": 2, "test/dog/d.png": 2}
    read = []
    warning = duplicates_warning(["cat", "dog"], splits, contents, read=lambda name: read.append(name) or b"same")
    assert warning.startswith("1 of the 1 test images has the same content as a train or val image "
                              "('test/dog/d.png' = 'train/dog/c.png')")
    assert sorted(read) == ["test/dog/d.png", "train/dog/c.png"]  # not a.png nor b.png


def test_one_content_under_two_classes_is_named_with_both_classes():
    """The example of one image under two labels named the group's first three files, all of one class when the
    copy of the other class came fourth: "a (cat) = b (cat) = c (cat)", no second label named."""
    from feature_cache.datasets import Sample, duplicates_warning

    train = [Sample("train/cat/a.png", 0), Sample("train/cat/b.png", 0), Sample("train/cat/c.png", 0),
             Sample("train/dog/d.png", 1)]
    warning = duplicates_warning(["cat", "dog"], {"train": train}, {s.source: 1 for s in train},
                                 read=lambda name: b"same")
    assert warning == ("1 file content(s) sit under more than one class ('train/cat/a.png' ('cat') = "
                       "'train/dog/d.png' ('dog')): one image, two labels; remove the copies")



def test_the_nested_classes_caution_does_not_hold_every_path_split_at_once():
    """It ran before every extraction, the service's and the CLI's, and split every sample's path into a list held
    all at once: ~440 MiB for ImageNet's 1.28M images, for a caution that an image in a class folder answers."""
    import tracemalloc

    from feature_cache.datasets import LabelledImages, Sample, nested_classes_warning

    names = [f"n{k:08d}" for k in range(100)]
    train = [Sample(f"train/{names[i % 100]}/{names[i % 100]}_{i}.JPEG", i % 100) for i in range(200_000)]
    data = LabelledImages(names, {"train": train}, [], "", {}, None)
    tracemalloc.start()
    try:
        assert nested_classes_warning(data) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MiB"  # the list of samples is 1.6 MB; the split paths were ~70


def test_manifest_labels_named_alike_in_nfd_and_nfc_are_one_class(tmp_path):
    """A manifest's labels, as class folders: 'kávé' decomposed (NFD: a train.csv made from macOS folder names) and
    composed in the same CSV were two classes, one without test images, where the same folders are one class (an
    extremes round)."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "kávé"), unicodedata.normalize("NFD", "kávé")
    rows = []
    for label, (name, split) in enumerate(((nfd, "train"), (nfc, "test"), ("tea", "train"), ("tea", "test"))):
        for i in range(3):
            write_image(tmp_path / f"{label}_{i}.png", label // 2, i)
            rows.append(f"{label}_{i}.png,{name},{split}")
    (tmp_path / "m.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n", encoding="utf-8")
    data = open_dataset(tmp_path / "m.csv", val_fraction=0.0)
    assert data.class_names == sorted([nfc, "tea"])
    assert per_class(data.splits["train"]) == per_class(data.splits["test"]) == {0: 3, 1: 3}


def test_the_test_split_has_a_content_fingerprint_of_its_own(tmp_path):
    """Fixing wrong training labels (an image moved to its right class folder) makes another data set, and `compare`
    refused the runs before and after as scored on other test images (a noisy-labels round): the test split the
    data set gives has its own digest, the same while train changes, another when a test image does; "" where test
    is carved out of the data set."""
    import shutil

    one = make_tree(tmp_path / "one", {"cat": 4, "dog": 4})
    fixed = tmp_path / "fixed"
    shutil.copytree(one, fixed)
    (fixed / "train" / "cat" / "000.png").rename(fixed / "train" / "dog" / "moved.png")
    other_test = tmp_path / "other_test"
    shutil.copytree(one, other_test)
    write_image(other_test / "test" / "cat" / "000.png", 1, 999)
    a, b, c = (open_dataset(root, val_fraction=0.25) for root in (one, fixed, other_test))
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    assert a.test_fingerprint and a.test_fingerprint == b.test_fingerprint != c.test_fingerprint
    assert open_dataset(make_tree(tmp_path / "flat", {"cat": 5, "dog": 5}, splits=())).test_fingerprint == ""
    assert open_dataset(one, fingerprint=False).test_fingerprint == ""


def test_val_and_test_folders_without_train_are_refused_not_read_as_two_classes(tree, tmp_path):
    """val/<class>/… and test/<class>/… with no train/ were read as one tree of the two classes 'test' and 'val'
    (a probe taught to tell val images from test images; a review). They are split folders without training
    images, refused as a manifest of val and test rows is; a test/ folder alone stays a labelled test set."""
    import shutil

    root = tmp_path / "vt"
    shutil.copytree(tree / "test", root / "test")
    shutil.copytree(tree / "train", root / "val")
    with pytest.raises(DatasetError, match=r"no training images found \(val/ and test/ folders, no train/ folder\)"):
        open_dataset(root)
    shutil.rmtree(root / "val")
    assert open_dataset(root).class_names == ["ant", "bee", "cat"]


def _nested_per_image(data, shown: int = 5):
    """nested_classes_warning as it was, each image's path read (4.4 s at ImageNet's 1.28M): the reference the
    folder-once version must agree with."""
    from feature_cache.datasets import class_name, listed

    if not data.labelled or data.num_classes < 2:
        return None
    samples = [s for split in data.splits.values() for s in split]
    if not samples:
        return None
    depths = None
    for sample in samples:
        p, name = sample.source.split("/"), data.class_names[sample.label]
        levels = range(len(p) - 1) if depths is None else [i for i in depths if i < len(p) - 1]
        depths = {i for i in levels if class_name(p[i]) == name}
        if not depths:
            return None
    depth = min(depths)
    inner = {}
    for sample in samples:
        p, name = sample.source.split("/"), data.class_names[sample.label]
        if len(p) <= depth + 2:
            return None
        inner.setdefault(name, set()).add(class_name(p[depth + 1]))
    folders = set.union(*inner.values())
    if len(inner) < data.num_classes or len(folders) < 2 or any(f != folders for f in inner.values()):
        return None
    return (f"every class folder ({listed(sorted(inner), shown)}) holds the same subfolders "
            f"({listed(sorted(folders), shown)}) and no image of its own: if those subfolders are the classes, "
            "each image is labelled by the folder above them instead; arrange the images as <class>/<images> "
            "(class folders are read with all their subfolders)")


def test_the_nested_classes_caution_reads_each_folder_once_and_says_what_the_per_image_pass_said(monkeypatch):
    """It split every image's path (4.4 s at 1.28M paths) where unicode_forms_warning reads each class folder once.
    Each folder once now: the same answer as the per-image pass on 3,000 random layouts (nested, flat, mixed,
    manifest labels, files at the root, absolute paths, Unicode forms), and one class_name per folder level."""
    import random

    from feature_cache import datasets
    from feature_cache.datasets import LabelledImages, Sample, nested_classes_warning

    rng = random.Random(0)
    words = ["cat", "dog", "b1", "b2", "train", "", "Cat", "cafe\u0301", "caf\u00e9", "x"]
    warned = 0
    for _ in range(3000):
        names = sorted(rng.sample(["cat", "dog", "café", "x"], rng.randint(2, 3)))
        samples, order, odd = [], rng.choice((1, -1)), rng.choice((0.0, 0.02, 0.5))
        top = ["train"] * rng.randint(0, 1)
        for i in range(rng.randint(0, 24)):
            label = rng.randrange(len(names))
            if rng.random() >= odd:  # <class>/batchN/... (the caution's layout) or batchN/<class>/...
                middle = [f"b{rng.randint(1, 2)}", names[label]][::order]
            else:
                middle = rng.sample(words, rng.randint(0, 3))
            where = top if rng.random() >= odd else ["train"] * rng.randint(0, 1)
            samples.append(Sample("/".join(where + middle + [f"{i}.png"]), label))
        data = LabelledImages(names, {"train": samples}, [], "", {}, None)
        expected = _nested_per_image(data)
        assert nested_classes_warning(data) == expected, [s.source for s in samples]
        warned += expected is not None
    assert warned > 50  # the layouts that warn are tried too
    calls = []
    real = datasets.class_name
    monkeypatch.setattr(datasets, "class_name", lambda part: calls.append(part) or real(part))
    names = ["cat", "dog"]
    many = [Sample(f"{names[i // 2 % 2]}/b{i % 2 + 1}/{i}.png", i // 2 % 2) for i in range(4000)]
    assert nested_classes_warning(LabelledImages(names, {"train": many}, [], "", {}, None)) is not None
    assert len(calls) < 40, len(calls)  # 4 folders, each of 2 levels, twice; per image: 12,000


def test_integer_labels_take_their_names_from_a_names_column(tmp_path):
    """A Kaggle / Hugging Face export, ``image,label,label_name`` with labels 0 and 1: the classes were '0' and '1',
    the names unread (a new-user round); they are the names now. An integer given two names, or a name two integers,
    is refused naming the rows; labels that are no integers are read as they are, the names column aside."""
    rows = []
    for label, name in enumerate(("cat", "dog")):
        for i, split in enumerate(("train", "train", "train", "test")):
            write_image(tmp_path / "imgs" / f"{name}{i}.png", label, i)
            rows.append(f"imgs/{name}{i}.png,{label},{name},{split}")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(("\ufeffImage,Label,Label Name,split\r\n" + "\r\n".join(rows) + "\r\n").encode())
    data = open_dataset(manifest, val_fraction=0.0)
    assert data.class_names == ["cat", "dog"]
    assert [data.class_names[s.label] for s in data.splits["test"]] == ["cat", "dog"]
    bad = rows + ["imgs/cat0.png,0,kitty,test"]
    (tmp_path / "bad.csv").write_text("image,label,class_name,split\n" + "\n".join(bad))
    with pytest.raises(DatasetError, match=r"bad\.csv: row 10: label 0 is named 'kitty' here but 'cat' at row 2: each "
                       "integer label needs one name of its own in the names column"):
        open_dataset(tmp_path / "bad.csv")
    (tmp_path / "two.csv").write_text("image,label,class_name,split\n" + "\n".join(rows).replace(",1,dog,", ",1,cat,"))
    with pytest.raises(DatasetError, match=r"row 6: labels 0 and 1 are both named 'cat'"):
        open_dataset(tmp_path / "two.csv")
    named = "\n".join(rows).replace(",0,cat,", ",cat,x,")  # a label that is no integer: read as it is
    (tmp_path / "named.csv").write_text("image,label,label_name,split\n" + named)
    assert open_dataset(tmp_path / "named.csv").class_names == ["cat", "dog"]


@pytest.mark.parametrize("column", ["name", "category", "class"])
def test_integer_labels_beside_a_column_that_names_no_label_are_read_as_they_are(tmp_path, column):
    """A ``name`` column of file names, or a ``category`` / ``class`` column of a coarser grouping (two labels to one
    value), beside integer labels: the manifest reads as it did, its classes the integers, not refused as a names
    column that gives an integer two names or two integers one name (a review)."""
    rows = []
    for label in range(3):
        for i, split in enumerate(("train", "train", "test")):
            write_image(tmp_path / f"{label}_{i}.png", label, i)
            rows.append(f"{label}_{i}.png,{label},{f'{label}_{i}.png' if column == 'name' else 'animal'},{split}")
    (tmp_path / "m.csv").write_text(f"image,label,{column},split\n" + "\n".join(rows))
    assert open_dataset(tmp_path / "m.csv", val_fraction=0.0).class_names == ["0", "1", "2"]


def test_a_train_and_test_manifest_pair_gives_an_integer_label_one_name_in_both(tmp_path):
    """train.csv and test.csv read together share their names: test.csv's label 0 named 'dog' where train.csv's is
    'cat' swapped the two classes' test images without a word, and a test.csv without the names column (a Kaggle
    test file) had classes '0', '1' beside train's 'cat', 'dog', refused as classes without images (a review)."""
    train, test = [], []
    for label, name in enumerate(("cat", "dog")):
        for i in range(4):
            write_image(tmp_path / "imgs" / f"{name}{i}.png", label, i)
            (train if i < 3 else test).append((f"imgs/{name}{i}.png", label, name))
    (tmp_path / "train.csv").write_text("image,label,label_name\n" + "".join(f"{p},{y},{n}\n" for p, y, n in train))
    (tmp_path / "test.csv").write_text("image,label\n" + "".join(f"{p},{y}\n" for p, y, _ in test))
    data = open_dataset(tmp_path, val_fraction=0.0)
    assert data.class_names == ["cat", "dog"]
    assert [(s.source, data.class_names[s.label]) for s in data.splits["test"]] == [
        ("imgs/cat3.png", "cat"), ("imgs/dog3.png", "dog")]
    swapped = "".join(f"{p},{y},{('dog', 'cat')[y]}\n" for p, y, _ in test)
    (tmp_path / "test.csv").write_text("image,label,label_name\n" + swapped)
    with pytest.raises(DatasetError, match=r"test\.csv: row 2: label 0 is named 'dog' here but 'cat' at train\.csv "
                       "row 2"):
        open_dataset(tmp_path, val_fraction=0.0)


def _manifest_pair(folder: Path, train: str, test: str) -> Path:
    """train.csv and test.csv of images imgs/<name><i>.png (i 0-2 train, 3 test) of classes cat, dog, owl, with the
    header and rows given (``{p}``: the path, ``{y}``: the integer label, ``{n}``: the name)."""
    rows = {"train": [], "test": []}
    for label, name in enumerate(("cat", "dog", "owl")):
        for i in range(4):
            write_image(folder / "imgs" / f"{name}{i}.png", label, i)
            rows["train" if i < 3 else "test"].append(dict(p=f"imgs/{name}{i}.png", y=label, n=name))
    for split, row in (("train", train), ("test", test)):
        header, line = row.split("\n")
        (folder / f"{split}.csv").write_text(header + "\n" + "".join(line.format(**r) + "\n" for r in rows[split]))
    return folder


def test_a_names_column_in_test_csv_alone_names_train_csvs_integer_labels(tmp_path):
    """A names column in test.csv alone: its classes 'cat', 'dog', 'owl' were refused as having no training images
    beside train.csv's '0', '1', '2' (a review), where one in train.csv alone names test.csv's integers."""
    bare, named = "path,label\n{p},{y}", "path,label,label_name\n{p},{y},{n}"
    for train, test in ((bare, named), (named, bare)):
        data = open_dataset(_manifest_pair(tmp_path, train, test), val_fraction=0.0)
        assert data.class_names == ["cat", "dog", "owl"]
        assert {split: sorted((s.source, data.class_names[s.label]) for s in data.splits[split])
                for split in ("train", "test")} == {
            "train": [(f"imgs/{n}{i}.png", n) for n in ("cat", "dog", "owl") for i in range(3)],
            "test": [(f"imgs/{n}3.png", n) for n in ("cat", "dog", "owl")]}


def test_classes_of_one_manifest_of_a_pair_name_the_file_that_lacks_them(tmp_path):
    """Classes in test.csv only were said to have 'no training images', and labels written otherwise in train.csv
    'no test images either' (a review): the refusal says which file holds them and which lacks them."""
    _manifest_pair(tmp_path, "path,label\n{p},{n}", "path,label\n{p},{n}")
    (tmp_path / "train.csv").write_text("path,label\n" + "".join(f"imgs/cat{i}.png,cat\nimgs/dog{i}.png,dog\n"
                                                                  for i in range(3)))
    with pytest.raises(DatasetError) as raised:
        open_dataset(tmp_path, val_fraction=0.0)
    assert str(raised.value) == (f"{tmp_path}: class(es) owl are in test.csv but not in train.csv: a probe needs "
                                 "training images of every class it is tested on; add their rows to train.csv or "
                                 "leave their rows out of test.csv.")
    _manifest_pair(tmp_path, "path,label\n{p},{y}", "path,label\n{p},{n}")
    with pytest.raises(DatasetError) as raised:
        open_dataset(tmp_path, val_fraction=0.0)
    assert str(raised.value) == (f"{tmp_path}: class(es) cat, dog, owl are in test.csv but not in train.csv: a probe "
                                 "needs training images of every class it is tested on, and class(es) 0, 1, 2 are "
                                 "in train.csv but not in test.csv: are the labels written alike in both files?")


def test_a_split_column_of_a_manifest_pair_that_says_another_split_is_refused(tmp_path):
    """A split column in train.csv of a pair, setting rows apart as val or test, was ignored without a word, those
    images trained on (a review): a row whose split is not its file's is refused naming it; one that says its
    file's split is read."""
    _manifest_pair(tmp_path, "path,label,split\n{p},{n},train", "path,label,split\n{p},{n},test")
    assert {k: len(v) for k, v in open_dataset(tmp_path, val_fraction=0.0).splits.items()} == {
        "train": 9, "val": 0, "test": 3}
    rows = (tmp_path / "train.csv").read_text().splitlines()
    (tmp_path / "train.csv").write_text("\n".join(rows[:3] + [rows[3].replace(",train", ",Val")] + rows[4:]) + "\n")
    with pytest.raises(DatasetError) as raised:
        open_dataset(tmp_path, val_fraction=0.0)
    assert str(raised.value) == (f"{tmp_path / 'train.csv'}: row 4: split 'Val' in train.csv of a train.csv / "
                                 "test.csv pair, every row of which is train data (validation images are carved "
                                 "from train.csv): leave the row out, or the split column.")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text((tmp_path / "test.csv").read_text().replace("owl3.png,owl,test",
                                                                                   "owl3.png,owl,train"))
    with pytest.raises(DatasetError, match=r"test\.csv: row 4: split 'train' in test\.csv of a train\.csv / test\.csv "
                                           "pair, every row of which is test data"):
        open_dataset(tmp_path, val_fraction=0.0)
