// Per-CPU counter increments without a lock prefix, inside a restartable
// sequence (rseq(2), registered by glibc 2.35+ for every thread it starts):
// the user-space form of the kernel's this_cpu_inc() that SRCU-fast readers
// use. The sequence reads the CPU number and adds 1 to that CPU's counter
// with one plain `add` to memory, the commit; if the thread is preempted,
// migrated or interrupted by a signal before the commit, the kernel moves it
// to the abort handler, which starts over. So the add always lands on the
// counter of the CPU the thread runs on, and no other thread runs on that
// CPU meanwhile: no RMW can be lost without a lock prefix, as long as every
// increment of these counters goes through this sequence (each domain
// decides once, at construction: domain::percpu_, src/domain.cc).
//
// A signal handler that uses it interrupts an outer sequence: the outer one
// is aborted at delivery and starts over afterwards (async-signal-safe).
//
// x86-64 only for now, and never under TSan (which cannot see the asm);
// elsewhere srcu uses lock-prefixed RMWs on a shard chosen by shard_hint().
#pragma once

#include <cstddef>
#include <cstdint>

#include "srcu/detail/config.h"

#if defined(__x86_64__) && defined(__linux__) && !SRCU_TSAN && __has_include(<sys/rseq.h>) && \
    (defined(__GNUC__) || defined(__clang__))
#include <sys/rseq.h>
#define SRCU_HAVE_PERCPU 1
#else
#define SRCU_HAVE_PERCPU 0
#endif

namespace srcu::detail {

#if SRCU_HAVE_PERCPU
// Adds 1 to the 64-bit counter at `first + cpu * 64` for the CPU the calling
// thread runs on, and returns that CPU. `first` points at the counter in
// the block of CPU 0; blocks are 64 bytes apart, one per possible CPU.
SRCU_ALWAYS_INLINE std::uint32_t percpu_add_one(void* first) noexcept {
  std::uint64_t cpu;
  // struct rseq: cpu_id at offset 4, rseq_cs at offset 8. The descriptor
  // (struct rseq_cs: version, flags, start_ip, post_commit_offset,
  // abort_ip) goes to section __rseq_cs; the abort handler, preceded by
  // RSEQ_SIG as the kernel requires (in a ud1 instruction), to
  // __rseq_failure.
  asm volatile(
      ".pushsection __rseq_cs, \"aw?\"\n\t"
      ".balign 32\n\t"
      ".Lsrcu_rseq_cs%=:\n\t"
      ".long 0, 0\n\t"
      ".quad .Lsrcu_rseq_start%=, .Lsrcu_rseq_commit%= - .Lsrcu_rseq_start%=, .Lsrcu_rseq_abort%=\n\t"
      ".popsection\n\t"
      ".Lsrcu_rseq_retry%=:\n\t"
      "leaq .Lsrcu_rseq_cs%=(%%rip), %[cpu]\n\t"
      "movq %[cpu], %%fs:8(%[rs])\n\t"
      ".Lsrcu_rseq_start%=:\n\t"
      "movl %%fs:4(%[rs]), %k[cpu]\n\t"
      "movq %[cpu], %%rcx\n\t"
      "shlq $6, %%rcx\n\t"
      "addq $1, (%[first], %%rcx)\n\t"
      ".Lsrcu_rseq_commit%=:\n\t"
      ".pushsection __rseq_failure, \"ax?\"\n\t"
      ".byte 0x0f, 0xb9, 0x3d\n\t"
      ".long 0x53053053\n\t"
      ".Lsrcu_rseq_abort%=:\n\t"
      "jmp .Lsrcu_rseq_retry%=\n\t"
      ".popsection\n\t"
      : [cpu] "=&r"(cpu)
      : [rs] "r"(__rseq_offset), [first] "r"(first)
      : "rcx", "memory", "cc");
  return static_cast<std::uint32_t>(cpu);
}
#endif

// The same, out of line in the library (src/domain.cc). A domain's percpu_
// is decided by the library; code compiled without SRCU_HAVE_PERCPU (under
// TSan, say) against a library built with it must still use the sequence on
// such a domain: a lock-prefixed add from one CPU and a plain add from
// another on one counter could lose an increment.
std::uint32_t percpu_add_one_outlined(void* first) noexcept;

SRCU_ALWAYS_INLINE std::uint32_t percpu_add(void* first) noexcept {
#if SRCU_HAVE_PERCPU
  return percpu_add_one(first);
#else
  return percpu_add_one_outlined(first);
#endif
}

}  // namespace srcu::detail
