// readers.cc: reader threads, their sections (dispatched through
// kReaderOps, ops.cc) and what each section checks before its unlock; the
// hand-off helpers that end down_read() sections with up_read().

#include <sched.h>

#include <algorithm>
#include <limits>
#include <mutex>

#include "torture.h"

namespace srcu_torture {

// --- Readers ------------------------------------------------------------------------

flavour run::pick_flavour(rng& rand) const noexcept {
  return flavours_[rand.below(static_cast<std::uint32_t>(flavours_.size()))];
}

observation run::begin_observation(torture_domain& td, flavour f, int depth) {
  observation o;
  o.td = &td;
  o.f = f;
  o.depth = depth;
  o.gp_start = td.dom->grace_periods_completed();
  o.e = td.current.load(std::memory_order_acquire);
  o.generation = o.e->generation.load(std::memory_order_relaxed);
  if (o.e->magic.load(std::memory_order_relaxed) != kMagicLive) {
    error(kErrFreed, "domain %s: the current element was already freed when a %s section began",
          td.name, kReaderOps[f].name);
  }
  return o;
}

// The end of a section: what rcutorture's reader does before its unlock.
void run::end_observation(const observation& o, reader_stats& st) {
  element* e = o.e;
  const int pipe = e->pipe.load(std::memory_order_relaxed);
  const std::uint32_t magic = e->magic.load(std::memory_order_relaxed);
  const std::uint64_t gen = e->generation.load(std::memory_order_relaxed);
  bool corrupt = false;
  for (int i = 0; i < kPayloadWords; ++i) {
    if (e->payload[i].load(std::memory_order_relaxed) != payload_word(o.generation, i)) corrupt = true;
  }
  const std::uint64_t gps = o.td->dom->grace_periods_completed() - o.gp_start;
  st.pipe[std::clamp(pipe, 0, kPipeLen)].add();
  st.batch[std::min<std::uint64_t>(gps, kPipeLen)].add();
  if (pipe > 1) {
    error(kErrPipe,
          "domain %s: %s section (depth %d) ends with pipe count %d: %d grace period(s) "
          "ended after the element was removed while this reader still held it",
          o.td->name, kReaderOps[o.f].name, o.depth, pipe, pipe - 1);
  }
  if (magic != kMagicLive) {
    error(kErrFreed, "domain %s: %s section (depth %d) holds an element that was freed (poison seen)",
          o.td->name, kReaderOps[o.f].name, o.depth);
  } else if (gen != o.generation) {
    error(kErrRecycled, "domain %s: %s section (depth %d): element reused under the reader (generation %llu -> %llu)",
          o.td->name, kReaderOps[o.f].name, o.depth, ull(o.generation), ull(gen));
  } else if (corrupt) {
    error(kErrCorrupt, "domain %s: %s section (depth %d): element payload corrupt", o.td->name,
          kReaderOps[o.f].name, o.depth);
  }
  if (gps > 1) {
    error(kErrBatch, "domain %s: %llu grace periods completed inside one %s section (at most 1 may)",
          o.td->name, ull(gps), kReaderOps[o.f].name);
  }
}

void run::middle(reader_ctx& rc, torture_domain& td, int depth) {
  fault(kFpReaderInSection, rc.rand);
  if (td.sleepy && depth == 0) {
    // The sleepy domain: hold the section for a long stretch. Only this
    // domain's grace periods may wait for it.
    sleep_ns(std::int64_t{rc.rand.between(static_cast<std::uint32_t>(opt_.sleepy_min_ms),
                                          static_cast<std::uint32_t>(opt_.sleepy_max_ms))} *
             1'000'000);
    rc.stats->long_sleeps.add();
  } else if (!rc.storm && opt_.reader_delay_us > 0 && rc.rand.one_in(16)) {
    rc.stats->short_delays.add();
    const auto us = rc.rand.between(1, static_cast<std::uint32_t>(opt_.reader_delay_us));
    switch (rc.rand.below(3)) {
      case 0: spin_ns(std::int64_t{us} * 1000); break;
      case 1: sched_yield(); break;
      default: sleep_us(us); break;
    }
  }
  if (depth < opt_.max_nest && rc.rand.one_in(4)) {
    // Nested section: a random flavour, mostly on the same domain.
    torture_domain& inner = (domains_.size() > 1 && rc.rand.one_in(4))
                                ? *domains_[rc.rand.below(static_cast<std::uint32_t>(domains_.size()))]
                                : td;
    section(rc, inner, depth + 1);
  }
}

// The body of a section: what rcutorture's reader does between its lock and
// its unlock, whatever the flavour.
class run::reader_body final : public section_body {
 public:
  reader_body(run& r, reader_ctx& rc, torture_domain& td, flavour f, int depth)
      : run_(r), rc_(rc), td_(td), f_(f), depth_(depth) {}

  bool inside(const srcu::read_token* token) override {
    const observation o = run_.begin_observation(td_, f_, depth_);
    run_.middle(rc_, td_, depth_);
    // down_read(): the token and what was read travel together to a helper,
    // which checks and calls up_read().
    if (token != nullptr && run_.handoff_enabled_ && rc_.rand.one_in(4) && run_.try_handoff({*token, o})) {
      return true;
    }
    run_.fault(kFpReaderBeforeUnlock, rc_.rand);
    run_.end_observation(o, *rc_.stats);
    return false;
  }

 private:
  run& run_;
  reader_ctx& rc_;
  torture_domain& td_;
  const flavour f_;
  const int depth_;
};

void run::section(reader_ctx& rc, torture_domain& td, int depth) {
  const flavour f = pick_flavour(rc.rand);
  rc.stats->ops[f].add();
  if (depth > 0) rc.stats->nested.add();
  reader_body body(*this, rc, td, f, depth);
  kReaderOps[f].section(*td.dom, body);
}

bool run::try_handoff(const handoff_item& item) {
  {
    std::lock_guard lk(handoff_mutex_);
    if (handoff_stop_ || handoff_queue_.size() >= kHandoffQueueMax) return false;
    handoff_queue_.push_back(item);
  }
  handoff_cv_.notify_one();
  return true;
}

void run::handoff_thread(int i) {
  rng rand(seed_for(3, static_cast<std::uint64_t>(i)));
  reader_stats& st = handoff_stats_[i];
  std::unique_lock lk(handoff_mutex_);
  for (;;) {
    handoff_cv_.wait(lk, [&] { return !handoff_queue_.empty() || handoff_stop_; });
    if (handoff_queue_.empty()) break;  // stopping, and everything handed over has ended
    const handoff_item item = handoff_queue_.front();
    handoff_queue_.pop_front();
    lk.unlock();
    if (rand.one_in(8)) {
      if (rand.one_in(2)) sched_yield(); else sleep_us(rand.between(1, 50));
    }
    fault(kFpHandoffBeforeUp, rand);
    end_observation(item.o, st);
    item.o.td->dom->up_read(item.token);
    st.handed_off.add();
    lk.lock();
  }
  handoff_workers_[i].done.store(true, std::memory_order_release);
}

void run::reader_thread(reader_slot& slot) {
  reader_ctx rc{&slot.stats, rng(seed_for(1, (static_cast<std::uint64_t>(slot.index) << 20) + slot.generation)),
                opt_.fwd_progress};
  if (opt_.signal_storm) {
    std::lock_guard lk(targets_mutex_);
    targets_.push_back(pthread_self());
  }
  const std::int64_t deadline =
      opt_.thread_churn ? now_ns() + std::int64_t{rc.rand.between(200, 1500)} * 1'000'000
                        : std::numeric_limits<std::int64_t>::max();
  const bool sleepy = slot.home->sleepy;
  for (std::uint64_t n = 0; !stop_readers_.load(std::memory_order_relaxed); ++n) {
    section(rc, *slot.home, 0);
    fault(kFpReaderBetween, rc.rand);
    if (sleepy) sleep_us(rc.rand.between(0, 2000));
    if ((sleepy || (n & 63) == 0) && now_ns() > deadline) break;  // thread churn: exit, be replaced
  }
  if (opt_.signal_storm) {
    // Leave the target list before exiting: the storm never signals a
    // thread that may be gone.
    std::lock_guard lk(targets_mutex_);
    targets_.erase(std::find(targets_.begin(), targets_.end(), pthread_self()));
  }
  slot.w.done.store(true, std::memory_order_release);
}

void run::start_reader(reader_slot& slot) {
  ++slot.generation;
  ++readers_started_;
  slot.w.done.store(false, std::memory_order_relaxed);
  slot.w.thread = std::thread(&run::reader_thread, this, std::ref(slot));
}

}  // namespace srcu_torture
