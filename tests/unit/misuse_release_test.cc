// The always-on checks, compiled without the debug checks: an unlock without
// lock that slips past (release build) is caught by the next grace period.
#include <srcu/srcu.h>

#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "test_support.h"

static_assert(!SRCU_DEBUG, "misuse_release_test.cc checks the release-build behaviour");

namespace {

TEST(MisuseRelease, DoubleUnlockIsCaughtByTheNextGracePeriod) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "release-twice"});
        const srcu::read_token t = d.read_lock_signal_safe();
        d.read_unlock_signal_safe(t);
        d.read_unlock_signal_safe(t);
        d.synchronize();
      },
      "domain 'release-twice': 1 more unlock\\(s\\) than locks on index 0 in the "
      "signal-safe/down_read counters");
}

TEST(MisuseRelease, SynchronizeInsideReaderIsCheckedInReleaseToo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "release-sync"});
        srcu::read_guard g(d);
        d.synchronize();
      },
      "domain 'release-sync': synchronize\\(\\) called inside a read-side critical section");
}

TEST(MisuseRelease, OneUnlockTooManyOnTheLockableViewAborts) {
  // Regression (issue 9, case 9a):
  //  1. lock(); unlock(); unlock() -- one unlock() too many (release build).
  //  2. lock_depth wrapped to 2^32-1, so every later lock() on the thread
  //     took no reader at all and synchronize() returned while it was
  //     inside. The depth check is always on now.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "release-lockable"});
        d.lock();
        d.unlock();
        d.unlock();
      },
      "domain 'release-lockable': unlock\\(\\) without a matching lock\\(\\)");
}

TEST(MisuseRelease, DoubleReadUnlockCannotHideAnotherThreadsReader) {
  // Regression (issue 9, case 9b):
  //  1. Thread T2 is inside a reader of D.
  //  2. Thread T1 calls read_unlock() twice for one read_lock() (release
  //     build: not checked inline).
  //  3. The sums over all slots balanced (T1's extra unlock cancelled T2's
  //     lock), so synchronize() returned with T2 still inside; the abort
  //     came a grace period later. The scan now checks each slot on its
  //     own, before the grace period can end.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "release-hidden"});
        srcu_test::held_reader t2(d);
        srcu_test::flag unlocked_twice;
        srcu_test::flag finish;
        std::thread t1([&] {
          const srcu::read_token t = d.read_lock();
          d.read_unlock(t);
          d.read_unlock(t);
          unlocked_twice.set();
          (void)finish.wait();
        });
        (void)unlocked_twice.wait();
        d.synchronize();  // must not return: T2 is inside
        std::fprintf(stderr, "synchronize() returned with a reader inside\n");
        finish.set();
        t1.join();
      },
      "domain 'release-hidden': 1 more unlock\\(s\\) than locks on index 0 by thread [0-9]+ "
      "\\('[^']*'\\): read_unlock\\(\\) or unlock\\(\\) called twice");
}

TEST(MisuseRelease, DoubleUnlockThenSynchronizeOnTheSameThreadSaysSo) {
  // Regression (issue 9, case 9c): a double unlock followed by
  // synchronize() on the same thread was reported as "inside a read-side
  // critical section" -- the wrong diagnosis.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "release-same"});
        const srcu::read_token t = d.read_lock();
        d.read_unlock(t);
        d.read_unlock(t);
        d.synchronize();
      },
      "domain 'release-same': synchronize\\(\\) called on a thread that has unlocked more "
      "read-side critical sections than it locked");
}

}  // namespace
