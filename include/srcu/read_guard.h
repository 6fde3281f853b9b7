// srcu::read_guard — RAII read-side critical section (read_lock/read_unlock).
//
//   {
//     srcu::read_guard g(dom);
//     auto* p = shared.load(std::memory_order_acquire);
//     use(*p);                       // may block; p stays valid until g ends
//   }
//
// Non-copyable, non-movable; ends on the thread that began it. For a section
// that ends on another thread use domain::down_read()/up_read(); inside a
// signal handler use read_lock_signal_safe(). Cost: that of read_lock().
#pragma once

#include "srcu/domain.h"

namespace srcu {

class read_guard {
 public:
  SRCU_ALWAYS_INLINE explicit read_guard(domain& d) noexcept : domain_(d), token_(d.read_lock()) {}
  SRCU_ALWAYS_INLINE ~read_guard() { domain_.read_unlock(token_); }
  read_guard(const read_guard&) = delete;
  read_guard& operator=(const read_guard&) = delete;

 private:
  domain& domain_;
  read_token token_;
};

}  // namespace srcu
