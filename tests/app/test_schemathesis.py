"""Property-based API tests (Schemathesis) on the in-process ASGI app: every operation of the OpenAPI schema,
generated valid (positive) and invalid (negative) inputs; no answer may be a 5xx or break its declared schema.

The operations are read from the app's own schema, so new or changed routes and models (e.g. the report model)
are covered without editing this file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest.mock import patch

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.main import create_app

from app_testutils import FAST_PROBE, make_settings, synthetic_cache, tiny_zip_bytes

# Per operation and generation mode: the whole module stays well under a minute on 2 cores. A longer, random search
# (new draws each run, not the fixed derandomized ones): MR2PROBE_FUZZ_EXAMPLES=200 pytest tests/app/test_schemathesis.py
MAX_EXAMPLES = int(os.environ.get("MR2PROBE_FUZZ_EXAMPLES", 12))
DERANDOMIZE = "MR2PROBE_FUZZ_EXAMPLES" not in os.environ
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


# Operations that read rows by id are also run with ids that exist, so that their 200 answers are checked too.
COMPARED = tuple(f"/compare{many}{fmt}" for many in ("", "/many") for fmt in ("", ".html", ".md"))
WITH_IDS = [pytest.param(op, id=op.label) for op in OPERATIONS
            if op.method.upper() == "GET" and ("{" in op.path or op.path.endswith(COMPARED))]

# Negative cases need an input to break: an operation without parameters, body or security has none.
RUNS = [pytest.param(op, mode, id=f"{op.label} {mode.value}") for op in OPERATIONS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if mode.is_positive or _takes_input(op)]


def _find_label_issues(run_id: str) -> None:
    """The run's likely wrong labels, found as the worker would (GET /api/runs/{id}/label-issues reads them); again
    before that GET is checked: a generated DELETE /api/jobs?older_than_days=0 removes every finished job's record."""
    from app.jobs import JobContext
    from app.label_issues_job import handle_label_issues
    from app.status import JobStatus

    store, settings = APP.state.store, APP.state.settings
    issues = store.claim(store.add_job("label_issues", {"run_id": run_id, "folds": 2, "device": "cpu"})["id"])
    store.update_result(issues["id"], **handle_label_issues(JobContext(job=issues, store=store, settings=settings)))
    store.finish(issues["id"], JobStatus.succeeded)


def _cache_of_other_classes(store) -> dict:
    """A cache of classes x, y, z, none of the runs' (a, b, c): predicted unscored (GET /api/runs/{id}/predicted,
    /predictions.csv), nothing to score (/scores, /scores/failures)."""
    import numpy as np
    from feature_cache import write_cache

    rng, names = np.random.default_rng(0), ["x", "y", "z"]
    split = (rng.normal(size=(6, 8)).astype(np.float32), np.repeat(np.arange(3), 2), [f"{i}.png" for i in range(6)])
    path = write_cache(_STATE / "other_classes.h5", {"test": split}, names, {
        "encoder": "synthetic", "default_head": "linear", "normalized": False, "fingerprint": "e" * 64})
    ds = store.add_dataset(name="o", source="path", path=str(_STATE), class_names=names, counts={"test": [2] * 3},
                           fingerprint="o", skipped=0)
    return store.add_cache(dataset_id=ds["id"], encoder="synthetic", path=str(path), fingerprint="e" * 64,
                           num_features=8, class_names=names, counts={"test": 6}, job_id=None)


@pytest.fixture(scope="module", autouse=True)
def existing_ids() -> dict[str, str]:
    """Rows the generated requests can meet: an uploaded data set, a cache, a finished run, a queued job."""
    from app.jobs import JobContext
    from app.steps import probe_step
    from probe import ProbeConfig

    store, settings = APP.state.store, APP.state.settings
    with TestClient(APP) as client:
        resp = client.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))})
        assert resp.status_code == 201
        cache = synthetic_cache(store, _STATE)
        job = store.claim(store.add_job("probe", {})["id"])
        # the synthetic encoder given a threshold: the run checks for near-duplicates and keeps its list, which GET
        # /api/runs/{id}/near-duplicates reads (a run unchecked is a 404 there)
        with patch.dict("probe.near_duplicates.NEAR_DUPLICATE_THRESHOLDS", {"synthetic": 0.9}):
            run = probe_step(JobContext(job=job, store=store, settings=settings), cache["id"],
                             ProbeConfig(**FAST_PROBE).model_dump(mode="json"), None)
        _find_label_issues(run["id"])
        job = store.claim(store.add_job("probe", {})["id"])  # a second run: GET /api/compare/many compares it
        other = probe_step(JobContext(job=job, store=store, settings=settings), cache["id"],
                           ProbeConfig(**{**FAST_PROBE, "seeds": [1]}).model_dump(mode="json"), None)
        queued = store.add_job("extract", {"dataset_id": resp.json()["id"], "encoder": "effnet-lite0", "options": {}})
    from feature_cache import open_dataset

    opened = open_dataset(store.get_dataset(resp.json()["id"])["path"])
    listed = opened.splits["train"][0]
    yield {"dataset_id": resp.json()["id"], "cache_id": cache["id"], "run_id": run["id"], "other_run_id": other["id"],
           "job_id": queued["id"], "class": "a", "other_class": "b", "source": listed.source,
           "digest": opened.open_with_digest(listed)[1].hex(),  # its content digest: a thumbnail of the file as it is
           "other_classes_cache_id": _cache_of_other_classes(store)["id"]}
    print(f"\nschemathesis: {sum(CASES.values())} cases, {len(OPERATIONS)} operations, {len(RUNS)} operation-modes "
          f"+ {len(WITH_IDS)} with existing ids")


@pytest.mark.parametrize("operation,mode", RUNS)
def test_no_server_errors_and_conformant_responses(operation, mode):
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    def check(case):
        CASES[f"{mode} {operation.label}"] = CASES.get(f"{mode} {operation.label}", 0) + 1
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    check()
    assert CASES[f"{mode} {operation.label}"] >= 1  # requests were sent, not all filtered away


@pytest.mark.parametrize("operation", WITH_IDS)
def test_existing_rows_conform_to_the_schema(operation, existing_ids):
    names = [p["name"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "path"]
    path_parameters = {name: existing_ids[name] for name in names}
    # the query parameters that name existing things too: two runs, two of the run's classes, a listed sample, a cache
    cell = {"class": existing_ids["class"], "predicted": existing_ids["other_class"]}
    scored = {"cache": existing_ids["cache_id"], "split": "test"}
    queries = {"/compare": {"base": existing_ids["run_id"], "other": existing_ids["run_id"], **scored},
               "/compare/many": {"base": existing_ids["run_id"], "other": [existing_ids["other_run_id"]], **scored},
               "/scores/failures": {**cell, **scored}, "/failures": cell,
               "/thumbnail": {"source": existing_ids["source"], "digest": existing_ids["digest"]},
               "/scores": scored, "/predictions": scored,
               "/predicted": scored,  # the label_issues job named no method: it ran the default
               "/label-issues": {"class": existing_ids["class"], "method": "predicted-neq-given"}}
    if operation.path.endswith("/label-issues"):
        _find_label_issues(existing_ids["run_id"])
    path = operation.path.rsplit(".", 1)[0]  # /compare.html as /compare, /compare/many.md as /compare/many
    query = next((q for suffix, q in queries.items() if path.endswith(suffix)), None)
    statuses = set()

    @given(case=operation.as_strategy(path_parameters=path_parameters, query=query))
    @settings(max_examples=3, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case):
        CASES[f"existing {operation.label}"] = CASES.get(f"existing {operation.label}", 0) + 1
        statuses.add(case.call_and_validate(checks=[not_a_server_error, response_schema_conformance]).status_code)

    check()
    assert statuses == {200}


# A run's shipped probe on a cache of none of its classes: listed unscored, or nothing to score (a 422)
UNSCORED = {"/predicted": 200, "/predictions.csv": 200, "/scores": 422, "/scores/failures": 422}


@pytest.mark.parametrize("operation", [pytest.param(op, id=op.label) for op in OPERATIONS if op.method.upper() == "GET"
                                       and op.path.endswith(tuple(UNSCORED))])
def test_a_cache_of_none_of_the_runs_classes_conforms_to_the_schema(operation, existing_ids):
    """The newest path of these routes, a labelled cache none of whose classes is the run's (predicted, unscored,
    where it had been refused), was left out of the generated cases: the fixture's caches were all of the runs'
    classes. Its answers are checked against the schema too: 200 where the predictions are listed, 422 where there
    is nothing to score."""
    path_parameters = {"run_id": existing_ids["run_id"]}
    query = {"cache": existing_ids["other_classes_cache_id"], "split": "test"}
    if operation.path.endswith("/failures"):
        query["class"] = existing_ids["class"]
    statuses = set()

    @given(case=operation.as_strategy(path_parameters=path_parameters, query=query))
    @settings(max_examples=3, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case):
        CASES[f"unscored {operation.label}"] = CASES.get(f"unscored {operation.label}", 0) + 1
        statuses.add(case.call_and_validate(checks=[not_a_server_error, response_schema_conformance]).status_code)

    check()
    assert statuses == {next(code for suffix, code in UNSCORED.items() if operation.path.endswith(suffix))}
