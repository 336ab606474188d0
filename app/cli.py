"""The `mr2probe` command line: one sub-command per module in `app.commands`.

Each command module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
adding a command is one entry in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# name -> module under app.commands (imported lazily so `mr2probe --help` stays fast).
COMMANDS: dict[str, str] = {
    "extract": "extract",
    "train": "train",
    "compare": "compare",
    "report": "report",
    "failures": "failures",
    "serve": "serve",
    "demo": "demo",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="mr2probe",
        description="Linear probes on cached foundation-model features that report and reduce "
        "class-wise accuracy disparity (MR²).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules: dict[str, object] = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f".commands.{module_name}", package=__package__)
        modules[name] = module
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(modules[args.command].run(args) or 0)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        # Caller mistakes: one clear line, no stack trace.
        print(f"mr2probe {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
