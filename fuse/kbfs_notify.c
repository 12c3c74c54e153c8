/* kbfs_notify.c - server change pushes (NOTIFY) to the kernel.
 *
 * The rpc receiver hands us a push (kbfs_notify); we drop the node's blocks
 * from our cache right there and queue the kernel invalidation for our own
 * thread: fuse_lowlevel_notify_inval_inode may wait for page locks held by
 * a read that only this receiver can answer, so the receiver must never
 * call it. The queue is a fixed ring; when it is full the push is dropped
 * (the attribute timeout still bounds how stale the kernel's view gets) and
 * counted.
 *
 * The server does not push back what it saw our session change (within
 * 300 ms, srv_notify.c), but it cannot attribute every event, so some of
 * our own changes come back. Every change we make marks its node and its name
 * in the `quiet` table for KBFS_QUIET_MS (kbfs_quiet, kbfs_quiet_node); a
 * push matching a mark is counted and ignored, and so is an inode push for
 * a file we have open for writing. Neither throws away the kernel's fresh
 * caches for nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kbfs.h"
#include "kbfs_newdirs.h"
#include "kbfs_list.h"
#include "kbfs_nameset.h"
#include "kbfs_node.h"
#include "kbfs_wb.h"
#include "util.h"

#define NQ_LEN 256

struct kbfs_nq_item {
	uint64_t ino;
	char name[256]; /* empty: the inode changed */
	uint64_t lease; /* not 0: end our answers in this directory (a recall,
			  * or someone else's change there: kbfs_wb.h); ino unused */
	bool recall;
};

struct kbfs_nq {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;              /* (lock) */
	struct kbfs_nq_item ring[NQ_LEN]; /* (lock) */
	unsigned head, count;             /* (lock) */
	bool stop;                        /* (lock) */
	uint64_t dropped;                 /* full-queue drops (lock) */
	uint64_t delivered;               /* handed to the kernel (lock) */
	uint64_t own;                     /* our own changes coming back, ignored (lock) */
};

void kbfs_quiet(struct kbfs *fs, uint64_t node, const char *name)
{
	kbfs_nameset_add(fs->quiet, node, name, 0, kb_now_ns() + KBFS_QUIET_MS * 1000000ull);
}

void kbfs_quiet_node(struct kbfs *fs, uint64_t ino)
{
	struct kbfs_node_where w;

	if (kbfs_node_where(fs->nodes, ino, &w) == 0)
		kbfs_quiet(fs, w.parent_remote, w.name);
	kbfs_quiet(fs, w.remote, "");
}

void kbfs_name_touched(struct kbfs *fs, uint64_t dir, const char *name, bool appears)
{
	kbfs_nameset_drop(fs->missing, dir, name);
	kbfs_list_touch(fs->list, dir, name, kb_now_ns(), NS(fs->o->entry_timeout));
	kbfs_node_own_name_change(fs->nodes, dir, name); /* nlink, mtime: not leased */
	if (appears)
		kbfs_newdirs_add(fs->newdirs, dir, name, kb_now_ns(), NS(fs->o->negative_timeout));
	kbfs_quiet(fs, dir, name);
}

static void deliver(struct kbfs *fs, const struct kbfs_nq_item *it)
{
	int r;

	if (it->name[0])
		r = fuse_lowlevel_notify_inval_entry(fs->se, it->ino, it->name, strlen(it->name));
	else
		r = fuse_lowlevel_notify_inval_inode(fs->se, it->ino, 0, 0);
	/* -ENOENT: the kernel has already dropped it; nothing to do. */
	if (r < 0 && r != -ENOENT && fs->o->debug)
		fprintf(stderr, "keibifs: invalidate %#llx '%s': %s\n", (unsigned long long)it->ino,
			it->name, strerror(-r));
}

static void *nq_main(void *arg)
{
	struct kbfs *fs = arg;
	struct kbfs_nq *q = fs->nq;
	struct kbfs_nq_item it;

	pthread_mutex_lock(&q->lock);
	while (!q->stop) {
		if (!q->count) {
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		it = q->ring[q->head];
		q->head = (q->head + 1) % NQ_LEN;
		q->count--;
		q->delivered++;
		pthread_mutex_unlock(&q->lock);
		if (it.lease) /* may wait for the stream: on this thread */
			it.recall ? kbfs_wb_recall(fs, it.lease) : kbfs_wb_foreign(fs, it.lease);
		else if (fs->se)
			deliver(fs, &it);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int kbfs_notify_start(struct kbfs *fs)
{
	struct kbfs_nq *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	fs->nq = q;
	r = pthread_create(&q->thread, NULL, nq_main, fs);
	if (r) {
		fs->nq = NULL;
		pthread_cond_destroy(&q->cond);
		pthread_mutex_destroy(&q->lock);
		free(q);
		return -r;
	}
	return 0;
}

void kbfs_notify_stop(struct kbfs *fs)
{
	struct kbfs_nq *q = fs->nq;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	if (q->stop) {
		pthread_mutex_unlock(&q->lock);
		return;
	}
	q->stop = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
}

void kbfs_notify_free(struct kbfs *fs)
{
	struct kbfs_nq *q = fs->nq;

	if (!q)
		return;
	kbfs_notify_stop(fs);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
	fs->nq = NULL;
}

/* A push about our own recent change (kbfs_quiet): counted, else ignored. */
static bool own_change(struct kbfs *fs, const kb_Response *n)
{
	struct kbfs_nq *q = fs->nq;

	if (!kbfs_nameset_left(fs->quiet, n->notify_node, n->notify_name, 0, kb_now_ns()))
		return false;
	if (q) {
		pthread_mutex_lock(&q->lock);
		q->own++;
		pthread_mutex_unlock(&q->lock);
	}
	return true;
}

/* Hand a lease's end to the queue's thread (a receiver must not wait). */
static void queue_lease(struct kbfs *fs, uint64_t dir, bool recall)
{
	struct kbfs_nq *q = fs->nq;
	struct kbfs_nq_item *it;

	if (!q || !fs->wb)
		return;
	pthread_mutex_lock(&q->lock);
	if (!q->stop && q->count < NQ_LEN) {
		it = &q->ring[(q->head + q->count) % NQ_LEN];
		memset(it, 0, sizeof(*it));
		it->lease = dir;
		it->recall = recall;
		q->count++;
		pthread_cond_signal(&q->cond);
	} else if (!q->stop) {
		q->dropped++; /* a recall lost: the server ends our session after its wait */
	}
	pthread_mutex_unlock(&q->lock);
}

void kbfs_notify_lease_end(struct kbfs *fs, uint64_t dir)
{
	queue_lease(fs, dir, false);
}

void kbfs_notify(void *arg, const kb_Response *n)
{
	struct kbfs *fs = arg;
	struct kbfs_nq *q = fs->nq;
	struct kbfs_nq_item *it;
	bool writing = false;
	uint64_t ino;

	if (n->notify_flags & kb_NotifyFlags_NOTIFY_RECALL) {
		queue_lease(fs, n->notify_node, true);
		return;
	}
	/* even one that looks like our own echo: the attributes we keep as
	 * ours are asked again (a change on the server's disk just after ours) */
	if (!n->notify_name[0] && fs->wb)
		kbfs_node_wb_pushed(fs->nodes, n->notify_node);
	if (own_change(fs, n))
		return;
	if (n->notify_name[0] && fs->wb && kbfs_node_wb_remote(fs->nodes, n->notify_node))
		queue_lease(fs, n->notify_node, false); /* not ours: stop deciding there */
	if (n->notify_name[0]) {                        /* someone else changed that directory */
		kbfs_nameset_drop(fs->missing, n->notify_node, n->notify_name);
		kbfs_newdirs_drop(fs->newdirs, n->notify_node);
		kbfs_list_drop(fs->list, n->notify_node);
		/* the entry's own node: its data or attributes may have changed */
		ino = kbfs_node_expire_child(fs->nodes, n->notify_node, n->notify_name, &writing);
		if (ino && !writing)
			kb_cache_invalidate(fs->cache, ino, 0);
		if (ino && !writing && q) {
			pthread_mutex_lock(&q->lock);
			if (!q->stop && q->count < NQ_LEN) {
				it = &q->ring[(q->head + q->count) % NQ_LEN];
				memset(it, 0, sizeof(*it));
				it->ino = ino;
				it->name[0] = '\0';
				q->count++;
				pthread_cond_signal(&q->cond);
			} else if (!q->stop) {
				q->dropped++;
			}
			pthread_mutex_unlock(&q->lock);
		}
	}
	/* found and expired under the table's lock: a FORGET may free the
	 * node right after (the ino is then only a number, used as a key) */
	ino = n->notify_name[0] ? kbfs_node_by_remote(fs->nodes, n->notify_node, NULL)
				: kbfs_node_expire_remote(fs->nodes, n->notify_node, &writing);
	if (!ino || !q) /* forgotten, or an id of an older session */
		return;
	/* Open for writing here: the change is almost surely our own writes
	 * coming back. The kernel's writeback cache holds newer data than any
	 * push could tell it about, and invalidating it would write back every
	 * dirty page synchronously (a large write would stall on it). Another
	 * writer's changes to a file we write are not coherent anyway (as on
	 * NFS, close-to-open): our next open compares versions. */
	if (writing)
		return;
	if (!n->notify_name[0])
		kb_cache_invalidate(fs->cache, ino, 0);
	pthread_mutex_lock(&q->lock);
	if (q->stop) {
		/* unmounting: nobody delivers any more */
	} else if (q->count == NQ_LEN) {
		q->dropped++;
	} else {
		it = &q->ring[(q->head + q->count) % NQ_LEN];
		memset(it, 0, sizeof(*it));
		it->ino = ino;
		snprintf(it->name, sizeof(it->name), "%s", n->notify_name);
		q->count++;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
}

void kbfs_notify_counts(struct kbfs *fs, uint64_t *delivered, uint64_t *dropped, uint64_t *own)
{
	struct kbfs_nq *q = fs->nq;

	*delivered = *dropped = *own = 0;
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	*delivered = q->delivered;
	*dropped = q->dropped;
	*own = q->own;
	pthread_mutex_unlock(&q->lock);
}
