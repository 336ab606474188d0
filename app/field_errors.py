"""Pydantic's refusals of a request's fields in the project's words: each names the field (its JSON path, e.g.
``options.val_fraction`` or ``probes[0].epochs``; a parameter by its name), the value received and what the field
accepts, in one line (``options.val_fraction must be in (0, 1), got 1.5.``). What a field accepts is read from the
published schema (``app.openapi()``), whose bounds are the pydantic Field constraints, and worded by
:func:`probe.constraints.check`, as the CLI's flags (``--val-fraction must be in (0, 1), got 1.5.``) and
``probe.ProbeConfig``'s own checks are: one declaration of each bound for the schema, the check and the message.
Pydantic said "Input should be greater than or equal to 1" or "Input should be a finite number", naming neither the
value nor, for a nested field, the field (a validation round)."""
from __future__ import annotations

import re
from typing import Any

from probe.constraints import Boolean, Instance, Interval, Items, Options, Text, check

__all__ = ["REWORDED", "reword_errors", "constraints_of", "operation_of", "refusal", "text_refusal"]

# The errors of a field's type or bounds, reworded; others (a query parameter refused by app.deps) keep their
# message, but for a check's own ValueError, named by its path (_named).
REWORDED = frozenset({
    "int_type", "int_parsing", "int_from_float", "int_parsing_size", "float_type", "float_parsing", "finite_number",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "string_type",
    "string_too_short", "string_too_long", "string_pattern_mismatch", "string_unicode", "bool_type", "bool_parsing",
    "list_type", "too_short", "too_long", "literal_error", "enum", "dict_type", "model_type",
    "model_attributes_type", "missing", "extra_forbidden"})
_PARAMETERS = ("query", "path", "header", "cookie")
_NULL = {"type": "null"}


def operation_of(spec: dict[str, Any], path: str, method: str) -> dict[str, Any] | None:
    """The operation of ``spec`` (an OpenAPI document) that serves ``method`` (HEAD as GET) on the URL ``path``: of
    the templates that match it, the one with the most literal text ("/api/reports/{run_id}.csv" before
    "/api/reports/{run_id}")."""
    matches = []
    for template, operations in spec.get("paths", {}).items():
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{[^}]*\})", template))
        operation = operations.get(method.lower()) or (operations.get("get") if method == "HEAD" else None)
        if operation is not None and re.fullmatch(pattern, path):
            matches.append((len(re.sub(r"\{[^}]*\}", "", template)), operation))
    return max(matches, key=lambda match: match[0])[1] if matches else None


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def constraints_of(schema: dict[str, Any], spec: dict[str, Any]) -> list:
    """What ``schema`` (a published property or parameter) accepts, as ``probe.constraints`` kinds."""
    schema = _resolve(schema, spec)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:  # each kind once: the job kinds' bodies are each "an object"
        return list(dict.fromkeys(c for branch in branches for c in
                                  ([None] if _resolve(branch, spec) == _NULL else constraints_of(branch, spec))))
    if "enum" in schema or "const" in schema:
        return [Options(tuple(str(v) for v in schema.get("enum", [schema.get("const")])))]
    kind = schema.get("type")
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        closed = {(True, True): "both", (True, False): "left", (False, True): "right", (False, False): "neither"}[
            ("exclusiveMinimum" not in schema, "exclusiveMaximum" not in schema)]
        return [Interval(int if kind == "integer" else float, low, high, closed)]
    if kind == "string":
        return [Text(schema.get("minLength", 0), schema.get("maxLength"), schema.get("pattern"))]
    simple = {"boolean": Boolean(), "array": Items(schema.get("minItems", 0), schema.get("maxItems")),
              "object": Instance((dict,), "an object"), "null": None}
    return [simple[kind]] if kind in simple else []


def _step(schema: dict[str, Any], part: Any, spec: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The schema under ``part`` of an error's ``loc`` and how the path names it ("" for a part of pydantic's own:
    a union's tag, a validator's name)."""
    schema = _resolve(schema, spec)
    mapping = schema.get("discriminator", {}).get("mapping", {})
    if part in mapping:  # the request's kind: no part of the field's path
        return _resolve({"$ref": mapping[part]}, spec), ""
    branches = [b for b in schema.get("anyOf", []) if _resolve(b, spec) != _NULL]
    if len(branches) == 1:  # an optional field: its value's schema
        return _step(branches[0], part, spec)
    if isinstance(part, int) and "items" in schema:
        return schema["items"], f"[{part}]"
    if isinstance(part, str) and part in schema.get("properties", {}):
        return schema["properties"][part], f".{part}"
    if isinstance(part, str) and isinstance(schema.get("additionalProperties"), dict):
        return schema["additionalProperties"], f".{part}"
    return schema, ""


def _locate(operation: dict[str, Any], loc: tuple, spec: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The published schema of the field an error's ``loc`` names, and its path; None where there is none."""
    if not loc:
        return None
    if loc[0] in _PARAMETERS:
        params = [p for p in operation.get("parameters", []) if len(loc) > 1 and (p["in"], p["name"]) == loc[:2]]
        if not params:
            return None
        schema, path, rest = params[0]["schema"], str(loc[1]), loc[2:]
    elif loc[0] == "body":
        content = operation.get("requestBody", {}).get("content", {})
        body = content.get("application/json") or next(iter(content.values()), None)
        if body is None:
            return None
        schema, path, rest = body["schema"], "", loc[1:]
    else:
        return None
    for part in rest:
        schema, label = _step(schema, part, spec)
        path += label
    return schema, path.lstrip(".") or "the body"


def _parsed(value: Any, constraints: list) -> Any:
    """A parameter's text as the number or boolean its field takes, where it reads as one ("nan" is a number not
    finite, "5" an integer), else as it is."""
    if not isinstance(value, str):
        return value
    kinds = {type(c) if not isinstance(c, Interval) else c.type for c in constraints}
    for kind, read in ((int, int), (float, float), (Boolean, {"true": True, "false": False}.__getitem__)):
        if kind in kinds:
            try:
                number = read(value.strip())
            except (KeyError, ValueError):
                continue
            return number
    return value


def _message(error: dict[str, Any], operation: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """``error`` (a pydantic error of a request) in the project's words, or None where it keeps pydantic's."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type")
    if kind == "value_error":
        return _named(error, operation, spec)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag(error, operation, spec)
    if kind not in REWORDED:
        return None
    if kind == "extra_forbidden":
        parent = _locate(operation, loc[:-1], spec)
        if parent is None:
            return None
        known = list(_resolve(parent[0], spec).get("properties", {}))
        where = "" if parent[1] == "the body" else f" of {parent[1]}"
        return (f"{str(loc[-1])[:100]!r} is not a field{where}; the fields are: {', '.join(known)}." if known
                else None)
    found = _locate(operation, loc, spec)
    if found is None:
        return None
    schema, path = found
    if loc[0] in _PARAMETERS and kind != "missing":  # a parameter is left out, never sent as null
        return text_refusal(path, error.get("input"), schema, spec)
    constraints = [c for c in constraints_of(schema, spec) if c is not None or loc[0] not in _PARAMETERS]
    if not constraints:
        return None
    if kind == "missing":
        return f"{path} is required: " + " or ".join("None" if c is None else c.describe() for c in constraints) + "."
    return refusal(path, error.get("input"), constraints)


def text_refusal(name: str, value: Any, schema: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """Why the field of ``schema`` (a published property) refuses ``value`` given as text where it reads as a
    number or a boolean (a query parameter, an environment variable; "5" an integer), in :func:`refusal`'s words;
    None where it accepts it. Such text is never null: "or None" is no value it can take."""
    constraints = [c for c in constraints_of(schema, spec) if c is not None]
    return refusal(name, _parsed(value, constraints), constraints) if constraints else None


def _tag(error: dict[str, Any], operation: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """A body's tag (a job's ``kind``) missing or of no variant, named with the value given and the tags accepted
    (the published discriminator's mapping, from the variants' own declarations): pydantic said "Input tag 'probee'
    found using 'kind' does not match any of the expected tags: ..." (a mistyped kind, a number or null alike)."""
    found = _locate(operation, tuple(error.get("loc", ())), spec)
    discriminator = _resolve(found[0], spec).get("discriminator") if found else None
    if not discriminator or not isinstance(error.get("input"), dict):
        return None
    name, tags = discriminator["propertyName"], Options(tuple(discriminator["mapping"]))
    path = name if found[1] == "the body" else f"{found[1]}.{name}"
    if name not in error["input"]:
        return f"{path} is required: {tags.describe()}."
    return refusal(path, error["input"][name], [tags])


def refusal(name: str, value: Any, constraints: list) -> str | None:
    """Why ``constraints`` (:func:`constraints_of` a field's schema) refuse ``value`` of the field ``name``, in
    :func:`probe.constraints.check`'s words; None where they accept it (then the refusal was another check's)."""
    try:
        check(name, value, constraints)
    except ValueError as exc:
        return str(exc)
    return None


def _named(error: dict[str, Any], operation: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """A check's own message (a validator's ValueError) named by the field's path in the request: a field's that
    begins with its bare name (ProbeConfig's "epochs must be ...", the library's and the CLI's words) begins with
    its path instead ("probes[0].epochs must be ..."; a pipeline's probes were told apart by nothing), an object's
    that begins with one of its fields ("warmup_epochs must be ...", "adapter_rank=8 applies ...") with that
    field's path, and any other is prefixed with the path ("name: character U+0000 at position 3 is not
    printable" said neither which field nor where). A check of the whole body names its fields itself."""
    found = _locate(operation, tuple(error.get("loc", ())), spec)
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    if found is None or found[1] == "the body":
        return None
    schema, path = _resolve(found[0], spec), found[1]
    lead = re.match(r"\w+", msg)
    if schema.get("type") == "object":
        field = re.match(r"(\w+)(=| must )", msg)
        return f"{path}.{msg}" if field and field.group(1) in schema.get("properties", {}) else f"{path}: {msg}"
    name = next((part for part in reversed(error["loc"]) if isinstance(part, str)), "")
    return f"{path}{msg[len(name):]}" if lead and lead.group() == name else f"{path}: {msg}"


def reword_errors(errors: list[dict[str, Any]], operation: dict[str, Any] | None, spec: dict[str, Any]
                  ) -> list[dict[str, Any]]:
    """``errors`` (pydantic's, of a request to ``operation``, an operation of the OpenAPI document ``spec``) with
    the message of each field refused for its type or bounds in the project's words."""
    if operation is None:
        return errors
    return [{**error, "msg": _reworded(error, operation, spec) or error.get("msg", "")} for error in errors]


def _reworded(error: dict[str, Any], operation: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """:func:`_message`, or None (pydantic's words kept) where the error or the schema is not as it expects: the
    handler of a 422 must not fail into a 500."""
    try:
        return _message(error, operation, spec)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, re.error):
        return None
