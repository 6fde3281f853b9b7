// reclaim_list: the owner's own deferred frees, run when polled grace
// periods are over.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::held_reader;
using srcu_test::watchdog;

// An object whose function records its number in `order`.
struct item {
  srcu::callback_head head;
  int number = 0;
  std::vector<int>* order = nullptr;
};

void record(srcu::callback_head* h) {
  item* it = srcu::owner_of(h, &item::head);
  it->order->push_back(it->number);
}

std::vector<item> numbered(int n, std::vector<int>& order) {
  std::vector<item> items(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    items[static_cast<std::size_t>(i)].number = i;
    items[static_cast<std::size_t>(i)].order = &order;
  }
  return items;
}

// reclaim() until nothing is pending: it never waits, and the list asks for
// the grace periods itself (start_poll()), so this ends without any other
// thread asking for one.
void reclaim_until_empty(srcu::reclaim_list& l, const char* what) {
  watchdog dog(what);
  while (l.pending() != 0) {
    (void)l.reclaim();
    std::this_thread::sleep_for(100us);
  }
}

std::vector<int> iota(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

TEST(ReclaimList, NothingRunsWhileAReaderThatBeganBeforeTheDeferIsInside) {
  srcu::domain d({.name = "reclaim-reader"});
  std::vector<int> order;
  std::vector<item> items = numbered(300, order);
  srcu::reclaim_list l(d, {.grace_period_interval = 0us});
  {
    held_reader reader(d);
    for (item& it : items) l.defer(&it.head, record);  // 4 full batches and an open one
    for (int i = 0; i < 200; ++i) {
      EXPECT_EQ(l.reclaim(), 0u);
      std::this_thread::sleep_for(100us);
    }
    EXPECT_TRUE(order.empty()) << "ran with a reader inside that began before the defer";
    EXPECT_EQ(l.pending(), 300u);
  }
  reclaim_until_empty(l, "the reclaim_list's objects after the reader left");
  EXPECT_EQ(order, iota(300)) << "each function once, in defer order";
}

TEST(ReclaimList, AsksForItsOwnGracePeriods) {
  // Nobody else asks for a grace period: the list's start_poll() must.
  srcu::domain d({.name = "reclaim-asks"});
  std::vector<int> order;
  std::vector<item> items = numbered(10, order);  // fewer than one batch
  srcu::reclaim_list l(d);
  for (item& it : items) l.defer(&it.head, record);
  EXPECT_EQ(l.pending(), 10u);
  reclaim_until_empty(l, "a grace period the reclaim_list asked for");
  EXPECT_EQ(order, iota(10));
  EXPECT_GE(d.grace_periods_completed(), 1u);
}

TEST(ReclaimList, DeferReclaimsEveryBatch) {
  // Only defer(), never reclaim(): every batch_size-th defer() reclaims.
  srcu::domain d({.name = "reclaim-defer"});
  std::vector<int> order;
  std::deque<item> items;  // grows; addresses stay put
  srcu::reclaim_list l(d, {.batch_size = 8});
  watchdog dog("defer() to run earlier batches");
  while (order.empty()) {
    items.push_back(item{{}, static_cast<int>(items.size()), &order});
    l.defer(&items.back().head, record);
    if (items.size() % 8 == 0) std::this_thread::sleep_for(50us);
  }
  EXPECT_EQ(order.front(), 0);
  l.flush();
  EXPECT_EQ(order, iota(static_cast<int>(items.size())));
}

TEST(ReclaimList, FlushAndTheDestructorRunEverything) {
  srcu::domain d({.name = "reclaim-flush"});
  std::vector<int> order;
  std::vector<item> items = numbered(1'000, order);
  {
    srcu::reclaim_list l(d);
    for (int i = 0; i < 500; ++i) l.defer(&items[static_cast<std::size_t>(i)].head, record);
    l.flush();
    EXPECT_EQ(order, iota(500));
    EXPECT_EQ(l.pending(), 0u);
    for (int i = 500; i < 1'000; ++i) l.defer(&items[static_cast<std::size_t>(i)].head, record);
  }
  EXPECT_EQ(order, iota(1'000)) << "the destructor flushes";
}

TEST(ReclaimList, AFullRingMergesBatchesInsteadOfBlocking) {
  srcu::domain d({.name = "reclaim-full"});
  std::vector<int> order;
  std::vector<item> items = numbered(100, order);
  srcu::reclaim_list l(d, {.batch_size = 1, .max_batches = 4});
  {
    held_reader reader(d);
    watchdog dog("defer() with every batch slot taken (it must not wait)");
    for (item& it : items) l.defer(&it.head, record);
    EXPECT_TRUE(order.empty());
    EXPECT_EQ(l.pending(), 100u);
  }
  reclaim_until_empty(l, "merged batches after the reader left");
  EXPECT_EQ(order, iota(100));
}

TEST(ReclaimList, OneBatchSlotStillFreesAStream) {
  // With every slot taken by a batch that is done, a closing batch must not
  // join it (that pushed its cookie forward at every close: nothing ran).
  srcu::domain d({.name = "reclaim-one-slot"});
  std::vector<int> order;
  std::deque<item> items;
  srcu::reclaim_list l(d, {.batch_size = 4, .max_batches = 1, .grace_period_interval = 0us});
  watchdog dog("a one-slot reclaim_list to run something while defers keep coming");
  while (order.empty()) {
    items.push_back(item{{}, static_cast<int>(items.size()), &order});
    l.defer(&items.back().head, record);
    if (items.size() % 4 == 0) std::this_thread::sleep_for(200us);
  }
  l.flush();
  EXPECT_EQ(order, iota(static_cast<int>(items.size())));
}

TEST(ReclaimList, AFullRingRunsItsDoneBatchBeforeTheNextOneCloses) {
  srcu::domain d({.name = "reclaim-merge"});
  std::vector<int> order;
  std::vector<item> items = numbered(2, order);
  srcu::reclaim_list l(d, {.batch_size = 1, .max_batches = 1, .grace_period_interval = 0us});
  l.defer(&items[0].head, record);  // closes batch A with cookie a
  {
    watchdog dog("a grace period after the first batch's cookie");
    const srcu::poll_cookie after = d.start_poll();
    while (!d.poll(after)) std::this_thread::sleep_for(100us);
  }
  held_reader reader(d);  // began after a's grace period, before B is deferred
  // B's close runs A (done) first, then takes the slot: B must wait for the reader.
  l.defer(&items[1].head, record);
  for (int i = 0; i < 100; ++i) {
    (void)l.reclaim();
    std::this_thread::sleep_for(100us);
  }
  EXPECT_EQ(order, std::vector<int>({0})) << "B ran with a reader inside that began before it was deferred";
  reader.release();
  reclaim_until_empty(l, "the second batch after the reader left");
  EXPECT_EQ(order, std::vector<int>({0, 1}));
}

TEST(ReclaimList, ADeferredAgainHeadDoesNotDragItsOldSuccessor) {
  srcu::domain d({.name = "reclaim-relink"});
  std::vector<int> order;
  std::vector<item> items = numbered(3, order);
  srcu::reclaim_list l(d);
  for (item& it : items) l.defer(&it.head, record);
  l.flush();
  l.defer(&items[1].head, record);  // its next still pointed at item 2
  l.flush();
  EXPECT_EQ(order, std::vector<int>({0, 1, 2, 1}));
}

TEST(ReclaimList, AsksForAGracePeriodAtMostOncePerInterval) {
  srcu::domain d({.name = "reclaim-interval"});
  std::vector<int> order;
  std::vector<item> items = numbered(1, order);
  srcu::reclaim_list l(d, {.grace_period_interval = std::chrono::hours(1)});
  held_reader reader(d);  // the one grace period asked for cannot end meanwhile
  l.defer(&items[0].head, record);
  for (int i = 0; i < 1'000; ++i) (void)l.reclaim();
  reader.release();
  // One start_poll() in the hour: its grace period, and no other, ends.
  srcu_test::watchdog dog("the one grace period the list asked for");
  while (d.grace_periods_completed() < 1) std::this_thread::sleep_for(100us);
  std::this_thread::sleep_for(20ms);  // any further one asked for would have ended by now
  EXPECT_EQ(d.grace_periods_completed(), 1u) << "the list asked more than once per interval";
}

TEST(ReclaimList, PendingIsExactInsideAFunction) {
  srcu::domain d({.name = "reclaim-pending"});
  struct seen_item {
    srcu::callback_head head;
    srcu::reclaim_list* list = nullptr;
    std::vector<std::size_t>* seen = nullptr;
  };
  std::vector<std::size_t> seen;
  std::vector<seen_item> items(8);
  srcu::reclaim_list l(d);
  for (seen_item& it : items) {
    it.list = &l;
    it.seen = &seen;
    l.defer(&it.head, [](srcu::callback_head* h) {
      seen_item* self = srcu::owner_of(h, &seen_item::head);
      self->seen->push_back(self->list->pending());
    });
  }
  l.flush();
  EXPECT_EQ(seen, std::vector<std::size_t>({7, 6, 5, 4, 3, 2, 1, 0}));
}

// A function that defers another object onto the same list, once.
struct chained {
  srcu::callback_head head;
  srcu::reclaim_list* list = nullptr;
  chained* next_generation = nullptr;
  std::atomic<int>* runs = nullptr;
};

void run_chained(srcu::callback_head* h) {
  chained* c = srcu::owner_of(h, &chained::head);
  c->runs->fetch_add(1);
  if (c->next_generation != nullptr) {
    c->list->defer(&c->next_generation->head, run_chained);
    EXPECT_EQ(c->list->reclaim(), 0u) << "a nested reclaim() runs nothing";
  }
}

TEST(ReclaimList, AFunctionMayDeferOntoItsOwnList) {
  srcu::domain d({.name = "reclaim-nested"});
  std::atomic<int> runs{0};
  std::vector<chained> first(200), second(200);
  srcu::reclaim_list l(d, {.batch_size = 4});
  for (std::size_t i = 0; i < first.size(); ++i) {
    first[i] = chained{{}, &l, &second[i], &runs};
    second[i] = chained{{}, &l, nullptr, &runs};
  }
  for (chained& c : first) l.defer(&c.head, run_chained);
  l.flush();  // both generations: what the functions defer goes round again
  EXPECT_EQ(runs.load(), 400);
  EXPECT_EQ(l.pending(), 0u);
}

TEST(ReclaimList, AnObjectMayBeDeferredAgainAfterItsFunctionRan) {
  srcu::domain d({.name = "reclaim-again"});
  std::vector<int> order;
  std::vector<item> items = numbered(1, order);
  srcu::reclaim_list l(d);
  for (int round = 0; round < 3; ++round) {
    l.defer(&items[0].head, record);
    l.flush();
  }
  EXPECT_EQ(order, std::vector<int>({0, 0, 0}));
}

// Readers on other threads never see an object its function has retired:
// the function poisons it before freeing (ASan reports the free itself).
struct guarded_obj {
  static constexpr std::uint64_t kLive = 0x11feull, kDead = 0xdeadull;
  srcu::callback_head head;
  std::atomic<std::uint64_t> magic{kLive};
};

TEST(ReclaimList, ReadersNeverSeeAReclaimedObject) {
  using obj = guarded_obj;
  srcu::domain d({.name = "reclaim-readers"});
  std::atomic<obj*> current{new obj};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {  // with the updater, oversubscribes 2 CPUs
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        srcu::read_guard g(d);
        const obj* o = current.load(std::memory_order_acquire);
        if (o->magic.load(std::memory_order_relaxed) != obj::kLive) bad.fetch_add(1);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  {
    watchdog dog("the updater's 100,000 replacements");
    srcu::reclaim_list l(d, {.batch_size = 16, .grace_period_interval = 100us});
    for (int i = 0; i < 100'000; ++i) {
      obj* old = current.exchange(new obj, std::memory_order_acq_rel);
      l.defer(&old->head, [](srcu::callback_head* h) {
        obj* o = srcu::owner_of(h, &obj::head);
        o->magic.store(obj::kDead, std::memory_order_relaxed);
        delete o;
      });
      if ((i & 1023) == 0) std::this_thread::yield();
    }
  }  // the list flushes
  stop.store(true);
  for (std::thread& t : readers) t.join();
  delete current.load();
  EXPECT_EQ(bad.load(), 0u) << "a reader saw an object after its function ran";
  EXPECT_GT(reads.load(), 0u);
}

class ReclaimListMisuse : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(ReclaimListMisuse, NullHeadOrFunctionAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "rl-null"});
        srcu::reclaim_list l(d);
        l.defer(nullptr, [](srcu::callback_head*) {});
      },
      "domain 'rl-null': reclaim_list::defer\\(\\) with a null callback_head or a null function");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "rl-nullfn"});
        srcu::reclaim_list l(d);
        srcu::callback_head h;
        l.defer(&h, nullptr);
      },
      "domain 'rl-nullfn': reclaim_list::defer\\(\\) with a null callback_head");
}

TEST_F(ReclaimListMisuse, DeferredTwiceAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "rl-twice"});
        srcu::reclaim_list l(d);
        srcu::callback_head h;
        l.defer(&h, [](srcu::callback_head*) {});
        l.defer(&h, [](srcu::callback_head*) {});
      },
      "domain 'rl-twice': reclaim_list::defer\\(\\): this callback_head is already queued");
}

TEST_F(ReclaimListMisuse, FlushFromItsOwnFunctionAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "rl-flush"});
        static srcu::reclaim_list* list = nullptr;
        srcu::reclaim_list l(d);
        list = &l;
        srcu::callback_head h;
        l.defer(&h, [](srcu::callback_head*) { list->flush(); });
        l.flush();
      },
      "domain 'rl-flush': reclaim_list::flush\\(\\) or its destructor from inside one of its own");
}

TEST_F(ReclaimListMisuse, DestroyingTheDomainBeforeItsListAborts) {
  EXPECT_DEATH(
      {
        auto d = std::make_unique<srcu::domain>(srcu::domain_options{.name = "rl-order"});
        srcu::reclaim_list l(*d);
        d.reset();
      },
      "domain 'rl-order': destroyed while 1 srcu::reclaim_list object\\(s\\) on it still exist");
}

TEST(ReclaimList, ADomainGoesOnceItsListsAreGone) {
  auto d = std::make_unique<srcu::domain>(srcu::domain_options{.name = "reclaim-order"});
  std::vector<int> order;
  std::vector<item> items = numbered(3, order);
  {
    srcu::reclaim_list a(*d), b(*d);
    a.defer(&items[0].head, record);
    b.defer(&items[1].head, record);
  }
  srcu::reclaim_list c(*d);
  c.defer(&items[2].head, record);
  c.flush();
  // c still exists: destroying the domain now would abort (the death test
  // above); after c, it goes.
  EXPECT_EQ(order.size(), 3u);
}

TEST_F(ReclaimListMisuse, ZeroBatchSizeOrSlotsAborts) {
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "rl-zero"});
        srcu::reclaim_list l(d, {.batch_size = 0});
      },
      "domain 'rl-zero': reclaim_list: reclaim_list_options::batch_size and max_batches");
  EXPECT_DEATH(
      {
        srcu::domain d({.name = "rl-zero-slots"});
        srcu::reclaim_list l(d, {.max_batches = 0});
      },
      "domain 'rl-zero-slots': reclaim_list: reclaim_list_options::batch_size and max_batches");
}

}  // namespace
