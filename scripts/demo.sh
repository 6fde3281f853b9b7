#!/usr/bin/env bash
# The main job: builds the release tree and runs the example program (readers
# and an updater replacing and reclaiming a shared configuration).
#   scripts/demo.sh [seconds=5] [readers=4]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target config_reload
./build/release/examples/config_reload "${1:-5}" "${2:-4}"
