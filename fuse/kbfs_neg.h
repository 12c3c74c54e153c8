/* kbfs_neg.h - names the server said are missing, remembered for
 * negative_timeout.
 *
 * The kernel revalidates even a fresh negative dentry before an exclusive
 * create (O_CREAT|O_EXCL) and before using it as a rename target, so every
 * file `git checkout` or `rsync` creates cost two LOOKUP round trips. We
 * answer such a repeat from here. This claims no more than the kernel's own
 * negative dentry does: a push from the server naming the entry drops it,
 * and the server decides every create and rename atomically (O_EXCL still
 * fails with EEXIST if the name appeared meanwhile).
 *
 * A fixed, direct-mapped table (a collision just forgets the older name);
 * entries also carry the rpc session generation and are ignored after a
 * new session. Thread-safe; never blocks beyond its own mutex.
 */
#ifndef KBFS_NEG_H
#define KBFS_NEG_H

#include <stdbool.h>
#include <stdint.h>

struct kbfs_neg;

int kbfs_neg_new(struct kbfs_neg **out);
void kbfs_neg_free(struct kbfs_neg *ng); /* NULL-safe */
/* Keyed by the parent's server node id (never reused within a session,
 * unlike a FUSE ino, which is an address). */
/* parent/name is missing until expiry_ns, in session gen. */
void kbfs_neg_add(struct kbfs_neg *ng, uint64_t parent, const char *name, uint64_t gen,
		  uint64_t expiry_ns);
/* Still known missing at now_ns in session gen: the time left (ns), or 0. */
uint64_t kbfs_neg_left(struct kbfs_neg *ng, uint64_t parent, const char *name, uint64_t gen,
		       uint64_t now_ns);
/* The name may exist now (a push, or our own create/link/rename). */
void kbfs_neg_drop(struct kbfs_neg *ng, uint64_t parent, const char *name);

#endif
