// A domain is born without its compiled side (src/domain.cc): the state is
// made on first use, by the using thread where it may allocate (read_lock(),
// the updaters) and by the engine where it may not (call(), start_poll(), a
// first signal-safe or down/up section: they leave a bit in the domain's
// kick node and kick). These tests use a fresh domain the way a stranger
// would, and hold the engine inside the making to check that nothing asked
// meanwhile is lost.
#include <pthread.h>
#include <signal.h>

#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "readers.h"  // test seam: g_test_probe ("state: making")
#include "test_support.h"

namespace {

using namespace std::chrono_literals;

std::atomic<int> g_ran{0};
void count_run(srcu::callback_head*) { g_ran.fetch_add(1); }

// The first grace period a fresh domain's start_poll() asked for ends, with
// no other call on the domain to help it along.
TEST(Unborn, StartPollOnAFreshDomainEndsAGracePeriod) {
  srcu::domain d({.name = "unborn-poll"});
  EXPECT_EQ(d.grace_periods_completed(), 0u);
  const srcu::poll_cookie before = d.get_poll_cookie();
  EXPECT_FALSE(d.poll(before)) << "a grace period ran on a fresh domain no one asked for one";
  const srcu::poll_cookie c = d.start_poll();  // may end at once: the engine is quick
  {
    srcu_test::watchdog dog("the grace period a fresh domain's start_poll() asked for");
    while (!d.poll(c)) std::this_thread::sleep_for(100us);
  }
  EXPECT_TRUE(d.poll(before));
  EXPECT_GE(d.grace_periods_completed(), 1u);
}

// A cookie taken before the state exists is kept by synchronize(), which
// makes the state itself.
TEST(Unborn, ACookieTakenBeforeTheStateIsKeptBySynchronize) {
  srcu::domain d({.name = "unborn-cookie"});
  const srcu::poll_cookie c = d.get_poll_cookie();
  d.synchronize();
  EXPECT_TRUE(d.poll(c));
  EXPECT_EQ(d.grace_periods_completed(), 1u);
}

// call() from a signal handler is a fresh domain's first use: the engine
// makes the state and the callback runs; barrier() waits for it.
srcu::domain* g_signal_domain = nullptr;
srcu::callback_head g_signal_head;
void call_from_handler(int) { g_signal_domain->call(&g_signal_head, &count_run); }

TEST(Unborn, CallFromASignalHandlerOnAFreshDomainRuns) {
  g_ran.store(0);
  g_signal_head = srcu::callback_head{};
  srcu::domain d({.name = "unborn-signal"});
  g_signal_domain = &d;
  struct sigaction sa {};
  sa.sa_handler = &call_from_handler;
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR1), 0);
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(d.stats().callbacks_queued, 1u);
  d.barrier();
  EXPECT_EQ(g_ran.load(), 1);
  EXPECT_EQ(d.stats().callbacks_invoked, 1u);
}

// A fresh domain's first call(), then `end` (~domain() or barrier())
// right after it, whether or not the engine had made the state yet (both
// happen over the tries): the callback has run when `end` returns.
template <class End>
void first_call_then(const char* what, End end) {
  constexpr int kTries = 300;
  std::vector<srcu::callback_head> heads(kTries);
  g_ran.store(0);
  srcu_test::watchdog dog(what);
  for (int i = 0; i < kTries; ++i) {
    auto d = std::make_unique<srcu::domain>();
    d->call(&heads[i], &count_run);
    if (i % 3 == 1) std::this_thread::yield();  // labelled window: the engine may take the kick
    end(d);
    ASSERT_EQ(g_ran.load(), i + 1) << what << ", try " << i << ": the first callback was lost or not yet run";
  }
}

TEST(Unborn, DestroyingAFreshDomainRightAfterItsFirstCallRunsTheCallback) {
  first_call_then("~domain() of a fresh domain right after its first call()",
                  [](std::unique_ptr<srcu::domain>& d) { d.reset(); });
}

// barrier() on a domain never used has nothing to wait for and makes no
// state for it (as ~domain() makes none): a program that calls barrier()
// before destroying each of many idle domains pays no state for them.
std::atomic<int> g_makings{0};
void count_makings(const char* point) {
  if (std::strcmp(point, "state: making") == 0) g_makings.fetch_add(1);
}

TEST(Unborn, BarrierOnANeverUsedDomainMakesNoState) {
  srcu::domain d({.name = "unborn-barrier"});
  g_makings.store(0);
  srcu::detail::g_test_probe.store(&count_makings);
  {
    srcu_test::watchdog dog("barrier() on a domain never used");
    d.barrier();
    d.barrier();
  }
  srcu::detail::g_test_probe.store(nullptr);
  EXPECT_EQ(g_makings.load(), 0) << "barrier() made the state of a domain never used";
  EXPECT_EQ(d.stats().callbacks_queued, 0u);
}

// barrier() right after a fresh domain's first call(), with no state yet
// or with the engine making it (both happen over the tries): it waits for
// that callback, the kick in flight making the state.
TEST(Unborn, BarrierRightAfterAFreshDomainsFirstCallWaitsForIt) {
  first_call_then("barrier() of a fresh domain right after its first call()",
                  [](std::unique_ptr<srcu::domain>& d) { d->barrier(); });
}

// Signal-safe and down/up sections on a fresh domain, each thread's first:
// synchronize() waits for one still inside, and the full table comes.
TEST(Unborn, SharedSectionsOnAFreshDomainAreWaitedFor) {
  srcu::domain d({.name = "unborn-shared"});
  const srcu::read_token t = d.down_read();
  std::atomic<bool> done{false};
  std::thread updater([&] {
    d.synchronize();
    done.store(true);
  });
  std::this_thread::sleep_for(20ms);  // not a timing assertion: a chance to end too early
  EXPECT_FALSE(done.load()) << "synchronize() returned with a down_read() section inside";
  d.up_read(t);
  {
    srcu_test::watchdog dog("synchronize() after the fresh domain's down_read() section ended");
    updater.join();
  }
  EXPECT_TRUE(done.load());
  d.read_unlock_signal_safe(d.read_lock_signal_safe());
  if (std::thread::hardware_concurrency() > 1) {
    srcu_test::watchdog dog("the engine to add the full shard table after the first shared section");
    while (d.stats().reader_shards == 1) std::this_thread::sleep_for(1ms);
  }
}

// The engine held inside the making of a fresh domain's state (the seam):
// meanwhile another call(), a start_poll() and a shared section still find
// no state and ask again, and a synchronize() on another thread makes the
// state first, so the engine's own copy is thrown away. None of it is lost.
std::atomic<bool> g_hold{false};
std::atomic<bool> g_held{false};
std::atomic<bool> g_release{false};

void hold_first_making(const char* point) {
  if (std::strcmp(point, "state: making") != 0 || !g_hold.exchange(false)) return;
  g_held.store(true);
  while (!g_release.load()) std::this_thread::sleep_for(100us);
}

TEST(Unborn, NothingAskedWhileTheEngineMakesTheStateIsLost) {
  g_ran.store(0);
  srcu::domain d({.name = "unborn-held"});
  g_hold.store(true);
  g_held.store(false);
  g_release.store(false);
  srcu::detail::g_test_probe.store(&hold_first_making);
  srcu::callback_head first, second;
  d.call(&first, &count_run);  // the engine takes the kick and is held
  {
    srcu_test::watchdog dog("the engine to reach the making of the fresh domain's state");
    while (!g_held.load()) std::this_thread::sleep_for(100us);
  }
  d.call(&second, &count_run);
  const srcu::poll_cookie c = d.start_poll();
  d.read_unlock_signal_safe(d.read_lock_signal_safe());
  EXPECT_EQ(d.stats().callbacks_queued, 2u);
  std::thread updater([&] { d.synchronize(); });  // makes the state on this thread
  {
    srcu_test::watchdog dog("synchronize() on a fresh domain while the engine makes its state");
    updater.join();
  }
  g_release.store(true);
  srcu::detail::g_test_probe.store(nullptr);
  {
    srcu_test::watchdog dog("the grace period a start_poll() asked for while the state was made");
    while (!d.poll(c)) std::this_thread::sleep_for(100us);
  }
  {
    srcu_test::watchdog dog("barrier() for the two callbacks queued before the state was made");
    d.barrier();
  }
  EXPECT_EQ(g_ran.load(), 2);
}

// Many fresh domains at once, each first used by call() from its own
// thread and destroyed by another while the engine makes states.
TEST(Unborn, ManyFreshDomainsFirstUsedByCallFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kDomains = 200;
  g_ran.store(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < kDomains; ++i) {
        srcu::callback_head h;  // outlives d, whose destructor runs the callback
        srcu::domain d;
        d.call(&h, &count_run);
        if (i % 2 == 0) (void)d.start_poll();
        if (i % 5 == 0) d.read_unlock_signal_safe(d.read_lock_signal_safe());
      }
    });
  }
  srcu_test::watchdog dog("threads that create, call() on and destroy fresh domains");
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(g_ran.load(), kThreads * kDomains);
}

}  // namespace
