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
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "heavy_barrier.h"
#include "readers.h"  // test seam: g_test_probe
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

// The readers' restartable sequence (detail/percpu.h, rseq_index_add(), the
// one read_lock() runs): no add may land on an index its reader loaded
// before a heavy barrier began, so once the updater has flipped an index
// and issued heavy_barrier(), that index's counts stay frozen until the next
// flip back to it. Readers loop the sequence on oversubscribed threads
// (preempted anywhere, also between the load and the add); the updater
// flips a test-local index, takes a barrier, reads the old index's sum, and
// reads it again just before flipping back. A reader that went on with an
// index loaded before the barrier (a plain load and add: preempted between
// them, it adds to the old index much later) shows up as a changed sum.
TEST(RseqReaders, NoLockLandsOnAnIndexLoadedBeforeTheHeavyBarrier) {
#if !SRCU_HAVE_PERCPU
  GTEST_SKIP() << "this build has no restartable sequences (not x86-64, no glibc rseq, or TSan)";
#else
  srcu::domain d({.name = "rseq-readers"});  // the first domain decides (heavy_barrier_init())
  if (!srcu::detail::g_rseq_readers.load(std::memory_order_relaxed)) {
    GTEST_SKIP() << "grace periods do not rely on the readers' sequences here "
                    "(no membarrier RSEQ command, rseq not registered, or SRCU_NO_RSEQ/SRCU_NO_MEMBARRIER)";
  }
  struct alignas(64) counters {
    std::atomic<std::uint64_t> c[2] = {};
  };
  alignas(64) std::atomic<std::uint64_t> index{0};
  constexpr int kReaders = 6;  // on 2 CPUs: each is preempted often
  std::vector<std::unique_ptr<counters>> per(kReaders);
  for (auto& p : per) p = std::make_unique<counters>();
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 256; ++i) srcu::detail::rseq_index_add<false>(&index, per[r]->c);
      }
    });
  }
  const auto sum = [&](unsigned x) {
    std::uint64_t n = 0;
    for (const auto& p : per) n += p->c[x].load(std::memory_order_acquire);
    return n;
  };
  std::uint64_t frozen[2] = {0, 0};
  bool have[2] = {false, false};
  int late = 0;
  std::uint64_t late_adds = 0;
  constexpr int kFlips = 4000;
  {
    watchdog wd("4,000 flips with heavy barriers, readers spinning");
    for (int f = 0; f < kFlips; ++f) {
      const unsigned next = static_cast<unsigned>((index.load(std::memory_order_relaxed) + 1) & 1);
      // Before flipping back to `next`: its sum must not have moved since
      // the barrier that followed the flip away from it.
      if (have[next]) {
        const std::uint64_t now = sum(next);
        if (now != frozen[next]) {
          ++late;
          late_adds += now - frozen[next];
        }
      }
      const unsigned old = next ^ 1;
      index.store(index.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);  // as D after the flip
      srcu::detail::heavy_barrier();
      frozen[old] = sum(old);
      have[old] = true;
      std::this_thread::sleep_for(50us);  // readers run, and are preempted
    }
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(sum(0) + sum(1), std::uint64_t{kFlips}) << "the readers hardly ran";
  EXPECT_EQ(late, 0) << late << " of " << kFlips << " flips found " << late_adds
                     << " lock(s) added to an index after the heavy barrier that followed the flip "
                        "away from it: a reader's load and add are not one restartable sequence";
#endif
}

// The grace period this buys (docs/design.md §1.2): with the readers'
// sequences there is no straggler to scan the inactive index for, so a
// grace period with a reader spinning takes one heavy barrier (the old
// index's scan), not two (classic SCAN1 and SCAN2). A count, not a time:
// a second barrier needs a reader that commits on the old index between the
// scan's first pass and its barrier (a vCPU stalled mid-sequence), rare.
TEST(RseqReaders, AGracePeriodWithAReaderSpinningTakesOneHeavyBarrier) {
  srcu::domain d({.name = "one-barrier"});
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sections{0};
  std::thread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 64; ++i) d.read_unlock(d.read_lock());
      sections.fetch_add(64, std::memory_order_relaxed);
    }
  });
  {
    watchdog wd("the reader's first sections");
    while (sections.load() == 0) std::this_thread::sleep_for(1ms);
  }
  constexpr int kGps = 200;
  const std::uint64_t before = srcu::all_domains_stats().heavy_barriers;
  {
    watchdog wd("200 expedited grace periods with a reader spinning");
    for (int i = 0; i < kGps; ++i) d.synchronize_expedited();
  }
  const double per_gp =
      static_cast<double>(srcu::all_domains_stats().heavy_barriers - before) / kGps;
  stop = true;
  reader.join();
  if (srcu::detail::g_rseq_readers.load(std::memory_order_relaxed)) {
    EXPECT_LT(per_gp, 1.5) << "heavy barriers per grace period with the readers' sequences";
  }
  EXPECT_GE(per_gp, 1.0) << "every grace period with a reader takes at least one heavy barrier";
}

std::atomic<int> g_settles{0};  // "grace period: settling after the flip"

// The wait after the flip (grace_period.cc, settle_after_flip()) is for a
// reader's late commit on the old index: a grace period waits it only when a
// reader took that index since its last flip, and one with no reader at all
// does not (2026-12-06: 2.7 -> 1.6-1.8 us per expedited grace period with no
// reader on the 2-vCPU AMD EPYC VM).
TEST(RseqReaders, TheWaitAfterTheFlipIsOnlyForAnIndexReadersTook) {
  srcu::domain d({.name = "settle"});
  d.synchronize_expedited();  // the library decides on its readers' fences at first use
  if (!srcu::detail::g_rseq_readers.load(std::memory_order_relaxed) ||
      srcu::detail::g_readers_fence.load(std::memory_order_relaxed)) {
    GTEST_SKIP() << "no readers' sequences or no membarrier(2): no wait after the flip";
  }
  srcu::detail::g_test_probe.store(
      [](const char* point) {
        if (std::strcmp(point, "grace period: settling after the flip") == 0) g_settles.fetch_add(1);
      },
      std::memory_order_release);
  struct probe_off {
    ~probe_off() { srcu::detail::g_test_probe.store(nullptr, std::memory_order_release); }
  } off;  // on every way out
  watchdog wd("expedited grace periods of a domain no other thread uses");
  d.synchronize_expedited();  // both indices looked at once: a first look may see
  d.synchronize_expedited();  // counts from the domain's first use
  const int before = g_settles.load();
  for (int i = 0; i < 10; ++i) d.synchronize_expedited();
  EXPECT_EQ(g_settles.load(), before) << "grace periods with no reader waited after the flip";
  d.read_unlock(d.read_lock());  // a reader on the index the next flip leaves
  d.synchronize_expedited();
  EXPECT_EQ(g_settles.load(), before + 1) << "the flip after a reader took the old index did not wait";
  d.synchronize_expedited();  // its old index: untaken since its last flip
  d.synchronize_expedited();  // the reader's index again: untaken since the last look
  EXPECT_EQ(g_settles.load(), before + 1) << "the flips after the reader's one waited";
}

}  // namespace
