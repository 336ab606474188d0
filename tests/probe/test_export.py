"""Shareable report files: Markdown and self-contained HTML with inline SVG, from a real run's report.json."""
import html
import json
import re
from html.parser import HTMLParser

import pytest

import numpy as np

from probe import ProbeConfig, run_probe
from probe.export import (EXPORT_FORMATS, MATRIX_MAX_CLASSES, PER_CLASS_HEADER as PER_CLASS_COLUMNS, report_html,
                          report_markdown)
from probe.numbers import fixed, percent

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


def _md_table(text: str, first_header: str) -> list[list[str]]:
    """The body rows (cells) of the Markdown table whose header row starts with ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        body.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return body


def _cell(text: str) -> str:
    """A Markdown table cell as probe.export writes it: what CommonMark reads as a tag (<b, </, <!) or an entity
    (&amp;) escaped, pipes escaped; any other < > & as it is."""
    text = re.sub(r"&(?=#?[A-Za-z0-9]+;)", "&amp;", text)
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text).replace("|", "\\|")


def test_markdown_tables_worst_class_first(report):
    text = report_markdown(report)
    per_class = _md_table(text, "class")
    accuracies = sorted(r["accuracy"] for r in report["per_class"])
    assert [float(row[4]) for row in per_class] == [round(100 * a, 2) for a in accuracies]
    n_train = {_cell(r["name"]): str(r["n_train"]) for r in report["per_class"]}
    assert [row[2] for row in per_class] == [n_train[row[0]] for row in per_class]  # the training images
    assert "cat &lt;b>" in text and "dog\\|pipe" in text and "<b>" not in text
    # the seeds' worst class (any class) is named apart from the worst class on the seed mean (a new-user round
    # read "worst class | 41.67" and "Worst class: dress (47.22 %)" as a contradiction)
    assert "| worst class of each seed | " in text
    report["warnings"] = ["class 'cat' has \"few\" images"]
    assert "- class 'cat' has \"few\" images" in report_markdown(report)  # quotes as written, not &#x27;
    overall = report["seeds"]["metrics"]["overall"]
    # 55.625 is 55.63 (half away from zero, as the dashboard's): Python's :.2f ties to even
    assert f"| overall | {percent(overall['mean'])} ± {percent(overall['std'])} |" in text
    lo, hi = report["summary"]["overall_ci"]
    images = sum(r["n_test"] for r in report["per_class"])
    assert f"| overall | {percent(overall['mean'])} ± {percent(overall['std'])} |\n" \
           f"| overall: 95 % interval over the {images} test images | [{percent(lo, 1)}, {percent(hi, 1)}] |\n" in text


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


def test_the_html_per_class_chart_draws_the_worst_and_shortens_long_names(report):
    """1,000 classes drew 1,000 bars in an SVG 18,036 px tall, each long name cut at the chart's left edge (a
    1,000-class round): the chart draws the CHART_CLASSES worst, as the dashboard's, with names shortened there and
    whole in the tooltip and the table."""
    from probe.report import CHART_CLASSES

    names = [f"class {i:04d} of a rather long and descriptive name" for i in range(150)]
    rows = [{**report["per_class"][0], "index": i, "name": name, "accuracy": (i * 37 % 150) / 150}
            for i, name in enumerate(names)]
    page = report_html({**report, "class_names": names, "per_class": rows})
    chart = page[page.index("Per-class test accuracy"):]
    chart = chart[:chart.index("</svg>")]
    assert chart.startswith("Per-class test accuracy, coloured by group\"")  # the title, short enough for the chart
    assert (f"<h2>Per class (test), worst first</h2><p>The chart draws the {CHART_CLASSES} worst of the 150 classes; "
            "the table lists every one.</p>") in page
    assert chart.count("<rect") == CHART_CLASSES
    assert ">class 0000…tive name</text>" in chart and f"<title>{names[0]}: 0.00 %" in chart  # the worst
    assert all(f"<td>{name}</td>" in page for name in names)
    # the name column wraps a long name; other cells never break a number (a re-test: "0./00/0")
    assert "td:first-child{overflow-wrap:anywhere;min-width:10em}" in page and "td{overflow-wrap" not in page


def test_html_is_self_contained_with_charts(report):
    page = report_html(report)
    parser = _Collect()
    parser.feed(page)
    assert parser.tags.count("svg") == 3 and "table" in parser.tags  # groups, per class, reliability
    assert parser.urls == [] and "<script" not in page  # nothing to fetch, nothing to run
    assert re.search(r"https?://(?!www\.w3\.org/2000/svg)", page) is None
    # One bar per class plus one per summary metric and one per non-empty confidence bin; bar length is
    # proportional to accuracy (plot 430 px wide).
    filled = sum(1 for b in report["calibration"]["bins"] if b["count"])
    assert len(parser.rects) == len(NAMES) + 6 + filled
    worst = min(r["accuracy"] for r in report["per_class"])
    assert min(parser.rects[6:6 + len(NAMES)]) == pytest.approx(430 * worst, abs=0.06)
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


def test_the_exports_name_the_features(report):
    assert "- **Features:** not recorded" in report_markdown(report)  # run_probe was given bare arrays
    named = {**report, "features": {"fingerprint": "ab" * 32, "encoder": "effnet-lite0", "cache": "c|10.h5"}}
    assert "- **Features:** effnet-lite0, cache abababababab… (c\\|10.h5)" in report_markdown(named)
    assert "<dt>Features</dt><dd>effnet-lite0, cache abababababab… (c|10.h5)</dd>" in report_html(named)


def test_exports_carry_the_warnings_the_diagnostics_and_the_confusion_matrix(report):
    """What the dashboard shows travels with the shareable files: the run's warnings, each class's 95 % interval,
    precision / recall / F1 and most frequent confusions, and the confusion matrix (rows: true class)."""
    text, page = report_markdown(report), report_html(report)
    assert report["warnings"]  # 20 validation images per class: the small-split warning at least
    for warning in report["warnings"]:
        assert f"- {_cell(warning)}" in text
        assert f"<li>{html.escape(warning)}</li>" in page
    rows = {row[0]: row for row in _md_table(text, "class")}
    # the header says what the brackets after precision, recall and F1 are (unsaid before; a review)
    header = next(line for line in text.splitlines() if line.startswith("| class | group |"))
    assert "| precision % [95 %] | recall % [95 %] | F1 [95 %] |" in header, header
    assert "<th>precision % [95 %]</th>" in page
    for r in report["per_class"]:
        row = rows[_cell(r["name"])]
        lo, hi = r["accuracy_ci"]
        assert row[5] == f"[{percent(lo, 1)}, {percent(hi, 1)}]"
        # the shipped probe's accuracy beside the seeds' mean (a new-user round): the first seed's
        slo, shi = r["shipped_accuracy_ci"]
        assert row[7] == f"{percent(r['accuracy_per_seed'][0])} [{percent(slo, 1)}, {percent(shi, 1)}]"
        # each with its 95 % interval (probe.uncertainty.precision_recall_f1_intervals)
        (plo, phi), (flo, fhi) = r["precision_ci"], r["f1_ci"]
        assert row[9] == f"{percent(r['precision'])} [{percent(plo, 1)}, {percent(phi, 1)}]"
        assert row[10].startswith(percent(r['recall']) + " [")
        assert row[11] == f"{r['f1']:.3f} [{flo:.2f}, {fhi:.2f}]"
        expected = ", ".join(f"{c['name']} ({percent(c['rate'], 1)})" for c in r["top_confusions"] if c["rate"] > 0)
        assert row[12] == (_cell(expected) or "—")
    shipped = report["seeds"]["metrics"]["overall"]["per_seed"][0]  # the shipped probe's overall beside the mean
    from probe.report import interval_text

    assert (f"| overall: the shipped probe (first seed) | {percent(shipped)} (95 % interval "
            f"{interval_text(report['summary']['shipped_overall_ci'])}) |") in text
    worst = report["summary"]["worst_class"]  # with its interval, as its table row (a new-user round: alone)
    ci = next(r["accuracy_ci"] for r in report["per_class"] if r["name"] == worst["name"])
    assert f"{percent(worst['accuracy'])} %, 95 % interval {interval_text(ci)})" in text
    first = min((r["accuracy_per_seed"][0], r["index"], r["name"]) for r in report["per_class"])
    from probe.report import shipped_class_ci

    first_ci = shipped_class_ci(next(r for r in report["per_class"] if r["name"] == first[2]))
    assert f"; of the shipped probe (first seed): {_cell(first[2])} {percent(first[0])} % {interval_text(first_ci)}." \
        in text
    matrix = _md_table(text, "true / predicted")
    assert [[int(c) for c in row[1:]] for row in matrix] == report["confusion"]["counts"]
    assert sum(map(sum, report["confusion"]["counts"])) == 2 * len(NAMES) * 40  # 2 seeds × 240 test images
    assert page.count("<h2>Confusion matrix (test)</h2>") == 1 and "counted together" in page


def test_exports_leave_a_large_matrix_in_the_json_and_old_reports_without_diagnostics_still_export(report):
    names = [f"c{i}" for i in range(MATRIX_MAX_CLASSES + 1)]
    wide = {**report, "class_names": names, "confusion": {"split": "test", "counts": [[0] * len(names)] * len(names)}}
    text = report_markdown(wide)
    assert f"{len(names)} classes: the {len(names)} × {len(names)} matrix is in report.json" in text
    assert "| true / predicted |" not in text
    old = {**report, "confusion": None, "warnings": [],
           "per_class": [{k: v for k, v in r.items() if k not in ("accuracy_ci", "precision", "recall", "f1",
                                                                   "top_confusions")} for r in report["per_class"]]}
    text = report_markdown(old)
    assert "Confusion matrix" not in text and "## Warnings" not in text
    assert all(row[5] == "—" and row[9:13] == ["—"] * 4 for row in _md_table(text, "class"))
    assert "Confusion matrix" not in report_html(old)


def test_terminal_report_shows_where_each_class_errs(report):
    """mr2probe report (the terminal view) has the same interval, precision / recall / F1 and confusions."""
    from probe import format_report
    from probe.report import Report

    text = format_report(Report.model_validate(report), width=200)
    assert "per class (test): where the errors go, worst first" in text
    worst = min(report["per_class"], key=lambda r: r["accuracy"])
    # the second table's row (the first's gives the shipped and val accuracies' intervals)
    line = [line for line in text.splitlines() if line.strip().startswith(worst["name"] + " ") and "[" in line][-1]
    lo, hi = worst["accuracy_ci"]
    confused = ", ".join(f"{c['name']} ({percent(c['rate'], 1)})" for c in worst["top_confusions"] if c["rate"] > 0)
    ci = {name: worst[f"{name}_ci"] for name in ("precision", "recall", "f1")}
    cells = [percent(worst['accuracy']), f"[{percent(lo, 1)}, {percent(hi, 1)}]", percent(worst['precision']),
             f"[{percent(ci['precision'][0], 1)}, {percent(ci['precision'][1], 1)}]", percent(worst['recall']),
             f"[{percent(ci['recall'][0], 1)}, {percent(ci['recall'][1], 1)}]", fixed(worst['f1'], 3),
             f"[{fixed(ci['f1'][0], 2)}, {fixed(ci['f1'][1], 2)}]", confused]
    assert line.split(worst["name"], 1)[1].split() == " ".join(cells).split()


def test_the_confusions_column_says_they_are_shares_of_the_class_s_own_images(report):
    """A new-user round read "most confused with (% of its test predictions)" as a precision (of the images predicted
    as the class, how many were another): each share is of the class's own test images, a row of the matrix."""
    from probe import format_report
    from probe.report import Report

    header = "most often predicted as (% of its test images)"
    terminal = format_report(Report.model_validate(report), width=250)
    assert f"| F1 [95 %] | {header} |" in report_markdown(report) and f"<th>{header}</th>" in report_html(report)
    assert header in terminal and "test predictions" not in terminal
    counts = np.array(report["confusion"]["counts"])
    for r in report["per_class"]:  # a row of the confusion matrix (true class r), not a column
        for c in r["top_confusions"]:
            assert c["rate"] == pytest.approx(counts[r["index"], c["index"]] / counts[r["index"]].sum())


def test_terminal_report_of_many_classes_lists_the_worst_and_says_where_the_rest_are(report):
    """Above ``max_classes`` the three terminal tables (accuracy, geometry and margins, where the errors go) list the
    same worst classes and say how many more the files hold (a 300-class run had printed 600 rows); None lists every
    class."""
    from probe import format_report
    from probe.report import Report
    from probe.report_text import TERMINAL_CLASSES

    rep = Report.model_validate(report)
    order = sorted(report["per_class"], key=lambda r: (r["accuracy"], r["index"]))
    worst = {r["name"] for r in order[:4]}

    def listed(text: str) -> list[str]:
        return [name for line in text.splitlines() for name in NAMES if line.strip().startswith(name + " ")]

    short = format_report(rep, width=200, max_classes=4)
    assert sorted(listed(short)) == sorted(list(worst) * 3)  # each of the 4 worst once per table, no other class
    # under each table, on a line of its own (under the narrow geometry table it had wrapped to that table's width)
    caption = "the 4 worst of 6 classes by test accuracy; the other 2 are in per_class.csv"
    assert " ".join(short.split()).count(caption) == 3
    every = format_report(rep, width=200, max_classes=None)
    assert sorted(listed(every)) == sorted(NAMES * 3) and "worst of" not in every
    assert format_report(rep, width=200) == every  # 6 classes are within the default TERMINAL_CLASSES
    assert TERMINAL_CLASSES >= 6


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """Two real runs of the same data (weight decay 0 against 0.3) with their stored predictions, compared."""
    from probe import compare_reports, load_report
    from probe.predictions import load_pair

    rng = np.random.default_rng(1)
    means = rng.normal(0, 1, (len(NAMES), 8))
    data = {split: _split(rng, means, m) for split, m in (("train", 40), ("val", 20), ("test", 40))}
    dirs = [tmp_path_factory.mktemp(name) for name in ("base", "other")]
    for out, wd in zip(dirs, (0.0, 0.3)):
        run_probe(data, NAMES, ProbeConfig(epochs=30, lr_grid=[0.05], wd_grid=[wd], seeds=[0, 1]), out_dir=out)
    return compare_reports(load_report(dirs[0]), load_report(dirs[1]), load_pair(*dirs))


def test_a_comparison_exports_every_class_with_its_intervals_and_the_verdict(comparison):
    from probe.compare import class_rows, metric_rows
    from probe.export import COMPARE_FORMATS, comparison_html, comparison_markdown

    text = comparison_markdown(comparison)
    assert text.startswith(f"# mr2probe compare: {comparison.base} vs {comparison.other}\n")
    assert f"- **Verdict:** {comparison.verdict_text}" in text and "The runs differ on" in text
    metrics = _md_table(text, "metric")
    assert metrics == [[cell.replace("|", "\\|") for cell in row] for row in metric_rows(comparison)]
    assert metrics[0][0] == "overall" and "[" in metrics[0][3]  # a delta with its paired interval
    per_class = _md_table(text, "class")
    # every class, escaped, those that changed first, the largest loss first
    order = sorted(comparison.per_class, key=lambda r: (r.delta == 0, r.delta if r.delta else 0, r.index))
    assert [row[0] for row in per_class] == [_cell(NAMES[r.index]) for r in order]
    assert "## Per class, those that changed first, largest loss first" in text
    assert per_class == [[_cell(c) for c in row] for row in class_rows(comparison)[0]]
    page = comparison_html(comparison)
    parser = _Collect()
    parser.feed(page)
    assert parser.tags.count("table") == 2 and parser.urls == [] and "<script" not in page
    assert "cat &lt;b&gt;" in page and "<b>" not in page and html.escape(comparison.verdict_text) in page
    assert set(COMPARE_FORMATS) == {"md", "html"}


def test_the_exports_lead_with_the_disparity_verdict_when_the_run_made_one(report):
    assert report["selection"]["verdict"] == "not_applicable"  # selected on overall accuracy: no verdict line
    assert "**Verdict:**" not in report_markdown(report) and "<dt>Verdict</dt>" not in report_html(report)
    text = "Hard third +4.0 pt [+1.0, +7.0], overall +0.5 pt [-0.2, +1.2] (within noise) <b>."
    decided = {**report, "selection": {**report["selection"], "verdict": "improved", "verdict_text": text}}
    markdown = report_markdown(decided)
    assert markdown.splitlines()[2] == f"- **Verdict:** improved: {_cell(text)}"
    assert f"<dt>Verdict</dt><dd>improved: {html.escape(text)}</dd><dt>Probe</dt>" in report_html(decided)
    kept = {**report, "selection": {**report["selection"], "verdict": "no_safe_improvement", "verdict_text": ""}}
    assert "- **Verdict:** no safe improvement\n" in report_markdown(kept)


def test_a_third_without_classes_says_so_instead_of_dashes(tmp_path, capsys):
    """Two classes leave the medium third empty: the views printed "—% —" and "— ± —" there (found by an outside
    round); they say the third has no classes."""
    from probe import load_report
    from probe.report_text import NO_CLASSES, format_report

    rng = np.random.default_rng(1)
    means = rng.normal(0, 2, (2, 8))
    data = {split: _split(rng, means, m) for split, m in (("train", 30), ("val", 15), ("test", 20))}
    run_probe(data, ["a", "b"], ProbeConfig(epochs=5, lr_grid=[0.05], wd_grid=[0.0], seeds=[0]), out_dir=tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert dict(_md_table(report_markdown(report), "metric"))["medium third"] == NO_CLASSES
    out = format_report(load_report(tmp_path), width=200)
    assert f"medium {NO_CLASSES}" in " ".join(out.split()) and "—%" not in out and "— ± —" not in out


def test_markdown_escapes_what_a_renderer_reads_as_html_and_nothing_else():
    """'(< 50)' read '(&lt; 50)' in a terminal (a new-user round); a tag or an entity is still escaped."""
    from probe.export import _md

    assert _md("val has 4 images (< 50); ratio > 3; a & b") == "val has 4 images (< 50); ratio > 3; a & b"
    assert _md("<script>x</script> <!-- c --> &amp; &#60; a|b") == \
        "&lt;script>x&lt;/script> &lt;!-- c --> &amp;amp; &amp;#60; a\\|b"
    # class names as links and images: a tracking image fetched, a javascript: link live (an attack round)
    assert _md("![pixel](https://evil.example/b.png) [click me](javascript:alert(1))") == \
        "![pixel]\\(https://evil.example/b.png) [click me]\\(javascript:alert(1))"
    assert _md("+2.0 pt [+0.4, +3.6] (within noise)") == "+2.0 pt [+0.4, +3.6] (within noise)"
    # a class `code` **bold** rendered as code and bold, an unbalanced backtick swallowed the table (an attack round)
    assert _md("`code` **bold** ~~gone~~ `open") == "\\`code\\` \\*\\*bold\\*\\* \\~\\~gone\\~\\~ \\`open"
    # a name's own backslash cancelled the escape after it, and underscores made emphasis (a review)
    assert _md("\\**bold\\**") == "\\\\\\*\\*bold\\\\\\*\\*" and _md("_under_") == "\\_under\\_"


def test_a_preset_run_names_its_preset_and_every_report_its_calibration(report):
    """The exports of a preset run name the preset and why (a new-user round: an HTML report of a disparity run said
    only "loss ce"), and every report's calibration line is there."""
    from probe.report import Report

    cal = Report.model_validate(report).calibration.describe()
    for render in (report_markdown, report_html):
        assert "Preset" not in render(report)
        assert html.escape(cal) in render(report) or cal in render(report)
    preset = {**report, "selection": {**report["selection"], "preset": {
        "name": "disparity", "settings": {"loss": "group_dro", "select": "hard"}, "why": "it never harmed <here>"}}}
    text = report_markdown(preset)
    assert "- **Preset:** disparity (loss=group_dro, select=hard): it never harmed &lt;here>" in text
    assert "<dt>Preset</dt><dd>disparity (loss=group_dro, select=hard): it never harmed &lt;here&gt;</dd>" in \
        report_html(preset)


def test_exports_draw_the_reliability_of_the_shipped_head(report):
    """The exports had calibration as one sentence (a new-user round): a chart and a table of each non-empty
    confidence bin, the same counts as report.json's."""
    bins = [b for b in report["calibration"]["bins"] if b["count"]]
    text = report_markdown(report)
    assert "## Calibration of the shipped head (test)" in text
    rows = _md_table(text, "top-1 confidence")
    assert [int(r[1]) for r in rows] == [b["count"] for b in bins]
    assert [float(r[3]) for r in rows] == [round(100 * b["accuracy"], 1) for b in bins]
    # each bin's accuracy with its Wilson interval, as the chart's whiskers
    assert [r[4] for r in rows] == [f"[{percent(b['accuracy_ci'][0], 1)}, {percent(b['accuracy_ci'][1], 1)}]" for b in bins]
    page = report_html(report)
    assert "Accuracy per confidence bin" in page and page.count("<svg") == 3
    old = {**report, "calibration": None}  # a report before calibration: no section
    assert "Calibration of the shipped head" not in report_markdown(old) + report_html(old)


def test_the_html_bars_draw_the_intervals_the_tables_give(report):
    """The HTML report's bars had no interval where its tables had one (the dashboard's charts draw them): each
    class's Wilson interval, overall's, balanced's and each third's, and each confidence bin's (Wilson's of its
    images, continuity-corrected under 30), as whiskers with the interval in the bar's tooltip; the worst class of
    each seed has none."""
    from scipy.stats import binomtest

    page = report_html(report)
    whiskers = [(float(lo), float(hi)) for lo, hi in re.findall(r'<g class="whisker" stroke="#333" data-lo="([^"]+)" '
                                                                r'data-hi="([^"]+)">', page)]
    summary = report["summary"]
    groups = [summary["overall_ci"]] + [summary["group_ci"][k] for k in ("balanced", "easy", "medium", "hard")
                                        if summary["group_ci"].get(k)]
    order = sorted(report["per_class"], key=lambda r: (r["accuracy"], r["index"]))  # worst first, as the bars
    classes = [r["accuracy_ci"] for r in order]
    bins = [binomtest(round(b["accuracy"] * b["count"]), b["count"]).proportion_ci(
        method="wilsoncc" if b["count"] < 30 else "wilson") for b in report["calibration"]["bins"] if b["count"]]
    want = groups + classes + [[ci.low, ci.high] for ci in bins]
    assert len(whiskers) == len(want)
    assert [v for w in whiskers for v in w] == pytest.approx([v for w in want for v in w])
    lo, hi = order[0]["accuracy_ci"]
    assert f"95 % interval [{percent(lo, 1)}, {percent(hi, 1)}]</title>" in page


def test_the_exports_give_each_class_s_r2_and_margin_gamma(report):
    """The shareable files list what MR² sizes its margins from (r²_k) and the margins (γ_k), as the terminal view
    and the dashboard do: an MR² run on a long-tailed set exported its accuracies without its γ_k (a long-tailed
    round). A report without them (an old one) shows "—"."""
    mr2 = {**report, "per_class": [{**r, "gamma": 0.9 + 0.05 * r["index"], "r2": 200.0 + r["index"]}
                                   for r in report["per_class"]]}
    header = next(line for line in report_markdown(mr2).splitlines() if line.startswith("| class |"))
    assert header.endswith("| r² | γ | output margin |")
    rows = _md_table(report_markdown(mr2), "class")  # worst class first: each class's r² beside its γ
    assert sorted(row[-3:-1] for row in rows) == sorted([f"{r['r2']:.4g}", f"{r['gamma']:.3f}"]
                                                         for r in mr2["per_class"])
    assert ">γ</th>" in report_html(mr2) and f">{mr2['per_class'][1]['gamma']:.3f}</td>" in report_html(mr2)
    bare = {**report, "per_class": [{k: v for k, v in r.items() if k not in ("gamma", "r2", "output_margin")}
                                    for r in report["per_class"]]}
    assert all(row[-3:] == ["—"] * 3 for row in _md_table(report_markdown(bare), "class"))


def test_the_exports_take_the_report_run_probe_returns(report):
    """``report_markdown(run_probe(...))`` raised "'Report' object is not subscriptable": the views took the JSON
    content alone (a library round). The model gives the same documents as its content."""
    from probe import Report

    model = Report.model_validate(report)
    assert report_markdown(model) == report_markdown(report)
    assert report_html(model) == report_html(report)


@pytest.mark.parametrize("classes", [MATRIX_MAX_CLASSES + 10, 70])
def test_exports_past_the_printed_matrix_show_the_report_s_most_confused_classes(report, classes):
    """Past MATRIX_MAX_CLASSES classes the exports printed no matrix at all: they print the most confused classes'
    sub-matrix the report carries (confusion.focus, the dashboard's heat map; beyond HEATMAP_CLASSES), in Markdown
    as one row per class, in HTML as an SVG heat map too, and say which classes they are and why."""
    from probe.report import Confusion

    names = [f"c{i}" for i in range(classes)]
    counts = np.diag(np.full(classes, 10))
    counts[5, 5], counts[5, 7], counts[29, 29], counts[29, 2], counts[29, 7] = 0, 10, 5, 4, 1
    confusion = Confusion(counts=counts.tolist()).with_focus(classes)  # as report.json holds it
    assert (confusion.focus is not None) == (classes > 60)
    wide = {**report, "class_names": names, "confusion": confusion.model_dump(mode="json")}
    text, page = report_markdown(wide), report_html(wide)
    assert (f"The 4 most confused of the {classes} classes (report.json confusion.focus): those with the most test "
            "images predicted as another class plus other classes' images predicted as them, most confused first; "
            f"“other classes” sums the other {classes - 4}.") in text
    assert _md_table(text.split("## Most confused classes (test)")[1], "class") == [
        ["c7", "10", "0", "11", "—"], ["c5", "10", "10", "0", "c7 (10)"],
        ["c29", "10", "5", "0", "c2 (4), c7 (1)"], ["c2", "10", "0", "4", "—"]]
    assert "<h2>Most confused classes (test)</h2>" in page and 'class="heatmap"' in page
    assert "<title>true c5 → predicted c7: 10 (100.0 % of its row)</title>" in page
    assert "<title>true other classes → predicted other classes: " in page
    none = {**wide, "confusion": {"split": "test", "counts": np.diag(np.full(classes, 3)).tolist()}}
    assert f"No test image of the {classes} classes was predicted as another class." in report_markdown(none)


def test_the_html_heat_map_fits_the_page_at_every_size_the_focus_takes(report):
    """The most confused classes' heat map at 60 classes and "other classes" was 1,014 px wide in the export's 980 px
    body (a many-classes round): at every size up to the focus's most it fits the body, its cells 13 px or more and
    its labels at 10 px."""
    from probe.report import HEATMAP_CLASSES, Confusion

    for classes in (MATRIX_MAX_CLASSES + 1, 40, HEATMAP_CLASSES, HEATMAP_CLASSES + 1, 100, 1000):
        counts = np.diag(np.full(classes, 10))
        for i in range(classes):  # every class confused with the next: all of them among the most confused
            counts[i, (i + 1) % classes] = 1 + i % 3
        names = [f"c{i}" for i in range(classes)]
        confusion = Confusion(counts=counts.tolist()).with_focus(classes)
        page = report_html({**report, "class_names": names, "confusion": confusion.model_dump(mode="json")})
        body = int(re.search(r"body\{[^}]*max-width:(\d+)px", page).group(1))
        svg = re.search(r'<svg [^>]*class="heatmap" width="(\d+)"', page)
        drawn = page[svg.start():page.index("</svg>", svg.start())]
        cells = {int(w) + 1 for w in re.findall(r'<rect x="\d+" y="\d+" width="(\d+)" height="\d+" fill="#', drawn)}
        fonts = set(re.findall(r'<text [^>]*font-size="(\d+)"', drawn))
        assert int(svg.group(1)) <= body and len(cells) == 1 and min(cells) >= 13 and fonts == {"10"}, classes


def test_the_html_charts_cut_long_names_in_the_middle_to_the_room_they_have(report):
    """Cut at its end to 24 characters, a long name ran past the per-class chart's left edge (164 px of 11 px text
    left of the bars' 144) and every name alike at the start read the same ('a_very_long_class_name_…'); a CJK name
    took twice its room (a many-classes round). Labels are cut in the middle to 20 terminal cells in the bar charts,
    18 in the heat map, whole in their tooltips."""
    from probe.report import Confusion

    long_names = ["a_very_long_class_name_without_any_spaces_" * 3 + str(i) for i in range(70)]
    names = long_names[:35] + [f"猫科動物の分類クラス番号{i}" for i in range(35)]
    rows = [{**report["per_class"][0], "index": i, "name": name, "accuracy": i / 100} for i, name in enumerate(names)]
    counts = np.diag(np.full(70, 10))
    counts[np.arange(70), (np.arange(70) + 1) % 70] = 2
    confusion = Confusion(counts=counts.tolist()).with_focus(70)
    page = report_html({**report, "class_names": names, "per_class": rows,
                        "confusion": confusion.model_dump(mode="json")})
    chart = page[page.index("Per-class test accuracy"):]
    labels = re.findall(r'text-anchor="end">([^<]*)</text>', chart[:chart.index("</svg>")])
    assert labels[:2] == ["a_very_lon…_spaces_0", "a_very_lon…_spaces_1"] and len(set(labels)) == len(labels)
    assert labels[35] == "猫科動物の…ラス番号0"  # 20 cells: a CJK character takes two
    heat = page[page.index('class="heatmap"'):]
    heat = heat[:heat.index("</svg>")]
    assert "<title>a_very_long_class_name_without_any_spaces_a_very_long_class_name_without_any_spaces_a_very_" \
           "long_class_name_without_any_spaces_0</title>a_very_lo…spaces_0</text>" in heat


def test_the_html_confusions_isolate_each_class_name_from_the_shares_beside_it(report):
    """A right-to-left class name in the per-class confusions took the share after it into its own run (the browser
    moved the parentheses and number; a many-classes round): each name is a <bdi>, escaped; Markdown unchanged."""
    names = ["cat <b>", "فئة عربية 801", "dog"]
    rows = [{**report["per_class"][0], "index": i, "name": name, "accuracy": i / 4,
             "top_confusions": [{"name": names[(i + 1) % 3], "rate": 0.5}, {"name": names[(i + 2) % 3], "rate": 0.25}]}
            for i, name in enumerate(names)]
    wide = {**report, "class_names": names, "per_class": rows, "confusion": None}
    page = report_html(wide)
    assert "<td><bdi>فئة عربية 801</bdi> (50.0), <bdi>dog</bdi> (25.0)</td>" in page
    assert "<td><bdi>dog</bdi> (50.0), <bdi>cat &lt;b&gt;</bdi> (25.0)</td>" in page
    assert "<b>" not in page and "<bdi>" not in report_markdown(wide)


def test_the_html_most_confused_table_isolates_each_class_name_from_its_count(report):
    """The most confused classes' table said "فئة عربية 2 (4), c7 (1)" with the right-to-left name taking the count
    after it into its own run, as the per-class confusions had (a many-classes review): each name a <bdi>, escaped;
    Markdown unchanged."""
    from probe.report import Confusion

    classes = MATRIX_MAX_CLASSES + 10
    names = [f"c{i}" for i in range(classes)]
    names[2], names[7] = "فئة عربية 2", "c7 <i>"
    counts = np.diag(np.full(classes, 10))
    counts[29, 2], counts[29, 7] = 4, 1
    wide = {**report, "class_names": names,
            "confusion": Confusion(counts=counts.tolist()).with_focus(classes).model_dump(mode="json")}
    page = report_html(wide)
    assert "<td><bdi>فئة عربية 2</bdi> (4), <bdi>c7 &lt;i&gt;</bdi> (1)</td>" in page
    assert "<i>" not in page and "<bdi>" not in report_markdown(wide)


def test_html_keeps_each_number_with_its_interval_on_one_line_while_names_and_confusions_wrap(report):
    """The per-class table broke intervals across lines ("[0.0," over "80.2]"): each number with its interval is
    a span that does not wrap; the name column and the confusions, outside any such span, still wrap."""
    from probe.numbers import interval_text

    page = report_html(report)
    assert ".n{white-space:nowrap}" in page and "td{white-space" not in page
    table = page[page.index("<th>class</th>"):]
    table = table[table.index("<tbody>"):table.index("</table>")]
    row = next(r for r in report["per_class"] if r["name"] == "car")
    cells = re.search(r"<tr><td>car</td>(.*?)</tr>", table).group(1)
    shipped = f'{percent(row["accuracy_per_seed"][0])} {interval_text(row["shipped_accuracy_ci"])}'
    assert f'<td><span class="n">{shipped}</span></td>' in cells and re.fullmatch(r"\S+ \[\S+, \S+\]", shipped)
    # every interval of the table sits in such a span, none outside one
    text = re.sub(r'<span class="n">[^<]*</span>', "", table)
    assert table.count('<span class="n">') >= 6 * 6 and not re.search(r"\[[+-]?\d", text)
    assert "<bdi>" in text  # the confusions, names in running text, stay outside: they wrap


@pytest.mark.skipif(not __import__("pathlib").Path("/usr/bin/chromium").exists(), reason="browser test: no chromium")
def test_html_intervals_are_laid_out_on_one_line_in_a_narrow_browser(report, tmp_path):
    """Headless Chromium, 700 px wide, lays the page out: no number-and-interval span takes two lines (the
    per-class table's intervals did, "[0.0," over "80.2]")."""
    import subprocess

    script = ('<script>{const s=[...document.querySelectorAll("td .n")];document.body.setAttribute("data-broken",'
              's.filter(e=>e.getClientRects().length>1).length+"/"+s.length);}</script>')
    page = tmp_path / "report.html"
    page.write_text(report_html(report).replace("</body>", script + "</body>"), encoding="utf-8")
    dom = subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=700,900",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    broken, spans = re.search(r'data-broken="(\d+)/(\d+)"', dom).groups()
    assert broken == "0" and int(spans) >= 36


def test_the_shipped_column_is_each_class_s_own_interval_computed_for_every_class_at_once(report, monkeypatch):
    """The per-class table's "shipped (first seed)" cell is each row's shipped_class_ci, and a 5,000-class export
    computes those intervals in one vectorised call (one call a row had taken two seconds of its Markdown)."""
    import probe.report
    from probe.report import shipped_accuracy, shipped_class_ci
    from probe.report_text import with_interval

    column = PER_CLASS_COLUMNS.index("shipped (first seed) % [95 %]")
    by_name = {_cell(r["name"]): r for r in report["per_class"]}
    rows = _md_table(report_markdown(report), "class")
    assert [row[column] for row in rows] == [
        _cell(with_interval(shipped_accuracy(by_name[row[0]]), shipped_class_ci(by_name[row[0]]))) for row in rows]
    many = dict(report, per_class=[dict(report["per_class"][i % len(NAMES)], name=f"n0{i:07d}_a_long_common_suffix",
                                        index=i) for i in range(5000)])
    calls = []
    real = probe.report.accuracy_intervals
    monkeypatch.setattr(probe.report, "accuracy_intervals", lambda *a: calls.append(len(a[0])) or real(*a))
    rows = _md_table(report_markdown(many), "class")
    assert len(rows) == 5000 and sorted(calls) == [1, 5000]  # the worst class's sentence, and every row's
    first = many["per_class"][int(rows[0][0][2:9])]
    assert rows[0][column] == with_interval(shipped_accuracy(first), shipped_class_ci(first))
