#include "service.h"

#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <utility>

#include "diagnostics.h"
#include "domain_state.h"
#include "callback_pool.h"
#include "fault_injection.h"
#include "heavy_barrier.h"

namespace srcu::detail {

void service::start() noexcept {
  mutex_lock lk(mutex_);
  if (!started_) start_thread_locked();
}

void service::start_thread_locked() noexcept {
  if (gate_.create(&service::thread_main, this, name_) != 0) {
    die("(library)", "cannot start an srcu library thread");
  }
  started_ = true;
}

void* service::thread_main(void* self) {
  static_cast<service*>(self)->gate_.started();
  static_cast<service*>(self)->run();
  return nullptr;
}

void service::kick(domain_state* d) noexcept { kick(d->self); }

void service::kick(domain* d) noexcept { queue_.kick(&state_maker::node(*d)); }

domain_state* service::settle(domain* d) noexcept {
  mutex_lock lk(mutex_);
  absorb_locked();
  return state_maker::state(*d);
}

void service::wake() noexcept { queue_.wake(); }

// The heap keeps each key beside its slot pointer, so sifting compares
// within the array; only the moved slots' heap_index is written (with
// 100,000 stalled domains the keys in the slots made every level a cache
// miss: 22% of the engine's time was sift_down). Four children per node
// (one 64-byte line of keys) halve the levels, and so the index writes.
void service::heap_swap(std::uint32_t a, std::uint32_t b) noexcept {
  std::swap(heap_[a], heap_[b]);
  heap_[a].slot->heap_index = a;
  heap_[b].slot->heap_index = b;
}

void service::sift_up(std::uint32_t i) noexcept {
  while (i > 0) {
    const std::uint32_t parent = (i - 1) / kHeapArity;
    if (heap_[parent].key <= heap_[i].key) return;
    heap_swap(i, parent);
    i = parent;
  }
}

void service::sift_down(std::uint32_t i) noexcept {
  const auto n = static_cast<std::uint32_t>(heap_.size());
  for (;;) {
    std::uint32_t least = i;
    for (std::uint32_t c = kHeapArity * i + 1; c <= kHeapArity * i + kHeapArity && c < n; ++c) {
      if (heap_[c].key < heap_[least].key) least = c;
    }
    if (least == i) return;
    heap_swap(i, least);
    i = least;
  }
}

void service::link_locked(service_slot* s, std::uint64_t check_at_ns) {
  if (s->heap_index == service_slot::kNotListed) {
    s->heap_index = static_cast<std::uint32_t>(heap_.size());
    heap_.push_back({check_at_ns, s});
  } else {
    heap_[s->heap_index].key = check_at_ns;
  }
  sift_up(s->heap_index);
  sift_down(s->heap_index);
}

void service::unlink_locked(service_slot* s) {
  const std::uint32_t i = s->heap_index;
  if (i == service_slot::kNotListed) return;
  const auto last = static_cast<std::uint32_t>(heap_.size() - 1);
  if (i != last) heap_swap(i, last);
  heap_.pop_back();
  s->heap_index = service_slot::kNotListed;
  if (i != last) {
    sift_up(i);
    sift_down(i);
  }
}

void service::absorb_locked(bool may_create) {
  queue_.take_all([this, may_create](domain* owner) {
    mutex_.assert_held();  // called back from absorb_locked()
    domain_state* d = state_maker::state(*owner);
    if (d == nullptr) {
      if (!may_create) return;
      d = state_maker::create(*owner);  // allocates: the service mutex is held
    }
    state_maker::act_on_asks(*owner, *d);
    service_slot& s = d->*slot_;
    if (s.dying) return;
    s.backoff_ns = 0;
    // A kick for a domain being stepped right now must survive the step's
    // end: without this, a forget() of another domain absorbing the kick
    // mid-step lost it, and the step's kDone then dropped the domain with
    // callbacks ready (found by the API fuzzer).
    if (s.busy) {
      s.rekicked = true;
      return;
    }
    link_locked(&s, 0);  // due now
  });
}

void service::run() {
  std::vector<domain_state*> batch;
  std::vector<service_result> results;
  for (;;) {
    // Fence Q1 (docs/design.md §2): read before take_all(), passed to
    // sleep(); pairs with kick()/wake()'s bump. Without it a kick between
    // take_all() and the sleep is slept through.
    const std::uint32_t generation = queue_.wake_generation();
    std::uint64_t now = monotonic_ns();
    std::uint64_t next_due = tick_ != nullptr ? tick_(now) : ~std::uint64_t{0};
    batch.clear();
    {
      mutex_lock lk(mutex_);
      absorb_locked();
      // At most kMaxStepsPerLoop steps between two looks at the kicks: a
      // kicked domain is keyed 0, so it goes first in the next loop even
      // when thousands of stalled domains fall due at the same moment.
      while (!heap_.empty() && heap_.front().key <= now && batch.size() < kMaxStepsPerLoop) {
        service_slot* s = heap_.front().slot;
        unlink_locked(s);
        s->busy = true;
        batch.push_back(s->owner);
      }
      if (!heap_.empty()) next_due = std::min(next_due, heap_.front().key);
      batch_active_ = !batch.empty();
    }
    results.clear();
    for (domain_state* d : batch) {
      SRCU_INJECT("service: before a step");
      results.push_back(step_(d));  // no lock held
    }
    step_again_after_barrier(batch, results);
    if (!batch.empty()) {
      now = monotonic_ns();
      {
        mutex_lock lk(mutex_);
        for (std::size_t i = 0; i < batch.size(); ++i) {
          service_slot& s = batch[i]->*slot_;
          s.busy = false;
          const std::uint64_t again_at = std::exchange(s.step_again_at_ns, 0);
          const std::uint64_t retry_floor = std::exchange(s.retry_floor_ns, 0);
          if (s.dying) continue;
          if (s.rekicked) {
            s.rekicked = false;
            s.backoff_ns = 0;
            link_locked(&s, 0);  // kicked while stepping: due again now
          } else if (results[i] == service_result::kRetry) {
            s.backoff_ns = s.backoff_ns == 0 ? 50'000
                                             : std::min<std::uint64_t>(s.backoff_ns * 2, 5'000'000);
            std::uint64_t at = now + std::max(s.backoff_ns, retry_floor);
            if (again_at != 0) at = std::min(at, again_at);
            link_locked(&s, at);
          } else if (again_at != 0) {
            s.backoff_ns = 0;
            link_locked(&s, again_at);
          }
        }
        if (!heap_.empty()) next_due = std::min(next_due, heap_.front().key);
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

// The steps whose reader scans wait for a heavy barrier (barrier_wanted)
// get one barrier between them, and are stepped again; a grace period takes
// one scan with no reader inside (both indices at once) and two otherwise,
// so a batch of domains that all end one takes one or two barriers instead
// of one or two each (Fence HB, docs/design.md §2). A few rounds at most:
// a scan that keeps failing goes back to the usual retry.
void service::step_again_after_barrier(const std::vector<domain_state*>& batch,
                                       std::vector<service_result>& results) noexcept {
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    bool any = false;
    for (domain_state* d : batch) any |= (d->*slot_).barrier_wanted;
    if (!any) return;
    heavy_barrier();  // Fence A for every kept first pass (Fence HB)
    for (std::size_t i = 0; i < batch.size(); ++i) {
      service_slot& s = batch[i]->*slot_;
      if (!std::exchange(s.barrier_wanted, false)) continue;
      SRCU_INJECT("service: before a step after the batch's barrier");
      results[i] = step_(batch[i]);
    }
  }
  // Still waiting after the last round: their next step starts over.
  for (domain_state* d : batch) (d->*slot_).barrier_wanted = false;
}

void service::forget(domain_state* d) noexcept {
  service_slot& s = d->*slot_;
  mutex_lock lk(mutex_);
  s.dying = true;
  absorb_locked();  // d may sit on the pending stack
  mutex_.wait(batch_done_, [&s] { return !s.busy; });
  unlink_locked(&s);
}

// Takes the mutex and waits for a thread still starting (library_thread.h).
// Waiting for the thread's current steps would make fork() wait for a user
// callback (for ever, if that callback forks). Steps in flight hold no
// service lock; in the child their domains' busy marks are cleared
// (fork.cc) and the thread is replaced.
void service::prepare_fork() noexcept {
  mutex_.lock();
  gate_.settle();
}

void service::parent_after_fork() noexcept { mutex_.unlock(); }

void service::child_after_fork() noexcept {
  // The thread does not exist in the child: absorb what was kicked (so every
  // kicked flag is clear or the node is listed). The new thread starts only
  // in restart_after_fork(), after the registry has discarded inherited
  // callbacks: started earlier, it drained the parent's staged callbacks and
  // ran them in the child (found by srcu-torture --fork).
  queue_.reset_after_fork();
  gate_.reset_in_child();
  batch_active_ = false;
  absorb_locked(/*may_create=*/false);  // the registry mutex is held: no state is made
  restart_ = started_;
  started_ = false;
  mutex_.unlock();
}

void service::restart_after_fork() noexcept {
  mutex_lock lk(mutex_);
  if (restart_ && !started_) start_thread_locked();
  restart_ = false;
}

service& engine() noexcept {
  // The engine also looks after the callback pool: it adds a worker when
  // ready callbacks wait and every worker is busy in user code.
  static service* s = new service(
      "srcu-engine", [](domain_state* d) { return d->engine_step(); }, &domain_state::engine_slot,
      [](std::uint64_t now_ns) { return pool().maintain(now_ns); });
  return *s;
}

}  // namespace srcu::detail
