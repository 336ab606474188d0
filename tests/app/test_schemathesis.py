"""Property-based API tests (Schemathesis) on the in-process ASGI app: every operation of the OpenAPI schema,
generated valid (positive) and invalid (negative) inputs; no answer may be a 5xx or break its declared schema.

The operations are read from the app's own schema, so new or changed routes and models (e.g. the report model)
are covered without editing this file.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.main import create_app

from app_testutils import make_settings, tiny_zip_bytes

MAX_EXAMPLES = 12  # per operation and generation mode: the whole module stays well under a minute on 2 cores
CASES: dict[str, int] = {}

# The service under test: a temporary data dir with one registered data set; the worker is not started (jobs
# that pass validation stay queued), so generated requests never train anything.
_STATE = Path(tempfile.mkdtemp(prefix="mr2probe-schemathesis-"))
APP = create_app(make_settings(_STATE, allowed_hosts=["testserver", "localhost"]), start_worker=False)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def _takes_input(operation) -> bool:
    raw = operation.definition.raw
    return bool(raw.get("parameters") or "requestBody" in raw or raw.get("security"))


# Negative cases need an input to break: an operation without parameters, body or security has none.
RUNS = [pytest.param(op, mode, id=f"{op.label} {mode.value}") for op in OPERATIONS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if mode.is_positive or _takes_input(op)]


@pytest.fixture(scope="module", autouse=True)
def registered_dataset():
    with TestClient(APP) as client:
        assert client.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).status_code == 201
    yield
    print(f"\nschemathesis: {sum(CASES.values())} cases, {len(OPERATIONS)} operations, {len(RUNS)} operation-modes")


@pytest.mark.parametrize("operation,mode", RUNS)
def test_no_server_errors_and_conformant_responses(operation, mode):
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case):
        CASES[f"{mode} {operation.label}"] = CASES.get(f"{mode} {operation.label}", 0) + 1
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    check()
    assert CASES[f"{mode} {operation.label}"] >= 1  # requests were sent, not all filtered away
