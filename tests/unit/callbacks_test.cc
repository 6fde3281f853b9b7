// Callbacks: call(), retire(), barrier(), executors, ordering, isolation.
#include <dirent.h>
#include <unistd.h>

#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;

struct counted : srcu::callback_head {
  std::atomic<int>* runs = nullptr;
};

void count_run(srcu::callback_head* h) { static_cast<counted*>(h)->runs->fetch_add(1); }

int live_threads() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

TEST(Callbacks, RunAfterPreexistingReaderEnds) {
  srcu::domain d({.name = "cb"});
  std::atomic<int> runs{0};
  counted c;
  c.runs = &runs;
  srcu_test::held_reader reader(d);
  d.call(&c, &count_run);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runs.load(), 0) << "callback ran while a pre-existing reader was inside";
  reader.release();
  d.barrier();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(c.func, nullptr) << "srcu clears func before invoking";
  d.call(&c, &count_run);  // a head may be queued again once it has run
  d.barrier();
  EXPECT_EQ(runs.load(), 2);
}

// Sequence: callback_delay is microseconds::max() ("never on its own"; it
// must saturate, not overflow into a short delay); one call() and a
// barrier() (the engine's last drain is now); 100 call()s; 50 ms pass;
// barrier(). During the 50 ms none of the 100 may run or start a grace
// period (they wait for company); barrier() must not wait out the delay.
TEST(Callbacks, CallbackDelayBatchesAndBarrierCutsItShort) {
  srcu::domain d({.name = "cb-delay", .callback_delay = std::chrono::microseconds::max()});
  std::atomic<int> runs{0};
  std::vector<counted> heads(101);
  for (counted& c : heads) c.runs = &runs;
  d.call(&heads[0], &count_run);
  d.barrier();
  ASSERT_EQ(runs.load(), 1);
  const std::uint64_t gps = d.grace_periods_completed();
  for (int i = 1; i <= 100; ++i) d.call(&heads[i], &count_run);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runs.load(), 1) << "callbacks ran before callback_delay was over";
  EXPECT_EQ(d.grace_periods_completed(), gps) << "a grace period started for held callbacks";
  d.barrier();  // hangs (ctest timeout) if it waited for the delay
  EXPECT_EQ(runs.load(), 101);
}

// With callback_delay 0 every burst gets its grace period at once, as
// before batching: call(), then wait for it with no barrier() to hurry it.
TEST(Callbacks, ZeroCallbackDelayRunsWithoutBarrier) {
  srcu::domain d({.name = "cb-no-delay", .callback_delay = std::chrono::microseconds(0)});
  std::atomic<int> runs{0};
  for (int round = 1; round <= 100; ++round) {
    counted c;
    c.runs = &runs;
    d.call(&c, &count_run);
    while (runs.load() != round) std::this_thread::yield();  // no barrier: the engine runs it
  }
  d.barrier();
}

struct sequenced : srcu::callback_head {
  int thread = 0;
  int seq = 0;
  std::vector<int>* last_seen = nullptr;
  std::atomic<int>* violations = nullptr;
  std::atomic<long>* total = nullptr;
};

TEST(Callbacks, ExactlyOnceAndInOrderPerThread) {
  srcu::domain d({.name = "order"});
  constexpr int kThreads = 4, kPerThread = 20'000;
  std::vector<int> last_seen(kThreads, -1);  // touched only by callbacks (one batch at a time)
  std::atomic<int> violations{0};
  std::atomic<long> total{0};
  std::vector<std::vector<sequenced>> nodes(kThreads, std::vector<sequenced>(kPerThread));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        sequenced& n = nodes[t][i];
        n.thread = t;
        n.seq = i;
        n.last_seen = &last_seen;
        n.violations = &violations;
        n.total = &total;
        d.call(&n, [](srcu::callback_head* h) {
          auto* n = static_cast<sequenced*>(h);
          int& last = (*n->last_seen)[n->thread];
          if (n->seq != last + 1) n->violations->fetch_add(1);
          last = n->seq;
          n->total->fetch_add(1);
        });
        if (i % 4096 == 0) d.synchronize();  // interleave grace periods
      }
    });
  }
  for (auto& t : threads) t.join();
  d.barrier();
  EXPECT_EQ(total.load(), long{kThreads} * kPerThread);
  EXPECT_EQ(violations.load(), 0);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(last_seen[t], kPerThread - 1);
}

TEST(Callbacks, BarrierWaitsForCallbacksOfEveryThreadAndIsConcurrent) {
  srcu::domain d;
  std::atomic<int> runs{0};
  std::vector<counted> nodes(4000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * 1000; i < (t + 1) * 1000; ++i) {
        nodes[i].runs = &runs;
        d.call(&nodes[i], &count_run);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::thread> barriers;
  std::atomic<int> short_barriers{0};
  for (int b = 0; b < 4; ++b) {
    barriers.emplace_back([&] {
      d.barrier();
      if (runs.load() != 4000) short_barriers.fetch_add(1);
    });
  }
  for (auto& t : barriers) t.join();
  EXPECT_EQ(short_barriers.load(), 0) << "barrier() returned before earlier callbacks ran";
  EXPECT_EQ(runs.load(), 4000);
}

TEST(Callbacks, DestructorRunsQueuedCallbacks) {
  std::atomic<int> runs{0};
  std::vector<counted> nodes(1000);
  {
    srcu::domain d;
    for (auto& n : nodes) {
      n.runs = &runs;
      d.call(&n, &count_run);
    }
  }  // ~domain: barrier, then destroy
  EXPECT_EQ(runs.load(), 1000);
}

TEST(Callbacks, CallLambdaAndRetire) {
  srcu::domain d;
  std::atomic<int> runs{0};
  auto owned = std::make_unique<int>(7);
  d.call([&runs, p = std::move(owned)] { runs.fetch_add(*p == 7 ? 1 : 100); });
  struct probe {
    std::atomic<int>* deleted;
    ~probe() { deleted->fetch_add(1); }
  };
  std::atomic<int> deleted{0};
  d.retire(new probe{&deleted});
  d.retire(new probe{&deleted}, [&runs](probe* p) {
    runs.fetch_add(10);
    delete p;
  });
  d.barrier();
  EXPECT_EQ(runs.load(), 11);
  EXPECT_EQ(deleted.load(), 2);
}

TEST(Callbacks, CallbacksQueueCallbacksAndSynchronizeOnTheirOwnDomain) {
  // Re-entry: a callback calls call() on its own domain, and one calls
  // synchronize() (and start_poll()) on its own domain: no deadlock.
  srcu::domain d({.name = "reentry"});
  static std::atomic<int> depth_runs{0};
  static srcu::domain* dom = nullptr;
  dom = &d;
  depth_runs = 0;
  struct chain : srcu::callback_head {
    int remaining;
  };
  // srcu clears func before invoking, so a callback re-queues its own head
  // through a named function.
  struct again {
    static void run(srcu::callback_head* h) {
      auto* self = static_cast<chain*>(h);
      depth_runs.fetch_add(1);
      if (--self->remaining > 0) dom->call(self, &again::run);
      else delete self;
    }
  };
  auto* c2 = new chain;
  c2->remaining = 50;
  d.call(c2, &again::run);
  std::atomic<bool> synced{false};
  d.call([&] {
    dom->synchronize();  // from a callback, on its own domain
    dom->synchronize_expedited();
    (void)dom->start_poll();
    synced = true;
  });
  // Wait until the chain has finished re-queueing itself.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (depth_runs.load() < 50 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  d.barrier();
  EXPECT_TRUE(synced.load());
  EXPECT_EQ(depth_runs.load(), 50);
}

TEST(Callbacks, BlockedReaderInOneDomainDoesNotDelayAnothersCallbacks) {
  srcu::domain a({.name = "blocked"}), b({.name = "free"});
  srcu_test::held_reader reader(a);
  std::atomic<int> a_runs{0}, b_runs{0};
  counted ca, cb;
  ca.runs = &a_runs;
  cb.runs = &b_runs;
  a.call(&ca, &count_run);
  for (int i = 0; i < 20; ++i) {
    b.call(&cb, &count_run);
    b.barrier();  // returns while A's reader is still blocked
  }
  EXPECT_EQ(b_runs.load(), 20);
  EXPECT_EQ(a_runs.load(), 0);
  reader.release();
  a.barrier();
  EXPECT_EQ(a_runs.load(), 1);
}

TEST(Callbacks, SleepingCallbackDoesNotDelayOtherDomainsGracePeriods) {
  srcu::domain a({.name = "slow-callback"}), b({.name = "other"});
  flag sleeping, release;
  a.call([&] {
    sleeping.set();
    (void)release.wait();
  });
  ASSERT_TRUE(sleeping.wait());
  // The callback thread is stuck in A's callback; B's grace periods and
  // polled grace periods still complete (the engine is another thread).
  for (int i = 0; i < 20; ++i) b.synchronize();
  const srcu::poll_cookie c = b.start_poll();
  while (!b.poll(c)) std::this_thread::sleep_for(100us);
  release.set();
  a.barrier();
}

TEST(Callbacks, HundredThousandDomainsCreateNoThreadAndLittleMemory) {
  srcu::domain first;  // the library threads exist from here on
  const int threads_before = live_threads();
  auto rss_kib = [] {
    std::ifstream statm("/proc/self/statm");
    long size = 0, resident = 0;
    statm >> size >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
  };
  const long before = rss_kib();
  std::vector<std::unique_ptr<srcu::domain>> domains;
  domains.reserve(100'000);
  for (int i = 0; i < 100'000; ++i) domains.push_back(std::make_unique<srcu::domain>());
  const long grown_kib = rss_kib() - before;
  EXPECT_EQ(live_threads(), threads_before);
#if !SRCU_TSAN && !defined(__SANITIZE_ADDRESS__)
  // Sanitizer runtimes inflate every allocation; the bound is for real builds.
  EXPECT_LT(grown_kib, 100 * 1024) << "100,000 domains took " << grown_kib << " KiB";
#endif
  std::printf("100,000 domains: %ld KiB resident (%ld bytes each)\n", grown_kib,
              grown_kib * 1024 / 100'000);
  domains.clear();
}

// --- Executors ---------------------------------------------------------------

TEST(Executor, AbbaThroughTheExecutorDoesNotDeadlock) {
  // Regression for the seed (kernel call_srcu(), March 2026), user-space form:
  //  1. A thread holds mutex M and calls call().
  //  2. call() wakes the machinery that hands batches to the executor.
  //  3. The executor's submit() takes M; a callback takes M too.
  //  If call() held a library lock while waking (or called submit() itself),
  //  1-3 close a cycle. call() takes no lock and never calls out.
  std::mutex m;
  srcu_test::thread_executor exec(&m);
  {
    srcu::domain d({.name = "abba", .callback_executor = &exec});
    std::atomic<int> runs{0};
    const int rounds = static_cast<int>(100'000 * srcu_test::stress_seconds(3) / 3);
    std::vector<counted> nodes(rounds);
    for (int i = 0; i < rounds; ++i) {
      nodes[i].runs = &runs;
      std::lock_guard lk(m);
      d.call(&nodes[i], [](srcu::callback_head* h) {
        static_cast<counted*>(h)->runs->fetch_add(1);
      });
    }
    d.call([&] { std::lock_guard lk(m); });  // a callback that takes M
    d.barrier();
    EXPECT_EQ(runs.load(), rounds);
    EXPECT_GT(exec.submitted(), 0);
  }
}

TEST(Executor, DestroyingAnotherDomainDoesNotLoseAKick) {
  // Regression (found by the API fuzzer, 2026-11-25):
  //  1. The callback thread steps domain A (A is busy).
  //  2. A is kicked again (its next batch became ready).
  //  3. ~domain() of domain B calls forget(), which absorbs the pending
  //     kicks, A's among them; A is listed already, so nothing changes.
  //  4. A's step ends with kDone and A is unlinked: its ready callbacks are
  //     never dispatched, and A's barrier() waits for ever.
  std::mutex m;
  srcu_test::thread_executor exec(&m);
  const int rounds = static_cast<int>(1500 * srcu_test::stress_seconds(3) / 3);
  for (int i = 0; i < rounds; ++i) {
    srcu::domain a({.name = "kicked", .callback_executor = &exec});
    auto b = std::make_unique<srcu::domain>();
    std::thread t1([&] { a.call([] {}); });
    std::thread t2([&] { a.call([] {}); });
    t1.join();
    t2.join();
    b.reset();  // forget() while A's callbacks are in flight
    auto done = std::async(std::launch::async, [&] { a.barrier(); });
    if (done.wait_for(30s) != std::future_status::ready) {
      ADD_FAILURE() << "round " << i << ": barrier() never returned (lost kick)";
      std::_Exit(1);  // cannot unwind past a hung barrier
    }
  }
}

TEST(Executor, MutexNeededByCallbackHeldAcrossCallAndOtherDomainSynchronize) {
  // A thread holds M, queues a callback on A that needs M, then waits for a
  // grace period of B: B's grace period must not depend on A's callbacks.
  std::mutex m;
  srcu::domain a({.name = "needs-m"}), b({.name = "sync"});
  std::atomic<int> runs{0};
  {
    std::lock_guard lk(m);
    a.call([&] {
      std::lock_guard inner(m);
      runs.fetch_add(1);
    });
    for (int i = 0; i < 10; ++i) {
      b.synchronize();
      b.synchronize_expedited();
    }
  }
  a.barrier();
  EXPECT_EQ(runs.load(), 1);
}

TEST(Executor, CallFromInsideSubmitAndFromCallbacks) {
  // call() works inside the executor's own hook.
  struct reentrant_executor : srcu::executor {
    srcu::domain* other = nullptr;
    std::atomic<int>* runs = nullptr;
    void submit(srcu::callback_batch batch) noexcept override {
      other->call([r = runs] { r->fetch_add(100); });  // allocates: fine here
      batch.run();                                     // inline executor
    }
  };
  srcu::domain other;
  std::atomic<int> runs{0};
  reentrant_executor exec;
  exec.other = &other;
  exec.runs = &runs;
  {
    srcu::domain d({.callback_executor = &exec});
    d.call([&] { runs.fetch_add(1); });
    d.barrier();
  }
  other.barrier();
  EXPECT_GE(runs.load(), 101);
}

}  // namespace
