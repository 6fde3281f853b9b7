/// @file domain.h
/// @brief srcu::domain — a sleepable-RCU domain: its own readers, its own grace periods.
///
/// Readers mark read-side critical sections; an updater that has unpublished
/// an object waits for a grace period (every reader that began before the wait
/// has ended) and then reclaims it:
///
/// @code
///   srcu::domain dom({.name = "config"});
///   std::atomic<config*> current{new config};
///
///   // reader, any thread, may block inside
///   {
///     srcu::read_guard g(dom);
///     use(*current.load(std::memory_order_acquire));
///   }
///
///   // updater
///   config* old = current.exchange(new config(next), std::memory_order_acq_rel);
///   dom.synchronize();                 // or get_poll_cookie()/poll()
///   delete old;
/// @endcode
///
/// Why a domain, not one global RCU: a reader that blocks for seconds in domain
/// A delays only A's grace periods. Domains are cheap (no thread each; memory
/// under Overheads below) and may be created by the thousand.
///
/// When not to use it: for data written as often as it is read (a mutex is
/// simpler), or when readers must see the newest value at every instant.
///
/// Limitations.
///  - fork() without exec(): the child may keep using every domain. Callbacks
///    queued before fork() run in the parent only; the child's copies are
///    discarded (they would otherwise run twice). Readers
///    that other (vanished) threads held at the fork do not hold up the child;
///    the forking thread's own read_lock() sections continue in the child. A
///    signal-safe or down_read() section in flight at fork() is treated as
///    ended in the child (no thread there can end it): the forking thread must
///    not end one it began before fork(); doing so is reported as an unlock
///    without lock by the next grace period.
///  - Signals: a handler may use only the async-signal-safe calls:
///    read_lock_signal_safe()/read_unlock_signal_safe(), down_read()/up_read()
///    (and their guards in srcu/read_guard.h), call(head, func), in_reader()
///    and the polled start_poll()/get_poll_cookie()/poll(). Not read_lock()
///    (its first call of each domain on a thread may allocate), synchronize()
///    or barrier() (they wait), call(f) or retire() (they allocate).
///  - Thread exit inside a read_lock() section is a bug; it is reported.
///  - Exceptions: the constructors, call(f) and retire() throw std::bad_alloc
///    when allocation fails, and call(f) and retire() pass on what copying or
///    moving f or d throws. Every other member is noexcept. The first
///    read_lock() (or lock(), read_guard) of each domain on each thread may
///    allocate: a slot chunk for the domain, the thread's record, a larger
///    slot table for the thread. An allocation failure there calls
///    std::terminate. The domain's first read_lock(), synchronize*() or
///    cond_synchronize() (any thread's) makes its state (an
///    allocation; a failure: a message naming the domain, then abort). Later read_lock()s of that domain on that thread never
///    allocate; read_lock_signal_safe() and down_read() never allocate.
///
/// Overheads (one run of bench/run, 2026-12-06 04:05 UTC, a 2-vCPU AMD EPYC
/// VM, GCC 12.2 -O3; medians; every row in docs/perf/report.md, read in
/// docs/perf/README.md with the runs before it (this VM has phases: compare
/// ratios); 1-16 threads in docs/perf/scaling-16cpu/, an older commit):
///  read_lock, a read, read_unlock on one thread 1.06 ns (liburcu-memb's
///  inline pair 1.82 ns, 0.58x; 0.65-1.03x on 2-4 threads; a bare
///  thread-local load and store pair with the index load 0.94 ns); the
///  signal-safe and down/up pairs 1.51-2.29 ns (per-CPU counters in
///  restartable sequences; a bare lock-prefixed fetch_add/fetch_sub pair
///  12.0-12.6 ns on this CPU); synchronize_expedited 1.59 us with no reader
///  and 23.7 us with a reader spinning on the other CPU, one membarrier(2)
///  call either way (the readers' index load and increment are one
///  restartable sequence, so no scan of the inactive index; each barrier
///  shared with every scan of any domain that overlaps it; urcu-memb 2.79
///  and 49.4 us, two); 8 concurrent synchronize() callers with a reader
///  spinning 2.1x one caller's time per call (expedited 2.1x), sharing 0.15
///  grace periods per call (urcu-memb 6.7x); call() 19.9 ns (two
///  lock-prefixed RMWs).
///  A domain allocates 128 bytes at creation (its 64-byte object and one
///  64-byte shard block; 144 with its share of the registry's id table; a
///  copy of options other than the defaults adds 40 bytes and the name;
///  ck_epoch's object and record: 216). Its state (488 bytes: reader slots,
///  grace periods, callbacks) is made on first use: by the first read_lock()
///  on any thread, synchronize*(), cond_synchronize(), call(f) or retire()
///  (not barrier(): with nothing queued it has nothing to wait for); call(head, func), start_poll() and a first signal-safe or
///  down/up section, which may not allocate, have the engine make it. A
///  thread's first read adds its slot chunk, the first signal-safe or down/up
///  section or call() 64 bytes per possible CPU.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include "srcu/callback.h"
#include "srcu/diagnostics.h"
#include "srcu/detail/config.h"
#include "srcu/detail/percpu.h"
#include "srcu/detail/reader.h"
#include "srcu/poll_cookie.h"
#include "srcu/read_token.h"

namespace srcu {

namespace detail {
struct domain_state;
class domain_core;
struct c_api;
struct state_maker;
struct saved_options;
}

/// The settings of a domain, given to its constructor:
/// `srcu::domain dom({.name = "config"});`.
struct domain_options {
  const char* name = "srcu";  ///< shown in diagnostics; copied into the domain
  std::chrono::milliseconds stall_timeout{10'000};  ///< grace period this long -> stall report, repeated while it lasts (srcu/diagnostics.h); 0 = off
  /// Runs this domain's ready callbacks; nullptr: srcu's callback workers.
  /// Must outlive the domain. See srcu/callback.h.
  executor* callback_executor = nullptr;
  /// How long queued call()s wait for company: callbacks staged since the
  /// engine last took them start their grace period no sooner than this after
  /// it did (barrier() and ~domain() skip the wait). Each grace period costs
  /// one membarrier() call (with the readers' restartable sequences; without
  /// them two when a reader is inside), and each interrupts every CPU
  /// running this process's threads; batching keeps a steady stream of call()s from turning into
  /// tens of thousands of them per second. 0: a grace period per burst, at once.
  std::chrono::microseconds callback_delay{1000};
  /// Opt-in bound for the allocating forms call(F) and retire(): while this
  /// many of the domain's callbacks are queued and not yet run, they wait
  /// (hurrying the grace period) before queueing another. 0: no bound.
  /// call(head, func) never waits, whatever this says. Deadlock rule: do not
  /// call them on a bounded domain while holding a lock that one of its
  /// callbacks takes (as for synchronize()). Where waiting would wait for
  /// itself they go over the bound instead of waiting: inside a reader of
  /// this domain (folly#1211) and inside its own callbacks or submit().
  std::size_t callback_backlog_limit = 0;
};

/// A sleepable-RCU domain: its own readers, its own grace periods (an
/// example, its limitations and its overheads are in domain.h).
class domain {
 public:
  /// Effects: creates a domain; starts the library's engine thread and first
  ///   callback worker with the first domain of the process (no thread per
  ///   domain).
  /// Allocates: yes. Thread-safe.
  domain();
  /// @copydoc domain()
  explicit domain(const domain_options& options);
  /// The same with options.callback_executor = &callback_executor (folly's
  /// rcu_domain(Executor*)): this domain's callbacks run on that executor,
  /// which must outlive the domain.
  explicit domain(executor& callback_executor, domain_options options = {});

  /// Preconditions: no reader of any flavour is active (checked always, and
  ///   first: a message naming the domain, then abort; never a hang), no
  ///   thread is inside an updater call on this domain, not called from one
  ///   of its own callbacks or its executor's submit() (checked always).
  ///   Legal from any other domain's callback or executor, so retire() of an
  ///   object that owns a domain works.
  /// Effects: with nothing queued, returns without waiting. Otherwise runs
  ///   every queued callback, including those that callbacks queue on this
  ///   domain while it runs (none is lost, none runs after it returns), then
  ///   releases every slot. A callback that re-queues itself every time it
  ///   runs keeps the destructor waiting.
  ~domain();
  domain(const domain&) = delete;
  domain& operator=(const domain&) = delete;

  /// @name Readers
  /// @{

  /// read_lock: enters a read-side critical section on this thread. Nestable;
  ///   may be held across blocking calls. Wait-free: no atomic RMW, no fence
  ///   (the updater pays with membarrier). The first call on a thread for a
  ///   domain takes a slot (may allocate, takes a library lock; an allocation
  ///   failure calls std::terminate); later calls never allocate.
  /// read_unlock: ends it; the same thread, the token read_lock returned.
  /// Synchronizes-with: a synchronize() that waits for this reader returns
  ///   after read_unlock(); everything the reader read happens-before it.
  /// Async-signal-safe: no (use read_lock_signal_safe).
  [[nodiscard]] read_token read_lock() noexcept;
  /// @copydoc read_lock()
  void read_unlock(read_token token) noexcept;

  /// Signal-safe readers: no allocation, no thread-local state of srcu's, so
  /// usable in an async signal handler and on a thread that never used the
  /// domain. Pair only with each other. Each of lock and unlock adds 1 to a
  /// per-CPU counter: inside a restartable sequence, with no lock prefix,
  /// where the library runs per-CPU (x86-64 Linux, glibc's rseq registered,
  /// membarrier in use, at most 4096 possible CPUs, SRCU_NO_RSEQ unset);
  /// otherwise with one atomic RMW on a shared counter. A domain is born
  /// with one shared counter block: its first signal-safe or down/up
  /// section (or call()) has the engine add the per-CPU table, so the first
  /// sections pay an atomic RMW. Lock-free. Async-signal-safe: yes.
  /// Allocates: no.
  [[nodiscard]] read_token read_lock_signal_safe() noexcept;
  /// @copydoc read_lock_signal_safe()
  void read_unlock_signal_safe(read_token token) noexcept;

  /// Semaphore-like reader: up_read() may run on another thread than
  /// down_read() (pass the token along with the work). Same cost as the
  /// signal-safe pair. Async-signal-safe: yes. Allocates: no.
  [[nodiscard]] read_token down_read() noexcept;
  /// @copydoc down_read()
  void up_read(read_token token) noexcept;

  /// BasicLockable / Lockable view of read_lock(), for std::scoped_lock and
  /// std::unique_lock as with C++26 std::rcu_domain. Same thread, nestable
  /// without limit: only the outermost lock() touches the counters, inner
  /// ones count depth in the thread's slot (the outer section covers them).
  void lock() noexcept;
  bool try_lock() noexcept;  ///< always succeeds
  /// @copydoc lock()
  void unlock() noexcept;
  /// @}

  /// @name Updaters
  /// @{

  /// synchronize: returns after every reader (any flavour) that began before
  ///   the call has ended. Concurrent callers share grace periods.
  /// Preconditions: the calling thread is not inside a read_lock()/lock()
  ///   section of this domain (checked always: message, abort). Readers of
  ///   other domains around the call are legal.
  /// Synchronizes-with: each such reader's unlock happens-before the return.
  /// Blocking: yes, between reader scans it yields a few times (a lone
  ///   caller), then sleeps with backoff up to 10 ms.
  /// Async-signal-safe: no. Allocates: only the domain's state, on its first
  ///   use (see Overheads).
  /// Deadlock notes: waits for readers, so a reader that waits for something
  ///   the caller holds deadlocks, as with any RCU.
  void synchronize() noexcept;

  /// synchronize_expedited: the same guarantee with the lowest latency: it
  ///   drives the grace period itself and polls readers with short spins and
  ///   yields before sleeping; costs more CPU while readers linger.
  void synchronize_expedited() noexcept;

  /// barrier: returns after every callback queued before the call, by any
  ///   thread, has run (not merely been scheduled). Callable concurrently.
  ///   Returns at once when nothing is queued. Does not wait out
  ///   domain_options::callback_delay: held callbacks get their grace period
  ///   at once.
  /// Preconditions: not inside a read_lock() section of this domain, and not
  ///   inside one of this domain's own callbacks or its executor's submit()
  ///   (each would wait for itself; checked always: message, abort). Legal
  ///   from any other domain's callback or submit(), on any thread.
  /// Synchronizes-with: each such callback's return happens-before barrier()
  ///   returns. Blocking: yes. Async-signal-safe: no. Allocates: only the
  ///   domain's state, when a call() on a domain without one is in flight
  ///   (on a domain never used it returns at once and makes none).
  void barrier() noexcept;
  /// @}

  /// @name Deferred reclamation
  /// @{

  /// call: queues func(head) to run once, after a grace period that begins
  ///   after this call, on one of srcu's callback workers or the domain's executor.
  ///   Callbacks queued by one thread run in queueing order. Callbacks wait
  ///   up to domain_options::callback_delay (1 ms) for company before their
  ///   grace period starts, so a stream of calls shares grace periods.
  ///   The object travels: srcu's engine links it on its thread, a worker
  ///   frees it on another. A writer that wants its objects freed on its
  ///   own thread (Concurrency Kit's model) uses a reclaim_list instead.
  /// Preconditions: head and func non-null; head not already queued (checked
  ///   always: message, abort). The caller owns *head until func runs; srcu
  ///   clears head->func just before invoking it.
  /// Blocking: never. Lock-free (no lock of any kind, so callable with any
  ///   lock held, from inside a callback, from an executor's submit()).
  ///   Floods: when srcu's threads owe more than 262,144 of this domain's
  ///   callbacks (queued and past their grace period, or not yet taken),
  ///   every 64th call() on a thread yields the CPU, up to 64 times, so a
  ///   flood pays with its own CPU time and invocation catches up; it never
  ///   waits for anything. Callbacks waiting for a grace period do not count.
  /// Async-signal-safe: yes. Allocates: no.
  void call(callback_head* head, void (*func)(callback_head*)) noexcept;

  /// call(f): the same for any callable `void()`, moved into a node that is
  ///   allocated here (so: Allocates: yes; not async-signal-safe).
  /// Blocking: only with domain_options::callback_backlog_limit set, while
  ///   that many callbacks are pending (see there for the deadlock rule).
  template <class F>
  void call(F&& f);

  /// retire(p, d): d(p) after a grace period. Allocates a node. Blocking: as
  ///   call(f).
  template <class T, class D = std::default_delete<T>>
  void retire(T* p, D d = D());
  /// @}

  /// @name Polled grace periods
  /// @{

  /// get_poll_cookie: snapshot only; no grace period is started. Async-signal-safe.
  /// start_poll: snapshot, and makes sure a grace period will start and end
  ///   without anybody waiting (the engine thread drives it). Lock-free,
  ///   async-signal-safe (a raw futex wake), never allocates.
  /// poll: true once a full grace period has elapsed since the cookie was taken.
  /// cond_synchronize: synchronize() unless poll(cookie) already holds.
  /// Synchronizes-with: when poll() returns true, every reader that began
  ///   before the cookie was taken has ended and its unlock happens-before.
  [[nodiscard]] poll_cookie get_poll_cookie() noexcept;
  /// @copydoc get_poll_cookie()
  [[nodiscard]] poll_cookie start_poll() noexcept;
  /// @copydoc get_poll_cookie()
  [[nodiscard]] bool poll(poll_cookie cookie) const noexcept;
  /// @copydoc get_poll_cookie()
  void cond_synchronize(poll_cookie cookie) noexcept;
  /// @}

  /// Number of grace periods this domain has completed. Monotonic.
  [[nodiscard]] std::uint64_t grace_periods_completed() const noexcept;

  /// Counters of this domain (srcu/diagnostics.h): cheap (relaxed loads, no
  /// lock), each field monotonic, not one consistent instant.
  [[nodiscard]] domain_stats stats() const noexcept;

  /// The name given in domain_options (a copy, valid while the domain lives).
  [[nodiscard]] const char* name() const noexcept;

  /// True when the calling thread is inside a read_lock()/lock()/read_guard
  /// section of this domain (liburcu's rcu_read_ongoing(), the kernel's
  /// srcu_read_lock_held()). Exact for those: it reads the thread's own
  /// slot. Signal-safe and down_read() sections keep no per-thread state (so
  /// that they may run in a signal handler or end on another thread), so they
  /// are not seen: for them it answers for the thread-flavour sections only.
  /// Cost: a table lookup and a few loads; no lock, no allocation.
  /// Async-signal-safe: yes.
  [[nodiscard]] bool in_reader() const noexcept;

  /// Per-thread reader slots this domain has allocated. Slots are recycled
  /// when threads exit, so this is bounded by the peak number of threads
  /// that used the domain at once (allocation rounds up: at most 2 x peak + 4),
  /// not by the number of threads ever created. Thread-safe.
  [[nodiscard]] std::size_t reader_slots() const noexcept;

 private:
  friend class detail::domain_core;    // src/: the fields the compiled side uses
  friend struct detail::domain_state;
  friend struct detail::c_api;  // src/srcu_c.cc: the C API's int idx
  friend struct detail::state_maker;  // src/domain.cc: creates the state

  detail::counter_block* register_reader();  // a thread's first read_lock() of this domain
  read_token read_lock_slow() noexcept;      // read_lock() when the fast path does not apply
  [[noreturn]] void unlock_without_lock() const noexcept;  // unlock() misuse, always checked
  void before_allocating_call();             // callback_backlog_limit
  read_token shared_lock(detail::flavour f) noexcept;
  void shared_unlock(read_token token, detail::flavour f) noexcept;
  read_token shared_lock_slow(detail::flavour f) noexcept;  // no per-CPU table
  void shared_unlock_slow(read_token token) noexcept;
  void check_unlock(read_token token, detail::flavour f) const noexcept;

  // Hot and read-mostly: the only fields the fast path touches (index_ is
  // written twice per grace period). Not cache-line aligned on purpose:
  // domains are meant to be small and numerous (memory: Overheads, top of
  // this file); align the object yourself if hot data would sit next to it.
  std::atomic<std::uint64_t> index_{0};  // bit 0: the index new readers use
  std::uint32_t id_ = 0;                 // key into each thread's slot table
  // read_lock()'s key: id_ with membarrier, detail::kNoFastPath without
  // (then every read_lock() takes read_lock_slow(), which fences).
  std::uint32_t fast_id_ = detail::kNoFastPath;
  // The shard table (detail::shard_table): signal-safe and down/up reader
  // counters and call()'s staging. Written once after construction (small
  // -> per-CPU, by the engine); read with acquire (Fence ST, docs/design.md
  // §2). Only a per-CPU table's counters are reached inline.
  std::atomic<std::uintptr_t> shards_{0};
  // Everything else (src/), created on first use: a domain that is only
  // constructed costs this object and its small shard block (src/domain.cc).
  // Acquire loads pair with the release store that publishes it.
  std::atomic<detail::domain_state*> state_{nullptr};
  detail::kick_node kick_;                       // the engine's kick stack
  const detail::saved_options* options_ = nullptr;  // null: the defaults

  detail::domain_state* state() const noexcept {
    return state_.load(std::memory_order_acquire);
  }
  detail::domain_state& made_state();  // state(), created first if need be (allocates)
  void ask_engine(std::uint8_t what) noexcept;  // no state yet: a bit in kick_ and a kick
};

// --- Templates --------------------------------------------------------------

template <class F>
void domain::call(F&& f) {
  struct node : callback_head {
    explicit node(F&& fn) : fn(std::forward<F>(fn)) {}
    std::decay_t<F> fn;
  };
  before_allocating_call();
  node* n = new node(std::forward<F>(f));
  call(n, [](callback_head* h) {
    node* self = static_cast<node*>(h);
    self->fn();
    delete self;
  });
}

template <class T, class D>
void domain::retire(T* p, D d) {
  call([p, d = std::move(d)]() mutable { d(p); });
}

// --- Inline fast paths ------------------------------------------------------

// The fast path runs only with membarrier (fast_id_ is kNoFastPath
// otherwise), so it tests no flag: one slot lookup, one counter bump.
SRCU_ALWAYS_INLINE read_token domain::read_lock() noexcept {
  detail::counter_block* slot = detail::this_thread_slot(fast_id_);
  if (SRCU_UNLIKELY(slot == nullptr)) return read_lock_slow();
  // The index load and the lock increment, one restartable sequence
  // (detail/percpu.h): a reader never increments an index it loaded before
  // a heavy barrier (no straggler, docs/design.md §1.2).
#if SRCU_HAVE_PERCPU
  const std::uint64_t idx = detail::rseq_index_add<false>(&index_, slot->locks);
#else
  std::uint64_t idx;
  if (SRCU_UNLIKELY(detail::g_rseq_readers.load(std::memory_order_relaxed))) {
    idx = detail::rseq_index_add_outlined(&index_, slot->locks);
  } else {
    idx = index_.load(detail::kCounterOrder) & detail::kIndexBit;
    detail::bump_private(slot->locks[idx]);
  }
#endif
  // Fence B (docs/design.md §2): pairs with A in readers_idle(); without it
  // the critical section's loads pass the lock increment, and a reader the
  // scan misses reads the old pointer. A compiler barrier: membarrier mode.
  detail::compiler_reader_fence();  // B: pairs with A in readers_idle()
  return read_token(reinterpret_cast<std::uintptr_t>(static_cast<detail::counter_pair*>(slot)) |
                    idx);
}

SRCU_ALWAYS_INLINE void domain::read_unlock(read_token token) noexcept {
#if SRCU_DEBUG
  check_unlock(token, detail::kThreadFlavour);
#endif
  // Fence C (docs/design.md §2): pairs with A in readers_idle(); without it
  // a critical-section access passes the unlock increment and runs after
  // the updater counted the unlock and freed the object. A real fence when
  // the lock said readers must fence (kFenceBit), else a compiler barrier.
  if (SRCU_UNLIKELY(token.raw_ & detail::kFenceBit)) {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // C, no membarrier
  } else {
    detail::compiler_reader_fence();  // C: pairs with A in readers_idle()
  }
  auto* slot = reinterpret_cast<detail::counter_pair*>(token.raw_ & detail::kBlockMask);
  detail::bump_private(slot->unlocks[token.raw_ & detail::kIndexBit]);
}

// Per-CPU counters inline (detail/percpu.h); every other table (small,
// or no rseq) out of line, where the RMW costs more than the call.
SRCU_ALWAYS_INLINE read_token domain::shared_lock(detail::flavour f) noexcept {
  // Fence ST (docs/design.md §2): pairs with the table's release store in
  // grow_shards(); without it the add could land on a block not yet zeroed.
  const std::uintptr_t ref = shards_.load(std::memory_order_acquire);
  read_token token;
  if (SRCU_LIKELY((ref & detail::kPercpuShards) != 0)) {
    auto* const first = reinterpret_cast<detail::shard_block*>(ref & detail::kBlockMask);
    // Index load and add in one sequence, as in read_lock().
    std::uint64_t idx;
    detail::shard_block* const shard = &first[detail::percpu_lock(&index_, &first->locks[0], &idx)];
    // Fence B (docs/design.md §2): pairs with A in readers_idle(); a compiler
    // barrier (a per-CPU table implies membarrier).
    detail::compiler_reader_fence();  // B: pairs with A in readers_idle()
    token = read_token(reinterpret_cast<std::uintptr_t>(static_cast<detail::counter_pair*>(shard)) |
                       (std::uintptr_t{f} << detail::kFlavourShift) | idx);
  } else {
    token = shared_lock_slow(f);
  }
#if SRCU_DEBUG  // here, not in the library: the caller's build pairs it with the exit
  if (f == detail::kSignalSafeFlavour) detail::debug_signal_safe_enter(this);
#endif
  return token;
}

SRCU_ALWAYS_INLINE void domain::shared_unlock(read_token token, detail::flavour f) noexcept {
#if SRCU_DEBUG
  check_unlock(token, f);
  if (f == detail::kSignalSafeFlavour) detail::debug_signal_safe_exit(this);
#else
  (void)f;
#endif
  // Fence ST (docs/design.md §2): as in shared_lock().
  const std::uintptr_t ref = shards_.load(std::memory_order_acquire);
  if (SRCU_UNLIKELY((ref & detail::kPercpuShards) == 0)) return shared_unlock_slow(token);
  // Fence C (docs/design.md §2): pairs with A in readers_idle(); a compiler
  // barrier (a per-CPU table implies membarrier).
  detail::compiler_reader_fence();  // C: pairs with A in readers_idle()
  // This CPU's unlock counter, not necessarily the token's block (the
  // section may have begun on another CPU, thread, or before the table
  // existed): the scans compare the shards' sums, as the kernel's per-CPU
  // srcu_data.
  auto* const first = reinterpret_cast<detail::shard_block*>(ref & detail::kBlockMask);
  detail::percpu_add(&first->unlocks[token.raw_ & detail::kIndexBit]);
}

SRCU_ALWAYS_INLINE void domain::lock() noexcept {
  detail::counter_block* slot = detail::this_thread_slot(id_);
  if (slot != nullptr && slot->lock_depth != 0) {
    ++slot->lock_depth;  // covered by the outermost section
    return;
  }
  const read_token token = read_lock();
  slot = static_cast<detail::counter_block*>(
      reinterpret_cast<detail::counter_pair*>(token.raw_ & detail::kBlockMask));
  // The index, and kFenceBit when readers fence: unlock() rebuilds the token.
  slot->lock_index = static_cast<std::uint32_t>(token.raw_ & (detail::kIndexBit | detail::kFenceBit));
  slot->lock_depth = 1;
}

SRCU_ALWAYS_INLINE bool domain::try_lock() noexcept {
  lock();
  return true;
}

SRCU_ALWAYS_INLINE void domain::unlock() noexcept {
  detail::counter_block* slot = detail::this_thread_slot(id_);
  // Always on (the depth is loaded anyway): without it a depth of 0 would
  // wrap, and every later lock() on this thread would take no reader.
  if (SRCU_UNLIKELY(slot == nullptr || slot->lock_depth == 0)) unlock_without_lock();
  if (--slot->lock_depth != 0) return;
  read_unlock(read_token(reinterpret_cast<std::uintptr_t>(static_cast<detail::counter_pair*>(slot)) |
                        slot->lock_index));
}

SRCU_ALWAYS_INLINE read_token domain::read_lock_signal_safe() noexcept {
  return shared_lock(detail::kSignalSafeFlavour);
}
SRCU_ALWAYS_INLINE void domain::read_unlock_signal_safe(read_token token) noexcept {
  shared_unlock(token, detail::kSignalSafeFlavour);
}
SRCU_ALWAYS_INLINE read_token domain::down_read() noexcept { return shared_lock(detail::kDownUpFlavour); }
SRCU_ALWAYS_INLINE void domain::up_read(read_token token) noexcept {
  shared_unlock(token, detail::kDownUpFlavour);
}

}  // namespace srcu
