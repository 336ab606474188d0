"""Compare two runs on the same classes: per-group and per-class test-accuracy deltas (other − base).

Both runs are scored on the **base** run's groups, so a method cannot look better by reshuffling which classes
count as hard; group accuracies are macro means of the seed-mean per-class test accuracies.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np

from .groups import GROUP_NAMES, group_accuracy

__all__ = ["compare_reports", "format_comparison"]


def _acc(report: dict) -> np.ndarray:
    return np.array([np.nan if r["accuracy"] is None else r["accuracy"] for r in report["per_class"]], dtype=float)


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _f(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def compare_reports(base: dict, other: dict) -> dict:
    """Per-group and per-class deltas of ``other`` against ``base``, on base's groups.

    Returns:
        ``{"base": id, "other": id, "grouping": {...}, "metrics": {name: {"base", "other", "delta"}},
        "per_class": [{"index", "name", "group", "base", "other", "delta"}]}``; metrics are overall, balanced,
        easy, medium, hard (fractions) and worst_class (lowest seed-mean per-class accuracy).
    """
    if list(base["class_names"]) != list(other["class_names"]):
        raise ValueError("runs have different classes and cannot be compared: "
                         f"{base['class_names'][:5]}... vs {other['class_names'][:5]}...")
    groups = base["grouping"]["groups"]
    a, b = _acc(base), _acc(other)
    ga, gb = group_accuracy(a, groups), group_accuracy(b, groups)
    metrics: dict[str, dict[str, float | None]] = {}
    for key in ("overall", "balanced"):
        x, y = base["summary"][key], other["summary"][key]
        metrics[key] = {"base": x, "other": y, "delta": _delta(x, y)}
    for key in GROUP_NAMES:
        x, y = _f(ga[key]), _f(gb[key])
        metrics[key] = {"base": x, "other": y, "delta": _delta(x, y)}
    x, y = _f(np.nanmin(a)), _f(np.nanmin(b))
    metrics["worst_class"] = {"base": x, "other": y, "delta": _delta(x, y)}
    group_by_class = {int(i): g for g in GROUP_NAMES for i in groups[g]}
    per_class = [
        {"index": k, "name": name, "group": group_by_class.get(k), "base": _f(a[k]), "other": _f(b[k]),
         "delta": _delta(_f(a[k]), _f(b[k]))}
        for k, name in enumerate(base["class_names"])
    ]
    base_id = base.get("run_id")
    return {
        "base": base_id,
        "other": other.get("run_id"),
        "grouping": {"source": "base", "groups": groups,
                     "note": f"both runs scored on the groups of the base run {base_id} "
                             f"({base['grouping'].get('note', '')})"},
        "metrics": metrics,
        "per_class": per_class,
    }


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"


def format_comparison(comparison: dict, *, width: int = 100) -> str:
    """Terminal table of a :func:`compare_reports` result (accuracies in %, deltas in points)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(f"base {comparison['base']} vs other {comparison['other']}: {comparison['grouping']['note']}")
    table = Table(title="test accuracy (%), seed means", box=box.SIMPLE)
    for col in ("metric", "base", "other", "Δ points"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, m in comparison["metrics"].items():
        table.add_row(name, _pct(m["base"]), _pct(m["other"]), _pct(m["delta"], signed=True))
    console.print(table)
    pc = Table(title="per class", box=box.SIMPLE)
    for col in ("class", "group", "base", "other", "Δ points"):
        pc.add_column(col, justify="left" if col in ("class", "group") else "right")
    for row in comparison["per_class"]:
        pc.add_row(row["name"], row["group"] or "", _pct(row["base"]), _pct(row["other"]),
                   _pct(row["delta"], signed=True))
    console.print(pc)
    return console.export_text()
