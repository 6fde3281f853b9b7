// Layer 2 of a domain's compiled side (domain_state.h shows all four): the
// grace-period machine (grace_period.cc), its sequence and cookies, the
// driver role, the waiters, and stall detection (stall.cc makes the
// reports). It reads the reader side only through readers_idle() (and
// index_taken_since_last_look(), a hint for the wait after the flip).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "readers.h"

namespace srcu::detail {

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
  kDone,  // nothing (more) to do, or another thread holds the driver role
  kBusy,  // readers still present on the index being scanned; retry later
};

class grace_periods : public reader_side {
 public:
  grace_periods(domain* self, const domain_options& options, shard_block* small_shard);

  // Cookies (docs/design.md §1.3).
  std::uint64_t snapshot() noexcept;             // fence S + seq_snap(gp_seq)
  void request(std::uint64_t cookie) noexcept;   // gp_seq_needed = max(.., cookie)
  // The same, for a cookie no waiter drives (start_poll(), the engine's own
  // for callbacks and asks): also engine_needed, which a leaving driver
  // hands back to the engine.
  void request_for_engine(std::uint64_t cookie) noexcept;
  bool done(std::uint64_t cookie) const noexcept;
  bool requested_not_done() const noexcept;      // a requested grace period is owed
  std::uint64_t completed() const noexcept;      // grace periods completed

  // The updater's wait: drives the machine itself when no one else does.
  void wait_for(std::uint64_t cookie, bool expedited) SRCU_EXCLUDES(mutex);
  // The engine's step: takes the driver role if free, runs the machine as
  // far as it goes without waiting, releases the role. kDone also when
  // another thread drives (it hands back in release_driver()). kBusy with
  // awaiting_heavy_barrier(): a scan kept its first pass for the barrier the
  // engine issues for its batch (readers_idle()).
  step_result drive_once() noexcept SRCU_EXCLUDES(mutex);
  bool driver_active() const noexcept;           // ~domain(): a synchronize() in progress
  std::uint64_t current_gp_age_ns() const noexcept;

  // Grace-period ends, for waiters that poll with a timeout.
  std::uint32_t gp_end_word() const noexcept;
  void wait_for_gp_end(std::uint32_t seen, std::chrono::nanoseconds timeout) noexcept;
  // Callbacks wait for a grace period: kick the engine at each end.
  void set_callbacks_waiting(bool waiting) noexcept;

  // A callback worker, no library lock held: builds the stall report
  // (taking the mutex to walk the slots) and calls the stall handler
  // outside it (stall.cc).
  void report_stall() noexcept SRCU_EXCLUDES(mutex);
  void fill_stats(domain_stats& s) const noexcept;

  // fork child (fork.cc): a vanished updater may have been driving or waiting.
  void child_after_fork() noexcept SRCU_REQUIRES(mutex);

 private:
  // engine: the scans may leave their heavy barrier to the engine's batch.
  step_result advance_locked(bool* completed, bool engine) noexcept SRCU_REQUIRES(mutex);
  // Driver role held: one step; the caller wakes the waiters if *completed.
  step_result step_as_driver(bool* completed, bool engine = false) noexcept SRCU_EXCLUDES(mutex);
  void check_stall() noexcept;                   // driver: queue a stall report when due
  void note_gp_end(std::uint64_t seq) noexcept SRCU_REQUIRES(mutex);  // statistics, probe
  void end_gp_locked(std::uint64_t seq, bool* completed) noexcept SRCU_REQUIRES(mutex);
  void wake_gp_waiters() noexcept;
  void release_driver(bool hand_to_engine, bool ended_gp = false) noexcept;

  const std::chrono::milliseconds stall_timeout;
  std::atomic<std::uint64_t> gp_seq{0};
  std::atomic<std::uint64_t> gp_seq_needed{0};
  // The largest cookie requested by request_for_engine(): the grace periods
  // only the engine will drive. A synchronize() caller's own need is not
  // here: it drives it itself, or a leaving driver wakes a waiter for it.
  std::atomic<std::uint64_t> engine_needed{0};
  std::atomic<std::uint64_t> gp_start_ns{0};     // when the current GP began
  std::atomic<std::uint32_t> gp_done_word{0};    // futex: bumped at each GP end
  std::atomic<std::uint32_t> waiters{0};         // threads waiting in wait_for()
  std::atomic<std::uint32_t> expedited_waiters{0};
  std::atomic<std::uint32_t> kick_word{0};       // futex: wakes the driver early
  std::atomic<bool> driver{false};               // one thread polls readers at a time
  std::atomic<bool> cb_waiting_gp{false};    // a callback segment waits for a GP
  // The last grace period took kShareWorthNs or more: worth a yield before
  // the next, so that the callers it woke share it (wait_for()). Driver.
  std::atomic<bool> last_gp_long{false};
  static constexpr std::uint64_t kShareWorthNs = 5'000;
  // At most this many yields let woken callers back in (wait_for()).
  static constexpr std::uint32_t kMaxGatherYields = 4;
  std::atomic<std::uint32_t> woken_at_last_end{0};  // waiters the last GP end woke (a hint)

  // Stall detection. Written by the driver (one thread at a time; the role
  // changes hands with seq_cst operations) and, stall_next_ns, pushed later
  // by the reporting worker when it issues a report.
  std::atomic<std::uint64_t> stall_seq{~std::uint64_t{0}};  // the GP stall_next_ns is for
  std::atomic<std::uint64_t> stall_next_ns{0};     // when that GP is reported (again)
  std::atomic<std::uint64_t> stall_report_seq{~std::uint64_t{0}};  // the GP a queued report is for
  std::atomic<std::uint64_t> stalls_reported{0};   // domain_stats
  std::atomic<std::uint64_t> expedited_gps{0};     // domain_stats: written under mutex
  std::atomic<std::uint64_t> longest_gp_ns{0};     // domain_stats: written under mutex
};

}  // namespace srcu::detail
