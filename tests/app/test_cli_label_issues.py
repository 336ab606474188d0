"""`mr2probe label-issues`: a run's likeliest wrong train + val labels, out of fold, through app.cli.main."""
import json
import shutil

import numpy as np
import pytest

from app.cli import main
from feature_cache import open_cache, write_cache

K, D = 4, 16
NAMES = ["apple", "bus", "cat", "dog"]
FAST = ["--epochs", "40", "--lr", "0.05", "--wd", "0", "--seeds", "1", "--no-progress"]
CAT, DOG = 2, 3


def _write(path, fingerprint="t", seed=0, images=None):
    """A cache whose train and val label 25 % of the cats as dogs; returns the (split, row) of each flip. With
    ``images`` (a folder), each source is written there as a small file and the cache holds its content digest."""
    from feature_cache.datasets import content_digest

    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (K, D))
    means *= 5.0 / np.linalg.norm(means, axis=1, keepdims=True)
    splits, flips = {}, set()
    for name, m in (("train", 60), ("val", 20), ("test", 30)):
        y = np.repeat(np.arange(K), m)
        x = (means[y] + rng.normal(0, 1, (len(y), D))).astype(np.float32)
        if name != "test":
            rows = rng.permutation(np.flatnonzero(y == CAT))[: m // 4]
            y[rows] = DOG
            flips |= {(name, int(r)) for r in rows}
        splits[name] = (x, y, [f"{name}/{i}.jpg" for i in range(len(y))])
    digests = None
    if images is not None:
        for _, _, sources in splits.values():
            for source in sources:
                (images / source).parent.mkdir(parents=True, exist_ok=True)
                (images / source).write_bytes(source.encode())
        digests = {name: np.array([list(content_digest(s.encode())) for s in sources], np.uint8)
                   for name, (_, _, sources) in splits.items()}
    write_cache(path, splits, NAMES, {"encoder": "synthetic", "default_head": "linear", "normalized": False,
                                      "fingerprint": fingerprint}, dtype="float32", digests=digests)
    return flips


def test_data_warns_of_listed_files_replaced_since_the_extraction(tmp_path, capsys):
    """A train image replaced by another of the same name after the run: `label-issues --data` listed the new
    file as the one whose label looks wrong (a data-set-iteration round); one warning names those that changed."""
    _write(tmp_path / "feats.h5", images=tmp_path / "images")
    assert main(["train", "--features", str(tmp_path / "feats.h5"), "--out", str(tmp_path / "erm"), *FAST]) == 0
    rows = _rows(capsys, tmp_path / "erm", "--data", tmp_path / "images")
    assert len(rows) >= 2
    with open(rows[1]["source"], "ab") as replaced:
        replaced.write(b"another image")
    capsys.readouterr()
    assert main(["label-issues", str(tmp_path / "erm"), "--data", str(tmp_path / "images"), "--json"]) == 0
    err = capsys.readouterr().err
    assert (f"warning: 1 of the {len(rows)} listed files changed since the run's cache was extracted (such as "
            f"{rows[1]['source']}), so the images there are not those the run scored") in err


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noisy")
    flips = _write(folder / "feats.h5")
    out = folder / "erm"
    assert main(["train", "--features", str(folder / "feats.h5"), "--out", str(out), *FAST]) == 0
    return folder / "feats.h5", out, flips


def _rows(capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert main(["label-issues", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_flipped_labels_come_first_each_row_named_in_its_cache(noisy, capsys):
    cache_path, run, flips = noisy
    rows = _rows(capsys, run, "--limit", "1000")
    assert rows and all(row["predicted"] != row["true"] for row in rows)
    probabilities = [row["label_probability"] for row in rows]
    assert probabilities == sorted(probabilities)
    cache = open_cache(cache_path)
    for row in rows:  # each row is the image of its split and row in the cache, with its given label
        assert row["source"] == cache.sources(row["split"])[row["row"]]
        assert row["true"] == NAMES[int(cache.labels(row["split"])[row["row"]])]
    top = [(row["split"], row["row"]) for row in rows[:len(flips)]]
    assert sum(place in flips for place in top) >= 0.5 * len(flips)
    assert {row["predicted"] for row in rows[:len(flips)] if (row["split"], row["row"]) in flips} == {"cat"}


def test_class_limit_and_the_table(noisy, capsys):
    _, run, _ = noisy
    dogs = _rows(capsys, run, "--class", "dog", "--limit", "1000")
    assert dogs and {row["true"] for row in dogs} == {"dog"}
    assert len(_rows(capsys, run, "--class", "dog", "--limit", "2")) == 2
    assert main(["label-issues", str(run), "--class", "dog", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"dog: {len(dogs)} of 100 train + val images predicted otherwise than labelled, out "
                               "of fold (5 folds of the run's configuration, lr=0.05, weight_decay=0, first seed")
    assert len(lines) == 4 and all("labelled dog" in line and "predicted" in line for line in lines[1:])
    assert main(["label-issues", str(run), "--class", "dog", "--limit", "1"]) == 0  # one row: one label, no '1 ...s'
    assert capsys.readouterr().out.splitlines()[0].endswith("; the likeliest wrong label:")
    assert dogs[0]["source"] in lines[1]


def test_the_refits_accuracy_is_said_and_a_weak_refits_listing_is_called_its_own_errors(noisy, tmp_path, capsys):
    """A weak probe (out-of-fold accuracy near chance) listed most of its images as likely wrong labels, and nothing
    said they were mostly its own mistakes: the header says the refit's out-of-fold accuracy, and below the bar
    (probe.label_issues.weak_refit_caution) a warning says the listing is more likely the probe's errors."""
    from probe.label_issues import weak_refit_caution

    _, run, _ = noisy
    assert main(["label-issues", str(run), "--limit", "1"]) == 0
    said = capsys.readouterr()
    assert "; out-of-fold accuracy " in said.out.splitlines()[0] and "% on all 320 images" in said.out.splitlines()[0]
    assert "warning" not in said.err  # 25 % of the cats relabelled dogs: a strong refit, its listing stands
    rng = np.random.default_rng(1)  # features with no class in them: the refit guesses
    splits = {name: (rng.normal(0, 1, (4 * m, D)).astype(np.float32), np.repeat(np.arange(K), m),
                     [f"{name}/{i}.jpg" for i in range(4 * m)])
              for name, m in (("train", 30), ("val", 10), ("test", 10))}
    write_cache(tmp_path / "noise.h5", splits, NAMES, {"encoder": "synthetic", "default_head": "linear",
                                                       "normalized": False, "fingerprint": "n"}, dtype="float32")
    assert main(["train", "--features", str(tmp_path / "noise.h5"), "--out", str(tmp_path / "weak"), *FAST]) == 0
    capsys.readouterr()
    assert main(["label-issues", str(tmp_path / "weak"), "--limit", "1"]) == 0
    said = capsys.readouterr()
    accuracy = float(said.out.splitlines()[0].split("; out-of-fold accuracy ")[1].split(" %")[0]) / 100
    assert accuracy < 0.6 and weak_refit_caution(accuracy) is not None
    assert said.err.strip() == f"warning: {weak_refit_caution(accuracy)}"
    assert "more likely the probe's own errors than wrong labels" in said.err


@pytest.mark.parametrize("args, message", [
    (["--folds", "1"], "--folds must be in [2, 20], got 1"),
    (["--folds", "21"], "--folds must be in [2, 20], got 21"),
    (["--limit", "0"], "--limit must be in [1, 100000], got 0"),
    (["--class", "unicorn"], "--class"),
])
def test_parameters_out_of_bounds_are_one_line(noisy, capsys, args, message):
    _, run, _ = noisy
    assert main(["label-issues", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mr2probe label-issues: error: ") and message in err and err.count("\n") == 1


def test_a_cache_of_other_features_is_refused(noisy, tmp_path, capsys):
    _, run, _ = noisy
    _write(tmp_path / "other.h5", fingerprint="other")
    assert main(["label-issues", str(run), "--features", str(tmp_path / "other.h5")]) == 2
    assert "holds other features (fingerprint other…) than run erm was trained on (t…)" in capsys.readouterr().err


def test_a_run_whose_cache_moved_needs_features(noisy, tmp_path, capsys):
    cache_path, _, _ = noisy
    moved = tmp_path / "moved.h5"
    shutil.copy(cache_path, moved)
    assert main(["train", "--features", str(moved), "--out", str(tmp_path / "run"), *FAST]) == 0
    moved.unlink()
    assert main(["label-issues", str(tmp_path / "run")]) == 2
    assert f"run run's cache '{moved}' is not a file here" in capsys.readouterr().err
    assert _rows(capsys, tmp_path / "run", "--features", cache_path)  # the same features elsewhere
    _write(moved, fingerprint="other")  # another cache at the path the run recorded: not given as --features
    assert main(["label-issues", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"error: run run's cache {moved} holds other features (fingerprint other…) than run run was trained on (" \
        in err
    # the way on, named (a data-set-iteration round: the cache deleted and extracted again from the changed folder)
    assert err.endswith("…): written over since the run; give the cache it was trained on, --features CACHE.h5, or "
                        "train the run again on this one\n")


def test_the_classes_a_run_left_out_stay_out(noisy, tmp_path, capsys):
    cache_path, _, flips = noisy
    out = tmp_path / "no-apple"
    assert main(["train", "--features", str(cache_path), "--out", str(out), "--drop-class", "apple", *FAST]) == 0
    rows = _rows(capsys, out, "--limit", "1000")
    cache = open_cache(cache_path)
    assert rows and "apple" not in {row["true"] for row in rows} | {row["predicted"] for row in rows}
    for row in rows:  # rows of the cache, not of the run's reduced splits
        assert row["source"] == cache.sources(row["split"])[row["row"]]
        assert row["true"] == NAMES[int(cache.labels(row["split"])[row["row"]])]


def test_data_prints_each_path_in_full_to_fix_the_folders_by(noisy, tmp_path, capsys):
    """--data DIR joins each row's path to the data set folder, as `mr2probe failures --data` does: the paths to
    move the wrongly labelled files by (a new-user round had only the paths inside the data set)."""
    _, run, _ = noisy
    rows = _rows(capsys, run, "--class", "dog", "--limit", "3")
    for row in rows:  # the files exist there: no warning
        (tmp_path / "set" / row["source"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "set" / row["source"]).write_bytes(b"x")
    full = _rows(capsys, run, "--class", "dog", "--limit", "3", "--data", tmp_path / "set")
    assert [row["source"] for row in full] == [str(tmp_path / "set" / row["source"]) for row in rows]
    assert [{**row, "source": None} for row in full] == [{**row, "source": None} for row in rows]
    assert main(["label-issues", str(run), "--class", "dog", "--limit", "1", "--data", str(tmp_path / "set")]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "paths inside the data set" not in lines[0] and lines[1].endswith(f" {tmp_path / 'set' / rows[0]['source']}")
    assert err == ""
    (tmp_path / "set.zip").write_bytes(b"x")  # an archive's members are no paths on disk: refused before any fit
    assert main(["label-issues", str(run), "--data", str(tmp_path / "set.zip")]) == 2
    assert "set.zip is a file, not a folder" in capsys.readouterr().err


def test_confident_learning_lists_cleanlabs_issues_of_the_same_folds_ranked_alike(noisy, capsys):
    from app.label_issues import find_label_issues

    _, run, _ = noisy
    every = _rows(capsys, run, "--limit", "1000")
    confident = _rows(capsys, run, "--limit", "1000", "--method", "confident-learning")
    found = find_label_issues(run, folds=5, method="confident-learning")
    predictions = found.predictions
    # fewer than the mistakes, each a mistake, in the mistakes' order (p(label), lowest first)
    assert found.method == "confident-learning" and found.listed.sum() == len(confident) < len(every)
    places = [(row["split"], row["row"]) for row in every]
    assert [(row["split"], row["row"]) for row in confident] == [p for p in places
                                                                 if p in {(r["split"], r["row"]) for r in confident}]
    assert not (found.listed & (predictions.predicted[0] == predictions.labels)).any()
    assert main(["label-issues", str(run), "--method", "confident-learning", "--limit", "2"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.startswith(f"every class: {len(confident)} of 320 train + val images flagged by confident learning "
                           "(cleanlab's prune_by_noise_rate")
    with pytest.raises(SystemExit):
        main(["label-issues", str(run), "--method", "prune_by_noise_rate"])
    assert "invalid choice: 'prune_by_noise_rate'" in capsys.readouterr().err


def test_a_run_replaced_between_its_two_reads_is_listed_by_the_new_runs_classes(noisy, tmp_path, capsys,
                                                                               monkeypatch):
    """label-issues read report.json for --class, then again to fit: a train --force that moved a run without
    apple in between took 'dog' for the old run's fourth class and listed the new run's fourth, which it lacks.
    Read again, whole: the new run's dogs."""
    import probe

    cache_path, trained, _ = noisy
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    real, calls = probe.load_report, []

    def load_report(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the fit's read: the run replaced by one that left apple out
            assert main(["train", "--features", str(cache_path), "--out", str(out), "--force", "--drop-class",
                         "apple", *FAST]) == 0
            capsys.readouterr()  # train's own output
        return real(*args, **kwargs)

    monkeypatch.setattr(probe, "load_report", load_report)
    capsys.readouterr()
    assert main(["label-issues", str(out), "--class", "dog", "--limit", "1000", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {row["true"] for row in rows} == {"dog"}, rows[:2]  # the old index: [], no such class


def test_few_shot_data_is_refitted_on_fewer_folds_than_the_default_with_a_note(tmp_path, capsys):
    """A class of 3 train + val images: the default 5 folds were refused though --folds was never given (a forms
    round); now 3 folds, said in a note, as the service's job says it; --folds 5 asked for is still refused, naming
    the class, its count and the most folds."""
    rng = np.random.default_rng(0)
    splits = {}
    for name, per in (("train", [8, 8, 2]), ("val", [2, 2, 1]), ("test", [4, 4, 4])):
        y = np.concatenate([np.full(n, k) for k, n in enumerate(per)])
        splits[name] = ((rng.normal(0, 1, (len(y), D)) + 3 * y[:, None]).astype(np.float32), y,
                        [f"{name}/{i}.jpg" for i in range(len(y))])
    write_cache(tmp_path / "few.h5", splits, ["a", "b", "c"], {"encoder": "synthetic", "default_head": "linear",
                                                               "normalized": False, "fingerprint": "few"},
                dtype="float32")
    run = tmp_path / "run"
    assert main(["train", "--features", str(tmp_path / "few.h5"), "--out", str(run), "--cv", "0", *FAST]) == 0
    capsys.readouterr()
    assert main(["label-issues", str(run)]) == 0
    said = capsys.readouterr()
    assert "note: 3 folds, not the default 5: class 'c' has 3 images in train + val" in said.err
    assert "(3 folds of the run's configuration" in said.out
    assert main(["label-issues", str(run), "--folds", "5"]) == 2
    assert "folds=5: class 'c' has 3 image(s) in train + val, and each fold needs one of every class; use at most 3 " \
        "folds." in capsys.readouterr().err


def test_a_run_whose_old_report_records_no_features_is_refused_without_advising_features(noisy, tmp_path, capsys):
    """A run an older version wrote, its report without features: label-issues advised '--features CACHE.h5',
    then refused that as 'nothing to check --features ... against' (an upgrade round). Both say at once that no
    cache can be checked against it, and to train the run again."""
    cache_path, run, _ = noisy
    old = tmp_path / "old"
    shutil.copytree(run, old)
    report = json.loads((old / "report.json").read_text())
    del report["features"]  # as a report written before runs recorded them
    (old / "report.json").write_text(json.dumps(report))
    said = ("mr2probe label-issues: error: run old records no features fingerprint (its report was written before runs "
            "recorded their features): nothing to check a cache against; train the run again")
    for given in ([], ["--features", str(cache_path)]):
        capsys.readouterr()
        assert main(["label-issues", str(old), *given]) == 2
        err = capsys.readouterr().err
        assert said in err and "--features" not in err.replace(str(cache_path), ""), err
