// delivery.cc: the callback delivery scenarios (see delivery.h).

#include "delivery.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>

namespace srcu_torture {

// --- Delivery: callbacks (plain functions: srcu hands back only the head) -----

// Each of these heads is the first member of its struct, whose `owner` runs
// the body.
template <class Head, void (delivery_torture::*Body)(Head&)>
void delivery_callback(srcu::callback_head* h) {
  auto* x = reinterpret_cast<Head*>(h);
  (x->owner->*Body)(*x);
}

constexpr auto delivery_probe_callback = &delivery_callback<delivery_probe, &delivery_torture::run_probe>;
constexpr auto cross_task_callback = &delivery_callback<cross_task, &delivery_torture::run_cross_task>;
constexpr auto nested_task_callback = &delivery_callback<nested_task, &delivery_torture::run_nested_task>;
constexpr auto deferred_delete_callback = &delivery_callback<deferred_delete, &delivery_torture::run_deferred_delete>;
constexpr auto hook_head_callback = &delivery_callback<hook_head, &delivery_torture::run_hook_head>;

void ledger_callback(srcu::callback_head* h) {
  auto* e = reinterpret_cast<ledger_entry*>(h);
  e->ledger->on_run(*e);
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
               kDeliveryScenarioOps[w->scenario].name, (now - last) / 1e9, w->stage.describe().c_str(), outstanding,
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
                   kDeliveryScenarioOps[w->scenario].name, w->stage.describe().c_str());
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
  run_.set_drain_stage("delivery teardown: barrier() of each delivery domain");
  for (int pass = 0; pass < 2; ++pass) {
    for (delivery_domain& d : domains_) d.dom->barrier();
  }
  run_.set_drain_stage("delivery teardown: ~domain() of each delivery domain");
  for (delivery_domain& d : domains_) d.dom.reset();
  run_.set_drain_stage("delivery teardown: joining the executors' threads");
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

// A reader section that does nothing inside (and never hands its token on).
class empty_section final : public section_body {
 public:
  bool inside(const srcu::read_token* /*token*/) override { return false; }
};
constexpr flavour kEmptySectionFlavours[] = {kGuard, kLock, kUpDown};

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
    // One root in eight takes and ends an empty reader section of one of these flavours.
    if (const std::uint32_t k = rand.below(8); k < std::size(kEmptySectionFlavours)) {
      empty_section body;
      kReaderOps[kEmptySectionFlavours[k]].section(od->dom, body);
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
      if (t->action == kBarrierLeaf) queue_task(w.round, *t->target, &t->probe.head, delivery_probe_callback);
      queue_task(w.round, *t->home, &t->head, cross_task_callback);
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
      if (t.action == kCallThenBarrierLeaf) queue_task(round, target, &t.probe.head, delivery_probe_callback);
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
    case kCallLeaf: queue_task(round, target, &t.probe.head, delivery_probe_callback); break;
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
    queue_task(w.round, *t->home, &t->head, nested_task_callback);
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
      queue_task(round, *t.later, &t.later_delete.head, deferred_delete_callback);
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
      target.dom->call(&h.head, hook_head_callback);
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
  line("Delivery: %s", list_names(opt_.delivery, kDeliveryScenarioOps, kDeliveryScenarios).c_str());
  if (opt_.delivery & (1u << kCrossBarrier)) {
    const std::string acts = named_counts(kCrossActionNames, cross_actions_, kCrossActions);
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
    const std::string sites = named_counts(kCallbackSiteNames, churn_domains_, kCallbackSites);
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

}  // namespace srcu_torture
