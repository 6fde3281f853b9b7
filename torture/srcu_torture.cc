// srcu-torture — a torture test for srcu in the spirit of the Linux kernel's
// rcutorture: many readers of every flavour, writers using every update
// primitive, several domains, fault injection, and a deliberately broken mode
// that the test must catch. `srcu-torture --help` explains every option and
// how to read the report; torture/README.md is the short version.
//
// How a broken grace period is caught (the "pipe"):
//  - Each domain publishes a current element through std::atomic<element*>.
//    A writer swaps in a fresh element and retires the old one.
//  - At removal the old element's pipe count becomes 1. After that, every
//    full grace period that *began after the removal* adds one: a writer
//    that returns from a grace period bumps each waiting element removed
//    before the grace period began (it snapshots the removal sequence first),
//    and a call()/retire() callback bumps its own element and queues itself
//    again. At kPipeLen the element is "freed": poisoned and quarantined,
//    reused only kQuarantine later, never unmapped during the run.
//  - A reader loads the element inside its critical section and re-reads the
//    pipe count at the END of the section, before unlocking. Only a reader
//    that began before the removal can hold the element, and every grace
//    period counted above began after the removal, so each of them must wait
//    for that reader. A correct srcu therefore never lets a reader see more
//    than 1. Seeing 2 or more, poison, a recycled element (new generation) or
//    a corrupt payload means a grace period ended under a live reader.
//  - Reader Batch: grace_periods_completed() read after the lock and again
//    before the unlock. A grace period that begins after the lock must wait
//    for the section, so at most one (the one in flight) can complete: 2 or
//    more is an error too.
//
// Threads (per domain): readers and writers; plus two hand-off helpers that
// end down_read() sections with up_read() on another thread, an optional
// SIGUSR1 storm, and a watchdog for stalls. The main thread prints progress,
// replaces churned readers and does the fork.
//
// Nothing here is allowed to crash on a broken grace period: retired
// elements are never freed during the run, only poisoned, so a late reader
// reads poison and reports it.

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "srcu/srcu.h"

namespace {

// --- Constants ---------------------------------------------------------------

constexpr int kPipeLen = 10;  // histogram buckets 0..kPipeLen; freed at kPipeLen
constexpr std::uint32_t kMagicLive = 0x1e1ec0deu;
constexpr std::uint32_t kMagicFreed = 0x6b6b6b6bu;  // the kernel's POISON_FREE byte
constexpr std::uint64_t kPoison = 0x6b6b6b6b6b6b6b6bull;
constexpr int kPayloadWords = 6;
constexpr std::int64_t kQuarantineNs = 1'000'000'000;  // a freed element is reused 1 s later
constexpr std::size_t kMaxElements = 2'000'000;        // past this, quarantine is cut short
constexpr int kSignalHeads = 4096;
constexpr std::size_t kHandoffQueueMax = 256;
constexpr int kHandoffThreads = 2;
constexpr int kMaxErrorMessages = 20;  // per error kind
constexpr double kChildSeconds = 2.0;
constexpr std::int64_t kShutdownLimitNs = 30'000'000'000;
constexpr std::int64_t kStopAfterErrorNs = 1'000'000'000;

enum flavour : int { kLock, kGuard, kScoped, kSignalSafe, kUpDown, kFlavourCount };
constexpr const char* kFlavourNames[kFlavourCount] = {"lock", "guard", "scoped", "signal", "updown"};

enum primitive : int {
  kSync,
  kExpedited,
  kCall,
  kRetire,
  kCond,
  kPoll,
  kBarrier,
  kPrimitiveCount,
  kBusted = kPrimitiveCount,  // --busted only; not selectable with --primitives
  kPrimitiveSlots
};
constexpr const char* kPrimitiveNames[kPrimitiveSlots] = {
    "sync", "expedited", "call", "retire", "cond", "poll", "barrier", "busted"};

enum error_kind : int {
  kErrPipe,        // pipe count > 1 at the end of a section
  kErrFreed,       // the element was freed (poisoned) under the reader
  kErrRecycled,    // the element was reused (new generation) under the reader
  kErrCorrupt,     // payload does not match its generation
  kErrBatch,       // two or more grace periods completed inside one section
  kErrWriter,      // an update primitive broke its own contract (poll, barrier, counts)
  kErrStall,       // a writer or the callbacks made no progress for --stall-seconds
  kErrCallbacks,   // callbacks queued != invoked after the final barrier
  kErrLeak,        // an element neither current nor freed after the final drain
  kErrChild,       // the fork child failed
  kErrIsolation,   // a normal domain made fewer grace periods than the sleepy one
  kErrDelivery,    // a delivery scenario saw a callback lost, run twice, or a barrier() return early
  kErrorKinds
};
constexpr const char* kErrorNames[kErrorKinds] = {
    "pipe",  "freed",     "recycled", "corrupt",    "batch",     "writer-check",
    "stall", "callbacks", "leak",     "fork-child", "isolation", "delivery"};

enum fault_point : int {
  kFpReaderBetween,
  kFpReaderInSection,
  kFpReaderBeforeUnlock,
  kFpHandoffBeforeUp,
  kFpWriterAfterPublish,
  kFpWriterBeforeGp,
  kFpWriterAfterGp,
  kFpWriterBetween,
  kFaultPoints
};
constexpr const char* kFaultNames[kFaultPoints] = {
    "reader.between-sections", "reader.in-section",     "reader.before-unlock",
    "handoff.before-up_read",  "writer.after-publish",  "writer.before-gp",
    "writer.after-gp",         "writer.between-updates"};

enum callback_kind : int {
  kCbElement,
  kCbRetire,
  kCbProbe,
  kCbSignal,
  kCbFlood,
  kCbDeliveryTask,  // delivery scenarios: tasks and probes on the delivery domains
  kCbOwnedDomain,   // delivery scenarios: callbacks on domains created and destroyed during the run
  kCbSubmitHook,    // delivery scenarios: call()s made by an executor's submit()
  kCallbackKinds
};
constexpr const char* kCallbackNames[kCallbackKinds] = {
    "element call()", "retire", "barrier probes", "signal handler", "flood",
    "delivery tasks", "owned domains", "submit() hook"};

// Delivery scenarios (--delivery LIST, on by default): see delivery_torture.
enum delivery_scenario : int { kCrossBarrier, kNestedDomains, kDomainChurn, kDeliveryScenarios };
constexpr const char* kDeliveryScenarioNames[kDeliveryScenarios] = {"cross-barrier", "nested-domains",
                                                                     "domain-churn"};

// --- Options -----------------------------------------------------------------

struct busted_ops;

struct options {
  double duration_s = 30;
  int readers = 4;  // per domain
  int writers = 2;  // per domain
  int domains = 3;
  unsigned flavours = (1u << kFlavourCount) - 1;
  unsigned primitives = (1u << kPrimitiveCount) - 1;
  std::uint64_t seed = 0;
  double stat_interval_s = 5;
  bool sleepy_domain = true;
  int sleepy_min_ms = 100;
  int sleepy_max_ms = 500;
  int reader_delay_us = 20;
  int max_nest = 3;
  double yield_prob = 0.001;
  double lib_fault_prob = 0.0;  // library's own labelled points (SRCU_FAULT_INJECTION builds)
  bool signal_storm = false;
  bool thread_churn = false;
  bool fork = false;
  bool fwd_progress = false;
  int flood = 100'000;  // flood heads per writer
  double stall_s = 10;
  const busted_ops* busted = nullptr;  // --busted=MODE; null: the real primitives
  unsigned delivery = (1u << kDeliveryScenarios) - 1;
  bool keep_going = false;
};

// --- Output: write(2) only, so the fork child and a signal handler never
// --- meet a stdio lock held by a thread that does not exist.

char g_prefix[64] = "srcu-torture: ";  // progress and messages
char g_report_prefix[64] = "";         // report lines ("" in the parent)

void write_all(const char* s, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(STDOUT_FILENO, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

void vemit(const char* prefix, const char* fmt, va_list ap) {
  char buf[4096];
  int n = std::snprintf(buf, sizeof buf, "%s", prefix);
  const int m = std::vsnprintf(buf + n, sizeof buf - static_cast<std::size_t>(n) - 1, fmt, ap);
  n = std::min<int>(n + std::max(m, 0), static_cast<int>(sizeof buf) - 2);
  buf[n++] = '\n';
  write_all(buf, static_cast<std::size_t>(n));
}

[[gnu::format(printf, 1, 2)]] void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemit(g_prefix, fmt, ap);
  va_end(ap);
}

[[gnu::format(printf, 1, 2)]] void line(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemit(g_report_prefix, fmt, ap);
  va_end(ap);
}

unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

// "a,b,c": the names whose bit is set in mask.
std::string list_names(unsigned mask, const char* const* names, int count) {
  std::string s;
  for (int i = 0; i < count; ++i) {
    if (mask & (1u << i)) {
      if (!s.empty()) s += ',';
      s += names[i];
    }
  }
  return s;
}

// --- Time --------------------------------------------------------------------

std::int64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Sleeps until the deadline even when a signal interrupts the sleep.
void sleep_ns(std::int64_t ns) noexcept {
  if (ns <= 0) return;
  const std::int64_t until = now_ns() + ns;
  timespec ts{static_cast<time_t>(until / 1'000'000'000), static_cast<long>(until % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}
void sleep_us(std::int64_t us) noexcept { sleep_ns(us * 1000); }

void spin_ns(std::int64_t ns) noexcept {
  const std::int64_t until = now_ns() + ns;
  while (now_ns() < until) {
  }
}

// --- Random numbers (splitmix64; one generator per thread) --------------------

class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint32_t below(std::uint32_t n) noexcept {
    return static_cast<std::uint32_t>(((next() >> 32) * n) >> 32);
  }
  std::uint32_t between(std::uint32_t lo, std::uint32_t hi) noexcept { return lo + below(hi - lo + 1); }
  bool one_in(std::uint32_t n) noexcept { return below(n) == 0; }
  bool chance(double p) noexcept {
    return p > 0 && static_cast<double>(next() >> 11) * 0x1.0p-53 < p;
  }

 private:
  std::uint64_t state_;
};

std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b) {
  rng r(seed ^ (a * 0x100000001b3ull) ^ (b << 40));
  r.next();
  return r.next();
}

// --- Counters ----------------------------------------------------------------

// One writing thread at a time (a load and a store, no RMW); any thread reads.
struct counter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

// Any number of writers, also signal handlers (lock-free RMW).
struct shared_counter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept { value.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

// --- Elements ------------------------------------------------------------------

struct torture_domain;

// What readers walk. Every field a reader touches is atomic, so reading a
// freed (poisoned) or recycled element is a detected error, not undefined.
struct element {
  srcu::callback_head cb;  // the call() cycle; see element_of()
  std::atomic<std::uint32_t> magic{kMagicLive};
  std::atomic<int> pipe{0};
  std::atomic<std::uint64_t> generation{0};
  std::atomic<std::uint64_t> payload[kPayloadWords];
  // Writer side only; readers never look at these.
  torture_domain* owner = nullptr;
  std::uint64_t removal_seq = 0;
  std::int64_t freed_at_ns = 0;
};

element* element_of(srcu::callback_head* h) noexcept {
  return reinterpret_cast<element*>(reinterpret_cast<char*>(h) - offsetof(element, cb));
}

std::uint64_t payload_word(std::uint64_t generation, int i) noexcept {
  return ((generation + 1) * 0x9e3779b97f4a7c15ull) ^ (static_cast<std::uint64_t>(i) * 0xbf58476d1ce4e5b9ull);
}

// Elements are never returned to malloc during a run. free() poisons and
// quarantines; get() reuses only elements freed kQuarantineNs ago, so a
// reader that a broken grace period left behind reads poison.
class element_pool {
 public:
  element_pool() = default;
  element_pool(const element_pool&) = delete;
  element_pool& operator=(const element_pool&) = delete;
  ~element_pool() {
    for (element* e : all_) delete e;
  }

  // A live element with pipe count 0 and a new generation. The caller
  // publishes it with a release store.
  element* get(torture_domain* owner) {
    element* e = nullptr;
    {
      std::lock_guard lk(mutex_);
      if (!quarantine_.empty() && (now_ns() - quarantine_.front()->freed_at_ns >= kQuarantineNs ||
                                   all_.size() >= kMaxElements)) {
        e = quarantine_.front();
        quarantine_.pop_front();
        reused_.add();
      }
    }
    if (e == nullptr) {
      e = new element;
      std::lock_guard lk(mutex_);
      all_.push_back(e);
      allocated_.add();
    }
    const std::uint64_t gen = e->generation.load(std::memory_order_relaxed) + 1;
    e->generation.store(gen, std::memory_order_relaxed);
    for (int i = 0; i < kPayloadWords; ++i) e->payload[i].store(payload_word(gen, i), std::memory_order_relaxed);
    e->pipe.store(0, std::memory_order_relaxed);
    e->owner = owner;
    e->removal_seq = 0;
    e->magic.store(kMagicLive, std::memory_order_relaxed);
    return e;
  }

  // Poison (the `freed` flag is the magic) and quarantine.
  void free(element* e) {
    e->magic.store(kMagicFreed, std::memory_order_relaxed);
    for (auto& w : e->payload) w.store(kPoison, std::memory_order_relaxed);
    e->freed_at_ns = now_ns();
    std::lock_guard lk(mutex_);
    quarantine_.push_back(e);
    freed_.add();
  }

  std::uint64_t allocated() const noexcept { return allocated_.get(); }
  std::uint64_t freed() const noexcept { return freed_.get(); }
  std::uint64_t reused() const noexcept { return reused_.get(); }
  std::size_t quarantined() {
    std::lock_guard lk(mutex_);
    return quarantine_.size();
  }
  std::size_t total() {
    std::lock_guard lk(mutex_);
    return all_.size();
  }

 private:
  std::mutex mutex_;
  std::deque<element*> quarantine_;  // guarded by mutex_
  std::vector<element*> all_;        // guarded by mutex_
  shared_counter allocated_, freed_, reused_;
};

// --- Per-domain and per-thread state -------------------------------------------

class run;

struct domain_spec {
  srcu::domain* dom;
  const char* name;
  bool sleepy;
};

struct torture_domain {
  run* owner_run = nullptr;
  int index = 0;
  bool sleepy = false;
  const char* name = "";
  srcu::domain* dom = nullptr;
  std::atomic<element*> current{nullptr};

  // Elements retired through a synchronous primitive, waiting for their
  // pipe count to reach kPipeLen.
  std::mutex waiting_mutex;
  std::vector<element*> waiting;             // guarded by waiting_mutex
  std::atomic<std::uint64_t> removal_seq{0};  // written under waiting_mutex

  std::atomic<std::int64_t> longest_gp_ns{0};
  std::atomic<int> longest_gp_primitive{-1};
  shared_counter updates;
  std::uint64_t gp_at_start = 0;
  std::uint64_t gp_at_end = 0;
  std::size_t slots_at_end = 0;
  srcu::domain_stats stats_at_end{};  // domain::stats() at the end
};

struct reader_stats {
  counter pipe[kPipeLen + 1];   // pipe count seen at the end of a section
  counter batch[kPipeLen + 1];  // grace periods completed during a section
  counter ops[kFlavourCount];   // sections begun, nested ones included
  counter nested;               // sections at depth > 0
  counter handed_off;           // down_read sections ended by a helper (helper's stats)
  counter long_sleeps;          // sleepy-domain sleeps inside sections
  counter short_delays;         // spins, yields, short sleeps inside sections
};

struct worker {
  std::thread thread;
  std::atomic<bool> done{false};
};

struct reader_slot {
  int index = 0;
  torture_domain* home = nullptr;
  reader_stats stats;
  worker w;
  std::uint64_t generation = 0;  // threads started in this slot (churn)
};

struct reader_ctx {
  reader_stats* stats;
  rng rand;
  bool storm;  // in a reader storm (--fwd-progress): no voluntary delays
};

struct observation {
  torture_domain* td = nullptr;
  element* e = nullptr;
  std::uint64_t generation = 0;
  std::uint64_t gp_start = 0;
  flavour f = kLock;
  int depth = 0;
};

struct handoff_item {
  srcu::read_token token;
  observation o;
};

struct barrier_probe {
  srcu::callback_head head;  // first member
  std::atomic<bool> ran{false};
  run* owner = nullptr;
};

struct flood_head {
  srcu::callback_head head;  // first member
  std::atomic<bool> queued{false};
  run* owner = nullptr;
};

struct signal_head {
  srcu::callback_head head;  // first member
  std::atomic<bool> busy{false};
  run* owner = nullptr;
};

// An element retired through --busted=early-flip: it moves one step down the
// pipe when grace_periods_completed() passes the snapshot.
struct early_flip_wait {
  element* e = nullptr;
  std::uint64_t completed_at_removal = 0;
};

struct writer_state {
  int id = 0;
  torture_domain* td = nullptr;
  worker w;
  counter ops[kPrimitiveSlots];
  counter cond_already_done;  // cond_synchronize() found its cookie done already
  counter flood_calls;
  std::atomic<std::int64_t> longest_ns[kPrimitiveSlots] = {};  // this writer's longest wait, per primitive
  std::atomic<std::int64_t> last_progress_ns{0};
  std::atomic<int> in_primitive{-1};
  bool stall_reported = false;  // watchdog only
  barrier_probe probe;
  std::unique_ptr<flood_head[]> flood;
  std::size_t flood_size = 0;
  std::deque<early_flip_wait> early_flip;  // --busted=early-flip; snapshots in nondecreasing order
};

std::atomic<run*> g_signal_run{nullptr};

void element_callback(srcu::callback_head* h);
void probe_callback(srcu::callback_head* h);
void flood_callback(srcu::callback_head* h);
void signal_head_callback(srcu::callback_head* h);
void on_sigusr1(int);

// The torture program's own broken "grace periods" (--busted=MODE), one ops
// table per mode, as rcutorture's rcu_busted_ops. Each exists only to prove
// that the test catches it; none is, or may ever be, part of the library.
// Every writer retires every element through the mode's retire(); the
// definitions and the table (kBustedOps) follow class run.
struct busted_ops {
  const char* name;
  const char* summary;  // one line, for the start of the run
  // Retires `old`, just removed from w's domain (pipe count 1).
  void (run::*retire)(writer_state& w, element* old, rng& rand);
  // Between updates, and once more with stopping = true when the writer
  // leaves: moves elements the mode keeps to itself along. Null: none kept.
  void (run::*advance)(writer_state& w, bool stopping);
};

// --busted=noop: returns at once, without waiting for any reader.
void busted_grace_period(srcu::domain& /*unused*/) noexcept {}

class delivery_torture;

// --- The run ---------------------------------------------------------------------

class run {
 public:
  run(const options& opt, const std::vector<domain_spec>& specs, bool is_child);
  run(const run&) = delete;
  run& operator=(const run&) = delete;
  ~run();

  // Runs the torture, stops every thread, drains, checks. True when clean.
  bool execute();
  // Snapshot of per-domain numbers (before the domains go away).
  void capture_domain_stats();
  srcu::process_stats all_stats_at_end_{};
  void print_report();
  bool success() const noexcept { return total_errors() == 0; }

  // Entry points used from callbacks and the signal handler.
  void callback_step(element* e, bool via_retire);
  void in_signal_handler() noexcept;
  shared_counter cb_queued_[kCallbackKinds];
  shared_counter cb_invoked_[kCallbackKinds];

  // Broken grace periods (busted_ops; --busted=MODE).
  void busted_noop_retire(writer_state& w, element* old, rng& rand);
  void busted_early_flip_retire(writer_state& w, element* old, rng& rand);
  void busted_early_flip_advance(writer_state& w, bool stopping);

 private:
  friend class delivery_torture;  // reports errors and counts callbacks through the run

  // Readers.
  void reader_thread(reader_slot& slot);
  void start_reader(reader_slot& slot);
  void section(reader_ctx& rc, torture_domain& td, int depth);
  void inside(reader_ctx& rc, torture_domain& td, flavour f, int depth);
  void middle(reader_ctx& rc, torture_domain& td, int depth);
  observation begin_observation(torture_domain& td, flavour f, int depth);
  void end_observation(const observation& o, reader_stats& st);
  flavour pick_flavour(rng& rand) const noexcept;
  void handoff_thread(int i);
  bool try_handoff(const handoff_item& item);

  // Writers.
  void writer_thread(writer_state& w);
  void update(writer_state& w, primitive p, rng& rand);
  std::uint64_t add_to_waiting(torture_domain& td, element* e);
  void pipe_update(torture_domain& td, std::uint64_t snapshot);
  void check_after_gp(torture_domain& td, primitive p, srcu::poll_cookie c, std::uint64_t gp_before);
  void note_latency(writer_state& w, primitive p, std::int64_t ns);
  void flood_burst(writer_state& w);

  // Infrastructure.
  void storm_thread();
  void watchdog_thread();
  void fault(fault_point p, rng& rand);
  [[gnu::format(printf, 3, 4)]] void error(error_kind k, const char* fmt, ...);
  void error_from_signal(error_kind k, const char* msg) noexcept;
  void note_first_error() noexcept;
  std::uint64_t total_errors() const noexcept;
  void maintain_readers();
  void do_fork();
  void reap_child(bool block);
  void print_progress(std::int64_t now);
  void shutdown();
  bool join_within(worker& w, const char* what, std::int64_t deadline);
  [[noreturn]] void abandon();
  void final_drain();
  void sum_pipe(std::uint64_t (&pipe)[kPipeLen + 1], std::uint64_t (&batch)[kPipeLen + 1]) const;
  std::uint64_t reader_sections() const;
  std::uint64_t callbacks_queued() const;
  std::uint64_t callbacks_invoked() const;
  std::uint64_t updates() const;
  std::uint64_t seed_for(std::uint64_t kind, std::uint64_t index) const {
    return mix_seed(opt_.seed, kind, index);
  }

  options opt_;
  bool is_child_;
  std::vector<std::unique_ptr<torture_domain>> domains_;
  element_pool pool_;
  std::vector<std::unique_ptr<reader_slot>> readers_;
  std::vector<std::unique_ptr<writer_state>> writers_;
  std::vector<flavour> flavours_;
  std::vector<primitive> primitives_;

  std::atomic<bool> stop_readers_{false};
  std::atomic<bool> stop_writers_{false};
  std::atomic<bool> stop_storm_{false};
  std::atomic<bool> stop_watchdog_{false};
  std::atomic<bool> draining_{false};
  std::atomic<std::int64_t> drain_start_ns_{0};

  // Hand-off helpers (down_read here, up_read there).
  std::mutex handoff_mutex_;
  std::condition_variable handoff_cv_;
  std::deque<handoff_item> handoff_queue_;  // guarded by handoff_mutex_
  bool handoff_stop_ = false;               // guarded by handoff_mutex_
  worker handoff_workers_[kHandoffThreads];
  reader_stats handoff_stats_[kHandoffThreads];
  bool handoff_enabled_ = false;

  // Signal storm.
  std::mutex targets_mutex_;
  std::vector<pthread_t> targets_;  // guarded by targets_mutex_
  worker storm_worker_;
  std::unique_ptr<signal_head[]> signal_heads_;
  std::atomic<std::uint32_t> signal_rr_{0};
  shared_counter signals_sent_, signal_sections_, signal_calls_, signal_no_head_;
  shared_counter signal_pipe_[kPipeLen + 1];
  shared_counter signal_batch_[kPipeLen + 1];

  worker watchdog_worker_;

  // Delivery scenarios (null with --no-delivery and in the fork child).
  std::unique_ptr<delivery_torture> delivery_;
  std::atomic<const char*> drain_stage_{"synchronize()/barrier() with every torture thread stopped"};

  // Errors and fault injection.
  shared_counter errors_[kErrorKinds];
  std::atomic<int> messages_[kErrorKinds] = {};  // printed, per kind (a flood of one kind hides no other)
  std::atomic<std::int64_t> first_error_ns_{0};
  shared_counter faults_[kFaultPoints];

  // Fork.
  pid_t child_pid_ = -1;
  int child_status_ = 0;
  bool child_reaped_ = false;
  std::int64_t fork_ns_ = 0;

  // Bookkeeping for the report.
  std::vector<domain_spec> specs_;
  std::int64_t start_ns_ = 0;
  std::int64_t end_ns_ = 0;
  bool stopped_early_ = false;
  std::uint64_t readers_started_ = 0;
  std::uint64_t flood_invoked_during_run_ = 0;
  std::uint64_t flood_max_outstanding_ = 0;
  std::uint64_t queued_at_end_ = 0, invoked_at_end_ = 0;
  std::atomic<bool> drained_{false};  // the final barrier() loop finished
  std::uint64_t prev_ops_ = 0;
  std::int64_t prev_stat_ns_ = 0;
};

// --- Callbacks (plain functions: srcu hands back only the head) -----------------

void element_callback(srcu::callback_head* h) {
  element* e = element_of(h);
  run& r = *e->owner->owner_run;
  r.cb_invoked_[kCbElement].add();
  r.callback_step(e, /*via_retire=*/false);
}

struct element_retirer {
  void operator()(element* e) const {
    run& r = *e->owner->owner_run;
    r.cb_invoked_[kCbRetire].add();
    r.callback_step(e, /*via_retire=*/true);
  }
};

void probe_callback(srcu::callback_head* h) {
  auto* p = reinterpret_cast<barrier_probe*>(h);
  p->owner->cb_invoked_[kCbProbe].add();
  p->ran.store(true, std::memory_order_release);
}

void flood_callback(srcu::callback_head* h) {
  auto* f = reinterpret_cast<flood_head*>(h);
  f->owner->cb_invoked_[kCbFlood].add();
  // srcu cleared head.func before calling us, so the writer may queue it again.
  f->queued.store(false, std::memory_order_release);
}

void signal_head_callback(srcu::callback_head* h) {
  auto* s = reinterpret_cast<signal_head*>(h);
  s->owner->cb_invoked_[kCbSignal].add();
  s->busy.store(false, std::memory_order_release);
}

void on_sigusr1(int /*signo*/) {
  run* r = g_signal_run.load(std::memory_order_acquire);
  if (r != nullptr) r->in_signal_handler();
}

// --- Delivery scenarios -------------------------------------------------------------
//
// Callback delivery under stress (--delivery LIST; all three by default).
// Six long-lived "delivery domains" run beside the tortured ones: a leaf and
// an upper domain on each of srcu's callback workers, a thread pool (an
// executor of the torture's own: a queue and 1 or 2 threads) and an inline
// executor (submit() runs the batch on the spot). Two submit()s of these
// executors in three call() into a delivery domain while holding the
// executor's lock; one in 32 first waits for another domain (barrier() of
// leaf-srcu or synchronize() of a leaf), as the executor contract allows.
//
//   cross-barrier   tasks queued on the upper domains barrier(),
//                   call()+barrier() and synchronize() a leaf domain, or
//                   synchronize() their own, from inside their callbacks
//   nested-domains  tasks on the upper domains create a domain, use it
//                   (call(), readers, synchronize()) and delete it in the
//                   same callback or a later one, or retire() an object that
//                   owns it; the thread retires such objects too. Either way
//                   ~domain runs inside another domain's callback, with
//                   callbacks still queued on the domain it destroys.
//   domain-churn    a thread creates domains (on every kind of executor, a
//                   private pool included), queues callbacks, some of which
//                   queue more while ~domain runs, and destroys them at once
//
// A callback_ledger sits beside every short-lived domain: it counts each
// callback queued on it and checks, once ~domain has returned, that each ran
// exactly once (a "delivery" error otherwise).
//
// No deadlock by construction: only callbacks of the upper domains wait, and
// only for leaf or short-lived domains, whose callbacks never wait; no
// callback waits for a domain served by the pool thread it runs on; and
// nothing calls barrier() of a domain from that domain's own callbacks or
// from its executor's submit() (a misuse srcu aborts on). A wait that does not
// end is therefore the library's. Each scenario's thread waits for the
// callbacks of its round and reports progress; the watchdog turns a round
// that has not finished within --stall-seconds into a STALL that names what
// the thread and the latest waiting callback were doing.

constexpr int kHookHeads = 256;
constexpr const char* kScenarioThread = "the scenario's thread";  // "who" in a stage_note
constexpr int kMaxChain = 4;  // a callback on a short-lived domain queues up to 3 more, one after the other

// Where a domain's callbacks run.
enum callback_site : int { kOnSrcuThread, kOnPool1, kOnPool2, kOnInline, kOnPrivatePool, kCallbackSites };
constexpr const char* kCallbackSiteNames[kCallbackSites] = {"srcu's callback workers", "1-thread pool",
                                                            "2-thread pool", "inline executor",
                                                            "private pool"};
constexpr int kSharedSites = kOnPrivatePool;  // the sites that outlive every short-lived domain

struct delivery_domain_spec {
  const char* name;
  const char* in_callback;  // for stall messages
  callback_site site;
};
// Leaves first: their callbacks never wait. Upper domains' callbacks wait for leaves.
constexpr int kLeafDomains = 3;
constexpr int kDeliveryDomainCount = 6;
constexpr delivery_domain_spec kDeliveryDomainSpecs[kDeliveryDomainCount] = {
    {"leaf-srcu", "a callback of leaf-srcu", kOnSrcuThread},
    {"leaf-pool", "a callback of leaf-pool", kOnPool1},
    {"leaf-inline", "a callback of leaf-inline", kOnInline},
    {"upper-srcu", "a callback of upper-srcu", kOnSrcuThread},
    {"upper-pool", "a callback of upper-pool", kOnPool2},
    {"upper-inline", "a callback of upper-inline", kOnInline},
};
// Names of the short-lived domains (domain_options keeps the pointer).
constexpr const char* kShortLivedNames[2][kCallbackSites] = {
    {"nested-srcu", "nested-pool1", "nested-pool2", "nested-inline", "nested-private"},
    {"churn-srcu", "churn-pool1", "churn-pool2", "churn-inline", "churn-private"}};

enum cross_action : int {
  kBarrierLeaf,          // the thread queued a probe on the leaf first; barrier() must see it ran
  kCallThenBarrierLeaf,  // the callback queues the probe, then barrier()s
  kCallLeaf,             // call() only; the round waits for the probe
  kSynchronizeLeaf,
  kSynchronizeOwn,  // synchronize() of the domain whose callback this is
  kCrossActions
};
constexpr const char* kCrossActionNames[kCrossActions] = {"barrier()", "call()+barrier()", "call()",
                                                          "synchronize() of a leaf",
                                                          "synchronize() of its own domain"};

enum nested_action : int { kDeleteInSameCallback, kDeleteInLaterCallback, kRetireOwner, kNestedActions };

class delivery_torture;

// Batches and callbacks one kind of executor ran.
struct executor_stats {
  shared_counter batches;
  shared_counter callbacks;
};

// An executor of the torture's own: a queue and 1 or 2 threads. submit()
// runs the delivery hooks (the waiting one first, without the lock; then the
// call() with the pool's lock held), then queues the batch.
class pool_executor final : public srcu::executor {
 public:
  pool_executor(delivery_torture& hook, executor_stats& stats, int threads);
  pool_executor(const pool_executor&) = delete;
  pool_executor& operator=(const pool_executor&) = delete;
  // Runs every batch still queued, then joins the threads. The domains that
  // use the pool must be gone (an executor outlives its domains).
  ~pool_executor();
  void submit(srcu::callback_batch batch) noexcept override;

 private:
  void thread_main();

  delivery_torture& hook_;
  executor_stats& stats_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<srcu::callback_batch> queue_;  // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_
  std::vector<std::thread> threads_;
};

// submit() runs the delivery hooks (as pool_executor's), then the batch
// on the spot, on the thread that hands it over (one of srcu's callback workers).
class inline_executor final : public srcu::executor {
 public:
  inline_executor(delivery_torture& hook, executor_stats& stats) : hook_(hook), stats_(stats) {}
  void submit(srcu::callback_batch batch) noexcept override;

 private:
  delivery_torture& hook_;
  executor_stats& stats_;
  std::mutex mutex_;  // held across the hook, not across run()
};

// What a scenario's thread, or the latest callback of its round to begin a
// wait, is doing: "<who>: <doing> <what>", three static strings.
struct stage_note {
  std::atomic<const char*> who{kScenarioThread};
  std::atomic<const char*> doing{"starting"};
  std::atomic<const char*> what{""};
  void set(const char* w, const char* d, const char* x = "") noexcept {
    who.store(w, std::memory_order_relaxed);
    doing.store(d, std::memory_order_relaxed);
    what.store(x, std::memory_order_relaxed);
  }
  std::string describe() const {
    std::string s = who.load(std::memory_order_relaxed);
    s += ": ";
    s += doing.load(std::memory_order_relaxed);
    const char* x = what.load(std::memory_order_relaxed);
    if (*x != '\0') (s += ' ') += x;
    return s;
  }
};

// One round of a scenario: the callbacks its thread waits for.
struct delivery_round {
  std::atomic<int> outstanding{0};
  stage_note stage;  // the latest wait begun by a callback of the round
  void add() noexcept { outstanding.fetch_add(1, std::memory_order_relaxed); }
  // A callback's last touch of the round (and of its task): the thread may
  // free both as soon as the count reaches 0.
  void finish() noexcept { outstanding.fetch_sub(1, std::memory_order_acq_rel); }
};

class callback_ledger;

struct ledger_entry {
  srcu::callback_head head;  // first member
  std::atomic<int> runs{0};
  int children = 0;  // when it runs, it queues one more, which queues children - 1
  callback_ledger* ledger = nullptr;
};

// Every callback queued on one short-lived domain, and how often each ran.
// It is declared before the domain in owned_domain, so its destructor runs
// after ~domain has returned and checks that each ran exactly once.
class callback_ledger {
 public:
  callback_ledger(delivery_torture& d, const char* domain_name, callback_site site, std::size_t capacity)
      : delivery_(d), name_(domain_name), site_(site), entries_(new ledger_entry[capacity]), capacity_(capacity) {}
  callback_ledger(const callback_ledger&) = delete;
  callback_ledger& operator=(const callback_ledger&) = delete;
  ~callback_ledger();

  void attach(srcu::domain& dom) noexcept { dom_ = &dom; }
  // Queues a callback on the domain that queues `children` more, one after
  // the other, each from inside the previous one.
  void queue(int children);
  void on_run(ledger_entry& e);
  void mark_destroying() noexcept { destroying_.store(true, std::memory_order_relaxed); }

 private:
  delivery_torture& delivery_;
  const char* const name_;
  const callback_site site_;
  srcu::domain* dom_ = nullptr;
  std::unique_ptr<ledger_entry[]> entries_;
  const std::size_t capacity_;
  std::atomic<std::size_t> next_{0};  // entries handed out
  std::atomic<bool> destroying_{false};
  std::atomic<std::uint64_t> queued_while_destroying_{0};
};

// A domain and the ledger of its callbacks. Deleting it runs ~domain.
struct owned_domain {
  owned_domain(delivery_torture& d, const char* domain_name, const srcu::domain_options& options,
               callback_site site, std::size_t capacity)
      : name(domain_name), ledger(d, domain_name, site, capacity), dom(options) {
    ledger.attach(dom);
  }
  const char* const name;
  callback_ledger ledger;  // before `dom`: destroyed after it
  srcu::domain dom;
};

struct delivery_domain {
  const delivery_domain_spec* spec = nullptr;
  std::unique_ptr<srcu::domain> dom;
};

// A probe queued on a leaf domain; a barrier() of the leaf must see it ran.
struct delivery_probe {
  srcu::callback_head head;  // first member
  std::atomic<int> runs{0};
  delivery_torture* owner = nullptr;
  delivery_round* round = nullptr;
};

// cross-barrier: runs on an upper domain and waits for a leaf (or itself).
struct cross_task {
  srcu::callback_head head;  // first member
  cross_action action = kBarrierLeaf;
  delivery_domain* home = nullptr;    // upper
  delivery_domain* target = nullptr;  // leaf
  delivery_probe probe;
  delivery_torture* owner = nullptr;
  delivery_round* round = nullptr;
};

// A later callback (on an upper domain) deletes a domain an earlier one created.
struct deferred_delete {
  srcu::callback_head head;  // first member
  owned_domain* victim = nullptr;
  delivery_domain* home = nullptr;
  delivery_torture* owner = nullptr;
  delivery_round* round = nullptr;
};

// nested-domains: runs on an upper domain, creates a domain and has it deleted.
struct nested_task {
  srcu::callback_head head;  // first member
  nested_action action = kDeleteInSameCallback;
  callback_site site = kOnSrcuThread;  // of the domain it creates
  std::uint64_t seed = 0;
  delivery_domain* home = nullptr;   // upper
  delivery_domain* later = nullptr;  // upper: deletes it later, or retires its owner
  deferred_delete later_delete;
  delivery_torture* owner = nullptr;
  delivery_round* round = nullptr;
};

// retire() of an owned_domain: its ~domain runs in a callback of `home`.
struct owned_domain_deleter {
  delivery_torture* owner;
  delivery_domain* home;
  delivery_round* round;
  void operator()(owned_domain* od) const;
};

// A head the executors' submit() hook call()s with; reused once it ran.
struct hook_head {
  srcu::callback_head head;  // first member
  std::atomic<bool> busy{false};
  delivery_torture* owner = nullptr;
};

struct delivery_worker {
  delivery_scenario scenario = kCrossBarrier;
  worker w;
  rng rand{0};
  delivery_round round;
  stage_note stage;  // what the thread itself is doing
  std::atomic<std::int64_t> last_progress_ns{0};
  std::atomic<bool> stall_reported{false};
  std::atomic<bool> abandoned{false};  // left a round the library never finished
  counter rounds;
};

class delivery_torture {
 public:
  delivery_torture(run& r, const options& opt);
  delivery_torture(const delivery_torture&) = delete;
  delivery_torture& operator=(const delivery_torture&) = delete;
  ~delivery_torture();

  void start();  // executors, delivery domains, one thread per scenario
  void check_stalls(std::int64_t now, std::int64_t stall_ns);  // the watchdog
  // Stops the scenarios' threads. False when one is stuck (the library never
  // finished its round): the caller abandons the run.
  bool stop(std::int64_t deadline);
  // Hooks off, the last barrier()s, then the delivery domains and executors
  // go (the run's final drain).
  void teardown();
  void print_report();
  std::uint64_t rounds() const;

  // Scenario rounds (kDeliveryScenarioOps).
  void cross_barrier_round(delivery_worker& w);
  void nested_domains_round(delivery_worker& w);
  void domain_churn_round(delivery_worker& w);

  // Executors' submit() hooks: on_submit() with the executor's lock held,
  // wait_in_submit() before it, without the lock.
  void on_submit() noexcept;
  void wait_in_submit() noexcept;

  // Callback bodies.
  void run_cross_task(cross_task& t);
  void run_probe(delivery_probe& p);
  void run_nested_task(nested_task& t);
  void run_deferred_delete(deferred_delete& d);
  void run_owner_deleter(owned_domain* od, delivery_domain& home, delivery_round& round);
  void run_hook_head(hook_head& h);

  // Ledgers.
  void count_queued(callback_kind k) noexcept { run_.cb_queued_[k].add(); }
  void count_invoked(callback_kind k) noexcept { run_.cb_invoked_[k].add(); }
  void ledger_checked(const char* name, callback_site site, std::size_t queued, std::size_t lost,
                      std::size_t twice, std::uint64_t queued_while_destroying);

 private:
  void worker_thread(delivery_worker& w);
  bool wait_for_round(delivery_worker& w);
  void queue_task(delivery_round& round, delivery_domain& d, srcu::callback_head* h,
                  void (*func)(srcu::callback_head*));
  owned_domain* make_owned_domain(delivery_scenario s, callback_site site, rng& rand, srcu::executor* private_pool);
  void destroy_owned_domain(owned_domain* od, stage_note& stage, const char* who);
  void retire_owner(delivery_round& round, delivery_domain& home, owned_domain* od);
  srcu::executor* executor_for(callback_site site) noexcept;
  delivery_domain& upper_domain(rng& rand) noexcept {
    return domains_[kLeafDomains + rand.below(kDeliveryDomainCount - kLeafDomains)];
  }

  run& run_;
  const options opt_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> hooks_enabled_{false};
  executor_stats site_stats_[kCallbackSites];
  std::unique_ptr<pool_executor> pool1_, pool2_;  // 1 and 2 threads
  std::unique_ptr<inline_executor> inline_;
  delivery_domain domains_[kDeliveryDomainCount];
  std::vector<std::unique_ptr<delivery_worker>> workers_;
  std::unique_ptr<hook_head[]> hook_heads_;
  std::atomic<std::uint32_t> hook_rr_{0};
  std::atomic<std::uint32_t> submit_wait_rr_{0};
  std::atomic<int> submit_waits_in_flight_{0};
  stage_note submit_wait_stage_;  // the latest wait a submit() began

  // For the report.
  shared_counter cross_actions_[kCrossActions];
  shared_counter thread_barriers_;
  shared_counter nested_created_, nested_deleted_same_, nested_deleted_later_, nested_retired_;
  shared_counter owners_retired_by_thread_;
  shared_counter churn_domains_[kCallbackSites];
  shared_counter short_lived_destroyed_, short_lived_callbacks_, queued_while_destroying_;
  shared_counter lost_, ran_twice_;
  shared_counter hook_calls_, hook_no_head_;
  shared_counter submit_barriers_, submit_synchronizes_;
};

struct delivery_scenario_ops {
  delivery_scenario scenario;
  const char* summary;
  void (delivery_torture::*round)(delivery_worker& w);
};
constexpr delivery_scenario_ops kDeliveryScenarioOps[kDeliveryScenarios] = {
    {kCrossBarrier, "callbacks barrier() and synchronize() other domains", &delivery_torture::cross_barrier_round},
    {kNestedDomains, "callbacks create and delete domains; ~domain inside a callback",
     &delivery_torture::nested_domains_round},
    {kDomainChurn, "a thread creates, fills and destroys domains", &delivery_torture::domain_churn_round},
};

// --- Delivery: callbacks (plain functions: srcu hands back only the head) -----

void delivery_probe_callback(srcu::callback_head* h) {
  auto* p = reinterpret_cast<delivery_probe*>(h);
  p->owner->run_probe(*p);
}

void cross_task_callback(srcu::callback_head* h) {
  auto* t = reinterpret_cast<cross_task*>(h);
  t->owner->run_cross_task(*t);
}

void nested_task_callback(srcu::callback_head* h) {
  auto* t = reinterpret_cast<nested_task*>(h);
  t->owner->run_nested_task(*t);
}

void deferred_delete_callback(srcu::callback_head* h) {
  auto* d = reinterpret_cast<deferred_delete*>(h);
  d->owner->run_deferred_delete(*d);
}

void ledger_callback(srcu::callback_head* h) {
  auto* e = reinterpret_cast<ledger_entry*>(h);
  e->ledger->on_run(*e);
}

void hook_head_callback(srcu::callback_head* h) {
  auto* x = reinterpret_cast<hook_head*>(h);
  x->owner->run_hook_head(*x);
}

void owned_domain_deleter::operator()(owned_domain* od) const { owner->run_owner_deleter(od, *home, *round); }

// --- Delivery: executors --------------------------------------------------------

pool_executor::pool_executor(delivery_torture& hook, executor_stats& stats, int threads)
    : hook_(hook), stats_(stats) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back(&pool_executor::thread_main, this);
}

pool_executor::~pool_executor() {
  {
    std::lock_guard lk(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void pool_executor::submit(srcu::callback_batch batch) noexcept {
  hook_.wait_in_submit();  // before the lock, and before the batch can run
  std::lock_guard lk(mutex_);
  hook_.on_submit();  // call() into a delivery domain with this executor's lock held
  queue_.push_back(std::move(batch));
  ready_.notify_one();
}

void pool_executor::thread_main() {
  std::unique_lock lk(mutex_);
  for (;;) {
    ready_.wait(lk, [&] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return;  // stopping, and every batch handed over has run
    srcu::callback_batch batch = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    stats_.batches.add();
    stats_.callbacks.add(batch.size());
    batch.run();
    lk.lock();
  }
}

void inline_executor::submit(srcu::callback_batch batch) noexcept {
  hook_.wait_in_submit();  // before the lock, and before the batch runs
  {
    std::lock_guard lk(mutex_);
    hook_.on_submit();  // call() into a delivery domain with this executor's lock held
    stats_.batches.add();
    stats_.callbacks.add(batch.size());
  }
  batch.run();
}

// --- Delivery: ledgers ------------------------------------------------------------

void callback_ledger::queue(int children) {
  const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
  if (i >= capacity_) return;  // not reached: the capacity covers every chain
  ledger_entry& e = entries_[i];
  e.children = children;
  e.ledger = this;
  if (destroying_.load(std::memory_order_relaxed)) {
    queued_while_destroying_.fetch_add(1, std::memory_order_relaxed);
  }
  delivery_.count_queued(kCbOwnedDomain);
  dom_->call(&e.head, &ledger_callback);
}

void callback_ledger::on_run(ledger_entry& e) {
  e.runs.fetch_add(1, std::memory_order_relaxed);
  delivery_.count_invoked(kCbOwnedDomain);
  if (e.children > 0) queue(e.children - 1);  // on the same domain, maybe while ~domain runs
}

// ~domain has returned: barrier() ran for us, so every callback queued
// before it, and every callback those queued, must have run exactly once.
callback_ledger::~callback_ledger() {
  const std::size_t queued = std::min(next_.load(std::memory_order_acquire), capacity_);
  std::size_t lost = 0, twice = 0;
  for (std::size_t i = 0; i < queued; ++i) {
    const int runs = entries_[i].runs.load(std::memory_order_acquire);
    if (runs == 0) ++lost;
    if (runs > 1) ++twice;
  }
  delivery_.ledger_checked(name_, site_, queued, lost, twice,
                           queued_while_destroying_.load(std::memory_order_relaxed));
  // A lost callback may still run some day: leave it a head to run on.
  if (lost != 0) (void)entries_.release();
}

void delivery_torture::ledger_checked(const char* name, callback_site site, std::size_t queued, std::size_t lost,
                                      std::size_t twice, std::uint64_t queued_while_destroying) {
  short_lived_destroyed_.add();
  short_lived_callbacks_.add(queued);
  queued_while_destroying_.add(queued_while_destroying);
  lost_.add(lost);
  ran_twice_.add(twice);
  if (lost != 0) {
    run_.error(kErrDelivery,
               "domain %s (callbacks on %s): ~domain() returned, but %zu of the %zu callbacks queued on it "
               "never ran (lost); its own callbacks queued %llu of the %zu while ~domain() ran",
               name, kCallbackSiteNames[site], lost, queued, ull(queued_while_destroying), queued);
  }
  if (twice != 0) {
    run_.error(kErrDelivery, "domain %s (callbacks on %s): %zu of the %zu callbacks queued on it ran more than once",
               name, kCallbackSiteNames[site], twice, queued);
  }
}

// --- Delivery: setup, threads, stalls, teardown --------------------------------------

delivery_torture::delivery_torture(run& r, const options& opt) : run_(r), opt_(opt) {}

delivery_torture::~delivery_torture() {
  for (auto& w : workers_) {
    if (w->w.thread.joinable()) w->w.thread.join();
  }
}

srcu::executor* delivery_torture::executor_for(callback_site site) noexcept {
  switch (site) {
    case kOnPool1: return pool1_.get();
    case kOnPool2: return pool2_.get();
    case kOnInline: return inline_.get();
    default: return nullptr;  // srcu's callback workers
  }
}

void delivery_torture::start() {
  hook_heads_ = std::make_unique<hook_head[]>(kHookHeads);
  for (int i = 0; i < kHookHeads; ++i) hook_heads_[i].owner = this;
  pool1_ = std::make_unique<pool_executor>(*this, site_stats_[kOnPool1], 1);
  pool2_ = std::make_unique<pool_executor>(*this, site_stats_[kOnPool2], 2);
  inline_ = std::make_unique<inline_executor>(*this, site_stats_[kOnInline]);
  for (int i = 0; i < kDeliveryDomainCount; ++i) {
    const delivery_domain_spec& spec = kDeliveryDomainSpecs[i];
    srcu::domain_options dopt;
    dopt.name = spec.name;
    dopt.stall_timeout = std::chrono::milliseconds(static_cast<long long>(opt_.stall_s * 1000));
    dopt.callback_executor = executor_for(spec.site);
    domains_[i].spec = &spec;
    domains_[i].dom = std::make_unique<srcu::domain>(dopt);
  }
  hooks_enabled_.store(true, std::memory_order_release);
  for (int s = 0; s < kDeliveryScenarios; ++s) {
    if ((opt_.delivery & (1u << s)) == 0) continue;
    auto w = std::make_unique<delivery_worker>();
    w->scenario = static_cast<delivery_scenario>(s);
    w->rand = rng(run_.seed_for(5, static_cast<std::uint64_t>(s)));
    w->last_progress_ns.store(now_ns(), std::memory_order_relaxed);
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) w->w.thread = std::thread(&delivery_torture::worker_thread, this, std::ref(*w));
}

void delivery_torture::worker_thread(delivery_worker& w) {
  const delivery_scenario_ops& ops = kDeliveryScenarioOps[w.scenario];
  while (!stop_.load(std::memory_order_relaxed) && !w.abandoned.load(std::memory_order_relaxed)) {
    (this->*ops.round)(w);
    if (w.abandoned.load(std::memory_order_relaxed)) break;
    w.rounds.add();
    w.stage.set(kScenarioThread, "between rounds");
    w.last_progress_ns.store(now_ns(), std::memory_order_relaxed);
    if (w.rand.one_in(2)) sleep_us(w.rand.between(50, 2000));
  }
  w.w.done.store(true, std::memory_order_release);
}

// Waits for every callback of the round. False when the run is stopping
// after this scenario's STALL: the round is left to the library, its memory
// with it.
bool delivery_torture::wait_for_round(delivery_worker& w) {
  w.stage.set(kScenarioThread, "waiting for the callbacks of its round");
  while (w.round.outstanding.load(std::memory_order_acquire) != 0) {
    if (stop_.load(std::memory_order_relaxed) && w.stall_reported.load(std::memory_order_relaxed)) {
      w.abandoned.store(true, std::memory_order_relaxed);
      return false;
    }
    sleep_us(100);
  }
  return true;
}

void delivery_torture::check_stalls(std::int64_t now, std::int64_t stall_ns) {
  for (auto& w : workers_) {
    if (w->w.done.load(std::memory_order_acquire) || w->stall_reported.load(std::memory_order_relaxed)) continue;
    const std::int64_t last = w->last_progress_ns.load(std::memory_order_relaxed);
    if (now - last <= stall_ns) continue;
    w->stall_reported.store(true, std::memory_order_relaxed);
    const int outstanding = w->round.outstanding.load(std::memory_order_acquire);
    const bool submit_waiting = submit_waits_in_flight_.load(std::memory_order_relaxed) != 0;
    run_.error(kErrStall, "STALL: delivery scenario %s completed no round for %.1f s; %s; %d callback(s) of its round "
               "not finished%s%s%s%s",
               kDeliveryScenarioNames[w->scenario], (now - last) / 1e9, w->stage.describe().c_str(), outstanding,
               outstanding != 0 ? ", the latest wait one of them began: " : "",
               outstanding != 0 ? w->round.stage.describe().c_str() : "",
               submit_waiting ? "; waiting now: " : "", submit_waiting ? submit_wait_stage_.describe().c_str() : "");
  }
}

bool delivery_torture::stop(std::int64_t deadline) {
  stop_.store(true, std::memory_order_relaxed);
  // A scenario already reported stuck gets 2 s to come out, not the full limit.
  const std::int64_t stuck_deadline = now_ns() + 2'000'000'000;
  bool ok = true;
  for (auto& w : workers_) {
    while (!w->w.done.load(std::memory_order_acquire)) {
      const std::int64_t now = now_ns();
      if (now > deadline || (w->stall_reported.load(std::memory_order_relaxed) && now > stuck_deadline)) {
        run_.error(kErrStall, "STALL: delivery scenario %s did not stop (%s); abandoning the run",
                   kDeliveryScenarioNames[w->scenario], w->stage.describe().c_str());
        return false;
      }
      sleep_ns(5'000'000);
    }
    w->w.thread.join();
    if (w->abandoned.load(std::memory_order_relaxed)) ok = false;
  }
  if (!ok) run_.error(kErrStall, "STALL: a delivery round never finished; abandoning the run");
  return ok;
}

void delivery_torture::teardown() {
  // A hook that read the flag before it cleared may still call(): the batch
  // it was handed completes only after that call(), the first round of
  // barrier()s waits for the batch, the second for the call()'s callback.
  hooks_enabled_.store(false, std::memory_order_seq_cst);
  run_.drain_stage_.store("delivery teardown: barrier() of each delivery domain", std::memory_order_relaxed);
  for (int pass = 0; pass < 2; ++pass) {
    for (delivery_domain& d : domains_) d.dom->barrier();
  }
  run_.drain_stage_.store("delivery teardown: ~domain() of each delivery domain", std::memory_order_relaxed);
  for (delivery_domain& d : domains_) d.dom.reset();
  run_.drain_stage_.store("delivery teardown: joining the executors' threads", std::memory_order_relaxed);
  pool1_.reset();
  pool2_.reset();
  inline_.reset();
}

std::uint64_t delivery_torture::rounds() const {
  std::uint64_t n = 0;
  for (const auto& w : workers_) n += w->rounds.get();
  return n;
}

// --- Delivery: helpers ------------------------------------------------------------

void delivery_torture::queue_task(delivery_round& round, delivery_domain& d, srcu::callback_head* h,
                                  void (*func)(srcu::callback_head*)) {
  round.add();
  count_queued(kCbDeliveryTask);
  d.dom->call(h, func);
}

// A short-lived domain with callbacks queued on it (some of which will
// queue more), and readers of every flavour taken and ended in between, on
// whatever thread this is (a scenario's thread or a callback).
owned_domain* delivery_torture::make_owned_domain(delivery_scenario s, callback_site site, rng& rand,
                                                  srcu::executor* private_pool) {
  static constexpr std::chrono::microseconds kDelays[] = {std::chrono::microseconds{0},
                                                          std::chrono::microseconds{1000},
                                                          std::chrono::microseconds{20'000}};
  const char* name = kShortLivedNames[s == kDomainChurn ? 1 : 0][site];
  srcu::domain_options dopt;
  dopt.name = name;
  dopt.stall_timeout = std::chrono::milliseconds(static_cast<long long>(opt_.stall_s * 1000));
  dopt.callback_executor = site == kOnPrivatePool ? private_pool : executor_for(site);
  dopt.callback_delay = kDelays[rand.below(3)];
  const int roots = static_cast<int>(s == kDomainChurn ? rand.between(1, 48) : rand.between(1, 16));
  auto* od = new owned_domain(*this, name, dopt, site, static_cast<std::size_t>(roots) * kMaxChain);
  for (int i = 0; i < roots; ++i) {
    od->ledger.queue(rand.one_in(2) ? static_cast<int>(rand.between(1, kMaxChain - 1)) : 0);
    switch (rand.below(8)) {
      case 0: {
        srcu::read_guard g(od->dom);
        break;
      }
      case 1: {
        const srcu::read_token t = od->dom.read_lock();
        od->dom.read_unlock(t);
        break;
      }
      case 2: {
        const srcu::read_token t = od->dom.down_read();
        od->dom.up_read(t);
        break;
      }
      default: break;
    }
  }
  return od;
}

void delivery_torture::destroy_owned_domain(owned_domain* od, stage_note& stage, const char* who) {
  const char* const name = od->name;
  stage.set(who, "~domain() of", name);
  od->ledger.mark_destroying();
  delete od;  // ~domain runs barrier() for us; then the ledger checks
  stage.set(who, "returned from ~domain() of", name);
}

void delivery_torture::retire_owner(delivery_round& round, delivery_domain& home, owned_domain* od) {
  round.add();
  count_queued(kCbDeliveryTask);
  home.dom->retire(od, owned_domain_deleter{this, &home, &round});
}

// --- Delivery: cross-barrier ----------------------------------------------------------

void delivery_torture::cross_barrier_round(delivery_worker& w) {
  rng& rand = w.rand;
  std::vector<std::unique_ptr<cross_task>> tasks;
  w.stage.set(kScenarioThread, "queueing tasks on the upper domains");
  for (int u = kLeafDomains; u < kDeliveryDomainCount; ++u) {
    for (std::uint32_t i = 0, n = rand.between(1, 2); i < n; ++i) {
      auto t = std::make_unique<cross_task>();
      t->owner = this;
      t->round = &w.round;
      t->home = &domains_[u];
      t->target = &domains_[rand.below(kLeafDomains)];
      t->action = static_cast<cross_action>(rand.below(kCrossActions));
      t->probe.owner = this;
      t->probe.round = &w.round;
      // barrier() alone: the probe is queued first, from this thread, and
      // the task's barrier() must wait for it.
      if (t->action == kBarrierLeaf) queue_task(w.round, *t->target, &t->probe.head, &delivery_probe_callback);
      queue_task(w.round, *t->home, &t->head, &cross_task_callback);
      tasks.push_back(std::move(t));
    }
  }
  // The thread waits too: a barrier() of an upper domain waits for
  // callbacks that are themselves waiting.
  if (rand.one_in(3)) {
    delivery_domain& d = domains_[rand.below(kDeliveryDomainCount)];
    w.stage.set(kScenarioThread, "barrier() of", d.spec->name);
    d.dom->barrier();
    thread_barriers_.add();
  }
  if (!wait_for_round(w)) {
    for (auto& t : tasks) (void)t.release();
  }
}

void delivery_torture::run_probe(delivery_probe& p) {
  count_invoked(kCbDeliveryTask);
  p.runs.fetch_add(1, std::memory_order_relaxed);
  p.round->finish();  // last touch
}

void delivery_torture::run_cross_task(cross_task& t) {
  count_invoked(kCbDeliveryTask);
  cross_actions_[t.action].add();
  delivery_round& round = *t.round;
  const char* const who = t.home->spec->in_callback;
  delivery_domain& target = *t.target;
  switch (t.action) {
    case kBarrierLeaf:
    case kCallThenBarrierLeaf: {
      if (t.action == kCallThenBarrierLeaf) queue_task(round, target, &t.probe.head, &delivery_probe_callback);
      round.stage.set(who, "barrier() of", target.spec->name);
      target.dom->barrier();
      const int runs = t.probe.runs.load(std::memory_order_acquire);
      if (runs != 1) {
        run_.error(kErrDelivery,
                   "%s: barrier() of %s returned, but a callback queued on %s before the barrier() has run %d "
                   "times (must be once)",
                   who, target.spec->name, target.spec->name, runs);
      }
      break;
    }
    case kCallLeaf: queue_task(round, target, &t.probe.head, &delivery_probe_callback); break;
    case kSynchronizeLeaf:
    case kSynchronizeOwn: {
      delivery_domain& d = t.action == kSynchronizeOwn ? *t.home : target;
      round.stage.set(who, "synchronize() of", d.spec->name);
      const srcu::poll_cookie c = d.dom->get_poll_cookie();
      d.dom->synchronize();
      if (!d.dom->poll(c)) {
        run_.error(kErrDelivery, "%s: synchronize() of %s returned, but poll() of a cookie taken before it is false",
                   who, d.spec->name);
      }
      break;
    }
    case kCrossActions: break;
  }
  round.finish();  // last touch: the thread may free the task
}

// --- Delivery: nested-domains ------------------------------------------------------

void delivery_torture::nested_domains_round(delivery_worker& w) {
  rng& rand = w.rand;
  std::vector<std::unique_ptr<nested_task>> tasks;
  w.stage.set(kScenarioThread, "queueing tasks on the upper domains");
  for (std::uint32_t i = 0, n = rand.between(1, 2); i < n; ++i) {
    auto t = std::make_unique<nested_task>();
    t->owner = this;
    t->round = &w.round;
    t->home = &upper_domain(rand);
    t->later = &upper_domain(rand);
    t->action = static_cast<nested_action>(rand.below(kNestedActions));
    t->site = static_cast<callback_site>(rand.below(kSharedSites));
    t->seed = rand.next();
    queue_task(w.round, *t->home, &t->head, &nested_task_callback);
    tasks.push_back(std::move(t));
  }
  if (rand.one_in(2)) {
    // From this thread: retire() an object that owns a domain with
    // callbacks queued on it; its ~domain runs in an upper domain's callback.
    w.stage.set(kScenarioThread, "creating a domain, to retire its owner");
    owned_domain* od = make_owned_domain(kNestedDomains, static_cast<callback_site>(rand.below(kSharedSites)),
                                         rand, nullptr);
    retire_owner(w.round, upper_domain(rand), od);
    owners_retired_by_thread_.add();
  }
  if (!wait_for_round(w)) {
    for (auto& t : tasks) (void)t.release();
  }
}

void delivery_torture::run_nested_task(nested_task& t) {
  count_invoked(kCbDeliveryTask);
  delivery_round& round = *t.round;
  const char* const who = t.home->spec->in_callback;
  rng rand(t.seed);
  round.stage.set(who, "creating a domain with callbacks on", kCallbackSiteNames[t.site]);
  owned_domain* od = make_owned_domain(kNestedDomains, t.site, rand, nullptr);
  nested_created_.add();
  if (rand.one_in(4)) {
    round.stage.set(who, "synchronize() of", od->name);
    od->dom.synchronize();
  }
  switch (t.action) {
    case kDeleteInSameCallback:
      destroy_owned_domain(od, round.stage, who);
      nested_deleted_same_.add();
      break;
    case kDeleteInLaterCallback:
      t.later_delete.victim = od;
      t.later_delete.home = t.later;
      t.later_delete.owner = this;
      t.later_delete.round = &round;
      queue_task(round, *t.later, &t.later_delete.head, &deferred_delete_callback);
      break;
    case kRetireOwner:
      retire_owner(round, *t.later, od);
      nested_retired_.add();
      break;
    case kNestedActions: break;
  }
  round.finish();  // last touch (of the task's own head)
}

void delivery_torture::run_deferred_delete(deferred_delete& d) {
  count_invoked(kCbDeliveryTask);
  destroy_owned_domain(d.victim, d.round->stage, d.home->spec->in_callback);
  nested_deleted_later_.add();
  d.round->finish();  // last touch
}

void delivery_torture::run_owner_deleter(owned_domain* od, delivery_domain& home, delivery_round& round) {
  count_invoked(kCbDeliveryTask);
  destroy_owned_domain(od, round.stage, home.spec->in_callback);
  round.finish();  // last touch
}

// --- Delivery: domain-churn ---------------------------------------------------------

void delivery_torture::domain_churn_round(delivery_worker& w) {
  rng& rand = w.rand;
  struct churned {
    std::unique_ptr<pool_executor> private_pool;  // outlives the domain
    owned_domain* od = nullptr;
  };
  churned live[3];
  const int n = static_cast<int>(rand.between(1, 3));
  for (int i = 0; i < n; ++i) {
    const auto site = static_cast<callback_site>(rand.below(kCallbackSites));
    if (site == kOnPrivatePool) {
      live[i].private_pool =
          std::make_unique<pool_executor>(*this, site_stats_[kOnPrivatePool], static_cast<int>(rand.between(1, 2)));
    }
    w.stage.set(kScenarioThread, "creating and filling a domain with callbacks on", kCallbackSiteNames[site]);
    live[i].od = make_owned_domain(kDomainChurn, site, rand, live[i].private_pool.get());
    churn_domains_[site].add();
  }
  // Let some callbacks get as far as their grace period or their executor.
  if (rand.one_in(2)) sleep_us(rand.between(1, 1500));
  if (rand.one_in(8)) {
    w.stage.set(kScenarioThread, "barrier() of", live[0].od->name);
    live[0].od->dom.barrier();
  }
  for (int left = n; left > 0; --left) {
    int k = static_cast<int>(rand.below(static_cast<std::uint32_t>(left)));
    for (int i = 0; i < n; ++i) {
      if (live[i].od != nullptr && k-- == 0) {
        destroy_owned_domain(live[i].od, w.stage, kScenarioThread);
        live[i].od = nullptr;
        if (live[i].private_pool) {
          w.stage.set(kScenarioThread, "joining a private pool");
          live[i].private_pool.reset();
        }
        break;
      }
    }
  }
}

// --- Delivery: the executors' submit() hook ----------------------------------------

// Two submits in three call() into a delivery domain (its own included),
// with the submitting executor's lock held. Lock-free: a head is claimed
// from a fixed pool by CAS.
void delivery_torture::on_submit() noexcept {
  if (!hooks_enabled_.load(std::memory_order_seq_cst)) return;
  const std::uint32_t n = hook_rr_.fetch_add(1, std::memory_order_relaxed);
  if (n % 3 == 0) return;
  delivery_domain& target = domains_[(n / 3) % kDeliveryDomainCount];
  for (std::uint32_t i = 0; i < 4; ++i) {
    hook_head& h = hook_heads_[(n * 7 + i * 61) % kHookHeads];
    bool expected = false;
    if (h.busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      hook_calls_.add();
      count_queued(kCbSubmitHook);
      target.dom->call(&h.head, &hook_head_callback);
      return;
    }
  }
  hook_no_head_.add();
}

void delivery_torture::run_hook_head(hook_head& h) {
  count_invoked(kCbSubmitHook);
  h.busy.store(false, std::memory_order_release);
}

// One submit() in 32 waits for another domain before handing its batch on:
// barrier() of leaf-srcu (no executor, so never the domain being submitted;
// its callbacks never wait) or synchronize() of a leaf (any domain's, its
// own included, is legal). Not under the executor's lock: with it held, a
// wait could need a batch of the same executor. Before the batch can run: a
// barrier() of the submitting domain then waits for this wait too, so the
// teardown never destroys leaf-srcu under it.
void delivery_torture::wait_in_submit() noexcept {
  if (!hooks_enabled_.load(std::memory_order_seq_cst)) return;
  const std::uint32_t n = submit_wait_rr_.fetch_add(1, std::memory_order_relaxed);
  if (n % 32 != 0) return;
  submit_waits_in_flight_.fetch_add(1, std::memory_order_relaxed);
  if ((n / 32) % 2 == 0) {
    delivery_domain& d = domains_[0];  // leaf-srcu
    submit_wait_stage_.set("an executor's submit()", "barrier() of", d.spec->name);
    d.dom->barrier();
    submit_barriers_.add();
  } else {
    delivery_domain& d = domains_[(n / 64) % kLeafDomains];
    submit_wait_stage_.set("an executor's submit()", "synchronize() of", d.spec->name);
    d.dom->synchronize();
    submit_synchronizes_.add();
  }
  submit_waits_in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

// --- Delivery: report ----------------------------------------------------------------

void delivery_torture::print_report() {
  std::uint64_t rounds_of[kDeliveryScenarios] = {};
  for (const auto& w : workers_) rounds_of[w->scenario] += w->rounds.get();
  line("Delivery: %s", list_names(opt_.delivery, kDeliveryScenarioNames, kDeliveryScenarios).c_str());
  if (opt_.delivery & (1u << kCrossBarrier)) {
    std::string acts;
    for (int a = 0; a < kCrossActions; ++a) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s%s %llu", a ? ", " : "", kCrossActionNames[a], ull(cross_actions_[a].get()));
      acts += buf;
    }
    line("  cross-barrier: %llu rounds; in callbacks of the upper domains: %s; barrier()s from its thread %llu",
         ull(rounds_of[kCrossBarrier]), acts.c_str(), ull(thread_barriers_.get()));
  }
  if (opt_.delivery & (1u << kNestedDomains)) {
    line("  nested-domains: %llu rounds; %llu domains created in callbacks: deleted in the same callback %llu, in "
         "a later callback %llu, owner retired %llu; %llu owners retired from its thread",
         ull(rounds_of[kNestedDomains]), ull(nested_created_.get()), ull(nested_deleted_same_.get()),
         ull(nested_deleted_later_.get()), ull(nested_retired_.get()), ull(owners_retired_by_thread_.get()));
  }
  if (opt_.delivery & (1u << kDomainChurn)) {
    std::string sites;
    for (int s = 0; s < kCallbackSites; ++s) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s%s %llu", s ? ", " : "", kCallbackSiteNames[s], ull(churn_domains_[s].get()));
      sites += buf;
    }
    line("  domain-churn: %llu rounds; domains by callback site: %s", ull(rounds_of[kDomainChurn]), sites.c_str());
  }
  line("  short-lived domains: %llu destroyed with %llu callbacks queued on them (%llu queued by their own "
       "callbacks while ~domain() ran): %llu lost, %llu run more than once",
       ull(short_lived_destroyed_.get()), ull(short_lived_callbacks_.get()), ull(queued_while_destroying_.get()),
       ull(lost_.get()), ull(ran_twice_.get()));
  std::string ex;
  for (int s = kOnPool1; s < kCallbackSites; ++s) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s%s %llu batches/%llu callbacks", s != kOnPool1 ? ", " : "",
                  kCallbackSiteNames[s], ull(site_stats_[s].batches.get()), ull(site_stats_[s].callbacks.get()));
    ex += buf;
  }
  line("  executors: %s; submit() hooks: %llu call()s under the executor's lock (%llu found no free head), "
       "barrier() of leaf-srcu %llu, synchronize() of a leaf %llu",
       ex.c_str(), ull(hook_calls_.get()), ull(hook_no_head_.get()), ull(submit_barriers_.get()),
       ull(submit_synchronizes_.get()));
}

run::~run() = default;

// --- run: construction ------------------------------------------------------------

run::run(const options& opt, const std::vector<domain_spec>& specs, bool is_child)
    : opt_(opt), is_child_(is_child), specs_(specs) {
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto td = std::make_unique<torture_domain>();
    td->owner_run = this;
    td->index = static_cast<int>(i);
    td->sleepy = specs[i].sleepy;
    td->name = specs[i].name;
    td->dom = specs[i].dom;
    domains_.push_back(std::move(td));
  }
  for (int f = 0; f < kFlavourCount; ++f) {
    if (opt_.flavours & (1u << f)) flavours_.push_back(static_cast<flavour>(f));
  }
  for (int p = 0; p < kPrimitiveCount; ++p) {
    if (opt_.primitives & (1u << p)) primitives_.push_back(static_cast<primitive>(p));
  }
  handoff_enabled_ = (opt_.flavours & (1u << kUpDown)) != 0;
  if (opt_.signal_storm) {
    signal_heads_ = std::make_unique<signal_head[]>(kSignalHeads);
    for (int i = 0; i < kSignalHeads; ++i) signal_heads_[i].owner = this;
  }
}

// --- Readers ------------------------------------------------------------------------

flavour run::pick_flavour(rng& rand) const noexcept {
  return flavours_[rand.below(static_cast<std::uint32_t>(flavours_.size()))];
}

observation run::begin_observation(torture_domain& td, flavour f, int depth) {
  observation o;
  o.td = &td;
  o.f = f;
  o.depth = depth;
  o.gp_start = td.dom->grace_periods_completed();
  o.e = td.current.load(std::memory_order_acquire);
  o.generation = o.e->generation.load(std::memory_order_relaxed);
  if (o.e->magic.load(std::memory_order_relaxed) != kMagicLive) {
    error(kErrFreed, "domain %s: the current element was already freed when a %s section began",
          td.name, kFlavourNames[f]);
  }
  return o;
}

// The end of a section: what rcutorture's reader does before its unlock.
void run::end_observation(const observation& o, reader_stats& st) {
  element* e = o.e;
  const int pipe = e->pipe.load(std::memory_order_relaxed);
  const std::uint32_t magic = e->magic.load(std::memory_order_relaxed);
  const std::uint64_t gen = e->generation.load(std::memory_order_relaxed);
  bool corrupt = false;
  for (int i = 0; i < kPayloadWords; ++i) {
    if (e->payload[i].load(std::memory_order_relaxed) != payload_word(o.generation, i)) corrupt = true;
  }
  const std::uint64_t gps = o.td->dom->grace_periods_completed() - o.gp_start;
  st.pipe[std::clamp(pipe, 0, kPipeLen)].add();
  st.batch[std::min<std::uint64_t>(gps, kPipeLen)].add();
  if (pipe > 1) {
    error(kErrPipe,
          "domain %s: %s section (depth %d) ends with pipe count %d: %d grace period(s) "
          "ended after the element was removed while this reader still held it",
          o.td->name, kFlavourNames[o.f], o.depth, pipe, pipe - 1);
  }
  if (magic != kMagicLive) {
    error(kErrFreed, "domain %s: %s section (depth %d) holds an element that was freed (poison seen)",
          o.td->name, kFlavourNames[o.f], o.depth);
  } else if (gen != o.generation) {
    error(kErrRecycled, "domain %s: %s section (depth %d): element reused under the reader (generation %llu -> %llu)",
          o.td->name, kFlavourNames[o.f], o.depth, ull(o.generation), ull(gen));
  } else if (corrupt) {
    error(kErrCorrupt, "domain %s: %s section (depth %d): element payload corrupt", o.td->name,
          kFlavourNames[o.f], o.depth);
  }
  if (gps > 1) {
    error(kErrBatch, "domain %s: %llu grace periods completed inside one %s section (at most 1 may)",
          o.td->name, ull(gps), kFlavourNames[o.f]);
  }
}

void run::middle(reader_ctx& rc, torture_domain& td, int depth) {
  fault(kFpReaderInSection, rc.rand);
  if (td.sleepy && depth == 0) {
    // The sleepy domain: hold the section for a long stretch. Only this
    // domain's grace periods may wait for it.
    sleep_ns(std::int64_t{rc.rand.between(static_cast<std::uint32_t>(opt_.sleepy_min_ms),
                                          static_cast<std::uint32_t>(opt_.sleepy_max_ms))} *
             1'000'000);
    rc.stats->long_sleeps.add();
  } else if (!rc.storm && opt_.reader_delay_us > 0 && rc.rand.one_in(16)) {
    rc.stats->short_delays.add();
    const auto us = rc.rand.between(1, static_cast<std::uint32_t>(opt_.reader_delay_us));
    switch (rc.rand.below(3)) {
      case 0: spin_ns(std::int64_t{us} * 1000); break;
      case 1: sched_yield(); break;
      default: sleep_us(us); break;
    }
  }
  if (depth < opt_.max_nest && rc.rand.one_in(4)) {
    // Nested section: a random flavour, mostly on the same domain.
    torture_domain& inner = (domains_.size() > 1 && rc.rand.one_in(4))
                                ? *domains_[rc.rand.below(static_cast<std::uint32_t>(domains_.size()))]
                                : td;
    section(rc, inner, depth + 1);
  }
}

void run::inside(reader_ctx& rc, torture_domain& td, flavour f, int depth) {
  const observation o = begin_observation(td, f, depth);
  middle(rc, td, depth);
  fault(kFpReaderBeforeUnlock, rc.rand);
  end_observation(o, *rc.stats);
}

void run::section(reader_ctx& rc, torture_domain& td, int depth) {
  const flavour f = pick_flavour(rc.rand);
  srcu::domain& dom = *td.dom;
  rc.stats->ops[f].add();
  if (depth > 0) rc.stats->nested.add();
  switch (f) {
    case kLock: {
      const srcu::read_token t = dom.read_lock();
      inside(rc, td, f, depth);
      dom.read_unlock(t);
      break;
    }
    case kGuard: {
      srcu::read_guard g(dom);
      inside(rc, td, f, depth);
      break;
    }
    case kScoped: {
      std::scoped_lock lk(dom);
      inside(rc, td, f, depth);
      break;
    }
    case kSignalSafe: {
      const srcu::read_token t = dom.read_lock_signal_safe();
      inside(rc, td, f, depth);
      dom.read_unlock_signal_safe(t);
      break;
    }
    case kUpDown: {
      const srcu::read_token t = dom.down_read();
      const observation o = begin_observation(td, f, depth);
      middle(rc, td, depth);
      // Sometimes the section ends on a helper thread: the token and what
      // was read travel together, the helper checks and calls up_read().
      if (handoff_enabled_ && rc.rand.one_in(4) && try_handoff({t, o})) break;
      fault(kFpReaderBeforeUnlock, rc.rand);
      end_observation(o, *rc.stats);
      dom.up_read(t);
      break;
    }
    case kFlavourCount: break;
  }
}

bool run::try_handoff(const handoff_item& item) {
  {
    std::lock_guard lk(handoff_mutex_);
    if (handoff_stop_ || handoff_queue_.size() >= kHandoffQueueMax) return false;
    handoff_queue_.push_back(item);
  }
  handoff_cv_.notify_one();
  return true;
}

void run::handoff_thread(int i) {
  rng rand(seed_for(3, static_cast<std::uint64_t>(i)));
  reader_stats& st = handoff_stats_[i];
  std::unique_lock lk(handoff_mutex_);
  for (;;) {
    handoff_cv_.wait(lk, [&] { return !handoff_queue_.empty() || handoff_stop_; });
    if (handoff_queue_.empty()) break;  // stopping, and everything handed over has ended
    const handoff_item item = handoff_queue_.front();
    handoff_queue_.pop_front();
    lk.unlock();
    if (rand.one_in(8)) {
      if (rand.one_in(2)) sched_yield(); else sleep_us(rand.between(1, 50));
    }
    fault(kFpHandoffBeforeUp, rand);
    end_observation(item.o, st);
    item.o.td->dom->up_read(item.token);
    st.handed_off.add();
    lk.lock();
  }
  handoff_workers_[i].done.store(true, std::memory_order_release);
}

void run::reader_thread(reader_slot& slot) {
  reader_ctx rc{&slot.stats, rng(seed_for(1, (static_cast<std::uint64_t>(slot.index) << 20) + slot.generation)),
                opt_.fwd_progress};
  if (opt_.signal_storm) {
    std::lock_guard lk(targets_mutex_);
    targets_.push_back(pthread_self());
  }
  const std::int64_t deadline =
      opt_.thread_churn ? now_ns() + std::int64_t{rc.rand.between(200, 1500)} * 1'000'000
                        : std::numeric_limits<std::int64_t>::max();
  const bool sleepy = slot.home->sleepy;
  for (std::uint64_t n = 0; !stop_readers_.load(std::memory_order_relaxed); ++n) {
    section(rc, *slot.home, 0);
    fault(kFpReaderBetween, rc.rand);
    if (sleepy) sleep_us(rc.rand.between(0, 2000));
    if ((sleepy || (n & 63) == 0) && now_ns() > deadline) break;  // thread churn: exit, be replaced
  }
  if (opt_.signal_storm) {
    // Leave the target list before exiting: the storm never signals a
    // thread that may be gone.
    std::lock_guard lk(targets_mutex_);
    targets_.erase(std::find(targets_.begin(), targets_.end(), pthread_self()));
  }
  slot.w.done.store(true, std::memory_order_release);
}

void run::start_reader(reader_slot& slot) {
  ++slot.generation;
  ++readers_started_;
  slot.w.done.store(false, std::memory_order_relaxed);
  slot.w.thread = std::thread(&run::reader_thread, this, std::ref(slot));
}

void run::maintain_readers() {
  for (auto& slot : readers_) {
    if (slot->w.done.load(std::memory_order_acquire) && slot->w.thread.joinable()) {
      slot->w.thread.join();
      if (!stop_readers_.load(std::memory_order_relaxed)) start_reader(*slot);
    }
  }
}

// --- Signal storm ------------------------------------------------------------------

// Async-signal-safe: a signal-safe reader section, atomics, and call() with
// a head from a lock-free pool (a busy flag per head, claimed by CAS).
void run::in_signal_handler() noexcept {
  const int saved_errno = errno;
  const std::uint32_t n = signal_rr_.fetch_add(1, std::memory_order_relaxed);
  torture_domain& td = *domains_[n % domains_.size()];
  srcu::domain& dom = *td.dom;
  const srcu::read_token t = dom.read_lock_signal_safe();
  const std::uint64_t gp0 = dom.grace_periods_completed();
  element* e = td.current.load(std::memory_order_acquire);
  const std::uint64_t gen = e->generation.load(std::memory_order_relaxed);
  bool bad = e->magic.load(std::memory_order_relaxed) != kMagicLive;
  for (int i = 0; i < kPayloadWords; ++i) {
    if (e->payload[i].load(std::memory_order_relaxed) != payload_word(gen, i)) bad = true;
  }
  const int pipe = e->pipe.load(std::memory_order_relaxed);
  bad = bad || e->magic.load(std::memory_order_relaxed) != kMagicLive ||
        e->generation.load(std::memory_order_relaxed) != gen;
  const std::uint64_t gps = dom.grace_periods_completed() - gp0;
  dom.read_unlock_signal_safe(t);
  signal_sections_.add();
  signal_pipe_[std::clamp(pipe, 0, kPipeLen)].add();
  signal_batch_[std::min<std::uint64_t>(gps, kPipeLen)].add();
  if (pipe > 1) error_from_signal(kErrPipe, "signal handler: pipe count > 1 at the end of its section");
  if (bad) error_from_signal(kErrFreed, "signal handler: freed, recycled or corrupt element");
  if (gps > 1) error_from_signal(kErrBatch, "signal handler: 2+ grace periods inside its section");

  for (std::uint32_t i = 0; i < 4; ++i) {
    signal_head& h = signal_heads_[(n * 7 + i * 61) % kSignalHeads];
    bool expected = false;
    if (h.busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      signal_calls_.add();
      cb_queued_[kCbSignal].add();
      dom.call(&h.head, &signal_head_callback);
      errno = saved_errno;
      return;
    }
  }
  signal_no_head_.add();
  errno = saved_errno;
}

void run::storm_thread() {
  rng rand(seed_for(4, 0));
  while (!stop_storm_.load(std::memory_order_relaxed)) {
    {
      std::lock_guard lk(targets_mutex_);
      if (!targets_.empty()) {
        const pthread_t target = targets_[rand.below(static_cast<std::uint32_t>(targets_.size()))];
        if (pthread_kill(target, SIGUSR1) == 0) signals_sent_.add();
      }
    }
    sleep_us(rand.between(20, 200));
  }
  storm_worker_.done.store(true, std::memory_order_release);
}

// --- Writers ----------------------------------------------------------------------

std::uint64_t run::add_to_waiting(torture_domain& td, element* e) {
  std::lock_guard lk(td.waiting_mutex);
  const std::uint64_t seq = td.removal_seq.load(std::memory_order_relaxed) + 1;
  e->removal_seq = seq;
  td.waiting.push_back(e);
  // Release: a writer whose snapshot reads seq sees the removal (the
  // exchange) as happening before its grace period begins.
  td.removal_seq.store(seq, std::memory_order_release);
  return seq;
}

// A grace period that began after `snapshot` was taken has ended: every
// waiting element removed at or before the snapshot moves one step down the
// pipe; at kPipeLen it is freed.
void run::pipe_update(torture_domain& td, std::uint64_t snapshot) {
  std::vector<element*> to_free;
  {
    std::lock_guard lk(td.waiting_mutex);
    auto keep = td.waiting.begin();
    for (element* e : td.waiting) {
      if (e->removal_seq <= snapshot) {
        const int p = e->pipe.load(std::memory_order_relaxed) + 1;
        e->pipe.store(p, std::memory_order_relaxed);
        if (p >= kPipeLen) {
          to_free.push_back(e);
          continue;
        }
      }
      *keep++ = e;
    }
    td.waiting.erase(keep, td.waiting.end());
  }
  for (element* e : to_free) pool_.free(e);
}

// A callback's grace period (which began after its call()) has ended.
void run::callback_step(element* e, bool via_retire) {
  const int p = e->pipe.load(std::memory_order_relaxed) + 1;
  e->pipe.store(p, std::memory_order_relaxed);
  if (p >= kPipeLen) {
    pool_.free(e);
    return;
  }
  torture_domain& td = *e->owner;
  if (via_retire) {
    cb_queued_[kCbRetire].add();
    td.dom->retire(e, element_retirer{});
  } else {
    cb_queued_[kCbElement].add();
    td.dom->call(&e->cb, &element_callback);
  }
}

void run::check_after_gp(torture_domain& td, primitive p, srcu::poll_cookie c, std::uint64_t gp_before) {
  if (!td.dom->poll(c)) {
    error(kErrWriter, "domain %s: %s returned, but poll() of a cookie taken before it is false", td.name,
          kPrimitiveNames[p]);
  }
  if (td.dom->grace_periods_completed() <= gp_before) {
    error(kErrWriter, "domain %s: %s returned, but grace_periods_completed() did not advance", td.name,
          kPrimitiveNames[p]);
  }
}

void run::note_latency(writer_state& w, primitive p, std::int64_t ns) {
  if (ns > w.longest_ns[p].load(std::memory_order_relaxed)) w.longest_ns[p].store(ns, std::memory_order_relaxed);
  torture_domain& td = *w.td;
  std::int64_t cur = td.longest_gp_ns.load(std::memory_order_relaxed);
  while (ns > cur) {
    if (td.longest_gp_ns.compare_exchange_weak(cur, ns, std::memory_order_relaxed)) {
      td.longest_gp_primitive.store(p, std::memory_order_relaxed);
      break;
    }
  }
}

void run::update(writer_state& w, primitive p, rng& rand) {
  torture_domain& td = *w.td;
  srcu::domain& dom = *td.dom;
  element* fresh = pool_.get(&td);
  element* old = td.current.exchange(fresh, std::memory_order_acq_rel);
  fault(kFpWriterAfterPublish, rand);
  // Removed: 0 -> 1. Readers that picked it up before the exchange may see 1.
  old->pipe.fetch_add(1, std::memory_order_relaxed);

  if (p == kBusted) {
    (this->*opt_.busted->retire)(w, old, rand);
    return;
  }
  if (p == kCall) {
    cb_queued_[kCbElement].add();
    dom.call(&old->cb, &element_callback);
    return;
  }
  if (p == kRetire) {
    cb_queued_[kCbRetire].add();
    dom.retire(old, element_retirer{});
    return;
  }

  // Synchronous primitives: the element waits on the domain's list; the
  // snapshot names every element removed before this grace period begins.
  add_to_waiting(td, old);
  const std::uint64_t snapshot = td.removal_seq.load(std::memory_order_acquire);
  fault(kFpWriterBeforeGp, rand);
  const std::int64_t t0 = now_ns();
  const std::uint64_t g0 = dom.grace_periods_completed();
  switch (p) {
    case kSync:
    case kExpedited: {
      const srcu::poll_cookie c = dom.get_poll_cookie();
      if (p == kSync) dom.synchronize(); else dom.synchronize_expedited();
      check_after_gp(td, p, c, g0);
      break;
    }
    case kCond: {
      const srcu::poll_cookie c = dom.get_poll_cookie();  // taken before; maybe satisfied meanwhile
      if (rand.one_in(4)) sleep_us(rand.between(50, 2000));
      if (dom.poll(c)) w.cond_already_done.add();
      dom.cond_synchronize(c);
      check_after_gp(td, p, c, g0);
      break;
    }
    case kPoll: {
      const srcu::poll_cookie c = dom.start_poll();
      while (!dom.poll(c)) {
        if (rand.one_in(4)) sched_yield(); else sleep_us(rand.between(20, 200));
      }
      if (dom.grace_periods_completed() <= g0) {
        error(kErrWriter, "domain %s: poll() true but grace_periods_completed() did not advance", td.name);
      }
      break;
    }
    case kBarrier: {
      // barrier() after a call(): the probe's callback must have run.
      w.probe.ran.store(false, std::memory_order_relaxed);
      cb_queued_[kCbProbe].add();
      dom.call(&w.probe.head, &probe_callback);
      dom.barrier();
      if (!w.probe.ran.load(std::memory_order_acquire)) {
        error(kErrWriter, "domain %s: barrier() returned before a callback queued before it ran", td.name);
      }
      break;
    }
    default: break;
  }
  note_latency(w, p, now_ns() - t0);
  fault(kFpWriterAfterGp, rand);
  pipe_update(td, snapshot);
}

// --- Broken grace periods (--busted=MODE) -------------------------------------------

// noop: the synchronous path of update() with a "grace period" that returns
// at once. Elements fall down the pipe as fast as the writers update.
void run::busted_noop_retire(writer_state& w, element* old, rng& rand) {
  torture_domain& td = *w.td;
  add_to_waiting(td, old);
  const std::uint64_t snapshot = td.removal_seq.load(std::memory_order_acquire);
  fault(kFpWriterBeforeGp, rand);
  busted_grace_period(*td.dom);
  fault(kFpWriterAfterGp, rand);
  pipe_update(td, snapshot);
}

// early-flip: the element joins the grace period already in flight. The
// writer snapshots grace_periods_completed() after the removal and counts the
// next completion as the element's grace period (start_poll() makes sure one
// comes), as a call() that attached callbacks to the current grace period
// instead of the next would. When a grace period is in flight at the
// removal, its flip came before the removal: it waits only for readers that
// began before that flip, so a reader that began after the flip, and still
// holds the element, sees the pipe reach 2 when it ends. Every grace period
// here is a real one; only the choice of which one counts is wrong (one phase
// short: the first scan of a correct grace period is what covers those
// readers). Asynchronous, like call(), so the writers' removals do not fall
// in step with the grace periods (a writer that waited would remove just
// after one ended, when none is in flight).
void run::busted_early_flip_retire(writer_state& w, element* old, rng& /*rand*/) {
  srcu::domain& dom = *w.td->dom;
  w.early_flip.push_back({old, dom.grace_periods_completed()});
  (void)dom.start_poll();
}

void run::busted_early_flip_advance(writer_state& w, bool stopping) {
  torture_domain& td = *w.td;
  srcu::domain& dom = *td.dom;
  const std::uint64_t completed = dom.grace_periods_completed();
  // Snapshots only grow along the deque: stop at the first still waiting.
  while (!w.early_flip.empty() && completed > w.early_flip.front().completed_at_removal) {
    element* e = w.early_flip.front().e;
    w.early_flip.pop_front();
    const int p = e->pipe.load(std::memory_order_relaxed) + 1;
    e->pipe.store(p, std::memory_order_relaxed);
    if (p >= kPipeLen) {
      pool_.free(e);
      continue;
    }
    w.early_flip.push_back({e, completed});  // the next step takes another (early) grace period
    (void)dom.start_poll();
  }
  if (stopping) {
    // The final drain's synchronize() rounds take the rest down the pipe.
    for (const early_flip_wait& x : w.early_flip) add_to_waiting(td, x.e);
    w.early_flip.clear();
  }
}

constexpr busted_ops kBustedOps[] = {
    {"noop", "retire through a \"grace period\" that returns at once", &run::busted_noop_retire, nullptr},
    {"early-flip",
     "retire into the grace period already in flight (the next grace_periods_completed() step after the "
     "removal)",
     &run::busted_early_flip_retire, &run::busted_early_flip_advance},
};

// --fwd-progress: queue every flood head that is not still queued. Each is
// reused once its callback has run, so outstanding callbacks stay bounded.
void run::flood_burst(writer_state& w) {
  srcu::domain& dom = *w.td->dom;
  for (std::size_t i = 0; i < w.flood_size; ++i) {
    flood_head& h = w.flood[i];
    if (h.queued.load(std::memory_order_acquire)) continue;
    h.queued.store(true, std::memory_order_relaxed);
    w.flood_calls.add();
    dom.call(&h.head, &flood_callback);
    if ((i & 4095) == 0 && stop_writers_.load(std::memory_order_relaxed)) break;
  }
}

void run::writer_thread(writer_state& w) {
  rng rand(seed_for(2, static_cast<std::uint64_t>(w.id)));
  std::size_t next = static_cast<std::size_t>(w.id);
  w.last_progress_ns.store(now_ns(), std::memory_order_relaxed);
  while (!stop_writers_.load(std::memory_order_relaxed)) {
    fault(kFpWriterBetween, rand);
    if (opt_.fwd_progress) flood_burst(w);
    if (opt_.busted != nullptr && opt_.busted->advance != nullptr) (this->*opt_.busted->advance)(w, false);
    const primitive p = opt_.busted != nullptr ? kBusted : primitives_[next++ % primitives_.size()];
    w.in_primitive.store(p, std::memory_order_relaxed);
    update(w, p, rand);
    w.in_primitive.store(-1, std::memory_order_relaxed);
    w.ops[p].add();
    w.td->updates.add();
    w.last_progress_ns.store(now_ns(), std::memory_order_relaxed);
    if (rand.one_in(2)) sleep_us(rand.between(20, 300));
  }
  if (opt_.busted != nullptr && opt_.busted->advance != nullptr) (this->*opt_.busted->advance)(w, true);
  w.w.done.store(true, std::memory_order_release);
}

// --- Watchdog -------------------------------------------------------------------------

void run::watchdog_thread() {
  const auto stall_ns = static_cast<std::int64_t>(opt_.stall_s * 1e9);
  std::uint64_t last_invoked = 0;
  std::int64_t last_change = now_ns();
  bool cb_stall_reported = false;
  while (!stop_watchdog_.load(std::memory_order_relaxed)) {
    sleep_ns(100'000'000);
    const std::int64_t now = now_ns();
    if (draining_.load(std::memory_order_relaxed)) {
      // The final drain (synchronize/barrier after every thread stopped)
      // must finish too; if the library hangs there, fail instead of hanging.
      const std::int64_t since = drain_start_ns_.load(std::memory_order_relaxed);
      if (since != 0 && now - since > kShutdownLimitNs) {
        error(kErrStall, "STALL: the final drain (%s) has not finished in %.0f s",
              drain_stage_.load(std::memory_order_relaxed), kShutdownLimitNs / 1e9);
        abandon();
      }
      continue;
    }
    for (auto& w : writers_) {
      if (w->w.done.load(std::memory_order_acquire)) continue;  // stopped at the end of the run
      const std::int64_t last = w->last_progress_ns.load(std::memory_order_relaxed);
      if (!w->stall_reported && now - last > stall_ns) {
        w->stall_reported = true;
        const int p = w->in_primitive.load(std::memory_order_relaxed);
        error(kErrStall, "STALL: writer %d on domain %s completed no update for %.1f s (inside %s)", w->id,
              w->td->name, (now - last) / 1e9, p >= 0 ? kPrimitiveNames[p] : "(between updates)");
      }
    }
    if (delivery_) delivery_->check_stalls(now, stall_ns);
    const std::uint64_t invoked = callbacks_invoked();
    const std::uint64_t queued = callbacks_queued();
    if (invoked != last_invoked || queued == invoked) {
      last_invoked = invoked;
      last_change = now;
    } else if (!cb_stall_reported && now - last_change > stall_ns) {
      cb_stall_reported = true;
      error(kErrStall, "STALL: callbacks: %llu queued, %llu invoked, none invoked for %.1f s", ull(queued),
            ull(invoked), (now - last_change) / 1e9);
    }
  }
  watchdog_worker_.done.store(true, std::memory_order_release);
}

// --- Fault injection and errors ----------------------------------------------------------

void run::fault(fault_point p, rng& rand) {
  if (!rand.chance(opt_.yield_prob)) return;
  faults_[p].add();
  if (rand.one_in(4)) sleep_us(rand.between(1, 100)); else sched_yield();
}

void run::note_first_error() noexcept {
  std::int64_t expected = 0;
  first_error_ns_.compare_exchange_strong(expected, now_ns(), std::memory_order_relaxed);
}

void run::error(error_kind k, const char* fmt, ...) {
  errors_[k].add();
  note_first_error();
  const int n = messages_[k].fetch_add(1, std::memory_order_relaxed);
  if (n >= kMaxErrorMessages) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  say("ERROR (%s): %s%s", kErrorNames[k], buf,
      n + 1 == kMaxErrorMessages ? " [further messages of this kind suppressed; counted in the report]" : "");
}

void run::error_from_signal(error_kind k, const char* msg) noexcept {
  errors_[k].add();
  note_first_error();
  if (messages_[k].fetch_add(1, std::memory_order_relaxed) >= kMaxErrorMessages) return;
  write_all(g_prefix, std::strlen(g_prefix));
  static constexpr char kHead[] = "ERROR: ";
  write_all(kHead, sizeof kHead - 1);
  write_all(msg, std::strlen(msg));
  write_all("\n", 1);
}

std::uint64_t run::total_errors() const noexcept {
  std::uint64_t n = 0;
  for (const auto& e : errors_) n += e.get();
  return n;
}

// --- Sums ------------------------------------------------------------------------------

void run::sum_pipe(std::uint64_t (&pipe)[kPipeLen + 1], std::uint64_t (&batch)[kPipeLen + 1]) const {
  for (int i = 0; i <= kPipeLen; ++i) {
    pipe[i] = signal_pipe_[i].get();
    batch[i] = signal_batch_[i].get();
    for (const auto& s : readers_) {
      pipe[i] += s->stats.pipe[i].get();
      batch[i] += s->stats.batch[i].get();
    }
    for (const auto& h : handoff_stats_) {
      pipe[i] += h.pipe[i].get();
      batch[i] += h.batch[i].get();
    }
  }
}

std::uint64_t run::reader_sections() const {
  std::uint64_t n = signal_sections_.get();
  for (const auto& s : readers_) {
    for (const auto& c : s->stats.ops) n += c.get();
  }
  return n;
}

std::uint64_t run::callbacks_queued() const {
  std::uint64_t n = 0;
  for (const auto& c : cb_queued_) n += c.get();
  for (const auto& w : writers_) n += w->flood_calls.get();
  return n;
}

std::uint64_t run::callbacks_invoked() const {
  std::uint64_t n = 0;
  for (const auto& c : cb_invoked_) n += c.get();
  return n;
}

std::uint64_t run::updates() const {
  std::uint64_t n = 0;
  for (const auto& td : domains_) n += td->updates.get();
  return n;
}

// --- Fork --------------------------------------------------------------------------------

[[noreturn]] void fork_child_main(const options& parent, const std::vector<domain_spec>& specs);

void run::do_fork() {
  say("fork(): the child runs a %.0f s torture of its own on the same %zu domains", kChildSeconds,
      domains_.size());
  const pid_t pid = ::fork();
  if (pid < 0) {
    error(kErrChild, "fork() failed: %s", std::strerror(errno));
    return;
  }
  if (pid == 0) fork_child_main(opt_, specs_);  // never returns
  child_pid_ = pid;
  fork_ns_ = now_ns();
}

void run::reap_child(bool block) {
  if (child_pid_ <= 0 || child_reaped_) return;
  const std::int64_t limit = now_ns() + kShutdownLimitNs;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(child_pid_, &status, WNOHANG);
    if (r == child_pid_) {
      child_reaped_ = true;
      child_status_ = status;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status)) {
          error(kErrChild, "fork child %d was killed by signal %d", child_pid_, WTERMSIG(status));
        } else {
          error(kErrChild, "fork child %d failed (exit status %d)", child_pid_, WEXITSTATUS(status));
        }
      }
      return;
    }
    if (r < 0 && errno != EINTR) {
      error(kErrChild, "waitpid(fork child %d): %s", child_pid_, std::strerror(errno));
      child_reaped_ = true;
      return;
    }
    if (!block) return;
    if (now_ns() > limit) {
      error(kErrChild, "fork child %d did not finish in %.0f s; killed", child_pid_, kShutdownLimitNs / 1e9);
      ::kill(child_pid_, SIGKILL);
      ::waitpid(child_pid_, &status, 0);
      child_status_ = status;
      child_reaped_ = true;
      return;
    }
    sleep_ns(20'000'000);
  }
}

// --- Main loop, shutdown, drain ----------------------------------------------------------

void run::print_progress(std::int64_t now) {
  std::uint64_t pipe[kPipeLen + 1], batch[kPipeLen + 1];
  sum_pipe(pipe, batch);
  const std::uint64_t ops = reader_sections();
  const double dt = (now - prev_stat_ns_) / 1e9;
  char gps[512];
  int n = 0;
  for (const auto& td : domains_) {
    n += std::snprintf(gps + n, sizeof gps - static_cast<std::size_t>(n), "%s%s:%llu", n ? " " : "", td->name,
                       ull(td->dom->grace_periods_completed() - td->gp_at_start));
    if (n >= static_cast<int>(sizeof gps)) break;
  }
  char hist[256];
  int h = 0;
  for (int i = 0; i <= kPipeLen; ++i) {
    h += std::snprintf(hist + h, sizeof hist - static_cast<std::size_t>(h), "%s%llu", i ? " " : "", ull(pipe[i]));
  }
  say("[%6.1f s] reader-ops %llu (%.0f/s) updates %llu GPs %s callbacks %llu/%llu delivery-rounds %llu errors %llu "
      "| Reader Pipe: %s",
      (now - start_ns_) / 1e9, ull(ops), dt > 0 ? (ops - prev_ops_) / dt : 0.0, ull(updates()), gps,
      ull(callbacks_invoked()), ull(callbacks_queued()), ull(delivery_ ? delivery_->rounds() : 0), ull(total_errors()),
      hist);
  prev_ops_ = ops;
  prev_stat_ns_ = now;
}

bool run::join_within(worker& w, const char* what, std::int64_t deadline) {
  while (!w.done.load(std::memory_order_acquire)) {
    if (now_ns() > deadline) {
      error(kErrStall, "STALL: %s did not stop within %.0f s of the end of the test", what,
            kShutdownLimitNs / 1e9);
      return false;
    }
    sleep_ns(5'000'000);
  }
  if (w.thread.joinable()) w.thread.join();
  return true;
}

// A thread would not stop: report what we have and leave without touching
// the domains (their destructors would wait for that thread).
void run::abandon() {
  capture_domain_stats();
  queued_at_end_ = callbacks_queued();
  invoked_at_end_ = callbacks_invoked();
  print_report();
  _exit(1);
}

void run::shutdown() {
  const std::int64_t deadline = now_ns() + kShutdownLimitNs;
  bool ok = true;
  if (opt_.signal_storm) {
    stop_storm_.store(true, std::memory_order_relaxed);
    ok &= join_within(storm_worker_, "the signal storm thread", deadline);
  }
  stop_readers_.store(true, std::memory_order_relaxed);
  for (auto& slot : readers_) {
    if (slot->w.thread.joinable()) ok &= join_within(slot->w, "a reader thread", deadline);
  }
  stop_writers_.store(true, std::memory_order_relaxed);
  for (auto& w : writers_) {
    char what[128];
    std::snprintf(what, sizeof what, "writer %d on domain %s", w->id, w->td->name);
    ok &= join_within(w->w, what, deadline);
  }
  if (delivery_ && !delivery_->stop(deadline)) abandon();  // the library is stuck in a delivery round
  {
    std::lock_guard lk(handoff_mutex_);
    handoff_stop_ = true;
  }
  handoff_cv_.notify_all();
  if (handoff_enabled_) {
    for (auto& hw : handoff_workers_) ok &= join_within(hw, "a hand-off helper", deadline);
  }
  if (!ok) abandon();
  // No thread of ours can be in a signal handler any more.
  g_signal_run.store(nullptr, std::memory_order_release);
}

void run::final_drain() {
  drain_start_ns_.store(now_ns(), std::memory_order_relaxed);
  draining_.store(true, std::memory_order_relaxed);
  if (delivery_) delivery_->teardown();
  drain_stage_.store("synchronize()/barrier() with every torture thread stopped", std::memory_order_relaxed);
  // Waiting elements: each synchronize() moves them one step down the pipe.
  for (auto& td : domains_) {
    for (int i = 0; i < kPipeLen + 2; ++i) {
      {
        std::lock_guard lk(td->waiting_mutex);
        if (td->waiting.empty()) break;
      }
      const std::uint64_t snapshot = td->removal_seq.load(std::memory_order_acquire);
      td->dom->synchronize();
      pipe_update(*td, snapshot);
    }
  }
  // Callback cycles: each barrier() lets every element's callback run once
  // more; after at most kPipeLen rounds none re-queues itself.
  for (int round = 0; round < kPipeLen + 4; ++round) {
    for (auto& td : domains_) td->dom->barrier();
    if (callbacks_queued() == callbacks_invoked()) break;
  }
  queued_at_end_ = callbacks_queued();
  invoked_at_end_ = callbacks_invoked();
  drained_ = true;
  if (queued_at_end_ != invoked_at_end_) {
    error(kErrCallbacks, "after the final barrier(): %llu callbacks queued but %llu invoked", ull(queued_at_end_),
          ull(invoked_at_end_));
  }
  // Every element is now either some domain's current element or freed.
  const std::size_t total = pool_.total();
  const std::size_t freed = pool_.quarantined();
  if (total != freed + domains_.size()) {
    error(kErrLeak, "%zu elements allocated, %zu freed, %zu current: %zd unaccounted for", total, freed,
          domains_.size(), static_cast<std::ptrdiff_t>(total - freed - domains_.size()));
  }
  draining_.store(false, std::memory_order_relaxed);
}

bool run::execute() {
  start_ns_ = now_ns();
  prev_stat_ns_ = start_ns_;
  for (auto& td : domains_) {
    td->gp_at_start = td->dom->grace_periods_completed();
    td->current.store(pool_.get(td.get()), std::memory_order_release);
  }
  if (opt_.signal_storm) g_signal_run.store(this, std::memory_order_release);

  if (handoff_enabled_) {
    for (int i = 0; i < kHandoffThreads; ++i) {
      handoff_workers_[i].thread = std::thread(&run::handoff_thread, this, i);
    }
  }
  const int readers_per_domain = opt_.fwd_progress ? opt_.readers * 2 : opt_.readers;
  for (auto& td : domains_) {
    for (int i = 0; i < readers_per_domain; ++i) {
      auto slot = std::make_unique<reader_slot>();
      slot->index = static_cast<int>(readers_.size());
      slot->home = td.get();
      readers_.push_back(std::move(slot));
    }
  }
  for (auto& slot : readers_) start_reader(*slot);
  for (auto& td : domains_) {
    for (int i = 0; i < opt_.writers; ++i) {
      auto w = std::make_unique<writer_state>();
      w->id = static_cast<int>(writers_.size());
      w->td = td.get();
      w->probe.owner = this;
      if (opt_.fwd_progress) {
        w->flood_size = static_cast<std::size_t>(opt_.flood);
        w->flood = std::make_unique<flood_head[]>(w->flood_size);
        for (std::size_t k = 0; k < w->flood_size; ++k) w->flood[k].owner = this;
      }
      writers_.push_back(std::move(w));
    }
  }
  for (auto& w : writers_) w->w.thread = std::thread(&run::writer_thread, this, std::ref(*w));
  if (opt_.delivery != 0 && !is_child_) {
    delivery_ = std::make_unique<delivery_torture>(*this, opt_);
    delivery_->start();
  }
  watchdog_worker_.thread = std::thread(&run::watchdog_thread, this);
  if (opt_.signal_storm) storm_worker_.thread = std::thread(&run::storm_thread, this);

  const auto duration_ns = static_cast<std::int64_t>(opt_.duration_s * 1e9);
  const std::int64_t end = start_ns_ + duration_ns;
  const auto interval_ns = static_cast<std::int64_t>(opt_.stat_interval_s * 1e9);
  std::int64_t next_stat = interval_ns > 0 ? start_ns_ + interval_ns : std::numeric_limits<std::int64_t>::max();
  std::int64_t fork_at = (opt_.fork && !is_child_) ? start_ns_ + duration_ns / 2
                                                    : std::numeric_limits<std::int64_t>::max();
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= end) break;
    const std::int64_t first_error = first_error_ns_.load(std::memory_order_relaxed);
    if (!opt_.keep_going && first_error != 0 && now - first_error >= kStopAfterErrorNs) {
      say("errors detected: stopping early (--keep-going runs the full duration)");
      stopped_early_ = true;
      break;
    }
    if (opt_.thread_churn) maintain_readers();
    if (now >= fork_at) {
      fork_at = std::numeric_limits<std::int64_t>::max();
      do_fork();
    }
    reap_child(false);
    if (opt_.fwd_progress) {
      flood_max_outstanding_ = std::max(flood_max_outstanding_, callbacks_queued() - callbacks_invoked());
    }
    if (now >= next_stat) {
      print_progress(now);
      next_stat += interval_ns;
    }
    sleep_ns(std::min<std::int64_t>(20'000'000, end - now));
  }
  end_ns_ = now_ns();
  flood_invoked_during_run_ = cb_invoked_[kCbFlood].get();
  for (const auto& td : domains_) td->gp_at_end = td->dom->grace_periods_completed();

  shutdown();
  final_drain();
  stop_watchdog_.store(true, std::memory_order_relaxed);
  if (watchdog_worker_.thread.joinable()) watchdog_worker_.thread.join();
  reap_child(true);

  // Isolation: a domain whose readers sleep for hundreds of milliseconds may
  // slow only its own grace periods.
  const torture_domain* sleepy = nullptr;
  for (const auto& td : domains_) {
    if (td->sleepy) sleepy = td.get();
  }
  if (sleepy != nullptr && opt_.busted == nullptr) {  // --busted does not wait like the real primitives
    const std::uint64_t sleepy_gps = sleepy->gp_at_end - sleepy->gp_at_start;
    for (const auto& td : domains_) {
      if (td.get() == sleepy) continue;
      const std::uint64_t gps = td->gp_at_end - td->gp_at_start;
      if (gps <= sleepy_gps) {
        error(kErrIsolation, "domain %s completed %llu grace periods, no more than the sleepy domain %s (%llu)",
              td->name, ull(gps), sleepy->name, ull(sleepy_gps));
      }
    }
  }
  return success();
}

void run::capture_domain_stats() {
  for (const auto& td : domains_) {
    td->slots_at_end = td->dom->reader_slots();
    td->stats_at_end = td->dom->stats();
  }
  all_stats_at_end_ = srcu::all_domains_stats();
}

// --- Report ----------------------------------------------------------------------------------

std::string format_hist(const std::uint64_t (&h)[kPipeLen + 1]) {
  std::string s;
  for (int i = 0; i <= kPipeLen; ++i) {
    if (i) s += ' ';
    s += std::to_string(h[i]);
  }
  return s;
}

void run::print_report() {
  const double secs = std::max((end_ns_ - start_ns_) / 1e9, 1e-9);
  std::uint64_t pipe[kPipeLen + 1], batch[kPipeLen + 1];
  sum_pipe(pipe, batch);
  std::uint64_t pipe_bad = 0, batch_bad = 0;
  for (int i = 2; i <= kPipeLen; ++i) {
    pipe_bad += pipe[i];
    batch_bad += batch[i];
  }

  line("--- End of test report: %.1f s%s", secs, stopped_early_ ? " (stopped early: errors)" : "");
  line("Reader Pipe:  %s%s", format_hist(pipe).c_str(), pipe_bad ? "  !!! (entries past index 1)" : "");
  line("Reader Batch: %s%s", format_hist(batch).c_str(), batch_bad ? "  !!! (entries past index 1)" : "");

  std::uint64_t ops[kFlavourCount] = {};
  std::uint64_t nested = 0, handed = 0, long_sleeps = 0, short_delays = 0;
  for (const auto& s : readers_) {
    for (int f = 0; f < kFlavourCount; ++f) ops[f] += s->stats.ops[f].get();
    nested += s->stats.nested.get();
    long_sleeps += s->stats.long_sleeps.get();
    short_delays += s->stats.short_delays.get();
  }
  for (const auto& h : handoff_stats_) handed += h.handed_off.get();
  const std::uint64_t total_ops = reader_sections();
  line("Reader ops: %llu (%.0f/s): lock %llu, guard %llu, scoped %llu, signal %llu, updown %llu "
       "(%llu ended by up_read on a helper thread), signal-handler %llu; nested %llu; "
       "long sleeps %llu, short delays %llu",
       ull(total_ops), total_ops / secs, ull(ops[kLock]), ull(ops[kGuard]), ull(ops[kScoped]),
       ull(ops[kSignalSafe]), ull(ops[kUpDown]), ull(handed), ull(signal_sections_.get()), ull(nested),
       ull(long_sleeps), ull(short_delays));
  if (opt_.signal_storm) {
    line("Signal storm: %llu SIGUSR1 sent, %llu handler sections, %llu call()s from the handler, "
         "%llu times no free head",
         ull(signals_sent_.get()), ull(signal_sections_.get()), ull(signal_calls_.get()),
         ull(signal_no_head_.get()));
  }
  if (opt_.thread_churn) {
    line("Thread churn: %llu reader threads started for %zu reader slots", ull(readers_started_),
         readers_.size());
  }

  std::string gp_line, slot_line;
  for (const auto& td : domains_) {
    const std::uint64_t gps = td->gp_at_end - td->gp_at_start;
    const int lp = td->longest_gp_primitive.load(std::memory_order_relaxed);
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s%s%s %llu (%.1f/s, longest %.1f ms %s)", gp_line.empty() ? "" : ", ",
                  td->name, td->sleepy ? " [sleepy]" : "", ull(gps), gps / secs,
                  td->longest_gp_ns.load(std::memory_order_relaxed) / 1e6, lp >= 0 ? kPrimitiveNames[lp] : "-");
    gp_line += buf;
    std::snprintf(buf, sizeof buf, "%s%s %zu", slot_line.empty() ? "" : ", ", td->name, td->slots_at_end);
    slot_line += buf;
  }
  line("Grace periods: %s", gp_line.c_str());
  line("Reader slots per domain: %s", slot_line.c_str());
  // srcu's own counters (srcu/diagnostics.h), next to the torture's.
  std::string stats_line;
  for (const auto& td : domains_) {
    const srcu::domain_stats& st = td->stats_at_end;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s%s gps %llu (expedited %llu), callbacks %llu/%llu, longest %.1f ms, stalls %llu",
                  stats_line.empty() ? "" : "; ", td->name, ull(st.grace_periods), ull(st.expedited_grace_periods),
                  ull(st.callbacks_invoked), ull(st.callbacks_queued), st.longest_grace_period.count() / 1e6,
                  ull(st.stalls_reported));
    stats_line += buf;
  }
  line("srcu stats (domain::stats(), invoked/queued): %s", stats_line.c_str());
  line("srcu stats, all %zu live domains: gps %llu (expedited %llu), callbacks %llu/%llu, longest %.1f ms, "
       "stalls %llu",
       all_stats_at_end_.domains, ull(all_stats_at_end_.totals.grace_periods),
       ull(all_stats_at_end_.totals.expedited_grace_periods), ull(all_stats_at_end_.totals.callbacks_invoked),
       ull(all_stats_at_end_.totals.callbacks_queued), all_stats_at_end_.totals.longest_grace_period.count() / 1e6,
       ull(all_stats_at_end_.totals.stalls_reported));

  std::uint64_t prim[kPrimitiveSlots] = {};
  std::int64_t longest[kPrimitiveSlots] = {};
  std::uint64_t cond_done = 0;
  for (const auto& w : writers_) {
    for (int p = 0; p < kPrimitiveSlots; ++p) {
      prim[p] += w->ops[p].get();
      longest[p] = std::max(longest[p], w->longest_ns[p].load(std::memory_order_relaxed));
    }
    cond_done += w->cond_already_done.get();
  }
  const std::uint64_t total_updates = updates();
  line("Updates: %llu (%.0f/s): sync %llu, expedited %llu, call %llu, retire %llu, cond %llu "
       "(%llu found their cookie done already), poll %llu, barrier %llu, busted %llu",
       ull(total_updates), total_updates / secs, ull(prim[kSync]), ull(prim[kExpedited]), ull(prim[kCall]),
       ull(prim[kRetire]), ull(prim[kCond]), ull(cond_done), ull(prim[kPoll]), ull(prim[kBarrier]),
       ull(prim[kBusted]));

  std::int64_t longest_all = 0, longest_normal = 0;
  const char* longest_where = "-";
  const char* longest_prim = "-";
  for (const auto& td : domains_) {
    const std::int64_t l = td->longest_gp_ns.load(std::memory_order_relaxed);
    if (l > longest_all) {
      longest_all = l;
      longest_where = td->name;
      const int lp = td->longest_gp_primitive.load(std::memory_order_relaxed);
      longest_prim = lp >= 0 ? kPrimitiveNames[lp] : "-";
    }
    if (!td->sleepy) longest_normal = std::max(longest_normal, l);
  }
  line("Longest grace period: %.1f ms (%s on %s); %.1f ms on domains without sleepy readers; by primitive: "
       "sync %.1f, expedited %.1f, cond %.1f, poll %.1f, barrier %.1f ms",
       longest_all / 1e6, longest_prim, longest_where, longest_normal / 1e6, longest[kSync] / 1e6,
       longest[kExpedited] / 1e6, longest[kCond] / 1e6, longest[kPoll] / 1e6, longest[kBarrier] / 1e6);

  std::string cb_kinds;
  for (int k = 0; k < kCallbackKinds; ++k) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s%s %llu", k ? ", " : "", kCallbackNames[k], ull(cb_invoked_[k].get()));
    cb_kinds += buf;
  }
  line("Callbacks: queued %llu, invoked %llu %s (%s) %s", ull(queued_at_end_), ull(invoked_at_end_),
       drained_ ? "after the final barrier" : "when the run was abandoned (final barrier not reached)",
       cb_kinds.c_str(), queued_at_end_ == invoked_at_end_ ? "OK" : "MISMATCH");
  if (delivery_) delivery_->print_report();
  if (opt_.fwd_progress) {
    std::uint64_t flood_calls = 0;
    for (const auto& w : writers_) flood_calls += w->flood_calls.get();
    line("Forward progress: %llu flood call()s, %llu flood callbacks invoked during the run (%.0f/s), "
         "at most %llu callbacks outstanding",
         ull(flood_calls), ull(flood_invoked_during_run_), flood_invoked_during_run_ / secs,
         ull(flood_max_outstanding_));
  }
  line("Elements: allocated %llu, freed (poisoned, quarantined) %llu, reused from quarantine %llu",
       ull(pool_.allocated()), ull(pool_.freed()), ull(pool_.reused()));
  if (opt_.yield_prob > 0) {
    std::string fp;
    std::uint64_t total = 0;
    for (int p = 0; p < kFaultPoints; ++p) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s%s %llu", p ? ", " : "", kFaultNames[p], ull(faults_[p].get()));
      fp += buf;
      total += faults_[p].get();
    }
    line("Fault injection: %llu yields/sleeps (%s)", ull(total), fp.c_str());
  }
  if (opt_.fork && !is_child_) {
    if (child_pid_ > 0) {
      const bool ok = WIFEXITED(child_status_) && WEXITSTATUS(child_status_) == 0;
      line("Fork child: pid %d, forked at %.1f s, %s", child_pid_, (fork_ns_ - start_ns_) / 1e9,
           ok ? "exited with SUCCESS" : "FAILED");
    } else {
      line("Fork child: none (the run ended before the fork)");
    }
  }
  std::string kinds;
  for (int k = 0; k < kErrorKinds; ++k) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %llu", k ? ", " : "", kErrorNames[k], ull(errors_[k].get()));
    kinds += buf;
  }
  line("Errors: %llu (%s)", ull(total_errors()), kinds.c_str());
  line("End of test: %s", success() ? "SUCCESS" : "FAILURE");
}

// --- Fork child ---------------------------------------------------------------------------

[[noreturn]] void fork_child_main(const options& parent, const std::vector<domain_spec>& specs) {
  std::snprintf(g_prefix, sizeof g_prefix, "srcu-torture[child %d]: ", static_cast<int>(getpid()));
  std::snprintf(g_report_prefix, sizeof g_report_prefix, "[child %d] ", static_cast<int>(getpid()));
  options o = parent;
  o.duration_s = kChildSeconds;
  o.fork = false;
  o.delivery = 0;  // the child tortures the shared domains only
  o.stat_interval_s = 0;
  o.seed = mix_seed(parent.seed, 99, 1);
  // Fresh state only: the parent's torture objects may be locked by
  // threads that do not exist here. The domains are shared on purpose.
  auto r = std::make_unique<run>(o, specs, /*is_child=*/true);
  const bool ok = r->execute();
  r->capture_domain_stats();
  r->print_report();
  _exit(ok ? 0 : 1);
}

// --- Options ------------------------------------------------------------------------------

constexpr const char kHelp[] = R"(Usage: srcu-torture [OPTIONS]

Torture test for srcu (sleepable RCU), after the Linux kernel's rcutorture.
Readers of every flavour walk a shared "current element" in several domains
while writers replace it and retire the old one through every update
primitive. Exit status 0 and a last line "End of test: SUCCESS" when no error
was seen; 1 and "End of test: FAILURE" otherwise; 2 for a usage error.

Run shape
  --duration S         seconds to run (default 30)
  --readers N          reader threads per domain (default 4; doubled by --fwd-progress)
  --writers N          writer threads per domain (default 2)
  --domains N          srcu domains tortured at once (default 3)
  --flavours LIST      reader flavours, comma-separated (default all):
                         lock    read_lock()/read_unlock()
                         guard   srcu::read_guard
                         scoped  std::scoped_lock on the domain (lock()/unlock())
                         signal  read_lock_signal_safe()/read_unlock_signal_safe()
                         updown  down_read()/up_read(); a quarter of these sections
                                 are ended by up_read() on a helper thread
                       Any section may nest further sections (random flavour,
                       usually the same domain) up to --max-nest deep.
  --primitives LIST    update primitives, used in rotation (default all):
                         sync       synchronize()
                         expedited  synchronize_expedited()
                         call       call() with the callback_head embedded in the element
                         retire     domain::retire() with a deleter
                         cond       get_poll_cookie(), then cond_synchronize()
                         poll       start_poll(), then poll() until true
                         barrier    call() of a probe, then barrier(): the probe must have run
  --seed N             random seed (default: from the clock; printed at the start)
  --stat-interval S    progress line every S seconds (default 5; 0 = none)
  --max-nest N         deepest nesting of reader sections (default 3; 0 = none)
  --reader-delay-us N  longest short delay (spin, yield or sleep) that readers take
                       inside one section in 16 (default 20; 0 = none)
  --sleepy-domain      (default) the last domain's readers sleep --sleepy-min-ms to
  --no-sleepy-domain   --sleepy-max-ms inside every outermost section; the other
                       domains' grace periods must keep going (isolation)
  --sleepy-min-ms N, --sleepy-max-ms N   (default 100 and 500)
  --keep-going         run the full duration even after an error (default: stop
                       1 s after the first error and report)

Fault injection
  --yield-prob P       at each labelled point in readers, helpers and writers
                       (reader.in-section, writer.before-gp, ...), yield the CPU
                       or sleep up to 100 us with probability P (default 0.001)
  --lib-fault-prob P   inside the library, at its labelled points (between the
                       unlock and lock sums, around the flip, between call()'s
                       ticket and push, ...), yield or sleep up to 50 us with
                       probability P; needs a build with SRCU_FAULT_INJECTION=ON
                       (the tsan and asan presets), else it is refused
  --signal-storm       a thread sends SIGUSR1 to random reader threads; the
                       handler takes a signal-safe reader section on a domain,
                       checks the element, and call()s with a head taken from a
                       lock-free preallocated pool
  --thread-churn       reader threads exit after 0.2-1.5 s and are replaced
  --fork               halfway through, fork(); the child runs a 2 s torture of
                       its own on the same domains and exits with its verdict;
                       a failed child is an error in the parent
  --fwd-progress       forward-progress mode: writers flood call() (up to --flood
                       callbacks outstanding each, millions over a run) between
                       updates, and readers storm (twice as many, no delays)
  --flood N            flood callback heads per writer (default 100000)
  --stall-seconds S    a writer that completes no update for S seconds, a delivery
                       scenario that completes no round, or callbacks that stop
                       being invoked, is a STALL (default 10)

Callback delivery (on by default)
  --delivery LIST      delivery scenarios, comma-separated (default all), each on
                       a thread of its own beside the tortured domains:
                         cross-barrier   callbacks of "upper" domains call
                                         barrier(), call()+barrier() and
                                         synchronize() of "leaf" domains, and
                                         synchronize() of their own domain
                         nested-domains  callbacks create a domain, use it
                                         (call(), readers, synchronize()) and
                                         delete it in the same callback or a
                                         later one, or retire() an object that
                                         owns it; the thread retires such
                                         objects too. So ~domain runs inside
                                         another domain's callback, with
                                         callbacks still queued on its domain
                         domain-churn    the thread creates 1-3 domains (any
                                         executor, a private pool included),
                                         queues callbacks, some of which queue
                                         more while ~domain runs, and destroys
                                         them at once
                       Leaf and upper domains come in three kinds each: on srcu's
                       callback workers, on a thread pool of the torture's own (1
                       and 2 threads, a queue), and on an inline executor (submit()
                       runs the batch at once). Two submit()s of these executors
                       in three call() into a delivery domain holding the
                       executor's lock; one in 32 first waits, without the lock
                       (barrier() of leaf-srcu or synchronize() of a leaf).
                       Every callback on a short-lived domain is counted: when
                       ~domain returns, each must have run exactly once. Only
                       upper-domain callbacks wait, never for an upper domain nor
                       for a domain served by their own pool thread, so a wait
                       that does not end is srcu's: a round unfinished after
                       --stall-seconds is a STALL that names the stuck wait.
  --no-delivery        none of them

Self-test of the test
  --busted[=MODE]      writers retire every element through a broken "grace
                       period" of the torture program's own (never the
                       library's). The run must end in "End of test: FAILURE":
                       this proves the checks catch a grace period that does not
                       wait for the readers it must. MODE:
                         noop        (plain --busted) returns at once, without
                                     waiting for any reader: pipe counts up to
                                     10 and "freed" errors within a second
                         early-flip  one phase short: after the removal the
                                     element takes the next step of
                                     grace_periods_completed() as its grace
                                     period (start_poll() makes sure one
                                     comes). That may be the grace period
                                     already in flight, whose flip came before
                                     the removal, so it does not wait for
                                     readers that began after the flip and
                                     still hold the element. Every grace
                                     period is real; only pipe count 2 shows,
                                     usually within a second

  --help               this text

Reading the output
  The first line lists the configuration (with the seed, to repeat a run).
  Progress lines: reader sections so far (and per second), updates, grace
  periods per domain, callbacks invoked/queued, errors, and the pipe histogram.

  Reader Pipe: N0 N1 ... N10. Each reader section records the pipe count of the
  element it read, re-read at the END of the section, just before its unlock.
  A current element has pipe count 0. Removing it makes it 1. Each full grace
  period that begins after the removal adds 1; at 10 the element is freed
  (poisoned and kept in quarantine, never unmapped during the run). Every
  grace period counted must wait for every reader still holding the element,
  so only index 0 (element still current) and 1 (removed during the section)
  may be nonzero. Anything at index 2 or beyond (marked "!!!") means a grace
  period ended under a reader that began before it: srcu is broken. Index 10
  also collects sections that saw a freed element.
  Reader Batch: N0 N1 ... N10. Grace periods completed during a section (read
  from grace_periods_completed() after the lock and before the unlock). Only
  the grace period already in flight may end inside a section, so again only
  indexes 0 and 1 may be nonzero.
  Then: reader sections per flavour, grace periods per domain (with the
  longest grace period a writer waited for), updates per primitive, callbacks
  queued and invoked (they must be equal after the final barrier), the
  delivery scenarios (rounds, what the callbacks did, short-lived domains
  destroyed with callbacks lost or run twice, executors' batches and the
  submit() hook's call()s), elements, fault injections, the fork child's
  verdict, and the errors by kind:
    pipe, freed, recycled, corrupt  a reader held an element a grace period
                                    did not protect
    batch         two or more grace periods ended inside one section
    writer-check  poll()/grace_periods_completed() disagree with a grace
                  period that returned, or barrier() returned early
    stall         a writer, a delivery scenario or the callbacks stopped
                  making progress (STALL)
    callbacks     callbacks queued != invoked after the final barrier
    leak          an element neither current nor freed after the final drain
    fork-child    the fork child failed
    isolation     a domain without sleepy readers completed no more grace
                  periods than the sleepy domain
    delivery      a callback on a short-lived domain was lost or ran twice
                  by the time ~domain returned, or a barrier()/synchronize()
                  inside a callback returned before what it waits for
)";

[[noreturn]] void usage_error(const char* fmt, const char* arg) {
  std::fprintf(stderr, "srcu-torture: ");
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\n(see srcu-torture --help)\n");
  std::exit(2);
}

double parse_double(const char* name, const char* v, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !(d >= lo && d <= hi)) {
    usage_error("bad value for %s", name);
  }
  return d;
}

int parse_int(const char* name, const char* v, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi) usage_error("bad value for %s", name);
  return static_cast<int>(n);
}

template <std::size_t N>
unsigned parse_list(const char* name, const char* v, const char* const (&names)[N], std::size_t count) {
  unsigned mask = 0;
  std::string_view rest(v);
  if (rest == "all") return (1u << count) - 1;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    std::string_view canonical = item;
    // Long spellings of the primitives are accepted too.
    if (item == "synchronize") canonical = "sync";
    if (item == "synchronize_expedited") canonical = "expedited";
    if (item == "cond_synchronize") canonical = "cond";
    if (item == "start_poll") canonical = "poll";
    if (item == "read_lock") canonical = "lock";
    if (item == "signal_safe") canonical = "signal";
    bool found = false;
    for (std::size_t i = 0; i < count; ++i) {
      if (canonical == names[i]) {
        mask |= 1u << i;
        found = true;
      }
    }
    if (!found) usage_error("unknown name in %s", name);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (mask == 0) usage_error("empty list for %s", name);
  return mask;
}

options parse_options(int argc, char** argv) {
  options o;
  bool seed_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (const std::size_t eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto need = [&]() -> const char* {
      if (has_value) return value.c_str();
      if (i + 1 >= argc) usage_error("%s needs a value", argv[i]);
      return argv[++i];
    };
    const char* a = arg.c_str();
    if (arg == "--help" || arg == "-h") {
      write_all(kHelp, sizeof kHelp - 1);
      std::exit(0);
    } else if (arg == "--duration") {
      o.duration_s = parse_double(a, need(), 0.1, 1e7);
    } else if (arg == "--readers") {
      o.readers = parse_int(a, need(), 1, 256);
    } else if (arg == "--writers") {
      o.writers = parse_int(a, need(), 1, 64);
    } else if (arg == "--domains") {
      o.domains = parse_int(a, need(), 1, 64);
    } else if (arg == "--flavours" || arg == "--flavors") {
      o.flavours = parse_list(a, need(), kFlavourNames, kFlavourCount);
    } else if (arg == "--primitives") {
      o.primitives = parse_list(a, need(), kPrimitiveNames, kPrimitiveCount);
    } else if (arg == "--seed") {
      const char* v = need();
      char* end = nullptr;
      errno = 0;
      o.seed = std::strtoull(v, &end, 0);
      if (errno != 0 || end == v || *end != '\0') usage_error("bad value for %s", a);
      seed_given = true;
    } else if (arg == "--stat-interval") {
      o.stat_interval_s = parse_double(a, need(), 0, 1e7);
    } else if (arg == "--sleepy-domain") {
      o.sleepy_domain = true;
    } else if (arg == "--no-sleepy-domain") {
      o.sleepy_domain = false;
    } else if (arg == "--sleepy-min-ms") {
      o.sleepy_min_ms = parse_int(a, need(), 0, 60'000);
    } else if (arg == "--sleepy-max-ms") {
      o.sleepy_max_ms = parse_int(a, need(), 0, 60'000);
    } else if (arg == "--reader-delay-us") {
      o.reader_delay_us = parse_int(a, need(), 0, 1'000'000);
    } else if (arg == "--max-nest") {
      o.max_nest = parse_int(a, need(), 0, 16);
    } else if (arg == "--yield-prob") {
      o.yield_prob = parse_double(a, need(), 0, 1);
    } else if (arg == "--lib-fault-prob") {
      o.lib_fault_prob = parse_double(a, need(), 0, 1);
#if !SRCU_FAULT_INJECTION
      if (o.lib_fault_prob > 0) {
        std::fprintf(stderr, "srcu-torture: --lib-fault-prob needs a library built with "
                             "SRCU_FAULT_INJECTION=ON (cmake --preset tsan or asan)\n");
        std::exit(2);
      }
#endif
    } else if (arg == "--signal-storm") {
      o.signal_storm = true;
    } else if (arg == "--thread-churn") {
      o.thread_churn = true;
    } else if (arg == "--fork") {
      o.fork = true;
    } else if (arg == "--fwd-progress") {
      o.fwd_progress = true;
    } else if (arg == "--flood") {
      o.flood = parse_int(a, need(), 1, 10'000'000);
    } else if (arg == "--stall-seconds") {
      o.stall_s = parse_double(a, need(), 0.1, 1e6);
    } else if (arg == "--busted") {
      // Plain --busted is --busted=noop; a mode is given only with '='.
      const std::string_view mode = has_value ? std::string_view(value) : std::string_view("noop");
      o.busted = nullptr;
      for (const busted_ops& b : kBustedOps) {
        if (mode == b.name) o.busted = &b;
      }
      if (o.busted == nullptr) usage_error("unknown mode for %s (noop, early-flip)", a);
    } else if (arg == "--delivery") {
      o.delivery = parse_list(a, need(), kDeliveryScenarioNames, kDeliveryScenarios);
    } else if (arg == "--no-delivery") {
      o.delivery = 0;
    } else if (arg == "--keep-going") {
      o.keep_going = true;
    } else {
      usage_error("unknown option %s", argv[i]);
    }
  }
  if (o.sleepy_min_ms > o.sleepy_max_ms) usage_error("%s", "--sleepy-min-ms is larger than --sleepy-max-ms");
  if (!seed_given) o.seed = static_cast<std::uint64_t>(now_ns()) ^ (static_cast<std::uint64_t>(getpid()) << 32);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse_options(argc, argv);
  const bool sleepy = opt.sleepy_domain && opt.domains >= 2;
  if (opt.lib_fault_prob > 0) {
    // Read by the library once, when its first fault point runs (after this).
    setenv("SRCU_FAULT_PROB", std::to_string(opt.lib_fault_prob).c_str(), 1);
  }

  say("--- Start of test: duration=%g readers=%d writers=%d (per domain) domains=%d flavours=%s primitives=%s "
      "seed=%llu stat-interval=%g sleepy-domain=%s max-nest=%d reader-delay-us=%d yield-prob=%g lib-fault-prob=%g "
      "signal-storm=%d thread-churn=%d fork=%d fwd-progress=%d%s stall-seconds=%g delivery=%s busted=%s",
      opt.duration_s, opt.readers, opt.writers, opt.domains,
      list_names(opt.flavours, kFlavourNames, kFlavourCount).c_str(),
      list_names(opt.primitives, kPrimitiveNames, kPrimitiveCount).c_str(), ull(opt.seed), opt.stat_interval_s,
      sleepy ? (std::to_string(opt.sleepy_min_ms) + "-" + std::to_string(opt.sleepy_max_ms) + "ms").c_str()
             : (opt.sleepy_domain ? "off (needs 2+ domains)" : "off"),
      opt.max_nest, opt.reader_delay_us, opt.yield_prob, opt.lib_fault_prob, opt.signal_storm, opt.thread_churn, opt.fork,
      opt.fwd_progress, opt.fwd_progress ? (" flood=" + std::to_string(opt.flood)).c_str() : "", opt.stall_s,
      opt.delivery != 0 ? list_names(opt.delivery, kDeliveryScenarioNames, kDeliveryScenarios).c_str() : "off",
      opt.busted != nullptr ? opt.busted->name : "off");
  if (opt.busted != nullptr) say("--busted=%s: %s; this run must end in FAILURE", opt.busted->name, opt.busted->summary);

  if (opt.signal_storm) {
    struct sigaction sa{};
    sa.sa_handler = &on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, nullptr);
  }

  // Names outlive the domains (domain_options keeps the pointer).
  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(opt.domains));
  for (int i = 0; i < opt.domains; ++i) {
    names.push_back((sleepy && i == opt.domains - 1 ? "sleepy" : "torture") + std::to_string(i));
  }
  std::vector<std::unique_ptr<srcu::domain>> domains;
  std::vector<domain_spec> specs;
  for (int i = 0; i < opt.domains; ++i) {
    srcu::domain_options dopt;
    dopt.name = names[static_cast<std::size_t>(i)].c_str();
    dopt.stall_timeout = std::chrono::milliseconds(static_cast<long long>(opt.stall_s * 1000));
    domains.push_back(std::make_unique<srcu::domain>(dopt));
    specs.push_back({domains.back().get(), dopt.name, sleepy && i == opt.domains - 1});
  }

  auto r = std::make_unique<run>(opt, specs, /*is_child=*/false);
  r->execute();
  r->capture_domain_stats();
  // ~domain requires that no reader is active and runs a last barrier(); every
  // torture thread has stopped by now. The report comes after, so its last
  // line is the verdict.
  domains.clear();
  r->print_report();
  return r->success() ? 0 : 1;
}
