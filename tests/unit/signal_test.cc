// Signal handlers: the signal-safe reader and start_poll() inside a handler,
// while the interrupted thread is inside a reader of the same domain.
#include <pthread.h>
#include <signal.h>

#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <thread>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using srcu_test::flag;

srcu::domain* g_domain = nullptr;
std::atomic<int> g_handled{0};
srcu::poll_cookie g_cookie;

void handler(int) {
  const srcu::read_token t = g_domain->read_lock_signal_safe();
  g_cookie = g_domain->start_poll();
  g_domain->read_unlock_signal_safe(t);
  g_handled.fetch_add(1, std::memory_order_relaxed);
}

// Sends SIGUSR1 to `t` until the handler has run once more than `before`.
// ThreadSanitizer defers signals to its own safe points and was seen to drop
// one now and then, so a single pthread_kill is not relied upon.
void signal_until_handled(std::thread& t, int before) {
  while (g_handled.load() == before) {
    pthread_kill(t.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(5ms);
  }
}

class Signals : public ::testing::Test {
 protected:
  void SetUp() override {
    struct sigaction sa {};
    sa.sa_handler = &handler;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &old_), 0);
    g_handled = 0;
  }
  void TearDown() override { sigaction(SIGUSR1, &old_, nullptr); }
  struct sigaction old_ {};
};

TEST_F(Signals, HandlerTakesSignalSafeReaderInsideSameDomainReader) {
  srcu::domain d({.name = "signals"});
  g_domain = &d;
  flag inside, signalled;
  std::thread t([&] {
    const srcu::read_token tok = d.read_lock();
    inside.set();
    ASSERT_TRUE(signalled.wait());  // the handler ran while this reader was inside
    d.read_unlock(tok);
  });
  ASSERT_TRUE(inside.wait());
  signal_until_handled(t, 0);
  signalled.set();
  t.join();
  EXPECT_GE(g_handled.load(), 1);
  d.synchronize();
  EXPECT_TRUE(d.poll(g_cookie));
}

TEST_F(Signals, HandlerOnThreadThatNeverUsedTheDomain) {
  srcu::domain d;
  g_domain = &d;
  flag ready, stop;
  std::thread t([&] {
    ready.set();
    ASSERT_TRUE(stop.wait());
  });
  ASSERT_TRUE(ready.wait());
  signal_until_handled(t, 0);
  stop.set();
  t.join();
  d.synchronize();
  EXPECT_EQ(d.reader_slots(), 0u);
}

TEST_F(Signals, StormWhileReadersAndUpdatersRun) {
  srcu::domain d;
  g_domain = &d;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const srcu::read_token t = d.read_lock();
      const srcu::read_token s = d.read_lock_signal_safe();
      d.read_unlock_signal_safe(s);
      d.read_unlock(t);
    }
  });
  std::thread updater([&] {
    while (!stop.load(std::memory_order_relaxed)) d.synchronize_expedited();
  });
  for (int i = 0; i < 2000; ++i) {
    pthread_kill(reader.native_handle(), SIGUSR1);
    if (i % 2) pthread_kill(updater.native_handle(), SIGUSR1);
    if (i % 64 == 0) std::this_thread::sleep_for(100us);
  }
  stop = true;
  reader.join();
  updater.join();
  EXPECT_GT(g_handled.load(), 0);
  d.synchronize();
}

}  // namespace
