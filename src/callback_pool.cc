#include "callback_pool.h"

#include <cstdio>
#include <utility>

#include "diagnostics.h"
#include "domain_state.h"
#include "fault_injection.h"
#include "futex.h"
#include "service.h"

namespace srcu::detail {

void callback_pool::start() noexcept {
  mutex_lock lk(mutex_);
  if (workers_ == 0) spawn_locked();
}

// Mutex held. Reserves a worker and starts its thread. pthread_create takes
// no lock of ours and calls no user code, so holding the leaf mutex across
// it is allowed; the new thread blocks on the mutex until we let go.
bool callback_pool::spawn_locked() noexcept {
  char name[16];
  std::snprintf(name, sizeof name, "srcu-cb/%u", next_worker_id_);
  if (gate_.create(&callback_pool::thread_main, this, name) != 0) {
    if (workers_ == 0) die("(library)", "cannot start an srcu callback worker thread");
    return false;  // the workers we have go on; maintain() tries again later
  }
  ++next_worker_id_;
  ++workers_;
  return true;
}

void* callback_pool::thread_main(void* self) {
  static_cast<callback_pool*>(self)->gate_.started();
  static_cast<callback_pool*>(self)->run();
  return nullptr;
}

// Mutex held.
void callback_pool::append_locked(pool_entry* e, std::uint64_t now_ns) noexcept {
  e->next = nullptr;
  e->queued = true;
  e->queued_at_ns = now_ns;
  if (tail_ != nullptr) tail_->next = e;
  else head_ = e;
  tail_ = e;
}

void callback_pool::enqueue(domain_state* d) noexcept { enqueue_entry(d, /*stall=*/false); }

void callback_pool::request_stall_report(domain_state* d) noexcept {
  enqueue_entry(d, /*stall=*/true);
}

void callback_pool::enqueue_entry(domain_state* d, bool stall) noexcept {
  pool_entry& e = d->delivery;
  bool wake_idle = false;
  bool wake_engine = false;
  {
    mutex_lock lk(mutex_);
    if (e.dying) return;
    e.stall_report |= stall;
    if (e.queued) return;
    if (e.in_service) {
      e.requeue = true;  // its worker puts it back at the tail when done
      return;
    }
    append_locked(&e, monotonic_ns());
    if (idle_ > 0) {
      // Fence P (docs/design.md §2): pairs with run()'s wake_word_ load under
      // the same mutex (relaxed is enough); without the bump an idle worker
      // sleeps up to 10 s with this domain queued.
      wake_word_.fetch_add(1, std::memory_order_relaxed);  // under the mutex: see run()
      wake_idle = true;
    } else {
      wake_engine = true;  // nobody idle: the engine decides whether to add a worker
    }
  }
  // Wakes happen after the mutex is released: no library lock is held while
  // srcu calls out (domain_state.h).
  if (wake_idle) futex_wake(wake_word_, 1);
  if (wake_engine) engine().wake();
}

void callback_pool::run() {
  mutex_lock lk(mutex_);
  std::uint64_t idle_since = monotonic_ns();
  for (;;) {
    if (head_ == nullptr) {
      // enqueue() bumps wake_word_ under the mutex after appending, so a
      // value read here under the mutex changes before any later append is
      // visible to us: the futex wait cannot miss it.
      // Fence P (docs/design.md §2): pairs with enqueue_entry()'s bump.
      const std::uint32_t seen = wake_word_.load(std::memory_order_relaxed);
      ++idle_;
      saturated_reported_ = false;
      lk.unlock();
      futex_wait(wake_word_, seen, std::chrono::nanoseconds(kIdleExitNs));
      lk.lock();
      --idle_;
      if (head_ == nullptr && workers_ > 1 && monotonic_ns() - idle_since >= kIdleExitNs) {
        --workers_;  // the last worker stays
        gate_.leaving();  // fork() waits until this thread is gone
        return;
      }
      continue;
    }
    pool_entry* e = head_;
    head_ = e->next;
    if (head_ == nullptr) tail_ = nullptr;
    e->next = nullptr;
    e->queued = false;
    e->in_service = true;
    const bool stall_report = std::exchange(e->stall_report, false);
    lk.unlock();
    SRCU_INJECT("pool: took a domain, before dispatching it");
    if (stall_report) e->owner->report_stall();  // the stall handler: user code
    e->owner->dispatch_batch();  // no library lock held: user code runs here
    lk.lock();
    e->in_service = false;
    if (e->dying) {
      served_.notify_all();
    } else if (e->requeue) {
      e->requeue = false;
      append_locked(e, monotonic_ns());  // fair turns: behind every other ready domain
    }
    idle_since = monotonic_ns();
  }
}

void callback_pool::forget(domain_state* d) noexcept {
  pool_entry& e = d->delivery;
  mutex_lock lk(mutex_);
  e.dying = true;
  if (e.queued) {
    pool_entry** link = &head_;
    pool_entry* prev = nullptr;
    while (*link != &e) {
      prev = *link;
      link = &(*link)->next;
    }
    *link = e.next;
    if (tail_ == &e) tail_ = prev;
    e.queued = false;
    e.next = nullptr;
  }
  // A worker still inside dispatch for d (its last batch's complete_batch
  // has run, or ~domain would not be here) finishes without touching d's
  // callbacks; wait for it to let go of the entry.
  mutex_.wait(served_, [&e] { return !e.in_service; });
}

std::uint64_t callback_pool::maintain(std::uint64_t now_ns) noexcept {
  bool report = false;
  std::uint32_t workers = 0;
  std::uint64_t waited_ns = 0;
  std::uint64_t next = ~std::uint64_t{0};
  {
    mutex_lock lk(mutex_);
    if (head_ == nullptr || idle_ > 0) return next;
    waited_ns = now_ns - head_->queued_at_ns;
    if (workers_ == 0 || waited_ns >= kSpawnAfterNs) {
      if (workers_ < kMaxWorkers) {
        spawn_locked();
      } else if (!saturated_reported_ && waited_ns >= 1'000'000'000) {
        saturated_reported_ = true;
        report = true;
        workers = workers_;
      }
    }
    const std::uint64_t due = head_->queued_at_ns + kSpawnAfterNs;
    next = due > now_ns ? due : now_ns + kSpawnAfterNs;
  }
  if (report) {
    message m;
    m << "srcu: all " << workers << " callback worker threads have been inside callbacks "
      << "(or executor submit() hooks) for " << waited_ns / 1'000'000u
      << " ms; ready callbacks of other domains wait (a callback that never returns?)";
    m.write_to_stderr();
  }
  return next;
}

std::uint32_t callback_pool::workers() noexcept {
  mutex_lock lk(mutex_);
  return workers_;
}

// No worker may be starting or exiting across the fork (library_thread.h).
void callback_pool::prepare_fork() noexcept {
  mutex_.lock();
  gate_.settle();
}

void callback_pool::parent_after_fork() noexcept { mutex_.unlock(); }

void callback_pool::child_after_fork() noexcept {
  // No worker exists in the child. Every domain's entry is reset with its
  // callbacks (fork.cc); the queue only named them.
  head_ = tail_ = nullptr;
  restart_ = workers_ > 0;
  workers_ = 0;
  gate_.reset_in_child();
  idle_ = 0;
  saturated_reported_ = false;
  mutex_.unlock();
}

void callback_pool::restart_after_fork() noexcept {
  mutex_lock lk(mutex_);
  if (restart_ && workers_ == 0) spawn_locked();
  restart_ = false;
}

callback_pool& pool() noexcept {
  static callback_pool* p = new callback_pool;  // leaked: threads may outlive statics
  return *p;
}

}  // namespace srcu::detail
