/* The C API (srcu/srcu_c.h), compiled as C11 with -Wall -Wextra -Werror
 * -pedantic: the behaviour tests of the C++ API, through the kernel names.
 * Plain C: each check prints what failed and exits nonzero; a watchdog
 * (alarm) names what the test was waiting for when it hangs. */
#define _POSIX_C_SOURCE 200809L
#include <srcu/srcu_c.h>

#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

/* --- watchdog: a hang fails with the name of the wait ---------------------- */
static const char *volatile waiting_for = "start";
static void on_alarm(int sig) {
  const char *w = waiting_for;
  (void)sig;
  (void)!write(2, "c_api_test: watchdog: still waiting for: ", 41);
  (void)!write(2, w, strlen(w));
  (void)!write(2, "\n", 1);
  _exit(3);
}
static void wait_step(const char *what) { waiting_for = what; alarm(60); }

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

DEFINE_SRCU(global_srcu);        /* external linkage, never initialised explicitly */
DEFINE_STATIC_SRCU(static_srcu); /* internal linkage */

/* --- a reader of each flavour holds up synchronize_srcu() ------------------ */
enum flavour { THREAD_FLAVOUR, NMISAFE_FLAVOUR, DOWN_UP_FLAVOUR };
struct reader_arg {
  struct srcu_struct *ssp;
  enum flavour flavour;
  atomic_int inside;
  atomic_int finished;
  int idx; /* down_read: handed to the main thread, which ends the section */
};

/* Holds the section 150 ms, then says so just before it ends: a wait that
 * returns must find `finished` set. */
static void hold_then_finish(struct reader_arg *a) {
  atomic_store(&a->inside, 1);
  sleep_ms(150);
  atomic_store(&a->finished, 1);
}

static void *reader_main(void *p) {
  struct reader_arg *a = p;
  int idx;
  switch (a->flavour) {
    case THREAD_FLAVOUR:
      idx = srcu_read_lock(a->ssp);
      hold_then_finish(a);
      srcu_read_unlock(a->ssp, idx);
      break;
    case NMISAFE_FLAVOUR:
      idx = srcu_read_lock_nmisafe(a->ssp);
      hold_then_finish(a);
      srcu_read_unlock_nmisafe(a->ssp, idx);
      break;
    case DOWN_UP_FLAVOUR:
      a->idx = srcu_down_read(a->ssp); /* ended by up_reader_main on another thread */
      atomic_store(&a->inside, 1);
      break;
  }
  return NULL;
}

static void *up_reader_main(void *p) {
  struct reader_arg *a = p;
  hold_then_finish(a);
  srcu_up_read(a->ssp, a->idx);
  return NULL;
}

static void check_synchronize_waits(struct srcu_struct *ssp, enum flavour f, int expedited) {
  struct reader_arg a;
  pthread_t reader, upper;
  memset(&a, 0, sizeof a);
  a.ssp = ssp;
  a.flavour = f;
  atomic_init(&a.inside, 0);
  atomic_init(&a.finished, 0);
  CHECK(pthread_create(&reader, NULL, reader_main, &a) == 0);
  wait_step("the reader thread to enter its section");
  while (!atomic_load(&a.inside)) sleep_ms(1);
  if (f == DOWN_UP_FLAVOUR) {
    CHECK(pthread_join(reader, NULL) == 0); /* the locking thread is gone; the section is not */
    CHECK(pthread_create(&upper, NULL, up_reader_main, &a) == 0);
  }
  wait_step(expedited ? "synchronize_srcu_expedited() behind a reader"
                      : "synchronize_srcu() behind a reader");
  if (expedited) {
    synchronize_srcu_expedited(ssp);
  } else {
    synchronize_srcu(ssp);
  }
  CHECK(atomic_load(&a.finished)); /* returned only after the reader ended */
  wait_step("the reader threads to exit");
  if (f == DOWN_UP_FLAVOUR) {
    CHECK(pthread_join(upper, NULL) == 0);
  } else {
    CHECK(pthread_join(reader, NULL) == 0);
  }
}

/* --- callbacks -------------------------------------------------------------- */
struct node {
  int key;
  struct rcu_head rcu;
};
static atomic_int freed;
static atomic_int order_ok;
static atomic_int next_key;

static void free_node(struct rcu_head *head) {
  struct node *n = container_of(head, struct node, rcu);
  /* callbacks queued by one thread run in queueing order */
  if (n->key != atomic_fetch_add(&next_key, 1)) atomic_store(&order_ok, 0);
  free(n);
  atomic_fetch_add(&freed, 1);
}

static void check_call_and_barrier(struct srcu_struct *ssp) {
  int i;
  atomic_store(&freed, 0);
  atomic_store(&order_ok, 1);
  atomic_store(&next_key, 0);
  for (i = 0; i < 1000; ++i) {
    struct node *n = malloc(sizeof *n);
    CHECK(n != NULL);
    n->key = i;
    memset(&n->rcu, 0xA5, sizeof n->rcu); /* the kernel accepts a head full of garbage */
    call_srcu(ssp, &n->rcu, free_node);
  }
  wait_step("srcu_barrier() for 1000 callbacks");
  srcu_barrier(ssp);
  CHECK(atomic_load(&freed) == 1000);
  CHECK(atomic_load(&order_ok));
}

/* A callback may wait for a grace period of its own domain and re-queue itself. */
static struct srcu_struct *requeue_ssp;
static atomic_int requeue_runs;
static struct rcu_head requeue_head;
static void requeue_cb(struct rcu_head *head) {
  synchronize_srcu(requeue_ssp);
  if (atomic_fetch_add(&requeue_runs, 1) + 1 < 3) call_srcu(requeue_ssp, head, requeue_cb);
}

/* --- call_srcu() and the nmisafe reader from a signal handler ---------------- */
static struct srcu_struct *signal_ssp;
static struct rcu_head signal_heads[64];
static atomic_int signal_calls;
static atomic_int signal_cb_runs;
static void signal_cb(struct rcu_head *head) {
  (void)head;
  atomic_fetch_add(&signal_cb_runs, 1);
}
static void on_usr1(int sig) {
  int n = atomic_fetch_add(&signal_calls, 1);
  int idx = srcu_read_lock_nmisafe(signal_ssp);
  (void)sig;
  if (n < 64) call_srcu(signal_ssp, &signal_heads[n], signal_cb);
  (void)start_poll_synchronize_srcu(signal_ssp);
  srcu_read_unlock_nmisafe(signal_ssp, idx);
}

static void check_signal_handler(struct srcu_struct *ssp) {
  struct sigaction sa;
  int i;
  signal_ssp = ssp;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  for (i = 0; i < 64; ++i) {
    int idx = srcu_read_lock(ssp); /* the handler interrupts a thread-flavour reader */
    CHECK(raise(SIGUSR1) == 0);
    srcu_read_unlock(ssp, idx);
  }
  CHECK(atomic_load(&signal_calls) == 64);
  wait_step("srcu_barrier() for callbacks queued from a signal handler");
  srcu_barrier(ssp);
  CHECK(atomic_load(&signal_cb_runs) == 64);
}

/* --- misuse: a message naming the structure, then abort --------------------- */
static struct srcu_struct misuse_srcu;
static void misuse_bad_idx(void) { srcu_read_unlock(&misuse_srcu, 5); }
static void misuse_unlock_without_lock(void) { srcu_read_unlock(&misuse_srcu, 0); }
static void misuse_bad_shared_idx(void) { srcu_up_read(&misuse_srcu, -1); }
static void misuse_synchronize_inside_reader(void) {
  (void)srcu_read_lock(&misuse_srcu);
  synchronize_srcu(&misuse_srcu);
}
static void misuse_cleanup_with_reader(void) {
  (void)srcu_read_lock(&misuse_srcu);
  cleanup_srcu_struct(&misuse_srcu);
}
static void misuse_null_head(void) { call_srcu(&misuse_srcu, NULL, signal_cb); }

/* Runs `misuse` in a child; it must die by SIGABRT with `expected` (and the
 * structure's name) on stderr. */
static void check_dies(void (*misuse)(void), const char *expected) {
  int fds[2];
  pid_t pid;
  char out[4096];
  size_t len = 0;
  ssize_t n;
  int status;
  CHECK(pipe(fds) == 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    misuse();
    _exit(0); /* not reached when the misuse is caught */
  }
  close(fds[1]);
  wait_step("a misuse child to die with a message");
  while (len < sizeof out - 1 && (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)n;
  out[len] = 0;
  close(fds[0]);
  CHECK(waitpid(pid, &status, 0) == pid);
  if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) || !strstr(out, expected) ||
      !strstr(out, "&misuse_srcu")) {
    fprintf(stderr, "misuse not reported as expected (want \"%s\"); child said: %s\n", expected, out);
    exit(1);
  }
}

static void check_misuse(void) {
  CHECK(init_srcu_struct(&misuse_srcu) == 0);
  check_dies(misuse_bad_idx, "idx that srcu_read_lock() did not return");
  check_dies(misuse_unlock_without_lock, "never called srcu_read_lock()");
  check_dies(misuse_bad_shared_idx, "srcu_up_read() given an idx");
  check_dies(misuse_synchronize_inside_reader, "synchronize()");
  check_dies(misuse_cleanup_with_reader, "destroyed inside one of its own read-side");
  check_dies(misuse_null_head, "null rcu_head");
  cleanup_srcu_struct(&misuse_srcu);
}

/* --- polling ------------------------------------------------------------------ */
static void check_polling(struct srcu_struct *ssp) {
  unsigned long snap = get_state_synchronize_srcu(ssp);
  unsigned long started;
  int idx;
  wait_step("synchronize_srcu() to complete a cookie");
  synchronize_srcu(ssp);
  CHECK(poll_state_synchronize_srcu(ssp, snap));

  idx = srcu_read_lock(ssp); /* a reader holds up the polled grace period */
  started = start_poll_synchronize_srcu(ssp);
  sleep_ms(50);
  CHECK(!poll_state_synchronize_srcu(ssp, started));
  srcu_read_unlock(ssp, idx);
  wait_step("the grace period start_poll_synchronize_srcu() asked for (nobody waits)");
  while (!poll_state_synchronize_srcu(ssp, started)) sleep_ms(1);
}

/* --- srcu_dereference / rcu_assign_pointer ------------------------------------ */
struct config {
  int a, b;
};
static struct config *current_config;
static void check_publish(struct srcu_struct *ssp) {
  struct config *c = malloc(sizeof *c), *seen, *old;
  int idx;
  CHECK(c != NULL);
  c->a = 1;
  c->b = 2;
  rcu_assign_pointer(current_config, c);
  idx = srcu_read_lock(ssp);
  seen = srcu_dereference(current_config, ssp);
  CHECK(seen == c && seen->a == 1 && srcu_dereference(current_config, ssp)->b == 2);
  srcu_read_unlock(ssp, idx);
  old = current_config;
  rcu_assign_pointer(current_config, NULL);
  synchronize_srcu(ssp);
  free(old);
  CHECK(current_config == NULL);
}

/* --- DEFINE_SRCU created on first use by many threads at once ------------------ */
DEFINE_STATIC_SRCU(raced_srcu);
static atomic_int race_go;
static void *first_use_main(void *p) {
  int idx;
  (void)p;
  while (!atomic_load(&race_go)) {
  }
  idx = srcu_read_lock(&raced_srcu); /* every thread may try to create the domain */
  srcu_read_unlock(&raced_srcu, idx);
  return NULL;
}
static void check_first_use_race(void) {
  pthread_t threads[8];
  int i, idx;
  for (i = 0; i < 8; ++i) CHECK(pthread_create(&threads[i], NULL, first_use_main, NULL) == 0);
  atomic_store(&race_go, 1);
  wait_step("8 threads racing to create a DEFINE_SRCU domain");
  for (i = 0; i < 8; ++i) CHECK(pthread_join(threads[i], NULL) == 0);
  /* One domain won: a reader on another thread holds up this thread's wait. */
  check_synchronize_waits(&raced_srcu, THREAD_FLAVOUR, 0);
  idx = srcu_read_lock_nmisafe(&raced_srcu);
  srcu_read_unlock_nmisafe(&raced_srcu, idx);
  synchronize_srcu(&raced_srcu);
}

/* Embeddable: a structure with an srcu_struct inside, initialised at run time. */
struct subsystem {
  int state;
  struct srcu_struct srcu;
};

int main(void) {
  struct subsystem sub;
  struct srcu_struct dynamic;
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGALRM, &sa, NULL) == 0);

  memset(&dynamic, 0x5A, sizeof dynamic); /* init_srcu_struct() ignores what the memory holds */
  CHECK(init_srcu_struct(&dynamic) == 0);
  CHECK(init_srcu_struct(&sub.srcu) == 0);

  check_synchronize_waits(&dynamic, THREAD_FLAVOUR, 0);
  check_synchronize_waits(&dynamic, NMISAFE_FLAVOUR, 0);
  check_synchronize_waits(&dynamic, DOWN_UP_FLAVOUR, 0);
  check_synchronize_waits(&sub.srcu, THREAD_FLAVOUR, 1);
  check_synchronize_waits(&sub.srcu, NMISAFE_FLAVOUR, 1);
  check_synchronize_waits(&sub.srcu, DOWN_UP_FLAVOUR, 1);
  /* DEFINE_SRCU structures work without init_srcu_struct() */
  check_synchronize_waits(&global_srcu, THREAD_FLAVOUR, 0);
  check_synchronize_waits(&static_srcu, DOWN_UP_FLAVOUR, 1);

  check_call_and_barrier(&dynamic);
  check_call_and_barrier(&static_srcu);

  requeue_ssp = &dynamic;
  call_srcu(&dynamic, &requeue_head, requeue_cb);
  wait_step("a callback that synchronizes and re-queues itself");
  while (atomic_load(&requeue_runs) < 3) sleep_ms(1);
  srcu_barrier(&dynamic);

  /* The first use of a DEFINE_SRCU structure allocates: make it here, not in the handler. */
  (void)get_state_synchronize_srcu(&global_srcu);
  check_signal_handler(&global_srcu);

  check_polling(&dynamic);
  check_polling(&static_srcu);
  check_publish(&sub.srcu);

  /* Nesting across flavours and structures. */
  {
    int i1 = srcu_read_lock(&dynamic);
    int i2 = srcu_read_lock(&dynamic);
    int i3 = srcu_read_lock_nmisafe(&sub.srcu);
    wait_step("synchronize_srcu() of another structure inside readers");
    synchronize_srcu(&global_srcu); /* legal: readers of other structures */
    srcu_read_unlock_nmisafe(&sub.srcu, i3);
    srcu_read_unlock(&dynamic, i2);
    srcu_read_unlock(&dynamic, i1);
  }

  /* cleanup runs what is still queued, and the structure may be initialised again. */
  {
    struct node *n = malloc(sizeof *n);
    CHECK(n != NULL);
    atomic_store(&freed, 0);
    atomic_store(&order_ok, 1);
    atomic_store(&next_key, 0);
    n->key = 0;
    call_srcu(&dynamic, &n->rcu, free_node);
    wait_step("cleanup_srcu_struct() with a callback queued");
    cleanup_srcu_struct(&dynamic);
    CHECK(atomic_load(&freed) == 1);
    CHECK(init_srcu_struct(&dynamic) == 0);
    synchronize_srcu(&dynamic);
    cleanup_srcu_struct(&dynamic);
  }
  cleanup_srcu_struct(&sub.srcu);
  check_misuse();
  check_first_use_race();
  alarm(0);
  puts("c_api_test: all checks passed");
  return 0;
}
