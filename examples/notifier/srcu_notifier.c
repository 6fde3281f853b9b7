/*
 * srcu_notifier.c - SRCU notifier chains over srcu's C API.
 *
 * Ordering, end to end:
 *   register:   nb->next = *link;  rcu_assign_pointer(*link, nb)   (release)
 *   caller:     nb = srcu_dereference(*link)                       (acquire)
 * so a caller that finds nb also finds nb->next and whatever the registering
 * thread wrote into the block before registering it.
 *   unregister: rcu_assign_pointer(*link, nb->next); synchronize_srcu()
 *   caller:     srcu_read_lock() ... srcu_read_unlock()
 * synchronize_srcu() returns only after every reader that began before it
 * has unlocked, and a reader that begins later cannot find nb (the unlink is
 * ordered before the grace period starts). So once unregister returns, no
 * caller is inside nb->notifier_call and none will enter it.
 *
 * Lock order: nh->mutex only, never held while waiting for readers.
 */
#include "srcu_notifier.h"

#include <errno.h>
#include <stdbool.h>

/* Called with nh->mutex held, as is insertion_link(): the chain cannot change,
 * so plain loads suffice. */
static bool on_chain(const struct srcu_notifier_head *nh, const struct notifier_block *nb) {
  for (const struct notifier_block *p = nh->head; p != NULL; p = p->next) {
    if (p == nb) return true;
  }
  return false;
}

/* The link a block of this priority goes into: the one pointing at the first
 * block of lower priority, or the chain's end. Equal priorities are passed
 * over, so the new block follows them. */
static struct notifier_block **insertion_link(struct srcu_notifier_head *nh, int priority) {
  struct notifier_block **link = &nh->head;
  while (*link != NULL && (*link)->priority >= priority) link = &(*link)->next;
  return link;
}

int srcu_init_notifier_head(struct srcu_notifier_head *nh) {
  const int err = pthread_mutex_init(&nh->mutex, NULL);
  if (err != 0) return -err;
  /* The name srcu's messages give this chain's domain. */
  if (init_srcu_struct_named(&nh->srcu, "srcu_notifier_head") != 0) {
    pthread_mutex_destroy(&nh->mutex);
    return -ENOMEM;
  }
  nh->head = NULL;
  return 0;
}

void srcu_cleanup_notifier_head(struct srcu_notifier_head *nh) {
  cleanup_srcu_struct(&nh->srcu);
  pthread_mutex_destroy(&nh->mutex);
  nh->head = NULL;
}

int srcu_notifier_chain_register(struct srcu_notifier_head *nh, struct notifier_block *nb) {
  int ret = -EEXIST;
  pthread_mutex_lock(&nh->mutex);
  if (!on_chain(nh, nb)) {
    struct notifier_block **link = insertion_link(nh, nb->priority);
    nb->next = *link;
    /* Release: pairs with srcu_dereference() in srcu_notifier_call_chain().
     * Without it a caller could follow the new link and read nb->next (or
     * nb->notifier_call) before they were written. */
    rcu_assign_pointer(*link, nb);
    ret = 0;
  }
  pthread_mutex_unlock(&nh->mutex);
  return ret;
}

int srcu_notifier_chain_unregister(struct srcu_notifier_head *nh, struct notifier_block *nb) {
  int ret = -ENOENT;
  pthread_mutex_lock(&nh->mutex);
  for (struct notifier_block **link = &nh->head; *link != NULL; link = &(*link)->next) {
    if (*link == nb) {
      /* nb->next is already visible to every caller that can reach it (it
       * was published when nb or its successor was linked), so the release
       * is not strictly needed here; it keeps every store to a link the same. */
      rcu_assign_pointer(*link, nb->next);
      ret = 0;
      break;
    }
  }
  pthread_mutex_unlock(&nh->mutex);
  /* Outside the mutex: a callback may register blocks, and waiting here with
   * the mutex held would make it wait for us while we wait for it. Also when
   * nb was not found: a concurrent unregister of nb may have unlinked it and
   * still be waiting, and this caller may free nb when we return. */
  synchronize_srcu(&nh->srcu);
  return ret;
}

int srcu_notifier_call_chain(struct srcu_notifier_head *nh, unsigned long action, void *data) {
  int ret = NOTIFY_DONE;
  const int idx = srcu_read_lock(&nh->srcu);
  struct notifier_block *nb = srcu_dereference(nh->head, &nh->srcu);
  while (nb != NULL) {
    /* The successor is loaded before the call, in the kernel's order. After
     * the call would do as well: nb cannot be moved elsewhere on the chain
     * while this walk may still be at it, since unregistering nb waits for
     * this reader, and nb->next changes only when its successor is unlinked
     * (then either successor is a correct place to continue). */
    struct notifier_block *next = srcu_dereference(nb->next, &nh->srcu);
    ret = nb->notifier_call(nb, action, data);
    if (ret & NOTIFY_STOP_MASK) break;
    nb = next;
  }
  srcu_read_unlock(&nh->srcu, idx);
  return ret;
}
