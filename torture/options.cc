// options.cc: parsing srcu-torture's options and --config files; the --help
// text.

#include "options.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "delivery.h"

#ifndef SRCU_TORTURE_CONFIG_DIR
#define SRCU_TORTURE_CONFIG_DIR "torture/configs"
#endif

namespace srcu_torture {
namespace {

constexpr char kHelp[] = R"(Usage: srcu-torture [OPTIONS]

Torture test for srcu (sleepable RCU), after the Linux kernel's rcutorture.
Readers of every flavour walk a shared "current element" in several domains
while writers replace it and retire the old one through every update
primitive. Exit status 0 and a last line "End of test: SUCCESS" when no error
was seen; 1 and "End of test: FAILURE" otherwise; 2 for a usage error.

Run shape
  --duration S         seconds to run (default 30)
  --readers N          reader threads per domain (default 4; doubled by --fwd-progress)
  --writers N          writer threads per domain (default 2)
  --domains N          srcu domains tortured at once (default 3)
  --flavours LIST      reader flavours, comma-separated (default all):
                         lock    read_lock()/read_unlock()
                         guard   srcu::read_guard
                         scoped  std::scoped_lock on the domain (lock()/unlock())
                         signal  read_lock_signal_safe()/read_unlock_signal_safe()
                         updown  down_read()/up_read(); a quarter of these sections
                                 are ended by up_read() on a helper thread
                       Any section may nest further sections (random flavour,
                       usually the same domain) up to --max-nest deep.
  --primitives LIST    update primitives, used in rotation (default all):
                         sync       synchronize()
                         expedited  synchronize_expedited()
                         call       call() with the callback_head embedded in the element
                         retire     domain::retire() with a deleter
                         cond       get_poll_cookie(), then cond_synchronize()
                         poll       start_poll(), then poll() until true
                         barrier    call() of a probe, then barrier(): the probe must have run
                         reclaim    the writer's own srcu::reclaim_list; the element's function
                                    runs on the writer and defers it again, one pipe step each
  --seed N             random seed (default: from the clock; printed at the start)
  --stat-interval S    progress line every S seconds (default 5; 0 = none)
  --max-nest N         deepest nesting of reader sections (default 3; 0 = none)
  --reader-delay-us N  longest short delay (spin, yield or sleep) that readers take
                       inside one section in 16 (default 20; 0 = none)
  --sleepy-domain      (default) the last domain's readers sleep --sleepy-min-ms to
  --no-sleepy-domain   --sleepy-max-ms inside every outermost section; the other
                       domains' grace periods must keep going (isolation)
  --sleepy-min-ms N, --sleepy-max-ms N   (default 100 and 500)
  --keep-going         run the full duration even after an error (default: stop
                       1 s after the first error and report)

Fault injection
  --yield-prob P       at each labelled point in readers, helpers and writers
                       (reader.in-section, writer.before-gp, ...), yield the CPU
                       or sleep up to 100 us with probability P (default 0.001)
  --lib-fault-prob P   inside the library, at its labelled points (between the
                       unlock and lock sums, around the flip, between call()'s
                       ticket and push, ...), yield or sleep up to 50 us with
                       probability P; needs a build with SRCU_FAULT_INJECTION=ON
                       (the tsan and asan presets), else it is refused
  --signal-storm       a thread sends SIGUSR1 to random reader threads; the
                       handler takes a signal-safe reader section on a domain,
                       checks the element, and call()s with a head taken from a
                       lock-free preallocated pool
  --thread-churn       reader threads exit after 0.2-1.5 s and are replaced
  --fork               halfway through, fork(); the child runs a 2 s torture of
                       its own on the same domains and exits with its verdict;
                       a failed child is an error in the parent
  --fwd-progress       forward-progress mode: writers flood call() (up to --flood
                       callbacks outstanding each, millions over a run) between
                       updates, and readers storm (twice as many, no delays)
  --flood N            flood callback heads per writer (default 100000)
  --stall-seconds S    a writer that completes no update for S seconds, a delivery
                       scenario that completes no round, or callbacks that stop
                       being invoked, is a STALL (default 10)

Callback delivery (on by default)
  --delivery LIST      delivery scenarios, comma-separated (default all), each on
                       a thread of its own beside the tortured domains:
                         cross-barrier   callbacks of "upper" domains call
                                         barrier(), call()+barrier() and
                                         synchronize() of "leaf" domains, and
                                         synchronize() of their own domain
                         nested-domains  callbacks create a domain, use it
                                         (call(), readers, synchronize()) and
                                         delete it in the same callback or a
                                         later one, or retire() an object that
                                         owns it; the thread retires such
                                         objects too. So ~domain runs inside
                                         another domain's callback, with
                                         callbacks still queued on its domain
                         domain-churn    the thread creates 1-3 domains (any
                                         executor, a private pool included),
                                         queues callbacks, some of which queue
                                         more while ~domain runs, and destroys
                                         them at once
                       Leaf and upper domains come in three kinds each: on srcu's
                       callback workers, on a thread pool of the torture's own (1
                       and 2 threads, a queue), and on an inline executor (submit()
                       runs the batch at once). Two submit()s of these executors
                       in three call() into a delivery domain holding the
                       executor's lock; one in 32 first waits, without the lock
                       (barrier() of leaf-srcu or synchronize() of a leaf).
                       Every callback on a short-lived domain is counted: when
                       ~domain returns, each must have run exactly once. Only
                       upper-domain callbacks wait, never for an upper domain nor
                       for a domain served by their own pool thread, so a wait
                       that does not end is srcu's: a round unfinished after
                       --stall-seconds is a STALL that names the stuck wait.
  --no-delivery        none of them

Self-test of the test
  --busted[=MODE]      writers retire every element through a broken "grace
                       period" of the torture program's own (never the
                       library's). The run must end in "End of test: FAILURE":
                       this proves the checks catch a grace period that does not
                       wait for the readers it must. MODE:
                         noop        (plain --busted) returns at once, without
                                     waiting for any reader: pipe counts up to
                                     10 and "freed" errors within a second
                         early-flip  one phase short: after the removal the
                                     element takes the next step of
                                     grace_periods_completed() as its grace
                                     period (start_poll() makes sure one
                                     comes). That may be the grace period
                                     already in flight, whose flip came before
                                     the removal, so it does not wait for
                                     readers that began after the flip and
                                     still hold the element. Every grace
                                     period is real; only pipe count 2 shows,
                                     usually within a second

Named scenarios
  --config NAME|PATH   read options from a config file first: NAME is
                       torture/configs/NAME.conf of the source tree (default,
                       tsan-faults, busted, busted-early-flip, stressors,
                       fwd-progress, delivery); a PATH has a '/' or ends in
                       ".conf". One option (and its value) or more a line, as
                       on the command line; '#' starts a comment. Options on
                       the command line override the file's. The first line of
                       the output names the config.

  --help               this text

Reading the output
  The first line lists the configuration (with the seed, to repeat a run).
  Progress lines: reader sections so far (and per second), updates, grace
  periods per domain, callbacks invoked/queued, errors, and the pipe histogram.

  Reader Pipe: N0 N1 ... N10. Each reader section records the pipe count of the
  element it read, re-read at the END of the section, just before its unlock.
  A current element has pipe count 0. Removing it makes it 1. Each full grace
  period that begins after the removal adds 1; at 10 the element is freed
  (poisoned and kept in quarantine, never unmapped during the run). Every
  grace period counted must wait for every reader still holding the element,
  so only index 0 (element still current) and 1 (removed during the section)
  may be nonzero. Anything at index 2 or beyond (marked "!!!") means a grace
  period ended under a reader that began before it: srcu is broken. Index 10
  also collects sections that saw a freed element.
  Reader Batch: N0 N1 ... N10. Grace periods completed during a section (read
  from grace_periods_completed() after the lock and before the unlock). Only
  the grace period already in flight may end inside a section, so again only
  indexes 0 and 1 may be nonzero.
  Then: reader sections per flavour, grace periods per domain (with the
  longest grace period a writer waited for), updates per primitive, callbacks
  queued and invoked (they must be equal after the final barrier), the
  delivery scenarios (rounds, what the callbacks did, short-lived domains
  destroyed with callbacks lost or run twice, executors' batches and the
  submit() hook's call()s), elements, fault injections, the fork child's
  verdict, and the errors by kind:
    pipe, freed, recycled, corrupt  a reader held an element a grace period
                                    did not protect
    batch         two or more grace periods ended inside one section
    writer-check  poll()/grace_periods_completed() disagree with a grace
                  period that returned, or barrier() returned early
    stall         a writer, a delivery scenario or the callbacks stopped
                  making progress (STALL)
    callbacks     callbacks queued != invoked after the final barrier
    leak          an element neither current nor freed after the final drain
    fork-child    the fork child failed
    isolation     a domain without sleepy readers completed no more grace
                  periods than the sleepy domain
    delivery      a callback on a short-lived domain was lost or ran twice
                  by the time ~domain returned, or a barrier()/synchronize()
                  inside a callback returned before what it waits for
)";

[[noreturn]] void usage_error(const char* fmt, const char* arg) {
  std::fprintf(stderr, "srcu-torture: ");
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\n(see srcu-torture --help)\n");
  std::exit(2);
}

double parse_double(const char* name, const char* v, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !(d >= lo && d <= hi)) {
    usage_error("bad value for %s", name);
  }
  return d;
}

int parse_int(const char* name, const char* v, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi) usage_error("bad value for %s", name);
  return static_cast<int>(n);
}

// Options that take a number in a range, and options that set a flag.
struct number_option {
  const char* name;
  int options::*int_field;        // or
  double options::*double_field;  // the other
  double lo, hi;
  void set(options& o, const char* name_seen, const char* v) const {
    if (int_field != nullptr) {
      o.*int_field = parse_int(name_seen, v, static_cast<long>(lo), static_cast<long>(hi));
    } else {
      o.*double_field = parse_double(name_seen, v, lo, hi);
    }
  }
};

constexpr number_option kNumberOptions[] = {
    {"--duration", nullptr, &options::duration_s, 0.1, 1e7},
    {"--readers", &options::readers, nullptr, 1, 256},
    {"--writers", &options::writers, nullptr, 1, 64},
    {"--domains", &options::domains, nullptr, 1, 64},
    {"--stat-interval", nullptr, &options::stat_interval_s, 0, 1e7},
    {"--sleepy-min-ms", &options::sleepy_min_ms, nullptr, 0, 60'000},
    {"--sleepy-max-ms", &options::sleepy_max_ms, nullptr, 0, 60'000},
    {"--reader-delay-us", &options::reader_delay_us, nullptr, 0, 1'000'000},
    {"--max-nest", &options::max_nest, nullptr, 0, 16},
    {"--yield-prob", nullptr, &options::yield_prob, 0, 1},
    {"--lib-fault-prob", nullptr, &options::lib_fault_prob, 0, 1},
    {"--flood", &options::flood, nullptr, 1, 10'000'000},
    {"--stall-seconds", nullptr, &options::stall_s, 0.1, 1e6},
};

struct flag_option {
  const char* name;
  bool options::*field;
  bool value;
};

constexpr flag_option kFlagOptions[] = {
    {"--sleepy-domain", &options::sleepy_domain, true}, {"--no-sleepy-domain", &options::sleepy_domain, false},
    {"--signal-storm", &options::signal_storm, true},   {"--thread-churn", &options::thread_churn, true},
    {"--fork", &options::fork, true},                   {"--fwd-progress", &options::fwd_progress, true},
    {"--keep-going", &options::keep_going, true},
};

template <class Option, std::size_t N>
const Option* find_option(const Option (&table)[N], const std::string& arg) {
  for (const Option& opt : table) {
    if (arg == opt.name) return &opt;
  }
  return nullptr;
}

// A comma-separated list of names (or "all") from an ops table: each entry's
// name or alias.
template <class Ops>
unsigned parse_list(const char* name, const char* v, const Ops* ops, int count) {
  unsigned mask = 0;
  std::string_view rest(v);
  if (rest == "all") return (1u << count) - 1;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    bool found = false;
    for (int i = 0; i < count; ++i) {
      if (item == ops[i].name || (ops[i].alias != nullptr && item == ops[i].alias)) {
        mask |= 1u << i;
        found = true;
      }
    }
    if (!found) usage_error("unknown name in %s", name);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (mask == 0) usage_error("empty list for %s", name);
  return mask;
}

// --config NAME reads configs/NAME.conf of the source tree; a value with a
// '/' or ending in ".conf" is a path.
std::string config_path(const std::string& name) {
  if (name.find('/') != std::string::npos || name.ends_with(".conf")) return name;
  return std::string(SRCU_TORTURE_CONFIG_DIR) + "/" + name + ".conf";
}

// A config file: options as on the command line, any number a line, split at
// white space; '#' starts a comment that runs to the end of the line.
std::vector<std::string> read_config(const std::string& name) {
  const std::string path = config_path(name);
  std::ifstream in(path);
  if (!in) usage_error("cannot read the config file %s", path.c_str());
  std::vector<std::string> args;
  std::string text;
  while (std::getline(in, text)) {
    std::istringstream words(text.substr(0, text.find('#')));
    for (std::string w; words >> w;) {
      if (w == "--config" || w.starts_with("--config=")) usage_error("%s: a config file cannot name another", path.c_str());
      args.push_back(w);
    }
  }
  return args;
}

// The config file's arguments, then the command line's others.
std::vector<std::string> gather_args(int argc, char** argv, std::string& config) {
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    std::string name;
    if (a == "--config") {
      if (i + 1 >= argc) usage_error("%s needs a value", argv[i]);
      name = argv[++i];
    } else if (a.starts_with("--config=")) {
      name = a.substr(std::strlen("--config="));
    } else {
      rest.emplace_back(a);
      continue;
    }
    if (!config.empty()) usage_error("%s: only one --config", argv[i]);
    config = name;
  }
  std::vector<std::string> args = config.empty() ? std::vector<std::string>{} : read_config(config);
  args.insert(args.end(), rest.begin(), rest.end());
  return args;
}

}  // namespace

options parse_options(int argc, char** argv) {
  options o;
  const std::vector<std::string> args = gather_args(argc, argv, o.config);
  const int count = static_cast<int>(args.size());
  bool seed_given = false;
  for (int i = 0; i < count; ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_value = false;
    if (const std::size_t eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto need = [&]() -> const char* {
      if (has_value) return value.c_str();
      if (i + 1 >= count) usage_error("%s needs a value", args[i].c_str());
      return args[++i].c_str();
    };
    const char* a = arg.c_str();
    if (const auto* n = find_option(kNumberOptions, arg)) {
      n->set(o, a, need());
    } else if (const auto* f = find_option(kFlagOptions, arg)) {
      o.*(f->field) = f->value;
    } else if (arg == "--help" || arg == "-h") {
      write_all(kHelp, sizeof kHelp - 1);
      std::exit(0);
    } else if (arg == "--flavours" || arg == "--flavors") {
      o.flavours = parse_list(a, need(), kReaderOps, kFlavourCount);
    } else if (arg == "--primitives") {
      o.primitives = parse_list(a, need(), kUpdateOps, kPrimitiveCount);
    } else if (arg == "--delivery") {
      o.delivery = parse_list(a, need(), kDeliveryScenarioOps, kDeliveryScenarios);
    } else if (arg == "--no-delivery") {
      o.delivery = 0;
    } else if (arg == "--seed") {
      const char* v = need();
      char* end = nullptr;
      errno = 0;
      o.seed = std::strtoull(v, &end, 0);
      if (errno != 0 || end == v || *end != '\0') usage_error("bad value for %s", a);
      seed_given = true;
    } else if (arg == "--busted") {
      // Plain --busted is --busted=noop; a mode is given only with '='.
      const std::string_view mode = has_value ? std::string_view(value) : std::string_view("noop");
      o.busted = nullptr;
      for (int p = kPrimitiveCount; p < kUpdateOpsCount; ++p) {
        if (mode == kUpdateOps[p].name) o.busted = &kUpdateOps[p];
      }
      if (o.busted == nullptr) usage_error("unknown mode for %s (noop, early-flip)", a);
    } else {
      usage_error("unknown option %s", args[i].c_str());
    }
  }
#if !SRCU_FAULT_INJECTION
  if (o.lib_fault_prob > 0) {
    std::fprintf(stderr, "srcu-torture: --lib-fault-prob needs a library built with "
                         "SRCU_FAULT_INJECTION=ON (cmake --preset tsan or asan)\n");
    std::exit(2);
  }
#endif
  if (o.sleepy_min_ms > o.sleepy_max_ms) usage_error("%s", "--sleepy-min-ms is larger than --sleepy-max-ms");
  if (!seed_given) o.seed = static_cast<std::uint64_t>(now_ns()) ^ (static_cast<std::uint64_t>(getpid()) << 32);
  return o;
}

}  // namespace srcu_torture
