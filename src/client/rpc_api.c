/* rpc_api.c - the typed calls of rpc_api.h: each builds its kb_Request
 * (on the caller's stack: ~9 KB, fine on any thread we run on) and sends
 * it through rpc_send.h (the stream or the rpc, kb_rpc_set_route). What a reply
 * holds is copied out on the receiver thread (the take_* callbacks), but
 * for READDIR, whose entries stay in the frame. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "op.h"
#include "rpc_api.h"
#include "rpc_req.h"
#include "rpc_send.h"
#include "util.h"
#include "wire.h"

_Static_assert(KB_RPC_NAME_MAX + 1 == sizeof(((kb_Request *)0)->name), "Request.name");
_Static_assert(KB_RPC_PATH_MAX + 1 == sizeof(((kb_Request *)0)->name2), "Request.name2");

static void ignore_done(void *arg, int status, struct kb_rpc_result *res)
{
	(void)arg, (void)status, (void)res;
}

/* ---- names ---------------------------------------------------------------- */

struct entry_out {
	kb_Entry *e;
	uint64_t *fh;
};

static void take_entry(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	struct entry_out *o = arg;

	(void)b, (void)n;
	*o->e = resp->entry;
	if (o->fh)
		*o->fh = resp->fh;
}

/* Send req (its name already set) and take the entry (and handle). */
static int entry_call(struct kb_rpc *r, kb_Request *req, const kb_Creds *who, kb_Entry *out,
		      uint64_t *fh)
{
	struct entry_out o = {.e = out, .fh = fh};

	kb_req_put_creds(req, who);
	memset(out, 0, sizeof(*out));
	if (fh)
		*fh = 0;
	return kb_send_take(r, req, NULL, 0, take_entry, &o);
}

int kb_rpc_mkdir(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t mode,
		 const kb_Creds *who, kb_Entry *out)
{
	REQ(req, kb_Op_MKDIR);

	if (kb_req_mkdir(&req, parent, name, mode))
		return -ENAMETOOLONG;
	return entry_call(r, &req, who, out, NULL);
}

struct lease_out {
	kb_Entry *e;
	bool *leased;
};

static void take_lease(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	struct lease_out *o = arg;

	(void)b, (void)n;
	*o->e = resp->entry;
	*o->leased = resp->dir_lease;
}

int kb_rpc_mkdir_lease(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t mode,
		       const kb_Creds *who, kb_Entry *out, bool *leased)
{
	struct lease_out o = {.e = out, .leased = leased};
	REQ(req, kb_Op_MKDIR);

	if (kb_req_mkdir(&req, parent, name, mode))
		return -ENAMETOOLONG;
	req.want_lease = true;
	kb_req_put_creds(&req, who);
	memset(out, 0, sizeof(*out));
	*leased = false;
	return kb_send_take(r, &req, NULL, 0, take_lease, &o);
}

int kb_rpc_mknod(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
		 const kb_Creds *who, kb_Entry *out)
{
	REQ(req, kb_Op_MKNOD);

	if (PUT_NAME(&req, name, name))
		return -ENAMETOOLONG;
	req.node = parent;
	req.mode = mode;
	req.rdev = rdev;
	return entry_call(r, &req, who, out, NULL);
}

int kb_rpc_symlink(struct kb_rpc *r, uint64_t parent, const char *name, const char *target,
		   const kb_Creds *who, kb_Entry *out)
{
	REQ(req, kb_Op_SYMLINK);

	if (kb_req_symlink(&req, parent, name, target))
		return -ENAMETOOLONG;
	return entry_call(r, &req, who, out, NULL);
}

int kb_rpc_link(struct kb_rpc *r, uint64_t node, uint64_t newparent, const char *newname,
		const kb_Creds *who, kb_Entry *out)
{
	REQ(req, kb_Op_LINK);

	if (PUT_NAME(&req, name2, newname))
		return -ENAMETOOLONG;
	req.node = node;
	req.node2 = newparent;
	return entry_call(r, &req, who, out, NULL);
}

int kb_rpc_create(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t flags,
		  uint32_t mode, const kb_Creds *who, kb_Entry *out, uint64_t *fh)
{
	REQ(req, kb_Op_CREATE);

	if (kb_req_create(&req, parent, name, flags, mode))
		return -ENAMETOOLONG;
	return entry_call(r, &req, who, out, fh);
}

int kb_rpc_mknod_file(struct kb_rpc *r, uint64_t parent, const char *name, uint32_t mode,
		      uint64_t rdev, const kb_Creds *who, kb_Entry *out, uint64_t *fh)
{
	REQ(req, kb_Op_CREATE);

	if (PUT_NAME(&req, name, name))
		return -ENAMETOOLONG;
	req.node = parent;
	req.flags = O_WRONLY | O_EXCL;
	req.mode = mode;
	req.rdev = rdev;
	return entry_call(r, &req, who, out, fh);
}

static int status_call(struct kb_rpc *r, kb_Request *req, const kb_Creds *who, const void *bulk,
		       size_t len)
{
	kb_req_put_creds(req, who);
	return kb_send_take(r, req, bulk, len, NULL, NULL);
}

static int remove_name(struct kb_rpc *r, kb_Op op, uint64_t parent, const char *name,
		       const kb_Creds *who)
{
	REQ(req, op);

	if (kb_req_remove(&req, parent, name))
		return -ENAMETOOLONG;
	return status_call(r, &req, who, NULL, 0);
}

int kb_rpc_unlink(struct kb_rpc *r, uint64_t parent, const char *name, const kb_Creds *who)
{
	return remove_name(r, kb_Op_UNLINK, parent, name, who);
}

int kb_rpc_rmdir(struct kb_rpc *r, uint64_t parent, const char *name, const kb_Creds *who)
{
	return remove_name(r, kb_Op_RMDIR, parent, name, who);
}

int kb_rpc_rename(struct kb_rpc *r, uint64_t parent, const char *name, uint64_t newparent,
		  const char *newname, uint32_t flags, const kb_Creds *who)
{
	REQ(req, kb_Op_RENAME);

	if (kb_req_rename(&req, parent, name, newparent, newname, flags))
		return -ENAMETOOLONG;
	return status_call(r, &req, who, NULL, 0);
}

/* ---- attributes ------------------------------------------------------------ */

static void take_attr(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	(void)b, (void)n;
	*(kb_Attr *)arg = resp->attr;
}

int kb_rpc_setattr(struct kb_rpc *r, uint64_t node, uint64_t fh, uint32_t set_mask,
		   const kb_Attr *values, kb_Attr *out)
{
	REQ(req, set_mask ? kb_Op_SETATTR : kb_Op_GETATTR);

	kb_req_setattr(&req, node, fh, set_mask, values);
	memset(out, 0, sizeof(*out));
	return kb_send_take(r, &req, NULL, 0, take_attr, out);
}

/* ---- extended attributes --------------------------------------------------- */

struct xattr_out {
	void *buf;
	size_t cap, len;
	uint64_t value;
	bool too_big;
};

static void take_xattr(void *arg, const kb_Response *resp, const uint8_t *bulk, size_t n)
{
	struct xattr_out *x = arg;

	x->value = resp->value;
	x->too_big = n > x->cap;
	if (x->too_big)
		return;
	if (n)
		memcpy(x->buf, bulk, n);
	x->len = n;
}

static int xattr_read(struct kb_rpc *r, kb_Op op, uint64_t node, const char *name, size_t size,
		      void *buf, size_t *len, uint64_t *value)
{
	REQ(req, op);
	struct xattr_out x = {.buf = buf, .cap = size};
	int ret;

	if (name && PUT_NAME(&req, name, name))
		return -ENAMETOOLONG;
	req.node = node;
	req.length = size;
	ret = kb_send_take(r, &req, NULL, 0, take_xattr, &x);
	if (ret == 0 && x.too_big)
		ret = -ERANGE;
	if (ret == 0) {
		*len = x.len;
		*value = x.value;
	}
	return ret;
}

int kb_rpc_getxattr(struct kb_rpc *r, uint64_t node, const char *name, size_t size, void *buf,
		    size_t *len, uint64_t *value)
{
	return xattr_read(r, kb_Op_GETXATTR, node, name, size, buf, len, value);
}

int kb_rpc_listxattr(struct kb_rpc *r, uint64_t node, size_t size, void *buf, size_t *len,
		     uint64_t *value)
{
	return xattr_read(r, kb_Op_LISTXATTR, node, NULL, size, buf, len, value);
}

int kb_rpc_setxattr(struct kb_rpc *r, uint64_t node, const char *name, const void *value,
		    size_t size, uint32_t flags, const kb_Creds *who)
{
	REQ(req, kb_Op_SETXATTR);

	if (PUT_NAME(&req, name, name))
		return -ENAMETOOLONG;
	req.node = node;
	req.flags = flags;
	return status_call(r, &req, who, value, size);
}

int kb_rpc_removexattr(struct kb_rpc *r, uint64_t node, const char *name, const kb_Creds *who)
{
	REQ(req, kb_Op_REMOVEXATTR);

	if (PUT_NAME(&req, name, name))
		return -ENAMETOOLONG;
	req.node = node;
	return status_call(r, &req, who, NULL, 0);
}

/* ---- checks and durability ------------------------------------------------- */

int kb_rpc_access(struct kb_rpc *r, uint64_t node, uint32_t mask)
{
	REQ(req, kb_Op_ACCESS);

	req.node = node;
	req.mode = mask;
	return kb_send_take(r, &req, NULL, 0, NULL, NULL);
}

int kb_rpc_fsyncdir(struct kb_rpc *r, uint64_t node, bool datasync)
{
	REQ(req, kb_Op_FSYNCDIR);

	req.node = node;
	req.flags = datasync ? 1 : 0;
	return kb_send_take(r, &req, NULL, 0, NULL, NULL);
}

int kb_rpc_fsync(struct kb_rpc *r, uint64_t node, uint64_t fh, bool datasync)
{
	REQ(req, kb_Op_FSYNC);

	req.node = node;
	req.fh = fh;
	req.flags = datasync ? 1 : 0;
	return kb_send_take(r, &req, NULL, 0, NULL, NULL);
}

int kb_rpc_syncfs(struct kb_rpc *r, uint64_t node)
{
	REQ(req, kb_Op_SYNCFS);

	req.node = node;
	return kb_send_take(r, &req, NULL, 0, NULL, NULL);
}

int kb_rpc_flush(struct kb_rpc *r, uint64_t node, uint64_t fh)
{
	REQ(req, kb_Op_FLUSH);

	req.node = node;
	req.fh = fh;
	return kb_send_take(r, &req, NULL, 0, NULL, NULL);
}

/* ---- handles --------------------------------------------------------------- */

static void take_value(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	(void)b, (void)n;
	*(uint64_t *)arg = resp->value;
}

int kb_rpc_fallocate(struct kb_rpc *r, uint64_t node, uint64_t fh, uint32_t mode, uint64_t off,
		     uint64_t len, const kb_Creds *who)
{
	REQ(req, kb_Op_FALLOCATE);

	req.node = node;
	req.fh = fh;
	req.flags = mode;
	req.offset = off;
	req.length = len;
	return status_call(r, &req, who, NULL, 0);
}

int kb_rpc_copy_range(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t off, uint64_t node2,
		      uint64_t fh2, uint64_t off2, uint64_t len, uint32_t flags, uint64_t *copied)
{
	REQ(req, kb_Op_COPY_FILE_RANGE);

	req.node = node;
	req.fh = fh;
	req.offset = off;
	req.node2 = node2;
	req.fh2 = fh2;
	req.offset2 = off2;
	req.length = len;
	req.flags = flags;
	*copied = 0;
	return kb_send_take(r, &req, NULL, 0, take_value, copied);
}

int kb_rpc_lseek(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t off, uint32_t whence,
		 uint64_t *pos)
{
	REQ(req, kb_Op_LSEEK);

	req.node = node;
	req.fh = fh;
	req.offset = off;
	req.flags = whence;
	*pos = 0;
	return kb_send_take(r, &req, NULL, 0, take_value, pos);
}

int kb_rpc_release_async(struct kb_rpc *r, uint64_t node, uint64_t fh, bool dir)
{
	REQ(req, dir ? kb_Op_RELEASEDIR : kb_Op_RELEASE);

	req.node = node;
	req.fh = fh;
	return kb_send_async(r, &req, NULL, 0, -1, ignore_done, NULL);
}

int kb_rpc_write_async(struct kb_rpc *r, const struct kb_rpc_write *w, int conn_hint, kb_rpc_cb cb,
		       void *arg)
{
	REQ(req, kb_Op_WRITE);

	kb_req_put_creds(&req, w->who);
	req.set_mask = w->set_mask;
	if (w->set_mask & kb_SetMask_SET_MTIME) {
		req.has_attr = true;
		req.attr.mtime = w->mtime;
		req.attr.mtime_ns = w->mtime_ns;
	}
	req.node = w->node;
	req.fh = w->fh;
	req.offset = w->off;
	return kb_send_async_basis(r, w->sgen, &req, w->data, w->len, conn_hint, cb, arg);
}

/* ---- listings -------------------------------------------------------------- */

static void readdir_req(kb_Request *req, uint64_t node, uint64_t fh, uint64_t cookie,
			uint32_t count, bool plus)
{
	req->node = node;
	req->fh = fh;
	req->cookie = cookie;
	req->count = count;
	req->plus = plus;
}

int kb_rpc_readdir(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t cookie, uint32_t count,
		   bool plus, struct kb_rpc_result *res)
{
	REQ(req, kb_Op_READDIR);

	readdir_req(&req, node, fh, cookie, count, plus);
	return kb_send_res(r, &req, NULL, 0, res);
}

int kb_rpc_readdir_lease(struct kb_rpc *r, uint64_t node, uint64_t fh, uint32_t count,
			 struct kb_rpc_result *res)
{
	REQ(req, kb_Op_READDIR);

	readdir_req(&req, node, fh, 0, count, true);
	req.want_lease = true;
	return kb_send_res(r, &req, NULL, 0, res);
}

int kb_rpc_readdir_async(struct kb_rpc *r, uint64_t node, uint64_t fh, uint64_t cookie,
			 uint32_t count, bool plus, kb_rpc_cb cb, void *arg)
{
	REQ(req, kb_Op_READDIR);

	readdir_req(&req, node, fh, cookie, count, plus);
	return kb_send_async(r, &req, NULL, 0, -1, cb, arg);
}

int kb_rpc_dirent_next(const uint8_t *bulk, size_t len, size_t *off, kb_Dirent *d)
{
	return kb_wire_dirent_next(bulk, len, off, d);
}

/* ---- names of things --------------------------------------------------------- */

const char *kb_rpc_op_name(uint32_t op)
{
	return kb_wire_op_name((kb_Op)op);
}

size_t kb_rpc_frame_headroom(void)
{
	return KB_WIRE_HEADROOM;
}

const char *kb_rpc_api_call(uint32_t op)
{
	/* No default: a new kb_Op is a -Wswitch error until it is placed. */
	switch ((kb_Op)op) {
	case kb_Op_OP_NONE: return NULL;
	case kb_Op_HELLO: return NULL; /* the rpc's own (rpc_conn.c) */
	case kb_Op_ATTACH: return NULL;
	case kb_Op_NOTIFY: return NULL; /* a push */
	case kb_Op_LOOKUP: return "kb_rpc_lookup";
	case kb_Op_FORGET: return "kb_rpc_forget";
	case kb_Op_GETATTR: return "kb_rpc_getattr";
	case kb_Op_SETATTR: return "kb_rpc_setattr";
	case kb_Op_OPENDIR: return "kb_rpc_opendir";
	case kb_Op_READDIR: return "kb_rpc_readdir";
	case kb_Op_RELEASEDIR: return "kb_rpc_release_async";
	case kb_Op_OPEN: return "kb_rpc_open_mask";
	case kb_Op_CREATE: return "kb_rpc_create";
	case kb_Op_READ: return "kb_rpc_read_async";
	case kb_Op_WRITE: return "kb_rpc_write_async";
	case kb_Op_FLUSH: return "kb_rpc_flush";
	case kb_Op_FSYNC: return "kb_rpc_fsync";
	case kb_Op_RELEASE: return "kb_rpc_release_async";
	case kb_Op_MKDIR: return "kb_rpc_mkdir";
	case kb_Op_MKNOD: return "kb_rpc_mknod";
	case kb_Op_UNLINK: return "kb_rpc_unlink";
	case kb_Op_RMDIR: return "kb_rpc_rmdir";
	case kb_Op_RENAME: return "kb_rpc_rename";
	case kb_Op_LINK: return "kb_rpc_link";
	case kb_Op_SYMLINK: return "kb_rpc_symlink";
	case kb_Op_READLINK: return "kb_rpc_readlink";
	case kb_Op_STATFS: return "kb_rpc_statfs";
	case kb_Op_GETXATTR: return "kb_rpc_getxattr";
	case kb_Op_SETXATTR: return "kb_rpc_setxattr";
	case kb_Op_LISTXATTR: return "kb_rpc_listxattr";
	case kb_Op_REMOVEXATTR: return "kb_rpc_removexattr";
	case kb_Op_FALLOCATE: return "kb_rpc_fallocate";
	case kb_Op_COPY_FILE_RANGE: return "kb_rpc_copy_range";
	case kb_Op_LSEEK: return "kb_rpc_lseek";
	case kb_Op_PING: return "kb_rpc_ping";
	case kb_Op_FSYNCDIR: return "kb_rpc_fsyncdir";
	case kb_Op_ACCESS: return "kb_rpc_access";
	case kb_Op_BYE: return "kb_rpc_bye";
	case kb_Op_SYNCFS: return "kb_rpc_syncfs";
	case kb_Op_COMPOUND:
		return "kb_stream_submit"; /* stream.c packs them */
	/* Only in the write-behind stream (rpc_wb.h), after what the holder
	 * queued. */
	case kb_Op_LEASE_RETURN: return "kb_wb_lease_return";
	}
	return NULL;
}
