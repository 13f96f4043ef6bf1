#!/usr/bin/env bash
# Builds and runs the unit and integration suites: scripts/test.sh [dev|release|asan|tsan] [ctest
# arguments...] (default dev; e.g. `-L unit` for the suites that need no Kafka). Integration tests
# use the embedded cluster, or real brokers from $KT_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-dev}"
shift || true
cmake --preset "$preset" > /dev/null
cmake --build --preset "$preset"
ctest --preset "$preset" "$@"
