// srcu_bench — srcu side by side with liburcu (memb flavour, inline read
// side), Concurrency Kit's ck_epoch and the standard library, in one run.
//
// Three groups of rows (docs/benchmarks.md has the targets and a table):
//  1. Reader pair cost: one lock + one unlock around a read of shared data.
//     Google Benchmark's own time for Threads(2) is the wall time divided by
//     the pairs of both threads; the counter pair_ns is the per-thread cost.
//  2. Grace-period latency of one synchronize call, with no other thread
//     running and with one thread spinning in read sections of the same
//     library (spinning_reader:1). Counters p50_us and p99_us per call.
//  3. Concurrent updaters: k threads each calling synchronize 1000 times;
//     the time is the wall time of one run (manual time), x_vs_1_caller the
//     ratio to the 1-caller row of the same library run just before.
//  4. Callbacks: call() enqueue cost from 1 and 2 threads (counter
//     ns_per_call, per thread), end-to-end throughput of 1,000,000 callbacks
//     from the first enqueue until barrier() returns (callbacks_per_s,
//     peak_rss_MiB), and the latency from call() to the callback's
//     invocation on an idle system (p50_us, p99_us). Baseline: urcu-memb
//     call_rcu()/rcu_barrier() from registered threads.
//
// Baselines are compiled in when CMake finds them (SRCU_BENCH_HAVE_URCU,
// SRCU_BENCH_HAVE_CK); without them their rows are simply absent.

#if SRCU_BENCH_HAVE_URCU
#define _LGPL_SOURCE  // inline urcu_memb_read_lock/unlock, as liburcu users get them
#include <urcu/urcu-memb.h>
#endif
#if SRCU_BENCH_HAVE_CK
// ck's headers are C: ck_stack.h (pulled in by ck_epoch.h) assigns the
// void* that ck_pr_fas_ptr() returns to a typed pointer, which C++ rejects.
// While ck_epoch.h is read, wrap that call's result in a type that converts
// to any object pointer; nothing else changes. The headers declare no C
// linkage themselves.
extern "C" {
#include <ck_pr.h>
}
namespace srcu_bench_ck {
struct any_pointer {
  void* p;
  template <class T>
  operator T*() const noexcept {  // NOLINT(google-explicit-constructor): the point
    return static_cast<T*>(p);
  }
};
}  // namespace srcu_bench_ck
#define ck_pr_fas_ptr(target, value) (srcu_bench_ck::any_pointer{(ck_pr_fas_ptr)(target, value)})
extern "C" {
#include <ck_epoch.h>
}
#undef ck_pr_fas_ptr
#endif

#include <malloc.h>  // malloc_trim (glibc)

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "srcu/srcu.h"

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// --- What every critical section reads ------------------------------------

struct payload {
  int value = 42;
};
payload g_payload;
std::atomic<const payload*> g_current{&g_payload};

// The body of every read-side critical section: an rcu_dereference-style
// load and a read through it. DoNotOptimize (an asm with a memory clobber)
// keeps the compiler from hoisting it out of the loop or deleting it.
inline void read_shared() {
  const payload* p = g_current.load(std::memory_order_acquire);
  benchmark::DoNotOptimize(p->value);
}

// --- srcu domains (leaked: no destruction order to get wrong at exit) -------

srcu::domain& reader_domain() {
  static srcu::domain& d = *new srcu::domain({.name = "bench-readers"});
  return d;
}
srcu::domain& sync_domain() {
  static srcu::domain& d = *new srcu::domain({.name = "bench-sync"});
  return d;
}
srcu::domain& updaters_domain() {
  static srcu::domain& d = *new srcu::domain({.name = "bench-updaters"});
  return d;
}

// --- ck_epoch records ---------------------------------------------------------

#if SRCU_BENCH_HAVE_CK
ck_epoch_t& ck_global() {
  static ck_epoch_t& e = *[] {
    auto* p = new ck_epoch_t;
    ck_epoch_init(p);
    return p;
  }();
  return e;
}

// One record per thread while it uses ck_epoch; recycled across the
// benchmark's short-lived threads (ck never frees a registered record).
class ck_record {
 public:
  ck_record() {
    record_ = ck_epoch_recycle(&ck_global(), nullptr);
    if (record_ == nullptr) {
      record_ = new ck_epoch_record_t;  // aligned new: the type is cache-line aligned
      ck_epoch_register(&ck_global(), record_, nullptr);
    }
  }
  ~ck_record() { ck_epoch_unregister(record_); }
  ck_record(const ck_record&) = delete;
  ck_record& operator=(const ck_record&) = delete;
  ck_epoch_record_t* get() const { return record_; }

 private:
  ck_epoch_record_t* record_;
};
#endif

#if SRCU_BENCH_HAVE_URCU
// Registers the calling thread with urcu-memb for its lifetime.
class urcu_registration {
 public:
  urcu_registration() { urcu_memb_register_thread(); }
  ~urcu_registration() { urcu_memb_unregister_thread(); }
  urcu_registration(const urcu_registration&) = delete;
  urcu_registration& operator=(const urcu_registration&) = delete;
};
#endif

// =============================================================================
// 1. Reader pair cost
// =============================================================================

// Runs the timed loop and adds pair_ns: this thread's own nanoseconds per
// pair, averaged over threads (Google Benchmark sums counters over threads).
template <class Pair>
void run_pairs(benchmark::State& state, Pair pair) {
  const auto start = clock_type::now();
  for (auto _ : state) pair();
  const auto stop = clock_type::now();
  const double ns = seconds_between(start, stop) * 1e9 / static_cast<double>(state.iterations());
  state.counters["pair_ns"] = benchmark::Counter(ns, benchmark::Counter::kAvgThreads);
}

void BM_SrcuReadLockPair(benchmark::State& state) {
  srcu::domain& dom = reader_domain();
  dom.read_unlock(dom.read_lock());  // take this thread's slot before timing
  run_pairs(state, [&dom] {
    const srcu::read_token t = dom.read_lock();
    read_shared();
    dom.read_unlock(t);
  });
}
BENCHMARK(BM_SrcuReadLockPair)->Threads(1)->Threads(2)->UseRealTime();

#if SRCU_BENCH_HAVE_URCU
void BM_UrcuMembReadLockPair(benchmark::State& state) {
  urcu_registration reg;
  run_pairs(state, [] {
    urcu_memb_read_lock();
    read_shared();
    urcu_memb_read_unlock();
  });
}
BENCHMARK(BM_UrcuMembReadLockPair)->Threads(1)->Threads(2)->UseRealTime();
#endif

#if SRCU_BENCH_HAVE_CK
void BM_CkEpochBeginEndPair(benchmark::State& state) {
  ck_record rec;
  ck_epoch_record_t* r = rec.get();
  run_pairs(state, [r] {
    ck_epoch_begin(r, nullptr);
    read_shared();
    ck_epoch_end(r, nullptr);
  });
}
BENCHMARK(BM_CkEpochBeginEndPair)->Threads(1)->Threads(2)->UseRealTime();
#endif

void BM_SharedMutexPair(benchmark::State& state) {
  static std::shared_mutex mutex;
  run_pairs(state, [] {
    mutex.lock_shared();
    read_shared();
    mutex.unlock_shared();
  });
}
BENCHMARK(BM_SharedMutexPair)->Threads(1)->Threads(2)->UseRealTime();

void BM_SrcuSignalSafePair(benchmark::State& state) {
  srcu::domain& dom = reader_domain();
  run_pairs(state, [&dom] {
    const srcu::read_token t = dom.read_lock_signal_safe();
    read_shared();
    dom.read_unlock_signal_safe(t);
  });
}
BENCHMARK(BM_SrcuSignalSafePair)->Threads(1)->Threads(2)->UseRealTime();

void BM_SrcuDownUpPair(benchmark::State& state) {
  srcu::domain& dom = reader_domain();
  run_pairs(state, [&dom] {
    const srcu::read_token t = dom.down_read();
    read_shared();
    dom.up_read(t);  // same thread here: this row measures cost only
  });
}
BENCHMARK(BM_SrcuDownUpPair)->Threads(1)->Threads(2)->UseRealTime();

// Reference for the signal-safe and down/up flavours: the cheapest possible
// "one RMW in, one RMW out" on a counter nobody else touches.
struct alignas(64) padded_counter {
  std::atomic<std::uint64_t> value{0};
};
constexpr int kMaxReaderThreads = 64;
padded_counter g_thread_counters[kMaxReaderThreads];

void BM_AtomicFetchAddSubPair(benchmark::State& state) {
  std::atomic<std::uint64_t>& c = g_thread_counters[state.thread_index() % kMaxReaderThreads].value;
  run_pairs(state, [&c] {
    c.fetch_add(1, std::memory_order_relaxed);  // lock xadd on x86 whatever the order
    read_shared();
    c.fetch_sub(1, std::memory_order_relaxed);
  });
}
BENCHMARK(BM_AtomicFetchAddSubPair)->Threads(1)->Threads(2)->UseRealTime();

// =============================================================================
// 2. Grace-period latency, idle and with a spinning reader
// =============================================================================

// A thread that loops read-side critical sections of one library until
// stopped. The constructor returns once the thread is inside its loop.
class reader_spinner {
 public:
  template <class Loop>
  explicit reader_spinner(Loop loop) {
    thread_ = std::thread([this, loop] { loop(running_, stop_); });
    while (!running_.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  ~reader_spinner() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
  }
  reader_spinner(const reader_spinner&) = delete;
  reader_spinner& operator=(const reader_spinner&) = delete;

 private:
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void srcu_spin(std::atomic<bool>& running, const std::atomic<bool>& stop) {
  srcu::domain& dom = sync_domain();
  dom.read_unlock(dom.read_lock());
  running.store(true, std::memory_order_release);
  while (!stop.load(std::memory_order_relaxed)) {
    const srcu::read_token t = dom.read_lock();
    read_shared();
    dom.read_unlock(t);
  }
}

#if SRCU_BENCH_HAVE_URCU
void urcu_spin(std::atomic<bool>& running, const std::atomic<bool>& stop) {
  urcu_registration reg;
  running.store(true, std::memory_order_release);
  while (!stop.load(std::memory_order_relaxed)) {
    urcu_memb_read_lock();
    read_shared();
    urcu_memb_read_unlock();
  }
}
#endif

#if SRCU_BENCH_HAVE_CK
void ck_spin(std::atomic<bool>& running, const std::atomic<bool>& stop) {
  ck_record rec;
  running.store(true, std::memory_order_release);
  while (!stop.load(std::memory_order_relaxed)) {
    ck_epoch_begin(rec.get(), nullptr);
    read_shared();
    ck_epoch_end(rec.get(), nullptr);
  }
}
#endif

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

// Times each call on its own; Google Benchmark's time is the mean.
template <class Spin, class Sync>
void run_latency(benchmark::State& state, Spin spin, Sync sync) {
  std::vector<double> samples_us;
  samples_us.reserve(1 << 16);
  {
    std::optional<reader_spinner> spinner;
    if (state.range(0) != 0) spinner.emplace(spin);
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
}

void BM_SrcuSynchronize(benchmark::State& state) {
  srcu::domain& dom = sync_domain();
  run_latency(state, srcu_spin, [&dom] { dom.synchronize(); });
}
BENCHMARK(BM_SrcuSynchronize)
    ->ArgName("spinning_reader")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_SrcuSynchronizeExpedited(benchmark::State& state) {
  srcu::domain& dom = sync_domain();
  run_latency(state, srcu_spin, [&dom] { dom.synchronize_expedited(); });
}
BENCHMARK(BM_SrcuSynchronizeExpedited)
    ->ArgName("spinning_reader")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);

#if SRCU_BENCH_HAVE_URCU
// The caller is registered (outside any read section), as the threads of a
// liburcu program are: with no thread registered at all, synchronize_rcu()
// finds an empty registry and returns without a grace period's work.
void BM_UrcuMembSynchronize(benchmark::State& state) {
  urcu_registration reg;
  run_latency(state, urcu_spin, [] { urcu_memb_synchronize_rcu(); });
}
BENCHMARK(BM_UrcuMembSynchronize)
    ->ArgName("spinning_reader")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
#endif

#if SRCU_BENCH_HAVE_CK
void BM_CkEpochSynchronize(benchmark::State& state) {
  ck_record rec;
  ck_epoch_record_t* r = rec.get();
  run_latency(state, ck_spin, [r] { ck_epoch_synchronize(r); });
}
BENCHMARK(BM_CkEpochSynchronize)
    ->ArgName("spinning_reader")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
#endif

// =============================================================================
// 3. Concurrent updaters
// =============================================================================

constexpr int kCallsPerUpdater = 1000;

// Wall time of the 1-caller row, per library, for x_vs_1_caller.
enum library { kSrcu, kUrcuMemb, kLibraryCount };
double g_one_caller_seconds[kLibraryCount] = {};

// What an updater thread holds while it runs (urcu: its registration).
struct no_thread_scope {};

// Each iteration: `callers` threads, started together, each calling
// `sync` kCallsPerUpdater times inside a ThreadScope; the iteration's time
// is the wall time from the start signal until the last thread has finished.
template <class ThreadScope, class Sync>
void run_updaters(benchmark::State& state, library lib, Sync sync) {
  const auto callers = static_cast<int>(state.range(0));
  double total_seconds = 0;
  for (auto _ : state) {
    std::latch ready(callers);
    std::latch go(1);
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(callers));
    for (int i = 0; i < callers; ++i) {
      threads.emplace_back([&] {
        [[maybe_unused]] ThreadScope scope;
        ready.count_down();
        go.wait();
        for (int n = 0; n < kCallsPerUpdater; ++n) sync();
      });
    }
    ready.wait();
    const auto t0 = clock_type::now();
    go.count_down();
    for (std::thread& t : threads) t.join();
    const double s = seconds_between(t0, clock_type::now());
    state.SetIterationTime(s);
    total_seconds += s;
  }
  const double mean = total_seconds / static_cast<double>(state.iterations());
  state.counters["us_per_call"] = mean * 1e6 / kCallsPerUpdater;
  if (callers == 1) {
    g_one_caller_seconds[lib] = mean;
  } else if (g_one_caller_seconds[lib] > 0) {
    state.counters["x_vs_1_caller"] = mean / g_one_caller_seconds[lib];
  }
}

void BM_SrcuConcurrentSynchronize(benchmark::State& state) {
  srcu::domain& dom = updaters_domain();
  const std::uint64_t gp_before = dom.grace_periods_completed();
  run_updaters<no_thread_scope>(state, kSrcu, [&dom] { dom.synchronize(); });
  const std::uint64_t gps = dom.grace_periods_completed() - gp_before;
  state.counters["gp_per_run"] =
      static_cast<double>(gps) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_SrcuConcurrentSynchronize)
    ->ArgName("callers")->Arg(1)->Arg(2)->Arg(8)->UseManualTime()->Unit(benchmark::kMillisecond);

#if SRCU_BENCH_HAVE_URCU
// Updaters registered, as in BM_UrcuMembSynchronize.
void BM_UrcuMembConcurrentSynchronize(benchmark::State& state) {
  run_updaters<urcu_registration>(state, kUrcuMemb, [] { urcu_memb_synchronize_rcu(); });
}
BENCHMARK(BM_UrcuMembConcurrentSynchronize)
    ->ArgName("callers")->Arg(1)->Arg(2)->Arg(8)->UseManualTime()->Unit(benchmark::kMillisecond);
#endif

// =============================================================================
// 4. Callbacks: enqueue cost, end-to-end throughput, invocation latency
// =============================================================================

srcu::domain& callback_domain() {
  static srcu::domain& d = *new srcu::domain({.name = "bench-callbacks"});
  return d;
}

// What the callbacks of rows 4a and 4b do: one relaxed increment of a
// shared counter (the callback threads of both libraries run them).
std::atomic<std::uint64_t> g_callbacks_run{0};

void srcu_count_callback(srcu::callback_head* /*head*/) {
  g_callbacks_run.fetch_add(1, std::memory_order_relaxed);
}

#if SRCU_BENCH_HAVE_URCU
void urcu_count_callback(rcu_head* /*head*/) {
  g_callbacks_run.fetch_add(1, std::memory_order_relaxed);
}
#endif

// --- 4a. Enqueue cost ------------------------------------------------------

// Heads are pre-allocated per thread and reused. When the pool runs out the
// timer pauses for a barrier: every callback queued so far has then run, so
// no head is queued again before its callback ran. The pool holds up to 2^20
// heads (16 MiB), so a run pauses rarely, and both libraries touch the same
// amount of memory per call.
constexpr benchmark::IterationCount kMaxPoolHeads = benchmark::IterationCount{1} << 20;

// Adds ns_per_call: this thread's own nanoseconds per call over the timed
// stretches (steady_clock), averaged over threads.
template <class Head, class Enqueue, class Barrier>
void run_enqueue(benchmark::State& state, Enqueue enqueue, Barrier barrier) {
  const auto pool_size =
      static_cast<std::size_t>(std::clamp<benchmark::IterationCount>(state.max_iterations, 1,
                                                                      kMaxPoolHeads));
  std::vector<Head> heads(pool_size);  // value-initialized: touched before timing
  std::size_t next = 0;
  double timed_seconds = 0;
  auto stretch_start = clock_type::now();
  for (auto _ : state) {
    if (next == pool_size) {
      timed_seconds += seconds_between(stretch_start, clock_type::now());
      state.PauseTiming();
      barrier();
      next = 0;
      state.ResumeTiming();
      stretch_start = clock_type::now();
    }
    enqueue(&heads[next++]);
  }
  timed_seconds += seconds_between(stretch_start, clock_type::now());
  barrier();  // untimed: every head has run before the pool is freed
  const double ns = timed_seconds * 1e9 / static_cast<double>(state.iterations());
  state.counters["ns_per_call"] = benchmark::Counter(ns, benchmark::Counter::kAvgThreads);
}

void BM_SrcuCall(benchmark::State& state) {
  srcu::domain& dom = callback_domain();
  run_enqueue<srcu::callback_head>(
      state, [&dom](srcu::callback_head* h) { dom.call(h, &srcu_count_callback); },
      [&dom] { dom.barrier(); });
}
BENCHMARK(BM_SrcuCall)->Threads(1)->Threads(2)->UseRealTime();

#if SRCU_BENCH_HAVE_URCU
// call_rcu() takes urcu's read lock internally: the caller is registered.
void BM_UrcuMembCallRcu(benchmark::State& state) {
  urcu_registration reg;
  run_enqueue<rcu_head>(
      state, [](rcu_head* h) { urcu_memb_call_rcu(h, &urcu_count_callback); },
      [] { urcu_memb_barrier(); });
}
BENCHMARK(BM_UrcuMembCallRcu)->Threads(1)->Threads(2)->UseRealTime();
#endif

// --- 4b. End to end: 1,000,000 callbacks, first enqueue to barrier() return ---

constexpr std::size_t kEndToEndCallbacks = 1'000'000;

// A "Field:   1234 kB" line of /proc/self/status, in MiB; -1 if absent.
double proc_status_mib(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  const std::size_t len = std::strlen(field);
  double kib = -1;
  char line[256];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      kib = std::strtod(line + len + 1, nullptr);
      break;
    }
  }
  std::fclose(f);
  return kib < 0 ? -1 : kib / 1024.0;
}

// Sets the process's VmHWM back to its current RSS (writing "5" to
// /proc/self/clear_refs, Linux 4.0+), so that a row's peak is its own and
// not the largest of every row run before it. False if the kernel refused.
bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool written = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && written;  // fclose flushes: the write happens here
}

// Counters: callbacks_per_s over all iterations; peak_rss_MiB (VmHWM) and
// rss_start_MiB (VmRSS before the 16 MiB of heads were allocated) of the
// whole process; hwm_reset 1 if VmHWM was reset at the start of the row
// (else peak_rss_MiB is the peak since the process started).
template <class Head, class Enqueue, class Barrier>
void run_end_to_end(benchmark::State& state, Enqueue enqueue, Barrier barrier) {
  barrier();  // nothing of an earlier row still queued
  malloc_trim(0);  // hand back what earlier rows freed, so rss_start is this row's start
  const bool hwm_reset = reset_peak_rss();
  const double rss_start = proc_status_mib("VmRSS");
  std::vector<Head> heads(kEndToEndCallbacks);
  double total_seconds = 0;
  for (auto _ : state) {
    const std::uint64_t before = g_callbacks_run.load(std::memory_order_relaxed);
    const auto t0 = clock_type::now();
    for (Head& h : heads) enqueue(&h);
    barrier();
    const double s = seconds_between(t0, clock_type::now());
    state.SetIterationTime(s);
    total_seconds += s;
    if (g_callbacks_run.load(std::memory_order_relaxed) - before != kEndToEndCallbacks) {
      state.SkipWithError("barrier() returned before every callback had run");
      break;
    }
  }
  state.counters["callbacks_per_s"] =
      static_cast<double>(kEndToEndCallbacks) * static_cast<double>(state.iterations()) /
      total_seconds;
  state.counters["peak_rss_MiB"] = proc_status_mib("VmHWM");
  state.counters["rss_start_MiB"] = rss_start;
  state.counters["hwm_reset"] = hwm_reset ? 1 : 0;
}

void BM_SrcuCallbacksEndToEnd(benchmark::State& state) {
  srcu::domain& dom = callback_domain();
  run_end_to_end<srcu::callback_head>(
      state, [&dom](srcu::callback_head* h) { dom.call(h, &srcu_count_callback); },
      [&dom] { dom.barrier(); });
}
BENCHMARK(BM_SrcuCallbacksEndToEnd)
    ->Iterations(10)->UseManualTime()->Unit(benchmark::kMillisecond);

#if SRCU_BENCH_HAVE_URCU
void BM_UrcuMembCallbacksEndToEnd(benchmark::State& state) {
  urcu_registration reg;
  run_end_to_end<rcu_head>(
      state, [](rcu_head* h) { urcu_memb_call_rcu(h, &urcu_count_callback); },
      [] { urcu_memb_barrier(); });
}
BENCHMARK(BM_UrcuMembCallbacksEndToEnd)
    ->Iterations(10)->UseManualTime()->Unit(benchmark::kMillisecond);
#endif

// --- 4c. Latency from call() to the callback's invocation -------------------

// steady_clock when the last latency callback ran, in clock ticks.
std::atomic<clock_type::rep> g_invoked_at{0};

void stamp_invocation() {
  g_invoked_at.store(clock_type::now().time_since_epoch().count(), std::memory_order_release);
}
void srcu_stamp_callback(srcu::callback_head* /*head*/) { stamp_invocation(); }
#if SRCU_BENCH_HAVE_URCU
void urcu_stamp_callback(rcu_head* /*head*/) { stamp_invocation(); }
#endif

// One callback at a time on an otherwise idle system: each iteration
// queues it, waits with barrier(), and records call -> invocation (the
// iteration's manual time, so Time is the mean). p50_us and p99_us are
// nearest-rank percentiles of the iterations of one repetition.
template <class Head, class Enqueue, class Barrier>
void run_invocation_latency(benchmark::State& state, Enqueue enqueue, Barrier barrier) {
  barrier();
  Head head{};
  std::vector<double> samples_us;
  samples_us.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    enqueue(&head);
    barrier();  // the callback has run: head may be queued again
    const clock_type::time_point invoked{
        clock_type::duration(g_invoked_at.load(std::memory_order_acquire))};
    const double s = seconds_between(t0, invoked);
    state.SetIterationTime(s);
    samples_us.push_back(s * 1e6);
  }
  std::sort(samples_us.begin(), samples_us.end());
  state.counters["p50_us"] = percentile(samples_us, 0.50);
  state.counters["p99_us"] = percentile(samples_us, 0.99);
}

void BM_SrcuCallbackLatency(benchmark::State& state) {
  srcu::domain& dom = callback_domain();
  run_invocation_latency<srcu::callback_head>(
      state, [&dom](srcu::callback_head* h) { dom.call(h, &srcu_stamp_callback); },
      [&dom] { dom.barrier(); });
}
BENCHMARK(BM_SrcuCallbackLatency)
    ->Iterations(200)->UseManualTime()->Unit(benchmark::kMicrosecond);

#if SRCU_BENCH_HAVE_URCU
void BM_UrcuMembCallbackLatency(benchmark::State& state) {
  urcu_registration reg;
  run_invocation_latency<rcu_head>(
      state, [](rcu_head* h) { urcu_memb_call_rcu(h, &urcu_stamp_callback); },
      [] { urcu_memb_barrier(); });
}
BENCHMARK(BM_UrcuMembCallbackLatency)
    ->Iterations(200)->UseManualTime()->Unit(benchmark::kMicrosecond);
#endif

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Create the domains now, so the first domain's setup (membarrier
  // registration, engine thread) is not inside any timed loop.
  reader_domain();
  sync_domain();
  updaters_domain();
  callback_domain();
#if SRCU_BENCH_HAVE_URCU
  {
    // Start urcu's call_rcu thread now too (its first call_rcu() creates it).
    urcu_registration reg;
    rcu_head head{};
    urcu_memb_call_rcu(&head, &urcu_count_callback);
    urcu_memb_barrier();
  }
#endif
  benchmark::AddCustomContext("srcu_readers_fence",
                              srcu::detail::g_readers_fence.load() ? "real fence" : "membarrier");
#if SRCU_BENCH_HAVE_URCU
  benchmark::AddCustomContext("urcu_memb_membarrier",
                              urcu_memb_has_sys_membarrier ? "yes" : "no (smp_mb readers)");
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
