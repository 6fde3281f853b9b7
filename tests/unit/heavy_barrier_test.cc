// The shared heavy barrier (fence HB, src/heavy_barrier.cc): a scan that
// finds another thread's barrier in flight waits for it, but not on a thread
// that does not run. Uses the library's test seam heavy_barrier_issuing_here()
// (compiled with src/ on the include path, like lock_rules_test.cc).
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <srcu/srcu.h>

#include <atomic>
#include <thread>

#include "heavy_barrier.h"
#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::watchdog;

std::atomic<bool> g_caught{false};   // the handler found its thread issuing
std::atomic<bool> g_release{false};  // the test lets it go

// SIGUSR1 on the updater thread: if it landed between the updater's taking
// of the barrier sequence and its end (the signal is delivered when the
// membarrier() system call returns), stay here until released: the issuer
// is then "stopped" with its barrier in flight.
void hold_if_issuing(int) {
  if (!srcu::detail::heavy_barrier_issuing_here()) return;
  g_caught.store(true);
  while (!g_release.load()) {
    const timespec ts{0, 100'000};
    nanosleep(&ts, nullptr);
  }
}

TEST(HeavyBarrier, ScansDoNotWaitForAnIssuerThatIsNotRunning) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan delivers signals at its own safe points, not inside the barrier";
#endif
  if (srcu::detail::g_readers_fence.load(std::memory_order_relaxed)) {
    GTEST_SKIP() << "membarrier(2) unavailable or forced off: barriers are not shared";
  }
  struct sigaction sa = {};
  struct sigaction old = {};
  sa.sa_handler = hold_if_issuing;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  g_caught = false;
  g_release = false;

  srcu::domain held({.name = "issuer-held"});
  srcu::domain other({.name = "other"});
  std::atomic<bool> stop{false};
  std::thread updater([&] {
    while (!stop.load()) held.synchronize();
  });
  {
    watchdog wd("a SIGUSR1 landing while the updater issues a heavy barrier");
    while (!g_caught.load()) {
      pthread_kill(updater.native_handle(), SIGUSR1);
      std::this_thread::sleep_for(20us);
    }
  }
  // The updater now sits in its handler with the barrier sequence odd. Each
  // scan of `other` finds that barrier in flight; it must issue its own
  // after a short wait instead of waiting for the held thread.
  const std::uint64_t before = srcu::all_domains_stats().heavy_barriers;
  {
    watchdog wd("synchronize() of another domain while the thread issuing the heavy barrier is held");
    for (int i = 0; i < 20; ++i) other.synchronize();
  }
  const std::uint64_t issued = srcu::all_domains_stats().heavy_barriers - before;
  EXPECT_GE(issued, 20u) << "one scan per grace period (no reader: both indices at once), each with a barrier of its own";
  g_release = true;
  stop = true;
  updater.join();
  sigaction(SIGUSR1, &old, nullptr);
}

}  // namespace
