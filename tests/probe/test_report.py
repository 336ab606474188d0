"""report.json contents (keys and exact aggregated values), per_class.csv, load_report, format_report."""
import csv
import io
import json
import math
import random
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from probe import (ProbeConfig, SeedEvaluation, build_report, format_report, load_report, report_csv, report_json,
                   run_probe, write_run)
from probe.groups import GROUP_NAMES
from probe.numbers import csv_text, percent
from probe.report import PER_CLASS_COLUMNS, Candidate, CrossValidation, Report, Selection

NAMES = ["cat", "dog", "car"]
GROUPS = {"easy": [2], "medium": [0], "hard": [1]}


def _eval(seed, test_acc, val_acc, cm):
    return SeedEvaluation(
        seed=seed, val_per_class=np.array(val_acc), val_overall=float(np.mean(val_acc)),
        test_per_class=np.array(test_acc), test_overall=float(np.mean(test_acc)),
        output_margin_mean=np.array([0.2, -0.1, 0.6]), test_counts=np.array([10, 10, 10]),
        sample_margin_min=np.array([-0.5, -0.9, 0.1]), sample_margin_mean=np.array([0.3, 0.1, 0.8]),
        class_margin_deg=cm,
    )


def _report(reference=None):
    trainer = SimpleNamespace(r2_=np.array([4.0, 9.0, 1.0]), spread_=np.array([1.0, 2.0, 0.5]), gamma_=None)
    evals = [_eval(0, [0.8, 0.5, 1.0], [0.7, 0.4, 0.9], 100.0), _eval(1, [0.6, 0.7, 0.9], [0.8, 0.6, 1.0], 110.0)]
    chosen = Candidate(lr=0.01, weight_decay=0.0, val_overall=0.7, val_hard=0.5)
    selection = Selection(criterion="overall", candidates=[chosen], chosen=chosen, reason="because")
    return build_report(run_id="run_a", config=ProbeConfig(seeds=[0, 1]), selected={"lr": 0.01, "weight_decay": 0.0},
                        selection=selection, class_names=NAMES, groups=GROUPS, reference=reference,
                        evaluations=evals, trainer=trainer, n_train=np.array([50, 50, 40]))


def test_a_tie_for_the_worst_class_is_named_in_every_view():
    """bird and horse both at 50 %: every view said "Worst class: bird" (a new-user round)."""
    from probe.export import report_markdown

    trainer = SimpleNamespace(r2_=np.array([4.0, 9.0, 1.0]), spread_=np.array([1.0, 2.0, 0.5]), gamma_=None)
    evals = [_eval(0, [0.6, 0.9, 0.6], [0.7, 0.4, 0.9], 100.0), _eval(1, [0.6, 0.9, 0.6], [0.8, 0.6, 1.0], 110.0)]
    chosen = Candidate(lr=0.01, weight_decay=0.0, val_overall=0.7, val_hard=0.5)
    rep = build_report(run_id="run_t", config=ProbeConfig(seeds=[0, 1]), selected={"lr": 0.01, "weight_decay": 0.0},
                       selection=Selection(criterion="overall", candidates=[chosen], chosen=chosen, reason="because"),
                       class_names=NAMES, groups=GROUPS, reference=None, evaluations=evals, trainer=trainer,
                       n_train=np.array([50, 50, 40]))
    worst = rep.summary.worst_class
    assert (worst.name, worst.tied_with) == (NAMES[0], [NAMES[2]])
    assert f"worst class (seed mean): {NAMES[0]} (tied with {NAMES[2]}) 60.00%" in format_report(rep)
    assert f"Worst class: **{NAMES[0]}** (tied with {NAMES[2]}) (60.00 %)" in report_markdown(rep.model_dump(mode="json"))
    from probe.export import report_html  # the HTML export says it too (it had no worst-class line; a review)

    assert f"Worst class: <strong>{NAMES[0]}</strong> (tied with {NAMES[2]}) (60.00 %)" in \
        report_html(rep.model_dump(mode="json"))
    # the shipped probe's (first seed's) worst class names its ties too (coat and pullover both at 0 read as coat
    # alone; a new-user round): seed 0 scores cat and car alike here
    assert rep.summary.shipped_worst_class.model_dump() == {"name": NAMES[0], "accuracy": 0.6,
                                                            "tied_with": [NAMES[2]], "tied_count": 1,
                                                            "text": f"{NAMES[0]} (tied with {NAMES[2]})"}
    # with its interval, as the seed mean's worst class beside it (it read "60.00%" alone)
    from probe.report import interval_text, shipped_class_ci

    ci = shipped_class_ci(next(row for row in rep.per_class if row.name == NAMES[0]))
    assert ci is not None and ci[0] < 0.6 < ci[1]
    assert (f"; of the shipped probe (first seed): {NAMES[0]} (tied with {NAMES[2]}) 60.00% {interval_text(ci)}"
            in format_report(rep, width=400))
    # what "val %" is and what ranked the groups (a new-user round read this run's out-of-fold val % against the
    # reference's accuracy that ranked the thirds, both called "val")
    note = (f"val %: this run's accuracy on the validation split, the seeds' mean; {rep.grouping.note}.")
    assert note in format_report(rep, width=300)
    from probe.report import CrossValidation

    cv = rep.model_copy(deep=True)  # what ranked the groups: the report's grouping note, one definition (a review
    cv.selection.cv = CrossValidation(folds=5, samples=140, reason="few")  # found the note's own words wrong)
    cv.grouping.note = "groups from the reference run r0's validation per-class accuracy"
    assert ("val %: this run's out-of-fold accuracy (5-fold cross-validation of train + val, 140 images, the chosen "
            "configuration's first seed); groups from the reference run r0's validation per-class accuracy.") in \
        format_report(cv, width=300)
    shipped = rep.seeds.metrics["overall"].per_seed[0]
    assert f"the shipped probe (first seed): overall {percent(shipped)}%" in format_report(rep)
    # with its interval, as the seed mean's (a new-user round: what ships had none)
    from probe.report import interval_text
    from probe.uncertainty import wilson_interval

    expected = wilson_interval(np.array(shipped * 30.0), np.array(30.0)).tolist()
    assert rep.summary.shipped_overall_ci == pytest.approx(expected)
    assert (f"the shipped probe (first seed): overall {percent(shipped)}%, 95 % interval "
            f"{interval_text(rep.summary.shipped_overall_ci)}") in format_report(rep, width=200)


def test_report_keys_and_exact_values():
    rep = _report().model_dump(mode="json")
    assert set(rep) >= {"schema_version", "run_id", "created_at", "config", "selection", "class_names", "grouping",
                        "summary", "seeds", "per_class", "val"}
    assert rep["schema_version"] == 2 and rep["run_id"] == "run_a"
    assert rep["config"]["selected"] == {"lr": 0.01, "weight_decay": 0.0, "cbar": None, "lam": None}
    assert rep["config"]["p"] == 2.0  # linear default
    s = rep["summary"]
    assert s["overall"] == pytest.approx((0.7667 + 0.7333) / 2, abs=1e-3)
    assert s["hard"] == pytest.approx(0.6) and s["easy"] == pytest.approx(0.95) and s["medium"] == pytest.approx(0.7)
    assert s["worst_class"] == {"name": "dog", "accuracy": pytest.approx(0.6), "tied_with": [], "tied_count": 0,
                                "text": "dog"}
    assert s["class_margin_deg"] == pytest.approx(105.0)
    assert s["ideal_class_margin_deg"] == pytest.approx(120.0)
    assert s["ideal_sample_margin"] == pytest.approx(1.5)
    assert s["min_sample_margin"] == pytest.approx(-0.9)
    assert s["group_margin"] == {"easy": pytest.approx(0.6), "medium": pytest.approx(0.2), "hard": pytest.approx(-0.1)}
    m = rep["seeds"]["metrics"]
    assert rep["seeds"]["values"] == [0, 1]
    assert m["hard"]["per_seed"] == [0.5, 0.7]
    assert m["hard"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert m["worst_class"]["per_seed"] == [0.5, 0.6]
    dog = rep["per_class"][1]
    assert dog["group"] == "hard" and dog["n_train"] == 50 and dog["n_test"] == 10
    assert dog["r2"] == 9.0 and dog["r"] == 3.0 and dog["spread"] == 2.0 and dog["gamma"] is None
    assert dog["val_accuracy"] == pytest.approx(0.5)
    assert rep["val"]["per_class"] == pytest.approx([0.75, 0.5, 0.95])
    assert rep["grouping"]["source"] == "self" and "own validation accuracy" in rep["grouping"]["note"]


def test_reference_grouping_is_named():
    reference = _report().model_copy(update={"run_id": "erm_1"})
    rep = _report(reference=reference).model_dump(mode="json")
    assert rep["grouping"]["source"] == "reference" and rep["grouping"]["reference_run"] == "erm_1"
    assert rep["grouping"]["note"] == "groups from the reference run erm_1's validation per-class accuracy"
    assert rep["grouping"]["split"] == "val"


def test_an_unnamed_reference_is_not_called_none():
    """An in-memory reference (run_probe's reference=, no folder) has no run id: the note said "groups from the
    reference run None's validation per-class accuracy"."""
    reference = _report().model_copy(update={"run_id": None})
    rep = _report(reference=reference).model_dump(mode="json")
    assert rep["grouping"]["note"] == "groups from the reference run's validation per-class accuracy"


def test_cross_validated_reference_grouping_is_named_out_of_fold():
    """A reference that cross-validated ranked its classes out of fold on train + val, not on validation (the
    groups run_probe takes from it, probe.run._reference_floor): the note says so."""
    reference = _report().model_copy(update={"run_id": "erm_cv"})
    reference.grouping.split = "cv"
    reference.selection.split = "cv"
    reference.selection.cv = CrossValidation(folds=3, samples=831, reason="small validation split")
    rep = _report(reference=reference).model_dump(mode="json")
    assert rep["grouping"]["note"] == ("groups from the reference run erm_cv's out-of-fold per-class accuracy "
                                       "(3-fold cross-validation of train + val, 831 images)")
    assert rep["grouping"]["split"] == "cv"  # it said "val" (found by the third new-user round)
    assert _report(reference=_report()).grouping.split == "val"


def test_json_is_strict_and_roundtrips(tmp_path):
    rep = _report()
    rep.per_class[0].accuracy = float("nan")
    text = report_json(rep)
    assert "NaN" not in text
    (tmp_path / "report.json").write_text(text)
    loaded = load_report(tmp_path)
    assert loaded.per_class[0].accuracy is None
    rep.per_class[0].accuracy = None
    assert loaded == rep  # the model round-trips through report.json
    with pytest.raises(FileNotFoundError, match="report.json"):
        load_report(tmp_path / "missing")
    (tmp_path / "report.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ValueError, match="schema_version 99"):
        load_report(tmp_path)


def test_a_run_folder_whose_writing_was_interrupted_says_so(tmp_path):
    """Ctrl-C (or a kill, a full disk) while write_run wrote: the head and tables, no report.json (written last).
    It said 'no report.json at RUN/report.json; is RUN a finished run directory?', as of any folder."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "head.safetensors").write_bytes(b"x")
    (run / "head.json").write_text("{}")
    (run / ".lock").write_text("pid 4242")  # a killed writer's lock and temporary file: not the run's files
    (run / ".report.json.4242-0a1b.tmp").write_text("half a report")
    with pytest.raises(FileNotFoundError, match=r"holds no report.json, only files of an unfinished run "
                                                r"\(head.json, head.safetensors\): it was interrupted or failed"):
        load_report(run)
    with pytest.raises(FileNotFoundError, match="is .*empty a finished run directory"):
        load_report(tmp_path / "empty")
    killed = tmp_path / "killed"  # a first run's writing killed outright (SIGKILL): only its staging folder
    (killed / ".writing").mkdir(parents=True)
    (killed / ".writing" / "head.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"killed holds no report.json, only files of an unfinished run "
                                                r"\(.writing\)"):
        load_report(killed)


def test_csv_header_and_rows():
    rep = _report()
    rows = list(csv.reader(io.StringIO(report_csv(rep))))
    assert rows[0] == ["index", "name", "group", "n_train", "n_test", "accuracy", "accuracy_std", "accuracy_ci_lo",
                       "accuracy_ci_hi", "val_accuracy", "precision", "recall", "f1", "support", "r2", "r", "spread",
                       "gamma", "output_margin", "sample_margin_min", "sample_margin_mean", "stability",
                       "top_confusions", "n_val", "shipped_accuracy", "precision_ci_lo", "precision_ci_hi",
                       "recall_ci_lo", "recall_ci_hi", "f1_ci_lo", "f1_ci_hi", "val_accuracy_ci_lo",
                       "val_accuracy_ci_hi", "shipped_accuracy_ci_lo", "shipped_accuracy_ci_hi"]
    assert len(rows) == 4
    # the shipped probe's (first seed's) accuracy, the per-seed list's first
    assert [float(r[24]) for r in rows[1:]] == pytest.approx([r.accuracy_per_seed[0] for r in rep.per_class])
    assert rows[2][:5] == ["1", "dog", "hard", "50", "10"]
    assert float(rows[2][5]) == pytest.approx(0.6) and rows[2][17] == ""  # gamma null → empty cell
    assert rows[2][7:9] == ["", ""]  # no test predictions given to build_report: no interval
    assert math.isclose(float(rows[2][14]), 9.0)
    # a class (folder) name that starts like a spreadsheet formula is written as text
    rep.per_class[1].name = '=HYPERLINK("http://x","y")'
    assert list(csv.reader(io.StringIO(report_csv(rep))))[2][1] == "'=HYPERLINK(\"http://x\",\"y\")"


def test_csv_class_names_with_line_breaks_or_quotes_read_back_in_their_own_row():
    """per_class.csv ended rows with "\n" alone: a class name holding "\r" (a cache may) went unquoted and split its
    row for csv and pandas; rows end with "\r\n" as in the product's other CSV files."""
    rep = _report()
    names = ["x\ry", 'a,b;"c"\nd', "=1+1"]
    for row, name in zip(rep.per_class, names):
        row.name = name
    text = report_csv(rep)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert [len(r) for r in rows] == [len(PER_CLASS_COLUMNS)] * 4
    assert [csv_text(r[1]) for r in rows[1:]] == names
    assert text.count("\r\n") == 4 and text.startswith("index,")


def test_csv_cells_that_start_like_formulas_get_an_apostrophe():
    from probe.report import csv_cell

    assert [csv_cell(v) for v in ("=cmd().jpg", "+1", "-x", "@a", "\tb", "cat", "a=b", 0.5, -1.0, None)] == \
        ["'=cmd().jpg", "'+1", "'-x", "'@a", "'\tb", "cat", "a=b", 0.5, -1.0, None]


def test_format_report_is_readable():
    text = format_report(_report())
    assert "time:" not in text  # no timing given to build_report
    assert "run run_a" in text and "worst class (seed mean): dog 60.00%" in text
    assert "class margin 105.00° (ideal 120.00°)" in text
    unfit = _report()  # class vectors too narrow for the simplex: no ideal, and no degree sign after its dash
    unfit.summary.ideal_class_margin_deg = unfit.summary.ideal_sample_margin = None
    assert "class margin 105.00° (ideal —), min sample margin" in format_report(unfit)
    assert "cat" in text and "hard" in text
    header = next(line for line in text.splitlines() if "n_train" in line)
    # why a class fails: its training images; and how many validation images its val % rests on (a long-tailed round)
    assert header.split()[:5] == ["class", "group", "n_train", "n_val", "n_test"]
    car = next(line for line in text.splitlines() if line.split()[:1] == ["car"])  # the first table's row
    assert car.split()[2:5] == ["40", "—", "10"]  # built without validation counts
    trainer = SimpleNamespace(r2_=np.array([4.0, 9.0, 1.0]), spread_=np.array([1.0, 2.0, 0.5]), gamma_=None)
    evals = [_eval(0, [0.8, 0.5, 1.0], [0.7, 0.4, 0.9], 100.0), _eval(1, [0.6, 0.7, 0.9], [0.8, 0.6, 1.0], 110.0)]
    counted = build_report(run_id="run_a", config=ProbeConfig(seeds=[0, 1]), selected={"lr": 0.01, "weight_decay": 0.0},
                           selection=_report().selection, class_names=NAMES, groups=GROUPS, reference=None,
                           evaluations=evals,
                           trainer=trainer, n_train=np.array([50, 50, 40]), n_val=np.array([5, 6, 1]))
    car = next(line for line in format_report(counted).splitlines() if line.split()[:1] == ["car"])
    assert car.split()[2:5] == ["40", "1", "10"]
    assert "where the errors go" not in text  # no test predictions given to build_report: no diagnostics
    # worst first, as the second table and the caption of a truncated one (it listed best first; a scale round)
    lines = text.splitlines()
    accuracy = {r.name: r.accuracy for r in _report().per_class}
    for header in ("n_train", "smp mean"):  # the accuracy table, then the geometry and margins table
        first = lines[next(i for i, line in enumerate(lines) if header in line) + 1:]
        first = first[:first.index(next(line for line in first if not line.strip()))]
        assert [line.split()[0] for line in first[1:]] == sorted(accuracy, key=accuracy.get)
    assert "per class (test), worst first" in text


def test_per_class_accuracy_per_seed_is_kept_and_averages_to_accuracy(tmp_path):
    from testdata import gaussian_splits

    data = gaussian_splits(3, {"train": 30, "val": 10, "test": 10}, spread=3)
    report = run_probe(data, ["a", "b", "c"], ProbeConfig(seeds=[0, 1, 2], epochs=5, lr_grid=[1e-2], wd_grid=[0.0]))
    for pc in report.per_class:
        assert len(pc.accuracy_per_seed) == 3
        assert pc.accuracy == pytest.approx(float(np.mean(pc.accuracy_per_seed)))


def test_timing_line_of_the_terminal_view():
    from probe.report import Timing

    report = _report()
    report.timing = Timing(total_seconds=12.34, selection_seconds=10.0, seeds_seconds=2.049, fits=8, device="cpu",
                           threads=1)
    assert "time: 12.3 s (selection 10.0 s over 8 fits, seeds 2.0 s) on cpu, 1 thread\n" in format_report(report)
    report.timing.threads = 2
    assert "on cpu, 2 threads" in format_report(report)


def test_an_unknown_class_is_answered_with_the_classes_or_the_closest_names():
    from probe.report_text import unknown_class_text

    assert unknown_class_text("cow", ["cat", "dog"]) == "'cow' is not a class of this run; its classes: cat, dog"
    # the class but for case ('rare_thing' for 'rare_Thing' said nothing of it; a new-user round)
    assert unknown_class_text("rare_thing", ["BLUE squares", "rare_Thing"]) == (
        "'rare_thing' is not a class of this run (did you mean 'rare_Thing'?); its classes: BLUE squares, rare_Thing")
    # or but for a space at its end: 'Cat ' and 'Cat' read alike in the list (an extremes round)
    assert unknown_class_text("Cat", ["Cat ", " dog"]) == (
        "'Cat' is not a class of this run (did you mean 'Cat '?); its classes: \"Cat \", \" dog\"")
    many = [f"class_{k:03d}" for k in range(300)]
    text = unknown_class_text("clas_155", many)
    assert text.startswith("'clas_155' is not a class of this run, one of 300 (report.json class_names); did you "
                           "mean 'class_155'")
    assert len(text) < 200 and "class_299" not in text
    assert unknown_class_text("zebra", many) == "'zebra' is not a class of this run, one of 300 (report.json class_names)"
    # a name holding it is offered first (ImageNet-style names are far from their short form; a scale round)
    imagenet = [*many[:-1], "n01440764 tench, Tinca tinca"]
    assert unknown_class_text("Tench", imagenet).endswith("did you mean 'n01440764 tench, Tinca tinca'?")


def test_a_confusion_cell_is_two_class_indices_or_an_error_naming_the_argument():
    from probe.report_text import confusion_cell

    names = ["cat", "dog", "car"]
    assert confusion_cell(names, "dog", None) == (1, None)
    assert confusion_cell(names, "dog", "car") == (1, 2)
    with pytest.raises(ValueError, match=r"^--class 'cow' is not a class of this run"):
        confusion_cell(names, "cow", "car", ("--class", "--predicted"))
    with pytest.raises(ValueError, match=r"^predicted: 'cow' is not a class of this run"):
        confusion_cell(names, "dog", "cow", ("class:", "predicted:"))
    with pytest.raises(ValueError, match=r"^predicted names the class itself"):
        confusion_cell(names, "dog", "dog")
    # a name in decomposed Unicode (NFD: macOS) is the composed class name a data set's folder gave
    import unicodedata

    composed = ["cat", "Überschall", "čaj"]
    assert confusion_cell(composed, unicodedata.normalize("NFD", "Überschall"),
                          unicodedata.normalize("NFD", "čaj")) == (1, 2)
    # a run whose class names are decomposed (a manifest's labels, a cache written elsewhere): typed either way
    decomposed = ["cat", unicodedata.normalize("NFD", "Überschall")]
    assert confusion_cell(decomposed, decomposed[1], None) == (1, None)
    assert confusion_cell(decomposed, "Überschall", "cat") == (1, 0)


def test_report_json_puts_each_list_of_numbers_on_one_line():
    """The 300 × 300 confusion matrix took 88,791 of report.json's 103,248 lines (a scale round): every list of
    numbers is on one line, the file loads back equal, and a class name that looks like a list is left alone."""
    import re

    report = _report()
    report.class_names = ["[1,2]", *report.class_names[1:]]
    text = report_json(report)
    assert json.loads(text) == json.loads(report.model_dump_json()) and '"[1,2]"' in text
    lines = text.splitlines()
    assert not any(re.fullmatch(r"\s*-?[\d.]+,?", line) for line in lines)  # no number on a line of its own
    assert any(re.fullmatch(r'\s*"accuracy_per_seed": \[[\d., ]+\],?', line) for line in lines)
    assert len(lines) < len(report.model_dump_json(indent=2).splitlines())


def _many_classes(k: int, confusion: dict) -> dict:
    """_report()'s report.json widened to ``k`` classes, with ``confusion`` as given."""
    data = _report().model_dump(mode="json")
    names = [f"class {i}" for i in range(k)]
    thirds = np.array_split(np.arange(k), 3)
    return {**data, "class_names": names, "confusion": confusion,
            "per_class": [{**data["per_class"][0], "index": i, "name": n, "top_confusions": []}
                          for i, n in enumerate(names)],
            "val": {**data["val"], "per_class": [0.5] * k},
            "grouping": {**data["grouping"], "stability": None,
                         "groups": {g: t.tolist() for g, t in zip(GROUP_NAMES, thirds)}}}


def test_a_report_of_many_classes_carries_the_most_confused_classes_sub_matrix():
    """Beyond HEATMAP_CLASSES classes the dashboard showed a note instead of a confusion matrix (a many-classes
    round): the report's confusion carries the sub-matrix of the most confused classes that it draws, derived on
    reading, so that a report written before it (no "focus") has it too; up to the limit it is null."""
    from probe.metrics import confusion_cells, confusion_submatrix, most_confused_classes
    from probe.report import HEATMAP_CLASSES, Confusion, Report

    rng = np.random.default_rng(1)
    for k in (HEATMAP_CLASSES, HEATMAP_CLASSES + 1, 300):
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (rng.integers(0, k, 3 * k), rng.integers(0, k, 3 * k)), 1)
        old = Confusion.of(matrix).model_dump(mode="json", exclude={"focus"})
        focus = Report.model_validate(_many_classes(k, old)).confusion.focus
        if k <= HEATMAP_CLASSES:
            assert focus is None
            continue
        cells = confusion_cells(matrix)
        classes = most_confused_classes(cells, k, HEATMAP_CLASSES)
        assert focus.classes == classes.tolist() and len(focus.classes) == HEATMAP_CLASSES
        assert focus.counts == confusion_submatrix(cells, k, classes).tolist()
        forged = {**old, "focus": {"classes": [0], "counts": [[1, 0], [0, 1]]}}  # derived, not read
        assert Report.model_validate(_many_classes(k, forged)).confusion.focus == focus


def test_a_report_of_thousands_of_classes_is_read_without_its_dense_matrix(monkeypatch):
    """The sub-matrix of the most confused classes came from the K × K matrix, made on every read: 200 MB for a
    5,000-class report of a few thousand cells. It is found from the cells."""
    from probe.report import Confusion, Report

    def dense(self, num_classes):
        raise AssertionError(f"a {num_classes} × {num_classes} matrix made")

    monkeypatch.setattr(Confusion, "dense", dense)
    k = 5000
    cells = [[i, i, 2] for i in range(k)] + [[i, (i + 1) % k, 1] for i in range(0, k, 50)]
    focus = Report.model_validate(_many_classes(k, {"split": "test", "cells": cells})).confusion.focus
    assert focus.classes[:4] == [0, 1, 50, 51] and len(focus.classes) == 60  # one confusion each: by index
    assert focus.counts[0][:2] == [2, 1] and sum(map(sum, focus.counts)) == sum(c[2] for c in cells)


def test_a_confusion_of_more_than_100_classes_is_held_as_its_non_zero_cells(tmp_path):
    """A 5,000-class report.json was 80 MB of K × K counts (a scale round); beyond DENSE_CONFUSION_MAX classes the
    report holds the non-zero cells, which give back the same matrix, and a cell naming no class is refused."""
    from probe.report import DENSE_CONFUSION_MAX, Confusion

    rng = np.random.default_rng(0)
    for k in (3, DENSE_CONFUSION_MAX, DENSE_CONFUSION_MAX + 1, 400):
        matrix = np.zeros((k, k), dtype=np.int64)
        matrix[rng.integers(0, k, 50), rng.integers(0, k, 50)] += rng.integers(1, 5, 50)
        held = Confusion.of(matrix)
        assert (held.counts is None) == (k > DENSE_CONFUSION_MAX) and (held.cells is None) == (k <= DENSE_CONFUSION_MAX)
        assert np.array_equal(Confusion.model_validate(held.model_dump()).dense(k), matrix)
        if held.cells is not None:
            assert len(held.cells) == np.count_nonzero(matrix) and all(c[2] > 0 for c in held.cells)
    with pytest.raises(ValueError, match="either counts"):
        Confusion(counts=[[1]], cells=[[0, 0, 1]])
    with pytest.raises(ValueError, match="either counts"):
        Confusion()
    data = json.loads(report_json(_report()))
    data["confusion"] = {"split": "test", "cells": [[0, 1, 2], [2, 3, 1]]}
    with pytest.raises(ValueError, match="confusion.cells lies outside 0..2"):
        load_report(_write(tmp_path, data))
    data["confusion"]["cells"] = [[0, 1, 2], [2, 2, 5]]
    assert load_report(_write(tmp_path, data)).confusion.dense(3).tolist() == [[0, 2, 0], [0, 0, 0], [0, 0, 5]]


def _write(folder, data: dict):
    (folder / "report.json").write_text(json.dumps(data))
    return folder


def test_terminal_tables_keep_numbers_whole_and_cut_long_names_in_the_middle():
    """Rich gave the name column 7 characters ('Pullov…' at 120 columns) and wrapped a 1,000-class run's names onto
    up to ten lines (new-user and scale rounds): numbers stay whole, names are cut in their middle to the width
    left (the end tells 'goldfish #17' from 'goldfish #71'), each row on one line."""
    from probe.report_text import NAME_COLUMN, class_table, cut_name
    from rich.console import Console

    assert cut_name("n01447017 goldfish, Carassius auratus #17") == "n01447017 goldf…us auratus #17"
    assert len(cut_name("x" * 100)) == NAME_COLUMN and cut_name("Pullover") == "Pullover"
    assert cut_name("abcdefghij", 5) == "ab…ij" and cut_name("abcdefghij", 6) == "abc…ij"

    def render(names, width):
        columns = [("class", "left"), *((f"metric {i}", "right") for i in range(11)), ("notes", "left")]
        rows = [[name, *(f"{-123.456 + i:.3f}" for i in range(11)), "a few words of prose"] for name in names]
        console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
        console.print(class_table("t", columns, rows, width))
        return console.export_text().splitlines()

    for width in (120, 200):
        lines = render(["Pullover", "T-shirt_top"], width)
        assert max(map(len, lines)) <= width and any("Pullover " in line for line in lines)
        assert sum("-123.456" in line for line in lines) == 2  # every number whole, one row a line
    long = [f"n0144{i:04d} goldfish, Carassius auratus, a long Latin name #{i}" for i in range(3)]
    lines = render(long, 200)
    assert max(map(len, lines)) <= 200 and sum("-113.456" in line for line in lines) == 3
    assert all(any(f"#{i} " in line for line in lines) for i in range(3))  # the distinguishing end kept


def test_names_of_wide_characters_are_cut_to_their_cells_and_keep_their_end():
    """A CJK character or an emoji takes two terminal cells: cut by characters, '北京烤鸭 Peking duck … #0158' overflowed
    its column and rich cut its end too, so every such class of a 1,000-class run read '北京烤鸭 P……' (a many-classes
    round). Cut by cells, the distinguishing end stays and the row fits its column."""
    from probe.report_text import class_table, cut_name
    from rich.cells import cell_len
    from rich.console import Console

    name = "北京烤鸭 Peking duck served with pancakes and scallions, restaurant #0158"
    for width in (12, 13, 30):
        cut = cut_name(name, width)
        assert cell_len(cut) <= width and cell_len(cut) >= width - 1 and cut.endswith("58") and "…" in cut
    assert cut_name("Großer Schwertwal (Orcinus orca) 🐋 #0042", 20).endswith("🐋 #0042")
    assert cut_name("北京烤鸭", 8) == "北京烤鸭"  # 8 cells: whole
    names = [f"北京烤鸭 Peking duck served with pancakes and scallions, restaurant #{i:04d}" for i in range(3)]
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    rows = [[n, *(f"{-1.5 + i:.3f}" for i in range(11))] for n in names]
    console.print(class_table("t", [("class", "left"), *((f"m{i}", "right") for i in range(11))], rows, 120))
    lines = console.export_text().splitlines()
    assert all(any(f"#{i:04d} " in line for line in lines) for i in range(3)) and "……" not in "".join(lines)


@pytest.mark.parametrize("names", [["crane [bird]", "crane [machine]", "x [/] y"],
                                   ["animal:cat:1", "hot :dog: stand", "plain"]], ids=["markup", "emoji"])
def test_class_names_are_printed_as_they_are(names):
    """Rich read a class name as markup and emoji codes: 'crane [bird]' lost its '[bird]', 'x [/] y' ended mr2probe
    train (after the run was written) and report in a MarkupError (a many-classes round), and 'animal:cat:1'
    printed as 'animal🐱1' (a review)."""
    from probe import Report

    data = _report().model_dump(mode="json")
    data["class_names"] = names
    for row in data["per_class"]:
        row["name"] = names[row["index"]]
    text = format_report(Report.model_validate(data), width=200)
    assert all(f"  {name}  " in text for name in names) and "🐱" not in text and "🐶" not in text


def test_the_report_records_the_loss_options_a_run_trained_with_defaults_included():
    """A maintainer round: a loss left at its defaults (focal's γ = 2, label smoothing's 0.1) was recorded nowhere,
    and the headers named the loss alone. The per-class options the trainer fills (priors) are left out."""
    from probe.export import report_markdown

    rng = np.random.default_rng(0)

    def split(n):
        y = np.arange(n) % 3
        return rng.standard_normal((n, 4)).astype(np.float32) + y[:, None], y

    data = {"train": split(90), "val": split(60), "test": split(60)}
    focal = run_probe(data, NAMES, ProbeConfig(loss="focal", epochs=2, seeds=[0], cv=0))
    assert focal.config["loss_options"] == {} and focal.config["loss_options_used"] == {"gamma_focal": 2.0}
    assert "loss=focal (gamma_focal=2) p=2.0" in format_report(focal).splitlines()[0]
    assert "loss focal (gamma_focal=2)," in report_markdown(json.loads(report_json(focal)))
    adjusted = run_probe(data, NAMES, ProbeConfig(loss="logit_adjust", loss_options={"tau": 0.5}, epochs=2, seeds=[0],
                                                  cv=0))
    assert adjusted.config["loss_options_used"] == {"tau": 0.5}  # not the 3 priors
    erm = run_probe(data, NAMES, ProbeConfig(epochs=2, seeds=[0], cv=0))
    assert erm.config["loss_options_used"] == {} and "loss=ce p=2.0" in format_report(erm)
    # a report written before: the bare name
    old = {**erm.config}
    del old["loss_options_used"]
    assert "loss ce," in report_markdown({**json.loads(report_json(erm)), "config": old})


def test_the_csv_holds_each_class_s_stability_and_confusions_as_the_other_views_do():
    """A scale round: per_class.csv had neither the group stability nor the most-confused classes the dashboard,
    Markdown and JSON show."""
    rng = np.random.default_rng(1)

    def split(n):
        y = np.arange(n) % 3
        return rng.standard_normal((n, 4)).astype(np.float32) + 0.7 * y[:, None], y

    report = run_probe({"train": split(90), "val": split(150), "test": split(60)}, NAMES,
                       ProbeConfig(epochs=3, seeds=[0], cv=0))
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [float(r["stability"]) for r in rows] == pytest.approx(report.grouping.stability)
    for row, cls in zip(rows, report.per_class):
        assert row["top_confusions"] == ", ".join(f"{c.name} ({percent(c.rate, 1)})" for c in cls.top_confusions)
    assert any(row["top_confusions"] for row in rows)
    # each class's validation images beside its train and test ones (a dashboard-only round read 7 train images for
    # the 8 it uploaded: one was carved off for validation)
    assert [int(r["n_val"]) for r in rows] == [50, 50, 50] and [c.n_val for c in report.per_class] == [50, 50, 50]


def test_the_csv_leaves_a_class_s_unmeasured_stability_empty_as_the_service_s_csv_does():
    """A long-tailed round: a class of one validation image has no group stability (NaN in the run, null in
    report.json); the per_class.csv that mr2probe train wrote said "nan" there, the service's CSV of the same run an
    empty cell, the file's own rule for what is not measured."""
    rng = np.random.default_rng(2)

    def split(counts):
        y = np.repeat(np.arange(3), counts)
        return rng.standard_normal((len(y), 4)).astype(np.float32) + 0.7 * y[:, None], y

    report = run_probe({"train": split([30, 30, 30]), "val": split([20, 20, 1]), "test": split([10, 10, 10])},
                       NAMES, ProbeConfig(epochs=3, seeds=[0], cv=0))
    assert report.grouping.stability[2] is None or math.isnan(report.grouping.stability[2])
    text = report_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[2]["stability"] == "" and rows[0]["stability"] != ""
    assert "nan" not in text.lower()
    assert text == report_csv(Report.model_validate(json.loads(report_json(report))))


def test_a_test_split_that_ranks_the_thirds_against_their_names_is_warned_of():
    """A dashboard-only round read hard 90.0 % above easy 80.0 % with nothing said."""
    in_order = _report()  # easy (car) 95 %, hard (dog) 60 % on test
    assert not [w for w in in_order.warnings if w.startswith("On test the thirds are out of order")]
    trainer = SimpleNamespace(r2_=np.array([4.0, 9.0, 1.0]), spread_=np.array([1.0, 2.0, 0.5]), gamma_=None)
    evals = [_eval(0, [0.8, 0.9, 0.8], [0.7, 0.4, 0.9], 100.0)]  # hard (dog) 90 %, easy (car) 80 %
    chosen = Candidate(lr=0.01, weight_decay=0.0, val_overall=0.7, val_hard=0.5)
    rep = build_report(run_id="r", config=ProbeConfig(seeds=[0]), selected={"lr": 0.01, "weight_decay": 0.0},
                       selection=Selection(criterion="overall", candidates=[chosen], chosen=chosen, reason="x"),
                       class_names=NAMES, groups=GROUPS, reference=None, evaluations=evals, trainer=trainer,
                       n_train=np.array([50, 50, 40]))
    assert ("On test the thirds are out of order: the hard third scores 90.00 %, the easy one 80.00 %. The groups "
            "were ranked on validation and did not hold on these test images") in rep.warnings[-1]
    # a disparity-aware selection that kept the reference configuration is that ERM run: warned of alike; one that
    # changed the probe is not (raising the hard third can be its own doing)
    for verdict, warned in (("no_safe_improvement", True), ("improved", False)):
        hard = Selection(criterion="hard", candidates=[chosen], chosen=chosen, reason="x", verdict=verdict)
        rep = build_report(run_id="r", config=ProbeConfig(seeds=[0]), selected={"lr": 0.01, "weight_decay": 0.0},
                           selection=hard, class_names=NAMES, groups=GROUPS, reference=None, evaluations=evals,
                           trainer=trainer, n_train=np.array([50, 50, 40]))
        assert any(w.startswith("On test the thirds are out of order") for w in rep.warnings) is warned, verdict


def test_a_narrow_terminal_gets_every_number_whole():
    """A new-user round: at 100 columns rich cut the last columns' numbers with no mark (-0.087 read -0.08, the
    header 'smp mean' read 'sm mea'); the table is printed as wide as its numbers need."""
    text = format_report(_report(), width=60)
    table = text[text.index("per class (test), worst first"):]
    for value in ("0.300", "0.100", "0.800", "-0.500", "-0.900", "0.100"):  # the sample margins, last columns
        assert value in table
    assert "smp" in table and "mean" in table


def test_a_post_hoc_bias_too_few_images_could_test_says_so_and_what_to_do():
    """A new-user round: compare said "its guard declined" of a bias never tested (1 to 3 validation images a
    class), and the report did not say what would let it be tested."""
    from probe.compare import probe_words
    from probe.report import Posthoc, PosthocSeed

    seed = dict(seed=0, bias=[0.0, 0.0, 0.0], scale=1.0, val_overall_before=0.5, val_overall_after=0.5,
                val_objective_before=0.4, val_objective_after=0.4, applied=False, folds=0)
    rep = _report()
    rep.posthoc = Posthoc(objective="hard", guard=True, per_seed=[PosthocSeed(**seed)])
    rep.config = {**rep.config, "posthoc_bias": True}
    assert rep.posthoc.describe() == (
        "Post-hoc bias not applied: it is tested out of sample on the validation split, where every class needs 10 "
        "images, and some class has fewer (a val/ folder, or a larger val_fraction at extraction, gives them); the "
        "probe ships as trained, without the bias.")
    # with the counts, the classes named, and a class too small for any val share said so (a dashboard round: "a
    # larger val_fraction" for a class of 15 images)
    counts = [("Bag", 2, 22), ("Trouser", 2, 15), ("Coat", 30, 300)]
    assert rep.posthoc.describe(short=counts) == (
        "Post-hoc bias not applied: it is tested out of sample on the validation split, where every class needs 10 "
        "images, and 2 classes have fewer ('Bag' 2 of its 22, 'Trouser' 2 of its 15) (a val/ folder, or a larger "
        "val_fraction at extraction, gives them; 'Trouser' has too few images in all to give 10 and keep as many to "
        "train on: more images of it would); the probe ships as trained, without the bias.")
    assert probe_words(rep).endswith(", post-hoc bias not applied (too few validation images to test it)")
    rep.posthoc = Posthoc(objective="hard", guard=True, per_seed=[PosthocSeed(**{**seed, "folds": 5})])
    assert probe_words(rep).endswith(", post-hoc bias not applied (its guard declined)")


def test_a_feature_cache_given_for_a_run_is_named_so(tmp_path):
    """A new-user round: `mr2probe report cache.h5` said "not a JSON report (damaged or cut short?)"."""
    import h5py

    from probe import load_report

    with h5py.File(tmp_path / "cache.h5", "w") as f:
        f["x"] = [1]
    with pytest.raises(ValueError, match=r"cache.h5 is a feature cache \(HDF5\), not a run: give the run's folder"):
        load_report(tmp_path / "cache.h5")


def test_a_post_hoc_runs_outcome_for_the_probe_that_ships():
    from probe.report import POSTHOC_WORDS, Posthoc, PosthocSeed

    seed = dict(seed=0, bias=[0.0], scale=1.0, val_overall_before=0.5, val_overall_after=0.5,
                val_objective_before=0.4, val_objective_after=0.4)
    posthoc = lambda guard, **first: Posthoc(objective="hard", guard=guard,  # noqa: E731
                                             per_seed=[PosthocSeed(**{**seed, **first})])
    assert posthoc(True, applied=True, folds=5).outcome() == "applied"
    assert posthoc(True, applied=False, folds=5).outcome() == "declined"
    assert posthoc(True, applied=False, folds=0).outcome() == "untested"
    assert posthoc(False, applied=True, folds=5).outcome() == "unchecked"
    # a report from before the guard (guard and applied null) applied the bias unchecked: it read "applied", which
    # says its out-of-sample check passed (an upgrade round)
    old = posthoc(None, applied=None, bias=[0.3])
    assert old.outcome() == "unchecked" and old.describe() == (
        "Post-hoc bias applied to every seed without its out-of-sample check (a run from before the check existed).")
    assert posthoc(False, applied=True, bias=[0.3]).describe().endswith("check (posthoc_guard off).")
    # a bias fitted as 0 everywhere changes nothing, and says so (an extremes round: 'applied' alone, at 1 val image)
    assert posthoc(False, applied=True).describe() == (
        "Post-hoc bias applied to every seed without its out-of-sample check (posthoc_guard off); it came out 0 for "
        "every class of every seed (no shift raised the val hard accuracy without lowering its val overall), so no "
        "prediction changed.")
    assert set(POSTHOC_WORDS) == {"applied", "declined", "untested", "unchecked"}


def test_a_calibration_carries_its_sentence_worded_again_on_every_read():
    """The run page had its own copy of the calibration sentence (one decimal, other separators than the CLI's):
    the model now serves brief() as ``text``, derived on every build and read, so a stored older wording or a
    hand-edited one never reaches a page."""
    from probe.report import Calibration

    fields = dict(ece=0.05, ece_debiased=0.032, ece_ci=[0.01, 0.07], calibrated_p=0.2, confidence=0.9,
                  accuracy=0.8, nll=0.41, bins=[])
    cal = Calibration(**fields)
    assert cal.text == cal.brief() == (
        "ECE 5.00%, 3.20% once the estimate's own upward bias is removed, 95 % interval [1.0, 7.0] (not shown "
        "miscalibrated beyond noise on these images: p = 0.2; the interval sizes a miscalibration that may not be "
        "there), mean confidence 90.00% against accuracy 80.00% "
        "(overconfident by 10.0 points), NLL 0.410")
    stored = Calibration.model_validate({**cal.model_dump(), "text": "an old wording", "calibrated_p": 0.01})
    assert stored.text.startswith("ECE 5.00%") and "miscalibrated beyond noise: p = 0.01 if it were" in stored.text
    assert Calibration.model_validate({k: v for k, v in fields.items()}).text == cal.text  # a report before it


def test_a_reliability_bin_carries_its_accuracys_wilson_interval_derived_on_every_read():
    """The HTML report drew each confidence bin's Wilson interval and the dashboard none (it had no interval to
    draw): each bin serves ``accuracy_ci``, derived from its count and accuracy when built or read."""
    from scipy.stats import binomtest

    from probe.report import ReliabilityBin

    expected = binomtest(3, 4).proportion_ci(confidence_level=0.95, method="wilsoncc")  # under 30: corrected
    b = ReliabilityBin(upper=0.8, count=4, confidence=0.77, accuracy=0.75)
    assert b.accuracy_ci == pytest.approx([expected.low, expected.high], abs=1e-12)
    stored = ReliabilityBin.model_validate({**b.model_dump(), "accuracy_ci": [0.0, 1.0]})  # hand-edited or older
    assert stored.accuracy_ci == b.accuracy_ci
    assert ReliabilityBin(upper=0.2, count=0, confidence=None, accuracy=None).accuracy_ci is None  # no image


def test_a_worst_class_tied_with_hundreds_names_ten_and_counts_the_rest():
    """209 of 1,000 classes tied at 0 %: `train` printed 117 lines of names, twice, and each run's summary held them
    all (69 KB a run in the runs list; a 1,000-class round)."""
    from probe.report import TIES_LISTED, WorstClass

    names = [f"c{i}" for i in range(209)]
    worst = WorstClass.of(names[0], 0.0, names[1:])
    assert (worst.tied_with, worst.tied_count) == (names[1:1 + TIES_LISTED], 208)
    assert worst.label() == worst.text == f"c0 (tied with {', '.join(names[1:11])} and 198 more)"
    assert WorstClass.of("a", 0.5, ["b"]).text == "a (tied with b)" and WorstClass.of("a", 0.5, []).text == "a"
    older = WorstClass.model_validate({"name": "a", "accuracy": 0.0, "tied_with": names[1:20]})  # every tie listed
    assert older.text == f"a (tied with {', '.join(names[1:11])} and 9 more)"
    assert (older.tied_with, older.tied_count) == (names[1:11], 19)  # its stored list cut as it is read (a re-test)
    assert WorstClass.model_validate({**worst.model_dump(), "text": "edited"}).text == worst.text  # worded again


def test_per_class_csv_has_a_column_for_every_field_of_a_per_class_row():
    """A field added to PerClassRow and not to PER_CLASS_COLUMNS was silently left out of per_class.csv, while the
    CSV test compared the header with a copy of the constant (a maintainer round)."""
    from probe.report import PER_CLASS_COLUMNS, PerClassRow

    # written otherwise: the interval as its two ends, the per-seed accuracies as accuracy and accuracy_std
    otherwise = {**{f"{name}_ci": (f"{name}_ci_lo", f"{name}_ci_hi")
                    for name in ("accuracy", "precision", "recall", "f1", "val_accuracy", "shipped_accuracy")},
                 "accuracy_per_seed": ("accuracy_std",)}
    missing = [field for field in PerClassRow.model_fields
               if field not in PER_CLASS_COLUMNS and not set(otherwise.get(field, ("-",))) <= set(PER_CLASS_COLUMNS)]
    assert missing == []


def test_the_summary_averages_each_seeds_figures_and_weighs_group_margins_by_images():
    """Summary figures of several seeds, against numpy by hand: per_class_std is the mean over seeds of each seed's
    population std of its per-class accuracies (not the std of the seed-mean accuracies), min_sample_margin the mean
    over seeds of each seed's smallest sample margin (not the smallest of all), and a third's output margin the mean
    over its images (each class's mean weighed by its test images), averaged over seeds."""
    names = ["a", "b", "c", "d"]
    groups = {"easy": [3], "medium": [1, 2], "hard": [0]}
    counts = np.array([10, 10, 30, 20])

    def seed(s, acc, margin, smin):
        return SeedEvaluation(seed=s, val_per_class=np.array(acc), val_overall=float(np.mean(acc)),
                              test_per_class=np.array(acc), test_overall=float(np.mean(acc)),
                              output_margin_mean=np.array(margin), test_counts=counts,
                              sample_margin_min=np.array(smin), sample_margin_mean=np.zeros(4), class_margin_deg=90.0)

    evals = [seed(0, [0.5, 0.9, 0.6, 1.0], [0.1, 0.4, -0.2, 0.7], [-0.5, -0.9, 0.1, 0.2]),
             seed(1, [0.7, 0.5, 0.8, 0.9], [0.3, 0.0, 0.2, 0.5], [-0.3, -0.2, -0.4, 0.3])]
    trainer = SimpleNamespace(r2_=np.ones(4), spread_=np.ones(4), gamma_=None)
    chosen = Candidate(lr=0.01, weight_decay=0.0, val_overall=0.7, val_hard=0.5)
    rep = build_report(run_id="r", config=ProbeConfig(seeds=[0, 1]), selected={"lr": 0.01, "weight_decay": 0.0},
                       selection=Selection(criterion="overall", candidates=[chosen], chosen=chosen, reason="-"),
                       class_names=names, groups=groups, reference=None, evaluations=evals, trainer=trainer,
                       n_train=np.full(4, 50))
    s = rep.summary
    assert s.per_class_std == pytest.approx(np.mean([np.std([0.5, 0.9, 0.6, 1.0]), np.std([0.7, 0.5, 0.8, 0.9])]))
    assert s.min_sample_margin == pytest.approx(np.mean([-0.9, -0.4]))
    medium = [(10 * 0.4 + 30 * -0.2) / 40, (10 * 0.0 + 30 * 0.2) / 40]
    assert s.group_margin.medium == pytest.approx(np.mean(medium))
    assert (s.group_margin.easy, s.group_margin.hard) == (pytest.approx(0.6), pytest.approx(0.2))



class _Saved:
    """The head, or a file of one run only (seen_sources.npz of the old, predictions.npz of the new), holding
    the run's tag."""

    def __init__(self, tag, name=None):
        self.tag, self.name = tag, name

    def save(self, path, class_names=None):
        folder = Path(path) if self.name else Path(path).parent
        for name in [self.name] if self.name else ["head.safetensors", "head.json"]:
            (folder / name).write_text(self.tag)


def _write_tagged(run_dir, tag):
    """write_run of a run whose files say ``tag``."""
    extra = ({"seen": _Saved(tag, "seen_sources.npz")} if tag == "old"
             else {"predictions": _Saved(tag, "predictions.npz")})
    report = _report().model_copy(update={"run_id": tag, "created_at": "2026-01-01T00:00:00+00:00"})  # same bytes
    write_run(run_dir, report, _Saved(tag), **extra)


def _write_killed(run_dir, stop):
    """_write_tagged(run_dir, "new") in a child process killed at its ``stop``-th change of a file (its return
    code: 9) or finished before it (0)."""
    import os
    import pathlib

    pid = os.fork()
    if pid == 0:  # the child: nothing it does returns to pytest
        code, steps = 1, [0]
        try:
            def counted(real):
                def step(*args, **kwargs):
                    steps[0] += 1
                    if steps[0] == stop:
                        os._exit(9)  # SIGKILL's effect: nothing more runs
                    return real(*args, **kwargs)
                return step

            for name in ("rename", "replace", "unlink", "rmdir", "write_text"):
                setattr(pathlib.Path, name, counted(getattr(pathlib.Path, name)))
            shutil.rmtree = counted(shutil.rmtree)
            _write_tagged(run_dir, "new")
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _files(folder):
    """Every entry of ``folder``: a file's contents, None for a folder."""
    return {p.name: p.read_bytes() if p.is_file() else None for p in sorted(folder.iterdir())}


def test_a_run_replaced_by_a_writer_killed_at_any_step_is_the_old_run_or_the_new_whole(tmp_path):
    """SIGKILL between the removal of the old report.json and the move of the new one lost both runs (the folder
    held files of each, the new run's others were deleted with .writing by the next write). Killed at each step of
    the replacement in turn: a reader finds the old run whole or the new run whole, and the next write leaves
    nothing else behind."""
    expected = {}
    for tag in ("old", "new"):
        _write_tagged(tmp_path / tag, tag)
        (tmp_path / tag / "notes.txt").write_text("mine")  # a file of the user's, kept by every replacement
        expected[tag] = _files(tmp_path / tag)
    assert expected["old"].keys() != expected["new"].keys()
    stop, finished = 0, False
    while not finished:
        stop += 1
        run = tmp_path / f"killed_{stop}"
        shutil.copytree(tmp_path / "old", run)
        code = _write_killed(run, stop)
        assert code in (0, 9), (stop, code)
        finished = code == 0
        assert load_report(run).run_id in ("old", "new"), stop  # read as it was left
        seen = {name: data for name, data in _files(run).items() if not name.startswith(".")}
        assert seen in (expected["old"], expected["new"]), (stop, sorted(seen))
        _write_tagged(run, "new")  # the next command
        assert _files(run) == expected["new"], stop
    assert stop > 15  # every step was a kill once


def test_a_precision_undefined_for_a_class_never_predicted_is_said_under_the_table():
    """A class no test image was predicted as has no precision (0 / 0): the table of errors printed "—" with no
    word of why, as if a value were left out."""
    rep = _report()
    for row, precision in zip(rep.per_class, (0.8, None, 0.9)):
        row.precision, row.recall, row.f1 = precision, row.accuracy, row.accuracy
    text = " ".join(format_report(rep, width=300).split())
    assert "precision —: no test image was predicted as the class, so its precision TP / (TP + FP) is 0 / 0" in text
    rep.per_class[1].precision = 0.5
    assert "precision —" not in format_report(rep, width=300)


def test_names_alike_but_in_their_middle_are_cut_where_they_differ():
    """'circle_4_hstripes' and 'circle_4_vstripes' both read 'circle_4…stripes' when cut in their middle to 16 cells:
    two rows of a 120-class table under one name (a many-classes round). They are cut where they differ instead,
    at one place for all (names alike in their pattern stay readable down the column); none alike, the middle."""
    from probe.report_text import class_table, cut_names
    from rich.console import Console

    names = ["circle_4_hstripes", "circle_4_vstripes", "circle_5_hstripes", "circle_5_vstripes", "triangle_0_plain_x"]
    assert cut_names(names, 16) == ["circle_4_h…ripes", "circle_4_v…ripes", "circle_5_h…ripes", "circle_5_v…ripes",
                                    "triangle_0…ain_x"]
    assert cut_names(names[:1] + names[4:], 16) == ["circle_4…stripes", "triangle…plain_x"]  # none alike: the middle
    console = Console(file=io.StringIO(), width=60, record=True, color_system=None)
    rows = [[name, *(f"{-1.5 + i:.3f}" for i in range(5))] for name in names]
    console.print(class_table("t", [("class", "left"), *((f"m{i}", "right") for i in range(5))], rows, 60))
    text = console.export_text()
    assert "circle_4…stripes" not in text and "_h…" in text and "_v…" in text


def _cut_names_reference(names: list[str], width: int) -> list[str]:
    """cut_names as it was first written, every place tried on every name from scratch (seconds for 5,000 names
    alike in their middle): the output the faster one keeps."""
    from probe.names import shown_name
    from rich.cells import cell_len, get_character_cell_size

    def fit(text, cells):
        used = 0
        for i, char in enumerate(text):
            used += get_character_cell_size(char)
            if used > cells:
                return text[:i]
        return text

    def cut_at(name, head):
        return fit(name, head) + "…" + fit(name[::-1], width - 1 - head)[::-1]

    shown = [shown_name(name) for name in names]
    cuts = [name if cell_len(name) <= width else cut_at(name, width // 2) for name in shown]
    if len(set(cuts)) == len(set(shown)):
        return cuts
    for head in sorted(range(1, width - 1), key=lambda h: (abs(h - width // 2), h)):
        trial = [name if cell_len(name) <= width else cut_at(name, head) for name in shown]
        if len(set(trial)) == len(set(shown)):
            return trial
    return cuts


def _random_names(seed: int) -> list[str]:
    rng = random.Random(seed)  # wide, zero-width (a combining accent) and plain characters, short and long names
    return ["".join(rng.choice("ab_北🐋\u0301 ") for _ in range(rng.randint(1, 45))) for _ in range(300)]


@pytest.mark.parametrize("names", [
    ["circle_4_hstripes", "circle_4_vstripes", "circle_5_hstripes", "circle_5_vstripes", "triangle_0_plain_x"],
    [f"very_long_common_prefix_{i:05d}_very_long_common_suffix" for i in range(300)],
    [f"{'a' * 30}{i:05d}{'b' * 30}" for i in range(50)],  # no place tells them apart: the middle cut
    [f"n{i:08d} goldfish, Carassius auratus, a long Latin name #{i}" for i in range(50)],  # none alike
    [f"北京烤鸭 {i % 7} Peking duck served with pancakes {i // 7} #{i % 3}" for i in range(60)],
    [f"cafe\u0301 {i:03d} " + "x" * 40 for i in range(40)] + [" cat ", "cat", "a" * 40, "a" * 40, "short"],
    ["abc…xyz", "abc" + "m" * 20 + "xyz", "abc" + "n" * 20 + "xyz"],  # a whole name alike a cut one
    _random_names(0), _random_names(1)], ids=["circles", "prefix-suffix", "no-place", "imagenet", "cjk", "mixed",
                                              "whole-like-cut", "random-0", "random-1"])
def test_names_are_cut_as_every_place_tried_from_scratch_cuts_them(names):
    from probe.report_text import cut_names

    for width in (1, 2, 3, 7, 8, 16, 30):
        assert cut_names(names, width) == _cut_names_reference(names, width), width


def test_thousands_of_names_alike_in_their_middle_are_cut_apart_counting_each_character_once(monkeypatch):
    """5,000 names alike but in their middle ('very_long_common_prefix_00042_very_long_common_suffix') took
    seconds to cut: every place of 28 tried on every name, each counting its characters' cells again. Each name's
    characters are counted once (at most its width's worth from each end), and every name still reads apart."""
    import rich.cells
    from probe.report_text import NAME_COLUMN, cut_names
    from rich.cells import cell_len

    names = [f"very_long_common_prefix_{i:05d}_very_long_common_suffix" for i in range(5000)]
    counted = []
    cells = rich.cells.get_character_cell_size
    monkeypatch.setattr(rich.cells, "get_character_cell_size",
                        lambda char, *rest: counted.append(char) or cells(char, *rest))
    cuts = cut_names(names)
    assert len(counted) <= len(names) * 2 * (NAME_COLUMN + 1)  # 4.5 million when every place counted anew
    monkeypatch.undo()
    assert len(set(cuts)) == 5000 and all(cell_len(cut) == NAME_COLUMN for cut in cuts)
    assert all(cut.startswith("v…") and f"{i:05d}"[1:] in cut for i, cut in enumerate(cuts))


def test_a_prose_column_never_cuts_a_class_name():
    """The confusions column ('most often predicted as') was 12 cells wide beside the interval columns at 120
    columns, and rich cut each 17-character class name in it to 'square_5_hs…' or 'triangle_5_…', whatever its end
    (a many-classes round): a prose column is at least as wide as its longest word, and the table splits in two
    parts where the terminal has no room for it."""
    from probe.report_text import print_class_table, text_console

    columns = [("class", "left"), *((f"metric {i}", "right") for i in range(4)), ("predicted as", "left")]
    rows = [[f"circle_{i}_hstripes", *(f"0.00 [0.00, {80.2 + i:.2f}]" for _ in range(4)),
             f"square_{i}_hstripes (50.0), triangle_{i}_hstripes (50.0)"] for i in range(3)]
    console = text_console(120)
    print_class_table(console, "t", columns, rows, 120)
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 120 and "…" not in text
    assert all(f"square_{i}_hstripes" in text and f"triangle_{i}_hstripes" in text for i in range(3))


def test_the_spread_of_the_class_accuracies_is_a_line_of_its_own_under_the_worst_class():
    lines = [line.rstrip() for line in format_report(_report()).splitlines()]
    worst = next(i for i, line in enumerate(lines) if line.startswith("worst class (seed mean): "))
    assert "spread" not in lines[worst] and not lines[worst].endswith(" ")
    assert re.fullmatch(r"spread of the per-class accuracies: std \d+\.\d\d points \(seed mean\)", lines[worst + 1])


def test_the_most_confused_pairs_carry_the_wilson_interval_of_their_share_of_the_class_images():
    """The dashboard showed "30.0 % (18 of 60)" without an interval, the 60 counting each of 30 images once per seed
    (a dashboard round). The report's confusion lists its most confused pairs (derived on reading, so older
    reports have them), each share with the Wilson interval over the class's images counted once: 18 of 60
    predictions over 2 seeds are 9 of 30 images (scipy's "wilson"; under 30 images "wilsoncc", as accuracy_ci)."""
    from scipy.stats import binomtest

    data = _report().model_dump(mode="json")  # two seeds
    counts = [[42, 18, 0], [4, 16, 0], [4, 3, 13]]  # rows: 30, 10 and 10 images, each predicted by both seeds
    pairs = Report.model_validate({**data, "confusion": {"split": "test", "counts": counts}}).confusion.pairs
    got = [(p.true, p.predicted, p.count, p.predictions, p.rate) for p in pairs]
    assert got == [(0, 1, 18, 60, 0.3), (1, 0, 4, 20, 0.2), (2, 0, 4, 20, 0.2), (2, 1, 3, 20, 0.15)]
    expected = [binomtest(9, 30).proportion_ci(method="wilson"), binomtest(2, 10).proportion_ci(method="wilsoncc"),
                binomtest(2, 10).proportion_ci(method="wilsoncc")]
    for pair, ci in zip(pairs, expected):
        assert pair.rate_ci == pytest.approx([ci.low, ci.high], abs=1e-12)
    lo, hi = pairs[3].rate_ci  # 1.5 of 10 images: the formula's p̂ and n as they are, corrected under 30
    z = 1.959963984540054
    p, n = 0.15, 10
    root = math.sqrt(z * z - 2 - 1 / n + 4 * p * (n * (1 - p) + 1))
    assert lo == pytest.approx((2 * n * p + z * z - 1 - z * root) / (2 * (n + z * z)), abs=1e-12)
    assert lo < 0.15 < hi


def test_a_calibrations_accuracy_carries_its_wilson_interval_and_the_verdict_alone_says_if_the_gap_is_noise():
    """The panel read "mean confidence 73.14 % against accuracy 74.33 %" with no interval beside an ECE with one (a
    dashboard round): the accuracy carries its Wilson interval over the bins' images (as the run's
    shipped_overall_ci). Whether the gap is noise is the verdict's to say, by its own test: "within the accuracy's
    95 % interval" beside "miscalibrated beyond noise" contradicted it (a review)."""
    from scipy.stats import binomtest

    from probe.report import Calibration, ReliabilityBin

    bins = [ReliabilityBin(upper=0.5, count=10, confidence=0.45, accuracy=0.4),
            ReliabilityBin(upper=1.0, count=30, confidence=0.85, accuracy=0.8)]  # 28 of 40 right
    fields = dict(ece=0.05, ece_debiased=0.032, ece_ci=[0.01, 0.07], calibrated_p=0.2, confidence=0.75,
                  accuracy=0.7, nll=0.41, bins=bins)
    expected = binomtest(28, 40).proportion_ci(method="wilson")
    cal = Calibration(**fields)
    assert cal.accuracy_ci == pytest.approx([expected.low, expected.high], abs=1e-12)
    assert cal.text.endswith(f"mean confidence 75.00% against accuracy 70.00% [{percent(expected.low, 1)}, "
                             f"{percent(expected.high, 1)}] (overconfident by 5.0 points), NLL 0.410")
    far = Calibration(**{**fields, "confidence": 0.95, "calibrated_p": 0.001})
    assert "(overconfident by 25.0 points), NLL" in far.text and "beyond noise" in far.text
    assert Calibration.model_validate({**cal.model_dump(), "accuracy_ci": [0.0, 1.0]}).accuracy_ci == cal.accuracy_ci
