"""`mr2probe train / report / compare` through app.cli.main: exit codes, output files, printed tables."""
import csv
import json
import os
import re
import shutil

import numpy as np
import pytest

from app.cli import main
from app_testutils import head_named_too, replaced_meanwhile
from feature_cache import open_cache, write_cache

K = 4
NAMES = ["apple", "bus", "cat", "dog"]
FAST = ["--epochs", "30", "--lr", "0.05", "--wd", "0", "--seeds", "2", "--no-progress"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, (K, 8))
    means *= 2.5 / np.linalg.norm(means, axis=1, keepdims=True)
    spread = np.array([0.5, 0.8, 1.1, 1.4])

    def split(m, name):
        y = np.repeat(np.arange(K), m)
        x = (means[y] + spread[y, None] * rng.normal(0, 1, (len(y), 8))).astype(np.float32)
        return x, y, [f"{name}/{i}.jpg" for i in range(len(y))]

    path = tmp_path_factory.mktemp("cache") / "feats.h5"
    write_cache(path, {"train": split(50, "train"), "val": split(20, "val"), "test": split(40, "test")}, NAMES,
                {"encoder": "synthetic", "default_head": "linear", "normalized": False, "fingerprint": "t"},
                dtype="float32")
    return path


@pytest.fixture(scope="module")
def erm_dir(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "erm"
    assert main(["train", "--features", str(cache), "--out", str(out), *FAST]) == 0
    return out


def test_train_writes_run_directory(erm_dir, cache, capsys):
    assert {p.name for p in erm_dir.iterdir()} >= {"report.json", "per_class.csv", "head.safetensors", "head.json"}
    report = json.loads((erm_dir / "report.json").read_text())
    assert report["class_names"] == NAMES
    assert report["features"] == {"fingerprint": "t", "encoder": "synthetic", "extractor": None,
                                  "extractor_as_named": None, "cache": str(cache), "dataset": None, "test_dataset": None, "warning": None, "data_warnings": [], "weights_sha256": None,
                                  "preprocess": None, "feature_kind": None, "normalized": False,
                                  "test_carved": None}
    assert report["config"]["head"] == "linear" and report["config"]["loss"] == "ce"
    assert report["config"]["seeds"] == [0, 1] and report["config"]["lr_grid"] == [0.05]
    # the command line that ran it, to run it again (a reproducibility audit: the report had no way back to it)
    assert report["environment"]["command"] == ["mr2probe", "train", "--features", str(cache), "--out", str(erm_dir),
                                                *FAST]
    assert report["environment"]["cwd"] == os.getcwd() and report["environment"]["fit_precisions"]
    assert [r["n_test"] for r in report["per_class"]] == [40] * K
    rows = list(csv.DictReader((erm_dir / "per_class.csv").open()))
    assert [r["name"] for r in rows] == NAMES
    # the head reloads and scores the cached test split like the report's first seed
    from probe import ProbeTrainer

    x, y = open_cache(cache).load("test")
    acc = (ProbeTrainer.load(erm_dir / "head.safetensors").predict(x) == y).mean()
    assert acc == pytest.approx(report["seeds"]["metrics"]["overall"]["per_seed"][0])


def test_an_out_holding_a_run_is_refused_unless_force(erm_dir, cache, tmp_path, capsys):
    """A typo must not replace minutes of training, nor the reference the new run is measured against."""
    before = (erm_dir / "report.json").read_bytes()
    assert main(["train", "--features", str(cache), "--out", str(erm_dir), *FAST]) == 2
    assert f"{erm_dir} already holds a run (report.json): pass --force" in capsys.readouterr().err
    (tmp_path / "link.json").symlink_to(erm_dir / "report.json")
    os.link(erm_dir / "report.json", tmp_path / "hard.json")
    for reference in (erm_dir, erm_dir / "report.json", tmp_path / "link.json", tmp_path / "hard.json"):
        code = main(["train", "--features", str(cache), "--out", str(erm_dir), "--reference", str(reference),
                     "--force", "--loss", "mr2", *FAST])
        assert code == 2 and "is the --reference run" in capsys.readouterr().err, reference
    # through a folder that does not exist and back: the run's own folder (an attack round's way past the check)
    assert main(["train", "--features", str(cache), "--out", str(erm_dir / "missing" / ".."), *FAST]) == 2
    assert "already holds a run" in capsys.readouterr().err and not (erm_dir / "missing").exists()
    assert (erm_dir / "report.json").read_bytes() == before  # neither refusal touched the run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("report.json", "head.safetensors", "head.json", "per_class.csv"):
        (copy / name).write_bytes((erm_dir / name).read_bytes())
    assert main(["train", "--features", str(cache), "--out", str(copy), "--force", "--seeds", "1", *FAST[:-3],
                 "--no-progress"]) == 0
    assert json.loads((copy / "report.json").read_text())["config"]["seeds"] == [0]


def test_mr2_with_reference_compare_and_report(erm_dir, cache, tmp_path, capsys):
    out = tmp_path / "mr2"
    code = main(["train", "--features", str(cache), "--out", str(out), "--loss", "mr2",
                 "--reference", str(erm_dir), *FAST])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["grouping"]["source"] == "reference" and report["grouping"]["reference_run"] == "erm"
    assert not any("used other features" in w for w in report["warnings"])  # the reference used the same cache
    assert len(report["selection"]["candidates"]) == 3
    gamma = [r["gamma"] for r in report["per_class"]]
    assert np.all(np.diff(gamma) > 0)  # larger spread → larger γ
    capsys.readouterr()

    assert main(["compare", str(erm_dir), str(out)]) == 0
    text = capsys.readouterr().out
    assert "base erm vs other mr2" in text and "hard" in text
    assert main(["compare", str(erm_dir), str(out), "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert cmp["grouping"]["groups"] == json.loads((erm_dir / "report.json").read_text())["grouping"]["groups"]
    assert main(["compare", str(erm_dir), str(out), "--format", "html", "--out", str(tmp_path / "c.html")]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'c.html'}\n"
    page = (tmp_path / "c.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h1>mr2probe compare: erm vs mr2</h1>" in page and "dog" in page
    assert main(["compare", str(erm_dir), str(out), "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("# mr2probe compare: erm vs mr2\n")
    assert main(["compare", str(erm_dir), str(out), "--out", str(tmp_path / "x.md")]) == 2
    assert "--out needs --format md or --format html" in capsys.readouterr().err

    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "loss=mr2" in text and "class margin" in text and "dog" in text
    assert main(["report", str(out), "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("index,name,group,n_train")
    assert main(["report", str(out), "--format", "html", "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3 and "dog" in page
    capsys.readouterr()
    assert main(["report", str(out), "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("# mr2probe report: mr2")
    assert main(["failures", str(out), "--class", "dog", "--limit", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert 0 < len(rows) <= 3 and all(r["true"] == "dog" and r["predicted"] != "dog" for r in rows)
    # the likeliest wrong labels first: the lowest probability of their own label, the run's stored one
    assert [r["label_probability"] for r in rows] == sorted(r["label_probability"] for r in rows)
    assert all(r["source"] for r in rows)  # the cache's test sources are stored with the predictions
    assert main(["failures", str(out), "--class", "dog", "--limit", "1"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    total = int(re.match(r"dog: (\d+) of \d+ test images misclassified \(first seed\) \(paths inside the data "
                         r"set; --data DIR prints them whole\)", header).group(1))
    assert header.endswith(":" if total == 1 else "; the most confidently wrong one:")
    # --data: each path in full (a new-user round: paths relative to a root never printed)
    assert main(["failures", str(out), "--class", "dog", "--limit", "3", "--json", "--data", str(tmp_path / "imgs")]) == 0
    assert [r["source"] for r in json.loads(capsys.readouterr().out)] == [str(tmp_path / "imgs" / r["source"])
                                                                          for r in rows]
    assert main(["failures", str(out), "--class", "dog", "--limit", "1", "--data", "/srv/d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "--data DIR" not in lines[0] and lines[1].endswith(f" /srv/d/{rows[0]['source']}")
    # an archive is no folder: its members joined to its name were paths that exist nowhere (a new-user round)
    (tmp_path / "set.tar.xz").write_bytes(b"x")
    assert main(["failures", str(out), "--class", "dog", "--data", str(tmp_path / "set.tar.xz")]) == 2
    assert "set.tar.xz is a file, not a folder" in capsys.readouterr().err
    assert main(["failures", str(out), "--class", "dog", "--limit", str(total)]) == 0
    # the order said with its key, p(label) (the confidence, printed last, is not in order)
    assert capsys.readouterr().out.splitlines()[0].endswith(
        ":" if total == 1 else ", most confidently wrong first (by the lowest p(label)):")
    if total > 2:
        assert main(["failures", str(out), "--class", "dog", "--limit", "2"]) == 0
        assert capsys.readouterr().out.splitlines()[0].endswith("; the 2 most confidently wrong (by the lowest "
                                                                "p(label)):")
    from probe.predictions import Predictions

    names = report["class_names"]
    cat_as_dog = Predictions.load(out).failures(names.index("cat"), predicted=names.index("dog"))
    assert main(["failures", str(out), "--class", "cat", "--predicted", "dog", "--json"]) == 0
    assert [r["index"] for r in json.loads(capsys.readouterr().out)] == cat_as_dog[:20].tolist()
    assert main(["failures", str(out), "--class", "cat", "--predicted", "dog"]) == 0
    assert capsys.readouterr().out.startswith(f"cat: {len(cat_as_dog)} of ")
    assert main(["failures", str(out), "--class", "cat", "--predicted", "cat"]) == 2
    assert "--predicted names the class itself" in capsys.readouterr().err
    assert main(["failures", str(out), "--class", "unicorn"]) == 2
    assert "'unicorn' is not a class of this run" in capsys.readouterr().err
    assert main(["report", str(out), "--out", str(tmp_path / "x")]) == 2
    assert "--out needs --format md or --format html" in capsys.readouterr().err


def test_posthoc_flag(cache, tmp_path):
    out = tmp_path / "ph"
    assert main(["train", "--features", str(cache), "--out", str(out), "--posthoc-bias", *FAST]) == 0
    assert (out / "posthoc_bias.json").is_file()
    assert json.loads((out / "report.json").read_text())["config"]["posthoc_bias"] is True


def test_ldam_from_the_cli_reports_its_options_and_refuses_a_bound(cache, tmp_path, capsys):
    out = tmp_path / "ldam"
    assert main(["train", "--features", str(cache), "--out", str(out), "--loss", "ldam",
                 "--loss-option", "max_margin=2", *FAST]) == 0
    assert "head=linear loss=ldam (scale=1, max_margin=2)" in capsys.readouterr().out
    config = json.loads((out / "report.json").read_text())["config"]
    assert (config["loss"], config["loss_options_used"]) == ("ldam", {"scale": 1.0, "max_margin": 2.0})
    assert main(["train", "--features", str(cache), "--out", str(tmp_path / "x"), "--loss", "ldam",
                 "--loss-option", "max_margin=-1", *FAST]) == 2
    assert "max_margin must be in [0, 100], got -1" in capsys.readouterr().err


def test_overall_metric_flag(cache, tmp_path, capsys):
    out = tmp_path / "balanced"
    assert main(["train", "--features", str(cache), "--out", str(out), "--overall-metric", "balanced", *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["overall_metric"] == "balanced" and "balanced accuracy" in report["selection"]["reason"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--features", str(cache), "--out", str(tmp_path / "x"), "--overall-metric", "macro", *FAST])
    assert exit_.value.code == 2 and "invalid choice: 'macro'" in capsys.readouterr().err


def test_disparity_preset_from_the_cli(erm_dir, cache, tmp_path, capsys):
    out = tmp_path / "preset"
    assert main(["train", "--features", str(cache), "--out", str(out), "--preset", "disparity",
                 "--max-overall-drop", "0.5", "--reference", str(erm_dir), *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    requested = report["selection"]["requested"] or report["config"]  # requested: the run kept the reference
    assert requested["preset"] == "disparity" and report["selection"]["preset"]["name"] == "disparity"
    assert requested["select"] == "hard" and requested["max_overall_drop"] == 0.5
    assert report["selection"]["verdict"] in ("improved", "no_safe_improvement")
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "preset disparity" in text and f"verdict ({report['selection']['verdict'].replace('_', ' ')}): " in text


def test_cv_flag(cache, tmp_path, capsys):
    # 20 val images per class (< 50): --cv 3 cross-validates with 3 folds on train + val, --cv 0 keeps val
    out = tmp_path / "cv3"
    assert main(["train", "--features", str(cache), "--out", str(out), "--cv", "3", *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["cv"] == 3
    assert report["selection"]["cv"] == {"folds": 3, "samples": 280, "reason": "val has fewer than 50 images in 4 of 4 "
                                         "classes: 'apple' 20, 'bus' 20, 'cat' 20, 'dog' 20"}
    assert "on 3-fold cross-validation of train + val, 280 images" in capsys.readouterr().out
    off = tmp_path / "cv0"
    assert main(["train", "--features", str(cache), "--out", str(off), "--cv", "0", *FAST]) == 0
    report = json.loads((off / "report.json").read_text())
    assert report["config"]["cv"] == 0 and report["selection"]["cv"] is None and report["selection"]["split"] == "val"
    capsys.readouterr()
    assert main(["train", "--features", str(cache), "--out", str(tmp_path / "bad"), "--cv", "1", *FAST]) == 2
    assert "cv must be 0 (no cross-validation) or an integer in [2, 20], got 1" in capsys.readouterr().err


def test_loss_options_fixed_and_selected_from_the_cli(cache, tmp_path, capsys):
    out = tmp_path / "dro"
    assert main(["train", "--features", str(cache), "--out", str(out), "--loss", "group_dro",
                 "--loss-option", "eta=0.001,0.1", *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["loss_options_grid"] == {"eta": [0.001, 0.1]}
    assert [c["eta"] for c in report["selection"]["candidates"]] == [0.001, 0.1]
    out = tmp_path / "focal"
    assert main(["train", "--features", str(cache), "--out", str(out), "--loss", "focal",
                 "--loss-option", "gamma_focal=1", *FAST]) == 0
    assert json.loads((out / "report.json").read_text())["config"]["loss_options"] == {"gamma_focal": 1.0}
    capsys.readouterr()
    code = main(["train", "--features", str(cache), "--out", str(tmp_path / "bad"), "--loss", "focal",
                 "--loss-option", "gamma_focal", *FAST])
    assert code == 2 and "--loss-option expects NAME=VALUE" in capsys.readouterr().err


def test_a_per_class_loss_option_takes_one_value_per_class_from_the_cli(cache, tmp_path, capsys):
    """`--loss-option priors=0.4,0.3,0.2,0.1` was read as four values to select from, each refused as a list
    ("priors must be a non-empty list of numbers, each >= 0, got 0.4"): no priors (nor mr2_valerr's val_error)
    could be given on the command line. A per-class option's values are its one list, in the classes' order."""
    out = tmp_path / "ldam"
    assert main(["train", "--features", str(cache), "--out", str(out), "--loss", "ldam",
                 "--loss-option", "priors=0.4,0.3,0.2,0.1", *FAST]) == 0
    config = json.loads((out / "report.json").read_text())["config"]
    assert config["loss_options"] == {"priors": [0.4, 0.3, 0.2, 0.1]} and not config["loss_options_grid"]
    out = tmp_path / "valerr"
    assert main(["train", "--features", str(cache), "--out", str(out), "--loss", "mr2_valerr",
                 "--loss-option", "val_error=0.1,0.2,0.3,0.4", "--cbar", "1", *FAST]) == 0
    assert json.loads((out / "report.json").read_text())["config"]["loss_options"] == {"val_error": [0.1, 0.2, 0.3,
                                                                                                   0.4]}
    capsys.readouterr()
    assert main(["train", "--features", str(cache), "--out", str(tmp_path / "x"), "--loss", "ldam",
                 "--loss-option", "priors=1,1", *FAST]) == 2
    assert "priors has 2 entries but the data has 4 classes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

def test_a_fixed_cbar_on_a_loss_without_one_is_refused(cache, tmp_path, capsys):
    """`mr2probe train --cbar 3` (cross-entropy, no c̄ in its loss) trained exactly as without it, and the run said
    "selected: lr=..., cbar=3" and recorded config.cbar = 3: refused before any fit, as max_overall_drop is where
    it would do nothing."""
    out = tmp_path / "ce"
    assert main(["train", "--features", str(cache), "--out", str(out), "--cbar", "3", *FAST]) == 2
    assert capsys.readouterr().err == ("mr2probe train: error: cbar=3 is the mean margin c̄ of the losses uniform, mr2, "
                                       "mr2_spread, mr2_valerr; loss 'ce' has no c̄, so it would do nothing.\n")
    assert not out.exists()
    assert main(["train", "--features", str(cache), "--out", str(out), "--cbar", "3", "--loss", "uniform", *FAST]) == 0
    assert json.loads((out / "report.json").read_text())["config"]["cbar"] == 3.0

@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be made")
def test_an_out_where_no_run_can_be_written_is_refused_before_any_fit(cache, tmp_path, capsys, monkeypatch):
    """`train --out /proc/x` ran every fit (minutes on real data) and failed only then, '[Errno 2] No such file or
    directory: /proc/x'; --out under a file said so only after the fits too: both refused first, naming the place."""
    import probe

    fits = []
    monkeypatch.setattr(probe, "run_probe", lambda *a, **k: fits.append(1))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for out, problem in (("/proc/mr2probe-test/run", "No such file or directory in /proc"),
                         (str(a_file / "run"), f"{a_file} is a file, not a folder")):
        assert main(["train", "--features", str(cache), "--out", out, *FAST]) == 2
        assert capsys.readouterr().err == (f"mr2probe train: error: cannot write a run to {out}: {problem}; choose "
                                           "another --out.\n")
    assert fits == [] and a_file.read_text() == "x"

def test_optimizer_and_tol_flags_reach_the_fits(cache, tmp_path, capsys):
    """--optimizer and --tol set ProbeConfig's fields; without --lr / --wd the optimiser's own grids are used
    (adam: L2 strengths α / n_train; adamw: wd {0, 1, 10}), as the report records."""
    from probe.config import L2_STRENGTHS

    out = tmp_path / "adam"
    assert main(["train", "--features", str(cache), "--out", str(out), "--epochs", "5", "--seeds", "1",
                 "--no-progress", "--cv", "0", "--tol", "0"]) == 0
    report = json.loads((out / "report.json").read_text())
    config, n_train = report["config"], sum(row["n_train"] for row in report["per_class"])
    assert config["optimizer"] == "adam" and config["tol"] == 0 and config["lr_grid"] == [0.01]
    assert config["wd_grid"] == pytest.approx([a / n_train for a in L2_STRENGTHS])
    out = tmp_path / "adamw"
    assert main(["train", "--features", str(cache), "--out", str(out), "--epochs", "5", "--seeds", "1",
                 "--no-progress", "--cv", "0", "--optimizer", "adamw"]) == 0
    config = json.loads((out / "report.json").read_text())["config"]
    assert (config["optimizer"], config["lr_grid"], config["wd_grid"]) == ("adamw", [0.001, 0.01], [0.0, 1.0, 10.0])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--features", str(cache), "--out", str(tmp_path / "bad"), "--optimizer", "lbfgs"])
    assert "invalid choice: 'lbfgs'" in capsys.readouterr().err


def test_adapter_rank_reaches_the_trained_adapter(cache, tmp_path):
    out = tmp_path / "mlp"
    args = ["train", "--features", str(cache), "--out", str(out), "--adapter", "mlp", "--adapter-rank", "3",
            "--lambda", "0.1", *FAST]
    assert main(args) == 0
    config = json.loads((out / "report.json").read_text())["config"]
    assert config["adapter"] == "mlp" and config["adapter_rank"] == 3
    head = json.loads((out / "head.json").read_text())
    assert head["adapter"] == {"name": "mlp", "options": {"rank": 3}}


def test_head_options_reach_the_saved_head(cache, tmp_path, capsys):
    out = tmp_path / "fixed"
    args = ["train", "--features", str(cache), "--out", str(out), "--head", "cosine", "--head-option",
            "learnable_scale=false", "--head-option", "logit_scale=8", *FAST]
    assert main(args) == 0
    assert json.loads((out / "report.json").read_text())["config"]["head_options"] == {
        "learnable_scale": False, "logit_scale": 8.0}
    head = json.loads((out / "head.json").read_text())["head"]
    assert head == {"name": "cosine", "options": {"logit_scale": 8.0, "learnable_scale": False}}
    capsys.readouterr()
    code = main(["train", "--features", str(cache), "--out", str(tmp_path / "bad"), "--head-option", "bias=yes",
                 *FAST])
    assert code == 2 and "--head-option expects NAME=VALUE with a number, true or false" in capsys.readouterr().err


def test_errors_exit_2_with_message(cache, tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "report.json" in capsys.readouterr().err
    code = main(["train", "--features", str(cache), "--out", str(tmp_path / "x"), "--loss", "nope", *FAST])
    assert code == 2
    assert "Unknown loss 'nope'" in capsys.readouterr().err
    code = main(["train", "--features", str(cache), "--out", str(tmp_path / "y"), "--lambda", "0.5", *FAST])
    assert code == 2 and "adapter" in capsys.readouterr().err


def test_train_help_quotes_probe_config_batch_size(capsys):
    """The help gives ProbeConfig's batch-size default (auto: full batch for small sets, else mini-batches)."""
    from probe import ProbeConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"largest mini-batch (default: ProbeConfig's, {ProbeConfig().batch_size};" in text
    assert ProbeConfig().batch_size == "auto"
    assert "auto is full batch up to 4096 training rows, else 1024;" in text
    assert "an epoch's batches differ by at most one row" in text


def test_progress_bar_redraws_at_its_interval_not_at_every_epoch(cache, tmp_path, capsys, monkeypatch):
    # tqdm redraws at most every mininterval (0.1 s) on update(); a description change must not redraw by itself
    import probe

    calls = []
    real_run_probe = probe.run_probe

    def counting_run_probe(*args, progress, **kwargs):
        def counted(fraction, stage):
            calls.append(stage)
            progress(fraction, stage)
        return real_run_probe(*args, progress=counted, **kwargs)

    monkeypatch.setattr(probe, "run_probe", counting_run_probe)  # what `mr2probe train` imports when it runs
    args = ["train", "--features", str(cache), "--out", str(tmp_path / "run"), "--epochs", "60", "--seeds", "2"]
    assert main(args) == 0
    redraws = capsys.readouterr().err.count("\r")
    assert len(calls) > 100 and redraws < len(calls) / 4, (len(calls), redraws)


def test_invalid_configs_are_one_line_naming_the_field(cache, tmp_path, capsys):
    base = ["train", "--features", str(cache), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*base, "--lr", "nan"]) == 2
    assert capsys.readouterr().err.strip() == \
        "mr2probe train: error: lr_grid value (lr) must be a finite number, got nan."
    assert main([*base, "--epochs", "0"]) == 2  # the message names the field itself: no prefix, no "Value error"
    assert capsys.readouterr().err.strip() == \
        "mr2probe train: error: epochs must be an integer in [1, 10000], got 0."
    assert main([*base, "--select", "hard", "--max-overall-drop", "-1"]) == 2  # in its unit, with the value
    assert capsys.readouterr().err.strip() == "mr2probe train: error: max_overall_drop must be between 0 and 100 " \
        "points of overall accuracy, got -1."
    assert not (tmp_path / "r").exists()


def test_a_reference_trained_on_other_features_is_named_in_a_warning(erm_dir, cache, tmp_path, capsys):
    """Its validation accuracy ranks this run's classes and sets the hard criterion's floor: the report says whose
    features those were, and the terminal header names this run's."""
    reference = tmp_path / "erm_other"
    shutil.copytree(erm_dir, reference)
    stored = json.loads((reference / "report.json").read_text())
    stored["features"] = {"fingerprint": "0123456789abcdef", "encoder": "openclip:ViT-B-32", "cache": "clip.h5"}
    (reference / "report.json").write_text(json.dumps(stored))
    out = tmp_path / "mr2"
    assert main(["train", "--features", str(cache), "--out", str(out), "--loss", "mr2", "--reference",
                 str(reference), *FAST]) == 0
    warnings = json.loads((out / "report.json").read_text())["warnings"]
    assert (f"The reference run erm used other features (openclip:ViT-B-32, cache 0123456789ab… (clip.h5)) than "
            f"this run (synthetic, cache t ({cache})): its validation accuracy ranks") in " ".join(warnings)
    text = capsys.readouterr().out
    assert f"features: synthetic, cache t ({cache})" in text and "used other features" in text


def test_terminal_tables_take_a_wide_terminals_width(erm_dir, capsys, monkeypatch):
    """Tables were cut at 120 columns on a 200-column terminal (class names, r² values; a new-user round); piped
    output keeps the fixed width, but for a table whose numbers need more (they were cut with no mark; a new-user
    round)."""
    import shutil
    import sys

    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["report", str(erm_dir)]) == 0
    piped = capsys.readouterr().out
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((200, 50)))
    assert main(["report", str(erm_dir)]) == 0
    wide = capsys.readouterr().out
    assert max(len(line) for line in piped.splitlines() if "│" not in line and not line.startswith(" ")) <= 120
    assert max(map(len, piped.splitlines())) < max(map(len, wide.splitlines())) <= 200
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((80, 50)))
    from app.commands import terminal_width

    assert terminal_width(120) == 120  # never narrower than the tables' own width
    # COLUMNS where set, a pipe too (`COLUMNS=220 mr2probe report RUN | less` was cut at 120; a scale round)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    for columns, width in (("220", 220), ("80", 120), ("x", 120), ("99999", 1000)):
        monkeypatch.setenv("COLUMNS", columns)
        assert terminal_width(120) == width, columns


def test_report_at_an_80_column_terminal_prints_every_line_within_80(erm_dir, capsys, monkeypatch, tmp_path):
    """COLUMNS=80 printed the report at 120 columns, every long line wrapped by the terminal, though format_report
    fits every line at 80 (tests/probe/test_per_class_intervals.py): the report takes a terminal of 80 columns or
    more, and so does compare (its tables had kept 110 columns: tests/probe/test_compare.py)."""
    from app.commands import terminal_width
    from probe.report_text import COMPARE_WIDTH

    for columns in (80, 120):
        monkeypatch.setenv("COLUMNS", str(columns))
        assert main(["report", str(erm_dir)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert max(map(len, lines)) <= columns and max(map(len, lines)) > columns - 10
        copies = [shutil.copytree(erm_dir, tmp_path / f"copy{columns}_{k}") for k in (1, 2)]
        for runs in ([erm_dir, copies[0]], [erm_dir, *copies]):  # one comparison, and several
            assert main(["compare", *map(str, runs)]) == 0
            lines = capsys.readouterr().out.splitlines()
            assert max(map(len, lines)) <= columns and max(map(len, lines)) > columns - 10
    monkeypatch.setenv("COLUMNS", "60")
    assert terminal_width(120, 80) == 80 and terminal_width(COMPARE_WIDTH) == COMPARE_WIDTH


def test_report_lists_the_worst_classes_of_a_large_run_unless_all_classes(erm_dir, capsys, monkeypatch):
    import probe.report_text

    monkeypatch.setattr(probe.report_text, "TERMINAL_CLASSES", 2)  # as if this 4-class run had more than the limit
    report = json.loads((erm_dir / "report.json").read_text())
    worst = sorted(report["per_class"], key=lambda r: (r["accuracy"], r["index"]))[:2]

    def listed(text: str) -> set[str]:
        # a table row's first cell (a line of the confusions column, wrapped between its entries, may start with one)
        return {name for line in text.splitlines() for name in NAMES if line.startswith(f"  {name} ")}

    assert main(["report", str(erm_dir)]) == 0
    short = capsys.readouterr().out
    assert listed(short) == {r["name"] for r in worst}
    assert "the 2 worst of 4 classes by test accuracy; the other 2 are in per_class.csv" in short
    assert main(["report", str(erm_dir), "--all-classes"]) == 0
    every = capsys.readouterr().out
    assert listed(every) == set(NAMES) and "worst of" not in every


def test_compare_lists_the_classes_that_moved_most_unless_all_classes(erm_dir, capsys, monkeypatch):
    import probe.report_text

    from probe.report_text import COMPARE_WIDTH

    monkeypatch.setattr(probe.report_text, "TERMINAL_CLASSES", 2)
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["compare", str(erm_dir), str(erm_dir)]) == 0
    printed = capsys.readouterr()
    short = printed.out
    assert sum(line.strip().split(" ")[0] in NAMES for line in short.splitlines()) == 0  # a run against itself
    # said so (a new-user round: a normal comparison, all zeros, without a word)
    from probe import load_report

    run_id = load_report(erm_dir).run_id  # among the comparison's warnings, as GET /api/compare gives them
    assert f"warning: run {run_id} is compared with itself: every difference is 0" in " ".join(short.split())

    warnings = load_report(erm_dir).warnings
    # as the exports, wrapped at the comparison's width (each was one line of up to 400 characters)
    assert warnings and all(" ".join(f"warning (both runs): {w}".split()) in " ".join(short.split()) for w in warnings)
    assert max(map(len, short.splitlines())) <= COMPARE_WIDTH
    assert main(["compare", str(erm_dir), str(erm_dir), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "## Per class (no class's accuracy changed)" in md and f"- **Base run:** {erm_dir}" in md
    assert "no class's test accuracy changed, of 4" in " ".join(short.split())
    assert main(["compare", str(erm_dir), str(erm_dir), "--all-classes"]) == 0
    every = capsys.readouterr().out
    assert sum(line.strip().split(" ")[0] in NAMES for line in every.splitlines()) == 4 and "changed" not in every


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"mr2probe {version('mr2probe')}\n"


def test_an_unknown_name_is_one_line_without_quotes_around_it(tmp_path, capsys):
    """A KeyError's message (an unknown encoder) was printed as its str(), wrapped in quotes (found by an outside
    round)."""
    from testdata import image_zip

    (tmp_path / "d.zip").write_bytes(image_zip(2, 1, ("cat", "dog")))
    assert main(["extract", "--data", str(tmp_path / "d.zip"), "--encoder", "nope", "--out",
                 str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mr2probe extract: error: Unknown encoder 'nope'; available: "), err


def test_an_out_that_is_an_input_or_a_run_file_is_refused(erm_dir, cache, tmp_path, capsys):
    """predict, report and compare wrote over the run's report.json or head, or the cache they read (an attack
    round): refused before any work, the files untouched."""
    before = {p.name: p.read_bytes() for p in erm_dir.iterdir()}
    cached = cache.read_bytes()
    for argv, what in (
            (["predict", str(erm_dir), "--features", str(cache), "--out", str(erm_dir / "report.json")], "report.json"),
            (["predict", str(erm_dir), "--features", str(cache), "--out", str(erm_dir / "head.safetensors")],
             "head.safetensors"),
            (["predict", str(erm_dir), "--features", str(cache), "--out", str(cache)], None),
            (["predict", str(erm_dir), "--features", str(cache), "--out", str(erm_dir / "seen_sources.npz")],
             "seen_sources.npz"),
            (["report", str(erm_dir), "--format", "html", "--out", str(erm_dir / "report.json")], "report.json"),
            (["report", str(erm_dir / "report.json"), "--format", "md", "--out", str(erm_dir / "per_class.csv")],
             "per_class.csv"),
            (["compare", str(erm_dir), str(erm_dir), "--format", "html", "--out", str(erm_dir / "head.json")],
             "head.json")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert (f"is the run's own {what}" if what else "is the file this command reads") in err, (argv, err)
    os.link(erm_dir / "report.json", tmp_path / "hard-link")  # the same file by another name (an attack round)
    assert main(["report", str(erm_dir), "--format", "md", "--out", str(tmp_path / "hard-link")]) == 2
    assert "is the run's own report.json" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in erm_dir.iterdir()} == before and cache.read_bytes() == cached
    assert main(["report", str(erm_dir), "--format", "html", "--out", str(erm_dir / "report.html")]) == 0  # beside
    (erm_dir / "report.html").unlink()


@pytest.mark.parametrize("seeds", ["0", "-3", "21", "99999999999999999999"])
def test_a_seed_count_out_of_bounds_is_one_line_before_anything_is_built(cache, tmp_path, capsys, seeds):
    """--seeds 10**20 built the list of seeds first (a traceback, or gigabytes at 10**8; an attack round)."""
    assert main(["train", "--features", str(cache), "--out", str(tmp_path / "r"), "--seeds", seeds]) == 2
    assert f"--seeds must be an integer in [1, 20], got {seeds}." in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_extract_help_names_every_manifest_column_the_reader_takes(capsys):
    """The help's columns are written out (importing feature_cache.manifest imports torch: --help stays fast), so
    they are checked against the reader's (a README round found file_path accepted and not named)."""
    from feature_cache.manifest import LABEL_COLUMNS, PATH_COLUMNS, SPLIT_COLUMNS

    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"({', '.join(PATH_COLUMNS)})" in text
    assert f"({', '.join(LABEL_COLUMNS)})" in text and f"({' or '.join(SPLIT_COLUMNS)}:" in text


def test_a_folder_for_out_is_named_before_any_work_by_every_exporting_command(erm_dir, tmp_path, capsys):
    """A README round: report --format html --out FOLDER ended in '[Errno 21] Is a directory' (exit 1) after its
    work, where predict named the problem; report and compare now say it as predict does (exit 2)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    for argv, example in ((["report", str(erm_dir), "--format", "html"], "report.html"),
                          (["compare", str(erm_dir), str(erm_dir), "--format", "md"], "compare.html")):
        assert main([*argv, "--out", str(folder)]) == 2
        assert f"error: --out {folder} is a folder; give a file name, e.g. {folder / example}" in capsys.readouterr().err
        assert main([*argv, "--out", str(tmp_path / "nowhere" / "x.md")]) == 2
        assert f"the folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
        if os.path.isdir("/proc/self"):  # Linux: no file can be made in /proc ('[Errno 2]', exit 1, after the work)
            assert main([*argv, "--out", "/proc/x.md"]) == 2
            assert "error: --out /proc/x.md: nothing can be written there (No such file or directory in /proc)" in \
                capsys.readouterr().err
    assert not any(folder.iterdir())


def test_a_run_on_a_test_split_carved_out_of_its_data_set_says_so(cache, erm_dir, tmp_path):
    """The extraction said that a data set without a test/ folder had its test split carved out of it; the run's
    report and page did not, and every test figure of a small upload rested on those images (a dashboard round)."""
    import h5py

    carved = tmp_path / "carved.h5"
    shutil.copy(cache, carved)
    with h5py.File(carved, "r+") as f:  # what open_dataset records of a data set without a test split
        f.attrs["split_params"] = json.dumps({"layout": "split-folders", "val_fraction": 0.1, "test_fraction": 0.2,
                                              "seed": 0, "max_per_class": None})
    assert open_cache(carved).provenance()["test_carved"] == 0.2
    out = tmp_path / "run"
    assert main(["train", "--features", str(carved), "--out", str(out), *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["features"]["test_carved"] == 0.2
    assert (f"The test split was carved out of the data set, which had none of its own (no test/ folder): 0.2 of each "
            f"class's images, {40 * K} in all (40 per class). Every test figure here is measured on them; give the "
            "data set a test/ folder to choose the images a probe is judged on.") in report["warnings"]
    assert open_cache(cache).provenance()["test_carved"] is None  # a test split of its own: nothing said
    assert not any("carved" in w for w in json.loads((erm_dir / "report.json").read_text())["warnings"])


def test_compare_several_runs_gives_one_row_each_with_holm_corrected_tests(erm_dir, cache, tmp_path, capsys):
    """`compare RUN_A RUN_B RUN_C`: which of several probes to ship took one pairwise comparison per run, each
    with its own 5 % chance of a gain by noise. Each row is that pairwise comparison's deltas and intervals; its
    word (gain / loss / within noise) uses the sign-flip p-values Holm-corrected over the runs."""
    from probe.uncertainty import holm
    from probe.selection import SIGN_TEST_ALPHA

    runs = []
    untrained = ["--epochs", "1", "--lr", "0.00001", "--wd", "0", "--seeds", "2", "--no-progress"]
    for name, flags in (("focal", ["--loss", "focal", *FAST]),
                        ("mr2", ["--loss", "mr2", "--reference", str(erm_dir), *FAST]), ("short", untrained)):
        out = tmp_path / name
        assert main(["train", "--features", str(cache), "--out", str(out), *flags]) == 0
        runs.append(out)
    capsys.readouterr()
    assert main(["compare", str(erm_dir), *map(str, runs), "--json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert [row["run"] for row in many["rows"]] == ["focal", "mr2", "short"] and many["base"] == "erm"
    pairwise = []
    for run in runs:
        assert main(["compare", str(erm_dir), str(run), "--json"]) == 0
        pairwise.append(json.loads(capsys.readouterr().out))
    assert many["comparisons"] == pairwise
    for key in ("overall", "balanced", "hard", "worst_class"):
        expected = holm([p["metrics"][key]["p_value"] for p in pairwise])
        for row, pair, holm_p in zip(many["rows"], pairwise, expected):
            cell, metric = row["metrics"][key], pair["metrics"][key]
            assert (cell["delta"], cell["delta_ci"], cell["p_value"]) == (metric["delta"], metric["delta_ci"],
                                                                          metric["p_value"])
            assert cell["holm_p"] == holm_p
            if metric["beyond_noise"] is not None:
                assert cell["beyond_noise"] == (metric["beyond_noise"] and holm_p <= SIGN_TEST_ALPHA)
    short = many["rows"][2]["metrics"]["overall"]
    assert short["delta"] < 0 and short["beyond_noise"]  # one epoch at lr 1e-5: a loss the table shows
    assert main(["compare", str(erm_dir), *map(str, runs)]) == 0
    text = capsys.readouterr().out
    assert "3 runs, each against the base erm" in text and "Holm" in text
    line = next(line for line in text.splitlines() if line.lstrip().startswith("short "))
    assert line.count(" loss") == 3  # overall, balanced and the hard third; the worst classes are two classes
    assert "short: ERM (ce), linear head" in text and "base erm: overall " in text
    assert main(["compare", str(erm_dir), *map(str, runs), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# mr2probe compare: erm vs 3 runs\n") and "| run | overall | balanced | hard |" in md
    assert next(line for line in md.splitlines() if line.startswith("| short |")).count(" loss [") == 3
    out = tmp_path / "many.html"
    assert main(["compare", str(erm_dir), *map(str, runs), "--format", "html", "--out", str(out)]) == 0
    assert "<td>short</td>" in out.read_text() and "Holm" in out.read_text()


def test_compare_several_runs_refuses_a_run_given_twice(erm_dir, tmp_path, capsys):
    """A run named twice (its folder, then its report.json) was two rows, and Holm's family counted it twice: each
    run is one row, as GET /api/compare/many refuses an ``other`` given twice. The base among the others, a row of
    zeros that only made Holm's correction of the others stricter, is refused too."""
    import shutil

    base = tmp_path / "base"
    shutil.copytree(erm_dir, base)
    capsys.readouterr()
    assert main(["compare", str(base), str(erm_dir), str(erm_dir / "report.json")]) == 2
    captured = capsys.readouterr()
    assert f"{erm_dir / 'report.json'} is the run {erm_dir} again: give each run once" in captured.err
    assert captured.out == ""
    assert main(["compare", str(erm_dir), str(base), str(erm_dir / "report.json")]) == 2
    assert f"{erm_dir / 'report.json'} is the base run {erm_dir}: leave it out" in capsys.readouterr().err


def test_compare_several_runs_names_each_by_its_folder_as_given(erm_dir, tmp_path, capsys):
    """Two sweeps' runs of one name (sweep_a/erm, sweep_b/erm) were two rows 'erm' beside a base 'erm' in the table
    and its Markdown (named by the run id report.json keeps): where run ids are alike, each run is named by its
    folder as given, as the pairwise --format names the two runs; the JSON keeps the run ids, as GET
    /api/compare/many."""
    import shutil

    copies = [tmp_path / sweep / "erm" for sweep in ("sweep_a", "sweep_b")]
    for copy in copies:
        shutil.copytree(erm_dir, copy)
    capsys.readouterr()
    assert main(["compare", str(erm_dir), *map(str, copies), "--format", "md"]) == 0
    md = capsys.readouterr().out
    for copy in copies:
        assert f"| {copy} | " in md
    assert main(["compare", str(erm_dir), *map(str, copies)]) == 0
    text = capsys.readouterr().out
    assert all(f"{copy}: ERM (ce)" in text for copy in copies) and f"base {erm_dir}: overall" in text
    assert main(["compare", str(erm_dir), *map(str, copies), "--json"]) == 0
    assert [row["run"] for row in json.loads(capsys.readouterr().out)["rows"]] == ["erm", "erm"]


def test_holm_adjusts_a_family_and_leaves_untested_members_out():
    from probe.uncertainty import holm

    assert holm([0.01, 0.04, 0.03, None, 0.5]) == pytest.approx([0.04, 0.09, 0.09, None, 0.5])
    assert holm([0.6, 0.4]) == [0.8, 0.8] and holm([None]) == [None] and holm([]) == []


def test_a_class_without_test_images_is_left_out_with_drop_class(cache, tmp_path, capsys):
    """A class without test images made a whole cache untrainable ('drop the class or add samples'), with no way
    to drop it but extracting again without it (an extremes round). --drop-class leaves its images out of every
    split; the run is of the other classes, numbered again in their order."""
    source = open_cache(cache)
    splits = {}
    for split in ("train", "val", "test"):
        x, y = source.load(split)
        keep = (y != NAMES.index("cat")) if split == "test" else np.ones(len(y), dtype=bool)
        splits[split] = (x[keep], y[keep], [s for s, k in zip(source.sources(split), keep) if k])
    lacking = tmp_path / "lacking.h5"
    write_cache(lacking, splits, NAMES, {"encoder": "synthetic", "default_head": "linear", "normalized": False,
                                         "fingerprint": "u"}, dtype="float32")
    out = tmp_path / "run"
    assert main(["train", "--features", str(lacking), "--out", str(out), *FAST]) == 2
    assert "mr2probe train --drop-class NAME" in capsys.readouterr().err
    assert main(["train", "--features", str(lacking), "--out", str(out), "--drop-class", "cat", *FAST]) == 0
    said = capsys.readouterr()
    assert "left out: cat (3 classes trained on)" in said.err
    # a name with white space around it is the one class it names trimmed, said so (the launch form's names)
    assert main(["train", "--features", str(lacking), "--out", str(tmp_path / "spaced"), "--drop-class", " cat ",
                 *FAST]) == 0
    assert "left out: cat (3 classes trained on; ' cat ' is the class 'cat')" in capsys.readouterr().err
    assert json.loads((tmp_path / "spaced" / "report.json").read_text())["config"]["drop_classes"] == ["cat"]
    # the report says so in each of its views (it read as a report of the whole cache)
    assert "left out: cat (their images in no split: the run is of the other classes)" in said.out
    from probe.export import report_html, report_markdown

    saved = json.loads((out / "report.json").read_text())
    assert "- **Left out:** cat (their images in no split" in report_markdown(saved)
    assert "<dt>Left out</dt><dd>cat (their images in no split" in report_html(saved)
    report = json.loads((out / "report.json").read_text())
    assert report["class_names"] == ["apple", "bus", "dog"] and report["config"]["drop_classes"] == ["cat"]
    expected = {name: int((splits["test"][1] == NAMES.index(name)).sum()) for name in report["class_names"]}
    assert {row["name"]: row["n_test"] for row in report["per_class"]} == expected
    train = {name: int((splits["train"][1] == NAMES.index(name)).sum()) for name in report["class_names"]}
    assert {row["name"]: row["n_train"] for row in report["per_class"]} == train
    for drop, says in ((["Cat"], "no class named 'Cat' to leave out (did you mean 'cat'?)"),
                       (["apple", "bus", "cat"], "leaves 1 class; a probe needs 2")):
        assert main(["train", "--features", str(lacking), "--out", str(tmp_path / "x"), "--force",
                     *[f"--drop-class={name}" for name in drop], *FAST]) == 2
        assert says in capsys.readouterr().err


def test_compare_several_runs_marks_a_time_ratio_of_another_setting(erm_dir, tmp_path, capsys):
    """`compare RUN_A RUN_B RUN_C` showed each run's time over the base's as a bare number, unexplained, and a run
    trained with other threads read 43× slower alongside the same-setting ratios (the pairwise comparison says
    'not the same setting'): the column is explained and such a ratio is marked, in every view."""
    runs = []
    for name, threads in (("same", None), ("other", 7)):
        out = tmp_path / name
        shutil.copytree(erm_dir, out)
        report = json.loads((out / "report.json").read_text())
        report["run_id"] = name
        report["timing"]["threads"] = threads or report["timing"]["threads"]
        (out / "report.json").write_text(json.dumps(report))
        runs.append(str(out))
    capsys.readouterr()
    assert main(["compare", str(erm_dir), *runs, "--json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert [row["time_comparable"] for row in many["rows"]] == [True, False]
    setting = json.loads((erm_dir / "report.json").read_text())["timing"]
    base_setting = f"cpu, {setting['threads']} thread{'s' * (setting['threads'] != 1)}"
    assert many["note"].endswith(f"time ×: the run's wall time over the base's; * not the same setting, the ratio "
                                 f"mixes both: other ({base_setting} vs cpu, 7 threads).")
    assert main(["compare", str(erm_dir), *runs, "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert [next(line for line in md.splitlines() if line.startswith(f"| {name} |")).rstrip(" |").endswith("*")
            for name in ("same", "other")] == [False, True]


def test_compare_several_runs_carries_the_runs_own_warnings_in_every_view(erm_dir, tmp_path, capsys):
    """Choosing which probe to ship from `compare RUN_A RUN_B RUN_C`, a run whose report warned (its shipped head
    underconfident, 66 % confidence at 91 % accuracy) read as clean as the others: the table and its md / html
    had none of the runs' own warnings, which the pairwise comparison and its exports carry."""
    from probe import load_report
    from probe.export import _md

    shared = load_report(erm_dir).warnings
    assert shared  # the fixture's small validation split
    runs = []
    for name in ("plain", "warned"):
        out = tmp_path / name
        shutil.copytree(erm_dir, out)
        report = json.loads((out / "report.json").read_text())
        report["run_id"] = name
        report["warnings"] += ["The shipped head is underconfident."] if name == "warned" else []
        (out / "report.json").write_text(json.dumps(report))
        runs.append(str(out))
    capsys.readouterr()
    assert main(["compare", str(erm_dir), *runs, "--json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert many["run_warnings"] == ([{"run": None, "text": w} for w in shared]
                                    + [{"run": "warned", "text": "The shipped head is underconfident."}])
    assert main(["compare", str(erm_dir), *runs]) == 0
    assert "warning (warned): The shipped head is underconfident." in capsys.readouterr().out
    assert main(["compare", str(erm_dir), *runs, "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "- **Warning (warned):** The shipped head is underconfident." in md
    assert f"- **Warning (every run):** {_md(shared[0])}" in md
    assert md.index("| run | overall |") < md.index("## Warnings") < md.index("**Warning (")


def test_failures_lines_name_p_label_first_and_the_predicted_class_s_probability_after_it(erm_dir, capsys):
    """Each row leads with p(label) and gives the predicted class's probability after its name, as label-issues
    does: a bare leading per cent ("45.6%  labelled 1  predicted 7") read as a share labelled 1 (a new-user round)."""
    assert main(["failures", str(erm_dir), "--limit", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert main(["failures", str(erm_dir), "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == len(rows) > 0
    for line, row in zip(lines, rows):
        fields = line.split()
        assert fields[:2] == ["p(label)", f"{row['label_probability']:.1%}"]
        at = fields.index("predicted")
        assert fields[at + 1:at + 3] == [row["predicted"], f"{row['confidence']:.1%}"]
    assert main(["failures", str(erm_dir), "--class", rows[0]["true"], "--limit", "1"]) == 0
    line = capsys.readouterr().out.splitlines()[1].split()
    assert line[0] == "p(label)" and line[2] == "predicted" and line[4].endswith("%")


def test_failures_of_every_class_predicted_as_one_count_its_mistakes_only(erm_dir, capsys):
    """Without --class, --predicted NAME lists the images of other classes predicted as NAME: the header says they
    are misclassified as NAME, not that they are all the test images predicted as NAME (a new-user round read "9 of
    449 test images predicted as 7" where the probe predicted 48 as 7)."""
    from probe.predictions import Predictions

    predictions = Predictions.load(erm_dir)
    labels, first = predictions.labels, predictions.predicted[0]
    k = max(range(K), key=lambda c: ((first == c) & (labels != c)).sum())  # the class most mistaken for
    name, wrong = NAMES[k], int(((first == k) & (labels != k)).sum())
    assert 0 < wrong < int((first == k).sum())
    assert main(["failures", str(erm_dir), "--predicted", name, "--limit", "1"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith(f"every class: {wrong} of {len(labels)} test images misclassified as {name} (first seed)")


def test_train_keeps_freed_memory_for_its_run(cache, tmp_path, monkeypatch):
    """mr2probe train is a process of its own: it keeps the measured allocator setting (probe.allocator) that a
    library call of run_probe leaves off by default."""
    import probe.run

    calls = []
    monkeypatch.setattr(probe.run, "keep_freed_memory", lambda: calls.append("keep"))
    monkeypatch.setattr(probe.run, "release_freed_memory", lambda: calls.append("release"))
    assert main(["train", "--features", str(cache), "--out", str(tmp_path / "run"), *FAST]) == 0
    assert calls == ["keep", "release"]


HOLD_THE_LOCK = """
import fcntl, os, sys
handle = open(sys.argv[1], "a+")  # what a train writing that --out holds (probe.rundir.run_lock)
fcntl.flock(handle, fcntl.LOCK_EX)
handle.write(f"pid {os.getpid()}")
handle.flush()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_train_to_an_out_being_written_is_refused_at_once_and_a_killed_ones_lock_is_not(cache, tmp_path,
                                                                                               capsys):
    """Two trains to one --out at once shared its .writing folder and mixed their files. The second is refused
    within a second, probe.rundir.MOVE_WAIT (busy: exit 1, as an extraction running), naming the first's process;
    once that process is killed its lock goes with it, and the .writing and .lock it left do not stop the next
    train."""
    import subprocess
    import sys

    out = tmp_path / "run"
    out.mkdir()
    (out / ".writing").mkdir()
    (out / ".writing" / "head.json").write_text("the first train's")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(out / ".lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(["train", "--features", str(cache), "--out", str(out), *FAST]) == 1
        err = capsys.readouterr().err
        assert err == (f"mr2probe train: error: {out} is being written by another process (pid {holder.pid}); wait "
                       "for it to finish, or write to another folder.\n")
        assert (out / ".writing" / "head.json").read_text() == "the first train's"  # left alone
    finally:
        holder.kill()
        holder.wait()
    assert (out / ".lock").read_text() == f"pid {holder.pid}"  # as a killed process leaves it
    assert main(["train", "--features", str(cache), "--out", str(out), *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["head.json", "head.safetensors", "per_class.csv",
                                                     "predictions.npz", "report.json", "seen_sources.npz"]


def test_failures_of_a_run_replaced_between_its_reads_are_the_new_runs(erm_dir, tmp_path, capsys, monkeypatch):
    """failures read report.json, then predictions.npz: a train --force that moved its run in between gave the old
    run's class names (its config, its cache) with the new run's predictions. Read again: the new run's, whole."""
    from probe.predictions import Predictions

    out = tmp_path / "run"
    shutil.copytree(erm_dir, out)
    calls = replaced_meanwhile(out, monkeypatch, Predictions, "load")
    assert main(["failures", str(out), "--limit", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(calls) == 2 and rows and all(row["true"] in [n.upper() for n in NAMES] for row in rows), rows


def test_compare_of_a_run_replaced_between_its_reads_is_the_new_runs(erm_dir, tmp_path, capsys, monkeypatch):
    """compare read both reports, then both runs' predictions: a run replaced in between was compared by its old
    report with its new predictions. Read again: the new run's, whole."""
    import probe.predictions as predictions

    out = tmp_path / "run"
    shutil.copytree(erm_dir, out)
    calls = replaced_meanwhile(out, monkeypatch, predictions, "load_pair")
    assert main(["compare", str(erm_dir), str(out), "--json"]) == 2  # the new run's other class names
    err = capsys.readouterr().err
    assert "only the base run has 'apple'" in err and "only the other run has 'APPLE'" in err and len(calls) == 2


def test_predict_of_a_run_replaced_between_its_probe_and_its_predictions_is_the_new_runs(erm_dir, cache, tmp_path,
                                                                                         capsys, monkeypatch):
    """predict loaded the probe, then read predictions.npz to say whether it reproduces the report: a train --force
    that moved its run in between checked the old run's probe against the new run's predictions. Read again: the
    new run's, whole."""
    from probe.predictions import Predictions

    out = tmp_path / "run"
    shutil.copytree(erm_dir, out)
    calls = replaced_meanwhile(out, monkeypatch, Predictions, "load", edit=head_named_too)
    # the new run's probe, whole: its classes in capitals are none of the cache's (the old probe's scores passed), so
    # its predictions go unscored
    assert main(["predict", str(out), "--features", str(cache), "--json"]) == 0 and calls == [1]
    assert f"is one of the run's ({', '.join(n.upper() for n in NAMES)}): its labels cannot score" in \
        capsys.readouterr().err


def test_export_of_a_run_replaced_between_its_probe_and_its_graph_is_the_new_runs(erm_dir, tmp_path, capsys,
                                                                                  monkeypatch):
    """export loaded the probe (its report's features), then built the graph from the folder again: a train --force
    that moved its run in between wrote the new run's head with the old run's features in the metadata. Read
    again: the new run's, whole."""
    import onnx

    import probe.onnx_export

    def new_features(folder):
        head_named_too(folder)
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        report["features"]["encoder"] = "synthetic-2"
        (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")

    out = tmp_path / "run"
    shutil.copytree(erm_dir, out)
    calls = replaced_meanwhile(out, monkeypatch, probe.onnx_export, "_shipped", edit=new_features)
    assert main(["export", str(out), "--out", str(tmp_path / "p.onnx")]) == 0 and len(calls) == 2
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "p.onnx")).metadata_props}
    assert json.loads(meta["features"])["encoder"] == "synthetic-2"
    assert json.loads(meta["class_names"]) == [n.upper() for n in NAMES]


def test_a_train_whose_stale_incoming_cannot_be_moved_in_is_refused_before_it_trains(erm_dir, cache, tmp_path,
                                                                                       monkeypatch, capsys):
    """A killed train's committed .incoming in --out that this train cannot move in (its permissions): the warning
    was logged, the whole probe trained, and the train then failed at its own move-in (exit 1). Refused at once,
    exit 2, naming the folder; nothing trained, the left replacement kept for the next reader."""
    import probe
    import probe.rundir

    out = tmp_path / "run"
    shutil.copytree(erm_dir, out)
    (out / ".incoming").mkdir()
    (out / ".incoming" / ".files").write_text(json.dumps({"files": ["report.json"], "remove": []}))
    shutil.copy(erm_dir / "report.json", out / ".incoming" / "report.json")

    def refused(run_dir):
        raise PermissionError(13, "Permission denied", str(run_dir / ".incoming" / "report.json"))

    trained = []
    monkeypatch.setattr(probe.rundir, "_move_in", refused)
    monkeypatch.setattr(probe, "run_probe", lambda *args, **kwargs: trained.append(1))
    capsys.readouterr()
    assert main(["train", "--features", str(cache), "--out", str(out), "--force", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"mr2probe train: error: cannot write a run to {out}: the replacement a killed writer left in "
                   f"{out / '.incoming'} cannot be moved in (Permission denied); fix its permissions, or choose "
                   "another --out."), err
    assert trained == [] and (out / ".incoming" / "report.json").is_file()


def test_exported_documents_on_stdout_are_utf8_whatever_the_locale(erm_dir, tmp_path, monkeypatch):
    """Under PYTHONIOENCODING=latin-1 (or Windows' cp1252, stdout redirected to a file), `report --csv > x.csv`
    wrote 'é' as one latin-1 byte (a CSV pandas cannot read as UTF-8) and failed on '中文': the CSV, the JSON and
    the Markdown on stdout are the UTF-8 bytes of the run's files, as the service sends them."""
    import io
    import sys

    from probe import load_report, report_csv, report_json
    from probe.export import EXPORT_FORMATS

    run = tmp_path / "run"
    shutil.copytree(erm_dir, run)
    text = (run / "report.json").read_text(encoding="utf-8")
    (run / "report.json").write_text(text.replace('"cat"', '"café 中文"'), encoding="utf-8")
    report = load_report(run)
    assert "café 中文" in report.class_names
    expected = {"--csv": report_csv(report), "--json": report_json(report) + "\n",
                "--format=md": EXPORT_FORMATS["md"](report.model_dump(mode="json"))}
    for flag, document in expected.items():
        out = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
        monkeypatch.setattr(sys, "stdout", out)
        assert main(["report", str(run), flag]) == 0
        out.flush()
        assert out.buffer.getvalue() == document.encode("utf-8"), flag
