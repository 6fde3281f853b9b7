#include "fault_injection.h"

#if SRCU_FAULT_INJECTION

#include <sched.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace srcu::detail {

namespace {

// Probability as a threshold on a 32-bit random value; read once.
std::uint32_t threshold() noexcept {
  static const std::uint32_t t = [] {
    const char* v = std::getenv("SRCU_FAULT_PROB");
    const double p = v != nullptr ? std::atof(v) : 0.0;
    if (p <= 0.0) return std::uint32_t{0};
    if (p >= 1.0) return ~std::uint32_t{0};
    return static_cast<std::uint32_t>(p * 4294967295.0);
  }();
  return t;
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
