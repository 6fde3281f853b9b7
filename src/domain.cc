// Domain construction and destruction, the shard table's growth, the
// readers' slow paths, token checks.

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>

#include "callback_pool.h"
#include "diagnostics.h"
#include "fault_injection.h"
#include "futex.h"
#include "domain_state.h"
#include "heavy_barrier.h"
#include "lockdep.h"
#include "service.h"

namespace srcu::detail {

void install_fork_handlers() noexcept;  // fork.cc

domain_core::domain_core(domain* s, const domain_options& options, shard_block* small)
    : self(s),
      name(options.name != nullptr ? options.name : "srcu"),
      small_shard(small) {}

domain_state::domain_state(domain* s, const domain_options& options, shard_block* small)
    : callback_queue(s, options, small) {
  delivery.owner = this;
  engine_slot.owner = this;
}

domain_state* state_maker::create(domain& d) noexcept {
  if (auto probe = g_test_probe.load(std::memory_order_acquire)) probe("state: making");
  static const domain_options defaults{};
  const domain_options& options = d.options_ != nullptr ? d.options_->options : defaults;
  void* block = ::operator new(sizeof(domain_state), std::align_val_t{alignof(domain_state)}, std::nothrow);
  if (block == nullptr) {
    die(options.name != nullptr ? options.name : "srcu",
        "out of memory making the domain's state on its first use");
  }
  auto* fresh = new (block) domain_state(&d, options, born_shards(d));
  domain_state* made = registry_publish_state(&d, fresh);
  if (made != fresh) {  // another thread made it first
    fresh->~domain_state();
    ::operator delete(fresh, std::align_val_t{alignof(domain_state)});
  }
  return made;
}

void state_maker::act_on_asks(domain& d, domain_state& s) noexcept {
  // Fence Q2 (docs/design.md §2): the exchange acquires what each asker
  // wrote before its release fetch_or (its push, its request), whichever
  // kick took the node here. A bit set after this exchange comes with a
  // kick that queues the node again. The relaxed early load only skips
  // kicks with no bit: a bit it misses is read by the exchange of the next
  // take (its kick follows it).
  if (d.kick_.asks.load(std::memory_order_relaxed) == 0) return;  // the usual kick: no RMW
  const std::uint8_t asks = d.kick_.asks.exchange(0, std::memory_order_acq_rel);
  if (asks & kick_node::kAskShards) s.want_shards();
  if (asks & kick_node::kAskPoll) s.request_for_engine(seq_snap(0));  // a stateless start_poll()'s cookie
  if (asks & kick_node::kAskCallbacks) s.note_staged();
}

service_result domain_state::engine_step() noexcept {
  if (SRCU_UNLIKELY(shards_asked() && !grown())) grow_shards();
  if (const std::uint64_t due = drain_staged_when_due(); due != 0) engine_slot.step_again_at_ns = due;
  const step_result r = drive_once();
  if (move_ready()) pool().enqueue(this);
  if (r != step_result::kBusy) return service_result::kDone;
  if (awaiting_heavy_barrier()) {
    // A scan kept its first pass: the engine issues one heavy barrier for
    // every domain of its batch that asks, then steps them again at once.
    engine_slot.barrier_wanted = true;
    return service_result::kRetry;
  }
  // Readers are inside. A grace period stalled for a long time (a blocked
  // reader) is polled at a quarter of its age, at most once a second: it
  // ends at most that much later than it could, and 100,000 stalled
  // domains cost the engine a fraction of a CPU instead of most of one.
  engine_slot.retry_floor_ns = std::min<std::uint64_t>(current_gp_age_ns() / 4, 1'000'000'000);
  return service_result::kRetry;
}

#if SRCU_HAVE_PERCPU
std::uint32_t percpu_add_one_outlined(void* first) noexcept { return percpu_add_one(first); }
std::uint32_t percpu_index_add_outlined(const void* index, void* first, std::uint64_t* idx) noexcept {
  return percpu_index_add(index, first, idx);
}
std::uint64_t rseq_index_add_outlined(const void* index, void* counters) noexcept {
  return rseq_index_add<false>(index, counters);
}
#else
// No domain of this build is per-CPU (full_table()), and g_rseq_readers
// stays false (heavy_barrier_init()).
[[noreturn]] void no_sequences() noexcept {
  die("(library)", "restartable-sequence reader counters used with a library built without them");
}
std::uint32_t percpu_add_one_outlined(void*) noexcept { no_sequences(); }
std::uint32_t percpu_index_add_outlined(const void*, void*, std::uint64_t*) noexcept { no_sequences(); }
std::uint64_t rseq_index_add_outlined(const void*, void*) noexcept { no_sequences(); }
#endif

namespace {

#if SRCU_HAVE_PERCPU
// The highest CPU number the kernel can ever report, plus one (nr_cpu_ids,
// from /sys/devices/system/cpu/possible, "0-N" or a list); 0 if unknown.
std::uint32_t possible_cpus() noexcept {
  const int fd = ::open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  std::uint32_t highest = 0;
  std::uint32_t value = 0;
  bool digits = false;
  for (const char* p = buf; *p != '\0'; ++p) {
    if (*p >= '0' && *p <= '9') {
      value = value * 10 + static_cast<std::uint32_t>(*p - '0');
      digits = true;
      continue;
    }
    if (digits) highest = std::max(highest, value);
    value = 0;
    digits = false;
  }
  if (digits) highest = std::max(highest, value);
  return highest + 1;
}
#endif

// The full shard table's layout, once computed: the block count (a power of
// two) | kLayoutPercpu; 0 until then. Not a function-local static: the
// engine computes it on its first grow_shards(), and a guard left "in
// progress" by a fork() on another thread at that moment stays so in the
// child, whose engine then blocks on it for good (found by the tutorial's
// fork snippet under ctest -j2). Computing it twice is harmless: the answer
// is the same.
constexpr std::uint32_t kLayoutPercpu = std::uint32_t{1} << 31;
constinit std::atomic<std::uint32_t> g_full_table_layout{0};

std::uint32_t compute_full_table_layout() noexcept {
  if (auto probe = g_test_probe.load(std::memory_order_acquire)) probe("full_table: computing the layout");
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::uint32_t want = static_cast<std::uint32_t>(std::clamp(online, 1L, long{kMaxShards}));
  bool percpu = false;
#if SRCU_HAVE_PERCPU
  const std::uint32_t possible = possible_cpus();
  if (__rseq_size != 0 && possible != 0 && possible <= kMaxPercpuShards && !rseq_forced_off() &&
      !g_readers_fence.load(std::memory_order_relaxed)) {
    percpu = true;
    want = possible;
  }
#endif
  std::uint32_t n = 1;
  while (n < want) n *= 2;
  return n | (percpu ? kLayoutPercpu : 0);
}

// The full shard table of this machine (readers.h): per-CPU counters
// (detail/percpu.h) need a block for every CPU number the kernel can report
// and membarrier (their fences are compiler barriers); otherwise one block
// per online CPU. A power of two either way; 1 block without per-CPU
// counters is the small table itself (one CPU: nothing to grow).
shard_table full_table() noexcept {
  // Relaxed: the value is all there is (nothing else is published with it).
  std::uint32_t layout = g_full_table_layout.load(std::memory_order_relaxed);
  if (layout == 0) {
    layout = compute_full_table_layout();
    g_full_table_layout.store(layout, std::memory_order_relaxed);
  }
  return shard_table{nullptr, layout & ~kLayoutPercpu, (layout & kLayoutPercpu) != 0};
}

std::uintptr_t log2_of(std::uint32_t power_of_two) noexcept {
  return static_cast<std::uintptr_t>(__builtin_ctz(power_of_two));
}

// The lock and unlock calls of a token's flavour, for messages.
struct flavour_calls {
  const char* lock;
  const char* unlock;
};

flavour_calls calls_of(std::uintptr_t f) noexcept {
  switch (f) {
    case kThreadFlavour: return {"read_lock()", "read_unlock()"};
    case kSignalSafeFlavour: return {"read_lock_signal_safe()", "read_unlock_signal_safe()"};
    default: return {"down_read()", "up_read()"};
  }
}

}  // namespace

constinit std::atomic<void (*)(const char*)> g_test_probe{nullptr};

void forget_full_table_layout() noexcept { g_full_table_layout.store(0, std::memory_order_relaxed); }

void reader_side::grow_shards() noexcept {
  const shard_table want = full_table();
  if (want.count == 1 && !want.percpu) return;  // one CPU: the small table is the table
  void* mem = ::operator new(want.count * sizeof(shard_block), std::align_val_t{64}, std::nothrow);
  if (mem == nullptr) return;  // stays small; asked again at the next engine step
  auto* first = static_cast<shard_block*>(mem);
  for (std::uint32_t i = 0; i < want.count; ++i) new (&first[i]) shard_block{}, first[i].domain = self;
  const std::uintptr_t ref = reinterpret_cast<std::uintptr_t>(first) | (want.percpu ? kPercpuShards : 0) |
                             (log2_of(want.count) << kShardLogShift);
  SRCU_INJECT("grow_shards: table built, before publishing");
  mutex_lock lk(mutex);
  // Fence ST (docs/design.md §2): pairs with the readers' and call()'s
  // acquire loads of the table; without it a reader could add to a block
  // before its zeroing and the domain pointer are visible. Under the mutex:
  // a scan sees one table from its first pass to its second.
  publish_shards(ref);
  forget_kept_pass();  // its shards' sum was of the old table
}

}  // namespace srcu::detail

namespace srcu {

using namespace detail;

domain::domain() : domain(domain_options{}) {}

domain::domain(executor& callback_executor, domain_options options)
    : domain((options.callback_executor = &callback_executor, options)) {}

namespace {
bool are_defaults(const domain_options& o) noexcept {
  const domain_options d{};
  // The default name ("srcu", also what a null name means) needs no copy.
  return (o.name == nullptr || std::strcmp(o.name, "srcu") == 0) && o.callback_executor == d.callback_executor &&
         o.callback_delay == d.callback_delay && o.stall_timeout == d.stall_timeout &&
         o.callback_backlog_limit == d.callback_backlog_limit;
}
}  // namespace

domain::domain(const domain_options& options) {
  if (auto probe = g_test_probe.load(std::memory_order_acquire)) probe("domain: constructing");
  heavy_barrier_init();
  install_fork_handlers();
  // Born small: this object and one shard block (the signal-safe and down/up
  // counters and call()'s staging, on its own cache line), plus a copy of
  // options other than the defaults. The state (slots, grace periods,
  // callbacks) is made on first use (made_state(), state_maker::create()),
  // the full shard table when first needed.
  if (!are_defaults(options)) {
    const std::size_t name_len = options.name != nullptr ? std::strlen(options.name) + 1 : 0;
    auto* saved = new (::operator new(sizeof(saved_options) + name_len)) saved_options{options};
    if (name_len != 0) {
      std::memcpy(saved->name_bytes(), options.name, name_len);
      saved->options.name = saved->name_bytes();
    }
    options_ = saved;
  }
  static_assert(alignof(shard_block) == 64);
  auto* small = new (::operator new(sizeof(shard_block), std::align_val_t{64})) shard_block{};
  small->domain = this;
  shards_.store(reinterpret_cast<std::uintptr_t>(small), std::memory_order_relaxed);
  kick_.owner = this;
  id_ = registry_add(this);
  // heavy_barrier_init() above decided the mode for good.
  fast_id_ = g_readers_fence.load(std::memory_order_relaxed) ? kNoFastPath : id_;
  engine().start();
  pool().start();
}

namespace {
// ~domain() of a domain whose state was never made: no thread ever read it
// with read_lock(), waited on it or queued a callback (each makes the state,
// or has the engine make it: settle() took every pending kick). A shared
// section would have asked too; the check is cheap, so it stays.
void check_unborn_idle(const shard_block* small, const char* name) noexcept {
  for (int i = 0; i < 2; ++i) {
    if (small->locks[i].load(std::memory_order_acquire) != small->unlocks[i].load(std::memory_order_acquire)) {
      die(name, "destroyed while a signal-safe or down_read() reader is still inside");
    }
  }
  if (small->staged.load(std::memory_order_acquire) != nullptr) {
    die(name, "destroyed with a callback staged and no state made (library bug)");
  }
}
}  // namespace

domain::~domain() {
  domain_state* s = state();
  if (s == nullptr) s = engine().settle(this);  // a kick in flight makes it now
  if (s == nullptr) {
    shard_block* const small = state_maker::born_shards(*this);
    check_unborn_idle(small, name());
    registry_remove(id_);
    lockdep_forget_domain(this);
    small->~shard_block();
    ::operator delete(small, std::align_val_t{64});
    if (options_ != nullptr) ::operator delete(const_cast<saved_options*>(options_));
    return;
  }
  if (s->running_own_callbacks()) {
    die(s->name, "destroyed from inside one of its own callbacks or its executor's submit() "
                 "(it would wait for the batch it is part of)");
  }
  if (s->thread_in_reader()) {
    die(s->name, "destroyed inside one of its own read-side critical sections");
  }
  // Fence RL (reclaim_list.cc): the acquire load pairs with the release
  // decrement of a list's destructor.
  if (const std::uint16_t lists = s->reclaim_lists();
      lists != 0 && lists != callback_queue::kManyReclaimLists) {
    message m;
    m << "srcu: domain '" << s->name << "': destroyed while " << unsigned{lists}
      << " srcu::reclaim_list object(s) on it still exist (a list flushes into its domain when "
         "it is destroyed: destroy the lists first)";
    die(m);
  }
  // Readers first: one still inside would hold up the grace periods that
  // queued callbacks need, and ~domain() would hang in barrier() instead of
  // saying what is wrong.
  s->check_no_readers_at_destruction();
  // Every queued callback runs, and so does every callback they queue while
  // this runs (none is lost; none runs after the destructor returns). With
  // nothing queued this does not wait at all.
  const bool callbacks_ran = s->callbacks_pending() != 0;
  if (callbacks_ran) lockdep_wait(this, s->name, "~domain()", /*callbacks=*/true);
  while (s->callbacks_pending() != 0) s->barrier();
  engine().forget(s);
  pool().forget(s);
  // Fence BC (docs/design.md §2): pairs with callback_batch::run()'s
  // increment and complete_batch()'s release decrement; without it the state
  // is freed while a complete_batch() still wakes or enqueues it.
  s->wait_for_completing_batches();
  if (s->driver_active()) {
    die(s->name, "destroyed while a thread is inside synchronize() on it");
  }
  // Callbacks that ran just now may have been readers of this domain.
  if (callbacks_ran) s->check_no_readers_at_destruction();
  registry_remove(id_);
  lockdep_forget_domain(this);
  if (const shard_table t = s->shards(); t.first != s->small_shard) {
    for (std::uint32_t i = 0; i < t.count; ++i) t.first[i].~shard_block();
    ::operator delete(t.first, std::align_val_t{64});
  }
  shard_block* const small = s->small_shard;
  s->~domain_state();
  ::operator delete(s, std::align_val_t{alignof(domain_state)});
  small->~shard_block();
  ::operator delete(small, std::align_val_t{64});
  if (options_ != nullptr) ::operator delete(const_cast<saved_options*>(options_));
}

domain_state& domain::made_state() {
  if (domain_state* s = state()) return *s;
  return *state_maker::create(*this);
}

void domain::ask_engine(std::uint8_t what) noexcept {
  // Fence Q2 (docs/design.md §2): release, pairs with act_on_asks()'s
  // exchange. The engine may take the node through another thread's kick
  // and find this bit before this thread's own kick: without release here
  // it could see the bit but not the push before it (call_without_state()),
  // clear the bit, drain without the callback, and then take this kick
  // with no bit left: the callback stays staged (weakly ordered CPUs; found
  // in review).
  kick_.asks.fetch_or(what, std::memory_order_release);
  engine().kick(this);
}

const char* domain::name() const noexcept {
  if (const domain_state* s = state()) return s->name;
  return options_ != nullptr && options_->options.name != nullptr ? options_->options.name : "srcu";
}

bool domain::in_reader() const noexcept {
  const domain_state* s = state();
  return s != nullptr && s->thread_in_reader();
}

std::size_t domain::reader_slots() const noexcept {
  const domain_state* s = state();
  return s != nullptr ? s->slots_allocated() : 0;
}

counter_block* domain::register_reader() { return register_thread_slot(&made_state(), id_); }

// read_lock() off its fast path: a thread's first read_lock() of this domain
// (which may allocate, and so throw: read_lock() is noexcept, so a failure
// terminates), or every read_lock() when readers must fence (no membarrier).
read_token domain::read_lock_slow() noexcept {
  counter_block* slot = this_thread_slot(id_);
  if (slot == nullptr) slot = register_reader();
  std::uint64_t idx;
  if (g_rseq_readers.load(std::memory_order_relaxed)) {
    // As on the fast path: one restartable sequence, no straggler's window.
    idx = rseq_index_add_outlined(&index_, slot->locks);
  } else {
    idx = index_.load(kCounterOrder) & kIndexBit;
    // A straggler's window (docs/design.md §3, step 7), held open by a test.
    if (auto probe = g_test_probe.load(std::memory_order_relaxed); SRCU_UNLIKELY(probe != nullptr)) {
      probe("read_lock_slow: index loaded");
    }
    bump_private(slot->locks[idx]);
  }
  // Fence B (docs/design.md §2): pairs with A in readers_idle(); a real
  // fence when readers must fence (then the token asks read_unlock() for C).
  reader_fence();
  const std::uintptr_t fence = g_readers_fence.load(std::memory_order_relaxed) ? kFenceBit : 0;
  return read_token(reinterpret_cast<std::uintptr_t>(static_cast<counter_pair*>(slot)) | fence | idx);
}

// The signal-safe and down/up sections when the table has no per-CPU
// counters (small, or no rseq), or was published after the inline load.
read_token domain::shared_lock_slow(flavour f) noexcept {
  // Fence ST (docs/design.md §2): pairs with grow_shards()'s release store.
  const shard_table t = decode_shards(shards_.load(std::memory_order_acquire));
  std::uint64_t idx;
  shard_block* shard;
  if (t.percpu) {
    shard = &t.first[percpu_lock(&index_, &t.first->locks[0], &idx)];
    // Fence B (docs/design.md §2): as in shared_lock(): a compiler barrier.
    compiler_reader_fence();  // B: pairs with A in readers_idle()
  } else {
    const char probe = 0;
    shard = &t.first[shard_hint(&probe) & (t.count - 1)];
#if SRCU_HAVE_PERCPU
    if (g_rseq_readers.load(std::memory_order_relaxed)) {
      // The small table: its lock-prefixed add, in one sequence with the
      // index load as in read_lock() (no straggler).
      idx = rseq_index_add<true>(&index_, shard->locks);
    } else
#endif
    {
      idx = index_.load(kCounterOrder) & kIndexBit;
      bump_shared(shard->locks[idx]);
    }
    // Fence B (docs/design.md §2): pairs with A in readers_idle(); without it
    // the critical section's loads pass the lock increment, and a reader the
    // scan misses reads the old pointer.
    reader_fence();  // B: pairs with A in readers_idle()
    // The small table: ask once for the full one (a kick; no allocation,
    // no lock: async-signal-safe).
    if (domain_state* s = state(); SRCU_UNLIKELY(s == nullptr)) {
      // The engine makes the state, then the table. Asked already: the bit
      // is still set until the engine acts on it, and whoever set it kicks
      // after setting it (this ask carries nothing to order, so a relaxed
      // look is enough; a call()'s ask, which orders its push, always kicks).
      if ((kick_.asks.load(std::memory_order_relaxed) & kick_node::kAskShards) == 0) {
        ask_engine(kick_node::kAskShards);
      }
    } else if (SRCU_UNLIKELY(t.first == s->small_shard) && s->want_shards()) {
      engine().kick(s);
    }
  }
  return read_token(reinterpret_cast<std::uintptr_t>(static_cast<counter_pair*>(shard)) |
                    (std::uintptr_t{f} << kFlavourShift) | idx);
}

void domain::shared_unlock_slow(read_token token) noexcept {
  // Fence ST (docs/design.md §2): pairs with grow_shards()'s release store.
  const shard_table t = decode_shards(shards_.load(std::memory_order_acquire));
  if (t.percpu) {
    // Fence C (docs/design.md §2): as in shared_unlock(): a compiler barrier.
    compiler_reader_fence();  // C: pairs with A in readers_idle()
    percpu_add(&t.first->unlocks[token.raw_ & kIndexBit]);
    return;
  }
  // Fence C (docs/design.md §2): pairs with A in readers_idle(); without it
  // a critical-section access passes the unlock increment and runs after
  // the updater counted the unlock and freed the object.
  reader_fence();  // C: pairs with A in readers_idle()
  auto* block = reinterpret_cast<counter_pair*>(token.raw_ & kBlockMask);
  bump_shared(block->unlocks[token.raw_ & kIndexBit]);
}

void domain::unlock_without_lock() const noexcept {
  die(name(), "unlock() without a matching lock() on this thread (unlock() called once "
                    "too often; a std::scoped_lock/unique_lock released twice?)");
}

void domain::check_unlock(read_token token, flavour f) const noexcept {
  const char* const dname = name();
  if (token.raw_ == 0) {
    message m;
    m << "srcu: domain '" << dname << "': " << calls_of(f).unlock
      << " without a matching lock (default-constructed token, or unlock() without lock())";
    die(m);
  }
  const std::uintptr_t tf = (token.raw_ & kFlavourMask) >> kFlavourShift;
  if (tf != f) {
    message m;
    m << "srcu: domain '" << dname << "': " << calls_of(f).unlock << " given a token from "
      << calls_of(tf).lock << "; use " << calls_of(tf).unlock;
    die(m);
  }
  auto* block = reinterpret_cast<const counter_pair*>(token.raw_ & kBlockMask);
  if (block->domain != this) {
    message m;
    m << "srcu: domain '" << dname << "': " << calls_of(f).unlock
      << " given a token of another domain ('"
      << static_cast<const domain*>(block->domain)->name() << "')";
    die(m);
  }
  const unsigned idx = token.raw_ & kIndexBit;
  if (f == kThreadFlavour &&
      static_cast<const counter_block*>(block)->owner != current_thread_record()) {
    die(dname, "read_unlock() on another thread than its read_lock() (use down_read()/up_read() "
               "to end a section on another thread)");
  }
  // Unlocks first: every unlock counted has its lock before it, so a block
  // whose locks do not exceed its unlocks has no section left to end. The
  // shards are one block for this (an unlock lands on its CPU's block, or
  // on the table current when it runs).
  std::uint64_t unlocks = 0;
  std::uint64_t locks = 0;
  if (f == kThreadFlavour) {
    unlocks = block->unlocks[idx].load(std::memory_order_acquire);
    locks = block->locks[idx].load(std::memory_order_acquire);
  } else {
    // No state: never grown, the small block alone.
    const domain_state* s = state();
    const auto each = [&](auto&& f) {
      if (s != nullptr) s->for_each_shard(f);
      else f(*state_maker::born_shards(*this));
    };
    each([&](const shard_block& b) { unlocks += b.unlocks[idx].load(std::memory_order_acquire); });
    each([&](const shard_block& b) { locks += b.locks[idx].load(std::memory_order_acquire); });
  }
  if (static_cast<std::int64_t>(locks - unlocks) <= 0) {
    message m;
    m << "srcu: domain '" << dname << "': " << calls_of(f).unlock
      << " without a matching lock (token unlocked twice?)";
    die(m);
  }
}

}  // namespace srcu
