"""`mr2probe extract`: arguments, the JSON summary on stdout, reuse on the second run, clear errors."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.commands import extract as command
from app_testutils import free_port
from feature_cache import open_cache


def parse(argv):
    parser = argparse.ArgumentParser(prog="mr2probe extract")
    command.add_arguments(parser)
    return parser.parse_args(argv)


def make_tree(root: Path, splits=("train", "test")) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for label, name in enumerate(["cat", "dog", "eel"]):
            for i in range(2):
                pixels = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
                (root / split / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def test_module_contract():
    assert command.__name__ == "app.commands.extract" and command.HELP
    args = parse(["--data", "x.zip"])
    assert (args.encoder, args.batch_size, args.workers, args.device) == ("effnet-lite0", 64, None, "auto")
    # --val-fraction unset is None (0.1 when the run starts: it tells a given 0.1 from the default)
    assert (args.val_fraction, args.seed, args.max_per_class, args.out) == (None, 0, None, None)


def test_extract_then_reuse(tmp_path, capsys):
    data = make_tree(tmp_path / "data")
    out = tmp_path / "cache.h5"
    argv = ["--data", str(data), "--encoder", "effnet-lite0", "--out", str(out), "--batch-size", "8",
            "--workers", "0", "--device", "cpu", "--val-fraction", "0.5", "--seed", "3", "--no-progress"]
    assert command.run(parse(argv)) == 0
    printed = capsys.readouterr()
    first = json.loads(printed.out)
    assert "warning" not in printed.err  # every class has train and test images
    assert first["path"] == str(out) and first["reused"] is False
    assert first["counts"] == {"train": 3, "val": 3, "test": 6} and first["encoded"] == 12
    cache = open_cache(out)
    assert cache.class_names == ["cat", "dog", "eel"] and cache.num_features == 1280
    assert cache.attrs["split_params"]["seed"] == 3 and cache.attrs["split_params"]["val_fraction"] == 0.5
    assert command.run(parse(argv)) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["reused"] is True and second["encoded"] == 0 and second["fingerprint"] == first["fingerprint"]


def test_a_val_share_on_a_data_set_with_its_own_val_is_a_warning_and_no_new_extraction(tmp_path, capsys):
    """A val/ folder is used as it is: ``--val-fraction`` there is said to do nothing, and the features extracted
    without it are reused (the share named another cache of the same features before)."""
    data = make_tree(tmp_path / "data", splits=("train", "val", "test"))
    argv = ["--data", str(data), "--cache-dir", str(tmp_path / "caches"), "--batch-size", "8", "--workers", "0",
            "--device", "cpu", "--no-progress"]
    assert command.run(parse(argv)) == 0
    first = capsys.readouterr()
    assert "unused" not in first.err and json.loads(first.out)["counts"] == {"train": 6, "val": 6, "test": 6}
    assert command.run(parse(argv + ["--val-fraction", "0.3"])) == 0
    second = capsys.readouterr()
    assert ("warning: --val-fraction 0.3 is unused: the data set has a val split of its own (6 images), used as it "
            "is; no share of train is carved out") in second.err.splitlines()
    assert json.loads(second.out)["reused"] is True
    assert json.loads(second.out)["fingerprint"] == json.loads(first.out)["fingerprint"]


@pytest.mark.parametrize("option, value, message", [
    ("--val-fraction", "0", "--val-fraction must be in (0, 1), got 0.0."),
    ("--val-fraction", "nan", "--val-fraction must be a finite number, got nan."),
    ("--seed", "-5", "--seed must be an integer in [0, 4294967295], got -5."),
    ("--max-per-class", "0", "--max-per-class must be an integer in [1, 1000000000], got 0."),
    ("--batch-size", "0", "--batch-size must be an integer in [1, 1024], got 0."),
    ("--batch-size", "5000", "--batch-size must be an integer in [1, 1024], got 5000."),
    ("--workers", "-3", "--workers must be an integer in [0, 64], got -3."),  # feature_cache.defaults.MAX_WORKERS
    ("--workers", "100000", "--workers must be an integer in [0, 64], got 100000."),
])
def test_options_are_refused_in_the_same_words_by_both_commands(tmp_path, capsys, monkeypatch, option, value,
                                                                 message):
    """The same bounds as the API's ExtractOptions (which refused --val-fraction 0 that the CLI took), and --workers
    within feature_cache's MAX_WORKERS (refused only after the data set and the encoder loaded; found by the third
    new-user round), checked before the data set is read. torchrun's command said the library's "batch_size must be
    in [1, 1024], got 0" where this one said pydantic's "--batch-size should be greater than or equal to 1, got 0",
    and encoded a cache with --val-fraction 0: one definition (feature_cache.options.check_options), one line, 2."""
    from app.cli import main
    from feature_cache import distributed

    argv = ["--data", str(tmp_path / "none"), "--out", str(tmp_path / "c.h5"), option, value]
    with pytest.raises(ValueError) as raised:
        command.run(parse(argv))
    assert str(raised.value) == message
    assert main(["extract", *argv]) == 2
    assert capsys.readouterr().err.splitlines() == [f"mr2probe extract: error: {message}"]
    for name, setting in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
                          "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, setting)
    assert distributed.main([*argv, "--backend", "gloo"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"python -m feature_cache.distributed: error: {message}"]


def test_unknown_encoder_is_a_clear_error(tmp_path):
    data = make_tree(tmp_path / "data")
    with pytest.raises(KeyError, match=r"Unknown encoder 'clip-b32'; available: effnet-lite0"):
        command.run(parse(["--data", str(data), "--encoder", "clip-b32", "--out", str(tmp_path / "c.h5")]))
    assert not (tmp_path / "c.h5").exists()


def test_through_the_mr2probe_entry_point(tmp_path, capsys):
    from app.cli import main

    assert main(["extract", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "c.h5")]) == 2
    assert "mr2probe extract: error: data set" in capsys.readouterr().err


def test_a_manifest_not_utf8_or_not_csv_is_one_line_naming_it(tmp_path, capsys):
    """A field over the csv module's limit printed a traceback; a latin-1 manifest a message without its name."""
    from app.cli import main

    (tmp_path / "man.csv").write_bytes("path,label\na.png,caf\u00e9\n".encode("latin-1"))
    (tmp_path / "long.csv").write_text(f"path,label\n{'x' * 200_000},a\n")
    assert main(["extract", "--data", str(tmp_path / "man.csv"), "--out", str(tmp_path / "c.h5")]) == 2
    assert capsys.readouterr().err == (f"mr2probe extract: error: {tmp_path}/man.csv is not UTF-8 text (byte 0xe9 "
                                       "at line 2): save it as UTF-8.\n")
    assert main(["extract", "--data", str(tmp_path / "long.csv"), "--out", str(tmp_path / "c.h5")]) == 2
    assert capsys.readouterr().err == (f"mr2probe extract: error: {tmp_path}/long.csv: line 2 has a field longer "
                                       "than the CSV reader's limit of 131072 characters: is it a manifest of "
                                       "path,label rows?\n")


def test_what_the_machine_refuses_and_a_busy_cache_are_one_line_each(tmp_path, capsys):
    import fcntl

    from app.cli import main

    data = make_tree(tmp_path / "data")
    out = tmp_path / "cache.h5"
    argv = ["extract", "--data", str(data), "--encoder", "effnet-lite0", "--out", str(out), "--workers", "0",
            "--device", "cpu", "--no-progress"]
    # a folder where the resumable file goes: a caller's mistake (exit 2), named, as a folder given for a file is
    (tmp_path / "cache.h5.partial").mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (f"mr2probe extract: error: {tmp_path / 'cache.h5.partial'} is a folder, not the extraction's resumable "
            "partial file") in err and "Traceback" not in err
    (tmp_path / "cache.h5.partial").rmdir()
    # another process holds the extraction's lock
    with open(tmp_path / "cache.h5.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("pid 4242")
        lock.flush()
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"mr2probe extract: error: {out} is being extracted by pid 4242" in err and "Traceback" not in err
    assert main(argv) == 0 and open_cache(out).num_features == 1280  # the lock released: it runs


def test_torchruns_command_takes_every_option_of_mr2probe_extract_with_its_meaning_and_default():
    """torchrun's `python -m feature_cache.distributed` had its own copies of the options, without --unlabelled or
    --no-progress (a review): both commands read the same options now (feature_cache.options), and --backend."""
    from feature_cache.distributed import build_parser

    for argv in (["--data", "x"], ["--data", "x", "--unlabelled", "--no-progress", "--cache-dir", "c", "--workers",
                                   "1", "--precision", "fp32", "--dtype", "float32", "--seed", "3"]):
        torchrun = vars(build_parser().parse_args(argv))
        assert torchrun.pop("backend") is None and torchrun == vars(parse(argv))


def test_a_class_without_test_images_is_a_warning_before_the_extraction(tmp_path, capsys, monkeypatch):
    """A probe needs train and test images of every class (run_probe refuses the cache): say so before the
    extraction, which can take hours (the user may stop it), and once; the cache still serves predict."""
    import shutil

    import feature_cache

    data = make_tree(tmp_path / "data")
    shutil.rmtree(data / "test" / "eel")
    out = tmp_path / "cache.h5"
    warning = ("warning: 1 class without any test image (eel): a probe needs test images of every class; add images "
               "(a class folder under test/, or at least 2 images in a data set without splits), or drop it before "
               "training.")
    extract, seen = feature_cache.extract, []

    def extract_after_the_warning(*args, **kwargs):
        seen.append(capsys.readouterr().err)  # what the user read before the first image was encoded
        return extract(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "extract", extract_after_the_warning)
    assert command.run(parse(["--data", str(data), "--out", str(out), "--batch-size", "8", "--workers", "0",
                              "--device", "cpu", "--no-progress"])) == 0
    assert seen == ["found 3 classes: 'cat', 'dog', 'eel'; 10 images (train 3, val 3, test 4)\n" + warning + "\n"]
    err = capsys.readouterr().err
    assert warning not in err and "without any train image" not in err
    cache = open_cache(out)
    assert cache.classes_without("test") == ["eel"] and cache.classes_without("train") == []


def test_the_classes_found_are_named_on_stderr_before_the_extraction(tmp_path, capsys, monkeypatch):
    """batch1/ and batch2/ read as the classes went unseen (a user round): the classes found, and the images per
    split, are the first line on stderr, before any image is encoded; stdout keeps its one JSON line."""
    import feature_cache

    for batch in ("batch1", "batch2"):
        make_tree(tmp_path / "data" / batch, splits=("",))
    seen = []
    extract = feature_cache.extract

    def extract_after_the_notes(*args, **kwargs):
        seen.append(capsys.readouterr())
        return extract(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "extract", extract_after_the_notes)
    assert command.run(parse(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "c.h5"), "--batch-size", "8",
                              "--workers", "0", "--device", "cpu", "--no-progress"])) == 0
    assert seen[0].out == ""
    assert seen[0].err.splitlines()[0] == "found 2 classes: 'batch1', 'batch2'; 12 images (train 8, val 2, test 2)"
    assert json.loads(capsys.readouterr().out)["encoded"] == 12
    many = tmp_path / "many"
    for k in range(23):  # named up to 20, the rest counted (probe.names.listed)
        for i in range(2):
            (many / f"c{k:02d}").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(many / f"c{k:02d}" / f"{i}.png")
    monkeypatch.setattr(feature_cache, "extract", lambda *a, **k: seen.append(capsys.readouterr()) or exit(3))
    with pytest.raises(SystemExit):
        command.run(parse(["--data", str(many), "--out", str(tmp_path / "m.h5"), "--no-progress"]))
    names = ", ".join(f"'c{k:02d}'" for k in range(20))
    assert seen[1].err.splitlines()[0] == f"found 23 classes: {names} and 3 more; 46 images (train 23, test 23)"


def test_classes_of_very_different_sizes_are_a_warning_before_the_extraction(tmp_path, capsys, monkeypatch):
    """A class of 8 images beside one of 153 went unsaid until a run's report (a new-user round; the launch form
    says it of a registered data set): the report's imbalance warning, with the same figures, before any image is
    encoded; classes of alike sizes get none."""
    import feature_cache
    from testdata import make_tree as tree

    seen = []
    monkeypatch.setattr(feature_cache, "extract", lambda *a, **k: seen.append(capsys.readouterr()) or exit(3))
    uneven = tree(tmp_path / "uneven", {"ant": 2, "bee": 8, "cat": 8}, splits=("",))
    even = tree(tmp_path / "even", {"ant": 6, "bee": 8, "cat": 8}, splits=("",))
    for data in (uneven, even):
        with pytest.raises(SystemExit):
            command.run(parse(["--data", str(data), "--out", str(tmp_path / f"{data.name}.h5"), "--no-progress"]))
    (warning,) = [line for line in seen[0].err.splitlines() if "Imbalanced" in line]
    assert warning.startswith("warning: Imbalanced classes: train + val hold 1 to 6 images per class (6×; fewest: "
                              "ant (1)). Selection scores overall accuracy")
    assert "Imbalanced" not in seen[1].err


def test_a_class_without_a_validation_image_is_a_warning_before_the_extraction(tmp_path, capsys, monkeypatch):
    """A class of 2 images (train 1, test 1, val 0) in a data set too small to cross-validate: its runs said its
    accuracy played no part in the choice of configuration, its extraction nothing. The extraction says it before
    any image is encoded, in the runs' words (probe.splits.without_validation); a data set where every class gets
    a validation image, or one a probe cross-validates, gets none."""
    import feature_cache
    from probe.splits import without_validation
    from testdata import make_tree as tree

    seen = []
    monkeypatch.setattr(feature_cache, "extract", lambda *a, **k: seen.append(capsys.readouterr()) or exit(3))
    two = tree(tmp_path / "two", {"ant": 2, "bee": 8, "cat": 8}, splits=("",))
    six = tree(tmp_path / "six", {"ant": 6, "bee": 8, "cat": 8}, splits=("",))
    for data in (two, six):
        with pytest.raises(SystemExit):
            command.run(parse(["--data", str(data), "--out", str(tmp_path / f"{data.name}.h5"), "--no-progress"]))
    (warning,) = [line for line in seen[0].err.splitlines() if "no validation image" in line]
    assert warning == ("warning: a probe trained on this cache selects its configuration on the validation split, "
                       "not cross-validated (a class has fewer than 2 train + val images to fold): "
                       f"{without_validation(['ant'])}")
    assert warning.endswith("ant has no validation image, so its accuracy plays no part in choosing the configuration")
    assert "no validation image" not in seen[1].err


def test_an_out_path_that_cannot_be_written_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    """--out where no file can be written failed only after the encoder was built, naming its own lock file
    ('/proc/x.h5.lock'; found by an outside round): refused first, naming the path."""
    import feature_cache

    from app.cli import main

    built = []
    monkeypatch.setattr(feature_cache, "extract", lambda *a, **k: built.append(1))
    (tmp_path / "afile").write_text("x")
    assert main(["extract", "--data", str(tmp_path), "--out", str(tmp_path / "afile" / "x.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mr2probe extract: error: cannot write {tmp_path / 'afile' / 'x.h5'}: "), err
    assert built == []
    # a file in the way is named as such ('File exists in .../afile' read as if the cache existed), also deeper
    for out, flag in ((tmp_path / "afile" / "x.h5", "--out"), (tmp_path / "afile" / "sub" / "x.h5", "--out"),
                      (tmp_path / "afile", "--cache-dir"), (tmp_path / "afile" / "caches", "--cache-dir")):
        assert main(["extract", "--data", str(tmp_path), flag, str(out)]) == 2
        assert capsys.readouterr().err == (f"mr2probe extract: error: cannot write {out}: {tmp_path / 'afile'} is a "
                                           f"file, not a folder; choose another {flag}\n")  # the flag given
    assert built == [] and (tmp_path / "afile").read_text() == "x"
    # an --out without a suffix is a file too: its folder is checked, no folder of its name is made
    assert main(["extract", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "plain")]) == 2
    assert not (tmp_path / "plain").exists()


def test_a_test_split_carved_out_is_said_before_the_extraction(tmp_path, capsys):
    """train/ + val/ without test/: a share of train becomes test, which the extraction said nowhere (a new-user
    round); with a test/ folder, nothing is said."""
    data = make_tree(tmp_path / "tv", splits=("train", "val"))
    for name in ("cat", "dog", "eel"):  # 2 more train images per class: 4 in all, round(0.2 · 4) = 1 carved of each
        for i in range(2):
            (data / "train" / name / f"{i}.png").rename(data / "train" / name / f"more{i}.png")
    make_tree(data, splits=("train",))
    argv = ["--data", str(data), "--out", str(tmp_path / "tv.h5"), "--batch-size", "8", "--workers", "0",
            "--device", "cpu", "--no-progress"]
    assert command.run(parse(argv)) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["counts"]["test"] == 3
    assert ("note: the data set has no test split of its own: 3 images, 0.2 of each class of its train/ folder "
            "(seed 0), are carved out as test, where every test figure of a run on it is measured; give it a test/ "
            "folder to choose them") in printed.err.splitlines()
    given = make_tree(tmp_path / "tt")
    assert command.run(parse(["--data", str(given), "--out", str(tmp_path / "tt.h5"), "--batch-size", "8",
                              "--workers", "0", "--device", "cpu", "--no-progress"])) == 0
    assert "note:" not in capsys.readouterr().err


def test_class_folders_that_all_hold_the_same_subfolders_are_a_warning_before_the_extraction(tmp_path, capsys,
                                                                                          monkeypatch):
    """batch1/{cat,dog,eel}/ and batch2/{cat,dog,eel}/ were extracted as the classes batch1 and batch2, without a
    word (class folders are read with their subfolders; a new-user round): said before the extraction."""
    import feature_cache

    for batch in ("batch1", "batch2"):
        make_tree(tmp_path / "data" / batch, splits=("",))
    seen = []

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):  # what the user read before the first image was encoded
        seen.append(capsys.readouterr().err)
        raise Stop

    monkeypatch.setattr(feature_cache, "extract", stop)
    with pytest.raises(Stop):
        command.run(parse(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "c.h5"), "--no-progress"]))
    assert ("warning: every class folder (batch1, batch2) holds the same subfolders (cat, dog, eel) and no image of "
            "its own: if those subfolders are the classes") in seen[0], seen
    for batch in ("batch1", "batch2"):  # split folders under names the reader does not take as splits
        (tmp_path / "data" / batch).rename(tmp_path / "data" / {"batch1": "training", "batch2": "testing"}[batch])
    with pytest.raises(Stop):
        command.run(parse(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "c.h5"), "--no-progress"]))
    assert "warning: class folder(s) 'testing', 'training' are named like splits, which are read only" in seen[1]


def test_test_images_copied_from_train_are_a_warning_before_the_extraction(tmp_path, capsys, monkeypatch):
    """test/ copied from train/ scored 100 % without a word (a new-user round): said before the extraction."""
    import shutil

    import feature_cache

    data = make_tree(tmp_path / "data", splits=("train",))
    shutil.copytree(data / "train", data / "test")
    seen = []

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        seen.append(capsys.readouterr().err)
        raise Stop

    monkeypatch.setattr(feature_cache, "extract", stop)
    with pytest.raises(Stop):
        command.run(parse(["--data", str(data), "--out", str(tmp_path / "c.h5"), "--no-progress"]))
    assert ("warning: 6 of the 6 test images have the same content as a train or val image ('test/cat/0.png' = "
            "'train/cat/0.png';") in seen[0], seen


def test_ctrl_c_is_one_line_that_says_the_same_command_resumes(tmp_path, capsys, monkeypatch):
    """Ctrl-C in an extraction printed the 45-line trace of the DataLoader the main process waited on, which read as
    a crash; the encoded batches stay in CACHE.partial and the same command resumes (tests/feature_cache/
    test_extract_resume.py). A reproducibility audit."""
    from app.cli import main

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "run", interrupted)
    assert main(["extract", "--data", str(tmp_path), "--out", str(tmp_path / "c.h5")]) == 130
    assert capsys.readouterr().err == ("mr2probe extract: interrupted; the images encoded so far are kept: the same "
                                       "command resumes\n")


def test_a_cap_per_class_that_leaves_no_validation_image_is_refused_naming_the_least_cap(tmp_path, capsys,
                                                                                          monkeypatch):
    """A loose end: --max-per-class 1 wrote a cache that `mr2probe train` then refused (no validation image: one is
    carved from a class of 2 train images or more). The cap is refused before any image is encoded, naming the
    least one that gives train a validation image for the data set's layout; that cap extracts a cache train
    reads; a data set too small by itself (no cap) is a warning, and its cache still serves predict."""
    import feature_cache
    from app.cli import main
    from probe.splits import validation_images

    extract, calls = feature_cache.extract, []
    monkeypatch.setattr(feature_cache, "extract", lambda *a, **k: calls.append(1) or extract(*a, **k))
    given = make_tree(tmp_path / "given")  # train/ and test/, 2 images of each class in each
    assert main(["extract", "--data", str(given), "--out", str(tmp_path / "one.h5"), "--max-per-class", "1"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "mr2probe extract: error: --max-per-class 1 leaves no validation image (train 3, val 0, test 3): a probe "
        "carves one from a class of 2 train images or more; give --max-per-class 2 or more")
    assert calls == [] and not (tmp_path / "one.h5").exists()
    tree = tmp_path / "tree"  # one tree of 3 images a class: test is carved first, then val from what is left
    rng = np.random.default_rng(1)
    for name in ("cat", "dog", "eel"):
        (tree / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(tree / name / f"{i}.png")
    argv = ["--data", str(tree), "--batch-size", "8", "--workers", "0", "--device", "cpu", "--no-progress"]
    with pytest.raises(ValueError, match="--max-per-class 2 leaves no validation image .* give --max-per-class 3 or"):
        command.run(parse([*argv, "--out", str(tmp_path / "two.h5"), "--max-per-class", "2"]))
    assert command.run(parse([*argv, "--out", str(tmp_path / "three.h5"), "--max-per-class", "3"])) == 0
    cache = open_cache(tmp_path / "three.h5")
    counts = {split: np.bincount(cache.labels(split), minlength=3).tolist() for split in cache.splits}
    assert validation_images(counts, 0.1) == 3 and "warning" not in capsys.readouterr().err
    for name in ("cat", "dog", "eel"):  # no cap: 1 image a class in train/ is the data set's own size, a warning
        (given / "train" / name / "1.png").unlink()
    assert command.run(parse(["--data", str(given), "--out", str(tmp_path / "small.h5"), "--batch-size", "8",
                              "--workers", "0", "--device", "cpu", "--no-progress"])) == 0
    assert ("warning: the validation split is empty; selection needs validation samples: these splits hold no "
            "validation image (train 3, val 0, test 6) and no class has the 2 train images one is carved from; give "
            "the data set a val/ folder or more images per class: a probe refuses this cache"
            ) in capsys.readouterr().err.splitlines()


def test_the_warning_of_classes_without_a_split_names_ten_and_counts_the_rest():
    """The warning named ten classes and ended "...": how many more went unsaid. It is probe.names.listed's form,
    as every other list of names (one definition)."""
    from types import SimpleNamespace

    from feature_cache.options import _missing_classes

    missing = [f"c{i:02d}" for i in range(12)]
    data = SimpleNamespace(class_names=[f"c{i:02d}" for i in range(20)], params={"layout": "split-folders"},
                           location="data")
    lines = _missing_classes({"train": [], "test": missing}, data)
    assert lines == ["warning: 12 classes without any test image (c00, c01, c02, c03, c04, c05, c06, c07, c08, c09 "
                     "and 2 more): a probe needs test images of every class; add images (a class folder under test/, "
                     "or at least 2 images in a data set without splits), or drop them before training."]


def test_extract_keeps_freed_memory_for_its_run(tmp_path, capsys, monkeypatch):
    """mr2probe extract is a process of its own: it keeps the measured allocator setting (probe.allocator) that a
    library call of feature_cache.extract leaves off by default."""
    import importlib

    module = importlib.import_module("feature_cache.extract")  # the module, not the function feature_cache exports
    calls = []
    monkeypatch.setattr(module, "keep_freed_memory", lambda: calls.append("keep"))
    monkeypatch.setattr(module, "release_freed_memory", lambda: calls.append("release"))
    argv = ["--data", str(make_tree(tmp_path / "data")), "--out", str(tmp_path / "c.h5"), "--workers", "0",
            "--device", "cpu", "--no-progress"]
    assert command.run(parse(argv)) == 0
    assert calls == ["keep", "release"] and json.loads(capsys.readouterr().out)["encoded"] == 12
