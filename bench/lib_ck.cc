// Concurrency Kit's ck_epoch: each thread owns a record (registered, or
// recycled from a thread that left); sections are ck_epoch_begin/end on it.
// Deferral is ck_epoch_call() onto the caller's own record; ck has no
// thread, so the caller dispatches: ck_epoch_poll() after every 64th
// deferral here, and ck_epoch_barrier() (wait, then run everything pending
// on this record) as the barrier.

// ck's headers are C: ck_stack.h (pulled in by ck_epoch.h) assigns the
// void* that ck_pr_fas_ptr() returns to a typed pointer, which C++ rejects.
// While ck_epoch.h is read, wrap that call's result in a type that converts
// to any object pointer; nothing else changes. The headers declare no C
// linkage themselves.
extern "C" {
#include <ck_pr.h>
}
namespace srcu_bench_ck {
struct any_pointer {
  void* p;
  template <class T>
  operator T*() const noexcept {  // NOLINT(google-explicit-constructor): the point
    return static_cast<T*>(p);
  }
};
}  // namespace srcu_bench_ck
#define ck_pr_fas_ptr(target, value) (srcu_bench_ck::any_pointer{(ck_pr_fas_ptr)(target, value)})
extern "C" {
#include <ck_epoch.h>
}
#undef ck_pr_fas_ptr

#include "harness.h"

namespace bench {
namespace {

ck_epoch_t* global_epoch() {
  static ck_epoch_t* e = [] {
    auto* p = new ck_epoch_t;
    ck_epoch_init(p);
    return p;
  }();
  return e;
}

thread_local ck_epoch_record_t* t_record = nullptr;
thread_local unsigned t_deferred = 0;

// A registered record of `epoch`: one a departed thread left, else a new one.
ck_epoch_record_t* acquire_record(ck_epoch_t* epoch) {
  ck_epoch_record_t* r = ck_epoch_recycle(epoch, nullptr);
  if (r == nullptr) {
    r = new ck_epoch_record_t;  // aligned new: the type is cache-line aligned
    ck_epoch_register(epoch, r, nullptr);
  }
  return r;
}

struct ck_lib {
  static constexpr const char* name = "ck_epoch";
  class reader_scope {
   public:
    reader_scope() : previous_(t_record) { t_record = acquire_record(global_epoch()); }
    ~reader_scope() {
      ck_epoch_barrier(t_record);  // nothing left pending on a record given back
      ck_epoch_unregister(t_record);
      t_record = previous_;
    }
    reader_scope(const reader_scope&) = delete;
    reader_scope& operator=(const reader_scope&) = delete;

   private:
    ck_epoch_record_t* previous_;
  };
  using updater_scope = reader_scope;
  struct read_guard {
    read_guard() { ck_epoch_begin(t_record, nullptr); }
    ~read_guard() { ck_epoch_end(t_record, nullptr); }
    read_guard(const read_guard&) = delete;
    read_guard& operator=(const read_guard&) = delete;
  };
  static void synchronize() { ck_epoch_synchronize(t_record); }
  using head = ck_epoch_entry_t;
  static void defer(head* h, void (*fn)(head*)) { ck_epoch_call(t_record, h, fn); }
  static void after_defer() {
    if ((++t_deferred & 63) == 0) ck_epoch_poll(t_record);
  }
  static void barrier() { ck_epoch_barrier(t_record); }
  // An epoch object; touch() registers a record for the calling thread
  // and enters one section (what one domain read by one thread costs).
  struct domain_object {
    ck_epoch_t epoch;
    domain_object() { ck_epoch_init(&epoch); }
    ~domain_object() {  // frees every record registered in touch()
      ck_stack_entry_t* next;
      for (ck_stack_entry_t* e = CK_STACK_FIRST(&epoch.records); e != nullptr; e = next) {
        next = CK_STACK_NEXT(e);
        delete reinterpret_cast<ck_epoch_record_t*>(reinterpret_cast<char*>(e) -
                                                    offsetof(ck_epoch_record_t, record_next));
      }
    }
    domain_object(const domain_object&) = delete;
    domain_object& operator=(const domain_object&) = delete;
    void touch() {  // thread-safe; the record stays registered
      ck_epoch_record_t* record = acquire_record(&epoch);
      ck_epoch_begin(record, nullptr);
      ck_epoch_end(record, nullptr);
    }
  };
};

const bool registered = [] {
  register_library<ck_lib>();
  return true;
}();

}  // namespace
}  // namespace bench
