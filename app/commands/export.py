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


def run(args: argparse.Namespace) -> int:
    from probe.deploy import RunProbe
    from probe.onnx_export import export_onnx

    check_out_file(args.out, "probe.onnx")
    check_out_apart(args.out, runs=[args.run_dir])
    # a finished run whose probe files read as predict reads them: a damaged head.safetensors or head.json ended
    # in safetensors' (or an AttributeError's) traceback, or in 'error: classes'
    probe = RunProbe.load(args.run_dir)
    features = probe.features.model_dump(mode="json") if probe.features is not None else None
    path = export_onnx(args.run_dir, args.out, features)
    print(f"wrote {path}: input 'features' (n, d) float32; outputs 'probabilities' and 'logits' "
          f"(n, {len(probe.class_names)}), columns in the class order of its metadata's class_names")
    return 0
