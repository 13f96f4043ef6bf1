#!/usr/bin/env bash
# Runs README's two commands (quick start, then tests) on a fresh Debian machine: a minimal
# debootstrap root of the given release with a copy of this working tree, so a missing install
# step or a compiler/Boost difference shows here and not on a newcomer's machine.
#   scripts/fresh-machine.sh bookworm|trixie [--quick]
# --quick runs the test command on the unit suites and one integration suite only, on the release
# build the quick start just made (CI: a dev build as well would double the stage's time; dev's
# warnings-as-errors build runs in CI's own stages).
# Needs root. The base root is cached ($KT_CACHE/roots, refreshed weekly); each run works on a
# fresh copy under build/fresh-<release>, and every mount is undone on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

release="${1:-}"
case "$release" in bookworm|trixie) ;; *) echo "usage: $0 bookworm|trixie [--quick]" >&2; exit 2 ;; esac
quick="${2:-}"
[ "$(id -u)" -eq 0 ] || { echo "fresh-machine: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }

cache="${KT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-triggers}"
base_tar="$cache/roots/$release-minbase.tar"
root="$PWD/build/fresh-$release"
repo_in_root=/work/kafka-triggers

mirror=$(scripts/debian-mirror.sh)
[ -n "$mirror" ] || { echo "fresh-machine: no Debian archive in this machine's apt sources" >&2; exit 1; }

if ! command -v debootstrap > /dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

mounted=()
cleanup() {
  # Processes the commands left running inside (a demo, a cluster) would keep the mounts busy.
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$root" ] && kill -9 "$pid" 2>/dev/null || true
  done
  local i
  for (( i=${#mounted[@]}-1; i>=0; i-- )); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
trap "exit 130" INT TERM

started=$(date +%s)
if [ ! -f "$base_tar" ] || [ -n "$(find "$base_tar" -mtime +7)" ]; then
  echo "fresh-machine: debootstrap $release (minbase) from $mirror"
  rm -rf "$root"
  mkdir -p "$root" "$(dirname "$base_tar")"
  debootstrap --variant=minbase "$release" "$root" "$mirror" > "$cache/roots/$release.log" 2>&1 ||
    { tail -30 "$cache/roots/$release.log" >&2; exit 1; }
  tar -C "$root" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
else
  rm -rf "$root"
  mkdir -p "$root"
  tar -C "$root" -xf "$base_tar"
fi
echo "fresh-machine: $release root ready in $(( $(date +%s) - started )) s"

# The working tree as git sees it (tracked and new files, nothing ignored such as build/).
mkdir -p "$root$repo_in_root"
git ls-files -z --cached --others --exclude-standard |
  xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
  tar --null -T - -cf - | tar -C "$root$repo_in_root" -xf -
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The machine's own apt fetch policy comes along (a mirror serving a snapshot may need
# Acquire::Check-Valid-Until "false"): a fresh machine of this kind has it too.
for conf in $(grep -l '^Acquire::Check-' /etc/apt/apt.conf.d/* 2>/dev/null); do
  cp "$conf" "$root/etc/apt/apt.conf.d/"
done

for m in proc sys dev dev/pts; do
  case "$m" in
    proc) mount -t proc proc "$root/proc" ;;
    sys) mount -t sysfs sys "$root/sys" ;;
    dev) mount --bind /dev "$root/dev" ;;
    dev/pts) mount -t devpts devpts "$root/dev/pts" ;;
  esac
  mounted+=("$root/$m")
done

# README's two commands, taken from its quick start so the two cannot drift apart.
mapfile -t commands < <(awk '/^## Quick start/ { q = 1 } q && /^```/ { if (b) exit; b = 1; next } b' README.md)
[ ${#commands[@]} -eq 2 ] || { echo "fresh-machine: README's quick start must hold two commands" >&2; exit 1; }
setup_command="${commands[0]}"
test_command="${commands[1]}"
if [ "$quick" = "--quick" ]; then
  # The unit suites and one integration suite (kt-host end to end on the embedded cluster).
  test_command="$test_command release -L unit; $test_command release -R '^kt_host_cli\$'"
fi

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb /bin/bash -c "cd $repo_in_root && $1"
}
for step in "$setup_command" "$test_command"; do
  echo "fresh-machine [$release]: $step"
  step_started=$(date +%s)
  in_root "set -e; $step"
  echo "fresh-machine [$release]: done in $(( $(date +%s) - step_started )) s"
done
echo "fresh-machine: README's commands passed on a fresh Debian $release in $(( $(date +%s) - started )) s"
