"""Shareable report files: Markdown and self-contained HTML with inline SVG, from a real run's report.json."""
import json
import re
from html.parser import HTMLParser

import pytest

import numpy as np

from probe import ProbeConfig, run_probe
from probe.export import EXPORT_FORMATS, report_html, report_markdown

NAMES = ["cat <b>", "dog|pipe", "car", "ship", "frog", "deer"]  # markup and a pipe must be escaped


def _split(rng, means, m):
    y = np.repeat(np.arange(len(means)), m)
    return (means[y] + rng.normal(0, 1.5, (len(y), means.shape[1]))).astype(np.float32), y


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, (len(NAMES), 8))
    data = {split: _split(rng, means, m) for split, m in (("train", 40), ("val", 20), ("test", 40))}
    out = tmp_path_factory.mktemp("run")
    run_probe(data, NAMES, ProbeConfig(epochs=30, lr_grid=[0.05], wd_grid=[0.0], seeds=[0, 1]), out_dir=out)
    return json.loads((out / "report.json").read_text())


def test_markdown_tables_worst_class_first(report):
    text = report_markdown(report)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "%" not in line and "---" not in line]
    per_class = rows[-len(NAMES):]
    accuracies = sorted(r["accuracy"] for r in report["per_class"])
    assert [float(row.split(" | ")[3]) for row in per_class] == [round(100 * a, 2) for a in accuracies]
    assert "cat &lt;b&gt;" in text and "dog\\|pipe" in text and "<b>" not in text
    overall = report["seeds"]["metrics"]["overall"]
    assert f"| overall | {100 * overall['mean']:.2f} ± {100 * overall['std']:.2f} |" in text


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.rects, self.urls = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "rect":
            self.rects.append(float(attrs["width"]))
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]


def test_html_is_self_contained_with_charts(report):
    page = report_html(report)
    parser = _Collect()
    parser.feed(page)
    assert parser.tags.count("svg") == 2 and "table" in parser.tags
    assert parser.urls == [] and "<script" not in page  # nothing to fetch, nothing to run
    assert re.search(r"https?://(?!www\.w3\.org/2000/svg)", page) is None
    # One bar per class plus one per summary metric; bar length is proportional to accuracy (plot 430 px wide).
    assert len(parser.rects) == len(NAMES) + 6
    worst = min(r["accuracy"] for r in report["per_class"])
    assert min(parser.rects[6:]) == pytest.approx(430 * worst, abs=0.06)
    assert "cat &lt;b&gt;" in page and "<b>" not in page
    assert set(EXPORT_FORMATS) == {"md", "html"}


def test_the_views_say_where_the_time_went(report):
    from probe.report import Timing

    line = Timing.model_validate(report["timing"]).describe()
    # one candidate fitted on each of 5 folds (20 validation images per class: cross-validated), then 2 seeds
    assert re.fullmatch(r"\d+\.\d s \(selection \d+\.\d s over 7 fits, seeds \d+\.\d s\) on cpu, \d+ threads?", line)
    assert f"- **Time:** {line}" in report_markdown(report)
    assert f"<dt>Time</dt><dd>{line}</dd>" in report_html(report)
    old = {key: value for key, value in report.items() if key != "timing"}  # a report written before timing
    assert "- **Time:** not recorded" in report_markdown(old)
