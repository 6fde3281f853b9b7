// srcu's adapters: the default reader (with synchronize, call() and
// barrier()), synchronize_expedited as its own sync rows, the signal-safe
// and down_read/up_read readers, and retire() (which allocates a node).

#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "harness.h"
#include "srcu/srcu.h"

namespace bench {
namespace {

// One domain for every srcu row, defined as a user would define one.
srcu::domain g_domain({.name = "bench"});

// One read section of g_domain through a lock/unlock pair of members.
template <srcu::read_token (srcu::domain::*Lock)() noexcept,
          void (srcu::domain::*Unlock)(srcu::read_token) noexcept>
class token_guard {
 public:
  token_guard() : token_((g_domain.*Lock)()) {}
  ~token_guard() { (g_domain.*Unlock)(token_); }
  token_guard(const token_guard&) = delete;
  token_guard& operator=(const token_guard&) = delete;

 private:
  srcu::read_token token_;
};

struct srcu_lib {
  static constexpr const char* name = "srcu";
  // src/: tls_slot_table (16 B), tls_record (8), tls_callback_shard (4),
  // tls_running_callbacks (8); not all visible from here, so counted by hand.
  static constexpr std::size_t static_tls_bytes = 16 + 8 + 4 + 8;
  using reader_scope = no_scope;
  using updater_scope = no_scope;
  using read_guard = token_guard<&srcu::domain::read_lock, &srcu::domain::read_unlock>;
  static void synchronize() { g_domain.synchronize(); }
  using head = srcu::callback_head;
  static void defer(head* h, void (*fn)(head*)) { g_domain.call(h, fn); }
  static void barrier() { g_domain.barrier(); }
  static std::uint64_t grace_periods() { return g_domain.grace_periods_completed(); }
  static std::uint64_t heavy_barriers() { return srcu::all_domains_stats().heavy_barriers; }
  // A domain; touch() reads in it once from the calling thread (so the
  // domain has that thread's slot). Thread-safe.
  struct domain_object {
    srcu::domain dom{{.name = "bench-memory"}};
    void touch() { dom.read_unlock(dom.read_lock()); }
  };
};

struct srcu_signal_safe_lib {
  static constexpr const char* name = "srcu-signal-safe";
  using reader_scope = no_scope;
  using read_guard = token_guard<&srcu::domain::read_lock_signal_safe,
                                 &srcu::domain::read_unlock_signal_safe>;
};

struct srcu_down_up_lib {
  static constexpr const char* name = "srcu-down-up";
  using reader_scope = no_scope;
  // Released on the same thread here: this row measures cost.
  using read_guard = token_guard<&srcu::domain::down_read, &srcu::domain::up_read>;
};

struct srcu_retire_lib {
  static constexpr const char* name = "srcu-retire";
  using updater_scope = no_scope;
  struct head {
    void (*fn)(head*) = nullptr;
  };
  // retire(p, deleter): the deleter runs fn(p), like a call() would; what
  // this row adds over srcu's is retire's allocated node.
  static void defer(head* h, void (*fn)(head*)) {
    h->fn = fn;
    g_domain.retire(h, [](head* p) { p->fn(p); });
  }
  static void barrier() { g_domain.barrier(); }
};

// The concurrent_updaters row with every caller on a domain of its own:
// grace periods are not shared, but scans that overlap share heavy barriers
// (one membarrier(2) serves them all), so hb_per_call shows that sharing.
// The domains live only while the row runs: a domain id stays taken while its
// domain lives, and the ids a thread reads size its slot table (the
// memory_per_thread row would count 8 more entries).
constexpr int kOwnDomains = 8;  // the row's largest caller count
std::unique_ptr<srcu::domain> g_own_domains[kOwnDomains];
std::atomic<unsigned> g_own_next{0};

struct srcu_own_domains_lib {
  static constexpr const char* name = "srcu-own-domains";
  using updater_scope = no_scope;
  static void synchronize() {
    // A caller thread takes the next domain on its first call.
    thread_local srcu::domain& mine =
        *g_own_domains[g_own_next.fetch_add(1, std::memory_order_relaxed) % kOwnDomains];
    mine.synchronize();
  }
  static std::uint64_t grace_periods() {
    std::uint64_t n = 0;
    for (const auto& d : g_own_domains) n += d->grace_periods_completed();
    return n;
  }
  static std::uint64_t heavy_barriers() { return srcu::all_domains_stats().heavy_barriers; }
  static void row(benchmark::State& state) {
    for (auto& d : g_own_domains) d = std::make_unique<srcu::domain>(srcu::domain_options{.name = "bench-own"});
    concurrent_updaters<srcu_own_domains_lib>(state, [] { synchronize(); });
    for (auto& d : g_own_domains) d.reset();
  }
};

// srcu with its callbacks run on the updater's own thread, as ck_epoch's are
// (its caller dispatches with ck_epoch_poll()): the domain's executor queues
// each ready batch, and the updater runs the queue after every 64th call().
// Only the hash_map rows: against srcu's they show what freeing the old
// entries on srcu's callback worker (another thread) costs the updaters.
class caller_runs_executor final : public srcu::executor {
 public:
  void submit(srcu::callback_batch batch) noexcept override {
    std::lock_guard<std::mutex> g(mutex_);
    ready_.push_back(std::move(batch));
  }
  void run_ready() {
    std::deque<srcu::callback_batch> mine;
    {
      std::lock_guard<std::mutex> g(mutex_);
      mine.swap(ready_);
    }
    for (srcu::callback_batch& b : mine) b.run();
  }

 private:
  std::mutex mutex_;
  std::deque<srcu::callback_batch> ready_;
};

caller_runs_executor g_caller_runs;
// Lives only while a row runs (see g_own_domains).
std::unique_ptr<srcu::domain> g_caller_runs_domain;

struct srcu_caller_runs_lib {
  static constexpr const char* name = "srcu-caller-runs";
  using reader_scope = no_scope;
  using updater_scope = no_scope;
  struct read_guard {
    read_guard() : token(g_caller_runs_domain->read_lock()) {}
    ~read_guard() { g_caller_runs_domain->read_unlock(token); }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;
    srcu::read_token token;
  };
  using head = srcu::callback_head;
  static void defer(head* h, void (*fn)(head*)) { g_caller_runs_domain->call(h, fn); }
  static void after_defer() {
    thread_local unsigned deferred = 0;
    if ((++deferred & 63) == 0) g_caller_runs.run_ready();
  }
  // barrier() waits for batches only a caller runs: run them meanwhile.
  static void barrier() {
    std::atomic<bool> done{false};
    std::thread waiter([&] {
      g_caller_runs_domain->barrier();
      done.store(true);
    });
    while (!done.load()) {
      g_caller_runs.run_ready();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    waiter.join();
  }
  static std::uint64_t grace_periods() { return g_caller_runs_domain->grace_periods_completed(); }
  static void row(benchmark::State& state) {
    g_caller_runs_domain = std::make_unique<srcu::domain>(
        g_caller_runs, srcu::domain_options{.name = "bench-caller-runs"});
    hash_map<srcu_caller_runs_lib>(state);
    g_caller_runs_domain.reset();
  }
};

// srcu with the replaced entries kept by each updater in a reclaim_list and
// freed by it when poll() says their grace period is over: ck_epoch's model
// (its caller keeps and dispatches its own garbage). No callback is queued,
// so neither srcu's engine nor a worker touches an entry: an entry is
// allocated, replaced and freed on the updater's CPU. The list asks for a
// grace period at most once per millisecond (call()'s callback_delay), and
// frees a batch of 64 at a time. Only the hash_map rows.
std::unique_ptr<srcu::domain> g_reclaim_domain;  // lives only while a row runs

struct srcu_reclaim_list_lib {
  static constexpr const char* name = "srcu-reclaim-list";
  using reader_scope = no_scope;
  using updater_scope = no_scope;
  struct read_guard {
    read_guard() : token(g_reclaim_domain->read_lock()) {}
    ~read_guard() { g_reclaim_domain->read_unlock(token); }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;
    srcu::read_token token;
  };
  using head = srcu::callback_head;
  static void defer(head* h, void (*fn)(head*)) {
    // Made on the thread's first defer(), flushed when the map thread exits.
    thread_local srcu::reclaim_list garbage(*g_reclaim_domain);
    garbage.defer(h, fn);
  }
  // Each map thread's list is flushed when the thread exits (its destructor).
  static void barrier() {}
  static std::uint64_t grace_periods() { return g_reclaim_domain->grace_periods_completed(); }
  static void row(benchmark::State& state) {
    g_reclaim_domain = std::make_unique<srcu::domain>(srcu::domain_options{.name = "bench-reclaim-list"});
    hash_map<srcu_reclaim_list_lib>(state);
    g_reclaim_domain.reset();
  }
};

void warm() {
  srcu::callback_head h;
  g_domain.call(&h, [](srcu::callback_head*) {});
  g_domain.barrier();  // the engine and callback threads exist from here on
}

const bool registered = [] {
  register_library<srcu_lib>();
  register_sync_rows<srcu_lib>("srcu-expedited", [] { g_domain.synchronize_expedited(); });
  benchmark::RegisterBenchmark(
      row_name("concurrent_updaters", srcu_own_domains_lib::name).c_str(),
      srcu_own_domains_lib::row)
      ->ArgNames({"callers", "readers"})->Args({1, 0})->Args({2, 0})->Args({8, 0})
      ->UseManualTime()->Unit(benchmark::kMillisecond);
  register_library<srcu_signal_safe_lib>();
  register_library<srcu_down_up_lib>();
  register_defer_rows<srcu_retire_lib>(srcu_retire_lib::name, /*latency_row=*/false);
  register_map_rows(srcu_caller_runs_lib::name, srcu_caller_runs_lib::row);
  register_map_rows(srcu_reclaim_list_lib::name, srcu_reclaim_list_lib::row);
  add_warmer(warm);
  return true;
}();

}  // namespace
}  // namespace bench
