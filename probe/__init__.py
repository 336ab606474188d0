"""probe: linear probes on cached features that report and reduce class-wise accuracy disparity (MR²).

Public names are listed explicitly below; add new ones to both the imports and ``__all__``.
"""
from .stats import (
    ClassStats,
    EmaClassStats,
    class_counts,
    class_means,
    class_r2,
    class_spread,
    exact_class_stats,
    margins,
    margins_from_error,
    mean_spread,
)
from .losses import (
    LOSSES,
    LossSpec,
    ProbeLoss,
    create_loss,
    list_losses,
    margin_cross_entropy,
    representation_margin,
    sample_margin_regularizer,
    zero_centroid_regularizer,
)
from .heads import HEADS, CosineHead, HeadSpec, LinearHead, create_head, list_heads
from .adapters import ADAPTERS, AdapterSpec, create_adapter, list_adapters
from .trainer import ProbeTrainer
from .checkpoint import load_probe, save_probe

__all__ = [
    # stats.py: class statistics and margins
    "ClassStats",
    "EmaClassStats",
    "class_counts",
    "class_means",
    "class_r2",
    "class_spread",
    "exact_class_stats",
    "margins",
    "margins_from_error",
    "mean_spread",
    # losses.py: loss registry and regularisers
    "LOSSES",
    "LossSpec",
    "ProbeLoss",
    "create_loss",
    "list_losses",
    "margin_cross_entropy",
    "representation_margin",
    "sample_margin_regularizer",
    "zero_centroid_regularizer",
    # heads.py, adapters.py: head and adapter registries
    "HEADS",
    "CosineHead",
    "HeadSpec",
    "LinearHead",
    "create_head",
    "list_heads",
    "ADAPTERS",
    "AdapterSpec",
    "create_adapter",
    "list_adapters",
    # trainer.py: the estimator
    "ProbeTrainer",
    # checkpoint.py: saved heads
    "load_probe",
    "save_probe",
]

# --- Runs layer (metrics, groups, selection, posthoc, run, report, compare): appended by the runs owner. ---
from .groups import GROUP_NAMES, assign_groups, group_accuracy, group_of
from .metrics import (
    balanced_accuracy,
    class_margin_deg,
    ideal_class_margin_deg,
    ideal_sample_margin,
    output_margins,
    overall_accuracy,
    per_class_accuracy,
    per_class_reduce,
    per_class_std,
    sample_margins,
    worst_class,
)
from .posthoc import POSTHOC_OBJECTIVES, PosthocLogitBias
from .selection import SELECTION_CRITERIA, SelectionCriterion, select_candidate
from .presets import PRESETS, Preset, get_preset
from .run import DEFAULT_P, ProbeCancelled, ProbeConfig, SeedEvaluation, auto_epochs, carve_validation, run_probe
from .report import PER_CLASS_COLUMNS, build_report, format_report, load_report, report_csv, report_json, write_run
from .compare import compare_reports, format_comparison

__all__ += [
    # groups.py, metrics.py: disparity and margin metrics
    "GROUP_NAMES",
    "assign_groups",
    "group_accuracy",
    "group_of",
    "balanced_accuracy",
    "class_margin_deg",
    "ideal_class_margin_deg",
    "ideal_sample_margin",
    "output_margins",
    "overall_accuracy",
    "per_class_accuracy",
    "per_class_reduce",
    "per_class_std",
    "sample_margins",
    "worst_class",
    # posthoc.py, selection.py
    "POSTHOC_OBJECTIVES",
    "PosthocLogitBias",
    "SELECTION_CRITERIA",
    "SelectionCriterion",
    "select_candidate",
    # presets.py: recommended settings with their evidence
    "PRESETS",
    "Preset",
    "get_preset",
    # run.py, report.py, compare.py
    "DEFAULT_P",
    "ProbeCancelled",
    "ProbeConfig",
    "SeedEvaluation",
    "auto_epochs",
    "carve_validation",
    "run_probe",
    "PER_CLASS_COLUMNS",
    "build_report",
    "format_report",
    "load_report",
    "report_csv",
    "report_json",
    "write_run",
    "compare_reports",
    "format_comparison",
]
