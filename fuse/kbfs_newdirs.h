/* kbfs_newdirs.h - directories this client created, and the names it has
 * put in them since: any other name there is missing, without asking.
 *
 * `git clone`, `rsync -a`, `tar x` and `cp -r` into the mount make a
 * directory, then create file after file in it. Before each create the
 * kernel LOOKUPs the new name (it has no dentry for it yet), and the
 * server can only say ENOENT: one round trip per file for an answer we
 * already know. MKDIR returned an empty directory; every name this client
 * creates, links or renames into it afterwards is recorded (a Bloom
 * filter: a false "maybe there" just asks the server). A LOOKUP of any
 * other name is answered "missing" from here, as a negative dentry would
 * be. Names are compared without ASCII case, and only ASCII names are
 * answered (making a non-ASCII one forgets the directory), so that a
 * share on a case-insensitive filesystem is never told "missing" for a
 * name it would find.
 *
 * What this claims, and its bound: a name another client (or a process on
 * the server) creates in such a directory is seen once the server's push
 * about it arrives (~50 ms, it drops the directory from here), and at the
 * latest negative_timeout after this client's last create there, never
 * later than KBFS_NEWDIRS_MAX_NS after the mkdir. The server still decides
 * every create: O_EXCL fails with EEXIST if the name did appear meanwhile.
 * A new session (reconnect to a restarted server) forgets everything.
 *
 * A fixed, direct-mapped table of KBFS_NEWDIRS_DIRS directories keyed by
 * the server's node id (a collision forgets the older one; forgetting is
 * always safe). Thread-safe; never blocks beyond its own mutex.
 */
#ifndef KBFS_NEWDIRS_H
#define KBFS_NEWDIRS_H

#include <stdint.h>

#define KBFS_NEWDIRS_DIRS 256
#define KBFS_NEWDIRS_NAMES 8192            /* beyond this many names: forgotten */
#define KBFS_NEWDIRS_MAX_NS 10000000000ull /* 10 s after the mkdir at most */

struct kbfs_newdirs;

int kbfs_newdirs_new(struct kbfs_newdirs **out);
void kbfs_newdirs_free(struct kbfs_newdirs *fr); /* NULL-safe */
/* We just made dir (server id), in session gen: it is empty, for ttl_ns. */
void kbfs_newdirs_born(struct kbfs_newdirs *fr, uint64_t dir, uint64_t gen, uint64_t now_ns,
		       uint64_t ttl_ns);
/* We are about to put `name` in (or take it out of) dir: it may exist from
 * now on. Renews a new dir for ttl_ns, within KBFS_NEWDIRS_MAX_NS. */
void kbfs_newdirs_add(struct kbfs_newdirs *fr, uint64_t dir, const char *name, uint64_t now_ns,
		      uint64_t ttl_ns);
/* How long (ns) `name` is still known to be missing from dir, or 0. */
uint64_t kbfs_newdirs_missing(struct kbfs_newdirs *fr, uint64_t dir, const char *name, uint64_t gen,
			      uint64_t now_ns);
/* Someone else changed dir (a push): forget it. */
void kbfs_newdirs_drop(struct kbfs_newdirs *fr, uint64_t dir);

#endif
