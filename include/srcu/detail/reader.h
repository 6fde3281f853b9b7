// Internals the inline reader fast path needs: the counter block, the
// per-thread slot table, and the reader-side fences. Nothing here is API.
//
// Ordering (the one table, with the updater's side, is docs/design.md §2):
//   B  reader_fence() after a lock increment   pairs with A (heavy barrier in
//      readers_idle()) — a reader the scan misses sees the updater's writes.
//   C  reader_fence() before an unlock increment pairs with A — a reader's
//      critical section is over before the scan can count its unlock.
// With membarrier(2) the reader fences are compiler barriers and the updater's
// heavy barrier forces a full fence on every running thread. Without it (or
// when forced off by SRCU_NO_MEMBARRIER=1) readers fence for real.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "srcu/detail/config.h"

#if defined(__linux__) && __has_include(<sys/rseq.h>)
#include <sys/rseq.h>  // glibc >= 2.35: __rseq_offset, __rseq_size
#define SRCU_HAVE_RSEQ 1
#else
#define SRCU_HAVE_RSEQ 0
#endif

namespace srcu::detail {

// The counters every reader block starts with: the lock and unlock counts of
// both indexes, 64-bit (they never wrap in practice) and never zeroed (sums
// over all blocks stay right when a slot changes hands). A read_token points
// here, whichever kind of block it is.
struct counter_pair {
  std::atomic<std::uint64_t> locks[2] = {};
  std::atomic<std::uint64_t> unlocks[2] = {};
  const void* domain = nullptr;  // owning domain, for token checks
};

// A per-thread reader slot (read_lock, lock, read_guard). Cold fields are
// owned by the library (src/reader_slots.cc) and the owning thread.
struct alignas(64) counter_block : counter_pair {
  counter_block* next_free = nullptr;  // slot free list
  void* owner = nullptr;               // thread_record holding this slot
  // domain::lock()/unlock() nesting on this slot; owning thread only.
  std::uint32_t lock_depth = 0;
  std::uint32_t lock_index = 0;
};
static_assert(sizeof(counter_block) == 64);

}  // namespace srcu::detail
namespace srcu {
struct callback_head;
class domain;
}
namespace srcu::detail {

// A domain's place on the engine's kick stack (src/kick_queue.h), kept in
// the public object so that a domain born without its compiled side (src/
// domain.cc: created on first use) can still ask the engine for attention
// from a signal handler: call(), start_poll() and the first signal-safe
// section set a bit in `asks` and kick; the engine creates the state and
// acts on the bits.
struct kick_node {
  static constexpr std::uint8_t kAskCallbacks = 1;  // call() staged on the small block
  static constexpr std::uint8_t kAskPoll = 2;       // start_poll() wants grace period 1
  static constexpr std::uint8_t kAskShards = 4;     // a shared section wants the full table
  std::atomic<bool> queued{false};
  std::atomic<std::uint8_t> asks{0};
  kick_node* next = nullptr;
  domain* owner = nullptr;
};

// A per-CPU shard of a domain: the signal-safe and down/up reader counters,
// and call()'s staging stack (src/callbacks.cc), one cache line together.
struct alignas(64) shard_block : counter_pair {
  std::atomic<callback_head*> staged{nullptr};  // Treiber stack, newest first
  std::atomic<std::uint64_t> enqueued{0};       // call() tickets
};
static_assert(sizeof(shard_block) == 64);

// A domain's shard table (domain::shards_), one word so that a reader reads
// it in one load: the address of its first shard_block (64-byte aligned),
// kPercpuShards when the counters are per CPU (detail/percpu.h: one block
// per possible CPU, incremented in restartable sequences only), and the
// log2 of its block count in bits 1..5. A domain starts with one block
// inside its state and no per-CPU counters (small: lock-prefixed RMWs on
// that block); the first signal-safe or down/up section, or call(), asks
// the engine for the full table, which it publishes once (src/domain.cc:
// the kernel's srcu_size_state small -> big). Blocks are never freed or
// moved while the domain lives, so a token may name any of them.
inline constexpr std::uintptr_t kPercpuShards = 1;
inline constexpr unsigned kShardLogShift = 1;
inline constexpr std::uintptr_t kShardLogMask = 31;

struct shard_table {
  shard_block* first;
  std::uint32_t count;  // a power of two
  bool percpu;
};

SRCU_ALWAYS_INLINE shard_table decode_shards(std::uintptr_t ref) noexcept {
  return shard_table{reinterpret_cast<shard_block*>(ref & ~std::uintptr_t{63}),
                     std::uint32_t{1} << ((ref >> kShardLogShift) & kShardLogMask),
                     (ref & kPercpuShards) != 0};
}

enum flavour : std::uintptr_t {
  kThreadFlavour = 0,      // read_lock / lock / read_guard
  kSignalSafeFlavour = 1,  // read_lock_signal_safe
  kDownUpFlavour = 2,      // down_read / up_read
};
inline constexpr std::uintptr_t kIndexBit = 1;
inline constexpr std::uintptr_t kFlavourShift = 1;
inline constexpr std::uintptr_t kFlavourMask = 3u << kFlavourShift;
inline constexpr std::uintptr_t kBlockMask = ~std::uintptr_t{63};
// Set in a read_lock() token when readers must fence (no membarrier): its
// read_unlock() then executes fence C for real, testing the token it holds
// in a register instead of loading a global flag.
inline constexpr std::uintptr_t kFenceBit = 8;
// A domain's fast-path key when readers must fence: no thread's slot table
// reaches it, so every read_lock() takes the out-of-line path, which fences.
inline constexpr std::uint32_t kNoFastPath = ~std::uint32_t{0};

// This thread's slots, indexed by domain id; trivially initialised so the
// compiler emits no TLS init wrapper (docs/design.md §1.1).
struct thread_slot_table {
  std::atomic<counter_block*>* slots;
  std::uint32_t capacity;
};
extern constinit thread_local thread_slot_table tls_slot_table SRCU_TLS_MODEL;

// True when readers must execute a real fence (no membarrier). Decided once,
// before the first domain exists, never changed afterwards.
extern constinit std::atomic<bool> g_readers_fence;

// True when grace periods rely on every reader's index load and lock
// increment being one restartable sequence (detail/percpu.h: no straggler,
// so no scan of the inactive index; docs/design.md §1.2). Decided with
// g_readers_fence, never changed afterwards. Read inline only by code
// compiled without the sequences (SRCU_HAVE_PERCPU 0), which then calls
// the library's.
extern constinit std::atomic<bool> g_rseq_readers;

SRCU_ALWAYS_INLINE counter_block* this_thread_slot(std::uint32_t domain_id) noexcept {
  const thread_slot_table& t = tls_slot_table;
  if (SRCU_LIKELY(domain_id < t.capacity)) {
    return t.slots[domain_id].load(std::memory_order_relaxed);
  }
  return nullptr;
}

// Fences B and C of read_lock()/read_unlock() on their fast path, which
// runs only with membarrier (docs/design.md §2): a compiler barrier pairs
// with A's membarrier(); without it the compiler moves critical-section
// accesses across the counter store. Under TSan a real fence (A is one too).
SRCU_ALWAYS_INLINE void compiler_reader_fence() noexcept {
#if SRCU_TSAN
  std::atomic_thread_fence(std::memory_order_seq_cst);
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// B / C of the shared flavours and of read_lock()'s out-of-line path: the
// mode is read from the global flag.
SRCU_ALWAYS_INLINE void reader_fence() noexcept {
#if SRCU_TSAN
  // Fences B and C (docs/design.md §2) under TSan: pair with A, which is a
  // seq_cst fence there too.
  std::atomic_thread_fence(std::memory_order_seq_cst);
#else
  if (SRCU_UNLIKELY(g_readers_fence.load(std::memory_order_relaxed))) {
    // Fences B and C (docs/design.md §2), fallback: pair with A's seq_cst
    // fence in heavy_barrier(); without it the CPU reorders the counter
    // store with the critical section.
    std::atomic_thread_fence(std::memory_order_seq_cst);
  } else {
    // Fences B and C (docs/design.md §2) with membarrier: pair with A's
    // membarrier(); without it the compiler moves critical-section accesses
    // across the counter store.
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
#endif
}

// Under TSan every counter access is seq_cst so that TSan sees the reader's
// unlock as released to the updater's acquiring sum (the happens-before edge
// that membarrier provides invisibly). Not a pair of its own: it makes B/C
// with A visible to TSan (docs/design.md §2, §4).
inline constexpr std::memory_order kCounterOrder =
    SRCU_TSAN ? std::memory_order_seq_cst : std::memory_order_relaxed;

// Only the owning thread writes its slot: load + store, no RMW.
SRCU_ALWAYS_INLINE void bump_private(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, kCounterOrder);
}

// Shards are shared: a real RMW (no fence is implied by the memory order;
// the reader_fence() next to it supplies B / C).
SRCU_ALWAYS_INLINE void bump_shared(std::atomic<std::uint64_t>& c) noexcept {
  c.fetch_add(1, kCounterOrder);
}

// Debug code (SRCU_DEBUG) notes the calling thread's signal-safe sections,
// so that synchronize() inside one of the same domain is reported instead
// of hanging, and so that the deadlock detector sees them. Async-signal-safe
// (atomic operations on a small thread-local table; no allocation, no lock).
// The library keeps the notes only when it is built with SRCU_DEBUG too.
void debug_signal_safe_enter(const domain* d) noexcept;
void debug_signal_safe_exit(const domain* d) noexcept;
bool thread_in_signal_safe_reader(const domain* d) noexcept;

// Shard choice for signal-safe and down/up readers: the CPU the thread runs
// on, read from glibc's rseq area (one load from the thread pointer; no
// call, no allocation, async-signal-safe), so threads on different CPUs do
// not share a counter line. Without rseq, the stack address at 1 MiB
// granularity, which differs between threads. Correctness never depends on
// it: the token names the shard that was used.
SRCU_ALWAYS_INLINE std::size_t shard_hint(const void* stack_address) noexcept {
#if SRCU_HAVE_RSEQ
  if (SRCU_LIKELY(__rseq_size != 0)) {
    const auto* rs = reinterpret_cast<const volatile struct rseq*>(
        static_cast<const char*>(__builtin_thread_pointer()) + __rseq_offset);
    const auto cpu = static_cast<std::int32_t>(rs->cpu_id);
    if (SRCU_LIKELY(cpu >= 0)) return static_cast<std::size_t>(cpu);
  }
#endif
  const auto a = reinterpret_cast<std::uintptr_t>(stack_address) >> 20;
  return static_cast<std::size_t>((a * 0x9E3779B97F4A7C15ull) >> 58);
}

}  // namespace srcu::detail
