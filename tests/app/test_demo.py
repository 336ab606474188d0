"""The demo flow without serving: data set → pipeline job → ERM and MR² reports → comparison and URL."""
from __future__ import annotations

import re

import pytest

from app import demo
from app.cli import main
from app.store import Store
from probe import load_report

from app_testutils import CLASSES, tiny_zip_bytes

pytestmark = pytest.mark.slow


def test_demo_runs_the_pipeline_on_a_tiny_subset(tmp_path, capsys):
    data = tmp_path / "tiny.zip"
    data.write_bytes(tiny_zip_bytes(6, 3))
    state = tmp_path / "state"
    rc = main(["demo", "--data", str(data), "--per-class", "4", "--epochs", "5", "--seeds", "1", "--port", "8123",
               "--data-dir", str(state), "--no-serve"])
    out = capsys.readouterr().out
    assert rc == 0, out
    # --no-serve: no URL where nothing listens; where the runs are and how to see them
    assert "http://" not in out
    match = re.search(r"runs (run_\w+) \(ERM\) and (run_\w+) \(the disparity preset\) are in (.+); `mr2probe serve "
                      r"--data-dir (.+)` shows them", out)
    assert match and match[3] == match[4] == str(state), out
    erm, preset = match[1], match[2]
    store = Store(state / "mr2probe.sqlite3")
    [job] = store.list_jobs()
    assert job["kind"] == "pipeline" and job["status"] == "succeeded"
    assert job["result"]["run_ids"] == [erm, preset]
    assert job["request"]["options"]["max_per_class"] == 4
    assert store.get_run(erm)["loss"] == "ce"
    assert store.get_run(preset)["loss"] == load_report(store.get_run(preset)["path"]).config["loss"]  # what it ships
    assert store.get_run(preset)["reference_run"] == erm
    [dataset] = store.list_datasets()
    assert dataset["source"] == "path" and dataset["path"] == str(data.resolve())
    assert "100.0%" in out  # the progress line reached the end
    # not a terminal: a line per stage and per 10 %, not every redraw of a bar kept as a frame (a new-user round)
    assert "\r" not in out and "[#" not in out
    progress = re.findall(r"^ *(\d+\.\d)%  (.*)$", out, re.MULTILINE)
    assert progress and len(progress) <= 11 + len({stage for _, stage in progress}) and progress[-1][0] == "100.0"
    for name in ("airplane", "cat", "ship"):
        assert name in out  # per-class rows of the comparison table (or of the classes ERM fails on)

    verdict = load_report(store.get_run(preset)["path"]).selection.verdict
    if verdict == "no_safe_improvement":  # stated plainly, with what was found, instead of a row of zeros
        assert f"{preset} (no safe improvement): this run equals the reference (ERM) configuration, as no " \
            "setting" in out
        assert ("fails on, test accuracy (seed mean, 95 % interval), worst first" in out
                or f"The probe ({erm}) classifies every test image right." in out)
        erm_report = load_report(store.get_run(erm)["path"])
        lo, hi = erm_report.summary.overall_ci
        images = sum(row.n_test for row in erm_report.per_class)
        assert images == 3 * len(CLASSES)
        from probe.numbers import percent  # the one rule of every view

        assert (f"The probe ({erm}): overall test accuracy (seed mean) {percent(erm_report.summary.overall, 1)} % "
                f"[{percent(lo, 1)}, {percent(hi, 1)}] over {images} test images (95 % interval).") in out
        assert "Δ points" not in out
    else:
        assert verdict == "improved" and f"{preset} (improved): Hard third " in out


def test_the_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    import io

    from app.commands.demo import _progress_printer

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    jobs = [{"status": "running", "progress": p / 100, "stage": stage} for p, stage in
            [(0, "opening"), (1, "extract"), (2, "extract"), (15, "extract"), (16, "extract"), (40, "train")]]
    jobs.append({"status": "succeeded", "progress": 1.0, "stage": "done"})
    terminal, piped = Terminal(), io.StringIO()
    for stream in (terminal, piped):
        show = _progress_printer(stream)
        for job in jobs:
            show(job)
    assert terminal.getvalue().count("\r") == len(jobs) and terminal.getvalue().endswith("\n")
    assert piped.getvalue().splitlines() == ["  0.0%  opening", "  1.0%  extract", " 15.0%  extract",
                                             " 40.0%  train", "100.0%  done"]
    # a long stage whole on a line of its own, cut with an ellipsis beside the bar ('... (6 candidates, joint fi')
    long = "ce/linear: cross-validation fold 1/5 (6 candidates, joint fit of their 3 seeds)"
    terminal, piped = Terminal(), io.StringIO()
    for stream in (terminal, piped):
        _progress_printer(stream)({"status": "running", "progress": 0.5, "stage": long})
    assert piped.getvalue() == f" 50.0%  {long}\n"
    assert terminal.getvalue().endswith(f" 50.0%  {long[:59]}…")


def test_demo_data_lookup(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="--data .* does not exist"):
        demo.find_demo_data(tmp_path / "missing.zip")
    monkeypatch.setattr(demo, "default_data_candidates", lambda: [tmp_path / "no.zip", tmp_path / "no-fmnist"])
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as refused:
        demo.find_demo_data()
    # what --data takes, as `demo --help` says it: "(a folder or archive of class folders)" left out the CSV manifest
    # and the idx folder its own default is (a review)
    assert str(refused.value).endswith("or pass --data PATH, any data set `mr2probe extract --data` takes (not only "
                                       "class folders: a CSV manifest or an idx folder too)")
    fmnist = tmp_path / "fmnist"
    fmnist.mkdir()
    (fmnist / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setattr(demo, "default_data_candidates", lambda: [tmp_path / "no.zip", fmnist])
    assert demo.find_demo_data() == fmnist.resolve()


def test_demo_help_names_every_kind_of_data_it_takes(capsys):
    """`demo --help` said --data is a "folder or archive of class folders" beside its own default, the Fashion-MNIST
    idx folder (a new-user round); it takes what `extract --data` takes."""
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a CSV manifest or a Fashion-MNIST idx folder" in text and "the idx folder /usr/share/" in text


def test_demo_probes_are_erm_then_the_disparity_preset():
    erm, preset = demo.demo_probes(head="cosine", epochs=7, seeds=2)
    assert erm == {"seeds": [0, 1], "head": "cosine", "epochs": 7, "loss": "ce"}
    assert preset == {"seeds": [0, 1], "head": "cosine", "epochs": 7, "preset": "disparity"}


def test_demo_falls_back_to_debian_fashion_mnist(tmp_path, monkeypatch):
    if not any(demo.FASHION_MNIST_DIR.glob("*idx*")):
        pytest.skip(f"Fashion-MNIST idx files absent from {demo.FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)")
    from feature_cache import open_dataset

    monkeypatch.setattr(demo, "default_data_candidates",
                        lambda: [tmp_path / "no-cifar.zip", demo.FASHION_MNIST_DIR])
    found = demo.find_demo_data()
    assert found == demo.FASHION_MNIST_DIR.resolve()
    data = open_dataset(found, max_per_class=2)
    assert len(data.class_names) == 10 and "Shirt" in data.class_names
    assert len(data.splits["test"]) == 20


def _point(params, hard, hard_ci, overall=0.0, overall_ci=(0.0, 0.0), **kwargs):
    from probe.report import FrontierPoint

    return FrontierPoint(params=params, val_hard_delta=hard, val_hard_delta_ci=list(hard_ci),
                         val_overall_delta=overall, val_overall_delta_ci=list(overall_ci), **kwargs)


def _kept(frontier, cv=None):
    from types import SimpleNamespace

    return SimpleNamespace(selection=SimpleNamespace(frontier=frontier, cv=cv))


def test_the_closest_setting_is_one_that_scores_differently_from_the_reference():
    """A setting whose correctness equals the reference's on every sample (zero deltas, zero-width intervals, e.g.
    group DRO with a tiny η) has the highest lower bound, 0, of any setting within noise: it is counted, not
    shown as the closest."""
    reference = _point({"lr": 0.01}, 0.0, (0.0, 0.0), reference=True)
    same = _point({"lr": 0.01, "eta": 0.001}, 0.0, (0.0, 0.0))
    noisy = _point({"lr": 0.01, "eta": 0.1}, 0.01, (-0.02, 0.04), -0.003, (-0.01, 0.004))
    worse = _point({"lr": 0.01, "eta": 1.0}, -0.01, (-0.05, 0.02), -0.01, (-0.02, 0.0))
    failed = _point({"lr": 1.0}, 0.0, (0.0, 0.0), failed="diverged")
    [line] = demo._closest_setting(_kept([reference, same, noisy, worse, failed]))
    assert line == ("Closest of 3 settings tried: lr=0.01, eta=0.1: val hard third +1.0 pt [-2.0, +4.0] (within "
                    "noise), overall -0.3 pt [-1.0, +0.4] (within noise). (1 of them scored exactly as the reference "
                    "on every validation sample.)")
    assert demo._closest_setting(_kept([reference, same, same], cv=object())) == [
        "All 2 settings tried scored exactly as the reference on every train + val sample (out of fold)."]
    assert demo._closest_setting(_kept([reference])) == []
    # a setting whose hard-third gain is beyond noise but costs overall accuracy: the budget that lets it through
    costly = _point({"lr": 0.01, "eta": 0.5}, 0.03, (0.01, 0.05), -0.02, (-0.035, -0.005))
    lines = demo._closest_setting(_kept([reference, same, costly]))
    assert lines[1] == "It would be chosen with --max-overall-drop 3.5 (points of overall accuracy you accept to risk)."


def test_the_closest_setting_is_judged_on_the_bounds_that_hold_over_every_setting_tried():
    reference = _point({"lr": 0.01}, 0.0, (0.0, 0.0), reference=True)
    evidence = dict(val_hard_delta_simultaneous_lo=0.004, val_overall_delta_simultaneous_lo=-0.041,
                    val_hard_changed=[40, 10], val_hard_sign_p=2e-4)
    costly = _point({"lr": 0.01, "eta": 0.5}, 0.03, (0.01, 0.05), -0.02, (-0.035, -0.005), **evidence)
    lines = demo._closest_setting(_kept([reference, costly]))
    assert lines[1] == "It would be chosen with --max-overall-drop 4.1 (points of overall accuracy you accept to risk)."
    lucky = _point({"lr": 0.01, "eta": 0.5}, 0.03, (0.01, 0.05), -0.02, (-0.035, -0.005),
                   **dict(evidence, val_hard_delta_simultaneous_lo=-0.002, val_hard_changed=[6, 1],
                          val_hard_sign_p=0.25))
    other = _point({"lr": 0.1}, -0.01, (-0.05, 0.02), -0.01, (-0.02, 0.0),
                   **dict(evidence, val_hard_delta_simultaneous_lo=-0.06, val_hard_sign_p=1.0))
    lines = demo._closest_setting(_kept([reference, lucky, other]))
    assert lines[1] == ("Its gain is not evidence: over the 2 settings tried its hard-third gain's lower bound is "
                        "-0.2 pt, and its hard-class images changed 6 fixed / 1 broken, weighed by class (sign-flip test "
                        "p = 0.13 alone, p = 0.25 after Bonferroni over 2 distinct; 0.05 needed).")
    # (a capped adjusted p=1 alone confused a new user)


def test_demo_refuses_a_busy_port_before_its_job(tmp_path, capsys):
    """The demo serves its dashboard after a job of minutes: a port in use is refused first, in one line, with no
    job run (it was found only when serving began)."""
    import socket

    data = tmp_path / "tiny.zip"
    data.write_bytes(tiny_zip_bytes(6, 3))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc = main(["demo", "--data", str(data), "--port", str(port), "--data-dir", str(tmp_path / "state")])
    assert rc == 2
    assert f"mr2probe demo: error: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert not (tmp_path / "state" / "mr2probe.sqlite3").exists()


@pytest.mark.parametrize("serve", [False, True])
def test_demo_refuses_a_data_dir_a_server_runs_before_writing_to_it(tmp_path, capsys, monkeypatch, serve):
    """The demo registered its data set in a running server's database (from outside that server's data root, and
    the server then extracted it) before it found the data directory busy (an operator round)."""
    from app.config import Settings
    from app.worker import JobRunner

    data = tmp_path / "tiny.zip"
    data.write_bytes(tiny_zip_bytes(6, 3))
    settings = Settings(data_dir=tmp_path / "state", device="cpu")
    store = Store(settings.db_path)
    server = JobRunner(store, settings, handlers={})
    server.start()
    opened = []  # refused before the service, and so its database, is opened: through another path (a bind mount)
    monkeypatch.setattr("app.main.create_app", lambda *a, **k: opened.append(a))  # it moved the server's rows
    try:
        rc = main(["demo", "--data", str(data), "--port", "0", "--data-dir", str(settings.data_dir),
                   *([] if serve else ["--no-serve"])])
    finally:
        server.stop()
    assert rc == 1
    assert f"error: another mr2probe server is running the jobs of {settings.data_dir}" in capsys.readouterr().err
    assert store.list_datasets() == [] and store.list_jobs() == [] and opened == []


@pytest.mark.parametrize("serve", [False, True])
def test_demo_names_a_data_dir_that_is_a_file_as_serve_does(tmp_path, capsys, serve):
    """`mr2probe demo --no-serve --data-dir FILE` said only '[Errno 17] File exists: FILE' (serve, and the demo
    that serves, name the option and the problem); the file is left as it was."""
    data = tmp_path / "tiny.zip"
    data.write_bytes(tiny_zip_bytes(6, 3))
    a_file = tmp_path / "state.txt"
    a_file.write_text("x")
    rc = main(["demo", "--data", str(data), "--port", "0", "--data-dir", str(a_file),
               *([] if serve else ["--no-serve"])])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (f"mr2probe demo: error: the data dir {a_file} is a file, not a folder (--data-dir): choose a "
                   "folder for the server's state\n")
    assert a_file.read_text() == "x"

def test_demo_takes_the_ports_serve_takes(tmp_path, capsys):
    """A review: the demo's --port was any integer (serve's is 0..65535), refused only once its job had run."""
    assert main(["demo", "--port", "99999", "--data-dir", str(tmp_path / "state")]) == 2
    assert capsys.readouterr().err == "mr2probe demo: error: --port must be an integer in [0, 65535], got 99999\n"
    assert not (tmp_path / "state").exists()


def test_the_suggested_budget_is_enough_to_choose_the_closest_setting():
    """Rounded to the nearest tenth, a drop of 1.234 points read "--max-overall-drop 1.2", which would not choose
    it (a review): rounded up, and an exact tenth left as it is."""
    from app.demo import _budget_line
    from probe.selection import within_budget

    for lo, said in ((-0.01234, "1.3"), (-0.012, "1.2"), (-0.0125, "1.3"), (-0.00001, "0.1"), (-0.3, "30.0")):
        [line] = _budget_line(True, lo)
        assert line.startswith(f"It would be chosen with --max-overall-drop {said} ")
        assert within_budget({"val_overall_delta_simultaneous_lo": lo}, float(said) / 100)
    assert _budget_line(False, -0.01) == []


@pytest.mark.parametrize("flags, refusal", [
    (["--seeds", "0"], "--seeds must be an integer in [1, 20], got 0."),
    (["--seeds", "99"], "--seeds must be an integer in [1, 20], got 99."),
    (["--epochs", "0"], "--epochs must be an integer in [1, 10000], got 0."),
    (["--per-class", "0"], "--per-class must be an integer in [1, 1000000000], got 0."),
    (["--per-class", "-5"], "--per-class must be an integer in [1, 1000000000], got -5."),
])
def test_demo_refuses_its_numbers_as_train_and_extract_do(tmp_path, capsys, flags, refusal):
    """A README round: `mr2probe demo --seeds 0` (or 99, or --epochs 0) ended in pydantic's report of eight lines
    naming `probes.0.seeds`, not the flag, after the data set line; --per-class 0 ran the demo on 100 images per
    class. Each is refused in one line naming the flag, as `mr2probe train` and `extract` refuse them, before
    anything is read or written."""
    data = tmp_path / "tiny.zip"
    data.write_bytes(tiny_zip_bytes(6, 3))
    rc = main(["demo", "--data", str(data), "--no-serve", "--data-dir", str(tmp_path / "state"), *flags])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err == f"mr2probe demo: error: {refusal}\n"
    assert captured.out == "" and not (tmp_path / "state").exists()


def test_the_classes_the_probe_fails_on_leave_out_those_it_scores_100_on():
    """A new-user round on its own data: "Classes the probe fails on" listed five classes at 100.0 % among the
    failing ones, and a long name pushed its row out of the column. The failing classes are listed, worst first,
    in a column as wide as their names; those at 100 % are named after them; none failing is said."""
    from types import SimpleNamespace

    from app.demo import _failing_classes

    def row(name, accuracy, group="easy"):
        return SimpleNamespace(name=name, accuracy=accuracy, accuracy_ci=[0.5, 1.0], group=group, top_confusions=[])

    rows = [row("ant", 1.0), row("Stripes Horizontal", 0.9, "hard"), row("rare_Thing", 0.5), row("bee", 1.0)]
    lines = _failing_classes(SimpleNamespace(run_id="run_x", per_class=rows))
    assert lines[0] == "Classes the probe (run_x) fails on, test accuracy (seed mean, 95 % interval), worst first:"
    assert lines[1:] == ["  rare_Thing         easy    50.0 % [50.0, 100.0]",
                         "  Stripes Horizontal hard    90.0 % [50.0, 100.0]",
                         "  100 % on test: ant, bee"]
    perfect = _failing_classes(SimpleNamespace(run_id="run_x", per_class=[row("ant", 1.0), row("bee", 1.0)]))
    assert perfect == ["The probe (run_x) classifies every test image right."]
    # names in a list joined by ", " as probe.names.listed_name writes them: 'a, b' read as two classes
    comma = row("c", 0.5)
    comma.top_confusions = [SimpleNamespace(name="a, b", rate=0.5)]
    lines = _failing_classes(SimpleNamespace(run_id="run_x", per_class=[comma, row("x, y", 1.0), row("z", 1.0)]))
    assert lines[1].endswith('confused with "a, b" 50 %') and lines[2] == '  100 % on test: "x, y", z'
