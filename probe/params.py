"""The trainer's parameters and their constraints, declared once; the bounds of a probe request. Torch-free.

``TRAINER_PARAMS`` serves both :class:`probe.ProbeTrainer` (checked at ``fit``) and :class:`probe.ProbeConfig`
(checked when a request is parsed, so the API answers 422 before a job exists), as scikit-learn's
``_parameter_constraints`` serve an estimator and its search. :func:`check_trainer_params` adds the checks that
involve several parameters.

Bounds (module constants, listed in docs/ARCHITECTURE.md and the README): a request past them is refused at
submission. They are far above what a linear probe needs and exist so one request cannot exhaust the server
(``epochs=10**9`` allocated a history tensor of that size; a 1000 × 1000 grid trained a million heads).
"""
from __future__ import annotations

from typing import Any

from .constraints import Boolean, Device, Instance, Interval, Name, Options, check
from .registry import ADAPTERS, HEADS, LOSSES, check_options, get_head_spec, get_loss_spec

__all__ = ["TRAINER_PARAMS", "check_trainer_params", "R2_MODES", "OPTIMIZERS", "L2_OPTIMIZERS", "MAX_EPOCHS",
           "MAX_BATCH_SIZE", "MAX_ADAPTER_RANK", "MAX_SEEDS", "TRAINING_PRECISIONS", "MAX_GRID_VALUES",
           "MAX_GRID_CANDIDATES", "MAX_FIT_EPOCHS", "MAX_FIT_STEPS",
           "MAX_SEED", "MAX_CBAR", "MAX_P", "MAX_LR", "MAX_WEIGHT_DECAY", "MAX_LAM", "MAX_DROPPED_CLASSES"]

MAX_EPOCHS = 10_000           # epochs (and warm-up epochs) of one fit
MAX_BATCH_SIZE = 1_000_000    # samples per mini-batch
MAX_ADAPTER_RANK = 4096       # rank / bottleneck width of an adapter
MAX_SEEDS = 20                # seeds of one run
MAX_GRID_VALUES = 64          # values in one grid (lr_grid, wd_grid, cbar_grid, lam_grid, each loss_options_grid)
MAX_GRID_CANDIDATES = 512     # selection candidates × seeds of one run (its work: MAX_FIT_EPOCHS)
# fits × epochs of one run (auto epochs count as auto_epochs' count, or its upper end before the data is known):
# a request of 512 candidates, 12 folds and 10,000 epochs each held a worker for ~7.5 h (an attack round)
MAX_FIT_EPOCHS = 512_000
# fits × epochs × batches per epoch (optimiser steps) of one run, once its training rows are known: 44 fits of
# 10,000 epochs in batches of 1 over 54 images passed MAX_FIT_EPOCHS and held a worker ~2 h a probe (an attack
# round); the 1.28M-row MR² sweep on CPU takes ~300,000
MAX_FIT_STEPS = 10_000_000
MAX_DROPPED_CLASSES = 1_000   # classes one run leaves out (drop_classes; each a name of at most probe.names.MAX_NAME)
# Every seed (a probe's random_state, an extraction's split seed) is in [0, MAX_SEED]: what each of their consumers
# accepts (numpy's RandomState, the tightest, and default_rng; torch's manual_seed; scikit-learn's random_state)
MAX_SEED = 2**32 - 1
# Numbers past these are no setting of a linear probe (c̄ 1–3 in the paper, p 2 or 3, lr ≤ 0.1, α/n ≤ 1000/n):
# c̄ = 1e300 made every γ_k infinite and "succeeded" at chance, wd = 1e300 diverged blaming the learning rate.
MAX_CBAR = 100.0              # mean margin c̄
MAX_P = 10.0                  # exponent p ≥ 1 of r_k² = mean ‖φ‖_p² (|φ_i|^p overflows float32 from ~20 on)
MAX_LR = 100.0                # learning rate
MAX_WEIGHT_DECAY = 1e6        # weight decay (the L2 strength α/n for adam and sgd)
MAX_LAM = 100.0               # weight λ of ℓ_s̄ (and of the sample-margin / zero-centroid regularisers)

R2_MODES = ("exact", "ema")
OPTIMIZERS = ("adam", "adamw", "sgd")  # probe.optim
L2_OPTIMIZERS = ("adam", "sgd")  # their weight_decay is the gradient of the L2 penalty weight_decay/2·‖W‖²
TRAINING_PRECISIONS = ("auto", "fp32", "bf16")  # probe.precision: what each means, how auto chooses

_NONNEG = Interval(float, 0, None, "left")

TRAINER_PARAMS: dict[str, list] = {
    "head": [Name("head", lambda: list(HEADS))],
    "loss": [Name("loss", lambda: list(LOSSES))],
    "cbar": [Interval(float, 0, MAX_CBAR, "right")],
    "p": [Interval(float, 1, MAX_P, "both"), None],  # below 1 no norm: 1024-d features' ‖φ‖_0.1² overflowed
    "lam": [Interval(float, 0, MAX_LAM, "both")],
    "adapter": [Name("adapter", lambda: list(ADAPTERS)), None],
    "r2_mode": [Options(R2_MODES)],
    "lr": [Interval(float, 0, MAX_LR, "right")],
    "weight_decay": [Interval(float, 0, MAX_WEIGHT_DECAY, "both")],
    "epochs": [Interval(int, 1, MAX_EPOCHS)],
    "batch_size": [Interval(int, 1, MAX_BATCH_SIZE), None],
    "optimizer": [Options(OPTIMIZERS)],
    "warmup_epochs": [Interval(int, 0, MAX_EPOCHS)],
    "device": [Device()],
    "precision": [Options(TRAINING_PRECISIONS)],
    "random_state": [Interval(int, 0, MAX_SEED)],
    "momentum": [Interval(float, 0, 1, "left")],
    "head_options": [Instance((dict,), "a dict of head options"), None],
    "loss_options": [Instance((dict,), "a dict of loss options"), None],
    "adapter_rank": [Interval(int, 1, MAX_ADAPTER_RANK), None],
    "sm_weight": [Interval(float, 0, MAX_LAM, "both")],
    "zc_weight": [Interval(float, 0, MAX_LAM, "both")],
    "ema_decay": [Interval(float, 0, 1, "left")],
    "rep_margin_samples": [Interval(int, 2, None)],
    "tol": [_NONNEG, None],
    "n_iter_no_change": [Interval(int, 1, MAX_EPOCHS)],
    "anneal_epochs": [Interval(int, 0, MAX_EPOCHS)],
    "progress": [Instance((callable,), "a callable progress(epoch, epochs)"), None],
    "progress_bar": [Boolean()],
}


def check_trainer_params(params: dict[str, Any]) -> None:
    """Check trainer parameters (any subset of ``TRAINER_PARAMS``) and the rules between them.

    Raises ValueError naming the parameter, the value and what is accepted (head and loss options: their
    registry declarations, ``probe.registry``).
    """
    for name, value in params.items():
        check(name, value, TRAINER_PARAMS[name])
    epochs, warmup = params.get("epochs"), params.get("warmup_epochs")
    if epochs is not None and warmup and warmup >= epochs:
        raise ValueError(f"warmup_epochs must be an integer in [0, epochs={epochs}), got {warmup!r}.")
    if params.get("head") is not None and params.get("head_options") is not None:
        check_options(get_head_spec(params["head"]), params["head_options"], "head", "head_options")
    if params.get("loss") is None:
        return
    spec = get_loss_spec(params["loss"])
    if params.get("loss_options") is not None:
        check_options(spec, params["loss_options"], "loss", "loss_options")
    if (params.get("lam") or 0) > 0 and "adapter" in params and params["adapter"] is None:
        raise ValueError(
            f"lam={params['lam']} needs adapter='linear', 'lowrank' or 'mlp': the representation margin ℓ_s̄ has "
            "no gradient on frozen features, so it only acts through a trainable adapter (adapter=).")
    if spec.input == "cosine" and params.get("head", "cosine") != "cosine":
        raise ValueError(f"loss {spec.name!r} works on normalised features and prototypes and requires "
                         f"head='cosine', got head={params['head']!r}.")
