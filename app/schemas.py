"""Request and response models of the REST API (the OpenAPI schema is generated from these)."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, Optional, Union

from fastapi import Path, Query
from feature_cache.defaults import (DEFAULT_ENCODER, DEFAULT_VAL_FRACTION, ENCODER_HELP, MAX_BATCH_SIZE, MAX_PER_CLASS,
                                    MAX_SEED, VAL_FRACTION_BOUNDS)
from probe import ProbeConfig
from probe.config import DEFAULT_CV_FOLDS, MAX_CV_FOLDS, MIN_CV_FOLDS
from probe.deploy import PredictedShare, Scores
from probe.label_issues import DEFAULT_METHOD, METHODS
from probe.names import MAX_NAME, UNPRINTABLE, UNPRINTABLE_CHARACTERS
from probe.report import TestCheck, Verdict, probe_label
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt,
                      StringConstraints, ValidationError, WithJsonSchema, field_validator, model_validator)

from .messages import ERROR_GIVEN
from .predicted_near import NearTrain
from .status import JobStatus

# Bounds of every client-supplied string and list (a request is also capped at MR2PROBE_MAX_JSON_BYTES).
MAX_PROBES = 8
MAX_ENCODER_NAME = 1024  # characters of an encoder name (an openclip or mocov2 one holds a weights file's path)
ID_PATTERN = r"^[A-Za-z0-9_.-]+$"  # every id the service makes (run_…, job_…, ds_…, cache_…)
MAX_ID = 64  # characters of an id a client gives
RowId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]
# The published patterns' class of refused characters: probe.names.UNPRINTABLE and the lone surrogates
# (:func:`_printable` refuses both) in ECMA-262, JSON Schema's dialect, which has no \UXXXXXXXX escape (Ajv and
# node threw on it, or without the u flag refused "abc"; an integration round): an astral character stands as
# itself, one code point under the u flag that JSON Schema validators use, and Python's re reads it alike.
_REFUSED = re.sub(r"\\U([0-9a-fA-F]{8})", lambda m: chr(int(m[1], 16)), UNPRINTABLE) + r"\ud800-\udfff"
# None of them (control, text-direction, separator and zero-width characters: names are shown in terminals, logs
# and pages), as class names; a name of spaces alone is empty once stripped.
PRINTABLE = rf"^[^{_REFUSED}]+$"
# A name's: one of them at least is not white space, which the server strips (" " passed the schema and was
# refused as empty; an integration round)
NAME_TEXT = rf"^[^{_REFUSED}]*[^{_REFUSED}\s][^{_REFUSED}]*$"


def _unicode_text(value: str) -> str:
    """``value``, where it holds no lone surrogate ("\\ud800" in JSON is no Unicode text: the database refused it
    with a 500; an attack round): ValueError naming it and where otherwise."""
    lone = next((i for i, c in enumerate(value) if 0xD800 <= ord(c) <= 0xDFFF), None)
    if lone is not None:
        raise ValueError(f"character U+{ord(value[lone]):04X} at position {lone + 1} is a lone surrogate, not "
                         "Unicode text")
    return value


def _note_text(value: Any) -> Any:
    """A note's Windows line breaks (CR LF, or a lone CR) as LF (CR LF was refused; an attack round), before its
    length is checked; a lone surrogate named first (the string's own check would call it unparsable data)."""
    return _unicode_text(value.replace("\r\n", "\n").replace("\r", "\n")) if isinstance(value, str) else value


def _printable(allowed: str = "") -> Any:
    """A check that names the first character of ``UNPRINTABLE`` (less ``allowed``) a string holds, and where: the
    pattern's own message printed its whole character class, 580 bytes of escapes (an attack round). The schema
    keeps the pattern."""

    def check(value: str) -> str:
        _unicode_text(value)
        for found in UNPRINTABLE_CHARACTERS.finditer(value):
            if found.group() not in allowed:
                kept = "; line breaks and tabs are allowed" if allowed else ""
                raise ValueError(f"character U+{ord(found.group()):04X} at position {found.start() + 1} is not "
                                 f"printable (control, text-direction, separator and zero-width characters are "
                                 f"refused{kept})")
        return value

    return AfterValidator(check)


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME), _printable(),
                 WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": NAME_TEXT})]
ServerPath = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")]
IdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN,
                             description="an id as returned by the API")]
EncoderName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENCODER_NAME), _printable(),
                        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_ENCODER_NAME,
                                        "pattern": PRINTABLE})]


class ErrorOut(BaseModel):
    """Every error response: ``{"detail": "<what went wrong>"}`` (422 validation errors list the fields)."""

    detail: str | list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {401: "missing or wrong bearer token", 404: "no such id",
                       422: "invalid request"}.items()
}


def download(media_type: str, description: str) -> dict[str, Any]:
    """The 200 of a route answering a file of ``media_type``, with the schema of its body (it had none: a generated
    client could not type it; an integration round): bytes for an image or archive, text for a text/ type."""
    body = {"type": "string"} if media_type.startswith("text/") else {"type": "string", "format": "binary"}
    return {"content": {media_type: {"schema": body}}, "description": description}


# What the middleware at the service's edge (app.middleware) answers before a route runs, documented on the
# operations it reaches: an untrusted Host header on every one (app.main adds it to every router), a body over
# MR2PROBE_MAX_JSON_BYTES on every one that takes a JSON body (they were answered, not documented: an integration
# round, whose generated client knew no 400 or 413)
HOST_REFUSED: dict[int | str, dict[str, Any]] = {400: {
    "model": ErrorOut, "description": "Host header not one this server answers to (the listening host, localhost and "
    "MR2PROBE_ALLOWED_HOSTS)"}}
BODY_TOO_LARGE: dict[int | str, dict[str, Any]] = {413: {
    "model": ErrorOut, "description": "request body over MR2PROBE_MAX_JSON_BYTES (checked before it is parsed)"}}
# DELETE /api/datasets|caches|runs/{id}?dry_run= (app.removal) and its answers.
DRY_RUN = Query(False, description="delete nothing: answer with what the request would delete now (or its 409)")
DELETE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES, 409: {"model": ErrorOut, "description": "a queued, running or interrupted job uses it, or it "
                             "has caches / runs and cascade is not set: nothing was deleted"}}


# -- data sets and caches --------------------------------------------------------------------------
class DatasetRegister(BaseModel):
    """Register a directory (or archive) that already lies on the server, under the configured data root."""

    model_config = ConfigDict(extra="forbid")
    path: ServerPath = Field(..., description="absolute, or relative to the data root")
    name: Name | None = None
    unlabelled: StrictBool = Field(False, description="every image file under the path, in any folders, without "
                                   "classes: images a finished run's probe predicts (an extract job, then "
                                   "GET /api/runs/{id}/predictions.csv); nothing trains or is scored on them")


class CacheRegister(BaseModel):
    """Register a finished feature cache file that lies on the server, under the configured data root."""

    model_config = ConfigDict(extra="forbid")
    path: ServerPath = Field(..., description="the .h5 file written by `mr2probe extract` (absolute, or relative to "
                             "the data root); the data set it was extracted from must be registered first")


class DatasetOut(BaseModel):
    id: str
    name: str
    source: Literal["upload", "path"]
    class_names: list[str]
    labelled: bool = Field(..., description="false for unlabelled images (registered with `unlabelled`): one "
                           "class, '(unlabelled)', every image in 'test'; only an extract job takes them")
    counts: dict[str, list[int]] = Field(..., description="split → images per class, in class order")
    imbalance: float | None = Field(None, description="largest / smallest class among the train + val images "
                                    "(every split but test; probe.decision.imbalance_ratio); null with < 2 "
                                    "classes")
    val_given: bool | None = Field(None, description="whether its val split is its own (a val/ folder or manifest "
                                   "val rows), used as it is: a `val_fraction` does nothing on it; else val is carved "
                                   "from train. Null for data sets registered before it was recorded")
    num_images: int
    skipped: int = Field(..., description="files left out when the data set was registered (not an image file by "
                         "its extension, or a photo format not read, such as .heic; outside the class or split "
                         "folders; hidden, metadata or empty; unsafe links or special files); an image that fails "
                         "to decode is found when it is extracted: the extraction job's messages and the cache's "
                         "'skipped' list count it; which files and why: GET /api/datasets/{id}/skipped")
    fingerprint: str | None
    warnings: list[str] = Field(default_factory=list, description="what an extraction of it warns of before it "
                                "starts (feature_cache.options.cautions: lookalike class names, nested or split-named "
                                "class folders, test images identical to train images, a file under two classes, "
                                "imbalanced classes), as registered; empty for data sets registered before")
    problem: Optional[str] = Field(None, description="why no job can read its files now (gone from the server, "
                                   "moved behind a symlink), else null: a job on it is refused with this; classes "
                                   "changed since its registration are found when a job is requested")
    created_at: str


class SkippedReason(BaseModel):
    reason: str = Field(..., description="why, as the reader says it: 'not an image file (extension '.txt')', "
                        "'an image format that is not read (extension '.HEIC'): convert it to JPEG or PNG', 'not "
                        "inside a class folder', 'hidden or metadata file', ...")
    count: int = Field(..., description="files skipped for it")
    examples: list[str] = Field(..., description="the first few of them (up to 3), as named in the data set")


class SkippedFile(BaseModel):
    name: str = Field(..., description="the file, relative to the data set (control characters and bytes that are "
                      "not UTF-8 escaped)")
    reason: str


class SkippedOut(BaseModel):
    """Which files a data set's registration left out, and why (an image that fails to decode is found later, when
    it is extracted: the extraction job's messages name it)."""

    dataset_id: str
    total: int = Field(..., description="files skipped at registration (the data set's `skipped`)")
    recorded: bool = Field(..., description="false for a data set registered before the files were recorded: "
                           "`total` alone, `note` says how to record them")
    reasons: list[SkippedReason] = Field(..., description="the reasons, the most frequent first, each with its count "
                                         "over every skipped file and examples (at most 50 reasons)")
    kept: int = Field(..., description="skipped files recorded (the first 5,000 found), which `items` pages through")
    limit: int
    offset: int
    items: list[SkippedFile] = Field(..., description="the recorded files from `offset`, in the order found")
    note: Optional[str] = Field(None, description="what is not listed (files past the first 5,000, reasons past "
                                "the 50 most frequent), or why nothing is (registered before); null when all is")


class CacheOut(BaseModel):
    id: str
    dataset_id: str
    encoder: str
    extractor: Optional[str] = Field(None, description="the fingerprint of the features' extractor (encoder, weights, "
                                     "preprocessing; feature_cache.extractor_fingerprint), as a run's report "
                                     "records it: a run's probe applies to the caches of its own (of one checkpoint "
                                     "at any path), which its page offers to score it on; null where the file "
                                     "could not be read")
    fingerprint: str | None
    num_features: int | None
    class_names: list[str]
    labelled: bool = Field(..., description="false for a cache of unlabelled images: a run predicts them "
                           "(predictions.csv), nothing scores or trains on them")
    counts: dict[str, Any]
    job_id: str | None
    source: Literal["extraction", "path"] = Field(..., description="extraction: written by a job of the service "
                                                  "(its file goes with it); path: a file registered by path (POST "
                                                  "/api/caches), which a deletion leaves on the server")
    file: Optional[str] = Field(None, description="a cache registered by path: its file, relative to the data root")
    problem: Optional[str] = Field(None, description="why its file cannot be read as this cache now (gone, moved "
                                   "behind a symlink, changed since its registration), else null: a job or a score "
                                   "on it is refused with this")
    created_at: str


class DeletedItem(BaseModel):
    kind: Literal["data set", "cache", "run"]
    id: str
    name: str | None = Field(None, description="a data set's or run's name; null for a cache")


class DeletedOut(BaseModel):
    """What a DELETE removed (``app.removal``): the row named and, with ``cascade=true``, its dependents (first)."""

    deleted: list[DeletedItem]
    notes: list[str] = Field(default_factory=list, description="what was left as it was: a folder registered by "
                             "path, runs that took a deleted run as their reference")
    dry_run: bool = Field(False, description="true: nothing was deleted; `deleted` is what the same request without "
                          "dry_run would delete now")


# -- jobs ------------------------------------------------------------------------------------------
# What a cap per class means, for the API, the CLI and the dashboard alike (feature_cache.open_dataset's rule)
MAX_PER_CLASS_HELP = ("at most this many images per class in each given split (train/, val/, test/ folders; seeded); "
                      "a data set without split folders: in all, before test and val are carved from them")


class ExtractOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1, 1.0 not 1 (an attack round)
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH_SIZE, description="images per chunk (default: server "
                                   "setting)")
    val_fraction: float = Field(DEFAULT_VAL_FRACTION, gt=VAL_FRACTION_BOUNDS[0], lt=VAL_FRACTION_BOUNDS[1],
                                allow_inf_nan=False,
                                description="share of train carved out as val if absent")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    max_per_class: int | None = Field(None, ge=1, le=MAX_PER_CLASS, description=MAX_PER_CLASS_HELP)

    def changed(self) -> list[str]:
        """The options whose value is not their default, in field order: what changes an extraction. A value sent
        equal to its default changes nothing (a client generated from the schema sends every default; an
        integration round)."""
        return [name for name, field in type(self).model_fields.items()
                if getattr(self, name) != field.get_default(call_default_factory=True)]


class ExtractJob(BaseModel):
    """Extract (or reuse) the feature cache of a data set with one encoder."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["extract"]
    dataset_id: RowId
    encoder: EncoderName = Field(DEFAULT_ENCODER, description=ENCODER_HELP)
    options: ExtractOptions = Field(default_factory=ExtractOptions)


class ProbeJob(BaseModel):
    """Train one probe on a cache; ``reference_run`` (an ERM run) supplies the easy/medium/hard groups."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["probe"]
    cache_id: RowId
    config: ProbeConfig = Field(default_factory=ProbeConfig)
    reference_run: RowId | None = None


class PipelineJob(BaseModel):
    """Extraction, then the probes in order; the first probe (ERM) is the reference run of the others. With
    ``cache_id`` instead of ``dataset_id``, the probes on a cache there already (no extraction)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["pipeline"]
    dataset_id: RowId | None = Field(None, description="the data set to extract (with encoder and options)")
    cache_id: RowId | None = Field(None, description="instead of dataset_id: train the probes on this cache (one "
                                   "registered by path with POST /api/caches, or extracted before)")
    encoder: EncoderName = Field(DEFAULT_ENCODER, description=f"with dataset_id: {ENCODER_HELP}. With cache_id, "
                                 "leave it out (the default, or the cache's own encoder, is taken; another is refused)")
    options: ExtractOptions = Field(default_factory=ExtractOptions)
    probes: list[ProbeConfig] = Field(..., min_length=1, max_length=MAX_PROBES)
    reuse_reference: StrictBool = Field(True, description="when a finished run on the same cache trained exactly the first "
                                  "probe's configuration as its job's reference (an ERM run of another pipeline), "
                                  "take it as the reference instead of training it again; false: train it again")

    @model_validator(mode="after")
    def _one_source(self) -> "PipelineJob":
        if (self.dataset_id is None) == (self.cache_id is None):
            raise ValueError("give dataset_id (extract, then the probes) or cache_id (the probes on a cache), "
                             "exactly one of them")
        # options at their defaults change nothing (a generated client sends them); the encoder is checked against
        # the cache's own (app.validation.validate_job)
        if self.cache_id is not None and self.options.changed():
            raise ValueError("options describes an extraction; with cache_id the cache's features are used as they "
                             "are: leave it out")
        return self


LabelIssuesMethod = Literal[tuple(METHODS)]  # probe.label_issues.METHODS, the CLI's --method
METHOD_DESCRIPTION = ("which images to list, each ranked by its out-of-fold p(label), lowest first: "
                      + "; ".join(f"{name}, those {what}" for name, what in METHODS.items()))


class LabelIssuesJob(BaseModel):
    """Find the likeliest wrong train + val labels of a finished run (``mr2probe label-issues``): its chosen
    configuration fitted ``folds``-fold on its cache, each image scored by the fold model that did not train on it;
    the result is read with GET /api/runs/{run_id}/label-issues."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["label_issues"]
    run_id: RowId
    folds: Optional[StrictInt] = Field(None, ge=MIN_CV_FOLDS, le=MAX_CV_FOLDS,  # "3" is not 3 (as ExtractOptions)
                                 description="stratified folds of the run's train + val images, one fit each; at "
                                 "most the smallest class's images there; default: "
                                 f"{DEFAULT_CV_FOLDS}, or that smallest count where fewer (the job's log says so)")
    method: LabelIssuesMethod = Field(DEFAULT_METHOD, description=METHOD_DESCRIPTION)
    # "" was taken as absent, the run's device, without a word (an attack round): a device is named, or left out
    device: Optional[str] = Field(None, min_length=1, max_length=16, description="where the folds are fitted: auto "
                                  "(the service's device), cpu, cuda or cuda:N; default the device the run trained "
                                  "on (a run trained on a GPU, its data directory moved to a host without one: cpu)")


JobCreate = Annotated[Union[ExtractJob, ProbeJob, PipelineJob, LabelIssuesJob], Field(discriminator="kind")]


class JobMessage(BaseModel):
    at: str
    text: str


class JobResult(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cache_id: str | None = None
    run_ids: list[str] = Field(default_factory=list)


class JobOut(BaseModel):
    id: str
    kind: str
    status: JobStatus
    progress: float = Field(..., ge=0.0, le=1.0)
    stage: str
    messages: list[JobMessage]
    request: dict[str, Any]
    result: JobResult
    error: str | None
    attempts: int
    resumable: bool = Field(..., description="interrupted or failed, and nothing it uses deleted since: POST "
                            "/api/jobs/{id}/resume queues it again")
    retryable: bool = Field(False, description="failed, and on the machine (memory, file system, device), not on "
                            "its input: resuming it may succeed; a job that failed on its data set, cache or "
                            "settings fails the same way again (app.worker.retryable)")
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    what: str = Field("", description="what it was asked to do, in a line: its data set or cache, encoder and the "
                      "probes it trains, named as their runs are (app.steps.job_what)")

    @classmethod
    def from_row(cls, row: dict[str, Any], clean: Callable[..., str] | None = None,
                 deleted_rows: bool = False) -> "JobOut":
        """The row as a client reads it; ``clean`` (``app.messages.ClientMessages.clean``) rewrites the request's
        encoder name, which holds a weights file's resolved server path (``mocov2:/srv/data/moco.pth``), and the
        error and messages (written cleaned, but not by older versions: a data directory upgraded showed their
        server paths; an upgrade round), the error's given spans kept as it was written (``ERROR_GIVEN``);
        ``deleted_rows``: something the job uses was deleted since (``Store.uses_deleted_rows``), so it cannot
        resume (it said resumable, and resume answered 409; an attack round)."""
        failed = row["status"] == JobStatus.failed.value
        request, texts = row["request"], {}
        if clean is not None:
            if isinstance(request.get("encoder"), str):
                request = {**request, "encoder": clean(request["encoder"])}
            given = (row.get("result") or {}).get(ERROR_GIVEN) or ()  # the spans it was written with, kept
            texts = {"error": row["error"] and clean(row["error"], given),
                     "messages": [{**m, "text": clean(m["text"])} if isinstance(m.get("text"), str) else m
                                  for m in row.get("messages") or []]}
        resumable = (failed or row["status"] == JobStatus.interrupted.value) and not deleted_rows
        return cls(**{**row, "request": request, **texts}, resumable=resumable,
                   retryable=resumable and failed and (row.get("result") or {}).get("retryable") is True)


class JobAccepted(BaseModel):
    id: str
    status: JobStatus
    url: str


class JobsRemovedOut(BaseModel):
    """The job records a removal deleted (``DELETE /api/jobs/{id}/record``, ``DELETE /api/jobs?older_than_days=``);
    the runs and caches the jobs made stay."""

    removed: list[str] = Field(..., description="the ids of the job records removed (with dry_run: those it would)")
    dry_run: bool = Field(False, description="true: nothing was removed")


# -- runs and reports (the report and comparison documents are probe.Report and probe.Comparison) -------
MAX_NOTE = 2000  # characters of a run's note
# a note may hold line breaks and tabs, no other control, direction or zero-width character
NOTE_TEXT = rf"^(?:[\r\n\t]|[^{_REFUSED}])*$"


def _left_out(schema: dict[str, Any]) -> None:
    """The JSON schema of an optional field a client may leave out but not send as null: its string alone, no null
    and no ``default: null`` (not ``SkipJsonSchema[None]``: it makes None a union member, and a refused name's 422
    then lists a second error, 'Input should be None')."""
    schema.pop("default", None)
    (string,) = [member for member in schema.pop("anyOf") if member.get("type") != "null"]
    schema.update(string)


class RunUpdate(BaseModel):
    """What a user calls a run and why it matters (``PATCH /api/runs/{id}``): the name in the lists, a free note.
    Null is refused (a run always has a name; an empty note is ""), so the schema documents plain strings: it said
    ``anyOf: [string, null]`` (an integration round)."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = Field(None, description="leave it out to keep the name", json_schema_extra=_left_out)
    # the length bound next to str, inside the line breaks' validator: after it, pydantic checked it as of a list
    # ("Value should have at most 2000 items"; an attack round)
    note: Annotated[str, StringConstraints(max_length=MAX_NOTE), BeforeValidator(_note_text), _printable("\n\t"),
                    WithJsonSchema({"type": "string", "maxLength": MAX_NOTE, "pattern": NOTE_TEXT})] | None = Field(
        None, description="free text shown with the run (line breaks allowed); an empty string clears it",
        json_schema_extra=_left_out)

    @model_validator(mode="after")
    def _something(self) -> "RunUpdate":
        if not self.model_fields_set:
            raise ValueError("give name and / or note")
        null = sorted(key for key in self.model_fields_set if getattr(self, key) is None)
        if null:  # a run always has a name, and an empty note is ""
            raise ValueError(f"{null[0]} cannot be null: leave it out to keep it")
        return self


class RunOut(BaseModel):
    id: str
    job_id: str | None
    cache_id: str
    name: str
    note: str = Field("", description="the user's note on the run (PATCH /api/runs/{id})")
    head: str | None = Field(..., description="the head the run ships: the reference's where it kept the reference "
                             "configuration (a cosine request against a linear reference that found no safe "
                             "improvement ships linear; its name says what was tried)")
    loss: str | None = Field(..., description="the loss the run ships: the reference's where it kept the reference "
                             "configuration (no safe improvement; its name says what was tried)")
    reference_run: str | None
    summary: dict[str, Any]

    @field_validator("summary")
    @classmethod
    def _ties_cut(cls, summary: dict[str, Any]) -> dict[str, Any]:
        """The worst classes as a report reads them (``probe.report.WorstClass``: ten ties named, the rest counted):
        a run stored before that listed 998 ties in the runs list (137 KB a run; a re-test)."""
        from probe.report import WorstClass

        cut = dict(summary)
        for key in ("worst_class", "shipped_worst_class"):
            try:
                cut[key] = WorstClass.model_validate(summary[key]).model_dump()
            except (KeyError, ValidationError):  # absent, or not a worst class: as stored
                pass
        return cut

    verdict: Optional[Verdict] = Field(
        None, description="the disparity-aware decision (report.selection.verdict): improved, no_safe_improvement, "
        "or not_applicable for a run that selected on overall accuracy; null only for a run stored before the "
        "service kept verdicts whose report.json is gone")
    test_check: Optional[TestCheck] = Field(
        None, description="for an improved verdict, whether it held on test (report.selection.test_check): holds, "
        "within_noise, reversed, overall_lost; null otherwise")
    created_at: str
    posthoc: Optional[Literal["applied", "declined", "untested", "unchecked"]] = Field(
        None, description="a post-hoc bias run's outcome for the probe that ships (probe.report.Posthoc.outcome): "
        "applied, declined (tested: no hard-third gain beyond noise), untested (too few validation images), "
        "unchecked (no guard); null for other runs")
    probe: Annotated[str, BeforeValidator(lambda v: v or "")] = Field(
        "", description="the probe the run ships, in words, as compare's probes line says it (probe.compare."
        "probe_words): 'focal (gamma_focal=2), linear head', '..., preset disparity, kept the reference (group_dro "
        "found no safe improvement)'; its loss and head alone (probe.report.probe_label) for a run whose report "
        "could not be read")

    left_out: Annotated[Optional[list[str]], BeforeValidator(lambda v: json.loads(v) if isinstance(v, str) else v)] = \
        Field(None, description="the classes the run left out (its config's drop_classes), sorted: a run is compared "
              "only with runs of its cache that left out the same ones (GET /api/compare answers 422 otherwise); null "
              "where its report could not be read")

    @model_validator(mode="after")
    def _probe_words(self) -> "RunOut":
        if not self.probe:
            self.probe = probe_label(self.loss, self.head)
        return self



class RunDetailOut(RunOut):
    """One run (``GET /api/runs/{id}``): a runs list's row and what only it says."""

    label_issues: list[str] = Field(default_factory=list, description="the methods whose likely wrong train + val "
                                    "labels of the run are stored (GET /api/runs/{id}/label-issues?method= lists "
                                    "them), newest first; [] where none was looked for")


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    auth_required: bool
    jobs: dict[str, int]


# -- failing samples ---------------------------------------------------------------------------------------
class FailureItem(BaseModel):
    index: int = Field(..., description="row of the cache's test split")
    source: Optional[str] = Field(None, description="path of the image in its data set (null for runs that did "
                                  "not store sources)")
    true: str
    predicted: str
    confidence: float = Field(..., description="softmax probability of the (wrong) prediction, first seed")
    label_probability: Optional[float] = Field(None, description="the first seed's probability of the image's own "
                                               "label: the items are ordered by it, lowest (likeliest wrong label) "
                                               "first; null for runs that did not store it (ordered by confidence)")
    thumbnail_url: Optional[str] = None


class PredictedOut(BaseModel):
    """A run's shipped probe on a registered cache's split, unlabelled images too (``mr2probe predict`` on them):
    how many images went to each class, with their mean confidence, most predicted first."""

    run_id: str
    cache_id: str
    split: str
    images: int = Field(..., description="images in the split")
    unsure: int = Field(..., description="predictions below unsure_below's confidence")
    unsure_below: float = Field(..., description="the confidence under which a prediction counts as unsure "
                                "(probe.deploy.UNSURE_BELOW, 0.5)")
    predicted: list[PredictedShare] = Field(..., description="every class of the run, most predicted first (ties in "
                                            "class order); the classes never predicted have n = 0")
    warnings: list[str] = Field(..., description="what could not be checked (an older run or cache), and "
                                "near_train's line (mr2probe predict's) or why it was not checked")
    near_train: Optional[NearTrain] = Field(None, description="the images that nearly duplicate one of the run's "
                                            "train or val images (mr2probe predict's check: a seeded sample past "
                                            "the products budget); null where unchecked (the warnings say why "
                                            "where it matters) or on the run's own train or val split")


class ScoresOut(Scores):
    """A run's shipped probe (first seed, with its applied post-hoc bias) scored on a registered cache's split:
    ``probe.deploy.Scores`` (``mr2probe predict --json``) and where it was scored."""

    run_id: str
    cache_id: str
    split: str
    images: int = Field(..., description="images in the split")
    warnings: list[str] = Field(..., description="what could not be checked (an older run or cache), and "
                                "near_train's line (mr2probe predict's) or why it was not checked")
    matches_report: Optional[dict[str, int]] = Field(None, description="on the run's own test split: on how many "
                                                     "images the predictions equal the report's first seed")
    unknown_hint: Optional[str] = Field(None, description="why images may be of classes the run does not have "
                                        "(`unknown`), as mr2probe predict says it: labels differing from its classes "
                                        "only in case, or a class renamed since the run; null where none")
    near_train: Optional[NearTrain] = Field(None, description="the images that nearly duplicate one of the run's "
                                            "train or val images (mr2probe predict's check: a seeded sample past "
                                            "the products budget); null where unchecked (the warnings say why "
                                            "where it matters) or on the run's own train or val split")


class FailuresOut(BaseModel):
    """A class's misclassified test samples (first seed), most confidently wrong first (lowest probability of their
    own label)."""

    model_config = ConfigDict(populate_by_name=True)
    run_id: str
    class_name: Optional[str] = Field(..., alias="class", description="the true class of the mistakes (null: every "
                                      "class's, GET /api/runs/{id}/failures without class)")
    predicted: Optional[str] = Field(None, description="the predicted class the mistakes were filtered to (null: "
                                     "every mistake)")
    total: int = Field(..., description="mistakes on this class (every class without one) in the test split (first "
                       "seed; predicted as `predicted` when given)")
    items: list[FailureItem]


# A probability or an accuracy: a stored label-issues result of NaN, infinities or values past [0, 1] (a file
# edited or damaged) was served, "-inf %" in its caution and null where the schema gives a number (an attack round)
Share = Annotated[float, Field(ge=0, le=1)]


class LabelIssueItem(BaseModel):
    split: Literal["train", "val"] = Field(..., description="the image's split in the run's cache")
    row: int = Field(..., ge=0, description="the image's row in that split of the cache")
    source: Optional[str] = Field(None, description="path of the image in its data set (null where the cache "
                                  "records none)")
    true: str = Field(..., description="its label")
    predicted: str = Field(..., description="the out-of-fold prediction (another class than its label)")
    confidence: Share = Field(..., description="out-of-fold probability of the prediction")
    label_probability: Share = Field(..., description="out-of-fold probability of its label: the items are "
                                     "ordered by it, lowest (likeliest wrong label) first")
    thumbnail_url: Optional[str] = None


class LabelIssuesOut(BaseModel):
    """A run's likeliest wrong train + val labels, found by its newest succeeded ``label_issues`` job: its chosen
    configuration fitted ``folds``-fold on its cache (first seed, no sweep), each image scored by the fold model that
    did not train on it (``mr2probe label-issues``)."""

    model_config = ConfigDict(populate_by_name=True)
    run_id: str
    job_id: str = Field(..., description="the label_issues job that found them")
    finished_at: Optional[str] = Field(None, description="when that job finished")
    folds: int = Field(..., ge=MIN_CV_FOLDS)
    method: LabelIssuesMethod = Field(..., description=METHOD_DESCRIPTION)
    params: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        ..., description="the run's chosen hyper-parameters, fitted as they are")
    class_name: Optional[str] = Field(..., alias="class", description="the label the images were filtered to (null: "
                                      "every class's)")
    images: int = Field(..., description="train + val images (of that label) scored out of fold")
    total: int = Field(..., description="of them, those the method lists")
    accuracy: Optional[Share] = Field(None, description="the refit's out-of-fold accuracy on every train + val image "
                                      "(null: a result stored before it was kept)")
    caution: Optional[str] = Field(None, description="where that accuracy is too low for the listing to be read as "
                                   "wrong labels (probe.label_issues.weak_refit_caution): why; else null")
    limit: int
    offset: int
    items: list[LabelIssueItem]


class NearDuplicateItem(BaseModel):
    test_row: int = Field(..., description="the test image's row in the run's test split (after any classes left out)")
    test: Optional[str] = Field(None, description="its path in the data set (null where the run stored none)")
    seen_split: Literal["train", "val"] = Field(..., description="the split of the image it duplicates")
    seen_row: int = Field(..., description="that image's row in its split of the run")
    seen: Optional[str] = Field(None, description="that image's path in the data set (null where unknown)")
    similarity: float = Field(..., description="cosine of the two images' cached features: the items are ordered "
                              "by it, most similar first")
    identical: bool = Field(..., description="byte-identical (same content digest); otherwise a near-duplicate")
    test_thumbnail_url: Optional[str] = None
    seen_thumbnail_url: Optional[str] = None


class NearDuplicatesOut(BaseModel):
    """A run's test images that duplicate a train or val image (its ``near_duplicates.csv``; ``mr2probe report
    --near-duplicates``), most similar first: the report's near_duplicates counts them, this lists them all."""

    run_id: str
    encoder: str = Field(..., description="the encoder whose features were compared")
    threshold: float = Field(..., description="the cosine at or above which a test image nearly duplicates one")
    rule: str = Field(..., description="the rule the check applied, in the report's words (the threshold, and the "
                      "ratio test past it where the report applied one: probe.near_duplicates.rule_text)")
    test_images: int = Field(..., description="test images of the run")
    sampled: Optional[int] = Field(None, description="where the run compared a random sample of its test images "
                                   "(past the products budget): how many; the pairs are theirs, with the "
                                   "byte-identical ones outside the sample (outside_sample). null: every one")
    total: int = Field(..., description="test images that duplicate a train or val image (near or identical): of "
                       "the sampled ones where sampled, and outside_sample more")
    outside_sample: int = Field(0, description="where sampled: test images outside the sample that are "
                                "byte-identical to a train or val image (content digests, every test image's), "
                                "listed too; 0 otherwise")
    limit: int
    offset: int
    items: list[NearDuplicateItem]
