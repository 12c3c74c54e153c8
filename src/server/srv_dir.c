/* srv_dir.c - READDIR: batches of at most 4096 entries, resumable by cookie.
 *
 * The entries go into the reply's bulk, each a length-delimited Dirent
 * (kb_wire_dirent_put), and Response.value counts them. A batch also ends
 * when the bulk has no room for another entry at its largest, so an entry
 * is never looked up (and counted) without being sent.
 *
 * The cookie of an entry is the kernel's d_off for it (the position after
 * it), so a batch resumes with lseek(dirfd, cookie) + getdents64 on the
 * handle's own descriptor (the handle lock keeps two batches of one handle
 * from interleaving). "." and ".." are listed with entry.node 0; with `plus`
 * every other entry is looked up (one lookup counted, as for LOOKUP).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "srv_ops.h"
#include "wire.h"

#define READDIR_MAX 4096

struct linux_dirent64 {
	ino64_t d_ino;
	off64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static bool dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Append one entry to the reply's bulk (room for it checked by the caller);
 * a name too long to represent is skipped. */
static int add_entry(struct kb_srv_req *rq, struct kb_srv_node *dir, const struct linux_dirent64 *d)
{
	kb_Dirent e = kb_Dirent_init_zero;
	size_t len = strnlen(d->d_name, sizeof(e.name)), n;
	int ret;

	if (len >= sizeof(e.name))
		return 0;
	memcpy(e.name, d->d_name, len + 1);
	e.cookie = (uint64_t)d->d_off;
	e.type = d->d_type;
	e.ino = d->d_ino;
	if (rq->q->plus && !dot_or_dotdot(d->d_name))
		e.has_entry = !kb_srv_lookup(rq->sess, dir, d->d_name, &e.entry);
	ret = kb_wire_dirent_put(rq->data + rq->data_len, rq->data_max - rq->data_len, &e, &n);
	if (ret) {
		if (e.has_entry) /* cannot happen (room was checked): undo the lookup */
			kb_srv_node_forget(&rq->sess->nodes, e.entry.node, 1);
		return ret;
	}
	rq->data_len += n;
	rq->r->value++;
	rq->r->cookie = e.cookie;
	return 0;
}

/* Fill the bulk from fd's current position (a listing of dir). */
static int fill(struct kb_srv_req *rq, int fd, struct kb_srv_node *dir, unsigned count)
{
	struct kb_srv_worker *w = rq->w;

	for (;;) {
		ssize_t n = getdents64(fd, w->dents, w->dents_cap);

		if (n < 0)
			return -errno;
		if (n == 0) {
			rq->r->eof = true;
			return 0;
		}
		for (ssize_t off = 0; off < n;) {
			const struct linux_dirent64 *d = (const void *)(w->dents + off);
			int ret;

			if (rq->data_max - rq->data_len < KB_WIRE_DIRENT_MAX)
				return rq->r->value ? 0 : -EOVERFLOW; /* a tiny frame size */
			if (rq->r->value >= count)
				return 0;
			ret = add_entry(rq, dir, d);
			if (ret)
				return ret;
			off += d->d_reclen;
		}
	}
}

/* A failed batch: the lookups counted for its entries are given back. */
static void forget_sent(struct kb_srv_req *rq)
{
	kb_Dirent e;
	size_t off = 0;

	while (kb_wire_dirent_next(rq->data, rq->data_len, &off, &e) == 1)
		if (e.has_entry)
			kb_srv_node_forget(&rq->sess->nodes, e.entry.node, 1);
}

/* fh 0: a listing without OPENDIR, through a descriptor of this request's
 * own (cookies are the directory's offsets, valid across opens). */
static int readdir_nofh(struct kb_srv_req *rq, struct kb_srv_node *n, unsigned count)
{
	int fd, ret;

	if (n->fmt != S_IFDIR)
		return -ENOTDIR;
	fd = kb_srv_reopen(n, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	if (lseek(fd, (off_t)rq->q->cookie, SEEK_SET) < 0)
		ret = -errno;
	else
		ret = fill(rq, fd, n, count);
	close(fd);
	return ret;
}

int kb_srv_op_readdir(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	unsigned count = q->count && q->count < READDIR_MAX ? q->count : READDIR_MAX;
	struct kb_srv_fh *h;
	int ret;

	if (q->cookie > INT64_MAX)
		return -EINVAL;
	if (!q->fh) {
		ret = readdir_nofh(rq, n, count);
		goto out;
	}
	h = kb_srv_fh_get(&rq->sess->fhs, q->fh);
	if (!h || h->node != n || !h->dir) {
		kb_srv_fh_put(h);
		return -EBADF;
	}
	pthread_mutex_lock(&h->lock);
	if (lseek(h->fd, (off_t)q->cookie, SEEK_SET) < 0)
		ret = -errno;
	else
		ret = fill(rq, h->fd, h->node, count);
	pthread_mutex_unlock(&h->lock);
	kb_srv_fh_put(h);
out:
	if (!ret && !q->cookie)
		kb_srv_maybe_lease(rq, n->id);
	if (ret) { /* nothing goes out: forget what was counted */
		forget_sent(rq);
		rq->r->value = 0;
		rq->data_len = 0;
	}
	return ret;
}
