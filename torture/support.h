// support.h: srcu-torture's small tools: output through write(2), time,
// random numbers, counters.

#pragma once

#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

namespace srcu_torture {

// --- Output (output.cc): write(2) only, so the fork child and a signal
// --- handler never meet a stdio lock held by a thread that does not exist.

extern char g_prefix[64];         // progress and messages
extern char g_report_prefix[64];  // report lines ("" in the parent)

void write_all(const char* s, std::size_t n) noexcept;
[[gnu::format(printf, 1, 2)]] void say(const char* fmt, ...);   // a message, after g_prefix
[[gnu::format(printf, 1, 2)]] void line(const char* fmt, ...);  // a report line, after g_report_prefix

inline unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

// "a,b,c": the names of the table entries whose bit is set in mask.
template <class Ops>
std::string list_names(unsigned mask, const Ops* ops, int count) {
  std::string s;
  for (int i = 0; i < count; ++i) {
    if (mask & (1u << i)) {
      if (!s.empty()) s += ',';
      s += ops[i].name;
    }
  }
  return s;
}

struct shared_counter;

// "name N, name N, ...": each name with its count, for report lines.
std::string named_counts(const char* const* names, const shared_counter* counts, int n);

// --- Time --------------------------------------------------------------------

inline std::int64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Sleeps until the deadline even when a signal interrupts the sleep.
inline void sleep_ns(std::int64_t ns) noexcept {
  if (ns <= 0) return;
  const std::int64_t until = now_ns() + ns;
  timespec ts{static_cast<time_t>(until / 1'000'000'000), static_cast<long>(until % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}
inline void sleep_us(std::int64_t us) noexcept { sleep_ns(us * 1000); }

inline void spin_ns(std::int64_t ns) noexcept {
  const std::int64_t until = now_ns() + ns;
  while (now_ns() < until) {
  }
}

// --- Random numbers (splitmix64; one generator per thread) --------------------

class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint32_t below(std::uint32_t n) noexcept {
    return static_cast<std::uint32_t>(((next() >> 32) * n) >> 32);
  }
  std::uint32_t between(std::uint32_t lo, std::uint32_t hi) noexcept { return lo + below(hi - lo + 1); }
  bool one_in(std::uint32_t n) noexcept { return below(n) == 0; }
  bool chance(double p) noexcept {
    return p > 0 && static_cast<double>(next() >> 11) * 0x1.0p-53 < p;
  }

 private:
  std::uint64_t state_;
};

inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b) {
  rng r(seed ^ (a * 0x100000001b3ull) ^ (b << 40));
  r.next();
  return r.next();
}

// --- Counters ----------------------------------------------------------------

// One writing thread at a time (a load and a store, no RMW); any thread reads.
struct counter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

// Any number of writers, also signal handlers (lock-free RMW).
struct shared_counter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept { value.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

}  // namespace srcu_torture
