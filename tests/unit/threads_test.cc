// Threads come and go: slots are recycled, memory follows live threads.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace {

TEST(Threads, TenThousandShortLivedReadersReuseSlots) {
  srcu::domain d({.name = "churn"});
  constexpr int kThreads = 10'000;
  constexpr int kLive = 8;  // at most this many alive at once
  for (int done = 0; done < kThreads; done += kLive) {
    std::vector<std::thread> batch;
    for (int i = 0; i < kLive; ++i) {
      batch.emplace_back([&] {
        const srcu::read_token t = d.read_lock();
        d.read_unlock(t);
      });
    }
    for (auto& t : batch) t.join();
    if (done % 1000 == 0) d.synchronize();
  }
  d.synchronize();
  // Bounded by the peak of live threads (2 x peak + 4 with chunk rounding),
  // not by the 10,000 threads that ever read.
  EXPECT_LE(d.reader_slots(), 2u * kLive + 4);
  EXPECT_GT(d.reader_slots(), 0u);
}

TEST(Threads, ExitedThreadsReadersStayCounted) {
  // A recycled slot keeps its counts: sums over all slots stay right.
  srcu::domain d;
  for (int round = 0; round < 100; ++round) {
    std::thread([&] {
      for (int i = 0; i < 100; ++i) {
        const srcu::read_token t = d.read_lock();
        d.read_unlock(t);
      }
    }).join();
  }
  d.synchronize();
  d.synchronize_expedited();
  EXPECT_EQ(d.grace_periods_completed(), 2u);
}

TEST(Threads, ThreadOutlivesDomainItRead) {
  std::atomic<bool> go{false}, done{false};
  std::thread t;
  {
    srcu::domain d;
    t = std::thread([&] {
      { srcu::read_guard g(d); }
      done = true;
      while (!go) std::this_thread::yield();
      // Reads a new domain after the first is gone, then exits.
      srcu::domain other;
      srcu::read_guard g(other);
    });
    while (!done) std::this_thread::yield();
  }
  go = true;
  t.join();
}

TEST(Threads, OneThreadManyDomains) {
  std::vector<std::unique_ptr<srcu::domain>> domains;
  for (int i = 0; i < 300; ++i) domains.push_back(std::make_unique<srcu::domain>());
  std::thread([&] {
    for (auto& d : domains) {
      srcu::read_guard g(*d);
    }
  }).join();
  for (auto& d : domains) EXPECT_EQ(d->reader_slots(), 4u);
  domains.clear();
}

}  // namespace
