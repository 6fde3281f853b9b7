// Conveniences a folly or liburcu user reaches for (issue 13): rcu_ptr, the
// guards for every reader flavour, in_reader(), the executor constructor,
// owner_of(), noexcept updaters, a copied domain name, a trivially copyable
// rcu_obj_base, and rcu_synchronize() running the deleters it completed
// (also from inside a callback).
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <srcu/srcu.h>
#include <srcu/srcu_c.h>  // both headers in one file: no macro clash

#include <atomic>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;
using srcu_test::watchdog;

// ---------------------------------------------------------------- rcu_ptr --

struct settings {
  int port = 80;
  int hits = 0;
};

struct counting_delete {
  std::atomic<int>* deleted;
  void operator()(settings* s) const {
    deleted->fetch_add(1);
    delete s;
  }
};

TEST(RcuPtr, StoreRetiresTheOldObjectOnlyAfterItsReadersEnd) {
  srcu::domain dom({.name = "rcu_ptr_store"});
  std::atomic<int> deleted{0};
  {
    srcu::rcu_ptr<settings, counting_delete> ptr(new settings, dom, counting_delete{&deleted});
    flag inside, release;
    std::atomic<int> seen_port{0};
    std::thread reader([&] {
      srcu::read_guard g(dom);
      settings* s = ptr.load();
      inside.set();
      (void)release.wait();
      seen_port = s->port;  // still valid: the store below retired it, not freed it
    });
    watchdog wd("the reader to enter");
    ASSERT_TRUE(inside.wait());
    auto* next = new settings;
    next->port = 8080;
    ptr.store(next);
    EXPECT_EQ(ptr.load()->port, 8080);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(deleted.load(), 0) << "retired while a reader held it";
    release.set();
    wd.rearm("the reader to finish");
    reader.join();
    EXPECT_EQ(seen_port.load(), 80);
    wd.rearm("barrier() for the retired object");
    dom.barrier();
    EXPECT_EQ(deleted.load(), 1);
  }
  dom.barrier();  // ~rcu_ptr retired the current object
  EXPECT_EQ(deleted.load(), 2);
}

TEST(RcuPtr, ExchangeHandsTheOldObjectBack) {
  srcu::domain dom({.name = "rcu_ptr_exchange"});
  srcu::rcu_ptr<settings> ptr(nullptr, dom);
  EXPECT_EQ(ptr.load(), nullptr);
  auto* a = new settings;
  EXPECT_EQ(ptr.exchange(a), nullptr);
  auto* old = ptr.exchange(new settings);
  EXPECT_EQ(old, a);
  dom.synchronize();
  delete old;
  EXPECT_EQ(&ptr.get_domain(), &dom);
}

TEST(RcuPtr, ConcurrentUpdatesLoseNothingAndReadersSeeWholeObjects) {
  srcu::domain dom({.name = "rcu_ptr_update"});
  std::atomic<int> deleted{0};
  constexpr int kWriters = 4, kUpdates = 500;
  {
    srcu::rcu_ptr<settings, counting_delete> ptr(nullptr, dom, counting_delete{&deleted});
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&] {
        while (!stop.load()) {
          srcu::read_guard g(dom);
          const settings* s = ptr.load();
          if (s != nullptr) ASSERT_EQ(s->port, 80 + s->hits);  // a whole object, never torn
        }
      });
    }
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&] {
        for (int i = 0; i < kUpdates; ++i) ptr.update([](settings& s) { ++s.hits, ++s.port; });
      });
    }
    watchdog wd("4 writers doing 500 update()s each");
    for (auto& t : writers) t.join();
    stop = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(ptr.load()->hits, kWriters * kUpdates);
    wd.rearm("barrier() for the retired copies");
    dom.barrier();
    EXPECT_EQ(deleted.load(), kWriters * kUpdates - 1);  // every copy but the current one
  }
  dom.barrier();
  EXPECT_EQ(deleted.load(), kWriters * kUpdates);
}

TEST(RcuPtr, UpdateThatThrowsPublishesNothing) {
  srcu::domain dom({.name = "rcu_ptr_throw"});
  srcu::rcu_ptr<settings> ptr(new settings, dom);
  settings* before = ptr.load();
  EXPECT_THROW(ptr.update([](settings& s) {
                 s.port = 1;
                 throw std::runtime_error("no");
               }),
               std::runtime_error);
  EXPECT_EQ(ptr.load(), before);
  EXPECT_EQ(ptr.load()->port, 80);
}

TEST(RcuPtr, DefaultDomainInThreeLines) {
  static srcu::rcu_ptr<settings> config(new settings);
  config.update([](settings& s) { s.port = 443; });
  { std::scoped_lock r(srcu::rcu_default_domain()); EXPECT_EQ(config.load()->port, 443); }
}

// ----------------------------------------------------------------- guards --

TEST(Guards, DownReadGuardMovedToAnotherThreadEndsThere) {
  srcu::domain dom({.name = "down_read_guard"});
  srcu::down_read_guard g(dom);
  EXPECT_TRUE(g.owns_section());
  flag section_over;
  std::thread worker([&, moved = std::move(g)]() mutable {
    std::this_thread::sleep_for(50ms);
    section_over.set();
    moved.unlock();  // ends on this thread
  });
  EXPECT_FALSE(g.owns_section());
  watchdog wd("synchronize() behind a down_read_guard moved to another thread");
  dom.synchronize();
  EXPECT_TRUE(section_over.is_set());
  worker.join();
}

TEST(Guards, DownReadGuardReleaseAdoptAndMoveAssign) {
  srcu::domain dom({.name = "down_read_release"});
  srcu::down_read_guard empty;
  EXPECT_FALSE(empty);
  srcu::down_read_guard a(dom);
  srcu::read_token t = a.release();  // handed out: a no longer ends it
  EXPECT_FALSE(a);
  srcu::down_read_guard adopted(dom, t);  // and adopted again
  srcu::down_read_guard b(dom);
  b = std::move(adopted);  // b's own section ends here; it now owns t's
  EXPECT_TRUE(b);
  EXPECT_FALSE(adopted);
  b.unlock();
  b.unlock();  // idempotent
  watchdog wd("synchronize() with every guard ended");
  dom.synchronize();
}

srcu::domain* g_signal_domain = nullptr;
std::atomic<int> g_signal_sections{0};
void on_usr2(int) {
  srcu::signal_safe_read_guard g(*g_signal_domain);
  g_signal_sections.fetch_add(1);
}

TEST(Guards, SignalSafeGuardInAHandler) {
  srcu::domain dom({.name = "signal_safe_guard"});
  g_signal_domain = &dom;
  struct sigaction sa {};
  sa.sa_handler = on_usr2;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR2, &sa, nullptr), 0);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(raise(SIGUSR2), 0);
  EXPECT_EQ(g_signal_sections.load(), 100);
  watchdog wd("synchronize() after 100 signal-safe sections");
  dom.synchronize();  // balanced: does not wait for ever
  signal(SIGUSR2, SIG_DFL);
}

// -------------------------------------------------------------- in_reader --

TEST(InReader, ExactForTheThreadFlavour) {
  srcu::domain a({.name = "in_reader_a"}), b({.name = "in_reader_b"});
  EXPECT_FALSE(a.in_reader());
  {
    srcu::read_guard g(a);
    EXPECT_TRUE(a.in_reader());
    EXPECT_FALSE(b.in_reader());
    {
      std::scoped_lock lk(a);  // nested lock()
      EXPECT_TRUE(a.in_reader());
    }
    EXPECT_TRUE(a.in_reader());
    bool other_thread = true;
    std::thread([&] { other_thread = a.in_reader(); }).join();
    EXPECT_FALSE(other_thread);
  }
  EXPECT_FALSE(a.in_reader());
  std::scoped_lock lk(b);
  EXPECT_TRUE(b.in_reader());
}

TEST(InReader, SharedFlavoursAreNotSeen) {
  srcu::domain d({.name = "in_reader_shared"});
  srcu::signal_safe_read_guard s(d);
  srcu::down_read_guard u(d);
  EXPECT_FALSE(d.in_reader());  // documented: no per-thread state to look at
}

// ------------------------------------------------ executor ctor, owner_of --

TEST(ExecutorConstructor, CallbacksRunOnTheGivenExecutor) {
  srcu_test::thread_executor ex;
  srcu::domain dom(ex, {.name = "executor_ctor"});
  std::atomic<bool> on_executor{false};
  dom.call([&] { on_executor = std::this_thread::get_id() == ex.thread_id(); });
  watchdog wd("barrier() on an executor domain");
  dom.barrier();
  EXPECT_TRUE(on_executor.load());
  EXPECT_GE(ex.submitted(), 1);
  EXPECT_STREQ(dom.name(), "executor_ctor");
}

struct node {
  int key = 0;
  double pad[3] = {};
  srcu::callback_head rcu;
};
std::atomic<int> g_node_key{-1};

TEST(OwnerOf, RecoversTheObjectFromItsHead) {
  node n;
  EXPECT_EQ(srcu::owner_of(&n.rcu, &node::rcu), &n);
  const srcu::callback_head* ch = &n.rcu;
  EXPECT_EQ(srcu::owner_of(ch, &node::rcu), &n);
  // The C macro and the C++ helper agree, in one file.
  EXPECT_EQ(container_of(&n.rcu, node, rcu), &n);
  srcu::domain dom({.name = "owner_of"});
  auto* heap = new node;
  heap->key = 42;
  dom.call(&heap->rcu, [](srcu::callback_head* h) {
    node* self = srcu::owner_of(h, &node::rcu);
    g_node_key = self->key;
    delete self;
  });
  dom.barrier();
  EXPECT_EQ(g_node_key.load(), 42);
}

// The C API from C++: the header is valid C++ too.
DEFINE_STATIC_SRCU(cxx_srcu);
TEST(CApiFromCxx, KernelNamesWork) {
  static node* published = nullptr;
  auto* n = new node;
  n->key = 7;
  rcu_assign_pointer(published, n);
  int idx = srcu_read_lock(&cxx_srcu);
  EXPECT_EQ(srcu_dereference(published, &cxx_srcu)->key, 7);
  srcu_read_unlock(&cxx_srcu, idx);
  rcu_assign_pointer(published, nullptr);
  synchronize_srcu(&cxx_srcu);
  delete n;
}

// ----------------------------------------------------------------- misc ----

TEST(Updaters, AreNoexcept) {
  srcu::domain d({.name = "noexcept"});
  static_assert(noexcept(d.synchronize()));
  static_assert(noexcept(d.synchronize_expedited()));
  static_assert(noexcept(d.barrier()));
  static_assert(noexcept(d.cond_synchronize(srcu::poll_cookie{})));
  static_assert(noexcept(srcu::rcu_synchronize(d)));
}

TEST(DomainName, IsCopied) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto name = std::make_unique<std::string>("a-name-longer-than-the-small-string-buffer");
  srcu::domain d({.name = name->c_str()});
  std::string(*name).swap(*name);
  name->assign(name->size(), 'x');
  name.reset();
  EXPECT_STREQ(d.name(), "a-name-longer-than-the-small-string-buffer");
  EXPECT_DEATH(
      {
        srcu::read_guard g(d);
        d.synchronize();
      },
      "a-name-longer-than-the-small-string-buffer");
}

struct plain_obj : srcu::rcu_obj_base<plain_obj> {
  int value = 0;
};
static_assert(std::is_trivially_copyable_v<plain_obj>,
              "rcu_obj_base<T> must be trivially copyable when D is ([saferecl.rcu.base])");

std::atomic<int> g_plain_deleted{0};
struct plain_delete {
  void operator()(plain_obj* p) const {
    g_plain_deleted.fetch_add(1);
    delete p;
  }
};
struct plain_obj2 : srcu::rcu_obj_base<plain_obj2, void (*)(plain_obj2*)> {
  int value = 0;
};
static_assert(std::is_trivially_copyable_v<plain_obj2>);

TEST(RcuObjBase, CopyOfARetiredObjectCanBeRetired) {
  // A domain that holds staged callbacks back for an hour (after its first
  // drain), so the original stays queued, untouched by srcu's threads, while
  // this thread copies it: the copy carries a queued node's bytes.
  srcu::domain dom({.name = "trivial_copy", .callback_delay = std::chrono::hours(1)});
  dom.call([] {});
  dom.barrier();  // the first drain is done; the next waits for the delay or a barrier
  auto* original = new plain_obj;
  original->value = 5;
  original->retire(std::default_delete<plain_obj>{}, dom);
  auto* copy = new plain_obj(*original);  // copies the queued node's bytes
  EXPECT_EQ(copy->value, 5);
  copy->retire(std::default_delete<plain_obj>{}, dom);  // no "already queued" abort
  watchdog wd("barrier() for an object and its copy");
  dom.barrier();
  EXPECT_EQ(dom.stats().callbacks_invoked, 3u);
}

// ---------------------------------------------------------- rcu_synchronize --

std::atomic<int> g_reclaimed{0};
struct reclaim_counted {
  int id;
  ~reclaim_counted() { g_reclaimed.fetch_add(1); }
};

TEST(RcuSynchronize, RunsTheDeletersRetiredBeforeIt) {
  srcu::domain dom({.name = "rcu_sync_deleters"});
  g_reclaimed = 0;
  for (int i = 0; i < 100; ++i) srcu::rcu_retire(new reclaim_counted{i}, {}, dom);
  watchdog wd("rcu_synchronize() with 100 deleters queued");
  srcu::rcu_synchronize(dom);
  EXPECT_EQ(g_reclaimed.load(), 100);
}

// From inside a callback of the same domain: deleters queued before the
// call (after this callback in the same batch, or not yet past their grace
// period) run inline, in order, before it returns.
struct inline_case {
  srcu::domain* dom;
  flag queued;  // the 50 retires below are queued (before the callback's rcu_synchronize())
  std::atomic<int> order{0};
  std::atomic<int> first_seen{-1}, second_seen{-1};
  std::atomic<int> reclaimed_when_returned{-1};
  std::atomic<bool> checked{false};
};
inline_case* g_case = nullptr;

void run_inline_case(srcu::domain& dom) {
  inline_case c;
  c.dom = &dom;
  g_case = &c;
  g_reclaimed = 0;
  dom.call([] {
    // The 50 are queued after this callback and before the rcu_synchronize()
    // below (most likely in this very batch): wait until they are.
    (void)g_case->queued.wait();
    srcu::rcu_retire(new reclaim_counted{-1}, {}, *g_case->dom);  // queued after the ones below
    srcu::rcu_synchronize(*g_case->dom);
    g_case->reclaimed_when_returned = g_reclaimed.load();
    g_case->checked = true;
  });
  for (int i = 0; i < 50; ++i) srcu::rcu_retire(new reclaim_counted{i}, {}, dom);
  c.queued.set();
  watchdog wd("the callback that calls rcu_synchronize() on its own domain");
  while (!c.checked.load()) std::this_thread::sleep_for(1ms);
  dom.barrier();
  EXPECT_EQ(c.reclaimed_when_returned.load(), 51);
  EXPECT_EQ(g_reclaimed.load(), 51);
}

TEST(RcuSynchronize, InsideItsOwnCallbackRunsThemInline) {
  srcu::domain dom({.name = "rcu_sync_inline"});
  run_inline_case(dom);
}

TEST(RcuSynchronize, InsideItsOwnCallbackOnAnExecutorThread) {
  srcu_test::thread_executor ex;
  srcu::domain dom(ex, {.name = "rcu_sync_inline_executor"});
  run_inline_case(dom);
}

// Order is kept when an inline-run deleter calls rcu_synchronize() again.
std::vector<int>* g_order = nullptr;
std::mutex g_order_mutex;
struct ordered {
  int id;
  srcu::domain* dom;
  bool nest;
  ~ordered() {
    if (nest) srcu::rcu_synchronize(*dom);
    std::lock_guard lk(g_order_mutex);
    g_order->push_back(id);
  }
};

TEST(RcuSynchronize, NestedInlineRunsKeepQueueingOrder) {
  srcu::domain dom({.name = "rcu_sync_nested"});
  std::vector<int> order;
  g_order = &order;
  flag done, queued;
  dom.call([&] {
    (void)queued.wait();  // all 20 are queued behind this callback
    srcu::rcu_synchronize(dom);
    done.set();
  });
  for (int i = 0; i < 20; ++i) srcu::rcu_retire(new ordered{i, &dom, i == 5}, {}, dom);
  queued.set();
  watchdog wd("nested rcu_synchronize() inside deleters");
  ASSERT_TRUE(done.wait());
  dom.barrier();
  std::vector<int> expected;
  // Deleter 5 synchronizes first (running 6..19 inline), then records itself.
  for (int i = 0; i < 5; ++i) expected.push_back(i);
  for (int i = 6; i < 20; ++i) expected.push_back(i);
  expected.push_back(5);
  EXPECT_EQ(order, expected);
}

}  // namespace
