// srcu_callers: what N concurrent synchronize() callers cost against one,
// with a reader spinning (issue 11: "8 concurrent synchronize() callers
// with a reader spinning finish within 2x the wall time of one caller").
//
//   srcu_callers [--callers N] [--rounds R] [--pairs P] [--expedited] [--no-reader]
//
// The callers are pinned to CPU 0 and the reader to CPU 1 (the bench's
// concurrent_updaters row places them so on 2 CPUs). One measurement is R
// rounds: one caller makes R calls, or N callers make R calls each, and a
// round is the wall time of the whole run over R. P pairs, one caller then
// N callers back to back, so that each pair shares the machine's phase;
// prints each pair and the median of the pairs' ratios. Grace periods per
// round show how well the N callers share them (1.00: one per round).
// Defaults: 8 callers, 3,000 rounds, 5 pairs.
#include <srcu/srcu.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "probe.h"

namespace {

struct options {
  int callers = 8;
  int rounds = 3000;
  int pairs = 5;
  bool expedited = false;
  bool reader = true;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: srcu_callers [--callers N] [--rounds R] [--pairs P] [--expedited] "
               "[--no-reader]\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    auto number = [&](int& out) {
      if (i + 1 >= argc) usage();
      out = std::atoi(argv[++i]);
      if (out < 1) usage();
    };
    if (std::strcmp(argv[i], "--callers") == 0) {
      number(o.callers);
    } else if (std::strcmp(argv[i], "--rounds") == 0) {
      number(o.rounds);
    } else if (std::strcmp(argv[i], "--pairs") == 0) {
      number(o.pairs);
    } else if (std::strcmp(argv[i], "--expedited") == 0) {
      o.expedited = true;
    } else if (std::strcmp(argv[i], "--no-reader") == 0) {
      o.reader = false;
    } else {
      usage();
    }
  }
  return o;
}

using bench::probe::pin;

struct result {
  double us_per_round;
  double gp_per_round;
};

result measure(srcu::domain& d, const options& o, int callers) {
  const std::uint64_t gp_before = d.grace_periods_completed();
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&] {
      pin(0);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int n = 0; n < o.rounds; ++n) {
        if (o.expedited) {
          d.synchronize_expedited();
        } else {
          d.synchronize();
        }
      }
    });
  }
  while (ready.load() != callers) std::this_thread::yield();
  const auto start = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  return {us / o.rounds, static_cast<double>(d.grace_periods_completed() - gp_before) / o.rounds};
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  srcu::domain d({.name = "srcu_callers"});
  std::atomic<bool> stop{false};
  std::thread reader;
  if (o.reader) {
    reader = std::thread([&] {
      pin(1);
      while (!stop.load(std::memory_order_relaxed)) {
        srcu::read_token t = d.read_lock();
        for (int i = 0; i < 50; ++i) asm volatile("");  // a short read section
        d.read_unlock(t);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the reader is running
  }
  std::printf("%s, %d callers against 1, %s, %d rounds each\n",
              o.expedited ? "synchronize_expedited()" : "synchronize()", o.callers,
              o.reader ? "a reader spinning on CPU 1" : "no reader", o.rounds);
  std::vector<double> ratios;
  for (int p = 0; p < o.pairs; ++p) {
    const result one = measure(d, o, 1);
    const result many = measure(d, o, o.callers);
    ratios.push_back(many.us_per_round / one.us_per_round);
    std::printf("pair %d: 1 caller %.1f us per call; %d callers %.1f us per round of %d calls, "
                "%.2f grace periods per round; ratio %.2f\n",
                p + 1, one.us_per_round, o.callers, many.us_per_round, o.callers, many.gp_per_round,
                ratios.back());
  }
  const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  std::printf("median ratio %.2f (range %.2f-%.2f)\n", bench::probe::median(ratios), *lo, *hi);
  stop.store(true);
  if (reader.joinable()) reader.join();
  return 0;
}
