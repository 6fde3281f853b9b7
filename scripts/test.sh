#!/usr/bin/env bash
# Builds and runs the whole test suite: unit, stress, fallback (no
# membarrier), misuse death tests and the install test, in the release build,
# under ThreadSanitizer, and under AddressSanitizer+UBSan. The release build
# also compiles and runs every snippet of docs/tutorial.md and builds the
# Doxygen reference (target srcu_doc), where any doxygen warning is an error.
# First, the lock rules: the library and srcu-torture built with clang's
# -Wthread-safety -Werror (preset thread-safety; no tests run there).
#   scripts/test.sh                 # the lock rules, then all three test builds
#   scripts/test.sh release         # just one (presets: release debug tsan asan thread-safety)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
presets=("$@")
((${#presets[@]})) || presets=(thread-safety release tsan asan)
jobs=$(nproc)
for preset in "${presets[@]}"; do
  echo "=== ${preset}: configure, build, test"
  if [ "$preset" = thread-safety ]; then  # compile-time checks only
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$jobs"
    continue
  elif [ "$preset" = release ]; then  # and the reference: a doxygen warning fails here
    cmake --preset "$preset" -DSRCU_BUILD_DOCS=ON >/dev/null
    cmake --build --preset "$preset" -j "$jobs" --target all srcu_doc
  else
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$jobs"
  fi
  ctest --preset "$preset" -j "$jobs" --timeout 300
done
echo "=== all test builds passed: ${presets[*]}"
