// The library's own threads (the engine, the callback workers) and fork():
// fork() must never copy one of them half-started or half-ended.
//
// A thread that is starting or ending when another thread calls fork() may be
// inside its runtime's allocator. glibc's malloc is fork-safe, but the GCC 12
// AddressSanitizer runtime takes no allocator lock around fork(): a library
// thread still in its start-up allocations left that lock held in the child,
// and every thread the child then started blocked on it for ever (a process
// that forked right after constructing its first domain hung in 11 of 100
// tries under ASan; CI caught it in
// CallbackFork.ParentCallbacksRunOnceInParentAndChildCanCallAndBarrier). A
// thread's exit frees its allocator cache, so the same holds at the end.
//
// So each service keeps a thread_gate: the threads it created that have not
// yet run their first line, and those that announced they are leaving and
// still exist. Its prepare_fork handler, holding the mutex under which it
// creates threads and under which they announce leaving (so the gate cannot
// change), waits until both are none. Start-up and exit take microseconds.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace srcu::detail {

class thread_gate {
 public:
  static constexpr std::uint32_t kMaxLeaving = 64;

  // Creates a detached thread named `name` running main(arg); main must
  // call started() first. Returns pthread_create's result.
  int create(void* (*main)(void*), void* arg, const char* name) noexcept {
    starting_.fetch_add(1, std::memory_order_relaxed);
    pthread_t thread;
    const int rc = pthread_create(&thread, nullptr, main, arg);
    if (rc != 0) {
      started();
      return rc;
    }
    pthread_setname_np(thread, name);
    pthread_detach(thread);
    return 0;
  }

  // The new thread's first line: its runtime start-up is over.
  void started() noexcept { starting_.fetch_sub(1, std::memory_order_release); }

  // The calling thread is about to return from its main function. Creator's
  // mutex held.
  void leaving() noexcept {
    prune(/*wait=*/leaving_count_ == kMaxLeaving);
    leaving_[leaving_count_++] = static_cast<pid_t>(::syscall(SYS_gettid));
  }

  // prepare_fork, with the creator's mutex held: no thread of this gate is
  // starting or ending across the fork.
  void settle() noexcept {
    while (starting_.load(std::memory_order_acquire) != 0) sched_yield();
    prune(/*wait=*/true);
  }

  // fork child: the threads do not exist there.
  void reset_in_child() noexcept {
    starting_.store(0, std::memory_order_relaxed);
    leaving_count_ = 0;
  }

 private:
  // Forgets the leavers that are gone; with `wait`, waits for all of them.
  // A thread is gone when tgkill(2) no longer finds it in this process: the
  // kernel unhashes it after its last user-space instruction. (Its tid could
  // be reused only after the kernel's pid counter wraps.)
  void prune(bool wait) noexcept {
    const int saved_errno = errno;  // prepare_fork runs inside fork()
    const pid_t self = ::getpid();
    std::uint32_t kept = 0;
    for (std::uint32_t i = 0; i < leaving_count_; ++i) {
      for (;;) {
        if (::syscall(SYS_tgkill, self, leaving_[i], 0) != 0) break;  // ESRCH: gone
        if (!wait) {
          leaving_[kept++] = leaving_[i];
          break;
        }
        sched_yield();
      }
    }
    leaving_count_ = kept;
    errno = saved_errno;
  }

  std::atomic<std::uint32_t> starting_{0};
  pid_t leaving_[kMaxLeaving] = {};  // creator's mutex
  std::uint32_t leaving_count_ = 0;  // creator's mutex
};

}  // namespace srcu::detail
