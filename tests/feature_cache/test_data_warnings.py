"""What an extraction warns of a data set's files is kept with its cache, for every run trained on it to say."""
from __future__ import annotations

import shutil

import h5py

from feature_cache import extract, open_cache, open_dataset
from fc_testutils import make_tree, tiny_encoder
from probe import ProbeConfig, run_probe


def _copied_test(tmp_path):
    """2 classes whose test/ folder is a copy of train/: every test image is a train image."""
    root = make_tree(tmp_path / "data", {"ant": 6, "bee": 6}, splits=("train",))
    shutil.copytree(root / "train", root / "test")
    return root


def test_the_extractions_data_warnings_are_kept_in_the_cache_and_said_by_a_run_on_it(tmp_path):
    root = _copied_test(tmp_path)
    duplicates = open_dataset(root).duplicates
    assert duplicates.startswith("12 of the 12 test images have the same content as a train or val image")
    result = extract(root, tiny_encoder(), None, out=tmp_path / "c.h5", workers=0, show_progress=False)
    cache = open_cache(result.path)
    assert cache.data_warnings == [duplicates]
    report = run_probe(cache.training_data(), cache.class_names,
                       ProbeConfig(epochs=5, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0),
                       features=cache.provenance("c.h5"))
    assert report.features.data_warnings == [duplicates]
    assert f"the data set: {duplicates}" in report.warnings


def test_a_cache_written_before_the_warnings_were_kept_reads_as_none_and_is_reused(tmp_path):
    root = _copied_test(tmp_path)
    path = extract(root, tiny_encoder(), None, out=tmp_path / "c.h5", workers=0, show_progress=False).path
    with h5py.File(path, "a") as h5:
        del h5.attrs["data_warnings"]
    cache = open_cache(path)
    assert cache.data_warnings == [] and cache.provenance()["data_warnings"] == []
    again = extract(root, tiny_encoder(), None, out=path, workers=0, show_progress=False)
    assert again.reused  # the warnings are not in the fingerprint


def test_a_run_on_a_cache_that_left_out_undecodable_files_says_so(tmp_path):
    """The extraction printed the files it could not decode and kept them in the cache's ``skipped`` attribute, but
    a run trained on the cache never said its data set had lost images: one line among the cache's data warnings,
    the first files named and the rest counted, said by the run's report."""
    root = make_tree(tmp_path / "data", {"ant": 6, "bee": 6})
    broken = [root / "train" / "ant" / f"00{i}.png" for i in range(5)]
    for path in broken:
        path.write_bytes(b"not a png")
    result = extract(root, tiny_encoder(), None, out=tmp_path / "c.h5", workers=0, show_progress=False)
    cache = open_cache(result.path)
    line = ("5 files could not be decoded and are not in the cache: train/ant/000.png, train/ant/001.png, "
            "train/ant/002.png and 2 more")
    assert cache.data_warnings == [line] and cache.provenance()["data_warnings"] == [line]
    report = run_probe(cache.training_data(), cache.class_names,
                       ProbeConfig(epochs=5, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0),
                       features=cache.provenance("c.h5"))
    assert f"the data set: {line}" in report.warnings
    with h5py.File(result.path, "a") as h5:  # one file; a non-image skipped at opening is no lost image
        h5.attrs["skipped"] = '[["train/ant/000.png", "cannot decode image: x"], ["notes.txt", "not an image"]]'
    assert open_cache(result.path).data_warnings == [
        "1 file could not be decoded and is not in the cache: train/ant/000.png"]
