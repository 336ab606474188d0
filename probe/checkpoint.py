"""Saved probes: head (+ adapter) weights as safetensors and a JSON sidecar with everything needed to rebuild them.

Layout: ``save_probe(trainer, "run/head.safetensors")`` writes ``run/head.safetensors`` and ``run/head.json``;
a directory path writes those two names inside it. Tensors are stored as ``head.<param>`` and
``adapter.<param>``; the sidecar holds the format tag, library version, the trainer's JSON-representable
parameters, the resolved head / adapter / loss options, ``classes``, ``gamma``, ``r2``, ``spread``, ``p``,
``stats_mode`` and the training history. :func:`load_probe` rebuilds a fitted :class:`ProbeTrainer` whose
``decision_function`` gives the same logits.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

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


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_probe(trainer, path) -> Path:
    """Write a fitted :class:`ProbeTrainer` to ``path`` (a ``.safetensors`` file or a directory).

    Returns the path of the safetensors file. Raises ValueError if the trainer is not fitted.
    """
    from safetensors.torch import save_file

    trainer._check_fitted()
    weights_path, meta_path = _paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"head.{k}": v.detach().cpu().contiguous() for k, v in trainer.head_.state_dict().items()}
    if trainer.adapter_ is not None:
        tensors.update({f"adapter.{k}": v.detach().cpu().contiguous()
                        for k, v in trainer.adapter_.state_dict().items()})
    params = {}
    for name, value in trainer.get_params().items():
        try:
            params[name] = _jsonable(value)
        except TypeError:
            params[name] = None  # callables (progress) are not part of the saved model
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": library_version(),
        "params": params,
        "num_features": int(trainer.n_features_in_),
        "num_classes": int(trainer.num_classes_),
        "classes": [int(c) for c in trainer.classes_],
        "head": {"name": trainer.head_.spec.name, "options": _jsonable(trainer.head_.options)},
        "adapter": None if trainer.adapter_ is None else {"name": trainer.adapter_.spec.name,
                                                          "options": _jsonable(trainer.adapter_.options)},
        "loss": {"name": trainer.loss_.spec.name, "options": _jsonable(trainer.loss_.options)},
        "p": float(trainer.p_),
        "stats_mode": trainer.stats_mode_,
        "gamma": _floats(trainer.gamma_),
        "r2": _floats(trainer.r2_),
        "spread": _floats(trainer.spread_),
        "class_counts": [int(c) for c in trainer.class_counts_],
        "history": _floats(trainer.history_),
    }
    _atomic_write(weights_path, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT}))
    _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2, ensure_ascii=False)))
    logger.info("saved probe to %s (+ %s)", weights_path, meta_path.name)
    return weights_path


def _array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def load_probe(path, device: str = "cpu"):
    """Rebuild a fitted :class:`ProbeTrainer` from files written by :func:`save_probe`.

    Args:
        path: the ``.safetensors`` file, its ``.json`` sidecar, or the directory holding ``head.safetensors``.
        device: where to put the weights (``cpu``, ``cuda``, ``auto``).
    Raises:
        FileNotFoundError: a file is missing. ValueError: not a probe file, or weights that do not match it.
    """
    from safetensors.torch import load_file

    from .adapters import create_adapter
    from .heads import create_head
    from .losses import get_loss_spec
    from .trainer import ProbeTrainer, _resolve_device

    weights_path, meta_path = _paths(path)
    for p in (weights_path, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"probe file {p} not found (expected {weights_path.name} + {meta_path.name}).")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} is not a saved probe (format {meta.get('format')!r}, expected {FORMAT!r}).")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{meta_path} has format_version {meta['format_version']}; this library reads up to "
                         f"{FORMAT_VERSION} (saved by mr2probe {meta.get('library_version')}).")
    tensors = load_file(str(weights_path))
    d, k = int(meta["num_features"]), int(meta["num_classes"])
    head = create_head(meta["head"]["name"], d, k, **meta["head"]["options"])
    adapter = None
    if meta["adapter"] is not None:
        adapter = create_adapter(meta["adapter"]["name"], d, rank=meta["adapter"]["options"].get("rank"))
    try:
        head.load_state_dict({n[5:]: t for n, t in tensors.items() if n.startswith("head.")}, strict=True)
        if adapter is not None:
            adapter.load_state_dict({n[8:]: t for n, t in tensors.items() if n.startswith("adapter.")}, strict=True)
    except RuntimeError as err:
        raise ValueError(f"weights in {weights_path} do not match the head described in {meta_path}: {err}") from None

    params = {n: v for n, v in meta["params"].items() if n in ProbeTrainer._get_param_names()}
    trainer = ProbeTrainer(**params)
    dev = _resolve_device(device)
    trainer.head_ = head.to(dev).eval()
    trainer.adapter_ = adapter.to(dev).eval() if adapter is not None else None
    trainer.loss_ = None  # training-time object; rebuild with create_loss(meta["loss"]["name"], ...) if needed
    trainer.loss_spec_ = get_loss_spec(meta["loss"]["name"])
    trainer.classes_ = np.asarray(meta["classes"], dtype=np.int64)
    trainer.n_features_in_ = d
    trainer.num_classes_ = k
    trainer.p_ = float(meta["p"])
    trainer.stats_mode_ = meta["stats_mode"]
    trainer.gamma_ = _array(meta["gamma"])
    trainer.r2_ = _array(meta["r2"])
    trainer.spread_ = _array(meta["spread"])
    trainer.class_counts_ = np.asarray(meta["class_counts"], dtype=np.int64)
    trainer.history_ = [float("nan") if v is None else v for v in meta["history"]]
    trainer.library_version_ = meta.get("library_version")
    logger.info("loaded probe %s/%s (K=%d, d=%d) from %s", meta["head"]["name"], meta["loss"]["name"], k, d,
                weights_path)
    return trainer
