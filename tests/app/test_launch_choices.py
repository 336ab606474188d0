"""``GET /launch/choices``: what the launch form offers as its second probe is what the API accepts after an ERM
reference, and the head a loss needs is the one validation asks for."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.validation import _probe
from probe import LOSSES, PRESETS, ProbeConfig

from app_testutils import make_settings


@pytest.fixture(scope="module")
def choices(tmp_path_factory):
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("svc")))) as client:
        resp = client.get("/launch/choices")
        assert resp.status_code == 200
        # a query parameter it does not take is refused as on the API's routes (an attack round: 200)
        refused = client.get("/launch/choices", params={"x": "1"})
        assert refused.status_code == 422 and "unknown query parameter 'x': this route takes none" in refused.text
        return resp.json()


def test_the_forms_bounds_are_the_apis(choices):
    from feature_cache.datasets import ARCHIVE_SUFFIXES
    from probe.config import MAX_OVERALL_DROP
    from probe.names import MAX_NAME

    assert choices["archives"] == list(ARCHIVE_SUFFIXES) and ".tar.xz" in choices["archives"]
    assert (choices["max_name"], choices["max_overall_drop"]) == (MAX_NAME, MAX_OVERALL_DROP)
    assert "presets" not in choices  # methods[] says everything of each
    from probe.config import AUTO_FULL_BATCH_ROWS, AUTO_MIN_STEPS, auto_epochs

    # what the epochs field says its automatic count is: auto_epochs' own constants
    auto = choices["auto_epochs"]
    assert auto == {"steps": AUTO_MIN_STEPS, "full_batch_rows": AUTO_FULL_BATCH_ROWS}
    assert auto_epochs(auto["full_batch_rows"], None) == auto["steps"] and auto_epochs(50_000, 1024) == 10


def test_every_preset_every_other_loss_and_the_posthoc_bias_are_offered_once(choices):
    names = [m["name"] for m in choices["methods"]]
    assert names == [*PRESETS, *(name for name in LOSSES if name != "ce"), "posthoc_bias"]
    assert [m["group"] for m in choices["methods"]][:len(PRESETS) + 1] == ["preset"] * len(PRESETS) + ["loss"]
    by_name = {m["name"]: m for m in choices["methods"]}
    assert by_name["disparity"]["probe"] == {"preset": "disparity"}
    assert by_name["mr2"]["probe"] == {"loss": "mr2", "select": "hard"}
    assert by_name["mr2"]["why"].startswith(LOSSES["mr2"].summary + ". Trained after the ERM reference")
    assert by_name["posthoc_bias"]["probe"] == {"loss": "ce", "posthoc_bias": True}
    # the losses that work on cosines, read from the registry (a hand-written set here failed when ldam was added)
    cosine_losses = {name for name, spec in LOSSES.items() if spec.input == "cosine"}
    assert {"lm_softmax", "cosface", "arcface"} <= cosine_losses
    assert {m["name"]: m["head"] for m in choices["methods"] if m["head"]} == dict.fromkeys(cosine_losses, "cosine")
    # a plain sentence for each, beside the rule in full (250 words of statistics alone; a dashboard-only round)
    assert all(m["summary"] and len(m["summary"]) < len(m["why"]) and "Bonferroni" not in m["summary"]
               for m in choices["methods"])
    assert by_name["focal"]["summary"].startswith("Trains with the focal loss; kept only where it raises the hardest")
    # the post-hoc bias's minimum, said before a run is spent finding it out (a dashboard-only round)
    from probe.evaluate import POSTHOC_MIN_PER_CLASS

    assert f"It needs {POSTHOC_MIN_PER_CLASS} validation images in every class" in by_name["posthoc_bias"]["summary"]


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_each_method_is_a_valid_second_probe_on_its_head_and_refused_on_another(choices, head):
    def stored(method):  # what POST /api/jobs checks of probes[1] and stores, on a cache of 16 features, 3 classes
        request = ProbeConfig.model_validate({**method["probe"], "head": head, "max_overall_drop": 0.5})
        return _probe("probes[1]", request, head, 16, 3, True)

    for method in choices["methods"]:
        if method["head"] in (None, head):
            config = stored(method)
            assert config["head"] == head and config["max_overall_drop"] == 0.5, method["name"]
            assert config["select"] == "hard" or config["posthoc_bias"], method["name"]
        else:
            with pytest.raises(ValidationError, match=f"requires head='{method['head']}'"):
                stored(method)
