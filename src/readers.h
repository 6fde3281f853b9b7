// The bottom two layers of a domain's compiled side (domain_state.h shows
// all four): what every layer shares (domain_core: identity, name, the
// domain mutex) and the reader side (reader_side: per-thread slots, the
// per-CPU shards' counters, the scans that decide "no reader on index i").
// Like the kernel's srcu_data beside srcu_usage: the read side's state is
// apart from the update side's, and the update side reads it only through
// the scans below.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "mutex.h"
#include "srcu/domain.h"

namespace srcu::detail {

struct domain_state;
class message;

// Shard tables (detail/reader.h: shard_table). A domain is born small: one
// block in its own allocation (small_shard). The first signal-safe or
// down/up section, or call(), asks for the full table (grow_shards(),
// domain.cc): with per-CPU counters one block per possible CPU (rounded up
// to a power of two, at most kMaxPercpuShards), else a power of two at
// least the online CPUs, at most kMaxShards. call() stages on at most the
// first kStagingShards blocks of a table, so barrier() needs a fixed
// number of markers (one per staging block and the small one).
inline constexpr std::uint32_t kMaxShards = 64;
inline constexpr std::uint32_t kMaxPercpuShards = 4096;
inline constexpr std::uint32_t kStagingShards = 8;
inline constexpr std::uint32_t kMaxStagingBlocks = kStagingShards + 1;

// Test seams (fork_test.cc): a function called with the point's name at
// "full_table: computing the layout" (the engine's first grow_shards()) and
// "domain: constructing" (every domain constructor, first thing),
// "read_lock_slow: index loaded" (grace_period_test.cc: a straggler, between
// read_lock_slow()'s index load and its increment), "state: making" (
// unborn_test.cc: state_maker::create(), before it allocates), "grace
// period: settling after the flip" (heavy_barrier_test.cc: the wait after a
// flip, only when readers took the old index); and a way to have the layout
// computed again.
extern std::atomic<void (*)(const char* point)> g_test_probe;
void forget_full_table_layout() noexcept;

// Layer 0: what every layer of a domain shares.
class domain_core {
 public:
  domain_core(domain* self, const domain_options& options, shard_block* small_shard);

  domain* const self;
  // domain_options::name, for messages: the domain's own copy (saved_options,
  // freed after the state) or the default's literal (state_maker::create()).
  const char* const name;
  shard_block* const small_shard;  // the first table, kept for good (reader.h)

  // The domain mutex. Guards the slot free list and chunk allocation, one
  // grace-period step at a time, and the callback segments; held only for
  // short steps that never block and never call out. Lock order: taken
  // after the engine's service mutex and the registry mutex (fork's prepare
  // handler takes all three in that order), never with the callback pool's
  // or the deadlock detector's mutex held.
  mutable detail::mutex mutex;

  domain_state* whole() noexcept;  // the domain_state this is part of
  const domain_state* whole() const noexcept;

  // The current shard table. Fence ST (docs/design.md §2): pairs with
  // grow_shards()'s release store; without it the blocks' zeroing may not
  // be seen. Stable while the domain mutex is held (published under it).
  shard_table shards() const noexcept {
    return decode_shards(self->shards_.load(std::memory_order_acquire));
  }
  bool grown() const noexcept { return shards().first != small_shard; }
  // Fence ST (docs/design.md §2): grow_shards()'s release store, under the
  // mutex; pairs with shards()' acquire.
  void publish_shards(std::uintptr_t ref) noexcept SRCU_REQUIRES(mutex) {
    self->shards_.store(ref, std::memory_order_release);
  }
  // f(block) for the small block, then every block of a grown table.
  template <class F>
  void for_each_shard(F&& f) const {
    f(*small_shard);
    const shard_table t = shards();
    if (t.first != small_shard) {
      for (std::uint32_t i = 0; i < t.count; ++i) f(t.first[i]);
    }
  }
  // The same over the blocks call() may stage on (at most kMaxStagingBlocks).
  template <class F>
  void for_each_staging_shard(F&& f) const {
    f(*small_shard);
    const shard_table t = shards();
    if (t.first != small_shard) {
      for (std::uint32_t i = 0; i < std::min(t.count, kStagingShards); ++i) f(t.first[i]);
    }
  }
  // Small -> full table (domain.cc). want_shards(): true for the call that
  // first asks (it kicks the engine); async-signal-safe, never allocates.
  // grow_shards() (reader_side): the engine's step; allocates, then
  // publishes under the domain mutex (so a scan, which holds it, sees one
  // table throughout).
  bool want_shards() noexcept {
    return !shards_wanted.load(std::memory_order_relaxed) &&
           !shards_wanted.exchange(true, std::memory_order_relaxed);
  }
  bool shards_asked() const noexcept { return shards_wanted.load(std::memory_order_relaxed); }

 protected:
  // The fields of the public domain that the compiled side uses.
  std::atomic<std::uint64_t>& reader_index() const noexcept { return self->index_; }
  std::uint32_t id() const noexcept { return self->id_; }

 private:
  std::atomic<bool> shards_wanted{false};
};

// A block of reader slots. Chunks are only ever added (at the head, with a
// release store) while the domain lives, so scanners walk them lock-free.
struct slot_chunk {
  slot_chunk* next = nullptr;
  std::uint32_t count = 0;
  counter_block* slots = nullptr;
};

// Layer 1: the reader side (reader_slots.cc).
class reader_side : public domain_core {
 public:
  using domain_core::domain_core;
  ~reader_side();
  reader_side(const reader_side&) = delete;
  reader_side& operator=(const reader_side&) = delete;

  // Slots: one per (thread, domain), taken on the thread's first
  // read_lock() and given back when it exits.
  counter_block* take_slot(void* owner) SRCU_EXCLUDES(mutex);
  void put_slot_locked(counter_block* slot) SRCU_REQUIRES(mutex);
  std::size_t slots_allocated() const noexcept;  // domain::reader_slots()

  // "No reader inside on index idx": sums the unlocks, heavy barrier (fence
  // A, docs/design.md §2), sums the locks; block by block, so an unlock
  // without lock is caught by name. Aborts on one.
  // other_idle != nullptr: the other index rides on the same passes and the
  // same barrier, unless the pre-check already sees a reader inside it;
  // *other_idle says whether it was proven idle too (both proven idle by one
  // barrier ends a grace period without the flip, §1.2).
  // tag != 0 (the engine's step; the grace period's gp_seq names the scan):
  // when the barrier is shared (heavy_barrier_shared()), the first pass is
  // kept and this returns false with awaiting_heavy_barrier() set; the
  // engine issues one barrier for its batch and steps again, and the call
  // with the same tag and index finishes the scan from the kept pass.
  bool readers_idle(unsigned idx, std::uint64_t tag = 0, bool* other_idle = nullptr) noexcept
      SRCU_REQUIRES(mutex);
  // Has any reader taken index idx since the last call for idx (its lock
  // sum moved)? Relaxed loads, no barrier: a hint for the grace period's
  // wait after the flip (grace_period.cc, settle_after_flip()), which only
  // readers arriving on the old index need. Liveness only. True without a
  // look in a domain with more than 512 blocks (the walk would cost more
  // than the wait it spares; slots and shards counted).
  bool index_taken_since_last_look(unsigned idx) noexcept SRCU_REQUIRES(mutex);
  bool awaiting_heavy_barrier() const noexcept {
    return pass1.key.load(std::memory_order_relaxed) != 0;
  }
  // The full shard table (domain_core: want_shards()); discards a kept pass.
  void grow_shards() noexcept SRCU_EXCLUDES(mutex);
  std::uint64_t readers_seen_by_last_scan() const noexcept {
    return last_active.load(std::memory_order_relaxed);
  }
  // Did any reader of any flavour ever use this domain? (~domain(): a domain
  // that never had one needs no heavy barrier to be destroyed.)
  bool ever_had_readers() const noexcept;
  // fn(tid or 0 for a shard, readers inside) for every block with readers
  // inside on idx: the stall report.
  template <class F>
  void visit_inside(unsigned idx, F&& fn) const SRCU_REQUIRES(mutex);

  // The calling thread's read_lock() sections (its own slot: exact).
  enum class reader_state { outside, inside, over_unlocked };
  reader_state thread_reader_state() const noexcept;
  bool thread_in_reader() const noexcept { return thread_reader_state() == reader_state::inside; }

  // fork child (fork.cc): the vanished threads' signal-safe and down/up
  // sections, which no thread can be named for, are ended on the books.
  void child_after_fork() noexcept SRCU_REQUIRES(mutex);

 private:
  // f(const counter_pair&, const counter_block* slot_or_null) for every slot
  // ever handed out, then every shard (slot == nullptr), always in the same
  // order while the mutex is held (chunks are added only under it).
  template <class F>
  void for_each_counter_pair(F&& f) const;
  // f(const counter_block&) for every slot ever handed out, in the order
  // for_each_counter_pair() visits them (readers_idle()'s scratch order).
  template <class F>
  void for_each_slot(F&& f) const;
  [[noreturn]] void report_unlock_without_lock(const counter_block* slot, unsigned idx,
                                               std::uint64_t extra) const noexcept;

  std::atomic<slot_chunk*> chunks{nullptr};
  counter_block* free_slots SRCU_GUARDED_BY(mutex) = nullptr;
  std::uint32_t next_chunk_size SRCU_GUARDED_BY(mutex) = 4;
  std::uint32_t slots_handed_out SRCU_GUARDED_BY(mutex) = 0;  // slots in all chunks
  // Each counter block's unlock counts (both indices: [2 * slot + index];
  // the low 32 bits, enough for the difference from the locks, a slot's
  // sections in flight) from the first pass of readers_idle(), compared
  // block by block in the second (so a double unlock on one thread cannot
  // hide another thread's reader). Grown with the chunks, so a scan never
  // allocates.
  std::unique_ptr<std::uint32_t[]> scan_unlocks SRCU_GUARDED_BY(mutex);
  // A first pass kept for its second (readers_idle() with a tag), valid
  // while key != 0; the slots' unlock counts are in the scratch above.
  // Adding a chunk (new scratch) or growing the shard table discards it
  // (forget_kept_pass()). 16 bytes: every domain has one.
  static std::uint32_t kept_pass_key(std::uint64_t tag, unsigned idx, bool other) noexcept {
    // The tag's low bits, whether the other index rode along, and the
    // index: a gp_seq cannot wrap 2^29 states while its pass is kept (every
    // other scan discards it). The tag's state bits are never 0 (SCAN1 or
    // SCAN2), so neither is the key; 0 is not kept (the scan issues its own
    // barrier).
    return static_cast<std::uint32_t>(tag) << 2 | (other ? 2u : 0u) | idx;
  }
  void forget_kept_pass() noexcept SRCU_REQUIRES(mutex) { pass1.key.store(0, std::memory_order_relaxed); }
  struct kept_pass {
    // Written under the mutex; atomic for awaiting_heavy_barrier(), which
    // the engine reads without it.
    std::atomic<std::uint32_t> key{0};
    std::uint32_t snap = 0;  // heavy_barrier_snapshot() after the pass
    // The shards' unlock sums by index, low 32 bits: the scan needs only
    // their difference from the lock sums, the number of shared sections in
    // flight, far below 2^31 (docs/design.md §3, step 8).
    std::uint32_t shard_unlocks[2] = {0, 0};
  };
  kept_pass pass1;  // written under the mutex
  std::atomic<std::uint64_t> last_active{0};  // readers seen by the last scan
  // index_taken_since_last_look(): each index's lock sum at its last look,
  // low 32 bits (a hint: 2^32 locks between two looks read as none).
  std::uint32_t looked_locks[2] SRCU_GUARDED_BY(mutex) = {0, 0};
};

template <class F>
void reader_side::for_each_slot(F&& f) const {
  for (slot_chunk* c = chunks.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    for (std::uint32_t i = 0; i < c->count; ++i) f(static_cast<const counter_block&>(c->slots[i]));
  }
}

template <class F>
void reader_side::for_each_counter_pair(F&& f) const {
  for (slot_chunk* c = chunks.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    for (std::uint32_t i = 0; i < c->count; ++i) f(static_cast<const counter_pair&>(c->slots[i]), &c->slots[i]);
  }
  for_each_shard([&](const shard_block& b) {
    f(static_cast<const counter_pair&>(b), static_cast<const counter_block*>(nullptr));
  });
}

pid_t slot_owner_tid(const counter_block* slot) noexcept;  // 0: none; the slot's domain mutex held

template <class F>
void reader_side::visit_inside(unsigned idx, F&& fn) const {
  std::int64_t shards_inside = 0;  // shards: only their sum means anything
  for_each_counter_pair([&](const counter_pair& c, const counter_block* slot) {
    const auto inside = static_cast<std::int64_t>(c.locks[idx].load(std::memory_order_relaxed) -
                                                   c.unlocks[idx].load(std::memory_order_relaxed));
    if (slot == nullptr) {
      shards_inside += inside;
    } else if (inside > 0) {
      fn(slot != nullptr ? slot_owner_tid(slot) : 0, static_cast<std::uint64_t>(inside));
    }
  });
  if (shards_inside > 0) fn(0, static_cast<std::uint64_t>(shards_inside));
}

// The thread registry (reader_slots.cc): which domain has which id, which
// thread has which slots. Its mutex comes after the engine's service mutex
// and before every domain mutex in the lock order.
// "thread 1234 ('name')" for the thread holding a slot; for reports.
void describe_slot_owner(message& m, const counter_block* slot) noexcept;
// fn(d, ctx) for every domain the calling thread is inside a read_lock()
// section of (its own slots), registry mutex held (fn must not take it).
void visit_readers_of_this_thread(void (*fn)(const domain_state* d, void* ctx), void* ctx);
// fn(d, ctx) for every live domain, registry mutex held (fn must not take it).
void registry_visit(void (*fn)(domain& d, void* ctx), void* ctx);  // every domain, made or not
std::uint32_t registry_add(domain* d);             // returns the domain id
// Publishes `fresh` as d's state unless d has one: under the registry mutex
// (fork's prepare handler holds it, and then sees every state there is).
// Returns the state d has now; the caller destroys `fresh` if it is not.
domain_state* registry_publish_state(domain* d, domain_state* fresh) noexcept;
void registry_remove(std::uint32_t id);            // clears every thread's entry
counter_block* register_thread_slot(domain_state* d, std::uint32_t id);
void* current_thread_record() noexcept;
// fork (fork.cc calls these in its documented order, with its own fn for
// each domain):
//   prepare: takes the registry mutex, then fn(d) for every domain;
//   parent:  fn(d) for every domain, then releases the registry mutex;
//   child:   the vanished threads' read_lock() sections are ended on the
//            books and their slots recycled (every domain mutex is held),
//            then fn(d) for every domain, then the registry mutex released.
void registry_prepare_fork(void (*fn)(domain_state* d)) noexcept;
void registry_parent_after_fork(void (*fn)(domain_state* d)) noexcept;
// fn for every domain with a state, unborn for every domain without.
void registry_child_after_fork(void (*fn)(domain_state* d), void (*unborn)(domain* d)) noexcept;
// End, on the updater's books, every section a vanished thread left open
// on this block (thread exit; in a fork child, the parent's other threads).
void balance(counter_pair* s) noexcept;

}  // namespace srcu::detail
