// report.cc: the numbers a run prints: progress lines every --stat-interval
// and the end-of-test report, whose last line is the verdict.

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "delivery.h"
#include "torture.h"

namespace srcu_torture {

// --- Sums ------------------------------------------------------------------------------

void run::sum_pipe(std::uint64_t (&pipe)[kPipeLen + 1], std::uint64_t (&batch)[kPipeLen + 1]) const {
  for (int i = 0; i <= kPipeLen; ++i) {
    pipe[i] = signal_pipe_[i].get();
    batch[i] = signal_batch_[i].get();
    for (const auto& s : readers_) {
      pipe[i] += s->stats.pipe[i].get();
      batch[i] += s->stats.batch[i].get();
    }
    for (const auto& h : handoff_stats_) {
      pipe[i] += h.pipe[i].get();
      batch[i] += h.batch[i].get();
    }
  }
}

std::uint64_t run::reader_sections() const {
  std::uint64_t n = signal_sections_.get();
  for (const auto& s : readers_) {
    for (const auto& c : s->stats.ops) n += c.get();
  }
  return n;
}

std::uint64_t run::callbacks_queued() const {
  std::uint64_t n = 0;
  for (const auto& c : cb_queued_) n += c.get();
  for (const auto& w : writers_) n += w->flood_calls.get();
  return n;
}

std::uint64_t run::callbacks_invoked() const {
  std::uint64_t n = 0;
  for (const auto& c : cb_invoked_) n += c.get();
  return n;
}

std::uint64_t run::updates() const {
  std::uint64_t n = 0;
  for (const auto& td : domains_) n += td->updates.get();
  return n;
}

// --- Progress lines ----------------------------------------------------------------------

void run::print_progress(std::int64_t now) {
  std::uint64_t pipe[kPipeLen + 1], batch[kPipeLen + 1];
  sum_pipe(pipe, batch);
  const std::uint64_t ops = reader_sections();
  const double dt = (now - prev_stat_ns_) / 1e9;
  char gps[512];
  int n = 0;
  for (const auto& td : domains_) {
    n += std::snprintf(gps + n, sizeof gps - static_cast<std::size_t>(n), "%s%s:%llu", n ? " " : "", td->name,
                       ull(td->dom->grace_periods_completed() - td->gp_at_start));
    if (n >= static_cast<int>(sizeof gps)) break;
  }
  char hist[256];
  int h = 0;
  for (int i = 0; i <= kPipeLen; ++i) {
    h += std::snprintf(hist + h, sizeof hist - static_cast<std::size_t>(h), "%s%llu", i ? " " : "", ull(pipe[i]));
  }
  say("[%6.1f s] reader-ops %llu (%.0f/s) updates %llu GPs %s callbacks %llu/%llu delivery-rounds %llu errors %llu "
      "| Reader Pipe: %s",
      (now - start_ns_) / 1e9, ull(ops), dt > 0 ? (ops - prev_ops_) / dt : 0.0, ull(updates()), gps,
      ull(callbacks_invoked()), ull(callbacks_queued()), ull(delivery_ ? delivery_->rounds() : 0), ull(total_errors()),
      hist);
  prev_ops_ = ops;
  prev_stat_ns_ = now;
}

// --- Report ----------------------------------------------------------------------------------

static std::string format_hist(const std::uint64_t (&h)[kPipeLen + 1]) {
  std::string s;
  for (int i = 0; i <= kPipeLen; ++i) {
    if (i) s += ' ';
    s += std::to_string(h[i]);
  }
  return s;
}

void run::print_report() {
  const double secs = std::max((end_ns_ - start_ns_) / 1e9, 1e-9);
  std::uint64_t pipe[kPipeLen + 1], batch[kPipeLen + 1];
  sum_pipe(pipe, batch);
  std::uint64_t pipe_bad = 0, batch_bad = 0;
  for (int i = 2; i <= kPipeLen; ++i) {
    pipe_bad += pipe[i];
    batch_bad += batch[i];
  }

  line("--- End of test report: %.1f s%s", secs, stopped_early_ ? " (stopped early: errors)" : "");
  line("Reader Pipe:  %s%s", format_hist(pipe).c_str(), pipe_bad ? "  !!! (entries past index 1)" : "");
  line("Reader Batch: %s%s", format_hist(batch).c_str(), batch_bad ? "  !!! (entries past index 1)" : "");

  std::uint64_t ops[kFlavourCount] = {};
  std::uint64_t nested = 0, handed = 0, long_sleeps = 0, short_delays = 0;
  for (const auto& s : readers_) {
    for (int f = 0; f < kFlavourCount; ++f) ops[f] += s->stats.ops[f].get();
    nested += s->stats.nested.get();
    long_sleeps += s->stats.long_sleeps.get();
    short_delays += s->stats.short_delays.get();
  }
  for (const auto& h : handoff_stats_) handed += h.handed_off.get();
  const std::uint64_t total_ops = reader_sections();
  line("Reader ops: %llu (%.0f/s): lock %llu, guard %llu, scoped %llu, signal %llu, updown %llu "
       "(%llu ended by up_read on a helper thread), signal-handler %llu; nested %llu; "
       "long sleeps %llu, short delays %llu",
       ull(total_ops), total_ops / secs, ull(ops[kLock]), ull(ops[kGuard]), ull(ops[kScoped]),
       ull(ops[kSignalSafe]), ull(ops[kUpDown]), ull(handed), ull(signal_sections_.get()), ull(nested),
       ull(long_sleeps), ull(short_delays));
  if (opt_.signal_storm) {
    line("Signal storm: %llu SIGUSR1 sent, %llu handler sections, %llu call()s from the handler, "
         "%llu times no free head",
         ull(signals_sent_.get()), ull(signal_sections_.get()), ull(signal_calls_.get()),
         ull(signal_no_head_.get()));
  }
  if (opt_.thread_churn) {
    line("Thread churn: %llu reader threads started for %zu reader slots", ull(readers_started_),
         readers_.size());
  }

  std::string gp_line, slot_line;
  for (const auto& td : domains_) {
    const std::uint64_t gps = td->gp_at_end - td->gp_at_start;
    const int lp = td->longest_gp_primitive.load(std::memory_order_relaxed);
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s%s%s %llu (%.1f/s, longest %.1f ms %s)", gp_line.empty() ? "" : ", ",
                  td->name, td->sleepy ? " [sleepy]" : "", ull(gps), gps / secs,
                  td->longest_gp_ns.load(std::memory_order_relaxed) / 1e6, lp >= 0 ? primitive_label(lp) : "-");
    gp_line += buf;
    std::snprintf(buf, sizeof buf, "%s%s %zu", slot_line.empty() ? "" : ", ", td->name, td->slots_at_end);
    slot_line += buf;
  }
  line("Grace periods: %s", gp_line.c_str());
  line("Reader slots per domain: %s", slot_line.c_str());
  // srcu's own counters (srcu/diagnostics.h), next to the torture's.
  std::string stats_line;
  for (const auto& td : domains_) {
    const srcu::domain_stats& st = td->stats_at_end;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s%s gps %llu (expedited %llu), callbacks %llu/%llu, longest %.1f ms, stalls %llu",
                  stats_line.empty() ? "" : "; ", td->name, ull(st.grace_periods), ull(st.expedited_grace_periods),
                  ull(st.callbacks_invoked), ull(st.callbacks_queued), st.longest_grace_period.count() / 1e6,
                  ull(st.stalls_reported));
    stats_line += buf;
  }
  line("srcu stats (domain::stats(), invoked/queued): %s", stats_line.c_str());
  line("srcu stats, all %zu live domains: gps %llu (expedited %llu), callbacks %llu/%llu, longest %.1f ms, "
       "stalls %llu; heavy barriers issued in the process %llu (one serves every scan that overlaps it)",
       all_stats_at_end_.domains, ull(all_stats_at_end_.totals.grace_periods),
       ull(all_stats_at_end_.totals.expedited_grace_periods), ull(all_stats_at_end_.totals.callbacks_invoked),
       ull(all_stats_at_end_.totals.callbacks_queued), all_stats_at_end_.totals.longest_grace_period.count() / 1e6,
       ull(all_stats_at_end_.totals.stalls_reported), ull(all_stats_at_end_.heavy_barriers));

  std::uint64_t prim[kUpdateOpsCount] = {};
  std::int64_t longest[kUpdateOpsCount] = {};
  std::uint64_t cond_done = 0;
  for (const auto& w : writers_) {
    for (int p = 0; p < kUpdateOpsCount; ++p) {
      prim[p] += w->ops[p].get();
      longest[p] = std::max(longest[p], w->longest_ns[p].load(std::memory_order_relaxed));
    }
    cond_done += w->cond_already_done.get();
  }
  const std::uint64_t total_updates = updates();
  line("Updates: %llu (%.0f/s): sync %llu, expedited %llu, call %llu, retire %llu, cond %llu "
       "(%llu found their cookie done already), poll %llu, barrier %llu, reclaim %llu, busted %llu",
       ull(total_updates), total_updates / secs, ull(prim[kSync]), ull(prim[kExpedited]), ull(prim[kCall]),
       ull(prim[kRetire]), ull(prim[kCond]), ull(cond_done), ull(prim[kPoll]), ull(prim[kBarrier]),
       ull(prim[kReclaim]), ull(prim[kBustedNoop] + prim[kBustedEarlyFlip]));

  std::int64_t longest_all = 0, longest_normal = 0;
  const char* longest_where = "-";
  const char* longest_prim = "-";
  for (const auto& td : domains_) {
    const std::int64_t l = td->longest_gp_ns.load(std::memory_order_relaxed);
    if (l > longest_all) {
      longest_all = l;
      longest_where = td->name;
      const int lp = td->longest_gp_primitive.load(std::memory_order_relaxed);
      longest_prim = lp >= 0 ? primitive_label(lp) : "-";
    }
    if (!td->sleepy) longest_normal = std::max(longest_normal, l);
  }
  line("Longest grace period: %.1f ms (%s on %s); %.1f ms on domains without sleepy readers; by primitive: "
       "sync %.1f, expedited %.1f, cond %.1f, poll %.1f, barrier %.1f ms",
       longest_all / 1e6, longest_prim, longest_where, longest_normal / 1e6, longest[kSync] / 1e6,
       longest[kExpedited] / 1e6, longest[kCond] / 1e6, longest[kPoll] / 1e6, longest[kBarrier] / 1e6);

  const std::string cb_kinds = named_counts(kCallbackNames, cb_invoked_, kCallbackKinds);
  line("Callbacks: queued %llu, invoked %llu %s (%s) %s", ull(queued_at_end_), ull(invoked_at_end_),
       drained_ ? "after the final barrier" : "when the run was abandoned (final barrier not reached)",
       cb_kinds.c_str(), queued_at_end_ == invoked_at_end_ ? "OK" : "MISMATCH");
  if (delivery_) delivery_->print_report();
  if (opt_.fwd_progress) {
    std::uint64_t flood_calls = 0;
    for (const auto& w : writers_) flood_calls += w->flood_calls.get();
    line("Forward progress: %llu flood call()s, %llu flood callbacks invoked during the run (%.0f/s), "
         "at most %llu callbacks outstanding",
         ull(flood_calls), ull(flood_invoked_during_run_), flood_invoked_during_run_ / secs,
         ull(flood_max_outstanding_));
  }
  line("Elements: allocated %llu, freed (poisoned, quarantined) %llu, reused from quarantine %llu",
       ull(pool_.allocated()), ull(pool_.freed()), ull(pool_.reused()));
  if (opt_.yield_prob > 0) {
    const std::string fp = named_counts(kFaultNames, faults_, kFaultPoints);
    std::uint64_t total = 0;
    for (const auto& f : faults_) total += f.get();
    line("Fault injection: %llu yields/sleeps (%s)", ull(total), fp.c_str());
  }
  if (opt_.fork && !is_child_) {
    if (child_pid_ > 0) {
      const bool ok = WIFEXITED(child_status_) && WEXITSTATUS(child_status_) == 0;
      line("Fork child: pid %d, forked at %.1f s, %s", child_pid_, (fork_ns_ - start_ns_) / 1e9,
           ok ? "exited with SUCCESS" : "FAILED");
    } else {
      line("Fork child: none (the run ended before the fork)");
    }
  }
  const std::string kinds = named_counts(kErrorNames, errors_, kErrorKinds);
  line("Errors: %llu (%s)", ull(total_errors()), kinds.c_str());
  line("End of test: %s", success() ? "SUCCESS" : "FAILURE");
}

}  // namespace srcu_torture
