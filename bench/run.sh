#!/usr/bin/env bash
# All of pbibatch's performance figures, as `key=value` lines (docs/performance.md has the
# table, the targets and the machine they were measured on).
#
#   bench/run.sh [RUNS]        # RUNS: repetitions of each validate measurement (default 7)
#
# Builds release once (the binary and the bench programs in benches/), then measures:
#   validate.*   `pbibatch validate` on generated 1k / 10k / 50k-step files: median wall time
#                over RUNS, peak RSS (GNU time -v), and time per 1,000 steps (linear growth);
#   run.*        `pbibatch run --simulate` of a 10,000-step DAG with instant refreshes
#                (profile `defaults: {duration: 0s}`), at --concurrency 8 and 256: wall time,
#                peak RSS, simulator requests and requests per second;
#   engine.*     the same DAG shape through the engine alone (no HTTP): scheduler overhead;
#   makespan.*   seeded random DAGs (40 and 400 steps, 0.2-1.5 s steps, concurrency 4 and 16)
#                in virtual time: makespan / lower bound, eager vs wave-by-wave;
#   rules.*      bench/makespan_rules.py: other ways to rank ready steps, on 500 / 100 DAGs;
#   polls.*      status reads and detection lag for 2 s, 30 s and 10 min refreshes (virtual
#                time), next to fixed 60 s and 5 s pollers;
#   sim.*        simulator throughput.
# Needs python3 and GNU time (/usr/bin/time). Run it on a quiet machine if you can: the load
# average is printed at the start and the end.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-7}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "machine.nproc=$(nproc)"
echo "machine.cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "machine.load_start=$(cut -d' ' -f1-3 /proc/loadavg)"

# One release build; the executables' paths come from cargo's own artifact messages.
cargo build --release --bins --benches --message-format=json-render-diagnostics 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    kind = m.get("target", {}).get("kind", [""])[0]
    # --benches also builds the lib and bin as libtest harnesses: skip those.
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and (kind == "bench" or not m["profile"]["test"]):
        print(m["target"]["kind"][0] + ":" + m["target"]["name"], m["executable"])
' > "$work/exes"
exe() { awk -v n="$1" '$1 == n { print $2 }' "$work/exes" | tail -n 1; }
bin="$(exe bin:pbibatch)"

# Peak RSS (KiB) from a GNU time -v log.
peak_kib() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }
now_ns() { date +%s%N; }

# --- validate: 1k / 10k / 50k steps ---------------------------------------------------------
for n in 1000 10000 50000; do
  file="$work/validate_$n.yaml"
  python3 bench/gen_job.py "$n" > "$file"
  "$bin" validate --format short "$file" > /dev/null   # warm the page cache; must pass
  times=()
  peak=0
  for _ in $(seq "$runs"); do
    start=$(now_ns)
    /usr/bin/time -v -o "$work/time" "$bin" validate --format short "$file" > /dev/null
    end=$(now_ns)
    times+=("$(( (end - start) / 1000 ))")
    kib=$(peak_kib "$work/time")
    (( kib > peak )) && peak=$kib
  done
  median_us=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "validate.$n.bytes=$(wc -c < "$file")"
  echo "validate.$n.median_ms=$(awk -v u="$median_us" 'BEGIN { printf "%.1f", u / 1000 }')"
  echo "validate.$n.ms_per_1k_steps=$(awk -v u="$median_us" -v n="$n" 'BEGIN { printf "%.2f", u / n }')"
  echo "validate.$n.peak_rss_kib=$peak"
done

# --- run --simulate: 10,000 steps, instant refreshes ----------------------------------------
python3 bench/gen_job.py 10000 --datasets > "$work/run_10000.yaml"
printf 'defaults:\n  duration: 0s\n' > "$work/instant.yaml"
for c in 8 256; do
  dir="$work/run_c$c"
  mkdir -p "$dir"
  start=$(now_ns)
  # -q: no per-step lines (10,000 of them would measure the terminal); RUST_LOG keeps the
  # simulator's counters line. The state store is on, as in a user's run.
  ( cd "$dir" && RUST_LOG=pbibatch::run=info /usr/bin/time -v -o "$dir/time" \
      "$bin" -q run "$work/run_10000.yaml" --simulate --sim-profile "$work/instant.yaml" \
      --concurrency "$c" --report "$dir/report.json" 2> "$dir/stderr" ) || {
    echo "run.c$c.exit=$?"; tail -n 5 "$dir/stderr" >&2; continue; }
  end=$(now_ns)
  requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$dir/stderr" | tail -n 1)
  wall_ms=$(( (end - start) / 1000000 ))
  echo "run.10000.c$c.wall_s=$(awk -v m="$wall_ms" 'BEGIN { printf "%.2f", m / 1000 }')"
  echo "run.10000.c$c.peak_rss_kib=$(peak_kib "$dir/time")"
  echo "run.10000.c$c.succeeded=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["succeeded"])' "$dir/report.json")"
  echo "run.10000.c$c.sim_requests=$requests"
  echo "run.10000.c$c.requests_per_s=$(awk -v r="$requests" -v m="$wall_ms" 'BEGIN { printf "%.0f", r * 1000 / m }')"
done

# --- engine alone: scheduler overhead ---------------------------------------------------------
engine="$(exe bench:engine_bench)"
for c in 8 256; do
  /usr/bin/time -v -o "$work/time" "$engine" overhead 10000 "$c"
  echo "engine.overhead.10000.c$c.peak_rss_kib=$(peak_kib "$work/time")"
done

# --- makespan vs lower bound, eager vs waves (virtual time) ---------------------------------
"$engine" makespan 40 4 20 2> /dev/null
"$engine" makespan 40 16 20 2> /dev/null
"$engine" makespan 400 4 10 2> /dev/null
"$engine" makespan 400 16 10 2> /dev/null
python3 bench/makespan_rules.py 40 4 500
python3 bench/makespan_rules.py 400 4 100

# --- polls per refresh and detection lag (virtual time) ---------------------------------------
"$(exe bench:polls)"

# --- simulator throughput -------------------------------------------------------------------
"$(exe bench:sim_rps)" 3 32

echo "machine.load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
