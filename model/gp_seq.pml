/*
 * gp_seq.pml -- Promela model of srcu's grace-period sequence (gp_seq), the
 * gp_seq_needed target, and the driver role changing hands between updater
 * threads (wait_for), start_poll() and the engine thread
 * (src/grace_period.cc), checked by spin.  srcu.pml models the readers and the
 * scans; this model reduces them to "a scan is busy, or not" (see Readers).
 *
 * What is modelled (names as in src/grace_period.cc, src/domain_state.h):
 *   - gp_seq         (completed << 2) | state: idle 0, SCAN1 1, SCAN2 2.  The
 *                    values stay small, so seq_ge() is plain >=.
 *   - snapshot()     cookie = seq_snap(gp_seq) = (gp_seq + 7) & ~3: one step
 *                    (fence S and the load).
 *   - request(c)     gp_seq_needed = max(gp_seq_needed, c): one step.  The CAS
 *                    loop takes effect at its successful CAS, and a failed one
 *                    only retries.  A synchronize() caller's request.
 *   - request_for_engine(c)  the same, then engine_needed = max(engine_needed,
 *                    c), a second step: start_poll()'s request (and the
 *                    engine's own, for callbacks: not modelled, see Poller).
 *                    release_driver's hand-off looks at engine_needed only.
 *   - done(c)        gp_seq >= c: one load.
 *   - advance_locked()  one step per case of its switch: idle (load
 *                    gp_seq_needed: kDone, or start SCAN1), SCAN1 (kBusy, or
 *                    the flip to SCAN2), SCAN2 (kBusy, or the end: gp_seq =
 *                    (seq | 3) + 1).  Only the driver writes gp_seq, so the
 *                    one load of gp_seq_needed is the only thing in a case
 *                    that another thread can change.
 *   - driver         the role flag.  "!driver.load() && !driver.exchange(true)"
 *                    is one test-and-set step: it succeeds iff the flag is
 *                    clear when the exchange runs.
 *   - waiters        the counter, as in the code.
 *   - gp_done_word   a waiter reads it (`seen`) and later futex_wait()s on
 *                    it.  The model keeps what a waiter can learn from it:
 *                    whether it was bumped since the waiter read it (the bits
 *                    `listening`/`moved` below), which is exact and keeps
 *                    the state space small.
 *   - futex_wait     returns at once if the word moved since `seen` (EAGAIN);
 *                    otherwise the waiter is asleep (bit `asleep`) until a
 *                    futex_wake picks it.  It has NO timeout here, so the
 *                    model requires that no wake-up depends on the 10 ms
 *                    timeout of wait_for()'s futex_wait.
 *   - futex_wake     a thread asleep on the word is counted in `waiters`
 *                    (from waiters++ before its loop until it leaves it;
 *                    the C++ has one uncounted sleeper, run_queued_inline()'s
 *                    1 ms poll, which passes on a wake it may take whenever
 *                    `waiters` is not 0 (wait_for_gp_end()): not modelled), and
 *                    every bump is followed by a seq_cst load of `waiters`
 *                    and a wake if it is not 0.  A grace period's end wakes
 *                    every sleeper (merged with its bump into one step: a
 *                    thread that reads the word after the bump and sleeps
 *                    before the wake would only be woken too, a spurious
 *                    wake-up).  release_driver() wakes one sleeper after a
 *                    long grace period and all of them after a short one
 *                    (last_gp_long, not modelled: either, nondeterministically);
 *                    its wake is a step of its own after the bump, so the one
 *                    woken may be a thread that went to sleep in between.
 *   - kick           engine().kick(d) sets `kicked`.  The engine clears it
 *                    when it absorbs its queue, before it steps the domain, so
 *                    a kick is always followed by a later engine_step.  That
 *                    is the kick_queue/service contract (service.cc: a kick
 *                    during a step marks it `rekicked`, or stays on the pending
 *                    stack until the next loop); the queue itself is not
 *                    modelled.
 *
 * Processes:
 *   - Waiter (NW of them, NCALL synchronize() calls each): cookie =
 *     snapshot(), then wait_for(cookie) statement by statement: done? return;
 *     request; waiters++; loop { done? leave; take the role and drive until
 *     done, then release_driver(true) | read gp_done_word, done? leave,
 *     driver clear? again, futex_wait }.  A driver's step that ends its own
 *     grace period may put that end's wake off until release_driver(), after
 *     the role is free (one bump, every sleeper woken), so that a woken
 *     waiter finds the role free; the code does so after a long grace
 *     period only (timing, so the model takes either branch).
 *   - Poller (NP of them, NPOLL start_poll() calls each): cookie =
 *     snapshot(); if not done: request, kick.  Then it only observes: it
 *     blocks until done(its last cookie), as a poll() loop would, but it
 *     never drives.  So it can terminate only if the grace periods it asked
 *     for end without its help: the start_poll() liveness property.
 *   - Engine: sleeps until kicked (or due for a retry), then engine_step =
 *     drive_once(): take the role or find it taken (kContended: engine_step
 *     returns kDone and the service drops the domain); advance_locked;
 *     wake_gp_waiters() if a grace period ended; release_driver(false);
 *     kBusy -> kRetry: stepped again later, without a kick.
 *
 * Readers: a scan (readers_idle) is "busy" nondeterministically, at most
 * NBUSY times in the whole run (a global budget); after that every scan finds
 * no readers.  A real reader leaves eventually; the budget is the bounded
 * version of that.  srcu.pml checks what a scan must see.
 *
 * Steps merged (each merge loses no behaviour of the code):
 *   - In the test-and-set that takes the role, waiters-- and the first done()
 *     check of the driving loop: while a thread holds the role nobody else
 *     writes gp_seq, and `waiters` is read only by the holder.  (A leaving
 *     holder's load of `waiters` may in the code still count the new holder;
 *     that only adds a bump, i.e. a spurious wake-up.)
 *   - The driving loop's done() check is evaluated in advance_locked()'s last
 *     step: gp_seq cannot change between the two while the thread holds the
 *     role.
 *   - "waiters != 0 -> bump" is one step: any other thread's step between
 *     the load and the bump commutes with the one or the other (a change of
 *     `waiters` commutes with the bump, a read of the word with the load).
 *   - In release_driver's hand-off, "load engine_needed; if ahead, kick" is
 *     one step: engine_needed only grows, so a true comparison stays true
 *     until the kick.  (gp_seq is loaded in a step before, as in the code.)
 *   - A true done() (stable: gp_seq only grows) is one step with what
 *     follows it (waiters--, the return).
 *
 * Not modelled: the index flip (the state bits stand for it), backoff naps
 * (wait.wait() returns by its timeout, a skip), expedited waiters and
 * kick_word (timing only), check_stall(), callbacks (drain_staged()'s
 * request() is a start_poll() on the engine thread), fork, other domains.
 *
 * Properties:
 *   Safety (assert):
 *     - a waiter returns, and a poller sees done, only when gp_seq >= cookie
 *       AND a whole grace period that started after its snapshot has ended
 *       (ghost counters gp_started/gp_ended, independent of the seq_snap
 *       formula);
 *     - a process's successive cookies never decrease; gp_seq_needed never
 *       exceeds seq_snap(gp_seq) (nobody asks for more than the grace period
 *       after the one in flight); gp_seq moves only forward, idle -> SCAN1 ->
 *       SCAN2 -> idle, never to state 3 (the asserts in advance_locked).
 *   Liveness:
 *     - no invalid end state: in every reachable state where nothing can move,
 *       every Waiter and Poller has terminated (so every cookie requested by
 *       wait_for or start_poll is done) and the Engine is idle at end_idle;
 *     - no cycle at all (pan -DNP -l, with no progress labels): every run is
 *       finite.  Both together: every run ends with every cookie done.
 *
 * Variants (spin -D...), with the verdicts check.sh expects:
 *   (none)                          the code as written: 0 errors
 *   BUSTED_NO_HANDBACK              release_driver(true) never kicks the
 *                                   engine: the engine drops a domain on
 *                                   kContended and nobody hands it back
 *   BUSTED_HANDBACK_IF_NO_WAITERS   release_driver before ea42143: kick the
 *                                   engine only when no waiter was counted
 *   BUSTED_HANDBACK_BEFORE_RELEASE  the hand-off check (gp_seq < needed) comes
 *                                   before the driver flag is cleared
 *   BUSTED_NO_RECHECK               wait_for sleeps without re-checking the
 *                                   driver flag after reading gp_done_word
 *   BUSTED_NO_RELEASE_WAKE          release_driver does not bump gp_done_word
 *                                   (nor wake) when waiters are counted
 *   BUSTED_END_WAKES_ONE            a grace period's end wakes one sleeper,
 *                                   not all (as release_driver may)
 *   BUSTED_ENDED_WAKES_ONE          a waiter that ended its own grace period
 *                                   wakes one sleeper when it lets go of
 *                                   the role, not all
 *   BUSTED_KICK_BEFORE_REQUEST      start_poll kicks the engine, then requests
 *   BUSTED_SNAP                     seq_snap without the extra grace period:
 *                                   (s + 3) & ~3 (safety)
 *   ENGINE_POLLS_CONTENDED          not a bug: on kContended the engine
 *                                   retries (kRetry) instead of dropping the
 *                                   domain.  The cycle search must report it
 *                                   (the engine polls while a waiter holds the
 *                                   role): it shows that search is not vacuous.
 * Bounds: NW waiters x NCALL calls, NP pollers x NPOLL start_polls, NBUSY
 * busy scans.
 */

#ifndef NW
#define NW 2
#endif
#ifndef NCALL
#define NCALL 1
#endif
#ifndef NP
#define NP 1
#endif
#ifndef NPOLL
#define NPOLL 1
#endif
#ifndef NBUSY
#define NBUSY 2
#endif

#define STATE(s)  ((s) & 3)
#ifdef BUSTED_SNAP
#define SNAP(s)   ((((s) + 3) / 4) * 4)          /* bug: the grace period in flight counts */
#else
#define SNAP(s)   ((((s) + 7) / 4) * 4)          /* seq_snap(s) = (s + 7) & ~3 */
#endif
#define DONE(c)   (gp_seq >= (c))                 /* done(c): seq_ge(gp_seq, c) */

#define R_DONE  1                                 /* step_result::kDone */
#define R_BUSY  2                                 /* step_result::kBusy */

byte gp_seq = 0;
byte gp_seq_needed = 0;
byte engine_needed = 0;       /* the largest cookie requested for the engine */
bool driver = false;
byte waiters = 0;
bool kicked = false;          /* the domain is on the engine's kick queue */
byte busy_left = NBUSY;       /* scans that may still find readers inside */

/* gp_done_word, abstracted to what a waiter can learn from it.  Bit w of
   `listening` is set while Waiter w (pid w) holds a value `seen` it read from
   the word and has not yet stopped using it; bit w of `moved` is set iff the
   word was bumped since that read.  Outside that window both bits are clear,
   so states differ only in what a waiter can act on. */
byte listening = 0;
byte moved = 0;
/* Bit w: Waiter w is blocked in futex_wait (it found its word unmoved) until
   a futex_wake picks it. */
byte asleep = 0;
#define ME (1 << _pid)        /* Waiters are declared first: pids 0..NW-1 */

/* ghost state, for the assertions only */
byte gp_started = 0;          /* grace periods started (idle -> SCAN1) */
byte gp_ended = 0;            /* grace periods ended (SCAN2 -> idle) */

/* snapshot(): fence S, load gp_seq, seq_snap.  s0 records how many grace
   periods had started at the load: the cookie must not be done before grace
   period s0 + 1, the first to start after the load, has ended. */
inline snapshot(c, s0, last_c)
{
  d_step {
    c = SNAP(gp_seq);
    s0 = gp_started;
    assert(c >= last_c);      /* cookies never go backwards */
    last_c = c
  }
}

/* request_for_engine(c): request(c), then engine_needed = max(.., c) */
inline request_for_engine(c)
{
  request(c);
  d_step {
    if
    :: engine_needed < c -> engine_needed = c
    :: else
    fi
  }
}

/* request(c): gp_seq_needed = max(gp_seq_needed, c) */
inline request(c)
{
  d_step {
    if
    :: gp_seq_needed < c -> gp_seq_needed = c
    :: else
    fi;
    assert(gp_seq_needed <= SNAP(gp_seq))
  }
}

inline kick()
{
  kicked = true
}

/* seen = gp_done_word.load() */
inline read_word()
{
  d_step { listening = listening | ME; moved = moved & ~ME }
}

/* the waiter no longer uses `seen` */
inline forget_word()
{
  listening = listening & ~ME;
  moved = moved & ~ME
}

/* futex_wait(gp_done_word, seen), without the timeout: EAGAIN if the word
   moved since `seen`, else asleep until a futex_wake picks this thread. */
inline futex_wait()
{
  if
  :: atomic { (moved & ME) != 0 -> forget_word() }
  :: atomic { (moved & ME) == 0 -> asleep = asleep | ME };
     atomic { (asleep & ME) == 0 -> forget_word() }
  fi
}

/* futex_wake(gp_done_word, INT32_MAX) */
inline wake_all()
{
  asleep = 0
}

/* futex_wake(gp_done_word, 1): the kernel picks one sleeper (any of them
   here), or none is asleep. */
inline wake_one()
{
  if
  :: atomic { (asleep & 1) != 0 -> asleep = asleep & ~1 }
  :: atomic { (asleep & 2) != 0 -> asleep = asleep & ~2 }
  :: atomic { (asleep & 4) != 0 -> asleep = asleep & ~4 }
  :: atomic { (asleep & 8) != 0 -> asleep = asleep & ~8 }
  :: atomic { asleep == 0 -> skip }
  fi
}

/* release_driver()'s wake after its bump: one sleeper after a long grace
   period, all after a short one. */
inline release_wake()
{
  if
  :: wake_all()
  :: wake_one()
  fi
}

/* gp_done_word.fetch_add(1) (and, see the header, the futex_wake after it) */
inline bump()
{
  moved = moved | listening
}

/* advance_locked(&completed), mutex held, by the role holder only.  One step
   per case of the switch; kDone and kBusy leave with r set and `fin` =
   done(cookie), the driving loop's next check (see the header). */
inline advance_locked(r, completed, c, fin)
{
  do
  :: atomic { STATE(gp_seq) == 0 && gp_seq >= gp_seq_needed ->  /* kDone */
       r = R_DONE; fin = DONE(c); break }
  :: atomic { STATE(gp_seq) == 0 && gp_seq < gp_seq_needed ->   /* start: SCAN1, G */
       gp_seq++; gp_started++ }
  :: atomic { STATE(gp_seq) != 0 && busy_left > 0 ->            /* readers inside */
       busy_left--; r = R_BUSY; fin = DONE(c); break }
  :: atomic { STATE(gp_seq) == 1 ->                             /* E, flip, D: SCAN2 */
       gp_seq++ }
  :: atomic { STATE(gp_seq) == 2 ->                             /* R: (seq | 3) + 1 */
       gp_seq = gp_seq + 2; gp_ended++;
       assert(gp_ended == gp_started && gp_ended == gp_seq / 4);
       completed = true }
  od
}

/* wake_gp_waiters(), after a grace period ended (no lock held).  Its
   cb_waiting_gp kick is for callbacks, which are not modelled. */
inline wake_gp_waiters(completed)
{
  if
#ifdef BUSTED_END_WAKES_ONE
  :: atomic { completed -> completed = false; bump() };
     wake_one()               /* bug: the other sleepers' grace period is over too */
#else
  :: atomic { completed -> completed = false; bump(); wake_all() }
#endif
  :: else
  fi
}

/* release_driver(hand), first part: the role is released and, if waiters are
   counted, gp_done_word bumped so that one of them takes over.  The second
   part, the hand-off to the engine (hand_to_engine only), is hand_off()
   below; the Waiter calls it right after this.  `hand` is a constant. */
inline release_role(hand, ended)
{
#ifdef BUSTED_HANDBACK_BEFORE_RELEASE
  if
  :: hand -> hand_off()       /* bug: checked before the role is free */
  :: else
  fi;
#endif
  driver = false;
#if defined(BUSTED_NO_RELEASE_WAKE)
  skip                        /* bug: no bump for the waiters */
#elif defined(BUSTED_HANDBACK_IF_NO_WAITERS)
  if
  :: atomic { waiters != 0 -> bump() };
     release_wake()
  :: else ->                  /* bug: "else if": a hand-off only without waiters */
       if
       :: hand -> hand_off()
       :: else
       fi
  fi
#else
  if
  :: ended ->                 /* its own grace period's end: the wake it put off */
       ended = false;
#ifdef BUSTED_ENDED_WAKES_ONE
       atomic { bump() };
       wake_one()             /* bug: every sleeper's grace period may be over */
#else
       atomic { bump(); wake_all() }
#endif
  :: else ->
       if
       :: atomic { waiters != 0 -> bump() };
          release_wake()
       :: else
       fi
  fi
#endif
}

/* release_driver(true), the hand-off: kick the engine if start_poll() (or
   anyone) asked for more than this thread needed.  Two loads, as in the code:
   gp_seq into `seen_seq` (a local of the caller), then engine_needed.  The
   load of engine_needed and the kick are one step: engine_needed only grows,
   so a comparison that is true stays true until the kick. */
inline hand_off()
{
#ifdef BUSTED_NO_HANDBACK
  skip
#else
  seen_seq = gp_seq;
  if
  :: atomic { seen_seq < engine_needed -> kick(); seen_seq = 0 }
  :: else -> seen_seq = 0
  fi
#endif
}

/* synchronize(): cookie = snapshot(); wait_for(cookie, false) */
active [NW] proctype Waiter()
{
  byte n = 0;
  byte c = 0;
  byte last_c = 0;
  byte s0 = 0;
  byte r = 0;
  bool completed = false;
  bool fin = false;           /* the driving loop's done(cookie) */
  bool ended = false;         /* the driving loop ended its own grace period */
  byte seen_seq = 0;          /* hand_off(): gp_seq as loaded */

  do
  :: n < NCALL ->
       snapshot(c, s0, last_c);
       /* wait_for(c) */
       if
       :: atomic { DONE(c) -> goto returned }             /* if (done(cookie)) return */
       :: else
       fi;
       request(c);
       waiters++;
       do
       :: atomic { DONE(c) -> waiters--; goto returned }  /* while (!done(cookie)) */
       :: else ->
            if
            :: atomic { !driver -> driver = true; waiters--; fin = DONE(c) } ->
                 /* this thread drives until its own grace period is over */
                 do
                 :: fin -> break
                 :: else ->
                      advance_locked(r, completed, c, fin);
                      if
                      :: fin -> ended = completed; completed = false
                         /* its own grace period ended (a long one: timing,
                            so either branch): the wake waits for
                            release_role(), after the role is free */
                      :: true -> wake_gp_waiters(completed)
                      fi
                      /* kBusy: check_stall(); wait.wait(), a timed nap: skip */
                 od;
                 release_role(true, ended);
#if !defined(BUSTED_HANDBACK_BEFORE_RELEASE) && !defined(BUSTED_HANDBACK_IF_NO_WAITERS)
                 hand_off();
#endif
                 goto returned
            :: else ->
                 /* another thread drives: sleep until a grace period ends or
                    the role is free */
                 read_word();                     /* seen = gp_done_word */
                 if
                 :: atomic { DONE(c) -> forget_word(); waiters--; goto returned }
                 :: else
                 fi;
#ifndef BUSTED_NO_RECHECK
                 if
                 :: atomic { !driver -> forget_word() }   /* continue */
                 :: else -> futex_wait()
                 fi
#else
                 futex_wait()
#endif
            fi
       od;
returned:
       atomic {                                   /* a goto lands here: not d_step */
         assert(DONE(c));
         assert(gp_ended > s0);                   /* a whole grace period after the snapshot */
         r = 0; s0 = 0; fin = false;
         n++
       }
  :: else -> break
  od
}

/* start_poll() calls, then an observer that waits, without driving, until
   the last cookie is done (poll() until true). */
active [NP] proctype Poller()
{
  byte n = 0;
  byte c = 0;
  byte last_c = 0;
  byte s0 = 0;

  do
  :: n < NPOLL ->
       snapshot(c, s0, last_c);
       if
       :: !DONE(c) ->
#ifdef BUSTED_KICK_BEFORE_REQUEST
            kick();
            request_for_engine(c)
#else
            request_for_engine(c);
            kick()
#endif
       :: else
       fi;
       n++
  :: else -> break
  od;
  /* poll(c) until true: cookies only grow, so the last one covers them all */
  atomic {
    DONE(c);
    assert(gp_ended > s0)
  }
}

/* The engine thread, stepping this one domain. */
active proctype Engine()
{
  byte r = 0;
  bool completed = false;
  bool retry = false;         /* kRetry: stepped again after a backoff, no kick */
  bool no_cookie = true;      /* advance_locked's `fin` = done(0): always true */
  bool no_end = false;        /* release_driver(false): its wake_gp_waiters() ran */
  byte seen_seq = 0;          /* unused: release_driver(false) makes no hand-off */

end_idle:
  do
  :: atomic { (kicked || retry) -> kicked = false; retry = false };
     /* engine_step(d) -> drive_once() */
     if
     :: atomic { !driver -> driver = true };
        advance_locked(r, completed, 0, no_cookie);
        wake_gp_waiters(completed);
        release_role(false, no_end);       /* release_driver(false) */
        atomic { retry = (r == R_BUSY); r = 0 }
#ifndef ENGINE_POLLS_CONTENDED
     :: driver -> skip                     /* kContended: the domain is dropped */
#else
     :: driver -> retry = true             /* kContended polled like kBusy */
#endif
     fi
  od
}
