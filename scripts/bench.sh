#!/usr/bin/env bash
# Builds the release preset and runs the standard benchmark set (kt-bench, every scenario, and the
# Google micro-benchmarks); writes perf/results/<date>-<host>.json with the svg plot next to it.
# Usage: scripts/bench.sh [kt-bench options, e.g. --quick or --bootstrap HOST:PORT]
set -euo pipefail
cd "$(dirname "$0")/.."

cmake --preset release
cmake --build --preset release

results=perf/results
name="$(date -u +%Y-%m-%d)-$(hostname -s)"
mkdir -p "$results"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for bench in channel dispatch offset_tracker; do
  echo "== ${bench}_perf (median of 3 repetitions)"
  "build/release/perf/${bench}_perf" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out="$work/$bench.json" --benchmark_out_format=json \
    | grep -E '_median|^Benchmark|^-'
done

echo "== kt-bench $*"
build/release/apps/kt-bench/kt-bench --json "$work/kt-bench.json" --plot "$results/$name.svg" "$@"

/usr/bin/python3 - "$work" "$results/$name.json" <<'EOF'
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
with open(os.path.join(work, "kt-bench.json")) as f:
    merged = {"kt_bench": json.load(f), "micro": {}}
for bench in ("channel", "dispatch", "offset_tracker"):
    with open(os.path.join(work, f"{bench}.json")) as f:
        merged["micro"][f"{bench}_perf"] = json.load(f)
with open(out, "w") as f:
    json.dump(merged, f, indent=1)
print(f"results: {out}")
EOF
