/*
 * srcu_notifier.h - SRCU notifier chains (the kernel's srcu_notifier_head) in C11.
 *
 * A notifier chain is a list of callbacks, sorted by priority, that an event
 * source calls one after another ("something happened: here is the action
 * and its data"). The SRCU flavour suits chains that are called often, from
 * many threads, by callers that may sleep inside a callback, and changed
 * rarely:
 *
 *  - calling the chain takes no lock: one srcu_read_lock()/srcu_read_unlock()
 *    pair around the walk, so callers never wait for each other or for a
 *    writer, and a callback may sleep, take locks, or call other chains;
 *  - registering takes a mutex (writers are serialised) and publishes the
 *    block with rcu_assign_pointer(): callers already walking see the chain
 *    either with or without it, never half-linked;
 *  - unregistering unlinks under the mutex and then waits for a grace period
 *    (synchronize_srcu()), so when it returns no caller is still inside the
 *    block's callback and the block may be freed or reused.
 *
 * Example:
 *
 *     static int on_link_change(struct notifier_block *nb, unsigned long action,
 *                               void *data) {
 *       struct link *l = data;
 *       if (action == LINK_DOWN) flush_routes(l);   // may sleep
 *       return NOTIFY_OK;
 *     }
 *     static struct notifier_block route_nb = { .notifier_call = on_link_change,
 *                                               .priority = 10 };
 *     static struct srcu_notifier_head link_chain;
 *
 *     if (srcu_init_notifier_head(&link_chain) != 0) abort();  // at start-up
 *     srcu_notifier_chain_register(&link_chain, &route_nb);
 *     ...
 *     srcu_notifier_call_chain(&link_chain, LINK_DOWN, link);   // any thread
 *     ...
 *     srcu_notifier_chain_unregister(&link_chain, &route_nb);   // waits for callers
 *
 * When not to use it: when unregistering must be cheap (each unregister costs
 * a grace period: tens of microseconds to milliseconds, longer while a caller
 * sleeps in a callback), or when calls come from signal handlers (the walk
 * uses srcu_read_lock(), whose first use on a thread allocates; a
 * signal-handler chain would use srcu_read_lock_nmisafe() and callbacks that
 * are themselves async-signal-safe).
 *
 * Limitations: the chain does not own its blocks (the caller allocates and
 * frees them, after unregistering); a block is on at most one chain at a
 * time; no callback may unregister a block of the chain it is called from
 * (see srcu_notifier_chain_unregister()).
 *
 * Overheads: a call costs one srcu_read_lock()/srcu_read_unlock() pair (a
 * few nanoseconds, no atomic read-modify-write; srcu_c.h and domain.h) plus
 * one indirect call per block; a registration, one mutex; an
 * unregistration, one mutex and one grace period.
 *
 * Differences from the kernel: there is no boot-time path without the mutex,
 * and registering a block that is already on the chain returns -EEXIST
 * without the kernel's warning splat.
 */
#ifndef SRCU_EXAMPLES_SRCU_NOTIFIER_H
#define SRCU_EXAMPLES_SRCU_NOTIFIER_H

#include <pthread.h>

#include <srcu/srcu_c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return values of a notifier_call, with the kernel's values. */
#define NOTIFY_DONE      0x0000  /* not interested in this event */
#define NOTIFY_OK        0x0001  /* handled it */
#define NOTIFY_STOP_MASK 0x8000  /* set: do not call the blocks after this one */
#define NOTIFY_BAD       (NOTIFY_STOP_MASK | 0x0002)  /* veto: the action should not happen */
#define NOTIFY_STOP      (NOTIFY_OK | NOTIFY_STOP_MASK)  /* handled it; nobody else should */

/**
 * struct notifier_block - one callback on a notifier chain
 * @notifier_call: called with this block, the chain's action and data;
 *                 returns a NOTIFY_* value.
 * @next: the chain's link; private to the chain while the block is on it.
 * @priority: higher priorities are called first.
 *
 * Set @notifier_call and @priority before registering; leave the block
 * alone (not freed, not changed) until unregistering it has returned.
 */
struct notifier_block {
  int (*notifier_call)(struct notifier_block *nb, unsigned long action, void *data);
  struct notifier_block *next;
  int priority;
};

/**
 * struct srcu_notifier_head - an SRCU notifier chain
 * @mutex: serialises writers (register, unregister). Callers never take it.
 * @srcu: the chain's SRCU domain: callers read inside it; unregister waits
 *        for it.
 * @head: the first block, or NULL. Written with rcu_assign_pointer() under
 *        @mutex, read with srcu_dereference() inside @srcu.
 *
 * Lock order: @mutex is a leaf. It is never held while waiting for @srcu's
 * readers and never taken by a caller of the chain, so a callback may
 * register blocks (on this chain or another) without deadlocking.
 */
struct srcu_notifier_head {
  pthread_mutex_t mutex;
  struct srcu_struct srcu;
  struct notifier_block *head;
};

/**
 * srcu_init_notifier_head - initialise an empty SRCU notifier chain
 * @nh: the chain; whatever its memory holds.
 *
 * Context: ordinary thread code. Allocates (the SRCU domain). Not
 * async-signal-safe. Must not race with any other use of @nh.
 *
 * Return: 0, or -ENOMEM when the SRCU domain cannot be allocated, or the
 * negated error of pthread_mutex_init() (it has none on Linux with default
 * attributes). On failure @nh is left unusable and need not be cleaned up.
 */
int srcu_init_notifier_head(struct srcu_notifier_head *nh);

/**
 * srcu_cleanup_notifier_head - destroy an SRCU notifier chain
 * @nh: a chain that srcu_init_notifier_head() initialised.
 *
 * Frees the chain's SRCU domain and mutex. Blocks still on the chain are
 * simply forgotten (the chain never owned them). Afterwards @nh may be
 * initialised again.
 *
 * Context: ordinary thread code; no thread may be calling, registering or
 * unregistering on @nh, nor do so later. A caller still inside the chain is
 * a bug that srcu reports (message naming "srcu_notifier_head", abort), as
 * is calling this from inside one of the chain's callbacks.
 */
void srcu_cleanup_notifier_head(struct srcu_notifier_head *nh);

/**
 * srcu_notifier_chain_register - add a block to an SRCU notifier chain
 * @nh: the chain.
 * @nb: the block, with notifier_call and priority set; not on any chain.
 *
 * Inserts @nb before the first block of lower priority: blocks are called in
 * descending priority, and among equal priorities in registration order
 * (@nb goes after those already there). Published with rcu_assign_pointer()
 * after @nb->next is set, so a caller walking the chain at the same time
 * sees it fully linked or not at all (it may or may not call @nb this time).
 *
 * Context: any thread, including from inside a callback of this or another
 * chain. Takes @nh->mutex (so not from a signal handler, and not while
 * holding it). Never waits for callers. Does not allocate.
 *
 * Return: 0, or -EEXIST when @nb is already on this chain (left as it was).
 */
int srcu_notifier_chain_register(struct srcu_notifier_head *nh, struct notifier_block *nb);

/**
 * srcu_notifier_chain_unregister - remove a block from an SRCU notifier chain
 * @nh: the chain.
 * @nb: the block to remove.
 *
 * Unlinks @nb under @nh->mutex, releases the mutex, then waits for a grace
 * period of @nh->srcu (synchronize_srcu()). When it returns, every caller
 * that could have found @nb has left the chain: none is still inside
 * @nb->notifier_call, and none will call it again (until @nb is registered
 * again). The caller may then free or reuse @nb. The wait happens also when
 * @nb was not found, so two threads unregistering the same block both
 * return only after the callers of it are gone.
 *
 * Context: ordinary thread code; sleeps (for as long as the slowest caller
 * already inside the chain takes, sleeping callbacks included).
 *
 * Deadlocks:
 *  - From inside a callback of the same chain (including @nb's own): the
 *    grace period would wait for the caller that is waiting. srcu detects
 *    this and aborts with "synchronize() called inside a read-side critical
 *    section of the same domain". Defer such removals to another thread.
 *  - While holding a lock that some callback of this chain takes: the
 *    callback waits for the lock, the unregister waits for the callback.
 *  - In a cycle across chains: a callback of chain A unregisters from chain
 *    B while a callback of B unregisters from A; each waits for the other's
 *    caller (as with any two RCU domains that wait for each other).
 * From a callback of a different chain, outside such a cycle, it is legal.
 *
 * Return: 0, or -ENOENT when @nb was not on the chain.
 */
int srcu_notifier_chain_unregister(struct srcu_notifier_head *nh, struct notifier_block *nb);

/**
 * srcu_notifier_call_chain - call every block on an SRCU notifier chain
 * @nh: the chain.
 * @action: passed to each callback unchanged.
 * @data: passed to each callback unchanged.
 *
 * Calls the blocks in priority order inside one read-side critical section
 * of @nh->srcu, stopping after the first that returns a value with
 * NOTIFY_STOP_MASK set (NOTIFY_STOP, NOTIFY_BAD). Blocks registered or
 * unregistered during the walk may or may not be called by it; every block
 * called is fully registered, and a block whose unregistration has returned
 * is never called.
 *
 * Context: any thread, any number at once; takes no lock and never waits for
 * writers. Callbacks may sleep, take locks, call chains (this one too), and
 * register blocks; they must not unregister from this chain (see
 * srcu_notifier_chain_unregister()). Not async-signal-safe: the first call on
 * a thread allocates the thread's SRCU reader slot.
 *
 * Return: the value the last callback called returned, or NOTIFY_DONE when
 * none was called.
 */
int srcu_notifier_call_chain(struct srcu_notifier_head *nh, unsigned long action, void *data);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* SRCU_EXAMPLES_SRCU_NOTIFIER_H */
