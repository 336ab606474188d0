"""The dashboard's thumbnails (Dash.authImage) of a file changed since its extraction: the API's 409 reason shown in
the tile in place of the image (the file there now is not the image the run scored), in node with a small DOM."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
_NODE = r"""
const fs = require("fs");
class Node {
  constructor(tag) { this.tagName = tag; this.attrs = {}; this.children = []; this.parentNode = null;
    this.className = ""; const node = this;
    this.classList = { add(c) { node.className = `${node.className} ${c}`.trim(); } }; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  addEventListener() {}
  append(...cs) { for (const c of cs) { if (c instanceof Node) c.parentNode = this; this.children.push(c); } }
  replaceWith(other) { const at = this.parentNode.children.indexOf(this); other.parentNode = this.parentNode;
    this.parentNode.children[at] = other; this.parentNode = null; }
}
globalThis.Node = Node;
globalThis.window = { Words: { job_states: { active: [], open: [] }, metrics: [] } };
globalThis.document = { createElement: (tag) => new Node(tag), getElementById: () => null };
globalThis.sessionStorage = { getItem: () => null };
const [status, detail] = JSON.parse(fs.readFileSync(0, "utf8"));
globalThis.fetch = async () => ({ status, ok: false, statusText: "", json: async () => ({ detail }) });
eval(fs.readFileSync(process.argv[1], "utf8"));
const tile = new Node("button");
tile.append(window.Dash.authImage("/api/datasets/d/thumbnail?source=a.png&digest=00", "cat predicted as dog"));
setTimeout(() => {
  const shown = tile.children[0];
  process.stdout.write(JSON.stringify({ tag: shown.tagName, cls: shown.className, attrs: shown.attrs,
    title: shown.title, text: shown.children.join("") }));
}, 50);
"""
CHANGED = "the image 'a.png' changed since its features were extracted: extract the data set again"


def _tile(status: int, detail: str) -> dict:
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    out = subprocess.run(["node", "-e", _NODE, str(STATIC / "dash.js")], input=json.dumps([status, detail]),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_a_changed_image_is_a_placeholder_with_the_reason():
    shown = _tile(409, CHANGED)
    assert shown["tag"] == "span" and shown["cls"] == "thumb changed" and shown["text"] == CHANGED
    assert shown["attrs"]["role"] == "img" and shown["attrs"]["aria-label"] == f"cat predicted as dog: {CHANGED}"


@pytest.mark.parametrize("status", [404, 410])
def test_another_error_stays_a_broken_image(status):
    """Only the thumbnail route's 409 means a changed file; no route answers 410 (a review: it was read as one)."""
    shown = _tile(status, "sample 'a.png' not found")
    assert shown["tag"] == "img" and "broken" in shown["cls"] and shown["title"].endswith("not found")
