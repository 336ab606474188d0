"""The run report in words: the terminal view (:func:`format_report`), the class tables every terminal view prints
(:func:`class_table`, :func:`print_table`, :func:`cut_name`), the text helpers the other views share (the Markdown
and HTML exports, the comparison, the dashboard's API) and the words naming a run's classes to a user
(:func:`unknown_class_text`, :func:`confusion_cell`). The schema and the run folder's files are ``probe.report``'s."""
from __future__ import annotations

import difflib
import io
import re
from bisect import bisect_right
from typing import Any, Callable, Sequence

from .groups import GROUP_NAMES
from .names import class_index, listed, listed_name, lookalike_key, shown_name
from .numbers import interval_text, number_text, percent
from .plain_table import table_lines
from .report import (CONFUSIONS_HEADER, SEED_METRICS, Report, class_row, confusions_text, loss_label, posthoc_text,
                     selection_split_text, shipped_accuracy, shipped_class_ci, shipped_worst, verdict_label,
                     worst_class_ci)


# The terminal views (format_report, compare.format_comparison) list every class up to this many, else the worst
# (compared: the most moved) this many: a 300-class run printed 600 table rows. report.json, per_class.csv, the
# comparison's JSON and the exports keep every class.
TERMINAL_CLASSES = 40
# seeds.metrics.worst_class's column in the terminal and the exports: each seed's lowest class accuracy, whichever
# class; summary.worst_class (the "Worst class: dress" line) is the class lowest on the seed mean, so the two differ
SEED_WORST_HEADER = "worst class of each seed"
# Columns of the terminal views, at the least (app.commands.terminal_width widens them on a wider terminal)
REPORT_WIDTH = 120  # format_report
# the narrowest terminal format_report, format_comparison and format_many fit every line of (the CLI prints no
# narrower)
LEAST_WIDTH = 80
COMPARE_WIDTH = 110  # compare.format_comparison, compare_many.format_many


# What a third without any class shows (fewer than three classes leave one empty), instead of "—% —"
NO_CLASSES = "no classes (fewer than three classes to rank)"


def empty_third(key: str, value: float | None) -> bool:
    """Whether the summary figure ``key`` is a third that holds no class (its value None): shown as
    :data:`NO_CLASSES` by every view."""
    return value is None and key in GROUP_NAMES


def worst_first(rows: list, accuracy: Callable[[Any], float | None]) -> list:
    """Per-class rows ordered by test accuracy, worst first; classes without one (no test image) last."""
    return sorted(rows, key=lambda row: 2.0 if accuracy(row) is None else accuracy(row))


def unknown_class_text(name: str, class_names: list[str], shown: int = 20, left_out: Sequence[str] = ()) -> str:
    """Why ``name`` is not a class of a run: left out of it (``left_out``, the run's ``drop_classes``: a long-tailed
    round's class of one image, dropped to train, then asked for by name), else its classes when it has at most
    ``shown``, else how many it has and the closest names (a 300-class run's message had listed all 300)."""
    if class_index(name, list(left_out)) is not None:
        return f"{name!r} was left out of this run (drop_classes, --drop-class): none of its images is in any split"
    if len(class_names) <= shown:  # the class named but for case: said, as --drop-class says it (a new-user round)
        same = [c for c in class_names if lookalike_key(c) == lookalike_key(name)]  # 'Cat ' for 'Cat' too
        hint = f" (did you mean {same[0]!r}?)" if same else ""
        return f"{name!r} is not a class of this run{hint}; its classes: {', '.join(map(listed_name, class_names))}"
    # names holding it first ('tench' → 'n01440764 tench, Tinca tinca', under difflib's cutoff; a scale round)
    needle = name.strip().casefold()
    holding = [c for c in class_names if needle and needle in c.casefold()]
    close = list(dict.fromkeys(holding + difflib.get_close_matches(name, class_names, n=5, cutoff=0.6)))[:5]
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"{name!r} is not a class of this run, one of {len(class_names)} (report.json class_names){hint}"


def confusion_cell(class_names: list[str], true: str | None, predicted: str | None,
                   fields: tuple[str, str] = ("class", "predicted"), left_out: Sequence[str] = ()
                   ) -> tuple[int | None, int | None]:
    """The indices of a true class and of a predicted one other than it, each when given (None: every class): the
    mistakes to list (``mr2probe failures``, ``GET /api/runs/{id}/failures``). ValueError naming the argument (``fields``, as the
    caller spells them) that names no class of the run, or a predicted class equal to the true one. A name typed or
    pasted in decomposed Unicode (NFD, as macOS writes file names) is the composed class name the data set gave
    (``feature_cache`` composes folder names; an outside round's 'Überschall' was refused beside itself)."""
    found = []
    for field, name in zip(fields, (true, predicted)):
        index = None if name is None else class_index(name, class_names)
        if name is not None and index is None:
            raise ValueError(f"{field} {unknown_class_text(name, class_names, left_out=left_out)}")
        found.append(index)
    if found[1] is not None and found[1] == found[0]:
        raise ValueError(f"{fields[1]} names the class itself: its images predicted as it are not mistakes.")
    return found[0], found[1]


def left_out_text(config: dict) -> str:
    """The classes a run left out (``ProbeConfig.drop_classes``) in words, "" where none: a report of 9 classes of a
    10-class cache said nothing of the tenth."""
    dropped = config.get("drop_classes") or []
    return f"{listed(dropped, 10)} (their images in no split: the run is of the other classes)" if dropped else ""


def _header(report: Report) -> list[str]:
    cfg, selection = report.config, report.selection
    chosen = ", ".join(f"{k}={v:g}" for k, v in cfg.get("selected", {}).items() if v is not None)
    lines = [f"run {report.run_id or '(unnamed)'}: head={cfg['head']} loss={loss_label(cfg)} p={cfg.get('p')} "
             f"seeds={report.seeds.values} selected: {chosen}"]
    if left := left_out_text(cfg):
        lines.append(f"left out: {left}")
    if selection.preset is not None:
        settings = ", ".join(f"{k}={v}" for k, v in selection.preset.settings.items())
        lines.append(f"preset {selection.preset.name} ({settings}): {selection.preset.why}")
    if selection.verdict_text:
        lines.append(f"verdict ({verdict_label(selection.verdict, selection.test_check)}): {selection.verdict_text}")
    if report.posthoc is not None:
        lines.append(f"post-hoc: {posthoc_text(report.posthoc, report.config)}")
    where = selection_split_text(selection.cv, report.config.get("cv"),
                                 min((row.n_val for row in report.per_class if row.n_val is not None), default=None))
    lines.append(f"selection ({selection.criterion}, on {where}): {selection.reason}")
    lines.append(f"grouping: {report.grouping.note}")
    if report.features is not None:
        lines.append(f"features: {report.features.describe()}")
    if report.timing is not None:
        lines.append(f"time: {report.timing.describe()}")
    if report.environment is not None:
        lines.append(f"environment: {report.environment.describe()}")
    lines += [f"warning: {text}" for text in report.warnings]
    return lines


def _val_note(report: Report) -> str:
    """What the terminal table's "val %" is, beside what ranked the groups (the report's grouping note, one
    definition): a new-user round read this run's val % (Shirt 23.33, out of fold) against the 63.3 % of the
    reference that ranked the thirds, both called "val"."""
    cv = report.selection.cv
    column = ("this run's accuracy on the validation split, the seeds' mean" if cv is None else
              f"this run's out-of-fold accuracy ({cv.describe()}, the chosen configuration's first seed)")
    return f"val %: {column}; {report.grouping.note}."


def shipped_worst_text(per_class: list, seeds: int, unit: str = " %") -> str:
    """``; of the shipped probe (first seed): bird 16.67 %``, said beside the seed mean's worst class by the terminal
    and Markdown views (:func:`shipped_worst`), each with its own per-cent sign (``unit``: "%" in the terminal's line,
    which read "46.67%; ... 50.00 %"; a new-user round); "" with one seed."""
    worst = shipped_worst(per_class, seeds)
    if worst is None:
        return ""
    row = class_row(per_class, worst.name)
    ci = None if row is None else shipped_class_ci(row)
    return (f"; of the shipped probe (first seed): {worst.label()} {percent(worst.accuracy, unit=unit)}"
            + (f" {interval_text(ci)}" if ci else ""))


def _shown_classes(report: Report, max_classes: int | None) -> tuple[list, str | None]:
    """The per-class rows the terminal tables list, and their caption: every class up to ``max_classes`` (None:
    no limit), else the ``max_classes`` worst by test accuracy."""
    rows = report.per_class
    if max_classes is None or len(rows) <= max_classes:
        return rows, None
    shown = worst_first(rows, lambda r: r.accuracy)[:max_classes]
    return shown, (f"the {max_classes} worst of {len(rows)} classes by test accuracy; the other "
                   f"{len(rows) - max_classes} are in per_class.csv")


def text_console(width: int):
    """A rich console recording plain text ``width`` cells wide that prints class names as they are: markup off
    ('crane [bird]' lost its '[bird]', and 'x [/] y' ended train and report in a MarkupError after the run was
    written; a many-classes round) and emoji codes off ('animal:cat:1' printed as 'animal🐱1', 'hot :dog: stand' as
    'hot 🐶 stand'; a review)."""
    from rich.console import Console

    return Console(file=io.StringIO(), width=width, record=True, color_system=None, markup=False, emoji=False)


def format_report(report: Report, *, width: int = REPORT_WIDTH, max_classes: int | None = TERMINAL_CLASSES) -> str:
    """A readable terminal view: header, summary with mean ± std over seeds, margins, per-class tables (every class
    up to ``max_classes``, else the worst ``max_classes``; None: every class)."""
    from rich import box
    from rich.table import Table

    console = text_console(width)
    for line in _header(report):
        console.print(line)
    summary, metrics = report.summary, report.seeds.metrics
    table = Table(title="test accuracy (%), mean ± std over seeds", box=box.SIMPLE)
    for key in SEED_METRICS:  # the columns of the row below, in its order
        table.add_column(SEED_WORST_HEADER if key == "worst_class" else key, justify="right")
    table.add_row(*("—" if metrics[key].mean is None
                    else f"{percent(metrics[key].mean)} ± {percent(metrics[key].std)}" for key in SEED_METRICS))
    console.print(table)
    if summary.overall_ci is not None:
        console.print(f"overall {percent(summary.overall)}%, 95 % interval {interval_text(summary.overall_ci)} over "
                      f"{sum(row.n_test for row in report.per_class):,} test images (the ± above: spread over seeds)")
    if len(metrics["overall"].per_seed) > 1:  # what ships, beside the mean (only the calibration line said it)
        console.print(f"the shipped probe (first seed): overall {percent(metrics['overall'].per_seed[0])}%"
                      + (f", 95 % interval {interval_text(summary.shipped_overall_ci)}"
                         if summary.shipped_overall_ci else ""))
    if summary.group_ci:
        console.print("95 % intervals over the test images: " + ", ".join(
            f"{key} {NO_CLASSES}" if empty_third(key, getattr(summary, key)) else
            f"{key} {percent(getattr(summary, key))}% {interval_text(summary.group_ci.get(key))}"
            for key in ("balanced", *GROUP_NAMES)))
    if report.calibration is not None:
        console.print(report.calibration.describe())
    if report.near_duplicates is not None:
        console.print(report.near_duplicates.describe())
    wc, gm = summary.worst_class, summary.group_margin
    ci = worst_class_ci(report.per_class, wc.name)
    console.print(f"worst class (seed mean): {wc.label()} {percent(wc.accuracy)}%"
                  + (f" {interval_text(ci)}" if ci else "")
                  + shipped_worst_text(report.per_class, len(report.seeds.values), '%'))
    # a line of its own: joined to the worst class's by three spaces it read as two lines run together (a review)
    console.print(f"spread of the per-class accuracies: std {percent(summary.per_class_std)} points (seed mean)")
    console.print(f"output margin P(y|x) − max P(y'|x): easy {number_text(gm.easy)}, medium {number_text(gm.medium)}, "
                  f"hard {number_text(gm.hard)}")
    ideal = summary.ideal_class_margin_deg  # none where the simplex does not fit: "—", no degree sign (a re-test)
    console.print(f"class margin {number_text(summary.class_margin_deg, '.2f')}° (ideal "
                  f"{number_text(ideal, '.2f')}{'' if ideal is None else '°'}), min sample margin "
                  f"{number_text(summary.min_sample_margin)} (ideal {number_text(summary.ideal_sample_margin)})")

    rows, caption = _shown_classes(report, max_classes)
    ordered = worst_first(rows, lambda r: r.accuracy)  # as the failures table (best first read wrong)
    # two tables by purpose, each within the width: in one, with shipped and val given their intervals, the 15
    # columns took 159 characters and every row of a 120-column terminal wrapped
    print_class_table(
        console, "per class (test), worst first: accuracy; shipped and val with their [95 % intervals]",
        (("class", "left"), ("group", "left"), ("n_train", "right"), ("n_val", "right"), ("n_test", "right"),
         ("acc %", "right"), ("± std", "right"), ("shipped %", "right"), ("val %", "right")),
        # n_val beside "val %": a long-tailed round read 100.00 resting on one validation image (the dashboard and
        # the CSV gave the count, the terminal did not)
        [[row.name, row.group, str(row.n_train), "—" if row.n_val is None else str(row.n_val), str(row.n_test),
          percent(row.accuracy), percent(row.accuracy_std),
          # each with its 95 % interval, as the test accuracy's in the table below (both were bare)
          with_interval(shipped_accuracy(row), row.shipped_accuracy_ci),
          with_interval(row.val_accuracy, row.val_accuracy_ci)] for row in ordered],
        width, caption)
    console.print(_val_note(report))
    print_class_table(
        console, "per class, worst first: geometry and margins",
        (("class", "left"), ("r²", "right"), ("spread", "right"), ("γ", "right"), ("out margin", "right"),
         ("smp min", "right"), ("smp mean", "right")),
        [[row.name, number_text(row.r2, ".4g"), number_text(row.spread, ".4g"), number_text(row.gamma),
          number_text(row.output_margin), number_text(row.sample_margin_min), number_text(row.sample_margin_mean)]
         for row in ordered],
        width, caption)
    if any(row.precision is not None for row in report.per_class):
        _failures_table(console, ordered, caption, width)
        if any(row.precision is None for row in rows):
            console.print(NEVER_PREDICTED)
    return console.export_text()


NAME_COLUMN = 30  # the widest class-name column of a terminal table; a longer name is cut in its middle
PROSE_COLUMN = 12  # the narrowest prose column of a terminal table (its widest entry where wider)


def cut_name(name: str, width: int = NAME_COLUMN, shown: Callable[[str], str] = shown_name) -> str:
    """``name`` in at most ``width`` terminal cells, cut in the middle ('n01447017 goldfish, Carassius auratus #17'
    → 'n01447017 goldf…us auratus #17'): the end tells apart names alike at the start (a scale round), and cut at
    the end a name read as whole ('n01443537 goldfish,'; an earlier one). Cells, not characters: a CJK character or
    an emoji takes two, and a name cut by characters overflowed its column, which rich then cut at its end too
    ('北京烤鸭 P……' for every '北京烤鸭 Peking duck … #0158' of a 1,000-class run; a many-classes round). A name with
    white space at an end is shown quoted (:func:`~probe.names.shown_name`)."""
    from rich.cells import cell_len

    name = shown(name)  # 'cat ' quoted: its space shows (listed_name in a list)
    if cell_len(name) <= width:
        return name
    return _cut_at(name, width, width // 2)


LISTING_COLUMN = 40  # the widest class-name column of predict's tables and the failures / label-issues listings


def name_width(names: Sequence[str], least: int) -> int:
    """A class-name column's width in terminal cells: its widest shown name (:func:`~probe.names.shown_name`),
    between ``least`` and :data:`LISTING_COLUMN`, for :func:`name_cell`."""
    from rich.cells import cell_len

    return max(least, min(LISTING_COLUMN, max((cell_len(shown_name(name)) for name in names), default=0)))


def name_cell(name: str, width: int) -> str:
    """``name`` cut to ``width`` terminal cells (:func:`cut_name`) and padded to them: a CJK name or an emoji takes
    two cells a character, so padding by characters put the numbers beside it out of line (predict's tables; the
    rows of failures and label-issues, a first-user round on 37 classes: '東京 タワー' pushed its row 5 cells)."""
    from rich.cells import set_cell_size

    return set_cell_size(cut_name(name, width), width)


def _cut_at(name: str, width: int, head: int) -> str:
    """``name``'s first ``head`` cells, '…', and its end in the ``width - 1 - head`` cells left."""
    return _cutter(name, width)(head)


def _cutter(name: str, width: int) -> Callable[[int], str]:
    """:func:`_cut_at` of ``name`` in ``width`` cells as a function of ``head``, each character's cells counted
    once: :func:`cut_names` tries up to ``width`` places on every name (5,000 colliding names took seconds)."""
    from itertools import accumulate, takewhile

    from rich.cells import get_character_cell_size

    def counted(chars) -> list[int]:  # the cells up to and with each character, while they fit in width
        return list(takewhile(lambda cells: cells <= width, accumulate(map(get_character_cell_size, chars))))

    start, end = counted(name), counted(reversed(name))
    # the longest start (end) that fits in h cells: the characters before the first that makes the count exceed h
    return lambda head: (name[:bisect_right(start, head)] + "…"
                         + name[len(name) - bisect_right(end, width - 1 - head):])


def cut_names(names: list[str], width: int = NAME_COLUMN) -> list[str]:
    """:func:`cut_name` of each of ``names``, but where its middle cut shows two names alike, every long name is cut
    at the one place nearest the middle that tells them all apart, where one does: 'circle_4_hstripes' and
    'circle_4_vstripes' both read 'circle_4…stripes' in 16 cells, two rows of a 120-class table under one name (a
    many-classes round): beside 'circle_5_hstripes' they read 'circle_4_h…ripes', 'circle_4_v…ripes' and
    'circle_5_h…ripes' (the two alone, 'circle_…hstripes' and 'circle_…vstripes': the place nearest the middle that
    tells the names given apart). One place for all keeps a column of names alike in their pattern readable down the
    table."""
    from rich.cells import cell_len

    shown = [shown_name(name) for name in names]
    distinct = len(set(shown))
    cutters = [None if cell_len(name) <= width else _cutter(name, width) for name in shown]

    def cut_at(head: int) -> list[str]:
        return [name if cutter is None else cutter(head) for name, cutter in zip(shown, cutters)]

    cuts = cut_at(width // 2)  # cut_name's
    if len(set(cuts)) == distinct:
        return cuts
    for head in sorted(range(1, width - 1), key=lambda h: (abs(h - width // 2), h)):
        trial = cut_at(head)
        if len(set(trial)) == distinct:
            return trial
    return cuts


def _needs(columns, rows: list[list[str]]) -> tuple[list[bool], list[int]]:
    """Of each of a :func:`class_table`'s ``columns``: whether it is prose (left-justified, not the first, words in
    some cell), and the cells its widest cell or header word takes."""
    from rich.cells import cell_len

    prose = [i > 0 and justify == "left" and any(" " in row[i] for row in rows) for i, (_, justify) in
             enumerate(columns)]
    # a prose column needs its widest entry (it wraps between entries only): '1 (2.4)' was broken over two lines;
    # another its widest line (a delta over its interval, compare_many's cells)
    need = [max([cell_len(part) for row in rows
                 for part in (_ENTRY_END.split(row[i]) if prose[i] else row[i].split("\n"))]
                + [max(map(cell_len, header.split()))]) for i, (header, _) in enumerate(columns)]
    return prose, need


_ENTRY_END = re.compile(r"(?<=\)), ")  # between two entries of a list such as "cat (4.8), dog (3.6)"


def _wrap_entries(cell: str, width: int) -> str:
    """``cell``, a list of entries ("cat (4.8), dog (3.6)"), on as many lines of at most ``width`` cells as it
    needs, each line ending at an entry's end (an entry wider than ``width`` alone on its line)."""
    from rich.cells import cell_len

    lines: list[str] = []
    for entry in _ENTRY_END.split(cell):
        if lines and cell_len(lines[-1]) + 2 + cell_len(entry) <= width:
            lines[-1] += ", " + entry
        else:
            lines.append(entry)
    return ",\n".join(lines)


def _least_width(prose: list[bool], need: list[int], name_width: int) -> int:
    """The width of a :func:`class_table` whose name column is ``name_width`` cells, its numbers whole and its prose
    columns :data:`PROSE_COLUMN` cells or their widest entry: three characters a column (padding on either side,
    a separator), one at the edge."""
    return (name_width + sum(n if not prose[i] else max(n, PROSE_COLUMN) for i, n in enumerate(need) if i)
            + 3 * len(need) + 1)


def fits_alone(need: int, width: int) -> bool:
    """Whether a column ``need`` cells wide fits ``width`` beside the class names at their narrowest (12 cells): a
    part of its own (:func:`column_parts`) is printed within ``width``."""
    return _least_width([False, False], [0, need], 12) <= width


def _least_label(rows: list[list[str]], need: int, labels: bool) -> int:
    """The narrowest first column of a :func:`class_table` of ``rows`` whose widest first cell takes ``need`` cells:
    12 cells (names cut in their middle) or, for ``labels`` (words, wrapped between them: :func:`_wrap_words`),
    their longest word, never cut."""
    from rich.cells import cell_len

    least = min(12, need)
    return max([least] + [cell_len(word) for row in rows for word in row[0].split()]) if labels else least


def _wrap_words(text: str, width: int) -> str:
    """``text`` on lines of at most ``width`` cells, broken between its words (a word wider than ``width`` alone on
    its line): a metric label ('worst class (class 3 (tied with class 4, ...))') is words, which a cut in the middle
    ('worst …s 12)') or rich's fold would break (a first-user round)."""
    from rich.cells import cell_len

    lines: list[str] = []
    for word in text.split():
        if lines and cell_len(lines[-1]) + 1 + cell_len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def class_table(title: str, columns, rows: list[list[str]], width: int, caption: str | None = None,
                sections: bool = False, labels: bool = False):
    """A rich table, ``width`` columns wide at most, whose first column is the class name and ``columns`` its
    ``(header, justify)``: each number column as wide as its widest cell (no number is ever cut), the names cut in
    their middle (:func:`cut_name`) to the width left, between 12 and :data:`NAME_COLUMN`, never wrapped; a prose
    column (left-justified, not the first) takes what remains and wraps. Rich had given a 1,000-class run's name
    column 7 characters beside roomy number columns, every name wrapped onto up to ten lines, and cut 'Pullover' to
    'Pullov…' at 120 columns (new-user and scale rounds). ``sections``: a rule under each row (rows of cells of
    two lines). ``labels``: the first column is words (compare's metric labels), as wide as the widest fits and
    wrapped between words (:func:`_wrap_words`), each row then under a rule where one wraps."""
    from rich import box
    from rich.table import Table

    original, rows = rows, [[row[0] if labels else shown_name(row[0]), *row[1:]] for row in rows]
    prose, need = _needs(columns, rows)
    least = _least_label(rows, need[0], labels)
    name_width = min(need[0] if labels else min(NAME_COLUMN, need[0]),
                     max(least, width - _least_width(prose, need, 0)))
    names = ([_wrap_words(row[0], name_width) for row in rows] if labels
             else cut_names([row[0] for row in original], name_width))
    sections = sections or any("\n" in name for name in names)
    table = Table(title=title, box=box.SIMPLE, caption=caption)
    # each prose column its least width and an even share of what is left, wrapped there between its entries
    spare = max(0, width - _least_width(prose, need, name_width)) // max(1, sum(prose))
    room = [max(n, PROSE_COLUMN) + spare if prose[i] else n for i, n in enumerate(need)]
    for i, (header, justify) in enumerate(columns):
        if i == 0:
            table.add_column(header, justify=justify, no_wrap=True, min_width=name_width, max_width=name_width)
        elif prose[i]:
            table.add_column(header, justify=justify, min_width=room[i], max_width=room[i])
        else:
            # a number with its interval ("71.43 [30.3, 94.9]") never wraps: rich narrowed the widest wrappable
            # column first, min_width put it back, and the last column was cut off whole ('smp mean' as 'sm')
            table.add_column(header, justify=justify, min_width=need[i], no_wrap=any(" " in row[i] for row in rows))
    for row, name in zip(rows, names):
        table.add_row(name, *(_wrap_entries(cell, room[i]) if prose[i] else cell for i, cell in enumerate(row[1:], 1)),
                      end_section=sections)
    # the least width that keeps every number whole: where the console is narrower, rich cut the last columns'
    # numbers with no mark (-0.087 read -0.08, 'smp mean' 'sm mea'; a new-user round): print_table widens to it
    table.needed_width = _least_width(prose, need, name_width)
    return table


def column_parts(columns, rows: list[list[str]], width: int, labels: bool = False) -> list[list[int]]:
    """The indices of ``columns`` after the first (the class name) in consecutive parts, each of which fits
    ``width`` beside the names at their narrowest (:func:`_least_label`; one part where all fit; a column too wide
    even alone is a part of its own, printed wider: :func:`print_table`)."""
    prose, need = _needs(columns, rows)
    name, parts = _least_label(rows, need[0], labels), [[]]
    for i in range(1, len(columns)):
        trial = parts[-1] + [i]
        if parts[-1] and _least_width([prose[j] for j in [0, *trial]], [need[j] for j in [0, *trial]], name) > width:
            parts.append([i])
        else:
            parts[-1] = trial
    return parts


def print_class_table(console, title: str, columns, rows: list[list[str]], width: int,
                      caption: str | None = None, sections: bool = False, labels: bool = False) -> None:
    """Print a :func:`class_table` within ``width``: where its columns need more, as consecutive tables of the
    columns that fit (:func:`column_parts`), each repeating the class names, titled "(1/2)", "(2/2)", the caption
    under the last: a table as wide as its numbers wrapped every row of the terminal instead. ``labels``: the
    first column is words, wrapped between them (:func:`class_table`)."""
    parts = column_parts(columns, [[row[0] if labels else shown_name(row[0]), *row[1:]] for row in rows], width,
                         labels)
    for k, part in enumerate(parts, 1):
        print_table(console, class_table(
            title if len(parts) == 1 else f"{title} ({k}/{len(parts)})", [columns[0], *(columns[i] for i in part)],
            [[row[0], *(row[i] for i in part)] for row in rows], width, sections=sections, labels=labels), width)
    if caption:  # at the console's width: as a table's caption it wrapped to a narrow table's (the geometry's)
        console.print(caption)


def print_table(console, table, width: int) -> None:
    """Print a :func:`class_table` at ``width`` or, where its numbers need more, at their width: a line longer than
    the terminal wraps, where a cut number would be read as it shows. Its rows drawn as plain text where rich would
    draw them so (:func:`~probe.plain_table.table_lines`, the same bytes): rich's own drawing of a 5,000-class
    run's tables took about 35 s."""
    from rich.segment import Segment, Segments

    kept = console.width  # console.print's own width is capped at the console's
    console.width = max(width, getattr(table, "needed_width", width))
    try:
        drawn = table_lines(console, table)
        if drawn is None:
            console.print(table)
        else:  # cropped only where wider than the console (measuring every line to crop it took a third of the time)
            console.print(Segments([Segment(line) for line in drawn[0]]), crop=drawn[1] > console.width)
    finally:
        console.width = kept


# What a precision of "—" in the terminal's table of errors means (printed bare, it read as a value left out)
NEVER_PREDICTED = ("precision —: no test image was predicted as the class, so its precision TP / (TP + FP) is 0 / 0, "
                   "undefined (scikit-learn's zero_division), with no interval; its F1 is 2·TP / (2·TP + FP + FN).")


def with_interval(value: float | None, ci: list | None, fraction: bool = False) -> str:
    """A class's precision or recall (per cent) or, with ``fraction``, its F1 (0–1) followed by its 95 % interval
    ("53.33 [43.6, 62.8]", "0.533 [0.44, 0.63]"), the value alone without one (a report written before them)."""
    text = number_text(value) if fraction else percent(value)
    if not ci or value is None or any(v is None for v in ci):
        return text
    return text + (f" [{number_text(ci[0], '.2f')}, {number_text(ci[1], '.2f')}]" if fraction
                   else " " + interval_text(ci))


def _failures_table(console, rows: list, caption: str | None, width: int) -> None:
    """Print the terminal's second per-class table over ``rows`` (worst first): accuracy with its 95 % interval,
    precision / recall / F1 and the most frequent confusions (``probe.diagnostics``)."""
    print_class_table(
        console, "per class (test): where the errors go, worst first; [95 % intervals]",
        (("class", "left"), ("acc %", "right"), ("95 % interval", "right"), ("precision %", "right"),
         ("recall %", "right"), ("F1", "right"), (CONFUSIONS_HEADER, "left")),
        [[row.name, percent(row.accuracy), interval_text(row.accuracy_ci),
          with_interval(row.precision, row.precision_ci),
          with_interval(row.recall, row.recall_ci), with_interval(row.f1, row.f1_ci, fraction=True),
          confusions_text([(c.name, c.rate) for c in row.top_confusions], lambda n: cut_name(n, 24, listed_name))]
         for row in rows],
        width, caption)
