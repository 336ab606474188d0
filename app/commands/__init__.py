"""The ``mr2probe`` subcommands (one module each: ``NAME``, ``HELP``, ``add_arguments``, ``run``) and what they share."""
from __future__ import annotations

import shutil
import sys


def terminal_width(default: int) -> int:
    """Columns for a terminal table: the terminal's when stdout is one and it is wider than ``default`` (class names
    and numbers were cut at a fixed 120 columns on a 200-column terminal), else ``default`` (pipes, files)."""
    if not sys.stdout.isatty():
        return default
    return max(default, shutil.get_terminal_size((default, 24)).columns)
