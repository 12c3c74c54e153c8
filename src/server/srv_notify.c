/* srv_notify.c - change notifications: inotify watches on what clients
 * looked up, pushed to them as NOTIFY frames (id 0).
 *
 * One inotify descriptor and one thread per server. A session registers
 * (wd, session, node) for every directory it looks up, and every regular
 * file with more than one link: a directory's watch reports its entries'
 * names, data and attributes (changed through that directory), so only a
 * file reachable by another name needs its own. At most
 * KB_SRV_MAX_WATCHES per session and NOTIFY_MAX_TOTAL per server, of which
 * one client key takes at most an equal share of the keys watching (one
 * key cannot starve the others). These pushes are a promise (HELLO
 * lease_ms: the client trusts what it holds until told otherwise), so
 * what breaks it is said: a node that cannot be watched (budget, inotify
 * limit) sends the session NOTIFY_LEASE_OFF, and NOTIFY_LEASE_ON once
 * every such node is forgotten; pushes lost (the pending list full, the
 * kernel's inotify queue overflowed, a watched filesystem unmounted) send
 * NOTIFY_LEASE_LAPSE. A forgotten node's watch goes (kb_srv_notify_unwatch).
 * An event on a watched directory that names an entry becomes
 * {notify_node = dir, notify_name = entry}; an event on the watched inode
 * itself becomes {notify_node = node, name empty}. Events are coalesced:
 * pending pushes are deduplicated and sent NOTIFY_DELAY_MS after the first
 * of a burst, each on one of the session's connections. A pending push
 * that a request of the same session marked as its own change within
 * KB_SRV_MINE_MS (kb_srv_notify_mine, before it ran) is not sent; what no
 * request marked is not attributed: a client also hears of its own changes (it only
 * invalidates caches, which is harmless).
 *
 * Locks: nf->lock guards the watch table, the pending list and every
 * session's nwatches (a leaf, like the table locks). nf->send_lock is held
 * while pending pushes are sent, and by kb_srv_notify_forget, so a session
 * is never freed while a push for it is being sent; pushes never wait on a
 * peer (kb_chan_send_nowait: dropped, counted and logged when the client
 * does not take them), so neither lock is ever held long. Order: send_lock ->
 * srv.lock -> conn.lock; nf->lock is never held with another lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "chan.h"
#include "srv_impl.h"
#include "util.h"
#include "wire.h"

#define NOTIFY_BUCKETS 1024
#define NOTIFY_MAX_TOTAL 65536
#define NOTIFY_KEYS 256  /* client keys counted for fairness */
#define NOTIFY_LAPSED 64 /* sessions remembered as having lost pushes */
#define NOTIFY_PEND_MAX 1024
#define NOTIFY_DELAY_MS 50
/* A push waits this long for a reply being sent on its connection (never
 * for the peer); one that could not be sent drops the connection's pushes
 * for PUSH_STALL_NS without waiting. */
#define PUSH_LOCK_MS 20
#define PUSH_STALL_NS 1000000000ull
#define NOTIFY_MASK                                                                    \
	(IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
	 IN_DELETE_SELF | IN_MOVE_SELF)

struct watch {
	int wd;                   /* -1: could not be watched (the lease is off) */
	struct kb_srv_sess *sess; /* not owned: forget removes us first */
	uint64_t node;
	struct watch *next;  /* chain by wd, when wd >= 0 (lock) */
	struct watch *nnext; /* chain by (sess, node) (lock) */
};

/* A session's own recent changes: 64-bit hashes of (node, name) and when
 * they stop counting, 4-way set-associative (a full set forgets the entry
 * that expires first; a forgotten mark only means a push the client
 * recognises and drops itself, as it did before these marks). */
#define MINE_SETS 1024
#define MINE_WAYS 4
struct kb_srv_mine {
	struct {
		uint64_t key, expiry_ns;
	} e[MINE_SETS * MINE_WAYS];
};

struct pend {
	struct kb_srv_sess *sess;
	uint64_t node;
	uint32_t flags; /* NOTIFY_LEASE_* (node 0, no name) */
	char name[256];
};

struct keyuse {
	uint8_t key[KB_KEY_LEN];
	unsigned watches; /* 0: a free slot */
};

struct kb_srv_notifier {
	struct kb_srv *srv;
	int ifd;     /* inotify, owned */
	int wake[2]; /* owned pipe: stop */
	pthread_t th;
	pthread_mutex_t lock;
	pthread_mutex_t send_lock;
	struct watch *b[NOTIFY_BUCKETS];           /* owned chains by wd (lock) */
	struct watch *nb[NOTIFY_BUCKETS];          /* the same by (sess, node) (lock) */
	unsigned total;                            /* (lock) */
	struct keyuse keys[NOTIFY_KEYS];           /* watches per client key (lock) */
	struct kb_srv_sess *lapsed[NOTIFY_LAPSED]; /* lost pushes (lock) */
	unsigned nlapsed;                          /* (lock) */
	bool lapse_all;                            /* lost pushes of unknown sessions (lock) */
	struct pend *pend;                         /* owned, NOTIFY_PEND_MAX (lock) */
	unsigned npend;                            /* (lock) */
	uint64_t first_ns;                         /* arrival of the oldest pending (lock) */
	struct pend *out;                          /* owned copy being sent (send_lock) */
	kb_Response resp;                          /* being encoded (send_lock) */
	uint8_t frame[KB_FRAME_HEAD + 512 + KB_FRAME_TAG]; /* (send_lock) */
};

static unsigned nbucket(const struct kb_srv_sess *s, uint64_t node)
{
	return (unsigned)((((uintptr_t)s >> 4) ^ node) * 0x9e3779b97f4a7c15ull >> 54) %
	       NOTIFY_BUCKETS;
}

/* Lock held: s's registration of node, or NULL. */
static struct watch *reg_find(struct kb_srv_notifier *nf, const struct kb_srv_sess *s,
			      uint64_t node)
{
	struct watch *w = nf->nb[nbucket(s, node)];

	while (w && (w->sess != s || w->node != node))
		w = w->nnext;
	return w;
}

/* Lock held: the watch count of s's key (created with 0). */
static struct keyuse *key_use(struct kb_srv_notifier *nf, const struct kb_srv_sess *s)
{
	struct keyuse *free_slot = NULL;

	for (unsigned i = 0; i < NOTIFY_KEYS; i++) {
		struct keyuse *k = &nf->keys[i];

		if (k->watches && !memcmp(k->key, s->key, KB_KEY_LEN))
			return k;
		if (!k->watches && !free_slot)
			free_slot = k;
	}
	if (free_slot)
		memcpy(free_slot->key, s->key, KB_KEY_LEN);
	return free_slot;
}

/* Lock held: may s take one more watch? Its own cap, the server's, and an
 * equal share of the server's for each key holding watches. */
static bool budget_ok(struct kb_srv_notifier *nf, const struct kb_srv_sess *s)
{
	struct keyuse *mine;
	unsigned active = 0;

	if (s->nwatches >= KB_SRV_MAX_WATCHES || nf->total >= NOTIFY_MAX_TOTAL)
		return false;
	mine = key_use(nf, s);
	if (!mine)
		return false;
	for (unsigned i = 0; i < NOTIFY_KEYS; i++)
		active += nf->keys[i].watches > 0;
	if (!mine->watches)
		active++;
	return mine->watches < NOTIFY_MAX_TOTAL / active;
}

static void pend_flags(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint32_t flags);

void kb_srv_notify_watch(struct kb_srv_notifier *nf, struct kb_srv_sess *s,
			 const struct kb_srv_node *n)
{
	char path[64];
	struct watch *w;
	struct stat st;
	bool ok;
	int wd = -1;

	if (!nf)
		return;
	/* a file with one link changes only through its directory's watch */
	if (n->fmt == S_IFREG && (fstat(n->fd, &st) || st.st_nlink < 2))
		return;
	if (n->fmt != S_IFDIR && n->fmt != S_IFREG)
		return;
	pthread_mutex_lock(&nf->lock);
	ok = !reg_find(nf, s, n->id) && budget_ok(nf, s);
	w = reg_find(nf, s, n->id);
	pthread_mutex_unlock(&nf->lock);
	if (w)
		return; /* registered already */
	if (ok && !kb_srv_proc_path(n, path, sizeof(path)))
		wd = inotify_add_watch(nf->ifd, path, NOTIFY_MASK);
	pthread_mutex_lock(&nf->lock);
	if (!reg_find(nf, s, n->id) && (w = malloc(sizeof(*w)))) {
		unsigned nb = nbucket(s, n->id);

		*w = (struct watch){.wd = wd, .sess = s, .node = n->id, .nnext = nf->nb[nb]};
		nf->nb[nb] = w;
		if (wd >= 0) {
			w->next = nf->b[wd % NOTIFY_BUCKETS];
			nf->b[wd % NOTIFY_BUCKETS] = w;
			nf->total++;
			s->nwatches++;
			key_use(nf, s)->watches++; /* found by budget_ok: never NULL */
		} else if (s->unwatched++ == 0) {
			pend_flags(nf, s, kb_NotifyFlags_NOTIFY_LEASE_OFF);
		}
	} else if (!w && wd < 0 && s->unwatched++ == 0) { /* no memory: no promise */
		pend_flags(nf, s, kb_NotifyFlags_NOTIFY_LEASE_OFF);
	}
	pthread_mutex_unlock(&nf->lock);
}

/* Lock held: unlink w from both chains and free it; true when its wd has
 * no registration left (the caller removes the inotify watch). */
static bool reg_drop(struct kb_srv_notifier *nf, struct watch *w)
{
	struct watch **pp = &nf->nb[nbucket(w->sess, w->node)];
	bool last = false;

	while (*pp != w)
		pp = &(*pp)->nnext;
	*pp = w->nnext;
	if (w->wd >= 0) {
		struct keyuse *k = key_use(nf, w->sess);

		last = true;
		for (pp = &nf->b[w->wd % NOTIFY_BUCKETS]; *pp;) {
			if (*pp == w) {
				*pp = w->next;
				continue;
			}
			last &= (*pp)->wd != w->wd;
			pp = &(*pp)->next;
		}
		nf->total--;
		w->sess->nwatches--;
		if (k && k->watches)
			k->watches--;
	} else if (w->sess->unwatched && --w->sess->unwatched == 0) {
		pend_flags(nf, w->sess, kb_NotifyFlags_NOTIFY_LEASE_ON);
	}
	free(w);
	return last;
}

void kb_srv_notify_unwatch(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node)
{
	struct watch *w;
	int rm = -1;

	if (!nf)
		return;
	pthread_mutex_lock(&nf->lock);
	w = reg_find(nf, s, node);
	if (w) {
		int wd = w->wd;

		if (reg_drop(nf, w))
			rm = wd;
	}
	pthread_mutex_unlock(&nf->lock);
	if (rm >= 0)
		inotify_rm_watch(nf->ifd, rm);
}

static uint64_t mine_key(uint64_t node, const char *name)
{
	return kb_hash_key_name(node, name) | 1; /* 0: an empty entry */
}

/* The first way of key's set. */
static unsigned mine_set(uint64_t key)
{
	return (unsigned)(key >> 32) % MINE_SETS * MINE_WAYS;
}

void kb_srv_notify_mine(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node,
			const char *name)
{
	uint64_t key = mine_key(node, name), exp = kb_now_ns() + KB_SRV_MINE_MS * 1000000ull;
	unsigned set = mine_set(key), v;

	if (!nf)
		return;
	pthread_mutex_lock(&nf->lock);
	if (!s->mine)
		s->mine = calloc(1, sizeof(*s->mine)); /* NULL: no marks, pushes as before */
	if (s->mine) {
		for (v = 0; v < MINE_WAYS && s->mine->e[set + v].key != key; v++)
			;
		if (v == MINE_WAYS) { /* not there: the way that expires first */
			v = 0;
			for (unsigned i = 1; i < MINE_WAYS; i++)
				if (s->mine->e[set + i].expiry_ns < s->mine->e[set + v].expiry_ns)
					v = i;
		}
		s->mine->e[set + v].key = key;
		s->mine->e[set + v].expiry_ns = exp;
	}
	pthread_mutex_unlock(&nf->lock);
}

/* Lock held: s made this change itself within KB_SRV_MINE_MS. */
static bool is_mine(const struct kb_srv_sess *s, uint64_t node, const char *name, uint64_t now)
{
	uint64_t key;
	unsigned set;

	if (!s->mine)
		return false;
	key = mine_key(node, name);
	set = mine_set(key);
	for (unsigned v = 0; v < MINE_WAYS; v++)
		if (s->mine->e[set + v].key == key)
			return s->mine->e[set + v].expiry_ns > now;
	return false;
}

/* Lock held: s lost a push; it is told at the next flush (LAPSE). */
static void lapsed(struct kb_srv_notifier *nf, struct kb_srv_sess *s)
{
	for (unsigned i = 0; i < nf->nlapsed; i++)
		if (nf->lapsed[i] == s)
			return;
	if (nf->nlapsed < NOTIFY_LAPSED)
		nf->lapsed[nf->nlapsed++] = s;
	else
		nf->lapse_all = true;
	if (!nf->npend)
		nf->first_ns = kb_now_ns();
}

/* Lock held: queue one push unless the same one is already pending. */
static void pend_one(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node,
		     const char *name, uint32_t flags)
{
	for (unsigned i = 0; i < nf->npend; i++)
		if (nf->pend[i].sess == s && nf->pend[i].node == node &&
		    nf->pend[i].flags == flags && !strcmp(nf->pend[i].name, name))
			return;
	if (nf->npend >= NOTIFY_PEND_MAX) {
		lapsed(nf, s); /* a promise broken: say so */
		return;
	}
	if (!nf->npend && !nf->nlapsed && !nf->lapse_all)
		nf->first_ns = kb_now_ns();
	nf->pend[nf->npend].sess = s;
	nf->pend[nf->npend].node = node;
	nf->pend[nf->npend].flags = flags;
	snprintf(nf->pend[nf->npend].name, sizeof(nf->pend[0].name), "%s", name);
	nf->npend++;
}

static void pend_add(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node,
		     const char *name)
{
	pend_one(nf, s, node, name, 0);
}

static void pend_flags(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint32_t flags)
{
	pend_one(nf, s, 0, "", flags);
}

/* Lock held: remove the registrations matching wd (and s when not NULL);
 * true when wd has none left. */
static bool drop_watches(struct kb_srv_notifier *nf, int wd, const struct kb_srv_sess *s)
{
	struct watch *w = nf->b[wd % NOTIFY_BUCKETS], *next;
	bool last = true;

	for (; w; w = next) {
		next = w->next;
		if (w->wd != wd)
			continue;
		if (!s || w->sess == s)
			last = reg_drop(nf, w);
		else
			last = false;
	}
	return last;
}

static void on_event(struct kb_srv_notifier *nf, const struct inotify_event *ev)
{
	pthread_mutex_lock(&nf->lock);
	if (ev->mask & IN_Q_OVERFLOW) { /* the kernel dropped events: for anyone */
		nf->lapse_all = true;
		if (!nf->npend)
			nf->first_ns = kb_now_ns();
	} else if (ev->mask & (IN_IGNORED | IN_UNMOUNT)) {
		/* deleted (its entry's push says so), or its filesystem gone
		 * from under the share: what was promised about it is not */
		for (struct watch *w = nf->b[ev->wd % NOTIFY_BUCKETS]; w; w = w->next)
			if (w->wd == ev->wd && (ev->mask & IN_UNMOUNT))
				lapsed(nf, w->sess);
		drop_watches(nf, ev->wd, NULL);
	} else if (ev->wd >= 0) {
		for (struct watch *w = nf->b[ev->wd % NOTIFY_BUCKETS]; w; w = w->next)
			if (w->wd == ev->wd)
				pend_add(nf, w->sess, w->node, ev->len ? ev->name : "");
	}
	pthread_mutex_unlock(&nf->lock);
}

/* srv lock held: a connection of s that can carry a push, marked busy. */
static struct kb_srv_conn *pick_conn(struct kb_srv *srv, const struct kb_srv_sess *s)
{
	for (struct kb_srv_conn *c = srv->conns; c; c = c->next) {
		pthread_mutex_lock(&c->lock);
		if (c->sess == s && c->chan && !c->closing) {
			c->notify_busy++;
			pthread_mutex_unlock(&c->lock);
			return c;
		}
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}

/* send_lock held. */
static void push_one(struct kb_srv_notifier *nf, const struct pend *p)
{
	struct kb_srv *srv = nf->srv;
	struct kb_srv_conn *c;
	size_t len;

	memset(&nf->resp, 0, sizeof(nf->resp));
	nf->resp.notify_node = p->node;
	nf->resp.notify_flags = p->flags;
	snprintf(nf->resp.notify_name, sizeof(nf->resp.notify_name), "%s", p->name);
	if (kb_wire_encode_resp(nf->frame + KB_FRAME_HEAD, 512, &nf->resp, &len))
		return;
	pthread_mutex_lock(&srv->lock);
	c = pick_conn(srv, p->sess);
	pthread_mutex_unlock(&srv->lock);
	if (!c)
		return; /* no connection now: the client revalidates on its own */
	if (len <= c->max_send) {
		/* Never wait on the peer here: the notifier's locks are on every
		 * session's teardown path. A client not taking its data loses the
		 * push (its attribute timeout covers it). */
		uint64_t now = kb_now_ns();
		bool stalled = now - atomic_load(&c->push_stalled_ns) < PUSH_STALL_NS;
		int rc = stalled ? -EAGAIN /* it just would not: do not wait again */
				 : kb_chan_send_nowait(c->chan, nf->frame, len, PUSH_LOCK_MS);

		if (rc == -EAGAIN) {
			uint64_t n = atomic_fetch_add(&srv->pushes_dropped, 1) + 1;

			if (!stalled)
				atomic_store(&c->push_stalled_ns, now);
			kb_srv_limit_log(srv, KB_SRV_LIM_PUSH,
					 "push to %s key %s dropped: busy or not "
					 "reading (%llu dropped in all)",
					 c->peer, c->fpr, (unsigned long long)n);
		} else if (rc < 0) {
			kb_chan_shutdown(c->chan);
		}
	}
	pthread_mutex_lock(&c->lock);
	c->notify_busy--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* send_lock held: every session lost pushes (LAPSE to each). Sessions
 * are not freed meanwhile: kb_srv_notify_forget takes send_lock first. */
static void lapse_everyone(struct kb_srv_notifier *nf)
{
	struct kb_srv *srv = nf->srv;
	unsigned n = 0;

	pthread_mutex_lock(&srv->lock);
	for (struct kb_srv_sess *s = srv->sessions; s && n < NOTIFY_PEND_MAX; s = s->next)
		nf->out[n++] = (struct pend){.sess = s, .flags = kb_NotifyFlags_NOTIFY_LEASE_LAPSE};
	pthread_mutex_unlock(&srv->lock);
	for (unsigned i = 0; i < n; i++)
		push_one(nf, &nf->out[i]);
}

static void flush(struct kb_srv_notifier *nf)
{
	uint64_t now;
	unsigned n;
	bool all;

	pthread_mutex_lock(&nf->send_lock);
	pthread_mutex_lock(&nf->lock);
	/* Checked now, a burst after the event: the request that made the
	 * change has marked it by then even if its event came first. */
	now = kb_now_ns();
	n = 0;
	for (unsigned i = 0; i < nf->npend; i++) {
		const struct pend *p = &nf->pend[i];

		if (p->flags || !is_mine(p->sess, p->node, p->name, now))
			nf->out[n++] = *p;
	}
	nf->npend = 0;
	for (unsigned i = 0; i < nf->nlapsed; i++) /* after the pushes we still have */
		nf->out[n++] = (struct pend){.sess = nf->lapsed[i],
					     .flags = kb_NotifyFlags_NOTIFY_LEASE_LAPSE};
	nf->nlapsed = 0;
	all = nf->lapse_all;
	nf->lapse_all = false;
	pthread_mutex_unlock(&nf->lock);
	for (unsigned i = 0; i < n; i++)
		push_one(nf, &nf->out[i]);
	if (all)
		lapse_everyone(nf);
	pthread_mutex_unlock(&nf->send_lock);
}

/* Milliseconds until the pending burst is due; -1 when none pending. */
static int due_ms(struct kb_srv_notifier *nf)
{
	uint64_t now = kb_now_ns(), due;
	int ms = -1;

	pthread_mutex_lock(&nf->lock);
	if (nf->npend || nf->nlapsed || nf->lapse_all) {
		due = nf->first_ns + NOTIFY_DELAY_MS * 1000000ull;
		ms = due > now ? (int)((due - now) / 1000000u) + 1 : 0;
	}
	pthread_mutex_unlock(&nf->lock);
	return ms;
}

/* The wake pipe said something: "x" stop (true), "k" a push is due now. */
static bool woken_to_stop(struct kb_srv_notifier *nf)
{
	char b[64];
	ssize_t n = read(nf->wake[0], b, sizeof(b));

	return n <= 0 || memchr(b, 'x', (size_t)n) != NULL;
}

void kb_srv_notify_recall(struct kb_srv_notifier *nf, struct kb_srv_sess *s, uint64_t node)
{
	ssize_t r;

	if (!nf)
		return;
	pthread_mutex_lock(&nf->lock);
	pend_one(nf, s, node, "", kb_NotifyFlags_NOTIFY_RECALL);
	nf->first_ns = kb_now_ns() - NOTIFY_DELAY_MS * 1000000ull; /* due now */
	pthread_mutex_unlock(&nf->lock);
	r = write(nf->wake[1], "k", 1);
	(void)r;
}

static void *notify_main(void *arg)
{
	struct kb_srv_notifier *nf = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		struct pollfd pf[2] = {{.fd = nf->ifd, .events = POLLIN},
				       {.fd = nf->wake[0], .events = POLLIN}};
		int ms = due_ms(nf), rc = poll(pf, 2, ms);
		ssize_t len;

		if (rc < 0 && errno != EINTR)
			break;
		if (rc > 0 && pf[1].revents && woken_to_stop(nf))
			break;
		if (rc > 0 && (pf[0].revents & POLLIN)) {
			len = read(nf->ifd, buf, sizeof(buf));
			for (ssize_t off = 0; len > 0 && off < len;) {
				const struct inotify_event *ev = (const void *)(buf + off);

				on_event(nf, ev);
				off += (ssize_t)(sizeof(*ev) + ev->len);
			}
		}
		if (due_ms(nf) == 0)
			flush(nf);
	}
	return NULL;
}

void kb_srv_notify_forget(struct kb_srv_notifier *nf, struct kb_srv_sess *s)
{
	unsigned j = 0;

	if (!nf)
		return;
	pthread_mutex_lock(&nf->send_lock);
	pthread_mutex_lock(&nf->lock);
	for (unsigned i = 0; i < nf->npend; i++)
		if (nf->pend[i].sess != s)
			nf->pend[j++] = nf->pend[i];
	nf->npend = j;
	for (unsigned i = j = 0; i < nf->nlapsed; i++)
		if (nf->lapsed[i] != s)
			nf->lapsed[j++] = nf->lapsed[i];
	nf->nlapsed = j;
	free(s->mine);
	s->mine = NULL;
	for (unsigned i = 0; i < NOTIFY_BUCKETS; i++) {
		struct watch *w = nf->nb[i], *next;

		for (; w; w = next) {
			int wd = w->wd;

			next = w->nnext;
			if (w->sess != s)
				continue;
			s->unwatched = 0;               /* no LEASE_ON for a session going away */
			if (reg_drop(nf, w) && wd >= 0) /* frees w; next is another's */
				inotify_rm_watch(nf->ifd, wd);
		}
	}
	pthread_mutex_unlock(&nf->lock);
	pthread_mutex_unlock(&nf->send_lock);
}

static void nf_free(struct kb_srv_notifier *nf)
{
	for (unsigned i = 0; i < NOTIFY_BUCKETS; i++)
		while (nf->nb[i]) { /* every registration is on this chain */
			struct watch *w = nf->nb[i];

			nf->nb[i] = w->nnext;
			free(w);
		}
	for (int i = 0; i < 2; i++)
		if (nf->wake[i] >= 0)
			close(nf->wake[i]);
	if (nf->ifd >= 0)
		close(nf->ifd);
	pthread_mutex_destroy(&nf->lock);
	pthread_mutex_destroy(&nf->send_lock);
	free(nf->pend);
	free(nf->out);
	free(nf);
}

int kb_srv_notify_start(struct kb_srv *srv, struct kb_srv_notifier **out)
{
	struct kb_srv_notifier *nf = calloc(1, sizeof(*nf));
	int ret;

	if (!nf)
		return -ENOMEM;
	nf->srv = srv;
	nf->wake[0] = nf->wake[1] = -1;
	pthread_mutex_init(&nf->lock, NULL);
	pthread_mutex_init(&nf->send_lock, NULL);
	nf->pend = calloc(NOTIFY_PEND_MAX, sizeof(*nf->pend));
	/* the pending pushes, then one LAPSE per session at most */
	nf->out = calloc(NOTIFY_PEND_MAX + NOTIFY_LAPSED, sizeof(*nf->out));
	nf->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (!nf->pend || !nf->out || nf->ifd < 0 || pipe2(nf->wake, O_CLOEXEC)) {
		ret = nf->ifd < 0 || nf->wake[0] < 0 ? -errno : -ENOMEM;
		nf_free(nf);
		return ret;
	}
	ret = -pthread_create(&nf->th, NULL, notify_main, nf);
	if (ret) {
		nf_free(nf);
		return ret;
	}
	pthread_setname_np(nf->th, "kbsrv-notify");
	*out = nf;
	return 0;
}

void kb_srv_notify_stop(struct kb_srv_notifier *nf)
{
	ssize_t r;

	if (!nf)
		return;
	r = write(nf->wake[1], "x", 1);
	(void)r;
	pthread_join(nf->th, NULL);
	nf_free(nf);
}
