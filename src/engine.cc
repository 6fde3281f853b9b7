// The engine: one library thread, started with the first domain, that drives
// grace periods nobody is waiting for (start_poll()). It serves every domain;
// a domain whose readers are blocked is re-checked later with backoff, never
// slept on, so it cannot hold up the others.
//
// engine_kick() is lock-free and async-signal-safe: a Treiber push onto the
// pending stack (guarded by the domain's engine_queued flag, so a domain is
// on it at most once) and a raw futex wake when the engine sleeps.
//
// The engine mutex guards the work list. The engine steps domains with no
// lock held (a domain being stepped is marked engine_busy; ~domain waits for
// that to clear). Lock order: engine mutex -> registry -> domain locks.

#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <vector>

#include "diagnostics.h"
#include "domain_state.h"
#include "futex.h"

namespace srcu::detail {

namespace {

struct engine_t {
  std::mutex mutex;
  std::condition_variable batch_done;       // ~domain and fork wait on it
  domain_state* list = nullptr;             // work list (mutex)
  bool started = false;                     // mutex
  bool batch_active = false;                // mutex
  std::atomic<domain_state*> pending{nullptr};
  std::atomic<std::uint32_t> wake_word{0};
  std::atomic<bool> sleeping{false};
};

engine_t& eng() {
  static engine_t* e = new engine_t;  // leaked: the thread outlives statics
  return *e;
}

void link_locked(engine_t& e, domain_state* d) {
  d->engine_prev = nullptr;
  d->engine_next = e.list;
  if (e.list != nullptr) e.list->engine_prev = d;
  e.list = d;
  d->engine_listed = true;
}

void unlink_locked(engine_t& e, domain_state* d) {
  if (!d->engine_listed) return;
  if (d->engine_prev != nullptr) d->engine_prev->engine_next = d->engine_next;
  else e.list = d->engine_next;
  if (d->engine_next != nullptr) d->engine_next->engine_prev = d->engine_prev;
  d->engine_prev = d->engine_next = nullptr;
  d->engine_listed = false;
}

void absorb_pending_locked(engine_t& e) {
  domain_state* d = e.pending.exchange(nullptr, std::memory_order_acquire);
  while (d != nullptr) {
    domain_state* next = d->engine_pending_next;
    d->engine_pending_next = nullptr;
    // Cleared before the step, so a kick that comes after it queues again.
    d->engine_queued.store(false, std::memory_order_release);
    if (!d->engine_dying) {
      if (!d->engine_listed) link_locked(e, d);
      d->engine_next_check_ns = 0;  // due now
      d->engine_backoff_ns = 0;
    }
    d = next;
  }
}

void* engine_main(void*) {
  engine_t& e = eng();
  std::vector<domain_state*> batch;
  std::vector<step_result> results;
  for (;;) {
    const std::uint32_t seen = e.wake_word.load(std::memory_order_seq_cst);
    std::uint64_t now = monotonic_ns();
    std::uint64_t next_due = ~std::uint64_t{0};
    batch.clear();
    {
      std::lock_guard lk(e.mutex);
      absorb_pending_locked(e);
      for (domain_state* d = e.list; d != nullptr; d = d->engine_next) {
        if (d->engine_next_check_ns <= now) {
          d->engine_busy = true;
          batch.push_back(d);
        } else {
          next_due = std::min(next_due, d->engine_next_check_ns);
        }
      }
      e.batch_active = !batch.empty();
    }
    results.clear();
    for (domain_state* d : batch) results.push_back(d->drive_once());
    if (!batch.empty()) {
      now = monotonic_ns();
      {
        std::lock_guard lk(e.mutex);
        for (std::size_t i = 0; i < batch.size(); ++i) {
          domain_state* d = batch[i];
          d->engine_busy = false;
          if (results[i] == step_result::kBusy && !d->engine_dying) {
            // Readers still inside: look again later, backing off 50 us .. 5 ms.
            d->engine_backoff_ns = d->engine_backoff_ns == 0
                                       ? 50'000
                                       : std::min<std::uint64_t>(d->engine_backoff_ns * 2,
                                                                 5'000'000);
            d->engine_next_check_ns = now + d->engine_backoff_ns;
            next_due = std::min(next_due, d->engine_next_check_ns);
          } else {
            // kDone, or kContended: the driving thread hands back on leaving.
            unlink_locked(e, d);
          }
        }
        e.batch_active = false;
      }
      e.batch_done.notify_all();
    }
    e.sleeping.store(true, std::memory_order_seq_cst);
    if (e.pending.load(std::memory_order_seq_cst) == nullptr) {
      const std::uint64_t t = monotonic_ns();
      std::chrono::nanoseconds timeout{0};  // forever
      if (next_due != ~std::uint64_t{0}) {
        timeout = std::chrono::nanoseconds(next_due > t ? next_due - t : 1);
      }
      futex_wait(e.wake_word, seen, timeout);
    }
    e.sleeping.store(false, std::memory_order_relaxed);
  }
  return nullptr;
}

void start_thread_locked(engine_t& e) {
  // The engine runs with every signal blocked: user signals go to user threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  const int rc = pthread_create(&t, nullptr, &engine_main, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0) die("(engine)", "cannot start the srcu engine thread");
  pthread_detach(t);
  e.started = true;
}

}  // namespace

void engine_start() noexcept {
  engine_t& e = eng();
  std::lock_guard lk(e.mutex);
  if (!e.started) start_thread_locked(e);
}

void engine_kick(domain_state* d) noexcept {
  engine_t& e = eng();
  if (d->engine_queued.exchange(true, std::memory_order_acq_rel)) return;  // already queued
  domain_state* head = e.pending.load(std::memory_order_relaxed);
  do {
    d->engine_pending_next = head;
  } while (!e.pending.compare_exchange_weak(head, d, std::memory_order_release,
                                            std::memory_order_relaxed));
  e.wake_word.fetch_add(1, std::memory_order_seq_cst);
  if (e.sleeping.load(std::memory_order_seq_cst)) futex_wake(e.wake_word, 1);
}

void engine_forget(domain_state* d) noexcept {
  engine_t& e = eng();
  std::unique_lock lk(e.mutex);
  d->engine_dying = true;
  absorb_pending_locked(e);  // d may sit on the pending stack
  e.batch_done.wait(lk, [d] { return !d->engine_busy; });
  unlink_locked(e, d);
}

void engine_prepare_fork() noexcept {
  engine_t& e = eng();
  e.mutex.lock();
  while (e.batch_active) {
    // Let the engine finish stepping (it needs the mutex to say so).
    e.mutex.unlock();
    sched_yield();
    e.mutex.lock();
  }
}

void engine_parent_after_fork() noexcept { eng().mutex.unlock(); }

void engine_child_after_fork() noexcept {
  engine_t& e = eng();
  // The engine thread does not exist in the child; start a new one if the
  // parent had one. The work list and pending stack carry over unchanged.
  e.sleeping.store(false, std::memory_order_relaxed);
  // Domains on the pending stack go onto the work list with engine_queued
  // cleared; registry_child_after_fork() then clears the flag of a domain a
  // vanished thread had flagged but not yet pushed (see engine_kick()).
  absorb_pending_locked(e);
  const bool had_thread = e.started;
  e.started = false;
  if (had_thread) start_thread_locked(e);
  e.mutex.unlock();
}

}  // namespace srcu::detail
