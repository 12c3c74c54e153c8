/* kbfs_wb.h - write-behind: the changes this mount answers itself
 * (PROTOCOL.md, "Write-behind"; keibifs(1), WRITE-BEHIND).
 *
 * In a directory the server leased to us (one we made: MKDIR asks for
 * the lease) nobody else uses the names, so whether a name exists is
 * known here exactly: creates, mkdirs, removals and renames there, and
 * attribute changes and small writes of what we made, are answered at
 * once and queued in order in the session's stream (src/client/stream.h),
 * pipelined; the server runs them in that order about one round trip
 * later. Every other request naming a node the stream touched goes
 * through the stream too (the rpc's route), so nothing overtakes them.
 *
 * Errors are never lost: each queued change's error sticks to its node
 * (and its directory): fsync and close of that file return it, and
 * `keibifs --sync` (the keibifs.sync attribute of the mount root) drains
 * the stream and returns the first error since the last drain. A recall
 * (another session wants the directory) ends the local answers there and
 * gives the lease back behind what was queued.
 *
 * Off with -o sync_meta, on a read-only mount, or when the server does
 * not offer FEATURE_WRITE_BEHIND or a lease.
 */
#ifndef KBFS_WB_H
#define KBFS_WB_H

#include <stdbool.h>
#include <stdint.h>

#include "kbfs.h"

/* Queue bounds (backpressure past them). */
#define KBFS_WB_MAX_OPS 1024
#define KBFS_WB_MAX_BYTES (32u << 20)
/* Names one leased directory keeps; past it, the directory is asked. */
#define KBFS_WB_DIR_NAMES 65536
#define KBFS_WB_SYNC_XATTR "keibifs.sync"
/* getxattr of it on the root only waits for the queue (no error taken, no
 * syncfs): for scripts that look at the share right after. */
#define KBFS_WB_DRAIN_XATTR "keibifs.drain"

/* After connecting (rpc and node table made): start the stream when it
 * may be used; 0 or -ENOMEM. */
int kbfs_wb_start(struct kbfs *fs);
/* Unmount: drain (at most the timeout; what failed is logged). */
void kbfs_wb_stop(struct kbfs *fs);
/* After the rpc is freed (its callbacks ran): free the stream and state. */
void kbfs_wb_free(struct kbfs *fs);
static inline bool kbfs_wb_on(const struct kbfs *fs)
{
	return fs->stream != NULL;
}
/* A new session (its callback: no calls): every lease is gone. */
void kbfs_wb_session(struct kbfs *fs);
/* NOTIFY_RECALL of directory `remote` (a thread that may block). */
void kbfs_wb_recall(struct kbfs *fs, uint64_t remote);
/* Someone else changed directory `remote` (a push naming an entry). */
void kbfs_wb_foreign(struct kbfs *fs, uint64_t remote);

/* A change to ino (and ino2, 0: none) when a queued change of its own
 * failed (kbfs_node_wb_fail): refused with that error (replied; true)
 * until the node is looked up again. */
bool kbfs_wb_refuse(fuse_req_t req, fuse_ino_t ino, fuse_ino_t ino2);

/* A change of names in dir goes to the server after all (a case decided
 * there): our list of its names would not follow, so our answers there
 * end (and the lease goes back). Before sending it. */
void kbfs_wb_fallback(struct kbfs *fs, fuse_ino_t dir);

/* Each answers req and returns true when the mount decides it here. */
bool kbfs_wb_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
bool kbfs_wb_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
bool kbfs_wb_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
bool kbfs_wb_remove(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir);
bool kbfs_wb_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		    const char *newname, unsigned flags);
/* A READDIR asking for the lease on dir (server id remote) was answered:
 * granted: the server said so; whole: the reply when it was all of the
 * directory and succeeded (else NULL); kids_before: kbfs_node_kids_gen
 * read before asking. Its names are kept and the lease used, or it goes
 * back. */
struct kb_rpc_result;
void kbfs_wb_listed(struct kbfs *fs, fuse_ino_t dir, uint64_t remote, bool granted,
		    const struct kb_rpc_result *whole, uint64_t kids_before);
/* A synchronous MKDIR was granted the lease on its new, empty directory. */
void kbfs_wb_dir_leased(struct kbfs *fs, fuse_ino_t dir);

/* CREATE decided here: 1 with the new file's entry in *e (its node id is
 * its handle's too); 0: ask the server; <0: the answer (EEXIST). */
int kbfs_wb_create(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t flags, mode_t mode,
		   kb_Entry *e);
/* ...then, once e is entered as ino: keep the name and queue the CREATE.
 * 0; -EAGAIN: decided otherwise meanwhile (ask the server); other errors:
 * nothing was queued. */
int kbfs_wb_created(struct kbfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
		    uint32_t flags, mode_t mode, const kb_Entry *e, fuse_ino_t ino);

/* SETATTR of a node whose attributes are ours (it is in the stream):
 * true when answered (the new attributes in *out, the change queued on
 * handle fh, 0: by node). */
bool kbfs_wb_setattr(struct kbfs *fs, fuse_ino_t ino, uint64_t fh, uint32_t set_mask,
		     const kb_Attr *values, kb_Attr *out);

/* May a WRITE of len bytes of a file in the stream be answered before the
 * server did? Not when the share's free space comes near what is queued:
 * then ENOSPC reaches write(2) itself. */
bool kbfs_wb_early(struct kbfs *fs, size_t len);
/* An early-answered write failed on the server: logged (the file's
 * fsync and close return it). */
void kbfs_wb_write_failed(struct kbfs *fs, fuse_ino_t ino, int status);
/* An early-answered write reached `end`: the size we show follows. */
void kbfs_wb_wrote(struct kbfs *fs, fuse_ino_t ino, uint64_t end);
/* fsync: wait until everything queued so far is answered (timeout); then
 * ino's error, if a queued change for it failed. */
int kbfs_wb_wait(struct kbfs *fs, fuse_ino_t ino);
/* getxattr keibifs.sync (or .drain) on the root, asked with size: true
 * when it was that (answered: an empty value). */
bool kbfs_wb_sync_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
/* One status line ("write-behind: ..."). */
void kbfs_wb_status(struct kbfs *fs, char *buf, size_t cap);

#endif
