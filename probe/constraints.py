"""Parameter constraints: a value's accepted type and bounds, declared once and checked with a message naming it.

As scikit-learn's ``_parameter_constraints``: a parameter maps to a list of accepted kinds (:class:`Interval`,
:class:`Options`, :class:`Name`, :class:`Device`, :class:`Boolean`, :class:`Numbers`, :class:`Instance`, or
``None``), and :func:`check` raises a ValueError naming the parameter, the bad value and what is accepted. The
trainer's parameters (``probe.params.TRAINER_PARAMS``), the registries' options (``probe.registry``) and
:class:`probe.ProbeConfig` all check their values with these, so a bound is written in one place. Torch-free.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["Interval", "Options", "Name", "Device", "Boolean", "Numbers", "Instance", "Text", "Items", "check",
           "describe", "MAX_NAME_LENGTH", "DEVICE_PATTERN"]

# Longest accepted name (loss, head, adapter, device, preset, option): names are short identifiers, and a
# megabyte-long "name" should not travel into error messages and logs.
MAX_NAME_LENGTH = 64
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, numbers.Integral if integer else numbers.Real)


def _finite(value: Any) -> bool:
    """A finite float; an integer beyond any float (10**400) is not (float() raised: a 500; an attack round)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e15 else f"{bound:g}"


def _magnitude(value: Any) -> Any:
    """A number as a message gives it: an integer beyond any float by its magnitude (``1.00e+400``), not its 400
    digits cut at 80 characters."""
    return f"{Decimal(int(value)):.3g}" if isinstance(value, numbers.Integral) and not _finite(value) else value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Interval:
    """A number (``int``: an integer; ``float``: any finite real) in [low, high]; ``closed`` says which ends are
    included: ``both``, ``left``, ``right`` or ``neither``; a None end is unbounded."""

    type: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def accepts(self, value: Any) -> bool:
        if not _is_number(value, self.type is int) or not _finite(value):
            return False
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and not (value >= self.low if left else value > self.low):
            return False
        return self.high is None or (value <= self.high if right else value < self.high)

    def json_schema(self) -> dict[str, float]:
        """The bounds as JSON Schema keywords (``minimum`` / ``exclusiveMinimum``, ``maximum`` /
        ``exclusiveMaximum``): what a published request schema says of the field."""
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        out: dict[str, float] = {}
        if self.low is not None:
            out["minimum" if left else "exclusiveMinimum"] = self.low
        if self.high is not None:
            out["maximum" if right else "exclusiveMaximum"] = self.high
        return out

    def describe(self) -> str:
        kind = "an integer " if self.type is int else ""
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            return f"{kind}in {'[' if left else '('}{_fmt(self.low)}, {_fmt(self.high)}{']' if right else ')'}"
        if self.low is not None:
            return f"{kind}{'>=' if left else '>'} {_fmt(self.low)}"
        if self.high is not None:
            return f"{kind}{'<=' if right else '<'} {_fmt(self.high)}"
        return "an integer" if self.type is int else "a finite number"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of strings."""

    values: tuple[str, ...]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values

    def describe(self) -> str:
        return f"one of {', '.join(self.values)}"


@dataclass(frozen=True)
class Name:
    """The name of a registry entry (``kind`` = loss, head, adapter, preset); the registry is read when checked,
    so entries added later are accepted. Its message is ``Unknown loss 'x'; available: ...``."""

    kind: str
    names: Callable[[], Sequence[str]]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.names()

    def describe(self) -> str:
        return f"a {self.kind} name ({', '.join(self.names())})"


@dataclass(frozen=True)
class Device:
    """A torch device string the trainer accepts: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (or a torch.device)."""

    def accepts(self, value: Any) -> bool:
        if type(value).__name__ == "device" and hasattr(value, "type"):  # a torch.device, without importing torch
            value = str(value)
        return isinstance(value, str) and bool(DEVICE_PATTERN.match(value))

    def describe(self) -> str:
        return "one of auto, cpu, cuda, cuda:N"


@dataclass(frozen=True)
class Boolean:
    """True or False (not 0 / 1, not a string)."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (bool,)) or type(value).__name__ == "bool_"

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Numbers:
    """A non-empty sequence (list, tuple, 1-D array) of finite numbers, each in ``element``."""

    element: Interval

    def accepts(self, value: Any) -> bool:
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
            return False
        return all(self.element.accepts(v) for v in value)

    def describe(self) -> str:
        return f"a non-empty list of numbers, each {self.element.describe()}"


@dataclass(frozen=True)
class Instance:
    """An instance of one of ``types`` (``callable`` accepts any callable); ``label`` names it in messages."""

    types: tuple
    label: str

    def accepts(self, value: Any) -> bool:
        if callable in self.types and callable(value):
            return True
        return isinstance(value, tuple(t for t in self.types if isinstance(t, type)))

    def describe(self) -> str:
        return self.label


# A pattern longer than this is not quoted in a message (a name's class of refused characters is 580 bytes of escapes)
MAX_SHOWN_PATTERN = 40


def _count(low: int, high: int | None, unit: str) -> str:
    """``low``..``high`` ``unit`` in words: "1 to 64 characters", "at most 64 characters", "at least 1 character"."""
    plural = unit if high == 1 or (high is None and low == 1) else unit + "s"
    if high is None:
        return f"at least {low} {plural}"
    if low == 0:
        return f"at most {high} {plural}"
    return f"{low} to {high} {plural}" if low != high else f"{high} {plural}"


@dataclass(frozen=True)
class Text:
    """A string of ``min_length``..``max_length`` characters (None: unbounded) in which ``pattern`` (a regular
    expression) matches; the pattern is quoted in messages where it is short."""

    min_length: int = 0
    max_length: int | None = None
    pattern: str | None = None

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, str) or len(value) < self.min_length:
            return False
        if self.max_length is not None and len(value) > self.max_length:
            return False
        try:
            return self.pattern is None or re.search(self.pattern, value) is not None
        except re.error:  # a pattern of another dialect: not checked here
            return True

    def describe(self) -> str:
        bounded = self.min_length or self.max_length is not None
        text = f"a string of {_count(self.min_length, self.max_length, 'character')}" if bounded else "a string"
        if self.pattern and len(self.pattern) <= MAX_SHOWN_PATTERN:
            text += f" matching {self.pattern}"
        return text


@dataclass(frozen=True)
class Items:
    """A list of ``min_items``..``max_items`` values (None: unbounded)."""

    min_items: int = 0
    max_items: int | None = None

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list) and self.min_items <= len(value) <= (self.max_items or len(value))

    def describe(self) -> str:
        bounded = self.min_items or self.max_items is not None
        return f"a list of {_count(self.min_items, self.max_items, 'value')}" if bounded else "a list"


def describe(constraints: list) -> str:
    """What a constraint list accepts, in words (``None`` → "None")."""
    return " or ".join("None" if c is None else c.describe() for c in constraints)


def check(name: str, value: Any, constraints: list) -> Any:
    """Return ``value`` if one of ``constraints`` accepts it; otherwise raise ValueError naming ``name``.

    Messages: ``lr must be > 0, got -1.``; ``cbar must be a finite number, got nan.``; ``val_fraction must be in
    (0, 1), got inf, out of range.`` (an integer beyond any float: ``got 1.00e+400``); ``Unknown loss 'x';
    available: ce, ...``; ``device must be one of auto, cpu, cuda, cuda:N, got 'tpu'.``; a string longer than
    ``MAX_NAME_LENGTH`` is reported by its length, not echoed.
    """
    if any(c is None for c in constraints) and value is None:
        return value
    if any(c is not None and c.accepts(value) for c in constraints):
        return value
    texts = [c.max_length for c in constraints if isinstance(c, Text)]
    longest = max(texts, default=MAX_NAME_LENGTH) if None not in texts else None
    if isinstance(value, str) and longest is not None and len(value) > longest:
        raise ValueError(f"{name} must be at most {longest} characters, got {len(value)}.")
    if _is_number(value, False) and not _finite(value) and any(isinstance(c, Interval) for c in constraints):
        if value != value and any(isinstance(c, Interval) and c.type is float for c in constraints):
            raise ValueError(f"{name} must be a finite number, got {_short(value)}.")  # NaN: no bound says it
        if value == value:
            # ±inf (JSON's 1e400 reads as inf) or an integer beyond any float (10**400): beyond every bound, said
            # with the field's, for an integer field as for a real one (an integer's inf said no "out of range"
            # where its 10**400 did); "must be a finite number, got 1000000...." gave neither
            raise ValueError(f"{name} must be {describe(constraints)}, got {_magnitude(value)}, out of range.")
    names = [c for c in constraints if isinstance(c, Name)]
    if names and isinstance(value, str):
        kind = names[0]
        extra = " (or None)" if None in constraints else ""
        raise ValueError(f"Unknown {kind.kind} {value!r}; available: {', '.join(kind.names())}{extra}.")
    shown = _magnitude(value) if _is_number(value, False) else _short(value)
    if isinstance(value, list) and any(isinstance(c, Items) for c in constraints):
        shown = f"{len(value)} values" if len(value) != 1 else "1 value"
    raise ValueError(f"{name} must be {describe(constraints)}, got {shown}.")
