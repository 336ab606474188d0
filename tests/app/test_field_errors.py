"""Every request field refused for its type or bounds is named with the value received and what it accepts, in one
line (app.field_errors): the published schema is walked, so a new bounded field without such a message fails here.
Pydantic's own words ("Input should be greater than or equal to 1", "Input should be a finite number") named
neither the value nor, for a nested field, the field (a validation round)."""
import copy
import json
import math
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app.main import create_app

from app_testutils import make_settings

_APP = create_app(make_settings(Path(tempfile.mkdtemp(prefix="field-errors-"))), start_worker=False)
_SPEC = _APP.openapi()
_PYDANTIC_WORDS = ("Input should", "String should", "List should", "Field required", "Extra inputs")


def _resolve(schema):
    while "$ref" in schema:
        schema = _SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    return _resolve(branches[0]) if len(branches) == 1 else schema


def _sample(schema):
    """A valid value of ``schema``: what a body holds beside the field under test."""
    schema = _resolve(schema)
    if "const" in schema or "enum" in schema:
        return schema.get("const", (schema.get("enum") or [None])[0])
    kind = schema.get("type")
    if kind == "object":
        return {k: _sample(v) for k, v in schema.get("properties", {}).items() if k in schema.get("required", [])}
    return {"array": lambda: [_sample(schema["items"])], "string": lambda: "x", "boolean": lambda: False,
            "integer": lambda: schema.get("minimum", 1), "number": lambda: schema.get("minimum", 0.5)}[kind]()


def _bad_values(schema, where="body"):
    """Values ``schema`` refuses: out of range, not finite (NaN/Infinity literals and strings), of another type, too
    long, empty (a parameter's text: no other type)."""
    schema = _resolve(schema)
    if where != "body" and schema.get("type") in ("string", "array"):
        text = schema if schema.get("type") == "string" else {}
        return [v for v in _bad_values(schema) if v != 5 and v != "notalist"
                and (v != "" or text.get("minLength")) and (v != "bad value!\x00" or "pattern" in text)]
    kind = schema.get("type")
    if kind in ("integer", "number"):
        out = [schema[k] + d for k, d in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1),
                                          ("exclusiveMaximum", 0)) if k in schema]
        return out + [math.nan, math.inf, -math.inf, "NaN", "Infinity", "abc", True] + ([1.5] * (kind == "integer"))
    if kind == "string" or "enum" in schema:
        out = ([""] if schema.get("minLength") else []) + (["y" * (schema["maxLength"] + 1)] if "maxLength" in schema
                                                          else [])
        return out + (["bad value!\x00"] if "pattern" in schema or "enum" in schema else []) + [5]
    if kind == "boolean":
        return ["maybe", 2]
    if kind == "array":
        too_many = [[_sample(schema["items"])] * (schema["maxItems"] + 1)] if "maxItems" in schema else []
        return too_many + ["notalist"]
    return []


def _fields(schema, path=()):
    schema = _resolve(schema)
    if path and "const" not in schema:
        yield path, schema
    if schema.get("type") == "object":
        for name, sub in schema.get("properties", {}).items():
            yield from _fields(sub, path + (name,))
    elif schema.get("type") == "array" and path:
        yield from _fields(schema["items"], path + (0,))


def _cases():
    for url, operations in _SPEC["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            root = _resolve(body["schema"]) if body else {}
            for param in operation.get("parameters", []):
                if _bad_values(param["schema"], param["in"]):  # beside a valid body, where the route takes one
                    yield pytest.param(method, url, param["in"], (param["name"],), _sample(root) if body else None,
                                       id=f"{method} {url} {param['in']} {param['name']}")
            for variant in root.get("oneOf", [root] if body else []):
                base = _sample(variant)
                for path, schema in _fields(variant):
                    if _bad_values(schema):
                        yield pytest.param(method, url, "body", path, base,
                                           id=f"{method} {url} {base.get('kind', 'body')} {path}")


def _set(body, path, value):
    for i, part in enumerate(path[:-1]):
        if isinstance(body, dict) and part not in body:
            body[part] = [{}] if isinstance(path[i + 1], int) else {}
        body = body[part]
    body[path[-1]] = value


def _request(client, method, url, where, path, base, value):
    target = url
    if where == "path":
        target = target.replace("{%s}" % path[0], quote(str(value), safe=""))
    for name in ("dataset_id", "cache_id", "job_id", "run_id"):
        target = target.replace("{%s}" % name, "id_1")
    params = {path[0]: _text(value)} if where == "query" else {}
    body = copy.deepcopy(base)
    if where == "body":
        _set(body, path, value)
    return client.request(method.upper(), target, params=params,
                          content=None if body is None else json.dumps(body, allow_nan=True),
                          headers={"Content-Type": "application/json"} if body is not None else {})


def _text(value):
    """A value as a query parameter carries it: text (a list: the parameter repeated)."""
    return [_text(v) for v in value] if isinstance(value, list) else value if isinstance(value, str) \
        else json.dumps(value)


def _shown(value, schema, where) -> str:
    """How the message gives ``value``: a string past the field's length by its length, a list by its count; a
    parameter's text as it came where it reads as no number."""
    if where != "body" and not isinstance(value, list):
        value = _text(value)
        return f"got {value!r}" if "maxLength" not in schema or len(value) <= schema["maxLength"] else \
            f"got {len(value)}."
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"got {len(value)}."
    if isinstance(value, list) and len(value) > schema.get("maxItems", len(value)):
        return f"got {len(value)} values."
    return f"got {value!r}" if isinstance(value, (str, bool)) else f"got {value}"


@pytest.fixture(scope="module")
def client():
    with TestClient(_APP) as client:
        yield client


@pytest.mark.parametrize("method, url, where, path, base", list(_cases()))
def test_a_refused_field_is_named_with_its_value_and_bound(client, method, url, where, path, base):
    """Each bad value of the field: 422, and its message names the field's path, the value and the bound."""
    named = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    # an empty id is another route's URL
    for value in [v for v in _bad_values(_schema_of(url, method, where, path), where) if where != "path" or v != ""]:
        resp = _request(client, method, url, where, path, base, value)
        assert resp.status_code == 422, (value, resp.text)
        errors = [e for e in resp.json()["detail"] if _under(e["loc"], where, path)]
        assert errors, (value, resp.text)
        for error in errors:
            msg = error["msg"]
            assert "\n" not in msg and not any(words in msg for words in _PYDANTIC_WORDS), (value, msg)
            if error["type"] == "value_error":  # the model's own check (ProbeConfig): it words its field itself
                assert path[-1 if isinstance(path[-1], str) else -2] in msg, (value, msg)
                continue
            field = _schema_of(url, method, where, path)
            assert msg.startswith(f"{named} must be "), (value, msg)
            assert where == "body" or "None" not in msg, msg  # a parameter is left out, never sent as null
            shown = _shown(value, field, where)
            number = where != "body" and field.get("type") in ("integer", "number") and _number(value)
            assert shown in msg or (number or where != "body") and _as_number(value) in msg, (value, msg)
            if "finite number" in msg:  # NaN, ±inf: what they are not (the CLI's words)
                continue
            bounds = [field[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "maxLength",
                                         "maxItems") if k in field]
            for bound in (field.get("enum") if "characters, got" not in msg else None) or bounds:
                assert (str(int(bound)) if isinstance(bound, float) and bound.is_integer() else str(bound)) in msg, \
                    (bound, msg)


def _under(loc, where, path) -> bool:
    """Whether an error's ``loc`` is the field ``path``, one under it, or the object holding it (a model's own check:
    ProbeConfig's grids and preset)."""
    parts = [p for p in loc[1:] if p not in ("extract", "probe", "pipeline", "label_issues")]
    n = min(len(parts), len(path))
    return loc[0] == where and parts[:n] == list(path[:n]) and (len(parts) >= len(path) or where == "body")


def _as_number(value) -> str:
    """How a message gives a parameter's text that reads as a number ("NaN": nan, "Infinity": inf)."""
    try:
        return f"got {float(value)}" if not isinstance(value, (int, bool)) else f"got {value}"
    except (TypeError, ValueError):
        return f"got {value}"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _schema_of(url, method, where, path):
    operation = _SPEC["paths"][url][method]
    if where != "body":
        return _resolve(next(p for p in operation["parameters"] if p["name"] == path[0])["schema"])
    root = _resolve(operation["requestBody"]["content"]["application/json"]["schema"])
    for variant in root.get("oneOf", [root]):
        found = dict(_fields(variant)).get(path)
        if found is not None:
            return found
    raise KeyError(path)


def test_the_api_and_the_cli_say_a_bad_extraction_option_in_the_same_words(client, capsys):
    """options.val_fraction in a job and --val-fraction on the command line: the same words, from one bound."""
    from app.cli import main

    resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": "ds_1", "options": {"val_fraction": 1.5}})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["msg"] == "options.val_fraction must be in (0, 1), got 1.5."
    assert main(["extract", "--data", "/nonexistent", "--out", "/nonexistent/x.h5", "--val-fraction", "1.5"]) == 2
    assert "--val-fraction must be in (0, 1), got 1.5." in capsys.readouterr().err


@pytest.mark.parametrize("method, url, body, loc, msg", [
    ("post", "/api/jobs", {"kind": "extract", "dataset_id": "d", "options": {"valfraction": 0.2}},
     ["body", "extract", "options", "valfraction"],
     "'valfraction' is not a field of options; the fields are: batch_size, val_fraction, seed, max_per_class."),
    ("post", "/api/jobs", {"kind": "label_issues"}, ["body", "label_issues", "run_id"],
     "run_id is required: a string of 1 to 64 characters matching ^[A-Za-z0-9_.-]+$."),
    ("post", "/api/jobs", [1], ["body"], "the body must be an object, got [1]."),
    ("patch", "/api/runs/run_1", {"name": "a\x00"}, ["body", "name"],
     "name: character U+0000 at position 2 is not printable (control, text-direction, separator and zero-width "
     "characters are refused)"),
])
def test_unknown_missing_and_validated_fields_are_named(client, method, url, body, loc, msg):
    """An unknown field says the fields there are, a missing one what it takes, a body of another type what it must
    be (once, though each job kind's body is an object), and a field's own check its field."""
    resp = client.request(method.upper(), url, json=body)
    assert resp.status_code == 422 and [(e["loc"], e["msg"]) for e in resp.json()["detail"]] == [(loc, msg)]


@pytest.mark.parametrize("name, said", [
    ("x" * 201, "name must be at most 200 characters, got 201."),
    ("", "name must be a string of 1 to 200 characters, got ''."),
    ("a\x01", "name: character U+0001 at position 2 is not printable"),
])
def test_the_upload_forms_name_is_refused_in_the_json_fields_words(client, name, said):
    """The multipart upload's ``name`` is the JSON ``name`` (app.schemas.Name): its length was pydantic's "name:
    String should have at most 200 characters", naming no value."""
    from app_testutils import tiny_zip_bytes

    resp = client.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1), "application/zip")},
                       data={"name": name})
    assert resp.status_code == 422 and resp.json()["detail"].startswith(said), resp.text
    assert client.get("/api/datasets").json() == []


def test_an_error_the_rewording_cannot_read_keeps_pydantics_words():
    """The 422 handler rewords pydantic's errors by the published schema: an error whose loc or input it cannot
    read (a part that is no name or index, a schema without its parts) keeps pydantic's message instead of failing
    the handler into a 500."""
    from app.field_errors import operation_of, reword_errors

    spec = create_app(make_settings(Path(tempfile.mkdtemp()) / "state")).openapi()
    operation = operation_of(spec, "/api/jobs", "POST")
    odd = [{"type": "int_type", "loc": ("body", ["kind"]), "msg": "Input should be a valid integer", "input": 1},
           {"type": "int_type", "loc": ("query", "limit"), "msg": "kept", "input": "x"}]
    assert [e["msg"] for e in reword_errors(odd, operation, {"paths": {}})] == ["Input should be a valid integer",
                                                                                 "kept"]


@pytest.mark.parametrize("body, msg", [
    ({"kind": "pipeline", "dataset_id": "d", "probes": [{}, {"epochs": 0}]},
     "probes[1].epochs must be an integer in [1, 10000], got 0."),
    ({"kind": "pipeline", "dataset_id": "d", "probes": [{"cbar_grid": [1.0, -1.0]}]},
     "probes[0].cbar_grid value (cbar) must be in (0, 100], got -1.0."),
    ({"kind": "probe", "cache_id": "c", "config": {"loss": "xx"}}, "config.loss: Unknown loss 'xx'; available: "),
    ({"kind": "probe", "cache_id": "c", "config": {"adapter_rank": 4}},
     "config.adapter_rank=4 applies to adapter 'lowrank' or 'mlp', got adapter=None."),
    ({"kind": "pipeline", "dataset_id": "d", "probes": [{"head_options": {"bias": 2}}]},
     "probes[0]: head 'linear' option bias must be true or false, got 2."),
])
def test_probe_configs_own_checks_name_the_requests_path(client, body, msg):
    """ProbeConfig words its checks with the bare field name (``epochs``), as the library and the CLI say them; a
    request's 422 names the path the request used (``probes[1].epochs``): which of a pipeline's probes was refused
    was not said."""
    resp = client.post("/api/jobs", json=body)
    assert resp.status_code == 422
    assert [e["msg"][:len(msg)] for e in resp.json()["detail"]] == [msg], resp.text


@pytest.mark.parametrize("kind, said", [
    ("probee", "got 'probee'."), (5, "got 5."), (None, "got None."), ("", "got ''.")])
def test_a_jobs_kind_of_no_job_is_named_with_the_kinds(client, kind, said):
    """A mistyped job kind (or a number, or null) got pydantic's "Input tag 'probee' found using 'kind' does not
    match any of the expected tags": one line naming the value and the kinds, read from the one declaration of
    them (the job bodies' discriminator, as the service runs them: app.steps.JOB_KINDS)."""
    from app.steps import JOB_KINDS

    resp = client.post("/api/jobs", json={"kind": kind, "dataset_id": "d"})
    assert resp.status_code == 422
    assert [e["msg"] for e in resp.json()["detail"]] == [f"kind must be one of {', '.join(JOB_KINDS)}, {said}"]
    resp = client.post("/api/jobs", json={"dataset_id": "d"})
    assert [e["msg"] for e in resp.json()["detail"]] == [f"kind is required: one of {', '.join(JOB_KINDS)}."]


@pytest.mark.parametrize("body, msg", [
    ('{"kind": "extract", "dataset_id": "d", "options": {"val_fraction": 1e400}}',
     "options.val_fraction must be in (0, 1), got inf, out of range."),
    ('{"kind": "extract", "dataset_id": "d", "options": {"val_fraction": 1%s}}' % ("0" * 400),
     "options.val_fraction must be in (0, 1), got 1.00e+400, out of range."),
    ('{"kind": "probe", "cache_id": "c", "config": {"cbar": 1e400}}', "config.cbar must be in (0, 100], got inf, "
     "out of range."),
    ('{"kind": "probe", "cache_id": "c", "config": {"epochs": 1e400}}', "config.epochs must be an integer in "
     "[1, 10000] or None, got inf, out of range."),
    ('{"kind": "probe", "cache_id": "c", "config": {"epochs": 1%s}}' % ("0" * 400), "config.epochs must be an "
     "integer in [1, 10000], got 1.00e+400, out of range."),
    ('{"kind": "probe", "cache_id": "c", "config": {"lr_grid": [-1%s]}}' % ("0" * 400),
     "config.lr_grid[0] must be in (0, 100], got -1.00e+400, out of range."),
    ('{"kind": "extract", "dataset_id": "d", "options": {"seed": 1%s}}' % ("0" * 400),
     "options.seed must be an integer in [0, 4294967295], got 1.00e+400, out of range."),
])
def test_a_number_beyond_a_float_is_out_of_the_fields_range(client, body, msg):
    """A JSON number too large for a float (1e400 reads as inf; an integer of 401 digits is none) said "must be a
    finite number, got 10000000000....", giving neither the field's bounds nor the number's size."""
    resp = client.post("/api/jobs", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and [e["msg"] for e in resp.json()["detail"]] == [msg], resp.text
