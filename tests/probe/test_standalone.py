"""probe.standalone, shipped in probe.zip as apply_probe.py: the run's files applied with numpy and safetensors
alone give what RunProbe (mr2probe predict) gives, for every head, adapter, post-hoc bias and temperature."""
import ast
from pathlib import Path

import numpy as np
import pytest

from probe.deploy import RunProbe
from probe.predictions import Predictions
from probe.standalone import load_probe

from test_shipped_probe import _run, adapter_run, data, scaled_run  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def cosine_mlp_run(data, tmp_path_factory):  # noqa: F811
    """A cosine head behind an mlp adapter, with a post-hoc bias and a temperature: every step of forward.steps."""
    return _run(data, tmp_path_factory, "cosine-mlp", head="cosine", loss="mr2", adapter="mlp", adapter_rank=4,
                cbar_grid=[2.0], lam_grid=[0.1], seeds=[0], posthoc_bias=True, posthoc_guard=False,
                temperature_scaling=True)


@pytest.mark.parametrize("which", ["scaled_run", "adapter_run", "cosine_mlp_run"])
def test_the_standalone_loader_predicts_what_the_run_shipped(which, data, request):  # noqa: F811
    run_dir = request.getfixturevalue(which)
    x = data["test"][0]
    shipped, standalone = RunProbe.load(run_dir), load_probe(run_dir)
    assert standalone.class_names == shipped.class_names
    assert standalone.temperature == shipped.temperature
    assert (standalone.bias is None) == (shipped.posthoc is None)
    np.testing.assert_allclose(standalone.predict_proba(x), shipped.predict_proba(x), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(standalone.predict(x), Predictions.load(run_dir).predicted[0])
    np.testing.assert_allclose(standalone.predict_proba(x).max(axis=1), Predictions.load(run_dir).confidence,
                               rtol=0, atol=1e-5)


def test_the_cosine_mlp_run_uses_every_step(cosine_mlp_run):
    probe = load_probe(cosine_mlp_run)
    assert (probe.head, probe.adapter) == ("cosine", "mlp") and probe.temperature != 1.0
    assert np.abs(probe.bias).max() > 0


def test_the_standalone_loader_imports_nothing_of_mr2probe():
    """It is copied alone into probe.zip: an import of the package (or of torch) would fail where it is used."""
    tree = ast.parse(Path(__import__("probe.standalone").standalone.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert imported <= {"__future__", "json", "math", "sys", "dataclasses", "pathlib", "numpy", "safetensors"}


def test_features_of_another_width_are_refused(adapter_run):  # noqa: F811
    with pytest.raises(ValueError, match="features"):
        load_probe(adapter_run).predict_proba(np.zeros((2, 3), dtype=np.float32))


def test_features_with_nan_or_inf_are_refused_naming_the_rows(adapter_run):  # noqa: F811
    """A NaN row was predicted as class 0 with confidence nan (a RuntimeWarning aside), as if a prediction."""
    probe = load_probe(adapter_run)
    x = np.zeros((4, probe.tensors["head.weight"].shape[1]), dtype=np.float32)
    x[1, 0], x[3, 2] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"2 of 4 rows hold values that are NaN, infinite or too large for float32 "
                                         r"\(a squared norm past 3\.4e\+38; rows 1, 3\)"):
        probe.predict_proba(x)


def test_rows_that_mr2probe_predict_refuses_as_too_large_are_refused_as_it_does(cosine_mlp_run):
    """`mr2probe predict` refuses a finite row whose squared norm passes float32's range (probe.stats.unusable_rows);
    apply_probe.py scored it: 1e20 in every feature read class 0 at confidence 1/K under a cosine head, its float32
    norm infinite (a review). The same rows are refused; a row just within the range is scored."""
    probe = load_probe(cosine_mlp_run)
    d = probe.tensors["head.weight"].shape[1]
    x = np.ones((3, d), dtype=np.float32)
    x[1] = 1e20
    with pytest.raises(ValueError, match=r"^1 of 3 rows hold values that are NaN, infinite or too large for float32 "
                                         r"\(a squared norm past 3\.4e\+38; rows 1\): features to check$"):
        probe.predict_proba(x)
    x[1] = np.sqrt(np.finfo(np.float32).max / d) / 2  # a squared norm of a quarter of float32's max
    assert np.isfinite(probe.predict_proba(x)).all()


def test_the_standalone_loader_knows_every_head_and_adapter_of_the_registry():
    """A head or adapter added to the registry must be added to apply_probe.py too: shipped without it, a probe of
    the new kind would be refused by the loader its zip carries."""
    from probe import standalone
    from probe.registry import ADAPTERS, HEADS

    assert set(standalone.HEADS) == set(HEADS) and set(standalone.ADAPTERS) == set(ADAPTERS)


@pytest.mark.parametrize("what, expected", [
    ("missing folder", "is not a probe's folder: it needs head.json"),
    ("missing file", "no such file"),
    ("other width", r"takes \(n, \d+\) features, got \(2, 3\)"),
    ("one vector", r"one vector of shape \(\d+,\): the probe takes rows"),
    ("text file", "is not a .npy file of numbers"),
    ("npz", "is an .npz archive"),
    ("strings", "not numbers"),
])
def test_the_shell_command_says_what_is_wrong_in_one_line(adapter_run, tmp_path, capsys, what, expected):  # noqa: F811
    """``python apply_probe.py RUN_FOLDER features.npy`` with a wrong argument: one line, exit 2 (as its docstring
    says; it said exit 1 and exited 1, but 2 for a wrong count of arguments), no traceback."""
    from probe.standalone import main

    d = load_probe(adapter_run).tensors["head.weight"].shape[1]
    features, folder = tmp_path / "x.npy", adapter_run
    if what == "missing folder":
        folder, features = tmp_path / "nope", tmp_path / "ok.npy"
        np.save(features, np.zeros((2, d), dtype=np.float32))
    elif what == "other width":
        np.save(features, np.zeros((2, 3), dtype=np.float32))
    elif what == "one vector":
        np.save(features, np.zeros(d, dtype=np.float32))
    elif what == "text file":
        features = tmp_path / "x.txt"
        features.write_text("0.1 0.2\n")
    elif what == "npz":
        features = tmp_path / "x.npz"
        np.savez(features, x=np.zeros((2, d), dtype=np.float32))
    elif what == "strings":
        np.save(features, np.array(["a", "b"]))
    assert main([str(folder), str(features)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("apply_probe.py: error: ") and __import__("re").search(expected, err), err
    assert "exit 2" in main.__doc__ and "exit 1" not in main.__doc__


@pytest.mark.parametrize("name, text, expected", [
    ("posthoc_bias.json", '{"bias": {"a": 1}}', r"posthoc_bias.json: its bias is not 6 finite numbers, one per class"),
    ("posthoc_bias.json", '{"bias": [0.5]}', r"posthoc_bias.json: its bias is not 6 finite numbers"),
    ("posthoc_bias.json", '{"objective": "hard"}', r"posthoc_bias.json holds no 'bias': not a file the run wrote"),
    ("posthoc_bias.json", "{not json", r"posthoc_bias.json is not a JSON file: Expecting property name"),
    ("temperature.json", '{"temperature": [1, 2]}', r"temperature.json: its temperature is not a finite number above 0"),
    ("temperature.json", '{"temperature": 0}', r"temperature.json: its temperature is not a finite number above 0"),
    ("temperature.json", '{"temperature": true}', r"temperature.json: its temperature is not a finite number above 0"),
])
def test_a_damaged_bias_or_temperature_file_is_one_line(scaled_run, data, tmp_path, capsys, name, text,
                                                         expected):  # noqa: F811
    """A hand-edited posthoc_bias.json or temperature.json was a TypeError traceback ({"a": 1}, [1, 2]), or a bias
    of one value added to every class, or a temperature of 0 that made every confidence NaN, exit 0."""
    import shutil

    from probe.standalone import main

    folder, features = shutil.copytree(scaled_run, tmp_path / "run"), tmp_path / "x.npy"
    np.save(features, data["test"][0][:2].astype(np.float32))
    (folder / name).write_text(text)
    assert main([str(folder), str(features)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("apply_probe.py: error: ") and __import__("re").search(expected, err), err
    assert "exit 2" in main.__doc__ and "exit 1" not in main.__doc__


HOSTILE_NAMES = ("=cmd().jpg", "+1", "-x", "@a", "\tb", "\rc", "'=x", "''+y", "cat", "a=b", "'quoted", "")


def test_the_shell_command_prints_class_names_safe_for_spreadsheets_by_csv_cells_rule(adapter_run, tmp_path,
                                                                                      capsys, monkeypatch):  # noqa
    """A class named "=cmd()" was printed as it is: the output opened in a spreadsheet ran it as a formula. The
    script's rule (it imports nothing of mr2probe) is probe.numbers.csv_cell's on the names the CSV tests use."""
    import dataclasses

    import probe.standalone
    from probe.numbers import csv_cell

    assert [probe.standalone.cell(name) for name in HOSTILE_NAMES] == [csv_cell(name) for name in HOSTILE_NAMES]
    shipped = load_probe(adapter_run)
    x = np.zeros((1, shipped.tensors["head.weight"].shape[1]), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(probe.standalone, "load_probe",
                        lambda folder: dataclasses.replace(shipped, class_names=["=a"] * len(shipped.class_names)))
    assert probe.standalone.main([str(adapter_run), str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out.startswith("'=a\t")


@pytest.mark.parametrize("args", [[], ["a-folder-of-no-probe", "x.npy"]])
def test_the_script_exits_2_for_a_bad_argument_as_its_docstring_says(tmp_path, args):
    """The file shipped as apply_probe.py, run as a script: a wrong count of arguments and a wrong folder both exit
    2 with one line (a wrong folder exited 1 while the count exited 2)."""
    import subprocess
    import sys

    import probe.standalone

    script = tmp_path / "apply_probe.py"
    script.write_text(Path(probe.standalone.__file__).read_text())
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
