/* test_cache.c - the block cache: LRU, versions, refcounts, single fill. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "buf.h"
#include "cache.h"

#define BLK 4096

static struct kb_cache_key key(uint64_t node, uint64_t ver, uint64_t idx)
{
	struct kb_cache_key k = {.node = node, .version = ver, .index = idx, .shift = 12};

	return k;
}

/* Fill one block with bytes `tag` from a buffer of the pool. */
static void fill_block(struct kb_cache *c, struct kb_bufpool *p, struct kb_cache_key k, uint8_t tag)
{
	struct kb_cache_entry *e = NULL;
	struct kb_cache_ref r;
	struct kb_buf *b;

	ck_assert_int_eq(kb_cache_get(c, &k, KB_CACHE_CREATE, NULL, &r, &e), KB_CACHE_FILL);
	b = kb_buf_get(p);
	ck_assert_ptr_nonnull(b);
	memset(b->mem, tag, BLK);
	kb_cache_complete(e, 0, b, b->mem + 16, BLK - 16);
	kb_buf_put(b); /* the cache holds its own reference now */
}

static int probe(struct kb_cache *c, struct kb_cache_key k, uint8_t *tag)
{
	struct kb_cache_ref r;
	int st = kb_cache_get(c, &k, 0, NULL, &r, NULL);

	if (st == KB_CACHE_HIT) {
		ck_assert_uint_eq(r.len, BLK - 16);
		if (tag)
			*tag = r.data[0];
		kb_buf_put(r.buf);
	}
	return st;
}

START_TEST(test_lru_capacity)
{
	struct kb_bufpool *p;
	struct kb_cache *c;
	struct kb_cache_stats st;
	size_t cost = BLK + sizeof(struct kb_buf);
	uint8_t tag;

	ck_assert_int_eq(kb_bufpool_new(&p, BLK, 8, 0), 0);
	ck_assert_int_eq(kb_cache_new(&c, 4 * cost, BLK), 0);
	for (unsigned i = 0; i < 4; i++)
		fill_block(c, p, key(1, 7, i), (uint8_t)i);
	ck_assert_int_eq(probe(c, key(1, 7, 0), &tag), KB_CACHE_HIT); /* 0 is now recent */
	ck_assert_uint_eq(tag, 0);
	fill_block(c, p, key(1, 7, 4), 4); /* evicts 1, the least recent */
	fill_block(c, p, key(1, 7, 5), 5); /* evicts 2 */
	kb_cache_stats(c, &st);
	ck_assert_uint_le(st.bytes, st.capacity);
	ck_assert_uint_eq(st.entries, 4);
	ck_assert_uint_eq(st.evictions, 2);
	ck_assert_int_eq(probe(c, key(1, 7, 1), NULL), KB_CACHE_MISS);
	ck_assert_int_eq(probe(c, key(1, 7, 2), NULL), KB_CACHE_MISS);
	ck_assert_int_eq(probe(c, key(1, 7, 0), &tag), KB_CACHE_HIT);
	ck_assert_int_eq(probe(c, key(1, 7, 5), &tag), KB_CACHE_HIT);
	ck_assert_uint_eq(tag, 5);
	/* a different shift (sub-block) is a different block */
	{
		struct kb_cache_key k = key(1, 7, 5);

		k.shift = 16;
		ck_assert_int_eq(probe(c, k, NULL), KB_CACHE_MISS);
	}
	kb_cache_free(c);
	/* every buffer went back to the pool: at most the 6 ever allocated */
	ck_assert_uint_le(kb_bufpool_allocs(p), 6);
	kb_bufpool_free(p);
}
END_TEST

START_TEST(test_version_invalidation)
{
	struct kb_bufpool *p;
	struct kb_cache *c;

	ck_assert_int_eq(kb_bufpool_new(&p, BLK, 8, 0), 0);
	ck_assert_int_eq(kb_cache_new(&c, 1 << 20, BLK), 0);
	fill_block(c, p, key(1, 100, 0), 'a');
	fill_block(c, p, key(1, 100, 1), 'b');
	fill_block(c, p, key(2, 100, 0), 'c');
	/* a new version of node 1 does not see the old blocks */
	ck_assert_int_eq(probe(c, key(1, 101, 0), NULL), KB_CACHE_MISS);
	fill_block(c, p, key(1, 101, 0), 'd');
	ck_assert_uint_eq(kb_cache_invalidate(c, 1, 101), 2);
	ck_assert_int_eq(probe(c, key(1, 100, 0), NULL), KB_CACHE_MISS);
	ck_assert_int_eq(probe(c, key(1, 100, 1), NULL), KB_CACHE_MISS);
	ck_assert_int_eq(probe(c, key(1, 101, 0), NULL), KB_CACHE_HIT);
	ck_assert_int_eq(probe(c, key(2, 100, 0), NULL), KB_CACHE_HIT);
	ck_assert_uint_eq(kb_cache_invalidate(c, 1, 0), 1); /* all of node 1 */
	ck_assert_int_eq(probe(c, key(1, 101, 0), NULL), KB_CACHE_MISS);
	ck_assert_int_eq(probe(c, key(2, 100, 0), NULL), KB_CACHE_HIT);
	kb_cache_free(c);
	kb_bufpool_free(p);
}
END_TEST

START_TEST(test_ref_outlives_eviction)
{
	struct kb_bufpool *p;
	struct kb_cache *c;
	struct kb_cache_ref r;
	size_t cost = BLK + sizeof(struct kb_buf);

	ck_assert_int_eq(kb_bufpool_new(&p, BLK, 8, 0), 0);
	ck_assert_int_eq(kb_cache_new(&c, 2 * cost, BLK), 0);
	fill_block(c, p, key(3, 1, 0), 'x');
	ck_assert_int_eq(kb_cache_get(c, &(struct kb_cache_key){3, 1, 0, 12}, 0, NULL, &r, NULL),
			 KB_CACHE_HIT);
	ck_assert_int_eq(atomic_load(&r.buf->ref), 2); /* cache + us */
	fill_block(c, p, key(3, 1, 1), 'y');
	fill_block(c, p, key(3, 1, 2), 'z'); /* evicts block 0 while we use it */
	ck_assert_int_eq(probe(c, key(3, 1, 0), NULL), KB_CACHE_MISS);
	ck_assert_int_eq(atomic_load(&r.buf->ref), 1); /* only ours is left */
	for (size_t i = 0; i < r.len; i++)
		ck_assert_uint_eq(r.data[i], 'x'); /* the buffer was not recycled */
	kb_buf_put(r.buf);
	kb_cache_free(c);
	kb_bufpool_free(p);
}
END_TEST

/* N threads ask for one missing block at once: exactly one fills it. */
struct race {
	struct kb_cache *c;
	struct kb_bufpool *p;
	pthread_barrier_t start;
	atomic_int fillers, waiting, called, hits_after;
	struct kb_cache_entry *fill;
};

struct racer {
	struct kb_cache_waiter w; /* first: the callback casts back */
	struct race *r;
};

static void racer_done(struct kb_cache_waiter *w, int status)
{
	struct racer *me = (struct racer *)w;

	ck_assert_int_eq(status, 0);
	/* each waiter holds its own reference to the filled block */
	if (w->ref.len == BLK && w->ref.data[BLK - 1] == 'q')
		atomic_fetch_add(&me->r->hits_after, 1);
	kb_buf_put(w->ref.buf);
	atomic_fetch_add(&me->r->called, 1);
}

static void *racer_main(void *arg)
{
	struct racer *me = arg;
	struct kb_cache_key k = key(9, 1, 0);
	struct kb_cache_entry *e = NULL;
	struct kb_cache_ref ref;
	int st;

	pthread_barrier_wait(&me->r->start);
	st = kb_cache_get(me->r->c, &k, KB_CACHE_CREATE, &me->w, &ref, &e);
	if (st == KB_CACHE_FILL) {
		atomic_fetch_add(&me->r->fillers, 1);
		me->r->fill = e;
	} else {
		ck_assert_int_eq(st, KB_CACHE_WAIT);
		atomic_fetch_add(&me->r->waiting, 1);
	}
	return NULL;
}

START_TEST(test_single_fill)
{
	enum {
		N = 8
	};
	struct race r = {0};
	struct racer who[N];
	pthread_t th[N];
	struct kb_cache_stats st;
	struct kb_buf *b;

	ck_assert_int_eq(kb_bufpool_new(&r.p, BLK, 2, 0), 0);
	ck_assert_int_eq(kb_cache_new(&r.c, 1 << 20, BLK), 0);
	pthread_barrier_init(&r.start, NULL, N);
	for (int i = 0; i < N; i++) {
		who[i].w.fn = racer_done;
		who[i].r = &r;
		ck_assert_int_eq(pthread_create(&th[i], NULL, racer_main, &who[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&r.fillers), 1);
	ck_assert_int_eq(atomic_load(&r.waiting), N - 1);
	ck_assert_int_eq(atomic_load(&r.called), 0); /* nobody runs before the fill */
	b = kb_buf_get(r.p);
	memset(b->mem, 'q', BLK);
	kb_cache_complete(r.fill, 0, b, b->mem, BLK);
	ck_assert_int_eq(atomic_load(&b->ref), 2); /* ours + the cache's */
	kb_buf_put(b);
	ck_assert_int_eq(atomic_load(&r.called), N); /* the filler's waiter too */
	ck_assert_int_eq(atomic_load(&r.hits_after), N);
	kb_cache_stats(r.c, &st);
	ck_assert_uint_eq(st.fills, 1);
	ck_assert_uint_eq(st.pending, 0);
	pthread_barrier_destroy(&r.start);
	kb_cache_free(r.c);
	kb_bufpool_free(r.p);
}
END_TEST

static atomic_int err_seen;
static void err_waiter(struct kb_cache_waiter *w, int status)
{
	(void)w;
	atomic_store(&err_seen, status);
}

START_TEST(test_fill_error_and_busy)
{
	struct kb_cache *c;
	struct kb_cache_entry *e1 = NULL, *e2 = NULL, *e3 = NULL;
	struct kb_cache_waiter w = {.fn = err_waiter};
	struct kb_cache_ref r;
	struct kb_cache_key k1 = key(5, 1, 0);
	struct kb_cache_stats st;

	/* 16 spare entries at least: fill them all with pending pulls */
	ck_assert_int_eq(kb_cache_new(&c, 0, BLK), 0);
	kb_cache_stats(c, &st);
	ck_assert_int_eq(kb_cache_get(c, &k1, KB_CACHE_CREATE, NULL, &r, &e1), KB_CACHE_FILL);
	ck_assert_int_eq(kb_cache_get(c, &k1, KB_CACHE_CREATE, &w, &r, &e2), KB_CACHE_WAIT);
	ck_assert_ptr_null(e2);
	{
		struct kb_cache_entry *busy[64];
		unsigned n = 0;
		int res;

		for (uint64_t i = 1;; i++) {
			struct kb_cache_key k = key(5, 1, i);

			res = kb_cache_get(c, &k, KB_CACHE_CREATE, NULL, &r, &busy[n]);
			if (res != KB_CACHE_FILL)
				break;
			ck_assert_uint_lt(++n, 64);
		}
		ck_assert_int_eq(res, -ENOBUFS);
		for (unsigned i = 0; i < n; i++)
			kb_cache_complete(busy[i], -EIO, NULL, NULL, 0);
	}
	kb_cache_complete(e1, -ETIMEDOUT, NULL, NULL, 0);
	ck_assert_int_eq(atomic_load(&err_seen), -ETIMEDOUT);
	/* the failed block is absent again: the next reader pulls it */
	ck_assert_int_eq(kb_cache_get(c, &k1, KB_CACHE_CREATE, NULL, &r, &e3), KB_CACHE_FILL);
	kb_cache_invalidate(c, 5, 0); /* detaches the pending fill */
	ck_assert_int_eq(kb_cache_get(c, &k1, 0, NULL, &r, NULL), KB_CACHE_MISS);
	{
		struct kb_buf *b = kb_buf_alloc(BLK);

		kb_cache_complete(e3, 0, b, b->mem, 10); /* completes, not published */
		kb_buf_put(b);
	}
	ck_assert_int_eq(kb_cache_get(c, &k1, 0, NULL, &r, NULL), KB_CACHE_MISS);
	kb_cache_stats(c, &st);
	ck_assert_uint_eq(st.entries, 0);
	ck_assert_uint_eq(st.bytes, 0);
	kb_cache_free(c);
}
END_TEST

Suite *suite_cache(void);
Suite *suite_cache(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_lru_capacity);
	tcase_add_test(tc, test_version_invalidation);
	tcase_add_test(tc, test_ref_outlives_eviction);
	tcase_add_test(tc, test_single_fill);
	tcase_add_test(tc, test_fill_error_and_busy);
	suite_add_tcase(s, tc);
	return s;
}
