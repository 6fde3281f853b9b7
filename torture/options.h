// options.h: srcu-torture's options: what --help documents, and the named
// scenarios of configs/*.conf that --config reads.

#pragma once

#include <cstdint>
#include <string>

#include "ops.h"

namespace srcu_torture {

struct options {
  double duration_s = 30;
  int readers = 4;  // per domain
  int writers = 2;  // per domain
  int domains = 3;
  unsigned flavours = (1u << kFlavourCount) - 1;
  unsigned primitives = (1u << kPrimitiveCount) - 1;
  std::uint64_t seed = 0;
  double stat_interval_s = 5;
  bool sleepy_domain = true;
  int sleepy_min_ms = 100;
  int sleepy_max_ms = 500;
  int reader_delay_us = 20;
  int max_nest = 3;
  double yield_prob = 0.001;
  double lib_fault_prob = 0.0;  // library's own labelled points (SRCU_FAULT_INJECTION builds)
  bool signal_storm = false;
  bool thread_churn = false;
  bool fork = false;
  bool fwd_progress = false;
  int flood = 100'000;  // flood heads per writer
  double stall_s = 10;
  const update_ops* busted = nullptr;  // --busted=MODE: a busted entry of kUpdateOps; null: the real primitives
  unsigned delivery = (1u << kDeliveryScenarios) - 1;
  bool keep_going = false;
  std::string config;  // --config NAME_OR_PATH as given; "" for none
};

// The options of a run: the lines of --config's file first, then the command
// line's other arguments, so that the command line overrides the file. Exits
// 0 after --help, 2 on a usage error.
options parse_options(int argc, char** argv);

}  // namespace srcu_torture
