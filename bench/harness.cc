// The harness's out-of-line pieces: machine queries, pinning, memory
// readings, the samples file, row names and the hash-map rows' registration.

#include "harness.h"

#include <malloc.h>  // malloc_trim (glibc)
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace bench {

std::atomic<const payload*> g_current{new payload};
std::atomic<std::uint64_t> g_callbacks_run{0};
std::atomic<std::uint32_t> g_invoked{0};
std::atomic<clock_type::rep> g_invoked_at{0};

const std::vector<int>& allowed_cpus() {
  static const std::vector<int> cpus = [] {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) out.push_back(c);
      }
    }
    if (out.empty()) out.push_back(0);
    return out;
  }();
  return cpus;
}

namespace {
// SRCU_BENCH_THREADS=1,2,4,8,16 replaces the thread counts of the scaling
// rows (reader pair and hash map); empty when unset or unreadable.
std::vector<int> thread_counts_from_env() {
  std::vector<int> counts;
  const char* v = std::getenv("SRCU_BENCH_THREADS");
  if (v == nullptr) return counts;
  for (const char* p = v; *p != '\0';) {
    char* end = nullptr;
    const long t = std::strtol(p, &end, 10);
    if (end == p || t < 1 || t > 1024) {
      std::fprintf(stderr, "srcu_bench: SRCU_BENCH_THREADS=%s: want counts like 1,2,4\n", v);
      std::exit(2);
    }
    counts.push_back(static_cast<int>(t));
    p = *end == ',' ? end + 1 : end;
  }
  return counts;
}
}  // namespace

std::vector<int> scaling_thread_counts() {
  if (auto counts = thread_counts_from_env(); !counts.empty()) return counts;
  const int n = cpu_count();
  std::vector<int> counts;
  for (int t = 1; t <= 2 * n; t *= 2) counts.push_back(t);
  for (int t = 1; t <= std::min(4, 2 * n); ++t) counts.push_back(t);
  counts.push_back(n);
  std::sort(counts.begin(), counts.end());
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

namespace {
bool pinning_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SRCU_BENCH_PIN");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}
}  // namespace

pinned::pinned(int index) {
  if (!pinning_enabled()) return;
  if (pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_) != 0) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(allowed_cpus()[static_cast<std::size_t>(index) % allowed_cpus().size()], &one);
  active_ = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
}

pinned::~pinned() {
  if (active_) pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
}

std::int64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

namespace {
constinit thread_local std::int64_t t_new_bytes = 0;

void* counted_alloc(std::size_t n, std::size_t align) {
  t_new_bytes += static_cast<std::int64_t>(n);
  if (n == 0) n = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

std::int64_t thread_new_bytes() { return t_new_bytes; }

}  // namespace bench

// The counting operator new (every variant; the matching deletes free).
void* operator new(std::size_t n) { return bench::counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return bench::counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return bench::counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return bench::counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace bench {

namespace {
// A "Field:   1234 kB" line of /proc/self/status, as a number; -1 if absent.
double proc_status(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  const std::size_t len = std::strlen(field);
  double value = -1;
  char line[256];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      value = std::strtod(line + len + 1, nullptr);
      break;
    }
  }
  std::fclose(f);
  return value;
}
}  // namespace

int process_threads() { return static_cast<int>(proc_status("Threads")); }

double peak_rss_mib() {
  const double kib = proc_status("VmHWM");
  return kib < 0 ? -1 : kib / 1024.0;
}

// Writing "5" to /proc/self/clear_refs (Linux 4.0+) sets VmHWM back to the
// current RSS, so a row's peak is its own and not the largest of any row
// run before it.
bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool written = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && written;  // fclose flushes: the write happens here
}

bool trim_and_reset_peak() {
  malloc_trim(0);  // hand back what earlier rows freed
  return reset_peak_rss();
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::FILE* g_samples = nullptr;  // set by main from --samples_out

void write_quantiles(const std::string& name, const std::vector<double>& sorted_us) {
  if (g_samples == nullptr || sorted_us.empty()) return;
  std::fprintf(g_samples, "{\"name\": \"%s\", \"unit\": \"us\", \"n\": %zu, \"q\": [", name.c_str(),
               sorted_us.size());
  constexpr int kPoints = 200;
  for (int i = 0; i <= kPoints; ++i) {
    const double p = static_cast<double>(i) / kPoints;
    const double v = i == 0 ? sorted_us.front() : percentile(sorted_us, p);
    std::fprintf(g_samples, "%s[%.4f, %.3f]", i == 0 ? "" : ", ", p, v);
  }
  std::fprintf(g_samples, "]}\n");
  std::fflush(g_samples);
}

void report_map_workload(benchmark::State& state, const workload_result& r) {
  if (r.bad != 0) {
    state.SkipWithError("a lookup found no entry, or an entry made for another key");
    return;
  }
  state.counters["ops_per_s"] = static_cast<double>(r.ops) / r.seconds;
}

namespace {
std::vector<void (*)()>& warmers() {
  static std::vector<void (*)()> fns;
  return fns;
}
}  // namespace

void add_warmer(void (*fn)()) { warmers().push_back(fn); }

void run_warmers() {
  for (void (*fn)() : warmers()) fn();
}

std::string row_name(const char* group, const char* library) {
  return std::string(group) + "/" + library;
}

void register_map_rows(const char* name, void (*fn)(benchmark::State&)) {
  auto* rows = benchmark::RegisterBenchmark(row_name("hash_map", name).c_str(), fn);
  rows->ArgNames({"threads", "update_permille"});
  std::vector<int> threads = thread_counts_from_env();
  if (threads.empty()) threads = {1, cpu_count(), 2 * cpu_count()};
  threads.erase(std::unique(threads.begin(), threads.end()), threads.end());
  for (int t : threads) {
    for (int permille : {10, 100}) rows->Args({t, permille});
  }
  rows->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  // The noisiest rows (each repetition builds its map anew, so its memory
  // layout differs) may get more repetitions than the rest: bench/run asks
  // for 8 through SRCU_BENCH_MAP_REPETITIONS.
  if (const char* reps = std::getenv("SRCU_BENCH_MAP_REPETITIONS")) {
    if (const int n = std::atoi(reps); n > 0) rows->Repetitions(n);
  }
}

}  // namespace bench
