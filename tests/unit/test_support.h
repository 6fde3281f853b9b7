// Helpers shared by the srcu tests.
#pragma once

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

// Scales stress durations: SRCU_STRESS_SECONDS (default `fallback`).
inline double stress_seconds(double fallback) {
  const char* v = std::getenv("SRCU_STRESS_SECONDS");
  return v != nullptr ? std::atof(v) : fallback;
}

}  // namespace srcu_test
