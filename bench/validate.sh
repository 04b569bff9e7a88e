#!/usr/bin/env bash
# Median wall time and peak RSS of `pbibatch validate` on generated 1,000- and 10,000-step
# job files (release build). Target: 10,000 steps in under 250 ms.
#
#   bench/validate.sh [RUNS]        # default 11 runs per size
#
# Needs python3 and GNU time (/usr/bin/time); builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-11}"
cargo build --release --quiet
target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/release/pbibatch"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for n in 1000 10000; do
  file="$work/bench_$n.yaml"
  python3 bench/gen_job.py "$n" > "$file"
  "$bin" validate --format short "$file" > /dev/null   # warm the page cache; must pass
  times=()
  peak=0
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$work/t" "$bin" validate --format short "$file" > /dev/null
    end=$(date +%s%N)
    kb=$(tail -n 1 "$work/t")
    times+=("$(( (end - start) / 1000000 ))")
    (( kb > peak )) && peak=$kb
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  size=$(wc -c < "$file")
  printf '%6d steps (%s bytes): median %s ms over %s runs, peak RSS %s KiB\n' \
    "$n" "$size" "$median" "$runs" "$peak"
done
