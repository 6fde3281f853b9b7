#include "heavy_barrier.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "fault_injection.h"
#include "futex.h"
#include "srcu/detail/percpu.h"
#include "srcu/detail/reader.h"

namespace srcu::detail {

constinit std::atomic<bool> g_readers_fence{false};
constinit std::atomic<bool> g_rseq_readers{false};
// Statistics only (no ordering): one increment per heavy barrier.
constinit std::atomic<std::uint64_t> g_heavy_barriers{0};

namespace {

constinit std::atomic<bool> g_use_membarrier{false};
std::once_flag g_init_once;

// One membarrier() serves every scan that needs one at that moment, in any
// domain (it is process-wide), like the kernel's expedited grace-period
// sequence: g_barrier_seq is even while none is in flight and odd while one
// is. A scan snapshots it, and returns once a barrier that began after the
// snapshot has ended (sequence >= snap): issuing one itself when none is in
// flight, else sleeping until the one in flight ends and looking again.
constinit std::atomic<std::uint32_t> g_barrier_seq{0};
constinit std::atomic<std::uint32_t> g_barrier_sleepers{0};
// heavy_barrier_issuing_here(): set after the CAS, cleared before the end
// store (their acquire and release keep it inside); volatile, for a signal
// handler on this thread.
constinit thread_local volatile std::sig_atomic_t tls_issuing = 0;

long membarrier(int cmd) noexcept { return ::syscall(__NR_membarrier, cmd, 0, 0); }

bool fallback_forced() noexcept {
  const char* v = std::getenv("SRCU_NO_MEMBARRIER");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

bool try_register() noexcept {
  const long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

// The restartable-sequence barrier (MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
// Linux 5.10+): the same interrupt as PRIVATE_EXPEDITED, and each
// interrupted thread's restartable sequence in progress starts over. Usable
// when this build has the readers' sequences (x86-64, glibc's rseq, not
// TSan) and glibc registered rseq for its threads.
bool try_register_rseq() noexcept {
#if SRCU_HAVE_PERCPU
  if (__rseq_size == 0 || rseq_forced_off()) return false;
  const long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ) == 0;
#else
  return false;
#endif
}

}  // namespace

bool rseq_forced_off() noexcept {
  const char* v = std::getenv("SRCU_NO_RSEQ");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

void heavy_barrier_init() noexcept {
  std::call_once(g_init_once, [] {
    const bool use = !fallback_forced() && try_register();
    g_use_membarrier.store(use, std::memory_order_relaxed);
    // Published to readers by the domain constructor's release (registry
    // mutex) and by the user's own publication of the domain.
    g_readers_fence.store(!use, std::memory_order_relaxed);
    g_rseq_readers.store(use && try_register_rseq(), std::memory_order_relaxed);
  });
}

void heavy_barrier_reinit_after_fork() noexcept {
  // A barrier another thread had in flight at fork() never ends in the
  // child: end it on the books (this thread is the child's only one).
  const std::uint32_t seq = g_barrier_seq.load(std::memory_order_relaxed);
  if ((seq & 1) != 0) g_barrier_seq.store(seq + 1, std::memory_order_relaxed);
  g_barrier_sleepers.store(0, std::memory_order_relaxed);
  // Both registrations survive fork() (they are the process's, reset only
  // by exec); registering again only confirms it. No getenv() here: a
  // setenv() in flight on a vanished thread may have left the environment
  // half-written, and the parent's decision stands.
  if ((g_use_membarrier.load(std::memory_order_relaxed) &&
       membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) ||
      (g_rseq_readers.load(std::memory_order_relaxed) &&
       membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ) != 0)) {
    // Cannot happen on Linux (registration is inherited); if it did, readers
    // in the child would be unprotected: stop rather than corrupt.
    static const char kMsg[] = "srcu: membarrier registration failed in fork child\n";
    (void)!::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    std::abort();
  }
}

namespace {

// How long a scan waits for another thread's barrier before issuing its own.
// membarrier() takes microseconds; an issuer gone this long is not running.
constexpr std::chrono::nanoseconds kIssuerPatience = std::chrono::milliseconds(1);

bool seq_reached(std::uint32_t seq, std::uint32_t snap) noexcept {
  return static_cast<std::int32_t>(seq - snap) >= 0;
}

// The barrier a scan shares. Under TSan, which cannot see membarrier()'s
// interrupts, readers fence for real (B and C) and this is a seq_cst fence:
// the sharing protocol around it still runs, so TSan checks it.
void issue_barrier() noexcept {
#if SRCU_TSAN
  std::atomic_thread_fence(std::memory_order_seq_cst);
#else
  // With the readers' restartable sequences (g_rseq_readers) the barrier
  // also restarts every sequence in progress: no reader increments an index
  // it loaded before this barrier began (docs/design.md §1.2, §3).
  const int cmd = g_rseq_readers.load(std::memory_order_relaxed) ? MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ
                                                                 : MEMBARRIER_CMD_PRIVATE_EXPEDITED;
  if (membarrier(cmd) == 0) return;
  static const char kMsg[] = "srcu: membarrier(PRIVATE_EXPEDITED[_RSEQ]) failed after registration\n";
  (void)!::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  std::abort();
#endif
}

void shared_barrier() noexcept {
  const std::uint32_t snap = heavy_barrier_snapshot();
  std::uint64_t waiting_since_ns = 0;  // set when this scan first sleeps
  for (;;) {
    // Fence HB (docs/design.md §2): acquire pairs with the issuer's release
    // of the ended sequence: its membarrier() has returned, every CPU has
    // executed a full barrier between our first pass and our second.
    std::uint32_t cur = g_barrier_seq.load(std::memory_order_acquire);
    if (seq_reached(cur, snap)) break;
    if ((cur & 1) == 0 &&
        g_barrier_seq.compare_exchange_strong(cur, cur + 1, std::memory_order_acq_rel,
                                              std::memory_order_acquire)) {
      g_heavy_barriers.fetch_add(1, std::memory_order_relaxed);
      tls_issuing = 1;
      SRCU_INJECT("heavy_barrier: in flight, before membarrier()");
      // Fence A (docs/design.md §2): a full barrier on every CPU running a
      // thread of this process; pairs with the compiler barriers B and C in
      // readers. Without it a scan misses a reader that reads the old pointer.
      issue_barrier();
      // Fence HB (docs/design.md §2): release to the scans served by this
      // barrier; seq_cst with the sleepers' count (store buffering): either
      // this sees a sleeper and wakes it, or the sleeper sees the new value.
      tls_issuing = 0;  // before the end (its release keeps this store before it)
      g_barrier_seq.store(cur + 2, std::memory_order_seq_cst);
      if (g_barrier_sleepers.load(std::memory_order_seq_cst) != 0) futex_wake(g_barrier_seq);
      break;  // cur >= the snapshot's base, so cur + 2 reaches snap
    }
    if ((cur & 1) != 0) {
      // Fence HB (docs/design.md §2): seq_cst pairs with the issuer's store
      // and sleeper load above; without it both miss and this sleeps until
      // the timeout.
      g_barrier_sleepers.fetch_add(1, std::memory_order_seq_cst);
      SRCU_INJECT("heavy_barrier: counted as a sleeper, before the re-check");
      if (g_barrier_seq.load(std::memory_order_seq_cst) == cur) {
        if (waiting_since_ns == 0) waiting_since_ns = monotonic_ns();
        futex_wait(g_barrier_seq, cur, kIssuerPatience);
      }
      g_barrier_sleepers.fetch_sub(1, std::memory_order_relaxed);
      if (g_barrier_seq.load(std::memory_order_relaxed) == cur && waiting_since_ns != 0 &&
          monotonic_ns() - waiting_since_ns >= static_cast<std::uint64_t>(kIssuerPatience.count())) {
        // The issuer has not come back from membarrier() in a millisecond:
        // it was preempted or stopped there. A barrier of this scan's own,
        // after its first pass, is Fence A on its own terms: never wait on
        // a thread that may not run (a stopped or low-priority issuer).
        g_heavy_barriers.fetch_add(1, std::memory_order_relaxed);
        issue_barrier();  // Fence A (docs/design.md §2), not shared
        break;
      }
    }
  }
  // Fence HB (docs/design.md §2): the scan's second pass after the barrier.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace

std::uint32_t heavy_barrier_snapshot() noexcept {
  // Fence HB (docs/design.md §2): the scan's first pass is ordered before
  // the snapshot, so a barrier that begins after the snapshot (its CAS is
  // later in g_barrier_seq's order) interrupts every CPU after that pass.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return (g_barrier_seq.load(std::memory_order_acquire) + 3) & ~std::uint32_t{1};
}

bool heavy_barrier_reached(std::uint32_t snap) noexcept {
  // Fence HB (docs/design.md §2): acquire pairs with the issuer's end store;
  // the fence orders the second pass after it.
  if (!seq_reached(g_barrier_seq.load(std::memory_order_acquire), snap)) return false;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return true;
}

bool heavy_barrier_shared() noexcept {
#if SRCU_TSAN
  return true;
#else
  return g_use_membarrier.load(std::memory_order_relaxed);
#endif
}

void heavy_barrier() noexcept {
#if !SRCU_TSAN
  if (!g_use_membarrier.load(std::memory_order_relaxed)) {
    g_heavy_barriers.fetch_add(1, std::memory_order_relaxed);
    // Fence A (docs/design.md §2), fallback: pairs with B and C, which are
    // real seq_cst fences in this mode (g_readers_fence). Not shared: a fence
    // costs less than waiting for another thread's.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return;
  }
#endif
  shared_barrier();  // Fence A (docs/design.md §2), shared (Fence HB)
}

bool heavy_barrier_issuing_here() noexcept { return tls_issuing != 0; }

std::uint64_t heavy_barriers_issued() noexcept {
  return g_heavy_barriers.load(std::memory_order_relaxed);
}

}  // namespace srcu::detail
