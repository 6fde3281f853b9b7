// The callback workers: the library threads that run user code. Every ready
// batch of callbacks is run (or handed to the domain's executor) by one of
// them; the engine, which drives grace periods for every domain, never runs
// user code and never waits for a worker.
//
// The delivery rule (docs/design.md, "Callback delivery"): no thread that runs
// user code is ever needed for another domain's callbacks to make progress.
//
//   - Domains with ready callbacks wait in one FIFO run queue. A worker takes
//     the domain at the head, runs (or submits) at most kBatchLimit of its
//     callbacks, and puts it back at the tail if more are ready: domains take
//     fair turns, and a flood on one delays another by one batch at most.
//   - At most one batch per domain is out at a time (callbacks keep their
//     order even on a multi-threaded executor), so one domain never occupies
//     more than one worker.
//   - When work has waited kSpawnAfter at the head of the queue and no worker
//     is idle (every worker is inside a callback or a submit() that sleeps,
//     or they are starved of CPU), the engine starts another worker, up to
//     kMaxWorkers. Like the kernel's concurrency-managed workqueues: a
//     callback that sleeps, waits in barrier() for another domain, or
//     deletes a domain, costs a thread, not a deadlock. Workers beyond the
//     first leave after kIdleExit without work.
//
// Lock order: the pool mutex is a leaf: nothing else is taken while it is
// held, and it is never held while calling out (callbacks, submit(), wakes).
#pragma once

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>

#include "library_thread.h"
#include "mutex.h"

namespace srcu::detail {

struct domain_state;

// Per-domain bookkeeping of the pool, embedded in domain_state; every field
// but owner is guarded by the pool mutex (callback_pool::mutex_; the fields
// live in the domain, so the analysis cannot name it: the pool's functions
// that touch them hold it by their own annotations).
struct pool_entry {
  domain_state* owner = nullptr;
  pool_entry* next = nullptr;     // run queue link
  std::uint64_t queued_at_ns = 0;
  bool queued = false;            // on the run queue
  bool in_service = false;        // a worker is dispatching this domain
  bool requeue = false;           // enqueued while in service: back to the tail after
  bool dying = false;             // ~domain: never served again
  bool stall_report = false;      // report a stall before the next dispatch
};

class callback_pool {
 public:
  static constexpr std::uint32_t kBatchLimit = 1024;        // callbacks per turn
  static constexpr std::uint32_t kMaxWorkers = 32;
  static constexpr std::uint64_t kSpawnAfterNs = 2'000'000;  // 2 ms at the head
  static constexpr std::uint64_t kIdleExitNs = 10'000'000'000;  // 10 s

  void start() noexcept;                    // the first worker (idempotent)
  void enqueue(domain_state* d) noexcept;   // d has ready callbacks; any thread
  // d's grace period has stalled: a worker calls d->report_stall() (no
  // library lock held) in d's next turn. Any thread.
  void request_stall_report(domain_state* d) noexcept;
  void forget(domain_state* d) noexcept;    // ~domain: waits for a worker serving d
  // Engine thread: starts a worker if work has waited too long; returns
  // when to look again (monotonic ns; ~0: not until the next wake).
  std::uint64_t maintain(std::uint64_t now_ns) noexcept;
  std::uint32_t workers() noexcept;         // tests and diagnostics

  void prepare_fork() noexcept SRCU_ACQUIRE(mutex_);
  void parent_after_fork() noexcept SRCU_RELEASE(mutex_);
  void child_after_fork() noexcept SRCU_RELEASE(mutex_);  // every worker vanished
  void restart_after_fork() noexcept;

 private:
  static void* thread_main(void* self);
  void run();
  bool spawn_locked() noexcept SRCU_REQUIRES(mutex_);
  void enqueue_entry(domain_state* d, bool stall) noexcept;
  void append_locked(pool_entry* e, std::uint64_t now_ns) noexcept SRCU_REQUIRES(mutex_);

  // A leaf: nothing else is taken while it is held.
  detail::mutex mutex_;
  std::condition_variable served_;          // forget() waits for in_service to clear
  pool_entry* head_ SRCU_GUARDED_BY(mutex_) = nullptr;  // run queue, FIFO
  pool_entry* tail_ SRCU_GUARDED_BY(mutex_) = nullptr;
  std::uint32_t workers_ SRCU_GUARDED_BY(mutex_) = 0;   // started and not exited
  std::uint32_t idle_ SRCU_GUARDED_BY(mutex_) = 0;      // sleeping on wake_word_
  std::uint32_t next_worker_id_ SRCU_GUARDED_BY(mutex_) = 0;
  bool restart_ SRCU_GUARDED_BY(mutex_) = false;        // fork child: the parent had workers
  bool saturated_reported_ SRCU_GUARDED_BY(mutex_) = false;
  std::atomic<std::uint32_t> wake_word_{0}; // futex: bumped under mutex_ to wake idlers
  thread_gate gate_;                        // workers starting or leaving (fork)
};

callback_pool& pool() noexcept;

}  // namespace srcu::detail
