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
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "srv_impl.h"
#include "util.h"

/* ---- fd budget ---- */

/* Fds kept out of the node/handle budget: per connection its socket and a
 * few transient ones (a request opens at most two or three while it runs),
 * plus listening sockets, inotify, pipes, logs. */
#define FD_PER_CONN 4
#define FD_FIXED 256
#define FD_MIN_BUDGET 64

void kb_srv_fd_budget(struct kb_srv *s, long per_key, long per_sess)
{
	struct rlimit rl = {.rlim_cur = 1024};
	long reserve = FD_PER_CONN * (long)(s->max_conns + s->max_hs) + FD_FIXED;

	getrlimit(RLIMIT_NOFILE, &rl);
	s->nofile = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1ul << 30) ? (1l << 30)
									      : (long)rl.rlim_cur;
	reserve = KB_MIN(reserve, s->nofile / 4); /* a small limit still serves */
	s->fd_all_max = KB_MAX(s->nofile - reserve, FD_MIN_BUDGET);
	/* one key takes at most three quarters: another key always finds room,
	 * and one client listing a big directory is not cut at half */
	s->fd_key_max = per_key > 0 ? per_key : KB_MAX(s->fd_all_max - s->fd_all_max / 4, 1);
	s->fd_sess_max = per_sess > 0 ? per_sess : s->fd_key_max;
}

int kb_srv_fd_charge(struct kb_srv_fdacct *a)
{
	struct kb_srv *s;
	const char *what = NULL;
	long lim = 0;

	if (!a || !a->ku)
		return 0;
	s = a->srv;
	if (atomic_fetch_add(&a->fds, 1) >= s->fd_sess_max) {
		what = "session";
		lim = s->fd_sess_max;
	} else if (atomic_fetch_add(&a->ku->fds, 1) >= s->fd_key_max) {
		what = "key";
		lim = s->fd_key_max;
		atomic_fetch_sub(&a->ku->fds, 1);
	} else if (atomic_fetch_add(&s->fds, 1) >= s->fd_all_max) {
		what = "server";
		lim = s->fd_all_max;
		atomic_fetch_sub(&s->fds, 1);
		atomic_fetch_sub(&a->ku->fds, 1);
	}
	if (!what)
		return 0;
	atomic_fetch_sub(&a->fds, 1);
	kb_srv_limit_log(s, KB_SRV_LIM_FDS,
			 "fd limit: %ld node and handle fds per %s "
			 "(--max-fds-per-%s; RLIMIT_NOFILE %ld): EMFILE",
			 lim, what, strcmp(what, "server") ? what : "key", s->nofile);
	return -EMFILE;
}

void kb_srv_fd_uncharge(struct kb_srv_fdacct *a)
{
	if (!a || !a->ku)
		return;
	atomic_fetch_sub(&a->fds, 1);
	atomic_fetch_sub(&a->ku->fds, 1);
	atomic_fetch_sub(&a->srv->fds, 1);
}

struct kb_srv_keyuse *kb_srv_keyuse_get(struct kb_srv *s, const uint8_t *key)
{
	struct kb_srv_keyuse *ku;

	pthread_mutex_lock(&s->lock);
	for (ku = s->keys; ku; ku = ku->next)
		if (!memcmp(ku->key, key, KB_KEY_LEN))
			break;
	if (!ku && (ku = calloc(1, sizeof(*ku)))) {
		memcpy(ku->key, key, KB_KEY_LEN);
		atomic_init(&ku->fds, 0);
		ku->next = s->keys;
		s->keys = ku;
	}
	if (ku)
		ku->refs++;
	pthread_mutex_unlock(&s->lock);
	return ku;
}

void kb_srv_keyuse_put(struct kb_srv *s, struct kb_srv_keyuse *ku)
{
	struct kb_srv_keyuse **pp;

	if (!ku)
		return;
	pthread_mutex_lock(&s->lock);
	if (--ku->refs == 0) {
		for (pp = &s->keys; *pp != ku; pp = &(*pp)->next)
			;
		*pp = ku->next;
	} else {
		ku = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	free(ku);
}

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

	if (rd >= 0) {
		close(rd);
		kb_srv_fd_uncharge(n->acct);
	}
	close(n->fd);
	kb_srv_fd_uncharge(n->acct);
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
			if (n->fmt == S_IFDIR && t->sess)
				kb_srv_dlease_leave(t->sess, n->dev, n->ino, true);
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

static bool id_taken(struct kb_srv_nodetab *t, uint64_t id)
{
	for (struct kb_srv_node *n = t->by_id[hash_id(id, t->nbuckets)]; n; n = n->next_id)
		if (n->id == id)
			return true;
	return false;
}

/* Lock held: a new node for fd (consumed) with id. */
static struct kb_srv_node *node_insert(struct kb_srv_nodetab *t, struct kb_srv_node *n, int fd,
				       const struct stat *st, uint64_t id)
{
	n->acct = t->acct;
	n->id = id;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->fmt = st->st_mode & S_IFMT;
	n->fd = fd;
	atomic_init(&n->rdfd, -1);
	atomic_init(&n->refs, 1);
	if (t->count >= t->nbuckets)
		grow(t);
	n->next_id = t->by_id[hash_id(n->id, t->nbuckets)];
	t->by_id[hash_id(n->id, t->nbuckets)] = n;
	n->next_ino = t->by_ino[hash_ino(n->dev, n->ino, t->nbuckets)];
	t->by_ino[hash_ino(n->dev, n->ino, t->nbuckets)] = n;
	t->count++;
	return n;
}

int kb_srv_node_add_id(struct kb_srv_nodetab *t, int fd, const struct stat *st, uint64_t want_id,
		       struct kb_srv_node **out)
{
	struct kb_srv_node *n, *fresh;
	bool dir = S_ISDIR(st->st_mode) && t->sess, added = false, known;
	int ret = 0;

	if (want_id && !(want_id & KB_SRV_CLIENT_ID)) {
		close(fd);
		return -EINVAL;
	}
	/* before it is ours: another session's lease on it comes back first */
	if (dir && (ret = kb_srv_dlease_enter(t->sess, st->st_dev, st->st_ino))) {
		close(fd);
		return ret;
	}
	fresh = calloc(1, sizeof(*fresh));
	pthread_mutex_lock(&t->lock);
	n = find_ino(t, st->st_dev, st->st_ino);
	known = n != NULL;
	if (n && want_id) {
		n = NULL;
		ret = -EEXIST;
	} else if (n) {
		/* known: fd is closed below */
	} else if (!fresh || t->count >= t->max) {
		ret = fresh ? -ENFILE : -ENOMEM;
	} else if (want_id && id_taken(t, want_id)) {
		ret = -EEXIST;
	} else if ((ret = kb_srv_fd_charge(t->acct))) {
		/* the budget: -EMFILE */
	} else {
		n = node_insert(t, fresh, fd, st, want_id ? want_id : t->next_id++);
		fresh = NULL;
		fd = -1;
		added = true;
	}
	if (n) {
		n->nlookup++;
		atomic_fetch_add(&n->refs, 1);
		*out = n;
	}
	pthread_mutex_unlock(&t->lock);
	if (dir && !added) /* known already, or not added: counted once */
		kb_srv_dlease_leave(t->sess, st->st_dev, st->st_ino, !known);
	if (fd >= 0)
		close(fd);
	free(fresh);
	return ret;
}

int kb_srv_node_add(struct kb_srv_nodetab *t, int fd, const struct stat *st,
		    struct kb_srv_node **out)
{
	return kb_srv_node_add_id(t, fd, st, 0, out);
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
	if (drop && drop->fmt == S_IFDIR && t->sess)
		kb_srv_dlease_leave(t->sess, drop->dev, drop->ino, true);
	kb_srv_node_put(drop);
	return drop ? 1 : n ? 0 : -ENOENT;
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
	kb_srv_fd_uncharge(h->acct);
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

static bool fh_taken(struct kb_srv_fhtab *t, uint64_t id)
{
	for (struct kb_srv_fh *h = t->b[hash_id(id, t->nbuckets)]; h; h = h->next)
		if (h->id == id)
			return true;
	return false;
}

int kb_srv_fh_add(struct kb_srv_fhtab *t, struct kb_srv_node *n, int fd, bool dir, uint64_t *id)
{
	*id = 0;
	return kb_srv_fh_add_id(t, n, fd, dir, id);
}

int kb_srv_fh_add_id(struct kb_srv_fhtab *t, struct kb_srv_node *n, int fd, bool dir, uint64_t *id)
{
	struct kb_srv_fh *h = calloc(1, sizeof(*h));
	size_t b;

	if (!h) {
		close(fd);
		kb_srv_node_put(n);
		return -ENOMEM;
	}
	if (kb_srv_fd_charge(t->acct)) {
		free(h);
		close(fd);
		kb_srv_node_put(n);
		return -EMFILE;
	}
	h->acct = t->acct;
	h->node = n;
	h->fd = fd;
	h->dir = dir;
	pthread_mutex_init(&h->lock, NULL);
	atomic_init(&h->refs, 1);
	pthread_mutex_lock(&t->lock);
	if (t->count >= t->max || (*id && (!(*id & KB_SRV_CLIENT_ID) || fh_taken(t, *id)))) {
		int ret = t->count >= t->max ? -EMFILE : *id & KB_SRV_CLIENT_ID ? -EEXIST : -EINVAL;

		pthread_mutex_unlock(&t->lock);
		kb_srv_fh_put(h);
		return ret;
	}
	h->id = *id ? *id : t->next_id++;
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
