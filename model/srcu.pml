/*
 * srcu.pml -- Promela model of srcu's readers and grace period, checked by spin.
 *
 * What is modelled (src/grace_period.cc, include/srcu/domain.h):
 *   - idx:        bit 0 of domain::index_, the index new readers use; the
 *                 flip is index_ += 1, i.e. idx := 1 - idx.
 *   - locks/unlocks: NSLOT counter_blocks, each with locks[2] and
 *                 unlocks[2]; by default one per reader process (its
 *                 per-thread slot).  Only the owner writes its slot
 *                 (bump_private), and a shard is written by fetch_add, so an
 *                 increment is one step either way.
 *   - Reader:     read_lock = fetch i := idx (one step); locks[i]++ in its
 *                 block (a later step: a reader preempted in between is a
 *                 straggler); critical section; read_unlock = unlocks[i]++ on
 *                 the index named by the token (i), never the current idx.
 *   - Updater:    NGP consecutive grace periods, each as advance_locked()
 *                 steps them: SCAN1 = retry until readers_idle(!idx), with
 *                 the active index riding on the same passes (or not: the
 *                 pre-check leaves it out when it sees a reader inside;
 *                 modelled as a free choice); if that scan found the active
 *                 index idle too, the grace period ends there, with no flip;
 *                 else flip; SCAN2 = retry until readers_idle(!idx) (the old
 *                 index).  readers_idle(x) sums unlocks[x] slot by slot, then
 *                 (barrier A) sums locks[x] slot by slot; every slot load is
 *                 its own step, so readers run between the loads.
 *
 * Memory model.  spin interleaves atomic steps: the model is sequentially
 * consistent, and the fences (A, B, C, and E, D) are not modelled as
 * instructions; SC is how they are modelled.  Why that is the right
 * abstraction (docs/design.md section 3, steps 3, 4, 5, 14):
 *   - The only reorderings that could change a scan's verdict are
 *     (a) store buffering between the updater's earlier stores (the unpublish
 *         W, here gp_starts++) / its lock-sum loads and a reader's lock store /
 *         critical-section loads, and
 *     (b) a reader's unlock store becoming visible before its lock store or
 *         before its critical-section accesses complete, or the lock-sum
 *         loads being satisfied before the unlock-sum loads.
 *   - The heavy barrier A between the two sums pairs with the reader's B
 *     (after the lock increment) and C (before the unlock increment).  With
 *     membarrier, A places a full barrier at one point P of every running
 *     reader's program; in the fallback A, B and C are seq_cst fences.  Either
 *     way: a lock that the lock sum misses is followed by a critical section
 *     that sees everything before A (a), and an unlock that the unlock sum
 *     counts has its lock and its whole critical section before A (b).  Those
 *     are exactly the outcomes an SC interleaving allows, so every execution
 *     of the real code has an SC execution with the same scan verdicts and
 *     the same reader-in-critical-section facts at the end of a grace period.
 *   - Within one sum the slot loads are unordered in the proof (step 4 needs
 *     no snapshot); the model visits slots in ascending order, and (with the
 *     default one slot per reader) the readers run identical code, so the
 *     other visiting orders are symmetric to it.
 *   - W (the unpublish) is before both scans of the grace period: by program
 *     order for the driving updater, by S/G for a cookie taken by another
 *     thread (design step 13).  The model has one updater that drives its own
 *     grace periods, and the ghost gp_starts++ stands for W.
 *   - The reader's load of index_ is relaxed and may be stale.  The proof does
 *     not depend on the value read (step 7); -DANY_INDEX lets a reader take
 *     either index, which over-approximates any stale load, and must pass too.
 *   - E and D only affect progress (how many stragglers a scan sees); the
 *     model's safety result holds without them.
 *
 * The safety property (the contract of synchronize() in domain.h): when grace
 * period g ends, no reader whose critical section began before g started is
 * still inside it.  Ghost state: gp_starts counts grace-period starts (the
 * call to synchronize(); the unpublish W is before it).  A reader's critical
 * section begins at its locks[i]++ (its first access is after B), so the
 * reader records began[r] := gp_starts in the same step, and in_cs[r] is true
 * from that step until its unlocks[i]++ step (its last access is before C).
 * At the end of SCAN2 of grace period g (== gp_starts), assert that no reader
 * has in_cs && began < g.  These are the strongest points at which the ghost
 * can be set and cleared without claiming more than the design (or the
 * kernel) guarantees: -DBEGIN_AT_FETCH moves "began" to the index fetch, and
 * then a straggler that fetched before the grace period and locked after it
 * ended is flagged although its critical section follows the grace period;
 * check.sh expects that variant to fail, to show the property is not vacuous
 * in that direction either.
 *
 * Variants (spin -D...):
 *   (none)            the algorithm as implemented: expect 0 errors
 *   ANY_INDEX         reader's index load returns either value: expect 0
 *   BUSTED_NO_SCAN1   grace period = flip + SCAN2 only: stragglers are missed
 *   BUSTED_ONE_INDEX  SCAN2 waits on the index it flipped to (the one SCAN1
 *                     already saw idle), never on the old one
 *   BUSTED_SUM_ORDER  readers_idle sums locks before unlocks (the order
 *                     across barrier A reversed); a negative difference then
 *                     counts as busy instead of aborting (see readers_idle)
 *   BUSTED_FAST_ACTIVE_ONLY  the no-flip ending trusts the active index
 *                     alone (SCAN1's inactive verdict ignored): stragglers
 *                     on the inactive index are missed
 *   NSLOT=2           (with NR=3) two readers share one counter block, like a
 *                     shard: expect 0
 *   RSEQ_FLIP         the grace period with the readers' restartable
 *                     sequences (g_rseq_readers): a reader's index fetch and
 *                     lock increment are one sequence that starts over when
 *                     a heavy barrier A runs in between (membarrier's RSEQ
 *                     command; preemption and signals restart it too, which
 *                     is the same as fetching later); the grace period has
 *                     no SCAN1 and no ending without the flip: flip, then
 *                     SCAN2. Expect 0. (SC stands for fence E here too,
 *                     which this grace period needs: a reader that loads the
 *                     new index observes the unpublish; docs/design.md §3
 *                     step 7.)
 *   RSEQ_FLIP + BUSTED_NO_RESTART  the same grace period with readers whose
 *                     fetch and increment are not restarted: stragglers
 *                     missed
 *   BEGIN_AT_FETCH    ghost "began" at the idx fetch: property too strong
 * Bounds: NR readers, NCS critical sections each, NGP grace periods, NSLOT
 * counter blocks (default NR: one private slot per reader).
 */

#ifndef NR
#define NR 3
#endif
#ifndef NCS
#define NCS 2
#endif
#ifndef NGP
#define NGP 3
#endif
#ifndef NSLOT
#define NSLOT NR              /* counter blocks; reader r uses block r % NSLOT */
#endif

bit  idx = 0;                 /* bit 0 of domain::index_ */
byte locks[2 * NSLOT];        /* block s, index x: locks[2*s + x] */
byte unlocks[2 * NSLOT];
#define L(s, x) locks[2 * (s) + (x)]
#define U(s, x) unlocks[2 * (s) + (x)]

#ifdef RSEQ_FLIP
bool aborted[NR];             /* a heavy barrier ran since reader r's fetch */
#endif

/* ghost state, for the assertion only */
byte gp_starts = 0;           /* grace periods started (synchronize() calls) */
bool in_cs[NR];               /* reader r is inside a critical section */
byte began[NR];               /* gp_starts when that critical section began */

/* Reader r uses block r % NSLOT: by default its own slot; with NSLOT < NR
   some readers share a block, as signal-safe/down_read readers share a shard
   (fetch_add: one atomic step either way).  Counters stay <= NR * NCS, so
   bytes never wrap. */
active [NR] proctype Reader()
{
  byte me = _pid;             /* readers are declared first: pids 0..NR-1 */
  byte b = _pid % NSLOT;      /* its counter block */
  byte n = 0;
  bit i;

  do
  :: n < NCS ->
       /* read_lock(): i = index_.load() & 1 */
#ifdef ANY_INDEX
       if
       :: i = 0
       :: i = 1
       fi;
#elif defined(BEGIN_AT_FETCH)
       d_step { i = idx; in_cs[me] = true; began[me] = gp_starts };
#elif defined(RSEQ_FLIP)
fetch: atomic { i = idx; aborted[me] = false };
#else
       i = idx;
#endif
       /* -- a straggler is preempted here -- */
       /* bump_private(slot->locks[i]); B; the critical section starts */
#ifdef BEGIN_AT_FETCH
       L(b, i)++;
#elif defined(RSEQ_FLIP) && !defined(BUSTED_NO_RESTART)
       /* the commit: only if no heavy barrier ran since the fetch; else
          the abort handler starts the sequence over */
       if
       :: d_step { !aborted[me] -> L(b, i)++; in_cs[me] = true; began[me] = gp_starts }
       :: atomic { aborted[me] -> i = 0 }; goto fetch
       fi;
#else
       d_step { L(b, i)++; in_cs[me] = true; began[me] = gp_starts };
#endif
       /* critical section: any number of updater steps can run here */
       /* read_unlock(token): C; bump_private(slot->unlocks[token index]) */
       d_step { U(b, i)++; in_cs[me] = false; began[me] = 0; i = 0; n++ }
  :: else -> break
  od
}

/* readers_idle(x): unlock sum, A, lock sum; one slot load per step.  With
   with_other, the other index's counters are read in the same passes, slot
   by slot, and other_idle is its verdict (under the same barrier A). */
inline readers_idle(x, idle)
{
#ifndef BUSTED_SUM_ORDER
  s = 0;
  do
  :: s < NSLOT -> d_step { us = us + U(s, x); if :: with_other -> us2 = us2 + U(s, 1 - (x)) :: else -> skip fi; s++ }
  :: else -> break
  od;
  /* heavy barrier A (pairs with B and C): SC; with RSEQ_FLIP it also
     restarts every reader between its fetch and its commit */
#ifdef RSEQ_FLIP
  atomic { s = 0; do :: s < NR -> aborted[s] = true; s++ :: else -> break od; s = 0 };
#endif
  s = 0;
  do
  :: s < NSLOT -> d_step { ls = ls + L(s, x); if :: with_other -> ls2 = ls2 + L(s, 1 - (x)) :: else -> skip fi; s++ }
  :: else -> break
  od;
#else
  s = 0;
  do
  :: s < NSLOT -> d_step { ls = ls + L(s, x); s++ }
  :: else -> break
  od;
  s = 0;
  do
  :: s < NSLOT -> d_step { us = us + U(s, x); s++ }
  :: else -> break
  od;
#endif
#ifndef BUSTED_SUM_ORDER
  /* the always-on misuse check: more unlocks than locks aborts */
  assert(ls >= us && ls2 >= us2);
#else
  /* With the sums swapped this check fires falsely (a false "more unlocks
     than locks" abort); it is left out here so that spin shows the worse
     outcome, a false idle: a negative difference just counts as busy. */
#endif
  atomic {   /* a break lands here: not d_step */
    idle = (ls == us); other_idle = (with_other && ls2 == us2);
    ls = 0; us = 0; ls2 = 0; us2 = 0; s = 0
  }
}

/* Wait (retry after kBusy) until readers_idle(!idx). */
inline scan_inactive()
{
  do
  :: readers_idle(1 - idx, idle);
     if
     :: idle -> idle = false; break
     :: else -> skip        /* kBusy: back off, retry */
     fi
  od
}

active proctype Updater()
{
  byte g = 0;                 /* grace periods completed */
  byte s = 0;
  byte us = 0;
  byte ls = 0;
  byte us2 = 0;
  byte ls2 = 0;
  bool idle = false;
  bool with_other = false;    /* SCAN1: the active index rides along */
  bool other_idle = false;    /* ... and was found idle */

  do
  :: g < NGP ->
       /* synchronize(): the unpublish W precedes this; idle -> SCAN1, G */
       gp_starts++;
#ifdef BUSTED_FAST_ACTIVE_ONLY
       /* bug: end without the flip once the active index alone is idle */
       readers_idle(idx, idle);
       if
       :: idle -> idle = false; goto gp_end
       :: else -> skip
       fi;
#endif
#if !defined(BUSTED_NO_SCAN1) && !defined(RSEQ_FLIP)
       /* SCAN1: stragglers on the inactive index; the pre-check may let the
          active index ride along (free choice, per attempt) */
       do
       :: if
          :: with_other = true
          :: with_other = false
          fi;
          readers_idle(1 - idx, idle);
          with_other = false;
          if
          :: idle -> idle = false; break
          :: else -> other_idle = false   /* kBusy: back off, retry */
          fi
       od;
#endif
       /* both indices idle under one barrier: the grace period ends here */
       if
       :: other_idle -> other_idle = false; goto gp_end
       :: else -> skip
       fi;
       /* E; index_ += 1 (the flip); D */
       idx = 1 - idx;
#ifdef BUSTED_ONE_INDEX
       /* bug: wait on the index just flipped to, not on the old one */
       do
       :: readers_idle(idx, idle);
          if
          :: idle -> idle = false; break
          :: else -> skip
          fi
       od;
#else
       /* SCAN2: readers on the old index (now !idx again) */
       scan_inactive();
#endif
       /* end of grace period g: gp_seq store-release R; synchronize()
          returns and the caller frees.  No reader that began before this
          grace period started may still be inside.  (atomic, not d_step:
          the scan loop's break jumps here, and spin refuses a jump into a
          d_step.) */
gp_end:
       atomic {
         s = 0;
         do
         :: s < NR ->
              assert(!(in_cs[s] && began[s] < gp_starts));
              s++
         :: else -> break
         od;
         s = 0;
         g++
       }
  :: else -> break
  od
}
