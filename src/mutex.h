// The library's mutex: std::mutex with Clang thread-safety annotations, so
// the lock rules are checked at compile time (the `thread-safety` preset
// builds with -Wthread-safety -Werror), and, where the annotations cannot
// follow (a function reached through a pointer, the fork handlers),
// assert_held() checks them at run time in debug builds.
//
//   mutex m;                          a capability
//   int x SRCU_GUARDED_BY(m);         read or written only with m held
//   void f_locked() SRCU_REQUIRES(m); called only with m held
//   mutex_lock lk(m);                 scoped: held to the end of the block
//
// Each mutex's place in the lock order is written at its declaration
// (domain_state.h lists the whole order).
#pragma once

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "srcu/detail/config.h"

#if defined(__clang__)
#define SRCU_TSA(x) __attribute__((x))
#else
#define SRCU_TSA(x)
#endif
#define SRCU_CAPABILITY(name) SRCU_TSA(capability(name))
#define SRCU_SCOPED_CAPABILITY SRCU_TSA(scoped_lockable)
#define SRCU_GUARDED_BY(m) SRCU_TSA(guarded_by(m))
#define SRCU_PT_GUARDED_BY(m) SRCU_TSA(pt_guarded_by(m))
#define SRCU_REQUIRES(...) SRCU_TSA(requires_capability(__VA_ARGS__))
#define SRCU_ACQUIRE(...) SRCU_TSA(acquire_capability(__VA_ARGS__))
#define SRCU_RELEASE(...) SRCU_TSA(release_capability(__VA_ARGS__))
#define SRCU_EXCLUDES(...) SRCU_TSA(locks_excluded(__VA_ARGS__))
#define SRCU_ASSERT_HELD(m) SRCU_TSA(assert_capability(m))
// For the few functions whose locking the analysis cannot express (the fork
// handlers take every lock in one function and release them in another);
// each use says why.
#define SRCU_NO_LOCK_ANALYSIS SRCU_TSA(no_thread_safety_analysis)

namespace srcu::detail {

[[noreturn]] void die_lock_not_held(const void* m) noexcept;  // diagnostics.cc

class SRCU_CAPABILITY("mutex") mutex {
 public:
  void lock() SRCU_ACQUIRE() {
    m_.lock();
    note_owner(this_thread());
  }
  void unlock() SRCU_RELEASE() {
    note_owner(nullptr);
    m_.unlock();
  }
  // Waits on cv until pred() holds, releasing this mutex while it sleeps
  // (std::condition_variable::wait). A plain condition variable, not
  // std::condition_variable_any: that one locks a mutex of its own in
  // notify_all(), which a thread could hold across another thread's fork(),
  // leaving it locked for ever in the child.
  template <class Pred>
  void wait(std::condition_variable& cv, Pred pred) SRCU_REQUIRES(this) {
    note_owner(nullptr);
    std::unique_lock<std::mutex> lk(m_, std::adopt_lock);
    cv.wait(lk, pred);
    lk.release();  // still held: the caller's lock goes on
    note_owner(this_thread());
  }

  // Debug builds: aborts unless the calling thread holds this mutex. The
  // analysis then treats it as held for the rest of the function.
  void assert_held() const SRCU_ASSERT_HELD(this) {
#if SRCU_DEBUG
    if (owner_.load(std::memory_order_relaxed) != this_thread()) die_lock_not_held(this);
#endif
  }

 private:
  // The thread's identity for the owner check: the address of a
  // thread_local, which (unlike its tid) the forking thread keeps in the fork
  // child, where it still holds every lock taken by the prepare handler.
  static const void* this_thread() noexcept {
    static thread_local const char marker = 0;
    return &marker;
  }
  void note_owner([[maybe_unused]] const void* t) noexcept {
#if SRCU_DEBUG
    owner_.store(t, std::memory_order_relaxed);
#endif
  }

  std::mutex m_;
#if SRCU_DEBUG
  std::atomic<const void*> owner_{nullptr};  // written only by the holder
#endif
};

// std::lock_guard / std::unique_lock for srcu::detail::mutex, annotated.
class SRCU_SCOPED_CAPABILITY mutex_lock {
 public:
  explicit mutex_lock(mutex& m) SRCU_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~mutex_lock() SRCU_RELEASE() {
    if (held_) m_.unlock();
  }
  mutex_lock(const mutex_lock&) = delete;
  mutex_lock& operator=(const mutex_lock&) = delete;

  // Released and taken again within the scope (to call out, or to sleep).
  void unlock() SRCU_RELEASE() {
    m_.unlock();
    held_ = false;
  }
  void lock() SRCU_ACQUIRE() {
    m_.lock();
    held_ = true;
  }

 private:
  mutex& m_;
  bool held_ = true;
};

}  // namespace srcu::detail
