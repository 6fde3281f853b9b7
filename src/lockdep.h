// The deadlock detector (include/srcu/tracked_mutex.h): lockdep for domains.
// Compiled in when the library is built with SRCU_DEBUG (debug builds, or
// the CMake option); otherwise every hook below is an empty inline function.
#pragma once

#include "srcu/detail/config.h"

namespace srcu {
class domain;
class tracked_mutex;
}

namespace srcu::detail {

struct domain_state;

inline constexpr bool kLockdep = SRCU_DEBUG != 0;

#if SRCU_DEBUG
// The calling thread is about to wait for the grace period of `target`,
// named `name` (and, with `callbacks`, for its callbacks): records an edge
// from everything it holds. The domain need not have its state yet.
void lockdep_wait(const domain* target, const char* name, const char* op, bool callbacks) noexcept;
void lockdep_lock(tracked_mutex* m) noexcept;     // before blocking on m
void lockdep_acquired(tracked_mutex* m) noexcept;  // try_lock succeeded
void lockdep_unlock(tracked_mutex* m) noexcept;
void lockdep_forget_domain(const domain* d) noexcept;  // ~domain
void lockdep_forget_mutex(const tracked_mutex* m) noexcept;
void lockdep_prepare_fork() noexcept;
void lockdep_parent_after_fork() noexcept;
void lockdep_child_after_fork() noexcept;
#else
inline void lockdep_wait(const domain*, const char*, const char*, bool) noexcept {}
inline void lockdep_lock(tracked_mutex*) noexcept {}
inline void lockdep_acquired(tracked_mutex*) noexcept {}
inline void lockdep_unlock(tracked_mutex*) noexcept {}
inline void lockdep_forget_domain(const domain*) noexcept {}
inline void lockdep_forget_mutex(const tracked_mutex*) noexcept {}
inline void lockdep_prepare_fork() noexcept {}
inline void lockdep_parent_after_fork() noexcept {}
inline void lockdep_child_after_fork() noexcept {}
#endif

}  // namespace srcu::detail
