#include "srcu/rcu.h"

#include "domain_state.h"

namespace srcu {

domain& rcu_default_domain() noexcept {
  // Leaked on purpose: objects retired from static destructors still work.
  static domain* d = new domain({.name = "rcu_default"});
  return *d;
}

void rcu_synchronize(domain& d) noexcept {
  d.synchronize();  // readers first (checks: not inside a reader of d)
  detail::domain_state* const s = detail::domain_state::of(d);
  if (s->running_own_callbacks()) {
    s->run_queued_inline();  // false inside submit(): readers only, as documented
  } else {
    s->barrier();
  }
}

}  // namespace srcu
