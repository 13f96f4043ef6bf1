#!/usr/bin/env bash
# kafka-triggers as another project's dependency: scripts/downstream-check.sh [build-dir] (default
# build/dev, built). Installs it to a temporary prefix, builds examples/downstream against it
# (find_package) and runs it once, links a one-file program with pkg-config's flags, and configures
# one-file projects that take the source tree in through add_subdirectory and FetchContent (without
# building the library again), checking that our warning flags stay ours.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$repo/build/dev}" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
step() { echo "downstream-check: $*"; }
fail() { echo "downstream-check: $*" >&2; exit 1; }
quietly() { "$@" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }; }

cmake --install "$build" --prefix "$tmp/prefix" > /dev/null
step "installed $build to a temporary prefix"

started=$(date +%s%N)
quietly cmake -S "$repo/examples/downstream" -B "$tmp/downstream" -G Ninja \
    -DCMAKE_PREFIX_PATH="$tmp/prefix"
quietly cmake --build "$tmp/downstream" -j2
step "examples/downstream configured and built in $(( ($(date +%s%N) - started) / 1000000 )) ms"
"$tmp/downstream/downstream" --exit-after-messages 2000 2> "$tmp/log" || { cat "$tmp/log"; exit 1; }

cat > "$tmp/consumer.cpp" <<'CPP'
#include <iostream>
#include <kt/http.hpp>
#include <kt/version.hpp>
int main() { std::cout << kt::version() << " on librdkafka " << kt::librdkafka_version() << '\n'; }
CPP
pc_dir="$(dirname "$(find "$tmp/prefix" -name kafka-triggers.pc)")"
read -ra pc_flags <<< "$(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs kafka-triggers)"
"${CXX:-c++}" -std=c++20 "$tmp/consumer.cpp" "${pc_flags[@]}" -o "$tmp/pc-consumer"
step "pkg-config: $("$tmp/pc-consumer")"

# The consumer's own compile command must not carry our warnings (kt_build_flags is private).
configure_consumer() {  # <name> <how the project takes kafka-triggers in>
    mkdir -p "$tmp/$1"
    cp "$tmp/consumer.cpp" "$tmp/$1/"
    cat > "$tmp/$1/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(consumer LANGUAGES CXX)
$2
add_executable(consumer consumer.cpp)
target_link_libraries(consumer PRIVATE kt::kt kt::http)
CMAKE
    quietly cmake -S "$tmp/$1" -B "$tmp/$1/build" -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
    command="$(grep -F -- "-c $tmp/$1/consumer.cpp" "$tmp/$1/build/compile_commands.json")" ||
        fail "$1: no compile command for consumer.cpp"
    [[ "$command" != *-Wshadow* ]] || fail "$1: the consumer inherited kafka-triggers' warning flags"
    grep -q '^KT_BUILD_TESTS:BOOL=OFF' "$tmp/$1/build/CMakeCache.txt" &&
        grep -q '^KT_BUILD_APPS:BOOL=OFF' "$tmp/$1/build/CMakeCache.txt" ||
        fail "$1: our tests or apps are on in a parent project"
    step "$1: configured (kt::kt, kt::http; no tests, apps or warning flags of ours)"
}
configure_consumer add_subdirectory "add_subdirectory($repo kafka-triggers)"
configure_consumer FetchContent "include(FetchContent)
FetchContent_Declare(kafka-triggers SOURCE_DIR $repo)
FetchContent_MakeAvailable(kafka-triggers)"
