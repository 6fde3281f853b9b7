// Grace periods: domain isolation, sharing among concurrent callers,
// readers of other domains around synchronize().
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "readers.h"  // test seam: g_test_probe
#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;

TEST(GracePeriod, IdleSynchronizeCompletesOneGracePeriod) {
  srcu::domain d;
  EXPECT_EQ(d.grace_periods_completed(), 0u);
  d.synchronize();
  EXPECT_EQ(d.grace_periods_completed(), 1u);
  d.synchronize_expedited();
  EXPECT_EQ(d.grace_periods_completed(), 2u);
}

// The library's test seam (g_test_probe): a thread that set t_straggler
// stays at "read_lock_slow: index loaded" (after its load of the index,
// before its lock increment) until g_straggler_go.
thread_local bool t_straggler = false;
flag g_straggler_held;
flag g_straggler_go;
void hold_straggler(const char* point) {
  if (!t_straggler || std::strcmp(point, "read_lock_slow: index loaded") != 0) return;
  g_straggler_held.set();
  (void)g_straggler_go.wait();
}

// A straggler (docs/design.md §3, step 7): T loads index 0 in its first
// read_lock() and is held before its increment, while grace period G1 flips
// (a reader R inside index 0 keeps SCAN1 from ending it) and ends. T then
// increments index 0, now the inactive one, and is inside. G2 must wait for
// T: its SCAN1 scans the inactive index. A grace period ended by the active
// index alone (model/srcu.pml, BUSTED_FAST_ACTIVE_ONLY) would return here
// with T inside.
TEST(GracePeriod, AStragglerOnTheInactiveIndexHoldsTheNextGracePeriod) {
  srcu::domain d({.name = "straggler"});
  if (srcu::detail::g_rseq_readers.load(std::memory_order_relaxed)) {
    // Runs in the unit_no_rseq and unit_no_membarrier rows.
    GTEST_SKIP() << "readers' index load and increment are one restartable sequence here: no "
                    "straggler window to hold open (RseqReaders.* test that instead)";
  }
  srcu::detail::g_test_probe.store(&hold_straggler);
  flag t_inside;
  flag t_leave;
  std::atomic<bool> g2_done{false};
  std::thread t;
  // On any exit (an ASSERT too): the seam removed, T let go and joined.
  struct cleanup {
    std::thread& t;
    flag& leave;
    ~cleanup() {
      srcu::detail::g_test_probe.store(nullptr);
      g_straggler_go.set();
      leave.set();
      if (t.joinable()) t.join();
    }
  } guard{t, t_leave};
  t = std::thread([&] {
    t_straggler = true;
    const srcu::read_token token = d.read_lock();  // held at the probe first
    t_inside.set();
    (void)t_leave.wait();
    EXPECT_FALSE(g2_done.load()) << "the grace period after the flip ended with the straggler inside";
    d.read_unlock(token);
  });
  ASSERT_TRUE(g_straggler_held.wait()) << "the straggler thread never reached read_lock_slow()";
  {
    srcu_test::held_reader r(d);  // inside index 0, so G1 flips
    const std::uint64_t barriers_before = srcu::all_domains_stats().heavy_barriers;
    std::thread g1([&] { d.synchronize(); });
    {
      // G1's SCAN1 has taken its barrier (R is visibly inside index 0, so
      // that scan leaves index 0 out and G1 flips): R may leave.
      srcu_test::watchdog wd("G1's first heavy barrier (SCAN1)");
      while (srcu::all_domains_stats().heavy_barriers == barriers_before) std::this_thread::sleep_for(1ms);
    }
    r.release();
    srcu_test::watchdog wd("G1 (synchronize() after reader R left)");
    g1.join();
  }
  g_straggler_go.set();
  ASSERT_TRUE(t_inside.wait()) << "the straggler never entered its critical section";
  std::thread g2([&] {
    d.synchronize();
    g2_done = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(g2_done.load()) << "G2 ended while the straggler was inside index 0";
  t_leave.set();
  {
    srcu_test::watchdog wd("G2 (synchronize() after the straggler left)");
    g2.join();
    t.join();
  }
  EXPECT_TRUE(g2_done.load());
}

TEST(GracePeriod, BlockedReaderInOneDomainDoesNotDelayAnother) {
  srcu::domain a({.name = "blocked"});
  srcu::domain b({.name = "free"});
  srcu_test::held_reader reader(a);

  std::atomic<bool> a_done{false};
  std::thread a_updater([&] {
    a.synchronize();
    a_done = true;
  });
  // B's grace periods complete while A's reader is still blocked (if they
  // did not, these calls would never return: the reader is released below).
  for (int i = 0; i < 50; ++i) {
    b.synchronize();
    b.synchronize_expedited();
  }
  const srcu::poll_cookie c = b.start_poll();
  while (!b.poll(c)) std::this_thread::sleep_for(100us);
  EXPECT_FALSE(a_done.load()) << "A's synchronize() returned while its reader is blocked";
  EXPECT_GE(b.grace_periods_completed(), 100u);

  reader.release();
  a_updater.join();
  EXPECT_TRUE(a_done.load());
}

TEST(GracePeriod, ReadersOfAnotherDomainAroundSynchronizeAreLegal) {
  srcu::domain a, b;
  srcu::read_guard ga(a);
  const srcu::read_token tb = a.read_lock_signal_safe();
  b.synchronize();  // inside readers of A: legal, must not deadlock
  b.synchronize_expedited();
  b.cond_synchronize(b.get_poll_cookie());
  a.read_unlock_signal_safe(tb);
  EXPECT_EQ(b.grace_periods_completed(), 3u);
}

TEST(GracePeriod, ConcurrentCallersShareGracePeriods) {
  // Eight callers arrive while one grace period is held open by a reader;
  // after the reader leaves, at most two grace periods serve all of them
  // (the open one, and the one that starts after their snapshots).
  srcu::domain d;
  srcu_test::held_reader reader(d);
  std::atomic<int> returned{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([&, i] {
      if (i % 2) d.synchronize_expedited();
      else d.synchronize();
      returned.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(300ms);  // let every caller take its snapshot
  EXPECT_EQ(returned.load(), 0);
  const std::uint64_t before = d.grace_periods_completed();
  reader.release();
  for (auto& t : callers) t.join();
  EXPECT_EQ(returned.load(), 8);
  EXPECT_LE(d.grace_periods_completed() - before, 2u);
}

// Threads of this process now (each is an entry of /proc/self/task).
std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Uses each domain in every way that could need a thread: a reader, a grace
// period, a callback and a barrier that waits for it to run.
void use_each(std::vector<std::unique_ptr<srcu::domain>>& domains, std::size_t from,
              std::atomic<std::size_t>& callbacks_run) {
  for (std::size_t i = from; i < domains.size(); ++i) {
    srcu::domain& d = *domains[i];
    { srcu::read_guard g(d); }
    d.synchronize();
    d.call([&callbacks_run] { callbacks_run.fetch_add(1, std::memory_order_relaxed); });
    d.barrier();
  }
}

TEST(GracePeriod, ManyDomainsNeedNoThreads) {
  // Domains cost no thread each: the library's threads (the engine and the
  // callback workers) are shared by all of them. The thread count with 1000
  // live, used domains is compared with the count with 10; a thread per
  // domain would add ~990. The margin is the most the callback pool can
  // ever add (it starts workers when ready callbacks wait while every worker
  // is busy or starved of CPU, up to 32: under ctest -j2 on a 2-core VM it
  // did add 4): bounded by the pool, never by the number of domains.
  constexpr std::size_t kFew = 10, kMany = 1000, kMargin = 32;
  std::atomic<std::size_t> callbacks_run{0};
  std::vector<std::unique_ptr<srcu::domain>> domains;
  for (std::size_t i = 0; i < kFew; ++i) domains.push_back(std::make_unique<srcu::domain>());
  use_each(domains, 0, callbacks_run);  // starts whatever the library starts at all
  ASSERT_EQ(callbacks_run.load(), kFew);
  const std::size_t with_few = thread_count();

  for (std::size_t i = kFew; i < kMany; ++i) domains.push_back(std::make_unique<srcu::domain>());
  const std::size_t created = thread_count();
  use_each(domains, kFew, callbacks_run);
  for (std::size_t i = 0; i < kMany; i += 97) domains[i]->synchronize_expedited();
  ASSERT_EQ(callbacks_run.load(), kMany);
  const std::size_t with_many = thread_count();

  EXPECT_LE(created, with_few + kMargin) << "creating " << kMany - kFew << " domains started threads";
  EXPECT_LE(with_many, with_few + kMargin)
      << "threads with " << kMany << " used domains: " << with_many << ", with " << kFew << ": "
      << with_few;

  domains.clear();
  srcu::domain after;  // ids are recycled
  after.synchronize();
  EXPECT_LE(thread_count(), with_few + kMargin);
}

TEST(GracePeriod, RecycledDomainIdGetsFreshSlot) {
  // 1. Thread T reads domain D1 (T's table caches D1's slot under D1's id).
  // 2. D1 is destroyed; D2 is created and receives the same id.
  // 3. T reads D2: it must use a slot of D2, so D2's synchronize waits for it.
  auto d1 = std::make_unique<srcu::domain>();
  flag read_d1, d2_ready, in_d2, release;
  srcu::domain* d2 = nullptr;
  std::thread t([&] {
    { srcu::read_guard g(*d1); }
    read_d1.set();
    ASSERT_TRUE(d2_ready.wait());
    srcu::read_guard g(*d2);
    in_d2.set();
    ASSERT_TRUE(release.wait());
  });
  ASSERT_TRUE(read_d1.wait());
  d1.reset();
  auto owner = std::make_unique<srcu::domain>();
  d2 = owner.get();
  d2_ready.set();
  ASSERT_TRUE(in_d2.wait());
  std::atomic<bool> done{false};
  std::thread updater([&] {
    d2->synchronize();
    done = true;
  });
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(done.load());
  release.set();
  t.join();
  updater.join();
  EXPECT_TRUE(done.load());
}

}  // namespace
