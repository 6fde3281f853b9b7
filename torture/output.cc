// output.cc: messages and report lines through write(2) only, so the fork
// child and a signal handler never meet a stdio lock held by a thread that
// does not exist; the run's error messages, a bounded number per kind.

#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "torture.h"

namespace srcu_torture {

char g_prefix[64] = "srcu-torture: ";  // progress and messages
char g_report_prefix[64] = "";         // report lines ("" in the parent)

void write_all(const char* s, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(STDOUT_FILENO, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::string named_counts(const char* const* names, const shared_counter* counts, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ", ";
    (s += names[i]) += ' ';
    s += std::to_string(counts[i].get());
  }
  return s;
}

static void vemit(const char* prefix, const char* fmt, va_list ap) {
  char buf[4096];
  int n = std::snprintf(buf, sizeof buf, "%s", prefix);
  const int m = std::vsnprintf(buf + n, sizeof buf - static_cast<std::size_t>(n) - 1, fmt, ap);
  n = std::min<int>(n + std::max(m, 0), static_cast<int>(sizeof buf) - 2);
  buf[n++] = '\n';
  write_all(buf, static_cast<std::size_t>(n));
}

[[gnu::format(printf, 1, 2)]] void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemit(g_prefix, fmt, ap);
  va_end(ap);
}

[[gnu::format(printf, 1, 2)]] void line(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemit(g_report_prefix, fmt, ap);
  va_end(ap);
}

// --- Errors ----------------------------------------------------------

void run::note_first_error() noexcept {
  std::int64_t expected = 0;
  first_error_ns_.compare_exchange_strong(expected, now_ns(), std::memory_order_relaxed);
}

void run::error(error_kind k, const char* fmt, ...) {
  errors_[k].add();
  note_first_error();
  const int n = messages_[k].fetch_add(1, std::memory_order_relaxed);
  if (n >= kMaxErrorMessages) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  say("ERROR (%s): %s%s", kErrorNames[k], buf,
      n + 1 == kMaxErrorMessages ? " [further messages of this kind suppressed; counted in the report]" : "");
}

void run::error_from_signal(error_kind k, const char* msg) noexcept {
  errors_[k].add();
  note_first_error();
  if (messages_[k].fetch_add(1, std::memory_order_relaxed) >= kMaxErrorMessages) return;
  write_all(g_prefix, std::strlen(g_prefix));
  static constexpr char kHead[] = "ERROR: ";
  write_all(kHead, sizeof kHead - 1);
  write_all(msg, std::strlen(msg));
  write_all("\n", 1);
}

std::uint64_t run::total_errors() const noexcept {
  std::uint64_t n = 0;
  for (const auto& e : errors_) n += e.get();
  return n;
}

}  // namespace srcu_torture
