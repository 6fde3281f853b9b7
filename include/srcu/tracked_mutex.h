/// @file tracked_mutex.h
/// @brief srcu::tracked_mutex: a mutex the deadlock detector knows about.
///
/// In debug builds (and with the CMake option SRCU_DEBUG=ON) srcu records
/// which waits happen while what is held, lockdep-style, and aborts with a
/// report naming every domain and mutex of the first cycle it sees — the
/// first time both halves of an AB-BA have *run*, even if their timing never
/// overlapped. A tracked_mutex is a std::mutex that takes part:
///
/// @code
///   srcu::tracked_mutex sched_lock("sched");
///   // thread 1: a reader of `dom` takes the lock       -> edge dom -> sched
///   { srcu::read_guard g(dom); std::lock_guard l(sched_lock); }
///   // thread 2: synchronize() with the lock held       -> edge sched -> dom: cycle, report, abort
///   { std::lock_guard l(sched_lock); dom.synchronize(); }
/// @endcode
///
/// Edges recorded (A, B: domains; M, N: tracked mutexes):
///  - synchronize*(), cond_synchronize() or barrier() on B inside a reader of
///    A (read_lock/lock/read_guard, or read_lock_signal_safe() in debug
///    code): A -> B;
///  - locking M inside a reader of A: A -> M;  locking N with M held: M -> N;
///  - synchronize*() or barrier() on A with M held: M -> A;
///  - inside a callback (or executor submit()) of A: locking M adds
///    "A's callbacks" -> M, waiting for B adds "A's callbacks" -> B;
///  - barrier() (and ~domain()) on A also waits for "A's callbacks": with M
///    held, M -> "A's callbacks".
/// Readers of the same domain around its own synchronize() are reported at
/// once (always, not only in debug builds: see domain.h). down_read()
/// sections are not tracked (another thread may end them).
///
/// Cost when off (release builds without SRCU_DEBUG): lock() is
/// std::mutex::lock() behind one call; nothing is recorded anywhere. When
/// on: lock() and each wait look at the calling thread's reader slots (under
/// the library's registry lock, briefly), noted signal-safe sections, held
/// mutexes and running callbacks; a new edge takes the detector's lock,
/// allocates it and searches the graph. The reader
/// fast path records nothing. Edges of a domain or mutex are dropped when it
/// is destroyed.
///
/// Lock order: the detector's lock is a leaf, never held while calling out.
#pragma once

#include <mutex>

namespace srcu {

/// A std::mutex that the deadlock detector knows about. Lockable: works
/// with std::lock_guard, std::unique_lock and std::scoped_lock.
class tracked_mutex {
 public:
  /// A mutex named "tracked_mutex" in reports.
  tracked_mutex() noexcept : tracked_mutex("tracked_mutex") {}
  /// @p name is shown in deadlock reports; the pointer must outlive the mutex.
  explicit tracked_mutex(const char* name) noexcept : name_(name) {}
  ~tracked_mutex();
  tracked_mutex(const tracked_mutex&) = delete;
  tracked_mutex& operator=(const tracked_mutex&) = delete;

  /// Locks; in debug builds first records (and checks) what the wait depends on.
  void lock();
  /// Never waits, so records no edge; a success is held like lock().
  bool try_lock();
  /// Unlocks (the calling thread holds it); forgets it as held.
  void unlock();

  /// The name given at construction.
  [[nodiscard]] const char* name() const noexcept { return name_; }

 private:
  std::mutex mutex_;
  const char* name_;
};

}  // namespace srcu
