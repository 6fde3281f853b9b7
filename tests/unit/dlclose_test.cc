// A thread runs a plugin's inline srcu readers, the plugin is dlclose()d, and
// the thread goes on: it is preempted, takes signals, and grace periods
// interrupt it. The kernel reads a thread's rseq_cs at each of those; had the
// readers' restartable sequences left it pointing at a descriptor in the
// unloaded plugin, the kernel would kill the thread (SIGSEGV; it did before
// the sequences disarmed themselves, docs/design.md §1.1). Usage:
// srcu_dlclose_test PLUGIN.so
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <srcu/srcu.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {
void on_usr1(int) {}
void on_alarm(int) {
  static const char kMsg[] = "dlclose_test: FAILED: still waiting after 30 s for the reader thread "
                             "to run past the plugin's unload\n";
  (void)!write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
  _exit(1);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
    return 2;
  }
  signal(SIGALRM, on_alarm);
  alarm(30);
  signal(SIGUSR1, on_usr1);
  srcu::domain d({.name = "dlclose"});
  std::atomic<bool> unloaded{false};
  std::atomic<bool> stop{false};
  int sections = 0;
  std::thread reader([&] {
    void* plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (plugin == nullptr) {
      std::fprintf(stderr, "dlclose_test: FAILED: dlopen: %s\n", dlerror());
      std::exit(1);
    }
    auto* read = reinterpret_cast<int (*)(srcu::domain*)>(dlsym(plugin, "plugin_read"));
    if (read == nullptr) {
      std::fprintf(stderr, "dlclose_test: FAILED: dlsym: %s\n", dlerror());
      std::exit(1);
    }
    sections = read(&d);
    if (dlclose(plugin) != 0) {
      std::fprintf(stderr, "dlclose_test: FAILED: dlclose: %s\n", dlerror());
      std::exit(1);
    }
    unloaded = true;
    volatile unsigned long spins = 0;
    while (!stop.load(std::memory_order_relaxed)) spins = spins + 1;  // preempted, signalled
  });
  while (!unloaded.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int i = 0; i < 100; ++i) {
    pthread_kill(reader.native_handle(), SIGUSR1);
    d.synchronize_expedited();  // a heavy barrier interrupts the reader too
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop = true;
  reader.join();
  if (sections != 4) {
    std::fprintf(stderr, "dlclose_test: FAILED: the plugin ran %d sections, not 4\n", sections);
    return 1;
  }
  std::printf("dlclose_test: the thread ran on after its plugin's unload (100 signals, 100 grace periods)\n");
  return 0;
}
