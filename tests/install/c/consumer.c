/* A C program using an installed srcu through the kernel names. */
#include <srcu/srcu_c.h>

#include <stdio.h>
#include <stdlib.h>

struct item {
  int value;
  struct rcu_head rcu;
};

DEFINE_STATIC_SRCU(items_srcu);
static struct item *current_item;
static int freed;

static void free_item(struct rcu_head *head) {
  free(container_of(head, struct item, rcu));
  ++freed;
}

int main(void) {
  struct item *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  int idx, seen;
  if (a == NULL || b == NULL) return 1;
  a->value = 1;
  b->value = 2;
  rcu_assign_pointer(current_item, a);

  idx = srcu_read_lock(&items_srcu);
  seen = srcu_dereference(current_item, &items_srcu)->value;
  srcu_read_unlock(&items_srcu, idx);

  rcu_assign_pointer(current_item, b);
  call_srcu(&items_srcu, &a->rcu, free_item);
  srcu_barrier(&items_srcu);
  synchronize_srcu(&items_srcu);
  free(b);
  if (seen != 1 || freed != 1) {
    fprintf(stderr, "c_consumer: seen %d, freed %d\n", seen, freed);
    return 1;
  }
  puts("c_consumer: ok");
  return 0;
}
