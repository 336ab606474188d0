"""probe: linear probes on cached features that report and reduce class-wise accuracy disparity (MR²).

Public names are listed explicitly below, each with the module that defines it; add new ones to ``_PUBLIC``.
They are imported on first use (PEP 562), so ``import probe`` and the torch-free modules (``probe.run``'s
ProbeConfig, reports, comparisons) do not import torch until a name that needs it is used.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_PUBLIC: dict[str, str] = {
    # stats.py: class statistics and margins
    "ClassStats": "stats",
    "EmaClassStats": "stats",
    "class_counts": "stats",
    "class_means": "stats",
    "class_r2": "stats",
    "class_spread": "stats",
    "exact_class_stats": "stats",
    "margins": "stats",
    "margins_from_error": "stats",
    "mean_spread": "stats",
    # losses.py: loss registry and regularisers
    "LOSSES": "losses",
    "LossSpec": "losses",
    "ProbeLoss": "losses",
    "create_loss": "losses",
    "list_losses": "losses",
    "margin_cross_entropy": "losses",
    "representation_margin": "losses",
    "sample_margin_regularizer": "losses",
    "zero_centroid_regularizer": "losses",
    # heads.py, adapters.py: head and adapter registries
    "HEADS": "heads",
    "CosineHead": "heads",
    "HeadSpec": "heads",
    "LinearHead": "heads",
    "create_head": "heads",
    "list_heads": "heads",
    "ADAPTERS": "adapters",
    "AdapterSpec": "adapters",
    "create_adapter": "adapters",
    "list_adapters": "adapters",
    # trainer.py: the estimator
    "ProbeTrainer": "trainer",
    # checkpoint.py: saved heads
    "load_probe": "checkpoint",
    "save_probe": "checkpoint",
    # groups.py, metrics.py: disparity and margin metrics
    "GROUP_NAMES": "groups",
    "assign_groups": "groups",
    "group_accuracy": "groups",
    "group_of": "groups",
    "balanced_accuracy": "metrics",
    "class_margin_deg": "metrics",
    "ideal_class_margin_deg": "metrics",
    "ideal_sample_margin": "metrics",
    "output_margins": "metrics",
    "overall_accuracy": "metrics",
    "per_class_accuracy": "metrics",
    "per_class_reduce": "metrics",
    "per_class_std": "metrics",
    "sample_margins": "metrics",
    "worst_class": "metrics",
    # posthoc.py, selection.py
    "POSTHOC_OBJECTIVES": "posthoc",
    "PosthocLogitBias": "posthoc",
    "SELECTION_CRITERIA": "selection",
    "SelectionCriterion": "selection",
    "select_candidate": "selection",
    # presets.py: recommended settings with their evidence
    "PRESETS": "presets",
    "Preset": "presets",
    "get_preset": "presets",
    # run.py, report.py, compare.py
    "DEFAULT_P": "run",
    "ProbeCancelled": "run",
    "ProbeConfig": "run",
    "SeedEvaluation": "run",
    "auto_epochs": "run",
    "carve_validation": "run",
    "run_probe": "run",
    "PER_CLASS_COLUMNS": "report",
    "build_report": "report",
    "format_report": "report",
    "load_report": "report",
    "report_csv": "report",
    "report_json": "report",
    "write_run": "report",
    "compare_reports": "compare",
    "format_comparison": "compare",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    """Import the module of a public name on first use (PEP 562) and cache the name here."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
