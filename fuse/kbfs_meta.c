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
#include "kbfs_call.h"
#include "kbfs_newdirs.h"
#include "kbfs_node.h"
#include "kbfs_wb.h"
#include "rpc_api.h"
#include "util.h"

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

struct setattr_arg {
	uint32_t mask;  /* kb_SetMask bits */
	kb_Attr values; /* what they set */
	kb_Attr out;    /* the attributes after it */
	uint64_t gen;   /* kbfs_nodes_gen before it was sent */
};

static int setattr_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct setattr_arg *s = arg;

	s->gen = kbfs_nodes_gen(fs->nodes);
	return kb_rpc_setattr(fs->rpc, c->node, c->fh, s->mask, &s->values, &s->out);
}

void kbfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = fi ? (struct kbfs_file *)(uintptr_t)fi->fh : NULL;
	struct setattr_arg s = {0};
	struct kbfs_call c = {.ino = ino, .f = f}; /* f: on its handle, if it has one */
	struct stat st;
	kb_Attr a = {0};
	int ret;

	if (kbfs_rofs(req) || kbfs_wb_refuse(req, ino, 0))
		return;
	/* The kernel's own time flush (fi set) does not wait for the pages it
	 * just wrote back: their WRITEs are in flight and would reach the
	 * server after it, and their mtime would win over the kernel's. */
	if (f && !f->wb) /* the stream keeps a wb file's order itself */
		kbfs_file_drain(f, false);
	/* the kernel's own time flush: it owns mtime (writeback cache) */
	if (f && fs->writeback && (to_set & FUSE_SET_ATTR_MTIME) &&
	    !(to_set & FUSE_SET_ATTR_MTIME_NOW))
		kbfs_node_kernel_mtime_set(fs->nodes, ino, (int64_t)attr->st_mtim.tv_sec,
					   (uint32_t)attr->st_mtim.tv_nsec);
	/* No creds even with owners=preserve: the kernel checked it all
	 * (default_permissions, sgid clearing) and, with the writeback cache,
	 * sends utimes(NULL) as explicit times only the owner could set.
	 * A mask of 0 (only ctime, or nothing) asks for the current
	 * attributes. */
	s.mask = set_mask(fs, attr, to_set, &s.values);
	if (s.mask && kbfs_devio_kill_suidgid()) /* with a size or owner change */
		s.mask |= kb_SetMask_SET_KILL_SUIDGID;
	/* In the stream: answered here and always queued (costs no round
	 * trip), never skipped as "nothing changes": the attributes we keep
	 * may miss a change on the server's disk in the same moment. */
	if (s.mask &&
	    kbfs_wb_setattr(fs, ino, f && f->wb ? f->remote_fh : 0, s.mask, &s.values, &a)) {
		kbfs_attr_to_stat(fs, &a, &st);
		fuse_reply_attr(req, &st, fs->o->attr_timeout);
		return;
	}
	if (setattr_known(fs, ino, attr, to_set, &a)) {
		kbfs_attr_to_stat(fs, &a, &st);
		fuse_reply_attr(req, &st, fs->o->attr_timeout);
		return;
	}
	/* Its outcome unknown after a new session began (EIO): the attributes
	 * are absolute values, so setting them again is harmless, but for a
	 * size (a write may have followed the first copy). The kernel's time
	 * flush of a file being written is such a request: failing it would
	 * fail the fsync. */
	c.redo_unknown = !(s.mask & kb_SetMask_SET_SIZE);
	ret = kbfs_call(fs, &c, setattr_send, &s);
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	/* The kernel cache already reflects the change (it truncated its
	 * pages itself): adopt the new version rather than drop it. */
	kbfs_file_own_change(fs, ino, s.mask & kb_SetMask_SET_SIZE);
	/* current if nothing but our kbfs_file_own_change came since we asked */
	kbfs_node_set_attr_gen(fs->nodes, ino, &s.out, NS(fs->o->attr_timeout), NULL, s.gen + 1);
	kbfs_attr_to_stat(fs, &s.out, &st);
	fuse_reply_attr(req, &st, fs->o->attr_timeout);
}

/* One namespace change: its arguments and results. The names are marked
 * (kbfs_name_touched) at each attempt, with the server ids it goes to. */
struct ns_arg {
	const char *name;  /* under c->ino (link: none) */
	const char *name2; /* rename's and link's new name (under c->ino2);
			    * symlink's target */
	uint32_t mode, flags;
	uint64_t rdev;
	const kb_Creds *who; /* NULL or &creds */
	kb_Creds creds;
	kb_Entry e;  /* the entry made */
	uint64_t fh; /* mknod(S_IFREG)'s handle */
	bool leased; /* mkdir: the server leased the new directory to us */
};

static int mkdir_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct ns_arg *a = arg;

	kbfs_name_touched(fs, c->node, a->name, true);
	if (kbfs_wb_on(fs)) /* a directory of ours alone: write-behind in it */
		return kb_rpc_mkdir_lease(fs->rpc, c->node, a->name, a->mode, a->who, &a->e,
					  &a->leased);
	return kb_rpc_mkdir(fs->rpc, c->node, a->name, a->mode, a->who, &a->e);
}

static int mknod_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct ns_arg *a = arg;

	kbfs_name_touched(fs, c->node, a->name, true);
	return kb_rpc_mknod(fs->rpc, c->node, a->name, a->mode, a->rdev, a->who, &a->e);
}

static int mknod_file_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct ns_arg *a = arg;

	kbfs_name_touched(fs, c->node, a->name, true);
	return kb_rpc_mknod_file(fs->rpc, c->node, a->name, a->mode, a->rdev, a->who, &a->e,
				 &a->fh);
}

static int symlink_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct ns_arg *a = arg;

	kbfs_name_touched(fs, c->node, a->name, true);
	return kb_rpc_symlink(fs->rpc, c->node, a->name, a->name2, a->who, &a->e);
}

static int link_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct ns_arg *a = arg;

	kbfs_name_touched(fs, c->node2, a->name2, true);
	return kb_rpc_link(fs->rpc, c->node, c->node2, a->name2, a->who, &a->e);
}

/* What removes a name needs no filter entry: if the name was there, we
 * made it, or the directory is not one we made (kbfs_newdirs). */
static int unlink_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct ns_arg *a = arg;

	kbfs_name_touched(fs, c->node, a->name, false);
	return kb_rpc_unlink(fs->rpc, c->node, a->name, a->who);
}

static int rmdir_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct ns_arg *a = arg;

	kbfs_name_touched(fs, c->node, a->name, false);
	return kb_rpc_rmdir(fs->rpc, c->node, a->name, a->who);
}

static int rename_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct ns_arg *a = arg;

	kbfs_name_touched(fs, c->node, a->name, false);
	kbfs_name_touched(fs, c->node2, a->name2, true);
	return kb_rpc_rename(fs->rpc, c->node, a->name, c->node2, a->name2, a->flags, a->who);
}

/* Send a call that creates a name and reply with its entry. */
static void entry_call(fuse_req_t req, fuse_ino_t parent, const char *name, struct kbfs_call *c,
		       kbfs_call_fn fn, struct ns_arg *a)
{
	struct kbfs *fs = FS(req);
	uint64_t gen = kb_rpc_session(fs->rpc, NULL); /* before: a new session's ids never match */
	int ret = kbfs_call(fs, c, fn, a);

	kbfs_nodes_outdate_attrs(fs->nodes); /* the parent's (and a link's) attributes */
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	if (!a->e.node) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (fn == mkdir_send) /* empty: what we put there is all there is */
		kbfs_newdirs_born(fs->newdirs, a->e.node, gen, kb_now_ns(),
				  NS(fs->o->negative_timeout));
	kbfs_reply_entry_hook(req, parent, name, &a->e, UINT64_MAX,
			      a->leased ? kbfs_wb_dir_leased : NULL);
}

/* A change of `name` under parent (and parent2, 0: none); false (and
 * replied) when the name cannot travel, the mount is read-only or a
 * queued change of the directory itself failed. */
static bool name_ok(fuse_req_t req, fuse_ino_t parent, fuse_ino_t parent2, const char *name,
		    struct ns_arg *a)
{
	if (kbfs_rofs(req) || kbfs_wb_refuse(req, parent, parent2))
		return false;
	if (strlen(name) > KB_RPC_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return false;
	}
	a->name = name;
	a->who = kbfs_creds(req, &a->creds);
	return true;
}

/* mknod(S_IFREG) (tar --xattrs makes files so): an exclusive CREATE whose
 * handle is released at once. */
static void mknod_file(fuse_req_t req, fuse_ino_t parent, const char *name, struct ns_arg *a)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = KBFS_CALL_NODE(parent);
	int ret = kbfs_call(fs, &c, mknod_file_send, a);

	kbfs_nodes_outdate_attrs(fs->nodes); /* the parent's attributes */
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	kb_rpc_release_async(fs->rpc, a->e.node, a->fh, false);
	kbfs_reply_entry(req, parent, name, &a->e);
}

void kbfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct kbfs_call c = KBFS_CALL_NODE(parent);
	struct ns_arg a = {.mode = mode, .rdev = rdev};

	/* Devices only as a root caller with owners=preserve (the server
	 * decides); fifos, sockets (bind(2) makes one) and files always. */
	if (!name_ok(req, parent, 0, name, &a))
		return;
	kbfs_wb_fallback(FS(req), parent);
	if (S_ISREG(mode))
		mknod_file(req, parent, name, &a);
	else
		entry_call(req, parent, name, &c, mknod_send, &a);
}

void kbfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct kbfs_call c = KBFS_CALL_NODE(parent);
	struct ns_arg a = {.mode = mode};

	if (!name_ok(req, parent, 0, name, &a) || kbfs_wb_mkdir(req, parent, name, mode))
		return;
	entry_call(req, parent, name, &c, mkdir_send, &a);
}

void kbfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct kbfs_call c = KBFS_CALL_NODE(parent);
	struct ns_arg a = {.name2 = link};

	if (!name_ok(req, parent, 0, name, &a))
		return;
	if (strlen(link) > KB_RPC_PATH_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (kbfs_wb_symlink(req, link, parent, name))
		return;
	kbfs_wb_fallback(FS(req), parent);
	entry_call(req, parent, name, &c, symlink_send, &a);
}

void kbfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kbfs_call c = {.ino = ino, .ino2 = newparent};
	struct ns_arg a = {.name2 = newname};

	if (kbfs_rofs(req) || kbfs_wb_refuse(req, ino, newparent))
		return;
	if (strlen(newname) > KB_RPC_PATH_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	a.who = kbfs_creds(req, &a.creds);
	kbfs_wb_fallback(FS(req), newparent);
	kbfs_quiet_node(FS(req), ino); /* its link count */
	entry_call(req, newparent, newname, &c, link_send, &a);
}

/* A call that changes names or a node's ctime (unlink, rmdir, xattrs,
 * fsyncdir): no attributes read before it are current any more. */
static void status_call(fuse_req_t req, struct kbfs_call *c, kbfs_call_fn fn, void *arg)
{
	int ret = kbfs_call(FS(req), c, fn, arg);

	kbfs_nodes_outdate_attrs(FS(req)->nodes);
	kbfs_reply_err(req, ret);
}

void kbfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kbfs_call c = KBFS_CALL_NODE(parent);
	struct ns_arg a = {0};

	if (!name_ok(req, parent, 0, name, &a) || kbfs_wb_remove(req, parent, name, false))
		return;
	kbfs_wb_fallback(FS(req), parent);
	status_call(req, &c, unlink_send, &a);
}

void kbfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kbfs_call c = KBFS_CALL_NODE(parent);
	struct ns_arg a = {0};

	if (!name_ok(req, parent, 0, name, &a) || kbfs_wb_remove(req, parent, name, true))
		return;
	kbfs_wb_fallback(FS(req), parent);
	status_call(req, &c, rmdir_send, &a);
}

void kbfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		 const char *newname, unsigned int flags)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = {.ino = parent, .ino2 = newparent};
	struct ns_arg a = {.name2 = newname, .flags = flags}; /* RENAME_NOREPLACE / _EXCHANGE */
	int ret;

	if (!name_ok(req, parent, newparent, name, &a))
		return;
	if (strlen(newname) > KB_RPC_NAME_MAX) { /* a name, though it travels as name2 */
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (kbfs_wb_rename(req, parent, name, newparent, newname, flags))
		return;
	kbfs_wb_fallback(fs, parent);
	kbfs_wb_fallback(fs, newparent);
	ret = kbfs_call(fs, &c, rename_send, &a);
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

struct xattr_arg {
	const char *name;
	const char *value;
	size_t size;
	uint32_t flags;
	const kb_Creds *who;
	kb_Creds creds;
};

static int setxattr_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct xattr_arg *x = arg;

	return kb_rpc_setxattr(fs->rpc, c->node, x->name, x->value, x->size, x->flags, x->who);
}

static int removexattr_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct xattr_arg *x = arg;

	return kb_rpc_removexattr(fs->rpc, c->node, x->name, x->who);
}

void kbfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		   int flags)
{
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	struct xattr_arg x = {.name = name, .value = value, .size = size, .flags = (uint32_t)flags};

	if (kbfs_rofs(req) || kbfs_wb_refuse(req, ino, 0))
		return;
	if (local_xattr(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (strlen(name) > KB_RPC_NAME_MAX || size > 65536) { /* XATTR_SIZE_MAX */
		fuse_reply_err(req, strlen(name) > KB_RPC_NAME_MAX ? ERANGE : E2BIG);
		return;
	}
	x.who = kbfs_creds(req, &x.creds);
	kbfs_quiet_node(FS(req), ino);
	status_call(req, &c, setxattr_send, &x);
}

void kbfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	struct xattr_arg x = {.name = name};

	if (kbfs_rofs(req) || kbfs_wb_refuse(req, ino, 0))
		return;
	if (local_xattr(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (strlen(name) > KB_RPC_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	x.who = kbfs_creds(req, &x.creds);
	kbfs_quiet_node(FS(req), ino);
	status_call(req, &c, removexattr_send, &x);
}

static int fsyncdir_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	return kb_rpc_fsyncdir(fs->rpc, c->node, *(const int *)arg != 0);
}

/* Durable directory entries: the server fsyncs its own descriptor. */
void kbfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct kbfs_call c = KBFS_CALL_NODE(ino);

	(void)fi;
	status_call(req, &c, fsyncdir_send, &datasync);
}
