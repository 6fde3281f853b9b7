// srcu — sleepable read-copy-update for C++20. The umbrella header.
//
//   #include <srcu/srcu.h>
//
// brings in srcu::domain (readers, grace periods, polling), srcu::read_guard,
// srcu::read_token and srcu::poll_cookie. Start with domain.h; the algorithm
// and its proof are in docs/design.md.
#pragma once

#include "srcu/domain.h"
#include "srcu/poll_cookie.h"
#include "srcu/read_guard.h"
#include "srcu/read_token.h"
#include "srcu/version.h"
