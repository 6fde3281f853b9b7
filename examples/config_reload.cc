// A shared configuration read by many threads and replaced by one updater:
// readers never block the updater's swap, the updater reclaims each old
// configuration only after every reader that could see it has finished.
//
//   ./config_reload [seconds=2] [readers=4]
#include <srcu/srcu.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

struct config {
  std::uint64_t version;
  std::string endpoint;
  int timeout_ms;
  bool valid = true;
  ~config() { valid = false; }  // a reader that saw this after free would notice
};

srcu::domain config_domain({.name = "config"});
std::atomic<config*> current{new config{0, "https://example.invalid/v0", 100}};

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 2;
  const int readers = argc > 2 ? std::atoi(argv[2]) : 4;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0}, invalid{0};

  std::vector<std::thread> threads;
  for (int r = 0; r < readers; ++r) {
    threads.emplace_back([&] {
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        srcu::read_guard guard(config_domain);
        const config* c = current.load(std::memory_order_acquire);
        if (!c->valid || c->endpoint.empty()) invalid.fetch_add(1);
        if (n % 4096 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));  // readers may sleep
        ++n;
      }
      reads.fetch_add(n);
    });
  }

  std::uint64_t updates = 0, polled = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    ++updates;
    auto* fresh = new config{updates, "https://example.invalid/v" + std::to_string(updates),
                             100 + static_cast<int>(updates % 50)};
    config* old = current.exchange(fresh, std::memory_order_acq_rel);
    if (updates % 2 == 0) {
      config_domain.synchronize();  // wait, then reclaim
      delete old;
    } else {
      const srcu::poll_cookie cookie = config_domain.start_poll();  // or poll later
      while (!config_domain.poll(cookie)) std::this_thread::sleep_for(std::chrono::microseconds(20));
      ++polled;
      delete old;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  stop = true;
  for (auto& t : threads) t.join();
  delete current.load();

  std::printf("config_reload: %d readers, %llu reads, %llu updates (%llu reclaimed via polling), "
              "%llu grace periods, %llu invalid reads\n",
              readers, static_cast<unsigned long long>(reads.load()),
              static_cast<unsigned long long>(updates), static_cast<unsigned long long>(polled),
              static_cast<unsigned long long>(config_domain.grace_periods_completed()),
              static_cast<unsigned long long>(invalid.load()));
  return invalid.load() == 0 ? 0 : 1;
}
