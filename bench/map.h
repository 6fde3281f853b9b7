// The read-mostly hash map of srcu_bench's hash_map rows (harness.h, section
// 5), apart from the harness so that a probe without Google Benchmark
// (remote_touch.cc) runs the same map: 100,000 keys in 2^17 buckets, a
// node whose first member is the library's deferral head.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bench {

inline constexpr std::uint64_t kMapKeys = 100'000;
inline constexpr std::size_t kMapBuckets = std::size_t{1} << 17;
inline constexpr std::uint64_t kVersionShift = 20;  // value = version << shift | key

inline std::size_t bucket_of(std::uint64_t key) {
  return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> (64 - 17));
}

// xorshift64*: a cheap per-thread generator.
struct rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
};

// A map with lookup(key, &value) -> bool and replace(key, version), used
// by run_map_workload from many threads at once.
template <class Lib>
class rcu_map {
 public:
  struct node {
    typename Lib::head head{};  // first member: a head* is a node*
    std::uint64_t key = 0;
    std::uint64_t value = 0;
    std::atomic<node*> next{nullptr};
  };

  rcu_map() : buckets_(kMapBuckets) {
    for (std::uint64_t k = 0; k < kMapKeys; ++k) {
      node* n = new node;
      n->key = k;
      n->value = k;
      std::atomic<node*>& b = buckets_[bucket_of(k)];
      n->next.store(b.load(std::memory_order_relaxed), std::memory_order_relaxed);
      b.store(n, std::memory_order_relaxed);
    }
  }
  ~rcu_map() {  // single-threaded by now; deferred frees have run (barrier)
    for (std::atomic<node*>& b : buckets_) {
      for (node* n = b.load(); n != nullptr;) {
        node* next = n->next.load();
        delete n;
        n = next;
      }
    }
  }
  rcu_map(const rcu_map&) = delete;
  rcu_map& operator=(const rcu_map&) = delete;

  // Inside the caller's read section (or shared lock).
  bool lookup(std::uint64_t key, std::uint64_t& value) const {
    for (const node* n = buckets_[bucket_of(key)].load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire)) {
      if (n->key == key) {
        value = n->value;
        return true;
      }
    }
    return false;
  }

  // Under the one-writer lock: publishes a copy of key's node with a new
  // value in its place. Returns the replaced node, still reachable by
  // readers that loaded it; the caller reclaims it.
  node* replace(std::uint64_t key, std::uint64_t version) {
    std::atomic<node*>* link = &buckets_[bucket_of(key)];
    node* old = link->load(std::memory_order_relaxed);
    while (old->key != key) {
      link = &old->next;
      old = link->load(std::memory_order_relaxed);
    }
    node* fresh = new node;
    fresh->key = key;
    fresh->value = version << kVersionShift | key;
    fresh->next.store(old->next.load(std::memory_order_relaxed), std::memory_order_relaxed);
    link->store(fresh, std::memory_order_release);  // pairs with lookup's acquire loads
    return old;
  }

  static void free_node(typename Lib::head* h) { delete reinterpret_cast<node*>(h); }

 private:
  std::vector<std::atomic<node*>> buckets_;
};

}  // namespace bench
