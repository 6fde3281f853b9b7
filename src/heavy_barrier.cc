#include "heavy_barrier.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "srcu/detail/reader.h"

namespace srcu::detail {

constinit std::atomic<bool> g_readers_fence{false};
// Statistics only (no ordering): one increment per heavy barrier.
constinit std::atomic<std::uint64_t> g_heavy_barriers{0};

namespace {

constinit std::atomic<bool> g_use_membarrier{false};
std::once_flag g_init_once;

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

}  // namespace

void heavy_barrier_init() noexcept {
  std::call_once(g_init_once, [] {
    const bool use = !fallback_forced() && try_register();
    g_use_membarrier.store(use, std::memory_order_relaxed);
    // Published to readers by the domain constructor's release (registry
    // mutex) and by the user's own publication of the domain.
    g_readers_fence.store(!use, std::memory_order_relaxed);
  });
}

void heavy_barrier_reinit_after_fork() noexcept {
  if (g_use_membarrier.load(std::memory_order_relaxed) && !try_register()) {
    // Cannot happen on Linux (registration is inherited); if it did, readers
    // in the child would be unprotected: stop rather than corrupt.
    static const char kMsg[] = "srcu: membarrier registration failed in fork child\n";
    (void)!::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    std::abort();
  }
}

void heavy_barrier() noexcept {
  g_heavy_barriers.fetch_add(1, std::memory_order_relaxed);
#if SRCU_TSAN
  // TSan cannot see the membarrier IPIs; readers fence for real under TSan.
  // Fence A (docs/design.md §2): pairs with B and C, real fences under TSan.
  std::atomic_thread_fence(std::memory_order_seq_cst);
#else
  if (g_use_membarrier.load(std::memory_order_relaxed)) {
    // Fence A (docs/design.md §2): a full barrier on every CPU running a
    // thread of this process; pairs with the compiler barriers B and C in
    // readers. Without it a scan misses a reader that reads the old pointer.
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
    static const char kMsg[] = "srcu: membarrier(PRIVATE_EXPEDITED) failed after registration\n";
    (void)!::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    std::abort();
  }
  // Fence A (docs/design.md §2), fallback: pairs with B and C, which are real
  // seq_cst fences in this mode (g_readers_fence).
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

std::uint64_t heavy_barriers_issued() noexcept {
  return g_heavy_barriers.load(std::memory_order_relaxed);
}

}  // namespace srcu::detail
