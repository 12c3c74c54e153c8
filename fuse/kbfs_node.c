/* kbfs_node.c - the inode table (see kbfs_node.h). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kbfs_node.h"
#include "util.h"

#define KBFS_ROOT_INO 1 /* FUSE_ROOT_ID */
#define NODE_BUCKETS 4096
#define OLD_BUCKETS 1024
#define IMAP_BUCKETS 1024

struct kbfs_nodes {
	pthread_mutex_t lock;
	struct kbfs_node root;
	struct kbfs_node *hash[NODE_BUCKETS];  /* by remote id (lock) */
	struct kbfs_node *old[OLD_BUCKETS];    /* old-session nodes by parent+name (lock) */
	unsigned nold;                         /* nodes in `old` (lock) */
	uint64_t sgen;                         /* current rpc session generation (lock) */
	struct kbfs_node *nhash[NODE_BUCKETS]; /* by (parent, name) (lock) */
	unsigned count;                        /* live nodes besides root (lock) */
	uint64_t gen;                          /* kbfs_nodes_outdate_attrs (lock) */
	kbfs_lease_fn lease;                   /* NULL: no lease (set before use) */
	void *lease_arg;
	uint64_t epoch;    /* lease epoch last seen (lock) */
	uint64_t wb_epoch; /* write-behind epoch (lock): kbfs_nodes_wb_lapse */
	uint64_t wb_lease; /* the server's lease epoch last seen by kbfs_node_wb_attr (lock) */
	/* The server's st_ino of nodes shown under a fake one (lock): every
	 * stat we give maps it (kbfs_nodes_shown_ino). */
	struct ino_map *imap[IMAP_BUCKETS];
	atomic_uint nimap;
};

struct ino_map {
	uint64_t real, fake;
	struct ino_map *next;
};

void kbfs_nodes_set_lease(struct kbfs_nodes *t, kbfs_lease_fn fn, void *arg)
{
	t->lease = fn;
	t->lease_arg = arg;
}

/* The lease's epoch now (0: none); called without the lock. */
static uint64_t lease_now(struct kbfs_nodes *t)
{
	return t->lease ? t->lease(t->lease_arg, kb_now_ns()) : 0;
}

/* A lapse of the lease is a change like any other: nothing stored from a
 * request sent before it is current. Lock held. */
static void sync_epoch_locked(struct kbfs_nodes *t, uint64_t e)
{
	if (e != t->epoch) {
		t->epoch = e;
		t->gen++;
	}
}

/* n's attributes may be used: within attr_timeout of the reply, or backed
 * by the lease they were stored under while no change to n or a sibling
 * was seen since (kids_gen). Lock held, epoch synced. */
static bool leased_locked(struct kbfs_nodes *t, const struct kbfs_node *n)
{
	return t->epoch && n->lease_epoch == t->epoch &&
	       (!n->parent || n->parent_kids == n->parent->kids_gen);
}

static bool valid_locked(struct kbfs_nodes *t, const struct kbfs_node *n, uint64_t now)
{
	return n->attr_expiry_ns > now || leased_locked(t, n);
}

uint64_t kbfs_attr_version(const kb_Attr *a)
{
	uint64_t v[5] = {a->size, (uint64_t)a->mtime, a->mtime_ns, (uint64_t)a->ctime, a->ctime_ns};
	uint64_t h = 0xcbf29ce484222325ull;

	for (int i = 0; i < 5; i++) {
		h ^= v[i];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h ? h : 1; /* 0 means "no version" to the cache */
}

static unsigned bucket(uint64_t remote)
{
	return (unsigned)((remote * 0x9e3779b97f4a7c15ull) >> 52) % NODE_BUCKETS;
}

static void hash_add(struct kbfs_nodes *t, struct kbfs_node *n)
{
	unsigned b = bucket(n->remote);

	n->hnext = t->hash[b];
	t->hash[b] = n;
}

static void hash_del(struct kbfs_nodes *t, struct kbfs_node *n)
{
	struct kbfs_node **pp = &t->hash[bucket(n->remote)];

	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	n->hnext = NULL;
}

static unsigned old_bucket(const struct kbfs_node *parent, const char *name)
{
	uint64_t h = (uintptr_t)parent * 0x9e3779b97f4a7c15ull;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	return (unsigned)(h >> 40) % OLD_BUCKETS;
}

/* Lock held. */
static void old_add(struct kbfs_nodes *t, struct kbfs_node *n)
{
	unsigned b;

	if (n->in_old || !n->parent || !n->name)
		return;
	b = old_bucket(n->parent, n->name);
	n->onext = t->old[b];
	t->old[b] = n;
	n->in_old = true;
	t->nold++;
}

/* Lock held. */
static void old_del(struct kbfs_nodes *t, struct kbfs_node *n)
{
	struct kbfs_node **pp;

	if (!n->in_old)
		return;
	pp = &t->old[old_bucket(n->parent, n->name)];
	while (*pp && *pp != n)
		pp = &(*pp)->onext;
	if (*pp)
		*pp = n->onext;
	n->onext = NULL;
	n->in_old = false;
	t->nold--;
}

/* The old-session node named parent/name, or NULL. Lock held. */
static struct kbfs_node *old_find(struct kbfs_nodes *t, const struct kbfs_node *parent,
				  const char *name)
{
	struct kbfs_node *n = t->nold ? t->old[old_bucket(parent, name)] : NULL;

	while (n && (n->parent != parent || strcmp(n->name, name)))
		n = n->onext;
	return n;
}

static unsigned name_bucket(const struct kbfs_node *parent, const char *name)
{
	uint64_t h = (uintptr_t)parent * 0x9e3779b97f4a7c15ull;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ull;
	return (unsigned)(h >> 40) % NODE_BUCKETS;
}

/* Index n by its (parent, name), if it has both. Lock held. */
static void name_add(struct kbfs_nodes *t, struct kbfs_node *n)
{
	unsigned b;

	if (!n->parent || !n->name)
		return;
	b = name_bucket(n->parent, n->name);
	n->nnext = t->nhash[b];
	t->nhash[b] = n;
}

static void name_del(struct kbfs_nodes *t, struct kbfs_node *n)
{
	struct kbfs_node **pp;

	if (!n->parent || !n->name)
		return;
	pp = &t->nhash[name_bucket(n->parent, n->name)];
	while (*pp && *pp != n)
		pp = &(*pp)->nnext;
	if (*pp)
		*pp = n->nnext;
	n->nnext = NULL;
}

static struct kbfs_node *hash_find(struct kbfs_nodes *t, uint64_t remote)
{
	struct kbfs_node *n = t->hash[bucket(remote)];

	while (n && n->remote != remote)
		n = n->hnext;
	return n;
}

int kbfs_nodes_new(struct kbfs_nodes **out, const kb_Entry *root)
{
	struct kbfs_nodes *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->root.ino = KBFS_ROOT_INO;
	t->root.remote = root->node;
	t->root.nlookup = UINT64_MAX / 2; /* never forgotten */
	t->root.attr = root->attr;
	t->root.version = kbfs_attr_version(&root->attr);
	t->root.attr_gen = UINT64_MAX; /* not current */
	hash_add(t, &t->root);
	*out = t;
	return 0;
}

static void imap_set(struct kbfs_nodes *t, uint64_t real, uint64_t fake);

static void node_free_chain(struct kbfs_nodes *t, struct kbfs_node *n)
{
	while (n && n != &t->root && n->nlookup == 0 && n->pins == 0) {
		struct kbfs_node *parent = n->parent;

		old_del(t, n);
		if (n->remote)
			hash_del(t, n);
		name_del(t, n);
		if (n->fake_ino && n->real_ino)
			imap_set(t, n->real_ino, 0);
		free(n->name);
		free(n);
		t->count--;
		if (parent)
			parent->pins--;
		n = parent;
	}
}

void kbfs_nodes_free(struct kbfs_nodes *t)
{
	if (!t)
		return;
	for (unsigned b = 0; b < NODE_BUCKETS; b++) {
		while (t->hash[b]) {
			struct kbfs_node *n = t->hash[b];

			t->hash[b] = n->hnext;
			n->remote = 0;
			if (n != &t->root) {
				n->nlookup = 0;
				node_free_chain(t, n);
			}
		}
	}
	for (unsigned b = 0; b < IMAP_BUCKETS; b++)
		for (struct ino_map *m = t->imap[b], *next; m; m = next) {
			next = m->next;
			free(m);
		}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct kbfs_node *kbfs_node_of(struct kbfs_nodes *t, uint64_t ino)
{
	return ino == KBFS_ROOT_INO ? &t->root : (struct kbfs_node *)(uintptr_t)ino;
}

uint64_t kbfs_node_remote(struct kbfs_nodes *t, uint64_t ino)
{
	uint64_t r;

	pthread_mutex_lock(&t->lock);
	r = kbfs_node_of(t, ino)->remote;
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* Store a reply's attributes: current, and backed by the lease of epoch
 * e, if nothing changed since gen was read, before the request
 * (UINT64_MAX: neither). Lock held. */
static unsigned imap_bucket(uint64_t real)
{
	return (unsigned)((real * 0x9e3779b97f4a7c15ull) >> 40) % IMAP_BUCKETS;
}

/* Lock held: real is shown as fake (0: forget real). */
static void imap_set(struct kbfs_nodes *t, uint64_t real, uint64_t fake)
{
	struct ino_map **pp = &t->imap[imap_bucket(real)], *m;

	while (*pp && (*pp)->real != real)
		pp = &(*pp)->next;
	m = *pp;
	if (m && !fake) {
		*pp = m->next;
		free(m);
		atomic_fetch_sub(&t->nimap, 1);
	} else if (m) {
		m->fake = fake;
	} else if (fake && (m = malloc(sizeof(*m)))) {
		*m = (struct ino_map){real, fake, NULL};
		*pp = m;
		atomic_fetch_add(&t->nimap, 1);
	}
}

uint64_t kbfs_nodes_shown_ino(struct kbfs_nodes *t, uint64_t ino)
{
	struct ino_map *m;

	if (!atomic_load_explicit(&t->nimap, memory_order_relaxed))
		return ino;
	pthread_mutex_lock(&t->lock);
	for (m = t->imap[imap_bucket(ino)]; m && m->real != ino; m = m->next)
		;
	if (m)
		ino = m->fake;
	pthread_mutex_unlock(&t->lock);
	return ino;
}

/* A node made here: the server's inode number for it, from any answer
 * (a new session re-resolves it by that). Lock held. */
static void learn_real_ino_locked(struct kbfs_nodes *t, struct kbfs_node *n, const kb_Attr *a)
{
	if (n->fake_ino && !(a->ino & KBFS_FAKE_INO) && a->ino != n->real_ino) {
		if (n->real_ino)
			imap_set(t, n->real_ino, 0);
		n->real_ino = a->ino;
		imap_set(t, a->ino, n->fake_ino);
	}
}

static void set_attr_locked(struct kbfs_nodes *t, struct kbfs_node *n, const kb_Attr *a,
			    uint64_t ttl_ns, uint64_t gen, uint64_t e)
{
	sync_epoch_locked(t, e);
	n->attr = *a;
	if (n->fake_ino) { /* shown as made: the server's number kept aside */
		learn_real_ino_locked(t, n, a);
		n->attr.ino = n->fake_ino;
	}
	n->attr_gen = gen == t->gen ? gen : UINT64_MAX;
	/* not within KBFS_NODE_QUIET_NS of our own change: its push, and
	 * another client's in that moment, may not come (kbfs_notify.c) */
	n->lease_epoch = gen == t->gen && kb_now_ns() >= n->quiet_until_ns && !n->no_lease
				 ? t->epoch
				 : 0;
	n->parent_kids = n->parent ? n->parent->kids_gen : 0;
	n->attr_expiry_ns = kb_now_ns() + ttl_ns;
	n->version = kbfs_attr_version(a);
}

/* n's attributes are stale, and no attributes are current any more.
 * Lock held. */
static void expire_locked(struct kbfs_nodes *t, struct kbfs_node *n)
{
	n->attr_expiry_ns = 0;
	n->lease_epoch = 0;
	t->gen++;
}

/* Someone else changed n (a push): as expire_locked, and a listing of its
 * directory, which holds its attributes too, is stale (kids_gen). */
static void pushed_locked(struct kbfs_nodes *t, struct kbfs_node *n)
{
	expire_locked(t, n);
	if (n->parent)
		n->parent->kids_gen++;
}

/* Re-point a node at parent/name (hard links, renames seen). Lock held. */
static int set_name_locked(struct kbfs_nodes *t, struct kbfs_node *n, struct kbfs_node *parent,
			   const char *name)
{
	bool was_old = n->in_old;
	char *copy;

	if (n->parent == parent && n->name && !strcmp(n->name, name))
		return 0;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	old_del(t, n); /* keyed by parent and name: re-keyed below */
	name_del(t, n);
	free(n->name);
	n->name = copy;
	if (n->parent != parent) {
		struct kbfs_node *old = n->parent;

		parent->pins++;
		n->parent = parent;
		name_add(t, n);
		if (old) {
			old->pins--;
			node_free_chain(t, old);
		}
	} else {
		name_add(t, n);
	}
	if (was_old)
		old_add(t, n);
	return 0;
}

/* Node n of an old session is the file e names now (same inode number and
 * type): give it e's id. Lock held. */
static bool adopt_locked(struct kbfs_nodes *t, struct kbfs_node *n, const kb_Entry *e)
{
	if ((n->fake_ino ? n->real_ino : n->attr.ino) != e->attr.ino ||
	    (n->attr.mode & 0170000) != (e->attr.mode & 0170000))
		return false;
	old_del(t, n);
	hash_del(t, n);
	n->remote = e->node;
	n->sgen = t->sgen;
	n->rlookup = 0;
	hash_add(t, n);
	return true;
}

uint64_t kbfs_node_enter(struct kbfs_nodes *t, uint64_t parent_ino, const char *name,
			 const kb_Entry *e, uint64_t attr_ttl_ns, uint64_t gen)
{
	struct kbfs_node *parent = kbfs_node_of(t, parent_ino), *n;
	uint64_t ino = 0, ep = lease_now(t);

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, e->node);
	if (!n && t->nold) { /* known from an old session by this name? */
		n = old_find(t, parent, name);
		if (n && !adopt_locked(t, n, e))
			n = NULL;
	}
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n)
			goto out;
		n->ino = (uintptr_t)n;
		n->remote = e->node;
		n->sgen = t->sgen;
		if (e->attr.ino & KBFS_FAKE_INO) /* made here (write-behind) */
			n->fake_ino = e->attr.ino;
		hash_add(t, n);
		t->count++;
	}
	if (n != &t->root)
		set_name_locked(t, n, parent, name); /* ENOMEM: keeps the old name */
	n->nlookup++;
	n->rlookup++;
	n->no_lease = e->no_lease;
	n->wb_failed = 0; /* looked up again */
	set_attr_locked(t, n, &e->attr, attr_ttl_ns, gen, ep);
	ino = n->ino;
out:
	pthread_mutex_unlock(&t->lock);
	return ino;
}

void kbfs_node_forget(struct kbfs_nodes *t, uint64_t ino, uint64_t n, uint64_t *remote,
		      uint64_t *count)
{
	struct kbfs_node *node = kbfs_node_of(t, ino);

	*remote = *count = 0;
	if (node == &t->root)
		return;
	pthread_mutex_lock(&t->lock);
	node->nlookup = n >= node->nlookup ? 0 : node->nlookup - n;
	if (node->nlookup == 0) {
		if (node->remote && node->in_old) { /* the server forgot it with its session */
			old_del(t, node);
			hash_del(t, node);
			node->remote = 0;
		}
		if (node->remote) {
			*remote = node->remote;
			*count = node->rlookup;
			hash_del(t, node);
			node->remote = 0;
		}
		node->rlookup = 0;
		node_free_chain(t, node);
	}
	pthread_mutex_unlock(&t->lock);
}

bool kbfs_node_set_attr_gen(struct kbfs_nodes *t, uint64_t ino, const kb_Attr *a,
			    uint64_t attr_ttl_ns, uint64_t *version, uint64_t gen)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	uint64_t ep = lease_now(t);
	bool changed;

	pthread_mutex_lock(&t->lock);
	changed = n->version != kbfs_attr_version(a);
	if (changed && n->own_change && n->kcache_version == n->version)
		n->kcache_version = kbfs_attr_version(a);
	n->own_change = false;
	set_attr_locked(t, n, a, attr_ttl_ns, gen, ep);
	if (version)
		*version = n->version;
	pthread_mutex_unlock(&t->lock);
	return changed;
}

bool kbfs_node_set_attr(struct kbfs_nodes *t, uint64_t ino, const kb_Attr *a, uint64_t attr_ttl_ns,
			uint64_t *version)
{
	return kbfs_node_set_attr_gen(t, ino, a, attr_ttl_ns, version, UINT64_MAX);
}

bool kbfs_node_attr_unexpired(struct kbfs_nodes *t, uint64_t ino, kb_Attr *a)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	uint64_t ep = lease_now(t);
	bool fresh;

	pthread_mutex_lock(&t->lock);
	sync_epoch_locked(t, ep);
	fresh = valid_locked(t, n, kb_now_ns());
	if (fresh)
		*a = n->attr;
	pthread_mutex_unlock(&t->lock);
	return fresh;
}

/* We changed n: as expire_locked, and the next version seen is our own
 * (kbfs_node_set_attr_gen adopts it for the kernel cache). Lock held. */
static void changed_locked(struct kbfs_nodes *t, struct kbfs_node *n)
{
	n->own_change = true;
	n->quiet_until_ns = kb_now_ns() + KBFS_NODE_QUIET_NS;
	expire_locked(t, n);
}

void kbfs_node_write_start(struct kbfs_nodes *t, uint64_t ino, struct kbfs_wr_ticket *tk)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);

	pthread_mutex_lock(&t->lock);
	tk->alone = n->wr_inflight++ == 0;
	tk->seq = ++n->wr_seq;
	tk->gen = t->gen;
	pthread_mutex_unlock(&t->lock);
}

void kbfs_node_write_done(struct kbfs_nodes *t, uint64_t ino, const struct kbfs_wr_ticket *tk,
			  const kb_Attr *a, uint64_t attr_ttl_ns)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	bool current;

	pthread_mutex_lock(&t->lock);
	n->wr_inflight--;
	current = tk->alone && tk->seq == n->wr_seq && !n->wr_inflight && tk->gen == t->gen;
	changed_locked(t, n);
	pthread_mutex_unlock(&t->lock);
	if (a)
		kbfs_node_set_attr_gen(t, ino, a, attr_ttl_ns, NULL,
				       current ? tk->gen + 1 : UINT64_MAX);
}

uint64_t kbfs_nodes_gen(struct kbfs_nodes *t)
{
	uint64_t g, ep = lease_now(t);

	pthread_mutex_lock(&t->lock);
	sync_epoch_locked(t, ep);
	g = t->gen;
	pthread_mutex_unlock(&t->lock);
	return g;
}

void kbfs_nodes_outdate_attrs(struct kbfs_nodes *t)
{
	pthread_mutex_lock(&t->lock);
	t->gen++;
	pthread_mutex_unlock(&t->lock);
}

bool kbfs_node_attr_current(struct kbfs_nodes *t, uint64_t ino, kb_Attr *a)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	uint64_t ep = lease_now(t), now = kb_now_ns();
	bool cur;

	pthread_mutex_lock(&t->lock);
	sync_epoch_locked(t, ep);
	/* current, or under a lease no change has broken (kbfs_node.h) */
	cur = (n->attr_gen == t->gen && n->attr_expiry_ns > now) || leased_locked(t, n);
	if (cur)
		*a = n->attr;
	pthread_mutex_unlock(&t->lock);
	return cur;
}

bool kbfs_node_open_version(struct kbfs_nodes *t, uint64_t ino, uint64_t version)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	bool same;

	pthread_mutex_lock(&t->lock);
	same = n->kcache_version == version;
	n->kcache_version = version;
	pthread_mutex_unlock(&t->lock);
	return same;
}

void kbfs_node_own_change(struct kbfs_nodes *t, uint64_t ino)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);

	pthread_mutex_lock(&t->lock);
	changed_locked(t, n);
	pthread_mutex_unlock(&t->lock);
}

/* The live node named `name` under parent, or NULL. Lock held. */
static struct kbfs_node *child_locked(struct kbfs_nodes *t, struct kbfs_node *parent,
				      const char *name)
{
	for (struct kbfs_node *n = t->nhash[name_bucket(parent, name)]; n; n = n->nnext)
		if (n->parent == parent && n->name && !strcmp(n->name, name))
			return n;
	return NULL;
}

uint64_t kbfs_node_expire_child(struct kbfs_nodes *t, uint64_t dir, const char *name, bool *writing)
{
	struct kbfs_node *d, *n = NULL;
	uint64_t ino = 0;

	*writing = false;
	pthread_mutex_lock(&t->lock);
	d = hash_find(t, dir);
	if (d) {
		d->kids_gen++; /* its listing and its children's lease */
		n = child_locked(t, d, name);
	}
	if (n) {
		pushed_locked(t, n);
		ino = n->ino;
		*writing = n->writers > 0;
	}
	pthread_mutex_unlock(&t->lock);
	return ino;
}

void kbfs_node_own_name_change(struct kbfs_nodes *t, uint64_t dir, const char *name)
{
	struct kbfs_node *d, *n;

	pthread_mutex_lock(&t->lock);
	d = hash_find(t, dir);
	if (d) {
		changed_locked(t, d);
		n = child_locked(t, d, name);
		if (n)
			changed_locked(t, n);
	}
	pthread_mutex_unlock(&t->lock);
}

void kbfs_node_renamed(struct kbfs_nodes *t, uint64_t parent_ino, const char *name,
		       uint64_t newparent_ino, const char *newname, bool exchange)
{
	struct kbfs_node *p = kbfs_node_of(t, parent_ino), *np = kbfs_node_of(t, newparent_ino);
	struct kbfs_node *n, *old;

	pthread_mutex_lock(&t->lock);
	n = child_locked(t, p, name);
	old = child_locked(t, np, newname);
	if (old && old != n) {
		if (exchange) {
			set_name_locked(t, old, p, name); /* ENOMEM: keeps the old name */
		} else { /* replaced: no longer reachable by that name */
			name_del(t, old);
			free(old->name);
			old->name = NULL;
		}
	}
	if (n)
		set_name_locked(t, n, np, newname);
	pthread_mutex_unlock(&t->lock);
}

unsigned kbfs_node_writers(struct kbfs_nodes *t, uint64_t ino, int delta)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	unsigned w;

	pthread_mutex_lock(&t->lock);
	n->writers = (unsigned)((int)n->writers + delta);
	w = n->writers;
	if (!w)
		n->kmtime_set = false;
	pthread_mutex_unlock(&t->lock);
	return w;
}

uint64_t kbfs_node_by_remote(struct kbfs_nodes *t, uint64_t remote, kb_Attr *a)
{
	struct kbfs_node *n;
	uint64_t ino = 0;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n) {
		ino = n->ino;
		if (a)
			*a = n->attr;
	}
	pthread_mutex_unlock(&t->lock);
	return ino;
}

unsigned kbfs_nodes_count(struct kbfs_nodes *t)
{
	unsigned c;

	pthread_mutex_lock(&t->lock);
	c = t->count;
	pthread_mutex_unlock(&t->lock);
	return c;
}

int kbfs_node_where(struct kbfs_nodes *t, uint64_t ino, struct kbfs_node_where *w)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	int ret = -ESTALE;

	pthread_mutex_lock(&t->lock);
	w->remote = n->remote;
	w->attr = n->attr;
	if (n->fake_ino) /* compared with the server's (kbfs_remap.c) */
		w->attr.ino = n->real_ino;
	if (n != &t->root && n->parent && n->name && n->remote &&
	    strlen(n->name) < sizeof(w->name)) {
		w->parent_ino = n->parent->ino;
		w->parent_remote = n->parent->remote;
		strcpy(w->name, n->name);
		ret = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

bool kbfs_node_remap(struct kbfs_nodes *t, uint64_t ino, uint64_t old_remote, uint64_t new_remote)
{
	struct kbfs_node *n = kbfs_node_of(t, ino), *other;
	bool done = false;

	pthread_mutex_lock(&t->lock);
	other = hash_find(t, new_remote);
	if (n->remote && n->remote == old_remote && (!other || other == n)) {
		old_del(t, n);
		hash_del(t, n);
		n->remote = new_remote;
		n->sgen = t->sgen;
		n->rlookup = n == &t->root ? 0 : 1;
		expire_locked(t, n);
		hash_add(t, n);
		done = true;
	}
	pthread_mutex_unlock(&t->lock);
	return done;
}

uint64_t kbfs_node_expire_remote(struct kbfs_nodes *t, uint64_t remote, bool *writing)
{
	struct kbfs_node *n;
	uint64_t ino = 0;

	*writing = false;
	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n) {
		pushed_locked(t, n);
		ino = n->ino;
		*writing = n->writers > 0;
	}
	pthread_mutex_unlock(&t->lock);
	return ino;
}

void kbfs_node_expire(struct kbfs_nodes *t, uint64_t ino)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);

	pthread_mutex_lock(&t->lock);
	expire_locked(t, n);
	pthread_mutex_unlock(&t->lock);
}

bool kbfs_node_is_old(struct kbfs_nodes *t, uint64_t ino)
{
	bool old;

	pthread_mutex_lock(&t->lock);
	old = kbfs_node_of(t, ino)->sgen != t->sgen;
	pthread_mutex_unlock(&t->lock);
	return old;
}

void kbfs_nodes_session(struct kbfs_nodes *t, uint64_t gen, uint64_t root_remote)
{
	pthread_mutex_lock(&t->lock);
	t->sgen = gen;
	for (unsigned b = 0; b < NODE_BUCKETS; b++)
		for (struct kbfs_node *n = t->hash[b]; n; n = n->hnext)
			if (n != &t->root && n->sgen != gen)
				old_add(t, n);
	hash_del(t, &t->root);
	t->root.remote = root_remote;
	t->root.sgen = gen;
	expire_locked(t, &t->root);
	hash_add(t, &t->root);
	pthread_mutex_unlock(&t->lock);
}

void kbfs_node_kernel_mtime_set(struct kbfs_nodes *t, uint64_t ino, int64_t sec, uint32_t nsec)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);

	pthread_mutex_lock(&t->lock);
	if (n->writers) {
		n->kmtime = sec;
		n->kmtime_ns = nsec;
		n->kmtime_set = true;
	}
	pthread_mutex_unlock(&t->lock);
}

bool kbfs_node_kernel_mtime(struct kbfs_nodes *t, uint64_t ino, int64_t *sec, uint32_t *nsec)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	bool set;

	pthread_mutex_lock(&t->lock);
	set = n->kmtime_set;
	*sec = n->kmtime;
	*nsec = n->kmtime_ns;
	pthread_mutex_unlock(&t->lock);
	return set;
}

/* Attributes a listing gave may replace n's: none of our own changes to
 * it is recent or in flight (the listing may predate it). Lock held. */
static bool listable_locked(const struct kbfs_node *n, uint64_t now)
{
	return !n->own_change && now >= n->quiet_until_ns && !n->wr_inflight && !n->writers;
}

uint64_t kbfs_node_enter_listed(struct kbfs_nodes *t, uint64_t parent_ino, const char *name,
				const kb_Entry *e, bool held, uint64_t attr_ttl_ns, uint64_t gen,
				kb_Attr *a)
{
	struct kbfs_node *parent = kbfs_node_of(t, parent_ino), *n;
	uint64_t ino = 0, ep = lease_now(t), now = kb_now_ns();

	pthread_mutex_lock(&t->lock);
	sync_epoch_locked(t, ep);
	n = hash_find(t, e->node);
	if (!n || n == &t->root || n->parent != parent || !n->name || strcmp(n->name, name) ||
	    !n->nlookup)
		goto out;
	if (!valid_locked(t, n, now)) {
		if (!listable_locked(n, now))
			goto out;
		set_attr_locked(t, n, &e->attr, attr_ttl_ns, gen, ep);
	}
	n->nlookup++;
	if (held)
		n->rlookup++;
	n->wb_failed = 0; /* looked up again */
	*a = n->attr;
	ino = n->ino;
out:
	pthread_mutex_unlock(&t->lock);
	return ino;
}

bool kbfs_node_listable(struct kbfs_nodes *t, uint64_t ino)
{
	bool ok;

	pthread_mutex_lock(&t->lock);
	ok = listable_locked(kbfs_node_of(t, ino), kb_now_ns());
	pthread_mutex_unlock(&t->lock);
	return ok;
}

uint64_t kbfs_node_kids_by_remote(struct kbfs_nodes *t, uint64_t remote)
{
	struct kbfs_node *n;
	uint64_t g;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	g = n ? n->kids_gen : 0;
	pthread_mutex_unlock(&t->lock);
	return g;
}

bool kbfs_node_no_lease(struct kbfs_nodes *t, uint64_t ino)
{
	bool r;

	pthread_mutex_lock(&t->lock);
	r = kbfs_node_of(t, ino)->no_lease;
	pthread_mutex_unlock(&t->lock);
	return r;
}

uint64_t kbfs_node_kids_gen(struct kbfs_nodes *t, uint64_t ino)
{
	uint64_t g;

	pthread_mutex_lock(&t->lock);
	g = kbfs_node_of(t, ino)->kids_gen;
	pthread_mutex_unlock(&t->lock);
	return g;
}

/* ---- write-behind ---- */

bool kbfs_node_wb_remote(struct kbfs_nodes *t, uint64_t remote)
{
	struct kbfs_node *n;
	bool wb;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	wb = n && n->wb;
	pthread_mutex_unlock(&t->lock);
	return wb;
}

bool kbfs_node_wb(struct kbfs_nodes *t, uint64_t ino)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	bool wb;

	pthread_mutex_lock(&t->lock);
	wb = n->wb;
	pthread_mutex_unlock(&t->lock);
	return wb;
}

void kbfs_node_wb_set(struct kbfs_nodes *t, uint64_t ino, bool dlease)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	uint64_t e = lease_now(t);

	pthread_mutex_lock(&t->lock);
	if (!n->wb || n->wb_epoch != t->wb_epoch)
		n->wb_epoch = t->wb_epoch;
	n->wb = true;
	n->wb_until_ns = kb_now_ns() + KBFS_WB_OURS_NS;
	if (dlease) {
		n->dlease = true;
		n->dlease_epoch = e;
	}
	pthread_mutex_unlock(&t->lock);
}

bool kbfs_node_wb_dlease(struct kbfs_nodes *t, uint64_t ino, uint64_t *remote)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	uint64_t e = lease_now(t);
	bool on;

	pthread_mutex_lock(&t->lock);
	/* only while the server's promise holds since the lease was taken:
	 * a push about the directory lost meanwhile (a change on the server's
	 * own disk) would leave our names wrong */
	if (n->dlease && n->dlease_epoch != e)
		n->dlease = false;
	on = n->dlease && e && n->sgen == t->sgen && n->remote;
	if (remote)
		*remote = n->remote;
	pthread_mutex_unlock(&t->lock);
	return on;
}

bool kbfs_node_wb_dlease_end(struct kbfs_nodes *t, uint64_t remote)
{
	struct kbfs_node *n;
	bool was = false;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n) {
		was = n->dlease;
		n->dlease = false;
	}
	t->wb_epoch++; /* what we kept there may be changed by others now */
	pthread_mutex_unlock(&t->lock);
	return was;
}

void kbfs_node_wb_pushed(struct kbfs_nodes *t, uint64_t remote)
{
	struct kbfs_node *n;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n)
		n->wb_epoch = t->wb_epoch - 1; /* changed by someone else: ask */
	pthread_mutex_unlock(&t->lock);
}

void kbfs_node_wb_begin_remote(struct kbfs_nodes *t, uint64_t remote)
{
	struct kbfs_node *n;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n)
		n->wb_pending++;
	pthread_mutex_unlock(&t->lock);
}

void kbfs_node_wb_begin(struct kbfs_nodes *t, uint64_t ino)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);

	pthread_mutex_lock(&t->lock);
	n->wb = true;
	n->wb_pending++;
	n->wb_until_ns = kb_now_ns() + KBFS_WB_OURS_NS;
	pthread_mutex_unlock(&t->lock);
}

void kbfs_node_wb_end(struct kbfs_nodes *t, uint64_t remote, int status, const kb_Attr *a,
		      uint64_t attr_ttl_ns)
{
	struct kbfs_node *n;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n) {
		if (n->wb_pending)
			n->wb_pending--;
		if (status && !n->wb_err)
			n->wb_err = status;
		if (a && !status) /* even while later changes are queued */
			learn_real_ino_locked(t, n, a);
		if (a && !status && !n->wb_pending) { /* the server's word, nothing of ours after */
			bool kernel_has_ours = n->kcache_version == n->version;

			set_attr_locked(t, n, a, attr_ttl_ns, UINT64_MAX, t->epoch);
			if (kernel_has_ours) /* its page cache holds what the server has */
				n->kcache_version = n->version;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

bool kbfs_node_wb_attr(struct kbfs_nodes *t, uint64_t ino, kb_Attr *a)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	uint64_t e = lease_now(t);
	bool ours;

	pthread_mutex_lock(&t->lock);
	if (e != t->wb_lease) { /* a lapse: pushes may have been lost meanwhile */
		t->wb_lease = e;
		t->wb_epoch++;
	}
	/* ours while changes of ours are on their way, then as any reply: for
	 * the attribute timeout (someone else's change shows after it) */
	ours = e && n->wb && n->wb_epoch == t->wb_epoch && n->sgen == t->sgen && !n->in_old &&
	       (n->wb_pending || n->attr_expiry_ns > kb_now_ns() || n->wb_until_ns > kb_now_ns());
	if (ours)
		*a = n->attr;
	pthread_mutex_unlock(&t->lock);
	return ours;
}

void kbfs_node_wb_attr_set(struct kbfs_nodes *t, uint64_t ino, const kb_Attr *a,
			   uint64_t attr_ttl_ns)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);

	pthread_mutex_lock(&t->lock);
	set_attr_locked(t, n, a, attr_ttl_ns, UINT64_MAX, t->epoch);
	n->kcache_version = n->version; /* the kernel holds what we changed */
	pthread_mutex_unlock(&t->lock);
}

void kbfs_node_wb_fail(struct kbfs_nodes *t, uint64_t remote, int status)
{
	struct kbfs_node *n;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n && n != &t->root && !n->wb_failed)
		n->wb_failed = status;
	pthread_mutex_unlock(&t->lock);
}

int kbfs_node_wb_failed(struct kbfs_nodes *t, uint64_t ino)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	int err;

	pthread_mutex_lock(&t->lock);
	err = n->wb_failed;
	pthread_mutex_unlock(&t->lock);
	return err;
}

int kbfs_node_wb_error(struct kbfs_nodes *t, uint64_t ino)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);
	int err;

	pthread_mutex_lock(&t->lock);
	err = n->wb_err;
	pthread_mutex_unlock(&t->lock);
	return err;
}

void kbfs_node_hold(struct kbfs_nodes *t, uint64_t ino, int delta)
{
	struct kbfs_node *n = kbfs_node_of(t, ino);

	if (n == &t->root)
		return;
	pthread_mutex_lock(&t->lock);
	n->pins = (unsigned)((int)n->pins + delta);
	if (delta < 0)
		node_free_chain(t, n); /* forgotten meanwhile: now it goes */
	pthread_mutex_unlock(&t->lock);
}

void kbfs_node_wb_unlinked(struct kbfs_nodes *t, uint64_t remote, bool dir)
{
	struct kbfs_node *n;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n && n != &t->root && n->sgen == t->sgen) {
		n->wb = true;
		n->wb_epoch = t->wb_epoch;
		n->wb_until_ns = kb_now_ns() + KBFS_WB_OURS_NS;
		n->attr.nlink = dir || n->attr.nlink <= 1 ? 0 : n->attr.nlink - 1;
		n->version = kbfs_attr_version(&n->attr);
		n->kcache_version = n->version;
	}
	pthread_mutex_unlock(&t->lock);
}

uint64_t kbfs_node_ref_remote(struct kbfs_nodes *t, uint64_t remote, kb_Attr *a)
{
	struct kbfs_node *n;
	uint64_t ino = 0;

	pthread_mutex_lock(&t->lock);
	n = hash_find(t, remote);
	if (n && n != &t->root && n->sgen == t->sgen && !n->in_old && n->nlookup) {
		n->nlookup++;
		*a = n->attr;
		ino = n->ino;
	}
	pthread_mutex_unlock(&t->lock);
	return ino;
}

void kbfs_nodes_wb_lapse(struct kbfs_nodes *t)
{
	pthread_mutex_lock(&t->lock);
	t->wb_epoch++;
	for (unsigned b = 0; b < NODE_BUCKETS; b++)
		for (struct kbfs_node *n = t->hash[b]; n; n = n->hnext)
			n->dlease = false;
	pthread_mutex_unlock(&t->lock);
}
