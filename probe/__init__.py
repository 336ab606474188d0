"""probe: linear probes on cached features that report and reduce class-wise accuracy disparity (MR²).

Public names are listed explicitly below; add new ones to both the imports and ``__all__``.
"""
from .stats import (
    EmaClassStats,
    class_counts,
    class_means,
    class_r2,
    class_spread,
    margins,
    margins_from_error,
    mean_spread,
)

__all__ = [
    # stats.py: class statistics and margins
    "EmaClassStats",
    "class_counts",
    "class_means",
    "class_r2",
    "class_spread",
    "margins",
    "margins_from_error",
    "mean_spread",
]
