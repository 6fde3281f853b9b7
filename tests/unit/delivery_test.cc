// Callback delivery: which waits are legal from which thread, isolation
// between domains, destruction from callbacks, nothing lost. Each regression
// test opens with the sequence of events that broke it (issue 9); each wait
// on another thread is under a watchdog that names what it waited for.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;
using srcu_test::thread_executor;

// Runs f on another thread; if it has not returned after `limit`, the test
// fails with `what` and the process exits (a hung wait cannot be unwound).
template <class F>
void within(std::chrono::seconds limit, const char* what, F&& f) {
  auto done = std::async(std::launch::async, std::forward<F>(f));
  if (done.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "hang: " << what << " did not return within " << limit.count() << " s";
    std::fflush(nullptr);
    std::_Exit(1);
  }
  done.get();
}

// An executor whose submit() runs the batch at once, on srcu's worker.
struct inline_executor final : srcu::executor {
  void submit(srcu::callback_batch batch) noexcept override { batch.run(); }
};

TEST(Delivery, CallbackOnTheDefaultWorkersMayBarrierAnExecutorDomain) {
  // Regression (issue 9, case 1):
  //  1. Domain X has its own executor; domain A uses srcu's callback thread.
  //  2. A callback of A (on srcu's callback thread) calls X.call(), then
  //     X.barrier().
  //  3. X's batches were handed to its executor by that same callback
  //     thread, which now waits in X.barrier(): it never returned, and the
  //     self-wait check exempted executor domains, so no message either.
  thread_executor exec;
  srcu::domain x({.name = "x-exec", .callback_executor = &exec});
  srcu::domain a({.name = "a-default"});
  std::atomic<int> x_runs{0};
  flag a_done;
  a.call([&] {
    x.call([&] { x_runs.fetch_add(1); });
    x.barrier();
    a_done.set();
  });
  within(60s, "A's callback waiting in X.barrier()", [&] { a.barrier(); });
  EXPECT_TRUE(a_done.is_set());
  EXPECT_EQ(x_runs.load(), 1);
}

TEST(Delivery, SubmitHookMayCallAndBarrierAnotherExecutorDomain) {
  // Regression (issue 9, case 1, second form):
  //  1. Domain Y's executor, inside submit(), calls X.call() and X.barrier()
  //     (X has an executor of its own).
  //  2. The thread calling submit() was the one that had to hand X's batch
  //     over: the same hang.
  thread_executor x_exec;
  srcu::domain x({.name = "x", .callback_executor = &x_exec});
  std::atomic<int> x_runs{0};
  struct barrier_in_submit final : srcu::executor {
    srcu::domain* x = nullptr;
    std::atomic<int>* x_runs = nullptr;
    void submit(srcu::callback_batch batch) noexcept override {
      x->call([r = x_runs] { r->fetch_add(1); });
      x->barrier();
      batch.run();
    }
  } y_exec;
  y_exec.x = &x;
  y_exec.x_runs = &x_runs;
  srcu::domain y({.name = "y", .callback_executor = &y_exec});
  std::atomic<int> y_runs{0};
  y.call([&] { y_runs.fetch_add(1); });
  within(60s, "Y's submit() waiting in X.barrier()", [&] { y.barrier(); });
  EXPECT_EQ(y_runs.load(), 1);
  EXPECT_EQ(x_runs.load(), 1);
}

TEST(Delivery, SleepingCallbackDoesNotHoldUpAnotherDomainsCallbacks) {
  // Regression (issue 9, case 2):
  //  1. A callback of A sleeps on srcu's callback thread.
  //  2. A callback of X (own executor) becomes ready meanwhile.
  //  3. It did not run until A's callback woke: the executor did not
  //     isolate X. Here A's callback sleeps until X's has run; it gives up
  //     (and the test fails) after 30 s.
  //  The same must hold for a second domain on srcu's own workers (B).
  thread_executor exec;
  srcu::domain a({.name = "a-sleeps"});
  srcu::domain x({.name = "x-isolated", .callback_executor = &exec});
  srcu::domain b({.name = "b-default"});
  flag a_inside, x_ran, b_ran;
  std::atomic<bool> a_saw_both{false};
  a.call([&] {
    a_inside.set();
    a_saw_both = x_ran.wait(30s) && b_ran.wait(30s);
  });
  ASSERT_TRUE(a_inside.wait(30s)) << "A's callback never started";
  x.call([&] { x_ran.set(); });
  b.call([&] { b_ran.set(); });
  within(90s, "A.barrier() (A's callback waits for X's and B's)", [&] { a.barrier(); });
  EXPECT_TRUE(a_saw_both.load())
      << "X's or B's callback did not run while A's callback slept on a worker";
  x.barrier();
  b.barrier();
}

TEST(Delivery, DeletingADomainFromACallbackWorks) {
  // Regression (issue 9, case 3):
  //  1. A callback of A (on srcu's callback thread) deletes domain D, which
  //     has nothing queued; a second callback deletes E with callbacks
  //     queued; a third retire()s an object that owns a domain.
  //  2. ~domain() ran barrier(), whose check aborted with "barrier() ...
  //     would wait for itself" for any domain on the callback thread.
  struct owner {
    srcu::domain dom{srcu::domain_options{.name = "owned"}};
    std::atomic<int>* runs = nullptr;
  };
  srcu::domain a({.name = "a-deleter"});
  std::atomic<int> e_runs{0}, owned_runs{0};
  auto* d = new srcu::domain({.name = "idle"});
  auto* e = new srcu::domain({.name = "busy"});
  for (int i = 0; i < 10; ++i) e->call([&] { e_runs.fetch_add(1); });
  auto* o = new owner;
  o->runs = &owned_runs;
  for (int i = 0; i < 10; ++i) o->dom.call([r = o->runs] { r->fetch_add(1); });
  a.call([d] { delete d; });
  a.call([e] { delete e; });
  a.retire(o);
  within(60s, "A.barrier() (its callbacks delete domains)", [&] { a.barrier(); });
  EXPECT_EQ(e_runs.load(), 10) << "~domain() inside a callback lost callbacks";
  EXPECT_EQ(owned_runs.load(), 10);
}

TEST(Delivery, DeletingAnExecutorDomainReadyInTheSameRound) {
  // Regression (issue 9, case 4):
  //  1. Domains A (srcu's thread) and X (own executor) have ready
  //     callbacks at the same time, so one round of the callback thread
  //     marks both busy.
  //  2. A's callback deletes X; ~X's forget() waited for X's busy mark,
  //     which only the same thread clears after A's callback returns.
  //  3. The callback thread deadlocked; every domain's callbacks stopped.
  thread_executor exec;
  const int rounds = static_cast<int>(50 * srcu_test::stress_seconds(3) / 3);
  for (int i = 0; i < rounds; ++i) {
    srcu::domain a({.name = "a", .callback_delay = 0us});
    auto* x = new srcu::domain({.name = "x", .callback_executor = &exec, .callback_delay = 0us});
    std::atomic<int> x_runs{0};
    x->call([&] { x_runs.fetch_add(1); });
    a.call([x] { delete x; });
    within(60s, "A.barrier() (A's callback deletes X)", [&] { a.barrier(); });
    EXPECT_EQ(x_runs.load(), 1) << "round " << i;
  }
  // Every domain's callbacks still run afterwards.
  srcu::domain after({.name = "after"});
  std::atomic<int> runs{0};
  after.call([&] { runs.fetch_add(1); });
  within(60s, "barrier() of a new domain afterwards", [&] { after.barrier(); });
  EXPECT_EQ(runs.load(), 1);
}

TEST(Delivery, CallbackOnAnExecutorThreadMayBarrierADefaultDomain) {
  // Regression (issue 9, case 6):
  //  1. X's callback runs on X's executor thread (not srcu's).
  //  2. It calls barrier() on domain B, served by srcu's callback thread.
  //  3. It was told it was "inside a callback on srcu's callback thread"
  //     and aborted: the check looked at how B was configured, not at what
  //     the calling thread was running.
  thread_executor exec;
  srcu::domain x({.name = "x", .callback_executor = &exec});
  srcu::domain b({.name = "b"});
  std::atomic<int> b_runs{0};
  std::atomic<bool> on_executor{false};
  flag x_done;
  x.call([&] {
    on_executor = std::this_thread::get_id() == exec.thread_id();
    b.call([&] { b_runs.fetch_add(1); });
    b.barrier();
    x_done.set();
  });
  within(60s, "X.barrier() (X's callback waits in B.barrier())", [&] { x.barrier(); });
  EXPECT_TRUE(on_executor.load());
  EXPECT_TRUE(x_done.is_set());
  EXPECT_EQ(b_runs.load(), 1);
}

TEST(Delivery, CallbacksQueuedByCallbacksDuringDestructionAllRun) {
  // Regression (issue 9, case 7):
  //  1. Five callbacks are queued on D; each, when it runs, queues one more
  //     on D (a second generation), and those queue a third.
  //  2. ~D's barrier() ran the first five; the ones they queued came after
  //     its snapshot and were dropped when ~D forgot the domain (1 of 5
  //     second-generation callbacks ran).
  for (srcu::executor* exec : {static_cast<srcu::executor*>(nullptr),
                               static_cast<srcu::executor*>(new inline_executor)}) {
    std::atomic<int> runs{0};
    {
      auto* d = new srcu::domain({.name = "requeue", .callback_executor = exec});
      for (int i = 0; i < 5; ++i) {
        d->call([d, &runs] {
          runs.fetch_add(1);
          d->call([d, &runs] {
            runs.fetch_add(1);
            d->call([&runs] { runs.fetch_add(1); });
          });
        });
      }
      within(60s, "~domain() with callbacks that queue callbacks", [d] { delete d; });
    }
    EXPECT_EQ(runs.load(), 15) << (exec ? "inline executor" : "srcu's workers");
    delete static_cast<inline_executor*>(exec);
  }
}

TEST(Delivery, DestructorWithNothingQueuedDoesNotWait) {
  // ~domain() with nothing queued runs no grace period; with a reader of
  // another domain blocked, it still returns at once (no wait on anything).
  srcu::domain other({.name = "other"});
  srcu_test::held_reader r(other);
  for (int i = 0; i < 100; ++i) {
    auto d = std::make_unique<srcu::domain>(srcu::domain_options{.name = "empty"});
    std::atomic<int> runs{0};
    d->call([&] { runs.fetch_add(1); });
    d->barrier();
    within(60s, "~domain() with nothing queued", [&] { d.reset(); });
    EXPECT_EQ(runs.load(), 1);
  }
  srcu::domain d({.name = "idle"});
  within(60s, "barrier() with nothing queued", [&] { d.barrier(); });
  EXPECT_EQ(d.grace_periods_completed(), 0u) << "barrier() with nothing queued ran a grace period";
}

TEST(Delivery, DomainsTakeFairTurns) {
  // Regression (issue 9, case 8, fairness):
  //  1. Domain A has a long burst of callbacks ready; domain B then queues
  //     one.
  //  2. B's callback waited until every one of A's had run (a ready list
  //     was one batch, however long): 106-358 ms after a 20 M burst.
  //  Now a worker runs at most one batch (callback_pool::kBatchLimit) of a
  //  domain per turn, so B's callback runs while A's burst is in progress.
  //  A's callbacks are made slow (a short spin each) so the burst lasts far
  //  longer than B's grace period; no timing is asserted.
  srcu::domain a({.name = "burst"}), b({.name = "single"});
  const int burst = 1'000'000;
  std::vector<srcu::callback_head> heads(burst);
  static std::atomic<int> a_runs;
  a_runs = 0;
  auto* reader = new srcu_test::held_reader(a);  // holds A's burst back until it is all queued
  for (auto& h : heads) {
    a.call(&h, [](srcu::callback_head*) {
      for (int spin = 0; spin < 200; ++spin) asm volatile("" ::: "memory");
      a_runs.fetch_add(1, std::memory_order_relaxed);
    });
  }
  delete reader;
  within(60s, "the first of A's callbacks", [&] {
    while (a_runs.load() == 0) std::this_thread::sleep_for(100us);
  });
  std::atomic<int> a_runs_when_b_ran{-1};
  b.call([&] { a_runs_when_b_ran = a_runs.load(); });
  within(300s, "A.barrier() and B.barrier()", [&] {
    a.barrier();
    b.barrier();
  });
  EXPECT_EQ(a_runs.load(), burst);
  ASSERT_GE(a_runs_when_b_ran.load(), 0) << "B's callback never ran";
  EXPECT_LT(a_runs_when_b_ran.load(), burst) << "B's one callback waited for all of A's burst";
  std::printf("B's callback ran after %d of A's %d callbacks\n", a_runs_when_b_ran.load(), burst);
}

TEST(Delivery, BoundedRetireKeepsTheBacklogUnderItsLimit) {
  // callback_backlog_limit: call(F)/retire() wait while that many callbacks
  // are pending, so two threads retiring as fast as they can hold at most
  // the limit plus, per thread, one that passed the check at the same time
  // and one allocated but not yet retired.
  constexpr std::size_t kLimit = 10'000;
  srcu::domain d({.name = "bounded", .callback_backlog_limit = kLimit});
  static std::atomic<long> live;
  live = 0;
  static std::atomic<long> peak;
  peak = 0;
  struct object {
    object() {
      const long n = live.fetch_add(1) + 1;
      long p = peak.load();
      while (n > p && !peak.compare_exchange_weak(p, n)) {
      }
    }
    ~object() { live.fetch_sub(1); }
  };
  const long per_thread = static_cast<long>(300'000 * srcu_test::stress_seconds(3) / 3);
  within(120s, "two threads retiring into a bounded domain", [&] {
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; ++t) {
      ts.emplace_back([&] {
        for (long i = 0; i < per_thread; ++i) d.retire(new object);
      });
    }
    for (auto& t : ts) t.join();
    d.barrier();
  });
  EXPECT_EQ(live.load(), 0);
  EXPECT_LE(peak.load(), static_cast<long>(kLimit) + 4) << "backlog went over the limit";
  EXPECT_GT(peak.load(), 0);
}

TEST(Delivery, BoundedCallInsideOwnReaderOrCallbackGoesOverInsteadOfDeadlocking) {
  // The bound's deadlock rule: inside a reader of the domain (its grace
  // periods wait for that reader: folly#1211) and inside the domain's own
  // callbacks, call(F) never waits.
  srcu::domain d({.name = "bounded-1", .callback_backlog_limit = 1});
  std::atomic<int> runs{0};
  within(60s, "call(F) over the limit inside a reader", [&] {
    srcu::read_guard g(d);
    for (int i = 0; i < 10; ++i) d.call([&] { runs.fetch_add(1); });
  });
  d.call([&] {
    for (int i = 0; i < 10; ++i) d.call([&] { runs.fetch_add(1); });
  });
  within(60s, "barrier() after call(F) inside its own callback", [&] {
    while (runs.load() < 20) d.barrier();
  });
  EXPECT_EQ(runs.load(), 20);
}

class DeliveryMisuse : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(DeliveryMisuse, DestructorWithReaderOnAnotherThreadAbortsInsteadOfHanging) {
  // Regression (issue 9, case 5):
  //  1. A reader is inside D on another thread.
  //  2. One callback is queued on D.
  //  3. ~D() ran barrier() first, whose grace period waits for the reader:
  //     it hung instead of reporting the reader.
  EXPECT_DEATH(
      {
        auto* d = new srcu::domain({.name = "doomed"});
        srcu_test::held_reader* r = new srcu_test::held_reader(*d);
        (void)r;
        d->call([] {});
        delete d;
      },
      "domain 'doomed': destroyed while 1 reader\\(s\\) are still inside");
}

TEST_F(DeliveryMisuse, BarrierInsideOwnSubmitAborts) {
  // Waiting for X's callbacks inside X's own submit(): X's batch in hand
  // has not run yet, so it would wait for itself.
  EXPECT_DEATH(
      {
        struct self_barrier final : srcu::executor {
          srcu::domain* d = nullptr;
          void submit(srcu::callback_batch batch) noexcept override {
            d->barrier();
            batch.run();
          }
        } exec;
        srcu::domain d({.name = "self-submit", .callback_executor = &exec});
        exec.d = &d;
        d.call([] {});
        d.barrier();
      },
      "domain 'self-submit': barrier\\(\\) called from inside one of this domain's own "
      "callbacks or its executor's submit\\(\\)");
}

TEST_F(DeliveryMisuse, DestroyingADomainFromItsOwnCallbackAborts) {
  EXPECT_DEATH(
      {
        auto* d = new srcu::domain({.name = "self-delete"});
        d->call([d] { delete d; });
        d->barrier();
      },
      "domain 'self-delete': destroyed from inside one of its own callbacks");
}

}  // namespace
