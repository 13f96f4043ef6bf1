#!/usr/bin/env bash
# Prints the Debian archive URI this machine's apt already uses: the one serving
# "<this release>/main" in `apt-cache policy` (one-line and deb822 sources alike). Used by
# setup.sh and fresh-machine.sh, so no package host is ever written into the repo.
set -euo pipefail
. /etc/os-release
apt-cache policy | awk -v s="${VERSION_CODENAME:-unknown}/main" '$3 == s && $2 ~ /^[a-z]+:\/\// { print $2; exit }'
