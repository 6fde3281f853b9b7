// Grace periods: the state machine, the reader scans and the updater API.
//
// A grace period (kernel Tree SRCU, own implementation):
//   SCAN1  wait until the *inactive* index has no readers (stragglers that
//          fetched it before the previous flip and incremented it late);
//   flip   index_ += 1, so new readers use the other index;
//   SCAN2  wait until the old index has no readers.
// "No readers on i" (readers_idle): sum unlocks[i] over every slot and shard,
// heavy barrier, sum locks[i]; equal means idle. docs/design.md argues why a
// reader that began before synchronize() can never be missed.
//
// Ordering table (every fence in the algorithm; readers in detail/reader.h):
//   A  heavy_barrier() in readers_idle(), between the unlock and lock sums.
//      Pairs with B and C. With B: a reader whose lock increment the lock sum
//      misses executes its critical section after A, so it sees everything
//      the updater wrote before synchronize() (it cannot hold the old
//      object). With C: an unlock the unlock sum counts comes after the
//      reader's critical section, and its lock increment is visible to the
//      lock sum, so locks >= unlocks and equality means no reader is inside.
//      Without A the two sums could interleave with a reader and report
//      idle while it runs.
//   B  reader_fence() after a lock increment (reader side).
//   C  reader_fence() before an unlock increment (reader side).
//   E  seq_cst fence before the flip. Pairs with B and C. The scan that just
//      found the inactive index idle is ordered before the flip, so a reader
//      that uses the new index was not counted by it. Kept although the
//      control dependency on the scan already orders it (as in the kernel).
//   D  seq_cst fence after the flip. Pairs with C: a reader whose unlock
//      the next scan misses sees the new index on its next lock. Forward
//      progress only (fewer late stragglers); safety does not depend on it.
//   S  seq_cst fence in snapshot(), before gp_seq is read. Pairs with the
//      seq_cst fence G after a grace period starts: the caller's unpublish
//      is ordered before the first scan of any grace period that the cookie
//      accepts, so that grace period's A covers it.
//   G  seq_cst fence after gp_seq enters SCAN1. Pairs with S.
//   R  gp_seq store-release at the end of a grace period; poll()/done() load
//      it with acquire, so everything the scans acquired from readers'
//      unlocks happens-before the caller's reclamation (TSan sees this too).

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

grace_periods::grace_periods(domain* self, const domain_options& options, std::uint32_t shard_count)
    : reader_side(self, options, shard_count), stall_timeout(options.stall_timeout) {}

std::uint64_t grace_periods::snapshot() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // S: pairs with G
  return seq_snap(gp_seq.load(std::memory_order_acquire));
}

void grace_periods::request(std::uint64_t cookie) noexcept {
  std::uint64_t needed = gp_seq_needed.load(std::memory_order_relaxed);
  while (!seq_ge(needed, cookie) &&
         !gp_seq_needed.compare_exchange_weak(needed, cookie, std::memory_order_seq_cst,
                                              std::memory_order_relaxed)) {
  }
}

bool grace_periods::done(std::uint64_t cookie) const noexcept {
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
  return gp_done_word.load(std::memory_order_seq_cst);
}

void grace_periods::wait_for_gp_end(std::uint32_t seen, std::chrono::nanoseconds timeout) noexcept {
  futex_wait(gp_done_word, seen, timeout);
}

void grace_periods::set_callbacks_waiting(bool waiting) noexcept {
  cb_waiting_gp.store(waiting, std::memory_order_seq_cst);
}

void grace_periods::child_after_fork() noexcept {
  driver.store(false, std::memory_order_relaxed);
  waiters.store(0, std::memory_order_relaxed);
  expedited_waiters.store(0, std::memory_order_relaxed);
}

// mutex held; runs as far as it can without waiting.
step_result grace_periods::advance_locked(bool* completed) noexcept {
  for (;;) {
    const std::uint64_t seq = gp_seq.load(std::memory_order_relaxed);
    const std::uint64_t index = reader_index().load(std::memory_order_relaxed);
    switch (seq & kStateMask) {
      case kStateIdle:
        if (seq_ge(seq, gp_seq_needed.load(std::memory_order_acquire))) return step_result::kDone;
        gp_start_ns.store(monotonic_ns(), std::memory_order_relaxed);
        SRCU_TRACE(gp_start, name, (seq >> 2) + 1);
        gp_seq.store(seq + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);  // G: pairs with S
        break;
      case kStateScan1:
        if (!readers_idle(static_cast<unsigned>(~index & 1))) return step_result::kBusy;
        SRCU_INJECT("advance: scan 1 done, before the flip");
        std::atomic_thread_fence(std::memory_order_seq_cst);  // E: pairs with B and C
        reader_index().store(index + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);  // D: pairs with C
        gp_seq.store(seq + 1, std::memory_order_relaxed);
        SRCU_INJECT("advance: flipped, before scan 2");
        break;
      case kStateScan2:
        // After the flip the inactive index is the one readers used before it.
        if (!readers_idle(static_cast<unsigned>(~index & 1))) return step_result::kBusy;
        gp_seq.store((seq | kStateMask) + 1, std::memory_order_release);  // R
        *completed = true;
        note_gp_end(seq);
        break;
    }
  }
}

// Called after a grace period ended, with no lock held.
void grace_periods::wake_gp_waiters() noexcept {
  gp_done_word.fetch_add(1, std::memory_order_seq_cst);
  if (waiters.load(std::memory_order_seq_cst) != 0) futex_wake(gp_done_word);
  // Callbacks may have been waiting for this one; the engine moves them on.
  if (cb_waiting_gp.load(std::memory_order_seq_cst)) engine().kick(whole());
}

// The driver role changes hands here. The seq_cst store of `driver` and the
// seq_cst loads after it pair with the seq_cst request() and driver load in
// start_poll()/drive_once(): either the engine sees the role free, or the
// leaving driver sees the larger gp_seq_needed and hands it to the engine.
void grace_periods::release_driver(bool hand_to_engine) noexcept {
  driver.store(false, std::memory_order_seq_cst);
  SRCU_INJECT("release_driver: role released, before the hand-off");
  // Waiters that found the role taken sleep on gp_done_word; one of them
  // takes over if it still needs a grace period.
  if (waiters.load(std::memory_order_seq_cst) != 0) {
    gp_done_word.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(gp_done_word);
  }
  // A woken waiter whose cookie is already done just leaves, and the engine
  // dropped this domain when it found the role taken: hand start_poll()'s
  // outstanding grace periods back to the engine whatever the waiters do.
  if (hand_to_engine && !seq_ge(gp_seq.load(std::memory_order_seq_cst),
                                gp_seq_needed.load(std::memory_order_seq_cst))) {
    engine().kick(whole());
  }
}

step_result grace_periods::step_as_driver(bool* completed) noexcept {
  step_result r;
  {
    mutex_lock lk(mutex);
    r = advance_locked(completed);
  }
  if (*completed) wake_gp_waiters();
  return r;
}

step_result grace_periods::drive_once() noexcept {
  if (driver.load(std::memory_order_seq_cst) ||
      driver.exchange(true, std::memory_order_seq_cst)) {
    return step_result::kDone;  // the driver hands back in release_driver()
  }
  bool completed = false;
  const step_result r = step_as_driver(&completed);
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
  if (took > longest_gp_ns.load(std::memory_order_relaxed)) {
    longest_gp_ns.store(took, std::memory_order_relaxed);
  }
  if (expedited_waiters.load(std::memory_order_relaxed) != 0) {
    expedited_gps.store(expedited_gps.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  SRCU_TRACE(gp_end, name, (seq >> 2) + 1, took);
}

namespace {

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
    if (fast && attempt < 3) {
      sched_yield();  // readers are normally short: let one finish
      return;
    }
    const std::uint64_t base_ns = fast ? 10'000 : 100'000;
    const std::uint64_t cap_ns = fast ? 1'000'000 : 10'000'000;
    const unsigned shift = std::min(attempt, 20u);
    const std::uint64_t ns = std::min(cap_ns, base_ns << shift);
    const std::uint32_t k = kick_word_.load(std::memory_order_acquire);
    futex_wait(kick_word_, k, std::chrono::nanoseconds(ns));
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
  waiters.fetch_add(1, std::memory_order_seq_cst);
  if (expedited) {
    expedited_waiters.fetch_add(1, std::memory_order_relaxed);
    if (driver.load(std::memory_order_seq_cst)) {
      kick_word.fetch_add(1, std::memory_order_release);
      futex_wake(kick_word);  // a normal-mode driver shortens its sleep
    }
  }
  backoff wait(expedited, expedited_waiters, kick_word);
  while (!done(cookie)) {
    if (!driver.load(std::memory_order_seq_cst) &&
        !driver.exchange(true, std::memory_order_acquire)) {
      // This thread drives until its own grace period is over. It stops
      // counting itself as a waiter, so a lone driver makes no futex_wake.
      waiters.fetch_sub(1, std::memory_order_seq_cst);
      while (!done(cookie)) {
        bool completed = false;
        const step_result r = step_as_driver(&completed);
        if (completed) wait.reset();
        // kDone: re-check done(cookie). kBusy with our grace period over
        // (advance_locked went on to start the next one, which readers
        // hold up): leave now rather than after a nap (found by the spin
        // model's review, model/gp_seq.pml).
        if (r != step_result::kBusy || done(cookie)) continue;
        check_stall();
        wait.wait();
      }
      release_driver(/*hand_to_engine=*/true);
      if (expedited) expedited_waiters.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    // Another thread drives: sleep until a grace period ends or it leaves.
    // Not spinning first, on purpose: a spinning waiter keeps its CPU
    // running, so each of the driver's membarrier() calls must interrupt it
    // (measured ~10 us instead of ~0.35 us on the 2-vCPU VM); two callers
    // were 32x slower than one with a spin, 4.8x without.
    const std::uint32_t seen = gp_done_word.load(std::memory_order_seq_cst);
    if (done(cookie)) break;
    if (!driver.load(std::memory_order_seq_cst)) continue;
    futex_wait(gp_done_word, seen, std::chrono::milliseconds(10));
  }
  waiters.fetch_sub(1, std::memory_order_seq_cst);
  if (expedited) expedited_waiters.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace srcu::detail

namespace srcu {

using detail::domain_state;

// Before every wait for a grace period of `s` (and, with `callbacks`, for
// its callbacks): the waits that cannot end are misuse, the others are
// recorded by the deadlock detector (debug builds, lockdep.cc).
static void check_not_in_reader(const domain_state& s, const char* what,
                                bool callbacks = false) noexcept {
  // Signal-safe sections are known only where debug code noted them
  // (detail/reader.h); release code just waits (and a stall is reported).
  if (SRCU_UNLIKELY(detail::thread_in_signal_safe_reader(s.self))) {
    detail::message m;
    m << "srcu: domain '" << s.name << "': " << what
      << " called inside a read_lock_signal_safe() section of the same domain on this thread "
         "(would deadlock)";
    detail::die(m);
  }
  // Always on: the thread's own slot is private to it, so this is exact and
  // cheap next to a grace period.
  switch (s.thread_reader_state()) {
    case domain_state::reader_state::outside:
      detail::lockdep_wait(s, what, callbacks);
      return;
    case domain_state::reader_state::inside: {
      detail::message m;
      m << "srcu: domain '" << s.name << "': " << what
        << " called inside a read-side critical section of the same domain (would deadlock)";
      detail::die(m);
    }
    case domain_state::reader_state::over_unlocked: {
      detail::message m;
      m << "srcu: domain '" << s.name << "': " << what
        << " called on a thread that has unlocked more read-side critical sections than it "
           "locked (read_unlock()/unlock() called twice for one lock)";
      detail::die(m);
    }
  }
}

void domain::synchronize() noexcept {
  check_not_in_reader(*state_, "synchronize()");
  state_->wait_for(state_->snapshot(), /*expedited=*/false);
}

void domain::synchronize_expedited() noexcept {
  check_not_in_reader(*state_, "synchronize_expedited()");
  state_->wait_for(state_->snapshot(), /*expedited=*/true);
}

void domain::cond_synchronize(poll_cookie cookie) noexcept {
  check_not_in_reader(*state_, "cond_synchronize()");
  // Waiting for the cookie's own grace period is enough: it ends after every
  // reader that began before the cookie was taken.
  state_->wait_for(cookie.seq_, /*expedited=*/false);
}

void domain::barrier() noexcept {
  check_not_in_reader(*state_, "barrier()", /*callbacks=*/true);
  state_->barrier();
}

void domain::before_allocating_call() {
  const std::uint64_t limit = state_->backlog_limit();
  if (limit != 0) state_->wait_for_backlog_below(limit);
}

void domain::call(callback_head* head, void (*func)(callback_head*)) noexcept {
  state_->call(head, func);
}

poll_cookie domain::get_poll_cookie() noexcept { return poll_cookie(state_->snapshot()); }

poll_cookie domain::start_poll() noexcept {
  const std::uint64_t cookie = state_->snapshot();
  if (!state_->done(cookie)) {
    state_->request(cookie);
    detail::engine().kick(state_);
  }
  return poll_cookie(cookie);
}

bool domain::poll(poll_cookie cookie) const noexcept { return state_->done(cookie.seq_); }

std::uint64_t domain::grace_periods_completed() const noexcept {
  return state_->completed();
}

}  // namespace srcu
