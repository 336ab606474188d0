"""`mr2probe export`: a run's shipped probe as one ONNX graph (``probe.onnx_export``)."""
from __future__ import annotations

import argparse

from . import add_run_argument, check_out_apart, check_out_file

HELP = "write a run's shipped probe (first seed, with its post-hoc bias and temperature) as one ONNX graph"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)
    parser.add_argument("--out", required=True, metavar="FILE.onnx",
                        help="the ONNX file to write: input 'features' (n, d) float32, outputs 'probabilities' and "
                        "'logits' (n, K); the class names and the run's features in its metadata")


def _export(args: argparse.Namespace):
    """The run's probe, loaded as predict loads it (a damaged head.safetensors or head.json ended in safetensors', or
    an AttributeError's, traceback, or in 'error: classes'), and the path of its graph written to --out."""
    from probe.deploy import RunProbe
    from probe.onnx_export import export_onnx

    probe = RunProbe.load(args.run_dir)
    features = probe.features.model_dump(mode="json") if probe.features is not None else None
    return probe, export_onnx(args.run_dir, args.out, features)


def run(args: argparse.Namespace) -> int:
    from probe.rundir import read_run

    check_out_file(args.out, "probe.onnx")
    check_out_apart(args.out, runs=[args.run_dir])
    # the graph and the features in its metadata, of one run: a train --force that moved its run in between mixed
    # the new run's head with the old run's features
    probe, path = read_run(args.run_dir, lambda: _export(args))
    print(f"wrote {path}: input 'features' (n, d) float32; outputs 'probabilities' and 'logits' "
          f"(n, {len(probe.class_names)}), columns in the class order of its metadata's class_names")
    return 0
