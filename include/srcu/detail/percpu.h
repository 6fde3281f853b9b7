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
// The pieces every sequence below shares. struct rseq: cpu_id at offset 4,
// rseq_cs at offset 8. The descriptor (struct rseq_cs: version, flags,
// start_ip, post_commit_offset, abort_ip) goes to section __rseq_cs; the
// abort handler, preceded by RSEQ_SIG as the kernel requires (in a ud1
// instruction), to __rseq_failure, and jumps back to the retry label, which
// arms the sequence again. Between SRCU_RSEQ_BEGIN and SRCU_RSEQ_END: the
// body, whose last instruction is the commit.
#define SRCU_RSEQ_BEGIN(scratch)                                                                      \
  ".pushsection __rseq_cs, \"aw?\"\n\t"                                                                \
  ".balign 32\n\t"                                                                                    \
  ".Lsrcu_rseq_cs%=:\n\t"                                                                             \
  ".long 0, 0\n\t"                                                                                    \
  ".quad .Lsrcu_rseq_start%=, .Lsrcu_rseq_commit%= - .Lsrcu_rseq_start%=, .Lsrcu_rseq_abort%=\n\t"      \
  ".popsection\n\t"                                                                                   \
  ".Lsrcu_rseq_retry%=:\n\t"                                                                          \
  "leaq .Lsrcu_rseq_cs%=(%%rip), " scratch "\n\t"                                                      \
  "movq " scratch ", %%fs:8(%[rs])\n\t"                                                                \
  ".Lsrcu_rseq_start%=:\n\t"
// After the commit the sequence disarms itself (rseq_cs := 0): the
// descriptor lives in the binary that inlined the reader, and a thread whose
// rseq_cs still pointed into a library unloaded since would be killed by the
// kernel at its next preemption. A preemption between the commit and this
// store is harmless: the kernel clears rseq_cs itself outside the range.
#define SRCU_RSEQ_END                                                                                 \
  ".Lsrcu_rseq_commit%=:\n\t"                                                                         \
  "movq $0, %%fs:8(%[rs])\n\t"                                                                        \
  ".pushsection __rseq_failure, \"ax?\"\n\t"                                                           \
  ".byte 0x0f, 0xb9, 0x3d\n\t"                                                                        \
  ".long 0x53053053\n\t"                                                                              \
  ".Lsrcu_rseq_abort%=:\n\t"                                                                          \
  "jmp .Lsrcu_rseq_retry%=\n\t"                                                                       \
  ".popsection\n\t"

// Adds 1 to the 64-bit counter at `first + cpu * 64` for the CPU the calling
// thread runs on, and returns that CPU. `first` points at the counter in
// the block of CPU 0; blocks are 64 bytes apart, one per possible CPU.
SRCU_ALWAYS_INLINE std::uint32_t percpu_add_one(void* first) noexcept {
  std::uint64_t cpu;
  asm volatile(SRCU_RSEQ_BEGIN("%[cpu]")
               "movl %%fs:4(%[rs]), %k[cpu]\n\t"
               "movq %[cpu], %%rcx\n\t"
               "shlq $6, %%rcx\n\t"
               "addq $1, (%[first], %%rcx)\n\t"
               SRCU_RSEQ_END
               : [cpu] "=&r"(cpu)
               : [rs] "r"(__rseq_offset), [first] "r"(first)
               : "rcx", "memory", "cc");
  return static_cast<std::uint32_t>(cpu);
}

// A reader's lock in one restartable sequence: loads the reader index (bit
// 0 of *index) and adds 1 to counters[index] (8 bytes apart), and returns
// the index. The add is the commit: a thread preempted, migrated, signalled
// or hit by membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) between the
// load and the add starts over and loads the index again, so no reader ever
// increments an index it loaded before such a barrier (no straggler: the
// grace period needs no scan of the inactive index, docs/design.md §1.2).
// `Locked`: a lock-prefixed add, for a counter other threads add to too.
// The body, with the add instruction ("addq" or "lock addq") as the commit.
#define SRCU_RSEQ_INDEX_ADD(add)                                                              \
  asm volatile(SRCU_RSEQ_BEGIN("%[idx]") "movq (%[index]), %[idx]\n\t"                          \
               "andl $1, %k[idx]\n\t" add " $1, (%[counters], %[idx], 8)\n\t" SRCU_RSEQ_END      \
               : [idx] "=&r"(idx)                                                             \
               : [rs] "r"(__rseq_offset), [index] "r"(index), [counters] "r"(counters)        \
               : "memory", "cc")
template <bool Locked>
SRCU_ALWAYS_INLINE std::uint64_t rseq_index_add(const void* index, void* counters) noexcept {
  std::uint64_t idx;
  if constexpr (Locked) {
    SRCU_RSEQ_INDEX_ADD("lock addq");
  } else {
    SRCU_RSEQ_INDEX_ADD("addq");
  }
  return idx;
}
#undef SRCU_RSEQ_INDEX_ADD

// Both at once, for the per-CPU tables: loads the reader index and adds 1
// to counters[index] of the running CPU's block (`first` is block 0's
// counters[0]; blocks 64 bytes apart). Returns the CPU; the index in *idx.
SRCU_ALWAYS_INLINE std::uint32_t percpu_index_add(const void* index, void* first, std::uint64_t* idx) noexcept {
  std::uint64_t cpu;
  std::uint64_t i;
  asm volatile(SRCU_RSEQ_BEGIN("%[cpu]")
               "movq (%[index]), %[i]\n\t"
               "andl $1, %k[i]\n\t"
               "movl %%fs:4(%[rs]), %k[cpu]\n\t"
               "movq %[cpu], %%rcx\n\t"
               "shlq $6, %%rcx\n\t"
               "addq %[first], %%rcx\n\t"
               "addq $1, (%%rcx, %[i], 8)\n\t"
               SRCU_RSEQ_END
               : [cpu] "=&r"(cpu), [i] "=&r"(i)
               : [rs] "r"(__rseq_offset), [index] "r"(index), [first] "r"(first)
               : "rcx", "memory", "cc");
  *idx = i;
  return static_cast<std::uint32_t>(cpu);
}
#undef SRCU_RSEQ_BEGIN
#undef SRCU_RSEQ_END
#endif

// The same, out of line in the library (src/domain.cc). A domain's percpu_
// is decided by the library; code compiled without SRCU_HAVE_PERCPU (under
// TSan, say) against a library built with it must still use the sequence on
// such a domain: a lock-prefixed add from one CPU and a plain add from
// another on one counter could lose an increment.
std::uint32_t percpu_add_one_outlined(void* first) noexcept;
std::uint32_t percpu_index_add_outlined(const void* index, void* first, std::uint64_t* idx) noexcept;
// rseq_index_add<false>, for read_lock() compiled without the sequences
// against a library whose grace periods rely on them (g_rseq_readers).
std::uint64_t rseq_index_add_outlined(const void* index, void* counters) noexcept;

SRCU_ALWAYS_INLINE std::uint32_t percpu_add(void* first) noexcept {
#if SRCU_HAVE_PERCPU
  return percpu_add_one(first);
#else
  return percpu_add_one_outlined(first);
#endif
}

// A shared-flavour lock on a per-CPU table: index load and add in one
// sequence (percpu_index_add()).
SRCU_ALWAYS_INLINE std::uint32_t percpu_lock(const void* index, void* first, std::uint64_t* idx) noexcept {
#if SRCU_HAVE_PERCPU
  return percpu_index_add(index, first, idx);
#else
  return percpu_index_add_outlined(index, first, idx);
#endif
}

}  // namespace srcu::detail
