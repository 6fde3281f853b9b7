// The standard library's answers to the same problem: reader-writer locks
// (std::shared_mutex, pthread_rwlock_t) and reference counting
// (std::atomic<std::shared_ptr>), plus a reference row for one atomic
// read-modify-write in and one out on a counter no other thread touches
// (the floor for srcu's signal-safe and down/up readers, which need two),
// and the floor of srcu's default reader (tls-floor).

#include <pthread.h>

#include <shared_mutex>

#include "harness.h"

namespace bench {
namespace {

// --- Reader-writer locks ---------------------------------------------------------

std::shared_mutex g_shared_mutex;

struct shared_mutex_lib {
  static constexpr const char* name = "std::shared_mutex";
  using reader_scope = no_scope;
  struct read_guard {
    read_guard() { g_shared_mutex.lock_shared(); }
    ~read_guard() { g_shared_mutex.unlock_shared(); }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;
  };
  struct write_guard {
    write_guard() { g_shared_mutex.lock(); }
    ~write_guard() { g_shared_mutex.unlock(); }
    write_guard(const write_guard&) = delete;
    write_guard& operator=(const write_guard&) = delete;
  };
  struct head {};  // rcu_map's node layout; never deferred
};

pthread_rwlock_t g_rwlock = PTHREAD_RWLOCK_INITIALIZER;

struct rwlock_lib {
  static constexpr const char* name = "pthread_rwlock";
  using reader_scope = no_scope;
  struct read_guard {
    read_guard() { pthread_rwlock_rdlock(&g_rwlock); }
    ~read_guard() { pthread_rwlock_unlock(&g_rwlock); }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;
  };
  struct write_guard {
    write_guard() { pthread_rwlock_wrlock(&g_rwlock); }
    ~write_guard() { pthread_rwlock_unlock(&g_rwlock); }
    write_guard(const write_guard&) = delete;
    write_guard& operator=(const write_guard&) = delete;
  };
  struct head {};
};

// --- Reference counting ------------------------------------------------------------

// The reader's section is holding a counted reference to the current
// version: one atomic<shared_ptr>::load (libstdc++: a lock bit in the
// pointer word, and the count's increment) and the reference's release.
std::atomic<std::shared_ptr<const payload>> g_shared_payload{std::make_shared<const payload>()};

struct shared_ptr_lib {
  static constexpr const char* name = "std::shared_ptr";
  using reader_scope = no_scope;
  struct read_guard {
    std::shared_ptr<const payload> ref = g_shared_payload.load(std::memory_order_acquire);
    read_guard() { benchmark::DoNotOptimize(ref->value); }
  };
};

// The hash map with shared_ptr: each bucket is an atomic shared_ptr to an
// immutable chain; a lookup holds a reference to its bucket's chain while it
// walks it, a replacement copies the chain up to the key and publishes it.
// The last reference frees what was replaced: no grace period, no deferral.
class shared_ptr_map {
 public:
  struct node {
    std::uint64_t key;
    std::uint64_t value;
    std::shared_ptr<const node> next;
  };

  shared_ptr_map() : buckets_(kMapBuckets) {
    for (std::uint64_t k = 0; k < kMapKeys; ++k) {
      std::atomic<std::shared_ptr<const node>>& b = buckets_[bucket_of(k)];
      b.store(std::make_shared<const node>(node{k, k, b.load(std::memory_order_relaxed)}),
              std::memory_order_relaxed);
    }
  }

  bool lookup(std::uint64_t key, std::uint64_t& value) const {
    const std::shared_ptr<const node> chain = buckets_[bucket_of(key)].load(std::memory_order_acquire);
    for (const node* n = chain.get(); n != nullptr; n = n->next.get()) {
      if (n->key == key) {
        value = n->value;
        return true;
      }
    }
    return false;
  }

  // Under the one-writer lock.
  void replace(std::uint64_t key, std::uint64_t version) {
    std::atomic<std::shared_ptr<const node>>& b = buckets_[bucket_of(key)];
    const std::shared_ptr<const node> chain = b.load(std::memory_order_relaxed);
    b.store(copy_replacing(chain.get(), key, version << kVersionShift | key),
            std::memory_order_release);
  }

 private:
  // A copy of the chain from n up to key's node, sharing the rest.
  static std::shared_ptr<const node> copy_replacing(const node* n, std::uint64_t key,
                                                    std::uint64_t value) {
    if (n->key == key) return std::make_shared<const node>(node{key, value, n->next});
    return std::make_shared<const node>(node{n->key, n->value, copy_replacing(n->next.get(), key, value)});
  }

  std::vector<std::atomic<std::shared_ptr<const node>>> buckets_;
};

void shared_ptr_hash_map(benchmark::State& state) {
  const auto threads = static_cast<int>(state.range(0));
  const auto update_permille = static_cast<int>(state.range(1));
  shared_ptr_map map;
  std::mutex writer;
  for (auto _ : state) {
    const workload_result r = run_map_workload<no_scope>(
        threads, kMapSeconds, update_permille, [] {},
        [&map](std::uint64_t key, std::uint64_t& value) { return map.lookup(key, value); },
        [&map, &writer](std::uint64_t key, std::uint64_t version) {
          std::lock_guard<std::mutex> g(writer);
          map.replace(key, version);
        });
    state.SetIterationTime(r.seconds);
    report_map_workload(state, r);
  }
}

// --- Reference: one RMW in, one out, on this thread's own counter ------------------

struct alignas(64) padded_counter {
  std::atomic<std::uint64_t> value{0};
};
thread_local padded_counter t_counter;

struct atomic_pair_lib {
  static constexpr const char* name = "atomic-rmw-pair";
  using reader_scope = no_scope;
  struct read_guard {
    read_guard() { t_counter.value.fetch_add(1, std::memory_order_relaxed); }  // lock xadd
    ~read_guard() { t_counter.value.fetch_sub(1, std::memory_order_relaxed); }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;
  };
};

// --- The floor of srcu's default reader ---------------------------------------
// What srcu's default read_lock()/read_unlock() cannot go below: the
// domain's index load, then a plain load+store on this thread's own lock
// counter, and on unlock one on its unlock counter, with compiler barriers
// (membarrier mode). No slot lookup, no token: the distance from srcu's row
// to this one is what finding the thread's slot and keeping a token cost.

std::atomic<std::uint64_t> g_floor_index{0};
struct alignas(64) floor_counters {
  std::atomic<std::uint64_t> locks[2];
  std::atomic<std::uint64_t> unlocks[2];
};
thread_local floor_counters t_floor;

struct tls_floor_lib {
  static constexpr const char* name = "tls-floor";
  using reader_scope = no_scope;
  struct read_guard {
    read_guard() : idx_(g_floor_index.load(std::memory_order_relaxed) & 1) {
      std::atomic<std::uint64_t>& c = t_floor.locks[idx_];
      c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    ~read_guard() {
      std::atomic_signal_fence(std::memory_order_seq_cst);
      std::atomic<std::uint64_t>& c = t_floor.unlocks[idx_];
      c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;

   private:
    std::uint64_t idx_;
  };
};

const bool registered = [] {
  register_library<shared_mutex_lib>();
  register_library<rwlock_lib>();
  register_library<shared_ptr_lib>();
  register_map_rows(shared_ptr_lib::name, shared_ptr_hash_map);
  register_library<atomic_pair_lib>();
  register_library<tls_floor_lib>();
  return true;
}();

}  // namespace
}  // namespace bench
