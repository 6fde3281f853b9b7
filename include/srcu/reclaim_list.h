/// @file reclaim_list.h
/// @brief srcu::reclaim_list — retired objects that their owner thread
/// frees itself, once the polled grace period of each is over.
///
/// domain::call() hands a callback to srcu: the engine thread collects it
/// and a callback worker (or the domain's executor) runs it. Every retired
/// object then travels to other CPUs twice, and a freed one comes back to
/// the allocating thread through the allocator's slow path. That is the
/// price of call()'s promises (any context, any lock held, nothing to poll).
///
/// A reclaim_list is the other model, ck_epoch's (ck_epoch_call() then
/// ck_epoch_poll() on the caller's own record): one owner defers objects into
/// it and the owner runs their functions itself, when domain::poll() says a
/// grace period has passed since they were deferred. Nothing leaves the
/// owner's thread; srcu's engine only runs the grace periods the list asks
/// for with start_poll(), at most once per `grace_period_interval`.
///
///     thread_local srcu::reclaim_list garbage(dom);
///     node* old = table.exchange(key, fresh);   // under the writers' lock
///     garbage.defer(&old->rcu, [](srcu::callback_head* h) {
///       delete srcu::owner_of(h, &node::rcu);
///     });
///
/// Rules (unlike domain::call()):
///  - One owner at a time: a list is not thread-safe (as a ck_epoch record).
///  - The functions run on the owner's thread inside defer() (every
///    `batch_size`-th one), reclaim(), flush() and the destructor, so do not
///    defer() while holding a lock a function takes, and not from a signal
///    handler.
///  - Functions run in the order their objects were deferred, each once.
///  - A function may defer() onto the same list (it runs later); a nested
///    reclaim() returns 0; flush() or destruction from inside one of the
///    list's own functions aborts with a message.
///  - The destructor flushes: it waits for a grace period (synchronize())
///    and runs everything, so it must not run inside a read-side critical
///    section of the domain, and the domain must outlive the list:
///    ~domain() aborts with a message while a list on it exists (not
///    checked in a fork child, where other threads' lists never go).
///  - Nothing is freed while the owner neither defers nor reclaims: call
///    reclaim() now and then, or flush().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "srcu/callback.h"
#include "srcu/domain.h"
#include "srcu/poll_cookie.h"

namespace srcu {

/// How a reclaim_list batches and asks for grace periods.
struct reclaim_list_options {
  /// Objects per batch: each batch takes one poll cookie, and every
  /// batch_size-th defer() closes the batch and reclaims. At least 1.
  std::uint32_t batch_size = 64;
  /// Batches that may wait at once (allocated by the constructor). When all
  /// still wait after the done ones ran (a reader holds grace periods up), a
  /// closing batch joins the newest one, which then waits for the later
  /// cookie: the list never allocates and never blocks. At least 1.
  std::uint32_t max_batches = 1024;
  /// While anything waits, the list asks the domain for a grace period
  /// (start_poll()) at most this often: each grace period costs a heavy
  /// barrier, an interrupt of every CPU running one of the process's
  /// threads. 0: whenever it reclaims.
  std::chrono::microseconds grace_period_interval{1'000};
};

/// A thread's own deferred frees on one domain; see reclaim_list.h.
class reclaim_list {
 public:
  /// An empty list on `d` (allocates its ring of options.max_batches). `d`
  /// must outlive it. Aborts with a message if batch_size or max_batches is 0.
  explicit reclaim_list(domain& d, const reclaim_list_options& options = {});
  /// flush(). Not inside a read-side critical section of the domain.
  ~reclaim_list();
  reclaim_list(const reclaim_list&) = delete;
  reclaim_list& operator=(const reclaim_list&) = delete;

  /// Queue func(head) to run on this list's owner after a grace period.
  /// O(1); every batch_size-th call also reclaims (runs functions whose
  /// grace period is over). The list itself never allocates and never
  /// blocks; the functions it runs may.
  void defer(callback_head* head, void (*func)(callback_head*)) noexcept {
    if (head == nullptr || func == nullptr || head->func != nullptr) [[unlikely]] {
      bad_defer(head, func);
    }
    head->func = func;
    head->next = nullptr;
    if (open_.last != nullptr) {
      open_.last->next = head;
    } else {
      open_.first = head;
    }
    open_.last = head;
    ++open_.count;
    if (open_.count >= batch_size_) [[unlikely]] close_and_reclaim();
  }

  /// Runs the functions whose grace period is over (the deferred batch that
  /// is still open is closed first), and asks for a grace period if one is
  /// due. Never waits. Returns how many functions it ran.
  std::size_t reclaim() noexcept;

  /// Waits for a grace period and runs everything deferred, including what
  /// the functions defer meanwhile (a grace period per round: a function
  /// that always defers again keeps flush() going for ever).
  void flush();

  /// Deferred, not yet run (inside a function: not counting it).
  [[nodiscard]] std::size_t pending() const noexcept { return open_.count + waiting_objects_; }

  /// The domain whose grace periods this list waits for.
  [[nodiscard]] domain& get_domain() const noexcept { return domain_; }

 private:
  struct batch {
    callback_head* first = nullptr;
    callback_head* last = nullptr;
    std::size_t count = 0;
    poll_cookie cookie;
  };

  [[noreturn]] void bad_defer(const callback_head* head, void (*func)(callback_head*)) const noexcept;
  void close_and_reclaim() noexcept;
  void close_open() noexcept;
  std::size_t run_done() noexcept;
  std::size_t run(batch b) noexcept;
  void ask_for_grace_period() noexcept;

  domain& domain_;
  const std::uint32_t batch_size_;
  const std::uint32_t max_batches_;
  const std::uint64_t interval_ns_;
  batch open_;
  std::unique_ptr<batch[]> ring_;
  std::size_t oldest_ = 0;   // ring_ index of the oldest waiting batch
  std::size_t waiting_ = 0;  // batches in ring_
  std::size_t waiting_objects_ = 0;  // in ring_'s batches
  std::uint64_t last_ask_ns_ = 0;
  bool running_ = false;     // inside one of this list's functions
};

}  // namespace srcu
