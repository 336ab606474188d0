"""The head, loss and adapter registries as data: names, options (default, type and bounds), p defaults. Torch-free.

Each entry is a frozen spec; the module that builds the thing (``probe.heads``, ``probe.losses``,
``probe.adapters``) looks its class up by ``spec.factory`` (a class name in that module) and passes ``spec.args``
plus the options. :class:`probe.ProbeConfig` validates a request against these same specs without importing torch,
so a head's default p, an option's default and its bounds are written only here.

Adding a loss (or a head, an adapter):

1. One :class:`LossSpec` entry in ``LOSSES``: its ``summary`` says what it computes, its options their defaults and
   bounds, ``needs`` (a kind in ``NEEDS``) and ``input`` where its margins come from and what it is computed on.
   An option of K numbers is ``Option(..., per_class=True)``; the one the data fills (the training priors, a
   reference run's validation error) is the ``Need.option`` of its ``needs``. A new kind of ``needs`` is a
   :class:`Need` in ``NEEDS`` (does γ use c̄, does it come from a class statistic, which option carries it).
2. Its class in ``probe/losses.py``, a ``ProbeLoss`` built by ``create_loss`` alone: ``needs`` and ``input`` are
   read from the spec it attaches (``loss.spec``), never set on the class.
3. ``python -m probe.registry`` prints the README's table "Heads, losses and adapters" (names, formulas, options,
   defaults and bounds) to paste in its place, and the README's paragraph "Losses (``--loss``, ...)" in "Command
   line" names it: ``tests/test_docs.py`` fails while either is stale.
4. A test of the loss's exact value in ``tests/probe/test_losses.py``; where it cannot be built from its defaults
   alone (a per-class option the trainer or run fills), that option's value in ``REQUIRED`` of
   ``tests/probe/test_registry_contract.py`` (the contract tests, over every loss and head, fail without it).
5. Optionally a method in ``bench/disparity.py``'s ``METHODS``, to compare it with ERM and MR² on the benchmark.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .constraints import Boolean, Interval, Numbers, check

__all__ = ["Option", "Need", "HeadSpec", "LossSpec", "AdapterSpec", "HEADS", "LOSSES", "ADAPTERS", "NEEDS",
           "INPUTS", "PER_CLASS_OPTIONS", "get_head_spec", "get_loss_spec", "get_adapter_spec", "check_options"]


@dataclass(frozen=True)
class Need:
    """A kind of ``needs``: the class statistic a loss's margins γ come from, and what follows from it where the
    config and the trainer read it (not a list of names at each place: a maintainer round found one there)."""

    name: str
    # γ is built with the mean margin c̄ (γ_k = c̄, or normalised to mean c̄): c̄ is selected on validation when not
    # fixed (probe.config), and is no hyper-parameter of the loss otherwise
    uses_cbar: bool = False
    # γ comes from a statistic of the training features of every class (r_k², ‖s_k‖²): each class needs training
    # samples, and with an adapter or an EMA γ moves with the batches (probe.trainer)
    statistic: bool = False
    # the per-class option (Option.per_class) that carries the statistic, filled from the data when the caller
    # leaves it unset; every loss with this ``needs`` declares it (LossSpec.__post_init__)
    option: str | None = None


NEEDS: dict[str, Need] = {need.name: need for need in [
    Need("none"),
    Need("cbar", uses_cbar=True),
    Need("r2", uses_cbar=True, statistic=True),
    Need("spread", uses_cbar=True, statistic=True),
    # γ ∝ (e_k + ε)^a with mean c̄ (probe.stats.margins_from_error), e_k filled by probe.run from the reference run
    Need("val_error", uses_cbar=True, option="val_error"),
    # no γ: the loss shifts or margins its logits by the priors itself, filled by the trainer from the training
    # class frequencies
    Need("priors", option="priors"),
]}
INPUTS = ("logits", "cosine")


@dataclass(frozen=True)
class Option:
    """One option of a registry entry: its default and what it accepts (a :mod:`probe.constraints` list)."""

    default: Any
    accepts: tuple = ()
    # K numbers, one per class (priors, val_error): the data's class count checks their length (probe.splits), and the
    # report and the divergence message, which list a run's settings, leave them out
    per_class: bool = False

    def check(self, owner: str, name: str, value: Any) -> Any:
        """``value`` if accepted (None keeps the default); ValueError naming ``owner``'s option otherwise."""
        if value is None or not self.accepts:
            return value
        try:
            return check(name, value, list(self.accepts))
        except ValueError as err:
            raise ValueError(f"{owner} option {err}") from None


def _options_of(options: dict[str, Option]) -> dict[str, Any]:
    return {name: opt.default for name, opt in options.items()}


@dataclass(frozen=True)
class HeadSpec:
    """A head: the class ``factory`` in probe.heads, its options, the default p of r_k² = mean ‖φ‖_p², and whether
    its logits ignore the norm of its weight rows (``scale_invariant``)."""

    name: str
    factory: str
    options: dict[str, Option] = field(default_factory=dict)
    default_p: float = 2.0
    summary: str = ""
    # Its logits do not change when a weight row is scaled (cosine): an L2 penalty on the weights regularises
    # nothing there, it only shrinks their norm (probe.config.default_grids).
    scale_invariant: bool = False

    @property
    def defaults(self) -> dict[str, Any]:
        return _options_of(self.options)


@dataclass(frozen=True)
class LossSpec:
    """A loss: the class ``factory`` in probe.losses (called with ``args`` and the options), its options, which
    class statistic its margins γ come from (``needs``) and what it is computed on (``input``)."""

    name: str
    factory: str
    options: dict[str, Option] = field(default_factory=dict)
    needs: str = "none"
    input: str = "logits"
    summary: str = ""
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a misspelt ``needs`` read as "none" and the loss lost its margins
        if self.needs not in NEEDS or self.input not in INPUTS:
            raise ValueError(f"loss {self.name!r}: needs must be one of {tuple(NEEDS)} and input one of {INPUTS}, got "
                             f"{self.needs!r} and {self.input!r}.")
        option = NEEDS[self.needs].option
        if option is not None and not (option in self.options and self.options[option].per_class):
            raise ValueError(f"loss {self.name!r} needs {self.needs!r}: it must declare the per-class option "
                             f"{option!r} (Option(..., per_class=True)) that the data fills.")

    @property
    def defaults(self) -> dict[str, Any]:
        return _options_of(self.options)


@dataclass(frozen=True)
class AdapterSpec:
    """An adapter: the class ``factory`` in probe.adapters and whether it takes a rank."""

    name: str
    factory: str
    options: dict[str, Option] = field(default_factory=dict)
    summary: str = ""

    @property
    def defaults(self) -> dict[str, Any]:
        return _options_of(self.options)


# Loss and head options are bounded far beyond any useful setting (a logit scale of 16–64, a focal γ of 0–5, ...)
# so that no request trains on infinities or overflows: the README's table "Heads, losses and adapters" lists them
# (markdown_table).
MAX_SCALE = 1000.0            # logit scale s of cosine heads and losses
MAX_OPTION = 100.0            # sharpness, power, focal γ, group-DRO η, logit-adjustment |τ|, LDAM margin
_POSITIVE = Interval(float, 0, MAX_OPTION, "right")
_NONNEG = Interval(float, 0, MAX_OPTION, "both")
_SCALE = (Interval(float, 0, MAX_SCALE, "right"),)
_SHARPNESS = Option(1.0, (_NONNEG,))
# Class frequencies (or counts) of the training set: the trainer fills this option of a loss whose ``needs`` is
# "priors" (logit_adjust, ldam) from the training counts when the caller leaves it unset (NEEDS["priors"].option).
_PRIORS = Option(None, (Numbers(Interval(float, 0, None, "left")),), per_class=True)

HEADS: dict[str, HeadSpec] = {spec.name: spec for spec in [
    HeadSpec("linear", "LinearHead", {"bias": Option(True, (Boolean(),))}, 2.0, "z = Wφ + b"),
    HeadSpec("cosine", "CosineHead",
             {"logit_scale": Option(16.0, _SCALE), "learnable_scale": Option(True, (Boolean(),))}, 3.0,
             "z = s·cos(w_k, φ), features and weights L2-normalised", scale_invariant=True),
]}

LOSSES: dict[str, LossSpec] = {spec.name: spec for spec in [
    LossSpec("ce", "MarginCrossEntropy", {}, "none", "logits", "cross-entropy (ERM): −log softmax(z)_y", {"source": "none"}),
    LossSpec("uniform", "MarginCrossEntropy", {}, "cbar", "logits",
             "ℓ_γ,ce = −log softmax(z / γ_y)_y with γ_k = c̄ for every class (MR² ablation b)", {"source": "cbar"}),
    LossSpec("mr2", "MarginCrossEntropy", {"sharpness": _SHARPNESS}, "r2", "logits",
             "ℓ_γ,ce with γ_k = c̄·K·r_k^{2a/3} / Σ_j r_j^{2a/3}, r_k² = mean ‖φ‖_p² of class k (MR², the paper: a = sharpness = 1)", {"source": "r2"}),
    LossSpec("mr2_spread", "MarginCrossEntropy", {"sharpness": _SHARPNESS}, "spread", "logits",
             "ℓ_γ,ce with γ_k ∝ (‖s_k‖²)^{a/3}, ‖s_k‖² the within-class spread mean ‖φ − μ_k‖² (a = sharpness)", {"source": "spread"}),
    LossSpec("mr2_valerr", "MarginCrossEntropy",
             {"val_error": Option(None, (Numbers(Interval(float, 0, 1)),), per_class=True),
              "power": Option(1.0, (_NONNEG,)),
              "eps": Option(0.01, (Interval(float, 0, 1, "right"),))}, "val_error", "logits",
             "ℓ_γ,ce with γ_k ∝ (e_k + ε)^a (mean c̄), e_k the reference run's per-class validation error, a = power",
             {"source": "val_error"}),
    LossSpec("focal", "FocalLoss", {"gamma_focal": Option(2.0, (_NONNEG,))}, "none",
             "logits", "focal loss −(1 − p_y)^γ log p_y, γ = gamma_focal (Lin et al., 2017)"),
    LossSpec("group_dro", "GroupDROLoss", {"eta": Option(0.01, (_POSITIVE,))},
             "none", "logits", "online group DRO, classes as groups: Σ_k q_k·L_k, L_k the batch's mean CE of class k, q_k ∝ q_k·exp(η·L_k) "
             "at each step (Sagawa et al., 2020)"),
    LossSpec("logit_adjust", "LogitAdjustedLoss",
             {"tau": Option(1.0, (Interval(float, -MAX_OPTION, MAX_OPTION),)),
              "priors": _PRIORS}, "priors", "logits",
             "logit-adjusted CE: −log softmax(z + τ·log π)_y, π the training class frequencies unless priors are given "
             "(Menon et al., 2021)"),
    # On the head's logits, any head, s = 1 by default: the authors apply it to cosines with a fixed s = 30, but
    # on cosines with a fixed s (16, as cosface) it scored 44.8 % against ERM's 78.2 % on digits.h5 with a
    # long-tailed train split (the cosine head's own learnt scale reaches about 80 there); on the logits 79.1 %
    # (linear head), 80.9 % with max_margin selected, 79.9 % (cosine head, ERM 79.6 %).
    LossSpec("ldam", "LDAMLoss", {"scale": Option(1.0, _SCALE),
                                  "max_margin": Option(0.5, (Interval(float, 0, MAX_OPTION),)),
                                  "priors": _PRIORS}, "priors", "logits",
             "LDAM: CE of s·(z_j − Δ_y·[j = y]), Δ_k = C / n_k^{1/4} with C such that max_k Δ_k = max_margin, "
             "n_k the training class counts unless priors are given (Cao et al., 2019)"),
    LossSpec("label_smoothing", "LabelSmoothingLoss", {"smoothing": Option(0.1, (Interval(float, 0, 1, "left"),))},
             "none", "logits", "cross-entropy with label smoothing ε: (1 − ε)·CE + ε·mean_k(−log p_k) (Szegedy et al., 2016)"),
    LossSpec("lm_softmax", "LMSoftmaxLoss", {"scale": Option(16.0, _SCALE)}, "none", "cosine",
             "LM-Softmax −(1/s)·log[exp(s·cos θ_y) / Σ_{j≠y} exp(s·cos θ_j)] (Zhou et al., 2022); needs head='cosine'"),
    LossSpec("cosface", "CosFaceLoss", {"scale": Option(16.0, _SCALE),
                                        "margin": Option(0.35, (Interval(float, -2, 2),))}, "none", "cosine",
             "CosFace: CE of s·(cos θ_j − m·[j = y]) (Wang et al., 2018); needs head='cosine'"),
    LossSpec("arcface", "ArcFaceLoss", {"scale": Option(16.0, _SCALE),
                                        "margin": Option(0.5, (Interval(float, 0, math.pi / 2, "left"),))},
             "none", "cosine", "ArcFace: CE of s·cos θ_j with θ_y + m for the true class (Deng et al., 2019); needs head='cosine'"),
]}

# The loss options that take K numbers, one per class (Option.per_class: the priors, a reference run's validation
# error): on the command line NAME=V1,V2,... is such an option's one list of values, where it is the values of any
# other option to select from on val (app.commands.train.parse_loss_options).
PER_CLASS_OPTIONS = frozenset(name for spec in LOSSES.values() for name, opt in spec.options.items() if opt.per_class)

ADAPTERS: dict[str, AdapterSpec] = {spec.name: spec for spec in [
    AdapterSpec("linear", "ResidualLinearAdapter", {}, "φ + Aφ, A (d×d) initialised to 0"),
    AdapterSpec("lowrank", "LowRankAdapter", {"rank": Option(None)}, "φ + UVφ, rank r = adapter_rank in [1, d] (default min(64, d)), U initialised to 0"),
    AdapterSpec("mlp", "BottleneckMLPAdapter", {"rank": Option(None)},
                "φ + U·GELU(Vφ + b), bottleneck width r = adapter_rank in [1, d] (default min(128, d)), "
                "U initialised to 0"),
]}


def _lookup(registry: dict, kind: str, name: str):
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise KeyError(f"Unknown {kind} {name!r}; available: {', '.join(registry)}.") from None


def get_head_spec(name: str) -> HeadSpec:
    """The registry entry of head ``name``; KeyError naming the accepted names otherwise."""
    return _lookup(HEADS, "head", name)


def get_loss_spec(name: str) -> LossSpec:
    """The registry entry of loss ``name``; KeyError naming the accepted names otherwise."""
    return _lookup(LOSSES, "loss", name)


def get_adapter_spec(name: str) -> AdapterSpec:
    """The registry entry of adapter ``name``; KeyError naming the accepted names otherwise."""
    return _lookup(ADAPTERS, "adapter", name)


def check_options(spec: HeadSpec | LossSpec | AdapterSpec, options: dict | None, kind: str,
                  field: str | None = None) -> dict[str, Any]:
    """``options`` merged over ``spec``'s defaults (None values dropped), each checked against its declaration.

    Raises TypeError for an option the entry does not accept (ValueError naming ``field`` when the options come
    from a request field such as ``loss_options``), and ValueError naming the option, the value and the bounds for
    a bad value: ``loss 'group_dro' option eta must be > 0, got -1.``
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(spec.options))
    accepted = ", ".join(spec.options) or "none"
    if unknown and field is not None:
        raise ValueError(f"Unknown {field} {some(unknown)} for {kind} {spec.name!r}; accepted: {accepted}.")
    if unknown:
        raise TypeError(f"Unknown option(s) {some(unknown, str)} for {kind} {spec.name!r}; accepted: {accepted}.")
    for name, value in options.items():
        spec.options[name].check(f"{kind} {spec.name!r}", name, value)
    return {**spec.defaults, **{k: v for k, v in options.items() if v is not None}}


def some(names: list, show=repr, shown: int = 5) -> str:
    """The first ``shown`` of ``names`` for a message, and how many there are in all beyond that: a request with
    30,000 unknown keys gets a short answer, not all of them back."""
    text = ", ".join(show(name) for name in names[:shown])
    return text + (f", ... ({len(names):,} in all)" if len(names) > shown else "")


def _options_text(options: dict[str, Option]) -> str:
    """``name = default (accepts)`` of each option, for :func:`markdown_table`."""
    from .constraints import describe

    shown = {name: opt for name, opt in options.items() if opt.accepts}  # an adapter's rank: the request's adapter_rank
    return "; ".join(f"`{name}` = {'—' if opt.default is None else opt.default} ({describe(list(opt.accepts))})"
                     for name, opt in shown.items()) or "—"


def markdown_table() -> str:
    """The heads, losses and adapters as the README's table "Heads, losses and adapters": name, what each computes
    (``summary``) and its options with their defaults and bounds, every word from the specs above (a maintainer
    round found the README's copies of the bounds stale and no formula for most losses)."""
    rows = [("head", name, spec.summary + f"; p = {spec.default_p:g}", spec.options) for name, spec in HEADS.items()]
    rows += [("loss", name, spec.summary, spec.options) for name, spec in LOSSES.items()]
    rows += [("adapter", name, spec.summary, spec.options) for name, spec in ADAPTERS.items()]
    lines = ["| kind | name | what it computes | options: default (accepts) |", "| --- | --- | --- | --- |"]
    lines += [f"| {kind} | `{name}` | {summary} | {_options_text(options)} |" for kind, name, summary, options in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
