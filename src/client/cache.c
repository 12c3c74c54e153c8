/* cache.c - LRU block cache over refcounted frame buffers (see cache.h).
 *
 * Layout: a preallocated array of entries; a free list; a chained hash
 * table over (node, version, index, shift); an LRU list of VALID entries.
 * Lock: c->lock protects every field of the cache and of its entries.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cache.h"

enum entry_state {
	E_FREE,
	E_PENDING,
	E_VALID,
	E_DETACHED
};

struct kb_cache_entry {
	struct kb_cache *cache;
	struct kb_cache_key key;
	enum entry_state state;
	struct kb_cache_entry *hnext;               /* hash chain (in table) */
	struct kb_cache_entry *lru_prev, *lru_next; /* LRU (VALID) or free list */
	struct kb_cache_waiter *waiters;            /* PENDING/DETACHED */
	struct kb_buf *buf;                         /* VALID: the cache's reference */
	const uint8_t *data;                        /* points into buf */
	size_t len;
	size_t cost; /* bytes charged to capacity */
};

struct kb_cache {
	pthread_mutex_t lock;
	struct kb_cache_entry *ents; /* nents, owned */
	unsigned nents;
	struct kb_cache_entry **table; /* buckets, owned */
	size_t mask;
	struct kb_cache_entry *free; /* free list via lru_next */
	struct kb_cache_entry lru;   /* sentinel: next = most recent */
	size_t capacity, bytes;
	unsigned used, pending;
	struct kb_cache_stats st;
};

static size_t key_hash(const struct kb_cache_key *k)
{
	uint64_t h = k->node * 0x9e3779b97f4a7c15ull;

	h ^= k->version + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
	h ^= k->index * 0xbf58476d1ce4e5b9ull + k->shift;
	h ^= h >> 31;
	return (size_t)(h * 0x94d049bb133111ebull >> 17);
}

static bool key_eq(const struct kb_cache_key *a, const struct kb_cache_key *b)
{
	return a->node == b->node && a->version == b->version && a->index == b->index &&
	       a->shift == b->shift;
}

int kb_cache_new(struct kb_cache **out, size_t capacity, size_t min_block)
{
	struct kb_cache *c = calloc(1, sizeof(*c));
	size_t buckets = 64;
	int ret = -ENOMEM;

	if (!c)
		return -ENOMEM;
	if (min_block < 4096)
		min_block = 4096;
	if (capacity / min_block > (1u << 22)) /* a bound on the entry array */
		min_block = capacity >> 22;
	c->nents = (unsigned)(capacity / min_block + 16);
	while (buckets < (size_t)c->nents * 2)
		buckets <<= 1;
	c->ents = calloc(c->nents, sizeof(*c->ents));
	c->table = calloc(buckets, sizeof(*c->table));
	if (!c->ents || !c->table)
		goto out;
	c->mask = buckets - 1;
	c->capacity = capacity;
	c->lru.lru_next = c->lru.lru_prev = &c->lru;
	for (unsigned i = 0; i < c->nents; i++) {
		c->ents[i].cache = c;
		c->ents[i].lru_next = c->free;
		c->free = &c->ents[i];
	}
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
out:
	free(c->ents);
	free(c->table);
	free(c);
	return ret;
}

static void lru_unlink(struct kb_cache_entry *e)
{
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push(struct kb_cache *c, struct kb_cache_entry *e)
{
	e->lru_next = c->lru.lru_next;
	e->lru_prev = &c->lru;
	c->lru.lru_next->lru_prev = e;
	c->lru.lru_next = e;
}

static void hash_unlink(struct kb_cache *c, struct kb_cache_entry *e)
{
	struct kb_cache_entry **pp = &c->table[key_hash(&e->key) & c->mask];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	e->hnext = NULL;
}

/* Return an entry to the free list (lock held). */
static void entry_release(struct kb_cache *c, struct kb_cache_entry *e)
{
	if (e->state == E_VALID) {
		lru_unlink(e);
		c->bytes -= e->cost;
		kb_buf_put(e->buf);
	}
	if (e->state == E_VALID || e->state == E_PENDING)
		hash_unlink(c, e);
	e->buf = NULL;
	e->data = NULL;
	e->len = e->cost = 0;
	e->waiters = NULL;
	e->state = E_FREE;
	e->lru_next = c->free;
	c->free = e;
	c->used--;
}

/* Evict least recently used blocks until `bytes` fits, sparing `keep`. */
static void evict_until(struct kb_cache *c, size_t bytes, struct kb_cache_entry *keep)
{
	struct kb_cache_entry *e = c->lru.lru_prev;

	while (c->bytes > bytes && e != &c->lru) {
		struct kb_cache_entry *prev = e->lru_prev;

		if (e != keep) {
			entry_release(c, e);
			c->st.evictions++;
		}
		e = prev;
	}
}

static struct kb_cache_entry *entry_alloc(struct kb_cache *c)
{
	struct kb_cache_entry *e;

	if (!c->free && c->lru.lru_prev != &c->lru) {
		entry_release(c, c->lru.lru_prev);
		c->st.evictions++;
	}
	e = c->free;
	if (!e)
		return NULL;
	c->free = e->lru_next;
	e->lru_next = NULL;
	c->used++;
	return e;
}

static struct kb_cache_entry *find(struct kb_cache *c, const struct kb_cache_key *k)
{
	struct kb_cache_entry *e = c->table[key_hash(k) & c->mask];

	while (e && !key_eq(&e->key, k))
		e = e->hnext;
	return e;
}

int kb_cache_get(struct kb_cache *c, const struct kb_cache_key *k, unsigned flags,
		 struct kb_cache_waiter *w, struct kb_cache_ref *ref, struct kb_cache_entry **fill)
{
	struct kb_cache_entry *e;
	int ret;

	pthread_mutex_lock(&c->lock);
	e = find(c, k);
	if (e && e->state == E_VALID) {
		lru_unlink(e);
		lru_push(c, e);
		ref->buf = kb_buf_ref(e->buf);
		ref->data = e->data;
		ref->len = e->len;
		if (!(flags & KB_CACHE_PROBE))
			c->st.hits++;
		ret = KB_CACHE_HIT;
		goto out;
	}
	if (e) { /* pending */
		c->st.waits++;
		ret = KB_CACHE_WAIT;
		goto add_waiter;
	}
	if (!(flags & KB_CACHE_PROBE))
		c->st.misses++;
	ret = KB_CACHE_MISS;
	if (!(flags & KB_CACHE_CREATE))
		goto out;
	e = entry_alloc(c);
	ret = -ENOBUFS;
	if (!e)
		goto out;
	e->key = *k;
	e->state = E_PENDING;
	e->hnext = c->table[key_hash(k) & c->mask];
	c->table[key_hash(k) & c->mask] = e;
	c->pending++;
	c->st.fills++;
	*fill = e;
	ret = KB_CACHE_FILL;
add_waiter:
	if (w) {
		w->next = e->waiters;
		e->waiters = w;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void kb_cache_complete(struct kb_cache_entry *e, int status, struct kb_buf *buf,
		       const uint8_t *data, size_t len)
{
	struct kb_cache *c = e->cache;
	struct kb_cache_waiter *w;

	pthread_mutex_lock(&c->lock);
	w = e->waiters;
	e->waiters = NULL;
	c->pending--;
	if (status < 0 || e->state == E_DETACHED) {
		entry_release(c, e);
	} else {
		e->state = E_VALID;
		e->buf = kb_buf_ref(buf);
		e->data = data;
		e->len = len;
		e->cost = buf->cap + sizeof(*buf);
		c->bytes += e->cost;
		lru_push(c, e);
		evict_until(c, c->capacity, e);
	}
	pthread_mutex_unlock(&c->lock);
	while (w) {
		struct kb_cache_waiter *next = w->next;

		if (status == 0) {
			w->ref.buf = kb_buf_ref(buf);
			w->ref.data = data;
			w->ref.len = len;
		}
		w->fn(w, status);
		w = next;
	}
}

unsigned kb_cache_invalidate(struct kb_cache *c, uint64_t node, uint64_t keep_version)
{
	unsigned n = 0;

	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->nents; i++) {
		struct kb_cache_entry *e = &c->ents[i];

		if (e->key.node != node || e->state == E_FREE || e->state == E_DETACHED ||
		    (keep_version && e->key.version == keep_version))
			continue;
		if (e->state == E_PENDING) {
			hash_unlink(c, e);
			e->state = E_DETACHED;
		} else {
			entry_release(c, e);
		}
		n++;
	}
	c->st.invalidations += n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void kb_cache_stats(struct kb_cache *c, struct kb_cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	st->bytes = c->bytes;
	st->capacity = c->capacity;
	st->entries = c->used;
	st->pending = c->pending;
	pthread_mutex_unlock(&c->lock);
}

void kb_cache_free(struct kb_cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nents; i++)
		if (c->ents[i].state == E_VALID)
			kb_buf_put(c->ents[i].buf);
	pthread_mutex_destroy(&c->lock);
	free(c->ents);
	free(c->table);
	free(c);
}
