// The compiled side of a domain. One room per concern:
//   reader_slots.cc  per-thread slots, the thread registry, thread exit
//   grace_period.cc  the grace-period state machine and the updater API
//   engine.cc        the library thread that drives polled grace periods
//   fork.cc          pthread_atfork handlers
//   domain.cc        construction, destruction, token checks
//
// Lock order (outermost first); no library lock is held while srcu calls out
// (user code, wake-ups, stall reports):
//   engine mutex -> registry mutex -> domain gp_mutex -> domain slot_mutex
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

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
  const char* const name;
  const std::chrono::milliseconds stall_timeout;

  // --- Reader slots (reader_slots.cc) ---------------------------------------
  std::mutex slot_mutex;                   // guards free_slots, chunk allocation
  std::atomic<slot_chunk*> chunks{nullptr};
  counter_block* free_slots = nullptr;     // guarded by slot_mutex
  std::uint32_t next_chunk_size = 4;       // guarded by slot_mutex
  std::uint32_t shard_count = 0;

  counter_block* take_slot(void* owner);      // takes slot_mutex
  void put_slot_locked(counter_block* slot);  // slot_mutex held
  void balance_shards() noexcept;             // fork child only
  std::uint64_t sum_locks(unsigned idx) const noexcept;
  std::uint64_t sum_unlocks(unsigned idx) const noexcept;
  bool thread_in_reader() const noexcept;  // calling thread inside read_lock()?

  // --- Grace periods (grace_period.cc) ---------------------------------------
  std::mutex gp_mutex;                     // held only for one non-blocking step
  std::atomic<std::uint64_t> gp_seq{0};
  std::atomic<std::uint64_t> gp_seq_needed{0};
  std::atomic<std::uint64_t> gp_start_ns{0};     // when the current GP began
  std::atomic<std::uint64_t> stall_reported_seq{~std::uint64_t{0}};
  std::atomic<std::uint32_t> gp_done_word{0};    // futex: bumped at each GP end
  std::atomic<std::uint32_t> waiters{0};         // threads waiting in wait_for()
  std::atomic<std::uint32_t> expedited_waiters{0};
  std::atomic<std::uint32_t> kick_word{0};       // futex: wakes the driver early
  std::atomic<bool> driver{false};               // one thread polls readers at a time
  std::atomic<std::uint64_t> last_active{0};     // readers seen by the last scan (stall report)

  std::uint64_t snapshot() noexcept;             // fence + seq_snap(gp_seq)
  void request(std::uint64_t cookie) noexcept;   // gp_seq_needed = max(.., cookie)
  bool done(std::uint64_t cookie) const noexcept;
  bool readers_idle(unsigned idx) noexcept;
  step_result advance_locked(bool* completed) noexcept;
  step_result drive_once() noexcept;             // try driver role, step, release
  void wait_for(std::uint64_t cookie, bool expedited);
  void check_stall() noexcept;
  void wake_gp_waiters() noexcept;
  void release_driver(bool hand_to_engine) noexcept;

  // --- Engine (engine.cc); fields owned by the engine ------------------------
  std::atomic<bool> engine_queued{false};        // on the engine's pending stack
  domain_state* engine_pending_next = nullptr;
  domain_state* engine_prev = nullptr;           // work list, engine mutex
  domain_state* engine_next = nullptr;
  bool engine_listed = false;
  bool engine_busy = false;                      // the engine is stepping it
  bool engine_dying = false;
  std::uint64_t engine_next_check_ns = 0;
  std::uint64_t engine_backoff_ns = 0;
};

// reader_slots.cc
std::uint32_t registry_add(domain_state* d);       // returns the domain id
void registry_remove(std::uint32_t id);            // clears every thread's entry
counter_block* register_thread_slot(domain_state* d, std::uint32_t id);
void* current_thread_record() noexcept;
void registry_prepare_fork() noexcept;             // takes every registry/domain lock
void registry_parent_after_fork() noexcept;
void registry_child_after_fork() noexcept;         // balances vanished threads' readers

// engine.cc
void engine_start() noexcept;                      // with the first domain
void engine_kick(domain_state* d) noexcept;        // async-signal-safe
void engine_forget(domain_state* d) noexcept;      // from ~domain
void engine_prepare_fork() noexcept;
void engine_parent_after_fork() noexcept;
void engine_child_after_fork() noexcept;

}  // namespace srcu::detail
