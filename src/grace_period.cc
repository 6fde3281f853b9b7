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

std::uint64_t domain_state::snapshot() noexcept {
  // Fence S (docs/design.md §2): pairs with G in advance_locked(); without it
  // the caller's unpublish can still be in its store buffer when another
  // driver's A runs, and a cookie that driver ends is done under a reader.
  std::atomic_thread_fence(std::memory_order_seq_cst);  // S: pairs with G
  return seq_snap(gp_seq.load(std::memory_order_acquire));
}

void domain_state::request(std::uint64_t cookie) noexcept {
  std::uint64_t needed = gp_seq_needed.load(std::memory_order_relaxed);
  // Fence H (docs/design.md §2): pairs with release_driver()'s
  // gp_seq_needed load after driver.store(false); without seq_cst here the
  // engine can find the role taken while the leaving driver reads the old
  // need, and nobody drives this cookie's grace period.
  while (!seq_ge(needed, cookie) &&
         !gp_seq_needed.compare_exchange_weak(needed, cookie, std::memory_order_seq_cst,
                                              std::memory_order_relaxed)) {
  }
}

bool domain_state::done(std::uint64_t cookie) const noexcept {
  // Fence R (docs/design.md §2): acquire, pairs with the end of SCAN2 in
  // advance_locked(); without it the caller's free races with the readers.
  return seq_ge(gp_seq.load(std::memory_order_acquire), cookie);  // R
}

// mutex held (the per-block scratch and the chunk list are stable under it).
bool domain_state::readers_idle(unsigned idx) noexcept {
  // Pre-check without the heavy barrier: while readers are visibly inside,
  // a full check (one membarrier, ~10 us with other CPUs busy) would only
  // fail. Liveness only; the decision below is made with A in place.
  const std::uint64_t seen_unlocks = sum_counters(idx, /*locks=*/false);
  const std::uint64_t seen_locks = sum_counters(idx, /*locks=*/true);
  if (static_cast<std::int64_t>(seen_locks - seen_unlocks) > 0) {
    last_active.store(seen_locks - seen_unlocks, std::memory_order_relaxed);
    return false;
  }  // (more unlocks than locks goes on to the full check, which reports it)
  // First pass: every block's unlock count, kept block by block.
  std::uint64_t shard_unlocks[kMaxCallbackShards];
  std::uint64_t unlocks = 0;
  std::uint32_t i = 0;
  for_each_counter_pair([&](const counter_pair& p, const counter_block*) {
    const std::uint64_t u = p.unlocks[idx].load(std::memory_order_acquire);
    (i < slots_handed_out ? scan_unlocks[i] : shard_unlocks[i - slots_handed_out]) = u;
    unlocks += u;
    ++i;
  });
  SRCU_INJECT("readers_idle: after the unlock sum");
  // Fence A (docs/design.md §2): pairs with B and C in the readers
  // (include/srcu/domain.h); without it the sums can miss a reader that reads
  // the old pointer, or count an unlock without its lock: a false idle.
  heavy_barrier();  // A: pairs with B and C
  SRCU_INJECT("readers_idle: after the heavy barrier");
  // Second pass: lock counts. By A (with B and C) a block's locks read now
  // are at least its unlocks read before, for every block, when each lock
  // precedes its unlock. A block with fewer is an unlock without lock on
  // that block; caught here, block by block, because in the sums it would
  // cancel another thread's reader and end the grace period under it.
  std::uint64_t locks = 0;
  i = 0;
  for_each_counter_pair([&](const counter_pair& p, const counter_block* slot) {
    const std::uint64_t l = p.locks[idx].load(std::memory_order_acquire);
    const std::uint64_t u = i < slots_handed_out ? scan_unlocks[i] : shard_unlocks[i - slots_handed_out];
    if (SRCU_UNLIKELY(static_cast<std::int64_t>(l - u) < 0)) report_unlock_without_lock(slot, idx, u - l);
    locks += l;
    ++i;
  });
  const auto active = static_cast<std::int64_t>(locks - unlocks);
  last_active.store(static_cast<std::uint64_t>(active), std::memory_order_relaxed);
  return active == 0;
}

void domain_state::report_unlock_without_lock(const counter_block* slot, unsigned idx,
                                              std::uint64_t extra) const noexcept {
  message m;
  m << "srcu: domain '" << name << "': " << extra << " more unlock(s) than locks on index " << idx;
  if (slot != nullptr) {
    m << " by ";
    describe_slot_owner(m, slot);
    m << ": read_unlock() or unlock() called twice for one read_lock()/lock()";
  } else {
    m << " in the signal-safe/down_read counters: read_unlock_signal_safe() or up_read() "
         "called twice for one token (or a section held across fork() ended in the child)";
  }
  m << "; a grace period would otherwise end with another reader still inside";
  die(m);
}

// mutex held; runs as far as it can without waiting.
step_result domain_state::advance_locked(bool* completed) noexcept {
  for (;;) {
    const std::uint64_t seq = gp_seq.load(std::memory_order_relaxed);
    const std::uint64_t index = self->index_.load(std::memory_order_relaxed);
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
      case kStateScan1:
        if (!readers_idle(static_cast<unsigned>(~index & 1))) return step_result::kBusy;
        SRCU_INJECT("advance: scan 1 done, before the flip");
        // Fence E (docs/design.md §2): pairs with B and C; without it SCAN1
        // may count readers of the new index and retry. Safety does not use it.
        std::atomic_thread_fence(std::memory_order_seq_cst);  // E: pairs with B and C
        self->index_.store(index + 1, std::memory_order_relaxed);
        // Fence D (docs/design.md §2): pairs with C; without it readers take
        // the old index longer and SCAN2 retries more. Liveness only.
        std::atomic_thread_fence(std::memory_order_seq_cst);  // D: pairs with C
        gp_seq.store(seq + 1, std::memory_order_relaxed);
        SRCU_INJECT("advance: flipped, before scan 2");
        break;
      case kStateScan2:
        // After the flip the inactive index is the one readers used before it.
        if (!readers_idle(static_cast<unsigned>(~index & 1))) return step_result::kBusy;
        // Fence R (docs/design.md §2): pairs with the acquire loads in done(),
        // poll(), grace_periods_completed(); without it a waiter's free races
        // with the readers' critical sections in the C++ model (TSan reports it).
        gp_seq.store((seq | kStateMask) + 1, std::memory_order_release);  // R
        *completed = true;
        note_gp_end(seq);
        break;
    }
  }
}

// Called after a grace period ended, with no lock held.
void domain_state::wake_gp_waiters() noexcept {
  // Fence W1 (docs/design.md §2): pairs with wait_for()'s waiters.fetch_add
  // and gp_done_word load; without seq_cst this can read waiters == 0 while
  // a waiter reads the old gp_done_word, and synchronize() sleeps out its
  // 10 ms timeout after its grace period ended.
  gp_done_word.fetch_add(1, std::memory_order_seq_cst);
  if (waiters.load(std::memory_order_seq_cst) != 0) futex_wake(gp_done_word);
  // Callbacks may have been waiting for this one; the engine moves them on.
  // Fence N (docs/design.md §2): pairs with the cb_waiting_gp stores in
  // drain_staged() and advance_ready_locked(), made under the mutex this
  // thread released after ending the grace period; the mutex orders them
  // (seq_cst not needed). Without the kick the segment waits for another.
  if (cb_waiting_gp.load(std::memory_order_seq_cst)) engine().kick(this);
}

// The driver role changes hands here: either the engine sees the role free,
// or the leaving driver sees the larger gp_seq_needed and hands it to the
// engine (Fence H), and a waiter asleep on the role is woken (Fence W2).
void domain_state::release_driver(bool hand_to_engine) noexcept {
  // Fences W2 and H (docs/design.md §2): this store is ordered before the
  // waiters and gp_seq_needed loads below; W2 pairs with wait_for()'s driver
  // load before it sleeps, H with request() then the driver load in
  // drive_once(). Without seq_cst a waiter sleeps out 10 ms with nobody
  // driving (W2), or the engine drops the domain while this load misses its
  // need and no kick follows (H).
  driver.store(false, std::memory_order_seq_cst);
  SRCU_INJECT("release_driver: role released, before the hand-off");
  // Waiters that found the role taken sleep on gp_done_word; one of them
  // takes over if it still needs a grace period.
  // Fence W2 (docs/design.md §2): pairs with wait_for()'s waiters.fetch_add,
  // gp_done_word load and driver load; see driver.store above.
  if (waiters.load(std::memory_order_seq_cst) != 0) {
    gp_done_word.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(gp_done_word);
  }
  // A woken waiter whose cookie is already done just leaves, and the engine
  // dropped this domain when it found the role taken: hand start_poll()'s
  // outstanding grace periods back to the engine whatever the waiters do.
  // Fence H (docs/design.md §2): the gp_seq_needed load pairs with request()
  // in start_poll()/engine_step() and the driver load in drive_once(); the
  // gp_seq load needs no order (a stale value only adds a kick).
  if (hand_to_engine && !seq_ge(gp_seq.load(std::memory_order_seq_cst),
                                gp_seq_needed.load(std::memory_order_seq_cst))) {
    engine().kick(this);
  }
}

step_result domain_state::drive_once() noexcept {
  // Fence H (docs/design.md §2): after the engine's request(), pairs with
  // release_driver()'s driver.store(false) then gp_seq_needed load; without
  // seq_cst the engine sees the role taken, the leaving driver misses the
  // need, and the grace period is never started.
  if (driver.load(std::memory_order_seq_cst) ||
      driver.exchange(true, std::memory_order_seq_cst)) {
    return step_result::kContended;  // the driver hands back in release_driver()
  }
  bool completed = false;
  step_result r;
  {
    std::lock_guard lk(mutex);
    r = advance_locked(&completed);
  }
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
void domain_state::check_stall() noexcept {
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
  pool().request_stall_report(this);
}

// mutex held: a grace period that began at gp_start_ns has just ended.
void domain_state::note_gp_end(std::uint64_t seq) noexcept {
  const std::uint64_t took = monotonic_ns() - gp_start_ns.load(std::memory_order_relaxed);
  if (took > longest_gp_ns.load(std::memory_order_relaxed)) {
    longest_gp_ns.store(took, std::memory_order_relaxed);
  }
  if (expedited_waiters.load(std::memory_order_relaxed) != 0) {
    expedited_gps.store(expedited_gps.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  SRCU_TRACE(gp_end, name, (seq >> 2) + 1, took);
}

// Backlog above which the engine stops holding callbacks back for
// callback_delay: batching is for a trickle of call()s; under a flood every
// drain already carries thousands, and holding them only grows the backlog.
constexpr std::uint64_t kHurryBacklog = 10'000;

// The engine's step for one domain: stage callbacks into segments, drive
// the grace period as far as it goes without waiting, hand ready callbacks to
// the callback pool. Never blocks and never runs user code; kRetry when
// readers are still inside.
service_result engine_step(domain_state* d) {
  // Fence K (docs/design.md §2): this first load only skips idle domains
  // (seq_cst not needed); the exchange below is K's engine end.
  if (d->cb_staged.load(std::memory_order_seq_cst)) {
    // Batching (domain_options::callback_delay): within the delay after the
    // last drain, leave the staging alone; cb_staged stays set, so call()s
    // meanwhile make no kick, and the service steps this domain again when
    // the delay is over. A barrier() waiter cuts it short (it counts itself
    // in cb_hurry, then kicks), and so does a flood.
    const std::uint64_t now = monotonic_ns();
    const std::uint64_t due =
        d->cb_last_drain_ns == 0 ? 0 : d->cb_last_drain_ns + d->cb_delay_ns;  // 0: never drained
    // Fence BH (docs/design.md §2): the cb_hurry raised by stage_markers()
    // or wait_for_backlog_below() reaches this load through their kick that
    // follows (Q1, Q2), not through seq_cst; a load that misses it holds
    // the staging and barrier() waits out callback_delay.
    // Fence K (docs/design.md §2): the exchange(false) below pairs with
    // stage()'s push and cb_staged load/exchange; with drain_staged()'s
    // exchanges after it, a push this drain misses was made by a call that
    // sees the flag clear and kicks. Without seq_cst the push stays staged
    // with no kick pending.
    if (now < due && d->cb_hurry.load(std::memory_order_seq_cst) == 0 &&
        d->callbacks_pending() < kHurryBacklog) {
      d->engine_slot.step_again_at_ns = due;
    } else if (d->cb_staged.exchange(false, std::memory_order_seq_cst)) {  // K: pairs with call()
      d->cb_last_drain_ns = now;
      d->drain_staged();
    }
  }
  const step_result r = d->drive_once();
  bool ready;
  {
    std::lock_guard lk(d->mutex);
    ready = d->advance_ready_locked();
  }
  if (ready) pool().enqueue(d);
  if (r != step_result::kBusy) return service_result::kDone;
  // Readers are inside. A grace period stalled for a long time (a blocked
  // reader) is polled at a quarter of its age, at most once a second: it
  // ends at most that much later than it could, and 100,000 stalled
  // domains cost the engine a fraction of a CPU instead of most of one.
  const std::uint64_t started = d->gp_start_ns.load(std::memory_order_relaxed);
  const std::uint64_t age = monotonic_ns() - started;
  d->engine_slot.retry_floor_ns = std::min<std::uint64_t>(age / 4, 1'000'000'000);
  return service_result::kRetry;
}

namespace {

// How long the driver waits between reader scans. Each scan costs a heavy
// barrier, so even the expedited mode does not spin on it.
class backoff {
 public:
  explicit backoff(bool expedited) : expedited_(expedited) {}
  void reset() { attempt_ = 0; }
  void wait(domain_state& d) {
    const bool fast = expedited_ || d.expedited_waiters.load(std::memory_order_relaxed) != 0;
    const unsigned attempt = attempt_++;
    if (fast && attempt < 3) {
      sched_yield();  // readers are normally short: let one finish
      return;
    }
    const std::uint64_t base_ns = fast ? 10'000 : 100'000;
    const std::uint64_t cap_ns = fast ? 1'000'000 : 10'000'000;
    const unsigned shift = std::min(attempt, 20u);
    const std::uint64_t ns = std::min(cap_ns, base_ns << shift);
    // Fence X (docs/design.md §2): pairs with wait_for()'s kick_word bump for
    // an expedited caller; best effort, bounded by this nap: a bump before
    // this load is lost and the caller waits out the nap.
    const std::uint32_t k = d.kick_word.load(std::memory_order_acquire);
    futex_wait(d.kick_word, k, std::chrono::nanoseconds(ns));
  }

 private:
  bool expedited_;
  unsigned attempt_ = 0;
};

}  // namespace

void domain_state::wait_for(std::uint64_t cookie, bool expedited) {
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
    // load; best effort (a kick the driver misses costs one nap), so the
    // seq_cst on this load is not needed.
    if (driver.load(std::memory_order_seq_cst)) {
      kick_word.fetch_add(1, std::memory_order_release);
      futex_wake(kick_word);  // a normal-mode driver shortens its sleep
    }
  }
  backoff wait(expedited);
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
      while (!done(cookie)) {
        bool completed = false;
        step_result r;
        {
          std::lock_guard lk(mutex);
          r = advance_locked(&completed);
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
        wait.wait(*this);
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
  if (state_->cb_backlog_limit != 0) state_->wait_for_backlog_below(state_->cb_backlog_limit);
}

void domain::call(callback_head* head, void (*func)(callback_head*)) noexcept {
  state_->call(head, func);
}

poll_cookie domain::get_poll_cookie() noexcept { return poll_cookie(state_->snapshot()); }

poll_cookie domain::start_poll() noexcept {
  const std::uint64_t cookie = state_->snapshot();
  if (!state_->done(cookie)) {
    // Fence H (docs/design.md §2): request() is seq_cst; the engine this
    // kicks checks the driver role after it, and release_driver() re-kicks
    // the engine if a leaving driver sees this need unmet.
    state_->request(cookie);
    detail::engine().kick(state_);
  }
  return poll_cookie(cookie);
}

bool domain::poll(poll_cookie cookie) const noexcept { return state_->done(cookie.seq_); }

std::uint64_t domain::grace_periods_completed() const noexcept {
  // Fence R (docs/design.md §2): acquire, pairs with the end of SCAN2.
  return state_->gp_seq.load(std::memory_order_acquire) >> 2;
}

}  // namespace srcu
