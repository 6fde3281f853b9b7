// Reader slots: one counter block per (thread, domain), found through the
// thread's slot table (indexed by domain id) without atomic RMW or fence.
//
// A slot is taken on a thread's first read_lock() of a domain and given back
// to the domain's free list when the thread exits (pthread key destructor,
// which runs after C++ thread_local destructors, so those may still read).
// Slots keep their counts when they change hands, so sums stay correct; live
// memory is bounded by the peak number of threads that used the domain at
// once, not by the number of threads ever created.

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <functional>
#include <queue>
#include <vector>

#include "diagnostics.h"
#include "domain_state.h"
#include "fault_injection.h"
#include "heavy_barrier.h"

namespace srcu::detail {

constinit thread_local thread_slot_table tls_slot_table SRCU_TLS_MODEL = {nullptr, 0};

namespace {

struct thread_record {
  pid_t tid = 0;               // for reports
  pthread_t thread{};
  thread_record* prev = nullptr;
  thread_record* next = nullptr;
  std::atomic<counter_block*>* slots = nullptr;  // == tls_slot_table.slots
  std::uint32_t capacity = 0;
};

constinit thread_local thread_record* tls_record = nullptr;

void on_thread_exit(void* record);

// Leaked on purpose: threads may exit after static destructors have run.
struct registry {
  registry() { pthread_key_create(&exit_key, &on_thread_exit); }
  // After the engine's service mutex, before every domain mutex.
  detail::mutex mutex;
  // By id; nullptr: id free. A domain's state is published under this
  // mutex (registry_publish_state()), so a holder sees every state made.
  std::vector<domain*> domains SRCU_GUARDED_BY(mutex);
  // Lowest first: a thread's slot table has an entry for every id up to
  // the highest it used, so a new domain takes the smallest free id, not
  // the last one freed (after 100,000 domains came and went, a new domain
  // would otherwise cost each thread that reads it a 1 MiB table).
  std::priority_queue<std::uint32_t, std::vector<std::uint32_t>, std::greater<>> free_ids
      SRCU_GUARDED_BY(mutex);
  thread_record* threads SRCU_GUARDED_BY(mutex) = nullptr;
  pthread_key_t exit_key{};
};

registry& reg() {
  static registry* r = new registry;
  return *r;
}

bool slot_balanced(const counter_block* s) noexcept {
  return s->locks[0].load(std::memory_order_relaxed) ==
             s->unlocks[0].load(std::memory_order_relaxed) &&
         s->locks[1].load(std::memory_order_relaxed) ==
             s->unlocks[1].load(std::memory_order_relaxed);
}

void unlink(registry& r, thread_record* rec) noexcept SRCU_REQUIRES(r.mutex) {
  if (rec->prev != nullptr) rec->prev->next = rec->next;
  else r.threads = rec->next;
  if (rec->next != nullptr) rec->next->prev = rec->prev;
}

// Registry mutex held. Gives every slot of `rec` back and frees it.
// `slot_locks_held`: the fork child already holds every mutex.
void release_record_locked(registry& r, thread_record* rec, bool exiting,
                           bool slot_locks_held) SRCU_REQUIRES(r.mutex) {
  for (std::uint32_t id = 0; id < rec->capacity; ++id) {
    counter_block* slot = rec->slots[id].load(std::memory_order_relaxed);
    if (slot == nullptr) continue;
    // Live (registry_remove clears entries first), and made: a slot is
    // taken only from a state published under this mutex.
    domain_state* d = state_maker::state(*r.domains[id]);
    if (exiting && (!slot_balanced(slot) || slot->lock_depth != 0)) {
      for (unsigned i = 0; i < 2; ++i) {
        if (slot->unlocks[i].load(std::memory_order_relaxed) >
            slot->locks[i].load(std::memory_order_relaxed)) {
          die(d->name, "a thread exited after unlocking more read-side critical sections "
                       "than it locked (read_unlock()/unlock() called twice for one lock)");
        }
      }
      die(d->name, "a thread exited inside a read-side critical section (read_lock/lock "
                   "without read_unlock/unlock); its grace periods could never end");
    }
    if (!exiting) balance(slot);
    if (slot_locks_held) {
      d->mutex.assert_held();  // the fork child: taken by the prepare handler
      d->put_slot_locked(slot);
    } else {
      mutex_lock lk(d->mutex);
      d->put_slot_locked(slot);
    }
  }
  unlink(r, rec);
  delete[] rec->slots;
  delete rec;
}

void on_thread_exit(void* record) {
  registry& r = reg();
  {
    mutex_lock lk(r.mutex);
    release_record_locked(r, static_cast<thread_record*>(record), /*exiting=*/true,
                          /*slot_locks_held=*/false);
  }
  tls_record = nullptr;
  tls_slot_table = {nullptr, 0};
}

}  // namespace

void balance(counter_pair* s) noexcept {
  for (int i = 0; i < 2; ++i) {
    s->unlocks[i].store(s->locks[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
}

void* current_thread_record() noexcept { return tls_record; }

std::uint32_t registry_add(domain* d) {
  registry& r = reg();
  mutex_lock lk(r.mutex);
  if (!r.free_ids.empty()) {
    const std::uint32_t id = r.free_ids.top();
    r.free_ids.pop();
    r.domains[id] = d;
    return id;
  }
  r.domains.push_back(d);
  return static_cast<std::uint32_t>(r.domains.size() - 1);
}

domain_state* registry_publish_state(domain* d, domain_state* fresh) noexcept {
  registry& r = reg();
  mutex_lock lk(r.mutex);
  if (domain_state* made = state_maker::state(*d)) return made;
  state_maker::publish(*d, fresh);
  return fresh;
}

void registry_remove(std::uint32_t id) {
  registry& r = reg();
  mutex_lock lk(r.mutex);
  // Threads that used the domain keep a table entry; clear it before the id
  // can be handed to a new domain (the owner thread re-reads it only after
  // learning of that new domain, which happens after this mutex is released).
  for (thread_record* rec = r.threads; rec != nullptr; rec = rec->next) {
    if (id < rec->capacity) rec->slots[id].store(nullptr, std::memory_order_relaxed);
  }
  r.domains[id] = nullptr;
  r.free_ids.push(id);
}

counter_block* register_thread_slot(domain_state* d, std::uint32_t id) {
  registry& r = reg();
  mutex_lock lk(r.mutex);
  thread_record* rec = tls_record;
  if (rec == nullptr) {
    rec = new thread_record;
    rec->tid = static_cast<pid_t>(::syscall(SYS_gettid));
    rec->thread = pthread_self();
    rec->next = r.threads;
    if (r.threads != nullptr) r.threads->prev = rec;
    r.threads = rec;
    pthread_setspecific(r.exit_key, rec);
    tls_record = rec;
  }
  if (id >= rec->capacity) {
    std::uint32_t capacity = rec->capacity < 8 ? 8 : rec->capacity;
    while (capacity <= id) capacity *= 2;
    auto* slots = new std::atomic<counter_block*>[capacity];
    for (std::uint32_t i = 0; i < capacity; ++i) {
      slots[i].store(i < rec->capacity ? rec->slots[i].load(std::memory_order_relaxed) : nullptr,
                     std::memory_order_relaxed);
    }
    delete[] rec->slots;
    rec->slots = slots;
    rec->capacity = capacity;
  }
  counter_block* slot = d->take_slot(rec);
  rec->slots[id].store(slot, std::memory_order_relaxed);
  tls_slot_table = {rec->slots, rec->capacity};
  return slot;
}

counter_block* reader_side::take_slot(void* owner) {
  mutex_lock lk(mutex);
  if (free_slots == nullptr) {
    auto* chunk = new slot_chunk;
    chunk->count = next_chunk_size;
    chunk->slots = new counter_block[chunk->count];
    // readers_idle()'s per-slot scratch: one entry per slot and index.
    auto scratch = std::make_unique<std::uint32_t[]>(2 * std::size_t{slots_handed_out + chunk->count});
    scan_unlocks = std::move(scratch);
    forget_kept_pass();  // its slots' unlock counts were in the old scratch
    slots_handed_out += chunk->count;
    if (next_chunk_size < 256) next_chunk_size *= 2;
    for (std::uint32_t i = 0; i < chunk->count; ++i) {
      chunk->slots[i].domain = self;
      put_slot_locked(&chunk->slots[i]);
    }
    chunk->next = chunks.load(std::memory_order_relaxed);
    // Publishes the zeroed counters to scanners walking the list.
    chunks.store(chunk, std::memory_order_release);
  }
  counter_block* slot = free_slots;
  free_slots = slot->next_free;
  slot->next_free = nullptr;
  slot->owner = owner;
  return slot;
}

void reader_side::put_slot_locked(counter_block* slot) {
  slot->owner = nullptr;
  slot->lock_depth = 0;
  slot->next_free = free_slots;
  free_slots = slot;
}

reader_side::reader_state reader_side::thread_reader_state() const noexcept {
  const counter_block* s = this_thread_slot(id());
  if (s == nullptr) return reader_state::outside;
  bool inside = false;
  for (unsigned i = 0; i < 2; ++i) {
    const auto d = static_cast<std::int64_t>(s->locks[i].load(std::memory_order_relaxed) -
                                             s->unlocks[i].load(std::memory_order_relaxed));
    if (d < 0) return reader_state::over_unlocked;
    inside |= d > 0;
  }
  return inside ? reader_state::inside : reader_state::outside;
}

// The scans: every slot ever handed out (live or recycled) plus the shards.
// Acquire loads: a counted unlock is ordered before what the updater does
// next (the free), and TSan sees that edge.
// mutex held (the per-block scratch and the chunk list are stable under it).
bool reader_side::readers_idle(unsigned idx, std::uint64_t tag, bool* other_idle) noexcept {
  std::uint32_t* const slot_unlocks = scan_unlocks.get();  // [2 * slot + index], low 32 bits
  std::uint32_t shard_unlocks[2] = {0, 0};  // low 32 bits (kept_pass)
  if (other_idle != nullptr) *other_idle = false;
  const unsigned other = idx ^ 1;
  bool with_other = false;  // the other index rides on these passes
  const std::uint32_t kept = pass1.key.load(std::memory_order_relaxed);
  const bool resumed = tag != 0 && (kept & ~2u) == kept_pass_key(tag, idx, false) &&
                       heavy_barrier_reached(pass1.snap);
  if (resumed) {
    // The second half of a scan whose first pass ran in an earlier step of
    // this grace-period state (same tag), with the slot scratch untouched
    // since (a chunk added or the table grown would have discarded it): a
    // heavy barrier that began after that pass has ended (Fence HB,
    // heavy_barrier_reached() orders what follows after it).
    with_other = (kept & 2u) != 0 && other_idle != nullptr;
    shard_unlocks[0] = pass1.shard_unlocks[0];
    shard_unlocks[1] = pass1.shard_unlocks[1];
  }
  forget_kept_pass();  // consumed, or about to be overwritten by a new first pass
  if (!resumed) {
    // First pass: every slot's unlock counts (both indices), kept slot by
    // slot, and the shards' sums (an unlock lands on the shard of the CPU it
    // runs on, or of the table current then: only the shards' sum means
    // anything). The slots' scratch is stable: mutex held; so is the shard
    // table. The same walk reads each block's locks after its unlocks, for
    // the pre-check below. (Sums in named locals, not arrays indexed by the
    // index: the compiler keeps them in registers. With arrays every add went
    // through memory: 5 ns per slot per grace period on the 2-vCPU VM, 2.2
    // ns now.)
    std::uint64_t u0 = 0, u1 = 0, l0 = 0, l1 = 0;
    std::uint32_t* scratch = slot_unlocks;
    for_each_slot([&](const counter_block& p) {
      const std::uint64_t a0 = p.unlocks[0].load(std::memory_order_acquire);
      const std::uint64_t a1 = p.unlocks[1].load(std::memory_order_acquire);
      scratch[0] = static_cast<std::uint32_t>(a0);
      scratch[1] = static_cast<std::uint32_t>(a1);
      scratch += 2;
      u0 += a0;
      u1 += a1;
      l0 += p.locks[0].load(std::memory_order_acquire);
      l1 += p.locks[1].load(std::memory_order_acquire);
    });
    std::uint64_t su0 = 0, su1 = 0;
    for_each_shard([&](const shard_block& p) {
      su0 += p.unlocks[0].load(std::memory_order_acquire);
      su1 += p.unlocks[1].load(std::memory_order_acquire);
      l0 += p.locks[0].load(std::memory_order_acquire);
      l1 += p.locks[1].load(std::memory_order_acquire);
    });
    shard_unlocks[0] = static_cast<std::uint32_t>(su0);
    shard_unlocks[1] = static_cast<std::uint32_t>(su1);
    const std::uint64_t seen_unlocks[2] = {u0 + su0, u1 + su1};
    const std::uint64_t seen_locks[2] = {l0, l1};
    // Pre-check without the heavy barrier: while readers are visibly inside,
    // a full check (one membarrier, ~10 us with other CPUs busy) would only
    // fail. Liveness only; the decision below is made with A in place. (More
    // unlocks than locks goes on to the full check, which reports it.)
    const auto inside = [&](unsigned x) { return static_cast<std::int64_t>(seen_locks[x] - seen_unlocks[x]); };
    if (inside(idx) > 0) {
      last_active.store(static_cast<std::uint64_t>(inside(idx)), std::memory_order_relaxed);
      return false;
    }
    with_other = other_idle != nullptr && inside(other) <= 0;
    SRCU_INJECT("readers_idle: after the unlock sum");
    if (tag != 0 && heavy_barrier_shared()) {
      // The engine's step: leave the barrier to the engine, which issues one
      // for every domain of its batch that got here, then steps them again
      // (Fence HB: the snapshot is ordered after this pass).
      pass1.snap = heavy_barrier_snapshot();
      pass1.shard_unlocks[0] = shard_unlocks[0];
      pass1.shard_unlocks[1] = shard_unlocks[1];
      pass1.key.store(kept_pass_key(tag, idx, with_other), std::memory_order_relaxed);
      return false;
    }
    // Fence A (docs/design.md §2): pairs with B and C in the readers
    // (include/srcu/domain.h); without it the sums can miss a reader that
    // reads the old pointer, or count an unlock without its lock: a false
    // idle. One barrier serves both indices' scans.
    heavy_barrier();  // A: pairs with B and C
  }
  SRCU_INJECT("readers_idle: after the heavy barrier");
  // Second pass: lock counts. By A (with B and C) a slot's locks read now
  // are at least its unlocks read before, for every slot, when each lock
  // precedes its unlock. A slot with fewer is an unlock without lock on
  // that slot; caught here, slot by slot, because in the sums it would
  // cancel another thread's reader and end the grace period under it. The
  // shards are one block for this.
  // Per slot and index, readers inside = locks now - unlocks then, in 32
  // bits (the scratch keeps the low halves): a slot's sections in flight.
  std::int64_t in0 = 0, in1 = 0;
  const std::uint32_t* scratch = slot_unlocks;
  // The first slot with more unlocks than locks, its index and the excess.
  const counter_block* over_slot = nullptr;
  unsigned over_idx = 0;
  std::int32_t over_by = 0;
  const bool scan0 = idx == 0 || with_other;
  const bool scan1 = idx == 1 || with_other;
  for_each_slot([&](const counter_block& p) {
    const std::int32_t d0 =
        scan0 ? static_cast<std::int32_t>(static_cast<std::uint32_t>(p.locks[0].load(std::memory_order_acquire)) - scratch[0])
              : 0;
    const std::int32_t d1 =
        scan1 ? static_cast<std::int32_t>(static_cast<std::uint32_t>(p.locks[1].load(std::memory_order_acquire)) - scratch[1])
              : 0;
    scratch += 2;
    if (SRCU_UNLIKELY((d0 | d1) < 0) && over_slot == nullptr) {
      over_slot = &p;
      over_idx = d0 < 0 ? 0 : 1;
      over_by = d0 < 0 ? d0 : d1;
    }
    in0 += d0;
    in1 += d1;
  });
  if (SRCU_UNLIKELY(over_slot != nullptr)) {
    report_unlock_without_lock(over_slot, over_idx, static_cast<std::uint64_t>(-static_cast<std::int64_t>(over_by)));
  }
  std::uint64_t sl0 = 0, sl1 = 0;
  for_each_shard([&](const shard_block& p) {
    sl0 += p.locks[0].load(std::memory_order_acquire);
    sl1 += p.locks[1].load(std::memory_order_acquire);
  });
  // Readers inside per index: the slots' difference, plus the shards', whose
  // sums are compared in 32 bits (kept_pass): the shared sections in flight.
  std::int64_t inside[2] = {in0, in1};
  const std::uint64_t shard_locks[2] = {sl0, sl1};
  for (unsigned x = 0; x < 2; ++x) {
    if (x != idx && !with_other) continue;  // (a kept pass may carry its sums: unused)
    const auto shard_inside =
        static_cast<std::int32_t>(static_cast<std::uint32_t>(shard_locks[x]) - shard_unlocks[x]);
    if (SRCU_UNLIKELY(shard_inside < 0)) {
      report_unlock_without_lock(nullptr, x, static_cast<std::uint64_t>(-static_cast<std::int64_t>(shard_inside)));
    }
    inside[x] += shard_inside;
  }
  last_active.store(static_cast<std::uint64_t>(inside[idx]), std::memory_order_relaxed);
  if (with_other) *other_idle = inside[other] == 0;
  return inside[idx] == 0;
}

bool reader_side::index_taken_since_last_look(unsigned idx) noexcept {
  // The walk costs about what the wait it may spare (1 us) at 1,024 live
  // slots (2-vCPU AMD EPYC VM, expedited grace periods with no reader:
  // 6.6 us before the hint, 5.2-7.0 with it; 256 slots: 4.5 -> 3.1-4.0).
  // Beyond 512 blocks (slots handed out and shards): no walk, the wait is
  // made (as before the hint).
  constexpr std::uint32_t kMaxBlocksWalked = 512;
  if (slots_handed_out + shards().count > kMaxBlocksWalked) return true;
  std::uint64_t locks = 0;
  for_each_counter_pair([&](const counter_pair& c, const counter_block*) {
    locks += c.locks[idx].load(std::memory_order_relaxed);
  });
  const bool taken = static_cast<std::uint32_t>(locks) != looked_locks[idx];
  looked_locks[idx] = static_cast<std::uint32_t>(locks);
  return taken;
}

void reader_side::report_unlock_without_lock(const counter_block* slot, unsigned idx,
                                             std::uint64_t extra) const noexcept {
  message m;
  m << "srcu: domain '" << name << "': " << extra << " more unlock(s) than locks on index " << idx;
  if (slot != nullptr) {
    m << " by ";
    describe_slot_owner(m, slot);
    m << ": read_unlock() or unlock() called twice for one read_lock()/lock()";
  } else {
    m << " in the signal-safe/down_read counters: read_unlock_signal_safe() or up_read() "
         "called twice for one token (or a section held across fork() ended in the child)";
  }
  m << "; a grace period would otherwise end with another reader still inside";
  die(m);
}

pid_t slot_owner_tid(const counter_block* slot) noexcept {
  const auto* rec = static_cast<const thread_record*>(slot->owner);
  return rec != nullptr ? rec->tid : 0;
}

void visit_readers_of_this_thread(void (*fn)(const domain_state* d, void* ctx), void* ctx) {
  registry& r = reg();
  // The registry mutex keeps every domain in the table alive (registry_remove
  // clears a thread's entry under it before the domain's slots are freed).
  mutex_lock lk(r.mutex);
  const thread_slot_table& t = tls_slot_table;
  for (std::uint32_t id = 0; id < t.capacity && id < r.domains.size(); ++id) {
    const counter_block* s = t.slots[id].load(std::memory_order_relaxed);
    domain_state* const d = r.domains[id] != nullptr ? state_maker::state(*r.domains[id]) : nullptr;
    if (s == nullptr || d == nullptr) continue;
    if (!slot_balanced(s)) fn(d, ctx);
  }
}

namespace {
// The domains whose state has been made (the registry mutex held).
template <class F>
void for_each_state(registry& r, F&& f) SRCU_REQUIRES(r.mutex) {
  for (domain* d : r.domains) {
    if (d == nullptr) continue;
    if (domain_state* s = state_maker::state(*d)) f(s);
  }
}
}  // namespace

void registry_visit(void (*fn)(domain& d, void* ctx), void* ctx) {
  registry& r = reg();
  mutex_lock lk(r.mutex);
  for (domain* d : r.domains) {
    if (d != nullptr) fn(*d, ctx);
  }
}

void describe_slot_owner(message& m, const counter_block* slot) noexcept {
  const auto* rec = static_cast<const thread_record*>(slot->owner);
  if (rec == nullptr) {
    m << "a thread that has exited";
    return;
  }
  char name[16] = {};
  if (pthread_getname_np(rec->thread, name, sizeof name) != 0) name[0] = '\0';
  m << "thread " << static_cast<std::int64_t>(rec->tid) << " ('" << name << "')";
}

reader_side::~reader_side() {
  slot_chunk* c = chunks.load(std::memory_order_relaxed);
  while (c != nullptr) {
    slot_chunk* next = c->next;
    delete[] c->slots;
    delete c;
    c = next;
  }
}

std::size_t reader_side::slots_allocated() const noexcept {
  std::size_t n = 0;
  for (slot_chunk* c = chunks.load(std::memory_order_acquire); c != nullptr; c = c->next) n += c->count;
  return n;
}

bool reader_side::ever_had_readers() const noexcept {
  if (chunks.load(std::memory_order_acquire) != nullptr) return true;
  bool used = false;
  for_each_shard([&](const shard_block& b) {
    used |= b.locks[0].load(std::memory_order_acquire) != 0 || b.locks[1].load(std::memory_order_acquire) != 0;
  });
  return used;
}

void reader_side::child_after_fork() noexcept {
  for_each_shard([](shard_block& b) { balance(&b); });
  // A first pass waiting for the parent's engine's barrier: that engine is
  // gone, and the child's barrier sequence was reset (heavy_barrier.cc).
  forget_kept_pass();
}

// The registry's share of fork (the order is fork.cc's). Its mutex and then
// each domain's are taken in prepare and released in parent or child: the
// analysis cannot follow a lock across functions, so these three are not
// analysed; assert_held() checks the child's part in debug builds.
void registry_prepare_fork(void (*fn)(domain_state* d)) noexcept SRCU_NO_LOCK_ANALYSIS {
  registry& r = reg();
  r.mutex.lock();
  for_each_state(r, fn);
}

void registry_parent_after_fork(void (*fn)(domain_state* d)) noexcept SRCU_NO_LOCK_ANALYSIS {
  registry& r = reg();
  for_each_state(r, fn);
  r.mutex.unlock();
}

void registry_child_after_fork(void (*fn)(domain_state* d), void (*unborn)(domain* d)) noexcept
    SRCU_NO_LOCK_ANALYSIS {
  registry& r = reg();
  r.mutex.assert_held();
  // Only the forking thread exists now. Every other thread's read_lock()
  // sections are ended on the books and its slots recycled; the forking
  // thread's own sections go on.
  for (thread_record* rec = r.threads; rec != nullptr;) {
    thread_record* next = rec->next;
    if (rec != tls_record) {
      release_record_locked(r, rec, /*exiting=*/false, /*slot_locks_held=*/true);
    }
    rec = next;
  }
  for (domain* d : r.domains) {
    if (d == nullptr) continue;
    if (domain_state* s = state_maker::state(*d)) fn(s);
    else unborn(d);
  }
  r.mutex.unlock();
}

}  // namespace srcu::detail
