// Domain construction and destruction, the read_lock slow path, token checks.

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <new>

#include "callback_pool.h"
#include "diagnostics.h"
#include "futex.h"
#include "domain_state.h"
#include "heavy_barrier.h"
#include "lockdep.h"
#include "service.h"

namespace srcu::detail {

void install_fork_handlers() noexcept;  // fork.cc

domain_state::domain_state(domain* s, const domain_options& options)
    : self(s),
      name_copy(options.name != nullptr ? options.name : "srcu"),
      name(name_copy.c_str()),
      stall_timeout(options.stall_timeout) {
  cb_executor = options.callback_executor;
  cb_backlog_limit = options.callback_backlog_limit;
  delivery.owner = this;
  // Saturating: microseconds::max() ("only barrier() hurries them") must
  // not overflow into a short delay. Capped at about 292 years.
  constexpr std::int64_t kMaxDelayUs = std::numeric_limits<std::int64_t>::max() / 1000 / 2;
  const std::int64_t delay_us = options.callback_delay.count();
  cb_delay_ns = delay_us <= 0 ? 0 : static_cast<std::uint64_t>(std::min(delay_us, kMaxDelayUs)) * 1000;
  engine_slot.node.owner = this;
}

domain_state::~domain_state() {
  slot_chunk* c = chunks.load(std::memory_order_relaxed);
  while (c != nullptr) {
    slot_chunk* next = c->next;
    delete[] c->slots;
    delete c;
    c = next;
  }
}

void domain_state::check_no_readers_at_destruction() noexcept {
  // A domain that never had a reader of any flavour (no slot handed out, no
  // shard lock counted) has none now: no heavy barrier for it, so creating
  // and destroying unused domains stays cheap. (A reader racing with the
  // destructor breaks its precondition either way; this check is for the
  // message, not for the safety of any grace period.)
  if (chunks.load(std::memory_order_acquire) == nullptr) {
    bool any = false;
    for (std::uint32_t i = 0; i < shard_count; ++i) {
      any |= self->shards_[i].locks[0].load(std::memory_order_acquire) != 0 ||
             self->shards_[i].locks[1].load(std::memory_order_acquire) != 0;
    }
    if (!any) return;
  }
  for (;;) {
    bool idle;
    bool batch_out;
    // Fence BD (docs/design.md §2): a bounded 10 ms poll of complete_batch()'s
    // bump, which wakes only while cb_hurry != 0 (not raised here); seq_cst
    // is not needed.
    std::uint32_t seen = cb_done_word.load(std::memory_order_seq_cst);
    {
      std::lock_guard lk(mutex);
      idle = readers_idle(0) && readers_idle(1);
      batch_out = cb_batch_out;
    }
    if (idle) return;
    if (!batch_out) {
      message m;
      m << "srcu: domain '" << name << "': destroyed while "
        << last_active.load(std::memory_order_relaxed)
        << " reader(s) are still inside a read-side critical section";
      die(m);
    }
    // A batch of this domain's callbacks is running right now, and one of
    // them may be the reader: let the batch end, then look again.
    futex_wait(cb_done_word, seen, std::chrono::milliseconds(10));
  }
}

namespace {

// Shards for signal-safe and down/up readers and for staged callbacks: one
// per online CPU (rounded up to a power of two, at most 8), so a domain stays
// small: 100,000 domains fit in well under 100 MB.
std::uint32_t shard_count_for_machine() noexcept {
  static const std::uint32_t count = [] {
    const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    std::uint32_t n = 1;
    while (n < static_cast<std::uint32_t>(std::max(1L, cpus)) && n < 8) n *= 2;
    return n;
  }();
  return count;
}

const char* flavour_name(std::uintptr_t f) noexcept {
  switch (f) {
    case kThreadFlavour: return "read_lock()";
    case kSignalSafeFlavour: return "read_lock_signal_safe()";
    default: return "down_read()";
  }
}

const char* unlock_name(std::uintptr_t f) noexcept {
  switch (f) {
    case kThreadFlavour: return "read_unlock()";
    case kSignalSafeFlavour: return "read_unlock_signal_safe()";
    default: return "up_read()";
  }
}

}  // namespace
}  // namespace srcu::detail

namespace srcu {

using namespace detail;

domain::domain() : domain(domain_options{}) {}

domain::domain(executor& callback_executor, domain_options options)
    : domain((options.callback_executor = &callback_executor, options)) {}

domain::domain(const domain_options& options) {
  heavy_barrier_init();
  install_fork_handlers();
  // One allocation: the state, then the shards on their own cache lines.
  const std::uint32_t shards = shard_count_for_machine();
  static_assert(alignof(shard_block) == 64);
  const std::size_t state_bytes = (sizeof(domain_state) + 63) & ~std::size_t{63};
  void* block = ::operator new(state_bytes + shards * sizeof(shard_block), std::align_val_t{64});
  state_ = new (block) domain_state(this, options);
  shards_ = reinterpret_cast<shard_block*>(static_cast<char*>(block) + state_bytes);
  for (std::uint32_t i = 0; i < shards; ++i) new (&shards_[i]) shard_block{}, shards_[i].domain = this;
  shard_mask_ = shards - 1;
  state_->shard_count = shards;
  id_ = registry_add(state_);
  engine().start();
  pool().start();
}

domain::~domain() {
  domain_state* const s = state_;
  if (s->running_own_callbacks()) {
    die(s->name, "destroyed from inside one of its own callbacks or its executor's submit() "
                 "(it would wait for the batch it is part of)");
  }
  if (s->thread_in_reader()) {
    die(s->name, "destroyed inside one of its own read-side critical sections");
  }
  // Readers first: one still inside would hold up the grace periods that
  // queued callbacks need, and ~domain() would hang in barrier() instead of
  // saying what is wrong.
  s->check_no_readers_at_destruction();
  // Every queued callback runs, and so does every callback they queue while
  // this runs (none is lost; none runs after the destructor returns). With
  // nothing queued this does not wait at all.
  const bool callbacks_ran = s->callbacks_pending() != 0;
  if (callbacks_ran) lockdep_wait(*s, "~domain()", /*callbacks=*/true);
  while (s->callbacks_pending() != 0) s->barrier();
  engine().forget(s);
  pool().forget(s);
  // Fence BC (docs/design.md §2): pairs with callback_batch::run()'s
  // increment and complete_batch()'s release decrement; without it the state
  // is freed while a complete_batch() still wakes or enqueues it.
  while (s->cb_completing.load(std::memory_order_acquire) != 0) sched_yield();
  if (s->driver.load(std::memory_order_acquire)) {
    die(s->name, "destroyed while a thread is inside synchronize() on it");
  }
  // Callbacks that ran just now may have been readers of this domain.
  if (callbacks_ran) s->check_no_readers_at_destruction();
  registry_remove(id_);
  lockdep_forget_domain(this);
  for (std::uint32_t i = 0; i <= shard_mask_; ++i) shards_[i].~shard_block();
  s->~domain_state();
  ::operator delete(s, std::align_val_t{64});
}

const char* domain::name() const noexcept { return state_->name; }

bool domain::in_reader() const noexcept { return state_->thread_in_reader(); }

std::size_t domain::reader_slots() const noexcept {
  std::size_t n = 0;
  for (slot_chunk* c = state_->chunks.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    n += c->count;
  }
  return n;
}

counter_block* domain::register_reader() { return register_thread_slot(state_, id_); }

void domain::unlock_without_lock() const noexcept {
  die(state_->name, "unlock() without a matching lock() on this thread (unlock() called once "
                    "too often; a std::scoped_lock/unique_lock released twice?)");
}

void domain::check_unlock(read_token token, flavour f) const noexcept {
  const char* const dname = state_->name;
  if (token.raw_ == 0) {
    message m;
    m << "srcu: domain '" << dname << "': " << unlock_name(f)
      << " without a matching lock (default-constructed token, or unlock() without lock())";
    die(m);
  }
  const std::uintptr_t tf = (token.raw_ & kFlavourMask) >> kFlavourShift;
  if (tf != f) {
    message m;
    m << "srcu: domain '" << dname << "': " << unlock_name(f) << " given a token from "
      << flavour_name(tf) << "; use " << unlock_name(tf);
    die(m);
  }
  auto* block = reinterpret_cast<const counter_pair*>(token.raw_ & kBlockMask);
  if (block->domain != this) {
    message m;
    m << "srcu: domain '" << dname << "': " << unlock_name(f)
      << " given a token of another domain ('"
      << static_cast<const domain*>(block->domain)->name() << "')";
    die(m);
  }
  const unsigned idx = token.raw_ & kIndexBit;
  if (f == kThreadFlavour &&
      static_cast<const counter_block*>(block)->owner != current_thread_record()) {
    die(dname, "read_unlock() on another thread than its read_lock() (use down_read()/up_read() "
               "to end a section on another thread)");
  }
  // Unlocks first: every unlock counted has its lock before it, so a block
  // whose locks do not exceed its unlocks has no section left to end.
  const std::uint64_t unlocks = block->unlocks[idx].load(std::memory_order_acquire);
  const std::uint64_t locks = block->locks[idx].load(std::memory_order_acquire);
  if (static_cast<std::int64_t>(locks - unlocks) <= 0) {
    message m;
    m << "srcu: domain '" << dname << "': " << unlock_name(f)
      << " without a matching lock (token unlocked twice?)";
    die(m);
  }
}

}  // namespace srcu
