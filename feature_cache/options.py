"""What `mr2probe extract` and torchrun's ``python -m feature_cache.distributed`` share: their options (one definition
of each), how they open the data set the options name, and the lines they print of it (the classes found and the
data set's warnings before the extraction, the files skipped after). Torchrun's command had its own copies, without
``--unlabelled`` or ``--no-progress``, and printed none of those lines but an unused ``--val-fraction``. Torch-free:
``mr2probe extract --help`` does not load torch (:func:`said_after` alone reads a cache)."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from probe.constraints import Interval, check

from .datasets import ARCHIVE_SUFFIXES, how_to_add
from .defaults import (DEFAULT_BATCH_SIZE, DEFAULT_ENCODER, DEFAULT_VAL_FRACTION, ENCODER_HELP, MAX_BATCH_SIZE,
                       MAX_PER_CLASS, MAX_SEED, MAX_WORKERS, VAL_FRACTION_BOUNDS)

__all__ = ["WORKERS_HELP", "add_extract_arguments", "OPTION_CONSTRAINTS", "check_options", "option_flag",
           "open_requested", "found", "cautions", "data_warnings", "said_before", "no_validation", "said_after",
           "skipped_lines", "CLASSES_LISTED", "SKIPPED_LISTED"]

WORKERS_HELP = ("DataLoader worker processes; on CPU each decodes and encodes its own batches with one thread "
                "(default: one per torch thread from 2,000 images, else 0: all in the main process); on CUDA they "
                f"decode while the GPU encodes (default: one per core but one, 2 to 8); at most {MAX_WORKERS}")


def add_extract_arguments(parser: argparse.ArgumentParser, *, workers_help: str = WORKERS_HELP) -> None:
    """The extraction's options: the data set, how it is split, the encoder, the cache and how it is written.
    ``workers_help``: the ``--workers`` help of a command that counts them otherwise (torchrun's: per rank)."""
    parser.add_argument("--data", required=True,
                        help=f"folder or archive ({', '.join(ARCHIVE_SUFFIXES)}) of class folders (train/ and test/ sub-trees or one tree), "
                        "a CSV manifest or a Fashion-MNIST idx folder. A manifest's header names a path column "
                        "(path, filepath, file_path, file, filename, image, image_path), a label column (label, class, "
                        "class_name, target, category) and optionally a split column (split or subset: train / "
                        "val / test); paths are relative to the CSV file's folder. A folder holding train.csv and "
                        "test.csv is read as one data set (train rows train, test rows test)")
    parser.add_argument("--unlabelled", action="store_true",
                        help="the images are not labelled: every image file under --data (a folder or an archive, "
                        "any folders) goes into one test split, for `mr2probe predict` to apply a shipped probe to; "
                        "nothing trains on such a cache")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER,
                        help=ENCODER_HELP)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="cache file to write (reused when it matches the request)")
    where.add_argument("--cache-dir", default=".mr2probe/cache",
                       help="folder of caches named by fingerprint (default: .mr2probe/cache)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"images per forward pass / chunk (default {DEFAULT_BATCH_SIZE}, at most {MAX_BATCH_SIZE})")
    parser.add_argument("--workers", type=int, default=None, help=workers_help)
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto",  # checked by feature_cache (PRECISIONS)
                        help="forward-pass precision: auto (default: fp16 on CUDA, bf16 on CPUs with native "
                        "bfloat16, else fp32), fp32, bf16 (autocast) or fp16 (CUDA autocast); recorded in the cache")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help=f"fraction of each class's train images carved into val (default {DEFAULT_VAL_FRACTION}); "
                        "unused where the data set has a val/ folder (or manifest val rows)")
    parser.add_argument("--seed", type=int, default=0, help="seed for subsetting and splitting (default 0)")
    parser.add_argument("--max-per-class", type=int, default=None,  # the rule of app.schemas.MAX_PER_CLASS_HELP
                        help="keep at most this many images per class in each given split (seeded); a data set "
                             "without split folders: in all, before test and val are carved from them")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                        help="stored feature dtype (default float16)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


# What each numeric option accepts (the bounds the API's ExtractOptions declares too): both commands refuse a value
# outside with the same line (check_options). mr2probe extract said pydantic's "--batch-size should be greater than
# or equal to 1, got 0" and torchrun's command the library's "batch_size must be in [1, 1024], got 0", and took
# --val-fraction 0, which the other refused (a loose end).
OPTION_CONSTRAINTS = {
    "batch_size": [Interval(int, 1, MAX_BATCH_SIZE)],
    "workers": [Interval(int, 0, MAX_WORKERS)],
    "val_fraction": [Interval(float, *VAL_FRACTION_BOUNDS, closed="neither")],
    "seed": [Interval(int, 0, MAX_SEED)],
    "max_per_class": [Interval(int, 1, MAX_PER_CLASS)],
}


def option_flag(name: str) -> str:
    """The flag of the option ``name`` as the user types it: ``max_per_class`` → ``--max-per-class``."""
    return "--" + name.replace("_", "-")


def check_options(args: argparse.Namespace) -> None:
    """Refuse the first option of ``args`` (of :func:`add_extract_arguments`) outside :data:`OPTION_CONSTRAINTS`,
    before the data set is read or the encoder built: a ValueError naming its flag, the value and what is accepted
    (``--batch-size must be an integer in [1, 1024], got 0.``; ``probe.constraints.check``). An option not given
    (None) is left to its default."""
    for name, constraints in OPTION_CONSTRAINTS.items():
        value = getattr(args, name)
        if value is not None:
            check(option_flag(name), value, constraints)


def open_requested(args: argparse.Namespace) -> Any:
    """The data set ``args`` (of :func:`add_extract_arguments`) name, opened: ``--unlabelled`` images (refused with
    ``--max-per-class`` or ``--val-fraction``, which split a labelled set) or a labelled set, split as asked."""
    from .datasets import open_dataset, open_images

    if args.unlabelled:
        if args.max_per_class is not None or args.val_fraction is not None:
            raise ValueError("--max-per-class and --val-fraction split a labelled set; --unlabelled keeps every "
                             "image in one test split.")
        return open_images(args.data)
    share = DEFAULT_VAL_FRACTION if args.val_fraction is None else args.val_fraction
    return open_dataset(args.data, val_fraction=share, seed=args.seed, max_per_class=args.max_per_class)


CLASSES_LISTED = 20  # class names the line before an extraction names; the rest counted (probe.names.listed)


def found(data: Any) -> str:
    """What the extraction is about to read, in a line: its classes, named, and its images per split. A wrong
    layout (the classes batch1 and batch2, a class per photographer) went unseen until a run's report."""
    from probe.names import listed

    sizes = {split: len(samples) for split, samples in data.splits.items() if samples}
    total = sum(sizes.values())
    per_split = ", ".join(f"{split} {n:,}" for split, n in sizes.items())
    images = f"{total:,} image{'s' * (total != 1)} ({per_split})"
    if not getattr(data, "labelled", True):
        return f"found {images}, unlabelled"
    names = listed([repr(name) for name in data.class_names], CLASSES_LISTED)
    return f"found {len(data.class_names)} class{'es' * (len(data.class_names) != 1)}: {names}; {images}"


def cautions(data: Any, option: str, share: float | None, counts: dict[str, list[int]] | None = None
             ) -> list[tuple[str, str]]:
    """What an extraction says of an opened data set before it starts, the CLI's ``mr2probe extract`` and a job's
    alike (each said a different subset; a new-user round): ``(kind, text)`` pairs, kind ``warning`` or ``note``.
    ``option`` names the validation share where it would go unused (``--val-fraction``, ``options.val_fraction``),
    ``share`` is the share asked for (None: the default); ``counts``: the data set's images per class of each split
    where the caller has them (``feature_cache.datasets.dataset_counts``; counted here otherwise)."""
    from probe.names import lookalike_names_warning

    from .datasets import carved_test_note, unused_val_share

    labelled = getattr(data, "labelled", True)
    said = [("warning", unused_val_share(data, option, share) if labelled else None),
            ("warning", lookalike_names_warning(list(data.class_names)) if labelled else None),
            *(("warning", text) for text in data_warnings(data)),
            ("warning", _imbalance(data, counts) if labelled else None),
            ("warning", _unvalidated(data, counts) if labelled else None),
            ("note", carved_test_note(data))]  # None for unlabelled images
    return [(kind, text) for kind, text in said if text]


def _unvalidated(data: Any, counts: dict[str, list[int]] | None) -> str | None:
    """The run's warning of classes without a validation image (``probe.splits.without_validation``), said of a
    labelled data set as split where a probe trained on it (its classes with train and test images; the others
    left out) selects on validation with the default cross-validation: a class of 2 images (train 1, test 1) was
    said only by its runs (a long-tailed round)."""
    from probe.config import DEFAULT_CV_FOLDS
    from probe.splits import classes_without_validation, cv_folds, without_validation

    from .datasets import dataset_counts

    counts = dataset_counts(data) if counts is None else counts
    names = list(data.class_names)
    none = [0] * len(names)
    kept = [k for k in range(len(names)) if (counts.get("train") or none)[k] and (counts.get("test") or none)[k]]
    split = {name: [n[k] for k in kept] for name, n in counts.items()}
    fraction = data.params["val_fraction"]
    empty = classes_without_validation(split, fraction, [names[k] for k in kept])
    if not empty or cv_folds(split, fraction, DEFAULT_CV_FOLDS):
        return None
    return ("a probe trained on this cache selects its configuration on the validation split, not cross-validated "
            f"(a class has fewer than 2 train + val images to fold): {without_validation(empty)}")


def data_warnings(data: Any) -> list[str]:
    """The warnings of an opened data set's files that its features cannot tell (nested or split-named class folders,
    files of one content in test and train or under two classes): :func:`cautions` says them before an extraction,
    and the cache keeps them (its ``data_warnings`` attribute) for every run trained on it to say. A run finds the
    others itself in its own splits (lookalike class names, imbalance, as its selection metric weighs it)."""
    from .archives import printable
    from .datasets import (nested_classes_warning, split_named_classes_warning, unicode_forms_warning,
                           unread_manifest_warning)

    labelled = getattr(data, "labelled", True)
    said = [nested_classes_warning(data),  # None for unlabelled images
            split_named_classes_warning(list(data.class_names)) if labelled else None,
            unicode_forms_warning(data),  # None for unlabelled images
            unread_manifest_warning(data),  # None for unlabelled images and manifests
            getattr(data, "duplicates", None)]
    return [printable(text) for text in said if text]  # a file's name not in UTF-8 could not be stored


def _imbalance(data: Any, counts: dict[str, list[int]] | None) -> str | None:
    """The report's warning of classes that differ in size (``probe.decision.imbalance_warning``), said of a labelled
    data set as split: a class of 8 images beside one of 153 went unsaid until a run's report (a new-user round),
    where the launch form says it of a registered data set."""
    import numpy as np
    from probe.decision import imbalance_warning

    from .datasets import dataset_counts

    counts = dataset_counts(data) if counts is None else counts
    none = [0] * len(data.class_names)
    train_val = np.add(counts.get("train", none), counts.get("val", none))
    return imbalance_warning(train_val, np.asarray(counts.get("test", none)), list(data.class_names))


def said_before(data: Any, share: float | None, cap: int | None = None) -> list[str]:
    """The warnings and notes printed after :func:`found`, before the extraction (which can take hours: the user may
    stop it and fix the data): a class without train or test images, :func:`cautions`, then a data set too small to
    leave a validation image (:func:`no_validation`). ``share``: the ``--val-fraction`` given (None: not given);
    ``cap``: the ``--max-per-class`` given. Raises ValueError, before any image is encoded, for a cap that leaves no
    validation image: both commands refuse it (torchrun's wrote the cache that train then refused)."""
    from .datasets import classes_without, dataset_counts

    if not getattr(data, "labelled", True):
        return [f"{kind}: {text}" for kind, text in cautions(data, "--val-fraction", share)]
    counts = dataset_counts(data)
    gaps = {split: classes_without(counts, list(data.class_names), (split,)) for split in ("train", "test")}
    lines = _missing_classes(gaps, data)
    lines += [f"{kind}: {text}" for kind, text in cautions(data, "--val-fraction", share, counts)]
    empty = no_validation(data, counts, cap, "--max-per-class")
    if empty and cap is not None:  # the cap empties it
        raise ValueError(empty)
    return lines + ([f"warning: {empty}"] if empty else [])


def no_validation(data: Any, counts: dict[str, list[int]], cap: int | None, flag: str) -> str | None:
    """Why a probe would refuse the cache of an opened data set's splits (``counts``, its images per class of each
    split: ``feature_cache.datasets.dataset_counts``, which its callers have) for want of validation images
    (``probe.splits.validation_images``: the val split's, else those carved from a class of 2 train images or more), or
    None; a labelled test set alone (no train image) is for predict. With a cap per class (``cap``, the option
    ``flag``: ``mr2probe extract``'s ``--max-per-class 1`` wrote a cache that train then refused, a loose end), the
    least cap that leaves one, by the same carving."""
    from itertools import count

    from probe.splits import MIN_TRAIN_TO_CARVE, carved_per_class, empty_validation, validation_images

    params = data.params
    if not sum(counts.get("train") or []) or validation_images(counts, params["val_fraction"]):
        return None
    sizes = ", ".join(f"{split} {sum(n):,}" for split, n in counts.items())
    if cap is None:
        return f"{empty_validation(sizes)}: a probe refuses this cache"

    def splits(n: int) -> dict[str, list[int]]:  # n images of a class capped: what the extraction leaves of them
        train = n - (int(carved_per_class([n], params["test_fraction"])[0]) if params["test_fraction"] else 0)
        val = 0 if data.val_given else int(carved_per_class([train], params["val_fraction"])[0])
        return {"train": [train - val], "val": [val]}

    least = next(n for n in count(cap + 1) if validation_images(splits(n), params["val_fraction"]))
    return (f"{flag} {cap} leaves no validation image ({sizes}): a probe carves one from a class of "
            f"{MIN_TRAIN_TO_CARVE} train images or more; give {flag} {least} or more")


def said_after(path: Any, data: Any, before: list[str]) -> list[str]:
    """The warnings of the finished cache at ``path`` not said ``before`` (:func:`said_before`): a class whose every
    image of a split failed to decode."""
    from .store import open_cache

    if not getattr(data, "labelled", True):
        return []
    cache = open_cache(path)
    gaps = {split: cache.classes_without(split) if split in cache.splits else list(cache.class_names)
            for split in ("train", "test")}
    return [line for line in _missing_classes(gaps, data) if line not in before]


MISSING_NAMED = 10  # classes named in the warning of a split without their images; the rest counted


def _missing_classes(gaps: dict[str, list[str]], data: Any) -> list[str]:
    """A warning per split in which some class of the opened data set ``data`` has no image: a probe trained on the
    cache needs both for every class (``probe.run_probe`` refuses it); the cache still serves ``mr2probe predict``.
    How to add them in the words of its layout (``feature_cache.datasets.how_to_add``: a manifest's rows)."""
    from probe.names import listed

    lines = []
    # a labelled test set alone (feature_cache.datasets)
    if len(gaps["train"]) == len(data.class_names) and not gaps["test"]:
        return ["note: no train images: a labelled test set, for mr2probe predict --features and compare --features "
                "(probes are trained on another cache)."]
    for split, missing in gaps.items():
        if missing:
            lines.append(f"warning: {len(missing)} class{'es' if len(missing) > 1 else ''} without any {split} "
                         f"image ({listed(missing, MISSING_NAMED)}): a probe needs {split} images of every class; "
                         f"{how_to_add([split], data.params.get('layout'), data.location)}, or drop "
                         f"{'them' if len(missing) > 1 else 'it'} before training.")
    return lines


SKIPPED_LISTED = 20  # skipped files named after an extraction; the rest counted


def skipped_lines(skipped: Sequence[tuple[str, str]]) -> list[str]:
    """The files an extraction left out (``ExtractResult.skipped``: source, reason), as the lines printed after it:
    the first :data:`SKIPPED_LISTED` named (quoted, as other messages name files: a name with a colon or spaces
    read ambiguously before the reason), the rest counted."""
    lines = [f"skipped {source!r}: {reason}" for source, reason in skipped[:SKIPPED_LISTED]]
    if len(skipped) > SKIPPED_LISTED:
        lines.append(f"... and {len(skipped) - SKIPPED_LISTED} more skipped files (see the cache's 'skipped' "
                     "attribute)")
    return lines
