"""The run report (``report.json``, schema_version 1 of docs/ARCHITECTURE.md), its CSV and terminal views.

Aggregation over seeds (all on the test split unless named ``val``):

* ``summary.overall / balanced / easy / medium / hard / per_class_std / group_margin / class_margin_deg /
  min_sample_margin``: the mean over seeds of the per-seed value (group accuracies are macro means of the
  per-class accuracies of the group's classes);
* ``summary.worst_class``: the class with the lowest seed-mean accuracy, and that accuracy (a named class);
  ``seeds.metrics.worst_class`` is the per-seed worst accuracy, whichever class it is;
* ``std`` over seeds is the sample standard deviation (ddof = 1), 0 for a single seed;
* ``per_class.r2 / r / spread / gamma`` come from the first seed's trainer (``r2_``, ``spread_``, ``gamma_``):
  exact class statistics of the features the head sees; ``gamma`` is null for losses without class margins.

Non-finite numbers (a class without test samples) are written as JSON ``null`` / an empty CSV cell.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .groups import GROUP_NAMES, group_accuracy, group_of
from .metrics import balanced_accuracy, ideal_class_margin_deg, ideal_sample_margin, per_class_std

logger = logging.getLogger(__name__)

__all__ = ["SCHEMA_VERSION", "PER_CLASS_COLUMNS", "build_report", "write_run", "load_report", "report_csv",
           "format_report", "report_json"]

SCHEMA_VERSION = 1
PER_CLASS_COLUMNS = ("index", "name", "group", "n_train", "n_test", "accuracy", "accuracy_std", "val_accuracy",
                     "r2", "r", "spread", "gamma", "output_margin", "sample_margin_min", "sample_margin_mean")
SEED_METRICS = ("overall", "balanced", "easy", "medium", "hard", "worst_class")


def _finite(x: Any) -> Any:
    """float / None for JSON: NaN and ±inf become None; numpy scalars become Python numbers."""
    if x is None:
        return None
    if isinstance(x, (np.integer, int)) and not isinstance(x, bool):
        return int(x)
    x = float(x)
    return x if math.isfinite(x) else None


def _clean(obj: Any) -> Any:
    """Recursively make a structure JSON-safe (NaN → None, numpy → Python)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, float, np.integer, np.floating)):
        return _finite(obj)
    return obj


def _mean_std(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    mean = float(finite.mean()) if finite.size else float("nan")
    std = float(finite.std(ddof=1)) if finite.size > 1 else (0.0 if finite.size else float("nan"))
    return {"mean": mean, "std": std, "per_seed": arr.tolist()}


def _stat(trainer, name: str, num_classes: int) -> np.ndarray:
    value = getattr(trainer, name, None)
    if value is None:
        return np.full(num_classes, np.nan)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    return value if value.size == num_classes else np.full(num_classes, np.nan)


def _group_sample_mean(per_class_mean: np.ndarray, counts: np.ndarray, groups: dict[str, list[int]]
                       ) -> dict[str, float]:
    """Mean over the samples of each group from per-class means and counts."""
    out = {}
    for name in GROUP_NAMES:
        idx = np.asarray(groups.get(name, []), dtype=np.int64)
        w = counts[idx].astype(np.float64)
        v = per_class_mean[idx]
        ok = np.isfinite(v) & (w > 0)
        out[name] = float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
    return out


def build_report(*, run_id: str | None, config, selected: dict, selection: dict, class_names: list[str],
                 groups: dict[str, list[int]], reference: dict | None, evaluations: list, trainer,
                 n_train: np.ndarray, val_source: str = "given") -> dict:
    """Assemble the report dict (schema_version 1) from the per-seed evaluations of ``probe.run``."""
    num_classes = len(class_names)
    if reference is not None:
        ref_id = reference.get("run_id")
        grouping = {"source": "reference", "reference_run": ref_id, "split": "val",
                    "note": f"groups from the reference run {ref_id}'s validation per-class accuracy"}
    else:
        grouping = {"source": "self", "reference_run": None, "split": "val",
                    "note": "groups from own validation accuracy (seed mean); no reference run given"}
    grouping["groups"] = {k: [int(i) for i in groups[k]] for k in GROUP_NAMES}
    names_of = group_of(groups, num_classes)

    test_acc = np.stack([e.test_per_class for e in evaluations])          # (S, K)
    val_acc = np.stack([e.val_per_class for e in evaluations])
    counts = evaluations[0].test_counts
    per_seed: dict[str, list[float]] = {k: [] for k in SEED_METRICS}
    stds, group_margins, class_margins, min_sample = [], [], [], []
    for e in evaluations:
        g = group_accuracy(e.test_per_class, groups)
        per_seed["overall"].append(e.test_overall)
        per_seed["balanced"].append(balanced_accuracy(e.test_per_class))
        for name in GROUP_NAMES:
            per_seed[name].append(g[name])
        per_seed["worst_class"].append(float(np.nanmin(e.test_per_class)))
        stds.append(per_class_std(e.test_per_class))
        group_margins.append(_group_sample_mean(e.output_margin_mean, counts, groups))
        class_margins.append(e.class_margin_deg)
        min_sample.append(float(np.nanmin(e.sample_margin_min)))
    seeds_metrics = {k: _mean_std(v) for k, v in per_seed.items()}

    mean_acc = np.nanmean(test_acc, axis=0) if np.isfinite(test_acc).any() else test_acc[0]
    worst = int(np.nanargmin(mean_acc))
    summary = {
        "overall": seeds_metrics["overall"]["mean"],
        "balanced": seeds_metrics["balanced"]["mean"],
        **{name: seeds_metrics[name]["mean"] for name in GROUP_NAMES},
        "worst_class": {"name": class_names[worst], "accuracy": float(mean_acc[worst])},
        "per_class_std": float(np.mean(stds)),
        "group_margin": {name: float(np.nanmean([m[name] for m in group_margins])) for name in GROUP_NAMES},
        "class_margin_deg": float(np.mean(class_margins)),
        "ideal_class_margin_deg": ideal_class_margin_deg(num_classes),
        "min_sample_margin": float(np.mean(min_sample)),
        "ideal_sample_margin": ideal_sample_margin(num_classes),
    }

    r2, spread, gamma = (_stat(trainer, n, num_classes) for n in ("r2_", "spread_", "gamma_"))
    acc_std = test_acc.std(axis=0, ddof=1) if len(evaluations) > 1 else np.zeros(num_classes)
    out_margin = np.nanmean(np.stack([e.output_margin_mean for e in evaluations]), axis=0)
    sm_min = np.nanmean(np.stack([e.sample_margin_min for e in evaluations]), axis=0)
    sm_mean = np.nanmean(np.stack([e.sample_margin_mean for e in evaluations]), axis=0)
    val_mean = np.nanmean(val_acc, axis=0)
    per_class = [
        {"index": k, "name": class_names[k], "group": names_of[k], "n_train": int(n_train[k]),
         "n_test": int(counts[k]), "accuracy": mean_acc[k], "accuracy_std": acc_std[k],
         "accuracy_per_seed": test_acc[:, k], "val_accuracy": val_mean[k],
         "r2": r2[k], "r": math.sqrt(r2[k]) if np.isfinite(r2[k]) else None,
         "spread": spread[k], "gamma": gamma[k], "output_margin": out_margin[k],
         "sample_margin_min": sm_min[k], "sample_margin_mean": sm_mean[k]}
        for k in range(num_classes)
    ]
    config_dict = config.model_dump(mode="json")
    config_dict["p"] = config.resolved_p
    config_dict["selected"] = {"lr": selected.get("lr"), "weight_decay": selected.get("weight_decay"),
                               "cbar": selected.get("cbar"), "lam": selected.get("lam"),
                               **{name: selected.get(name) for name in config.loss_options_grid}}
    report = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config_dict,
        "selection": selection,
        "class_names": list(class_names),
        "grouping": grouping,
        "summary": summary,
        "seeds": {"values": [e.seed for e in evaluations], "metrics": seeds_metrics},
        "per_class": per_class,
        "val": {"overall": float(np.mean([e.val_overall for e in evaluations])), "per_class": val_mean,
                "source": val_source},
    }
    if any(e.posthoc is not None for e in evaluations):
        report["posthoc"] = {"objective": config.posthoc_objective,
                             "per_seed": [dict(seed=e.seed, **e.posthoc) for e in evaluations]}
    return _clean(report)


def report_json(report: dict) -> str:
    """The JSON text written to report.json (strict JSON: no NaN)."""
    return json.dumps(_clean(report), indent=2, allow_nan=False)


def write_run(run_dir: Path, report: dict, trainer) -> None:
    """Write report.json, per_class.csv, head.safetensors + head.json (and posthoc_bias.json) into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer.save(run_dir / "head.safetensors")
    (run_dir / "per_class.csv").write_text(report_csv(report), encoding="utf-8")
    if "posthoc" in report:
        first = report["posthoc"]["per_seed"][0]
        (run_dir / "posthoc_bias.json").write_text(json.dumps(
            {"objective": report["posthoc"]["objective"], "seed": first["seed"], "bias": first["bias"],
             "note": "add to the logits of head.safetensors (first seed) before argmax"}, indent=2),
            encoding="utf-8")
    tmp = run_dir / "report.json.tmp"
    tmp.write_text(report_json(report), encoding="utf-8")
    tmp.replace(run_dir / "report.json")  # report.json last and atomic: its presence marks a complete run
    logger.info("run written to %s", run_dir)


def load_report(run_dir: str | Path) -> dict:
    """Read ``report.json`` from a run directory (or the file itself)."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"no report.json at {path}; is {run_dir} a finished run directory?")
    report = json.loads(path.read_text(encoding="utf-8"))
    version = report.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path} has schema_version {version!r}; this version reads {SCHEMA_VERSION}.")
    return report


def report_csv(report: dict) -> str:
    """``per_class.csv`` text: header = the per_class keys, one row per class, empty cells for null."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(PER_CLASS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in report["per_class"]:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in PER_CLASS_COLUMNS})
    return buf.getvalue()


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def format_report(report: dict, *, width: int = 120) -> str:
    """A readable terminal view: header, summary with mean ± std over seeds, margins, per-class table."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    cfg, summary, metrics = report["config"], report["summary"], report["seeds"]["metrics"]
    sel = cfg.get("selected", {})
    chosen = ", ".join(f"{k}={v:g}" for k, v in sel.items() if v is not None)
    console.print(f"run {report.get('run_id') or '(unnamed)'}: head={cfg['head']} loss={cfg['loss']} "
                  f"p={cfg.get('p')} seeds={report['seeds']['values']} selected: {chosen}")
    if report["selection"].get("preset"):
        preset = report["selection"]["preset"]
        settings = ", ".join(f"{k}={v}" for k, v in preset["settings"].items())
        console.print(f"preset {preset['name']} ({settings}): {preset['why']}")
    console.print(f"selection ({report['selection']['criterion']}, on val): {report['selection']['reason']}")
    console.print(f"grouping: {report['grouping']['note']}")

    table = Table(title="test accuracy (%), mean ± std over seeds", box=box.SIMPLE)
    for col in ("overall", "balanced", "easy", "medium", "hard", "worst class"):
        table.add_column(col, justify="right")
    cells = []
    for key in SEED_METRICS:
        m = metrics[key]
        cells.append(f"{_pct(m['mean'])} ± {_pct(m['std'])}")
    table.add_row(*cells)
    console.print(table)
    wc = summary["worst_class"]
    console.print(f"worst class (seed mean): {wc['name']} {_pct(wc['accuracy'])}%   "
                  f"per-class std: {_pct(summary['per_class_std'])} points")
    gm = summary["group_margin"]
    console.print(f"output margin P(y|x) − max P(y'|x): easy {_num(gm['easy'])}, medium {_num(gm['medium'])}, "
                  f"hard {_num(gm['hard'])}")
    console.print(f"class margin {_num(summary['class_margin_deg'], '.2f')}° (ideal "
                  f"{_num(summary['ideal_class_margin_deg'], '.2f')}°), min sample margin "
                  f"{_num(summary['min_sample_margin'])} (ideal {_num(summary['ideal_sample_margin'])})")

    pc = Table(title="per class (test)", box=box.SIMPLE)
    for col, justify in (("class", "left"), ("group", "left"), ("n_test", "right"), ("acc %", "right"),
                         ("± std", "right"), ("val %", "right"), ("r²", "right"), ("spread", "right"),
                         ("γ", "right"), ("out margin", "right"), ("smp min", "right"), ("smp mean", "right")):
        pc.add_column(col, justify=justify)
    for row in sorted(report["per_class"], key=lambda r: (-1 if r["accuracy"] is None else r["accuracy"]),
                      reverse=True):
        pc.add_row(row["name"], row["group"], str(row["n_test"]), _pct(row["accuracy"]), _pct(row["accuracy_std"]),
                   _pct(row["val_accuracy"]), _num(row["r2"]), _num(row["spread"]), _num(row["gamma"]),
                   _num(row["output_margin"]), _num(row["sample_margin_min"]), _num(row["sample_margin_mean"]))
    console.print(pc)
    return console.export_text()
