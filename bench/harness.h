// The comparison harness: every row of srcu_bench is written once, here, as a
// template over a *library adapter*, and each library's translation unit
// (lib_*.cc) registers the rows its adapter supports. One TU per library
// keeps each library's read side inline, as its users compile it, and keeps
// liburcu's flavour headers (whose macros collide) apart.
//
// An adapter is a struct with:
//   static constexpr const char* name;   // the library's label in row names
//   struct reader_scope;   // RAII: what a thread holds while it reads
//                          // (urcu: registration; ck: a record)
//   struct updater_scope;  // RAII: what a thread holds while it only updates
//   struct read_guard;     // RAII: one read-side critical section
// and optionally:
//   static void quiescent();           // QSBR: announce a quiescent state
//   static void synchronize();         // wait for a grace period
//   using head = ...;                  // intrusive deferral node
//   static void defer(head*, void (*)(head*));  // call_rcu-style deferral
//   static void after_defer();         // ck: poll to dispatch (ck has no thread)
//   static void barrier();             // every deferred callback has run
//   struct write_guard;                // lock-based libraries: exclusive lock
//   static std::uint64_t grace_periods();  // grace periods completed
//   static std::uint64_t heavy_barriers(); // heavy barriers issued (srcu)
//   struct domain_object { void touch(); };  // one more domain/epoch object
//
// Row names are "<group>/<library>[/<parameter>:<value>]...", which
// bench/report.py splits. Every worker thread is pinned the same way for
// every library (thread i on the i-th allowed CPU, round robin; see pinned).

#pragma once

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "map.h"

namespace bench {

using clock_type = std::chrono::steady_clock;

inline double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// --- Machine ------------------------------------------------------------------

// The CPUs this process may run on, in order (taskset narrows them).
const std::vector<int>& allowed_cpus();
inline int cpu_count() { return static_cast<int>(allowed_cpus().size()); }

// Thread counts for the scaling rows: 1, 2, 4, ... up to 2 x CPUs, plus
// every count up to 4 and the CPU count itself (so a 2-CPU machine gets
// 1, 2, 3, 4: 3 and 4 oversubscribe it). SRCU_BENCH_THREADS=1,2,4,...
// replaces them, for these rows and the hash map's.
std::vector<int> scaling_thread_counts();

// Pins the calling thread to allowed_cpus()[index % CPUs] for its lifetime
// and restores the previous mask after. SRCU_BENCH_PIN=0 disables pinning.
class pinned {
 public:
  explicit pinned(int index);
  ~pinned();
  pinned(const pinned&) = delete;
  pinned& operator=(const pinned&) = delete;

 private:
  bool active_ = false;
  cpu_set_t saved_{};
};

// Resident set size of the process, in bytes (/proc/self/statm).
std::int64_t resident_bytes();
// Bytes this thread has asked for through operator new (every variant;
// srcu_bench replaces them, harness.cc). srcu, the ck adapter and the maps
// allocate only through new; urcu's registration allocates nothing. Unlike
// the RSS this sees an allocation that lands on a page already touched, and
// unlike mallinfo2 it is not skewed by malloc's own per-thread bookkeeping
// (a thread's first malloc(32) after a malloc/free warm-up grew mallinfo2's
// in-use bytes by ~740 B on glibc 2.36).
std::int64_t thread_new_bytes();
// Threads of the process (/proc/self/status).
int process_threads();
// VmHWM (peak RSS) in MiB; reset_peak_rss() sets it back to the current RSS.
double peak_rss_mib();
bool reset_peak_rss();

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double p);

// Appends one line {"name": ..., "unit": "us", "n": ..., "q": [[p, v]...]}
// to the --samples_out file (when given): 201 evenly spaced quantiles of
// the sorted samples, for report.py's CDF plots. Google Benchmark also runs
// a row with fewer iterations while it sizes the run: report.py keeps the
// lines whose n is a reported iteration count.
void write_quantiles(const std::string& name, const std::vector<double>& sorted_us);

// --- What every critical section reads ------------------------------------------

struct payload {
  int value = 42;
};
extern std::atomic<const payload*> g_current;

inline void read_shared() {
  const payload* p = g_current.load(std::memory_order_acquire);
  benchmark::DoNotOptimize(p->value);
}

// --- Adapter traits ------------------------------------------------------------------

// The scope of a library that needs no per-thread registration.
struct no_scope {};

// Work a library does once before any row runs (start its threads), so
// that no timed loop pays for it. Each lib_*.cc adds its own; main runs them.
void add_warmer(void (*fn)());
void run_warmers();

template <class Lib>
concept has_quiescent = requires { Lib::quiescent(); };
template <class Lib>
concept has_synchronize = requires { Lib::synchronize(); };
template <class Lib>
concept has_defer = requires(typename Lib::head* h) {
  Lib::defer(h, static_cast<void (*)(typename Lib::head*)>(nullptr));
  Lib::barrier();
};
template <class Lib>
concept has_write_guard = requires { typename Lib::write_guard; };
template <class Lib>
concept has_grace_periods = requires { { Lib::grace_periods() } -> std::convertible_to<std::uint64_t>; };
template <class Lib>
concept has_heavy_barriers = requires { { Lib::heavy_barriers() } -> std::convertible_to<std::uint64_t>; };
template <class Lib>
concept has_domain_object = requires(typename Lib::domain_object& d) { d.touch(); };

// Per-thread static TLS the library has in every thread of the process,
// used or not (memory rows report it beside what is allocated).
template <class Lib>
constexpr double static_tls_bytes() {
  if constexpr (requires { Lib::static_tls_bytes; }) {
    return static_cast<double>(Lib::static_tls_bytes);
  } else {
    return 0;
  }
}

// QSBR readers must say, now and then, that they hold no reference; every
// other library ignores this. Called once per operation, outside sections.
template <class Lib>
inline void maybe_quiesce(std::uint64_t n) {
  if constexpr (has_quiescent<Lib>) {
    if ((n & 1023) == 0) Lib::quiescent();
  }
}

template <class Lib>
inline void after_defer() {
  if constexpr (requires { Lib::after_defer(); }) Lib::after_defer();
}

// =====================================================================================
// 1. Reader pair: lock + read of shared data + unlock, 1..2 x CPUs threads.
//    items_per_second is the pairs of all threads per wall second.
// =====================================================================================

template <class Lib>
void reader_pair(benchmark::State& state) {
  pinned pin(state.thread_index());
  [[maybe_unused]] typename Lib::reader_scope scope;
  { typename Lib::read_guard warm; }  // any first-use registration happens here
  std::uint64_t n = 0;
  for (auto _ : state) {
    {
      typename Lib::read_guard g;
      read_shared();
    }
    maybe_quiesce<Lib>(++n);
  }
  state.SetItemsProcessed(state.iterations());
}

// =====================================================================================
// 2. Grace-period latency: each call timed on its own, with 0, 1 or CPUs - 1
//    threads spinning in read sections of the same library. Counters:
//    p50_us, p99_us, max_us; quantiles go to the samples file.
// =====================================================================================

template <class Lib>
class reader_spinners {
 public:
  explicit reader_spinners(int count) {
    std::latch running(count);
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, i, &running] {
        pinned pin(i + 1);  // the caller is on CPU 0
        [[maybe_unused]] typename Lib::reader_scope scope;
        { typename Lib::read_guard warm; }
        running.count_down();
        std::uint64_t n = 0;
        while (!stop_.load(std::memory_order_relaxed)) {
          {
            typename Lib::read_guard g;
            read_shared();
          }
          maybe_quiesce<Lib>(++n);
        }
      });
    }
    running.wait();
  }
  ~reader_spinners() {
    stop_.store(true, std::memory_order_relaxed);
    for (std::thread& t : threads_) t.join();
  }
  reader_spinners(const reader_spinners&) = delete;
  reader_spinners& operator=(const reader_spinners&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

template <class Lib, class Sync>
void sync_latency(benchmark::State& state, const std::string& row, Sync sync) {
  pinned pin(0);
  std::vector<double> samples_us;
  samples_us.reserve(1 << 16);
  {
    reader_spinners<Lib> spinners(static_cast<int>(state.range(0)));
    [[maybe_unused]] typename Lib::updater_scope scope;
    for (auto _ : state) {
      const auto t0 = clock_type::now();
      sync();
      const auto t1 = clock_type::now();
      samples_us.push_back(seconds_between(t0, t1) * 1e6);
    }
  }
  std::sort(samples_us.begin(), samples_us.end());
  state.counters["p50_us"] = percentile(samples_us, 0.50);
  state.counters["p99_us"] = percentile(samples_us, 0.99);
  state.counters["max_us"] = samples_us.empty() ? 0 : samples_us.back();
  write_quantiles(row + "/readers:" + std::to_string(state.range(0)), samples_us);
}

// =====================================================================================
// 3. Concurrent updaters: k threads each calling synchronize kCallsPerUpdater
//    times, with 0 or 1 thread spinning in read sections of the same library
//    (as in sync_latency); manual time = wall time from the start signal to
//    the last return.
//    us_per_call is per thread; gp_per_call (libraries that count) is the
//    grace periods run per synchronize call: below 1 means calls shared them;
//    hb_per_call (srcu) the heavy barriers (membarrier calls) per call.
// =====================================================================================

inline constexpr int kCallsPerUpdater = 500;

// Where caller i of concurrent_updaters runs: on the CPUs the spinning
// readers leave free (reader_spinners holds allowed CPUs 1..readers), so no
// caller preempts a reader inside its section; on 2 CPUs every caller
// shares CPU 0. (Pinned among the readers, a caller that woke up preempted
// the reader mid-section and every grace period waited out the caller's
// time slice: the row measured the scheduler, not grace-period sharing.)
inline int updater_cpu_index(int caller, int readers) {
  if (readers == 0) return caller;
  const int free_cpus = cpu_count() - readers;  // CPU 0 and readers+1..
  if (free_cpus <= 1) return 0;
  const int k = caller % free_cpus;
  return k == 0 ? 0 : readers + k;
}

template <class Lib, class Sync>
void concurrent_updaters(benchmark::State& state, Sync sync) {
  const auto callers = static_cast<int>(state.range(0));
  std::optional<reader_spinners<Lib>> spinners;
  if constexpr (requires { typename Lib::read_guard; }) {
    if (state.range(1) > 0) spinners.emplace(static_cast<int>(state.range(1)));
  }
  std::uint64_t gp_before = 0;
  if constexpr (has_grace_periods<Lib>) gp_before = Lib::grace_periods();
  [[maybe_unused]] std::uint64_t hb_before = 0;
  if constexpr (has_heavy_barriers<Lib>) hb_before = Lib::heavy_barriers();
  double total_seconds = 0;
  for (auto _ : state) {
    // Each thread times its own calls, after the start signal and before
    // its scope is torn down; the run is the first start to the last end.
    // The signal is a flag the threads spin on (yielding), not a futex, so
    // no wake-up is timed either.
    std::latch ready(callers);
    std::atomic<bool> go{false};
    std::vector<clock_type::time_point> starts(static_cast<std::size_t>(callers));
    std::vector<clock_type::time_point> ends(static_cast<std::size_t>(callers));
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i) {
      threads.emplace_back([&, i] {
        pinned pin(updater_cpu_index(i, static_cast<int>(state.range(1))));
        [[maybe_unused]] typename Lib::updater_scope scope;
        ready.count_down();
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        starts[static_cast<std::size_t>(i)] = clock_type::now();
        for (int n = 0; n < kCallsPerUpdater; ++n) sync();
        ends[static_cast<std::size_t>(i)] = clock_type::now();
      });
    }
    ready.wait();
    go.store(true, std::memory_order_release);
    for (std::thread& t : threads) t.join();
    const double s = seconds_between(*std::min_element(starts.begin(), starts.end()),
                                     *std::max_element(ends.begin(), ends.end()));
    state.SetIterationTime(s);
    total_seconds += s;
  }
  state.counters["us_per_call"] = total_seconds * 1e6 / kCallsPerUpdater /
                                  static_cast<double>(state.iterations());
  [[maybe_unused]] const double calls =
      static_cast<double>(state.iterations()) * callers * kCallsPerUpdater;
  if constexpr (has_grace_periods<Lib>) {
    state.counters["gp_per_call"] = static_cast<double>(Lib::grace_periods() - gp_before) / calls;
  }
  if constexpr (has_heavy_barriers<Lib>) {
    state.counters["hb_per_call"] = static_cast<double>(Lib::heavy_barriers() - hb_before) / calls;
  }
}

// =====================================================================================
// 4. Deferral: enqueue cost, 1,000,000 callbacks end to end, peak RSS.
// =====================================================================================

// What the counted callbacks do: one relaxed increment.
extern std::atomic<std::uint64_t> g_callbacks_run;

template <class Lib>
void count_callback(typename Lib::head* /*head*/) {
  g_callbacks_run.fetch_add(1, std::memory_order_relaxed);
}

// The deferral rows run in updater scopes: an updater only enqueues. It
// matters for urcu-qsbr, whose reader scope is an online thread: a thread
// of a Threads(2) row that finished its loop waits inside Google
// Benchmark while still online, and the other thread's barrier() waits for
// it for ever (the first full run hung there).
//
// 4a. Enqueue. Heads are pre-allocated per thread (up to 2^20) and reused;
// when the pool runs out the timer pauses for a barrier, so no head is
// queued twice. ns_per_call is this thread's own time per call, averaged
// over threads (Google Benchmark's time is wall / all threads' calls).
inline constexpr benchmark::IterationCount kMaxPoolHeads = benchmark::IterationCount{1} << 20;

template <class Lib>
void defer_enqueue(benchmark::State& state) {
  using head = typename Lib::head;
  pinned pin(state.thread_index());
  [[maybe_unused]] typename Lib::updater_scope scope;  // an updater only enqueues (above)
  const auto pool_size = static_cast<std::size_t>(
      std::clamp<benchmark::IterationCount>(state.max_iterations, 1, kMaxPoolHeads));
  std::vector<head> heads(pool_size);  // value-initialized: touched before timing
  std::size_t next = 0;
  double timed_seconds = 0;
  auto stretch_start = clock_type::now();
  for (auto _ : state) {
    if (next == pool_size) {
      timed_seconds += seconds_between(stretch_start, clock_type::now());
      state.PauseTiming();
      Lib::barrier();
      next = 0;
      state.ResumeTiming();
      stretch_start = clock_type::now();
    }
    Lib::defer(&heads[next++], &count_callback<Lib>);
    after_defer<Lib>();
  }
  timed_seconds += seconds_between(stretch_start, clock_type::now());
  Lib::barrier();  // untimed: every head has run before the pool is freed
  state.counters["ns_per_call"] = benchmark::Counter(
      timed_seconds * 1e9 / static_cast<double>(state.iterations()), benchmark::Counter::kAvgThreads);
}

// 4b. End to end: 1,000,000 deferrals from one thread, first enqueue until
// barrier() returns. Counters: callbacks_per_s; peak_rss_MiB (VmHWM, reset
// at the start of the row when the kernel allows: hwm_reset = 1) and
// peak_growth_MiB, the peak over the row's starting RSS: the heads (16 MiB
// for 16-byte heads) plus whatever the library allocated on top.
inline constexpr std::size_t kEndToEndCallbacks = 1'000'000;

bool trim_and_reset_peak();  // malloc_trim + reset_peak_rss

template <class Lib>
void defer_end_to_end(benchmark::State& state) {
  using head = typename Lib::head;
  pinned pin(0);
  [[maybe_unused]] typename Lib::updater_scope scope;  // an updater only enqueues (above)
  Lib::barrier();  // nothing of an earlier row still queued
  const bool hwm_reset = trim_and_reset_peak();
  const std::int64_t rss_start = resident_bytes();
  std::vector<head> heads(kEndToEndCallbacks);
  double total_seconds = 0;
  for (auto _ : state) {
    const std::uint64_t before = g_callbacks_run.load(std::memory_order_relaxed);
    const auto t0 = clock_type::now();
    for (head& h : heads) {
      Lib::defer(&h, &count_callback<Lib>);
      after_defer<Lib>();
    }
    Lib::barrier();
    const double s = seconds_between(t0, clock_type::now());
    state.SetIterationTime(s);
    total_seconds += s;
    if (g_callbacks_run.load(std::memory_order_relaxed) - before != kEndToEndCallbacks) {
      state.SkipWithError("barrier() returned before every callback had run");
      return;
    }
  }
  state.counters["callbacks_per_s"] = static_cast<double>(kEndToEndCallbacks) *
                                      static_cast<double>(state.iterations()) / total_seconds;
  state.counters["peak_rss_MiB"] = peak_rss_mib();
  state.counters["peak_growth_MiB"] = peak_rss_mib() - static_cast<double>(rss_start) / (1 << 20);
  state.counters["hwm_reset"] = hwm_reset ? 1 : 0;
}

// 4c. Latency from defer to invocation, one callback at a time on an idle
// system, waited for with a blocking wait (not barrier(), which would hurry
// srcu's callback_delay). Libraries whose callbacks only run when the caller
// polls (ck) have no such row. Counters p50_us, p99_us.
extern std::atomic<std::uint32_t> g_invoked;  // bumped by stamp_callback
extern std::atomic<clock_type::rep> g_invoked_at;

template <class Lib>
void stamp_callback(typename Lib::head* /*head*/) {
  g_invoked_at.store(clock_type::now().time_since_epoch().count(), std::memory_order_relaxed);
  g_invoked.fetch_add(1, std::memory_order_release);
  g_invoked.notify_all();
}

template <class Lib>
void defer_latency(benchmark::State& state) {
  pinned pin(0);
  [[maybe_unused]] typename Lib::updater_scope scope;
  Lib::barrier();
  typename Lib::head head{};
  std::vector<double> samples_us;
  for (auto _ : state) {
    const std::uint32_t before = g_invoked.load(std::memory_order_acquire);
    const auto t0 = clock_type::now();
    Lib::defer(&head, &stamp_callback<Lib>);
    std::uint32_t now = before;
    while ((now = g_invoked.load(std::memory_order_acquire)) == before) g_invoked.wait(now);
    const clock_type::time_point invoked{
        clock_type::duration(g_invoked_at.load(std::memory_order_relaxed))};
    const double s = seconds_between(t0, invoked);
    state.SetIterationTime(s);
    samples_us.push_back(s * 1e6);
  }
  std::sort(samples_us.begin(), samples_us.end());
  state.counters["p50_us"] = percentile(samples_us, 0.50);
  state.counters["p99_us"] = percentile(samples_us, 0.99);
}

// =====================================================================================
// 5. Read-mostly hash map: 100,000 keys, every thread mixing lookups with
//    replacements (update_permille of its operations). Replacements are
//    serialized, so there is one writer at a time: deferral libraries take
//    a mutex, publish a copy of the entry and defer the old one's free;
//    lock-based libraries take their lock exclusively and free at once. The
//    shared_ptr variant is its own map (lib_std.cc) with the same loop.
// =====================================================================================

// kMapKeys, kMapBuckets, bucket_of(), rng and rcu_map: bench/map.h.

// Runs `threads` pinned threads for `seconds`, each doing ops on the map:
// lookup_op(key) -> bool found, or replace_op(key, version). Returns the
// operations done and sets *missed to lookups that found no entry or a value
// not made for their key (must be 0: a miss means a broken map or a freed
// entry read).
struct workload_result {
  std::uint64_t ops = 0;
  std::uint64_t bad = 0;
  double seconds = 0;
};

template <class ThreadScope, class Quiesce, class Lookup, class Replace>
workload_result run_map_workload(int threads, double seconds, int update_permille, Quiesce quiesce,
                                 Lookup lookup_op, Replace replace_op) {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0}, bad{0};
  std::latch ready(threads + 1);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      pinned pin(i);
      [[maybe_unused]] ThreadScope scope;
      rng r{0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(i + 1)};
      std::uint64_t my_ops = 0, my_bad = 0;
      ready.arrive_and_wait();
      while (!stop.load(std::memory_order_relaxed)) {
        for (int batch = 0; batch < 64; ++batch) {
          const std::uint64_t x = r.next();
          const std::uint64_t key = (x >> 10) % kMapKeys;
          if (static_cast<int>(x % 1000) < update_permille) {
            replace_op(key, ++my_ops);
          } else {
            std::uint64_t value = 0;
            if (!lookup_op(key, value) || (value & ((1ULL << kVersionShift) - 1)) != key) ++my_bad;
            ++my_ops;
          }
          quiesce();
        }
      }
      ops.fetch_add(my_ops, std::memory_order_relaxed);
      bad.fetch_add(my_bad, std::memory_order_relaxed);
    });
  }
  ready.arrive_and_wait();
  const auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true, std::memory_order_relaxed);
  for (std::thread& t : pool) t.join();
  return {ops.load(), bad.load(), seconds_between(t0, clock_type::now())};
}

inline constexpr double kMapSeconds = 0.25;

// Reports ops_per_s; fails the row if any lookup went wrong.
void report_map_workload(benchmark::State& state, const workload_result& r);

template <class Lib>
void hash_map(benchmark::State& state) {
  const auto threads = static_cast<int>(state.range(0));
  const auto update_permille = static_cast<int>(state.range(1));
  std::optional<rcu_map<Lib>> map;
  map.emplace();
  std::mutex writer;  // deferral libraries: the one-writer lock
  std::uint64_t gp_before = 0;
  if constexpr (has_grace_periods<Lib>) gp_before = Lib::grace_periods();
  for (auto _ : state) {
    const workload_result r = run_map_workload<typename Lib::reader_scope>(
        threads, kMapSeconds, update_permille,
        [] {
          if constexpr (has_quiescent<Lib>) Lib::quiescent();
        },
        [&map](std::uint64_t key, std::uint64_t& value) {
          typename Lib::read_guard g;
          return map->lookup(key, value);
        },
        [&map, &writer](std::uint64_t key, std::uint64_t version) {
          if constexpr (has_write_guard<Lib>) {
            typename Lib::write_guard g;
            delete map->replace(key, version);
          } else {
            typename rcu_map<Lib>::node* old;
            {
              std::lock_guard<std::mutex> g(writer);
              old = map->replace(key, version);
            }
            Lib::defer(&old->head, &rcu_map<Lib>::free_node);
            after_defer<Lib>();
          }
        });
    state.SetIterationTime(r.seconds);
    report_map_workload(state, r);
    if constexpr (has_grace_periods<Lib>) {
      state.counters["gp_per_s"] = static_cast<double>(Lib::grace_periods() - gp_before) / r.seconds;
    }
  }
  if constexpr (has_defer<Lib>) {
    [[maybe_unused]] typename Lib::updater_scope scope;
    Lib::barrier();  // every replaced node freed before the map goes
  }
}

// =====================================================================================
// 6. Memory: per domain (100,000 domain objects, each used once by this
//    thread) and per reader thread (1,000 threads each entering one read
//    section: of a domain object of its own where the library has them, so
//    the 1,000 slots or records do not stay behind in the domain the other
//    rows scan). bytes_per_*: bytes asked of operator new (thread_new_bytes);
//    rss_per_*: resident growth (page-granular: an allocation on an already
//    touched page shows as 0); static_tls_bytes: TLS every thread has anyway. The threads exist
//    and have touched malloc before the "before" readings.
// =====================================================================================

inline constexpr int kMemoryDomains = 100'000;
inline constexpr int kMemoryThreads = 1'000;

template <class Lib>
struct domain_object_or_none_t {
  using type = no_scope;
};
template <class Lib>
  requires has_domain_object<Lib>
struct domain_object_or_none_t<Lib> {
  using type = typename Lib::domain_object;
};
template <class Lib>
using domain_object_or_none = typename domain_object_or_none_t<Lib>::type;

template <class Lib>
void memory_per_domain(benchmark::State& state) {
  for (auto _ : state) {
    trim_and_reset_peak();
    const int threads_before = process_threads();
    std::vector<std::unique_ptr<typename Lib::domain_object>> domains;
    domains.reserve(kMemoryDomains);  // the vector itself is not counted
    const std::int64_t before = resident_bytes();
    const std::int64_t new_before = thread_new_bytes();
    std::int64_t at_creation = 0;  // the constructors' share, before the first use
    for (int i = 0; i < kMemoryDomains; ++i) {
      const std::int64_t made_before = thread_new_bytes();
      domains.push_back(std::make_unique<typename Lib::domain_object>());
      at_creation += thread_new_bytes() - made_before;
      domains.back()->touch();
    }
    const std::int64_t new_after = thread_new_bytes();
    state.counters["bytes_at_creation"] = static_cast<double>(at_creation) / kMemoryDomains;
    const std::int64_t after = resident_bytes();
    state.counters["bytes_per_domain"] =
        static_cast<double>(new_after - new_before) / kMemoryDomains;
    state.counters["rss_per_domain"] = static_cast<double>(after - before) / kMemoryDomains;
    state.counters["threads_added"] = process_threads() - threads_before;
    state.counters["rss_total_MiB"] = static_cast<double>(after - before) / (1 << 20);
  }
}

template <class Lib>
void memory_per_thread(benchmark::State& state) {
  for (auto _ : state) {
    trim_and_reset_peak();
    std::optional<domain_object_or_none<Lib>> own;  // before "before": not counted
    own.emplace();
    std::barrier sync(kMemoryThreads + 1);
    std::atomic<std::int64_t> requested{0};  // operator new bytes, all threads
    std::vector<std::thread> threads;
    for (int i = 0; i < kMemoryThreads; ++i) {
      threads.emplace_back([&sync, &own, &requested] {
        std::free(std::malloc(64));  // this thread's malloc arena exists before "before"
        sync.arrive_and_wait();      // 1: measure before
        sync.arrive_and_wait();      // 2: use the library
        const std::int64_t mine = thread_new_bytes();
        if constexpr (has_domain_object<Lib>) {
          own->touch();  // the domain object's own registration, nothing global
          requested.fetch_add(thread_new_bytes() - mine);
          sync.arrive_and_wait();  // 3: measure after
          sync.arrive_and_wait();  // 4: done
        } else {
          [[maybe_unused]] typename Lib::reader_scope scope;
          { typename Lib::read_guard g; }
          requested.fetch_add(thread_new_bytes() - mine);
          sync.arrive_and_wait();  // 3: measure after
          sync.arrive_and_wait();  // 4: done
        }
      });
    }
    sync.arrive_and_wait();
    const std::int64_t before = resident_bytes();
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    const std::int64_t after = resident_bytes();
    sync.arrive_and_wait();
    for (std::thread& t : threads) t.join();
    state.counters["bytes_per_thread"] =
        static_cast<double>(requested.load()) / kMemoryThreads;
    state.counters["rss_per_thread"] = static_cast<double>(after - before) / kMemoryThreads;
    state.counters["static_tls_bytes"] = static_tls_bytes<Lib>();
  }
}

// =====================================================================================
// Registration
// =====================================================================================

std::string row_name(const char* group, const char* library);

// The sync_latency and concurrent_updaters rows for one way of waiting
// (srcu registers synchronize_expedited a second time as "srcu-expedited").
template <class Lib, class Sync>
void register_sync_rows(const char* name, Sync sync) {
  const std::string row = row_name("sync_latency", name);
  auto* latency = benchmark::RegisterBenchmark(
      row.c_str(), [row, sync](benchmark::State& state) { sync_latency<Lib>(state, row, sync); });
  // Readers on CPUs 1.. (the updater has CPU 0 to itself): 0, 1 and
  // CPUs - 1 spinning readers; never oversubscribed.
  latency->ArgName("readers")->Arg(0);
  if (cpu_count() > 1) latency->Arg(1);
  if (cpu_count() > 2) latency->Arg(cpu_count() - 1);
  latency->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(
      row_name("concurrent_updaters", name).c_str(),
      [sync](benchmark::State& state) { concurrent_updaters<Lib>(state, sync); })
      ->ArgNames({"callers", "readers"})->Args({1, 0})->Args({2, 0})->Args({8, 0})
      ->Args({1, 1})->Args({8, 1})->UseManualTime()->Unit(benchmark::kMillisecond);
}

// defer_enqueue (1 and 2 threads) and defer_1M rows, and defer_latency
// where a library thread runs the callbacks (not ck, whose caller
// dispatches) and the caller wants it.
template <class Lib>
void register_defer_rows(const char* name, bool latency_row = true) {
  benchmark::RegisterBenchmark(row_name("defer_enqueue", name).c_str(), defer_enqueue<Lib>)
      ->Threads(1)->Threads(2)->UseRealTime();
  benchmark::RegisterBenchmark(row_name("defer_1M", name).c_str(), defer_end_to_end<Lib>)
      ->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);
  if constexpr (!requires { Lib::after_defer(); }) {
    if (!latency_row) return;
    benchmark::RegisterBenchmark(row_name("defer_latency", name).c_str(), defer_latency<Lib>)
        ->Iterations(100)->UseManualTime()->Unit(benchmark::kMicrosecond);
  }
}

// hash_map rows: threads 1, CPUs, 2 x CPUs (or SRCU_BENCH_THREADS); updates 1% and 10%.
void register_map_rows(const char* name, void (*fn)(benchmark::State&));

// Registers every row the adapter supports, under `Lib::name`.
template <class Lib>
void register_library() {
  const char* name = Lib::name;
  auto* pair = benchmark::RegisterBenchmark(row_name("reader_pair", name).c_str(), reader_pair<Lib>);
  for (int t : scaling_thread_counts()) pair->Threads(t);
  pair->UseRealTime();

  if constexpr (has_synchronize<Lib>) {
    register_sync_rows<Lib>(name, [] { Lib::synchronize(); });
  }
  if constexpr (has_defer<Lib>) register_defer_rows<Lib>(name);
  if constexpr (has_defer<Lib> || has_write_guard<Lib>) {
    register_map_rows(name, hash_map<Lib>);
  }
  if constexpr (has_domain_object<Lib>) {
    benchmark::RegisterBenchmark(row_name("memory_per_domain", name).c_str(), memory_per_domain<Lib>)
        ->Iterations(1)->Repetitions(1)->Unit(benchmark::kMillisecond);
  }
  if constexpr (has_synchronize<Lib>) {  // the libraries with per-thread state
    benchmark::RegisterBenchmark(row_name("memory_per_thread", name).c_str(),
                                 memory_per_thread<Lib>)
        ->Iterations(1)->Repetitions(1)->Unit(benchmark::kMillisecond);
  }
}

}  // namespace bench
