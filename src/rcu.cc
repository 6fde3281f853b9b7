#include "srcu/rcu.h"

namespace srcu {

domain& rcu_default_domain() noexcept {
  // Leaked on purpose: objects retired from static destructors still work.
  static domain* d = new domain({.name = "rcu_default"});
  return *d;
}

}  // namespace srcu
