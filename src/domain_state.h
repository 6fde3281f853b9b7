// The compiled side of a domain. One room per concern:
//   reader_slots.cc  per-thread slots, the thread registry, thread exit
//   grace_period.cc  the grace-period state machine and the updater API
//   callbacks.cc     call(), barrier(), segments, batches, executors
//   service.cc       the engine thread (grace periods, staging)
//   callback_pool.cc the callback workers (run callbacks, call executors)
//   fork.cc          pthread_atfork handlers
//   stall.cc         stall reports (made on a callback worker), statistics
//   lockdep.cc       the deadlock detector (debug builds), tracked_mutex
//   trace.h/.cc      USDT probes
//   srcu_c.cc        the C API
//   domain.cc        construction, destruction, token checks
//
// Lock order (outermost first); no library lock is held while srcu calls out
// (user callbacks, executors, wake-ups, stall reports):
//   engine's service mutex -> registry mutex
//     -> domain mutex (one per domain, held only for short non-blocking steps)
//   callback pool mutex: a leaf, taken with no other library lock held
//   (fork's prepare handler takes it after the service mutex, before the registry)
//   deadlock detector mutex (lockdep.cc, debug builds): a leaf, taken by user
//   threads before they wait, never with another library lock held
//   (fork's prepare handler takes it first)
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "callback_pool.h"
#include "diagnostics.h"
#include "service.h"
#include "srcu/diagnostics.h"
#include "srcu/domain.h"

namespace srcu::detail {

// A block of reader slots. Chunks are only ever added (at the head, with a
// release store) while the domain lives, so scanners walk them lock-free.
struct slot_chunk {
  slot_chunk* next = nullptr;
  std::uint32_t count = 0;
  counter_block* slots = nullptr;
};

// Grace-period sequence: (completed count << 2) | state.
inline constexpr std::uint64_t kStateMask = 3;
inline constexpr std::uint64_t kStateIdle = 0;
inline constexpr std::uint64_t kStateScan1 = 1;  // waiting on the inactive index (stragglers)
inline constexpr std::uint64_t kStateScan2 = 2;  // flipped; waiting on the old index

// a >= b on the wrapping sequence.
inline bool seq_ge(std::uint64_t a, std::uint64_t b) noexcept {
  return static_cast<std::int64_t>(a - b) >= 0;
}
// The sequence value at which a grace period that starts after `s` has ended.
inline std::uint64_t seq_snap(std::uint64_t s) noexcept {
  return (s + 2 * kStateMask + 1) & ~kStateMask;
}

enum class step_result {
  kDone,     // nothing (more) to do: the sequence reached the needed target
  kBusy,     // readers still present on the index being scanned; retry later
  kContended // another thread holds the driver role
};

struct domain_state {
  domain_state(domain* self, const domain_options& options);
  ~domain_state();

  domain* const self;
  const std::string name_copy;  // domain_options::name, owned by the domain
  const char* const name;       // name_copy.c_str(), for messages
  const std::chrono::milliseconds stall_timeout;

  // Guards the slot free list and chunk allocation, one grace-period step at
  // a time, and the callback segments. Never held while calling out.
  std::mutex mutex;

  // --- Reader slots (reader_slots.cc) ---------------------------------------
  std::atomic<slot_chunk*> chunks{nullptr};
  counter_block* free_slots = nullptr;     // guarded by mutex
  std::uint32_t next_chunk_size = 4;       // guarded by mutex
  std::uint32_t shard_count = 0;

  std::uint32_t slots_handed_out = 0;      // guarded by mutex: slots in all chunks
  // Guarded by mutex: each counter block's unlock count from the first pass
  // of readers_idle(), compared block by block in the second (so a double
  // unlock on one thread cannot hide another thread's reader). Grown with
  // the chunks, so a scan never allocates.
  std::unique_ptr<std::uint64_t[]> scan_unlocks;

  counter_block* take_slot(void* owner);      // takes mutex
  void put_slot_locked(counter_block* slot);  // mutex held
  void balance_shards() noexcept;             // fork child only
  // f(const counter_pair&, const counter_block* slot_or_null) for every slot
  // ever handed out, then every shard (slot == nullptr), always in the same
  // order while the mutex is held (chunks are added only under it).
  template <class F>
  void for_each_counter_pair(F&& f) const;
  std::uint64_t sum_counters(unsigned idx, bool locks) const noexcept;
  enum class reader_state { outside, inside, over_unlocked };
  reader_state thread_reader_state() const noexcept;  // the calling thread's read_lock()s
  bool thread_in_reader() const noexcept { return thread_reader_state() == reader_state::inside; }

  // --- Grace periods (grace_period.cc) ---------------------------------------
  std::atomic<std::uint64_t> gp_seq{0};
  std::atomic<std::uint64_t> gp_seq_needed{0};
  std::atomic<std::uint64_t> gp_start_ns{0};     // when the current GP began
  std::atomic<std::uint32_t> gp_done_word{0};    // futex: bumped at each GP end
  std::atomic<std::uint32_t> waiters{0};         // threads waiting in wait_for()
  std::atomic<std::uint32_t> expedited_waiters{0};
  std::atomic<std::uint32_t> kick_word{0};       // futex: wakes the driver early
  std::atomic<bool> driver{false};               // one thread polls readers at a time
  std::atomic<std::uint64_t> last_active{0};     // readers seen by the last scan (stall report)

  std::uint64_t snapshot() noexcept;             // fence + seq_snap(gp_seq)
  void request(std::uint64_t cookie) noexcept;   // gp_seq_needed = max(.., cookie)
  bool done(std::uint64_t cookie) const noexcept;
  bool readers_idle(unsigned idx) noexcept;      // mutex held
  [[noreturn]] void report_unlock_without_lock(const counter_block* slot, unsigned idx,
                                               std::uint64_t extra) const noexcept;
  step_result advance_locked(bool* completed) noexcept;
  step_result drive_once() noexcept;             // try driver role, step, release
  void wait_for(std::uint64_t cookie, bool expedited);
  void check_stall() noexcept;                   // driver: queue a stall report when due
  void note_gp_end(std::uint64_t seq) noexcept;  // mutex held: statistics, probe
  void wake_gp_waiters() noexcept;
  void release_driver(bool hand_to_engine) noexcept;

  // --- Callbacks (callbacks.cc) ---------------------------------------------
  // Staging is in the domain's shards (shard_block: staged, enqueued):
  // call() takes a ticket on its thread's shard and pushes there. Tickets
  // minus cb_invoked is the number of callbacks queued and not yet returned.
  static constexpr std::uint32_t kMaxCallbackShards = 8;
  // Flood catch-up (catch_up_with_flood()).
  static constexpr std::uint64_t kFloodCheckEvery = 64;      // call()s per shard; power of 2
  static constexpr std::uint64_t kFloodHighWater = 1u << 18;  // owed callbacks
  static constexpr std::uint32_t kFloodMaxYields = 64;
  // A list of callbacks waiting for (or past) one grace-period cookie.
  struct segment {
    callback_head* head = nullptr;
    callback_head* tail = nullptr;
    std::uint64_t cookie = 0;
    std::uint64_t count = 0;  // callbacks, not counting barrier() markers
    bool empty() const noexcept { return head == nullptr; }
    void append(segment& other) noexcept;           // moves other's callbacks here
  };

  executor* cb_executor = nullptr;
  std::atomic<bool> cb_staged{false};      // call() since the engine last drained
  std::uint64_t cb_delay_ns = 0;           // domain_options::callback_delay
  std::uint64_t cb_last_drain_ns = 0;      // engine thread only
  std::uint64_t cb_backlog_limit = 0;      // domain_options::callback_backlog_limit
  std::atomic<bool> cb_waiting_gp{false};  // a segment waits for a grace period
  segment cb_wait[2];                      // guarded by mutex; at most two cookies pending
  segment cb_ready;                        // guarded by mutex; past their grace period
  bool cb_batch_out = false;               // guarded by mutex; one batch per domain out
  std::atomic<std::uint64_t> cb_invoked{0};       // callbacks whose batch has completed
  std::atomic<std::uint64_t> cb_gp_waiting{0};    // callbacks in cb_wait (written under mutex)
  std::atomic<std::uint32_t> cb_done_word{0};     // futex: bumped per completed batch
  std::atomic<std::uint32_t> cb_hurry{0};         // barrier()/backlog waiters: no delay
  std::atomic<std::uint32_t> cb_completing{0};    // batch completions touching this

  void call(callback_head* head, void (*func)(callback_head*)) noexcept;
  void stage(shard_block& shard, callback_head* head) noexcept;  // push + engine kick
  void drain_staged();                     // engine: staging -> segments
  bool advance_ready_locked() noexcept;    // wait -> ready; true if ready non-empty
  void complete_batch(std::size_t size) noexcept;
  callback_batch make_batch(callback_head* head, std::size_t size) noexcept {
    return callback_batch(this, head, size);
  }
  void barrier();
  // Stages a barrier marker (an array of kMaxCallbackShards) on every shard
  // and hurries the engine; each marker decrements `remaining` when it runs.
  void stage_markers(void* marker_array, std::atomic<std::uint32_t>& remaining) noexcept;
  // rcu_synchronize() inside this domain's own callback: runs what was
  // queued before, inline. False when not inside one of its batches.
  bool run_queued_inline() noexcept;
  static domain_state* of(domain& d) noexcept { return d.state_; }
  void wait_for_backlog_below(std::uint64_t limit) noexcept;  // bounded call(F)/retire()
  std::uint64_t callbacks_pending() const noexcept;  // queued, not yet returned
  // Pending minus those waiting for a grace period: the work srcu's own
  // threads owe (staged, ready, running). What a flood is measured by.
  std::uint64_t callbacks_owed() const noexcept;
  void catch_up_with_flood() noexcept;      // call(): yields while far behind
  bool running_own_callbacks() const noexcept;       // this thread, inside ours?
  void check_may_wait_for_callbacks(const char* what) const noexcept;
  void discard_callbacks_in_child() noexcept;
  // ~domain(): aborts with a message if a reader is inside (waits for a
  // running batch of this domain's callbacks first: one may be the reader).
  void check_no_readers_at_destruction() noexcept;

  // --- Diagnostics (stall.cc) ---------------------------------------------------
  // Written by the grace-period driver (one thread at a time; the role
  // changes hands with seq_cst operations) and, stall_next_ns, pushed later
  // by the reporting worker when it issues a report.
  std::atomic<std::uint64_t> stall_seq{~std::uint64_t{0}};  // the GP stall_next_ns is for
  std::atomic<std::uint64_t> stall_next_ns{0};     // when that GP is reported (again)
  std::atomic<std::uint64_t> stall_report_seq{~std::uint64_t{0}};  // the GP a queued report is for
  std::atomic<std::uint64_t> stalls_reported{0};   // domain_stats
  std::atomic<std::uint64_t> expedited_gps{0};     // domain_stats: written under mutex
  std::atomic<std::uint64_t> longest_gp_ns{0};     // domain_stats: written under mutex
  // A callback worker, no library lock held: builds the report (taking the
  // mutex to walk the slots) and calls the stall handler outside it.
  void report_stall() noexcept;
  domain_stats stats() const noexcept;

  // --- Library threads (service.cc, callback_pool.cc) -------------------------
  service_slot engine_slot;
  pool_entry delivery;
};

template <class F>
void domain_state::for_each_counter_pair(F&& f) const {
  for (slot_chunk* c = chunks.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    for (std::uint32_t i = 0; i < c->count; ++i) f(static_cast<const counter_pair&>(c->slots[i]), &c->slots[i]);
  }
  for (std::uint32_t i = 0; i < shard_count; ++i) {
    f(static_cast<const counter_pair&>(self->shards_[i]), static_cast<const counter_block*>(nullptr));
  }
}

// reader_slots.cc
// "thread 1234 ('name')" for the thread holding a slot; for reports.
void describe_slot_owner(message& m, const counter_block* slot) noexcept;
pid_t slot_owner_tid(const counter_block* slot) noexcept;  // 0: none; the slot's domain mutex held
// fn(d, ctx) for every domain the calling thread is inside a read_lock()
// section of (its own slots), registry mutex held (fn must not take it).
void visit_readers_of_this_thread(void (*fn)(const domain_state* d, void* ctx), void* ctx);
// fn(d, ctx) for every live domain, registry mutex held (fn must not take it).
void registry_visit(void (*fn)(domain_state* d, void* ctx), void* ctx);
std::uint32_t registry_add(domain_state* d);       // returns the domain id
void registry_remove(std::uint32_t id);            // clears every thread's entry
counter_block* register_thread_slot(domain_state* d, std::uint32_t id);
void* current_thread_record() noexcept;
void registry_prepare_fork() noexcept;             // takes every registry/domain lock
void registry_parent_after_fork() noexcept;
void registry_child_after_fork() noexcept;         // balances vanished threads' readers

}  // namespace srcu::detail
