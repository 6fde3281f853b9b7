#!/usr/bin/env bash
# Installs the Debian packages srcu's build, tests, benchmarks, API
# reference (doxygen) and USDT probes (systemtap-sdt-dev) use, when missing, plus any packages named as arguments
# (bench/run: the plotting ones). Needs root (or sudo) only when something is
# missing.
set -euo pipefail
packages=(cmake ninja-build g++ clang libgtest-dev libbenchmark-dev pkg-config
          liburcu-dev libck-dev spin doxygen systemtap-sdt-dev binutils "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
