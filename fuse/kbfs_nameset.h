/* kbfs_nameset.h - a table of (server node id, name) -> (session, expiry).
 *
 * Two of them serve the mount:
 * - missing (kbfs_ops.c): names the server said are missing, for
 *   negative_timeout. The kernel revalidates even a fresh negative dentry
 *   before an exclusive create (O_CREAT|O_EXCL) and before using it as a
 *   rename target, so every file `git checkout` or `rsync` creates cost two
 *   LOOKUP round trips; we answer the repeat from here. This claims no more
 *   than the kernel's own negative dentry does: a push from the server
 *   naming the entry drops it, and the server decides every create and
 *   rename atomically (O_EXCL still fails with EEXIST if the name appeared
 *   meanwhile).
 * - quiet (kbfs_notify.c): what this client changed in the last moments,
 *   so that the server's pushes about our own changes do not throw away
 *   the kernel's fresh caches (name "" = the node itself).
 *
 * Keyed by the server's node id, never reused within a session (unlike a
 * FUSE ino, which is an address). A fixed, 4-way set-associative table: a
 * full set forgets the entry that expires first (direct-mapped, 1 in 5 of
 * rsync's own pushes found its mark overwritten). Thread-safe; never
 * blocks beyond its own mutex.
 */
#ifndef KBFS_NAMESET_H
#define KBFS_NAMESET_H

#include <stdbool.h>
#include <stdint.h>

struct kbfs_nameset;

int kbfs_nameset_new(struct kbfs_nameset **out);
void kbfs_nameset_free(struct kbfs_nameset *ng); /* NULL-safe */
/* Remember node/name (name "" for the node itself) until expiry_ns, in
 * session gen; replaces what was there. */
void kbfs_nameset_add(struct kbfs_nameset *ng, uint64_t node, const char *name, uint64_t gen,
		      uint64_t expiry_ns);
/* Still remembered at now_ns in session gen: the time left (ns), or 0. */
uint64_t kbfs_nameset_left(struct kbfs_nameset *ng, uint64_t node, const char *name, uint64_t gen,
			   uint64_t now_ns);
/* Forget node/name. */
void kbfs_nameset_drop(struct kbfs_nameset *ng, uint64_t node, const char *name);

#endif
