/* srv_ops.c - the metadata and namespace operations, and helpers the
 * other operation files share (stat, attributes, lookup). srv_dispatch.c
 * routes requests to them.
 *
 * Every operation works on node fds: fstatat(fd, "", AT_EMPTY_PATH |
 * AT_SYMLINK_NOFOLLOW), *at() calls relative to a parent node's fd with a
 * validated single-component name (srv_path.c). A node id that is unknown
 * in the session answers ESTALE; a read-only session (share --read-only or
 * an `ro` key) answers EROFS to every mutating operation before anything is
 * touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "op.h"
#include "srv_impl.h"
#include "srv_ops.h"
#include "wire.h"

int kb_srv_stat(const struct kb_srv_node *n, struct stat *st)
{
	return fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

void kb_srv_attr_fill(kb_Attr *a, const struct stat *st)
{
	a->ino = st->st_ino;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = st->st_rdev;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->blksize = (uint32_t)st->st_blksize;
	a->atime = st->st_atim.tv_sec;
	a->atime_ns = (uint32_t)st->st_atim.tv_nsec;
	a->mtime = st->st_mtim.tv_sec;
	a->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
	a->ctime = st->st_ctim.tv_sec;
	a->ctime_ns = (uint32_t)st->st_ctim.tv_nsec;
}

/* Open `name` under parent p as itself (never following it), add a lookup
 * to its node and describe it in e. */
int kb_srv_lookup(struct kb_srv_sess *s, struct kb_srv_node *p, const char *name, kb_Entry *e)
{
	return kb_srv_lookup_id(s, p, name, 0, e);
}

int kb_srv_lookup_id(struct kb_srv_sess *s, struct kb_srv_node *p, const char *name,
		     uint64_t want_id, kb_Entry *e)
{
	struct kb_srv_node *n;
	struct stat st;
	int fd, ret;

	ret = kb_srv_name_ok(name);
	if (ret)
		return ret;
	fd = openat(p->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = kb_srv_node_add_id(&s->nodes, fd, &st, want_id, &n);
	if (ret)
		return ret;
	e->node = n->id;
	e->has_attr = true;
	kb_srv_attr_fill(&e->attr, &st);
	e->no_lease = st.st_dev != s->srv->root_dev;
	kb_srv_notify_watch(s->srv->notifier, s, n);
	kb_srv_node_put(n);
	return 0;
}

int kb_srv_op_lookup(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	int ret = kb_srv_lookup(rq->sess, n, rq->q->name, &rq->r->entry);

	rq->r->has_entry = ret == 0;
	return ret;
}

int kb_srv_op_getattr(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	struct stat st;
	int ret = kb_srv_stat(n, &st);

	if (ret)
		return ret;
	rq->r->has_attr = true;
	kb_srv_attr_fill(&rq->r->attr, &st);
	return 0;
}

static int set_size(struct kb_srv_req *rq, struct kb_srv_node *n, uint64_t size)
{
	char path[64];
	int ret = 0;

	if (size > INT64_MAX)
		return -EFBIG;
	if (rq->q->fh) {
		struct kb_srv_fh *h = kb_srv_fh_get(&rq->sess->fhs, rq->q->fh);

		if (!h || h->node != n || h->dir)
			ret = -EBADF;
		else if (ftruncate(h->fd, (off_t)size))
			ret = -errno;
		kb_srv_fh_put(h);
		return ret;
	}
	if (n->fmt == S_IFDIR)
		return -EISDIR;
	if (n->fmt != S_IFREG)
		return -EINVAL;
	kb_srv_proc_path(n, path, sizeof(path));
	return truncate(path, (off_t)size) ? -errno : 0;
}

static int time_arg(struct timespec *ts, uint32_t mask, uint32_t now_bit, uint32_t set_bit,
		    int64_t sec, uint32_t nsec)
{
	ts->tv_sec = 0;
	ts->tv_nsec = UTIME_OMIT;
	if (mask & now_bit) {
		ts->tv_nsec = UTIME_NOW;
	} else if (mask & set_bit) {
		if (nsec >= 1000000000u)
			return -EINVAL;
		ts->tv_sec = sec;
		ts->tv_nsec = nsec;
	}
	return 0;
}

int kb_srv_op_setattr(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	const kb_Attr *a = &q->attr;
	uint32_t m = q->set_mask;
	struct timespec ts[2];
	char path[64];
	int ret;

	if (m & (kb_SetMask_SET_MODE | kb_SetMask_SET_UID | kb_SetMask_SET_GID |
		 kb_SetMask_SET_SIZE | kb_SetMask_SET_ATIME | kb_SetMask_SET_MTIME) &&
	    !q->has_attr)
		return -EINVAL;
	if (m & kb_SetMask_SET_MODE) {
		if (kb_srv_proc_path(n, path, sizeof(path)))
			return -EOPNOTSUPP; /* Linux has no lchmod */
		if (chmod(path, kb_srv_mode_chmod(rq->sess, n, a->mode)))
			return -errno;
	}
	if (m & (kb_SetMask_SET_UID | kb_SetMask_SET_GID)) {
		uid_t uid = m & kb_SetMask_SET_UID ? a->uid : (uid_t)-1;
		gid_t gid = m & kb_SetMask_SET_GID ? a->gid : (gid_t)-1;

		ret = kb_srv_chown_ok(rq->sess, n, uid, gid);
		if (ret)
			return ret;
		if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
			return -errno;
	}
	if (m & kb_SetMask_SET_SIZE) {
		ret = set_size(rq, n, a->size);
		if (ret)
			return ret;
	}
	/* a truncation by a caller without CAP_FSETID, or any outside owners
	 * mode, clears setuid/setgid (a chmod in the same request decides) */
	if (((m & kb_SetMask_SET_KILL_SUIDGID) ||
	     ((m & kb_SetMask_SET_SIZE) && kb_srv_squash(rq->sess))) &&
	    !(m & kb_SetMask_SET_MODE)) {
		struct stat st;

		if (!fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
			kb_srv_kill_suidgid(n, &st);
	}
	if (m & (kb_SetMask_SET_ATIME | kb_SetMask_SET_MTIME | kb_SetMask_SET_ATIME_NOW |
		 kb_SetMask_SET_MTIME_NOW)) {
		if (time_arg(&ts[0], m, kb_SetMask_SET_ATIME_NOW, kb_SetMask_SET_ATIME, a->atime,
			     a->atime_ns) ||
		    time_arg(&ts[1], m, kb_SetMask_SET_MTIME_NOW, kb_SetMask_SET_MTIME, a->mtime,
			     a->mtime_ns))
			return -EINVAL;
		if (utimensat(n->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
			return -errno;
	}
	return kb_srv_op_getattr(rq, n);
}

/* The directory a name is created, removed or renamed in must still be
 * in the share (srv_path.c): ESTALE when it was moved out on the server. */
int kb_srv_confined(struct kb_srv_req *rq, const struct kb_srv_node *dir)
{
	int ret = kb_srv_beneath(rq->sess->srv, dir);

	if (ret == -ESTALE)
		kb_srv_logf(rq->sess->srv, KB_SRV_LOG_INFO,
			    "%s: directory moved out of the share: %s refused (ESTALE)",
			    rq->conn->fpr, kb_wire_op_name(rq->q->op));
	return ret;
}

/* A second node named by q->node2, referenced; NULL: ESTALE. */
static struct kb_srv_node *node2(struct kb_srv_req *rq)
{
	return kb_srv_node_get(&rq->sess->nodes, rq->q->node2);
}

/* The new entry `name` in p, under the id the client chose for it
 * (Request.new_id) when it did. */
static int reply_entry(struct kb_srv_req *rq, struct kb_srv_node *p, const char *name)
{
	int ret = kb_srv_lookup_id(rq->sess, p, name, rq->q->new_id, &rq->r->entry);

	rq->r->has_entry = ret == 0;
	return ret;
}

/* want_lease: the directory just listed or made, leased when nobody else
 * uses it (srv_dlease.c). */
void kb_srv_maybe_lease(struct kb_srv_req *rq, uint64_t node)
{
	struct kb_srv_node *n;

	if (!rq->q->want_lease || !(n = kb_srv_node_get(&rq->sess->nodes, node)))
		return;
	rq->r->dir_lease = kb_srv_dlease_grant(rq->sess, n);
	kb_srv_node_put(n);
}

int kb_srv_op_lease_return(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	kb_srv_dlease_return(rq->sess, n);
	return 0;
}

int kb_srv_op_syncfs(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	int fd = kb_srv_reopen(n, O_RDONLY | O_DIRECTORY), ret;

	(void)rq;
	if (fd < 0)
		return fd;
	ret = syncfs(fd) ? -errno : 0;
	close(fd);
	return ret;
}

int kb_srv_op_mkdir(struct kb_srv_req *rq, struct kb_srv_node *p)
{
	const kb_Request *q = rq->q;
	int ret = kb_srv_name_ok(q->name);

	if (ret)
		return ret;
	if (mkdirat(p->fd, q->name, kb_srv_mode_new(rq->sess, q->mode, q->umask)))
		return -errno;
	ret = reply_entry(rq, p, q->name);
	if (!ret)
		kb_srv_maybe_lease(rq, rq->r->entry.node);
	return ret;
}

int kb_srv_op_mknod(struct kb_srv_req *rq, struct kb_srv_node *p)
{
	const kb_Request *q = rq->q;
	int ret = kb_srv_name_ok(q->name);
	mode_t mode;

	if (ret)
		return ret;
	mode = (mode_t)(q->mode & S_IFMT) | kb_srv_mode_new(rq->sess, q->mode, q->umask);
	switch (q->mode & S_IFMT) {
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFREG: /* names, no device */
		if (mknodat(p->fd, q->name, mode, 0))
			return -errno;
		break;
	case S_IFCHR:
	case S_IFBLK:
		/* Only for a caller we act as (owners=preserve): the kernel then
		 * decides, as on a local disk (CAP_MKNOD: root caller, root
		 * server). Never for a client acting as the server's user. */
		if (!(q->has_creds && rq->sess->owners))
			return -EPERM;
		if (mknodat(p->fd, q->name, mode, (dev_t)q->rdev))
			return -errno;
		break;
	default: return -EINVAL;
	}
	return reply_entry(rq, p, q->name);
}

int kb_srv_op_unlink(struct kb_srv_req *rq, struct kb_srv_node *p, int flags)
{
	int ret = kb_srv_name_ok(rq->q->name);

	if (ret)
		return ret;
	return unlinkat(p->fd, rq->q->name, flags) ? -errno : 0;
}

int kb_srv_op_rename(struct kb_srv_req *rq, struct kb_srv_node *p)
{
	const kb_Request *q = rq->q;
	struct kb_srv_node *np;
	int ret;

	if (q->flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	ret = kb_srv_name_ok(q->name);
	if (!ret)
		ret = kb_srv_name_ok(q->name2);
	if (ret)
		return ret;
	np = node2(rq);
	if (!np)
		return -ESTALE;
	ret = np == p ? 0 : kb_srv_confined(rq, np);
	if (!ret)
		ret = renameat2(p->fd, q->name, np->fd, q->name2, q->flags) ? -errno : 0;
	if (!ret) { /* the moved file's attributes (its ctime moved): for a
		     * client that answered the rename itself (write-behind) */
		struct stat st;

		if (!fstatat(np->fd, q->name2, &st, AT_SYMLINK_NOFOLLOW)) {
			rq->r->has_attr = true;
			kb_srv_attr_fill(&rq->r->attr, &st);
		}
	}
	kb_srv_node_put(np);
	return ret;
}

/* LINK takes the target as a node, which is inside the share by
 * construction: no path names an inode outside it. */
int kb_srv_op_link(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	struct kb_srv_node *np;
	char path[64];
	int ret = kb_srv_name_ok(q->name2);

	if (ret)
		return ret;
	if (n->fmt == S_IFDIR)
		return -EPERM;
	np = node2(rq);
	if (!np)
		return -ESTALE;
	ret = kb_srv_confined(rq, np);
	if (ret)
		goto out;
	ret = linkat(n->fd, "", np->fd, q->name2, AT_EMPTY_PATH) ? -errno : 0;
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc works without. */
	if (ret == -ENOENT && !kb_srv_proc_path(n, path, sizeof(path)))
		ret = linkat(AT_FDCWD, path, np->fd, q->name2, AT_SYMLINK_FOLLOW) ? -errno : 0;
	if (!ret)
		ret = reply_entry(rq, np, q->name2);
out:
	kb_srv_node_put(np);
	return ret;
}

int kb_srv_op_symlink(struct kb_srv_req *rq, struct kb_srv_node *p)
{
	const kb_Request *q = rq->q;
	int ret = kb_srv_name_ok(q->name);

	if (ret)
		return ret;
	if (!q->name2[0])
		return -ENOENT;
	if (symlinkat(q->name2, p->fd, q->name))
		return -errno;
	return reply_entry(rq, p, q->name);
}

int kb_srv_op_readlink(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	ssize_t len;

	if (n->fmt != S_IFLNK)
		return -EINVAL;
	len = readlinkat(n->fd, "", rq->r->link, sizeof(rq->r->link) - 1);
	if (len < 0)
		return -errno;
	rq->r->link[len] = '\0';
	return 0;
}

int kb_srv_op_statfs(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	struct statfs sf;
	kb_Statfs *st = &rq->r->st;

	if (fstatfs(n->fd, &sf))
		return -errno;
	rq->r->has_st = true;
	st->bsize = (uint64_t)sf.f_bsize;
	st->frsize = (uint64_t)(sf.f_frsize ? sf.f_frsize : sf.f_bsize);
	st->blocks = sf.f_blocks;
	st->bfree = sf.f_bfree;
	st->bavail = sf.f_bavail;
	st->files = sf.f_files;
	st->ffree = sf.f_ffree;
	st->namemax = (uint64_t)sf.f_namelen;
	return 0;
}

int kb_srv_op_access(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	uint32_t mask = rq->q->mode;

	if (mask & ~(unsigned)(R_OK | W_OK | X_OK))
		return -EINVAL;
	if ((mask & W_OK) && rq->sess->ro)
		return -EROFS;
	/* AT_EACCESS: checked as the fsuid/fsgid (the caller's with creds),
	 * not the real ids access(2) would use. */
	if (faccessat(n->fd, "", (int)mask, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_EACCESS))
		return -errno;
	return 0;
}
