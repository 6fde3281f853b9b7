// A plugin for dlclose_test.cc: it inlines srcu's readers (their restartable
// sequences' descriptors are in this shared object), and is unloaded while
// the thread that ran them goes on. Resolves srcu's out-of-line symbols from
// the test program, which exports them.
#include <srcu/srcu.h>

extern "C" int plugin_read(srcu::domain* d) {
  int sections = 0;
  // A signal-safe section (inline once the domain's per-CPU table exists;
  // out of line in the library before), then read_lock()s: the first may
  // take read_lock_slow(), the rest run the inline sequence, so the last
  // sequence this thread ran is the plugin's own.
  const srcu::read_token s = d->read_lock_signal_safe();
  ++sections;
  d->read_unlock_signal_safe(s);
  for (int i = 0; i < 3; ++i) {
    const srcu::read_token t = d->read_lock();
    ++sections;
    d->read_unlock(t);
  }
  return sections;
}
