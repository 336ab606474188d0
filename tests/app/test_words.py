"""One vocabulary for the reports and the pages: ``GET /words.js`` serves the library's words (probe.report) that the
dashboard's scripts had kept a copy of, and ``RunOut.probe`` names a run's probe as compare's probes line starts."""
from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from app.main import create_app
from app.routes.dashboard import STATIC_DIR
from app.schemas import RunOut
from app.status import FINISHED, JobStatus
from probe.report import TEST_CHECKS, VERDICT_WORDS, TestCheck, Verdict, probe_label, verdict_label

from app_testutils import make_settings


def test_words_script_is_the_librarys_test_check_words(tmp_path):
    with TestClient(create_app(make_settings(tmp_path))) as client:
        resp = client.get("/words.js")
        refused = client.get("/words.js", params={"v": "2"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/javascript")
    assert resp.headers["content-security-policy"].startswith("default-src 'self'")
    assert resp.headers["x-content-type-options"] == "nosniff"
    body = re.fullmatch(r"window\.Words = Object\.freeze\((.*)\);\n", resp.text, re.S)
    assert body is not None, resp.text[:200]
    words = json.loads(body.group(1))
    assert words["test_checks"] == {
        "holds": {"text": "held on test", "short": "", "detail": TEST_CHECKS["holds"].detail, "tone": "pos"},
        "within_noise": {"text": "not confirmed on test (within noise)", "short": "test: within noise",
                         "detail": TEST_CHECKS["within_noise"].detail, "tone": "muted"},
        "reversed": {"text": "reversed on test", "short": "test: worse", "detail": TEST_CHECKS["reversed"].detail,
                     "tone": "neg"},
        "overall_lost": {"text": "overall lost beyond the budget on test", "short": "test: overall lost",
                         "detail": TEST_CHECKS["overall_lost"].detail, "tone": "neg"}}
    assert set(words["test_checks"]) == set(TestCheck.__args__)  # every value a report can hold has its words
    assert words["job_states"] == {"active": ["queued", "running"], "open": ["queued", "running", "interrupted"],
                                   "unsuccessful": ["failed", "cancelled"]}
    assert set(words["job_states"]["open"]) == set(JobStatus) - set(FINISHED)
    assert words["splits"] == ["train", "val", "test"] and words["groups"] == ["easy", "medium", "hard"]
    assert words["metrics"] == ["overall", "balanced", "easy", "medium", "hard", "worst_class"]
    assert words["compared_metrics"] == ["overall", "balanced", "hard", "worst_class"]  # compare_many's columns
    assert words["sign_flip_floor"] == 1 / 20_001  # probe.uncertainty.SIGN_FLIP_FLOOR: where Dash.pSay says "p ≤"
    assert words["no_change"] == "no change (same predictions)"  # probe.compare.NO_CHANGE: Dash.deltaSpan says it
    assert words["confusions_header"] == "most often predicted as (% of its test images)"  # CONFUSIONS_HEADER
    assert words["chart_classes"] == 60  # probe.report.CHART_CLASSES: the dashboard's charts draw what the export's do
    assert words["heatmap_classes"] == 60  # probe.report.HEATMAP_CLASSES: the confusion heat map, its sub-matrix
    assert words["verdicts"] == {v: w._asdict() for v, w in VERDICT_WORDS.items()}
    from probe.report import POSTHOC_WORDS

    assert words["posthoc"] == {o: w._asdict() for o, w in POSTHOC_WORDS.items()}
    assert set(words["verdicts"]) == set(Verdict.__args__) - {"not_applicable"}  # every decision made
    from probe.label_issues import DEFAULT_METHOD, METHODS

    assert words["label_issue_methods"] == {"listed": METHODS, "default": DEFAULT_METHOD}  # the run page's choice
    assert list(METHODS) == ["predicted-neq-given", "confident-learning"] and DEFAULT_METHOD == "predicted-neq-given"
    from probe import DEFAULT_CV_FOLDS, MIN_VAL_PER_CLASS

    from probe.report import selection_split_text

    not_needed = words["cv"].pop("not_needed")  # the run page's words for folds asked by hand, not a copy of its own
    assert not_needed.format(asked=20, least=MIN_VAL_PER_CLASS) == selection_split_text(None, 20, MIN_VAL_PER_CLASS)
    assert words["cv"] == {"default": DEFAULT_CV_FOLDS, "min_val_per_class": MIN_VAL_PER_CLASS}  # the selection note
    assert refused.status_code == 422  # like every route, a query parameter it does not take


def test_the_pages_load_the_words_before_their_scripts():
    html = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts[0] == "/words.js" and "/static/dash.js" in scripts[1:]
    # the pages keep no copy of their own (both had drifted once)
    for script in STATIC_DIR.glob("*.js"):
        text = script.read_text()
        assert "within noise." not in text and "test: worse" not in text and '"ERM (ce)"' not in text, script.name
        states = "(queued|running|succeeded|failed|cancelled|interrupted)"
        assert not re.search(f'"{states}", "{states}"', text), script.name  # no list of job states
        assert '"train", "val"' not in text and "beyond noise on validation" not in text, script.name
        assert '"easy", "medium", "hard"' not in text and '"overall", "balanced"' not in text, script.name


def test_verdict_and_probe_labels():
    assert verdict_label("improved", "reversed") == "improved; reversed on test"
    assert verdict_label("improved", None) == "improved"
    assert verdict_label("no_safe_improvement", "holds") == "no safe improvement"
    assert probe_label("ce", "linear") == "ERM (ce), linear head"
    assert probe_label("focal (gamma_focal=2)", None) == "focal (gamma_focal=2), ? head"
    assert probe_label(None, None) == ""


def test_a_run_row_names_its_probe():
    row = dict(id="run_1", job_id=None, cache_id="c", name="mr2/cosine", head="cosine", loss="mr2",
               reference_run=None, summary={}, created_at="2026-01-01T00:00:00Z")
    out = RunOut(**row)
    assert out.probe == "mr2, cosine head" and out.model_dump()["probe"] == "mr2, cosine head"
    assert RunOut(**{**row, "head": None, "loss": None}).model_dump()["probe"] == ""
    # a row that stored the words (probe.compare.probe_words) gives them as they are
    assert RunOut(**{**row, "probe": "mr2, cosine head, preset x"}).probe == "mr2, cosine head, preset x"


def test_a_jobs_line_for_an_improvement_says_what_test_said():
    """A new-user round: the job's message said "hard classes raised beyond noise on validation" of a run whose
    gain was not confirmed on test."""
    from app.steps import _summary_line

    summary = {"overall": 0.5, "hard": 0.25}
    assert _summary_line("r", summary, "improved", "within_noise") == (
        "run r: overall 50.00 %, hard 25.00 % (hard classes raised beyond noise on validation; not confirmed on test "
        "(within noise))")
    assert _summary_line("r", summary, "improved", "holds").endswith("(hard classes raised beyond noise on validation)")
    assert _summary_line("r", summary, "not_applicable") == "run r: overall 50.00 %, hard 25.00 %"


def test_a_jobs_line_for_a_posthoc_run_says_what_its_guard_did():
    """A new-user round: a post-hoc bias job's line read "run r: overall 80.67 %, hard 68.89 %", not whether the bias
    ships, while the runs list said "bias not applied"."""
    from app.steps import _summary_line

    summary = {"overall": 0.5, "hard": 0.25}
    declined = _summary_line("r", summary, "not_applicable", posthoc="declined")
    assert declined.startswith("run r: overall 50.00 %, hard 25.00 % (bias not applied: its out-of-sample check")
    assert declined.endswith("the probe ships as trained, without the bias)")
    assert "(bias applied: the post-hoc bias raised" in _summary_line("r", summary, posthoc="applied")
    assert "too few validation images" in _summary_line("r", summary, posthoc="untested")


def test_a_jobs_line_gives_each_accuracy_with_its_interval():
    """A dashboard-only round: the job's page read "run r: overall 74.44 %, hard 67.41 %" of a run on 300 test
    images, a number without its uncertainty where the run page beside it gives [69.2, 79.0]."""
    from app.steps import _summary_line

    summary = {"overall": 0.7444, "overall_ci": [0.6922, 0.7904], "hard": 0.6741,
               "group_ci": {"hard": [0.5703, 0.7659]}}
    assert _summary_line("r", summary) == "run r: overall 74.44 % [69.2, 79.0], hard 67.41 % [57.0, 76.6]"
