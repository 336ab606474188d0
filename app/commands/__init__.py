"""The ``mr2probe`` subcommands (one module each: ``NAME``, ``HELP``, ``add_arguments``, ``run``) and what they
share."""
from __future__ import annotations

import os
import shutil
import sys


def terminal_width(default: int) -> int:
    """Columns for a terminal table: ``COLUMNS`` where it is set (a pipe too: `COLUMNS=220 mr2probe report ... |
    less` was cut at 120; a scale round), else the terminal's when stdout is one, never below ``default`` (class
    names and numbers were cut at a fixed 120 columns on a 200-column terminal); else ``default`` (pipes, files)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return max(default, min(int(columns), 1000))
    if not sys.stdout.isatty():
        return default
    return max(default, shutil.get_terminal_size((default, 24)).columns)


def same_file(path, other) -> bool:
    """Whether two resolved paths name one file: the same path, or a hard link to it (an attack round's way past
    a comparison of paths alone)."""
    return path == other or (path.is_file() and other.is_file() and os.path.samefile(path, other))


def share(p: float) -> str:
    """A probability in six columns: one decimal of a per cent, "<0.1%" below (the order is the exact values'), as
    `mr2probe failures` and `mr2probe label-issues` print p(label) and the predicted class's probability."""
    return f"{p:6.1%}" if p >= 0.0005 else " <0.1%"


def run_folder(run):
    """The resolved folder of a run given on the command line: the folder, or the folder of its report.json."""
    from pathlib import Path

    folder = Path(run).resolve()
    return folder.parent if folder.is_file() else folder  # a run given as its report.json


def check_out_file(out, example: str) -> None:
    """Before any work: ``--out`` must name a file in an existing folder (``example``: a file name to suggest).
    report --out FOLDER ended in '[Errno 21] Is a directory' after its work, where predict named the problem (a
    README round). Raises ValueError."""
    from pathlib import Path

    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give a file name, e.g. {path / example}")
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(f"--out {path}: {path.parent} is a file, not a folder")
    if not path.parent.is_dir():
        raise ValueError(f"--out {path}: the folder {path.parent} does not exist")


def check_out_apart(out, *, runs=(), inputs=()) -> None:
    """Refuse, before any work, an ``--out`` that is one of the command's ``inputs`` (a feature cache it reads) or
    one of the files of the run directories ``runs`` (``probe.report.write_run``'s): predict, report and compare
    wrote their output over the run's report.json or head, or over the cache they read (found by an outside attack
    round). Raises ValueError."""
    from pathlib import Path

    from probe.deploy import PROBE_FILES
    from probe.predictions import PREDICTIONS_FILE
    from probe.seen import SEEN_FILE

    run_files = {*PROBE_FILES, "per_class.csv", PREDICTIONS_FILE, SEEN_FILE}

    target = Path(out).resolve()
    for path in inputs:
        if same_file(Path(path).resolve(), target):
            raise ValueError(f"--out {out} is the file this command reads; write to another file.")
    for run in runs:
        folder = run_folder(run)
        for name in run_files:
            if same_file(folder / name, target):
                raise ValueError(f"--out {out} is the run's own {name}; write to another file.")
