// The library thread that serves every domain kicked onto its queue: the
// grace-period engine ("srcu-engine"). Started with the first domain;
// creating more domains creates no thread. It never runs user code and never
// waits for a thread that does (user callbacks run on the callback pool,
// callback_pool.h), so its steps are short and never block.
//
// A service steps each kicked domain with no lock held (the domain is marked
// busy meanwhile; forget() waits for that). A step that must retry (readers
// still inside) is re-run after a backoff (50 us doubling to 5 ms), never
// slept on, so one blocked domain never holds up the others. A step may ask
// for a longer pause (retry_floor_ns): a grace period stalled by a reader for
// a long time is polled less often, so 100,000 stalled domains do not keep
// the engine busy.
//
// Lock order: service mutex -> registry -> domain locks. kick() takes no lock
// and is async-signal-safe.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <cstdint>
#include <vector>

#include "kick_queue.h"
#include "library_thread.h"
#include "mutex.h"

namespace srcu::detail {

struct domain_state;

enum class service_result { kDone, kRetry };

// Per (domain, service) bookkeeping, embedded in domain_state.
struct service_slot {
  static constexpr std::uint32_t kNotListed = ~std::uint32_t{0};
  domain_state* owner = nullptr;  // its kick_node is in the public domain
  // Position in the service's timer heap (ordered by when it is due), or
  // kNotListed. A slot being stepped is not in the heap. Service mutex.
  std::uint32_t heap_index = kNotListed;
  bool busy = false;   // being stepped right now
  bool rekicked = false;  // kicked again while busy: step again, do not unlink
  bool dying = false;  // ~domain: never step again
  // Set by a step that returns kRetry because a reader scan waits for a
  // heavy barrier (readers_idle()): the service issues one for all such
  // steps of its batch and steps them again. Service thread only. (Beside
  // the other flags: no padding.)
  bool barrier_wanted = false;
  std::uint64_t backoff_ns = 0;
  // Set by a step (on the service thread) that has work due at a known
  // time: the domain stays listed and is stepped again by then, without
  // a kick. 0: none. Read and cleared by the service after the step.
  std::uint64_t step_again_at_ns = 0;
  // Set by a step that returns kRetry: retry no sooner than this many ns
  // from now (0: the usual backoff). Read and cleared by the service.
  std::uint64_t retry_floor_ns = 0;
};

class service {
 public:
  using step_fn = service_result (*)(domain_state*);
  // Called once per loop, no lock held: returns when it wants to run again
  // (monotonic ns, ~0 for "not before the next wake").
  using tick_fn = std::uint64_t (*)(std::uint64_t now_ns);
  service(const char* thread_name, step_fn step, service_slot domain_state::*slot, tick_fn tick)
      : name_(thread_name), step_(step), slot_(slot), tick_(tick) {}

  static constexpr std::size_t kMaxStepsPerLoop = 128;

  void start() noexcept;                  // idempotent
  void kick(domain_state* d) noexcept;    // lock-free, async-signal-safe
  // The same for a domain that may have no state yet: the service creates
  // it when it takes the kick (state_maker), then acts on its asks.
  void kick(domain* d) noexcept;
  // ~domain(): takes the pending kicks, so that a domain still without a
  // state after this has none in flight either; returns d's state (null:
  // never made).
  domain_state* settle(domain* d) noexcept;
  void wake() noexcept;                   // run the loop (and the tick) now; lock-free
  void forget(domain_state* d) noexcept;  // from ~domain: never touch d again

  void prepare_fork() noexcept SRCU_ACQUIRE(mutex_);
  void parent_after_fork() noexcept SRCU_RELEASE(mutex_);
  void child_after_fork() noexcept SRCU_RELEASE(mutex_);  // absorbs kicks, releases the mutex
  void restart_after_fork() noexcept;  // then, once the domains are settled

 private:
  static void* thread_main(void* self);
  void run();
  void step_again_after_barrier(const std::vector<domain_state*>& batch,
                                std::vector<service_result>& results) noexcept;
  // may_create false in the fork child: a domain without a state keeps its
  // asks (fork.cc kicks it again once the thread is back).
  void absorb_locked(bool may_create = true) SRCU_REQUIRES(mutex_);
  static constexpr std::uint32_t kHeapArity = 4;
  // The work list is a 4-ary min-heap on the time each slot is due, so a loop costs
  // O(due log n), not O(listed): 100,000 stalled domains stay cheap.
  void link_locked(service_slot* s, std::uint64_t check_at_ns) SRCU_REQUIRES(mutex_);  // insert or re-key
  void unlink_locked(service_slot* s) SRCU_REQUIRES(mutex_);
  void heap_swap(std::uint32_t a, std::uint32_t b) noexcept SRCU_REQUIRES(mutex_);
  void sift_up(std::uint32_t i) noexcept SRCU_REQUIRES(mutex_);
  void sift_down(std::uint32_t i) noexcept SRCU_REQUIRES(mutex_);
  void start_thread_locked() noexcept SRCU_REQUIRES(mutex_);

  const char* const name_;
  const step_fn step_;
  service_slot domain_state::* const slot_;
  const tick_fn tick_;
  // Outermost: taken before the registry and every domain mutex.
  detail::mutex mutex_;
  std::condition_variable batch_done_;
  struct heap_entry {
    std::uint64_t key;  // when the slot is due (monotonic ns)
    service_slot* slot;
  };
  std::vector<heap_entry> heap_ SRCU_GUARDED_BY(mutex_);
  bool started_ SRCU_GUARDED_BY(mutex_) = false;
  bool restart_ SRCU_GUARDED_BY(mutex_) = false;  // child: the parent had a thread
  bool batch_active_ SRCU_GUARDED_BY(mutex_) = false;
  thread_gate gate_;
  kick_queue queue_;
};

// The engine (src/service.cc).
service& engine() noexcept;

}  // namespace srcu::detail
