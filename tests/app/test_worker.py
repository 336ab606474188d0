"""The job worker: scheduling bounds, cancel, failure, shutdown → interrupted, resume (with test handlers)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from app.config import Settings
from app.jobs import JobCancelled, JobKind
from app.status import InvalidTransition, JobStatus
from app.steps import JOB_KINDS
from app.store import Store
from app.worker import JobRunner

from app_testutils import wait_for
from testdata import MALLOC_FAULTS, REPO_ROOT


def _status(store, job_id):
    return store.get_job(job_id)["status"]


def make_runner(tmp_path, handlers, cpu_jobs=1):
    settings = Settings(data_dir=tmp_path, cpu_jobs=cpu_jobs, device="cpu")
    store = Store(settings.db_path)
    return JobRunner(store, settings, handlers=handlers), store


def blocking_handlers(release: threading.Event, started: list):
    def block(ctx):
        started.append(ctx.job_id)
        while not release.is_set():
            ctx.check_stop()
            release.wait(0.02)
        ctx.progress(0.5, "half")
        return {"cache_id": f"cache_for_{ctx.job_id}"}

    return {"extract": block}


def test_cpu_jobs_are_bounded_and_results_recorded(tmp_path):
    release, started = threading.Event(), []
    runner, store = make_runner(tmp_path, blocking_handlers(release, started), cpu_jobs=1)
    runner.start()
    try:
        a = runner.submit("extract", {})
        b = runner.submit("extract", {})
        # The store marks a job running when it is claimed, just before its handler starts.
        wait_for(lambda: started == [a["id"]], 30, what="first job's handler running")
        runner.wake()
        # Bounded by cpu_jobs=1: the second job stays queued while the first holds the slot.
        assert _status(store, b["id"]) == "queued" and started == [a["id"]]
        release.set()
        wait_for(lambda: _status(store, b["id"]) == "succeeded", 30, what="second job done")
        row = store.get_job(a["id"])
        assert row["status"] == "succeeded" and row["progress"] == 1.0
        assert row["result"]["cache_id"] == f"cache_for_{a['id']}"
        assert started == [a["id"], b["id"]]
    finally:
        runner.stop()


def test_two_cpu_slots_run_two_jobs_together(tmp_path):
    release, started = threading.Event(), []
    runner, store = make_runner(tmp_path, blocking_handlers(release, started), cpu_jobs=2)
    runner.start()
    try:
        ids = [runner.submit("extract", {})["id"] for _ in range(3)]
        wait_for(lambda: len(started) == 2, 30, what="two jobs running")
        assert [_status(store, i) for i in ids] == ["running", "running", "queued"]
        release.set()
        wait_for(lambda: all(_status(store, i) == "succeeded" for i in ids), 30, what="all done")
    finally:
        runner.stop()


def test_cancel_running_and_queued_jobs(tmp_path):
    release, started = threading.Event(), []
    runner, store = make_runner(tmp_path, blocking_handlers(release, started))
    runner.start()
    try:
        a = runner.submit("extract", {})
        b = runner.submit("extract", {})
        wait_for(lambda: _status(store, a["id"]) == "running", 30, what="running")
        assert runner.cancel(b["id"])["status"] == "cancelled"  # queued: at once
        runner.cancel(a["id"])  # running: stops at its next check
        wait_for(lambda: _status(store, a["id"]) == "cancelled", 30, what="cancelled")
        texts = [m["text"] for m in store.get_job(a["id"])["messages"]]
        assert "cancellation requested" in texts and texts[-1] == "cancelled"  # it ended on the last step's
        assert [m["text"] for m in store.get_job(b["id"])["messages"]][-1] == "cancelled while queued"
        with pytest.raises(InvalidTransition, match="already cancelled"):
            runner.cancel(a["id"])
    finally:
        runner.stop()


def test_a_cancel_is_said_before_the_job_ends_cancelled(tmp_path, monkeypatch):
    """The cancel of a running job told the job first, then wrote "cancellation requested": a job that stopped at
    once ended "cancelled", then "cancellation requested", as if a cancel were still pending. Reached here by
    holding the message until the job has ended, when the job was told first."""
    release, started = threading.Event(), []
    runner, store = make_runner(tmp_path, blocking_handlers(release, started))
    add_message = store.add_message

    def held(job_id, text):
        entry = runner._running.get(job_id)
        if text == "cancellation requested" and entry is not None and entry[0].stop_event.is_set():
            entry[1].join(30)  # told already: let it end first
        add_message(job_id, text)

    monkeypatch.setattr(store, "add_message", held)
    runner.start()
    try:
        job = runner.submit("extract", {})
        wait_for(lambda: started, 30, what="running")
        runner.cancel(job["id"])
        wait_for(lambda: _status(store, job["id"]) == "cancelled", 30, what="cancelled")
        texts = [m["text"] for m in store.get_job(job["id"])["messages"]]
        assert texts[-2:] == ["cancellation requested", "cancelled"]
    finally:
        runner.stop()


def test_a_job_that_ends_as_it_is_cancelled_is_said_finished_not_running_elsewhere(tmp_path, monkeypatch):
    """A cancel that read the job running, and found no thread of it because it had just ended, answered "running in
    another process; it cannot be cancelled here". Reached here by ending the job right after the cancel reads it."""
    runner, store = make_runner(tmp_path, {"extract": lambda ctx: {}})
    job = store.add_job("extract", {})
    store.claim(job["id"])
    get_job = store.get_job

    def read_then_ended(job_id):
        row = get_job(job_id)
        if row["status"] == "running":
            store.finish(job_id, JobStatus.succeeded)
        return row

    monkeypatch.setattr(store, "get_job", read_then_ended)
    with pytest.raises(InvalidTransition, match="already succeeded; nothing to cancel"):
        runner.cancel(job["id"])


class _SecondSet(threading.Event):
    """A stop event that says when it is set a second time: the server's stop after the user's cancel."""

    def __init__(self):
        super().__init__()
        self.sets, self.again = 0, threading.Event()

    def set(self):
        self.sets += 1
        if self.sets == 2:
            self.again.set()
        super().set()


def test_a_cancel_stays_a_cancel_when_the_server_stops_before_the_jobs_next_check(tmp_path):
    """An accepted cancel ended interrupted (resumable, its partial cache kept) when the server stopped before the
    job noticed it: stop() wrote "shutdown" over the reason (an operator round)."""
    def slow_to_notice(ctx):
        while not ctx.should_stop():
            ctx.stop_event.wait(0.02)
        ctx.stop_event.again.wait(30)  # the job's next check comes after the server's stop
        raise JobCancelled(ctx.stop_reason)

    runner, store = make_runner(tmp_path, {"extract": slow_to_notice})
    runner.start()
    job = runner.submit("extract", {})
    wait_for(lambda: _status(store, job["id"]) == "running", 30, what="running")
    with runner._cond:
        runner._running[job["id"]][0].stop_event = _SecondSet()
    runner.cancel(job["id"])
    runner.stop()
    assert _status(store, job["id"]) == "cancelled"
    assert [m["text"] for m in store.get_job(job["id"])["messages"]][-1] == "cancelled"


def _open_descriptors(path):
    from pathlib import Path

    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if str(path) in str(fd.resolve()))  # the database, its WAL and SHM


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts descriptors in /proc/self/fd")
def test_finished_job_threads_leave_no_database_connection_open(tmp_path):
    """Each job's thread kept its SQLite connection (the database and its WAL) open after it ended: 187 of each on
    a server after ~220 jobs (an operator round)."""
    runner, store = make_runner(tmp_path, {"probe": lambda ctx: {"run_ids": []}}, cpu_jobs=2)
    runner.start()
    try:
        first = runner.submit("probe", {})
        wait_for(lambda: _status(store, first["id"]) == "succeeded", 30, what="first job done")
        before = _open_descriptors(store.path)
        ids = [runner.submit("probe", {})["id"] for _ in range(12)]
        wait_for(lambda: all(_status(store, i) == "succeeded" for i in ids), 60, what="twelve jobs done")
        wait_for(lambda: not runner._running, 30, what="their threads finished")
        # SQLite may hold a closed connection's descriptor for reuse while another connection of the process holds
        # a lock (POSIX locks are per process): one, whatever the number of jobs; before, two per job
        assert _open_descriptors(store.path) <= before + 2
    finally:
        runner.stop()


def test_failure_is_recorded_without_trace(tmp_path):
    def boom(ctx):
        raise ValueError("cbar must be > 0, got -1.")

    runner, store = make_runner(tmp_path, {"probe": boom})
    runner.start()
    try:
        job = runner.submit("probe", {})
        wait_for(lambda: _status(store, job["id"]) == "failed", 30, what="failed")
        assert store.get_job(job["id"])["error"] == "ValueError: cbar must be > 0, got -1."
    finally:
        runner.stop()


def test_shutdown_interrupts_and_resume_continues(tmp_path):
    calls = []

    def two_steps(ctx):
        calls.append(dict(ctx.result()))
        if "step1" not in ctx.result():
            ctx.record(step1="done")
            while not ctx.should_stop():
                ctx.stop_event.wait(0.02)
            raise JobCancelled(ctx.stop_reason)
        return {"run_ids": ["run_x"]}

    runner, store = make_runner(tmp_path, {"pipeline": two_steps})
    runner.start()
    job = runner.submit("pipeline", {})
    wait_for(lambda: store.get_job(job["id"])["result"].get("step1"), 30, what="first step")
    runner.stop()
    assert _status(store, job["id"]) == "interrupted"
    assert store.get_job(job["id"])["messages"][-1]["text"] == (
        f"interrupted: the server stopped; POST /api/jobs/{job['id']}/resume continues it")

    runner2 = JobRunner(store, runner.settings, handlers={"pipeline": two_steps})
    runner2.start()
    try:
        runner2.resume(job["id"])
        wait_for(lambda: _status(store, job["id"]) == "succeeded", 30, what="resumed job done")
        assert calls[-1] == {"step1": "done"}  # the resumed attempt saw the first step's result
        assert store.get_job(job["id"])["result"]["run_ids"] == ["run_x"]
    finally:
        runner2.stop()


def test_start_marks_orphaned_running_jobs_interrupted(tmp_path):
    runner, store = make_runner(tmp_path, {"extract": lambda ctx: {}})
    job = store.add_job("extract", {})
    store.claim(job["id"])  # as if a killed process had been running it
    runner.start()
    try:
        assert _status(store, job["id"]) == "interrupted"
    finally:
        runner.stop()


def test_unknown_kind_is_refused(tmp_path):
    runner, _ = make_runner(tmp_path, {"extract": lambda ctx: {}})
    with pytest.raises(ValueError, match="Unknown job kind 'train'; available: extract"):
        runner.submit("train", {})


@pytest.mark.parametrize("kind,request_,device,expected", [
    ("extract", {}, "cuda", "gpu"), ("extract", {}, "cpu", "cpu"), ("pipeline", {}, "cuda:1", "gpu"),
    ("probe", {"config": {"device": "cpu"}}, "cuda", "cpu"), ("probe", {"config": {"device": "auto"}}, "cuda", "gpu"),
    ("probe", {"config": {"device": "cuda"}}, "cpu", "gpu"),
])
def test_job_resource(kind, request_, device, expected):
    assert JOB_KINDS[kind].resource(request_, device) == expected


def test_worker_is_generic(tmp_path):
    """A kind is run / resource / discard; the worker calls them and knows nothing of probes or caches."""
    import ast

    import app.worker

    tree = ast.parse(open(app.worker.__file__).read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    # probe.allocator: the process's heap setting for the job threads (share_main_arena), no probe code;
    # threads: the process's thread pools (MR2PROBE_THREADS); messages: a failed job's error as clients read it;
    # datadir: the data directory's lock; contextlib: JobContext.idle's slot hand-over
    assert imported == {"__future__", "collections.abc", "contextlib", "typing", "config", "datadir", "jobs", "status",
                        "store", "threads", "messages", "probe.allocator"}
    assert "pending_run" not in ast.unparse(tree)  # the probe step's own bookkeeping stays in the step
    discarded = []
    kind = JobKind(run=lambda ctx: {}, resource=lambda request, device: "cpu",
                   discard=lambda job, store, settings: discarded.append(job["id"]))
    runner, store = make_runner(tmp_path, {"thing": kind})
    job = store.add_job("thing", {})
    assert runner.cancel(job["id"])["status"] == "cancelled" and discarded == [job["id"]]


def test_one_gpu_job_at_a_time(tmp_path):
    release, started = threading.Event(), []
    settings = Settings(data_dir=tmp_path, cpu_jobs=4, device="cuda")  # no GPU needed: only scheduling
    store = Store(settings.db_path)
    runner = JobRunner(store, settings, handlers=blocking_handlers(release, started))
    runner.start()
    try:
        a, b = runner.submit("extract", {}), runner.submit("extract", {})
        wait_for(lambda: _status(store, a["id"]) == "running", 30, what="running")
        runner.wake()
        assert _status(store, b["id"]) == "queued"
        release.set()
        wait_for(lambda: _status(store, b["id"]) == JobStatus.succeeded.value, 30, what="done")
    finally:
        runner.stop()


def test_one_worker_per_data_dir(tmp_path):
    first, store = make_runner(tmp_path, {"extract": lambda ctx: {}})
    second = JobRunner(store, first.settings, handlers={"extract": lambda ctx: {}})
    first.start()
    try:
        with pytest.raises(RuntimeError, match="another mr2probe server is running the jobs of"):
            second.start()
    finally:
        first.stop()
    second.start()  # free again once the first one stopped
    second.stop()

    def broken():
        raise OSError("database is locked")

    with pytest.raises(OSError, match="locked"):  # a start that fails after locking releases the lock (a review)
        first.start(prepare=broken)
    second.start()
    second.stop()


def test_serve_refuses_a_data_dir_another_server_runs_in_one_line(tmp_path, capsys, monkeypatch):
    import uvicorn

    from app.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # a free data dir would start serving here
    first, _ = make_runner(tmp_path, {"extract": lambda ctx: {}})
    first.start()
    try:
        code = main(["serve", "--data-dir", str(first.settings.data_dir), "--port", "8999"])
    finally:
        first.stop()
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip() == (f"mr2probe serve: error: another mr2probe server is running the jobs of "
                           f"{first.settings.data_dir}; stop it first, or use another --data-dir")
    assert main(["serve", "--data-dir", str(first.settings.data_dir), "--port", "8999"]) == 0  # free again


def _registered(store, dataset_id: str) -> None:
    """A data set row for jobs to name (a job is queued only for rows that exist)."""
    store.add_dataset(name="d", source="path", path="/nowhere", class_names=["a"], counts={}, fingerprint=None,
                      skipped=0, dataset_id=dataset_id)


def test_cancelling_an_interrupted_extraction_removes_its_partial_file_only(tmp_path):
    from app.steps import cache_dir_for

    runner, store = make_runner(tmp_path, JOB_KINDS)
    _registered(store, "ds_1")
    cache_dir = cache_dir_for(runner.settings, "ds_1", "openclip:ViT-B-32")
    cache_dir.mkdir(parents=True)
    mine, other = cache_dir / "x-seed0.h5", cache_dir / "x-seed1.h5"
    job = store.add_job("extract", {"dataset_id": "ds_1", "encoder": "openclip:ViT-B-32", "options": {}})
    store.claim(job["id"])
    store.update_result(job["id"], extraction=str(mine))  # recorded by the extract step before it writes
    store.interrupt_running()
    for final in (mine, other):
        final.with_name(final.name + ".partial").write_bytes(b"half")
    mine.with_name(mine.name + ".lock").write_text("pid 1")  # left by the killed process
    assert runner.cancel(job["id"])["status"] == "cancelled"
    # Only this job's files go; another extraction of the same data set and encoder keeps its partial file.
    assert sorted(p.name for p in cache_dir.iterdir()) == ["x-seed1.h5.partial"]


@pytest.mark.parametrize("kind", ["probe", "pipeline"])
def test_cancelling_an_interrupted_probe_removes_its_half_written_run_and_lists_a_recorded_one(tmp_path, kind):
    """A probe killed mid-write, its job then cancelled, kept its run folder for good; one killed between its run's
    row and the job's record kept a run its cancelled job did not list (an operator round). A start-up sweep removes
    a run folder that no run and no job in progress holds."""
    from app.cleanup import sweep_data_dir

    runner, store = make_runner(tmp_path, JOB_KINDS)
    settings = runner.settings
    half, whole, other = (settings.runs_dir / name for name in ("run_half", "run_whole", "run_other"))
    for folder in (half, whole, other):
        folder.mkdir(parents=True)
        (folder / "report.json").write_text("{}")
    _registered(store, "ds_1")
    cache = store.add_cache(dataset_id="ds_1", encoder="e", path=str(tmp_path / "c.h5"), fingerprint="f",
                            num_features=4, class_names=["a"], counts={}, job_id=None)
    store.add_run(run_id="run_whole", job_id=None, cache_id=cache["id"], name="ce/linear", head="linear", loss="ce",
                  reference_run=None, path=str(whole), summary={})
    jobs = []
    for pending in ("run_half", "run_whole", "run_other"):
        job = store.add_job(kind, {"cache_id": cache["id"], "config": {}, "probes": []})
        store.claim(job["id"])
        store.update_result(job["id"], pending_run=pending, run_ids=[])  # recorded before the run's folder
        jobs.append(job["id"])
    store.interrupt_running()
    first = runner.cancel(jobs[0])
    assert first["status"] == "cancelled" and "pending_run" not in {k for k, v in first["result"].items() if v}
    assert not half.exists() and whole.exists() and other.exists()  # only that job's own folder
    second = runner.cancel(jobs[1])
    assert second["result"]["run_ids"] == ["run_whole"] and whole.exists()
    assert "run run_whole was recorded before the job stopped: kept, with its report" in \
        [m["text"] for m in second["messages"]]
    # a job cancelled before its cancel removed its run (its pending_run kept): the start-up sweep removes that
    # folder, and nothing else: not a resumable job's, not a folder no job names (a user's, a CLI run's, a newer
    # run's behind a restored database)
    stale = store.add_job(kind, {"cache_id": cache["id"], "config": {}, "probes": []})
    store.update_result(stale["id"], pending_run="run_0123456789ab")
    store.cancel_queued(stale["id"])
    for name in ("run_0123456789ab", "run_00000000cafe"):
        (settings.runs_dir / name).mkdir()
    (settings.runs_dir / "notes.txt").write_text("mine")
    assert sweep_data_dir(store, settings) == [settings.runs_dir / "run_0123456789ab"]  # run_other's job may resume
    assert sorted(p.name for p in settings.runs_dir.iterdir()) == ["notes.txt", "run_00000000cafe", "run_other",
                                                                   "run_whole"]


def test_the_start_up_sweep_keeps_every_run_however_many(tmp_path):
    """The first version kept only the folders of the newest 500 runs a list shows, and deleted older runs'
    reports at every start (a review)."""
    from app.cleanup import abandoned_runs

    runner, store = make_runner(tmp_path, JOB_KINDS)
    _registered(store, "ds_1")
    cache = store.add_cache(dataset_id="ds_1", encoder="e", path=str(tmp_path / "c.h5"), fingerprint="f",
                            num_features=4, class_names=["a"], counts={}, job_id=None)
    for i in range(502):
        name = f"run_{i:012x}"
        (runner.settings.runs_dir / name).mkdir(parents=True)
        store.add_run(run_id=name, job_id=None, cache_id=cache["id"], name="ce", head="linear", loss="ce",
                      reference_run=None, path=str(runner.settings.runs_dir / name), summary={})
        job = store.add_job("probe", {"cache_id": cache["id"], "config": {}})
        store.update_result(job["id"], pending_run=name)  # recorded, then the job succeeded with it
        store.cancel_queued(job["id"])
    assert len(store.run_paths()) == 502 and abandoned_runs(store, runner.settings) == []


def test_a_cancelled_extraction_hands_its_partial_file_to_a_queued_job_of_the_same_extraction(tmp_path):
    """Two requests of one extraction: the second waits, without a file of its own yet (it builds its encoder
    first). Cancelling the first removed the partial file the second would resume from (an attack round: all 180
    images encoded again); it is now the queued job's, whose own cancel then removes it."""
    from app.steps import cache_dir_for

    runner, store = make_runner(tmp_path, JOB_KINDS)
    _registered(store, "ds_1")
    cache_dir = cache_dir_for(runner.settings, "ds_1", "openclip:ViT-B-32")
    cache_dir.mkdir(parents=True)
    target = cache_dir / "x.h5"
    options = {"batch_size": None, "val_fraction": 0.2, "seed": 0, "max_per_class": None}
    request = {"dataset_id": "ds_1", "encoder": "openclip:ViT-B-32", "options": options}
    first = store.add_job("extract", request)
    store.claim(first["id"])
    store.update_result(first["id"], extraction=str(target))
    store.interrupt_running()
    other_seed = store.add_job("extract", {**request, "options": {**options, "seed": 1}})  # another file
    reused = store.add_job("extract", request)  # queued first, but its step found a registered cache: no extraction
    store.update_result(reused["id"], cache_id="cache_1")
    same = store.add_job("pipeline", {**request, "options": {**options, "batch_size": 8}, "probes": []})
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(b"half")
    assert runner.cancel(first["id"])["status"] == "cancelled"
    assert partial.exists() and store.get_job(same["id"])["result"]["extraction"] == str(target)
    assert "extraction" not in store.get_job(other_seed["id"])["result"]
    assert "extraction" not in store.get_job(reused["id"])["result"]
    assert runner.cancel(same["id"])["status"] == "cancelled"
    assert not partial.exists()  # no job left that would resume from it


def test_cache_dirs_of_long_encoder_names_fit_the_file_system(tmp_path):
    from app.steps import cache_dir_for

    settings = Settings(data_dir=tmp_path)
    # a weights file's path is left out: one folder for the family, its caches told apart by their fingerprint
    assert cache_dir_for(settings, "ds_1", "mocov2:/w/moco.pth").name == "mocov2_weights_file"
    assert cache_dir_for(settings, "ds_1", "mocov2:/" + "a" * 900 + "/x.pth").name == "mocov2_weights_file"
    assert cache_dir_for(settings, "ds_1", "openclip:ViT-B-32:laion2b").name == "openclip_ViT-B-32_laion2b"
    long_a, long_b = "openclip:ViT-B-32:" + "a" * 900 + "x", "openclip:ViT-B-32:" + "a" * 900 + "y"  # tags
    dir_a, dir_b = cache_dir_for(settings, "ds_1", long_a), cache_dir_for(settings, "ds_1", long_b)
    assert dir_a != dir_b and len(dir_a.name) == 117
    dir_a.mkdir(parents=True)


# A fresh process runs one job on a started JobRunner; the job keeps freed memory (as run_probe and extraction do)
# and counts the minor page faults of three allocate-touch-free cycles of a 100 MiB block (MALLOC_FAULTS).
JOB_FAULTS = MALLOC_FAULTS + textwrap.dedent(
    """
    import sys, tempfile, time
    sys.path.insert(0, {repo!r})
    from app.config import Settings
    from app.store import Store
    from app.worker import JobRunner
    from probe.allocator import keep_freed_memory

    def job(ctx):
        keep_freed_memory()
        return {{"faults": malloc_faults(100 << 20)}}

    settings = Settings(data_dir=tempfile.mkdtemp(), cpu_jobs=1, device="cpu")
    store = Store(settings.db_path)
    runner = JobRunner(store, settings, handlers={{"extract": job}})
    runner.start()
    job_id = runner.submit("extract", {{}})["id"]
    for _ in range(600):
        row = store.get_job(job_id)
        if row["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    runner.stop()
    print(row["status"], row["result"].get("faults"))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas (Linux)")
def test_jobs_threads_allocate_from_the_main_heap():
    """The runner shares the main arena before its threads start, so a job keeps the blocks it frees: 3 × 100 MiB
    would be 76,800 page faults from a thread's own arena (tests/probe/test_allocator.py)."""
    proc = subprocess.run([sys.executable, "-c", JOB_FAULTS.format(repo=str(REPO_ROOT))], capture_output=True,
                          text=True, timeout=120)
    status, faults = proc.stdout.split()
    assert status == "succeeded" and int(faults) < 1_000, (proc.stdout, proc.stderr[-2000:])


def test_cancelling_one_of_two_jobs_of_the_same_extraction_leaves_the_file_to_the_other(tmp_path):
    """Two jobs of the same data set, encoder and options write one partial file: job A was killed (interrupted,
    it resumes from the file), job B took the file over and is cancelled, queued or while it runs. A's work
    stays; once no other job owns it, the file goes with the cancelled job."""
    from app.steps import _discard_unless_in_use, cache_dir_for

    runner, store = make_runner(tmp_path, JOB_KINDS)
    _registered(store, "ds_1")
    cache_dir = cache_dir_for(runner.settings, "ds_1", "effnet-lite0")
    cache_dir.mkdir(parents=True)
    final = cache_dir / "x.h5"
    partial = final.with_name("x.h5.partial")
    request = {"dataset_id": "ds_1", "encoder": "effnet-lite0", "options": {}}
    a, b = store.add_job("extract", request), store.add_job("extract", request)
    for job in (a, b):
        store.claim(job["id"])
        store.update_result(job["id"], extraction=str(final))
    store.interrupt_running()  # both killed with the server
    partial.write_bytes(b"half")
    assert runner.cancel(b["id"])["status"] == "cancelled"
    assert partial.exists()  # A resumes from it
    store.resume(a["id"])
    store.claim(a["id"])  # A runs again; a cancel while it runs goes through the extract step's clean-up
    c = store.add_job("extract", request)
    store.update_result(c["id"], extraction=str(final))  # queued behind A, same file
    _discard_unless_in_use(store, a["id"], str(final))
    assert partial.exists()  # C will still use it
    assert runner.cancel(c["id"])["status"] == "cancelled"
    assert partial.exists()  # A is running on it
    _discard_unless_in_use(store, a["id"], str(final))
    assert not partial.exists()


def test_run_names_tell_two_runs_of_one_data_set_apart():
    """Two disparity runs of one data set were both 'ce/linear (kept: ...)' (a new-user round): the name carries
    the preset, and the budget and balanced accuracy where they were chosen."""
    from app.steps import job_what, run_name
    from probe import ProbeConfig

    erm = ProbeConfig()
    assert run_name(erm) == "ce/linear"
    fair = ProbeConfig(preset="disparity", max_overall_drop=3, overall_metric="balanced")
    assert run_name(fair) == f"disparity: {fair.loss}/{fair.head} (budget 3 pt; balanced)"
    assert run_name(fair, {"loss": "ce", "head": fair.head}) == f"disparity: ce/{fair.head} (kept: {fair.loss} " \
        "found no safe improvement; budget 3 pt; balanced)"
    # A cosine request that kept a linear reference ships a linear head: the name says so, and what was tried (it
    # read 'disparity: ce/cosine (kept: ...)'; a new-user round).
    cosine = ProbeConfig(preset="disparity", head="cosine")
    assert run_name(cosine, {"loss": "ce", "head": "linear"}) == \
        f"disparity: ce/linear (kept: {cosine.loss}/cosine found no safe improvement)"
    assert run_name(cosine, {"loss": cosine.loss, "head": "cosine"}) == f"disparity: {cosine.loss}/cosine"
    # the post-hoc bias and what its guard did, and epochs and folds set by hand: a post-hoc run and ERM runs of
    # other epochs all read "ce/linear" (a dashboard-only round)
    posthoc = ProbeConfig(posthoc_bias=True)
    assert run_name(posthoc) == "ce/linear + post-hoc bias (guarded)"
    assert run_name(posthoc, {"loss": "ce", "head": "linear"}, False) == "ce/linear + post-hoc bias (guard: not applied)"
    assert run_name(posthoc, None, True) == "ce/linear + post-hoc bias (guard: applied)"
    assert run_name(ProbeConfig(posthoc_bias=True, posthoc_guard=False)) == "ce/linear + post-hoc bias (unguarded)"
    assert run_name(ProbeConfig(epochs=30, cv=3)) == "ce/linear (30 epochs; cv 3)"
    assert run_name(ProbeConfig(cv=0)) == "ce/linear (no cross-validation)"
    # the folds run, where fewer than asked (the smallest class's count): a run asked for 20 that ran 8 read "cv 20"
    assert run_name(ProbeConfig(cv=20), None, None, None, 8) == "ce/linear (cv 8 of 20 asked)"
    assert run_name(ProbeConfig(cv=20), None, None, None, 20) == "ce/linear (cv 20)"
    assert run_name(ProbeConfig(), None, None, None, 3) == "ce/linear (cv 3 of 5 asked)"
    # none run (a validation split large enough): a run asked for 20 read "cv 20"; the default's asked folds unsaid
    assert run_name(ProbeConfig(cv=20), None, None, None, 0) == "ce/linear (no cross-validation, cv 20 asked)"
    assert run_name(ProbeConfig(), None, None, None, 0) == "ce/linear"
    assert run_name(ProbeConfig(cv=0), None, None, None, 0) == "ce/linear (no cross-validation)"
    asked = {"probes": [ProbeConfig(cv=20).model_dump(mode="json")], "cache_id": "c1"}
    assert job_what("probe", asked, {"cv_folds": {"ce/linear (cv 20)": 0}}) == \
        "probe on cache c1: ce/linear (no cross-validation, cv 20 asked)"
    assert run_name(ProbeConfig(temperature_scaling=True, epochs=30)) == "ce/linear (temperature-scaled; 30 epochs)"
    assert run_name(ProbeConfig(temperature_scaling=True), None, None, False) == "ce/linear (temperature: not applied)"
    assert run_name(ProbeConfig(temperature_scaling=True), None, None, True) == "ce/linear (temperature-scaled)"


def test_a_job_whose_cancellation_a_stopped_server_left_pending_starts_cancelled_not_resumable(tmp_path):
    """A running job a user cancelled, its server killed (or stopped past its join timeout, or an older version
    stopped) before the job's next check: it came back interrupted, 'POST .../resume continues it', its partial cache
    kept for a resume nobody wanted (an upgrade round). A cancellation asked before a later resume does not count."""
    from app.steps import cache_dir_for

    runner, store = make_runner(tmp_path, JOB_KINDS)
    _registered(store, "ds_1")
    cache_dir = cache_dir_for(runner.settings, "ds_1", "openclip:ViT-B-32")
    cache_dir.mkdir(parents=True)
    final = cache_dir / "x-seed0.h5"
    cancelled, resumed, older = (store.add_job("extract", {"dataset_id": "ds_1", "encoder": "openclip:ViT-B-32",
                                                           "options": {}}) for _ in range(3))
    for job in (cancelled, resumed, older):
        store.claim(job["id"])
        store.add_message(job["id"], "cancellation requested")  # what cancel() records
    store.interrupt(older["id"])  # as an older version's stop left a job it had been asked to cancel
    store.update_result(cancelled["id"], extraction=str(final))
    final.with_name(final.name + ".partial").write_bytes(b"half")
    store.interrupt(resumed["id"])  # the other one: cancelled, interrupted anyway, then resumed by the user
    store.resume(resumed["id"])
    store.claim(resumed["id"])
    runner.start()
    try:
        job = store.get_job(cancelled["id"])
        assert job["status"] == "cancelled"
        texts = [m["text"] for m in job["messages"]]
        assert "its cancellation had not taken effect" in texts[-2] and "resume" not in texts[-2]
        assert list(cache_dir.iterdir()) == []  # its partial file went with it
        assert store.get_job(older["id"])["status"] == "cancelled"
        job = store.get_job(resumed["id"])
        assert job["status"] == "interrupted"
        assert job["messages"][-1]["text"].endswith(f"POST /api/jobs/{resumed['id']}/resume continues it")
    finally:
        runner.stop()


def test_a_cancellation_at_start_up_whose_files_cannot_be_removed_does_not_keep_the_server_from_starting(tmp_path):
    """A job cancelled before its server was killed is cancelled when the next one starts; its partial file could
    not be removed (here: a file where its folder should be), and the error ended JobRunner.start: the server did
    not start, again at every try (a review)."""
    runner, store = make_runner(tmp_path, JOB_KINDS)
    _registered(store, "ds_1")
    (tmp_path / "not-a-folder").write_text("x")
    job = store.add_job("extract", {"dataset_id": "ds_1", "encoder": "openclip:ViT-B-32", "options": {}})
    store.claim(job["id"])
    store.add_message(job["id"], "cancellation requested")
    store.update_result(job["id"], extraction=str(tmp_path / "not-a-folder" / "x-seed0.h5"))
    runner.start()
    try:
        assert store.get_job(job["id"])["status"] == "cancelled"
        assert runner._dispatcher is not None and runner._dispatcher.is_alive()  # started: it dispatches jobs
    finally:
        runner.stop()


def test_a_failure_the_full_database_disk_could_not_record_is_recorded_once_it_can(tmp_path, monkeypatch):
    """On a full disk the job failed with ENOSPC and its 'failed' could not be written either ('database or disk is
    full'): the job stayed 'running' with no thread, neither cancellable nor resumable until a restart (an operator
    round). The worker writes the outcome again until the database takes it."""
    import errno
    import sqlite3

    def fill_disk(ctx):
        raise OSError(errno.ENOSPC, "No space left on device")

    runner, store = make_runner(tmp_path, {"extract": fill_disk})
    real_finish, refused = store.finish, []

    def finish(job_id, status, **kwargs):
        if status == JobStatus.failed and len(refused) < 3:
            refused.append(job_id)
            raise sqlite3.OperationalError("database or disk is full")
        return real_finish(job_id, status, **kwargs)

    monkeypatch.setattr(store, "finish", finish)
    runner.start()
    try:
        job = runner.submit("extract", {})
        wait_for(lambda: _status(store, job["id"]) == "failed", 30, what="the failure recorded")
        row = store.get_job(job["id"])
        assert len(refused) == 3 and row["error"] == "OSError: [Errno 28] No space left on device"
        assert store.resume(job["id"])["status"] == "queued"
    finally:
        runner.stop()


def test_a_graceful_stop_leaves_no_wal_file_and_every_row_in_the_database(tmp_path, tiny_zip):
    """The request threads' and the worker's connections stayed open to the end: after every graceful stop the
    -wal and -shm files stayed beside the database (an operator round). The stop now closes them; the last close
    checkpoints the WAL into the database, which then holds every row alone."""
    import sqlite3

    from fastapi.testclient import TestClient

    from app.main import create_app

    from app_testutils import make_settings

    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/datasets", files={"file": ("tiny.zip", tiny_zip, "application/zip")},
                           data={"name": "tiny images"})
        assert resp.status_code == 201, resp.text
        assert client.get("/api/datasets").status_code == 200  # a request thread's connection too
        assert settings.db_path.with_name(settings.db_path.name + "-wal").exists()
    for suffix in ("-wal", "-shm"):
        assert not settings.db_path.with_name(settings.db_path.name + suffix).exists(), suffix
    conn = sqlite3.connect(settings.db_path)
    try:
        assert conn.execute("SELECT name FROM datasets").fetchall() == [("tiny images",)]
    finally:
        conn.close()


def test_a_job_the_locked_database_stopped_is_resumable(tmp_path):
    """A job whose progress write the database refused (another process held it past the wait, a read-only or full
    disk: sqlite3.OperationalError, not an OSError) failed as a mistake of its request, with no Resume (a failure
    round). It is retryable, and resumes."""
    import sqlite3

    attempts = []

    def locked_once(ctx):
        attempts.append(ctx.job_id)
        if len(attempts) == 1:
            raise sqlite3.OperationalError("database is locked")
        return {}

    runner, store = make_runner(tmp_path, {"probe": locked_once})
    runner.start()
    try:
        job = runner.submit("probe", {})
        wait_for(lambda: _status(store, job["id"]) == "failed", 30, what="failed")
        failed = store.get_job(job["id"])
        assert failed["error"] == "OperationalError: database is locked" and failed["result"]["retryable"] is True
        runner.resume(job["id"])
        wait_for(lambda: _status(store, job["id"]) == "succeeded", 30, what="succeeded")
    finally:
        runner.stop()


def test_a_purge_during_a_cancel_waits_for_it_and_the_cancel_answers_the_cancelled_job(tmp_path):
    """A cancel of a queued job made it cancelled, then removed what it left and read it back; a purge of finished
    jobs in between (DELETE /api/jobs?older_than_days=0) removed its record, and the cancel, which had worked,
    answered 404 "job not found". The purge now waits for the cancel to be done. Reached here by purging from the
    cancelled kind's discard, in another thread (a purge that did not wait has removed the record when it returns)."""
    purged, discards = [], []

    def discard(job, store, settings):
        discards.append(job["id"])
        if len(discards) > 1:  # the purge's own
            return
        purge = threading.Thread(target=lambda: purged.extend(runner.purge("9999")))
        purge.start()
        purge.join(2)  # returns at once where the purge does not wait for the cancel

    runner, store = make_runner(tmp_path, {"extract": JobKind(lambda ctx: {}, discard=discard)})
    job = store.add_job("extract", {})
    assert runner.cancel(job["id"])["status"] == "cancelled"
    wait_for(lambda: purged, 30, what="the purge done after the cancel")
    assert purged == [job["id"]]


def test_a_cancel_the_database_refused_leaves_the_job_to_stop_as_the_server_stops_it(tmp_path, monkeypatch):
    """A cancel whose "cancellation requested" the database refused (locked, or its disk full: a 503 "try again
    later") had marked the job's stop a cancel all the same: the server's stop then ended it cancelled, its partial
    files gone, where the client was told nothing had been done. It ends interrupted, resumable."""
    import sqlite3

    release, started = threading.Event(), []
    runner, store = make_runner(tmp_path, blocking_handlers(release, started))
    add_message = store.add_message

    def refused(job_id, text):
        if text == "cancellation requested":
            raise sqlite3.OperationalError("database is locked")
        add_message(job_id, text)

    runner.start()
    try:
        job = runner.submit("extract", {})
        wait_for(lambda: started, 30, what="running")
        monkeypatch.setattr(store, "add_message", refused)
        with pytest.raises(sqlite3.OperationalError):
            runner.cancel(job["id"])
        monkeypatch.setattr(store, "add_message", add_message)
    finally:
        runner.stop()
    assert _status(store, job["id"]) == "interrupted"


def _cache_without_extractor(settings, data: bytes) -> str:
    """A cache row written before the extractor column (extractor NULL) whose file holds ``data``."""
    settings.caches_dir.mkdir(parents=True, exist_ok=True)
    path = settings.caches_dir / "old.h5"
    path.write_bytes(data)
    store = Store(settings.db_path)
    dataset, _ = store.find_or_add_dataset(name="d", source="path", path="/x", class_names=[], counts={},
                                           fingerprint=None, skipped=0, val_given=True)
    return store.add_cache(dataset_id=dataset["id"], encoder="e", path=str(path), fingerprint="f" * 64,
                           num_features=4, class_names=["x", "y"], counts={}, job_id=None)["id"]


def test_the_server_starts_past_a_damaged_cache_file_and_logs_it(tmp_path, caplog):
    """The start-up sweep reads each old cache row's file for its extractor: a damaged file is no reason not to
    start; it is logged, and its row stays without an extractor, to be tried at the next start."""
    import logging

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app_testutils import make_settings

    settings = make_settings(tmp_path / "state")
    cache_id = _cache_without_extractor(settings, b"not an HDF5 file")
    with caplog.at_level(logging.INFO, logger="app.cleanup"), TestClient(create_app(settings)) as client:
        assert client.get("/api/health").status_code == 200
    assert f"cache {cache_id}: its extractor is unknown for now (CacheMismatch)" in caplog.messages
    assert Store(settings.db_path).get_cache(cache_id)["extractor"] is None


def test_the_start_up_sweep_lets_a_programming_error_surface(tmp_path, monkeypatch):
    """The sweep caught every exception while it read a cache's extractor, which hid a NameError in a change until
    another test failed: only what a gone or damaged file raises is skipped."""
    import feature_cache

    from app.cleanup import sweep_data_dir

    settings = Settings(data_dir=tmp_path / "state")
    _cache_without_extractor(settings, b"not an HDF5 file")

    def broken(path, **_):
        raise NameError("name 'extractr' is not defined")

    monkeypatch.setattr(feature_cache, "open_cache", broken)
    with pytest.raises(NameError, match="extractr"):
        sweep_data_dir(Store(settings.db_path), settings)
