#include "fault_injection.h"

#if SRCU_FAULT_INJECTION

#include <sched.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace srcu::detail {

namespace {

// Probability as a threshold on a 32-bit random value, read from the
// environment on first use, cached as threshold + 1 (0: not read yet). Not a
// function-local static: the first injection point may be on a library
// thread while another thread forks, and a guard left "in progress" in the
// child blocks its every injection point (domain.cc, full_table()). Reading
// it twice is harmless.
constinit std::atomic<std::uint64_t> g_threshold_plus_one{0};

std::uint32_t threshold() noexcept {
  std::uint64_t cached = g_threshold_plus_one.load(std::memory_order_relaxed);
  if (cached == 0) {
    const char* v = std::getenv("SRCU_FAULT_PROB");
    const double p = v != nullptr ? std::atof(v) : 0.0;
    const std::uint32_t t = p <= 0.0   ? 0
                            : p >= 1.0 ? ~std::uint32_t{0}
                                       : static_cast<std::uint32_t>(p * 4294967295.0);
    cached = std::uint64_t{t} + 1;
    g_threshold_plus_one.store(cached, std::memory_order_relaxed);
  }
  return static_cast<std::uint32_t>(cached - 1);
}

constinit thread_local std::uint64_t tls_rng = 0;

std::uint32_t next_random() noexcept {
  std::uint64_t x = tls_rng;
  if (x == 0) x = reinterpret_cast<std::uintptr_t>(&tls_rng) | 1;  // per-thread seed
  x ^= x << 13;  // xorshift64: async-signal-safe, no state shared between threads
  x ^= x >> 7;
  x ^= x << 17;
  tls_rng = x;
  return static_cast<std::uint32_t>(x >> 32);
}

}  // namespace

// Labels name the window being widened; they show in a debugger's stack.
void inject_fault(const char* point) noexcept {
  (void)point;
  const std::uint32_t t = threshold();
  if (t == 0 || next_random() > t) return;
  if (next_random() & 1) {
    sched_yield();
  } else {
    const timespec ts{0, static_cast<long>(next_random() % 50'000)};  // < 50 us
    nanosleep(&ts, nullptr);
  }
}

}  // namespace srcu::detail

#endif  // SRCU_FAULT_INJECTION
