/// @file rcu_ptr.h
/// @brief srcu::rcu_ptr — the current object of one domain, published and reclaimed.
///
/// @code
///   srcu::rcu_ptr<config> current(new config);            // rcu_default_domain()
///   { std::scoped_lock r(srcu::rcu_default_domain());     // reader
///     use(*current.load()); }
///   current.update([](config& c) { c.port = 8080; });     // copy, modify, publish, retire
/// @endcode
///
/// Readers call load() inside a read-side critical section of domain(); the
/// object stays valid until the section ends. Writers (store, exchange,
/// update) are serialised by a mutex inside, so an update() never loses a
/// concurrent store(). Old objects are reclaimed with D after a grace period
/// (domain::retire), never while a reader may hold them.
///
/// Lifetime: the domain must outlive the rcu_ptr; the destructor retires the
/// current object (readers may still hold it). Non-copyable, non-movable.
/// Deadlock: f in update() runs with the writer mutex held; it must not call
/// store(), exchange() or update() on the same rcu_ptr.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

#include "srcu/domain.h"
#include "srcu/rcu.h"

namespace srcu {

/// The current object of one domain, published and reclaimed (see rcu_ptr.h).
template <class T, class D = std::default_delete<T>>
class rcu_ptr {
 public:
  /// Publishes `initial` (may be null) on `dom`; old objects are reclaimed
  /// with `deleter`. Allocates: no.
  explicit rcu_ptr(T* initial = nullptr, domain& dom = rcu_default_domain(), D deleter = D()) noexcept
      : domain_(dom), deleter_(std::move(deleter)), current_(initial) {}
  /// Retires the current object, if any (domain::retire: allocates a node);
  /// readers may still hold it.
  ~rcu_ptr() {
    if (T* p = current_.load(std::memory_order_acquire)) domain_.retire(p, deleter_);
  }
  rcu_ptr(const rcu_ptr&) = delete;
  rcu_ptr& operator=(const rcu_ptr&) = delete;

  /// The current object (acquire: its initialisation happens-before). Call
  /// inside a reader of domain(). Wait-free; async-signal-safe.
  [[nodiscard]] T* load() const noexcept { return current_.load(std::memory_order_acquire); }

  /// Publishes p (release) and retires the object it replaces.
  /// Allocates: a retire node (domain::retire). Blocking: only the writer mutex.
  void store(T* p) {
    if (T* old = exchange(p)) domain_.retire(old, deleter_);
  }

  /// Publishes p and hands back the object it replaces, which readers may
  /// still hold: reclaim it after a grace period (domain().synchronize(),
  /// retire(), call()).
  [[nodiscard]] T* exchange(T* p) noexcept {
    std::lock_guard lk(writer_);
    return current_.exchange(p, std::memory_order_acq_rel);
  }

  /// Copy, modify, publish, retire: f(T&) gets a copy of the current object
  /// (a default-constructed T when there is none), made with `new`, so D
  /// must delete what `new` makes (the default does). If f throws, nothing
  /// is published. Allocates: the copy and a retire node.
  template <class F>
  void update(F f) {
    std::unique_lock lk(writer_);
    const T* cur = current_.load(std::memory_order_relaxed);
    std::unique_ptr<T> next = cur != nullptr ? std::make_unique<T>(*cur) : make_default();
    f(*next);
    T* old = current_.exchange(next.release(), std::memory_order_acq_rel);
    lk.unlock();
    if (old != nullptr) domain_.retire(old, deleter_);
  }

  /// The domain whose readers may hold the objects (the constructor's `dom`).
  [[nodiscard]] domain& get_domain() const noexcept { return domain_; }

 private:
  static std::unique_ptr<T> make_default() {
    if constexpr (std::is_default_constructible_v<T>) {
      return std::make_unique<T>();
    } else {
      static_assert(std::is_default_constructible_v<T>,
                    "rcu_ptr::update() on an empty rcu_ptr needs a default-constructible T");
      return nullptr;
    }
  }

  domain& domain_;
  [[no_unique_address]] D deleter_;
  std::mutex writer_;
  std::atomic<T*> current_;
};

}  // namespace srcu
