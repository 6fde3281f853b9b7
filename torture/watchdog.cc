// watchdog.cc: the watchdog thread: a writer, a delivery scenario or the
// callbacks that stop making progress is a STALL, and so is a final drain
// that does not finish (the run is then abandoned, not left hanging).

#include "delivery.h"

#include "torture.h"

namespace srcu_torture {

// --- Watchdog -------------------------------------------------------------------------

void run::watchdog_thread() {
  const auto stall_ns = static_cast<std::int64_t>(opt_.stall_s * 1e9);
  std::uint64_t last_invoked = 0;
  std::int64_t last_change = now_ns();
  bool cb_stall_reported = false;
  while (!stop_watchdog_.load(std::memory_order_relaxed)) {
    sleep_ns(100'000'000);
    const std::int64_t now = now_ns();
    if (draining_.load(std::memory_order_relaxed)) {
      // The final drain (synchronize/barrier after every thread stopped)
      // must finish too; if the library hangs there, fail instead of hanging.
      const std::int64_t since = drain_start_ns_.load(std::memory_order_relaxed);
      if (since != 0 && now - since > kShutdownLimitNs) {
        error(kErrStall, "STALL: the final drain (%s) has not finished in %.0f s",
              drain_stage_.load(std::memory_order_relaxed), kShutdownLimitNs / 1e9);
        abandon();
      }
      continue;
    }
    for (auto& w : writers_) {
      if (w->w.done.load(std::memory_order_acquire)) continue;  // stopped at the end of the run
      const std::int64_t last = w->last_progress_ns.load(std::memory_order_relaxed);
      if (!w->stall_reported && now - last > stall_ns) {
        w->stall_reported = true;
        const int p = w->in_primitive.load(std::memory_order_relaxed);
        error(kErrStall, "STALL: writer %d on domain %s completed no update for %.1f s (inside %s)", w->id,
              w->td->name, (now - last) / 1e9, p >= 0 ? primitive_label(p) : "(between updates)");
      }
    }
    if (delivery_) delivery_->check_stalls(now, stall_ns);
    const std::uint64_t invoked = callbacks_invoked();
    const std::uint64_t queued = callbacks_queued();
    if (invoked != last_invoked || queued == invoked) {
      last_invoked = invoked;
      last_change = now;
    } else if (!cb_stall_reported && now - last_change > stall_ns) {
      cb_stall_reported = true;
      error(kErrStall, "STALL: callbacks: %llu queued, %llu invoked, none invoked for %.1f s", ull(queued),
            ull(invoked), (now - last_change) / 1e9);
    }
  }
  watchdog_worker_.done.store(true, std::memory_order_release);
}

}  // namespace srcu_torture
