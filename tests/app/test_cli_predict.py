"""`mr2probe predict`: a run's probe on its own test split (equal to the report's first seed), on another labelled
cache (classes matched by name, unknown ones kept apart), and refusals of features it was not trained on."""
import csv
import json
import os
import re
import shutil

import h5py
import numpy as np
import pytest

import probe.near_duplicates as nd
from app.cli import main
from feature_cache import open_cache, write_cache
from probe.numbers import interval_text, percent
from probe.predictions import Predictions

NAMES = ["apple", "bus", "cat", "dog"]
D = 8
EXTRACTOR = {"encoder": "synthetic", "weights_sha256": "0" * 64, "feature_kind": "pooled",
             "preprocess": {"resize": [8, 8]}, "normalized": False, "default_head": "linear"}
FAST = ["--epochs", "30", "--lr", "0.05", "--wd", "0", "--seeds", "2", "--no-progress"]
MEANS = np.random.default_rng(0).normal(0, 1, (len(NAMES), D)) * 1.5


def _split(rng, labels, name, d=D):
    x = MEANS[labels, :d] + rng.normal(0, 1, (len(labels), d))
    return x.astype(np.float32), labels, [f"{name}/{i}.jpg" for i in range(len(labels))]


def _cache(path, splits, names, digests=None, **attrs):
    return write_cache(path, splits, names, {**EXTRACTOR, "fingerprint": path.stem, **attrs}, dtype="float32",
                       digests=digests)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A cache and a run trained on it with a post-hoc bias, applied unchecked."""
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("predict")
    y = {name: np.repeat(np.arange(len(NAMES)), m) for name, m in (("train", 40), ("val", 20), ("test", 30))}
    cache = _cache(folder / "own.h5", {s: _split(rng, labels, s) for s, labels in y.items()}, NAMES)
    out = folder / "run"
    assert main(["train", "--features", str(cache), "--out", str(out), "--posthoc-bias", "--no-posthoc-guard",
                 *FAST]) == 0
    return cache, out


def test_own_test_split_reproduces_the_report(run, tmp_path, capsys):
    cache, out = run
    csv_path = tmp_path / "p.csv"
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--out", str(csv_path)]) == 0
    text = capsys.readouterr().out
    assert "with its post-hoc bias" in text and "split test: 120 images" in text
    assert "equal the report's first seed on 120 of 120 images." in text
    rows = list(csv.DictReader(csv_path.open()))
    assert list(rows[0]) == ["index", "source", "true", "predicted", "confidence", "correct"]
    stored = Predictions.load(out)
    assert [r["predicted"] for r in rows] == [NAMES[i] for i in stored.predicted[0]]
    assert [r["source"] for r in rows] == open_cache(cache).sources("test")
    np.testing.assert_allclose([float(r["confidence"]) for r in rows], stored.confidence, atol=5e-7)
    accuracy = np.mean([r["correct"] == "1" for r in rows])
    assert f"Accuracy {percent(accuracy, 1)} %" in text
    report = json.loads((out / "report.json").read_text())
    # F1 as a fraction, as mr2probe report shows it (it was in percent here; a new-user round)
    header = next(line for line in text.splitlines() if line.startswith("class "))
    assert header.split()[-7:] == ["precision", "%", "[95", "%]", "F1", "[95", "%]"]
    rows_shown = text.splitlines()[text.splitlines().index(header) + 1:][:3]
    assert all(re.search(r" ((0|1)\.\d{3} \[[01]\.\d\d, [01]\.\d\d\]|—)$", line) for line in rows_shown), rows_shown
    assert accuracy == pytest.approx(report["seeds"]["metrics"]["overall"]["per_seed"][0])
    # the calibration of the scored images, here the report's own (a new-user round: scores had none)
    assert main(["predict", str(out), "--features", str(cache), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    scored = answer["calibration"]
    # each shown class's precision and F1 with the intervals --json gives (precision_recall_f1_intervals): bare before
    by_name = {c["name"]: c for c in answer["per_class"]}
    for line in rows_shown:
        c = by_name[line.split()[0]]
        assert line.endswith(f" {percent(c['precision'], 1)} {interval_text(c['precision_ci'])} "
                             f"{c['f1']:.3f} [{c['f1_ci'][0]:.2f}, {c['f1_ci'][1]:.2f}]"), (line, c)
    assert scored["ece"] == pytest.approx(report["calibration"]["ece"], abs=1e-5)
    # NLL and top-k from the true classes' logits, read chunk by chunk (they were null: a shipping round)
    assert scored["nll"] == pytest.approx(report["calibration"]["nll"], rel=1e-5)
    assert (scored["top_k"], scored["top_k_accuracy"]) == (report["calibration"]["top_k"],
                                                           report["calibration"]["top_k_accuracy"])
    assert [b["count"] for b in scored["bins"]] == [b["count"] for b in report["calibration"]["bins"]]
    assert f"Calibration on these images: ECE {percent(scored['ece'])}%" in text


def test_predict_streams_the_split_in_inference_chunks(run, tmp_path, capsys, monkeypatch):
    """The split is never loaded whole: chunks of 7 rows (120 images, a short last chunk) give the same
    predictions as the report's."""
    from feature_cache.store import FeatureCache

    cache, out = run
    monkeypatch.setattr("probe.trainer._chunk_rows", lambda width: 7)
    monkeypatch.setattr(FeatureCache, "load", lambda *a, **k: pytest.fail("predict loaded the whole split"))
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--out", str(tmp_path / "p.csv")]) == 0
    assert "equal the report's first seed on 120 of 120 images." in capsys.readouterr().out


def test_another_labelled_cache_matches_classes_by_name(run, tmp_path, capsys):
    _, out = run
    rng = np.random.default_rng(2)
    names = ["dog", "zebra", "apple"]  # another order, a class the run does not have, two it lacks here
    labels = np.repeat([0, 1, 2], [5, 3, 6])
    split = _split(rng, np.array([3, 0, 0])[labels], "new")  # zebra images drawn like apples
    cache = _cache(tmp_path / "new.h5", {"test": (split[0], labels, split[2])}, names)
    csv_path = tmp_path / "p.csv"
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--out", str(csv_path), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["images"] == 14 and scores["n"] == 11 and scores["unknown"] == {"zebra": 3}
    assert scores["matches_report"] is None  # other images: nothing to reproduce
    assert scores["warnings"] == []  # the keys of GET /api/runs/{id}/scores (a shipping round: it was left out)
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["true"] for r in rows] == ["dog"] * 5 + ["zebra"] * 3 + ["apple"] * 6
    assert [r["correct"] for r in rows[5:8]] == ["", "", ""]
    right = sum(r["correct"] == "1" for r in rows)
    assert scores["accuracy"] == pytest.approx(right / 11)
    per_class = {c["name"]: c["n"] for c in scores["per_class"]}
    assert per_class == {"apple": 6, "bus": 0, "cat": 0, "dog": 5}
    # each class's precision, recall and F1 with its interval (precision_recall_f1_intervals; a zebra image wrong
    # wherever predicted, one more true class): --json gave them bare
    from probe.uncertainty import precision_recall_f1_intervals

    names = [c["name"] for c in scores["per_class"]]
    known = [names.index(r["true"]) if r["true"] in names else len(names) for r in rows]
    want = precision_recall_f1_intervals(np.array(known), np.array([names.index(r["predicted"]) for r in rows]),
                                         len(names) + 1)
    for key in ("precision", "recall", "f1"):
        for row, ends in zip(scores["per_class"], want[key]):
            assert (row[f"{key}_ci"] is None) if np.isnan(ends).any() else np.allclose(row[f"{key}_ci"], ends), key


@pytest.mark.parametrize("attrs, d, message", [
    ({"weights_sha256": "1" * 64}, D, "another extractor"),
    ({"preprocess": {"resize": [16, 16]}}, D, "another extractor"),
    ({}, D - 1, "takes 8-d features; these have 7"),
])
def test_features_the_run_was_not_trained_on_are_refused(run, tmp_path, capsys, attrs, d, message):
    _, out = run
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(len(NAMES)), 3)
    cache = _cache(tmp_path / "other.h5", {"test": _split(rng, labels, "t", d)}, NAMES, **attrs)
    assert main(["predict", str(out), "--features", str(cache)]) == 2
    assert message in capsys.readouterr().err


def test_scores_on_the_runs_own_train_or_val_images_are_flagged(run, capsys):
    cache, out = run
    for split, use in (("train", "trained on them"),
                       ("val", "selected on them (it never trained on them, but its hyper-parameters and thirds")):
        capsys.readouterr()
        assert main(["predict", str(out), "--features", str(cache), "--split", split]) == 0
        err = capsys.readouterr().err
        assert f"warning: These are the {split} images of the run's own cache: the probe was {use}" in err
    assert main(["predict", str(out), "--features", str(cache)]) == 0
    assert "warning" not in capsys.readouterr().err  # its own test split: nothing to flag


def test_scores_on_val_name_the_bias_and_temperature_fitted_there(run, tmp_path, capsys):
    """The post-hoc bias and the temperature are fitted on the validation images: scored there, the warning said
    only that hyper-parameters and thirds were chosen on them (an audit round), never that the shipped bias and
    temperature were fitted on the very images scored."""
    cache, out = run
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--split", "val"]) == 0
    err = capsys.readouterr().err
    assert "thirds were chosen on them, and its post-hoc bias was fitted on them)" in err
    scaled = tmp_path / "scaled"
    assert main(["train", "--features", str(cache), "--out", str(scaled), "--temperature-scaling", *FAST]) == 0
    assert json.loads((scaled / "report.json").read_text())["calibration"]["temperature_scaling"]["applied"]
    capsys.readouterr()
    assert main(["predict", str(scaled), "--features", str(cache), "--split", "val"]) == 0
    assert "thirds were chosen on them, and its temperature was fitted on them)" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert main(["train", "--features", str(cache), "--out", str(plain), *FAST]) == 0
    capsys.readouterr()
    assert main(["predict", str(plain), "--features", str(cache), "--split", "val"]) == 0
    assert "thirds were chosen on them), so these scores" in capsys.readouterr().err  # nothing fitted there


def test_scores_on_the_runs_images_in_another_cache_of_its_data_set_are_flagged(tmp_path, capsys):
    """Two extractions of one data set (another seed) share images across splits: scored on the other cache's test
    split, a probe read 100 % on its own training images without a word (a new-user round). The run keeps its
    train and val sources' digests (seen_sources.npz) and predict counts the scored images among them."""
    from probe.seen import SEEN_FILE, SeenSources, source_digests

    rng = np.random.default_rng(4)
    y = {name: np.repeat(np.arange(len(NAMES)), m) for name, m in (("train", 10), ("val", 5), ("test", 5))}
    splits = {s: _split(rng, labels, s) for s, labels in y.items()}
    own = _cache(tmp_path / "seed0.h5", splits, NAMES, dataset_fingerprint="d" * 64)
    out = tmp_path / "run"
    assert main(["train", "--features", str(own), "--out", str(out), *FAST]) == 0
    seen = SeenSources.load(out)
    assert set(seen.digests) == {"train", "val"}
    np.testing.assert_array_equal(seen.digests["train"], source_digests(splits["train"][2]))
    # the other extraction's test split: 7 of the run's train images, 3 of its val images, 2 of its test images
    picked = [("train", range(7)), ("val", range(3)), ("test", range(2))]
    x = np.concatenate([splits[s][0][list(r)] for s, r in picked])
    labels = np.concatenate([splits[s][1][list(r)] for s, r in picked])
    names = [splits[s][2][i] for s, r in picked for i in r]
    said = ("warning: Of the 12 images scored here (another cache of the run's data set), 7 were among the "
            "images it was trained on and 3 were among those its hyper-parameters and thirds were chosen on: "
            "these scores overstate its accuracy on new images")
    # another data set with the run's classes (its folder zipped: another content fingerprint) holding the same
    # paths: said if they are the same images; other classes: other images named alike, nothing said
    alike = ("warning: Of the 12 images scored here (a cache of another data set with the run's classes), 7 have the "
             "path of one of the images it was trained on and 3 have the path of one of those its hyper-parameters "
             "and thirds were chosen on: if they are the same images (its data set copied, zipped or changed since), "
             "these scores overstate its accuracy on new images")
    renamed = [*NAMES[:-1], "another"]
    # "g": the data set zipped with its top folder, every path under data/ (a review: exact paths missed it)
    for dataset, classes, warned, top in (("d" * 64, NAMES, said, ""), ("e" * 64, NAMES, alike, ""),
                                          ("f" * 64, renamed, None, ""), ("g" * 64, NAMES, alike, "data/")):
        other = _cache(tmp_path / f"seed1_{dataset[0]}.h5", {"test": (x, labels, [top + n for n in names])}, classes,
                       dataset_fingerprint=dataset)
        capsys.readouterr()
        assert main(["predict", str(out), "--features", str(other)]) == 0
        err = capsys.readouterr().err
        assert (warned in err) if warned else "images scored here" not in err, err
    (out / SEEN_FILE).unlink()  # a run before the digests: no check, no error
    assert main(["predict", str(out), "--features", str(tmp_path / "seed1_d.h5")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_new_images_named_like_the_training_ones_are_matched_by_their_bytes_where_both_caches_keep_digests(
        tmp_path, capsys):
    """New images named like the training ones (img_000.jpg) were said to "have the path of one of the images it was
    trained on" (a new-user round): the cache keeps each image's content digest, the run its train and val images',
    and predict compares the bytes where both have them, naming how many are byte-identical; paths otherwise.
    Caches made by hand (write_cache) keep the digests they are given: they fell back to paths."""
    from probe.seen import SeenSources

    rng = np.random.default_rng(5)
    y = {name: np.repeat(np.arange(len(NAMES)), m) for name, m in (("train", 10), ("val", 5), ("test", 5))}
    splits = {s: _split(rng, labels, s) for s, labels in y.items()}
    contents = {s: rng.integers(0, 256, (len(labels), 16), dtype=np.uint8) for s, labels in y.items()}
    own = _cache(tmp_path / "own.h5", splits, NAMES, contents, dataset_fingerprint="d" * 64)
    out = tmp_path / "run"
    assert main(["train", "--features", str(own), "--out", str(out), *FAST]) == 0
    assert SeenSources.load(out).contents is not None
    picked = [("train", range(7)), ("val", range(3)), ("test", range(2))]
    x = np.concatenate([splits[s][0][list(r)] for s, r in picked])
    labels = np.concatenate([splits[s][1][list(r)] for s, r in picked])
    names = [splits[s][2][i] for s, r in picked for i in r]  # the training images' names
    new = rng.integers(0, 256, (len(names), 16), dtype=np.uint8)  # other bytes: new images
    same = np.concatenate([contents[s][list(r)] for s, r in picked])  # the run's own images' bytes
    said = ("warning: Of the 12 images scored here, 7 are byte-identical to one of the images it was trained on "
            "and 3 are byte-identical to one of those its hyper-parameters and thirds were chosen on: these scores "
            "overstate")
    for kept, warned in ((new, None), (same, said)):
        other = tmp_path / f"other{len(list(tmp_path.glob('other*')))}.h5"
        _cache(other, {"test": (x, labels, names)}, NAMES, {"test": kept}, dataset_fingerprint="e" * 64)
        capsys.readouterr()
        assert main(["predict", str(out), "--features", str(other)]) == 0
        err = capsys.readouterr().err
        assert (warned in err) if warned else "images scored here" not in err, err
    # a cache without digests: the paths, worded as before
    plain = _cache(tmp_path / "plain.h5", {"test": (x, labels, names)}, NAMES, dataset_fingerprint="e" * 64)
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(plain)]) == 0
    assert "7 have the path of one of the images it was trained on" in capsys.readouterr().err


def test_the_runs_images_in_another_folder_layout_are_flagged(tmp_path, capsys):
    """A run trained on train/ and test/ folders, scored on the same files copied into one folder of class folders
    (digits: 283 of 359 scored images were ones it trained or selected on, only the leading split folder differed)
    went without a word (a new-user round). A file of the same name in another class folder is another image."""
    rng = np.random.default_rng(6)
    y = {name: np.repeat(np.arange(len(NAMES)), m) for name, m in (("train", 10), ("val", 5), ("test", 5))}
    splits = {}
    for s, labels in y.items():
        x, _, _ = _split(rng, labels, s)
        folder = "test" if s == "test" else "train"  # val drawn from the train/ folder, as extraction does
        splits[s] = (x, labels, [f"data/{folder}/{NAMES[c]}/{s}{i}.png" for i, c in enumerate(labels)])
    own = _cache(tmp_path / "tt.h5", splits, NAMES, dataset_fingerprint="a" * 64)
    out = tmp_path / "run"
    assert main(["train", "--features", str(own), "--out", str(out), *FAST]) == 0
    train, val, test = (splits[s][2] for s in ("train", "val", "test"))
    flat = [p.replace("data/train/", "flat/").replace("data/test/", "flat/") for p in train[:6] + val[:2] + test[:3]]
    # the same file names in another class folder: other images
    elsewhere = [p.replace(f"/{NAMES[0]}/", f"/{NAMES[1]}/") for p in flat if f"/{NAMES[0]}/" in p]
    rows = flat + elsewhere
    labels = np.array([NAMES.index(p.split("/")[1]) for p in rows])
    x = MEANS[labels] + rng.normal(0, 1, (len(rows), D))
    other = _cache(tmp_path / "flat.h5", {"test": (x.astype(np.float32), labels, rows)}, NAMES,
                   dataset_fingerprint="b" * 64)
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(other)]) == 0
    err = capsys.readouterr().err
    assert (f"warning: Of the {len(rows)} images scored here (a cache of another data set with the run's classes), 6 "
            "have the path of one of the images it was trained on and 2 have the path of one of those its "
            "hyper-parameters and thirds were chosen on (all matched on class folder and file name alone, a leading "
            "split folder such as train/ set aside): ") in err, err


def test_another_extraction_of_the_runs_data_set_is_not_matched_by_file_name_alone(tmp_path, capsys):
    """An attack round: a data set numbering each split afresh (train/cat/0.png and test/cat/0.png are other
    images), extracted twice with max_per_class and other seeds: scored on the second cache's test split, 20 of 20
    images the run never saw were said to be "among the images it was trained on (all matched on class folder and
    file name alone)". Its own data set holds each image under one path: no moved file to look for there."""
    rng = np.random.default_rng(7)

    def split(paths):
        labels = np.array([NAMES.index(p.split("/")[1]) for p in paths])
        return (MEANS[labels] + rng.normal(0, 1, (len(paths), D))).astype(np.float32), labels, paths

    own = _cache(tmp_path / "own.h5", {
        "train": split([f"train/{c}/{i}.png" for c in NAMES for i in range(0, 5)]),
        "val": split([f"train/{c}/{i}.png" for c in NAMES for i in range(5, 7)]),
        "test": split([f"test/{c}/{i}.png" for c in NAMES for i in range(5, 10)])}, NAMES,
        dataset_fingerprint="a" * 64)
    out = tmp_path / "run"
    assert main(["train", "--features", str(own), "--out", str(out), *FAST]) == 0
    other = _cache(tmp_path / "other.h5", {  # another subset of the same data set: test 0-4, never trained on
        "train": split([f"train/{c}/{i}.png" for c in NAMES for i in range(10, 15)]),
        "test": split([f"test/{c}/{i}.png" for c in NAMES for i in range(0, 5)])}, NAMES,
        dataset_fingerprint="a" * 64)
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(other)]) == 0
    assert "images scored here" not in capsys.readouterr().err
    assert main(["predict", str(out), "--features", str(other), "--split", "train"]) == 0  # 10-14: not seen either
    assert "images scored here" not in capsys.readouterr().err


def test_the_train_split_of_a_run_that_carved_its_val_says_which_images_only_chose(tmp_path, capsys):
    """With no val split the run carves val out of train: scored on its own cache's train split, those images were
    said to be trained on (a review); the warning counts them apart."""
    from probe.splits import carved_mask
    from probe import ProbeConfig

    rng = np.random.default_rng(5)
    y = {name: np.repeat(np.arange(len(NAMES)), m) for name, m in (("train", 20), ("test", 5))}
    splits = {s: _split(rng, labels, s) for s, labels in y.items()}
    splits["val"] = (np.zeros((0, D), np.float32), np.zeros(0, np.int64), [])
    own = _cache(tmp_path / "carved.h5", splits, NAMES, dataset_fingerprint="c" * 64)
    out = tmp_path / "run"
    assert main(["train", "--features", str(own), "--out", str(out), *FAST]) == 0
    config = ProbeConfig(seeds=[0, 1])
    val = int(carved_mask(y["train"], config.val_fraction, config.seeds[0]).sum())
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(own), "--split", "train"]) == 0
    assert (f"warning: Of the 80 images scored here (the train split of the run's own cache), {80 - val} were among "
            f"the images it was trained on and {val} were among those its hyper-parameters and thirds were chosen "
            "on: ") in capsys.readouterr().err


def test_bad_requests_are_one_line_errors(run, tmp_path, capsys):
    cache, out = run
    assert main(["predict", str(out), "--features", str(cache), "--split", "holdout"]) == 2
    assert "has no split 'holdout'; it has train, val, test" in capsys.readouterr().err
    assert main(["predict", str(out), "--features", str(cache), "--limit", "0"]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err
    assert main(["predict", str(out), "--features", str(cache), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder; give a file name, e.g. {tmp_path / 'predictions.csv'}" in \
        capsys.readouterr().err
    assert main(["predict", str(out), "--features", str(cache), "--out", str(tmp_path / "no" / "p.csv")]) == 2
    assert f"the folder {tmp_path / 'no'} does not exist" in capsys.readouterr().err
    (tmp_path / "file.csv").write_text("")
    assert main(["predict", str(out), "--features", str(cache), "--out", str(tmp_path / "file.csv" / "p.csv")]) == 2
    assert f"{tmp_path / 'file.csv'} is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "file.csv").unlink()
    assert main(["predict", str(out), "--features", str(cache), "--out", ""]) == 2  # not silently ignored
    assert "is a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no temporary file left
    assert main(["predict", str(tmp_path), "--features", str(cache)]) == 2
    assert "no report.json" in capsys.readouterr().err


def test_compare_two_runs_on_another_cache(run, tmp_path, capsys):
    """`mr2probe compare A B --features CACHE`: both shipped probes on the cache's images of classes they know,
    paired; every accuracy equals what `mr2probe predict` scores for each."""
    cache, out = run
    other = tmp_path / "other"
    assert main(["train", "--features", str(cache), "--out", str(other), *FAST[:-3], "--seeds", "1",
                 "--temperature-scaling", "--no-progress"]) == 0
    rng = np.random.default_rng(5)
    names = ["dog", "zebra", "apple", "bus", "cat"]
    labels = np.repeat(np.arange(5), 8)
    x, _, sources = _split(rng, np.array([3, 0, 0, 1, 2])[labels], "new")
    new = _cache(tmp_path / "new.h5", {"test": (x, labels, sources)}, names)
    scores = {}
    for name, run_dir in (("base", out), ("other", other)):
        capsys.readouterr()
        assert main(["predict", str(run_dir), "--features", str(new), "--json"]) == 0
        scores[name] = json.loads(capsys.readouterr().out)
    assert main(["compare", str(out), str(other), "--features", str(new), "--json"]) == 0
    captured = capsys.readouterr()
    comparison = json.loads(captured.out)
    assert "8 images of classes the runs do not have are left out." in comparison["warnings"]
    for side in ("base", "other"):
        assert comparison["metrics"]["overall"][side] == pytest.approx(scores[side]["accuracy"])
        assert comparison["metrics"]["balanced"][side] == pytest.approx(scores[side]["balanced"])
        per_class = {c["name"]: c["accuracy"] for c in scores[side]["per_class"]}
        assert {c["name"]: c[side] for c in comparison["per_class"]} == pytest.approx(per_class)
        # each probe's own intervals, as predict gives them
        assert comparison["metrics"]["overall"][f"{side}_ci"] == pytest.approx(scores[side]["accuracy_ci"])
        assert comparison["metrics"]["balanced"][f"{side}_ci"] == pytest.approx(scores[side]["balanced_ci"])
        own = sorted([c["name"], *c[f"{side}_ci"]] for c in comparison["per_class"] if c[f"{side}_ci"])
        given = sorted([c["name"], *c["accuracy_ci"]] for c in scores[side]["per_class"] if c["accuracy_ci"])
        assert [row[0] for row in own] == [row[0] for row in given] and len(own) == 4  # zebra: no images
        assert [v for row in own for v in row[1:]] == pytest.approx([v for row in given for v in row[1:]])
        # the calibration is each shipped head's on these images, as predict scores it (it was the runs' test splits')
        for key in ("accuracy", "confidence", "ece", "ece_ci"):
            assert comparison["calibration"][side][key] == pytest.approx(scores[side]["calibration"][key]), key
        # and the temperature each run's confidences include, as predict says it
        scaled = comparison["calibration"][side]["temperature_scaling"]
        assert scaled == scores[side]["calibration"]["temperature_scaling"] and (scaled is None) == (side == "base")
    assert comparison["discordant"]["images"] == 32 and comparison["metrics"]["overall"]["delta_ci"] is not None
    assert f"scored on {new}, split test (32 images)" in comparison["grouping"]["note"]
    assert comparison["scored_on"] == f"{new}, split test (32 images)"
    assert re.search(r"The runs (differ on \d+ of|agree on every one of the) 32 images", comparison["verdict_text"])
    assert main(["compare", str(out), str(other), "--features", str(new)]) == 0
    text = capsys.readouterr().out
    assert "accuracy (%) of the shipped probes (first seed) on" in text
    assert "warning: 8 images of classes the runs do not have are left out." in text
    assert f"(each run's shipped head on {new}, split test (32 images))" in " ".join(text.split())  # wrapped
    md = tmp_path / "cmp.md"
    assert main(["compare", str(out), str(other), "--features", str(new), "--format", "md", "--out", str(md)]) == 0
    assert f"## Accuracy (%) of the shipped probes (first seed) on {new}" in md.read_text()  # the path as it is
    # several runs on the same images: each row the pairwise comparison on them, each run's warnings after the table
    # (a copy of the other run in a folder of its own: the base itself is no row, refused)
    capsys.readouterr()
    third = tmp_path / "third"
    shutil.copytree(other, third)
    assert main(["compare", str(out), str(other), str(third), "--features", str(new), "--json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert many["comparisons"][0] == comparison and many["title"].startswith("accuracy (%) of the shipped probes")
    assert main(["compare", str(out), str(other), str(third), "--features", str(new)]) == 0
    captured = capsys.readouterr()
    assert "8 images of classes the runs do not have are left out." in " ".join(captured.out.split())
    assert main(["compare", str(out), str(other), str(out), "--features", str(new)]) == 2
    assert f"{out} is the base run {out}: leave it out of the runs compared with it" in capsys.readouterr().err
    # the rows as Markdown or HTML say the same warnings, once each with the runs they are of (they had none)
    for fmt in ("md", "html"):
        assert main(["compare", str(out), str(other), str(third), "--features", str(new), "--format", fmt]) == 0
        document = capsys.readouterr().out
        said = re.sub(r"</dt><dd>", ": ", re.sub(r"\*\*", "", document))  # a label and its text, as Markdown
        assert f"Warning ({other}, {third}): 8 images of classes the runs do not have are left out." in said, said


def test_compare_on_a_cache_refuses_runs_of_other_classes(run, tmp_path, capsys):
    cache, out = run
    rng = np.random.default_rng(6)
    y = {s: np.repeat(np.arange(3), 20) for s in ("train", "val", "test")}
    three = _cache(tmp_path / "three.h5", {s: _split(rng, labels, s) for s, labels in y.items()}, NAMES[:3])
    other = tmp_path / "three_run"
    assert main(["train", "--features", str(three), "--out", str(other), *FAST]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), str(other), "--features", str(cache)]) == 2
    assert "runs have different classes and cannot be compared" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert main(["compare", str(out), str(copy), str(other)]) == 2  # which of several runs
    assert f"{other} against {out}: " in capsys.readouterr().err


def test_compare_refuses_runs_on_two_data_sets_with_the_same_file_names(tmp_path, capsys):
    """Two versions of a data set (same class folders and file names, other images): `compare` cannot pair their
    test images, and says so, instead of an interval and a sign test on two different image sets."""
    rng = np.random.default_rng(7)
    y = {name: np.repeat(np.arange(len(NAMES)), 10) for name in ("train", "val", "test")}
    runs = []
    for version in ("1", "2"):
        cache = _cache(tmp_path / f"v{version}.h5", {s: _split(rng, labels, s) for s, labels in y.items()}, NAMES,
                       dataset_fingerprint=version * 64)
        runs.append(tmp_path / f"run{version}")
        assert main(["train", "--features", str(cache), "--out", str(runs[-1]), *FAST]) == 0
    capsys.readouterr()
    assert main(["compare", *map(str, runs)]) == 2
    assert "test images of two different data sets (content fingerprints 111111111111 and 222222222222)" in \
        capsys.readouterr().err


def test_compare_pairs_runs_on_two_versions_of_a_data_set_with_the_same_test_split(tmp_path, capsys):
    """Training labels fixed (another data set, the same test folder): the runs before and after pair on their test
    images, whose content fingerprint (`test_fingerprint`) is the same; another test split's is refused, naming it."""
    rng = np.random.default_rng(7)
    y = {name: np.repeat(np.arange(len(NAMES)), 10) for name in ("train", "val", "test")}
    test = _split(rng, y["test"], "test")
    runs = []
    for version, test_version in (("1", "a"), ("2", "a"), ("3", "b")):
        splits = {s: _split(rng, labels, s) for s, labels in y.items() if s != "test"}
        cache = _cache(tmp_path / f"v{version}.h5", {**splits, "test": test}, NAMES, dataset_fingerprint=version * 64,
                       test_fingerprint=test_version * 64)
        runs.append(tmp_path / f"run{version}")
        assert main(["train", "--features", str(cache), "--out", str(runs[-1]), *FAST]) == 0
    capsys.readouterr()
    assert main(["compare", str(runs[0]), str(runs[1]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["overall"]["delta_ci"] is not None
    assert main(["compare", str(runs[0]), str(runs[2])]) == 2
    err = capsys.readouterr().err
    assert ("test splits that differ in their file names, labels or image content (test fingerprints aaaaaaaaaaaa "
            "and bbbbbbbbbbbb)") in err
    # the way to a paired comparison all the same: both shipped probes on one cache (a new-user round: test labels
    # fixed between the versions, the refusal said 'other content' and named no way on), and it works
    assert "mr2probe compare BASE OTHER --features CACHE.h5" in err
    assert main(["compare", str(runs[0]), str(runs[2]), "--features", str(tmp_path / "v3.h5"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["overall"]["delta_ci"] is not None


def test_compare_of_a_run_that_left_out_a_class_and_one_on_a_cache_without_it_says_how(tmp_path, capsys):
    """A run with --drop-class dog and a run on a cache without dog, scored on the very same test images, were
    refused as 'test splits that differ' with no word of why: the first run's test fingerprint is its cache's, dog's
    test images counted. The refusal says so and names the way that works, both scored on the cache without dog."""
    rng = np.random.default_rng(8)
    y = {name: np.repeat(np.arange(len(NAMES)), 10) for name in ("train", "val", "test")}
    full = {s: _split(rng, labels, s) for s, labels in y.items()}
    kept = {s: tuple(np.asarray(part)[labels != NAMES.index("dog")] for part in (x, labels, sources))
            for s, (x, labels, sources) in full.items()}
    caches = [_cache(tmp_path / "full.h5", full, NAMES, test_fingerprint="a" * 64),
              _cache(tmp_path / "without.h5", {s: (x, y_, list(src)) for s, (x, y_, src) in kept.items()},
                     NAMES[:3], test_fingerprint="b" * 64)]
    runs = [tmp_path / "dropped", tmp_path / "other"]
    assert main(["train", "--features", str(caches[0]), "--out", str(runs[0]), "--drop-class", "dog", *FAST]) == 0
    assert main(["train", "--features", str(caches[1]), "--out", str(runs[1]), *FAST]) == 0
    capsys.readouterr()
    assert main(["compare", *map(str, runs)]) == 2
    assert ("The base run left out dog, whose test images its cache's fingerprints cover too: to pair the runs on "
            "the test images they share, score both on the cache without them: mr2probe compare BASE OTHER "
            "--features CACHE.h5 (the API: cache=ID).") in capsys.readouterr().err
    assert main(["compare", *map(str, runs), "--features", str(caches[1]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["overall"]["delta_ci"] is not None


def test_labels_that_differ_from_the_runs_classes_only_in_case_get_a_hint():
    """'3 images of classes the run does not have: Bird (3)' left the user guessing (a new-user round)."""
    from app.shipped import _case_hint

    assert _case_hint(["Bird", "horse"], ["bird", "cat"]) == (
        "Labels match the run's classes by exact name: 'Bird' is not 'bird' (rename the labels or folders).")
    assert _case_hint(["horse"], ["bird", "cat"]) is None


def test_an_out_that_is_a_fifo_is_written_through_not_replaced(run, tmp_path):
    """The CSV was written beside the target and renamed over it: a FIFO (and /dev/full, as root) became a regular
    file (an attack round). It is written through, as report and compare write."""
    import os
    import stat
    import threading

    cache, out = run
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    assert main(["predict", str(out), "--features", str(cache), "--out", str(fifo)]) == 0
    reader.join(30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got and got[0].splitlines()[0] == "index,source,true,predicted,confidence,correct"
    assert len(got[0].splitlines()) == 121


def test_one_image_of_an_unknown_class_is_one_image(run, tmp_path, capsys):
    """'1 images of classes the run does not have' (a new-user round)."""
    _, out = run
    labels = np.array([0, 0, 1])
    split = _split(np.random.default_rng(3), np.array([3, 0])[labels], "new")
    cache = _cache(tmp_path / "one.h5", {"test": (split[0], labels, split[2])}, ["dog", "zebra"])
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--out", str(tmp_path / "p.csv")]) == 0
    assert "\n1 image of classes the run does not have, not scored: zebra (1)." in capsys.readouterr().out


def test_images_of_an_unknown_class_are_named_in_the_precision_they_count_against(run, tmp_path, capsys):
    """'15 images of classes the run does not have, not scored: frog (15).' and cat's precision 46 %: the frogs
    called cat counted against it, which nothing said (a data-set-iteration round: a class added to the folder)."""
    import csv

    _, out = run
    labels = np.array([0, 0, 1, 1, 1])
    split = _split(np.random.default_rng(3), np.array([3, 0])[labels], "new")
    cache = _cache(tmp_path / "added.h5", {"test": (split[0], labels, split[2])}, ["dog", "zebra"])
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--out", str(tmp_path / "p.csv")]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    went = [name for name in NAMES if any(r["predicted"] == name and r["true"] == "zebra" for r in rows)]
    counts = ", ".join(f"{name} ({sum(r['predicted'] == name for r in rows if r['true'] == 'zebra')})"
                       for name in went)
    assert ("\n3 images of classes the run does not have, not scored: zebra (3). Each counts as a wrong prediction in "
            f"the precision of the class it was predicted as: {counts}.") in text


def test_a_class_renamed_since_the_run_gets_a_hint(run, tmp_path, capsys):
    """A class folder renamed after the run ('dog' to 'puppy'): its images were 'of classes the run does not have'
    and dog 'a class without images here', with no word on why (a data-set-iteration round)."""
    _, out = run
    labels = np.repeat(np.arange(4), 3)
    split = _split(np.random.default_rng(3), labels, "new")
    cache = _cache(tmp_path / "renamed.h5", {"test": (split[0], labels, split[2])}, ["apple", "bus", "cat", "puppy"])
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache)]) == 0
    text = capsys.readouterr().out
    assert ("images of classes the run does not have, not scored: puppy (3). Each counts as a wrong prediction in the "
            "precision of the class it was predicted as: dog (3). Most of them (3 of 3) were predicted as 'dog', "
            "which has no images here: a class renamed since the run? Labels match the run's classes by name: give "
            "it its old name back (rename the folder or labels and extract again).\n") in text


def test_the_renamed_hint_for_a_class_whose_name_holds_a_slash_points_to_a_manifest():
    """A run on Fashion-MNIST's idx files has a class 'T-shirt/top'; scored on class folders, whose 'T-shirt-top'
    could not be named so, the hint said 'rename the folder' (a new-user round)."""
    from types import SimpleNamespace

    from app.shipped import unknown_hint

    scores = SimpleNamespace(unknown={"T-shirt-top": 5}, unknown_predicted={"T-shirt/top": 4, "Pullover": 1},
                             per_class=[SimpleNamespace(name="T-shirt/top", n=0), SimpleNamespace(name="Bag", n=5)])
    assert unknown_hint(scores, ["T-shirt/top", "Bag", "Pullover"]).endswith(
        "give it its old name back (label its images so in a CSV manifest (no folder's name holds '/') and extract "
        "again).")


def test_probabilities_add_every_class_column_as_predict_proba(run, tmp_path, capsys):
    """--probabilities: a column p(<class>) per class, the run's probe's softmax (scikit-learn's predict_proba):
    rows sum to 1, their maximum is the confidence and its class the prediction (a new-user round missed them)."""
    from probe.deploy import RunProbe

    cache, out = run
    csv_path = tmp_path / "p.csv"
    assert main(["predict", str(out), "--features", str(cache), "--out", str(csv_path), "--probabilities"]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert list(rows[0])[6:] == [f"p({name})" for name in NAMES]
    proba = np.array([[float(r[f"p({name})"]) for name in NAMES] for r in rows])
    x, _ = open_cache(cache).load("test")
    np.testing.assert_allclose(proba, RunProbe.load(out).predict_proba(x), atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert [NAMES[i] for i in proba.argmax(axis=1)] == [r["predicted"] for r in rows]
    np.testing.assert_allclose(proba.max(axis=1), [float(r["confidence"]) for r in rows], atol=1e-6)
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--probabilities"]) == 2
    assert "--probabilities adds columns to the CSV of --out: give --out FILE.csv" in capsys.readouterr().err


def test_long_class_names_are_shown_whole_or_cut_with_an_ellipsis():
    """'n01443537 goldfish, Carassius auratus' was cut at 20 characters without a sign of it (a scale round): the
    column takes the longest name up to 40, and a longer one is cut in its middle, its end kept ('... #17' told
    apart from '... #71'; a later scale round)."""
    from probe.report_text import cut_name, name_width

    names = ["n01443537 goldfish, Carassius auratus", "cat"]
    width = name_width(names, 20)
    assert width == len(names[0]) and cut_name(names[0], width) == names[0]
    long = "n01447017 goldfish, Carassius auratus, a longer Latin name #17"
    assert name_width([long], 20) == 40 and cut_name(long, 40) == long[:20] + "…" + long[-19:]
    assert name_width(["a"], 20) == 20
    # a CJK character or an emoji takes two cells: the column is measured, cut and padded in cells, so the numbers
    # beside such a name stay in line (a many-classes round)
    from rich.cells import cell_len

    from probe.report_text import name_cell

    wide = ["北京烤鸭 Peking duck served with pancakes and scallions #0158", "orca 🐋", "cat"]
    width = name_width(wide, 20)
    assert width == 40 and all(cell_len(name_cell(n, width)) == width for n in wide)
    assert name_cell(wide[0], width).endswith("#0158") and name_width(["北京烤鸭"], 5) == 8


def test_probabilities_read_back_as_the_float32s_they_are():
    """Six decimals wrote small probabilities as 0.000000 (a new-user round); then 7 significant digits read back
    as another float32 for about half of them (0.99999994 as 0.9999999): the shortest decimal of each float32."""
    from types import SimpleNamespace

    from app.shipped import csv_rows

    got = SimpleNamespace(sources=["a.png"], names=["cat"], labels=np.array([0]), predicted=np.array([0]),
                          confidence=np.array([0.99999994], dtype=np.float32),
                          probabilities=np.array([[0.99999994, 1.234567e-7, 0.1]], dtype=np.float32))
    header, row = list(csv_rows(got, ["cat", "dog", "bird"]))
    assert row[4] == "0.99999994" and row[6:] == ["0.99999994", "1.234567e-07", "0.1"]
    values = np.random.default_rng(0).random(2000).astype(np.float32)
    got.probabilities, got.confidence = values[None, :], values[:1]
    header, row = list(csv_rows(got, [str(k) for k in range(len(values))]))
    assert np.array_equal(np.array(row[6:], dtype=np.float64).astype(np.float32), values)


def test_a_reader_that_leaves_the_pipe_ends_the_command_quietly(run, tmp_path):
    """`mr2probe failures ... --json | head` printed "error: [Errno 32] Broken pipe" (a new-user round): the reader
    is done, so the command ends without an error on stderr, as `head` expects of its writer. The reader here
    (`true`) leaves before the command, seconds into its imports, writes a byte."""
    import shlex
    import subprocess
    import sys

    cache, out = run
    command = (f"{shlex.quote(sys.executable)} -m app predict {shlex.quote(str(out))} --features "
               f"{shlex.quote(str(cache))} --out {shlex.quote(str(tmp_path / 'p.csv'))} | true")  # its summary: stdout
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert "Broken pipe" not in done.stderr and "error" not in done.stderr, done.stderr
    assert done.returncode == 141  # 128 + SIGPIPE, as a shell reports a command its pipe closed


def test_a_temperature_scaled_run_predicts_its_own_calibration(run, tmp_path, capsys):
    """train --temperature-scaling: predict applies the run's temperature, so its scores of the run's own test
    split are the report's calibration (which differs from the unscaled run's), and its title says so."""
    cache, plain = run
    out = tmp_path / "scaled"
    assert main(["train", "--features", str(cache), "--out", str(out), "--posthoc-bias", "--no-posthoc-guard",
                 "--temperature-scaling", *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    scaling = report["config"]["temperature_scaling"], report["calibration"]["temperature_scaling"]
    assert scaling[0] is True and scaling[1]["applied"] and scaling[1]["temperature"] != 1.0
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)["calibration"]
    assert scored["ece"] == pytest.approx(report["calibration"]["ece"], abs=1e-5)
    assert scored["nll"] == pytest.approx(report["calibration"]["nll"], rel=1e-5)
    assert scored["nll"] != pytest.approx(json.loads((plain / "report.json").read_text())["calibration"]["nll"])
    # the scores say the temperature their confidences include (they said nothing of it: a review round)
    said = scored["temperature_scaling"]
    assert said["temperature"] == scaling[1]["temperature"] and said["before"] is None
    assert scored["text"].startswith("with its temperature: ECE ")
    assert main(["predict", str(out), "--features", str(cache)]) == 0
    assert f"with its post-hoc bias, temperature {scaling[1]['temperature']:.3g})" in capsys.readouterr().out


def test_failures_of_every_class_put_the_wrong_test_labels_first(tmp_path, capsys):
    """`failures` without --class: the mistakes on every class, the likeliest wrong labels of the test split first
    (a noisy-labels round had to ask class by class): 6 test labels flipped to another class on well-separated
    features are the first 6 rows; --predicted alone lists what went to that class."""
    rng = np.random.default_rng(3)
    y = {name: np.repeat(np.arange(len(NAMES)), m) for name, m in (("train", 40), ("val", 20), ("test", 30))}
    splits = {s: (4 * MEANS[labels] + rng.normal(0, 1, (len(labels), D)), labels, [f"{s}/{i}.jpg" for i in
                                                                                    range(len(labels))])
              for s, labels in y.items()}  # classes far apart: no image of one lies near another
    x, labels, sources = splits["test"]
    flipped = rng.choice(len(labels), 6, replace=False)
    splits["test"] = (x, np.where(np.isin(np.arange(len(labels)), flipped), (labels + 1) % 4, labels), sources)
    cache = _cache(tmp_path / "flipped.h5", splits, NAMES)
    assert main(["train", "--features", str(cache), "--out", str(tmp_path / "run"), *FAST]) == 0
    capsys.readouterr()
    assert main(["failures", str(tmp_path / "run"), "--limit", "6", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["index"] for r in rows) == sorted(flipped.tolist())
    assert [r["true"] for r in rows] == [NAMES[(labels[r["index"]] + 1) % 4] for r in rows]
    assert main(["failures", str(tmp_path / "run"), "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"every class: \d+ of 120 test images misclassified \(first seed\)", lines[0])
    assert f"labelled {rows[0]['true']}" in lines[1] and f"predicted {rows[0]['predicted']}" in lines[1]
    assert main(["failures", str(tmp_path / "run"), "--predicted", "cat", "--json"]) == 0
    assert {r["predicted"] for r in json.loads(capsys.readouterr().out)} == {"cat"}


def test_failures_data_resolves_the_folder_a_zip_was_made_from(tmp_path, capsys):
    """A cache of a zip made with its top folder records `digits/test/cat/0.png`: `failures --data .../digits` (the
    folder the zip was made from) printed .../digits/digits/test/cat/0.png, which exists nowhere (a new-user round).
    Its parent is taken where the paths start with the folder's name and lie there; elsewhere one warning says the
    files are missing and which folder the paths start in."""
    rng = np.random.default_rng(7)
    y = {name: np.repeat(np.arange(len(NAMES)), m) for name, m in (("train", 10), ("test", 10))}
    splits = {}
    for s, labels in y.items():
        x, _, _ = _split(rng, labels, s)
        splits[s] = (x, labels, [f"digits/{s}/{NAMES[c]}/{i}.png" for i, c in enumerate(labels)])
    splits["val"] = (np.zeros((0, D), np.float32), np.zeros(0, np.int64), [])
    for path in splits["test"][2]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    out = tmp_path / "run"
    assert main(["train", "--features", str(_cache(tmp_path / "zip.h5", splits, NAMES)), "--out", str(out),
                 "--epochs", "1", "--lr", "0.05", "--wd", "0", "--seeds", "1", "--no-progress"]) == 0
    listed = {}
    for data in (tmp_path, tmp_path / "digits", tmp_path / "digits" / "test"):
        capsys.readouterr()
        assert main(["failures", str(out), "--class", "cat", "--limit", "50", "--json", "--data", str(data)]) == 0
        captured = capsys.readouterr()
        listed[data] = [row["source"] for row in json.loads(captured.out)]
        assert listed[data], "no mistake to list"
        assert ("warning" in captured.err) == (data.name == "test"), captured.err
    wrong = tmp_path / "digits" / "test"
    assert listed[tmp_path / "digits"] == listed[tmp_path] and all(os.path.isfile(p) for p in listed[tmp_path])
    (tmp_path / "link").symlink_to(tmp_path / "digits")  # the folder by a symlink of another name (an attack round)
    assert main(["failures", str(out), "--class", "cat", "--limit", "50", "--json", "--data",
                 str(tmp_path / "link")]) == 0
    linked = capsys.readouterr()
    assert "warning" not in linked.err and all(os.path.isfile(row["source"]) for row in json.loads(linked.out))
    capsys.readouterr()
    assert main(["failures", str(out), "--class", "cat", "--limit", "50", "--json", "--data", str(wrong)]) == 0
    captured = capsys.readouterr()
    assert (f"warning: {len(listed[wrong])} of the {len(listed[wrong])} listed files do not exist under --data "
            f"{wrong} (such as {listed[wrong][0]}): --data must be the folder these paths start in, the one holding "
            "digits (the cache records paths inside the data set, such as digits/test/") in captured.err


def test_failures_data_warns_of_files_replaced_since_the_extraction(tmp_path, capsys, monkeypatch):
    """A test image replaced by another under the same name after the run: `failures --data` listed the new file as
    the image the run got wrong (a data-set-iteration round). The listed files are checked against the cache's
    content digests, and one warning names those that changed."""
    from feature_cache.datasets import content_digest

    rng = np.random.default_rng(7)
    y = {name: np.repeat(np.arange(len(NAMES)), m) for name, m in (("train", 10), ("test", 10))}
    splits, digests = {}, {}
    for s, labels in y.items():
        x, _, _ = _split(rng, labels, s)
        splits[s] = (x, labels, [f"{s}/{NAMES[c]}/{i}.png" for i, c in enumerate(labels)])
        for path in splits[s][2]:
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_bytes(path.encode())
        digests[s] = np.array([list(content_digest(path.encode())) for path in splits[s][2]], np.uint8)
    splits["val"] = (np.zeros((0, D), np.float32), np.zeros(0, np.int64), [])
    digests["val"] = np.zeros((0, 16), np.uint8)
    out = tmp_path / "run"
    assert main(["train", "--features", str(_cache(tmp_path / "c.h5", splits, NAMES, digests=digests)), "--out",
                 str(out), "--epochs", "1", "--lr", "0.05", "--wd", "0", "--seeds", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["failures", str(out), "--json", "--data", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    listed = [row["source"] for row in json.loads(captured.out)]
    assert len(listed) >= 2 and "warning" not in captured.err
    with open(listed[1], "ab") as replaced:
        replaced.write(b"another image")
    assert main(["failures", str(out), "--json", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().err == (
        f"warning: 1 of the {len(listed)} listed files changed since the run's cache was extracted (such as "
        f"{listed[1]}), so the images there are not those the run scored: extract the folder again for the images "
        "as they are now\n")
    # a listed file moved away since (its class folder renamed): --data is right, the file left it; the warning said
    # '--data must be the folder these paths start in' (a data-set-iteration round)
    moved = tmp_path / "elsewhere.png"
    os.replace(listed[0], moved)
    assert main(["failures", str(out), "--json", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().err.startswith(
        f"warning: 1 of the {len(listed)} listed files are no longer under --data {tmp_path} (such as {listed[0]}): "
        "moved, renamed or removed since the run's cache was extracted\n")
    # a listed file that cannot be read now (removed between the listing and the check, unreadable): the listing is
    # printed, not an OSError; and the cache's digests are read for the listed rows alone (every row was read)
    import pathlib

    from feature_cache.store import FeatureCache

    read, asked = pathlib.Path.read_bytes, []
    def failing(self):
        if str(self) == listed[1]:
            raise PermissionError(13, "denied")
        return read(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", failing)
    monkeypatch.setattr(FeatureCache, "digests", lambda self, split: asked.append(split))
    assert main(["failures", str(out), "--json", "--data", str(tmp_path)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(listed) and asked == []


def test_data_naming_a_zips_top_folder_with_a_file_moved_since(tmp_path, capsys):
    """Paths that start with --data's own name (a zip of the folder) and one file moved away since the extraction:
    the folder above was taken only where it held every file, so the warning said '--data must be the folder these
    paths start in' and every path was joined under digits/digits/ (a review). The folder holding the most of them
    is taken, and the warning names the file gone."""
    from app.commands import full_paths

    sources = [f"digits/test/{c}/{i}.png" for c in ("cat", "dog") for i in range(3)]
    for source in sources[1:]:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_bytes(b"png")
    rows = full_paths([{"source": source} for source in sources], tmp_path / "digits")
    assert [row["source"] for row in rows] == [str(tmp_path / source) for source in sources]
    assert capsys.readouterr().err == (
        f"warning: 1 of the 6 listed files are no longer under --data {tmp_path / 'digits'} (such as "
        f"{tmp_path / sources[0]}): moved, renamed or removed since the run's cache was extracted\n")


def test_data_naming_an_idx_folder_keeps_the_record_names(tmp_path, capsys):
    """A run on a Fashion-MNIST idx folder lists its images as test/08923: `failures --data` of that folder warned
    '--data must be the folder these paths start in' and printed .../fashion-mnist/test/08923, a file that exists
    nowhere (a new-user round). The rows keep the record names and a note says what they are."""
    from app.commands import full_paths

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"")
    rows = full_paths([{"source": None}, {"source": "test/08923"}], tmp_path)
    assert rows == [{"source": None}, {"source": "test/08923"}]
    assert capsys.readouterr().err == (
        f"note: --data {tmp_path} holds idx files, whose images are records, not files: each row names its idx "
        "file's split and record, from 0 (test/08923: record 8923 of t10k-images)\n")


def test_data_holding_idx_files_and_class_folders_joins_the_files_paths(tmp_path, capsys):
    """A --data folder holding idx files beside the class folders a run was extracted from kept the rows' bare
    paths (cat/a.png) under a note calling them idx records (a review): only record names are kept as they are."""
    from app.commands import full_paths

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(b"png")
    assert full_paths([{"source": "cat/a.png"}], tmp_path) == [{"source": str(tmp_path / "cat" / "a.png")}]
    assert capsys.readouterr().err == ""


def test_data_without_idx_files_for_idx_records_names_the_folder_they_need(tmp_path, capsys):
    """A run on an idx folder given --data of the folder above it said "--data must be the folder these paths start
    in, the one holding test" (there is none) and printed .../test/08923 (a review): the record names stay, and the
    warning names the idx files the folder must hold."""
    from app.commands import full_paths

    rows = full_paths([{"source": "test/08923"}, {"source": "test/00001"}], tmp_path)
    assert rows == [{"source": "test/08923"}, {"source": "test/00001"}]
    assert capsys.readouterr().err == (
        f"warning: --data {tmp_path} holds no idx files, and the rows are records of idx files (test/08923: record "
        "8923 of t10k-images): --data must be the folder holding t10k-images-idx3-ubyte[.gz]\n")


def test_images_predicted_as_a_class_absent_from_the_split_are_said(run, tmp_path, capsys):
    """The table lists the classes with images: 2 of 30 val images called a class without val images showed
    93.3 % beside every listed precision at 100 %, and nowhere the class they went to (an extremes round)."""
    _, out = run
    labels = np.repeat([0, 1], [6, 4])  # dog, apple
    drawn = np.array([3, 0])[labels]
    drawn[:3] = 1  # three dog images drawn like buses: called bus, a class without images here
    split = _split(np.random.default_rng(4), drawn, "new")
    cache = _cache(tmp_path / "absent.h5", {"test": (split[0], labels, split[2])}, ["dog", "apple"])
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--out", str(tmp_path / "p.csv")]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    to_bus = sum(r["predicted"] == "bus" for r in rows)
    assert to_bus >= 2 and {r["predicted"] for r in rows} <= {"dog", "apple", "bus"}
    assert (f"\nImages predicted as a class without images here (every one wrong, precision 0 %): bus ({to_bus})."
            in text)


def test_a_run_that_left_a_class_out_reproduces_its_report_on_its_own_test_split(run, tmp_path, capsys):
    """A run trained with --drop-class stored predictions of the other classes' test images alone: on its own cache
    the check compares those images (it read '0 of 120 images — the head or the cache changed since the run')."""
    cache, _ = run
    out = tmp_path / "without-cat"
    assert main(["train", "--features", str(cache), "--out", str(out), "--drop-class", "cat", *FAST]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache)]) == 0
    text = capsys.readouterr().out
    assert "30 images of classes the run does not have, not scored: cat (30)." in text
    assert "equal the report's first seed on 90 of 90 images." in text and "changed since the run" not in text


def test_failures_of_a_run_that_left_a_class_out_name_rows_of_its_cache_test_split(run, tmp_path, capsys,
                                                                                   monkeypatch):
    """failures --json gives each mistake's row of the cache's test split: a run without 'apple' stored predictions
    of the other classes' test images alone, and gave their positions among those (30 rows early). With --data, the
    run's cache is found and opened once for those rows and the check of the listed files (it was twice)."""
    from app import label_issues

    cache, _ = run
    out = tmp_path / "without-apple"
    assert main(["train", "--features", str(cache), "--out", str(out), "--drop-class", "apple", *FAST]) == 0
    capsys.readouterr()
    assert main(["failures", str(out), "--limit", "200", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows  # the classes overlap: mistakes to list
    sources, labels = open_cache(cache).sources("test"), open_cache(cache).labels("test")
    assert all(sources[row["index"]] == row["source"] and NAMES[labels[row["index"]]] == row["true"] != "apple"
               for row in rows)
    found = []
    real = label_issues.run_cache
    monkeypatch.setattr(label_issues, "run_cache", lambda *a, **kw: found.append(a) or real(*a, **kw))
    assert main(["failures", str(out), "--limit", "200", "--json", "--data", str(tmp_path)]) == 0
    assert [row["index"] for row in json.loads(capsys.readouterr().out)] == [row["index"] for row in rows]
    assert len(found) == 1


def test_a_run_given_as_its_report_json_is_read_as_its_folder(run, tmp_path, capsys):
    """``report`` and ``compare`` took RUN/report.json for the run; ``predict`` and ``export`` looked for
    'report.safetensors' beside it (a review): every command of one run reads it as its folder."""
    cache, out = run
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--json"]) == 0
    by_folder = json.loads(capsys.readouterr().out)
    assert main(["predict", str(out / "report.json"), "--features", str(cache), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == by_folder
    for command in (["export", "--out", str(tmp_path / "p.onnx")], ["failures", "--limit", "1"], ["report"]):
        assert main([*command, str(out / "report.json")]) == 0, command
    assert (tmp_path / "p.onnx").stat().st_size > 0


def test_a_cache_with_a_row_whose_squared_norm_overflows_float32_is_one_line(run, tmp_path, capsys):
    """One finite 3e38 value in a float32 cache was scored, with an NLL of 1.8e35 among the figures: the row is
    refused as the trainer and a registration refuse it (probe.stats.unusable_rows), in one line, exit 2."""
    _, out = run
    rng = np.random.default_rng(5)
    x, labels, sources = _split(rng, np.repeat(np.arange(len(NAMES)), 3), "test")
    huge = _cache(tmp_path / "huge.h5", {"test": (x, labels, sources)}, NAMES)
    with h5py.File(huge, "r+") as h5:  # after the write: write_cache refuses such features itself
        h5["test/features"][4, 2] = 3e38
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(huge)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "mr2probe predict: error: features hold values that are NaN, infinite or too large for float32 (a squared "
        "norm past 3.4e+38) in 1 row(s).")


def test_train_on_a_labelled_test_set_alone_says_what_it_is(tmp_path, capsys):
    """A cache of test/<class>/ folders alone (new images to score a shipped probe on): `mr2probe train` on it said
    "data needs 'train' and 'test' splits (and optionally 'val'); got ['test']" (a new-user round). It names the
    cache as a labelled test set and points at predict; nothing is written."""
    rng = np.random.default_rng(3)
    empty = (np.zeros((0, D), np.float32), np.zeros(0, np.int64), [])
    labels = np.repeat(np.arange(len(NAMES)), 3)
    cache = _cache(tmp_path / "new.h5", {"train": empty, "val": empty, "test": _split(rng, labels, "test")}, NAMES)
    assert main(["train", "--features", str(cache), "--out", str(tmp_path / "r"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mr2probe train: error: new.h5 holds a labelled test set alone (no train images") and \
        "`mr2probe predict RUN --features` scores a trained one on it." in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _half_then_full_disk(write):
    """``write`` (a Path method) that writes half its data, then fails as a full disk does."""
    import errno

    def failing(self, data, *args, **kwargs):
        write(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    return failing


@pytest.mark.parametrize("command", ["export", "report", "predict"])
def test_a_failed_write_keeps_the_out_file_that_was_there(run, tmp_path, capsys, monkeypatch, command):
    """export and report --out wrote over the file in place: a full disk or a file-size limit left half a
    probe.onnx (or page) under its name, the one there before lost, and the error did not name the file (a
    failure round). Now the old file stays whole, no temporary file is left, and the one line names the file."""
    import pathlib

    cache, out = run
    target = tmp_path / {"export": "probe.onnx", "report": "report.html", "predict": "p.csv"}[command]
    target.write_text("the file that was there")
    argv = {"export": ["export", str(out), "--out", str(target)],
            "report": ["report", str(out), "--format", "html", "--out", str(target)],
            "predict": ["predict", str(out), "--features", str(cache), "--out", str(target)]}[command]
    if command == "predict":
        class Rows:
            def __init__(self, f):
                self.f = f

            def writerows(self, rows):
                self.f.write("index,source\n0,")
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(csv, "writer", Rows)
    else:
        method = "write_bytes" if command == "export" else "write_text"
        monkeypatch.setattr(pathlib.Path, method, _half_then_full_disk(getattr(pathlib.Path, method)))
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"mr2probe {command}: error:" in err and str(target) in err and "No space left on device" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == "the file that was there"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_an_out_that_is_a_symlink_replaces_the_file_it_links_to(run, tmp_path):
    """A symlink given as --out (latest.csv -> the file a dashboard reads) became a file of its own when the CSV was
    renamed over it, the file it linked to left stale. The file it links to is replaced; the link stays."""
    cache, out = run
    target = tmp_path / "served.csv"
    target.write_text("old")
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    assert main(["predict", str(out), "--features", str(cache), "--out", str(link)]) == 0
    assert link.is_symlink() and target.read_text().splitlines()[0].startswith("index,source,true")



def test_predict_of_a_run_replaced_between_its_probe_and_its_predictions_is_the_new_runs(run, tmp_path, capsys,
                                                                                         monkeypatch):
    """predict on the run's own test split read the probe, then predictions.npz: a train --force that moved its
    run in between checked the old run's probe against the new run's predictions ("the head or the cache changed
    since the run"). Read again: the new run's probe and predictions, which agree."""
    cache, trained = run
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    real, calls = Predictions.load, []

    def load(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # another run, trained barely, moved in between the probe and its predictions
            assert main(["train", "--features", str(cache), "--out", str(out), "--force", "--epochs", "1", "--lr",
                         "0.001", "--wd", "0", "--seeds", "1", "--no-progress"]) == 0
            capsys.readouterr()  # train's own output
        return real(*args, **kwargs)

    monkeypatch.setattr(Predictions, "load", load)
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert len(calls) == 2 and got["matches_report"] == {"equal": 120, "images": 120}, got["matches_report"]
    assert got["run_id"] == json.loads((out / "report.json").read_text())["run_id"]


def _near_cache(run, tmp_path):
    """A cache of new images whose first 6 are copies (scaled) of 4 train and 2 val images of the run's cache."""
    own = open_cache(run[0])
    (x_train, y_train), (x_val, y_val) = own.load("train"), own.load("val")
    rng = np.random.default_rng(7)
    fresh, labels, _ = _split(rng, np.arange(10) % len(NAMES), "new")
    x = np.concatenate([1.3 * x_train[:4], 0.7 * x_val[:2], fresh]).astype(np.float32)
    y = np.concatenate([y_train[:4], y_val[:2], labels])
    cache = _cache(tmp_path / "new.h5", {"test": (x, y, [f"new/{i}.jpg" for i in range(len(y))])}, NAMES)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    best = (unit(x) @ unit(np.concatenate([x_train, x_val])).T).max(axis=1)  # brute force, every row at once
    return cache, best


def test_predicted_images_that_nearly_duplicate_the_runs_train_images_are_counted(run, tmp_path, capsys, monkeypatch):
    _, out = run
    cache, best = _near_cache(run, tmp_path)
    monkeypatch.setitem(nd.NEAR_DUPLICATE_THRESHOLDS, "synthetic", 0.999)
    assert (best[:6] >= 0.999).all() and (best[6:] < 0.999).all()
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--json"]) == 0
    near = json.loads(capsys.readouterr().out)["near_train"]
    assert near == {"encoder": "synthetic", "threshold": 0.999, "ratio": nd.NEAR_DUPLICATE_RATIO, "images": 16,
                    "near": 6, "sampled": None, "near_ci": None}
    assert main(["predict", str(out), "--features", str(cache)]) == 0
    assert ("Near-duplicates of the run's train or val images: 6 of the 16 images predicted may nearly or exactly "
            "duplicate one (cosine ≥ 0.999 of synthetic features, 2.5× closer than to any other image, or ≥ 0.99)"
            ) in " ".join(capsys.readouterr().out.split())
    # past the budget: a seeded sample, equal to the brute force over the same rows, said as a sample
    monkeypatch.setattr(nd, "MAX_CHECK_PRODUCTS", 5 * 240 * D)  # 160 train + 80 val rows of 8 features: 5 rows fit
    assert main(["predict", str(out), "--features", str(cache), "--json"]) == 0
    near = json.loads(capsys.readouterr().out)["near_train"]
    rows = np.sort(np.random.default_rng(nd.SAMPLE_SEED).choice(16, 5, replace=False))
    assert (near["sampled"], near["near"]) == (5, int((best[rows] >= 0.999).sum()))
    assert near["near_ci"] == [float(v) for v in nd.wilson_interval(np.array(near["near"]), np.array(5))]
    assert main(["predict", str(out), "--features", str(cache)]) == 0
    assert f"{near['near']} among 5 sampled images predicted of 16 (" in capsys.readouterr().out


def test_the_near_duplicate_line_says_scores_overstate_only_where_some_image_duplicates_one():
    """predict's line (a warning of /scores and the run page): "scores on them overstate the probe" was said of a
    cache where none of the images duplicates a train or val image."""
    from app.predicted_near import NearTrain

    said = [NearTrain(encoder="synthetic", threshold=0.9, ratio=2.5, images=16, near=near).describe()
            for near in (0, 2)]
    assert said[0] == ("Near-duplicates of the run's train or val images: 0 of the 16 images predicted may nearly or "
                       "exactly duplicate one (cosine ≥ 0.9 of synthetic features, 2.5× closer than to any other "
                       "image, or ≥ 0.99).")
    assert said[1].endswith("or ≥ 0.99); where they are copies, scores on them overstate the probe on new images."), \
        said[1]


def test_predict_says_why_it_could_not_check_near_duplicates_and_not_where_unmeasured(run, tmp_path, capsys,
                                                                                     monkeypatch):
    cache, out = run
    new, _ = _near_cache(run, tmp_path)
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(new), "--json"]) == 0  # synthetic: no measured threshold
    assert json.loads(capsys.readouterr().out)["near_train"] is None
    monkeypatch.setitem(nd.NEAR_DUPLICATE_THRESHOLDS, "synthetic", 0.999)
    moved = tmp_path / "moved.h5"
    shutil.copy(cache, moved)
    assert main(["train", "--features", str(moved), "--out", str(tmp_path / "run"), *FAST]) == 0
    moved.unlink()
    assert main(["predict", str(tmp_path / "run"), "--features", str(new)]) == 0
    text = capsys.readouterr().out
    assert ("Not checked for near-duplicates of the run's train or val images: the run's own cache cannot be "
            "read") in text
    # --json says why too, as the API's warnings do: the text's line, word for word (it had near_train null alone)
    line = next(line for line in text.splitlines() if line.startswith("Not checked for near-duplicates"))
    # predict's --features is the cache scored: the advice was to give the run's cache as it ('give it as --features
    # CACHE.h5'), which scores the run's own images; it names the file to put back
    assert line.endswith(f"is not a file here (moved, or a service cache id): put it back at {moved}).")
    shutil.copytree(tmp_path / "run", tmp_path / "copy")  # a second run of the moved cache
    assert main(["compare", str(tmp_path / "run"), str(tmp_path / "copy"), "--features", str(new), "--json"]) == 0
    said = [w for w in json.loads(capsys.readouterr().out)["warnings"] if w.startswith("Not checked")]
    assert len(said) == 1 and said[0].endswith(f"put it back at {moved}).")  # compare's --features alike
    assert main(["predict", str(tmp_path / "run"), "--features", str(new), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["near_train"] is None and got["warnings"].count(line) == 1, got["warnings"]
    shutil.copy(cache, tmp_path / "here.h5")  # the run's cache, found elsewhere: given, it is the run's own
    assert main(["predict", str(tmp_path / "run"), "--features", str(tmp_path / "here.h5"), "--json"]) == 0
    near = json.loads(capsys.readouterr().out)["near_train"]
    assert near["images"] == len(open_cache(cache).load("test")[1]) and near["sampled"] is None


def test_near_duplicates_of_a_class_the_run_left_out_are_not_its_train_images(run, tmp_path, capsys, monkeypatch):
    cache, _ = run
    monkeypatch.setitem(nd.NEAR_DUPLICATE_THRESHOLDS, "synthetic", 0.999)
    x_train, y_train = open_cache(cache).load("train")
    rows = [0, 1, 80, 81, 82]  # 2 apples, 3 cats
    assert [NAMES[k] for k in y_train[rows]] == ["apple"] * 2 + ["cat"] * 3
    new = _cache(tmp_path / "new.h5", {"test": (1.1 * x_train[rows], y_train[rows], [f"n/{i}" for i in rows])}, NAMES)
    out = tmp_path / "without-cat"
    assert main(["train", "--features", str(cache), "--out", str(out), "--drop-class", "cat", *FAST]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(new), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["near_train"]["near"] == 2


def test_compare_on_a_cache_says_predicts_near_duplicate_line_once_per_run_cache(run, tmp_path, capsys, monkeypatch):
    """`mr2probe compare --features`: the near-duplicate check predict makes of the cache, its line once for runs of
    one cache (it made none), and once per run cache, each led by its runs, where they were trained on two."""
    cache, out = run
    new, _ = _near_cache(run, tmp_path)
    monkeypatch.setitem(nd.NEAR_DUPLICATE_THRESHOLDS, "synthetic", 0.999)
    other, third = tmp_path / "other", tmp_path / "third"
    assert main(["train", "--features", str(cache), "--out", str(other), *FAST]) == 0
    shutil.copytree(other, third)
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(new)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Near-duplicates of"))
    assert main(["compare", str(out), str(other), "--features", str(new), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"].count(line) == 1
    assert main(["compare", str(out), str(other), "--features", str(new)]) == 0
    assert f"warning: {line}" in " ".join(capsys.readouterr().out.split())
    assert main(["compare", str(out), str(other), str(third), "--features", str(new), "--json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert [w["text"] for w in many["warnings"]].count(line) == 1
    # a run of another cache of the same features (a copy, another fingerprint): two checks, each naming its runs
    copy = _cache(tmp_path / "copy.h5", {s: open_cache(cache).load(s) + (open_cache(cache).sources(s),)
                                         for s in ("train", "val", "test")}, NAMES)
    elsewhere = tmp_path / "elsewhere"
    assert main(["train", "--features", str(copy), "--out", str(elsewhere), *FAST]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), str(elsewhere), "--features", str(new), "--json"]) == 0
    said = [w for w in json.loads(capsys.readouterr().out)["warnings"] if "Near-duplicates of" in w]
    ids = [json.loads((folder / "report.json").read_text())["run_id"] for folder in (out, elsewhere)]
    assert said == [f"{run_id}: {line}" for run_id in ids], said


def test_predict_on_the_runs_own_test_split_says_the_reports_check(tmp_path, capsys, monkeypatch):
    """On the run's own test split predict's near_train is the report's check (near + identical: predict counts the
    byte-identical copies among its near), not the check made again (up to ~5 s); where the report's is a sample
    or left classes out, it is made again, over every row of the split."""
    from feature_cache.store import CONTENT_DIGEST_SIZE

    monkeypatch.setitem(nd.NEAR_DUPLICATE_THRESHOLDS, "synthetic", 0.999)
    rng = np.random.default_rng(3)
    splits = {s: _split(rng, np.repeat(np.arange(len(NAMES)), m), s) for s, m in (("train", 40), ("val", 20),
                                                                                   ("test", 30))}
    x, y, sources = splits["test"]
    x[:3], x[3:5] = 1.3 * splits["train"][0][:3], splits["train"][0][3:5]  # 3 near, 2 byte-identical copies
    y[:5] = splits["train"][1][:5]
    digests = {s: rng.integers(0, 256, (len(splits[s][1]), CONTENT_DIGEST_SIZE), dtype=np.uint8) for s in splits}
    digests["test"][3:5] = digests["train"][3:5]
    cache = _cache(tmp_path / "leaky.h5", splits, NAMES, digests=digests)
    out = tmp_path / "run"
    assert main(["train", "--features", str(cache), "--out", str(out), *FAST]) == 0
    found = json.loads((out / "report.json").read_text())["near_duplicates"]
    assert (found["near"], found["identical"], found["sampled"]) == (3, 2, None)
    monkeypatch.setattr(nd, "check_rows", lambda *a, **k: pytest.fail("the report's check made again"))
    capsys.readouterr()
    assert main(["predict", str(out), "--features", str(cache), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["near_train"] == {
        "encoder": "synthetic", "threshold": 0.999, "ratio": nd.NEAR_DUPLICATE_RATIO, "images": 120, "near": 5,
        "sampled": None, "near_ci": None}
    monkeypatch.undo()
    monkeypatch.setitem(nd.NEAR_DUPLICATE_THRESHOLDS, "synthetic", 0.999)
    without = tmp_path / "without-dog"  # dog's test images are predicted, not in the report's check
    assert main(["train", "--features", str(cache), "--out", str(without), "--drop-class", "dog", *FAST]) == 0
    capsys.readouterr()
    assert main(["predict", str(without), "--features", str(cache), "--json"]) == 0
    near = json.loads(capsys.readouterr().out)["near_train"]
    assert (near["images"], near["near"]) == (120, 5)


def test_a_cache_without_near_duplicates_gets_no_warning_of_them(monkeypatch):
    """near_train's line was one of the warnings of /scores, /predicted, predict --json and compare whatever it
    found: a clean cache got 'Warning: ... 0 of the 16 images ...' on the run page. A warning where some image
    duplicates one, or where the check could not be made; none where it found none."""
    import app.predicted_near as pn

    found = {near: pn.NearTrain(encoder="synthetic", threshold=0.9, ratio=2.5, images=16, near=near)
             for near in (0, 2)}
    gone = "its cache is gone"
    for outcome, warned in (((found[0], None), []), ((found[2], None), [found[2].describe()]),
                            ((None, gone), [pn.unchecked_text(gone)]), ((None, None), [])):
        monkeypatch.setattr(pn, "_near_train", lambda *args, outcome=outcome: outcome)
        assert pn.near_train(None, None, None, "test") == (outcome[0], warned)


def test_class_names_with_white_space_at_an_end_show_in_failures_and_the_report(tmp_path, capsys):
    """Class folders 'cat ' and 'cat' are two classes: `failures` printed 'labelled cat  ' for both, the report's
    table and worst class alike; they are quoted where shown ('"cat "'), their stored names unchanged."""
    names = ["apple", "bus", "cat ", "cat"]
    rng = np.random.default_rng(4)
    splits = {s: _split(rng, np.repeat(np.arange(4), m), s) for s, m in (("train", 40), ("val", 20), ("test", 30))}
    x, labels, sources = splits["test"]
    splits["test"] = (x, np.where(labels == 3, 2, np.where(labels == 2, 3, labels)), sources)  # the cats swapped
    cache = _cache(tmp_path / "spaced.h5", splits, names)
    assert main(["train", "--features", str(cache), "--out", str(tmp_path / "run"), *FAST]) == 0
    assert '"cat "' in capsys.readouterr().out  # the report's per-class table and worst class
    assert main(["failures", str(tmp_path / "run"), "--class", "cat ", "--json"]) == 0
    assert {r["true"] for r in json.loads(capsys.readouterr().out)} == {"cat "}  # stored as it is
    assert main(["failures", str(tmp_path / "run"), "--limit", "40"]) == 0
    said = capsys.readouterr().out
    assert 'labelled "cat "' in said and 'predicted "cat "' in said and "labelled cat " in said, said


def test_a_labelled_cache_of_none_of_the_runs_classes_is_predicted_unscored(run, tmp_path, capsys):
    """predict refused a labelled cache none of whose classes is the run's ("none of the cache's classes … is one of
    the run's"), though predicting needs no labels (a new-user round): its images are predicted and counted as
    unlabelled ones are, with a warning saying why no accuracy is given; the CSV keeps each image's own label."""
    import json

    _, out = run
    rng = np.random.default_rng(4)
    strangers = _cache(tmp_path / "s.h5", {"test": _split(rng, np.arange(2), "t")}, ["x", "y"])
    said = "none of the cache's classes (x, y) is one of the run's (apple, bus, cat, dog): its labels cannot score"
    assert main(["predict", str(out), "--features", str(strangers), "--json"]) == 0
    captured = capsys.readouterr()
    got = json.loads(captured.out)
    assert got["labelled"] is False and "accuracy" not in got and sum(p["n"] for p in got["predicted"]) == 2
    assert any(w.startswith(said) for w in got["warnings"]) and f"warning: {said}" in captured.err
    csv_out = tmp_path / "p.csv"
    assert main(["predict", str(out), "--features", str(strangers), "--out", str(csv_out)]) == 0
    rows = list(csv.DictReader(csv_out.open()))
    assert sorted(r["true"] for r in rows) == ["x", "y"] and all(r["correct"] == "" for r in rows)
    assert f"warning: {said}" in capsys.readouterr().err
    assert main(["predict", str(out), "--features", str(strangers)]) == 0
    assert "2 images of none of the run's classes, nothing to score them against" in capsys.readouterr().out
