// A lock-free "this needs attention" queue of domains, and the futex word its
// consumer thread sleeps on. kick() is async-signal-safe: a Treiber push,
// guarded by a per-node flag so a node is on the stack at most once, and a
// raw futex wake only when the consumer sleeps. Used by the engine (grace
// periods) and the callback thread (ready batches).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "futex.h"
#include "srcu/detail/reader.h"  // kick_node

namespace srcu::detail {

class kick_queue {
 public:
  void kick(kick_node* n) noexcept {
    // Fence Q2 (docs/design.md §2): pairs with take_all()'s exchange(false):
    // without the flag a node is pushed twice; without release here a kick
    // folded into a pending one does not order what its caller wrote before
    // it (cb_staged, gp_seq_needed) before the step that follows take_all().
    if (n->queued.exchange(true, std::memory_order_acq_rel)) return;  // already on the stack
    kick_node* head = pending_.load(std::memory_order_relaxed);
    do {
      n->next = head;
    } while (!pending_.compare_exchange_weak(head, n, std::memory_order_release,
                                             std::memory_order_relaxed));
    // Fence Q1 (docs/design.md §2): pairs with sleep()'s sleeping_ store and
    // futex compare of wake_word_; without seq_cst this can read sleeping_
    // false while the consumer's futex reads the old word: it sleeps with
    // the node queued.
    wake_word_.fetch_add(1, std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst)) futex_wake(wake_word_, 1);
  }

  // Wakes the consumer without queueing a node (it re-runs its loop).
  void wake() noexcept {
    // Fence Q1 (docs/design.md §2): as in kick(); pairs with sleep().
    wake_word_.fetch_add(1, std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst)) futex_wake(wake_word_, 1);
  }

  // Consumer: read before take_all(), pass to sleep().
  std::uint32_t wake_generation() const noexcept {
    // Fence Q1 (docs/design.md §2): pairs with kick()'s bump; acquire is
    // enough (seq_cst not needed): a push whose bump this reads is seen by
    // take_all(), a later one moves the word before sleep()'s futex compare.
    return wake_word_.load(std::memory_order_seq_cst);
  }

  // Consumer: every kicked node, each with its flag cleared (a later kick
  // queues it again). `f(owner)` is called per node.
  template <class F>
  void take_all(F&& f) {
    // Fence Q2 (docs/design.md §2): acquires the pushes; the clear of queued
    // below acquires the kicks folded into them.
    kick_node* n = pending_.exchange(nullptr, std::memory_order_acquire);
    while (n != nullptr) {
      kick_node* next = n->next;
      n->next = nullptr;
      // Fence Q2 (docs/design.md §2): pairs with kick()'s exchange. An RMW,
      // so it reads the last kick that found the flag set and acquires what
      // that kicker wrote; a later kick queues the node again. (A plain
      // store acquired nothing: the step could miss a folded kick's
      // cb_staged or gp_seq_needed in the C++ model.)
      n->queued.exchange(false, std::memory_order_acq_rel);
      f(n->owner);
      n = next;
    }
  }

  // Consumer: sleeps unless kicked since `generation` (timeout <= 0: forever).
  void sleep(std::uint32_t generation, std::chrono::nanoseconds timeout) noexcept {
    // Fence Q1 (docs/design.md §2): pairs with kick()/wake()'s wake_word_
    // bump then sleeping_ load; the futex compares wake_word_ after this
    // store. Without seq_cst both sides read the other's old value and the
    // engine sleeps through a kick. The pending_ check only saves the system
    // call (seq_cst not needed).
    sleeping_.store(true, std::memory_order_seq_cst);
    if (pending_.load(std::memory_order_seq_cst) == nullptr) {
      futex_wait(wake_word_, generation, timeout);
    }
    sleeping_.store(false, std::memory_order_relaxed);
  }

  void reset_after_fork() noexcept { sleeping_.store(false, std::memory_order_relaxed); }

 private:
  std::atomic<kick_node*> pending_{nullptr};
  std::atomic<std::uint32_t> wake_word_{0};
  std::atomic<bool> sleeping_{false};
};

}  // namespace srcu::detail
