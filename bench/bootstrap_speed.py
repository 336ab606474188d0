"""Cost of the stratified bootstrap (``probe.uncertainty.Bootstrap.class_accuracy``) drawn in chunks against
drawn a whole block at a time.

A run draws 1,000 resamples (``DEFAULT_RESAMPLES``) of every split it scores with intervals: the out-of-fold pool
of a cross-validated selection (3,000 samples on the 2.7k CIFAR-10 cache), the test split (10,000 on CIFAR-10).
Each resample block (``_BLOCK_ELEMENTS`` pairs, its own generator) is drawn in chunks of ``_CHUNK_ELEMENTS``
pairs whose buffers are reused; the baseline (``whole``) sets the chunk to the block, as the code did before,
so a block's ~70 MB of temporaries are new memory. The resamples are the same in both.

Each measurement runs in a fresh process (what a ``mr2probe train`` process pays once) with the allocator
setting of ``run_probe`` (``probe.allocator.keep_freed_memory``), and times the first call and the third. The
settings alternate over ``--rounds`` rounds; the parent prints every run, the medians and their ratio.

    python bench/bootstrap_speed.py --samples 3000 10000 --rounds 4
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
import numpy as np
from probe.allocator import keep_freed_memory
keep_freed_memory()
import probe.uncertainty as uncertainty
if sys.argv[1] == "whole":
    uncertainty._CHUNK_ELEMENTS = uncertainty._BLOCK_ELEMENTS
n = int(sys.argv[2])
rng = np.random.default_rng(0)
labels, correct = rng.integers(0, 10, n), rng.integers(0, 4, n) / 3
times = []
for _ in range(3):
    boot = uncertainty.Bootstrap(labels, 10, seed=5)
    start = time.perf_counter()
    boot.class_accuracy(correct)
    times.append(time.perf_counter() - start)
print(json.dumps({"first": times[0], "third": times[2]}))
"""


def measure(setting: str, samples: int) -> dict:
    """One fresh process: seconds of the first and the third ``class_accuracy`` call."""
    out = subprocess.run([sys.executable, "-c", CHILD, setting, str(samples)], cwd=REPO, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    for samples in args.samples:
        runs: dict[str, list[dict]] = {"whole": [], "chunked": []}
        for r in range(args.rounds):
            order = ("whole", "chunked") if r % 2 == 0 else ("chunked", "whole")
            for setting in order:
                runs[setting].append(measure(setting, samples))
        for setting, values in runs.items():
            cells = ", ".join(f"{1e3 * v['first']:.0f}/{1e3 * v['third']:.0f}" for v in values)
            print(f"{samples} samples, {setting}: first/third call ms {cells}")
        med = {s: {k: statistics.median(v[k] for v in runs[s]) for k in ("first", "third")} for s in runs}
        print(f"{samples} samples: median first call {1e3 * med['whole']['first']:.0f} → "
              f"{1e3 * med['chunked']['first']:.0f} ms ({med['whole']['first'] / med['chunked']['first']:.1f}×), "
              f"third {1e3 * med['whole']['third']:.0f} → {1e3 * med['chunked']['third']:.0f} ms "
              f"({med['whole']['third'] / med['chunked']['third']:.2f}×)")


if __name__ == "__main__":
    main()
