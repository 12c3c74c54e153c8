/* kbfs_nameset.c - (server node, name) -> session and expiry (kbfs_nameset.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kbfs_nameset.h"
#include "util.h"

#define NAMES_SLOTS 4096 /* power of two */
#define NAMES_WAYS 4     /* a name may sit in any of its set's 4 entries */

struct names_ent {
	uint64_t node; /* 0: empty */
	uint64_t gen;
	uint64_t expiry_ns;
	char name[256];
};

struct kbfs_nameset {
	pthread_mutex_t lock;
	struct names_ent *e; /* owned, NAMES_SLOTS of them (lock) */
};

int kbfs_nameset_new(struct kbfs_nameset **out)
{
	struct kbfs_nameset *ng = calloc(1, sizeof(*ng));

	if (!ng || !(ng->e = calloc(NAMES_SLOTS, sizeof(*ng->e)))) {
		free(ng);
		return -ENOMEM;
	}
	pthread_mutex_init(&ng->lock, NULL);
	*out = ng;
	return 0;
}

void kbfs_nameset_free(struct kbfs_nameset *ng)
{
	if (!ng)
		return;
	pthread_mutex_destroy(&ng->lock);
	free(ng->e);
	free(ng);
}

/* The first entry of name's set of NAMES_WAYS. */
static struct names_ent *set_of(struct kbfs_nameset *ng, uint64_t node, const char *name)
{
	uint64_t h = kb_hash_key_name(node, name);

	return &ng->e[(h & (NAMES_SLOTS / NAMES_WAYS - 1)) * NAMES_WAYS];
}

static bool same(const struct names_ent *e, uint64_t node, const char *name)
{
	return e->node == node && !strcmp(e->name, name);
}

/* node/name's entry, or NULL. Lock held. */
static struct names_ent *find_locked(struct kbfs_nameset *ng, uint64_t node, const char *name)
{
	struct names_ent *set = set_of(ng, node, name);

	for (unsigned i = 0; i < NAMES_WAYS; i++)
		if (same(&set[i], node, name))
			return &set[i];
	return NULL;
}

void kbfs_nameset_add(struct kbfs_nameset *ng, uint64_t node, const char *name, uint64_t gen,
		      uint64_t expiry_ns)
{
	struct names_ent *e, *set;
	size_t len = strlen(name);

	if (!ng || !node || len >= sizeof(e->name))
		return;
	pthread_mutex_lock(&ng->lock);
	e = find_locked(ng, node, name);
	if (!e) { /* an empty way, else the one that expires first */
		set = set_of(ng, node, name);
		e = &set[0];
		for (unsigned i = 1; i < NAMES_WAYS && e->node; i++)
			if (!set[i].node || set[i].expiry_ns < e->expiry_ns)
				e = &set[i];
	}
	e->node = node;
	e->gen = gen;
	e->expiry_ns = expiry_ns;
	memcpy(e->name, name, len + 1);
	pthread_mutex_unlock(&ng->lock);
}

uint64_t kbfs_nameset_left(struct kbfs_nameset *ng, uint64_t node, const char *name, uint64_t gen,
			   uint64_t now_ns)
{
	struct names_ent *e;
	uint64_t left = 0;

	if (!ng || !node)
		return 0;
	pthread_mutex_lock(&ng->lock);
	e = find_locked(ng, node, name);
	if (e && e->gen == gen && e->expiry_ns > now_ns)
		left = e->expiry_ns - now_ns;
	pthread_mutex_unlock(&ng->lock);
	return left;
}

void kbfs_nameset_drop(struct kbfs_nameset *ng, uint64_t node, const char *name)
{
	struct names_ent *e;

	if (!ng || !node)
		return;
	pthread_mutex_lock(&ng->lock);
	e = find_locked(ng, node, name);
	if (e)
		e->node = 0;
	pthread_mutex_unlock(&ng->lock);
}
