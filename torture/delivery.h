// delivery.h: srcu-torture's callback delivery scenarios (--delivery): their
// types and the class that runs them (delivery.cc).

#pragma once

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

#include "torture.h"

namespace srcu_torture {

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

// One entry per delivery scenario, as the reader and update ops (ops.h).
struct delivery_scenario_ops {
  const char* name;   // --delivery, the report
  const char* alias;  // none; --delivery shares the list parser with the other tables
  const char* summary;
  void (delivery_torture::*round)(delivery_worker& w);
};
inline constexpr delivery_scenario_ops kDeliveryScenarioOps[kDeliveryScenarios] = {
    {"cross-barrier", nullptr, "callbacks barrier() and synchronize() other domains",
     &delivery_torture::cross_barrier_round},
    {"nested-domains", nullptr, "callbacks create and delete domains; ~domain inside a callback",
     &delivery_torture::nested_domains_round},
    {"domain-churn", nullptr, "a thread creates, fills and destroys domains", &delivery_torture::domain_churn_round},
};

}  // namespace srcu_torture
