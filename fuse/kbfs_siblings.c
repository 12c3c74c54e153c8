/* kbfs_siblings.c - small files in listing order (see kbfs_siblings.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "kbfs_siblings.h"

#define SIB_INDEX (4 * KBFS_SIBLINGS_LOG) /* power of two; a collision forgets */

struct sib_ent {
	uint64_t dir, node;
};

struct kbfs_siblings {
	pthread_mutex_t lock;
	struct sib_ent log[KBFS_SIBLINGS_LOG]; /* ring, position % KBFS_SIBLINGS_LOG (lock) */
	uint64_t head;                         /* entries ever added (lock) */
	uint64_t index[SIB_INDEX];             /* node hash -> position + 1, 0: none (lock) */
};

int kbfs_siblings_new(struct kbfs_siblings **out)
{
	struct kbfs_siblings *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

void kbfs_siblings_free(struct kbfs_siblings *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static uint64_t *slot(struct kbfs_siblings *s, uint64_t node)
{
	uint64_t h = node * 0x9e3779b97f4a7c15ull;

	return &s->index[(h >> 32) & (SIB_INDEX - 1)];
}

void kbfs_siblings_add(struct kbfs_siblings *s, uint64_t dir, uint64_t node)
{
	if (!s || !node)
		return;
	pthread_mutex_lock(&s->lock);
	s->log[s->head % KBFS_SIBLINGS_LOG] = (struct sib_ent){dir, node};
	*slot(s, node) = ++s->head; /* position + 1 */
	pthread_mutex_unlock(&s->lock);
}

unsigned kbfs_siblings_next(struct kbfs_siblings *s, uint64_t node, uint64_t *out, unsigned max)
{
	uint64_t pos, dir;
	unsigned n = 0;

	if (!s || !node)
		return 0;
	pthread_mutex_lock(&s->lock);
	pos = *slot(s, node);
	/* still in the ring, and still this node's entry */
	if (!pos || s->head - (pos - 1) > KBFS_SIBLINGS_LOG ||
	    s->log[(pos - 1) % KBFS_SIBLINGS_LOG].node != node)
		goto out;
	dir = s->log[(pos - 1) % KBFS_SIBLINGS_LOG].dir;
	for (; pos < s->head && n < max; pos++) {
		const struct sib_ent *e = &s->log[pos % KBFS_SIBLINGS_LOG];

		if (e->dir != dir)
			break; /* another listing began */
		out[n++] = e->node;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return n;
}
