// ops.cc: the reader and update ops tables (see ops.h).

#include "ops.h"

#include <sched.h>

#include <mutex>

#include "torture.h"

namespace srcu_torture {

// --- Reader flavours ---------------------------------------------------------

namespace {

void lock_section(srcu::domain& dom, section_body& body) {
  const srcu::read_token t = dom.read_lock();
  body.inside(nullptr);
  dom.read_unlock(t);
}

void guard_section(srcu::domain& dom, section_body& body) {
  srcu::read_guard g(dom);
  body.inside(nullptr);
}

void scoped_section(srcu::domain& dom, section_body& body) {
  std::scoped_lock lk(dom);
  body.inside(nullptr);
}

void signal_safe_section(srcu::domain& dom, section_body& body) {
  const srcu::read_token t = dom.read_lock_signal_safe();
  body.inside(nullptr);
  dom.read_unlock_signal_safe(t);
}

// Sometimes the section ends on a helper thread: the body hands the token
// on, and the helper calls up_read().
void updown_section(srcu::domain& dom, section_body& body) {
  const srcu::read_token t = dom.down_read();
  if (!body.inside(&t)) dom.up_read(t);
}

}  // namespace

const reader_ops kReaderOps[kFlavourCount] = {
    {"lock", "read_lock", &lock_section},
    {"guard", nullptr, &guard_section},
    {"scoped", nullptr, &scoped_section},
    {"signal", "signal_safe", &signal_safe_section},
    {"updown", nullptr, &updown_section},
};

// --- Update primitives -------------------------------------------------------

void update_ctx::check_after_gp(srcu::poll_cookie c) {
  const char* const name = primitive_label(p);
  if (!dom.poll(c)) {
    r.error(kErrWriter, "domain %s: %s returned, but poll() of a cookie taken before it is false", td.name, name);
  }
  if (dom.grace_periods_completed() <= gp_before) {
    r.error(kErrWriter, "domain %s: %s returned, but grace_periods_completed() did not advance", td.name, name);
  }
}

namespace {

void sync_wait(update_ctx& u) {
  const srcu::poll_cookie c = u.dom.get_poll_cookie();
  u.dom.synchronize();
  u.check_after_gp(c);
}

void expedited_wait(update_ctx& u) {
  const srcu::poll_cookie c = u.dom.get_poll_cookie();
  u.dom.synchronize_expedited();
  u.check_after_gp(c);
}

// The element's callback_head is embedded in it; the callback moves it down
// the pipe and queues it again (writers.cc).
void call_retire(update_ctx& u, element* old) { queue_element_call(u.td, old); }

void retire_retire(update_ctx& u, element* old) { queue_element_retire(u.td, old); }

// The writer's reclaim_list runs the element's step on this writer's thread
// after a grace period: the step moves it down the pipe and defers it onto
// the same list again (from inside the list's own run), until it is freed.
// The list is the thread's: the step finds it through tls_reclaim_list.
thread_local srcu::reclaim_list* tls_reclaim_list = nullptr;

void reclaim_step(srcu::callback_head* h) {
  element* e = element_of(h);
  const int p = e->pipe.load(std::memory_order_relaxed) + 1;
  e->pipe.store(p, std::memory_order_relaxed);
  if (p >= kPipeLen) {
    e->owner->owner_run->pool().free(e);
    return;
  }
  tls_reclaim_list->defer(&e->cb, &reclaim_step);
}

void reclaim_retire(update_ctx& u, element* old) {
  if (u.w.reclaim == nullptr) {
    // Small batches and a short interval: more batches, merges and asks
    // per second than the defaults make.
    u.w.reclaim = std::make_unique<srcu::reclaim_list>(
        u.dom, srcu::reclaim_list_options{.batch_size = 4, .max_batches = 16,
                                          .grace_period_interval = std::chrono::microseconds(200)});
  }
  tls_reclaim_list = u.w.reclaim.get();
  u.w.reclaim->defer(&old->cb, &reclaim_step);
}

// Between updates: run what is due; leaving: flush (a grace period per
// round until every element has gone down the pipe).
void reclaim_advance(update_ctx& u, bool stopping) {
  if (u.w.reclaim == nullptr) return;
  tls_reclaim_list = u.w.reclaim.get();
  if (stopping) {
    u.w.reclaim.reset();  // flushes; the list goes before its domain does
  } else {
    (void)u.w.reclaim->reclaim();
  }
}

void cond_wait(update_ctx& u) {
  const srcu::poll_cookie c = u.dom.get_poll_cookie();  // taken before; maybe satisfied meanwhile
  if (u.rand.one_in(4)) sleep_us(u.rand.between(50, 2000));
  if (u.dom.poll(c)) u.w.cond_already_done.add();
  u.dom.cond_synchronize(c);
  u.check_after_gp(c);
}

void poll_wait(update_ctx& u) {
  const srcu::poll_cookie c = u.dom.start_poll();
  while (!u.dom.poll(c)) {
    if (u.rand.one_in(4)) sched_yield(); else sleep_us(u.rand.between(20, 200));
  }
  if (u.dom.grace_periods_completed() <= u.gp_before) {
    u.r.error(kErrWriter, "domain %s: poll() true but grace_periods_completed() did not advance", u.td.name);
  }
}

// barrier() after a call(): the probe's callback must have run.
void barrier_wait(update_ctx& u) {
  barrier_probe& probe = u.w.probe;
  probe.ran.store(false, std::memory_order_relaxed);
  u.r.cb_queued_[kCbProbe].add();
  u.dom.call(&probe.head, &probe_callback);
  u.dom.barrier();
  if (!probe.ran.load(std::memory_order_acquire)) {
    u.r.error(kErrWriter, "domain %s: barrier() returned before a callback queued before it ran", u.td.name);
  }
}

// --- Broken grace periods (--busted=MODE) --------------------------------------

// noop: a synchronous "grace period" that returns at once, without waiting
// for any reader. Elements fall down the pipe as fast as the writers update.
void busted_noop_wait(update_ctx& /*unused*/) {}

// early-flip: the element joins the grace period already in flight. The
// writer snapshots grace_periods_completed() after the removal and counts the
// next completion as the element's grace period (start_poll() makes sure one
// comes), as a call() that attached callbacks to the current grace period
// instead of the next would. When a grace period is in flight at the
// removal, its flip (or, in one that ends without a flip, its one scan of both
// indices) may have come before the removal: it waits only for readers that
// began before that point, so a reader that began after it, and still holds
// the element, sees the pipe reach 2 when it ends. Every grace period
// here is a real one; only the choice of which one counts is wrong (one phase
// short: the first scan of a correct grace period is what covers those
// readers). Asynchronous, like call(), so the writers' removals do not fall
// in step with the grace periods (a writer that waited would remove just
// after one ended, when none is in flight).
void busted_early_flip_retire(update_ctx& u, element* old) {
  u.w.early_flip.push_back({old, u.dom.grace_periods_completed()});
  (void)u.dom.start_poll();
}

void busted_early_flip_advance(update_ctx& u, bool stopping) {
  std::deque<early_flip_wait>& waiting = u.w.early_flip;
  const std::uint64_t completed = u.dom.grace_periods_completed();
  // Snapshots only grow along the deque: stop at the first still waiting.
  while (!waiting.empty() && completed > waiting.front().completed_at_removal) {
    element* e = waiting.front().e;
    waiting.pop_front();
    const int p = e->pipe.load(std::memory_order_relaxed) + 1;
    e->pipe.store(p, std::memory_order_relaxed);
    if (p >= kPipeLen) {
      u.r.pool().free(e);
      continue;
    }
    waiting.push_back({e, completed});  // the next step takes another (early) grace period
    (void)u.dom.start_poll();
  }
  if (stopping) {
    // The final drain's synchronize() rounds take the rest down the pipe.
    for (const early_flip_wait& x : waiting) u.r.add_to_waiting(u.td, x.e);
    waiting.clear();
  }
}

}  // namespace

const update_ops kUpdateOps[kUpdateOpsCount] = {
    // name, alias, summary, retire, wait, advance, timed
    {"sync", "synchronize", nullptr, nullptr, &sync_wait, nullptr, true},
    {"expedited", "synchronize_expedited", nullptr, nullptr, &expedited_wait, nullptr, true},
    {"call", nullptr, nullptr, &call_retire, nullptr, nullptr, false},
    {"retire", nullptr, nullptr, &retire_retire, nullptr, nullptr, false},
    {"cond", "cond_synchronize", nullptr, nullptr, &cond_wait, nullptr, true},
    {"poll", "start_poll", nullptr, nullptr, &poll_wait, nullptr, true},
    {"barrier", nullptr, nullptr, nullptr, &barrier_wait, nullptr, true},
    {"reclaim", "reclaim_list", nullptr, &reclaim_retire, nullptr, &reclaim_advance, false},
    // --busted=MODE only.
    {"noop", nullptr, "retire through a \"grace period\" that returns at once", nullptr, &busted_noop_wait, nullptr,
     false},
    {"early-flip", nullptr,
     "retire into the grace period already in flight (the next grace_periods_completed() step after the "
     "removal)",
     &busted_early_flip_retire, nullptr, &busted_early_flip_advance, false},
};

}  // namespace srcu_torture
