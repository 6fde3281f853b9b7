// ops.h: the torture's ops tables, after rcutorture's struct rcu_torture_ops
// and liburcu's tests/regression/rcutorture.h. One reader entry per flavour
// of read-side critical section, one update entry per update primitive. The
// torture program's own broken grace periods (--busted=MODE, as rcutorture's
// rcu_busted_ops) are update entries too, after the real ones; none of them
// is, or may ever be, part of the library.
//
// The readers (readers.cc) and writers (writers.cc) dispatch through these
// tables only; adding a flavour or a primitive is adding an entry here and
// in ops.cc.

#pragma once

#include <cstdint>

#include "srcu/srcu.h"

namespace srcu_torture {

class rng;
class run;
struct element;
struct torture_domain;
struct writer_state;

// --- Readers -----------------------------------------------------------------

enum flavour : int { kLock, kGuard, kScoped, kSignalSafe, kUpDown, kFlavourCount };

// What a reader does inside its section (readers.cc): load and check the
// current element, nest, delay.
class section_body {
 public:
  // `token` is non-null only for a flavour whose section may end on another
  // thread (down_read()); true: the body handed the token on, and that
  // thread ends the section.
  virtual bool inside(const srcu::read_token* token) = 0;

 protected:
  ~section_body() = default;
};

struct reader_ops {
  const char* name;   // --flavours, the report
  const char* alias;  // a longer spelling --flavours accepts too, or nullptr
  // One read-side critical section of this flavour on `dom` around
  // body.inside().
  void (*section)(srcu::domain& dom, section_body& body);
};

extern const reader_ops kReaderOps[kFlavourCount];

// --- Updates -----------------------------------------------------------------

// Update primitives: one entry each in kUpdateOps. The busted ones follow the
// real ones and are chosen only by --busted=MODE.
enum primitive : int {
  kSync,
  kExpedited,
  kCall,
  kRetire,
  kCond,
  kPoll,
  kBarrier,
  kReclaim,
  kPrimitiveCount,  // the real ones, selectable with --primitives
  kBustedNoop = kPrimitiveCount,
  kBustedEarlyFlip,
  kUpdateOpsCount
};

// One update in progress: the writer, its domain, and what the entry needs
// to check its own contract.
struct update_ctx {
  run& r;
  writer_state& w;
  torture_domain& td;
  srcu::domain& dom;
  rng& rand;
  primitive p;
  std::uint64_t gp_before = 0;  // grace_periods_completed() before wait()

  // A synchronous grace period returned: a cookie taken before it must be
  // done, and grace_periods_completed() must have advanced.
  void check_after_gp(srcu::poll_cookie c);
};

struct update_ops {
  const char* name;     // --primitives (busted: --busted=NAME), the report
  const char* alias;    // a longer spelling --primitives accepts too, or nullptr
  const char* summary;  // busted entries: printed at the start of the run
  // Asynchronous: hands the removed element (pipe count 1) on; it comes back
  // down the pipe through a callback or advance(). Null: synchronous.
  void (*retire)(update_ctx& u, element* old);
  // Synchronous: one grace period. The writer keeps the element on the
  // domain's waiting list meanwhile and moves the list down the pipe after.
  void (*wait)(update_ctx& u);
  // Between updates, and once more with stopping = true when the writer
  // leaves: moves elements the entry keeps to itself along. Null: none kept.
  void (*advance)(update_ctx& u, bool stopping);
  bool timed;  // counted in the report's longest grace periods
};

extern const update_ops kUpdateOps[kUpdateOpsCount];

// The name an update slot has in messages: busted entries are "busted".
inline const char* primitive_label(int p) {
  return p >= kPrimitiveCount ? "busted" : kUpdateOps[p].name;
}

// Delivery scenarios (--delivery LIST, on by default): kDeliveryScenarioOps in delivery.h.
enum delivery_scenario : int { kCrossBarrier, kNestedDomains, kDomainChurn, kDeliveryScenarios };

}  // namespace srcu_torture
