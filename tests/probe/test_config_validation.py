"""ProbeConfig validation at submission (bounds, finite numbers, typed loss / head options), the shared trainer
parameter declaration, the device resolver, divergence handling, empty classes, the typed report and the layout."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from probe import (
    MAX_ADAPTER_RANK,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_GRID_CANDIDATES,
    MAX_GRID_VALUES,
    MAX_NAME_LENGTH,
    MAX_SEEDS,
    HEADS,
    ProbeConfig,
    ProbeTrainer,
    Report,
    diverged,
    load_report,
    report_json,
    resolve_device,
    run_probe,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def _error(**fields) -> str:
    with pytest.raises(ValidationError) as info:
        ProbeConfig(**fields)
    return str(info.value)


@pytest.mark.parametrize("fields, field, words", [
    ({"epochs": MAX_EPOCHS + 1}, "epochs", f"epochs must be an integer in [1, {MAX_EPOCHS}], got {MAX_EPOCHS + 1}"),
    ({"epochs": 1_000_000_000}, "epochs", "epochs must be an integer in [1, 10000]"),
    ({"epochs": 0}, "epochs", "epochs must be an integer in [1, 10000], got 0"),
    ({"batch_size": MAX_BATCH_SIZE + 1}, "batch_size", f"batch_size must be an integer in [1, {MAX_BATCH_SIZE}]"),
    ({"warmup_epochs": MAX_EPOCHS + 1}, "warmup_epochs", "warmup_epochs must be an integer in [0, 10000]"),
    ({"epochs": 5, "warmup_epochs": 5}, "warmup_epochs", "warmup_epochs must be an integer in [0, epochs=5), got 5"),
    ({"adapter": "lowrank", "adapter_rank": MAX_ADAPTER_RANK + 1}, "adapter_rank",
     f"adapter_rank must be an integer in [1, {MAX_ADAPTER_RANK}] or None, got {MAX_ADAPTER_RANK + 1}"),
    ({"seeds": list(range(MAX_SEEDS + 1))}, "seeds", f"at most {MAX_SEEDS} items"),
    ({"lr_grid": [0.1] * (MAX_GRID_VALUES + 1)}, "lr_grid", f"at most {MAX_GRID_VALUES} items"),
    ({"loss": "group_dro", "loss_options_grid": {"eta": [0.1] * (MAX_GRID_VALUES + 1)}}, "loss_options_grid",
     f"at most {MAX_GRID_VALUES} items"),
    ({"loss": "x" * 1000}, "loss", f"at most {MAX_NAME_LENGTH} characters"),
    ({"device": "cuda" * 100}, "device", f"at most {MAX_NAME_LENGTH} characters"),
    ({"preset": "p" * 1000}, "preset", f"preset must be at most {MAX_NAME_LENGTH} characters, got 1000"),
    ({"device": "mps"}, "device", "device must be one of auto, cpu, cuda, cuda:N, got 'mps'"),
    ({"head": "mlp"}, "head", "Unknown head 'mlp'; available: linear, cosine"),
    ({"r2_mode": "running"}, "r2_mode", "r2_mode must be one of exact, ema, got 'running'"),
    ({"optimizer": "nadam"}, "optimizer", "optimizer must be one of adam, adamw, sgd, got 'nadam'"),
    ({"seeds": [0, -1]}, "seeds", "seeds value must be an integer in [0, 4294967295], got -1"),
    ({"seeds": [2**40]}, "seeds", "seeds value must be an integer in [0, 4294967295]"),
    ({"val_fraction": 1.0}, "val_fraction", "val_fraction must be in (0, 1), got 1.0"),
])
def test_bounds_name_the_field(fields, field, words):
    message = _error(**fields)
    assert field in message and words in message


def test_grid_candidates_times_seeds_is_bounded():
    # 33 lr × 16 wd = 528 candidates (> 512) even with one seed; 10 × 10 × 6 seeds = 600 fits
    message = _error(lr_grid=[0.01 * (i + 1) for i in range(33)], wd_grid=[float(i) for i in range(16)], seeds=[0])
    assert f"528 candidates × 1 seed = 528; at most MAX_GRID_CANDIDATES = {MAX_GRID_CANDIDATES} candidates" in message
    lrs, wds = [0.01 * (i + 1) for i in range(16)], [1e-5 * i for i in range(16)]
    message = _error(lr_grid=lrs[:10], wd_grid=wds[:10], seeds=list(range(6)))
    assert "100 candidates × 6 seeds = 600; at most" in message
    assert ProbeConfig(lr_grid=lrs, wd_grid=wds, seeds=[0, 1]).n_candidates() == 256  # 512 fits: ok
    # a repeated value is the same candidate again (an attack round)
    assert "wd_grid must be distinct values; repeated: 0.0, 1e-05." in _error(wd_grid=[0.0, 1e-5, 0.0, 1e-5, 0.0])


@pytest.mark.parametrize("fields, field", [
    ({"lr_grid": [float("nan")]}, "lr_grid"),
    ({"wd_grid": [0.0, float("inf")]}, "wd_grid"),
    ({"cbar_grid": [float("-inf")]}, "cbar_grid"),
    ({"cbar": float("nan")}, "cbar"),
    ({"p": float("inf")}, "p"),
    ({"adapter": "linear", "lam": float("nan")}, "lam"),
    ({"adapter": "linear", "lam_grid": [float("nan")]}, "lam_grid"),
    ({"val_fraction": float("nan")}, "val_fraction"),
])
def test_non_finite_numbers_are_refused_naming_the_field(fields, field):
    """NaN is not a finite number; ±inf is out of the field's range, said with its bounds."""
    message = _error(**fields)
    value = next(iter(v for v in fields.values() if isinstance(v, (float, list))))
    nan = math.isnan(value[-1] if isinstance(value, list) else value)
    assert field in message and ("must be a finite number, got nan" if nan else ", out of range.") in message


@pytest.mark.parametrize("fields, words", [
    ({"loss": "group_dro", "loss_options": {"eta": -1}}, "loss 'group_dro' option eta must be in (0, 100], got -1"),
    ({"loss": "group_dro", "loss_options": {"eta": float("nan")}}, "loss 'group_dro' option eta must be a finite"),
    ({"loss": "focal", "loss_options": {"gamma_focal": "abc"}},
     "loss 'focal' option gamma_focal must be in [0, 100], got 'abc'"),
    ({"loss": "focal", "loss_options": {"gamma_focal": float("inf")}},
     "loss 'focal' option gamma_focal must be in [0, 100], got inf, out of range."),
    ({"loss": "group_dro", "loss_options_grid": {"eta": [0.01, -0.5]}},
     "loss 'group_dro' option eta must be in (0, 100], got -0.5"),
    ({"loss": "label_smoothing", "loss_options": {"smoothing": 1.0}},
     "loss 'label_smoothing' option smoothing must be in [0, 1), got 1.0"),
    ({"head": "cosine", "head_options": {"logit_scale": -5}}, "head 'cosine' option logit_scale must be in (0, 1000], got -5"),
    ({"loss": "focal", "loss_options": {"gamma_focal": 1e300}},
     "loss 'focal' option gamma_focal must be in [0, 100], got 1e+300"),
    ({"loss": "mr2", "cbar": 1e300}, "cbar must be in (0, 100], got 1e+300"),
    ({"p": 1e300}, "p must be in [1, 10] or None, got 1e+300"),
    ({"p": 0.1}, "p must be in [1, 10] or None, got 0.1"),
    ({"lr_grid": [0.01, 1e308]}, "lr_grid value (lr) must be in (0, 100], got 1e+308"),
    ({"wd_grid": [1e300]}, "wd_grid value (weight_decay) must be in [0, 1000000], got 1e+300"),
    ({"head": "cosine", "head_options": {"logit_scale": float("nan")}},
     "head 'cosine' option logit_scale must be a finite number, got nan"),
    ({"head": "cosine", "head_options": {"learnable_scale": "no"}},
     "head 'cosine' option learnable_scale must be true or false, got 'no'"),
    ({"loss": "mr2_valerr", "loss_options": {"val_error": [0.1, 2.0]}},
     "loss 'mr2_valerr' option val_error must be a non-empty list of numbers, each in [0, 1]"),
])
def test_loss_and_head_options_are_typed_and_bounded(fields, words):
    assert words in _error(**fields)


def test_a_null_option_is_its_default_and_is_not_stored():
    """``{"eta": null}`` trained with eta's default and was stored as null in the request and report.json (an
    attack round): the config keeps the options given a value; a null unknown option is still refused."""
    from probe.registry import LOSSES

    config = ProbeConfig(loss="group_dro", loss_options={"eta": None}, head="cosine",
                         head_options={"logit_scale": None, "learnable_scale": False})
    assert config.loss_options == {} and config.head_options == {"learnable_scale": False}
    resolved = config.resolved(1000)
    assert resolved.trainer_params(resolved.candidates()[0], seed=0)["loss_options"] is None  # the defaults
    assert LOSSES["group_dro"].defaults["eta"] > 0  # what the fit then uses
    assert "Unknown loss_options 'nonsense'" in _error(loss="group_dro", loss_options={"nonsense": None})


@pytest.mark.parametrize("trainer_kwargs, config_kwargs, words", [
    ({"epochs": MAX_EPOCHS + 1}, {"epochs": MAX_EPOCHS + 1}, "epochs must be an integer in [1, 10000]"),
    ({"cbar": float("nan")}, {"cbar": float("nan")}, "cbar must be a finite number, got nan"),
    ({"loss": "group_dro", "loss_options": {"eta": -1}}, {"loss": "group_dro", "loss_options": {"eta": -1}},
     "loss 'group_dro' option eta must be in (0, 100], got -1"),
    ({"head": "cosine", "head_options": {"logit_scale": -5}}, {"head": "cosine", "head_options": {"logit_scale": -5}},
     "head 'cosine' option logit_scale must be in (0, 1000], got -5"),
    ({"device": "mps"}, {"device": "mps"}, "device must be one of auto, cpu, cuda, cuda:N, got 'mps'"),
    ({"lr": -1.0}, {"lr_grid": [-1.0]}, "must be in (0, 100], got -1.0"),
    ({"cbar": 1e300}, {"cbar": 1e300}, "cbar must be in (0, 100], got 1e+300"),
])
def test_the_same_declarations_serve_the_trainer(trainer_kwargs, config_kwargs, words):
    """ProbeTrainer checks its parameters with the declarations ProbeConfig uses: the same messages."""
    x, y = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32), np.arange(12) % 3
    pattern = re.escape(words)
    with pytest.raises(ValueError, match=pattern):
        ProbeTrainer(**trainer_kwargs).fit(x, y)
    with pytest.raises(ValidationError, match=pattern):
        ProbeConfig(**config_kwargs)


def test_trainer_params_map_a_candidate():
    config = ProbeConfig(loss="group_dro", loss_options_grid={"eta": [0.1, 0.2]}, head="cosine",
                         head_options={"logit_scale": 8.0}, epochs=7, lr_grid=[0.5], wd_grid=[1.0], batch_size=1024)
    candidate = config.candidates()[1]
    params = config.trainer_params(candidate, seed=3)
    assert params == dict(head="cosine", head_options={"logit_scale": 8.0}, loss="group_dro",
                          loss_options={"eta": 0.2}, cbar=1.0, p=3.0, r2_mode="exact", lam=0.0, adapter=None,
                          adapter_rank=None, lr=0.5, weight_decay=1.0, epochs=7, batch_size=1024, tol=1e-3,
                          optimizer="adam", warmup_epochs=0, device="cpu", precision="auto",
                          random_state=3)
    assert set(params) <= set(ProbeTrainer._get_param_names())
    assert ProbeTrainer(**params).get_params()["loss_options"] == {"eta": 0.2}


def test_head_defaults_come_from_the_registry():
    assert ProbeConfig(head="cosine").resolved_p == HEADS["cosine"].default_p == 3.0
    assert ProbeConfig().resolved_p == HEADS["linear"].default_p == 2.0
    assert HEADS["cosine"].defaults == {"logit_scale": 16.0, "learnable_scale": True}


def test_device_resolver():
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, cuda:N, got 'mps'"):
        resolve_device("mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda:1' does not exist on this host: CUDA is not available"):
            resolve_device("cuda:1")


def _data(seed=0, n=20, d=6, k=3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3

    def split(m):
        y = np.repeat(np.arange(k), m)
        return (centers[y] + rng.normal(size=(len(y), d))).astype(np.float32), y

    return {"train": split(n), "val": split(n // 2), "test": split(n // 2)}


@pytest.fixture
def nan_focal(monkeypatch):
    """Focal loss whose value is NaN for gamma_focal = 7: a candidate that diverges at its first step."""
    from probe.losses import FocalLoss

    forward = FocalLoss.forward

    def patched(self, logits, labels, **kwargs):
        value = forward(self, logits, labels, **kwargs)
        return value * float("nan") if self.gamma_focal == 7.0 else value

    monkeypatch.setattr(FocalLoss, "forward", patched)


def test_diverging_candidate_is_recorded_and_never_selected(nan_focal):
    config = ProbeConfig(loss="focal", loss_options_grid={"gamma_focal": [7.0, 2.0]}, lr_grid=[0.05],
                         wd_grid=[0.0], seeds=[0, 1], epochs=5, cv=0)  # the validation split's message
    report = run_probe(_data(), ["a", "b", "c"], config)
    bad, good = report.selection.candidates
    assert bad.gamma_focal == 7.0 and bad.failed == ("diverged: non-finite loss at epoch 1 of 5 (lr=0.05, "
                                                     "weight_decay=0.0, loss=focal, gamma_focal=7.0)")
    assert bad.val_overall is None and bad.val_hard is None
    assert good.failed is None and good.val_overall > 0.5
    assert report.selection.chosen == good and report.config["selected"]["gamma_focal"] == 2.0
    assert "1 candidate(s) diverged and were left out" in report.selection.reason
    assert json.loads(report_json(report))["selection"]["candidates"][0]["failed"] == bad.failed


def test_all_candidates_diverging_fail_the_run(nan_focal):
    config = ProbeConfig(loss="focal", loss_options={"gamma_focal": 7.0}, lr_grid=[0.05], wd_grid=[0.0, 1.0],
                         seeds=[0], epochs=5, cv=0)
    with pytest.raises(ValueError, match=r"every one of the 2 selection candidates diverged \(first: diverged: "
                                         r"non-finite loss at epoch 1"):
        run_probe(_data(), ["a", "b", "c"], config)


def test_diverged_reports_the_first_bad_epoch():
    x, y = _data()["train"]
    trainer = ProbeTrainer(epochs=3).fit(x, y)
    assert diverged(trainer) is None
    trainer.history_ = [0.5, float("nan"), float("nan")]
    assert diverged(trainer) == "diverged: non-finite loss at epoch 2 of 3 (lr=0.01, weight_decay=0.0, loss=ce)"
    trainer.history_ = [0.5, 0.4, 0.3]
    with np.errstate(all="ignore"):
        trainer.head_.weight.data[0, 0] = float("inf")
    assert diverged(trainer) == ("diverged: non-finite weights in linear weight after training (lr=0.01, "
                                 "weight_decay=0.0, loss=ce)")


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_class_without_samples_is_named_before_training(split):
    data = _data()
    x, y = data[split]
    keep = y != 1
    data[split] = (x[keep], y[keep])
    calls = []
    with pytest.raises(ValueError, match=rf"classes \['b'\] have no {split} samples"):
        run_probe(data, ["a", "b", "c"], ProbeConfig(seeds=[0], epochs=2), progress=lambda f, s: calls.append(s))
    assert calls == []  # nothing trained


def test_report_round_trips_and_reads_v1_files(tmp_path):
    from probe.report import shipped_class_ci

    report = run_probe(_data(), ["a", "b", "c"], ProbeConfig(seeds=[0, 1], epochs=3, lr_grid=[0.05]),
                       out_dir=tmp_path / "run")
    assert load_report(tmp_path / "run") == report
    assert Report.model_validate_json(report_json(report)) == report
    # a schema_version 1 file written by the code before the Report model (5c3da43), with a null added
    text = (DATA / "report_v1.json").read_text()
    old = json.loads(text)
    old["per_class"][0]["gamma"] = None
    (tmp_path / "report.json").write_text(json.dumps(old))
    loaded = load_report(tmp_path)
    assert loaded.run_id == "v1_erm" and loaded.class_names == ["cat", "dog", "car"]
    assert loaded.per_class[0].gamma is None and loaded.posthoc.per_seed[0].seed == 0
    dumped = loaded.model_dump(mode="json")
    candidates = [{**c, "failed": None} for c in old["selection"]["candidates"]]
    # version 1 files lack what version 2 added: those fields read as null / empty, nothing else changes
    v2_rows = {"accuracy_ci": None, "precision": None, "recall": None, "f1": None, "support": None,
               "top_confusions": [], "n_val": None, "precision_ci": None, "recall_ci": None, "f1_ci": None,
               "val_accuracy_ci": None}
    # the shipped accuracy's interval is derived on reading, from the first seed's accuracy and n_test
    shipped = [shipped_class_ci(row) for row in old["per_class"]]
    assert None not in shipped
    assert dumped == {**old, "code": None, "selection": {**old["selection"], "preset": None, "candidates": candidates,
                                           "chosen": {**old["selection"]["chosen"], "failed": None},
                                           "verdict": "not_applicable", "verdict_text": "", "frontier": [],
                                           "requested": None, "cv": None, "test_check": None},
                      "grouping": {**old["grouping"], "stability": None},
                      "summary": {**old["summary"], "overall_ci": None, "group_ci": None, "shipped_worst_class": None,
                                  "shipped_overall_ci": None, "worst_class_ci": None,
                                  "worst_class": {**old["summary"]["worst_class"], "tied_with": [], "tied_count": None,
                                                  "text": old["summary"]["worst_class"]["name"]}},
                      "per_class": [{**row, **v2_rows, "shipped_accuracy_ci": ci}
                                    for row, ci in zip(old["per_class"], shipped)],
                      "confusion": None, "calibration": None, "timing": None, "features": None, "environment": None,
                      "near_duplicates": None, "warnings": [],
                      "posthoc": {**old["posthoc"], "guard": None, "text": (
                          "Post-hoc bias applied to every seed without its out-of-sample check (a run from before the "
                          "check existed); it came out 0 for every class of every seed (no shift raised the val hard "
                          "accuracy without lowering its val overall), so no prediction changed."), "per_seed": [
                          {**seed, "applied": None, "folds": None, "oof_overall_delta": None, "oof_overall_ci": None,
                           "oof_hard_delta": None, "oof_hard_ci": None, "oof_hard_changed": None,
                           "oof_hard_sign_p": None, "oof_hard_joint_lo": None, "oof_overall_joint_lo": None}
                          for seed in old["posthoc"]["per_seed"]]}}
    (tmp_path / "report.json").write_text(json.dumps({**old, "summary": {**old["summary"], "overall": "high"}}))
    with pytest.raises(ValueError, match="summary.overall"):
        load_report(tmp_path)


def test_nan_is_null_in_the_report():
    report = run_probe(_data(), ["a", "b", "c"], ProbeConfig(seeds=[0], epochs=2, lr_grid=[0.05], wd_grid=[0.0]))
    report.per_class[0].gamma = float("nan")
    text = report_json(report)
    assert "NaN" not in text and json.loads(text)["per_class"][0]["gamma"] is None
    assert math.isnan(float("nan"))  # sanity of the fixture value above


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}).stdout.strip()


def test_config_and_report_do_not_import_torch():
    out = _python("import sys, probe.config, probe.report; from probe import ProbeConfig, Report, HEADS; "
                  "ProbeConfig(loss='mr2', head='cosine').resolved(100).candidates(); print('torch' in sys.modules)")
    assert out == "False"


def _probe_imports() -> dict[str, set[str]]:
    """probe module -> the modules it imports (any import statement, lazy ones included)."""
    import ast

    edges = {}
    for path in (ROOT / "probe").glob("*.py"):
        name = "probe" if path.stem == "__init__" else f"probe.{path.stem}"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = ("probe" + (f".{node.module}" if node.module else "")) if node.level else node.module
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}
        edges[name] = targets
    return edges


def test_probe_has_no_import_circle_and_never_imports_app():
    edges = _probe_imports()
    assert not any(t == "app" or t.startswith("app.") for targets in edges.values() for t in targets)
    graph = {m: {t for t in targets if t in edges and t != m} for m, targets in edges.items()}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for t in graph[m]:
            assert state.get(t) != 1, f"import circle: {' -> '.join(path + [t])}"
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert "probe.checkpoint" in graph["probe.trainer"] and "probe.trainer" not in graph["probe.checkpoint"]
    assert not (ROOT / "probe" / "__main__.py").exists()


def test_every_registry_entry_has_its_class_and_defaults_within_bounds():
    from probe import ADAPTERS, LOSSES, adapters, heads, losses

    for registry, module in ((HEADS, heads), (LOSSES, losses), (ADAPTERS, adapters)):
        for spec in registry.values():
            assert isinstance(getattr(module, spec.factory), type), spec
            for name, option in spec.options.items():
                assert option.check(spec.name, name, option.default) == option.default


def test_settings_that_would_do_nothing_are_refused():
    """A budget without a decision to spend it on, or a guard switched off without a bias to guard, would be stored
    in the report as if it had acted."""
    with pytest.raises(ValidationError, match="max_overall_drop=5 is the budget of the disparity-aware decision"):
        ProbeConfig(max_overall_drop=5)
    with pytest.raises(ValidationError, match="posthoc_guard=false switches off the guard of a post-hoc bias"):
        ProbeConfig(posthoc_guard=False)
    for fine in ({"max_overall_drop": 5, "select": "hard"}, {"max_overall_drop": 5, "preset": "disparity"},
                 {"max_overall_drop": 5, "posthoc_bias": True}, {"posthoc_guard": False, "posthoc_bias": True}):
        ProbeConfig(**fine)


@pytest.mark.parametrize("value, shown", [(-1, "-1"), (-0.5, "-0.5"), (1e9, "1e+09"), (100.5, "100.5")])
def test_a_budget_out_of_range_is_named_in_its_unit(value, shown):
    """max_overall_drop is points of overall accuracy in [0, MAX_OVERALL_DROP]: pydantic's "Input should be greater
    than or equal to 0" gave neither the value nor the unit (a forms round); the published bounds stay."""
    from probe.config import MAX_OVERALL_DROP

    error = _error(max_overall_drop=value, select="hard")
    assert f"max_overall_drop must be between 0 and {MAX_OVERALL_DROP:g} points of overall accuracy, got {shown}." \
        in error and "Input should" not in error
    schema = ProbeConfig.model_json_schema()["properties"]["max_overall_drop"]
    assert (schema["minimum"], schema["maximum"]) == (0, MAX_OVERALL_DROP)
    assert ProbeConfig(max_overall_drop=MAX_OVERALL_DROP, select="hard").max_overall_drop == MAX_OVERALL_DROP


def _float_fields() -> list[str]:
    return [name for name, field in ProbeConfig.model_fields.items() if "float" in str(field.annotation)]


@pytest.mark.parametrize("name", _float_fields())
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_float_field_names_nan(name, value):
    """NaN or ±inf in any number of a request is refused naming the field and the value, as an out-of-range one is
    (pydantic's "Input should be a finite number" named neither: a forms round); every float field is covered."""
    fields = {"max_overall_drop": {"select": "hard"}, "loss_options_grid": {"loss": "group_dro"}}.get(name, {})
    annotation = str(ProbeConfig.model_fields[name].annotation)
    given = {"eta": [value]} if name == "loss_options_grid" else [value] if "list" in annotation else value
    error = _error(**{name: given}, **fields)
    assert f"got {value}" in error and "Input should" not in error
    assert (name if name != "loss_options_grid" else "option eta") in error


def test_numbers_are_numbers_not_strings_or_booleans():
    """Strict types (no silent coercion): "epochs": true was read as 1 and "cbar": "5" as 5; an int for a float
    field stays accepted (JSON has one number type)."""
    for fields, words in (({"epochs": True}, "epochs\n  Input should be a valid integer"),
                          ({"epochs": "5"}, "epochs\n  Input should be a valid integer"),
                          ({"loss": "mr2", "cbar": "5"}, "cbar\n  Input should be a valid number")):
        with pytest.raises(ValidationError, match=re.escape(words)):
            ProbeConfig(**fields)
    assert ProbeConfig(lr_grid=[1], epochs=5).lr_grid == [1.0]
    assert ProbeConfig.model_validate_json('{"epochs": 5, "lr_grid": [1, 0.1], "batch_size": "auto"}').epochs == 5


def test_the_published_schema_carries_every_bound_the_request_is_checked_against():
    """A client generated from the OpenAPI schema validated none of the request's bounds (epochs 1..10,000, seeds
    in [0, 2³²−1], lr in (0, 100], ...: an OpenAPI-client round). Each bound the schema publishes is the check's:
    the value at it accepted (or refused, where exclusive), one step past it refused."""
    schema = ProbeConfig.model_json_schema()["properties"]
    # every bounded field means something here, and 10,000 epochs stay within the cost bounds
    base = {"loss": "mr2", "adapter": "lowrank", "epochs": 5, "seeds": [0], "lr_grid": [0.05], "wd_grid": [0.0]}
    checked = 0
    for name, field in schema.items():
        branch = next((b for b in field.get("anyOf", [field]) if b.get("type") in ("number", "integer", "array")),
                      None)
        if branch is None:
            continue
        listed = branch.get("type") == "array"
        if listed and branch["items"].get("type") == "string":  # names (drop_classes): below
            continue
        if listed:
            assert branch["minItems"] == 1 and branch["uniqueItems"] is True, name
            with pytest.raises(ValueError):
                ProbeConfig(**{**base, name: []})
            branch = branch["items"]
        step = 1 if branch["type"] == "integer" else 1e-9 * max(1.0, abs(branch.get("maximum", 1)))
        bounds = [(k, v) for k, v in branch.items() if k.endswith(("imum", "Minimum", "Maximum"))]
        for keyword, bound in bounds:
            at_ok = not keyword.startswith("exclusive")
            past = bound - step if keyword.endswith(("minimum", "Minimum")) else bound + step
            for value, ok in ((bound, at_ok), (past, False)):
                if name == "cv" and value == 1:
                    continue  # 0 or 2..20: the gap the description gives
                request = {**base, name: [value] if listed else value}
                if name == "warmup_epochs":  # below the epochs, which are chosen later when not given
                    request.pop("epochs")
                if name == "max_overall_drop":  # the decision's budget
                    request["select"] = "hard"
                try:
                    ProbeConfig(**request)
                    accepted = True
                except ValueError:
                    accepted = False
                assert accepted == ok, (name, keyword, value)
                checked += 1
    assert checked >= 40
    grid = schema["loss_options_grid"]["additionalProperties"]
    assert grid["minItems"] == 1 and grid["uniqueItems"] is True
    for refused in ([], [0.01, 0.01]):
        with pytest.raises(ValueError):
            ProbeConfig(loss="group_dro", loss_options_grid={"eta": refused})
    # the classes left out: names, none by default, no repeats, at most MAX_DROPPED_CLASSES of MAX_NAME characters
    from probe.names import MAX_NAME
    from probe.params import MAX_DROPPED_CLASSES

    drop = schema["drop_classes"]
    assert drop["uniqueItems"] is True and "minItems" not in drop and drop["maxItems"] == MAX_DROPPED_CLASSES
    assert drop["items"] == {"type": "string", "minLength": 1, "maxLength": MAX_NAME}
    assert ProbeConfig(drop_classes=[]).drop_classes == [] and ProbeConfig(drop_classes=["x" * MAX_NAME])
    too_many = [str(k) for k in range(MAX_DROPPED_CLASSES + 1)]
    for refused in (["a", "a"], ["caf\u00e9", "cafe\u0301"], [""], ["x" * (MAX_NAME + 1)], too_many):
        with pytest.raises(ValueError):
            ProbeConfig(drop_classes=refused)
