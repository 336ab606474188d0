"""Issue 15: bounded requests, complete validation at submission, job-scoped clean-up, no orphan runs, the edge
(hosts, origins, tokens, body limits) and start-up sweeping. Each test failed on the code before the fix."""
from __future__ import annotations

import functools
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.schemas import ID_PATTERN, MAX_PROBES

from app_testutils import (ERM, FAST_PROBE, MR2, make_settings, synthetic_cache, tiny_zip_bytes, unzip, wait_for,
                           wait_job)
from testdata import write_mocov2_checkpoint


@pytest.fixture
def service(tmp_path):
    settings = make_settings(tmp_path / "state", data_root=tmp_path / "root")
    (tmp_path / "root").mkdir()
    with TestClient(create_app(settings)) as client:
        yield client


def _synthetic_cache(client, tmp_path, attrs=None) -> str:
    return synthetic_cache(client.app.state.store, tmp_path, attrs)["id"]


def _report_without_numbers():
    """What a monkeypatched run_probe returns: a report whose summary has no numbers (classes without samples)."""
    from types import SimpleNamespace

    from probe.report import Selection, Summary

    nulls = dict.fromkeys(("overall", "balanced", "easy", "medium", "hard", "per_class_std", "class_margin_deg",
                           "ideal_class_margin_deg", "min_sample_margin", "ideal_sample_margin"))
    summary = Summary(**nulls, worst_class={"name": "a", "accuracy": None},
                      group_margin={"easy": None, "medium": None, "hard": None})
    return SimpleNamespace(summary=summary, selection=Selection(criterion="overall", split="val", candidates=[],
                                                                chosen={"lr": 0.01, "weight_decay": 0.0}, reason=""),
                           config={}, posthoc=None, temperature_scaling=None)


def _detail(resp) -> str:
    return json.dumps(resp.json()["detail"])


# -- 1. bounded lists and strings -------------------------------------------------------------------------
def test_pipeline_probe_lists_and_strings_are_bounded(service):
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    body = {"kind": "pipeline", "dataset_id": ds["id"], "probes": [ERM] * (MAX_PROBES + 1)}
    resp = service.post("/api/jobs", json=body)
    assert resp.status_code == 422 and "probes" in _detail(resp)
    assert f"a list of 1 to {MAX_PROBES} values, got {MAX_PROBES + 1} values." in _detail(resp)
    for field, value in (("dataset_id", "d" * 65), ("encoder", "e" * 1025), ("encoder", "effnet\x00lite0")):
        resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], field: value})
        assert resp.status_code == 422 and field in _detail(resp), (field, resp.text[:300])
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": "c", "reference_run": "r" * 65})
    assert resp.status_code == 422 and "reference_run" in _detail(resp)
    assert service.get("/api/jobs/" + "j" * 65).status_code == 422
    assert service.get("/api/jobs").json() == []


# -- 2. cancelling one extraction never touches another's files ------------------------------------------------
def test_cancelling_an_interrupted_extraction_spares_a_running_one(tmp_path):
    settings = make_settings(tmp_path / "state")
    big = tiny_zip_bytes(20, 4, root="bigger")
    with TestClient(create_app(settings)) as client:
        ds = client.post("/api/datasets", files={"file": ("bigger.zip", big)}).json()
        first = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"],
                                               "options": {"batch_size": 2, "seed": 0}}).json()["id"]
        wait_for(lambda: client.get(f"/api/jobs/{first}").json()["progress"] > 0.05, 120, interval=0.02,
                 what="seed-0 extraction under way")
    # The server stopped: the job is interrupted and keeps its partial file; a SIGKILL would leave its lock too.
    [partial0] = (settings.caches_dir / ds["id"]).rglob("*.partial")
    lock0 = partial0.with_name(partial0.name.removesuffix(".partial") + ".lock")
    lock0.write_text("pid 999999")
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/api/jobs/{first}").json()["status"] == "interrupted"
        assert partial0.exists() and lock0.exists()  # the start-up sweep keeps what a resumable job owns
        second = client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"],
                                                "options": {"batch_size": 2, "seed": 1}}).json()["id"]
        wait_for(lambda: client.get(f"/api/jobs/{second}").json()["progress"] > 0.05, 120, interval=0.02,
                 what="seed-1 extraction under way")
        resp = client.delete(f"/api/jobs/{first}")
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
        job = wait_job(client, second)
        assert job["status"] == "succeeded", job["error"]  # its partial file was not deleted under it
        assert not partial0.exists() and not lock0.exists()
        cache = client.get(f"/api/caches/{job['result']['cache_id']}").json()
        assert sum(cache["counts"].values()) == 72
    assert sorted(p.suffix for p in (settings.caches_dir / ds["id"]).rglob("*") if p.is_file()) == [".h5"]


# -- 3. a class without a decodable image: a clear failure, and never a run -----------------------------------
def test_class_without_images_fails_extraction_and_leaves_no_runs(service):
    fakes = {f"{split}/ghost/{i:03d}.jpg": b"this is text, not a JPEG" for split in ("train", "test") for i in range(3)}
    resp = service.post("/api/datasets", files={"file": ("g.zip", tiny_zip_bytes(4, 2, extra=fakes))})
    assert resp.status_code == 201 and "ghost" in resp.json()["class_names"]
    job_id = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": resp.json()["id"],
                                             "probes": [ERM, MR2]}).json()["id"]
    job = wait_job(service, job_id)
    assert job["status"] == "failed" and "DatasetError" in job["error"] and "'ghost'" in job["error"]
    assert service.get("/api/runs").json() == [] and service.get("/api/caches").json() == []
    assert service.post(f"/api/jobs/{job_id}/resume").status_code == 202
    job = wait_job(service, job_id)
    assert job["status"] == "failed" and job["attempts"] == 2
    assert service.get("/api/runs").json() == []


def test_failed_probe_leaves_no_run_and_resume_adds_none(service, tmp_path, monkeypatch):
    import probe

    from app.jobs import JobContext
    from app.steps import probe_step

    cache_id = _synthetic_cache(service, tmp_path)
    store, settings = service.app.state.store, service.app.state.settings
    job = store.claim(store.add_job("probe", {})["id"])
    ctx = JobContext(job=job, store=store, settings=settings)
    config = probe.ProbeConfig(**FAST_PROBE).model_dump(mode="json")

    def broken(*args, out_dir=None, **kwargs):
        out_dir.mkdir(parents=True)
        (out_dir / "report.json").write_text("{}")
        raise TypeError("unsupported format string passed to NoneType.__format__")

    monkeypatch.setattr(probe, "run_probe", broken)
    with pytest.raises(TypeError):
        probe_step(ctx, cache_id, config, None)
    assert store.list_runs() == [] and list(settings.runs_dir.glob("*")) == []
    assert ctx.result()["pending_run"] is None
    monkeypatch.undo()
    # A summary with missing numbers (a class without test images) is reported, not a crash after the run row.
    monkeypatch.setattr(probe, "run_probe", lambda *a, out_dir=None, **k: _report_without_numbers())
    row = probe_step(ctx, cache_id, config, None)
    assert [r["id"] for r in store.list_runs()] == [row["id"]]
    assert f"run {row['id']}: overall n/a, hard n/a" in [m["text"] for m in store.get_job(job["id"])["messages"]]
    # Interrupted after the run row was written but before the job recorded it: the resumed step adds no run.
    assert ctx.result()["pending_run"] == row["id"]
    assert probe_step(ctx, cache_id, config, None)["id"] == row["id"]
    assert len(store.list_runs()) == 1


def test_a_run_written_whole_before_a_kill_is_recorded_on_resume_not_trained_again(service, tmp_path, monkeypatch):
    """A job killed (SIGKILL) once its run was written whole, before its row was, trained the probe again on resume
    and removed the complete run (a follow-up round). Its run, this job's own (its id recorded first) and whole (its
    report.json moved in last), on the same features, is recorded now; a half-written one is still trained again."""
    import probe

    from app.jobs import JobContext
    from app.steps import probe_step

    cache_id = _synthetic_cache(service, tmp_path)
    store, settings = service.app.state.store, service.app.state.settings
    ctx = JobContext(job=store.claim(store.add_job("probe", {})["id"]), store=store, settings=settings)
    config = probe.ProbeConfig(**FAST_PROBE).model_dump(mode="json")
    real_add_run, killed = store.add_run, []

    def kill(**values):
        killed.append(values)
        raise SystemExit("killed")

    monkeypatch.setattr(store, "add_run", kill)
    with pytest.raises(SystemExit):
        probe_step(ctx, cache_id, config, None)
    pending = ctx.result()["pending_run"]
    assert killed[0]["run_id"] == pending and (settings.runs_dir / pending / "report.json").is_file()
    monkeypatch.setattr(store, "add_run", real_add_run)
    monkeypatch.setattr(probe, "run_probe", lambda *a, **k: pytest.fail("trained again"))
    row = probe_step(ctx, cache_id, config, None)
    assert row == store.get_run(pending) and [r["id"] for r in store.list_runs()] == [pending]
    stored = {**row, "reference_config": json.loads(row["reference_config"])}  # as the killed attempt had it
    assert {key: stored[key] for key in killed[0] if key in row} == {key: value for key, value in killed[0].items()
                                                                     if key in row}
    assert {"name", "summary", "verdict", "probe", "posthoc", "cache_stamp"} <= set(killed[0]) & set(row)
    assert f"run {pending} was written whole before the job stopped: recorded, not trained again" in [
        m["text"] for m in store.get_job(ctx.job_id)["messages"]]
    # half-written (no report.json yet): removed and trained again
    ctx.record(pending_run="run_0123456789ab")
    (settings.runs_dir / "run_0123456789ab").mkdir()
    (settings.runs_dir / "run_0123456789ab" / "head.safetensors").write_bytes(b"x")
    monkeypatch.undo()
    again = probe_step(ctx, cache_id, config, None)
    assert again["id"] != "run_0123456789ab" and not (settings.runs_dir / "run_0123456789ab").exists()


def test_a_probe_of_device_auto_trains_on_the_service_device_its_slot_was_chosen_by(service, tmp_path, monkeypatch):
    """A review: probe_resource queued an ``auto`` probe by the service's device (MR2PROBE_DEVICE=cpu: a CPU slot)
    while run_probe resolved ``auto`` itself and took the GPU when it saw one."""
    import probe

    from app.jobs import JobContext
    from app.steps import probe_resource, probe_step

    cache_id = _synthetic_cache(service, tmp_path)
    store, settings = service.app.state.store, service.app.state.settings
    assert settings.device == "cpu"
    ctx = JobContext(job=store.claim(store.add_job("probe", {})["id"]), store=store, settings=settings)
    config = probe.ProbeConfig(**dict(FAST_PROBE, device="auto")).model_dump(mode="json")
    devices = []

    def spy(data, names, cfg, out_dir=None, **kwargs):
        devices.append(cfg.device)
        return _report_without_numbers()

    monkeypatch.setattr(probe, "run_probe", spy)
    probe_step(ctx, cache_id, config, None)
    assert devices == ["cpu"] and probe_resource({"config": config}, settings.resolved_device()) == "cpu"
    assert probe_resource({"config": dict(config, device="cuda:1")}, "cpu") == "gpu"
    assert probe_resource({"config": config}, "cuda") == "gpu"


def test_client_messages_replace_every_server_path():
    from app.config import Settings
    from app.messages import ClientMessages

    clean = ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean
    assert clean("path '/etc' is outside the data root") == "path '<server path>' is outside the data root"
    assert clean("cache file /srv/state/caches/x.h5 is gone; /opt/y/z too") == \
        "cache file <data dir>/caches/x.h5 is gone; <server path> too"
    assert clean("/srv/data/../elsewhere") == "<data root>/../elsewhere"
    for kept in ("train / val / test", "images/s, 1/2", "tiny/train/cat/0.png",  # no server paths
                 "GET /api/runs/{id}/predictions.csv?cache=c",  # nor a route of the API
                 # nor a "/" inside a relative sample name after ")" or a symbol (found by an outside round)
                 "sample 'test/Shirt (plain)/trunc.png' cannot be shown", "sample 'train/Coat ❄/notes.txt'"):
        assert clean(kept) == kept
    assert clean("(/tmp/a), x=/etc/y, mocov2:/w/x.pth") == "(<server path>), x=<server path>, mocov2:<server path>"


def test_client_messages_keep_a_name_whose_folder_ends_in_a_space():
    """A class folder 'Cat ' put ' /empty.png' after a space, read as a server path: the service said
    "(e.g. 'hostile/train/Cat <server path>')" (an extremes round). After a space, only a path whose top folder is
    on this server is one. Only inside quotes: unquoted, 'train/Cat /x.png' reads as 'x a/b /opt/y', a name and a
    server path."""
    from app.config import Settings
    from app.messages import ClientMessages

    clean = ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean
    for kept in ("skipped 1: empty file (e.g. 'hostile/train/Cat /empty.png')",
                 "'test/Cat /img 1.png' = 'train/Cat /img 1.png'", "'Cat /x.png' cannot be shown"):
        assert clean(kept) == kept
    assert clean("'train/Cat /x.png' and /tmp/x") == "'train/Cat /x.png' and <server path>"


def test_the_copies_are_named_quoted_so_a_client_reads_a_folder_ending_in_a_space_whole():
    """The warning named the copies unquoted ('test/Cat /x.png = train/Cat /x.png'): the service's client messages
    read ' /x.png' after an unquoted name as a server path, 'test/Cat <server path>'. Quoted, as other messages name
    files, they are kept whole."""
    from app.config import Settings
    from app.messages import ClientMessages
    from feature_cache.datasets import Sample, duplicates_warning

    splits = {"train": [Sample("train/Cat /x.png", 0), Sample("train/Dog /x.png", 1)],
              "test": [Sample("test/Cat /x.png", 0)]}
    warning = duplicates_warning(["Cat ", "Dog "], splits, {s.source: 1 for group in splits.values() for s in group},
                                 read=lambda name: b"same")
    assert "('test/Cat /x.png' = 'train/Cat /x.png')" in warning
    assert "('train/Cat /x.png' ('Cat ') = 'train/Dog /x.png' ('Dog '))" in warning
    clean = ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean
    assert clean(warning) == warning


def test_the_files_an_extraction_skipped_are_named_quoted_so_a_client_reads_them_whole():
    """The extraction job's message named the files it skipped unquoted ('1 failed to decode (train/Cat /x.png)'),
    read by the client messages as a name and a server path: 'train/Cat <server path>'."""
    from app.config import Settings
    from app.messages import ClientMessages
    from feature_cache import skipped_summary
    from feature_cache.archives import archive_link

    said = skipped_summary([("train/Cat /x.png", "cannot decode image: broken"),
                            ("train/Cat /l.png", archive_link("hard", "train/Cat /x.png")),
                            ("train/Cat /y.heic", "an image format that is not read (extension '.heic')")])
    assert "('train/Cat /x.png')" in said and "('train/Cat /l.png' (hard link" in said, said
    assert ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean(said) == said

def test_the_undecodable_file_a_refusal_names_is_quoted_so_a_client_reads_it_whole():
    """A class that lost every image to decode failures was refused naming one unquoted ('(e.g. train/Cat /x.png:
    cannot decode image)'), read by the client messages as 'train/Cat <server path>'."""
    from types import SimpleNamespace

    from app.config import Settings
    from app.messages import ClientMessages
    from feature_cache import DatasetError
    from feature_cache.datasets import Sample
    from feature_cache.extract import check_decodable

    data = SimpleNamespace(location="<data root>/pets", class_names=["Cat ", "dog"],
                           splits={"train": [Sample("train/Cat /x.png", 0), Sample("train/dog/y.png", 1)],
                                   "test": [Sample("test/dog/z.png", 1)]})
    with pytest.raises(DatasetError) as refused:
        check_decodable(data, [("train/Cat /x.png", "cannot decode image: broken")])
    said = str(refused.value)
    assert "(e.g. 'train/Cat /x.png': cannot decode image: broken)" in said, said
    assert ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean(said) == said

def test_client_messages_keep_a_name_whose_folder_ends_in_an_equals_sign_colon_comma_or_bracket():
    """A folder 'runs=' or 'data(' put the "/" after it where a server path may start ("x=/etc/y"): the service said
    '<data root>/runs=<server path>' and "'train/data(<server path>'". A "/" that continues a relative path is kept;
    after a word with no folder ("x=", "mocov2:", a top folder 'runs=' alike) or one holding an absolute path, the
    path is a server's."""
    from app.config import Settings
    from app.messages import ClientMessages

    clean = ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean
    for end in "=:,(":
        for kept in (f"skipped 1: empty file (e.g. 'hostile/train/runs{end}/empty.png')",
                     f"cannot read 'train/data{end}/a.png': broken"):
            assert clean(kept) == kept
        hidden = "<server path>" if end == "=" else f"<server path>{end}<server path>"  # "=" may be in a path
        assert clean(f"/srv/other/runs{end}/a.png") == hidden
    for said, shown in (("P=/a:/b", "P=<server path>:<server path>"), ("k=/etc/a /etc/b", "k=<server path> "
                         "<server path>"), ("encoder 'mocov2:/opt/w.pth'", "encoder 'mocov2:<server path>'"),
                        ("'a/b',/etc/x", "'a/b',<server path>"), ("x=/etc/y", "x=<server path>")):
        assert clean(said) == shown, said


def test_client_messages_hide_a_server_path_joined_to_a_relative_name_outside_quotes():
    """A "/" after "=", ":", "," or "(" that ended a word with a folder was kept as the rest of a relative name, so
    a name and a server path joined without a space showed the path: 'train/a.png,/opt/secret/w.pth',
    'a/b=/etc/shadow', 'timm/vit:/opt/w.pth'. Only inside a quoted name is it one name ('train/runs=/a.png')."""
    from app.config import Settings
    from app.messages import ClientMessages

    clean = ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean
    for said, shown in (("x: train/a.png,/opt/secret/w.pth", "x: train/a.png,<server path>"),
                        ("see a/b=/etc/shadow", "see a/b=<server path>"),
                        ("timm/vit:/opt/w.pth", "timm/vit:<server path>"),
                        ("[train/a.png,/opt/x]", "[train/a.png,<server path>]"),
                        ("f(a/b(/opt/x))", "f(a/b(<server path>))"),
                        ("/srv/data/x:/opt/y", "<data root>/x:<server path>"), ("../x:/opt/y", "../x:<server path>")):
        assert clean(said) == shown, said
    assert clean("'train/runs=/a.png'") == "'train/runs=/a.png'"


LEAKED_SERVER_PATHS = (  # (what the service said, what a client reads): each showed '/opt/...' before
    ("x a/b /opt/y", "x a/b <server path>"), ("train/Cat /opt/x.png and /tmp/x", "train/Cat <server path> and "
                                              "<server path>"),
    ("x;/opt/y", "x;<server path>"), ("a/b;/opt/y", "a/b;<server path>"), ("'a/b';/opt/y", "'a/b';<server path>"),
    ("a|/opt/y", "a|<server path>"), ("a/b|/opt/y", "a/b|<server path>"), ("a->/opt/y", "a-><server path>"),
    ("a/b->/opt/y", "a/b-><server path>"), ("//opt/x", "<server path>"), ("see //opt/x", "see <server path>"),
    ("x=//opt/x", "x=<server path>"), ("mocov2://opt/w.pth", "mocov2:<server path>"),
)


@pytest.mark.parametrize("said,shown", LEAKED_SERVER_PATHS)
def test_client_messages_hide_a_server_path_after_a_name_semicolon_bar_arrow_or_double_slash(said, shown):
    """A review found server paths shown: after a space that follows an unquoted relative name, after ';', '|' or
    '->', and any starting '//'. What the client gave stays: a quoted name, a route, a web address, a root's name."""
    from app.config import Settings
    from app.messages import ClientMessages

    clean = ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean
    assert clean(said) == shown
    for kept in ("'train/runs;/a.png'", "'train/a|/b.png'", "'a/b->/c.png'", "'x a/b /c.png'", "see a//b",
                 "open http://127.0.0.1:8000/docs", "<data root>/x;<data dir>/y", "GET /api/runs/r1"):
        assert clean(kept) == kept


def test_client_messages_tell_a_names_closing_quote_and_an_apostrophe_from_an_opening_quote():
    """The last quote before a path was taken for the one that opens a quoted name: a name's closing quote after a
    space or "=" (a folder 'x ' or 'x=' the client named) kept the server path after it, and an apostrophe in a name
    quoted by repr ("train/Men's /x.png") hid the rest of the client's own name."""
    from app.config import Settings
    from app.messages import ClientMessages

    clean = ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean
    for said, shown in (("cannot read 'x ': /opt/secret", "cannot read 'x ': <server path>"),
                        ("file 'x=' at /opt/secret", "file 'x=' at <server path>"),
                        ("'x (' /opt/secret", "'x (' <server path>")):
        assert clean(said) == shown
    for kept in (f"{'train/Men' + chr(39) + 's /x.png'!r} = {'test/Men' + chr(39) + 's /x.png'!r}",
                 "(e.g. 'train/Men's /x.png')", "it's 'a/b /c.png'"):
        assert clean(kept) == kept

def test_client_messages_do_not_depend_on_the_servers_file_system():
    """After a space, a path was a server path only where its top folder existed on this server (os.path.lexists):
    a client sending the path 'a /etc/x' was told "'a <server path>'" and for 'a /nothere/x' its words back, so it
    could learn which top folders the server has. Now the text alone decides, whatever exists."""
    from app.config import Settings
    from app.messages import ClientMessages

    clean = ClientMessages(Settings(data_dir="/srv/state", data_root="/srv/data")).clean
    for top in ("etc", "zz-no-such-top-folder"):
        for kept in (f"path 'a /{top}/x' does not exist under the data root", f"'train/Cat /{top}/x.png'"):
            assert clean(kept) == kept
        for said, shown in ((f"cannot open /{top}/x", "cannot open <server path>"),
                            (f"can't open /{top}/x", "can't open <server path>"),
                            (f"'a' /{top}/x", "'a' <server path>"), (f"'/srv/a b/c /{top}/x'", "'<server path> b/c "
                                                                  "<server path>'")):
            assert clean(said) == shown, said


def test_a_failed_jobs_error_keeps_the_archives_own_words_as_it_is_read(service, tmp_path, monkeypatch):
    """An UnsafeArchive's message quotes an absolute member name ('/etc/passwd'), its ``given`` span: the API's
    answer showed it, a job's error said '<server path>' (cleaned without its spans when written, and again when
    read). Kept both times; a server path in the same message is still replaced."""
    import probe
    from feature_cache import UnsafeArchive

    cache_id = _synthetic_cache(service, tmp_path)

    def unsafe(*args, **kwargs):
        raise UnsafeArchive(f"member '/etc/passwd' has an absolute path (in {tmp_path}/a.zip)",
                            given=("'/etc/passwd'",))

    monkeypatch.setattr(probe, "run_probe", unsafe)
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": FAST_PROBE})
    job = wait_job(service, resp.json()["id"])
    expected = "UnsafeArchive: member '/etc/passwd' has an absolute path (in <server path>)"
    assert job["status"] == "failed" and job["error"] == expected, job["error"]
    assert service.get("/api/jobs").json()[0]["error"] == expected
    assert "error_given" not in job["result"]


def test_a_failed_jobs_error_quotes_no_server_path(service, tmp_path, monkeypatch):
    """The job's error field is what a client reads: cleaned like the API's error answers."""
    import probe

    cache_id = _synthetic_cache(service, tmp_path)
    data_dir = service.app.state.settings.data_dir

    def broken(*args, **kwargs):
        raise FileNotFoundError(f"cache file {data_dir}/caches/x.h5 does not exist; nor {tmp_path}/secret/y.h5")

    monkeypatch.setattr(probe, "run_probe", broken)
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": FAST_PROBE})
    job = wait_job(service, resp.json()["id"])
    assert job["status"] == "failed"
    assert job["error"] == ("FileNotFoundError: cache file <data dir>/caches/x.h5 does not exist; nor "
                            "<server path>"), job["error"]


def test_a_jobs_error_and_messages_written_by_an_older_version_are_cleaned_as_read(service):
    """An older version wrote a job's error and messages with the server's paths in them (a data directory
    upgraded showed them in the API and the dashboard; an upgrade round): cleaned when read too."""
    import json

    store, data_dir = service.app.state.store, service.app.state.settings.data_dir
    message = {"at": "2026-11-20T10:00:00.000+00:00",
               "text": f"extracting {data_dir}/caches/ds_x/e/c.h5 from /srv/elsewhere/images"}
    with store._tx() as conn:  # as an older version left it (the worker writes an error cleaned)
        conn.execute("INSERT INTO jobs (id, kind, status, messages, request, error, created_at, updated_at) VALUES "
                     "('job_0123456789ab', 'extract', 'failed', ?, ?, ?, ?, ?)",
                     (json.dumps([message]), json.dumps({"dataset_id": "ds_x"}),
                      "MoCo v2 checkpoint /srv/w/nope.pth does not exist", message["at"], message["at"]))
    for shown in (service.get("/api/jobs/job_0123456789ab").json(), service.get("/api/jobs").json()[0]):
        assert shown["error"] == "MoCo v2 checkpoint <server path> does not exist"
        assert shown["messages"][-1]["text"] == "extracting <data dir>/caches/ds_x/e/c.h5 from <server path>"


@pytest.mark.parametrize("error,retry", [(MemoryError("out of memory"), True), (OSError(28, "No space left"), True),
                                         (ValueError("every candidate diverged"), False),
                                         (FileNotFoundError("cache file gone"), False)])
def test_a_failed_job_says_whether_resuming_it_can_help(service, tmp_path, monkeypatch, error, retry):
    """`retryable`, which the dashboard's Resume button of a failed job reads: true for a failure of the machine,
    false for one of the input (the same request fails again); `resumable` stays true for both (the API allows it)."""
    import probe

    cache_id = _synthetic_cache(service, tmp_path)

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(probe, "run_probe", broken)
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": FAST_PROBE})
    job = wait_job(service, resp.json()["id"])
    assert (job["status"], job["resumable"], job["retryable"]) == ("failed", True, retry)
    monkeypatch.undo()
    service.post(f"/api/jobs/{job['id']}/resume")
    job = wait_job(service, job["id"])
    assert (job["status"], job["resumable"], job["retryable"]) == ("succeeded", False, False)


class _SlowCalls:
    """A stand-in for heavy work: each call takes ``seconds``, then ``then()``; ``peak`` is how many ran at once."""

    def __init__(self, seconds: float, then):
        self.seconds, self.then, self.lock, self.running, self.peak = seconds, then, threading.Lock(), 0, 0

    def __call__(self, *args):
        import time

        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return self.then()


def test_scorings_and_comparisons_run_a_few_at_a_time(service, monkeypatch):
    """A burst of comparisons (each reads and bootstraps whole splits) runs SCORING_SLOTS at a time in threads of
    its own; the rest wait without a thread, and the API keeps answering meanwhile."""
    from fastapi import HTTPException

    import app.routes.reports as reports

    def not_found():
        raise HTTPException(404, "no such run")

    slow = _SlowCalls(0.2, not_found)
    monkeypatch.setattr(reports, "_comparison", slow)
    codes = []

    def ask():
        codes.append(service.get("/api/compare", params={"base": "run_a", "other": "run_b"}).status_code)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    assert service.get("/api/health").status_code == 200
    for t in threads:
        t.join()
    assert codes == [404] * 8 and slow.peak == reports.SCORING_SLOTS == 2


# -- 4. malformed input is a 4xx, never a 500 --------------------------------------------------------------
@pytest.mark.parametrize("content", [
    b"{not json", b'{"path": "\xff\xfe"}', b"[1, 2]", b'{"path": "' + b"a" * 10_000 + b'"}',
    b'{"path": "tiny\\u0000x"}', b'{"path": ' + json.dumps("/" + "b" * 300 + "/c").encode() + b"}",
])
def test_malformed_registrations_are_4xx(service, content):
    resp = service.post("/api/datasets", content=content, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text[:300]
    assert isinstance(resp.json()["detail"], (str, list))


@pytest.mark.parametrize("content,why", [
    (b'{"kind": "probe", "n": ' + b"9" * 5000 + b"}", "Exceeds the limit (4300 digits) for integer string conversion"),
    (b'{"kind": "\xff\xfe"}', "'utf-8' codec can't decode byte 0xff"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
])
def test_a_job_body_json_cannot_read_is_422_naming_why(service, content, why):
    """FastAPI answered these 400 'There was an error parsing the body' (an attack round; /api/datasets named them)."""
    resp = service.post("/api/jobs", content=content, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["detail"].startswith(
        f"the request body is not JSON this service reads: {why}"), resp.text[:300]
    assert "set_int_max_str_digits" not in resp.text


@pytest.mark.parametrize("route,content,key", [
    ("/api/datasets", b'{"path": "one", "path": "two"}', "path"),
    ("/api/jobs", b'{"kind": "extract", "kind": "probe", "cache_id": "c", "dataset_id": "d"}', "kind"),
    ("/api/jobs", b'{"kind": "probe", "cache_id": "c", "config": {"loss": "ce", "loss": "mr2"}}', "loss"),
])
def test_a_json_body_repeating_a_key_is_422_naming_it(service, tmp_path, route, content, key):
    """json.loads kept the last of two values: {"path": "one", "path": "two"} registered 'two' (an attack round)."""
    for name in ("one", "two"):
        unzip(tiny_zip_bytes(2, 1), tmp_path / "root" / name)  # either value would register
    resp = service.post(route, content=content, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json() == {"detail": f"the JSON body gives the key {key!r} twice in one "
                                                       "object: give each key once (which value was meant is not "
                                                       "guessed)"}, resp.text
    assert service.get("/api/datasets").json() == [] and service.get("/api/jobs").json() == []


def test_a_json_body_sent_as_another_content_type_is_422_saying_so(service):
    """A JSON body sent as text/plain got "Input should be a valid dictionary or object" (an attack round)."""
    body = '{"kind": "extract", "dataset_id": "ds_000000000000"}'
    resp = service.post("/api/jobs", content=body, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 422 and resp.json()["detail"] == [{
        "loc": ["body"], "type": "model_attributes_type",
        "msg": "the body must be JSON sent as Content-Type: application/json; this request sent Content-Type "
               "'text/plain'"}], resp.text
    assert service.get("/api/jobs").json() == []


def test_a_json_body_sent_without_a_content_type_is_422_saying_so(service, tmp_path):
    """FastAPI reads a body without Content-Type as no JSON (Python's requests with data=, curl --data-binary without
    -H): POST /api/jobs and PATCH /api/runs/{id} said "Input should be a valid dictionary or object" (an attack
    round)."""
    said = "the body must be JSON sent as Content-Type: application/json; this request sent no Content-Type"
    cache_id = _synthetic_cache(service, tmp_path)
    body = json.dumps({"kind": "probe", "cache_id": cache_id})
    resp = service.post("/api/jobs", content=body)
    assert "content-type" not in resp.request.headers
    assert resp.status_code == 422 and resp.json()["detail"] == [
        {"loc": ["body"], "type": "model_attributes_type", "msg": said}], resp.text
    resp = service.patch("/api/runs/run_000000000000", content=json.dumps({"name": "x"}))
    assert resp.status_code == 422 and resp.json()["detail"][0]["msg"] == said, resp.text
    assert service.get("/api/jobs").json() == []


def test_a_note_too_long_is_said_in_characters(service):
    """A run's note over MAX_NOTE was 'Value should have at most 2000 items after validation' (an attack round), then
    pydantic's 'String should have at most 2000 characters' (app.field_errors); its Windows line breaks still count
    as one character each."""
    from app.schemas import MAX_NOTE, RunUpdate

    resp = service.patch("/api/runs/run_000000000000", json={"note": "x" * (MAX_NOTE + 1)})
    assert resp.status_code == 422 and resp.json()["detail"] == [
        {"loc": ["body", "note"], "type": "string_too_long",
         "msg": f"note must be at most {MAX_NOTE} characters, got {MAX_NOTE + 1}."}], resp.text
    assert RunUpdate(note="a\r\n" * (MAX_NOTE // 2)).note == "a\n" * (MAX_NOTE // 2)


def test_nan_in_a_probe_grid_is_422(service, tmp_path):
    cache_id = _synthetic_cache(service, tmp_path)
    body = '{"kind": "probe", "cache_id": "%s", "config": {"lr_grid": [NaN]}}' % cache_id
    resp = service.post("/api/jobs", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and "lr_grid" in _detail(resp)
    assert service.get("/api/jobs").json() == []


# -- 5. size limits on JSON bodies and form fields ------------------------------------------------------------
def test_json_bodies_are_limited_before_parsing(tmp_path):
    settings = make_settings(tmp_path, max_json_bytes=10_000)
    huge = json.dumps({"kind": "extract", "dataset_id": "ds_x", "encoder": "e" * 20_000})
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/jobs", content=huge, headers={"Content-Type": "application/json"})
        assert resp.status_code == 413 and "MR2PROBE_MAX_JSON_BYTES" in resp.json()["detail"]

        def chunks():  # no Content-Length: counted while reading
            for i in range(0, len(huge), 1000):
                yield huge[i:i + 1000].encode()

        resp = client.post("/api/jobs", content=chunks(), headers={"Content-Type": "application/json"})
        assert resp.status_code == 413
        resp = client.post("/api/datasets", content=huge, headers={"Content-Type": "application/json"})
        assert resp.status_code == 413
        assert client.get("/api/jobs").json() == []
    assert Settings().max_json_bytes == 1024**2


def test_only_the_upload_streams_a_multipart_body_past_the_limit(tmp_path):
    """A multipart body is no way around the limit: any route but the data set upload answers 413 for one over
    it, with or without a Content-Length; the upload still takes an archive larger than the limit."""
    settings = make_settings(tmp_path, max_json_bytes=10_000)
    form = {"Content-Type": "multipart/form-data; boundary=x"}
    with TestClient(create_app(settings)) as client:
        for path in ("/api/jobs", "/api/jobs/job_x/cancel", "/api/runs"):
            resp = client.post(path, content=b"\0" * 50_000, headers=form)
            assert resp.status_code == 413 and "MR2PROBE_MAX_JSON_BYTES" in resp.json()["detail"], path
            resp = client.post(path, content=(b"\0" * 1000 for _ in range(50)), headers=form)
            assert resp.status_code == 413, path
        archive = tiny_zip_bytes(6, 3)
        assert len(archive) > 10_000
        assert client.post("/api/datasets", files={"file": ("t.zip", archive)}).status_code == 201
        # media types are case-insensitive: a client that capitalises one was held to the JSON limit (a review)
        request = client.build_request("POST", "/api/datasets", files={"file": ("u.zip", tiny_zip_bytes(7, 3))},
                                       data={"name": "capitalised"})
        sent = request.headers["content-type"].replace("multipart/form-data", "Multipart/Form-Data")
        assert sent.startswith("Multipart/Form-Data; boundary=")
        resp = client.post("/api/datasets", content=request.read(), headers={"Content-Type": sent})
        assert resp.status_code == 201, resp.text


def test_a_20mb_encoder_is_refused_and_jobs_stay_small(service):
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "encoder": "x" * 20_000_000})
    assert resp.status_code == 413
    assert service.get("/api/jobs").json() == [] and len(service.get("/api/jobs").content) < 100


def test_head_is_answered_like_get_without_a_body_and_ids_are_bounded(service):
    for path in ("/", "/api/health", "/api/runs", "/static/app.js"):
        got, head = service.get(path), service.head(path)
        assert head.status_code == got.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"]
    assert service.head("/api/runs/run_missing").status_code == 404
    long = "r" * 65  # every id in a path or query is at most 64 characters: 422, not a 404 echoing it
    for path in (f"/api/runs/{long}", f"/api/reports/{long}", f"/api/reports/{long}.csv", f"/api/reports/{long}.md",
                 f"/api/compare?base={long}&other=x"):
        resp = service.get(path)
        assert resp.status_code == 422 and long not in resp.text, path


def test_ids_in_paths_take_the_ids_character_set(service):
    """An id in a path is what the service makes (README's bounds: ``[A-Za-z0-9_.-]``): anything else is a 422
    naming the path parameter, and the OpenAPI schema publishes the pattern so that clients can check it first."""
    for odd in ("run%20x", "run%3Bx", "r%C3%A9sum%C3%A9", "run%00"):
        for route in ("/api/runs/", "/api/jobs/", "/api/caches/", "/api/datasets/", "/api/reports/"):
            resp = service.get(route + odd)
            assert resp.status_code == 422, (route, odd, resp.status_code)
            assert resp.json()["detail"][0]["loc"][0] == "path", (route, odd)
    assert service.get("/api/runs/run_missing.1-x").status_code == 404  # the set's own characters: looked up
    params = [p for item in service.get("/openapi.json").json()["paths"].values() for op in item.values()
              for p in op.get("parameters", []) if p["in"] == "path"]
    assert params and all(p["schema"]["pattern"] == ID_PATTERN for p in params if p["name"].endswith("_id"))


def test_an_archive_under_another_field_name_is_named(service):
    resp = service.post("/api/datasets", files={"notfile": ("t.zip", tiny_zip_bytes(2, 1))})
    assert resp.status_code == 422
    assert resp.json()["detail"] == "the archive goes in a form part named 'file'; got a file in 'notfile'"
    assert not any(service.app.state.settings.uploads_dir.glob("*/*"))


def test_a_file_part_without_a_filename_and_a_unicode_file_name(service):
    """A 'file' part without a filename read as a text field 'longer than 4096 bytes'; a default name kept only
    ASCII ('ünï€😀.zip' was '_n_.zip'). An attack round."""
    resp = service.post("/api/datasets", files={"file": (None, tiny_zip_bytes(2, 1), "application/zip")})
    assert resp.status_code == 422 and resp.json()["detail"].startswith(
        "the 'file' part has no filename, so it is not a file upload: send the archive as a file")
    resp = service.post("/api/datasets", files={"file": ("ünï€😀.zip", tiny_zip_bytes(2, 1), "application/zip")})
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "ünï_.zip"


def test_a_file_part_named_by_filename_star_alone_is_a_file_upload(service):
    """A part whose Content-Disposition gives only the RFC 5987 ``filename*=`` (as some HTTP clients write a
    non-ASCII name) was said to have no filename (an extremes round); an unknown charset is named."""
    def upload(disposition: str):
        body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; " + disposition.encode() +
                b"\r\nContent-Type: application/zip\r\n\r\n" + tiny_zip_bytes(2, 1) + b"\r\n--b--\r\n")
        return service.post("/api/datasets", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})

    resp = upload("filename*=UTF-8''caf%C3%A9%20%F0%9F%98%80.zip")
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "café_.zip"
    resp = upload("filename*=koi9-r''x.zip")
    assert resp.status_code == 422
    assert resp.json()["detail"] == ("the file name's filename* gives charset 'koi9-r', which this service cannot "
                                         "decode; use UTF-8")


def test_a_filename_star_charset_that_cannot_decode_it_is_a_422(service):
    """Python's 'idna' codec decodes with errors='strict' alone and 'undefined' never: filename*=idna''x.zip raised
    UnicodeError, a 500 "internal server error (UnicodeError)"; now the charset is named, as an unknown one is."""
    for charset in ("idna", "undefined"):
        body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename*=" + charset.encode() +
                b"''x.zip\r\nContent-Type: application/zip\r\n\r\n" + tiny_zip_bytes(2, 1) + b"\r\n--b--\r\n")
        resp = service.post("/api/datasets", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"] == (f"the file name's filename* gives charset {charset!r}, which this service "
                                         "cannot decode; use UTF-8")


def test_upload_name_field_is_checked_not_truncated(service):
    archive = tiny_zip_bytes(2, 1)
    # text-direction, separator and zero-width characters and blank names too, as in class names (an attack round)
    for name in ("n" * 201, "n" * 5000, "bad\x01name", "csi\x9b31mred", "del\x7f", "evil\u202egnp.exe",
                 "x\u2028y", "zero\u200bwidth", "   "):
        resp = service.post("/api/datasets", files={"file": ("t.zip", archive)}, data={"name": name})
        assert resp.status_code == 422 and "name" in _detail(resp), resp.text[:200]

    unzip(archive, service.app.state.settings.data_root / "named")
    for name in ("evil\u202egnp.exe", "   "):
        resp = service.post("/api/datasets", json={"path": "named", "name": name})
        assert resp.status_code == 422 and "name" in _detail(resp), resp.text[:200]
    assert service.get("/api/datasets").json() == []
    assert not any(service.app.state.settings.uploads_dir.glob("*/*"))
    for twice in ({"name": ["a", "b"]}, {"unlabelled": ["true", "false"]}):  # the last one won silently
        resp = service.post("/api/datasets", files={"file": ("t.zip", archive)}, data=twice)
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"] == f"form field {next(iter(twice))!r} is given twice; send it once"
    resp = service.post("/api/datasets", files={"file": ("t.zip", archive)}, data={"name": "n" * 200})
    assert resp.status_code == 201 and resp.json()["name"] == "n" * 200


# -- 6. one complete validation at submission -----------------------------------------------------------------
@pytest.mark.parametrize("field,value,fragment", [
    ("encoder", "clip-b32", "Unknown encoder 'clip-b32'"),
    ("encoder", "mocov2:nowhere/moco_v2.pth.tar", "weights path 'nowhere/moco_v2.pth.tar' does not exist under"),
    ("encoder", "openclip:ViT-B-32:w.pt", "weights path 'w.pt' does not exist under the data root"),
    ("encoder", "openclip:NoSuchArch", "Unknown open_clip architecture 'NoSuchArch'"),
    ("encoder", "effnet-lite0:extra", "takes no ':' argument"),
    # a name the system cannot look up as a file (too long) was a 500, and came back whole in each refusal
    ("encoder", "openclip:ViT-B-32:" + "a" * 300, f"openclip:ViT-B-32: {'a' * 60!r}… (300 characters) is neither"),
    ("encoder", "openclip:" + "A" * 1000, f"architecture {'A' * 60!r}… (1,000 characters); e.g. "),
    ("encoder", "openclip:ViT-B-32:~nosuchuser", "'~nosuchuser' is neither"),  # a RuntimeError in expanduser: a 500
])
def test_unusable_encoders_are_422_at_submission(service, field, value, fragment):
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    for kind in ("extract", "pipeline"):
        body = {"kind": kind, "dataset_id": ds["id"], field: value}
        if kind == "pipeline":
            body["probes"] = [ERM]
        resp = service.post("/api/jobs", json=body)
        assert resp.status_code == 422 and resp.json()["detail"].startswith(f"{field}: ")
        assert fragment in resp.json()["detail"] and len(resp.json()["detail"]) < 2000
    assert service.get("/api/jobs").json() == []


def test_encoder_weights_must_lie_under_the_data_root(service, tmp_path):
    """A checkpoint named by path is read by the job: outside the data root it is a 403 whether the file exists
    or not (nothing to learn about the server's files); under it the job gets its resolved path, once its state
    dict fits."""
    import torch

    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    outside = write_mocov2_checkpoint(tmp_path / "elsewhere.pth")
    for encoder in (f"mocov2:{outside}", "mocov2:/etc/passwd", "mocov2:/nowhere/x.pth", "mocov2:../elsewhere.pth",
                    f"openclip:ViT-B-32:{outside}"):
        resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "encoder": encoder})
        assert resp.status_code == 403 and resp.json()["detail"].startswith("encoder weights: path"), resp.text
        assert "outside the data root" in resp.json()["detail"]
    wrong = tmp_path / "root" / "wrong.pth"  # a job failed on it, as retryable (found by the fourth attack round)
    torch.save({"state_dict": {"module.encoder_q.conv1.weight": torch.zeros(2)}}, wrong)
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "encoder": "mocov2:wrong.pth"})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("encoder: "), resp.text
    assert "MoCo v2 state dict does not fit torchvision resnet50: size mismatch for conv1.weight" in resp.text
    inside = tmp_path / "root" / "moco.pth"
    inside.write_bytes(outside.read_bytes())
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "encoder": "mocov2:moco.pth"})
    assert resp.status_code == 202, resp.text
    job = service.get(f"/api/jobs/{resp.json()['id']}").json()
    assert service.app.state.store.get_job(job["id"])["request"]["encoder"] == f"mocov2:{inside.resolve()}"
    assert job["request"]["encoder"] == "mocov2:<data root>/moco.pth"  # as a client reads it
    service.delete(f"/api/jobs/{job['id']}")


def test_extraction_batch_sizes_take_the_library_bound(service):
    from app.config import Settings
    from app.schemas import ExtractOptions
    from feature_cache.extract import MAX_BATCH_SIZE

    def upper(field):
        return next(m.le for m in field.metadata if hasattr(m, "le"))

    assert upper(ExtractOptions.model_fields["batch_size"]) == upper(Settings.model_fields["extract_batch_size"]) \
        == MAX_BATCH_SIZE
    from feature_cache.extract import MAX_WORKERS

    assert upper(Settings.model_fields["extract_workers"]) == MAX_WORKERS
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    for size in (0, MAX_BATCH_SIZE + 1):
        resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"],
                                               "options": {"batch_size": size}})
        assert resp.status_code == 422 and "batch_size" in resp.text
    assert service.get("/api/jobs").json() == []


def test_probe_configs_are_checked_against_host_and_cache(service, tmp_path):
    import torch

    cache_id = _synthetic_cache(service, tmp_path)
    missing_gpu = f"cuda:{torch.cuda.device_count()}"
    cases = [
        ({"device": missing_gpu}, "config.device", "does not exist on this host"),
        ({"adapter": "lowrank", "adapter_rank": 4096}, "config.adapter_rank", "must be in [1, 8]"),
        ({"adapter": "mlp", "adapter_rank": 9}, "config.adapter_rank", "must be in [1, 8]"),
    ]
    for config, field, fragment in cases:
        resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": config})
        assert resp.status_code == 422 and resp.json()["detail"].startswith(field) and fragment in _detail(resp)
    # Above the request bound (probe.params.MAX_ADAPTER_RANK) the schema itself refuses the rank, naming it.
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id,
                                           "config": {"adapter": "lowrank", "adapter_rank": 1_000_000_000}})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"][-1] == "adapter_rank"
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    resp = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"],
                                           "probes": [ERM, dict(ERM, device=missing_gpu)]})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("probes[1].device")
    # The cache's default head decides the config: a loss that needs the cosine head fails at submission.
    cosine_only = next(name for name, spec in __import__("probe").LOSSES.items() if spec.input == "cosine")
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": {"loss": cosine_only}})
    assert resp.status_code == 422 and "head='cosine'" in _detail(resp)
    assert service.get("/api/jobs").json() == []
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": {"adapter": "lowrank",
                                                                                         "adapter_rank": 8}})
    assert resp.status_code == 202
    stored = service.get(f"/api/jobs/{resp.json()['id']}").json()["request"]["config"]
    assert stored["adapter_rank"] == 8 and stored["head"] == "linear" and stored["optimizer"] == "adam"
    assert stored["lr_grid"] is None  # the optimiser's default grid, resolved with the training-set size by the run


def test_a_cache_without_default_head_is_422_naming_it(service, tmp_path):
    cache_id = _synthetic_cache(service, tmp_path, attrs={"default_head": None})
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id})
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("cache_id: ") and "root attribute 'default_head'" in resp.json()["detail"]


# -- 7. tokens, hosts, origins, sweeping, server paths -----------------------------------------------------------
@pytest.mark.parametrize("token", [" ", "\t\n", "   "])
def test_blank_tokens_are_no_tokens(monkeypatch, tmp_path, capsys, token):
    from app.cli import main

    assert Settings(api_token=token).token is None
    assert Settings(api_token=" s3cret \n").token == "s3cret"
    monkeypatch.delenv("MR2PROBE_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1", "--data-dir", str(tmp_path), "--token", token]) == 2
    assert "refusing to listen on '0.0.0.0' without an API token" in capsys.readouterr().err


def test_host_header_must_be_trusted(tmp_path):
    settings = Settings(data_dir=tmp_path, device="cpu")
    assert settings.trusted_hosts == ["localhost", "127.0.0.1", "[::1]"]
    assert Settings(host="::1", allowed_hosts="a.example, *.b.example").trusted_hosts == [
        "localhost", "127.0.0.1", "[::1]", "a.example", "*.b.example"]
    with pytest.raises(ValueError, match="allowed host patterns"):
        Settings(allowed_hosts="a*b")
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/health", headers={"Host": "localhost:8000"}).status_code == 200
        assert client.get("/api/health", headers={"Host": "[::1]:8000"}).status_code == 200
        for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example", "www.localhost"):
            resp = client.get("/api/jobs", headers={"Host": host})
            assert resp.status_code == 400 and resp.headers["content-type"] == "application/json", host
            assert resp.json()["detail"].startswith(f"Host header {host!r} is not a host this server answers to")
            assert "MR2PROBE_ALLOWED_HOSTS" in resp.json()["detail"]
    with TestClient(create_app(Settings(data_dir=tmp_path / "b", allowed_hosts="*")),
                    base_url="http://anything.example") as client:
        assert client.get("/api/health").status_code == 200


def test_cross_origin_state_changes_are_refused(service):
    archive = tiny_zip_bytes(2, 1)
    for headers in ({"Origin": "http://attacker.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        resp = service.post("/api/datasets", files={"file": ("t.zip", archive)}, headers=headers)
        assert resp.status_code == 403 and "cross-origin" in resp.json()["detail"], headers
        assert service.delete("/api/jobs/job_x", headers=headers).status_code == 403
    assert service.get("/api/datasets").json() == []
    assert service.get("/api/jobs", headers={"Origin": "http://attacker.example"}).status_code == 200  # reads
    resp = service.post("/api/datasets", files={"file": ("t.zip", archive)},
                        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert resp.status_code == 201


def test_startup_sweeps_orphans_and_keeps_resumable_work(tmp_path, caplog):
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        ds = client.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
        store = client.app.state.store
    orphan = settings.uploads_dir / "ds_orphan0000"
    orphan.mkdir(parents=True)
    (orphan / "half.zip").write_bytes(b"PK")
    # an orphan that is a link: the link goes, never what it points to (it was left and logged as removed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.zip").write_bytes(b"PK")
    (settings.uploads_dir / "ds_linked00000").symlink_to(elsewhere, target_is_directory=True)
    cache_dir = settings.caches_dir / ds["id"] / "effnet-lite0"
    cache_dir.mkdir(parents=True)
    kept, dead = cache_dir / "kept.h5", cache_dir / "dead.h5"
    for final in (kept, dead):
        final.with_name(final.name + ".partial").write_bytes(b"half")
        final.with_name(final.name + ".lock").write_text("pid 1")
    # a cache file being written at its temporary name by a process killed since (pid 999999: none), and one whose
    # writer still runs (this process)
    dead_tmp, live_tmp = cache_dir / ".done.h5.999999.tmp", cache_dir / f".live.h5.{os.getpid()}.tmp"
    for tmp in (dead_tmp, live_tmp):
        tmp.write_bytes(b"HDF")
    job = store.claim(store.add_job("extract", {"dataset_id": ds["id"], "encoder": "effnet-lite0", "options": {}})["id"])
    store.update_result(job["id"], extraction=str(kept))  # a job killed mid-extraction: running → interrupted
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "interrupted"
    assert not orphan.exists() and (settings.uploads_dir / ds["id"]).is_dir()
    assert not (settings.uploads_dir / "ds_linked00000").is_symlink() and (elsewhere / "keep.zip").is_file()
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(["kept.h5.lock", "kept.h5.partial", live_tmp.name])
    assert f"removed {dead_tmp}: a cache file its writer did not finish" in caplog.text
    assert f"removed upload {orphan}" in caplog.text and str(dead) in caplog.text


def test_the_sweep_keeps_the_partial_file_of_an_older_versions_job_that_did_not_record_it(tmp_path, caplog):
    """A job an older version ran (no ``extraction`` in its result), killed mid-extraction: the sweep removed its
    partial file "no resumable job extracts it", and resumed it began again (an upgrade round). Its data set's
    partial files are kept; another data set's are not."""
    from app.status import JobStatus

    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        ds = client.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
        failed = client.post("/api/datasets", files={"file": ("u.zip", tiny_zip_bytes(3, 1))}).json()
        store = client.app.state.store
    ours, theirs, other = (settings.caches_dir / name / "effnet-lite0" / "c.h5"
                           for name in (ds["id"], failed["id"], "ds_000000000000"))
    for final in (ours, theirs, other):
        final.parent.mkdir(parents=True)
        final.with_name(final.name + ".partial").write_bytes(b"half")
    store.claim(store.add_job("extract", {"dataset_id": ds["id"], "encoder": "effnet-lite0", "options": {}})["id"])
    # a job of this version that failed before it recorded its file never wrote one: nothing kept for it (a review)
    job = store.claim(store.add_job("extract", {"dataset_id": failed["id"], "encoder": "effnet-lite0"})["id"])
    store.finish(job["id"], JobStatus.failed, error="FileNotFoundError: no weights", stage="failed")
    with TestClient(create_app(settings)):
        pass
    assert ours.with_name("c.h5.partial").is_file() and not other.with_name("c.h5.partial").exists()
    assert not theirs.with_name("c.h5.partial").exists()
    assert f"kept the partial file of {ours}: a job of its data set that has not recorded its file" in caplog.text


def test_client_messages_hide_server_paths(tmp_path):
    root = tmp_path / "secret-root"
    (root / "one").mkdir(parents=True)
    (root / "one" / "a").mkdir()
    settings = make_settings(tmp_path / "state-dir", data_root=root)
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/datasets", json={"path": str(tmp_path)})
        assert resp.status_code == 403 and "outside the data root" in resp.json()["detail"]
        resp = client.post("/api/datasets", json={"path": "one"})
        assert resp.status_code == 422
        resp2 = client.post("/api/datasets", files={"file": ("one.zip", tiny_zip_bytes(2, 1, classes=("a",)))})
        assert resp2.status_code == 422
        for r in (resp, resp2):
            assert str(root) not in r.text and str(settings.data_dir) not in r.text and str(tmp_path) not in r.text
        assert "<data" in resp.text or "<server path>" in resp.text, resp.text
        # an upload's refusal names the file as uploaded, not the server's copy of it (a new-user round)
        assert resp2.json()["detail"].startswith("one.zip: found 1 class folder(s) (a)"), resp2.text


# -- the shared edge ----------------------------------------------------------------------------------------------
def test_error_table_maps_every_library_error(service):
    from app.main import _error_table
    from feature_cache import CacheMismatch, DatasetError, UnsafeArchive

    table = _error_table()
    assert {kind: status for kind, (status, _) in table.items() if kind in (DatasetError, UnsafeArchive,
                                                                              CacheMismatch)} == {
        DatasetError: 422, UnsafeArchive: 400, CacheMismatch: 422}
    import app.routes.datasets as routes

    assert "HTTPException" not in open(routes.__file__).read()


def test_concurrent_submissions_are_all_validated(service, tmp_path):
    cache_id = _synthetic_cache(service, tmp_path)
    codes = []

    def submit(config):
        codes.append(service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": config}).status_code)

    threads = [threading.Thread(target=submit, args=({"device": "cuda:99"},)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [422] * 4 and service.get("/api/jobs").json() == []


def test_a_request_stored_before_resolution_still_gets_the_cache_head(service, tmp_path, monkeypatch):
    """Jobs queued by an older version stored only the fields the client set; resuming them keeps their meaning."""
    import probe

    from app.jobs import JobContext
    from app.steps import probe_step

    store = service.app.state.store
    cache_id = synthetic_cache(store, tmp_path, {"default_head": "cosine", "normalized": True})["id"]
    seen = []
    monkeypatch.setattr(probe, "run_probe", lambda data, names, cfg, **kw: seen.append(cfg) or _report_without_numbers())
    ctx = JobContext(job=store.claim(store.add_job("probe", {})["id"]), store=store, settings=service.app.state.settings)
    probe_step(ctx, cache_id, dict(FAST_PROBE), None)
    ctx.record(pending_run=None)
    probe_step(ctx, cache_id, probe.ProbeConfig(**FAST_PROBE).model_dump(mode="json"), None)
    assert [cfg.head for cfg in seen] == ["cosine", "linear"]  # stored complete configs run as stored


def test_a_fifo_under_the_data_root_is_refused_as_a_data_set_or_weights_file(service, tmp_path):
    """Reading a FIFO blocks (or an archive reader fails on it with a 500): neither a file nor a folder is a 422
    before anything opens it."""
    import os

    os.mkfifo(tmp_path / "root" / "fifo.zip")
    resp = service.post("/api/datasets", json={"path": "fifo.zip"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"] == "path 'fifo.zip' is neither a file nor a folder (a FIFO, socket or device)"
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "encoder": "mocov2:fifo.zip"})
    assert resp.status_code in (403, 422) and "neither a file nor a folder" in resp.json()["detail"], resp.text


@pytest.mark.parametrize("config, field, message", [
    ({"loss": "logit_adjust", "loss_options": {"priors": [0.5, 0.5]}}, "config.loss_options",
     "loss_options.priors has 2 entries but the data has 3 classes"),
    ({"loss": "logit_adjust", "loss_options": {"priors": [0, 0, 0]}}, "config.loss_options",
     "priors must be a 1-D array of non-negative frequencies that sum to more than 0, got [0.0, 0.0, 0.0]."),
    ({"loss": "mr2_valerr", "loss_options": {"val_error": [0.1]}}, "config.loss_options",
     "loss_options.val_error has 1 entries but the data has 3 classes"),
    ({"loss": "mr2_valerr"}, "config.loss_options",
     "loss 'mr2_valerr' needs the per-class validation error of a reference (ERM) run"),
])
def test_loss_options_that_cannot_fit_the_cache_are_refused_before_a_job_exists(service, tmp_path, config, field,
                                                                                 message):
    cache_id = _synthetic_cache(service, tmp_path)
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache_id, "config": {**config, "cv": 0}})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith(f"{field}: {message}"), resp.text
    assert service.get("/api/jobs").json() == []


def test_a_pipelines_later_probes_take_the_first_as_their_reference(service):
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    first = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"],
                                            "probes": [{"loss": "mr2_valerr"}]})
    assert first.status_code == 422 and first.json()["detail"].startswith("probes[0].loss_options: loss 'mr2_valerr'")
    later = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"],
                                            "probes": [{"loss": "ce"}, {"loss": "mr2_valerr"}]})
    assert later.status_code == 202, later.text


def test_split_options_that_empty_a_class_are_refused_before_a_job_exists(service):
    """A data set without split folders is split by the product: a cap of 1 image per class leaves each class one
    image, in train or in test, never both, and no validation image: a probe would refuse its cache (as
    `mr2probe extract --max-per-class 1` is refused); the request is refused now, naming the least cap that works."""
    import io
    import zipfile

    flat = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(tiny_zip_bytes(3, 2))) as src, zipfile.ZipFile(flat, "w") as dst:
        for info in src.infolist():
            if not info.is_dir():  # tiny/<split>/<class>/<file> -> tiny/<class>/<split>_<file>
                root, split, cls, name = info.filename.split("/")
                dst.writestr(f"{root}/{cls}/{split}_{name}", src.read(info))
    ds = service.post("/api/datasets", files={"file": ("flat.zip", flat.getvalue())}).json()
    for kind, extra in (("extract", {}), ("pipeline", {"probes": [{"loss": "ce"}]})):
        resp = service.post("/api/jobs", json={"kind": kind, "dataset_id": ds["id"],
                                               "options": {"max_per_class": 1}, **extra})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"].startswith("options: "), resp.text
        assert "max_per_class 1 leaves no validation image" in resp.json()["detail"]
    assert service.get("/api/jobs").json() == []
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "options": {"max_per_class": 3}})
    assert resp.status_code == 202, resp.text


def test_a_class_without_images_is_named_with_the_split_to_add_them_to():
    """The advice names the split folder the classes lack (it said test/ to a class without train images)."""
    from app.datasets import classes_without_message

    no_train = classes_without_message({"train": [2, 0], "val": [1, 0], "test": [1, 1]}, ["cat", "dog"])
    assert no_train == ("class 'dog' has no train or no test image once split (images per class: 'dog' train 0, "
                        "val 0, test 1); a probe is trained and scored on every class: add images (a class folder "
                        "under train/, or at least 2 images in a data set without splits), or leave it out of the "
                        'job with "drop_classes": ["dog"]')
    warned = classes_without_message({"train": [2, 0], "val": [1, 0], "test": [1, 1]}, ["cat", "dog"], False)
    assert warned.endswith('every train job on it must leave it out with "drop_classes": ["dog"] (the launch '
                           "form's \"Leave out classes\") (or add images (a class folder under train/, or at least 2 "
                           "images in a data set without splits); extracting keeps it)")
    both = classes_without_message({"train": [2, 0, 3], "test": [1, 1, 0]}, ["cat", "dog", "eel"])
    assert "classes 'dog', 'eel' have" in both and "(a class folder under train/ or test/, or" in both
    assert classes_without_message({"train": [2, 1], "test": [1, 1]}, ["cat", "dog"]) is None


def test_a_cache_without_its_layout_is_told_where_to_add_images_with_one_pronoun_a_class():
    """A cache recorded before its layout read "add test images of them to the data set it was extracted from, or
    leave it out" for one class: two pronouns for it, and an "it" the message never named."""
    from app.datasets import UNKNOWN_LAYOUT, classes_without_message

    one = classes_without_message({"train": [2, 2], "test": [1, 0]}, ["cat", "dog"], layout=UNKNOWN_LAYOUT)
    assert one.endswith('add test images of it to the data set the cache was extracted from, or leave it out of the '
                        'job with "drop_classes": ["dog"]'), one
    two = classes_without_message({"train": [2, 0, 2], "test": [1, 1, 0]}, ["cat", "dog", "eel"], layout=UNKNOWN_LAYOUT)
    assert "add train or test images of them to the data set the cache was extracted from, or leave them out" in two


def test_a_job_leaving_classes_out_of_a_manifest_pair_is_told_to_add_rows_not_class_folders():
    """kept_problem (the extraction step's check of the classes a pipeline keeps) had no layout to pass on: a
    manifest pair whose kept class lost its test rows since the request was told to add a class folder under test/,
    which a pair has none of. It takes the data set's layout, as classes_without_message does."""
    from app.datasets import kept_problem

    counts = {"train": [2, 2, 2], "val": [1, 1, 1], "test": [1, 1, 0]}
    said = kept_problem(counts, ["ant", "bee", "cat"], ["ant"], "manifest-pair")
    assert "class 'cat' has no train or no test image" in said and "add their rows to test.csv, or leave it" in said
    assert "a class folder under test/" in kept_problem(counts, ["ant", "bee", "cat"], ["ant"], "split-folders")
    assert kept_problem(counts, ["ant", "bee", "cat"], ["cat"], "manifest-pair") is None


def test_a_weights_file_that_is_no_checkpoint_is_refused_before_a_job_exists(service, tmp_path):
    (tmp_path / "root" / "notes.csv").write_text("a,b\n1,2\n")
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "encoder": "mocov2:notes.csv"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith("encoder: <data root>/notes.csv is not a MoCo v2 checkpoint")
    assert service.get("/api/jobs").json() == []


def test_thumbnails_are_decoded_a_few_at_a_time(service, monkeypatch):
    """A burst of thumbnail requests (a page of failures, or an attack) decodes at most THUMBNAIL_SLOTS images at
    once: each can take hundreds of MB; the rest wait without holding a thread."""
    from concurrent.futures import ThreadPoolExecutor

    from app.routes import datasets as routes

    slow_png = _SlowCalls(0.15, lambda: b"png")
    monkeypatch.setattr(routes, "_thumbnail_png", slow_png)
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda i: service.get(f"/api/datasets/{ds['id']}/thumbnail",
                                                    params={"source": f"x{i}.png"}).status_code, range(12)))
    assert codes == [200] * 12 and slow_png.peak == routes.THUMBNAIL_SLOTS == 4


def test_a_data_set_is_indexed_once_for_a_burst_of_its_first_thumbnails(service, monkeypatch):
    """A scale round: six thumbnails of a 28,000-image folder after a restart each indexed it (24 s each, 6 s for
    one): the first request indexes it, the others wait for that index."""
    from concurrent.futures import ThreadPoolExecutor

    from app.routes import datasets as routes

    routes._thumbnailer.cache_clear()
    built = []
    real = routes._thumbnailer.__wrapped__

    def slow(*key):
        built.append(key)
        time.sleep(0.3)
        return real(*key)

    monkeypatch.setattr(routes, "_thumbnailer", functools.lru_cache(maxsize=4)(slow))
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    with zipfile.ZipFile(service.app.state.store.get_dataset(ds["id"])["path"]) as archive:
        sources = [name for name in archive.namelist() if not name.endswith("/")]
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda source: service.get(f"/api/datasets/{ds['id']}/thumbnail",
                                                         params={"source": source}).status_code, sources[:6]))
    assert len(codes) == 6 and codes == [200] * 6 and len(built) == 1 and routes._INDEXING == {}


def test_a_data_set_that_no_longer_opens_is_listed_once_for_its_thumbnails(service, monkeypatch):
    """A folder that no longer reads as a data set (a class folder emptied since its registration): every tile of a
    failure gallery listed the whole folder again to fail alike. Its error is kept for the same modification time:
    each thumbnail is the same 422, the folder listed once."""
    from app.routes import datasets as routes
    from feature_cache import DatasetError

    routes._thumbnailer.cache_clear()
    opened = []

    def broken(*args, **kwargs):
        opened.append(args)
        raise DatasetError("<data root>/x: class folder(s) 'cat' (in 'train') contain no images")

    monkeypatch.setattr(routes, "open_registered", broken)
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    answers = [service.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": f"x{i}.png"}) for i in range(3)]
    assert [a.status_code for a in answers] == [422] * 3 and len(opened) == 1
    assert all("contain no images" in a.json()["detail"] for a in answers)
    routes._thumbnailer.cache_clear()


def test_a_file_added_inside_a_class_folder_has_its_thumbnail_after_one_re_index(service, tmp_path, monkeypatch):
    """The thumbnail index is keyed by the data set's top folder's modification time, which a file added inside a
    class folder leaves as it was: its thumbnail was a 404 until the top folder changed (a review). A source that
    is a file added after the index indexes the data set again, once: a file it still does not list is not indexed
    for at every request."""
    import shutil

    from app.routes import datasets as routes

    routes._thumbnailer.cache_clear()
    opened = []
    real = routes.open_registered
    monkeypatch.setattr(routes, "open_registered", lambda *a, **kw: opened.append(a) or real(*a, **kw))
    unzip(tiny_zip_bytes(2, 1), tmp_path / "root")
    ds = service.post("/api/datasets", json={"path": "tiny"}).json()
    folder = tmp_path / "root" / "tiny" / "train" / "cat"
    first = sorted(p.name for p in folder.iterdir())[0]
    thumb = f"/api/datasets/{ds['id']}/thumbnail"
    assert service.get(thumb, params={"source": f"train/cat/{first}"}).status_code == 200 and len(opened) == 1
    top = os.stat(tmp_path / "root" / "tiny").st_mtime_ns
    shutil.copy(folder / first, folder / f"added{Path(first).suffix}")
    assert os.stat(tmp_path / "root" / "tiny").st_mtime_ns == top  # the index's key did not change
    assert service.get(thumb, params={"source": f"train/cat/added{Path(first).suffix}"}).status_code == 200
    assert len(opened) == 2
    (folder / "notes.txt").write_text("not an image")
    for _ in range(3):  # added, then listed by no index: the one it made does not list it either, and is kept
        assert service.get(thumb, params={"source": "train/cat/notes.txt"}).status_code == 404
    assert len(opened) == 3
    for source in ("train/cat/nothing.png", "../tiny/train/cat/notes.txt", "/etc/hostname"):
        assert service.get(thumb, params={"source": source}).status_code == 404
    assert len(opened) == 3
    routes._thumbnailer.cache_clear()


def test_a_manifest_row_added_for_an_old_file_has_its_thumbnail_after_one_re_index(service, tmp_path, monkeypatch):
    """The re-index for a file the index does not list went by the file's change time (after the index began): a
    row added to a manifest pair's test.csv for an image that was there before the index (or a network share's
    clock behind the server's) was a 404 until the top folder changed. It goes by what the folder holds now."""
    from app.routes import datasets as routes

    routes._thumbnailer.cache_clear()
    opened = []
    real = routes.open_registered
    monkeypatch.setattr(routes, "open_registered", lambda *a, **kw: opened.append(a) or real(*a, **kw))
    unzip(tiny_zip_bytes(4, 2), tmp_path / "root")
    pair = tmp_path / "root" / "tiny"
    rows = {split: [f"{f.relative_to(pair).as_posix()},{f.parent.name}" for f in sorted((pair / split).rglob("*.*"))]
            for split in ("train", "test")}
    old = rows["test"].pop()  # an image on disk since before the index, not listed
    for split, listed in rows.items():
        (pair / f"{split}.csv").write_text("path,label\n" + "\n".join(listed) + "\n")
    ds = service.post("/api/datasets", json={"path": "tiny"}).json()
    thumb = f"/api/datasets/{ds['id']}/thumbnail"
    assert service.get(thumb, params={"source": rows["test"][0].split(",")[0]}).status_code == 200
    assert service.get(thumb, params={"source": old.split(",")[0]}).status_code == 404 and len(opened) == 1
    top = os.stat(pair).st_mtime_ns
    with open(pair / "test.csv", "a") as manifest:  # written in place: the top folder's time stays
        manifest.write(old + "\n")
    assert os.stat(pair).st_mtime_ns == top
    assert service.get(thumb, params={"source": old.split(",")[0]}).status_code == 200 and len(opened) == 2
    routes._thumbnailer.cache_clear()


def test_a_thumbnail_index_reads_no_files_content(service, monkeypatch):
    """The index behind thumbnails lists the data set without the content digest of every file (a folder's is the
    sha256 of each whole file), which no thumbnail reads."""
    from app.routes import datasets as routes

    routes._thumbnailer.cache_clear()
    opened = []
    real = routes.open_registered
    monkeypatch.setattr(routes, "open_registered", lambda *a, **kw: opened.append(kw) or real(*a, **kw))
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    with zipfile.ZipFile(service.app.state.store.get_dataset(ds["id"])["path"]) as archive:
        source = next(name for name in archive.namelist() if not name.endswith("/"))
    assert service.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": source}).status_code == 200
    assert [kw.get("fingerprint") for kw in opened] == [False]
    routes._thumbnailer.cache_clear()


def test_splits_without_a_validation_image_are_refused_before_a_job_exists(service, tmp_path):
    """A probe selects on validation images. Two images per class and no split folders register (one train, one
    test image each) but leave none to validate on, as does a split option of one image per class, or a cache
    whose val split is empty and whose classes hold one train image each: each job failed after its queue wait
    (found by an outside round); it is refused now, naming the field. An extraction alone still runs."""
    import io
    import zipfile

    from probe.splits import EMPTY_VALIDATION

    flat = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(tiny_zip_bytes(1, 1))) as src, zipfile.ZipFile(flat, "w") as dst:
        for info in src.infolist():
            if not info.is_dir():  # tiny/<split>/<class>/<file> -> tiny/<class>/<split>_<file>: 2 per class
                root, split, cls, name = info.filename.split("/")
                dst.writestr(f"{root}/{cls}/{split}_{name}", src.read(info))
    ds = service.post("/api/datasets", files={"file": ("flat.zip", flat.getvalue())}).json()
    assert ds["counts"]["val"] == [0] * len(ds["class_names"]) and set(ds["counts"]["train"]) == {1}
    resp = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"], "probes": [{"loss": "ce"}]})
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert detail.startswith(f"dataset_id: {EMPTY_VALIDATION[:-1]}: these splits hold no validation image (train "
                             f"{len(ds['class_names'])}, val 0, test"), detail
    assert service.get("/api/jobs").json() == []
    assert service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).status_code == 202

    bigger = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(6, 3))}).json()
    resp = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": bigger["id"], "probes": [{"loss": "ce"}],
                                           "options": {"max_per_class": 1}})  # one train image, one test image each
    assert resp.status_code == 422 and resp.json()["detail"].startswith("options: "), resp.text
    # an extraction alone too (a loose end: its cache was one no probe could train on), naming the least cap
    jobs = len(service.get("/api/jobs").json())
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": bigger["id"],
                                           "options": {"max_per_class": 1}})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"] == (
        f"options: max_per_class 1 leaves no validation image (train {len(bigger['class_names'])}, val 0, test "
        f"{len(bigger['class_names'])}): a probe carves one from a class of 2 train images or more; give "
        "max_per_class 2 or more")
    assert len(service.get("/api/jobs").json()) == jobs
    ok = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": bigger["id"], "probes": [{"loss": "ce"}]})
    assert ok.status_code == 202, ok.text


def test_a_probe_on_a_cache_without_validation_images_is_refused(service, tmp_path):
    """A cache whose val split is empty: a probe carves validation images from train, and with one train image per
    class there is none to carve; refused before a job exists. Two per class carve one each: accepted."""
    store = service.app.state.store
    for train, status in ((1, 422), (2, 202)):
        folder = tmp_path / f"train{train}"
        folder.mkdir()
        cache = synthetic_cache(store, folder, per_class={"train": train, "val": 0, "test": 2})
        resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": {"loss": "ce"}})
        assert resp.status_code == status, resp.text
        if status == 422:
            assert resp.json()["detail"].startswith("cache_id: the validation split is empty"), resp.text


def test_a_spread_margin_probe_without_two_training_images_of_a_class_in_every_fit_is_refused(service, tmp_path):
    """mr2_spread's margins come from each class's within-class spread: one training image per class (zero spread)
    was accepted, then failed in the worker (an attack round). Refused before a job exists; 'mr2' is accepted."""
    store = service.app.state.store
    cache = synthetic_cache(store, tmp_path, per_class={"train": 1, "val": 4, "test": 2})
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": {"loss": "mr2_spread"}})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"] == (
        "cache_id: loss 'mr2_spread' sets each class's margin from the spread of its training images, 0 for a class "
        "of one training image: 'a' (1), 'b' (1), 'c' (1). Every class needs 2 or more training images in every fit "
        "(add images of it, or choose loss 'mr2', whose r_k² one image gives)")
    assert service.get("/api/jobs").json() == []
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": {"loss": "mr2"}})
    assert resp.status_code == 202, resp.text


def test_a_data_set_whose_files_are_gone_is_refused_before_a_job_exists(service, tmp_path):
    """A path data set removed from the server after its registration: an extraction was accepted and failed after
    its queue wait (found by an outside attack round); refused now, naming the data set."""
    import shutil

    unzip(tiny_zip_bytes(2, 1), tmp_path / "root")
    ds = service.post("/api/datasets", json={"path": "tiny"})
    assert ds.status_code == 201, ds.text
    shutil.rmtree(tmp_path / "root" / "tiny")
    for kind, extra in (("extract", {}), ("pipeline", {"probes": [{"loss": "ce"}]})):
        resp = service.post("/api/jobs", json={"kind": kind, "dataset_id": ds.json()["id"], **extra})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"] == (f"dataset_id: data set {ds.json()['id']!r} has no files on the server any "
                                         "more (removed or moved since it was registered); register it again")
    assert service.get("/api/jobs").json() == []
    # the listing says so beside the data set (an attack round: it read as usable, and the launch form offered it)
    listed = {d["id"]: d for d in service.get("/api/datasets").json()}
    assert listed[ds.json()["id"]]["problem"] == resp.json()["detail"].removeprefix("dataset_id: ")
    assert service.get(f"/api/datasets/{ds.json()['id']}").json()["problem"] == listed[ds.json()["id"]]["problem"]


def test_a_data_set_changed_since_its_registration_is_said_or_refused_by_its_job(service, tmp_path):
    """A path data set edited after its registration was extracted as it then was without a word (found by an
    outside attack round): an image added is said in the job's messages; a class folder removed is refused before a
    job exists (it was accepted, then failed after its queue wait; a later attack round), naming both class lists,
    and so is a class added; a job that finds them changed at its start fails naming them."""
    import shutil

    unzip(tiny_zip_bytes(2, 1), tmp_path / "root")
    tiny = tmp_path / "root" / "tiny"
    ds = service.post("/api/datasets", json={"path": "tiny"}).json()
    first = next((tiny / "train" / "cat").iterdir())
    shutil.copy(first, first.with_name("added" + first.suffix))
    job = wait_job(service, service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    said = f"data set {ds['id']!r} changed since it was registered (images added, removed or edited)"
    assert sum(m["text"].startswith(said) for m in job["messages"]) == 1, job["messages"]
    shutil.move(tiny / "train" / "ship", tmp_path / "ship-train")
    shutil.move(tiny / "test" / "ship", tmp_path / "ship-test")
    changed = (f"data set {ds['id']!r} changed since it was registered: its classes are now 'airplane', 'cat' "
               "(registered: 'airplane', 'cat', 'ship'); register it again")
    for kind, extra in (("extract", {}), ("pipeline", {"probes": [{"loss": "ce"}]})):
        resp = service.post("/api/jobs", json={"kind": kind, "dataset_id": ds["id"], **extra})
        assert resp.status_code == 422 and resp.json()["detail"] == (
            f"dataset_id: data set {ds['id']!r} cannot be read: {changed}"), resp.text
    shutil.copytree(tmp_path / "ship-train", tiny / "train" / "ship")
    shutil.copytree(tmp_path / "ship-train", tiny / "train" / "fox")  # a class added: refused too
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]})
    assert resp.status_code == 422 and "its classes are now 'airplane', 'cat', 'fox', 'ship'" in resp.text
    assert [j["status"] for j in service.get("/api/jobs").json()] == ["succeeded"]
    # changed between the request and the job's start: the job fails, naming both lists
    from app.datasets import changed_since_registration, open_for_extraction
    from feature_cache import DatasetError

    row = service.app.state.store.get_dataset(ds["id"])
    with pytest.raises(DatasetError, match="its classes are now 'airplane', 'cat', 'fox', 'ship'"):
        changed_since_registration(row, open_for_extraction(row, {}, service.app.state.settings.data_root))


def test_a_full_queue_is_a_429_even_for_requests_at_once(tmp_path):
    """300 jobs of hours each were accepted from one client (an attack round), and with a cap, 12 requests at once
    all passed its check before any was inserted: a job request or a resume beyond MR2PROBE_MAX_QUEUED_JOBS waiting
    jobs is a 429, counted and queued in one transaction, and answered before a request's checks."""
    from concurrent.futures import ThreadPoolExecutor

    from app.status import JobStatus

    settings = make_settings(tmp_path / "state", max_queued_jobs=3)
    with TestClient(create_app(settings, start_worker=False)) as client:  # no worker: jobs stay queued
        store = client.app.state.store
        cache = _synthetic_cache(client, tmp_path)
        body = {"kind": "probe", "cache_id": cache, "config": FAST_PROBE}
        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(lambda _: client.post("/api/jobs", json=body).status_code, range(12)))
        assert codes == [202] * 3 + [429] * 9
        assert store.job_counts() == {"queued": 3}
        full = ("3 jobs are queued, the most this service takes (MR2PROBE_MAX_QUEUED_JOBS); retry once some have run, "
                "or cancel some")
        resp = client.post("/api/jobs", json={"kind": "extract", "dataset_id": "ds_missing"})
        assert resp.status_code == 429 and resp.json()["detail"] == full  # before the request's checks (a 404)
        waiting = store.list_jobs(JobStatus.queued)
        store.claim(waiting[0]["id"])
        store.finish(waiting[0]["id"], JobStatus.failed, error="x")
        assert client.post("/api/jobs", json=body).status_code == 202  # its place taken
        resp = client.post(f"/api/jobs/{waiting[0]['id']}/resume")
        assert resp.status_code == 429 and resp.json()["detail"] == full, resp.text
        assert store.get_job(waiting[0]["id"])["status"] == "failed"


def test_a_jobs_request_shows_a_weights_path_under_the_data_root_by_name(service, tmp_path):
    """The stored request keeps the weights file's resolved path (the job loads that file); GET /api/jobs showed it
    as it is (found by an outside attack round) where every error message says '<data root>'."""
    write_mocov2_checkpoint(tmp_path / "root" / "moco.pth")
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    resp = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"], "encoder": "mocov2:moco.pth"})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    stored = service.app.state.store.get_job(job_id)["request"]["encoder"]
    assert stored == f"mocov2:{(tmp_path / 'root').resolve() / 'moco.pth'}"  # what the job loads
    for shown in (service.get(f"/api/jobs/{job_id}").json(), service.get("/api/jobs").json()[0]):
        assert shown["request"]["encoder"] == "mocov2:<data root>/moco.pth", shown


def test_a_data_set_folder_swapped_for_a_symlink_leads_nowhere(service, tmp_path):
    """A data set registered by path whose whole folder was then replaced by a symlink to a folder outside the data
    root: its thumbnails served the outside files and an extraction encoded them (found by an outside attack
    round). Both are refused (403) now, as the registration of that path is."""
    import shutil

    unzip(tiny_zip_bytes(2, 1), tmp_path / "root")
    ds = service.post("/api/datasets", json={"path": "tiny"}).json()
    source = service.app.state.store.get_dataset(ds["id"])
    sample = "train/cat/" + sorted(p.name for p in (tmp_path / "root" / "tiny" / "train" / "cat").iterdir())[0]
    assert service.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": sample}).status_code == 200
    shutil.move(tmp_path / "root" / "tiny", tmp_path / "outside")
    (tmp_path / "root" / "tiny").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert source["path"] == str(tmp_path.resolve() / "root" / "tiny")  # stored resolved, now a symlink
    resp = service.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": sample, "size": 16})
    assert resp.status_code == 403 and "no longer where it was registered" in resp.json()["detail"], resp.text
    for kind, extra in (("extract", {}), ("pipeline", {"probes": [{"loss": "ce"}]})):
        resp = service.post("/api/jobs", json={"kind": kind, "dataset_id": ds["id"], **extra})
        assert resp.status_code == 403 and "no longer where it was registered" in resp.json()["detail"], resp.text
    assert str(tmp_path) not in resp.text


LOOP = "symlink loop (it leads back to itself), not followed"  # feature_cache.archives.SYMLINK_LOOP


def test_a_symlink_loop_is_no_500_where_a_path_is_registered_or_listed(service, tmp_path):
    """A symlink that leads back to itself, as the path registered or as a file in the folder, made Path.resolve
    raise RuntimeError: a 500 for POST /api/datasets and /api/caches (a new-user round). The path is a 422 now, a
    loop inside the folder a skipped file, named with why."""
    unzip(tiny_zip_bytes(2, 2), tmp_path / "root")
    (tmp_path / "root" / "loop").symlink_to("loop")
    for route in ("/api/datasets", "/api/caches"):
        resp = service.post(route, json={"path": "loop"})
        assert resp.status_code == 422 and "symlink loop" in resp.json()["detail"], (route, resp.text)
    cat = tmp_path / "root" / "tiny" / "train" / "cat"
    (cat / "zz-a.png").symlink_to("zz-b.png")
    (cat / "zz-b.png").symlink_to("zz-a.png")
    resp = service.post("/api/datasets", json={"path": "tiny"})
    assert resp.status_code == 201, resp.text
    from feature_cache import open_dataset

    skipped = open_dataset(tmp_path / "root" / "tiny").skipped
    assert ("train/cat/zz-a.png", LOOP) in skipped and ("train/cat/zz-b.png", LOOP) in skipped
    assert resp.json()["skipped"] == 2, resp.text
    (tmp_path / "root" / "tiny").rename(tmp_path / "root" / "tiny-moved")  # the registered folder, now a loop
    (tmp_path / "root" / "tiny").symlink_to("tiny")
    listed = service.get("/api/datasets")
    assert listed.status_code == 200, listed.text
    assert listed.json()[0]["problem"], listed.text
    ds = listed.json()[0]["id"]
    for resp in (service.get(f"/api/datasets/{ds}/thumbnail", params={"source": "train/cat/zz-a.png"}),
                 service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds})):
        assert 400 <= resp.status_code < 500, resp.text


def test_a_job_request_lists_a_path_data_set_without_reading_its_images(service, tmp_path, monkeypatch):
    """Checking a data set registered by path before its job (its classes now) read every file whole for the content
    digest: 120 MB for 400 images, per request (a review). The listing alone."""
    from feature_cache.archives import DirectoryReader

    unzip(tiny_zip_bytes(2, 1), tmp_path / "root")
    ds = service.post("/api/datasets", json={"path": "tiny"}).json()

    def unread(self, name):
        raise AssertionError(f"{name} was read for its digest")

    monkeypatch.setattr(DirectoryReader, "content_id", unread)
    monkeypatch.setattr(DirectoryReader, "read", unread)
    from app.validation import validate_job
    from app.schemas import ExtractJob

    payload = validate_job(ExtractJob(kind="extract", dataset_id=ds["id"]), service.app.state.store,
                           service.app.state.settings.data_root)
    assert payload["dataset_id"] == ds["id"]


def test_a_listed_image_swapped_for_a_symlink_out_is_a_403(service, tmp_path):
    """One file of a listed folder replaced by a symlink leading out of the data root: its thumbnail was a 422
    ("cannot be shown"), where every path out is a 403 (an attack round)."""
    unzip(tiny_zip_bytes(2, 1), tmp_path / "root")
    ds = service.post("/api/datasets", json={"path": "tiny"}).json()
    folder = tmp_path / "root" / "tiny" / "train" / "cat"
    name = sorted(p.name for p in folder.iterdir())[0]
    assert service.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": f"train/cat/{name}"}).status_code == 200
    (tmp_path / "secret.png").write_bytes((folder / name).read_bytes())
    (folder / name).unlink()
    (folder / name).symlink_to(tmp_path / "secret.png")
    resp = service.get(f"/api/datasets/{ds['id']}/thumbnail", params={"source": f"train/cat/{name}", "size": 16})
    assert resp.status_code == 403 and "now leads outside the data folder" in resp.json()["detail"], resp.text


def test_an_extraction_busy_elsewhere_is_waited_for_not_a_failure(service, monkeypatch):
    """Two jobs needing the same new features: the second found the cache file locked (ExtractionBusy) and failed
    (found by an outside attack round). It now waits, polling for a cancel, and then extracts or reuses."""
    import feature_cache

    import app.steps as steps

    real, calls = feature_cache.extract, []

    def busy_twice(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise feature_cache.ExtractionBusy("x.h5 is being extracted by another process")
        return real(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "extract", busy_twice)
    monkeypatch.setattr(steps, "BUSY_POLL_SECONDS", 0.1)
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    job = wait_job(service, service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"])
    assert job["status"] == "succeeded" and len(calls) == 3, job
    assert sum("waiting for it, to reuse its cache" in m["text"] for m in job["messages"]) == 1


def test_a_job_waiting_on_another_extraction_lets_a_queued_job_run_in_its_slot(service, tmp_path, monkeypatch):
    """An isolation round: a job waiting for another's extraction of the same features held its worker slot for
    the whole extraction, and a probe queued behind it (a second of work) waited as long."""
    import feature_cache

    import app.steps as steps

    real, released = feature_cache.extract, threading.Event()

    def busy_until_released(*args, **kwargs):
        if not released.is_set():
            raise feature_cache.ExtractionBusy("x.h5 is being extracted by another process")
        return real(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "extract", busy_until_released)
    monkeypatch.setattr(steps, "BUSY_POLL_SECONDS", 0.1)
    assert service.app.state.settings.cpu_jobs == 1
    ds = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
    waiting = service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"]
    wait_for(lambda: any("waiting for it" in m["text"] for m in service.get(f"/api/jobs/{waiting}").json()["messages"]),
             120, what="the extraction waiting")
    probe = service.post("/api/jobs", json={"kind": "probe", "cache_id": _synthetic_cache(service, tmp_path),
                                             "config": ERM}).json()["id"]
    try:
        wait_for(lambda: service.get(f"/api/jobs/{probe}").json()["status"] == "succeeded", 120,
                 what="the probe queued behind the waiting job")
        assert service.get(f"/api/jobs/{waiting}").json()["status"] == "running"  # still waiting meanwhile
    finally:
        released.set()
    assert wait_job(service, waiting)["status"] == "succeeded"


def test_a_labelled_test_set_alone_registers_and_extracts_but_trains_nothing(service):
    """New labelled images to score shipped probes on (a test/ folder alone) were re-split, most of them into
    train (found by an outside round). Now all of them are test images: the data set registers and extracts, and
    a pipeline, which trains, is refused naming the classes without train images."""
    import io
    import zipfile

    only_test = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(tiny_zip_bytes(2, 2))) as src, zipfile.ZipFile(only_test, "w") as dst:
        for info in src.infolist():
            if "/train/" not in info.filename:
                dst.writestr(info, src.read(info))
    resp = service.post("/api/datasets", files={"file": ("new.zip", only_test.getvalue())})
    assert resp.status_code == 201, resp.text
    ds = resp.json()
    assert sum(ds["counts"]["train"]) == sum(ds["counts"]["val"]) == 0 and set(ds["counts"]["test"]) == {2}
    resp = service.post("/api/jobs", json={"kind": "pipeline", "dataset_id": ds["id"], "probes": [{"loss": "ce"}]})
    n_test = 2 * len(ds["class_names"])
    what = (f"it holds test images only ({n_test}), a labelled set to score finished runs' probes on (extract it "
            "alone, then score a run on its cache): a probe needs train images")
    assert resp.status_code == 422 and resp.json()["detail"] == f"dataset_id: {what}", resp.text
    job = wait_job(service, service.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"])
    assert job["status"] == "succeeded", job
    cache = service.get(f"/api/caches/{job['result']['cache_id']}").json()
    assert cache["counts"] == {"train": 0, "val": 0, "test": n_test}
    # a probe on its cache: the same reason, not an empty validation split of "train 0, val 0, test 0"
    resp = service.post("/api/jobs", json={"kind": "probe", "cache_id": cache["id"], "config": {"loss": "ce"}})
    assert resp.status_code == 422 and resp.json()["detail"] == f"cache_id: cache {cache['id']!r}: {what}", resp.text


# -- 2b. a resumed extraction of changed images leaves no stale partial file -----------------------------------
def test_a_resumed_extraction_of_changed_images_discards_its_earlier_partial_file(tmp_path):
    """Killed mid-extraction, the data set's images changed, resumed: the job succeeded with a cache of the new
    fingerprint, but the old <encoder>-<oldfp>.h5.partial and .lock stayed until the next start-up (found by the
    third attack round). The resumed job discards the file it recorded before; another job's file is kept."""
    import shutil
    from pathlib import Path

    from app.steps import cache_dir_for
    from app.store import Store

    root = tmp_path / "root"
    unzip(tiny_zip_bytes(2, 1), root)
    settings = make_settings(tmp_path / "state", data_root=root)
    with TestClient(create_app(settings)) as client:
        ds = client.post("/api/datasets", json={"path": "tiny"}).json()
    cache_dir = cache_dir_for(settings, ds["id"], "effnet-lite0")
    cache_dir.mkdir(parents=True, exist_ok=True)
    old, others = cache_dir / "effnet-lite0-oldfp.h5", cache_dir / "effnet-lite0-otherfp.h5"
    store = Store(settings.db_path)
    request = {"dataset_id": ds["id"], "encoder": "effnet-lite0", "options": {}}
    job, other = store.add_job("extract", request), store.add_job("extract", request)
    for each, final in ((job, old), (other, others)):
        store.claim(each["id"])
        store.update_result(each["id"], extraction=str(final))  # recorded before the server was killed
        final.with_name(final.name + ".partial").write_bytes(b"half")
        final.with_name(final.name + ".lock").write_text("pid 999999")
    store.interrupt_running()
    first = sorted((root / "tiny" / "train").rglob("*.*"))[0]
    shutil.copy(first, first.with_name("extra" + first.suffix))
    with TestClient(create_app(settings)) as client:
        assert client.post(f"/api/jobs/{job['id']}/resume").status_code == 202
        done = wait_job(client, job["id"])
        assert done["status"] == "succeeded", done["error"]
        new = Path(store.get_cache(done["result"]["cache_id"])["path"])
        assert store.get_job(job["id"])["result"]["extraction"] == str(new) != str(old)
        assert (f"the images to extract changed since this job's last attempt (cache {new.name}, was {old.name}): "
                "its earlier partial extraction is discarded") in [m["text"] for m in done["messages"]]
    # the earlier file and its lock are gone; the other interrupted job's file stays for it to resume from
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([new.name, "effnet-lite0-otherfp.h5.lock",
                                                                  "effnet-lite0-otherfp.h5.partial"])


def test_a_resumed_extraction_an_older_version_started_says_its_settings_changed_not_its_images(tmp_path):
    """An extraction an older version started and was killed in (its partial file named by the fingerprint of every
    image decoded whole), resumed after an upgrade: the job said 'the images to extract changed' of images that had
    not (an upgrade round). A partial file of one of the plan's reusable fingerprints is said to be of other
    settings for the same images; it is discarded as before."""
    from types import SimpleNamespace

    from app.jobs import JobContext
    from app.steps import _record_extraction, cache_dir_for
    from app.store import Store

    root = tmp_path / "root"
    unzip(tiny_zip_bytes(2, 1), root)
    settings = make_settings(tmp_path / "state", data_root=root)
    with TestClient(create_app(settings, start_worker=False)) as client:
        ds = client.post("/api/datasets", json={"path": "tiny"}).json()
    store = Store(settings.db_path)
    folder = cache_dir_for(settings, ds["id"], "effnet-lite0")
    folder.mkdir(parents=True)
    whole, reduced, other = (folder / f"effnet-lite0-{fp}.h5" for fp in ("wholefp", "reducedfp", "otherfp"))
    messages = {}
    for before in (whole, other):
        job = store.add_job("extract", {"dataset_id": ds["id"], "encoder": "effnet-lite0", "options": {}})
        store.claim(job["id"])
        store.update_result(job["id"], extraction=str(before))  # what the killed attempt recorded
        before.with_name(before.name + ".partial").write_bytes(b"half")
        plan = SimpleNamespace(path=reduced, reusable=((whole, "wholefp"),))
        _record_extraction(JobContext(job=store.get_job(job["id"]), store=store, settings=settings), plan)
        messages[before] = [m["text"] for m in store.get_job(job["id"])["messages"]]
        assert not before.with_name(before.name + ".partial").exists()  # discarded either way
    assert messages[whole] == [
        "this job's last attempt extracted the same images under other settings (an earlier version's whole-image "
        f"decode, or another precision; cache {reduced.name}, was {whole.name}): its earlier partial extraction is "
        "discarded and the extraction starts again"]
    assert messages[other] == [f"the images to extract changed since this job's last attempt (cache {reduced.name}, "
                               f"was {other.name}): its earlier partial extraction is discarded"]


def test_a_fifo_inside_a_registered_folder_never_blocks_registration_nor_a_thumbnail(service, tmp_path):
    """A FIFO inside a folder registered by path blocked POST /api/datasets forever (the fingerprint opened it and
    waited for a writer), and so did a thumbnail of a listed file swapped for one (found by the fourth attack
    round). The FIFO is skipped, and the swapped file is a 422; a timer releases each FIFO after 10 s, so the old
    code failed here instead of hanging."""
    import time

    def release_later(fifo):
        def release():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader waits on it: nothing blocked
                pass
        timer = threading.Timer(10, release)
        timer.start()
        return timer

    unzip(tiny_zip_bytes(2, 1), tmp_path / "root")
    cat = tmp_path / "root" / "tiny" / "train" / "cat"
    os.mkfifo(cat / "zz.png")
    timer, started = release_later(cat / "zz.png"), time.monotonic()
    resp = service.post("/api/datasets", json={"path": "tiny"})
    assert time.monotonic() - started < 10, "registration waited on the FIFO"
    timer.cancel()
    assert resp.status_code == 201 and resp.json()["skipped"] == 1, resp.text
    sample = "train/cat/" + sorted(p.name for p in cat.iterdir())[0]
    ds_id = resp.json()["id"]
    assert service.get(f"/api/datasets/{ds_id}/thumbnail", params={"source": sample}).status_code == 200
    (cat / sample.rsplit("/", 1)[1]).unlink()
    os.mkfifo(cat / sample.rsplit("/", 1)[1])
    timer, started = release_later(cat / sample.rsplit("/", 1)[1]), time.monotonic()
    resp = service.get(f"/api/datasets/{ds_id}/thumbnail", params={"source": sample, "size": 16})
    assert time.monotonic() - started < 10, "the thumbnail waited on the FIFO"
    timer.cancel()
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"] == (f"sample {sample!r} cannot be shown: OSError: {sample!r} is not a regular file "
                                     "(a FIFO, socket, device or folder); it is not read")


def test_a_405_names_every_method_the_path_answers(service):
    """Starlette's Allow named the first route matching the path only: PUT /api/jobs said 'Allow: POST' though
    GET /api/jobs is served (RFC 9110: the methods the target supports). A static file's 405 is StaticFiles' own."""
    for method, path, allowed in (("PUT", "/api/jobs", "GET, HEAD, POST, DELETE"),
                                  ("PATCH", "/api/jobs/job_x", "GET, HEAD, DELETE"), ("POST", "/api/runs", "GET, HEAD"), ("GET", "/api/jobs/job_x/resume", "POST"),
                                  ("HEAD", "/api/jobs/job_x/resume", "POST"), ("DELETE", "/api/health", "GET, HEAD")):
        resp = service.request(method, path)
        assert resp.status_code == 405 and resp.headers["allow"] == allowed, (method, path)
        if method != "HEAD":
            assert resp.json()["detail"] == f"{method} is not a method of {path}; it answers {allowed}"


def test_a_query_parameter_given_twice_is_refused(service):
    """The last value won silently: DELETE /api/runs/{id}?dry_run=true&dry_run=false deleted the run, and
    failures?class=cat&class=dog answered for dog (an attack round)."""
    resp = service.delete("/api/runs/run_x?dry_run=true&dry_run=false")
    assert resp.status_code == 422 and resp.json()["detail"] == [  # FastAPI's shape of a validation error
        {"loc": ["query", "dry_run"], "type": "repeated_parameter",
         "msg": "query parameter 'dry_run' is given 2 times: give each parameter once"}]
    resp = service.get("/api/runs/run_x/failures?class=cat&class=dog&class=")
    assert resp.status_code == 422 and resp.json()["detail"][0]["msg"].startswith("query parameter 'class' is given 3")
    assert service.get("/api/runs/run_x/failures?class=cat&limit=3").status_code == 404  # once each: on to the route
    resp = service.delete("/api/caches/cache_x?dry_run=1&dry_run=0&dryRun=1")  # every problem named at once
    assert [(e["loc"][1], e["type"]) for e in resp.json()["detail"]] == [("dry_run", "repeated_parameter"),
                                                                        ("dryRun", "unknown_parameter")]


def test_an_unknown_query_parameter_is_refused_and_a_static_405_names_its_methods(service):
    """DELETE /api/caches/{id}?dryRun=true deleted for real: FastAPI ignored the misspelt parameter (an attack
    round); and a static file's 405 said 'Allow: ' (empty), the routes not seeing the mounted files."""
    resp = service.delete("/api/caches/cache_x?dryRun=true")
    assert resp.status_code == 422 and resp.json()["detail"] == [
        {"loc": ["query", "dryRun"], "type": "unknown_parameter",
         "msg": "unknown query parameter 'dryRun': this route takes cascade, dry_run"}]
    assert service.delete("/api/caches/cache_x?dry_run=true").status_code == 404  # known: on to the route
    assert service.get("/api/health?verbose=1").status_code == 422
    resp = service.delete("/static/app.js")
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, HEAD"
    assert resp.json()["detail"] == "DELETE is not a method of /static/app.js; it answers GET, HEAD"


@pytest.mark.parametrize("path", ["/", "/launch", "/static/app.js"])
def test_a_range_the_pages_files_cannot_serve_is_refused_in_json(service, path):
    """A malformed Range, or one past a page file's end, got Starlette's text/plain 400 'Malformed range header.'
    and an empty 416 (an attack round); a range within the file is served as before."""
    size = len(service.get(path).content)
    resp = service.get(path, headers={"Range": "garbage"})
    assert resp.status_code == 400 and resp.json() == {
        "detail": "Range header 'garbage' refused: Malformed range header."}
    resp = service.get(path, headers={"Range": "bytes=999999999-"})
    assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{size}"
    assert resp.json() == {"detail": f"Range 'bytes=999999999-' lies past the end of the file ({size} bytes)"}
    resp = service.head(path, headers={"Range": "bytes=999999999-"})
    assert resp.status_code == 416 and resp.content == b""
    resp = service.get(path, headers={"Range": "bytes=0-9"})
    assert resp.status_code == 206 and len(resp.content) == 10
    stale = service.get(path, headers={"Range": "garbage", "If-Range": '"not-its-etag"'})
    assert stale.status_code == 200 and len(stale.content) == size  # If-Range of another version: the whole file


@pytest.mark.parametrize("code, said", [
    ("ENOSPC", "the server's disk is full: the upload could not be stored"),
    # a file-size limit (ulimit -f, FAT32's 4 GiB): a 500 'internal server error (OSError)' (an attack round)
    ("EFBIG", "the server cannot store a file this large (its file system or its process limits a file's size): the "
              "upload could not be stored")])
def test_an_upload_that_fills_the_disk_is_a_507_and_leaves_nothing(service, monkeypatch, caplog, code, said):
    """ENOSPC while the archive streams to disk was a 422 'malformed multipart body: [Errno 28] ...': the client was
    told its body was wrong (an operator round, the data dir on a full tmpfs). A 507, logged; no data set, no file."""
    import builtins
    import errno

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 100:
                raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    monkeypatch.setattr("app.datasets.open", lambda *a, **k: FullDisk(builtins.open(*a, **k)), raising=False)
    resp = service.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1), "application/zip")})
    assert resp.status_code == 507, resp.text
    assert resp.json()["detail"].startswith(said)
    assert any(r.levelname == "WARNING" and os.strerror(getattr(errno, code)) in r.getMessage() for r in caplog.records)
    assert not any(service.app.state.settings.uploads_dir.glob("*/*"))
    assert service.get("/api/datasets").json() == []


def test_a_file_gone_mid_extraction_fails_resumably_and_resuming_once_back_gives_every_image(tmp_path, monkeypatch):
    """An isolation round: a file another user moved away while a job extracted its data set was skipped as 'failed
    to decode' into a cache named by the fingerprint of the data set that holds it, and once the file was back the
    next job reused that cache, an image short. Now the job fails naming the file, and its partial file waits for
    the file to come back: the job says it can be resumed (retryable), and resumed once the file is back it finishes
    with every image (tests/feature_cache/test_extract_resume.py: the resume of the file)."""
    import feature_cache

    root = tmp_path / "root"
    unzip(tiny_zip_bytes(3, 2), root)
    settings = make_settings(tmp_path / "state", data_root=root)
    victim = sorted((root / "tiny" / "test").rglob("*.*"))[0]
    moved = tmp_path / "moved"
    build, calls = feature_cache.create_encoder, []

    def move_then_build(*args, **kwargs):  # after the first job listed (fingerprinted) the data set, before it reads
        if not moved.exists() and not calls:
            victim.rename(moved)
        calls.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "create_encoder", move_then_build)
    with TestClient(create_app(settings)) as client:
        ds = client.post("/api/datasets", json={"path": "tiny"}).json()
        request = {"kind": "extract", "dataset_id": ds["id"], "encoder": "effnet-lite0"}
        failed = wait_job(client, client.post("/api/jobs", json=request).json()["id"])
        # resumable and retryable: the dashboard offers Resume (it showed none: the same request seemed doomed)
        assert (failed["status"], failed["resumable"], failed["retryable"]) == ("failed", True, True)
        assert failed["error"].startswith(f"DatasetChanged: 1 file of the data set (test/{victim.parent.name}/"
                                          f"{victim.name}) was removed or moved while its features were extracted")
        assert not client.get("/api/caches").json()
        moved.rename(victim)
        assert client.post(f"/api/jobs/{failed['id']}/resume").status_code == 202
        done = wait_job(client, failed["id"])
        assert done["status"] == "succeeded", done["error"]
        cache = client.get(f"/api/caches/{done['result']['cache_id']}").json()
        assert cache["counts"]["test"] == sum(ds["counts"]["test"])  # every test image, the one moved included
        assert not any("skipped" in m["text"] for m in done["messages"])


def test_a_database_another_process_holds_is_a_503_that_changes_nothing(tmp_path, monkeypatch):
    """A write while another process held the database (an open 'BEGIN EXCLUSIVE', a backup tool) waited, then
    answered 500 "internal server error (OperationalError)" (a failure round). It is a 503 saying so and to send
    the request again; nothing was stored, and the same request goes through once the lock is gone."""
    import sqlite3

    import app.store

    real_connect = sqlite3.connect
    monkeypatch.setattr(app.store.sqlite3, "connect", lambda *a, **k: real_connect(*a, **{**k, "timeout": 0.2}))
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings, start_worker=False), raise_server_exceptions=False) as client:
        cache = synthetic_cache(client.app.state.store, tmp_path)
        request = {"kind": "probe", "cache_id": cache["id"], "config": FAST_PROBE}
        other = real_connect(settings.data_dir / "mr2probe.sqlite3", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        resp = client.post("/api/jobs", json=request)
        assert resp.status_code == 503, resp.text
        assert "database refused this request (database is locked" in resp.json()["detail"]
        assert "send it again" in resp.json()["detail"] and resp.headers["Retry-After"] == "30"
        other.execute("ROLLBACK")
        other.close()
        assert client.get("/api/jobs").json() == []
        assert client.post("/api/jobs", json=request).status_code == 202


@pytest.mark.parametrize("content", [b"half a chunk", b""])
def test_an_extraction_that_discards_an_unreadable_partial_file_says_so(tmp_path, monkeypatch, content):
    """A damaged or unreadable resumable file was discarded with a line in the server's log alone: the job read
    as a plain extraction, with nothing of why every image was encoded again. The job's messages say which file
    was discarded, why, and how many images were encoded again."""
    import app.steps

    real = app.steps._record_extraction

    def damaged(ctx, plan):
        real(ctx, plan)
        plan.partial_path.write_bytes(content)  # what a disk fault or a hand edit left there

    monkeypatch.setattr(app.steps, "_record_extraction", damaged)
    settings = make_settings(tmp_path / "state")
    with TestClient(create_app(settings)) as client:
        ds = client.post("/api/datasets", files={"file": ("t.zip", tiny_zip_bytes(2, 1))}).json()
        job = wait_job(client, client.post("/api/jobs", json={"kind": "extract", "dataset_id": ds["id"]}).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    [partial] = [p for p in (settings.caches_dir / ds["id"]).rglob("*.h5")]
    said = [m["text"] for m in job["messages"] if "discarded" in m["text"]]
    assert said == [f"warning: the resumable file {partial.name}.partial could not be read (not a partial "
                    "extraction file) and was discarded: all 9 images were encoded again"]


def test_a_repeated_key_late_in_a_wide_json_body_is_found_in_linear_time():
    """The first repeat was searched for with a scan of every key before each key: a 200 kB body whose last key
    repeated its first held the event loop for seconds (a 1 MB one, minutes)."""
    from app.middleware import _once_each, repeated_key

    body = ("{" + ",".join(f'"k{i}": 0' for i in range(20_000)) + ', "k7": 1, "k3": 2}').encode()
    assert repeated_key(body) == "k7"

    compared = []

    class Key(str):  # a key that counts the comparisons made of it: the work, not the time (never a timed test)
        def __eq__(self, other):
            compared.append(1)
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    pairs = [(Key(f"k{i}"), 0) for i in range(2_000)] + [(Key("k7"), 1)]
    with pytest.raises(ValueError) as found:
        _once_each(pairs)
    assert found.value.args == ("k7",) and len(compared) <= 2 * len(pairs)  # the scan of the keys before each: ~2M


@pytest.mark.parametrize("content_type", ["application/merge-patch+json", "Application/Problem+JSON; charset=utf-8"])
def test_a_repeated_key_in_a_plus_json_body_is_refused_as_in_application_json(service, content_type):
    """FastAPI reads an application/*+json body as JSON too: there the last of two values was still taken."""
    body = b'{"kind": "extract", "kind": "probe", "cache_id": "c", "dataset_id": "d"}'
    resp = service.post("/api/jobs", content=body, headers={"Content-Type": content_type})
    assert resp.status_code == 422 and resp.json() == {"detail": "the JSON body gives the key 'kind' twice in one "
                                                       "object: give each key once (which value was meant is not "
                                                       "guessed)"}, resp.text
    assert service.get("/api/jobs").json() == []
