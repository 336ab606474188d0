"""Class names with white space at an end ('cat ' beside 'cat') are shown quoted on the dashboard's pages by the rule
the terminal's texts follow (probe.names.shown_name): HTML showed the space as nothing."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from probe.names import listed_name, shown_name

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
NAMES = ["cat ", " cat", "cat", "big cat", "\tcat", "Ünïcode  ", "a,b", " x, y"]
_NODE = """
const fs = require("fs");
globalThis.window = { Words: { job_states: { active: [], open: [] }, metrics: [] } };
globalThis.document = {};
eval(fs.readFileSync(process.argv[1], "utf8"));
const names = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify([names.map(window.Dash.shownName), names.map(window.Dash.listedName)]));
"""


def test_the_dashboard_shows_class_names_by_the_terminals_rule():
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    out = subprocess.run(["node", "-e", _NODE, str(STATIC / "dash.js")], input=json.dumps(NAMES),
                         capture_output=True, text=True, check=True).stdout
    shown, listed = json.loads(out)
    assert shown == [shown_name(name) for name in NAMES] == [
        '"cat "', '" cat"', "cat", "big cat", '"\tcat"', '"Ünïcode  "', "a,b", '" x, y"']
    # in a list joined by ", ", a name holding a comma quoted too ("left out: a,b, cat" read as three classes)
    assert listed == [listed_name(name) for name in NAMES] == [*shown[:6], '"a,b"', '" x, y"']


def test_the_run_page_and_charts_show_names_through_it():
    """The charts' labels (every bar, heat map and scatter label) and the run page's names outside its per-class
    table go through Dash.shownName."""
    assert "window.Dash.shownName(label)" in (STATIC / "charts.js").read_text()
    run = (STATIC / "run.js").read_text()
    assert run.count("Dash.shownName(") >= 5 and 'h("bdi", {}, p.true)' not in run


def test_the_run_page_lists_the_classes_left_out_through_listed_name():
    """The run page's 'left out: a,b, cat' (classes 'a,b' and 'cat') and the compare picker's 'left out a,b, cat'
    read as three classes: each name through Dash.listedName."""
    run = (STATIC / "run.js").read_text()
    assert run.count("drop_classes.map(Dash.listedName).join") == 1 and run.count("left_out.map(Dash.listedName)") == 1
    assert "drop_classes.join(" not in run and 'left_out.join(", ")' not in run


def test_the_run_page_lists_each_class_s_confusions_through_listed_name():
    """The per-class table's confusions ("n01 tench, Tinca tinca 12.0 %, dog 3.0 %") joined by ", " as the CSV's."""
    assert (STATIC / "run.js").read_text().count("Dash.listedName(t.name)") == 2


_NODE_ISOLATED = """
const fs = require("fs");
globalThis.window = { Words: { job_states: { active: [], open: [] }, metrics: [] } };
globalThis.Node = class {};
globalThis.document = { createElement: (tag) => Object.assign(new Node(), { tag, kids: [],
  append(c) { this.kids.push(c); }, setAttribute() {}, addEventListener() {} }) };
eval(fs.readFileSync(process.argv[1], "utf8"));
const texts = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => window.Dash.isolated(t)
  .map((p) => (p instanceof Node ? { [p.tag]: p.kids.join("") } : p)))));
"""


def test_a_right_to_left_name_joined_by_underscores_or_hyphens_is_one_isolate():
    """Dash.isolated put "طائرة_ورقية" in two <bdi>, one a word: laid out left to right, the name read its words in
    reverse order (a review). The joiners of a name's words stay inside its isolate; quotes and commas do not."""
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    texts = ["few images: 'طائرة_ورقية' 6", "x طائرة-ورقية.كبيرة 2", "'שלום', 'עולם'", ""]
    out = subprocess.run(["node", "-e", _NODE_ISOLATED, str(STATIC / "dash.js")], input=json.dumps(texts),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [["few images: '", {"bdi": "طائرة_ورقية"}, "' 6"],
                               ["x ", {"bdi": "طائرة-ورقية.كبيرة"}, " 2"],
                               ["'", {"bdi": "שלום"}, "', '", {"bdi": "עולם"}, "'"], []]


_NODE_EVERY_CHARACTER = """
const fs = require("fs");
globalThis.window = { Words: { job_states: { active: [], open: [] }, metrics: [] } };
globalThis.document = {};
eval(fs.readFileSync(process.argv[1], "utf8"));
const quoted = [];
for (let c = 0; c < 0x110000; c++) {
  if (c >= 0xd800 && c < 0xe000) continue;  // lone surrogates: no Python str of JSON holds them either
  const s = String.fromCodePoint(c);
  if (window.Dash.shownName("a" + s) !== "a" + s || window.Dash.shownName(s + "a") !== s + "a") quoted.push(c);
}
process.stdout.write(JSON.stringify(quoted));
"""


def test_the_dashboard_s_white_space_at_an_end_is_python_s_str_strip():
    """Dash.shownName trimmed with JavaScript's String.prototype.trim, whose white space is not Python's str.strip
    (probe.names.shown_name, the names of every text the server writes): U+FEFF quoted on the page only, U+0085 and
    U+001C-U+001F in the terminal only. Every code point, quoted at either end exactly where Python's would be."""
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    out = subprocess.run(["node", "-e", _NODE_EVERY_CHARACTER, str(STATIC / "dash.js")],
                         capture_output=True, text=True, check=True).stdout
    python = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000 and shown_name("a" + chr(c)) != "a" + chr(c)]
    assert json.loads(out) == python
    for c in "\u00a0\u2003\u3000":
        assert shown_name(f"cat{c}") == f'"cat{c}"'
    for c in "\u200b\ufeff":
        assert shown_name(f"cat{c}") == f"cat{c}"
