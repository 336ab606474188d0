"""What a run pays on a process's first call for its large temporaries, against a named baseline in the same run.

A ``mr2probe train`` process, or a service job after the previous one handed its memory back, meets its large
buffers as new memory: every page is faulted in (and, for numpy arrays of 4 MB and more, which numpy asks the
kernel to back with huge pages, that first touch took from 0.05 to 0.9 s for the same ~70 MB on this VM). Two
cases, each in fresh processes with ``run_probe``'s allocator setting (``probe.allocator.keep_freed_memory``),
timing the first call and the third; the two settings alternate over ``--rounds`` rounds:

* ``bootstrap``: ``probe.uncertainty.Bootstrap.class_accuracy``, 1,000 resamples (``DEFAULT_RESAMPLES``) of
  ``--samples`` samples (3,000: the cross-validated pool of the 2.7k CIFAR-10 cache; 10,000: CIFAR-10's test
  split). Baseline ``whole``: each resample block (``_BLOCK_ELEMENTS`` pairs, its own generator) drawn at once,
  ~70 MB of temporaries, as before stop 31; ``chunked``: drawn in chunks of ``_CHUNK_ELEMENTS`` pairs into reused
  buffers (the resamples are the same).
* ``evaluate``: ``probe.evaluate.evaluate_seed`` of a linear probe on 5,000 val and 10,000 test rows of
  ``--features`` (float16, as ``mr2probe train`` keeps them). Baseline ``whole``: inference widens each split to
  float32 in one chunk (``probe.trainer._CHUNK_BYTES`` unbounded; before stop 31 the chunk was 65,536 rows and
  the sample margins read a float32 copy of the whole test split); ``chunked``: chunks of at most 16 MiB.

    python bench/first_call.py --case bootstrap --samples 3000 10000 --rounds 4
    python bench/first_call.py --case evaluate --features /work/cache/cifar10-full.h5 --rounds 4
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PRELUDE = """
import json, sys, time
import numpy as np
from probe.allocator import keep_freed_memory
keep_freed_memory()
setting, size, features = sys.argv[1], int(sys.argv[2]), sys.argv[3]
"""

CHILD = {
    "bootstrap": PRELUDE + """
import probe.uncertainty as uncertainty
if setting == "whole":
    uncertainty._CHUNK_ELEMENTS = uncertainty._BLOCK_ELEMENTS
rng = np.random.default_rng(0)
labels, correct = rng.integers(0, 10, size), rng.integers(0, 4, size) / 3
def call():
    uncertainty.Bootstrap(labels, 10, seed=5).class_accuracy(correct)
""",
    "evaluate": PRELUDE + """
import torch
torch.set_num_threads(1)
import probe.trainer as trainer
from probe.evaluate import evaluate_seed
from feature_cache import open_cache
cache = open_cache(features)
(x, y), val, test = (cache.load(s, dtype=None) for s in ("train", "val", "test"))
keep = np.concatenate([np.flatnonzero(y == k)[:30] for k in range(len(cache.class_names))])
model = trainer.ProbeTrainer(epochs=5, batch_size=None).fit(x[keep], y[keep])
if setting == "whole":
    trainer._CHUNK_BYTES = 1 << 62
val, test = (val[0][:5000], val[1][:5000]), (test[0][:10000], test[1][:10000])
def call():
    evaluate_seed(model, 0, val, test, len(cache.class_names))
""",
}
TIMING = """
times = []
for _ in range(3):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
print(json.dumps({"first": times[0], "third": times[2]}))
"""


def measure(case: str, setting: str, size: int, features: str) -> dict:
    """One fresh process: seconds of the first and the third call."""
    out = subprocess.run([sys.executable, "-c", CHILD[case] + TIMING, setting, str(size), features], cwd=REPO,
                         check=True, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(case: str, size: int, runs: dict[str, list[dict]]) -> list[str]:
    """Each setting's runs (first / third call, ms), then the medians and the ratios whole / chunked."""
    lines = [f"{case}, {size} samples, {setting}: first/third call ms "
             + ", ".join(f"{1e3 * v['first']:.0f}/{1e3 * v['third']:.0f}" for v in values)
             for setting, values in runs.items()]
    med = {s: {k: statistics.median(v[k] for v in runs[s]) for k in ("first", "third")} for s in runs}
    whole, chunked = med["whole"], med["chunked"]
    lines.append(f"{case}, {size} samples: median first call {1e3 * whole['first']:.0f} → "
                 f"{1e3 * chunked['first']:.0f} ms ({whole['first'] / chunked['first']:.1f}×), "
                 f"third {1e3 * whole['third']:.0f} → {1e3 * chunked['third']:.0f} ms "
                 f"({whole['third'] / chunked['third']:.2f}×)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CHILD), default="bootstrap")
    parser.add_argument("--samples", type=int, nargs="+", default=[3000, 10000], help="bootstrap: split sizes")
    parser.add_argument("--features", default="", help="evaluate: a cache with >= 5,000 val and 10,000 test rows")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    for size in args.samples if args.case == "bootstrap" else [15000]:
        runs: dict[str, list[dict]] = {"whole": [], "chunked": []}
        for r in range(args.rounds):  # alternating order: whole first in even rounds, chunked first in odd ones
            for setting in ("whole", "chunked") if r % 2 == 0 else ("chunked", "whole"):
                runs[setting].append(measure(args.case, setting, size, args.features))
        print("\n".join(summary(args.case, size, runs)))


if __name__ == "__main__":
    main()
