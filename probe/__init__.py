"""probe package."""

# --- Runs layer: metrics, groups, selection, post-hoc bias, run, report, compare. ---
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
