/* kbfs_siblings.h - small files in the order their directory listed them, so
 * that opening one prefetches the next ones (cp -r, tar, grep -r read a
 * directory's files one after the other, in that order).
 *
 * A readdirplus batch records each small regular file it hands to the
 * kernel (kbfs_siblings_add). When one of them is opened for reading,
 * kbfs_siblings_next gives the server ids of the files listed after it in the
 * same directory, and the opener pulls those not cached yet. Listing alone
 * (ls -l) pulls nothing. Entries are server node ids, resolved again
 * through the node table when used, so a forgotten node is simply skipped.
 *
 * A fixed ring of the last KBFS_SIBLINGS_LOG files listed, and a direct-mapped
 * index by server id (a collision forgets the older entry). Thread-safe.
 */
#ifndef KBFS_SIBLINGS_H
#define KBFS_SIBLINGS_H

#include <stdint.h>

#define KBFS_SIBLINGS_LOG 8192
#define KBFS_SIBLINGS_MAX (128u << 10) /* "small": at most this many bytes */
#define KBFS_SIBLINGS_AHEAD 32         /* files an open keeps on their way */

struct kbfs_siblings;

int kbfs_siblings_new(struct kbfs_siblings **out);
void kbfs_siblings_free(struct kbfs_siblings *s); /* NULL-safe */
/* dir listed the small regular file `node` (server ids), after the last. */
void kbfs_siblings_add(struct kbfs_siblings *s, uint64_t dir, uint64_t node);
/* Up to max server ids of files listed after `node` in its directory, in
 * listing order, into out; how many. */
unsigned kbfs_siblings_next(struct kbfs_siblings *s, uint64_t node, uint64_t *out, unsigned max);

#endif
