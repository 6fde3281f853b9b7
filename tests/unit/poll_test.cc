// Polled grace periods: cookies, start_poll, poll, cond_synchronize.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <thread>

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

TEST(Poll, GracePeriodCountIsMonotonic) {
  srcu::domain d;
  std::atomic<bool> stop{false};
  std::thread updater([&] {
    while (!stop) d.synchronize_expedited();
  });
  std::uint64_t last = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::uint64_t now = d.grace_periods_completed();
    ASSERT_GE(now, last);
    last = now;
  }
  stop = true;
  updater.join();
}

}  // namespace
