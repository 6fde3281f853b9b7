#!/usr/bin/env bash
# Builds and runs the whole test suite: unit, stress, fallback (no
# membarrier), misuse death tests and the install test, in the release build,
# under ThreadSanitizer, and under AddressSanitizer+UBSan. The release build
# also compiles and runs every snippet of docs/tutorial.md and builds the
# Doxygen reference (target srcu_doc), where any doxygen warning is an error.
#   scripts/test.sh                 # all three builds
#   scripts/test.sh release         # just one (presets: release debug tsan asan)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
presets=("$@")
((${#presets[@]})) || presets=(release tsan asan)
jobs=$(nproc)
for preset in "${presets[@]}"; do
  echo "=== ${preset}: configure, build, test"
  if [ "$preset" = release ]; then  # and the reference: a doxygen warning fails here
    cmake --preset "$preset" -DSRCU_BUILD_DOCS=ON >/dev/null
    cmake --build --preset "$preset" -j "$jobs" --target all srcu_doc
  else
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$jobs"
  fi
  ctest --preset "$preset" -j "$jobs" --timeout 300
done
echo "=== all test builds passed: ${presets[*]}"
