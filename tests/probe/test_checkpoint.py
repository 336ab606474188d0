"""Saved probes: safetensors + JSON sidecar round trip gives identical logits."""
import json
import re

import numpy as np
import pytest
from safetensors.numpy import load_file

from probe import ProbeTrainer, load_probe, save_probe


def _data(seed=0, n=60, d=8, k=3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.standard_normal((n, d)).astype(np.float32) + 2.0 * np.eye(k, d)[y].astype(np.float32)
    return x, y


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(head="linear", loss="mr2", cbar=2.0),
        dict(head="cosine", loss="mr2", head_options={"learnable_scale": True, "logit_scale": 10.0}),
        dict(head="cosine", loss="mr2", adapter="lowrank", adapter_rank=3, lam=0.1, batch_size=16),
        dict(head="linear", loss="mr2_valerr", loss_options={"val_error": [0.1, 0.2, 0.05]}, adapter="linear"),
        dict(head="linear", loss="group_dro", adapter="mlp", adapter_rank=4, lam=0.3, batch_size=16),
    ],
)
def test_save_load_round_trip_identical_logits(tmp_path, kwargs):
    x, y = _data()
    m = ProbeTrainer(epochs=5, progress=lambda e, n: None, **kwargs).fit(x, y)
    path = m.save(tmp_path / "run" / "head.safetensors")
    assert path == tmp_path / "run" / "head.safetensors"
    back = ProbeTrainer.load(tmp_path / "run")
    xt, _ = _data(seed=1)
    assert np.array_equal(back.decision_function(xt), m.decision_function(xt))
    assert np.array_equal(back.predict(xt), m.predict(xt))
    assert np.array_equal(back.transform(xt), m.transform(xt))
    assert np.allclose(back.gamma_, m.gamma_) and np.allclose(back.r2_, m.r2_)
    assert back.get_params()["loss"] == kwargs["loss"] and back.get_params()["progress"] is None


def test_sidecar_contents(tmp_path):
    x, y = _data()
    m = ProbeTrainer(loss="mr2", cbar=3.0, epochs=2).fit(x, y)
    save_probe(m, tmp_path)
    meta = json.loads((tmp_path / "head.json").read_text())
    assert meta["format"] == "mr2probe-head" and meta["format_version"] == 1
    assert meta["library_version"]
    assert meta["head"] == {"name": "linear", "options": {"bias": True}}
    assert meta["loss"] == {"name": "mr2", "options": {"sharpness": 1.0}}
    assert meta["params"]["cbar"] == 3.0 and meta["classes"] == [0, 1, 2]
    assert meta["gamma"] == pytest.approx(m.gamma_.tolist()) and meta["r2"] == pytest.approx(m.r2_.tolist())
    assert meta["p"] == 2.0 and meta["stats_mode"] == "exact" and meta["class_counts"] == [20, 20, 20]
    tensors = load_file(str(tmp_path / "head.safetensors"))
    assert set(tensors) == {"head.weight", "head.bias"}
    assert np.array_equal(tensors["head.weight"], m.class_weights())


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_saved_head_files_take_the_umask_s_mode_as_the_run_s_other_files(tmp_path, umask, mode):
    """head.safetensors and head.json were 0600 whatever the umask (written through mkstemp), beside a
    report.json of 0644: a run folder copied to a server that reads it as another user could not be loaded."""
    import os

    x, y = _data()
    m = ProbeTrainer(loss="ce", epochs=2).fit(x, y)
    old = os.umask(umask)
    try:
        save_probe(m, tmp_path)
        (tmp_path / "report.json").write_text("{}")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"head.safetensors": mode, "head.json": mode, "report.json": mode}

def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="head.safetensors"):
        load_probe(tmp_path)
    x, y = _data()
    save_probe(ProbeTrainer(epochs=1).fit(x, y), tmp_path)
    meta = json.loads((tmp_path / "head.json").read_text())
    (tmp_path / "head.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ValueError, match="not a saved probe"):
        load_probe(tmp_path / "head.json")
    (tmp_path / "head.json").write_text(json.dumps({**meta, "num_features": 9}))
    with pytest.raises(ValueError, match="do not match"):
        load_probe(tmp_path)
    with pytest.raises(ValueError, match="not fitted"):
        save_probe(ProbeTrainer(), tmp_path / "x")


def test_a_probe_file_removed_while_it_is_read_is_missing_not_damaged(tmp_path, monkeypatch):
    """A run deleted while the service read its probe (head.json read, head.safetensors gone before it was): "cannot
    be read as a saved probe (damaged or cut short?)", a 422, where the file was only removed (a load round)."""
    import safetensors.torch

    x, y = _data()
    save_probe(ProbeTrainer(epochs=1).fit(x, y), tmp_path)
    read = safetensors.torch.load_file

    def removed_first(path, *args, **kwargs):
        (tmp_path / "head.safetensors").unlink()
        return read(path, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "load_file", removed_first)
    with pytest.raises(FileNotFoundError, match="head.safetensors"):
        load_probe(tmp_path)


@pytest.mark.parametrize("damage", ["cut_weights", "json_weights", "list_meta", "cut_meta", "meta_missing_field",
                                    "deep_meta"])
def test_damaged_probe_files_are_a_value_error_naming_them(tmp_path, damage):
    """head.safetensors cut short or head.json of another shape raised safetensors' SafetensorError or an
    AttributeError, a 500 on the service's scores, predictions and compare-on-a-cache routes and a traceback in
    mr2probe predict (found by an outside attack round): a ValueError naming the files."""
    x, y = _data()
    save_probe(ProbeTrainer(epochs=1).fit(x, y), tmp_path)
    weights, meta = tmp_path / "head.safetensors", tmp_path / "head.json"
    if damage == "cut_weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "json_weights":
        weights.write_text('{"x":')
    elif damage == "list_meta":
        meta.write_text("[]")
    elif damage == "cut_meta":
        meta.write_text(meta.read_text()[:50])
    elif damage == "deep_meta":  # a RecursionError in json, not a ValueError
        meta.write_text('{"a":' * 50_000 + "1" + "}" * 50_000)
    else:
        meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "gamma"}))
    with pytest.raises(ValueError, match=r"head\.(json|safetensors)|not a saved probe"):
        load_probe(tmp_path)


def test_a_head_file_with_non_finite_weights_is_refused_when_loaded(tmp_path):
    """A head whose weights hold a nan (training refuses one: diverged) predicted class 0 for every image once
    shipped from a file damaged or edited since; loading it is a ValueError naming the tensor."""
    from safetensors.numpy import save_file

    x, y = _data()
    save_probe(ProbeTrainer(epochs=1).fit(x, y), tmp_path)
    tensors = load_file(tmp_path / "head.safetensors")
    name = next(k for k in tensors if k.endswith("weight"))
    tensors[name] = tensors[name].copy()
    tensors[name].flat[3] = np.nan
    save_file(tensors, tmp_path / "head.safetensors")
    meta = json.loads((tmp_path / "head.json").read_text())
    del meta["safetensors_sha256"]  # a run saved before the digest, which would refuse an edited file first
    (tmp_path / "head.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"non-finite weights in linear weight: the head file \(head\.safetensors\) "
                                         "is damaged"):
        load_probe(tmp_path)


def test_a_run_head_names_its_classes_and_a_mismatch_is_refused(tmp_path):
    """head.json named class indices only (probe.zip users needed report.json for the names): a run's head now
    carries the names, a loaded trainer has them (class_names_), and a head whose names differ from its report's
    is refused as files of two runs. A head saved without names loads with None."""
    from probe import ProbeConfig, run_probe
    from probe.deploy import RunProbe

    from testdata import gaussian_splits

    names = ["cat", "dog", "é t"]
    report = run_probe(gaussian_splits(3, {"train": 10, "val": 5, "test": 5}, spread=3), names,
                       ProbeConfig(seeds=[0], epochs=2, lr_grid=[1e-2], wd_grid=[0.0], cv=0), out_dir=tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "head.json").read_text())
    assert meta["class_names"] == names and meta["classes"] == [0, 1, 2]
    assert load_probe(tmp_path / "run").class_names_ == names == RunProbe.load(tmp_path / "run").class_names
    (tmp_path / "run" / "head.json").write_text(json.dumps({**meta, "class_names": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match="the head names other classes than the report"):
        RunProbe.load(tmp_path / "run")
    (tmp_path / "run" / "head.json").write_text(json.dumps({**meta, "class_names": ["a"]}))
    with pytest.raises(ValueError, match="class_names is not 3 names"):
        load_probe(tmp_path / "run")
    x, y = _data()
    save_probe(ProbeTrainer(epochs=1).fit(x, y), tmp_path / "bare")
    assert load_probe(tmp_path / "bare").class_names_ is None
    assert report.class_names == names


def _documented_forward(tensors: dict, meta: dict, x: np.ndarray) -> np.ndarray:
    """Probabilities from the saved files alone, as README "Shipping the chosen probe" and head.json's
    ``forward.steps`` say, in numpy: what a user's own inference code does."""
    from scipy.special import erf

    def normalize(a):
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    x = x.astype(np.float64)
    adapter = (meta["adapter"] or {}).get("name")
    if adapter == "linear":
        x = x + x @ tensors["adapter.A"].T
    elif adapter == "lowrank":
        x = x + (x @ tensors["adapter.V"].T) @ tensors["adapter.U"].T
    elif adapter == "mlp":
        h = x @ tensors["adapter.down.weight"].T + tensors["adapter.down.bias"]
        x = x + (0.5 * h * (1 + erf(h / np.sqrt(2)))) @ tensors["adapter.U"].T
    if meta["head"]["name"] == "cosine":
        assert meta["forward"]["logit_scale"] == pytest.approx(np.exp(tensors["head.log_scale"]), rel=1e-6)
        logits = meta["forward"]["logit_scale"] * normalize(x) @ normalize(tensors["head.weight"]).T
    else:
        logits = x @ tensors["head.weight"].T + tensors.get("head.bias", 0.0)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("kwargs, steps", [
    (dict(head="linear"), 1),
    (dict(head="linear", head_options={"bias": False}, adapter="linear"), 2),
    (dict(head="cosine", head_options={"logit_scale": 10.0}, adapter="lowrank", adapter_rank=3, lam=0.1), 2),
    (dict(head="linear", adapter="mlp", adapter_rank=4, lam=0.3), 2),
])
def test_the_documented_forward_of_the_saved_files_gives_the_probes_probabilities(tmp_path, kwargs, steps):
    """head.json's forward.steps name the computation in terms of the saved tensors, and following them outside the
    package gives the probe's probabilities (an outside round found the format undocumented and the cosine head's
    trained scale only as a log in the tensors; head.options.logit_scale is where it began)."""
    x, y = _data()
    m = ProbeTrainer(epochs=5, progress=lambda e, n: None, **kwargs).fit(x, y)
    save_probe(m, tmp_path)
    meta = json.loads((tmp_path / "head.json").read_text())
    tensors = load_file(str(tmp_path / "head.safetensors"))
    described = meta["forward"]["steps"]
    assert len(described) == steps + 4 and described[0].startswith("x = the features (n, d) as float32")
    assert described[-3].startswith("logits = logits + bias of posthoc_bias.json")
    assert described[-2].startswith("logits = logits / temperature of temperature.json")
    assert described[-1].startswith("probabilities = softmax(logits) over the classes in class_names order")
    assert ("logit_scale" in meta["forward"]) == (kwargs["head"] == "cosine")
    xt, _ = _data(seed=1)
    assert np.allclose(_documented_forward(tensors, meta, xt), m.predict_proba(xt), atol=1e-5)


def test_saving_class_names_of_another_count_is_refused_and_writes_nothing(tmp_path):
    """``save(path, class_names=["a"])`` on a 3-class probe wrote files that ``ProbeTrainer.load`` then refused as
    'head.json cannot be read as a saved probe: class_names is not 3 names' (a library round)."""
    x, y = _data()
    trainer = ProbeTrainer(epochs=2).fit(x, y)
    with pytest.raises(ValueError, match=r"^class_names has 1 names for the probe's 3 classes"):
        trainer.save(tmp_path / "probe", class_names=["a"])
    assert not (tmp_path / "probe").exists()
    trainer.save(tmp_path / "probe", class_names=["a", "b", "c"])
    assert ProbeTrainer.load(tmp_path / "probe").class_names_ == ["a", "b", "c"]


def test_a_full_disk_while_saving_the_weights_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    """safetensors raises its own SafetensorError when the disk is full or a file-size limit is reached: `mr2probe
    train` ended in its traceback (a failure round). It is an OSError naming the file, and nothing is left."""
    import errno

    import safetensors.torch
    from safetensors import SafetensorError

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    x, y = _data()
    m = ProbeTrainer(epochs=2, progress=lambda e, n: None).fit(x, y)
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError) as caught:
        m.save(tmp_path / "head.safetensors")
    assert caught.value.errno == errno.ENOSPC
    assert f"cannot write {tmp_path / 'head.safetensors'}: No space left on device" in str(caught.value)
    assert list(tmp_path.iterdir()) == []



def test_a_save_that_fails_writing_the_sidecar_leaves_the_probe_saved_before_whole(tmp_path, monkeypatch):
    """The weights were renamed onto head.safetensors before head.json was written: a full disk (or a kill) while
    the sidecar was written left the new weights beside the old sidecar, a probe that was neither and loaded all the
    same. Both files are written before either replaces the old one."""
    import errno
    from pathlib import Path

    x, y = _data()
    old = ProbeTrainer(head="linear", epochs=3, progress=lambda e, n: None).fit(x, y)
    new = ProbeTrainer(head="linear", epochs=3, progress=lambda e, n: None, random_state=1, lr=0.05).fit(x, y)
    old.save(tmp_path / "head.safetensors")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = Path.write_text

    def full(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left on device"):
        new.save(tmp_path / "head.safetensors")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    xt, _ = _data(seed=1)
    assert np.array_equal(ProbeTrainer.load(tmp_path).decision_function(xt), old.decision_function(xt))
    new.save(tmp_path / "head.safetensors")  # the retry
    assert np.array_equal(ProbeTrainer.load(tmp_path).decision_function(xt), new.decision_function(xt))


# head.json's keys that a saved probe cannot be read without; the others (format_version, read as 0 where missing,
# library_version, class_names, forward) are read where present
_REQUIRED_KEYS = ["params", "num_features", "num_classes", "classes", "head", "adapter", "loss", "p", "stats_mode",
                  "gamma", "r2", "spread", "class_counts", "history"]
_MISSING = object()


@pytest.fixture(scope="module")
def saved_head(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    x, y = _data()
    ProbeTrainer(epochs=1).fit(x, y).save(folder, class_names=["a", "b", "c"])
    return folder, (folder / "head.json").read_text()


@pytest.mark.parametrize("value", [_MISSING, None, [], "x", {}, 1.5, True], ids=["missing", "null", "list", "string",
                                                                                 "object", "float", "bool"])
@pytest.mark.parametrize("key", _REQUIRED_KEYS + ["format_version", "library_version", "class_names", "forward"])
def test_every_head_json_key_missing_or_of_another_type_is_a_value_error_naming_the_file(saved_head, tmp_path,
                                                                                          key, value):
    """head.json without usable params (missing, a list, null, a string) was a KeyError or an AttributeError outside
    the reader's checks, a 500 of every service route that applies the run; a string num_features a ValueError
    'invalid literal for int()' that named no file (a review). Each key missing or of another type either loads
    (a value of its type, or a key read only where present) or is a ValueError naming head.json and the key; a
    required key missing is always refused."""
    import shutil

    folder, text = saved_head
    shutil.copy(folder / "head.safetensors", tmp_path / "head.safetensors")
    meta = json.loads(text)
    if value is _MISSING:
        del meta[key]
    else:
        meta[key] = value
    (tmp_path / "head.json").write_text(json.dumps(meta))
    try:
        load_probe(tmp_path)
    except ValueError as exc:
        assert re.match(r"head\.(safetensors / head\.)?json (cannot be read as|is not) a saved probe", str(exc)), exc
        assert key in str(exc), exc
    else:
        assert not (value is _MISSING and key in _REQUIRED_KEYS)


def test_head_json_records_its_weights_digest_and_weights_of_another_save_are_refused(tmp_path):
    """The rename window: head.json is renamed into place before head.safetensors, so a crash between the two left
    a head.json describing other weights, loaded without a word. head.json records the sha256 of its weights, and
    weights whose digest differs are a ValueError naming the run's folder and the file."""
    import hashlib

    x, y = _data()
    run = tmp_path / "run-7"
    save_probe(ProbeTrainer(epochs=1).fit(x, y), run)
    weights, meta = run / "head.safetensors", run / "head.json"
    recorded = json.loads(meta.read_text())["safetensors_sha256"]
    assert recorded == hashlib.sha256(weights.read_bytes()).hexdigest()
    first = weights.read_bytes()
    save_probe(ProbeTrainer(epochs=3).fit(*_data(seed=1)), run)
    assert json.loads(meta.read_text())["safetensors_sha256"] != recorded
    weights.write_bytes(first)  # the new head.json renamed in, the new weights not: the old ones stay
    actual = hashlib.sha256(first).hexdigest()
    with pytest.raises(ValueError) as caught:
        load_probe(run)
    assert str(caught.value) == (
        f"head.safetensors of run-7 is not the weights its head.json describes (sha256 {actual[:16]}…, head.json "
        f"records {json.loads(meta.read_text())['safetensors_sha256'][:16]}…): the file was changed or replaced "
        "after the save (a save cut off between the two files, another run's weights copied in, or damage); train it "
        "again")
    edited = {**json.loads(meta.read_text()), "safetensors_sha256": ["x"]}
    meta.write_text(json.dumps(edited))
    with pytest.raises(ValueError,
                       match=r"^head.json's 'safetensors_sha256' is not a sha256 hex digest \(got \[\"x\"\]\)$"):
        load_probe(run)


def test_a_probe_saved_before_the_weights_digest_still_loads(tmp_path):
    x, y = _data()
    m = ProbeTrainer(epochs=2).fit(x, y)
    save_probe(m, tmp_path)
    meta = json.loads((tmp_path / "head.json").read_text())
    del meta["safetensors_sha256"]
    (tmp_path / "head.json").write_text(json.dumps(meta))
    assert np.array_equal(load_probe(tmp_path).decision_function(x), m.decision_function(x))
