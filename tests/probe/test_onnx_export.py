"""probe.onnx_export: a run's shipped probe as one ONNX graph gives, in ONNX Runtime, the probabilities and
predictions RunProbe (mr2probe predict) gives, for every head, adapter, post-hoc bias and temperature."""
import json

import numpy as np
import onnx
import onnxruntime
import pytest

from probe.deploy import RunProbe
from probe.onnx_export import OPSET, export_onnx, probe_model

from test_shipped_probe import SOURCE, _run, adapter_run, data, scaled_run  # noqa: F401 - fixtures
from test_standalone import cosine_mlp_run  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def linear_adapter_run(data, tmp_path_factory):  # noqa: F811
    return _run(data, tmp_path_factory, "linear-adapter", loss="mr2", adapter="linear", cbar_grid=[2.0],
                lam_grid=[0.1], seeds=[0])


def _session(model) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("which", ["scaled_run", "adapter_run", "cosine_mlp_run", "linear_adapter_run"])
def test_the_onnx_graph_predicts_what_the_run_shipped(which, data, request):  # noqa: F811
    run_dir = request.getfixturevalue(which)
    x = data["test"][0].astype(np.float32)
    shipped = RunProbe.load(run_dir)
    probabilities, logits = _session(probe_model(run_dir)).run(None, {"features": x})
    expected = shipped.predict_proba(x)
    assert probabilities.shape == logits.shape == expected.shape and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=2e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), shipped.predict(x))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))  # the logits are those the softmax reads
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probabilities, rtol=0, atol=1e-6)


def test_every_step_is_in_the_graph_of_a_cosine_mlp_run(cosine_mlp_run):  # noqa: F811
    kinds = {node.op_type for node in probe_model(cosine_mlp_run).graph.node}
    assert {"Erf", "ReduceL2", "Softmax"} <= kinds  # GELU, the cosine head's normalisation, the probabilities
    names = {node.name for node in probe_model(cosine_mlp_run).graph.node}
    assert {"logits_biased", "logits_scaled", "features_adapted"} <= names


def test_the_file_names_its_classes_and_features_and_takes_any_batch(scaled_run, data, tmp_path):  # noqa: F811
    out = export_onnx(scaled_run, tmp_path / "probe.onnx", SOURCE.model_dump(mode="json"))
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["class_names"]) == RunProbe.load(scaled_run).class_names
    assert json.loads(meta["features"])["encoder"] == SOURCE.encoder
    assert model.opset_import[0].version == OPSET
    session = _session(model)
    for n in (1, 7):
        probabilities, _ = session.run(None, {"features": data["test"][0][:n].astype(np.float32)})
        assert probabilities.shape[0] == n


def test_export_from_the_cli_writes_the_graph_and_refuses_an_unfinished_run(scaled_run, tmp_path, capsys):  # noqa: F811
    from app.cli import main

    out = tmp_path / "fair.onnx"
    assert main(["export", str(scaled_run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: input 'features' (n, d) float32")
    assert {p.key for p in onnx.load(str(out)).metadata_props} == {"class_names", "features"}
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no report.json" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
    assert main(["export", str(scaled_run), "--out", str(scaled_run / "head.json")]) == 2  # a file of the run


def _edit_head(run, drop: str | None = None, **values) -> None:
    """Set ``values`` in a run's head.json, and remove its key ``drop``."""
    head = {**json.loads((run / "head.json").read_text()), **values}
    head.pop(drop, None)
    (run / "head.json").write_text(json.dumps(head))


@pytest.mark.parametrize("damage, said", [
    (lambda run: (run / "head.safetensors").write_bytes((run / "head.safetensors").read_bytes()[:100]),
     "head.safetensors / head.json cannot be read as a saved probe (damaged or cut short?): SafetensorError"),
    (lambda run: (run / "head.json").write_text("[]"), "head.json is not a saved probe (format 'list'"),
    # params a list or missing: an AttributeError and a KeyError traceback (a review)
    (lambda run: _edit_head(run, params=[]), "head.safetensors / head.json cannot be read as a saved probe (damaged "
     "or cut short?): ValueError: head.json's 'params' is not an object of the trainer's parameters (got [])"),
    (lambda run: _edit_head(run, params=None, drop="params"), "head.json has no 'params'"),
    # the new head.json beside other weights (a save cut off between the two renames): one line naming run and file
    (lambda run: _edit_head(run, safetensors_sha256="0" * 64), "head.safetensors of run is not the weights its "
     "head.json describes (sha256 "),
])
def test_export_names_a_damaged_head_as_predict_does(scaled_run, tmp_path, capsys, damage, said):  # noqa: F811
    """`mr2probe export` of a run whose head.safetensors was cut short ended in safetensors' traceback, and one
    whose head.json is no object in an AttributeError's, where `mr2probe predict` names the file in one line: export
    reads the probe as predict does (probe.deploy.RunProbe.load) and writes nothing."""
    import shutil

    from app.cli import main

    run = shutil.copytree(scaled_run, tmp_path / "run")
    damage(run)
    out = tmp_path / "probe.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mr2probe export: error: ") and len(err.strip().splitlines()) == 1 and said in err, err
    assert not out.exists()


@pytest.mark.parametrize("bias, temperature", [({"a": 1}, [1, 2]), ([0.5], 0), ("{not json", "{not json")])
def test_the_graph_takes_the_bias_and_temperature_predict_applies_not_their_copies(scaled_run, data, tmp_path,
                                                                                   bias, temperature):  # noqa: F811
    """A loose end: export read posthoc_bias.json and temperature.json (apply_probe.py's copies) where predict
    reads report.json: hand-edited ones ended in a TypeError traceback ({'a': 1}, [1, 2]), or in a graph that
    broadcast a one-value bias over every class or divided by 0, unlike predict's probabilities."""
    import shutil

    run_dir = shutil.copytree(scaled_run, tmp_path / "run")
    for name, key, value in (("posthoc_bias.json", "bias", bias), ("temperature.json", "temperature", temperature)):
        shipped = json.loads((run_dir / name).read_text())
        (run_dir / name).write_text(value if value == "{not json" else json.dumps({**shipped, key: value}))
    x = data["test"][0].astype(np.float32)
    probabilities, _ = _session(probe_model(run_dir)).run(None, {"features": x})
    np.testing.assert_allclose(probabilities, RunProbe.load(run_dir).predict_proba(x), rtol=0, atol=2e-5)
