/// @file poll_cookie.h
/// @brief srcu::poll_cookie — a snapshot of a domain's grace-period sequence.
///
/// A cookie names "the end of a full grace period that begins after this
/// moment". It comes from domain::get_poll_cookie() or domain::start_poll(),
/// and domain::poll(cookie) is true once that grace period has ended:
///
/// @code
///   old = std::exchange(current, fresh);          // unpublish
///   srcu::poll_cookie c = dom.start_poll();       // ask for a grace period
///   ... do other work ...
///   if (dom.poll(c)) delete old; else defer(old, c);
/// @endcode
///
/// A cookie is only meaningful for the domain that produced it. A
/// default-constructed cookie is already "done". Trivially copyable and
/// equality-comparable; the value is exposed for logging only.
#pragma once

#include <cstdint>

namespace srcu {

class domain;
namespace detail {
struct c_api;
}

/// A snapshot of a domain's grace-period sequence (see poll_cookie.h).
class poll_cookie {
 public:
  /// A cookie that is already "done": poll() on it is true at once.
  constexpr poll_cookie() noexcept = default;
  /// Equal when both wait for the same grace-period sequence number.
  friend constexpr bool operator==(poll_cookie, poll_cookie) noexcept = default;

  /// The grace-period sequence number this cookie waits for (for logs).
  [[nodiscard]] constexpr std::uint64_t value() const noexcept { return seq_; }

 private:
  friend class domain;
  friend struct detail::c_api;
  explicit constexpr poll_cookie(std::uint64_t seq) noexcept : seq_(seq) {}
  std::uint64_t seq_ = 0;
};

}  // namespace srcu
