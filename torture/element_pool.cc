// element_pool.cc: elements are never returned to malloc during a run.

#include "element_pool.h"

namespace srcu_torture {

element_pool::~element_pool() {
  for (element* e : all_) delete e;
}

// A live element with pipe count 0 and a new generation. The caller
// publishes it with a release store.
element* element_pool::get(torture_domain* owner) {
  element* e = nullptr;
  {
    std::lock_guard lk(mutex_);
    if (!quarantine_.empty() && (now_ns() - quarantine_.front()->freed_at_ns >= kQuarantineNs ||
                                 all_.size() >= kMaxElements)) {
      e = quarantine_.front();
      quarantine_.pop_front();
      reused_.add();
    }
  }
  if (e == nullptr) {
    e = new element;
    std::lock_guard lk(mutex_);
    all_.push_back(e);
    allocated_.add();
  }
  const std::uint64_t gen = e->generation.load(std::memory_order_relaxed) + 1;
  e->generation.store(gen, std::memory_order_relaxed);
  for (int i = 0; i < kPayloadWords; ++i) e->payload[i].store(payload_word(gen, i), std::memory_order_relaxed);
  e->pipe.store(0, std::memory_order_relaxed);
  e->owner = owner;
  e->removal_seq = 0;
  e->magic.store(kMagicLive, std::memory_order_relaxed);
  return e;
}

// Poison (the `freed` flag is the magic) and quarantine.
void element_pool::free(element* e) {
  e->magic.store(kMagicFreed, std::memory_order_relaxed);
  for (auto& w : e->payload) w.store(kPoison, std::memory_order_relaxed);
  e->freed_at_ns = now_ns();
  std::lock_guard lk(mutex_);
  quarantine_.push_back(e);
  freed_.add();
}

}  // namespace srcu_torture
