#!/usr/bin/env bash
# model/check.sh -- exhaustive spin runs of model/srcu.pml.
#
# Runs the model as implemented (also with readers that may take either index,
# and with two readers sharing a counter block), expecting no errors, and each
# deliberately broken variant, expecting spin to find a violation of the
# grace-period assertion.  Prints one verdict line per model
# and exits nonzero if any verdict is unexpected.  Works from any directory;
# pan is built in a temporary directory that is removed afterwards.
#
# Usage: model/check.sh [--keep] [-DNAME=VALUE ...]
#   --keep        keep the temporary directory (pan sources, outputs, trails)
#   -DNR=3 ...    extra defines passed to every spin run (bounds: NR readers,
#                 NCS critical sections per reader, NGP grace periods)
#
# Needs spin (Debian/Ubuntu: apt-get install spin) and gcc.  One pan at a
# time, single-threaded; about 10 s and under 400 MB at the default bounds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
model="$here/srcu.pml"

keep=0
extra=()
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -D*) extra+=("$arg") ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if ! command -v spin >/dev/null 2>&1; then
  echo "check.sh: spin is not installed. Install it with: sudo apt-get install spin" >&2
  exit 1
fi
cc="${CC:-gcc}"
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "check.sh: no C compiler '$cc' to build pan. Install one with: sudo apt-get install gcc" >&2
  exit 1
fi
[[ -r "$model" ]] || { echo "check.sh: $model not found" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/srcu-model.XXXXXX")"
if [[ $keep -eq 1 ]]; then
  echo "check.sh: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# name | spin defines | expectation: pass (errors: 0, complete search) or
# fail (errors >= 1, and the violated assertion is the grace-period one).
variants=(
  "correct||pass"
  "any-index|-DANY_INDEX|pass"
  "shared-slots|-DNSLOT=2|pass"
  "busted-no-scan1|-DBUSTED_NO_SCAN1|fail"
  "busted-one-index|-DBUSTED_ONE_INDEX|fail"
  "busted-sum-order|-DBUSTED_SUM_ORDER|fail"
  "begin-at-fetch|-DBEGIN_AT_FETCH|fail"
)
gp_assert='began[s]<gp_starts'

echo "spin model: $model  ($(spin -V | head -n 1))${extra[*]:+  extra: ${extra[*]}}"
t_all="$(now)"
bad=0
for v in "${variants[@]}"; do
  IFS='|' read -r name defs expect <<<"$v"
  dir="$tmp/$name"
  mkdir -p "$dir"
  cp "$model" "$dir/srcu.pml"
  t0="$(now)"
  verdict=""
  # shellcheck disable=SC2086
  # spin -a can report an error and still exit 0: also check its log and pan.c.
  if ! (cd "$dir" && spin $defs "${extra[@]}" -a srcu.pml) >"$dir/spin.log" 2>&1 ||
     grep -q 'Error' "$dir/spin.log" || [[ ! -s "$dir/pan.c" ]]; then
    verdict="UNEXPECTED  $name: spin -a failed: $(tail -n 1 "$dir/spin.log")"
  elif ! (cd "$dir" && "$cc" -w -O2 -DSAFETY -DMEMLIM=2048 -o pan pan.c) >"$dir/cc.log" 2>&1; then
    verdict="UNEXPECTED  $name: building pan failed: $(tail -n 1 "$dir/cc.log")"
  else
    (cd "$dir" && ./pan -m100000) >"$dir/pan.out" 2>&1 || true
    out="$dir/pan.out"
    errors="$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | head -n 1)"
    stored="$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' "$out" | head -n 1)"
    depth="$(sed -n 's/.*depth reached \([0-9][0-9]*\).*/\1/p' "$out" | head -n 1)"
    secs="$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' "$out" | head -n 1)"
    mem="$(sed -n 's/^ *\([0-9.]*\)[[:space:]]*total actual memory usage.*/\1/p' "$out" | head -n 1)"
    violated="$(sed -n 's/^pan:1: \(.*\)$/\1/p' "$out" | head -n 1)"
    incomplete=""
    grep -q 'max search depth too small' "$out" && incomplete="search depth too small"
    grep -qiE 'out of memory|MEMLIM' "$out" && incomplete="memory limit reached"
    stats="states stored: ${stored:-?}, depth: ${depth:-?}, pan: ${secs:-?} s, ${mem:-?} MB"
    if [[ -z "$errors" ]]; then
      verdict="UNEXPECTED  $name: no result from pan: $(tail -n 1 "$out")"
    elif [[ "$expect" == pass ]]; then
      if [[ "$errors" == 0 && -z "$incomplete" ]]; then
        verdict="OK          $name: errors: 0 (expected 0); $stats"
      else
        verdict="UNEXPECTED  $name: errors: $errors (expected 0)${incomplete:+, $incomplete}${violated:+, $violated}; $stats"
      fi
    else
      if [[ "$errors" -ge 1 && "$violated" == *"$gp_assert"* ]]; then
        verdict="OK          $name: errors: $errors (expected >= 1): $violated; $stats"
      else
        verdict="UNEXPECTED  $name: errors: $errors (expected >= 1 on the grace-period assertion)${violated:+: $violated}${incomplete:+, $incomplete}; $stats"
      fi
    fi
  fi
  [[ "$verdict" == OK* ]] || bad=1
  echo "$verdict [$(since "$t0") s]"
done

if [[ $bad -eq 0 ]]; then
  echo "check.sh: all verdicts as expected (total $(since "$t_all") s)"
else
  echo "check.sh: UNEXPECTED verdict(s) (total $(since "$t_all") s)" >&2
  [[ $keep -eq 1 ]] || echo "check.sh: rerun with --keep to inspect pan output and trails" >&2
fi
exit "$bad"
