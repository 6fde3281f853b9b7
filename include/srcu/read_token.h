/// @file read_token.h
/// @brief srcu::read_token — what a read_lock-style call returns and its unlock takes.
///
/// Trivially copyable and opaque. It records which counter the reader
/// incremented (the domain's index at lock time, and the per-thread slot or
/// shared shard), so the unlock increments the matching counter. Pass it back
/// to the unlock of the same flavour on the same domain:
///   read_lock -> read_unlock (same thread), read_lock_signal_safe ->
///   read_unlock_signal_safe, down_read -> up_read (any thread).
/// Debug builds check domain, flavour and balance and abort with a message.
#pragma once

#include <cstdint>

namespace srcu {

class domain;
namespace detail {
struct c_api;
}

/// What a read_lock-style call returns and its unlock takes (see read_token.h).
class read_token {
 public:
  /// An empty token that belongs to no section (a placeholder to assign to).
  constexpr read_token() noexcept = default;
  /// Equal when they are the same token (same counter block, flavour and index).
  friend constexpr bool operator==(read_token, read_token) noexcept = default;

 private:
  friend class domain;
  friend struct detail::c_api;
  explicit constexpr read_token(std::uintptr_t raw) noexcept : raw_(raw) {}
  // Counter block address | flavour << 1 | index bit. Blocks are 64-aligned.
  std::uintptr_t raw_ = 0;
};

}  // namespace srcu
