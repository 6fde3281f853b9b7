// srcu_remote_touch: what it costs a 1-thread updater when another CPU
// touches the entries it retires, with no RCU library at all (issue 11: the
// hash map row where srcu's call() loses to ck_epoch on 1 thread).
//
//   srcu_remote_touch [--permille U] [--rounds R] [--ms T]
//
// The bench's hash map (bench/harness.h: 100,000 keys in 2^17 buckets, a
// 40-byte node, lookups and copy-on-write replacements, U per mille of them
// replacements; default 100) on one thread pinned to CPU 0. The replaced
// nodes are collected in batches of 64 and reclaimed in one of four ways:
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
//
// No grace period is waited for: what differs between the modes is only
// which CPU last wrote (or read) the retired nodes' cache lines, which the
// updater's allocator then hands back to it. R rounds, each mode once per
// round for T ms; prints every measurement, then each mode's median and its
// ratio to local's. Defaults: 5 rounds, 300 ms.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

constexpr std::uint64_t kKeys = 100'000;
constexpr int kBucketBits = 17;
constexpr int kBatch = 64;

struct node {
  node* retired_next = nullptr;  // the batch's link (a callback_head's next)
  void* func = nullptr;          // a callback_head's func: cleared when run
  std::uint64_t key = 0;
  std::uint64_t value = 0;
  std::atomic<node*> next{nullptr};
};

enum class mode { local, read, walked, freed };
constexpr mode kModes[] = {mode::local, mode::read, mode::walked, mode::freed};
const char* name_of(mode m) {
  switch (m) {
    case mode::local: return "local";
    case mode::read: return "read";
    case mode::walked: return "walked";
    case mode::freed: return "freed";
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

// Pins the calling thread to `cpu` where the machine has it; else leaves it.
void pin(int cpu) {
  if (cpu >= static_cast<int>(std::thread::hardware_concurrency())) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

std::size_t bucket_of(std::uint64_t key) { return (key * 0x9E3779B97F4A7C15ULL) >> (64 - kBucketBits); }

node* tail_of(node* list) {
  while (list->retired_next != nullptr) list = list->retired_next;
  return list;
}

void free_all(node* list) {
  while (list != nullptr) {
    node* const next = list->retired_next;
    list->retired_next = nullptr;  // what running a callback writes
    list->func = nullptr;
    delete list;
    list = next;
  }
}

// A lock-free stack of batches (each a retired_next list). The pushes'
// release pairs with take()'s acquire: the taker sees the nodes' contents.
class batch_stack {
 public:
  void push(node* batch) {
    node* const tail = tail_of(batch);  // the pusher's own nodes
    node* top = top_.load(std::memory_order_relaxed);
    do {
      tail->retired_next = top;
    } while (!top_.compare_exchange_weak(top, batch, std::memory_order_release, std::memory_order_relaxed));
  }
  node* take() { return top_.exchange(nullptr, std::memory_order_acquire); }

 private:
  std::atomic<node*> top_{nullptr};
};

// The thread on CPU 1: takes what the updater retired every 100 us (srcu's
// engine is woken per callback_delay, not per call) and touches it.
class helper {
 public:
  helper() : thread_([this] { loop(); }) {}
  ~helper() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
    free_all(back_.take());
    free_all(inbox_.take());
  }
  void set_mode(mode m) { mode_.store(m, std::memory_order_relaxed); }
  void retire(node* batch) { inbox_.push(batch); }
  node* take_back() { return back_.take(); }

 private:
  void loop() {
    pin(1);
    while (!stop_.load(std::memory_order_relaxed)) {
      node* list = inbox_.take();
      if (list == nullptr) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        continue;
      }
      switch (mode_.load(std::memory_order_relaxed)) {
        case mode::read: {
          std::uint64_t sum = 0;
          for (node* n = list; n != nullptr; n = n->retired_next) sum += n->key;
          sink_ = sink_ + sum;
          back_.push(list);
          break;
        }
        case mode::walked:
          back_.push(reverse(list));
          break;
        case mode::freed:
          free_all(reverse(list));
          break;
        case mode::local:  // a batch from before the mode changed
          back_.push(list);
          break;
      }
    }
  }
  // drain_staged()'s walk: one write per node.
  static node* reverse(node* list) {
    node* head = nullptr;
    while (list != nullptr) {
      node* const next = list->retired_next;
      list->retired_next = head;
      head = list;
      list = next;
    }
    return head;
  }

  std::atomic<bool> stop_{false};
  std::atomic<mode> mode_{mode::local};
  batch_stack inbox_, back_;
  volatile std::uint64_t sink_ = 0;
  std::thread thread_;  // last: starts once the rest is made
};

class map {
 public:
  map() : buckets_(std::size_t{1} << kBucketBits) {
    for (std::uint64_t k = 0; k < kKeys; ++k) {
      node* n = new node;
      n->key = k;
      n->value = k;
      std::atomic<node*>& b = buckets_[bucket_of(k)];
      n->next.store(b.load(std::memory_order_relaxed), std::memory_order_relaxed);
      b.store(n, std::memory_order_relaxed);
    }
  }
  ~map() {
    for (std::atomic<node*>& b : buckets_) {
      for (node* n = b.load(); n != nullptr;) {
        node* const next = n->next.load();
        delete n;
        n = next;
      }
    }
  }
  map(const map&) = delete;
  map& operator=(const map&) = delete;

  bool lookup(std::uint64_t key) const {
    for (const node* n = buckets_[bucket_of(key)].load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire)) {
      if (n->key == key) return (n->value & 0xfffff) == key;
    }
    return false;
  }
  // Returns the replaced node (the bench's rcu_map::replace()).
  node* replace(std::uint64_t key, std::uint64_t version) {
    std::atomic<node*>* link = &buckets_[bucket_of(key)];
    node* old = link->load(std::memory_order_relaxed);
    while (old->key != key) {
      link = &old->next;
      old = link->load(std::memory_order_relaxed);
    }
    node* fresh = new node;
    fresh->key = key;
    fresh->value = version << 20 | key;
    fresh->next.store(old->next.load(std::memory_order_relaxed), std::memory_order_relaxed);
    link->store(fresh, std::memory_order_release);
    return old;
  }

 private:
  std::vector<std::atomic<node*>> buckets_;
};

// One measurement: M ops/s of the 1-thread workload with reclamation `m`.
double measure(map& table, helper& h, mode m, const options& o, std::uint64_t& rng, std::uint64_t& bad) {
  h.set_mode(m);
  node* batch = nullptr;
  int in_batch = 0;
  std::uint64_t ops = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::milliseconds(o.ms);
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 64; ++i, ++ops) {
      rng ^= rng << 13;  // xorshift64
      rng ^= rng >> 7;
      rng ^= rng << 17;
      const std::uint64_t key = (rng >> 10) % kKeys;
      if (static_cast<int>(rng % 1000) >= o.permille) {
        bad += !table.lookup(key);
        continue;
      }
      node* const old = table.replace(key, ops);
      old->func = &table;  // what call() writes into the head
      old->retired_next = batch;
      batch = old;
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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  pin(0);
  map table;
  helper h;
  std::uint64_t rng = 0x9E3779B97F4A7C15ULL, bad = 0;
  std::printf("1 thread on CPU 0, %d per mille replacements, batches of %d retired nodes, %d ms per "
              "measurement; the helper on CPU 1\n",
              o.permille, kBatch, o.ms);
  std::vector<double> rates[4];
  for (int r = 0; r < o.rounds; ++r) {
    std::printf("round %d:", r + 1);
    for (mode m : kModes) {
      const double rate = measure(table, h, m, o, rng, bad);
      rates[static_cast<int>(m)].push_back(rate);
      std::printf("  %s %.1f", name_of(m), rate);
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      free_all(h.take_back());  // what the helper handed back late
    }
    std::printf("  (M ops/s)\n");
  }
  const double local = median(rates[0]);
  for (mode m : kModes) {
    const double mid = median(rates[static_cast<int>(m)]);
    std::printf("%-7s median %6.1f M ops/s  %.2fx local\n", name_of(m), mid, mid / local);
  }
  if (bad != 0) {
    std::fprintf(stderr, "srcu_remote_touch: %llu lookups missed their key\n", static_cast<unsigned long long>(bad));
    return 1;
  }
  return 0;
}
