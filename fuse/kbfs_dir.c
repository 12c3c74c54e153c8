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
#include "kbfs_call.h"
#include "kbfs_list.h"
#include "kbfs_node.h"
#include "kbfs_wb.h"
#include "kbfs_siblings.h"
#include "rpc_api.h"

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

static int opendir_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	return kb_rpc_opendir(fs->rpc, c->node, arg);
}

void kbfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_dirh *dh = dirh_new();
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	uint64_t fh = 0;
	int ret = -ENOMEM;

	if (!dh)
		goto fail;
	/* a server that lists without a handle: no round trip (fh 0) */
	if (kb_rpc_features(fs->rpc) & kb_Features_FEATURE_READDIR_NOFH)
		goto opened;
	ret = kbfs_call(fs, &c, opendir_send, &fh);
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
	r = kb_rpc_dirent_next(res->bulk, res->bulk_len, &b->off, &b->cur);
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

	if (resp->eof || !resp->value || resp->cookie == dh->start_off || dh->astate != AHEAD_NONE)
		return;
	dh->aoff = resp->cookie;
	dh->aplus = dh->plus;
	dh->ahead.gen = kbfs_nodes_gen(fs->nodes);
	pthread_mutex_lock(&dh->alock); /* before submit: the callback may run at once */
	dh->astate = AHEAD_PENDING;
	pthread_mutex_unlock(&dh->alock);
	if (kb_rpc_readdir_async(fs->rpc, node, dh->remote_fh, dh->aoff, KBFS_DIR_BATCH, dh->plus,
				 ahead_done, dh) < 0) {
		pthread_mutex_lock(&dh->alock); /* cb will not run */
		dh->astate = AHEAD_NONE;
		pthread_mutex_unlock(&dh->alock);
	}
}

struct fetch_arg {
	struct kbfs_dirh *dh;
	uint64_t off; /* server cookies are the directory's own offsets */
	bool plus;
};

/* The directory's handle for kbfs_call. The server lost it with its
 * session (restart): open the directory again in the new one (the node
 * re-resolved), once per generation. dh->lock held. */
static int dir_handle(struct kbfs *fs, struct kbfs_call *c, void *arg, uint64_t *sgen)
{
	struct kbfs_dirh *dh = ((struct fetch_arg *)arg)->dh;
	uint64_t gen = kb_rpc_session(fs->rpc, NULL), fh = 0;
	struct kbfs_call oc = KBFS_CALL_NODE(c->ino);

	if (dh->remote_fh && gen != dh->gen) {
		if (kbfs_call(fs, &oc, opendir_send, &fh) < 0)
			return -EBADF; /* what the old handle gets */
		dh->remote_fh = fh;
		dh->gen = gen;
		c->node = oc.node;
	}
	c->fh = dh->remote_fh;
	if (c->fh) /* else listed by node (FEATURE_READDIR_NOFH) */
		*sgen = dh->gen;
	return 0;
}

static int readdir_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct fetch_arg *a = arg;

	kb_rpc_result_reset(a->dh->b.res);
	if (kbfs_wb_on(fs) && a->plus && !a->off) /* ours alone? write-behind there */
		return kb_rpc_readdir_lease(fs->rpc, c->node, c->fh, KBFS_DIR_BATCH, a->dh->b.res);
	return kb_rpc_readdir(fs->rpc, c->node, c->fh, a->off, KBFS_DIR_BATCH, a->plus,
			      a->dh->b.res);
}

static int fetch(struct kbfs *fs, struct kbfs_dirh *dh, fuse_ino_t ino, uint64_t off, bool plus)
{
	struct kbfs_call c = {.ino = ino, .handle = dir_handle};
	struct fetch_arg a = {.dh = dh, .off = off, .plus = plus};
	int ret;

	if (ahead_take(fs, dh, off, plus) == 0)
		goto have;
	drop_batch(fs, dh);
	kbfs_list_key_now(fs, ino, kbfs_node_remote(fs->nodes, ino), &dh->b.key);
	dh->b.gen = kbfs_nodes_gen(fs->nodes);
	ret = kbfs_call(fs, &c, readdir_send, &a);
	if (ret < 0) {
		kb_rpc_result_reset(dh->b.res);
		return ret;
	}
	dh->have = true;
	dh->plus = plus;
	dh->next_off = dh->start_off = off;
	if (plus && !off) { /* the whole directory in one batch: held (kbfs_list.h) */
		kbfs_wb_listed(fs, ino, c.node, dh->b.res->resp.dir_lease, dh->b.res,
			       dh->b.key.kids);
		kbfs_list_adopt(fs, &dh->b.key, dh->b.res);
		kbfs_list_walk(fs, ino, c.node); /* and its next siblings, if a walk */
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

	ep.attr.st_ino = kbfs_nodes_shown_ino(fs->nodes, d->ino);
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

void kbfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_dirh *dh = (struct kbfs_dirh *)(uintptr_t)fi->fh;

	ahead_take(fs, dh, UINT64_MAX, false); /* waits for it; never matches */
	drop_batch(fs, dh);
	if (!dh->remote_fh) { /* listed without a handle: nothing to release */
		dirh_free(dh);
		fuse_reply_err(req, 0);
		return;
	}
	kb_rpc_release_async(fs->rpc, kbfs_node_remote(fs->nodes, ino), dh->remote_fh, true);
	dirh_free(dh);
	fuse_reply_err(req, 0);
}
