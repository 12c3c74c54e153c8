/* kbfs_write.c - the write path: open for writing, create, pipelined
 * writes, flush, fsync, release, fallocate, copy_file_range, lseek.
 *
 * A FUSE write becomes one asynchronous WRITE (kb_rpc_write_async encrypts
 * the bytes into its frame before it returns, so libfuse may reuse its
 * buffer); the completion replies to the kernel from the rpc receiver
 * thread. The worker is free at once, so several writes of a file are in
 * flight (the kernel's writeback sends them in parallel). Each open file
 * counts its writes in flight and keeps the first error no reply could
 * carry (a short write); flush, fsync and release wait until none is in
 * flight, and flush and fsync report (and clear) that error. fsync then
 * asks the server for FSYNC, which returns only once the data is durable
 * there.
 *
 * A new session (server restart, or ours expired during an outage) makes
 * the file's server handle meaningless: kbfs_file_handle (kbfs_call.c)
 * reopens it (by node, re-resolved by parent and name) the first time the
 * file is used in the new session; kbfs_call sends the synchronous calls
 * again on it. Each WRITE keeps a copy of the kernel's bytes until
 * it is answered: one re-sent on a new connection carries the same bytes
 * (libfuse reuses its buffer once kbfs_write returns), and one that was
 * sent on a handle of an older session (answered EBADF/ESTALE by the new
 * one) is sent again on the reopened handle from a thread of its own. A
 * file that cannot be reopened (deleted or replaced meanwhile) fails every
 * later write, fsync and flush (f->lost); nothing is dropped silently.
 *
 * Every completed change of a file's data drops its blocks from our block
 * cache (pulls under way are detached, so none publishes older bytes) and
 * marks the node so that its next version is adopted as the kernel page
 * cache's: the kernel already holds what we wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_call.h"
#include "kbfs_node.h"
#include "kbfs_wb.h"
#include "rpc_api.h"
#include "util.h"

#define FILE_OF(fi) ((struct kbfs_file *)(uintptr_t)(fi)->fh)

/* Flags the server may see at OPEN/CREATE (it masks them again). */
#define KBFS_OPEN_FLAGS (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_EXCL)

struct kbfs_file *kbfs_file_new(uint64_t ino, uint64_t remote, uint64_t version, uint64_t size)
{
	struct kbfs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->reopen_lock, NULL);
	pthread_cond_init(&f->idle, NULL);
	f->ino = ino;
	f->remote = remote;
	f->version = version;
	f->size = size;
	return f;
}

void kbfs_file_free(struct kbfs_file *f)
{
	if (!f)
		return;
	pthread_cond_destroy(&f->idle);
	pthread_mutex_destroy(&f->reopen_lock);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* A write-behind file holds its node until its last write is answered
 * (the kernel may forget the node once the file is closed). */
static void wb_file_free(struct kbfs *fs, struct kbfs_file *f)
{
	fuse_ino_t ino = f->ino;

	kbfs_file_free(f);
	kbfs_node_hold(fs->nodes, ino, -1);
}

void kbfs_file_own_change(struct kbfs *fs, fuse_ino_t ino, bool data)
{
	if (data)
		kb_cache_invalidate(fs->cache, ino, 0);
	kbfs_node_own_change(fs->nodes, ino);
	kbfs_quiet_node(fs, ino);
}

/* Keep the first error; a real one replaces a guessed one. Lock held. */
static void file_err_locked(struct kbfs_file *f, int err, bool guess)
{
	if (!f->err || (f->err_guess && !guess)) {
		f->err = err;
		f->err_guess = guess;
	}
}

/* Wait until no WRITE of f is in flight; returns (and clears) the error
 * stored for it. */
int kbfs_file_drain(struct kbfs_file *f, bool take_err)
{
	int err;

	pthread_mutex_lock(&f->lock);
	while (f->inflight)
		pthread_cond_wait(&f->idle, &f->lock);
	err = f->err;
	if (take_err)
		f->err = 0;
	pthread_mutex_unlock(&f->lock);
	return err;
}

/* Nobody waits for a RELEASE: the handle dies with the session anyway. */
static void release_remote(struct kbfs *fs, uint64_t remote, uint64_t fh)
{
	if (fh)
		kb_rpc_release_async(fs->rpc, remote, fh, false);
}

static uint32_t open_flags(const struct kbfs *fs, int flags)
{
	uint32_t fl = (uint32_t)flags & KBFS_OPEN_FLAGS;

	/* With the writeback cache the kernel places appends itself (it
	 * owns the size): an O_APPEND descriptor on the server would move
	 * every page written back to the end. */
	if (fs->writeback)
		fl &= ~(uint32_t)O_APPEND;
	return fl;
}

struct open_arg {
	uint32_t flags, set_mask;
	uint64_t fh;
	uint64_t sgen; /* before it was sent: a handle of a newer one is reopened */
};

static int open_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct open_arg *a = arg;

	a->sgen = kb_rpc_gen(fs->rpc);
	return kb_rpc_open_mask(fs->rpc, c->node, a->flags, a->set_mask, &a->fh, NULL);
}

void kbfs_open_rw(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = KBFS_CALL_NODE(ino);
	struct open_arg o = {.flags = open_flags(fs, fi->flags) & ~(uint32_t)O_EXCL};
	uint64_t remote, version, fh;
	struct kbfs_file *f = NULL;
	kb_Attr a;
	int ret;

	if (kbfs_rofs(req) || kbfs_wb_refuse(req, ino, 0))
		return;
	if ((fi->flags & O_TRUNC) && kbfs_devio_kill_suidgid())
		o.set_mask = kb_SetMask_SET_KILL_SUIDGID;
	ret = kbfs_call(fs, &c, open_send, &o);
	remote = c.node;
	fh = o.fh;
	if (ret < 0)
		goto fail;
	if (fi->flags & O_TRUNC)
		kbfs_file_own_change(fs, ino, true);
	ret = kbfs_attr_now(fs, ino, &a, &version);
	if (ret < 0)
		goto fail;
	ret = -ENOMEM;
	f = kbfs_file_new(ino, remote, version, a.size);
	if (!f)
		goto fail;
	f->remote_fh = fh;
	f->sgen = o.sgen;
	f->oflags = open_flags(fs, fi->flags) & ~(uint32_t)(O_EXCL | O_TRUNC);
	f->writer = true;
	f->wb = kbfs_node_wb_attr(fs->nodes, ino, &a); /* ours: write-behind */
	if (f->wb)
		kbfs_node_hold(fs->nodes, ino, 1);
	kbfs_node_writers(fs->nodes, ino, 1);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = kbfs_node_open_version(fs->nodes, ino, version);
	if (!fi->keep_cache)
		kb_cache_invalidate(fs->cache, ino, version);
	if (fuse_reply_open(req, fi) != 0) {
		kbfs_node_writers(fs->nodes, ino, -1);
		release_remote(fs, remote, fh);
		if (f->wb)
			wb_file_free(fs, f);
		else
			kbfs_file_free(f);
	}
	return;
fail:
	release_remote(fs, remote, fh);
	kbfs_reply_err(req, ret);
}

struct create_arg {
	const char *name;
	uint32_t flags, mode;
	const kb_Creds *who; /* NULL or &creds */
	kb_Creds creds;
	kb_Entry e;
	uint64_t fh;
	uint64_t sgen; /* before it was sent */
};

static int create_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct create_arg *a = arg;

	kbfs_name_touched(fs, c->node, a->name, true);
	a->sgen = kb_rpc_gen(fs->rpc);
	return kb_rpc_create(fs->rpc, c->node, a->name, a->flags, a->mode, a->who, &a->e, &a->fh);
}

/* A CREATE decided here (kbfs_wb_create gave o->e): the node, the file
 * (its handle's id is the node's), the CREATE queued, the reply. false:
 * it could not be queued after all: ask the server. */
static bool create_here(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			struct fuse_file_info *fi, struct create_arg *o)
{
	struct kbfs *fs = FS(req);
	struct fuse_entry_param ep = {0};
	struct kbfs_file *f;
	uint64_t remote, count;
	int ret;

	ep.ino = kbfs_node_enter(fs->nodes, parent, name, &o->e, NS(fs->o->attr_timeout),
				 UINT64_MAX);
	f = ep.ino ? kbfs_file_new(ep.ino, o->e.node, kbfs_attr_version(&o->e.attr), 0) : NULL;
	ret = f ? kbfs_wb_created(fs, req, parent, name, o->flags, mode, &o->e, ep.ino) : -ENOMEM;
	if (ret) {
		if (ep.ino) /* never on the server: nothing to FORGET there */
			kbfs_node_forget(fs->nodes, ep.ino, 1, &remote, &count);
		kbfs_file_free(f);
		if (ret == -EAGAIN)
			return false;
		kbfs_reply_err(req, ret);
		return true;
	}
	f->remote_fh = o->e.node;
	f->sgen = kb_rpc_gen(fs->rpc);
	f->oflags = o->flags & ~(uint32_t)(O_EXCL | O_TRUNC);
	f->writer = true;
	f->wb = true;
	kbfs_node_hold(fs->nodes, ep.ino, 1);
	kbfs_node_writers(fs->nodes, ep.ino, 1);
	ep.attr_timeout = fs->o->attr_timeout;
	ep.entry_timeout = fs->o->entry_timeout;
	kbfs_attr_to_stat(fs, &o->e.attr, &ep.attr);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = kbfs_node_open_version(fs->nodes, ep.ino, f->version);
	if (fuse_reply_create(req, &ep, fi) != 0) { /* the kernel never got it: close it */
		kbfs_node_writers(fs->nodes, ep.ino, -1);
		release_remote(fs, o->e.node, f->remote_fh);
		kbfs_forget_node(fs, ep.ino, 1);
		wb_file_free(fs, f);
	}
	return true;
}

void kbfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = KBFS_CALL_NODE(parent);
	struct fuse_entry_param ep = {0};
	struct create_arg o = {.name = name, .mode = mode}; /* the kernel applied the umask */
	struct kbfs_file *f;
	int ret;

	if (kbfs_rofs(req) || kbfs_wb_refuse(req, parent, 0))
		return;
	if (strlen(name) > KB_RPC_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	o.who = kbfs_creds(req, &o.creds);
	o.flags = open_flags(fs, fi->flags);
	ret = kbfs_wb_create(req, parent, name, o.flags, mode, &o.e);
	if (ret == 1 && create_here(req, parent, name, mode, fi, &o))
		return;
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	ret = kbfs_call(fs, &c, create_send, &o);
	kbfs_nodes_outdate_attrs(fs->nodes); /* the parent's attributes */
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	ep.ino = kbfs_node_enter(fs->nodes, parent, name, &o.e, NS(fs->o->attr_timeout),
				 UINT64_MAX);
	f = ep.ino ? kbfs_file_new(ep.ino, o.e.node, kbfs_attr_version(&o.e.attr), o.e.attr.size)
		   : NULL;
	if (!f) {
		release_remote(fs, o.e.node, o.fh);
		if (ep.ino)
			kbfs_forget_node(fs, ep.ino, 1);
		else
			kb_rpc_forget(fs->rpc, o.e.node, 1);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	f->remote_fh = o.fh;
	f->sgen = o.sgen;
	f->oflags = open_flags(fs, fi->flags) & ~(uint32_t)(O_EXCL | O_TRUNC);
	f->writer = true;
	kbfs_node_writers(fs->nodes, ep.ino, 1);
	if (fi->flags & O_TRUNC)
		kbfs_file_own_change(fs, ep.ino, true);
	ep.generation = o.e.generation;
	ep.attr_timeout = fs->o->attr_timeout;
	ep.entry_timeout = fs->o->entry_timeout;
	kbfs_attr_to_stat(fs, &o.e.attr, &ep.attr);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = kbfs_node_open_version(fs->nodes, ep.ino, f->version);
	if (fuse_reply_create(req, &ep, fi) != 0) { /* the kernel never got it */
		kbfs_node_writers(fs->nodes, ep.ino, -1);
		release_remote(fs, f->remote, f->remote_fh);
		kbfs_forget_node(fs, ep.ino, 1);
		kbfs_file_free(f);
	}
}

/* One WRITE in flight; freed by its completion. */
struct kbfs_wr {
	struct kbfs *fs;
	struct kbfs_file *f;
	fuse_req_t req;
	size_t size;
	uint64_t off;
	uint32_t set_mask;        /* SET_KILL_SUIDGID, decided at the first send */
	uint64_t sgen;            /* session generation of the handle it went on */
	unsigned redos;           /* sent again on a reopened handle */
	struct kbfs_wr_ticket tk; /* kbfs_node_write_start */
	kb_Creds creds;           /* the writer's (owners=preserve), taken at once: */
	const kb_Creds *who;      /* req may be answered (write-behind) before it is sent */
	uint8_t data[];           /* the kernel's bytes (owned: re-sent as needed) */
};

#define KBFS_WR_REDOS 8 /* sessions one WRITE follows before it fails */

/* A WRITE answered (attributes after it in a, or NULL): as kbfs_file_own_change. */
static void wrote(struct kbfs *fs, fuse_ino_t ino, const struct kbfs_wr_ticket *tk,
		  const kb_Attr *a)
{
	kb_cache_invalidate(fs->cache, ino, 0);
	kbfs_node_write_done(fs->nodes, ino, tk, a, NS(fs->o->attr_timeout));
	kbfs_quiet_node(fs, ino);
}

/* The WRITE is over: reply to the kernel, count it out, free it. */
static void wr_finish(struct kbfs_wr *w, int status, struct kb_rpc_result *res)
{
	struct kbfs_file *f = w->f;
	size_t n = status == 0 && res ? (size_t)KB_MIN(res->resp.value, (uint64_t)w->size) : 0;

	const kb_Attr *a = status == 0 && res && res->resp.has_attr ? &res->resp.attr : NULL;
	bool free_f;

	if (f->wb) /* its attributes are ours until its last change is answered */
		kbfs_node_wb_end(w->fs->nodes, f->remote, status, a, NS(w->fs->o->attr_timeout));
	wrote(w->fs, f->ino, &w->tk, f->wb ? NULL : a);
	if (!w->req && status < 0) /* answered already (write-behind): fsync, close say it */
		kbfs_wb_write_failed(w->fs, f->ino, status);
	else if (!w->req)
		;
	else if (status < 0)
		kbfs_reply_err(w->req, status);
	else
		fuse_reply_write(w->req, n);
	pthread_mutex_lock(&f->lock);
	/* A short count is all a reply can say; the bytes after it were not
	 * written, which the kernel's writeback would not notice. */
	if (status < 0)
		file_err_locked(f, kb_err_to_errno(status), false);
	else if (n < w->size)
		file_err_locked(f, -EIO, true);
	if (--f->inflight == 0)
		pthread_cond_broadcast(&f->idle);
	free_f = f->released && !f->inflight; /* a wb file closed meanwhile */
	pthread_mutex_unlock(&f->lock);       /* f may be freed from here on */
	if (free_f)
		wb_file_free(w->fs, f);
	free(w);
}

static void write_done(void *arg, int status, struct kb_rpc_result *res);

/* Send w on f's handle (reopened first in a new session). 0: write_done
 * will run; <0: it will not. */
static int wr_send(struct kbfs_wr *w)
{
	struct kbfs *fs = w->fs;
	struct kb_rpc_write wr = {
		.off = w->off, .data = w->data, .len = w->size, .set_mask = w->set_mask};
	int ret = kbfs_file_handle(fs, w->f, &wr.node, &wr.fh, &w->sgen);

	if (ret < 0)
		return ret;
	if (!wr.fh)
		return -EBADF;
	wr.who = w->who;
	wr.sgen = w->sgen;
	if (kbfs_node_kernel_mtime(fs->nodes, w->f->ino, &wr.mtime, &wr.mtime_ns))
		wr.set_mask |= kb_SetMask_SET_MTIME; /* keep the kernel's mtime (kbfs_node.h) */
	/* Spread a large file's writes over the connections (the server
	 * writes them in parallel); pwrite at offsets needs no ordering. */
	return kb_rpc_write_async(fs->rpc, &wr, (int)((w->off >> fs->block_shift) % fs->conns),
				  write_done, w);
}

/* A WRITE sent on a handle of an older session: send it again on the
 * reopened handle, from a thread of our own (the reopen makes synchronous
 * calls, which the rpc receiver we run on must not). */
static void *wr_redo_main(void *arg)
{
	struct kbfs_wr *w = arg;
	int ret = wr_send(w);

	if (ret < 0)
		wr_finish(w, ret, NULL);
	return NULL;
}

static void write_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct kbfs_wr *w = arg;
	pthread_attr_t at;
	pthread_t th;
	bool ok;

	if (!kbfs_call_handle_old(w->fs, status, w->sgen) || w->redos >= KBFS_WR_REDOS) {
		wr_finish(w, status, res);
		return;
	}
	w->redos++;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&th, &at, wr_redo_main, w) == 0;
	pthread_attr_destroy(&at);
	if (!ok)
		wr_finish(w, -EIO, NULL);
}

void kbfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = FILE_OF(fi);
	struct kbfs_wr *w;
	bool early;
	int ret;

	if (kbfs_rofs(req) || kbfs_wb_refuse(req, ino, 0))
		return;
	if (!f->remote_fh || off < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* init() capped max_write at this; a larger one is written short */
	size = KB_MIN(size, kb_rpc_max_write(fs->rpc));
	w = malloc(sizeof(*w) + size);
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*w = (struct kbfs_wr){.fs = fs, .f = f, .req = req, .size = size, .off = (uint64_t)off};
	memcpy(w->data, buf, size);
	w->who = kbfs_creds(req, &w->creds);
	if (w->who)
		w->who = &w->creds;
	if (kbfs_devio_kill_suidgid()) /* a writer without CAP_FSETID */
		w->set_mask = kb_SetMask_SET_KILL_SUIDGID;
	pthread_mutex_lock(&f->lock);
	f->inflight++;
	pthread_mutex_unlock(&f->lock);
	kbfs_node_write_start(fs->nodes, f->ino, &w->tk);
	/* In the stream: answered now, when the share has room for it (else
	 * ENOSPC must come back to write(2) itself); its error, if any, comes
	 * at fsync and close. */
	/* free space known: the share's own filesystem's */
	early = f->wb && !kbfs_node_no_lease(fs->nodes, ino) && kbfs_wb_early(fs, size);
	if (early)
		w->req = NULL;
	if (f->wb)
		kbfs_node_wb_begin(fs->nodes, f->ino);
	ret = wr_send(w);
	if (ret < 0) { /* not accepted: write_done will not run */
		wr_finish(w, ret, NULL);
		if (early)
			kbfs_reply_err(req, ret);
		return;
	}
	if (early) {
		kbfs_wb_wrote(fs, ino, (uint64_t)off + size);
		fuse_reply_write(req, size);
	}
}

/* close(): with the writeback cache the kernel wrote its dirty pages back
 * before it sends FLUSH; report what went wrong with them. Nothing to ask
 * the server (we take no POSIX locks there). */
void kbfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs_file *f = FILE_OF(fi);
	int err;

	if (f->wb) { /* not waited for: an error already known, else at fsync */
		pthread_mutex_lock(&f->lock);
		err = f->err ? f->err : f->lost;
		f->err = 0;
		pthread_mutex_unlock(&f->lock);
		if (!err)
			err = kbfs_node_wb_error(FS(req)->nodes, ino);
		kbfs_reply_err(req, err);
		return;
	}
	err = kbfs_file_drain(f, true);
	if (!err) {
		pthread_mutex_lock(&f->lock);
		err = f->lost;
		pthread_mutex_unlock(&f->lock);
	}
	kbfs_reply_err(req, err);
}

static int fsync_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	return kb_rpc_fsync(fs->rpc, c->node, c->fh, *(const int *)arg != 0);
}

void kbfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = FILE_OF(fi);
	struct kbfs_call c = {.f = f};
	int err, ret;

	/* a file in the stream: everything queued before, on which it may
	 * depend, answered first (its own writes are in there too) */
	err = f->wb ? kbfs_wb_wait(fs, ino) : 0;
	ret = kbfs_file_drain(f, true);
	err = err ? err : ret;
	ret = kbfs_call(fs, &c, fsync_send, &datasync);
	kbfs_reply_err(req, err ? err : ret);
}

void kbfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = FILE_OF(fi);

	bool free_f = true;

	if (!f->wb)
		kbfs_file_drain(f, false);
	if (f->writer)
		kbfs_node_writers(fs->nodes, ino, -1);
	if (f->sgen == kb_rpc_gen(fs->rpc)) /* else it died with its session */
		release_remote(fs, f->remote, f->remote_fh);
	if (f->wb) { /* its writes may be in flight: the last one frees it */
		pthread_mutex_lock(&f->lock);
		f->released = true;
		free_f = !f->inflight;
		pthread_mutex_unlock(&f->lock);
		if (free_f)
			wb_file_free(fs, f);
		free_f = false;
	}
	if (free_f)
		kbfs_file_free(f);
	fuse_reply_err(req, 0);
}

struct fallocate_arg {
	uint32_t mode;
	uint64_t off, len;
	const kb_Creds *who; /* NULL or &creds */
	kb_Creds creds;
};

static int fallocate_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct fallocate_arg *a = arg;

	if (!c->fh)
		return -EBADF;
	return kb_rpc_fallocate(fs->rpc, c->node, c->fh, a->mode, a->off, a->len, a->who);
}

void kbfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		    struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = {.f = FILE_OF(fi)};
	struct fallocate_arg a = {.mode = (uint32_t)mode};
	int ret;

	if (kbfs_rofs(req) || kbfs_wb_refuse(req, ino, 0))
		return;
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	a.who = kbfs_creds(req, &a.creds);
	a.off = (uint64_t)off;
	a.len = (uint64_t)len;
	ret = kbfs_call(fs, &c, fallocate_send, &a);
	if (ret == 0)
		kbfs_file_own_change(fs, ino, true);
	kbfs_reply_err(req, ret);
}

struct copy_arg {
	uint64_t off_in, off_out, len;
	uint32_t flags;
	uint64_t copied;
};

static int copy_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct copy_arg *a = arg;

	if (!c->fh2)
		return -EBADF;
	return kb_rpc_copy_range(fs->rpc, c->node, c->fh, a->off_in, c->node2, c->fh2, a->off_out,
				 a->len, a->flags, &a->copied);
}

/* A copy inside the mount is done by the server: no data crosses the wire.
 * (The kernel wrote back the dirty pages of both ranges first, and drops
 * the destination range from its cache after.) */
void kbfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			  struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			  struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct kbfs *fs = FS(req);
	/* the source's handle opened read-only now when it has none */
	struct kbfs_call c = {.f = FILE_OF(fi_in), .open_ro = true, .f2 = FILE_OF(fi_out)};
	struct copy_arg a = {.off_in = (uint64_t)off_in,
			     .off_out = (uint64_t)off_out,
			     .len = len,
			     .flags = (uint32_t)flags};
	int ret;

	(void)ino_in;
	if (kbfs_rofs(req) || kbfs_wb_refuse(req, ino_out, 0))
		return;
	ret = off_in < 0 || off_out < 0 ? -EINVAL : kbfs_call(fs, &c, copy_send, &a);
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	kbfs_file_own_change(fs, ino_out, true);
	fuse_reply_write(req, (size_t)KB_MIN(a.copied, (uint64_t)len));
}

struct lseek_arg {
	uint64_t off;
	uint32_t whence;
	uint64_t pos;
};

static int lseek_send(struct kbfs *fs, const struct kbfs_call *c, void *arg)
{
	struct lseek_arg *a = arg;

	/* fh 0: the server's read-only descriptor */
	return kb_rpc_lseek(fs->rpc, c->node, c->fh, a->off, a->whence, &a->pos);
}

void kbfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_call c = {.f = FILE_OF(fi)};
	struct lseek_arg a = {.off = off < 0 ? 0 : (uint64_t)off, .whence = (uint32_t)whence};
	int ret;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL); /* the kernel does SET/CUR/END itself */
		return;
	}
	/* Under the writeback cache, a file open for writing may have dirty
	 * pages the server has not seen, and the kernel does not write them
	 * back before LSEEK: the server's answer could call data a hole (and
	 * cp would then copy zeros). Refuse rather than answer wrong; cp and
	 * friends fall back to reading. (ENOSYS would turn LSEEK off for the
	 * whole mount.) */
	if (fs->writeback && kbfs_node_writers(fs->nodes, ino, 0)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	ret = off < 0 ? -ENXIO : kbfs_call(fs, &c, lseek_send, &a);
	if (ret < 0)
		kbfs_reply_err(req, ret);
	else
		fuse_reply_lseek(req, (off_t)a.pos);
}
