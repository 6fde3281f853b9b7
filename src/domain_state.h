// The compiled side of a domain, in four layers, each owning its fields
// privately and using only the public functions of the layers below it
// (like the kernel's srcu_data/srcu_usage split, one step further):
//
//   domain_core      identity, name, the domain mutex          readers.h
//   reader_side      slots, shards' counters, reader scans      readers.h, reader_slots.cc
//   grace_periods    sequence, driver, waiters, stalls          grace_periods.h, grace_period.cc, stall.cc
//   callback_queue   staging, segments, batches, barrier()      callback_queue.h, callbacks.cc
//   domain_state     the links to the library threads (engine   this file, domain.cc
//                    and callback pool) and the engine's step
//
// The whole is made on a domain's first use, not with it (state_maker below;
// docs/design.md 1.7 "Memory"): until then the public object and its small
// shard block are all there is.
//
// Each layer that keeps state across fork() has child_after_fork(); fork.cc
// calls them in one documented order. Other rooms: service.cc (the engine
// thread), callback_pool.cc (the callback workers), stall.cc (stall reports,
// statistics), lockdep.cc (the deadlock detector), trace.h (USDT probes),
// srcu_c.cc (the C API), heavy_barrier.cc (membarrier and its fallback).
//
// Lock order (outermost first); no library lock is held while srcu calls out
// (user callbacks, executors, wake-ups, stall reports):
//   engine's service mutex (service.h) -> registry mutex (reader_slots.cc)
//     -> domain mutex (domain_core::mutex, one per domain)
//   (the engine makes a state with its service mutex held, and publishes
//   it under the registry mutex)
//   callback pool mutex (callback_pool.h): a leaf, taken with no other
//   library lock held (fork's prepare handler takes it after the service
//   mutex, before the registry)
//   deadlock detector mutex (lockdep.cc, debug builds): a leaf, taken by user
//   threads before they wait, never with another library lock held (fork's
//   prepare handler takes it first)
// The rules are annotated (mutex.h) and checked by clang's -Wthread-safety
// in the `thread-safety` build.
#pragma once

#include "callback_pool.h"
#include "callback_queue.h"
#include "diagnostics.h"
#include "service.h"
#include "srcu/diagnostics.h"

namespace srcu::detail {

struct domain_state final : callback_queue {
  domain_state(domain* self, const domain_options& options, shard_block* small_shard);

  // Null until made (domain::made_state(), state_maker::create()).
  static domain_state* of(domain& d) noexcept { return d.state(); }

  // The engine's step for this domain (service.h): stage callbacks into
  // segments, drive the grace period as far as it goes without waiting,
  // hand ready callbacks to the callback pool. Never blocks and never runs
  // user code; kRetry when readers are still inside.
  service_result engine_step() noexcept;

  domain_stats stats() const noexcept;

  // The library threads' bookkeeping of this domain; each is guarded by its
  // service's (or the pool's) mutex. fork.cc resets both in the child.
  service_slot engine_slot;
  pool_entry delivery;
};

// domain_options other than the defaults, kept by the domain from its
// construction until its state is created on first use (and after, for
// the name). Allocated only when some option differs: a domain with the
// defaults keeps none. The name's bytes follow the struct.
struct saved_options {
  domain_options options;  // options.name points at name_bytes()
  char* name_bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
};

// A domain's compiled side is created on first use (domain.cc): the first
// read_lock() on a thread, an updater call, or, for what may not allocate
// (call(), start_poll(), a first signal-safe section: they set a bit in the
// domain's kick_node and kick), by the engine when it takes the kick. The
// one door to the public object's fields that this needs.
struct state_maker {
  static domain_state* state(const domain& d) noexcept { return d.state(); }
  static kick_node& node(domain& d) noexcept { return d.kick_; }
  // Creates and publishes d's state unless one exists; returns the one
  // that does. Allocates (outside every library lock but the caller's),
  // then publishes under the registry mutex, so that fork()'s prepare
  // handler, which holds it, sees every state there is. Out of memory:
  // a message naming the domain, then abort (the caller may not throw).
  static domain_state* create(domain& d) noexcept;
  static void ask(domain& d, std::uint8_t what) noexcept { d.ask_engine(what); }
  static domain_state& made(domain& d) { return d.made_state(); }  // created first if need be
  // Fence SP: the release store that makes a state visible; pairs with
  // domain::state()'s acquire load. Without it a thread that finds the
  // pointer could read the state's fields before their construction.
  static void publish(domain& d, domain_state* s) noexcept {
    d.state_.store(s, std::memory_order_release);
  }
  // The engine, having taken d's kick with d's state made: acts on the
  // bits the stateless paths set (kick_node::asks).
  static void act_on_asks(domain& d, domain_state& s) noexcept;
  // The small shard block a domain is born with, whether or not its state
  // is made or its table grown meanwhile. The table first: a grown table
  // (Fence ST, acquire) was published after the state (Fence SP), so the
  // state load after it finds the state; while the table is small, its
  // first block is the small one. (The table alone read after a null state
  // could be a table grown since: a false "unlocked twice" abort in TSan
  // srcu-torture found it.)
  static shard_block* born_shards(const domain& d) noexcept;
};

inline shard_block* state_maker::born_shards(const domain& d) noexcept {
  shard_block* const first = decode_shards(d.shards_.load(std::memory_order_acquire)).first;
  const domain_state* s = d.state();
  return s != nullptr ? s->small_shard : first;
}

inline domain_state* domain_core::whole() noexcept { return static_cast<domain_state*>(this); }
inline const domain_state* domain_core::whole() const noexcept {
  return static_cast<const domain_state*>(this);
}

}  // namespace srcu::detail
