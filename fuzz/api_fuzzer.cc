// libFuzzer target: random valid programs over srcu's whole public API,
// run on three long-lived worker threads, with srcu's guarantees checked.
//
// Each input is decoded into rounds (program.h). Between rounds the fuzzing
// thread creates and destroys domains; within a round the workers run their
// operations concurrently; a round ends when all of them are done, so a
// token, cookie or callback from an earlier round is visible to every worker.
//
// Invariants (a violation prints "srcu-fuzz: invariant violated: ..." and
// traps):
//  - every callback runs exactly once: a second run traps at once; barrier()
//    returns only after every callback queued before it (by this worker, or
//    in an earlier round) ran; ~domain() only after all of the domain's ran;
//  - a worker's reclaim_list (one per worker and domain, small batches and
//    rings so that merging is common) runs each deferred function once, on
//    its owner's thread (or the fuzzing thread, which destroys the lists
//    before their domain), never while a section the owner opened before
//    the defer() is still open, and all of them by the end of flush();
//  - poll(cookie) never goes from true back to false;
//  - grace_periods_completed() never decreases, and synchronize() completes
//    at least one grace period;
//  - after synchronize() or cond_synchronize(), poll() is true for every
//    cookie taken before the call;
//  - poll() is false while a reader that began before the cookie was taken
//    is still inside (the grace-period guarantee itself);
//  - no crash, leak or undefined behaviour (built with ASan and UBSan), and
//    no hang (libFuzzer's -timeout).
//
// Misuse mode (SRCU_FUZZ_MISUSE=1 in the environment): code 31 becomes one
// deliberate misuse; srcu must report it ("srcu: domain '...': ...") and
// abort. fuzz/run.sh runs the inputs in fuzz/misuse/ this way.
// SRCU_FUZZ_TRACE=1 prints each decoded program before running it.

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "program.h"
#include "srcu/domain.h"
#include "srcu/rcu.h"
#include "srcu/read_guard.h"
#include "srcu/reclaim_list.h"

namespace srcu_fuzz {
namespace {

// The operation this thread is running, for failure reports.
thread_local const op* tls_current_op = nullptr;
thread_local int tls_worker = -1;

[[noreturn]] void fail(const char* what, const char* detail = "") noexcept {
  char where[160] = "";
  if (const op* o = tls_current_op; o != nullptr) {
    std::snprintf(where, sizeof where, " [worker %d: %s(d%u,%u)]", tls_worker, op_name(o->kind),
                  unsigned{o->instance}, unsigned{o->arg});
  }
  std::fprintf(stderr, "srcu-fuzz: invariant violated: %s%s%s\n", what, detail, where);
  std::fflush(stderr);
  __builtin_trap();
}

// --- Executors a domain may name -------------------------------------------

// Runs each batch at once, on srcu's callback thread.
class inline_executor final : public srcu::executor {
 public:
  void submit(srcu::callback_batch batch) noexcept override { batch.run(); }
};

// Runs batches later, on a thread of its own.
class thread_executor final : public srcu::executor {
 public:
  thread_executor() : thread_([this] { serve(); }) {}

  void submit(srcu::callback_batch batch) noexcept override {
    {
      std::lock_guard lk(mutex_);
      queue_.push_back(std::move(batch));
    }
    ready_.notify_one();
  }

 private:
  [[noreturn]] void serve() {
    for (;;) {
      std::unique_lock lk(mutex_);
      ready_.wait(lk, [this] { return !queue_.empty(); });
      srcu::callback_batch batch = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      batch.run();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<srcu::callback_batch> queue_;
  std::thread thread_;  // last: starts after the queue exists
};

// --- Per-input state -----------------------------------------------------------

// One queued callback, whichever way it was queued. Only call_head queues
// the node itself; the others just count their run here.
struct cb_node : srcu::callback_head {
  std::atomic<std::uint32_t> runs{0};
  int pin = -1;    // defer(): a token open at the defer() that must close first
  int owner = -1;  // defer(): the worker whose list holds it
};

struct cookie_record {
  srcu::poll_cookie cookie;
  std::atomic<bool> done{false};  // poll() has returned true for it
};

struct state {
  const program* prog = nullptr;
  std::array<std::unique_ptr<srcu::domain>, kMaxInstances> domains;
  std::array<std::atomic<std::uint64_t>, kMaxInstances> gp_floor{};  // highest count seen
  std::array<srcu::read_token, kMaxTokens> tokens{};
  std::array<cookie_record, kMaxCookies> cookies;
  std::array<cb_node, kMaxNodes> nodes;
  std::atomic<std::uint64_t> callbacks_run{0};
  // Per token: its section is open. Set after the lock, cleared before the
  // unlock, so a deferred function that runs after a grace period that the
  // section held up reads false.
  std::array<std::atomic<bool>, kMaxTokens> open{};
  // The workers' reclaim_lists, made on first use by their owner and
  // destroyed by the fuzzing thread before their domain.
  std::array<std::array<std::unique_ptr<srcu::reclaim_list>, kMaxInstances>, kWorkers> lists;
};

// Created once, never destroyed: threads of the library and of this file
// outlive every input.
state* g_state = nullptr;
srcu::executor* g_executors[3] = {};
bool g_misuse = false;
bool g_trace = false;

constexpr const char* kSlotNames[kSlots] = {"fuzz-a", "fuzz-b", "fuzz-c", "fuzz-d"};

void ran(cb_node* n) noexcept {
  if (n->runs.fetch_add(1, std::memory_order_acq_rel) != 0) fail("a callback ran twice");
  g_state->callbacks_run.fetch_add(1, std::memory_order_relaxed);
}

void on_callback(srcu::callback_head* head) { ran(static_cast<cb_node*>(head)); }

void on_deferred(srcu::callback_head* head) {
  cb_node* n = static_cast<cb_node*>(head);
  if (tls_worker != n->owner && tls_worker != -1) {
    fail("reclaim_list ran a function on another worker's thread");
  }
  if (n->pin >= 0 && g_state->open[static_cast<std::size_t>(n->pin)].load(std::memory_order_acquire)) {
    fail("reclaim_list ran a function while a section opened before its defer() is still open");
  }
  ran(n);
}

struct counting_delete {
  cb_node* node;
  void operator()(int* p) const {
    delete p;
    ran(node);
  }
};

struct retired_obj;
struct retired_obj_delete {
  void operator()(retired_obj* p) const;
};
struct retired_obj : srcu::rcu_obj_base<retired_obj, retired_obj_delete> {
  explicit retired_obj(cb_node* n) : node(n) {}
  cb_node* node;
};
void retired_obj_delete::operator()(retired_obj* p) const {
  cb_node* n = p->node;
  delete p;
  ran(n);
}

// --- Checks ------------------------------------------------------------------------

void check_gp_count(std::uint8_t instance, const srcu::domain& d) {
  std::atomic<std::uint64_t>& floor = g_state->gp_floor[instance];
  std::uint64_t seen = floor.load(std::memory_order_acquire);
  const std::uint64_t now = d.grace_periods_completed();
  if (now < seen) fail("grace_periods_completed() went backwards");
  while (seen < now &&
         !floor.compare_exchange_weak(seen, now, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
  }
}

// " (cookie C, N grace periods completed)" for poll failures.
struct cookie_detail {
  cookie_detail(const srcu::domain& d, srcu::poll_cookie c) {
    std::snprintf(text, sizeof text, " (cookie %llu, %llu grace periods completed)",
                  static_cast<unsigned long long>(c.value()),
                  static_cast<unsigned long long>(d.grace_periods_completed()));
  }
  char text[96];
};

void check_poll(const srcu::domain& d, cookie_record& r, bool expect_pending) {
  const bool was_done = r.done.load(std::memory_order_acquire);
  const bool done = d.poll(r.cookie);
  if (was_done && !done) {
    fail("poll() went from true back to false", cookie_detail(d, r.cookie).text);
  }
  if (done && expect_pending) {
    fail("poll() true while a reader that began before the cookie is still inside",
         cookie_detail(d, r.cookie).text);
  }
  if (done && !was_done) r.done.store(true, std::memory_order_release);
}

void check_done_after_wait(const srcu::domain& d, cookie_record& r) {
  if (!d.poll(r.cookie)) {
    fail("poll() false after a wait for a grace period that covers it",
         cookie_detail(d, r.cookie).text);
  }
  r.done.store(true, std::memory_order_release);
}

// --- Operations --------------------------------------------------------------------

void pending_inside(srcu::domain& d, bool start) {
  const srcu::poll_cookie c = start ? d.start_poll() : d.get_poll_cookie();
  if (d.poll(c)) {
    fail("poll() true for a cookie taken inside a still-open read section",
         cookie_detail(d, c).text);
  }
}

void guarded_section(srcu::domain& d, unsigned variant) {
  const bool start = (variant & 1) != 0;
  if ((variant & 2) != 0) {
    std::unique_lock<srcu::domain> lk(d);
    if ((variant & 4) != 0) {
      std::scoped_lock inner(d);  // nested lock(): depth only
      pending_inside(d, start);
    } else {
      pending_inside(d, start);
    }
  } else {
    srcu::read_guard g(d);
    pending_inside(d, start);
  }
}

void synchronize(const op& o, srcu::domain& d) {
  const std::uint64_t before = d.grace_periods_completed();
  const srcu::poll_cookie own = d.get_poll_cookie();
  if (o.kind == op_kind::synchronize_expedited) {
    d.synchronize_expedited();
  } else {
    d.synchronize();
  }
  if (!d.poll(own)) fail("poll() false after synchronize() for a cookie taken before it");
  if (d.grace_periods_completed() <= before) {
    fail("synchronize() returned without a grace period completing");
  }
  for (std::uint32_t i = 0; i < o.check_count; ++i) {
    check_done_after_wait(d, g_state->cookies[g_state->prog->checks[o.check_begin + i]]);
  }
  check_gp_count(o.instance, d);
}

void barrier(const op& o, srcu::domain& d) {
  d.barrier();
  for (std::uint32_t i = 0; i < o.check_count; ++i) {
    const cb_node& n = g_state->nodes[g_state->prog->checks[o.check_begin + i]];
    if (n.runs.load(std::memory_order_acquire) != 1) {
      fail("barrier() returned before a callback queued before it ran");
    }
  }
}

// This worker's list on the op's domain. Its shape varies with the instance:
// batches of 1-3, rings of 1-2 (full rings merge), a grace period asked for
// at every reclaim.
srcu::reclaim_list& list_of(const op& o, srcu::domain& d) {
  std::unique_ptr<srcu::reclaim_list>& l = g_state->lists[static_cast<std::size_t>(tls_worker)][o.instance];
  if (!l) {
    srcu::reclaim_list_options options;
    options.batch_size = 1 + o.instance % 3u;
    options.max_batches = 1 + o.instance % 2u;
    options.grace_period_interval = std::chrono::microseconds(0);
    l = std::make_unique<srcu::reclaim_list>(d, options);
  }
  return *l;
}

void reclaim_flush(const op& o, srcu::domain& d) {
  list_of(o, d).flush();
  for (std::uint32_t i = 0; i < o.check_count; ++i) {
    const cb_node& n = g_state->nodes[g_state->prog->checks[o.check_begin + i]];
    if (n.runs.load(std::memory_order_acquire) != 1) {
      fail("reclaim_list::flush() returned before an object deferred onto it ran");
    }
  }
  if (list_of(o, d).pending() != 0) fail("reclaim_list::pending() not 0 after flush()");
}

[[noreturn]] void misuse(const op& o, srcu::domain& d) {
  switch (static_cast<misuse_kind>(o.arg)) {
    case misuse_kind::default_token:
      d.read_unlock(srcu::read_token());
      break;
    case misuse_kind::foreign_token: {
      const srcu::read_token t = g_state->domains[o.other]->down_read();
      d.up_read(t);
      break;
    }
    case misuse_kind::wrong_flavour: {
      const srcu::read_token t = d.read_lock_signal_safe();
      d.read_unlock(t);
      break;
    }
    case misuse_kind::unlock_without_lock:
      d.unlock();
      break;
    case misuse_kind::synchronize_in_reader: {
      const srcu::read_token t = d.read_lock();
      d.synchronize();
      d.read_unlock(t);
      break;
    }
    case misuse_kind::defer_twice: {
      static cb_node n;  // not one of the program's nodes, which may still be queued
      list_of(o, d).defer(&n, &on_deferred);
      list_of(o, d).defer(&n, &on_deferred);
      break;
    }
    case misuse_kind::flush_in_function: {
      static cb_node n;
      list_of(o, d).defer(&n, [](srcu::callback_head*) {
        g_state->lists[static_cast<std::size_t>(tls_worker)][tls_current_op->instance]->flush();
      });
      list_of(o, d).flush();
      break;
    }
  }
  fail("a deliberate misuse was not reported (SRCU_DEBUG off?)");
}

// A section's token and open flag: set after its lock, cleared before its
// unlock (on_deferred() reads the flag).
void opened(const op& o, srcu::read_token t) {
  g_state->tokens[o.arg] = t;
  g_state->open[o.arg].store(true, std::memory_order_relaxed);
}
srcu::read_token closing(const op& o) {
  g_state->open[o.arg].store(false, std::memory_order_release);
  return g_state->tokens[o.arg];
}

void run_op(const op& o) {
  state& s = *g_state;
  srcu::domain& d = *s.domains[o.instance];
  switch (o.kind) {
    case op_kind::read_lock: opened(o, d.read_lock()); break;
    case op_kind::read_unlock: d.read_unlock(closing(o)); break;
    case op_kind::signal_lock: opened(o, d.read_lock_signal_safe()); break;
    case op_kind::signal_unlock: d.read_unlock_signal_safe(closing(o)); break;
    case op_kind::down_read: opened(o, d.down_read()); break;
    case op_kind::up_read: d.up_read(closing(o)); break;
    case op_kind::lock: d.lock(); break;
    case op_kind::try_lock:
      if (!d.try_lock()) fail("try_lock() failed");
      break;
    case op_kind::unlock: d.unlock(); break;
    case op_kind::guarded_section: guarded_section(d, o.arg); break;
    case op_kind::synchronize:
    case op_kind::synchronize_expedited: synchronize(o, d); break;
    case op_kind::cond_synchronize: {
      cookie_record& r = s.cookies[o.arg];
      d.cond_synchronize(r.cookie);
      check_done_after_wait(d, r);
      check_gp_count(o.instance, d);
      break;
    }
    case op_kind::barrier: barrier(o, d); break;
    case op_kind::call_head: d.call(&s.nodes[o.arg], &on_callback); break;
    case op_kind::call_lambda: {
      cb_node* n = &s.nodes[o.arg];
      d.call([n] { ran(n); });
      break;
    }
    case op_kind::retire: d.retire(new int(o.arg), counting_delete{&s.nodes[o.arg]}); break;
    case op_kind::retire_obj: (new retired_obj(&s.nodes[o.arg]))->retire({}, d); break;
    case op_kind::get_cookie: s.cookies[o.arg].cookie = d.get_poll_cookie(); break;
    case op_kind::start_poll: s.cookies[o.arg].cookie = d.start_poll(); break;
    case op_kind::poll:
      if (o.arg == kDefaultCookie) {
        if (!d.poll(srcu::poll_cookie())) fail("poll() false for a default-constructed cookie");
      } else {
        check_poll(d, s.cookies[o.arg], (o.flags & kExpectPending) != 0);
      }
      break;
    case op_kind::gp_count: check_gp_count(o.instance, d); break;
    case op_kind::defer: {
      cb_node* n = &s.nodes[o.arg];
      n->pin = (o.flags & kPinned) != 0 ? o.other : -1;
      n->owner = tls_worker;
      list_of(o, d).defer(n, &on_deferred);
      break;
    }
    case op_kind::reclaim: (void)list_of(o, d).reclaim(); break;
    case op_kind::reclaim_flush: reclaim_flush(o, d); break;
    case op_kind::misuse: misuse(o, d);
  }
}

// --- Workers ---------------------------------------------------------------------------

// kWorkers threads that live as long as the process; each runs the list of
// operations it is handed and reports back. Thread creation per input would
// cost more than most inputs.
class worker_pool {
 public:
  worker_pool() {
    for (int i = 0; i < kWorkers; ++i) threads_[i] = std::thread([this, i] { serve(i); });
  }

  // Runs every worker's operations of `r`; returns when all are done.
  void run(const round& r) {
    for (int i = 0; i < kWorkers; ++i) {
      if (r.ops[i].empty()) continue;
      workers_[i].ops = &r.ops[i];
      workers_[i].go.fetch_add(1, std::memory_order_release);
      workers_[i].go.notify_one();
    }
    for (int i = 0; i < kWorkers; ++i) {
      if (r.ops[i].empty()) continue;
      const std::uint32_t target = workers_[i].go.load(std::memory_order_relaxed);
      for (std::uint32_t v; (v = workers_[i].done.load(std::memory_order_acquire)) != target;) {
        workers_[i].done.wait(v, std::memory_order_acquire);
      }
    }
  }

 private:
  struct alignas(64) worker {
    std::atomic<std::uint32_t> go{0};    // bumped by run(): a new list
    std::atomic<std::uint32_t> done{0};  // the last `go` value finished
    const std::vector<op>* ops = nullptr;
  };

  [[noreturn]] void serve(int index) {
    worker& me = workers_[index];
    tls_worker = index;
    std::uint32_t seen = 0;
    for (;;) {
      me.go.wait(seen, std::memory_order_acquire);
      seen = me.go.load(std::memory_order_acquire);
      for (const op& o : *me.ops) {
        tls_current_op = &o;
        run_op(o);
      }
      tls_current_op = nullptr;
      me.done.store(seen, std::memory_order_release);
      me.done.notify_one();
    }
  }

  std::array<worker, kWorkers> workers_;
  std::array<std::thread, kWorkers> threads_;
};

worker_pool* g_pool = nullptr;

// --- One input -----------------------------------------------------------------------------

void reset(state& s, const program& p) {
  s.prog = &p;
  for (std::size_t i = 0; i < p.node_instance.size(); ++i) {
    s.nodes[i].next = nullptr;
    s.nodes[i].func = nullptr;
    s.nodes[i].runs.store(0, std::memory_order_relaxed);
    s.nodes[i].pin = -1;
    s.nodes[i].owner = -1;
  }
  for (std::atomic<bool>& o : s.open) o.store(false, std::memory_order_relaxed);
  for (std::size_t i = 0; i < p.cookie_count; ++i) {
    s.cookies[i].cookie = srcu::poll_cookie();
    s.cookies[i].done.store(false, std::memory_order_relaxed);
  }
  s.callbacks_run.store(0, std::memory_order_relaxed);
}

void apply(const domain_action& a, const program& p) {
  state& s = *g_state;
  if (a.kind == action_kind::create) {
    const instance_info& info = p.instances[a.instance];
    srcu::domain_options options;
    options.name = kSlotNames[info.slot];
    options.stall_timeout = std::chrono::seconds(5);  // a report before libFuzzer's timeout
    options.callback_executor = g_executors[info.executor];
    s.domains[a.instance] = std::make_unique<srcu::domain>(options);
    s.gp_floor[a.instance].store(0, std::memory_order_relaxed);
    return;
  }
  // The lists first (~domain() aborts while one exists); each flushes. The
  // workers are between rounds: the join ordered their last use before this.
  for (auto& per_worker : s.lists) per_worker[a.instance].reset();
  s.domains[a.instance].reset();
  for (std::size_t i = 0; i < p.node_instance.size(); ++i) {
    if (p.node_instance[i] == a.instance &&
        s.nodes[i].runs.load(std::memory_order_acquire) != 1) {
      fail("~domain() returned before every callback of the domain ran");
    }
  }
}

void run_program(const program& p) {
  state& s = *g_state;
  reset(s, p);
  for (const round& r : p.rounds) {
    for (const domain_action& a : r.before) apply(a, p);
    g_pool->run(r);
  }
  if (s.callbacks_run.load(std::memory_order_acquire) != p.node_instance.size()) {
    fail("callbacks run != callbacks queued after every domain was destroyed");
  }
}

}  // namespace
}  // namespace srcu_fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace srcu_fuzz;
  const char* misuse = std::getenv("SRCU_FUZZ_MISUSE");
  g_misuse = misuse != nullptr && std::strcmp(misuse, "1") == 0;
  const char* trace = std::getenv("SRCU_FUZZ_TRACE");
  g_trace = trace != nullptr && std::strcmp(trace, "1") == 0;
  g_state = new state;
  g_executors[1] = new inline_executor;
  g_executors[2] = new thread_executor;
  g_pool = new worker_pool;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace srcu_fuzz;
  const program p = decode(data, size, g_misuse);
  if (g_trace) print(p, stderr);
  run_program(p);
  return 0;
}
