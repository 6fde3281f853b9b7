// Messages for misuse and stalls, built on the stack and written with
// write(2): no allocation, no lock, usable anywhere (Abseil's RAW_CHECK idea).
#pragma once

#include <cstddef>
#include <cstdint>

namespace srcu::detail {

// Fixed-capacity message; silently truncates.
class message {
 public:
  message& operator<<(const char* s) noexcept;
  message& operator<<(std::uint64_t v) noexcept;
  message& operator<<(std::int64_t v) noexcept;
  message& operator<<(int v) noexcept { return *this << static_cast<std::int64_t>(v); }
  message& operator<<(unsigned v) noexcept { return *this << static_cast<std::uint64_t>(v); }
  void write_to_stderr() const noexcept;  // appends a newline
  const char* c_str() const noexcept { return buf_; }

 private:
  char buf_[512] = {};
  std::size_t len_ = 0;
};

// "srcu: domain 'NAME': WHAT" on stderr, then abort().
[[noreturn]] void die(const char* domain_name, const char* what) noexcept;
[[noreturn]] void die(const message& m) noexcept;

}  // namespace srcu::detail
