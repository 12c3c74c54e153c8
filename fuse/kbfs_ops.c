/* kbfs_ops.c - FUSE operations on names and attributes: lookup, forget,
 * getattr, open, readlink, statfs, the xattr readers, access. Reads are in
 * kbfs_read.c, listings in kbfs_dir.c, changes in kbfs_write.c and
 * kbfs_meta.c; the table of all of them in kbfs_table.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_call.h"
#include "kbfs_nameset.h"
#include "kbfs_node.h"
#include "kbfs_wb.h"
#include "kbfs_newdirs.h"
#include "kbfs_list.h"
#include "kbfs_siblings.h"
#include "rpc_api.h"
#include "util.h"

/* A missing name: cached by the kernel (and by us) for `secs`. */
static void reply_missing(fuse_req_t req, double secs)
{
	struct fuse_entry_param neg = {.entry_timeout = secs};

	if (secs > 0)
		fuse_reply_entry(req, &neg);
	else
		fuse_reply_err(req, ENOENT);
}

void kbfs_forget_node(struct kbfs *fs, fuse_ino_t ino, uint64_t n)
{
	uint64_t remote, count;
	/* named by queued requests: forgotten behind them */
	bool behind = fs->stream && kbfs_node_wb(fs->nodes, ino);

	kbfs_node_forget(fs->nodes, ino, n, &remote, &count);
	if (!count)
		return;
	/* the server stops watching it: a listing of it is not backed */
	kbfs_list_drop(fs->list, remote);
	if (behind)
		kb_rpc_forget_behind(fs->rpc, remote, count);
	else
		kb_rpc_forget(fs->rpc, remote, count);
}

/* A LOOKUP answered from the directory's listing: true when replied. */
static bool lookup_listed(fuse_req_t req, fuse_ino_t parent, uint64_t dir, const char *name)
{
	struct kbfs *fs = FS(req);
	struct fuse_entry_param ep = {0};
	bool held = false, leased = false;
	uint64_t gen = kbfs_nodes_gen(fs->nodes);
	kb_Entry e;
	kb_Attr a;

	switch (kbfs_listed(fs, parent, dir, name, true, &e, &held, &leased)) {
	case KBFS_LIST_MISSING: /* negative_timeout=0: missing names are asked */
		if (fs->o->negative_timeout <= 0)
			return false;
		reply_missing(req, fs->o->negative_timeout);
		return true;
	case KBFS_LIST_FOUND: break;
	default: return false;
	}
	if (!leased)
		gen = UINT64_MAX;
	if (!kbfs_node_by_remote(fs->nodes, e.node, NULL)) {
		if (!held)
			return false; /* handed over and forgotten since: ask */
		kbfs_reply_entry_gen(req, parent, name, &e, gen);
		return true;
	}
	/* a node we have (the kernel knows it): its attributes, unless stale */
	ep.ino = kbfs_node_enter_listed(fs->nodes, parent, name, &e, held, NS(fs->o->attr_timeout),
					gen, &a);
	if (!ep.ino) {
		if (held)
			kb_rpc_forget(fs->rpc, e.node, 1);
		return false;
	}
	ep.generation = e.generation;
	ep.attr_timeout = fs->o->attr_timeout;
	ep.entry_timeout = fs->o->entry_timeout;
	kbfs_attr_to_stat(fs, &a, &ep.attr);
	if (fuse_reply_entry(req, &ep) != 0)
		kbfs_forget_node(fs, ep.ino, 1);
	return true;
}

struct lookup_arg {
	const char *name;
	kb_Entry e;
};

static int lookup_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct lookup_arg *a = arg;

	return kb_rpc_lookup(fs->rpc, c->node, a->name, &a->e);
}

void kbfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = KBFS_CALL_NODE(parent);
	struct lookup_arg a = {.name = name};
	const kb_Entry *e = &a.e;
	uint64_t remote = kbfs_node_remote(fs->nodes, parent);
	uint64_t gen = kb_rpc_session(fs->rpc, NULL), now = kb_now_ns();
	uint64_t left = kbfs_nameset_left(fs->missing, remote, name, gen, now), agen;
	int ret;

	if (kbfs_wb_lookup(req, parent, name)) /* a directory leased to us */
		return;
	if (!left) /* a directory we made, and a name we never put there */
		left = kbfs_newdirs_missing(fs->newdirs, remote, name, gen, now);
	if (left) { /* the kernel re-asks before O_EXCL creates and renames */
		reply_missing(req, (double)left / 1e9);
		return;
	}
	if (lookup_listed(req, parent, remote, name))
		return;
	agen = kbfs_nodes_gen(fs->nodes); /* before asking: kbfs_node.h */
	ret = kbfs_call(fs, &c, lookup_send, &a);
	remote = c.node; /* as re-resolved */
	kbfs_raise_readahead_once(fs);
	if (ret == -ENOENT || (!ret && !e->node)) {
		if (fs->o->negative_timeout > 0)
			kbfs_nameset_add(fs->missing, remote, name, gen,
					 now + (uint64_t)(fs->o->negative_timeout * 1e9));
		reply_missing(req, fs->o->negative_timeout);
		return;
	}
	if (ret < 0)
		kbfs_reply_err(req, ret);
	else
		kbfs_reply_entry_gen(req, parent, name, e, agen);
}

void kbfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	kbfs_forget_node(FS(req), ino, nlookup);
	fuse_reply_none(req);
}

void kbfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		kbfs_forget_node(FS(req), f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

void kbfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct stat st;
	uint64_t version;
	kb_Attr a;
	int ret = 0;

	/* The kernel asks again after every change it made (a write, a
	 * close): answered from a reply nothing has overtaken since, or from
	 * what we keep ourselves (write-behind). */
	if (!kbfs_node_wb_attr(fs->nodes, ino, &a) && !kbfs_node_attr_current(fs->nodes, ino, &a) &&
	    !kbfs_attr_listed(fs, ino, &a, &version))
		ret = kbfs_fetch_attr(fs, ino, &a, &version);
	kbfs_raise_readahead_once(fs);
	(void)fi;
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	kbfs_attr_to_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->o->attr_timeout);
}

/* The small files listed after this one in its directory (kbfs_siblings.c):
 * pull those not cached yet, so that cp -r, tar or grep -r, opening them
 * one after the other, find each already here. */
static void prefetch_siblings(struct kbfs *fs, uint64_t remote)
{
	uint64_t next[KBFS_SIBLINGS_AHEAD];
	unsigned n = kbfs_siblings_next(fs->siblings, remote, next, KBFS_SIBLINGS_AHEAD);

	for (unsigned i = 0; i < n; i++) {
		kb_Attr a;
		uint64_t ino = kbfs_node_by_remote(fs->nodes, next[i], &a);

		if (ino && S_ISREG(a.mode) && a.size && a.size <= KBFS_SIBLINGS_MAX)
			kbfs_prefetch(fs, ino, next[i], kbfs_attr_version(&a), 0, 1);
	}
}

/* May the caller read a file with these attributes? Mode bits against the
 * mapped owner (idmap=user). The server still refuses at READ whatever its
 * own user cannot read. */
static bool may_read(const struct kbfs *fs, fuse_req_t req, const kb_Attr *a)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat st;

	kbfs_attr_to_stat(fs, a, &st);
	if (ctx->uid == 0 || fs->o->owners) /* owners: default_permissions did */
		return true;
	if (st.st_uid == ctx->uid)
		return st.st_mode & S_IRUSR;
	if (st.st_gid == ctx->gid)
		return st.st_mode & S_IRGRP;
	return st.st_mode & S_IROTH;
}

/* Read-only opens cost no round trip of their own: block pulls READ with
 * fh 0 through the server's descriptor for the node (PROTOCOL.md), so the
 * server-side OPEN would only add latency to every small file. */
void kbfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	uint64_t remote = kbfs_node_remote(fs->nodes, ino), version;
	struct kbfs_file *f;
	kb_Attr a;
	int ret;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		kbfs_open_rw(req, ino, fi);
		return;
	}
	/* Attributes as fresh as attr_timeout allows decide the version. */
	if ((ret = kbfs_attr_now(fs, ino, &a, &version)) < 0)
		goto fail;
	ret = -EACCES;
	if (!may_read(fs, req, &a))
		goto fail;
	f = kbfs_file_new(ino, remote, version, a.size);
	ret = -ENOMEM;
	if (!f)
		goto fail;
	fi->fh = (uintptr_t)f;
	/* An unchanged file keeps the kernel's page cache across opens. */
	fi->keep_cache = kbfs_node_open_version(fs->nodes, ino, version);
	if (!fi->keep_cache)
		kb_cache_invalidate(fs->cache, ino, version);
	/* A small file is read whole right after open (cp -r): start now,
	 * unless the kernel already holds it (git reading back the objects
	 * it just wrote, rsync reopening its temp file). */
	if (!fi->keep_cache && S_ISREG(a.mode) && a.size && a.size <= fs->o->block_size)
		kbfs_prefetch(fs, ino, remote, version, 0, 1);
	if (S_ISREG(a.mode) && a.size && a.size <= KBFS_SIBLINGS_MAX) /* and what follows it */
		prefetch_siblings(fs, remote);
	/* Nothing to flush for a read-only open: spare close() a FUSE round trip. */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0) /* interrupted: the kernel forgot it */
		kbfs_file_free(f);
	return;
fail:
	kbfs_reply_err(req, ret);
}

static int readlink_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	return kb_rpc_readlink(fs->rpc, c->node, arg, KB_RPC_PATH_MAX + 1);
}

void kbfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct kbfs *fs = FS(req);
	char buf[KB_RPC_PATH_MAX + 1]; /* PATH_MAX + NUL, the protocol's bound */
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	int ret = kbfs_call(fs, &c, readlink_send, buf);

	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	fuse_reply_readlink(req, buf);
}

static int statfs_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	return kb_rpc_statfs(fs->rpc, c->node, arg);
}

void kbfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct kbfs *fs = FS(req);
	struct statvfs sv = {0};
	kb_Statfs s;
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	int ret = kbfs_call(fs, &c, statfs_send, &s);

	kbfs_raise_readahead_once(fs);
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	sv.f_bsize = s.bsize;
	sv.f_frsize = s.frsize;
	sv.f_blocks = s.blocks;
	sv.f_bfree = s.bfree;
	sv.f_bavail = s.bavail;
	sv.f_files = s.files;
	sv.f_ffree = s.ffree;
	sv.f_favail = s.ffree;
	sv.f_namemax = s.namemax;
	fuse_reply_statfs(req, &sv);
}

/* xattr reads: the value is copied out of the frame on the receiver
 * thread into `buf` (small, bounded by the caller's size). */
struct xattr_get {
	const char *name; /* NULL: the list */
	size_t size;
	char *buf; /* owned by the caller */
	size_t len;
	uint64_t value;
};

static int xattr_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct xattr_get *x = arg;

	if (!x->name)
		return kb_rpc_listxattr(fs->rpc, c->node, x->size, x->buf, &x->len, &x->value);
	return kb_rpc_getxattr(fs->rpc, c->node, x->name, x->size, x->buf, &x->len, &x->value);
}

/* name NULL: the list. -ERANGE when the answer does not fit in size. */
static void xattr_op(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	struct xattr_get x = {.name = name};
	int ret;

	if (name && strlen(name) > KB_RPC_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	if (size > 65536)
		size = 65536; /* XATTR_SIZE_MAX */
	x.size = size;
	x.buf = size ? malloc(size) : NULL;
	if (size && !x.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ret = kbfs_call(fs, &c, xattr_send, &x);
	if (ret < 0)
		kbfs_reply_err(req, ret);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)x.value);
	else
		fuse_reply_buf(req, x.buf, x.len);
	free(x.buf);
}

void kbfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	/* Not exposed: the server's SELinux labels mean nothing here, and its
	 * ACLs are enforced over there. EOPNOTSUPP (not ENODATA) tells `ls -l`
	 * the whole mount lacks them, so it stops asking for every file and a
	 * listing stays at one round trip per READDIR batch. */
	if (!strcmp(name, "security.selinux") || !strncmp(name, "system.posix_acl_", 17)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	/* The kernel asks before the first write to every file (to drop file
	 * capabilities). Nobody can set it through the mount (the server only
	 * takes user.*), and a write on the server drops it there anyway: no
	 * round trip for it. */
	if (!strcmp(name, "security.capability")) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (kbfs_status_getxattr(req, ino, name, size) || kbfs_wb_sync_xattr(req, ino, name, size))
		return;
	xattr_op(req, ino, name, size);
}

void kbfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	xattr_op(req, ino, NULL, size);
}

/* What the server's faccessat(AT_EACCESS) answers for its own ids (HELLO
 * server_ids), from the mode bits: 0, -EACCES, or 1 when only the server
 * can tell (it is neither root nor the owner: an ACL may decide). */
static int access_local(const kb_Creds *ids, const kb_Attr *a, int mask)
{
	unsigned bits = 0;

	if (ids->uid == 0) { /* CAP_DAC_OVERRIDE: x needs some x bit, or a dir */
		if ((mask & X_OK) && !S_ISDIR(a->mode) && !(a->mode & 0111))
			return -EACCES;
		return 0;
	}
	if (a->uid != ids->uid)
		return 1;
	if (mask & R_OK)
		bits |= S_IRUSR;
	if (mask & W_OK)
		bits |= S_IWUSR;
	if (mask & X_OK)
		bits |= S_IXUSR;
	return (a->mode & bits) == bits ? 0 : -EACCES;
}

static int access_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	return kb_rpc_access(fs->rpc, c->node, (uint32_t) * (const int *)arg);
}

void kbfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	uint64_t version;
	kb_Creds ids;
	kb_Attr a;
	int ret;

	if ((mask & W_OK) && fs->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* Map mode (owners=preserve has default_permissions: no ACCESS):
	 * the server checks as its own user, which its attributes tell. */
	if (!fs->o->owners && kb_rpc_server_ids(fs->rpc, &ids) &&
	    kbfs_attr_now(fs, ino, &a, &version) == 0 &&
	    (ret = access_local(&ids, &a, mask)) <= 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	ret = kbfs_call(fs, &c, access_send, &mask);
	kbfs_reply_err(req, ret);
}
