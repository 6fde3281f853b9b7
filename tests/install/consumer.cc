// Uses the installed headers and library: readers, an updater, polling.
#include <srcu/srcu.h>

#include <atomic>
#include <cstdio>
#include <thread>

int main() {
  srcu::domain d({.name = "installed"});
  std::atomic<int*> value{new int(1)};
  std::thread reader([&] {
    for (int i = 0; i < 1000; ++i) {
      srcu::read_guard g(d);
      if (*value.load(std::memory_order_acquire) <= 0) std::abort();
    }
  });
  for (int i = 2; i < 50; ++i) {
    int* old = value.exchange(new int(i));
    d.synchronize();
    delete old;
  }
  reader.join();
  const srcu::poll_cookie c = d.start_poll();
  while (!d.poll(c)) std::this_thread::yield();
  delete value.load();
  std::printf("consumer: srcu %s, %llu grace periods\n", SRCU_VERSION_STRING,
              static_cast<unsigned long long>(d.grace_periods_completed()));
  return d.grace_periods_completed() >= 49 ? 0 : 1;
}
