/// @file diagnostics.h
/// @brief Seeing inside srcu: stall reports that name the reader, statistics.
///
/// **Stall reports.** When a grace period of a domain has waited
/// domain_options::stall_timeout (10 s by default; 0: off), srcu reports it,
/// and again every stall_timeout while it lasts. The report is made on one
/// of srcu's callback workers with no library lock held — never on a
/// reader's thread nor on a thread blocked in synchronize() — so a stall is
/// reported even when nobody waits (a call() or start_poll() stuck behind a
/// blocked reader), and the handler may do anything a callback may,
/// including synchronize() on another domain. It must not wait for the
/// stalled domain's own grace periods or callbacks (they are what is stuck).
///
/// The default handler writes one report to stderr, in this shape (one
/// holder per line; grep for "srcu: stall:"):
/// @code{.unparsed}
/// srcu: stall: domain 'config' grace period 42 stalled for 10003 ms, 2 reader(s) inside
/// srcu: stall:   holder: thread 81234 ('worker-3') read_lock
/// srcu: stall:   (1 reader(s) of the signal-safe/down_read flavours: not attributable to a thread)
/// @endcode
///
/// What can be known about the readers. Per-thread read_lock()/lock()/
/// read_guard sections are counted in the thread's own slot, so each such
/// holder is named (tid, pthread name). Signal-safe and down_read() sections
/// are counted in per-CPU counters shared by every thread (that is what
/// makes them usable in a signal handler and endable on another thread), so
/// they are only counted in stall_report::readers, not named.
///
/// **Statistics.** domain::stats() is cheap (a few relaxed loads, no lock)
/// and each field is monotonic; fields are read one by one, so they are not
/// a consistent snapshot of one instant. all_domains_stats() sums every live
/// domain.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace srcu {

/// The kind of read-side critical section a holder is in.
enum class reader_flavour : std::uint8_t {
  thread,       ///< read_lock(), lock(), read_guard
  signal_safe,  ///< read_lock_signal_safe()
  down_up,      ///< down_read()
};

/// A thread known to hold a reader that a stalled grace period waits for.
struct reader_holder {
  pid_t tid;             ///< gettid() of that thread
  char thread_name[16];  ///< its pthread name (NUL-terminated; empty if it could not be read)
  reader_flavour flavour;  ///< always reader_flavour::thread today (see the file comment)
};

/// What a stall handler is told. Valid only during the call.
struct stall_report {
  const char* domain;                     ///< domain_options::name
  std::uint64_t grace_period;             ///< the stalled grace period: grace_periods_completed() reaches this when it ends
  std::chrono::milliseconds stalled_for;  ///< since the grace period began
  std::uint64_t readers;                  ///< readers of any flavour still inside the waited-for index
  const reader_holder* holders;           ///< the per-thread holders found (up to 64)
  std::size_t holder_count;               ///< entries in holders
};

/// A stall handler: called with no library lock held, on a library thread.
using stall_handler = void (*)(const stall_report&) noexcept;

/// Installs a process-wide stall handler; nullptr restores the default
/// (stderr). Returns the previous handler (nullptr for the default).
/// Thread-safe; a report already being made may still use the old one.
stall_handler set_stall_handler(stall_handler handler) noexcept;

/// Counters of one domain (domain::stats()); each is monotonic.
struct domain_stats {
  std::uint64_t grace_periods;            ///< completed (== grace_periods_completed())
  std::uint64_t expedited_grace_periods;  ///< of those, completed while synchronize_expedited() waited
  std::uint64_t callbacks_queued;         ///< call(), call(F), retire() (and rcu_obj_base::retire())
  std::uint64_t callbacks_invoked;        ///< callbacks that have run and returned (counted per batch; includes all that barrier() waited for once it returns)
  std::chrono::nanoseconds longest_grace_period;  ///< from its start to its end
  std::uint64_t stalls_reported;          ///< stall reports issued
  /// Blocks of the counters that signal-safe and down/up sections use (and
  /// call()'s staging): 1 while the domain is small, as it is born; its
  /// first such section or call() has the engine add the full table, then
  /// 1 + one block per possible CPU (per_cpu_readers) or per online CPU.
  /// Not summed over domains in all_domains_stats().
  std::uint32_t reader_shards;
  /// The full table's counters are per CPU, incremented in restartable
  /// sequences without a lock prefix (x86-64 Linux with rseq and membarrier).
  bool per_cpu_readers;
};

/// The sum over every live domain, for tools (longest_grace_period: the
/// longest of any). Takes the registry lock; not for hot paths.
struct process_stats {
  std::size_t domains;  ///< live domains
  domain_stats totals;  ///< summed counters
  /// Heavy barriers (membarrier(2) calls, or fences without it) made by
  /// reader scans of every domain since the process started: one per grace
  /// period when no reader is inside (both indices are scanned at once, and
  /// the grace period ends without the flip), two when one is (the scan
  /// before the flip and the one after), fewer per caller when
  /// concurrent synchronize() calls share grace periods, and fewer per scan
  /// when scans of any domains overlap in time (one membarrier(2) serves
  /// every scan waiting for one; counted once) or the engine steps several
  /// domains in one batch (one barrier between their first and second
  /// passes).
  std::uint64_t heavy_barriers;
};

/// The process-wide summary; see process_stats.
process_stats all_domains_stats() noexcept;

/// True when this library was built with the deadlock detector
/// (srcu/tracked_mutex.h): debug builds, or the CMake option SRCU_DEBUG.
bool deadlock_detection_enabled() noexcept;

}  // namespace srcu
