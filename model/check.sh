#!/usr/bin/env bash
# model/check.sh -- exhaustive spin runs of the three models in model/:
#   srcu.pml    readers and scans (the grace period's safety)
#   gp_seq.pml  the grace-period sequence, gp_seq_needed and the driver
#               hand-off between wait_for() callers, start_poll() and the
#               engine (safety, and liveness: every requested cookie is done)
#   heavy_barrier.pml  one membarrier() shared by the scans that need one at
#               the same moment (safety: each scan's barrier began after its
#               first pass; no lost wake-up)
#
# Runs each model as implemented (and srcu.pml also with readers that may take
# either index, and with two readers sharing a counter block), expecting no
# errors, and each deliberately broken variant, expecting spin to find the
# violation named for it (an assertion, an invalid end state, or a cycle).
# Prints one verdict line per run and exits nonzero if any verdict is
# unexpected.  Works from any directory; pan is built in a temporary
# directory that is removed afterwards.
#
# Usage: model/check.sh [--keep] [--model srcu|gp_seq|heavy_barrier] [-DNAME=VALUE ...]
#   --keep        keep the temporary directory (pan sources, outputs, trails)
#   --model M     run only the variants of M.pml
#   -DNR=3 ...    extra defines passed to every spin run (bounds; srcu.pml: NR
#                 readers, NCS critical sections each, NGP grace periods;
#                 gp_seq.pml: NW waiters, NCALL calls each, NP pollers, NPOLL
#                 start_polls each, NBUSY busy scans; heavy_barrier.pml: NS
#                 scanning threads, NSCAN scans each)
#
# Needs spin (Debian/Ubuntu: apt-get install spin) and gcc.  One pan at a
# time, single-threaded; about a minute (most of it building pan) and under
# 400 MB at the default bounds.  A define given here for a bound that a
# variant also sets (e.g. -DNPOLL=3) overrides the variant's value.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

keep=0
only=""
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) keep=1 ;;
    --model) shift; only="${1:-}" ;;
    --model=*) only="${1#--model=}" ;;
    -D*) extra+=("$1") ;;
    -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$only" in
  ""|srcu|gp_seq|heavy_barrier) ;;
  *) echo "check.sh: --model takes srcu, gp_seq or heavy_barrier, not '$only'" >&2; exit 2 ;;
esac

if ! command -v spin >/dev/null 2>&1; then
  echo "check.sh: spin is not installed. Install it with: sudo apt-get install spin" >&2
  exit 1
fi
cc="${CC:-gcc}"
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "check.sh: no C compiler '$cc' to build pan. Install one with: sudo apt-get install gcc" >&2
  exit 1
fi
for m in srcu gp_seq heavy_barrier; do
  [[ -r "$here/$m.pml" ]] || { echo "check.sh: $here/$m.pml not found" >&2; exit 1; }
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/srcu-model.XXXXXX")"
if [[ $keep -eq 1 ]]; then
  echo "check.sh: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# model | name | spin defines | search | expectation | what the violation
# must mention.  search: "safety" (pan built with -DSAFETY: assertions and
# invalid end states) or "cycles" (built with -DNP, run with -l: with no
# progress labels in the model, any cycle at all is reported).  expectation:
# pass (errors: 0, complete search) or fail (errors >= 1, and pan's first
# error line contains the given text).
gp_assert='began[s]<gp_starts'
variants=(
  "srcu|correct||safety|pass|"
  "srcu|any-index|-DANY_INDEX|safety|pass|"
  "srcu|shared-slots|-DNSLOT=2|safety|pass|"
  "srcu|busted-no-scan1|-DBUSTED_NO_SCAN1|safety|fail|$gp_assert"
  "srcu|busted-one-index|-DBUSTED_ONE_INDEX|safety|fail|$gp_assert"
  "srcu|busted-sum-order|-DBUSTED_SUM_ORDER|safety|fail|$gp_assert"
  "srcu|busted-fast-active-only|-DBUSTED_FAST_ACTIVE_ONLY|safety|fail|$gp_assert"
  "srcu|begin-at-fetch|-DBEGIN_AT_FETCH|safety|fail|$gp_assert"
  "srcu|rseq-flip|-DRSEQ_FLIP|safety|pass|"
  "srcu|rseq-flip-shared-slots|-DRSEQ_FLIP -DNSLOT=2|safety|pass|"
  "srcu|busted-rseq-no-restart|-DRSEQ_FLIP -DBUSTED_NO_RESTART|safety|fail|$gp_assert"
  "gp_seq|correct||safety|pass|"
  "gp_seq|correct-polls|-DNPOLL=2 -DNBUSY=1|safety|pass|"
  "gp_seq|correct-calls|-DNW=1 -DNCALL=3 -DNPOLL=2|safety|pass|"
  "gp_seq|correct-cycles||cycles|pass|"
  "gp_seq|busted-no-handback|-DBUSTED_NO_HANDBACK|safety|fail|invalid end state"
  "gp_seq|busted-handback-if-no-waiters|-DBUSTED_HANDBACK_IF_NO_WAITERS|safety|fail|invalid end state"
  "gp_seq|busted-handback-before-release|-DBUSTED_HANDBACK_BEFORE_RELEASE|safety|fail|invalid end state"
  "gp_seq|busted-no-recheck|-DBUSTED_NO_RECHECK|safety|fail|invalid end state"
  "gp_seq|busted-no-release-wake|-DBUSTED_NO_RELEASE_WAKE|safety|fail|invalid end state"
  "gp_seq|busted-end-wakes-one|-DBUSTED_END_WAKES_ONE|safety|fail|invalid end state"
  "gp_seq|correct-three-waiters|-DNW=3 -DNP=0|safety|pass|"
  "gp_seq|busted-ended-wakes-one|-DBUSTED_ENDED_WAKES_ONE -DNW=3 -DNP=0|safety|fail|invalid end state"
  "gp_seq|busted-kick-before-request|-DBUSTED_KICK_BEFORE_REQUEST|safety|fail|invalid end state"
  "gp_seq|busted-snap|-DBUSTED_SNAP|safety|fail|gp_ended>s0"
  "gp_seq|engine-polls-cycles|-DENGINE_POLLS_CONTENDED|cycles|fail|non-progress cycle"
  "heavy_barrier|correct||safety|pass|"
  "heavy_barrier|busted-snap|-DBUSTED_SNAP|safety|fail|ended>s0"
  "heavy_barrier|busted-load-sleepers-first|-DBUSTED_LOAD_SLEEPERS_FIRST|safety|fail|invalid end state"
)

echo "spin models: $here/{srcu,gp_seq,heavy_barrier}.pml  ($(spin -V | head -n 1))${extra[*]:+  extra: ${extra[*]}}"
t_all="$(now)"
bad=0
for v in "${variants[@]}"; do
  IFS='|' read -r model name defs search expect pattern <<<"$v"
  [[ -z "$only" || "$only" == "$model" ]] || continue
  name="$model/$name"
  dir="$tmp/$name"
  mkdir -p "$dir"
  cp "$here/$model.pml" "$dir/"
  if [[ "$search" == cycles ]]; then
    ccflags=(-DNP) panflags=(-l)
  else
    ccflags=(-DSAFETY) panflags=()
  fi
  t0="$(now)"
  verdict=""
  # shellcheck disable=SC2086
  # spin -a can report an error and still exit 0: also check its log and pan.c.
  if ! (cd "$dir" && spin $defs "${extra[@]}" -a "$model.pml") >"$dir/spin.log" 2>&1 ||
     grep -q 'Error' "$dir/spin.log" || [[ ! -s "$dir/pan.c" ]]; then
    verdict="UNEXPECTED  $name: spin -a failed: $(tail -n 1 "$dir/spin.log")"
  elif ! (cd "$dir" && "$cc" -w -O2 "${ccflags[@]}" -DMEMLIM=2048 -o pan pan.c) >"$dir/cc.log" 2>&1; then
    verdict="UNEXPECTED  $name: building pan failed: $(tail -n 1 "$dir/cc.log")"
  else
    (cd "$dir" && ./pan "${panflags[@]}" -m100000) >"$dir/pan.out" 2>&1 || true
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
      if [[ "$errors" -ge 1 && "$violated" == *"$pattern"* ]]; then
        verdict="OK          $name: errors: $errors (expected >= 1): $violated; $stats"
      else
        verdict="UNEXPECTED  $name: errors: $errors (expected >= 1: $pattern)${violated:+: $violated}${incomplete:+, $incomplete}; $stats"
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
