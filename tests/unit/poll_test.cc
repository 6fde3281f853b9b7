// Polled grace periods: cookies, start_poll, poll, cond_synchronize.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;

bool wait_poll(srcu::domain& d, srcu::poll_cookie c, std::chrono::seconds limit = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!d.poll(c)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

TEST(Poll, FalseBeforeAGracePeriodTrueAfter) {
  srcu::domain d;
  const srcu::poll_cookie c = d.get_poll_cookie();
  EXPECT_FALSE(d.poll(c));
  std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(d.poll(c)) << "get_poll_cookie() must not start a grace period";
  d.synchronize();
  EXPECT_TRUE(d.poll(c));
}

TEST(Poll, CookiesWithoutGracePeriodInBetweenAreEqual) {
  srcu::domain d;
  EXPECT_EQ(d.get_poll_cookie(), d.get_poll_cookie());
  const srcu::poll_cookie a = d.get_poll_cookie();
  d.synchronize();
  EXPECT_NE(a, d.get_poll_cookie());
  EXPECT_TRUE(d.poll(srcu::poll_cookie{}));  // a default cookie is done
}

TEST(Poll, StartPollCompletesWithNobodyWaiting) {
  srcu::domain d;
  const srcu::poll_cookie c = d.start_poll();
  EXPECT_TRUE(wait_poll(d, c)) << "the engine never completed the requested grace period";
  EXPECT_EQ(d.grace_periods_completed(), 1u);
}

TEST(Poll, StartPollWaitsForPreexistingReader) {
  srcu::domain d;
  srcu_test::held_reader reader(d);
  const srcu::poll_cookie c = d.start_poll();
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(d.poll(c));
  reader.release();
  EXPECT_TRUE(wait_poll(d, c));
}

TEST(Poll, CondSynchronizeSkipsWhenDoneAndWaitsOtherwise) {
  srcu::domain d;
  const srcu::poll_cookie c = d.get_poll_cookie();
  d.synchronize();
  const std::uint64_t gps = d.grace_periods_completed();
  d.cond_synchronize(c);  // already elapsed: no new grace period
  EXPECT_EQ(d.grace_periods_completed(), gps);

  const srcu::poll_cookie fresh = d.get_poll_cookie();
  EXPECT_FALSE(d.poll(fresh));
  d.cond_synchronize(fresh);
  EXPECT_TRUE(d.poll(fresh));
  EXPECT_EQ(d.grace_periods_completed(), gps + 1);
}

TEST(Poll, ManyStartPollsOnManyDomainsAllComplete) {
  std::vector<std::unique_ptr<srcu::domain>> domains;
  std::vector<srcu::poll_cookie> cookies;
  for (int i = 0; i < 200; ++i) {
    domains.push_back(std::make_unique<srcu::domain>());
    cookies.push_back(domains.back()->start_poll());
  }
  for (int i = 0; i < 200; ++i) EXPECT_TRUE(wait_poll(*domains[i], cookies[i]));
}

// Records the first of any number of violations seen by a test's threads.
class violations {
 public:
  void add(std::string what) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (count_++ == 0) first_ = std::move(what);
  }
  int count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_;
  }
  std::string first() {
    std::lock_guard<std::mutex> lock(mutex_);
    return first_;
  }

 private:
  std::mutex mutex_;
  int count_ = 0;
  std::string first_;
};

TEST(Poll, GracePeriodCountIsMonotonic) {
  // While updaters drive grace periods every way there is (synchronize(),
  // synchronize_expedited(), start_poll() left to the engine), samplers
  // check that grace_periods_completed() never goes back, and that poll()
  // agrees with it:
  //  - a cookie's grace period begins after the cookie was taken, so once
  //    poll(cookie) holds, the count exceeds what it was before the cookie;
  //  - a cookie waits for at most the grace period in progress and the next
  //    one, so once the count is 2 past what it was after the cookie was
  //    taken, poll(cookie) holds.
  // Each synchronize() advances the count by at least one.
  constexpr int kCallsPerUpdater = 1000;
  srcu::domain d({.name = "monotonic"});
  violations bad;
  std::atomic<int> updaters_running{3};
  std::vector<std::thread> threads;
  srcu_test::watchdog watchdog("updaters and samplers of GracePeriodCountIsMonotonic");

  for (int u = 0; u < 3; ++u) {
    threads.emplace_back([&, u] {
      for (int i = 0; i < kCallsPerUpdater; ++i) {
        const std::uint64_t before = d.grace_periods_completed();
        const srcu::poll_cookie c = u == 2 ? d.start_poll() : d.get_poll_cookie();
        if (u == 0) d.synchronize();
        else if (u == 1) d.synchronize_expedited();
        else while (!d.poll(c)) std::this_thread::sleep_for(50us);
        const std::uint64_t after = d.grace_periods_completed();
        if (after < before + 1) {
          bad.add("updater " + std::to_string(u) + ": count went from " + std::to_string(before) +
                  " to " + std::to_string(after) + " across a grace period");
        }
        if (!d.poll(c)) {
          bad.add("updater " + std::to_string(u) + ": poll(cookie) false after its grace period");
        }
      }
      updaters_running.fetch_sub(1);
    });
  }

  std::atomic<long> samples{0};
  for (int s = 0; s < 2; ++s) {
    threads.emplace_back([&, s] {
      const std::string who = "sampler " + std::to_string(s) + ": ";
      std::uint64_t last = d.grace_periods_completed();
      auto sample = [&] {
        const std::uint64_t now = d.grace_periods_completed();
        if (now < last) {
          bad.add(who + "count went back from " + std::to_string(last) + " to " +
                  std::to_string(now));
        }
        last = now;
        return now;
      };
      // The previous cookie and the counts just before and after taking it.
      srcu::poll_cookie prev = d.get_poll_cookie();
      std::uint64_t prev_before = last, prev_after = sample();
      while (updaters_running.load() > 0) {
        const std::uint64_t before = sample();
        const srcu::poll_cookie c = d.get_poll_cookie();
        const std::uint64_t after = sample();
        // Check the previous cookie against counts read after it was taken.
        const std::uint64_t now = sample();
        const bool done = d.poll(prev);
        if (now >= prev_after + 2 && !done) {
          bad.add(who + "count " + std::to_string(now) + " is 2 past " + std::to_string(prev_after) +
                  " but poll(cookie " + std::to_string(prev.value()) + ") is false");
        }
        if (done && sample() < prev_before + 1) {
          bad.add(who + "poll(cookie " + std::to_string(prev.value()) + ") is true but the count " +
                  std::to_string(last) + " has not passed " + std::to_string(prev_before));
        }
        prev = c;
        prev_before = before;
        prev_after = after;
        samples.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(bad.count(), 0) << "first violation: " << bad.first();
  EXPECT_GE(d.grace_periods_completed(), static_cast<std::uint64_t>(kCallsPerUpdater));
  EXPECT_GT(samples.load(), 0);
  const std::uint64_t quiet = d.grace_periods_completed();
  const srcu::poll_cookie c = d.get_poll_cookie();
  d.synchronize();
  EXPECT_GE(d.grace_periods_completed(), quiet + 1);
  EXPECT_TRUE(d.poll(c));
}

}  // namespace
