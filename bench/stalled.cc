// srcu_stalled: what N domains whose grace periods are stalled by a blocked
// reader cost the engine, and a healthy domain's call-to-callback latency
// beside them (issue 9, case 8).
//
//   srcu_stalled [--domains N] [--seconds S]
//
// One thread enters a reader on every stalled domain and blocks; each
// stalled domain gets one call(), so its grace period is pending. After the
// stalled grace periods have aged 2 s, the program measures for S seconds
// the CPU time of the "srcu-engine" thread and, on a healthy domain
// (callback_delay 0), the latency from call() to its callback, 200 times.
// Prints the engine's CPU share and the latency median and p99; the same
// latency with no stalled domain first, as the baseline.
#include <unistd.h>

#include <srcu/srcu.h>

#include "proc_threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

// utime + stime of a thread, in clock ticks.
long long thread_cpu_ticks(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields;
  std::string f;
  for (std::size_t i = close + 2; i < s.size(); ++i) {
    if (s[i] == ' ') {
      fields.push_back(f);
      f.clear();
    } else {
      f += s[i];
    }
  }
  return fields.size() > 12 ? std::atoll(fields[11].c_str()) + std::atoll(fields[12].c_str()) : 0;
}

struct latency {
  double p50_ms, p99_ms;
};

latency call_latency(srcu::domain& d, int samples) {
  std::vector<double> ms;
  for (int i = 0; i < samples; ++i) {
    std::atomic<bool> ran{false};
    const auto t0 = clock_type::now();
    d.call([&] { ran.store(true, std::memory_order_release); });
    while (!ran.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::microseconds(20));
    ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[ms.size() * 99 / 100]};
}

}  // namespace

int main(int argc, char** argv) {
  int domains = 100'000;
  double seconds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--domains" && i + 1 < argc) domains = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--domains N] [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  srcu::domain healthy({.name = "healthy", .callback_delay = std::chrono::microseconds(0)});
  const latency base = call_latency(healthy, 200);

  std::vector<std::unique_ptr<srcu::domain>> stalled;
  stalled.reserve(static_cast<std::size_t>(domains));
  for (int i = 0; i < domains; ++i) {
    stalled.push_back(std::make_unique<srcu::domain>(
        srcu::domain_options{.name = "stalled", .stall_timeout = std::chrono::milliseconds(0)}));
  }
  std::atomic<bool> inside{false}, release{false};
  std::thread blocker([&] {
    std::vector<srcu::read_token> tokens;
    tokens.reserve(stalled.size());
    for (auto& d : stalled) tokens.push_back(d->read_lock());
    inside = true;
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (std::size_t i = 0; i < stalled.size(); ++i) stalled[i]->read_unlock(tokens[i]);
  });
  while (!inside.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::vector<srcu::callback_head> heads(stalled.size());
  for (std::size_t i = 0; i < stalled.size(); ++i) {
    stalled[i]->call(&heads[i], [](srcu::callback_head*) {});
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let the stalls age

  const std::vector<pid_t> engines = srcu_bench::threads_named("srcu-engine");
  const pid_t engine = engines.empty() ? 0 : engines.front();
  const long long ticks0 = thread_cpu_ticks(engine);
  const auto t0 = clock_type::now();
  latency with{0, 0};
  while (std::chrono::duration<double>(clock_type::now() - t0).count() < seconds) {
    with = call_latency(healthy, 200);
  }
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  const long long ticks = thread_cpu_ticks(engine) - ticks0;
  const double engine_share = static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)) / wall;

  release = true;
  blocker.join();
  for (auto& d : stalled) d->barrier();
  std::printf("stalled domains %d  engine CPU %.1f%%  healthy call-to-callback: p50 %.3f ms p99 "
              "%.3f ms (no stalled domains: p50 %.3f ms p99 %.3f ms)\n",
              domains, 100.0 * engine_share, with.p50_ms, with.p99_ms, base.p50_ms, base.p99_ms);
  return 0;
}
