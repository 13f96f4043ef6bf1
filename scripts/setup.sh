#!/usr/bin/env bash
# Installs every dependency of kafka-triggers from Debian packages (idempotent, non-interactive),
# on Debian 12 (bookworm) or 13 (trixie) alike, then builds the release preset.
# Usage: scripts/setup.sh [--no-build] [--fuzzing]   (--fuzzing: also clang and libFuzzer, for
# scripts/fuzz.sh, which asks for them itself)
#
# librdkafka: the system's when it is at least $KT_LIBRDKAFKA_MIN; otherwise Debian's own source
# package of it (checksums verified by apt) is built once into $KT_CACHE/librdkafka-<version>, and
# $KT_CACHE/librdkafka points at it; CMake looks there first (lib/cmake/librdkafka.cmake).
set -euo pipefail
cd "$(dirname "$0")/.."
build=1 fuzzing=
for arg in "$@"; do
  case "$arg" in
    --no-build) build= ;;
    --fuzzing) fuzzing=1 ;;
    *) echo "usage: scripts/setup.sh [--no-build] [--fuzzing]" >&2; exit 2 ;;
  esac
done

# The minimum is CMake's (cmake/librdkafka.cmake), so the two cannot disagree.
min_rdkafka="${KT_LIBRDKAFKA_MIN:-$(sed -n 's/^set(KT_LIBRDKAFKA_MIN \([0-9.]*\))$/\1/p' cmake/librdkafka.cmake)}"
cache="${KT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-triggers}"

. /etc/os-release
codename="${VERSION_CODENAME:-unknown}"

packages=(
  build-essential g++ cmake ninja-build pkg-config git ca-certificates
  libssl-dev libfmt-dev libbenchmark-dev
  kcat python3-confluent-kafka clang-format gnuplot-nox valgrind
  chromium python3-websocket   # the dashboard's browser test (headless, over DevTools)
)
case "$codename" in
  bookworm) packages+=(libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev
                       libboost-test1.81-dev) ;;
  *)        packages+=(libboost-dev libboost-json-dev libboost-program-options-dev libboost-test-dev) ;;
esac

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
apt_get() { "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "$@"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_missing() {
  local missing=() p
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  echo "setup: installing ${missing[*]}"
  if [ -z "${apt_updated:-}" ]; then apt_get update; apt_updated=1; fi
  apt_get install -y --no-install-recommends "${missing[@]}"
}

# The version apt would install of a package, empty when it has none.
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }'; }

# A fresh machine (a debootstrap root) has no package lists yet.
if ! ls /var/lib/apt/lists/*_Packages* > /dev/null 2>&1; then apt_get update; apt_updated=1; fi

system_rdkafka=$(candidate librdkafka-dev)
if [ -n "$system_rdkafka" ] && dpkg --compare-versions "$system_rdkafka" ge "$min_rdkafka"; then
  packages+=(librdkafka-dev)
  use_system_rdkafka=1
else
  # What upstream's build of librdkafka needs (system zlib, OpenSSL, SASL, zstd, lz4).
  packages+=(dpkg-dev xz-utils zlib1g-dev libsasl2-dev libzstd-dev liblz4-dev)
fi
# clang and its libFuzzer runtime, for scripts/fuzz.sh (the runtime's package carries clang's
# major version: 14 on bookworm, 19 on trixie).
if [ -n "$fuzzing" ]; then
  clang_major=$(candidate clang | sed -n 's/^[0-9]*:\{0,1\}\([0-9]*\)\..*/\1/p')
  [ -n "$clang_major" ] || { echo "setup: apt has no clang" >&2; exit 1; }
  packages+=(clang "libclang-rt-$clang_major-dev")
fi
install_missing "${packages[@]}"

build_rdkafka() {
  local mirror work aptdir version prefix
  mirror=$(scripts/debian-mirror.sh)
  if [ -z "$mirror" ]; then
    echo "setup: no Debian archive for '$codename' in this machine's apt sources;" \
         "cannot fetch librdkafka's source package" >&2
    exit 1
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  # A private apt state: nothing under /etc/apt or /var/lib/apt is touched.
  aptdir="$work/apt"
  mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/parts"
  for suite in testing unstable; do
    echo "deb-src $mirror $suite main"
  done > "$aptdir/sources.list"
  local opts=(-o Dir::Etc::SourceList="$aptdir/sources.list" -o Dir::Etc::SourceParts="$aptdir/parts"
              -o Dir::State::Lists="$aptdir/lists" -o Dir::Cache="$aptdir/cache"
              -o APT::Sandbox::User=root)
  echo "setup: librdkafka $min_rdkafka not packaged for $codename; reading source packages from $mirror"
  apt-get -q "${opts[@]}" update > "$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
  # 2.14.2 when the archive has it, otherwise the newest 2.x above it.
  version=$(apt-cache "${opts[@]}" showsrc librdkafka | awk '/^Version:/ { print $2 }' |
            while read -r v; do
              upstream=${v%-*}
              dpkg --compare-versions "$upstream" ge "$min_rdkafka" && [ "${upstream%%.*}" = 2 ] && echo "$v"
            done | sort -V | awk -v want="$min_rdkafka" '
              { all[NR] = $0; if (index($0, want "-") == 1) exact = $0 }
              END { if (exact != "") print exact; else if (NR) print all[NR] }')
  if [ -z "$version" ]; then
    echo "setup: the archive has no librdkafka 2.x >= $min_rdkafka source package" >&2
    exit 1
  fi
  [ "${version%-*}" = "$min_rdkafka" ] ||
    echo "setup: librdkafka $min_rdkafka is no longer in the archive; building ${version%-*} instead"
  prefix="$cache/librdkafka-${version%-*}"
  if [ -f "$prefix/.complete" ]; then
    ln -sfn "$(basename "$prefix")" "$cache/librdkafka"
    return
  fi
  echo "setup: building librdkafka $version (Debian source package) into $prefix"
  local started=$SECONDS
  # Debian's patches only switch the bundled cJSON/nanopb/OpenTelemetry code to Debian's packages
  # of them (--enable-*-ext); upstream's build below keeps the bundled copies, so they stay off.
  (cd "$work" && apt-get -q "${opts[@]}" source --download-only "librdkafka=$version" &&
     dpkg-source --skip-patches -x ./*.dsc) > "$work/source.log" 2>&1 ||
    { cat "$work/source.log" >&2; exit 1; }
  local src
  src=$(find "$work" -maxdepth 1 -type d -name 'librdkafka-*' | head -1)
  rm -rf "$prefix"
  (
    cd "$src"
    ./configure --prefix="$prefix" --disable-curl --disable-gssapi \
      > "$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; exit 1; }
    make -j"$(nproc)" -C src > "$work/make.log" 2>&1 || { tail -50 "$work/make.log" >&2; exit 1; }
    make -C src install > "$work/install.log" 2>&1 || { tail -50 "$work/install.log" >&2; exit 1; }
  )
  rm -f "$prefix"/lib/*.a "$prefix"/lib/pkgconfig/rdkafka-static.pc
  touch "$prefix/.complete"
  ln -sfn "$(basename "$prefix")" "$cache/librdkafka"
  echo "setup: librdkafka ${version%-*} installed in $prefix ($((SECONDS - started)) s)"
}

mkdir -p "$cache"
if [ -n "${use_system_rdkafka:-}" ]; then
  rm -f "$cache/librdkafka"   # a cached build would shadow the system's
  echo "setup: using the system's librdkafka $system_rdkafka"
elif [ -f "$cache/librdkafka/.complete" ] &&
     dpkg --compare-versions "$(basename "$(readlink "$cache/librdkafka")" | sed 's/^librdkafka-//')" ge "$min_rdkafka"; then
  echo "setup: librdkafka $(readlink "$cache/librdkafka" | sed 's/^librdkafka-//') from $cache"
else
  build_rdkafka
fi

if [ -n "$build" ]; then
  cmake --preset release
  cmake --build --preset release
fi
