/* kbfs_dir.c - opendir / readdir(plus) / releasedir.
 *
 * One READDIR round trip fetches a batch of up to 4096 entries (with their
 * attributes for readdirplus) into the handle: they stay in the reply's
 * frame, length-delimited Dirents decoded one at a time as the kernel's
 * readdir calls consume them, so `ls -l` of a large directory costs one
 * round trip per batch, not per file. While the kernel
 * consumes a batch, the next one is already on its way (one READDIR ahead,
 * asynchronous): the server prepares batch k+1 while we and the kernel
 * handle batch k.
 *
 * Locks: dh->lock serialises the kernel's readdir calls on a handle and is
 * held across synchronous calls; dh->alock guards only the read-ahead state
 * and is what the receiver thread takes in ahead_done, so the receiver
 * never waits for dh->lock (which may be held by a caller waiting on it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_list.h"
#include "kbfs_node.h"
#include "kbfs_siblings.h"
#include "rpc.h"
#include "wire.h"

#define KBFS_DIR_BATCH 4096 /* entries per READDIR (servers before 4096: 1024) */

/* One READDIR reply; its frame holds the entries. */
struct dbatch {
	struct kb_rpc_result *res; /* owned: header, frame reference, bulk */
	struct kbfs_list_key key;  /* taken before it was asked for (kbfs_list.h) */
	uint64_t gen;              /* kbfs_nodes_gen then: its attributes' */
	size_t off;                /* next undecoded byte of res->bulk */
	kb_Dirent cur;             /* the next entry, decoded (valid: has_cur) */
	bool has_cur;
};

struct kbfs_dirh {
	uint64_t remote_fh;
	pthread_mutex_t lock;
	struct dbatch b;    /* the current batch (lock) */
	bool have, plus;    /* batch valid / fetched with plus (lock) */
	uint64_t start_off; /* offset the current batch was fetched at (lock) */
	uint64_t next_off;  /* offset the next readdir call continues at */
	uint64_t gen;       /* rpc session generation remote_fh is from (lock) */
	/* read-ahead: the batch after this one (alock) */
	pthread_mutex_t alock;
	pthread_cond_t acond; /* astate left AHEAD_PENDING */
	struct dbatch ahead;  /* filled by ahead_done (alock) */
	enum {
		AHEAD_NONE,
		AHEAD_PENDING,
		AHEAD_DONE
	} astate;      /* (alock) */
	int aerr;      /* status of the read-ahead (alock) */
	uint64_t aoff; /* cookie it continues at (lock) */
	bool aplus;    /* fetched with plus (lock) */
};

static struct kbfs_dirh *dirh_new(void)
{
	struct kbfs_dirh *dh = calloc(1, sizeof(*dh));

	if (!dh)
		return NULL;
	dh->b.res = kb_rpc_result_new();
	dh->ahead.res = kb_rpc_result_new();
	if (!dh->b.res || !dh->ahead.res) {
		kb_rpc_result_free(dh->b.res);
		kb_rpc_result_free(dh->ahead.res);
		free(dh);
		return NULL;
	}
	pthread_mutex_init(&dh->lock, NULL);
	pthread_mutex_init(&dh->alock, NULL);
	pthread_cond_init(&dh->acond, NULL);
	return dh;
}

static void dirh_free(struct kbfs_dirh *dh)
{
	pthread_mutex_destroy(&dh->lock);
	pthread_mutex_destroy(&dh->alock);
	pthread_cond_destroy(&dh->acond);
	kb_rpc_result_free(dh->b.res);
	kb_rpc_result_free(dh->ahead.res);
	free(dh);
}

void kbfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_dirh *dh = dirh_new();
	uint64_t fh = 0, remote;
	int ret = -ENOMEM;

	if (!dh)
		goto fail;
	remote = kbfs_node_remote(fs->nodes, ino);
	/* a server that lists without a handle: no round trip (fh 0) */
	if (kb_rpc_features(fs->rpc) & kb_Features_FEATURE_READDIR_NOFH)
		goto opened;
	ret = kb_rpc_opendir(fs->rpc, remote, &fh);
	if (kbfs_remap_retry(fs, ino, ret, &remote))
		ret = kb_rpc_opendir(fs->rpc, remote, &fh);
	if (ret < 0)
		goto fail;
opened:
	dh->remote_fh = fh;
	dh->gen = kb_rpc_session(fs->rpc, NULL);
	fi->fh = (uintptr_t)dh;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0) {
		if (fh)
			kb_rpc_release(fs->rpc, kbfs_node_remote(fs->nodes, ino), fh, true);
		dirh_free(dh);
	}
	return;
fail:
	if (dh)
		dirh_free(dh);
	fuse_reply_err(req, -kb_err_to_errno(ret));
}

/* The batch's next entry into b->cur: 1, 0 when it is used up, or -EIO
 * for a malformed one (the rest of the batch is then ignored). */
static int peek(struct dbatch *b)
{
	const struct kb_rpc_result *res = b->res;
	int r;

	if (b->has_cur)
		return 1;
	r = kb_wire_dirent_next(res->bulk, res->bulk_len, &b->off, &b->cur);
	if (r < 0) {
		b->off = res->bulk_len;
		return -EIO;
	}
	b->has_cur = r == 1;
	return r;
}

/* Forget the lookups the server counted for the entries of b never handed
 * to the kernel, then empty b. */
static void batch_drop(struct kbfs *fs, struct dbatch *b, bool plus)
{
	while (plus && peek(b) == 1) {
		if (b->cur.has_entry && b->cur.entry.node)
			kb_rpc_forget(fs->rpc, b->cur.entry.node, 1);
		b->has_cur = false;
	}
	kb_rpc_result_reset(b->res);
	b->off = 0;
	b->has_cur = false;
}

static void drop_batch(struct kbfs *fs, struct kbfs_dirh *dh)
{
	batch_drop(fs, &dh->b, dh->have && dh->plus);
	dh->have = false;
}

/* Receiver thread: the read-ahead batch arrived (or failed). */
static void ahead_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct kbfs_dirh *dh = arg;
	struct kb_rpc_result *a = dh->ahead.res;

	pthread_mutex_lock(&dh->alock);
	dh->aerr = status ? status : res ? 0 : -EIO;
	if (!dh->aerr) { /* keep the frame: the entries are in it */
		a->resp = res->resp;
		a->frame = kb_buf_ref(res->frame);
		a->bulk = res->bulk;
		a->bulk_len = res->bulk_len;
	}
	dh->astate = AHEAD_DONE;
	pthread_cond_broadcast(&dh->acond);
	pthread_mutex_unlock(&dh->alock);
}

/* Wait for a read-ahead in flight; after this nobody else touches dh->ahead. */
static void ahead_wait(struct kbfs_dirh *dh)
{
	pthread_mutex_lock(&dh->alock);
	while (dh->astate == AHEAD_PENDING)
		pthread_cond_wait(&dh->acond, &dh->alock);
	pthread_mutex_unlock(&dh->alock);
}

/* Settle the read-ahead: if it is the batch at (off, plus), it becomes the
 * current batch (0); otherwise it is dropped (-ENOENT: fetch it yourself).
 * dh->lock held. */
static int ahead_take(struct kbfs *fs, struct kbfs_dirh *dh, uint64_t off, bool plus)
{
	int ret = -ENOENT;
	struct dbatch t;

	ahead_wait(dh);
	if (dh->astate != AHEAD_DONE)
		return ret;
	if (!dh->aerr && dh->aoff == off && dh->aplus == plus) {
		drop_batch(fs, dh);
		t = dh->b;
		dh->b = dh->ahead;
		dh->ahead = t;
		dh->have = true;
		dh->plus = plus;
		dh->next_off = dh->start_off = off;
		ret = 0;
	}
	batch_drop(fs, &dh->ahead, !dh->aerr && dh->aplus);
	dh->astate = AHEAD_NONE;
	return ret;
}

/* Ask for the batch after the current one, unless it is the last. dh->lock
 * held, no read-ahead in flight. */
static void ahead_start(struct kbfs *fs, struct kbfs_dirh *dh, uint64_t node)
{
	const kb_Response *resp = &dh->b.res->resp;
	kb_Request r = kb_Request_init_zero;

	if (resp->eof || !resp->value || resp->cookie == dh->start_off || dh->astate != AHEAD_NONE)
		return;
	r.op = kb_Op_READDIR;
	r.node = node;
	r.fh = dh->remote_fh;
	r.cookie = resp->cookie;
	r.count = KBFS_DIR_BATCH;
	r.plus = dh->plus;
	dh->aoff = r.cookie;
	dh->aplus = dh->plus;
	dh->ahead.gen = kbfs_nodes_gen(fs->nodes);
	pthread_mutex_lock(&dh->alock); /* before submit: the callback may run at once */
	dh->astate = AHEAD_PENDING;
	pthread_mutex_unlock(&dh->alock);
	if (kb_rpc_submit(fs->rpc, &r, NULL, 0, -1, ahead_done, dh) < 0) {
		pthread_mutex_lock(&dh->alock); /* cb will not run */
		dh->astate = AHEAD_NONE;
		pthread_mutex_unlock(&dh->alock);
	}
}

/* The server lost our handle with its session (restart): open the
 * directory again in the new one (re-resolving the node), once per
 * generation. dh->lock held. */
static int reopen(struct kbfs *fs, struct kbfs_dirh *dh, fuse_ino_t ino, uint64_t *remote)
{
	uint64_t gen = kb_rpc_session(fs->rpc, NULL), fh = 0;
	int ret;

	if (gen == dh->gen || !dh->remote_fh)
		return -EBADF;
	ret = kb_rpc_opendir(fs->rpc, *remote, &fh);
	if (kbfs_remap_retry(fs, ino, ret, remote))
		ret = kb_rpc_opendir(fs->rpc, *remote, &fh);
	if (ret < 0)
		return ret;
	dh->remote_fh = fh;
	dh->gen = gen;
	return 0;
}

static int fetch(struct kbfs *fs, struct kbfs_dirh *dh, fuse_ino_t ino, uint64_t off, bool plus)
{
	kb_Request r = kb_Request_init_zero;
	int ret;

	if (ahead_take(fs, dh, off, plus) == 0)
		goto have;
	drop_batch(fs, dh);
	r.op = kb_Op_READDIR;
	r.node = kbfs_node_remote(fs->nodes, ino);
	r.fh = dh->remote_fh;
	r.cookie = off;
	r.count = KBFS_DIR_BATCH;
	r.plus = plus;
	kbfs_list_key_now(fs, ino, r.node, &dh->b.key);
	dh->b.gen = kbfs_nodes_gen(fs->nodes);
	ret = kb_rpc_call(fs->rpc, &r, NULL, 0, dh->b.res);
	if (!dh->remote_fh && kbfs_remap_retry(fs, ino, ret, &r.node)) {
		kb_rpc_result_reset(dh->b.res);
		ret = kb_rpc_call(fs->rpc, &r, NULL, 0, dh->b.res);
	} else if ((ret == -ESTALE || ret == -EBADF) && reopen(fs, dh, ino, &r.node) == 0) {
		r.fh = dh->remote_fh; /* server cookies are the directory's own offsets */
		kb_rpc_result_reset(dh->b.res);
		ret = kb_rpc_call(fs->rpc, &r, NULL, 0, dh->b.res);
	}
	if (ret < 0) {
		kb_rpc_result_reset(dh->b.res);
		return ret;
	}
	dh->have = true;
	dh->plus = plus;
	dh->next_off = dh->start_off = off;
	if (plus && !off) { /* the whole directory in one batch: held (kbfs_list.h) */
		kbfs_list_adopt(fs, &dh->b.key, dh->b.res);
		kbfs_list_walk(fs, ino, r.node); /* and its next siblings, if a walk */
	}
have:
	ahead_start(fs, dh, kbfs_node_remote(fs->nodes, ino));
	return 0;
}

/* Add entry d to buf; 0 when it did not fit. A small regular file handed
 * over is noted in listing order (kbfs_siblings.c). */
static size_t add_entry(fuse_req_t req, struct kbfs_dirh *dh, fuse_ino_t dir, uint64_t dir_remote,
			char *buf, size_t rem, const kb_Dirent *d)
{
	struct kbfs *fs = FS(req);
	struct fuse_entry_param ep = {0};
	size_t need;

	ep.attr.st_ino = d->ino;
	ep.attr.st_mode = (mode_t)d->type << 12;
	if (!dh->plus) {
		need = fuse_add_direntry(req, buf, rem, d->name, &ep.attr, (off_t)d->cookie);
		return need > rem ? 0 : need;
	}
	need = fuse_add_direntry_plus(req, NULL, 0, d->name, NULL, 0);
	if (need > rem)
		return 0;
	if (d->entry.node) {
		ep.ino = kbfs_node_enter(fs->nodes, dir, d->name, &d->entry,
					 NS(fs->o->attr_timeout), dh->b.gen);
		if (!ep.ino) {
			kb_rpc_forget(fs->rpc, d->entry.node, 1);
		} else {
			ep.generation = d->entry.generation;
			ep.attr_timeout = fs->o->attr_timeout;
			ep.entry_timeout = fs->o->entry_timeout;
			kbfs_attr_to_stat(fs, &d->entry.attr, &ep.attr);
			if (S_ISREG(d->entry.attr.mode) && d->entry.attr.size &&
			    d->entry.attr.size <= KBFS_SIBLINGS_MAX)
				kbfs_siblings_add(fs->siblings, dir_remote, d->entry.node);
		}
	}
	return fuse_add_direntry_plus(req, buf, rem, d->name, &ep, (off_t)d->cookie);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct kbfs *fs = FS(req);
	struct kbfs_dirh *dh = (struct kbfs_dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size); /* the reply; freed here */
	uint64_t dir_remote = kbfs_node_remote(fs->nodes, ino);
	size_t used = 0;
	int ret = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&dh->lock);
	/* a directory we hold whole: no round trip (kbfs_list.h) */
	if (!dh->have &&
	    kbfs_list_readdir(fs, req, ino, dir_remote, (uint64_t)off, plus, buf, size, &used)) {
		pthread_mutex_unlock(&dh->lock);
		fuse_reply_buf(req, buf, used);
		free(buf);
		return;
	}
	if (!dh->have || dh->plus != plus || (uint64_t)off != dh->next_off)
		ret = fetch(fs, dh, ino, (uint64_t)off, plus);
	while (ret == 0) {
		int more;
		size_t n;

		while ((more = peek(&dh->b)) == 1) {
			n = add_entry(req, dh, ino, dir_remote, buf + used, size - used,
				      &dh->b.cur);
			if (!n)
				break;
			used += n;
			dh->b.has_cur = false;
			dh->next_off = dh->b.cur.cookie;
		}
		if (more < 0)
			ret = more;
		else if (more == 1 || dh->b.res->resp.eof || dh->next_off == dh->start_off)
			break; /* buffer full, the directory is done, or no progress */
		else
			ret = fetch(fs, dh, ino, dh->next_off, plus);
	}
	pthread_mutex_unlock(&dh->lock);
	if (ret < 0 && used == 0)
		fuse_reply_err(req, -kb_err_to_errno(ret));
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

void kbfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

void kbfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void releasedir_done(void *arg, int status, struct kb_rpc_result *res)
{
	(void)arg;
	(void)status;
	(void)res;
}

void kbfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_dirh *dh = (struct kbfs_dirh *)(uintptr_t)fi->fh;
	kb_Request r = kb_Request_init_zero;

	ahead_take(fs, dh, UINT64_MAX, false); /* waits for it; never matches */
	drop_batch(fs, dh);
	if (!dh->remote_fh) { /* listed without a handle: nothing to release */
		dirh_free(dh);
		fuse_reply_err(req, 0);
		return;
	}
	r.op = kb_Op_RELEASEDIR;
	r.node = kbfs_node_remote(fs->nodes, ino);
	r.fh = dh->remote_fh;
	kb_rpc_submit(fs->rpc, &r, NULL, 0, -1, releasedir_done, NULL);
	dirh_free(dh);
	fuse_reply_err(req, 0);
}
