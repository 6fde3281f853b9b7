// Grace periods: the state machine, the reader scans and the updater API.
//
// A grace period (kernel Tree SRCU, own implementation):
//   SCAN1  wait until the *inactive* index has no readers (stragglers that
//          fetched it before the previous flip and incremented it late);
//          skipped when the readers' index load and increment are one
//          restartable sequence (g_rseq_readers: no straggler);
//          the active index rides on the same passes and barrier, and if it
//          is idle too the grace period ends here (one barrier, no flip);
//   flip   index_ += 1, so new readers use the other index;
//   SCAN2  wait until the old index has no readers.
// "No readers on i" (readers_idle): sum unlocks[i] over every slot and shard,
// heavy barrier, sum locks[i]; equal means idle. docs/design.md argues why a
// reader that began before synchronize() can never be missed.
//
// Ordering: every fence and seq_cst operation here is labelled "Fence X
// (docs/design.md §2)", the one ordering table: A, E, D, S, G, R for the
// grace period (B, C are the readers' side, include/srcu/domain.h), and the
// coordination pairs W1, W2, H, X, N, K, BH of the updaters, the engine and
// the callbacks. docs/design.md §3 is the argument that uses A-S.

#include <sched.h>

#include <algorithm>

#include "diagnostics.h"
#include "domain_state.h"
#include "callback_pool.h"
#include "fault_injection.h"
#include "futex.h"
#include "heavy_barrier.h"
#include "service.h"
#include "lockdep.h"
#include "trace.h"

namespace srcu::detail {

grace_periods::grace_periods(domain* self, const domain_options& options, shard_block* small_shard)
    : reader_side(self, options, small_shard), stall_timeout(options.stall_timeout) {}

std::uint64_t grace_periods::snapshot() noexcept {
  // Fence S (docs/design.md §2): pairs with G in advance_locked(); without it
  // the caller's unpublish can still be in its store buffer when another
  // driver's A runs, and a cookie that driver ends is done under a reader.
  std::atomic_thread_fence(std::memory_order_seq_cst);  // S: pairs with G
  return seq_snap(gp_seq.load(std::memory_order_acquire));
}

namespace {
// target = max(target, cookie) on the wrapping sequence.
void raise_to(std::atomic<std::uint64_t>& target, std::uint64_t cookie) noexcept {
  std::uint64_t seen = target.load(std::memory_order_relaxed);
  while (!seq_ge(seen, cookie) &&
         !target.compare_exchange_weak(seen, cookie, std::memory_order_seq_cst,
                                       std::memory_order_relaxed)) {
  }
}
}  // namespace

void grace_periods::request(std::uint64_t cookie) noexcept {
  // A synchronize() caller's need: it drives it itself, or a leaving driver
  // wakes a waiter to (Fence W2); it is never handed to the engine. (The
  // CAS is seq_cst, as raise_to() is for everyone; Fence H needs that only
  // in request_for_engine().)
  raise_to(gp_seq_needed, cookie);
}

void grace_periods::request_for_engine(std::uint64_t cookie) noexcept {
  raise_to(gp_seq_needed, cookie);  // first: advance_locked() starts what it reads
  // Fence H (docs/design.md §2): pairs with release_driver()'s
  // engine_needed load after driver.store(false); without seq_cst here the
  // engine can find the role taken while the leaving driver reads the old
  // need, and nobody drives this cookie's grace period.
  raise_to(engine_needed, cookie);
}

bool grace_periods::done(std::uint64_t cookie) const noexcept {
  // Fence R (docs/design.md §2): acquire, pairs with the end of SCAN2 in
  // advance_locked(); without it the caller's free races with the readers.
  return seq_ge(gp_seq.load(std::memory_order_acquire), cookie);  // R
}

bool grace_periods::requested_not_done() const noexcept {
  return !seq_ge(gp_seq.load(std::memory_order_relaxed), gp_seq_needed.load(std::memory_order_relaxed));
}

std::uint64_t grace_periods::completed() const noexcept {
  return gp_seq.load(std::memory_order_acquire) >> 2;
}

bool grace_periods::driver_active() const noexcept { return driver.load(std::memory_order_acquire); }

std::uint64_t grace_periods::current_gp_age_ns() const noexcept {
  return monotonic_ns() - gp_start_ns.load(std::memory_order_relaxed);
}

std::uint32_t grace_periods::gp_end_word() const noexcept {
  // Fence W3 (docs/design.md §2): read before re-checking the condition,
  // pairs with wake_gp_waiters()'s bump; a bounded poll, so seq_cst is not
  // needed (a missed bump costs one timeout).
  return gp_done_word.load(std::memory_order_seq_cst);
}

void grace_periods::wait_for_gp_end(std::uint32_t seen, std::chrono::nanoseconds timeout) noexcept {
  futex_wait(gp_done_word, seen, timeout);
  // This sleeper is not counted in waiters, and release_driver() may wake
  // one thread only: the wake meant for a counted waiter may have come
  // here. Pass it on, or the counted ones sleep out their 10 ms timeout
  // with the driver role free (found in review: a callback's
  // rcu_synchronize() polling here while synchronize() callers queued
  // behind it). W1 (docs/design.md §2): a waiter asleep now was counted
  // before it slept. A spare wake only makes a waiter re-check.
  if (waiters.load(std::memory_order_seq_cst) != 0) futex_wake(gp_done_word, 1);
}

void grace_periods::set_callbacks_waiting(bool waiting) noexcept {
  // Fence N (docs/design.md §2): pairs with wake_gp_waiters()'s load; the
  // callers hold the mutex, which orders them (seq_cst not needed). Without
  // it a user thread that ends the callbacks' grace period does not kick
  // the engine.
  cb_waiting_gp.store(waiting, std::memory_order_seq_cst);
}

void grace_periods::child_after_fork() noexcept {
  driver.store(false, std::memory_order_relaxed);
  waiters.store(0, std::memory_order_relaxed);
  expedited_waiters.store(0, std::memory_order_relaxed);
}

namespace {
// Liveness only. A reader that loaded the old index just before the flip
// commits its lock increment a moment later, and that moment grows to a
// cache-line transfer when SCAN2's first pass has just pulled the reader's
// slot line away (the pass reads it). The pass then finds the old index
// idle, the heavy barrier runs, and the lock sum counts the late commit:
// busy, and a second barrier. Measured on the 2-vCPU AMD EPYC VM
// (2026-12-05, a reader spinning, expedited grace periods back to back):
// 35-45 % of grace periods took that second barrier (p90 46 us against a
// p50 of 24); with this wait, none of 3,000. A running reader's commit
// lands within it; a preempted one, with the readers' sequences, starts
// over on the new index anyway. Only where a barrier is an interrupt of
// every CPU (membarrier): a fence costs less than the wait. And only when
// a reader took the old index since its last flip: with none arriving there
// is no commit to wait for, and the wait was a third of a grace period with
// no reader (2.7 us on the 2-vCPU AMD EPYC VM). The caller decides both
// (the flip in advance_locked()).
void settle_after_flip() noexcept {
  if (auto probe = g_test_probe.load(std::memory_order_acquire)) probe("grace period: settling after the flip");
  constexpr std::uint64_t kSettleNs = 1'000;
  const std::uint64_t start = monotonic_ns();
  do {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
  } while (monotonic_ns() - start < kSettleNs);
}
}  // namespace

// mutex held; runs as far as it can without waiting.
step_result grace_periods::advance_locked(bool* completed, bool engine) noexcept {
  for (;;) {
    const std::uint64_t seq = gp_seq.load(std::memory_order_relaxed);
    const std::uint64_t index = reader_index().load(std::memory_order_relaxed);
    switch (seq & kStateMask) {
      case kStateIdle:
        if (seq_ge(seq, gp_seq_needed.load(std::memory_order_acquire))) return step_result::kDone;
        gp_start_ns.store(monotonic_ns(), std::memory_order_relaxed);
        SRCU_TRACE(gp_start, name, (seq >> 2) + 1);
        gp_seq.store(seq + 1, std::memory_order_relaxed);
        // Fence G (docs/design.md §2): pairs with S in snapshot(); without it
        // this grace period's scans can miss the unpublish of a caller whose
        // cookie it ends.
        std::atomic_thread_fence(std::memory_order_seq_cst);  // G: pairs with S
        break;
      case kStateScan1: {
        // The engine's scans name themselves by gp_seq (a state that is
        // never 0), so a kept first pass serves only this state of this
        // grace period (readers_idle()).
        // The active index rides on SCAN1's passes and barrier: found idle
        // too, both indices have had their scan after W (docs/design.md §3,
        // step 1) and the grace period ends without the flip, on one
        // barrier instead of two (§1.2).
        // With the readers' restartable sequences (g_rseq_readers) the
        // inactive index has no straggler to wait for: every reader that
        // loaded it before the previous grace period's heavy barrier either
        // incremented before that barrier (and that grace period waited for
        // it) or started over and took the index it flipped to. SCAN1 has
        // nothing to find; flip at once, and SCAN2's one barrier ends the
        // grace period also with a reader spinning (docs/design.md §1.2).
        if (!g_rseq_readers.load(std::memory_order_relaxed)) {
          bool active_idle = false;
          if (!readers_idle(static_cast<unsigned>(~index & 1), engine ? seq : 0, &active_idle)) {
            return step_result::kBusy;
          }
          if (active_idle) {
            SRCU_INJECT("advance: both indices idle, ending without the flip");
            end_gp_locked(seq, completed);
            break;
          }
        }
        SRCU_INJECT("advance: scan 1 done, before the flip");
        // Fence E (docs/design.md §2): pairs with B and C; without it SCAN1
        // may count readers of the new index and retry. Classic safety does
        // not use it; with the readers' sequences it does: it pairs with
        // their load of the index (an x86 load: acquire), so a reader that
        // takes the new index observes the unpublish (no scan waits for it).
        std::atomic_thread_fence(std::memory_order_seq_cst);  // E: pairs with B, C (and the sequences' load)
        // The wait after the flip (settle_after_flip()): membarrier only,
        // and only if a reader took the old index. A hint, read before the
        // flip with no order: a reader whose increment on the old index
        // lands after this sum is missed, and costs at most a second barrier.
        const bool wait_after_flip = !g_readers_fence.load(std::memory_order_relaxed) &&
                                     index_taken_since_last_look(static_cast<unsigned>(index & 1));
        reader_index().store(index + 1, std::memory_order_relaxed);
        // Fence D (docs/design.md §2): pairs with C; without it readers take
        // the old index longer and SCAN2 retries more. Liveness only.
        std::atomic_thread_fence(std::memory_order_seq_cst);  // D: pairs with C
        gp_seq.store(seq + 1, std::memory_order_relaxed);
        SRCU_INJECT("advance: flipped, before scan 2");
        if (wait_after_flip) settle_after_flip();
        break;
      }
      case kStateScan2:
        // After the flip the inactive index is the one readers used before it.
        if (!readers_idle(static_cast<unsigned>(~index & 1), engine ? seq : 0)) return step_result::kBusy;
        end_gp_locked(seq, completed);
        break;
    }
  }
}

// mutex held: the scans of grace period `seq` found every index they must
// idle; count it done.
void grace_periods::end_gp_locked(std::uint64_t seq, bool* completed) noexcept {
  // Fence R (docs/design.md §2): pairs with the acquire loads in done(),
  // poll(), grace_periods_completed(); without it a waiter's free races
  // with the readers' critical sections in the C++ model (TSan reports it).
  gp_seq.store((seq | kStateMask) + 1, std::memory_order_release);  // R
  *completed = true;
  note_gp_end(seq);
}

// Called after a grace period ended, with no lock held.
void grace_periods::wake_gp_waiters() noexcept {
  // Fence W1 (docs/design.md §2): pairs with wait_for()'s waiters.fetch_add
  // and gp_done_word load; without seq_cst this can read waiters == 0 while
  // a waiter reads the old gp_done_word, and synchronize() sleeps out its
  // 10 ms timeout after its grace period ended.
  gp_done_word.fetch_add(1, std::memory_order_seq_cst);
  const std::uint32_t woken = waiters.load(std::memory_order_seq_cst);
  // A hint only (no ordering): see wait_for(). Before the wake: a woken
  // waiter may run at once and take the driver role.
  woken_at_last_end.store(last_gp_long.load(std::memory_order_relaxed) ? woken : 0,
                          std::memory_order_relaxed);
  if (woken != 0) futex_wake(gp_done_word);
  // Callbacks may have been waiting for this one; the engine moves them on.
  // Fence N (docs/design.md §2): pairs with the cb_waiting_gp stores in
  // drain_staged() and advance_ready_locked(), made under the mutex this
  // thread released after ending the grace period; the mutex orders them
  // (seq_cst not needed). Without the kick the segment waits for another.
  if (cb_waiting_gp.load(std::memory_order_seq_cst)) engine().kick(whole());
}

// The driver role changes hands here: either the engine sees the role free,
// or the leaving driver sees the larger engine_needed and hands it to the
// engine (Fence H), and a waiter asleep on the role is woken (Fence W2).
void grace_periods::release_driver(bool hand_to_engine, bool ended_gp) noexcept {
  // Fences W2 and H (docs/design.md §2): this store is ordered before the
  // waiters and engine_needed loads below; W2 pairs with wait_for()'s driver
  // load before it sleeps, H with request_for_engine() then the driver load
  // in drive_once(). Without seq_cst a waiter sleeps out 10 ms with nobody
  // driving (W2), or the engine drops the domain while this load misses its
  // need and no kick follows (H).
  driver.store(false, std::memory_order_seq_cst);
  SRCU_INJECT("release_driver: role released, before the hand-off");
  // Waiters that found the role taken sleep on gp_done_word; one of them
  // takes over if it still needs a grace period. After a long grace period
  // (a reader was inside) one is woken, not all: every thread asleep here
  // waits for a grace period not yet done (each end wakes them all), so the
  // one woken takes the role, or finds it taken again (whoever took it
  // wakes one when it leaves), or finds its grace period ended meanwhile
  // (and the driver that ended it wakes one when it leaves). Woken all,
  // the others found the role taken and went back to sleep: 8 callers and
  // a reader spinning on 2 CPUs took 84-95 us per call, with one woken
  // 61-65 (docs/design.md §1.3). After a short grace period (no reader
  // inside, less than a wake-up) all are woken: the first to run takes the
  // role, and the others, by the time they run, mostly find their grace
  // period done (with one woken, each next grace period waited for two
  // wake-ups in a row).
  // Fence W2 (docs/design.md §2): pairs with wait_for()'s waiters.fetch_add,
  // gp_done_word load and driver load; see driver.store above. The bump
  // also makes a waiter that read the word before it, and is not asleep
  // yet, return from its futex_wait at once.
  // ended_gp: this driver's last step ended a grace period and its wake was
  // put off until now (wait_for()); that bump and wake of every sleeper
  // also serve W2.
  if (ended_gp) {
    wake_gp_waiters();
  } else if (waiters.load(std::memory_order_seq_cst) != 0) {
    gp_done_word.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(gp_done_word, last_gp_long.load(std::memory_order_relaxed) ? 1 : INT32_MAX);
  }
  // A woken waiter whose cookie is already done just leaves, and the engine
  // dropped this domain when it found the role taken: hand start_poll()'s
  // (and the engine's own) outstanding grace periods back to the engine
  // whatever the waiters do. Only those: a waiter's own need is served by
  // the wake above, and kicking the engine for it woke the engine at every
  // release among concurrent callers, on whichever CPU was free: the one a
  // reader spins on, preempting it inside its sections (8 expedited callers
  // and a reader on 2 CPUs: about 95 us per call when the engine ran on the
  // reader's CPU, 60 when it ran on the callers'; 54-68 without the kick).
  // Fence H (docs/design.md §2): the engine_needed load pairs with
  // request_for_engine() in start_poll()/engine_step() and the driver load
  // in drive_once(); the gp_seq load needs no order (a stale value only
  // adds a kick).
  if (hand_to_engine && !seq_ge(gp_seq.load(std::memory_order_seq_cst),
                                engine_needed.load(std::memory_order_seq_cst))) {
    engine().kick(whole());
  }
}

// The caller wakes the waiters if *completed (wake_gp_waiters()), with no
// lock held: at once, or, a waiter that ended its own grace period, after it
// gave up the role (wait_for()).
step_result grace_periods::step_as_driver(bool* completed, bool engine) noexcept {
  mutex_lock lk(mutex);
  return advance_locked(completed, engine);
}

step_result grace_periods::drive_once() noexcept {
  // Fence H (docs/design.md §2): after request_for_engine(), pairs with
  // release_driver()'s driver.store(false) then engine_needed load; without
  // seq_cst the engine sees the role taken, the leaving driver misses the
  // need, and the grace period is never started.
  if (driver.load(std::memory_order_seq_cst) ||
      driver.exchange(true, std::memory_order_seq_cst)) {
    return step_result::kDone;  // the driver hands back in release_driver()
  }
  bool completed = false;
  const step_result r = step_as_driver(&completed, /*engine=*/true);
  if (completed) wake_gp_waiters();
  if (r == step_result::kBusy) check_stall();
  release_driver(/*hand_to_engine=*/false);
  return r;
}

// The driver, readers still inside: is a stall report due? The first report
// of a grace period comes stall_timeout after it began, the next ones every
// stall_timeout after the previous. The report itself is made on a callback
// worker (callback_pool::request_stall_report), so that the handler never
// runs on a reader's thread nor on one waiting in synchronize(), and runs
// with no library lock held.
void grace_periods::check_stall() noexcept {
  if (stall_timeout.count() <= 0) return;
  const std::uint64_t seq = gp_seq.load(std::memory_order_relaxed);
  if ((seq & kStateMask) == kStateIdle) return;
  const std::uint64_t timeout_ns = static_cast<std::uint64_t>(stall_timeout.count()) * 1'000'000u;
  const std::uint64_t now = monotonic_ns();
  if (stall_seq.load(std::memory_order_relaxed) != seq) {
    stall_seq.store(seq, std::memory_order_relaxed);
    stall_next_ns.store(gp_start_ns.load(std::memory_order_relaxed) + timeout_ns,
                        std::memory_order_relaxed);
  }
  if (now < stall_next_ns.load(std::memory_order_relaxed)) return;
  stall_next_ns.store(now + timeout_ns, std::memory_order_relaxed);
  stall_report_seq.store(seq, std::memory_order_relaxed);
  pool().request_stall_report(whole());
}

// mutex held: a grace period that began at gp_start_ns has just ended.
void grace_periods::note_gp_end(std::uint64_t seq) noexcept {
  const std::uint64_t took = monotonic_ns() - gp_start_ns.load(std::memory_order_relaxed);
  last_gp_long.store(took >= kShareWorthNs, std::memory_order_relaxed);
  if (took > longest_gp_ns.load(std::memory_order_relaxed)) {
    longest_gp_ns.store(took, std::memory_order_relaxed);
  }
  if (expedited_waiters.load(std::memory_order_relaxed) != 0) {
    expedited_gps.store(expedited_gps.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  SRCU_TRACE(gp_end, name, (seq >> 2) + 1, took);
}

namespace {

// kick_word: bit 0 set while the driver naps on it (backoff::wait()); each
// kick by an expedited caller adds kKickStep.
constexpr std::uint32_t kKickNapping = 1;
constexpr std::uint32_t kKickStep = 2;

// How long the driver waits between reader scans. Each scan costs a heavy
// barrier, so even the expedited mode does not spin on it.
class backoff {
 public:
  backoff(bool expedited, const std::atomic<std::uint32_t>& expedited_waiters,
          std::atomic<std::uint32_t>& kick_word)
      : expedited_(expedited), expedited_waiters_(expedited_waiters), kick_word_(kick_word) {}
  void reset() { attempt_ = 0; }
  void wait() {
    const bool fast = expedited_ || expedited_waiters_.load(std::memory_order_relaxed) != 0;
    const unsigned attempt = attempt_++;
    // Readers are normally short: let one finish, and look again (a look
    // while one is visibly inside costs no barrier: the pre-check), as the
    // kernel's SRCU polls a few times before it sleeps. A yield, not a
    // spin: the reader may be waiting for this very CPU (preempted inside
    // its section; a 5 us spin there made 8 callers 60 % slower). Also
    // with other callers waiting: with a 100 us nap there instead, 8
    // callers and a reader on 2 CPUs took 3.3-3.6x one caller's time per
    // call, with the yields 2.7x (bench, 2026-12-05).
    if (attempt < 3) {
      sched_yield();
      return;
    }
    const std::uint64_t base_ns = fast ? 10'000 : 100'000;
    const std::uint64_t cap_ns = fast ? 1'000'000 : 10'000'000;
    const unsigned shift = std::min(attempt, 20u);
    const std::uint64_t ns = std::min(cap_ns, base_ns << shift);
    // Fence X (docs/design.md §2): pairs with wait_for()'s kick_word bump for
    // an expedited caller; best effort, bounded by this nap: a bump before
    // this fetch_or is lost and the caller waits out the nap. The bit says
    // "asleep here", so that a kick makes a futex_wake only then.
    const std::uint32_t k =
        kick_word_.fetch_or(kKickNapping, std::memory_order_seq_cst) | kKickNapping;
    futex_wait(kick_word_, k, std::chrono::nanoseconds(ns));
    kick_word_.fetch_and(~kKickNapping, std::memory_order_relaxed);
  }

 private:
  const bool expedited_;
  const std::atomic<std::uint32_t>& expedited_waiters_;
  std::atomic<std::uint32_t>& kick_word_;
  unsigned attempt_ = 0;
};

}  // namespace

void grace_periods::wait_for(std::uint64_t cookie, bool expedited) {
  if (done(cookie)) return;
  request(cookie);
  SRCU_INJECT("wait_for: requested, before counting as a waiter");
  // Fences W1 and W2 (docs/design.md §2): pairs with the waiters loads in
  // wake_gp_waiters() and release_driver(); counted before gp_done_word is
  // read below, so either they see this thread counted and wake it, or its
  // `seen` includes their bump. Without seq_cst it sleeps through the wake.
  waiters.fetch_add(1, std::memory_order_seq_cst);
  if (expedited) {
    expedited_waiters.fetch_add(1, std::memory_order_relaxed);
    // Fence X (docs/design.md §2): pairs with backoff::wait()'s kick_word
    // fetch_or; best effort (a kick the driver misses costs one nap), so the
    // seq_cst on the driver load is not needed. The wake only when the
    // driver naps (kKickNapping): a system call per expedited caller while
    // the driver was busy or yielding made 8 expedited callers and a reader
    // on 2 CPUs 15 futex calls per round of 8 calls, against 8 for normal
    // ones.
    if (driver.load(std::memory_order_seq_cst) &&
        (kick_word.fetch_add(kKickStep, std::memory_order_seq_cst) & kKickNapping) != 0) {
      futex_wake(kick_word);  // a normal-mode driver shortens its sleep
    }
  }
  backoff wait(expedited, expedited_waiters, kick_word);
  while (!done(cookie)) {
    // Fence W2 (docs/design.md §2): only a filter before the exchange
    // (seq_cst not needed); W2's end is the driver load before futex_wait.
    if (!driver.load(std::memory_order_seq_cst) &&
        !driver.exchange(true, std::memory_order_acquire)) {
      // This thread drives until its own grace period is over. It stops
      // counting itself as a waiter, so a lone driver makes no futex_wake.
      // W1/W2 (docs/design.md §2): a decrement needs no order; a waker that
      // still counts this thread only makes a spare wake.
      waiters.fetch_sub(1, std::memory_order_seq_cst);
      // Sharing: the last grace period ended with waiters, who are likely
      // to ask for the next one as soon as they run (callers in a loop).
      // Starting it before they have taken their cookies would serve this
      // thread alone and make them wait for the one after; one yield first
      // lets them in. Only when that grace period was long enough to be
      // worth sharing (wake_gp_waiters() leaves the hint 0 otherwise): one
      // with no reader inside costs less than the yield (8 callers on 2
      // CPUs, no reader: 0.85 grace periods per call without the yield and
      // faster than 0.24 with it). Not for a lone caller either (who counts
      // no waiter at the ends it drives). Expedited callers too: 8 of them
      // with a reader spinning ran 0.79 grace periods per call without it,
      // 0.17 with it, and took half the time.
      // Yields, not one: a yield may hand the CPU back before every woken
      // caller has run (8 callers and a reader on 2 CPUs: 1.2 grace periods
      // per round of 8 calls with one yield, 1.0 with this loop, about 2
      // yields a round). It yields while fewer threads wait than were woken
      // (`waiters` still counts a woken one until it runs, so this is a
      // bound, not a count of those back), at most kMaxGatherYields times:
      // callers that do not come back (one call each) cost that many.
      if (const std::uint32_t woken = woken_at_last_end.exchange(0, std::memory_order_relaxed);
          woken != 0 && (gp_seq.load(std::memory_order_relaxed) & kStateMask) == kStateIdle) {
        const std::uint32_t yields = std::min(woken, kMaxGatherYields);
        for (std::uint32_t y = 0; y < yields && waiters.load(std::memory_order_relaxed) < woken; ++y) {
          sched_yield();
        }
      }
      bool ended_own = false;
      while (!done(cookie)) {
        bool completed = false;
        const step_result r = step_as_driver(&completed);
        // Its own grace period over, and a long one (a reader was inside):
        // the end's wake waits for release_driver(), after the role is
        // free. Woken while this thread held it, a waiter that ran at once
        // (on this CPU it preempts this thread) found the role taken and
        // slept again, and the release woke one of them a second time (8
        // callers and a reader on 2 CPUs: 11 context switches and 10 futex
        // calls per round of 8 calls; 9 and 8 so, and 0.90x the time).
        // After a short one the old order shares better: waiters that run
        // at once find the role taken and sleep until the release, and
        // meanwhile more callers ask (8 callers, no reader: 0.56 grace
        // periods per call; with the wake put off, 0.68 and 1.14x the time).
        if (completed && done(cookie) && last_gp_long.load(std::memory_order_relaxed)) {
          ended_own = true;
          break;
        }
        if (completed) {
          wake_gp_waiters();
          wait.reset();
        }
        // kDone: re-check done(cookie). kBusy with our grace period over
        // (advance_locked went on to start the next one, which readers
        // hold up): leave now rather than after a nap (found by the spin
        // model's review, model/gp_seq.pml).
        if (r != step_result::kBusy || done(cookie)) continue;
        check_stall();
        wait.wait();
      }
      release_driver(/*hand_to_engine=*/true, ended_own);
      if (expedited) expedited_waiters.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    // Another thread drives: sleep until a grace period ends or it leaves.
    // Not spinning first, on purpose: a spinning waiter keeps its CPU
    // running, so each of the driver's membarrier() calls must interrupt it
    // (measured ~10 us instead of ~0.35 us on the 2-vCPU VM); two callers
    // were 32x slower than one with a spin, 4.8x without.
    // Fences W1 and W2 (docs/design.md §2): `seen` pairs with the
    // gp_done_word bumps in wake_gp_waiters() and release_driver(), read
    // after this thread was counted in waiters; reading a bump also acquires
    // the gp_seq that done() checks. The driver load pairs with
    // release_driver()'s driver.store(false) (W2). Without seq_cst this
    // thread sleeps out the 10 ms timeout after its wake was skipped.
    const std::uint32_t seen = gp_done_word.load(std::memory_order_seq_cst);
    if (done(cookie)) break;
    if (!driver.load(std::memory_order_seq_cst)) continue;
    futex_wait(gp_done_word, seen, std::chrono::milliseconds(10));
  }
  // W1/W2 (docs/design.md §2): a decrement needs no order (a spare wake).
  waiters.fetch_sub(1, std::memory_order_seq_cst);
  if (expedited) expedited_waiters.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace srcu::detail

namespace srcu {

using detail::callback_queue;
using detail::domain_state;
using detail::kick_node;
using detail::seq_ge;
using detail::seq_snap;

// Before every wait for a grace period of `self` (and, with `callbacks`, for
// its callbacks): the waits that cannot end are misuse, the others are
// recorded by the deadlock detector (debug builds, lockdep.cc). `readers`:
// the calling thread's read_lock() sections of it (outside on a domain with
// no state: read_lock() makes it).
static void check_wait(const domain* self, const char* name, domain_state::reader_state readers,
                       const char* what, bool callbacks) noexcept {
  // Signal-safe sections are known only where debug code noted them
  // (detail/reader.h); release code just waits (and a stall is reported).
  if (SRCU_UNLIKELY(detail::thread_in_signal_safe_reader(self))) {
    detail::message m;
    m << "srcu: domain '" << name << "': " << what
      << " called inside a read_lock_signal_safe() section of the same domain on this thread "
         "(would deadlock)";
    detail::die(m);
  }
  switch (readers) {
    case domain_state::reader_state::outside:
      detail::lockdep_wait(self, name, what, callbacks);
      return;
    case domain_state::reader_state::inside: {
      detail::message m;
      m << "srcu: domain '" << name << "': " << what
        << " called inside a read-side critical section of the same domain (would deadlock)";
      detail::die(m);
    }
    case domain_state::reader_state::over_unlocked: {
      detail::message m;
      m << "srcu: domain '" << name << "': " << what
        << " called on a thread that has unlocked more read-side critical sections than it "
           "locked (read_unlock()/unlock() called twice for one lock)";
      detail::die(m);
    }
  }
}

// check_wait() for a domain with its state. Always on: the thread's own
// slot is private to it, so this is exact and cheap next to a grace period.
static void check_not_in_reader(const domain_state& s, const char* what,
                                bool callbacks = false) noexcept {
  check_wait(s.self, s.name, s.thread_reader_state(), what, callbacks);
}

void domain::synchronize() noexcept {
  domain_state& s = made_state();
  check_not_in_reader(s, "synchronize()");
  s.wait_for(s.snapshot(), /*expedited=*/false);
}

void domain::synchronize_expedited() noexcept {
  domain_state& s = made_state();
  check_not_in_reader(s, "synchronize_expedited()");
  s.wait_for(s.snapshot(), /*expedited=*/true);
}

void domain::cond_synchronize(poll_cookie cookie) noexcept {
  domain_state& s = made_state();
  check_not_in_reader(s, "cond_synchronize()");
  // Waiting for the cookie's own grace period is enough: it ends after every
  // reader that began before the cookie was taken.
  s.wait_for(cookie.seq_, /*expedited=*/false);
}

void domain::barrier() noexcept {
  domain_state* s = state();
  if (s == nullptr) s = detail::engine().settle(this);  // a kick in flight makes it now
  if (s == nullptr) {
    // Never used: every call() queued on a domain with no state kicks the
    // engine, which makes the state when it takes the kick, and settle()
    // took every kick pending. So nothing was ever queued here: nothing to
    // wait for, and no state to make for it (as in ~domain()).
    check_wait(this, name(), domain_state::reader_state::outside, "barrier()", /*callbacks=*/true);
    return;
  }
  check_not_in_reader(*s, "barrier()", /*callbacks=*/true);
  s->barrier();
}

void domain::before_allocating_call() {
  domain_state& s = made_state();
  const std::uint64_t limit = s.backlog_limit();
  if (limit != 0) s.wait_for_backlog_below(limit);
}

void domain::call(callback_head* head, void (*func)(callback_head*)) noexcept {
  if (domain_state* s = state(); SRCU_LIKELY(s != nullptr)) {
    s->call(head, func);
  } else {
    callback_queue::call_without_state(*this, head, func);  // no allocation: the engine makes it
  }
}

namespace {
// The cookie of a domain with no state yet: no grace period has started,
// so the first one to start after now (the first the state will run) is
// the one that covers every reader before now. Fence S first, then the
// state load: a state made after S runs its first grace period after it.
std::uint64_t snapshot_of(const domain_state* s) noexcept {
  return s != nullptr ? const_cast<domain_state*>(s)->snapshot() : seq_snap(0);
}
}  // namespace

poll_cookie domain::get_poll_cookie() noexcept {
  // Fence S (docs/design.md §2): pairs with G in advance_locked(); taken
  // here too for a domain without a state (snapshot() takes it again).
  std::atomic_thread_fence(std::memory_order_seq_cst);  // S: pairs with G
  return poll_cookie(snapshot_of(state()));
}

poll_cookie domain::start_poll() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // S: as in get_poll_cookie()
  domain_state* const s = state();
  const std::uint64_t cookie = snapshot_of(s);
  if (s == nullptr) {
    ask_engine(kick_node::kAskPoll);  // the engine makes the state and requests seq_snap(0)
  } else if (!s->done(cookie)) {
    // Fence H (docs/design.md §2): request_for_engine() is seq_cst; the
    // engine this kicks checks the driver role after it, and
    // release_driver() re-kicks the engine if a leaving driver sees this
    // need unmet.
    s->request_for_engine(cookie);
    detail::engine().kick(s);
  }
  return poll_cookie(cookie);
}

bool domain::poll(poll_cookie cookie) const noexcept {
  const domain_state* s = state();
  // Fence R (docs/design.md §2), in done(). No state: no grace period yet.
  return s != nullptr ? s->done(cookie.seq_) : seq_ge(0, cookie.seq_);
}

std::uint64_t domain::grace_periods_completed() const noexcept {
  // Fence R (docs/design.md §2): acquire, pairs with the end of SCAN2.
  const domain_state* s = state();
  return s != nullptr ? s->completed() : 0;
}

}  // namespace srcu
