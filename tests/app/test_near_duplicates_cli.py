"""`mr2probe report RUN --near-duplicates`: every test image that duplicates a train or val image, and `--paths`, the
list of test files to remove; runs without the list are refused with one line."""
from __future__ import annotations

import pytest

from app.cli import main
from probe import ProbeConfig, run_probe
from probe.near_duplicates import PAIRS_FILE, sample_rows
from probe.report import FeatureSource
from testdata import LEAKY_IDENTICAL, LEAKY_NEAR, leaky_splits

NAMES = ["a", "b", "c"]
FAST = dict(epochs=5, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0)


def _run(out, encoder="effnet-lite0", paths=True):
    data, sources, digests = leaky_splits(NAMES)
    run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=out, sources=sources if paths else None, contents=digests,
              features=FeatureSource(fingerprint="f" * 64, encoder=encoder))
    return sources


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "leaky"
    return out, _run(out)


def test_every_pair_is_listed_most_similar_first(leaky, capsys):
    out, sources = leaky
    assert main(["report", str(out), "--near-duplicates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # the rule the report applied, the ratio test with it (the line said the threshold alone)
    assert lines[0] == ("7 of 60 test images duplicate a train or val image (cosine ≥ 0.9 of effnet-lite0 features, "
                        "2.5× closer than to any other image, or ≥ 0.99; 2 byte-identical) (paths inside the data set; "
                        "--data DIR prints them whole), most similar first:")
    assert len(lines) == 8
    for r in LEAKY_NEAR + LEAKY_IDENTICAL:
        seen = sources["train"][10 + r if r in LEAKY_NEAR else 20 + r]
        assert sum(f"  {sources['test'][r]}  ~  train: {seen}" in line for line in lines) == 1
    assert sum(line.endswith("byte-identical") for line in lines[1:]) == 2
    cosines = [float(line.split()[0]) for line in lines[1:]]
    assert cosines == sorted(cosines, reverse=True)


def test_paths_lists_the_test_files_to_remove_one_a_line_whole_with_data(leaky, tmp_path, capsys):
    out, sources = leaky
    assert main(["report", str(out / "report.json"), "--near-duplicates", "--paths"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert sorted(listed) == sorted(sources["test"][r] for r in LEAKY_NEAR + LEAKY_IDENTICAL)
    assert main(["report", str(out), "--near-duplicates", "--paths", "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / path) for path in listed]


def test_runs_without_the_list_and_misplaced_flags_get_one_line(leaky, tmp_path, capsys):
    out, _ = leaky
    unchecked = tmp_path / "unchecked"
    _run(unchecked, encoder="openclip:x")
    assert main(["report", str(unchecked), "--near-duplicates"]) == 2
    # why, as the report's schema says it: past the budget a sample is compared, so not "too many images" alone
    assert capsys.readouterr().err == (f"mr2probe report: error: run unchecked has no {PAIRS_FILE}: it was not "
                                       "checked for near-duplicates (an encoder without a measured threshold, arrays "
                                       "given without their features' source, too many train and val images to "
                                       "compare even one test image within the products budget, or a report "
                                       "written before the check)\n")
    older = tmp_path / "older"
    older.mkdir()
    for name in ("report.json", "head.json", "head.safetensors", "per_class.csv"):
        (older / name).write_bytes((out / name).read_bytes())
    assert main(["report", str(older), "--near-duplicates"]) == 2
    assert "written before the list was kept; train it again" in capsys.readouterr().err
    for flags, message in ((["--paths"], "--paths needs --near-duplicates"),
                           (["--data", str(tmp_path)], "--data needs --near-duplicates")):
        assert main(["report", str(out), *flags]) == 2
        assert capsys.readouterr().err == f"mr2probe report: error: {message}\n"
    with pytest.raises(SystemExit) as exited:  # argparse: the outputs exclude each other
        main(["report", str(out), "--near-duplicates", "--json"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_a_run_replaced_between_its_report_and_its_list_is_the_new_runs(leaky, tmp_path, capsys, monkeypatch):
    """--near-duplicates read report.json, then near_duplicates.csv: a train --force that moved in an unchecked run
    in between read as a checked run whose list was lost ("written before the list was kept"). Read again, whole:
    the new run, not checked."""
    import shutil

    import probe.near_duplicates

    out = tmp_path / "run"
    shutil.copytree(leaky[0], out)
    real, calls = probe.near_duplicates.read_pairs, []

    def read_pairs(folder, *args):
        calls.append(1)
        if len(calls) == 1:
            _run(out, encoder="openclip:x")  # no threshold measured: no list
        return real(folder, *args)

    monkeypatch.setattr(probe.near_duplicates, "read_pairs", read_pairs)
    assert main(["report", str(out), "--near-duplicates"]) == 2
    assert "it was not checked for near-duplicates" in capsys.readouterr().err and len(calls) == 2


def test_paths_of_a_run_without_test_paths_is_refused_not_an_empty_list(tmp_path, capsys):
    """A run given arrays without sources keeps its pairs by test row alone: --paths printed nothing and exit 0, an
    empty remove.txt that read as "no test image to remove"."""
    out = tmp_path / "arrays"
    _run(out, paths=False)
    assert main(["report", str(out), "--near-duplicates", "--paths"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        "mr2probe report: error: run arrays stored no path for 7 of its 7 duplicating test images (it was given "
        "arrays without sources); drop --paths to list their test rows\n")
    assert main(["report", str(out), "--near-duplicates"]) == 0
    assert "  ~  train: train row " in capsys.readouterr().out


def test_a_sampled_run_says_its_list_is_the_samples(tmp_path, capsys, monkeypatch):
    import probe.run

    monkeypatch.setattr(probe.run, "MAX_CHECK_PRODUCTS", 2 * 25 * 150 * 64)  # 25 of the 60 test rows fit half
    _run(tmp_path / "sampled")
    assert main(["report", str(tmp_path / "sampled"), "--near-duplicates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = lines[0]
    assert " of 25 sampled test images (a random sample of the 60) duplicate a train or val image" in first
    # the byte-identical test images outside the sample are listed, and said apart: the count before "of 25" is the
    # sample's (it was every listed pair's, identical ones outside the sample among them)
    rows = sample_rows(60, 25)
    outside = [r for r in LEAKY_IDENTICAL if r not in rows]
    listed = len(lines) - 1
    assert outside and sum(line.endswith("byte-identical") for line in lines[1:]) == len(LEAKY_IDENTICAL)
    assert first.startswith(f"{listed - len(outside)} of 25 sampled") and (
        f"; {len(outside)} more test image{'s' if len(outside) > 1 else ''} outside the sample, byte-identical to one "
        "(content digests, every test image's), listed too") in first, first


def test_a_list_naming_a_test_row_past_the_runs_test_images_is_refused(leaky, tmp_path, capsys):
    """A corrupted near_duplicates.csv with test row 60 of a run of 60 test images was listed as one of them."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(leaky[0], out)
    (out / PAIRS_FILE).write_text("test_row,test,seen_split,seen_row,seen,similarity,identical\n"
                                  "60,a.png,train,0,b.png,0.950000,0\n")
    assert main(["report", str(out), "--near-duplicates"]) == 2
    assert capsys.readouterr().err == (f"mr2probe report: error: {PAIRS_FILE} of run run cannot be read (damaged): "
                                       "test row 60 is past the run's 60 test images\n")


def test_rows_of_idx_records_say_their_note_once(tmp_path, capsys):
    """A run of an idx folder names its images as records (test/00012): --data prints them as they are, with one
    note on stderr saying why (it was said twice, once for the test images and once for those they duplicate)."""
    data, _, digests = leaky_splits(NAMES)
    offset = {"train": 0, "val": 40 * 3, "test": 0}  # val rows are train records of an idx folder
    sources = {split: [f"{'test' if split == 'test' else 'train'}/{offset[split] + i:05d}" for i in range(len(y))]
               for split, (_, y) in data.items()}
    out = tmp_path / "idx"
    run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=out, sources=sources, contents=digests,
              features=FeatureSource(fingerprint="f" * 64, encoder="effnet-lite0"))
    idx_folder = tmp_path / "fashion"
    idx_folder.mkdir()
    for part in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte",
                 "train-labels-idx1-ubyte"):
        (idx_folder / part).write_bytes(b"")
    for folder, word in ((idx_folder, "note: --data"), (tmp_path / "empty", "warning: --data")):
        folder.mkdir(exist_ok=True)
        assert main(["report", str(out), "--near-duplicates", "--data", str(folder)]) == 0
        captured = capsys.readouterr()
        assert captured.err.count(word) == 1 and captured.err.count("\n") == 1, captured.err
        assert f"  {sources['test'][LEAKY_NEAR[0]]}  ~  train: " in captured.out
