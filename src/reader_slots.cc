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
  std::mutex mutex;
  std::vector<domain_state*> domains;  // by id; nullptr: id free
  // Lowest first: a thread's slot table has an entry for every id up to
  // the highest it used, so a new domain takes the smallest free id, not
  // the last one freed (after 100,000 domains came and went, a new domain
  // would otherwise cost each thread that reads it a 1 MiB table).
  std::priority_queue<std::uint32_t, std::vector<std::uint32_t>, std::greater<>> free_ids;
  thread_record* threads = nullptr;
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

// End, on the updater's books, every section a vanished thread left open.
void balance(counter_pair* s) noexcept {
  for (int i = 0; i < 2; ++i) {
    s->unlocks[i].store(s->locks[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
}

void unlink(registry& r, thread_record* rec) noexcept {
  if (rec->prev != nullptr) rec->prev->next = rec->next;
  else r.threads = rec->next;
  if (rec->next != nullptr) rec->next->prev = rec->prev;
}

// Registry mutex held. Gives every slot of `rec` back and frees it.
// `slot_locks_held`: the fork child already holds every mutex.
void release_record_locked(registry& r, thread_record* rec, bool exiting,
                           bool slot_locks_held) {
  for (std::uint32_t id = 0; id < rec->capacity; ++id) {
    counter_block* slot = rec->slots[id].load(std::memory_order_relaxed);
    if (slot == nullptr) continue;
    domain_state* d = r.domains[id];  // live: registry_remove clears entries first
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
      d->put_slot_locked(slot);
    } else {
      std::lock_guard lk(d->mutex);
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
    std::lock_guard lk(r.mutex);
    release_record_locked(r, static_cast<thread_record*>(record), /*exiting=*/true,
                          /*slot_locks_held=*/false);
  }
  tls_record = nullptr;
  tls_slot_table = {nullptr, 0};
}

}  // namespace

void* current_thread_record() noexcept { return tls_record; }

std::uint32_t registry_add(domain_state* d) {
  registry& r = reg();
  std::lock_guard lk(r.mutex);
  if (!r.free_ids.empty()) {
    const std::uint32_t id = r.free_ids.top();
    r.free_ids.pop();
    r.domains[id] = d;
    return id;
  }
  r.domains.push_back(d);
  return static_cast<std::uint32_t>(r.domains.size() - 1);
}

void registry_remove(std::uint32_t id) {
  registry& r = reg();
  std::lock_guard lk(r.mutex);
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
  std::lock_guard lk(r.mutex);
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

counter_block* domain_state::take_slot(void* owner) {
  std::lock_guard lk(mutex);
  if (free_slots == nullptr) {
    auto* chunk = new slot_chunk;
    chunk->count = next_chunk_size;
    chunk->slots = new counter_block[chunk->count];
    // readers_idle()'s per-block scratch: one entry per slot and shard.
    auto scratch = std::make_unique<std::uint64_t[]>(slots_handed_out + chunk->count + shard_count);
    scan_unlocks = std::move(scratch);
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

void domain_state::put_slot_locked(counter_block* slot) {
  slot->owner = nullptr;
  slot->lock_depth = 0;
  slot->next_free = free_slots;
  free_slots = slot;
}

// The scans: every slot ever handed out (live or recycled) plus the shards.
// Acquire loads: a counted unlock is ordered before what the updater does
// next (the free), and TSan sees that edge.
std::uint64_t domain_state::sum_counters(unsigned idx, bool locks) const noexcept {
  std::uint64_t sum = 0;
  for_each_counter_pair([&](const counter_pair& p, const counter_block*) {
    sum += (locks ? p.locks[idx] : p.unlocks[idx]).load(std::memory_order_acquire);
  });
  return sum;
}

domain_state::reader_state domain_state::thread_reader_state() const noexcept {
  const counter_block* s = this_thread_slot(self->id_);
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

pid_t slot_owner_tid(const counter_block* slot) noexcept {
  const auto* rec = static_cast<const thread_record*>(slot->owner);
  return rec != nullptr ? rec->tid : 0;
}

void visit_readers_of_this_thread(void (*fn)(const domain_state* d, void* ctx), void* ctx) {
  registry& r = reg();
  // The registry mutex keeps every domain in the table alive (registry_remove
  // clears a thread's entry under it before the domain's slots are freed).
  std::lock_guard lk(r.mutex);
  const thread_slot_table& t = tls_slot_table;
  for (std::uint32_t id = 0; id < t.capacity && id < r.domains.size(); ++id) {
    const counter_block* s = t.slots[id].load(std::memory_order_relaxed);
    if (s == nullptr || r.domains[id] == nullptr) continue;
    if (!slot_balanced(s)) fn(r.domains[id], ctx);
  }
}

void registry_visit(void (*fn)(domain_state* d, void* ctx), void* ctx) {
  registry& r = reg();
  std::lock_guard lk(r.mutex);
  for (domain_state* d : r.domains) {
    if (d != nullptr) fn(d, ctx);
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

void domain_state::balance_shards() noexcept {
  for (std::uint32_t i = 0; i < shard_count; ++i) balance(&self->shards_[i]);
}

void registry_prepare_fork() noexcept {
  registry& r = reg();
  r.mutex.lock();
  for (domain_state* d : r.domains) {
    if (d == nullptr) continue;
    d->mutex.lock();
  }
}

void registry_parent_after_fork() noexcept {
  registry& r = reg();
  for (domain_state* d : r.domains) {
    if (d == nullptr) continue;
    d->mutex.unlock();
  }
  r.mutex.unlock();
}

void registry_child_after_fork() noexcept {
  registry& r = reg();
  // Only the forking thread exists now. Every other thread's read_lock()
  // sections are ended on the books and its slots recycled; the forking
  // thread's own sections go on. Signal-safe and down/up sections cannot be
  // attributed to a thread, so all of them are ended (see domain.h).
  for (thread_record* rec = r.threads; rec != nullptr;) {
    thread_record* next = rec->next;
    if (rec != tls_record) {
      release_record_locked(r, rec, /*exiting=*/false, /*slot_locks_held=*/true);
    }
    rec = next;
  }
  for (domain_state* d : r.domains) {
    if (d == nullptr) continue;
    d->balance_shards();
    // A vanished updater may have been driving or waiting.
    d->driver.store(false, std::memory_order_relaxed);
    d->waiters.store(0, std::memory_order_relaxed);
    d->expedited_waiters.store(0, std::memory_order_relaxed);
    // Clears the service flags too: a vanished thread may have been inside
    // kick() between setting a flag and pushing (the services absorbed their
    // pending stacks before this runs, see fork.cc).
    d->discard_callbacks_in_child();
    d->mutex.unlock();
    // Grace periods start_poll() asked for must still end in the child.
    if (!seq_ge(d->gp_seq.load(std::memory_order_relaxed),
                d->gp_seq_needed.load(std::memory_order_relaxed))) {
      engine().kick(d);
    }
  }
  r.mutex.unlock();
}

}  // namespace srcu::detail
