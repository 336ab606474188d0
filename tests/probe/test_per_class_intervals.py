"""Each per-class figure a report shows with its 95 % interval: the validation accuracy (over the validation
split's images of the class) beside the test accuracy's accuracy_ci, both Wilson (scipy's wilsoncc under 30
images); reports written before it read without one."""
import csv
import io
import json

import numpy as np
import pytest
from scipy.stats import binomtest

from probe import ProbeConfig, load_report, run_probe
from probe.report import PerClassRow, report_csv
from testdata import gaussian_splits

NAMES = ["a", "b", "c"]
QUICK = dict(epochs=5, lr_grid=[0.05], wd_grid=[0.0], cv=0)


def _wilsoncc(right: float, images: int) -> tuple[float, float]:
    ci = binomtest(round(right), images).proportion_ci(0.95, method="wilsoncc")
    return ci.low, ci.high


@pytest.fixture(scope="module")
def data():
    return gaussian_splits(3, {"train": 20, "val": 6, "test": 7}, spread=1.0)


def test_each_class_s_validation_accuracy_carries_its_wilson_interval_over_its_val_images(data):
    report = run_probe(data, NAMES, ProbeConfig(**QUICK, seeds=[0]))
    for row in report.per_class:
        assert row.n_val == 6
        assert row.val_accuracy_ci == pytest.approx(_wilsoncc(row.val_accuracy * 6, 6), abs=1e-9)
    written = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [float(r["val_accuracy_ci_lo"]) for r in written] == pytest.approx(
        [row.val_accuracy_ci[0] for row in report.per_class])


def test_a_row_written_before_the_validation_interval_reads_and_writes_without_one():
    row = PerClassRow.model_validate(dict(
        index=0, name="a", group="easy", n_train=1, n_test=1, accuracy=1.0, accuracy_std=0.0, accuracy_per_seed=[1.0],
        val_accuracy=1.0, r2=None, r=None, spread=None, gamma=None, output_margin=None, sample_margin_min=None,
        sample_margin_mean=None))
    assert row.val_accuracy_ci is None
    report = type("R", (), {"per_class": [row], "grouping": type("G", (), {"stability": None})()})()
    written = next(csv.DictReader(io.StringIO(report_csv(report))))
    assert written["val_accuracy_ci_lo"] == written["val_accuracy_ci_hi"] == ""


@pytest.fixture(scope="module")
def two_seeds(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("shipped") / "run"
    return run_probe(data, NAMES, ProbeConfig(**QUICK, seeds=[0, 1]), out_dir=out), out


def test_each_class_s_shipped_accuracy_carries_its_wilson_interval_over_its_test_images(two_seeds):
    report, out = two_seeds
    for row in report.per_class:
        assert row.shipped_accuracy_ci == pytest.approx(_wilsoncc(row.accuracy_per_seed[0] * 7, 7), abs=1e-9)
    written = list(csv.DictReader(io.StringIO((out / "per_class.csv").read_text())))
    assert [float(r["shipped_accuracy_ci_hi"]) for r in written] == pytest.approx(
        [row.shipped_accuracy_ci[1] for row in report.per_class])


def test_a_report_written_before_the_shipped_interval_reads_with_it(two_seeds):
    """The interval is derived from the first seed's accuracy and n_test, both in every report: one written before
    the field (and edited to another value) reads with the derived interval, the one every view shows."""
    report, out = two_seeds
    stored = json.loads((out / "report.json").read_text())
    for row in stored["per_class"]:
        del row["shipped_accuracy_ci"], row["val_accuracy_ci"]
    stored["per_class"][0]["accuracy_per_seed"][0] = 0.0
    (out / "report.json").write_text(json.dumps(stored))
    old = load_report(out)
    assert old.per_class[0].shipped_accuracy_ci == pytest.approx(_wilsoncc(0, 7), abs=1e-9)
    assert [row.shipped_accuracy_ci for row in old.per_class[1:]] == [row.shipped_accuracy_ci
                                                                      for row in report.per_class[1:]]
    assert all(row.val_accuracy_ci is None for row in old.per_class)


def test_the_terminal_table_gives_shipped_and_val_accuracy_with_their_intervals_and_cuts_no_column(two_seeds):
    """The terminal's first per-class table gave "shipped %" and "val %" bare; with their intervals it outgrew 120
    columns and rich cut its last column off whole (the sample margins' mean), now in a table of its own (the
    geometry and margins), each row ending in it."""
    from probe import format_report
    from probe.numbers import interval_text, number_text, percent

    report, _ = two_seeds
    lines = format_report(report, width=120).splitlines()
    for row in report.per_class:
        line = next(line for line in lines if line.split()[:2] == [row.name, row.group])
        assert f"{percent(row.accuracy_per_seed[0])} {interval_text(row.shipped_accuracy_ci)}" in line
        assert f"{percent(row.val_accuracy)} {interval_text(row.val_accuracy_ci)}" in line
        margins = next(line for line in lines if line.split()[:2] == [row.name, number_text(row.r2, ".4g")])
        assert line.rstrip().endswith(interval_text(row.val_accuracy_ci))  # the last column of its table
        assert margins.split()[-1] == number_text(row.sample_margin_mean)


@pytest.mark.parametrize("width", [120, 80])
def test_every_line_of_the_terminal_report_fits_its_width_and_keeps_every_figure(data, width):
    """With shipped % and val % given their intervals the first per-class table took 159 characters at any width:
    every row wrapped in a 120-column terminal. The per-class figures are now in tables by purpose (accuracy;
    geometry and margins; where the errors go), a table wider than the terminal split into parts that each repeat
    the class names, and every line fits, names of 60 characters too, with every figure whole."""
    from probe import format_report
    from probe.numbers import interval_text, number_text, percent

    from probe.names import listed_name
    from probe.report_text import cut_name

    names = [f"{c * 50} long class name {c}"[-60:] for c in "abc"]
    report = run_probe(data, names, ProbeConfig(**QUICK, seeds=[0, 1]))
    text = format_report(report, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    # the tables' caption (the classes listed of more) whole on its line under each narrow table too, and each
    # confusion of the errors table ("name (rate)") whole on one line: '1 (2.4)' was broken over two
    for run in (report, run_probe(data, ["a", "b", "c"], ProbeConfig(**QUICK))):  # short names: narrow tables
        short = format_report(run, width=width, max_classes=2).splitlines()
        assert max(map(len, short)) <= width and [line.strip() for line in short].count(
            "the 2 worst of 3 classes by test accuracy; the other 1 are in per_class.csv") == 3
    confusions = [f"{cut_name(c.name, 24, listed_name)} ({percent(c.rate, 1)})" for row in report.per_class
                  for c in row.top_confusions if c.rate > 0]
    assert confusions and all(any(c in line for line in text.splitlines()) for c in confusions)
    for row in report.per_class:
        for figure in (f"{percent(row.accuracy_per_seed[0])} {interval_text(row.shipped_accuracy_ci)}",
                       f"{percent(row.val_accuracy)} {interval_text(row.val_accuracy_ci)}",
                       number_text(row.sample_margin_mean), number_text(row.r2, ".4g"), interval_text(row.recall_ci)):
            assert figure in text


def test_the_exports_give_shipped_and_val_accuracy_with_their_intervals_and_older_reports_render(two_seeds):
    from probe import report_html, report_markdown
    from probe.numbers import interval_text, percent

    report, _ = two_seeds
    stored = report.model_dump(mode="json")
    markdown, html = report_markdown(stored), report_html(stored)
    assert "| shipped (first seed) % [95 %] | val accuracy % [95 %] |" in markdown
    for row in report.per_class:
        shipped = f"{percent(row.accuracy_per_seed[0])} {interval_text(row.shipped_accuracy_ci)}"
        val = f"{percent(row.val_accuracy)} {interval_text(row.val_accuracy_ci)}"
        assert f"| {shipped} | {val} |" in markdown
        assert f'<td><span class="n">{shipped}</span></td><td><span class="n">{val}</span></td>' in html
    for row in stored["per_class"]:  # written before both intervals: val bare, shipped's derived from the row
        del row["shipped_accuracy_ci"], row["val_accuracy_ci"]
    first = report.per_class[0]
    shipped = f"{percent(first.accuracy_per_seed[0])} {interval_text(first.shipped_accuracy_ci)}"
    assert f"| {shipped} | {percent(first.val_accuracy)} |" in report_markdown(stored)
