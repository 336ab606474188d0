"""Probe requests are validated by probe.ProbeConfig when the job is submitted: 422 naming the field, no job."""
import pytest

_BAD_CONFIGS = [
    ({"epochs": 1_000_000_000}, "epochs must be an integer in [1, 10000]"),
    ({"lr_grid": [1e-3] * 1000, "wd_grid": [0.0] * 1000}, "lr_grid"),
    ({"seeds": list(range(10_000))}, "seeds"),
    ({"lr_grid": [0.01 * (i + 1) for i in range(30)], "wd_grid": [1e-5 * i for i in range(30)]},
     "MAX_GRID_CANDIDATES = 512"),
    # fits × epochs: 64 candidates × 3 seeds of 10,000 epochs each (an attack round held a worker for hours)
    ({"epochs": 10_000, "tol": 0, "lr_grid": [0.001 * (i + 1) for i in range(8)], "wd_grid": [0.1 * i for i in range(8)]},
     "this run fits 67 probes (64 candidates, 3 seeds) × 10,000 epochs = 670,000 epochs of training; at most "
     "MAX_FIT_EPOCHS = 512,000 per run"),
    # a repeated value fits the same candidate again (an attack round)
    ({"lr_grid": [0.1, 0.01, 0.1]}, "lr_grid must be distinct values; repeated: 0.1."),
    ({"loss": "logit_adjust", "loss_options_grid": {"tau": [0.5, 0.5]}}, "loss_options_grid tau must be distinct"),
    ({"loss": "group_dro", "loss_options": {"eta": -1}}, "loss 'group_dro' option eta must be in (0, 100], got -1"),
    ({"loss": "focal", "loss_options": {"gamma_focal": "abc"}}, "option gamma_focal must be in [0, 100], got 'abc'"),
    ({"head": "cosine", "head_options": {"logit_scale": -5}}, "option logit_scale must be in (0, 1000], got -5"),
    ({"loss": "x" * 1000}, "loss must be at most 64 characters, got 1000."),
    ({"device": "mps"}, "device must be one of auto, cpu, cuda, cuda:N, got 'mps'"),
    ({"cv": 1}, "cv must be 0 (no cross-validation) or an integer in [2, 20], got 1"),
    ({"cv": -3}, "cv must be 0 (no cross-validation) or an integer in [2, 20], got -3"),
    ({"cv": 1000}, "cv must be 0 (no cross-validation) or an integer in [2, 20], got 1000"),
    ({"precision": "fp16"}, "precision must be one of auto, fp32, bf16, got 'fp16'"),
    ({"overall_metric": "macro"}, "overall_metric must be one of accuracy, balanced, got 'macro'."),
    ({"select": "hard", "max_overall_drop": -1},
     "max_overall_drop must be between 0 and 100 points of overall accuracy, got -1."),
    ({"select": "hard", "max_overall_drop": 1e9},
     "max_overall_drop must be between 0 and 100 points of overall accuracy, got 1e+09."),
    # integers beyond any float were a 500 (OverflowError; an attack round)
    ({"loss": "focal", "loss_options": {"gamma_focal": 10**400}},
     "option gamma_focal must be in [0, 100], got 1.00e+400, out of range."),
    ({"loss": "group_dro", "loss_options": {"eta": 10**400}},
     "option eta must be in (0, 100], got 1.00e+400, out of range."),
    ({"loss": "mr2_valerr", "loss_options": {"val_error": [0.1, 10**400]}}, "val_error"),
    ({"head_options": {"bias": 10**400}}, "bias"),
]


@pytest.mark.parametrize("config,fragment", _BAD_CONFIGS)
def test_bad_probe_configs_are_422_before_a_job_exists(finished, config, fragment):
    client = finished.client
    jobs_before = client.get("/api/jobs").json()
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": "cache_any", "config": config})
    assert resp.status_code == 422, resp.text
    assert fragment in str(resp.json()["detail"])
    resp = client.post("/api/jobs", json={"kind": "pipeline", "dataset_id": "ds_any", "probes": [config]})
    assert resp.status_code == 422 and fragment in str(resp.json()["detail"])
    assert client.get("/api/jobs").json() == jobs_before


@pytest.mark.parametrize("config, message", [
    ({"select": "hard", "max_overall_drop": float("nan")},
     "config.max_overall_drop must be between 0 and 100 points of overall accuracy, got nan."),
    ({"cbar_grid": [1.0, float("inf")]}, "config.cbar_grid value (cbar) must be in (0, 100], got inf, out of range."),
])
def test_nan_in_a_probe_request_is_422_naming_the_field_and_value(finished, config, message):
    """A JSON body may carry NaN or Infinity (Python's json reads them): refused as an out-of-range value is, naming
    the field and the value (pydantic's "Input should be a finite number" named neither; a forms round)."""
    import json

    body = json.dumps({"kind": "probe", "cache_id": "cache_any", "config": config})
    resp = finished.client.post("/api/jobs", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert [d["msg"].removeprefix("Value error, ") for d in resp.json()["detail"]] == [message]


def test_cross_validation_folds_count_as_fits_on_the_cache_that_needs_them(finished):
    """128 candidates × 1 seed of 1,000 epochs pass the request's own bounds (129 fits); on a cache whose small
    validation split cross-validates, each candidate is fitted on every fold too (probe.ProbeConfig.total_fits, the
    run's own count), and the request is refused before a job exists (an attack round: 512 candidates × 12 folds
    held a worker for hours)."""
    from probe import ProbeConfig

    client = finished.client
    cache_id = finished.job["result"]["cache_id"]
    grid = {"loss": "focal", "seeds": [0], "epochs": 1000, "lr_grid": [0.001 * (i + 1) for i in range(8)],
            "wd_grid": [0.1 * i for i in range(8)], "loss_options_grid": {"gamma_focal": [1.0, 2.0]}}
    ProbeConfig.model_validate(grid)  # within its own bounds
    jobs_before = client.get("/api/jobs").json()
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": grid})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith("config: this run fits")  # the probe's field, not the cache's
    assert "(128 candidates, 1 seed, " in resp.json()["detail"] and "-fold cross-validation) × 1,000 epochs" in \
        resp.json()["detail"] and "or lower cv" in resp.json()["detail"]
    assert client.get("/api/jobs").json() == jobs_before


def test_batches_of_one_count_as_the_steps_they_are(tmp_path):
    """44 fits of 10,000 epochs in batches of 1 passed every bound and held the worker about 2 h a probe on 54
    images (an attack round): the optimiser steps, fits × epochs × batches, are bounded once the rows are known."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app_testutils import make_settings, synthetic_cache
    from probe import MAX_FIT_STEPS, ProbeConfig

    config = {"loss": "ce", "epochs": 10_000, "tol": None, "batch_size": 1, "wd_grid": [0.0], "seeds": [0],
              "lr_grid": [0.001 * (i + 1) for i in range(8)]}
    ProbeConfig.model_validate(config).check_cost()  # 9 fits × 10,000 epochs: within MAX_FIT_EPOCHS
    with TestClient(create_app(make_settings(tmp_path / "svc"))) as client:
        cache = synthetic_cache(client.app.state.store, tmp_path, per_class={"train": 40, "val": 60, "test": 5})
        resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": config})
        assert resp.status_code == 422, resp.text  # 9 fits × 10,000 epochs × 120 batches of 1 row
        assert f"= 10,800,000 optimiser steps; at most MAX_FIT_STEPS = {MAX_FIT_STEPS:,} per run" in resp.text
        full = {**config, "batch_size": None}  # full batch: one step an epoch
        resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": full})
        assert resp.status_code == 202, resp.text
        client.delete(f"/api/jobs/{resp.json()['id']}")


@pytest.mark.parametrize("config", [{"cbar": 2.0}, {"loss": "group_dro", "cbar": 3.0}, {"preset": "disparity",
                                                                                          "cbar": 1.0}])
def test_a_fixed_cbar_on_a_loss_without_one_is_422_before_a_job_exists(finished, config):
    """A fixed c̄ on cross-entropy (or group DRO, or the disparity preset's loss) trained exactly as without it,
    while the run's report said "selected: ..., cbar=2": refused, naming the field, as `mr2probe train` refuses it."""
    client = finished.client
    jobs_before = client.get("/api/jobs").json()
    cache_id = finished.job["result"]["cache_id"]
    resp = client.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": config})
    assert resp.status_code == 422, resp.text
    assert "config.cbar" in resp.text and "has no c̄, so it would do nothing" in resp.text
    assert client.get("/api/jobs").json() == jobs_before
