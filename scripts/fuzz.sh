#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, the fuzz preset) and runs each for SECONDS (default 60):
# the completion map decoder and the configuration file parser. Exits non-zero on the first
# crash, hang (> 5 s for one input) or property violation, naming the input it wrote.
# Usage: scripts/fuzz.sh [SECONDS] ; corpora grow in build/fuzz/corpus/<target> across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
scripts/setup.sh --no-build --fuzzing | grep -v '^setup: librdkafka' || true  # clang, libFuzzer
cmake --preset fuzz > /dev/null
cmake --build --preset fuzz
out=build/fuzz/corpus
mkdir -p "$out/completion_map" "$out/config_file" build/fuzz/artifacts
cp apps/kt-host/example-config.json "$out/config_file/example-config.json"
# The schema's keys and names as tokens, so the parser's deeper paths are reached quickly.
dict=build/fuzz/config_file.dict
grep -o '"[a-z_.]*"' lib/src/config/schema.hpp | sort -u | sed 's/"\(.*\)"/"\\"\1\\""/' > "$dict"
printf '%s\n' '"${SECRET}"' '"${BOOTSTRAP}"' '"{"' '"}"' '"["' '"]"' '":"' '","' >> "$dict"

run() {
  local name="$1"; shift
  local log="build/fuzz/$name.log"
  echo "fuzz: $name for $seconds s"
  if ! "build/fuzz/fuzz/${name}_fuzz" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/ "$@" "$out/$name" > "$log" 2>&1; then
    grep -E "property violated|ERROR|SUMMARY|Test unit written|encoded|damaged|decoded|again" "$log" >&2 || tail -30 "$log" >&2
    echo "fuzz: $name FAILED (log: $log)" >&2
    exit 1
  fi
  echo "fuzz: $name ok: $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") executions," \
       "corpus $(ls "$out/$name" | wc -l) inputs"
}
run completion_map
run config_file -dict="$dict"
