// Threads come and go: slots are recycled, memory follows live threads.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

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
  // One thread T reads a domain, keeps running after the domain is destroyed,
  // then reads the next domain, which may receive the destroyed one's id (T's
  // slot table still has an entry under that id). Each round, T must get a
  // slot of the new domain: the new domain's reader_slots() grows from 0, and
  // its synchronize() waits for T's section (a stale entry would count T's
  // reader in freed memory, where the grace period cannot see it).
  using namespace std::chrono_literals;
  using srcu_test::flag;
  constexpr int kRounds = 4;
  struct round_state {
    flag go, inside, release, left;
    std::atomic<bool> section_over{false};
  };
  std::array<round_state, kRounds> rounds;
  std::atomic<srcu::domain*> current{nullptr};
  std::atomic<int> rounds_after_a_destroyed_domain{0};
  flag all_domains_gone, exiting;
  srcu_test::watchdog watchdog("round 0: T entering its section");

  std::thread t([&] {
    for (int i = 0; i < kRounds; ++i) {
      round_state& r = rounds[i];
      if (!r.go.wait()) return;
      if (i > 0) rounds_after_a_destroyed_domain.fetch_add(1);
      srcu::domain& d = *current.load();
      {
        srcu::read_guard g(d);
        r.inside.set();
        (void)r.release.wait();
        r.section_over = true;
      }
      r.left.set();
    }
    // Every domain T read is gone; T runs on and exits normally.
    (void)all_domains_gone.wait();
    exiting.set();
  });

  for (int i = 0; i < kRounds; ++i) {
    const std::string step = "round " + std::to_string(i) + ": ";
    round_state& r = rounds[i];
    auto d = std::make_unique<srcu::domain>(srcu::domain_options{.name = "outlived"});
    EXPECT_EQ(d->reader_slots(), 0u) << step << "a new domain has no slots";
    d->synchronize();  // T's entries for destroyed domains hold up nothing
    current = d.get();
    watchdog.rearm(step + "T entering its section");
    r.go.set();
    EXPECT_TRUE(r.inside.wait()) << step << "T never entered its section";
    EXPECT_GT(d->reader_slots(), 0u) << step << "T's reader did not take a slot of the new domain";

    // synchronize() must wait for T's section: it checks that the section
    // ended before it returned. Released after a pause so that a
    // synchronize() that misses T's reader returns while T is inside.
    std::atomic<bool> saw_section_over{false};
    flag synchronized;
    std::thread updater([&] {
      d->synchronize();
      saw_section_over = r.section_over.load();
      synchronized.set();
    });
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(synchronized.is_set()) << step << "synchronize() returned while T was inside";
    r.release.set();
    watchdog.rearm(step + "synchronize() after T's section ended");
    updater.join();
    EXPECT_TRUE(saw_section_over.load()) << step << "synchronize() returned while T was inside";
    watchdog.rearm(step + "T leaving its section");
    EXPECT_TRUE(r.left.wait()) << step << "T never left its section";
    d->synchronize();
    d.reset();  // destroyed while T keeps running
  }
  all_domains_gone.set();
  watchdog.rearm("T exiting after every domain it read was destroyed");
  t.join();
  EXPECT_TRUE(exiting.is_set());
  EXPECT_EQ(rounds_after_a_destroyed_domain.load(), kRounds - 1);
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
