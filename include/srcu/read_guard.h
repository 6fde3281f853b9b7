/// @file read_guard.h
/// @brief RAII read-side critical sections, one guard per reader flavour.
///
/// @code
///   {
///     srcu::read_guard g(dom);
///     auto* p = shared.load(std::memory_order_acquire);
///     use(*p);                       // may block; p stays valid until g ends
///   }
/// @endcode
///
/// @code{.unparsed}
/// read_guard                read_lock()/read_unlock(): the default; ends on
///                           the thread that began it. Non-movable.
/// signal_safe_read_guard    read_lock_signal_safe(): inside a signal handler
///                           or on a thread that never used the domain.
///                           Non-movable (it ends where it began).
/// down_read_guard           down_read()/up_read(): movable, so the section
///                           may end on another thread (move the guard along
///                           with the work; it ends where it is destroyed).
/// @endcode
/// Cost: that of the calls they wrap.
#pragma once

#include <utility>

#include "srcu/domain.h"

namespace srcu {

/// A read_lock() section for a scope: the default guard. It ends on the
/// thread that began it. Non-movable.
class read_guard {
 public:
  /// Begins the section: d.read_lock().
  SRCU_ALWAYS_INLINE explicit read_guard(domain& d) noexcept : domain_(d), token_(d.read_lock()) {}
  /// Ends it: read_unlock() with the token read_lock() returned.
  SRCU_ALWAYS_INLINE ~read_guard() { domain_.read_unlock(token_); }
  read_guard(const read_guard&) = delete;
  read_guard& operator=(const read_guard&) = delete;

 private:
  domain& domain_;
  read_token token_;
};

/// A read_lock_signal_safe() section for a scope: inside a signal handler or
/// on a thread that never used the domain. Non-movable.
/// Async-signal-safe: yes (construction and destruction).
class signal_safe_read_guard {
 public:
  /// Begins the section: d.read_lock_signal_safe().
  SRCU_ALWAYS_INLINE explicit signal_safe_read_guard(domain& d) noexcept
      : domain_(d), token_(d.read_lock_signal_safe()) {}
  /// Ends it: read_unlock_signal_safe() with its token.
  SRCU_ALWAYS_INLINE ~signal_safe_read_guard() { domain_.read_unlock_signal_safe(token_); }
  signal_safe_read_guard(const signal_safe_read_guard&) = delete;
  signal_safe_read_guard& operator=(const signal_safe_read_guard&) = delete;

 private:
  domain& domain_;
  read_token token_;
};

/// Owns at most one down_read() section. Moving hands the section over (the
/// source owns none afterwards); the owner's destructor, unlock() or
/// release() ends or hands it out, on whichever thread that runs.
/// Async-signal-safe: yes.
class down_read_guard {
 public:
  /// Owns no section.
  down_read_guard() noexcept = default;
  /// Begins a section: d.down_read().
  explicit down_read_guard(domain& d) noexcept : domain_(&d), token_(d.down_read()) {}
  /// Adopts a section begun with d.down_read() (token from there).
  down_read_guard(domain& d, read_token token) noexcept : domain_(&d), token_(token) {}
  /// Takes over other's section, if any; other owns none afterwards.
  down_read_guard(down_read_guard&& other) noexcept
      : domain_(std::exchange(other.domain_, nullptr)), token_(other.token_) {}
  /// Ends this guard's own section, if any (up_read()), then takes over
  /// other's; other owns none afterwards.
  down_read_guard& operator=(down_read_guard&& other) noexcept {
    if (this != &other) {
      unlock();
      domain_ = std::exchange(other.domain_, nullptr);
      token_ = other.token_;
    }
    return *this;
  }
  /// Ends the section (up_read()), if this guard owns one.
  ~down_read_guard() { unlock(); }

  /// Ends the section now (up_read()), if this guard owns one.
  void unlock() noexcept {
    if (domain_ != nullptr) std::exchange(domain_, nullptr)->up_read(token_);
  }
  /// Hands the section out without ending it: the caller must up_read() it.
  [[nodiscard]] read_token release() noexcept {
    domain_ = nullptr;
    return token_;
  }
  /// True while this guard owns a section.
  [[nodiscard]] bool owns_section() const noexcept { return domain_ != nullptr; }
  /// owns_section().
  explicit operator bool() const noexcept { return owns_section(); }

 private:
  domain* domain_ = nullptr;
  read_token token_{};
};

}  // namespace srcu
