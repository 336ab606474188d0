"""The ``label_issues`` job kind: :func:`app.label_issues.find_label_issues` (``mr2probe label-issues``) run by the
worker, never inside a request (its ``folds`` fits take seconds to minutes), and its stored result.

The request (``app.validation``) names a finished run and the folds, checked before the job exists. The job writes
its ranked rows to ``label_issues/<job id>.json`` in the run's folder: a file of its own, which no other job writes
and which the run's deletion removes with it. It is written to a temporary name and renamed once complete, after
the last fit; a job that fails, or is cancelled or interrupted (it stops between folds), removes both, so that no
half-written result is ever read; then its index (:func:`index_file`), likewise, through which
``GET /api/runs/{id}/label-issues`` reads a page of the newest succeeded job's file (the file whole where it has
none). A removal of the job's record leaves them (they go with the run).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.files import atomic_write
from probe.label_issues import DEFAULT_METHOD, METHODS, weak_refit_caution
from probe.numbers import percent

from .caches import cache_file
from .jobs import JobCancelled, JobContext, device_resource
from .kept import Kept, file_identity
from .status import JobStatus, NotFound, job_no_room

if TYPE_CHECKING:
    from .config import Settings
    from .store import Store

KIND = "label_issues"
RESULTS_DIR = "label_issues"  # in a run's folder
FORMAT = 1  # the result file's layout


def result_file(run_dir: str | Path, job_id: str) -> Path:
    """Where job ``job_id`` writes its result, in the run's folder."""
    return Path(run_dir) / RESULTS_DIR / f"{job_id}.json"


def index_file(path: Path) -> Path:
    """The index beside result file ``path`` (``<job id>.index.npz``): where each row's line lies, and its label."""
    return path.with_name(path.name.removesuffix(".json") + ".index.npz")


def _remove(settings: Settings, path: Path) -> None:
    """The result file and its index, only under the service's runs folder (a failed write removes its own
    temporary file: :func:`probe.files.atomic_write`; a killed one's, the start-up sweep)."""
    from .removal import remove_under

    for each in (path, index_file(path)):
        remove_under(each, settings.runs_dir)


def _fold_progress(ctx: JobContext):
    """``find_label_issues`` calls ``progress(folds_done, folds)`` after each fit: reported, and a stop honoured."""

    def hook(done: int, total: int) -> None:
        ctx.progress(0.05 + 0.9 * done / total, f"fold {done}/{total} fitted")
        ctx.check_stop()

    return hook


def _write(path: Path, document: dict[str, Any]) -> None:
    """``document`` as JSON at ``path``, its rows last, one a line, then its index (:func:`index_file`): each row's
    byte span and label, and the size and modification time of the file it describes, so that a page reads its own
    rows alone (:class:`StoredIssues`). A result without its index (killed in between, or an older version's) is
    read whole."""
    import numpy as np

    run_dir = path.parent.parent
    if not run_dir.is_dir():  # made again (parents=True): a removed run's folder held this result alone, the job
        raise FileNotFoundError(f"the run's folder {run_dir} was removed while this job ran; its result is not "
                                "stored")  # 'succeeded' (a failure round)
    path.parent.mkdir(exist_ok=True)
    head = json.dumps({**{k: v for k, v in document.items() if k != "rows"}, "rows": []})[:-len("]}")] + "\n"
    lines = [json.dumps(row) for row in document["rows"]]  # ASCII (ensure_ascii): a character is a byte
    ends = len(head) + np.cumsum([len(line) + 2 for line in lines], dtype=np.int64) - 2  # each line, then ",\n"
    atomic_write(path, lambda name: Path(name).write_bytes((head + ",\n".join(lines) + "\n]}").encode("ascii")))
    written = path.stat()
    labels = _labels(document["class_names"], (row["true"] for row in document["rows"]))
    spans = np.stack([ends - [len(line) for line in lines], ends], axis=1).reshape(-1, 2)
    described = np.array([written.st_size, written.st_mtime_ns, len(head)], dtype=np.int64)
    atomic_write(index_file(path), lambda name: _savez(name, spans=spans, labels=labels, described=described))


def _savez(name: str, **arrays: Any) -> None:
    """``np.savez`` to the file ``name`` itself: given a name, it appends '.npz' to one without it (a temporary's)."""
    import numpy as np

    with open(name, "wb") as out:
        np.savez(out, **arrays)


def request_method(request: dict[str, Any]) -> str:
    """The job's method (:data:`probe.label_issues.METHODS`; a job queued before there was a choice: the default)."""
    return request.get("method") or DEFAULT_METHOD


def handle_label_issues(ctx: JobContext) -> dict[str, Any]:
    """Fit the run's configuration ``folds``-fold on its cache and store every train + val image its method lists
    out of fold (predicted otherwise than labelled, or flagged by confident learning), the lowest probability of
    its label first."""
    from probe.rundir import read_run

    req = ctx.request
    run = ctx.store.get_run(req["run_id"])
    cache_row = ctx.store.get_cache(run["cache_id"])
    target = result_file(run["path"], ctx.job_id)
    ctx.progress(0.0, "reading the run and its cache")
    ctx.message(f"fitting run {run['id']}'s configuration {req['folds']}-fold on the train + val images of cache "
                f"{cache_row['id']}, each image scored by the fold model that did not train on it")
    if req.get("folds_note"):  # folds not asked for, fewer than the default (app.validation; as the CLI says it)
        ctx.message(f"note: {req['folds_note']}")
    try:
        # of one run (read_run): a run replaced during the fits had the old run's listing stored as its own
        total, images, accuracy = read_run(run["path"], lambda: _fit_and_store(ctx, run, cache_row, target))
    except BaseException as exc:
        _remove(ctx.settings, target)  # never a half-written or a cancelled job's result
        if ctx.should_stop():
            raise JobCancelled(ctx.stop_reason or "cancel") from None
        raise
    method = request_method(req)
    ctx.message(f"{total} of {images} train + val images {METHODS[method]}, out of fold (out-of-fold accuracy "
                f"{percent(accuracy, 1)} %): GET /api/runs/{run['id']}/label-issues?method={method} lists them")
    caution = weak_refit_caution(accuracy)
    if caution:
        ctx.message(f"warning: {caution}")
    ctx.progress(1.0, "done")
    return {"label_issues": str(target.relative_to(run["path"]))}


def _fit_and_store(ctx: JobContext, run: dict[str, Any], cache_row: dict[str, Any], target: Path
                   ) -> tuple[int, int, float]:
    """:func:`handle_label_issues`'s fit of the run's report as it is now, and its result written: how many rows
    it lists, of how many images, and the refit's out-of-fold accuracy."""
    import numpy as np

    from .label_issues import fit_label_issues, refit_pool

    ctx.check_stop()  # a job cancelled during a fit that read_run does again
    req = ctx.request
    try:
        refit = refit_pool(run["path"], cache_file(cache_row, ctx.settings.data_root), req["folds"],
                           named=f"its cache {cache_row['id']!r}")
    except (ValueError, FileNotFoundError) as exc:  # checked at submit: the run or its cache replaced or removed since
        said = FileNotFoundError if isinstance(exc, FileNotFoundError) else ValueError  # a subclass may take
        raise said(f"run {run['id']!r} cannot be refitted as it is now: {exc}") from None  # other arguments
    try:
        found = fit_label_issues(refit, _fold_progress(ctx), request_method(req), req.get("device"))
    except ValueError as exc:  # a fold's fit that diverged: the run as it is, fitted on its cache, failed
        raise ValueError(f"run {run['id']!r}'s folds could not be fitted: {exc}") from None
    ctx.check_stop()
    labels = np.asarray(found.predictions.labels)
    rows = found.rows_of(None, None)
    # a full disk or a file-size limit said as the other jobs say it (it was the bare 'OSError: [Errno 28] ...')
    with job_no_room("the label-issues result", "nothing of it is kept"):
        _write(target, {"format": FORMAT, "run_id": run["id"], "job_id": ctx.job_id, "folds": found.folds,
                        "method": found.method, "params": found.params, "class_names": found.class_names,
                        "images": np.bincount(labels, minlength=len(found.class_names)).tolist(),
                        "accuracy": found.accuracy, "rows": rows})
    ctx.check_stop()
    return len(rows), len(labels), found.accuracy


def discard_label_issues(job: dict[str, Any], store: Store, settings: Settings) -> None:
    """On cancelling a queued or interrupted job: whatever a killed attempt left of its result. A succeeded job's
    result stays when its record is removed (``DELETE /api/jobs/{id}/record``, a purge): it is the run's, read by
    :func:`newest_result`, and goes with the run (a purge of old job records deleted every run's likely wrong
    labels)."""
    if job.get("status") == JobStatus.succeeded.value:
        return
    try:
        run = store.get_run(job["request"]["run_id"])
    except (NotFound, KeyError):  # the run went with its folder
        return
    _remove(settings, result_file(run["path"], job["id"]))


def label_issues_resource(request: dict[str, Any], device: str) -> str:
    """The GPU when the run trained on one (its stored ``device``), as a probe job of its configuration
    (``app.steps.probe_resource``)."""
    return device_resource(request.get("device"), device)


@dataclass(frozen=True)
class StoredIssues:
    """A stored result: its ``head`` (the document less its rows, checked by :func:`_stored`), each row's label (a
    class index, rows in rank order) and ``read``, the rows at given positions (of the document read whole, or read
    from the file line by line through its index); ``damaged``: what a row that cannot be read is said to be."""

    head: dict[str, Any]
    labels: Any  # numpy int array
    read: Callable[[Any], list[dict[str, Any]]]
    damaged: str = "damaged"

    def page(self, class_index: int | None, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many rows are labelled ``class_index`` (of every class where None), and ``limit`` of them from
        ``offset``. Raises LookupError (:attr:`damaged`) for a row that does not read as one."""
        import numpy as np

        chosen = np.arange(len(self.labels)) if class_index is None else np.flatnonzero(self.labels == class_index)
        try:
            return len(chosen), self.read(chosen[offset:offset + limit])
        except (OSError, ValueError):
            raise LookupError(self.damaged) from None


def _labels(class_names: list[str], names) -> Any:
    """The class index of each of ``names``; ValueError for a name that is none of ``class_names``."""
    import numpy as np

    index = {name: i for i, name in enumerate(class_names)}
    try:
        return np.array([index[name] for name in names], dtype=np.int32)
    except KeyError as exc:
        raise ValueError(f"a row labelled {exc.args[0]!r}, none of the classes") from None


def _whole(text: str) -> StoredIssues:
    """The result document ``text`` read and checked whole (a file without its index)."""
    document = _stored(text)
    rows = document.pop("rows")
    return StoredIssues(document, _labels(document["class_names"], (row["true"] for row in rows)),
                        lambda at: [dict(rows[i]) for i in at])


def _through_index(path: Path) -> StoredIssues | None:
    """The result at ``path`` read through its index (:func:`_write`): its head alone, then each page's own rows, each
    checked as it is read; None where there is no index of this very file (none written, the file rewritten, or an
    index that is not as :func:`_write` writes it: :func:`_index_holds`)."""
    import zipfile

    import numpy as np

    try:
        with np.load(index_file(path)) as index:
            spans, labels, described = index["spans"], index["labels"], index["described"]
        stat = path.stat()
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if not _index_holds(spans, labels, described, stat):
        return None
    try:  # a head's length that is not the file's: the file, read whole, says whether it is damaged
        with open(path, "rb") as file:
            document = _stored(file.read(int(described[2])).decode("ascii", errors="replace") + "]}")
    except ValueError:
        return None
    names = document["class_names"]
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(names):
        return None  # labels of classes the file does not have: the file, read whole, says which rows it holds
    row_layout, defaults = _layout()[1:]

    def read(at) -> list[dict[str, Any]]:
        rows = []
        with open(path, "rb") as file:
            for i in at:
                file.seek(int(spans[i, 0]))
                row = {**defaults, **row_layout.validate_json(file.read(int(spans[i, 1] - spans[i, 0])))}
                if row["true"] != names[labels[i]]:
                    raise ValueError(f"row {i} is not labelled as its index says")
                rows.append(row)
        return rows

    return StoredIssues({k: v for k, v in document.items() if k != "rows"}, labels, read)


def _index_holds(spans, labels, described, stat: os.stat_result) -> bool:
    """Whether an index's arrays are as :func:`_write` writes them of the file whose ``stat`` is given: integer
    ``spans`` (n, 2), each between the head's end and the file's, ``labels`` (n,) and ``described`` (its size, its
    modification time, its head's length). Edited ones (0-d, float, negative, out of the file, bool) answered a 500
    on a page of likely wrong labels, or a 404 saying a whole result damaged (an attack round)."""
    import numpy as np

    integers = all(np.issubdtype(a.dtype, np.integer) for a in (spans, labels, described))
    if not integers or described.shape != (3,) or labels.ndim != 1 or spans.shape != (len(labels), 2):
        return False
    size, changed, head = (int(n) for n in described)
    if (size, changed) != (stat.st_size, stat.st_mtime_ns) or not 0 < head <= size:
        return False
    return not len(spans) or bool((spans[:, 0] >= head).all() and (spans[:, 0] <= spans[:, 1]).all()
                                  and (spans[:, 1] <= size).all())


def _stored(text: str) -> dict[str, Any]:
    """A result file's document, checked to be of this layout (:data:`FORMAT`) whole: ValueError otherwise (a file
    damaged or written over by hand, or by another version, answered a 500 where it was read). Its rows are checked
    as plain dicts of ``LabelIssueItem``'s fields, each absent default filled in: a model per row, dumped again, took
    4.1 s and 881 MB of peak resident memory for 344,000 rows (an 84 MB file), 1.4 s and 507 MB so."""
    layout, _, defaults = _layout()
    document = layout.validate_json(text)
    if len(document["images"]) != len(document["class_names"]):
        raise ValueError(f"{len(document['images'])} image counts for {len(document['class_names'])} classes")
    document.setdefault("method", None)  # written before the choice
    document.setdefault("accuracy", None)  # written before it was kept
    for name, default in defaults.items():
        for row in document["rows"]:
            row.setdefault(name, default)
    return document


@functools.cache
def _layout() -> tuple[Any, Any, dict[str, Any]]:
    """The result file's layout as a pydantic ``TypeAdapter`` of typed dicts (its rows of ``LabelIssueItem``'s
    fields, one definition), that of one row, and the defaults of the row fields it may leave out."""
    from typing import Annotated, Literal, Optional

    from pydantic import NonNegativeInt, TypeAdapter
    from typing_extensions import NotRequired, TypedDict

    from .schemas import LabelIssueItem, LabelIssuesMethod, LabelIssuesOut

    def typed(field):  # a field's type with its constraints (a probability in [0, 1], a row >= 0)
        return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation

    fields, out = LabelIssueItem.model_fields, LabelIssuesOut.model_fields
    row = TypedDict("Row", {name: typed(field) if field.is_required() else NotRequired[typed(field)]
                            for name, field in fields.items()})
    document = TypedDict("Document", {
        "format": Literal[FORMAT], "method": NotRequired[Optional[LabelIssuesMethod]],  # type: ignore[valid-type]
        "accuracy": NotRequired[typed(out["accuracy"])],  # written since the refit's accuracy was said
        "folds": typed(out["folds"]), "params": typed(out["params"]), "class_names": list[str],
        "images": list[NonNegativeInt], "rows": list[row]})
    return (TypeAdapter(document), TypeAdapter(row),
            {name: field.default for name, field in fields.items() if not field.is_required()})


# Every GET of a run's likely wrong labels (a page of 24) read its result file whole, parsed it and checked every
# row: 30 ms at CIFAR-10's 9,051 rows, 3 s at 344k rows (71 MB; bench/README.md); kept since, the first GET still
# did (1.5 s and +400 MB peak at 344k rows). A result with its index is read a page at a time (its head and index
# kept: ~7 MB at 344k rows); one without (an older version's, or one written by hand) is read whole and kept
# (~155 MB at 344k rows). Both, and the methods of the files of removed jobs' records, are kept by each file's
# identity (a job's file is renamed in complete: a new identity).
_DOCUMENTS = Kept(4)
_METHODS = Kept(256)


def _document(path: Path) -> StoredIssues:
    """The result at ``path``, through its index where it has one, else read whole (kept since its last read while
    the file is unchanged): OSError or ValueError as reading and :func:`_stored` raise them."""
    key = file_identity(path)  # taken before the read: a file replaced meanwhile is read again next time
    stored = _DOCUMENTS.get(key)
    if stored is None:
        stored = _through_index(path) or _whole(path.read_text(encoding="utf-8"))
        _DOCUMENTS.put(key, stored)
    return stored


def _method_of(path: Path) -> str | None:
    """The method a result file records (the default for one written before there was a choice); None where it
    cannot be read (:func:`newest_result` then says it is damaged, if it is the newest)."""
    key = file_identity(path)
    method = _METHODS.get(key)
    if method is None:
        try:
            method = _document(path).head["method"] or DEFAULT_METHOD
        except (OSError, ValueError):
            method = ""  # kept too: a damaged file is not read again for each run page
        _METHODS.put(key, method)
    return method or None


def _of_removed_jobs(store: Store, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The results in the run's folder whose job's record was removed, each as the job's ``id``, ``finished_at``
    (the file's last change: it was renamed complete as the job ended), ``request`` (its ``method``, read from the
    file) and ``result``."""
    from datetime import datetime, timezone

    try:
        files = {path.name[:-len(".json")]: path for path in (Path(run["path"]) / RESULTS_DIR).glob("*.json")}
    except OSError:
        return []
    if not files:
        return []
    marks = ", ".join("?" for _ in files)
    known = {row["id"] for row in store.rows(f"SELECT id FROM jobs WHERE id IN ({marks})", tuple(files))}
    found = []
    for job_id, path in files.items():
        if job_id in known:
            continue
        try:
            changed = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        except OSError:
            continue
        found.append({"id": job_id, "finished_at": changed.isoformat(timespec="milliseconds"),
                      "request": {"method": _method_of(path)},
                      "result": {"label_issues": str(path.relative_to(run["path"]))}})
    return found


def stored_methods(store: Store, run: dict[str, Any]) -> list[str]:
    """The methods whose likely wrong labels of ``run`` are stored, newest first: its succeeded jobs' and the
    results of jobs whose record was removed (the run page offered to look for them again after a purge; a
    review)."""
    where, args = store.job_filter(JobStatus.succeeded, KIND, run["id"])
    rows = store.rows(f"SELECT request, finished_at FROM jobs {where}", args)
    found = [(row["finished_at"] or "", request_method(row["request"])) for row in rows]
    found += [(row["finished_at"], row["request"]["method"]) for row in _of_removed_jobs(store, run)
              if row["request"]["method"]]
    return list(dict.fromkeys(method for _, method in sorted(found, reverse=True)))


# why a run no job can refit has no likely wrong labels, in place of the request that starts one
NO_FEATURES = ("none can be found: its report, written before runs recorded their features' fingerprint, has nothing "
               "to check its cache against (POST /api/jobs refuses it); train the run again to find them")


def _how_to_start(run: dict[str, Any], start: str) -> str:
    """``start`` (the request that finds a run's likely wrong labels), or :data:`NO_FEATURES` for a run whose report
    records no features (an older version's): the 404 advised a request the service refuses (an upgrade round)."""
    from probe import load_report

    try:
        return NO_FEATURES if load_report(run["path"]).features is None else start
    except (OSError, ValueError):  # a report that does not read: the request's refusal says why
        return start


def newest_result(store: Store, run: dict[str, Any], method: str | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The newest succeeded label-issues job of ``run`` (of ``method`` when given; a job that named none ran
    the default; one whose record was removed too: its result stays) and its stored result, whose head's ``method``
    is filled in for results written before it was stored.

    Raises:
        LookupError: none finished, or its file is gone or is not a result of this layout (the message says how
            to start one).
    """
    run_id = run["id"]
    asked = "" if method is None else f', "method": "{method}"'
    start = (f'POST /api/jobs {{"kind": "{KIND}", "run_id": "{run_id}"{asked}}} finds them (or the run page\'s '
             '"Likely wrong labels")')
    where, args = store.job_filter(JobStatus.succeeded, KIND, run_id)
    rows = store.rows(f"SELECT * FROM jobs {where} AND (? IS NULL OR COALESCE(json_extract(request, '$.method'), ?) "
                      "= ?) ORDER BY finished_at DESC, rowid DESC LIMIT 1", (*args, method, DEFAULT_METHOD, method))
    rows += [row for row in _of_removed_jobs(store, run) if method is None or row["request"]["method"] == method]
    if not rows:
        of = "" if method is None else f" by {method}"
        raise LookupError(f"run {run_id!r} has no likely wrong labels found{of} yet: {_how_to_start(run, start)}")
    job = max(rows, key=lambda row: row["finished_at"] or "")
    path = Path(run["path"]) / str(job["result"].get("label_issues") or "")
    damaged = f"the result of job {job['id']!r} (likely wrong labels of run {run_id!r}) is gone or damaged: {start}"
    try:
        stored = _document(path)
    except (OSError, ValueError):
        raise LookupError(damaged) from None
    head = {**stored.head, "method": stored.head["method"] or request_method(job["request"])}
    return job, dataclasses.replace(stored, head=head, damaged=damaged)
