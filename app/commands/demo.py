"""`mr2probe demo`: the main job on the embedded default data, then the dashboard on 127.0.0.1."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from feature_cache.defaults import ENCODER_HELP

from ..config import DEFAULT_PORT, MAX_PORT
from .serve import port_number
from .train import epochs_help

HELP = ("Extract effnet-lite0 features of CIFAR-10 (or Fashion-MNIST), train an ERM probe and the recommended "
        "disparity-aware probe (preset 'disparity'), print the disparity comparison and serve the dashboard on "
        "127.0.0.1.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true", help="use every image (default: a per-class subset)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data set, as `mr2probe extract --data` takes it: a folder or archive of class folders, "
                             "a CSV manifest or a Fashion-MNIST idx folder (default ../shared/data/cifar10-jpeg.zip, "
                             "then the idx folder /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--per-class", type=int, default=None, metavar="N",
                        help="images per class without --full (default 100; in each given split, or in all for a "
                             "data set without split folders)")
    parser.add_argument("--port", default=DEFAULT_PORT, help=f"dashboard port on 127.0.0.1, "
                        f"0..{MAX_PORT} (default {DEFAULT_PORT})")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="state directory (default MR2PROBE_DATA_DIR or ./.mr2probe)")
    parser.add_argument("--encoder", default=None, help=ENCODER_HELP)
    parser.add_argument("--epochs", type=int, default=None, help="probe " + epochs_help())
    parser.add_argument("--seeds", type=int, default=3, help="seeds per probe (default 3)")
    parser.add_argument("--no-serve", action="store_true", help="stop after printing the comparison")


def _progress_printer(stream=None):
    """The job's progress: one bar redrawn in place on a terminal; piped or redirected (``make demo | tee``),
    where each redraw was kept as a frame, one line per stage and per 10 % instead."""
    from ..status import ACTIVE

    stream = stream or sys.stdout
    width, in_place, last = 30, stream.isatty(), {"stage": None, "tenth": -1}
    room = 60  # a stage's characters beside the redrawn bar; a line of its own (piped) says it whole

    def show(job: dict) -> None:
        done, stage = job["progress"], job["stage"]
        if in_place:
            filled, cut = int(width * done), stage if len(stage) <= room else stage[:room - 1] + "…"
            stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * done:5.1f}%  {cut:<{room}}")
            if job["status"] not in ACTIVE:
                stream.write("\n")
        elif stage != last["stage"] or int(10 * done) > last["tenth"] or job["status"] not in ACTIVE:
            stream.write(f"{100 * done:5.1f}%  {stage}\n")
            last.update(stage=stage, tenth=int(10 * done))
        stream.flush()

    return show


def _check_numbers(args: argparse.Namespace) -> None:
    """--port, --seeds, --epochs and --per-class within the bounds `mr2probe serve`, `train` and `extract` check
    (one definition each), each refusal naming its flag, before the data set is read: they were refused by the
    pipeline job's pydantic report, naming `probes.0.seeds`, and --per-class 0 ran on the default 100 images per
    class."""
    from feature_cache.options import OPTION_CONSTRAINTS
    from probe.constraints import check
    from probe.params import TRAINER_PARAMS

    from .train import check_seed_count

    args.port = port_number(args.port)
    check_seed_count(args.seeds)
    if args.epochs is not None:
        check("--epochs", args.epochs, TRAINER_PARAMS["epochs"])
    if args.per_class is not None:  # extract's --max-per-class, in its words (feature_cache.options.check_options)
        check("--per-class", args.per_class, OPTION_CONSTRAINTS["max_per_class"])


def run(args: argparse.Namespace) -> int:
    from ..demo import DEFAULT_ENCODER, DEFAULT_PER_CLASS, comparison_table, demo_probes, find_demo_data, run_demo_job
    from ..main import create_app
    from ..datadir import lock_data_dir
    from .serve import build_settings, check_data_dir, check_start, serve

    if args.full and args.per_class is not None:
        raise ValueError("--full and --per-class exclude each other")
    _check_numbers(args)
    data = find_demo_data(args.data)
    per_class = None if args.full else (args.per_class or DEFAULT_PER_CLASS)
    overrides = {"host": "127.0.0.1", "port": args.port, "data_root": data.parent}
    if getattr(args, "threads", None) is not None:  # mr2probe --threads N demo: the flag wins over MR2PROBE_THREADS
        overrides["threads"] = args.threads
    if args.data_dir is not None:  # else MR2PROBE_DATA_DIR, else Settings' ./.mr2probe
        overrides["data_dir"] = args.data_dir
    settings = build_settings(**overrides)
    if not args.no_serve:  # a busy port or an open host refused now, not after the job's minutes
        check_start(settings)
    else:  # a data directory a server runs, before its database is opened (an operator round); one that is a file
        check_data_dir(settings.data_dir)  # named as serve names it ('[Errno 17] File exists' with --no-serve)
        lock_data_dir(settings.data_dir).close()
    encoder = args.encoder or DEFAULT_ENCODER
    print(f"mr2probe demo: {data} · encoder {encoder} · "
          f"{'all images' if per_class is None else f'{per_class} images per class (per given split)'} · "
          f"state in {settings.data_dir}")
    app = create_app(settings)
    # Keep the progress line readable: library INFO logs only with `mr2probe -v demo`.
    quiet = [] if getattr(args, "verbose", False) else [logging.getLogger(n) for n in ("app", "probe", "feature_cache")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        result = run_demo_job(app, data, max_per_class=per_class, encoder=encoder,
                              probes=demo_probes(epochs=args.epochs, seeds=args.seeds),
                              on_progress=_progress_printer())
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    print()
    print(comparison_table(app, result.base_run, result.other_run))
    url = f"http://127.0.0.1:{settings.port}/runs/{result.other_run}?compare={result.base_run}"
    if args.no_serve:  # nothing listens at the URL: say how to see the runs instead
        print(f"\nruns {result.base_run} (ERM) and {result.other_run} (the disparity preset) are in "
              f"{settings.data_dir}; `mr2probe serve --data-dir {settings.data_dir}` shows them, or "
              f"`mr2probe compare` their folders under {settings.runs_dir}.")
        return 0
    print(f"\ndisparity preset vs ERM dashboard: {url}")
    print("Serving the dashboard until Ctrl-C ...")
    serve(app, settings)
    return 0
