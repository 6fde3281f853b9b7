#!/usr/bin/env bash
# fuzz/run.sh [seconds=60] — build the libFuzzer target with clang (ASan +
# UBSan) in build/fuzz, fuzz srcu's API for the given time on a scratch copy
# of fuzz/corpus/, then check that each input in fuzz/misuse/ makes srcu
# abort with its "srcu: domain '...'" message. Exits nonzero on any failure;
# crash inputs are kept in build/fuzz/artifacts/ (replay one with
# SRCU_FUZZ_TRACE=1 build/fuzz/fuzz/srcu_api_fuzzer FILE).
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: $0 [seconds=60]" >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/fuzz
artifacts=$build/artifacts
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- Toolchain: clang with the libFuzzer runtime -------------------------------
install_packages() {
  local missing=()
  if command -v dpkg >/dev/null; then
    for p in clang libclang-rt-14-dev; do
      dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "run.sh: missing ${missing[*]}; as root: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "run.sh: installing ${missing[*]}:" \
    "${sudo[*]} apt-get update && ${sudo[*]} apt-get install -y ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y "${missing[@]}"
}

# Sets CC/CXX to the first clang that links a libFuzzer program.
pick_compiler() {
  local cxx
  printf '%s\n' 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) {' \
    '  return 0;' '}' >"$work/probe.cc"
  for cxx in clang++-14 clang++; do
    command -v "$cxx" >/dev/null || continue
    if "$cxx" -fsanitize=fuzzer,address,undefined "$work/probe.cc" -o "$work/probe" \
      2>/dev/null; then
      CXX=$cxx
      CC=${cxx/clang++/clang}
      return 0
    fi
  done
  return 1
}

install_packages
if ! pick_compiler; then
  echo "run.sh: no clang++ can link -fsanitize=fuzzer (need clang and libclang-rt-14-dev)" >&2
  exit 1
fi
export CC CXX
echo "run.sh: compiler $CXX"

# --- Build -----------------------------------------------------------------------
nice cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$CXX" -DSRCU_BUILD_FUZZERS=ON -DSRCU_SANITIZER= \
  -DSRCU_BUILD_TESTS=OFF -DSRCU_BUILD_BENCHMARKS=OFF -DSRCU_BUILD_EXAMPLES=OFF \
  -DSRCU_BUILD_TORTURE=OFF >/dev/null
nice cmake --build "$build" --target srcu_api_fuzzer --parallel 1
fuzzer=$build/fuzz/srcu_api_fuzzer

status=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ulimit -c 0  # the misuse checks abort on purpose

# --- Fuzz ------------------------------------------------------------------------
mkdir -p "$artifacts" "$work/corpus"
cp "$root"/fuzz/corpus/* "$work/corpus/"
echo "run.sh: fuzzing for ${seconds}s (full log: $build/fuzz.log)"
fuzz_rc=0
nice "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/corpus" 2>&1 |
  tee "$build/fuzz.log" | grep --line-buffered -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE) ' ||
  fuzz_rc=${PIPESTATUS[0]}
if [ "$fuzz_rc" -ne 0 ]; then
  echo "run.sh: FAIL: the fuzzer exited with $fuzz_rc; inputs in $artifacts/" >&2
  status=1
fi

# --- Misuse: srcu must report and abort ----------------------------------------------
for input in "$root"/fuzz/misuse/*; do
  name=$(basename "$input")
  rc=0
  # (the outer 2>/dev/null only hides bash's "Aborted" job notice)
  { SRCU_FUZZ_MISUSE=1 "$fuzzer" -handle_abrt=0 "$input" >"$work/misuse.log" 2>&1; } 2>/dev/null ||
    rc=$?
  message=$(grep -m1 "srcu: domain '" "$work/misuse.log" || true)
  if [ "$rc" -eq 134 ] && [ -n "$message" ]; then
    echo "run.sh: misuse $name: aborted as expected: $message"
  else
    echo "run.sh: FAIL: misuse $name: exit $rc (want 134, SIGABRT) and message '${message}'" >&2
    tail -n 20 "$work/misuse.log" >&2
    status=1
  fi
done

# --- Summary -------------------------------------------------------------------------
echo "run.sh: final libFuzzer stats (last status line: coverage, exec/s):"
grep -E '^#[0-9]+[[:space:]]' "$build/fuzz.log" | tail -n 1 || true
grep -E '^stat::|^SUMMARY' "$build/fuzz.log" || true
if [ "$status" -eq 0 ]; then echo "run.sh: PASS"; else echo "run.sh: FAIL"; fi
exit "$status"
