#!/usr/bin/env bash
# The correctness checks beyond the test suite (issue: torture, model,
# fuzzer), each with the verdict it must reach:
#   1. srcu-torture, default configuration (callback delivery scenarios
#      included), release build: SUCCESS; then the stressors configuration
#      (signal storm, thread churn, fork): SUCCESS; then the default one
#      with membarrier(2) off (the readers' fence fallback): SUCCESS
#   2. srcu-torture under ThreadSanitizer, with random delays at labelled
#      points inside the library: SUCCESS and no TSan report
#   3. srcu-torture --busted and --busted=early-flip (its own broken grace
#      periods: one that does not wait, one that is one phase short):
#      FAILURE, caught by the reader pipe check
#   4. the spin model: no error; its busted variants: a counterexample
#   5. the libFuzzer target, if fuzz/run.sh exists: no failure
# The torture scenarios are named configs, torture/configs/NAME.conf
# (srcu-torture --config NAME); the durations given here override theirs.
#   scripts/correctness.sh [torture-seconds=30] [fuzz-seconds=60]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
seconds=${1:-30}
fuzz_seconds=${2:-60}

expect_verdict() {  # expect_verdict WANT LOG EXIT
  local want=$1 log=$2 status=$3 last
  last=$(tail -n 1 "$log")
  if [ "$last" != "End of test: $want" ]; then
    echo "correctness: expected 'End of test: $want', got '$last' (exit $status)"; exit 1
  fi
}

expect_pipe_errors() {  # expect_pipe_errors LOG: the reader pipe check caught it
  if ! grep -q '^Reader Pipe:.*!!!' "$1"; then
    echo "correctness: $1 failed, but not through the reader pipe check"; exit 1
  fi
}

for preset in release tsan; do
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$(nproc)" --target srcu-torture
done

echo "=== srcu-torture --config default, release, ${seconds} s"
status=0; ./build/release/torture/srcu-torture --config default --duration "$seconds" | tee /tmp/srcu-torture.log || status=$?
expect_verdict SUCCESS /tmp/srcu-torture.log $status
[ $status -eq 0 ] || { echo "correctness: SUCCESS but exit $status"; exit 1; }

echo "=== srcu-torture --config stressors, release, 15 s (signal storm, thread churn, fork)"
status=0; ./build/release/torture/srcu-torture --config stressors --duration 15 > /tmp/srcu-stressors.log 2>&1 || status=$?
tail -n 3 /tmp/srcu-stressors.log
expect_verdict SUCCESS /tmp/srcu-stressors.log $status
[ $status -eq 0 ] || { echo "correctness: stressors SUCCESS but exit $status"; exit 1; }

echo "=== srcu-torture --config default, release, no membarrier (readers fence), 15 s"
status=0
SRCU_NO_MEMBARRIER=1 ./build/release/torture/srcu-torture --config default --duration 15 \
  > /tmp/srcu-fallback.log 2>&1 || status=$?
tail -n 1 /tmp/srcu-fallback.log
expect_verdict SUCCESS /tmp/srcu-fallback.log $status

echo "=== srcu-torture --config tsan-faults, ThreadSanitizer, library fault injection, ${seconds} s"
status=0
TSAN_OPTIONS="halt_on_error=1 die_after_fork=0" \
  ./build/tsan/torture/srcu-torture --config tsan-faults --duration "$seconds" \
  > /tmp/srcu-torture-tsan.log 2>&1 || status=$?
tail -n 12 /tmp/srcu-torture-tsan.log
if grep -q "WARNING: ThreadSanitizer" /tmp/srcu-torture-tsan.log; then
  echo "correctness: ThreadSanitizer reported a race"; exit 1
fi
expect_verdict SUCCESS /tmp/srcu-torture-tsan.log $status

echo "=== srcu-torture --config busted (must fail)"
status=0; ./build/release/torture/srcu-torture --config busted > /tmp/srcu-busted.log 2>&1 || status=$?
tail -n 3 /tmp/srcu-busted.log
expect_verdict FAILURE /tmp/srcu-busted.log $status
[ $status -eq 1 ] || { echo "correctness: busted run exited $status, not 1"; exit 1; }
expect_pipe_errors /tmp/srcu-busted.log

echo "=== srcu-torture --config busted-early-flip (must fail)"
status=0
./build/release/torture/srcu-torture --config busted-early-flip > /tmp/srcu-busted-early-flip.log 2>&1 \
  || status=$?
tail -n 3 /tmp/srcu-busted-early-flip.log
expect_verdict FAILURE /tmp/srcu-busted-early-flip.log $status
[ $status -eq 1 ] || { echo "correctness: early-flip run exited $status, not 1"; exit 1; }
expect_pipe_errors /tmp/srcu-busted-early-flip.log

echo "=== spin model"
model/check.sh

if [ -x fuzz/run.sh ]; then
  echo "=== fuzzer, ${fuzz_seconds} s"
  fuzz/run.sh "$fuzz_seconds"
fi
echo "=== correctness checks: all verdicts as expected"
