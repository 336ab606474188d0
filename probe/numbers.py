"""How every view writes a fraction: in per cent, or as a signed difference in points (torch-free).

The terminal, the exports, the selection's sentences, ``mr2probe predict`` and the comparisons each wrote their own
helper (five, with different handling of a missing score); they call these, naming the precision they show.
"""
from __future__ import annotations

import math

__all__ = ["percent", "signed_points", "is_missing"]


def is_missing(x: float | None) -> bool:
    """Whether a score could not be computed: None (null in a report) or NaN."""
    return x is None or math.isnan(x)


def percent(x: float | None, digits: int = 2, absent: str = "—", unit: str = "") -> str:
    """``12.34`` from 0.1234 (``digits`` decimals, then ``unit``); ``absent`` for a score that could not be
    computed (:func:`is_missing`)."""
    # rounded to 12 significant digits first: 67/80 and a mean of class accuracies (0.83749999…) printed 83.8 and
    # 83.7 side by side (a dashboard round); the dashboard's Charts.fixed does the same
    return absent if is_missing(x) else f"{float(f'{100 * x:.12g}'):.{digits}f}{unit}"


def signed_points(fraction: float | None, digits: int = 1, absent: str = "—") -> str:
    """``+2.1`` from 0.021: a signed difference in points; one that rounds to zero reads ``+0.0``, never ``-0.0``;
    ``absent`` for one that could not be computed (:func:`is_missing`)."""
    if is_missing(fraction):
        return absent
    points = round(100 * fraction, digits)
    return f"{points or 0.0:+.{digits}f}"  # -0.0 is falsy
