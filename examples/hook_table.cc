// hook_table — srcu::domain::call() from the two places where the kernel's
// call_srcu() once deadlocked: under the host's scheduler-like lock, and
// inside an async signal handler.
//
// The story. In March 2026 the Linux kernel's call_srcu() could deadlock:
// it took SRCU's own lock and, still holding it, woke a worker thread, and
// the wakeup takes the scheduler's runqueue lock. A BPF program attached
// inside the scheduler called call_srcu() while that runqueue lock was
// already held: call_srcu() -> SRCU lock -> wakeup -> runqueue lock, held by
// the very thread that was waiting. Any "defer this free" primitive that
// takes a lock, or waits for the thread that runs callbacks, has the same
// trap waiting for whoever calls it with the wrong lock held.
//
// The same shape in user space. A host program dispatches hooks (think BPF
// programs, plugins, tracing probes) from a table:
//  - dispatcher threads run the table's hooks while holding the host lock
//    (the "runqueue lock"), inside a read_lock() section;
//  - a SIGUSR1 storm (pthread_kill() at the dispatcher threads) runs the
//    hooks again inside the signal handler, inside a read_lock_signal_safe()
//    section, often while the interrupted thread holds the host lock;
//  - an updater thread swaps in a fresh copy of the table every millisecond;
//  - some hooks are one-shot probes that take themselves off the table the
//    first time they fire, by swapping the table from where they run: with
//    the host lock held, or inside the signal handler.
// Whoever swaps the table retires the old one with
// domain::call(head, reclaim_table): lock-free, never blocks, never
// allocates, async-signal-safe. reclaim_table() runs after a grace period on
// one of srcu's callback workers and takes the host lock itself (as the
// kernel's wakeup took the runqueue lock), so a call() that waited for the
// callback, or took a lock the callback path holds, would deadlock here.
//
// A signal handler may not allocate, so tables come from a fixed pool;
// "allocated" and "freed" below mean taken from and given back to it. At the
// end the program retires the last table, waits with barrier() for every
// callback, and checks that every table allocated was freed and that no
// reader ever saw its table recycled under it.
//
// To see the kernel's deadlock, reclaim in place of the call(): replace
// `hooks_domain.call(seen, &reclaim_table)` in replace_table() with
// `reclaim_table(seen)` (a "free" that takes the host lock at once). The
// first probe that detaches itself under the host lock hangs its dispatcher,
// then every thread that wants the lock, and the watchdog ends the program.
//
//   ./hook_table [--seconds N]      (default 2; a watchdog ends a hang)
#include <pthread.h>
#include <signal.h>

#include <srcu/srcu.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// Everything a signal handler touches is a lock-free atomic or immutable.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<void*>::is_always_lock_free);
static_assert(std::atomic<bool>::is_always_lock_free);

// --- Hooks ------------------------------------------------------------------
// A hook may run in a signal handler, so hooks only touch atomics.

enum class where { updater, under_host_lock, signal_handler };
enum class verdict { keep, detach };  // detach: take me off the table

std::atomic<std::uint64_t> events_counted{0};

verdict count_event(where) {
  events_counted.fetch_add(1, std::memory_order_relaxed);
  return verdict::keep;
}
// One-shot probes, each firing only in its own context.
verdict probe_under_host_lock(where w) {
  return w == where::under_host_lock ? verdict::detach : verdict::keep;
}
verdict probe_in_signal_handler(where w) {
  return w == where::signal_handler ? verdict::detach : verdict::keep;
}

struct hook {
  const char* name;
  verdict (*run)(where);
};
constexpr hook kHooks[] = {
    {"count_event", &count_event},
    {"probe_under_host_lock", &probe_under_host_lock},
    {"probe_in_signal_handler", &probe_in_signal_handler},
};
constexpr int kHookCount = static_cast<int>(std::size(kHooks));

// --- Tables and their pool --------------------------------------------------

// A list of hooks, written by whoever took the table from the pool and
// immutable once published. The callback_head base is what domain::call()
// queues.
struct hook_table : srcu::callback_head {
  // The pool's bookkeeping.
  std::atomic<bool> in_use{false};            // taken from the pool
  std::atomic<std::uint64_t> incarnation{0};  // bumped each time it is taken
  // The list.
  int size = 0;
  std::array<int, kHookCount> hooks{};        // indices into kHooks, in call order

  void attach_all() {
    for (int h = 0; h < kHookCount; ++h) hooks[h] = h;
    size = kHookCount;
  }
  void detach(int h) {
    int kept = 0;
    for (int i = 0; i < size; ++i) {
      if (hooks[i] != h) hooks[kept++] = hooks[i];
    }
    size = kept;
  }
};

// A fixed pool: take() claims a free table with one atomic exchange, so it is
// lock-free and async-signal-safe (also when the handler interrupts a take()
// on its own thread). It scans from the start, so a table given back is
// soon handed out again: one reclaimed too early would be rewritten under a
// reader still using it, and that reader would notice (pinned_table).
class table_pool {
 public:
  static constexpr std::size_t kSize = 1024;

  hook_table* take() noexcept {
    for (hook_table& t : tables_) {
      // Acquire: pairs with the release in give_back(), so the reclaimer's
      // grace period (every old reader's unlock) happens-before our writes.
      if (!t.in_use.exchange(true, std::memory_order_acquire)) {
        t.incarnation.fetch_add(1, std::memory_order_relaxed);
        allocated_.fetch_add(1, std::memory_order_relaxed);
        return &t;
      }
    }
    empty_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }

  void give_back(hook_table* t) noexcept {
    freed_.fetch_add(1, std::memory_order_relaxed);
    t->in_use.store(false, std::memory_order_release);  // pairs with take()
  }

  std::size_t in_use() const noexcept {
    std::size_t n = 0;
    for (const hook_table& t : tables_) n += t.in_use.load() ? 1 : 0;
    return n;
  }
  std::uint64_t allocated() const noexcept { return allocated_.load(); }
  std::uint64_t freed() const noexcept { return freed_.load(); }
  std::uint64_t times_empty() const noexcept { return empty_.load(); }

 private:
  std::array<hook_table, kSize> tables_;
  std::atomic<std::uint64_t> allocated_{0}, freed_{0}, empty_{0};
};

// --- The host ---------------------------------------------------------------

// Lock order: host_lock is taken by dispatchers and by reclaim_table(); srcu
// takes no lock in call(), the read-side calls or the signal handler. The
// handler never takes host_lock (it may have interrupted its holder).
std::mutex host_lock;  // the "runqueue lock": held while dispatching
std::uint64_t tables_reclaimed_under_host_lock = 0;  // guarded by host_lock

srcu::domain hooks_domain({.name = "hooks"});
table_pool pool;
std::atomic<hook_table*> current_table{nullptr};

std::atomic<std::uint64_t> swaps[3];  // per `where`: call()s made from there
std::atomic<std::uint64_t> lost_races{0};             // another swap came first
std::atomic<std::uint64_t> recycled_under_reader{0};  // must stay 0
std::atomic<std::uint64_t> handlers_run{0};
std::atomic<std::uint64_t> handlers_inside_host_lock{0};  // interrupted its holder
std::atomic<std::uint64_t> calls_inside_host_lock_in_handler{0};  // the kernel's case

// Set by a dispatcher while it holds host_lock; read by its own signal handler.
thread_local volatile sig_atomic_t holds_host_lock = 0;

// Runs after a grace period, on a srcu callback worker: no reader can still
// hold the table.
void reclaim_table(srcu::callback_head* head) {
  auto* table = static_cast<hook_table*>(head);
  std::lock_guard lock(host_lock);
  ++tables_reclaimed_under_host_lock;
  pool.give_back(table);
}

// Publishes an edited copy of `seen` in its place and retires `seen`.
// Precondition: the caller is inside a reader of hooks_domain and read
// `seen` from current_table in it. That reader is also why the compare-and-
// swap below has no ABA problem: `seen` cannot be reclaimed and handed out
// again before the reader ends.
// Lock-free and async-signal-safe: a pool take, a CAS, domain::call().
// Returns false when the pool is empty or another swap replaced `seen` first.
template <class Edit>
bool replace_table(hook_table* seen, Edit edit, where from) noexcept {
  hook_table* fresh = pool.take();
  if (fresh == nullptr) return false;
  fresh->size = seen->size;
  fresh->hooks = seen->hooks;
  edit(*fresh);
  // Release: pairs with the acquire load in pinned_table; a reader that
  // finds `fresh` finds its hooks written. Relaxed on failure: nothing is read
  // from the table that won.
  hook_table* expected = seen;
  if (!current_table.compare_exchange_strong(expected, fresh, std::memory_order_release,
                                             std::memory_order_relaxed)) {
    pool.give_back(fresh);  // never published: no reader can hold it
    lost_races.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  hooks_domain.call(seen, &reclaim_table);  // the call the kernel once deadlocked in
  swaps[static_cast<int>(from)].fetch_add(1, std::memory_order_relaxed);
  return true;
}

// The current table, as a reader found it. Precondition: inside a reader of
// hooks_domain, for as long as the table is used.
struct pinned_table {
  hook_table* table = current_table.load(std::memory_order_acquire);
  std::uint64_t incarnation = table->incarnation.load(std::memory_order_relaxed);

  // Counts a table recycled while its reader still used it: the bug that
  // the grace period before reclaim_table() prevents.
  void check_still_ours() const noexcept {
    if (table->incarnation.load(std::memory_order_relaxed) != incarnation) {
      recycled_under_reader.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

// Runs every hook of the pinned table; returns how many swaps it made.
int run_hooks(const pinned_table& pinned, where from) noexcept {
  hook_table* table = pinned.table;
  int swapped = 0;
  for (int i = 0; i < table->size; ++i) {
    const int h = table->hooks[i];
    if (kHooks[h].run(from) == verdict::detach) {
      // Once swapped, `table` is retired, yet still safe to finish walking:
      // this reader holds off its reclamation.
      swapped += replace_table(table, [h](hook_table& fresh) { fresh.detach(h); }, from) ? 1 : 0;
    }
  }
  return swapped;
}

// Async-signal-safe: the signal-safe reader, atomics, domain::call().
void on_sigusr1(int) {
  const int saved_errno = errno;
  const srcu::read_token token = hooks_domain.read_lock_signal_safe();
  const pinned_table pinned;
  const int swapped = run_hooks(pinned, where::signal_handler);
  pinned.check_still_ours();
  hooks_domain.read_unlock_signal_safe(token);
  handlers_run.fetch_add(1, std::memory_order_relaxed);
  if (holds_host_lock) {
    // The kernel's case: call() under a lock its caller cannot release.
    handlers_inside_host_lock.fetch_add(1, std::memory_order_relaxed);
    calls_inside_host_lock_in_handler.fetch_add(swapped, std::memory_order_relaxed);
  }
  errno = saved_errno;
}

std::atomic<bool> stop_workers{false}, stop_storm{false};

void dispatcher(std::atomic<std::uint64_t>& dispatches) {
  // The thread's first read_lock() allocates its reader slot (and takes a
  // library lock): do it here, not under host_lock.
  hooks_domain.read_unlock(hooks_domain.read_lock());
  std::uint64_t n = 0;
  while (!stop_workers.load(std::memory_order_relaxed)) {
    {
      std::lock_guard lock(host_lock);
      holds_host_lock = 1;
      const srcu::read_token token = hooks_domain.read_lock();
      const pinned_table pinned;
      run_hooks(pinned, where::under_host_lock);
      // The host's own work under its lock (the scheduler picking a task),
      // with the table still in use: long enough that signals often land
      // while the lock is held, and that a table reclaimed too early would
      // be recycled under this reader.
      const auto until = std::chrono::steady_clock::now() + 20us;
      while (std::chrono::steady_clock::now() < until) {
      }
      pinned.check_still_ours();
      hooks_domain.read_unlock(token);
      holds_host_lock = 0;
      ++n;
    }
    std::this_thread::sleep_for(20us);  // let the others (and reclaim_table) have the lock
  }
  dispatches.fetch_add(n);
}

// Puts every hook back on the table (re-arming the probes), once a
// millisecond. A failed swap (pool empty, or lost to a probe) is retried on
// the next round.
void updater() {
  while (!stop_workers.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(1ms);
    const srcu::read_token token = hooks_domain.read_lock();
    hook_table* seen = current_table.load(std::memory_order_acquire);
    replace_table(seen, [](hook_table& fresh) { fresh.attach_all(); }, where::updater);
    hooks_domain.read_unlock(token);
  }
}

void signal_storm(const std::vector<pthread_t>& targets, std::uint64_t& sent) {
  while (!stop_storm.load(std::memory_order_relaxed)) {
    for (pthread_t t : targets) {
      if (pthread_kill(t, SIGUSR1) == 0) ++sent;
    }
    std::this_thread::sleep_for(50us);
  }
}

// --- Watchdog ---------------------------------------------------------------
// Ends the program (status 2) if it has not finished within the limit,
// naming the phase it was stuck in.

std::atomic<const char*> phase{"starting"};

class watchdog {
 public:
  explicit watchdog(std::chrono::seconds limit)
      : thread_([this, limit] {
          std::unique_lock lock(mutex_);
          if (!done_cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "hook_table: watchdog: still in phase '%s' after %lld s\n",
                         phase.load(), static_cast<long long>(limit.count()));
            std::_Exit(2);
          }
        }) {}
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

int parse_seconds(int argc, char** argv) {
  if (argc == 1) return 2;
  if (argc == 3 && std::strcmp(argv[1], "--seconds") == 0) {
    char* end = nullptr;
    const long n = std::strtol(argv[2], &end, 10);
    if (*end == '\0' && n >= 1 && n <= 3600) return static_cast<int>(n);
  }
  std::fprintf(stderr, "usage: %s [--seconds N]   (1 <= N <= 3600, default 2)\n", argv[0]);
  std::exit(64);
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = parse_seconds(argc, argv);
  // Generous: a hang guard, not a speed check.
  watchdog guard(std::chrono::seconds(seconds + 60));

  hook_table* first = pool.take();
  first->attach_all();
  current_table.store(first, std::memory_order_release);

  struct sigaction sa {};
  sa.sa_handler = &on_sigusr1;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, nullptr) != 0) {
    std::perror("sigaction");
    return 1;
  }

  phase = "running";
  constexpr int kDispatchers = 3;
  std::atomic<std::uint64_t> dispatches{0};
  std::vector<std::thread> workers;
  std::vector<pthread_t> targets;
  for (int i = 0; i < kDispatchers; ++i) {
    workers.emplace_back(dispatcher, std::ref(dispatches));
    targets.push_back(workers.back().native_handle());
  }
  workers.emplace_back(updater);
  std::uint64_t signals_sent = 0;
  std::thread storm(signal_storm, std::cref(targets), std::ref(signals_sent));

  std::this_thread::sleep_for(std::chrono::seconds(seconds));

  phase = "stopping the signal storm";  // first: its targets must stay alive
  stop_storm = true;
  storm.join();
  phase = "stopping the dispatchers and the updater";
  stop_workers = true;
  for (std::thread& t : workers) t.join();

  phase = "barrier() after retiring the last table";
  hooks_domain.call(current_table.exchange(nullptr), &reclaim_table);
  hooks_domain.barrier();
  phase = "report";

  const auto count = [](where w) { return swaps[static_cast<int>(w)].load(); };
  std::uint64_t reclaimed_under_lock = 0;
  {
    std::lock_guard lock(host_lock);
    reclaimed_under_lock = tables_reclaimed_under_host_lock;
  }
  std::printf(
      "hook_table: %d s, %d dispatchers, 1 updater, SIGUSR1 storm\n"
      "  dispatches under the host lock   %llu\n"
      "  signal handlers run              %llu (%llu signals sent; %llu handlers\n"
      "                                   interrupted a thread holding the host lock)\n"
      "  hook events counted              %llu\n"
      "  call() by the updater            %llu\n"
      "  call() with the host lock held   %llu  (a probe detaching itself)\n"
      "  call() in a signal handler       %llu  (a probe detaching itself;\n"
      "                                   %llu of them with the host lock held)\n"
      "  swaps lost to a concurrent swap  %llu\n"
      "  tables allocated %llu, freed %llu (%llu of them by reclaim_table under the host lock);\n"
      "    pool of %zu, empty %llu times, %zu still in use\n"
      "  grace periods %llu; readers that saw their table recycled: %llu\n",
      seconds, kDispatchers, static_cast<unsigned long long>(dispatches.load()),
      static_cast<unsigned long long>(handlers_run.load()),
      static_cast<unsigned long long>(signals_sent),
      static_cast<unsigned long long>(handlers_inside_host_lock.load()),
      static_cast<unsigned long long>(events_counted.load()),
      static_cast<unsigned long long>(count(where::updater)),
      static_cast<unsigned long long>(count(where::under_host_lock)),
      static_cast<unsigned long long>(count(where::signal_handler)),
      static_cast<unsigned long long>(calls_inside_host_lock_in_handler.load()),
      static_cast<unsigned long long>(lost_races.load()),
      static_cast<unsigned long long>(pool.allocated()),
      static_cast<unsigned long long>(pool.freed()),
      static_cast<unsigned long long>(reclaimed_under_lock), table_pool::kSize,
      static_cast<unsigned long long>(pool.times_empty()), pool.in_use(),
      static_cast<unsigned long long>(hooks_domain.grace_periods_completed()),
      static_cast<unsigned long long>(recycled_under_reader.load()));

  bool ok = true;
  const auto expect = [&ok](bool holds, const char* what) {
    if (!holds) std::fprintf(stderr, "hook_table: check failed: %s\n", what);
    ok = ok && holds;
  };
  expect(pool.allocated() == pool.freed(), "every table allocated was freed");
  expect(pool.in_use() == 0, "the pool is full again");
  expect(recycled_under_reader.load() == 0, "no reader saw its table recycled");
  expect(count(where::under_host_lock) > 0, "call() ran with the host lock held");
  expect(count(where::signal_handler) > 0, "call() ran in a signal handler");
  return ok ? 0 : 1;
}
