"""`mr2probe extract`: run a frozen encoder over a labelled image set and cache the features (HDF5)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from feature_cache.defaults import DEFAULT_VAL_FRACTION
from feature_cache.options import (add_extract_arguments, check_options, found, open_requested, said_after, said_before,
                                   skipped_lines)

HELP = "encode a labelled image set once with a frozen encoder and cache the features to HDF5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_extract_arguments(parser)  # torchrun's `python -m feature_cache.distributed` takes the same


def run(args: argparse.Namespace) -> int:
    from feature_cache import check_encoder, extract
    from feature_cache.extract import rotated_lines

    check_options(args)  # torchrun's command checks the same, in the same words
    check_encoder(args.encoder)  # an unknown encoder or missing weights, refused before the data set is listed
    _check_writable(Path(args.out).parent if args.out else Path(args.cache_dir), args.out or args.cache_dir,
                    "--out" if args.out else "--cache-dir")
    share = args.val_fraction  # None where not given (`--val-fraction 0.1 --unlabelled` is refused)
    data = open_requested(args)
    if share is None:
        args.val_fraction = DEFAULT_VAL_FRACTION
    warned = said_before(data, share, args.max_per_class)  # a cap that leaves no validation image: refused
    for line in [found(data), *warned]:  # before the extraction, which can take hours: the user may stop it and
        print(line, file=sys.stderr)  # fix the data
    result = extract(
        data,
        args.encoder,
        None if args.out else args.cache_dir,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        val_fraction=args.val_fraction,
        seed=args.seed,
        max_per_class=args.max_per_class,
        out=args.out,
        dtype=args.dtype,
        show_progress=not args.no_progress,
        tune_allocator=True,  # a process of its own: keep freed memory (probe.allocator)
    )
    summary = {
        "path": str(result.path),
        "fingerprint": result.fingerprint,
        "reused": result.reused,
        "counts": result.counts,
        "encoded": result.encoded,
        "skipped": len(result.skipped),
    }
    print(json.dumps(summary), file=sys.stdout)
    after = [*skipped_lines(result.skipped), *rotated_lines(result.rotated), *said_after(result.path, data, warned)]
    for line in after:
        print(line, file=sys.stderr)
    return 0


def _check_writable(folder: Path, target: str, flag: str) -> None:
    """Refuse an ``--out`` (or ``--cache-dir``: ``flag``, the one given) this process cannot write, ``folder`` being
    where it goes, before the encoder is built and the data listed: the extraction failed only then, naming its own
    lock file ('/proc/x.h5.lock'; an outside round)."""
    from . import unwritable

    problem = unwritable(folder)
    if problem is not None:
        raise ValueError(f"cannot write {target}: {problem}; choose another {flag}")  # the flag given
