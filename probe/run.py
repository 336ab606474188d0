"""One probe request end to end: select on validation, train every seed, evaluate, write the run directory.

``run_probe`` is the harness every method goes through (ERM, MR², variants, post-hoc bias), so all of them are
selected on the same validation split, scored on the same groups and reported in the same format:

1. Selection (validation only, never test): a grid over lr × weight decay (+ c̄ from ``cbar_grid`` for losses
   that use the MR² margins when ``cbar`` is not fixed, + λ from ``lam_grid`` when an adapter is used and ``lam``
   is not fixed), each candidate trained with ``seeds[0]`` and scored by a named criterion (``probe.selection``).
2. Groups: easy / medium / hard thirds from the reference (ERM) run's validation per-class accuracy, or, without a
   reference, from this run's own (seed-mean) validation per-class accuracy; the report says which.
3. Every seed trained with the chosen hyper-parameters (the ``seeds[0]`` model of the selection is reused: same
   seed, same parameters, same model), evaluated on val and test; optionally a post-hoc per-class logit bias
   (``probe.posthoc``) fitted per seed on its validation logits.
4. ``report.json``, ``per_class.csv``, ``head.safetensors`` + ``head.json`` (first seed, ``ProbeTrainer.save``)
   and, with the post-hoc bias, ``posthoc_bias.json`` in ``out_dir``.
"""
from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .groups import assign_groups, group_accuracy
from .metrics import (
    class_margin_deg,
    output_margins,
    per_class_accuracy,
    per_class_reduce,
    sample_margins,
)
from .posthoc import PosthocLogitBias
from .selection import select_candidate

logger = logging.getLogger(__name__)

__all__ = ["ProbeConfig", "ProbeCancelled", "SeedEvaluation", "run_probe", "carve_validation", "auto_epochs",
           "DEFAULT_P", "AUTO_MIN_STEPS", "AUTO_EPOCH_BOUNDS"]

# Default exponent p of r_k² = mean ‖φ(x)‖_p² per head (MR², Sec. 4): L2-normalised features make p = 2 uniform.
DEFAULT_P: dict[str, float] = {"linear": 2.0, "cosine": 3.0}
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class ProbeCancelled(Exception):
    """Raised by ``run_probe`` when ``should_stop()`` returns True; nothing is written to ``out_dir``."""


def _loss_needs(loss: str) -> str:
    """The class statistic a registered loss builds its margins from (``LossSpec.needs``)."""
    from .losses import LOSSES

    return LOSSES[loss].needs


def _loss_uses_cbar(loss: str) -> bool:
    """Whether a registered loss builds margins γ from c̄ (then c̄ is selected on validation when not fixed)."""
    return _loss_needs(loss) not in ("none", "priors")


class ProbeConfig(BaseModel):
    """One probe request. Grids are searched on the validation split; fixed values skip their grid."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(None, description="a name of probe.PRESETS (e.g. 'disparity', the recommended "
                               "disparity-aware method): fills the fields this request leaves unset")
    head: Literal["linear", "cosine"] = Field("linear", description="classifier head")
    head_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the head over its registry defaults (probe.HEADS), e.g. "
        "{'learnable_scale': False, 'logit_scale': 16} for a fixed cosine scale")
    loss: str = Field("ce", description="a name of probe.LOSSES: ce (ERM), uniform, mr2, baselines, variants")
    loss_options: dict[str, Any] = Field(default_factory=dict, description="extra keyword options of the loss")
    loss_options_grid: dict[str, list[float]] = Field(
        default_factory=dict, description="loss options selected on validation, e.g. {'eta': [0.003, 0.01, 0.03]} "
        "for group_dro or {'gamma_focal': [1, 2]} for focal; each value list joins the selection grid")
    cbar: float | None = Field(None, description="mean margin c̄; None selects it from cbar_grid on validation")
    cbar_grid: list[float] = Field(default_factory=lambda: [1.0, 2.0, 3.0], description="c̄ candidates (MR²)")
    p: float | None = Field(None, description="exponent of r_k² = mean ‖φ‖_p²; None: 2 linear, 3 cosine")
    r2_mode: Literal["exact", "ema"] = Field(
        "exact", description="class statistics r_k²: exact on the frozen training features, or the paper's EMA "
        "(decay 0.9, per batch); with an adapter the trainer always uses the EMA")
    lam: float | None = Field(None, description="weight λ of the representation margin ℓ_s̄ (adapter only)")
    lam_grid: list[float] = Field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9], description="λ candidates")
    adapter: str | None = Field(None, description="trainable map before the head (needed for ℓ_s̄); None: no adapter")
    adapter_rank: int | None = Field(None, description="rank (lowrank) or bottleneck width (mlp) of the adapter; "
                                     "None: the adapter's default")
    lr_grid: list[float] = Field(default_factory=lambda: [1e-3, 1e-2], description="learning-rate candidates")
    # AdamW's decoupled decay shrinks w by lr·wd per step, so useful values are large (wd=10 at lr=1e-3 matched
    # scikit-learn's best C on the bench features; wd=0 keeps the unregularised probe in the sweep).
    wd_grid: list[float] = Field(default_factory=lambda: [0.0, 1.0, 10.0], description="weight-decay candidates")
    # Mini-batches of 1024 with an automatic epoch count (see auto_epochs): on 50k×1280 features 10 epochs are
    # within 0.25 points of scikit-learn's L-BFGS (11 epochs: 0.21) at a tenth of its time (bench/probe_speed.py);
    # n ≤ 1024 is full-batch.
    epochs: int | None = Field(None, description="training epochs per fit; None: auto_epochs(n_train, batch_size)")
    batch_size: int | None = Field(1024, description="mini-batch size; None trains full-batch")
    # On 2.7k×1280 (10 classes) tol=1e-3 halved the sweep's time at the same selection and test accuracy
    # (README, probe speed); ProbeTrainer's own default stays None (every epoch).
    tol: float | None = Field(1e-3, description="stop a fit when its epoch training loss has not improved by "
                              "more than tol for 5 epochs (ProbeTrainer.tol); epochs is then a cap; None or 0: "
                              "every epoch")
    optimizer: Literal["adamw", "sgd"] = "adamw"
    warmup_epochs: int = Field(0, description="linear warm-up epochs before the cosine schedule")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], description="seeds; the first one selects")
    select: Literal["overall", "hard"] = Field("overall", description="validation selection criterion")
    posthoc_bias: bool = Field(False, description="fit a per-class logit bias on validation after training")
    posthoc_objective: Literal["hard", "worst"] = Field("hard", description="what the post-hoc bias maximises")
    val_fraction: float = Field(0.1, description="share of train carved (stratified) as val when none is given")
    device: str = Field("cpu", description="auto, cpu, cuda or cuda:N")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            from .presets import get_preset

            settings = dict(get_preset(data["preset"]).settings)
            if "loss" in data:  # another loss: the preset's options of its own loss do not apply
                settings = {k: v for k, v in settings.items() if k not in ("loss_options", "loss_options_grid")}
            data = {**settings, **data}
        return data

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        from .losses import LOSSES

        if value not in LOSSES:
            raise ValueError(f"Unknown loss {value!r}; available: {', '.join(sorted(LOSSES))}.")
        return value

    @model_validator(mode="after")
    def _loss_fits_head_and_options(self) -> "ProbeConfig":
        from .heads import HEADS
        from .losses import LOSSES

        unknown = sorted(set(self.head_options) - set(HEADS[self.head].defaults))
        if unknown:
            raise ValueError(f"Unknown head_options {unknown} for head {self.head!r}; accepted: "
                             f"{', '.join(HEADS[self.head].defaults) or 'none'}.")
        spec = LOSSES[self.loss]
        if spec.input == "cosine" and self.head != "cosine":
            raise ValueError(f"loss {self.loss!r} works on normalised features and prototypes; use head='cosine', "
                             f"got head={self.head!r}.")
        for field, options in (("loss_options", self.loss_options), ("loss_options_grid", self.loss_options_grid)):
            unknown = sorted(set(options) - set(spec.defaults))
            if unknown:
                raise ValueError(f"Unknown {field} {unknown} for loss {self.loss!r}; accepted: "
                                 f"{', '.join(spec.defaults) or 'none'}.")
        both = sorted(set(self.loss_options) & set(self.loss_options_grid))
        if both:
            raise ValueError(f"{both} given both as fixed loss_options and in loss_options_grid; give one.")
        empty = sorted(k for k, v in self.loss_options_grid.items() if not v)
        if empty:
            raise ValueError(f"loss_options_grid lists no values for {empty}.")
        return self

    @field_validator("adapter")
    @classmethod
    def _known_adapter(cls, value: str | None) -> str | None:
        from .adapters import ADAPTERS

        if value is not None and value not in ADAPTERS:
            raise ValueError(f"Unknown adapter {value!r}; available: {', '.join(ADAPTERS)} (or None).")
        return value

    @field_validator("cbar", "p")
    @classmethod
    def _positive(cls, value: float | None, info) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"{info.field_name} must be > 0, got {value}.")
        return value

    @field_validator("lam")
    @classmethod
    def _nonneg_lam(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError(f"lam must be >= 0, got {value}.")
        return value

    @field_validator("cbar_grid", "lr_grid")
    @classmethod
    def _positive_grid(cls, value: list[float], info) -> list[float]:
        if not value or any(not v > 0 for v in value):
            raise ValueError(f"{info.field_name} must be a non-empty list of values > 0, got {value}.")
        return value

    @field_validator("wd_grid", "lam_grid")
    @classmethod
    def _nonneg_grid(cls, value: list[float], info) -> list[float]:
        if not value or any(v < 0 for v in value):
            raise ValueError(f"{info.field_name} must be a non-empty list of values >= 0, got {value}.")
        return value

    @model_validator(mode="after")
    def _rank_needs_adapter(self) -> "ProbeConfig":
        if self.adapter_rank is not None and self.adapter not in ("lowrank", "mlp"):
            raise ValueError(f"adapter_rank={self.adapter_rank} applies to adapter 'lowrank' or 'mlp', "
                             f"got adapter={self.adapter!r}.")
        if self.adapter_rank is not None and self.adapter_rank < 1:
            raise ValueError(f"adapter_rank must be >= 1, got {self.adapter_rank}.")
        return self

    @field_validator("epochs")
    @classmethod
    def _positive_epochs(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"epochs must be >= 1, got {value}.")
        return value

    @field_validator("batch_size")
    @classmethod
    def _positive_batch(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"batch_size must be >= 1 or None (full batch), got {value}.")
        return value

    @field_validator("tol")
    @classmethod
    def _nonneg_tol(cls, value: float | None) -> float | None:
        if value is not None and not value >= 0:
            raise ValueError(f"tol must be >= 0 or None (every epoch), got {value}.")
        return value

    @field_validator("warmup_epochs")
    @classmethod
    def _nonneg_warmup(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {value}.")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("seeds must list at least one seed, got [].")
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {value}.")
        return value

    @field_validator("val_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {value}.")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device must be one of auto, cpu, cuda, cuda:N, mps; got {value!r}.")
        return value

    @model_validator(mode="after")
    def _lam_needs_adapter(self) -> "ProbeConfig":
        if self.lam and self.adapter is None:
            raise ValueError(
                f"lam={self.lam} weights the representation margin ℓ_s̄, which has no gradient on frozen "
                "features; set adapter (a trainable map before the head) or lam=None/0."
            )
        return self

    # -- derived values ------------------------------------------------------------------------------
    @property
    def resolved_p(self) -> float:
        """p, or the head's default (2 linear, 3 cosine)."""
        return float(self.p) if self.p is not None else DEFAULT_P[self.head]

    def candidates(self) -> list[dict[str, float | None]]:
        """The selection grid in a fixed order: lr (outer), weight decay, c̄, λ, then the loss options of
        ``loss_options_grid`` in their given order (inner)."""
        cbars: list[float | None] = [self.cbar] if (self.cbar is not None or not _loss_uses_cbar(self.loss)) \
            else list(self.cbar_grid)
        lams: list[float | None] = [self.lam] if (self.adapter is None or self.lam is not None) \
            else list(self.lam_grid)
        option_names = list(self.loss_options_grid)
        out = []
        for lr, wd, cbar, lam, *options in itertools.product(self.lr_grid, self.wd_grid, cbars, lams,
                                                             *self.loss_options_grid.values()):
            cand: dict[str, float | None] = {"lr": float(lr), "weight_decay": float(wd)}
            if cbar is not None:
                cand["cbar"] = float(cbar)
            if lam is not None:
                cand["lam"] = float(lam)
            cand.update({name: float(value) for name, value in zip(option_names, options)})
            out.append(cand)
        return out


# auto_epochs: enough epochs for AUTO_MIN_STEPS optimiser steps, within AUTO_EPOCH_BOUNDS.
AUTO_MIN_STEPS = 450
AUTO_EPOCH_BOUNDS = (10, 100)


def auto_epochs(n_train: int, batch_size: int | None) -> int:
    """Epochs giving at least ``AUTO_MIN_STEPS`` steps, clipped to ``AUTO_EPOCH_BOUNDS``.

    50k samples in batches of 1024 (49 steps per epoch) → 10 epochs; 6k samples (6 steps) → 75; a full-batch or
    small set (1 step per epoch) → 100. Large sets get few passes (each pass has many steps), small sets many.
    """
    steps = max(1, math.ceil(n_train / batch_size)) if batch_size else 1
    low, high = AUTO_EPOCH_BOUNDS
    return int(min(high, max(low, math.ceil(AUTO_MIN_STEPS / steps))))


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def carve_validation(features: np.ndarray, labels: np.ndarray, fraction: float, seed: int
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded split of train into (train, val): round(fraction·n_k) of each class (≥ 1 when n_k ≥ 2).

    Returns:
        ``((X_train, y_train), (X_val, y_val))``; the order inside each part follows the original rows.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), labels))  # by class, random within class
    counts = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    n_val = np.where(counts >= 2, np.maximum(1, np.rint(fraction * counts)), 0).astype(np.int64)
    n_val = np.minimum(n_val, np.maximum(counts - 1, 0))
    is_val = rank < n_val[labels]
    return (features[~is_val], labels[~is_val]), (features[is_val], labels[is_val])


@dataclass
class SeedEvaluation:
    """Everything the report needs from one trained seed (arrays are (K,) unless noted)."""

    seed: int
    val_per_class: np.ndarray
    val_overall: float
    test_per_class: np.ndarray
    test_overall: float
    output_margin_mean: np.ndarray     # mean P(y|x) − max_{y'≠y} P(y'|x) per class, test
    test_counts: np.ndarray
    sample_margin_min: np.ndarray      # per class, test
    sample_margin_mean: np.ndarray
    class_margin_deg: float
    val_logits: np.ndarray | None = None  # (n_val, K), kept for the post-hoc bias
    test_logits: np.ndarray | None = None  # (n_test, K)
    posthoc: dict[str, Any] | None = None


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _evaluate_split(trainer, features: np.ndarray, labels: np.ndarray, num_classes: int,
                    logits: np.ndarray | None = None) -> dict[str, Any]:
    if logits is None:
        logits = _as_numpy(trainer.decision_function(features)).astype(np.float64)
    predictions = logits.argmax(axis=1)
    per_class, counts = per_class_accuracy(labels, predictions, num_classes)
    return {"logits": logits, "per_class": per_class, "counts": counts,
            "overall": float(np.mean(predictions == labels)) if len(labels) else float("nan")}


def _evaluate_seed(trainer, seed: int, val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   num_classes: int) -> SeedEvaluation:
    v = _evaluate_split(trainer, *val, num_classes)
    t = _evaluate_split(trainer, *test, num_classes)
    x_test, y_test = test
    _, out_margin = per_class_reduce(output_margins(t["logits"], y_test), y_test, num_classes)
    weights = _as_numpy(trainer.class_weights())
    seen = _as_numpy(trainer.transform(x_test))
    sm_min, sm_mean = per_class_reduce(sample_margins(seen, y_test, weights), y_test, num_classes)
    return SeedEvaluation(
        seed=seed, val_per_class=v["per_class"], val_overall=v["overall"], test_per_class=t["per_class"],
        test_overall=t["overall"], output_margin_mean=out_margin, test_counts=t["counts"],
        sample_margin_min=sm_min, sample_margin_mean=sm_mean, class_margin_deg=class_margin_deg(weights),
        val_logits=v["logits"], test_logits=t["logits"],
    )


def _apply_posthoc(ev: SeedEvaluation, val_labels: np.ndarray, test_labels: np.ndarray,
                   groups: dict[str, list[int]], objective: str, num_classes: int) -> None:
    """Fit the per-class logit bias on this seed's val logits; re-score val and test with it (in place)."""
    model = PosthocLogitBias(objective, groups).fit(ev.val_logits, val_labels)
    val_logits = model.decision_function(ev.val_logits)
    test_logits = model.decision_function(ev.test_logits)
    ev.val_per_class, _ = per_class_accuracy(val_labels, val_logits.argmax(1), num_classes)
    ev.val_overall = float(np.mean(val_logits.argmax(1) == val_labels))
    ev.test_per_class, _ = per_class_accuracy(test_labels, test_logits.argmax(1), num_classes)
    ev.test_overall = float(np.mean(test_logits.argmax(1) == test_labels))
    _, ev.output_margin_mean = per_class_reduce(output_margins(test_logits, test_labels), test_labels, num_classes)
    ev.posthoc = {"bias": model.bias_.tolist(), "scale": model.scale_, "val_overall_before": model.overall_before_,
                  "val_overall_after": model.overall_after_, "val_objective_before": model.objective_before_,
                  "val_objective_after": model.objective_after_}


def _check_data(data: dict, class_names: list[str]) -> int:
    if "train" not in data or "test" not in data:
        raise ValueError(f"data needs 'train' and 'test' splits (and optionally 'val'); got {sorted(data)}.")
    num_classes = len(class_names)
    if num_classes < 2:
        raise ValueError(f"a probe needs at least 2 classes, got class_names={class_names}.")
    dims = set()
    for split, pair in data.items():
        x, y = pair
        if np.ndim(x) != 2 or np.ndim(y) != 1 or len(x) != len(y):
            raise ValueError(f"split {split!r} must be (features (n, d), labels (n,)), got shapes "
                             f"{np.shape(x)} and {np.shape(y)}.")
        if len(y) and (np.min(y) < 0 or np.max(y) >= num_classes):
            raise ValueError(f"split {split!r} has labels outside [0, {num_classes - 1}] for {num_classes} classes.")
        dims.add(np.shape(x)[1])
    if len(dims) != 1:
        raise ValueError(f"all splits must share the feature dimension, got {sorted(dims)}.")
    return num_classes


def _reference_groups(reference: dict, class_names: list[str]) -> tuple[dict[str, list[int]], float]:
    ref_names = reference.get("class_names")
    if ref_names is not None and list(ref_names) != list(class_names):
        raise ValueError("reference run has different classes than this run: "
                         f"{list(ref_names)[:5]}... vs {list(class_names)[:5]}...")
    try:
        per_class = np.array([np.nan if v is None else v for v in reference["val"]["per_class"]], dtype=float)
        floor = float(reference["val"]["overall"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"reference report lacks val.per_class / val.overall ({exc}).") from exc
    return assign_groups(per_class), floor


def run_probe(data: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str], config: ProbeConfig, *,
              reference: dict | None = None, out_dir: str | Path | None = None,
              progress: Callable[[float, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> dict:
    """Select on val, train every seed, evaluate, write the run directory; returns the report dict.

    Args:
        data: ``{"train": (X, y), "val": (X, y), "test": (X, y)}``; a missing ``val`` is carved from train
            (stratified, ``config.val_fraction``, seed ``config.seeds[0]``).
        class_names: K names, index = label.
        config: the request.
        reference: report dict of the reference (ERM) run: its val per-class accuracy defines the groups and its
            val overall is the floor of the ``hard`` criterion.
        out_dir: where to write report.json, per_class.csv, head.safetensors / head.json; None writes nothing.
        progress: ``progress(fraction in [0, 1], stage)``.
        should_stop: polled between fits; True raises :class:`ProbeCancelled`.

    Raises:
        ValueError: malformed data or reference. ProbeCancelled: stopped by ``should_stop``.
    """
    from .report import build_report, write_run
    from .trainer import ProbeTrainer, fit_many

    if isinstance(config, dict):
        config = ProbeConfig.model_validate(config)
    # An empty split (caches always hold all three) counts as missing: an empty val is carved from train.
    data = {split: pair for split, pair in data.items() if len(pair[1]) > 0}
    class_names = [str(c) for c in class_names]
    num_classes = _check_data(data, class_names)
    x_train, y_train = (np.asarray(a) for a in data["train"])
    y_train = y_train.astype(np.int64)
    if "val" in data:
        val = (np.asarray(data["val"][0]), np.asarray(data["val"][1], dtype=np.int64))
        val_source = "given"
    else:
        (x_train, y_train), val = carve_validation(x_train, y_train, config.val_fraction, config.seeds[0])
        val_source = f"carved from train (stratified, fraction {config.val_fraction}, seed {config.seeds[0]})"
    test = (np.asarray(data["test"][0]), np.asarray(data["test"][1], dtype=np.int64))
    if len(val[1]) == 0:
        raise ValueError("the validation split is empty; selection needs validation samples.")
    device = _resolve_device(config.device)
    if config.epochs is None:  # the report records the epochs actually used
        config = config.model_copy(update={"epochs": auto_epochs(len(y_train), config.batch_size)})

    ref_groups, floor = (None, None)
    if reference is not None:
        ref_groups, floor = _reference_groups(reference, class_names)

    candidates = config.candidates()
    total = len(candidates) + len(config.seeds) - 1 + 1
    done = 0

    def tick(stage: str) -> None:
        if should_stop is not None and should_stop():
            raise ProbeCancelled(f"probe run cancelled during {stage}")
        if progress is not None:
            progress(done / total, stage)

    loss_options = dict(config.loss_options)
    if _loss_needs(config.loss) == "val_error" and loss_options.get("val_error") is None:
        if reference is None:
            raise ValueError(f"loss {config.loss!r} needs the per-class validation error of a reference (ERM) run: "
                             "pass reference= (CLI --reference RUN_DIR) or loss_options['val_error'].")
        ref_acc = np.array([np.nan if v is None else v for v in reference["val"]["per_class"]], dtype=float)
        loss_options["val_error"] = np.nan_to_num(1.0 - ref_acc, nan=1.0).tolist()

    def fit_progress(stage: str, fits: int = 1):
        """Per-epoch hook of a fit that counts for ``fits`` of the ``total`` steps (a joint fit counts for all)."""
        def hook(epoch: int, epochs: int) -> None:
            if should_stop is not None and should_stop():
                raise ProbeCancelled(f"probe run cancelled during {stage}, epoch {epoch}/{epochs}")
            if progress is not None:
                progress((done + fits * epoch / epochs) / total, stage)
        return hook

    def make(params: dict, seed: int, stage: str, hook: Callable | None = None):
        kwargs = dict(head=config.head, head_options=dict(config.head_options) or None, loss=config.loss,
                      cbar=params.get("cbar", config.cbar or 1.0), p=config.resolved_p, r2_mode=config.r2_mode,
                      lam=params.get("lam", config.lam or 0.0),
                      adapter=config.adapter, adapter_rank=config.adapter_rank,
                      lr=params["lr"], weight_decay=params["weight_decay"], epochs=config.epochs,
                      batch_size=config.batch_size, tol=config.tol, optimizer=config.optimizer,
                      warmup_epochs=config.warmup_epochs, device=device, random_state=seed)
        options = {**loss_options, **{name: params[name] for name in config.loss_options_grid}}
        if options:
            kwargs["loss_options"] = options
        return ProbeTrainer(**kwargs, progress=hook)

    # Constants of the sweep, prepared once rather than per fit: the float32 training tensor and, when the class
    # statistics are exact (frozen features, no adapter), r_k² and ‖s_k‖² of the features the head sees.
    import torch

    x_fit = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float16 if x_train.dtype == np.float16
                                                  else np.float32))  # float16 stays float16 (widened per batch)
    stats = None
    if config.adapter is None and config.r2_mode == "exact":
        stats = make(candidates[0], config.seeds[0], "statistics").class_stats(x_fit, y_train, num_classes)

    def fit(params: dict, seed: int, stage: str):
        trainer = make(params, seed, stage, fit_progress(stage)).fit(x_fit, y_train, num_classes=num_classes,
                                                                     class_stats=stats)
        return trainer.set_params(progress=None)  # the hook is a closure over this run: not part of the model

    # 1. selection on validation with seeds[0]
    seed0 = config.seeds[0]
    fitted: list[Any] = []
    if config.adapter is None:  # every candidate in one pass over the data (probe.trainer.fit_many)
        stage = f"selection ({len(candidates)} candidates, joint fit)"
        tick(stage)
        hook = fit_progress(stage, fits=len(candidates))
        trainers = [make(params, seed0, stage, hook if i == 0 else None) for i, params in enumerate(candidates)]
        fitted = [t.set_params(progress=None)
                  for t in fit_many(trainers, x_fit, y_train, num_classes=num_classes, class_stats=stats)]
        done += len(candidates)
    else:  # an adapter gives every candidate its own features: one fit each
        for i, params in enumerate(candidates):
            stage = f"selection {i + 1}/{len(candidates)}"
            tick(stage)
            fitted.append(fit(params, seed0, stage))
            done += 1
    scored: list[dict] = []
    for i, (params, trainer) in enumerate(zip(candidates, fitted)):
        v = _evaluate_split(trainer, *val, num_classes)
        groups = ref_groups if ref_groups is not None else assign_groups(v["per_class"])
        hard = group_accuracy(v["per_class"], groups)["hard"]
        scored.append({**params, "val_overall": v["overall"], "val_hard": hard})
        logger.info("candidate %d/%d %s: val overall %.4f, hard %.4f", i + 1, len(candidates), params,
                    v["overall"], hard)
    chosen_index, reason = select_candidate(scored, config.select, floor=floor if reference is not None else None)
    chosen = candidates[chosen_index]
    if config.select == "hard" and reference is None:
        logger.warning("select='hard' without a reference run: no ERM floor, own groups")
    first = fitted[chosen_index]
    del fitted

    # 2. every seed with the chosen parameters
    evaluations = [_evaluate_seed(first, seed0, val, test, num_classes)]
    for seed in config.seeds[1:]:
        tick(f"seed {seed}")
        trainer = fit(chosen, seed, f"seed {seed}")
        evaluations.append(_evaluate_seed(trainer, seed, val, test, num_classes))
        done += 1

    # 3. groups (reference or own seed-mean val accuracy), then the optional post-hoc bias
    if ref_groups is not None:
        groups = ref_groups
    else:
        groups = assign_groups(np.nanmean(np.stack([e.val_per_class for e in evaluations]), axis=0))
    if config.posthoc_bias:
        for ev in evaluations:
            _apply_posthoc(ev, val[1], test[1], groups, config.posthoc_objective, num_classes)
        reason += (f" Then a post-hoc per-class logit bias was fitted on each seed's validation logits to maximise "
                   f"the {config.posthoc_objective} accuracy with val overall kept >= the unbiased probe's.")

    tick("report")
    selection = {"criterion": config.select, "split": "val", "candidates": scored, "chosen": scored[chosen_index],
                 "reason": reason}
    if config.preset is not None:
        from .presets import get_preset

        preset = get_preset(config.preset)
        selection["preset"] = {"name": preset.name, "settings": preset.settings, "why": preset.why}
    run_id = Path(out_dir).name if out_dir is not None else None
    report = build_report(
        run_id=run_id, config=config, selected=chosen, selection=selection, class_names=class_names,
        groups=groups, reference=reference, evaluations=evaluations, trainer=first,
        n_train=np.bincount(y_train, minlength=num_classes), val_source=val_source,
    )
    if out_dir is not None:
        write_run(Path(out_dir), report, first)
    done = total
    if progress is not None:
        progress(1.0, "done")
    return report

