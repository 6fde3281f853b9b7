#include "srcu/rcu.h"

#include "domain_state.h"

namespace srcu {

domain& rcu_default_domain() noexcept {
  // Created on first use by compare-and-swap, as DEFINE_SRCU()'s are
  // (srcu_c.cc), not as a function-local static: a fork() while another
  // thread constructs it would leave the static's guard "in progress" in the
  // child, and the child's first use would block for good. Leaked on
  // purpose: objects retired from static destructors still work.
  static constinit std::atomic<domain*> the_domain{nullptr};
  // Fence U1 (docs/design.md §2): acquire pairs with the CAS below; without
  // it a caller uses a domain whose construction it does not see.
  domain* d = the_domain.load(std::memory_order_acquire);
  if (SRCU_LIKELY(d != nullptr)) return *d;
  auto* fresh = new domain({.name = "rcu_default"});
  // Fence U1 (docs/design.md §2): release publishes the constructed domain.
  if (the_domain.compare_exchange_strong(d, fresh, std::memory_order_acq_rel, std::memory_order_acquire)) {
    return *fresh;
  }
  delete fresh;  // another thread's came first; an unused domain costs no wait
  return *d;
}

void rcu_synchronize(domain& d) noexcept {
  d.synchronize();  // readers first (checks: not inside a reader of d)
  detail::domain_state* const s = detail::domain_state::of(d);  // made by synchronize()
  if (s->running_own_callbacks()) {
    s->run_queued_inline();  // false inside submit(): readers only, as documented
  } else {
    s->barrier();
  }
}

}  // namespace srcu
