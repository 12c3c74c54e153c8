/* kbfs_meta.c - setattr and the namespace: mknod (fifos), mkdir, unlink,
 * rmdir, rename (RENAME_NOREPLACE / RENAME_EXCHANGE), link, symlink,
 * setxattr, removexattr, fsyncdir.
 *
 * Each is one synchronous round trip. Operations that create a name reply
 * with the entry the server counted (kbfs_reply_entry). A read-only mount
 * or share answers EROFS without asking the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_newdirs.h"
#include "kbfs_node.h"
#include "rpc.h"
#include "util.h"

static void take_attr(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	(void)b, (void)n;
	*(kb_Attr *)arg = resp->attr;
}

static void take_entry(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	(void)b, (void)n;
	*(kb_Entry *)arg = resp->entry;
}

/* FUSE setattr bits -> kb.SetMask and values. Owners are mapped back:
 * the mounting user's ids name the share owner's (idmap=user). The
 * kernel's FATTR_CTIME cannot be set (the server's ctime moves by itself). */
static uint32_t set_mask(const struct kbfs *fs, const struct stat *st, int to_set, kb_Attr *a)
{
	uint32_t m = 0;

	if (to_set & FUSE_SET_ATTR_MODE) {
		m |= kb_SetMask_SET_MODE;
		a->mode = st->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		m |= kb_SetMask_SET_UID;
		a->uid = st->st_uid == fs->uid ? fs->remote_uid : st->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		m |= kb_SetMask_SET_GID;
		a->gid = st->st_gid == fs->gid ? fs->remote_gid : st->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		m |= kb_SetMask_SET_SIZE;
		a->size = (uint64_t)st->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		m |= kb_SetMask_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		m |= kb_SetMask_SET_ATIME;
		a->atime = st->st_atim.tv_sec;
		a->atime_ns = (uint32_t)st->st_atim.tv_nsec;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		m |= kb_SetMask_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		m |= kb_SetMask_SET_MTIME;
		a->mtime = st->st_mtim.tv_sec;
		a->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
	}
	return m;
}

/* A SETATTR that would change nothing the server has, answered from the
 * attributes a reply gave within attr_timeout (in *a), no round trip:
 * - only mtime (and the ctime every setattr carries), to exactly the known
 *   mtime. With the writeback cache the kernel owns mtime and sends it
 *   back on its own (on close, after a rename or an unlink touched the
 *   ctime), most often as the very value the server has;
 * - only the mode, to the known mode, of a file owned by the share's
 *   owner (the server would allow it) or under owners=preserve (the
 *   kernel checked): rsync's fchmod of its fresh temp file to the mode
 *   mkstemp gave it.
 * What a user can tell: a
 * chmod or touch -m to the current value leaves the server's ctime. */
static bool setattr_known(struct kbfs *fs, fuse_ino_t ino, const struct stat *attr, int to_set,
			  kb_Attr *a)
{
	int what = to_set & ~FUSE_SET_ATTR_CTIME;

	if ((what != FUSE_SET_ATTR_MTIME && what != FUSE_SET_ATTR_MODE) ||
	    !kbfs_node_attr_unexpired(fs->nodes, ino, a))
		return false;
	if (what == FUSE_SET_ATTR_MODE)
		return (a->mode & 07777) == (attr->st_mode & 07777) &&
		       (fs->o->owners || a->uid == fs->remote_uid);
	return (to_set & FUSE_SET_ATTR_CTIME) && a->mtime == (int64_t)attr->st_mtim.tv_sec &&
	       a->mtime_ns == (uint32_t)attr->st_mtim.tv_nsec;
}

#define KBFS_SETATTR_TRIES 3

/* SETATTR r got ret: true to send it again. A stale node is re-resolved
 * (a server restart). When another session began meanwhile, the request
 * did not run there (ESTALE, EBADF) or its outcome is unknown (EIO): the
 * attributes are absolute values, so setting them again is harmless, but
 * for a size (a write may have followed the first copy). The kernel's
 * time flush of a file being written is such a request: failing it would
 * fail the fsync. */
static bool setattr_again(struct kbfs *fs, fuse_ino_t ino, kb_Request *r, int ret, uint64_t sgen)
{
	if (kb_rpc_gen(fs->rpc) != sgen)
		return ret == -ESTALE || ret == -EBADF ||
		       (ret == -EIO && !(r->set_mask & kb_SetMask_SET_SIZE));
	return !r->fh && kbfs_remap_retry(fs, ino, ret, &r->node);
}

void kbfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = fi ? (struct kbfs_file *)(uintptr_t)fi->fh : NULL;
	kb_Request r = kb_Request_init_zero;
	struct stat st;
	kb_Attr a = {0};
	uint64_t gen;
	int ret;

	if (kbfs_rofs(req))
		return;
	/* The kernel's own time flush (fi set) does not wait for the pages it
	 * just wrote back: their WRITEs are in flight and would reach the
	 * server after it, and their mtime would win over the kernel's. */
	if (f)
		kbfs_file_drain(f, false);
	/* the kernel's own time flush: it owns mtime (writeback cache) */
	if (f && fs->writeback && (to_set & FUSE_SET_ATTR_MTIME) &&
	    !(to_set & FUSE_SET_ATTR_MTIME_NOW))
		kbfs_node_kernel_mtime_set(fs->nodes, ino, (int64_t)attr->st_mtim.tv_sec,
					   (uint32_t)attr->st_mtim.tv_nsec);
	if (setattr_known(fs, ino, attr, to_set, &a)) {
		kbfs_attr_to_stat(fs, &a, &st);
		fuse_reply_attr(req, &st, fs->o->attr_timeout);
		return;
	}
	r.op = kb_Op_SETATTR;
	/* No creds even with owners=preserve: the kernel checked it all
	 * (default_permissions, sgid clearing) and, with the writeback cache,
	 * sends utimes(NULL) as explicit times only the owner could set. */
	r.has_attr = true;
	r.set_mask = set_mask(fs, attr, to_set, &r.attr);
	if (r.set_mask && kbfs_devio_kill_suidgid()) /* with a size or owner change */
		r.set_mask |= kb_SetMask_SET_KILL_SUIDGID;
	if (r.set_mask == 0) /* only ctime (or nothing): the current attributes */
		r.op = kb_Op_GETATTR;
	for (int tries = 0;; tries++) {
		uint64_t sgen = kb_rpc_gen(fs->rpc);

		r.fh = 0; /* 0: by node (read-only opens have none) */
		r.node = kbfs_node_remote(fs->nodes, ino);
		if (f && (ret = kbfs_file_handle(fs, f, &r.node, &r.fh, NULL)) < 0)
			break;
		gen = kbfs_nodes_gen(fs->nodes);
		ret = kb_rpc_call_take(fs->rpc, &r, NULL, 0, take_attr, &a);
		if (tries >= KBFS_SETATTR_TRIES || !setattr_again(fs, ino, &r, ret, sgen))
			break;
	}
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	/* The kernel cache already reflects the change (it truncated its
	 * pages itself): adopt the new version rather than drop it. */
	kbfs_file_own_change(fs, ino, r.set_mask & kb_SetMask_SET_SIZE);
	/* current if nothing but our kbfs_file_own_change came since we asked */
	kbfs_node_set_attr_gen(fs->nodes, ino, &a, NS(fs->o->attr_timeout), NULL, gen + 1);
	kbfs_attr_to_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->o->attr_timeout);
}

/* Send a request that creates a name and reply with its entry. */
static void entry_call(fuse_req_t req, fuse_ino_t parent, const char *name, kb_Request *r)
{
	struct kbfs *fs = FS(req);
	kb_Entry e = {0};
	uint64_t gen = kb_rpc_session(fs->rpc, NULL); /* before: a new session's ids never match */
	int ret = kb_rpc_call_take(fs->rpc, r, NULL, 0, take_entry, &e);

	kbfs_nodes_outdate_attrs(fs->nodes); /* the parent's (and a link's) attributes */
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	if (!e.node) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (r->op == kb_Op_MKDIR) /* empty: what we put there is all there is */
		kbfs_newdirs_born(fs->newdirs, e.node, gen, kb_now_ns(),
				  NS(fs->o->negative_timeout));
	kbfs_reply_entry(req, parent, name, &e);
}

/* A request naming `name` under parent; false (and replied) when the name
 * cannot travel or the mount is read-only. */
static bool name_req(fuse_req_t req, kb_Request *r, kb_Op op, fuse_ino_t parent, const char *name)
{
	struct kbfs *fs = FS(req);

	if (kbfs_rofs(req))
		return false;
	if (strlen(name) >= sizeof(r->name)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return false;
	}
	r->op = op;
	r->node = kbfs_node_remote(fs->nodes, parent);
	strcpy(r->name, name);
	kbfs_creds(req, r);
	/* it may exist from now on (what removes a name needs no filter entry:
	 * if the name was there, we made it, or the directory is not fresh) */
	kbfs_name_touched(fs, r->node, name,
			  op != kb_Op_UNLINK && op != kb_Op_RMDIR && op != kb_Op_RENAME);
	return true;
}

struct create_out {
	kb_Entry e;
	uint64_t fh;
};

static void take_create(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	struct create_out *o = arg;

	(void)b, (void)n;
	o->e = resp->entry;
	o->fh = resp->fh;
}

static void ignore_done(void *arg, int status, struct kb_rpc_result *res)
{
	(void)arg, (void)status, (void)res;
}

/* mknod(S_IFREG) (tar --xattrs makes files so): an exclusive CREATE whose
 * handle is released at once. */
static void mknod_reg(fuse_req_t req, fuse_ino_t parent, const char *name, kb_Request *r)
{
	struct kbfs *fs = FS(req);
	struct create_out o = {0};
	int ret;

	r->op = kb_Op_CREATE;
	r->flags = O_WRONLY | O_EXCL;
	ret = kb_rpc_call_take(fs->rpc, r, NULL, 0, take_create, &o);
	kbfs_nodes_outdate_attrs(fs->nodes); /* the parent's attributes */
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	*r = (kb_Request)kb_Request_init_zero;
	r->op = kb_Op_RELEASE;
	r->node = o.e.node;
	r->fh = o.fh;
	kb_rpc_submit(fs->rpc, r, NULL, 0, -1, ignore_done, NULL);
	kbfs_reply_entry(req, parent, name, &o.e);
}

void kbfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	kb_Request r = kb_Request_init_zero;

	/* Devices only as a root caller with owners=preserve (the server
	 * decides); fifos, sockets (bind(2) makes one) and files always. */
	if (!name_req(req, &r, kb_Op_MKNOD, parent, name))
		return;
	r.mode = mode;
	r.rdev = rdev;
	if (S_ISREG(mode))
		mknod_reg(req, parent, name, &r);
	else
		entry_call(req, parent, name, &r);
}

void kbfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	kb_Request r = kb_Request_init_zero;

	if (!name_req(req, &r, kb_Op_MKDIR, parent, name))
		return;
	r.mode = mode;
	entry_call(req, parent, name, &r);
}

void kbfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	kb_Request r = kb_Request_init_zero;

	if (!name_req(req, &r, kb_Op_SYMLINK, parent, name))
		return;
	if (strlen(link) >= sizeof(r.name2)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	strcpy(r.name2, link);
	entry_call(req, parent, name, &r);
}

void kbfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kbfs *fs = FS(req);
	kb_Request r = kb_Request_init_zero;

	if (kbfs_rofs(req))
		return;
	if (strlen(newname) >= sizeof(r.name2)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	r.op = kb_Op_LINK;
	kbfs_creds(req, &r);
	r.node = kbfs_node_remote(fs->nodes, ino);
	r.node2 = kbfs_node_remote(fs->nodes, newparent);
	strcpy(r.name2, newname);
	kbfs_name_touched(fs, r.node2, newname, true);
	kbfs_quiet_node(fs, ino); /* its link count */
	entry_call(req, newparent, newname, &r);
}

/* A request that changes names or a node's ctime (unlink, rmdir, xattrs):
 * no attributes read before it are current any more. */
static void status_call(fuse_req_t req, kb_Request *r, const void *bulk, size_t len)
{
	int ret = kb_rpc_call_take(FS(req)->rpc, r, bulk, len, NULL, NULL);

	kbfs_nodes_outdate_attrs(FS(req)->nodes);
	kbfs_reply_err(req, ret);
}

void kbfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	kb_Request r = kb_Request_init_zero;

	if (name_req(req, &r, kb_Op_UNLINK, parent, name))
		status_call(req, &r, NULL, 0);
}

void kbfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	kb_Request r = kb_Request_init_zero;

	if (name_req(req, &r, kb_Op_RMDIR, parent, name))
		status_call(req, &r, NULL, 0);
}

void kbfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		 const char *newname, unsigned int flags)
{
	struct kbfs *fs = FS(req);
	kb_Request r = kb_Request_init_zero;
	int ret;

	if (!name_req(req, &r, kb_Op_RENAME, parent, name))
		return;
	if (strlen(newname) >= sizeof(r.name)) { /* a name, though it travels as name2 */
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	r.node2 = kbfs_node_remote(fs->nodes, newparent);
	strcpy(r.name2, newname);
	kbfs_name_touched(fs, r.node2, newname, true);
	r.flags = flags; /* RENAME_NOREPLACE / RENAME_EXCHANGE: the same bits */
	ret = kb_rpc_call_take(fs->rpc, &r, NULL, 0, NULL, NULL);
	kbfs_nodes_outdate_attrs(fs->nodes); /* ctimes, a replaced target's nlink */
	if (ret == 0)
		kbfs_node_renamed(fs->nodes, parent, name, newparent, newname,
				  flags & RENAME_EXCHANGE);
	kbfs_reply_err(req, ret);
}

/* Names the mount answers itself (kbfs_getxattr): never set remotely. */
static bool local_xattr(const char *name)
{
	return !strcmp(name, "security.selinux") || !strncmp(name, "system.posix_acl_", 17);
}

void kbfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		   int flags)
{
	struct kbfs *fs = FS(req);
	kb_Request r = kb_Request_init_zero;

	if (kbfs_rofs(req))
		return;
	if (local_xattr(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (strlen(name) >= sizeof(r.name) || size > 65536) { /* XATTR_SIZE_MAX */
		fuse_reply_err(req, strlen(name) >= sizeof(r.name) ? ERANGE : E2BIG);
		return;
	}
	r.op = kb_Op_SETXATTR;
	kbfs_creds(req, &r);
	r.node = kbfs_node_remote(fs->nodes, ino);
	strcpy(r.name, name);
	r.flags = (uint32_t)flags;
	kbfs_quiet_node(fs, ino);
	status_call(req, &r, value, size);
}

void kbfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct kbfs *fs = FS(req);
	kb_Request r = kb_Request_init_zero;

	if (kbfs_rofs(req))
		return;
	if (local_xattr(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (strlen(name) >= sizeof(r.name)) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	r.op = kb_Op_REMOVEXATTR;
	kbfs_creds(req, &r);
	r.node = kbfs_node_remote(fs->nodes, ino);
	strcpy(r.name, name);
	kbfs_quiet_node(fs, ino);
	status_call(req, &r, NULL, 0);
}

/* Durable directory entries: the server fsyncs its own descriptor. */
void kbfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	kb_Request r = kb_Request_init_zero;

	(void)fi;
	r.op = kb_Op_FSYNCDIR;
	r.node = kbfs_node_remote(fs->nodes, ino);
	r.flags = datasync ? 1 : 0;
	status_call(req, &r, NULL, 0);
}
