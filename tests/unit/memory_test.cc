// What a thread allocates when it first reads in a domain. Its own binary:
// it replaces the global operator new to count each thread's bytes.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "srcu/srcu.h"

namespace {
thread_local std::size_t t_allocated = 0;
}  // namespace

void* operator new(std::size_t n) {
  t_allocated += n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

// Bytes the calling thread allocates in its first read of `dom`.
std::size_t first_read_cost(srcu::domain& dom) {
  std::size_t bytes = 0;
  std::thread([&] {
    const std::size_t before = t_allocated;
    dom.read_unlock(dom.read_lock());
    bytes = t_allocated - before;
  }).join();
  return bytes;
}

// Sequence: 20,000 domains are created and destroyed in creation order; a
// new domain is created; a new thread reads in it. The new domain must
// reuse the lowest free id: were it given the last id freed (19,999), the
// thread's slot table (one pointer per id up to its highest) would take
// 256 KiB.
TEST(Memory, NewDomainReusesTheLowestFreeId) {
  srcu::domain reference({.name = "reference"});
  const std::size_t baseline = first_read_cost(reference);
  {
    std::vector<std::unique_ptr<srcu::domain>> many;
    for (int i = 0; i < 20'000; ++i) many.push_back(std::make_unique<srcu::domain>());
  }
  srcu::domain fresh({.name = "fresh"});
  const std::size_t cost = first_read_cost(fresh);
  EXPECT_LE(cost, baseline + 1024) << "first read in a new domain allocated " << cost
                                   << " bytes; in the reference domain " << baseline;
}

}  // namespace
