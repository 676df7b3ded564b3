#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 20000) on its seed corpus and prints
# one line per target: executions, seconds, executions per second, coverage, corpus size.
# A crash stops the script with libFuzzer's report and exit 1; the input is left in
# fuzz/artifacts/TARGET/. Run from anywhere; needs cargo-fuzz and the TypeScript build
# (for the seeds). Uses nightly when it is installed, else the stable toolchain with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags).
#   native/fuzz/run.sh [RUNS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(extract capture ofctl netns scenario datapath burst)
fi
toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
node fuzz/seeds.mjs >/dev/null
# A target without seeds (no captures found) still runs, from an empty corpus.
for t in "${targets[@]}"; do mkdir -p "fuzz/corpus/$t"; done
for t in "${targets[@]}"; do cargo "${toolchain[@]}" fuzz build -O -s none "$t"; done
# The scenario target's largest seeds take milliseconds each; 64 KiB keeps the rate up
# while still admitting the multi-node seeds.
for t in "${targets[@]}"; do
  log="fuzz/target/$t.log"
  start=$(date +%s.%N)
  if ! cargo "${toolchain[@]}" fuzz run -O -s none "$t" "fuzz/corpus/$t" -- \
    -runs="$runs" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $t failed; the input is in native/fuzz/artifacts/$t/" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  awk -v t="$t" -v r="$runs" -v s="$start" -v e="$end" -v c="${cov:-0}" -v n="${corp:-0}" \
    'BEGIN { d = e - s; printf "%-9s %12d runs %9.1f s %10.0f/s  cov %6d  corpus %6d\n", t, r, d, r / d, c, n }'
done
