#!/usr/bin/env bash
# Runs every TypeScript fuzz target (test/fuzz/targets.mjs) for RUNS executions (default 2000)
# on its corpus and prints one line per target: executions, seconds, executions per second,
# coverage (edges of dist/src seen taken) and corpus size. A crash, an input running longer
# than 10 s or the fuzzer running out of memory stops the script with the fuzzer's report and
# exit 1; the input is left in test/fuzz/artifacts/TARGET/. Writes the seeds first
# (test/fuzz/seeds.mjs). Needs the TypeScript build (`npm run build`); run from anywhere.
#   test/fuzz/run.sh [RUNS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-2000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(topology scenario-file)
fi
node test/fuzz/seeds.mjs >/dev/null
mkdir -p test/fuzz/logs
for t in "${targets[@]}"; do
  log="test/fuzz/logs/$t.log"
  start=$(date +%s.%N)
  if ! node test/fuzz/fuzz.mjs "$t" -runs="$runs" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $t failed; the input is in test/fuzz/artifacts/$t/" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  done_runs=$(grep -oE 'number_of_executed_units: [0-9]+' "$log" | cut -d' ' -f2)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  awk -v t="$t" -v r="${done_runs:-0}" -v s="$start" -v e="$end" -v c="${cov:-0}" -v n="${corp:-0}" \
    'BEGIN { d = e - s; printf "%-13s %12d runs %9.1f s %10.0f/s  cov %6d  corpus %6d\n", t, r, d, r / d, c, n }'
done
