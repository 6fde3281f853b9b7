// The deadlock detector: lockdep for domains (include/srcu/tracked_mutex.h).
//
// Nodes are "readers of domain A" (what A's grace periods wait for), "the
// callbacks of A" (what barrier() on A waits for) and tracked mutexes. An
// edge X -> Y means: a thread holding X waited (or was about to wait) for Y.
// A new edge is added under the detector's mutex after a search from Y for
// X; finding one means a cycle of waits that can deadlock, reported with the
// operation that added each edge, then abort(). Keys are object addresses
// with the node kind in the low bits; a destroyed domain or mutex takes its
// nodes and every edge into them along (addresses are reused).
//
// What the calling thread holds: its own reader slots (the slot table every
// read_lock() uses, read under the registry mutex, which keeps the domains
// in it alive), the signal-safe sections that debug code noted
// (detail/reader.h), its tracked mutexes (a small thread-local stack) and
// the callbacks it is running (tls_running_callbacks).
//
// Lock order: the detector's mutex is a leaf: taken with no other library
// lock held, never held while calling out (the report is written, then
// abort()). fork(): taken in prepare, released in parent and child.

#include "lockdep.h"
#include "mutex.h"

#include "srcu/diagnostics.h"
#include "srcu/tracked_mutex.h"

#if SRCU_DEBUG

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "diagnostics.h"
#include "domain_state.h"

namespace srcu::detail {

extern constinit thread_local domain_state* tls_running_callbacks;  // callbacks.cc

namespace {

enum node_kind : std::uintptr_t { kReaders = 0, kCallbacks = 1, kMutex = 2 };

std::uintptr_t key(const void* object, node_kind kind) noexcept {
  return reinterpret_cast<std::uintptr_t>(object) | kind;
}

struct edge {
  std::uintptr_t to;
  std::string how;  // the operation that added it, for the report
};

struct graph {
  // A leaf: taken by user threads before they wait, never with another
  // library lock held.
  detail::mutex mutex;
  std::unordered_map<std::uintptr_t, std::vector<edge>> out SRCU_GUARDED_BY(mutex);
  std::unordered_map<std::uintptr_t, std::string> names SRCU_GUARDED_BY(mutex);
  std::atomic<bool> empty{true};  // lets ~domain skip the lock when nothing was recorded
};

graph& g() {
  static graph* instance = new graph;  // leaked: used from static destructors
  return *instance;
}

constexpr int kMaxHeldMutexes = 32;
constinit thread_local tracked_mutex* tls_held[kMaxHeldMutexes] SRCU_TLS_MODEL = {};
constinit thread_local int tls_held_count SRCU_TLS_MODEL = 0;

// Signal-safe sections noted by debug code; a handler may interrupt an
// update, so each entry is claimed and released with atomic operations.
struct signal_safe_entry {
  std::atomic<const domain*> d{nullptr};
  std::atomic<std::uint32_t> depth{0};
};
constexpr int kMaxSignalSafe = 8;
constinit thread_local signal_safe_entry tls_signal_safe[kMaxSignalSafe] SRCU_TLS_MODEL = {};

// Something the calling thread holds.
struct held_node {
  std::uintptr_t key;
  std::string name;   // for the graph
  std::string as;     // "inside a read_lock() section of 'A'"
};

std::string quoted(const char* s) { return std::string("'") + s + "'"; }

// Everything the calling thread holds. Its reader slots are read under the
// registry mutex (visit_readers_of_this_thread): another thread may be
// destroying a domain this thread once read, and with it the slot.
std::vector<held_node> held_by_this_thread() {
  std::vector<held_node> held;
  visit_readers_of_this_thread(
      [](const domain_state* d, void* ctx) {
        static_cast<std::vector<held_node>*>(ctx)->push_back(
            held_node{key(d->self, kReaders), quoted(d->name),
                      "inside a read_lock() section of " + quoted(d->name)});
      },
      &held);
  for (const signal_safe_entry& e : tls_signal_safe) {
    const domain* d = e.d.load(std::memory_order_relaxed);
    if (d == nullptr || e.depth.load(std::memory_order_relaxed) == 0) continue;
    held.push_back(held_node{key(d, kReaders), quoted(d->name()),
                             "inside a read_lock_signal_safe() section of " + quoted(d->name())});
  }
  for (int i = 0; i < tls_held_count; ++i) {
    held.push_back(held_node{key(tls_held[i], kMutex), "tracked_mutex " + quoted(tls_held[i]->name()),
                             "with tracked_mutex " + quoted(tls_held[i]->name()) + " held"});
  }
  if (const domain_state* running = tls_running_callbacks) {
    held.push_back(held_node{key(running->self, kCallbacks), "the callbacks of " + quoted(running->name),
                             "inside a callback (or executor submit()) of " + quoted(running->name)});
  }
  return held;
}

void write_edge(graph& gr, std::uintptr_t a, std::uintptr_t b, const std::string& op)
    SRCU_REQUIRES(gr.mutex) {
  message m;
  m << "srcu: deadlock:   " << gr.names[a].c_str() << " -> " << gr.names[b].c_str() << ": " << op.c_str();
  m.write_to_stderr();
}

// Detector mutex held. Writes the cycle closed by from -> to and aborts.
[[noreturn]] void report_cycle(graph& gr, std::uintptr_t from, std::uintptr_t to,
                               const std::string& how,
                               const std::unordered_map<std::uintptr_t, std::pair<std::uintptr_t, const edge*>>& via)
    SRCU_REQUIRES(gr.mutex) {
  std::vector<std::pair<std::uintptr_t, const edge*>> path;  // to -> ... -> from, reversed
  for (std::uintptr_t n = from; n != to;) {
    const auto& step = via.at(n);
    path.push_back(step);
    n = step.first;
  }
  std::reverse(path.begin(), path.end());
  message head;
  head << "srcu: possible deadlock: a cycle of waits between domains and mutexes "
          "(each line: a thread holding the first waited for the second):";
  head.write_to_stderr();
  write_edge(gr, from, to, how + " (this thread, now)");
  for (const auto& [prev, e] : path) write_edge(gr, prev, e->to, e->how);
  message tail;
  tail << "srcu: deadlock: aborting (debug build: the deadlock detector, srcu/tracked_mutex.h)";
  die(tail);
}

void add_edge(const held_node& from, std::uintptr_t to, const std::string& to_name,
              const std::string& how) {
  if (from.key == to) return;
  graph& gr = g();
  mutex_lock lk(gr.mutex);
  std::vector<edge>& edges = gr.out[from.key];
  for (const edge& e : edges) {
    if (e.to == to) return;  // known
  }
  gr.names[from.key] = from.name;
  gr.names[to] = to_name;
  // Is `from` reachable from `to`? Then from -> to closes a cycle.
  std::unordered_map<std::uintptr_t, std::pair<std::uintptr_t, const edge*>> via;
  std::vector<std::uintptr_t> stack{to};
  std::unordered_set<std::uintptr_t> seen{to};
  while (!stack.empty()) {
    const std::uintptr_t n = stack.back();
    stack.pop_back();
    const auto it = gr.out.find(n);
    if (it == gr.out.end()) continue;
    for (const edge& e : it->second) {
      if (!seen.insert(e.to).second) continue;
      via[e.to] = {n, &e};
      if (e.to == from.key) report_cycle(gr, from.key, to, how, via);
      stack.push_back(e.to);
    }
  }
  edges.push_back(edge{to, how});
  gr.empty.store(false, std::memory_order_relaxed);
}

void forget(std::initializer_list<std::uintptr_t> keys) {
  graph& gr = g();
  if (gr.empty.load(std::memory_order_relaxed)) return;
  mutex_lock lk(gr.mutex);
  for (std::uintptr_t k : keys) {
    gr.out.erase(k);
    gr.names.erase(k);
  }
  for (auto& [node, edges] : gr.out) {
    std::erase_if(edges, [&](const edge& e) {
      return std::find(keys.begin(), keys.end(), e.to) != keys.end();
    });
  }
}

}  // namespace

void lockdep_wait(const domain* target, const char* name, const char* op, bool callbacks) noexcept {
  const std::vector<held_node> held = held_by_this_thread();
  if (held.empty()) return;
  const std::string target_name = quoted(name);
  for (const held_node& h : held) {
    // Own readers and own callbacks are checked where the wait is (always on).
    const std::string how = std::string(op) + " on " + target_name + " " + h.as;
    add_edge(h, key(target, kReaders), target_name, how);
    if (callbacks) add_edge(h, key(target, kCallbacks), "the callbacks of " + target_name, how);
  }
}

void lockdep_lock(tracked_mutex* m) noexcept {
  for (int i = 0; i < tls_held_count; ++i) {
    if (tls_held[i] == m) {
      message msg;
      msg << "srcu: deadlock: tracked_mutex '" << m->name()
          << "' locked again by the thread that holds it";
      die(msg);
    }
  }
  const std::vector<held_node> held = held_by_this_thread();
  if (!held.empty()) {
    const std::string name = "tracked_mutex " + quoted(m->name());
    for (const held_node& h : held) add_edge(h, key(m, kMutex), name, name + " locked " + h.as);
  }
  lockdep_acquired(m);
}

void lockdep_acquired(tracked_mutex* m) noexcept {
  if (tls_held_count < kMaxHeldMutexes) tls_held[tls_held_count++] = m;  // deeper: not tracked
}

void lockdep_unlock(tracked_mutex* m) noexcept {
  for (int i = tls_held_count - 1; i >= 0; --i) {
    if (tls_held[i] != m) continue;
    for (int j = i; j + 1 < tls_held_count; ++j) tls_held[j] = tls_held[j + 1];
    --tls_held_count;
    return;
  }
}

void lockdep_forget_domain(const domain* d) noexcept { forget({key(d, kReaders), key(d, kCallbacks)}); }

void lockdep_forget_mutex(const tracked_mutex* m) noexcept { forget({key(m, kMutex)}); }

// Locked in one fork handler, released in another: not analysed (fork.cc).
void lockdep_prepare_fork() noexcept SRCU_NO_LOCK_ANALYSIS { g().mutex.lock(); }
void lockdep_parent_after_fork() noexcept SRCU_NO_LOCK_ANALYSIS { g().mutex.unlock(); }
// In the child, a signal-safe section the forking thread was in counts as
// ended (domain.h, "Limitations"): forget its notes too.
void lockdep_child_after_fork() noexcept SRCU_NO_LOCK_ANALYSIS {
  for (signal_safe_entry& e : tls_signal_safe) {
    e.depth.store(0, std::memory_order_relaxed);
    e.d.store(nullptr, std::memory_order_relaxed);
  }
  g().mutex.unlock();
}

}  // namespace srcu::detail

#endif  // SRCU_DEBUG

namespace srcu::detail {

#if SRCU_DEBUG
void debug_signal_safe_enter(const domain* d) noexcept {
  for (signal_safe_entry& e : tls_signal_safe) {
    if (e.d.load(std::memory_order_relaxed) == d) {
      e.depth.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  for (signal_safe_entry& e : tls_signal_safe) {
    const domain* expected = nullptr;
    if (e.d.compare_exchange_strong(expected, d, std::memory_order_relaxed)) {
      e.depth.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  // More than kMaxSignalSafe domains at once on one thread: not tracked.
}

void debug_signal_safe_exit(const domain* d) noexcept {
  for (signal_safe_entry& e : tls_signal_safe) {
    if (e.d.load(std::memory_order_relaxed) != d) continue;
    if (e.depth.fetch_sub(1, std::memory_order_relaxed) == 1) {
      const domain* expected = d;
      e.d.compare_exchange_strong(expected, nullptr, std::memory_order_relaxed);
    }
    return;
  }
  // Ended on another thread than it began (not what this flavour is for:
  // use down_read()), or beyond kMaxSignalSafe: not tracked.
}

bool thread_in_signal_safe_reader(const domain* d) noexcept {
  for (const signal_safe_entry& e : tls_signal_safe) {
    if (e.d.load(std::memory_order_relaxed) == d && e.depth.load(std::memory_order_relaxed) != 0) {
      return true;
    }
  }
  return false;
}
#else
// Release library: debug code of a consumer may still note its sections;
// nothing is kept (the check is a debug-build feature of the library).
void debug_signal_safe_enter(const domain*) noexcept {}
void debug_signal_safe_exit(const domain*) noexcept {}
bool thread_in_signal_safe_reader(const domain*) noexcept { return false; }
#endif

}  // namespace srcu::detail

namespace srcu {

tracked_mutex::~tracked_mutex() { detail::lockdep_forget_mutex(this); }

void tracked_mutex::lock() {
  detail::lockdep_lock(this);
  mutex_.lock();
}

bool tracked_mutex::try_lock() {
  if (!mutex_.try_lock()) return false;
  detail::lockdep_acquired(this);
  return true;
}

void tracked_mutex::unlock() {
  detail::lockdep_unlock(this);
  mutex_.unlock();
}

bool deadlock_detection_enabled() noexcept { return detail::kLockdep; }

}  // namespace srcu
