// fork() without exec(): the child keeps using every domain with no call from
// the user. All of srcu's fork logic is here, in one order:
//
// prepare (in the lock order, domain_state.h): the deadlock detector's
//   mutex (a leaf, debug builds), the engine's service mutex, the callback
//   pool's, the registry's, then every domain mutex. No lock is then held by
//   a thread that will not exist in the child, and no library thread is
//   half-started or half-ended (library_thread.h).
//   Taking them goes through each singleton's accessor (a function-local
//   static), which waits for a construction in flight, so none is left
//   half-built. Anything else created lazily, on any thread, is created by
//   compare-and-swap or as an idempotent atomic cache (rcu_default_domain(),
//   DEFINE_SRCU()'s domains, the shard layout, the fault threshold), never
//   as a function-local static: a guard "in progress" at fork() stays so in
//   the child for good.
// parent: everything released in reverse.
// child: only the forking thread exists.
//   1. the heavy barrier re-registers for the child's membarrier;
//   2. the engine absorbs its pending kicks and the pool empties its run
//      queue (their threads are gone; nothing is restarted yet);
//   3. the registry ends, on the books, the read_lock() sections of every
//      vanished thread and recycles their slots (the forking thread's own
//      sections go on);
//   4. every domain, layer by layer (domain_child_after_fork below):
//      readers (the shards' sections, which no thread can be named for, are
//      ended), grace periods (a vanished updater may have been driving or
//      waiting), callbacks (inherited ones run in the parent: the child's
//      copies are discarded), the links to the library threads; then its
//      mutex is released and the grace periods start_poll() asked for are
//      handed to the engine;
//   5. only now the engine thread and the first callback worker start
//      (started earlier, the engine drained the parent's staged callbacks
//      and ran them in the child: found by srcu-torture --fork);
//   6. the deadlock detector forgets the vanished threads' edges.
//
// The analysis of mutex.h cannot follow locks taken in one handler and
// released in another, so the handlers are not analysed; the layers'
// child_after_fork() functions require the domain mutex, and
// domain_child_after_fork() asserts it (debug builds).

#include <pthread.h>

#include <mutex>

#include "callback_pool.h"
#include "domain_state.h"
#include "heavy_barrier.h"
#include "lockdep.h"
#include "service.h"

namespace srcu::detail {

namespace {

void lock_domain(domain_state* d) noexcept SRCU_NO_LOCK_ANALYSIS { d->mutex.lock(); }
void unlock_domain(domain_state* d) noexcept SRCU_NO_LOCK_ANALYSIS { d->mutex.unlock(); }

// Step 4, for one domain.
void domain_child_after_fork(domain_state* d) noexcept SRCU_NO_LOCK_ANALYSIS {
  d->mutex.assert_held();
  d->reader_side::child_after_fork();
  d->grace_periods::child_after_fork();
  d->callback_queue::child_after_fork();
  // The library threads' bookkeeping: a vanished thread may have been
  // inside kick() between setting a flag and pushing (the engine absorbed
  // its pending stack in step 2), or stepping or serving this domain.
  service_slot& s = d->engine_slot;
  s.busy = false;
  s.rekicked = false;
  s.step_again_at_ns = 0;
  s.retry_floor_ns = 0;
  state_maker::node(*d->self).queued.store(false, std::memory_order_relaxed);
  const bool dying = d->delivery.dying;
  d->delivery = pool_entry{};
  d->delivery.owner = d;
  d->delivery.dying = dying;
  d->mutex.unlock();
  if (d->requested_not_done()) engine().kick(d);
}

// Step 4, for a domain whose state was never made: what call() staged in
// the parent runs there (the child's copies are discarded, as in
// callback_queue::child_after_fork(), and so are their tickets: nothing
// counted them yet); shared sections of vanished threads are ended; a
// start_poll() or shared section that asked the engine asks again.
void unborn_child_after_fork(domain* d) noexcept {
  shard_block& small = *state_maker::born_shards(*d);
  balance(&small);
  small.staged.store(nullptr, std::memory_order_relaxed);
  small.enqueued.store(0, std::memory_order_relaxed);
  kick_node& n = state_maker::node(*d);
  n.queued.store(false, std::memory_order_relaxed);
  n.next = nullptr;
  const std::uint8_t asks = n.asks.fetch_and(static_cast<std::uint8_t>(~kick_node::kAskCallbacks),
                                             std::memory_order_relaxed) &
                            static_cast<std::uint8_t>(~kick_node::kAskCallbacks);
  if (asks != 0) engine().kick(d);
}

void prepare() noexcept SRCU_NO_LOCK_ANALYSIS {
  lockdep_prepare_fork();
  engine().prepare_fork();
  pool().prepare_fork();
  registry_prepare_fork(&lock_domain);
}

void parent() noexcept SRCU_NO_LOCK_ANALYSIS {
  registry_parent_after_fork(&unlock_domain);
  pool().parent_after_fork();
  engine().parent_after_fork();
  lockdep_parent_after_fork();
}

void child() noexcept SRCU_NO_LOCK_ANALYSIS {
  heavy_barrier_reinit_after_fork();                   // 1
  engine().child_after_fork();                         // 2
  pool().child_after_fork();
  registry_child_after_fork(&domain_child_after_fork, &unborn_child_after_fork);  // 3, 4
  engine().restart_after_fork();                       // 5
  pool().restart_after_fork();
  lockdep_child_after_fork();                          // 6
}

}  // namespace

void install_fork_handlers() noexcept {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(&prepare, &parent, &child); });
}

}  // namespace srcu::detail
