"""Class names in a list joined by ", " (per_class.csv's and the exports' top confusions, the terminal's, the
leave-out refusal's class list, the unknown class's) are written by probe.names.listed_name: a class named 'a, b'
read as two classes 'a' and 'b' there; a worst class's ties too."""
import csv
import io

import numpy as np
import pytest

from probe import ProbeConfig, report_html, report_markdown, run_probe
from probe.report import report_csv
from probe.report_text import format_report, unknown_class_text
from probe.splits import kept_classes
from testdata import gaussian_splits

NAMES = ["a, b", "c", "d"]


@pytest.fixture(scope="module")
def report():
    data = gaussian_splits(3, {"train": 20, "val": 6, "test": 30}, spread=0.3)
    found = run_probe(data, NAMES, ProbeConfig(epochs=3, lr_grid=[0.05], wd_grid=[0.0], cv=0, seeds=[0]))
    assert any(c.name == "a, b" for row in found.per_class for c in row.top_confusions)
    return found


def test_the_confusions_columns_quote_a_name_holding_a_comma(report):
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(report_csv(report)))}
    confused = [rows[n]["top_confusions"] for n in ("c", "d") if "a, b" in rows[n]["top_confusions"]]
    assert confused and all('"a, b" (' in text for text in confused)
    stored = report.model_dump(mode="json")
    assert '"a, b" (' in report_markdown(stored) and "<bdi>&quot;a, b&quot;</bdi> (" in report_html(stored)
    assert '"a, b" (' in format_report(report, width=200)


def test_the_class_lists_of_refusals_quote_a_name_holding_a_comma():
    with pytest.raises(ValueError) as said:
        kept_classes(["e"], NAMES)
    assert str(said.value).endswith('the classes: "a, b", c, d')
    assert unknown_class_text("e", NAMES).endswith('its classes: "a, b", c, d')


def test_a_worst_class_s_ties_quote_a_name_holding_a_comma():
    from probe.report import WorstClass

    assert WorstClass.of("c", 0.5, ["a, b", "d"]).text == 'c (tied with "a, b", d)'
