/* srv_dir.c - READDIR: batches of at most 128 entries, resumable by cookie.
 *
 * The cookie of an entry is the kernel's d_off for it (the position after
 * it), so a batch resumes with lseek(dirfd, cookie) + getdents64 on the
 * handle's own descriptor (the handle lock keeps two batches of one handle
 * from interleaving). "." and ".." are listed with entry.node 0; with `plus`
 * every other entry is looked up (one lookup counted, as for LOOKUP).
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "srv_ops.h"

#define READDIR_MAX 128

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

/* Add one entry; false when the name cannot be represented (too long). */
static bool add_entry(struct kb_srv_req *rq, struct kb_srv_node *dir,
		      const struct linux_dirent64 *d)
{
	kb_Dirent *e = &rq->r->ents[rq->r->ents_count];
	size_t len = strnlen(d->d_name, sizeof(e->name));

	if (len >= sizeof(e->name))
		return false;
	memset(e, 0, sizeof(*e));
	memcpy(e->name, d->d_name, len + 1);
	e->cookie = (uint64_t)d->d_off;
	e->type = d->d_type;
	e->ino = d->d_ino;
	if (rq->q->plus && !dot_or_dotdot(d->d_name))
		e->has_entry = !kb_srv_lookup(rq->sess, dir, d->d_name, &e->entry);
	rq->r->ents_count++;
	return true;
}

/* Fill rq->r->ents from the handle's current position. */
static int fill(struct kb_srv_req *rq, struct kb_srv_fh *h, unsigned count)
{
	struct kb_srv_worker *w = rq->w;

	for (;;) {
		ssize_t n = getdents64(h->fd, w->dents, w->dents_cap);

		if (n < 0)
			return -errno;
		if (n == 0) {
			rq->r->eof = true;
			return 0;
		}
		for (ssize_t off = 0; off < n;) {
			const struct linux_dirent64 *d = (const void *)(w->dents + off);

			if (rq->r->ents_count >= count)
				return 0;
			add_entry(rq, h->node, d);
			off += d->d_reclen;
		}
	}
}

int kb_srv_op_readdir(struct kb_srv_req *rq, struct kb_srv_node *n)
{
	const kb_Request *q = rq->q;
	unsigned count = q->count && q->count < READDIR_MAX ? q->count : READDIR_MAX;
	struct kb_srv_fh *h = kb_srv_fh_get(&rq->sess->fhs, q->fh);
	int ret;

	if (!h || h->node != n || !h->dir) {
		kb_srv_fh_put(h);
		return -EBADF;
	}
	if (q->cookie > INT64_MAX) {
		kb_srv_fh_put(h);
		return -EINVAL;
	}
	pthread_mutex_lock(&h->lock);
	if (lseek(h->fd, (off_t)q->cookie, SEEK_SET) < 0)
		ret = -errno;
	else
		ret = fill(rq, h, count);
	pthread_mutex_unlock(&h->lock);
	kb_srv_fh_put(h);
	if (ret)
		rq->r->ents_count = 0;
	return ret;
}
