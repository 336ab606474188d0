"""`mr2probe train`: fit a probe on a feature cache, select on validation, write the run directory."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from probe.config import MAX_CV_FOLDS, MAX_SEEDS, MIN_CV_FOLDS
from probe.decision import MIN_VAL_PER_CLASS
from probe.metrics import OVERALL_METRICS
from probe.params import OPTIMIZERS, R2_MODES, TRAINING_PRECISIONS
from probe.registry import HEADS, LOSSES, PER_CLASS_OPTIONS

from . import same_file, terminal_width, unwritable

HELP = "train a linear / cosine probe on cached features and write report.json, per_class.csv and the head"


def _add_io_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", required=True, metavar="CACHE.h5", help="feature cache (mr2probe extract)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="run directory to write; one that already holds a run is refused unless --force")
    parser.add_argument("--force", action="store_true",
                        help="replace the run already in --out (its files go; the new run is written whole)")
    parser.add_argument("--drop-class", action="append", default=None, metavar="NAME",
                        help="leave this class's images out of every split (a class without test images, or not "
                        "wanted in the probe); repeatable")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_io_arguments(parser)
    parser.add_argument("--head", choices=list(HEADS), default=None,
                        help="classifier head (default: the cache's encoder default)")
    parser.add_argument("--preset", default=None,
                        help="recommended settings by name: disparity (the default disparity-aware method; "
                        "explicit options override it; see probe.PRESETS)")
    parser.add_argument("--loss", default=None, metavar="LOSS",
                        help=f"loss, ce (ERM) by default: {', '.join(LOSSES)} (the README's table 'Heads, losses and "
                        "adapters', or python -m probe.registry, says what each computes and its options)")
    parser.add_argument("--loss-option", action="append", default=None, metavar="NAME=V[,V...]",
                        help=f"a loss option, e.g. eta=0.01 for group_dro; several values (eta=0.003,0.01) are "
                        f"selected on val, but {' and '.join(sorted(PER_CLASS_OPTIONS))} take one per class; repeatable")
    parser.add_argument("--head-option", action="append", default=None, metavar="NAME=V",
                        help="a head option, e.g. learnable_scale=false or logit_scale=32 for the cosine head "
                        "(see probe.HEADS); repeatable")
    parser.add_argument("--cbar", type=float, default=None, help="mean margin c̄ (default: select from 1, 2, 3 on val)")
    parser.add_argument("--p", type=float, default=None,
                        help="exponent p of r_k² (default: the head's, probe.HEADS: 2 linear, 3 cosine)")
    parser.add_argument("--r2-mode", choices=R2_MODES, default=None,
                        help="class statistics r_k²: exact (default) or the paper's EMA over batches")
    parser.add_argument("--lambda", dest="lam", type=float, default=None,
                        help="weight λ of the representation margin ℓ_s̄ (needs --adapter; default: select on val)")
    parser.add_argument("--adapter", default=None,
                        help="trainable map before the head: linear (residual d×d), lowrank or mlp (bottleneck)")
    parser.add_argument("--adapter-rank", type=int, default=None,
                        help="rank (lowrank) or bottleneck width (mlp) of the adapter (default: the adapter's)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0); it is used for selection")
    parser.add_argument("--seeds", type=int, default=3, metavar="N", help="number of seeds: seed .. seed+N-1 (default 3)")
    from probe.config import L2_STRENGTHS  # torch-free

    parser.add_argument("--epochs", type=int, default=None, help=epochs_help())

    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                        help=f"optimiser (default: ProbeConfig's, {_config_default('optimizer')}: weight decay as an "
                        "L2 penalty; adamw: decoupled decay)")
    parser.add_argument("--lr", type=float, nargs="+", default=None,
                        help="learning rate(s) to select from on val (default: the optimiser's, "
                        "probe.config.default_grids)")
    parser.add_argument("--wd", type=float, nargs="+", default=None,
                        help="weight decay(s) to select from on val (default: the optimiser's; for adam and sgd the "
                        f"L2 strengths α / n_train, α in {', '.join(f'{a:g}' for a in L2_STRENGTHS)}: scikit-learn's "
                        "C = 1/α)")
    parser.add_argument("--tol", type=float, default=None,
                        help=f"stop a fit once its objective has not beaten its best by more than this for 5 epochs "
                        "near it (at most max(this, 5%% of the best) above; in cross-entropy units: lm_softmax "
                        f"compares this / its scale) (default: ProbeConfig's, {_config_default('tol')}); 0: all epochs")
    from probe.config import AUTO_BATCH_SIZE, AUTO_FULL_BATCH_ROWS  # torch-free, as _config_default

    batch_size = _config_default("batch_size")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"largest mini-batch (default: ProbeConfig's, {batch_size}; {batch_size} is full batch "
                        f"up to {AUTO_FULL_BATCH_ROWS} training rows, else {AUTO_BATCH_SIZE}; an epoch's batches "
                        "differ by at most one row; a training set of at most one batch is trained full-batch)")
    parser.add_argument("--select", choices=("overall", "hard"), default=None,
                        help="validation criterion: overall (default) or hard, the disparity-aware decision: a "
                        "setting replaces the reference (ERM) configuration only when the 95%% paired bootstrap "
                        "interval of its val hard-third gain is above 0 and that of its overall difference above "
                        "-MAX_OVERALL_DROP; otherwise the run is the reference configuration and says so")
    parser.add_argument("--max-overall-drop", type=float, default=None, metavar="POINTS",
                        help="percentage points of overall accuracy you will trade for the hard third with "
                        "--select hard / --preset disparity (default 0)")
    parser.add_argument("--overall-metric", choices=OVERALL_METRICS, default=None,
                        help=f"what 'overall' is where validation selects and decides (default: "
                        f"{_config_default('overall_metric')}): accuracy over the images, or balanced, the mean of "
                        "the per-class accuracies, for imbalanced classes that matter equally where the probe is used")
    parser.add_argument("--cv", type=int, default=None, metavar="K",
                        help=f"when val has fewer than {MIN_VAL_PER_CLASS} images in some class, select and group by "
                        "stratified K-fold cross-validation on train + val instead (default: ProbeConfig's, "
                        f"{_config_default('cv')}; 0: never; else {MIN_CV_FOLDS}..{MAX_CV_FOLDS})")
    parser.add_argument("--reference", default=None, metavar="RUN_DIR",
                        help="reference (ERM) run: its val per-class accuracy fixes the easy/medium/hard groups")
    _add_posthoc_arguments(parser)
    parser.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    parser.add_argument("--precision", choices=TRAINING_PRECISIONS, default=None,
                        help=f"training precision (default: {_config_default('precision')}): bf16 runs the matrix "
                        "products under bfloat16 autocast (float32 weights and loss); auto picks bf16 on a CPU with "
                        "native bfloat16 where it measured faster (wide products, large full batches, mini-batches "
                        "cast once: probe.precision), fp32 otherwise")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_posthoc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--posthoc-bias", action="store_true",
                        help="fit a per-class logit bias on val after training (the post-hoc baseline); each seed "
                        "applies it only when its effect out of sample (cross-fitting on val) is safe")
    parser.add_argument("--no-posthoc-guard", dest="posthoc_guard", action="store_false", default=None,
                        help="with --posthoc-bias: apply the bias to every seed without that check (the unguarded "
                        "baseline, checked on the images it was fitted on)")
    parser.add_argument("--temperature-scaling", action="store_true",
                        help="divide the shipped head's logits by one temperature fitted on val (by NLL) before the "
                        "softmax: probabilities fitted to val (predict --probabilities, the unsure flag), the same "
                        "predictions")


def epochs_help() -> str:
    """--epochs' help: what the automatic count is (probe.config.auto_epochs), from its own constants."""
    from probe.config import AUTO_BATCH_SIZE, AUTO_FULL_BATCH_ROWS, AUTO_MIN_STEPS, auto_epochs  # torch-free

    return (f"epochs per fit, at most (a fit ends sooner once its loss settles within tol; default: enough for "
            f"{AUTO_MIN_STEPS} optimiser steps: {auto_epochs(AUTO_FULL_BATCH_ROWS, None)} full-batch epochs up to "
            f"{AUTO_FULL_BATCH_ROWS} training rows, {auto_epochs(50_000, AUTO_BATCH_SIZE)} at 50,000 in batches of "
            f"{AUTO_BATCH_SIZE})")


def _config_default(name: str) -> Any:
    """The default of a ProbeConfig field: the help text quotes it instead of repeating it (one definition)."""
    from probe import ProbeConfig  # torch-free: probe imports its modules lazily

    return ProbeConfig.model_fields[name].default


def _assignments(items: list[str] | None, flag: str, usage: str, convert: Callable[[str], Any]):
    """``NAME=VALUE`` command-line items → ``(name, convert(value))``; a clear error naming ``flag`` otherwise."""
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            if not (sep and name):
                raise ValueError(item)
            yield name, convert(value)
        except ValueError:
            raise ValueError(f"{flag} expects {usage}, got {item!r}.") from None


def parse_loss_options(items: list[str] | None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """``["eta=0.01", "gamma_focal=1,2"]`` → fixed options ``{"eta": 0.01}`` and a grid ``{"gamma_focal": [1, 2]}``;
    a per-class option's values are its one list (``priors=1,2,3`` → ``{"priors": [1, 2, 3]}``): read as a grid,
    `--loss-option priors=...` was refused, "each >= 0, got 0.1", and no priors could be given on the command line."""
    fixed: dict[str, Any] = {}
    grid: dict[str, list[float]] = {}
    for name, numbers in _assignments(items, "--loss-option", "NAME=VALUE[,VALUE...] with numbers",
                                      lambda value: [float(v) for v in value.split(",")]):
        if name in PER_CLASS_OPTIONS:
            fixed[name] = numbers
        elif len(numbers) == 1:
            fixed[name] = numbers[0]
        else:
            grid[name] = numbers
    return fixed, grid


def _number_or_bool(value: str) -> float | bool:
    return value.lower() == "true" if value.lower() in ("true", "false") else float(value)


def parse_head_options(items: list[str] | None) -> dict[str, float | bool]:
    """``["learnable_scale=false", "logit_scale=32"]`` → ``{"learnable_scale": False, "logit_scale": 32.0}``."""
    return dict(_assignments(items, "--head-option", "NAME=VALUE with a number, true or false", _number_or_bool))


def check_seed_count(count: int) -> None:
    """``--seeds N`` in 1..MAX_SEEDS, checked before its list of seeds is built (10**20 seeds was a traceback; an
    attack round)."""
    if not 1 <= count <= MAX_SEEDS:
        raise ValueError(f"--seeds must be an integer in [1, {MAX_SEEDS}], got {count}.")


def build_config(args: argparse.Namespace, default_head: str | None):
    """ProbeConfig from the command-line arguments (unset options keep ProbeConfig's defaults; the head defaults
    to ``default_head``, the cache's), with the precedence of :func:`app.validation.resolve_probe_config`."""
    from ..validation import resolve_probe_config

    check_seed_count(args.seeds)
    loss_options, loss_options_grid = parse_loss_options(args.loss_option)
    fields = {
        "loss_options": loss_options or None,
        "loss_options_grid": loss_options_grid or None,
        "preset": args.preset,
        "head": args.head,
        "head_options": parse_head_options(args.head_option) or None,
        "loss": args.loss,
        "cbar": args.cbar,
        "p": args.p,
        "r2_mode": args.r2_mode,
        "lam": args.lam,
        "adapter": args.adapter,
        "adapter_rank": args.adapter_rank,
        "epochs": args.epochs,
        "lr_grid": args.lr,
        "wd_grid": args.wd,
        "optimizer": args.optimizer,
        "tol": args.tol,
        "batch_size": args.batch_size,
        "seeds": list(range(args.seed, args.seed + args.seeds)),
        "select": args.select,
        "max_overall_drop": args.max_overall_drop,
        "overall_metric": args.overall_metric,
        "cv": args.cv,
        "posthoc_bias": args.posthoc_bias or None,
        "posthoc_guard": args.posthoc_guard,
        "temperature_scaling": args.temperature_scaling or None,
        "device": args.device,
        "precision": args.precision,
        "drop_classes": args.drop_class,
    }
    config = resolve_probe_config({k: v for k, v in fields.items() if v is not None}, default_head)
    config.check_new_request()
    return config


def _check_out(args: argparse.Namespace) -> None:
    """Refuse, before any work, an ``--out`` that is the ``--reference`` run, or that holds a run without
    ``--force``: minutes of training (or the reference the new run is measured against) are not replaced by a
    typo. Paths are resolved first, and ``args.out`` becomes the folder checked: 'runs/erm/missing/..' is runs/erm,
    and a reference given as a link (or hard link) to its report.json is that run (an attack round's ways past)."""
    from pathlib import Path

    out = Path(args.out).resolve()
    mine = out / "report.json"
    if args.reference:
        reference = Path(args.reference).resolve()
        ref_report = reference if reference.is_file() else reference / "report.json"
        if ref_report.parent == out or same_file(ref_report, mine):
            raise ValueError(f"--out {args.out} is the --reference run: write the new run to another folder.")
    if mine.exists() and not args.force:
        raise ValueError(f"{args.out} already holds a run (report.json): pass --force to replace it, or "
                         "choose another --out.")
    problem = unwritable(out)  # found only once every fit had run ('/proc/x': minutes of training, then Errno 2)
    if problem is not None:
        raise ValueError(f"cannot write a run to {args.out}: {problem}; choose another --out.")
    args.out = str(out)  # written where it was checked, and named after that folder (not '..')


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from probe.rundir import INCOMING_DIR, recover_run, run_lock

    _check_out(args)
    with run_lock(args.out):  # a second train to this --out is refused (within MOVE_WAIT), naming this process
        try:  # before any fit: one that could not be finished was warned of, then failed the train's own move-in
            recover_run(args.out, strict=True)
        except OSError as exc:
            raise ValueError(f"cannot write a run to {args.out}: the replacement a killed writer left in "
                             f"{Path(args.out) / INCOMING_DIR} cannot be moved in ({exc.strerror or exc}); fix its "
                             "permissions, or choose another --out.") from None
        _check_out(args)  # again, under the lock: a run another train finished meanwhile is not replaced unasked
        return _train(args)


def _left_out(config: Any, names: list[str]) -> Any:
    """``config`` leaving out its ``drop_classes`` by their names in the cache (``probe.splits.dropped_names``: 'cat'
    is the class 'cat ' where no class is 'cat'), said on stderr with any name read so; its report then names them
    as the data set does, as the service's request stores them (app.validation)."""
    from probe.names import class_name, shown_name
    from probe.splits import dropped_index, dropped_names, kept_classes

    kept, dropped = kept_classes(config.drop_classes, names), dropped_names(config.drop_classes, names)
    taken = "".join(f"; {given!r} is the class {names[dropped_index(given, names)]!r}"
                    for given in config.drop_classes if class_name(given) not in names)
    print(f"left out: {', '.join(map(shown_name, dropped))} ({len(kept)} classes trained on{taken})", file=sys.stderr)
    return config.model_copy(update={"drop_classes": dropped})


def _train(args: argparse.Namespace) -> int:
    """:func:`run`'s work once --out is this process's."""
    from pydantic import ValidationError
    from tqdm import tqdm

    from feature_cache import open_cache
    from probe import format_report, load_report, run_probe
    from probe.report_text import LEAST_WIDTH, REPORT_WIDTH

    from ..validation import describe_invalid

    cache = open_cache(args.features)
    try:
        config = build_config(args, cache.default_head)
    except ValidationError as exc:
        raise ValueError(describe_invalid(exc)) from None
    reference = load_report(args.reference) if args.reference else None
    data, names, sources = cache.training_data(), list(cache.class_names), cache.training_sources()
    if config.drop_classes:  # checked here, before the progress bar: run_probe leaves them out
        config = _left_out(config, names)
    bar = tqdm(total=100, desc="train", unit="%", disable=args.no_progress, file=sys.stderr,
               bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}]")

    def progress(fraction: float, stage: str) -> None:
        # no redraw of its own: update() redraws at most every mininterval (set_description drew on every call,
        # one line per epoch of every fit: ~52 kB of stderr for a 2.5 s run at 2,700 rows)
        bar.set_description(stage, refresh=False)
        bar.update(100 * fraction - bar.n)

    try:
        run_probe(data, names, config, reference=reference, out_dir=args.out, progress=progress, sources=sources,
                  features=cache.provenance(str(args.features)), command=getattr(args, "argv", None),
                  contents=cache.training_digests(),
                  tune_allocator=True)  # a process of its own: keep freed memory (probe.allocator)
    finally:
        bar.close()
    print(format_report(load_report(args.out), width=terminal_width(REPORT_WIDTH, LEAST_WIDTH)))
    print(f"run written to {args.out}")
    return 0
