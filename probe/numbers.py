"""How every view writes a fraction: in per cent, or as a signed difference in points (torch-free).

The terminal, the exports, the selection's sentences, ``mr2probe predict`` and the comparisons each wrote their own
helper (five, with different handling of a missing score); they call these, naming the precision they show. And
how a CSV cell is written safe for spreadsheets (:func:`csv_cell`), and read back (:func:`csv_text`).
"""
from __future__ import annotations

import functools
import math
import re
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

import numpy as np

__all__ = ["percent", "signed_points", "is_missing", "fixed", "number_text", "interval_text", "csv_cell", "csv_text",
           "float32_text"]


def is_missing(x: float | None) -> bool:
    """Whether a score could not be computed: None (null in a report) or NaN."""
    return x is None or math.isnan(x)


# Enough digits for any finite float's (1.8e308 to 4.9e-324, then the decimals asked for): one context for every
# call of fixed (building it and the quantum on each call was a third of its time; 105,000 calls in an export of
# 5,000 classes). quantize only sets its flags, which nothing reads.
_FIXED_CONTEXT = Context(prec=400)


@functools.lru_cache(maxsize=None)
def _quantum(digits: int) -> Decimal:
    """1e-``digits``: the step :func:`fixed` rounds to."""
    return Decimal(1).scaleb(-digits)


def fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals as every view writes a number: rounded to 12 significant digits, then half
    away from zero, never ``-0.0``; the dashboard's ``Charts.fixed`` is the same rule. 67/80 and a mean of class
    accuracies (0.83749999…) printed 83.8 and 83.7 side by side (a dashboard round), and Python's ties to even
    against JavaScript's ties up printed 65/80 as 81.2 here and 81.3 % on the dashboard (a review)."""
    if not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": as format() wrote them
    rounded = Decimal(f"{abs(value):.12g}").quantize(_quantum(digits), rounding=ROUND_HALF_UP, context=_FIXED_CONTEXT)
    text = f"{rounded:f}"
    return "-" + text if value < 0 and rounded != 0 else text


def percent(x: float | None, digits: int = 2, absent: str = "—", unit: str = "") -> str:
    """``12.34`` from 0.1234 (``digits`` decimals, :func:`fixed`, then ``unit``); ``absent`` for a score that could
    not be computed (:func:`is_missing`)."""
    return absent if is_missing(x) else fixed(100 * x, digits) + unit


def signed_points(fraction: float | None, digits: int = 1, absent: str = "—") -> str:
    """``+2.1`` from 0.021: a signed difference in points (:func:`fixed`); one that rounds to zero reads ``+0.0``,
    never ``-0.0``; ``absent`` for one that could not be computed (:func:`is_missing`)."""
    if is_missing(fraction):
        return absent
    text = fixed(100 * fraction, digits)
    return text if text.startswith("-") else "+" + text


def number_text(x: float | None, fmt: str = ".3f") -> str:
    """``x`` in ``fmt``, "—" for None; fixed decimals (".3f") by the one rule of every view (:func:`fixed`: an F1 of
    0.8125 read 0.812 in the terminal and 0.813 on the dashboard; a review)."""
    if x is None:
        return "—"
    return fixed(x, int(fmt[1:-1])) if re.fullmatch(r"\.\d+f", fmt) else format(x, fmt)


def interval_text(ci: list | None, digits: int = 1) -> str:
    """A 95 % interval of fractions as "[lo, hi]" in per cent, ``digits`` decimals (one); "—" without one."""
    return "—" if not ci or any(v is None for v in ci) else f"[{percent(ci[0], digits)}, {percent(ci[1], digits)}]"


# What a spreadsheet reads as a formula at the start of a cell (OWASP, CSV injection): a class or file name from
# a data set can start so ("=cmd().jpg"), and a user opening the CSV would run it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as written: a string starting like a formula gets a leading apostrophe,
    and so does one whose apostrophes come before a formula's start ("'=x"), or :func:`csv_text` read it back as
    "=x"; anything else (numbers included) passes unchanged."""
    return "'" + value if isinstance(value, str) and _formula_like(value) else value


def _formula_like(text: str) -> bool:
    """Whether ``text`` starts like a formula after any apostrophes: the cells :func:`csv_cell` writes apart."""
    return text.lstrip("'").startswith(_FORMULA_START)


def csv_text(cell: str) -> str:
    """The text a :func:`csv_cell` was written from: its apostrophe before a formula's start taken off."""
    return cell[1:] if cell.startswith("'") and _formula_like(cell[1:]) else cell


def float32_text(value: float) -> str:
    """A float32 (a probability, a cosine) as a CSV cell: the shortest decimal that reads back as the same float32
    (numpy's, at most 9 significant digits, "0.1", "1e-07"), whatever the locale. Seven digits ("%.7g") read back
    as another float32 for about half of them (0.99999994 as 0.9999999)."""
    return str(np.float32(value))
