"""bench/probe_speed.py --per-epoch-only: our per-epoch cost against the bare products of the same width and
precision (as its own process: importing the bench caps the thread pools of the importing process)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from probe import ProbeConfig
from probe.precision import cpu_has_native_bf16

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "probe_speed.py"


@pytest.mark.parametrize("heads", ["chosen", "sweep"])
def test_per_epoch_bare_products_have_the_fits_width_and_precision(tmp_path, heads):
    out = tmp_path / "epoch.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--per-epoch-only", "--epoch-fits", "1",
                           "--epoch-fit-epochs", "3", "--epoch-dtype", "float16", "--epoch-heads", heads,
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=SCRIPT.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(out.read_text())["in_process"]
    # the sweep: every candidate of the ERM sweep on the quick set's 5,000 training rows, fitted jointly
    expected_heads = 1 if heads == "chosen" else len(ProbeConfig(loss="ce").resolved(5_000).candidates())
    assert line["epoch_heads"] == expected_heads
    assert heads == "chosen" or expected_heads == 6  # 6 L2 strengths at one lr (probe.config.L2_STRENGTHS)
    # precision="auto" on a CPU with native bf16: bf16 for both, their ℓ_γ,ce mini-batches gathered from features
    # cast once (bf16 from 3 outputs, probe.precision.BF16_MIN_CAST_ONCE_OUTPUTS: 1 head × 10 classes is enough)
    bf16 = cpu_has_native_bf16()
    assert line["epoch_precision"] == ("bf16" if bf16 else "fp32")
    assert ("bare_fp32_ms" in line) == bf16
    assert line["per_epoch_ms"] > 0 and line["bare_ms"] > 0
    assert line["bare_over_ours"] == pytest.approx(line["bare_ms"] / line["per_epoch_ms"])
    assert f"{expected_heads} head(s) at {line['epoch_precision']}" in done.stdout
