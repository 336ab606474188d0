"""How often a run's report names a class whose validation and test accuracies disagree, over finished runs.

``probe.diagnostics.split_disagreement_warning`` names a class whose two accuracies lie 10 points or more apart
beyond chance (Fisher's exact test, Holm over the classes). This reads every ``report.json`` under the folders
given, keeps one of each distinct run (runs copied by backups or re-registered read alike) with validation images
in every class and at least 200 test images, and prints the runs and classes the warning names, with the count of
runs read: its rate on runs whose labels are known to be clean or flipped on purpose is the evidence (bench/README.md,
"Validation and test that disagree").

Usage::

    python bench/split_disagreement.py RUNS_FOLDER [RUNS_FOLDER ...] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

from probe.diagnostics import split_disagreement_warning


def _runs(folders: list[str]):
    """(path, report JSON) of each distinct run with validation images in every class and 200+ test images."""
    seen = set()
    for folder in folders:
        for path in sorted(Path(folder).rglob("report.json")):
            try:
                report = json.loads(path.read_text())
                rows = report["per_class"]
            except (OSError, ValueError, KeyError):
                continue
            key = json.dumps([(r["name"], r["accuracy"], r.get("val_accuracy"), r.get("n_val")) for r in rows])
            if key in seen or sum(r["n_test"] for r in rows) < 200 or not all(r.get("n_val") for r in rows):
                continue
            seen.add(key)
            yield path, report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="folders holding run folders (searched recursively)")
    parser.add_argument("--json", default=None, help="where to write the result")
    args = parser.parse_args(argv)
    named, total = [], 0
    for path, report in _runs(args.folders):
        total += 1
        rows = [SimpleNamespace(**row) for row in report["per_class"]]
        # under cross-validation the validation accuracies are out of fold on train + val (report.val.source), no
        # post-hoc bias fitted to them
        out_of_fold = str((report.get("val") or {}).get("source") or "").startswith("out of fold")
        posthoc = not out_of_fold and bool(report.get("posthoc")) and report["config"].get("posthoc_bias", False)
        text = split_disagreement_warning(rows, posthoc, out_of_fold)
        if text:
            named.append({"run": str(path.parent), "warning": text})
            print(f"{path.parent}: {text.split(': ', 1)[1].split('. Such')[0]}")
    print(f"{len(named)} of {total} distinct runs name a class")
    result = {"runs": total, "named": named, "command": "python bench/split_disagreement.py " + " ".join(args.folders)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
