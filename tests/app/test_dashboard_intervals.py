"""The dashboard shows each delta it compares with its uncertainty: the group chart's sublabels under a compared run
(run.js groupChart) gave a third's gain beyond noise as "+10.0 pt" alone, its interval only in the cards."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
_NODE = """
const fs = require("fs");
globalThis.window = {
  Words: { job_states: { active: [], open: [] }, metrics: [], groups: ["easy", "medium", "hard"] } };
globalThis.document = {};
for (const f of ["charts.js", "dash.js", "run.js"]) eval(fs.readFileSync(process.argv[1] + "/" + f, "utf8"));
window.Charts.bars = (opts) => opts;
globalThis.Charts = window.Charts;
const cmp = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(window.RunPage.panels.groupChart({ summary: {} }, cmp, { main: "m", other: "o" })
  .sublabels));
"""


def _metric(delta_ci, beyond):
    return {"base": 0.5, "other": 0.6, "delta": 0.1, "delta_ci": delta_ci, "beyond_noise": beyond}


def test_the_group_charts_deltas_beyond_noise_carry_their_interval():
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    cmp = {"metrics": {"easy": _metric([0.02, 0.2], True), "medium": _metric([-0.02, 0.2], False),
                       "hard": _metric(None, None)}}
    out = subprocess.run(["node", "-e", _NODE, str(STATIC)], input=json.dumps(cmp), capture_output=True, text=True,
                         check=True).stdout
    assert [label["text"] for label in json.loads(out)] == [
        "+10.0 pt [+2.0, +20.0]",  # beyond noise: its interval
        "+10.0 pt (noise)",        # within noise: said so
        "+10.0 pt"]                # a comparison without predictions has no interval to give


_NODE_NOTE = """
const fs = require("fs");
globalThis.window = {
  Words: { job_states: { active: [], open: [] }, metrics: [], groups: ["easy", "medium", "hard"] } };
globalThis.document = { createElement: () => ({ kids: [], append(c) { this.kids.push(c); }, setAttribute() {} }) };
globalThis.Node = class {};
for (const f of ["charts.js", "dash.js", "run.js"]) eval(fs.readFileSync(process.argv[1] + "/" + f, "utf8"));
const report = (source) => ({ seeds: { values: [0, 1] }, selection: { cv: { k: 5 } }, grouping: { source },
                               per_class: [] });
// the note of a run that ranked its groups itself (the table's val column), and of one a reference run's ranked
const note = (source) => window.RunPage.panels.perClassNote(report(source), null, null, null).kids.join("");
process.stdout.write(JSON.stringify([note("self"), note("reference")]));
"""


def test_the_per_class_note_says_val_only_where_the_table_has_the_column():
    """A run whose groups a reference run ranked (a disparity run of the pipeline) has no val column, yet its
    per-class note said "Val: the validation accuracy the groups were ranked by ..." and "the val column are out of
    fold" (a review): the note names the column only where the table shows it."""
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    out = subprocess.run(["node", "-e", _NODE_NOTE, str(STATIC)], input="", capture_output=True, text=True,
                         check=True).stdout
    with_val, without = json.loads(out)
    assert "Val: the validation accuracy the groups were ranked by, with its 95 % Wilson interval" in with_val
    assert "selection's scores and the val column are out of fold" in with_val
    assert "Val:" not in without and "val column" not in without
    assert "selection's scores are out of fold on train + val" in without
