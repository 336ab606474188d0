"""Apply a shipped probe without mr2probe: numpy and safetensors only (``pip install numpy safetensors``).

This file is copied as it is into every ``probe.zip`` (``GET /api/runs/{id}/probe.zip``) as ``apply_probe.py``,
beside the files it reads: ``head.safetensors`` and ``head.json`` (the head, an adapter, the class names and
``forward.steps``, which this code follows step by step), ``posthoc_bias.json`` and ``temperature.json`` where the
run ships them. It imports nothing of mr2probe, so it can be vendored into serving code as it is::

    from apply_probe import load_probe
    probe = load_probe("RUN_FOLDER")            # the folder holding head.safetensors + head.json
    probabilities = probe.predict_proba(x)     # x: (n, d) features of the run's extractor (report.json features)
    names = [probe.class_names[k] for k in probabilities.argmax(axis=1)]

or from a shell: ``python apply_probe.py RUN_FOLDER features.npy`` prints each row's class and confidence (a class
name that starts like a spreadsheet formula with an apostrophe before it, as mr2probe's CSV files write it).
The features must come from the encoder and preprocessing the run's ``report.json`` ``features`` names (README,
"Shipping the chosen probe"); nothing here can check that, as ``mr2probe predict`` does.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["StandaloneProbe", "load_probe", "cell", "HEADS", "ADAPTERS"]

# What this loader applies: every head and adapter of mr2probe's registry (probe.registry HEADS, ADAPTERS; a test
# keeps the two alike, so that a head or adapter added there is added here too)
HEADS = ("linear", "cosine")
ADAPTERS = ("linear", "lowrank", "mlp")


# what a spreadsheet reads as a formula at the start of a cell (probe.numbers' rule, csv_cell, which this file cannot
# import; a test keeps the two alike): a class named "=cmd()" printed as it is ran as one where the output was opened
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str) -> str:
    """``text`` as a spreadsheet shows it: an apostrophe before one starting like a formula (after any apostrophes),
    as ``probe.numbers.csv_cell`` writes a CSV's cells."""
    return "'" + text if text.lstrip("'").startswith(_FORMULA_START) else text


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_ROWS = 4096  # rows widened to float64 at a time
NORM_FLOOR = 1e-12  # the least L2 norm a row is divided by (torch's F.normalize, the cosine head's): zero stays zero


def _unusable_rows(x: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``x`` (n, d) that ``mr2probe predict`` refuses (``probe.stats.unusable_rows``, which
    this file cannot import): a NaN, an infinity or a squared norm past float32's range. Such a finite row (1e20 in
    every feature) was scored: a cosine head's float32 norm overflowed, and it read class 0 at 1/K confidence.
    Values all within ±√(max / d) pass on their minimum and maximum (NaN fails that); else rows are read in float64."""
    if not x.size or max(-float(x.min()), float(x.max())) <= math.sqrt(_FLOAT32_MAX / x.shape[1]):
        return np.zeros(0, dtype=np.int64)
    sq = [np.einsum("ij,ij->i", c, c) for c in (x[i:i + _ROWS].astype(np.float64) for i in range(0, len(x), _ROWS))]
    return np.flatnonzero(~(np.concatenate(sq) <= _FLOAT32_MAX))


def _normalize(a: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (a zero row stays zero), as the cosine head does."""
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), NORM_FLOOR)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu(a: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU of the ``mlp`` adapter."""
    return (0.5 * a * (1.0 + _erf(a / math.sqrt(2.0)))).astype(a.dtype)


def _adapt(name: str, t: dict, x: np.ndarray) -> np.ndarray:
    """head.json's adapter step (``probe.adapters`` ``FORWARD``)."""
    if name == "linear":
        return x + x @ t["adapter.A"].T
    if name == "lowrank":
        return x + (x @ t["adapter.V"].T) @ t["adapter.U"].T
    if name == "mlp":
        return x + _gelu(x @ t["adapter.down.weight"].T + t["adapter.down.bias"]) @ t["adapter.U"].T
    raise ValueError(f"adapter {name!r} is not one this loader knows ({', '.join(ADAPTERS)})")


@dataclass
class StandaloneProbe:
    """A run's shipped probe read from its files: :meth:`predict_proba` is ``mr2probe predict``'s probabilities."""

    tensors: dict
    class_names: list
    head: str
    adapter: str | None
    bias: np.ndarray | None = None  # posthoc_bias.json's (all zeros where not applied)
    temperature: float = 1.0  # temperature.json's (1 where not applied)

    def logits(self, features) -> np.ndarray:
        """(n, K) float64: the head's logits (after the adapter), plus the post-hoc bias, divided by T."""
        x, t = np.asarray(features, dtype=np.float32), self.tensors
        if x.ndim != 2 or x.shape[1] != t["head.weight"].shape[1]:
            raise ValueError(f"the probe takes (n, {t['head.weight'].shape[1]}) features, got {x.shape}")
        bad = _unusable_rows(x)
        if bad.size:  # a NaN row's argmax is class 0, its confidence nan: a prediction that is none
            raise ValueError(f"{bad.size} of {len(x)} rows hold values that are NaN, infinite or too large for float32 "
                             f"(a squared norm past {_FLOAT32_MAX:.3g}; rows {', '.join(map(str, bad[:5]))}"
                             f"{', ...' if bad.size > 5 else ''}): features to check")
        if self.adapter is not None:
            x = _adapt(self.adapter, t, x)
        if self.head == "linear":
            z = x @ t["head.weight"].T + (t["head.bias"] if "head.bias" in t else 0)
        elif self.head == "cosine":
            z = np.exp(t["head.log_scale"]) * _normalize(x) @ _normalize(t["head.weight"]).T
        else:
            raise ValueError(f"head {self.head!r} is not one this loader knows ({', '.join(HEADS)})")
        z = z.astype(np.float64)
        return (z if self.bias is None else z + self.bias) / self.temperature

    def predict_proba(self, features) -> np.ndarray:
        """(n, K) softmax of :meth:`logits`, columns in :attr:`class_names` order."""
        z = self.logits(features)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, features) -> np.ndarray:
        """Predicted class indices (n,) into :attr:`class_names`."""
        return self.logits(features).argmax(axis=1)


def load_head(folder) -> StandaloneProbe:
    """Read ``head.safetensors`` + ``head.json`` from ``folder``: the probe without its post-hoc bias and temperature
    (what the ONNX export takes from report.json, as ``mr2probe predict`` does)."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    meta = json.loads((folder / "head.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / "head.safetensors"))
    names = meta.get("class_names") or [str(c) for c in meta["classes"]]
    adapter = meta.get("adapter")
    return StandaloneProbe(tensors, list(names), meta["head"]["name"], adapter and adapter["name"])


def load_probe(folder) -> StandaloneProbe:
    """Read ``head.safetensors`` + ``head.json`` (and ``posthoc_bias.json``, ``temperature.json``) from ``folder``.
    A bias or temperature file that is not one finite number per class, or one finite positive number, is a
    ValueError naming it: a hand-edited one was a TypeError traceback, or a bias of one value added to every class,
    or a temperature of 0 that made every confidence NaN."""
    folder = Path(folder)
    probe = load_head(folder)
    names = probe.class_names
    bias_file, temperature_file = folder / "posthoc_bias.json", folder / "temperature.json"
    if bias_file.is_file():
        shipped = _shipped(bias_file, "bias")
        if shipped.get("class_names", names) != names:
            raise ValueError(f"{bias_file} names other classes than head.json: files of two runs")
        bias = shipped["bias"]
        if not (isinstance(bias, list) and len(bias) == len(names) and all(map(_finite, bias))):
            raise ValueError(f"{bias_file}: its bias is not {len(names)} finite numbers, one per class of head.json")
        probe.bias = np.asarray(bias, dtype=np.float64)
    if temperature_file.is_file():
        temperature = _shipped(temperature_file, "temperature")["temperature"]
        if not (_finite(temperature) and temperature > 0):
            raise ValueError(f"{temperature_file}: its temperature is not a finite number above 0")
        probe.temperature = float(temperature)
    return probe


def _shipped(path: Path, key: str) -> dict:
    """A shipped JSON file's object, holding ``key``; a ValueError naming the file otherwise."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # not UTF-8, not JSON
        raise ValueError(f"{path} is not a JSON file: {e}") from None
    if not isinstance(document, dict) or key not in document:
        raise ValueError(f"{path} holds no {key!r}: not a file the run wrote")
    return document


def _finite(value) -> bool:
    """Whether a JSON value is a finite number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load_features(path: str, width: int) -> np.ndarray:
    """The (n, d) array of a .npy file, or a ValueError that says what the file holds instead."""
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (ValueError, OSError):
        raise ValueError(f"{path} is not a .npy file of numbers (np.save of an (n, {width}) array)") from None
    if not isinstance(x, np.ndarray):  # an .npz archive
        raise ValueError(f"{path} is an .npz archive: save the (n, {width}) features alone with np.save")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds {x.dtype} values, not numbers: (n, {width}) features are expected")
    if x.ndim == 1 and x.shape[0] == width:
        raise ValueError(f"{path} holds one vector of shape ({width},): the probe takes rows, (n, {width}); "
                         f"save x[None] (or x.reshape(1, -1)) for one image")
    return x


def main(argv: list[str]) -> int:
    """``python apply_probe.py RUN_FOLDER FEATURES.npy``: one line per row, the predicted class (:func:`cell`: safe
    to open in a spreadsheet), a tab, its confidence (no header: ``cut -f1`` gives the classes); a bad argument (their
    count, a folder that is no probe's, a features file it cannot apply) is one line, exit 2, as mr2probe's."""
    if len(argv) != 2:
        print("usage: python apply_probe.py RUN_FOLDER FEATURES.npy", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    try:
        if not (folder / "head.json").is_file() or not (folder / "head.safetensors").is_file():
            raise ValueError(f"{folder} is not a probe's folder: it needs head.json and head.safetensors "
                             f"(a run folder, or probe.zip unpacked)")
        probe = load_probe(folder)
        probabilities = probe.predict_proba(_load_features(argv[1], probe.tensors["head.weight"].shape[1]))
    except (ValueError, OSError) as e:
        print(f"apply_probe.py: error: {e}", file=sys.stderr)
        return 2
    for row in probabilities:
        k = int(row.argmax())
        print(f"{cell(probe.class_names[k])}\t{row[k]:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
