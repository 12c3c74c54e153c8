/* buf.c - reference-counted buffers and their pool. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "buf.h"

struct kb_bufpool {
	pthread_mutex_t lock;
	struct kb_buf *free;    /* free list (lock) */
	unsigned nfree;         /* length of free list (lock) */
	unsigned keep;          /* max free buffers kept */
	size_t cap;
	atomic_ulong allocs;    /* buffers ever malloc'd */
	atomic_int ref;         /* owner + outstanding buffers */
};

static void pool_unref(struct kb_bufpool *p)
{
	if (atomic_fetch_sub(&p->ref, 1) != 1)
		return;
	while (p->free) {
		struct kb_buf *b = p->free;

		p->free = b->next;
		free(b);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int kb_bufpool_new(struct kb_bufpool **out, size_t cap, unsigned keep)
{
	struct kb_bufpool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->cap = cap;
	p->keep = keep;
	atomic_init(&p->ref, 1);
	*out = p;
	return 0;
}

void kb_bufpool_free(struct kb_bufpool *p)
{
	if (p)
		pool_unref(p);
}

size_t kb_bufpool_cap(const struct kb_bufpool *p)
{
	return p->cap;
}

unsigned long kb_bufpool_allocs(const struct kb_bufpool *p)
{
	return atomic_load(&p->allocs);
}

struct kb_buf *kb_buf_alloc(size_t cap)
{
	struct kb_buf *b;

	if (posix_memalign((void **)&b, 64, sizeof(*b) + cap))
		return NULL;
	atomic_init(&b->ref, 1);
	b->pool = NULL;
	b->next = NULL;
	b->cap = cap;
	b->len = 0;
	b->off = 0;
	return b;
}

struct kb_buf *kb_buf_get(struct kb_bufpool *p)
{
	struct kb_buf *b;

	pthread_mutex_lock(&p->lock);
	b = p->free;
	if (b) {
		p->free = b->next;
		p->nfree--;
	}
	pthread_mutex_unlock(&p->lock);
	if (!b) {
		b = kb_buf_alloc(p->cap);
		if (!b)
			return NULL;
		atomic_fetch_add(&p->allocs, 1);
	}
	atomic_store(&b->ref, 1);
	b->pool = p;
	b->next = NULL;
	b->len = 0;
	b->off = 0;
	atomic_fetch_add(&p->ref, 1);
	return b;
}

void kb_buf_put(struct kb_buf *b)
{
	struct kb_bufpool *p;

	if (!b || atomic_fetch_sub_explicit(&b->ref, 1, memory_order_acq_rel) != 1)
		return;
	p = b->pool;
	if (!p) {
		free(b);
		return;
	}
	pthread_mutex_lock(&p->lock);
	if (p->nfree < p->keep) {
		b->next = p->free;
		p->free = b;
		p->nfree++;
		b = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	free(b);
	pool_unref(p);
}
