// Callbacks: call() stages, the engine assigns grace periods, the callback
// thread (or the domain's executor) runs them.
//
//   call()        ticket on its thread's shard, Treiber push, and a kick of
//                 the engine only if nothing is staged yet. No lock, no
//                 allocation, no blocking; async-signal-safe.
//   engine        drain_staged(): takes every shard's stack, restores FIFO
//                 order, tags the lot with a cookie taken after the drain
//                 (so its grace period starts after the callbacks were
//                 queued), merges it into one of at most two waiting
//                 segments, and requests the grace period. When a segment's
//                 cookie is done it moves to `ready` and the callback thread
//                 is kicked.
//   callback      dispatch_callbacks(): takes `ready` as one batch (at most
//   thread        one outstanding per domain) and runs it, or submits it to
//                 the domain's executor, with no lock held.
//   barrier()     waits until, on every shard, the callbacks invoked reach
//                 the tickets taken before it. A shard's callbacks run in
//                 order, so that means every earlier callback has run.
//
// Ordering of a thread's callbacks: one thread always uses one shard (a
// per-thread index, initial-exec TLS: no allocation, signal-safe), a shard
// drains in FIFO order, segments are ordered by cookie, and batches of a
// domain never overlap.

#include <sched.h>

#include "diagnostics.h"
#include "domain_state.h"
#include "fault_injection.h"
#include "futex.h"
#include "service.h"

namespace srcu::detail {

namespace {

constinit thread_local std::uint32_t tls_callback_shard SRCU_TLS_MODEL = 0;  // shard + 1
constinit std::atomic<std::uint32_t> g_next_callback_shard{0};
// The domain whose callbacks this thread is running (barrier() misuse check).
constinit thread_local domain_state* tls_running_callbacks SRCU_TLS_MODEL = nullptr;

std::uint32_t this_thread_callback_shard() noexcept {
  std::uint32_t s = tls_callback_shard;
  if (SRCU_UNLIKELY(s == 0)) {
    s = g_next_callback_shard.fetch_add(1, std::memory_order_relaxed) + 1;
    tls_callback_shard = s;
  }
  return s - 1;
}

}  // namespace

void domain_state::segment::append(segment& other) noexcept {
  if (other.empty()) return;
  if (empty()) {
    head = other.head;
  } else {
    tail->next = other.head;
  }
  tail = other.tail;
  for (std::uint32_t s = 0; s < kMaxCallbackShards; ++s) counts[s] += other.counts[s];
  other = segment{};
}

void domain_state::call(callback_head* head, void (*func)(callback_head*)) noexcept {
  if (SRCU_UNLIKELY(head == nullptr || func == nullptr)) {
    die(name, "call() with a null callback_head or a null function");
  }
  // srcu clears func before invoking, so a non-null func means "queued".
  if (SRCU_UNLIKELY(head->func != nullptr)) {
    die(name, "call(): this callback_head is already queued (queued twice before its "
              "callback ran)");
  }
  head->func = func;
  shard_block& shard = self->shards_[this_thread_callback_shard() & self->shard_mask_];
  // Ticket before the push: a barrier() that sees the ticket waits for the
  // callback, and the push cannot fail to follow.
  shard.enqueued.fetch_add(1, std::memory_order_relaxed);
  SRCU_INJECT("call: ticket taken, before the push");
  callback_head* top = shard.staged.load(std::memory_order_relaxed);
  do {
    head->next = top;
  } while (!shard.staged.compare_exchange_weak(top, head, std::memory_order_seq_cst,
                                               std::memory_order_relaxed));
  SRCU_INJECT("call: pushed, before the staged flag");
  // K: pairs with the engine's exchange of cb_staged before it drains (all
  // seq_cst): either the engine drains after this push, or this call sees
  // the flag clear and kicks it.
  if (!cb_staged.load(std::memory_order_seq_cst) &&
      !cb_staged.exchange(true, std::memory_order_seq_cst)) {
    engine().kick(this);
  }
}

void domain_state::drain_staged() {
  segment fresh;
  for (std::uint32_t s = 0; s <= self->shard_mask_; ++s) {
    callback_head* list = self->shards_[s].staged.exchange(nullptr, std::memory_order_seq_cst);
    if (list == nullptr) continue;
    segment part;
    part.tail = list;  // newest first: the head of the stack becomes the tail
    while (list != nullptr) {
      callback_head* next = list->next;
      list->next = part.head;
      part.head = list;
      ++part.counts[s];
      list = next;
    }
    fresh.append(part);
  }
  if (fresh.empty()) return;
  // A grace period that starts after these were queued. Kept apart: append()
  // empties `fresh` (requesting fresh.cookie afterwards asked for cookie 0
  // and left merged callbacks waiting for ever; found by srcu-torture).
  SRCU_INJECT("drain: staging taken, before the cookie");
  const std::uint64_t cookie = snapshot();
  fresh.cookie = cookie;
  {
    std::lock_guard lk(mutex);
    advance_ready_locked();
    // Cookies are snapshots of one sequence, so at most two distinct ones
    // are ever waiting (the grace period in flight and the next).
    if (!cb_wait[0].empty() && cb_wait[0].cookie == fresh.cookie) {
      cb_wait[0].append(fresh);
    } else if (cb_wait[0].empty()) {
      cb_wait[0] = fresh;
    } else if (cb_wait[1].empty() || cb_wait[1].cookie == cookie) {
      cb_wait[1].append(fresh);
      cb_wait[1].cookie = cookie;
    } else {
      // Not reachable by the argument above; waiting longer is always safe.
      cb_wait[1].append(fresh);
      if (seq_ge(cookie, cb_wait[1].cookie)) cb_wait[1].cookie = cookie;
    }
    cb_waiting_gp.store(true, std::memory_order_seq_cst);
  }
  request(cookie);
}

bool domain_state::advance_ready_locked() noexcept {
  while (!cb_wait[0].empty() && done(cb_wait[0].cookie)) {
    cb_ready.append(cb_wait[0]);
    cb_wait[0] = cb_wait[1];
    cb_wait[1] = segment{};
  }
  cb_waiting_gp.store(!cb_wait[0].empty(), std::memory_order_seq_cst);
  return !cb_ready.empty();
}

service_result dispatch_callbacks(domain_state* d) {
  domain_state::segment batch;
  {
    std::lock_guard lk(d->mutex);
    if (d->cb_batch_out || d->cb_ready.empty()) return service_result::kDone;
    batch = d->cb_ready;
    d->cb_ready = domain_state::segment{};
    d->cb_batch_out = true;
    for (std::uint32_t s = 0; s < domain_state::kMaxCallbackShards; ++s) {
      d->cb_batch_counts[s] = batch.counts[s];
    }
  }
  std::size_t size = 0;
  for (std::uint32_t c : batch.counts) size += c;
  callback_batch b = d->make_batch(batch.head, size);
  if (d->cb_executor != nullptr) {
    d->cb_executor->submit(std::move(b));  // no library lock held
  } else {
    b.run();
  }
  return service_result::kDone;
}

void domain_state::complete_batch() noexcept {
  cb_completing.fetch_add(1, std::memory_order_seq_cst);
  SRCU_INJECT("complete_batch: callbacks ran, before counting them");
  bool more;
  {
    std::lock_guard lk(mutex);
    cb_batch_out = false;
    for (std::uint32_t s = 0; s <= self->shard_mask_; ++s) {
      // Release: barrier() acquires these; the callbacks happen-before it returns.
      self->shards_[s].invoked.fetch_add(cb_batch_counts[s], std::memory_order_release);
      cb_batch_counts[s] = 0;
    }
    more = !cb_ready.empty();
  }
  cb_done_word.fetch_add(1, std::memory_order_seq_cst);
  if (cb_barrier_waiters.load(std::memory_order_seq_cst) != 0) futex_wake(cb_done_word);
  if (more) callback_thread().kick(this);
  cb_completing.fetch_sub(1, std::memory_order_release);  // last touch of *this
}

bool domain_state::callbacks_idle() const noexcept {
  for (std::uint32_t s = 0; s <= self->shard_mask_; ++s) {
    if (self->shards_[s].invoked.load(std::memory_order_acquire) !=
        self->shards_[s].enqueued.load(std::memory_order_acquire)) {
      return false;
    }
  }
  return true;
}

void domain_state::barrier() {
  if (tls_running_callbacks == this) {
    die(name, "barrier() called from inside one of this domain's callbacks (it would wait "
              "for itself)");
  }
  if (tls_running_callbacks != nullptr && cb_executor == nullptr) {
    die(name, "barrier() called from inside a callback on srcu's callback thread, which "
              "also runs this domain's callbacks (it would wait for itself)");
  }
  std::uint64_t target[kMaxCallbackShards] = {};
  for (std::uint32_t s = 0; s <= self->shard_mask_; ++s) {
    target[s] = self->shards_[s].enqueued.load(std::memory_order_acquire);
  }
  cb_barrier_waiters.fetch_add(1, std::memory_order_seq_cst);
  // Callbacks held back by callback_delay: the engine takes them now (it
  // reads cb_barrier_waiters after this kick's wake-up).
  if (cb_staged.load(std::memory_order_seq_cst)) engine().kick(this);
  for (;;) {
    const std::uint32_t seen = cb_done_word.load(std::memory_order_seq_cst);
    bool all = true;
    for (std::uint32_t s = 0; s <= self->shard_mask_ && all; ++s) {
      all = seq_ge(self->shards_[s].invoked.load(std::memory_order_acquire), target[s]);
    }
    if (all) break;
    // call() kicked the engine when it staged; the timeout is only a guard.
    futex_wait(cb_done_word, seen, std::chrono::milliseconds(10));
  }
  cb_barrier_waiters.fetch_sub(1, std::memory_order_seq_cst);
}

void domain_state::discard_callbacks_in_child() noexcept {
  // Inherited callbacks run in the parent; running the child's copies too
  // would run them twice. Tickets are settled so barrier() does not wait.
  for (std::uint32_t s = 0; s <= self->shard_mask_; ++s) {
    self->shards_[s].staged.store(nullptr, std::memory_order_relaxed);
    self->shards_[s].invoked.store(self->shards_[s].enqueued.load(std::memory_order_relaxed),
                               std::memory_order_relaxed);
  }
  cb_wait[0] = cb_wait[1] = cb_ready = segment{};
  cb_batch_out = false;
  for (std::uint32_t& c : cb_batch_counts) c = 0;
  cb_staged.store(false, std::memory_order_relaxed);
  cb_last_drain_ns = 0;
  cb_waiting_gp.store(false, std::memory_order_relaxed);
  cb_barrier_waiters.store(0, std::memory_order_relaxed);
  cb_completing.store(0, std::memory_order_relaxed);
  engine_slot.busy = callback_slot.busy = false;
  engine_slot.rekicked = callback_slot.rekicked = false;
  engine_slot.step_again_at_ns = callback_slot.step_again_at_ns = 0;
  engine_slot.node.queued.store(false, std::memory_order_relaxed);
  callback_slot.node.queued.store(false, std::memory_order_relaxed);
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
  detail::domain_state* const outer = detail::tls_running_callbacks;
  detail::tls_running_callbacks = d;
  callback_head* cb = head_;
  head_ = nullptr;
  while (cb != nullptr) {
    callback_head* const next = cb->next;
    void (*const func)(callback_head*) = cb->func;
    cb->next = nullptr;
    cb->func = nullptr;  // the head may be queued again from here on
    func(cb);            // may free cb
    cb = next;
  }
  detail::tls_running_callbacks = outer;
  d->complete_batch();
}

}  // namespace srcu
