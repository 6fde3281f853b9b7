/// @file callback.h
/// @brief srcu::callback_head, srcu::executor, srcu::callback_batch — deferred work.
///
/// domain::call(head, func) queues func(head) to run after a grace period, on
/// a library thread or on the domain's executor. The head is intrusive: embed
/// it in the object to reclaim, and recover the object in the callback:
///
/// @code
///   struct node { int key; srcu::callback_head rcu; };
///   dom.call(&n->rcu, [](srcu::callback_head* h) { delete srcu::owner_of(h, &node::rcu); });
/// @endcode
///
/// (domain::retire(p) and domain::call(lambda) do this for you, allocating.)
///
/// Where callbacks run. By default on srcu's callback workers ("srcu-cb/N"),
/// a small pool shared by every domain: a worker runs at most 1,024 callbacks
/// of a domain per turn and then serves the next ready domain (fair turns),
/// and when every worker has been busy for 2 ms while ready callbacks wait
/// (a callback sleeps, waits in barrier() for another domain, deletes a
/// domain), srcu adds a worker, up to 32. So a callback that sleeps delays
/// only its own domain's later callbacks, never another domain's callbacks
/// and never any grace period. The engine thread, which drives every
/// domain's grace periods, never runs user code.
///
/// Executors. A domain may name its own executor in domain_options; a worker
/// hands it ready batches with no library lock held, at most one batch per
/// domain outstanding, so callbacks keep their order even on a multi-threaded
/// executor.
///
/// Which waits are legal inside a callback or submit(): everything except
/// waiting for the callbacks of the domain being run (barrier() or ~domain()
/// of that domain: checked, message, abort). synchronize() of any domain,
/// barrier() and ~domain() of any other domain, call() of any domain: all
/// fine. (docs/design.md, "Callback delivery", argues why no wait cycle is
/// made by srcu.)
///
/// Limitations: callbacks queued before fork() run in the parent only; the
/// child's copies are discarded. A callback that never returns keeps a
/// worker for ever; with 32 such, other domains' callbacks wait (a message
/// on stderr says so).
#pragma once

#include <bit>
#include <cstddef>

namespace srcu {

namespace detail {
struct domain_state;
class callback_queue;
}

/// Intrusive callback node, owned by the caller until its function has been
/// invoked. srcu clears `func` just before invoking it, so a head may be
/// queued again (even from inside its own callback) once it has run.
struct callback_head {
  callback_head* next = nullptr;  ///< srcu's link while the head is queued (call() overwrites it)
  void (*func)(callback_head*) = nullptr;  ///< the queued function: non-null from call() until just before it runs
};

/// The object whose callback_head member `member` is `head` (the C API's
/// container_of(), without a macro): owner_of(h, &node::rcu). `member` must
/// name a direct callback_head member of T (not one inherited from a virtual
/// base). Itanium C++ ABI (GCC, Clang): a data member pointer holds the
/// member's offset.
template <class T>
T* owner_of(callback_head* head, callback_head T::*member) noexcept {
  static_assert(sizeof(member) == sizeof(std::ptrdiff_t), "needs the Itanium C++ ABI (GCC, Clang)");
  const auto offset = std::bit_cast<std::ptrdiff_t>(member);
  return reinterpret_cast<T*>(reinterpret_cast<char*>(head) - offset);
}
/// The same for a const head.
template <class T>
const T* owner_of(const callback_head* head, callback_head T::*member) noexcept {
  return owner_of(const_cast<callback_head*>(head), member);
}

/// A ready batch of one domain's callbacks, handed to an executor. Move-only.
/// run() invokes them in queueing order and then reports the batch complete
/// (barrier() and ~domain() wait for that). It must be called exactly once;
/// destroying a batch that was never run aborts with a message.
class callback_batch {
 public:
  /// Takes over other's callbacks; other is left empty (destroying it is fine).
  callback_batch(callback_batch&& other) noexcept;
  /// Takes over other's callbacks, leaving other empty. *this must hold no
  /// batch that has not run (checked: message, abort).
  callback_batch& operator=(callback_batch&& other) noexcept;
  callback_batch(const callback_batch&) = delete;
  callback_batch& operator=(const callback_batch&) = delete;
  /// Aborts with a message if the batch holds callbacks that never ran.
  ~callback_batch();

  /// Invokes the callbacks in queueing order, on the calling thread, then
  /// reports the batch complete. Exactly once per batch (a second call, or a
  /// call on a moved-from batch, aborts with a message).
  void run() noexcept;
  /// The number of callbacks in the batch when it was handed over.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  friend class detail::callback_queue;  // src/callbacks.cc makes batches
  callback_batch(detail::domain_state* d, callback_head* head, std::size_t size) noexcept
      : domain_(d), head_(head), size_(size) {}
  detail::domain_state* domain_ = nullptr;
  callback_head* head_ = nullptr;
  std::size_t size_ = 0;
};

/// Where a domain's ready callbacks run, when domain_options::callback_executor
/// or domain(executor&) names one: derive from it and implement submit().
class executor {
 public:
  /// Takes a ready batch and must eventually call batch.run() exactly once,
  /// on any thread. Called from one of srcu's callback workers with no srcu
  /// lock held; it may take its own locks, call domain::call() on any domain
  /// (also while holding them), and wait for other domains (barrier(),
  /// synchronize()). It must not wait for callbacks of the same domain to
  /// finish: the next batch is handed over only after this one ran (barrier()
  /// of the same domain from here is checked: message, abort).
  virtual void submit(callback_batch batch) noexcept = 0;

 protected:
  /// Protected and non-virtual: srcu never destroys an executor; its owner
  /// does, through the derived type.
  ~executor() = default;
};

}  // namespace srcu
