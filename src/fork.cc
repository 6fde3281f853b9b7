// fork() without exec(): the child keeps using every domain with no call from
// the user. Every internal lock is taken in the prepare handler (in the lock
// order) and released in both parent and child, so no lock is left held by a
// thread that does not exist in the child. In the child the vanished threads'
// readers are balanced (never zeroed) and the engine thread and the callback
// pool are restarted (one worker).

#include <pthread.h>

#include <mutex>

#include "callback_pool.h"
#include "domain_state.h"
#include "heavy_barrier.h"
#include "lockdep.h"
#include "service.h"

namespace srcu::detail {

namespace {

void prepare() noexcept {
  lockdep_prepare_fork();  // a leaf; debug builds only
  engine().prepare_fork();
  pool().prepare_fork();
  registry_prepare_fork();
}

void parent() noexcept {
  registry_parent_after_fork();
  pool().parent_after_fork();
  engine().parent_after_fork();
  lockdep_parent_after_fork();
}

// Services first: they absorb their pending stacks, which
// registry_child_after_fork relies on before it clears every kick flag,
// discards inherited callbacks (they run in the parent) and re-kicks. Only
// then do the new library threads start.
void child() noexcept {
  heavy_barrier_reinit_after_fork();
  engine().child_after_fork();
  pool().child_after_fork();
  registry_child_after_fork();
  engine().restart_after_fork();
  pool().restart_after_fork();
  lockdep_child_after_fork();
}

}  // namespace

void install_fork_handlers() noexcept {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(&prepare, &parent, &child); });
}

}  // namespace srcu::detail
