/* kbfs_names.c - (server node, name) -> session and expiry (kbfs_names.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kbfs_names.h"
#include "util.h"

#define NAMES_SLOTS 4096 /* power of two */

struct names_ent {
	uint64_t node;            /* 0: empty */
	uint64_t gen;
	uint64_t expiry_ns;
	char name[256];
};

struct kbfs_names {
	pthread_mutex_t lock;
	struct names_ent *e;      /* owned, NAMES_SLOTS of them (lock) */
};

int kbfs_names_new(struct kbfs_names **out)
{
	struct kbfs_names *ng = calloc(1, sizeof(*ng));

	if (!ng || !(ng->e = calloc(NAMES_SLOTS, sizeof(*ng->e)))) {
		free(ng);
		return -ENOMEM;
	}
	pthread_mutex_init(&ng->lock, NULL);
	*out = ng;
	return 0;
}

void kbfs_names_free(struct kbfs_names *ng)
{
	if (!ng)
		return;
	pthread_mutex_destroy(&ng->lock);
	free(ng->e);
	free(ng);
}

static struct names_ent *slot(struct kbfs_names *ng, uint64_t node, const char *name)
{
	uint64_t h = kb_hash_key_name(node, name);

	return &ng->e[(h ^ (h >> 32)) & (NAMES_SLOTS - 1)];
}

static bool same(const struct names_ent *e, uint64_t node, const char *name)
{
	return e->node == node && !strcmp(e->name, name);
}

void kbfs_names_add(struct kbfs_names *ng, uint64_t node, const char *name, uint64_t gen,
		    uint64_t expiry_ns)
{
	struct names_ent *e;
	size_t len = strlen(name);

	if (!ng || !node || len >= sizeof(e->name))
		return;
	pthread_mutex_lock(&ng->lock);
	e = slot(ng, node, name);
	e->node = node;
	e->gen = gen;
	e->expiry_ns = expiry_ns;
	memcpy(e->name, name, len + 1);
	pthread_mutex_unlock(&ng->lock);
}

uint64_t kbfs_names_left(struct kbfs_names *ng, uint64_t node, const char *name, uint64_t gen,
			 uint64_t now_ns)
{
	struct names_ent *e;
	uint64_t left = 0;

	if (!ng || !node)
		return 0;
	pthread_mutex_lock(&ng->lock);
	e = slot(ng, node, name);
	if (same(e, node, name) && e->gen == gen && e->expiry_ns > now_ns)
		left = e->expiry_ns - now_ns;
	pthread_mutex_unlock(&ng->lock);
	return left;
}

void kbfs_names_drop(struct kbfs_names *ng, uint64_t node, const char *name)
{
	struct names_ent *e;

	if (!ng || !node)
		return;
	pthread_mutex_lock(&ng->lock);
	e = slot(ng, node, name);
	if (same(e, node, name))
		e->node = 0;
	pthread_mutex_unlock(&ng->lock);
}
