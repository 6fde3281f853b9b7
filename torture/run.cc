// run.cc: the life of a run: its threads started, the main loop (progress,
// thread churn, fork, stopping early after an error), shutdown, the final
// drain and the checks after it; the fault injection at labelled points.

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <mutex>

#include "delivery.h"

#include "torture.h"

namespace srcu_torture {

run::~run() = default;

// --- run: construction ------------------------------------------------------------

run::run(const options& opt, const std::vector<domain_spec>& specs, bool is_child)
    : opt_(opt), is_child_(is_child), specs_(specs) {
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto td = std::make_unique<torture_domain>();
    td->owner_run = this;
    td->index = static_cast<int>(i);
    td->sleepy = specs[i].sleepy;
    td->name = specs[i].name;
    td->dom = specs[i].dom;
    domains_.push_back(std::move(td));
  }
  for (int f = 0; f < kFlavourCount; ++f) {
    if (opt_.flavours & (1u << f)) flavours_.push_back(static_cast<flavour>(f));
  }
  for (int p = 0; p < kPrimitiveCount; ++p) {
    if (opt_.primitives & (1u << p)) primitives_.push_back(static_cast<primitive>(p));
  }
  handoff_enabled_ = (opt_.flavours & (1u << kUpDown)) != 0;
  if (opt_.signal_storm) {
    signal_heads_ = std::make_unique<signal_head[]>(kSignalHeads);
    for (int i = 0; i < kSignalHeads; ++i) signal_heads_[i].owner = this;
  }
}

// --- Main loop, shutdown, drain ----------------------------------------------------------

bool run::join_within(worker& w, const char* what, std::int64_t deadline) {
  while (!w.done.load(std::memory_order_acquire)) {
    if (now_ns() > deadline) {
      error(kErrStall, "STALL: %s did not stop within %.0f s of the end of the test", what,
            kShutdownLimitNs / 1e9);
      return false;
    }
    sleep_ns(5'000'000);
  }
  if (w.thread.joinable()) w.thread.join();
  return true;
}

// A thread would not stop: report what we have and leave without touching
// the domains (their destructors would wait for that thread).
void run::abandon() {
  capture_domain_stats();
  queued_at_end_ = callbacks_queued();
  invoked_at_end_ = callbacks_invoked();
  print_report();
  _exit(1);
}

void run::shutdown() {
  const std::int64_t deadline = now_ns() + kShutdownLimitNs;
  bool ok = true;
  if (opt_.signal_storm) {
    stop_storm_.store(true, std::memory_order_relaxed);
    ok &= join_within(storm_worker_, "the signal storm thread", deadline);
  }
  stop_readers_.store(true, std::memory_order_relaxed);
  for (auto& slot : readers_) {
    if (slot->w.thread.joinable()) ok &= join_within(slot->w, "a reader thread", deadline);
  }
  stop_writers_.store(true, std::memory_order_relaxed);
  for (auto& w : writers_) {
    char what[128];
    std::snprintf(what, sizeof what, "writer %d on domain %s", w->id, w->td->name);
    ok &= join_within(w->w, what, deadline);
  }
  if (delivery_ && !delivery_->stop(deadline)) abandon();  // the library is stuck in a delivery round
  {
    std::lock_guard lk(handoff_mutex_);
    handoff_stop_ = true;
  }
  handoff_cv_.notify_all();
  if (handoff_enabled_) {
    for (auto& hw : handoff_workers_) ok &= join_within(hw, "a hand-off helper", deadline);
  }
  if (!ok) abandon();
  // No thread of ours can be in a signal handler any more.
  g_signal_run.store(nullptr, std::memory_order_release);
}

void run::final_drain() {
  drain_start_ns_.store(now_ns(), std::memory_order_relaxed);
  draining_.store(true, std::memory_order_relaxed);
  if (delivery_) delivery_->teardown();
  drain_stage_.store("synchronize()/barrier() with every torture thread stopped", std::memory_order_relaxed);
  // Waiting elements: each synchronize() moves them one step down the pipe.
  for (auto& td : domains_) {
    for (int i = 0; i < kPipeLen + 2; ++i) {
      {
        std::lock_guard lk(td->waiting_mutex);
        if (td->waiting.empty()) break;
      }
      const std::uint64_t snapshot = td->removal_seq.load(std::memory_order_acquire);
      td->dom->synchronize();
      pipe_update(*td, snapshot);
    }
  }
  // Callback cycles: each barrier() lets every element's callback run once
  // more; after at most kPipeLen rounds none re-queues itself.
  for (int round = 0; round < kPipeLen + 4; ++round) {
    for (auto& td : domains_) td->dom->barrier();
    if (callbacks_queued() == callbacks_invoked()) break;
  }
  queued_at_end_ = callbacks_queued();
  invoked_at_end_ = callbacks_invoked();
  drained_ = true;
  if (queued_at_end_ != invoked_at_end_) {
    error(kErrCallbacks, "after the final barrier(): %llu callbacks queued but %llu invoked", ull(queued_at_end_),
          ull(invoked_at_end_));
  }
  // Every element is now either some domain's current element or freed.
  const std::size_t total = pool_.total();
  const std::size_t freed = pool_.quarantined();
  if (total != freed + domains_.size()) {
    error(kErrLeak, "%zu elements allocated, %zu freed, %zu current: %zd unaccounted for", total, freed,
          domains_.size(), static_cast<std::ptrdiff_t>(total - freed - domains_.size()));
  }
  draining_.store(false, std::memory_order_relaxed);
}

bool run::execute() {
  start_ns_ = now_ns();
  prev_stat_ns_ = start_ns_;
  for (auto& td : domains_) {
    td->gp_at_start = td->dom->grace_periods_completed();
    td->current.store(pool_.get(td.get()), std::memory_order_release);
  }
  if (opt_.signal_storm) g_signal_run.store(this, std::memory_order_release);

  if (handoff_enabled_) {
    for (int i = 0; i < kHandoffThreads; ++i) {
      handoff_workers_[i].thread = std::thread(&run::handoff_thread, this, i);
    }
  }
  const int readers_per_domain = opt_.fwd_progress ? opt_.readers * 2 : opt_.readers;
  for (auto& td : domains_) {
    for (int i = 0; i < readers_per_domain; ++i) {
      auto slot = std::make_unique<reader_slot>();
      slot->index = static_cast<int>(readers_.size());
      slot->home = td.get();
      readers_.push_back(std::move(slot));
    }
  }
  for (auto& slot : readers_) start_reader(*slot);
  for (auto& td : domains_) {
    for (int i = 0; i < opt_.writers; ++i) {
      auto w = std::make_unique<writer_state>();
      w->id = static_cast<int>(writers_.size());
      w->td = td.get();
      w->probe.owner = this;
      if (opt_.fwd_progress) {
        w->flood_size = static_cast<std::size_t>(opt_.flood);
        w->flood = std::make_unique<flood_head[]>(w->flood_size);
        for (std::size_t k = 0; k < w->flood_size; ++k) w->flood[k].owner = this;
      }
      writers_.push_back(std::move(w));
    }
  }
  for (auto& w : writers_) w->w.thread = std::thread(&run::writer_thread, this, std::ref(*w));
  if (opt_.delivery != 0 && !is_child_) {
    delivery_ = std::make_unique<delivery_torture>(*this, opt_);
    delivery_->start();
  }
  watchdog_worker_.thread = std::thread(&run::watchdog_thread, this);
  if (opt_.signal_storm) storm_worker_.thread = std::thread(&run::storm_thread, this);

  const auto duration_ns = static_cast<std::int64_t>(opt_.duration_s * 1e9);
  const std::int64_t end = start_ns_ + duration_ns;
  const auto interval_ns = static_cast<std::int64_t>(opt_.stat_interval_s * 1e9);
  std::int64_t next_stat = interval_ns > 0 ? start_ns_ + interval_ns : std::numeric_limits<std::int64_t>::max();
  std::int64_t fork_at = (opt_.fork && !is_child_) ? start_ns_ + duration_ns / 2
                                                    : std::numeric_limits<std::int64_t>::max();
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= end) break;
    const std::int64_t first_error = first_error_ns_.load(std::memory_order_relaxed);
    if (!opt_.keep_going && first_error != 0 && now - first_error >= kStopAfterErrorNs) {
      say("errors detected: stopping early (--keep-going runs the full duration)");
      stopped_early_ = true;
      break;
    }
    if (opt_.thread_churn) maintain_readers();
    if (now >= fork_at) {
      fork_at = std::numeric_limits<std::int64_t>::max();
      do_fork();
    }
    reap_child(false);
    if (opt_.fwd_progress) {
      flood_max_outstanding_ = std::max(flood_max_outstanding_, callbacks_queued() - callbacks_invoked());
    }
    if (now >= next_stat) {
      print_progress(now);
      next_stat += interval_ns;
    }
    sleep_ns(std::min<std::int64_t>(20'000'000, end - now));
  }
  end_ns_ = now_ns();
  flood_invoked_during_run_ = cb_invoked_[kCbFlood].get();
  for (const auto& td : domains_) td->gp_at_end = td->dom->grace_periods_completed();

  shutdown();
  final_drain();
  stop_watchdog_.store(true, std::memory_order_relaxed);
  if (watchdog_worker_.thread.joinable()) watchdog_worker_.thread.join();
  reap_child(true);

  // Isolation: a domain whose readers sleep for hundreds of milliseconds may
  // slow only its own grace periods.
  const torture_domain* sleepy = nullptr;
  for (const auto& td : domains_) {
    if (td->sleepy) sleepy = td.get();
  }
  if (sleepy != nullptr && opt_.busted == nullptr) {  // --busted does not wait like the real primitives
    const std::uint64_t sleepy_gps = sleepy->gp_at_end - sleepy->gp_at_start;
    for (const auto& td : domains_) {
      if (td.get() == sleepy) continue;
      const std::uint64_t gps = td->gp_at_end - td->gp_at_start;
      if (gps <= sleepy_gps) {
        error(kErrIsolation, "domain %s completed %llu grace periods, no more than the sleepy domain %s (%llu)",
              td->name, ull(gps), sleepy->name, ull(sleepy_gps));
      }
    }
  }
  return success();
}

void run::capture_domain_stats() {
  for (const auto& td : domains_) {
    td->slots_at_end = td->dom->reader_slots();
    td->stats_at_end = td->dom->stats();
  }
  all_stats_at_end_ = srcu::all_domains_stats();
}

// --- Fault injection -------------------------------------------------------------------

void run::fault(fault_point p, rng& rand) {
  if (!rand.chance(opt_.yield_prob)) return;
  faults_[p].add();
  if (rand.one_in(4)) sleep_us(rand.between(1, 100)); else sched_yield();
}

}  // namespace srcu_torture
