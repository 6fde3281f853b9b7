// Seeing inside (issue 12): stall reports that name the reader, statistics,
// and the deadlock detector (lockdep for domains, debug builds).
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <srcu/srcu.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;
using srcu_test::watchdog;

pid_t this_tid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// ------------------------------------------------------------ stall reports --

// What the handler saw, copied out of the report (valid only during the call).
struct seen_report {
  std::string domain;
  std::uint64_t grace_period = 0;
  std::chrono::milliseconds stalled_for{0};
  std::uint64_t readers = 0;
  std::vector<srcu::reader_holder> holders;
  pid_t handler_tid = 0;
};

std::mutex g_reports_mutex;
std::vector<seen_report> g_reports;
srcu::domain* g_other_domain = nullptr;  // the handler synchronizes it, when set
std::atomic<int> g_other_synchronized{0};

void recording_handler(const srcu::stall_report& r) noexcept {
  if (g_other_domain != nullptr) {
    g_other_domain->synchronize();  // no library lock is held here
    g_other_synchronized.fetch_add(1);
  }
  seen_report s;
  s.domain = r.domain;
  s.grace_period = r.grace_period;
  s.stalled_for = r.stalled_for;
  s.readers = r.readers;
  s.holders.assign(r.holders, r.holders + r.holder_count);
  s.handler_tid = this_tid();
  std::lock_guard lk(g_reports_mutex);
  g_reports.push_back(std::move(s));
}

class StallReport : public ::testing::Test {
 protected:
  void SetUp() override {
    std::lock_guard lk(g_reports_mutex);
    g_reports.clear();
    previous_ = srcu::set_stall_handler(&recording_handler);
  }
  void TearDown() override {
    srcu::set_stall_handler(previous_);
    g_other_domain = nullptr;
  }
  static std::vector<seen_report> reports_for(const std::string& domain) {
    std::lock_guard lk(g_reports_mutex);
    std::vector<seen_report> out;
    for (const auto& r : g_reports) {
      if (r.domain == domain) out.push_back(r);
    }
    return out;
  }
  static bool wait_for_reports(const std::string& domain, std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (reports_for(domain).size() < n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
  srcu::stall_handler previous_ = nullptr;
};

// A named thread blocks in a reader; a start_poll() that nobody waits for is
// reported, naming the thread, on a library thread, again and again.
TEST_F(StallReport, NamesTheBlockedThreadAndRepeats) {
  srcu::domain dom({.name = "stall_named", .stall_timeout = 100ms});
  flag inside, release;
  std::atomic<pid_t> reader_tid{0};
  std::thread reader([&] {
    pthread_setname_np(pthread_self(), "blocked-reader");
    reader_tid = this_tid();
    srcu::read_guard g(dom);
    inside.set();
    (void)release.wait();
  });
  watchdog wd("the reader to enter");
  ASSERT_TRUE(inside.wait());
  const std::uint64_t completed = dom.grace_periods_completed();
  (void)dom.start_poll();  // nobody waits: the report must come anyway
  wd.rearm("three stall reports of 'stall_named'");
  ASSERT_TRUE(wait_for_reports("stall_named", 3));
  const auto reports = reports_for("stall_named");
  release.set();
  reader.join();

  const seen_report& r = reports[0];
  EXPECT_EQ(r.grace_period, completed + 1);
  EXPECT_GE(r.stalled_for, 100ms);
  EXPECT_EQ(r.readers, 1u);
  ASSERT_EQ(r.holders.size(), 1u);
  EXPECT_EQ(r.holders[0].tid, reader_tid.load());
  EXPECT_STREQ(r.holders[0].thread_name, "blocked-reader");
  EXPECT_EQ(r.holders[0].flavour, srcu::reader_flavour::thread);
  EXPECT_NE(r.handler_tid, reader_tid.load());  // never on the reader's thread
  EXPECT_NE(r.handler_tid, this_tid());
  // Again every stall_timeout after the previous report, same grace period
  // (stalled_for is taken when each report is issued).
  for (std::size_t i = 1; i < reports.size(); ++i) {
    EXPECT_EQ(reports[i].grace_period, r.grace_period);
    EXPECT_GE(reports[i].stalled_for - reports[i - 1].stalled_for, 100ms)
        << "report " << i << " came sooner than stall_timeout after the previous one";
  }
  EXPECT_GE(dom.stats().stalls_reported, 3u);
  wd.rearm("the stalled grace period to end");
  dom.synchronize();
}

// The handler runs with no library lock held: it may synchronize() another
// domain. And it never runs on the thread blocked in synchronize().
TEST_F(StallReport, HandlerMaySynchronizeAnotherDomainAndNeverRunsOnTheWaiter) {
  srcu::domain dom({.name = "stall_waiter", .stall_timeout = 50ms});
  srcu::domain other({.name = "stall_other"});
  g_other_domain = &other;
  srcu_test::held_reader reader(dom);
  std::atomic<pid_t> waiter_tid{0};
  std::thread waiter([&] {
    waiter_tid = this_tid();
    dom.synchronize();
  });
  watchdog wd("a stall report while a thread waits in synchronize()");
  ASSERT_TRUE(wait_for_reports("stall_waiter", 1));
  EXPECT_GE(g_other_synchronized.load(), 1);
  EXPECT_NE(reports_for("stall_waiter")[0].handler_tid, waiter_tid.load());
  reader.release();
  wd.rearm("synchronize() after the reader left");
  waiter.join();
}

// Shared-counter flavours are counted, not named.
TEST_F(StallReport, SharedFlavoursAreCountedNotNamed) {
  srcu::domain dom({.name = "stall_shared", .stall_timeout = 50ms});
  const srcu::read_token a = dom.read_lock_signal_safe();
  const srcu::read_token b = dom.down_read();
  (void)dom.start_poll();
  watchdog wd("a stall report for shared-flavour readers");
  ASSERT_TRUE(wait_for_reports("stall_shared", 1));
  const seen_report r = reports_for("stall_shared")[0];
  EXPECT_EQ(r.readers, 2u);
  EXPECT_TRUE(r.holders.empty());
  dom.read_unlock_signal_safe(a);
  dom.up_read(b);
  dom.synchronize();
}

TEST_F(StallReport, OffWhenTheTimeoutIsZero) {
  srcu::domain dom({.name = "stall_off", .stall_timeout = 0ms});
  {
    srcu_test::held_reader reader(dom);
    (void)dom.start_poll();
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(reports_for("stall_off").empty());
  EXPECT_EQ(dom.stats().stalls_reported, 0u);
  dom.synchronize();
}

// The default handler's shape on stderr.
TEST(StallReportDefault, WritesTheGreppableShapeToStderr) {
  srcu::stall_handler previous = srcu::set_stall_handler(nullptr);
  srcu::domain dom({.name = "stall_default", .stall_timeout = 50ms});
  testing::internal::CaptureStderr();
  std::uint64_t gp = 0;
  {
    flag inside, release;
    std::thread reader([&] {
      pthread_setname_np(pthread_self(), "default-holder");
      srcu::read_guard g(dom);
      inside.set();
      (void)release.wait();
    });
    ASSERT_TRUE(inside.wait());
    gp = dom.grace_periods_completed() + 1;
    (void)dom.start_poll();
    watchdog wd("the default stall report");
    while (dom.stats().stalls_reported == 0) std::this_thread::sleep_for(1ms);
    release.set();
    reader.join();
  }
  const std::string err = testing::internal::GetCapturedStderr();
  srcu::set_stall_handler(previous);
  const std::string head = "srcu: stall: domain 'stall_default' grace period " + std::to_string(gp) + " stalled for ";
  EXPECT_NE(err.find(head), std::string::npos) << err;
  EXPECT_NE(err.find("ms, 1 reader(s) inside"), std::string::npos) << err;
  EXPECT_NE(err.find("srcu: stall:   holder: thread "), std::string::npos) << err;
  EXPECT_NE(err.find("('default-holder') read_lock"), std::string::npos) << err;
  dom.synchronize();
}

// -------------------------------------------------------------- statistics --

TEST_F(StallReport, StatsCountGracePeriodsCallbacksAndTheLongest) {
  srcu::domain dom({.name = "stats", .stall_timeout = 30ms});
  const srcu::domain_stats zero = dom.stats();
  EXPECT_EQ(zero.grace_periods, 0u);
  EXPECT_EQ(zero.callbacks_queued, 0u);
  dom.synchronize();
  dom.synchronize_expedited();
  dom.synchronize_expedited();
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i) dom.call([&] { ran++; });
  dom.retire(new int(1));
  dom.barrier();
  std::chrono::milliseconds reported_stall{0};
  {
    // A grace period held up long enough to be reported: the longest grace
    // period is at least as long as it had lasted when the report was made.
    srcu_test::held_reader reader(dom);
    (void)dom.start_poll();
    watchdog wd("a stall report for the stats domain");
    ASSERT_TRUE(wait_for_reports("stats", 1));
    reported_stall = reports_for("stats")[0].stalled_for;
    reader.release();
    dom.synchronize();
  }
  const srcu::domain_stats s = dom.stats();
  EXPECT_EQ(s.grace_periods, dom.grace_periods_completed());
  EXPECT_GE(s.grace_periods, 5u);
  EXPECT_GE(s.expedited_grace_periods, 2u);
  EXPECT_LE(s.expedited_grace_periods, s.grace_periods);
  EXPECT_EQ(s.callbacks_queued, 11u);
  EXPECT_EQ(s.callbacks_invoked, 11u);
  EXPECT_GE(s.longest_grace_period, reported_stall);
  EXPECT_GE(reported_stall, 30ms);
  EXPECT_GE(s.stalls_reported, 1u);

  srcu::domain other({.name = "stats_other"});
  other.call([] {});
  other.barrier();
  const srcu::process_stats all = srcu::all_domains_stats();
  EXPECT_GE(all.domains, 2u);
  EXPECT_GE(all.totals.callbacks_queued, 12u);
  EXPECT_GE(all.totals.grace_periods, s.grace_periods + 1);
  EXPECT_GE(all.totals.longest_grace_period, s.longest_grace_period);
}

// ---------------------------------------------------------- deadlock detector --

class Lockdep : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!srcu::deadlock_detection_enabled()) {
      GTEST_SKIP() << "the library was built without the deadlock detector (release build "
                      "without SRCU_DEBUG); the tsan and asan (debug) builds run these";
    }
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

// The AB-BA between two domains is reported the first time both halves have
// run, though they never overlapped in time.
TEST_F(Lockdep, ReaderOfAWaitingForBAndReaderOfBWaitingForA) {
  const auto ab_ba = [] {
    srcu::domain a({.name = "dl_a"}), b({.name = "dl_b"});
    {
      srcu::read_guard g(a);
      b.synchronize();  // a -> b
    }
    srcu::read_guard g(b);
    a.synchronize();  // b -> a: cycle
  };
  EXPECT_DEATH(ab_ba(), "deadlock.*'dl_b' -> 'dl_a'.*'dl_a' -> 'dl_b'");
}

// The seed's shape: a reader takes the scheduler's lock; an updater
// synchronizes with it held.
TEST_F(Lockdep, ReaderTakesAMutexThatAnUpdaterHoldsAcrossSynchronize) {
  EXPECT_DEATH(
      {
        srcu::domain dom({.name = "dl_hooks"});
        srcu::tracked_mutex sched("dl_sched");
        std::thread([&] {
          srcu::read_guard g(dom);
          std::lock_guard lk(sched);  // dom -> sched
        }).join();
        std::lock_guard lk(sched);
        dom.synchronize();  // sched -> dom: cycle
      },
      "deadlock.*dl_sched.*dl_hooks");
}

// A callback takes the mutex; barrier() is called with it held.
TEST_F(Lockdep, CallbackTakesAMutexHeldAcrossBarrier) {
  EXPECT_DEATH(
      {
        srcu::domain dom({.name = "dl_cb"});
        srcu::tracked_mutex m("dl_cb_lock");
        dom.call([&] { std::lock_guard lk(m); });  // callbacks of dl_cb -> dl_cb_lock
        dom.barrier();
        std::lock_guard lk(m);
        dom.barrier();  // dl_cb_lock -> callbacks of dl_cb: cycle
      },
      "deadlock.*dl_cb_lock.*callbacks of 'dl_cb'");
}

// The same with the mutex held across a barrier() on a domain never used
// (which returns at once, making no state): the edge is still recorded, and
// the callback queued later closes the cycle where it takes the mutex.
TEST_F(Lockdep, MutexHeldAcrossBarrierOfANeverUsedDomainIsRecorded) {
  EXPECT_DEATH(
      {
        srcu::domain dom({.name = "dl_unborn"});
        srcu::tracked_mutex m("dl_unborn_lock");
        {
          std::lock_guard lk(m);
          dom.barrier();  // dl_unborn_lock -> callbacks of dl_unborn
        }
        dom.call([&] { std::lock_guard lk(m); });  // callbacks of dl_unborn -> dl_unborn_lock
        dom.barrier();
      },
      "deadlock.*dl_unborn");
}

TEST_F(Lockdep, MutexOrderInversion) {
  const auto inversion = [] {
    srcu::tracked_mutex m1("dl_m1"), m2("dl_m2");
    {
      std::lock_guard a(m1);
      std::lock_guard b(m2);  // m1 -> m2
    }
    std::lock_guard b(m2);
    std::lock_guard a(m1);  // m2 -> m1: cycle
  };
  EXPECT_DEATH(inversion(), "deadlock.*dl_m2.*dl_m1");
}

// No reverse edge, no report: readers of A around synchronize() of B, and
// mutexes taken in one order, as often as we like.
TEST_F(Lockdep, NoCycleNoReport) {
  srcu::domain a({.name = "fp_a"}), b({.name = "fp_b"});
  srcu::tracked_mutex m("fp_m");
  for (int i = 0; i < 50; ++i) {
    srcu::read_guard g(a);
    b.synchronize();
    std::lock_guard lk(m);
  }
  std::thread([&] {
    std::lock_guard lk(m);
    b.synchronize();  // m -> b: still no cycle (b never waits for m or a)
  }).join();
  a.synchronize();
  SUCCEED();
}

// Edges die with their domain: a new domain at the same address is a new node.
TEST_F(Lockdep, EdgesOfADestroyedDomainAreForgotten) {
  srcu::domain b({.name = "reuse_b"});
  alignas(srcu::domain) unsigned char storage[sizeof(srcu::domain)];
  auto* a1 = new (storage) srcu::domain({.name = "reuse_a1"});
  {
    srcu::read_guard g(*a1);
    b.synchronize();  // a1 -> b
  }
  a1->~domain();
  auto* a2 = new (storage) srcu::domain({.name = "reuse_a2"});  // same address
  {
    srcu::read_guard g(b);
    a2->synchronize();  // b -> a2: no cycle, a1's edge is gone
  }
  a2->~domain();
  SUCCEED();
}

TEST_F(Lockdep, SynchronizeInsideOwnSignalSafeReaderAborts) {
  EXPECT_DEATH(
      {
        srcu::domain dom({.name = "dl_ss"});
        const srcu::read_token t = dom.read_lock_signal_safe();
        dom.synchronize();
        dom.read_unlock_signal_safe(t);
      },
      "domain 'dl_ss': synchronize\\(\\) called inside a read_lock_signal_safe\\(\\) section");
}

// down_read() then synchronize() on the same thread stays legal: another
// thread may up_read() (any build).
TEST(DownReadThenSynchronize, IsLegalOnTheSameThread) {
  srcu::domain dom({.name = "down_then_sync"});
  srcu::down_read_guard g(dom);
  std::thread up([&, moved = std::move(g)]() mutable {
    std::this_thread::sleep_for(20ms);
    moved.unlock();
  });
  watchdog wd("synchronize() after down_read() on the same thread");
  dom.synchronize();
  up.join();
}

}  // namespace

namespace {

// process_stats::heavy_barriers counts the reader scans' heavy barriers: a
// grace period with no reader inside scans both indices in one pass pair
// around one barrier and ends without the flip (design.md §1.2). Nothing
// else in this process scans.
TEST(ProcessStats, HeavyBarriersCountTheScans) {
  srcu::domain d({.name = "heavy-barrier-count"});
  d.read_unlock(d.read_lock());  // a slot, so the scans have a block to read
  const std::uint64_t before = srcu::all_domains_stats().heavy_barriers;
  const std::uint64_t gps_before = d.grace_periods_completed();
  for (int i = 0; i < 10; ++i) d.synchronize();
  const std::uint64_t gps = d.grace_periods_completed() - gps_before;
  const std::uint64_t after = srcu::all_domains_stats().heavy_barriers;
  EXPECT_GE(gps, 10u);
  // Exact when this test runs alone in its process (ctest); run with the
  // whole binary, other tests' engines may add some.
  EXPECT_GE(after - before, gps);
  EXPECT_LT(after - before, 2 * gps) << "one scan of both indices per grace period, one heavy barrier each";
}

// With a reader inside the active index, SCAN1 cannot end the grace period:
// it flips, and SCAN2 waits for the reader with a barrier of its own, so a
// grace period takes at least two, and does not end while the reader is
// inside. With the readers' restartable sequences (g_rseq_readers) there is
// no SCAN1: the grace period flips at once, and SCAN2's barrier is its only
// one (at least one, then).
TEST(ProcessStats, AReaderInsideMakesTheGracePeriodFlipAndScanAgain) {
  srcu::domain d({.name = "reader-inside"});
  std::atomic<bool> inside{false};
  std::atomic<bool> leave{false};
  std::atomic<bool> gp_done{false};
  std::thread reader([&] {
    srcu::read_token t = d.read_lock();
    inside = true;
    while (!leave.load()) std::this_thread::sleep_for(1ms);
    EXPECT_FALSE(gp_done.load()) << "the grace period ended under the reader";
    d.read_unlock(t);
  });
  {
    watchdog wd("the reader thread to enter its critical section");
    while (!inside.load()) std::this_thread::sleep_for(1ms);
  }
  const std::uint64_t before = srcu::all_domains_stats().heavy_barriers;
  const std::uint64_t gps_before = d.grace_periods_completed();
  std::thread updater([&] {
    d.synchronize();
    gp_done = true;
  });
  std::this_thread::sleep_for(20ms);
  leave = true;
  {
    watchdog wd("synchronize() after the reader left");
    updater.join();
    reader.join();
  }
  const std::uint64_t gps = d.grace_periods_completed() - gps_before;
  EXPECT_EQ(gps, 1u);
  if (srcu::detail::g_rseq_readers.load(std::memory_order_relaxed)) {
    EXPECT_GE(srcu::all_domains_stats().heavy_barriers - before, 1u) << "SCAN2 after the flip";
  } else {
    EXPECT_GE(srcu::all_domains_stats().heavy_barriers - before, 2u)
        << "SCAN1 (the active index left out: a reader inside) and SCAN2 after the flip";
  }
}

}  // namespace

namespace {

// Domains for the heavy-barrier sharing tests, and their grace periods.
struct domain_set {
  domain_set(int count, const char* name) {
    for (int i = 0; i < count; ++i) all.push_back(std::make_unique<srcu::domain>(srcu::domain_options{.name = name}));
  }
  std::uint64_t grace_periods() const {
    std::uint64_t n = 0;
    for (const auto& d : all) n += d->grace_periods_completed();
    return n;
  }
  srcu::domain& operator[](int i) { return *all[static_cast<std::size_t>(i)]; }
  std::vector<std::unique_ptr<srcu::domain>> all;
};

// One membarrier() serves every scan waiting for one at that moment, in any
// domain (fence HB): with updaters of eight domains calling synchronize() at
// once (oversubscribed on small machines, so a thread is often preempted
// with its barrier in flight), fewer barriers are issued than scans run.
// With no reader, every grace period is one scan (both indices, one
// barrier), so without sharing the two counts are equal. The loop runs until sharing has
// been seen (a behaviour, not a speed: one overlap suffices), bounded by
// the watchdog.
TEST(ProcessStats, ConcurrentScansOfDifferentDomainsShareHeavyBarriers) {
  if (srcu::detail::g_readers_fence.load(std::memory_order_relaxed)) {
    GTEST_SKIP() << "membarrier(2) unavailable or forced off: each scan fences for itself";
  }
  constexpr int kDomains = 8;
  domain_set domains(kDomains, "shared-barrier");
  const auto total_gps = [&] { return domains.grace_periods(); };
  const std::uint64_t gps_before = total_gps();
  const std::uint64_t barriers_before = srcu::all_domains_stats().heavy_barriers;
  std::atomic<bool> shared{false};
  std::uint64_t gps = 0;
  std::uint64_t barriers = 0;
  watchdog wd("a heavy barrier shared by scans of different domains", 60s);
  std::vector<std::thread> updaters;
  for (int i = 0; i < kDomains; ++i) {
    updaters.emplace_back([&, i] {
      while (!shared.load(std::memory_order_relaxed)) {
        for (int n = 0; n < 50; ++n) domains[i].synchronize();
        if (i != 0) continue;
        // Grace periods first: a scan counts its barrier before its grace
        // period ends (and that end is an acquire here), so the barriers
        // read after include every ended grace period's; without sharing
        // barriers >= grace periods.
        gps = total_gps() - gps_before;
        barriers = srcu::all_domains_stats().heavy_barriers - barriers_before;
        if (barriers < gps) shared.store(true, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& t : updaters) t.join();
  EXPECT_LT(barriers, gps) << "barriers issued " << barriers << ", scans " << gps;
  EXPECT_GT(barriers, 0u);
  RecordProperty("heavy_barriers_per_grace_period",
                 std::to_string(static_cast<double>(barriers) / static_cast<double>(gps)));
}

}  // namespace

namespace {

std::atomic<int> g_batch_callbacks{0};

// The engine's batch: when the grace periods of several domains are due at
// once (their callbacks' batching delay ends together), their scans keep
// their first passes and the engine issues one heavy barrier for all of
// them, then steps them again (fence HB). Without it every grace period
// takes a barrier of its own (one: no reader, both indices in one scan). The rounds run until one batch shared
// (a behaviour: one shared barrier suffices), bounded by the watchdog.
TEST(ProcessStats, TheEngineIssuesOneHeavyBarrierForABatchOfDomains) {
  if (srcu::detail::g_readers_fence.load(std::memory_order_relaxed)) {
    GTEST_SKIP() << "membarrier(2) unavailable or forced off: each scan fences for itself";
  }
  constexpr int kDomains = 32;
  domain_set domains(kDomains, "engine-batch");
  std::vector<srcu::callback_head> heads(kDomains);
  const auto total_gps = [&] { return domains.grace_periods(); };
  g_batch_callbacks = 0;
  std::uint64_t gps = 0;
  std::uint64_t barriers = 0;
  watchdog wd("a heavy barrier shared by the engine's steps of several domains", 60s);
  for (int round = 1; barriers >= gps; ++round) {
    const std::uint64_t gps_before = total_gps();
    const std::uint64_t barriers_before = srcu::all_domains_stats().heavy_barriers;
    for (int i = 0; i < kDomains; ++i) {
      domains[i].call(&heads[static_cast<std::size_t>(i)], [](srcu::callback_head*) { ++g_batch_callbacks; });
    }
    while (g_batch_callbacks.load() < round * kDomains) std::this_thread::sleep_for(1ms);
    // Grace periods first: each counted one's barriers are counted below
    // (see ConcurrentScansOfDifferentDomainsShareHeavyBarriers).
    gps = total_gps() - gps_before;
    barriers = srcu::all_domains_stats().heavy_barriers - barriers_before;
    ASSERT_GE(gps, static_cast<std::uint64_t>(kDomains)) << "each domain's callback waited for a grace period";
  }
  EXPECT_LT(barriers, gps);
  RecordProperty("heavy_barriers_per_grace_period",
                 std::to_string(static_cast<double>(barriers) / static_cast<double>(gps)));
}

}  // namespace
