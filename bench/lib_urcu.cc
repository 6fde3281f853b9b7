// liburcu's adapters, one flavour per build of this file
// (SRCU_BENCH_URCU_FLAVOUR: 1 = urcu-memb, 2 = urcu-mb, 3 = urcu-qsbr), so
// each flavour's read side is inline (_LGPL_SOURCE), as its users get it,
// and the flavours' macro maps never meet.
//
//   urcu-memb: readers are a TLS counter, the updater uses membarrier(2);
//   urcu-mb:   readers fence (smp_mb) themselves, no membarrier;
//   urcu-qsbr: read_lock/unlock are empty, readers announce quiescent states
//              (here: every 1,024 operations, and after every hash-map
//              operation), and an online thread must not block.
// Updaters are registered threads (urcu-qsbr: registered and offline): with
// no registered thread at all, synchronize_rcu() has no reader to wait for.

#define _LGPL_SOURCE

#if SRCU_BENCH_URCU_FLAVOUR == 1
#include <urcu/urcu-memb.h>
#define URCU(fn) urcu_memb_##fn
#define URCU_NAME "urcu-memb"
#elif SRCU_BENCH_URCU_FLAVOUR == 2
#include <urcu/urcu-mb.h>
#define URCU(fn) urcu_mb_##fn
#define URCU_NAME "urcu-mb"
#elif SRCU_BENCH_URCU_FLAVOUR == 3
#include <urcu/urcu-qsbr.h>
#define URCU(fn) urcu_qsbr_##fn
#define URCU_NAME "urcu-qsbr"
#define URCU_QSBR 1
#else
#error "SRCU_BENCH_URCU_FLAVOUR must be 1 (memb), 2 (mb) or 3 (qsbr)"
#endif

#include "harness.h"

namespace bench {
namespace {

#if URCU_QSBR
thread_local bool t_online = false;  // registered and online: must not block
#endif

struct urcu_lib {
  static constexpr const char* name = URCU_NAME;
#if URCU_QSBR
  static constexpr std::size_t static_tls_bytes = sizeof(struct urcu_qsbr_reader);
#else
  static constexpr std::size_t static_tls_bytes = sizeof(struct urcu_reader);
#endif
  class reader_scope {
   public:
    reader_scope() {
      URCU(register_thread)();
#if URCU_QSBR
      t_online = true;
#endif
    }
    ~reader_scope() {
#if URCU_QSBR
      t_online = false;
#endif
      URCU(unregister_thread)();
    }
    reader_scope(const reader_scope&) = delete;
    reader_scope& operator=(const reader_scope&) = delete;
  };
  class updater_scope {
   public:
    updater_scope() {
      URCU(register_thread)();
#if URCU_QSBR
      URCU(thread_offline)();
#endif
    }
    ~updater_scope() {
#if URCU_QSBR
      URCU(thread_online)();
#endif
      URCU(unregister_thread)();
    }
    updater_scope(const updater_scope&) = delete;
    updater_scope& operator=(const updater_scope&) = delete;
  };
  struct read_guard {
    read_guard() { URCU(read_lock)(); }
    ~read_guard() { URCU(read_unlock)(); }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;
  };
#if URCU_QSBR
  static void quiescent() { URCU(quiescent_state)(); }
#endif
  static void synchronize() { URCU(synchronize_rcu)(); }
  using head = rcu_head;
  static void defer(head* h, void (*fn)(head*)) { URCU(call_rcu)(h, fn); }
  static void barrier() {
#if URCU_QSBR
    // rcu_barrier() from an online QSBR thread would wait for itself.
    if (t_online) URCU(thread_offline)();
    URCU(barrier)();
    if (t_online) URCU(thread_online)();
#else
    URCU(barrier)();
#endif
  }
};

void warm() {  // the first call_rcu() creates the call_rcu thread
  urcu_lib::updater_scope scope;
  static rcu_head head;
  urcu_lib::defer(&head, [](rcu_head*) {});
  urcu_lib::barrier();
}

const bool registered = [] {
  register_library<urcu_lib>();
  add_warmer(warm);
  return true;
}();

}  // namespace
}  // namespace bench
