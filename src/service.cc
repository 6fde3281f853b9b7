#include "service.h"

#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <utility>

#include "diagnostics.h"
#include "domain_state.h"
#include "callback_pool.h"
#include "fault_injection.h"

namespace srcu::detail {

void service::start() noexcept {
  std::lock_guard lk(mutex_);
  if (!started_) start_thread_locked();
}

void service::start_thread_locked() noexcept {
  const int rc = pthread_create(&thread_, nullptr, &service::thread_main, this);
  if (rc != 0) die("(library)", "cannot start an srcu library thread");
  pthread_setname_np(thread_, name_);
  pthread_detach(thread_);
  started_ = true;
}

void* service::thread_main(void* self) {
  static_cast<service*>(self)->run();
  return nullptr;
}

void service::kick(domain_state* d) noexcept { queue_.kick(&(d->*slot_).node); }

void service::wake() noexcept { queue_.wake(); }

void service::link_locked(service_slot* s) {
  s->prev = nullptr;
  s->next = list_;
  if (list_ != nullptr) list_->prev = s;
  list_ = s;
  s->listed = true;
}

void service::unlink_locked(service_slot* s) {
  if (!s->listed) return;
  if (s->prev != nullptr) s->prev->next = s->next;
  else list_ = s->next;
  if (s->next != nullptr) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
  s->listed = false;
}

void service::absorb_locked() {
  queue_.take_all([this](domain_state* d) {
    service_slot& s = d->*slot_;
    if (s.dying) return;
    // A kick for a domain being stepped right now must survive the step's
    // end: without this, a forget() of another domain absorbing the kick
    // mid-step lost it, and the step's kDone then unlinked the domain with
    // callbacks ready (found by the API fuzzer).
    if (s.busy) s.rekicked = true;
    if (!s.listed) link_locked(&s);
    s.next_check_ns = 0;  // due now
    s.backoff_ns = 0;
  });
}

void service::run() {
  std::vector<domain_state*> batch;
  std::vector<service_result> results;
  for (;;) {
    const std::uint32_t generation = queue_.wake_generation();
    std::uint64_t now = monotonic_ns();
    std::uint64_t next_due = tick_ != nullptr ? tick_(now) : ~std::uint64_t{0};
    batch.clear();
    {
      std::lock_guard lk(mutex_);
      absorb_locked();
      for (service_slot* s = list_; s != nullptr; s = s->next) {
        if (s->next_check_ns <= now) {
          s->busy = true;
          batch.push_back(s->node.owner);
        } else {
          next_due = std::min(next_due, s->next_check_ns);
        }
      }
      batch_active_ = !batch.empty();
    }
    results.clear();
    for (domain_state* d : batch) {
      SRCU_INJECT("service: before a step");
      results.push_back(step_(d));  // no lock held
    }
    if (!batch.empty()) {
      now = monotonic_ns();
      {
        std::lock_guard lk(mutex_);
        for (std::size_t i = 0; i < batch.size(); ++i) {
          service_slot& s = batch[i]->*slot_;
          s.busy = false;
          const std::uint64_t again_at = std::exchange(s.step_again_at_ns, 0);
          const std::uint64_t retry_floor = std::exchange(s.retry_floor_ns, 0);
          if (s.rekicked && !s.dying) {
            s.rekicked = false;
            s.next_check_ns = 0;  // kicked while stepping: due again now
            s.backoff_ns = 0;
            next_due = 0;
          } else if (results[i] == service_result::kRetry && !s.dying) {
            s.backoff_ns = s.backoff_ns == 0 ? 50'000
                                             : std::min<std::uint64_t>(s.backoff_ns * 2, 5'000'000);
            s.next_check_ns = now + std::max(s.backoff_ns, retry_floor);
            if (again_at != 0) s.next_check_ns = std::min(s.next_check_ns, again_at);
            next_due = std::min(next_due, s.next_check_ns);
          } else if (again_at != 0 && !s.dying) {
            s.backoff_ns = 0;
            s.next_check_ns = again_at;
            next_due = std::min(next_due, again_at);
          } else {
            unlink_locked(&s);
          }
        }
        batch_active_ = false;
      }
      batch_done_.notify_all();
    }
    std::chrono::nanoseconds timeout{0};  // forever
    if (next_due != ~std::uint64_t{0}) {
      const std::uint64_t t = monotonic_ns();
      timeout = std::chrono::nanoseconds(next_due > t ? next_due - t : 1);
    }
    queue_.sleep(generation, timeout);
  }
}

void service::forget(domain_state* d) noexcept {
  service_slot& s = d->*slot_;
  std::unique_lock lk(mutex_);
  s.dying = true;
  absorb_locked();  // d may sit on the pending stack
  batch_done_.wait(lk, [&s] { return !s.busy; });
  unlink_locked(&s);
}

// Takes the mutex only. Waiting for the thread's current steps would make
// fork() wait for a user callback (for ever, if that callback forks). Steps
// in flight hold no service lock; in the child their domains' busy marks
// are cleared (discard_callbacks_in_child) and the thread is replaced.
void service::prepare_fork() noexcept { mutex_.lock(); }

void service::parent_after_fork() noexcept { mutex_.unlock(); }

void service::child_after_fork() noexcept {
  // The thread does not exist in the child: absorb what was kicked (so every
  // kicked flag is clear or the node is listed). The new thread starts only
  // in restart_after_fork(), after the registry has discarded inherited
  // callbacks: started earlier, it drained the parent's staged callbacks and
  // ran them in the child (found by srcu-torture --fork).
  queue_.reset_after_fork();
  batch_active_ = false;
  absorb_locked();
  restart_ = started_;
  started_ = false;
  mutex_.unlock();
}

void service::restart_after_fork() noexcept {
  std::lock_guard lk(mutex_);
  if (restart_ && !started_) start_thread_locked();
  restart_ = false;
}

service_result engine_step(domain_state* d);  // grace_period.cc

service& engine() noexcept {
  // The engine also looks after the callback pool: it adds a worker when
  // ready callbacks wait and every worker is busy in user code.
  static service* s = new service(
      "srcu-engine", &engine_step, &domain_state::engine_slot,
      [](std::uint64_t now_ns) { return pool().maintain(now_ns); });
  return *s;
}

}  // namespace srcu::detail
