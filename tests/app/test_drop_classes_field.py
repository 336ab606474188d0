"""The launch form's "Leave out classes" field reads class names separated by commas as a CSV row does: a class
named 'a,b' (a legal folder name or label) was sent as 'a' and 'b', refused, and could not be left out from the
dashboard (an odd-data-sets round)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
_NODE = """
const fs = require("fs");
globalThis.window = { Words: { job_states: { active: [], open: [] }, metrics: [] } };
globalThis.document = {};
eval(fs.readFileSync(process.argv[1], "utf8"));
const { texts, names } = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify({ read: texts.map(window.Dash.classNames),
                                      written: names.map((n) => window.Dash.classNames(window.Dash.classNamesText(n))),
                                      text: window.Dash.classNamesText(names[0]) }));
"""
NAMES = [['a,b', 'q"uote\'s', " cat", "dog ", "café", "01"], ['"', ",", "plain"]]


def test_the_field_reads_quoted_names_with_commas_and_writes_names_back_readably():
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    texts = [' cat ,, ship ', '"a,b", cat', ' "x, ""y""" ,z', "a,b", ""]
    out = subprocess.run(["node", "-e", _NODE, str(STATIC / "dash.js")], input=json.dumps({"texts": texts,
                         "names": NAMES}), capture_output=True, text=True, check=True).stdout
    said = json.loads(out)
    assert said["read"] == [[" cat ", " ship "], ["a,b", " cat"], ['x, "y"', "z"], ["a", "b"], []]
    assert said["written"] == NAMES  # what a job asked for, put back in the form (Launch's "again"), reads as sent
    assert said["text"] == '"a,b","q""uote\'s"," cat","dog ",café,01'


def test_the_launch_form_reads_and_fills_the_field_through_them():
    launch = (STATIC / "launch.js").read_text()
    assert 'Dash.classNames(document.getElementById("drop-classes").value)' in launch
    assert "Dash.classNamesText(first.drop_classes || [])" in launch and '.value.split(",")' not in launch


_ROUND_TRIP = """
const fs = require("fs");
globalThis.window = { Words: { job_states: { active: [], open: [] }, metrics: [] } };
globalThis.document = {};
eval(fs.readFileSync(process.argv[1], "utf8"));
const lists = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(lists.map((n) => window.Dash.classNames(window.Dash.classNamesText(n)))));
"""
PIECES = ["a", ",", '"', " ", "\t", "é", "e\u0301", '""', ", ", "北京", "'", "\u200f"]


def test_every_list_of_names_written_to_the_field_reads_back_as_it_was():
    """classNamesText then classNames gives back every name but the blank ones (no class is blank: registration
    refuses them): each of one to three pieces (quotes, commas, spaces at the ends, unicode), in lists of three."""
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    import itertools

    names = ["".join(p) for n in (1, 2, 3) for p in itertools.product(PIECES, repeat=n)]
    lists = [[names[i], names[(i * 7 + 1) % len(names)], names[(i * 13 + 5) % len(names)]] for i in range(len(names))]
    lists += [[], [""], ["", "a", ""]]
    out = subprocess.run(["node", "-e", _ROUND_TRIP, str(STATIC / "dash.js")], input=json.dumps(lists),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [[n for n in names if n.strip()] for names in lists]
