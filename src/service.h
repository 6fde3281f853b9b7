// A library thread that serves every domain kicked onto its queue: the
// grace-period engine ("srcu-engine") and the callback thread
// ("srcu-callbacks") are two instances. Started with the first domain;
// creating more domains creates no thread.
//
// A service steps each kicked domain with no lock held (the domain is marked
// busy meanwhile; forget() waits for that). A step that must retry (readers
// still inside) is re-run after a backoff (50 us doubling to 5 ms), never
// slept on, so one blocked domain never holds up the others.
//
// Lock order: service mutex -> registry -> domain locks. kick() takes no lock
// and is async-signal-safe.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "kick_queue.h"

namespace srcu::detail {

struct domain_state;

enum class service_result { kDone, kRetry };

// Per (domain, service) bookkeeping, embedded in domain_state.
struct service_slot {
  kick_node node;
  service_slot* prev = nullptr;  // work list (service mutex)
  service_slot* next = nullptr;
  bool listed = false;
  bool busy = false;   // being stepped right now
  bool rekicked = false;  // kicked again while busy: step again, do not unlink
  bool dying = false;  // ~domain: never step again
  std::uint64_t next_check_ns = 0;
  std::uint64_t backoff_ns = 0;
  // Set by a step (on the service thread) that has work due at a known
  // time: the domain stays listed and is stepped again by then, without
  // a kick. 0: none. Read and cleared by the service after the step.
  std::uint64_t step_again_at_ns = 0;
};

class service {
 public:
  using step_fn = service_result (*)(domain_state*);
  service(const char* thread_name, step_fn step, service_slot domain_state::*slot)
      : name_(thread_name), step_(step), slot_(slot) {}

  void start() noexcept;                  // idempotent
  void kick(domain_state* d) noexcept;    // lock-free, async-signal-safe
  void forget(domain_state* d) noexcept;  // from ~domain: never touch d again
  bool on_service_thread() const noexcept;

  void prepare_fork() noexcept;
  void parent_after_fork() noexcept;
  void child_after_fork() noexcept;    // absorbs kicks, releases the mutex
  void restart_after_fork() noexcept;  // then, once the domains are settled

 private:
  static void* thread_main(void* self);
  void run();
  void absorb_locked();
  void link_locked(service_slot* s);
  void unlink_locked(service_slot* s);
  void start_thread_locked() noexcept;

  const char* const name_;
  const step_fn step_;
  service_slot domain_state::* const slot_;
  std::mutex mutex_;
  std::condition_variable batch_done_;
  service_slot* list_ = nullptr;
  bool started_ = false;
  bool restart_ = false;  // child: the parent had a thread
  bool batch_active_ = false;
  pthread_t thread_{};
  kick_queue queue_;
};

// The two services (src/service.cc).
service& engine() noexcept;
service& callback_thread() noexcept;

}  // namespace srcu::detail
