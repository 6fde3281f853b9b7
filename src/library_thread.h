// Starting the library's own threads (the engine, the callback workers) so
// that fork() never copies one of them half-started.
//
// A thread that is starting (or ending) when another thread calls fork() may
// be inside its runtime's allocator. glibc's malloc is fork-safe, but the
// GCC 12 AddressSanitizer runtime takes no allocator lock around fork(): a
// library thread still in its start-up allocations left that lock held in
// the child, and every thread the child then started blocked on it for ever
// (a process that forked right after constructing its first domain hung in
// 11 of 100 tries under ASan; CI caught it in
// CallbackFork.ParentCallbacksRunOnceInParentAndChildCanCallAndBarrier).
//
// So each service counts the threads it has created that have not yet run
// their first line, and its prepare_fork handler, holding the mutex under
// which it creates threads (so no new one starts), waits for that count to
// reach zero. Thread start-up takes microseconds; the wait is a yield loop.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>

namespace srcu::detail {

class start_gate {
 public:
  // Creates a thread named `name` running main(arg); main must call
  // started() first. Returns pthread_create's result.
  int create(pthread_t* thread, void* (*main)(void*), void* arg, const char* name) noexcept {
    starting_.fetch_add(1, std::memory_order_relaxed);
    const int rc = pthread_create(thread, nullptr, main, arg);
    if (rc != 0) {
      started();
      return rc;
    }
    pthread_setname_np(*thread, name);
    return 0;
  }
  // The new thread's first line: its runtime start-up is over.
  void started() noexcept { starting_.fetch_sub(1, std::memory_order_release); }
  // prepare_fork, with the creating mutex held.
  void wait_all_started() const noexcept {
    while (starting_.load(std::memory_order_acquire) != 0) sched_yield();
  }

 private:
  std::atomic<std::uint32_t> starting_{0};
};

}  // namespace srcu::detail
