// fork() without exec(): the child keeps using every domain.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "readers.h"  // test seams: g_full_table_probe, forget_full_table_layout()
#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;

// Runs `child` in a forked child with a 30 s alarm (a hang fails the test
// instead of hanging it); returns the child's exit status.
// ThreadSanitizer's runtime cannot follow threads created in the child of a
// multi-threaded process ("dup thread with used id"); these tests run in the
// release and ASan/UBSan builds.
#define SKIP_UNDER_TSAN()                                                          \
  if (SRCU_TSAN) GTEST_SKIP() << "TSan cannot follow threads created after a "    \
                                 "multi-threaded fork; covered by release and ASan"

// Waits until the engine thread has run (it drives start_poll()). The GCC 12
// ASan runtime takes no allocator lock around fork(): a thread still inside
// its start-up calloc() at the fork leaves that lock held in the child, and
// every thread the child starts then blocks on it (glibc's malloc is
// fork-safe, so plain builds do not need this).
void let_engine_start(srcu::domain& d) {
  const srcu::poll_cookie c = d.start_poll();
  while (!d.poll(c)) std::this_thread::sleep_for(100us);
}

template <class F>
int run_in_child(F child) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    _exit(child());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

int exercise(srcu::domain& d) {
  const srcu::read_token t = d.read_lock();
  d.read_unlock(t);
  const srcu::read_token s = d.read_lock_signal_safe();
  d.read_unlock_signal_safe(s);
  d.synchronize();
  d.synchronize_expedited();
  const srcu::poll_cookie c = d.start_poll();
  while (!d.poll(c)) std::this_thread::sleep_for(100us);
  std::thread other([&] {
    srcu::read_guard g(d);
  });
  other.join();
  d.synchronize();
  return 0;
}

TEST(Fork, ChildIgnoresReadersOfVanishedThreads) {
  SKIP_UNDER_TSAN();
  srcu::domain a({.name = "fork-a"}), b({.name = "fork-b"});
  let_engine_start(a);
  flag inside, release;
  // Readers of every flavour, held by other threads across the fork.
  std::thread holder([&] {
    const srcu::read_token t1 = a.read_lock();
    const srcu::read_token t2 = a.read_lock_signal_safe();
    const srcu::read_token t3 = b.down_read();
    inside.set();
    ASSERT_TRUE(release.wait());
    b.up_read(t3);
    a.read_unlock_signal_safe(t2);
    a.read_unlock(t1);
  });
  ASSERT_TRUE(inside.wait());
  srcu_test::let_shards_grow(a);  // no library thread allocating at the fork (GCC 12 ASan)
  srcu_test::let_shards_grow(b);
  const int status = run_in_child([&] { return exercise(a) + exercise(b); });
  EXPECT_EQ(status, 0);
  release.set();
  holder.join();
  a.synchronize();  // the parent is unaffected
  b.synchronize();
}

TEST(Fork, ChildWhileAnotherThreadWaitsInSynchronize) {
  SKIP_UNDER_TSAN();
  srcu::domain d({.name = "fork-sync"});
  let_engine_start(d);
  srcu_test::held_reader reader(d);
  flag updating;  // a thread still starting at the fork hangs a GCC 12 ASan child
  std::thread updater([&] {
    updating.set();
    d.synchronize();  // drives, blocked on the reader
  });
  if (!updating.wait()) {
    reader.release();
    updater.join();
    FAIL() << "the updater thread did not start within 60 s";
  }
  std::this_thread::sleep_for(20ms);
  const srcu::poll_cookie pending = d.start_poll();
  const int status = run_in_child([&] {
    if (exercise(d) != 0) return 1;
    return d.poll(pending) ? 0 : 2;
  });
  EXPECT_EQ(status, 0);
  reader.release();
  updater.join();
}

TEST(Fork, ForkingThreadKeepsItsOwnReader) {
  SKIP_UNDER_TSAN();
  srcu::domain d;
  let_engine_start(d);
  const srcu::read_token t = d.read_lock();
  const int status = run_in_child([&] {
    std::atomic<bool> done{false};
    std::thread updater([&] {
      d.synchronize();
      done = true;
    });
    std::this_thread::sleep_for(30ms);
    const bool waited = !done.load();  // the forking thread's reader still counts
    d.read_unlock(t);
    updater.join();
    return waited && done.load() ? 0 : 1;
  });
  EXPECT_EQ(status, 0);
  d.read_unlock(t);
}

// A fork child restarts the library threads; forking again at once copies
// them while they are starting. Under the GCC 12 ASan runtime a thread in its
// start-up allocations left the allocator lock held in the grandchild, whose
// own new threads then hung (11 of 100 tries before the services waited for
// starting threads in prepare_fork; CI failed on it in CallbackFork). Plain
// builds pass either way: glibc's malloc is fork-safe.
TEST(Fork, ForkWhileLibraryThreadsStartLeavesTheChildWorking) {
  SKIP_UNDER_TSAN();
  srcu::domain d({.name = "fork-young"});
  let_engine_start(d);
  constexpr int kTries = 40;
  for (int i = 0; i < kTries; ++i) {
    const int status = run_in_child([&] {
      // Here the engine and a callback worker are being started anew.
      const pid_t grandchild = fork();
      if (grandchild == 0) {
        alarm(10);  // a hang fails this try with SIGALRM (142 below)
        static std::atomic<int> ran{0};
        static srcu::callback_head h;
        d.call(&h, [](srcu::callback_head*) { ran.fetch_add(1); });
        d.barrier();
        d.synchronize();
        _exit(ran.load() == 1 ? 0 : 1);
      }
      int st = 0;
      waitpid(grandchild, &st, 0);
      if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
      return WEXITSTATUS(st);
    });
    ASSERT_EQ(status, 0) << "try " << i << ": the grandchild forked while its parent's library "
                         << "threads were starting " << (status == 128 + SIGALRM ? "hung" : "failed");
  }
}

// The engine computes the full shard table's layout on its first
// grow_shards(). A fork() on another thread meanwhile must leave the child
// able to compute it. It was a function-local static: its guard stayed "in
// progress" in the child, whose engine then blocked on it for good, and
// barrier() never returned (the tutorial's fork snippet, 1 run in ~1,000
// under load). The seam holds the engine inside the computation until the
// fork is done.

// The library's test seam (g_test_probe): the first thread to reach the
// point named `point` stays there until fork() has returned in the parent
// (the child's threads pass: the child sets g_forked first thing).
std::atomic<bool> g_held{false};
std::atomic<bool> g_forked{false};
std::atomic<const char*> g_hold_point{nullptr};

void hold_until_forked(const char* point) {
  const char* const at = g_hold_point.load();
  if (at == nullptr || std::strcmp(point, at) != 0 || g_forked.load()) return;
  g_held.store(true);
  while (!g_forked.load()) std::this_thread::sleep_for(100us);
}

// Installs the seam for `point`; wait_until_held() then waits (with a
// watchdog naming `what`) for a thread to be held there.
void hold_at(const char* point) {
  g_held.store(false);
  g_forked.store(false);
  g_hold_point.store(point);
  srcu::detail::g_test_probe.store(&hold_until_forked);
}
void wait_until_held(const char* what) {
  srcu_test::watchdog dog(what);
  while (!g_held.load()) std::this_thread::sleep_for(100us);
}

TEST(Fork, ForkWhileTheEngineComputesTheShardLayout) {
  SKIP_UNDER_TSAN();
  srcu::detail::forget_full_table_layout();
  hold_at("full_table: computing the layout");
  srcu::domain d({.name = "fork-layout"});
  let_engine_start(d);
  static std::atomic<int> ran{0};
  static srcu::callback_head before, after;
  d.call(&before, [](srcu::callback_head*) { ran.fetch_add(1); });  // asks for the full table
  wait_until_held("the engine to begin computing the full shard table's layout");
  const int status = run_in_child([&] {
    g_forked.store(true);  // the child's engine computes the layout at once
    const int seen = ran.load();
    d.call(&after, [](srcu::callback_head*) { ran.fetch_add(1); });
    d.barrier();
    return ran.load() == seen + 1 ? 0 : 1;
  });
  g_forked.store(true);
  EXPECT_EQ(status, 0) << "the child, forked while the engine computed the shard layout, "
                       << (status == 128 + SIGALRM ? "hung in barrier() (SIGALRM after 30 s)"
                                                   : "lost its callback");
  d.barrier();
  EXPECT_EQ(ran.load(), 1);
  srcu::detail::g_test_probe.store(nullptr);
}

// A fresh domain's first call() and start_poll() leave a kick for the engine
// to make its state (src/domain.cc). A fork() before the engine takes the
// kick (the seam holds it in another domain's step) must leave the child a
// stateless domain whose parent's callback is the parent's (it runs there,
// not in the child, and barrier() does not wait for it), whose start_poll()
// grace period still happens, and which works from then on.
TEST(Fork, ForkWhileAFreshDomainsFirstKickWaitsForTheEngine) {
  SKIP_UNDER_TSAN();
  srcu::detail::forget_full_table_layout();
  hold_at("full_table: computing the layout");
  srcu::domain busy({.name = "fork-busy"});
  let_engine_start(busy);
  static std::atomic<int> ran{0};
  static srcu::callback_head asks_table, first, after;
  busy.call(&asks_table, [](srcu::callback_head*) {});  // the engine's step computes the layout
  wait_until_held("the engine to begin computing the full shard table's layout");
  srcu::domain fresh({.name = "fork-fresh"});
  fresh.call(&first, [](srcu::callback_head*) { ran.fetch_add(1); });
  const srcu::poll_cookie c = fresh.start_poll();
  const int status = run_in_child([&] {
    g_forked.store(true);
    while (!fresh.poll(c)) std::this_thread::sleep_for(100us);  // SIGALRM if it never ends
    fresh.barrier();
    if (ran.load() != 0) return 1;  // the parent's callback ran in the child
    fresh.call(&after, [](srcu::callback_head*) { ran.fetch_add(1); });
    fresh.barrier();
    return ran.load() == 1 ? 0 : 2;
  });
  g_forked.store(true);
  EXPECT_EQ(status, 0) << "the child, forked before the engine made a fresh domain's state, "
                       << (status == 128 + SIGALRM ? "hung (SIGALRM after 30 s)"
                           : status == 1           ? "ran the parent's callback"
                                                   : "ran the parent's callback late, or lost its own");
  fresh.barrier();
  EXPECT_EQ(ran.load(), 1);
  EXPECT_TRUE(fresh.poll(c) || (fresh.synchronize(), fresh.poll(c)));
  busy.barrier();
  srcu::detail::g_test_probe.store(nullptr);
}

// srcu::rcu's default domain is created on first use. A fork() while another
// thread constructs it must leave the child able to create and use its own:
// as a function-local static, its guard stayed "in progress" in the child,
// whose first use then blocked for good. The seam holds the first user inside
// the domain constructor until the fork is done.

TEST(Fork, ForkWhileAnotherThreadCreatesTheDefaultDomain) {
  SKIP_UNDER_TSAN();
  srcu::domain d({.name = "fork-default"});  // the fork handlers are installed
  let_engine_start(d);
  hold_at("domain: constructing");
  std::thread first_user([] { srcu::rcu_synchronize(srcu::rcu_default_domain()); });
  wait_until_held("the first user of rcu_default_domain() to enter the domain constructor");
  const int status = run_in_child([] {
    g_forked.store(true);  // the child's own construction goes through
    static std::atomic<int> ran{0};
    static srcu::callback_head h;
    srcu::domain& dflt = srcu::rcu_default_domain();
    dflt.call(&h, [](srcu::callback_head*) { ran.fetch_add(1); });
    srcu::rcu_synchronize(dflt);  // a grace period, then the callbacks
    return ran.load() == 1 ? 0 : 1;
  });
  g_forked.store(true);
  first_user.join();
  srcu::detail::g_test_probe.store(nullptr);
  EXPECT_EQ(status, 0) << "the child, forked while another thread constructed the default domain, "
                       << (status == 128 + SIGALRM ? "hung (SIGALRM after 30 s)" : "lost its callback");
}

}  // namespace

namespace {

// A reclaim_list of a thread that does not exist in the child never flushes
// there, so the child may destroy the domain (~domain() otherwise refuses
// while a list exists).
TEST(Fork, ChildMayDestroyADomainWithAVanishedThreadsReclaimList) {
  SKIP_UNDER_TSAN();
  auto d = std::make_unique<srcu::domain>(srcu::domain_options{.name = "fork-reclaim"});
  let_engine_start(*d);
  static srcu::callback_head head;
  static std::atomic<int> ran{0};
  flag ready, leave;
  std::thread owner([&] {
    srcu::reclaim_list l(*d);
    l.defer(&head, [](srcu::callback_head*) { ran.fetch_add(1); });
    ready.set();
    ASSERT_TRUE(leave.wait());
  });  // flushes when it leaves: after the fork, in the parent only
  ASSERT_TRUE(ready.wait());
  const int status = run_in_child([&] {
    d.reset();
    return 0;
  });
  EXPECT_EQ(status, 0) << "the child's ~domain() refused a list of a thread it does not have";
  leave.set();
  owner.join();
  EXPECT_EQ(ran.load(), 1);
}

}  // namespace
