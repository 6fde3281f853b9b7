// Every reader flavour holds up synchronize() until it ends, and only then.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;

// Runs `reader` (which must call `entered.set()` once inside its section and
// leave the section 50 ms later), then synchronize() on `d`; checks that
// synchronize() returned only after the section ended.
template <class Reader>
void expect_synchronize_waits(srcu::domain& d, Reader reader, bool expedited = false) {
  flag entered;
  std::atomic<bool> section_over{false};
  std::thread t([&] { reader(entered, section_over); });
  ASSERT_TRUE(entered.wait());
  if (expedited) d.synchronize_expedited();
  else d.synchronize();
  EXPECT_TRUE(section_over.load()) << "synchronize() returned while a pre-existing reader was inside";
  t.join();
}

TEST(Readers, SynchronizeWaitsForPreexistingReadLock) {
  srcu::domain d({.name = "readers"});
  expect_synchronize_waits(d, [&](flag& entered, std::atomic<bool>& over) {
    const srcu::read_token tok = d.read_lock();
    entered.set();
    std::this_thread::sleep_for(50ms);
    over = true;
    d.read_unlock(tok);
  });
}

TEST(Readers, SynchronizeExpeditedWaitsForPreexistingReadLock) {
  srcu::domain d;
  expect_synchronize_waits(
      d,
      [&](flag& entered, std::atomic<bool>& over) {
        const srcu::read_token tok = d.read_lock();
        entered.set();
        std::this_thread::sleep_for(50ms);
        over = true;
        d.read_unlock(tok);
      },
      /*expedited=*/true);
}

TEST(Readers, SynchronizeWaitsForSignalSafeReader) {
  srcu::domain d;
  expect_synchronize_waits(d, [&](flag& entered, std::atomic<bool>& over) {
    const srcu::read_token tok = d.read_lock_signal_safe();
    entered.set();
    std::this_thread::sleep_for(50ms);
    over = true;
    d.read_unlock_signal_safe(tok);
  });
}

TEST(Readers, SynchronizeWaitsForDownReadReleasedOnAnotherThread) {
  srcu::domain d;
  for (bool expedited : {false, true}) {
    flag taken;
    srcu::read_token tok;
    std::atomic<bool> released{false};
    std::thread down([&] {
      tok = d.down_read();
      taken.set();
    });
    down.join();  // the thread that took the section is gone
    ASSERT_TRUE(taken.is_set());
    std::thread up([&] {
      std::this_thread::sleep_for(50ms);
      released = true;
      d.up_read(tok);
    });
    if (expedited) d.synchronize_expedited();
    else d.synchronize();
    EXPECT_TRUE(released.load());
    up.join();
  }
}

TEST(Readers, SynchronizeWaitsForScopedLock) {
  srcu::domain d;
  expect_synchronize_waits(d, [&](flag& entered, std::atomic<bool>& over) {
    std::scoped_lock lock(d);
    entered.set();
    std::this_thread::sleep_for(50ms);
    over = true;
  });
}

TEST(Readers, SynchronizeWaitsForReadGuard) {
  srcu::domain d;
  expect_synchronize_waits(d, [&](flag& entered, std::atomic<bool>& over) {
    srcu::read_guard g(d);
    entered.set();
    std::this_thread::sleep_for(50ms);
    over = true;
  });
}

TEST(Readers, ReadersStartingDuringSynchronizeDoNotHoldItUp) {
  // Readers that begin after synchronize() started, back to back on several
  // threads (and always at least one inside), must not keep it waiting.
  srcu::domain d;
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&, i] {
      while (!stop.load(std::memory_order_relaxed)) {
        const srcu::read_token outer = d.read_lock();
        const srcu::read_token inner = i % 2 ? d.read_lock_signal_safe() : d.down_read();
        std::this_thread::sleep_for(100us);
        if (i % 2) d.read_unlock_signal_safe(inner);
        else d.up_read(inner);
        d.read_unlock(outer);
      }
    });
  }
  std::this_thread::sleep_for(5ms);
  for (int i = 0; i < 20; ++i) {
    d.synchronize();
    d.synchronize_expedited();
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GE(d.grace_periods_completed(), 40u);
}

TEST(Readers, NestThousandDeepInEveryFlavour) {
  srcu::domain d;
  std::vector<srcu::read_token> tokens;
  for (int i = 0; i < 1000; ++i) {
    switch (i % 3) {
      case 0: tokens.push_back(d.read_lock()); break;
      case 1: tokens.push_back(d.read_lock_signal_safe()); break;
      default: tokens.push_back(d.down_read()); break;
    }
    if (i == 500) {
      // A grace period in the middle of the nest must wait for all of it.
      std::atomic<bool> done{false};
      std::thread t([&] {
        d.synchronize();
        done = true;
      });
      std::this_thread::sleep_for(20ms);
      EXPECT_FALSE(done.load());
      for (int j = i; j >= 0; --j) {
        switch (j % 3) {
          case 0: d.read_unlock(tokens[j]); break;
          case 1: d.read_unlock_signal_safe(tokens[j]); break;
          default: d.up_read(tokens[j]); break;
        }
      }
      tokens.clear();
      t.join();
      EXPECT_TRUE(done.load());
    }
  }
  for (int j = static_cast<int>(tokens.size()) - 1; j >= 0; --j) {
    switch ((j + 501) % 3) {
      case 0: d.read_unlock(tokens[j]); break;
      case 1: d.read_unlock_signal_safe(tokens[j]); break;
      default: d.up_read(tokens[j]); break;
    }
  }
  d.synchronize();
}

TEST(Readers, LockNestsWithoutLimitAndIsLockable) {
  srcu::domain d;
  for (int i = 0; i < 1000; ++i) d.lock();
  EXPECT_TRUE(d.try_lock());
  std::atomic<bool> done{false};
  std::thread t([&] {
    d.synchronize();
    done = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(done.load());
  for (int i = 0; i < 1001; ++i) d.unlock();
  t.join();
  EXPECT_TRUE(done.load());
  {
    std::unique_lock<srcu::domain> lk(d);  // Lockable: unique_lock works too
    EXPECT_TRUE(lk.owns_lock());
  }
}

TEST(Readers, SignalSafeReaderOnThreadThatNeverUsedTheDomain) {
  srcu::domain d;
  std::thread t([&] {
    const srcu::read_token tok = d.read_lock_signal_safe();
    d.read_unlock_signal_safe(tok);
  });
  t.join();
  d.synchronize();
  EXPECT_EQ(d.reader_slots(), 0u) << "the signal-safe flavour must not take a per-thread slot";
}

TEST(Readers, TokensAreTriviallyCopyable) {
  static_assert(std::is_trivially_copyable_v<srcu::read_token>);
  static_assert(std::is_trivially_copyable_v<srcu::poll_cookie>);
  srcu::domain d;
  const srcu::read_token a = d.read_lock();
  const srcu::read_token b = a;
  EXPECT_EQ(a, b);
  d.read_unlock(b);
}

}  // namespace
