// srcu::callback_head, srcu::executor, srcu::callback_batch — deferred work.
//
// domain::call(head, func) queues func(head) to run after a grace period, on
// a library thread or on the domain's executor. The head is intrusive: embed
// it in the object to reclaim, and recover the object in the callback:
//
//   struct node { srcu::callback_head rcu; int key; };
//   dom.call(&n->rcu, [](srcu::callback_head* h) {
//     delete reinterpret_cast<node*>(reinterpret_cast<char*>(h) - offsetof(node, rcu));
//   });
//
// (domain::retire(p) and domain::call(lambda) do this for you, allocating.)
//
// Executors. By default callbacks run on srcu's callback thread, one batch
// after another for all domains: a callback that sleeps delays later
// callbacks of every domain on that thread (never any domain's grace
// periods). A domain may name its own executor in domain_options; srcu hands
// it ready batches with no library lock held, from the callback thread, at
// most one batch per domain outstanding, so callbacks keep their order even
// on a multi-threaded executor.
#pragma once

#include <cstddef>

namespace srcu {

namespace detail {
struct domain_state;
}

// Intrusive callback node, owned by the caller until its function has been
// invoked. srcu clears `func` just before invoking it, so a head may be
// queued again (even from inside its own callback) once it has run.
struct callback_head {
  callback_head* next = nullptr;
  void (*func)(callback_head*) = nullptr;
};

// A ready batch of one domain's callbacks, handed to an executor. Move-only.
// run() invokes them in queueing order and then reports the batch complete
// (barrier() and ~domain() wait for that). It must be called exactly once;
// destroying a batch that was never run aborts with a message.
class callback_batch {
 public:
  callback_batch(callback_batch&& other) noexcept;
  callback_batch& operator=(callback_batch&& other) noexcept;
  callback_batch(const callback_batch&) = delete;
  callback_batch& operator=(const callback_batch&) = delete;
  ~callback_batch();

  void run() noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  friend struct detail::domain_state;
  callback_batch(detail::domain_state* d, callback_head* head, std::size_t size) noexcept
      : domain_(d), head_(head), size_(size) {}
  detail::domain_state* domain_ = nullptr;
  callback_head* head_ = nullptr;
  std::size_t size_ = 0;
};

class executor {
 public:
  // Takes a ready batch and must eventually call batch.run() exactly once,
  // on any thread. Called from srcu's callback thread with no srcu lock held;
  // it may take its own locks, and call domain::call() on any domain (also
  // while holding them). It should not wait for callbacks of the same domain
  // to finish (the next batch is handed over only after this one ran).
  virtual void submit(callback_batch batch) noexcept = 0;

 protected:
  ~executor() = default;
};

}  // namespace srcu
