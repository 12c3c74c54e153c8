/* kbfs_call.c - one server call, recovered across a new session
 * (kbfs_call.h); and open files' handles across sessions
 * (kbfs_file_handle: reopened the first time a file is used in a new one).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_call.h"
#include "kbfs_node.h"
#include "rpc_api.h"
#include "util.h"

/* ---- nodes ------------------------------------------------------------------ */

/* OPEN ino with flags, re-resolving its node once when that is stale. */
static int open_node(struct kbfs *fs, fuse_ino_t ino, uint32_t flags, uint64_t *remote,
		     uint64_t *fh)
{
	int ret;

	*remote = kbfs_node_remote(fs->nodes, ino);
	ret = kb_rpc_open(fs->rpc, *remote, flags, fh, NULL);
	if (ret == -ESTALE && kbfs_remap_resolve(fs, ino, *remote, remote) == 0)
		ret = kb_rpc_open(fs->rpc, *remote, flags, fh, NULL);
	return ret;
}

/* The call's nodes got ESTALE: re-resolve them; true when it may be sent
 * again. Of two nodes (link, rename) those of an older session are
 * re-resolved; when neither is, the first (as for one node). */
static bool remap(struct kbfs *fs, const struct kbfs_call *c)
{
	bool old1 = c->ino && kbfs_node_is_old(fs->nodes, c->ino);
	bool old2 = c->ino2 && c->ino2 != c->ino && kbfs_node_is_old(fs->nodes, c->ino2);
	uint64_t id;

	if (old1 || old2) {
		if (old1 && kbfs_remap_resolve(fs, c->ino, c->node, &id) < 0)
			return false;
		return !old2 || kbfs_remap_resolve(fs, c->ino2, c->node2, &id) == 0;
	}
	return c->ino && kbfs_remap_resolve(fs, c->ino, c->node, &id) == 0;
}

/* ---- open files' handles ------------------------------------------------------ */

/* Errors that say the file itself is gone or refused to us, as opposed to
 * the transport or an unknown outcome (tried again at the next use). */
static bool reopen_final(int err)
{
	return err == -ESTALE || err == -ENOENT || err == -EACCES || err == -EPERM ||
	       err == -EROFS || err == -EISDIR || err == -ENXIO;
}

#define KBFS_REOPEN_TRIES 8

/* f's handle is from an older session than the current one: OPEN its
 * node again. f->reopen_lock held. The session is read here, under the
 * lock: a thread that waited for it while another reopened (perhaps
 * across several sessions) must neither reopen again nor record an
 * older session than the handle's. */
static int file_reopen(struct kbfs *fs, struct kbfs_file *f)
{
	uint64_t remote = 0, fh = 0, gen = kb_rpc_gen(fs->rpc);
	uint64_t deadline = kb_now_ns() + NS(fs->o->timeout);
	unsigned nap_us = 10000;
	bool done;
	int ret;

	pthread_mutex_lock(&f->lock);
	ret = f->lost;
	done = f->sgen == gen;
	pthread_mutex_unlock(&f->lock);
	if (ret || done) /* done (or failed) by another thread */
		return ret;
	/* A verdict is final only if no other session began meanwhile: the
	 * server restarting again answers ESTALE for ids we just resolved.
	 * An OPEN in flight when the link dropped fails with EIO (its outcome
	 * unknown), on each connection as it is found down, before the new
	 * session exists: tried again, with a growing pause, for as long as
	 * the mount's timeout. */
	for (int tries = 0; tries < KBFS_REOPEN_TRIES;) {
		gen = kb_rpc_gen(fs->rpc);
		ret = open_node(fs, f->ino, f->oflags, &remote, &fh);
		if (!ret)
			break;
		if (ret == -EIO && kb_now_ns() < deadline) {
			usleep(nap_us);
			nap_us = KB_MIN(nap_us * 2, 500000u);
			continue;
		}
		if (kb_rpc_gen(fs->rpc) == gen)
			break;
		tries++;
	}
	if (ret == 0) {
		pthread_mutex_lock(&f->lock);
		f->remote = remote;
		f->remote_fh = fh;
		f->sgen = gen;
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	if (!reopen_final(ret))
		return ret;
	pthread_mutex_lock(&f->lock);
	f->lost = ret == -ENOENT ? -ESTALE : ret;
	ret = f->lost;
	pthread_mutex_unlock(&f->lock);
	kbfs_node_expire(fs->nodes, f->ino); /* its size is the server's again */
	kb_cache_invalidate(fs->cache, f->ino, 0);
	kbfs_logf(fs, "an open file could not be reopened in the new session: %s",
		  kb_strerror(ret));
	return ret;
}

int kbfs_file_handle(struct kbfs *fs, struct kbfs_file *f, uint64_t *node, uint64_t *fh,
		     uint64_t *sgen)
{
	uint64_t gen = kb_rpc_gen(fs->rpc);
	bool current;
	int ret;

	pthread_mutex_lock(&f->lock);
	ret = f->lost;
	current = !f->remote_fh || f->sgen == gen;
	pthread_mutex_unlock(&f->lock);
	if (!ret && !current) {
		pthread_mutex_lock(&f->reopen_lock);
		ret = file_reopen(fs, f);
		pthread_mutex_unlock(&f->reopen_lock);
	}
	pthread_mutex_lock(&f->lock);
	*fh = f->remote_fh;
	*node = f->remote;
	if (sgen)
		*sgen = f->sgen;
	pthread_mutex_unlock(&f->lock);
	if (!*fh) /* no handle: by node, as re-resolved (kbfs_remap.c) */
		*node = kbfs_node_remote(fs->nodes, f->ino);
	return ret;
}

/* The server handle of f, opened read-only now when f has none (files
 * opened for reading cost no OPEN until a copy needs one). */
static int file_handle_ro(struct kbfs *fs, struct kbfs_file *f, uint64_t *node, uint64_t *fh,
			  uint64_t *sgen)
{
	uint64_t h = 0, old, remote, gen = kb_rpc_gen(fs->rpc);
	int ret = kbfs_file_handle(fs, f, node, fh, sgen);

	if (ret < 0 || *fh)
		return ret;
	ret = open_node(fs, f->ino, O_RDONLY, &remote, &h);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&f->lock);
	old = f->remote_fh;
	if (!old) {
		f->remote_fh = h;
		f->remote = remote;
		f->sgen = gen;
		f->oflags = O_RDONLY;
	}
	*fh = f->remote_fh;
	*node = f->remote;
	*sgen = f->sgen;
	pthread_mutex_unlock(&f->lock);
	if (old) /* another thread won */
		kb_rpc_release_async(fs->rpc, remote, h, false);
	return 0;
}

bool kbfs_call_handle_old(struct kbfs *fs, int ret, uint64_t sgen)
{
	return (ret == -EBADF || ret == -ESTALE) && sgen != kb_rpc_gen(fs->rpc);
}

/* ---- the call -------------------------------------------------------------- */

/* The handles of one attempt into c; *sgen: the oldest session they are
 * from. */
static int handles(struct kbfs *fs, struct kbfs_call *c, void *arg, uint64_t *sgen)
{
	uint64_t s2 = 0;
	int ret = 0;

	if (c->f)
		ret = c->open_ro ? file_handle_ro(fs, c->f, &c->node, &c->fh, sgen)
				 : kbfs_file_handle(fs, c->f, &c->node, &c->fh, sgen);
	else if (c->handle)
		ret = c->handle(fs, c, arg, sgen);
	if (!ret && c->f2) {
		ret = kbfs_file_handle(fs, c->f2, &c->node2, &c->fh2, &s2);
		*sgen = KB_MIN(*sgen, s2);
	}
	return ret;
}

/* Attempt c, begun in session gen on handles of session sgen, got ret:
 * true to send it again (kbfs_call.h). */
static bool again(struct kbfs *fs, const struct kbfs_call *c, int ret, uint64_t gen, uint64_t sgen)
{
	uint64_t now = kb_rpc_gen(fs->rpc);

	if (ret == -EIO) /* not run again by the rpc: its outcome is unknown */
		return c->redo_unknown && now != gen;
	if (ret == -ESTALE && !c->fh && !c->fh2)
		return remap(fs, c);
	if (ret == -ESTALE || ret == -EBADF)
		return now != gen || sgen != now;
	return false;
}

int kbfs_call(struct kbfs *fs, struct kbfs_call *c, kbfs_call_fn fn, void *arg)
{
	if (c->f && !c->ino)
		c->ino = c->f->ino;
	if (c->f2 && !c->ino2)
		c->ino2 = c->f2->ino;
	for (int tries = 1, settled = 0;; tries++) {
		uint64_t gen = kb_rpc_gen(fs->rpc), sgen = gen;
		int ret;

		c->fh = c->fh2 = 0;
		c->node = c->ino ? kbfs_node_remote(fs->nodes, c->ino) : 0;
		c->node2 = c->ino2 ? kbfs_node_remote(fs->nodes, c->ino2) : 0;
		ret = handles(fs, c, arg, &sgen);
		if (ret < 0)
			return ret;
		ret = fn(fs, c, arg);
		if (kb_rpc_gen(fs->rpc) == gen) /* no new session cut it short */
			settled++;
		if (settled >= KBFS_CALL_TRIES || tries >= KBFS_CALL_MAX ||
		    !again(fs, c, ret, gen, sgen))
			return ret;
	}
}
