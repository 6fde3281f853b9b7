// srcu-torture: a torture test for srcu in the spirit of the Linux kernel's
// rcutorture: many readers of every flavour, writers using every update
// primitive, several domains, fault injection, and deliberately broken modes
// that the test must catch. `srcu-torture --help` explains every option and
// how to read the report; README.md here is the short version, and torture.h
// says how a broken grace period is caught and which file holds what.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "delivery.h"
#include "torture.h"

int main(int argc, char** argv) {
  using namespace srcu_torture;
  const options opt = parse_options(argc, argv);
  const bool sleepy = opt.sleepy_domain && opt.domains >= 2;
  if (opt.lib_fault_prob > 0) {
    // Read by the library once, when its first fault point runs (after this).
    setenv("SRCU_FAULT_PROB", std::to_string(opt.lib_fault_prob).c_str(), 1);
  }

  say("--- Start of test: duration=%g readers=%d writers=%d (per domain) domains=%d flavours=%s primitives=%s "
      "seed=%llu stat-interval=%g sleepy-domain=%s max-nest=%d reader-delay-us=%d yield-prob=%g lib-fault-prob=%g "
      "signal-storm=%d thread-churn=%d fork=%d fwd-progress=%d%s stall-seconds=%g delivery=%s busted=%s config=%s",
      opt.duration_s, opt.readers, opt.writers, opt.domains,
      list_names(opt.flavours, kReaderOps, kFlavourCount).c_str(),
      list_names(opt.primitives, kUpdateOps, kPrimitiveCount).c_str(), ull(opt.seed), opt.stat_interval_s,
      sleepy ? (std::to_string(opt.sleepy_min_ms) + "-" + std::to_string(opt.sleepy_max_ms) + "ms").c_str()
             : (opt.sleepy_domain ? "off (needs 2+ domains)" : "off"),
      opt.max_nest, opt.reader_delay_us, opt.yield_prob, opt.lib_fault_prob, opt.signal_storm, opt.thread_churn, opt.fork,
      opt.fwd_progress, opt.fwd_progress ? (" flood=" + std::to_string(opt.flood)).c_str() : "", opt.stall_s,
      opt.delivery != 0 ? list_names(opt.delivery, kDeliveryScenarioOps, kDeliveryScenarios).c_str() : "off",
      opt.busted != nullptr ? opt.busted->name : "off", opt.config.empty() ? "none" : opt.config.c_str());
  if (opt.busted != nullptr) say("--busted=%s: %s; this run must end in FAILURE", opt.busted->name, opt.busted->summary);

  if (opt.signal_storm) {
    struct sigaction sa{};
    sa.sa_handler = &on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, nullptr);
  }

  // Names outlive the domains (domain_options keeps the pointer).
  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(opt.domains));
  for (int i = 0; i < opt.domains; ++i) {
    names.push_back((sleepy && i == opt.domains - 1 ? "sleepy" : "torture") + std::to_string(i));
  }
  std::vector<std::unique_ptr<srcu::domain>> domains;
  std::vector<domain_spec> specs;
  for (int i = 0; i < opt.domains; ++i) {
    srcu::domain_options dopt;
    dopt.name = names[static_cast<std::size_t>(i)].c_str();
    dopt.stall_timeout = std::chrono::milliseconds(static_cast<long long>(opt.stall_s * 1000));
    domains.push_back(std::make_unique<srcu::domain>(dopt));
    specs.push_back({domains.back().get(), dopt.name, sleepy && i == opt.domains - 1});
  }

  auto r = std::make_unique<run>(opt, specs, /*is_child=*/false);
  r->execute();
  r->capture_domain_stats();
  // ~domain requires that no reader is active and runs a last barrier(); every
  // torture thread has stopped by now. The report comes after, so its last
  // line is the verdict.
  domains.clear();
  r->print_report();
  return r->success() ? 0 : 1;
}
