// The C++26-shaped layer (srcu/rcu.h), exercised the way P2545 shows
// std::rcu_obj_base, std::rcu_retire, std::rcu_synchronize and
// std::rcu_barrier being used: objects published through std::atomic<T*>,
// readers under std::scoped_lock on the default domain, updaters that
// exchange the pointer and retire the old object.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;

// srcu::rcu_barrier(dom), with a hang guard. barrier() returns in
// milliseconds here; if it has not returned after 10 s a queued callback is
// stuck (a lost grace-period request), which the test reports as a failure
// instead of hanging. It then requests grace periods itself until the
// barrier returns, so the test (and the domain's destructor) can finish.
void barrier_with_hang_guard(srcu::domain& dom = srcu::rcu_default_domain()) {
  flag returned;
  std::thread waiter([&] {
    srcu::rcu_barrier(dom);
    returned.set();
  });
  if (!returned.wait(10s)) {
    ADD_FAILURE() << "rcu_barrier() on domain '" << dom.name()
                  << "' has not returned after 10 s: a queued callback is waiting for a "
                     "grace period that nobody requested";
    while (!returned.wait(10ms)) srcu::rcu_synchronize(dom);
  }
  waiter.join();
}

// =============================================================================
// 1. rcu_obj_base<T> with the default deleter, readers on the default domain
// =============================================================================

constexpr int kPoisonValue = -1;

// Publishes `serial * 10`; the destructor marks the object dead and poisons
// its value, so a reader that reaches a reclaimed object sees it (plain
// fields: ThreadSanitizer also reports the race if reclaim is not ordered
// after every reader that could hold the pointer).
struct widget : srcu::rcu_obj_base<widget> {
  widget(int s, std::atomic<int>* destroyed)
      : serial(s), value(s * 10), destroyed_by_serial(destroyed) {}
  ~widget() {
    alive = false;
    value = kPoisonValue;
    destroyed_by_serial[serial].fetch_add(1, std::memory_order_relaxed);
  }
  widget(const widget&) = delete;
  widget& operator=(const widget&) = delete;

  const int serial;
  int value;
  bool alive = true;
  std::atomic<int>* const destroyed_by_serial;
};

TEST(RcuObjBase, ReadersNeverSeeARetiredObjectAndEachIsDestroyedOnce) {
  constexpr int kUpdates = 5000;
  constexpr int kReaders = 2;
  // destroyed[i]: how often widget i's destructor ran.
  std::vector<std::atomic<int>> destroyed(kUpdates + 1);
  std::atomic<widget*> current{new widget(0, destroyed.data())};

  std::atomic<bool> stop{false};
  std::atomic<long> dead_seen{0};
  std::atomic<long> bad_value_seen{0};
  std::atomic<long> reads{0};
  std::latch readers_started(kReaders);
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&] {
      readers_started.count_down();
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        std::scoped_lock lk(srcu::rcu_default_domain());
        const widget* w = current.load(std::memory_order_acquire);
        if (!w->alive) dead_seen.fetch_add(1, std::memory_order_relaxed);
        if (w->value != w->serial * 10) bad_value_seen.fetch_add(1, std::memory_order_relaxed);
        // Sleepable readers: now and then hold the section across a sleep,
        // so retire() has to wait for a reader that is off the CPU.
        if (++n % 256 == 0) std::this_thread::sleep_for(20us);
        if (!w->alive) dead_seen.fetch_add(1, std::memory_order_relaxed);
      }
      reads.fetch_add(n, std::memory_order_relaxed);
    });
  }

  readers_started.wait();
  for (int i = 1; i <= kUpdates; ++i) {
    widget* old = current.exchange(new widget(i, destroyed.data()), std::memory_order_acq_rel);
    old->retire();  // intrusive: no allocation
    if (i % 50 == 0) std::this_thread::sleep_for(100us);  // let readers in
  }
  stop.store(true, std::memory_order_relaxed);
  for (std::thread& t : readers) t.join();

  barrier_with_hang_guard();
  EXPECT_EQ(dead_seen.load(), 0) << "a reader saw a destroyed widget";
  EXPECT_EQ(bad_value_seen.load(), 0) << "a reader saw a poisoned value";
  EXPECT_GT(reads.load(), 0);
  for (int i = 0; i < kUpdates; ++i) {
    ASSERT_EQ(destroyed[i].load(), 1) << "retired widget " << i;
  }
  EXPECT_EQ(destroyed[kUpdates].load(), 0) << "the published widget was destroyed";

  current.load()->retire();
  barrier_with_hang_guard();
  EXPECT_EQ(destroyed[kUpdates].load(), 1);
  // A second barrier (and grace period) runs nothing again.
  srcu::rcu_synchronize();
  barrier_with_hang_guard();
  for (int i = 0; i <= kUpdates; ++i) ASSERT_EQ(destroyed[i].load(), 1) << "widget " << i;
}

// =============================================================================
// 2. rcu_obj_base<T, D> with an empty custom deleter that records its calls
// =============================================================================

struct gadget;

// Stateless, so it has to record in globals; each test resets them.
std::mutex g_gadget_mutex;
std::vector<const gadget*> g_gadget_deleted;  // guarded by g_gadget_mutex
std::atomic<int> g_gadget_destructors{0};

struct recording_deleter {
  void operator()(gadget* g) const;
};

struct gadget : srcu::rcu_obj_base<gadget, recording_deleter> {
  ~gadget() { g_gadget_destructors.fetch_add(1, std::memory_order_relaxed); }
  int payload = 7;
};

void recording_deleter::operator()(gadget* g) const {
  {
    std::lock_guard lk(g_gadget_mutex);
    g_gadget_deleted.push_back(g);
  }
  delete g;
}

TEST(RcuObjBase, CustomDeleterTypeIsCalledOncePerRetiredObject) {
  {
    std::lock_guard lk(g_gadget_mutex);
    g_gadget_deleted.clear();
  }
  g_gadget_destructors = 0;

  constexpr int kObjects = 50;
  std::vector<const gadget*> retired;
  for (int i = 0; i < kObjects; ++i) {
    auto* g = new gadget;
    retired.push_back(g);
    if (i % 2 == 0) {
      g->retire();  // D() by default
    } else {
      g->retire(recording_deleter{});
    }
  }
  barrier_with_hang_guard();

  std::lock_guard lk(g_gadget_mutex);
  // One domain, one thread: callbacks run in the order they were queued.
  EXPECT_EQ(g_gadget_deleted, retired);
  EXPECT_EQ(g_gadget_destructors.load(), kObjects);
}

// An object copied from another is a fresh object: it is not queued, and
// both may be retired.
TEST(RcuObjBase, CopiedObjectIsRetiredIndependently) {
  {
    std::lock_guard lk(g_gadget_mutex);
    g_gadget_deleted.clear();
  }
  g_gadget_destructors = 0;

  auto* original = new gadget;
  original->payload = 11;
  auto* copy = new gadget(*original);
  EXPECT_EQ(copy->payload, 11);
  original->retire();
  auto* assigned = new gadget;
  *assigned = *copy;  // assignment leaves the target's queue state alone
  copy->retire();
  assigned->retire();
  barrier_with_hang_guard();

  std::lock_guard lk(g_gadget_mutex);
  EXPECT_EQ(g_gadget_deleted, (std::vector<const gadget*>{original, copy, assigned}));
  EXPECT_EQ(g_gadget_destructors.load(), 3);
}

// =============================================================================
// 3. rcu_retire(p), rcu_retire(p, d), rcu_retire(p, d, dom)
// =============================================================================

// A plain type (no rcu_obj_base) that counts its destructions.
struct tracked {
  explicit tracked(std::atomic<int>* counter) : destroyed(counter) {}
  ~tracked() { destroyed->fetch_add(1, std::memory_order_relaxed); }
  std::atomic<int>* destroyed;
};

// Counts its calls, then deletes.
struct counting_deleter {
  std::atomic<int>* calls;
  void operator()(tracked* t) const {
    calls->fetch_add(1, std::memory_order_relaxed);
    delete t;
  }
};

TEST(RcuRetire, DefaultAndCustomDeleterOnTheDefaultDomain) {
  std::atomic<int> destroyed{0};
  std::atomic<int> deleter_calls{0};
  srcu::rcu_retire(new tracked(&destroyed));                                      // delete
  srcu::rcu_retire(new tracked(&destroyed), counting_deleter{&deleter_calls});    // d(p)
  srcu::rcu_retire(new tracked(&destroyed), counting_deleter{&deleter_calls});
  barrier_with_hang_guard();
  EXPECT_EQ(destroyed.load(), 3);
  EXPECT_EQ(deleter_calls.load(), 2);
}

TEST(RcuRetire, OnAnotherDomainWaitsForThatDomainsReaders) {
  srcu::domain mine({.name = "rcu-retire"});
  std::atomic<int> destroyed{0};
  std::atomic<int> deleter_calls{0};

  flag entered, release;
  std::thread reader([&] {
    std::scoped_lock lk(mine);
    entered.set();
    ASSERT_TRUE(release.wait());
  });
  ASSERT_TRUE(entered.wait());

  srcu::rcu_retire(new tracked(&destroyed), counting_deleter{&deleter_calls}, mine);
  // The default domain's barrier has nothing of `mine` to wait for, and
  // must not be held up by `mine`'s reader.
  barrier_with_hang_guard();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(deleter_calls.load(), 0) << "reclaimed while a reader of its domain was inside";
  EXPECT_EQ(destroyed.load(), 0);

  release.set();
  reader.join();
  barrier_with_hang_guard(mine);
  EXPECT_EQ(deleter_calls.load(), 1);
  EXPECT_EQ(destroyed.load(), 1);
}

TEST(RcuRetire, RetireWhileAGracePeriodIsInFlightIsReclaimed) {
  // The sequence that lost the second object (seen as a hang in barrier()):
  //  1. A reader of the domain is inside.
  //  2. retire(a): the engine stages it with cookie "GP 1" and starts GP 1,
  //     which waits for the reader.
  //  3. retire(b): the engine stages it with cookie "GP 2" into the second
  //     waiting segment, but requested cookie 0 instead of GP 2 (the cookie
  //     was read from the segment after it had been moved out).
  //  4. The reader leaves, GP 1 ends, `a` is reclaimed; `b` waits for GP 2,
  //     which nobody requested, so it never starts.
  srcu::domain mine({.name = "rcu-in-flight"});
  std::atomic<int> destroyed{0};
  std::atomic<int> deleter_calls{0};

  flag entered, release;
  std::thread reader([&] {
    std::scoped_lock lk(mine);
    entered.set();
    ASSERT_TRUE(release.wait());
  });
  ASSERT_TRUE(entered.wait());

  const std::uint64_t idle_cookie = mine.get_poll_cookie().value();
  srcu::rcu_retire(new tracked(&destroyed), counting_deleter{&deleter_calls}, mine);
  // A cookie taken once GP 1 has started names a later grace period.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (mine.get_poll_cookie().value() == idle_cookie) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "GP 1 never started";
    std::this_thread::sleep_for(100us);
  }
  srcu::rcu_retire(new tracked(&destroyed), counting_deleter{&deleter_calls}, mine);
  std::this_thread::sleep_for(20ms);  // the engine stages `b` while GP 1 waits
  EXPECT_EQ(deleter_calls.load(), 0);

  release.set();
  reader.join();
  barrier_with_hang_guard(mine);
  EXPECT_EQ(deleter_calls.load(), 2);
  EXPECT_EQ(destroyed.load(), 2);
}

// =============================================================================
// 4. rcu_synchronize waits for a pre-existing reader of the default domain
// =============================================================================

TEST(RcuSynchronize, WaitsForPreexistingReaderOfTheDefaultDomain) {
  flag entered;
  // Written plainly inside the reader, read plainly after rcu_synchronize():
  // a data race (TSan) and a wrong value unless the unlock happens-before
  // the return.
  bool written_before_unlock = false;
  std::thread reader([&] {
    std::scoped_lock lk(srcu::rcu_default_domain());
    entered.set();
    std::this_thread::sleep_for(50ms);
    written_before_unlock = true;
  });
  ASSERT_TRUE(entered.wait());
  const auto t0 = std::chrono::steady_clock::now();
  srcu::rcu_synchronize();
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(written_before_unlock) << "rcu_synchronize() returned inside the reader";
  // The reader slept 50 ms after `entered`; the wait began at most a poll
  // interval later, so most of those 50 ms were spent waiting.
  EXPECT_GE(waited, 30ms);
  reader.join();
}

// =============================================================================
// 5. domain::retire(p, d) and domain::call(f) with a move-only capture
// =============================================================================

TEST(RcuDomain, RetireAndCallWithMoveOnlyCaptureRunExactlyOnce) {
  srcu::domain d({.name = "rcu-call"});
  std::atomic<int> destroyed{0};
  std::atomic<int> deleter_calls{0};
  d.retire(new tracked(&destroyed));
  d.retire(new tracked(&destroyed), counting_deleter{&deleter_calls});

  std::atomic<int> runs{0};
  std::atomic<int> seen_value{0};
  auto owned = std::make_unique<tracked>(&destroyed);  // freed with the callable
  auto number = std::make_unique<int>(41);
  d.call([n = std::move(number), o = std::move(owned), &runs, &seen_value]() mutable {
    seen_value.store(++*n, std::memory_order_relaxed);
    runs.fetch_add(1, std::memory_order_relaxed);
  });
  EXPECT_TRUE(number == nullptr);  // moved into the queued node
  barrier_with_hang_guard(d);
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(seen_value.load(), 42);
  EXPECT_EQ(deleter_calls.load(), 1);
  // Two retired objects and the one the callable owned.
  EXPECT_EQ(destroyed.load(), 3);

  d.synchronize();
  barrier_with_hang_guard(d);
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(destroyed.load(), 3);
}

// =============================================================================
// 6. A deleter with state: the [[no_unique_address]] member is then real
// =============================================================================

struct thing;

// Non-empty: carries a tag and where to log it. Default-constructible, as
// rcu_obj_base<T, D>::retire(D d = D()) requires. It logs *after* deleting
// the object, so it must be a copy moved out of the object, not the member.
struct tagged_deleter {
  std::string tag;
  std::mutex* mutex = nullptr;
  std::vector<std::string>* log = nullptr;
  void operator()(thing* t) const;
};

struct thing : srcu::rcu_obj_base<thing, tagged_deleter> {
  explicit thing(std::atomic<int>* counter) : destroyed(counter) {}
  ~thing() { destroyed->fetch_add(1, std::memory_order_relaxed); }
  std::atomic<int>* destroyed;
};

void tagged_deleter::operator()(thing* t) const {
  delete t;  // destroys the object's own (moved-from) deleter_ too
  std::lock_guard lk(*mutex);
  log->push_back(tag);
}

struct plain_widget : srcu::rcu_obj_base<plain_widget> {};

TEST(RcuObjBase, StatefulDeleterKeepsItsStateUntilInvoked) {
  // Itanium C++ ABI (Linux): an empty deleter takes no room, a stateful one does.
  EXPECT_EQ(sizeof(plain_widget), sizeof(srcu::callback_head));
  EXPECT_GE(sizeof(thing), sizeof(srcu::callback_head) + sizeof(tagged_deleter));

  srcu::domain other({.name = "rcu-stateful"});
  std::atomic<int> destroyed{0};
  std::mutex mutex;
  std::vector<std::string> log;
  // Long tags: heap-allocated strings, so a deleter read after it was freed
  // shows (under ASan for certain, usually as garbage otherwise).
  const std::string tag_a(40, 'a');
  const std::string tag_b(40, 'b');
  const std::string tag_c(40, 'c');

  (new thing(&destroyed))->retire(tagged_deleter{tag_a, &mutex, &log});
  (new thing(&destroyed))->retire(tagged_deleter{tag_b, &mutex, &log});
  (new thing(&destroyed))->retire(tagged_deleter{tag_c, &mutex, &log}, other);
  barrier_with_hang_guard();
  barrier_with_hang_guard(other);

  EXPECT_EQ(destroyed.load(), 3);
  std::lock_guard lk(mutex);
  ASSERT_EQ(log.size(), 3u);
  // The two on the default domain in order; the one on `other` anywhere.
  std::vector<std::string> default_domain_tags;
  for (const std::string& t : log) {
    if (t != tag_c) default_domain_tags.push_back(t);
  }
  EXPECT_EQ(default_domain_tags, (std::vector<std::string>{tag_a, tag_b}));
  EXPECT_EQ(std::count(log.begin(), log.end(), tag_c), 1);
}

}  // namespace
