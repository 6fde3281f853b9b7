/*
 * heavy_barrier.pml -- Promela model of the shared heavy barrier
 * (shared_barrier() in src/heavy_barrier.cc, fence HB in docs/design.md §2):
 * scans of any domains that need a membarrier() at the same moment share
 * one, through the sequence g_barrier_seq (even: none in flight; odd: one
 * in flight) and the sleepers' count g_barrier_sleepers.
 *
 * What is modelled:
 *   - seq           g_barrier_seq.  Values stay small (at most two per barrier,
 *                   NS * NSCAN barriers), so seq_reached() is plain >=.
 *   - the snapshot  snap = (seq + 3) & ~1, one step with the load (the seq_cst
 *                   fence before it orders the scan's first pass before it).
 *   - the CAS       even -> odd, one step: it succeeds iff seq still holds the
 *                   value loaded.  A failed CAS only loops.
 *   - membarrier()  the barrier itself: `ended` counts barriers that returned.
 *                   `started` counts successful CASes.  Only one barrier is in
 *                   flight at a time, so the k-th barrier begun is the k-th
 *                   to end.
 *   - the end       seq = odd + 1, then the sleepers' load and a wake of every
 *                   sleeper if it is not 0 (futex_wake(INT32_MAX)).
 *   - a sleeper     sleepers++, then futex_wait(seq, cur): the kernel compares
 *                   the word and sleeps in one step (the code's user-space
 *                   re-check before it only saves the system call), then
 *                   sleepers--.  futex_wait has NO timeout here: the model
 *                   requires that no wake-up depends on the code's timeout.
 *                   Nor is the code's way out modelled: a scan whose barrier
 *                   is still in flight after 1 ms issues one of its own (fence
 *                   A on its own terms, so it needs no sharing argument;
 *                   modelling it would also hide a lost wake-up).
 *
 * Checked (SC interleavings; the fences that make the C++ code behave so are
 * argued in docs/design.md §2, HB):
 *   - safety: a scan returns only after a barrier that began after its
 *     snapshot has ended: assert(ended > s0), s0 = barriers begun at the
 *     snapshot;
 *   - no lost wake-up: every scan returns (an invalid end state otherwise: a
 *     scan asleep for ever).
 *
 * Deliberately broken variants (check.sh expects spin to find them):
 *   BUSTED_SNAP            snap = (seq + 2) & ~1: a scan accepts the barrier
 *                          already in flight at its snapshot, which began
 *                          before its first pass.  Assertion.
 *   BUSTED_LOAD_SLEEPERS_FIRST  the issuer reads the sleepers' count before
 *                          storing the end (what the seq_cst pair forbids):
 *                          a sleeper counted in between is never woken.
 *                          Invalid end state.
 */

#ifndef NS
#define NS 3        /* scanning threads */
#endif
#ifndef NSCAN
#define NSCAN 2     /* scans per thread */
#endif

byte seq = 0;
byte sleepers = 0;
byte started = 0;
byte ended = 0;
bool asleep[NS];

inline wake_all() {
  d_step {
    i = 0;
    do
    :: i < NS -> asleep[i] = 0; i++
    :: else -> break
    od
  }
}

proctype scanner(byte id) {
  byte n = 0;
  byte snap, cur, s0, i, seen;
  do
  :: n < NSCAN ->
    atomic {
      s0 = started;
#ifdef BUSTED_SNAP
      snap = (seq + 2) & 254;
#else
      snap = (seq + 3) & 254;
#endif
    }
again:
    cur = seq;
    if
    :: cur >= snap -> goto done
    :: else -> skip
    fi;
    if
    :: (cur & 1) == 0 ->
      if
      :: atomic { seq == cur -> seq = cur + 1; started++ }
        ended++;                  /* membarrier() returned */
#ifdef BUSTED_LOAD_SLEEPERS_FIRST
        seen = sleepers;
        seq = cur + 2;
#else
        seq = cur + 2;
        seen = sleepers;
#endif
        if
        :: seen != 0 -> wake_all()
        :: else -> skip
        fi;
        goto done
      :: atomic { seq != cur -> skip }   /* the CAS failed: look again */
        goto again
      fi
    :: else ->
      sleepers++;
      atomic {                   /* futex_wait(seq, cur): compare and sleep */
        if
        :: seq == cur -> asleep[id] = 1
        :: else -> skip
        fi
      }
      asleep[id] == 0;            /* woken (no timeout) */
      sleepers--;
      goto again
    fi;
done:
    assert(ended > s0);
    n++
  :: else -> break
  od
}

init {
  byte k = 0;
  atomic {
    do
    :: k < NS -> run scanner(k); k++
    :: else -> break
    od
  }
}
