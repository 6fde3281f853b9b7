// srcu::reclaim_list (include/srcu/reclaim_list.h): deferred objects in
// FIFO batches, each with the poll cookie taken when it closed, in a ring of
// at most max_batches. A batch is run when poll() says its cookie is done;
// cookies are snapshots of one sequence taken in order, so the batches are
// done in ring order and reclaiming stops at the first one that is not.
// No atomics of its own: one owner (srcu's part is get_poll_cookie(),
// poll() and start_poll()).

#include "srcu/reclaim_list.h"

#include <algorithm>

#include "diagnostics.h"
#include "domain_state.h"
#include "futex.h"

namespace srcu::detail {

// Fence RL: the release decrement (after the list's last touch of the
// domain, its flush) pairs with ~domain()'s acquire load in reclaim_lists();
// without it ~domain() could free the state while the flush still reads it.
void callback_queue::reclaim_list_made() noexcept {
  std::uint16_t n = cb_reclaim_lists.load(std::memory_order_relaxed);
  while (n != kManyReclaimLists &&
         !cb_reclaim_lists.compare_exchange_weak(n, static_cast<std::uint16_t>(n + 1),
                                                 std::memory_order_relaxed)) {
  }
}

void callback_queue::reclaim_list_gone() noexcept {
  std::uint16_t n = cb_reclaim_lists.load(std::memory_order_relaxed);
  while (n != kManyReclaimLists &&
         !cb_reclaim_lists.compare_exchange_weak(n, static_cast<std::uint16_t>(n - 1),
                                                 std::memory_order_release)) {  // RL
  }
}

}  // namespace srcu::detail

namespace srcu {

using detail::die;
using detail::monotonic_ns;
using detail::state_maker;

reclaim_list::reclaim_list(domain& d, const reclaim_list_options& options)
    : domain_(d),
      batch_size_(options.batch_size),
      max_batches_(options.max_batches),
      interval_ns_(options.grace_period_interval.count() <= 0
                       ? 0
                       : static_cast<std::uint64_t>(options.grace_period_interval.count()) * 1'000u) {
  if (batch_size_ == 0 || max_batches_ == 0) {
    die(d.name(), "reclaim_list: reclaim_list_options::batch_size and max_batches must be at least 1");
  }
  ring_ = std::make_unique<batch[]>(max_batches_);
  state_maker::made(d).reclaim_list_made();
}

reclaim_list::~reclaim_list() {
  flush();
  detail::domain_state::of(domain_)->reclaim_list_gone();  // made by the constructor
}

void reclaim_list::bad_defer(const callback_head* head, void (*func)(callback_head*)) const noexcept {
  if (head == nullptr || func == nullptr) {
    die(domain_.name(), "reclaim_list::defer() with a null callback_head or a null function");
  }
  die(domain_.name(), "reclaim_list::defer(): this callback_head is already queued (deferred or "
                      "call()ed again before its function ran)");
}

// The open batch joins the ring with a cookie taken now: a grace period that
// ends after this snapshot began after every one of its objects was unlinked
// (the owner unlinked them before deferring them).
void reclaim_list::close_open() noexcept {
  if (open_.first == nullptr) return;
  open_.cookie = domain_.get_poll_cookie();
  waiting_objects_ += open_.count;
  if (waiting_ < max_batches_) {
    ring_[(oldest_ + waiting_) % max_batches_] = open_;
    ++waiting_;
  } else {
    // Full (grace periods held up): the newest batch takes these too, and
    // the later cookie, which covers both. Nothing allocated, nothing waited for.
    batch& newest = ring_[(oldest_ + waiting_ - 1) % max_batches_];
    newest.last->next = open_.first;
    newest.last = open_.last;
    newest.count += open_.count;
    newest.cookie = open_.cookie;
  }
  open_ = batch{};
}

std::size_t reclaim_list::run(batch b) noexcept {
  for (callback_head* h = b.first; h != nullptr;) {
    callback_head* next = h->next;  // before the function frees h
    // The objects waited out a grace period (a millisecond or more) and are
    // cold: start the next one's miss while this one's function runs.
    if (next != nullptr) __builtin_prefetch(next);
    void (*func)(callback_head*) = h->func;
    h->func = nullptr;  // not queued any more: it may be deferred again
    --waiting_objects_;  // pending() is exact inside the function too
    func(h);
    h = next;
  }
  return b.count;
}

// The done batches, oldest first. A function may defer() onto this list: the
// open batch takes it, and a batch it closes goes to the ring's tail, after
// the ones this loop takes (each taken off the ring before it runs).
std::size_t reclaim_list::run_done() noexcept {
  std::size_t ran = 0;
  running_ = true;
  while (waiting_ != 0 && domain_.poll(ring_[oldest_].cookie)) {
    const batch b = ring_[oldest_];
    oldest_ = (oldest_ + 1) % max_batches_;
    --waiting_;
    ran += run(b);
  }
  running_ = false;
  return ran;
}

void reclaim_list::ask_for_grace_period() noexcept {
  if (waiting_ == 0) return;
  const std::uint64_t now = interval_ns_ == 0 ? 0 : monotonic_ns();
  if (interval_ns_ != 0 && now - last_ask_ns_ < interval_ns_) return;
  last_ask_ns_ = now;
  (void)domain_.start_poll();
}

// Runs first, then closes: a batch closed into a full ring joins the newest
// and takes a fresh cookie, so closing first would push the newest batch's
// cookie forward before the batches ahead of it were run (with max_batches
// 1, at every close: nothing ran until flush()).
std::size_t reclaim_list::reclaim() noexcept {
  if (running_) {  // from inside one of its own functions: the outer run goes on
    close_open();
    return 0;
  }
  const std::size_t ran = run_done();
  close_open();  // its fresh cookie cannot be done yet
  ask_for_grace_period();
  return ran;
}

void reclaim_list::close_and_reclaim() noexcept { (void)reclaim(); }

void reclaim_list::flush() {
  if (running_) {
    die(domain_.name(), "reclaim_list::flush() or its destructor from inside one of its own "
                        "deferred functions (they would run inside each other)");
  }
  while (pending() != 0) {
    close_open();
    domain_.synchronize();  // every waiting cookie is done after this
    (void)run_done();       // and what the functions deferred meanwhile goes round again
  }
}

}  // namespace srcu
