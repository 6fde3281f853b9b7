#!/usr/bin/env bash
# The main job: builds the release tree and runs srcu-torture on its default
# configuration (about 30 s: 3 domains, one with readers that sleep for long
# stretches, every reader flavour, every update primitive), printing its
# report. Extra arguments go to srcu-torture (see srcu-torture --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target srcu-torture
./build/release/torture/srcu-torture --config default "$@"
