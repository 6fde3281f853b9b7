// Stall reports and statistics (include/srcu/diagnostics.h).
//
// A report is decided by the grace-period driver (check_stall(), in
// grace_period.cc) and made here, on a callback worker, with no library lock
// held while the handler runs: the slots are walked under the domain mutex,
// the names are read after it is released.

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "diagnostics.h"
#include "domain_state.h"
#include "heavy_barrier.h"
#include "trace.h"

namespace srcu::detail {

namespace {

constinit std::atomic<stall_handler> g_stall_handler{nullptr};

// The thread's name from /proc (by tid: safe even if the thread has exited
// since, when the read simply fails). Not pthread_getname_np(): its
// pthread_t may be gone.
void read_thread_name(pid_t tid, char (&out)[16]) noexcept {
  out[0] = '\0';
  if (tid <= 0) return;
  message path;
  path << "/proc/self/task/" << static_cast<std::int64_t>(tid) << "/comm";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  const ssize_t n = ::read(fd, out, sizeof out - 1);
  ::close(fd);
  std::size_t len = n > 0 ? static_cast<std::size_t>(n) : 0;
  while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\0')) --len;
  out[len] = '\0';
}

const char* flavour_label(reader_flavour f) noexcept {
  switch (f) {
    case reader_flavour::thread: return "read_lock";
    case reader_flavour::signal_safe: return "read_lock_signal_safe";
    default: return "down_read";
  }
}

// The default handler: a fixed, greppable shape (diagnostics.h).
void write_report_to_stderr(const stall_report& r) noexcept {
  message m;
  m << "srcu: stall: domain '" << r.domain << "' grace period " << r.grace_period
    << " stalled for " << static_cast<std::uint64_t>(r.stalled_for.count()) << " ms, "
    << r.readers << " reader(s) inside";
  m.write_to_stderr();
  std::uint64_t named = 0;
  for (std::size_t i = 0; i < r.holder_count; ++i) {
    message h;
    h << "srcu: stall:   holder: thread " << static_cast<std::int64_t>(r.holders[i].tid) << " ('"
      << r.holders[i].thread_name << "') " << flavour_label(r.holders[i].flavour);
    h.write_to_stderr();
    ++named;
  }
  if (r.readers > named) {
    message rest;
    rest << "srcu: stall:   (" << (r.readers - named)
         << " reader(s) of the signal-safe/down_read flavours, or beyond 64 named: not "
            "attributable to a thread)";
    rest.write_to_stderr();
  }
}

}  // namespace

void grace_periods::report_stall() noexcept {
  const std::uint64_t seq = stall_report_seq.load(std::memory_order_relaxed);
  if (gp_seq.load(std::memory_order_acquire) != seq) return;  // it ended meanwhile

  constexpr std::size_t kMaxHolders = 64;
  reader_holder holders[kMaxHolders];
  std::size_t count = 0;
  std::uint64_t readers = 0;
  {
    // Under the mutex: the slot list does not change, and a slot's owner
    // record stays alive while it owns the slot (reader_slots.cc gives slots
    // back under this mutex before freeing a record).
    mutex_lock lk(mutex);
    if (gp_seq.load(std::memory_order_relaxed) != seq) return;
    // Both scans wait on the index readers are not entering now.
    const auto idx = static_cast<unsigned>(~reader_index().load(std::memory_order_relaxed) & 1);
    visit_inside(idx, [&](pid_t tid, std::uint64_t inside) {
      readers += inside;
      if (tid != 0 && count < kMaxHolders) {
        holders[count].tid = tid;
        holders[count].flavour = reader_flavour::thread;
        ++count;
      }
    });
  }
  for (std::size_t i = 0; i < count; ++i) read_thread_name(holders[i].tid, holders[i].thread_name);
  const std::uint64_t now = monotonic_ns();
  const std::uint64_t stalled_ns = now - gp_start_ns.load(std::memory_order_relaxed);
  // The next report comes stall_timeout after this one is issued (not after
  // it was decided: a busy worker must not bunch two reports together).
  if (stall_seq.load(std::memory_order_relaxed) == seq) {
    stall_next_ns.store(now + static_cast<std::uint64_t>(stall_timeout.count()) * 1'000'000u,
                        std::memory_order_relaxed);
  }
  const stall_report report{name,
                            (seq >> 2) + 1,
                            std::chrono::milliseconds(stalled_ns / 1'000'000u),
                            readers,
                            holders,
                            count};
  stalls_reported.fetch_add(1, std::memory_order_relaxed);
  SRCU_TRACE(stall, name, report.grace_period, stalled_ns / 1'000'000u, readers);
  const stall_handler h = g_stall_handler.load(std::memory_order_acquire);
  if (h != nullptr) {
    h(report);
  } else {
    write_report_to_stderr(report);
  }
}

void grace_periods::fill_stats(domain_stats& s) const noexcept {
  s.grace_periods = completed();
  s.expedited_grace_periods = expedited_gps.load(std::memory_order_relaxed);
  s.longest_grace_period = std::chrono::nanoseconds(longest_gp_ns.load(std::memory_order_relaxed));
  s.stalls_reported = stalls_reported.load(std::memory_order_relaxed);
}

domain_stats domain_state::stats() const noexcept {
  domain_stats s{};
  grace_periods::fill_stats(s);
  callback_queue::fill_stats(s);
  const shard_table t = shards();
  s.reader_shards = t.first == small_shard ? 1 : 1 + t.count;
  s.per_cpu_readers = t.percpu;
  return s;
}

}  // namespace srcu::detail

namespace srcu {

stall_handler set_stall_handler(stall_handler handler) noexcept {
  return detail::g_stall_handler.exchange(handler, std::memory_order_acq_rel);
}

domain_stats domain::stats() const noexcept {
  if (const detail::domain_state* s = state()) return s->stats();
  // No state yet: no grace period, no callback run; a call() may be staged
  // on the small block for the engine to make the state.
  domain_stats none{};
  none.callbacks_queued = detail::state_maker::born_shards(*this)->enqueued.load(std::memory_order_seq_cst);
  none.reader_shards = 1;
  return none;
}

process_stats all_domains_stats() noexcept {
  process_stats all{};
  all.heavy_barriers = detail::heavy_barriers_issued();
  detail::registry_visit(
      [](domain& d, void* ctx) {
        auto& sum = *static_cast<process_stats*>(ctx);
        const domain_stats s = d.stats();
        ++sum.domains;
        sum.totals.grace_periods += s.grace_periods;
        sum.totals.expedited_grace_periods += s.expedited_grace_periods;
        sum.totals.callbacks_queued += s.callbacks_queued;
        sum.totals.callbacks_invoked += s.callbacks_invoked;
        sum.totals.longest_grace_period = std::max(sum.totals.longest_grace_period, s.longest_grace_period);
        sum.totals.stalls_reported += s.stalls_reported;
      },
      &all);
  return all;
}

}  // namespace srcu
