"""probe: linear probes on cached features that report and reduce class-wise accuracy disparity (MR²).

Public names are listed explicitly below, each with the module that defines it; add new ones to ``_EXPORTS``.
They are imported on first use (PEP 562), so ``import probe.config`` / ``from probe import ProbeConfig`` load
pydantic only, and torch is imported when a torch name (``ProbeTrainer``, ``create_head``, ...) is first used:
the app validates requests and reads reports without loading torch.
"""
from __future__ import annotations

from .lazy import lazy_names

# public name -> defining module (relative to this package)
_EXPORTS: dict[str, str] = {
    # stats.py: class statistics and margins
    **dict.fromkeys(["ClassStats", "EmaClassStats", "class_counts", "class_means", "class_r2", "class_spread",
                     "exact_class_stats", "margins", "margins_from_error", "mean_spread"], "stats"),
    # registry.py (torch-free specs), losses.py, heads.py, adapters.py: the registries and factories
    **dict.fromkeys(["LOSSES", "LossSpec", "HEADS", "HeadSpec", "ADAPTERS", "AdapterSpec", "Option"], "registry"),
    **dict.fromkeys(["ProbeLoss", "create_loss", "list_losses", "margin_cross_entropy", "representation_margin",
                     "sample_margin_regularizer", "zero_centroid_regularizer"], "losses"),
    **dict.fromkeys(["CosineHead", "LinearHead", "create_head", "list_heads"], "heads"),
    **dict.fromkeys(["create_adapter", "list_adapters"], "adapters"),
    # params.py, trainer.py (+ checkpoint.py): the estimator, its parameters and saved heads
    **dict.fromkeys(["TRAINER_PARAMS"], "params"),
    **dict.fromkeys(["resolve_device"], "devices"),
    **dict.fromkeys(["ProbeTrainer", "fit_many", "diverged", "load_probe", "save_probe"], "trainer"),
    # groups.py, metrics.py: disparity and margin metrics
    **dict.fromkeys(["GROUP_NAMES", "assign_groups", "group_accuracy", "group_of"], "groups"),
    **dict.fromkeys(["balanced_accuracy", "class_margin_deg", "ideal_class_margin_deg", "ideal_sample_margin",
                     "output_margins", "overall_accuracy", "per_class_accuracy", "per_class_reduce",
                     "per_class_std", "sample_margins", "worst_class", "confusion_matrix", "precision_recall_f1",
                     "top_confusions"], "metrics"),
    # uncertainty.py, decision.py, predictions.py, diagnostics.py: intervals, the decision, stored predictions
    **dict.fromkeys(["Bootstrap", "percentile_interval"], "uncertainty"),
    **dict.fromkeys(["Decision", "decide", "MIN_VAL_PER_CLASS"], "decision"),
    **dict.fromkeys(["CVPlan", "plan_cross_validation", "stratified_folds", "out_of_fold"], "crossval"),
    # label_issues.py: likely wrong training labels, out of fold
    **dict.fromkeys(["out_of_fold_probabilities", "label_issue_predictions"], "label_issues"),
    **dict.fromkeys(["Predictions", "paired_test_delta"], "predictions"),
    **dict.fromkeys(["SeenSources"], "seen"),
    **dict.fromkeys(["nearest_rows", "near_duplicate_pairs", "near_duplicate_threshold"], "near_duplicates"),
    **dict.fromkeys(["test_diagnostics"], "diagnostics"),
    **dict.fromkeys(["report_markdown", "report_html"], "export"),
    # posthoc.py, selection.py, presets.py
    **dict.fromkeys(["POSTHOC_OBJECTIVES", "PosthocLogitBias"], "posthoc"),
    **dict.fromkeys(["SELECTION_CRITERIA", "SelectionCriterion", "select_candidate", "choose_safe",
                     "delta_sentence"], "selection"),
    **dict.fromkeys(["PRESETS", "Preset", "get_preset"], "presets"),
    # config.py: the request and its bounds
    **dict.fromkeys(["ProbeConfig", "auto_epochs", "auto_batch_size", "MAX_EPOCHS", "MAX_SEEDS", "MAX_SEED",
                     "MAX_GRID_VALUES", "MAX_GRID_CANDIDATES", "MAX_FIT_EPOCHS", "MAX_FIT_STEPS", "MAX_ADAPTER_RANK",
                     "MAX_BATCH_SIZE", "MAX_NAME_LENGTH",
                     "MAX_OVERALL_DROP", "DEFAULT_CV_FOLDS", "MIN_CV_FOLDS", "MAX_CV_FOLDS"], "config"),
    # evaluate.py, splits.py, run.py, report.py, report_text.py, compare.py: one run end to end and its report
    **dict.fromkeys(["SeedEvaluation"], "evaluate"),
    **dict.fromkeys(["ProbeCancelled", "run_probe"], "run"),
    **dict.fromkeys(["carve_validation"], "splits"),
    **dict.fromkeys(["Report", "PER_CLASS_COLUMNS", "build_report", "load_report", "report_csv", "report_json",
                     "write_run"], "report"),
    **dict.fromkeys(["format_report"], "report_text"),
    **dict.fromkeys(["Comparison", "compare_reports", "format_comparison"], "compare"),
    # deploy.py: a finished run's probe applied to new features
    **dict.fromkeys(["RunProbe", "score_predictions"], "deploy"),
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals())
