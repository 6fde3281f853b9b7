// Domain construction and destruction, the read_lock slow path, token checks.

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "diagnostics.h"
#include "domain_state.h"
#include "heavy_barrier.h"
#include "service.h"

namespace srcu::detail {

void install_fork_handlers() noexcept;  // fork.cc

domain_state::domain_state(domain* s, const domain_options& options)
    : self(s),
      name(options.name != nullptr ? options.name : "srcu"),
      stall_timeout(options.stall_timeout) {
  cb_executor = options.callback_executor;
  engine_slot.node.owner = this;
  callback_slot.node.owner = this;
}

domain_state::~domain_state() {
  delete[] cb_shards;
  slot_chunk* c = chunks.load(std::memory_order_relaxed);
  while (c != nullptr) {
    slot_chunk* next = c->next;
    delete[] c->slots;
    delete c;
    c = next;
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

domain::domain(const domain_options& options) {
  heavy_barrier_init();
  install_fork_handlers();
  const std::uint32_t shards = shard_count_for_machine();
  shards_ = new counter_block[shards];
  for (std::uint32_t i = 0; i < shards; ++i) shards_[i].domain = this;
  shard_mask_ = shards - 1;
  state_ = new domain_state(this, options);
  state_->shard_count = shards;
  state_->cb_shards = new domain_state::callback_shard[shards];
  state_->cb_shard_mask = shards - 1;
  id_ = registry_add(state_);
  engine().start();
  callback_thread().start();
}

domain::~domain() {
  if (state_->thread_in_reader()) {
    die(state_->name, "destroyed inside one of its own read-side critical sections");
  }
  state_->barrier();  // every queued callback runs; none is lost
  engine().forget(state_);
  callback_thread().forget(state_);
  while (state_->cb_completing.load(std::memory_order_acquire) != 0) sched_yield();
  if (state_->driver.load(std::memory_order_acquire)) {
    die(state_->name, "destroyed while a thread is inside synchronize() on it");
  }
  for (unsigned idx = 0; idx < 2; ++idx) {
    if (!state_->readers_idle(idx)) {
      message m;
      m << "srcu: domain '" << state_->name << "': destroyed while "
        << state_->last_active.load(std::memory_order_relaxed)
        << " reader(s) are still inside a read-side critical section";
      die(m);
    }
  }
  registry_remove(id_);
  delete state_;
  delete[] shards_;
}

const char* domain::name() const noexcept { return state_->name; }

std::size_t domain::reader_slots() const noexcept {
  std::size_t n = 0;
  for (slot_chunk* c = state_->chunks.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    n += c->count;
  }
  return n;
}

counter_block* domain::register_reader() { return register_thread_slot(state_, id_); }

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
  auto* block = reinterpret_cast<const counter_block*>(token.raw_ & kBlockMask);
  if (block->domain != this) {
    message m;
    m << "srcu: domain '" << dname << "': " << unlock_name(f)
      << " given a token of another domain ('"
      << static_cast<const domain*>(block->domain)->name() << "')";
    die(m);
  }
  const unsigned idx = token.raw_ & kIndexBit;
  if (f == kThreadFlavour && block->owner != current_thread_record()) {
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
