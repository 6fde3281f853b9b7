// USDT probes (provider "srcu"), for bpftrace, perf probe and SystemTap:
//
//   srcu:gp_start        (const char* domain, uint64 grace_period)   a grace period began
//   srcu:gp_end          (const char* domain, uint64 grace_period, uint64 duration_ns)
//   srcu:stall           (const char* domain, uint64 grace_period, uint64 stalled_ms, uint64 readers)
//   srcu:call            (const char* domain, uint64 grace_period)   call()/retire() queued one
//   srcu:callback_invoke (const char* domain, uint64 grace_period)   a callback is about to run
//
// grace_period is the number the grace period has (or, for call and
// callback_invoke, the number of grace periods completed so far). Each probe
// has a semaphore (_SDT_HAS_SEMAPHORES): with nobody attached a probe site is
// one load of its semaphore and a not-taken branch, and its arguments are
// not computed. docs/tracing.md shows a one-liner for each. Compiled out
// (no notes, no code) where <sys/sdt.h> is missing (Debian:
// systemtap-sdt-dev, which scripts/deps.sh installs) or with SRCU_NO_USDT.
#pragma once

#include "srcu/detail/config.h"

#if !defined(SRCU_NO_USDT) && __has_include(<sys/sdt.h>)
#define SRCU_HAVE_USDT 1
#define _SDT_HAS_SEMAPHORES 1
#define SDT_USE_VARIADIC 1
#include <sys/sdt.h>

// Written by the tracer when it attaches (defined in trace.cc, in the
// .probes section, as the SDT convention requires).
extern "C" {
extern volatile unsigned short srcu_gp_start_semaphore;
extern volatile unsigned short srcu_gp_end_semaphore;
extern volatile unsigned short srcu_stall_semaphore;
extern volatile unsigned short srcu_call_semaphore;
extern volatile unsigned short srcu_callback_invoke_semaphore;
}

// SRCU_TRACING(name): a tracer is attached to srcu:name.
// SRCU_TRACE(name, args...): fires srcu:name if one is.
#define SRCU_TRACING(name) SRCU_UNLIKELY(srcu_##name##_semaphore != 0)
#define SRCU_TRACE(name, ...)                                       \
  do {                                                              \
    if (SRCU_TRACING(name)) STAP_PROBEV(srcu, name, __VA_ARGS__);   \
  } while (0)
#else
#define SRCU_HAVE_USDT 0
#define SRCU_TRACING(name) false
#define SRCU_TRACE(name, ...) \
  do {                        \
  } while (0)
#endif
