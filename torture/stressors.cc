// stressors.cc: what srcu-torture adds on top of readers and writers to
// stress srcu: a SIGUSR1 storm whose handler reads and call()s, thread churn,
// a fork() in the middle of the run, and the call() flood of --fwd-progress.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "torture.h"

namespace srcu_torture {

std::atomic<run*> g_signal_run{nullptr};

// --- Signal storm ------------------------------------------------------------------

// Async-signal-safe: a signal-safe reader section, atomics, and call() with
// a head from a lock-free pool (a busy flag per head, claimed by CAS).
void run::in_signal_handler() noexcept {
  const int saved_errno = errno;
  const std::uint32_t n = signal_rr_.fetch_add(1, std::memory_order_relaxed);
  torture_domain& td = *domains_[n % domains_.size()];
  srcu::domain& dom = *td.dom;
  const srcu::read_token t = dom.read_lock_signal_safe();
  const std::uint64_t gp0 = dom.grace_periods_completed();
  element* e = td.current.load(std::memory_order_acquire);
  const std::uint64_t gen = e->generation.load(std::memory_order_relaxed);
  bool bad = e->magic.load(std::memory_order_relaxed) != kMagicLive;
  for (int i = 0; i < kPayloadWords; ++i) {
    if (e->payload[i].load(std::memory_order_relaxed) != payload_word(gen, i)) bad = true;
  }
  const int pipe = e->pipe.load(std::memory_order_relaxed);
  bad = bad || e->magic.load(std::memory_order_relaxed) != kMagicLive ||
        e->generation.load(std::memory_order_relaxed) != gen;
  const std::uint64_t gps = dom.grace_periods_completed() - gp0;
  dom.read_unlock_signal_safe(t);
  signal_sections_.add();
  signal_pipe_[std::clamp(pipe, 0, kPipeLen)].add();
  signal_batch_[std::min<std::uint64_t>(gps, kPipeLen)].add();
  if (pipe > 1) error_from_signal(kErrPipe, "signal handler: pipe count > 1 at the end of its section");
  if (bad) error_from_signal(kErrFreed, "signal handler: freed, recycled or corrupt element");
  if (gps > 1) error_from_signal(kErrBatch, "signal handler: 2+ grace periods inside its section");

  for (std::uint32_t i = 0; i < 4; ++i) {
    signal_head& h = signal_heads_[(n * 7 + i * 61) % kSignalHeads];
    bool expected = false;
    if (h.busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      signal_calls_.add();
      cb_queued_[kCbSignal].add();
      dom.call(&h.head, &signal_head_callback);
      errno = saved_errno;
      return;
    }
  }
  signal_no_head_.add();
  errno = saved_errno;
}

void run::storm_thread() {
  rng rand(seed_for(4, 0));
  while (!stop_storm_.load(std::memory_order_relaxed)) {
    {
      std::lock_guard lk(targets_mutex_);
      if (!targets_.empty()) {
        const pthread_t target = targets_[rand.below(static_cast<std::uint32_t>(targets_.size()))];
        if (pthread_kill(target, SIGUSR1) == 0) signals_sent_.add();
      }
    }
    sleep_us(rand.between(20, 200));
  }
  storm_worker_.done.store(true, std::memory_order_release);
}

void signal_head_callback(srcu::callback_head* h) {
  auto* s = reinterpret_cast<signal_head*>(h);
  s->owner->cb_invoked_[kCbSignal].add();
  s->busy.store(false, std::memory_order_release);
}

void on_sigusr1(int /*signo*/) {
  run* r = g_signal_run.load(std::memory_order_acquire);
  if (r != nullptr) r->in_signal_handler();
}

// --- Thread churn ------------------------------------------------------------------

// Reader threads of --thread-churn exit after a while; the main loop starts
// another in the slot.
void run::maintain_readers() {
  for (auto& slot : readers_) {
    if (slot->w.done.load(std::memory_order_acquire) && slot->w.thread.joinable()) {
      slot->w.thread.join();
      if (!stop_readers_.load(std::memory_order_relaxed)) start_reader(*slot);
    }
  }
}

// --- Forward progress: the call() flood ------------------------------------------

// --fwd-progress: queue every flood head that is not still queued. Each is
// reused once its callback has run, so outstanding callbacks stay bounded.
void run::flood_burst(writer_state& w) {
  srcu::domain& dom = *w.td->dom;
  for (std::size_t i = 0; i < w.flood_size; ++i) {
    flood_head& h = w.flood[i];
    if (h.queued.load(std::memory_order_acquire)) continue;
    h.queued.store(true, std::memory_order_relaxed);
    w.flood_calls.add();
    dom.call(&h.head, &flood_callback);
    if ((i & 4095) == 0 && stop_writers_.load(std::memory_order_relaxed)) break;
  }
}

void flood_callback(srcu::callback_head* h) {
  auto* f = reinterpret_cast<flood_head*>(h);
  f->owner->cb_invoked_[kCbFlood].add();
  // srcu cleared head.func before calling us, so the writer may queue it again.
  f->queued.store(false, std::memory_order_release);
}

// --- Fork --------------------------------------------------------------------------------

void run::do_fork() {
  say("fork(): the child runs a %.0f s torture of its own on the same %zu domains", kChildSeconds,
      domains_.size());
  const pid_t pid = ::fork();
  if (pid < 0) {
    error(kErrChild, "fork() failed: %s", std::strerror(errno));
    return;
  }
  if (pid == 0) fork_child_main(opt_, specs_);  // never returns
  child_pid_ = pid;
  fork_ns_ = now_ns();
}

void run::reap_child(bool block) {
  if (child_pid_ <= 0 || child_reaped_) return;
  const std::int64_t limit = now_ns() + kShutdownLimitNs;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(child_pid_, &status, WNOHANG);
    if (r == child_pid_) {
      child_reaped_ = true;
      child_status_ = status;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status)) {
          error(kErrChild, "fork child %d was killed by signal %d", child_pid_, WTERMSIG(status));
        } else {
          error(kErrChild, "fork child %d failed (exit status %d)", child_pid_, WEXITSTATUS(status));
        }
      }
      return;
    }
    if (r < 0 && errno != EINTR) {
      error(kErrChild, "waitpid(fork child %d): %s", child_pid_, std::strerror(errno));
      child_reaped_ = true;
      return;
    }
    if (!block) return;
    if (now_ns() > limit) {
      error(kErrChild, "fork child %d did not finish in %.0f s; killed", child_pid_, kShutdownLimitNs / 1e9);
      ::kill(child_pid_, SIGKILL);
      ::waitpid(child_pid_, &status, 0);
      child_status_ = status;
      child_reaped_ = true;
      return;
    }
    sleep_ns(20'000'000);
  }
}

// --- Fork child ---------------------------------------------------------------------------

[[noreturn]] void fork_child_main(const options& parent, const std::vector<domain_spec>& specs) {
  std::snprintf(g_prefix, sizeof g_prefix, "srcu-torture[child %d]: ", static_cast<int>(getpid()));
  std::snprintf(g_report_prefix, sizeof g_report_prefix, "[child %d] ", static_cast<int>(getpid()));
  options o = parent;
  o.duration_s = kChildSeconds;
  o.fork = false;
  o.delivery = 0;  // the child tortures the shared domains only
  o.stat_interval_s = 0;
  o.seed = mix_seed(parent.seed, 99, 1);
  // Fresh state only: the parent's torture objects may be locked by
  // threads that do not exist here. The domains are shared on purpose.
  auto r = std::make_unique<run>(o, specs, /*is_child=*/true);
  const bool ok = r->execute();
  r->capture_domain_stats();
  r->print_report();
  _exit(ok ? 0 : 1);
}

}  // namespace srcu_torture
