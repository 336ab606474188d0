"""Shareable, self-contained report files: Markdown (tables) and HTML (tables plus inline SVG charts).

``report_markdown(report)`` and ``report_html(report)`` take a report (the :class:`probe.Report` that ``run_probe``
and ``load_report`` return, or its content as ``report.json`` holds it, a dict) and return one text file a user can attach to a pull request or a ticket: no external stylesheet, script, font or
image, so it reads the same offline. ``comparison_markdown`` and ``comparison_html`` do the same for a
:class:`probe.compare.Comparison` (``mr2probe compare --format``): the case for shipping one probe over another.
Every string that comes from the data (class names, reasons) is escaped.
"""
from __future__ import annotations

import html
import math
import re
from typing import Any, Callable, NamedTuple

from .compare import (CLASS_HEADER, METRIC_HEADER, Comparison, class_rows, comparison_facts, metric_rows,
                      metric_title)
from .compare_many import MANY_HEADER, ManyComparison, many_facts, many_rows
from .names import listed_name
from .numbers import number_text, percent
from .report import (CHART_CLASSES, CONFUSIONS_HEADER, Calibration, Confusion, CrossValidation, Environment,
                     FeatureSource, NearDuplicates, Report, Timing, confusions_text, interval_text, loss_label,
                     posthoc_text, selection_split_text, shipped_accuracy, shipped_class_cis, verdict_label, WorstClass)
from .report_text import (NO_CLASSES, SEED_WORST_HEADER, cut_name, empty_third, left_out_text, shipped_worst_text,
                          with_interval, worst_class_ci, worst_first)

__all__ = ["report_markdown", "report_html", "EXPORT_FORMATS", "MATRIX_MAX_CLASSES", "comparison_markdown",
           "comparison_html", "COMPARE_FORMATS", "RunsContext", "runs_context"]

GROUP_COLOURS = {"easy": "#4c9f70", "medium": "#d9a43b", "hard": "#c8553d"}
SUMMARY_KEYS = (("overall", "overall"), ("balanced", "balanced"), ("easy", "easy third"),
                ("medium", "medium third"), ("hard", "hard third"),
                ("worst_class", SEED_WORST_HEADER))


# What CommonMark would read as HTML: a tag (< then a letter, /, ! or ?) and an entity (&name; or &#...;).
_MD_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_MD_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
# what makes code, emphasis or strike-through; an underscore only at a word's edge (inside a word, as in
# worst_class or a file name, CommonMark reads none)
_MD_EMPHASIS = re.compile(r"[`*~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _md(text: Any) -> str:
    """Markdown text: pipes and newlines would break a table; what a renderer would take for HTML (a tag, an
    entity) is escaped, and nothing else: '(< 50)' stays as it is (every < and > read &lt; / &gt; in a terminal or
    a plain-text viewer; a new-user round), quotes too (escaped they read &#x27;). A link or image ``[text](url)``
    is broken at ``](``: class names ``![pixel](https://…)`` fetched a tracking image and ``[click](javascript:…)``
    was a live link wherever the report was opened (an attack round); an interval "[+1.2, +3.0] (…)" is untouched.
    Backslashes, backticks, asterisks, tildes and underscores at a word's edge are escaped: a class `` `code` **bold** `` rendered as
    code and bold, an unbalanced backtick swallowed the table after it (an attack round), and a name's backslash
    cancelled the escape after it (a review)."""
    text = str(text).replace("\\", "\\\\")  # a name's own backslash first: it cancelled the escapes below (a review)
    text = _MD_ENTITY.sub("&amp;", text)
    text = _MD_TAG.sub("&lt;", text).replace("|", "\\|").replace("\n", " ").replace("](", "]\\(")
    return _MD_EMPHASIS.sub(r"\\\g<0>", text)


markdown_escape = _md  # the same escaping for Markdown written elsewhere (app.shipped's USAGE.md)


def _first_upper(text: str) -> str:
    """``text`` with its first letter upper-case and the rest as it is (str.capitalize lowers the rest: paths)."""
    return text[:1].upper() + text[1:]


def _cv_note(report: dict) -> str:
    """Where the candidates were scored (:func:`probe.report.selection_split_text`), unsaid for the validation
    split unless folds were asked that it did not need."""
    cv, fewest = report["selection"].get("cv"), min((row["n_val"] for row in report.get("per_class") or []
                                                     if row.get("n_val") is not None), default=None)
    where = selection_split_text(None if not cv else CrossValidation.model_validate(cv),
                                 report["config"].get("cv"), fewest)
    return "" if where == "val" else f" (on {where})"


def _headline(report: dict) -> dict[str, str]:
    cfg, selection = report["config"], report["selection"]
    selected = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in (cfg.get("selected") or {}).items() if v is not None)
    verdict = selection.get("verdict") or "not_applicable"
    preset = selection.get("preset")
    return {"run": str(report.get("run_id") or "(unnamed run)"),
            "preset": "" if not preset else (f"{preset['name']} ("
                                             + ", ".join(f"{k}={v}" for k, v in preset["settings"].items())
                                             + f"): {preset['why']}"),
            "posthoc": "" if not report.get("posthoc") else posthoc_text(report["posthoc"], cfg),
            "verdict": ("" if verdict == "not_applicable"
                        else f"{verdict_label(verdict, selection.get('test_check'))}: "
                             f"{selection.get('verdict_text') or ''}".rstrip(": ")),
            "probe": f"head {cfg.get('head')}, loss {loss_label(cfg)}, seeds {report['seeds']['values']}",
            "left_out": left_out_text(cfg),
            "selected": selected or "—",
            "selection": (f"{selection.get('criterion')}{_cv_note(report)}: "
                          f"{selection.get('reason', '')}"),
            "grouping": report["grouping"].get("note", ""),
            "time": Timing.model_validate(report["timing"]).describe() if report.get("timing") else "not recorded",
            "features": (FeatureSource.model_validate(report["features"]).describe() if report.get("features")
                         else "not recorded"),
            "calibration": (Calibration.model_validate(report["calibration"]).describe()
                            if report.get("calibration") else "not recorded"),
            # the check the terminal view prints (only its warning, where it found some, reached the exports)
            "near_duplicates": (NearDuplicates.model_validate(report["near_duplicates"]).describe()
                                if report.get("near_duplicates") else ""),
            "environment": (Environment.model_validate(report["environment"]).describe()
                            if report.get("environment") else "not recorded")}


def _summary_rows(report: dict) -> list[tuple[str, str]]:
    """(label, value) per metric: mean ± std over seeds, then, for balanced accuracy and the thirds, their 95 %
    interval over the test images (``summary.group_ci``); after overall, its interval (``summary.overall_ci``),
    when the report has them."""
    metrics, ci = report["seeds"]["metrics"], report["summary"].get("overall_ci")
    group_ci = report["summary"].get("group_ci") or {}
    rows = [(label, NO_CLASSES if empty_third(key, metrics[key]["mean"]) else
             f"{percent(metrics[key]['mean'])} ± {percent(metrics[key]['std'])}"
             + (f" (95 % interval {interval_text(group_ci[key])})" if group_ci.get(key) else ""))
            for key, label in SUMMARY_KEYS if key in metrics]
    if ci is not None and rows and rows[0][0] == "overall":
        images = sum(r["n_test"] for r in report["per_class"])
        rows.insert(1, (f"overall: 95 % interval over the {images:,} test images", interval_text(ci)))
    shipped = (metrics.get("overall") or {}).get("per_seed") or []
    if len(shipped) > 1 and rows and rows[0][0] == "overall":  # what ships, beside the mean (a new-user round)
        shipped_ci = report["summary"].get("shipped_overall_ci")
        rows.insert(2 if ci is not None else 1, ("overall: the shipped probe (first seed)", percent(shipped[0])
                                                 + (f" (95 % interval {interval_text(shipped_ci)})" if shipped_ci else "")))
    return rows


def _per_class_rows(report: dict, name: Callable[[str], str] = listed_name) -> list[list[str]]:
    """The per-class table's rows (:data:`PER_CLASS_HEADER`), worst first; ``name`` writes the names in the
    confusions column (:func:`confusions_text`)."""
    rows = worst_first(report["per_class"], lambda r: r["accuracy"])
    shipped = shipped_class_cis(rows)  # every row's in one call (one call a row: 2 s of 5,000 classes)
    return [[str(r["name"]), str(r["group"]), str(r["n_train"]), str(r["n_test"]), percent(r["accuracy"]),
             interval_text(r.get("accuracy_ci")), percent(r.get("accuracy_std")),
             # each with its 95 % interval, as accuracy's (both were bare; val's null in reports before it)
             with_interval(shipped_accuracy(r), shipped_ci),
             with_interval(r.get("val_accuracy"), r.get("val_accuracy_ci")),
             with_interval(r.get("precision"), r.get("precision_ci")),
             with_interval(r.get("recall"), r.get("recall_ci")),
             with_interval(r.get("f1"), r.get("f1_ci"), fraction=True),
             confusions_text([(c["name"], c["rate"]) for c in r.get("top_confusions") or []], name),
             # the class statistics MR² sizes its margins from, and the margins (a long-tailed round: the terminal
             # view and the dashboard gave γ_k, the file to attach to a pull request did not)
             number_text(r.get("r2"), ".4g"), number_text(r.get("gamma")),
             number_text(r.get("output_margin"))] for r, shipped_ci in zip(rows, shipped)]


PER_CLASS_HEADER = ["class", "group", "training images", "test images", "accuracy %", "95 % interval", "± std",
                    "shipped (first seed) % [95 %]",
                    # [95 %]: each of the three with its 95 % interval in brackets, unsaid before (a review)
                    "val accuracy % [95 %]", "precision % [95 %]", "recall % [95 %]", "F1 [95 %]", CONFUSIONS_HEADER,
                    "r²", "γ", "output margin"]
# Up to this many classes the exports print the confusion matrix; beyond, it stays in report.json (confusion.counts)
# and the per-class table's confusions stand for it.
MATRIX_MAX_CLASSES = 20


def _confusion(report: dict) -> tuple[str, list[str], list[list[str]]] | None:
    """(caption, header, rows) of the test confusion matrix up to ``MATRIX_MAX_CLASSES`` classes, or (caption, [], [])
    beyond, where :func:`_focus` stands for it; None for a report without one."""
    confusion, names = report.get("confusion"), [str(n) for n in report["class_names"]]
    if not confusion:
        return None
    if len(names) > MATRIX_MAX_CLASSES:
        held = "confusion.counts" if confusion.get("counts") is not None else "confusion.cells, its non-zero cells"
        return (f"{len(names)} classes: the {len(names)} × {len(names)} matrix is in report.json ({held}); "
                "the per-class table names each class's most frequent confusions.", [], [])
    counts = Confusion.model_validate(confusion).dense(len(names)).tolist()
    return _seeds_words(report) + "; rows: the true class, columns: the predicted one.", \
        ["true / predicted", *names], [[name, *map(str, row)] for name, row in zip(names, counts)]


def _seeds_words(report: dict) -> str:
    seeds = len(report["seeds"]["values"])
    return f"Test predictions of all {seeds} seed{'s' if seeds > 1 else ''} counted together"


OTHER_CLASSES = "other classes"  # the focus's last row and column, as the dashboard's heat map names them
FOCUS_HEADER = ["class", "test images", "its images predicted as another class",
                "other classes' images predicted as it", "most often predicted as (images)"]


class _Focus(NamedTuple):
    caption: str
    names: list[str]  # the shown classes, most confused first, then OTHER_CLASSES when any class is left out
    counts: list[list[int]]  # rows: true, columns: predicted, in the order of names
    shown: int  # how many of names are classes


def _focus(report: dict) -> _Focus | None:
    """Past ``MATRIX_MAX_CLASSES`` classes, the most confused classes' sub-matrix: the report's ``confusion.focus``
    (beyond HEATMAP_CLASSES), else the same choice (:meth:`Confusion.most_confused`) of its fewer classes."""
    confusion, names = report.get("confusion"), [str(n) for n in report["class_names"]]
    if not confusion or len(names) <= MATRIX_MAX_CLASSES:
        return None
    focus = confusion.get("focus") or Confusion.model_validate(confusion).most_confused(len(names)).model_dump()
    shown, left = [names[i] for i in focus["classes"]], len(names) - len(focus["classes"])
    if not shown:
        return _Focus(f"No test image of the {len(names)} classes was predicted as another class.", [], [], 0)
    counts = [row[:len(shown)] + ([row[-1]] if left else []) for row in focus["counts"][:len(shown) + bool(left)]]
    rest = f"; “{OTHER_CLASSES}” sums the other {left:,}" if left else ""
    caption = (f"The {len(shown)} most confused of the {len(names):,} classes (report.json confusion.focus): those "
               "with the most test images predicted as another class plus other classes' images predicted as them, "
               f"most confused first{rest}. {_seeds_words(report)}; rows: the true class, columns: the predicted one.")
    return _Focus(caption, shown + ([OTHER_CLASSES] if left else []), counts, len(shown))


def _focus_rows(focus: _Focus, name: Callable[[str], str] = listed_name) -> list[list[str]]:
    """One row per shown class (:data:`FOCUS_HEADER`): its test images, its confusions each way, and the ≤ 3
    classes (or the other classes together) it is most often predicted as, each written by ``name`` (the HTML
    export's: isolated, as the per-class confusions)."""
    rows = []
    for i, own in enumerate(focus.names[:focus.shown]):
        row = focus.counts[i]
        column = sum(focus.counts[j][i] for j in range(len(focus.counts)) if j != i)
        top = sorted(((c, j) for j, c in enumerate(row) if j != i and c), key=lambda t: (-t[0], t[1]))[:3]
        rows.append([own, f"{sum(row):,}", f"{sum(row) - row[i]:,}", f"{column:,}",
                     ", ".join(f"{name(focus.names[j])} ({c:,})" for c, j in top) or "—"])
    return rows


def _report_dict(report: Report | dict) -> dict:
    """``report`` as ``report.json`` holds it: what the views read (a Report, as ``run_probe`` returns it, raised
    "'Report' object is not subscriptable"; a library round)."""
    return report.model_dump(mode="json") if isinstance(report, Report) else report


def report_markdown(report: Report | dict) -> str:
    """The report (a :class:`probe.Report` or its JSON content) as one Markdown document (GitHub-flavoured tables),
    worst class first."""
    report = _report_dict(report)
    head = _headline(report)
    lines = [f"# mr2probe report: {_md(head['run'])}", "", *_md_facts(_report_facts(head)), ""]
    if report.get("warnings"):
        lines += ["## Warnings", "", *(f"- {_md(w)}" for w in report["warnings"]), ""]
    lines += ["## Test accuracy (%), mean ± std over seeds", "",
              *_md_table(["metric", "value"], [list(row) for row in _summary_rows(report)])]
    worst, worst_rest = _worst_sentence(report)
    lines += ["", f"Worst class: **{_md(worst)}**{_md(worst_rest)}.", "",
              "## Per class (test), worst first", "", *_md_table(PER_CLASS_HEADER, _per_class_rows(report))]
    matrix = _confusion(report)
    if matrix is not None:
        caption, header, rows = matrix
        lines += ["", "## Confusion matrix (test)", "", _md(caption)]
        if header:
            lines += ["", *_md_table(header, rows)]
    focus = _focus(report)
    if focus is not None:
        lines += ["", "## Most confused classes (test)", "", _md(focus.caption)]
        lines += ["", *_md_table(FOCUS_HEADER, _focus_rows(focus))] if focus.shown else []
    reliability = _reliability_rows(report)
    if reliability:
        lines += ["", "## Calibration of the shipped head (test)", "", *_md_table(RELIABILITY_HEADER, reliability)]
    return "\n".join(lines) + "\n"


def _report_facts(head: dict[str, str]) -> list[tuple[str, str]]:
    """The (label, text) lines under a report's title, from :func:`_headline`: the disparity-aware verdict first
    (what the terminal view prints as ``verdict (...)``), when the run made one."""
    verdict = [("Verdict", head["verdict"])] if head["verdict"] else []
    verdict += [("Post-hoc bias", head["posthoc"])] if head["posthoc"] else []
    preset = [("Preset", head["preset"])] if head["preset"] else []
    left_out = [("Left out", head["left_out"])] if head["left_out"] else []
    return [*verdict, *preset, ("Probe", head["probe"]), *left_out, ("Selected on validation", head["selected"]),
            ("Why", head["selection"]), ("Groups", head["grouping"]), ("Features", head["features"]),
            ("Calibration", head["calibration"]),
            *([("Near-duplicates", head["near_duplicates"])] if head["near_duplicates"] else []),
            ("Time", head["time"]), ("Environment", head["environment"])]


def _md_facts(facts: list[tuple[str, str]]) -> list[str]:
    return [f"- **{_md(label)}:** {_md(text)}" for label, text in facts]


def _html_facts(facts: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>" for label, text in facts)
    return f"<dl>{items}</dl>"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table, every cell escaped (:func:`_md`)."""
    return ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows)]


def _bar_chart(rows: list[tuple[str, float | None, str, list | None]], title: str, width: int = 640) -> str:
    """Horizontal bars in [0, 100] %: ``rows`` of (label, fraction or None, colour, its 95 % interval or None, drawn
    as a whisker and said in the bar's tooltip); inline SVG. The bars had no interval where the tables beside them
    had one, as the dashboard's charts have. A long label is cut in its middle to 20 terminal cells (a CJK character
    takes two), as the terminal cuts names: cut at 24 characters at its end it ran past the chart's left edge and
    read the same for every name alike at the start ('a_very_long_class_name_…'; a many-classes round)."""
    bar_h, left, top, label_cells = 18, 150, 28, 20  # 20 cells of 11 px text: ≤ 140 px, left of the bars
    height = top + bar_h * len(rows) + 26
    plot = width - left - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for tick in (0, 25, 50, 75, 100):
        x = left + plot * tick / 100
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 20}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{height - 6}" font-size="10" text-anchor="middle">{tick}%</text>')

    def scale(fraction: float) -> float:
        return plot * max(0.0, min(1.0, fraction))

    for i, (label, value, colour, ci) in enumerate(rows):
        y = top + i * bar_h
        length = 0.0 if value is None else scale(value)
        ci = ci if value is not None and ci and all(v is not None and math.isfinite(v) for v in ci) else None
        said = "" if ci is None else f", 95 % interval {interval_text(ci)}"
        shown = cut_name(label, label_cells)  # whole in its tooltip
        parts.append(f'<text x="{left - 6}" y="{y + 13}" font-size="11" text-anchor="end">{html.escape(shown)}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{bar_h - 6}" fill="{colour}">'
                     f'<title>{html.escape(label)}: {percent(value)} %{said}</title></rect>')
        if ci is not None:
            lo, hi, mid = left + scale(ci[0]), left + scale(ci[1]), y + bar_h / 2
            parts.append(f'<g class="whisker" stroke="#333" data-lo="{ci[0]!r}" data-hi="{ci[1]!r}">'
                         f'<line x1="{lo:.1f}" y1="{mid:.1f}" x2="{hi:.1f}" y2="{mid:.1f}"/>'
                         f'<line x1="{lo:.1f}" y1="{y + 5}" x2="{lo:.1f}" y2="{y + bar_h - 5}"/>'
                         f'<line x1="{hi:.1f}" y1="{y + 5}" x2="{hi:.1f}" y2="{y + bar_h - 5}"/></g>')
        text_x = left + max(length, 0.0 if ci is None else scale(ci[1])) + 4
        parts.append(f'<text x="{text_x:.1f}" y="{y + 13}" font-size="10">{percent(value, 1)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _html_table(header: list[str], rows: list[list[str]], written: tuple[str, ...] = ()) -> str:
    """A table in a box of its own that scrolls sideways: the per-class table's 16 columns (and a 20-class matrix of
    long names) ran past the page's body, which then scrolled as a whole, charts and text too (a many-classes
    round). The cells of the ``written`` columns are HTML already (:func:`_isolated` names); the others are escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    raw = [h in written for h in header]
    body = "".join("<tr>" + "".join(f"<td>{c if r else _whole_numbers(html.escape(c))}</td>" for c, r in zip(row, raw))
                   + "</tr>" for row in rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


_NUMBER = r"[+-]?\d[\d,]*(?:\.\d+)?"
_WITH_INTERVAL = re.compile(rf"(?:{_NUMBER} )?\[{_NUMBER}, {_NUMBER}\]")  # "71.43 [30.3, 94.9]", "[0.0, 80.2]"


def _whole_numbers(cell: str) -> str:
    """``cell`` (escaped HTML) with each number and its interval in a span that does not wrap (``.n``): a narrow
    column broke "[0.0, 80.2]" over two lines as "[0.0," and "80.2]" (a review), where names and words around
    them still wrap."""
    return _WITH_INTERVAL.sub(lambda m: f'<span class="n">{m.group()}</span>', cell)


PAGE_WIDTH = 980  # px: the HTML exports' body, which every chart drawn in it fits


def _isolated(name: str) -> str:
    """A class name in HTML text, escaped and isolated from the text around it (<bdi>): a right-to-left name took
    the share after it into its own run ("فئة عربية 801 (50.0)" read with the parentheses and number moved; a
    many-classes round)."""
    return f"<bdi>{html.escape(listed_name(name))}</bdi>"  # as a list shows it (probe.names.listed_name)


_STYLE = (f"body{{font-family:system-ui,sans-serif;max-width:{PAGE_WIDTH}px;margin:24px auto;color:#222}}"
          "table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;"
          "text-align:right}td:first-child,th:first-child{text-align:left}dt{font-weight:bold}"
          # a user's note keeps its lines, and a long name wraps in the column (an attack round)
          "dd{white-space:pre-wrap;overflow-wrap:anywhere}"
          # a long class name wraps in its column; numbers and words elsewhere stay whole (every cell wrapping
          # anywhere squeezed the per-class table to 62 px names and "0./00/0"; a re-test)
          "td:first-child{overflow-wrap:anywhere;min-width:10em}"
          # a number and its interval stay on one line (_whole_numbers)
          ".n{white-space:nowrap}"
          ".wide{overflow-x:auto;max-width:100%}"
          # a long name without spaces in a sentence or a heading breaks where it must, not past the body
          "h1,h2,p,li{overflow-wrap:anywhere}")


def _worst_sentence(report: dict) -> tuple[str, str]:
    """The worst class's name and the rest of its sentence ("(tied with horse) (60.00 %); of the shipped probe
    (first seed): bird 16.67 %"), as the Markdown and HTML exports say it."""
    worst = report["summary"]["worst_class"]
    tied = WorstClass.model_validate(worst).ties()
    shipped = shipped_worst_text(report["per_class"], len(report["seeds"]["values"]))
    ci = worst_class_ci(report["per_class"], worst["name"])
    interval = f", 95 % interval {interval_text(ci)}" if ci else ""
    return worst["name"], f"{tied} ({percent(worst['accuracy'])} %{interval}){shipped}"


def report_html(report: Report | dict) -> str:
    """The report (a :class:`probe.Report` or its JSON content) as one self-contained HTML page: headline, summary
    and per-class tables, SVG charts."""
    report = _report_dict(report)
    head = _headline(report)
    summary = report["seeds"]["metrics"]
    intervals = {"overall": report["summary"].get("overall_ci"), **(report["summary"].get("group_ci") or {})}
    groups = [(label, summary[key]["mean"], GROUP_COLOURS.get(key, "#5b7db1"), intervals.get(key))
              for key, label in SUMMARY_KEYS if key in summary]
    per_class = [(r["name"], r["accuracy"], GROUP_COLOURS.get(r["group"], "#5b7db1"), r.get("accuracy_ci"))
                 for r in worst_first(report["per_class"], lambda r: r["accuracy"])[:CHART_CLASSES]]
    classes = len(report["per_class"])
    # said above the chart, where it wraps: in the chart's title it ran 33 px past the chart ("…: the 60 worst of 1000
    # (the table lists every one)"; a many-classes review)
    drawn = "" if classes <= CHART_CLASSES else (f"<p>The chart draws the {CHART_CLASSES} worst of the {classes:,} "
                                                 "classes; the table lists every one.</p>")
    worst, worst_rest = _worst_sentence(report)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mr2probe report '
            f'{html.escape(head["run"])}</title><style>{_STYLE}</style></head><body>'
            f'<h1>mr2probe report: {html.escape(head["run"])}</h1>{_html_facts(_report_facts(head))}'
            f'{_html_warnings(report)}'
            f'<h2>Test accuracy (%), mean ± std over seeds</h2>'
            f'{_html_table(["metric", "value"], [list(r) for r in _summary_rows(report)])}'
            f'<p>Worst class: <strong>{html.escape(worst)}</strong>{html.escape(worst_rest)}.</p>'
            f'{_bar_chart(groups, "Test accuracy by group (mean over seeds)")}'
            f'<h2>Per class (test), worst first</h2>{drawn}'
            f'{_bar_chart(per_class, "Per-class test accuracy, coloured by group")}'
            f'{_html_table(PER_CLASS_HEADER, _per_class_rows(report, _isolated), (CONFUSIONS_HEADER,))}'
            f'{_html_confusion(report)}'
            f'{_html_reliability(report)}</body></html>\n')


def _reliability_rows(report: dict) -> list[list[str]]:
    """The calibration's non-empty confidence bins as (bin, images, mean confidence %, accuracy %, its 95 %
    interval) rows."""
    bins = (report.get("calibration") or {}).get("bins") or []
    n = len(bins)
    return [[f"{100 * (b['upper'] - 1 / n):.0f}–{100 * b['upper']:.0f} %", str(b["count"]),
             percent(b["confidence"], 1), percent(b["accuracy"], 1), interval_text(b.get("accuracy_ci"))]
            for b in bins if b["count"]]


RELIABILITY_HEADER = ["top-1 confidence", "test images", "mean confidence %", "accuracy %", "95 % interval"]


def _html_reliability(report: dict) -> str:
    """The reliability diagram of the shipped head (the dashboard's calibration panel): each non-empty confidence
    bin's accuracy, red where below its mean confidence (overconfident), and the table (a new-user round: the
    exports had calibration as one sentence)."""
    rows = _reliability_rows(report)
    if not rows:
        return ""
    bins = [b for b in report["calibration"]["bins"] if b["count"]]
    bars = [(f"{row[0]} (mean {row[2]} %)", b["accuracy"], "#c8423b" if b["accuracy"] < b["confidence"] else "#5b7db1",
             b.get("accuracy_ci")) for row, b in zip(rows, bins)]
    return (f'<h2>Calibration of the shipped head (test)</h2>'
            f'{_bar_chart(bars, "Accuracy per confidence bin (red: below its mean confidence)")}'
            f'{_html_table(RELIABILITY_HEADER, rows)}')


def _html_warnings(report: dict) -> str:
    items = "".join(f"<li>{html.escape(w)}</li>" for w in report.get("warnings") or [])
    return f'<h2>Warnings</h2><ul class="warnings">{items}</ul>' if items else ""


def _html_confusion(report: dict) -> str:
    matrix = _confusion(report)
    if matrix is None:
        return ""
    caption, header, rows = matrix
    focus = _focus(report)
    return (f"<h2>Confusion matrix (test)</h2><p>{html.escape(caption)}</p>"
            + (_html_table(header, rows) if header else "")
            + ("" if focus is None else f"<h2>Most confused classes (test)</h2><p>{html.escape(focus.caption)}</p>"
               + (_heat_map(focus) + _html_table(FOCUS_HEADER, _focus_rows(focus, _isolated), (FOCUS_HEADER[-1],))
                  if focus.shown else "")))


LABEL_CELL_PX = 7  # px: the most a terminal cell of a chart's 10 px label takes, about (a CJK character: two cells)


def _slant_reach(cells: int) -> float:
    """How far right of its column a heat map's column name of ``cells`` terminal cells, slanted 60° up, reaches: its
    length × cos 60° and its glyphs' depth. The last columns' names ran past the map's right edge and were cut off
    ("other classes" by 18 px; a many-classes review)."""
    return 0.5 * LABEL_CELL_PX * cells + 4


def _heat_map(focus: _Focus) -> str:
    """The focus sub-matrix as an inline SVG heat map, as the dashboard draws it: each cell shaded by its share of
    its row (the true class's test images), blue on the diagonal, red off it; every non-empty cell says its count in
    its tooltip; the names of rows on the left, of columns above, cut to 18 cells (whole in their tooltips).
    Its cells are 14 px, narrower where that many would pass the page's width (60 classes and "other classes" drew
    1,014 px in the 980 px body; a many-classes round): 13 px at the most classes the focus holds, 12 with long names.
    The map is as wide as its last columns' slanted names reach (:func:`_slant_reach`), the row names' room as their
    longest needs."""
    from rich.cells import cell_len

    n, top = len(focus.names), 130
    cut = [cut_name(name, 18) for name in focus.names]
    left = 12 + LABEL_CELL_PX * max(map(cell_len, cut), default=0)
    reach = [_slant_reach(cell_len(name)) for name in cut]
    cell = min(14, (PAGE_WIDTH - left - 10) // max(n, 1),
               *(math.floor((PAGE_WIDTH - left - r) / (i + 0.5)) for i, r in enumerate(reach)))
    width = max(left + n * cell + 10, *(math.ceil(left + (i + 0.5) * cell + r) for i, r in enumerate(reach)))
    height = top + n * cell + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{width}" height="{height}" role="img" '
             f'aria-label="confusion heat map of the {focus.shown} most confused classes">']
    for i, name in enumerate(focus.names):
        x, y = left + i * cell + cell / 2, top + i * cell + cell - 3
        parts.append(f'<text x="{left - 4}" y="{y}" font-size="10" text-anchor="end"><title>{html.escape(name)}'
                     f'</title>{html.escape(cut[i])}</text><text x="{x:.0f}" y="{top - 4}" font-size="10" '
                     f'transform="rotate(-60 {x:.0f} {top - 4})"><title>{html.escape(name)}</title>'
                     f'{html.escape(cut[i])}</text>')
    for i, row in enumerate(focus.counts):
        total = sum(row) or 1
        for j, count in enumerate(row):
            if count:
                share, colour = count / total, "#5b7db1" if i == j else "#c8553d"
                parts.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                             f'fill="{colour}" fill-opacity="{0.15 + 0.85 * share:.2f}"><title>true '
                             f'{html.escape(focus.names[i])} → predicted {html.escape(focus.names[j])}: {count:,} '
                             f'({percent(share, 1)} % of its row)</title></rect>')
    return "".join(parts) + "</svg>"


EXPORT_FORMATS = {"md": report_markdown, "html": report_html}


PER_CLASS_ORDER = "Per class, those that changed first, largest loss first"  # the order of compare.class_rows


def _per_class_title(comparison: Comparison) -> str:
    """The per-class table's heading: its order, or that no class changed ("those that changed first, largest loss
    first" headed a table of equal runs in class order; a new-user round)."""
    changed = any(row.delta for row in comparison.per_class if row.delta is not None)
    return PER_CLASS_ORDER if changed else "Per class (no class's accuracy changed)"


class RunsContext(NamedTuple):
    """What a comparison's export says of its two runs beyond the comparison (:func:`runs_context`): ``names``
    follow what was compared, ``warnings`` close the facts. Each is a list of (label, text)."""

    names: list[tuple[str, str]]
    warnings: list[tuple[str, str]]


NO_CONTEXT = RunsContext([], [])


def runs_context(base: Report, other: Report, names: dict[str, str] | None = None) -> RunsContext:
    """What a comparison's export says of its two runs beyond the comparison: each run's name (``names``: run id →
    words, the service's name, note and data set) and each run's own report warnings (a small validation split,
    unstable groups, ...): an exported comparison had read more reliable than the page it came from, which showed
    them (a dashboard-only round)."""
    named = [(f"{side} run", names[report.run_id]) for side, report in (("base", base), ("other", other))
             if names and report.run_id in names]
    # a warning both runs give, once (9 blocks, mostly pairs, stood before the verdict; a new-user round)
    warnings = [("warning (both runs)", w) for w in base.warnings if w in other.warnings]
    warnings += [(f"warning ({side} run)", w) for side, report, rest in (("base", base, other),
                                                                         ("other", other, base))
                 for w in report.warnings if w not in rest.warnings]
    return RunsContext(named, warnings)


def comparison_markdown(comparison: Comparison, context: RunsContext = NO_CONTEXT) -> str:
    """A comparison as one Markdown document: what was compared (and ``context``, :func:`runs_context`), the verdict
    and cost, then the metrics and every class (accuracies in %, deltas in points with their 95 % paired
    intervals)."""
    lines = [f"# mr2probe compare: {_md(comparison.base)} vs {_md(comparison.other)}", ""]
    lines += _md_facts([(label.capitalize(), text) for label, text in _with_context(comparison, context)])
    lines += ["", f"## {_first_upper(_md(metric_title(comparison)))}", "",
              *_md_table(METRIC_HEADER, metric_rows(comparison))]
    rows, _ = class_rows(comparison)
    lines += ["", f"## {_per_class_title(comparison)}", "", *_md_table(CLASS_HEADER, rows)]
    return "\n".join(lines) + "\n"


def _with_context(comparison: Comparison, context: RunsContext) -> list[tuple[str, str]]:
    """The comparison's facts with ``context``: the runs' names after what was compared, their warnings last (they
    stood before the verdict; a new-user round)."""
    facts = comparison_facts(comparison)
    return facts[:1] + context.names + facts[1:] + context.warnings


def comparison_html(comparison: Comparison, context: RunsContext = NO_CONTEXT) -> str:
    """A comparison as one self-contained HTML page: the same content as :func:`comparison_markdown`."""
    title = f"mr2probe compare: {comparison.base} vs {comparison.other}"
    facts = _html_facts([(label.capitalize(), text) for label, text in _with_context(comparison, context)])
    rows, _ = class_rows(comparison)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{facts}'
            f'<h2>{_first_upper(html.escape(metric_title(comparison)))}</h2>'
            f'{_html_table(METRIC_HEADER, metric_rows(comparison))}'
            f'<h2>{_per_class_title(comparison)}</h2>{_html_table(CLASS_HEADER, rows)}</body></html>\n')


COMPARE_FORMATS = {"md": comparison_markdown, "html": comparison_html}


def many_markdown(many: ManyComparison) -> str:
    """Several runs against one base (:mod:`probe.compare_many`) as one Markdown document: what was compared, the
    probes and the base's accuracies, then one row per run."""
    facts, warnings = _many_facts(many)
    lines = [f"# mr2probe compare: {_md(many.base)} vs {many.runs_text()}", "", *_md_facts(facts)]
    lines += ["", f"## Δ points against {_md(many.base)} [95 % interval]; {_md(many.title)}", "",
              *_md_table(MANY_HEADER, many_rows(many, " "))]
    lines += ["", "## Warnings", "", *_md_facts(warnings)] if warnings else []
    return "\n".join(lines) + "\n"


def _many_facts(many: ManyComparison) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """:func:`many_facts` capitalised, split into what stands above the table and the warnings (the pairwise
    comparisons' and the runs' own), below it (a warning per run above pushed the table off the first screen at six
    runs)."""
    facts = [(label[0].upper() + label[1:], text) for label, text in many_facts(many)]
    return ([fact for fact in facts if not fact[0].startswith("Warning")],
            [fact for fact in facts if fact[0].startswith("Warning")])


def many_html(many: ManyComparison) -> str:
    """Several runs against one base as one self-contained HTML page: the content of :func:`many_markdown`."""
    title = f"mr2probe compare: {many.base} vs {many.runs_text()}"
    facts, warnings = _many_facts(many)
    below = f"<h2>Warnings</h2>{_html_facts(warnings)}" if warnings else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{_html_facts(facts)}'
            f'<h2>Δ points against {html.escape(str(many.base))} [95 % interval]; {html.escape(many.title)}</h2>'
            f'{_html_table(MANY_HEADER, many_rows(many, " "))}{below}</body></html>\n')


MANY_FORMATS = {"md": many_markdown, "html": many_html}
