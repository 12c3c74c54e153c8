/* srv_io.c - handles and data: open, create, read, write, flush, fsync,
 * xattrs, fallocate, copy_file_range, lseek.
 *
 * READ reads straight into the worker's outgoing frame (rq->data, already
 * placed after the header room) and WRITE writes straight from the received
 * frame's bulk bytes: file data is never copied in user space.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "srv_ops.h"
#include "util.h"

/* Flags a client may ask for when opening; everything else is dropped
 * (O_CREAT/O_EXCL/O_TMPFILE/O_PATH/O_NOFOLLOW... are decided here). */
#define OPEN_FLAGS (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC)

static struct kb_srv_node *node_ref(struct kb_srv_node *n)
{
	atomic_fetch_add(&n->refs, 1);
	return n;
}

/* The handle fh of node n, referenced; NULL when it is not one. */
static struct kb_srv_fh *fh_of(struct kb_srv_req *rq, uint64_t fh, struct kb_srv_node *n)
{
	struct kb_srv_fh *h = kb_srv_fh_get(&rq->sess->fhs, fh);

	if (h && h->node != n) {
		kb_srv_fh_put(h);
		h = NULL;
	}
	return h;
}

static int open_check(struct kb_srv_req *rq, uint32_t flags)
{
	if ((flags & O_ACCMODE) == O_ACCMODE)
		return -EINVAL;
	if (rq->sess->ro && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)))
		return -EROFS;
	return 0;
}

/* Clear setuid/setgid after a change of a file's data? When the client's
 * kernel says the writer lacks CAP_FSETID, and always outside owners mode
 * (srv_creds.c), whoever the server runs as. */
static bool kill_wanted(const struct kb_srv_req *rq)
{
	return (rq->q->set_mask & kb_SetMask_SET_KILL_SUIDGID) || kb_srv_squash(rq->sess);
}

/* The same after a change made through fd (fallocate, copy). */
static void kill_after(const struct kb_srv_req *rq, const struct kb_srv_node *n, int fd)
{
	struct stat st;

	if (kill_wanted(rq) && !fstat(fd, &st))
		kb_srv_kill_suidgid(n, &st);
}

int kb_srv_op_opendir(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	int fd;

	if (n->fmt != S_IFDIR)
		return -ENOTDIR;
	fd = kb_srv_reopen(n, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	return kb_srv_fh_add(&rq->sess->fhs, node_ref(n), fd, true, &rq->r->fh);
}

int kb_srv_op_open(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	uint32_t flags = rq->q->flags & OPEN_FLAGS;
	int fd, ret = open_check(rq, flags);

	if (ret)
		return ret;
	if (n->fmt == S_IFDIR && (flags & O_ACCMODE) != O_RDONLY)
		return -EISDIR;
	fd = kb_srv_reopen(n, (int)flags);
	if (fd < 0)
		return fd;
	if ((flags & O_TRUNC) && kill_wanted(rq)) {
		struct stat st;

		if (!fstat(fd, &st))
			kb_srv_kill_suidgid(n, &st);
	}
	return kb_srv_fh_add(&rq->sess->fhs, node_ref(n), fd, n->fmt == S_IFDIR, &rq->r->fh);
}

/* CREATE: O_CREAT|O_EXCL first; when the name exists and the client did not
 * ask for O_EXCL, open the existing inode as a node (never following a
 * symlink, never opening a fifo or device) and reopen that. */
int kb_srv_op_create(struct kb_srv_req *rq, struct kb_srv_node *p)
{
	const kb_Request *q = rq->q;
	uint32_t flags = q->flags & OPEN_FLAGS;
	struct kb_srv_node *n = NULL;
	struct stat st;
	char path[64];
	int fd, pfd = -1, ret;

	ret = kb_srv_name_ok(q->name);
	if (!ret)
		ret = open_check(rq, flags);
	if (ret)
		return ret;
	fd = openat(p->fd, q->name, (int)flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    kb_srv_mode_new(rq->sess, q->mode, q->umask));
	if (fd < 0 && (errno != EEXIST || (q->flags & O_EXCL) || q->new_id))
		return -errno; /* a stream's create (new_id) is always exclusive */
	if (fd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		pfd = open(path, O_PATH | O_CLOEXEC);
	} else {
		pfd = openat(p->fd, q->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (pfd < 0 || fstatat(pfd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		ret = -errno;
		goto out;
	}
	ret = kb_srv_node_add_id(&rq->sess->nodes, pfd, &st, q->new_id, &n);
	pfd = -1;
	if (ret)
		goto out;
	if (fd < 0) {
		fd = kb_srv_reopen(n, (int)flags);
		if (fd < 0) {
			ret = fd;
			kb_srv_node_forget(&rq->sess->nodes, n->id, 1);
			goto out;
		}
		if ((flags & O_TRUNC) && kill_wanted(rq)) /* an existing file truncated */
			kb_srv_kill_suidgid(n, &st);
	}
	rq->r->has_entry = true;
	rq->r->entry.node = n->id;
	rq->r->entry.has_attr = true;
	kb_srv_attr_fill(&rq->r->entry.attr, &st);
	rq->r->fh = q->new_id; /* the client's choice, or 0: ours */
	ret = kb_srv_fh_add_id(&rq->sess->fhs, node_ref(n), fd, false, &rq->r->fh);
	fd = -1;
	if (ret) {
		rq->r->has_entry = false;
		kb_srv_node_forget(&rq->sess->nodes, n->id, 1);
	}
out:
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
	kb_srv_node_put(n);
	return ret;
}

/* The read-only fd a node keeps for READs with fh 0, opened on first use. */
static int node_rdfd(struct kb_srv_node *n)
{
	int fd = atomic_load(&n->rdfd), expect = -1;

	if (fd >= 0)
		return fd;
	if (n->fmt != S_IFREG)
		return n->fmt == S_IFDIR ? -EISDIR : -EINVAL;
	if (kb_srv_fd_charge(n->acct))
		return -EMFILE;
	fd = kb_srv_reopen(n, O_RDONLY);
	if (fd < 0) {
		kb_srv_fd_uncharge(n->acct);
		return fd;
	}
	if (!atomic_compare_exchange_strong(&n->rdfd, &expect, fd)) {
		close(fd);
		kb_srv_fd_uncharge(n->acct);
		fd = expect;
	}
	return fd;
}

/* The fd for I/O on (node, fh): the handle's, or for fh 0 (when allowed)
 * the node's read-only one. *h is referenced when a handle was used. */
static int io_fd(struct kb_srv_req *rq, struct kb_srv_node *n, uint64_t fh, bool fh0_ok,
		 struct kb_srv_fh **h)
{
	*h = NULL;
	if (!fh)
		return fh0_ok ? node_rdfd(n) : -EBADF;
	*h = fh_of(rq, fh, n);
	if (!*h)
		return -EBADF;
	return (*h)->fd;
}

int kb_srv_op_read(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	struct kb_srv_fh *h;
	size_t got = 0;
	int fd, ret = 0;

	if (q->length > rq->data_max)
		return -EINVAL;
	if (q->offset > INT64_MAX)
		return -EINVAL;
	fd = io_fd(rq, n, q->fh, true, &h);
	if (fd < 0)
		return fd;
	while (got < q->length) {
		ssize_t r = pread(fd, rq->data + got, q->length - got, (off_t)(q->offset + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			break;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	kb_srv_fh_put(h);
	if (ret)
		return ret;
	rq->data_len = got;
	rq->r->eof = got < q->length;
	return 0;
}

int kb_srv_op_write(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	struct kb_srv_fh *h;
	struct stat st;
	size_t done = 0;
	int fd, ret = 0;

	if (q->offset > INT64_MAX || rq->bulk_len > INT64_MAX - q->offset)
		return -EFBIG;
	fd = io_fd(rq, n, q->fh, false, &h);
	if (fd < 0)
		return fd;
	while (done < rq->bulk_len) {
		ssize_t r = pwrite(fd, rq->bulk + done, rq->bulk_len - done,
				   (off_t)(q->offset + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)r;
	}
	/* The attributes after it: a client whose only write this was need
	 * not ask for them (GETATTR after close). */
	if (done && (q->set_mask & kb_SetMask_SET_MTIME) && q->has_attr) {
		/* the client's kernel owns mtime (writeback cache): keep its
		 * time rather than this write's; best effort (explicit times
		 * need the owner, and a caller may not be) */
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
					 {.tv_sec = (time_t)q->attr.mtime,
					  .tv_nsec = (long)KB_MIN(q->attr.mtime_ns, 999999999u)}};

		(void)futimens(fd, ts);
	}
	if (done && !fstat(fd, &st)) {
		if (kill_wanted(rq))
			kb_srv_kill_suidgid(n, &st);
		rq->r->has_attr = true;
		kb_srv_attr_fill(&rq->r->attr, &st);
	}
	kb_srv_fh_put(h);
	if (ret && done == 0)
		return ret;
	rq->r->value = done;
	return 0;
}

int kb_srv_op_flush(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	struct kb_srv_fh *h;
	int fd = io_fd(rq, n, rq->q->fh, false, &h), ret = 0;

	if (fd < 0)
		return fd;
	/* Like close() of one of the client's descriptors: drops POSIX locks. */
	fd = dup(fd);
	if (fd < 0 || close(fd))
		ret = -errno;
	kb_srv_fh_put(h);
	return ret;
}

/* FSYNC and FSYNCDIR: durable on the server when this returns. */
int kb_srv_op_fsync(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	struct kb_srv_fh *h = NULL;
	int fd, own = -1, ret = 0;

	if (rq->q->fh) {
		fd = io_fd(rq, n, rq->q->fh, false, &h);
	} else {
		fd = own = kb_srv_reopen(n, O_RDONLY);
	}
	if (fd < 0)
		return fd;
	if ((rq->q->flags & 1) ? fdatasync(fd) : fsync(fd))
		ret = -errno;
	if (own >= 0)
		close(own);
	kb_srv_fh_put(h);
	return ret;
}

static int xattr_name_ok(const char *name)
{
	size_t len = strnlen(name, XATTR_NAME_MAX + 1);

	if (len == 0)
		return -EINVAL;
	return len > XATTR_NAME_MAX ? -ERANGE : 0;
}

/* GETXATTR / LISTXATTR: length 0 asks for the size; else the value comes
 * back as bulk bytes (at most length, ERANGE when it does not fit). */
int kb_srv_op_getxattr(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	bool get = q->op == kb_Op_GETXATTR;
	size_t cap = q->length;
	char path[64];
	ssize_t r;

	if (get && xattr_name_ok(q->name))
		return xattr_name_ok(q->name);
	if (cap > KB_SRV_XATTR_MAX || cap > rq->data_max)
		cap = KB_MIN(KB_SRV_XATTR_MAX, rq->data_max);
	if (kb_srv_proc_path(n, path, sizeof(path))) /* symlink: no user xattrs */
		return get ? -ENODATA : 0;
	if (get)
		r = getxattr(path, q->name, cap ? rq->data : NULL, cap);
	else
		r = listxattr(path, cap ? (char *)rq->data : NULL, cap);
	if (r < 0)
		return -errno;
	rq->r->value = (uint64_t)r;
	rq->data_len = cap ? (size_t)r : 0;
	return 0;
}

int kb_srv_op_setxattr(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	char path[64];
	int ret = xattr_name_ok(q->name);

	if (ret)
		return ret;
	/* Only the user namespace may be changed: security.capability or
	 * trusted.* set by a remote peer on a server running as root would
	 * grant privileges on the server. */
	if (strncmp(q->name, "user.", 5))
		return -EPERM;
	if (kb_srv_proc_path(n, path, sizeof(path)))
		return -EPERM;
	if (q->op == kb_Op_REMOVEXATTR)
		return removexattr(path, q->name) ? -errno : 0;
	if (q->flags & ~(unsigned)(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	if (rq->bulk_len > KB_SRV_XATTR_MAX)
		return -E2BIG;
	return setxattr(path, q->name, rq->bulk, rq->bulk_len, (int)q->flags) ? -errno : 0;
}

int kb_srv_op_fallocate(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	struct kb_srv_fh *h;
	int fd, ret = 0;

	if (q->offset > INT64_MAX || q->length > INT64_MAX - q->offset)
		return -EFBIG;
	fd = io_fd(rq, n, q->fh, false, &h);
	if (fd < 0)
		return fd;
	if (fallocate(fd, (int)q->flags, (off_t)q->offset, (off_t)q->length))
		ret = -errno;
	else
		kill_after(rq, n, fd);
	kb_srv_fh_put(h);
	return ret;
}

/* COPY_FILE_RANGE: node/fh/offset -> node2/fh2/offset2, done here. */
int kb_srv_op_copy(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	struct kb_srv_node *n2 = NULL;
	struct kb_srv_fh *hi = NULL, *ho = NULL;
	loff_t oi = (loff_t)q->offset, oo = (loff_t)q->offset2;
	ssize_t r;
	int ret = -EBADF;

	if (q->flags)
		return -EINVAL;
	if (q->offset > INT64_MAX || q->offset2 > INT64_MAX || q->length > SSIZE_MAX)
		return -EINVAL;
	n2 = kb_srv_node_get(&rq->sess->nodes, q->node2);
	if (!n2)
		return -ESTALE;
	hi = fh_of(rq, q->fh, n);
	ho = fh_of(rq, q->fh2, n2);
	if (hi && ho) {
		r = copy_file_range(hi->fd, &oi, ho->fd, &oo, q->length, 0);
		ret = r < 0 ? -errno : 0;
		if (r > 0)
			kill_after(rq, n2, ho->fd);
		if (r >= 0)
			rq->r->value = (uint64_t)r;
	}
	kb_srv_fh_put(hi);
	kb_srv_fh_put(ho);
	kb_srv_node_put(n2);
	return ret;
}

int kb_srv_op_lseek(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	struct kb_srv_fh *h;
	off_t r;
	int fd, ret = 0;

	if (q->flags != SEEK_DATA && q->flags != SEEK_HOLE && q->flags != SEEK_SET &&
	    q->flags != SEEK_END)
		return -EINVAL;
	if (q->offset > INT64_MAX)
		return -ENXIO;
	fd = io_fd(rq, n, q->fh, true, &h);
	if (fd < 0)
		return fd;
	r = lseek(fd, (off_t)q->offset, (int)q->flags);
	if (r < 0)
		ret = -errno;
	else
		rq->r->value = (uint64_t)r;
	kb_srv_fh_put(h);
	return ret;
}
