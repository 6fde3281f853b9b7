// srcu — sleepable read-copy-update for C++20. The umbrella header.
//
//   #include <srcu/srcu.h>
//
// brings in srcu::domain (readers, grace periods, polling, callbacks),
// srcu::read_guard, srcu::read_token, srcu::poll_cookie, srcu::callback_head
// and executors, and the C++26-shaped rcu_* layer. Start with domain.h; the
// algorithm and its proof are in docs/design.md.
#pragma once

#include "srcu/callback.h"
#include "srcu/domain.h"
#include "srcu/poll_cookie.h"
#include "srcu/rcu.h"
#include "srcu/rcu_ptr.h"
#include "srcu/read_guard.h"
#include "srcu/read_token.h"
#include "srcu/version.h"
