"""Which files a data set's registration left out, and why: recorded with the data set (bounded) and grouped by
reason for ``GET /api/datasets/{id}/skipped`` and the dashboard. The service kept only their count: a user whose
zip lost its .HEIC photos, or the files beside its class folders, could not find out which (a user round).

The names come escaped already (``feature_cache.archives.printable``) and relative to the data set.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feature_cache.datasets import group_skipped  # torch-free

__all__ = ["MAX_KEPT", "MAX_REASONS", "EXAMPLES", "group_reasons", "recorded_files", "skipped_note"]

MAX_KEPT = 5000  # skipped files recorded per data set, in the order they were found; the total is counted whatever it is
MAX_REASONS = 50  # distinct reasons recorded, the most frequent first (one per unknown extension: unbounded)
EXAMPLES = 3  # file names recorded with each reason
MAX_TEXT = 1024  # characters of a name or reason recorded (the thumbnail route's bound on a source): cut with "…"


def _clipped(skipped: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each name and reason cut to :data:`MAX_TEXT` characters, "…" at the cut."""
    cut = lambda text: text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"  # noqa: E731
    return [(cut(str(name)), cut(str(reason))) for name, reason in skipped]


def group_reasons(skipped: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """``(name, reason)`` pairs, each cut to :data:`MAX_TEXT` → ``[{"reason", "count", "examples"}]``, the most
    frequent reason first (ties: the first found first), at most :data:`MAX_REASONS` of them, each with the first
    :data:`EXAMPLES` names (``feature_cache.datasets.group_skipped``)."""
    return group_skipped(_clipped(skipped), EXAMPLES, MAX_REASONS)


def recorded_files(skipped: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The skipped files a data set row keeps: the first :data:`MAX_KEPT`, as ``(name, reason)``."""
    return _clipped(skipped[:MAX_KEPT])


def skipped_note(total: int, reasons: list[dict[str, Any]] | None, kept: int) -> str | None:
    """What a client reads beside a data set's skipped files, or None when they are all listed."""
    if reasons is None:
        return None if not total else (
            f"{total:,} file{'s' * (total != 1)} skipped, but this data set was registered before the service "
            "recorded which: register the same folder, or upload the same archive, again to record them (its id, "
            "caches and runs stay)")
    notes = []
    if kept < total:
        notes.append(f"the first {kept:,} of {total:,} skipped files are listed; the reasons count every one")
    other = total - sum(group["count"] for group in reasons)
    if other > 0:
        notes.append(f"{other:,} file{'s' * (other != 1)} skipped for {'a reason' if other == 1 else 'reasons'} past "
                     f"the {len(reasons)} most frequent are not grouped")
    return "; ".join(notes) or None
