#include "diagnostics.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace srcu::detail {

message& message::operator<<(const char* s) noexcept {
  if (s == nullptr) s = "(null)";
  while (*s != '\0' && len_ + 1 < sizeof(buf_)) buf_[len_++] = *s++;
  return *this;
}

message& message::operator<<(std::uint64_t v) noexcept {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0 && len_ + 1 < sizeof(buf_)) buf_[len_++] = digits[--n];
  return *this;
}

message& message::operator<<(std::int64_t v) noexcept {
  if (v < 0) {
    *this << "-";
    return *this << (~static_cast<std::uint64_t>(v) + 1);
  }
  return *this << static_cast<std::uint64_t>(v);
}

void message::write_to_stderr() const noexcept {
  char out[sizeof(buf_) + 1];
  std::memcpy(out, buf_, len_);
  out[len_] = '\n';
  std::size_t done = 0;
  while (done < len_ + 1) {
    const ssize_t n = ::write(STDERR_FILENO, out + done, len_ + 1 - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}

void die(const message& m) noexcept {
  m.write_to_stderr();
  std::abort();
}

void die(const char* domain_name, const char* what) noexcept {
  message m;
  m << "srcu: domain '" << domain_name << "': " << what;
  die(m);
}

// mutex::assert_held() (mutex.h), debug builds: a lock rule of srcu's own
// code is broken.
void die_lock_not_held(const void* m) noexcept {
  message msg;
  msg << "srcu: internal error: the mutex at address " << static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(m))
      << " is not held by this thread where srcu's lock rules require it";
  die(msg);
}

}  // namespace srcu::detail
