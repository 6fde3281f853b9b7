/*
 * notifier_test.c - checks for the SRCU notifier chains (srcu_notifier.h).
 *
 * A plain C11 program: each check prints what failed and exits nonzero, and
 * a watchdog thread ends the program (exit status 2) when a wait takes
 * longer than its limit, naming what it waited for.
 *
 *   unregister_from_own_notifier_aborts   srcu catches the documented deadlock
 *   priority_order                        descending priority, ties in registration order;
 *                                         -EEXIST for a block already on the chain
 *   stop_mask_ends_the_walk               NOTIFY_STOP and NOTIFY_BAD end the walk
 *   unregister_absent_block               -ENOENT, also for a second unregister
 *   unregister_waits_for_callers          returns only after a sleeping callback has finished
 *   churn                                 callers and writers race for ~1 s; a block is
 *                                         never called after its unregister returned
 */
#define _POSIX_C_SOURCE 200809L

#include "srcu_notifier.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

_Static_assert(NOTIFY_DONE == 0x0000 && NOTIFY_OK == 0x0001 && NOTIFY_STOP_MASK == 0x8000 &&
               NOTIFY_BAD == 0x8002 && NOTIFY_STOP == 0x8001,
               "the kernel's notifier return values");

/* --- Helpers ------------------------------------------------------------- */

/* Always on (release builds define NDEBUG, which would empty assert()).
 * _Exit: other threads may still be running; exit() would run the library's
 * destructors under them. */
#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static _Noreturn void check_failed(const char *what, int line) {
  fflush(stdout);
  fprintf(stderr, "notifier_test: line %d: check failed: %s\n", line, what);
  _Exit(1);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* xorshift64: a small per-thread random stream. */
static uint64_t next_random(uint64_t *state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

/* --- Watchdog -------------------------------------------------------------
 * watch() names a wait and its limit; unwatch() ends it. The watchdog thread
 * polls every 50 ms and, past the deadline, prints the name and exits. */

static _Atomic(const char *) watched_wait;
static atomic_llong watch_deadline_ns;  /* 0: nothing watched */
static atomic_int watch_limit_s;
static atomic_bool watchdog_stop;

static void watch(const char *what, int limit_s) {
  atomic_store(&watched_wait, what);
  atomic_store(&watch_limit_s, limit_s);
  atomic_store(&watch_deadline_ns, now_ns() + (int64_t)limit_s * 1000000000);
}

static void unwatch(void) { atomic_store(&watch_deadline_ns, 0); }

static void *watchdog_main(void *unused) {
  (void)unused;
  while (!atomic_load(&watchdog_stop)) {
    sleep_us(50000);
    const long long deadline = atomic_load(&watch_deadline_ns);
    if (deadline != 0 && now_ns() > deadline) {
      fflush(stdout);
      fprintf(stderr, "notifier_test: watchdog: waited more than %d s for %s\n",
              atomic_load(&watch_limit_s), atomic_load(&watched_wait));
      _Exit(2);
    }
  }
  return NULL;
}

/* Limits are a hang guard, far above what a 2-core machine under
 * ThreadSanitizer needs, not a speed check. */
enum { kWaitLimitS = 30 };

/* --- A block that records its calls ------------------------------------- */

struct recorder {
  struct notifier_block nb;
  char name;  /* appended to call_log on each call */
  int ret;    /* what the callback returns */
};

static char call_log[32];
static size_t call_log_len;
static unsigned long last_action;
static void *last_data;

static int record_call(struct notifier_block *nb, unsigned long action, void *data) {
  const struct recorder *r = container_of(nb, struct recorder, nb);
  CHECK(call_log_len + 1 < sizeof call_log);
  call_log[call_log_len++] = r->name;
  call_log[call_log_len] = '\0';
  last_action = action;
  last_data = data;
  return r->ret;
}

static int call_and_log(struct srcu_notifier_head *nh, unsigned long action, void *data) {
  call_log_len = 0;
  call_log[0] = '\0';
  return srcu_notifier_call_chain(nh, action, data);
}

static void init_recorder(struct recorder *r, char name, int priority, int ret) {
  r->nb.notifier_call = record_call;
  r->nb.next = NULL;
  r->nb.priority = priority;
  r->name = name;
  r->ret = ret;
}

/* --- unregister_from_own_notifier_aborts ----------------------------------
 * The documented deadlock: a callback unregistering from its own chain would
 * make synchronize_srcu() wait for the reader it runs in. srcu detects it and
 * aborts with a message; this runs it in a child and checks both. Runs first,
 * while this process has no other thread (srcu's threads start with the
 * first domain), so the child is forked from a single-threaded process. */

static struct srcu_notifier_head *own_chain;

static int unregister_own_block(struct notifier_block *nb, unsigned long action, void *data) {
  (void)action;
  (void)data;
  srcu_notifier_chain_unregister(own_chain, nb);
  return NOTIFY_OK;
}

static void child_unregisters_from_own_notifier(int stderr_pipe) {
  const struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);  /* the abort is expected */
  dup2(stderr_pipe, STDERR_FILENO);
  struct srcu_notifier_head nh;
  if (srcu_init_notifier_head(&nh) != 0) _Exit(3);
  struct notifier_block nb = {.notifier_call = unregister_own_block, .next = NULL, .priority = 0};
  own_chain = &nh;
  srcu_notifier_chain_register(&nh, &nb);
  srcu_notifier_call_chain(&nh, 0, NULL);  /* srcu aborts inside */
  _Exit(4);
}

static void test_unregister_from_own_notifier_aborts(void) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(stdout);
  const pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    close(fds[0]);
    child_unregisters_from_own_notifier(fds[1]);
  }
  close(fds[1]);

  /* Read the child's stderr to EOF, with a deadline (no watchdog thread yet:
   * this process stays single-threaded until the child is gone). */
  char said[4096];
  size_t len = 0;
  const int64_t deadline = now_ns() + (int64_t)kWaitLimitS * 1000000000;
  for (;;) {
    struct pollfd p = {.fd = fds[0], .events = POLLIN, .revents = 0};
    if (now_ns() > deadline) {
      fprintf(stderr, "notifier_test: waited more than %d s for the child that unregisters "
                      "from its own notifier to abort (undetected deadlock?)\n", kWaitLimitS);
      kill(child, SIGKILL);
      _Exit(2);
    }
    if (poll(&p, 1, 100) <= 0) continue;
    char chunk[512];
    const ssize_t n = read(fds[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const size_t keep = (size_t)n < sizeof said - 1 - len ? (size_t)n : sizeof said - 1 - len;
    memcpy(said + len, chunk, keep);
    len += keep;
  }
  said[len] = '\0';
  close(fds[0]);
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  printf("  the child said: %s", len > 0 ? said : "(nothing)\n");
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK(strstr(said, "srcu_notifier_head") != NULL);
  CHECK(strstr(said, "synchronize() called inside a read-side critical section of the same "
                     "domain") != NULL);
}

/* --- priority_order ------------------------------------------------------- */

static void test_priority_order(void) {
  struct srcu_notifier_head nh;
  CHECK(srcu_init_notifier_head(&nh) == 0);
  int marker = 0;
  CHECK(call_and_log(&nh, 1, NULL) == NOTIFY_DONE);  /* empty chain */
  CHECK(call_log_len == 0);

  struct recorder a, b, c, d, e;
  init_recorder(&a, 'a', 10, NOTIFY_OK);
  init_recorder(&b, 'b', 0, NOTIFY_OK);
  init_recorder(&c, 'c', 20, NOTIFY_DONE);
  init_recorder(&d, 'd', 10, NOTIFY_OK);   /* same priority as a, registered later */
  init_recorder(&e, 'e', -5, NOTIFY_OK);
  struct recorder *order[] = {&a, &b, &c, &d, &e};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; ++i) {
    CHECK(srcu_notifier_chain_register(&nh, &order[i]->nb) == 0);
  }
  CHECK(call_and_log(&nh, 42, &marker) == NOTIFY_OK);  /* e's value: the last called */
  CHECK(strcmp(call_log, "cadbe") == 0);
  CHECK(last_action == 42 && last_data == &marker);

  /* A block already on the chain: refused, chain unchanged. */
  CHECK(srcu_notifier_chain_register(&nh, &d.nb) == -EEXIST);
  CHECK(srcu_notifier_chain_register(&nh, &c.nb) == -EEXIST);
  call_and_log(&nh, 0, NULL);
  CHECK(strcmp(call_log, "cadbe") == 0);

  /* Unregistering from the middle keeps the rest in order. */
  CHECK(srcu_notifier_chain_unregister(&nh, &a.nb) == 0);
  call_and_log(&nh, 0, NULL);
  CHECK(strcmp(call_log, "cdbe") == 0);
  /* Registered again, a now goes after d (its equal, already there). */
  CHECK(srcu_notifier_chain_register(&nh, &a.nb) == 0);
  call_and_log(&nh, 0, NULL);
  CHECK(strcmp(call_log, "cdabe") == 0);
  srcu_cleanup_notifier_head(&nh);
}

/* --- stop_mask_ends_the_walk ----------------------------------------------- */

static void test_stop_mask_ends_the_walk(void) {
  struct srcu_notifier_head nh;
  CHECK(srcu_init_notifier_head(&nh) == 0);
  struct recorder a, b, c;
  init_recorder(&a, 'a', 30, NOTIFY_OK);
  init_recorder(&b, 'b', 20, NOTIFY_STOP);
  init_recorder(&c, 'c', 10, NOTIFY_OK);
  CHECK(srcu_notifier_chain_register(&nh, &c.nb) == 0);
  CHECK(srcu_notifier_chain_register(&nh, &a.nb) == 0);
  CHECK(srcu_notifier_chain_register(&nh, &b.nb) == 0);

  CHECK(call_and_log(&nh, 0, NULL) == NOTIFY_STOP);
  CHECK(strcmp(call_log, "ab") == 0);
  b.ret = NOTIFY_BAD;
  CHECK(call_and_log(&nh, 0, NULL) == NOTIFY_BAD);
  CHECK(strcmp(call_log, "ab") == 0);
  b.ret = NOTIFY_DONE;  /* no stop bit: the walk goes on */
  CHECK(call_and_log(&nh, 0, NULL) == NOTIFY_OK);
  CHECK(strcmp(call_log, "abc") == 0);
  a.ret = NOTIFY_STOP;  /* the first block stops it */
  CHECK(call_and_log(&nh, 0, NULL) == NOTIFY_STOP);
  CHECK(strcmp(call_log, "a") == 0);
  srcu_cleanup_notifier_head(&nh);
}

/* --- unregister_absent_block ------------------------------------------------ */

static void test_unregister_absent_block(void) {
  struct srcu_notifier_head nh;
  CHECK(srcu_init_notifier_head(&nh) == 0);
  struct recorder a, never;
  init_recorder(&a, 'a', 0, NOTIFY_OK);
  init_recorder(&never, 'n', 0, NOTIFY_OK);
  CHECK(srcu_notifier_chain_unregister(&nh, &never.nb) == -ENOENT);  /* empty chain */
  CHECK(srcu_notifier_chain_register(&nh, &a.nb) == 0);
  CHECK(srcu_notifier_chain_unregister(&nh, &never.nb) == -ENOENT);  /* not this one */
  CHECK(srcu_notifier_chain_unregister(&nh, &a.nb) == 0);
  CHECK(srcu_notifier_chain_unregister(&nh, &a.nb) == -ENOENT);      /* twice */
  CHECK(call_and_log(&nh, 0, NULL) == NOTIFY_DONE);
  CHECK(call_log_len == 0);
  srcu_cleanup_notifier_head(&nh);
}

/* --- unregister_waits_for_callers -------------------------------------------
 * 1. A caller thread enters the chain and sleeps 200 ms inside the block.
 * 2. The main thread, once the caller is inside, unregisters the block.
 * 3. The block sets 'finished' just before returning. Unregister must not
 *    return before that: 'finished' is checked at once after it returns. */

struct slow_block {
  struct notifier_block nb;
  atomic_bool entered;
  atomic_bool finished;
};

static int sleep_inside(struct notifier_block *nb, unsigned long action, void *data) {
  (void)action;
  (void)data;
  struct slow_block *s = container_of(nb, struct slow_block, nb);
  atomic_store(&s->entered, true);
  sleep_us(200000);  /* callers may sleep inside a notifier */
  atomic_store(&s->finished, true);
  return NOTIFY_OK;
}

static void *call_chain_once(void *nh) {
  srcu_notifier_call_chain(nh, 0, NULL);
  return NULL;
}

static void test_unregister_waits_for_callers(void) {
  struct srcu_notifier_head nh;
  CHECK(srcu_init_notifier_head(&nh) == 0);
  struct slow_block slow = {.nb = {.notifier_call = sleep_inside, .next = NULL, .priority = 0}};
  atomic_init(&slow.entered, false);
  atomic_init(&slow.finished, false);
  CHECK(srcu_notifier_chain_register(&nh, &slow.nb) == 0);

  pthread_t caller;
  CHECK(pthread_create(&caller, NULL, call_chain_once, &nh) == 0);
  watch("the caller thread to enter the sleeping notifier", kWaitLimitS);
  while (!atomic_load(&slow.entered)) sleep_us(1000);
  unwatch();

  const int64_t start = now_ns();
  watch("srcu_notifier_chain_unregister() while a caller sleeps in the block", kWaitLimitS);
  const int ret = srcu_notifier_chain_unregister(&nh, &slow.nb);
  const bool finished = atomic_load(&slow.finished);  /* at once */
  unwatch();
  CHECK(ret == 0);
  CHECK(finished);
  printf("  unregister waited %.0f ms for the caller inside the block\n",
         (double)(now_ns() - start) / 1e6);

  watch("the caller thread to end", kWaitLimitS);
  CHECK(pthread_join(caller, NULL) == 0);
  unwatch();

  atomic_store(&slow.entered, false);  /* unregistered: not called again */
  srcu_notifier_call_chain(&nh, 0, NULL);
  CHECK(!atomic_load(&slow.entered));
  srcu_cleanup_notifier_head(&nh);
}

/* --- churn --------------------------------------------------------------------
 * kCallers threads call the chain without pause while kWriters threads
 * register and unregister blocks, for ~1 s (9 threads with the watchdog and
 * the main thread, on a 2-core machine: callers are preempted inside
 * callbacks, and some callbacks sleep). Each writer owns kOwnBlocks reused
 * blocks, and also registers a fresh heap block each round and frees it at
 * once after unregistering (ASan reports a caller that still reaches it).
 * A block's 'dead' flag is set after its unregister returns and cleared
 * before it is registered again; the callback aborts when it finds it set. */

enum { kCallers = 4, kWriters = 3, kOwnBlocks = 4 };
static const long kChurnMicroseconds = 1000000;

struct churn_block {
  struct notifier_block nb;
  atomic_bool dead;
  atomic_ulong calls;
};

static struct srcu_notifier_head churn_chain;
static atomic_bool churn_stop;
static atomic_ulong churn_chain_calls, churn_registrations;

static int churn_call(struct notifier_block *nb, unsigned long action, void *data) {
  (void)data;
  struct churn_block *b = container_of(nb, struct churn_block, nb);
  if (atomic_load(&b->dead)) {
    fprintf(stderr, "notifier_test: block %p (priority %d) called after its unregister "
                    "returned\n", (void *)b, nb->priority);
    abort();
  }
  atomic_fetch_add_explicit(&b->calls, 1, memory_order_relaxed);
  if (action % 256 == 0) sleep_us(50);  /* now and then, sleep inside */
  return NOTIFY_OK;
}

static void init_churn_block(struct churn_block *b, int priority) {
  b->nb.notifier_call = churn_call;
  b->nb.next = NULL;
  b->nb.priority = priority;
  atomic_init(&b->dead, false);
  atomic_init(&b->calls, 0);
}

static void *churn_caller(void *unused) {
  (void)unused;
  unsigned long n = 0;
  while (!atomic_load_explicit(&churn_stop, memory_order_relaxed)) {
    srcu_notifier_call_chain(&churn_chain, n++, NULL);
  }
  atomic_fetch_add(&churn_chain_calls, n);
  return NULL;
}

static void unregister_and_bury(struct churn_block *b) {
  CHECK(srcu_notifier_chain_unregister(&churn_chain, &b->nb) == 0);
  atomic_store(&b->dead, true);  /* from here on, a call is a bug */
}

static void *churn_writer(void *seed) {
  uint64_t random = (uint64_t)(uintptr_t)seed * 0x9E3779B97F4A7C15u + 1;
  struct churn_block own[kOwnBlocks];
  bool registered[kOwnBlocks] = {false};
  for (int i = 0; i < kOwnBlocks; ++i) init_churn_block(&own[i], 0);
  unsigned long registrations = 0;

  while (!atomic_load_explicit(&churn_stop, memory_order_relaxed)) {
    /* One reused block: in if it was out (at a new priority), out if it was in. */
    const int i = (int)(next_random(&random) % kOwnBlocks);
    if (registered[i]) {
      unregister_and_bury(&own[i]);
    } else {
      own[i].nb.priority = (int)(next_random(&random) % 7) - 3;
      atomic_store(&own[i].dead, false);  /* before it can be found */
      CHECK(srcu_notifier_chain_register(&churn_chain, &own[i].nb) == 0);
      ++registrations;
    }
    registered[i] = !registered[i];

    /* One fresh block, freed as soon as its unregister returns. */
    struct churn_block *fresh = malloc(sizeof *fresh);
    CHECK(fresh != NULL);
    init_churn_block(fresh, (int)(next_random(&random) % 7) - 3);
    CHECK(srcu_notifier_chain_register(&churn_chain, &fresh->nb) == 0);
    ++registrations;
    sleep_us((long)(next_random(&random) % 200));
    unregister_and_bury(fresh);
    free(fresh);
  }
  for (int i = 0; i < kOwnBlocks; ++i) {
    if (registered[i]) unregister_and_bury(&own[i]);
  }
  atomic_fetch_add(&churn_registrations, registrations);
  return NULL;
}

static void test_churn(void) {
  CHECK(srcu_init_notifier_head(&churn_chain) == 0);
  pthread_t callers[kCallers], writers[kWriters];
  for (int i = 0; i < kCallers; ++i) {
    CHECK(pthread_create(&callers[i], NULL, churn_caller, NULL) == 0);
  }
  for (int i = 0; i < kWriters; ++i) {
    CHECK(pthread_create(&writers[i], NULL, churn_writer, (void *)(uintptr_t)(i + 1)) == 0);
  }
  sleep_us(kChurnMicroseconds);
  atomic_store(&churn_stop, true);
  watch("the churn threads to stop", 2 * kWaitLimitS);
  for (int i = 0; i < kWriters; ++i) CHECK(pthread_join(writers[i], NULL) == 0);
  for (int i = 0; i < kCallers; ++i) CHECK(pthread_join(callers[i], NULL) == 0);
  unwatch();
  CHECK(churn_chain.head == NULL);  /* every writer took its blocks back out */
  const unsigned long calls = atomic_load(&churn_chain_calls);
  const unsigned long registrations = atomic_load(&churn_registrations);
  printf("  %d callers, %d writers: %lu chain calls, %lu registrations, no late call\n",
         kCallers, kWriters, calls, registrations);
  CHECK(calls > 0 && registrations > 0);
  srcu_cleanup_notifier_head(&churn_chain);
}

/* --- main ------------------------------------------------------------------ */

static bool selected(const char *name, int argc, char **argv) {
  if (argc == 1) return true;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], name) == 0) return true;
  }
  return false;
}

/* notifier_test [test-name...]: all tests, or only those named. */
int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  static const struct {
    const char *name;
    void (*run)(void);
  } tests[] = {
      /* First: forks while this process is single-threaded. */
      {"unregister_from_own_notifier_aborts", test_unregister_from_own_notifier_aborts},
      {"priority_order", test_priority_order},
      {"stop_mask_ends_the_walk", test_stop_mask_ends_the_walk},
      {"unregister_absent_block", test_unregister_absent_block},
      {"unregister_waits_for_callers", test_unregister_waits_for_callers},
      {"churn", test_churn},
  };
  enum { kTests = sizeof tests / sizeof tests[0] };
  int run = 0;
  pthread_t watchdog;
  bool watchdog_started = false;
  for (int i = 0; i < kTests; ++i) {
    if (!selected(tests[i].name, argc, argv)) continue;
    if (i > 0 && !watchdog_started) {  /* after the fork test */
      CHECK(pthread_create(&watchdog, NULL, watchdog_main, NULL) == 0);
      watchdog_started = true;
    }
    printf("notifier_test: %s\n", tests[i].name);
    tests[i].run();
    printf("  ok\n");
    ++run;
  }
  if (watchdog_started) {
    atomic_store(&watchdog_stop, true);
    CHECK(pthread_join(watchdog, NULL) == 0);
  }
  if (run != (argc == 1 ? kTests : argc - 1)) {
    fprintf(stderr, "usage: %s [test-name...]; tests:", argv[0]);
    for (int i = 0; i < kTests; ++i) fprintf(stderr, " %s", tests[i].name);
    fprintf(stderr, "\n");
    return 64;
  }
  printf("notifier_test: all passed\n");
  return 0;
}
