// Callbacks: call() stages, the engine assigns grace periods, the callback
// pool (callback_pool.h) runs them or hands them to the domain's executor.
//
//   call()        ticket on its thread's shard, Treiber push, and a kick of
//                 the engine only if nothing is staged yet. No lock, no
//                 allocation, no blocking; async-signal-safe.
//   engine        drain_staged(): takes every shard's stack, restores FIFO
//                 order, tags the lot with a cookie taken after the drain
//                 (so its grace period starts after the callbacks were
//                 queued), merges it into one of at most two waiting
//                 segments, and requests the grace period. When a segment's
//                 cookie is done it moves to `ready` and the domain joins
//                 the pool's run queue.
//   worker        dispatch_callbacks(): takes at most kBatchLimit ready
//                 callbacks as one batch (at most one outstanding per
//                 domain) and runs it, or submits it to the domain's
//                 executor, with no lock held.
//   barrier()     returns at once if every ticket has been invoked;
//                 otherwise pushes a marker callback onto every shard (as
//                 the kernel's srcu_barrier() entrains one per CPU) and
//                 waits until all markers ran. A shard's callbacks run in
//                 FIFO order, so every callback queued before barrier() has
//                 then returned.
//
// Ordering of a thread's callbacks: one thread always uses one shard (a
// per-thread index, initial-exec TLS: no allocation, signal-safe), a shard
// drains in FIFO order, segments are ordered by cookie, and batches of a
// domain never overlap.
//
// Which waits are legal (docs/design.md, "Callback delivery"): a thread that
// is running domain X's callbacks, or X's executor submit(), may not wait for
// X's callbacks (barrier(), ~domain(), a bounded call(F)): X's next batch
// cannot start before the current one ends. Every other wait is legal from
// any callback or submit(): the pool adds a worker when all are busy.

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "callback_pool.h"
#include "diagnostics.h"
#include "domain_state.h"
#include "fault_injection.h"
#include "futex.h"
#include "lockdep.h"
#include "trace.h"
#include "service.h"

namespace srcu::detail {

// The domain whose callbacks (or executor submit()) this thread is running;
// nullptr outside. Decides which waits are legal on this thread.
constinit thread_local domain_state* tls_running_callbacks SRCU_TLS_MODEL = nullptr;

// The batch this thread is running (the innermost callback_batch::run()),
// so that rcu_synchronize() from inside one of its callbacks can run the
// rest of it, and what became ready after it, inline and in order
// (run_queued_inline()). Callbacks are always taken from here, never from a
// local list, so a nested run cannot overtake an outer one.
struct batch_cursor {
  domain_state* owner;
  callback_head* next;     // not yet run, in order
  std::size_t taken = 0;   // callbacks (not markers) added from cb_ready inline
};
constinit thread_local batch_cursor* tls_batch_cursor SRCU_TLS_MODEL = nullptr;

namespace {

constinit thread_local std::uint32_t tls_callback_shard SRCU_TLS_MODEL = 0;  // shard + 1
constinit std::atomic<std::uint32_t> g_next_callback_shard{0};

std::uint32_t this_thread_callback_shard() noexcept {
  std::uint32_t s = tls_callback_shard;
  if (SRCU_UNLIKELY(s == 0)) {
    s = g_next_callback_shard.fetch_add(1, std::memory_order_relaxed) + 1;
    tls_callback_shard = s;
  }
  return s - 1;
}

// barrier()'s marker: one per shard, on barrier()'s stack.
struct barrier_marker {
  callback_head head;
  std::atomic<std::uint32_t>* remaining;
};

void barrier_marker_ran(callback_head* h) {
  std::atomic<std::uint32_t>* remaining = reinterpret_cast<barrier_marker*>(h)->remaining;
  // After the last decrement barrier() may return and its frame (with
  // *remaining) be reused: the wake only passes the address to the kernel,
  // and a stray wake of an unrelated futex waiter is a spurious wake, which
  // every futex wait in srcu tolerates.
  // Fence BM (docs/design.md §2): pairs with barrier()'s acquire load of
  // `remaining` and its futex_wait; the last decrement changes the word, so
  // a waiter with a stale count returns at once. Without acq_rel barrier()
  // can return before the callbacks' effects are visible to it.
  if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1) futex_wake(*remaining);
}

bool is_barrier_marker(const callback_head* h) noexcept { return h->func == &barrier_marker_ran; }

// Runs the cursor's callbacks until none is left (each may add more, or
// empty it from a nested run).
void run_cursor(batch_cursor& cursor) noexcept {
  while (callback_head* const cb = cursor.next) {
    cursor.next = cb->next;
    if (SRCU_TRACING(callback_invoke) && !is_barrier_marker(cb)) {
      SRCU_TRACE(callback_invoke, cursor.owner->name, cursor.owner->completed());
    }
    void (*const func)(callback_head*) = cb->func;
    cb->next = nullptr;
    cb->func = nullptr;  // the head may be queued again from here on
    func(cb);            // may free cb
  }
}

}  // namespace

namespace {
// domain_options::callback_delay in ns. Saturating: microseconds::max()
// ("only barrier() hurries them") must not overflow into a short delay.
// Capped at about 292 years.
std::uint64_t delay_ns(std::chrono::microseconds delay) noexcept {
  constexpr std::int64_t kMaxDelayUs = std::numeric_limits<std::int64_t>::max() / 1000 / 2;
  const std::int64_t us = delay.count();
  return us <= 0 ? 0 : static_cast<std::uint64_t>(std::min(us, kMaxDelayUs)) * 1000;
}
}  // namespace

callback_queue::callback_queue(domain* self, const domain_options& options, shard_block* small_shard)
    : grace_periods(self, options, small_shard),
      cb_executor(options.callback_executor),
      cb_delay_ns(delay_ns(options.callback_delay)),
      cb_backlog_limit(options.callback_backlog_limit) {}

void callback_queue::segment::append(segment& other) noexcept {
  if (other.empty()) return;
  if (empty()) {
    head = other.head;
  } else {
    tail->next = other.head;
  }
  tail = other.tail;
  count += other.count;
  other = segment{};
}

namespace {
// Lock-free push onto one shard's staging stack.
void push_staged(shard_block& shard, callback_head* head) noexcept {
  callback_head* top = shard.staged.load(std::memory_order_relaxed);
  // Fence K (docs/design.md §2): the push is seq_cst, see stage().
  do {
    head->next = top;
  } while (!shard.staged.compare_exchange_weak(top, head, std::memory_order_seq_cst,
                                               std::memory_order_relaxed));
}

// call()'s checks of its arguments, then marks the head queued.
void take_head(const char* name, callback_head* head, void (*func)(callback_head*)) noexcept {
  if (SRCU_UNLIKELY(head == nullptr || func == nullptr)) {
    die(name, "call() with a null callback_head or a null function");
  }
  // srcu clears func before invoking, so a non-null func means "queued".
  if (SRCU_UNLIKELY(head->func != nullptr)) {
    die(name, "call(): this callback_head is already queued (queued twice before its "
              "callback ran)");
  }
  head->func = func;
}
}  // namespace

// Push, then make sure the engine will drain it. Shared by call() and
// barrier()'s markers.
void callback_queue::stage(shard_block& shard, callback_head* head) noexcept {
  push_staged(shard, head);
  SRCU_INJECT("call: pushed, before the staged flag");
  // Fence K (docs/design.md §2): pairs with engine_step()'s exchange of
  // cb_staged before drain_staged() (all seq_cst): either the engine drains
  // after this push, or this call sees the flag clear and kicks it. Without K
  // the call can read the flag still set after the engine cleared it and
  // drained without this push: no kick, and the callback stays staged until
  // the next call() or barrier().
  if (!cb_staged.load(std::memory_order_seq_cst) &&
      !cb_staged.exchange(true, std::memory_order_seq_cst)) {
    engine().kick(whole());
  }
}

// A domain whose state is not made yet (a call() on it from a signal
// handler, say, may not allocate): the ticket and the push go to the small
// block it was born with, as call() would put them there; the engine makes
// the state on the kick and drains them (state_maker::act_on_asks()).
// Fences BT and K as in call(): the ticket before the push, the push
// before the ask's kick (Q2), which the engine takes before it drains.
void callback_queue::call_without_state(domain& d, callback_head* head,
                                        void (*func)(callback_head*)) noexcept {
  take_head(d.name(), head, func);
  SRCU_TRACE(call, d.name(), std::uint64_t{0});
  shard_block& small = *state_maker::born_shards(d);
  small.enqueued.fetch_add(1, std::memory_order_seq_cst);  // BT
  SRCU_INJECT("call: ticket taken, before the push");
  push_staged(small, head);
  state_maker::ask(d, kick_node::kAskCallbacks);
}

void callback_queue::note_staged() noexcept {
  // Fence K (docs/design.md §2): as stage()'s exchange; the engine's step
  // after this drains (its exchange(false) reads this store or a later one).
  cb_staged.store(true, std::memory_order_seq_cst);
}

void callback_queue::call(callback_head* head, void (*func)(callback_head*)) noexcept {
  take_head(name, head, func);
  SRCU_TRACE(call, name, completed());
  // Fence ST (docs/design.md §2), in shards(): pairs with grow_shards().
  const shard_table t = shards();
  shard_block& own = t.first[this_thread_callback_shard() & (std::min(t.count, kStagingShards) - 1)];
  // The small table: ask once for the full one (no allocation, no lock).
  if (SRCU_UNLIKELY(t.first == small_shard) && want_shards()) engine().kick(whole());
  // Ticket before the push: callbacks_pending() counts it from here on, so
  // neither barrier() nor ~domain() can report "nothing queued" while it is
  // on its way.
  // Fence BT (docs/design.md §2): pairs with callbacks_pending()'s loads and
  // barrier()'s queued_before; release/acquire is enough (seq_cst is not
  // needed). Without it barrier() or ~domain() can count this callback as
  // run while it is still on its way.
  const std::uint64_t ticket = own.enqueued.fetch_add(1, std::memory_order_seq_cst);
  SRCU_INJECT("call: ticket taken, before the push");
  stage(own, head);
  if (SRCU_UNLIKELY((ticket & (kFloodCheckEvery - 1)) == kFloodCheckEvery - 1)) {
    catch_up_with_flood();
  }
}

std::uint64_t callback_queue::callbacks_owed() const noexcept {
  const std::uint64_t pending = callbacks_pending();
  const std::uint64_t waiting = cb_gp_waiting.load(std::memory_order_relaxed);
  return pending > waiting ? pending - waiting : 0;  // the two reads race: clamp
}

// Floods (issue 9): call() never blocks and never waits for another thread,
// but a thread that queues callbacks faster than srcu's threads can take
// them (drain, run) pays for it with its own CPU time: every
// kFloodCheckEvery-th call() on a shard looks at the work srcu owes, and
// while that is above kFloodHighWater it yields the CPU, at most
// kFloodMaxYields times. A yield hands the CPU to another runnable thread;
// srcu's engine and workers are runnable exactly when they owe work. No
// lock, no wait on any condition, a raw system call (async-signal-safe).
// Callbacks waiting for a grace period do not count: a reader blocked for
// seconds makes them wait, and slowing call() would not help it.
void callback_queue::catch_up_with_flood() noexcept {
  for (std::uint32_t y = 0; y < kFloodMaxYields && callbacks_owed() > kFloodHighWater; ++y) {
    ::syscall(SYS_sched_yield);
  }
}

void callback_queue::drain_staged() {
  // The table's staging blocks are taken before the small block, but the
  // small block's callbacks go first: a thread whose call()s moved from the
  // small block to the table when it was published keeps its order. If a
  // later one is taken from the table here, the small block's exchange
  // after it sees every earlier one (Fence K: all seq_cst).
  shard_block* blocks[kMaxStagingBlocks];
  std::uint32_t n = 0;
  for_each_staging_shard([&](shard_block& b) { blocks[n++] = &b; });  // small first
  segment parts[kMaxStagingBlocks];
  for (std::uint32_t s = n; s-- > 0;) {
    // Fence K (docs/design.md §2): after engine_step()'s cb_staged
    // exchange; pairs with stage()'s push and flag load. Without seq_cst a
    // push this misses may belong to a call that saw the flag set: no kick.
    callback_head* list = blocks[s]->staged.exchange(nullptr, std::memory_order_seq_cst);
    segment& part = parts[s];
    part.tail = list;  // newest first: the head of the stack becomes the tail
    while (list != nullptr) {
      callback_head* next = list->next;
      list->next = part.head;
      part.head = list;
      part.count += !is_barrier_marker(list);
      list = next;
    }
  }
  segment fresh;
  for (std::uint32_t s = 0; s < n; ++s) {
    if (!parts[s].empty()) fresh.append(parts[s]);
  }
  if (fresh.empty()) return;
  // A grace period that starts after these were queued. Kept apart: append()
  // empties `fresh` (requesting fresh.cookie afterwards asked for cookie 0
  // and left merged callbacks waiting for ever; found by srcu-torture).
  SRCU_INJECT("drain: staging taken, before the cookie");
  const std::uint64_t cookie = snapshot();
  fresh.cookie = cookie;
  {
    mutex_lock lk(mutex);
    advance_ready_locked();
    // Cookies are snapshots of one sequence taken in order by this (the
    // engine) thread, so a fresh cookie is >= every waiting one, and at most
    // two distinct ones are ever waiting: the grace period in flight and the
    // next. A fresh cookie equal to neither would be a third: after
    // advance_ready_locked() that cannot happen, because the oldest is done.
    if (!cb_wait[0].empty() && cb_wait[0].cookie == cookie) {
      cb_wait[0].append(fresh);
    } else if (cb_wait[0].empty()) {
      cb_wait[0] = fresh;
    } else {
      cb_wait[1].append(fresh);
      cb_wait[1].cookie = cookie;
    }
    // Fence N (docs/design.md §2): pairs with wake_gp_waiters()'s load; the
    // mutex orders them (seq_cst not needed). Without it a user thread that
    // ends this cookie's grace period does not kick the engine.
    set_callbacks_waiting(true);
    cb_gp_waiting.store(cb_wait[0].count + cb_wait[1].count, std::memory_order_relaxed);
  }
  request_for_engine(cookie);  // no waiter drives it: a leaving driver hands it back
}

// Backlog above which the engine stops holding callbacks back for
// callback_delay: batching is for a trickle of call()s; under a flood every
// drain already carries thousands, and holding them only grows the backlog.
constexpr std::uint64_t kHurryBacklog = 10'000;

std::uint64_t callback_queue::drain_staged_when_due() noexcept {
  // Fence K (docs/design.md §2): this first load only skips idle domains
  // (seq_cst not needed); the exchange below is K's engine end.
  if (!cb_staged.load(std::memory_order_seq_cst)) return 0;
  // Batching (domain_options::callback_delay): within the delay after the
  // last drain, leave the staging alone; cb_staged stays set, so call()s
  // meanwhile make no kick, and the service steps this domain again when
  // the delay is over. A barrier() waiter cuts it short (it counts itself
  // in cb_hurry, then kicks), and so does a flood.
  const std::uint64_t now = monotonic_ns();
  const std::uint64_t due = cb_last_drain_ns == 0 ? 0 : cb_last_drain_ns + cb_delay_ns;  // 0: never drained
  // Fence BH (docs/design.md §2): the cb_hurry raised by stage_markers()
  // or wait_for_backlog_below() reaches this load through their kick that
  // follows (Q1, Q2), not through seq_cst; a load that misses it holds
  // the staging and barrier() waits out callback_delay.
  if (now < due && cb_hurry.load(std::memory_order_seq_cst) == 0 && callbacks_pending() < kHurryBacklog) {
    return due;
  }
  // Fence K (docs/design.md §2): the exchange(false) below pairs with
  // stage()'s push and cb_staged load/exchange; with drain_staged()'s
  // exchanges after it, a push this drain misses was made by a call that
  // sees the flag clear and kicks. Without seq_cst the push stays staged
  // with no kick pending.
  if (cb_staged.exchange(false, std::memory_order_seq_cst)) {  // K: pairs with call()
    cb_last_drain_ns = now;
    drain_staged();
  }
  return 0;
}

bool callback_queue::move_ready() noexcept {
  mutex_lock lk(mutex);
  return advance_ready_locked();
}

bool callback_queue::advance_ready_locked() noexcept {
  while (!cb_wait[0].empty() && done(cb_wait[0].cookie)) {
    cb_ready.append(cb_wait[0]);
    cb_wait[0] = cb_wait[1];
    cb_wait[1] = segment{};
  }
  // Fence N (docs/design.md §2): pairs with wake_gp_waiters()'s load, under
  // the mutex (seq_cst not needed); see drain_staged().
  set_callbacks_waiting(!cb_wait[0].empty());
  cb_gp_waiting.store(cb_wait[0].count + cb_wait[1].count, std::memory_order_relaxed);
  return !cb_ready.empty();
}

// A worker's turn for one domain (callback_pool.cc): one batch, no lock held
// while it runs or is submitted.
void callback_queue::dispatch_batch() noexcept {
  callback_head* head;
  std::size_t size = 0;
  {
    mutex_lock lk(mutex);
    if (cb_batch_out || cb_ready.empty()) return;
    head = cb_ready.head;
    callback_head* last = head;
    std::uint32_t taken = 1;
    size += !is_barrier_marker(last);
    while (taken < callback_pool::kBatchLimit && last->next != nullptr) {
      last = last->next;
      ++taken;
      size += !is_barrier_marker(last);
    }
    cb_ready.head = last->next;
    cb_ready.count -= size;
    if (cb_ready.head == nullptr) cb_ready.tail = nullptr;
    last->next = nullptr;
    cb_batch_out = true;
  }
  callback_batch b(whole(), head, size);
  // A batch of nothing but barrier() markers runs no user code: it is run
  // here, in order (the domain's previous batch has completed), and the
  // executor is not bothered with it.
  if (cb_executor != nullptr && size != 0) {
    domain_state* const outer = tls_running_callbacks;
    tls_running_callbacks = whole();  // inside d's submit(): waits for d's callbacks are misuse
    cb_executor->submit(std::move(b));
    tls_running_callbacks = outer;
  } else {
    b.run();
  }
}

// From before the first callback of a batch to complete_batch()'s last touch
// of the domain, ~domain() must not free it: a barrier() marker in the batch
// may let a ~domain() elsewhere see nothing pending while the running frame
// still has complete_batch() to run (found by srcu-torture's domain churn: a
// marker-only batch on an executor thread, then a use after free).
void callback_queue::batch_started() noexcept {
  // Fence BC (docs/design.md §2): pairs with wait_for_completing_batches()'s
  // acquire load; the increment reaches it by happens-before (a marker's
  // remaining decrement, or the cb_invoked add), so seq_cst is not needed.
  // Without the count ~domain() frees the domain under complete_batch().
  cb_completing.fetch_add(1, std::memory_order_seq_cst);
}

void callback_queue::wait_for_completing_batches() const noexcept {
  // Fence BC (docs/design.md §2): acquire, pairs with complete_batch()'s
  // release decrement; without it ~domain() frees what complete_batch() is
  // still writing.
  while (cb_completing.load(std::memory_order_acquire) != 0) sched_yield();
}

// Called by callback_batch::run() after the batch's callbacks, with
// cb_completing already raised by run() (before its first callback).
void callback_queue::complete_batch(std::size_t size) noexcept {
  SRCU_INJECT("complete_batch: callbacks ran, before counting them");
  bool more;
  {
    mutex_lock lk(mutex);
    cb_batch_out = false;
    more = !cb_ready.empty();
  }
  // Release: callbacks_pending() acquires it; the callbacks happen-before a
  // ~domain() or barrier() that sees them counted.
  // Fences BT and BH (docs/design.md §2): BT pairs with the cb_invoked load
  // in callbacks_pending() (release is enough; seq_cst is not needed); for
  // BH it is ordered before the cb_done_word bump that barrier() acquires.
  cb_invoked.fetch_add(size, std::memory_order_seq_cst);
  // Fence BH (docs/design.md §2): pairs with cb_hurry.fetch_add then the
  // cb_done_word load in barrier() and wait_for_backlog_below(); without
  // seq_cst this can read cb_hurry == 0 while the waiter reads the old word,
  // and the waiter sleeps out 10 ms per batch.
  cb_done_word.fetch_add(1, std::memory_order_seq_cst);
  if (cb_hurry.load(std::memory_order_seq_cst) != 0) futex_wake(cb_done_word);
  if (more) pool().enqueue(whole());
  // Fence BC (docs/design.md §2): pairs with ~domain()'s acquire load of
  // cb_completing; without release ~domain() can free this state while the
  // lines above still touch it.
  cb_completing.fetch_sub(1, std::memory_order_release);  // last touch of *this
}

void callback_queue::fill_stats(domain_stats& s) const noexcept {
  s.callbacks_queued = tickets();
  s.callbacks_invoked = cb_invoked.load(std::memory_order_relaxed);
}

std::uint64_t callback_queue::tickets() const noexcept {
  std::uint64_t enqueued = 0;
  for_each_staging_shard([&](const shard_block& b) {
    // Fence BT (docs/design.md §2): pairs with call()'s ticket; a call that
    // happens-before this is counted (seq_cst not needed). Without it
    // barrier() or ~domain() could miss a callback on its way.
    enqueued += b.enqueued.load(std::memory_order_seq_cst);
  });
  return enqueued;
}

std::uint64_t callback_queue::callbacks_pending() const noexcept {
  // Invocations first: every invocation counted has its ticket counted too,
  // so the difference is never negative.
  // Fence BT (docs/design.md §2): pairs with complete_batch()'s cb_invoked
  // add and call()'s ticket; acquire is enough (seq_cst not needed). Without
  // it the difference can underflow, or read 0 with a callback on its way.
  const std::uint64_t invoked = cb_invoked.load(std::memory_order_seq_cst);
  return tickets() - invoked;
}

bool callback_queue::running_own_callbacks() const noexcept {
  return tls_running_callbacks == this;
}

void callback_queue::check_may_wait_for_callbacks(const char* what) const noexcept {
  if (SRCU_UNLIKELY(tls_running_callbacks == this)) {
    message m;
    m << "srcu: domain '" << name << "': " << what
      << " called from inside one of this domain's own callbacks or its executor's submit() "
         "(it would wait for the batch it is part of)";
    die(m);
  }
}

void callback_queue::barrier() {
  check_may_wait_for_callbacks("barrier()");
  if (callbacks_pending() == 0) return;  // every callback queued so far has returned
  // Fence BT (docs/design.md §2), in tickets(): pairs with call()'s ticket;
  // a call that happens-before barrier() is counted.
  const std::uint64_t queued_before = tickets();  // callbacks queued before this point
  std::atomic<std::uint32_t> remaining{0};
  barrier_marker markers[kMaxStagingBlocks];
  stage_markers(markers, remaining);
  for (;;) {
    // Fence BM (docs/design.md §2): pairs with barrier_marker_ran()'s
    // acq_rel decrement and wake; without acquire this can return before
    // the callbacks' effects are visible here.
    const std::uint32_t left = remaining.load(std::memory_order_acquire);
    if (left == 0) break;
    futex_wait(remaining, left, std::chrono::nanoseconds(0));
  }
  // The markers ran in a batch that counts its callbacks when it completes:
  // wait for that count too, so that what barrier() waited for is also in
  // domain::stats() (callbacks_invoked) when it returns. complete_batch()
  // wakes cb_done_word while cb_hurry (raised by stage_markers) is non-zero.
  for (;;) {
    // Fence BH (docs/design.md §2): pairs with complete_batch()'s
    // cb_done_word bump then cb_hurry load (cb_hurry raised in
    // stage_markers() before this); either it wakes us, or `seen` includes
    // its bump and acquires the cb_invoked add. Without seq_cst this sleeps
    // out 10 ms after the batch was counted.
    const std::uint32_t seen = cb_done_word.load(std::memory_order_seq_cst);
    if (cb_invoked.load(std::memory_order_seq_cst) >= queued_before) break;
    futex_wait(cb_done_word, seen, std::chrono::milliseconds(10));
  }
  // BH (docs/design.md §2): lowering cb_hurry needs no order (a spare wake).
  cb_hurry.fetch_sub(1, std::memory_order_seq_cst);
}

void callback_queue::stage_markers(void* marker_array, std::atomic<std::uint32_t>& remaining) noexcept {
  auto* markers = static_cast<barrier_marker*>(marker_array);
  // Hurry: the engine skips callback_delay while this is non-zero (the
  // caller lowers it when its markers have run).
  // Fence BH (docs/design.md §2): pairs with complete_batch()'s cb_done_word
  // bump then cb_hurry load, before barrier() reads cb_done_word; without
  // seq_cst complete_batch() can skip the wake barrier() sleeps on. The
  // engine_step() load is ordered by the kick below, not by seq_cst.
  cb_hurry.fetch_add(1, std::memory_order_seq_cst);
  // One marker on every block call() may have staged on (a call that
  // happens-before this saw a table this sees too). `remaining` is set
  // before the first push, whose seq_cst CAS publishes it to the marker.
  shard_block* blocks[kMaxStagingBlocks];
  std::uint32_t n = 0;
  for_each_staging_shard([&](shard_block& b) { blocks[n++] = &b; });
  remaining.store(n, std::memory_order_relaxed);
  for (std::uint32_t s = 0; s < n; ++s) {
    markers[s].head.func = &barrier_marker_ran;
    markers[s].remaining = &remaining;
    stage(*blocks[s], &markers[s].head);
  }
  // The engine may be holding the staging back for callback_delay: make it
  // look now (it reads cb_hurry after this wake).
  engine().kick(whole());
}

// rcu_synchronize() inside one of this domain's callbacks: the callbacks
// queued before it cannot run after it (the batch it is part of must end
// first), so they run here, in order. While this thread's batch is out
// (cb_batch_out), no worker takes cb_ready, so this thread is the only one
// running the domain's callbacks and order is kept: first the rest of the
// current batch, then cb_ready as grace periods move callbacks there, until
// markers staged behind everything queued before the call have run.
bool callback_queue::run_queued_inline() noexcept {
  batch_cursor* const cursor = tls_batch_cursor;
  if (cursor == nullptr || cursor->owner != this) return false;  // in submit(): not a batch
  run_cursor(*cursor);
  std::atomic<std::uint32_t> remaining{0};
  barrier_marker markers[kMaxStagingBlocks];
  stage_markers(markers, remaining);
  // Fence BM (docs/design.md §2): this thread runs its own markers, so the
  // acquire load only pairs with their decrement in barrier_marker_ran().
  while (remaining.load(std::memory_order_acquire) != 0) {
    // Fence W3 (docs/design.md §2): a bounded 1 ms poll of the bump in
    // wake_gp_waiters(), which does not wake this thread (it is not counted
    // in waiters); seq_cst is not needed.
    const std::uint32_t seen = gp_end_word();
    {
      mutex_lock lk(mutex);
      advance_ready_locked();
      cursor->next = cb_ready.head;  // the cursor is empty here
      cursor->taken += cb_ready.count;
      cb_ready = segment{};
    }
    if (cursor->next != nullptr) {
      run_cursor(*cursor);
    } else {
      // The engine drains the markers and drives their grace period; no
      // wake is registered, so poll every millisecond.
      wait_for_gp_end(seen, std::chrono::milliseconds(1));
    }
  }
  // BH (docs/design.md §2): lowering cb_hurry needs no order (a spare wake).
  cb_hurry.fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

void callback_queue::wait_for_backlog_below(std::uint64_t limit) noexcept {
  // Never waits where that could deadlock: inside this domain's callbacks or
  // submit() (their batch must end first), or inside a reader of this
  // domain (grace periods wait for it: folly#1211). There the call goes
  // over the limit instead.
  if (tls_running_callbacks == this || thread_in_reader()) return;
  if (callbacks_pending() < limit) return;
  lockdep_wait(self, name, "call(F)/retire() over callback_backlog_limit", /*callbacks=*/true);
  // Fence BH (docs/design.md §2): pairs with complete_batch()'s cb_done_word
  // bump then cb_hurry load, before the cb_done_word load below; without
  // seq_cst complete_batch() can skip the wake this loop sleeps on.
  cb_hurry.fetch_add(1, std::memory_order_seq_cst);
  engine().kick(whole());
  for (;;) {
    // Fence BH (docs/design.md §2): pairs with complete_batch()'s bump then
    // cb_hurry load; either it wakes us or `seen` includes its bump. Without
    // seq_cst this sleeps out 10 ms per completed batch.
    const std::uint32_t seen = cb_done_word.load(std::memory_order_seq_cst);
    if (callbacks_pending() < limit) break;
    futex_wait(cb_done_word, seen, std::chrono::milliseconds(10));
  }
  // BH (docs/design.md §2): lowering cb_hurry needs no order (a spare wake).
  cb_hurry.fetch_sub(1, std::memory_order_seq_cst);
}

void callback_queue::check_no_readers_at_destruction() noexcept {
  // A domain that never had a reader of any flavour (no slot handed out, no
  // shard lock counted) has none now: no heavy barrier for it, so creating
  // and destroying unused domains stays cheap. (A reader racing with the
  // destructor breaks its precondition either way; this check is for the
  // message, not for the safety of any grace period.)
  if (!ever_had_readers()) return;
  for (;;) {
    bool idle;
    bool batch_out;
    // Fence BD (docs/design.md §2): a bounded 10 ms poll of complete_batch()'s
    // bump, which wakes only while cb_hurry != 0 (not raised here); seq_cst
    // is not needed.
    std::uint32_t seen = cb_done_word.load(std::memory_order_seq_cst);
    {
      mutex_lock lk(mutex);
      bool other_idle = false;  // both indices on one heavy barrier
      idle = readers_idle(0, 0, &other_idle) && (other_idle || readers_idle(1));
      batch_out = cb_batch_out;
    }
    if (idle) return;
    if (!batch_out) {
      message m;
      m << "srcu: domain '" << name << "': destroyed while "
        << readers_seen_by_last_scan()
        << " reader(s) are still inside a read-side critical section";
      die(m);
    }
    // A batch of this domain's callbacks is running right now, and one of
    // them may be the reader: let the batch end, then look again.
    futex_wait(cb_done_word, seen, std::chrono::milliseconds(10));
  }
}

void callback_queue::child_after_fork() noexcept {
  // Inherited callbacks run in the parent; running the child's copies too
  // would run them twice. Tickets are settled so barrier() does not wait.
  for_each_staging_shard([](shard_block& b) { b.staged.store(nullptr, std::memory_order_relaxed); });
  cb_invoked.store(tickets(), std::memory_order_relaxed);
  cb_wait[0] = cb_wait[1] = cb_ready = segment{};
  cb_batch_out = false;
  cb_staged.store(false, std::memory_order_relaxed);
  cb_last_drain_ns = 0;
  set_callbacks_waiting(false);
  cb_gp_waiting.store(0, std::memory_order_relaxed);
  cb_hurry.store(0, std::memory_order_relaxed);
  cb_completing.store(0, std::memory_order_relaxed);
  // The lists of threads that did not come along never flush: which of the
  // counted lists those were is not known, so the child stops counting.
  if (cb_reclaim_lists.load(std::memory_order_relaxed) != 0) {
    cb_reclaim_lists.store(kManyReclaimLists, std::memory_order_relaxed);
  }
}

}  // namespace srcu::detail

namespace srcu {

callback_batch::callback_batch(callback_batch&& other) noexcept
    : domain_(other.domain_), head_(other.head_), size_(other.size_) {
  other.domain_ = nullptr;
  other.head_ = nullptr;
  other.size_ = 0;
}

callback_batch& callback_batch::operator=(callback_batch&& other) noexcept {
  if (this != &other) {
    if (domain_ != nullptr) detail::die(domain_->name, "callback_batch overwritten before run()");
    domain_ = other.domain_;
    head_ = other.head_;
    size_ = other.size_;
    other.domain_ = nullptr;
    other.head_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

callback_batch::~callback_batch() {
  if (domain_ != nullptr) {
    detail::die(domain_->name, "an executor destroyed a callback_batch without running it "
                               "(callbacks would be lost)");
  }
}

void callback_batch::run() noexcept {
  detail::domain_state* const d = domain_;
  if (d == nullptr) detail::die("(unknown)", "callback_batch::run() on a batch already run");
  domain_ = nullptr;
  d->batch_started();  // ~domain() waits from here to complete_batch()'s end
  detail::domain_state* const outer = detail::tls_running_callbacks;
  detail::batch_cursor* const outer_cursor = detail::tls_batch_cursor;
  detail::batch_cursor cursor{d, head_};
  head_ = nullptr;
  detail::tls_running_callbacks = d;
  detail::tls_batch_cursor = &cursor;
  detail::run_cursor(cursor);
  detail::tls_batch_cursor = outer_cursor;
  detail::tls_running_callbacks = outer;
  d->complete_batch(size_ + cursor.taken);
}

}  // namespace srcu
