/* kbfs_call.h - every server call of the mount that names a node or an
 * open file's handle runs through kbfs_call(): the recovery from a new
 * session (server restart, or ours expired during an outage) is here,
 * once, instead of at each call site.
 *
 * The rpc layer starts the new session by itself (rpc.h); node ids and
 * handles of the old one are then invalid and the server answers ESTALE
 * (nodes) or EBADF (handles). kbfs_call runs one attempt of the typed call
 * (src/client/rpc_api.h) with the server ids the FUSE inodes and files map
 * to now, and sends it again (KBFS_CALL_TRIES attempts at most, not
 * counting those during which another session began: the server may
 * restart again meanwhile; KBFS_CALL_MAX in all) when:
 *  - ESTALE for a call by node: the node is re-resolved by parent and
 *    name (kbfs_remap.c) and, when that found the same file, it is sent
 *    again with the new id;
 *  - ESTALE or EBADF for a call on a handle of an older session, or when
 *    another session began while it was in flight: the request did not
 *    run; the next attempt reopens the handle in the new session
 *    (kbfs_file_handle) and sends it again;
 *  - EIO when another session began while it was in flight (the rpc fails
 *    a request that is not safe to repeat so: its outcome is unknown) and
 *    the caller said sending it twice is harmless (redo_unknown: absolute
 *    values, e.g. a SETATTR without a size). Otherwise the EIO stands.
 * ESTALE and EBADF say the server did not run the request, so sending it
 * again is safe for every operation, CREATE and RENAME included.
 *
 * Asynchronous calls cannot wait for a re-resolution on the receiver
 * thread: the read path (kbfs_read.c) re-resolves from a thread of its own
 * (kbfs_remap_resolve), and the write path re-sends a WRITE answered for
 * an old handle from a thread of its own (kbfs_call_handle_old, then
 * kbfs_file_handle). Fire-and-forget calls (RELEASE, FORGET) and
 * speculative ones (readdir read-ahead) are not retried: their handles
 * die with the session, and a failed read-ahead is asked again by the
 * synchronous path.
 */
#ifndef KBFS_CALL_H
#define KBFS_CALL_H

#include <stdbool.h>
#include <stdint.h>

#include "kbfs.h"

#define KBFS_CALL_TRIES 4 /* attempts of one call that no new session cut short */
#define KBFS_CALL_MAX 32  /* attempts of one call in all (sessions it follows) */

struct kbfs_call;
/* One attempt: send the typed call with the server ids in c (node, node2,
 * fh, fh2); return its status. */
typedef int (*kbfs_call_fn)(struct kbfs *fs, const struct kbfs_call *c, void *arg);
/* A handle of the caller's own kind (a directory's): put it in c->fh, and
 * the session generation it is from in *sgen, reopening it first when it
 * is of an older session. 0 or the error that ends the call. */
typedef int (*kbfs_call_handle_fn)(struct kbfs *fs, struct kbfs_call *c, void *arg, uint64_t *sgen);

struct kbfs_call {
	/* What the call names (set by the caller; zero what is unused). */
	fuse_ino_t ino, ino2;       /* nodes by FUSE inode (0: none); with f /
				     * f2 set, their files' nodes */
	struct kbfs_file *f, *f2;   /* open files whose handles it uses */
	bool open_ro;               /* f without a handle gets one, opened
				     * read-only now (a copy's source) */
	kbfs_call_handle_fn handle; /* or a handle of the caller's (NULL) */
	bool redo_unknown;          /* EIO across a new session: send again */
	/* Filled for each attempt (server ids; 0: none). */
	uint64_t node, node2, fh, fh2;
};

/* Run fn until it succeeds or the recovery above gives up; its last
 * status. c->node etc. keep the ids of the last attempt. Makes synchronous
 * calls: not from an rpc callback. */
int kbfs_call(struct kbfs *fs, struct kbfs_call *c, kbfs_call_fn fn, void *arg);

/* Convenience: c for a call by one node. */
#define KBFS_CALL_NODE(i) ((struct kbfs_call){.ino = (i)})

/* A request on a file's handle from session sgen got ret: true when that
 * is because the handle is of an older session (get it again with
 * kbfs_file_handle and re-send). For asynchronous callers. */
bool kbfs_call_handle_old(struct kbfs *fs, int ret, uint64_t sgen);

#endif
