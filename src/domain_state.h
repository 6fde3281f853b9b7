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

  static domain_state* of(domain& d) noexcept { return d.state_; }

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

inline domain_state* domain_core::whole() noexcept { return static_cast<domain_state*>(this); }
inline const domain_state* domain_core::whole() const noexcept {
  return static_cast<const domain_state*>(this);
}

}  // namespace srcu::detail
