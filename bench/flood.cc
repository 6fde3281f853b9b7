// srcu_flood: how far a call() flood runs ahead of callback invocation.
//
// The setting of issue 9: F threads flood call(head, func) on one domain
// with preallocated heads, R readers spin in read_lock/read_unlock on it,
// and (with --hog) one CPU-bound process runs beside them at normal
// priority. A monitor samples "in flight" = calls made - callbacks run
// every 100 us and keeps the maximum. --nice19 moves srcu's library
// threads (engine and callback workers) to nice 19 first; workers started
// later inherit the engine's nice value (it starts them).
//
//   srcu_flood [--calls N] [--threads F] [--readers R] [--hog] [--nice19] [--limit L]
//
// --limit L: the flooders use the allocating call(F) on a domain with
// callback_backlog_limit = L, whose guaranteed bound is L plus the number of
// calling threads (docs/delivery.md); without it, call(head, func), which
// never waits and only catches up.
//
// Prints one line: calls, the peak in flight, the final barrier() time,
// the flood's duration, and the peak number of callback workers.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <srcu/srcu.h>

#include "proc_threads.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using srcu_bench::threads_named;

std::atomic<std::uint64_t> g_invoked{0};

void count_invoked(srcu::callback_head*) { g_invoked.fetch_add(1, std::memory_order_relaxed); }

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  long long calls = 10'000'000;
  int flooders = 2;
  int readers = 2;
  bool hog = false;
  bool nice19 = false;
  long long limit = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--calls" && i + 1 < argc) calls = std::atoll(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) flooders = std::atoi(argv[++i]);
    else if (a == "--readers" && i + 1 < argc) readers = std::atoi(argv[++i]);
    else if (a == "--hog") hog = true;
    else if (a == "--nice19") nice19 = true;
    else if (a == "--limit" && i + 1 < argc) limit = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--calls N] [--threads F] [--readers R] [--hog] [--nice19] "
                   "[--limit L]\n",
                   argv[0]);
      return 2;
    }
  }
  pid_t hog_pid = 0;
  if (hog) {
    hog_pid = fork();
    if (hog_pid == 0) {
      for (;;) asm volatile("" ::: "memory");  // CPU-bound, until killed
    }
  }
  srcu::domain dom({.name = "flood", .callback_backlog_limit = static_cast<std::size_t>(limit)});
  {  // start the library threads, then (optionally) renice them
    srcu::callback_head h;
    dom.call(&h, &count_invoked);
    dom.barrier();
    g_invoked = 0;
  }
  if (nice19) {
    // Every library thread: "srcu-engine" and the callback workers
    // ("srcu-cb/N"; "srcu-callbacks" before the worker pool).
    for (pid_t t : threads_named("srcu-")) setpriority(PRIO_PROCESS, static_cast<id_t>(t), 19);
  }
  const long long per_thread = calls / flooders;
  std::vector<std::unique_ptr<srcu::callback_head[]>> heads;
  for (int t = 0; t < flooders && limit == 0; ++t) {
    heads.emplace_back(new srcu::callback_head[static_cast<std::size_t>(per_thread)]);
  }
  std::atomic<bool> stop_readers{false};
  std::vector<std::thread> reader_threads;
  for (int r = 0; r < readers; ++r) {
    reader_threads.emplace_back([&] {
      while (!stop_readers.load(std::memory_order_relaxed)) {
        const srcu::read_token t = dom.read_lock();
        dom.read_unlock(t);
      }
    });
  }
  std::vector<std::atomic<long long>> made(static_cast<std::size_t>(flooders));
  std::atomic<bool> flooding{true};
  std::atomic<long long> peak{0};
  std::atomic<unsigned> peak_workers{0};
  std::thread monitor([&] {
    unsigned tick = 0;
    while (flooding.load(std::memory_order_relaxed)) {
      // Invocations first: a callback counted has its call counted too.
      const auto inv = static_cast<long long>(g_invoked.load(std::memory_order_relaxed));
      long long m = 0;
      for (auto& c : made) m += c.load(std::memory_order_relaxed);
      if (m - inv > peak.load()) peak = m - inv;
      if (++tick % 1000 == 0) {
        const auto w = static_cast<unsigned>(threads_named("srcu-cb/").size());
        if (w > peak_workers) peak_workers = w;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> flood_threads;
  for (int t = 0; t < flooders; ++t) {
    flood_threads.emplace_back([&, t] {
      auto& count = made[static_cast<std::size_t>(t)];
      if (limit != 0) {
        for (long long i = 0; i < per_thread; ++i) {
          dom.call([] { count_invoked(nullptr); });
          count.store(i + 1, std::memory_order_relaxed);
        }
        return;
      }
      srcu::callback_head* h = heads[static_cast<std::size_t>(t)].get();
      for (long long i = 0; i < per_thread; ++i) {
        dom.call(&h[i], &count_invoked);
        count.store(i + 1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : flood_threads) t.join();
  const double flood_s = seconds_since(start);
  const auto barrier_start = std::chrono::steady_clock::now();
  dom.barrier();
  const double barrier_s = seconds_since(barrier_start);
  flooding = false;
  monitor.join();
  stop_readers = true;
  for (auto& t : reader_threads) t.join();
  if (hog_pid > 0) {
    kill(hog_pid, SIGKILL);
    waitpid(hog_pid, nullptr, 0);
  }
  const long long total = per_thread * flooders;
  std::printf("calls %lld  peak in flight %lld (%.1f%%)  flood %.2f s  final barrier %.3f s  "
              "workers <= %u  invoked %llu%s%s%s\n",
              total, peak.load(), 100.0 * static_cast<double>(peak.load()) / static_cast<double>(total),
              flood_s, barrier_s, peak_workers.load(),
              static_cast<unsigned long long>(g_invoked.load()), hog ? "  (hog)" : "",
              nice19 ? "  (library threads at nice 19)" : "",
              limit != 0 ? ("  (call(F), backlog limit " + std::to_string(limit) + ")").c_str() : "");
  return g_invoked.load() == static_cast<unsigned long long>(total) ? 0 : 1;
}
