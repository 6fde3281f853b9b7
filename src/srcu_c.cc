// The C API (include/srcu/srcu_c.h): kernel names over srcu::domain.
//
// The kernel passes an int from lock to unlock; srcu's read_token is a
// counter-block address. The int carries what the unlock cannot find again
// by itself:
//   srcu_read_lock()             the index bit; the unlock runs on the same
//                                thread, and this_thread_slot() finds its slot.
//   srcu_read_lock_nmisafe(),    shard number << 1 | index bit; the unlock may
//   srcu_down_read()             run anywhere and bumps the shard the lock did.
// Each unlock checks the int always (cheap): a value its lock cannot have
// returned is reported, naming the structure, instead of bumping a stray
// counter.

#include "srcu/srcu_c.h"

#include <cerrno>
#include <cstddef>
#include <new>

#include "diagnostics.h"
#include "domain_state.h"
#include "srcu/domain.h"

#undef init_srcu_struct

static_assert(sizeof(unsigned long) >= sizeof(std::uint64_t),
              "the C API's cookies are unsigned long: a 64-bit (LP64) platform is needed");
static_assert(sizeof(rcu_head) == sizeof(srcu::callback_head) &&
              offsetof(rcu_head, next) == offsetof(srcu::callback_head, next) &&
              offsetof(rcu_head, func) == offsetof(srcu::callback_head, func),
              "struct rcu_head must have srcu::callback_head's layout");

namespace srcu::detail {

struct c_api {
  static constexpr const char* kDefaultName = "srcu_struct";

  // The domain of ssp, created on first use for DEFINE_SRCU() structures.
  static domain& of(srcu_struct* ssp) noexcept {
    if (SRCU_UNLIKELY(ssp == nullptr)) die("(null)", "srcu_struct pointer is null");
    std::atomic_ref<void*> slot(ssp->srcu_domain_);
    // Fence U1 (docs/design.md §2): pairs with create_on_first_use()'s CAS;
    // without acquire a caller uses a domain whose construction it misses.
    void* d = slot.load(std::memory_order_acquire);
    if (SRCU_LIKELY(d != nullptr)) return *static_cast<domain*>(d);
    return create_on_first_use(ssp);
  }

  // Out of line and cold: the C entry points stay small (no registers to
  // save on their fast path).
  [[gnu::noinline, gnu::cold]] static domain& create_on_first_use(srcu_struct* ssp) noexcept {
    const char* name = ssp->srcu_name_ != nullptr ? ssp->srcu_name_ : kDefaultName;
    domain* fresh = new (std::nothrow) domain(domain_options{.name = name});
    if (fresh == nullptr) die(name, "out of memory creating a DEFINE_SRCU() structure on first use");
    std::atomic_ref<void*> slot(ssp->srcu_domain_);
    void* expected = nullptr;
    // Fence U1 (docs/design.md §2). Release: pairs with the acquire load in
    // of(): whoever finds the pointer finds the domain constructed.
    if (slot.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      return *fresh;
    }
    delete fresh;  // another thread created it first; an unused domain costs no wait
    return *static_cast<domain*>(expected);
  }

  static int index_of_thread_token(read_token t) noexcept {
    return static_cast<int>(t.raw_ & kIndexBit);
  }

  static read_token thread_token(domain& d, int idx) noexcept {
    if (SRCU_UNLIKELY(idx != 0 && idx != 1)) {
      die(d.name(), "srcu_read_unlock() given an idx that srcu_read_lock() did not return");
    }
    counter_block* slot = this_thread_slot(d.id_);
    if (SRCU_UNLIKELY(slot == nullptr)) {
      die(d.name(), "srcu_read_unlock() on a thread that never called srcu_read_lock() on it "
                    "(unlock without lock, or unlocked on another thread: use srcu_down_read())");
    }
    const std::uintptr_t fence = g_readers_fence.load(std::memory_order_relaxed) ? kFenceBit : 0;
    return read_token(reinterpret_cast<std::uintptr_t>(static_cast<counter_pair*>(slot)) | fence |
                      static_cast<std::uintptr_t>(idx));
  }

  // A shared token as the C API's int: (block << 1) | index, block 0 the
  // small table, k + 1 the full table's block k.
  static int index_of_shared_token(const domain& d, read_token t) noexcept {
    auto* block = reinterpret_cast<shard_block*>(t.raw_ & kBlockMask);
    const domain_state* s = d.state();
    const int number = s == nullptr || block == s->small_shard ? 0 : static_cast<int>(block - s->shards().first) + 1;
    return (number << 1) | static_cast<int>(t.raw_ & kIndexBit);
  }

  static read_token shared_token(domain& d, int idx, flavour f, const char* unlock) noexcept {
    const auto number = static_cast<unsigned>(idx) >> 1;
    // No state yet: the table is still the small block the domain was born with.
    const domain_state* s = d.state();
    shard_block* const small = s != nullptr ? s->small_shard : state_maker::born_shards(d);
    const shard_table t = decode_shards(d.shards_.load(std::memory_order_acquire));
    if (SRCU_UNLIKELY(idx < 0 || (number != 0 && (t.first == small || number > t.count)))) {
      message m;
      m << "srcu: domain '" << d.name() << "': " << unlock
        << " given an idx that its lock did not return (" << idx << ")";
      die(m);
    }
    shard_block* block = number == 0 ? small : &t.first[number - 1];
    return read_token(reinterpret_cast<std::uintptr_t>(static_cast<counter_pair*>(block)) |
                      (std::uintptr_t{f} << kFlavourShift) | static_cast<std::uintptr_t>(idx & 1));
  }

  static unsigned long cookie_value(poll_cookie c) noexcept { return static_cast<unsigned long>(c.seq_); }
  static poll_cookie cookie(unsigned long v) noexcept { return poll_cookie(v); }
};

}  // namespace srcu::detail

using srcu::detail::c_api;

extern "C" {

int init_srcu_struct_named(srcu_struct* ssp, const char* name) {
  ssp->srcu_domain_ = nullptr;
  ssp->srcu_name_ = nullptr;
  ssp->srcu_flags_ = 0;
  srcu::domain* d =
      new (std::nothrow) srcu::domain(srcu::domain_options{.name = name != nullptr ? name : c_api::kDefaultName});
  if (d == nullptr) return -ENOMEM;
  ssp->srcu_domain_ = d;
  return 0;
}

int init_srcu_struct(srcu_struct* ssp) { return init_srcu_struct_named(ssp, c_api::kDefaultName); }

void cleanup_srcu_struct(srcu_struct* ssp) {
  std::atomic_ref<void*> slot(ssp->srcu_domain_);
  delete static_cast<srcu::domain*>(slot.exchange(nullptr, std::memory_order_acq_rel));
}

int srcu_read_lock(srcu_struct* ssp) {
  return c_api::index_of_thread_token(c_api::of(ssp).read_lock());
}

void srcu_read_unlock(srcu_struct* ssp, int idx) {
  srcu::domain& d = c_api::of(ssp);
  d.read_unlock(c_api::thread_token(d, idx));
}

int srcu_read_lock_nmisafe(srcu_struct* ssp) {
  srcu::domain& d = c_api::of(ssp);
  return c_api::index_of_shared_token(d, d.read_lock_signal_safe());
}

void srcu_read_unlock_nmisafe(srcu_struct* ssp, int idx) {
  srcu::domain& d = c_api::of(ssp);
  d.read_unlock_signal_safe(
      c_api::shared_token(d, idx, srcu::detail::kSignalSafeFlavour, "srcu_read_unlock_nmisafe()"));
}

int srcu_down_read(srcu_struct* ssp) {
  srcu::domain& d = c_api::of(ssp);
  return c_api::index_of_shared_token(d, d.down_read());
}

void srcu_up_read(srcu_struct* ssp, int idx) {
  srcu::domain& d = c_api::of(ssp);
  d.up_read(c_api::shared_token(d, idx, srcu::detail::kDownUpFlavour, "srcu_up_read()"));
}

void synchronize_srcu(srcu_struct* ssp) { c_api::of(ssp).synchronize(); }

void synchronize_srcu_expedited(srcu_struct* ssp) { c_api::of(ssp).synchronize_expedited(); }

void call_srcu(srcu_struct* ssp, rcu_head* head, void (*func)(rcu_head* head)) {
  srcu::domain& d = c_api::of(ssp);
  if (head == nullptr || func == nullptr) {
    srcu::detail::die(d.name(), "call_srcu() with a null rcu_head or a null function");
  }
  // The kernel accepts a head full of garbage: it is the caller's until
  // queued, so clear it (srcu::domain::call() takes a non-null func as
  // "already queued").
  head->next = nullptr;
  head->func = nullptr;
  // Same layout (checked above), and the function is called with the head
  // it was given: an rcu_head* passed as a callback_head*.
  d.call(reinterpret_cast<srcu::callback_head*>(head),
         reinterpret_cast<void (*)(srcu::callback_head*)>(func));
}

void srcu_barrier(srcu_struct* ssp) { c_api::of(ssp).barrier(); }

unsigned long get_state_synchronize_srcu(srcu_struct* ssp) {
  return c_api::cookie_value(c_api::of(ssp).get_poll_cookie());
}

unsigned long start_poll_synchronize_srcu(srcu_struct* ssp) {
  return c_api::cookie_value(c_api::of(ssp).start_poll());
}

bool poll_state_synchronize_srcu(srcu_struct* ssp, unsigned long cookie) {
  return c_api::of(ssp).poll(c_api::cookie(cookie));
}

int srcu_c_compiler_zero_(void) { return 0; }

void srcu_c_release_fence_(void) {
  // Fence U2 (docs/design.md §2): orders the caller's initialisation of the
  // object before the plain store that publishes it (rcu_assign_pointer()
  // without GCC/Clang builtins); pairs with the reader's address dependency
  // in srcu_dereference(). Without it a reader follows the new pointer into
  // uninitialised memory.
  std::atomic_thread_fence(std::memory_order_release);
}

}  // extern "C"
