"""Unlabelled images: `mr2probe extract --unlabelled` caches every image of a folder in one test split, `mr2probe
predict` applies a shipped probe to them (the same predictions as on the same images labelled), and nothing trains,
scores or compares on such a cache."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from testdata import make_tree

from app.cli import main
from app.predicted_near import NearTrain
from feature_cache import UNLABELLED, open_cache

COUNTS = {"cat": 6, "dog": 6, "eel": 6}
EXTRACT = ["--encoder", "effnet-lite0", "--batch-size", "8", "--workers", "0", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A labelled cache of a small image tree, a run trained on it, and the tree's test images in nested folders
    of their own, without class folders: what a user would predict (plus a text file and a hidden file)."""
    folder = tmp_path_factory.mktemp("unlabelled")
    data = make_tree(folder / "data", COUNTS)
    labelled = folder / "labelled.h5"
    assert main(["extract", "--data", str(data), "--out", str(labelled), *EXTRACT]) == 0
    run = folder / "run"
    assert main(["train", "--features", str(labelled), "--out", str(run), "--cv", "0", "--epochs", "30",
                 "--lr", "0.05", "--wd", "0", "--seeds", "1", "--no-progress"]) == 0
    new = folder / "new"
    shutil.copytree(data / "test", new / "batch 1")  # batch 1/cat/000.png, ...: folders are not classes here
    (new / "notes.txt").write_text("not an image")
    (new / ".DS_Store").write_bytes(b"\0")
    return labelled, run, new


def test_extract_unlabelled_keeps_every_image_in_one_test_split(shipped, tmp_path, capsys):
    _, _, new = shipped
    out = tmp_path / "new.h5"
    capsys.readouterr()
    assert main(["extract", "--data", str(new), "--unlabelled", "--out", str(out), *EXTRACT]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"] == {"train": 0, "val": 0, "test": 18} and summary["skipped"] == 2
    cache = open_cache(out)
    assert cache.labelled is False and cache.class_names == [UNLABELLED]
    assert cache.sources("test") == sorted(f"batch 1/{c}/{i:03d}.png" for c in COUNTS for i in range(6))
    assert main(["extract", "--data", str(new), "--unlabelled", "--max-per-class", "3", "--out",
                 str(tmp_path / "other.h5"), *EXTRACT]) == 2
    assert "--unlabelled keeps every image in one test split" in capsys.readouterr().err
    assert not (tmp_path / "other.h5").exists()
    # --val-fraction given is refused even at its default's value (compared with the literal 0.1, it passed)
    assert main(["extract", "--data", str(new), "--unlabelled", "--val-fraction", "0.1", "--out",
                 str(tmp_path / "other.h5"), *EXTRACT]) == 2
    assert "--unlabelled keeps every image in one test split" in capsys.readouterr().err


def test_predict_on_unlabelled_images_equals_predict_on_them_labelled(shipped, tmp_path, capsys):
    labelled, run, new = shipped
    out = tmp_path / "new.h5"
    assert main(["extract", "--data", str(new), "--unlabelled", "--out", str(out), *EXTRACT]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), "--features", str(labelled), "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["predict", str(run), "--features", str(out), "--out", str(tmp_path / "b.csv")]) == 0
    text = capsys.readouterr().out
    assert "split test: 18 unlabelled images, nothing to score them against." in text
    known = list(csv.DictReader((tmp_path / "a.csv").open()))
    new_rows = list(csv.DictReader((tmp_path / "b.csv").open()))
    assert [r["source"] for r in new_rows] == ["batch 1/" + r["source"].split("/", 1)[1] for r in known]
    assert [r["predicted"] for r in new_rows] == [r["predicted"] for r in known]
    np.testing.assert_allclose([float(r["confidence"]) for r in new_rows], [float(r["confidence"]) for r in known],
                               atol=2e-6)
    assert {r["true"] for r in new_rows} == {""} and {r["correct"] for r in new_rows} == {""}
    unsure = sum(float(r["confidence"]) < 0.5 for r in new_rows)
    assert f"{unsure} of 18 predictions below 50 % confidence." in text
    assert main(["predict", str(run), "--features", str(out), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["labelled"] is False and body["images"] == 18
    # GET .../predicted's keys (a shipping round); no warning but the near-duplicate check's line, where it finds one
    near = NearTrain(**body["near_train"])
    assert body["unsure"] == unsure and body["warnings"] == ([near.describe()] if near.near else [])
    assert body["unsure_below"] == 0.5  # probe.deploy.UNSURE_BELOW, which the run page says
    counts = {name: sum(r["predicted"] == name for r in known) for name in COUNTS}
    assert {s["name"]: s["n"] for s in body["predicted"]} == counts
    assert [s["n"] for s in body["predicted"]] == sorted(counts.values(), reverse=True)  # most predicted first
    for share in body["predicted"]:
        mine = [float(r["confidence"]) for r in known if r["predicted"] == share["name"]]
        assert share["share"] == pytest.approx(len(mine) / 18)
        assert share["mean_confidence"] == (pytest.approx(np.mean(mine), abs=2e-6) if mine else None)


def test_nothing_trains_scores_or_compares_on_unlabelled_images(shipped, tmp_path, capsys):
    _, run, new = shipped
    out = tmp_path / "new.h5"
    assert main(["extract", "--data", str(new), "--unlabelled", "--out", str(out), *EXTRACT]) == 0
    capsys.readouterr()
    assert main(["train", "--features", str(out), "--out", str(tmp_path / "r")]) == 2
    assert "holds unlabelled images (mr2probe extract --unlabelled): nothing to train" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["compare", str(run), str(run), "--features", str(out)]) == 2
    assert "no labels to score a probe against" in capsys.readouterr().err
    # several runs: the cache's own problem, said of the cache, not of the first pair (a new-user round)
    copies = [tmp_path / name for name in ("a", "b")]
    for copy in copies:
        shutil.copytree(run, copy)
    assert main(["compare", str(run), *map(str, copies), "--features", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mr2probe compare: error: {out} holds unlabelled images") and " against " not in err
    assert main(["predict", str(run), "--features", str(out), "--split", "train"]) == 2
    assert "split 'train' of" in (err := capsys.readouterr().err) and "holds no image (an unlabelled cache holds" in err


def test_the_unsure_count_of_a_binary_probe_says_why_it_is_0():
    """With 2 classes the top class always has at least 50 %: "0 of 10 below 50 %" with predictions at 51.8 % read
    as confident ones (a new-user round); the summary of the CLI and the API says why."""
    from types import SimpleNamespace

    from app.shipped import predicted_summary
    from probe.deploy import unsure_note

    assert unsure_note(3) is None and unsure_note(10) is None
    assert unsure_note(2) == ("with 2 classes every prediction has at least 50 % confidence, so none counts as "
                              "unsure (below 50 %): sort the predictions by confidence to review the least sure")
    got = SimpleNamespace(predicted=np.array([0, 1, 0]), confidence=np.array([0.518, 0.542, 0.9]), warnings=["w"])
    binary = predicted_summary(SimpleNamespace(class_names=["cat", "dog"]), got)
    assert binary["unsure"] == 0 and binary["warnings"] == ["w", unsure_note(2)]
    three = predicted_summary(SimpleNamespace(class_names=["a", "b", "c"]), got)
    assert three["warnings"] == ["w"] and [s.n for s in three["predicted"]] == [2, 1, 0]
