"""Saved probes: head (+ adapter) weights as safetensors and a JSON sidecar with everything needed to rebuild them.

Layout: ``save_probe(trainer, "run/head.safetensors")`` (``ProbeTrainer.save``) writes ``run/head.safetensors`` and ``run/head.json``;
a directory path writes those two names inside it. Tensors are stored as ``head.<param>`` and
``adapter.<param>``; the sidecar holds the format tag, library version, the trainer's JSON-representable
parameters, the resolved head / adapter / loss options, ``classes``, ``gamma``, ``r2``, ``spread``, ``p``,
``stats_mode``, the training history and ``safetensors_sha256``, the sha256 of its weights file (a head.json
beside other weights is refused when read). ``load_probe`` (``ProbeTrainer.load``) rebuilds a fitted trainer whose
``decision_function`` gives the same logits. The trainer's learned state travels through its
``_get_fitted_state()`` / ``_set_fitted_state(state)``; this module only writes and reads it (it does not import
the trainer: ``trainer -> checkpoint`` is the one direction).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from importlib import metadata
from pathlib import Path

from typing import Any

import numpy as np
import torch

from .files import atomic_write

logger = logging.getLogger(__name__)

FORMAT = "mr2probe-head"
FORMAT_VERSION = 1
WEIGHTS_NAME = "head.safetensors"


def library_version() -> str:
    try:
        return metadata.version("mr2probe")
    except metadata.PackageNotFoundError:  # running from a source tree without installation
        return "0+unknown"


def _paths(path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if path.suffix != ".safetensors":
        path = path / WEIGHTS_NAME
    return path, path.with_suffix(".json")


def _jsonable(value):
    """JSON-representable copy of a parameter value, or a marker for what cannot be stored (callables)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (np.integer, np.floating)):
        return _jsonable(value.item())
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.device):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in the JSON sidecar")


def _floats(a) -> list:
    return [None if not math.isfinite(float(v)) else float(v) for v in np.asarray(a, dtype=np.float64)]


def _forward(state: dict[str, Any]) -> dict[str, Any]:
    """head.json's ``forward``: how the saved tensors turn features into probabilities, step by step, for code that
    does not import this package (a user's own inference: an outside round found the format undocumented, the
    cosine head's learned scale only as a log in the tensors, and the post-hoc bias's place ambiguous)."""
    from .adapters import forward_text as adapter_forward
    from .heads import forward_text as head_forward

    steps = ["x = the features (n, d) as float32, of the extractor the run's report.json names (features: "
             "encoder, preprocess, feature_kind)"]
    if state["adapter"] is not None:
        steps.append(adapter_forward(state["adapter"]["name"]))
    steps += [head_forward(state["head"]["name"]),
              "logits = logits + bias of posthoc_bias.json, where the run ships one (after the head's scale)",
              "logits = logits / temperature of temperature.json, where the run ships one (after the bias)",
              "probabilities = softmax(logits) over the classes in class_names order; predicted = argmax, "
              "confidence = its probability"]
    out: dict[str, Any] = {"steps": steps}
    log_scale = state["head"]["tensors"].get("log_scale")
    if log_scale is not None:  # the cosine head's scale as shipped (head.options.logit_scale is where it began, or a
        # cosine loss's own scale replaced it: probe.trainer)
        out["logit_scale"] = float(math.exp(float(log_scale)))
    return out


def write_checkpoint(path, params: dict[str, Any], state: dict[str, Any],
                     class_names: list[str] | None = None) -> Path:
    """Write a trainer's parameters and fitted state (``ProbeTrainer._get_fitted_state()``) to ``path`` (a
    ``.safetensors`` file or a directory), with the names of its classes when given (a run's head names them:
    head.json in probe.zip listed class indices only). Returns the path of the safetensors file.

    Raises ValueError, writing nothing, for ``class_names`` that are not one name per class: such a file could not be
    read back."""
    if class_names is not None and len(class_names) != state["num_classes"]:
        raise ValueError(f"class_names has {len(class_names)} names for the probe's {state['num_classes']} classes; "
                         "give one name per class, in class index order.")
    weights_path, meta_path = _paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{part}.{k}": v for part in ("head", "adapter") if state[part] is not None
               for k, v in state[part]["tensors"].items()}
    stored = {}
    for name, value in params.items():
        try:
            stored[name] = _jsonable(value)
        except TypeError:
            stored[name] = None  # callables (progress) are not part of the saved model
    described = {part: None if state[part] is None else {"name": state[part]["name"],
                                                         "options": _jsonable(state[part]["options"])}
                 for part in ("head", "adapter")}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": library_version(),
        "params": stored,
        "num_features": state["num_features"],
        "num_classes": state["num_classes"],
        "classes": [int(c) for c in state["classes"]],
        **({} if class_names is None else {"class_names": [str(n) for n in class_names]}),
        **described,
        "loss": {"name": state["loss"]["name"], "options": _jsonable(state["loss"]["options"])},
        "p": state["p"],
        "stats_mode": state["stats_mode"],
        **{name: _floats(state[name]) for name in ("gamma", "r2", "spread")},
        "class_counts": [int(c) for c in state["class_counts"]],
        "history": _floats(state["history"]),
        "forward": _forward(state),
    }
    def weights_then_sidecar(tmp: str) -> None:
        # the sidecar replaced while the new weights wait under their temporary name, then the weights: a failure
        # writing either (a full disk) leaves the pair saved before whole. The weights renamed first, a failure of
        # the sidecar left them beside the old sidecar: a probe that was neither, loaded without a word.
        # the sidecar records its weights' digest: a crash between the two renames leaves the new head.json beside
        # the old weights, which read_checkpoint then refuses (:func:`_check_weights`)
        _save_tensors(tensors, tmp, weights_path)
        described = {**meta, "safetensors_sha256": _sha256(tmp)}
        atomic_write(meta_path, lambda meta_tmp: Path(meta_tmp).write_text(json.dumps(described, indent=2,
                                                                                      ensure_ascii=False)))

    atomic_write(weights_path, weights_then_sidecar)
    logger.info("saved probe to %s (+ %s)", weights_path, meta_path.name)
    return weights_path


def _save_tensors(tensors: dict, tmp: str, path: Path) -> None:
    """safetensors' ``save_file`` into ``tmp`` (the temporary name of ``path``), whose failure to write (a full disk,
    a file-size limit) is an OSError naming the file: safetensors raises its own SafetensorError ('I/O error: File too large (os error 27)'), which ended
    ``mr2probe train`` (and a service job) in a traceback (a failure round)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, tmp, metadata={"format": FORMAT})
    except SafetensorError as exc:
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        number = int(code.group(1))
        raise OSError(number, f"cannot write {path}: {os.strerror(number)}") from None


def _sha256(path) -> str:
    """The sha256 hex digest of the file ``path``: head.json's ``safetensors_sha256`` of its head.safetensors."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _check_weights(meta: dict[str, Any], weights_path: Path, meta_path: Path) -> None:
    """Raise ValueError, naming the run's folder and the file, where ``weights_path`` is not the file whose digest
    head.json records (``safetensors_sha256``): the weights of another save, left by a crash between the renames of the
    two files (:func:`write_checkpoint`). A head.json written before the digest (none recorded) is not checked."""
    recorded = meta.get("safetensors_sha256")
    if recorded is None:
        return
    if not (isinstance(recorded, str) and re.fullmatch(r"[0-9a-f]{64}", recorded)):
        raise ValueError(f"{meta_path.name}'s 'safetensors_sha256' is not a sha256 hex digest "
                         f"(got {json.dumps(recorded)[:50]})")
    actual = _sha256(weights_path)
    if actual != recorded:
        raise ValueError(f"{weights_path.name} of {weights_path.parent.name} is not the weights its {meta_path.name} "
                         f"describes (sha256 {actual[:16]}…, {meta_path.name} records {recorded[:16]}…): the file "
                         "was changed or replaced after the save (a save cut off between the two files, another "
                         "run's weights copied in, or damage); train it again")


def _array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def unreadable(path, exc: BaseException) -> str:
    """What a saved probe at ``path`` whose files cannot be read, or its head rebuilt from them, is said to be."""
    weights_path, meta_path = _paths(path)
    return (f"{weights_path.name} / {meta_path.name} cannot be read as a saved probe (damaged or cut short?): "
            f"{type(exc).__name__}: {str(exc)[:200]}")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _part(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("name"), str) and isinstance(value.get("options"), dict)


# What read_checkpoint reads of head.json: each field's test and what it must be. A field missing or of another type
# was a KeyError, AttributeError or TypeError where it was used (params: in ProbeTrainer.load), a 500 of every route
# that applies the run, or a ValueError that did not name the file ("invalid literal for int()"; a review).
_FIELDS = {
    "params": (lambda v: isinstance(v, dict), "an object of the trainer's parameters"),
    "num_features": (lambda v: _whole(v) and v > 0, "a whole number above 0"),
    "num_classes": (lambda v: _whole(v) and v > 0, "a whole number above 0"),
    "classes": (lambda v: isinstance(v, list) and all(map(_whole, v)), "a list of whole numbers"),
    "class_counts": (lambda v: isinstance(v, list) and all(map(_whole, v)), "a list of whole numbers"),
    "head": (_part, 'an object with a "name" and "options"'),
    "adapter": (lambda v: v is None or _part(v), 'null or an object with a "name" and "options"'),
    "loss": (_part, 'an object with a "name" and "options"'),
    "p": (_number, "a number"),
    "stats_mode": (lambda v: isinstance(v, str), "a string"),
    **{name: (lambda v: isinstance(v, list) and all(x is None or _number(x) for x in v), "a list of numbers")
       for name in ("gamma", "r2", "spread", "history")},
}


def _check_fields(meta: dict[str, Any], meta_path: Path) -> None:
    """Raise ValueError naming ``meta_path`` and the first of :data:`_FIELDS` missing or of another type."""
    for name, (valid, what) in _FIELDS.items():
        if name not in meta:
            raise ValueError(f"{meta_path.name} has no {name!r}")
        if not valid(meta[name]):
            raise ValueError(f"{meta_path.name}'s {name!r} is not {what} (got {json.dumps(meta[name])[:50]})")


def read_checkpoint(path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read what :func:`write_checkpoint` wrote: ``(params, state)`` for ``ProbeTrainer(**params)
    ._set_fitted_state(state)``.

    Args:
        path: the ``.safetensors`` file, its ``.json`` sidecar, or the directory holding ``head.safetensors``.
    Raises:
        FileNotFoundError: a file is missing. ValueError: not a probe file, or a newer format.
    """
    from safetensors.torch import load_file

    weights_path, meta_path = _paths(path)
    for p in (weights_path, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"probe file {p} not found (expected {weights_path.name} + {meta_path.name}).")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ValueError(f"{meta_path.name} is not a saved probe (damaged or cut short?): {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{meta_path} is not a saved probe (format {found!r}, expected {FORMAT!r}).")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):  # a list or null was a TypeError: a 500 of every
        raise ValueError(f"{meta_path.name} is not a saved probe: format_version {str(version)[:50]!r} is not a "
                         "whole number")  # route that applies the run (an attack round)
    if version > FORMAT_VERSION:
        raise ValueError(f"{meta_path} has format_version {version}; this library reads up to "
                         f"{FORMAT_VERSION} (saved by mr2probe {meta.get('library_version')}).")
    try:
        _check_fields(meta, meta_path)  # read as damaged, in the words of a file cut short
        tensors = load_file(str(weights_path))
        state = {name: meta[name] for name in ("num_features", "num_classes", "classes", "loss", "p", "stats_mode",
                                               "class_counts")}
        state.update({name: _array(meta[name]) for name in ("gamma", "r2", "spread", "history")})
        described = meta["head"]["name"], meta["loss"]["name"]  # read here: a head without one was a KeyError (500)
        for part in ("head", "adapter"):
            prefix = f"{part}."
            state[part] = None if meta[part] is None else {
                **meta[part], "tensors": {n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)}}
    except FileNotFoundError:  # removed since it was found (a run deleted while read): missing, not damaged
        raise FileNotFoundError(f"probe file {weights_path} not found (removed while it was read).") from None
    except Exception as exc:  # noqa: BLE001 - safetensors' own error types, a field missing or of another type
        raise ValueError(unreadable(path, exc)) from None
    _check_weights(meta, weights_path, meta_path)
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and len(names) == state["num_classes"]
                                  and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{meta_path.name} cannot be read as a saved probe: class_names is not "
                         f"{state['num_classes']} names")
    state["class_names"] = names
    state["library_version"] = meta.get("library_version")
    logger.info("read probe %s/%s (K=%d, d=%d) from %s", *described, state["num_classes"], state["num_features"],
                weights_path)
    return meta["params"], state
