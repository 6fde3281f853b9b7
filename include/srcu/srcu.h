/// @file srcu.h
/// @brief srcu — sleepable read-copy-update for C++20. The umbrella header.
///
/// @code
///   #include <srcu/srcu.h>
/// @endcode
///
/// brings in srcu::domain (readers, grace periods, polling, callbacks),
/// srcu::read_guard, srcu::read_token, srcu::poll_cookie, srcu::callback_head
/// and executors, the C++26-shaped rcu_* layer, stall reports and statistics
/// (diagnostics.h) and the deadlock detector's tracked_mutex. Start with domain.h; the
/// algorithm and its proof are in docs/design.md.
#pragma once

#include "srcu/callback.h"
#include "srcu/diagnostics.h"
#include "srcu/domain.h"
#include "srcu/poll_cookie.h"
#include "srcu/rcu.h"
#include "srcu/rcu_ptr.h"
#include "srcu/read_guard.h"
#include "srcu/read_token.h"
#include "srcu/reclaim_list.h"
#include "srcu/tracked_mutex.h"
#include "srcu/version.h"
