"""The dashboard's Dash.fieldMessage: an API field error as shown under its field, without the request path the
message starts with (app.field_errors), the field's own name kept."""
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
const errors = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(errors.map(window.Dash.fieldMessage)));
"""
SHOWN = [  # (loc, the API's message, what the field's box shows)
    (["body", "pipeline", "probes", 0, "epochs"], "probes[0].epochs must be an integer in [1, 10000], got 0.",
     "epochs must be an integer in [1, 10000], got 0."),
    # an item of a list field: its index was shown with the whole path, "probes[0].seeds[1] must be ..."
    (["body", "pipeline", "probes", 0, "seeds", 1], "probes[0].seeds[1] must be an integer in [0, 9], got 'x'.",
     "seeds[1] must be an integer in [0, 9], got 'x'."),
    (["body", "pipeline", "probes", 0, "lam_grid", 1], "probes[0].lam_grid[1] must be in [0, 100], got 'a'.",
     "lam_grid[1] must be in [0, 100], got 'a'."),
    (["body", "pipeline", "probes", 0], "probes[0].adapter_rank=4 applies to adapter 'lowrank' or 'mlp'.",
     "adapter_rank=4 applies to adapter 'lowrank' or 'mlp'."),
    (["body", "pipeline", "probes", 0, "loss"], "probes[0].loss: Unknown loss 'nope'; available: ce.",
     "Unknown loss 'nope'; available: ce."),
    (["body", "extract", "options", "val_fraction"], "options.val_fraction must be in (0, 1), got 2.",
     "val_fraction must be in (0, 1), got 2."),
    (["body", "pipeline", "cache_id"], "cache_id must be at most 64 characters.",
     "cache_id must be at most 64 characters."),
]


def test_a_field_error_under_its_field_drops_the_request_path_and_keeps_the_fields_name():
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    errors = [{"loc": loc, "msg": msg} for loc, msg, _ in SHOWN]
    out = subprocess.run(["node", "-e", _NODE, str(STATIC / "dash.js")], input=json.dumps(errors),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [shown for _, _, shown in SHOWN]


_FORMAT = """
const fs = require("fs");
globalThis.window = { Words: { job_states: { active: [], open: [] }, metrics: [] } };
globalThis.document = {};
eval(fs.readFileSync(process.argv[1], "utf8"));
process.stdout.write(JSON.stringify(window.Dash.formatDetail(JSON.parse(fs.readFileSync(0, "utf8")))));
"""


def test_every_job_kind_is_a_tag_the_messages_drop_from_an_errors_path():
    """dash.js kept two lists of the job kinds pydantic puts in a 422's loc, and formatDetail's lacked label_issues:
    a label_issues job's refusal read "label_issues.folds: folds must be ...". One JOB_KIND, of app.steps.JOB_KINDS."""
    import re

    from app.steps import JOB_KINDS

    source = (STATIC / "dash.js").read_text(encoding="utf-8")
    assert sorted(re.search(r"const JOB_KIND = /\^\(([\w|]+)\)\$/;", source).group(1).split("|")) == sorted(JOB_KINDS)
    if shutil.which("node") is None:
        pytest.skip("node is absent")
    detail = [{"loc": ["body", "label_issues", "folds"], "msg": "folds must be an integer in [2, 20], got 1."}]
    out = subprocess.run(["node", "-e", _FORMAT, str(STATIC / "dash.js")], input=json.dumps(detail),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == "folds must be an integer in [2, 20], got 1."
