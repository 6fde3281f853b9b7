// torture.h: what the files of srcu-torture share. The torture program
// tests srcu through its public API only (include/srcu/*.h); see README.md
// here and `srcu-torture --help`.
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
//
// Files: options (parsing, --help, --config), ops (the reader and update ops
// tables, busted grace periods included), element_pool, readers, writers,
// stressors (signal storm, thread churn, fork, flood), delivery (callback
// delivery scenarios), watchdog, output (messages, errors), report, run (the
// run's life: start, main loop, shutdown, final drain), main.

#pragma once

#include <pthread.h>
#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "element_pool.h"
#include "ops.h"
#include "options.h"
#include "support.h"
#include "srcu/srcu.h"

namespace srcu_torture {

// --- Constants ---------------------------------------------------------------

constexpr int kPipeLen = 10;  // histogram buckets 0..kPipeLen; freed at kPipeLen
constexpr int kSignalHeads = 4096;
constexpr std::size_t kHandoffQueueMax = 256;
constexpr int kHandoffThreads = 2;
constexpr int kMaxErrorMessages = 20;  // per error kind
constexpr double kChildSeconds = 2.0;
constexpr std::int64_t kShutdownLimitNs = 30'000'000'000;
constexpr std::int64_t kStopAfterErrorNs = 1'000'000'000;

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
  counter ops[kUpdateOpsCount];
  counter cond_already_done;  // cond_synchronize() found its cookie done already
  counter flood_calls;
  std::atomic<std::int64_t> longest_ns[kUpdateOpsCount] = {};  // this writer's longest wait, per primitive
  std::atomic<std::int64_t> last_progress_ns{0};
  std::atomic<int> in_primitive{-1};
  bool stall_reported = false;  // watchdog only
  barrier_probe probe;
  std::unique_ptr<flood_head[]> flood;
  std::size_t flood_size = 0;
  std::deque<early_flip_wait> early_flip;  // --busted=early-flip; snapshots in nondecreasing order
  // The reclaim primitive: this writer's own list, made by its thread at its
  // first use of the primitive, flushed when the writer leaves.
  std::unique_ptr<srcu::reclaim_list> reclaim;
};

extern std::atomic<run*> g_signal_run;  // the run the SIGUSR1 handler works for

void element_callback(srcu::callback_head* h);
void probe_callback(srcu::callback_head* h);
void flood_callback(srcu::callback_head* h);
void signal_head_callback(srcu::callback_head* h);
void on_sigusr1(int);

// The call and retire primitives' queueing of an element (writers.cc).
void queue_element_call(torture_domain& td, element* e);
void queue_element_retire(torture_domain& td, element* e);

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

  // Used by the ops tables (ops.cc) and the delivery scenarios.
  [[gnu::format(printf, 3, 4)]] void error(error_kind k, const char* fmt, ...);
  std::uint64_t add_to_waiting(torture_domain& td, element* e);
  element_pool& pool() noexcept { return pool_; }
  std::uint64_t seed_for(std::uint64_t kind, std::uint64_t index) const {
    return mix_seed(opt_.seed, kind, index);
  }
  void set_drain_stage(const char* stage) noexcept { drain_stage_.store(stage, std::memory_order_relaxed); }

 private:

  class reader_body;

  // Readers (readers.cc).
  void reader_thread(reader_slot& slot);
  void start_reader(reader_slot& slot);
  void section(reader_ctx& rc, torture_domain& td, int depth);
  void middle(reader_ctx& rc, torture_domain& td, int depth);
  observation begin_observation(torture_domain& td, flavour f, int depth);
  void end_observation(const observation& o, reader_stats& st);
  flavour pick_flavour(rng& rand) const noexcept;
  void handoff_thread(int i);
  bool try_handoff(const handoff_item& item);

  // Writers (writers.cc).
  void writer_thread(writer_state& w);
  void update(writer_state& w, primitive p, rng& rand);
  void pipe_update(torture_domain& td, std::uint64_t snapshot);
  void note_latency(writer_state& w, primitive p, std::int64_t ns);
  void flood_burst(writer_state& w);

  // Stressors (stressors.cc), watchdog (watchdog.cc), errors (output.cc),
  // the run itself (run.cc), the report (report.cc).
  void storm_thread();
  void watchdog_thread();
  void fault(fault_point p, rng& rand);
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

// retire() deleter of an element (writers.cc).
struct element_retirer {
  void operator()(element* e) const;
};

[[noreturn]] void fork_child_main(const options& parent, const std::vector<domain_spec>& specs);

}  // namespace srcu_torture
