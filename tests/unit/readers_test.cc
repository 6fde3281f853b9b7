// Every reader flavour holds up synchronize() until it ends, and only then.
#include <srcu/srcu.h>

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
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

// With per-CPU shard counters (detail/percpu.h) a shared section's unlock
// lands on the shard of the CPU it runs on, not its lock's. Sections begun
// on one CPU and ended on another must still hold up synchronize() until
// they end, then let it end, with no false "more unlocks than locks" abort
// (the scans compare the shards' sums). Runs pinned where two CPUs are
// allowed; elsewhere it still runs, unpinned. SRCU_NO_RSEQ=1 (ctest
// unit_no_rseq) runs it on the lock-prefixed fallback.
TEST(Readers, SharedSectionsEndedOnAnotherCpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  const auto pin = [&cpus](std::size_t k) {
    if (cpus.size() < 2) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[k % cpus.size()], &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
  };
  srcu::domain d;
  srcu_test::watchdog dog("synchronize() on sections ended on another CPU");
  constexpr int kSections = 1000;
  std::vector<srcu::read_token> tokens(kSections);
  std::thread down([&] {
    pin(0);
    for (srcu::read_token& t : tokens) t = d.down_read();
  });
  down.join();
  std::atomic<bool> released{false};
  std::thread up([&] {
    pin(1);
    std::this_thread::sleep_for(50ms);
    released = true;
    for (srcu::read_token t : tokens) d.up_read(t);
  });
  d.synchronize();
  EXPECT_TRUE(released.load()) << "synchronize() returned while down_read() sections were open";
  up.join();
  // A signal-safe section whose thread moves between lock and unlock, many
  // times, with grace periods in between.
  const std::uint64_t before = d.grace_periods_completed();
  for (int i = 0; i < 200; ++i) {
    std::thread mover([&] {
      pin(0);
      const srcu::read_token t = d.read_lock_signal_safe();
      pin(1);
      d.read_unlock_signal_safe(t);
    });
    mover.join();
    d.synchronize_expedited();
  }
  EXPECT_GE(d.grace_periods_completed() - before, 200u);
}

// A domain is born with one block of shared counters; its first down_read()
// has the engine add the full table (per CPU where rseq works). Sections
// begun on the small block and ended on the table (their unlocks land on
// the table's counters) must hold up synchronize() exactly as before, and
// leave the sums balanced (no false "unlock without lock").
TEST(Readers, SectionsBegunOnTheSmallTableEndOnTheFullOne) {
  srcu::domain d({.name = "growing"});
  EXPECT_EQ(d.stats().reader_shards, 1u);
  std::vector<srcu::read_token> tokens;
  tokens.push_back(d.down_read());  // on the small block; asks for the table
  if (std::thread::hardware_concurrency() > 1) {
    srcu_test::watchdog dog("the engine to add the full shard table");
    while (d.stats().reader_shards == 1) std::this_thread::sleep_for(1ms);
  }
  for (int i = 0; i < 999; ++i) tokens.push_back(d.down_read());  // on the table
  srcu_test::watchdog dog("synchronize() on sections begun before the shard table grew");
  std::atomic<bool> released{false};
  std::thread up([&] {
    std::this_thread::sleep_for(50ms);
    released = true;
    for (srcu::read_token t : tokens) d.up_read(t);
  });
  d.synchronize();
  EXPECT_TRUE(released.load()) << "synchronize() returned while down_read() sections were open";
  up.join();
  // Balanced: both indexes' grace periods end, and no misuse is reported.
  d.synchronize();
  d.synchronize_expedited();
  const srcu::read_token t = d.read_lock_signal_safe();
  d.read_unlock_signal_safe(t);
  d.synchronize();
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
  // Three reader threads, one per flavour, are never outside a section: each
  // begins its next section (holding each ~100 us) before it ends the
  // current one. synchronize() must still return, every time: it waits only
  // for readers that began before it.
  //
  // And readers really did start during each call: a thread's last section
  // counted before the call began before it, so the call waits for it to
  // end; the thread began its next section before ending that one, so the
  // count read after the call returned is higher. (A synchronize() that
  // waited for a moment with no reader inside would never return: the
  // watchdog fails the test naming the call.)
  constexpr int kReaders = 3, kCalls = 20;
  srcu::domain d({.name = "overlapping"});
  std::atomic<bool> stop{false};
  std::array<std::atomic<std::uint64_t>, kReaders> started{};
  std::array<flag, kReaders> running;
  auto lock = [&d](int flavour) {
    switch (flavour) {
      case 0: return d.read_lock();
      case 1: return d.read_lock_signal_safe();
      default: return d.down_read();
    }
  };
  auto unlock = [&d](int flavour, srcu::read_token t) {
    switch (flavour) {
      case 0: d.read_unlock(t); break;
      case 1: d.read_unlock_signal_safe(t); break;
      default: d.up_read(t); break;
    }
  };
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      srcu::read_token current = lock(r);
      started[r].fetch_add(1);
      running[r].set();
      while (!stop.load()) {
        std::this_thread::sleep_for(100us);
        const srcu::read_token next = lock(r);  // begins before `current` ends
        started[r].fetch_add(1);
        unlock(r, current);
        current = next;
      }
      unlock(r, current);
    });
  }
  srcu_test::watchdog watchdog("the reader threads to enter their first sections");
  for (auto& f : running) EXPECT_TRUE(f.wait());
  for (int i = 0; i < 2 * kCalls; ++i) {
    const bool expedited = i % 2 != 0;
    watchdog.rearm(std::string(expedited ? "synchronize_expedited()" : "synchronize()") + " call " +
                   std::to_string(i + 1) + " of " + std::to_string(2 * kCalls) +
                   " to return while readers keep starting");
    std::array<std::uint64_t, kReaders> before;
    for (int r = 0; r < kReaders; ++r) before[r] = started[r].load();
    if (expedited) d.synchronize_expedited();
    else d.synchronize();
    for (int r = 0; r < kReaders; ++r) {
      EXPECT_GT(started[r].load(), before[r])
          << "call " << i + 1 << ": reader " << r << " began no section while synchronize() waited";
    }
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GE(d.grace_periods_completed(), 2u * kCalls);
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
