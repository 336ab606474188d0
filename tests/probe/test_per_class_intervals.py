"""Each per-class figure a report shows with its 95 % interval: the validation accuracy (over the validation
split's images of the class) beside the test accuracy's accuracy_ci, both Wilson (scipy's wilsoncc under 30
images); reports written before it read without one."""
import csv
import io

import numpy as np
import pytest
from scipy.stats import binomtest

from probe import ProbeConfig, run_probe
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
