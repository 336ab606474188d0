#!/usr/bin/env bash
# Interleaved A/B of `mr2probe train` wall time (process start included) between two source trees, e.g. this
# checkout and a git worktree of an older commit, on one feature cache, 1 thread. Each round runs A then B; the
# same virtual environment (its packages) serves both trees, whose own `app`/`probe`/`feature_cache` are imported.
#
#   git worktree add /tmp/base <commit>
#   bash bench/cli_ab.sh /tmp/base . /work/cache/cifar10-300.h5 6 [extra mr2probe train arguments]
#
# Prints one line per run ("<tree> <seconds>"), then each tree's runs sorted and their median.
set -euo pipefail
a=$(cd "$1" && pwd); b=$(cd "$2" && pwd); cache=$3; rounds=${4:-6}; shift 4 || shift $#
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for tree in "$a" "$b"; do
    rm -rf "$out/run"  # each run writes a fresh folder (train refuses one that holds a run without --force)
    start=$(date +%s.%N)
    if ! (cd "$tree" && PYTHONPATH="$tree" python -c "from app.cli import run; run()" train --features "$cache" \
        --loss ce --out "$out/run" --no-progress "$@" >/dev/null 2>"$out/stderr"); then
      tail -20 "$out/stderr" >&2; exit 1
    fi
    echo "$tree $(echo "$(date +%s.%N) $start" | awk '{printf "%.3f", $1 - $2}')"
  done
done | tee "$out/times"
for tree in "$a" "$b"; do
  sort -n -k2 <(grep "^$tree " "$out/times") | awk -v t="$tree" '{v[NR]=$2} END {
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; s = ""; for (i = 1; i <= NR; i++) s = s sprintf(" %.2f", v[i]);
    printf "%s:%s; median %.2f s\n", t, s, m}'
done
