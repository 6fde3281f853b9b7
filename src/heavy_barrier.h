// The updater's side of the asymmetric fence: heavy_barrier() executes a full
// memory barrier on every running thread of the process (membarrier(2)
// MEMBARRIER_CMD_PRIVATE_EXPEDITED), so readers need only compiler barriers.
// Without membarrier (old kernel, seccomp, or SRCU_NO_MEMBARRIER=1 in the
// environment) readers fence for real (g_readers_fence) and this is a plain
// seq_cst fence.
#pragma once

#include <cstdint>

namespace srcu::detail {

// Decides the mode once per process, before the first domain exists.
// Idempotent and thread-safe.
void heavy_barrier_init() noexcept;

// SRCU_NO_RSEQ=1 (any value but "0"): no restartable sequences relied on,
// neither per-CPU counters nor straggler-free readers (the fallback's tests).
bool rseq_forced_off() noexcept;

// In a fork child: the registration is per address space; make sure it holds.
void heavy_barrier_reinit_after_fork() noexcept;

void heavy_barrier() noexcept;

// The shared barrier in two halves, for a scan that lets another thread issue
// it (the engine: first passes of a batch of domains, one heavy_barrier(),
// then their second passes). heavy_barrier_snapshot(), right after the first
// pass, names the end of the first barrier that begins after it;
// heavy_barrier_reached(snap), before the second pass, says whether that
// barrier (issued by anyone) has ended, and orders what follows after it.
// Only while heavy_barrier_shared(): the fallback's fences are not shared.
bool heavy_barrier_shared() noexcept;
std::uint32_t heavy_barrier_snapshot() noexcept;
bool heavy_barrier_reached(std::uint32_t snap) noexcept;

// Heavy barriers issued by this process so far (process_stats).
std::uint64_t heavy_barriers_issued() noexcept;

// For tests: is this thread issuing the shared barrier now, between taking
// the sequence and ending it (other scans may be waiting on it)? A plain
// thread-local load: async-signal-safe.
bool heavy_barrier_issuing_here() noexcept;

}  // namespace srcu::detail
