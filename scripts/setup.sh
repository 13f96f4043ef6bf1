#!/usr/bin/env bash
# Installs every system dependency of kafka-triggers from Debian packages (idempotent, non-interactive).
# Usage: scripts/setup.sh [--no-build]   (builds the release preset unless --no-build)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential g++ cmake ninja-build pkg-config git
  libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev libboost-test1.81-dev
  librdkafka-dev libssl-dev libfmt-dev libbenchmark-dev
  kcat python3-confluent-kafka clang-format gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all system packages present"
fi

if [ "${1:-}" != "--no-build" ]; then
  cmake --preset release
  cmake --build --preset release
fi
