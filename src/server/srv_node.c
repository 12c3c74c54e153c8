/* srv_node.c - a session's node table (id -> O_PATH fd, lookup counts) and
 * handle table (fh -> open fd).
 *
 * A node is found by id (requests) and by (dev, ino) (so that looking up the
 * same inode twice, e.g. through a hard link, yields the same node, as FUSE
 * expects). Nodes and handles are reference counted: the table holds one
 * reference, every request using one holds another, so FORGET or RELEASE
 * racing with a request never frees what the request is using.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "srv_impl.h"
#include "util.h"

static size_t hash_id(uint64_t id, size_t nb)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 17) & (nb - 1);
}

static size_t hash_ino(dev_t dev, ino_t ino, size_t nb)
{
	return hash_id((uint64_t)ino ^ ((uint64_t)dev << 32 | (uint64_t)dev >> 32), nb);
}

int kb_srv_nodetab_init(struct kb_srv_nodetab *t, size_t max)
{
	t->nbuckets = 256;
	t->by_id = calloc(t->nbuckets, sizeof(*t->by_id));
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	if (!t->by_id || !t->by_ino) {
		free(t->by_id);
		free(t->by_ino);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->count = 0;
	t->max = max;
	t->next_id = 1;
	return 0;
}

static void node_free(struct kb_srv_node *n)
{
	int rd = atomic_load(&n->rdfd);

	if (rd >= 0)
		close(rd);
	close(n->fd);
	free(n);
}

void kb_srv_node_put(struct kb_srv_node *n)
{
	if (n && atomic_fetch_sub(&n->refs, 1) == 1)
		node_free(n);
}

void kb_srv_nodetab_destroy(struct kb_srv_nodetab *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct kb_srv_node *n = t->by_id[i], *next;

		for (; n; n = next) {
			next = n->next_id;
			kb_srv_node_put(n);
		}
	}
	free(t->by_id);
	free(t->by_ino);
	pthread_mutex_destroy(&t->lock);
}

struct kb_srv_node *kb_srv_node_get(struct kb_srv_nodetab *t, uint64_t id)
{
	struct kb_srv_node *n;

	pthread_mutex_lock(&t->lock);
	for (n = t->by_id[hash_id(id, t->nbuckets)]; n; n = n->next_id)
		if (n->id == id)
			break;
	if (n)
		atomic_fetch_add(&n->refs, 1);
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* Double the bucket arrays when the table is fuller than one per bucket;
 * failure to grow only makes chains longer. Caller holds the lock. */
static void grow(struct kb_srv_nodetab *t)
{
	size_t nb = t->nbuckets * 2;
	struct kb_srv_node **bi = calloc(nb, sizeof(*bi)), **bn = calloc(nb, sizeof(*bn));

	if (!bi || !bn) {
		free(bi);
		free(bn);
		return;
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct kb_srv_node *n, *next;

		for (n = t->by_id[i]; n; n = next) {
			size_t h = hash_id(n->id, nb);

			next = n->next_id;
			n->next_id = bi[h];
			bi[h] = n;
		}
		for (n = t->by_ino[i]; n; n = next) {
			size_t h = hash_ino(n->dev, n->ino, nb);

			next = n->next_ino;
			n->next_ino = bn[h];
			bn[h] = n;
		}
	}
	free(t->by_id);
	free(t->by_ino);
	t->by_id = bi;
	t->by_ino = bn;
	t->nbuckets = nb;
}

static struct kb_srv_node *find_ino(struct kb_srv_nodetab *t, dev_t dev, ino_t ino)
{
	struct kb_srv_node *n = t->by_ino[hash_ino(dev, ino, t->nbuckets)];

	while (n && !(n->dev == dev && n->ino == ino))
		n = n->next_ino;
	return n;
}

int kb_srv_node_add(struct kb_srv_nodetab *t, int fd, const struct stat *st,
		    struct kb_srv_node **out)
{
	struct kb_srv_node *n, *fresh = calloc(1, sizeof(*fresh));
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, st->st_dev, st->st_ino);
	if (n) {
		close(fd);
		fd = -1;
	} else if (!fresh || t->count >= t->max) {
		ret = fresh ? -ENFILE : -ENOMEM;
	} else {
		n = fresh;
		fresh = NULL;
		n->id = t->next_id++;
		n->dev = st->st_dev;
		n->ino = st->st_ino;
		n->fmt = st->st_mode & S_IFMT;
		n->fd = fd;
		fd = -1;
		atomic_init(&n->rdfd, -1);
		atomic_init(&n->refs, 1);
		if (t->count >= t->nbuckets)
			grow(t);
		n->next_id = t->by_id[hash_id(n->id, t->nbuckets)];
		t->by_id[hash_id(n->id, t->nbuckets)] = n;
		n->next_ino = t->by_ino[hash_ino(n->dev, n->ino, t->nbuckets)];
		t->by_ino[hash_ino(n->dev, n->ino, t->nbuckets)] = n;
		t->count++;
	}
	if (n) {
		n->nlookup++;
		atomic_fetch_add(&n->refs, 1);
		*out = n;
	}
	pthread_mutex_unlock(&t->lock);
	if (fd >= 0)
		close(fd);
	free(fresh);
	return ret;
}

/* Unlink n from both chains. Caller holds the lock. */
static void unchain(struct kb_srv_nodetab *t, struct kb_srv_node *n)
{
	struct kb_srv_node **pp = &t->by_id[hash_id(n->id, t->nbuckets)];

	while (*pp != n)
		pp = &(*pp)->next_id;
	*pp = n->next_id;
	pp = &t->by_ino[hash_ino(n->dev, n->ino, t->nbuckets)];
	while (*pp != n)
		pp = &(*pp)->next_ino;
	*pp = n->next_ino;
	t->count--;
}

int kb_srv_node_forget(struct kb_srv_nodetab *t, uint64_t id, uint64_t count)
{
	struct kb_srv_node *n, *drop = NULL;

	pthread_mutex_lock(&t->lock);
	for (n = t->by_id[hash_id(id, t->nbuckets)]; n; n = n->next_id)
		if (n->id == id)
			break;
	if (n) {
		n->nlookup -= KB_MIN(count, n->nlookup);
		if (n->nlookup == 0) {
			unchain(t, n);
			drop = n;
		}
	}
	pthread_mutex_unlock(&t->lock);
	kb_srv_node_put(drop);
	return n ? 0 : -ENOENT;
}

size_t kb_srv_node_count(struct kb_srv_nodetab *t)
{
	size_t c;

	pthread_mutex_lock(&t->lock);
	c = t->count;
	pthread_mutex_unlock(&t->lock);
	return c;
}

/* ---- handles ---- */

int kb_srv_fhtab_init(struct kb_srv_fhtab *t, size_t max)
{
	t->nbuckets = 1024;
	t->b = calloc(t->nbuckets, sizeof(*t->b));
	if (!t->b)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->count = 0;
	t->max = max;
	t->next_id = 1;
	return 0;
}

void kb_srv_fh_put(struct kb_srv_fh *h)
{
	if (!h || atomic_fetch_sub(&h->refs, 1) != 1)
		return;
	close(h->fd);
	kb_srv_node_put(h->node);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void kb_srv_fhtab_destroy(struct kb_srv_fhtab *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct kb_srv_fh *h = t->b[i], *next;

		for (; h; h = next) {
			next = h->next;
			kb_srv_fh_put(h);
		}
	}
	free(t->b);
	pthread_mutex_destroy(&t->lock);
}

int kb_srv_fh_add(struct kb_srv_fhtab *t, struct kb_srv_node *n, int fd, bool dir, uint64_t *id)
{
	struct kb_srv_fh *h = calloc(1, sizeof(*h));
	size_t b;

	if (!h) {
		close(fd);
		kb_srv_node_put(n);
		return -ENOMEM;
	}
	h->node = n;
	h->fd = fd;
	h->dir = dir;
	pthread_mutex_init(&h->lock, NULL);
	atomic_init(&h->refs, 1);
	pthread_mutex_lock(&t->lock);
	if (t->count >= t->max) {
		pthread_mutex_unlock(&t->lock);
		kb_srv_fh_put(h);
		return -EMFILE;
	}
	h->id = t->next_id++;
	b = hash_id(h->id, t->nbuckets);
	h->next = t->b[b];
	t->b[b] = h;
	t->count++;
	*id = h->id;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

struct kb_srv_fh *kb_srv_fh_get(struct kb_srv_fhtab *t, uint64_t id)
{
	struct kb_srv_fh *h;

	pthread_mutex_lock(&t->lock);
	for (h = t->b[hash_id(id, t->nbuckets)]; h; h = h->next)
		if (h->id == id)
			break;
	if (h)
		atomic_fetch_add(&h->refs, 1);
	pthread_mutex_unlock(&t->lock);
	return h;
}

int kb_srv_fh_remove(struct kb_srv_fhtab *t, uint64_t id)
{
	struct kb_srv_fh **pp, *h = NULL;

	pthread_mutex_lock(&t->lock);
	for (pp = &t->b[hash_id(id, t->nbuckets)]; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			h = *pp;
			*pp = h->next;
			t->count--;
			break;
		}
	pthread_mutex_unlock(&t->lock);
	kb_srv_fh_put(h);
	return h ? 0 : -EBADF;
}
