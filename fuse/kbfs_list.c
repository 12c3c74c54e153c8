/* kbfs_list.c - whole directories (see kbfs_list.h). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kbfs.h"
#include "kbfs_list.h"
#include "kbfs_node.h"
#include "kbfs_wb.h"
#include "rpc_api.h"
#include "util.h"

struct lent {
	char *name;      /* owned */
	kb_Entry e;      /* node 0: ".", "..", or not looked up (listed only) */
	uint64_t cookie; /* resume after it (the server's) */
	uint32_t type;   /* DT_* */
	uint64_t ino;
	bool held; /* the server counted a lookup we still hold */
};

enum dstate {
	D_FREE,
	D_FETCHING,
	D_READY,
	D_BIG
};
#define KBFS_LIST_TOUCHED 32
#define KBFS_LIST_RECENT 64

struct ldir {
	uint64_t dir; /* server node id */
	enum dstate state;
	uint64_t sess, kids, epoch; /* what the listing was fetched under */
	uint64_t fetched_ns, used_ns, big_until_ns;
	bool dirty; /* dropped: cleared by the next caller on a FUSE thread */
	uint64_t touched[KBFS_LIST_TOUCHED]; /* name hashes we changed: unknown */
	unsigned ntouched;
	struct lent *ents; /* owned, n of them */
	unsigned n;
	uint32_t *hash; /* owned, hcap slots: entry index + 1, 0 = empty */
	bool no_lease;  /* fetched right after a change of ours there */
	bool walked;    /* its next siblings were asked for (walk_ahead) */
	unsigned hcap;
};

/* Node ids whose held lookups are given back once the lock is dropped. */
struct fbag {
	uint64_t *v;
	size_t n, cap;
};

struct kbfs_list {
	pthread_mutex_t lock;
	pthread_cond_t done;             /* a fetch ended (lock) */
	struct ldir d[KBFS_LIST_DIRS];   /* (lock) */
	unsigned total;                  /* entries held (lock) */
	bool unsupported;                /* the server refused READDIR without a handle (lock) */
	uint64_t fetched, answered, big; /* (lock) */
	struct {
		uint64_t dir, ns;
	} recent[KBFS_LIST_RECENT]; /* our touches (lock) */
	struct fbag deferred;       /* lookups to give back, from the receiver (lock) */
	unsigned ahead;             /* walk-ahead fetches in flight (lock) */
	unsigned rpos;              /* (lock) */
	kbfs_list_forget_fn forget;
	void *arg;
};

static void fbag_add(struct fbag *b, uint64_t node)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		uint64_t *v = realloc(b->v, cap * sizeof(*v));

		if (!v) /* the server keeps the node until the session ends */
			return;
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = node;
}

/* Lock held: what the receiver thread could not give back joins b. */
static void take_deferred(struct kbfs_list *l, struct fbag *b)
{
	for (size_t i = 0; i < l->deferred.n; i++)
		fbag_add(b, l->deferred.v[i]);
	l->deferred.n = 0;
}

static void fbag_run(struct kbfs_list *l, struct fbag *b)
{
	for (size_t i = 0; i < b->n; i++)
		l->forget(l->arg, b->v[i]);
	free(b->v);
}

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		h ^= c >= 'A' && c <= 'Z' ? c + 32u : c; /* ASCII case folded */
		h *= 16777619u;
	}
	return h;
}

static bool ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

int kbfs_list_new(struct kbfs_list **out, kbfs_list_forget_fn forget, void *arg)
{
	struct kbfs_list *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->done, NULL);
	l->forget = forget;
	l->arg = arg;
	*out = l;
	return 0;
}

/* Empty slot d; held lookups into b (NULL: dropped). Lock held. */
static void dir_clear(struct kbfs_list *l, struct ldir *d, struct fbag *b)
{
	for (unsigned i = 0; i < d->n; i++) {
		if (b && d->ents[i].held)
			fbag_add(b, d->ents[i].e.node);
		free(d->ents[i].name);
	}
	l->total -= d->n;
	free(d->ents);
	free(d->hash);
	memset(d, 0, sizeof(*d));
}

/* A listing no longer valid: emptied, but a directory not to be listed
 * for a while stays known as such. Lock held. */
static void dir_retire(struct kbfs_list *l, struct ldir *d, uint64_t now, struct fbag *b)
{
	uint64_t dir = d->dir, until = d->big_until_ns;

	dir_clear(l, d, b);
	if (until > now) {
		d->dir = dir;
		d->state = D_BIG;
		d->big_until_ns = until;
	}
}

void kbfs_list_free(struct kbfs_list *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < KBFS_LIST_DIRS; i++)
		dir_clear(l, &l->d[i], NULL);
	free(l->deferred.v);
	pthread_cond_destroy(&l->done);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static struct ldir *dir_find(struct kbfs_list *l, uint64_t dir)
{
	for (unsigned i = 0; i < KBFS_LIST_DIRS; i++)
		if (l->d[i].state != D_FREE && l->d[i].dir == dir)
			return &l->d[i];
	return NULL;
}

/* The entry named exactly `name`, or NULL; *ci: some entry equals it
 * without ASCII case. Lock held. */
static struct lent *ent_find(struct ldir *d, const char *name, bool *ci)
{
	unsigned mask = d->hcap - 1, i = name_hash(name) & mask;

	*ci = false;
	for (; d->hash[i]; i = (i + 1) & mask) {
		struct lent *e = &d->ents[d->hash[i] - 1];

		if (!strcmp(e->name, name))
			return e;
		if (!strcasecmp(e->name, name))
			*ci = true;
	}
	return NULL;
}

static bool dir_valid(const struct ldir *d, const struct kbfs_list_key *k)
{
	if (d->state != D_READY || d->dirty || d->sess != k->sess || d->kids != k->kids)
		return false;
	return k->now_ns < d->fetched_ns + k->ttl_ns || (k->lease && d->epoch == k->lease);
}

static uint64_t touch_key(const char *name)
{
	return ((uint64_t)name_hash(name) << 32 | (uint32_t)strlen(name)) | 1;
}

static bool touched(const struct ldir *d, const char *name)
{
	uint64_t key = touch_key(name);

	for (unsigned i = 0; i < d->ntouched; i++)
		if (d->touched[i] == key)
			return true;
	return false;
}

enum kbfs_list_res kbfs_list_find(struct kbfs_list *l, const struct kbfs_list_key *k,
				  const char *name, bool take, kb_Entry *e, bool *held,
				  bool *leased, uint64_t *left_ns)
{
	enum kbfs_list_res res = KBFS_LIST_NONE;
	struct fbag b = {0};
	struct ldir *d;
	struct lent *ent;
	bool ci;

	pthread_mutex_lock(&l->lock);
	d = dir_find(l, k->dir);
	if (!d || d->state != D_READY)
		goto out;
	if (!dir_valid(d, k)) {
		dir_retire(l, d, k->now_ns, &b);
		goto out;
	}
	d->used_ns = k->now_ns;
	if (touched(d, name))
		goto out; /* we changed it: ask */
	*leased = k->lease && d->epoch == k->lease;
	*left_ns = k->now_ns < d->fetched_ns + k->ttl_ns ? d->fetched_ns + k->ttl_ns - k->now_ns
							 : 0;
	ent = ent_find(d, name, &ci);
	if (ent) {
		*e = ent->e;
		*held = ent->held && take;
		if (take)
			ent->held = false;
		res = KBFS_LIST_FOUND;
	} else if (!ci && ascii(name) && *leased) {
		/* "missing" only under the lease (a name made elsewhere is
		 * pushed): without it, as before, a name not known is asked */
		res = KBFS_LIST_MISSING;
	}
	if (res != KBFS_LIST_NONE)
		l->answered++;
out:
	take_deferred(l, &b);
	pthread_mutex_unlock(&l->lock);
	fbag_run(l, &b);
	return res;
}

void kbfs_list_drop(struct kbfs_list *l, uint64_t dir)
{
	struct ldir *d;

	pthread_mutex_lock(&l->lock);
	d = dir_find(l, dir);
	if (d && (d->state == D_FETCHING || d->state == D_READY))
		d->dirty = true;
	pthread_mutex_unlock(&l->lock);
}

void kbfs_list_touch(struct kbfs_list *l, uint64_t dir, const char *name, uint64_t now_ns,
		     uint64_t ttl_ns)
{
	struct ldir *d;

	pthread_mutex_lock(&l->lock);
	l->recent[l->rpos].dir = dir;
	l->recent[l->rpos].ns = now_ns;
	l->rpos = (l->rpos + 1) % KBFS_LIST_RECENT;
	d = dir_find(l, dir);
	if (d && d->state == D_FETCHING) {
		d->dirty = true;
	} else if (d && d->state == D_READY && !touched(d, name)) {
		if (d->ntouched < KBFS_LIST_TOUCHED) {
			d->touched[d->ntouched++] = touch_key(name);
		} else { /* busy writing here, not browsing: not listed for a while */
			d->dirty = true;
			d->big_until_ns = now_ns + 2 * ttl_ns;
		}
	}
	pthread_mutex_unlock(&l->lock);
}

/* A slot for a new listing: a free one, else the least recently used one
 * not being fetched. Lock held. */
static struct ldir *dir_slot(struct kbfs_list *l, struct fbag *b)
{
	struct ldir *v = NULL;

	for (unsigned i = 0; i < KBFS_LIST_DIRS; i++) {
		struct ldir *d = &l->d[i];

		if (d->state == D_FREE)
			return d;
		if (d->state != D_FETCHING && (!v || d->used_ns < v->used_ns))
			v = d;
	}
	if (v)
		dir_clear(l, v, b);
	return v;
}

/* Make room for n more entries: least recently used listings go. */
static void make_room(struct kbfs_list *l, const struct ldir *keep, unsigned n, struct fbag *b)
{
	while (l->total + n > KBFS_LIST_TOTAL) {
		struct ldir *v = NULL;

		for (unsigned i = 0; i < KBFS_LIST_DIRS; i++) {
			struct ldir *d = &l->d[i];

			if (d != keep && d->state == D_READY && (!v || d->used_ns < v->used_ns))
				v = d;
		}
		if (!v)
			return;
		dir_clear(l, v, b);
	}
}

/* Start a fetch of dir: the slot, marked D_FETCHING, or NULL with *ret
 * when the caller is not to fetch (0: another did; -errno). Lock held. */
static struct ldir *fetch_begin(struct kbfs_list *l, uint64_t dir, uint64_t sess, uint64_t now,
				uint64_t ttl_ns, struct fbag *b, int *ret)
{
	struct ldir *d = dir_find(l, dir);

	*ret = 0;
	if (l->unsupported) {
		*ret = -ENOSYS;
		return NULL;
	}
	if (d && d->state == D_FETCHING) {
		while (d->state == D_FETCHING && d->dir == dir)
			pthread_cond_wait(&l->done, &l->lock);
		return NULL; /* look again */
	}
	if (d && d->state == D_READY && d->dirty)
		dir_retire(l, d, now, b);
	if (d && d->state == D_BIG && now < d->big_until_ns) {
		*ret = -EFBIG;
		return NULL;
	}
	if (d && d->state == D_READY && !d->dirty && d->sess == sess &&
	    now < d->fetched_ns + ttl_ns)
		return NULL; /* just fetched: if it does not answer, ask per name */
	if (d)
		dir_clear(l, d, b);
	d = dir_slot(l, b);
	if (!d) {
		*ret = -EBUSY;
		return NULL;
	}
	d->dir = dir;
	d->state = D_FETCHING;
	for (unsigned i = 0; i < KBFS_LIST_RECENT; i++) /* see KBFS_NODE_QUIET_NS */
		if (l->recent[i].dir == dir && now < l->recent[i].ns + KBFS_NODE_QUIET_NS)
			d->no_lease = true;
	return d;
}

/* The READDIR reply's entries into d (D_READY); held: each looked-up one
 * holds the server's lookup (else the batch handed them to the kernel).
 * Lock held. */
static void fetch_store(struct kbfs_list *l, struct ldir *d, const struct kb_rpc_result *res,
			bool held, struct fbag *b)
{
	size_t off = 0;
	unsigned cap = (unsigned)KB_MIN(res->resp.value, KBFS_LIST_MAX), hcap = 16;
	kb_Dirent de;

	d->ents = calloc(cap ? cap : 1, sizeof(*d->ents));
	while (hcap < 2 * cap)
		hcap *= 2;
	d->hash = calloc(hcap, sizeof(*d->hash));
	d->hcap = hcap;
	while (kb_rpc_dirent_next(res->bulk, res->bulk_len, &off, &de) == 1) {
		struct lent *e;
		unsigned i;
		bool ci;

		bool looked = de.has_entry && de.entry.node;

		e = d->ents && d->hash && d->n < cap && !(looked && ent_find(d, de.name, &ci))
			    ? &d->ents[d->n]
			    : NULL;
		if (e)
			e->name = strdup(de.name);
		if (!e || !e->name) { /* not held: given back */
			if (looked && held)
				fbag_add(b, de.entry.node);
			continue;
		}
		if (looked)
			e->e = de.entry;
		else /* ".", "..", or gone before the server looked it up */
			memset(&e->e, 0, sizeof(e->e));
		e->cookie = de.cookie;
		e->type = de.type;
		e->ino = de.ino;
		e->held = looked && held;
		d->n++;
		if (!looked)
			continue;
		for (i = name_hash(de.name) & (hcap - 1); d->hash[i]; i = (i + 1) & (hcap - 1))
			;
		d->hash[i] = d->n;
	}
	l->total += d->n;
}

/* Every entry of a batch that will not be held: its lookup given back. */
static void forget_batch(const struct kb_rpc_result *res, struct fbag *b)
{
	size_t off = 0;
	kb_Dirent de;

	while (kb_rpc_dirent_next(res->bulk, res->bulk_len, &off, &de) == 1)
		if (de.has_entry && de.entry.node)
			fbag_add(b, de.entry.node);
}

int kbfs_list_fetch(struct kbfs *fs, uint64_t dir_ino, uint64_t dir)
{
	struct kbfs_list *l = fs->list;
	uint64_t now = kb_now_ns(), sess = kb_rpc_session(fs->rpc, NULL);
	uint64_t ttl = NS(fs->o->entry_timeout), kids, epoch;
	struct kb_rpc_result *res = NULL;
	struct kbfs_list_key k;
	struct fbag b = {0};
	struct ldir *d;
	int ret;

	if (!(kb_rpc_features(fs->rpc) & kb_Features_FEATURE_READDIR_NOFH))
		return -ENOSYS; /* an older server: per-name lookups */
	pthread_mutex_lock(&l->lock);
	d = fetch_begin(l, dir, sess, now, ttl, &b, &ret);
	pthread_mutex_unlock(&l->lock);
	fbag_run(l, &b);
	if (!d)
		return ret;
	memset(&b, 0, sizeof(b));
	/* read before asking: a change seen meanwhile makes the listing stale */
	kbfs_list_key_now(fs, dir_ino, dir, &k);
	kids = k.kids;
	epoch = k.lease;
	res = kb_rpc_result_new();
	/* fh 0, no OPENDIR: the server lists through a descriptor of its own */
	ret = !res             ? -ENOMEM
	      : kbfs_wb_on(fs) ? kb_rpc_readdir_lease(fs->rpc, dir, 0, KBFS_LIST_MAX, res)
			       : kb_rpc_readdir(fs->rpc, dir, 0, 0, KBFS_LIST_MAX, true, res);
	/* backed by the lease only if it held from before the request to now
	 * (a lapse between may have lost a push about it) */
	if (epoch && kbfs_lease(fs, kb_now_ns()) != epoch)
		epoch = 0;
	pthread_mutex_lock(&l->lock);
	if (ret == -EBADF || ret == -ENOSYS)
		l->unsupported = true; /* an older server: per-name lookups */
	if (!ret && !res->resp.eof) {  /* more than KBFS_LIST_MAX entries */
		forget_batch(res, &b);
		d->state = D_BIG;
		d->big_until_ns = now + KBFS_LIST_BIG_NS;
		l->big++;
		ret = -EFBIG;
	} else if (!ret && d->dirty) { /* changed while we listed it */
		forget_batch(res, &b);
		dir_clear(l, d, &b);
	} else if (!ret) {
		make_room(l, d, (unsigned)KB_MIN(res->resp.value, KBFS_LIST_MAX), &b);
		fetch_store(l, d, res, true, &b);
		d->state = D_READY;
		d->sess = sess;
		d->kids = kids;
		d->fetched_ns = d->used_ns = now;
		d->epoch = d->no_lease ? 0 : epoch;
		l->fetched++;
	} else {
		dir_clear(l, d, &b);
	}
	pthread_cond_broadcast(&l->done);
	take_deferred(l, &b);
	pthread_mutex_unlock(&l->lock);
	fbag_run(l, &b);
	if (res && res->resp.dir_lease) /* whole and unchanged, or it goes back */
		kbfs_wb_listed(fs, dir_ino, dir, true, ret ? NULL : res, kids);
	kb_rpc_result_free(res);
	if (!ret)
		kbfs_list_walk(fs, dir_ino, dir);
	return ret;
}

void kbfs_list_counts(struct kbfs_list *l, uint64_t *fetched, uint64_t *answered, uint64_t *big)
{
	pthread_mutex_lock(&l->lock);
	*fetched = l->fetched;
	*answered = l->answered;
	*big = l->big;
	pthread_mutex_unlock(&l->lock);
}

void kbfs_list_key_now(struct kbfs *fs, uint64_t dir_ino, uint64_t dir, struct kbfs_list_key *k)
{
	k->dir = dir;
	k->sess = kb_rpc_session(fs->rpc, NULL);
	k->kids = kbfs_node_kids_gen(fs->nodes, dir_ino);
	k->now_ns = kb_now_ns();
	/* a directory on another filesystem than the share's: short timeouts */
	k->lease = kbfs_node_no_lease(fs->nodes, dir_ino) ? 0 : kbfs_lease(fs, k->now_ns);
	k->ttl_ns = NS(fs->o->entry_timeout);
}

void kbfs_list_adopt(struct kbfs *fs, const struct kbfs_list_key *k,
		     const struct kb_rpc_result *res)
{
	struct kbfs_list *l = fs->list;
	uint64_t epoch = k->lease;
	struct fbag b = {0};
	struct ldir *d;
	int ret;

	if (!res->resp.eof || res->resp.value > KBFS_LIST_MAX)
		return; /* not the whole directory */
	if (epoch && kbfs_lease(fs, kb_now_ns()) != epoch)
		epoch = 0;
	pthread_mutex_lock(&l->lock);
	d = dir_find(l, k->dir);
	if (d && d->state == D_READY && dir_valid(d, k)) {
		pthread_mutex_unlock(&l->lock);
		return; /* one we hold is as good */
	}
	d = fetch_begin(l, k->dir, k->sess, k->now_ns, 0, &b, &ret);
	if (d) {
		make_room(l, d, (unsigned)res->resp.value, &b);
		fetch_store(l, d, res, false, &b);
		d->state = D_READY;
		d->sess = k->sess;
		d->kids = k->kids;
		d->fetched_ns = d->used_ns = k->now_ns;
		d->epoch = d->no_lease ? 0 : epoch;
		pthread_cond_broadcast(&l->done);
	}
	pthread_mutex_unlock(&l->lock);
	fbag_run(l, &b);
}

/* One listed entry into the reply buffer: its size, or 0 when it does not
 * fit. With plus, a looked-up entry counts a kernel lookup: the listing's
 * held one handed over, or one more on a node the kernel knows; when
 * neither can be (forgotten since, or stale), it goes without attributes
 * (the kernel then LOOKUPs it). Both locks nest list -> nodes. */
static size_t readdir_one(struct kbfs *fs, fuse_req_t req, uint64_t dir_ino, struct lent *e,
			  bool plus, uint64_t gen, char *buf, size_t rem, struct fbag *b)
{
	struct fuse_entry_param ep = {0};
	size_t need;

	ep.attr.st_ino = kbfs_nodes_shown_ino(fs->nodes, e->ino);
	ep.attr.st_mode = (mode_t)e->type << 12;
	if (!plus) {
		need = fuse_add_direntry(req, buf, rem, e->name, &ep.attr, (off_t)e->cookie);
		return need > rem ? 0 : need;
	}
	need = fuse_add_direntry_plus(req, NULL, 0, e->name, NULL, 0);
	if (need > rem)
		return 0;
	if (e->e.node) {
		bool held = e->held;
		kb_Attr a = e->e.attr;

		e->held = false;
		if (kbfs_node_by_remote(fs->nodes, e->e.node, NULL))
			ep.ino = kbfs_node_enter_listed(fs->nodes, dir_ino, e->name, &e->e, held,
							NS(fs->o->attr_timeout), gen, &a);
		else if (held)
			ep.ino = kbfs_node_enter(fs->nodes, dir_ino, e->name, &e->e,
						 NS(fs->o->attr_timeout), gen);
		if (ep.ino)
			kbfs_attr_to_stat(fs, &a, &ep.attr);
		else if (held)
			fbag_add(b, e->e.node);
	}
	if (ep.ino) {
		ep.generation = e->e.generation;
		ep.attr_timeout = fs->o->attr_timeout;
		ep.entry_timeout = fs->o->entry_timeout;
	}
	return fuse_add_direntry_plus(req, buf, rem, e->name, &ep, (off_t)e->cookie);
}

bool kbfs_list_readdir(struct kbfs *fs, fuse_req_t req, uint64_t dir_ino, uint64_t dir,
		       uint64_t off, bool plus, char *buf, size_t size, size_t *used)
{
	struct kbfs_list *l = fs->list;
	struct kbfs_list_key k;
	struct ldir *d;
	struct fbag b = {0};
	unsigned i = 0;
	bool served = false;
	uint64_t gen = kbfs_nodes_gen(fs->nodes);

	kbfs_list_key_now(fs, dir_ino, dir, &k);
	*used = 0;
	pthread_mutex_lock(&l->lock);
	d = dir_find(l, dir);
	while (d && d->state == D_FETCHING) { /* a walk-ahead: about to arrive */
		pthread_cond_wait(&l->done, &l->lock);
		d = dir_find(l, dir);
	}
	if (!d || !dir_valid(d, &k) || d->ntouched)
		goto out; /* names we made since are not in it */
	if (!k.lease || d->epoch != k.lease)
		gen = UINT64_MAX; /* attributes not backed by the lease */
	if (off) {                /* resume after the entry with that cookie */
		while (i < d->n && d->ents[i].cookie != off)
			i++;
		if (i++ == d->n)
			goto out;
	}
	for (; i < d->n; i++) {
		size_t n = readdir_one(fs, req, dir_ino, &d->ents[i], plus, gen, buf + *used,
				       size - *used, &b);

		if (!n)
			break;
		*used += n;
	}
	d->used_ns = k.now_ns;
	l->answered++;
	served = true;
out:
	take_deferred(l, &b);
	pthread_mutex_unlock(&l->lock);
	fbag_run(l, &b);
	if (served && !off)
		kbfs_list_walk(fs, dir_ino, dir);
	return served;
}

/* ---- walking: the next sibling directories, listed before they are asked */

struct ahead_arg {
	struct kbfs *fs;
	uint64_t dir;
	struct kbfs_list_key k; /* stamped before the request */
};

/* Receiver thread: a walk-ahead listing arrived. Gives nothing back itself
 * (a FORGET could wait for a slot only this thread frees): l->deferred. */
static void ahead_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct ahead_arg *a = arg;
	struct kbfs_list *l = a->fs->list;
	uint64_t epoch = a->k.lease;
	struct ldir *d;

	if (epoch && kbfs_lease(a->fs, kb_now_ns()) != epoch)
		epoch = 0;
	pthread_mutex_lock(&l->lock);
	d = dir_find(l, a->dir);
	if (d && d->state == D_FETCHING) {
		if (!status && res && res->resp.eof && !d->dirty) {
			make_room(l, d, (unsigned)KB_MIN(res->resp.value, KBFS_LIST_MAX),
				  &l->deferred);
			fetch_store(l, d, res, true, &l->deferred);
			d->state = D_READY;
			d->sess = a->k.sess;
			d->kids = a->k.kids;
			d->fetched_ns = d->used_ns = a->k.now_ns;
			d->epoch = d->no_lease ? 0 : epoch;
			l->fetched++;
		} else {
			if (!status && res)
				forget_batch(res, &l->deferred);
			dir_clear(l, d, &l->deferred);
		}
	} else if (!status && res) { /* cannot happen: the slot is ours */
		forget_batch(res, &l->deferred);
	}
	l->ahead--;
	pthread_cond_broadcast(&l->done);
	pthread_mutex_unlock(&l->lock);
	free(a);
}

/* Lock held: d, a directory entry of listing p, gets a D_FETCHING slot
 * unless it is held or fetched already: true when it went into todo. */
static bool ahead_one(struct kbfs_list *l, const struct lent *e, uint64_t *todo, unsigned *n,
		      struct fbag *b)
{
	struct ldir *d;

	if (dir_find(l, e->e.node) || l->ahead >= KBFS_LIST_AHEAD_MAX)
		return false;
	d = dir_slot(l, b);
	if (!d)
		return false;
	d->dir = e->e.node;
	d->state = D_FETCHING;
	l->ahead++;
	todo[(*n)++] = e->e.node;
	return true;
}

static bool walkable(const struct lent *e)
{
	return e->type == DT_DIR && e->e.node && !e->e.no_lease;
}

/* Lock held: the sibling directories a walk from `name` reaches next, in
 * either order walkers use: the next KBFS_LIST_AHEAD / 2 in the parent's
 * listing order (du, find: getdents order) and in name order (git, make,
 * ls -R: sorted), each given a D_FETCHING slot unless held or fetched. */
static unsigned ahead_pick(struct kbfs_list *l, struct ldir *p, const char *name, uint64_t *todo,
			   struct fbag *b)
{
	const struct lent *next[KBFS_LIST_AHEAD / 2];
	unsigned n = 0, seen = 0, nn = 0;
	struct lent *me;
	bool ci;

	me = ent_find(p, name, &ci);
	if (!me)
		return 0;
	for (struct lent *e = me + 1; e < p->ents + p->n && seen < KBFS_LIST_AHEAD / 2; e++)
		if (walkable(e)) {
			seen++;
			ahead_one(l, e, todo, &n, b);
		}
	/* the smallest names after ours, kept sorted (insertion) */
	for (struct lent *e = p->ents; e < p->ents + p->n; e++) {
		unsigned i;

		if (!walkable(e) || strcmp(e->name, name) <= 0)
			continue;
		if (nn == KBFS_LIST_AHEAD / 2 && strcmp(e->name, next[nn - 1]->name) >= 0)
			continue;
		i = nn < KBFS_LIST_AHEAD / 2 ? nn++ : nn - 1;
		for (; i > 0 && strcmp(next[i - 1]->name, e->name) > 0; i--)
			next[i] = next[i - 1];
		next[i] = e;
	}
	for (unsigned i = 0; i < nn; i++)
		ahead_one(l, next[i], todo, &n, b);
	return n;
}

void kbfs_list_walk(struct kbfs *fs, uint64_t dir_ino, uint64_t dir)
{
	struct kbfs_list *l = fs->list;
	uint64_t todo[KBFS_LIST_AHEAD];
	struct kbfs_node_where w;
	struct kbfs_list_key pk;
	struct fbag b = {0};
	struct ldir *d, *p;
	unsigned n = 0;

	pthread_mutex_lock(&l->lock);
	d = dir_find(l, dir);
	if (!d || d->state != D_READY || d->walked) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	d->walked = true;
	pthread_mutex_unlock(&l->lock);
	if (kbfs_node_where(fs->nodes, dir_ino, &w) < 0)
		return; /* the root, or unnamed */
	kbfs_list_key_now(fs, w.parent_ino, w.parent_remote, &pk);
	pthread_mutex_lock(&l->lock);
	p = dir_find(l, w.parent_remote);
	if (p && dir_valid(p, &pk))
		n = ahead_pick(l, p, w.name, todo, &b);
	pthread_mutex_unlock(&l->lock);
	fbag_run(l, &b);
	for (unsigned i = 0; i < n; i++) {
		struct ahead_arg *a = calloc(1, sizeof(*a));

		if (a) {
			a->fs = fs;
			a->dir = todo[i];
			a->k.dir = todo[i];
			a->k.sess = pk.sess;
			a->k.now_ns = kb_now_ns();
			a->k.lease = kbfs_lease(fs, a->k.now_ns);
			a->k.kids = kbfs_node_kids_by_remote(fs->nodes, todo[i]);
		}
		if (a && kb_rpc_readdir_async(fs->rpc, todo[i], 0, 0, KBFS_LIST_MAX, true,
					      ahead_done, a) == 0)
			continue;
		free(a);
		pthread_mutex_lock(&l->lock);
		d = dir_find(l, todo[i]);
		if (d && d->state == D_FETCHING)
			dir_clear(l, d, NULL);
		l->ahead--;
		pthread_cond_broadcast(&l->done);
		pthread_mutex_unlock(&l->lock);
	}
}

uint64_t kbfs_lease(void *arg, uint64_t now_ns)
{
	struct kbfs *fs = arg;

	/* a timeout of 0 asks for no caching: none past it either */
	if (!fs->rpc || fs->o->attr_timeout <= 0 || fs->o->entry_timeout <= 0)
		return 0;
	return kb_rpc_lease(fs->rpc, now_ns);
}
