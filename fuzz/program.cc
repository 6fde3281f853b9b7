// The decoder: input bytes -> a program that keeps srcu's preconditions in
// every interleaving of its rounds (the rules are listed in program.h).

#include "program.h"

#include <iterator>
#include <utility>

namespace srcu_fuzz {
namespace {

// What an (op, arg) pair asks for, before the decoder makes it legal.
enum class code : std::uint8_t {
  read_lock, read_unlock, signal_lock, signal_unlock, down_read, up_read,
  lock, try_lock, unlock, guarded_section,
  synchronize, synchronize_expedited, cond_synchronize, barrier,
  call_head, call_lambda, retire, retire_obj,
  get_cookie, start_poll, poll, gp_count,
  end_round, create, destroy, defer, reclaim_flush, misuse,
};

// op & 31 -> code. The reader codes appear twice: they are the bulk of real
// use and what makes the updaters' waits interesting. Codes 29 and 30 are
// the worker's reclaim_list on the domain: flush(); defer(), or reclaim()
// when choice & 3 is 3.
constexpr code kCodes[32] = {
    code::read_lock,      code::read_unlock,  code::signal_lock,  code::signal_unlock,
    code::down_read,      code::up_read,      code::lock,         code::try_lock,
    code::unlock,         code::guarded_section,
    code::synchronize,    code::synchronize_expedited, code::cond_synchronize, code::barrier,
    code::call_head,      code::call_lambda,  code::retire,       code::retire_obj,
    code::get_cookie,     code::start_poll,   code::poll,         code::gp_count,
    code::end_round,      code::create,       code::destroy,
    code::read_lock,      code::read_unlock,  code::down_read,    code::up_read,
    code::reclaim_flush,  code::defer,
    code::misuse,  // a lock() unless in misuse mode
};

inline constexpr std::size_t kMaxRounds = 48;  // explicit end_round codes honoured

enum class flavour : std::uint8_t { thread, signal, down };

constexpr op_kind lock_kind(flavour f) {
  return f == flavour::thread   ? op_kind::read_lock
         : f == flavour::signal ? op_kind::signal_lock
                                : op_kind::down_read;
}
constexpr op_kind unlock_kind(flavour f) {
  return f == flavour::thread   ? op_kind::read_unlock
         : f == flavour::signal ? op_kind::signal_unlock
                                : op_kind::up_read;
}

// A read section begun with read_lock(), read_lock_signal_safe() or down_read().
struct token_info {
  int instance;
  int owner;   // the worker that will end it
  int opener;  // the worker that began it
  flavour kind;
  std::uint32_t round;
  std::uint32_t seq;  // decode order
  bool open;
  std::uint32_t pinned_round;  // the owner relies on it in this round: no handover
};

struct cookie_info {
  int instance;
  int worker;
  std::uint32_t round;
  std::uint32_t seq;
};

struct node_info {
  int instance;
  int worker;
  std::uint32_t round;
  bool deferred;  // on the worker's reclaim_list, not call()ed: barrier() does not cover it
};

// domain::lock() nesting of one worker on one slot.
struct lock_info {
  int depth = 0;
  std::uint32_t round = 0;  // when depth went 0 -> 1
  std::uint32_t seq = 0;
};

inline constexpr int kNone = -1;
inline constexpr std::uint32_t kNotPinned = ~std::uint32_t{0};

// Index of the (choice % n)-th of the n entries of `v` that satisfy `ok`,
// those on domain instance `instance` first; kNone if there is none.
template <class Vec, class Pred>
int choose(const Vec& v, int instance, unsigned choice, Pred ok) {
  for (int pass = 0; pass < 2; ++pass) {
    auto match = [&](const auto& e) { return ok(e) && (pass == 1 || e.instance == instance); };
    std::size_t n = 0;
    for (const auto& e : v) n += match(e) ? 1 : 0;
    if (n == 0) continue;
    std::size_t k = choice % n;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (match(v[i]) && k-- == 0) return static_cast<int>(i);
    }
  }
  return kNone;
}

class decoder {
 public:
  decoder(const std::uint8_t* data, std::size_t size, bool misuse)
      : data_(data), size_(size), misuse_(misuse) {
    for (int& s : slot_instance_) s = kNone;
  }

  program run() {
    const std::uint8_t setup = next();
    const int initial = (setup & 3) + 1;
    for (int s = 0; s < initial; ++s) {
      create(s, s < 3 ? ((setup >> (2 + 2 * s)) & 3) % 3 : 0);
    }
    for (std::size_t i = 0; i < kMaxOps && pos_ < size_ && !stop_; ++i) {
      const std::uint8_t op_byte = next();
      const std::uint8_t arg_byte = next();
      step(op_byte, arg_byte);
    }
    finish();
    prog_.token_count = tokens_.size();
    prog_.cookie_count = cookies_.size();
    return std::move(prog_);
  }

 private:
  std::uint8_t next() noexcept { return pos_ < size_ ? data_[pos_++] : 0; }
  int slot_of(int instance) const { return prog_.instances[instance].slot; }
  void emit(int worker, op o) { cur_.ops[worker].push_back(o); }
  static op make_op(op_kind kind, int instance, unsigned arg = 0) {
    op o;
    o.kind = kind;
    o.instance = static_cast<std::uint8_t>(instance);
    o.arg = static_cast<std::uint16_t>(arg);
    return o;
  }

  // The live instance in slot arg & 3, else in the next occupied slot.
  int pick_instance(std::uint8_t arg_byte) const {
    for (int k = 0; k < kSlots; ++k) {
      const int s = (arg_byte + k) & 3;
      if (slot_instance_[s] != kNone) return slot_instance_[s];
    }
    return kNone;
  }

  // True when worker w's next operation certainly runs after cookie c was taken.
  bool visible(const cookie_info& c, int w) const {
    return alive_[c.instance] && (c.round < round_no_ || c.worker == w);
  }

  void step(std::uint8_t op_byte, std::uint8_t arg_byte) {
    const code c = kCodes[op_byte & 31];
    const int w = (op_byte >> 5) % kWorkers;
    const unsigned choice = arg_byte >> 2;
    if (c == code::end_round) {
      if (prog_.rounds.size() < kMaxRounds) end_round();
      return;
    }
    const int inst = pick_instance(arg_byte);
    if (c == code::create || inst == kNone) {
      create(arg_byte & 3, static_cast<int>(choice % 3));
      return;
    }
    switch (c) {
      case code::read_lock: begin_section(w, inst, flavour::thread); break;
      case code::read_unlock: end_section(w, inst, flavour::thread, choice); break;
      case code::signal_lock: begin_section(w, inst, flavour::signal); break;
      case code::signal_unlock: end_section(w, inst, flavour::signal, choice); break;
      case code::down_read: begin_section(w, inst, flavour::down); break;
      case code::up_read: up_read(w, inst, choice); break;
      case code::lock: lock(w, inst, op_kind::lock); break;
      case code::try_lock: lock(w, inst, op_kind::try_lock); break;
      case code::unlock: unlock(w, inst); break;
      case code::guarded_section: emit(w, make_op(op_kind::guarded_section, inst, choice)); break;
      case code::synchronize: blocking(w, inst, op_kind::synchronize, choice); break;
      case code::synchronize_expedited:
        blocking(w, inst, op_kind::synchronize_expedited, choice);
        break;
      case code::cond_synchronize: blocking(w, inst, op_kind::cond_synchronize, choice); break;
      case code::barrier: blocking(w, inst, op_kind::barrier, choice); break;
      case code::reclaim_flush: blocking(w, inst, op_kind::reclaim_flush, choice); break;
      case code::defer:
        if ((choice & 3) == 3) {
          emit(w, make_op(op_kind::reclaim, inst));
        } else {
          defer(w, inst);
        }
        break;
      case code::call_head: queue_callback(w, inst, op_kind::call_head); break;
      case code::call_lambda: queue_callback(w, inst, op_kind::call_lambda); break;
      case code::retire: queue_callback(w, inst, op_kind::retire); break;
      case code::retire_obj: queue_callback(w, inst, op_kind::retire_obj); break;
      case code::get_cookie: take_cookie(w, inst, op_kind::get_cookie); break;
      case code::start_poll: take_cookie(w, inst, op_kind::start_poll); break;
      case code::poll: poll(w, inst, choice); break;
      case code::gp_count: emit(w, make_op(op_kind::gp_count, inst)); break;
      case code::destroy: destroy(inst); break;
      case code::misuse:
        if (misuse_) {
          misuse(w, inst, choice);
        } else {
          lock(w, inst, op_kind::lock);
        }
        break;
      case code::end_round:
      case code::create:
        break;  // handled above
    }
  }

  // --- Readers ---------------------------------------------------------------

  void begin_section(int w, int inst, flavour f) {
    if (tokens_.size() >= kMaxTokens) return;
    int open = 0;
    for (const token_info& t : tokens_) {
      open += (t.open && t.owner == w && t.instance == inst && t.kind == f) ? 1 : 0;
    }
    if (open >= kMaxNesting) return;
    tokens_.push_back({inst, w, w, f, round_no_, seq_++, true, kNotPinned});
    emit(w, make_op(lock_kind(f), inst, static_cast<unsigned>(tokens_.size() - 1)));
  }

  // Any open section of w in that flavour may end, not only the newest one.
  void end_section(int w, int inst, flavour f, unsigned choice) {
    const int t = choose(tokens_, inst, choice, [&](const token_info& k) {
      return k.open && k.owner == w && k.kind == f;
    });
    if (t != kNone) close_token(t);
  }

  // w's own down_read() token, or one that another worker took in an earlier
  // round, provided w has not blocked in this round yet (w reaches the
  // up_read() without waiting, so nobody waits on the token's old owner) and
  // the owner has not counted on it staying open (see pin_reader_before()).
  void up_read(int w, int inst, unsigned choice) {
    const int t = choose(tokens_, inst, choice, [&](const token_info& k) {
      return k.open && k.kind == flavour::down &&
             (k.owner == w ||
              (k.round < round_no_ && !blocked_[w] && k.pinned_round != round_no_));
    });
    if (t == kNone) return;
    tokens_[t].owner = w;
    close_token(t);
  }

  void close_token(int t) {
    token_info& k = tokens_[t];
    k.open = false;
    emit(k.owner, make_op(unlock_kind(k.kind), k.instance, static_cast<unsigned>(t)));
  }

  void lock(int w, int inst, op_kind kind) {
    lock_info& l = locks_[w][slot_of(inst)];
    if (l.depth >= kMaxNesting) return;
    if (l.depth++ == 0) {
      l.round = round_no_;
      l.seq = seq_++;
    }
    emit(w, make_op(kind, inst));
  }

  void unlock(int w, int inst) {
    int slot = slot_of(inst);
    for (int k = 0; k < kSlots && locks_[w][slot].depth == 0; ++k) slot = (slot + 1) % kSlots;
    if (locks_[w][slot].depth == 0) return;
    --locks_[w][slot].depth;
    emit(w, make_op(op_kind::unlock, slot_instance_[slot]));
  }

  void close_locks(int w, int slot) {
    for (; locks_[w][slot].depth > 0; --locks_[w][slot].depth) {
      emit(w, make_op(op_kind::unlock, slot_instance_[slot]));
    }
  }

  // --- Updaters ----------------------------------------------------------------

  void blocking(int w, int inst, op_kind kind, unsigned choice) {
    if (blocking_ops_ >= kMaxBlocking) return;
    int cookie = kNone;
    if (kind == op_kind::cond_synchronize) {
      cookie = choose(cookies_, inst, choice, [&](const cookie_info& c) { return visible(c, w); });
      if (cookie == kNone) return;
      inst = cookies_[cookie].instance;
    }
    const int slot = slot_of(inst);
    // Lock order: w may wait on slot `slot` holding sections of lower slots only.
    for (std::size_t t = 0; t < tokens_.size(); ++t) {
      if (tokens_[t].open && tokens_[t].owner == w && slot_of(tokens_[t].instance) >= slot) {
        close_token(static_cast<int>(t));
      }
    }
    for (int s = slot; s < kSlots; ++s) close_locks(w, s);

    op o = make_op(kind, inst, cookie == kNone ? 0 : static_cast<unsigned>(cookie));
    o.check_begin = static_cast<std::uint32_t>(prog_.checks.size());
    if (kind == op_kind::barrier || kind == op_kind::reclaim_flush) {
      // barrier(): what call() queued before it; flush(): what this worker
      // deferred onto its own list (one list per worker and domain).
      const bool deferred = kind == op_kind::reclaim_flush;
      for (std::size_t n = 0; n < nodes_.size(); ++n) {
        const node_info& k = nodes_[n];
        if (k.instance == inst && k.deferred == deferred &&
            (deferred ? k.worker == w : (k.round < round_no_ || k.worker == w))) {
          prog_.checks.push_back(static_cast<std::uint16_t>(n));
        }
      }
    } else if (kind != op_kind::cond_synchronize) {
      for (std::size_t c = 0; c < cookies_.size(); ++c) {
        if (cookies_[c].instance == inst && visible(cookies_[c], w)) {
          prog_.checks.push_back(static_cast<std::uint16_t>(c));
        }
      }
    }
    o.check_count = static_cast<std::uint16_t>(prog_.checks.size() - o.check_begin);
    emit(w, o);
    blocked_[w] = true;
    blocked_slots_ |= 1u << slot;
    ++blocking_ops_;
  }

  // A node queued by call(), retire() or the worker's reclaim_list; index.
  int add_node(int w, int inst, bool deferred) {
    if (nodes_.size() >= kMaxNodes) return kNone;
    nodes_.push_back({inst, w, round_no_, deferred});
    prog_.node_instance.push_back(static_cast<std::uint8_t>(inst));
    return static_cast<int>(nodes_.size() - 1);
  }

  void queue_callback(int w, int inst, op_kind kind) {
    const int n = add_node(w, inst, false);
    if (n != kNone) emit(w, make_op(kind, inst, static_cast<unsigned>(n)));
  }

  // defer() onto w's list. Pinned: a section of this domain that w opened
  // itself and holds now (so it began before the defer in program order):
  // the function must not run while it is open, whoever closes it.
  void defer(int w, int inst) {
    const int n = add_node(w, inst, true);
    if (n == kNone) return;
    op o = make_op(op_kind::defer, inst, static_cast<unsigned>(n));
    for (std::size_t t = tokens_.size(); t-- > 0;) {
      const token_info& k = tokens_[t];
      if (k.open && k.owner == w && k.opener == w && k.instance == inst) {
        o.flags |= kPinned;
        o.other = static_cast<std::uint8_t>(t);
        break;
      }
    }
    emit(w, o);
  }

  // --- Polled grace periods ------------------------------------------------------

  void take_cookie(int w, int inst, op_kind kind) {
    if (cookies_.size() >= kMaxCookies) return;
    cookies_.push_back({inst, w, round_no_, seq_++});
    emit(w, make_op(kind, inst, static_cast<unsigned>(cookies_.size() - 1)));
  }

  void poll(int w, int inst, unsigned choice) {
    const int c =
        choose(cookies_, inst, choice, [&](const cookie_info& k) { return visible(k, w); });
    if (c == kNone) {
      emit(w, make_op(op_kind::poll, inst, kDefaultCookie));
      return;
    }
    op o = make_op(op_kind::poll, cookies_[c].instance, static_cast<unsigned>(c));
    if (pin_reader_before(w, cookies_[c])) o.flags |= kExpectPending;
    emit(w, o);
  }

  // True when w holds, and will still hold at its next operation, a section
  // of the cookie's domain that began before the cookie was taken (in
  // happens-before order): no grace period the cookie accepts can have ended.
  // A down_read() token relied on this way is pinned to w for the round: an
  // up_read() by another worker later in the round could run first.
  bool pin_reader_before(int w, const cookie_info& c) {
    for (token_info& t : tokens_) {
      if (t.open && t.owner == w && t.instance == c.instance && t.seq < c.seq &&
          (t.opener == c.worker || t.round < c.round)) {
        t.pinned_round = round_no_;
        return true;
      }
    }
    const lock_info& l = locks_[w][slot_of(c.instance)];
    return l.depth > 0 && l.seq < c.seq && (c.worker == w || l.round < c.round);
  }

  // --- Misuse mode -------------------------------------------------------------------

  void misuse(int w, int inst, unsigned choice) {
    auto kind = static_cast<misuse_kind>(choice % kMisuseKinds);
    op o = make_op(op_kind::misuse, inst);
    if (kind == misuse_kind::foreign_token) {
      const int other = pick_instance(static_cast<std::uint8_t>(slot_of(inst) + 1));
      if (other == inst) {
        kind = misuse_kind::default_token;
      } else {
        o.other = static_cast<std::uint8_t>(other);
      }
    }
    if (kind == misuse_kind::unlock_without_lock && locks_[w][slot_of(inst)].depth != 0) {
      kind = misuse_kind::default_token;
    }
    o.arg = static_cast<std::uint16_t>(kind);
    emit(w, o);
    prog_.has_misuse = true;
    stop_ = true;
  }

  // --- Domains and rounds ----------------------------------------------------------

  void create(int slot, int executor) {
    if (slot_instance_[slot] != kNone || prog_.instances.size() >= kMaxInstances) return;
    const int id = static_cast<int>(prog_.instances.size());
    prog_.instances.push_back(
        {static_cast<std::uint8_t>(slot), static_cast<std::uint8_t>(executor)});
    alive_.push_back(true);
    slot_instance_[slot] = id;
    // Before this round's operations, which cannot name it yet anyway.
    cur_.before.push_back({action_kind::create, static_cast<std::uint8_t>(id)});
  }

  void close_all(int inst) {
    for (std::size_t t = 0; t < tokens_.size(); ++t) {
      if (tokens_[t].open && tokens_[t].instance == inst) close_token(static_cast<int>(t));
    }
    for (int w = 0; w < kWorkers; ++w) close_locks(w, slot_of(inst));
  }

  // Every section ends in this round; the domain goes between rounds.
  void destroy(int inst) {
    close_all(inst);
    end_round();
    cur_.before.push_back({action_kind::destroy, static_cast<std::uint8_t>(inst)});
    alive_[inst] = false;
    slot_instance_[slot_of(inst)] = kNone;
  }

  void end_round() {
    for (int s = 0; s < kSlots; ++s) {
      if ((blocked_slots_ >> s & 1) != 0 && slot_instance_[s] != kNone) {
        close_all(slot_instance_[s]);
      }
    }
    bool empty = cur_.before.empty();
    for (const auto& ops : cur_.ops) empty = empty && ops.empty();
    if (!empty) {
      prog_.rounds.push_back(std::move(cur_));
      cur_ = round{};
      ++round_no_;
    }
    for (bool& b : blocked_) b = false;
    blocked_slots_ = 0;
  }

  void finish() {
    for (int s = 0; s < kSlots; ++s) {
      if (slot_instance_[s] != kNone) close_all(slot_instance_[s]);
    }
    end_round();
    for (int s = 0; s < kSlots; ++s) {
      if (slot_instance_[s] == kNone) continue;
      cur_.before.push_back({action_kind::destroy, static_cast<std::uint8_t>(slot_instance_[s])});
      alive_[slot_instance_[s]] = false;
      slot_instance_[s] = kNone;
    }
    end_round();
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  const bool misuse_;
  bool stop_ = false;

  program prog_;
  round cur_;
  std::uint32_t round_no_ = 0;
  std::uint32_t seq_ = 0;
  int slot_instance_[kSlots];
  std::vector<bool> alive_;  // per instance
  std::vector<token_info> tokens_;
  std::vector<cookie_info> cookies_;
  std::vector<node_info> nodes_;
  lock_info locks_[kWorkers][kSlots] = {};
  bool blocked_[kWorkers] = {};  // the worker made a blocking call this round
  unsigned blocked_slots_ = 0;   // slots that had a blocking call this round
  int blocking_ops_ = 0;
};

}  // namespace

program decode(const std::uint8_t* data, std::size_t size, bool misuse) {
  return decoder(data, size, misuse).run();
}

const char* op_name(op_kind kind) noexcept {
  static constexpr const char* kNames[] = {
      "read_lock", "read_unlock", "signal_lock", "signal_unlock", "down_read", "up_read",
      "lock", "try_lock", "unlock", "guarded_section",
      "synchronize", "synchronize_expedited", "cond_synchronize", "barrier",
      "call_head", "call_lambda", "retire", "retire_obj",
      "get_cookie", "start_poll", "poll", "gp_count",
      "defer", "reclaim", "reclaim_flush", "misuse"};
  static_assert(std::size(kNames) == static_cast<std::size_t>(op_kind::misuse) + 1);
  return kNames[static_cast<int>(kind)];
}

void print(const program& p, std::FILE* out) {
  for (std::size_t r = 0; r < p.rounds.size(); ++r) {
    std::fprintf(out, "round %zu:", r);
    for (const domain_action& a : p.rounds[r].before) {
      std::fprintf(out, " %s d%u(slot %u)", a.kind == action_kind::create ? "create" : "destroy",
                   unsigned{a.instance}, unsigned{p.instances[a.instance].slot});
    }
    for (int w = 0; w < kWorkers; ++w) {
      if (p.rounds[r].ops[w].empty()) continue;
      std::fprintf(out, "\n  w%d:", w);
      for (const op& o : p.rounds[r].ops[w]) {
        std::fprintf(out, " %s(d%u,%u%s)", op_name(o.kind),
                     unsigned{o.instance}, unsigned{o.arg},
                     (o.flags & kExpectPending) != 0 ? ",pending"
                     : (o.flags & kPinned) != 0     ? ",pinned"
                                                    : "");
      }
    }
    std::fprintf(out, "\n");
  }
}

}  // namespace srcu_fuzz
