"""``ProbeConfig``: one probe request, validated when it is parsed (before a job exists). Torch-free.

Precedence: registry defaults (``probe.registry``), then the preset (``probe.presets``), then the fields the
request sets. Every value is checked against the one declaration of its constraint (``probe.params`` for the
trainer's parameters, ``probe.registry`` for head and loss options) and against the bounds of a request
(``MAX_EPOCHS``, ``MAX_SEEDS``, ``MAX_GRID_VALUES``, ``MAX_GRID_CANDIDATES``, ``MAX_ADAPTER_RANK``,
``MAX_BATCH_SIZE``, ``MAX_NAME_LENGTH``); numbers must be finite. The app embeds this model in its request
schemas, so a bad request is a 422 naming the field.
"""
from __future__ import annotations

import itertools
import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .constraints import MAX_NAME_LENGTH, Interval, Name, check
from .names import MAX_NAME, class_name
from .params import (
    L2_OPTIMIZERS,
    MAX_ADAPTER_RANK,
    MAX_BATCH_SIZE,
    MAX_DROPPED_CLASSES,
    MAX_EPOCHS,
    MAX_FIT_EPOCHS,
    MAX_FIT_STEPS,
    MAX_GRID_CANDIDATES,
    MAX_GRID_VALUES,
    MAX_SEED,
    MAX_SEEDS,
    OPTIMIZERS,
    R2_MODES,
    TRAINER_PARAMS,
    TRAINING_PRECISIONS,
    check_trainer_params,
)
from .metrics import OVERALL_METRICS
from .presets import PRESETS, get_preset
from .registry import HEADS, LOSSES, NEEDS, check_options, get_head_spec, get_loss_spec, some

__all__ = ["ProbeConfig", "auto_epochs", "auto_batch_size", "default_grids", "DEFAULT_LR_GRIDS", "DECOUPLED_WD_GRID",
           "L2_STRENGTHS", "SCALE_INVARIANT_GRID", "AUTO_MIN_STEPS", "AUTO_EPOCH_BOUNDS", "AUTO_FULL_BATCH_ROWS",
           "AUTO_BATCH_SIZE", "MAX_EPOCHS", "MAX_SEEDS", "MAX_SEED", "MAX_GRID_VALUES",
           "MAX_GRID_CANDIDATES", "MAX_FIT_EPOCHS", "MAX_FIT_STEPS", "MAX_ADAPTER_RANK", "MAX_BATCH_SIZE",
           "MAX_NAME_LENGTH", "MAX_OVERALL_DROP",
           "DEFAULT_CV_FOLDS", "MIN_CV_FOLDS", "MAX_CV_FOLDS", "LEAVE_OUT", "REFERENCE_FIELDS",
           "AFTER_TRAINING_FIELDS"]

MAX_OVERALL_DROP = 100.0  # percentage points: the whole accuracy range
MAX_OVERALL_DROP_BOUND = Interval(float, 0.0, MAX_OVERALL_DROP)  # ProbeConfig.max_overall_drop
# k-fold cross-validation on small data (probe.crossval): 0 turns it off, else MIN_CV_FOLDS..MAX_CV_FOLDS folds.
DEFAULT_CV_FOLDS = 5
MIN_CV_FOLDS = 2  # one fold trains, one scores
MAX_CV_FOLDS = 20  # each fold is a full sweep: beyond 20 the cost grows and the estimate hardly improves

# How a message says to leave classes out, to every caller: a library one (ProbeConfig), the CLI's and the API's.
LEAVE_OUT = "ProbeConfig(drop_classes=[NAME, ...]), mr2probe train --drop-class NAME or the API's drop_classes"

# auto_batch_size: full batch up to AUTO_FULL_BATCH_ROWS training rows, mini-batches of AUTO_BATCH_SIZE above.
# On the 2.7k × 1280 CIFAR-10 cache a full-batch ERM sweep + 3 seeds took 0.6× the time of batches of 1024 at
# 75.70 % test against 76.06 % (scikit-learn L-BFGS: 75.53 %): at a few steps per epoch the per-step overhead
# dominates (bench/README.md, Probe speed), as scikit-learn prefers full-batch L-BFGS on small problems.
AUTO_FULL_BATCH_ROWS = 4096
AUTO_BATCH_SIZE = 1024

# The selection grids (lr_grid, wd_grid) of a request that gives none (default_grids).
# The L2 optimisers (adam, sgd; params.L2_OPTIMIZERS): weight decay is the gradient of the L2 penalty wd/2·‖W‖²
# added to the mean loss, so wd = α / n_train is scikit-learn's LogisticRegression at C = 1/α. A strength in those
# units carries across training-set sizes: on synthetic Gaussian 256-d and CIFAR-10 effnet-lite0 features at 300
# and 5,000 rows the best α stayed within 10–1000 while the best wd moved 100-fold (bench/README.md, The
# optimiser); α = 0 keeps the unpenalised probe. One lr for adam: with the penalty selected, lr 1e-3 was never
# better on validation at these sizes, and a second lr doubles the heads.
L2_STRENGTHS = (0.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
DEFAULT_LR_GRIDS = {"adam": (1e-2,), "adamw": (1e-3, 1e-2), "sgd": (1e-3, 1e-2)}
# adamw: the decoupled decay shrinks w by lr·wd per step, so useful values are large (wd=10 at lr=1e-3 matched
# scikit-learn's best C on the bench features; wd=0 keeps the unregularised probe in the sweep).
DECOUPLED_WD_GRID = (0.0, 1.0, 10.0)
# The L2 optimisers on a head whose logits ignore its weights' norm (HEADS[...].scale_invariant, the cosine head): an L2
# penalty there only shrinks the weight rows, which raises Adam's step relative to them, so the grid selects the lr
# instead. The L2 grid at lr 0.01 lost 2.85 points to AdamW with the cosine head on the synthetic set at 500 per
# class (AdamW chose lr 1e-3); this grid was within 0.6 points of AdamW's on the synthetic, CIFAR-10 and
# Fashion-MNIST features at 30, 100 and 500 per class (bench/README.md, The optimiser).
SCALE_INVARIANT_GRID = ((1e-3, 1e-2), (0.0,))


def default_grids(optimizer: str, n_train: int, head: str = "linear") -> tuple[list[float], list[float]]:
    """(lr_grid, wd_grid) of ``optimizer`` for ``n_train`` training rows and ``head``: for an L2 optimiser the lr
    grid of ``DEFAULT_LR_GRIDS`` and the strengths α / n_train for α in ``L2_STRENGTHS``, or
    ``SCALE_INVARIANT_GRID`` on a head whose logits ignore its weights' norm; for adamw ``DEFAULT_LR_GRIDS`` ×
    ``DECOUPLED_WD_GRID``."""
    if optimizer not in L2_OPTIMIZERS:
        return list(DEFAULT_LR_GRIDS[optimizer]), list(DECOUPLED_WD_GRID)
    if get_head_spec(head).scale_invariant:
        return [list(grid) for grid in SCALE_INVARIANT_GRID]
    return list(DEFAULT_LR_GRIDS[optimizer]), [alpha / max(1, n_train) for alpha in L2_STRENGTHS]


def _grid_text(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


_Name = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
_Grid = Annotated[list[float], Field(max_length=MAX_GRID_VALUES)]
_ClassName = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
# A grid field and the trainer parameter whose constraint each of its values must meet.
_GRID_PARAM = {"cbar_grid": "cbar", "lr_grid": "lr", "wd_grid": "weight_decay", "lam_grid": "lam"}


def _loss_uses_cbar(loss: str) -> bool:
    """Whether a registered loss builds margins γ from c̄ (then c̄ is selected on validation when not fixed)."""
    return NEEDS[get_loss_spec(loss).needs].uses_cbar


def _distinct(name: str, values: list) -> None:
    """A grid's values (or the seeds) are distinct: a repeat fits the same candidate again (an attack round)."""
    repeated: list = []
    for i, v in enumerate(values):
        if v in values[:i] and v not in repeated:
            repeated.append(v)
    if repeated:
        raise ValueError(f"{name} must be distinct values; repeated: {some(repeated)}.")


def _preset_fields() -> set[str]:
    """The fields some preset fills."""
    return {name for preset in PRESETS.values() for name in preset.settings}


VAL_FRACTION_BOUND = Interval(float, 0, 1, "neither")  # ProbeConfig.val_fraction
# The fields whose published bounds come from TRAINER_PARAMS: a field, or each value of a list field (its grid)
_BOUNDED = {"cbar": "cbar", "p": "p", "lam": "lam", "adapter_rank": "adapter_rank", "epochs": "epochs",
            "batch_size": "batch_size", "tol": "tol", "warmup_epochs": "warmup_epochs", "seeds": "random_state",
            "cbar_grid": "cbar", "lr_grid": "lr", "wd_grid": "weight_decay", "lam_grid": "lam"}


def _bounds(name: str) -> dict[str, float]:
    """The JSON Schema bounds of a ProbeConfig field, from the one declaration of its constraint."""
    if name == "val_fraction":
        return VAL_FRACTION_BOUND.json_schema()
    if name == "max_overall_drop":
        return MAX_OVERALL_DROP_BOUND.json_schema()
    if name == "cv":  # 0 or MIN..MAX: the schema gives the range, the description the gap
        return {"minimum": 0, "maximum": MAX_CV_FOLDS}
    interval = next(c for c in TRAINER_PARAMS[_BOUNDED[name]] if isinstance(c, Interval))
    return interval.json_schema()


def _bounded_branch(field: dict[str, Any]) -> dict[str, Any]:
    """The part of a property's schema that holds its numbers (or its list): itself, or its non-null branch."""
    for branch in field.get("anyOf", [field]):
        if branch.get("type") in ("number", "integer", "array"):
            return branch
    return field


def _published_schema(schema: dict[str, Any]) -> None:
    """ProbeConfig's published schema: the bounds every field is checked against (a client generated from it
    validated none of them: an OpenAPI-client round), and :func:`_schema_without_preset_defaults`."""
    properties = schema.get("properties", {})
    for name in (*_BOUNDED, "val_fraction", "max_overall_drop", "cv"):
        branch = _bounded_branch(properties[name])
        if branch.get("type") == "array":  # at least one value, no repeats (ProbeConfig._grid, _seeds)
            branch.update(minItems=1, uniqueItems=True)
            branch = branch["items"]
        branch.update(_bounds(name))
    # each loss option's grid: at least one value, no repeats (ProbeConfig._check_loss_grid); its range is the
    # loss's (probe.LOSSES), named in the refusal
    properties["loss_options_grid"]["additionalProperties"].update(minItems=1, uniqueItems=True)
    properties["drop_classes"].update(uniqueItems=True)  # none, or names without repeats (ProbeConfig._drop_classes)
    _schema_without_preset_defaults(schema)


def _schema_without_preset_defaults(schema: dict[str, Any]) -> None:
    """The published schema gives no default to a field a preset fills: a client generated from it sends every
    default it reads, a field the request sets overrides the preset, and such a client's preset='disparity' ran
    ERM (loss='ce', select='overall' sent as defaults; an OpenAPI-client round). Their defaults are in the
    descriptions."""
    for name in _preset_fields():
        field = schema.get("properties", {}).get(name)
        if field is not None and "default" in field:
            field["description"] = (f"{field.get('description', '')} (default {json.dumps(field.pop('default'))}, or "
                                    "the preset's where one is given)").lstrip()


def _preset_overridden(name: str, settings: dict[str, Any], kept: dict[str, Any], data: dict[str, Any]) -> None:
    """Refuse a request that sets every field its preset fills (``settings``), each to another value, or drops it
    (``kept``: the settings that apply, ProbeConfig._apply_preset): the preset would do nothing, and the run would
    be named after a method it is not."""
    mine = {k: data[k] for k in settings if k in data and data[k] != settings[k]}
    mine.update({k: None for k in settings if k not in kept and k not in mine})  # dropped with the preset's loss
    if settings and set(mine) >= set(settings):
        theirs = ", ".join(f"{k}={settings[k]!r}" for k in settings)
        yours = ", ".join(f"{k}={v!r}" if v is not None else f"{k} dropped with the preset's loss"
                          for k, v in mine.items())
        raise ValueError(f"preset {name!r} sets {theirs}; this request replaces each of them ({yours}), so the "
                         "preset would do nothing: leave those fields out to use it (a client generated from the "
                         "OpenAPI schema: do not send their defaults), or leave out the preset.")


class ProbeConfig(BaseModel):
    """One probe request. Grids are searched on the validation split; fixed values skip their grid."""

    # NaN and ±inf reach the fields' validators, whose check refuses them naming the field and the value (pydantic's
    # own refusal, "lr_grid.0: Input should be a finite number", gave neither; test_every_float_field_names_nan)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=True, strict=True,
                              json_schema_extra=_published_schema)

    preset: _Name | None = Field(None, description="a name of probe.PRESETS (e.g. 'disparity', the recommended "
                                 "disparity-aware method): fills the fields this request leaves unset")
    head: _Name = Field("linear", description="classifier head, a name of probe.HEADS",
                        json_schema_extra={"enum": list(HEADS)})
    head_options: dict[_Name, Any] = Field(
        default_factory=dict, description="options of the head over its registry defaults (probe.HEADS), e.g. "
        "{'learnable_scale': False, 'logit_scale': 16} for a fixed cosine scale (under lm_softmax, cosface and "
        "arcface the cosine head takes the loss's own scale, which trained it)")
    loss: _Name = Field("ce", description="a name of probe.LOSSES: " + "; ".join(
        f"{name}: {spec.summary}" for name, spec in LOSSES.items()), json_schema_extra={"enum": list(LOSSES)})
    loss_options: dict[_Name, Any] = Field(default_factory=dict, description="options of the loss over its registry "
                                           "defaults: " + "; ".join(f"{name}: {', '.join(spec.options)}"
                                                                   for name, spec in LOSSES.items() if spec.options))
    loss_options_grid: dict[_Name, _Grid] = Field(
        default_factory=dict, description="loss options selected on validation, e.g. {'eta': [0.003, 0.01, 0.03]} "
        "for group_dro or {'gamma_focal': [1, 2]} for focal; each value list joins the selection grid")
    cbar: float | None = Field(None, description="mean margin c̄; None selects it from cbar_grid on validation")
    cbar_grid: _Grid = Field(default_factory=lambda: [1.0, 2.0, 3.0], description="c̄ candidates (MR²; the "
                             f"grids' product × seeds: at most MAX_GRID_CANDIDATES = {MAX_GRID_CANDIDATES})")
    p: float | None = Field(None, description="exponent of r_k² = mean ‖φ‖_p²; None: the head's default "
                            "(probe.HEADS: 2 linear, 3 cosine)")
    r2_mode: _Name = Field(
        "exact", description="class statistics r_k²: exact on the frozen training features, or the paper's EMA "
        "(decay 0.9, per batch); with an adapter the trainer always uses the EMA",
        json_schema_extra={"enum": list(R2_MODES)})
    lam: float | None = Field(None, description="weight λ of the representation margin ℓ_s̄ (adapter only)")
    lam_grid: _Grid = Field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9], description="λ candidates (the grids' "
                            f"product × seeds: at most MAX_GRID_CANDIDATES = {MAX_GRID_CANDIDATES})")
    adapter: _Name | None = Field(None, description="trainable map before the head (needed for ℓ_s̄); None: none")
    adapter_rank: int | None = Field(None, description=f"rank (lowrank) or bottleneck width (mlp) of the adapter, "
                                     f"1..{MAX_ADAPTER_RANK} and at most the features' width (checked against the "
                                     "cache before a job exists); None: the adapter's default")
    lr_grid: _Grid | None = Field(None, description="learning-rate candidates; None: the optimiser's default "
                                  "(default_grids): " + "; ".join(f"{name} {_grid_text(lrs)}" for name, lrs in
                                                                 DEFAULT_LR_GRIDS.items())
                                  + f"; {_grid_text(SCALE_INVARIANT_GRID[0])} for adam and sgd on the cosine head")
    wd_grid: _Grid | None = Field(
        None, description="weight-decay candidates; None: the optimiser's default (default_grids): for adam and "
        f"sgd, whose weight decay is the L2 penalty wd/2·‖W‖², α / n_train for α in {_grid_text(L2_STRENGTHS)} "
        f"(scikit-learn's C = 1/α), resolved with the training-set size, and {_grid_text(SCALE_INVARIANT_GRID[1])} "
        "on the cosine head, whose logits ignore the weights' norm (SCALE_INVARIANT_GRID); for adamw "
        f"{_grid_text(DECOUPLED_WD_GRID)}")
    # Mini-batches of 1024 with an automatic epoch count (see auto_epochs): on 50k×1280 features 10 epochs are
    # within 0.25 points of scikit-learn's L-BFGS (11 epochs: 0.21) at a tenth of its time (bench/probe_speed.py);
    # small sets are full-batch (auto_batch_size).
    epochs: int | None = Field(None, description=f"training epochs per fit, 1..{MAX_EPOCHS}; None: "
                               "auto_epochs(n_train, batch_size)")
    batch_size: int | Literal["auto"] | None = Field(
        "auto", description=f"largest mini-batch, 1..{MAX_BATCH_SIZE} (an epoch's ceil(n / batch_size) batches "
        f"differ by at most one row); None: full batch; auto: auto_batch_size(n_train), full batch up to "
        f"{AUTO_FULL_BATCH_ROWS} training rows, else {AUTO_BATCH_SIZE}")
    # On 2.7k×1280 (10 classes) tol=1e-3 halved the sweep's time at the same selection and test accuracy
    # (bench/README.md, Probe speed); ProbeTrainer's own default stays None (every epoch).
    tol: float | None = Field(1e-3, description="end a fit once its epoch objective (loss, plus the L2 penalty for "
                              "adam and sgd) has not beaten its best by more than tol for n_iter_no_change epochs near it (at most "
                              "max(tol, 5 % of the best) above it; epochs further above, a fit still moving, do not "
                              "count): its "
                              "learning rate then falls to 0 over anneal_epochs (ProbeTrainer.tol); epochs is then a "
                              "cap; None or 0: every epoch. In cross-entropy units: lm_softmax, a loss divided by its "
                              "scale s, compares tol / s")
    optimizer: _Name = Field("adam", description="the optimiser (probe.optim): adam, weight decay as an L2 penalty "
                             "(the default); adamw, decoupled weight decay; sgd with momentum, L2 penalty",
                             json_schema_extra={"enum": list(OPTIMIZERS)})
    warmup_epochs: int = Field(0, description="linear warm-up epochs before the cosine schedule; fewer than epochs")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], max_length=MAX_SEEDS,
                             description=f"seeds (at most {MAX_SEEDS}, each in [0, {MAX_SEED}]); the first one "
                             "selects")
    select: Literal["overall", "hard"] = Field(
        "overall", description="validation selection criterion: 'overall' accuracy, or 'hard' — the "
        "disparity-aware decision: a candidate replaces the reference (ERM) configuration only when the 95 % paired "
        "bootstrap interval of its validation hard-third gain is above 0 and that of its overall difference is "
        "above -max_overall_drop")
    max_overall_drop: float = Field(0.0, description="percentage points of overall "
                                    "accuracy the user will trade for the hard third (select='hard'); 0: none")
    overall_metric: Literal[OVERALL_METRICS] = Field(
        "accuracy", description="what 'overall' is where validation selects and decides (the ERM choice, the "
        "decision's overall budget, the post-hoc bias's floor, the paired test delta): 'accuracy' over the images, "
        "so each class counts by its frequency; 'balanced', the mean of the per-class accuracies (scikit-learn's "
        "balanced_accuracy_score), for class-imbalanced data whose classes matter equally where the probe is used")
    posthoc_bias: bool = Field(False, description="fit a per-class logit bias on validation after training")
    posthoc_objective: Literal["hard", "worst"] = Field("hard", description="what the post-hoc bias maximises")
    posthoc_guard: bool = Field(True, description="apply each seed's post-hoc bias only when its effect, estimated "
                                "out of sample by stratified cross-fitting on val (probe.evaluate.POSTHOC_FOLDS "
                                "folds; every class needs POSTHOC_MIN_PER_CLASS val images, else it is not "
                                "applied), passes the disparity decision's rule: the 95 % paired bootstrap lower "
                                "bound of the hard-third gain above 0 and that of the overall difference above "
                                "-max_overall_drop; false: always apply it (the unguarded baseline, which fits and "
                                "checks its floor on the same val images)")
    temperature_scaling: bool = Field(False, description="divide the shipped head's logits (after its post-hoc "
                                      "bias) by one temperature fitted on validation by NLL before the softmax "
                                      "(Guo et al. 2017; probe.calibration.fit_temperature): its probabilities "
                                      "(predict --probabilities, the unsure flag, the report's calibration) are fitted "
                                      "to validation; no prediction and no accuracy changes")
    cv: int = Field(DEFAULT_CV_FOLDS, description=f"folds of the stratified k-fold cross-validation on train + val "
                    "that selects and groups instead of the validation split when validation holds fewer than "
                    "probe.decision.MIN_VAL_PER_CLASS images in some class (probe.crossval); 0: never, else "
                    f"{MIN_CV_FOLDS}..{MAX_CV_FOLDS}")
    val_fraction: float = Field(0.1, description="share of train carved (stratified) as val when none is given")
    drop_classes: list[_ClassName] = Field(
        default_factory=list, max_length=MAX_DROPPED_CLASSES, description="classes whose images are left out of "
        "every split before anything is trained (a class without test images, or one not wanted), by name; the "
        "run is of the other classes, in their order; at least 2 must be left")
    device: _Name = Field("cpu", description="auto, cpu, cuda or cuda:N")
    precision: _Name = Field(
        "auto", description="training precision: fp32; bf16 (matrix products under bfloat16 autocast, float32 "
        "weights, loss and statistics); auto: bf16 on a CPU with native bfloat16 where it measured faster (a wide "
        "stacked product, a large full batch, or mini-batches gathered from features cast once: probe.precision), "
        "else fp32. Evaluation is float32",
        json_schema_extra={"enum": list(TRAINING_PRECISIONS)})

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            check("preset", data["preset"], [Name("preset", lambda: list(PRESETS))])
            settings = dict(get_preset(data["preset"]).settings)
            kept = settings
            if data.get("loss", settings.get("loss")) != settings.get("loss"):  # another loss: the preset's
                # options of its own loss do not apply (its own loss, sent again, kept them: a generated client's)
                kept = {k: v for k, v in settings.items() if k not in ("loss_options", "loss_options_grid")}
            _preset_overridden(data["preset"], settings, kept, data)
            data = {**kept, **data}
        return data

    @field_validator("head", "loss", "adapter", "cbar", "p", "lam", "r2_mode", "adapter_rank", "epochs",
                     "batch_size", "tol", "optimizer", "warmup_epochs", "device", "precision")
    @classmethod
    def _trainer_param(cls, value: Any, info) -> Any:
        name = info.field_name
        if (name in ("epochs", "cbar", "lam") and value is None) or (name == "batch_size" and value == "auto"):
            return value  # chosen later (auto_epochs, auto_batch_size, the c̄ / λ grid)
        return check(name, value, TRAINER_PARAMS[name])

    @field_validator("cbar_grid", "lr_grid", "wd_grid", "lam_grid")
    @classmethod
    def _grid(cls, value: list[float] | None, info) -> list[float] | None:
        if value is None and info.field_name in ("lr_grid", "wd_grid"):
            return value  # the optimiser's default (default_grids), resolved with the training-set size
        if not value:
            raise ValueError(f"{info.field_name} must list at least one value, got [].")
        param = _GRID_PARAM[info.field_name]
        for v in value:
            check(f"{info.field_name} value ({param})", v, TRAINER_PARAMS[param])
        _distinct(info.field_name, value)
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("seeds must list at least one seed, got [].")
        _distinct("seeds", value)
        for seed in value:
            check("seeds value", seed, TRAINER_PARAMS["random_state"])
        return value

    @field_validator("drop_classes")
    @classmethod
    def _drop_classes(cls, value: list[str]) -> list[str]:
        _distinct("drop_classes", [class_name(name) for name in value])  # 'café' twice, composed and not, is one
        return value

    @field_validator("cv")
    @classmethod
    def _cv(cls, value: int) -> int:
        if value != 0 and not MIN_CV_FOLDS <= value <= MAX_CV_FOLDS:
            raise ValueError(f"cv must be 0 (no cross-validation) or an integer in [{MIN_CV_FOLDS}, {MAX_CV_FOLDS}], "
                             f"got {value}.")
        return value

    @field_validator("val_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        return check("val_fraction", value, [VAL_FRACTION_BOUND])

    @field_validator("max_overall_drop")
    @classmethod
    def _overall_drop(cls, value: float) -> float:
        if not MAX_OVERALL_DROP_BOUND.accepts(value):  # in its unit: "[0, 100]" alone did not say points of what
            raise ValueError(f"max_overall_drop must be between 0 and {MAX_OVERALL_DROP:g} points of overall "
                             f"accuracy, got {value:g}.")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ProbeConfig":
        check_trainer_params({"head": self.head, "head_options": self.head_options, "loss": self.loss,
                              "loss_options": self.loss_options, "lam": self.lam or 0.0, "adapter": self.adapter})
        # a null option (checked known above) is its registry default (probe.registry.check_options): stored as
        # null, the request and report.json said other than what ran (an attack round)
        self.head_options = {k: v for k, v in self.head_options.items() if v is not None}
        self.loss_options = {k: v for k, v in self.loss_options.items() if v is not None}
        self._check_loss_grid()
        if self.adapter_rank is not None and self.adapter not in ("lowrank", "mlp"):
            raise ValueError(f"adapter_rank={self.adapter_rank} applies to adapter 'lowrank' or 'mlp', "
                             f"got adapter={self.adapter!r}.")
        if self.epochs is not None and self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs must be an integer in [0, epochs={self.epochs}), "
                             f"got {self.warmup_epochs}.")
        self._check_effective()
        self.check_cost()
        return self

    def total_fits(self, folds: int = 0, has_reference: bool = False) -> int:
        """The fits a run makes (its progress counts them, ``report.timing.fits`` says them): the sweep and the
        seeds, plus, for the disparity-aware decision, the reference configuration (its sweep where no reference
        run gives it) and its other seeds. Under ``folds``-fold cross-validation (``probe.splits.cv_folds``) each
        sweep runs once per fold and the reference's first seed is fitted on the train split."""
        sweeps = max(1, folds)
        total = self.n_candidates() * sweeps + len(self.seeds)
        if self.select == "hard":
            ref_sweep = 1 if has_reference else self.reference_config().n_candidates()
            total += ref_sweep * sweeps + len(self.seeds) - 1 + (1 if folds else 0)
        return total

    def check_cost(self, folds: int = 0, has_reference: bool = False, n_train: int | None = None) -> None:
        """Raise ValueError past the bounds of a request: its grid, candidates × seeds, at most
        ``MAX_GRID_CANDIDATES``; and its work, :meth:`total_fits` × their epochs (auto: :func:`auto_epochs` of
        ``n_train``, or ``AUTO_EPOCH_BOUNDS[1]`` before it is known), at most ``MAX_FIT_EPOCHS``, and × the batches of an epoch over ``n_train`` training rows (the
        optimiser steps), at most ``MAX_FIT_STEPS``. ``folds`` and ``n_train``: known once the data is (a service
        checks them before a job exists: 512 candidates × 12 folds × 10,000 epochs had held a worker for ~7.5 h,
        batches of 1 for hours more; attack rounds)."""
        candidates, seeds = self.n_candidates(), len(self.seeds)
        if candidates * seeds > MAX_GRID_CANDIDATES:
            # not "fits": the run fits the candidates, then the seeds (the next bound's count; a user read the two
            # counts as contradicting each other, an attack round)
            raise ValueError(f"the selection grid has {candidates} candidates × {seeds} seed{'s' * (seeds != 1)} = "
                             f"{candidates * seeds}; at most MAX_GRID_CANDIDATES = {MAX_GRID_CANDIDATES} candidates × "
                             "seeds per run (shorten lr_grid, wd_grid, cbar_grid, lam_grid, loss_options_grid or "
                             "seeds).")
        fits, resolved = self.total_fits(folds, has_reference), self.resolved(n_train) if n_train else None
        epochs = resolved.epochs if resolved is not None else self.epochs or AUTO_EPOCH_BOUNDS[1]
        if fits * epochs > MAX_FIT_EPOCHS:
            crossed = f", {folds}-fold cross-validation" if folds else ""
            raise ValueError(f"this run fits {fits} probes ({candidates} candidates, {seeds} seed"
                             f"{'s' * (seeds != 1)}{crossed}) × {epochs:,} epochs = {fits * epochs:,} epochs of "
                             f"training; at most MAX_FIT_EPOCHS = {MAX_FIT_EPOCHS:,} per run (fewer epochs, "
                             f"candidates or seeds{', or lower cv' if folds else ''}).")
        if resolved is not None:
            batches = math.ceil(n_train / resolved.batch_size) if resolved.batch_size else 1
            steps = fits * resolved.epochs * batches
            if steps > MAX_FIT_STEPS:
                raise ValueError(f"this run fits {fits} probes × {resolved.epochs:,} epochs × {batches:,} batches of "
                                 f"{resolved.batch_size or n_train} rows = {steps:,} optimiser steps; at most "
                                 f"MAX_FIT_STEPS = {MAX_FIT_STEPS:,} per run (larger batches, fewer epochs, "
                                 "candidates or seeds).")

    def _check_effective(self) -> None:
        """Settings that would do nothing in this request are refused, not stored in a report as if they had."""
        if self.max_overall_drop > 0 and self.select != "hard" and not (self.posthoc_bias and self.posthoc_guard):
            raise ValueError(f"max_overall_drop={self.max_overall_drop:g} is the budget of the disparity-aware "
                             "decision (select='hard', e.g. the 'disparity' preset) and of a guarded post-hoc bias; "
                             "with select='overall' and no post-hoc bias it would do nothing.")
        if not self.posthoc_guard and not self.posthoc_bias:
            raise ValueError("posthoc_guard=false switches off the guard of a post-hoc bias; without "
                             "posthoc_bias=true there is none.")

    def check_new_request(self) -> None:
        """Refuse what a new request sets to no effect that the validator lets pass, so that reports which recorded
        it still load (``Report.probe_config``, a reference run's config): a fixed ``cbar`` on a loss whose margins
        have no c̄ (ce, focal, group_dro, ...) trained exactly as without it, while the report said
        "selected: ..., cbar=3". Called where a request enters (``mr2probe train``, the API's probe fields)."""
        if self.cbar is not None and not _loss_uses_cbar(self.loss):
            uses = ", ".join(name for name in LOSSES if _loss_uses_cbar(name))
            raise ValueError(f"cbar={self.cbar:g} is the mean margin c̄ of the losses {uses}; loss {self.loss!r} has "
                             "no c̄, so it would do nothing.")

    def _check_loss_grid(self) -> None:
        spec = get_loss_spec(self.loss)
        unknown = sorted(set(self.loss_options_grid) - set(spec.options))
        if unknown:
            raise ValueError(f"Unknown loss_options_grid {some(unknown)} for loss {self.loss!r}; accepted: "
                             f"{', '.join(spec.options) or 'none'}.")
        both = sorted(set(self.loss_options) & set(self.loss_options_grid))
        if both:
            raise ValueError(f"{both} given both as fixed loss_options and in loss_options_grid; give one.")
        empty = sorted(k for k, v in self.loss_options_grid.items() if not v)
        if empty:
            raise ValueError(f"loss_options_grid lists no values for {empty}.")
        for name, values in self.loss_options_grid.items():
            for value in values:
                check_options(spec, {name: value}, "loss", "loss_options_grid")
            _distinct(f"loss_options_grid {name}", values)

    # -- derived values ------------------------------------------------------------------------------
    def reference_config(self) -> "ProbeConfig":
        """The reference (ERM) configuration of this request when no reference run is given: cross-entropy on the
        same head and training settings, lr and weight decay selected on overall validation accuracy."""
        kept = {name: getattr(self, name) for name in REFERENCE_FIELDS}
        return ProbeConfig(**kept, loss="ce", select="overall")

    def kept_for(self, requested: "ProbeConfig") -> "ProbeConfig":
        """This configuration (a reference's), kept by a run that ``requested`` another, with what that request
        applies to the trained probe whichever configuration it keeps (:data:`AFTER_TRAINING_FIELDS`, and the
        budget of a guarded post-hoc bias): a run that fell back to ERM applied its temperature and bias while its
        report's config said neither (an integration round)."""
        update = {name: getattr(requested, name) for name in AFTER_TRAINING_FIELDS}
        if requested.posthoc_bias and requested.posthoc_guard:
            update["max_overall_drop"] = requested.max_overall_drop
        return ProbeConfig.model_validate({**self.model_dump(), **update})

    def resolved(self, n_train: int) -> "ProbeConfig":
        """This request with ``batch_size="auto"``, ``epochs=None`` and the default grids resolved for ``n_train``
        training rows (:func:`auto_batch_size`, then :func:`auto_epochs`; :func:`default_grids`), as the report
        records them."""
        batch_size = auto_batch_size(n_train) if self.batch_size == "auto" else self.batch_size
        epochs = auto_epochs(n_train, batch_size) if self.epochs is None else self.epochs
        lr_grid, wd_grid = default_grids(self.optimizer, n_train, self.head)
        return self.model_copy(update={"batch_size": batch_size, "epochs": epochs,
                                       "lr_grid": self.lr_grid if self.lr_grid is not None else lr_grid,
                                       "wd_grid": self.wd_grid if self.wd_grid is not None else wd_grid})

    @property
    def resolved_p(self) -> float:
        """p, or the head's default p (``probe.HEADS[head].default_p``: 2 linear, 3 cosine)."""
        return float(self.p) if self.p is not None else float(get_head_spec(self.head).default_p)

    def _grid_axes(self) -> list[tuple[str, list]]:
        """(name, values) of each selection axis in grid order; a fixed or unused value is a one-value axis."""
        cbars = [self.cbar] if (self.cbar is not None or not _loss_uses_cbar(self.loss)) else list(self.cbar_grid)
        lams = [self.lam] if (self.adapter is None or self.lam is not None) else list(self.lam_grid)
        if self.lr_grid is None or self.wd_grid is None:
            raise ValueError("the default lr_grid / wd_grid depend on the training-set size: resolve them first "
                             "(config.resolved(n_train), as run_probe does).")
        return [("lr", list(self.lr_grid)), ("weight_decay", list(self.wd_grid)), ("cbar", cbars), ("lam", lams),
                *((name, list(values)) for name, values in self.loss_options_grid.items())]

    def grid_edges(self, selected: dict[str, float]) -> list[tuple[str, str, float, str, list[float]]]:
        """(parameter, grid field, chosen value, ``"largest"`` or ``"smallest"``, its values sorted) of each axis
        of three values or more whose ``selected`` value lies at an end of its grid: the best may lie beyond it (a
        long-tailed round: group DRO's η and a disparity preset's weight decay at the top of theirs, said nowhere).
        A smallest value of 0 (no penalty, no adjustment) is a bound of its own, and c̄'s grid is the paper's
        {1, 2, 3}: not listed. Needs a resolved configuration (:meth:`resolved`)."""
        fields = {name: field for field, name in _GRID_PARAM.items()}
        edges = []
        for name, values in self._grid_axes():
            grid = sorted({float(v) for v in values if v is not None})
            chosen = selected.get(name)
            if len(grid) < 3 or chosen is None or name == "cbar":
                continue
            side = "largest" if chosen == grid[-1] else "smallest" if chosen == grid[0] and chosen > 0 else None
            if side:
                edges.append((name, fields.get(name, f"loss_options_grid.{name}"), float(chosen), side, grid))
        return edges

    def n_candidates(self) -> int:
        """Number of selection candidates (the product of the grid lengths), without building them; the default
        grids count at their length (they depend on the training-set size only through their values)."""
        unresolved = self.lr_grid is None or self.wd_grid is None
        return math.prod(len(values) for _, values in (self.resolved(1) if unresolved else self)._grid_axes())

    def candidates(self) -> list[dict[str, float]]:
        """The selection grid in a fixed order: lr (outer), weight decay, c̄, λ, then the loss options of
        ``loss_options_grid`` in their given order (inner). A fixed or unused c̄ / λ is left out."""
        axes = self._grid_axes()
        return [{name: float(v) for (name, _), v in zip(axes, values) if v is not None}
                for values in itertools.product(*(vals for _, vals in axes))]

    def trainer_params(self, selected: dict[str, float], *, seed: int, device: Any = None,
                       loss_options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Keyword arguments of :class:`probe.ProbeTrainer` for one candidate of :meth:`candidates`.

        Args:
            selected: a candidate (lr, weight_decay, and cbar / lam / grid loss options where selected).
            seed: the trainer's ``random_state``.
            device: the resolved device (``probe.trainer.resolve_device``); None keeps ``self.device``.
            loss_options: options the run adds (e.g. ``val_error`` from the reference run).
        """
        if self.batch_size == "auto":
            raise ValueError("batch_size='auto' depends on the training-set size: resolve it first "
                             "(config.resolved(n_train), as run_probe does).")
        options = {**self.loss_options, **(loss_options or {}),
                   **{name: selected[name] for name in self.loss_options_grid}}
        return dict(head=self.head, head_options=dict(self.head_options) or None, loss=self.loss,
                    loss_options=options or None, cbar=selected.get("cbar", self.cbar or 1.0), p=self.resolved_p,
                    r2_mode=self.r2_mode, lam=selected.get("lam", self.lam or 0.0), adapter=self.adapter,
                    adapter_rank=self.adapter_rank, lr=selected["lr"], weight_decay=selected["weight_decay"],
                    epochs=self.epochs, batch_size=self.batch_size, tol=self.tol, optimizer=self.optimizer,
                    warmup_epochs=self.warmup_epochs, device=self.device if device is None else device,
                    precision=self.precision, random_state=seed)


# What a run applies to its trained probe whichever configuration it keeps (ProbeConfig.kept_for)
AFTER_TRAINING_FIELDS = ("posthoc_bias", "posthoc_objective", "posthoc_guard", "temperature_scaling")
# What the reference (ERM) configuration shares with the request it is compared with.
REFERENCE_FIELDS = ("head", "head_options", "p", "lr_grid", "wd_grid", "epochs", "batch_size", "tol",
                    "optimizer", "warmup_epochs", "seeds", "cv", "val_fraction", "device", "precision",
                    "overall_metric")

# auto_epochs: enough epochs for AUTO_MIN_STEPS optimiser steps, within AUTO_EPOCH_BOUNDS. A full-batch fit (at
# most AUTO_FULL_BATCH_ROWS rows: one step an epoch) had at most 100 epochs, so 100 steps: a new-user round's
# 1,214 digit images ended 4.5 points under the same probe at 1,000 epochs, still improving, while the mini-batch
# fits above it had 450 steps; at 450, +4.3 points there and within a few tenths on CIFAR-10 and Fashion-MNIST.
# Fits that settle sooner stop by tol (bench/full_batch_epochs.py, README "Automatic epochs on small sets").
AUTO_MIN_STEPS = 450
AUTO_EPOCH_BOUNDS = (10, AUTO_MIN_STEPS)


def auto_batch_size(n_train: int) -> int | None:
    """None (full batch) for at most ``AUTO_FULL_BATCH_ROWS`` training rows, else ``AUTO_BATCH_SIZE``."""
    return None if n_train <= AUTO_FULL_BATCH_ROWS else AUTO_BATCH_SIZE


def auto_epochs(n_train: int, batch_size: int | None) -> int:
    """Epochs giving at least ``AUTO_MIN_STEPS`` steps, clipped to ``AUTO_EPOCH_BOUNDS``.

    50k samples in batches of 1024 (49 steps per epoch) → 10 epochs; 6k samples (6 steps) → 75; a full-batch or
    small set (1 step per epoch) → 450. Large sets get few passes (each pass has many steps), small sets many; a
    fit whose objective settles sooner ends there (``tol``).
    """
    steps = max(1, math.ceil(n_train / batch_size)) if batch_size else 1
    low, high = AUTO_EPOCH_BOUNDS
    return int(min(high, max(low, math.ceil(AUTO_MIN_STEPS / steps))))
