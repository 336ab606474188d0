"""The `mr2probe` command line: one sub-command per module in `app.commands`.

Each command module exposes ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; adding a command is one
entry in ``COMMANDS``, the module's name, which is the command's (an underscore a hyphen: label_issues is label-issues).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .threads import MAX_THREADS, check_threads, limit_threads

# the sub-commands, each a module under app.commands of its name, in `mr2probe --help`'s order
# (a module label_issues is the command label-issues)
COMMANDS: tuple[str, ...] = ("extract", "train", "compare", "report", "failures", "label_issues", "predict", "export",
                             "serve", "demo", "backup")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``, a scheduler's stop), raised in the main thread as Ctrl-C's KeyboardInterrupt is, so
    that the command's clean-up runs: it ended the process at once, silently (exit 143), its temporary files left
    and a backup half copied (a failure round)."""


def _terminate(signum, frame) -> NoReturn:
    raise Terminated


def _command_with_sigterm(run, args) -> int:
    """``run(args)`` with SIGTERM raising :class:`Terminated`, restored after; `serve` and `demo`, whose server has
    its own handling, and a call from another thread (no handler can be set there) run as they are."""
    if args.command in ("serve", "demo") or threading.current_thread() is not threading.main_thread():
        return int(run(args) or 0)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(run(args) or 0)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _thread_count(text: str) -> int:
    """``--threads``'s text as an integer in 1..MAX_THREADS (``app.threads.check_threads``), checked once parsed:
    as an argparse type, its refusal came after argparse's usage lines."""
    try:
        value: object = int(text)
    except ValueError:
        value = text
    return check_threads(value, "--threads")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="mr2probe",
        description="Linear probes on cached foundation-model features that report and reduce "
        "class-wise accuracy disparity (MR²).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    threads_help = (f"CPU threads for the command's numerical work (torch, BLAS; 1..{MAX_THREADS}; default: one per "
                    "core; the service: MR2PROBE_THREADS)")
    parser.add_argument("--threads", default=None, metavar="N", help=threads_help)
    # also after the command (`mr2probe train --threads 1 ...` was "unrecognized arguments"; a new-user round); not
    # set there, the value before the command stands
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--threads", default=argparse.SUPPRESS, metavar="N", help=threads_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules: dict[str, object] = {}
    for name in COMMANDS:
        module = importlib.import_module(f".commands.{name}", package=__package__)
        command = name.replace("_", "-")
        modules[command] = module
        command_parser = sub.add_parser(command, help=module.HELP, description=module.HELP, parents=[after])
        module.add_arguments(command_parser)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser, modules = build_parser()  # every command's module imported: pydantic, numpy, ... (~0.2 s)
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C at once: one line too, not the trace of an import
        print("mr2probe: interrupted", file=sys.stderr)
        return 130
    # the command line as given, which a run records to be run again (report.environment.command)
    args.argv = ["mr2probe", *(sys.argv[1:] if argv is None else argv)]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.threads is not None:
        try:
            args.threads = _thread_count(args.threads)
        except ValueError as exc:
            print(f"mr2probe {args.command}: error: {exc}", file=sys.stderr)
            return 2
        limit_threads(args.threads)
    try:
        return _command_with_sigterm(modules[args.command].run, args)
    except BrokenPipeError:
        # the reader of stdout left (`mr2probe failures ... --json | head`): done, quietly, as head expects; stdout
        # goes to /dev/null so that the interpreter's flush at exit does not fail again (Python's signal docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command a pipe closed
    except KeyboardInterrupt as exc:
        # Ctrl-C (or SIGTERM, Terminated): one line, not the trace of wherever the main process was waiting (45
        # lines out of the DataLoader in an extraction, which then read as a crash; a reproducibility audit). An
        # extraction keeps its encoded batches in CACHE.partial and the same command resumes from them (README,
        # "HDF5 feature cache").
        resume = "; the images encoded so far are kept: the same command resumes" if args.command == "extract" else ""
        if isinstance(exc, Terminated):
            print(f"mr2probe {args.command}: terminated (SIGTERM){resume}", file=sys.stderr)
            return 143  # 128 + SIGTERM
        print(f"mr2probe {args.command}: interrupted{resume}", file=sys.stderr)
        return 130  # 128 + SIGINT, what a shell reports for a command Ctrl-C stopped
    except (ValueError, KeyError, FileNotFoundError) as exc:
        # Caller mistakes: one clear line, no stack trace (a KeyError's str() is its message in quotes).
        message = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc
        print(f"mr2probe {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        # What the machine refuses (a folder or an unwritable file where a file goes, a full disk), an extraction
        # or a data directory that another process is running: one line too. Any other RuntimeError is a bug.
        if not (isinstance(exc, OSError) or _is_busy(exc)):
            raise
        print(f"mr2probe {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _is_busy(exc: BaseException) -> bool:
    """``feature_cache.ExtractionBusy``, ``app.datadir.DataDirBusy`` or ``probe.files.OutputBusy``, without
    importing feature_cache (and torch) to find out: an exception of a module not imported yet cannot have been
    raised."""
    busy = [getattr(sys.modules.get(module), name, None)
            for module, name in (("feature_cache.errors", "ExtractionBusy"), ("app.datadir", "DataDirBusy"),
                                 ("probe.files", "OutputBusy"))]
    return any(kind is not None and isinstance(exc, kind) for kind in busy)


def _teardown_needed() -> bool:
    """Whether ending the process needs the interpreter's finalisation: a live child process or non-daemon
    thread, an open HDF5 file, or an exit-time finaliser other than torch's own (a ``TemporaryDirectory``'s
    cleanup would be one)."""
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.active_children():
        return True
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return True
    h5py = sys.modules.get("h5py")
    if h5py is not None and h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        return True
    registry = getattr(weakref.finalize, "_registry", None)  # CPython's table of live finalisers
    if registry is None:
        return True
    return any(not getattr(info.func, "__module__", "").startswith("torch.") for info in registry.values())


def exit_process(code: int) -> NoReturn:
    """End the process with ``code``; without the interpreter's teardown when nothing needs it.

    Once a command has written its outputs, finalising a process that imported torch (freeing its objects,
    running ~150 ``torch.library`` finalisers) took 0.35–0.9 s of a 5–8 s ``mr2probe train`` on the 2.7k CIFAR-10
    cache (1 thread). So, after flushing stdout, stderr and the logging handlers, the process ends with
    ``os._exit`` unless :func:`_teardown_needed`; then with ``sys.exit``.
    """
    if _teardown_needed():
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`mr2probe ... | head`) or stream: nothing more to write
            pass
    os._exit(code)


def run() -> NoReturn:
    """The ``mr2probe`` console script: :func:`main` with the process's arguments, then :func:`exit_process`."""
    exit_process(main())


if __name__ == "__main__":
    run()
