/// @file rcu.h
/// @brief The C++26 \<rcu\> shaped layer (P2545), on srcu domains.
///
/// @code
///   struct widget : srcu::rcu_obj_base<widget> { int value; };
///   std::atomic<widget*> current{new widget};
///
///   { std::scoped_lock lk(srcu::rcu_default_domain());   // reader
///     use(current.load()->value); }
///
///   current.exchange(new widget)->retire();               // updater: no allocation
///   srcu::rcu_retire(new int(1));                         // any object, allocates
///   srcu::rcu_barrier();                                  // every retired object reclaimed
/// @endcode
///
/// rcu_default_domain() is one process-wide domain (name "rcu_default"),
/// created on first use and never destroyed (so retire() from static
/// destructors is safe). Unlike std::rcu_domain, srcu::domain also offers
/// separate domains, sleepable readers and polling; see srcu/domain.h.
#pragma once

#include <memory>
#include <utility>

#include "srcu/domain.h"

namespace srcu {

/// The process-wide default domain. Thread-safe; never destroyed.
domain& rcu_default_domain() noexcept;

/// std::rcu_synchronize, with what folly users expect of it: returns after a
/// grace period of `d` (every reader that began before the call has ended)
/// AND after every callback and deleter queued on `d` before the call has
/// run (rcu_retire(), rcu_obj_base::retire(), domain::call()). The draft
/// standard asks only for the first; folly gives both (it runs deleters
/// inline). Contexts:
///  - any thread outside `d`'s own callbacks: waits (synchronize(), then
///    barrier()); the deleters run on srcu's workers or d's executor.
///  - inside one of `d`'s own callbacks (run by a worker or an executor
///    calling callback_batch::run()): they cannot run after this callback
///    (it would wait for itself), so they run here, inline, on this thread,
///    in their queueing order: first the rest of the current batch, then
///    those that became ready, until every one queued before the call has
///    run. A deleter that calls rcu_synchronize(d) again nests.
///  - inside d's executor's submit() (not in a callback): waits for readers
///    only; the deleters run after submit() hands the batch on.
///  - inside a reader of `d`: deadlock, checked (message, abort).
///
/// Blocking: yes. Allocates: no.
void rcu_synchronize(domain& d = rcu_default_domain()) noexcept;

/// Waits until every callback queued on `d` before the call has run (std::rcu_barrier).
inline void rcu_barrier(domain& d = rcu_default_domain()) noexcept { d.barrier(); }

/// d(p) after a grace period of `dom` (std::rcu_retire). Allocates a node.
template <class T, class D = std::default_delete<T>>
void rcu_retire(T* p, D d = D(), domain& dom = rcu_default_domain()) {
  dom.retire(p, std::move(d));
}

/// Intrusive base (std::rcu_obj_base): T derives from rcu_obj_base<T, D>, and
/// retire() queues the object itself, without allocating. Trivially copyable
/// when D is ([saferecl.rcu.base]): a copy copies the node's bytes, and
/// retire() clears them before queueing, so a copy of a retired object (a
/// reader may take one) is retired like any other. But while an object is
/// retired, srcu's threads write its node (the queue link), so copying the
/// whole object then reads bytes they may be writing: harmless for the copy
/// (retire() clears them) yet a data race that ThreadSanitizer reports; a
/// reader that needs a copy of a possibly retired object should copy its
/// fields. Retiring the same object twice before its deleter ran is
/// undefined (as in the standard); srcu cannot tell it from such a copy.
template <class T, class D = std::default_delete<T>>
class rcu_obj_base : private callback_head {
 public:
  /// d(static_cast<T*>(this)) after a grace period of `dom`. Preconditions:
  /// *this was not retired already. Allocates: no. Async-signal-safe: only if
  /// moving D is.
  void retire(D d = D(), domain& dom = rcu_default_domain()) noexcept {
    deleter_ = std::move(d);
    callback_head* const head = this;
    head->next = nullptr;
    head->func = nullptr;  // copied bytes are not "queued"
    dom.call(head, &invoke);
  }

 protected:
  /// Constructed only as the base of a T.
  rcu_obj_base() = default;
  /// Protected and non-virtual: the deleter is given a T*, never an rcu_obj_base*.
  ~rcu_obj_base() = default;

 private:
  static void invoke(callback_head* head) {
    auto* self = static_cast<rcu_obj_base*>(head);
    D d = std::move(self->deleter_);
    d(static_cast<T*>(self));
  }
  [[no_unique_address]] D deleter_{};
};

}  // namespace srcu
