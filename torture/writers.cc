// writers.cc: writers replace each domain's current element and retire the
// old one through an update primitive (the ops table, ops.cc); the pipe
// bookkeeping that moves retired elements towards being freed.

#include <mutex>
#include <vector>

#include "torture.h"

namespace srcu_torture {

// --- Callbacks (plain functions: srcu hands back only the head) -----------------

void element_callback(srcu::callback_head* h) {
  element* e = element_of(h);
  run& r = *e->owner->owner_run;
  r.cb_invoked_[kCbElement].add();
  r.callback_step(e, /*via_retire=*/false);
}

void element_retirer::operator()(element* e) const {
  run& r = *e->owner->owner_run;
  r.cb_invoked_[kCbRetire].add();
  r.callback_step(e, /*via_retire=*/true);
}

void probe_callback(srcu::callback_head* h) {
  auto* p = reinterpret_cast<barrier_probe*>(h);
  p->owner->cb_invoked_[kCbProbe].add();
  p->ran.store(true, std::memory_order_release);
}


// --- Writers ----------------------------------------------------------------------

std::uint64_t run::add_to_waiting(torture_domain& td, element* e) {
  std::lock_guard lk(td.waiting_mutex);
  const std::uint64_t seq = td.removal_seq.load(std::memory_order_relaxed) + 1;
  e->removal_seq = seq;
  td.waiting.push_back(e);
  // Release: a writer whose snapshot reads seq sees the removal (the
  // exchange) as happening before its grace period begins.
  td.removal_seq.store(seq, std::memory_order_release);
  return seq;
}

// A grace period that began after `snapshot` was taken has ended: every
// waiting element removed at or before the snapshot moves one step down the
// pipe; at kPipeLen it is freed.
void run::pipe_update(torture_domain& td, std::uint64_t snapshot) {
  std::vector<element*> to_free;
  {
    std::lock_guard lk(td.waiting_mutex);
    auto keep = td.waiting.begin();
    for (element* e : td.waiting) {
      if (e->removal_seq <= snapshot) {
        const int p = e->pipe.load(std::memory_order_relaxed) + 1;
        e->pipe.store(p, std::memory_order_relaxed);
        if (p >= kPipeLen) {
          to_free.push_back(e);
          continue;
        }
      }
      *keep++ = e;
    }
    td.waiting.erase(keep, td.waiting.end());
  }
  for (element* e : to_free) pool_.free(e);
}

// A callback's grace period (which began after its call()) has ended.
void run::callback_step(element* e, bool via_retire) {
  const int p = e->pipe.load(std::memory_order_relaxed) + 1;
  e->pipe.store(p, std::memory_order_relaxed);
  if (p >= kPipeLen) {
    pool_.free(e);
    return;
  }
  if (via_retire) queue_element_retire(*e->owner, e); else queue_element_call(*e->owner, e);
}

void queue_element_call(torture_domain& td, element* e) {
  td.owner_run->cb_queued_[kCbElement].add();
  td.dom->call(&e->cb, &element_callback);
}

void queue_element_retire(torture_domain& td, element* e) {
  td.owner_run->cb_queued_[kCbRetire].add();
  td.dom->retire(e, element_retirer{});
}

void run::note_latency(writer_state& w, primitive p, std::int64_t ns) {
  if (ns > w.longest_ns[p].load(std::memory_order_relaxed)) w.longest_ns[p].store(ns, std::memory_order_relaxed);
  torture_domain& td = *w.td;
  std::int64_t cur = td.longest_gp_ns.load(std::memory_order_relaxed);
  while (ns > cur) {
    if (td.longest_gp_ns.compare_exchange_weak(cur, ns, std::memory_order_relaxed)) {
      td.longest_gp_primitive.store(p, std::memory_order_relaxed);
      break;
    }
  }
}

// One update: publish a fresh element, then retire the old one through the
// primitive's entry in kUpdateOps.
void run::update(writer_state& w, primitive p, rng& rand) {
  const update_ops& op = kUpdateOps[p];
  torture_domain& td = *w.td;
  srcu::domain& dom = *td.dom;
  element* fresh = pool_.get(&td);
  element* old = td.current.exchange(fresh, std::memory_order_acq_rel);
  fault(kFpWriterAfterPublish, rand);
  // Removed: 0 -> 1. Readers that picked it up before the exchange may see 1.
  old->pipe.fetch_add(1, std::memory_order_relaxed);

  update_ctx u{*this, w, td, dom, rand, p};
  if (op.retire != nullptr) {
    op.retire(u, old);
    return;
  }
  // Synchronous primitives: the element waits on the domain's list; the
  // snapshot names every element removed before this grace period begins.
  add_to_waiting(td, old);
  const std::uint64_t snapshot = td.removal_seq.load(std::memory_order_acquire);
  fault(kFpWriterBeforeGp, rand);
  const std::int64_t t0 = now_ns();
  u.gp_before = dom.grace_periods_completed();
  op.wait(u);
  if (op.timed) note_latency(w, p, now_ns() - t0);
  fault(kFpWriterAfterGp, rand);
  pipe_update(td, snapshot);
}

// Each writer runs the selected primitives in rotation (--busted: only the
// busted entry).
void run::writer_thread(writer_state& w) {
  rng rand(seed_for(2, static_cast<std::uint64_t>(w.id)));
  std::size_t next = static_cast<std::size_t>(w.id);
  const update_ops* busted = opt_.busted;
  update_ctx u{*this, w, *w.td, *w.td->dom, rand, kBustedNoop};
  w.last_progress_ns.store(now_ns(), std::memory_order_relaxed);
  while (!stop_writers_.load(std::memory_order_relaxed)) {
    fault(kFpWriterBetween, rand);
    if (opt_.fwd_progress) flood_burst(w);
    if (busted != nullptr && busted->advance != nullptr) busted->advance(u, false);
    kUpdateOps[kReclaim].advance(u, false);
    const primitive p = busted != nullptr ? static_cast<primitive>(busted - kUpdateOps)
                                          : primitives_[next++ % primitives_.size()];
    w.in_primitive.store(p, std::memory_order_relaxed);
    update(w, p, rand);
    w.in_primitive.store(-1, std::memory_order_relaxed);
    w.ops[p].add();
    w.td->updates.add();
    w.last_progress_ns.store(now_ns(), std::memory_order_relaxed);
    if (rand.one_in(2)) sleep_us(rand.between(20, 300));
  }
  if (busted != nullptr && busted->advance != nullptr) busted->advance(u, true);
  kUpdateOps[kReclaim].advance(u, true);
  w.w.done.store(true, std::memory_order_release);
}

}  // namespace srcu_torture
