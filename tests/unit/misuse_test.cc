// Misuse aborts with a message that names the domain and the misuse.
// This file is compiled with SRCU_DEBUG=1 (see tests/CMakeLists.txt), so the
// inline debug checks are active in every build type.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <thread>

static_assert(SRCU_DEBUG, "misuse_test.cc must be compiled with the debug checks");

namespace {

class Misuse : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(Misuse, SynchronizeInsideSameDomainReaderAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-sync"});
        srcu::read_guard g(d);
        d.synchronize();
      },
      "domain 'misuse-sync': synchronize\\(\\) called inside a read-side critical section");
}

TEST_F(Misuse, SynchronizeExpeditedInsideScopedLockAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-exp"});
        std::scoped_lock lk(d);
        d.synchronize_expedited();
      },
      "domain 'misuse-exp': synchronize_expedited\\(\\) called inside");
}

TEST_F(Misuse, CondSynchronizeInsideReaderAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-cond"});
        const srcu::poll_cookie c = d.get_poll_cookie();
        const srcu::read_token t = d.read_lock();
        d.cond_synchronize(c);
        d.read_unlock(t);
      },
      "domain 'misuse-cond': cond_synchronize\\(\\) called inside");
}

TEST_F(Misuse, DestroyWithActiveReaderAborts) {
  EXPECT_DEATH(
      {
        auto* d = new srcu::domain({.name = "misuse-dtor"});
        (void)d->read_lock_signal_safe();
        delete d;
      },
      "domain 'misuse-dtor': destroyed while 1 reader\\(s\\) are still inside");
}

TEST_F(Misuse, UnlockWithTokenOfAnotherDomainAborts) {
  EXPECT_DEATH(
      {
        srcu::domain a({.name = "misuse-a"});
        srcu::domain b({.name = "misuse-b"});
        const srcu::read_token t = a.read_lock();
        b.read_unlock(t);
      },
      "domain 'misuse-b': read_unlock\\(\\) given a token of another domain \\('misuse-a'\\)");
}

TEST_F(Misuse, UnlockWithTokenOfAnotherFlavourAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-flavour"});
        const srcu::read_token t = d.down_read();
        d.read_unlock(t);
      },
      "domain 'misuse-flavour': read_unlock\\(\\) given a token from down_read\\(\\); use up_read");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-flavour2"});
        const srcu::read_token t = d.read_lock();
        d.read_unlock_signal_safe(t);
      },
      "read_unlock_signal_safe\\(\\) given a token from read_lock\\(\\)");
}

TEST_F(Misuse, UnlockWithoutLockAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-nolock"});
        d.read_unlock(srcu::read_token{});
      },
      "domain 'misuse-nolock': read_unlock\\(\\) without a matching lock");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-twice"});
        const srcu::read_token t = d.read_lock();
        d.read_unlock(t);
        d.read_unlock(t);
      },
      "domain 'misuse-twice': read_unlock\\(\\) without a matching lock");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-unlock"});
        d.unlock();
      },
      "domain 'misuse-unlock': unlock\\(\\) without a matching lock\\(\\)");
}

TEST_F(Misuse, ReadUnlockOnAnotherThreadAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-thread"});
        const srcu::read_token t = d.read_lock();
        std::thread([&] { d.read_unlock(t); }).join();
      },
      "domain 'misuse-thread': read_unlock\\(\\) on another thread than its read_lock\\(\\)");
}

TEST_F(Misuse, ThreadExitInsideReaderAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "misuse-exit"});
        std::thread([&] { (void)d.read_lock(); }).join();
      },
      "domain 'misuse-exit': a thread exited inside a read-side critical section");
}

}  // namespace
