"""Several runs against one base run (``mr2probe compare RUN_A RUN_B RUN_C ...``): one row per run.

Each row is the pairwise :func:`probe.compare.compare_reports` of that run against the base, on the base run's
groups: overall and balanced accuracy, the hard third and the worst class, each delta with its 95 % paired
interval. Compared with m runs at once, the base has m chances to look beaten by noise alone, so each metric's
paired sign-flip p-values are Holm-corrected over the m runs (Holm, 1979: step-down, the chance of any false
claim among them held at 5 %), and a delta reads as a gain or a loss only where the pairwise rule
(:func:`probe.compare.beyond_noise`: its interval leaves out 0, its images lean that way, their test passes)
holds with the corrected p-value. The intervals stay 95 % each, uncorrected, as every other view shows them.
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

from .compare import (SHARED_NOTE, UNPAIRED, Comparison, metric_title, retraining_sentence,
                      worst_class_words)
from .names import listed
from .predictions import BY_DIGESTS, BY_PATHS
from .numbers import percent, signed_points
from .report import Num, Report, interval_text
from .report_text import COMPARE_WIDTH, print_class_table, text_console
from .selection import SIGN_TEST_ALPHA
from .uncertainty import holm

SUMMARY_METRICS = ("overall", "balanced", "hard", "worst_class")


class ManyCell(BaseModel):
    delta: Num = Field(..., description="this run − the base run, a fraction")
    delta_ci: Optional[list[Num]] = Field(None, description="95 % paired bootstrap interval of delta (uncorrected)")
    p_value: Optional[float] = Field(None, description="the pairwise paired sign-flip test of the images it counts")
    holm_p: Optional[float] = Field(None, description="p_value Holm-corrected over the runs compared with the base")
    beyond_noise: Optional[bool] = Field(None, description="the pairwise rule with holm_p for p_value; null without "
                                         "an interval")
    seed_spread: Optional[float] = Field(None, description="the pairwise comparison's seed_spread: half-width of the "
                                         "95 % range of delta over retraining (probe.seed_spread); null where a run "
                                         "has 1 seed, for the worst class and on other images")


class ManyRow(BaseModel):
    run: Optional[str]
    probe: Optional[str] = Field(None, description="what the run's probe is, in words (probe.compare.probe_words)")
    metrics: dict[str, ManyCell]
    time_ratio: Optional[float] = Field(None, description="this run's wall time / the base run's (null when a "
                                        "report predates its timing)")
    time_comparable: Optional[bool] = Field(None, description="false when the two ran in another setting (device "
                                            "or threads: the ratio mixes both; shown with a *); null without a ratio")
    seed_pairing: Optional[str] = Field(None, description="how the cells' seed_spread took this run's and the base's "
                                        "seeds (the pairwise comparison's seed_pairing: 'same seeds' or 'independent')")


class ManyWarning(BaseModel):
    text: str
    runs: list[Optional[str]] = Field(..., description="the runs whose pairwise comparison with the base warns it")


class RunWarning(BaseModel):
    run: Optional[str] = Field(None, description="the run whose report gives it; null: every run's report does")
    text: str


def run_warnings(base: tuple[str, Report], others: list[tuple[str, Report]]) -> list[RunWarning]:
    """The runs' own report warnings (a small validation split, a miscalibrated shipped head, ...), as the pairwise
    exports carry them (``probe.export.runs_context``): one that every run gives once, then each run's others, the
    base first. ``base`` and ``others``: (the name its row goes by, its report)."""
    reports = [report for _, report in (base, *others)]
    shared = [w for w in base[1].warnings if all(w in report.warnings for report in reports)]
    return [RunWarning(text=w) for w in shared] + [RunWarning(run=name, text=w) for name, report in (base, *others)
                                                    for w in report.warnings if w not in shared]


class ManyComparison(BaseModel):
    """``mr2probe compare RUN_A RUN_B RUN_C ... --json``: ``rows`` summarise ``comparisons``, the pairwise ones."""

    base: Optional[str]
    base_probe: Optional[str]
    base_scores: dict[str, Num] = Field(..., description="the base run's own accuracies (fractions) on the images "
                                        "compared, for the metrics of the rows")
    base_ci: dict[str, Optional[list[Num]]] = Field(
        default_factory=dict, description="95 % interval of each of base_scores, the base run's own, as its report "
        "gives it (overall_ci, group_ci, the worst class's accuracy_ci; on other images, the same intervals of "
        "those: probe.uncertainty.own_intervals); null without stored predictions")
    title: str = Field(..., description="what was scored: the runs' test split, seed means, or other images")
    rows: list[ManyRow]
    note: str
    names: dict[str, str] = Field(default_factory=dict, description="run → what the views call it where that is "
                                  "more than its id (the service: 'focal/linear (run_…)'); the JSON keeps the ids")
    warnings: list[ManyWarning] = Field(default_factory=list, description="the pairwise comparisons' warnings, once "
                                        "each, with the runs they are of")
    run_warnings: list[RunWarning] = Field(default_factory=list, description="the runs' own report warnings, "
                                            "which the rows do not show (a shipped head miscalibrated, ...)")
    comparisons: list[Comparison]

    def runs_text(self) -> str:
        """``"1 run"``, ``"3 runs"``: the runs compared with the base."""
        return _runs_text(len(self.rows))


def _runs_text(count: int) -> str:
    return f"{count} run{'s' if count != 1 else ''}"


def _cells(comparisons: list[Comparison], key: str) -> list[ManyCell]:
    metrics = [c.metrics.get(key) for c in comparisons]
    corrected = holm([m.p_value if m is not None else None for m in metrics])
    cells = []
    for m, holm_p in zip(metrics, corrected):
        if m is None:
            cells.append(ManyCell(delta=None))
            continue
        beyond = None if m.beyond_noise is None else bool(m.beyond_noise and holm_p is not None
                                                          and holm_p <= SIGN_TEST_ALPHA)
        cells.append(ManyCell(delta=m.delta, delta_ci=m.delta_ci, p_value=m.p_value, holm_p=holm_p,
                              beyond_noise=beyond, seed_spread=m.seed_spread))
    return cells


def _time_note(comparisons: list[Comparison]) -> str:
    """What the ``time ×`` column is and, where a run ran in another setting than the base (a 43× that was one
    thread against two, shown as the same-setting ratios were: a new-user round), that its ratio mixes both."""
    other = [f"{c.other} ({c.cost.setting})" for c in comparisons if c.cost is not None and not c.cost.comparable]
    return ("time ×: the run's wall time over the base's" + (f"; * not the same setting, the ratio mixes both: "
                                                             f"{', '.join(other)}" if other else "") + ".")


def _interval_words(comparisons: list[Comparison]) -> str:
    """Which 95 % interval each delta has, comparison by comparison: paired, or unpaired where a comparison's test
    images could not be matched (``Comparison.pairing``; "paired" of every run had read as of an unpaired one too)."""
    unpaired = [c.other or "?" for c in comparisons if c.pairing == UNPAIRED]
    if not unpaired:
        return "its 95 % paired interval"
    why = "test images could not be matched image by image: each run's own interval square-and-added, no sign-flip test"
    if len(unpaired) == len(comparisons):
        return f"its 95 % unpaired interval (the runs' {why})"
    return f"its 95 % paired interval, but unpaired for {listed(unpaired, len(unpaired))} (its {why})"


SHARED_IMAGES = (BY_DIGESTS, BY_PATHS)  # pairings on the test images two caches share, not the base's whole split


def _base_note(comparisons: list[Comparison], own: Comparison) -> str:
    """``own``'s grouping note and, where some runs were paired on the test images two caches share
    (:data:`SHARED_IMAGES`), which: on the base's own test split where ``own`` is, else on the first's images."""
    shared = [c for c in comparisons if c.pairing in SHARED_IMAGES]
    if not shared:
        return own.grouping.note
    note = own.grouping.note.split(SHARED_NOTE)[0]
    names = listed([str(c.other) for c in shared], 5)
    where = ("its own test split" if own.pairing not in SHARED_IMAGES
             else f"the test images it shares with {own.other}")
    one = len(shared) == 1
    return (f"{note}. The base's accuracies are on {where}; {names}, on another cache, {'is' if one else 'are'} "
            f"compared on the test images both caches hold ({'its' if one else 'their'} warning"
            f"{'' if one else 's'} {'says' if one else 'say'} how many)")


def compare_many(comparisons: list[Comparison], warnings: Optional[list[RunWarning]] = None) -> ManyComparison:
    """The rows of several pairwise comparisons with one base run (each :func:`probe.compare.compare_reports` of a
    run against the same base, in the order given), with the runs' ``warnings`` (:func:`run_warnings`)."""
    if not comparisons:
        raise ValueError("compare_many needs at least one comparison")
    columns = {key: _cells(comparisons, key) for key in SUMMARY_METRICS}
    rows = [ManyRow(run=c.other, probe=(c.probes or {}).get("other"),
                    metrics={key: columns[key][i] for key in SUMMARY_METRICS},
                    time_ratio=c.cost.ratio if c.cost is not None else None,
                    time_comparable=c.cost.comparable if c.cost is not None else None, seed_pairing=c.seed_pairing)
            for i, c in enumerate(comparisons)]
    first = comparisons[0]
    # the base's own figures from a comparison on its whole test split: a run on another cache is compared on the
    # images both caches hold, and the first such pairing's base accuracies stood above rows of the whole split (a
    # new-user round: 72.7 % of 11 shared images where the base scored 74.4 % on its 300)
    own = next((c for c in comparisons if c.pairing not in SHARED_IMAGES), first)
    runs = _runs_text(len(comparisons))
    note = (f"{runs}, each against the base {first.base}: {_base_note(comparisons, own)}. Each delta in "
            f"points with {_interval_words(comparisons)}; 'gain' or 'loss': beyond noise, its images' sign-flip test "
            f"Holm-corrected over the {runs} (the intervals are not). The worst class is each run's "
            "own; where they are two classes no paired test applies. Every class and each pair's own tests: "
            "mr2probe compare RUN_A RUN_X. " + _time_note(comparisons))
    runs_of: dict[str, list[Optional[str]]] = {}
    for comparison in comparisons:
        for warning in comparison.warnings:
            runs_of.setdefault(warning, []).append(comparison.other)
    return ManyComparison(base=first.base, base_probe=(first.probes or {}).get("base"), title=metric_title(first),
                          base_scores={key: own.metrics[key].base for key in SUMMARY_METRICS if key in own.metrics},
                          base_ci={key: own.metrics[key].base_ci for key in SUMMARY_METRICS if key in own.metrics},
                          rows=rows, note=note, warnings=[ManyWarning(text=text, runs=runs)
                                                          for text, runs in runs_of.items()],
                          run_warnings=warnings or [], comparisons=comparisons)


def many_cell(cell: ManyCell, between: str = "\n") -> str:
    """A delta in points and, after ``between`` (a second line), its 95 % interval: ``-8.44 loss`` over
    ``[-14.1, -2.8]``, with ``gain`` or ``loss`` where it is beyond noise after Holm (:class:`ManyCell`)."""
    if cell.delta is None:
        return "–"
    text = signed_points(cell.delta, 2)
    if cell.delta_ci is None or None in cell.delta_ci:
        return text
    word = (" gain" if cell.delta > 0 else " loss") if cell.beyond_noise else ""
    lo, hi = cell.delta_ci
    return f"{text}{word}{between}[{signed_points(lo, 1)}, {signed_points(hi, 1)}]"


MANY_HEADER = ["run", *(key.replace("_", " ") for key in SUMMARY_METRICS), "time ×"]


def many_name(many: ManyComparison, run: Optional[str]) -> str:
    """A run as the views name it: its name and id where ``many.names`` has one (the service's), else its id."""
    return many.names.get(run or "", run or "")


def many_rows(many: ManyComparison, between: str = "\n") -> list[list[str]]:
    """The rows of the table (``MANY_HEADER``), each cell :func:`many_cell`."""
    return [[many_name(many, row.run), *(many_cell(row.metrics[key], between) for key in SUMMARY_METRICS),
             "–" if row.time_ratio is None else f"{row.time_ratio:.2f}{'*' if row.time_comparable is False else ''}"]
            for row in many.rows]


def _ci(interval: Optional[list]) -> str:
    """`` [90.0, 93.8]``: the base's own 95 % interval after its accuracy, nothing without one."""
    return "" if not interval or None in interval else f" {interval_text(interval)}"


def many_facts(many: ManyComparison) -> list[tuple[str, str]]:
    """The lines around the table, as (label, text): what was compared, each run's probe, the base's accuracies,
    each run's spread over retraining (:func:`probe.compare.retraining_sentence`, as two-run compare says it), then
    the pairwise comparisons' warnings (``ManyComparison.warnings``; the Markdown and HTML pages had none of
    them: "the probe was trained on these images" among them, which the terminal prints)."""
    first = many.comparisons[0]
    worst = f" ({worst_class_words(first)['base']})" if first.worst_classes else ""
    base = ", ".join(f"{key.replace('_', ' ')} {percent(value)} %" + _ci(many.base_ci.get(key))
                     + (worst if key == "worst_class" else "") for key, value in many.base_scores.items())
    probes = [f"base {many_name(many, many.base)}: {many.base_probe or '?'}"]
    return [("compared", many.note), ("probes", "; ".join(probes + [f"{many_name(many, row.run)}: {row.probe or '?'}"
                                                                     for row in many.rows])),
            (f"base {many.base}", base),
            *((f"over retraining ({many_name(many, c.other)})", text) for c in many.comparisons
              if (text := retraining_sentence(c)) is not None),
            *((f"warning ({', '.join(many_name(many, run) or '?' for run in w.runs)})", w.text) for w in many.warnings),
            *((f"warning ({'every run' if w.run is None else many_name(many, w.run)})", w.text)
              for w in many.run_warnings)]


def format_many(many: ManyComparison, *, width: int = COMPARE_WIDTH) -> str:
    """Terminal table of :func:`compare_many`: what was compared and the probes, then one row per run with its
    deltas against the base, then the base's own accuracies."""
    console = text_console(width)
    facts = many_facts(many)
    console.print(facts[0][1])
    console.print(f"probes: base {many_name(many, many.base)}: {many.base_probe or '?'}")
    for row in many.rows:  # one a line, under the base's
        console.print(f"        {many_name(many, row.run)}: {row.probe or '?'}")
    # in parts of the columns that fit, as the report's tables: folded into 110 columns, the table printed lines of
    # 110 on an 80-column terminal
    print_class_table(console, f"Δ points against {many.base} [95 % interval]; {many.title}",
                      [(col, "left" if col == "run" else "right") for col in MANY_HEADER], many_rows(many), width,
                      sections=True)
    for label, text in facts[2:]:  # the base's accuracies, the spreads over retraining, then the runs' warnings
        console.print(f"{label}: {text}")
    return console.export_text()
