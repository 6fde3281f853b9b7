// Build-wide switches shared by the inline fast path and the compiled library.
#pragma once

#if __cplusplus < 202002L
#error "srcu's C++ headers need C++20 (-std=c++20; pkg-config: srcu-cxx); C programs use srcu/srcu_c.h"
#endif

// SRCU_TSAN: 1 when compiled under ThreadSanitizer. TSan does not understand
// membarrier(2) or signal fences, so under TSan the reader fast path uses
// orderings TSan can see (docs/design.md §4, "ThreadSanitizer").
#if defined(__SANITIZE_THREAD__)
#define SRCU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SRCU_TSAN 1
#endif
#endif
#ifndef SRCU_TSAN
#define SRCU_TSAN 0
#endif

// SRCU_DEBUG: debug checks (token validation, unlock without lock). On in
// builds without NDEBUG; the CMake option SRCU_DEBUG turns it on in release
// builds too (it is a PUBLIC definition, so consumers see the same value).
#ifndef SRCU_DEBUG
#ifdef NDEBUG
#define SRCU_DEBUG 0
#else
#define SRCU_DEBUG 1
#endif
#endif

#define SRCU_LIKELY(x) __builtin_expect(!!(x), 1)
#define SRCU_UNLIKELY(x) __builtin_expect(!!(x), 0)

// The fast path's thread-locals are reached without __tls_get_addr even when
// srcu is a shared library.
#define SRCU_TLS_MODEL __attribute__((tls_model("initial-exec")))

// The reader fast path is always inlined, also at -O0: it is a handful of
// instructions, and each translation unit then gets the SRCU_DEBUG checks it
// was compiled with (no out-of-line copy for the linker to pick from).
#define SRCU_ALWAYS_INLINE inline __attribute__((always_inline))
