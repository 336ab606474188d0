"""Images a run's probe predicts on (another cache's split, ``mr2probe predict``) that nearly duplicate one of the
run's own train or val images: scores on them overstate the probe on new images. The same check as the run's report
(``probe.near_duplicates``: the encoder's measured threshold and the ratio test, the products budget, a seeded
sample past it), against
the train and val splits of the run's cache, found as ``mr2probe failures`` finds it (``app.label_issues.run_cache``).
"""
from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Callable, Optional

from pydantic import BaseModel, Field

__all__ = ["NearTrain", "near_lines", "near_train", "unchecked_text", "with_near_lines"]


class NearTrain(BaseModel):
    """``near`` of the ``images`` predicted nearly duplicate (cosine ≥ ``threshold`` of ``encoder`` features, and
    ``ratio`` times closer than to any other image: ``probe.near_duplicates.is_near_duplicate``) one of the run's
    train or val images, byte-identical copies included; ``sampled``: how many were compared, where the
    budget allowed a random sample of them alone (None: every one), with ``near_ci`` the 95 % Wilson interval of
    ``near / sampled``. ``mr2probe predict --json``'s and ``GET /api/runs/{id}/scores`` / ``/predicted``'s
    ``near_train``."""

    encoder: str = Field(..., description="the encoder whose features were compared")
    threshold: float = Field(..., description="the cosine at or above which an image nearly duplicates one")
    ratio: float = Field(..., description="past the threshold, a near-duplicate where 1 - c2 >= ratio x (1 - c1), "
                         "c1 the cosine to the nearest train or val image, c2 that to the second-nearest of other "
                         "features, or c1 >= probe.near_duplicates.NEAR_DUPLICATE_BAR")
    images: int = Field(..., description="images predicted")
    near: int = Field(..., description="of them (of the sampled ones where sampled), those that nearly duplicate "
                      "their most similar train or val image of the run (threshold and ratio), byte-identical "
                      "copies included")
    sampled: Optional[int] = Field(None, description="where comparing every image passed the products budget: how "
                                   "many were compared, a seeded random sample; null: every one")
    near_ci: Optional[list[float]] = Field(None, description="where sampled: the 95 % Wilson interval of near / "
                                           "sampled")

    def describe(self) -> str:
        from probe.near_duplicates import rule_text, share_text

        found = share_text(self.near, self.sampled, self.images, "images predicted")
        # where none is found, nothing is overstated (the line said so of a clean cache, a warning on the run page)
        why = "; where they are copies, scores on them overstate the probe on new images" if self.near else ""
        return (f"Near-duplicates of the run's train or val images: {found} may nearly or exactly duplicate one "
                f"({rule_text(self.threshold, self.encoder, self.ratio)}){why}.")

    def as_dict(self) -> dict:
        return self.model_dump(mode="json")


def unchecked_text(why: str) -> str:
    """The one sentence for a check :func:`near_train` could not make, ``why``: predict's line, the API's warning."""
    return f"Not checked for near-duplicates of the run's train or val images: {why}."


def near_train(report, own_cache: Callable, cache, split: str) -> tuple[NearTrain | None, list[str]]:
    """``(found, warnings)``: the check of ``split`` of ``cache`` (a ``feature_cache.FeatureCache``) against the train
    and val images of the run (``report``; ``own_cache()`` opens its cache, ValueError or OSError where it cannot; the
    classes it left out left out), or None; ``warnings`` says it (:meth:`NearTrain.describe`) where some image
    duplicates one, or why it was not made (:func:`unchecked_text`): predict's line, its ``--json``'s and the API's
    ``warnings``, as compare's. Nothing is said on the run's own train or val split (all of them its own images,
    which predict warns of apart) nor where the run's encoder has no measured threshold. Bounded by the products
    budget: a seeded sample past it."""
    found, why = _near_train(report, own_cache, cache, split)
    if found is not None:  # a warning where some image duplicates one: a clean cache's 'none' is no caution
        return found, [found.describe()] if found.near else []
    return found, [] if why is None else [unchecked_text(why)]


def near_lines(runs: list[tuple[str, Any, Callable]], cache, split: str) -> list[tuple[list[str], str]]:
    """The check :func:`near_train` makes, once per distinct (run cache fingerprint, classes left out) among ``runs``
    (``(name, report, own_cache)``; a group's runs share their train and val images): ``(names, line)`` pairs, the
    line predict prints (:meth:`NearTrain.describe`, or why it was not checked), led by the group's run names where
    the runs make more than one group. ``mr2probe compare --features`` and the API's ``/compare?cache=``."""
    from probe.names import listed

    from .store import left_out_json

    groups: dict[tuple, list] = {}
    for name, report, own_cache in runs:  # the classes left out as the runs list says them: 'café' in either form
        key = (report.features and report.features.fingerprint, left_out_json(report.config))
        groups.setdefault(key, []).append((name, report, own_cache))
    lines = []
    for members in groups.values():
        for _, report, own_cache in members:  # the first run whose own cache is found
            found, warnings = near_train(report, own_cache, cache, split)
            if found is not None or not warnings:
                break
        names = list(dict.fromkeys(name for name, _, _ in members))
        lines += [(names, line if len(groups) == 1 else f"{listed(names, 5)}: {line}") for line in warnings]
    return lines


def with_near_lines(comparisons: list, lines: list[tuple[list[str], str]]) -> None:
    """Each comparison's ``warnings`` with the :func:`near_lines` of its two runs (named as its ``base`` and
    ``other``), once each."""
    for comparison in comparisons:
        mine = [line for names, line in lines if {comparison.base, comparison.other} & set(names)]
        comparison.warnings = list(dict.fromkeys([*comparison.warnings, *mine]))


def _reported(report, cache, split: str, threshold: float, ratio: float) -> NearTrain | None:
    """The run's own test split as its report checked it (``report.near_duplicates``), where that check is this one:
    every row of the split compared (not a sample, no class left out of it) at this threshold and ratio (None in a
    report from before the ratio test); its ``near`` and ``identical`` together (byte-identical copies have the same
    features, cosine 1, so this check counts them among its near). None otherwise: the check is made again."""
    found = report.near_duplicates
    if (found is None or split != "test" or cache.fingerprint != report.features.fingerprint
            or found.sampled is not None or found.threshold != threshold or found.ratio != ratio
            or found.test_images != cache.split_sizes.get("test")):
        return None
    return NearTrain(encoder=found.encoder, threshold=threshold, ratio=ratio, images=found.test_images,
                     near=found.near + (found.identical or 0))


def _near_train(report, own_cache: Callable, cache, split: str) -> tuple[NearTrain | None, str | None]:
    """:func:`near_train` with why it was not made in words of its own (None where nothing is to be said)."""
    from probe.near_duplicates import (MAX_CHECK_PRODUCTS, NEAR_DUPLICATE_RATIO, RowSubset, check_rows,
                                       is_near_duplicate, near_duplicate_threshold, sample_share)
    from probe.splits import kept_rows
    from probe.seen import SEEN_SPLITS

    threshold = near_duplicate_threshold(report.features.encoder if report.features is not None else None)
    if threshold is None or (cache.fingerprint == report.features.fingerprint and split != "test"):
        return None, None
    reported = _reported(report, cache, split, threshold, NEAR_DUPLICATE_RATIO)
    if reported is not None:
        return reported, None
    try:  # the cache predicted on is the run's own where it holds its features: found wherever it lies now
        own = cache if cache.fingerprint == report.features.fingerprint else own_cache()
    except (ValueError, OSError) as exc:  # moved, a service cache id, replaced: the predictions stand without it
        return None, f"the run's own cache cannot be read here ({exc})"
    drop = report.config.get("drop_classes") or []
    seen = [name for name in SEEN_SPLITS if name in own.splits and own.split_sizes[name]]
    with ExitStack() as stack:
        queries = stack.enter_context(cache.reading(split))
        references = []
        for name in seen:
            stored = stack.enter_context(own.reading(name))
            rows = kept_rows(own.labels(name), list(own.class_names), drop)
            references.append(stored if len(rows) == len(stored) else RowSubset(stored, rows))
        checked, images = check_rows(queries, references, MAX_CHECK_PRODUCTS), len(queries)
    if checked is None:
        return None, f"one image's comparison with the run's images passes the budget of {MAX_CHECK_PRODUCTS:.0e}"
    near = int(is_near_duplicate(checked.nearest, threshold).sum())
    sampled, ci = sample_share(near, checked)
    return NearTrain(encoder=report.features.encoder, threshold=threshold, ratio=NEAR_DUPLICATE_RATIO, images=images,
                     near=near, sampled=sampled, near_ci=ci), None
