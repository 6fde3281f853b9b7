// The C++26 <rcu> shaped layer (P2545), on srcu domains.
//
//   struct widget : srcu::rcu_obj_base<widget> { int value; };
//   std::atomic<widget*> current{new widget};
//
//   { std::scoped_lock lk(srcu::rcu_default_domain());   // reader
//     use(current.load()->value); }
//
//   current.exchange(new widget)->retire();               // updater: no allocation
//   srcu::rcu_retire(new int(1));                         // any object, allocates
//   srcu::rcu_barrier();                                  // every retired object reclaimed
//
// rcu_default_domain() is one process-wide domain (name "rcu_default"),
// created on first use and never destroyed (so retire() from static
// destructors is safe). Unlike std::rcu_domain, srcu::domain also offers
// separate domains, sleepable readers and polling; see srcu/domain.h.
#pragma once

#include <memory>
#include <utility>

#include "srcu/domain.h"

namespace srcu {

// The process-wide default domain. Thread-safe; never destroyed.
domain& rcu_default_domain() noexcept;

// Waits for a grace period of `d` (std::rcu_synchronize).
inline void rcu_synchronize(domain& d = rcu_default_domain()) noexcept { d.synchronize(); }

// Waits until every callback queued on `d` before the call has run (std::rcu_barrier).
inline void rcu_barrier(domain& d = rcu_default_domain()) noexcept { d.barrier(); }

// d(p) after a grace period of `dom` (std::rcu_retire). Allocates a node.
template <class T, class D = std::default_delete<T>>
void rcu_retire(T* p, D d = D(), domain& dom = rcu_default_domain()) {
  dom.retire(p, std::move(d));
}

// Intrusive base (std::rcu_obj_base): T derives from rcu_obj_base<T, D>, and
// retire() queues the object itself, without allocating.
template <class T, class D = std::default_delete<T>>
class rcu_obj_base : private callback_head {
 public:
  // d(static_cast<T*>(this)) after a grace period of `dom`. Preconditions:
  // *this was not retired already. Allocates: no. Async-signal-safe: only if
  // moving D is.
  void retire(D d = D(), domain& dom = rcu_default_domain()) noexcept {
    deleter_ = std::move(d);
    dom.call(static_cast<callback_head*>(this), &invoke);
  }

 protected:
  rcu_obj_base() = default;
  rcu_obj_base(const rcu_obj_base&) noexcept : callback_head() {}  // a copy is not queued
  rcu_obj_base(rcu_obj_base&&) noexcept : callback_head() {}
  rcu_obj_base& operator=(const rcu_obj_base&) noexcept { return *this; }
  rcu_obj_base& operator=(rcu_obj_base&&) noexcept { return *this; }
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
