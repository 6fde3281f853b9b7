// This test exists for ThreadSanitizer: the reclaimed object is written
// (plainly, not atomically) after synchronize() and read (plainly) inside
// readers. TSan reports a data race unless it sees the library's ordering as
// happens-before (reader unlock -> grace period end -> the write). In every
// build it is also a correctness check: no reader may see the poison.
#include <srcu/srcu.h>

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace {

struct object {
  long value;
};
constexpr long kPoison = -1;

TEST(TsanVisibility, SynchronizeHappensBeforeReclaim) {
  srcu::domain d({.name = "tsan"});
  std::atomic<object*> current{new object{0}};
  std::atomic<bool> stop{false};
  std::atomic<long> poisoned_reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      while (!stop.load(std::memory_order_relaxed)) {
        const srcu::read_token t = r == 0   ? d.read_lock()
                                   : r == 1 ? d.read_lock_signal_safe()
                                            : d.down_read();
        const object* o = current.load(std::memory_order_acquire);
        if (o->value == kPoison) poisoned_reads.fetch_add(1);
        if (r == 0) d.read_unlock(t);
        else if (r == 1) d.read_unlock_signal_safe(t);
        else d.up_read(t);
      }
    });
  }
  for (long i = 1; i <= 300; ++i) {
    object* old = current.exchange(new object{i}, std::memory_order_acq_rel);
    switch (i % 3) {
      case 0: d.synchronize(); break;
      case 1: d.synchronize_expedited(); break;
      default: {
        const srcu::poll_cookie c = d.start_poll();
        while (!d.poll(c)) std::this_thread::yield();
      }
    }
    old->value = kPoison;  // plain write after the grace period
    delete old;
  }
  stop = true;
  for (auto& t : readers) t.join();
  delete current.load();
  EXPECT_EQ(poisoned_reads.load(), 0);
}

}  // namespace
