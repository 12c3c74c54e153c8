/* kbfs_read.c - the read path: cache lookups, block pulls, readahead, and
 * zero-copy replies.
 *
 * A read maps to at most a few blocks ("pieces"). Each piece is looked up
 * in the block cache; a missing one is pulled with an asynchronous READ
 * (fh 0) on connection index % conns, and every reader of that block waits
 * on the single pull. The reply is a fuse_reply_iov() straight from the
 * frame buffers the blocks live in, holding a reference on each until the
 * kernel has copied them: the only copy of file data is the kernel's.
 * Sequential readers grow a window of block pulls ahead of them; random
 * small reads pull only the sub-block around them (4 to 64 KiB: the
 * smallest power of two that holds the read).
 *
 * The last piece to resolve replies, on whatever thread it resolved (a
 * FUSE worker for hits, an rpc receiver thread for pulls). Read requests
 * come from a free list: no malloc per block in steady state.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_node.h"
#include "rpc.h"
#include "util.h"

#define KBFS_MAX_PIECES 4

struct kbfs_rd;

struct kbfs_piece {
	struct kb_cache_waiter w; /* first: waiter callbacks cast back */
	struct kbfs_rd *rd;
	struct kb_cache_key key; /* the block being waited for / held */
	struct kb_cache_ref ref; /* the block once resolved (a reference) */
	int err;
	bool sub; /* a sub-block read: try the full block first */
};

struct kbfs_rd {
	struct kbfs_rd *next; /* free list */
	struct kbfs *fs;
	fuse_req_t req;
	uint64_t off;
	size_t size;
	uint64_t remote; /* server node id */
	unsigned npieces;
	bool retried;        /* re-run once after ESTALE (kbfs_remap.c) */
	atomic_uint pending; /* unresolved pieces + 1 while starting */
	struct kbfs_piece p[KBFS_MAX_PIECES];
};

static struct kbfs_rd *rd_get(struct kbfs *fs)
{
	struct kbfs_rd *rd;

	pthread_mutex_lock(&fs->rd_lock);
	rd = fs->rd_free;
	if (rd)
		fs->rd_free = rd->next;
	pthread_mutex_unlock(&fs->rd_lock);
	if (!rd)
		rd = malloc(sizeof(*rd));
	if (rd)
		memset(rd, 0, sizeof(*rd));
	return rd;
}

static void rd_put(struct kbfs *fs, struct kbfs_rd *rd)
{
	pthread_mutex_lock(&fs->rd_lock);
	rd->next = fs->rd_free;
	fs->rd_free = rd;
	pthread_mutex_unlock(&fs->rd_lock);
}

void kbfs_rd_pool_free(struct kbfs *fs)
{
	while (fs->rd_free) {
		struct kbfs_rd *rd = fs->rd_free;

		fs->rd_free = rd->next;
		free(rd);
	}
}

static void pull_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct kb_cache_entry *fill = arg;

	if (status == 0 && res && res->frame)
		kb_cache_complete(fill, 0, res->frame, res->bulk, res->bulk_len);
	else
		kb_cache_complete(fill, status < 0 ? status : -EIO, NULL, NULL, 0);
}

/* Pull one block into the cache entry `fill`. */
static void pull(struct kbfs *fs, uint64_t remote, const struct kb_cache_key *k,
		 struct kb_cache_entry *fill)
{
	int ret = kb_rpc_read_async(fs->rpc, remote, 0, k->index << k->shift, 1u << k->shift,
				    (int)(k->index % fs->conns), pull_done, fill);

	if (ret < 0) /* not accepted: the callback will not run */
		kb_cache_complete(fill, ret, NULL, NULL, 0);
}

/* Try to resolve a piece: true when done (hit or error), false when its
 * waiter will be called. */
static bool piece_resolve(struct kbfs_piece *p)
{
	struct kbfs *fs = p->rd->fs;
	struct kb_cache_entry *fill = NULL;
	int st;

	if (p->sub) { /* a full block present or on its way serves us too */
		struct kb_cache_key full = p->key;

		full.shift = fs->block_shift;
		full.index = (p->key.index << p->key.shift) >> fs->block_shift;
		st = kb_cache_get(fs->cache, &full, 0, &p->w, &p->ref, NULL);
		if (st == KB_CACHE_HIT || st == KB_CACHE_WAIT) {
			p->key = full;
			p->sub = false;
			return st == KB_CACHE_HIT;
		}
	}
	st = kb_cache_get(fs->cache, &p->key, KB_CACHE_CREATE, &p->w, &p->ref, &fill);
	switch (st) {
	case KB_CACHE_HIT: return true;
	case KB_CACHE_WAIT: return false;
	case KB_CACHE_FILL: pull(fs, p->rd->remote, &p->key, fill); return false;
	default: p->err = st < 0 ? st : -EIO; return true;
	}
}

static bool rd_retry_later(struct kbfs_rd *rd);

/* Reply from the pieces' buffers, then drop our references. */
static void rd_finish(struct kbfs_rd *rd)
{
	struct iovec iov[KBFS_MAX_PIECES];
	uint64_t pos = rd->off, end = rd->off + rd->size;
	int n = 0, err = 0;

	for (unsigned i = 0; i < rd->npieces && !err; i++)
		err = rd->p[i].err;
	if (err == -ESTALE && !rd->retried && rd_retry_later(rd))
		return;
	for (unsigned i = 0; i < rd->npieces && !err && pos < end; i++) {
		struct kbfs_piece *p = &rd->p[i];
		uint64_t start = p->key.index << p->key.shift;
		uint64_t have = start + p->ref.len;

		if (pos < start || pos >= have)
			break; /* end of file inside an earlier piece */
		iov[n].iov_base = (void *)(p->ref.data + (pos - start));
		iov[n].iov_len = (size_t)(KB_MIN(have, end) - pos);
		pos += iov[n++].iov_len;
		if (have < start + (1ull << p->key.shift))
			break; /* short block: end of file */
	}
	/* fuse_reply_buf sends from a stack iovec; fuse_reply_iov mallocs one
	 * (libfuse 3.14), so it is kept for reads that span two blocks. */
	if (err)
		fuse_reply_err(rd->req, -kb_err_to_errno(err));
	else if (n <= 1)
		fuse_reply_buf(rd->req, n ? iov[0].iov_base : NULL, n ? iov[0].iov_len : 0);
	else
		fuse_reply_iov(rd->req, iov, n);
	for (unsigned i = 0; i < rd->npieces; i++)
		kb_buf_put(rd->p[i].ref.buf);
	rd_put(rd->fs, rd);
}

static void piece_done(struct kbfs_piece *p)
{
	struct kbfs_rd *rd = p->rd;

	if (atomic_fetch_sub(&rd->pending, 1) == 1)
		rd_finish(rd);
}

static void piece_wait_cb(struct kb_cache_waiter *w, int status)
{
	struct kbfs_piece *p = (struct kbfs_piece *)w;

	/* Runs on the completing (rpc receiver) thread: never pull from here,
	 * the cache handed us our own reference. */
	if (status < 0)
		p->err = status;
	else
		p->ref = w->ref;
	piece_done(p);
}

/* Note a read on the file's readahead state; returns the block range
 * [*from, *to) to prefetch (empty when random). */
static bool note_read(struct kbfs *fs, struct kbfs_file *f, uint64_t off, size_t size,
		      uint64_t *from, uint64_t *to)
{
	uint64_t bs = 1ull << fs->block_shift, end = off + size, last;
	bool seq;

	pthread_mutex_lock(&f->lock);
	/* In order, or out of order by at most one block (the kernel sends its
	 * readahead reads concurrently and they may be served out of order). */
	seq = (off == 0 && f->next_off == 0) ||
	      (f->next_off && end + bs >= f->next_off && off <= f->next_off + bs);
	*from = *to = 0;
	if (seq) {
		f->win = f->win ? KB_MIN(f->win * 2, fs->ra_max) : KB_MIN(2u, fs->ra_max);
		f->next_off = KB_MAX(f->next_off, end);
		last = f->size ? (f->size - 1) >> fs->block_shift : 0;
		*from = KB_MAX((end - 1) / bs + 1, f->ra_next);
		*to = KB_MIN((end - 1) / bs + 1 + f->win, last + 1);
		if (*to > f->ra_next)
			f->ra_next = *to;
	} else {
		f->win = 0;
		f->ra_next = 0;
		f->next_off = end;
	}
	pthread_mutex_unlock(&f->lock);
	return seq;
}

void kbfs_prefetch(struct kbfs *fs, uint64_t ino, uint64_t remote, uint64_t version, uint64_t from,
		   uint64_t to)
{
	for (uint64_t b = from; b < to; b++) {
		struct kb_cache_key k = {ino, version, b, fs->block_shift};
		struct kb_cache_entry *fill = NULL;
		struct kb_cache_ref ref;
		int st = kb_cache_get(fs->cache, &k, KB_CACHE_CREATE | KB_CACHE_PROBE, NULL, &ref,
				      &fill);

		if (st == KB_CACHE_FILL)
			pull(fs, remote, &k, fill);
		else if (st == KB_CACHE_HIT)
			kb_buf_put(ref.buf);
	}
}

/* The sub-block for a random read of `size` bytes: the smallest power of
 * two that holds it, from 4 KiB up to fs->sub_shift. Pulling no more than
 * the read needs (a whole 64 KiB sub-block halved the rate of 4 KiB random
 * reads). */
static unsigned sub_shift_for(const struct kbfs *fs, size_t size)
{
	unsigned s = 12;

	while (s < fs->sub_shift && ((size_t)1 << s) < size)
		s++;
	return s;
}

void kbfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = (struct kbfs_file *)(uintptr_t)fi->fh;
	uint64_t from, to, first, last;
	unsigned shift = fs->block_shift;
	struct kbfs_rd *rd;
	bool seq;

	(void)ino;
	if (size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	seq = note_read(fs, f, (uint64_t)off, size, &from, &to);
	/* Random small reads: only the sub-blocks they touch (at most 2), each
	 * the smallest power of two that holds the read, 4 KiB to 64 KiB. */
	if (!seq) {
		unsigned s = sub_shift_for(fs, size);

		if (((uint64_t)off >> s) + 1 >= ((uint64_t)off + size - 1) >> s)
			shift = s;
	}
	first = (uint64_t)off >> shift;
	last = ((uint64_t)off + size - 1) >> shift;
	rd = rd_get(fs);
	if (!rd || last - first + 1 > KBFS_MAX_PIECES) {
		if (rd)
			rd_put(fs, rd);
		fuse_reply_err(req, rd ? EINVAL : ENOMEM);
		return;
	}
	rd->fs = fs;
	rd->req = req;
	rd->off = (uint64_t)off;
	rd->size = size;
	rd->remote = kbfs_node_remote(fs->nodes, f->ino); /* remapped by kbfs_remap.c */
	rd->npieces = (unsigned)(last - first + 1);
	atomic_store(&rd->pending, rd->npieces + 1);
	for (unsigned i = 0; i < rd->npieces; i++) {
		struct kbfs_piece *p = &rd->p[i];

		p->w.fn = piece_wait_cb;
		p->rd = rd;
		p->key = (struct kb_cache_key){f->ino, f->version, first + i, shift};
		p->sub = shift != fs->block_shift;
	}
	for (unsigned i = 0; i < rd->npieces; i++)
		if (piece_resolve(&rd->p[i]))
			piece_done(&rd->p[i]);
	if (from < to)
		kbfs_prefetch(fs, f->ino, rd->remote, f->version, from, to);
	piece_done(&(struct kbfs_piece){.rd = rd}); /* the starter's count */
}

/* A read that got ESTALE (the server started a new session): re-resolve
 * the node on a thread of our own (it makes synchronous LOOKUPs, which the
 * rpc receiver we were called on must not) and run the read once more. */
static void *rd_retry_main(void *arg)
{
	struct kbfs_rd *rd = arg;
	struct kbfs *fs = rd->fs;
	uint64_t remote;
	int ret = kbfs_remap_resolve(fs, rd->p[0].key.node, rd->remote, &remote);

	if (ret < 0) {
		fuse_reply_err(rd->req, -kb_err_to_errno(ret));
		rd_put(fs, rd);
		return NULL;
	}
	rd->remote = remote;
	rd->retried = true;
	atomic_store(&rd->pending, rd->npieces + 1);
	for (unsigned i = 0; i < rd->npieces; i++)
		if (piece_resolve(&rd->p[i]))
			piece_done(&rd->p[i]);
	piece_done(&(struct kbfs_piece){.rd = rd});
	return NULL;
}

static bool rd_retry_later(struct kbfs_rd *rd)
{
	pthread_attr_t at;
	pthread_t th;
	bool ok;

	for (unsigned i = 0; i < rd->npieces; i++) {
		kb_buf_put(rd->p[i].ref.buf);
		memset(&rd->p[i].ref, 0, sizeof(rd->p[i].ref));
		rd->p[i].err = 0;
	}
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&th, &at, rd_retry_main, rd) == 0;
	pthread_attr_destroy(&at);
	if (!ok) {
		fuse_reply_err(rd->req, EIO);
		rd_put(rd->fs, rd);
	}
	return true;
}
