// Helpers shared by the srcu tests.
#pragma once

#include <srcu/srcu.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

namespace srcu_test {

using namespace std::chrono_literals;

// A latch a test thread can wait on; set once.
class flag {
 public:
  void set() { value_.store(true, std::memory_order_release); }
  bool is_set() const { return value_.load(std::memory_order_acquire); }
  // Waits until set; returns false after `limit` (a hang guard, not a timing
  // assertion: limits are minutes-scale generous).
  bool wait(std::chrono::milliseconds limit = 60s) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!is_set()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(100us);
    }
    return true;
  }

 private:
  std::atomic<bool> value_{false};
};

// A thread that holds a read_guard on `d` from construction (returns once it
// is inside) until release() (or destruction).
class held_reader {
 public:
  explicit held_reader(srcu::domain& d) : thread_([this, &d] {
    srcu::read_guard g(d);
    inside_.set();
    (void)release_.wait();
  }) {
    (void)inside_.wait();
  }
  ~held_reader() { release(); }
  void release() {
    release_.set();
    if (thread_.joinable()) thread_.join();
  }

 private:
  flag inside_, release_;
  std::thread thread_;
};

// Scales stress durations: SRCU_STRESS_SECONDS (default `fallback`).
inline double stress_seconds(double fallback) {
  const char* v = std::getenv("SRCU_STRESS_SECONDS");
  return v != nullptr ? std::atof(v) : fallback;
}

}  // namespace srcu_test
