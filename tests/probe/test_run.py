"""run_probe end to end on small synthetic features: selection on val only, seeds, groups, files, cancellation."""
import csv
import json
import os
import platform
import re
import warnings

import numpy as np
import pytest

from probe import (
    ProbeCancelled,
    ProbeConfig,
    Report,
    assign_groups,
    auto_batch_size,
    auto_epochs,
    carve_validation,
    format_report,
    load_report,
)
from probe import run_probe as _run_probe
from probe.config import L2_STRENGTHS
from probe.registry import HEADS

K = 6
NAMES = [f"c{k}" for k in range(K)]
# cv=0: these tests pin the validation-split protocol (30 val images per class would cross-validate;
# tests/probe/test_crossval.py covers that)
FAST = dict(epochs=40, lr_grid=[0.05], wd_grid=[0.0, 1e-3], seeds=[0, 1], cv=0)


def run_probe(*args, **kwargs) -> dict:
    """The report as its JSON content (what report.json and the API hold), for dict-style assertions."""
    report = _run_probe(*args, **kwargs)
    assert isinstance(report, Report)
    return report.model_dump(mode="json")


def make_data(seed=0, n_per_class=60, d=12):
    """Gaussian classes whose spread grows with the class index (class 5 hardest)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.0, (K, d))
    means *= 3.0 / np.linalg.norm(means, axis=1, keepdims=True)  # equal ‖μ_k‖: r_k² differs by the spread only
    spread = np.linspace(0.5, 1.8, K)

    def draw(m):
        y = np.repeat(np.arange(K), m)
        x = means[y] + spread[y, None] * rng.normal(0, 1, (len(y), d))
        return x.astype(np.float32), y.astype(np.int64)

    return {"train": draw(n_per_class), "val": draw(n_per_class // 2), "test": draw(n_per_class)}


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def erm(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "erm"
    return run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=out), out


def test_report_written_and_consistent(erm, data):
    report, out = erm
    assert report["run_id"] == "erm"
    on_disk = load_report(out).model_dump(mode="json")
    assert on_disk == report
    assert len(report["selection"]["candidates"]) == 2
    assert report["selection"]["split"] == "val"
    assert report["selection"]["chosen"] in report["selection"]["candidates"]
    assert report["seeds"]["values"] == [0, 1]
    per_seed = report["seeds"]["metrics"]["overall"]["per_seed"]
    assert report["summary"]["overall"] == pytest.approx(np.mean(per_seed))
    assert report["grouping"]["source"] == "self"
    # own groups = thirds of the seed-mean val accuracy
    assert report["grouping"]["groups"] == assign_groups(np.array(report["val"]["per_class"]))
    assert [r["n_test"] for r in report["per_class"]] == [60] * K
    assert [r["n_train"] for r in report["per_class"]] == [60] * K
    rows = list(csv.DictReader((out / "per_class.csv").open()))
    assert [r["name"] for r in rows] == NAMES
    assert float(rows[0]["accuracy"]) == pytest.approx(report["per_class"][0]["accuracy"])
    json.loads((out / "report.json").read_text())  # strict JSON
    assert report["summary"]["overall"] > 0.6


def test_timing_accounts_for_the_run(erm, data, monkeypatch):
    from types import SimpleNamespace

    import torch

    report, _ = erm
    timing = report["timing"]
    assert timing["fits"] == 2 + 2  # two candidates, then two seeds of the chosen one
    assert timing["device"] == "cpu" and timing["threads"] == torch.get_num_threads()
    assert 0 < timing["selection_seconds"] and 0 < timing["seeds_seconds"]
    assert timing["selection_seconds"] + timing["seeds_seconds"] <= timing["total_seconds"]
    # the phases are read from the run's clock: one that advances 1 s per reading makes each phase one second
    ticks = iter(range(100))
    monkeypatch.setattr("probe.run.time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    timing = run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0]}))["timing"]
    # readings: start, data prepared, selection done, seeds done, report assembled
    assert (timing["selection_seconds"], timing["seeds_seconds"], timing["total_seconds"]) == (1.0, 1.0, 4.0)
    assert timing["fits"] == 2 + 1


def test_head_saved_and_reloads(erm, data):
    from probe import ProbeTrainer

    report, out = erm
    assert (out / "head.safetensors").is_file() and (out / "head.json").is_file()
    trainer = ProbeTrainer.load(out / "head.safetensors")
    x, y = data["test"]
    acc = trainer.predict(x) == y
    first_seed = report["seeds"]["metrics"]["overall"]["per_seed"][0]
    assert acc.mean() == pytest.approx(first_seed)


def test_selection_never_sees_test(data):
    cfg = ProbeConfig(**{**FAST, "seeds": [0]})
    other = dict(data, test=(data["test"][0][::-1].copy() * 0 + 1, data["test"][1]))
    a = run_probe(data, NAMES, cfg)
    b = run_probe(other, NAMES, cfg)
    assert a["selection"] == b["selection"]
    assert a["val"] == b["val"]
    assert a["summary"]["overall"] != b["summary"]["overall"]


def test_deterministic(data):
    cfg = ProbeConfig(**{**FAST, "seeds": [3]})
    assert run_probe(data, NAMES, cfg)["per_class"] == run_probe(data, NAMES, cfg)["per_class"]


def test_a_report_records_what_it_ran_with_and_reruns_from_its_config(data, tmp_path):
    """A reproducibility audit: the report said precision 'auto' and no versions, so a run re-done on a CPU
    without native bfloat16 trained other heads (0.019 apart in weight on digits) with nothing to say why. It records
    the versions, the precisions its fits ran at and the command line; its config trains the same run again."""
    import torch

    config = ProbeConfig(**{**FAST, "posthoc_bias": True, "precision": "bf16"})
    first = _run_probe(data, NAMES, config, out_dir=tmp_path / "a", command=["mr2probe", "train", "--out", "a"])
    env = first.environment
    assert (env.torch, env.numpy, env.python) == (torch.__version__, np.__version__, platform.python_version())
    assert env.fit_precisions == ["bf16"] and env.seed_precisions == ["bf16", "bf16"]
    assert env.command == ["mr2probe", "train", "--out", "a"] and env.cwd == os.getcwd()
    assert "fits in bf16; ran as: mr2probe train --out a" in " ".join(format_report(first, width=1000).split())
    assert _run_probe(data, NAMES, ProbeConfig(**FAST)).environment.fit_precisions == ["fp32"]  # tiny: auto is fp32
    assert _run_probe(data, NAMES, ProbeConfig(**FAST)).environment.command is None

    again = _run_probe(data, NAMES, load_report(tmp_path / "a").probe_config(), out_dir=tmp_path / "b")
    assert again.config == first.config
    for name in ("head.safetensors", "predictions.npz", "per_class.csv", "posthoc_bias.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_reference_of_other_class_order_names_the_first_difference(data, erm):
    """Classes in another order past the fifth: the refusal printed the first five of each, the same two lists
    ("['k0', ..., 'k4']... vs ['k0', ..., 'k4']...", an extremes round); it names where they part, as compare does."""
    ref, _ = erm
    swapped = NAMES[:4] + [NAMES[5], NAMES[4]]
    with pytest.raises(ValueError, match=r"reference run has different classes than this run: 6 against 6 classes; "
                       r"the first difference is class 4: 'c4' against 'c5'"):
        run_probe(data, swapped, ProbeConfig(**FAST), reference=ref)


def test_mr2_gamma_follows_spread_and_reference_groups(data, erm):
    ref, _ = erm
    cfg = ProbeConfig(**{**FAST, "loss": "mr2", "wd_grid": [0.0]})
    report = run_probe(data, NAMES, cfg, reference=ref)
    gamma = [r["gamma"] for r in report["per_class"]]
    assert len(report["selection"]["candidates"]) == 3  # c̄ ∈ {1, 2, 3}
    cbar = report["config"]["selected"]["cbar"]
    assert np.mean(gamma) == pytest.approx(cbar)
    assert np.all(np.diff(gamma) > 0)  # classes with larger spread get larger margins
    assert np.all(np.diff([r["r2"] for r in report["per_class"]]) > 0)
    assert report["grouping"]["source"] == "reference"
    assert report["grouping"]["groups"] == ref["grouping"]["groups"]


def test_posthoc_bias_keeps_val_overall(data, tmp_path):
    cfg = ProbeConfig(**{**FAST, "posthoc_bias": True, "wd_grid": [0.0]})
    plain = run_probe(data, NAMES, cfg.model_copy(update={"posthoc_bias": False}))
    report = run_probe(data, NAMES, cfg, out_dir=tmp_path / "ph")
    assert report["val"]["overall"] >= plain["val"]["overall"]
    for seed in report["posthoc"]["per_seed"]:
        assert seed["val_overall_after"] >= seed["val_overall_before"]
        assert seed["val_objective_after"] >= seed["val_objective_before"]
        assert len(seed["bias"]) == K
    assert "post-hoc" in report["selection"]["reason"]
    assert json.loads((tmp_path / "ph" / "posthoc_bias.json").read_text())["bias"] == report["posthoc"]["per_seed"][0]["bias"]


def test_carved_validation_is_stratified_and_seeded():
    y = np.repeat(np.arange(3), [10, 20, 5])
    x = np.arange(len(y), dtype=np.float32)[:, None]
    (xt, yt), (xv, yv) = carve_validation(x, y, 0.2, seed=0)
    assert np.bincount(yv).tolist() == [2, 4, 1]
    assert len(yt) + len(yv) == len(y) and not set(xt[:, 0]) & set(xv[:, 0])
    (_, _), (xv2, _) = carve_validation(x, y, 0.2, seed=0)
    np.testing.assert_array_equal(xv, xv2)


def test_missing_val_is_carved(data):
    no_val = {"train": data["train"], "test": data["test"]}
    report = run_probe(no_val, NAMES, ProbeConfig(**{**FAST, "seeds": [0], "wd_grid": [0.0]}))
    assert report["val"]["source"].startswith("carved from train")
    assert sum(r["n_train"] for r in report["per_class"]) == 6 * 54


def test_progress_and_cancellation(data, tmp_path):
    seen = []
    run_probe(data, NAMES, ProbeConfig(**FAST), progress=lambda f, s: seen.append((f, s)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] >= 0.0
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(ProbeCancelled, match="cancelled"):
        run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=tmp_path / "x", should_stop=stop)
    assert not (tmp_path / "x" / "report.json").exists()


def test_an_out_dir_that_cannot_be_written_fails_before_any_fit(data, tmp_path):
    report_file = tmp_path / "report.json"
    report_file.write_text("{}")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    cases = [(report_file, NotADirectoryError, "report.json is a file"),
             (report_file / "run", NotADirectoryError, "report.json is a file")]
    if os.geteuid() != 0:  # root may write anywhere
        cases.append((locked / "run", PermissionError, "locked is not writable"))
    for out_dir, error, message in cases:
        seen = []
        with pytest.raises(error, match=message):
            run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=out_dir, progress=lambda f, s: seen.append(s))
        assert seen == []  # nothing ran
    assert report_file.read_text() == "{}" and list(locked.iterdir()) == []
    run_probe(data, NAMES, ProbeConfig(**FAST), out_dir=tmp_path / "new" / "deeper")  # folders still to make: fine
    assert (tmp_path / "new" / "deeper" / "report.json").is_file()


def test_a_class_missing_from_val_still_gives_a_report(data):
    # a small unseen data set: the two hardest classes (a third of 6) have no validation image, so the candidates'
    # val hard third cannot be computed: null in the report and "n/a" in the reason, never a crash
    x, y = data["val"]
    keep = y < K - 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's "Mean of empty slice" reached the user's terminal
        report = run_probe({**data, "val": (x[keep], y[keep])}, NAMES, ProbeConfig(**FAST))
    candidates = report["selection"]["candidates"]
    assert len(candidates) == 2 and all(c["val_overall"] is not None and c["val_hard"] is None for c in candidates)
    assert [report["per_class"][k]["val_accuracy"] for k in (K - 2, K - 1)] == [None, None]
    assert "n/a" in report["selection"]["reason"]
    assert "worst class" in format_report(Report.model_validate(report))
    with warnings.catch_warnings():  # the disparity-aware decision's bootstrap over those groups: quiet too
        warnings.simplefilter("error", RuntimeWarning)
        disparity = run_probe({**data, "val": (x[keep], y[keep])}, NAMES,
                              ProbeConfig(preset="disparity", epochs=40, seeds=[0], cv=0), reference=report)
    assert disparity["selection"]["criterion"] == "hard"


def test_two_classes_leave_the_medium_third_empty_without_warnings(data):
    two = {split: (x[y < 2], y[y < 2]) for split, (x, y) in data.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = run_probe(two, NAMES[:2], ProbeConfig(**FAST))
    assert report["summary"]["medium"] is None and report["summary"]["group_margin"]["medium"] is None
    assert report["summary"]["easy"] is not None and report["summary"]["hard"] is not None


def test_input_errors(data):
    with pytest.raises(ValueError, match="'train' and 'test'"):
        run_probe({"train": data["train"]}, NAMES, ProbeConfig(**FAST))
    with pytest.raises(ValueError, match="labels outside"):
        run_probe(data, NAMES[:3], ProbeConfig(**FAST))
    with pytest.raises(ValueError, match="reference"):
        run_probe(data, NAMES, ProbeConfig(**{**FAST, "loss": "mr2_valerr"}))


def test_no_validation_image_to_carve_says_why(data):
    """One train image per class and no val split: the run said only 'the validation split is empty; selection needs
    validation samples.' (an extremes round); it says why, and what to do, as the service does."""
    x, y = data["train"]
    first = np.flatnonzero(np.diff(np.concatenate([[-1], y])) != 0)  # one train image of each class
    one = {"train": (x[first], y[first]), "test": data["test"]}
    with pytest.raises(ValueError, match=r"^the validation split is empty; selection needs validation samples: these splits hold no validation image "
                       r"\(train 6, val 0, test 360\) and no class has the 2 train images one is carved from; give "
                       r"the data set a val/ folder or more images per class\.$"):
        run_probe(one, NAMES, ProbeConfig(**FAST))


def test_a_class_of_one_training_image_is_refused_by_the_spread_margin_loss_by_name(data):
    """mr2_spread's margin is the class's within-class spread, 0 for one image: a run stopped in its sweep on
    'classes [3, 4] have [0.0, 0.0] (... a spread of a single sample?)', indices the user never sees (an extremes
    round); it is refused before any fit, naming the classes, in each fit the run makes (a cross-validation fold
    trains on the other folds)."""
    x, y = data["train"]
    keep = (y != 3) | (np.cumsum(y == 3) <= 1)  # class c3: one training image
    few = {**data, "train": (x[keep], y[keep])}
    steps = []
    with pytest.raises(ValueError, match=r"loss 'mr2_spread' .* 0 for a class of one training image: 'c3' \(1\)"):
        run_probe(few, NAMES, ProbeConfig(**{**FAST, "loss": "mr2_spread"}), progress=lambda *a: steps.append(a))
    assert steps == []
    # two training images and none in val: 2 folds of train + val, each fit on one image of it
    keep = (y != 3) | (np.cumsum(y == 3) <= 2)
    xv, yv = data["val"]
    val = yv != 3
    fold = {**data, "train": (x[keep], y[keep]), "val": (xv[val], yv[val])}
    with pytest.raises(ValueError, match=r"'c3' \(1 in a cross-validation fold\)"):
        run_probe(fold, NAMES, ProbeConfig(**{**FAST, "loss": "mr2_spread", "cv": 5}))
    assert run_probe(fold, NAMES, ProbeConfig(**{**FAST, "loss": "mr2"}))["config"]["loss"] == "mr2"


def test_config_messages():
    with pytest.raises(ValueError, match="Unknown loss 'nope'; available"):
        ProbeConfig(loss="nope")
    with pytest.raises(ValueError, match="adapter"):
        ProbeConfig(lam=0.5)
    with pytest.raises(ValueError, match="head='cosine'"):
        ProbeConfig(loss="cosface")
    with pytest.raises(ValueError, match="adapter_rank=8 applies to adapter 'lowrank' or 'mlp', got adapter='linear'"):
        ProbeConfig(adapter="linear", adapter_rank=8)
    with pytest.raises(ValueError, match=r"adapter_rank must be an integer in \[1, 4096\] or None, got 0"):
        ProbeConfig(adapter="mlp", adapter_rank=0)
    with pytest.raises(ValueError, match="Extra inputs"):
        ProbeConfig(lr=0.1)
    with pytest.raises(ValueError, match=r"Unknown head_options 'scale' for head 'cosine'; accepted: "
                                         r"logit_scale, learnable_scale"):
        ProbeConfig(head="cosine", head_options={"scale": 2.0})
    assert ProbeConfig(head="cosine").resolved_p == 3.0 and ProbeConfig().resolved_p == 2.0
    grid = ProbeConfig(loss="mr2", adapter="linear", lr_grid=[0.1], wd_grid=[0.0]).candidates()
    assert len(grid) == 15 and grid[0] == {"lr": 0.1, "weight_decay": 0.0, "cbar": 1.0, "lam": 0.1}
    assert ProbeConfig(loss="mr2", cbar=2.0, lr_grid=[0.1], wd_grid=[0.0]).candidates() == [
        {"lr": 0.1, "weight_decay": 0.0, "cbar": 2.0}]


def test_loss_options_grid_is_selected_on_validation(data):
    config = ProbeConfig(**FAST, loss="group_dro", loss_options_grid={"eta": [0.001, 1.0]})
    assert config.candidates() == [{"lr": 0.05, "weight_decay": wd, "eta": eta}
                                   for wd in (0.0, 1e-3) for eta in (0.001, 1.0)]
    report = run_probe(data, NAMES, config)
    scored = report["selection"]["candidates"]
    assert [c["eta"] for c in scored] == [0.001, 1.0, 0.001, 1.0]
    assert report["config"]["selected"]["eta"] == report["selection"]["chosen"]["eta"]
    # eta reaches the loss: a larger step moves more weight to the worst classes, so the fits differ
    single = dict(FAST, seeds=[0], wd_grid=[0.0], loss="group_dro")
    slow = run_probe(data, NAMES, ProbeConfig(**single, loss_options_grid={"eta": [0.001]}))
    fast = run_probe(data, NAMES, ProbeConfig(**single, loss_options_grid={"eta": [1.0]}))
    fixed = run_probe(data, NAMES, ProbeConfig(**single, loss_options={"eta": 1.0}))
    assert fast["val"]["per_class"] != slow["val"]["per_class"]
    assert fast["val"]["per_class"] == fixed["val"]["per_class"]
    with pytest.raises(ValueError, match=r"Unknown loss_options_grid 'gamma_focal' for loss 'group_dro'"):
        ProbeConfig(loss="group_dro", loss_options_grid={"gamma_focal": [1.0]})
    with pytest.raises(ValueError, match="both as fixed loss_options and in loss_options_grid"):
        ProbeConfig(loss="group_dro", loss_options={"eta": 0.1}, loss_options_grid={"eta": [0.1]})
    with pytest.raises(ValueError, match=r"lists no values for \['eta'\]"):
        ProbeConfig(loss="group_dro", loss_options_grid={"eta": []})


def _preset_and_a_generated_client(preset):
    """A client generated from the OpenAPI schema sends every default it reads, and the fields a request sets win
    over the preset: its preset='disparity' ran ERM, 202 and no word (an OpenAPI-client round). The fields a preset
    fills publish no default; a request that sets every one of them to another value is refused (the preset would
    do nothing); the preset's own loss sent again keeps its options."""
    properties = ProbeConfig.model_json_schema()["properties"]
    assert [name for name in preset.settings if "default" in properties[name]] == []
    assert 'default "ce", or the preset\'s where one is given' in properties["loss"]["description"]
    assert "default" in properties["head"] and "default" in properties["epochs"]
    for sent in ({"loss": "ce", "select": "overall"}, {"loss": "ce", "select": "overall", "loss_options_grid": {}},
                 {"loss": "focal", "select": "overall"}):
        with pytest.raises(ValueError, match="preset 'disparity' sets loss='group_dro', loss_options_grid=.*, "
                                             "select='hard'; this request replaces each of them .*so the preset "
                                             "would do nothing"):
            ProbeConfig(preset="disparity", **sent)
    with pytest.raises(ValueError, match=r"\(loss='ce', select='overall', loss_options_grid dropped with the "
                                         r"preset's loss\)"):
        ProbeConfig(preset="disparity", loss="ce", select="overall")
    assert ProbeConfig(preset="disparity", loss="group_dro", select="hard").loss_options_grid == \
        preset.settings["loss_options_grid"]
    assert ProbeConfig(preset="disparity", loss="ce").select == "hard"  # the preset still decides


def test_preset_fills_unset_fields_and_the_report_says_why(data):
    from probe import PRESETS

    preset = PRESETS["disparity"]
    for head in ("linear", "cosine"):
        config = ProbeConfig(preset="disparity", head=head)
        assert {k: getattr(config, k) for k in preset.settings} == preset.settings
    assert ProbeConfig(preset="disparity", select="overall").select == "overall"  # explicit fields win
    # another loss drops the preset's options of its own loss
    assert ProbeConfig(preset="disparity", loss="ce").loss_options_grid == {}
    with pytest.raises(ValueError, match="Unknown preset 'fair'; available: disparity"):
        ProbeConfig(preset="fair")
    erm = run_probe(data, NAMES, ProbeConfig(**FAST))
    _preset_and_a_generated_client(preset)
    report = run_probe(data, NAMES, ProbeConfig(**FAST, preset="disparity"), reference=erm)
    # The request as given: the report's config, or, when the run kept the reference configuration, `requested`.
    requested = report["selection"]["requested"] or report["config"]
    assert requested["preset"] == "disparity" and requested["loss"] == preset.settings["loss"]
    assert report["selection"]["preset"] == {"name": "disparity", "settings": preset.settings, "why": preset.why}
    etas = [c["eta"] for c in report["selection"]["candidates"]]
    assert sorted(set(etas)) == sorted(preset.settings["loss_options_grid"]["eta"])
    assert "preset disparity" in format_report(Report.model_validate(report))
    assert erm["selection"]["preset"] is None


def test_ema_class_statistics_agree_with_exact(data):
    """The paper's EMA of r_k² (per batch, decay 0.9) ends close to the exact per-class value on frozen features."""
    base = {**FAST, "loss": "mr2", "cbar": 2.0, "seeds": [0], "wd_grid": [0.0], "batch_size": 32}
    exact = run_probe(data, NAMES, ProbeConfig(**base))
    ema = run_probe(data, NAMES, ProbeConfig(**base, r2_mode="ema"))
    r2_exact = np.array([r["r2"] for r in exact["per_class"]])
    r2_ema = np.array([r["r2"] for r in ema["per_class"]])
    np.testing.assert_allclose(r2_ema, r2_exact, rtol=0.08)  # measured ≤ 2.6 %
    np.testing.assert_allclose([r["gamma"] for r in ema["per_class"]], [r["gamma"] for r in exact["per_class"]],
                               rtol=0.03)
    assert ema["config"]["r2_mode"] == "ema"


def test_auto_epochs_rule(data):
    assert auto_epochs(50_000, 1024) == 10  # 49 steps per epoch → ceil(450 / 49)
    assert auto_epochs(6_000, 1024) == 75
    assert auto_epochs(600, None) == 450 and auto_epochs(600, 1024) == 450  # full batch: 450 steps as well
    assert auto_epochs(3_000, 2_048) == 225
    assert auto_epochs(10_000_000, 1024) == 10
    cfg = ProbeConfig(**{k: v for k, v in FAST.items() if k != "epochs"}, batch_size=64)
    assert cfg.epochs is None
    report = run_probe(data, NAMES, cfg.model_copy(update={"seeds": [0], "wd_grid": [0.0]}))
    assert report["config"]["epochs"] == auto_epochs(6 * 60, 64) == 75


def test_auto_batch_size_is_full_batch_for_small_sets(data):
    """batch_size="auto" (the default): full batch up to 4,096 training rows, batches of 1024 above; run_probe
    resolves it (and the epochs) from the training-set size and the report records the values used."""
    assert ProbeConfig().batch_size == "auto"
    assert auto_batch_size(4096) is None and auto_batch_size(4097) == 1024 and auto_batch_size(45_000) == 1024
    small, large = ProbeConfig().resolved(2_700), ProbeConfig().resolved(45_000)
    assert (small.batch_size, small.epochs) == (None, 450) and (large.batch_size, large.epochs) == (1024, 11)
    assert ProbeConfig(batch_size=64, epochs=3).resolved(2_700).batch_size == 64  # explicit values are kept
    with pytest.raises(ValueError, match=r"batch_size='auto' depends on the training-set size"):
        ProbeConfig().trainer_params({"lr": 0.1, "weight_decay": 0.0}, seed=0)
    report = run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0], "wd_grid": [0.0]}))
    assert report["config"]["batch_size"] is None and report["config"]["epochs"] == 40


def test_default_grids_are_the_optimizers_and_scale_with_the_training_set(data):
    """lr_grid / wd_grid None (the default) are the optimiser's default_grids. For adam (the default) and sgd the
    weight decays are the L2 strengths α / n_train (α in L2_STRENGTHS; scikit-learn's C = 1/α), resolved with the
    training-set size as the batch size is; adamw keeps its n-free grid; a grid the request gives is kept; the
    report records the values used."""
    assert ProbeConfig().optimizer == "adam" and ProbeConfig().lr_grid is None and ProbeConfig().wd_grid is None
    assert L2_STRENGTHS == (0.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    small, large = ProbeConfig().resolved(300), ProbeConfig().resolved(30_000)
    assert small.lr_grid == large.lr_grid == [1e-2]
    assert small.wd_grid == pytest.approx([0.0, 10 / 300, 30 / 300, 100 / 300, 1.0, 1000 / 300])
    assert large.wd_grid == pytest.approx([a / 30_000 for a in L2_STRENGTHS])
    assert ProbeConfig(optimizer="sgd").resolved(300).wd_grid == small.wd_grid
    # the cosine head's logits ignore its weights' norm: no L2 strengths, two learning rates instead
    assert HEADS["cosine"].scale_invariant and not HEADS["linear"].scale_invariant
    cosine = ProbeConfig(head="cosine").resolved(300)
    assert (cosine.lr_grid, cosine.wd_grid) == ([1e-3, 1e-2], [0.0])
    assert ProbeConfig(head="cosine", loss="mr2").n_candidates() == 6
    assert ProbeConfig(head="cosine", optimizer="adamw").resolved(300).wd_grid == [0.0, 1.0, 10.0]
    adamw = ProbeConfig(optimizer="adamw").resolved(300)
    assert (adamw.lr_grid, adamw.wd_grid) == ([1e-3, 1e-2], [0.0, 1.0, 10.0])
    given = ProbeConfig(lr_grid=[0.1], wd_grid=[0.5]).resolved(300)
    assert (given.lr_grid, given.wd_grid) == ([0.1], [0.5])
    # the count is known before the size; the candidates are not
    assert ProbeConfig().n_candidates() == 6 and ProbeConfig(loss="mr2").n_candidates() == 18
    with pytest.raises(ValueError, match=r"default lr_grid / wd_grid depend on the training-set size"):
        ProbeConfig().candidates()
    report = run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0], "lr_grid": None, "wd_grid": None}))
    n_train = sum(row["n_train"] for row in report["per_class"])
    assert report["config"]["wd_grid"] == pytest.approx([a / n_train for a in L2_STRENGTHS])
    assert [c["weight_decay"] for c in report["selection"]["candidates"]] == pytest.approx(report["config"]["wd_grid"])


def test_tol_reaches_every_fit_and_stops_early(data):
    """ProbeConfig.tol (default 1e-3) is each trainer's stopping rule; tol=None runs every epoch."""
    assert ProbeConfig().tol == 1e-3
    with pytest.raises(ValueError, match=r"tol must be >= 0 or None, got -1.0"):
        ProbeConfig(tol=-1.0)
    cfg = ProbeConfig(**{**FAST, "epochs": 200, "seeds": [0]})
    from probe.trainer import ProbeTrainer

    fitted = []
    original = ProbeTrainer._finish

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        fitted.append((self.tol, self.n_epochs_))

    import unittest.mock as mock

    with mock.patch.object(ProbeTrainer, "_finish", spy):
        run_probe(data, NAMES, cfg)
        assert fitted and all(tol == 1e-3 and epochs < 200 for tol, epochs in fitted)
        fitted.clear()
        run_probe(data, NAMES, cfg.model_copy(update={"tol": None}))
        assert fitted and all(tol is None and epochs == 200 for tol, epochs in fitted)


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_every_seed_trains_at_the_precision_of_the_first(data, monkeypatch, precision):
    """On mini-batches the first seed comes from the selection's joint fit, whose 4 heads × 6 classes = 24 outputs
    make ``auto`` bf16 (on a CPU with native bf16); seeds 1 and 2, fitted alone (6 outputs), train at that
    precision too rather than resolving their own, so the spread over seeds is of one precision. Their own would
    be bf16 as well here (a cast-once copy: bf16 from 3 outputs), so that threshold is raised to the per-batch
    one for this test: alone they would resolve fp32."""
    import probe.precision as precision_module
    import probe.trainer as trainer_module
    from probe.precision import BF16_MIN_OUTPUTS, cpu_has_native_bf16

    monkeypatch.setattr(precision_module, "BF16_MIN_CAST_ONCE_OUTPUTS", BF16_MIN_OUTPUTS)

    fits = []
    original = trainer_module.fit_many

    def spy(trainers, *args, **kwargs):
        out = original(trainers, *args, **kwargs)
        fits.append([(t.random_state, t.precision_) for t in trainers])
        return out

    monkeypatch.setattr(trainer_module, "fit_many", spy)
    config = ProbeConfig(**{**FAST, "epochs": 3, "wd_grid": [0.0, 1e-4, 1e-3, 1e-2], "seeds": [0, 1, 2],
                            "batch_size": 64, "precision": precision})
    assert 4 * K >= BF16_MIN_OUTPUTS and K < BF16_MIN_OUTPUTS
    run_probe(data, NAMES, config)
    sweep, *seeds = fits
    expected = "bf16" if precision == "auto" and cpu_has_native_bf16() else "fp32"
    assert sweep == [(0, expected)] * 4
    assert seeds == [[(1, expected)], [(2, expected)]]


def test_balanced_overall_metric_scores_selection_and_the_imbalance_warning_points_to_it(data):
    keep = np.concatenate([np.flatnonzero(data["train"][1] == k)[:n] for k, n in enumerate([60, 60, 40, 20, 10, 6])])
    vkeep = np.concatenate([np.flatnonzero(data["val"][1] == k)[:n] for k, n in enumerate([30, 30, 20, 10, 5, 3])])
    skewed = {"train": (data["train"][0][keep], data["train"][1][keep]),
              "val": (data["val"][0][vkeep], data["val"][1][vkeep]), "test": data["test"]}
    base = {**FAST, "seeds": [0], "wd_grid": [0.0, 1e-3, 1e-2]}
    plain = run_probe(skewed, NAMES, ProbeConfig(**base))
    (warning,) = [w for w in plain["warnings"] if w.startswith("Imbalanced classes")]
    assert "hold 9 to 90 images per class (10×; fewest: c5 (9), c4 (15), c3 (30))" in warning
    assert "The test split holds the classes in other proportions (60 images in every class)" in warning
    assert plain["selection"]["chosen"]["val_overall"] == pytest.approx(plain["val"]["overall"])

    balanced = run_probe(skewed, NAMES, ProbeConfig(**base, overall_metric="balanced"))
    assert balanced["config"]["overall_metric"] == "balanced"
    assert not [w for w in balanced["warnings"] if w.startswith("Imbalanced classes")]
    assert balanced["selection"]["chosen"]["val_overall"] == pytest.approx(np.mean(balanced["val"]["per_class"]))
    # said first, before "the highest validation overall accuracy" (a new-user round read that as plain accuracy)
    assert balanced["selection"]["reason"].startswith("Overall is balanced accuracy in this selection (the mean of the "
                                                      "per-class accuracies, overall_metric='balanced'). ")
    preset = run_probe(skewed, NAMES, ProbeConfig(**base, preset="disparity", overall_metric="balanced"))
    assert preset["config"]["overall_metric"] == "balanced"  # the reference configuration it may fall back to
    assert "balanced accuracy" in preset["selection"]["verdict_text"]
    assert all(c["val_overall"] is None or 0 <= c["val_overall"] <= 1 for c in preset["selection"]["candidates"])
    # a reference chosen on accuracy under a balanced hard selection: said (it is the fallback); alike: nothing said
    cfg = ProbeConfig(**{**base, "wd_grid": [0.0]}, preset="disparity", overall_metric="balanced")
    other = [w for w in _run_probe(skewed, NAMES, cfg, reference=_run_probe(skewed, NAMES, ProbeConfig(
        **{**base, "wd_grid": [0.0]}))).warnings if w.startswith("The reference run")]
    assert len(other) == 1 and other[0].startswith("The reference run chose its configuration on accuracy over the "
                                                   "images; this run measures overall as ")  # in memory: no "None"
    assert "balanced accuracy" in other[0] and "--overall-metric balanced too" in other[0]
    assert "chose its configuration on accuracy over the images; this run measures overall as " \
        "balanced accuracy" in other[0] and "--overall-metric balanced too" in other[0]
    alike = _run_probe(skewed, NAMES, cfg, reference=_run_probe(skewed, NAMES, ProbeConfig(
        **{**base, "wd_grid": [0.0]}, overall_metric="balanced")))
    assert not [w for w in alike.warnings if w.startswith("The reference run")]


def test_the_overall_criterion_scores_and_chooses_alike_with_or_without_a_reference():
    """Given a reference, an overall-criterion run (ERM, the post-hoc bias's base probe) scores its candidates'
    hard third as a run without one does, each on its own ranking; with the reference's thirds, a tie on val
    overall (common with small validation splits) was broken otherwise than the user's ERM run broke it
    (the first run of the post-hoc shots sweep: 4 of 65 subsamples)."""
    cfg = ProbeConfig(**{**FAST, "seeds": [0], "wd_grid": [0.0, 1e-3, 1e-2, 0.1]})
    data = make_data(seed=4, n_per_class=20)
    alone = _run_probe(data, NAMES, cfg)
    reference = alone.model_dump(mode="json")
    reference["val"]["per_class"] = [1.0 - a for a in reference["val"]["per_class"]]  # its thirds turned over
    given = _run_probe(data, NAMES, cfg, reference=reference)
    assert given.grouping.groups["hard"] == alone.grouping.groups["easy"]  # the report uses the reference's thirds
    assert [c.val_hard for c in given.selection.candidates] == [c.val_hard for c in alone.selection.candidates]
    assert given.config["selected"] == alone.config["selected"]


@pytest.mark.parametrize("train", [[1, 1, 1], [0, 2, 1], [5, 1, 9], [2, 2, 2]])
@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_validation_images_counts_what_carve_validation_takes(train, fraction):
    """What a service checks before a job exists (probe.splits.validation_images) is what a run's empty val split
    gets from carve_validation; a given val split counts as it is."""
    from probe.splits import carve_validation, validation_images

    labels = np.repeat(np.arange(len(train)), train)
    _, (_, carved) = carve_validation(np.zeros((len(labels), 2)), labels, fraction, seed=3)
    assert validation_images({"train": train, "val": [0, 0, 0]}, fraction) == len(carved)
    assert validation_images({"train": train}, fraction) == len(carved)
    assert validation_images({"train": train, "val": [0, 4, 0]}, fraction) == 4
    assert (len(carved) == 0) == (max(train) < 2)


def test_a_run_on_class_names_alike_warns_of_them():
    """'Cat' and 'cat' trained as two classes without a word (an outside round); the report's warnings name them."""
    names = ["Cat", "cat", *NAMES[2:]]
    report = run_probe(make_data(), names, ProbeConfig(**{**FAST, "seeds": [0]}))
    assert any(w.startswith("Class names that differ only in case, spacing or Unicode form: 'Cat' and 'cat'.")
               for w in report["warnings"]), report["warnings"]


def test_the_tie_note_reads_the_accuracies_that_ranked_the_groups():
    """A run's groups are ranked on its seeds' mean validation accuracy (or its reference's): the note on ties
    split between thirds reads those, not the first seed's (a review found it naming ties the ranking had told
    apart). Here 6 well-separated classes of 40 validation images, each seed nearly perfect: the seed mean ties
    every class at 100 %, so the note is there exactly when the ranked accuracies tie."""
    import numpy as np

    from probe import ProbeConfig, run_probe
    from probe.decision import tied_across_thirds
    from probe.groups import assign_groups

    from testdata import gaussian_splits

    data = gaussian_splits(6, {"train": 30, "val": 50, "test": 10}, spread=8)
    report = run_probe(data, [f"c{k}" for k in range(6)], ProbeConfig(seeds=[0, 1], epochs=20, lr_grid=[1e-2],
                                                                     wd_grid=[0.0], cv=0))
    ranked = np.array(report.val.per_class, dtype=float)
    assert assign_groups(ranked) == report.grouping.groups
    expected = tied_across_thirds(ranked, report.grouping.groups)
    assert [w for w in report.warnings if w.startswith("Tied ")] == ([expected] if expected else [])
    assert expected is not None  # the data make the tie (all at 100 %), so the check above is not vacuous


def test_a_run_says_which_of_its_hard_classes_had_no_validation_image(data):
    """The thirds rank a class without validation images hardest: the run's warnings say so (a 1,000-class round)."""
    x, y = data["val"]
    keep = y != 2
    report = run_probe({**data, "val": (x[keep], y[keep])}, NAMES, ProbeConfig(**{**FAST, "seeds": [0], "cv": 0}))
    assert 2 in report["grouping"]["groups"]["hard"]
    assert [w for w in report["warnings"] if "ranked hardest, unmeasured" in w] == [
        "1 class without any validation image was ranked hardest, unmeasured (1 of "
        f"{len(report['grouping']['groups']['hard'])} in the hard third): the thirds' accuracies, and any gain on the "
        "hard third, are partly about it, not about classes measured to be hard."]


def test_calibration_is_that_of_the_saved_head_on_test(erm, data):
    """The report's calibration reads the head a run ships (the first seed's) on the test split."""
    from sklearn.metrics import log_loss

    from probe import ProbeTrainer
    from probe.metrics import softmax

    report, out = erm
    cal = report["calibration"]
    x, y = data["test"]
    logits = np.asarray(ProbeTrainer.load(out / "head.safetensors").decision_function(x), dtype=np.float64)
    prob = softmax(logits)
    assert cal["accuracy"] == pytest.approx(report["seeds"]["metrics"]["overall"]["per_seed"][0])
    assert cal["confidence"] == pytest.approx(prob.max(axis=1).mean(), abs=1e-6)
    assert cal["nll"] == pytest.approx(log_loss(y, prob, labels=range(K)), abs=1e-5)
    assert cal["top_k"] == 5 and 0 < cal["top_k_accuracy"] <= 1
    assert cal["top_k_accuracy"] >= cal["accuracy"]
    assert sum(b["count"] for b in cal["bins"]) == len(y) and len(cal["bins"]) == 15
    assert cal["ece_ci"][0] <= cal["ece"] + 0.05 and cal["ece_ci"][0] < cal["ece_ci"][1]


def test_a_worst_test_class_outside_the_hard_third_is_said(data):
    """The worst class on test sat in the easy third (ranked on validation) and "no safe improvement" read as if
    about it (a new-user round): the report says where it is and why; a worst class in the hard third is not noted."""
    plain = run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0]}))
    assert not [w for w in plain["warnings"] if "the worst class on test" in w]
    x, y = data["test"]
    moved = x.copy()
    moved[y == 0] = x[y == 5][: (y == 0).sum()]  # c0, the easiest on validation, fails on test
    report = run_probe({**data, "test": (moved, y)}, NAMES, ProbeConfig(**{**FAST, "seeds": [0]}))
    assert report["summary"]["worst_class"]["name"] == "c0"
    row = report["per_class"][0]
    (note,) = [w for w in report["warnings"] if "the worst class on test" in w]
    assert note.startswith(f"c0, the worst class on test ({100 * row['accuracy']:.1f} % [") and \
        f"is in the {row['group']} third: the thirds are ranked by validation accuracy, where it scored " \
        f"{100 * report['val']['per_class'][0]:.1f} %" in note and row["group"] != "hard"
    # tied on validation with a class of another third: its stability is the tie's, not evidence (it read "kept its
    # third in 100 % of resamples" beside the tie note; a new-user round)
    from probe.run_notes import _worst_outside_hard

    ranked = np.array(report["val"]["per_class"], dtype=float)
    other = next(i for i in report["grouping"]["groups"]["hard"])
    ranked[other] = ranked[0]
    from probe.report import Report

    tied = _worst_outside_hard(Report.model_validate(report), ranked, "validation")
    assert "(tied there with a class of another third: the class index decided its third)" in tied
    assert "bootstrap resamples" not in tied


def test_no_worst_class_note_when_a_hard_class_ties_it_on_test(data):
    """Every class at 100 % on test: the report said "BLUE squares, the worst class on test (100.0 %), is in the
    easy third" beside a hard-third class as bad (a new-user round, 3 classes of 1 to 6 test images). A class of the
    hard third at the worst class's test accuracy leaves nothing to note."""
    from probe.report import Report
    from probe.run_notes import _worst_outside_hard

    x, y = data["test"]
    moved = x.copy()
    moved[y == 0] = x[y == 5][: (y == 0).sum()]  # c0, the easiest on validation, fails on test
    config = ProbeConfig(**{**FAST, "seeds": [0]})
    report = Report.model_validate(run_probe({**data, "test": (moved, y)}, NAMES, config))
    ranked = np.array(report.val.per_class, dtype=float)
    assert _worst_outside_hard(report, ranked, "validation") is not None
    worst = report.per_class[0]
    hard = next(r for r in report.per_class if r.group == "hard")
    hard.accuracy = worst.accuracy
    assert _worst_outside_hard(report, ranked, "validation") is None


def test_a_loss_whose_priors_the_fit_fills_takes_its_other_options(data):
    """--loss logit_adjust --loss-option tau=0.5 was refused before any fit ("needs priors=(K,) class priors"): the
    check built the loss from the request's options alone, where the fit adds the training frequencies (a maintainer
    round). A refused value is still refused before the fit."""
    fast = dict(FAST, seeds=[0], epochs=5)
    half = run_probe(data, NAMES, ProbeConfig(loss="logit_adjust", loss_options={"tau": 0.5}, **fast))
    whole = run_probe(data, NAMES, ProbeConfig(loss="logit_adjust", **fast))
    assert half["config"]["loss_options"] == {"tau": 0.5} and half["summary"] != whole["summary"]
    with pytest.raises(ValueError, match="loss_options.priors has 2 entries but the data has 6 classes"):
        _run_probe(data, NAMES, ProbeConfig(loss="logit_adjust", loss_options={"priors": [1, 1]}, **fast))
    with pytest.raises(ValueError, match="priors must be a 1-D array of non-negative frequencies"):
        _run_probe(data, NAMES, ProbeConfig(loss="logit_adjust", loss_options={"priors": [0] * K}, **fast))


def test_a_reference_run_s_thirds_keep_the_stability_it_measured_on_the_images_that_ranked_them(data):
    """A scale round: thirds ranked on the reference's out-of-fold accuracy (train + val) and resampled on this
    run's 20 validation images read as other thirds, so one class was 83 % stable in the ERM report and 0 % in the
    MR² report of the very same thirds. A run on a reference's thirds now reports that run's stability."""
    fast = dict(epochs=20, lr_grid=[0.05], wd_grid=[0.0], seeds=[0])
    erm = _run_probe(data, NAMES, ProbeConfig(**fast))  # 30 validation images a class: cross-validated
    assert erm.grouping.split == "cv" and erm.grouping.stability is not None
    for select in ("hard", "overall"):
        mr2 = _run_probe(data, NAMES, ProbeConfig(loss="mr2", select=select, cv=0, cbar_grid=[1.0, 2.0], **fast),
                         reference=erm)
        assert mr2.grouping.groups == erm.grouping.groups and mr2.grouping.stability == erm.grouping.stability
        unstable = [w for w in mr2.warnings if w.startswith("Unstable groups")]
        assert all("of the reference run's train + val split" in w for w in unstable)
    own = _run_probe(data, NAMES, ProbeConfig(loss="mr2", select="hard", cv=0, cbar_grid=[1.0], **fast))
    assert own.grouping.stability != erm.grouping.stability  # no reference: its own validation split's


def test_a_run_s_own_thirds_are_resampled_from_what_ranked_them(data, monkeypatch):
    """A statistics review: the thirds of a run without a reference are ranked on the seeds' mean validation
    accuracy, and their stability was resampled from seed 0's correctness alone (a class 100 % right on val, tied
    with two others in seed 0, read 0 % stable)."""
    from probe import uncertainty

    seen = []
    real = uncertainty.Bootstrap.group_stability
    monkeypatch.setattr(uncertainty.Bootstrap, "group_stability",
                        lambda self, correct, groups: seen.append((self.labels, correct)) or real(self, correct, groups))
    report = _run_probe(data, NAMES, ProbeConfig(epochs=3, lr_grid=[0.05], wd_grid=[0.0], seeds=[0, 1, 2], cv=0))
    labels, correct = seen[-1]
    assert np.allclose(uncertainty.observed_class_accuracy(correct, labels, K), report.val.per_class)
    assert not np.isin(correct, [0.0, 1.0]).all()  # the seeds disagree on some images: their mean, not one seed


def test_a_run_that_keeps_the_reference_reports_what_it_applied_after_training(data):
    """A disparity run that fell back to ERM applied its temperature and post-hoc bias while its report's config
    said neither (the reference configuration's defaults; an integration round): the kept configuration carries
    what the request applies to the trained probe, and the guarded bias's budget."""
    from probe.config import AFTER_TRAINING_FIELDS

    request = ProbeConfig(**{**FAST, "loss": "group_dro", "select": "hard", "loss_options_grid": {"eta": [0.01]},
                             "posthoc_bias": True, "max_overall_drop": 2.0, "temperature_scaling": True})
    report = run_probe(data, NAMES, request)
    assert report["selection"]["verdict"] == "no_safe_improvement" and report["config"]["loss"] == "ce"
    assert {k: report["config"][k] for k in AFTER_TRAINING_FIELDS} == {k: getattr(request, k)
                                                                      for k in AFTER_TRAINING_FIELDS}
    assert report["config"]["max_overall_drop"] == 2.0 and report["config"]["select"] == "overall"
    assert report["calibration"]["temperature_scaling"] is not None and report["posthoc"] is not None
    ProbeConfig.model_validate({k: v for k, v in report["config"].items()
                                if k in ProbeConfig.model_fields})  # a reference for later runs: still valid


def test_an_ldam_run_on_imbalanced_classes_takes_its_margins_from_the_training_counts(data, tmp_path):
    """End to end with the registry's ldam (Cao et al., 2019) on the default (linear) head: the trainer fills the
    training frequencies, the report records the scalar options it trained with, and the run writes its files."""
    from probe import ProbeTrainer
    from probe.losses import ldam_margins

    x, y = data["train"]
    counts = np.array([60, 40, 25, 15, 10, 6])  # long-tailed train split; val and test as made
    keep = np.concatenate([np.flatnonzero(y == k)[:n] for k, n in enumerate(counts)])
    imbalanced = {**data, "train": (x[keep], y[keep])}
    config = ProbeConfig(**dict(FAST, seeds=[0], wd_grid=[0.0]), loss="ldam")
    report = run_probe(imbalanced, NAMES, config, out_dir=tmp_path / "ldam")
    assert report["config"]["loss"] == "ldam" and report["config"]["head"] == "linear"
    assert report["config"]["loss_options_used"] == {"scale": 1.0, "max_margin": 0.5}  # priors: filled per class
    assert [r["n_train"] for r in report["per_class"]] == counts.tolist()
    written = {path.name for path in (tmp_path / "ldam").iterdir()}
    assert {"report.json", "per_class.csv", "head.safetensors", "head.json"} <= written
    assert report["summary"]["overall"] > 1 / K  # it learnt something
    # the margins of that fit: 0.5·(6 / n_k)^{1/4}, the rarest class 0.5
    resolved = config.resolved(len(keep))
    m = ProbeTrainer(**resolved.trainer_params(resolved.candidates()[0], seed=0)).fit(*imbalanced["train"])
    assert m.loss_.delta.tolist() == pytest.approx((0.5 * (6 / counts) ** 0.25).tolist(), rel=1e-6)
    assert m.loss_.delta.tolist() == pytest.approx(ldam_margins(counts, 0.5).tolist(), rel=1e-6)


def test_a_class_left_out_by_its_decomposed_name_is_the_composed_class():
    """``without_classes`` matched names exactly: 'café' typed decomposed (NFD, as macOS writes it) was "no class
    named" beside the class 'café' the data set gave composed; confusion_cell's lookup already composed names."""
    import unicodedata

    from probe.splits import without_classes

    names = ["café", "thé", "eau"]
    x, y = np.arange(12, dtype=np.float32).reshape(6, 2), np.array([0, 1, 2, 0, 1, 2])
    data, sources, kept = without_classes({"test": (x, y)}, {"test": list("abcdef")}, names,
                                          [unicodedata.normalize("NFD", "café")])
    assert kept == ["thé", "eau"] and data["test"][1].tolist() == [0, 1, 0, 1] and sources["test"] == list("bcef")
    assert np.array_equal(data["test"][0], x[[1, 2, 4, 5]])
    with pytest.raises(ValueError, match=r"no class named 'cafe' to leave out \(did you mean 'café'\?\)"):
        without_classes({"test": (x, y)}, None, names, ["cafe"])
    # a name that differs only in spacing and case is offered (difflib's ratio was under its cutoff; an extremes round)
    with pytest.raises(ValueError, match=r"no class named 'cat' to leave out \(did you mean '  CAT  '\?\)"):
        without_classes({"test": (x, y)}, None, ["  CAT  ", "thé", "eau"], ["cat"])


def test_several_unknown_names_to_leave_out_each_get_their_own_guess():
    """'a' and 'b' (a class 'a,b' split at its comma by a form) said "(did you mean 'ab'?) (did you mean 'ab'?)",
    neither guess naming the name it was for (an odd-data-sets round)."""
    from probe.splits import kept_classes

    with pytest.raises(ValueError) as caught:
        kept_classes(["a", "zz", "Cow"], ["a,b", "ab", "cow", "ox"])
    assert str(caught.value).startswith("no class named 'a', 'zz', 'Cow' to leave out ('a': did you mean 'ab'?; "
                                        "'Cow': did you mean 'cow'?); the classes: "), caught.value


def test_a_class_is_left_out_by_its_exact_name_first_then_by_its_name_trimmed_when_only_one_class_fits():
    """A name is the class it names exactly; else the one class whose name equals it trimmed ('cat' for 'cat ', a
    form or a shell adds or drops the spaces); two such classes name none, and the refusal offers both."""
    from probe.splits import dropped_names, kept_classes

    assert dropped_names(["cat", " dog"], ["cat ", "dog", "cow", "ox"]) == ["cat ", "dog"]
    assert dropped_names(["cat", "cat "], ["cat ", "dog", "cow"]) == ["cat "]  # one class, once
    assert dropped_names(["cat "], ["cat", "cat ", "cow"]) == ["cat "]  # exact first: "cat " is a class of its own
    assert dropped_names(["cat"], ["cat", "cat ", "cow"]) == ["cat"]
    assert kept_classes([" cow"], ["cat", "cat ", "cow"]) == [0, 1]
    with pytest.raises(ValueError, match=r"no class named 'cat' to leave out \(did you mean 'cat ' or ' cat'\?\)"):
        kept_classes(["cat"], ["cat ", " cat", "cow"])


def test_a_class_whose_test_labels_are_partly_another_class_is_named(data, erm):
    """Validation and test disagreeing on a class beyond chance is said (a noisy-label round: the report called such
    a class hard, nothing said of its labels): 30 of class 0's 60 test images labelled class 1 make class 1's test
    accuracy fall (90 images, a third of them class 0's), not the others'."""
    from probe.diagnostics import split_disagreement_warning

    assert not any("validation and test disagree" in w for w in erm[0]["warnings"])  # the clean run: nothing
    x, y = data["test"]
    flipped = y.copy()
    flipped[np.flatnonzero(y == 0)[:30]] = 1
    report = _run_probe({**data, "test": (x, flipped)}, NAMES, ProbeConfig(**FAST))
    said = [w for w in report.warnings if w.startswith("validation and test disagree")]
    row = report.per_class[1]
    assert said == [split_disagreement_warning(report.per_class)]
    assert said[0].startswith(f"validation and test disagree on 1 class beyond chance and by 10 points or more "
                              f"(Fisher's exact test of each class's two accuracies, Holm-adjusted over {K} classes): "
                              f"{NAMES[1]} {row.val_accuracy * 100:.1f} % of 30 on validation, "
                              f"{row.accuracy * 100:.1f} % of 90 on test (p = ")
    assert row.accuracy < 0.75 and row.val_accuracy > 0.9


def test_split_disagreement_is_holm_adjusted_fisher_and_needs_ten_points():
    """Each class's validation and test counts by Fisher's exact test (scipy), Holm over the classes tested; named
    where the adjusted p is at most SPLIT_GAP_ALPHA = 0.01 and the accuracies 10 points apart, the largest gap
    first."""
    from types import SimpleNamespace

    from scipy.stats import fisher_exact

    from probe.diagnostics import SPLIT_GAP_ALPHA, split_disagreement_warning

    def row(name, val, n_val, test, n_test):
        return SimpleNamespace(name=name, val_accuracy=val / n_val if n_val else None, n_val=n_val, n_train=0,
                               accuracy=test / n_test, n_test=n_test)

    rows = [row("a", 90, 100, 60, 100), row("b", 190, 200, 160, 200), row("f", 95, 100, 84, 100),
            row("c", 500, 1000, 560, 1000), row("d", 7, 10, 3, 10), row("e", 0, 0, 5, 10)]
    p = [fisher_exact([[r.val_accuracy * r.n_val, r.n_val - r.val_accuracy * r.n_val],
                       [r.accuracy * r.n_test, r.n_test - r.accuracy * r.n_test]])[1] for r in rows[:5]]
    order = np.argsort(p)  # Holm over the 5 tested classes ("e" has no validation image)
    adjusted = np.maximum.accumulate([min(1.0, (5 - rank) * p[i]) for rank, i in enumerate(order)])
    holm = dict(zip((rows[i].name for i in order), adjusted))
    text = split_disagreement_warning(rows)
    # a: 30 points, p tiny; b: 15 points, p < 0.01 after Holm; f: 11 points, p between 0.01 and 0.05 after Holm (it
    # was named at 0.05); c: 6 points (p small, gap too small); d: 40 points on 10 images, p > 0.05 after Holm
    assert SPLIT_GAP_ALPHA == 0.01 and holm["b"] <= 0.01 < holm["f"] <= 0.05 and holm["d"] > 0.05
    assert "on 2 classes beyond chance" in text and "over 5 classes" in text
    assert f"a 90.0 % of 100 on validation, 60.0 % of 100 on test (p = {holm['a']:.2g}); b 95.0 % of 200" in text
    assert ", or validation fitted to" not in text and ", or validation fitted to (this run's post-hoc bias was)" in \
        split_disagreement_warning(rows, posthoc=True)
    assert split_disagreement_warning([rows[3], rows[4]]) is None


def test_split_disagreement_counts_out_of_fold_validation_on_train_and_val(data):
    """Under cross-validation each row's validation accuracy is out of fold on its train + val images: the warning
    tests and names it on those (it took them as the n_val images of the validation split: a CIFAR-10 run of 30 %
    wrong labels named 1 of its 10 classes, '56.0 % of 31 on validation', where 167 of 298 named all 10)."""
    from types import SimpleNamespace

    from scipy.stats import fisher_exact

    from probe.diagnostics import split_disagreement_warning

    row = SimpleNamespace(name="a", n_train=290, n_val=10, val_accuracy=0.5, n_test=300, accuracy=0.7)
    assert split_disagreement_warning([row]) is None  # 5 of 10 against 210 of 300: chance
    text = split_disagreement_warning([row], out_of_fold=True)
    p = fisher_exact([[150, 150], [210, 90]])[1]
    assert f"a 50.0 % of 300 out of fold on train + val, 70.0 % of 300 on test (p = {p:.2g})" in text
    x, y = data["test"]
    flipped = y.copy()
    flipped[np.flatnonzero(y == 0)[:30]] = 1
    report = _run_probe({**data, "test": (x, flipped)}, NAMES, ProbeConfig(**{**FAST, "cv": 3}))
    assert report.val.source.startswith("out of fold")
    said = [w for w in report.warnings if w.startswith("validation and test disagree")]
    row = report.per_class[1]
    assert said == [split_disagreement_warning(report.per_class, out_of_fold=True)]
    assert f"{NAMES[1]} {row.val_accuracy * 100:.1f} % of {row.n_train + row.n_val} out of fold on train + val" \
        in said[0]


def test_split_disagreement_of_out_of_fold_accuracies_does_not_blame_the_posthoc_bias(data):
    """A cross-validated run's validation accuracies are the chosen configuration's out of fold, without the post-hoc
    bias fitted on the validation split: the warning does not say validation was fitted to by it (it did); it says
    the bias is in test's accuracies alone."""
    x, y = data["test"]
    flipped = y.copy()
    flipped[np.flatnonzero(y == 0)[:30]] = 1
    config = ProbeConfig(**{**FAST, "cv": 3, "posthoc_bias": True, "posthoc_guard": False})
    report = _run_probe({**data, "test": (x, flipped)}, NAMES, config)
    assert report.val.source.startswith("out of fold") and report.posthoc.shipped_applied()
    said = [w for w in report.warnings if w.startswith("validation and test disagree")]
    assert len(said) == 1 and "out of fold on train + val" in said[0] and "validation fitted to" not in said[0]
    assert ", or this run's post-hoc bias, in test's accuracies and not in the out-of-fold ones;" in said[0]


def test_the_overall_choice_says_how_far_the_next_best_lies_and_whether_beyond_noise(data):
    """The overall criterion's reason gives the chosen candidate's lead over the next best, paired on the images
    both were scored on, with its 95 % interval: a lead of 0.5 points of 2,730 out-of-fold images (a long-tailed
    set with 1 to 5 validation images in its rare classes) was given bare, as if the choice were sure."""
    from probe.numbers import signed_points

    def lead(wd_grid):
        report = run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0], "wd_grid": wd_grid}))
        scored = sorted((c["val_overall"] for c in report["selection"]["candidates"]), reverse=True)
        return report["selection"]["reason"], scored

    near, scores = lead([0.0, 3e-2])  # two fits a few images apart
    assert scores[0] > scores[1]
    assert (f", paired on the {len(data['val'][1])} images scored: {signed_points(scores[0] - scores[1])} pt [-"
            in near) and near.endswith("] (within noise).")
    assert "Against the next best (lr=0.05, weight_decay=" in near
    far, scores = lead([0.0, 30.0])  # a weight decay that flattens the head: beyond noise
    assert f"scored: {signed_points(scores[0] - scores[1])} pt [+" in far and "within noise" not in far
    single = run_probe(data, NAMES, ProbeConfig(**{**FAST, "seeds": [0], "wd_grid": [0.0]}))["selection"]["reason"]
    assert "next best" not in single


def test_a_balanced_choice_on_a_validation_split_without_a_class_says_so(data):
    """--overall-metric balanced with --cv 0 and a class without validation images averaged the other classes and
    said nothing of it (a long-tailed round); with every class there, or under accuracy, no such warning."""
    x, y = data["val"]
    keep = y != 2
    without = {**data, "val": (x[keep], y[keep])}
    base = dict(epochs=5, lr_grid=[0.05], wd_grid=[0.0], seeds=[0], cv=0)
    said = [w for w in run_probe(without, NAMES, ProbeConfig(**base, overall_metric="balanced"))["warnings"]
            if w.startswith("The configuration was chosen on the balanced accuracy")]
    assert said == [f"The configuration was chosen on the balanced accuracy of {K - 1} of the {K} classes: "
                    f"{NAMES[2]} has no validation image, so its accuracy plays no part in choosing the "
                    "configuration (balanced accuracy averages the classes a split holds); the test figures average "
                    "every class the test split holds."]
    for split, metric in ((without, "accuracy"), (data, "balanced")):
        assert not any("plays no part in choosing" in w
                       for w in run_probe(split, NAMES, ProbeConfig(**base, overall_metric=metric))["warnings"])


def test_a_value_chosen_at_the_end_of_its_grid_is_said(data):
    """A long-tailed round: group DRO's η and the preset's weight decay chosen at the top of their grids, said
    nowhere. The largest of three learning rates (the two below cannot learn in 5 epochs) is named with its grid;
    a weight decay of 0, the smallest of its grid, is a bound of its own and not named; c̄'s grid is the paper's."""
    cfg = ProbeConfig(epochs=5, lr_grid=[1e-7, 1e-6, 0.05], wd_grid=[0.0], seeds=[0], cv=0)
    report = run_probe(data, NAMES, cfg)
    assert report["config"]["selected"]["lr"] == 0.05
    edges = [w for w in report["warnings"] if w.startswith("Chosen at the end of its grid")]
    assert edges == ["Chosen at the end of its grid: lr 0.05, the largest of lr_grid (1e-07 to 0.05, 3 values). The "
                     "best value may lie beyond it: widen the grid past that end and train again to know."]
    resolved = ProbeConfig(loss="mr2", lr_grid=[0.01], wd_grid=[0.0, 0.1, 1.0], cbar_grid=[1.0, 2.0, 3.0],
                           loss_options_grid={}).resolved(100)
    assert resolved.grid_edges({"lr": 0.01, "weight_decay": 0.0, "cbar": 3.0}) == []
    assert resolved.grid_edges({"lr": 0.01, "weight_decay": 1.0, "cbar": 1.0}) == [
        ("weight_decay", "wd_grid", 1.0, "largest", [0.0, 0.1, 1.0])]
    focal = ProbeConfig(loss="focal", lr_grid=[0.01], wd_grid=[0.0],
                        loss_options_grid={"gamma_focal": [0.5, 1.0, 2.0]}).resolved(100)
    assert focal.grid_edges({"lr": 0.01, "weight_decay": 0.0, "gamma_focal": 0.5}) == [
        ("gamma_focal", "loss_options_grid.gamma_focal", 0.5, "smallest", [0.5, 1.0, 2.0])]


@pytest.fixture
def no_fit(monkeypatch):
    """Any fit fails the test: what is checked here is refused before the first one."""
    import probe.trainer

    def fit(*args, **kwargs):
        raise AssertionError("a probe was fitted")

    monkeypatch.setattr(probe.trainer, "fit_many", fit)
    monkeypatch.setattr(probe.trainer.ProbeTrainer, "fit", fit)


def test_repeated_class_names_are_refused_before_any_fit(data, no_fit):
    """Two classes of one name trained every fit, then failed building the report with pydantic's error (a library
    round)."""
    names = NAMES[:-1] + [NAMES[0]]
    with pytest.raises(ValueError, match=r"^class_names holds 'c0' more than once; each class needs its own name\.$"):
        _run_probe(data, names, ProbeConfig(**FAST))


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_non_finite_features_are_refused_before_any_fit_naming_the_split(data, no_fit, split):
    """A NaN in val or test stopped the run once the selection's fits were done, as 'features contain NaN ...',
    naming no split (a library round)."""
    x, y = data[split]
    x = x.copy()
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match=rf"^split '{split}' features hold values that are NaN, infinite or too "
                                         r"large for float32 .* in 1 row\(s\)\.$"):
        _run_probe({**data, split: (x, y)}, NAMES, ProbeConfig(**FAST))


@pytest.mark.parametrize("labels, match", [
    (lambda y: y + 0.5, r"^split 'train' labels must be integer class indices, got non-integer values\.$"),
    (lambda y: np.array(NAMES)[y], r"^split 'train' labels must be integer class indices, got dtype <U2; class "
                                   r"names are not labels: map them to indices first, e.g. names, labels = "
                                   r"np\.unique\(values, return_inverse=True\)\.$"),
])
def test_labels_that_are_not_class_indices_are_refused_by_name(data, no_fit, labels, match):
    """Labels 0.5, 1.5, ... were truncated to 0, 1, ... and trained on without a word; class names as labels raised
    numpy's "ufunc 'minimum' did not contain a loop with signature matching types" (a library round)."""
    x, y = data["train"]
    with pytest.raises(TypeError, match=match):
        _run_probe({**data, "train": (x, labels(y))}, NAMES, ProbeConfig(**FAST))


@pytest.mark.parametrize("config", [None, "disparity"])
def test_a_config_that_is_no_probe_config_is_a_type_error(data, config):
    """None, or a preset's name, raised "AttributeError: 'NoneType' object has no attribute 'drop_classes'" (a
    library round)."""
    with pytest.raises(TypeError, match=r"^config must be a ProbeConfig or a dict of its fields, got "
                                        rf"{type(config).__name__}: ProbeConfig\(\) is ERM"):
        _run_probe(data, NAMES, config)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2])
def test_carve_validation_refuses_a_fraction_outside_0_1(data, fraction):
    """carve_validation(x, y, 1.5, 0) carved all but one image of each class into val, and 0 or -0.2 one image of
    each, without a word (a library round): ProbeConfig.val_fraction's bounds."""
    x, y = data["train"]
    with pytest.raises(ValueError, match=rf"^fraction must be in \(0, 1\), got {fraction}"):
        carve_validation(x, y, fraction, seed=0)


def test_carve_validation_takes_lists_and_refuses_labels_of_another_length(data):
    x, y = data["train"]
    (xt, yt), (xv, yv) = carve_validation(x.tolist(), y.tolist(), 0.2, seed=0)
    (xt2, _), (xv2, _) = carve_validation(x, y, 0.2, seed=0)
    np.testing.assert_array_equal(xv, xv2)
    with pytest.raises(ValueError, match=r"^labels must be \(n,\) for the 360 rows of features, got shape \(359,\)\.$"):
        carve_validation(x, y[:-1], 0.2, seed=0)


def test_an_empty_split_of_any_shape_is_a_missing_one(data):
    """An empty val is carved from train whatever its arrays' shapes, as before the checks moved before any fit."""
    report = run_probe({**data, "val": (np.zeros(0), np.zeros(0, dtype=np.int64))}, NAMES, ProbeConfig(**FAST))
    assert report["val"]["source"].startswith("carved from train")


def test_a_class_without_test_samples_is_told_how_to_leave_it_out_from_python(data):
    """The refusal said 'e.g. mr2probe train --drop-class NAME' to a library caller, who needs
    ProbeConfig(drop_classes=...); it names all three ways, and ProbeConfig's works."""
    x, y = data["test"]
    lacking = {**data, "test": (x[y != 2], y[y != 2])}
    with pytest.raises(ValueError, match=re.escape(
            f"classes ['{NAMES[2]}'] have no test samples; every class needs test samples (leave the class out: "
            "ProbeConfig(drop_classes=[NAME, ...]), mr2probe train --drop-class NAME or the API's drop_classes; or "
            "add samples).")):
        run_probe(lacking, NAMES, ProbeConfig(**FAST))
    report = run_probe(lacking, NAMES, ProbeConfig(**{**FAST, "seeds": [0], "drop_classes": [NAMES[2]]}))
    assert report["class_names"] == [n for n in NAMES if n != NAMES[2]]
