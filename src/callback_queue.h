// Layer 3 of a domain's compiled side (domain_state.h shows all four): the
// callback queue (callbacks.cc). call() stages on the domain's shards; the
// engine drains the staging into at most two segments waiting for a grace
// period; ready callbacks leave in batches, run by a callback worker or
// handed to the domain's executor. It uses the grace-period machine only
// through cookies (snapshot, request, done).
#pragma once

#include <atomic>
#include <cstdint>

#include "grace_periods.h"

namespace srcu::detail {

class callback_queue : public grace_periods {
 public:
  callback_queue(domain* self, const domain_options& options, shard_block* small_shard);

  // Flood catch-up (catch_up_with_flood()).
  static constexpr std::uint64_t kFloodCheckEvery = 64;      // call()s per shard; power of 2
  static constexpr std::uint64_t kFloodHighWater = 1u << 18;  // owed callbacks
  static constexpr std::uint32_t kFloodMaxYields = 64;

  // The user's side.
  void call(callback_head* head, void (*func)(callback_head*)) noexcept;
  // call() on a domain whose state is not made yet (domain::call()).
  static void call_without_state(domain& d, callback_head* head, void (*func)(callback_head*)) noexcept;
  // The engine, for callbacks staged before the state was made: drain them.
  void note_staged() noexcept;
  void barrier() SRCU_EXCLUDES(mutex);
  void wait_for_backlog_below(std::uint64_t limit) noexcept;  // bounded call(F)/retire()
  std::uint64_t backlog_limit() const noexcept { return cb_backlog_limit; }
  // rcu_synchronize() inside this domain's own callback: runs what was
  // queued before, inline. False when not inside one of its batches.
  bool run_queued_inline() noexcept SRCU_EXCLUDES(mutex);
  std::uint64_t callbacks_pending() const noexcept;  // queued, not yet returned
  bool running_own_callbacks() const noexcept;       // this thread, inside ours?
  void check_may_wait_for_callbacks(const char* what) const noexcept;
  // ~domain(): aborts with a message if a reader is inside (waits for a
  // running batch of this domain's callbacks first: one may be the reader).
  void check_no_readers_at_destruction() noexcept SRCU_EXCLUDES(mutex);
  // ~domain(): waits until no callback_batch::run() of this domain is
  // between its first callback and its last touch of the domain.
  void wait_for_completing_batches() const noexcept;

  // The engine's side. Drains the staging into segments unless
  // callback_delay holds it back: then returns when to look again
  // (monotonic ns), else 0.
  std::uint64_t drain_staged_when_due() noexcept SRCU_EXCLUDES(mutex);
  bool move_ready() noexcept SRCU_EXCLUDES(mutex);   // wait -> ready; true if any ready

  // A worker's side (callback_pool.cc): one batch, run or submitted.
  void dispatch_batch() noexcept SRCU_EXCLUDES(mutex);
  // callback_batch::run(): before the first callback, and after the last.
  void batch_started() noexcept;
  void complete_batch(std::size_t size) noexcept SRCU_EXCLUDES(mutex);

  void fill_stats(domain_stats& s) const noexcept;

  // srcu::reclaim_list objects on this domain (reclaim_list.cc), which flush
  // into it when destroyed: ~domain() refuses to go while one exists.
  // Counted up to kManyReclaimLists; from there on no longer counted (and
  // not checked).
  static constexpr std::uint16_t kManyReclaimLists = 0xffff;
  void reclaim_list_made() noexcept;
  void reclaim_list_gone() noexcept;
  std::uint16_t reclaim_lists() const noexcept { return cb_reclaim_lists.load(std::memory_order_acquire); }

  // fork child (fork.cc): inherited callbacks run in the parent, so the
  // child's copies are discarded and their tickets settled.
  void child_after_fork() noexcept SRCU_REQUIRES(mutex);

 private:
  // A list of callbacks waiting for (or past) one grace-period cookie.
  struct segment {
    callback_head* head = nullptr;
    callback_head* tail = nullptr;
    std::uint64_t cookie = 0;
    std::uint64_t count = 0;  // callbacks, not counting barrier() markers
    bool empty() const noexcept { return head == nullptr; }
    void append(segment& other) noexcept;  // moves other's callbacks here
  };

  void stage(shard_block& shard, callback_head* head) noexcept;  // push + engine kick
  void drain_staged() SRCU_EXCLUDES(mutex);
  bool advance_ready_locked() noexcept SRCU_REQUIRES(mutex);
  // Stages a barrier marker (an array of kMaxStagingBlocks) on every block
  // call() may stage on, sets `remaining` to their number, and
  // hurries the engine; each marker decrements `remaining` when it runs.
  void stage_markers(void* marker_array, std::atomic<std::uint32_t>& remaining) noexcept;
  std::uint64_t tickets() const noexcept;            // call()s ever taken a ticket
  // Pending minus those waiting for a grace period: the work srcu's own
  // threads owe (staged, ready, running). What a flood is measured by.
  std::uint64_t callbacks_owed() const noexcept;
  void catch_up_with_flood() noexcept;               // call(): yields while far behind

  executor* const cb_executor;
  const std::uint64_t cb_delay_ns;                     // domain_options::callback_delay
  const std::uint64_t cb_backlog_limit;                // domain_options::callback_backlog_limit
  std::uint64_t cb_last_drain_ns = 0;                  // engine thread only
  segment cb_wait[2] SRCU_GUARDED_BY(mutex);           // at most two cookies pending
  segment cb_ready SRCU_GUARDED_BY(mutex);             // past their grace period
  std::atomic<std::uint64_t> cb_invoked{0};            // callbacks whose batch has completed
  std::atomic<std::uint64_t> cb_gp_waiting{0};         // callbacks in cb_wait (written under mutex)
  std::atomic<std::uint32_t> cb_done_word{0};          // futex: bumped per completed batch
  std::atomic<std::uint32_t> cb_hurry{0};              // barrier()/backlog waiters: no delay
  std::atomic<std::uint32_t> cb_completing{0};         // batch completions touching this
  // The two flags last, beside the 32-bit words (no padding: every domain
  // has these bytes).
  std::atomic<bool> cb_staged{false};                  // call() since the engine last drained
  bool cb_batch_out SRCU_GUARDED_BY(mutex) = false;    // one batch per domain out
  std::atomic<std::uint16_t> cb_reclaim_lists{0};      // reclaim_lists(); in the flags' padding
};

}  // namespace srcu::detail
