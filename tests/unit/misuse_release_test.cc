// The always-on checks, compiled without the debug checks: an unlock without
// lock that slips past (release build) is caught by the next grace period.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

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

}  // namespace
