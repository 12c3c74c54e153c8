/* rpc_api.h - one typed call per operation the mount sends (rpc_api.c),
 * so that nothing above src/client builds a kb_Request: the fields each
 * operation puts on the wire are decided here, once (PROTOCOL.md).
 *
 * Every call returns as kb_rpc_call (rpc.h): 0, the server's -errno, or a
 * transport error. Outputs are written only on success (zeroed first where
 * noted). Names longer than the protocol carries fail with -ENAMETOOLONG
 * before anything is sent (KB_RPC_NAME_MAX, KB_RPC_PATH_MAX: callers that
 * must answer something else check first).
 *
 * `who`: the caller a request is made for (owners=preserve), or NULL. It
 * travels only with the operations the server performs as the caller
 * (kb_op_is(op, KB_OP_CREDS), src/core/op.c); the others ignore it.
 *
 * Recovery from a new session (ESTALE for an old node id, EBADF for an old
 * handle) is the caller's: fuse/kbfs_call.c. These calls send once.
 */
#ifndef KB_RPC_API_H
#define KB_RPC_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

#define KB_RPC_NAME_MAX 255  /* longest name (Request.name) */
#define KB_RPC_PATH_MAX 4096 /* longest symlink target, link name (Request.name2) */

/* Names: every call here creates one (kb_Entry of the new name; the
 * server counted one lookup for it). */
int kb_rpc_mkdir(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t mode,
		 const kb_Creds *who, kb_Entry *out);
/* MKDIR asking for a lease on the new directory (FEATURE_WRITE_BEHIND):
 * *leased says whether the server granted it (PROTOCOL.md). */
int kb_rpc_mkdir_lease(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t mode,
		       const kb_Creds *who, kb_Entry *out, bool *leased);
int kb_rpc_mknod(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
		 const kb_Creds *who, kb_Entry *out);
int kb_rpc_symlink(struct kb_rpc *r, uint64_t parent, const char *name, const char *target,
		   const kb_Creds *who, kb_Entry *out);
/* A new name newparent/newname for node. */
int kb_rpc_link(struct kb_rpc *r, uint64_t node, uint64_t newparent, const char *newname,
		const kb_Creds *who, kb_Entry *out);
/* CREATE with open flags (O_ACCMODE, O_APPEND, O_TRUNC, O_EXCL, ...): the
 * entry and an open handle *fh. */
int kb_rpc_create(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t flags,
		  uint32_t mode, const kb_Creds *who, kb_Entry *out, uint64_t *fh);
/* mknod(S_IFREG): the exclusive CREATE (O_WRONLY | O_EXCL) that carries
 * the mknod's mode and rdev; *fh is to be released. */
int kb_rpc_mknod_file(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t mode,
		      uint64_t rdev, const kb_Creds *who, kb_Entry *out, uint64_t *fh);

/* Names removed or moved. rename flags: RENAME_NOREPLACE / _EXCHANGE. */
int kb_rpc_unlink(struct kb_rpc *r, uint64_t parent, const char *name, const kb_Creds *who);
int kb_rpc_rmdir(struct kb_rpc *r, uint64_t parent, const char *name, const kb_Creds *who);
int kb_rpc_rename(struct kb_rpc *r, uint64_t parent, const char *name, uint64_t newparent,
		  const char *newname, uint32_t flags, const kb_Creds *who);

/* SETATTR of the kb_SetMask bits in set_mask to the values in `values`,
 * on handle fh (0: by node); *out: the attributes after it. set_mask 0
 * sends a GETATTR of the same node and handle instead (the current
 * attributes). */
int kb_rpc_setattr(struct kb_rpc *r, uint64_t node, uint64_t fh, uint32_t set_mask,
		   const kb_Attr *values, kb_Attr *out);

/* Extended attributes. get/list: size 0 asks for the size only (*value);
 * else up to size bytes into buf (*len), -ERANGE when the server's answer
 * does not fit. */
int kb_rpc_getxattr(struct kb_rpc *r, uint64_t node, const char *name, size_t size, void *buf,
		    size_t *len, uint64_t *value);
int kb_rpc_listxattr(struct kb_rpc *r, uint64_t node, size_t size, void *buf, size_t *len,
		     uint64_t *value);
int kb_rpc_setxattr(struct kb_rpc *r, uint64_t node, const char *name, const void *value,
		    size_t size, uint32_t flags, const kb_Creds *who);
int kb_rpc_removexattr(struct kb_rpc *r, uint64_t node, const char *name, const kb_Creds *who);

/* access(2) mask (R_OK, W_OK, X_OK) as the server's ids. */
int kb_rpc_access(struct kb_rpc *r, uint64_t node, uint32_t mask);

/* Durable: a directory's entries / a file's data (on handle fh). */
int kb_rpc_fsyncdir(struct kb_rpc *r, uint64_t node, bool datasync);
int kb_rpc_fsync(struct kb_rpc *r, uint64_t node, uint64_t fh, bool datasync);
int kb_rpc_flush(struct kb_rpc *r, uint64_t node, uint64_t fh);
/* syncfs(2) of the filesystem holding directory node (FEATURE_WRITE_BEHIND). */
int kb_rpc_syncfs(struct kb_rpc *r, uint64_t node);

/* Handle operations. fallocate: mode as fallocate(2). copy_range: len
 * bytes from (node, fh, off) to (node2, fh2, off2); *copied. lseek:
 * SEEK_DATA / SEEK_HOLE from off (fh 0: the server's read-only
 * descriptor); *pos. */
int kb_rpc_fallocate(struct kb_rpc *r, uint64_t node, uint64_t fh, uint32_t mode, uint64_t off,
		     uint64_t len, const kb_Creds *who);
int kb_rpc_copy_range(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t off, uint64_t node2,
		      uint64_t fh2, uint64_t off2, uint64_t len, uint32_t flags, uint64_t *copied);
int kb_rpc_lseek(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t off, uint32_t whence,
		 uint64_t *pos);

/* RELEASE / RELEASEDIR nobody waits for (async, status ignored). */
int kb_rpc_release_async(struct kb_rpc *r, uint64_t node, uint64_t fh, bool dir);

/* One WRITE: `data` must stay valid until cb runs (re-sent after a
 * reconnect). set_mask: kb_SetMask_SET_KILL_SUIDGID and/or SET_MTIME with
 * mtime (the kernel's, writeback cache). The reply's value is the count
 * written, its attr (when has_attr) the attributes after it. */
struct kb_rpc_write {
	uint64_t node, fh, off;
	const void *data;
	size_t len;
	uint32_t set_mask;
	int64_t mtime; /* with kb_SetMask_SET_MTIME */
	uint32_t mtime_ns;
	const kb_Creds *who;
	uint64_t sgen; /* kb_rpc_gen of the session fh belongs to */
};
int kb_rpc_write_async(struct kb_rpc *r, const struct kb_rpc_write *w, int conn_hint, kb_rpc_cb cb,
		       void *arg);

/* READDIR of up to count entries after cookie (0: from the start), on
 * handle fh (0: the server lists through a descriptor of its own,
 * FEATURE_READDIR_NOFH); plus: each entry looked up (counts a lookup). The
 * entries stay in the reply's frame (res->bulk, no copy): walk them with
 * kb_rpc_dirent_next. res->resp.cookie / eof / value: where to go on,
 * the end, how many. */
int kb_rpc_readdir(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t cookie, uint32_t count,
		   bool plus, struct kb_rpc_result *res);
/* The first batch (plus) asking for a lease on the directory
 * (FEATURE_WRITE_BEHIND): res->resp.dir_lease says if it was granted. */
int kb_rpc_readdir_lease(struct kb_rpc *r, uint64_t node, uint64_t fh, uint32_t count,
			 struct kb_rpc_result *res);
int kb_rpc_readdir_async(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t cookie,
			 uint32_t count, bool plus, kb_rpc_cb cb, void *arg);
/* The entry at *off of a READDIR reply's bulk into d, *off moved past it:
 * 1, 0 at the end, or -EIO for a malformed one. */
int kb_rpc_dirent_next(const uint8_t *bulk, size_t len, size_t *off, kb_Dirent *d);

/* The protocol's name of op ("LOOKUP"), "?" when unknown. */
const char *kb_rpc_op_name(uint32_t op);
/* What a frame holds beyond its bulk: a READ reply of n bytes fits in a
 * frame of n + kb_rpc_frame_headroom(). */
size_t kb_rpc_frame_headroom(void);

/* The name of the typed call that sends op (for tests), or NULL for an
 * operation no caller sends through this API (HELLO, ATTACH: the rpc's
 * own; NOTIFY: a push; LEASE_RETURN: only in the write-behind stream). */
const char *kb_rpc_api_call(uint32_t op);

#endif
