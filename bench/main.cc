// srcu_bench: srcu side by side with liburcu (urcu-memb, urcu-mb, urcu-qsbr),
// Concurrency Kit's ck_epoch, std::shared_mutex, pthread_rwlock and
// std::shared_ptr, in one run. The rows are written once in harness.h and
// registered per library by lib_*.cc; bench/run drives this program and
// bench/report.py turns its JSON into docs/perf/.
//
// Besides Google Benchmark's flags: --samples_out=FILE appends the latency
// rows' quantiles (JSON lines) to FILE.

#include <sys/utsname.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"
#include "srcu/version.h"

namespace bench {
extern std::FILE* g_samples;
}

namespace {
// The machine the figures come from, recorded in the JSON so that a report
// made elsewhere (bench/report.py) names it.
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

std::string kernel_release() {
  utsname u{};
  return uname(&u) == 0 ? std::string(u.release) : std::string("unknown");
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    constexpr const char kSamples[] = "--samples_out=";
    if (std::strncmp(argv[i], kSamples, sizeof kSamples - 1) == 0) {
      bench::g_samples = std::fopen(argv[i] + sizeof kSamples - 1, "a");
      if (bench::g_samples == nullptr) {
        std::perror(argv[i]);
        return 1;
      }
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

  bench::run_warmers();
  benchmark::AddCustomContext("srcu_version", SRCU_VERSION_STRING);
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("kernel", kernel_release());
  benchmark::AddCustomContext("allowed_cpus", std::to_string(bench::cpu_count()));
  benchmark::AddCustomContext("liburcu_version", SRCU_BENCH_URCU_VERSION);
  benchmark::AddCustomContext("ck_version", SRCU_BENCH_CK_VERSION);
  benchmark::AddCustomContext("benchmark_version", SRCU_BENCH_BENCHMARK_VERSION);
  benchmark::AddCustomContext("compiler", SRCU_BENCH_COMPILER);
  benchmark::AddCustomContext("cxx_flags", SRCU_BENCH_CXX_FLAGS);
  benchmark::AddCustomContext("pinning", std::getenv("SRCU_BENCH_PIN") != nullptr &&
                                                 std::strcmp(std::getenv("SRCU_BENCH_PIN"), "0") == 0
                                             ? "off"
                                             : "thread i on allowed CPU i mod CPUs");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (bench::g_samples != nullptr) std::fclose(bench::g_samples);
  return 0;
}
