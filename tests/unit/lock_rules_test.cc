// The library mutex's run-time check (src/mutex.h): where the compile-time
// analysis cannot follow a lock (fork handlers, callbacks), assert_held()
// aborts with a message in debug builds (SRCU_DEBUG; skipped in release,
// where the check is compiled out).
#include <gtest/gtest.h>

#include <thread>

#include "mutex.h"

namespace {

#define SKIP_UNLESS_DEBUG() \
  if (!SRCU_DEBUG) GTEST_SKIP() << "assert_held() checks only in debug builds (SRCU_DEBUG)"

using srcu::detail::mutex;
using srcu::detail::mutex_lock;

TEST(LockRules, AssertHeldPassesWhileThisThreadHoldsIt) {
  mutex m;
  mutex_lock lk(m);
  m.assert_held();
  lk.unlock();
  lk.lock();
  m.assert_held();
}

TEST(LockRulesDeathTest, AssertHeldAbortsWhenNotHeld) {
  SKIP_UNLESS_DEBUG();
  EXPECT_DEATH(
      {
        mutex m;
        m.assert_held();
      },
      "srcu: internal error: the mutex at address [0-9]+ is not held by this thread");
}

TEST(LockRulesDeathTest, AssertHeldAbortsWhenAnotherThreadHoldsIt) {
  SKIP_UNLESS_DEBUG();
  EXPECT_DEATH(
      {
        mutex m;
        std::thread holder([&m] { m.lock(); });  // exits holding it
        holder.join();
        m.assert_held();
      },
      "is not held by this thread");
}

TEST(LockRulesDeathTest, AssertHeldAbortsAfterUnlockInScope) {
  SKIP_UNLESS_DEBUG();
  EXPECT_DEATH(
      {
        mutex m;
        mutex_lock lk(m);
        lk.unlock();
        m.assert_held();
      },
      "is not held by this thread");
}

}  // namespace
