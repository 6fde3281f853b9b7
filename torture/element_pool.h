// element_pool.h: the elements that readers walk, and the pool that never
// gives their memory back during a run.

#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "srcu/srcu.h"
#include "support.h"

namespace srcu_torture {

constexpr std::uint32_t kMagicLive = 0x1e1ec0deu;
constexpr std::uint32_t kMagicFreed = 0x6b6b6b6bu;  // the kernel's POISON_FREE byte
constexpr std::uint64_t kPoison = 0x6b6b6b6b6b6b6b6bull;
constexpr int kPayloadWords = 6;
constexpr std::int64_t kQuarantineNs = 1'000'000'000;  // a freed element is reused 1 s later
constexpr std::size_t kMaxElements = 2'000'000;        // past this, quarantine is cut short

// --- Elements ------------------------------------------------------------------

struct torture_domain;

// What readers walk. Every field a reader touches is atomic, so reading a
// freed (poisoned) or recycled element is a detected error, not undefined.
struct element {
  srcu::callback_head cb;  // the call() cycle; see element_of()
  std::atomic<std::uint32_t> magic{kMagicLive};
  std::atomic<int> pipe{0};
  std::atomic<std::uint64_t> generation{0};
  std::atomic<std::uint64_t> payload[kPayloadWords];
  // Writer side only; readers never look at these.
  torture_domain* owner = nullptr;
  std::uint64_t removal_seq = 0;
  std::int64_t freed_at_ns = 0;
};

inline element* element_of(srcu::callback_head* h) noexcept {
  return reinterpret_cast<element*>(reinterpret_cast<char*>(h) - offsetof(element, cb));
}

inline std::uint64_t payload_word(std::uint64_t generation, int i) noexcept {
  return ((generation + 1) * 0x9e3779b97f4a7c15ull) ^ (static_cast<std::uint64_t>(i) * 0xbf58476d1ce4e5b9ull);
}

// Elements are never returned to malloc during a run. free() poisons and
// quarantines; get() reuses only elements freed kQuarantineNs ago, so a

class element_pool {
 public:
  element_pool() = default;
  element_pool(const element_pool&) = delete;
  element_pool& operator=(const element_pool&) = delete;
  ~element_pool();

  // A live element with pipe count 0 and a new generation. The caller
  // publishes it with a release store.
  element* get(torture_domain* owner);
  // Poison (the `freed` flag is the magic) and quarantine.
  void free(element* e);

  std::uint64_t allocated() const noexcept { return allocated_.get(); }
  std::uint64_t freed() const noexcept { return freed_.get(); }
  std::uint64_t reused() const noexcept { return reused_.get(); }
  std::size_t quarantined() {
    std::lock_guard lk(mutex_);
    return quarantine_.size();
  }
  std::size_t total() {
    std::lock_guard lk(mutex_);
    return all_.size();
  }

 private:
  std::mutex mutex_;
  std::deque<element*> quarantine_;  // guarded by mutex_
  std::vector<element*> all_;        // guarded by mutex_
  shared_counter allocated_, freed_, reused_;
};

}  // namespace srcu_torture
