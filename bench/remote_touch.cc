// srcu_remote_touch: what it costs a 1-thread updater when another CPU
// touches the entries it retires, with no RCU library at all (issue 11: the
// hash map row where srcu's call() loses to ck_epoch on 1 thread).
//
//   srcu_remote_touch [--permille U] [--rounds R] [--ms T]
//
// The bench's hash map itself (bench/map.h: 100,000 keys in 2^17 buckets, a
// 40-byte node, lookups and copy-on-write replacements, U per mille of them
// replacements, default 100; the hash_map rows' loop) on one thread pinned
// to CPU 0. The replaced nodes are collected in batches of 64 and reclaimed
// in one of five ways:
//
//   local   the updater frees each batch itself: ck_epoch's pattern (its
//           caller runs ck_epoch_poll() every 64 deferrals) and
//           srcu::reclaim_list's.
//   read    a thread on CPU 1 reads every node of the batch and hands it
//           back; the updater frees it.
//   walked  the thread on CPU 1 relinks every node (as srcu's engine does
//           when it restores FIFO order in drain_staged()) and hands it
//           back; the updater frees it: srcu's call() with an executor that
//           runs batches on the updater's thread.
//   freed   the thread on CPU 1 relinks and frees every node: srcu's call()
//           with its own callback worker, and liburcu's call_rcu() thread.
//   near    as freed, by a thread on CPU 0, the updater's own: what a
//           callback worker on the caller's CPU would cost (the kernel runs
//           SRCU callbacks on the CPU that queued them), with the switches
//           between it and the updater.
//
// No grace period is waited for: what differs between the modes is only
// which CPU last wrote (or read) the retired nodes' cache lines, which the
// updater's allocator then hands back to it. R rounds, each mode once per
// round for T ms; prints every measurement, then each mode's median and its
// ratio to local's. Defaults: 5 rounds, 300 ms.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <thread>
#include <vector>

#include "map.h"
#include "probe.h"

namespace {

using bench::probe::pin;

constexpr int kBatch = 64;

// The map's node starts with this head, as it does with a library's
// callback_head: the link of a retired batch and the function a deferral
// would store.
struct probe_head {
  probe_head* next = nullptr;
  void* func = nullptr;
};
struct probe_lib {
  using head = probe_head;
};
using map = bench::rcu_map<probe_lib>;
using node = map::node;  // its head is its first member

enum class mode { local, read, walked, freed, near };
constexpr mode kModes[] = {mode::local, mode::read, mode::walked, mode::freed, mode::near};
const char* name_of(mode m) {
  switch (m) {
    case mode::local: return "local";
    case mode::read: return "read";
    case mode::walked: return "walked";
    case mode::freed: return "freed";
    case mode::near: return "near";
  }
  return "?";
}

struct options {
  int permille = 100;
  int rounds = 5;
  int ms = 300;
};

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: srcu_remote_touch [--permille U] [--rounds R] [--ms T]\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    auto number = [&](int& out, int lo, int hi) {
      if (i + 1 >= argc) usage();
      out = std::atoi(argv[++i]);
      if (out < lo || out > hi) usage();
    };
    if (std::strcmp(argv[i], "--permille") == 0) {
      number(o.permille, 0, 1000);
    } else if (std::strcmp(argv[i], "--rounds") == 0) {
      number(o.rounds, 1, 1000);
    } else if (std::strcmp(argv[i], "--ms") == 0) {
      number(o.ms, 1, 60'000);
    } else {
      usage();
    }
  }
  return o;
}

probe_head* tail_of(probe_head* list) {
  while (list->next != nullptr) list = list->next;
  return list;
}

void free_all(probe_head* list) {
  while (list != nullptr) {
    probe_head* const next = list->next;
    list->next = nullptr;  // what running a callback writes
    list->func = nullptr;
    map::free_node(list);
    list = next;
  }
}

// A lock-free stack of batches (each a list through probe_head::next). The
// pushes' release pairs with take()'s acquire: the taker sees the nodes.
class batch_stack {
 public:
  void push(probe_head* batch) {
    probe_head* const tail = tail_of(batch);  // the pusher's own nodes
    probe_head* top = top_.load(std::memory_order_relaxed);
    do {
      tail->next = top;
    } while (!top_.compare_exchange_weak(top, batch, std::memory_order_release, std::memory_order_relaxed));
  }
  probe_head* take() { return top_.exchange(nullptr, std::memory_order_acquire); }

 private:
  std::atomic<probe_head*> top_{nullptr};
};

// The thread on CPU 1: takes what the updater retired every 100 us (srcu's
// engine is woken per callback_delay, not per call) and touches it.
class helper {
 public:
  explicit helper(int cpu) : cpu_(cpu), thread_([this] { loop(); }) {}
  ~helper() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
    free_all(back_.take());
    free_all(inbox_.take());
  }
  helper(const helper&) = delete;
  helper& operator=(const helper&) = delete;

  void set_mode(mode m) { mode_.store(m, std::memory_order_relaxed); }
  void retire(probe_head* batch) { inbox_.push(batch); }
  probe_head* take_back() { return back_.take(); }

 private:
  void loop() {
    pin(cpu_);
    while (!stop_.load(std::memory_order_relaxed)) {
      probe_head* list = inbox_.take();
      if (list == nullptr) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        continue;
      }
      switch (mode_.load(std::memory_order_relaxed)) {
        case mode::read: {
          std::uint64_t sum = 0;
          for (probe_head* h = list; h != nullptr; h = h->next) sum += reinterpret_cast<node*>(h)->key;
          sink_ = sink_ + sum;
          back_.push(list);
          break;
        }
        case mode::walked:
          back_.push(reverse(list));
          break;
        case mode::freed:
        case mode::near:
          free_all(reverse(list));
          break;
        case mode::local:  // a batch from before the mode changed
          back_.push(list);
          break;
      }
    }
  }
  // drain_staged()'s walk: one write per node.
  static probe_head* reverse(probe_head* list) {
    probe_head* head = nullptr;
    while (list != nullptr) {
      probe_head* const next = list->next;
      list->next = head;
      head = list;
      list = next;
    }
    return head;
  }

  const int cpu_;
  std::atomic<bool> stop_{false};
  std::atomic<mode> mode_{mode::local};
  batch_stack inbox_, back_;
  volatile std::uint64_t sink_ = 0;
  std::thread thread_;  // last: starts once the rest is made
};

// One measurement: M ops/s of the 1-thread workload with reclamation `m`.
// The loop is the hash_map rows' (harness.h, run_map_workload).
double measure(map& table, helper& h, mode m, const options& o, bench::rng& r, std::uint64_t& bad) {
  h.set_mode(m);
  probe_head* batch = nullptr;
  int in_batch = 0;
  std::uint64_t ops = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::milliseconds(o.ms);
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 64; ++i) {
      const std::uint64_t x = r.next();
      const std::uint64_t key = (x >> 10) % bench::kMapKeys;
      if (static_cast<int>(x % 1000) >= o.permille) {
        std::uint64_t value = 0;
        if (!table.lookup(key, value) || (value & ((1ULL << bench::kVersionShift) - 1)) != key) ++bad;
        ++ops;
        continue;
      }
      node* const old = table.replace(key, ++ops);
      probe_head* const retired = &old->head;
      retired->func = &table;  // what call() writes into the head
      retired->next = batch;
      batch = retired;
      if (++in_batch < kBatch) continue;
      if (m == mode::local) {
        free_all(batch);
      } else {
        h.retire(batch);
        free_all(h.take_back());
      }
      batch = nullptr;
      in_batch = 0;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  free_all(batch);
  return static_cast<double>(ops) / seconds / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  pin(0);
  map table;
  helper far(1), near(0);  // near: on the updater's own CPU
  bench::rng r{0x9E3779B97F4A7C15ULL};
  std::uint64_t bad = 0;
  std::printf("1 thread on CPU 0, %d per mille replacements, batches of %d retired nodes, %d ms per "
              "measurement; the helper on CPU 1\n",
              o.permille, kBatch, o.ms);
  std::vector<double> rates[std::size(kModes)];
  for (int round = 0; round < o.rounds; ++round) {
    std::printf("round %d:", round + 1);
    for (mode m : kModes) {
      helper& h = m == mode::near ? near : far;
      const double rate = measure(table, h, m, o, r, bad);
      rates[static_cast<int>(m)].push_back(rate);
      std::printf("  %s %.1f", name_of(m), rate);
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      free_all(far.take_back());  // what the helpers handed back late
      free_all(near.take_back());
    }
    std::printf("  (M ops/s)\n");
  }
  const double local = bench::probe::median(rates[0]);
  for (mode m : kModes) {
    const double mid = bench::probe::median(rates[static_cast<int>(m)]);
    std::printf("%-7s median %6.1f M ops/s  %.2fx local\n", name_of(m), mid, mid / local);
  }
  if (bad != 0) {
    std::fprintf(stderr, "srcu_remote_touch: %llu lookups missed their key\n", static_cast<unsigned long long>(bad));
    return 1;
  }
  return 0;
}
