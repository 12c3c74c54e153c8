/* kbfs_wb.c - write-behind (kbfs_wb.h): leased directories' names, the
 * changes decided here, and the stream's drain.
 *
 * Locks: wb->gate (rwlock) makes a decision and its queueing one step
 * against a recall (a local answer takes it shared, a recall exclusive,
 * so a LEASE_RETURN never overtakes a change decided under the lease);
 * wb->lock guards the directories' name sets; the node table's lock may
 * be taken inside it (never the other way round).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_node.h"
#include "kbfs_wb.h"
#include "rpc.h"
#include "rpc_api.h"
#include "rpc_wb.h"
#include "stream.h"
#include "util.h"

#define DIR_BUCKETS 256
#define LOG_PER_SEC 5

/* Nodes are named by server id here, never by FUSE ino: a forgotten
 * node's memory (its ino) may be reused, an id of ours never is. */
struct wb_name {
	struct wb_name *next;
	uint64_t child; /* its node's server id */
	uint32_t fmt;   /* S_IFMT bits */
	char name[];
};

/* The names of a directory leased to us (all of them: it was empty). */
struct wb_dir {
	struct wb_dir *next;
	uint64_t remote; /* the directory's server id */
	unsigned n, nb;  /* names, buckets (a power of two) */
	struct wb_name **b;
};

#define MAX_DIRS 16384 /* leased directories whose names we keep */

struct kbfs_wb {
	pthread_rwlock_t gate;
	pthread_mutex_t lock;             /* dirs (leaf) */
	struct wb_dir *dirs[DIR_BUCKETS]; /* lock */
	unsigned ndirs;                   /* lock */
	atomic_ullong next_id, next_ino;  /* provisional node ids, fake st_ino */
	atomic_ullong local, recalls;     /* counts for --status */
	pthread_mutex_t sp_lock;          /* the three below */
	uint64_t avail, avail_ns;         /* share's free bytes, when measured */
	bool sp_busy;                     /* a thread is measuring */
	pthread_mutex_t log_lock;         /* the two below */
	uint64_t log_sec, log_n;          /* failures logged this second */
};

/* ---- name sets ---- */

static unsigned dir_bucket(uint64_t remote)
{
	return (unsigned)((remote * 0x9e3779b97f4a7c15ull) >> 56) % DIR_BUCKETS;
}

static struct wb_dir *dir_find(struct kbfs_wb *wb, uint64_t remote)
{
	struct wb_dir *d = wb->dirs[dir_bucket(remote)];

	while (d && d->remote != remote)
		d = d->next;
	return d;
}

static void dir_free(struct wb_dir *d)
{
	for (unsigned i = 0; d && i < d->nb; i++)
		for (struct wb_name *n = d->b[i], *next; n; n = next) {
			next = n->next;
			free(n);
		}
	if (d)
		free(d->b);
	free(d);
}

static void dir_drop(struct kbfs_wb *wb, uint64_t remote)
{
	struct wb_dir **pp = &wb->dirs[dir_bucket(remote)], *d;

	while (*pp && (*pp)->remote != remote)
		pp = &(*pp)->next;
	d = *pp;
	if (d) {
		*pp = d->next;
		wb->ndirs--;
	}
	dir_free(d);
}

static int dir_new(struct kbfs_wb *wb, uint64_t remote)
{
	struct wb_dir *d;

	dir_drop(wb, remote);
	if (wb->ndirs >= MAX_DIRS)
		return -ENOSPC; /* not kept: the server decides there */
	d = calloc(1, sizeof(*d));
	if (!d || !(d->b = calloc(16, sizeof(*d->b)))) {
		free(d);
		return -ENOMEM;
	}
	d->nb = 16;
	d->remote = remote;
	d->next = wb->dirs[dir_bucket(remote)];
	wb->dirs[dir_bucket(remote)] = d;
	wb->ndirs++;
	return 0;
}

static unsigned name_bucket(const struct wb_dir *d, const char *name)
{
	return (unsigned)kb_hash_key_name(0, name) & (d->nb - 1);
}

static struct wb_name **name_slot(struct wb_dir *d, const char *name)
{
	struct wb_name **pp = &d->b[name_bucket(d, name)];

	while (*pp && strcmp((*pp)->name, name))
		pp = &(*pp)->next;
	return pp;
}

static void grow(struct wb_dir *d)
{
	unsigned nb = d->nb * 2;
	struct wb_name **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* longer chains */
	for (unsigned i = 0; i < d->nb; i++)
		for (struct wb_name *n = d->b[i], *next; n; n = next) {
			unsigned h = (unsigned)kb_hash_key_name(0, n->name) & (nb - 1);

			next = n->next;
			n->next = b[h];
			b[h] = n;
		}
	free(d->b);
	d->b = b;
	d->nb = nb;
}

/* Lock held. -E2BIG past KBFS_WB_DIR_NAMES: the caller drops the set. */
static int name_add(struct wb_dir *d, const char *name, uint64_t child, uint32_t fmt)
{
	struct wb_name **pp = name_slot(d, name), *n;
	size_t len = strlen(name);

	if (*pp) {
		(*pp)->child = child;
		(*pp)->fmt = fmt;
		return 0;
	}
	if (d->n >= KBFS_WB_DIR_NAMES)
		return -E2BIG;
	n = malloc(sizeof(*n) + len + 1);
	if (!n)
		return -ENOMEM;
	n->next = NULL;
	n->child = child;
	n->fmt = fmt;
	memcpy(n->name, name, len + 1);
	*pp = n;
	if (++d->n > d->nb * 2)
		grow(d);
	return 0;
}

static void name_del(struct wb_dir *d, const char *name)
{
	struct wb_name **pp = name_slot(d, name), *n = *pp;

	if (!n)
		return;
	*pp = n->next;
	free(n);
	d->n--;
}

/* ---- start, stop, leases ---- */

static bool route(void *arg, uint64_t node)
{
	struct kbfs *fs = arg;

	return kbfs_node_wb_remote(fs->nodes, node);
}

int kbfs_wb_start(struct kbfs *fs)
{
	struct kbfs_wb *wb;
	uint64_t seed;

	if (fs->o->sync_meta || fs->read_only || fs->o->owners ||
	    !(kb_rpc_features(fs->rpc) & kb_Features_FEATURE_WRITE_BEHIND) ||
	    !kb_rpc_lease_ms(fs->rpc))
		return 0;
	wb = calloc(1, sizeof(*wb));
	if (!wb)
		return -ENOMEM;
	if (kb_stream_new(&fs->stream, fs->rpc, KBFS_WB_MAX_OPS, KBFS_WB_MAX_BYTES,
			  fs->o->timeout * 1000)) {
		free(wb);
		return -ENOMEM;
	}
	pthread_rwlock_init(&wb->gate, NULL);
	pthread_mutex_init(&wb->lock, NULL);
	pthread_mutex_init(&wb->sp_lock, NULL);
	pthread_mutex_init(&wb->log_lock, NULL);
	seed = kb_now_ns() & 0xffffffffull; /* ids differ between mounts' sessions */
	atomic_init(&wb->next_id, seed << 20);
	atomic_init(&wb->next_ino, 0);
	fs->wb = wb;
	kb_rpc_set_route(fs->rpc, fs->stream, route, fs);
	return 0;
}

void kbfs_wb_stop(struct kbfs *fs)
{
	int ret;

	if (!fs->stream)
		return;
	ret = kb_stream_drain(fs->stream, fs->o->timeout * 1000);
	kb_stream_stop(fs->stream); /* before the rpc goes: it sends on it */
	if (ret == -ETIMEDOUT)
		kbfs_logf(fs,
			  "write-behind: %u queued changes not answered within %d s at "
			  "unmount: their outcome is unknown",
			  kb_stream_pending(fs->stream), fs->o->timeout);
	else if (ret)
		kbfs_logf(fs,
			  "write-behind: queued changes failed (first: %s): see the lines "
			  "above",
			  strerror(-kb_err_to_errno(ret)));
}

void kbfs_wb_free(struct kbfs *fs)
{
	struct kbfs_wb *wb = fs->wb;

	kb_stream_free(fs->stream);
	fs->stream = NULL;
	if (!wb)
		return;
	for (unsigned i = 0; i < DIR_BUCKETS; i++)
		for (struct wb_dir *d = wb->dirs[i], *next; d; d = next) {
			next = d->next;
			dir_free(d);
		}
	pthread_rwlock_destroy(&wb->gate);
	pthread_mutex_destroy(&wb->lock);
	pthread_mutex_destroy(&wb->sp_lock);
	pthread_mutex_destroy(&wb->log_lock);
	free(wb);
	fs->wb = NULL;
}

static void drop_all(struct kbfs_wb *wb)
{
	pthread_mutex_lock(&wb->lock);
	for (unsigned i = 0; i < DIR_BUCKETS; i++) {
		for (struct wb_dir *d = wb->dirs[i], *next; d; d = next) {
			next = d->next;
			dir_free(d);
		}
		wb->dirs[i] = NULL;
	}
	wb->ndirs = 0;
	pthread_mutex_unlock(&wb->lock);
}

void kbfs_wb_session(struct kbfs *fs)
{
	if (!fs->wb)
		return;
	kbfs_nodes_wb_lapse(fs->nodes);
	drop_all(fs->wb);
}

/* End our answers in directory remote; give the lease back when asked
 * (behind everything queued: the stream is in order). */
static void lease_end(struct kbfs *fs, uint64_t remote, bool give_back)
{
	struct kbfs_wb *wb = fs->wb;

	if (!wb)
		return;
	pthread_rwlock_wrlock(&wb->gate);
	kbfs_node_wb_dlease_end(fs->nodes, remote);
	pthread_mutex_lock(&wb->lock);
	dir_drop(wb, remote);
	pthread_mutex_unlock(&wb->lock);
	if (give_back)
		kb_wb_lease_return(fs->stream, remote);
	pthread_rwlock_unlock(&wb->gate);
	atomic_fetch_add(&wb->recalls, 1);
}

void kbfs_wb_recall(struct kbfs *fs, uint64_t remote)
{
	lease_end(fs, remote, true);
}

void kbfs_wb_fallback(struct kbfs *fs, fuse_ino_t dir)
{
	uint64_t remote;

	if (fs->wb && kbfs_node_wb_dlease(fs->nodes, dir, &remote))
		lease_end(fs, remote, true);
}

void kbfs_wb_foreign(struct kbfs *fs, uint64_t remote)
{
	if (fs->wb && kbfs_node_wb_remote(fs->nodes, remote))
		lease_end(fs, remote, true); /* our names there are not the truth now */
}

/* Gate held (shared) by the caller: parent is leased to us and we know
 * its names; *premote: its id. */
static struct wb_dir *leased(struct kbfs *fs, fuse_ino_t parent, uint64_t *premote)
{
	uint64_t remote = 0;

	if (!kbfs_node_wb_dlease(fs->nodes, parent, &remote))
		return NULL;
	if (premote)
		*premote = remote;
	return dir_find(fs->wb, remote); /* the caller holds wb->lock */
}

void kbfs_wb_dir_leased(struct kbfs *fs, fuse_ino_t dir)
{
	uint64_t remote = kbfs_node_remote(fs->nodes, dir);

	if (!fs->wb || !remote)
		return;
	pthread_mutex_lock(&fs->wb->lock);
	if (!dir_new(fs->wb, remote))
		kbfs_node_wb_set(fs->nodes, dir, true);
	pthread_mutex_unlock(&fs->wb->lock);
}

/* Lock held: d gets the names of a whole listing; false when one cannot
 * be kept (no node id, too many, no memory). */
static bool names_from(struct wb_dir *d, const struct kb_rpc_result *res)
{
	size_t off = 0;
	kb_Dirent e;
	int r;

	while ((r = kb_rpc_dirent_next(res->bulk, res->bulk_len, &off, &e)) == 1) {
		if (!strcmp(e.name, ".") || !strcmp(e.name, ".."))
			continue;
		if (!e.has_entry || !e.entry.node ||
		    name_add(d, e.name, e.entry.node, (e.type & 017) << 12))
			return false;
	}
	return r == 0;
}

void kbfs_wb_listed(struct kbfs *fs, fuse_ino_t dir, uint64_t remote, bool granted,
		    const struct kb_rpc_result *whole, uint64_t kids_before)
{
	struct kbfs_wb *wb = fs->wb;
	struct wb_dir *d;
	bool ok;

	if (!wb || !granted)
		return;
	/* all of it, and none of our own changes there came in between */
	ok = whole && whole->resp.eof && kbfs_node_remote(fs->nodes, dir) == remote &&
	     kbfs_node_kids_gen(fs->nodes, dir) == kids_before;
	pthread_rwlock_wrlock(&wb->gate);
	pthread_mutex_lock(&wb->lock);
	if (ok && !dir_new(wb, remote)) {
		d = dir_find(wb, remote);
		ok = names_from(d, whole);
		if (!ok)
			dir_drop(wb, remote);
	} else {
		ok = false;
	}
	pthread_mutex_unlock(&wb->lock);
	if (ok)
		kbfs_node_wb_set(fs->nodes, dir, true);
	else /* not of use to us: the server may give it to another */
		kb_wb_lease_return(fs->stream, remote);
	pthread_rwlock_unlock(&wb->gate);
}

/* ---- completions ---- */

struct wb_done {
	struct kbfs *fs;
	uint64_t node, dir, dir2; /* server ids it named (0: none); node gets the reply's attrs */
	uint32_t op;
	uint64_t gen;  /* rpc session generation when queued */
	char name[64]; /* for the log line */
};

static void log_failure(struct kbfs *fs, const struct wb_done *d, int status)
{
	struct kbfs_wb *wb = fs->wb;
	uint64_t sec = kb_now_ns() / 1000000000u;
	bool say;

	pthread_mutex_lock(&wb->log_lock);
	if (wb->log_sec != sec) {
		wb->log_sec = sec;
		wb->log_n = 0;
	}
	say = wb->log_n++ < LOG_PER_SEC;
	pthread_mutex_unlock(&wb->log_lock);
	if (say)
		kbfs_logf(fs,
			  "write-behind: %s '%s' failed on the server: %s (returned by the next "
			  "fsync or close, and keibifs --sync)",
			  kb_rpc_op_name(d->op), d->name, strerror(-kb_err_to_errno(status)));
}

/* A queued change failed: said in the log; its node refuses further
 * changes until it is looked up again, and our names in its directories
 * are not the server's any more: they are asked there again. */
static void failed(struct kbfs *fs, const struct wb_done *d, int status)
{
	if (d->node)
		kbfs_node_wb_fail(fs->nodes, d->node, status);
	if (d->dir)
		kbfs_notify_lease_end(fs, d->dir);
	if (d->dir2 && d->dir2 != d->dir)
		kbfs_notify_lease_end(fs, d->dir2);
	log_failure(fs, d, status);
}

static void wb_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct wb_done *d = arg;
	struct kbfs *fs = d->fs;
	uint64_t ttl = NS(fs->o->attr_timeout);
	const kb_Attr *a = NULL;

	/* a SETATTR lost with a session the server did not keep (a restart):
	 * logged, not the file's error (its values were absolute; the old
	 * synchronous path sent it again) */
	if (d->op == kb_Op_SETATTR && (status == -EIO || status == -ESTALE || status == -EBADF) &&
	    kb_rpc_gen(fs->rpc) != d->gen) {
		kbfs_logf(fs,
			  "write-behind: an attribute change was lost with the server's session "
			  "(a restart)");
		status = 0;
	}

	if (!status && res && res->resp.has_entry && res->resp.entry.has_attr)
		a = &res->resp.entry.attr;
	else if (!status && res && res->resp.has_attr)
		a = &res->resp.attr;
	if (d->node)
		kbfs_node_wb_end(fs->nodes, d->node, status, a, ttl);
	if (d->dir)
		kbfs_node_wb_end(fs->nodes, d->dir, status, NULL, ttl);
	if (d->dir2 && d->dir2 != d->dir)
		kbfs_node_wb_end(fs->nodes, d->dir2, status, NULL, ttl);
	if (status)
		failed(fs, d, status);
	free(d);
}

static struct wb_done *done_new(struct kbfs *fs, uint32_t op, const char *name)
{
	struct wb_done *d = calloc(1, sizeof(*d));

	if (d) {
		d->fs = fs;
		d->op = op;
		d->gen = kb_rpc_gen(fs->rpc);
		snprintf(d->name, sizeof(d->name), "%s", name);
	}
	return d;
}

/* ---- what the mount decides ---- */

static void now_ts(int64_t *sec, uint32_t *nsec);

/* A name changed in a directory whose attributes are ours: its times, and
 * its link count when a directory came (+1) or went (-1). */
static void dir_touched(struct kbfs *fs, fuse_ino_t dir, int dnlink)
{
	kb_Attr a;

	if (!kbfs_node_wb_attr(fs->nodes, dir, &a))
		return;
	now_ts(&a.mtime, &a.mtime_ns);
	a.ctime = a.mtime;
	a.ctime_ns = a.mtime_ns;
	a.nlink = (uint32_t)((int)a.nlink + dnlink);
	kbfs_node_wb_attr_set(fs->nodes, dir, &a, NS(fs->o->attr_timeout));
}

static void prov_entry(struct kbfs *fs, kb_Entry *e, uint32_t mode, uint64_t size)
{
	struct kbfs_wb *wb = fs->wb;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	memset(e, 0, sizeof(*e));
	e->node = KB_WB_ID | (atomic_fetch_add(&wb->next_id, 1) + 1);
	e->has_attr = true;
	e->attr.ino = KBFS_FAKE_INO | (atomic_fetch_add(&wb->next_ino, 1) + 1);
	/* as the server makes it for a client it does not act as: no set-id bits */
	e->attr.mode = mode & ~(uint32_t)(S_ISUID | S_ISGID);
	e->attr.nlink = S_ISDIR(mode) ? 2 : 1;
	e->attr.uid = fs->remote_uid;
	e->attr.gid = fs->remote_gid;
	e->attr.size = size;
	e->attr.blksize = 4096;
	e->attr.atime = e->attr.mtime = e->attr.ctime = ts.tv_sec;
	e->attr.atime_ns = e->attr.mtime_ns = e->attr.ctime_ns = (uint32_t)ts.tv_nsec;
}

static void reply_entry(struct kbfs *fs, fuse_req_t req, fuse_ino_t ino, const kb_Entry *e)
{
	struct fuse_entry_param ep = {0};

	ep.ino = ino;
	ep.attr_timeout = fs->o->attr_timeout;
	ep.entry_timeout = fs->o->entry_timeout;
	kbfs_attr_to_stat(fs, &e->attr, &ep.attr);
	fuse_reply_entry(req, &ep);
}

bool kbfs_wb_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kbfs *fs = FS(req);
	struct fuse_entry_param ep = {0};
	struct wb_name *n;
	struct wb_dir *d;
	uint64_t child = 0;
	bool known = false;
	kb_Attr a, mine;

	if (!fs->wb)
		return false;
	pthread_rwlock_rdlock(&fs->wb->gate);
	pthread_mutex_lock(&fs->wb->lock);
	d = leased(fs, parent, NULL);
	if (d) {
		n = *name_slot(d, name);
		known = true;
		child = n ? n->child : 0;
	}
	/* a name we made, its node still here: one more lookup of it */
	ep.ino = child ? kbfs_node_ref_remote(fs->nodes, child, &a) : 0;
	pthread_mutex_unlock(&fs->wb->lock);
	pthread_rwlock_unlock(&fs->wb->gate);
	if (!known || (child && !ep.ino))
		return false; /* the server decides (through the stream) */
	if (ep.ino) {
		ep.attr_timeout = fs->o->attr_timeout;
		if (kbfs_node_wb_attr(fs->nodes, ep.ino, &mine))
			a = mine;
		else /* the name is sure, its attributes maybe not: the kernel asks */
			ep.attr_timeout = 0;
		ep.entry_timeout = fs->o->entry_timeout;
		kbfs_attr_to_stat(fs, &a, &ep.attr);
		if (fuse_reply_entry(req, &ep) != 0) {
			uint64_t remote, count;

			kbfs_node_forget(fs->nodes, ep.ino, 1, &remote, &count);
		}
		return true;
	}
	ep.entry_timeout = fs->o->negative_timeout;
	ep.attr_timeout = fs->o->negative_timeout;
	if (ep.entry_timeout > 0)
		fuse_reply_entry(req, &ep);
	else
		fuse_reply_err(req, ENOENT);
	return true;
}

/* Gate and wb->lock held: a new name in leased d (of parent): the node
 * entered, marked, its name kept; the caller queues and replies. 0 or
 * -ENOMEM (nothing kept). */
static int enter_new(struct kbfs *fs, struct wb_dir *d, fuse_ino_t parent, const char *name,
		     const kb_Entry *e, fuse_ino_t *ino)
{
	*ino = kbfs_node_enter(fs->nodes, parent, name, e, NS(fs->o->attr_timeout), UINT64_MAX);
	if (!*ino)
		return -ENOMEM;
	if (name_add(d, name, e->node, e->attr.mode & S_IFMT) ||
	    (S_ISDIR(e->attr.mode) && dir_new(fs->wb, e->node))) {
		uint64_t remote, count;

		name_del(d, name);
		kbfs_node_forget(fs->nodes, *ino, 1, &remote, &count);
		return -ENOMEM;
	}
	kbfs_node_wb_set(fs->nodes, *ino, S_ISDIR(e->attr.mode));
	kbfs_node_wb_begin(fs->nodes, *ino);
	kbfs_node_wb_begin(fs->nodes, parent);
	return 0;
}

/* The queueing failed (the stream stayed full, the link is gone): undo. */
static void enter_undo(struct kbfs *fs, struct wb_dir *d, fuse_ino_t parent, const char *name,
		       fuse_ino_t ino, const kb_Entry *e)
{
	uint64_t remote, count;

	if (d)
		name_del(d, name);
	if (S_ISDIR(e->attr.mode))
		dir_drop(fs->wb, e->node);
	kbfs_node_wb_end(fs->nodes, e->node, 0, NULL, 0);
	kbfs_node_wb_end(fs->nodes, kbfs_node_remote(fs->nodes, parent), 0, NULL, 0);
	kbfs_node_forget(fs->nodes, ino, 1, &remote, &count);
}

/* MKDIR or SYMLINK decided here. */
static bool make_here(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t mode,
		      const char *target)
{
	struct kbfs *fs = FS(req);
	struct kbfs_wb *wb = fs->wb;
	struct wb_done *dn = NULL;
	struct wb_dir *d;
	kb_Creds creds;
	const kb_Creds *who = kbfs_creds(req, &creds);
	uint64_t premote = 0;
	fuse_ino_t ino = 0;
	kb_Entry e;
	int ret = 0;

	if (!wb || strlen(name) > KB_RPC_NAME_MAX)
		return false;
	pthread_rwlock_rdlock(&wb->gate);
	pthread_mutex_lock(&wb->lock);
	d = leased(fs, parent, &premote);
	if (!d) {
		pthread_mutex_unlock(&wb->lock);
		pthread_rwlock_unlock(&wb->gate);
		return false;
	}
	if (*name_slot(d, name)) {
		ret = -EEXIST;
		goto out;
	}
	prov_entry(fs, &e, mode, target ? strlen(target) : S_ISDIR(mode) ? 4096 : 0);
	dn = done_new(fs, target ? kb_Op_SYMLINK : kb_Op_MKDIR, name);
	ret = dn ? enter_new(fs, d, parent, name, &e, &ino) : -ENOMEM;
	if (ret)
		goto out;
	dn->node = e.node;
	dn->dir = premote;
	pthread_mutex_unlock(&wb->lock);
	ret = target ? kb_wb_symlink(fs->stream, premote, name, target, e.node, who, wb_done, dn)
		     : kb_wb_mkdir(fs->stream, premote, name, mode & 07777, e.node, who, wb_done,
				   dn);
	pthread_mutex_lock(&wb->lock);
	if (ret) { /* d may be gone (a new session): found again */
		enter_undo(fs, dir_find(wb, premote), parent, name, ino, &e);
		goto out;
	}
	dn = NULL; /* wb_done's */
	kbfs_name_touched(fs, premote, name, true);
	dir_touched(fs, parent, S_ISDIR(mode) ? 1 : 0);
	atomic_fetch_add(&wb->local, 1);
out:
	pthread_mutex_unlock(&wb->lock);
	pthread_rwlock_unlock(&wb->gate);
	free(dn);
	if (ret)
		kbfs_reply_err(req, ret);
	else
		reply_entry(fs, req, ino, &e);
	return true;
}

bool kbfs_wb_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	return make_here(req, parent, name, S_IFDIR | (mode & 07777), NULL);
}

bool kbfs_wb_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (strlen(link) > KB_RPC_PATH_MAX || !link[0])
		return false;
	return make_here(req, parent, name, S_IFLNK | 0777, link);
}

int kbfs_wb_create(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t flags, mode_t mode,
		   kb_Entry *e)
{
	struct kbfs *fs = FS(req);
	struct wb_dir *d;
	int ret = 0;

	if (!fs->wb || strlen(name) > KB_RPC_NAME_MAX)
		return 0;
	pthread_rwlock_rdlock(&fs->wb->gate);
	pthread_mutex_lock(&fs->wb->lock);
	d = leased(fs, parent, NULL);
	if (d && *name_slot(d, name))
		ret = (flags & O_EXCL) ? -EEXIST : 0; /* open what is there: the server */
	else if (d)
		ret = 1;
	pthread_mutex_unlock(&fs->wb->lock);
	pthread_rwlock_unlock(&fs->wb->gate);
	if (ret == 1)
		prov_entry(fs, e, S_IFREG | (mode & 07777), 0);
	return ret;
}

int kbfs_wb_created(struct kbfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
		    uint32_t flags, mode_t mode, const kb_Entry *e, fuse_ino_t ino)
{
	struct kbfs_wb *wb = fs->wb;
	struct wb_done *dn = done_new(fs, kb_Op_CREATE, name);
	kb_Creds creds;
	const kb_Creds *who = kbfs_creds(req, &creds);
	uint64_t premote = 0;
	struct wb_dir *d;
	int ret = dn ? 0 : -ENOMEM;

	pthread_rwlock_rdlock(&wb->gate);
	pthread_mutex_lock(&wb->lock);
	d = leased(fs, parent, &premote);
	if (!ret && (!d || *name_slot(d, name)))
		ret = -EAGAIN; /* recalled (or made) meanwhile: the caller asks the server */
	if (!ret)
		ret = name_add(d, name, e->node, S_IFREG);
	if (!ret) {
		kbfs_node_wb_set(fs->nodes, ino, false);
		kbfs_node_wb_begin(fs->nodes, ino);
		kbfs_node_wb_begin(fs->nodes, parent);
		dn->node = e->node;
		dn->dir = premote;
	}
	pthread_mutex_unlock(&wb->lock);
	if (!ret) {
		ret = kb_wb_create(fs->stream, premote, name, flags & ~(uint32_t)(O_TRUNC | O_EXCL),
				   mode & 07777, e->node, who, wb_done, dn);
		if (ret) {
			pthread_mutex_lock(&wb->lock);
			if ((d = dir_find(wb, premote)))
				name_del(d, name);
			pthread_mutex_unlock(&wb->lock);
			kbfs_node_wb_end(fs->nodes, e->node, 0, NULL, 0);
			kbfs_node_wb_end(fs->nodes, premote, 0, NULL, 0);
		} else {
			dn = NULL;
			kbfs_name_touched(fs, premote, name, true);
			dir_touched(fs, parent, 0);
			atomic_fetch_add(&wb->local, 1);
		}
	}
	pthread_rwlock_unlock(&wb->gate);
	free(dn);
	return ret;
}

/* Gate and lock held: may `name` of d go (as a directory: dir)? 0, or
 * the answer (ENOENT...), or 1: not known here (ask the server). */
static int removable(struct kbfs_wb *wb, struct wb_dir *d, const char *name, bool dir,
		     struct wb_name **out)
{
	struct wb_name *n = *name_slot(d, name);
	struct wb_dir *kid;

	*out = n;
	if (!n)
		return -ENOENT;
	if (dir != (n->fmt == S_IFDIR))
		return dir ? -ENOTDIR : -EISDIR;
	if (!dir)
		return 0;
	kid = dir_find(wb, n->child);
	return !kid ? 1 : kid->n ? -ENOTEMPTY : 0;
}

bool kbfs_wb_remove(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct kbfs *fs = FS(req);
	struct kbfs_wb *wb = fs->wb;
	struct wb_done *dn;
	struct wb_name *n;
	struct wb_dir *d;
	kb_Creds creds;
	const kb_Creds *who = kbfs_creds(req, &creds);
	uint64_t premote = 0;
	int ret;

	if (!wb)
		return false;
	pthread_rwlock_rdlock(&wb->gate);
	pthread_mutex_lock(&wb->lock);
	d = leased(fs, parent, &premote);
	ret = d ? removable(wb, d, name, dir, &n) : 1;
	dn = ret ? NULL : done_new(fs, dir ? kb_Op_RMDIR : kb_Op_UNLINK, name);
	if (!ret && !dn)
		ret = -ENOMEM;
	if (!ret) {
		if (dir)
			dir_drop(wb, n->child);
		kbfs_node_wb_unlinked(fs->nodes, n->child, dir);
		name_del(d, name);
		dn->dir = premote;
		kbfs_node_wb_begin(fs->nodes, parent);
	}
	pthread_mutex_unlock(&wb->lock);
	if (!ret) {
		ret = kb_wb_remove(fs->stream, premote, name, dir, who, wb_done, dn);
		if (ret) { /* not queued: the name stays; ask the server */
			kbfs_node_wb_end(fs->nodes, premote, 0, NULL, 0);
			free(dn);
			ret = -EIO;
		} else {
			kbfs_name_touched(fs, premote, name, false);
			dir_touched(fs, parent, dir ? -1 : 0);
			atomic_fetch_add(&wb->local, 1);
		}
	}
	pthread_rwlock_unlock(&wb->gate);
	if (ret == 1)
		return false;
	kbfs_reply_err(req, ret);
	return true;
}

/* Lock held: may the name (n) move onto dst of d2? 0, an answer, or 1. */
static int replaceable(struct kbfs_wb *wb, struct wb_name *n, struct wb_name *dst)
{
	struct wb_dir *kid;

	if (!dst)
		return 0;
	if ((n->fmt == S_IFDIR) != (dst->fmt == S_IFDIR))
		return n->fmt == S_IFDIR ? -ENOTDIR : -EISDIR;
	if (dst->fmt != S_IFDIR)
		return 0;
	kid = dir_find(wb, dst->child);
	return !kid ? 1 : kid->n ? -ENOTEMPTY : 0;
}

bool kbfs_wb_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		    const char *newname, unsigned flags)
{
	struct kbfs *fs = FS(req);
	struct kbfs_wb *wb = fs->wb;
	struct wb_done *dn = NULL;
	struct wb_name *n, *dst;
	struct wb_dir *d, *d2;
	kb_Creds creds;
	const kb_Creds *who = kbfs_creds(req, &creds);
	uint64_t p1 = 0, p2 = 0, child = 0;
	uint32_t fmt = 0;
	int ret = 1;

	if (!wb || flags || strlen(newname) > KB_RPC_NAME_MAX)
		return false;
	pthread_rwlock_rdlock(&wb->gate);
	pthread_mutex_lock(&wb->lock);
	d = leased(fs, parent, &p1);
	d2 = d ? leased(fs, newparent, &p2) : NULL;
	if (d2) {
		n = *name_slot(d, name);
		dst = *name_slot(d2, newname);
		ret = !n ? -ENOENT : replaceable(wb, n, dst);
		/* a directory moving elsewhere could go into itself: the server */
		if (!ret && n->fmt == S_IFDIR && parent != newparent)
			ret = 1;
		if (!ret && dst && dst->child == n->child) /* the same file: nothing */
			ret = 2;
		if (!ret && !(dn = done_new(fs, kb_Op_RENAME, name)))
			ret = -ENOMEM;
		if (!ret) {
			child = n->child;
			fmt = n->fmt;
			if (dst) /* replaced: what still names it goes behind the RENAME */
				kbfs_node_wb_unlinked(fs->nodes, dst->child, dst->fmt == S_IFDIR);
			if (dst && dst->fmt == S_IFDIR)
				dir_drop(wb, dst->child);
			name_del(d, name);
			ret = name_add(d2, newname, child, fmt);
			if (ret) { /* out of memory: the name back, ask the server */
				name_add(d, name, child, fmt);
				ret = 1;
			}
		}
		if (!ret) {
			dn->node = child; /* the reply's attributes: its ctime */
			kbfs_node_wb_begin_remote(fs->nodes, child);
			dn->dir = p1;
			dn->dir2 = p2;
			kbfs_node_wb_begin(fs->nodes, parent);
			if (newparent != parent)
				kbfs_node_wb_begin(fs->nodes, newparent);
		}
	}
	pthread_mutex_unlock(&wb->lock);
	if (!ret) {
		ret = kb_wb_rename(fs->stream, p1, name, p2, newname, 0, who, wb_done, dn);
		if (ret) { /* not queued: undo, ask the server */
			pthread_mutex_lock(&wb->lock);
			if ((d2 = dir_find(wb, p2)))
				name_del(d2, newname);
			if ((d = dir_find(wb, p1)))
				name_add(d, name, child, fmt);
			pthread_mutex_unlock(&wb->lock);
			kbfs_node_wb_end(fs->nodes, p1, 0, NULL, 0);
			kbfs_node_wb_end(fs->nodes, child, 0, NULL, 0);
			if (newparent != parent)
				kbfs_node_wb_end(fs->nodes, p2, 0, NULL, 0);
			ret = 1;
		} else {
			dn = NULL;
			kbfs_name_touched(fs, p1, name, false);
			kbfs_name_touched(fs, p2, newname, true);
			kbfs_node_renamed(fs->nodes, parent, name, newparent, newname, false);
			dir_touched(fs, parent, 0);
			if (newparent != parent)
				dir_touched(fs, newparent, 0);
			atomic_fetch_add(&wb->local, 1);
		}
	}
	pthread_rwlock_unlock(&wb->gate);
	free(dn);
	if (ret == 1)
		return false;
	kbfs_reply_err(req, ret == 2 ? 0 : ret);
	return true;
}

static void now_ts(int64_t *sec, uint32_t *nsec)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	*sec = ts.tv_sec;
	*nsec = (uint32_t)ts.tv_nsec;
}

/* a after the SETATTR of set_mask/v, as the server will make it. */
static void apply_setattr(kb_Attr *a, uint32_t m, const kb_Attr *v)
{
	if (m & kb_SetMask_SET_MODE)
		a->mode = (a->mode & S_IFMT) | (v->mode & 07777 & ~(uint32_t)(S_ISUID | S_ISGID));
	if (m & kb_SetMask_SET_SIZE)
		a->size = v->size;
	if (m & kb_SetMask_SET_ATIME_NOW)
		now_ts(&a->atime, &a->atime_ns);
	else if (m & kb_SetMask_SET_ATIME) {
		a->atime = v->atime;
		a->atime_ns = v->atime_ns;
	}
	if (m & kb_SetMask_SET_MTIME_NOW)
		now_ts(&a->mtime, &a->mtime_ns);
	else if (m & kb_SetMask_SET_MTIME) {
		a->mtime = v->mtime;
		a->mtime_ns = v->mtime_ns;
	}
	if ((m & (kb_SetMask_SET_KILL_SUIDGID | kb_SetMask_SET_SIZE)) && S_ISREG(a->mode))
		a->mode &= ~(uint32_t)(S_ISUID | ((a->mode & S_IXGRP) ? S_ISGID : 0));
	now_ts(&a->ctime, &a->ctime_ns);
}

bool kbfs_wb_setattr(struct kbfs *fs, fuse_ino_t ino, uint64_t fh, uint32_t set_mask,
		     const kb_Attr *values, kb_Attr *out)
{
	struct wb_done *dn;
	uint64_t remote;
	kb_Attr a;

	if (!fs->wb || !kbfs_node_wb_attr(fs->nodes, ino, &a))
		return false;
	/* a change of owner: the server decides who may (and squashes); one
	 * to what it is already (tar, cp -p as root) changes nothing */
	if (((set_mask & kb_SetMask_SET_UID) && values->uid != a.uid) ||
	    ((set_mask & kb_SetMask_SET_GID) && values->gid != a.gid))
		return false;
	remote = kbfs_node_remote(fs->nodes, ino);
	dn = done_new(fs, kb_Op_SETATTR, "");
	if (!dn || !remote) {
		free(dn);
		return false;
	}
	dn->node = remote;
	apply_setattr(&a, set_mask, values);
	kbfs_node_wb_begin(fs->nodes, ino);
	if (kb_wb_setattr(fs->stream, remote, fh, set_mask, values, wb_done, dn)) {
		kbfs_node_wb_end(fs->nodes, remote, 0, NULL, 0);
		free(dn);
		return false;
	}
	kbfs_node_wb_attr_set(fs->nodes, ino, &a, NS(fs->o->attr_timeout));
	if (set_mask & kb_SetMask_SET_SIZE)
		kb_cache_invalidate(fs->cache, ino, 0);
	atomic_fetch_add(&fs->wb->local, 1);
	*out = a;
	return true;
}

void kbfs_wb_wrote(struct kbfs *fs, fuse_ino_t ino, uint64_t end)
{
	kb_Attr a;

	if (kbfs_node_wb_attr(fs->nodes, ino, &a) && end > a.size) {
		a.size = end;
		a.blocks = (end + 511) / 512;
		kbfs_node_wb_attr_set(fs->nodes, ino, &a, NS(fs->o->attr_timeout));
	}
}

void kbfs_wb_write_failed(struct kbfs *fs, fuse_ino_t ino, int status)
{
	struct wb_done d = {.fs = fs, .op = kb_Op_WRITE};
	struct kbfs_node_where w;

	if (!fs->wb)
		return;
	if (kbfs_node_where(fs->nodes, ino, &w) == 0)
		snprintf(d.name, sizeof(d.name), "%.63s", w.name);
	d.node = kbfs_node_remote(fs->nodes, ino);
	failed(fs, &d, status);
}

bool kbfs_wb_refuse(fuse_req_t req, fuse_ino_t ino, fuse_ino_t ino2)
{
	struct kbfs *fs = FS(req);
	int err;

	if (!fs->wb)
		return false;
	err = kbfs_node_wb_failed(fs->nodes, ino);
	if (!err && ino2)
		err = kbfs_node_wb_failed(fs->nodes, ino2);
	if (err)
		kbfs_reply_err(req, err);
	return err != 0;
}

/* ---- space, waits, drain ---- */

/* The share's free bytes, measured at most every second (one thread asks;
 * the others use what was measured). */
static uint64_t avail_now(struct kbfs *fs)
{
	struct kbfs_wb *wb = fs->wb;
	uint64_t now = kb_now_ns(), avail;
	bool ask;
	kb_Statfs st;

	pthread_mutex_lock(&wb->sp_lock);
	ask = !wb->sp_busy && now - wb->avail_ns > 1000000000ull;
	if (ask)
		wb->sp_busy = true;
	avail = wb->avail;
	pthread_mutex_unlock(&wb->sp_lock);
	if (!ask)
		return avail;
	if (kb_rpc_statfs(fs->rpc, kbfs_node_remote(fs->nodes, FUSE_ROOT_ID), &st) == 0)
		avail = st.bavail * (st.frsize ? st.frsize : st.bsize);
	pthread_mutex_lock(&wb->sp_lock);
	wb->avail = avail;
	wb->avail_ns = kb_now_ns();
	wb->sp_busy = false;
	pthread_mutex_unlock(&wb->sp_lock);
	return avail;
}

bool kbfs_wb_early(struct kbfs *fs, size_t len)
{
	struct kb_stream_stats st;

	if (!fs->wb)
		return false;
	kb_stream_stats(fs->stream, &st);
	/* what is queued, this write, and as much again for what the server's
	 * filesystem adds (blocks, metadata): ENOSPC must reach write(2) */
	return (st.pending_bytes + len) * 2 + (1u << 20) < avail_now(fs);
}

int kbfs_wb_wait(struct kbfs *fs, fuse_ino_t ino)
{
	int ret;

	if (!fs->stream)
		return 0;
	ret = kb_stream_wait(fs->stream, fs->o->timeout * 1000);
	if (ret)
		return ret == -ETIMEDOUT ? -EIO : ret;
	return ino ? kbfs_node_wb_error(fs->nodes, ino) : 0;
}

/* An empty value: its size (a size query), or its no bytes. */
static void reply_empty(fuse_req_t req, size_t size)
{
	if (size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_xattr(req, 0);
}

bool kbfs_wb_sync_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct kbfs *fs = FS(req);
	int ret = 0;

	if (ino != FUSE_ROOT_ID)
		return false;
	if (!strcmp(name, KBFS_WB_DRAIN_XATTR)) { /* only wait: tools and tests */
		if (fs->stream && kb_stream_wait(fs->stream, fs->o->timeout * 1000))
			fuse_reply_err(req, EIO);
		else
			reply_empty(req, size);
		return true;
	}
	if (strcmp(name, KBFS_WB_SYNC_XATTR))
		return false;
	if (fs->stream)
		ret = kb_stream_drain(fs->stream, fs->o->timeout * 1000);
	if (!ret && !fs->read_only)
		ret = kb_rpc_syncfs(fs->rpc, kbfs_node_remote(fs->nodes, FUSE_ROOT_ID));
	if (ret == -ENOSYS || ret == -EOPNOTSUPP)
		ret = 0; /* an older server: what it answered is on its disk's cache */
	/* the kernel repeats a path call answered ESTALE (once, revalidating
	 * the path): the repeat would find the error taken and say 0 */
	if (ret == -ESTALE)
		ret = -EIO;
	if (ret)
		kbfs_reply_err(req, ret);
	else
		reply_empty(req, size);
	return true;
}

void kbfs_wb_status(struct kbfs *fs, char *buf, size_t cap)
{
	struct kb_stream_stats st;

	if (!fs->stream) {
		snprintf(buf, cap, "write-behind: off (%s)\n",
			 fs->o->sync_meta ? "sync_meta"
			 : fs->read_only  ? "read-only"
			 : fs->o->owners  ? "owners=preserve"
					  : "the server offers no lease");
		return;
	}
	kb_stream_stats(fs->stream, &st);
	snprintf(buf, cap,
		 "write-behind: on, %u queued now (most %u), %llu sent (in %llu frames, %llu of "
		 "them compound), %llu answered here, %llu recalls, %llu failed%s%s\n",
		 st.pending, st.max_pending, (unsigned long long)st.sent,
		 (unsigned long long)st.frames, (unsigned long long)st.compounds,
		 (unsigned long long)atomic_load(&fs->wb->local),
		 (unsigned long long)atomic_load(&fs->wb->recalls), (unsigned long long)st.failed,
		 st.last_err ? ", last: " : "",
		 st.last_err ? strerror(-kb_err_to_errno(st.last_err)) : "");
}
