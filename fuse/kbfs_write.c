/* kbfs_write.c - the write path: open for writing, create, pipelined
 * writes, flush, fsync, release, fallocate, copy_file_range, lseek.
 *
 * A FUSE write becomes one asynchronous WRITE (kb_rpc_submit encrypts the
 * bytes into its frame before it returns, so libfuse may reuse its buffer);
 * the completion replies to the kernel from the rpc receiver thread. The
 * worker is free at once, so several writes of a file are in flight (the
 * kernel's writeback sends them in parallel). Each open file counts its
 * writes in flight and keeps the first error no reply could carry (a short
 * write); flush, fsync and release wait until none is in flight, and flush
 * and fsync report (and clear) that error. fsync then asks the server for
 * FSYNC, which returns only once the data is durable there.
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
#include "kbfs_node.h"
#include "rpc.h"
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
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void kbfs_changed(struct kbfs *fs, fuse_ino_t ino, bool data)
{
	if (data)
		kb_cache_invalidate(fs->cache, ino, 0);
	kbfs_node_changed(fs->nodes, ino);
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

static void ignore_done(void *arg, int status, struct kb_rpc_result *res)
{
	(void)arg, (void)status, (void)res;
}

/* Nobody waits for a RELEASE: the handle dies with the session anyway. */
static void release_remote(struct kbfs *fs, uint64_t remote, uint64_t fh)
{
	kb_Request r = kb_Request_init_zero;

	if (!fh)
		return;
	r.op = kb_Op_RELEASE;
	r.node = remote;
	r.fh = fh;
	kb_rpc_submit(fs->rpc, &r, NULL, 0, -1, ignore_done, NULL);
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

void kbfs_open_rw(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	uint64_t remote = kbfs_node_remote(fs->nodes, ino), version, fh = 0;
	struct kbfs_file *f = NULL;
	kb_Attr a;
	int ret;

	if (kbfs_rofs(req))
		return;
	ret = kb_rpc_open_mask(fs->rpc, remote, open_flags(fs, fi->flags) & ~(uint32_t)O_EXCL,
			       (fi->flags & O_TRUNC) && kbfs_dev_kill_suidgid() ?
			       kb_SetMask_SET_KILL_SUIDGID : 0, &fh, NULL);
	if (ret < 0)
		goto fail;
	if (fi->flags & O_TRUNC)
		kbfs_changed(fs, ino, true);
	ret = kbfs_attr_now(fs, ino, &a, &version);
	if (ret < 0)
		goto fail;
	ret = -ENOMEM;
	f = kbfs_file_new(ino, remote, version, a.size);
	if (!f)
		goto fail;
	f->remote_fh = fh;
	f->writer = true;
	kbfs_node_writers(fs->nodes, ino, 1);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = kbfs_node_open_version(fs->nodes, ino, version);
	if (!fi->keep_cache)
		kb_cache_invalidate(fs->cache, ino, version);
	if (fuse_reply_open(req, fi) != 0) {
		kbfs_node_writers(fs->nodes, ino, -1);
		release_remote(fs, remote, fh);
		kbfs_file_free(f);
	}
	return;
fail:
	release_remote(fs, remote, fh);
	kbfs_reply_err(req, ret);
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

static void forget_ino(struct kbfs *fs, uint64_t ino)
{
	uint64_t remote, count;

	kbfs_node_forget(fs->nodes, ino, 1, &remote, &count);
	if (count)
		kb_rpc_forget(fs->rpc, remote, count);
}

void kbfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	kb_Request r = kb_Request_init_zero;
	struct fuse_entry_param ep = {0};
	struct create_out o = {0};
	struct kbfs_file *f;
	int ret;

	if (kbfs_rofs(req))
		return;
	if (strlen(name) >= sizeof(r.name)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	r.op = kb_Op_CREATE;
	kbfs_creds(req, &r);
	r.node = kbfs_node_remote(fs->nodes, parent);
	strcpy(r.name, name);
	kbfs_name_touched(fs, r.node, name, true);
	r.flags = open_flags(fs, fi->flags);
	r.mode = mode; /* the kernel applied the umask */
	ret = kb_rpc_call_take(fs->rpc, &r, NULL, 0, take_create, &o);
	kbfs_nodes_changed(fs->nodes); /* the parent's attributes */
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	ep.ino = kbfs_node_enter(fs->nodes, parent, name, &o.e, NS(fs->o->attr_timeout),
				 UINT64_MAX);
	f = ep.ino ? kbfs_file_new(ep.ino, o.e.node, kbfs_attr_version(&o.e.attr),
				   o.e.attr.size) : NULL;
	if (!f) {
		release_remote(fs, o.e.node, o.fh);
		if (ep.ino)
			forget_ino(fs, ep.ino);
		else
			kb_rpc_forget(fs->rpc, o.e.node, 1);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	f->remote_fh = o.fh;
	f->writer = true;
	kbfs_node_writers(fs->nodes, ep.ino, 1);
	if (fi->flags & O_TRUNC)
		kbfs_changed(fs, ep.ino, true);
	ep.generation = o.e.generation;
	ep.attr_timeout = fs->o->attr_timeout;
	ep.entry_timeout = fs->o->entry_timeout;
	kbfs_attr_to_stat(fs, &o.e.attr, &ep.attr);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = kbfs_node_open_version(fs->nodes, ep.ino, f->version);
	if (fuse_reply_create(req, &ep, fi) != 0) { /* the kernel never got it */
		kbfs_node_writers(fs->nodes, ep.ino, -1);
		release_remote(fs, f->remote, f->remote_fh);
		forget_ino(fs, ep.ino);
		kbfs_file_free(f);
	}
}

/* One WRITE in flight; freed by its completion. */
struct kbfs_wr {
	struct kbfs *fs;
	struct kbfs_file *f;
	fuse_req_t req;
	size_t size;
	struct kbfs_wr_ticket tk; /* kbfs_node_write_start */
};

/* A WRITE answered (attributes after it in a, or NULL): as kbfs_changed. */
static void wrote(struct kbfs *fs, fuse_ino_t ino, const struct kbfs_wr_ticket *tk,
		  const kb_Attr *a)
{
	kb_cache_invalidate(fs->cache, ino, 0);
	kbfs_node_write_done(fs->nodes, ino, tk, a, NS(fs->o->attr_timeout));
	kbfs_quiet_node(fs, ino);
}

static void write_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct kbfs_wr *w = arg;
	struct kbfs_file *f = w->f;
	size_t n = status == 0 && res ? (size_t)KB_MIN(res->resp.value, (uint64_t)w->size) : 0;

	wrote(w->fs, f->ino, &w->tk, status == 0 && res && res->resp.has_attr ?
				     &res->resp.attr : NULL);
	if (status < 0)
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
	pthread_mutex_unlock(&f->lock); /* f may be freed from here on */
	free(w);
}

void kbfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = FILE_OF(fi);
	kb_Request r = kb_Request_init_zero;
	struct kbfs_wr *w;
	int ret;

	(void)ino;
	if (kbfs_rofs(req))
		return;
	if (!f->remote_fh || off < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* init() capped max_write at this; a larger one is written short */
	size = KB_MIN(size, kb_rpc_max_write(fs->rpc));
	w = malloc(sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*w = (struct kbfs_wr){.fs = fs, .f = f, .req = req, .size = size};
	r.op = kb_Op_WRITE;
	kbfs_creds(req, &r);
	if (kbfs_dev_kill_suidgid()) /* a writer without CAP_FSETID */
		r.set_mask = kb_SetMask_SET_KILL_SUIDGID;
	r.node = f->remote;
	r.fh = f->remote_fh;
	r.offset = (uint64_t)off;
	pthread_mutex_lock(&f->lock);
	f->inflight++;
	pthread_mutex_unlock(&f->lock);
	kbfs_node_write_start(fs->nodes, f->ino, &w->tk);
	/* Spread a large file's writes over the connections (the server
	 * writes them in parallel); pwrite at offsets needs no ordering. */
	ret = kb_rpc_submit(fs->rpc, &r, buf, size, (int)(((uint64_t)off >> fs->block_shift) %
							   fs->conns), write_done, w);
	if (ret < 0) { /* not accepted: write_done will not run */
		wrote(fs, f->ino, &w->tk, NULL);
		pthread_mutex_lock(&f->lock);
		if (--f->inflight == 0)
			pthread_cond_broadcast(&f->idle);
		pthread_mutex_unlock(&f->lock);
		free(w);
		kbfs_reply_err(req, ret);
	}
}

/* close(): with the writeback cache the kernel wrote its dirty pages back
 * before it sends FLUSH; report what went wrong with them. Nothing to ask
 * the server (we take no POSIX locks there). */
void kbfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	kbfs_reply_err(req, kbfs_file_drain(FILE_OF(fi), true));
}

void kbfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = FILE_OF(fi);
	kb_Request r = kb_Request_init_zero;
	int err = kbfs_file_drain(f, true), ret;

	r.op = kb_Op_FSYNC;
	r.node = kbfs_node_remote(fs->nodes, ino);
	r.fh = f->remote_fh;
	r.flags = datasync ? 1 : 0;
	ret = kb_rpc_call_take(fs->rpc, &r, NULL, 0, NULL, NULL);
	kbfs_reply_err(req, err ? err : ret);
}

void kbfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = FILE_OF(fi);

	kbfs_file_drain(f, false);
	if (f->writer)
		kbfs_node_writers(fs->nodes, ino, -1);
	release_remote(fs, f->remote, f->remote_fh);
	kbfs_file_free(f);
	fuse_reply_err(req, 0);
}

void kbfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		    struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = FILE_OF(fi);
	kb_Request r = kb_Request_init_zero;
	int ret;

	if (kbfs_rofs(req))
		return;
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	r.op = kb_Op_FALLOCATE;
	kbfs_creds(req, &r);
	r.node = f->remote;
	r.fh = f->remote_fh;
	r.flags = (uint32_t)mode;
	r.offset = (uint64_t)off;
	r.length = (uint64_t)len;
	ret = f->remote_fh ? kb_rpc_call_take(fs->rpc, &r, NULL, 0, NULL, NULL) : -EBADF;
	if (ret == 0)
		kbfs_changed(fs, ino, true);
	kbfs_reply_err(req, ret);
}

/* The server handle of f, opened read-only now when f has none (files
 * opened for reading cost no OPEN until a copy needs one). */
static int file_fh(struct kbfs *fs, struct kbfs_file *f, uint64_t *fh)
{
	uint64_t h = 0, old;
	int ret;

	pthread_mutex_lock(&f->lock);
	*fh = f->remote_fh;
	pthread_mutex_unlock(&f->lock);
	if (*fh)
		return 0;
	ret = kb_rpc_open(fs->rpc, f->remote, O_RDONLY, &h, NULL);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&f->lock);
	old = f->remote_fh;
	if (!old)
		f->remote_fh = h;
	*fh = f->remote_fh;
	pthread_mutex_unlock(&f->lock);
	if (old) /* another thread won */
		release_remote(fs, f->remote, h);
	return 0;
}

static void take_value(void *arg, const kb_Response *resp, const uint8_t *b, size_t n)
{
	(void)b, (void)n;
	*(uint64_t *)arg = resp->value;
}

/* A copy inside the mount is done by the server: no data crosses the wire.
 * (The kernel wrote back the dirty pages of both ranges first, and drops
 * the destination range from its cache after.) */
void kbfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			  struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			  struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *in = FILE_OF(fi_in), *out = FILE_OF(fi_out);
	kb_Request r = kb_Request_init_zero;
	uint64_t copied = 0;
	int ret;

	(void)ino_in;
	if (kbfs_rofs(req))
		return;
	r.op = kb_Op_COPY_FILE_RANGE;
	r.node = in->remote;
	r.offset = (uint64_t)off_in;
	r.node2 = out->remote;
	r.fh2 = out->remote_fh;
	r.offset2 = (uint64_t)off_out;
	r.length = len;
	r.flags = (uint32_t)flags;
	ret = off_in < 0 || off_out < 0 ? -EINVAL : !r.fh2 ? -EBADF : 0;
	if (!ret)
		ret = file_fh(fs, in, &r.fh);
	if (!ret)
		ret = kb_rpc_call_take(fs->rpc, &r, NULL, 0, take_value, &copied);
	if (ret < 0) {
		kbfs_reply_err(req, ret);
		return;
	}
	kbfs_changed(fs, ino_out, true);
	fuse_reply_write(req, (size_t)KB_MIN(copied, (uint64_t)len));
}

void kbfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		struct fuse_file_info *fi)
{
	struct kbfs *fs = FS(req);
	struct kbfs_file *f = FILE_OF(fi);
	kb_Request r = kb_Request_init_zero;
	uint64_t pos = 0;
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
	r.op = kb_Op_LSEEK;
	r.node = f->remote;
	r.fh = f->remote_fh; /* 0: the server's read-only descriptor */
	r.offset = off < 0 ? 0 : (uint64_t)off;
	r.flags = (uint32_t)whence;
	ret = off < 0 ? -ENXIO : kb_rpc_call_take(fs->rpc, &r, NULL, 0, take_value, &pos);
	if (ret < 0)
		kbfs_reply_err(req, ret);
	else
		fuse_reply_lseek(req, (off_t)pos);
}
