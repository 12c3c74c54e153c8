/* buf.c - reference-counted buffers and their pool.
 *
 * Pools made with KB_BUFPOOL_ARENA (the client's receive pools) carve large
 * buffers (KB_BUF_ARENA_MIN and up: block pulls, 4 MiB frames) from arenas: 32 MiB mappings aligned to 2 MiB and
 * advised MADV_HUGEPAGE, so that filling the block cache costs a page fault
 * per 2 MiB instead of per 4 KiB (4 KiB faults made the first pass over a
 * file measurably slower than later ones). An arena buffer is never
 * freed on its own: it goes back to the pool's free list, and the arenas
 * are unmapped with the pool. What a pool holds is therefore bounded by
 * the most buffers it ever had out at once (block cache + frames in
 * flight). Smaller buffers come from malloc and beyond `keep` free ones
 * go back to it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "buf.h"

/* Under AddressSanitizer every buffer comes from malloc, so that it keeps
 * its redzones (an overrun inside an arena would go unnoticed). */
#if defined(__SANITIZE_ADDRESS__)
#define KB_BUF_ARENAS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KB_BUF_ARENAS 0
#endif
#endif
#ifndef KB_BUF_ARENAS
#define KB_BUF_ARENAS 1
#endif

#define KB_BUF_ARENA_MIN (256u << 10)
#define ARENA_LEN (32u << 20)
#define HUGE_LEN (2u << 20)

struct arena {
	struct arena *next;
	void *map; /* owned mapping of map_len bytes */
	size_t map_len;
};

struct kb_bufpool {
	pthread_mutex_t lock;
	struct kb_buf *free; /* free list (lock) */
	unsigned nfree;      /* length of free list (lock) */
	unsigned keep;       /* max free buffers kept (malloc'd buffers only) */
	size_t cap;
	size_t stride;        /* arena pools: bytes per carved buffer, else 0 */
	struct arena *arenas; /* owned (lock) */
	uint8_t *bump, *end;  /* room left in the newest arena (lock) */
	atomic_ulong allocs;  /* buffers ever malloc'd or carved */
	atomic_int ref;       /* owner + outstanding buffers */
};

static void pool_unref(struct kb_bufpool *p)
{
	if (atomic_fetch_sub(&p->ref, 1) != 1)
		return;
	while (p->free) {
		struct kb_buf *b = p->free;

		p->free = b->next;
		if (!p->stride)
			free(b);
	}
	while (p->arenas) {
		struct arena *a = p->arenas;

		p->arenas = a->next;
		munmap(a->map, a->map_len);
		free(a);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int kb_bufpool_new(struct kb_bufpool **out, size_t cap, unsigned keep, unsigned flags)
{
	struct kb_bufpool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->cap = cap;
	p->keep = keep;
	if (KB_BUF_ARENAS && (flags & KB_BUFPOOL_ARENA) && cap >= KB_BUF_ARENA_MIN &&
	    cap <= ARENA_LEN / 4)
		p->stride = (sizeof(struct kb_buf) + cap + 63) & ~(size_t)63;
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

static void buf_init(struct kb_buf *b, size_t cap)
{
	atomic_init(&b->ref, 1);
	b->pool = NULL;
	b->next = NULL;
	b->cap = cap;
	b->len = 0;
	b->off = 0;
}

struct kb_buf *kb_buf_alloc(size_t cap)
{
	struct kb_buf *b;

	if (posix_memalign((void **)&b, 64, sizeof(*b) + cap))
		return NULL;
	buf_init(b, cap);
	return b;
}

/* A new arena: ARENA_LEN bytes on a 2 MiB boundary. Lock held. */
static int arena_add(struct kb_bufpool *p)
{
	struct arena *a = malloc(sizeof(*a));
	size_t len = ARENA_LEN + HUGE_LEN;
	uint8_t *m, *start;

	if (!a)
		return -ENOMEM;
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		 0);
	if (m == MAP_FAILED) {
		free(a);
		return -ENOMEM;
	}
	start = (uint8_t *)(((uintptr_t)m + HUGE_LEN - 1) & ~(uintptr_t)(HUGE_LEN - 1));
	(void)madvise(start, ARENA_LEN, MADV_HUGEPAGE); /* a hint: fine without THP */
	*a = (struct arena){.next = p->arenas, .map = m, .map_len = len};
	p->arenas = a;
	p->bump = start;
	p->end = start + ARENA_LEN;
	return 0;
}

/* Lock held: a buffer carved from the newest arena, or NULL on ENOMEM. */
static struct kb_buf *carve(struct kb_bufpool *p)
{
	struct kb_buf *b;

	if ((!p->bump || (size_t)(p->end - p->bump) < p->stride) && arena_add(p))
		return NULL;
	b = (struct kb_buf *)(void *)p->bump;
	p->bump += p->stride;
	buf_init(b, p->cap);
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
	} else if (p->stride) {
		b = carve(p);
		if (b)
			atomic_fetch_add(&p->allocs, 1);
	}
	pthread_mutex_unlock(&p->lock);
	if (!b) {
		if (p->stride)
			return NULL;
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
	if (p->stride || p->nfree < p->keep) {
		b->next = p->free;
		p->free = b;
		p->nfree++;
		b = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	free(b);
	pool_unref(p);
}
